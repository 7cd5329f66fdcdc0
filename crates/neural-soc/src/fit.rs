//! Training a value function Φ_θ: Adam on the weighted loss of fresh sampled paths every
//! iteration (NeuralSOC's `train_100d.py`), validation of the closed loop u*(∇Φ_θ) on a fixed
//! draw of initial states and noise, the best parameters by the validation control objective J
//! restored at the end, and atomic checkpoints that a run resumes from.

use crate::error::{Result, SocError};
use crate::loss::{costs, SocCosts, SocWeights};
use crate::problem::{check_problem, ControlProblem};
use crate::sampler::{rollout, Sampler};
use candle_core::Tensor;
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tensor_core::nets::Potential;
use tensor_core::SeededRng;
use train::checkpoint::{load_vars, named_vars, read_training_checkpoint, write_training_checkpoint, SavedRng, TrainingCheckpoint};
use train::{Adam, LrSchedule, Metrics, TrainError};

/// Settings of [`fit`]; `Default` is `train_100d.py`'s (2000 iterations, batch 64, 20 steps,
/// validation on 128 paths with 40 steps every 25 iterations, lr 0.01 divided by 10 every 1500,
/// PMP sampling, β = (1, 1, 1, 0, 1, 1)).
#[derive(Clone, Debug, PartialEq)]
pub struct SocTrainConfig {
    pub iters: usize,
    pub batch: usize,
    /// Euler–Maruyama steps on [0, T] for training and validation.
    pub steps: usize,
    pub val_batch: usize,
    pub val_steps: usize,
    pub val_every: usize,
    pub lr: f64,
    /// `Constant` or `StepDecay` (a plateau schedule needs a validation loss to fall, which the
    /// control objective need not).
    pub schedule: LrSchedule,
    pub sampler: Sampler,
    pub weights: SocWeights,
    /// Seed of the training paths; the validation draw uses `seed + 1`.
    pub seed: u64,
    /// Folder for `soc-checkpoint.safetensors`, written atomically every `checkpoint_every`
    /// iterations and after the last.
    pub checkpoint_dir: Option<PathBuf>,
    pub checkpoint_every: usize,
}

impl Default for SocTrainConfig {
    fn default() -> Self {
        Self {
            iters: 2000,
            batch: 64,
            steps: 20,
            val_batch: 128,
            val_steps: 40,
            val_every: 25,
            lr: 0.01,
            schedule: LrSchedule::StepDecay { every: 1500, factor: 10.0 },
            sampler: Sampler::Pmp,
            weights: SocWeights::reference(),
            seed: 0,
            checkpoint_dir: None,
            checkpoint_every: 100,
        }
    }
}

impl SocTrainConfig {
    fn check(&self) -> Result<()> {
        let sizes = [("iters", self.iters), ("batch", self.batch), ("steps", self.steps), ("val_batch", self.val_batch)];
        let sizes = sizes.into_iter().chain([
            ("val_steps", self.val_steps),
            ("val_every", self.val_every),
            ("checkpoint_every", self.checkpoint_every),
        ]);
        if let Some((name, _)) = sizes.into_iter().find(|(_, v)| *v == 0) {
            return Err(SocError::Config(format!("{name} must be at least 1")));
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(SocError::Config(format!("the learning rate must be finite and positive, got {}", self.lr)));
        }
        if let LrSchedule::Plateau { .. } = self.schedule {
            return Err(SocError::Config("a plateau schedule is not supported here: use StepDecay or Constant".into()));
        }
        self.weights.check()
    }

    fn lr_at(&self, iter: usize) -> f64 {
        match self.schedule {
            LrSchedule::StepDecay { every, factor } if every > 0 => self.lr / factor.powi((iter / every) as i32),
            _ => self.lr,
        }
    }
}

/// One iteration's figures.
#[derive(Clone, Debug)]
pub struct SocRecord {
    pub iter: usize,
    pub lr: f64,
    /// The loss terms on this iteration's training paths.
    pub train: Metrics,
    /// The closed loop's figures on the validation draw, when validated this iteration.
    pub validation: Option<Metrics>,
    /// Seconds since this call started.
    pub seconds: f64,
}

/// What [`fit`] ends with; the best parameters are restored into the variables.
#[derive(Clone, Debug)]
pub struct SocOutcome {
    pub history: Vec<SocRecord>,
    /// The validation that selected the restored parameters.
    pub best: Option<(usize, Metrics)>,
}

/// The checkpoint file inside [`SocTrainConfig::checkpoint_dir`].
pub const CHECKPOINT_FILE: &str = "soc-checkpoint.safetensors";
const STATE_KEY: &str = "continuum.soc_state";

#[derive(Serialize, Deserialize)]
struct LoopState {
    iter: usize,
    adam_steps: usize,
    rng: SavedRng,
    best: Option<(usize, Metrics)>,
    settings: String,
}

/// The loss terms of the closed loop u*(∇Φ_θ) (PMP paths) from `z0` with `steps` steps and
/// noise drawn from `seed`, without a graph: the same seed gives the same paths for any Φ_θ
/// (common random numbers between validations).
pub fn evaluate(problem: &dyn ControlProblem, phi: &Potential, z0: &Tensor, steps: usize, seed: u64) -> Result<SocCosts> {
    let phi = phi.detach()?;
    let traj = rollout(problem, &phi, Sampler::Pmp, &z0.detach(), steps, &mut SeededRng::new(seed))?;
    costs(problem, &phi, &traj, &SocWeights::reference())
}

