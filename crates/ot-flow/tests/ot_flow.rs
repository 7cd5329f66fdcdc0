//! OT-Flow: the augmented dynamics against finite differences, mixed precision against f32,
//! and a short training run on 8gaussians that must beat the best Gaussian fit and invert.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use mixed_precision_adjoint::{solve_mixed, MpConfig};
use ode_solvers::{Method, OdeTerm, SaveAt};
use ot_flow::{loss::costs, OtFlow, OtFlowConfig, OtFlowError, Result};
use tensor_core::params::ParamBuilder;
use tensor_core::{Precision, PrecisionPolicy, SeededRng};
use train::{train, ContinuousFlow, LrSchedule, ModelFile, TrainConfig, Trainable};

const DEV: Device = Device::Cpu;

fn model(dtype: DType, width: usize, seed: u64) -> Result<(VarMap, OtFlow)> {
    let vm = VarMap::new();
    let mut rng = SeededRng::new(seed);
    let m = OtFlow::new(&mut ParamBuilder::new(&vm, &mut rng, dtype, &DEV), OtFlowConfig { width, ..OtFlowConfig::toy() })?;
    Ok((vm, m))
}

#[test]
fn augmented_dynamics_match_finite_differences() -> Result<()> {
    let (_, m) = model(DType::F64, 8, 1)?;
    let x = SeededRng::new(2).normal((5, 2), DType::F64, &DEV)?;
    let t = 0.37;
    let zero = Tensor::zeros((5, 1), DType::F64, &DEV)?;
    let dyn_ = m.dynamics(DType::F64)?;
    let (v, dl, kinetic, hjb) = dyn_.vector_field(t, &(x.clone(), zero.clone(), zero.clone(), zero.clone()))?;
    let vel = m.velocity(DType::F64)?;
    let eps = 1e-5;
    // ℓ' = tr ∂v/∂x by central differences of the velocity
    let mut div = Tensor::zeros((5, 1), DType::F64, &DEV)?;
    for k in 0..2 {
        let e =
            Tensor::new(&[[if k == 0 { eps } else { 0.0 }, if k == 1 { eps } else { 0.0 }]], &DEV)?.broadcast_as((5, 2))?.contiguous()?;
        let vp = vel.vector_field(t, &(&x + &e)?)?;
        let vm_ = vel.vector_field(t, &(&x - &e)?)?;
        div = (div + ((vp - vm_)?.narrow(1, k, 1)? / (2.0 * eps))?)?;
    }
    let err = (&dl - &div)?.abs()?.max_all()?.to_scalar::<f64>()? / div.abs()?.max_all()?.to_scalar::<f64>()?;
    assert!(err < 1e-6, "ℓ' vs divergence: {err:e}");
    // c_H' = |−∂tΦ + ½‖∇Φ‖²| with ∂tΦ by differences in t (α₀ = 1)
    let dphi_dt = ((m.phi.value(&x, &Tensor::new(t + eps, &DEV)?)? - m.phi.value(&x, &Tensor::new(t - eps, &DEV)?)?)? / (2.0 * eps))?;
    let expect = (kinetic.clone() - dphi_dt)?.abs()?;
    let err = (&hjb - &expect)?.abs()?.max_all()?.to_scalar::<f64>()?;
    assert!(err < 1e-6 * (1.0 + expect.abs()?.max_all()?.to_scalar::<f64>()?), "HJB residual: {err:e}");
    let kin_expect = (v.sqr()?.sum_keepdim(1)? * 0.5)?;
    assert!((kinetic - kin_expect)?.abs()?.max_all()?.to_scalar::<f64>()? < 1e-14);
    Ok(())
}

