//! A stack of time-conditioned layers z = L(a, t) with an activation between them, and its
//! derivatives with respect to the input x by forward-mode tangent propagation:
//! ż = (∂L/∂a) ȧ, ȧ' = σ'(z) ⊙ ż. With K tangents at once this gives J·V, hence
//! `jvp` (K = 1), `exact_trace` (V = I, K = d) and `hutchinson_trace` (εᵀJε, Grathwohl et al. 2019).

use crate::activation::Activation;
use crate::error::{expect_matrix, Error, Result};
use crate::kernels::{self, AffineForm};
use candle_core::{DType, Tensor, D};

/// One layer of a time-conditioned network: affine in its input `a`, any smooth function of t.
pub trait TimeLayer: Clone {
    /// Input width.
    fn in_dim(&self) -> usize;
    /// Output width.
    fn out_dim(&self) -> usize;
    /// z = L(a, t) for a of shape (B, in) and t of shape (B, 1), or (1, 1) for a time shared by
    /// the batch.
    fn forward(&self, a: &Tensor, t: &Tensor) -> Result<Tensor>;
    /// ż = (∂L/∂a) ȧ for K tangents ȧ of shape (B, K, in), same t; returns (B, K, out).
    fn tangent(&self, a_dot: &Tensor, t: &Tensor) -> Result<Tensor>;
    /// (z, ż) together: layers whose time terms are shared by both override it to compute them once.
    fn forward_and_tangent(&self, a: &Tensor, a_dot: &Tensor, t: &Tensor) -> Result<(Tensor, Tensor)> {
        Ok((self.forward(a, t)?, self.tangent(a_dot, t)?))
    }
    /// The layer as z = (a Wᵀ) ⊙ s + c at time t (see [`AffineForm`]), the form the fused
    /// network kernel runs, or `None` where it has none (the network then takes the composite
    /// path through `forward_and_tangent`).
    fn affine_form(&self, _t: &Tensor) -> Result<Option<AffineForm>> {
        Ok(None)
    }
    /// The layer's parameter tensors, in a fixed order.
    fn params(&self) -> Vec<Tensor>;
    /// The same layer with every parameter replaced by `f(param)` (same order as `params`).
    fn map_params(&self, f: &mut dyn FnMut(&Tensor) -> Result<Tensor>) -> Result<Self>;
}

/// Broadcasts a time to a (B, 1) column of `x`'s dtype: `t` may hold one element (a scalar time
/// shared by the batch) or B elements (one time per sample, as flow matching needs).
pub fn time_column(t: &Tensor, x: &Tensor) -> Result<Tensor> {
    let b = x.dim(0)?;
    let t = if t.dtype() == x.dtype() { t.clone() } else { t.to_dtype(x.dtype())? };
    match t.elem_count() {
        1 => Ok(t.reshape((1, 1))?.broadcast_as((b, 1))?.contiguous()?),
        n if n == b => Ok(t.reshape((b, 1))?),
        _ => Err(Error::Shape { context: "time input", expected: format!("1 or {b} elements"), got: t.dims().to_vec() }),
    }
}

/// The time as the layers see it: a (1, 1) tensor for a scalar time shared by the batch (so a
/// layer's time terms are computed once, for one row, and broadcast), else a (B, 1) column.
fn time_rows(t: &Tensor, x: &Tensor) -> Result<Tensor> {
    if t.elem_count() == 1 {
        let t = if t.dtype() == x.dtype() { t.clone() } else { t.to_dtype(x.dtype())? };
        return Ok(t.reshape((1, 1))?);
    }
    time_column(t, x)
}

/// Linear map of K tangents: (B, K, in) @ Wᵀ → (B, K, out), done as one 2-D matmul.
pub(crate) fn tangent_matmul(a_dot: &Tensor, w: &Tensor) -> Result<Tensor> {
    let (b, k, i) = a_dot.dims3()?;
    Ok(a_dot.reshape((b * k, i))?.matmul(&w.t()?)?.reshape((b, k, w.dim(0)?))?)
}

