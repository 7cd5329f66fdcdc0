//! Exact linear assignment: the permutation σ minimising Σ_i C[i, σ(i)] for a square cost
//! matrix, by shortest augmenting paths with dual potentials (Jonker & Volgenant 1987), in
//! Crouse's form (IEEE TAES 2016, the method of SciPy's `linear_sum_assignment`): one Dijkstra
//! search per row over the reduced costs C[i, j] − u[i] − v[j] ≥ 0, preferring a free column on
//! ties (short paths on the clustered costs of minibatch OT), potentials updated once per search.
//! Jonker & Volgenant's column reduction starts it: v_j = min_i C[i, j], each column assigned to
//! its cheapest row while that row is free, u_i = min_j C[i, j] − v_j (feasible and tight on the
//! assigned pairs), so only the rows left free need a search. O(n³) in the worst case. Minibatch
//! OT pairs are a permutation, never draws with replacement.

use crate::error::{FmError, Result};

/// σ with σ[i] the column assigned to row i; `cost` is row-major n × n.
pub fn exact_assignment(cost: &[f64], n: usize) -> Result<Vec<usize>> {
    Ok(assignment_with_duals(cost, n)?.0)
}

/// σ and the dual potentials (u, v): u_i + v_j ≤ C[i, j] everywhere, with equality on the pairs
/// (i, σ(i)) — the certificate that σ is optimal.
fn assignment_with_duals(cost: &[f64], n: usize) -> Result<(Vec<usize>, Vec<f64>, Vec<f64>)> {
    if cost.len() != n * n {
        return Err(FmError::Config(format!("assignment needs an n×n cost, got {} entries for n = {n}", cost.len())));
    }
    if let Some(i) = cost.iter().position(|c| !c.is_finite()) {
        return Err(FmError::Config(format!("non-finite cost at ({}, {})", i / n, i % n)));
    }
    const FREE: usize = usize::MAX;
    let (mut u, mut v) = (vec![0f64; n], vec![f64::INFINITY; n]);
    let (mut col4row, mut row4col) = (vec![FREE; n], vec![FREE; n]);
    // column reduction: v_j = min_i C[i, j] and its row, scanning rows in memory order
    let mut argmin = vec![0usize; n];
    for (i, costs) in cost.chunks_exact(n.max(1)).enumerate() {
        for (j, &c) in costs.iter().enumerate() {
            if c < v[j] {
                v[j] = c;
                argmin[j] = i;
            }
        }
    }
    for j in 0..n {
        let i = argmin[j];
        if col4row[i] == FREE {
            col4row[i] = j;
            row4col[j] = i;
        }
    }
    for (i, costs) in cost.chunks_exact(n.max(1)).enumerate() {
        u[i] = costs.iter().zip(&v).map(|(c, vj)| c - vj).fold(f64::INFINITY, f64::min);
    }
    // path[j]: the row from which column j was reached; dist[j]: its shortest reduced distance
    let (mut path, mut dist) = (vec![FREE; n], vec![f64::INFINITY; n]);
    let (mut scanned_rows, mut scanned_cols) = (vec![false; n], vec![false; n]);
    let mut remaining = Vec::with_capacity(n);
    for row in 0..n {
        if col4row[row] != FREE {
            continue;
        }
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
    Ok((col4row, u, v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;
    use tensor_core::SeededRng;

    /// On clustered and on uniform random costs (n = 300), the potentials certify optimality:
    /// feasible everywhere and tight on the assignment, so no other permutation costs less.
    #[test]
    fn duals_certify_optimality() -> Result<()> {
        let mut rng = SeededRng::new(7);
        let n = 300;
        for clustered in [true, false] {
            let pts = |rng: &mut SeededRng, shift: f64| -> Vec<(f64, f64)> {
                (0..n)
                    .map(|k| {
                        let c = if clustered { (k % 8) as f64 * shift } else { 0.0 };
                        (c + rng.inner().random::<f64>(), rng.inner().random::<f64>())
                    })
                    .collect()
            };
            let (x, y) = (pts(&mut rng, 0.0), pts(&mut rng, 3.0));
            let cost: Vec<f64> = x.iter().flat_map(|a| y.iter().map(move |b| (a.0 - b.0).powi(2) + (a.1 - b.1).powi(2))).collect();
            let (sigma, u, v) = assignment_with_duals(&cost, n)?;
            let mut seen = vec![false; n];
            for (i, &j) in sigma.iter().enumerate() {
                assert!(!seen[j], "column {j} used twice");
                seen[j] = true;
                assert!((cost[i * n + j] - u[i] - v[j]).abs() < 1e-9, "not tight at ({i}, {j})");
            }
            for i in 0..n {
                for j in 0..n {
                    assert!(cost[i * n + j] - u[i] - v[j] > -1e-9, "infeasible at ({i}, {j})");
                }
            }
        }
        Ok(())
    }
}
