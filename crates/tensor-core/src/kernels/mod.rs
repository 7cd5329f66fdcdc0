//! Fused CPU kernels for the hot paths of the derivative networks (issue 3), as candle custom
//! ops. The elementwise, bias and tangent kernels write their backward in candle ops (so it is
//! differentiable in turn); the network op's backward is hand-written and first-order. Each kernel
//! has a composite reference — the same formula in plain candle ops — one switch away:
//! [`set_fused`]`(false)` (or `CONTINUUM_KERNELS=composite` in the environment) routes every
//! model back through it. Kernels run for contiguous f32/f64 tensors on the CPU, and for bf16/f16
//! ones by computing in f32 and rounding each result once (the network op: f32/f64 only);
//! strided inputs and CUDA tensors take the composite path.
//!
//! - [`tanh()`]: a vectorised tanh (accuracy notes in [`mod@tanh`]);
//! - [`selu()`]: a vectorised SELU ([`mod@selu`]);
//! - [`sigmoid()`], [`softplus()`], [`swish()`], [`log_cosh()`]: vectorised, within 1 ulp in f32
//!   ([`mod@smooth`]);
//! - [`bias_add`] and [`column_sum`]: a dense layer's bias and its gradient, without candle's
//!   strided dim-0 reduction (`bias`);
//! - [`scale_tangents`]: K tangents times a per-sample factor, ȧ = s ⊙ ż, whose ∂s needs no
//!   strided middle-axis reduction (`tangents`);
//! - [`network_tangents`]: a whole network of [`AffineForm`] layers with K tangents (JVP, exact
//!   and Hutchinson traces, or the value alone) as one graph node with a hand-written backward
//!   (`network`);
//! - [`resnet_trace`]: the Jacobian recursion of OT-Flow's exact Laplacian, one node with a
//!   hand-written backward (`trace`; 16-bit storage computed in f32);
//! - [`matmul`]: 16-bit matrix products through f32 with vectorised conversions, bf16 ones on
//!   AVX512-BF16 where the CPU has it (`matmul`, [`dot_bf16`]);
//! - [`cast`]: f32 ↔ bf16/f16 casts as one vectorised pass each way (`cast`);
//! - [`im2col_3x3`]: the columns of a 3×3 convolution on channels-last images and their adjoint
//!   (`im2col`; any float dtype);
//! - `elementwise`: the shared eˣ, eˣ − 1 and ln(1 + u) and the runtime-dispatched slice-kernel macro.

mod bias;
mod cast;
mod dense;
pub mod dot_bf16;
mod elementwise;
mod im2col;
mod matmul;
mod network;
pub mod selu;
pub mod smooth;
mod tangents;
pub mod tanh;
mod trace;

use crate::error::Result;
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};
pub use network::{network_tangents, AffineForm};
use std::sync::atomic::{AtomicU8, Ordering};
pub use trace::resnet_trace;

/// A process-wide switch, read from an environment variable the first time it is asked (on
/// unless the variable holds `off_value`, and only where `available`), then settable.
struct Switch {
    /// 0: not read yet, 1: on, 2: off.
    state: AtomicU8,
    var: &'static str,
    off_value: &'static str,
}

impl Switch {
    const fn new(var: &'static str, off_value: &'static str) -> Self {
        Self { state: AtomicU8::new(0), var, off_value }
    }

    fn get(&self, available: impl FnOnce() -> bool) -> bool {
        match self.state.load(Ordering::Relaxed) {
            1 => true,
            2 => false,
            _ => self.set(available() && std::env::var(self.var).map_or(true, |v| v != self.off_value)),
        }
    }

    /// Sets the switch; returns `on`.
    fn set(&self, on: bool) -> bool {
        self.state.store(if on { 1 } else { 2 }, Ordering::Relaxed);
        on
    }
}

static FUSED: Switch = Switch::new("CONTINUUM_KERNELS", "composite");

/// Whether the fused kernels are used (default: yes, unless `CONTINUUM_KERNELS=composite`).
pub fn fused() -> bool {
    FUSED.get(|| true)
}

/// Switches every model between the fused kernels (`true`) and the composite candle ops.
pub fn set_fused(on: bool) {
    FUSED.set(on);
}

