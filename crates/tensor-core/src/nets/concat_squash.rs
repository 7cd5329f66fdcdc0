//! FFJORD's concat-squash layer (Grathwohl et al. 2019, `ConcatSquashLinear`):
//! z = (a Wᵀ + b) ⊙ sigmoid(t g_wᵀ + g_b) + t h_wᵀ — time gates and shifts every layer.

use super::time_net::{build_layers, tangent_matmul, TimeLayer, TimeNet};
use crate::activation::Activation;
use crate::error::Result;
use crate::kernels::{self, AffineForm};
use crate::params::{Init, ParamBuilder};
use candle_core::Tensor;

/// One concat-squash layer.
#[derive(Clone, Debug)]
pub struct ConcatSquashLinear {
    w: Tensor,
    b: Tensor,
    gate_w: Tensor,
    gate_b: Tensor,
    hyper_bias_w: Tensor,
}

impl ConcatSquashLinear {
    /// A layer `in_dim → out_dim` with PyTorch's default init for each of its three linear maps.
    pub fn new(pb: &mut ParamBuilder, in_dim: usize, out_dim: usize) -> Result<Self> {
        let lin = Init::LinearDefault { fan_in: in_dim };
        let from_t = Init::LinearDefault { fan_in: 1 };
        Ok(Self {
            w: pb.get("weight", (out_dim, in_dim), lin)?,
            b: pb.get("bias", (1, out_dim), lin)?,
            gate_w: pb.get("gate_weight", (1, out_dim), from_t)?,
            gate_b: pb.get("gate_bias", (1, out_dim), from_t)?,
            hyper_bias_w: pb.get("hyper_bias_weight", (1, out_dim), from_t)?,
        })
    }

    fn gate(&self, t: &Tensor) -> Result<Tensor> {
        kernels::sigmoid(&kernels::bias_add(&t.matmul(&self.gate_w)?, &self.gate_b)?)
    }

    /// (a Wᵀ + b) ⊙ gate + t h_wᵀ; the gate and the hyper-bias have one row for a shared time,
    /// B rows otherwise.
    fn gated(&self, a: &Tensor, t: &Tensor, gate: &Tensor) -> Result<Tensor> {
        let lin = kernels::bias_add(&a.matmul(&self.w.t()?)?, &self.b)?;
        let gated = kernels::scale_tangents(&lin.unsqueeze(1)?, gate)?.squeeze(1)?;
        kernels::bias_add(&gated, &t.matmul(&self.hyper_bias_w)?)
    }
}

impl TimeLayer for ConcatSquashLinear {
    fn in_dim(&self) -> usize {
        self.w.dims()[1]
    }
    fn out_dim(&self) -> usize {
        self.w.dims()[0]
    }
    fn forward(&self, a: &Tensor, t: &Tensor) -> Result<Tensor> {
        self.gated(a, t, &self.gate(t)?)
    }
    fn tangent(&self, a_dot: &Tensor, t: &Tensor) -> Result<Tensor> {
        kernels::scale_tangents(&tangent_matmul(a_dot, &self.w)?, &self.gate(t)?)
    }
    /// The gate computed once for both.
    fn forward_and_tangent(&self, a: &Tensor, a_dot: &Tensor, t: &Tensor) -> Result<(Tensor, Tensor)> {
        let gate = self.gate(t)?;
        Ok((self.gated(a, t, &gate)?, kernels::scale_tangents(&tangent_matmul(a_dot, &self.w)?, &gate)?))
    }
    /// s = gate, c = b ⊙ gate + t h_wᵀ.
    fn affine_form(&self, t: &Tensor) -> Result<Option<AffineForm>> {
        let gate = self.gate(t)?;
        let shift = (self.b.broadcast_mul(&gate)? + t.matmul(&self.hyper_bias_w)?)?;
        Ok(Some(AffineForm { weight: self.w.clone(), scale: Some(gate), shift: Some(shift) }))
    }
    fn params(&self) -> Vec<Tensor> {
        vec![self.w.clone(), self.b.clone(), self.gate_w.clone(), self.gate_b.clone(), self.hyper_bias_w.clone()]
    }
    fn map_params(&self, f: &mut dyn FnMut(&Tensor) -> Result<Tensor>) -> Result<Self> {
        Ok(Self {
            w: f(&self.w)?,
            b: f(&self.b)?,
            gate_w: f(&self.gate_w)?,
            gate_b: f(&self.gate_b)?,
            hyper_bias_w: f(&self.hyper_bias_w)?,
        })
    }
}

/// FFJORD's velocity network: concat-squash layers with σ between them.
pub type ConcatSquashNet = TimeNet<ConcatSquashLinear>;

impl ConcatSquashNet {
    /// `in_dim → hidden… → out_dim`; parameters `l{i}.*` under `pb`'s prefix.
    pub fn new(pb: &mut ParamBuilder, in_dim: usize, hidden: &[usize], out_dim: usize, activation: Activation) -> Result<Self> {
        let layers = build_layers(pb, in_dim, hidden, out_dim, |pb, _, i, o| ConcatSquashLinear::new(pb, i, o))?;
        TimeNet::from_layers(layers, activation)
    }
}
