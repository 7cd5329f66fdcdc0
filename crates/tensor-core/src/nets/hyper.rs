//! The hypernetwork velocity of torchdiffeq's CNF example (Chen et al. 2018,
//! `examples/cnf.py`; rampde's 2-D CNF experiment): an MLP of t alone, 1 → h → h → 3wd + w
//! (tanh), gives the weights of a one-hidden-layer field of width w,
//!
//! v(z, t) = (1/w) Σᵢ Uᵢ(t) tanh(Wᵢ(t)ᵀz + bᵢ(t)),   Uᵢ = Ũᵢ ⊙ sigmoid(Gᵢ),
//!
//! with (W, Ũ, G, b) read from the hypernetwork's output in that order (W, Ũ, G: w blocks of d;
//! b: w values). As a [`TimeNet`] it is two layers with tanh between them — z ↦ zW(t) + b(t) and
//! h ↦ hU(t)ᵀ/w — each affine in its input, so the tangent engine gives its JVP and traces.

use super::mlp::ConcatLinear;
use super::time_net::{build_layers, TimeLayer, TimeNet};
use crate::activation::Activation;
use crate::error::{Error, Result};
use crate::kernels::{self, AffineForm};
use crate::params::ParamBuilder;
use candle_core::Tensor;

/// Which of the two layers a [`HyperLayer`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HyperRole {
    /// z ↦ z W(t) + b(t), d → w.
    Hidden,
    /// h ↦ h U(t)ᵀ / w, w → d.
    Output,
}

/// One layer of the hypernetwork velocity. Both layers hold the same hypernetwork (its tensors are
/// shared); the hidden layer lists its parameters, the output layer lists none, so
/// [`TimeNet::params`] names each once (`map_params` maps the hypernetwork in both).
#[derive(Clone, Debug)]
pub struct HyperLayer {
    hyper: TimeNet<ConcatLinear>,
    dim: usize,
    width: usize,
    role: HyperRole,
}

impl HyperLayer {
    /// The hypernetwork's output at times t (shape (T, 1), or one element): (T, 3wd + w), holding
    /// W, Ũ, G (w blocks of d each) and b.
    pub fn hyper_output(&self, t: &Tensor) -> Result<Tensor> {
        let t = if t.elem_count() == 1 { t.reshape((1, 1))? } else { t.clone() };
        self.hyper.forward(&t, &t)
    }

    /// (A, b) of this layer at times t (T rows, T = 1 or B): A of shape (T, out, in) — the
    /// layer's matrix as in z = a Aᵀ — and b of shape (T, out) for the hidden layer.
    fn weights(&self, t: &Tensor) -> Result<(Tensor, Option<Tensor>)> {
        let (d, w) = (self.dim, self.width);
        let p = self.hyper_output(t)?;
        let rows = p.dim(0)?;
        Ok(match self.role {
            HyperRole::Hidden => {
                // W block i holds Wᵢ ∈ ℝᵈ: row i of A
                let a = p.narrow(1, 0, w * d)?.reshape((rows, w, d))?;
                (a, Some(p.narrow(1, 3 * w * d, w)?.contiguous()?))
            }
            HyperRole::Output => {
                let u = p.narrow(1, w * d, w * d)?.reshape((rows, w, d))?;
                let g = p.narrow(1, 2 * w * d, w * d)?.reshape((rows, w, d))?;
                let gate = kernels::sigmoid(&g)?;
                // A[k, i] = Uᵢ[k] / w: (T, d, w)
                (((u * gate)? / w as f64)?.transpose(1, 2)?.contiguous()?, None)
            }
        })
    }
}