/// The elementwise kernels, as one candle custom op.
#[derive(Clone, Copy)]
enum Elementwise {
    Tanh,
    Selu,
    Sigmoid,
    Softplus,
    Swish,
    LogCosh,
}

type SliceKernels = (fn(&[f32], &mut [f32]), fn(&[f64], &mut [f64]));

impl Elementwise {
    fn kernels(self) -> SliceKernels {
        match self {
            Self::Tanh => (tanh::tanh_f32, tanh::tanh_f64),
            Self::Selu => (selu::selu_f32, selu::selu_f64),
            Self::Sigmoid => (smooth::sigmoid_f32, smooth::sigmoid_f64),
            Self::Softplus => (smooth::softplus_f32, smooth::softplus_f64),
            Self::Swish => (smooth::swish_f32, smooth::swish_f64),
            Self::LogCosh => (smooth::log_cosh_f32, smooth::log_cosh_f64),
        }
    }
}

impl CustomOp1 for Elementwise {
    fn name(&self) -> &'static str {
        match self {
            Self::Tanh => "continuum-tanh",
            Self::Selu => "continuum-selu",
            Self::Sigmoid => "continuum-sigmoid",
            Self::Softplus => "continuum-softplus",
            Self::Swish => "continuum-swish",
            Self::LogCosh => "continuum-log-cosh",
        }
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (k32, k64) = self.kernels();
        let out = float_op(
            self.name(),
            storage,
            layout,
            |x| {
                let mut out = vec![0f32; x.len()];
                k32(x, &mut out);
                out
            },
            |x| {
                let mut out = vec![0f64; x.len()];
                k64(x, &mut out);
                out
            },
        )?;
        Ok((out, layout.shape().clone()))
    }

    /// σ'(z) · grad: tanh' = 1 − tanh², sigmoid' = s(1 − s) (both from the output), softplus' =
    /// sigmoid, log cosh' = tanh, SELU' and swish' from `Activation`.
    fn bwd(&self, arg: &Tensor, res: &Tensor, grad_res: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let msg = |e: crate::Error| candle_core::Error::Msg(e.to_string());
        let local = match self {
            Self::Tanh => (1.0 - res.sqr()?)?,
            Self::Sigmoid => (res * (1.0 - res)?)?,
            Self::Softplus => sigmoid(arg).map_err(msg)?,
            Self::LogCosh => tanh(arg).map_err(msg)?,
            Self::Selu => crate::Activation::Selu.derivative(arg).map_err(msg)?,
            Self::Swish => crate::Activation::Swish.derivative(arg).map_err(msg)?,
        };
        Ok(Some(grad_res.mul(&local)?))
    }
}

/// The elements a contiguous layout covers, or an error naming the op.
fn contiguous_slice<'a, T>(x: &'a [T], layout: &Layout, name: &str) -> candle_core::Result<&'a [T]> {
    let (start, end) = layout.contiguous_offsets().ok_or_else(|| candle_core::Error::Msg(format!("{name}: needs contiguous inputs")))?;
    if start == end {
        return Ok(&x[..0]); // an empty view may start past the end of an empty storage
    }
    x.get(start..end).ok_or_else(|| candle_core::Error::Msg(format!("{name}: layout {start}..{end} outside a storage of {}", x.len())))
}

/// A one-operand kernel on contiguous f32 or f64 storage (`on_f32` / `on_f64`; bf16 and f16 run
/// `on_f32` on their f32 values, the result rounded once: see `dense`), or an error naming op
/// `name`. Column sums of 16-bit data so accumulate in f32.
fn float_op(
    name: &str,
    x: &CpuStorage,
    xl: &Layout,
    on_f32: impl FnOnce(&[f32]) -> Vec<f32>,
    on_f64: impl FnOnce(&[f64]) -> Vec<f64>,
) -> candle_core::Result<CpuStorage> {
    Ok(match x {
        CpuStorage::F32(x) => CpuStorage::F32(on_f32(contiguous_slice(x, xl, name)?)),
        CpuStorage::F64(x) => CpuStorage::F64(on_f64(contiguous_slice(x, xl, name)?)),
        CpuStorage::BF16(_) | CpuStorage::F16(_) => dense::from_f32(&on_f32(&dense::to_f32(x, xl)?), x.dtype())?,
        _ => return Err(candle_core::Error::Msg(format!("{name}: f32, f64, bf16 or f16 only"))),
    })
}

