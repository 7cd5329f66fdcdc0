//! What the elementwise kernels share: f64 eˣ, eˣ − 1 (one range reduction and polynomial) and
//! ln(1 + u) made of arithmetic only (so loops over them vectorise), and the macro that compiles
//! a scalar body into a slice kernel three times — AVX-512, AVX2+FMA, baseline — dispatched at
//! run time, so one portable binary uses the widest vectors the CPU has, with long slices split
//! over rayon's pool.

const LOG2E: f64 = std::f64::consts::LOG2_E;
const LN2_HI: f64 = 6.931_471_803_691_238e-1;
const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
/// 1.5·2⁵²: adding it rounds to an integer held in the low mantissa bits.
const SHIFTER: f64 = 6_755_399_441_055_744.0;

/// Cody–Waite reduction y = k ln 2 + r, |r| ≤ ½ ln 2: (k, r).
#[inline(always)]
fn reduce(y: f64) -> (i64, f64) {
    let kf = y.mul_add(LOG2E, SHIFTER);
    let k = kf - SHIFTER;
    (kf.to_bits().wrapping_sub(SHIFTER.to_bits()) as i64, k.mul_add(-LN2_LO, k.mul_add(-LN2_HI, y)))
}

/// eʳ − 1 for |r| ≤ ½ ln 2 from its Taylor polynomial to r¹³ (no constant term, so small
/// arguments keep full relative accuracy).
#[inline(always)]
fn expm1_reduced(r: f64) -> f64 {
    let mut p: f64 = 1.0 / 6_227_020_800.0;
    for c in [
        1.0 / 479_001_600.0,
        1.0 / 39_916_800.0,
        1.0 / 3_628_800.0,
        1.0 / 362_880.0,
        1.0 / 40_320.0,
        1.0 / 5_040.0,
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
    ] {
        p = p.mul_add(r, c);
    }
    p * r
}

/// eʳ − 1 for |r| ≤ ½ ln 2 to r⁸ (truncation below 1e-9 relative): enough for results rounded
/// to f32, at two thirds of [`expm1_reduced`]'s cost.
#[inline(always)]
fn expm1_reduced_single(r: f64) -> f64 {
    let mut p: f64 = 1.0 / 40_320.0;
    for c in [1.0 / 5_040.0, 1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0] {
        p = p.mul_add(r, c);
    }
    p * r
}

/// 2ᵏ from its exponent bits, for −1022 ≤ k ≤ 1023.
#[inline(always)]
fn two_to(k: i64) -> f64 {
    f64::from_bits(((k + 1023) as u64) << 52)
}

/// eʸ − 1 for y ∈ [−40, 40] (callers clamp), to a few 1e-16 relative: eʸ − 1 =
/// 2ᵏ(eʳ − 1) + (2ᵏ − 1) after [`reduce`] (2ᵏ − 1 is exact for |k| ≤ 58). NaN in, NaN out.
#[inline(always)]
pub(crate) fn expm1_core(y: f64) -> f64 {
    let (k, r) = reduce(y);
    let scale = two_to(k);
    scale.mul_add(expm1_reduced(r), scale - 1.0)
}

/// [`expm1_core`] to about 1e-9 relative, for results rounded to f32.
#[inline(always)]
pub(crate) fn expm1_core_single(y: f64) -> f64 {
    let (k, r) = reduce(y);
    let scale = two_to(k);
    scale.mul_add(expm1_reduced_single(r), scale - 1.0)
}

/// eʸ for every f64 y, to a few 1e-16 relative: 2ᵏ(1 + (eʳ − 1)) after [`reduce`], with 2ᵏ
/// applied as two factors 2^⌊k/2⌋ 2^⌈k/2⌉ so that results overflow to ∞ above ≈ 709.8 and
/// underflow gradually to 0 below ≈ −708. NaN in, NaN out.
#[inline(always)]
pub(crate) fn exp_core(y: f64) -> f64 {
    // NaN passes through clamp
    let (k, r) = reduce(y.clamp(-746.0, 710.0));
    (1.0 + expm1_reduced(r)) * two_to(k >> 1) * two_to(k - (k >> 1))
}

/// ln(1 + u) for u ∈ [0, 1] (callers guarantee it), to a few 1e-16 relative also for tiny u:
/// v = 1 + u is written m·2ᵉ with m ∈ [√½, √2] (e ∈ {0, 1}), ln m = 2 atanh s with
/// s = (m − 1)/(m + 1) (|s| ≤ 0.172, series to s²³), and the rounding of 1 + u is compensated by
/// (u − (v − 1))/v (fdlibm's log1p). NaN in, NaN out.
#[inline(always)]
pub(crate) fn log1p_core(u: f64) -> f64 {
    let v = 1.0 + u;
    let big = v > std::f64::consts::SQRT_2;
    let (m, e): (f64, f64) = if big { (0.5 * v, 1.0) } else { (v, 0.0) };
    let correction = (u - (v - 1.0)) / v;
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let mut p: f64 = 1.0 / 23.0;
    for c in [1.0 / 21.0, 1.0 / 19.0, 1.0 / 17.0, 1.0 / 15.0, 1.0 / 13.0, 1.0 / 11.0, 1.0 / 9.0, 1.0 / 7.0, 1.0 / 5.0, 1.0 / 3.0, 1.0] {
        p = p.mul_add(s2, c);
    }
    e.mul_add(LN2_HI, (2.0 * s).mul_add(p, e.mul_add(LN2_LO, correction)))
}

