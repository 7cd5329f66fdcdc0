//! Forward noising SDEs dx = f(t)·x dt + g(t) dW with linear drift, so the perturbation kernel is
//! Gaussian in closed form: p_t(x | x₀) = N(α_t x₀, σ_t² I) (Song et al. 2021, eqs. 29–33;
//! Ruthotto, "Understanding Generative AI Through Optimal Transport and PDEs"; Ruthotto, "PDE Framework for Generative Modeling": "p_t(x|x₀) = N(α_t x₀, σ_t² I) ... known analytically").

use crate::error::{DiffusionError, Result};
use std::f64::consts::PI;

/// A forward SDE with linear drift. Time runs over [0, T]; samplers start at [`ForwardSde::t_max`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ForwardSde {
    /// Variance preserving with linear β(t) = β_min + (β_max − β_min) t/T: f = −½β, g² = β,
    /// α_t = exp(−½∫₀ᵗβ), σ_t² = 1 − α_t² (DDPM's continuous limit). Seeds: β_min 0.1, β_max 20.
    VpLinear { beta_min: f64, beta_max: f64, t_end: f64 },
    /// Variance preserving with α_t = cos(πt/2T) (Nichol & Dhariwal's cosine schedule without
    /// the offset): β(t) = −2 d/dt log α_t = (π/T) tan(πt/2T), σ_t² = 1 − α_t². β diverges at T,
    /// so samplers start at t_max = 0.99 T (α = 0.016, β = 127/T).
    VpCosine { t_end: f64 },
    /// Variance exploding: σ(t) = σ_min (σ_max/σ_min)^{t/T}, f = 0, g² = dσ²/dt; the exact
    /// kernel variance from x₀ is σ(t)² − σ_min² (score_sde approximates it by σ(t)²).
    Ve { sigma_min: f64, sigma_max: f64, t_end: f64 },
    /// Liang's "Generative Models, Optimal Transport, and PDEs" Ornstein–Uhlenbeck process dX = −X dt + √(2β⁻¹) dB (Langevin diffusion of
    /// f(x) = ‖x‖²/2 at temperature β⁻¹): α_t = e^{−t}, σ_t² = β⁻¹(1 − e^{−2t}).
    Ou { beta_inv: f64, t_end: f64 },
}

impl ForwardSde {
    /// The lecture notes' default: VP linear with β_min = 0.1, β_max = 20 on [0, T].
    pub fn vp(t_end: f64) -> Self {
        Self::VpLinear { beta_min: 0.1, beta_max: 20.0, t_end }
    }

    /// Checks the parameters.
    pub fn validate(&self) -> Result<()> {
        let ok = match *self {
            Self::VpLinear { beta_min, beta_max, t_end } => beta_min > 0.0 && beta_max >= beta_min && t_end > 0.0,
            Self::VpCosine { t_end } => t_end > 0.0,
            Self::Ve { sigma_min, sigma_max, t_end } => sigma_min > 0.0 && sigma_max > sigma_min && t_end > 0.0,
            Self::Ou { beta_inv, t_end } => beta_inv > 0.0 && t_end > 0.0,
        };
        if ok && self.t_end().is_finite() {
            Ok(())
        } else {
            Err(DiffusionError::Config(format!("invalid forward SDE {self:?}")))
        }
    }

    /// T.
    pub fn t_end(&self) -> f64 {
        match *self {
            Self::VpLinear { t_end, .. } | Self::VpCosine { t_end } | Self::Ve { t_end, .. } | Self::Ou { t_end, .. } => t_end,
        }
    }

    /// The time samplers start from (T, or 0.99 T for the cosine schedule).
    pub fn t_max(&self) -> f64 {
        match *self {
            Self::VpCosine { t_end } => 0.99 * t_end,
            _ => self.t_end(),
        }
    }

    /// β(t) of the VP schedules.
    fn beta(&self, t: f64) -> f64 {
        match *self {
            Self::VpLinear { beta_min, beta_max, t_end } => beta_min + (beta_max - beta_min) * t / t_end,
            Self::VpCosine { t_end } => PI / t_end * (PI * t / (2.0 * t_end)).tan(),
            _ => 0.0,
        }
    }

