//! One call for a model's training step: integrate, evaluate the loss, and get the gradients by
//! any of the project's modes — the place where a model chooses full graph, checkpointed,
//! continuous or mixed-precision gradients with a single switch, and where a (method, precision,
//! scaling) triple from a command line becomes a mode, or a clear refusal.

use crate::error::{Result, TrainError};
use candle_core::backprop::GradStore;
use candle_core::Tensor;
use mixed_precision_adjoint::{solve_mixed, Autocast, BackwardReport, DynamicScaler, MpConfig, MpSolution};
use ode_solvers::{solve, Adjoint, Method, OdeTerm, SaveAt, SolveConfig, State, Steps};
use std::str::FromStr;
use tensor_core::{Precision, PrecisionPolicy};

/// How gradients pass through the solve, before a precision is chosen (a command line's
/// `--gradient`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GradientMethod {
    /// Backprop through every recorded step (`full-graph`).
    FullGraph,
    /// The discrete adjoint, one step rebuilt at a time (`checkpointed`).
    Checkpointed,
    /// The continuous adjoint solved backwards (`continuous`).
    Continuous,
    /// The mixed-precision discrete adjoint of "Mixed Precision Training of Neural ODEs"
    /// (`mp-adjoint`).
    MixedAdjoint,
}

impl FromStr for GradientMethod {
    type Err = TrainError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "full-graph" => Ok(Self::FullGraph),
            "checkpointed" => Ok(Self::Checkpointed),
            "continuous" => Ok(Self::Continuous),
            "mp-adjoint" => Ok(Self::MixedAdjoint),
            other => Err(TrainError::Config(format!(
                "unknown gradient method '{other}': expected full-graph, checkpointed, continuous or mp-adjoint"
            ))),
        }
    }
}

/// Dynamic adjoint scaling of the mixed-precision adjoint: on (`dynamic`) or off (`none`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scaling {
    Dynamic,
    None,
}

impl FromStr for Scaling {
    type Err = TrainError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "dynamic" => Ok(Self::Dynamic),
            "none" => Ok(Self::None),
            other => Err(TrainError::Config(format!("unknown scaling '{other}': expected dynamic or none"))),
        }
    }
}

/// How the gradient of a loss through an ODE solve is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GradientMode {
    /// Backprop through every recorded step (torchdiffeq's `odeint`).
    FullGraph,
    /// Discrete adjoint, one step rebuilt at a time (memory O(N·state)).
    Checkpointed,
    /// Continuous adjoint solved backwards (torchdiffeq's `odeint_adjoint`).
    Continuous,
    /// Mixed precision ("Mixed Precision Training of Neural ODEs"): the term evaluates in `policy.low`, state and gradients
    /// accumulate in `policy.high`; the adjoint is dynamically scaled when `scaled`.
    Mixed { policy: PrecisionPolicy, scaled: bool },
    /// The torchdiffeq + autocast baseline: full-graph backprop, state in the data's precision,
    /// the term evaluated in `low` (its inputs cast down, its outputs cast back up).
    FullGraphAutocast { low: Precision },
}

impl GradientMode {
    /// The mode for `method` with the vector field evaluated in `precision`:
    /// full graph in f32/f64 is plain backprop, below f32 it is the autocast baseline; the
    /// mixed-precision adjoint evaluates in `precision` and accumulates in f32, with `scaling`
    /// (dynamic when not given). Combinations that would silently ignore a setting are refused:
    /// the checkpointed and continuous adjoints in 16 bits (use `mp-adjoint`), a scaling for any
    /// method but `mp-adjoint`, and f64 evaluation with f32 accumulation.
    pub fn for_precision(method: GradientMethod, precision: Precision, scaling: Option<Scaling>) -> Result<Self> {
        if scaling.is_some() && method != GradientMethod::MixedAdjoint {
            return Err(TrainError::Config(format!("adjoint scaling only applies to the mixed-precision adjoint, not to {method:?}")));
        }
        let half = precision.is_half();
        Ok(match method {
            GradientMethod::FullGraph if half => Self::FullGraphAutocast { low: precision },
            GradientMethod::FullGraph => Self::FullGraph,
            GradientMethod::Checkpointed | GradientMethod::Continuous if half => {
                return Err(TrainError::Config(format!("the {method:?} adjoint runs in the data's precision: for {} evaluation use the mixed-precision adjoint (mp-adjoint) or full-graph autocast", precision.name())));
            }
            GradientMethod::Checkpointed => Self::Checkpointed,
            GradientMethod::Continuous => Self::Continuous,
            GradientMethod::MixedAdjoint => {
                if precision == Precision::F64 {
                    return Err(TrainError::Config(
                        "the mixed-precision adjoint accumulates in f32: evaluate in f32, tf32, bf16 or f16".into(),
                    ));
                }
                Self::Mixed { policy: PrecisionPolicy::new(precision, Precision::F32)?, scaled: scaling != Some(Scaling::None) }
            }
        })
    }

