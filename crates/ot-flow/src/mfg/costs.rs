//! The functionals of a mean-field game ("A machine learning framework for solving
//! high-dimensional mean field game and mean field control problems", Ruthotto, Osher, Li,
//! Nurbekyan, Fung, PNAS 2020), estimated along Lagrangian particles x(t) ~ ρ_t whose log-density
//! log ρ_t(x(t)) = log ρ₀(x(0)) − ℓ(t) the flow carries (ℓ' = ∇·v):
//!
//! - interaction F(ρ) = μ_c ∫ρ² + ∫Qρ = E_{x~ρ}[μ_c ρ(x) + Q(x)], with variation
//!   δF/δρ(x) = 2μ_c ρ(x) + Q(x) (congestion and an obstacle or preference Q);
//! - terminal G(ρ) = KL(ρ ‖ ρ₁) = E[log ρ(x) − log ρ₁(x)] with δG/δρ = log ρ − log ρ₁ + 1, or a
//!   terminal potential G(ρ) = ∫ψρ with ψ(x) = ½w‖x − x₁‖² and δG/δρ = ψ.

use crate::error::{OtFlowError, Result};
use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};
use tensor_core::stats::gaussian_log_prob;
use tensor_core::SeededRng;

/// N(μ, diag(σ²)); `std` has one entry per dimension, or one shared by all.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Gaussian {
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

impl Gaussian {
    /// N(mean, std²·I).
    pub fn isotropic(mean: Vec<f64>, std: f64) -> Self {
        Self { mean, std: vec![std] }
    }

    /// Checks the dimension and that every σ is positive and finite.
    pub fn check(&self, dim: usize, what: &str) -> Result<()> {
        if self.mean.len() != dim || !(self.std.len() == 1 || self.std.len() == dim) {
            return Err(OtFlowError::Config(format!(
                "{what}: a Gaussian in dimension {dim} needs {dim} means and 1 or {dim} standard deviations, got {} and {}",
                self.mean.len(),
                self.std.len()
            )));
        }
        if self.mean.iter().chain(&self.std).any(|v| !v.is_finite()) || self.std.iter().any(|s| *s <= 0.0) {
            return Err(OtFlowError::Config(format!("{what}: means must be finite and standard deviations positive, got {self:?}")));
        }
        Ok(())
    }

    /// log N(x; μ, diag σ²), shape (B, 1).
    pub fn log_prob(&self, x: &Tensor) -> tensor_core::Result<Tensor> {
        gaussian_log_prob(x, &self.mean, &self.std)
    }

    /// `n` draws, shape (n, d).
    pub fn sample(&self, n: usize, rng: &mut SeededRng, dtype: DType, device: &Device) -> Result<Tensor> {
        let d = self.mean.len();
        let std: Vec<f64> = if self.std.len() == 1 { vec![self.std[0]; d] } else { self.std.clone() };
        let row = |v: &[f64]| -> Result<Tensor> { Ok(Tensor::new(v, device)?.to_dtype(dtype)?.unsqueeze(0)?) };
        Ok(rng.normal((n, d), dtype, device)?.broadcast_mul(&row(&std)?)?.broadcast_add(&row(&self.mean)?)?)
    }
}

/// Q(x) = height · N((x₁, …, x_k); centre, diag(std²)) on the first k = `centre.len()`
/// coordinates: a Gaussian obstacle the crowd pays to cross.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Obstacle {
    pub centre: Vec<f64>,
    pub std: Vec<f64>,
    pub height: f64,
}

impl Obstacle {
    /// Q(x), shape (B, 1).
    pub fn eval(&self, x: &Tensor) -> tensor_core::Result<Tensor> {
        let k = self.centre.len();
        Ok((gaussian_log_prob(&x.narrow(1, 0, k)?, &self.centre, &self.std)?.exp()? * self.height)?)
    }
}

/// F(ρ) = μ_c ∫ρ² + ∫Qρ.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Interaction {
    /// μ_c ≥ 0, the congestion weight.
    pub congestion: f64,
    pub obstacle: Option<Obstacle>,
}

impl Interaction {
    /// Checks μ_c ≥ 0 and the obstacle fits in dimension `dim`.
    pub fn check(&self, dim: usize) -> Result<()> {
        if !(self.congestion >= 0.0 && self.congestion.is_finite()) {
            return Err(OtFlowError::Config(format!("the congestion weight must be finite and non-negative, got {}", self.congestion)));
        }
        if let Some(o) = &self.obstacle {
            if o.centre.is_empty() || o.centre.len() > dim {
                return Err(OtFlowError::Config(format!(
                    "the obstacle acts on {} coordinates of a {dim}-dimensional state",
                    o.centre.len()
                )));
            }
            Gaussian { mean: o.centre.clone(), std: o.std.clone() }.check(o.centre.len(), "obstacle")?;
            if !(o.height >= 0.0 && o.height.is_finite()) {
                return Err(OtFlowError::Config(format!("the obstacle height must be finite and non-negative, got {}", o.height)));
            }
        }
        Ok(())
    }

    /// Per particle at x with log-density `log_rho`: the integrand μ_c ρ(x) + Q(x), whose mean
    /// over x ~ ρ is F(ρ), and the variation δF/δρ(x) = 2μ_c ρ(x) + Q(x); shapes (B, 1).
    pub fn rate_and_variation(&self, x: &Tensor, log_rho: &Tensor) -> tensor_core::Result<(Tensor, Tensor)> {
        let zero = log_rho.zeros_like()?;
        let congestion = if self.congestion > 0.0 { (log_rho.exp()? * self.congestion)? } else { zero.clone() };
        let q = match &self.obstacle {
            Some(o) => o.eval(x)?,
            None => zero,
        };
        Ok(((&congestion + &q)?, ((congestion * 2.0)? + q)?))
    }
}

/// The terminal cost G(ρ_T).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Terminal {
    /// KL(ρ_T ‖ ρ₁).
    Kl(Gaussian),
    /// ∫ψρ_T with ψ(x) = ½·weight·‖x − target‖².
    Quadratic { target: Vec<f64>, weight: f64 },
}

impl Terminal {
    /// Checks the dimension and the constants.
    pub fn check(&self, dim: usize) -> Result<()> {
        match self {
            Terminal::Kl(g) => g.check(dim, "terminal density ρ₁"),
            Terminal::Quadratic { target, weight } if target.len() == dim && weight.is_finite() && *weight >= 0.0 => Ok(()),
            Terminal::Quadratic { target, weight } => Err(OtFlowError::Config(format!(
                "the terminal potential needs a target in dimension {dim} and a finite non-negative weight, got {} entries and {weight}",
                target.len()
            ))),
        }
    }

    /// Per particle at x with log-density `log_rho`: the integrand (mean over x ~ ρ_T is G) and
    /// δG/δρ(x); shapes (B, 1).
    pub fn integrand_and_variation(&self, x: &Tensor, log_rho: &Tensor) -> tensor_core::Result<(Tensor, Tensor)> {
        match self {
            Terminal::Kl(target) => {
                let ratio = (log_rho - target.log_prob(x)?)?;
                Ok((ratio.clone(), (ratio + 1.0)?))
            }
            Terminal::Quadratic { target, weight } => {
                let t = Tensor::new(target.as_slice(), x.device())?.to_dtype(x.dtype())?.unsqueeze(0)?;
                let psi = (x.broadcast_sub(&t)?.sqr()?.sum_keepdim(1)? * (0.5 * weight))?;
                Ok((psi.clone(), psi))
            }
        }
    }
}
