//! One call for a model's training step: integrate, evaluate the loss, and get the gradients by
//! any of the project's modes — the place where a model crate chooses full graph, checkpointed,
//! continuous or mixed-precision gradients with a single switch.

use crate::backward::BackwardReport;
use crate::error::Result;
use crate::forward::{solve_mixed, MpConfig};
use crate::scaler::DynamicScaler;
use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor};
use ode_solvers::{solve, Adjoint, Method, OdeTerm, SaveAt, SolveConfig, State, Steps};
use tensor_core::{Precision, PrecisionPolicy};

/// How the gradient of a loss through an ODE solve is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GradientMode {
    /// Backprop through every recorded step (torchdiffeq's `odeint`).
    FullGraph,
    /// Discrete adjoint, one step rebuilt at a time (memory O(N·state)).
    Checkpointed,
    /// Continuous adjoint solved backwards (torchdiffeq's `odeint_adjoint`).
    Continuous,
    /// Seed 003's mixed precision: the term evaluates in `policy.low`, state and gradients
    /// accumulate in `policy.high`; the adjoint is dynamically scaled when `scaled`.
    Mixed { policy: PrecisionPolicy, scaled: bool },
    /// The torchdiffeq + autocast baseline: full-graph backprop, state in the data's precision,
    /// the term evaluated in `low` (its inputs cast down, its outputs cast back up).
    FullGraphAutocast { low: Precision },
}

impl GradientMode {
    /// The precision the model's term must evaluate in under this mode, given the data's.
    pub fn term_precision(&self, data: Precision) -> Precision {
        match self {
            Self::Mixed { policy, .. } => policy.low,
            Self::FullGraphAutocast { low } => *low,
            _ => data,
        }
    }
}

/// Runs a term in a low precision on a state of any precision: leaves cast down, results cast
/// back to the state's dtype (PyTorch's autocast around one vector-field evaluation).
pub struct Autocast<'a, S: State> {
    inner: &'a dyn OdeTerm<S>,
    low: DType,
}

impl<'a, S: State> Autocast<'a, S> {
    /// `inner` evaluated in `low`.
    pub fn new(inner: &'a dyn OdeTerm<S>, low: Precision) -> Self {
        Self { inner, low: low.dtype() }
    }
}

impl<S: State> OdeTerm<S> for Autocast<'_, S> {
    fn vector_field(&self, t: f64, y: &S) -> ode_solvers::Result<S> {
        let down = y.with_leaves(y.leaves().iter().map(|l| Ok(l.to_dtype(self.low)?)).collect::<ode_solvers::Result<_>>()?)?;
        let f = self.inner.vector_field(t, &down)?;
        y.with_leaves(f.leaves().iter().zip(y.leaves()).map(|(l, h)| Ok(l.to_dtype(h.dtype())?)).collect::<ode_solvers::Result<_>>()?)
    }
}

/// loss(y(T)) and its gradient with respect to `params` (plus whatever the loss itself depends
/// on), with y solved on `grid` by `method`. `term` must evaluate in
/// `mode.term_precision(..)`; `scaler` is only used by `Mixed { scaled: true }` and should
/// persist across iterations.
#[allow(clippy::too_many_arguments)]
pub fn value_and_grad<S: State>(
    term: &dyn OdeTerm<S>,
    method: Method,
    grid: &[f64],
    y0: &S,
    mode: GradientMode,
    params: &[Tensor],
    scaler: &mut DynamicScaler,
    loss: &dyn Fn(&S) -> Result<Tensor>,
) -> Result<(Tensor, GradStore, Option<BackwardReport>)> {
    match mode {
        GradientMode::Mixed { policy, scaled } => {
            let config = MpConfig { policy, method, grid: grid.to_vec(), save_at: SaveAt::Final };
            let sol = solve_mixed(term, y0, &config)?;
            let value = loss(sol.last())?;
            let mut grads = value.backward()?;
            let mut unscaled = DynamicScaler::disabled(policy.low);
            let (_, report) = sol.backward(term, params, if scaled { scaler } else { &mut unscaled }, &mut grads)?;
            Ok((value, grads, Some(report)))
        }
        GradientMode::FullGraphAutocast { low } => {
            let autocast = Autocast::new(term, low);
            let sol = solve(&autocast, method, y0, &SolveConfig::new(Steps::Grid(grid.to_vec())))?;
            let value = loss(sol.last())?;
            let grads = value.backward()?;
            Ok((value, grads, None))
        }
        _ => {
            let adjoint = match mode {
                GradientMode::FullGraph => Adjoint::FullGraph,
                GradientMode::Checkpointed => Adjoint::Checkpointed,
                _ => Adjoint::Continuous,
            };
            let sol = solve(term, method, y0, &SolveConfig::new(Steps::Grid(grid.to_vec())).adjoint(adjoint))?;
            let value = loss(sol.last())?;
            let mut grads = value.backward()?;
            if adjoint != Adjoint::FullGraph {
                sol.backward(term, method, params, &mut grads)?;
            }
            Ok((value, grads, None))
        }
    }
}
