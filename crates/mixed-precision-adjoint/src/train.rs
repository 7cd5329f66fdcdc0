//! The training loop every continuous-time density model shares (OT-Flow's `trainToyOTflow.py` /
//! `trainLargeOTflow.py` logic): minibatches, Adam, learning-rate drops, validation with more
//! steps, best parameters kept (and saved as safetensors), early stopping. A model supplies its
//! dynamics, initial state and loss through [`FlowModel`]; the gradient mode is one switch.

use crate::error::{MpError, Result};
use crate::grads::{value_and_grad, GradientMode};
use crate::scaler::DynamicScaler;
use candle_core::{DType, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarMap};
use ode_solvers::{Method, OdeTerm, State};
use std::path::PathBuf;
use tensor_core::{Precision, SeededRng};

/// What the generic trainer needs from a model.
pub trait FlowModel {
    /// The integrated state (x plus the model's accumulators).
    type State: State;
    /// The training dynamics evaluated in `dtype` (parameters cast differentiably).
    fn dynamics(&self, dtype: DType) -> Result<Box<dyn OdeTerm<Self::State> + '_>>;
    /// The state at t = 0 for a data batch.
    fn initial_state(&self, x: &Tensor) -> Result<Self::State>;
    /// The training loss at the final state, a scalar tensor.
    fn loss(&self, z: &Self::State) -> Result<Tensor>;
    /// Validation figures on `x` with `steps` steps and no graph; the first is minimised.
    fn validate(&self, x: &Tensor, steps: usize) -> Result<Vec<f64>>;
}

/// Settings of [`train`].
#[derive(Clone, Debug)]
pub struct TrainConfig {
    pub iters: usize,
    pub batch: usize,
    pub lr: f64,
    /// Divide the learning rate by `lr_drop` every `drop_every` iterations. With 0 the rate drops
    /// on plateaus instead, as OT-Flow's `trainLargeOTflow.py` does: after more than
    /// `early_stopping` validations without improvement, up to three times, then training stops.
    pub drop_every: usize,
    pub lr_drop: f64,
    /// Time steps for training and for validation.
    pub steps: usize,
    pub val_steps: usize,
    pub val_every: usize,
    /// Patience in validations (see `drop_every`); with fixed drops, stop after this many
    /// validations without improvement. None: never stop early.
    pub early_stopping: Option<usize>,
    /// Box constraint |θ| ≤ c applied before every step (OT-Flow's large runs use 1.5).
    pub clamp: Option<f64>,
    pub method: Method,
    pub mode: GradientMode,
    pub seed: u64,
    /// Where to save the best parameters (safetensors), if anywhere.
    pub checkpoint: Option<PathBuf>,
}

/// One logged iteration.
#[derive(Clone, Debug)]
pub struct TrainRecord {
    pub iter: usize,
    pub loss: f64,
    pub lr: f64,
    /// Validation figures when validated this iteration.
    pub validation: Option<Vec<f64>>,
    pub seconds: f64,
    /// Mixed precision only: the backward pass flagged underflow.
    pub degraded: bool,
}

/// Trains `model` (whose parameters live in `varmap`) on `train_x`, validating on `val_x`;
/// `on_record` sees every iteration (progress bars). The best parameters by the first
/// validation figure are restored at the end.
pub fn train<M: FlowModel>(model: &M, varmap: &VarMap, train_x: &Tensor, val_x: &Tensor, cfg: &TrainConfig, on_record: &mut dyn FnMut(&TrainRecord)) -> Result<Vec<TrainRecord>> {
    if cfg.iters == 0 || cfg.batch == 0 || cfg.steps == 0 || cfg.val_steps == 0 {
        return Err(MpError::Config(format!("iters, batch, steps and val_steps must be positive: {cfg:?}")));
    }
    let vars = varmap.all_vars();
    let params: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let mut opt = AdamW::new(vars.clone(), ParamsAdamW { lr: cfg.lr, weight_decay: 0.0, ..Default::default() })?;
    let data_precision = match train_x.dtype() {
        DType::F64 => Precision::F64,
        DType::F16 => Precision::F16,
        DType::BF16 => Precision::Bf16,
        _ => Precision::F32,
    };
    let low = cfg.mode.term_precision(data_precision);
    let term_dtype = low.dtype();
    let mut scaler = DynamicScaler::new(low);
    let mut rng = SeededRng::new(cfg.seed);
    let grid: Vec<f64> = (0..=cfg.steps).map(|i| i as f64 / cfg.steps as f64).collect();
    let (mut best, mut best_params, mut since_best) = (f64::INFINITY, None, 0usize);
    let mut history = Vec::with_capacity(cfg.iters);
    let mut lr = cfg.lr;
    let mut plateau_drops = 0;
    let start = std::time::Instant::now();
    for iter in 1..=cfg.iters {
        if let Some(c) = cfg.clamp {
            for v in &vars {
                v.set(&v.as_tensor().clamp(-c, c)?)?;
            }
        }
        let x = rng.rows(train_x, cfg.batch.min(train_x.dim(0)?))?;
        let term = model.dynamics(term_dtype)?;
        let y0 = model.initial_state(&x)?;
        let (loss, grads, report) = value_and_grad(term.as_ref(), cfg.method, &grid, &y0, cfg.mode, &params, &mut scaler, &|z| model.loss(z))?;
        let loss = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        if !loss.is_finite() {
            return Err(MpError::NonFinite { what: "training loss", step: iter, precision: format!("{:?}", cfg.mode), hint: "lower the learning rate or use dynamic scaling" });
        }
        opt.step(&grads)?;
        let mut record = TrainRecord { iter, loss, lr, validation: None, seconds: start.elapsed().as_secs_f64(), degraded: report.is_some_and(|r| r.degraded()) };
        if iter % cfg.val_every.max(1) == 0 || iter == cfg.iters {
            let v = model.validate(val_x, cfg.val_steps)?;
            if v[0] < best {
                best = v[0];
                since_best = 0;
                best_params = Some(params.iter().map(|p| p.copy()).collect::<candle_core::Result<Vec<_>>>()?);
                if let Some(path) = &cfg.checkpoint {
                    tensor_core::params::save_checkpoint(varmap, path)?;
                }
            } else {
                since_best += 1;
            }
            record.validation = Some(v);
        }
        on_record(&record);
        history.push(record);
        match (cfg.drop_every, cfg.early_stopping) {
            (0, Some(patience)) if since_best > patience => {
                if plateau_drops > 2 {
                    break;
                }
                plateau_drops += 1;
                lr = cfg.lr / cfg.lr_drop.powi(plateau_drops);
                opt.set_learning_rate(lr);
                since_best = 0;
            }
            (0, _) => {}
            (every, patience) => {
                if patience.is_some_and(|p| since_best >= p) {
                    break;
                }
                if iter % every == 0 {
                    lr /= cfg.lr_drop;
                    opt.set_learning_rate(lr);
                }
            }
        }
    }
    if let Some(bp) = best_params {
        for (v, p) in vars.iter().zip(bp) {
            v.set(&p)?;
        }
    }
    Ok(history)
}
