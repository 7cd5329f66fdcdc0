//! One call for a model's training step: integrate, evaluate the loss, and get the gradients by
//! any of the project's modes — the place where a model crate chooses full graph, checkpointed,
//! continuous or mixed-precision gradients with a single switch.

use crate::backward::BackwardReport;
use crate::error::Result;
use crate::forward::{solve_mixed, MpConfig};
use crate::scaler::DynamicScaler;
use candle_core::backprop::GradStore;
use candle_core::Tensor;
use ode_solvers::{solve, Adjoint, Method, OdeTerm, SaveAt, SolveConfig, State, Steps};
use tensor_core::PrecisionPolicy;

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
    /// accumulate in `policy.high`, the adjoint is dynamically scaled.
    Mixed(PrecisionPolicy),
}

/// loss(y(T)) and its gradient with respect to `params` (plus whatever the loss itself depends
/// on), with y solved on `grid` by `method`. For `Mixed`, `term` must evaluate in the low
/// precision; `scaler` is only used by `Mixed` and should persist across iterations.
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
        GradientMode::Mixed(policy) => {
            let config = MpConfig { policy, method, grid: grid.to_vec(), save_at: SaveAt::Final };
            let sol = solve_mixed(term, y0, &config)?;
            let value = loss(sol.last())?;
            let mut grads = value.backward()?;
            let (_, report) = sol.backward(term, params, scaler, &mut grads)?;
            Ok((value, grads, Some(report)))
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