#[test]
fn f16_with_dynamic_scaling_gives_the_f32_loss() -> Result<()> {
    let (_, m) = model(DType::F32, 32, 3)?;
    let x = (SeededRng::new(4).normal((256, 2), DType::F32, &DEV)? * 2.0)?;
    let grid: Vec<f64> = (0..=8).map(|i| i as f64 / 8.0).collect();
    let run = |low: Precision| -> Result<f64> {
        let cfg = MpConfig {
            policy: PrecisionPolicy::new(low, Precision::F32)?,
            method: Method::Rk4,
            grid: grid.clone(),
            save_at: SaveAt::Final,
        };
        let dynamics = m.dynamics(low.dtype())?;
        let sol = solve_mixed(&dynamics, &OtFlow::initial_state(&x)?, &cfg).map_err(train::TrainError::from)?;
        Ok(costs(m.config.alpha, sol.last())?.metrics()?.objective())
    };
    let (f32_loss, f16_loss) = (run(Precision::F32)?, run(Precision::F16)?);
    assert!(((f16_loss - f32_loss) / f32_loss).abs() < 1e-2, "f16 {f16_loss} vs f32 {f32_loss}");
    Ok(())
}

fn toy(n: usize, seed: u64) -> Result<Tensor> {
    let d = datasets::toy2d::Toy2d::EightGaussians.sample(n, seed);
    Ok(Tensor::from_vec(d.data, (d.rows, d.cols), &DEV)?)
}

fn nll(m: &OtFlow, x: &Tensor, steps: usize) -> Result<f64> {
    Ok(m.evaluate(x, steps)?.metrics()?.get("nll").expect("nll"))
}

/// Selects on a validation split, reports on a test split drawn apart from both.
#[test]
fn short_training_on_8gaussians_beats_a_gaussian_and_inverts() -> Result<()> {
    let (vm, m) = model(DType::F32, 32, 5)?;
    let (train_x, val_x, test_x) = (toy(4096, 1)?, toy(1024, 2)?, toy(1024, 3)?);
    let before = nll(&m, &test_x, 8)?;
    let cfg = TrainConfig::default()
        .iters(150)
        .batch(512)
        .lr(0.05)
        .schedule(LrSchedule::StepDecay { every: 50, factor: 2.0 })
        .steps(4)
        .val_steps(8)
        .val_every(25);
    let out = train(&m, &vm, &train_x, &val_x, &cfg, &mut |_| {})?;
    let nll = nll(&m, &test_x, 8)?;
    println!(
        "8gaussians test NLL: {before:.3} → {nll:.3} after {} iterations (best validation at {:?})",
        out.history.len(),
        out.best.map(|b| b.0)
    );
    // the best single Gaussian fit to 8gaussians has NLL ≈ 4.25 nats; the data's entropy ≈ 2.84
    assert!(nll < 3.3, "NLL {nll} (before training {before})");
    // sampling ∘ encoding inverts, in f64 with fine steps
    let (vm64, m64) = model(DType::F64, 32, 5)?;
    for (name, var) in vm.data().lock().unwrap().iter() {
        vm64.data().lock().unwrap()[name].set(&var.as_tensor().to_dtype(DType::F64)?)?;
    }
    let x64 = test_x.to_dtype(DType::F64)?.narrow(0, 0, 256)?;
    let err = m64.inverse_error(&x64, 64)?;
    assert!(err < 1e-4, "‖T⁻¹(T(x)) − x‖ = {err:e}");
    // samples from N(0, I) land near the 8 centres (radius 4/1.414 ≈ 2.83)
    let z = SeededRng::new(6).normal((512, 2), DType::F64, &DEV)?;
    let r = m64.sample(&z, 16)?.sqr()?.sum_keepdim(1)?.sqrt()?.mean_all()?.to_scalar::<f64>()?;
    assert!((r - 2.83).abs() < 0.6, "mean sample radius {r}");
    Ok(())
}

