//! Vectorisable sigmoid, softplus, swish and log cosh for f32 and f64 slices, evaluated in f64
//! from the arithmetic-only cores of `elementwise` (eʸ, eʸ − 1, ln(1 + u)), so the loops compile
//! to SIMD like tanh's:
//!
//! - sigmoid z = 1/(1 + e^{−z}) for z ≥ 0, e^{z}/(1 + e^{z}) otherwise;
//! - softplus z = max(z, 0) + ln(1 + e^{−|z|});
//! - swish z = z · sigmoid z (0 at −∞);
//! - log cosh z = ln(1 + (cosh z − 1)) with cosh z − 1 = (e^{|z|} − 1)²/(2e^{|z|}) for |z| ≤ 1
//!   (no cancellation near 0, where log cosh z ≈ z²/2), else |z| + ln(1 + e^{−2|z|}) − ln 2.
//!
//! f32 results are within 1 ulp of libm's f64 formulas rounded to f32 over the whole f32 range;
//! f64 within a few 1e-16 relative (tests below).

use super::elementwise::{exp_core, expm1_core, log1p_core, slice_kernel};

/// sigmoid of one value.
#[inline(always)]
pub(crate) fn sigmoid_core(z: f64) -> f64 {
    let e = exp_core(-z.abs());
    let s = 1.0 / (1.0 + e);
    if z >= 0.0 {
        s
    } else {
        e * s
    }
}

/// softplus of one value.
#[inline(always)]
pub(crate) fn softplus_core(z: f64) -> f64 {
    let relu = if z > 0.0 { z } else { 0.0 };
    // NaN: exp_core and log1p_core carry it
    relu + log1p_core(exp_core(-z.abs()))
}

/// swish of one value.
#[inline(always)]
pub(crate) fn swish_core(z: f64) -> f64 {
    // below −800, z · sigmoid z underflows to −0 in f64 (and −∞ · 0 would be NaN)
    if z < -800.0 {
        -0.0
    } else {
        z * sigmoid_core(z)
    }
}

/// log cosh of one value: one eʸ − 1 and one ln(1 + u) for either branch, picked by arguments
/// rather than by computing both.
#[inline(always)]
pub(crate) fn log_cosh_core(z: f64) -> f64 {
    const LN_2: f64 = std::f64::consts::LN_2;
    let a = z.abs();
    let near = a <= 1.0;
    // near: eᵃ − 1; far: e^{−2a} − 1 (clamped at −40: beyond, e^{−2a} < 5e-18 of a ≥ 20)
    let y = if near {
        a
    } else if -2.0 * a < -40.0 {
        -40.0
    } else {
        -2.0 * a
    };
    let em1 = expm1_core(y);
    // near: cosh a − 1 = (eᵃ − 1)²/(2eᵃ); far: e^{−2a}
    let u = if near { em1 * em1 / (2.0 * (1.0 + em1)) } else { em1 + 1.0 };
    let offset = if near { 0.0 } else { a - LN_2 };
    // NaN: a is NaN, both comparisons fail, y and the result are NaN
    offset + log1p_core(u)
}

slice_kernel!(sigmoid_f32, f32, sigmoid_core, "out[i] = sigmoid(x[i]) for f32 slices of equal length.");
slice_kernel!(sigmoid_f64, f64, sigmoid_core, "out[i] = sigmoid(x[i]) for f64 slices of equal length.");
slice_kernel!(softplus_f32, f32, softplus_core, "out[i] = softplus(x[i]) for f32 slices of equal length.");
slice_kernel!(softplus_f64, f64, softplus_core, "out[i] = softplus(x[i]) for f64 slices of equal length.");
slice_kernel!(swish_f32, f32, swish_core, "out[i] = swish(x[i]) for f32 slices of equal length.");
slice_kernel!(swish_f64, f64, swish_core, "out[i] = swish(x[i]) for f64 slices of equal length.");
slice_kernel!(log_cosh_f32, f32, log_cosh_core, "out[i] = log cosh(x[i]) for f32 slices of equal length.");
slice_kernel!(log_cosh_f64, f64, log_cosh_core, "out[i] = log cosh(x[i]) for f64 slices of equal length.");

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::elementwise::tests::{f32_sweep, ulps_f32};

    /// The references: libm's f64 exp / ln_1p / cosh in numerically safe forms.
    fn sigmoid_ref(x: f64) -> f64 {
        if x >= 0.0 {
            1.0 / (1.0 + (-x).exp())
        } else {
            x.exp() / (1.0 + x.exp())
        }
    }
    fn softplus_ref(x: f64) -> f64 {
        x.max(0.0) + (-x.abs()).exp().ln_1p()
    }
    fn swish_ref(x: f64) -> f64 {
        if x == f64::NEG_INFINITY {
            -0.0
        } else {
            x * sigmoid_ref(x)
        }
    }
    fn log_cosh_ref(x: f64) -> f64 {
        let a = x.abs();
        if a < 1.0 {
            // cosh a − 1 = 2 sinh²(a/2): no cancellation near 0
            (2.0 * (0.5 * a).sinh().powi(2)).ln_1p()
        } else if a < 20.0 {
            a.cosh().ln()
        } else {
            a - std::f64::consts::LN_2 + (-2.0 * a).exp().ln_1p()
        }
    }

    type Case = (&'static str, fn(&[f32], &mut [f32]), fn(&[f64], &mut [f64]), fn(f64) -> f64);
    const CASES: [Case; 4] = [
        ("sigmoid", sigmoid_f32, sigmoid_f64, sigmoid_ref),
        ("softplus", softplus_f32, softplus_f64, softplus_ref),
        ("swish", swish_f32, swish_f64, swish_ref),
        ("log cosh", log_cosh_f32, log_cosh_f64, log_cosh_ref),
    ];

    /// Against the references rounded to f32 on every 97th f32 bit pattern (44 million values
    /// over the whole range, subnormals and ±∞ included); NaN stays NaN.
    #[test]
    fn f32_within_one_ulp_of_libm_everywhere() {
        let xs = f32_sweep();
        let mut out = vec![0f32; xs.len()];
        for (name, f32_kernel, _, reference) in CASES {
            f32_kernel(&xs, &mut out);
            let mut worst = (0u32, 0f32);
            for (&x, &y) in xs.iter().zip(&out) {
                let u = ulps_f32(y, reference(f64::from(x)) as f32);
                if u > worst.0 {
                    worst = (u, x);
                }
            }
            assert!(worst.0 <= 1, "{name}: {} ulp at x = {:e}", worst.0, worst.1);
            let mut nan = [0f32];
            f32_kernel(&[f32::NAN], &mut nan);
            assert!(nan[0].is_nan(), "{name}: NaN in, NaN out");
        }
    }

    /// f64 against the references on [−60, 60] and a log-spaced sweep of tiny magnitudes.
    #[test]
    fn f64_matches_libm() {
        let xs: Vec<f64> = (0..=240_000)
            .map(|i| -60.0 + i as f64 * 5e-4)
            .chain((0..1500).map(|i| 1e-150 * 1.3f64.powi(i)).filter(|v| *v < 1.0).flat_map(|v| [v, -v]))
            .collect();
        let mut out = vec![0f64; xs.len()];
        for (name, _, f64_kernel, reference) in CASES {
            f64_kernel(&xs, &mut out);
            let worst = xs.iter().zip(&out).map(|(&x, &y)| (y - reference(x)).abs() / reference(x).abs().max(1e-300)).fold(0f64, f64::max);
            assert!(worst < 2e-15, "{name}: f64 relative error {worst:e}");
        }
    }
}
