//! Liang, "Generative Models, Optimal Transport, and PDEs" (Liang, Koriyama & Dharmakeerthi 2024): curvature, localization and the integrated
//! tail of a measure μ at signal-to-noise ratio r. With Y_r = rX + Z, X ~ μ, Z ~ N(0, I):
//!
//! - curvature: ∇² log p_{Y_r}(y) = Cov[rX | Y_r = y] − I (Tweedie's second-order formula);
//! - localization: L_r(y) = ‖Cov[rX | Y_r = y]‖_op, so L_r(y) ≤ 1 − δ ⇔ ∇² log p ⪯ −δ I;
//! - survival function s_r(u) = P(L_r(Y_r) > u), integrated tail h_μ(δ, r) = ∫_{1−δ}^∞ s_r(u) du
//!   = E[(L_r − (1 − δ))₊];
//! - m*(r) = min_{δ∈(0,1]} h_μ(δ, r)/δ and, for the OU process of temperature β⁻¹ at time t with
//!   r(t) = e^{−t}/√(β⁻¹(1 − e^{−2t})), ζ*_M(t) = sup_{δ∈[0,1]} [δ − M h_μ(δ, r(t))]/(1 − e^{−2t}).
//!
//! L_r is exact for mixtures (posterior covariance in closed form); the law of L_r(Y_r) is
//! sampled by Monte Carlo, as the seed prescribes.

use crate::error::{DiffusionError, Result};
use crate::mixture::{operator_norms, GaussianMixture};
use candle_core::{DType, Device, Tensor};
use ode_solvers::uniform_grid;
use tensor_core::SeededRng;

/// L_r(y) for each row of `y` (B, d).
pub fn localization(mu: &GaussianMixture, r: f64, y: &Tensor) -> Result<Vec<f64>> {
    let (_, cov) = mu.posterior_moments(y, r, 1.0)?;
    Ok(operator_norms(&cov)?.into_iter().map(|l| r * r * l).collect())
}

/// A Monte Carlo sample of L_r(Y_r), sorted, with the functionals built on it.
#[derive(Clone, Debug)]
pub struct LocalizationProfile {
    pub r: f64,
    sorted: Vec<f64>,
}

impl LocalizationProfile {
    /// Draws n copies of Y_r = rX + Z and evaluates L_r on them.
    pub fn draw(mu: &GaussianMixture, r: f64, n: usize, seed: u64) -> Result<Self> {
        if !(r > 0.0 && r.is_finite()) || n == 0 {
            return Err(DiffusionError::Config(format!("localization profile needs r > 0 and n ≥ 1, got r = {r}, n = {n}")));
        }
        let mut rng = SeededRng::new(seed);
        let x = mu.sample(n, &mut rng, DType::F64, &Device::Cpu)?;
        let y = ((x * r)? + rng.normal((n, mu.dim()), DType::F64, &Device::Cpu)?)?;
        let mut sorted = localization(mu, r, &y)?;
        sorted.sort_by(f64::total_cmp);
        Ok(Self { r, sorted })
    }

    /// s_r(u) = P(L_r > u).
    pub fn survival(&self, u: f64) -> f64 {
        let above = self.sorted.len() - self.sorted.partition_point(|l| *l <= u);
        above as f64 / self.sorted.len() as f64
    }

    /// h_μ(δ, r) = E[(L_r − (1 − δ))₊].
    pub fn integrated_tail(&self, delta: f64) -> f64 {
        let a = 1.0 - delta;
        self.sorted.iter().map(|l| (l - a).max(0.0)).sum::<f64>() / self.sorted.len() as f64
    }

    /// m*(r) = min over δ on `grid` (in (0, 1]) of h_μ(δ, r)/δ.
    pub fn m_star(&self, grid: &[f64]) -> f64 {
        grid.iter().filter(|d| **d > 0.0).map(|&d| self.integrated_tail(d) / d).fold(f64::INFINITY, f64::min)
    }

    /// sup over δ on `grid` (in [0, 1]) of δ − M h_μ(δ, r): ζ*_M without the time factor.
    pub fn net_contraction(&self, m: f64, grid: &[f64]) -> f64 {
        grid.iter().map(|&d| d - m * self.integrated_tail(d)).fold(f64::NEG_INFINITY, f64::max)
    }

    /// The largest sampled L_r.
    pub fn max(&self) -> f64 {
        self.sorted.last().copied().unwrap_or(0.0)
    }
}

/// r(t) = e^{−t}/√(β⁻¹(1 − e^{−2t})), the SNR of the OU process at time t.
pub fn ou_snr(t: f64, beta_inv: f64) -> f64 {
    (-t).exp() / (beta_inv * (1.0 - (-2.0 * t).exp())).sqrt()
}

/// ζ*_M(t) = sup_{δ∈[0,1]} [δ − M h_μ(δ, r(t))]/(1 − e^{−2t}) with n Monte Carlo draws and δ on a
/// uniform grid of `grid_steps` steps.
pub fn zeta_star(mu: &GaussianMixture, t: f64, m: f64, beta_inv: f64, n: usize, grid_steps: usize, seed: u64) -> Result<f64> {
    if !(t > 0.0 && t.is_finite() && m >= 0.0 && beta_inv > 0.0) {
        return Err(DiffusionError::Config(format!("ζ*_M(t) needs t > 0, M ≥ 0, β⁻¹ > 0; got t = {t}, M = {m}, β⁻¹ = {beta_inv}")));
    }
    let profile = LocalizationProfile::draw(mu, ou_snr(t, beta_inv), n, seed)?;
    let grid = uniform_grid(0.0, 1.0, grid_steps)?;
    Ok(profile.net_contraction(m, &grid) / (1.0 - (-2.0 * t).exp()))
}
