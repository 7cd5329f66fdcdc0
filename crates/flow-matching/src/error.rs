//! The typed error of `flow-matching`.

/// What can go wrong fitting or sampling a flow-matching model.
#[derive(Debug, thiserror::Error)]
pub enum FmError {
    /// Bad sizes or settings.
    #[error("{0}")]
    Config(String),
    /// Sinkhorn did not reach its tolerance.
    #[error("sinkhorn did not converge: marginal error {error:e} after {iterations} iterations (raise max_iters or eps)")]
    NotConverged { error: f64, iterations: usize },
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

/// `Result` with [`FmError`].
pub type Result<T> = std::result::Result<T, FmError>;
