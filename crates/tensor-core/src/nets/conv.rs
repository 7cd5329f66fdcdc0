//! Image layers, channels-last (B, H, W, C): the 3×3 convolution and its adjoint (the
//! transposed convolution with the same weights), the 1×1 convolution, instance norm and
//! average pooling — what the parabolic CNN of "Deep Neural Networks Motivated by Partial
//! Differential Equations" (Ruthotto & Haber, 2020) is built from.
//!
//! The convolutions are matrix products over im2col columns: they run and differentiate in every
//! dtype on every device (candle's CPU `conv2d` refuses bf16), and a 16-bit product is one
//! 16-bit matmul with f32 accumulation. On the CPU the columns come from one fused pass
//! ([`crate::kernels::im2col_3x3`]); elsewhere, and with the kernels switched off, from candle
//! ops (pads, narrows, a concatenation) — the reference the tests compare against. The reductions (instance norm,
//! pooling) accumulate in f32 whatever the input's dtype, because candle sums in the tensor's
//! own dtype.

use crate::error::{Error, Result};
use crate::params::{Init, ParamBuilder};
use candle_core::{DType, Tensor};

/// The 3×3 neighbourhood offsets (dy, dx), row-major: offset o = 3(dy + 1) + (dx + 1), the
/// order of PyTorch's (ky, kx) kernel entries.
const OFFSETS: [(usize, usize); 9] = [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2), (2, 0), (2, 1), (2, 2)];

/// Checks a channels-last batch (B, H, W, C) with `channels` channels.
fn expect_image(x: &Tensor, channels: usize, context: &'static str) -> Result<(usize, usize, usize, usize)> {
    match x.dims() {
        &[b, h, w, c] if c == channels => Ok((b, h, w, c)),
        dims => Err(Error::Shape { context, expected: format!("(batch, height, width, {channels}) channels-last"), got: dims.to_vec() }),
    }
}

