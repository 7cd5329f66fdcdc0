//! The two traits a model implements: [`Trainable`], what the training loop needs, and
//! [`ContinuousFlow`], what every continuous normalizing flow offers its users (velocity,
//! encoding, sampling, log-likelihood) whatever it is trained by.

use crate::metrics::Metrics;
use candle_core::{DType, Tensor};
use ode_solvers::{solve, Method, OdeTerm, SolveConfig, State, Steps};

/// A model trained by integrating an ODE over data (maximum likelihood, OT-Flow's penalties):
/// the loop draws a minibatch, builds `initial_state`, integrates `dynamics` from t = 0 to 1 with
/// the configured gradient mode, and minimises `loss` of the final state.
pub trait Trainable {
    /// The integrated state (x plus the model's accumulators).
    type State: State;
    /// The model's own error type.
    type Error: std::error::Error + Send + Sync + 'static;
    /// The training dynamics evaluated in `dtype` (parameters cast differentiably); `seed` drives
    /// any draw they make (Hutchinson probes), so a resumed run draws the same ones.
    fn dynamics(&self, dtype: DType, seed: u64) -> Result<Box<dyn OdeTerm<Self::State> + '_>, Self::Error>;
    /// The state at t = 0 for a data batch.
    fn initial_state(&self, x: &Tensor) -> Result<Self::State, Self::Error>;
    /// The training loss at the final state, a scalar tensor.
    fn loss(&self, z: &Self::State) -> Result<Tensor, Self::Error>;
    /// Named figures on held-out `x` with `steps` steps and no graph; the objective selects the
    /// best parameters.
    fn validate(&self, x: &Tensor, steps: usize) -> Result<Metrics, Self::Error>;
}

/// A flow x' = v(x, t) from data (t = 0) to a standard normal latent (t = 1).
pub trait ContinuousFlow {
    /// The model's own error type.
    type Error: std::error::Error + Send + Sync + 'static + From<ode_solvers::SolverError>;
    /// Data dimension d.
    fn dim(&self) -> usize;
    /// The velocity v(x, t) without a graph, evaluated in `dtype`.
    fn velocity(&self, dtype: DType) -> Result<Box<dyn OdeTerm<Tensor> + '_>, Self::Error>;
    /// log p(x) per sample with `steps` RK4 steps (instantaneous change of variables), no
    /// graph; shape (B, 1).
    fn log_prob(&self, x: &Tensor, steps: usize) -> Result<Tensor, Self::Error>;

    /// z = T(x): data to latent with `steps` RK4 steps.
    fn encode(&self, x: &Tensor, steps: usize) -> Result<Tensor, Self::Error> {
        flow(&*self.velocity(x.dtype())?, x, 0.0, 1.0, steps)
    }
    /// x = T⁻¹(z): latent to data (samples when z ~ N(0, I)).
    fn sample(&self, z: &Tensor, steps: usize) -> Result<Tensor, Self::Error> {
        flow(&*self.velocity(z.dtype())?, z, 1.0, 0.0, steps)
    }
}

/// Integrates `v` from `t0` to `t1` with RK4 and no graph.
fn flow<E: From<ode_solvers::SolverError>>(v: &dyn OdeTerm<Tensor>, x: &Tensor, t0: f64, t1: f64, steps: usize) -> Result<Tensor, E> {
    Ok(solve(v, Method::Rk4, &x.detach(), &SolveConfig::new(Steps::uniform(t0, t1, steps)?))?.last().clone())
}
