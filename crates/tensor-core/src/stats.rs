//! Densities and sample metrics shared by the generative models.

use crate::error::{expect_matrix, Result};
use candle_core::{DType, Tensor};

/// log N(z; 0, I) per row: −½‖z‖² − (d/2) log 2π, shape (B, 1).
pub fn standard_normal_log_prob(z: &Tensor) -> Result<Tensor> {
    let d = z.dim(1)? as f64;
    Ok(((z.sqr()?.sum_keepdim(1)? * -0.5)? - 0.5 * d * (2.0 * std::f64::consts::PI).ln())?)
}

/// log N(x; μ, diag(σ²)) per row, shape (B, 1); `mean` and `std` have one entry per column of x
/// (or `mean` d entries and `std` one, shared).
pub fn gaussian_log_prob(x: &Tensor, mean: &[f64], std: &[f64]) -> Result<Tensor> {
    expect_matrix(x, mean.len(), "gaussian_log_prob (mean has one entry per column)")?;
    let d = mean.len();
    let std: Vec<f64> = if std.len() == 1 { vec![std[0]; d] } else { std.to_vec() };
    if std.len() != d || std.iter().any(|s| !(*s > 0.0 && s.is_finite())) {
        return Err(crate::Error::Config(format!("gaussian_log_prob needs {d} positive finite standard deviations (or one), got {std:?}")));
    }
    let row = |v: &[f64]| -> Result<Tensor> { Ok(Tensor::new(v, x.device())?.to_dtype(x.dtype())?.unsqueeze(0)?) };
    let inv_std: Vec<f64> = std.iter().map(|s| 1.0 / s).collect();
    let z = x.broadcast_sub(&row(mean)?)?.broadcast_mul(&row(&inv_std)?)?;
    let log_norm = std.iter().map(|s| s.ln()).sum::<f64>() + 0.5 * d as f64 * (2.0 * std::f64::consts::PI).ln();
    Ok(((z.sqr()?.sum_keepdim(1)? * -0.5)? - log_norm)?)
}

/// ‖a_i − b_j‖² for all pairs, (n, m), in a's dtype (clamped at 0 against round-off).
pub fn sq_distances(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let na = a.sqr()?.sum_keepdim(1)?;
    let nb = b.sqr()?.sum_keepdim(1)?.t()?;
    Ok((na.broadcast_add(&nb)? - (a.matmul(&b.t()?)? * 2.0)?)?.relu()?)
}

/// The unbiased squared maximum mean discrepancy of Gretton et al. (2012) with the Gaussian
/// kernel k(x, y) = exp(−α‖x − y‖²) — OT-Flow's sample-quality metric (α = 1 there).
/// Computed in f64; x is (n, d), y is (m, d), n, m ≥ 2.
pub fn mmd(x: &Tensor, y: &Tensor, alpha: f64) -> Result<f64> {
    let d = x.dim(1)?;
    let n = expect_matrix(x, d, "mmd (first sample)")?;
    let m = expect_matrix(y, d, "mmd (second sample)")?;
    if n < 2 || m < 2 {
        return Err(crate::Error::Config(format!("mmd needs at least two samples on each side, got {n} and {m}")));
    }
    let (x, y) = (x.to_dtype(DType::F64)?, y.to_dtype(DType::F64)?);
    let kernel_sum = |a: &Tensor, b: &Tensor| -> Result<f64> { Ok((sq_distances(a, b)? * -alpha)?.exp()?.sum_all()?.to_scalar::<f64>()?) };
    let (n, m) = (n as f64, m as f64);
    // Σ_{i≠j} k(x_i, x_j) = Σ_{i,j} − n (the diagonal is exp(0) = 1)
    let kxx = (kernel_sum(&x, &x)? - n) / (n * (n - 1.0));
    let kyy = (kernel_sum(&y, &y)? - m) / (m * (m - 1.0));
    let kxy = kernel_sum(&x, &y)? / (n * m);
    Ok(kxx + kyy - 2.0 * kxy)
}

