//! The typed error of `datasets`.

use std::path::PathBuf;

/// What can go wrong loading data, phrased so a user can fix it.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A real data file that is not where we looked, with where to get it.
    #[error("{what} not found (looked in: {looked}); {how_to_get}")]
    Missing { what: String, looked: String, how_to_get: String },
    /// A file or buffer that is not in the expected format.
    #[error("{source_name}: {reason}")]
    Format { source_name: String, reason: String },
    /// An I/O error with its path.
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// An unknown data set name or bad argument.
    #[error("{0}")]
    Config(String),
}

/// `Result` with [`DataError`].
pub type Result<T> = std::result::Result<T, DataError>;

pub(crate) fn read_file(path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| DataError::Io { path: path.to_path_buf(), source })
}
