//! OT-Flow's potential (Onken, Wu Fung, Li, Ruthotto, AAAI 2021; Ruthotto, "PDE Framework for Generative Modeling"):
//!
//! Φ(s) = wᵀN(s) + ½ sᵀ(AᵀA)s + bᵀs + c,   s = (x, t) ∈ ℝ^{d+1},
//!
//! with N a ResNet: u₀ = σ(K₀s + b₀), u_i = u_{i−1} + h σ(K_i u_{i−1} + b_i), h = 1/(M−1), and σ =
//! log cosh (σ' = tanh). The velocity of OT-Flow is v = −∇ₓΦ, and the log-determinant needs the
//! Laplacian ΔₓΦ = tr ∇ₓ²Φ. Both come from one forward and one backward sweep: the gradient by
//! the adjoint recursion z_i = z_{i+1} + h K_iᵀ diag(σ'(K_i u_{i−1} + b_i)) z_{i+1}, the Laplacian
//! by the trace recursion of the paper's §3 in O(m²d) per sample instead of d Hessian-vector
//! products. Everything is candle ops: backprop through ∇Φ and ΔΦ trains Φ with first-order AD.

use crate::activation::Activation;
use crate::error::{expect_matrix, Error, Result};
use crate::kernels;
use crate::nets::time_net::time_column;
use crate::params::{Init, ParamBuilder};
use candle_core::{DType, Tensor};

/// Sizes of a [`Potential`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PotentialConfig {
    /// Space dimension d (the input is (x, t) ∈ ℝ^{d+1}).
    pub dim: usize,
    /// ResNet width m.
    pub width: usize,
    /// Number of ResNet layers M ≥ 2 (OT-Flow's `nTh`): the opening layer plus M − 1 residual ones.
    pub layers: usize,
    /// Rank r of A (OT-Flow's default 10, capped at d + 1).
    pub rank: usize,
}

impl PotentialConfig {
    /// OT-Flow's defaults for dimension `dim` and width `width`: M = 2, r = min(10, d + 1).
    pub fn new(dim: usize, width: usize) -> Self {
        Self { dim, width, layers: 2, rank: 10 }
    }
}

/// ∇ₓΦ, ∂ₜΦ and ΔₓΦ at a batch of points.
#[derive(Clone, Debug)]
pub struct PotentialDerivatives {
    /// ∇ₓΦ, shape (B, d).
    pub grad_x: Tensor,
    /// ∂ₜΦ, shape (B, 1).
    pub grad_t: Tensor,
    /// ΔₓΦ = tr ∇ₓ²Φ, shape (B, 1).
    pub laplacian: Tensor,
}

/// OT-Flow's potential Φ(x, t).
#[derive(Clone, Debug)]
pub struct Potential {
    config: PotentialConfig,
    activation: Activation,
    /// K₀ (m, d+1), K_i (m, m) for i = 1…M−1.
    k: Vec<Tensor>,
    /// b₀ … b_{M−1}, each (1, m).
    bias: Vec<Tensor>,
    /// w (1, m), initialised to ones.
    w: Tensor,
    /// A (r, d+1), Xavier-uniform.
    a: Tensor,
    /// b (1, d+1) and c (1, 1), initialised to zero.
    b_lin: Tensor,
    c: Tensor,
}

/// Quantities of one forward sweep that the gradient and Laplacian sweeps reuse.
struct Sweep {
    s: Tensor,
    /// Pre-activations K₀s + b₀, K_i u_{i−1} + b_i, each (B, m).
    pre: Vec<Tensor>,
    /// σ'(pre_i).
    d1: Vec<Tensor>,
    /// Last ResNet state u_{M−1}.
    u_last: Tensor,
}

impl Potential {
    /// A potential with OT-Flow's initialisation (ResNet layers PyTorch-default, w = 1, A Xavier,
    /// b = c = 0) and activation log cosh. Parameters: `k{i}.weight`, `k{i}.bias`, `w`, `A`, `b`, `c`.
    pub fn new(pb: &mut ParamBuilder, config: PotentialConfig) -> Result<Self> {
        Self::with_activation(pb, config, Activation::LogCosh)
    }

