//! [`ClassifierConfig`]: everything that defines a parabolic-CNN classifier (a model file holds
//! it), with the STL-10 preset of rampde's experiment and the scaled-down digits preset.

use crate::error::{ClassifierError, Result};
use serde::{Deserialize, Serialize};

/// The training-time augmentation: a random crop of the image padded by `pad` zero pixels on
/// each side (a random shift by up to `pad` pixels), and a horizontal flip with probability ½.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Augment {
    pub pad: usize,
    pub flip: bool,
}

/// What the linear classifier sees of the last block's state (B, h, w, 4·`width`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Head {
    /// The per-channel mean over the pixels (rampde's `AdaptiveAvgPool2d(1)`): 4·`width`
    /// features.
    #[default]
    GlobalAverage,
    /// Every pixel of every channel, h·w·4·`width` features. Instance norm leaves each
    /// channel's mean nearly fixed, so on small images the global average keeps little of the
    /// state; the digits preset keeps the 4×4 (or 2×2) layout instead.
    Flatten,
}

/// A parabolic CNN: stem (3×3 conv, instance norm, ReLU), three ODE blocks of `width`, 2·`width`
/// and 4·`width` channels joined by 1×1 conv, instance norm, ReLU and 2×2 average pooling,
/// then the [`Head`] and a linear classifier.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassifierConfig {
    /// Image height, width and channels (the data's rows are these pixels, channels last).
    pub height: usize,
    pub image_width: usize,
    pub channels: usize,
    pub classes: usize,
    /// Channels of the first ODE block (rampde's `--width`).
    pub width: usize,
    /// Intervals of [0, 1] on which each block's weights are constant (rampde: 4, one per RK4
    /// step of its grid).
    pub intervals: usize,
    /// Per-channel mean and standard deviation subtracted and divided before the stem.
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    pub augment: Augment,
    /// Global average pooling (rampde) or the flattened last state.
    #[serde(default)]
    pub head: Head,
}

impl ClassifierConfig {
    /// rampde's STL-10 network (`paper/stl10/ode_stl10.py` with `run_experiment.sh`'s width
    /// 128): 96×96 RGB, 10 classes, 4 intervals, ≈ 12.6 M parameters; STL-10's channel
    /// statistics; crop padding 12 and horizontal flips.
    pub fn stl10() -> Self {
        Self {
            height: 96,
            image_width: 96,
            channels: 3,
            classes: 10,
            width: 128,
            intervals: 4,
            mean: vec![0.4467, 0.4398, 0.4066],
            std: vec![0.2241, 0.2210, 0.2239],
            augment: Augment { pad: 12, flip: true },
            head: Head::GlobalAverage,
        }
    }

    /// The same family scaled to one-channel digit images of `side` × `side` pixels (8, or the
    /// 8×8 digits enlarged): blocks at side, side/2 and side/4 pixels of `width`, 2·`width`,
    /// 4·`width` channels; shifts by up to side/8 pixels, no flips (a mirrored digit is not a
    /// digit); the flattened last state as the classifier's input ([`Head::Flatten`]); `mean`
    /// and `std` from the training split.
    pub fn digits(side: usize, width: usize, mean: f32, std: f32) -> Self {
        Self {
            height: side,
            image_width: side,
            channels: 1,
            classes: 10,
            width,
            intervals: 4,
            mean: vec![mean],
            std: vec![std],
            augment: Augment { pad: (side / 8).max(1), flip: false },
            head: Head::Flatten,
        }
    }

    /// Pixels per image (H·W·C): a data row is the label then these.
    pub fn pixels(&self) -> usize {
        self.height * self.image_width * self.channels
    }

    /// Features the linear classifier reads: 4·`width`, or 4·`width` per pixel of the last
    /// block ((H/4)·(W/4)) for [`Head::Flatten`].
    pub fn head_features(&self) -> usize {
        match self.head {
            Head::GlobalAverage => 4 * self.width,
            Head::Flatten => 4 * self.width * (self.height / 4) * (self.image_width / 4),
        }
    }

    /// The number of trained parameters the configuration defines.
    pub fn parameter_count(&self) -> usize {
        let (c, w) = (self.channels, self.width);
        let block = |ch: usize| self.intervals * (9 * ch * ch + ch);
        (9 * c * w + w)
            + 2 * w
            + block(w)
            + (w * 2 * w + 2 * w)
            + 4 * w
            + block(2 * w)
            + (2 * w * 4 * w + 4 * w)
            + 8 * w
            + block(4 * w)
            + (self.head_features() * self.classes + self.classes)
    }

    /// Refuses a configuration that cannot describe a network, naming the setting.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(ClassifierError::Config(m));
        for (name, v) in [("channels", self.channels), ("classes", self.classes), ("width", self.width), ("intervals", self.intervals)] {
            if v == 0 {
                return bad(format!("{name} must be at least 1"));
            }
        }
        if !self.height.is_multiple_of(4) || !self.image_width.is_multiple_of(4) || self.height < 8 || self.image_width < 8 {
            return bad(format!(
                "images of {}×{} pixels: two 2×2 poolings need height and width divisible by 4 and at least 8 (the last block's instance norm needs 2×2 pixels)",
                self.height, self.image_width
            ));
        }
        if self.mean.len() != self.channels || self.std.len() != self.channels {
            return bad(format!(
                "mean and std need one value per channel ({}), got {} and {}",
                self.channels,
                self.mean.len(),
                self.std.len()
            ));
        }
        if self.std.iter().any(|s| !(*s > 0.0 && s.is_finite())) || self.mean.iter().any(|m| !m.is_finite()) {
            return bad(format!("mean must be finite and std finite and positive, got {:?} and {:?}", self.mean, self.std));
        }
        if 2 * self.augment.pad >= self.height.min(self.image_width) {
            return bad(format!("crop padding {} is too large for {}×{} images", self.augment.pad, self.height, self.image_width));
        }
        Ok(())
    }
}
