//! OT-Flow: the augmented dynamics against finite differences, mixed precision against f32,
//! and a short training run on 8gaussians that must beat the best Gaussian fit and invert.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use mixed_precision_adjoint::{solve_mixed, train, GradientMode, MpConfig, TrainConfig};
use ode_solvers::{Method, OdeTerm, SaveAt};
use ot_flow::sample::{encode, inverse_error, sample};
use ot_flow::{loss::costs, OtFlow, OtFlowConfig, Result};
use tensor_core::params::ParamBuilder;
use tensor_core::{Precision, PrecisionPolicy, SeededRng};

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
        let e = Tensor::new(&[[if k == 0 { eps } else { 0.0 }, if k == 1 { eps } else { 0.0 }]], &DEV)?.broadcast_as((5, 2))?.contiguous()?;
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
        let cfg = MpConfig { policy: PrecisionPolicy::new(low, Precision::F32)?, method: Method::Rk4, grid: grid.clone(), save_at: SaveAt::Final };
        let dynamics = m.dynamics(low.dtype())?;
        let sol = solve_mixed(&dynamics, &OtFlow::initial_state(&x)?, &cfg)?;
        Ok(costs(m.config.alpha, sol.last())?.values()?[0])
    };
    let (f32_loss, f16_loss) = (run(Precision::F32)?, run(Precision::F16)?);
    assert!(((f16_loss - f32_loss) / f32_loss).abs() < 1e-2, "f16 {f16_loss} vs f32 {f32_loss}");
    Ok(())
}

#[test]
fn short_training_on_8gaussians_beats_a_gaussian_and_inverts() -> Result<()> {
    let (vm, m) = model(DType::F32, 32, 5)?;
    let to_tensor = |d: datasets::Matrix| Tensor::from_vec(d.data, (d.rows, d.cols), &DEV);
    let train_x = to_tensor(datasets::toy2d::Toy2d::EightGaussians.sample(4096, 1))?;
    let val_x = to_tensor(datasets::toy2d::Toy2d::EightGaussians.sample(1024, 2))?;
    let before = ot_flow::sample::evaluate(&m, &val_x, 8)?[2];
    let cfg = TrainConfig {
        iters: 150, batch: 512, lr: 0.05, drop_every: 50, lr_drop: 2.0, steps: 4, val_steps: 8, val_every: 25,
        early_stopping: None, method: Method::Rk4, mode: GradientMode::Checkpointed, seed: 0, checkpoint: None, clamp: None,
    };
    let history = train(&m, &vm, &train_x, &val_x, &cfg, &mut |_| {})?;
    let nll = ot_flow::sample::evaluate(&m, &val_x, 8)?[2];
    println!("8gaussians NLL: {before:.3} → {nll:.3} after {} iterations", history.len());
    // the best single Gaussian fit to 8gaussians has NLL ≈ 4.25 nats; the data's entropy ≈ 2.84
    assert!(nll < 3.3, "NLL {nll} (before training {before})");
    // sampling ∘ encoding inverts, in f64 with fine steps
    let (vm64, m64) = model(DType::F64, 32, 5)?;
    for (name, var) in vm.data().lock().unwrap().iter() {
        vm64.data().lock().unwrap()[name].set(&var.as_tensor().to_dtype(DType::F64)?)?;
    }
    let x64 = val_x.to_dtype(DType::F64)?.narrow(0, 0, 256)?;
    let err = inverse_error(&m64, &x64, 64)?;
    assert!(err < 1e-4, "‖T⁻¹(T(x)) − x‖ = {err:e}");
    // samples from N(0, I) land near the 8 centres (radius 4/1.414 ≈ 2.83)
    let z = SeededRng::new(6).normal((512, 2), DType::F64, &DEV)?;
    let r = sample(&m64, &z, 16)?.sqr()?.sum_keepdim(1)?.sqrt()?.mean_all()?.to_scalar::<f64>()?;
    assert!((r - 2.83).abs() < 0.6, "mean sample radius {r}");
    let _ = encode(&m64, &x64, 8)?;
    Ok(())
}

/// The trainer's box constraint and OT-Flow's plateau schedule: with a frozen model (lr 0) the
/// validation never improves, so after patience 1 the rate drops three times, then training stops.
#[test]
fn trainer_clamps_and_drops_on_plateaus() -> Result<()> {
    let (vm, m) = model(DType::F32, 8, 7)?;
    let x = SeededRng::new(8).normal((256, 2), DType::F32, &DEV)?;
    let base = TrainConfig {
        iters: 50, batch: 64, lr: 0.0, drop_every: 0, lr_drop: 10.0, steps: 2, val_steps: 2, val_every: 1,
        early_stopping: Some(1), method: Method::Rk4, mode: GradientMode::Checkpointed, seed: 0, checkpoint: None, clamp: None,
    };
    let history = train(&m, &vm, &x, &x, &base, &mut |_| {})?;
    assert_eq!(history.len(), 9, "improve at 1, drops at 3, 5, 7, stop at 9");
    // clamping: every parameter inside the box (the last Adam step can move it by at most lr)
    let clamped = TrainConfig { iters: 5, lr: 1e-3, early_stopping: None, clamp: Some(0.05), ..base };
    train(&m, &vm, &x, &x, &clamped, &mut |_| {})?;
    for v in vm.all_vars() {
        let max = v.as_tensor().abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(max <= 0.05 + 1.1e-3, "parameter outside the box: {max}");
    }
    Ok(())
}
