//! The 1,797 real 8×8 handwritten digits of UCI's "Optical Recognition of Handwritten Digits"
//! (Alpaydin & Kaynak, 1998; CC BY 4.0, attribution in `datasets/digits/README.md`), embedded:
//! a real image-classification set small enough for a CPU, standing in for STL-10 when its
//! files are absent (every output made on it must say "digits (STL-10 absent)").

use crate::error::{DataError, Result};
use crate::Matrix;
use std::io::Read;

/// The embedded file: gzip-compressed CSV, 64 pixel counts then the label per row.
const EMBEDDED: &[u8] = include_bytes!("../digits/digits.csv.gz");

/// Image side: the images are 8 × 8, one channel.
pub const SIDE: usize = 8;
/// Classes 0–9.
pub const CLASSES: usize = 10;
/// Largest pixel count (each pixel counts set bits in a 4 × 4 block of a 32 × 32 bitmap).
pub const MAX_PIXEL: f32 = 16.0;

/// Labelled images: `images` has one row of 64 row-major pixels per image, scaled to [0, 1].
#[derive(Clone, Debug)]
pub struct Digits {
    pub images: Matrix,
    pub labels: Vec<u8>,
}

impl Digits {
    /// The embedded data set (1,797 images).
    pub fn embedded() -> Result<Self> {
        let mut text = String::new();
        flate2::read::GzDecoder::new(EMBEDDED)
            .read_to_string(&mut text)
            .map_err(|e| DataError::Format { source_name: "embedded digits.csv.gz".into(), reason: format!("cannot decompress ({e})") })?;
        Self::parse_csv(&text, "embedded digits.csv.gz")
    }

    /// Rows of 64 pixel counts in 0–16 and a label in 0–9, comma-separated; `source` names the
    /// input in errors.
    pub fn parse_csv(text: &str, source: &str) -> Result<Self> {
        let err = |line: usize, reason: String| DataError::Format { source_name: source.into(), reason: format!("line {line}: {reason}") };
        let mut data = Vec::new();
        let mut labels = Vec::new();
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let fields: Vec<&str> = line.split(',').map(str::trim).collect();
            if fields.len() != SIDE * SIDE + 1 {
                return Err(err(i + 1, format!("{} fields, expected {} pixels and a label", fields.len(), SIDE * SIDE)));
            }
            for f in &fields[..SIDE * SIDE] {
                let v: f32 = f.parse().map_err(|_| err(i + 1, format!("pixel '{f}' is not a number")))?;
                if !(0.0..=MAX_PIXEL).contains(&v) {
                    return Err(err(i + 1, format!("pixel {v} outside 0–{MAX_PIXEL}")));
                }
                data.push(v / MAX_PIXEL);
            }
            let label = fields[SIDE * SIDE];
            match label.parse::<f64>() {
                Ok(l) if l.fract() == 0.0 && (0.0..CLASSES as f64).contains(&l) => labels.push(l as u8),
                _ => return Err(err(i + 1, format!("label '{label}' is not a class 0–{}", CLASSES - 1))),
            }
        }
        if labels.is_empty() {
            return Err(DataError::Format { source_name: source.into(), reason: "no images".into() });
        }
        Ok(Self { images: Matrix::new(data, labels.len(), SIDE * SIDE)?, labels })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images (never, for a parsed set).
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The images and labels at `ids`, in that order.
    pub fn select(&self, ids: &[usize]) -> Self {
        Self { images: self.images.select(ids), labels: ids.iter().map(|&i| self.labels[i]).collect() }
    }

    /// The images enlarged `factor` times by pixel replication (nearest neighbour): rows of
    /// (8·factor)² pixels, row-major; the labels unchanged. A factor of 0 is refused.
    pub fn upsampled(&self, factor: usize) -> Result<Self> {
        if factor == 0 {
            return Err(DataError::Config("an upsampling factor must be at least 1".into()));
        }
        let side = SIDE * factor;
        let mut data = Vec::with_capacity(self.images.data.len() * factor * factor);
        for image in self.images.data.chunks(SIDE * SIDE) {
            for i in 0..side {
                data.extend((0..side).map(|j| image[(i / factor) * SIDE + j / factor]));
            }
        }
        Ok(Self { images: Matrix::new(data, self.len(), side * side)?, labels: self.labels.clone() })
    }

    /// Train / validation / test index sets: shuffled with `seed`, then cut per class so every
    /// split has each class in proportion (the first `test_fraction` of each class to test, the
    /// next `validation_fraction` to validation, the rest to training).
    pub fn stratified_split(&self, validation_fraction: f64, test_fraction: f64, seed: u64) -> Result<[Vec<usize>; 3]> {
        use rand::{seq::SliceRandom, SeedableRng};
        if !(validation_fraction > 0.0 && test_fraction > 0.0 && validation_fraction + test_fraction < 1.0) {
            return Err(DataError::Config(format!(
                "validation and test fractions {validation_fraction} and {test_fraction} must be positive and leave training data"
            )));
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut splits: [Vec<usize>; 3] = Default::default();
        for class in 0..CLASSES as u8 {
            let mut ids: Vec<usize> = (0..self.len()).filter(|&i| self.labels[i] == class).collect();
            ids.shuffle(&mut rng);
            let n_test = (ids.len() as f64 * test_fraction).round() as usize;
            let n_val = (ids.len() as f64 * validation_fraction).round() as usize;
            splits[2].extend(&ids[..n_test]);
            splits[1].extend(&ids[n_test..n_test + n_val]);
            splits[0].extend(&ids[n_test + n_val..]);
        }
        for s in &mut splits {
            s.shuffle(&mut rng);
        }
        Ok(splits)
    }
}
