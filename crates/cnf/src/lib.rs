//! `cnf`: continuous normalizing flows by maximum likelihood ("Neural Ordinary Differential
//! Equations", Chen et al. 2018; "FFJORD: Free-form Continuous Dynamics for Scalable Reversible
//! Generative Models", Grathwohl et al. 2019). Data at t = 0 flows to N(0, I) at t = 1 along
//! z' = v_θ(z, t) while ℓ' = tr ∂v/∂z accumulates the log-determinant, so
//! log p(x) = log N(z(1)) + ℓ(1). The trace is exact (d tangents, small d) or Hutchinson's
//! εᵀ(∂v/∂z)ε with one probe per solve (large d) — the trace bottleneck OT-Flow removes.
//!
//! - [`model`]: [`CnfConfig`] (network, trace) and [`Cnf`], with save / load of the complete
//!   configuration.
//! - [`dynamics`]: the augmented field (z, ℓ).
//!
//! A CNF is a [`train::Trainable`] (train it with `train::train` and any gradient mode) and a
//! [`train::ContinuousFlow`] (encode, sample, log-likelihood):
//!
//! ```
//! use candle_core::{DType, Device};
//! use candle_nn::VarMap;
//! use cnf::{Cnf, CnfConfig};
//! use tensor_core::{nets::ConcatSquashLinear, params::ParamBuilder, SeededRng};
//! use train::{ContinuousFlow, TrainConfig};
//!
//! let dev = Device::Cpu;
//! let vm = VarMap::new();
//! let mut rng = SeededRng::new(0);
//! let cnf: Cnf<ConcatSquashLinear> = Cnf::new(&mut ParamBuilder::new(&vm, &mut rng, DType::F32, &dev), CnfConfig::ffjord_toy(2))?;
//! let data = (rng.normal((1200, 2), DType::F32, &dev)? * 0.5)?; // N(0, ¼ I): NLL ln 2π − 2 ln 2 + 1 ≈ 1.452
//! let (fit, held_out) = (data.narrow(0, 0, 1000)?, data.narrow(0, 1000, 200)?);
//! let before = cnf.log_prob(&held_out, 8)?.mean_all()?.to_scalar::<f32>()?;
//! train::train(&cnf, &vm, &fit, &held_out, &TrainConfig::default().iters(60).batch(256).val_every(20), &mut |_| {})?;
//! let after = cnf.log_prob(&held_out, 8)?.mean_all()?.to_scalar::<f32>()?;
//! assert!(after > before + 0.3, "log-likelihood {before} → {after}");
//! let samples = cnf.sample(&rng.normal((5, 2), DType::F32, &dev)?, 8)?;
//! assert_eq!(samples.dims(), &[5, 2]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod dynamics;
pub mod error;
pub mod model;

pub use dynamics::{CnfState, Dynamics};
pub use error::{CnfError, Result};
pub use model::{Cnf, CnfConfig, TraceEstimator, VelocityLayer, VelocityNet};

use candle_core::{DType, Tensor};
use model::check_batch;
use ode_solvers::log_density::integrate_divergence;
use ode_solvers::{time_net_field, Method, OdeTerm};
use std::cell::RefCell;
use tensor_core::stats::standard_normal_log_prob;
use tensor_core::SeededRng;
use train::{ContinuousFlow, Metrics, Trainable};

/// (x, 0): the state at t = 0 for data x.
pub fn initial_state(x: &Tensor) -> Result<CnfState> {
    Ok((x.clone(), Tensor::zeros((x.dim(0)?, 1), x.dtype(), x.device())?))
}

/// Mean negative log-likelihood −E[log N(z(1)) + ℓ(1)] in nats (f32 or better).
pub fn nll(z: &CnfState) -> Result<Tensor> {
    let up = |t: &Tensor| -> Result<Tensor> { Ok(if t.dtype() == DType::F64 { t.clone() } else { t.to_dtype(DType::F32)? }) };
    Ok((standard_normal_log_prob(&up(&z.0)?)? + up(&z.1)?)?.neg()?.mean_all()?)
}

impl<L: VelocityLayer> Cnf<L> {
    /// The training dynamics in `dtype` with `trace`; a Hutchinson probe is drawn from `seed`.
    pub fn dynamics_with(&self, dtype: DType, trace: TraceEstimator, seed: u64) -> Result<Dynamics<L>> {
        Ok(Dynamics { net: self.net.to_dtype(dtype)?, trace, probe: RefCell::new(None), rng: RefCell::new(SeededRng::new(seed)) })
    }
}

impl<L: VelocityLayer> Trainable for Cnf<L> {
    type State = CnfState;
    type Error = CnfError;
    fn dynamics(&self, dtype: DType, seed: u64) -> Result<Box<dyn OdeTerm<CnfState> + '_>> {
        Ok(Box::new(self.dynamics_with(dtype, self.config().trace, seed)?))
    }
    fn initial_state(&self, x: &Tensor) -> Result<CnfState> {
        check_batch(x, self.config().dim)?;
        initial_state(x)
    }
    fn loss(&self, z: &CnfState) -> Result<Tensor> {
        nll(z)
    }
    /// `nll`: nats per sample with the exact trace (the objective).
    fn validate(&self, x: &Tensor, steps: usize) -> Result<Metrics> {
        let nll = self.log_prob(x, steps)?.neg()?.mean_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        Ok(Metrics::new("nll", &[("nll", nll)]))
    }
}

impl<L: VelocityLayer> ContinuousFlow for Cnf<L> {
    type Error = CnfError;
    fn dim(&self) -> usize {
        self.config().dim
    }
    fn velocity(&self, dtype: DType) -> Result<Box<dyn OdeTerm<Tensor> + '_>> {
        Ok(Box::new(time_net_field(self.frozen(dtype)?)))
    }
    /// Exact trace whatever the training estimator.
    fn log_prob(&self, x: &Tensor, steps: usize) -> Result<Tensor> {
        check_batch(x, self.config().dim)?;
        let net = self.frozen(x.dtype())?;
        let field = |t: f64, z: &Tensor| -> ode_solvers::Result<(Tensor, Tensor)> { Ok(net.exact_trace(z, &Tensor::new(t, z.device())?)?) };
        let (z, l) = integrate_divergence(&field, Method::Rk4, &x.detach(), 0.0, 1.0, steps)?;
        Ok((standard_normal_log_prob(&z)? + l)?)
    }
}
