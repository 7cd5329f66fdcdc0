//! `datasets`: the data continuum trains on, loaded into plain row-major `f32` matrices (no
//! tensor math here; models turn a [`Matrix`] into a tensor).
//!
//! - [`toy2d`]: the 2-D toy densities of FFJORD / OT-Flow, seeded.
//! - [`bsds300`]: MAF's `BSDS300.hdf5` (d = 63) and where to find it.
//! - [`natural_patches`]: the embedded default standing in for BSDS300 — MAF's preprocessing
//!   applied to the public-domain/CC0 photographs shipped in `datasets/natural-images/`.
//! - [`stl10`]: STL-10's binary format (`stl10_binary/`).
//! - [`npy_csv`]: a user's own data as `.npy` or `.csv`, and writing samples back.

pub mod bsds300;
pub mod error;
pub mod natural_patches;
pub mod npy_csv;
pub mod stl10;
pub mod toy2d;

pub use error::{DataError, Result};

/// A row-major matrix of samples: `rows` samples of dimension `cols`.
#[derive(Clone, Debug, PartialEq)]
pub struct Matrix {
    /// `rows × cols` values, sample after sample.
    pub data: Vec<f32>,
    /// Number of samples.
    pub rows: usize,
    /// Dimension of a sample.
    pub cols: usize,
}

impl Matrix {
    /// Wraps `data`, checking that its length is `rows × cols`.
    pub fn new(data: Vec<f32>, rows: usize, cols: usize) -> Result<Self> {
        if data.len() != rows * cols {
            return Err(DataError::Format { source_name: "matrix".into(), reason: format!("{} values do not fill {rows} × {cols}", data.len()) });
        }
        Ok(Self { data, rows, cols })
    }

    /// Sample `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// The first `n` samples (all of them if `n` is larger).
    pub fn head(&self, n: usize) -> Matrix {
        let n = n.min(self.rows);
        Matrix { data: self.data[..n * self.cols].to_vec(), rows: n, cols: self.cols }
    }

    /// Column means.
    pub fn column_means(&self) -> Vec<f64> {
        let mut m = vec![0f64; self.cols];
        for i in 0..self.rows {
            for (acc, &v) in m.iter_mut().zip(self.row(i)) {
                *acc += v as f64;
            }
        }
        m.iter_mut().for_each(|v| *v /= self.rows.max(1) as f64);
        m
    }
}

/// A data set split three ways, and where it came from.
#[derive(Clone, Debug)]
pub struct Splits {
    /// Training samples.
    pub train: Matrix,
    /// Validation samples.
    pub validation: Matrix,
    /// Test samples.
    pub test: Matrix,
    /// The label every output must carry: the real data set's name or the stand-in's.
    pub source: String,
}

/// The folders searched for real data files, in order: `$CONTINUUM_DATA`, then
/// `datasets/data/` of this workspace.
pub fn data_dirs() -> Vec<std::path::PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = std::env::var_os("CONTINUUM_DATA") {
        dirs.push(d.into());
    }
    dirs.push(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data"));
    dirs
}
