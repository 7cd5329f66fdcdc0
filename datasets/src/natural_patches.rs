//! The embedded default standing in for BSDS300: MAF's preprocessing (after Uria et al. 2013)
//! applied to real photographs shipped with continuum (`datasets/natural-images/`, public domain
//! and CC0, licences in that folder's README):
//!
//! 8 × 8 grayscale patch p ∈ {0…255}⁶⁴ → x = (p + u)/256 with u ~ U[0, 1)⁶⁴ (dequantisation) →
//! x − mean(x) (patch mean removed) → drop the bottom-right pixel (the coordinates sum to zero,
//! so it is redundant) → d = 63.
//!
//! Splits are disjoint image regions: the top 80 % of every image's rows feed `train`, the next
//! 10 % `validation`, the last 10 % `test`. Every output built from this data must say
//! [`SOURCE`], never "BSDS300".

use crate::error::{DataError, Result};
use crate::{Matrix, Splits};
use image::GrayImage;
use rand::{Rng, SeedableRng};
use std::sync::OnceLock;

/// The label this data set carries in every table and plot.
pub const SOURCE: &str = "natural-patches (BSDS300 stand-in)";
/// Patch side.
pub const PATCH: usize = 8;
/// Sample dimension: 8·8 − 1.
pub const DIM: usize = PATCH * PATCH - 1;

const IMAGES: [(&str, &[u8]); 9] = [
    ("astronaut.png", include_bytes!("../natural-images/astronaut.png")),
    ("brick.png", include_bytes!("../natural-images/brick.png")),
    ("camera.png", include_bytes!("../natural-images/camera.png")),
    ("chelsea.png", include_bytes!("../natural-images/chelsea.png")),
    ("coffee.png", include_bytes!("../natural-images/coffee.png")),
    ("grass.png", include_bytes!("../natural-images/grass.png")),
    ("gravel.png", include_bytes!("../natural-images/gravel.png")),
    ("hubble_deep_field.jpg", include_bytes!("../natural-images/hubble_deep_field.jpg")),
    ("rocket.jpg", include_bytes!("../natural-images/rocket.jpg")),
];

fn images() -> Result<&'static [GrayImage]> {
    static DECODED: OnceLock<std::result::Result<Vec<GrayImage>, String>> = OnceLock::new();
    DECODED
        .get_or_init(|| {
            IMAGES
                .iter()
                .map(|(name, bytes)| {
                    image::load_from_memory(bytes).map(|im| im.to_luma8()).map_err(|e| format!("embedded image {name}: {e}"))
                })
                .collect()
        })
        .as_deref()
        .map_err(|e| DataError::Format { source_name: SOURCE.into(), reason: e.clone() })
}

/// How many patches each split gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PatchCounts {
    /// Training patches.
    pub train: usize,
    /// Validation patches.
    pub validation: usize,
    /// Test patches.
    pub test: usize,
}

impl PatchCounts {
    /// BSDS300's own split sizes: 1,000,000 / 50,000 / 250,000.
    pub const BSDS300: PatchCounts = PatchCounts { train: 1_000_000, validation: 50_000, test: 250_000 };
}

/// The row band [start, end) of an image of height `h` that a split draws from.
fn band(h: usize, split: usize) -> (usize, usize) {
    let cut = [0, h * 8 / 10, h * 9 / 10, h];
    (cut[split], cut[split + 1])
}

fn extract(n: usize, split: usize, rng: &mut rand::rngs::StdRng) -> Result<Matrix> {
    let imgs = images()?;
    let mut data = Vec::with_capacity(n * DIM);
    let mut patch = [0f64; PATCH * PATCH];
    for _ in 0..n {
        let img = &imgs[rng.random_range(0..imgs.len())];
        let (w, h) = (img.width() as usize, img.height() as usize);
        let (top, bottom) = band(h, split);
        let y0 = rng.random_range(top..=bottom - PATCH);
        let x0 = rng.random_range(0..=w - PATCH);
        for (k, v) in patch.iter_mut().enumerate() {
            let pixel = img.get_pixel((x0 + k % PATCH) as u32, (y0 + k / PATCH) as u32)[0];
            *v = (pixel as f64 + rng.random::<f64>()) / 256.0;
        }
        let mean = patch.iter().sum::<f64>() / patch.len() as f64;
        data.extend(patch[..DIM].iter().map(|v| (v - mean) as f32));
    }
    Ok(Matrix { data, rows: n, cols: DIM })
}

/// Train/validation/test patches from seed `seed`; the same seed gives the same data.
pub fn generate(counts: PatchCounts, seed: u64) -> Result<Splits> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    Ok(Splits {
        train: extract(counts.train, 0, &mut rng)?,
        validation: extract(counts.validation, 1, &mut rng)?,
        test: extract(counts.test, 2, &mut rng)?,
        source: SOURCE.into(),
    })
}

/// Names of the embedded photographs.
pub fn image_names() -> Vec<&'static str> {
    IMAGES.iter().map(|(n, _)| *n).collect()
}
