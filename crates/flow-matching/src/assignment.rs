//! Exact linear assignment: the permutation σ minimising Σ_i C[i, σ(i)] for a square cost
//! matrix, by shortest augmenting paths with dual potentials (Jonker & Volgenant 1987), in
//! Crouse's form (IEEE TAES 2016, the method of SciPy's `linear_sum_assignment`): one Dijkstra
//! search per row over the reduced costs C[i, j] − u[i] − v[j] ≥ 0, preferring a free column on
//! ties (short paths on the clustered costs of minibatch OT), potentials updated once per search.
//! O(n³) in the worst case. Minibatch OT pairs are a permutation, never draws with replacement.

use crate::error::{FmError, Result};

/// σ with σ[i] the column assigned to row i; `cost` is row-major n × n.
pub fn exact_assignment(cost: &[f64], n: usize) -> Result<Vec<usize>> {
    if cost.len() != n * n {
        return Err(FmError::Config(format!("assignment needs an n×n cost, got {} entries for n = {n}", cost.len())));
    }
    if let Some(i) = cost.iter().position(|c| !c.is_finite()) {
        return Err(FmError::Config(format!("non-finite cost at ({}, {})", i / n, i % n)));
    }
    const FREE: usize = usize::MAX;
    let (mut u, mut v) = (vec![0f64; n], vec![0f64; n]);
    let (mut col4row, mut row4col) = (vec![FREE; n], vec![FREE; n]);
    // path[j]: the row from which column j was reached; dist[j]: its shortest reduced distance
    let (mut path, mut dist) = (vec![FREE; n], vec![f64::INFINITY; n]);
    let (mut scanned_rows, mut scanned_cols) = (vec![false; n], vec![false; n]);
    let mut remaining = Vec::with_capacity(n);
    for row in 0..n {
        dist.fill(f64::INFINITY);
        scanned_rows.fill(false);
        scanned_cols.fill(false);
        remaining.clear();
        remaining.extend((0..n).rev());
        let (mut i, mut min_val) = (row, 0f64);
        let sink = loop {
            scanned_rows[i] = true;
            let costs = &cost[i * n..(i + 1) * n];
            let (mut lowest, mut index) = (f64::INFINITY, 0);
            for (it, &j) in remaining.iter().enumerate() {
                let r = min_val + costs[j] - u[i] - v[j];
                if r < dist[j] {
                    path[j] = i;
                    dist[j] = r;
                }
                if dist[j] < lowest || (dist[j] == lowest && row4col[j] == FREE) {
                    lowest = dist[j];
                    index = it;
                }
            }
            // finite costs keep every distance finite, so a column is always found
            min_val = lowest;
            let j = remaining.swap_remove(index);
            scanned_cols[j] = true;
            if row4col[j] == FREE {
                break j;
            }
            i = row4col[j];
        };
        // potentials: keep reduced costs ≥ 0 and tight along the tree
        u[row] += min_val;
        for r in (0..n).filter(|&r| scanned_rows[r] && r != row) {
            u[r] += min_val - dist[col4row[r]];
        }
        for j in (0..n).filter(|&j| scanned_cols[j]) {
            v[j] -= min_val - dist[j];
        }
        // augment along the path back to `row`
        let mut j = sink;
        loop {
            let r = path[j];
            row4col[j] = r;
            std::mem::swap(&mut col4row[r], &mut j);
            if r == row {
                break;
            }
        }
    }
    Ok(col4row)
}
