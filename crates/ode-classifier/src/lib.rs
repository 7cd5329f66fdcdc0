//! `ode-classifier`: neural-ODE image classifiers — the parabolic CNN of "Deep Neural Networks
//! Motivated by Partial Differential Equations" (Ruthotto & Haber, 2020) as rampde's STL-10
//! experiment trains it ("Mixed Precision Training of Neural ODEs"), in every gradient mode and
//! precision of the workspace.
//!
//! - [`ClassifierConfig`]: the network (STL-10 preset, ≈ 12.6 M parameters; the digits
//!   preset scaled to 8×8 images).
//! - [`ParabolicBlock`]: y' = −K(t)ᵀ IN(ReLU(K(t) y + b(t))) with weights piecewise constant on
//!   the intervals of [0, 1]; [`ParabolicCnn`]: stem, three blocks, connectors, classifier.
//! - [`data`]: labelled images as rows of one matrix (label, then pixels), normalization and
//!   seeded augmentation.
//! - The model is a [`train::Objective`]: [`train::train_objective`] trains it with SGD and
//!   momentum, a cosine schedule, best-on-validation parameters and checkpoints; the three
//!   blocks' adjoints are chained by [`train::BlockSolve`], so full graph, the checkpointed
//!   adjoint and the mixed-precision adjoint (bf16, f16 with dynamic scaling) all work.
//!
//! Fitting 16 of the embedded 8×8 digits (the whole set is the batch) with the mixed-precision
//! adjoint in bf16:
//!
//! ```
//! use candle_core::{DType, Device};
//! use datasets::digits::Digits;
//! use ode_classifier::{data::labelled_rows, Augment, ClassifierConfig, ParabolicCnn};
//! use tensor_core::{Precision, PrecisionPolicy};
//! use train::{train_objective, GradientMode, TrainConfig};
//!
//! let digits = Digits::embedded()?.select(&(10..26).collect::<Vec<_>>());
//! let mut config = ClassifierConfig::digits(8, 3, 0.3, 0.4);
//! config.augment = Augment { pad: 0, flip: false };
//! let rows = labelled_rows(&digits.labels, &digits.images.data, &config, &Device::Cpu)?;
//! let (model, varmap) = ParabolicCnn::init(config, 5, DType::F32, &Device::Cpu)?;
//! let mode = GradientMode::Mixed { policy: PrecisionPolicy::new(Precision::Bf16, Precision::F32)?, scaled: true };
//! let cfg = TrainConfig::default().iters(60).batch(16).lr(1e-2).steps(4).val_steps(4).val_every(10).mode(mode);
//! let out = train_objective(&model, &varmap, &rows, &rows, &cfg, false, &mut |_| {})?;
//! let error = out.best.unwrap().1.get("error").unwrap();
//! assert!(error <= 0.4, "training error {error} (chance: 0.9)");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod block;
pub mod config;
pub mod data;
pub mod error;
pub mod model;
mod objective;

pub use block::{ParabolicBlock, ParabolicField};
pub use config::{Augment, ClassifierConfig, Head};
pub use error::{ClassifierError, Result};
pub use model::{Evaluation, ParabolicCnn};
