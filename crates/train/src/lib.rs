//! `train`: what every continuous-time model trains with, whatever the model.
//!
//! - [`Trainable`]: the four things the loop needs from a model (dynamics, initial state, loss,
//!   named validation figures); [`ContinuousFlow`]: velocity, encode, sample, log-likelihood.
//! - [`TrainConfig`] (defaults and setters), [`LrSchedule`], and [`train`] / [`resume`]: Adam on
//!   minibatches, validation on a held-out split with the best parameters restored, early
//!   stopping, atomic checkpoints, and resume that is bit-identical on the CPU.
//! - [`GradientMode`] and [`value_and_grad`]: full graph, checkpointed or continuous adjoint, or
//!   the mixed-precision adjoint with dynamic scaling ("Mixed Precision Training of Neural
//!   ODEs"), one switch; [`GradientMode::for_precision`] turns a command line's choice into one.
//! - [`Objective`]: what the loop sees of any model; [`train_objective`] trains a network of
//!   several ODE blocks ([`BlockSolve`] chains their gradients under every mode).
//! - [`Optimizer`]: [`Adam`] and [`Sgd`] with momentum ([`OptimizerKind`]); [`minimize`]
//!   (simulation-free training: flow and score matching).
//! - [`checkpoint`]: atomic files, model files that carry their complete configuration.
//! - [`comm`]: data parallelism — [`train_distributed`] over a [`Communicator`] (threads, MPI
//!   with the `mpi` feature, NCCL with `nccl`), one gradient all-reduce per step.
//!
//! Adding a model is implementing [`Trainable`]. A flow x' = −x/2 + b with a learnable drift b,
//! trained by maximum likelihood (log p(x) = log N(z(1)) + ℓ(1) with ℓ' = ∇·v = −d/2); on
//! N(3, I) data the best it can reach is ln 2π + e⁻¹ + 1 ≈ 3.206 nats:
//!
//! ```
//! use candle_core::{DType, Device, Tensor};
//! use candle_nn::VarMap;
//! use ode_solvers::OdeTerm;
//! use tensor_core::stats::standard_normal_log_prob;
//! use train::{train, Metrics, TrainConfig, Trainable};
//!
//! struct Shift { b: Tensor }
//! impl Trainable for Shift {
//!     type State = (Tensor, Tensor); // (z, ℓ)
//!     type Error = candle_core::Error;
//!     fn dynamics(&self, _dtype: DType, _seed: u64) -> candle_core::Result<Box<dyn OdeTerm<(Tensor, Tensor)> + '_>> {
//!         Ok(Box::new(|_t: f64, s: &(Tensor, Tensor)| -> ode_solvers::Result<(Tensor, Tensor)> {
//!             let v = (&s.0 * -0.5)?.broadcast_add(&self.b)?;
//!             Ok((v, (s.1.ones_like()? * (-0.5 * s.0.dim(1)? as f64))?))
//!         }))
//!     }
//!     fn initial_state(&self, x: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
//!         Ok((x.clone(), Tensor::zeros((x.dim(0)?, 1), x.dtype(), x.device())?))
//!     }
//!     fn loss(&self, z: &(Tensor, Tensor)) -> candle_core::Result<Tensor> {
//!         (standard_normal_log_prob(&z.0).map_err(candle_core::Error::wrap)? + &z.1)?.neg()?.mean_all()
//!     }
//!     fn validate(&self, x: &Tensor, steps: usize) -> candle_core::Result<Metrics> {
//!         let nll = self.loss(&train::integrate(self, x, steps).map_err(candle_core::Error::wrap)?)?.to_scalar::<f32>()?;
//!         Ok(Metrics::new("nll", &[("nll", nll as f64)]))
//!     }
//! }
//!
//! let dev = Device::Cpu;
//! let vm = VarMap::new();
//! let b = vm.get((1, 2), "b", candle_nn::Init::Const(0.0), DType::F32, &dev)?;
//! let mut rng = tensor_core::SeededRng::new(0);
//! let data = (rng.normal((2000, 2), DType::F32, &dev)? + 3.0)?;
//! let (fit, held_out) = (data.narrow(0, 0, 1500)?, data.narrow(0, 1500, 500)?);
//! let out = train(&Shift { b }, &vm, &fit, &held_out, &TrainConfig::default().iters(150).lr(0.1).val_every(50), &mut |_| {})?;
//! let (_, best) = out.best.expect("validated");
//! assert!(best.get("nll").unwrap() < 3.3, "{best}"); // from ≈ 6.5 at b = 0
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod checkpoint;
pub mod comm;
pub mod config;
pub mod error;
pub mod gradient_mode;
pub mod metrics;
pub mod model;
pub mod optim;
pub mod trainer;

pub use checkpoint::{LoadedModel, ModelFile};
pub use comm::{Communicator, SingleProcess};
pub use config::{LrSchedule, TrainConfig};
pub use error::{Result, TrainError};
pub use gradient_mode::{value_and_grad, BlockSolve, GradientMethod, GradientMode, Scaling};
pub use metrics::Metrics;
pub use model::{ContinuousFlow, Objective, OdeObjective, Step, StepOutput, Trainable};
pub use optim::{minimize, Adam, Optimizer, OptimizerKind, Sgd};
pub use trainer::{resume, resume_distributed, train, train_distributed, train_objective, TrainOutcome, TrainRecord, CHECKPOINT_FILE};

use candle_core::Tensor;
use ode_solvers::{solve, Method, SolveConfig, Steps};

/// The final state of a model's training dynamics on `x`, evaluated in `x`'s dtype with RK4 and
/// `steps` steps on [0, 1]; a short way for a `validate` to get its figures (the graph to the
/// parameters is kept: detach them in the model where memory matters).
pub fn integrate<M: Trainable>(model: &M, x: &Tensor, steps: usize) -> Result<M::State> {
    let term = model.dynamics(x.dtype(), 0).map_err(TrainError::model)?;
    let y0 = model.initial_state(&x.detach()).map_err(TrainError::model)?;
    Ok(solve(term.as_ref(), Method::Rk4, &y0, &SolveConfig::new(Steps::uniform(0.0, 1.0, steps)?))?.last().clone())
}
