//! The training loop every ODE-trained model shares (OT-Flow's `trainToyOTflow.py` /
//! `trainLargeOTflow.py` logic): minibatches, Adam, a learning-rate schedule, validation with
//! more steps, the best parameters by the validation objective restored at the end, early
//! stopping, atomic checkpoints and bit-identical resume; data-parallel over a
//! [`Communicator`]'s ranks with [`train_distributed`].

use crate::checkpoint::{read_training_checkpoint, write_training_checkpoint, SavedRng, TrainingCheckpoint};
use crate::comm::{all_reduce_weighted, broadcast_from_root, check_group, shard, CommStats, Communicator, SingleProcess};
use crate::config::{LrSchedule, TrainConfig};
use crate::error::{Result, TrainError};
use crate::gradient_mode::GradientMode;
use crate::metrics::Metrics;
use crate::model::{Objective, OdeObjective, Step, Trainable};
use crate::optim::Optimizer;
use candle_core::{DType, Tensor};
use candle_nn::VarMap;
use mixed_precision_adjoint::DynamicScaler;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tensor_core::{Precision, SeededRng};

/// The checkpoint file inside [`TrainConfig::checkpoint_dir`].
pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";
const STATE_KEY: &str = "continuum.train_state";

/// One logged iteration.
#[derive(Clone, Debug)]
pub struct TrainRecord {
    pub iter: usize,
    pub loss: f64,
    pub lr: f64,
    /// The validation figures when validated this iteration.
    pub validation: Option<Metrics>,
    /// Seconds since this process started training.
    pub seconds: f64,
    /// Mixed precision only: the backward pass flagged underflow.
    pub degraded: bool,
}

/// What a run ends with (the best parameters are restored into the model's variables).
#[derive(Clone, Debug)]
pub struct TrainOutcome {
    /// The iterations run by this call (a resumed run's start from the checkpoint).
    pub history: Vec<TrainRecord>,
    /// The validation that selected the restored parameters: (iteration, figures).
    pub best: Option<(usize, Metrics)>,
    /// The last iteration done (less than `iters` when stopped early).
    pub last_iter: usize,
    /// The gradient all-reduce's calls, bytes and time (zero in a single process).
    pub communication: CommStats,
}

/// The loop's state between iterations: what a checkpoint holds besides tensors. f64s are kept
/// as bit patterns so a resumed run continues with exactly the same numbers.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct LoopState {
    iter: usize,
    adam_steps: usize,
    lr_bits: u64,
    best: Option<(usize, Metrics)>,
    best_bits: Option<u64>,
    since_best: usize,
    plateau_drops: i32,
    stopped: bool,
    batch_rng: SavedRng,
    model_rng: SavedRng,
    scale_bits: Option<u64>,
    halvings: usize,
    doublings: usize,
    /// The scales of the solves after the first (models with several ODE blocks).
    #[serde(default)]
    more_scales: Vec<(Option<u64>, usize, usize)>,
    /// The run's settings (besides iters and the checkpoint options): a resume must match.
    settings: String,
}

/// The settings a resumed run must share with the run it continues.
fn settings_fingerprint(cfg: &TrainConfig) -> String {
    let c = TrainConfig { iters: 0, checkpoint_dir: None, checkpoint_every: 1, ..cfg.clone() };
    format!("{c:?}")
}

/// Trains `model` (whose parameters are the variables of `varmap`) on `train_x`, validating on
/// `val_x`, which must be different data: the best parameters by the validation objective are
/// restored at the end, so report test figures on a third split. `on_record` sees every
/// iteration (progress bars). With a checkpoint folder, the full training state is written there
/// atomically every `checkpoint_every` iterations; [`resume`] continues from it.
pub fn train<M: Trainable>(
    model: &M,
    varmap: &VarMap,
    train_x: &Tensor,
    val_x: &Tensor,
    cfg: &TrainConfig,
    on_record: &mut dyn FnMut(&TrainRecord),
) -> Result<TrainOutcome> {
    run(&OdeObjective(model), varmap, train_x, val_x, cfg, None, &SingleProcess, on_record)
}

/// [`train`] for any [`Objective`] (a model of several ODE blocks, say); with `resume` set, it
/// continues from the checkpoint in `cfg.checkpoint_dir` as [`resume`] does.
pub fn train_objective<O: Objective>(
    objective: &O,
    varmap: &VarMap,
    train_x: &Tensor,
    val_x: &Tensor,
    cfg: &TrainConfig,
    resume: bool,
    on_record: &mut dyn FnMut(&TrainRecord),
) -> Result<TrainOutcome> {
    let from = if resume { Some(checkpoint_path(cfg)?) } else { None };
    run(objective, varmap, train_x, val_x, cfg, from, &SingleProcess, on_record)
}

