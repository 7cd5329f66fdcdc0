//! Sampling by running the forward SDE backwards with a score (Anderson 1982; Song et al. 2021).
//! Ruthotto's "Understanding Generative AI Through Optimal Transport and PDEs" "smart zero": adding and subtracting ½g̃²s inside the Fokker–Planck flux gives, for
//! any g̃(t), a reverse-time process with the same marginals,
//!
//!   dx = [f(t)x − ½(g(t)² + g̃(t)²) s(x, t)] dt + g̃(t) dW̄,
//!
//! g̃ = 0 is the probability-flow ODE, g̃ = g the reverse SDE. Here g̃ = c·g for a user-chosen c.
//! Also: the PF-ODE with any `ode-solvers` method (adaptive included), score_sde's
//! predictor–corrector sampler with a Langevin corrector, and Tweedie's final denoising step.

use crate::error::{DiffusionError, Result};
use crate::score::Score;
use crate::sde::ForwardSde;
use candle_core::{DType, Tensor};
use ode_solvers::{
    solve, solve_sde, uniform_grid, Calculus, Method, Noise, SdeConfig, SdeMethod, SdeTerm, SolveConfig, Stats, Steps, VirtualBrownianTree,
};
use tensor_core::SeededRng;

/// The smart-zero family member g̃ = c·g as an Itô SDE term in reverse time.
struct SmartZero<'a> {
    score: &'a dyn Score,
    sde: ForwardSde,
    c: f64,
}

impl SdeTerm<Tensor> for SmartZero<'_> {
    fn drift(&self, t: f64, x: &Tensor) -> ode_solvers::Result<Tensor> {
        let s = self.score.score(x, t)?;
        let g2 = self.sde.diffusion_squared(t);
        Ok(((x * self.sde.drift_coefficient(t))? - (s * (0.5 * (1.0 + self.c * self.c) * g2))?)?)
    }
    fn diffusion(&self, t: f64, x: &Tensor) -> ode_solvers::Result<Tensor> {
        Ok(x.ones_like()?.affine(self.c * self.sde.diffusion_squared(t).sqrt(), 0.0)?)
    }
    fn calculus(&self) -> Calculus {
        Calculus::Ito
    }
    fn noise(&self) -> Noise {
        Noise::Diagonal
    }
}

/// A uniform grid of `steps` steps backwards in time, from `t_from` down to `t_to` > 0.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ReverseGrid {
    pub t_from: f64,
    pub t_to: f64,
    pub steps: usize,
}

impl ReverseGrid {
    /// From the SDE's t_max down to `t_min`.
    pub fn full(sde: &ForwardSde, t_min: f64, steps: usize) -> Self {
        Self { t_from: sde.t_max(), t_to: t_min, steps }
    }
}

/// The Langevin corrector of [`predictor_corrector`]: `steps` corrections per predictor step
/// at signal-to-noise ratio `snr` (score_sde uses 1 step, snr 0.16 for VP).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Langevin {
    pub steps: usize,
    pub snr: f64,
}

/// x(t_to) from x(t_from) = `x` by the smart-zero sampler with g̃ = `c`·g, Euler–Maruyama on the
/// grid; the noise comes from a Brownian tree seeded by `seed`.
pub fn smart_zero(score: &dyn Score, sde: &ForwardSde, x: &Tensor, c: f64, grid: ReverseGrid, seed: u64) -> Result<Tensor> {
    let ReverseGrid { t_from, t_to, steps } = grid;
    if !(c >= 0.0 && c.is_finite() && t_from > t_to && t_to > 0.0 && steps > 0) {
        return Err(DiffusionError::Config(format!("smart-zero sampler needs c ≥ 0, t_from > t_to > 0, steps ≥ 1; got c = {c}, {grid:?}")));
    }
    let term = SmartZero { score, sde: *sde, c };
    let grid = uniform_grid(t_from, t_to, steps)?;
    let tol = (t_from - t_to) / steps as f64 * 1e-6;
    let brownian = VirtualBrownianTree::new(t_to, t_from, seed, x, Noise::Diagonal, tol)?;
    let sol = solve_sde(&term, SdeMethod::EulerMaruyama, &x.detach(), &SdeConfig::new(&grid, &brownian))?;
    Ok(sol.last().clone())
}

