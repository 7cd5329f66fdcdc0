//! SDE schemes: strong orders on geometric Brownian motion (known solution on the same
//! Brownian path), exact discrete gradients (full graph = checkpointed = finite differences of
//! the discrete objective with the noise held fixed), and the continuous adjoint with and
//! without the Itô → Stratonovich correction.

use candle_core::{DType, Device, Tensor, Var};
use ode_solvers::{solve_sde, Adjoint, Calculus, ItoCorrection, Noise, Result, SdeConfig, SdeMethod, SdeTerm, VirtualBrownianTree};

mod common;
use common::observed_order;

const DEV: Device = Device::Cpu;

/// dX = μX dt + σX dW (Itô) or dX = μX dt + σX∘dW (Stratonovich).
struct Gbm {
    mu: Tensor,
    sigma: Tensor,
    calculus: Calculus,
    analytic_derivative: bool,
}

impl SdeTerm<Tensor> for Gbm {
    fn drift(&self, _t: f64, y: &Tensor) -> ode_solvers::Result<Tensor> {
        Ok(y.broadcast_mul(&self.mu)?)
    }
    fn diffusion(&self, _t: f64, y: &Tensor) -> ode_solvers::Result<Tensor> {
        Ok(y.broadcast_mul(&self.sigma)?)
    }
    fn diffusion_derivative(&self, _t: f64, y: &Tensor) -> ode_solvers::Result<Option<Tensor>> {
        Ok(self.analytic_derivative.then(|| y.ones_like().and_then(|o| o.broadcast_mul(&self.sigma))).transpose()?)
    }
    fn calculus(&self) -> Calculus {
        self.calculus
    }
    fn noise(&self) -> Noise {
        Noise::Diagonal
    }
}

fn gbm(mu: f64, sigma: f64, calculus: Calculus, analytic_derivative: bool) -> Result<Gbm> {
    Ok(Gbm { mu: Tensor::new(&[mu], &DEV)?, sigma: Tensor::new(&[sigma], &DEV)?, calculus, analytic_derivative })
}

fn grid(n: usize, t1: f64) -> Vec<f64> {
    (0..=n).map(|i| t1 * i as f64 / n as f64).collect()
}

#[test]
fn strong_orders_on_geometric_brownian_motion() -> Result<()> {
    let (mu, sigma, t1, paths) = (0.5, 0.8, 1.0, 4000);
    let x0 = Tensor::ones((paths, 1), DType::F64, &DEV)?;
    let bm = VirtualBrownianTree::new(0.0, t1, 3, &x0, Noise::Diagonal, 1e-6)?;
    let w_t = bm.value(t1)?.remove(0);
    let ns = [16usize, 32, 64, 128, 256];
    for (method, calculus, analytic, order) in [
        (SdeMethod::EulerMaruyama, Calculus::Ito, false, 0.5),
        (SdeMethod::Milstein, Calculus::Ito, true, 1.0),
        (SdeMethod::Milstein, Calculus::Ito, false, 1.0),
        (SdeMethod::StochasticHeun, Calculus::Stratonovich, false, 1.0),
    ] {
        let term = gbm(mu, sigma, calculus, analytic)?;
        // Itô: X = x₀ exp((μ − σ²/2)t + σW); Stratonovich: X = x₀ exp(μt + σW)
        let drift = if calculus == Calculus::Ito { mu - 0.5 * sigma * sigma } else { mu };
        let exact = ((&w_t * sigma)? + drift * t1)?.exp()?;
        let errs: Vec<f64> = ns
            .iter()
            .map(|&n| -> Result<f64> {
                let sol = solve_sde(&term, method, &x0, &SdeConfig::new(&grid(n, t1), &bm))?;
                Ok((sol.last() - &exact)?.abs()?.mean_all()?.to_scalar::<f64>()?)
            })
            .collect::<Result<_>>()?;
        let observed = observed_order(&ns, &errs);
        assert!(
            (observed - order).abs() <= 0.3,
            "{} (analytic ∂g: {analytic}): strong order {observed:.2}, nominal {order} ({errs:?})",
            method.name()
        );
    }
    Ok(())
}

/// A nonlinear diffusion so ∂g/∂y matters: dS = r S dt + σ tanh(S) dW.
struct TanhNoise {
    r: Tensor,
    sigma: Tensor,
    calculus: Calculus,
}

impl SdeTerm<Tensor> for TanhNoise {
    fn drift(&self, _t: f64, y: &Tensor) -> ode_solvers::Result<Tensor> {
        Ok(y.broadcast_mul(&self.r)?)
    }
    fn diffusion(&self, _t: f64, y: &Tensor) -> ode_solvers::Result<Tensor> {
        Ok(y.tanh()?.broadcast_mul(&self.sigma)?)
    }
    fn calculus(&self) -> Calculus {
        self.calculus
    }
    fn noise(&self) -> Noise {
        Noise::Diagonal
    }
}