    /// As [`Potential::new`] with another smooth activation (the recursions only need σ' and σ'').
    pub fn with_activation(pb: &mut ParamBuilder, config: PotentialConfig, activation: Activation) -> Result<Self> {
        let PotentialConfig { dim: d, width: m, layers, rank } = config;
        if d == 0 || m == 0 || layers < 2 || rank == 0 {
            return Err(Error::Config(format!("Potential needs d ≥ 1, width ≥ 1, layers ≥ 2, rank ≥ 1; got {config:?}")));
        }
        if !activation.is_c2() {
            return Err(Error::Config(format!(
                "{activation:?}'s σ'' is discontinuous, so ΔΦ would be too: pick a C² activation (logcosh, tanh, softplus, swish)"
            )));
        }
        let rank = rank.min(d + 1);
        let mut k = Vec::with_capacity(layers);
        let mut bias = Vec::with_capacity(layers);
        for i in 0..layers {
            let fan_in = if i == 0 { d + 1 } else { m };
            let init = Init::LinearDefault { fan_in };
            let mut lp = pb.pp(&format!("k{i}"));
            k.push(lp.get("weight", (m, fan_in), init)?);
            bias.push(lp.get("bias", (1, m), init)?);
        }
        Ok(Self {
            config: PotentialConfig { rank, ..config },
            activation,
            k,
            bias,
            w: pb.get("w", (1, m), Init::Const(1.0))?,
            a: pb.get("A", (rank, d + 1), Init::XavierUniform)?,
            b_lin: pb.get("b", (1, d + 1), Init::Const(0.0))?,
            c: pb.get("c", (1, 1), Init::Const(0.0))?,
        })
    }

    /// The sizes.
    pub fn config(&self) -> PotentialConfig {
        self.config
    }

    /// Every parameter tensor.
    pub fn params(&self) -> Vec<Tensor> {
        let mut p: Vec<Tensor> = self.k.iter().chain(&self.bias).cloned().collect();
        p.extend([self.w.clone(), self.a.clone(), self.b_lin.clone(), self.c.clone()]);
        p
    }

    fn map(&self, f: &mut dyn FnMut(&Tensor) -> Result<Tensor>) -> Result<Self> {
        Ok(Self {
            config: self.config,
            activation: self.activation,
            k: self.k.iter().map(&mut *f).collect::<Result<_>>()?,
            bias: self.bias.iter().map(&mut *f).collect::<Result<_>>()?,
            w: f(&self.w)?,
            a: f(&self.a)?,
            b_lin: f(&self.b_lin)?,
            c: f(&self.c)?,
        })
    }

    /// A copy whose parameters are cast to `dtype` (differentiable cast).
    pub fn to_dtype(&self, dtype: DType) -> Result<Self> {
        self.map(&mut |p| crate::kernels::cast(p, dtype))
    }

    /// A copy with detached parameters (no graph is recorded through it).
    pub fn detach(&self) -> Result<Self> {
        self.map(&mut |p| Ok(p.detach()))
    }

    fn h(&self) -> f64 {
        1.0 / (self.config.layers - 1) as f64
    }

    /// AᵀA, symmetric (d+1, d+1).
    fn sym_a(&self) -> Result<Tensor> {
        Ok(self.a.t()?.matmul(&self.a)?)
    }

    fn sweep(&self, x: &Tensor, t: &Tensor, context: &'static str) -> Result<Sweep> {
        expect_matrix(x, self.config.dim, context)?;
        let s = Tensor::cat(&[x, &time_column(t, x)?], 1)?;
        let h = self.h();
        let mut pre = Vec::with_capacity(self.config.layers);
        let mut d1 = Vec::with_capacity(self.config.layers);
        let p0 = kernels::bias_add(&kernels::matmul(&s, &self.k[0].t()?)?, &self.bias[0])?;
        let (mut u, d0) = self.activation.value_and_derivative(&p0)?;
        pre.push(p0);
        d1.push(d0);
        for (k, b) in self.k.iter().zip(&self.bias).skip(1) {
            let p = kernels::bias_add(&kernels::matmul(&u, &k.t()?)?, b)?;
            let (sp, dp) = self.activation.value_and_derivative(&p)?;
            u = (u + (sp * h)?)?;
            pre.push(p);
            d1.push(dp);
        }
        Ok(Sweep { s, pre, d1, u_last: u })
    }

    /// Φ(x, t), shape (B, 1).
    pub fn value(&self, x: &Tensor, t: &Tensor) -> Result<Tensor> {
        self.value_of(&self.sweep(x, t, "Potential::value")?)
    }

    fn value_of(&self, sw: &Sweep) -> Result<Tensor> {
        let quad = (sw.s.matmul(&self.sym_a()?)? * &sw.s)?.sum_keepdim(1)?;
        // row-vector products as matmuls: their backward is a matmul too, not a strided dim-0 sum
        let lin = sw.s.matmul(&self.b_lin.t()?)?;
        Ok(((sw.u_last.matmul(&self.w.t()?)? + (quad * 0.5)?)? + lin)?.broadcast_add(&self.c)?)
    }