/// [`train`] as one rank of a data-parallel group. Every rank passes the same data, model and
/// settings; each draws the run's minibatch from the same seeded stream and takes its shard of
/// the rows ([`crate::comm::shard`]), the shards' gradients are summed with weights
/// n_rank / batch by one bucketed all-reduce per step (f32 accumulation), so every rank applies
/// the single-process update on the union of the shards. The ranks start from rank 0's
/// parameters, agree on the mixed-precision adjoint's scale (the smallest), validate their
/// shard of `val_x` and average the figures (which must therefore be per-sample means, as
/// NLL, transport and HJB costs are), and only rank 0 writes checkpoints. The model's own
/// draws (Hutchinson probes) use the single-process seed on rank 0 and a seed of their own on
/// the others. A rank that fails returns its error without telling the others: a program calls
/// [`Communicator::abort`] on it.
#[allow(clippy::too_many_arguments)]
pub fn train_distributed<M: Trainable>(
    model: &M,
    varmap: &VarMap,
    train_x: &Tensor,
    val_x: &Tensor,
    cfg: &TrainConfig,
    comm: &dyn Communicator,
    on_record: &mut dyn FnMut(&TrainRecord),
) -> Result<TrainOutcome> {
    run(&OdeObjective(model), varmap, train_x, val_x, cfg, None, comm, on_record)
}

/// Continues the run whose checkpoint is in `cfg.checkpoint_dir`, with the same settings (the
/// number of iterations may grow). On the CPU the result is bit-identical to a run that never
/// stopped.
pub fn resume<M: Trainable>(
    model: &M,
    varmap: &VarMap,
    train_x: &Tensor,
    val_x: &Tensor,
    cfg: &TrainConfig,
    on_record: &mut dyn FnMut(&TrainRecord),
) -> Result<TrainOutcome> {
    resume_distributed(model, varmap, train_x, val_x, cfg, &SingleProcess, on_record)
}

/// [`resume`] as one rank of a data-parallel group: every rank reads rank 0's checkpoint (a
/// shared file system, or a copy at the same path on every machine).
#[allow(clippy::too_many_arguments)]
pub fn resume_distributed<M: Trainable>(
    model: &M,
    varmap: &VarMap,
    train_x: &Tensor,
    val_x: &Tensor,
    cfg: &TrainConfig,
    comm: &dyn Communicator,
    on_record: &mut dyn FnMut(&TrainRecord),
) -> Result<TrainOutcome> {
    run(&OdeObjective(model), varmap, train_x, val_x, cfg, Some(checkpoint_path(cfg)?), comm, on_record)
}

fn checkpoint_path(cfg: &TrainConfig) -> Result<PathBuf> {
    let dir = cfg
        .checkpoint_dir
        .as_ref()
        .ok_or_else(|| TrainError::Config("resume needs the checkpoint folder of the run (checkpoint_dir)".into()))?;
    Ok(dir.join(CHECKPOINT_FILE))
}

struct Loop {
    state: LoopState,
    batch_rng: SeededRng,
    model_rng: SeededRng,
    best_params: Option<Vec<Tensor>>,
}