#[test]
fn discrete_sde_gradients_are_exact() -> Result<()> {
    let r = Var::from_tensor(&Tensor::new(&[0.3f64], &DEV)?)?;
    let sigma = Var::from_tensor(&Tensor::new(&[0.6f64], &DEV)?)?;
    let x0 = Tensor::new(&[[1.0f64], [0.4], [-0.7]], &DEV)?;
    let g = grid(32, 1.0);
    let bm = VirtualBrownianTree::new(0.0, 1.0, 11, &x0, Noise::Diagonal, 1e-6)?;
    for (method, calculus) in [
        (SdeMethod::EulerMaruyama, Calculus::Ito),
        (SdeMethod::StochasticHeun, Calculus::Stratonovich),
        (SdeMethod::Milstein, Calculus::Ito),
    ] {
        let term = TanhNoise { r: r.as_tensor().clone(), sigma: sigma.as_tensor().clone(), calculus };
        let params = [r.as_tensor().clone(), sigma.as_tensor().clone()];
        let objective = |adjoint: Adjoint| -> Result<Vec<f64>> {
            let sol = solve_sde(&term, method, &x0, &SdeConfig::new(&g, &bm).adjoint(adjoint))?;
            let mut grads = sol.last().sqr()?.sum_all()?.backward()?;
            if adjoint == Adjoint::Checkpointed {
                sol.backward_sde(&term, method, &bm, ItoCorrection::Apply, &params, &mut grads)?;
            }
            params.iter().map(|p| Ok(grads.get(p).expect("gradient").to_vec1::<f64>()?[0])).collect()
        };
        let full = objective(Adjoint::FullGraph)?;
        let ckpt = objective(Adjoint::Checkpointed)?;
        for (a, b) in full.iter().zip(&ckpt) {
            assert!((a - b).abs() <= 1e-10 * b.abs().max(1.0), "{}: full {a} vs checkpointed {b}", method.name());
        }
        // finite differences of the discrete objective, same Brownian path
        for (k, var) in [&r, &sigma].into_iter().enumerate() {
            let orig = var.as_tensor().copy()?;
            let value = |v: f64| -> Result<f64> {
                var.set(&Tensor::new(&[v], &DEV)?)?;
                let sol = solve_sde(&term, method, &x0, &SdeConfig::new(&g, &bm))?;
                Ok(sol.last().sqr()?.sum_all()?.to_scalar::<f64>()?)
            };
            let v = orig.to_vec1::<f64>()?[0];
            let fd = (value(v + 1e-6)? - value(v - 1e-6)?) / 2e-6;
            var.set(&orig)?;
            assert!((full[k] - fd).abs() <= 1e-6 * (1.0 + fd.abs()), "{} param {k}: {} vs FD {fd}", method.name(), full[k]);
        }
    }
    Ok(())
}

#[test]
fn continuous_ito_adjoint_needs_the_stratonovich_correction() -> Result<()> {
    // pathwise ∂X_T/∂x₀ = X_T / x₀ for GBM; the naive adjoint returns exp(μT + σW_T) instead,
    // too large by e^{σ²T/2}
    let (mu, sigma, t1, paths) = (0.2, 0.8, 1.0, 2000);
    let x0 = Var::from_tensor(&Tensor::ones((paths, 1), DType::F64, &DEV)?)?;
    let term = gbm(mu, sigma, Calculus::Ito, true)?;
    let bm = VirtualBrownianTree::new(0.0, t1, 5, x0.as_tensor(), Noise::Diagonal, 1e-6)?;
    let exact = ((bm.value(t1)?.remove(0) * sigma)? + (mu - 0.5 * sigma * sigma) * t1)?.exp()?;
    let g = grid(400, t1);
    let mut ratios = Vec::new();
    for correction in [ItoCorrection::Apply, ItoCorrection::Skip] {
        let sol = solve_sde(&term, SdeMethod::EulerMaruyama, x0.as_tensor(), &SdeConfig::new(&g, &bm).adjoint(Adjoint::Continuous))?;
        let mut grads = sol.last().sum_all()?.backward()?;
        let a0 = sol.backward_sde(&term, SdeMethod::EulerMaruyama, &bm, correction, &[], &mut grads)?;
        // ∂L/∂x₀ also lands on the Var x₀ itself
        let on_var = grads.get(x0.as_tensor()).expect("gradient on x0");
        assert!((on_var - &a0)?.abs()?.max_all()?.to_scalar::<f64>()? == 0.0);
        ratios.push((a0 / &exact)?.mean_all()?.to_scalar::<f64>()?);
    }
    assert!((ratios[0] - 1.0).abs() < 0.02, "corrected adjoint / pathwise gradient = {}", ratios[0]);
    let bias = (0.5 * sigma * sigma * t1).exp();
    assert!((ratios[1] / bias - 1.0).abs() < 0.03, "naive adjoint ratio {} vs e^(σ²T/2) = {bias}", ratios[1]);
    Ok(())
}
