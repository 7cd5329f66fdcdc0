//! Conditional flow matching ("Flow Matching for Generative Modeling", Lipman et al. 2023; "Flow
//! Straight and Fast", Liu et al. 2023; "Improving and Generalizing Flow-Based Generative Models
//! with Minibatch Optimal Transport", Tong et al. 2024): on a Gaussian path x_t = μ_t + σ_t ε
//! with μ_t = (1 − t)x₀ + t x₁, regress v_θ(x_t, t) on the conditional velocity u_t = μ_t' + σ_t' ε, x₀ from the source, x₁ from the
//! data, paired by a [`Coupling`]. Simulation-free: no ODE is solved during training.

use crate::coupling::Coupling;
use crate::error::{FmError, Result};
use candle_core::Tensor;
use candle_nn::VarMap;
use tensor_core::nets::{TimeLayer, TimeNet};
use tensor_core::SeededRng;
use train::minimize;

/// The conditional probability path around the straight line from x₀ to x₁.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Path {
    /// σ_t = σ, u_t = x₁ − x₀ (torchcfm's `ConditionalFlowMatcher`; σ = 0 is rectified flow's path).
    Straight { sigma: f64 },
    /// The Brownian bridge σ_t = σ√(t(1 − t)), u_t = x₁ − x₀ + (1 − 2t)/(2t(1 − t))·σ_t ε: with the
    /// entropic coupling at ε = 2σ² (raw squared-distance cost) this is Schrödinger-bridge CFM
    /// (Tong et al. 2024, torchcfm's `SchrodingerBridgeConditionalFlowMatcher`, whose default
    /// coupling is the exact OT assignment). t is drawn from [10⁻⁴, 1 − 10⁻⁴], where u_t is finite.
    BrownianBridge { sigma: f64 },
}

impl Path {
    /// A short name for tables.
    pub fn name(&self) -> String {
        match self {
            Self::Straight { sigma } => format!("straight(sigma={sigma})"),
            Self::BrownianBridge { sigma } => format!("brownian-bridge(sigma={sigma})"),
        }
    }

    /// (x_t, u_t) for times `t` (n, 1) and standard normal `noise` (n, d): x_t = μ_t + σ_t ε,
    /// u_t = μ_t' + σ_t' ε, so that ∂x_t/∂t = u_t at fixed ε.
    pub fn point_and_target(&self, x0: &Tensor, x1: &Tensor, t: &Tensor, noise: &Tensor) -> Result<(Tensor, Tensor)> {
        let mu = (x0.broadcast_mul(&(1.0 - t)?)? + x1.broadcast_mul(t)?)?;
        let drift = (x1 - x0)?;
        match *self {
            Self::Straight { sigma } => Ok(((mu + (noise * sigma)?)?, drift)),
            Self::BrownianBridge { sigma } => {
                let root = (t * (1.0 - t)?)?.sqrt()?;
                // σ_t' ε = σ(1 − 2t)/(2√(t(1 − t))) ε
                let speed = ((1.0 - (t * 2.0)?)? * sigma)?.broadcast_div(&(&root * 2.0)?)?;
                Ok(((mu + noise.broadcast_mul(&(root * sigma)?)?)?, (drift + noise.broadcast_mul(&speed)?)?))
            }
        }
    }

    fn time_range(&self) -> (f64, f64) {
        match self {
            Self::Straight { .. } => (0.0, 1.0),
            Self::BrownianBridge { .. } => (1e-4, 1.0 - 1e-4),
        }
    }
}

/// Settings of [`train_cfm`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CfmConfig {
    pub coupling: Coupling,
    pub path: Path,
    pub iters: usize,
    pub batch: usize,
    pub lr: f64,
    pub seed: u64,
}

/// E‖v_θ(x_t, t) − u_t‖² for paired batches, t uniform per sample (see [`Path`]).
pub fn cfm_loss<L: TimeLayer>(net: &TimeNet<L>, x0: &Tensor, x1: &Tensor, path: Path, rng: &mut SeededRng) -> Result<Tensor> {
    let (n, d) = x0.dims2()?;
    let (lo, hi) = path.time_range();
    let t = rng.uniform((n, 1), lo, hi, x0.dtype(), x0.device())?;
    let noise = rng.normal((n, d), x0.dtype(), x0.device())?;
    let (xt, ut) = path.point_and_target(x0, x1, &t, &noise)?;
    let v = net.forward(&xt, &t)?;
    Ok((v - ut)?.sqr()?.sum_keepdim(1)?.mean_all()?)
}

/// Trains `net` (parameters in `varmap`) to carry `source` samples to `data` samples; returns
/// the loss per iteration. Minibatches are drawn from both pools and paired by the coupling.
pub fn train_cfm<L: TimeLayer>(net: &TimeNet<L>, varmap: &VarMap, source: &Tensor, data: &Tensor, cfg: &CfmConfig) -> Result<Vec<f64>> {
    fit(net, varmap, cfg, |rng| {
        let (x0, x1) = (rng.rows(source, cfg.batch)?, rng.rows(data, cfg.batch)?);
        cfg.coupling.pair(&x0, &x1, rng)
    })
}

/// Trains `net` on fixed pairs (x₀ⁱ, x₁ⁱ) — rows of `x0` and `x1` stay together, the coupling of
/// `cfg` is not used. Rectified flow's reflow step trains on pairs (z, ODE(z)) this way.
pub fn train_on_pairs<L: TimeLayer>(net: &TimeNet<L>, varmap: &VarMap, x0: &Tensor, x1: &Tensor, cfg: &CfmConfig) -> Result<Vec<f64>> {
    fit(net, varmap, cfg, |rng| {
        let mut rows = rng.paired_rows(&[x0, x1], cfg.batch)?;
        let b = rows.pop().expect("two tensors in");
        Ok((rows.pop().expect("two tensors in"), b))
    })
}

fn fit<L: TimeLayer>(
    net: &TimeNet<L>,
    varmap: &VarMap,
    cfg: &CfmConfig,
    mut draw: impl FnMut(&mut SeededRng) -> Result<(Tensor, Tensor)>,
) -> Result<Vec<f64>> {
    if cfg.iters == 0 || cfg.batch < 2 {
        return Err(FmError::Config(format!("iters ≥ 1 and batch ≥ 2 needed: {cfg:?}")));
    }
    let mut rng = SeededRng::new(cfg.seed);
    minimize(varmap, cfg.lr, cfg.iters, |_| {
        let (x0, x1) = draw(&mut rng)?;
        cfm_loss(net, &x0, &x1, cfg.path, &mut rng)
    })
}