/// Builds the layers `in_dim → hidden… → out_dim`, each from `make(pb.pp("l{i}"), i, in, out)`.
pub(crate) fn build_layers<L>(
    pb: &mut crate::params::ParamBuilder,
    in_dim: usize,
    hidden: &[usize],
    out_dim: usize,
    mut make: impl FnMut(&mut crate::params::ParamBuilder, usize, usize, usize) -> Result<L>,
) -> Result<Vec<L>> {
    if in_dim == 0 || out_dim == 0 || hidden.contains(&0) {
        return Err(Error::Config(format!("layer widths must be positive: {in_dim} → {hidden:?} → {out_dim}")));
    }
    let widths: Vec<usize> = std::iter::once(in_dim).chain(hidden.iter().copied()).chain(std::iter::once(out_dim)).collect();
    widths.windows(2).enumerate().map(|(i, w)| make(&mut pb.pp(&format!("l{i}")), i, w[0], w[1])).collect()
}

/// A feed-forward network x ↦ f(x, t) of [`TimeLayer`]s: σ after every layer but the last.
#[derive(Clone, Debug)]
pub struct TimeNet<L> {
    layers: Vec<L>,
    activation: Activation,
}

impl<L: TimeLayer> TimeNet<L> {
    /// Chains `layers` (at least one; widths must match) with `activation` between them.
    pub fn from_layers(layers: Vec<L>, activation: Activation) -> Result<Self> {
        if layers.is_empty() {
            return Err(Error::Config("a network needs at least one layer".into()));
        }
        for w in layers.windows(2) {
            if w[0].out_dim() != w[1].in_dim() {
                return Err(Error::Config(format!("layer widths do not chain: {} → {}", w[0].out_dim(), w[1].in_dim())));
            }
        }
        Ok(Self { layers, activation })
    }

    /// Input dimension d_in.
    pub fn in_dim(&self) -> usize {
        self.layers[0].in_dim()
    }

    /// Output dimension d_out.
    pub fn out_dim(&self) -> usize {
        self.layers[self.layers.len() - 1].out_dim()
    }

    /// The layers.
    pub fn layers(&self) -> &[L] {
        &self.layers
    }

    /// The activation.
    pub fn activation(&self) -> Activation {
        self.activation
    }

    /// Every parameter tensor, layer by layer.
    pub fn params(&self) -> Vec<Tensor> {
        self.layers.iter().flat_map(|l| l.params()).collect()
    }

    /// A copy whose parameters are cast to `dtype` (differentiable: gradients flow back to the
    /// originals). Evaluating a net in a low precision starts here.
    pub fn to_dtype(&self, dtype: DType) -> Result<Self> {
        self.map(&mut |p| crate::kernels::cast(p, dtype))
    }

    /// A copy with detached parameters: forward passes on it record no graph.
    pub fn detach(&self) -> Result<Self> {
        self.map(&mut |p| Ok(p.detach()))
    }

    pub(crate) fn map(&self, f: &mut dyn FnMut(&Tensor) -> Result<Tensor>) -> Result<Self> {
        let layers = self.layers.iter().map(|l| l.map_params(f)).collect::<Result<_>>()?;
        Ok(Self { layers, activation: self.activation })
    }

    fn check_input(&self, x: &Tensor, context: &'static str) -> Result<usize> {
        expect_matrix(x, self.in_dim(), context)
    }

