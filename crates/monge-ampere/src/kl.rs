//! KL(ρ | μ) of a map's push-forward ρ = (∇ψ)#ν of the reference ν = N(0, I), by the change of
//! variables log ρ(∇ψ(y)) = log ν(y) − log det ∇²ψ(y), valid where ∇²ψ ≻ 0:
//!
//! KL(ρ | μ) = E_{y∼ν}[log ν(y) − log det ∇²ψ(y) − log μ(∇ψ(y))].
//!
//! In one dimension the expectation is a trapezoid rule on a grid (exact to quadrature error); in
//! more it is a Monte Carlo mean over reference draws with its standard error.

use crate::error::{MaError, Result};
use crate::map::BrenierMap;
use crate::target::{rows_of, Target};
use candle_core::{DType, Device, Tensor};
use tensor_core::stats::standard_normal_log_prob;
use tensor_core::SeededRng;

/// A KL estimate with its standard error (0 for quadrature).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KlEstimate {
    pub value: f64,
    pub std_error: f64,
}

/// (log ν(y), log ν(y) − log det ∇²ψ(y) − log μ(∇ψ(y))) at each row of y.
fn integrand(map: &BrenierMap, target: &dyn Target, y: &Tensor) -> Result<Vec<(f64, f64)>> {
    let d = map.dim();
    if target.dim() != d {
        return Err(MaError::Config(format!("the map has dimension {d} but the target {}", target.dim())));
    }
    let log_mu = rows_of(&target.log_density(&map.apply(y)?)?, 1, "KL")?;
    let curv = map.curvature(y)?;
    let log_nu = rows_of(&standard_normal_log_prob(y)?, 1, "KL")?;
    let ys = rows_of(y, d, "KL")?;
    ys.chunks(d)
        .zip(curv.log_det)
        .zip(log_mu)
        .zip(log_nu)
        .map(|(((yi, ld), lm), log_nu)| {
            if !ld.is_finite() {
                return Err(MaError::Diverged(format!(
                    "the map is not monotone at y = {yi:?} (det ∇²ψ ≤ 0; min eigenvalue {:.3e} over the points): its push-forward has no density by the change of variables",
                    curv.min_eigenvalue
                )));
            }
            Ok((log_nu, log_nu - ld - lm))
        })
        .collect()
}

/// KL(ρ | μ) in one dimension by the trapezoid rule on `points` nodes of y ∈ [−8, 8].
pub fn kl_1d(map: &BrenierMap, target: &dyn Target, points: usize) -> Result<KlEstimate> {
    if map.dim() != 1 || points < 3 {
        return Err(MaError::Config(format!("kl_1d needs a one-dimensional map and ≥ 3 points (got d = {}, {points})", map.dim())));
    }
    let h = 16.0 / (points - 1) as f64;
    let y: Vec<f64> = (0..points).map(|i| -8.0 + h * i as f64).collect();
    let f = integrand(map, target, &Tensor::from_vec(y, (points, 1), &Device::Cpu)?)?;
    let value = f
        .iter()
        .enumerate()
        .map(|(i, (log_nu, fi))| {
            let w = if i == 0 || i == points - 1 { 0.5 } else { 1.0 };
            w * h * log_nu.exp() * fi
        })
        .sum();
    Ok(KlEstimate { value, std_error: 0.0 })
}

/// KL(ρ | μ) as the Monte Carlo mean over `n` reference draws, with its standard error.
pub fn kl_monte_carlo(map: &BrenierMap, target: &dyn Target, n: usize, rng: &mut SeededRng) -> Result<KlEstimate> {
    if n < 2 {
        return Err(MaError::Config("kl_monte_carlo needs at least 2 draws".into()));
    }
    let f: Vec<f64> = integrand(map, target, &rng.normal((n, map.dim()), DType::F64, &Device::Cpu)?)?.into_iter().map(|p| p.1).collect();
    let mean = f.iter().sum::<f64>() / n as f64;
    let var = f.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1) as f64;
    Ok(KlEstimate { value: mean, std_error: (var / n as f64).sqrt() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::Gaussian;

    /// The identity map exactly: the ridge weights u set to zero.
    fn linear(d: usize) -> Result<BrenierMap> {
        let map = BrenierMap::identity(d, 4, &mut SeededRng::new(0))?;
        for (name, var) in map.varmap().data().lock().unwrap().iter() {
            if name == "u" {
                var.set(&var.as_tensor().zeros_like()?)?;
            }
        }
        Ok(map)
    }

    #[test]
    fn the_identity_map_has_the_closed_form_kl_of_the_reference() -> Result<()> {
        // KL(N(0, 1) | N(m, s²)) = ln s + (1 + m²)/(2s²) − ½
        let (m, s) = (0.8, 1.5f64);
        let map = linear(1)?;
        let t = Gaussian::new(&[m], &[s * s])?;
        let exact = s.ln() + (1.0 + m * m) / (2.0 * s * s) - 0.5;
        let q = kl_1d(&map, &t, 2001)?;
        assert!((q.value - exact).abs() < 1e-9, "quadrature {} vs {exact}", q.value);
        let map2 = linear(2)?;
        let t2 = Gaussian::new(&[m, 0.0], &[s * s, 0.0, 0.0, 1.0])?;
        let mc = kl_monte_carlo(&map2, &t2, 40_000, &mut SeededRng::new(5))?;
        assert!((mc.value - exact).abs() < 4.0 * mc.std_error + 1e-12, "MC {} ± {} vs {exact}", mc.value, mc.std_error);
        Ok(())
    }
}
