//! The training loop's guarantees: a run stopped after k iterations and resumed ends
//! bit-identical to one that never stopped; a non-finite loss is a typed error naming the
//! iteration and leaves the last checkpoint intact; settings that cannot work are refused;
//! data-parallel training over ranks equals the single-process run on the same global batch.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use ode_solvers::OdeTerm;
use std::cell::Cell;
use std::path::PathBuf;
use tensor_core::nets::{ConcatSquashLinear, ConcatSquashNet, TimeNet};
use tensor_core::params::ParamBuilder;
use tensor_core::{Activation, SeededRng};
use train::comm::LocalGroup;
use train::{resume, train, train_distributed, GradientMode, LrSchedule, Metrics, TrainConfig, TrainError, Trainable, CHECKPOINT_FILE};

const DEV: Device = Device::Cpu;

/// A small CNF (exact trace) whose loss can be made to fail at a chosen iteration, standing in
/// for a crash (an error) or a divergence (NaN).
struct Flow {
    net: TimeNet<ConcatSquashLinear>,
    calls: Cell<usize>,
    fail_at: Option<(usize, bool)>,
}

impl Trainable for Flow {
    type State = (Tensor, Tensor);
    type Error = TrainError;
    fn dynamics(&self, dtype: DType, _seed: u64) -> train::Result<Box<dyn OdeTerm<(Tensor, Tensor)> + '_>> {
        let net = self.net.to_dtype(dtype)?;
        Ok(Box::new(move |t: f64, s: &(Tensor, Tensor)| -> ode_solvers::Result<(Tensor, Tensor)> {
            Ok(net.exact_trace(&s.0, &Tensor::new(t, s.0.device())?)?)
        }))
    }
    fn initial_state(&self, x: &Tensor) -> train::Result<(Tensor, Tensor)> {
        Ok((x.clone(), Tensor::zeros((x.dim(0)?, 1), x.dtype(), x.device())?))
    }
    fn loss(&self, z: &(Tensor, Tensor)) -> train::Result<Tensor> {
        self.calls.set(self.calls.get() + 1);
        let nll = (tensor_core::stats::standard_normal_log_prob(&z.0)? + &z.1)?.neg()?.mean_all()?;
        match self.fail_at {
            Some((at, true)) if self.calls.get() == at => Ok((nll * f64::NAN)?),
            Some((at, false)) if self.calls.get() == at => Err(TrainError::Config("simulated crash".into())),
            _ => Ok(nll),
        }
    }
    fn validate(&self, x: &Tensor, steps: usize) -> train::Result<Metrics> {
        let z = train::integrate(self, x, steps)?;
        let nll = (tensor_core::stats::standard_normal_log_prob(&z.0)? + &z.1)?.neg()?.mean_all()?.to_scalar::<f32>()?;
        Ok(Metrics::new("nll", &[("nll", nll as f64)]))
    }
}

fn model(fail_at: Option<(usize, bool)>) -> (Flow, VarMap) {
    model_seeded(fail_at, 3)
}

fn model_seeded(fail_at: Option<(usize, bool)>, seed: u64) -> (Flow, VarMap) {
    let vm = VarMap::new();
    let net = ConcatSquashNet::new(&mut ParamBuilder::new(&vm, &mut SeededRng::new(seed), DType::F32, &DEV), 2, &[16], 2, Activation::Tanh)
        .unwrap();
    (Flow { net, calls: Cell::new(0), fail_at }, vm)
}

fn data() -> (Tensor, Tensor) {
    let mut rng = SeededRng::new(4);
    let x = (rng.normal((600, 2), DType::F32, &DEV).unwrap() * 0.7).unwrap();
    (x.narrow(0, 0, 500).unwrap(), x.narrow(0, 500, 100).unwrap())
}

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("train-loop-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&d).ok();
    d
}