    /// The precision the model's term must evaluate in under this mode, given the data's.
    pub fn term_precision(&self, data: Precision) -> Precision {
        match self {
            Self::Mixed { policy, .. } => policy.low,
            Self::FullGraphAutocast { low } => *low,
            _ => data,
        }
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
    let block = BlockSolve::new(term, method, grid, y0, mode)?;
    let value = loss(block.output())?;
    let mut grads = value.backward()?;
    let report = block.backward(params, scaler, &mut grads)?;
    Ok((value, grads, report))
}

/// One ODE solve inside a larger computation — a network of several ODE blocks joined by
/// layers, as the parabolic CNN — under any [`GradientMode`]: solve forward, compute what
/// follows from [`BlockSolve::output`], take the loss's `backward()`, then call
/// [`BlockSolve::backward`] on the blocks in reverse order. Each carries the cotangent its output
/// received back to its parameters and its input (and through the input's graph to the layers
/// before it), adding into the one `GradStore`. Under full graph the output is part of the graph
/// and `backward` has nothing left to do.
pub struct BlockSolve<'a, S: State> {
    term: &'a dyn OdeTerm<S>,
    method: Method,
    solved: Solved<S>,
}

enum Solved<S: State> {
    /// Backprop through the recorded graph (full graph, autocast).
    Graph(S),
    /// The checkpointed or continuous adjoint of `ode-solvers`.
    Adjoint(ode_solvers::Solution<S>),
    /// The mixed-precision adjoint; `scaled` says whether the dynamic scaler is used.
    Mixed(MpSolution<S>, bool),
}

impl<'a, S: State> BlockSolve<'a, S> {
    /// Solves y' = term(t, y) from `y0` on `grid` with `method`; `term` must evaluate in
    /// `mode.term_precision(..)`.
    pub fn new(term: &'a dyn OdeTerm<S>, method: Method, grid: &[f64], y0: &S, mode: GradientMode) -> Result<Self> {
        let solved = match mode {
            GradientMode::Mixed { policy, scaled } => {
                let config = MpConfig { policy, method, grid: grid.to_vec(), save_at: SaveAt::Final };
                Solved::Mixed(solve_mixed(term, y0, &config)?, scaled)
            }
            GradientMode::FullGraphAutocast { low } => {
                let autocast = Autocast::new(term, low);
                Solved::Graph(solve(&autocast, method, y0, &SolveConfig::new(Steps::Grid(grid.to_vec())))?.last().clone())
            }
            GradientMode::FullGraph => {
                Solved::Graph(solve(term, method, y0, &SolveConfig::new(Steps::Grid(grid.to_vec())))?.last().clone())
            }
            GradientMode::Checkpointed | GradientMode::Continuous => {
                let adjoint = if mode == GradientMode::Checkpointed { Adjoint::Checkpointed } else { Adjoint::Continuous };
                Solved::Adjoint(solve(term, method, y0, &SolveConfig::new(Steps::Grid(grid.to_vec())).adjoint(adjoint))?)
            }
        };
        Ok(Self { term, method, solved })
    }

    /// y(T): compute the rest of the loss from it.
    pub fn output(&self) -> &S {
        match &self.solved {
            Solved::Graph(y) => y,
            Solved::Adjoint(sol) => sol.last(),
            Solved::Mixed(sol, _) => sol.last(),
        }
    }

    /// Carries the cotangent of [`BlockSolve::output`] found in `grads` back through the solve:
    /// ∂L/∂θ for `params` and the input's cotangent are added into `grads`. `scaler` is used by
    /// the scaled mixed-precision adjoint (one per block, kept across iterations); its report is
    /// returned.
    pub fn backward(&self, params: &[Tensor], scaler: &mut DynamicScaler, grads: &mut GradStore) -> Result<Option<BackwardReport>> {
        match &self.solved {
            Solved::Graph(_) => Ok(None),
            Solved::Adjoint(sol) => {
                sol.backward(self.term, self.method, params, grads)?;
                Ok(None)
            }
            Solved::Mixed(sol, scaled) => {
                let mut unscaled = DynamicScaler::disabled(sol.config().policy.low);
                let (_, report) = sol.backward(self.term, params, if *scaled { scaler } else { &mut unscaled }, grads)?;
                Ok(Some(report))
            }
        }
    }
}
