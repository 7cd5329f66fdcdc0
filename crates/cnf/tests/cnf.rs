//! CNF: a linear velocity's likelihood against the closed-form Gaussian density, Hutchinson
//! against the exact trace, and a short training run on 8gaussians.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use cnf::{Cnf, Result, TraceEstimator};
use mixed_precision_adjoint::{train, GradientMode, TrainConfig};
use ode_solvers::{solve, Method, SolveConfig, Steps};
use tensor_core::nets::{ConcatSquashNet, HyperNet, Mlp, TimeLayer, TimeNet};
use tensor_core::params::ParamBuilder;
use tensor_core::{Activation, SeededRng};

const DEV: Device = Device::Cpu;

/// v(z) = diag(a) z (a one-layer net, biases and time weights zeroed): z(1) = e^{diag a} x, so
/// log p(x) = log N(e^{a} ⊙ x) + Σa exactly.
#[test]
fn linear_velocity_gives_the_closed_form_density() -> Result<()> {
    let vm = VarMap::new();
    let mut rng = SeededRng::new(0);
    let net = Mlp::new(&mut ParamBuilder::new(&vm, &mut rng, DType::F64, &DEV), 2, &[], 2, Activation::Tanh)?;
    let a = [0.3f64, -0.7];
    for (name, var) in vm.data().lock().unwrap().iter() {
        let value = if name.ends_with("l0.weight") { Tensor::new(&[[a[0], 0.0], [0.0, a[1]]], &DEV)? } else { var.as_tensor().zeros_like()? };
        var.set(&value)?;
    }
    let cnf = Cnf::new(net, TraceEstimator::Exact, 0)?;
    let x = rng.normal((6, 2), DType::F64, &DEV)?;
    let lp = cnf.log_prob(&x, 100)?; // RK4 truncation error ≈ 3e-11 at 100 steps
    let z1 = x.broadcast_mul(&Tensor::new(&[[a[0].exp(), a[1].exp()]], &DEV)?)?;
    let expect = (tensor_core::stats::standard_normal_log_prob(&z1)? + (a[0] + a[1]))?;
    let err = (lp - expect)?.abs()?.max_all()?.to_scalar::<f64>()?;
    assert!(err < 1e-9, "log p error {err:e}");
    Ok(())
}

#[test]
fn hutchinson_estimates_the_exact_divergence() -> Result<()> {
    let vm = VarMap::new();
    let mut rng = SeededRng::new(1);
    let net = ConcatSquashNet::new(&mut ParamBuilder::new(&vm, &mut rng, DType::F64, &DEV), 2, &[16, 16], 2, Activation::Tanh)?;
    let cnf = Cnf::new(net, TraceEstimator::Hutchinson { rademacher: true }, 7)?;
    let x = rng.normal((2000, 2), DType::F64, &DEV)?;
    let grid = Steps::uniform(0.0, 1.0, 8)?;
    let exact = solve(&cnf.dynamics_with(DType::F64, TraceEstimator::Exact)?, Method::Rk4, &cnf::initial_state(&x)?, &SolveConfig::new(grid.clone()))?;
    let hutch = solve(&cnf.dynamics_with(DType::F64, TraceEstimator::Hutchinson { rademacher: true })?, Method::Rk4, &cnf::initial_state(&x)?, &SolveConfig::new(grid))?;
    // the same trajectories, unbiased log-determinant: means agree within Monte-Carlo error
    assert!((&exact.last().0 - &hutch.last().0)?.abs()?.max_all()?.to_scalar::<f64>()? < 1e-12);
    let (le, lh) = (exact.last().1.mean_all()?.to_scalar::<f64>()?, hutch.last().1.mean_all()?.to_scalar::<f64>()?);
    let sd = (&hutch.last().1 - &exact.last().1)?.sqr()?.mean_all()?.sqrt()?.to_scalar::<f64>()? / (2000f64).sqrt();
    assert!((le - lh).abs() < 4.0 * sd.max(1e-12), "exact {le} vs Hutchinson {lh} (se {sd})");
    Ok(())
}

#[test]
fn short_training_on_8gaussians_beats_a_gaussian_and_inverts() -> Result<()> {
    let vm = VarMap::new();
    let net = ConcatSquashNet::new(&mut ParamBuilder::new(&vm, &mut SeededRng::new(2), DType::F32, &DEV), 2, &[32, 32], 2, Activation::Tanh)?;
    train_on_8gaussians(net, &vm, "concat-squash")
}

/// rampde's 2-D CNF: torchdiffeq's hypernetwork velocity (hidden 32, width 64).
#[test]
fn hypernetwork_cnf_trains_on_8gaussians_and_inverts() -> Result<()> {
    let vm = VarMap::new();
    let net = HyperNet::new(&mut ParamBuilder::new(&vm, &mut SeededRng::new(2), DType::F32, &DEV), 2, 32, 64)?;
    train_on_8gaussians(net, &vm, "hypernetwork")
}

fn train_on_8gaussians<L: TimeLayer>(net: TimeNet<L>, vm: &VarMap, label: &str) -> Result<()> {
    let cnf = Cnf::new(net, TraceEstimator::Exact, 3)?;
    let to_tensor = |d: datasets::Matrix| Tensor::from_vec(d.data, (d.rows, d.cols), &DEV);
    let train_x = to_tensor(datasets::toy2d::Toy2d::EightGaussians.sample(4096, 1))?;
    let val_x = to_tensor(datasets::toy2d::Toy2d::EightGaussians.sample(1024, 2))?;
    let cfg = TrainConfig {
        iters: 200, batch: 512, lr: 1e-2, drop_every: 0, lr_drop: 1.0, steps: 6, val_steps: 12, val_every: 50,
        early_stopping: None, method: Method::Rk4, mode: GradientMode::Checkpointed, seed: 0, checkpoint: None, clamp: None,
    };
    let history = train(&cnf, vm, &train_x, &val_x, &cfg, &mut |_| {})?;
    let nll = history.iter().filter_map(|r| r.validation.as_ref().map(|v| v[0])).fold(f64::INFINITY, f64::min);
    println!("{label} CNF 8gaussians best validation NLL {nll:.3}");
    assert!(nll < 4.0, "{label}: NLL {nll}, should beat the best Gaussian fit (≈ 4.25 nats)");
    let x = val_x.to_dtype(DType::F32)?.narrow(0, 0, 128)?;
    let back = cnf.sample(&cnf.encode(&x, 32)?, 32)?;
    let err = (back - &x)?.abs()?.max_all()?.to_scalar::<f32>()?;
    assert!(err < 1e-3, "{label}: inverse error {err} (f32)");
    Ok(())
}