/// The im2col matrix of a 3×3 kernel with zero padding 1: (B·H·W, 9·C), column o·C + c holding
/// x[b, h + dy − 1, w + dx − 1, c] (zero outside the image). `mirrored` negates the offsets:
/// the columns of the adjoint, which reads the neighbourhood point-reflected.
fn columns(x: &Tensor, mirrored: bool) -> Result<Tensor> {
    if let Some(cols) = crate::kernels::im2col_3x3(x, mirrored)? {
        return Ok(cols);
    }
    let (b, h, w, c) = x.dims4()?;
    let padded = x.pad_with_zeros(1, 1, 1)?.pad_with_zeros(2, 1, 1)?;
    let shifted = OFFSETS
        .iter()
        .map(|&(dy, dx)| {
            let (dy, dx) = if mirrored { (2 - dy, 2 - dx) } else { (dy, dx) };
            Ok(padded.narrow(1, dy, h)?.narrow(2, dx, w)?)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Tensor::cat(&shifted, 3)?.reshape((b * h * w, 9 * c))?)
}

/// a · b for 2-D operands of one dtype. On the CPU, 16-bit operands are multiplied with f32
/// accumulation and the product rounded back — by [`crate::kernels::matmul`] (bf16 on
/// AVX512-BF16 where the CPU has it), or with the kernels off as f32 candle products: candle's
/// own 16-bit CPU matmul gives the same numbers (it accumulates in f32 and rounds;
/// `tests/conv.rs` checks the two agree) at a fraction of the speed, converting element by
/// element.
pub fn matmul_16bit_exact(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let dtype = a.dtype();
    if a.device().is_cpu() && matches!(dtype, DType::BF16 | DType::F16) && b.dtype() == dtype {
        if crate::kernels::fused() {
            return crate::kernels::matmul(a, b);
        }
        return Ok(a.to_dtype(DType::F32)?.matmul(&b.to_dtype(DType::F32)?)?.to_dtype(dtype)?);
    }
    Ok(a.matmul(b)?)
}

/// A 3×3 convolution, stride 1, zero padding 1: (K x)[p, j] = Σ_{o, i} W[o, i, j] x[p + δ_o, i]
/// (+ b_j). The weight is stored as (9, C_in, C_out); PyTorch's (C_out, C_in, 3, 3) kernel is
/// its `permute(2, 3, 1, 0)`.
#[derive(Clone, Debug)]
pub struct Conv3x3 {
    /// (9, C_in, C_out).
    pub weight: Tensor,
    /// (C_out), or none.
    pub bias: Option<Tensor>,
}

impl Conv3x3 {
    /// A convolution with PyTorch's `nn.Conv2d` default initialisation
    /// (U(−b, b), b = 1/√(9 C_in), for weight and bias).
    pub fn new(pb: &mut ParamBuilder, c_in: usize, c_out: usize, bias: bool) -> Result<Self> {
        let init = Init::LinearDefault { fan_in: 9 * c_in };
        let weight = pb.get("weight", (9, c_in, c_out), init)?;
        let bias = if bias { Some(pb.get("bias", c_out, init)?) } else { None };
        Ok(Self { weight, bias })
    }

    /// (C_in, C_out).
    pub fn channels(&self) -> Result<(usize, usize)> {
        let (_, c_in, c_out) = self.weight.dims3()?;
        Ok((c_in, c_out))
    }

    /// K x + b for x of shape (B, H, W, C_in): (B, H, W, C_out).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (c_in, c_out) = self.channels()?;
        let (b, h, w, _) = expect_image(x, c_in, "Conv3x3::forward")?;
        let z = matmul_16bit_exact(&columns(x, false)?, &self.weight.reshape((9 * c_in, c_out))?)?;
        let z = match &self.bias {
            Some(bias) => z.broadcast_add(bias)?,
            None => z,
        };
        Ok(z.reshape((b, h, w, c_out))?)
    }

    /// Kᵀ z, the adjoint of the bias-free convolution (PyTorch's `conv_transpose2d` with the
    /// same weight, stride 1, padding 1): ⟨K x, z⟩ = ⟨x, Kᵀ z⟩. z is (B, H, W, C_out); the
    /// result (B, H, W, C_in).
    pub fn transpose(&self, z: &Tensor) -> Result<Tensor> {
        let (c_in, c_out) = self.channels()?;
        let (b, h, w, _) = expect_image(z, c_out, "Conv3x3::transpose")?;
        let weight_t = self.weight.transpose(1, 2)?.contiguous()?.reshape((9 * c_out, c_in))?;
        Ok(matmul_16bit_exact(&columns(z, true)?, &weight_t)?.reshape((b, h, w, c_in))?)
    }

    /// The same convolution with its parameters cast to `dtype` (differentiably).
    pub fn to_dtype(&self, dtype: DType) -> Result<Self> {
        Ok(Self {
            weight: crate::kernels::cast(&self.weight, dtype)?,
            bias: self.bias.as_ref().map(|b| crate::kernels::cast(b, dtype)).transpose()?,
        })
    }
}

/// A 1×1 convolution: a per-pixel linear map of the channels, x W + b.
#[derive(Clone, Debug)]
pub struct Conv1x1 {
    /// (C_in, C_out).
    pub weight: Tensor,
    /// (C_out).
    pub bias: Tensor,
}

impl Conv1x1 {
    /// A 1×1 convolution with PyTorch's default initialisation (U(−b, b), b = 1/√C_in).
    pub fn new(pb: &mut ParamBuilder, c_in: usize, c_out: usize) -> Result<Self> {
        let init = Init::LinearDefault { fan_in: c_in };
        Ok(Self { weight: pb.get("weight", (c_in, c_out), init)?, bias: pb.get("bias", c_out, init)? })
    }

