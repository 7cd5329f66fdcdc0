//! The typed error of `ode-solvers`.

/// What can go wrong in a solve, with the time it happened at where that helps.
#[derive(Debug, thiserror::Error)]
pub enum SolverError {
    /// A state or stage became NaN or infinite.
    #[error("non-finite state at t = {t} (step {step}): the vector field overflowed or the step is too large")]
    NonFinite { t: f64, step: usize },
    /// An initial state that already holds NaN or infinity.
    #[error("the initial state holds a non-finite value")]
    NonFiniteInitial,
    /// A time grid that is empty, non-monotone, has repeated or non-finite times.
    #[error("bad time grid: {0}")]
    BadGrid(String),
    /// The vector field (or diffusion) returned a state of another structure or shape.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// The adaptive solver hit its step budget.
    #[error("reached max_steps = {max_steps} at t = {t} before the end of the interval (raise max_steps or loosen rtol/atol)")]
    MaxSteps { max_steps: usize, t: f64 },
    /// The adaptive step size collapsed.
    #[error("step size {h:e} underflowed at t = {t}: the problem is stiff or singular there")]
    StepTooSmall { t: f64, h: f64 },
    /// A requested output time outside the solve interval or off a grid without dense output.
    #[error("bad output time: {0}")]
    BadSaveAt(String),
    /// A solver used with a term of the wrong stochastic calculus, or missing what it needs.
    #[error("solver/term mismatch: {0}")]
    Mismatch(String),
    /// An invalid option value (tolerances, step counts, …).
    #[error("invalid option: {0}")]
    Config(String),
    /// An error from `tensor-core`.
    #[error(transparent)]
    TensorCore(#[from] tensor_core::Error),
    /// An error from candle.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// `Result` with [`SolverError`].
pub type Result<T> = std::result::Result<T, SolverError>;
