//! `tensor-core`: the thin layer of continuum over candle.
//!
//! - [`device`]: device selection from `cpu` / `cuda` / `cuda:N`.
//! - [`precision`]: the precision policy of Ruthotto, "Continuous-Time Deep Learning for Generative AI and High-Dim PDEs" (evaluate low, accumulate high).
//! - [`rng`]: seeded tensors (candle's CPU RNG cannot be seeded).
//! - [`params`]: seeded parameters in a `VarMap`, safetensors checkpoints.
//! - [`activation`]: σ, σ', σ'' as candle ops.
//! - [`kernels`]: fused CPU kernels (vectorised tanh) with the composite candle ops one switch away.
//! - [`nets`]: networks with analytic derivatives — [`nets::Mlp`], [`nets::ConcatSquashNet`]
//!   (JVP, exact and Hutchinson traces) and OT-Flow's [`nets::Potential`] (∇Φ, exact ΔΦ).
//! - [`stats`]: standard-normal log density, MMD between samples.
//! - [`memory`]: peak resident memory and device memory for benchmarks.
//!
//! No model needs a gradient of a gradient: every derivative a loss uses is computed here as
//! ordinary candle ops, so one first-order backward pass trains through it.

pub mod activation;
pub mod alloc;
pub mod device;
pub mod error;
pub mod kernels;
pub mod memory;
pub mod nets;
pub mod params;
pub mod precision;
pub mod rng;
pub mod stats;

pub use activation::Activation;
pub use device::{device_name, parse_device};
pub use error::{Error, Result};
pub use precision::{Precision, PrecisionPolicy};
pub use rng::{RngState, SeededRng};
