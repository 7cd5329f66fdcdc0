//! CNF: a linear velocity's likelihood against the closed-form Gaussian density, Hutchinson
//! against the exact trace, and a short training run on 8gaussians.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use cnf::{Cnf, CnfConfig, CnfError, Result, TraceEstimator, VelocityLayer, VelocityNet};
use ode_solvers::{solve, Method, SolveConfig, Steps};
use tensor_core::nets::{ConcatLinear, ConcatSquashLinear, HyperLayer};
use tensor_core::params::ParamBuilder;
use tensor_core::{Activation, SeededRng};
use train::{train, ContinuousFlow, ModelFile, TrainConfig, Trainable};

const DEV: Device = Device::Cpu;

/// v(z) = diag(a) z (a one-layer net, biases and time weights zeroed): z(1) = e^{diag a} x, so
/// log p(x) = log N(e^{a} ⊙ x) + Σa exactly.
#[test]
fn linear_velocity_gives_the_closed_form_density() -> Result<()> {
    let vm = VarMap::new();
    let mut rng = SeededRng::new(0);
    let config = CnfConfig { dim: 2, net: VelocityNet::Mlp { hidden: vec![], activation: Activation::Tanh }, trace: TraceEstimator::Exact };
    let cnf: Cnf<ConcatLinear> = Cnf::new(&mut ParamBuilder::new(&vm, &mut rng, DType::F64, &DEV), config)?;
    let a = [0.3f64, -0.7];
    for (name, var) in vm.data().lock().unwrap().iter() {
        let value =
            if name.ends_with("l0.weight") { Tensor::new(&[[a[0], 0.0], [0.0, a[1]]], &DEV)? } else { var.as_tensor().zeros_like()? };
        var.set(&value)?;
    }
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
    let config = CnfConfig {
        dim: 2,
        net: VelocityNet::ConcatSquash { hidden: vec![16, 16], activation: Activation::Tanh },
        trace: TraceEstimator::Hutchinson { rademacher: true },
    };
    let cnf: Cnf<ConcatSquashLinear> = Cnf::new(&mut ParamBuilder::new(&vm, &mut rng, DType::F64, &DEV), config)?;
    let x = rng.normal((2000, 2), DType::F64, &DEV)?;
    let grid = Steps::uniform(0.0, 1.0, 8)?;
    let exact = solve(
        &cnf.dynamics_with(DType::F64, TraceEstimator::Exact, 7)?,
        Method::Rk4,
        &cnf::initial_state(&x)?,
        &SolveConfig::new(grid.clone()),
    )?;
    let hutch = solve(
        &cnf.dynamics_with(DType::F64, TraceEstimator::Hutchinson { rademacher: true }, 7)?,
        Method::Rk4,
        &cnf::initial_state(&x)?,
        &SolveConfig::new(grid),
    )?;
    // the same trajectories, unbiased log-determinant: means agree within Monte-Carlo error
    assert!((&exact.last().0 - &hutch.last().0)?.abs()?.max_all()?.to_scalar::<f64>()? < 1e-12);
    let (le, lh) = (exact.last().1.mean_all()?.to_scalar::<f64>()?, hutch.last().1.mean_all()?.to_scalar::<f64>()?);
    let sd = (&hutch.last().1 - &exact.last().1)?.sqr()?.mean_all()?.sqrt()?.to_scalar::<f64>()? / (2000f64).sqrt();
    assert!((le - lh).abs() < 4.0 * sd.max(1e-12), "exact {le} vs Hutchinson {lh} (se {sd})");
    Ok(())
}

#[test]
fn short_training_on_8gaussians_beats_a_gaussian_and_inverts() -> Result<()> {
    let config = CnfConfig {
        dim: 2,
        net: VelocityNet::ConcatSquash { hidden: vec![32, 32], activation: Activation::Tanh },
        trace: TraceEstimator::Exact,
    };
    train_on_8gaussians::<ConcatSquashLinear>(config, "concat-squash")
}

/// rampde's 2-D CNF: torchdiffeq's hypernetwork velocity (hidden 32, width 64).
#[test]
fn hypernetwork_cnf_trains_on_8gaussians_and_inverts() -> Result<()> {
    let config = CnfConfig { dim: 2, net: VelocityNet::Hyper { hidden: 32, width: 64 }, trace: TraceEstimator::Exact };
    train_on_8gaussians::<HyperLayer>(config, "hypernetwork")
}

fn toy(n: usize, seed: u64) -> Result<Tensor> {
    let d = datasets::toy2d::Toy2d::EightGaussians.sample(n, seed);
    Ok(Tensor::from_vec(d.data, (d.rows, d.cols), &DEV)?)
}

