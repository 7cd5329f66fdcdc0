//! BSDS300 in the format of MAF (Papamakarios, Pavlakou, Murray 2017): one HDF5 file,
//! `BSDS300.hdf5`, with 2-D datasets `train`, `validation`, `test` at the root, each (n, 63):
//! 8 × 8 grayscale patches of the Berkeley segmentation images, dequantised, patch mean removed,
//! bottom-right pixel dropped. Read with the pure-Rust `hdf5-reader` (no libhdf5 needed).

use crate::error::{DataError, Result};
use crate::{data_dirs, Matrix, Splits};
use hdf5_reader::{Datatype, Hdf5File};
use std::path::{Path, PathBuf};

/// Dimension of a BSDS300 sample.
pub const DIM: usize = 63;
/// File name MAF ships.
pub const FILE_NAME: &str = "BSDS300.hdf5";
/// Where to download it.
pub const HOW_TO_GET: &str = "download MAF's data archive https://zenodo.org/record/1161203/files/data.tar.gz and copy data/BSDS300/BSDS300.hdf5 into datasets/data/ (or the folder $CONTINUUM_DATA names)";

/// The first `BSDS300.hdf5` found in [`data_dirs`] (directly or under `BSDS300/`).
pub fn find() -> Result<PathBuf> {
    let candidates: Vec<PathBuf> = data_dirs().into_iter().flat_map(|d| [d.join(FILE_NAME), d.join("BSDS300").join(FILE_NAME)]).collect();
    candidates.iter().find(|p| p.is_file()).cloned().ok_or_else(|| DataError::Missing {
        what: FILE_NAME.into(),
        looked: candidates.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
        how_to_get: HOW_TO_GET.into(),
    })
}

/// Reads the three splits of a MAF-format `BSDS300.hdf5`, converting f64 data to f32.
pub fn load(path: &Path) -> Result<Splits> {
    if !path.is_file() {
        return Err(DataError::Missing { what: FILE_NAME.into(), looked: path.display().to_string(), how_to_get: HOW_TO_GET.into() });
    }
    let name = path.display().to_string();
    let fmt = |reason: String| DataError::Format { source_name: name.clone(), reason };
    let file = Hdf5File::open(path).map_err(|e| fmt(format!("not a readable HDF5 file ({e})")))?;
    let read = |split: &str| -> Result<Matrix> {
        let ds = file.dataset(split).map_err(|e| fmt(format!("no dataset '{split}' at the root ({e}); is this MAF's BSDS300.hdf5?")))?;
        let (rows, cols) = match ds.shape() {
            [r, c] => (*r as usize, *c as usize),
            s => return Err(fmt(format!("dataset '{split}' has shape {s:?}, expected (n, {DIM})"))),
        };
        if cols != DIM {
            return Err(fmt(format!("dataset '{split}' has {cols} columns, expected {DIM}")));
        }
        let data = match ds.dtype() {
            Datatype::FloatingPoint { size: 4, .. } => {
                let mut v = vec![0f32; rows * cols];
                ds.read_into(&mut v).map_err(|e| fmt(format!("reading '{split}': {e}")))?;
                v
            }
            Datatype::FloatingPoint { size: 8, .. } => {
                let mut v = vec![0f64; rows * cols];
                ds.read_into(&mut v).map_err(|e| fmt(format!("reading '{split}': {e}")))?;
                v.into_iter().map(|x| x as f32).collect()
            }
            other => return Err(fmt(format!("dataset '{split}' has type {other:?}, expected 32- or 64-bit floats"))),
        };
        if let Some(bad) = data.iter().position(|x| !x.is_finite()) {
            return Err(fmt(format!("dataset '{split}' holds a non-finite value at row {}, column {}", bad / cols, bad % cols)));
        }
        Ok(Matrix { data, rows, cols })
    };
    Ok(Splits { train: read("train")?, validation: read("validation")?, test: read("test")?, source: "BSDS300".into() })
}