/// A two-operand kernel on contiguous storage of one float dtype (16-bit as in [`float_op`]), or
/// an error naming op `name`.
fn float_op2(
    name: &str,
    (a, al): (&CpuStorage, &Layout),
    (b, bl): (&CpuStorage, &Layout),
    on_f32: impl FnOnce(&[f32], &[f32]) -> Vec<f32>,
    on_f64: impl FnOnce(&[f64], &[f64]) -> Vec<f64>,
) -> candle_core::Result<CpuStorage> {
    Ok(match (a, b) {
        (CpuStorage::F32(a), CpuStorage::F32(b)) => CpuStorage::F32(on_f32(contiguous_slice(a, al, name)?, contiguous_slice(b, bl, name)?)),
        (CpuStorage::F64(a), CpuStorage::F64(b)) => CpuStorage::F64(on_f64(contiguous_slice(a, al, name)?, contiguous_slice(b, bl, name)?)),
        (CpuStorage::BF16(_), CpuStorage::BF16(_)) | (CpuStorage::F16(_), CpuStorage::F16(_)) => {
            dense::from_f32(&on_f32(&dense::to_f32(a, al)?, &dense::to_f32(b, bl)?), a.dtype())?
        }
        _ => return Err(candle_core::Error::Msg(format!("{name}: f32, f64, bf16 or f16 only, both operands alike"))),
    })
}

/// The dtypes the elementwise, bias and tangent kernels take (16-bit computed in f32).
fn kernel_dtype(dtype: candle_core::DType) -> bool {
    use candle_core::DType::*;
    matches!(dtype, F32 | F64 | BF16 | F16)
}

fn kernel_applies(z: &Tensor) -> bool {
    fused() && z.device().is_cpu() && z.is_contiguous() && kernel_dtype(z.dtype())
}

/// out[i] = e^{x[i]} for f64 slices of equal length, vectorised (AVX-512 / AVX2 / baseline picked
/// at run time, long slices over rayon's pool), to a few 1e-16 relative; overflow to ∞ above
/// ≈ 709.8, gradual underflow to 0 below ≈ −708, NaN in NaN out. For callers that work on plain
/// slices (Sinkhorn's kernel exp((α ⊕ β − C)/ε)); candle's f64 `exp` calls libm per element.
pub fn exp_slice(x: &[f64], out: &mut [f64]) -> Result<()> {
    if x.len() != out.len() {
        return Err(crate::Error::Config(format!("exp_slice: input has {} elements, output {}", x.len(), out.len())));
    }
    elementwise::exp_f64(x, out);
    Ok(())
}

/// a · b for matrices a (m, k) and b (k, n): for bf16/f16 CPU tensors (any strides; kernels on)
/// the f32 product of their exact values rounded once, with vectorised conversions (`matmul`);
/// elsewhere candle's `matmul`, which computes the same numbers.
///
/// ```
/// use candle_core::{DType, Device, Tensor};
/// let a = Tensor::new(&[[1.0f32, 2.0], [3.0, 4.0]], &Device::Cpu)?.to_dtype(DType::BF16)?;
/// let b = a.t()?; // a strided view
/// let c = tensor_core::kernels::matmul(&a, &b)?; // [[5, 11], [11, 25]], in bf16
/// assert_eq!(c.dtype(), DType::BF16);
/// assert_eq!(c.to_dtype(DType::F32)?.to_vec2::<f32>()?, [[5.0, 11.0], [11.0, 25.0]]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn matmul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let half = matches!(a.dtype(), candle_core::DType::BF16 | candle_core::DType::F16);
    if fused() && half && a.dtype() == b.dtype() && a.device().is_cpu() && b.device().is_cpu() && a.rank() == 2 && b.rank() == 2 {
        return Ok(a.apply_op2(b, matmul::Matmul16)?);
    }
    Ok(a.matmul(b)?)
}

