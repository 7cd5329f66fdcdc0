//! Constraint manifolds M = {x ∈ ℝᵈ : h(x) = 0}, h: ℝᵈ → ℝᵏ (k = d − m, the codimension), given by
//! h and its Jacobian J = ∂h/∂x (k × d, full rank on M). The normal space at x is the row space
//! of J, and P_N = Jᵀ(JJᵀ)⁻¹J projects onto it.

use crate::error::{LiftError, Result};
use nalgebra::{DMatrix, DVector};

/// A constraint manifold in ℝᵈ.
pub trait Manifold {
    /// Ambient dimension d.
    fn ambient_dim(&self) -> usize;
    /// Codimension k (the number of constraints).
    fn codim(&self) -> usize;
    /// h(x), k values.
    fn constraint(&self, x: &[f64]) -> DVector<f64>;
    /// J(x) = ∂h/∂x, k × d.
    fn jacobian(&self, x: &[f64]) -> DMatrix<f64>;
    /// The reach (the largest σ for which the nearest point on M is unique within distance σ),
    /// where known.
    fn reach(&self) -> Option<f64> {
        None
    }
}

/// P_N(x) = Jᵀ(JJᵀ)⁻¹J, d × d: the orthogonal projector onto the normal space at x.
pub fn normal_projector<M: Manifold + ?Sized>(m: &M, x: &[f64]) -> Result<DMatrix<f64>> {
    let j = m.jacobian(x);
    let gram = (&j * j.transpose()).cholesky().ok_or_else(|| LiftError::Singular(x.to_vec()))?;
    Ok(j.transpose() * gram.solve(&j))
}

/// The minimum-norm correction δ with J(x)δ = −h(x): δ = −Jᵀ(JJᵀ)⁻¹h (one Gauss–Newton step
/// towards M along the normal space).
pub(crate) fn newton_step<M: Manifold + ?Sized>(m: &M, x: &[f64]) -> Result<DVector<f64>> {
    let j = m.jacobian(x);
    let gram = (&j * j.transpose()).cholesky().ok_or_else(|| LiftError::Singular(x.to_vec()))?;
    Ok(-(j.transpose() * gram.solve(&m.constraint(x))))
}

/// Checks a point has dimension `dim` and finite coordinates.
pub(crate) fn check_point(dim: usize, x: &[f64]) -> Result<()> {
    if x.len() != dim {
        return Err(LiftError::Input(format!("a point of dimension {} on a manifold in ℝ^{dim}", x.len())));
    }
    if let Some(v) = x.iter().find(|v| !v.is_finite()) {
        return Err(LiftError::Input(format!("non-finite coordinate {v} in {x:?}")));
    }
    Ok(())
}
