//! The probability-flow ODE of a score as a continuous normalizing flow (`train::ContinuousFlow`:
//! encode, sample, log-likelihood), in the flow time s ∈ [0, 1] of the other models: diffusion
//! time τ(s) = t_min + s (t_max − t_min), data at s = 0, the prior at s = 1, and
//! dx/ds = (t_max − t_min)·(f(τ)x − ½g(τ)² s_θ(x, τ)) ("Score-Based Generative Modeling through
//! Stochastic Differential Equations", Song et al. 2021).

use crate::error::{DiffusionError, Result};
use crate::likelihood::{log_prob, Divergence};
use crate::score::Score;
use crate::sde::ForwardSde;
use candle_core::{DType, Tensor};
use ode_solvers::{solve, Method, OdeTerm, SolveConfig, Steps};
use train::ContinuousFlow;

/// A score's PF-ODE on `dim`-dimensional data, stopped at diffusion time `t_min` > 0.
pub struct ProbabilityFlowOde<'a> {
    pub score: &'a dyn Score,
    pub sde: ForwardSde,
    pub t_min: f64,
    pub dim: usize,
}

impl ProbabilityFlowOde<'_> {
    /// x(s1) from x(s0) with RK4, no graph.
    fn flow(&self, x: &Tensor, s0: f64, s1: f64, steps: usize) -> Result<Tensor> {
        let v = self.velocity(x.dtype())?;
        Ok(solve(v.as_ref(), Method::Rk4, &x.detach(), &SolveConfig::new(Steps::uniform(s0, s1, steps)?))?.last().clone())
    }

    fn span(&self) -> Result<f64> {
        let span = self.sde.t_max() - self.t_min;
        if !(self.t_min > 0.0 && span > 0.0) {
            return Err(DiffusionError::Config(format!("the PF-ODE needs 0 < t_min < t_max = {}, got {}", self.sde.t_max(), self.t_min)));
        }
        Ok(span)
    }
}

impl ContinuousFlow for ProbabilityFlowOde<'_> {
    type Error = DiffusionError;
    fn dim(&self) -> usize {
        self.dim
    }
    /// Evaluated in the state's dtype (`dtype` is the state's).
    fn velocity(&self, _dtype: DType) -> Result<Box<dyn OdeTerm<Tensor> + '_>> {
        let span = self.span()?;
        Ok(Box::new(move |s: f64, x: &Tensor| -> ode_solvers::Result<Tensor> {
            let tau = self.t_min + s * span;
            let score = self.score.score(x, tau)?;
            Ok((((x * self.sde.drift_coefficient(tau))? - (score * (0.5 * self.sde.diffusion_squared(tau)))?)? * span)?)
        }))
    }
    /// Exact divergence, `steps` RK4 steps, the prior N(0, σ²_prior I) at t_max.
    fn log_prob(&self, x: &Tensor, steps: usize) -> Result<Tensor> {
        log_prob(self.score, &self.sde, x, self.t_min, Method::Rk4, steps, Divergence::Exact)
    }
    /// The latent in standard units: x(1) divided by the prior's standard deviation.
    fn encode(&self, x: &Tensor, steps: usize) -> Result<Tensor> {
        Ok((self.flow(x, 0.0, 1.0, steps)? / self.sde.prior_std())?)
    }
    /// Samples from z ~ N(0, I), scaled to the prior's standard deviation first.
    fn sample(&self, z: &Tensor, steps: usize) -> Result<Tensor> {
        self.flow(&(z * self.sde.prior_std())?, 1.0, 0.0, steps)
    }
}
