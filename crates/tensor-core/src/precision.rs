//! The precision policy of Ruthotto, "Continuous-Time Deep Learning for Generative AI and High-Dim PDEs" ("Mixed Precision for Neural ODEs"):
//! evaluate networks in a low precision L, accumulate states and gradients in a high
//! precision H. `Q_L` and `Q_H` are rounding to nearest (ties to even) into L and H.

use crate::error::{Error, Result};
use candle_core::{DType, Device, Tensor};
use std::fmt;
use std::str::FromStr;

/// A floating-point format a computation can run in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// IEEE binary64, the reference precision of every test.
    F64,
    /// IEEE binary32.
    F32,
    /// NVIDIA TensorFloat-32: f32 storage, matmul inputs rounded to a 10-bit mantissa on
    /// Ampere+ GPUs. On the CPU there is no TF32 unit and it behaves exactly as [`Precision::F32`].
    Tf32,
    /// bfloat16: 8-bit exponent (f32's range), 7-bit mantissa.
    Bf16,
    /// IEEE binary16: 5-bit exponent (max 65504), 10-bit mantissa.
    F16,
}

impl Precision {
    /// All formats, high to low.
    pub const ALL: [Precision; 5] = [Self::F64, Self::F32, Self::Tf32, Self::Bf16, Self::F16];

    /// The precision a tensor of `dtype` is stored in (f32 for anything that is not a float of
    /// another width).
    pub fn of_dtype(dtype: DType) -> Self {
        match dtype {
            DType::F64 => Self::F64,
            DType::F16 => Self::F16,
            DType::BF16 => Self::Bf16,
            _ => Self::F32,
        }
    }

    /// The candle dtype tensors of this precision are stored in.
    pub fn dtype(self) -> DType {
        match self {
            Self::F64 => DType::F64,
            Self::F32 | Self::Tf32 => DType::F32,
            Self::Bf16 => DType::BF16,
            Self::F16 => DType::F16,
        }
    }

    /// Unit roundoff u = 2^-(p) where p counts the significand bits including the hidden one
    /// (u = ε/2 for round-to-nearest): f64 2⁻⁵³, f32 2⁻²⁴, tf32 and f16 2⁻¹¹, bf16 2⁻⁸.
    pub fn unit_roundoff(self) -> f64 {
        match self {
            Self::F64 => 2f64.powi(-53),
            Self::F32 => 2f64.powi(-24),
            Self::Tf32 | Self::F16 => 2f64.powi(-11),
            Self::Bf16 => 2f64.powi(-8),
        }
    }

    /// Machine epsilon, the gap between 1 and the next number: 2u.
    pub fn epsilon(self) -> f64 {
        2.0 * self.unit_roundoff()
    }

    /// Largest finite value of the format (f16: 65504, the limit dynamic scaling works against).
    pub fn max_finite(self) -> f64 {
        match self {
            Self::F64 => f64::MAX,
            Self::F32 | Self::Tf32 => f32::MAX as f64,
            Self::Bf16 => half::bf16::MAX.to_f64(),
            Self::F16 => half::f16::MAX.to_f64(),
        }
    }

    /// Smallest positive normal value: below it values are subnormal and lose digits (f16: 2⁻¹⁴).
    pub fn min_positive_normal(self) -> f64 {
        match self {
            Self::F64 => f64::MIN_POSITIVE,
            Self::F32 | Self::Tf32 => f32::MIN_POSITIVE as f64,
            Self::Bf16 => half::bf16::MIN_POSITIVE.to_f64(),
            Self::F16 => half::f16::MIN_POSITIVE.to_f64(),
        }
    }

    /// True for the 16-bit formats, the ones that need loss/adjoint scaling.
    pub fn is_half(self) -> bool {
        matches!(self, Self::Bf16 | Self::F16)
    }

    /// Rounds `t` into this precision (Q_L or Q_H of Ruthotto, "Continuous-Time Deep Learning for Generative AI and High-Dim PDEs"). A no-op when `t` already has
    /// the storage dtype. [`crate::kernels::cast`] rounds to nearest, ties to even, with overflow to
    /// ±inf, as candle's `to_dtype` does.
    pub fn quantize(self, t: &Tensor) -> Result<Tensor> {
        crate::kernels::cast(t, self.dtype())
    }

    /// What this precision actually does on `device`, when that differs from its name
    /// (TF32 on the CPU is plain f32). `None` when it runs as named.
    pub fn note_on(self, device: &Device) -> Option<&'static str> {
        match (self, device) {
            (Self::Tf32, Device::Cpu) => Some("tf32 on CPU runs as f32 (no TF32 unit)"),
            _ => None,
        }
    }

    /// Switches global GPU state this precision needs: TF32 turns on candle's reduced-precision
    /// f32 GEMM, every other precision turns it off. A no-op on the CPU.
    pub fn activate(self, device: &Device) {
        if device.is_cuda() {
            candle_core::cuda::set_gemm_reduced_precision_f32(self == Self::Tf32);
        }
    }

    /// The lower-case name used on command lines and in tables.
    pub fn name(self) -> &'static str {
        match self {
            Self::F64 => "f64",
            Self::F32 => "f32",
            Self::Tf32 => "tf32",
            Self::Bf16 => "bf16",
            Self::F16 => "f16",
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Precision {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "f64" | "float64" | "double" => Ok(Self::F64),
            "f32" | "float32" | "float" => Ok(Self::F32),
            "tf32" => Ok(Self::Tf32),
            "bf16" | "bfloat16" => Ok(Self::Bf16),
            "f16" | "float16" | "half" => Ok(Self::F16),
            other => Err(Error::UnknownPrecision(other.to_string())),
        }
    }
}

