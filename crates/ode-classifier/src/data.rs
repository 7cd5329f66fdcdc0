//! Labelled images as rows of one matrix — the label, then the H·W·C pixels channels-last — so
//! the training loop draws, shards and validates them like any data; normalization and the
//! seeded augmentation (random crop of the zero-padded image, horizontal flips).

use crate::config::{Augment, ClassifierConfig};
use crate::error::{ClassifierError, Result};
use candle_core::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};

/// The training matrix of `labels` and `pixels` (one row of H·W·C channels-last values per
/// image): (N, 1 + H·W·C) f32, the label in column 0.
pub fn labelled_rows(labels: &[u8], pixels: &[f32], config: &ClassifierConfig, device: &Device) -> Result<Tensor> {
    let p = config.pixels();
    if pixels.len() != labels.len() * p {
        return Err(ClassifierError::Data(format!(
            "{} labels need {} pixel values ({p} per image), got {}",
            labels.len(),
            labels.len() * p,
            pixels.len()
        )));
    }
    if let Some(bad) = labels.iter().find(|&&l| l as usize >= config.classes) {
        return Err(ClassifierError::Data(format!("label {bad} is not one of the {} classes", config.classes)));
    }
    let mut rows = Vec::with_capacity(labels.len() * (p + 1));
    for (label, image) in labels.iter().zip(pixels.chunks(p)) {
        rows.push(*label as f32);
        rows.extend_from_slice(image);
    }
    Ok(Tensor::from_vec(rows, (labels.len(), p + 1), device)?)
}

/// Splits labelled rows into images (B, H, W, C) (f64 rows stay f64, others become f32) and
/// labels (B) as u32.
pub fn images_and_labels(rows: &Tensor, config: &ClassifierConfig) -> Result<(Tensor, Tensor)> {
    let (b, cols) =
        rows.dims2().map_err(|_| ClassifierError::Data(format!("labelled rows must be a matrix, got shape {:?}", rows.dims())))?;
    if cols != config.pixels() + 1 {
        return Err(ClassifierError::Data(format!(
            "rows of {cols} values; a {}×{}×{} image with its label needs {}",
            config.height,
            config.image_width,
            config.channels,
            config.pixels() + 1
        )));
    }
    let rows = if rows.dtype() == DType::F64 { rows.clone() } else { rows.to_dtype(DType::F32)? };
    let labels = rows.narrow(1, 0, 1)?.squeeze(1)?.to_dtype(DType::F32)?;
    let values = labels.to_vec1::<f32>()?;
    if let Some(bad) = values.iter().find(|l| !(l.fract() == 0.0 && **l >= 0.0 && (**l as usize) < config.classes)) {
        return Err(ClassifierError::Data(format!("label {bad} in column 0 is not one of the {} classes", config.classes)));
    }
    let images = rows.narrow(1, 1, config.pixels())?.reshape((b, config.height, config.image_width, config.channels))?;
    Ok((images, labels.to_dtype(DType::U32)?))
}

/// Per-channel mean and (population) standard deviation of channels-last pixel rows, for the
/// configuration's normalisation: compute them on the training split only.
pub fn channel_statistics(pixels: &[f32], channels: usize) -> Result<(Vec<f32>, Vec<f32>)> {
    if channels == 0 || pixels.is_empty() || !pixels.len().is_multiple_of(channels) {
        return Err(ClassifierError::Data(format!("{} pixel values cannot be split into {channels} channels", pixels.len())));
    }
    let n = (pixels.len() / channels) as f64;
    let mut sum = vec![0f64; channels];
    let mut sq = vec![0f64; channels];
    for px in pixels.chunks(channels) {
        for (c, &v) in px.iter().enumerate() {
            sum[c] += v as f64;
            sq[c] += (v as f64) * (v as f64);
        }
    }
    let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
    let std = sq.iter().zip(&mean).map(|(q, m)| ((q / n - m * m).max(0.0)).sqrt() as f32).collect();
    Ok((mean.into_iter().map(|m| m as f32).collect(), std))
}

/// (x − mean_c) / std_c per channel.
pub fn normalize(images: &Tensor, config: &ClassifierConfig) -> Result<Tensor> {
    let dev = images.device();
    let mean = Tensor::new(config.mean.as_slice(), dev)?.to_dtype(images.dtype())?;
    let std = Tensor::new(config.std.as_slice(), dev)?.to_dtype(images.dtype())?;
    Ok(images.broadcast_sub(&mean)?.broadcast_div(&std)?)
}

/// Each image of (B, H, W, C) shifted by a random (dy, dx) ∈ [−pad, pad]² with zeros coming in
/// (a random crop of the image padded by `pad`), then mirrored left–right with probability ½
/// when `flip`; the draws come from `seed`.
pub fn augment(images: &Tensor, augment: &Augment, seed: u64) -> Result<Tensor> {
    if augment.pad == 0 && !augment.flip {
        return Ok(images.clone());
    }
    let (b, h, w, c) = images.dims4()?;
    let src = images.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    let mut out = vec![0f32; src.len()];
    let mut rng = rand_chacha::ChaCha12Rng::seed_from_u64(seed);
    let pad = augment.pad as i64;
    for n in 0..b {
        let (dy, dx) = (rng.random_range(-pad..=pad) as isize, rng.random_range(-pad..=pad) as isize);
        let flip = augment.flip && rng.random_bool(0.5);
        for i in 0..h as isize {
            let si = i + dy;
            if si < 0 || si >= h as isize {
                continue;
            }
            for j in 0..w as isize {
                let sj = j + dx;
                if sj < 0 || sj >= w as isize {
                    continue;
                }
                let tj = if flip { w as isize - 1 - j } else { j };
                let from = ((n * h + si as usize) * w + sj as usize) * c;
                let to = ((n * h + i as usize) * w + tj as usize) * c;
                out[to..to + c].copy_from_slice(&src[from..from + c]);
            }
        }
    }
    Ok(Tensor::from_vec(out, (b, h, w, c), images.device())?.to_dtype(images.dtype())?)
}
