//! The multilayer perceptron on (x, t): time concatenated to the input, z₀ = W₀x + w_t t + b₀,
//! then plain affine layers (the torchcfm / torchdiffeq toy network).

use super::time_net::{build_layers, tangent_matmul, TimeLayer, TimeNet};
use crate::activation::Activation;
use crate::error::Result;
use crate::kernels::{self, AffineForm};
use crate::params::{Init, ParamBuilder};
use candle_core::Tensor;

/// z = a Wᵀ + b (+ t w_tᵀ when the layer sees time): `nn.Linear` on `cat([a, t])`, with the
/// time column kept apart so tangents skip it.
#[derive(Clone, Debug)]
pub struct ConcatLinear {
    w: Tensor,
    b: Tensor,
    w_t: Option<Tensor>,
}

impl ConcatLinear {
    /// A layer `in_dim → out_dim`, with a time column when `with_time`; PyTorch's default init.
    pub fn new(pb: &mut ParamBuilder, in_dim: usize, out_dim: usize, with_time: bool) -> Result<Self> {
        let fan_in = in_dim + with_time as usize;
        let init = Init::LinearDefault { fan_in };
        let w = pb.get("weight", (out_dim, in_dim), init)?;
        let w_t = if with_time { Some(pb.get("time_weight", (1, out_dim), init)?) } else { None };
        let b = pb.get("bias", (1, out_dim), init)?;
        Ok(Self { w, b, w_t })
    }
}

impl TimeLayer for ConcatLinear {
    fn in_dim(&self) -> usize {
        self.w.dims()[1]
    }
    fn out_dim(&self) -> usize {
        self.w.dims()[0]
    }
    fn forward(&self, a: &Tensor, t: &Tensor) -> Result<Tensor> {
        let z = kernels::bias_add(&a.matmul(&self.w.t()?)?, &self.b)?;
        Ok(match &self.w_t {
            // t w_tᵀ is one row for a shared time (a second bias), B rows otherwise
            Some(w_t) => kernels::bias_add(&z, &t.matmul(w_t)?)?,
            None => z,
        })
    }
    fn tangent(&self, a_dot: &Tensor, _t: &Tensor) -> Result<Tensor> {
        tangent_matmul(a_dot, &self.w)
    }
    /// s = 1, c = b (+ t w_tᵀ).
    fn affine_form(&self, t: &Tensor) -> Result<Option<AffineForm>> {
        let shift = match &self.w_t {
            Some(w_t) => kernels::bias_add(&t.matmul(w_t)?, &self.b)?,
            None => self.b.clone(),
        };
        Ok(Some(AffineForm { weight: self.w.clone(), scale: None, shift: Some(shift) }))
    }
    fn params(&self) -> Vec<Tensor> {
        let mut p = vec![self.w.clone(), self.b.clone()];
        p.extend(self.w_t.clone());
        p
    }
    fn map_params(&self, f: &mut dyn FnMut(&Tensor) -> Result<Tensor>) -> Result<Self> {
        Ok(Self { w: f(&self.w)?, b: f(&self.b)?, w_t: self.w_t.as_ref().map(&mut *f).transpose()? })
    }
}

/// MLP v(x, t): d → hidden… → d_out with time at the input layer.
pub type Mlp = TimeNet<ConcatLinear>;

impl Mlp {
    /// An MLP `in_dim → hidden[0] → … → out_dim`; parameters `l{i}.weight`, `l{i}.bias`,
    /// `l0.time_weight` under `pb`'s prefix.
    pub fn new(pb: &mut ParamBuilder, in_dim: usize, hidden: &[usize], out_dim: usize, activation: Activation) -> Result<Self> {
        let layers = build_layers(pb, in_dim, hidden, out_dim, |pb, k, i, o| ConcatLinear::new(pb, i, o, k == 0))?;
        TimeNet::from_layers(layers, activation)
    }
}
