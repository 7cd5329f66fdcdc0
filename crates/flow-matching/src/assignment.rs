//! Exact linear assignment: the permutation σ minimising Σ_i C[i, σ(i)] for a square cost
//! matrix, by Jonker & Volgenant's algorithm ("A shortest augmenting path algorithm for dense and
//! sparse linear assignment problems", Computing 1987) in its dense form (the LAPJV layout of
//! the `lap` package), with column prices v:
//!
//! 1. column reduction: v_j = min_i C[i, j], each column given to its cheapest row while that row
//!    is free; reduction transfer lowers the price of a row's only column by the row's margin;
//! 2. augmenting row reduction, twice: a free row takes its cheapest column at reduced cost
//!    C[i, j] − v_j, lowering that column's price by the gap to its second cheapest, and evicts
//!    the column's owner (most free rows are settled here, without a search);
//! 3. augmentation: one Dijkstra search per row still free over the reduced costs, the columns
//!    kept in one array partitioned into done / equal-minimum frontier / unscanned, and prices
//!    updated once per search.
//!
//! O(n³) in the worst case; a few times n² in practice. Minibatch OT pairs are a permutation,
//! never draws with replacement.

use crate::error::{FmError, Result};

/// σ with σ[i] the column assigned to row i; `cost` is row-major n × n.
pub fn exact_assignment(cost: &[f64], n: usize) -> Result<Vec<usize>> {
    Ok(assignment_with_prices(cost, n)?.0)
}

/// No row or column yet.
const NONE: usize = usize::MAX;

/// σ and the column prices v: every row's assigned column minimises C[i, j] − v_j over j (the
/// optimality certificate, with u_i = C[i, σ(i)] − v_σ(i) the row duals).
fn assignment_with_prices(cost: &[f64], n: usize) -> Result<(Vec<usize>, Vec<f64>)> {
    if cost.len() != n * n {
        return Err(FmError::Config(format!("assignment needs an n×n cost, got {} entries for n = {n}", cost.len())));
    }
    if let Some(i) = cost.iter().position(|c| !c.is_finite()) {
        return Err(FmError::Config(format!("non-finite cost at ({}, {})", i / n, i % n)));
    }
    let mut lap = Lap { cost, n, col4row: vec![NONE; n], row4col: vec![NONE; n], v: vec![f64::INFINITY; n] };
    let mut free = lap.column_reduction();
    for _ in 0..2 {
        if free.is_empty() {
            break;
        }
        free = lap.augmenting_row_reduction(free);
    }
    lap.augment(&free);
    Ok((lap.col4row, lap.v))
}

/// The state of one solve.
struct Lap<'a> {
    cost: &'a [f64],
    n: usize,
    col4row: Vec<usize>,
    row4col: Vec<usize>,
    /// Column prices.
    v: Vec<f64>,
}