fn check_data(train_x: &Tensor, val_x: &Tensor) -> Result<()> {
    let (train_dims, val_dims) = (train_x.dims(), val_x.dims());
    if train_dims.len() != 2 || val_dims.len() != 2 || train_dims[1] != val_dims[1] {
        return Err(TrainError::Config(format!(
            "training and validation data must be (samples, d) matrices of one d, got {train_dims:?} and {val_dims:?}"
        )));
    }
    if train_dims[0] == 0 || val_dims[0] == 0 {
        return Err(TrainError::Config(format!("empty data: {} training and {} validation samples", train_dims[0], val_dims[0])));
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn run<M: Objective>(
    model: &M,
    varmap: &VarMap,
    train_x: &Tensor,
    val_x: &Tensor,
    cfg: &TrainConfig,
    resume_from: Option<PathBuf>,
    comm: &dyn Communicator,
    on_record: &mut dyn FnMut(&TrainRecord),
) -> Result<TrainOutcome> {
    cfg.validate()?;
    check_data(train_x, val_x)?;
    let full_batch = cfg.batch.min(train_x.dim(0)?);
    check_group(comm, full_batch, val_x.dim(0)?)?;
    let (rank, parallel) = (comm.rank(), comm.size() > 1);
    let mut communication = CommStats::default();
    let m = |e: M::Error| TrainError::model(e);
    let mut names: Vec<(String, candle_core::Var)> =
        varmap.data().lock().expect("VarMap mutex poisoned").iter().map(|(n, v)| (n.clone(), v.clone())).collect();
    names.sort_by(|a, b| a.0.cmp(&b.0));
    let vars: Vec<candle_core::Var> = names.into_iter().map(|(_, v)| v).collect();
    let params: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let mut opt = cfg.optimizer.build(varmap, cfg.lr)?;
    let low = cfg.mode.term_precision(Precision::of_dtype(train_x.dtype()));
    let term_dtype = low.dtype();
    let mut scalers: Vec<DynamicScaler> = (0..model.solves().max(1)).map(|_| DynamicScaler::new(low)).collect();
    let batch_rng = SeededRng::new(cfg.seed);
    // a stream of its own for the model's draws, so they never shift the minibatches
    let model_rng = SeededRng::new(cfg.seed ^ 0x9E37_79B9_7F4A_7C15);
    let mut lp = Loop {
        state: LoopState {
            iter: 0,
            adam_steps: 0,
            lr_bits: cfg.lr.to_bits(),
            best: None,
            best_bits: None,
            since_best: 0,
            plateau_drops: 0,
            stopped: false,
            batch_rng: SavedRng::of(&batch_rng),
            model_rng: SavedRng::of(&model_rng),
            scale_bits: None,
            halvings: 0,
            doublings: 0,
            more_scales: Vec::new(),
            settings: settings_fingerprint(cfg),
        },
        batch_rng,
        model_rng,
        best_params: None,
    };
    if let Some(path) = &resume_from {
        lp = restore(path, varmap, opt.as_mut(), &mut scalers, cfg)?;
    }
    if parallel {
        for (v, p) in vars.iter().zip(broadcast_from_root(comm, &params, &mut CommStats::default())?) {
            v.set(&p)?;
        }
    }
    let (shard_start, shard_rows) = shard(full_batch, rank, comm.size());
    let batch_weight = shard_rows as f64 / full_batch as f64;
    let grid: Vec<f64> = (0..=cfg.steps).map(|i| i as f64 / cfg.steps as f64).collect();
    let mut history = Vec::new();
    let start = std::time::Instant::now();
    let mut lr = f64::from_bits(lp.state.lr_bits);
    opt.set_learning_rate(lr)?;
    let first = lp.state.iter + 1;
    for iter in first..=cfg.iters {
        if lp.state.stopped {
            break;
        }
        if let Some(c) = cfg.clamp {
            for v in &vars {
                v.set(&v.as_tensor().clamp(-c, c)?)?;
            }
        }
        let mut x = lp.batch_rng.rows(train_x, full_batch)?;
        let mut seed = lp.model_rng.next_seed();
        if parallel {
            x = x.narrow(0, shard_start, shard_rows)?;
            seed ^= (rank as u64).wrapping_mul(0xD1B5_4A32_D192_ED03);
        }
        let step = Step { method: cfg.method, grid: &grid, mode: cfg.mode, params: &params, dtype: term_dtype, seed };
        let out = model.value_and_grad(&x, &step, &mut scalers)?;
        let (mut grads, mut degraded) = (out.grads, out.degraded);
        let mut loss = out.loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        if parallel {
            let mut figures = [batch_weight * loss, f64::from(u8::from(degraded))];
            comm.all_reduce_sum(&mut figures)?;
            (loss, degraded) = (figures[0], figures[1] > 0.0);
            let local = vars
                .iter()
                .map(|v| grads.get(v).map_or_else(|| v.as_tensor().zeros_like(), |g| Ok(g.clone())))
                .collect::<candle_core::Result<Vec<_>>>()?;
            for (v, g) in vars.iter().zip(all_reduce_weighted(comm, &local, batch_weight, &mut communication)?) {
                grads.insert(v, g);
            }
            if let GradientMode::Mixed { scaled: true, .. } = cfg.mode {
                // the next step starts from the smallest scale any rank needed
                let mut scales: Vec<f64> = scalers.iter().map(|s| s.scale().unwrap_or(f64::INFINITY)).collect();
                comm.all_reduce_min(&mut scales)?;
                for (scaler, scale) in scalers.iter_mut().zip(scales) {
                    scaler.restore(Some(scale).filter(|s| s.is_finite()), scaler.halvings, scaler.doublings);
                }
            }
        }
        if !loss.is_finite() {
            return Err(TrainError::NonFiniteLoss { iter, value: loss });
        }
        opt.step(&grads)?;
        let mut record = TrainRecord { iter, loss, lr, validation: None, seconds: start.elapsed().as_secs_f64(), degraded };
        let st = &mut lp.state;
        if iter % cfg.val_every == 0 || iter == cfg.iters {
            let v = if parallel {
                let rows = val_x.dim(0)?;
                let (start, len) = shard(rows, rank, comm.size());
                let local = model.validate(&val_x.narrow(0, start, len)?, cfg.val_steps).map_err(m)?;
                let mut sums: Vec<f64> = local.iter().map(|(_, v)| v * len as f64 / rows as f64).collect();
                comm.all_reduce_sum(&mut sums)?;
                local.with_values(&sums)
            } else {
                model.validate(val_x, cfg.val_steps).map_err(m)?
            };
            if v.objective() < st.best_bits.map_or(f64::INFINITY, f64::from_bits) {
                st.best_bits = Some(v.objective().to_bits());
                st.best = Some((iter, v.clone()));
                st.since_best = 0;
                lp.best_params = Some(params.iter().map(|p| p.copy()).collect::<candle_core::Result<Vec<_>>>()?);
            } else {
                st.since_best += 1;
            }
            record.validation = Some(v);
        }
        on_record(&record);
        history.push(record);
        match cfg.schedule {
            LrSchedule::Plateau { factor, patience, max_drops } if st.since_best > patience => {
                if st.plateau_drops >= max_drops as i32 {
                    st.stopped = true;
                } else {
                    st.plateau_drops += 1;
                    lr = cfg.lr / factor.powi(st.plateau_drops);
                    opt.set_learning_rate(lr)?;
                    st.since_best = 0;
                }
            }
            LrSchedule::Plateau { .. } => {}
            LrSchedule::Cosine { min_lr, horizon } => {
                if cfg.early_stopping.is_some_and(|p| st.since_best >= p) {
                    st.stopped = true;
                }
                lr = LrSchedule::cosine(cfg.lr, min_lr, iter, horizon);
                opt.set_learning_rate(lr)?;
            }
            LrSchedule::Constant | LrSchedule::StepDecay { .. } => {
                if cfg.early_stopping.is_some_and(|p| st.since_best >= p) {
                    st.stopped = true;
                } else if let LrSchedule::StepDecay { every, factor } = cfg.schedule {
                    if iter % every == 0 {
                        lr /= factor;
                        opt.set_learning_rate(lr)?;
                    }
                }
            }
        }
        st.iter = iter;
        if let Some(dir) = cfg.checkpoint_dir.as_ref().filter(|_| rank == 0) {
            if iter % cfg.checkpoint_every == 0 || iter == cfg.iters || st.stopped {
                st.lr_bits = lr.to_bits();
                write_checkpoint(&dir.join(CHECKPOINT_FILE), &mut lp, varmap, opt.as_ref(), &scalers)?;
            }
        }
    }
    if let Some(bp) = &lp.best_params {
        for (v, p) in vars.iter().zip(bp) {
            v.set(p)?;
        }
    }
    Ok(TrainOutcome { history, best: lp.state.best.clone(), last_iter: lp.state.iter, communication })
}

fn write_checkpoint(path: &Path, lp: &mut Loop, varmap: &VarMap, opt: &dyn Optimizer, scalers: &[DynamicScaler]) -> Result<()> {
    let st = &mut lp.state;
    st.adam_steps = opt.steps_taken();
    st.batch_rng = SavedRng::of(&lp.batch_rng);
    st.model_rng = SavedRng::of(&lp.model_rng);
    let saved = |s: &DynamicScaler| (s.scale().map(f64::to_bits), s.halvings, s.doublings);
    (st.scale_bits, st.halvings, st.doublings) = saved(&scalers[0]);
    st.more_scales = scalers[1..].iter().map(saved).collect();
    write_training_checkpoint(path, varmap, opt, lp.best_params.as_deref(), STATE_KEY, st)
}

fn restore(path: &Path, varmap: &VarMap, opt: &mut dyn Optimizer, scalers: &mut [DynamicScaler], cfg: &TrainConfig) -> Result<Loop> {
    let ck: TrainingCheckpoint<LoopState> = read_training_checkpoint(path, varmap, STATE_KEY, "training")?;
    let state = &ck.state;
    if state.settings != settings_fingerprint(cfg) {
        return Err(TrainError::Checkpoint {
            path: path.to_path_buf(),
            reason: format!(
                "was written with other settings; resume with the run's own.\n  checkpoint: {}\n  now:        {}",
                state.settings,
                settings_fingerprint(cfg)
            ),
        });
    }
    let best_params = ck.apply(varmap, opt, state.adam_steps, state.best.is_some())?;
    let saved = std::iter::once((state.scale_bits, state.halvings, state.doublings)).chain(state.more_scales.iter().copied());
    if saved.clone().count() != scalers.len() {
        return Err(TrainError::Checkpoint {
            path: path.to_path_buf(),
            reason: format!("holds {} adjoint scales, the model solves {} ODE blocks", saved.count(), scalers.len()),
        });
    }
    for (scaler, (bits, halvings, doublings)) in scalers.iter_mut().zip(saved) {
        scaler.restore(bits.map(f64::from_bits), halvings, doublings);
    }
    Ok(Loop { batch_rng: state.batch_rng.restore()?, model_rng: state.model_rng.restore()?, best_params, state: ck.state })
}