    /// The fused kernel's (f, J·V) ([`kernels::network_tangents`]), where it applies and every
    /// layer has an affine form; `None` sends the caller down the composite path.
    fn fused_tangents(&self, x: &Tensor, t: &Tensor, v: Option<&Tensor>) -> Result<Option<(Tensor, Option<Tensor>)>> {
        if !(kernels::fused() && x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64 | DType::BF16 | DType::F16)) {
            return Ok(None);
        }
        let mut forms = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            match layer.affine_form(t)? {
                Some(form) => forms.push(form),
                None => return Ok(None),
            }
        }
        kernels::network_tangents(&forms, self.activation, x, v)
    }

    /// f(x, t) for x of shape (B, d_in); t holds 1 or B times.
    pub fn forward(&self, x: &Tensor, t: &Tensor) -> Result<Tensor> {
        self.check_input(x, "TimeNet::forward")?;
        let t = time_rows(t, x)?;
        if let Some((f, _)) = self.fused_tangents(x, &t, None)? {
            return Ok(f);
        }
        let mut a = x.clone();
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            let z = layer.forward(&a, &t)?;
            a = if i == last { z } else { self.activation.value(&z)? };
        }
        Ok(a)
    }

    /// (f(x, t), J·V) for K tangent directions V of shape (B, K, d_in); J·V has shape (B, K, d_out).
    pub fn tangents(&self, x: &Tensor, t: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        let b = self.check_input(x, "TimeNet::tangents")?;
        match v.dims() {
            [vb, _, vd] if *vb == b && *vd == self.in_dim() => {}
            dims => {
                return Err(Error::Shape {
                    context: "TimeNet::tangents (directions)",
                    expected: format!("({b}, K, {})", self.in_dim()),
                    got: dims.to_vec(),
                })
            }
        }
        let t = time_rows(t, x)?;
        if let Some((f, Some(jv))) = self.fused_tangents(x, &t, Some(v))? {
            return Ok((f, jv));
        }
        let (mut a, mut a_dot) = (x.clone(), v.clone());
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            let (z, z_dot) = layer.forward_and_tangent(&a, &a_dot, &t)?;
            if i == last {
                return Ok((z, z_dot));
            }
            let (s, ds) = self.activation.value_and_derivative(&z)?;
            a_dot = kernels::scale_tangents(&z_dot, &ds)?;
            a = s;
        }
        unreachable!("the loop returns at the last layer")
    }

    /// (f(x, t), J v): one Jacobian-vector product, v of shape (B, d_in).
    pub fn jvp(&self, x: &Tensor, t: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        let (f, jv) = self.tangents(x, t, &v.unsqueeze(1)?)?;
        Ok((f, jv.squeeze(1)?))
    }

    fn check_square(&self) -> Result<()> {
        if self.in_dim() != self.out_dim() {
            return Err(Error::Config(format!("a trace needs a square Jacobian, the net maps {} → {}", self.in_dim(), self.out_dim())));
        }
        Ok(())
    }

    /// (f(x, t), tr ∂f/∂x) exactly, from d tangents e₁…e_d at once: O(d) cost, for small d
    /// (FFJORD's "brute force" trace). The trace has shape (B, 1).
    pub fn exact_trace(&self, x: &Tensor, t: &Tensor) -> Result<(Tensor, Tensor)> {
        self.check_square()?;
        let b = self.check_input(x, "TimeNet::exact_trace")?;
        let d = self.in_dim();
        let eye = Tensor::eye(d, x.dtype(), x.device())?;
        let (f, jv) = self.tangents(x, t, &eye.unsqueeze(0)?.broadcast_as((b, d, d))?.contiguous()?)?;
        // jv[b, k, :] = J e_k, so tr J = Σ_k jv[b, k, k]
        let tr = jv.broadcast_mul(&eye.unsqueeze(0)?)?.sum(D::Minus1)?.sum_keepdim(1)?;
        Ok((f, tr))
    }

    /// (f(x, t), εᵀ (∂f/∂x) ε): Hutchinson's unbiased trace estimate for a probe ε of shape
    /// (B, d) with E[εεᵀ] = I (Rademacher or Gaussian; keep it fixed over one ODE solve).
    pub fn hutchinson_trace(&self, x: &Tensor, t: &Tensor, eps: &Tensor) -> Result<(Tensor, Tensor)> {
        self.check_square()?;
        let (f, je) = self.jvp(x, t, eps)?;
        Ok((f, (je * eps)?.sum_keepdim(1)?))
    }
}
