//! Denoising score matching (Vincent 2011; Song et al. 2021, eq. 7; Ruthotto, "Understanding Generative AI Through Optimal Transport and PDEs"; Ruthotto, "PDE Framework for Generative Modeling"): with
//! x_t = α_t x₀ + σ_t ε the conditional score is −ε/σ_t, and
//!
//!   L(θ) = E_{t, x₀, ε} λ(t) ‖s_θ(x_t, t) + ε/σ_t‖²,
//!
//! whose minimiser is the marginal score ∇ log p_t. Simulation-free, like flow matching.

use crate::error::{DiffusionError, Result};
use crate::score::{Parametrization, Score, ScoreNet};
use candle_core::Tensor;
use candle_nn::VarMap;
use tensor_core::nets::TimeLayer;
use tensor_core::SeededRng;
use train::minimize;

/// The time weighting λ(t) of the loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Weighting {
    /// λ = σ_t²: ‖σ_t s + ε‖², score_sde's default; for [`Parametrization::Noise`] this is
    /// exactly DDPM's ‖ε̂ − ε‖².
    Sigma2,
    /// λ = 1: the plain score error.
    Uniform,
    /// λ = g(t)²: makes the loss a bound on the KL (Song et al. 2021b, "likelihood weighting").
    Likelihood,
}

/// Settings of [`train_dsm`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DsmConfig {
    pub weighting: Weighting,
    /// t ~ U(t_min, T): score_sde uses 10⁻⁵ (VP) — σ_t → 0 makes −ε/σ_t blow up.
    pub t_min: f64,
    pub iters: usize,
    pub batch: usize,
    pub lr: f64,
    pub seed: u64,
}

/// The DSM loss on a batch x₀ of shape (B, d), one t per sample.
pub fn dsm_loss<L: TimeLayer>(model: &ScoreNet<L>, x0: &Tensor, weighting: Weighting, t_min: f64, rng: &mut SeededRng) -> Result<Tensor> {
    let (n, d) = x0.dims2()?;
    let (dtype, dev) = (x0.dtype(), x0.device());
    let sde = model.sde;
    let ts = rng.uniform(n, t_min, sde.t_end(), candle_core::DType::F64, &candle_core::Device::Cpu)?.to_vec1::<f64>()?;
    let col = |f: &dyn Fn(f64) -> f64| -> Result<Tensor> {
        Ok(Tensor::from_vec(ts.iter().map(|&t| f(t)).collect::<Vec<_>>(), (n, 1), dev)?.to_dtype(dtype)?)
    };
    let (alpha, sigma, t) = (col(&|t| sde.alpha(t))?, col(&|t| sde.sigma(t))?, col(&|t| t)?);
    let eps = rng.normal((n, d), dtype, dev)?;
    let xt = (x0.broadcast_mul(&alpha)? + eps.broadcast_mul(&sigma)?)?;
    let out = model.net.forward(&xt, &t)?;
    // the residual r with λ‖s + ε/σ‖² = w(t)‖r‖²
    let (residual, weight) = match model.parametrization {
        // s = −ε̂/σ: s + ε/σ = (ε − ε̂)/σ
        Parametrization::Noise => ((eps - out)?, col(&|t| lambda(weighting, &sde, t) / sde.sigma(t).powi(2))?),
        Parametrization::Score => ((out + eps.broadcast_div(&sigma)?)?, col(&|t| lambda(weighting, &sde, t))?),
    };
    Ok(residual.sqr()?.sum_keepdim(1)?.mul(&weight)?.mean_all()?)
}

fn lambda(weighting: Weighting, sde: &crate::sde::ForwardSde, t: f64) -> f64 {
    match weighting {
        Weighting::Sigma2 => sde.sigma(t).powi(2),
        Weighting::Uniform => 1.0,
        Weighting::Likelihood => sde.diffusion_squared(t),
    }
}

/// Trains `model` (parameters in `varmap`) on the rows of `data` with AdamW; returns the losses.
pub fn train_dsm<L: TimeLayer>(model: &ScoreNet<L>, varmap: &VarMap, data: &Tensor, cfg: &DsmConfig) -> Result<Vec<f64>> {
    model.sde.validate()?;
    if cfg.batch < 1 || !(cfg.t_min > 0.0 && cfg.t_min < model.sde.t_end()) {
        return Err(DiffusionError::Config(format!("DSM needs batch ≥ 1 and 0 < t_min < T: {cfg:?}")));
    }
    let mut rng = SeededRng::new(cfg.seed);
    minimize(varmap, cfg.lr, cfg.iters, |_| {
        let x0 = rng.rows(data, cfg.batch)?;
        dsm_loss(model, &x0, cfg.weighting, cfg.t_min, &mut rng)
    })
}

/// Mean squared distance between two scores on the same points (a test and bench metric).
pub fn score_error(a: &dyn Score, b: &dyn Score, x: &Tensor, t: f64) -> Result<f64> {
    Ok((a.score(x, t)? - b.score(x, t)?)?.sqr()?.sum(1)?.mean_all()?.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?)
}
