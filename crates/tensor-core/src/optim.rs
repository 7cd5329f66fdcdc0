//! The simulation-free training loop shared by regression-type models (flow matching, score
//! matching): AdamW on a `VarMap`, one loss per iteration, stop with a typed error on the first
//! non-finite loss instead of training on NaN.

use crate::error::Error;
use candle_core::{DType, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarMap};

/// Minimises `loss(iteration)` over the variables of `varmap` with AdamW (learning rate `lr`, no
/// weight decay) for `iters` iterations; returns the loss per iteration. The loss closure keeps
/// its caller's error type.
pub fn minimize<E: From<Error> + From<candle_core::Error>>(varmap: &VarMap, lr: f64, iters: usize, mut loss: impl FnMut(usize) -> std::result::Result<Tensor, E>) -> std::result::Result<Vec<f64>, E> {
    if iters == 0 || !(lr > 0.0 && lr.is_finite()) {
        return Err(Error::Config(format!("minimize needs iters ≥ 1 and a finite lr > 0, got {iters} and {lr}")).into());
    }
    let mut opt = AdamW::new(varmap.all_vars(), ParamsAdamW { lr, weight_decay: 0.0, ..Default::default() })?;
    let mut losses = Vec::with_capacity(iters);
    for it in 0..iters {
        let l = loss(it)?;
        let value = l.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        if !value.is_finite() {
            return Err(Error::Config(format!("non-finite loss {value} at iteration {}: lower the learning rate or check the data for NaN", it + 1)).into());
        }
        opt.backward_step(&l)?;
        losses.push(value);
    }
    Ok(losses)
}
