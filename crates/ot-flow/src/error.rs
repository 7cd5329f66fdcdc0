//! The typed error of `ot-flow`.

/// What can go wrong building, training or evaluating an OT-Flow model.
#[derive(Debug, thiserror::Error)]
pub enum OtFlowError {
    /// A configuration that cannot describe a model (named, with the value given).
    #[error("invalid OT-Flow configuration: {0}")]
    Config(String),
    /// From the training layer (checkpoints, model files).
    #[error(transparent)]
    Train(#[from] train::TrainError),
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

/// `Result` with [`OtFlowError`].
pub type Result<T> = std::result::Result<T, OtFlowError>;