/// The trainer's box constraint and OT-Flow's plateau schedule: with a model too slow to move
/// (lr 1e-30 leaves f32 parameters unchanged) the validation never improves, so after patience 1
/// the rate drops three times, then training stops.
#[test]
fn trainer_clamps_and_drops_on_plateaus() -> Result<()> {
    let (vm, m) = model(DType::F32, 8, 7)?;
    let x = SeededRng::new(8).normal((256, 2), DType::F32, &DEV)?;
    let base = TrainConfig::default()
        .iters(50)
        .batch(64)
        .lr(1e-30)
        .schedule(LrSchedule::Plateau { factor: 10.0, patience: 1, max_drops: 3 })
        .steps(2)
        .val_steps(2)
        .val_every(1);
    let out = train(&m, &vm, &x, &x, &base, &mut |_| {})?;
    assert_eq!(out.history.len(), 9, "improve at 1, drops at 3, 5, 7, stop at 9");
    assert_eq!(out.history.iter().map(|r| r.lr).collect::<Vec<_>>(), [1e-30, 1e-30, 1e-30, 1e-31, 1e-31, 1e-32, 1e-32, 1e-33, 1e-33]);
    // clamping: every parameter inside the box (the last Adam step can move it by at most lr)
    let clamped = base.iters(5).lr(1e-3).schedule(LrSchedule::Constant).clamp(Some(0.05));
    train(&m, &vm, &x, &x, &clamped, &mut |_| {})?;
    for v in vm.all_vars() {
        let max = v.as_tensor().abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(max <= 0.05 + 1.1e-3, "parameter outside the box: {max}");
    }
    Ok(())
}

/// A saved model reloads to the same network (the same log-likelihood to the last bit); a CNF
/// file is refused as an OT-Flow model.
#[test]
fn save_load_round_trip_is_bit_exact() -> Result<()> {
    let dir = std::env::temp_dir().join(format!("otflow-roundtrip-{}", std::process::id()));
    let path = dir.join("model.safetensors");
    let vm = VarMap::new();
    let mut rng = SeededRng::new(9);
    let m = OtFlow::new(
        &mut ParamBuilder::new(&vm, &mut rng, DType::F64, &DEV),
        OtFlowConfig { dim: 3, width: 12, layers: 3, alpha: [1.0, 7.0, 2.0] },
    )?;
    let x = rng.normal((9, 3), DType::F64, &DEV)?;
    m.save(&vm, &path, &serde_json::Value::Null)?;
    let loaded = OtFlow::load(&path, &DEV)?;
    assert_eq!(loaded.model.config, m.config);
    let (a, b) = (m.log_prob(&x, 5)?.to_vec2::<f64>()?, loaded.model.log_prob(&x, 5)?.to_vec2::<f64>()?);
    assert!(a.iter().flatten().zip(b.iter().flatten()).all(|(p, q)| p.to_bits() == q.to_bits()), "{a:?} vs {b:?}");
    // a different network cannot be rebuilt from this file: the configuration travels with it
    std::fs::write(dir.join("not-a-model.safetensors"), b"garbage").expect("temp file");
    assert!(matches!(OtFlow::load(&dir.join("not-a-model.safetensors"), &DEV), Err(OtFlowError::Train(_))));
    let e = OtFlow::load(&dir.join("missing.safetensors"), &DEV).err().expect("missing");
    assert!(e.to_string().contains("not found"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}

/// Empty and one-row batches through every entry point.
#[test]
fn empty_and_single_row_batches() -> Result<()> {
    let (_, m) = model(DType::F32, 8, 10)?;
    let mut rng = SeededRng::new(11);
    for rows in [0usize, 1] {
        let x = rng.normal((rows, 2), DType::F32, &DEV)?;
        assert_eq!(m.log_prob(&x, 3)?.dims(), &[rows, 1]);
        assert_eq!(m.sample(&x, 3)?.dims(), &[rows, 2]);
        assert_eq!(m.encode(&x, 3)?.dims(), &[rows, 2]);
        let costs = m.validate(&x, 3)?;
        assert!(rows == 0 || costs.objective().is_finite(), "{costs}");
    }
    assert!(matches!(
        m.log_prob(&rng.normal((2, 5), DType::F32, &DEV)?, 3),
        Err(OtFlowError::TensorCore(tensor_core::Error::Shape { .. }))
    ));
    Ok(())
}
