//! What the elementwise kernels share: an f64 eˣ − 1 made of arithmetic only (so loops over it
//! vectorise), and the macro that compiles a scalar body into a slice kernel three times —
//! AVX-512, AVX2+FMA, baseline — dispatched at run time, so one portable binary uses the widest
//! vectors the CPU has.

/// eʸ − 1 for y ∈ [−40, 40] (callers clamp), to a few 1e-16 relative: Cody–Waite reduction
/// y = k ln 2 + r, |r| ≤ ½ ln 2; eʳ − 1 from its Taylor polynomial to r¹³ (no constant term, so
/// small arguments keep full relative accuracy); eʸ − 1 = 2ᵏ(eʳ − 1) + (2ᵏ − 1) with 2ᵏ built from
/// its exponent bits (2ᵏ − 1 is exact for |k| ≤ 58). NaN in, NaN out.
#[inline(always)]
pub(crate) fn expm1_core(y: f64) -> f64 {
    const LOG2E: f64 = std::f64::consts::LOG2_E;
    const LN2_HI: f64 = 6.931_471_803_691_238e-1;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    // 1.5·2⁵²: adding it rounds to an integer held in the low mantissa bits
    const SHIFTER: f64 = 6_755_399_441_055_744.0;
    let kf = y.mul_add(LOG2E, SHIFTER);
    let k_bits = kf.to_bits();
    let k = kf - SHIFTER;
    let r = k.mul_add(-LN2_LO, k.mul_add(-LN2_HI, y));
    let mut p: f64 = 1.0 / 6_227_020_800.0;
    for c in [1.0 / 479_001_600.0, 1.0 / 39_916_800.0, 1.0 / 3_628_800.0, 1.0 / 362_880.0, 1.0 / 40_320.0, 1.0 / 5_040.0, 1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0] {
        p = p.mul_add(r, c);
    }
    let expm1_r = p * r;
    let scale = f64::from_bits((k_bits.wrapping_sub(SHIFTER.to_bits()).wrapping_add(1023)) << 52);
    scale.mul_add(expm1_r, scale - 1.0)
}

/// `pub(crate) fn $name(x: &[$ty], out: &mut [$ty])` applying `$core` (an `f64 → f64` function)
/// to every element (equal lengths: the callers allocate `out`), compiled three times —
/// AVX-512, AVX2+FMA, baseline — and dispatched at run time.
macro_rules! slice_kernel {
    ($name:ident, $ty:ty, $core:path, $doc:literal) => {
        #[doc = $doc]
        pub(crate) fn $name(x: &[$ty], out: &mut [$ty]) {
            debug_assert_eq!(x.len(), out.len(), "elementwise kernel: input and output lengths differ");
            #[inline(always)]
            fn body(x: &[$ty], out: &mut [$ty]) {
                for (o, &v) in out.iter_mut().zip(x) {
                    *o = $core(f64::from(v)) as $ty;
                }
            }
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512dq,fma")]
                unsafe fn avx512(x: &[$ty], out: &mut [$ty]) {
                    body(x, out)
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2(x: &[$ty], out: &mut [$ty]) {
                    body(x, out)
                }
                if std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512dq") && std::arch::is_x86_feature_detected!("fma") {
                    // SAFETY: the features the function is compiled for were detected above
                    return unsafe { avx512(x, out) };
                }
                if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                    // SAFETY: as above
                    return unsafe { avx2(x, out) };
                }
            }
            body(x, out)
        }
    };
}

pub(crate) use slice_kernel;

#[cfg(test)]
mod tests {
    use super::expm1_core;

    #[test]
    fn expm1_matches_libm() {
        let worst = (0..=160_000).map(|i| -40.0 + i as f64 * 5e-4).chain((0..2000).map(|i| 1e-300 * 1.4f64.powi(i)).flat_map(|v| [v, -v])).filter(|y| y.abs() <= 40.0)
            .map(|y| ((expm1_core(y) - y.exp_m1()) / y.exp_m1()).abs()).fold(0f64, f64::max);
        assert!(worst < 1e-15, "relative error {worst:e}");
        assert!(expm1_core(f64::NAN).is_nan());
    }
}