/// Slices at least this long are split into chunks of this size over rayon's global pool (the
/// one candle's matmul uses, so no extra threads compete for the cores).
pub(crate) const PARALLEL_CHUNK: usize = 1 << 15;

/// `pub(crate) fn $name(x: &[$ty], out: &mut [$ty])` applying `$core` (an `f64 → f64` function)
/// to every element (equal lengths: the callers allocate `out`), compiled three times —
/// AVX-512, AVX2+FMA, baseline — and dispatched at run time; long slices run in parallel
/// chunks of [`PARALLEL_CHUNK`].
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
            fn dispatch(x: &[$ty], out: &mut [$ty]) {
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
                    if std::arch::is_x86_feature_detected!("avx512f")
                        && std::arch::is_x86_feature_detected!("avx512dq")
                        && std::arch::is_x86_feature_detected!("fma")
                    {
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
            if x.len() < 2 * $crate::kernels::elementwise::PARALLEL_CHUNK {
                return dispatch(x, out);
            }
            use rayon::prelude::*;
            out.par_chunks_mut($crate::kernels::elementwise::PARALLEL_CHUNK)
                .zip(x.par_chunks($crate::kernels::elementwise::PARALLEL_CHUNK))
                .for_each(|(o, x)| dispatch(x, o));
        }
    };
}

pub(crate) use slice_kernel;

slice_kernel!(exp_f64, f64, exp_core, "out[i] = e^{x[i]} for f64 slices of equal length.");

#[cfg(test)]
pub(crate) mod tests {
    use super::{exp_core, expm1_core, expm1_core_single, log1p_core};

    /// Distance in units in the last place between two f32 (ordered by their bit patterns, so
    /// it is also right across zero and into the subnormals).
    pub(crate) fn ulps_f32(a: f32, b: f32) -> u32 {
        let key = |v: f32| {
            let b = v.to_bits() as i32;
            if b < 0 {
                i32::MIN - b
            } else {
                b
            }
        };
        key(a).abs_diff(key(b))
    }

    /// Every 97th f32 bit pattern that is not NaN: 44 million values over the whole range,
    /// subnormals and ±∞ included.
    pub(crate) fn f32_sweep() -> Vec<f32> {
        (0..=u32::MAX).step_by(97).map(f32::from_bits).filter(|v| !v.is_nan()).collect()
    }

    #[test]
    fn exp_and_log1p_match_libm() {
        let ys: Vec<f64> = (0..=300_000).map(|i| -745.0 + i as f64 * (1455.0 / 300_000.0)).chain([0.0, -0.0, 1e-300, -1e-300]).collect();
        let worst = ys
            .iter()
            .map(|&y| (exp_core(y), y.exp()))
            .filter(|(_, r)| *r >= f64::MIN_POSITIVE && r.is_finite())
            .map(|(e, r)| ((e - r) / r).abs())
            .fold(0f64, f64::max);
        assert!(worst < 1e-15, "exp relative error {worst:e}");
        assert_eq!(
            (exp_core(710.0), exp_core(f64::INFINITY), exp_core(-800.0), exp_core(f64::NEG_INFINITY)),
            (f64::INFINITY, f64::INFINITY, 0.0, 0.0)
        );
        assert!(exp_core(f64::NAN).is_nan());
        let us: Vec<f64> =
            (0..=200_000).map(|i| i as f64 / 200_000.0).chain((0..2000).map(|i| 1e-300 * 1.4f64.powi(i)).filter(|&u| u <= 1.0)).collect();
        let worst = us.iter().filter(|&&u| u > 0.0).map(|&u| ((log1p_core(u) - u.ln_1p()) / u.ln_1p()).abs()).fold(0f64, f64::max);
        assert!(worst < 1e-15, "log1p relative error {worst:e}");
        assert_eq!(log1p_core(0.0), 0.0);
        assert!(log1p_core(f64::NAN).is_nan());
    }

    #[test]
    fn expm1_matches_libm() {
        let worst = (0..=160_000)
            .map(|i| -40.0 + i as f64 * 5e-4)
            .chain((0..2000).map(|i| 1e-300 * 1.4f64.powi(i)).flat_map(|v| [v, -v]))
            .filter(|y| y.abs() <= 40.0)
            .map(|y| ((expm1_core(y) - y.exp_m1()) / y.exp_m1()).abs())
            .fold(0f64, f64::max);
        assert!(worst < 1e-15, "relative error {worst:e}");
        assert!(expm1_core(f64::NAN).is_nan());
        let worst = (0..=160_000)
            .map(|i| -40.0 + i as f64 * 5e-4)
            .map(|y| ((expm1_core_single(y) - y.exp_m1()) / y.exp_m1()).abs())
            .fold(0f64, f64::max);
        assert!(worst < 2e-9, "single-precision variant: relative error {worst:e}");
    }
}
