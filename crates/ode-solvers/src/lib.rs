//! `ode-solvers`: ODEs and SDEs on candle tensors, shaped like diffrax — one concept per file,
//! composed by one [`solve`] (or [`solve_sde`]) call:
//!
//! | concept | where |
//! |---|---|
//! | state: a tensor or a tuple/vector of tensors | [`state`] |
//! | terms: ODE vector field, SDE drift + diffusion (Itô/Stratonovich, diagonal/scalar noise) | [`term`] |
//! | solvers: Butcher tableaux + one explicit RK stepper; Euler–Maruyama, Milstein, stochastic Heun | [`solver`] |
//! | step sizes: fixed grids, PI-controlled adaptive steps | [`Steps`], [`controller`] |
//! | output times | [`SaveAt`] |
//! | Brownian motion: a replayable virtual Brownian tree | [`brownian`] |
//! | gradients: full graph, checkpointed discrete adjoint, continuous adjoint | [`adjoint`] |
//! | the result: outputs, statistics | [`Solution`] |
//! | likelihood along a flow: the instantaneous change of variables | [`log_density`] |
//! | kinetic energy of a flow's paths, E∫‖v‖² dt | [`path_energy`] |
//!
//! The crate knows nothing of models: a CNF or OT-Flow builds its augmented dynamics as a term.

mod adjoint;
mod brownian;
mod controller;
mod error;
pub mod log_density;
pub mod low_level;
pub mod path_energy;
mod save_at;
mod solution;
mod solve;
mod solver;
pub mod state;
mod term;

pub use adjoint::{Adjoint, ItoCorrection};
pub use brownian::VirtualBrownianTree;
pub use controller::PiController;
pub use error::{Result, SolverError};
pub use save_at::SaveAt;
pub use solution::{Solution, Stats};
pub use solve::{solve, solve_sde, uniform_grid, SdeConfig, SolveConfig, Steps};
pub use solver::tableau::DenseOutput;
pub use solver::{Method, SdeMethod};
pub use state::State;
pub use term::{time_net_field, Calculus, Noise, OdeTerm, SdeTerm};

/// The runnable examples of `docs/ARCHITECTURE.md`, run by `cargo test` so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/ARCHITECTURE.md")]
pub struct ArchitectureExamples;
