//! The typed error of `neural-soc`.

/// What can go wrong defining, training or evaluating a stochastic control problem.
#[derive(Debug, thiserror::Error)]
pub enum SocError {
    /// A problem definition that cannot be right (named, with the values given).
    #[error("invalid control problem: {0}")]
    Problem(String),
    /// A quantity of the problem or of the value function that is NaN or infinite.
    #[error("non-finite {what}: {detail}")]
    NonFinite { what: &'static str, detail: String },
    /// A setting that cannot describe a run.
    #[error("invalid setting: {0}")]
    Config(String),
    /// From the training layer (optimiser, checkpoints).
    #[error(transparent)]
    Train(#[from] train::TrainError),
    /// From tensor-core.
    #[error(transparent)]
    TensorCore(#[from] tensor_core::Error),
    /// From candle.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// `Result` with [`SocError`].
pub type Result<T> = std::result::Result<T, SocError>;
