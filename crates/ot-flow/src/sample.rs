//! Encoding (data → latent, t: 0 → 1) and sampling (latent → data, t: 1 → 0) along
//! x' = −∇ₓΦ/α₀ with RK4, without recording a graph; and evaluation metrics.

use mixed_precision_adjoint::Result;
use crate::loss::costs;
use crate::model::OtFlow;
use candle_core::{DType, Tensor};
use ode_solvers::{solve, Method, SolveConfig, Steps};

fn flow(model: &OtFlow, x: &Tensor, t0: f64, t1: f64, steps: usize) -> Result<Tensor> {
    let frozen = OtFlow { phi: model.phi.detach()?, config: model.config };
    let v = frozen.velocity(x.dtype())?;
    Ok(solve(&v, Method::Rk4, &x.detach(), &SolveConfig::new(Steps::uniform(t0, t1, steps)?))?.last().clone())
}

/// T(x): data to latent.
pub fn encode(model: &OtFlow, x: &Tensor, steps: usize) -> Result<Tensor> {
    flow(model, x, 0.0, 1.0, steps)
}

/// T⁻¹(z): latent to data (samples when z ~ N(0, I)).
pub fn sample(model: &OtFlow, z: &Tensor, steps: usize) -> Result<Tensor> {
    flow(model, z, 1.0, 0.0, steps)
}

/// Mean ‖T⁻¹(T(x)) − x‖ over the batch.
pub fn inverse_error(model: &OtFlow, x: &Tensor, steps: usize) -> Result<f64> {
    let back = sample(model, &encode(model, x, steps)?, steps)?;
    Ok((back - x)?.sqr()?.sum_keepdim(1)?.sqrt()?.mean_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?)
}

/// Evaluation with `steps` RK4 steps and no graph: (J, L, C = NLL in nats, R).
pub fn evaluate(model: &OtFlow, x: &Tensor, steps: usize) -> Result<[f64; 4]> {
    let frozen = OtFlow { phi: model.phi.detach()?, config: model.config };
    let dynamics = frozen.dynamics(x.dtype())?;
    let z = solve(&dynamics, Method::Rk4, &OtFlow::initial_state(&x.detach())?, &SolveConfig::new(Steps::uniform(0.0, 1.0, steps)?))?;
    costs(model.config.alpha, z.last())?.values()
}

/// log p(x) = log N(x(1)) + ℓ(1) per sample with `steps` RK4 steps and the exact Laplacian,
/// no graph; shape (B, 1).
pub fn log_prob(model: &OtFlow, x: &Tensor, steps: usize) -> Result<Tensor> {
    let frozen = OtFlow { phi: model.phi.detach()?, config: model.config };
    let dynamics = frozen.dynamics(x.dtype())?;
    let z = solve(&dynamics, Method::Rk4, &OtFlow::initial_state(&x.detach())?, &SolveConfig::new(Steps::uniform(0.0, 1.0, steps)?))?;
    let (x1, l1, _, _) = z.last();
    Ok((tensor_core::stats::standard_normal_log_prob(x1)? + l1)?)
}
