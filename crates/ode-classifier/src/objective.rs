//! The classifier as the training loop's [`Objective`]: cross-entropy of the augmented
//! minibatch through the three ODE blocks, gradients by any [`train::GradientMode`] (the blocks'
//! backward passes chained in reverse), error rate on held-out rows.

use crate::data::{augment, images_and_labels, normalize};
use crate::error::ClassifierError;
use crate::model::ParabolicCnn;
use candle_core::{DType, Tensor};
use mixed_precision_adjoint::DynamicScaler;
use train::{Metrics, Objective, Step, StepOutput, TrainError};

impl Objective for ParabolicCnn {
    type Error = ClassifierError;

    fn solves(&self) -> usize {
        3
    }

    /// Mean cross-entropy of the batch's logits (f32) against its labels; the layers and fields
    /// evaluate in `step.dtype`, the ODE states stay in f32.
    fn value_and_grad(&self, batch: &Tensor, step: &Step<'_>, scalers: &mut [DynamicScaler]) -> train::Result<StepOutput> {
        let m = TrainError::model;
        let (images, labels) = images_and_labels(batch, self.config()).map_err(m)?;
        let x = normalize(&augment(&images, &self.config().augment, step.seed).map_err(m)?, self.config()).map_err(m)?;
        let fields = self.fields(step.dtype).map_err(m)?;
        let forward = self.forward(&x, &fields, step.method, step.grid, step.mode, step.dtype).map_err(m)?;
        let loss = candle_nn::loss::cross_entropy(&forward.logits, &labels)?;
        let mut grads = loss.backward()?;
        let mut degraded = false;
        for (solve, scaler) in forward.solves.iter().zip(scalers.iter_mut()).rev() {
            degraded |= solve.backward(step.params, scaler, &mut grads)?.is_some_and(|r| r.degraded());
        }
        Ok(StepOutput { loss, grads, degraded })
    }

    /// `error` (1 − accuracy, the objective) and `cross_entropy`, evaluated in f32.
    fn validate(&self, x: &Tensor, steps: usize) -> Result<Metrics, ClassifierError> {
        let e = self.evaluate(x, steps, DType::F32)?;
        Ok(Metrics::new("error", &[("error", 1.0 - e.accuracy), ("cross_entropy", e.cross_entropy)]))
    }
}