impl Lap<'_> {
    /// Column reduction and reduction transfer; returns the free rows.
    fn column_reduction(&mut self) -> Vec<usize> {
        let (n, cost) = (self.n, self.cost);
        let row = |i: usize| &cost[i * n..(i + 1) * n];
        for i in 0..n {
            for (j, &c) in row(i).iter().enumerate() {
                if c < self.v[j] {
                    self.v[j] = c;
                    self.row4col[j] = i;
                }
            }
        }
        let mut unique = vec![true; n];
        for j in (0..n).rev() {
            let i = self.row4col[j];
            if self.col4row[i] == NONE {
                self.col4row[i] = j;
            } else {
                unique[i] = false;
                self.row4col[j] = NONE;
            }
        }
        let mut free = Vec::new();
        for (i, &alone) in unique.iter().enumerate() {
            if self.col4row[i] == NONE {
                free.push(i);
            } else if alone {
                // the row's margin over its other columns moves into its column's price
                let j = self.col4row[i];
                let margin =
                    row(i).iter().zip(&self.v).enumerate().filter(|&(k, _)| k != j).map(|(_, (c, v))| c - v).fold(f64::INFINITY, f64::min);
                if margin.is_finite() {
                    self.v[j] -= margin;
                }
            }
        }
        free
    }

    /// One pass of augmenting row reduction over `free`; returns the rows still free.
    fn augmenting_row_reduction(&mut self, mut free: Vec<usize>) -> Vec<usize> {
        let n = self.n;
        let (mut current, mut kept, mut passes) = (0usize, 0usize, 0usize);
        let total = free.len();
        while current < total {
            passes += 1;
            let i = free[current];
            current += 1;
            // cheapest and second cheapest reduced cost of row i
            let (mut j1, mut u1, mut j2, mut u2) = (0, self.cost[i * n] - self.v[0], NONE, f64::INFINITY);
            for j in 1..n {
                let c = self.cost[i * n + j] - self.v[j];
                if c < u2 {
                    if c >= u1 {
                        (u2, j2) = (c, j);
                    } else {
                        (u2, j2, u1, j1) = (u1, j1, c, j);
                    }
                }
            }
            let mut owner = self.row4col[j1];
            let lowered = self.v[j1] - (u2 - u1);
            let lowers = lowered < self.v[j1];
            if passes < current * n {
                if lowers {
                    self.v[j1] = lowered;
                } else if owner != NONE && j2 != NONE {
                    j1 = j2;
                    owner = self.row4col[j2];
                }
                if owner != NONE {
                    if lowers {
                        // the evicted row is reduced again at once
                        current -= 1;
                        free[current] = owner;
                    } else {
                        free[kept] = owner;
                        kept += 1;
                    }
                }
            } else if owner != NONE {
                free[kept] = owner;
                kept += 1;
            }
            self.col4row[i] = j1;
            self.row4col[j1] = i;
        }
        free.truncate(kept);
        free
    }

    /// A shortest augmenting path from each free row, then the swap along it.
    fn augment(&mut self, free: &[usize]) {
        let n = self.n;
        let mut pred = vec![0usize; n];
        let (mut cols, mut dist) = (vec![0usize; n], vec![0f64; n]);
        for &start in free {
            let mut j = self.shortest_path(start, &mut pred, &mut cols, &mut dist);
            loop {
                let i = pred[j];
                self.row4col[j] = i;
                let previous = std::mem::replace(&mut self.col4row[i], j);
                if i == start {
                    break;
                }
                j = previous;
            }
        }
    }

    /// Dijkstra from row `start` over reduced costs; returns the free column reached and leaves
    /// the path in `pred`. `cols` is partitioned as [done | frontier (lo..hi) | unscanned].
    fn shortest_path(&mut self, start: usize, pred: &mut [usize], cols: &mut [usize], dist: &mut [f64]) -> usize {
        let n = self.n;
        for j in 0..n {
            cols[j] = j;
            pred[j] = start;
            dist[j] = self.cost[start * n + j] - self.v[j];
        }
        let (mut lo, mut hi, mut done) = (0usize, 0usize, 0usize);
        let sink = 'search: loop {
            if lo == hi {
                // a new frontier: every unscanned column at the smallest distance
                done = lo;
                hi = lo + 1;
                let mut least = dist[cols[lo]];
                // hi moves as equal columns join the frontier; the sweep still runs to n
                let first = hi;
                for k in first..n {
                    let j = cols[k];
                    if dist[j] <= least {
                        if dist[j] < least {
                            hi = lo;
                            least = dist[j];
                        }
                        cols[k] = cols[hi];
                        cols[hi] = j;
                        hi += 1;
                    }
                }
                if let Some(&j) = cols[lo..hi].iter().find(|&&j| self.row4col[j] == NONE) {
                    break 'search j;
                }
            }
            // scan the frontier's rows
            while lo != hi {
                let j = cols[lo];
                lo += 1;
                let i = self.row4col[j];
                let least = dist[j];
                let h = self.cost[i * n + j] - self.v[j] - least;
                let unscanned = hi;
                for k in unscanned..n {
                    let j = cols[k];
                    let reduced = self.cost[i * n + j] - self.v[j] - h;
                    if reduced < dist[j] {
                        dist[j] = reduced;
                        pred[j] = i;
                        if reduced == least {
                            if self.row4col[j] == NONE {
                                lo -= 1;
                                break 'search j;
                            }
                            cols[k] = cols[hi];
                            cols[hi] = j;
                            hi += 1;
                        }
                    }
                }
            }
        };
        // prices of the columns finished in this search
        let least = dist[cols[lo]];
        for &j in &cols[..done] {
            self.v[j] += dist[j] - least;
        }
        sink
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;
    use tensor_core::SeededRng;

    /// On clustered, uniform and tied integer costs (n = 300), the prices certify optimality: with
    /// u_i = C[i, σ(i)] − v_σ(i), u_i + v_j ≤ C[i, j] everywhere (tight on the assignment by
    /// construction), so no other permutation costs less.
    #[test]
    fn duals_certify_optimality() -> Result<()> {
        let mut rng = SeededRng::new(7);
        let n = 300;
        let mut cases = Vec::new();
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
            cases.push(x.iter().flat_map(|a| y.iter().map(move |b| (a.0 - b.0).powi(2) + (a.1 - b.1).powi(2))).collect::<Vec<f64>>());
        }
        // small integers: ties everywhere, where the row reduction's evictions could cycle
        cases.push((0..n * n).map(|_| rng.inner().random_range(0..4) as f64).collect());
        for cost in cases {
            let (sigma, v) = assignment_with_prices(&cost, n)?;
            let mut seen = vec![false; n];
            for &j in &sigma {
                assert!(!seen[j], "column {j} used twice");
                seen[j] = true;
            }
            let u: Vec<f64> = sigma.iter().enumerate().map(|(i, &j)| cost[i * n + j] - v[j]).collect();
            for i in 0..n {
                for j in 0..n {
                    assert!(cost[i * n + j] - u[i] - v[j] > -1e-9, "infeasible at ({i}, {j})");
                }
            }
        }
        Ok(())
    }
}
