//! A trained flow-matching velocity seen as a continuous normalizing flow, so that it is used like
//! a CNF or OT-Flow (`train::ContinuousFlow`: encode, sample, log-likelihood). Flow matching
//! integrates from the N(0, I) source at t = 0 to the data at t = 1; a `ContinuousFlow` runs from
//! data at t = 0 to the latent at t = 1, so the velocity is reversed in time:
//! v'(x, t) = −v_θ(x, 1 − t).

use crate::error::{FmError, Result};
use candle_core::{DType, Tensor};
use ode_solvers::OdeTerm;
use tensor_core::nets::{TimeLayer, TimeNet};
use train::ContinuousFlow;

/// A velocity v_θ trained by flow matching from an N(0, I) source (independent or OT coupling,
/// σ = 0 or small): only then is the latent of `encode` standard normal and `log_prob` a density.
pub struct LearnedFlow<L: TimeLayer> {
    pub net: TimeNet<L>,
}

impl<L: TimeLayer> ContinuousFlow for LearnedFlow<L> {
    type Error = FmError;
    fn dim(&self) -> usize {
        self.net.in_dim()
    }
    fn velocity(&self, dtype: DType) -> Result<Box<dyn OdeTerm<Tensor> + '_>> {
        let net = self.net.to_dtype(dtype)?.detach()?;
        Ok(Box::new(move |t: f64, x: &Tensor| -> ode_solvers::Result<Tensor> {
            Ok(net.forward(x, &Tensor::new(1.0 - t, x.device())?)?.neg()?)
        }))
    }
    /// Exact trace, `steps` RK4 steps ([`crate::sample::log_prob`]).
    fn log_prob(&self, x: &Tensor, steps: usize) -> Result<Tensor> {
        crate::sample::log_prob(&self.net, x, steps)
    }
}