    /// f(t) in the drift f(t)·x.
    pub fn drift_coefficient(&self, t: f64) -> f64 {
        match *self {
            Self::VpLinear { .. } | Self::VpCosine { .. } => -0.5 * self.beta(t),
            Self::Ve { .. } => 0.0,
            Self::Ou { .. } => -1.0,
        }
    }

    /// g(t)².
    pub fn diffusion_squared(&self, t: f64) -> f64 {
        match *self {
            Self::VpLinear { .. } | Self::VpCosine { .. } => self.beta(t),
            Self::Ve { sigma_min, sigma_max, t_end } => {
                let s = sigma_min * (sigma_max / sigma_min).powf(t / t_end);
                2.0 * s * s * (sigma_max / sigma_min).ln() / t_end
            }
            Self::Ou { beta_inv, .. } => 2.0 * beta_inv,
        }
    }

    /// α_t, the mean factor of the kernel.
    pub fn alpha(&self, t: f64) -> f64 {
        match *self {
            Self::VpLinear { beta_min, beta_max, t_end } => (-0.5 * (beta_min * t + 0.5 * (beta_max - beta_min) * t * t / t_end)).exp(),
            Self::VpCosine { t_end } => (PI * t / (2.0 * t_end)).cos(),
            Self::Ve { .. } => 1.0,
            Self::Ou { .. } => (-t).exp(),
        }
    }

    /// σ_t, the standard deviation of the kernel.
    pub fn sigma(&self, t: f64) -> f64 {
        match *self {
            Self::VpLinear { .. } | Self::VpCosine { .. } => (1.0 - self.alpha(t).powi(2)).max(0.0).sqrt(),
            Self::Ve { sigma_min, sigma_max, t_end } => {
                let s = sigma_min * (sigma_max / sigma_min).powf(t / t_end);
                (s * s - sigma_min * sigma_min).max(0.0).sqrt()
            }
            Self::Ou { beta_inv, .. } => (beta_inv * (1.0 - (-2.0 * t).exp())).sqrt(),
        }
    }

    /// The standard deviation of the prior N(0, s² I) samplers start from at t_max.
    pub fn prior_std(&self) -> f64 {
        match *self {
            Self::Ve { .. } => self.sigma(self.t_max()),
            Self::Ou { beta_inv, .. } => beta_inv.sqrt(),
            _ => 1.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel must solve the moment ODEs of the SDE: dα/dt = f α, dσ²/dt = 2fσ² + g².
    #[test]
    fn kernel_solves_the_moment_equations() {
        let sdes = [
            ForwardSde::vp(1.0),
            ForwardSde::vp(5.0),
            ForwardSde::VpCosine { t_end: 1.0 },
            ForwardSde::Ve { sigma_min: 0.01, sigma_max: 50.0, t_end: 1.0 },
            ForwardSde::Ou { beta_inv: 0.5, t_end: 3.0 },
        ];
        for sde in sdes {
            sde.validate().unwrap();
            let h = 1e-6;
            for i in 1..10 {
                let t = sde.t_max() * i as f64 / 10.0;
                let da = (sde.alpha(t + h) - sde.alpha(t - h)) / (2.0 * h);
                let ds2 = (sde.sigma(t + h).powi(2) - sde.sigma(t - h).powi(2)) / (2.0 * h);
                let f = sde.drift_coefficient(t);
                let want_da = f * sde.alpha(t);
                let want_ds2 = 2.0 * f * sde.sigma(t).powi(2) + sde.diffusion_squared(t);
                assert!((da - want_da).abs() <= 1e-5 * (1.0 + want_da.abs()), "{sde:?} α' at {t}: {da} vs {want_da}");
                assert!((ds2 - want_ds2).abs() <= 1e-5 * (1.0 + want_ds2.abs()), "{sde:?} σ²' at {t}: {ds2} vs {want_ds2}");
            }
            assert!(sde.alpha(0.0) == 1.0 && sde.sigma(0.0) == 0.0, "{sde:?} starts at the data");
        }
        assert!(ForwardSde::Ve { sigma_min: 1.0, sigma_max: 0.5, t_end: 1.0 }.validate().is_err());
    }
}