    /// The adjoint sweep: the cotangents z_{i+1} that layer i sees (terms[i], i = 1…M−1; terms[0]
    /// unused) and z₀ = ∇ₛ of the ResNet part.
    fn adjoint(&self, sw: &Sweep) -> Result<(Vec<Tensor>, Tensor)> {
        let h = self.h();
        let layers = self.config.layers;
        let b = sw.s.dim(0)?;
        // 1wᵀ as a matmul, for the same reason as in `value`
        let mut terms = vec![Tensor::ones((b, 1), self.w.dtype(), self.w.device())?.matmul(&self.w)?; layers];
        let mut z = terms[layers - 1].clone();
        for i in (1..layers).rev() {
            terms[i] = z.clone();
            z = (&z + (kernels::matmul(&(&sw.d1[i] * &z)?, &self.k[i])? * h)?)?;
        }
        terms[0] = z.clone(); // z₁: the cotangent the opening layer sees
        let z0 = kernels::matmul(&(&sw.d1[0] * &z)?, &self.k[0])?;
        Ok((terms, z0))
    }

    fn full_gradient(&self, sw: &Sweep, z0: &Tensor) -> Result<Tensor> {
        kernels::bias_add(&(z0 + sw.s.matmul(&self.sym_a()?)?)?, &self.b_lin)
    }

    fn split(&self, grad_s: &Tensor) -> Result<(Tensor, Tensor)> {
        let d = self.config.dim;
        Ok((grad_s.narrow(1, 0, d)?, grad_s.narrow(1, d, 1)?))
    }

    /// (∇ₓΦ, ∂ₜΦ), shapes (B, d) and (B, 1).
    pub fn gradient(&self, x: &Tensor, t: &Tensor) -> Result<(Tensor, Tensor)> {
        let sw = self.sweep(x, t, "Potential::gradient")?;
        let (_, z0) = self.adjoint(&sw)?;
        self.split(&self.full_gradient(&sw, &z0)?)
    }

    /// ∇ₓΦ, ∂ₜΦ and the exact ΔₓΦ by OT-Flow's trace recursion:
    /// t₀ = Σ_j σ''(pre₀)_j z₁_j ‖K₀ᴱ_j‖², J₀ = diag(σ'(pre₀)) K₀ᴱ (E drops the time column),
    /// t_i = Σ_j σ''(pre_i)_j z_{i+1,j} ‖(K_i J_{i−1})_j‖², J_i = J_{i−1} + h diag(σ'(pre_i)) K_i J_{i−1},
    /// ΔΦ = t₀ + h Σ t_i + tr(Eᵀ AᵀA E).  O(B m² d) work, O(B m d) memory.
    pub fn derivatives(&self, x: &Tensor, t: &Tensor) -> Result<PotentialDerivatives> {
        self.derivatives_of(x, &self.sweep(x, t, "Potential::derivatives")?)
    }

    /// Φ and its [`Potential::derivatives`] from one forward sweep (what a stochastic-control
    /// loss needs at every point of a path).
    pub fn value_and_derivatives(&self, x: &Tensor, t: &Tensor) -> Result<(Tensor, PotentialDerivatives)> {
        let sw = self.sweep(x, t, "Potential::value_and_derivatives")?;
        Ok((self.value_of(&sw)?, self.derivatives_of(x, &sw)?))
    }

    fn derivatives_of(&self, x: &Tensor, sw: &Sweep) -> Result<PotentialDerivatives> {
        let (terms, z0) = self.adjoint(sw)?;
        let (grad_x, grad_t) = self.split(&self.full_gradient(sw, &z0)?)?;
        let (b, d, m, h) = (x.dim(0)?, self.config.dim, self.config.width, self.h());
        let to_mb1 = |t: &Tensor| -> Result<Tensor> { Ok(t.t()?.contiguous()?.unsqueeze(2)?) };
        let k0x = self.k[0].narrow(1, 0, d)?;
        let d2_0 = self.activation.second_derivative(&sw.pre[0])?;
        let mut lap = (&d2_0 * &terms[0])?.matmul(&k0x.sqr()?.sum_keepdim(1)?)?;
        let coef = |i: usize| -> Result<Tensor> { Ok((self.activation.second_derivative(&sw.pre[i])? * &terms[i])?) };
        let coefs = (1..self.config.layers).map(coef).collect::<Result<Vec<_>>>()?;
        let tr_sym = self.a.narrow(1, 0, d)?.sqr()?.sum_all()?.reshape((1, 1))?;
        let k0x_c = k0x.contiguous()?;
        if let Some(t) = kernels::resnet_trace(&k0x_c, &self.k[1..], &sw.d1[..self.config.layers - 1], &coefs, h)? {
            let laplacian = (lap + t)?.broadcast_add(&tr_sym)?;
            return Ok(PotentialDerivatives { grad_x, grad_t, laplacian });
        }
        // the same recursion in candle ops (kernels off, CUDA)
        // J (m, B, d): row j, sample b holds ∂u_j/∂x of that sample.
        // (an outer product per row j, as a batched matmul: its backward needs no strided sum)
        let mut jac = to_mb1(&sw.d1[0])?.matmul(&k0x.unsqueeze(1)?.contiguous()?)?;
        let layers = self.k.iter().zip(&sw.d1).skip(1).zip(&coefs);
        for (i, ((k, d1), coef)) in layers.enumerate() {
            let kj = k.matmul(&jac.reshape((m, b * d))?)?.reshape((m, b, d))?;
            // t_i[b] = Σ_j coef[b, j] Σ_k kj[j, b, k]²
            let coef = coef.t()?.contiguous()?;
            let t_i = kernels::column_sum(&(kj.sqr()?.sum(2)? * coef)?)?.reshape((b, 1))?;
            lap = (lap + (t_i * h)?)?;
            if i + 2 < self.config.layers {
                jac = (jac + (to_mb1(d1)?.broadcast_mul(&kj)? * h)?)?;
            }
        }
        let laplacian = lap.broadcast_add(&tr_sym)?;
        Ok(PotentialDerivatives { grad_x, grad_t, laplacian })
    }