fn params(vm: &VarMap) -> Vec<(String, Vec<u32>)> {
    let mut out: Vec<(String, Vec<u32>)> = vm
        .data()
        .lock()
        .unwrap()
        .iter()
        .map(|(n, v)| (n.clone(), v.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().map(|f| f.to_bits()).collect()))
        .collect();
    out.sort();
    out
}

fn config(checkpoint_dir: Option<PathBuf>) -> TrainConfig {
    // a plateau schedule with a short patience and Mixed-free checkpointed gradients: every piece
    // of loop state (rates, best, patience counters, RNG positions, Adam moments) matters
    TrainConfig::default()
        .iters(24)
        .batch(64)
        .lr(3e-2)
        .schedule(LrSchedule::Plateau { factor: 2.0, patience: 1, max_drops: 5 })
        .steps(3)
        .val_steps(4)
        .val_every(3)
        .seed(11)
        .checkpoint_dir(checkpoint_dir)
        .checkpoint_every(4)
}

#[test]
fn resumed_run_is_bit_identical_to_an_uninterrupted_one() {
    let (train_x, val_x) = data();
    let (m, vm) = model(None);
    let whole = train(&m, &vm, &train_x, &val_x, &config(None), &mut |_| {}).unwrap();
    let reference = params(&vm);

    // the same run crashing at iteration 11: the checkpoint of iteration 8 survives
    let d = dir("resume");
    let (m, vm) = model(Some((11, false)));
    let e = train(&m, &vm, &train_x, &val_x, &config(Some(d.clone())), &mut |_| {}).expect_err("crash");
    assert!(e.to_string().contains("simulated crash"), "{e}");
    // a fresh process: new model and variables, resumed from the folder
    let (m, vm) = model(None);
    let resumed = resume(&m, &vm, &train_x, &val_x, &config(Some(d.clone())), &mut |_| {}).unwrap();
    assert_eq!(resumed.history.first().map(|r| r.iter), Some(9), "resumes after the last checkpoint");
    assert_eq!(params(&vm), reference, "resumed parameters differ from the uninterrupted run's");
    assert_eq!(resumed.best.as_ref().map(|b| b.0), whole.best.as_ref().map(|b| b.0));
    assert_eq!(resumed.last_iter, whole.last_iter);
    // other settings are refused, not silently mixed
    let other = config(Some(d.clone())).lr(1e-2);
    let e = resume(&m, &vm, &train_x, &val_x, &other, &mut |_| {}).expect_err("settings differ");
    assert!(e.to_string().contains("other settings"), "{e}");
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn non_finite_loss_names_the_iteration_and_keeps_the_checkpoint() {
    let (train_x, val_x) = data();
    let d = dir("nan");
    let (m, vm) = model(Some((7, true)));
    let e = train(&m, &vm, &train_x, &val_x, &config(Some(d.clone())), &mut |_| {}).expect_err("NaN");
    assert!(matches!(e, TrainError::NonFiniteLoss { iter: 7, .. }), "{e}");
    // the checkpoint of iteration 4 is intact and resumable
    let (m, vm) = model(None);
    let resumed = resume(&m, &vm, &train_x, &val_x, &config(Some(d.clone())), &mut |_| {}).unwrap();
    assert_eq!(resumed.history.first().map(|r| r.iter), Some(5));
    assert!(d.join(CHECKPOINT_FILE).exists());
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn settings_that_cannot_work_are_refused_up_front() {
    let (train_x, val_x) = data();
    let (m, vm) = model(None);
    let run = |cfg: TrainConfig| train(&m, &vm, &train_x, &val_x, &cfg, &mut |_| {}).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(run(config(None).lr(f64::NAN)).contains("learning rate"));
    assert!(run(config(None).lr(0.0)).contains("learning rate"));
    assert!(run(config(None).batch(0)).contains("batch"));
    assert!(run(config(None).early_stopping(Some(3))).contains("Plateau"));
    assert!(run(config(None).schedule(LrSchedule::StepDecay { every: 0, factor: 2.0 })).contains("interval"));
    let wide = Tensor::zeros((10, 3), DType::F32, &DEV).unwrap();
    assert!(train(&m, &vm, &train_x, &wide, &config(None), &mut |_| {}).err().unwrap().to_string().contains("one d"));
    assert!(resume(&m, &vm, &train_x, &val_x, &config(Some(dir("none"))), &mut |_| {})
        .err()
        .unwrap()
        .to_string()
        .contains("nothing to resume"));
    // a gradient method and precision that would silently ignore a setting
    use tensor_core::Precision;
    use train::{GradientMethod, Scaling};
    assert!(GradientMode::for_precision(GradientMethod::Checkpointed, Precision::Bf16, None).is_err());
    assert!(GradientMode::for_precision(GradientMethod::FullGraph, Precision::F32, Some(Scaling::None)).is_err());
    assert_eq!(
        GradientMode::for_precision(GradientMethod::FullGraph, Precision::F16, None).unwrap(),
        GradientMode::FullGraphAutocast { low: Precision::F16 }
    );
    assert!(matches!(
        GradientMode::for_precision(GradientMethod::MixedAdjoint, Precision::F16, Some(Scaling::None)).unwrap(),
        GradientMode::Mixed { scaled: false, .. }
    ));
}

/// The definition of correct data parallelism: 3 ranks (threads; shards of 22, 21 and 21 rows of
/// each batch of 64) end with the parameters, losses and best validation of the single-process
/// run on the same global batches, to f32 summation-order error, although rank 2 starts from
/// other parameters (the ranks start from rank 0's).
#[test]
fn data_parallel_ranks_equal_the_single_process_run() {
    let cfg = config(None).iters(12);
    let (data_x, val_x) = data();
    let (single, single_vm) = model(None);
    let expected = train(&single, &single_vm, &data_x, &val_x, &cfg, &mut |_| {}).unwrap();
    let expected_params = params(&single_vm);
    let results: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = LocalGroup::new(3)
            .into_iter()
            .map(|comm| {
                let (cfg, data_x, val_x) = (&cfg, &data_x, &val_x);
                scope.spawn(move || {
                    let (flow, vm) = model_seeded(None, if comm_rank(&comm) == 2 { 99 } else { 3 });
                    let out = train_distributed(&flow, &vm, data_x, val_x, cfg, &comm, &mut |_| {}).unwrap();
                    (out, params(&vm))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let as_f32 = |p: &[(String, Vec<u32>)]| -> Vec<f32> { p.iter().flat_map(|(_, v)| v.iter().map(|b| f32::from_bits(*b))).collect() };
    let reference = as_f32(&expected_params);
    let norm = reference.iter().map(|v| v * v).sum::<f32>().sqrt();
    for (rank, (out, p)) in results.iter().enumerate() {
        let diff = as_f32(p).iter().zip(&reference).map(|(a, b)| (a - b) * (a - b)).sum::<f32>().sqrt();
        assert!(diff <= 1e-6 * norm, "rank {rank}: parameters differ by {diff} (relative {})", diff / norm);
        assert_eq!(out.history.len(), expected.history.len());
        for (a, b) in out.history.iter().zip(&expected.history) {
            assert!((a.loss - b.loss).abs() <= 1e-5 * b.loss.abs(), "rank {rank}, iteration {}: loss {} vs {}", a.iter, a.loss, b.loss);
        }
        let (best_iter, best) = out.best.clone().unwrap();
        let (want_iter, want) = expected.best.clone().unwrap();
        assert_eq!(best_iter, want_iter);
        assert!((best.objective() - want.objective()).abs() < 1e-5, "validation {best} vs {want}");
        assert!(out.communication.calls >= 12 && out.communication.bytes > 0, "{:?}", out.communication);
    }
    // and the run moved: the check is not passed by parameters that never changed
    let (_, untrained) = model(None);
    assert_ne!(params(&untrained), expected_params);
}

fn comm_rank(c: &LocalGroup) -> usize {
    train::Communicator::rank(c)
}
