//! [`TrainConfig`]: every setting of the training loop, with defaults and builder-style setters.

use crate::error::{Result, TrainError};
use crate::gradient_mode::GradientMode;
use crate::optim::OptimizerKind;
use ode_solvers::Method;
use std::path::PathBuf;

/// How the learning rate changes over a run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LrSchedule {
    /// The initial rate throughout.
    Constant,
    /// Divide by `factor` every `every` iterations (OT-Flow's `trainToyOTflow.py`).
    StepDecay { every: usize, factor: f64 },
    /// OT-Flow's `trainLargeOTflow.py`: after more than `patience` validations without
    /// improvement, divide by `factor` (at most `max_drops` times, the patience counter reset);
    /// one more plateau stops training.
    Plateau { factor: f64, patience: usize, max_drops: usize },
    /// Cosine annealing from the initial rate to `min_lr` over `horizon` iterations (PyTorch's
    /// `CosineAnnealingLR` with T_max = horizon, as rampde's STL-10 classifier):
    /// lr_k = min_lr + (lr − min_lr)(1 + cos(πk/horizon))/2 after step k. The horizon is part
    /// of the schedule, not the run's `iters`, so a run stopped early and resumed follows it.
    Cosine { min_lr: f64, horizon: usize },
}

impl LrSchedule {
    /// The cosine schedule's rate after step `iter` of `horizon`, from `lr` down to `min_lr`
    /// (and `min_lr` past the horizon).
    pub fn cosine(lr: f64, min_lr: f64, iter: usize, horizon: usize) -> f64 {
        let progress = (iter as f64 / horizon as f64).min(1.0);
        min_lr + (lr - min_lr) * (1.0 + (std::f64::consts::PI * progress).cos()) / 2.0
    }
}

/// Settings of [`crate::train`]. `TrainConfig::default()` then setters:
///
/// ```
/// use train::{GradientMode, LrSchedule, TrainConfig};
/// let cfg = TrainConfig::default().iters(2000).lr(5e-2).schedule(LrSchedule::StepDecay { every: 500, factor: 2.0 }).mode(GradientMode::FullGraph);
/// assert_eq!(cfg.iters, 2000);
/// ```
#[derive(Clone, Debug)]
pub struct TrainConfig {
    pub iters: usize,
    /// Minibatch size (the whole training set when it is smaller).
    pub batch: usize,
    /// Initial learning rate.
    pub lr: f64,
    /// Adam (default) or SGD with momentum.
    pub optimizer: OptimizerKind,
    pub schedule: LrSchedule,
    /// Time steps on [0, 1] for training, and for validation.
    pub steps: usize,
    pub val_steps: usize,
    /// Validate every `val_every` iterations and after the last.
    pub val_every: usize,
    /// Stop after this many validations without improvement (not with [`LrSchedule::Plateau`],
    /// which stops by itself).
    pub early_stopping: Option<usize>,
    /// Box constraint |θ| ≤ c applied before every step (OT-Flow's large runs use 1.5).
    pub clamp: Option<f64>,
    pub method: Method,
    pub mode: GradientMode,
    /// Seed of every draw the loop makes (minibatches, the model's probes).
    pub seed: u64,
    /// Folder for `checkpoint.safetensors` (the full training state, for `resume`) and
    /// `best.safetensors` (the best parameters so far).
    pub checkpoint_dir: Option<PathBuf>,
    /// Write the checkpoint every this many iterations (and after the last).
    pub checkpoint_every: usize,
}

impl Default for TrainConfig {
    /// 1000 iterations of batch 512 with Adam at lr 0.01 (constant), 8 RK4 steps (16 to validate, every
    /// 50 iterations), checkpointed adjoint, seed 0, no checkpoint folder.
    fn default() -> Self {
        Self {
            iters: 1000,
            batch: 512,
            lr: 1e-2,
            optimizer: OptimizerKind::Adam,
            schedule: LrSchedule::Constant,
            steps: 8,
            val_steps: 16,
            val_every: 50,
            early_stopping: None,
            clamp: None,
            method: Method::Rk4,
            mode: GradientMode::Checkpointed,
            seed: 0,
            checkpoint_dir: None,
            checkpoint_every: 100,
        }
    }
}

macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $ty:ty),* $(,)?) => {
        impl TrainConfig {
            $($(#[$doc])* pub fn $name(mut self, $name: $ty) -> Self {
                self.$name = $name;
                self
            })*
        }
    };
}

setters! {
    /// Sets the number of iterations.
    iters: usize,
    /// Sets the minibatch size.
    batch: usize,
    /// Sets the initial learning rate.
    lr: f64,
    /// Sets the optimiser.
    optimizer: OptimizerKind,
    /// Sets the learning-rate schedule.
    schedule: LrSchedule,
    /// Sets the training steps.
    steps: usize,
    /// Sets the validation steps.
    val_steps: usize,
    /// Sets the validation interval.
    val_every: usize,
    /// Sets the early-stopping patience.
    early_stopping: Option<usize>,
    /// Sets the parameter box constraint.
    clamp: Option<f64>,
    /// Sets the Runge–Kutta method.
    method: Method,
    /// Sets the gradient mode.
    mode: GradientMode,
    /// Sets the seed.
    seed: u64,
    /// Sets the checkpoint folder.
    checkpoint_dir: Option<PathBuf>,
    /// Sets the checkpoint interval.
    checkpoint_every: usize,
}

impl TrainConfig {
    /// Refuses settings that cannot work, naming them.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(TrainError::Config(m));
        for (name, v) in [
            ("iters", self.iters),
            ("batch", self.batch),
            ("steps", self.steps),
            ("val_steps", self.val_steps),
            ("val_every", self.val_every),
            ("checkpoint_every", self.checkpoint_every),
        ] {
            if v == 0 {
                return bad(format!("{name} must be at least 1"));
            }
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad(format!("the learning rate must be finite and positive, got {}", self.lr));
        }
        let factor_ok = |f: f64| f >= 1.0 && f.is_finite();
        match self.schedule {
            LrSchedule::Constant => {}
            LrSchedule::StepDecay { every, factor } => {
                if every == 0 || !factor_ok(factor) {
                    return bad(format!("{:?}: the interval must be at least 1, the factor ≥ 1 and finite", self.schedule));
                }
            }
            LrSchedule::Cosine { min_lr, horizon } => {
                if !(min_lr >= 0.0 && min_lr < self.lr) || horizon == 0 {
                    return bad(format!(
                        "{:?}: the final rate must be ≥ 0 and below the initial {}, the horizon at least 1",
                        self.schedule, self.lr
                    ));
                }
            }
            LrSchedule::Plateau { factor, .. } => {
                if !factor_ok(factor) {
                    return bad(format!("{:?}: the factor must be ≥ 1 and finite", self.schedule));
                }
                if self.early_stopping.is_some() {
                    return bad("early_stopping with a Plateau schedule: the schedule stops training by itself; set one of them".into());
                }
            }
        }
        if let Some(c) = self.clamp {
            if !(c > 0.0 && c.is_finite()) {
                return bad(format!("clamp must be finite and positive, got {c}"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cosine schedule starts at the initial rate, is halfway at half the horizon, reaches
    /// the final rate at the horizon and stays there; a zero horizon is refused.
    #[test]
    fn cosine_schedule_follows_its_formula() {
        let (lr, min) = (0.05, 1e-4);
        assert!((LrSchedule::cosine(lr, min, 0, 100) - lr).abs() < 1e-15);
        assert!((LrSchedule::cosine(lr, min, 50, 100) - (lr + min) / 2.0).abs() < 1e-15);
        assert!((LrSchedule::cosine(lr, min, 100, 100) - min).abs() < 1e-15);
        assert_eq!(LrSchedule::cosine(lr, min, 250, 100), min);
        let cfg = TrainConfig::default().lr(lr).schedule(LrSchedule::Cosine { min_lr: min, horizon: 0 });
        assert!(cfg.validate().is_err());
    }
}
