//! Step sizes η_k of the discrete Monge–Ampère flow, the four schedules Deb & Liang's regret
//! bounds are stated for ("No-Regret Generative Modeling via Parabolic Monge–Ampère PDE", 2025).

use crate::error::{MaError, Result};

/// How η_k depends on k and on the horizon T.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum StepSchedule {
    /// η_k = η: the average iterate ρ̄_T = (1/T)Σ_{k<T} ρ_k has KL(ρ̄_T | e^{−f}) = O(1/T).
    Constant(f64),
    /// η_k = c/√T: the last iterate has KL(ρ_T | e^{−f}) = O(1/√T) when ∇²ψ_k ⪰ m·I.
    InverseSqrtHorizon(f64),
    /// η_k = λ/(k + 1): KL(ρ_T | e^{−f}) = O(log T / T) when also ∇²ψ_k ⪯ M·I and g is
    /// λ-strongly convex.
    Harmonic(f64),
    /// η_k = c·log T / T (log T read as max(log T, 1)): B_G(e^{−f} | ρ_T) = O(log T / T).
    LogHorizonOverHorizon(f64),
}

impl StepSchedule {
    /// Checks the scale is finite and positive.
    pub fn validate(&self) -> Result<()> {
        let c = self.scale();
        if c.is_finite() && c > 0.0 {
            Ok(())
        } else {
            Err(MaError::Config(format!("step schedule {self:?} needs a finite positive scale")))
        }
    }

    /// The scale η, c or λ.
    pub fn scale(&self) -> f64 {
        match *self {
            Self::Constant(c) | Self::InverseSqrtHorizon(c) | Self::Harmonic(c) | Self::LogHorizonOverHorizon(c) => c,
        }
    }

    /// η_k for step k = 0…T−1 of a run of T steps.
    pub fn step_size(&self, k: usize, horizon: usize) -> f64 {
        let t = horizon.max(1) as f64;
        match *self {
            Self::Constant(c) => c,
            Self::InverseSqrtHorizon(c) => c / t.sqrt(),
            Self::Harmonic(c) => c / (k as f64 + 1.0),
            Self::LogHorizonOverHorizon(c) => c * t.ln().max(1.0) / t,
        }
    }

    /// Whether η_k depends on the horizon (then each T is its own run; otherwise one run of the
    /// longest horizon passes through every shorter one).
    pub fn depends_on_horizon(&self) -> bool {
        matches!(self, Self::InverseSqrtHorizon(_) | Self::LogHorizonOverHorizon(_))
    }

    /// A short name for tables: "constant", "1/sqrt(T)", "lambda/(k+1)", "log(T)/T".
    pub fn name(&self) -> &'static str {
        match self {
            Self::Constant(_) => "constant",
            Self::InverseSqrtHorizon(_) => "1/sqrt(T)",
            Self::Harmonic(_) => "lambda/(k+1)",
            Self::LogHorizonOverHorizon(_) => "log(T)/T",
        }
    }

    /// The shape of the theorem's bound at horizon T, up to its constant: 1/T (average iterate at
    /// a constant step), 1/√T (η = c/√T), log T / T (η_k = λ/(k + 1); also η = c·log T / T, whose
    /// theorem bounds the Bregman divergence B_G(μ | ρ_T) rather than KL).
    pub fn bound_shape(&self, horizon: f64) -> f64 {
        match self {
            Self::Constant(_) => 1.0 / horizon,
            Self::InverseSqrtHorizon(_) => 1.0 / horizon.sqrt(),
            Self::Harmonic(_) | Self::LogHorizonOverHorizon(_) => horizon.ln() / horizon,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_sizes_follow_their_formulas() {
        assert_eq!(StepSchedule::Constant(0.3).step_size(7, 100), 0.3);
        assert!((StepSchedule::InverseSqrtHorizon(2.0).step_size(0, 16) - 0.5).abs() < 1e-15);
        assert!((StepSchedule::Harmonic(1.5).step_size(2, 10) - 0.5).abs() < 1e-15);
        let t = 64.0f64;
        assert!((StepSchedule::LogHorizonOverHorizon(1.0).step_size(3, 64) - t.ln() / t).abs() < 1e-15);
        assert!(StepSchedule::InverseSqrtHorizon(1.0).depends_on_horizon());
        assert!(!StepSchedule::Harmonic(1.0).depends_on_horizon());
    }

    #[test]
    fn bad_scales_are_refused() {
        for s in [StepSchedule::Constant(0.0), StepSchedule::Harmonic(-1.0), StepSchedule::InverseSqrtHorizon(f64::NAN)] {
            assert!(matches!(s.validate(), Err(MaError::Config(_))), "{s:?}");
        }
        assert!(StepSchedule::Constant(0.1).validate().is_ok());
    }
}
