//! The building blocks of a custom solve driver, for crates that integrate and differentiate in
//! their own way — `mixed-precision-adjoint` is one: it evaluates the Runge–Kutta increment in a
//! low precision, accumulates in a high one, and replays single steps backwards with its own
//! cotangent scaling. Everything else should go through [`crate::solve`] / [`crate::solve_sde`].
//!
//! - [`rk_increment`]: Φ = Σᵢ bᵢkᵢ of one explicit Runge–Kutta step (y₁ = y₀ + h·Φ), and
//!   [`rk_step`]: the whole step with its stages (and the embedded error estimate, if any).
//! - [`vjp`]: aᵀ∂f/∂y and aᵀ∂f/∂θ of one evaluation, detached.
//! - [`output_cotangent`]: the gradient a loss left on an output state (zero where none);
//!   [`deliver_gradients`]: add parameter gradients to a store and carry ∂L/∂y₀ further back.
//! - [`check_grid`]: the validation every fixed-grid solve applies.

pub use crate::adjoint::{deliver_gradients, output_cotangent, vjp};
pub use crate::solve::check_grid;
pub use crate::solver::explicit_rk::{rk_increment, rk_step, RkStep};
pub use crate::solver::tableau::Tableau;
