//! The instantaneous change of variables (Chen et al. 2018, Thm. 1): along x' = v(t, x) the
//! density obeys d/dt log p_t(x(t)) = −∇·v(t, x(t)) — the continuity equation read along a
//! characteristic. So for a flow from `t_from` to `t_to`,
//!
//!   log p_{t_from}(x) = log p_{t_to}(x(t_to)) + ∫_{t_from}^{t_to} ∇·v(t, x(t)) dt,
//!
//! in either time direction. CNFs, flow matching (source at t = 0, data at t = 1) and the
//! probability-flow ODE of a diffusion all evaluate likelihoods this way; each supplies (v, ∇·v).

use crate::error::Result;
use crate::solve::{solve, SolveConfig, Steps};
use crate::solver::Method;
use candle_core::Tensor;

/// A field returning (v(t, x), ∇·v(t, x)).
pub type DivergenceField<'a> = dyn Fn(f64, &Tensor) -> Result<(Tensor, Tensor)> + 'a;

/// (x(t_to), ∫_{t_from}^{t_to} ∇·v dt) for x(t_from) = `x` of shape (B, d); the integral has
/// shape (B, 1). `field(t, x)` returns (v, ∇·v) with ∇·v of shape (B, 1). Fixed grid of `steps`
/// steps of `method`; nothing is recorded for backprop.
pub fn integrate_divergence(
    field: &DivergenceField,
    method: Method,
    x: &Tensor,
    t_from: f64,
    t_to: f64,
    steps: usize,
) -> Result<(Tensor, Tensor)> {
    let augmented = |t: f64, s: &(Tensor, Tensor)| field(t, &s.0);
    let start = (x.detach(), Tensor::zeros((x.dim(0)?, 1), x.dtype(), x.device())?);
    let sol = solve(&augmented, method, &start, &SolveConfig::new(Steps::uniform(t_from, t_to, steps)?))?;
    Ok(sol.last().clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    /// v = a·x in d dimensions pushes N(0, 1) at t = 0 to N(0, e^{2a}) at t = 1: the density
    /// change must equal the closed form.
    #[test]
    fn linear_flow_matches_gaussian_density() -> Result<()> {
        let (a, d) = (0.7, 3usize);
        let x = Tensor::new(&[[0.3f64, -1.0, 2.0], [0.0, 0.5, -0.2]], &Device::Cpu)?;
        let field =
            |_t: f64, x: &Tensor| -> Result<(Tensor, Tensor)> { Ok(((x * a)?, Tensor::full(a * d as f64, (x.dim(0)?, 1), &Device::Cpu)?)) };
        // backwards: from data at t = 1 to the N(0, 1) source at t = 0
        let (z, div) = integrate_divergence(&field, Method::Rk4, &x, 1.0, 0.0, 40)?;
        let log_n = |v: &Tensor, var: f64| -> Result<Vec<f64>> {
            Ok(v.sqr()?
                .sum(1)?
                .to_vec1::<f64>()?
                .iter()
                .map(|s| -0.5 * s / var - 0.5 * d as f64 * (2.0 * std::f64::consts::PI * var).ln())
                .collect())
        };
        let estimate: Vec<f64> = log_n(&z, 1.0)?.iter().zip(div.flatten_all()?.to_vec1::<f64>()?).map(|(l, i)| l + i).collect();
        let exact = log_n(&x, (2.0 * a).exp())?;
        for (e, x) in estimate.iter().zip(&exact) {
            assert!((e - x).abs() < 1e-6, "{e} vs {x}");
        }
        assert_eq!(z.dtype(), DType::F64);
        Ok(())
    }
}