    /// ∇ₓ²Φ v for v of shape (B, d): forward-mode differentiation of the gradient sweep (what
    /// `jax.jvp(grad Φ)` computes, primal included), O(B(m² + md)) per call.
    pub fn hessian_vector_product(&self, x: &Tensor, t: &Tensor, v: &Tensor) -> Result<Tensor> {
        let sw = self.sweep(x, t, "Potential::hessian_vector_product")?;
        let b = expect_matrix(v, self.config.dim, "Potential::hessian_vector_product (direction)")?;
        if b != x.dim(0)? {
            return Err(Error::Shape {
                context: "Potential::hessian_vector_product (direction)",
                expected: format!("({}, {})", x.dim(0)?, self.config.dim),
                got: v.dims().to_vec(),
            });
        }
        let (h, layers) = (self.h(), self.config.layers);
        let s_dot = Tensor::cat(&[v, &v.zeros_like()?.narrow(1, 0, 1)?], 1)?;
        // forward tangents of the pre-activations
        let mut pre_dot = vec![s_dot.matmul(&self.k[0].t()?)?];
        let mut u_dot = (&sw.d1[0] * &pre_dot[0])?;
        for i in 1..layers {
            let p = u_dot.matmul(&self.k[i].t()?)?;
            u_dot = (&u_dot + ((&sw.d1[i] * &p)? * h)?)?;
            pre_dot.push(p);
        }
        // backward sweep and its tangent
        let mut z = self.w.broadcast_as((b, self.config.width))?.contiguous()?;
        let mut z_dot = z.zeros_like()?;
        for i in (1..layers).rev() {
            let d2p = (self.activation.second_derivative(&sw.pre[i])? * &pre_dot[i])?;
            let inner_dot = ((&d2p * &z)? + (&sw.d1[i] * &z_dot)?)?;
            z_dot = (&z_dot + (inner_dot.matmul(&self.k[i])? * h)?)?;
            z = (&z + ((&sw.d1[i] * &z)?.matmul(&self.k[i])? * h)?)?;
        }
        let d2p0 = (self.activation.second_derivative(&sw.pre[0])? * &pre_dot[0])?;
        let z0_dot = ((&d2p0 * &z)? + (&sw.d1[0] * &z_dot)?)?.matmul(&self.k[0])?;
        let hv = (z0_dot + s_dot.matmul(&self.sym_a()?)?)?;
        Ok(hv.narrow(1, 0, self.config.dim)?)
    }

    /// ΔₓΦ the slow way, Σ_k e_kᵀ ∇²Φ e_k by d Hessian-vector products: the baseline OT-Flow's
    /// recursion is measured against (O(d) passes, O(B d (m² + m d)) work). Shape (B, 1).
    pub fn laplacian_by_hvp(&self, x: &Tensor, t: &Tensor) -> Result<Tensor> {
        let (b, d) = (x.dim(0)?, self.config.dim);
        let mut lap = Tensor::zeros((b, 1), x.dtype(), x.device())?;
        for k in 0..d {
            let e = Tensor::zeros((1, d), x.dtype(), x.device())?
                .slice_assign(&[0..1, k..k + 1], &Tensor::ones((1, 1), x.dtype(), x.device())?)?
                .broadcast_as((b, d))?
                .contiguous()?;
            lap = (lap + self.hessian_vector_product(x, t, &e)?.narrow(1, k, 1)?)?;
        }
        Ok(lap)
    }
}