/// The reverse SDE dx = [f x − g² s] dt + g dW̄ (g̃ = g).
pub fn reverse_sde(score: &dyn Score, sde: &ForwardSde, x: &Tensor, grid: ReverseGrid, seed: u64) -> Result<Tensor> {
    smart_zero(score, sde, x, 1.0, grid, seed)
}

/// The probability-flow ODE dx/dt = f x − ½g² s integrated from t_max to `t_min` with any
/// method; `steps` must run from t_max to t_min (`Steps::uniform(sde.t_max(), t_min, n)` or
/// adaptive). Returns x(t_min) and the solver's statistics (NFE).
pub fn probability_flow(score: &dyn Score, sde: &ForwardSde, x: &Tensor, method: Method, steps: Steps) -> Result<(Tensor, Stats)> {
    let field = |t: f64, x: &Tensor| -> ode_solvers::Result<Tensor> {
        let s = score.score(x, t)?;
        Ok(((x * sde.drift_coefficient(t))? - (s * (0.5 * sde.diffusion_squared(t)))?)?)
    };
    let sol = solve(&field, method, &x.detach(), &SolveConfig::new(steps))?;
    Ok((sol.last().clone(), sol.stats))
}

/// score_sde's predictor–corrector sampler (Song et al. 2021, Alg. 2/3): per step one reverse-SDE
/// Euler–Maruyama predictor, then the corrector's Langevin steps x ← x + ε s + √(2ε) z with
/// ε = 2 (snr ‖z‖/‖s‖)² (norms averaged over the batch).
pub fn predictor_corrector(
    score: &dyn Score,
    sde: &ForwardSde,
    x: &Tensor,
    grid: ReverseGrid,
    corrector: Langevin,
    seed: u64,
) -> Result<Tensor> {
    let ReverseGrid { t_from, t_to, steps } = grid;
    let snr = corrector.snr;
    if !(snr > 0.0 && steps > 0) {
        return Err(DiffusionError::Config(format!("predictor–corrector needs snr > 0 and steps ≥ 1, got {corrector:?}, {grid:?}")));
    }
    let mut rng = SeededRng::new(seed);
    let nodes = uniform_grid(t_from, t_to, steps)?;
    let mut x = x.detach();
    let mean_norm = |v: &Tensor| -> Result<f64> { Ok(v.sqr()?.sum(1)?.sqrt()?.mean_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?) };
    for w in nodes.windows(2) {
        let (t0, t1) = (w[0], w[1]);
        x = smart_zero(score, sde, &x, 1.0, ReverseGrid { t_from: t0, t_to: t1, steps: 1 }, rng.next_seed())?;
        for _ in 0..corrector.steps {
            let s = score.score(&x, t1)?;
            let z = rng.normal(x.dims(), x.dtype(), x.device())?;
            let eps = 2.0 * (snr * mean_norm(&z)? / mean_norm(&s)?.max(1e-30)).powi(2);
            x = ((&x + (s * eps)?)? + (z * (2.0 * eps).sqrt())?)?;
        }
    }
    Ok(x)
}

/// Tweedie's formula E[α_t x₀ | x_t] = x_t + σ_t² s, divided by α_t: the denoised estimate of
/// x₀ (score_sde's final "noise removal" step).
pub fn tweedie_denoise(score: &dyn Score, sde: &ForwardSde, x: &Tensor, t: f64) -> Result<Tensor> {
    Ok(((x + (score.score(x, t)? * sde.sigma(t).powi(2))?)? / sde.alpha(t))?)
}

/// n draws from the prior N(0, s² I) at t_max, shape (n, d).
pub fn prior_sample(
    sde: &ForwardSde,
    n: usize,
    d: usize,
    rng: &mut SeededRng,
    dtype: DType,
    device: &candle_core::Device,
) -> Result<Tensor> {
    Ok((rng.normal((n, d), dtype, device)? * sde.prior_std())?)
}