/// Trains Φ_θ (`phi`, whose parameters are the variables of `varmap`) for `problem`.
/// `on_record` sees every iteration (progress bars). With `resume`, continues from the
/// checkpoint in `cfg.checkpoint_dir` (same settings required).
pub fn fit(
    problem: &dyn ControlProblem,
    phi: &Potential,
    varmap: &VarMap,
    cfg: &SocTrainConfig,
    resume: bool,
    on_record: &mut dyn FnMut(&SocRecord),
) -> Result<SocOutcome> {
    cfg.check()?;
    if phi.config().dim != problem.dim() {
        return Err(SocError::Problem(format!("Φ takes states of dimension {}, the problem has {}", phi.config().dim, problem.dim())));
    }
    let device = varmap.all_vars().first().map(|v| v.device().clone()).ok_or_else(|| SocError::Config("no parameters to train".into()))?;
    let dtype = varmap.all_vars()[0].dtype();
    check_problem(problem, dtype, &device)?;
    let settings = format!("{:?}", SocTrainConfig { iters: 0, checkpoint_dir: None, ..cfg.clone() });
    let mut opt = Adam::new(varmap, cfg.lr)?;
    let mut rng = SeededRng::new(cfg.seed);
    let mut state = LoopState { iter: 0, adam_steps: 0, rng: SavedRng::of(&rng), best: None, settings };
    let mut best_params: Option<Vec<Tensor>> = None;
    let ckpt = cfg.checkpoint_dir.as_ref().map(|d| d.join(CHECKPOINT_FILE));
    if resume {
        let path = ckpt.as_ref().ok_or_else(|| SocError::Config("resume needs a checkpoint folder".into()))?;
        best_params = restore(path, varmap, &mut opt, &mut state)?;
        rng = state.rng.restore()?;
    }
    let val_rng_seed = cfg.seed.wrapping_add(1);
    let z_val = problem.initial_states(cfg.val_batch, &mut SeededRng::new(val_rng_seed), dtype, &device)?;
    let start = std::time::Instant::now();
    let mut history = Vec::new();
    while state.iter < cfg.iters {
        let iter = state.iter + 1;
        let lr = cfg.lr_at(state.iter);
        opt.set_learning_rate(lr)?;
        let z0 = problem.initial_states(cfg.batch, &mut rng, dtype, &device)?;
        let traj = rollout(problem, phi, cfg.sampler, &z0, cfg.steps, &mut rng)?;
        let c = costs(problem, phi, &traj, &cfg.weights)?;
        let train = c.metrics()?;
        if !train.objective().is_finite() {
            return Err(TrainError::NonFiniteLoss { iter, value: train.objective() }.into());
        }
        opt.step(&c.total.backward()?)?;
        let validation = if iter.is_multiple_of(cfg.val_every) || iter == cfg.iters {
            let v = evaluate(problem, phi, &z_val, cfg.val_steps, val_rng_seed)?.metrics()?;
            let j = v.get("J").unwrap_or(f64::NAN);
            if j.is_finite() && state.best.as_ref().is_none_or(|(_, b)| j < b.get("J").unwrap_or(f64::INFINITY)) {
                state.best = Some((iter, v.clone()));
                best_params = Some(named_vars(varmap, "").into_iter().map(|(_, t)| t.copy()).collect::<candle_core::Result<_>>()?);
            }
            Some(v)
        } else {
            None
        };
        state.iter = iter;
        let record = SocRecord { iter, lr, train, validation, seconds: start.elapsed().as_secs_f64() };
        on_record(&record);
        history.push(record);
        if let Some(path) = &ckpt {
            if iter.is_multiple_of(cfg.checkpoint_every) || iter == cfg.iters {
                (state.rng, state.adam_steps) = (SavedRng::of(&rng), opt.steps_taken());
                write_training_checkpoint(path, varmap, &opt, best_params.as_deref(), STATE_KEY, &state)?;
            }
        }
    }
    if let Some(best) = &best_params {
        let named = named_vars(varmap, "");
        let tensors: HashMap<String, Tensor> = named.into_iter().zip(best).map(|((n, _), t)| (n, t.clone())).collect();
        load_vars(varmap, &tensors, "", Path::new("(best parameters in memory)"))?;
    }
    Ok(SocOutcome { history, best: state.best })
}

fn restore(path: &Path, varmap: &VarMap, opt: &mut Adam, state: &mut LoopState) -> Result<Option<Vec<Tensor>>> {
    let ck: TrainingCheckpoint<LoopState> = read_training_checkpoint(path, varmap, STATE_KEY, "stochastic-control")?;
    if ck.state.settings != state.settings {
        return Err(SocError::Train(TrainError::Checkpoint {
            path: path.to_path_buf(),
            reason: format!("was written with other settings.\n  checkpoint: {}\n  now:        {}", ck.state.settings, state.settings),
        }));
    }
    let best = ck.apply(varmap, opt, ck.state.adam_steps, ck.state.best.is_some())?;
    *state = ck.state;
    Ok(best)
}