/// a Aᵀ for a of shape (B, …, in) with one A (T = 1) or one per sample (T = B).
fn apply(a: &Tensor, m: &Tensor) -> Result<Tensor> {
    if m.dim(0)? == 1 {
        let m0 = m.squeeze(0)?;
        return Ok(match a.rank() {
            2 => a.matmul(&m0.t()?)?,
            _ => super::time_net::tangent_matmul(a, &m0)?,
        });
    }
    // per-sample weights: a batched matmul (B, K, in) @ (B, in, out)
    Ok(match a.rank() {
        2 => a.unsqueeze(1)?.matmul(&m.transpose(1, 2)?)?.squeeze(1)?,
        _ => a.matmul(&m.transpose(1, 2)?)?,
    })
}

/// a Aᵀ + b, b with one row for a shared time and B rows otherwise.
fn affine(a: &Tensor, m: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    let z = apply(a, m)?;
    Ok(match b {
        Some(b) => kernels::bias_add(&z, b)?,
        None => z,
    })
}

impl TimeLayer for HyperLayer {
    fn in_dim(&self) -> usize {
        match self.role {
            HyperRole::Hidden => self.dim,
            HyperRole::Output => self.width,
        }
    }
    fn out_dim(&self) -> usize {
        match self.role {
            HyperRole::Hidden => self.width,
            HyperRole::Output => self.dim,
        }
    }
    fn forward(&self, a: &Tensor, t: &Tensor) -> Result<Tensor> {
        let (m, b) = self.weights(t)?;
        affine(a, &m, b.as_ref())
    }
    fn tangent(&self, a_dot: &Tensor, t: &Tensor) -> Result<Tensor> {
        apply(a_dot, &self.weights(t)?.0)
    }
    /// The hypernetwork evaluated once for both.
    fn forward_and_tangent(&self, a: &Tensor, a_dot: &Tensor, t: &Tensor) -> Result<(Tensor, Tensor)> {
        let (m, b) = self.weights(t)?;
        Ok((affine(a, &m, b.as_ref())?, apply(a_dot, &m)?))
    }
    /// W = A(t), c = b(t) for a time shared by the batch; per-sample weights have no such form.
    fn affine_form(&self, t: &Tensor) -> Result<Option<AffineForm>> {
        if t.elem_count() != 1 {
            return Ok(None);
        }
        let (a, b) = self.weights(t)?;
        Ok(Some(AffineForm { weight: a.squeeze(0)?, scale: None, shift: b }))
    }
    fn params(&self) -> Vec<Tensor> {
        match self.role {
            HyperRole::Hidden => self.hyper.params(),
            HyperRole::Output => Vec::new(),
        }
    }
    fn map_params(&self, f: &mut dyn FnMut(&Tensor) -> Result<Tensor>) -> Result<Self> {
        Ok(Self { hyper: self.hyper.map(f)?, ..self.clone() })
    }
}

/// The hypernetwork CNF velocity: d → w → d with weights from an MLP of t.
pub type HyperNet = TimeNet<HyperLayer>;

impl HyperNet {
    /// torchdiffeq's `CNF(in_out_dim = dim, hidden_dim = hidden, width)`; the hypernetwork's
    /// parameters are `hyper.l{0,1,2}.{weight,bias}` under `pb`'s prefix, PyTorch's default init.
    pub fn new(pb: &mut ParamBuilder, dim: usize, hidden: usize, width: usize) -> Result<Self> {
        if dim == 0 || hidden == 0 || width == 0 {
            return Err(Error::Config(format!("HyperNet needs positive sizes, got dim {dim}, hidden {hidden}, width {width}")));
        }
        let layers = build_layers(&mut pb.pp("hyper"), 1, &[hidden, hidden], 3 * width * dim + width, |pb, _, i, o| {
            ConcatLinear::new(pb, i, o, false)
        })?;
        let hyper = TimeNet::from_layers(layers, Activation::Tanh)?;
        let layer = |role| HyperLayer { hyper: hyper.clone(), dim, width, role };
        TimeNet::from_layers(vec![layer(HyperRole::Hidden), layer(HyperRole::Output)], Activation::Tanh)
    }
}
