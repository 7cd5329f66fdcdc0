//! The kinetic energy of a flow's paths, E∫‖v(t, x(t))‖² dt along x' = v (Benamou–Brenier;
//! Ruthotto's "Continuous-Time Deep Learning for Generative AI and High-Dim PDEs" "straight vs curvy"): the optimal-transport flow minimises it, and it equals W2²
//! of its two ends exactly when the paths are straight lines at constant speed. Independent of
//! the direction of time, so a flow integrated from data to noise and one from noise to data
//! are compared on the same footing.

use crate::error::Result;
use crate::solve::{solve, SolveConfig, Steps};
use crate::solver::Method;
use crate::term::OdeTerm;
use candle_core::{DType, Tensor};

/// (1/B) Σ_b ∫‖v‖² |dt| for the B rows of `x` at `t_from`, integrated to `t_to` with `steps`
/// steps of `method`, together with x(t_to). Nothing is recorded for backprop.
pub fn path_energy(
    velocity: &dyn OdeTerm<Tensor>,
    method: Method,
    x: &Tensor,
    t_from: f64,
    t_to: f64,
    steps: usize,
) -> Result<(f64, Tensor)> {
    let sign = if t_to >= t_from { 1.0 } else { -1.0 };
    let augmented = |t: f64, s: &(Tensor, Tensor)| -> Result<(Tensor, Tensor)> {
        let v = velocity.vector_field(t, &s.0)?;
        let e = (v.sqr()?.sum_keepdim(1)? * sign)?;
        Ok((v, e))
    };
    let start = (x.detach(), Tensor::zeros((x.dim(0)?, 1), x.dtype(), x.device())?);
    let sol = solve(&augmented, method, &start, &SolveConfig::new(Steps::uniform(t_from, t_to, steps)?))?;
    let (end, energy) = sol.last().clone();
    Ok((energy.mean_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?, end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// v = a·x: x(t) = e^{at}x₀, ∫₀¹‖v‖² = ‖x₀‖² (e^{2a} − 1)/2 · a, in both directions of time.
    #[test]
    fn linear_flow_energy_matches_closed_form() -> Result<()> {
        let a = 0.6;
        let x0 = Tensor::new(&[[1.0f64, -2.0], [0.5, 0.0]], &Device::Cpu)?;
        let v = |_t: f64, x: &Tensor| -> Result<Tensor> { Ok((x * a)?) };
        let mean_sq = (1.0 + 4.0 + 0.25) / 2.0;
        let exact = mean_sq * a * ((2.0 * a).exp() - 1.0) / 2.0;
        let (forward, x1) = path_energy(&v, Method::Rk4, &x0, 0.0, 1.0, 50)?;
        let (backward, back) = path_energy(&v, Method::Rk4, &x1, 1.0, 0.0, 50)?;
        assert!((forward - exact).abs() < 1e-8 && (backward - exact).abs() < 1e-8, "{forward} {backward} vs {exact}");
        assert!((back - x0)?.abs()?.max_all()?.to_scalar::<f64>()? < 1e-8);
        Ok(())
    }
}
