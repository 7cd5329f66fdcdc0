//! The traits a model implements: [`Trainable`], a model trained by one ODE solve from data to
//! loss; [`Objective`], what the training loop sees of any model (a minibatch's loss and
//! gradients, validation figures) — a `Trainable` is one through [`OdeObjective`], a network of
//! several ODE blocks implements it directly; and [`ContinuousFlow`], what every continuous
//! normalizing flow offers its users (velocity, encoding, sampling, log-likelihood) whatever it
//! is trained by.

use crate::error::TrainError;
use crate::gradient_mode::{value_and_grad, GradientMode};
use crate::metrics::Metrics;
use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor};
use mixed_precision_adjoint::DynamicScaler;
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

/// What one training step knows besides the minibatch.
pub struct Step<'a> {
    /// The Runge–Kutta method and the time grid of every solve.
    pub method: Method,
    pub grid: &'a [f64],
    /// How gradients pass through the solves.
    pub mode: GradientMode,
    /// The trained parameters (every variable of the run's `VarMap`, in name order).
    pub params: &'a [Tensor],
    /// The dtype the ODE terms evaluate in (`mode.term_precision(..)` of the data's).
    pub dtype: DType,
    /// The seed of this step's draws (probes, augmentation); a resumed run gets the same.
    pub seed: u64,
}

/// A step's loss (a scalar tensor) and gradients, and whether the mixed-precision adjoint
/// flagged underflow in any solve.
pub struct StepOutput {
    pub loss: Tensor,
    pub grads: GradStore,
    pub degraded: bool,
}

/// Everything the training loop needs from a model: the loss and gradients on a minibatch (rows
/// of the training matrix) and named validation figures. [`Trainable`] models get it through
/// [`OdeObjective`]; a network of several ODE blocks joined by layers (the parabolic CNN)
/// implements it with [`crate::BlockSolve`].
pub trait Objective {
    /// The model's own error type.
    type Error: std::error::Error + Send + Sync + 'static;
    /// ODE solves per step, each keeping a dynamic adjoint scale of its own.
    fn solves(&self) -> usize {
        1
    }
    /// The loss on `batch` and its gradients; `scalers` has [`Objective::solves`] entries, kept
    /// across steps.
    fn value_and_grad(&self, batch: &Tensor, step: &Step<'_>, scalers: &mut [DynamicScaler]) -> crate::Result<StepOutput>;
    /// Named figures on held-out `x` with `steps` steps and no graph; the objective selects the
    /// best parameters.
    fn validate(&self, x: &Tensor, steps: usize) -> Result<Metrics, Self::Error>;
}

/// A [`Trainable`] model as an [`Objective`]: integrate its dynamics from the batch's initial
/// state and take the loss of the final state.
pub struct OdeObjective<'a, M>(pub &'a M);

impl<M: Trainable> Objective for OdeObjective<'_, M> {
    type Error = M::Error;
    fn value_and_grad(&self, batch: &Tensor, step: &Step<'_>, scalers: &mut [DynamicScaler]) -> crate::Result<StepOutput> {
        let m = |e: M::Error| TrainError::model(e);
        let term = self.0.dynamics(step.dtype, step.seed).map_err(m)?;
        let y0 = self.0.initial_state(batch).map_err(m)?;
        let (loss, grads, report) =
            value_and_grad(term.as_ref(), step.method, step.grid, &y0, step.mode, step.params, &mut scalers[0], &|z| {
                self.0.loss(z).map_err(m)
            })?;
        Ok(StepOutput { loss, grads, degraded: report.is_some_and(|r| r.degraded()) })
    }
    fn validate(&self, x: &Tensor, steps: usize) -> Result<Metrics, M::Error> {
        self.0.validate(x, steps)
    }
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
