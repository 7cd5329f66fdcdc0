//! The loss terms of "A Neural Network Approach for Stochastic Optimal Control" (NeuralSOC's
//! `loss.py`), on a sampled [`Trajectory`] with step Δs, averaged over the batch:
//!
//! - control objective J = Σᵢ Δs L(sᵢ, zᵢ, u*ᵢ) + g(z_N), with u*ᵢ = u*(sᵢ, zᵢ, ∇Φ_θ(sᵢ, zᵢ));
//! - terminal penalties |Φ_θ(T, z_N) − g(z_N)| and ‖∇Φ_θ(T, z_N) − ∇g(z_N)‖₁;
//! - HJB residual Σᵢ Δs |∂ₛΦ_θ + ½tr(σσᵀ∇²Φ_θ) + H(sᵢ, zᵢ, ∇Φ_θ)|;
//! - BSDE penalty Σᵢ Δs |Φ_{i+1} − Φᵢ − (∇Φᵢ·bᵢ − Hᵢ)Δs − ∇Φᵢ·σΔWᵢ|, Itô's formula for Φ along
//!   paths with drift bᵢ: with the PMP drift bᵢ = f(u*ᵢ) the bracket is −Lᵢ (the paper's form);
//!   with the random walk bᵢ = 0 it is −Hᵢ (the reference code's L ↦ −‖u‖² substitution);
//! - |Φ_θ(0, z₀) − J|, J the batch mean (as the reference code).
//!
//! The reference's BSDE term uses the batch mean of L inside each path's residual; here each path
//! uses its own Lᵢ, which is what the equation says.

use crate::error::Result;
use crate::problem::{expect_finite, ControlProblem, Diffusion};
use crate::sampler::Trajectory;
use candle_core::Tensor;
use serde::{Deserialize, Serialize};
use tensor_core::nets::Potential;
use train::Metrics;

/// The weights β of the loss terms (the reference's `--beta`, in its order: BSDE, terminal value,
/// terminal gradient, HJB, J, Φ(0) − J).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SocWeights {
    pub bsde: f64,
    pub terminal: f64,
    pub terminal_grad: f64,
    pub hjb: f64,
    pub objective: f64,
    pub initial_value: f64,
}

impl SocWeights {
    /// `train_100d.py`'s default β = (1, 1, 1, 0, 1, 1).
    pub fn reference() -> Self {
        Self { bsde: 1.0, terminal: 1.0, terminal_grad: 1.0, hjb: 0.0, objective: 1.0, initial_value: 1.0 }
    }

    /// For random-walk paths: the BSDE and terminal terms of [`SocWeights::reference`] only (J and
    /// Φ(0) − J along paths that ignore the control are not the control objective).
    pub fn random_walk() -> Self {
        Self { objective: 0.0, initial_value: 0.0, ..Self::reference() }
    }

    /// Checks every weight is finite and non-negative and one is positive.
    pub fn check(&self) -> Result<()> {
        let w = self.as_array();
        if w.iter().any(|v| !v.is_finite() || *v < 0.0) || w.iter().all(|v| *v == 0.0) {
            return Err(crate::SocError::Config(format!("loss weights must be finite, non-negative and not all zero: {self:?}")));
        }
        Ok(())
    }

    fn as_array(&self) -> [f64; 6] {
        [self.bsde, self.terminal, self.terminal_grad, self.hjb, self.objective, self.initial_value]
    }
}

/// Every term as a scalar tensor (differentiable), and their weighted sum.
pub struct SocCosts {
    pub total: Tensor,
    /// J = running + terminal.
    pub objective: Tensor,
    pub running: Tensor,
    pub terminal: Tensor,
    pub terminal_value: Tensor,
    pub terminal_grad: Tensor,
    pub hjb: Tensor,
    pub bsde: Tensor,
    pub initial_value: Tensor,
    /// Batch mean of Φ_θ(0, z₀).
    pub phi0: Tensor,
}

