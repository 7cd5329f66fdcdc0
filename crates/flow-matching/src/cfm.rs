//! Conditional flow matching (Lipman et al. 2023; Liu et al. 2023; Tong et al. 2024; seeds
//! 000/003): with the path ψ_t = (1 − t)x₀ + t x₁ (+ σ ε), regress v_θ(ψ_t, t) on the
//! conditional velocity u = x₁ − x₀, x₀ from the source, x₁ from the data, paired by a
//! [`Coupling`]. Simulation-free: no ODE is solved during training.

use crate::coupling::Coupling;
use crate::error::{FmError, Result};
use candle_core::Tensor;
use candle_nn::VarMap;
use tensor_core::optim::minimize;
use tensor_core::nets::{TimeLayer, TimeNet};
use tensor_core::SeededRng;

/// Settings of [`train_cfm`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CfmConfig {
    pub coupling: Coupling,
    /// Width σ of the Gaussian path around the straight line (torchcfm's σ; 0 for none).
    pub sigma: f64,
    pub iters: usize,
    pub batch: usize,
    pub lr: f64,
    pub seed: u64,
}

/// E‖v_θ(ψ_t, t) − (x₁ − x₀)‖² for paired batches, t ~ U(0, 1) per sample.
pub fn cfm_loss<L: TimeLayer>(net: &TimeNet<L>, x0: &Tensor, x1: &Tensor, sigma: f64, rng: &mut SeededRng) -> Result<Tensor> {
    let (n, d) = x0.dims2()?;
    let t = rng.uniform((n, 1), 0.0, 1.0, x0.dtype(), x0.device())?;
    let mut xt = ((x0.broadcast_mul(&(1.0 - &t)?)?) + x1.broadcast_mul(&t)?)?;
    if sigma > 0.0 {
        xt = (xt + (rng.normal((n, d), x0.dtype(), x0.device())? * sigma)?)?;
    }
    let v = net.forward(&xt, &t)?;
    Ok((v - (x1 - x0)?)?.sqr()?.sum_keepdim(1)?.mean_all()?)
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

fn fit<L: TimeLayer>(net: &TimeNet<L>, varmap: &VarMap, cfg: &CfmConfig, mut draw: impl FnMut(&mut SeededRng) -> Result<(Tensor, Tensor)>) -> Result<Vec<f64>> {
    if cfg.iters == 0 || cfg.batch < 2 {
        return Err(FmError::Config(format!("iters ≥ 1 and batch ≥ 2 needed: {cfg:?}")));
    }
    let mut rng = SeededRng::new(cfg.seed);
    minimize(varmap, cfg.lr, cfg.iters, |_| {
        let (x0, x1) = draw(&mut rng)?;
        cfm_loss(net, &x0, &x1, cfg.sigma, &mut rng)
    })
}
