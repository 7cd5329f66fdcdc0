//! The typed error of `tensor-core`: every fallible function returns [`Result`].

use std::path::PathBuf;

/// Everything that can go wrong in `tensor-core`, with a message a user can act on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A device string that is not `cpu`, `cuda` or `cuda:N`.
    #[error("unknown device '{0}': expected 'cpu', 'cuda' or 'cuda:N'")]
    UnknownDevice(String),
    /// `cuda` was requested but this binary was built without the `cuda` feature.
    #[error("device '{0}' needs CUDA, but continuum was built without it: rebuild with `--features cuda`")]
    CudaNotCompiled(String),
    /// `cuda` was requested and compiled in, but the device cannot be opened.
    #[error("cannot open CUDA device {ordinal}: {reason}")]
    NoCudaDevice { ordinal: usize, reason: String },
    /// A precision string that is not one of the policy's names.
    #[error("unknown precision '{0}': expected one of f64, f32, tf32, bf16, f16")]
    UnknownPrecision(String),
    /// An argument of the wrong shape.
    #[error("shape error in {context}: expected {expected}, got {got:?}")]
    Shape { context: &'static str, expected: String, got: Vec<usize> },
    /// An argument of the wrong dtype.
    #[error("dtype error in {context}: expected {expected}, got {got:?}")]
    DType { context: &'static str, expected: String, got: candle_core::DType },
    /// Two tensors that must live together live on different devices.
    #[error("device mismatch in {context}: tensors live on different devices")]
    DeviceMismatch { context: &'static str },
    /// An invalid configuration value (width 0, depth too small, …).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// An I/O error with the path it happened on.
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// An error from candle itself.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// `Result` with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Checks that `t` is 2-D with `cols` columns; `context` names the caller in the error.
pub fn expect_matrix(t: &candle_core::Tensor, cols: usize, context: &'static str) -> Result<usize> {
    match t.dims() {
        [rows, c] if *c == cols => Ok(*rows),
        dims => Err(Error::Shape { context, expected: format!("(batch, {cols})"), got: dims.to_vec() }),
    }
}