/// The sliced 2-Wasserstein distance between equal-size samples x, y (n, d):
/// √(mean over `projections` random unit directions θ of W₂²(θᵀx, θᵀy)), each 1-D W₂ by sorting
/// ("Sliced and Radon Wasserstein Barycenters of Measures", Bonneel et al. 2015). Directions
/// come from `rng`.
pub fn sliced_w2(x: &Tensor, y: &Tensor, projections: usize, rng: &mut crate::SeededRng) -> Result<f64> {
    let d = x.dim(1)?;
    let n = expect_matrix(x, d, "sliced_w2 (first sample)")?;
    let m = expect_matrix(y, d, "sliced_w2 (second sample)")?;
    if n != m || n == 0 || projections == 0 {
        return Err(crate::Error::Config(format!(
            "sliced_w2 needs two non-empty samples of one size and at least one projection, got {n}, {m} and {projections}"
        )));
    }
    let dirs = rng.normal((d, projections), DType::F64, x.device())?;
    let dirs = dirs.broadcast_div(&dirs.sqr()?.sum_keepdim(0)?.sqrt()?)?;
    let sorted = |t: &Tensor| -> Result<Vec<Vec<f64>>> {
        let proj = t.to_dtype(DType::F64)?.matmul(&dirs)?.t()?.to_vec2::<f64>()?;
        Ok(proj
            .into_iter()
            .map(|mut c| {
                c.sort_by(f64::total_cmp);
                c
            })
            .collect())
    };
    let (a, b) = (sorted(x)?, sorted(y)?);
    let total: f64 = a.iter().zip(&b).map(|(p, q)| p.iter().zip(q).map(|(u, v)| (u - v) * (u - v)).sum::<f64>() / n as f64).sum();
    Ok((total / projections as f64).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SeededRng;
    use candle_core::Device;

    #[test]
    fn gaussian_log_prob_matches_the_formula() -> Result<()> {
        let z = Tensor::new(&[[0.0f64, 0.0], [1.0, -2.0]], &Device::Cpu)?;
        let lp = standard_normal_log_prob(&z)?.to_vec2::<f64>()?;
        let c = -(2.0 * std::f64::consts::PI).ln();
        assert!((lp[0][0] - c).abs() < 1e-12 && (lp[1][0] - (c - 2.5)).abs() < 1e-12);
        Ok(())
    }

    #[test]
    fn diagonal_gaussian_log_prob_matches_the_formula() -> Result<()> {
        let x = Tensor::new(&[[1.0f64, -2.0], [0.5, 0.0]], &Device::Cpu)?;
        let lp = gaussian_log_prob(&x, &[1.0, 0.0], &[0.5, 2.0])?.to_vec2::<f64>()?;
        let exact = |a: f64, b: f64| {
            -0.5 * (((a - 1.0) / 0.5).powi(2) + (b / 2.0).powi(2)) - (0.5f64 * 2.0).ln() - (2.0 * std::f64::consts::PI).ln()
        };
        assert!((lp[0][0] - exact(1.0, -2.0)).abs() < 1e-12 && (lp[1][0] - exact(0.5, 0.0)).abs() < 1e-12);
        // one shared σ = 1 and zero mean is the standard normal
        let shared = gaussian_log_prob(&x, &[0.0, 0.0], &[1.0])?;
        assert!((shared - standard_normal_log_prob(&x)?)?.abs()?.max_all()?.to_scalar::<f64>()? < 1e-12);
        assert!(gaussian_log_prob(&x, &[0.0, 0.0], &[1.0, 0.0]).is_err(), "σ = 0");
        assert!(gaussian_log_prob(&x, &[0.0; 3], &[1.0]).is_err(), "three means for two columns");
        Ok(())
    }

    #[test]
    fn mmd_separates_distributions_and_is_unbiased_near_zero() -> Result<()> {
        let mut rng = SeededRng::new(1);
        let a = rng.normal((400, 2), DType::F64, &Device::Cpu)?;
        let b = rng.normal((400, 2), DType::F64, &Device::Cpu)?;
        let shifted = (rng.normal((400, 2), DType::F64, &Device::Cpu)? + 1.5)?;
        let same = mmd(&a, &b, 1.0)?;
        let diff = mmd(&a, &shifted, 1.0)?;
        assert!(same.abs() < 0.01, "same distribution: {same}");
        assert!(diff > 0.2, "shifted by 1.5: {diff}");
        // brute-force check of the formula on a tiny sample
        let x = Tensor::new(&[[0.0f64], [1.0]], &Device::Cpu)?;
        let y = Tensor::new(&[[0.5f64], [2.0]], &Device::Cpu)?;
        let k = |u: f64, v: f64| (-(u - v) * (u - v)).exp();
        let expect = k(0.0, 1.0) + k(0.5, 2.0) - 2.0 * (k(0.0, 0.5) + k(0.0, 2.0) + k(1.0, 0.5) + k(1.0, 2.0)) / 4.0;
        assert!((mmd(&x, &y, 1.0)? - expect).abs() < 1e-12);
        Ok(())
    }

    #[test]
    fn sliced_w2_of_a_shift() -> Result<()> {
        let mut rng = crate::SeededRng::new(3);
        let x = rng.normal((500, 3), DType::F64, &candle_core::Device::Cpu)?;
        assert_eq!(sliced_w2(&x, &x, 50, &mut rng)?, 0.0);
        // a shift a: W₂²(θᵀx, θᵀx + θᵀa) = (θᵀa)², whose mean over directions is ‖a‖²/d
        let y = (&x + 2.0)?;
        let w = sliced_w2(&x, &y, 4000, &mut rng)?;
        assert!((w - (12.0f64 / 3.0).sqrt()).abs() < 0.05, "{w}");
        assert!(sliced_w2(&x, &y.narrow(0, 0, 10)?, 5, &mut rng).is_err());
        Ok(())
    }
}
