//! STL-10 (Coates, Ng, Lee 2011) in its binary distribution `stl10_binary/`:
//! `{train,test,unlabeled}_X.bin` hold 96 × 96 RGB images of 27,648 bytes each, the R, G, B
//! planes one after the other, each plane column-major: byte = n·27648 + c·9216 + col·96 + row.
//! `{train,test}_y.bin` hold one uint8 label 1…10 per image; `fold_indices.txt` holds ten lines
//! of 0-based training indices (the ten predefined 1000-image folds).

use crate::data_dirs;
use crate::error::{read_file, DataError, Result};
use std::path::{Path, PathBuf};

/// Image side.
pub const SIDE: usize = 96;
/// Colour channels.
pub const CHANNELS: usize = 3;
/// Bytes per image.
pub const IMAGE_BYTES: usize = CHANNELS * SIDE * SIDE;
/// Number of classes.
pub const CLASSES: usize = 10;
/// Class names, index = label − 1.
pub const CLASS_NAMES: [&str; CLASSES] = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"];
/// Folder name of the binary distribution.
pub const DIR_NAME: &str = "stl10_binary";
/// Where to download it.
pub const HOW_TO_GET: &str = "download https://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz and unpack it so that datasets/data/stl10_binary/ (or $CONTINUUM_DATA/stl10_binary/) holds train_X.bin";

/// Which part of STL-10.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stl10Split {
    /// 5,000 labelled training images.
    Train,
    /// 8,000 labelled test images.
    Test,
    /// 100,000 unlabelled images.
    Unlabeled,
}

impl Stl10Split {
    fn stem(self) -> &'static str {
        match self {
            Self::Train => "train",
            Self::Test => "test",
            Self::Unlabeled => "unlabeled",
        }
    }
}

/// Images of one split as stored on disk, with 0-based labels where the split has them.
#[derive(Clone, Debug)]
pub struct Stl10 {
    /// Number of images.
    pub len: usize,
    /// `len × 27648` bytes in the file layout (see [`Stl10::pixel`]).
    pub bytes: Vec<u8>,
    /// Labels 0…9 (the file's 1…10 minus one); `None` for the unlabelled split.
    pub labels: Option<Vec<u8>>,
}

/// The `stl10_binary` folder found in [`data_dirs`].
pub fn find_dir() -> Result<PathBuf> {
    let candidates: Vec<PathBuf> = data_dirs().into_iter().map(|d| d.join(DIR_NAME)).collect();
    candidates.iter().find(|p| p.join("train_X.bin").is_file()).cloned().ok_or_else(|| DataError::Missing {
        what: format!("{DIR_NAME}/train_X.bin"),
        looked: candidates.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
        how_to_get: HOW_TO_GET.into(),
    })
}

fn missing(path: &Path) -> DataError {
    DataError::Missing {
        what: path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(),
        looked: path.display().to_string(),
        how_to_get: HOW_TO_GET.into(),
    }
}

impl Stl10 {
    /// Reads one split from `dir` (a `stl10_binary` folder).
    pub fn load(dir: &Path, split: Stl10Split) -> Result<Self> {
        let x_path = dir.join(format!("{}_X.bin", split.stem()));
        if !x_path.is_file() {
            return Err(missing(&x_path));
        }
        let bytes = read_file(&x_path)?;
        if bytes.is_empty() || bytes.len() % IMAGE_BYTES != 0 {
            return Err(DataError::Format {
                source_name: x_path.display().to_string(),
                reason: format!("{} bytes is not a whole number of {IMAGE_BYTES}-byte images (truncated download?)", bytes.len()),
            });
        }
        let len = bytes.len() / IMAGE_BYTES;
        let labels = match split {
            Stl10Split::Unlabeled => None,
            _ => {
                let y_path = dir.join(format!("{}_y.bin", split.stem()));
                if !y_path.is_file() {
                    return Err(missing(&y_path));
                }
                let y = read_file(&y_path)?;
                let fmt = |reason: String| DataError::Format { source_name: y_path.display().to_string(), reason };
                if y.len() != len {
                    return Err(fmt(format!("{} labels for {len} images", y.len())));
                }
                if let Some(i) = y.iter().position(|&l| !(1..=CLASSES as u8).contains(&l)) {
                    return Err(fmt(format!("label {} of image {i} is outside 1..={CLASSES}", y[i])));
                }
                Some(y.into_iter().map(|l| l - 1).collect())
            }
        };
        Ok(Self { len, bytes, labels })
    }

    /// Pixel value of image `i`, channel `c` (0 = R), at (`row`, `col`).
    pub fn pixel(&self, i: usize, c: usize, row: usize, col: usize) -> u8 {
        self.bytes[i * IMAGE_BYTES + c * SIDE * SIDE + col * SIDE + row]
    }

    /// Images `range` as row-major (n, 3, 96, 96) floats in [0, 1], the layout conv nets expect.
    pub fn to_chw_f32(&self, range: std::ops::Range<usize>) -> Vec<f32> {
        let mut out = Vec::with_capacity(range.len() * IMAGE_BYTES);
        for i in range {
            for c in 0..CHANNELS {
                for row in 0..SIDE {
                    out.extend((0..SIDE).map(|col| self.pixel(i, c, row, col) as f32 / 255.0));
                }
            }
        }
        out
    }

    /// Images `range` as row-major (n, 96, 96, 3) floats in [0, 1]: channels last, the layout of
    /// `ode-classifier`'s rows.
    pub fn to_hwc_f32(&self, range: std::ops::Range<usize>) -> Vec<f32> {
        let mut out = Vec::with_capacity(range.len() * IMAGE_BYTES);
        for i in range {
            for row in 0..SIDE {
                for col in 0..SIDE {
                    out.extend((0..CHANNELS).map(|c| self.pixel(i, c, row, col) as f32 / 255.0));
                }
            }
        }
        out
    }
}

/// The ten predefined training folds from `fold_indices.txt` (0-based indices into `train`).
pub fn load_folds(dir: &Path, train_len: usize) -> Result<Vec<Vec<usize>>> {
    let path = dir.join("fold_indices.txt");
    if !path.is_file() {
        return Err(missing(&path));
    }
    let text = String::from_utf8(read_file(&path)?)
        .map_err(|_| DataError::Format { source_name: path.display().to_string(), reason: "not UTF-8 text".into() })?;
    let fmt = |reason: String| DataError::Format { source_name: path.display().to_string(), reason };
    let folds = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(k, line)| {
            line.split_whitespace()
                .map(|tok| match tok.parse::<usize>() {
                    Ok(i) if i < train_len => Ok(i),
                    _ => Err(fmt(format!("fold {k}: '{tok}' is not an index below {train_len}"))),
                })
                .collect::<Result<Vec<_>>>()
        })
        .collect::<Result<Vec<_>>>()?;
    if folds.len() != 10 {
        return Err(fmt(format!("{} folds, expected 10", folds.len())));
    }
    Ok(folds)
}