/// `t` cast to `dtype`: between f32, bf16 and f16 on the CPU (contiguous, kernels on) one
/// vectorised pass rounding to nearest even — the numbers candle's `to_dtype` gives — whose
/// backward casts the gradient back the same way; elsewhere candle's `to_dtype`.
///
/// ```
/// use candle_core::{DType, Device, Tensor};
/// let w = Tensor::new(&[1.0f32, 1.0 + 1.0 / 512.0, 3.0], &Device::Cpu)?;
/// let low = tensor_core::kernels::cast(&w, DType::BF16)?; // 1 + 2⁻⁹ ties to even: 1
/// assert_eq!(low.to_dtype(DType::F32)?.to_vec1::<f32>()?, [1.0, 1.0, 3.0]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn cast(t: &Tensor, dtype: candle_core::DType) -> Result<Tensor> {
    use candle_core::DType::*;
    if t.dtype() == dtype {
        return Ok(t.clone());
    }
    let floats = |d| matches!(d, F32 | BF16 | F16);
    if kernel_applies(t) && floats(t.dtype()) && floats(dtype) {
        return Ok(t.apply_op1(cast::Cast { to: dtype })?);
    }
    Ok(t.to_dtype(dtype)?)
}

/// tanh z elementwise: the vectorised kernel where it applies, else candle's `tanh`.
pub fn tanh(z: &Tensor) -> Result<Tensor> {
    elementwise(z, Elementwise::Tanh, |z| Ok(z.tanh()?))
}

/// SELU elementwise: the vectorised kernel where it applies, else [`selu_composite`].
pub fn selu(z: &Tensor) -> Result<Tensor> {
    elementwise(z, Elementwise::Selu, selu_composite)
}

/// SELU in candle ops, λ(relu z + α(e^{min(z,0)} − 1)): the reference of [`selu`].
pub fn selu_composite(z: &Tensor) -> Result<Tensor> {
    Ok(((z.relu()? + ((z.minimum(0.0)?.exp()? - 1.0)? * selu::SELU_ALPHA)?)? * selu::SELU_LAMBDA)?)
}

/// The kernel `op` where it applies, else `composite(z)`.
fn elementwise(z: &Tensor, op: Elementwise, composite: fn(&Tensor) -> Result<Tensor>) -> Result<Tensor> {
    if kernel_applies(z) {
        Ok(z.apply_op1(op)?)
    } else {
        composite(z)
    }
}

/// sigmoid z elementwise: the vectorised kernel where it applies, else [`sigmoid_composite`].
pub fn sigmoid(z: &Tensor) -> Result<Tensor> {
    elementwise(z, Elementwise::Sigmoid, sigmoid_composite)
}

/// softplus z = ln(1 + eᶻ) elementwise: the kernel where it applies, else [`softplus_composite`].
pub fn softplus(z: &Tensor) -> Result<Tensor> {
    elementwise(z, Elementwise::Softplus, softplus_composite)
}

/// swish z = z · sigmoid z elementwise: the kernel where it applies, else [`swish_composite`].
pub fn swish(z: &Tensor) -> Result<Tensor> {
    elementwise(z, Elementwise::Swish, swish_composite)
}

/// log cosh z elementwise: the kernel where it applies, else [`log_cosh_composite`].
pub fn log_cosh(z: &Tensor) -> Result<Tensor> {
    elementwise(z, Elementwise::LogCosh, log_cosh_composite)
}

/// 1/(1 + e^{−z}) in candle ops (e^{−z} → ∞ gives 0, the right limit): the reference of [`sigmoid`].
pub fn sigmoid_composite(z: &Tensor) -> Result<Tensor> {
    Ok((z.neg()?.exp()? + 1.0)?.recip()?)
}

/// relu(z) + ln(1 + e^{−|z|}) in candle ops (no overflow for large |z|): the reference of [`softplus`].
pub fn softplus_composite(z: &Tensor) -> Result<Tensor> {
    Ok((z.relu()? + (z.abs()?.neg()?.exp()? + 1.0)?.log()?)?)
}

/// z · sigmoid z in candle ops: the reference of [`swish`].
pub fn swish_composite(z: &Tensor) -> Result<Tensor> {
    Ok((z * sigmoid_composite(z)?)?)
}