    /// x W + b for x of shape (B, H, W, C_in): (B, H, W, C_out).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (c_in, c_out) = self.weight.dims2()?;
        let (b, h, w, _) = expect_image(x, c_in, "Conv1x1::forward")?;
        Ok(matmul_16bit_exact(&x.reshape((b * h * w, c_in))?, &self.weight)?.broadcast_add(&self.bias)?.reshape((b, h, w, c_out))?)
    }

    /// The same layer with its parameters cast to `dtype` (differentiably).
    pub fn to_dtype(&self, dtype: DType) -> Result<Self> {
        Ok(Self { weight: crate::kernels::cast(&self.weight, dtype)?, bias: crate::kernels::cast(&self.bias, dtype)? })
    }
}

/// ε of PyTorch's `InstanceNorm2d`.
pub const INSTANCE_NORM_EPS: f64 = 1e-5;

/// Instance norm ("Instance Normalization: The Missing Ingredient for Fast Stylization",
/// Ulyanov et al., 2016): each image's channel normalised over its pixels,
/// (x − μ_bc)/√(σ²_bc + ε) with the biased variance, then γ_c · + β_c when `affine` is given.
/// Statistics in f32 (or f64 for f64 input); the result in x's dtype.
pub fn instance_norm(x: &Tensor, affine: Option<(&Tensor, &Tensor)>) -> Result<Tensor> {
    let (_, h, w, _) = x.dims4()?;
    if h * w < 2 {
        return Err(Error::Shape {
            context: "instance_norm",
            expected: "images with at least 2 pixels (the variance of one pixel is 0)".into(),
            got: x.dims().to_vec(),
        });
    }
    let dtype = x.dtype();
    let xs = if dtype == DType::F64 { x.clone() } else { x.to_dtype(DType::F32)? };
    let centred = xs.broadcast_sub(&pixel_mean(&xs)?)?;
    let var = pixel_mean(&centred.sqr()?)?;
    let mut y = centred.broadcast_div(&(var + INSTANCE_NORM_EPS)?.sqrt()?)?;
    if let Some((gamma, beta)) = affine {
        y = y.broadcast_mul(&gamma.to_dtype(y.dtype())?)?.broadcast_add(&beta.to_dtype(y.dtype())?)?;
    }
    Ok(y.to_dtype(dtype)?)
}

/// The mean over the pixels of each image's channel, (B, H, W, C) → (B, 1, 1, C), as a batched
/// product with a row of 1/(H·W): candle's reductions over the middle axes of a channels-last
/// tensor are strided loops several times slower than the product.
fn pixel_mean(x: &Tensor) -> Result<Tensor> {
    let (b, h, w, c) = x.dims4()?;
    let weights =
        Tensor::full(1.0 / (h * w) as f64, (1, 1, h * w), x.device())?.to_dtype(x.dtype())?.broadcast_as((b, 1, h * w))?.contiguous()?;
    Ok(weights.matmul(&x.reshape((b, h * w, c))?)?.reshape((b, 1, 1, c))?)
}

/// 2×2 average pooling with stride 2: (B, H, W, C) → (B, H/2, W/2, C); H and W must be even.
pub fn avg_pool_2x2(x: &Tensor) -> Result<Tensor> {
    let (b, h, w, c) = x.dims4()?;
    if !h.is_multiple_of(2) || !w.is_multiple_of(2) {
        return Err(Error::Shape { context: "avg_pool_2x2", expected: "even height and width".into(), got: x.dims().to_vec() });
    }
    let dtype = x.dtype();
    let xs = if dtype == DType::F64 { x.clone() } else { x.to_dtype(DType::F32)? };
    Ok(xs.reshape((b, h / 2, 2, w / 2, 2, c))?.mean(4)?.mean(2)?.to_dtype(dtype)?)
}

/// Global average pooling: (B, H, W, C) → (B, C), accumulated in f32.
pub fn global_avg_pool(x: &Tensor) -> Result<Tensor> {
    let (b, _, _, c) = x.dims4()?;
    let dtype = x.dtype();
    let xs = if dtype == DType::F64 { x.clone() } else { x.to_dtype(DType::F32)? };
    Ok(pixel_mean(&xs)?.reshape((b, c))?.to_dtype(dtype)?)
}
