//! `ot-flow`: OT-Flow ("OT-Flow: Fast and Accurate Continuous Normalizing Flows via Optimal
//! Transport", Onken, Wu Fung, Li, Ruthotto, AAAI 2021) — a continuous normalizing flow whose
//! velocity is the gradient of a potential, v = −∇Φ, trained with the exact Laplacian for the
//! log-determinant plus transport (kinetic) and HJB penalties:
//!
//! J = α₀·E[∫½‖v‖²] + α₁·E[−log N(x(1)) − ℓ(1)] + α₂·E[∫|−∂ₜΦ + ½‖∇Φ‖²/α₀|].
//!
//! - [`model`]: the configuration (with OT-Flow's published presets), the potential, the
//!   augmented dynamics (x, ℓ, c_L, c_H), save / load.
//! - [`loss`]: the three costs, as tensors and as named figures.
//! - [`sample`]: evaluation, inverse error, and the [`train::ContinuousFlow`] view.
//! - [`mfg`]: mean-field games on the same potential (congestion, obstacle, KL or potential
//!   terminal costs, the HJB penalties), also a [`train::Trainable`].
//!
//! OT-Flow is a [`train::Trainable`]: `train::train` with any gradient mode (full graph,
//! checkpointed, continuous, or mixed precision with dynamic scaling).
//!
//! ```
//! use candle_core::{DType, Device};
//! use candle_nn::VarMap;
//! use ot_flow::{OtFlow, OtFlowConfig};
//! use tensor_core::{params::ParamBuilder, SeededRng};
//! use train::{ContinuousFlow, TrainConfig};
//!
//! let dev = Device::Cpu;
//! let vm = VarMap::new();
//! let mut rng = SeededRng::new(0);
//! let model = OtFlow::new(&mut ParamBuilder::new(&vm, &mut rng, DType::F32, &dev), OtFlowConfig { width: 16, ..OtFlowConfig::toy() })?;
//! let data = (rng.normal((1200, 2), DType::F32, &dev)? * 0.5)?;
//! let (fit, held_out) = (data.narrow(0, 0, 1000)?, data.narrow(0, 1000, 200)?);
//! let before = model.evaluate(&held_out, 8)?.metrics()?.get("nll").unwrap();
//! train::train(&model, &vm, &fit, &held_out, &TrainConfig::default().iters(40).batch(256).lr(0.05).val_every(20), &mut |_| {})?;
//! let after = model.evaluate(&held_out, 8)?.metrics()?.get("nll").unwrap();
//! assert!(after < before - 0.2, "NLL {before} → {after}"); // N(0, ¼ I) has entropy ≈ 1.452 nats
//! assert_eq!(model.sample(&rng.normal((5, 2), DType::F32, &dev)?, 8)?.dims(), &[5, 2]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod error;
pub mod loss;
pub mod mfg;
pub mod model;
pub mod sample;

pub use error::{OtFlowError, Result};
pub use model::{OtFlow, OtFlowConfig, OtState, ToyPreset};

use candle_core::{DType, Tensor};
use ode_solvers::OdeTerm;
use train::{Metrics, Trainable};

impl Trainable for OtFlow {
    type State = OtState;
    type Error = OtFlowError;
    fn dynamics(&self, dtype: DType, _seed: u64) -> Result<Box<dyn OdeTerm<OtState> + '_>> {
        Ok(Box::new(OtFlow::dynamics(self, dtype)?))
    }
    fn initial_state(&self, x: &Tensor) -> Result<OtState> {
        tensor_core::error::expect_matrix(x, self.config.dim, "OT-Flow input")?;
        OtFlow::initial_state(x)
    }
    fn loss(&self, z: &OtState) -> Result<Tensor> {
        Ok(loss::costs(self.config.alpha, z)?.total)
    }
    /// `J` (the objective, as OT-Flow's trainers select), `transport`, `nll`, `hjb`.
    fn validate(&self, x: &Tensor, steps: usize) -> Result<Metrics> {
        self.evaluate(x, steps)?.metrics()
    }
}