/// |z| + ln(1 + e^{−2|z|}) − ln 2 in candle ops: the reference of [`log_cosh`] (which also keeps
/// its relative accuracy near 0, where this form cancels).
pub fn log_cosh_composite(z: &Tensor) -> Result<Tensor> {
    let a = z.abs()?;
    Ok(((&a + ((&a * -2.0)?.exp()? + 1.0)?.log()?)? - std::f64::consts::LN_2)?)
}

/// The im2col matrix (B·H·W, 9·C) of channels-last images (B, H, W, C) for a 3×3 kernel with
/// zero padding 1 (`mirrored`: the offsets negated, for the adjoint), as one CPU pass with a
/// col2im backward; `None` where the kernel does not apply (CUDA, composite mode), for the
/// caller's composite path.
pub fn im2col_3x3(x: &Tensor, mirrored: bool) -> Result<Option<Tensor>> {
    if !(fused() && x.device().is_cpu() && x.dtype().is_float() && x.rank() == 4) {
        return Ok(None);
    }
    Ok(Some(x.contiguous()?.apply_op1(im2col::Im2Col { mirrored })?))
}

/// z + 1bᵀ for z of shape (B, m) and b of shape (1, m) (a dense layer's bias): one pass, and a
/// backward whose ∂b is [`column_sum`]; any other pair of shapes goes to candle's
/// `broadcast_add` (so a (B, m) `b` adds elementwise).
pub fn bias_add(z: &Tensor, b: &Tensor) -> Result<Tensor> {
    let fits = matches!(z.dims(), [_, m] if *m > 0 && (b.dims() == [1, *m] || b.dims() == [*m])) && z.dtype() == b.dtype();
    Ok(if fits && kernel_applies(z) && kernel_applies(b) { z.apply_op2(b, bias::BiasAdd)? } else { z.broadcast_add(b)? })
}

/// 1ᵀg, the sum of the rows of a (B, m) tensor, as a (1, m) tensor: a row-by-row accumulation
/// where the kernel applies (strided input is copied first), else candle's `sum_keepdim(0)`.
pub fn column_sum(g: &Tensor) -> Result<Tensor> {
    let fits = matches!(g.dims(), [_, m] if *m > 0);
    Ok(if fits && fused() && g.device().is_cpu() && kernel_dtype(g.dtype()) {
        g.contiguous()?.apply_op1(bias::ColumnSum)?
    } else {
        g.sum_keepdim(0)?
    })
}

/// ȧ[b, k, :] = s[b, :] ⊙ ż[b, k, :] for K tangents ż of shape (B, K, m) and s of shape (B, m)
/// (σ'(z), or a per-sample time gate) or (1, m) (one factor for the whole batch): one pass, with a
/// backward whose ∂s is accumulated row by row; elsewhere candle's `broadcast_mul`.
pub fn scale_tangents(z_dot: &Tensor, s: &Tensor) -> Result<Tensor> {
    let (b, k, m) = z_dot.dims3()?;
    let shared = s.dims() == [1, m] && b != 1;
    let fits = (s.dims() == [b, m] || shared) && k > 0 && m > 0 && z_dot.dtype() == s.dtype() && kernel_applies(z_dot) && kernel_applies(s);
    Ok(match (fits, shared) {
        // one factor for all B·K rows: the same kernel on (1, B·K, m)
        (true, true) => z_dot.reshape((1, b * k, m))?.apply_op2(s, tangents::ScaleTangents)?.reshape((b, k, m))?,
        (true, false) => z_dot.apply_op2(s, tangents::ScaleTangents)?,
        (false, _) => z_dot.broadcast_mul(&s.unsqueeze(1)?)?,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn exp_slice_matches_libm_and_refuses_unequal_lengths() {
        let x: Vec<f64> = (0..100_000).map(|i| -740.0 + 1450.0 * i as f64 / 99_999.0).collect();
        let mut out = vec![0.0; x.len()];
        super::exp_slice(&x, &mut out).unwrap();
        for (&xi, &oi) in x.iter().zip(&out) {
            let e = xi.exp();
            let tol = if e < f64::MIN_POSITIVE { 1e-320 } else { 4e-16 * e };
            assert!((oi - e).abs() <= tol || (oi.is_infinite() && e.is_infinite()), "exp({xi}) = {oi}, libm {e}");
        }
        assert!(super::exp_slice(&x, &mut out[..3]).is_err());
    }
}