/// tr(σσᵀ∇²Φ) at (s, z): σ²ΔΦ for σ = s·I, Σₖ σₖ² ∂ₖₖΦ by d Hessian-vector products otherwise.
fn diffusion_trace(diffusion: &Diffusion, phi: &Potential, s: f64, z: &Tensor, laplacian: &Tensor) -> Result<Tensor> {
    if let Some(c) = diffusion.isotropic() {
        return Ok((laplacian * (c * c))?);
    }
    let Diffusion::Diagonal(sig) = diffusion else { unreachable!("isotropic handled above") };
    let (b, d) = z.dims2()?;
    let t = Tensor::new(s, z.device())?;
    let mut acc = laplacian.zeros_like()?;
    for (k, sk) in sig.iter().enumerate().filter(|(_, sk)| **sk != 0.0) {
        let e =
            Tensor::zeros((b, d), z.dtype(), z.device())?.slice_assign(&[0..b, k..k + 1], &Tensor::ones((b, 1), z.dtype(), z.device())?)?;
        acc = (acc + (phi.hessian_vector_product(z, &t, &e)?.narrow(1, k, 1)? * (sk * sk))?)?;
    }
    Ok(acc)
}

/// The loss terms of `traj` (sampled with `phi`), weighted by `weights`.
pub fn costs(problem: &dyn ControlProblem, phi: &Potential, traj: &Trajectory, weights: &SocWeights) -> Result<SocCosts> {
    let ds = traj.step();
    let n = traj.times.len() - 1;
    let zero = Tensor::zeros((), traj.states[0].dtype(), traj.states[0].device())?;
    let (mut running, mut hjb, mut bsde) = (zero.clone(), zero.clone(), zero.clone());
    for i in 0..n {
        let (s, z, p) = (traj.times[i], &traj.states[i], &traj.points[i]);
        let u = problem.feedback(s, z, &p.grad)?;
        let l = problem.running_cost(s, z, &u)?;
        running = (running + (l.mean_all()? * ds)?)?;
        let h = problem.hamiltonian(s, z, &p.grad)?;
        let trace = diffusion_trace(problem.diffusion(), phi, s, z, &p.laplacian)?;
        let residual = ((&p.dt + (trace * 0.5)?)? + &h)?;
        hjb = (hjb + (residual.abs()?.mean_all()? * ds)?)?;
        let predicted = ((p.grad.mul(&traj.drifts[i])?.sum_keepdim(1)? - &h)? * ds)?;
        let martingale = p.grad.mul(&traj.noise[i])?.sum_keepdim(1)?;
        let r = (((&traj.points[i + 1].value - &p.value)? - predicted)? - martingale)?;
        bsde = (bsde + (r.abs()?.mean_all()? * ds)?)?;
    }
    let last = &traj.points[n];
    let (g, grad_g) = problem.terminal_cost(&traj.states[n])?;
    expect_finite(&g, "terminal cost g at the end of the paths")?;
    let terminal = g.mean_all()?;
    let objective = (&running + &terminal)?;
    let terminal_value = (&last.value - &g)?.abs()?.mean_all()?;
    let terminal_grad = (&last.grad - &grad_g)?.abs()?.sum_keepdim(1)?.mean_all()?;
    let phi0 = traj.points[0].value.mean_all()?;
    let initial_value = traj.points[0].value.broadcast_sub(&objective)?.abs()?.mean_all()?;
    let terms = [&bsde, &terminal_value, &terminal_grad, &hjb, &objective, &initial_value];
    let mut total = zero;
    for (t, w) in terms.into_iter().zip(weights.as_array()) {
        if w != 0.0 {
            total = (total + (t * w)?)?;
        }
    }
    Ok(SocCosts { total, objective, running, terminal, terminal_value, terminal_grad, hjb, bsde, initial_value, phi0 })
}

impl SocCosts {
    /// The terms as named figures; the objective is the loss `total`.
    pub fn metrics(&self) -> Result<Metrics> {
        Ok(Metrics::from_scalars(
            "loss",
            &[
                ("loss", &self.total),
                ("J", &self.objective),
                ("running", &self.running),
                ("terminal", &self.terminal),
                ("phi0", &self.phi0),
                ("hjb", &self.hjb),
                ("bsde", &self.bsde),
                ("terminal_value", &self.terminal_value),
                ("terminal_grad", &self.terminal_grad),
                ("initial_value", &self.initial_value),
            ],
        )?)
    }
}
