//! A vectorisable SELU (Klambauer et al. 2017) for f32 and f64 slices: λz for z > 0,
//! λα(eᶻ − 1) otherwise, with eᶻ − 1 from `elementwise::expm1_core` (arguments below −40 give
//! −λα to f64 precision). One pass instead of the five candle ops of the composite formula.

use super::elementwise::{expm1_core, slice_kernel};

/// SELU's λ and α (Klambauer et al. 2017, eq. 14).
pub const SELU_LAMBDA: f64 = 1.050_700_987_355_480_5;
pub const SELU_ALPHA: f64 = 1.673_263_242_354_377_3;

/// SELU of one value; NaN stays NaN.
#[inline(always)]
pub(crate) fn selu_core(z: f64) -> f64 {
    let clamped = if z < -40.0 { -40.0 } else { z };
    let negative = SELU_LAMBDA * SELU_ALPHA * expm1_core(clamped);
    if z > 0.0 {
        SELU_LAMBDA * z
    } else {
        negative
    }
}

slice_kernel!(selu_f32, f32, selu_core, "out[i] = selu(x[i]) for f32 slices of equal length.");
slice_kernel!(selu_f64, f64, selu_core, "out[i] = selu(x[i]) for f64 slices of equal length.");

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(z: f64) -> f64 {
        if z > 0.0 {
            SELU_LAMBDA * z
        } else {
            SELU_LAMBDA * SELU_ALPHA * z.exp_m1()
        }
    }

    #[test]
    fn matches_the_libm_formula() {
        let xs: Vec<f64> = (0..400_001).map(|i| -100.0 + i as f64 * 5e-4).chain([1e-300, -1e-300, 0.0, -0.0]).collect();
        let mut out = vec![0f64; xs.len()];
        selu_f64(&xs, &mut out);
        let worst = xs.iter().zip(&out).map(|(&x, &y)| ((y - reference(x)) / reference(x).abs().max(1e-300)).abs()).fold(0f64, f64::max);
        assert!(worst < 1e-15, "f64 relative error {worst:e}");
        let xs32: Vec<f32> = xs.iter().map(|&x| x as f32).collect();
        let mut out32 = vec![0f32; xs32.len()];
        selu_f32(&xs32, &mut out32);
        for (&x, &y) in xs32.iter().zip(&out32) {
            let r = reference(f64::from(x)) as f32;
            assert!((y - r).abs() <= f32::EPSILON * r.abs(), "f32 at {x}: {y} vs {r}");
        }
        let mut nan = [0f32];
        selu_f32(&[f32::NAN], &mut nan);
        assert!(nan[0].is_nan());
    }
}
