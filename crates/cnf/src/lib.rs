//! `cnf`: continuous normalizing flows by maximum likelihood (Chen et al. 2018; FFJORD,
//! Grathwohl et al. 2019; seeds 000/001/003). Data at t = 0 flows to N(0, I) at t = 1 along
//! z' = v_θ(z, t) while ℓ' = tr ∂v/∂z accumulates the log-determinant, so
//! log p(x) = log N(z(1)) + ℓ(1). The trace is exact (d tangents, small d) or Hutchinson's
//! εᵀ(∂v/∂z)ε with one probe per solve (large d) — the trace bottleneck OT-Flow removes.
//!
//! Any `tensor-core` time network is a velocity: FFJORD's `ConcatSquashNet` by default, an
//! `Mlp` also works. Training goes through `mixed_precision_adjoint::train` with any gradient
//! mode.

use candle_core::{DType, Tensor};
use mixed_precision_adjoint::FlowModel;
use ode_solvers::log_density::integrate_divergence;
use ode_solvers::{solve, Method, OdeTerm, SolveConfig, Steps};
use std::cell::RefCell;
use tensor_core::nets::{TimeLayer, TimeNet};
use tensor_core::stats::standard_normal_log_prob;
use tensor_core::SeededRng;

pub use mixed_precision_adjoint::{MpError as Error, Result};

/// How tr ∂v/∂z is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceEstimator {
    /// Exactly, by d forward tangents.
    Exact,
    /// Hutchinson: εᵀ(∂v/∂z)ε with ε Rademacher (or Gaussian), drawn once per solve.
    Hutchinson { rademacher: bool },
}

/// (z, ℓ): shapes (B, d) and (B, 1).
pub type CnfState = (Tensor, Tensor);

/// (x, 0): the state at t = 0 for data x.
pub fn initial_state(x: &Tensor) -> Result<CnfState> {
    Ok((x.clone(), Tensor::zeros((x.dim(0)?, 1), x.dtype(), x.device())?))
}

/// Mean negative log-likelihood −E[log N(z(1)) + ℓ(1)] in nats (f32 or better).
pub fn nll(z: &CnfState) -> Result<Tensor> {
    let up = |t: &Tensor| -> Result<Tensor> { Ok(if t.dtype() == DType::F64 { t.clone() } else { t.to_dtype(DType::F32)? }) };
    Ok((standard_normal_log_prob(&up(&z.0)?)? + up(&z.1)?)?.neg()?.mean_all()?)
}

/// A continuous normalizing flow with velocity network `net`.
pub struct Cnf<L: TimeLayer> {
    pub net: TimeNet<L>,
    pub trace: TraceEstimator,
    probe_rng: RefCell<SeededRng>,
}

impl<L: TimeLayer> Cnf<L> {
    /// A CNF around `net` (d → d); `seed` drives the Hutchinson probes.
    pub fn new(net: TimeNet<L>, trace: TraceEstimator, seed: u64) -> Result<Self> {
        if net.in_dim() != net.out_dim() {
            return Err(Error::Config(format!("a CNF velocity maps d → d, this net maps {} → {}", net.in_dim(), net.out_dim())));
        }
        Ok(Self { net, trace, probe_rng: RefCell::new(SeededRng::new(seed)) })
    }

    /// The training dynamics in `dtype` with `trace`; a Hutchinson probe is drawn on the first
    /// evaluation and kept for the whole solve (forward and backward).
    pub fn dynamics_with(&self, dtype: DType, trace: TraceEstimator) -> Result<Dynamics<L>> {
        let seed = self.probe_rng.borrow_mut().fork();
        Ok(Dynamics { net: self.net.to_dtype(dtype)?, trace, probe: RefCell::new(None), rng: RefCell::new(seed) })
    }

    /// log p(x) per sample with the exact trace and `steps` RK4 steps, no graph; shape (B, 1).
    pub fn log_prob(&self, x: &Tensor, steps: usize) -> Result<Tensor> {
        let net = self.net.to_dtype(x.dtype())?.detach()?;
        let field = |t: f64, z: &Tensor| -> ode_solvers::Result<(Tensor, Tensor)> { Ok(net.exact_trace(z, &Tensor::new(t, z.device())?)?) };
        let (z, l) = integrate_divergence(&field, Method::Rk4, x, 0.0, 1.0, steps)?;
        Ok((standard_normal_log_prob(&z)? + l)?)
    }

    fn flow(&self, x: &Tensor, t0: f64, t1: f64, steps: usize) -> Result<Tensor> {
        let net = self.net.detach()?;
        let v = |t: f64, z: &Tensor| Ok(net.forward(z, &Tensor::new(t, z.device())?)?);
        Ok(solve(&v, Method::Rk4, &x.detach(), &SolveConfig::new(Steps::uniform(t0, t1, steps)?))?.last().clone())
    }

    /// z(1) for data x.
    pub fn encode(&self, x: &Tensor, steps: usize) -> Result<Tensor> {
        self.flow(x, 0.0, 1.0, steps)
    }

    /// x(0) for latent z (samples when z ~ N(0, I)).
    pub fn sample(&self, z: &Tensor, steps: usize) -> Result<Tensor> {
        self.flow(z, 1.0, 0.0, steps)
    }
}

/// The CNF's augmented field (v, tr ∂v/∂z).
pub struct Dynamics<L: TimeLayer> {
    net: TimeNet<L>,
    trace: TraceEstimator,
    probe: RefCell<Option<Tensor>>,
    rng: RefCell<SeededRng>,
}

impl<L: TimeLayer> OdeTerm<CnfState> for Dynamics<L> {
    fn vector_field(&self, t: f64, s: &CnfState) -> ode_solvers::Result<CnfState> {
        let time = Tensor::new(t, s.0.device())?;
        let (v, tr) = match self.trace {
            TraceEstimator::Exact => self.net.exact_trace(&s.0, &time)?,
            TraceEstimator::Hutchinson { rademacher } => {
                let mut probe = self.probe.borrow_mut();
                let stale = probe.as_ref().is_none_or(|p| p.dims() != s.0.dims() || p.dtype() != s.0.dtype());
                if stale {
                    let mut rng = self.rng.borrow_mut();
                    let e = if rademacher { rng.rademacher(s.0.dims(), s.0.dtype(), s.0.device())? } else { rng.normal(s.0.dims(), s.0.dtype(), s.0.device())? };
                    *probe = Some(e);
                }
                let e = probe.as_ref().expect("probe drawn above");
                self.net.hutchinson_trace(&s.0, &time, e)?
            }
        };
        Ok((v, tr))
    }
}

impl<L: TimeLayer> FlowModel for Cnf<L> {
    type State = CnfState;
    fn dynamics(&self, dtype: DType) -> Result<Box<dyn OdeTerm<CnfState> + '_>> {
        Ok(Box::new(self.dynamics_with(dtype, self.trace)?))
    }
    fn initial_state(&self, x: &Tensor) -> Result<CnfState> {
        initial_state(x)
    }
    fn loss(&self, z: &CnfState) -> Result<Tensor> {
        nll(z)
    }
    /// (NLL in nats with the exact trace).
    fn validate(&self, x: &Tensor, steps: usize) -> Result<Vec<f64>> {
        let lp = self.log_prob(x, steps)?;
        Ok(vec![lp.neg()?.mean_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?])
    }
}
