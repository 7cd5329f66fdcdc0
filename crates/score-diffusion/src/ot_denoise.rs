//! Liang's "Generative Models, Optimal Transport, and PDEs" diffuse-then-denoise chains for the OU process (f(x) = ‖x‖²/2, temperature β⁻¹),
//! step η, K steps (time horizon Kη):
//!
//! - forward: X_{k+1} = (1 − η) X_k + √(2β⁻¹η) Z;
//! - backward OT denoising map (Liang et al. 2024, Prop.: the Brenier map from μ_{kη} back to
//!   μ_{(k−1)η} of the JKO step): b_k = i + η(∇f + β⁻¹ ∇ log p_{μ_{kη}}), applied to *any*
//!   starting cloud, with the exact score of μ_{kη} = law of e^{−kη}X + √(β⁻¹(1 − e^{−2kη})) Z;
//! - its SDE form ([`OuChain::backward_sde`]): the score term doubled, plus √(2β⁻¹η) Z.
//!
//! For μ = N(0, σ²) in 1-D the map is linear, b_k(x) = (1 + η(1 − 1/v_k)) x with
//! v_k = e^{−2kη}(σ² − 1) + 1 (β = 1), so W(b_k#μ_k, b_k#ν̄_k)/W(μ_k, ν̄_k) =
//! 1 + η(σ² − 1)/(e^{2kη} + σ² − 1) for every ν̄. The seed writes e^{kη}: the same formula on the
//! clock of dX = −½X dt + dB; [`gaussian_ratio`] gives both and the `diffusion-curvature` suite
//! measures which one the chain follows.

use crate::error::{DiffusionError, Result};
use crate::mixture::GaussianMixture;
use crate::sde::ForwardSde;
use candle_core::Tensor;
use tensor_core::SeededRng;

/// The OU chain of Liang, "Generative Models, Optimal Transport, and PDEs".
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OuChain {
    pub beta_inv: f64,
    pub eta: f64,
    pub steps: usize,
}

impl OuChain {
    /// Checks η ∈ (0, 1), β⁻¹ > 0, K ≥ 1.
    pub fn validate(&self) -> Result<()> {
        if self.eta > 0.0 && self.eta < 1.0 && self.beta_inv > 0.0 && self.steps > 0 {
            Ok(())
        } else {
            Err(DiffusionError::Config(format!("OU chain needs 0 < η < 1, β⁻¹ > 0, K ≥ 1: {self:?}")))
        }
    }

    fn marginal(&self) -> ForwardSde {
        ForwardSde::Ou { beta_inv: self.beta_inv, t_end: self.eta * self.steps as f64 }
    }

    /// X₀ = `x0`, X₁, …, X_K by the forward chain (K + 1 clouds).
    pub fn forward(&self, x0: &Tensor, seed: u64) -> Result<Vec<Tensor>> {
        self.validate()?;
        let mut rng = SeededRng::new(seed);
        let mut path = vec![x0.clone()];
        for _ in 0..self.steps {
            let x = path.last().expect("non-empty");
            let z = rng.normal(x.dims(), x.dtype(), x.device())?;
            path.push(((x * (1.0 - self.eta))? + (z * (2.0 * self.beta_inv * self.eta).sqrt())?)?);
        }
        Ok(path)
    }

    /// b_k(x) = x + η(x + β⁻¹ ∇ log p_{μ_{kη}}(x)) for data measure `mu`, k ≥ 1.
    pub fn backward_map(&self, mu: &GaussianMixture, k: usize, x: &Tensor) -> Result<Tensor> {
        let t = self.eta * k as f64;
        let sde = self.marginal();
        let s = mu.score(x, sde.alpha(t), sde.sigma(t))?;
        Ok((x + ((x + (s * self.beta_inv)?)? * self.eta)?)?)
    }

    /// Applies b_K, …, b_1 to `x_k` (the cloud at step K): K + 1 clouds from step K down to 0.
    pub fn backward(&self, mu: &GaussianMixture, x_k: &Tensor) -> Result<Vec<Tensor>> {
        self.validate()?;
        let mut path = vec![x_k.clone()];
        for k in (1..=self.steps).rev() {
            let x = self.backward_map(mu, k, path.last().expect("non-empty"))?;
            path.push(x);
        }
        Ok(path)
    }

    /// The backward chain in its SDE form (the reverse-time OU SDE by Euler–Maruyama):
    /// x ← x + η(x + 2β⁻¹ ∇log p_{μ_{kη}}(x)) + √(2β⁻¹η) Z for k = K, …, 1 — twice the score
    /// term of the OT map [`OuChain::backward_map`], plus noise; in law both carry μ_{Kη} back to
    /// μ up to O(η). K + 1 clouds from step K down to 0; every draw from `seed`.
    pub fn backward_sde(&self, mu: &GaussianMixture, x_k: &Tensor, seed: u64) -> Result<Vec<Tensor>> {
        self.validate()?;
        let sde = self.marginal();
        let mut rng = SeededRng::new(seed);
        let mut path = vec![x_k.clone()];
        for k in (1..=self.steps).rev() {
            let t = self.eta * k as f64;
            let x = path.last().expect("non-empty");
            let s = mu.score(x, sde.alpha(t), sde.sigma(t))?;
            let drift = ((x + (s * (2.0 * self.beta_inv))?)? * self.eta)?;
            let z = rng.normal(x.dims(), x.dtype(), x.device())?;
            path.push(((x + drift)? + (z * (2.0 * self.beta_inv * self.eta).sqrt())?)?);
        }
        Ok(path)
    }
}

/// The one-step ratio W(μ_{k−1}, ν̄_{k−1})/W(μ_k, ν̄_k) for μ = N(0, σ²), β = 1, in closed form:
/// (Liang's "Generative Models, Optimal Transport, and PDEs" 1 + η(σ² − 1)/(e^{kη} + σ² − 1), the same with e^{2kη}).
pub fn gaussian_ratio(sigma2: f64, eta: f64, k: usize) -> (f64, f64) {
    let kt = eta * k as f64;
    (1.0 + eta * (sigma2 - 1.0) / (kt.exp() + sigma2 - 1.0), 1.0 + eta * (sigma2 - 1.0) / ((2.0 * kt).exp() + sigma2 - 1.0))
}

/// The 1-D 2-Wasserstein distance between two equal-size samples (sorted matching is optimal).
pub fn w2_1d(a: &Tensor, b: &Tensor) -> Result<f64> {
    let mut x = a.to_dtype(candle_core::DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
    let mut y = b.to_dtype(candle_core::DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
    if x.len() != y.len() || x.is_empty() {
        return Err(DiffusionError::Config(format!("1-D W2 needs equal non-empty samples, got {} and {}", x.len(), y.len())));
    }
    x.sort_by(f64::total_cmp);
    y.sort_by(f64::total_cmp);
    Ok((x.iter().zip(&y).map(|(p, q)| (p - q).powi(2)).sum::<f64>() / x.len() as f64).sqrt())
}
