//! `monge-ampere`: generative modelling by the parabolic Monge–Ampère flow of Brenier maps
//! (Deb & Liang, "No-Regret Generative Modeling via Parabolic Monge–Ampère PDE", 2025).
//!
//! For a target μ = e^{−f} and a reference ν = e^{−g}, the convex ψ with (∇ψ)#ν = μ solves the
//! Monge–Ampère equation −f(∇ψ) + g + log det ∇²ψ = 0; its parabolic form
//! ∂ₜψ = −f(∇ψ) + g + log det ∇²ψ is the continuous-time limit of Sinkhorn's iterations. Its
//! discretisation is mirror descent on Brenier maps,
//!
//! ∇ψ_{k+1} = ∇ψ_k − η_k ξ_k,   ξ_k = ∇(log(ρ_k / e^{−f}) ∘ ∇ψ_k),   ρ_k = (∇ψ_k)#e^{−g},
//!
//! with regret bounds KL(ρ̄_T | μ) = O(1/T) (average iterate, constant η), KL(ρ_T | μ) = O(1/√T)
//! (η = 1/√T) and O(log T / T) (η_k = λ/(k + 1)) while ∇²ψ_k stays positive definite.
//!
//! - [`schedule`]: the four step-size schedules of the theorems.
//! - [`target`]: normalised targets (Gaussian, banana, and `score_diffusion`'s Gaussian mixture,
//!   re-exported) for exact evaluation.
//! - [`gaussian`]: the flow between Gaussians in closed form (affine iterates, exact KL).
//! - [`map`]: ∇ψ as the gradient of OT-Flow's potential network (symmetric Jacobian, exact HVPs).
//! - [`estimator`]: the learning steps — logistic regression (Algorithm 1), score matching (Algorithm 2).
//! - [`sampler`]: the neural sampler, one projected map update per step, convexity tracked.
//! - [`kl`]: KL of a map's push-forward by the change of variables (quadrature in 1-D, Monte Carlo).
//! - [`rate`]: fitted log–log slopes, the measured rates next to the theorems'.
//!
//! Why a crate of its own: the flow moves a map by density-ratio estimates between its samples and
//! the data; it integrates no velocity field in time, so it shares no machinery with the ODE models
//! (`flow-matching`'s transport solvers are its baselines, not its parts).
//!
//! Algorithm 1 from the data's moment-matched Gaussian toward a two-mode mixture, eight steps:
//!
//! ```
//! use monge_ampere::{kl_1d, Estimator, GaussianMixture, MongeAmpereSampler, SamplerConfig, StepSchedule, Target};
//! use tensor_core::SeededRng;
//!
//! let target = GaussianMixture::new(vec![0.5, 0.5], vec![vec![-1.0], vec![1.0]], vec![0.36, 0.36])?;
//! let data = Target::sample(&target, 2000, &mut SeededRng::new(1))?;
//! let mut sampler = MongeAmpereSampler::new(SamplerConfig::new(8, StepSchedule::Constant(0.03), Estimator::Logistic), &data)?;
//! let before = kl_1d(sampler.map(), &target, 801)?.value;
//! while !sampler.finished() {
//!     let record = sampler.step()?;
//!     assert!(record.min_curvature > 0.0, "ψ stays convex");
//! }
//! let after = kl_1d(sampler.map(), &target, 801)?.value;
//! assert!(after < 0.6 * before, "KL {before:.3} → {after:.3}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod error;
pub mod estimator;
pub mod gaussian;
pub mod kl;
pub mod map;
pub mod rate;
pub mod sampler;
pub mod schedule;
pub mod target;

pub use error::{MaError, Result};
pub use estimator::{Estimator, EstimatorConfig};
pub use gaussian::{average_kl_1d, gaussian_flow, AffineMap};
pub use kl::{kl_1d, kl_monte_carlo, KlEstimate};
pub use map::{BrenierMap, Curvature};
pub use rate::fitted_rate;
pub use sampler::{Initialization, MongeAmpereSampler, SamplerConfig, StepRecord};
pub use schedule::StepSchedule;
pub use score_diffusion::GaussianMixture;
pub use target::{Banana, Gaussian, Target};
