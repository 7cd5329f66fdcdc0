//! Step-size control for embedded pairs: the PI controller (Gustafsson 1991; Hairer & Wanner
//! IV.2) and Hairer's starting-step heuristic (Hairer, Nørsett & Wanner II.4).

use crate::error::{Result, SolverError};

/// PI step-size controller: h_new = h · clamp(safety · e^(−α) · e_prev^(β), min, max) with
/// α = 0.7/(q+1), β = 0.4/(q+1), e the scaled RMS error of the step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PiController {
    /// Relative tolerance.
    pub rtol: f64,
    /// Absolute tolerance.
    pub atol: f64,
    /// First step; `None` picks it by Hairer's heuristic.
    pub first_step: Option<f64>,
    /// Safety factor.
    pub safety: f64,
    /// Smallest and largest step-size factor per step.
    pub factor_min: f64,
    pub factor_max: f64,
}

impl PiController {
    /// A controller with the usual safety 0.9 and factors [0.2, 10].
    pub fn new(rtol: f64, atol: f64) -> Self {
        Self { rtol, atol, first_step: None, safety: 0.9, factor_min: 0.2, factor_max: 10.0 }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if !(self.rtol >= 0.0 && self.atol >= 0.0 && self.rtol + self.atol > 0.0) {
            return Err(SolverError::Config(format!("tolerances must be ≥ 0 and not both 0: rtol {}, atol {}", self.rtol, self.atol)));
        }
        if let Some(h) = self.first_step {
            if !(h.is_finite() && h > 0.0) {
                return Err(SolverError::Config(format!("first_step must be positive, got {h}")));
            }
        }
        Ok(())
    }

    /// Factor for the next step after an error e (accepted when e ≤ 1) given the last accepted
    /// step's error `e_prev`, for an embedded order q.
    pub fn factor(&self, e: f64, e_prev: f64, q: u32) -> f64 {
        let k = (q + 1) as f64;
        if e == 0.0 {
            return self.factor_max;
        }
        let f = if e <= 1.0 {
            self.safety * e.powf(-0.7 / k) * e_prev.max(1e-4).powf(0.4 / k)
        } else {
            // rejected: shrink by the elementary controller, never grow
            (self.safety * e.powf(-1.0 / k)).min(1.0)
        };
        f.clamp(self.factor_min, self.factor_max)
    }
}

/// Hairer's initial step: h₀ = 0.01‖y₀‖/‖f₀‖, one Euler trial step to estimate the second
/// derivative, h = min(100 h₀, (0.01 / max(‖f₀‖, ‖f'‖))^(1/(p+1))). Norms are scaled RMS.
pub fn initial_step(d0: f64, d1: f64, d2_fn: &mut dyn FnMut(f64) -> Result<f64>, order: u32) -> Result<f64> {
    let h0 = if d0 < 1e-5 || d1 < 1e-5 { 1e-6 } else { 0.01 * d0 / d1 };
    let d2 = d2_fn(h0)? / h0;
    let h1 = if d1.max(d2) <= 1e-15 { (h0 * 1e-3).max(1e-6) } else { (0.01 / d1.max(d2)).powf(1.0 / (order as f64 + 1.0)) };
    Ok((100.0 * h0).min(h1))
}
