//! The typed error of `ode-classifier`.

/// What can go wrong building, training or evaluating a classifier.
#[derive(Debug, thiserror::Error)]
pub enum ClassifierError {
    /// A configuration that cannot describe a network (named, with the values given).
    #[error("invalid classifier configuration: {0}")]
    Config(String),
    /// Data that does not fit the configured network (shape, labels).
    #[error("invalid data: {0}")]
    Data(String),
    /// From the training layer.
    #[error(transparent)]
    Train(#[from] train::TrainError),
    /// From the ODE solvers.
    #[error(transparent)]
    Solver(#[from] ode_solvers::SolverError),
    /// From tensor-core.
    #[error(transparent)]
    TensorCore(#[from] tensor_core::Error),
    /// From candle.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// `Result` with [`ClassifierError`].
pub type Result<T> = std::result::Result<T, ClassifierError>;
