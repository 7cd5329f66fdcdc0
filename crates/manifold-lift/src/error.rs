//! The typed error of `manifold-lift`.

/// What can go wrong lifting, projecting or sampling on a manifold.
#[derive(Debug, thiserror::Error)]
pub enum LiftError {
    /// A point, a batch or a setting of the wrong size or value (named).
    #[error("invalid input: {0}")]
    Input(String),
    /// The constraint Jacobian lost rank at a point: its normal space is not defined there.
    #[error("the constraint Jacobian is rank-deficient at {0:?}: the manifold is singular there")]
    Singular(Vec<f64>),
    /// From the model being sampled.
    #[error(transparent)]
    Model(Box<dyn std::error::Error + Send + Sync>),
    /// From candle.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// `Result` with [`LiftError`].
pub type Result<T> = std::result::Result<T, LiftError>;
