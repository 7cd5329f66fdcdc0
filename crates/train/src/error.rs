//! The typed error of `train`.

use std::path::PathBuf;

/// What can stop a training run, with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A setting that cannot work (named, with the value given).
    #[error("invalid training configuration: {0}")]
    Config(String),
    /// The loss became NaN or infinite; the last checkpoint written before it is intact.
    #[error("non-finite training loss ({value}) at iteration {iter}: lower the learning rate, use dynamic scaling for 16-bit runs, or check the data for NaN (the last checkpoint is intact)")]
    NonFiniteLoss { iter: usize, value: f64 },
    /// A checkpoint or model file that is missing, corrupt or belongs to another model.
    #[error("checkpoint {path}: {reason}")]
    Checkpoint { path: PathBuf, reason: String },
    /// An I/O error with the path it happened on.
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// A collective of the data-parallel group failed (NCCL, a backend's set-up).
    #[error("data-parallel communication: {0}")]
    Communication(String),
    /// An error of the model being trained (its own typed error, boxed).
    #[error(transparent)]
    Model(Box<dyn std::error::Error + Send + Sync>),
    /// From the mixed-precision adjoint.
    #[error(transparent)]
    MixedPrecision(#[from] mixed_precision_adjoint::MpError),
    /// From the solver layer.
    #[error(transparent)]
    Solver(#[from] ode_solvers::SolverError),
    /// From tensor-core.
    #[error(transparent)]
    TensorCore(#[from] tensor_core::Error),
    /// From candle.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl TrainError {
    /// Wraps a model crate's own error.
    pub fn model(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Model(Box::new(e))
    }
}

/// `Result` with [`TrainError`].
pub type Result<T> = std::result::Result<T, TrainError>;
