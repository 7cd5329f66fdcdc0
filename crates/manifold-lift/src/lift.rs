//! Manifold-aware noising: perturb each point only in the normal directions,
//! n | z ~ N(0, σ² P_N(z)), x = z + n. The lifted density p_σ has full support around M, so any
//! workspace model can learn it, and the nearest-point projection maps it back onto M ("the
//! normal bundle lift"; Keegan & Ruthotto, "Manifold-Aware Perturbations for Constrained
//! Generative Modeling", 2026).

use crate::error::{LiftError, Result};
use crate::manifold::check_point;
use crate::surface::Surface;
use datasets::Matrix;
use nalgebra::DVector;
use rand_distr::{Distribution, StandardNormal};
use tensor_core::SeededRng;

/// Each row of `points` (on M) plus normal noise of scale `sigma`, drawn from `seed`.
pub fn lift(m: &dyn Surface, points: &Matrix, sigma: f64, seed: u64) -> Result<Matrix> {
    if !(sigma >= 0.0 && sigma.is_finite()) {
        return Err(LiftError::Input(format!("the lift's σ must be finite and non-negative, got {sigma}")));
    }
    let mut rng = SeededRng::new(seed);
    let mut data = Vec::with_capacity(points.data.len());
    for i in 0..points.rows {
        let z: Vec<f64> = points.row(i).iter().map(|&v| v as f64).collect();
        check_point(m.ambient_dim(), &z)?;
        let xi = DVector::from_iterator(z.len(), (0..z.len()).map(|_| StandardNormal.sample(rng.inner())));
        let n = m.normal_projector(&z)? * xi * sigma;
        data.extend(z.iter().zip(n.iter()).map(|(a, b)| (a + b) as f32));
    }
    Ok(Matrix { data, rows: points.rows, cols: points.cols })
}
