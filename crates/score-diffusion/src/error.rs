//! The typed error of `score-diffusion`.

/// What can go wrong training, sampling or analysing a diffusion model.
#[derive(Debug, thiserror::Error)]
pub enum DiffusionError {
    /// Bad sizes, times or settings.
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Solver(#[from] ode_solvers::SolverError),
    /// From the training layer (the optimiser loop).
    #[error(transparent)]
    Train(#[from] train::TrainError),
    #[error(transparent)]
    TensorCore(#[from] tensor_core::Error),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// `Result` with [`DiffusionError`].
pub type Result<T> = std::result::Result<T, DiffusionError>;

/// A score evaluated inside an `ode-solvers` term reports through the solver: its own solver
/// errors pass through unchanged, the rest as one readable line.
impl From<DiffusionError> for ode_solvers::SolverError {
    fn from(e: DiffusionError) -> Self {
        match e {
            DiffusionError::Solver(inner) => inner,
            other => ode_solvers::SolverError::Config(other.to_string()),
        }
    }
}
