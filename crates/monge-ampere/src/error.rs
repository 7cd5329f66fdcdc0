//! The typed error of `monge-ampere`.

/// What can go wrong defining or running a Monge–Ampère sampler.
#[derive(Debug, thiserror::Error)]
pub enum MaError {
    /// A setting that cannot describe a run (named, with the value given).
    #[error("invalid setting: {0}")]
    Config(String),
    /// Input data of the wrong shape or with NaN / infinite entries.
    #[error("invalid data: {0}")]
    Data(String),
    /// An iterate that left the assumptions a quantity needs (a map that is not monotone where a
    /// change of variables needs it, a non-finite value).
    #[error("{0}")]
    Diverged(String),
    /// From score-diffusion (the Gaussian-mixture targets); boxed, it is a large enum.
    #[error(transparent)]
    Diffusion(Box<score_diffusion::DiffusionError>),
    /// From the training layer (the optimiser).
    #[error(transparent)]
    Train(#[from] train::TrainError),
    /// From tensor-core.
    #[error(transparent)]
    TensorCore(#[from] tensor_core::Error),
    /// From candle.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl From<score_diffusion::DiffusionError> for MaError {
    fn from(e: score_diffusion::DiffusionError) -> Self {
        Self::Diffusion(Box::new(e))
    }
}

/// `Result` with [`MaError`].
pub type Result<T> = std::result::Result<T, MaError>;