/// "Evaluate low, accumulate high": a pair (L, H) with L no more precise than H.
///
/// The network increment is computed in L; states, adjoints and reductions live in H.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrecisionPolicy {
    /// Precision of network evaluations (Q_L).
    pub low: Precision,
    /// Precision of accumulation (Q_H).
    pub high: Precision,
}

impl PrecisionPolicy {
    /// A policy; errors if `low` is more precise than `high`.
    pub fn new(low: Precision, high: Precision) -> Result<Self> {
        if low.unit_roundoff() < high.unit_roundoff() {
            return Err(Error::Config(format!("low precision {low} is more precise than high precision {high}")));
        }
        Ok(Self { low, high })
    }

    /// Everything in one precision (the f32 or f64 baseline).
    pub fn uniform(p: Precision) -> Self {
        Self { low: p, high: p }
    }

    /// Q_L(t).
    pub fn q_low(&self, t: &Tensor) -> Result<Tensor> {
        self.low.quantize(t)
    }

    /// Q_H(t).
    pub fn q_high(&self, t: &Tensor) -> Result<Tensor> {
        self.high.quantize(t)
    }

    /// y_H ⊕_H h·Q_H(dy): the high-precision accumulation of a low-precision increment.
    pub fn accumulate(&self, y_high: &Tensor, h: f64, dy: &Tensor) -> Result<Tensor> {
        Ok(y_high.add(&(self.q_high(dy)? * h)?)?)
    }

    /// Sum over `dims` carried out in H: candle sums in the tensor's own dtype, which loses
    /// most digits in f16/bf16, so upcast first.
    pub fn sum_high<D: candle_core::shape::Dims>(&self, t: &Tensor, dims: D) -> Result<Tensor> {
        Ok(self.q_high(t)?.sum(dims)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundoff_matches_the_formats() {
        // u is half the distance from 1 to the next representable number.
        let next_after_one_f16 = half::f16::from_bits(half::f16::ONE.to_bits() + 1).to_f64();
        assert_eq!(Precision::F16.epsilon(), next_after_one_f16 - 1.0);
        let next_after_one_bf16 = half::bf16::from_bits(half::bf16::ONE.to_bits() + 1).to_f64();
        assert_eq!(Precision::Bf16.epsilon(), next_after_one_bf16 - 1.0);
        assert_eq!(Precision::F32.epsilon(), f32::EPSILON as f64);
        assert_eq!(Precision::F64.epsilon(), f64::EPSILON);
        assert_eq!(Precision::F16.max_finite(), 65504.0);
        assert_eq!(Precision::F16.min_positive_normal(), 2f64.powi(-14));
    }

    #[test]
    fn quantize_rounds_to_nearest_and_overflows() -> Result<()> {
        let x = Tensor::new(&[1.0f64 + 2f64.powi(-12), 1.0 + 3.0 * 2f64.powi(-12), 70000.0], &Device::Cpu)?;
        let q = Precision::F16.quantize(&x)?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
        // the f16 grid at 1 has spacing 2^-10: 1 + 2^-12 rounds down, 1 + 3·2^-12 rounds up
        assert_eq!(q[0], 1.0);
        assert_eq!(q[1], 1.0 + 2f64.powi(-10));
        assert!(q[2].is_infinite());
        // relative error of Q_L is at most u
        let r = Tensor::new(&[0.1f64, 3.7, -1234.5678], &Device::Cpu)?;
        for p in [Precision::F32, Precision::Bf16, Precision::F16] {
            let back = p.quantize(&r)?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
            for (a, b) in r.to_vec1::<f64>()?.iter().zip(back) {
                assert!(((a - b) / a).abs() <= p.unit_roundoff(), "{p}: {a} -> {b}");
            }
        }
        Ok(())
    }

    #[test]
    fn parsing_and_policy() {
        assert_eq!("BF16".parse::<Precision>().unwrap(), Precision::Bf16);
        assert!("f8".parse::<Precision>().unwrap_err().to_string().contains("unknown precision 'f8'"));
        assert!(PrecisionPolicy::new(Precision::F64, Precision::F16).is_err());
        assert!(PrecisionPolicy::new(Precision::F16, Precision::F32).is_ok());
        assert_eq!(Precision::Tf32.note_on(&Device::Cpu), Some("tf32 on CPU runs as f32 (no TF32 unit)"));
    }

    #[test]
    fn high_precision_sum_is_accurate() -> Result<()> {
        let n = 20_000;
        let v: Vec<f32> = (0..n).map(|i| 0.1 + (i % 7) as f32 * 0.01).collect();
        let exact: f64 = v.iter().map(|&x| half::f16::from_f32(x).to_f64()).sum();
        let t = Tensor::from_vec(v, n, &Device::Cpu)?.to_dtype(DType::F16)?;
        let policy = PrecisionPolicy::new(Precision::F16, Precision::F32)?;
        let s = policy.sum_high(&t, 0)?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        assert!((s - exact).abs() / exact < 1e-6, "{s} vs {exact}");
        Ok(())
    }
}
