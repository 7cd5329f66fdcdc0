//! `flow-matching`: simulation-free training of continuous flows (seeds 000/003, "flow matching
//! by superposition"): conditional flow matching on the straight path ψ_t = (1 − t)x₀ + t x₁
//! with target velocity x₁ − x₀, and minibatch couplings that make the learned paths straighter.
//!
//! - [`assignment`]: exact linear assignment (Hungarian, O(n³)).
//! - [`sinkhorn`]: log-domain entropic OT with ε-scaling; returns plan, cost, marginal error.
//! - [`coupling`]: independent, exact-OT and Sinkhorn minibatch couplings.
//! - [`cfm`]: the CFM loss and training loop.
//! - [`sample`]: sampling with any `ode-solvers` method, exact W2, kinetic energy.

pub mod assignment;
pub mod cfm;
pub mod coupling;
pub mod error;
pub mod sample;
pub mod sinkhorn;

pub use cfm::{cfm_loss, train_cfm, CfmConfig};
pub use coupling::Coupling;
pub use error::{FmError, Result};
