//! The nearest-point projection Π(x) = argmin_{z ∈ M} ‖x − z‖ by Gauss–Newton on h: minimum-norm
//! steps δ = −Jᵀ(JJᵀ)⁻¹h along the normal space with a backtracking line search on ‖h‖. For
//! hyperplanes, spheres and the torus the steps stay on the normal line through x, so the result
//! is the exact nearest point; for a general h it is the first-order one. A point that does not
//! converge, or lands farther than the reach from where it started (where the nearest point is
//! not unique), is flagged — counted in the report, never passed off as a projection.

use crate::error::Result;
use crate::manifold::{check_point, newton_step, Manifold};
use crate::surface::Surface;
use datasets::Matrix;

/// Settings of [`project`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProjectionConfig {
    /// Converged when ‖h(x)‖ ≤ `tol`.
    pub tol: f64,
    /// Gauss–Newton iterations at most.
    pub max_iters: usize,
}

impl Default for ProjectionConfig {
    /// ‖h‖ ≤ 1e-12, at most 50 iterations.
    fn default() -> Self {
        Self { tol: 1e-12, max_iters: 50 }
    }
}

/// One projected point.
#[derive(Clone, Debug, PartialEq)]
pub struct Projection {
    pub point: Vec<f64>,
    /// ‖h‖ at the result.
    pub violation: f64,
    /// Distance moved, ‖Π(x) − x‖.
    pub moved: f64,
    pub iterations: usize,
    /// Did not converge, or moved farther than the manifold's reach.
    pub flagged: bool,
}

/// Π(x) for one point of a constraint manifold.
pub fn project<M: Manifold + ?Sized>(m: &M, x: &[f64], cfg: &ProjectionConfig) -> Result<Projection> {
    check_point(m.ambient_dim(), x)?;
    let norm = |p: &[f64]| m.constraint(p).norm();
    let mut p = x.to_vec();
    let mut violation = norm(&p);
    let mut iterations = 0;
    while violation > cfg.tol && iterations < cfg.max_iters {
        let step = newton_step(m, &p)?;
        let mut alpha = 1.0;
        let mut accepted = false;
        for _ in 0..40 {
            let trial: Vec<f64> = p.iter().zip(step.iter()).map(|(a, d)| a + alpha * d).collect();
            let v = norm(&trial);
            if v < violation {
                (p, violation, accepted) = (trial, v, true);
                break;
            }
            alpha *= 0.5;
        }
        iterations += 1;
        if !accepted {
            break;
        }
    }
    let moved = p.iter().zip(x).map(|(a, b)| (a - b) * (a - b)).sum::<f64>().sqrt();
    let beyond_reach = m.reach().is_some_and(|r| moved > r);
    Ok(Projection { flagged: violation > cfg.tol || beyond_reach || !violation.is_finite(), point: p, violation, moved, iterations })
}

/// Constraint violation and flags of a projected batch.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct ProjectionReport {
    pub points: usize,
    /// Points that did not converge or moved beyond the reach.
    pub flagged: usize,
    /// max and mean violation (‖h‖, or the distance to a mesh) before and after projecting
    /// (after: of the returned f32 points).
    pub max_violation_before: f64,
    pub mean_violation_before: f64,
    pub max_violation_after: f64,
    pub mean_violation_after: f64,
}

/// Π of every row of `x`, with the report.
pub fn project_all(m: &dyn Surface, x: &Matrix, cfg: &ProjectionConfig) -> Result<(Matrix, ProjectionReport)> {
    let mut data = Vec::with_capacity(x.data.len());
    let mut report = ProjectionReport { points: x.rows, ..Default::default() };
    for i in 0..x.rows {
        let row: Vec<f64> = x.row(i).iter().map(|&v| v as f64).collect();
        let before = m.violation(&row)?;
        let p = m.project(&row, cfg)?;
        report.flagged += p.flagged as usize;
        report.max_violation_before = report.max_violation_before.max(before);
        report.mean_violation_before += before / x.rows as f64;
        let stored: Vec<f32> = p.point.iter().map(|&v| v as f32).collect();
        let after = m.violation(&stored.iter().map(|&v| v as f64).collect::<Vec<_>>())?;
        report.max_violation_after = report.max_violation_after.max(after);
        report.mean_violation_after += after / x.rows as f64;
        data.extend(stored);
    }
    Ok((Matrix { data, rows: x.rows, cols: x.cols }, report))
}
