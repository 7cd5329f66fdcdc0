//! `score-diffusion`: score-based diffusion models (Song et al. 2021; Ruthotto, "Understanding Generative AI Through Optimal Transport and PDEs"; Ruthotto, "PDE Framework for Generative Modeling"; Ruthotto, "Continuous-Time Deep Learning for Generative AI and High-Dim PDEs") and
//! Liang's "Generative Models, Optimal Transport, and PDEs" optimal-transport view of denoising (Liang et al. 2024).
//!
//! - [`sde`]: forward SDEs with Gaussian kernels — VP (linear β, cosine α), VE, OU.
//! - [`score`]: the [`Score`] trait; network scores ([`ScoreNet`], score or ε parametrization)
//!   and exact mixture scores ([`MixtureScore`]).
//! - [`dsm`]: the denoising score-matching loss and training loop.
//! - [`sampler`]: reverse SDE, probability-flow ODE, the smart-zero family g̃ = c·g,
//!   predictor–corrector, Tweedie denoising.
//! - [`likelihood`]: log-likelihood through the PF-ODE, exact or Hutchinson divergence.
//! - [`mixture`]: Gaussian mixtures and empirical measures: exact scores, Laplacians, posterior
//!   moments.
//! - [`localization`]: L_r, s_r(u), h_μ(δ, r), m*(r), ζ*_M(t).
//! - [`ot_denoise`]: Liang's "Generative Models, Optimal Transport, and PDEs" forward OU chain and backward OT denoising map.

pub mod dsm;
pub mod error;
pub mod flow;
pub mod likelihood;
pub mod localization;
pub mod mixture;
pub mod ot_denoise;
pub mod sampler;
pub mod score;
pub mod sde;

pub use dsm::{train_dsm, DsmConfig, Weighting};
pub use error::{DiffusionError, Result};
pub use flow::ProbabilityFlowOde;
pub use mixture::GaussianMixture;
pub use score::{MixtureScore, Parametrization, Score, ScoreNet};
pub use sde::ForwardSde;
