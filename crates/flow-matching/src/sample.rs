//! Sampling by integrating the learned velocity from t = 0 (source) to t = 1 (data) with any
//! `ode-solvers` method, and the quality metrics of the lecture notes' comparison: exact W2 and the
//! kinetic energy E∫‖v‖² dt of the paths (straight paths cost least).

use crate::error::{FmError, Result};
use crate::ot::{transport, OtSolver};
use candle_core::{DType, Tensor};
use ode_solvers::log_density::integrate_divergence;
use ode_solvers::path_energy::path_energy;
use ode_solvers::{solve, time_net_field, Method, SolveConfig, Stats, Steps};
use tensor_core::nets::{TimeLayer, TimeNet};
use tensor_core::stats::{sq_distances, standard_normal_log_prob};

/// x(1) from x(0) = `z` along v_θ, with the solver's statistics (NFE).
pub fn sample<L: TimeLayer>(net: &TimeNet<L>, z: &Tensor, method: Method, steps: Steps) -> Result<(Tensor, Stats)> {
    let v = time_net_field(net.detach()?);
    let sol = solve(&v, method, &z.detach(), &SolveConfig::new(steps))?;
    Ok((sol.last().clone(), sol.stats))
}

/// log p₁(x) of the learned flow's data-side density for each row of `x`, shape (B, 1), with
/// the source N(0, I) at t = 0: integrate back from t = 1 to 0 with the exact trace (d tangents,
/// for small d) and `steps` RK4 steps, log p₁(x) = log N(x(0)) + ∫₁⁰ ∇·v dt.
pub fn log_prob<L: TimeLayer>(net: &TimeNet<L>, x: &Tensor, steps: usize) -> Result<Tensor> {
    let frozen = net.detach()?;
    let field = |t: f64, x: &Tensor| -> ode_solvers::Result<(Tensor, Tensor)> {
        Ok(frozen.exact_trace(x, &Tensor::new(t, x.device())?.to_dtype(x.dtype())?)?)
    };
    let (z, integral) = integrate_divergence(&field, Method::Rk4, x, 1.0, 0.0, steps)?;
    Ok((standard_normal_log_prob(&z)? + integral)?)
}

/// E∫₀¹‖v(x(t), t)‖² dt along the flow from `z`, RK4 with `steps` steps.
pub fn kinetic_energy<L: TimeLayer>(net: &TimeNet<L>, z: &Tensor, steps: usize) -> Result<f64> {
    let v = time_net_field(net.detach()?);
    Ok(path_energy(&v, Method::Rk4, z, 0.0, 1.0, steps)?.0)
}

/// The exact 2-Wasserstein distance between two equal-size point clouds (uniform weights):
/// √(min_σ (1/n) Σ‖x_i − y_σ(i)‖²), by the exact assignment. O(n³): for n up to a few thousand.
pub fn w2_exact(x: &Tensor, y: &Tensor) -> Result<f64> {
    let n = x.dim(0)?;
    if y.dim(0)? != n || n == 0 {
        return Err(FmError::Config(format!("exact W2 needs equal non-empty samples, got {n} and {}", y.dim(0)?)));
    }
    let c = sq_distances(&x.to_dtype(DType::F64)?, &y.to_dtype(DType::F64)?)?;
    Ok(transport(&c, OtSolver::Exact)?.cost.sqrt())
}
