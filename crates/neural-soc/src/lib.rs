//! `neural-soc`: stochastic optimal control with a neural value function ("A Neural Network
//! Approach for Stochastic Optimal Control", Li, Verma, Ruthotto, SIAM J. Sci. Comput. 2024).
//!
//! Minimise J(u) = E[∫₀ᵀ L(s, z, u) ds + g(z(T))] subject to dz = f(s, z, u) ds + σ dW. The value
//! function Φ solves the HJB equation ∂ₛΦ + ½tr(σσᵀ∇²Φ) + H(s, z, ∇Φ) = 0, Φ(T) = g, and the
//! optimal feedback is u*(s, z, ∇Φ). Φ_θ is OT-Flow's potential (`tensor_core::nets::Potential`),
//! whose ∇Φ, ∂ₛΦ and exact ΔΦ come from one sweep, so the HJB residual needs no double backprop.
//!
//! - [`problem`]: the [`ControlProblem`] trait and [`check_problem`] (typed errors for bad
//!   definitions); [`quadratic`]: control-affine dynamics with quadratic control cost, closed-form
//!   feedback and Hamiltonian, and NeuralSOC's 100-D benchmarks.
//! - [`sampler`]: the PMP-driven SDE and the random walk (Euler–Maruyama, gradients through the
//!   steps); [`loss`]: J, terminal, HJB, BSDE and Φ(0) − J terms with weights.
//! - [`fit`]: Adam with step decay, closed-loop validation, best parameters, checkpoints, resume.
//! - [`hopf_cole`]: Monte Carlo reference values where the HJB equation linearises.
//!
//! The Han–Jentzen–E problem in d = 4, trained briefly, against its Hopf–Cole value:
//!
//! ```
//! use candle_core::{DType, Device};
//! use candle_nn::VarMap;
//! use neural_soc::{fit, HopfCole, QuadraticControl, SocTrainConfig};
//! use tensor_core::{nets::{Potential, PotentialConfig}, params::ParamBuilder, SeededRng};
//!
//! let problem = QuadraticControl::han_jentzen_e(4)?;
//! let reference = HopfCole::new(&problem)?.value(0.0, &[0.0; 4], 100_000, &mut SeededRng::new(1))?;
//! let vm = VarMap::new();
//! let phi = Potential::new(&mut ParamBuilder::new(&vm, &mut SeededRng::new(0), DType::F32, &Device::Cpu), PotentialConfig::new(4, 16))?;
//! let cfg = SocTrainConfig { iters: 150, steps: 10, val_steps: 10, val_every: 50, lr: 0.02, ..Default::default() };
//! let out = fit(&problem, &phi, &vm, &cfg, false, &mut |_| {})?;
//! let phi0 = out.best.unwrap().1.get("phi0").unwrap();
//! assert!((phi0 - reference.value).abs() < 0.1 * reference.value, "Φ(0, 0) = {phi0}, Hopf–Cole {:.3} ± {:.3}", reference.value, reference.std_error);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod error;
pub mod fit;
pub mod hopf_cole;
pub mod loss;
pub mod problem;
pub mod quadratic;
pub mod sampler;

pub use error::{Result, SocError};
pub use fit::{evaluate, fit, SocOutcome, SocRecord, SocTrainConfig};
pub use hopf_cole::{HopfCole, McEstimate, PathComparison};
pub use loss::{costs, SocCosts, SocWeights};
pub use problem::{check_problem, ControlProblem, Diffusion};
pub use quadratic::{InitialStates, LogTerminal, QuadraticControl, QuadraticTerminal, StateCost, TerminalCost};
pub use sampler::{rollout, PathPoint, Sampler, Trajectory};
