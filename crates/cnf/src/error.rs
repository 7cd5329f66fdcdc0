//! The typed error of `cnf`.

/// What can go wrong building, training or evaluating a CNF.
#[derive(Debug, thiserror::Error)]
pub enum CnfError {
    /// A configuration that cannot describe a CNF (named, with the value given).
    #[error("invalid CNF configuration: {0}")]
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

/// `Result` with [`CnfError`].
pub type Result<T> = std::result::Result<T, CnfError>;
