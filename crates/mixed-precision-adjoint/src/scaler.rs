//! Dynamic adjoint scaling (Ruthotto, "Continuous-Time Deep Learning for Generative AI and High-Dim PDEs"; rampde's `DynamicScaler`): the cotangent is multiplied
//! by a power of two S before the low-precision VJP, so that small adjoints do not underflow
//! and large ones do not overflow, and the result is divided by S in high precision.

use crate::error::{MpError, Result};
use candle_core::{DType, Tensor};
use tensor_core::Precision;

/// The scale S and its rules. One scaler per ODE block, kept across training iterations so S
/// carries over.
#[derive(Clone, Debug)]
pub struct DynamicScaler {
    low: Precision,
    enabled: bool,
    /// Target magnitude of S·max|a|·√(d): 1/ε of the low precision (rampde's default).
    target: f64,
    /// Halvings allowed per step before giving up.
    pub max_attempts: usize,
    s: Option<f64>,
    /// Counters since creation: (overflow halvings, doublings).
    pub halvings: usize,
    pub doublings: usize,
}

fn pow2_round(x: f64) -> f64 {
    2f64.powi(x.log2().round().clamp(-1000.0, 1000.0) as i32)
}

impl DynamicScaler {
    /// Dynamic scaling for cotangents evaluated in `low`.
    pub fn new(low: Precision) -> Self {
        Self { low, enabled: true, target: 1.0 / low.epsilon(), max_attempts: 50, s: None, halvings: 0, doublings: 0 }
    }

    /// No scaling: S = 1 always; a non-finite VJP is an error, not a retry (the seed's
    /// "no scaling" rows).
    pub fn disabled(low: Precision) -> Self {
        Self { enabled: false, s: Some(1.0), ..Self::new(low) }
    }

    /// Whether scaling is on.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// The precision the scaled cotangent is rounded to.
    pub fn low(&self) -> Precision {
        self.low
    }

    /// The current scale (1 before the first backward pass when disabled; `None` if not yet set).
    pub fn scale(&self) -> Option<f64> {
        self.s
    }

    /// Puts the scaler back where a checkpoint left it: scale S (None: not yet set) and the
    /// counters.
    pub fn restore(&mut self, scale: Option<f64>, halvings: usize, doublings: usize) {
        if self.enabled {
            self.s = scale;
        }
        (self.halvings, self.doublings) = (halvings, doublings);
    }

    /// Per-sample width √(numel / batch) of a cotangent, as rampde normalises the target.
    fn width(a: &[Tensor]) -> f64 {
        let numel: usize = a.iter().map(Tensor::elem_count).sum();
        let batch = a.first().and_then(|t| t.dims().first().copied()).unwrap_or(1).max(1);
        ((numel / batch).max(1) as f64).sqrt()
    }

    fn max_abs(a: &[Tensor]) -> Result<f64> {
        let mut m = 0f64;
        for t in a {
            m = m.max(t.abs()?.max_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?);
        }
        Ok(m)
    }

    /// Sets S from the terminal cotangent when it is not set yet: S = 2^round(log₂(target /
    /// (√d · max|a|))), then halved until S·a is finite in the low precision.
    pub fn init(&mut self, a: &[Tensor]) -> Result<()> {
        if self.s.is_some() {
            return Ok(());
        }
        for t in a {
            // candle's max skips NaN: check finiteness itself
            if !ode_solvers::state::all_finite(t)? {
                return Err(MpError::NonFiniteCotangent);
            }
        }
        let m = Self::max_abs(a)?;
        let mut s = if m > 0.0 { pow2_round(self.target / (Self::width(a) * m)) } else { 1.0 };
        for _ in 0..64 {
            if s * m <= self.low.max_finite() {
                break;
            }
            s *= 0.5;
        }
        self.s = Some(s);
        Ok(())
    }

    /// S, initialising from `a` if needed.
    pub fn current(&mut self, a: &[Tensor]) -> Result<f64> {
        self.init(a)?;
        Ok(self.s.unwrap_or(1.0))
    }

    /// After a non-finite scaled VJP: halve S (no-op when disabled).
    pub fn on_overflow(&mut self) {
        if self.enabled {
            self.s = self.s.map(|s| s * 0.5);
            self.halvings += 1;
        }
    }

    /// After a step that needed no retry: double S when the scaled adjoint has fallen below
    /// half the target (headroom to spare), so precision is not wasted as a shrinks.
    /// rampde compares the unscaled adjoint with the target; comparing the scaled one keeps
    /// the rule consistent with `init`.
    pub fn maybe_increase(&mut self, a: &[Tensor]) -> Result<bool> {
        let (Some(s), true) = (self.s, self.enabled) else { return Ok(false) };
        let scaled = s * Self::max_abs(a)? * Self::width(a);
        if scaled < 0.5 * self.target && 2.0 * s * Self::max_abs(a)? <= self.low.max_finite() {
            self.s = Some(2.0 * s);
            self.doublings += 1;
            return Ok(true);
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn init_targets_one_over_eps_as_a_power_of_two() -> Result<()> {
        let a = Tensor::new(&[[1e-3f32, -2e-3], [5e-4, 0.0]], &Device::Cpu)?;
        let mut s = DynamicScaler::new(Precision::F16);
        s.init(std::slice::from_ref(&a))?;
        let v = s.scale().unwrap();
        assert_eq!(v.log2().fract(), 0.0, "power of two: {v}");
        // target 1/ε = 1024, width √2, max|a| = 2e-3  ⇒  S ≈ 362 000 → 2^18
        assert_eq!(v, 2f64.powi(18));
        // an existing scale is kept across iterations
        s.init(&[(a * 100.0)?])?;
        assert_eq!(s.scale(), Some(v));
        Ok(())
    }

    #[test]
    fn halves_on_overflow_and_doubles_with_headroom() -> Result<()> {
        let mut s = DynamicScaler::new(Precision::F16);
        let big = Tensor::new(&[[60000f32]], &Device::Cpu)?;
        s.init(std::slice::from_ref(&big))?;
        let s0 = s.scale().unwrap();
        assert!(s0 * 60000.0 <= 65504.0);
        s.on_overflow();
        assert_eq!(s.scale(), Some(s0 / 2.0));
        assert_eq!(s.halvings, 1);
        // a contrived small cotangent: lots of headroom, so S doubles
        let small = Tensor::new(&[[1e-6f32]], &Device::Cpu)?;
        assert!(s.maybe_increase(&[small])?);
        assert_eq!(s.scale(), Some(s0));
        // at the target, no change
        let at_target = Tensor::new(&[[1024.0 / s0 as f32]], &Device::Cpu)?;
        assert!(!s.maybe_increase(&[at_target])?);
        // disabled: S stays 1
        let mut off = DynamicScaler::disabled(Precision::F16);
        off.on_overflow();
        assert!(!off.maybe_increase(&[Tensor::new(&[[1e-6f32]], &Device::Cpu)?])?);
        assert_eq!(off.scale(), Some(1.0));
        assert!(DynamicScaler::new(Precision::F16).init(&[Tensor::new(&[f32::NAN], &Device::Cpu)?]).is_err());
        Ok(())
    }
}
