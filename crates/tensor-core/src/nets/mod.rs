//! Networks with analytic derivatives, written as candle ops: first-order backprop through any
//! of their outputs (values, JVPs, traces, ∇Φ, ΔΦ) trains them, no gradient of a gradient needed.
//!
//! - [`TimeNet`]: a stack of time-conditioned layers with forward-mode tangents, hence `jvp`,
//!   `exact_trace` and `hutchinson_trace` for every layer type ([`Mlp`], [`ConcatSquashNet`],
//!   [`HyperNet`]).
//! - [`Potential`]: OT-Flow's Φ(x, t) with ∇Φ and the exact Laplacian by the OT-Flow recursion.
//! - [`ConvexPotential`]: an input-convex ψ(x) (convex for every parameter value) with ∇ψ and
//!   exact Hessian-vector products: Brenier maps by construction.
//! - [`conv`]: channels-last image layers (3×3 convolution and its transpose, 1×1 convolution,
//!   instance norm, pooling) as im2col matrix products, for the parabolic CNN.

mod concat_squash;
pub mod conv;
mod convex_potential;
mod hyper;
mod mlp;
mod potential;
mod time_net;

pub use concat_squash::{ConcatSquashLinear, ConcatSquashNet};
pub use convex_potential::ConvexPotential;
pub use hyper::{HyperLayer, HyperNet, HyperRole};
pub use mlp::{ConcatLinear, Mlp};
pub use potential::{Potential, PotentialConfig, PotentialDerivatives};
pub use time_net::{time_column, TimeLayer, TimeNet};
