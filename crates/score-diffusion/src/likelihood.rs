//! Exact likelihood through the probability-flow ODE (Song et al. 2021, Sec. 4.3; Ruthotto, "PDE Framework for Generative Modeling":
//! "exact likelihood computation"): with v = f(t)x − ½g(t)² s(x, t),
//! ∇·v = d f(t) − ½g(t)² ∇·s, and by the instantaneous change of variables
//!
//!   log p_{t_min}(x) = log N(x(t_max); 0, s²I) + ∫_{t_min}^{t_max} ∇·v dt.
//!
//! ∇·s is exact (d tangents of the network, or the closed form for a mixture) or Hutchinson's
//! estimate with one Rademacher probe held fixed over the solve.

use crate::error::{DiffusionError, Result};
use crate::score::Score;
use crate::sde::ForwardSde;
use candle_core::Tensor;
use ode_solvers::log_density::integrate_divergence;
use ode_solvers::Method;
use tensor_core::SeededRng;

/// How ∇·s is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Divergence {
    Exact,
    /// One Rademacher probe drawn from `seed`, fixed for the solve.
    Hutchinson {
        seed: u64,
    },
}

/// log p_{t_min}(x) per row of `x` (B, d), shape (B, 1), with `steps` steps of `method` from
/// t_min to t_max.
pub fn log_prob(
    score: &dyn Score,
    sde: &ForwardSde,
    x: &Tensor,
    t_min: f64,
    method: Method,
    steps: usize,
    divergence: Divergence,
) -> Result<Tensor> {
    let (_, d) = x.dims2()?;
    let t_max = sde.t_max();
    if !(t_min > 0.0 && t_min < t_max) {
        return Err(DiffusionError::Config(format!("likelihood needs 0 < t_min < t_max = {t_max}, got {t_min}")));
    }
    let probe = match divergence {
        Divergence::Exact => None,
        Divergence::Hutchinson { seed } => Some(SeededRng::new(seed).rademacher(x.dims(), x.dtype(), x.device())?),
    };
    let field = |t: f64, x: &Tensor| -> ode_solvers::Result<(Tensor, Tensor)> {
        let (s, div_s) = score.score_and_divergence(x, t, probe.as_ref())?;
        let (f, g2) = (sde.drift_coefficient(t), sde.diffusion_squared(t));
        let v = ((x * f)? - (s * (0.5 * g2))?)?;
        let div = (div_s * (-0.5 * g2))?.affine(1.0, d as f64 * f)?;
        Ok((v, div))
    };
    let (z, integral) = integrate_divergence(&field, method, x, t_min, t_max, steps)?;
    let std = sde.prior_std();
    let prior =
        (z.sqr()?.sum_keepdim(1)? * (-0.5 / (std * std)))?.affine(1.0, -0.5 * d as f64 * (2.0 * std::f64::consts::PI * std * std).ln())?;
    Ok((prior + integral)?)
}
