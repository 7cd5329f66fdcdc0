//! OT-Flow's objective (paper Eq. 8; `OTFlowProblem.py`): J = α₀·L + α₁·C + α₂·R with
//! L = E[c_L(1)] (transport), C = E[−log N(x(1)) − ℓ(1)] (negative log-likelihood, nats),
//! R = E[c_H(1)] (HJB penalty).

use crate::error::Result;
use crate::model::OtState;
use candle_core::{DType, Tensor};
use tensor_core::stats::standard_normal_log_prob;
use train::Metrics;

/// The three costs and their weighted sum, as scalar tensors (differentiable).
pub struct Costs {
    pub total: Tensor,
    pub transport: Tensor,
    pub nll: Tensor,
    pub hjb: Tensor,
}

/// `t` in f64 if it is, else in f32: costs are summed in f32 or better whatever the state's dtype.
pub(crate) fn up(t: &Tensor) -> Result<Tensor> {
    Ok(if t.dtype() == DType::F64 { t.clone() } else { t.to_dtype(DType::F32)? })
}

/// Costs at the final state, computed in f32 or better whatever the state's dtype.
pub fn costs(alpha: [f64; 3], z: &OtState) -> Result<Costs> {
    let (x, l, cl, ch) = (up(&z.0)?, up(&z.1)?, up(&z.2)?, up(&z.3)?);
    let transport = cl.mean_all()?;
    let nll = (standard_normal_log_prob(&x)? + l)?.neg()?.mean_all()?;
    let hjb = ch.mean_all()?;
    let total = (((&transport * alpha[0])? + (&nll * alpha[1])?)? + (&hjb * alpha[2])?)?;
    Ok(Costs { total, transport, nll, hjb })
}

impl Costs {
    /// The costs as named figures: `J` (the objective), `transport` (L), `nll` (C, nats),
    /// `hjb` (R).
    pub fn metrics(&self) -> Result<Metrics> {
        Ok(Metrics::from_scalars("J", &[("J", &self.total), ("transport", &self.transport), ("nll", &self.nll), ("hjb", &self.hjb)])?)
    }
}