/// Selects on a validation split, reports on a test split drawn apart from both.
fn train_on_8gaussians<L: VelocityLayer>(config: CnfConfig, label: &str) -> Result<()> {
    let vm = VarMap::new();
    let cnf: Cnf<L> = Cnf::new(&mut ParamBuilder::new(&vm, &mut SeededRng::new(2), DType::F32, &DEV), config)?;
    let (train_x, val_x, test_x) = (toy(4096, 1)?, toy(1024, 2)?, toy(1024, 3)?);
    let cfg = TrainConfig::default().iters(200).batch(512).lr(1e-2).steps(6).val_steps(12).val_every(50);
    let out = train(&cnf, &vm, &train_x, &val_x, &cfg, &mut |_| {})?;
    let (best_iter, best) = out.best.expect("validated");
    let test_nll = cnf.validate(&test_x, 12)?.get("nll").expect("nll");
    println!("{label} CNF 8gaussians: best validation NLL {:.3} at iteration {best_iter}, test NLL {test_nll:.3}", best.objective());
    assert!(test_nll < 4.0, "{label}: test NLL {test_nll}, should beat the best Gaussian fit (≈ 4.25 nats)");
    let x = test_x.narrow(0, 0, 128)?;
    let back = cnf.sample(&cnf.encode(&x, 32)?, 32)?;
    let err = (back - &x)?.abs()?.max_all()?.to_scalar::<f32>()?;
    assert!(err < 1e-3, "{label}: inverse error {err} (f32)");
    Ok(())
}

/// A saved model reloads to the same network: the same log-likelihood to the last bit; a file
/// of another layer type or model kind is refused with a message naming the difference.
#[test]
fn save_load_round_trip_is_bit_exact() -> Result<()> {
    let dir = std::env::temp_dir().join(format!("cnf-roundtrip-{}", std::process::id()));
    let path = dir.join("model.safetensors");
    let vm = VarMap::new();
    let mut rng = SeededRng::new(5);
    let config = CnfConfig {
        dim: 3,
        net: VelocityNet::ConcatSquash { hidden: vec![8, 8], activation: Activation::Softplus },
        trace: TraceEstimator::Exact,
    };
    let cnf: Cnf<ConcatSquashLinear> = Cnf::new(&mut ParamBuilder::new(&vm, &mut rng, DType::F64, &DEV), config.clone())?;
    let x = rng.normal((7, 3), DType::F64, &DEV)?;
    cnf.save(&vm, &path, &serde_json::json!({"note": "kept"}))?;
    let loaded = Cnf::<ConcatSquashLinear>::load(&path, &DEV)?;
    assert_eq!(loaded.model.config(), &config);
    assert_eq!(loaded.extra["note"], "kept");
    let (a, b) = (cnf.log_prob(&x, 6)?.to_vec2::<f64>()?, loaded.model.log_prob(&x, 6)?.to_vec2::<f64>()?);
    assert!(a.iter().flatten().zip(b.iter().flatten()).all(|(p, q)| p.to_bits() == q.to_bits()), "{a:?} vs {b:?}");
    let e = Cnf::<HyperLayer>::load(&path, &DEV).err().expect("other layers");
    assert!(e.to_string().contains("ConcatSquash") && e.to_string().contains("hypernetwork"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}

/// Empty and one-row batches through every entry point: empty results for 0 rows, one row for 1.
#[test]
fn empty_and_single_row_batches() -> Result<()> {
    let vm = VarMap::new();
    let mut rng = SeededRng::new(6);
    let cnf: Cnf<ConcatSquashLinear> = Cnf::new(&mut ParamBuilder::new(&vm, &mut rng, DType::F32, &DEV), CnfConfig::ffjord_toy(2))?;
    for rows in [0usize, 1] {
        let x = rng.normal((rows, 2), DType::F32, &DEV)?;
        assert_eq!(cnf.log_prob(&x, 4)?.dims(), &[rows, 1]);
        assert_eq!(cnf.encode(&x, 4)?.dims(), &[rows, 2]);
        assert_eq!(cnf.sample(&x, 4)?.dims(), &[rows, 2]);
        let term = cnf.dynamics(DType::F32, 0)?;
        let z = solve(term.as_ref(), Method::Rk4, &cnf.initial_state(&x)?, &SolveConfig::new(Steps::uniform(0.0, 1.0, 2)?))?;
        assert_eq!(z.last().1.dims(), &[rows, 1]);
    }
    // a batch of the wrong width is a typed shape error, not a panic
    assert!(matches!(cnf.log_prob(&rng.normal((4, 3), DType::F32, &DEV)?, 4), Err(CnfError::TensorCore(tensor_core::Error::Shape { .. }))));
    // empty training data is refused up front
    let empty = Tensor::zeros((0, 2), DType::F32, &DEV)?;
    let e = train(&cnf, &vm, &empty, &empty, &TrainConfig::default().iters(1), &mut |_| {}).expect_err("empty data");
    assert!(e.to_string().contains("empty data"), "{e}");
    Ok(())
}
