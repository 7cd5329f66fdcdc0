//! The typed error of `mixed-precision-adjoint`.

/// What can go wrong in a mixed-precision solve or its backward pass.
#[derive(Debug, thiserror::Error)]
pub enum MpError {
    /// Halving the adjoint scale `max_attempts` times did not make a step's VJP finite.
    #[error(
        "adjoint scaling failed at step {step}: the VJP stayed non-finite after {attempts} halvings of the scale (last S = {scale:e})"
    )]
    ScalingFailed { step: usize, attempts: usize, scale: f64 },
    /// A non-finite value without scaling to fall back on, or in the high-precision accumulators.
    #[error("non-finite {what} at step {step} ({precision}): {hint}")]
    NonFinite { what: &'static str, step: usize, precision: String, hint: &'static str },
    /// The high-precision cotangent is already non-finite.
    #[error("the cotangent ∂L/∂y is non-finite")]
    NonFiniteCotangent,
    /// Bad configuration.
    #[error("invalid configuration: {0}")]
    Config(String),
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

/// `Result` with [`MpError`].
pub type Result<T> = std::result::Result<T, MpError>;
