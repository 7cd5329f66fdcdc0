//! The CNF's augmented field (z, ℓ)' = (v_θ(z, t), tr ∂v/∂z) with the exact or Hutchinson trace.

use crate::model::TraceEstimator;
use candle_core::Tensor;
use ode_solvers::OdeTerm;
use std::cell::RefCell;
use tensor_core::nets::{TimeLayer, TimeNet};
use tensor_core::SeededRng;

/// (z, ℓ): shapes (B, d) and (B, 1).
pub type CnfState = (Tensor, Tensor);

/// The CNF's augmented field. A Hutchinson probe is drawn from `seed` on the first evaluation
/// and kept for the whole solve (forward and backward).
pub struct Dynamics<L: TimeLayer> {
    pub(crate) net: TimeNet<L>,
    pub(crate) trace: TraceEstimator,
    pub(crate) probe: RefCell<Option<Tensor>>,
    pub(crate) rng: RefCell<SeededRng>,
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
                    let e = if rademacher {
                        rng.rademacher(s.0.dims(), s.0.dtype(), s.0.device())?
                    } else {
                        rng.normal(s.0.dims(), s.0.dtype(), s.0.device())?
                    };
                    *probe = Some(e);
                }
                let e = probe.as_ref().expect("probe drawn above");
                self.net.hutchinson_trace(&s.0, &time, e)?
            }
        };
        Ok((v, tr))
    }
}
