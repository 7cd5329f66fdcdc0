//! `datasets`: the data continuum trains on, loaded into plain row-major `f32` matrices (no
//! tensor math here; models turn a [`Matrix`] into a tensor).
//!
//! - [`toy2d`]: the 2-D toy densities of FFJORD / OT-Flow, seeded.
//! - [`bsds300`]: MAF's `BSDS300.hdf5` (d = 63) and where to find it.
//! - [`natural_patches`]: the embedded default standing in for BSDS300 — MAF's preprocessing
//!   applied to the public-domain/CC0 photographs shipped in `datasets/natural-images/`.
//! - [`stl10`]: STL-10's binary format (`stl10_binary/`).
//! - [`digits`]: the embedded 1,797 real 8×8 handwritten digits (UCI, CC BY 4.0), the
//!   CPU-sized stand-in for an image classifier when STL-10 is absent.
//! - [`npy_csv`]: a user's own data as `.npy` or `.csv`, and writing samples back.

pub mod bsds300;
pub mod digits;
pub mod error;
pub mod natural_patches;
pub mod npy_csv;
pub mod standardize;
pub mod stl10;
pub mod toy2d;

pub use error::{DataError, Result};
pub use standardize::Standardization;

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
            return Err(DataError::Format {
                source_name: "matrix".into(),
                reason: format!("{} values do not fill {rows} × {cols}", data.len()),
            });
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

    /// The rows `ids`, in that order.
    pub fn select(&self, ids: &[usize]) -> Matrix {
        Matrix { data: ids.iter().flat_map(|&i| self.row(i).iter().copied()).collect(), rows: ids.len(), cols: self.cols }
    }

    /// The matrix as a (rows, cols) f32 tensor on `device`.
    #[cfg(feature = "candle")]
    pub fn to_tensor(&self, device: &candle_core::Device) -> candle_core::Result<candle_core::Tensor> {
        candle_core::Tensor::from_slice(&self.data, (self.rows, self.cols), device)
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

impl Splits {
    /// `m` shuffled with `seed` and cut into test (the first `test_fraction`), validation (the
    /// next `validation_fraction`) and training (the rest) samples; each split gets at least one
    /// sample, so `m` needs at least three.
    pub fn shuffled(m: &Matrix, validation_fraction: f64, test_fraction: f64, seed: u64, source: &str) -> Result<Self> {
        use rand::{seq::SliceRandom, SeedableRng};
        let fractions_ok =
            (0.0..1.0).contains(&validation_fraction) && (0.0..1.0).contains(&test_fraction) && validation_fraction + test_fraction < 1.0;
        if !fractions_ok {
            return Err(DataError::Format {
                source_name: source.into(),
                reason: format!(
                    "validation and test fractions {validation_fraction} and {test_fraction} must be in [0, 1) and leave training data"
                ),
            });
        }
        let n_test = ((m.rows as f64 * test_fraction) as usize).max(1);
        let n_val = ((m.rows as f64 * validation_fraction) as usize).max(1);
        if m.rows < n_test + n_val + 1 {
            return Err(DataError::Format {
                source_name: source.into(),
                reason: format!("{} samples are too few to split into training, validation and test data", m.rows),
            });
        }
        let mut idx: Vec<usize> = (0..m.rows).collect();
        idx.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
        Ok(Self {
            test: m.select(&idx[..n_test]),
            validation: m.select(&idx[n_test..n_test + n_val]),
            train: m.select(&idx[n_test + n_val..]),
            source: source.into(),
        })
    }
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
