//! Exact linear assignment: the permutation σ minimising Σ_i C[i, σ(i)] for a square cost
//! matrix, by the Hungarian method with potentials and shortest augmenting paths (Kuhn 1955;
//! Jonker & Volgenant 1987), O(n³). Minibatch OT pairs are a permutation, never draws with
//! replacement.

use crate::error::{FmError, Result};

/// σ with σ[i] the column assigned to row i; `cost` is row-major n × n.
pub fn exact_assignment(cost: &[f64], n: usize) -> Result<Vec<usize>> {
    if cost.len() != n * n {
        return Err(FmError::Config(format!("assignment needs an n×n cost, got {} entries for n = {n}", cost.len())));
    }
    if let Some(i) = cost.iter().position(|c| !c.is_finite()) {
        return Err(FmError::Config(format!("non-finite cost at ({}, {})", i / n, i % n)));
    }
    // 1-based arrays as in the classic formulation; p[j] = row matched to column j
    let (mut u, mut v) = (vec![0f64; n + 1], vec![0f64; n + 1]);
    let (mut p, mut way) = (vec![0usize; n + 1], vec![0usize; n + 1]);
    for i in 1..=n {
        p[0] = i;
        let mut j0 = 0;
        let mut minv = vec![f64::INFINITY; n + 1];
        let mut used = vec![false; n + 1];
        loop {
            used[j0] = true;
            let (i0, mut delta, mut j1) = (p[j0], f64::INFINITY, 0);
            for j in 1..=n {
                if !used[j] {
                    let cur = cost[(i0 - 1) * n + (j - 1)] - u[i0] - v[j];
                    if cur < minv[j] {
                        minv[j] = cur;
                        way[j] = j0;
                    }
                    if minv[j] < delta {
                        delta = minv[j];
                        j1 = j;
                    }
                }
            }
            for j in 0..=n {
                if used[j] {
                    u[p[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
            if p[j0] == 0 {
                break;
            }
        }
        loop {
            let j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    let mut sigma = vec![0usize; n];
    for j in 1..=n {
        sigma[p[j] - 1] = j - 1;
    }
    Ok(sigma)
}
