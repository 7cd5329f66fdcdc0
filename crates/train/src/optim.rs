//! The optimisers of the training loop, behind one [`Optimizer`] trait whose state (moments,
//! momentum buffers, step count) a checkpoint holds: [`Adam`] (Kingma & Ba, "Adam: A Method for
//! Stochastic Optimization", 2015) and [`Sgd`] with momentum and weight decay; and `minimize`,
//! the loop of simulation-free training (flow matching, score matching).
//!
//! The update is candle-nn's `AdamW` with no weight decay, operation for operation, so runs are
//! bit-identical to it: m ← β₁m + (1 − β₁)g, v ← β₂v + (1 − β₂)g²,
//! θ ← θ − lr·(m/(1 − β₁ᵗ)) / (√(v/(1 − β₂ᵗ)) + ε).

use crate::error::{Result, TrainError};
use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, Var};
use candle_nn::VarMap;
use std::collections::HashMap;

/// Adam's state for one variable.
struct Moments {
    name: String,
    var: Var,
    m: Var,
    v: Var,
}

/// Adam with β = (0.9, 0.999), ε = 1e-8 and no weight decay.
pub struct Adam {
    vars: Vec<Moments>,
    step: usize,
    lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
}

impl Adam {
    /// Adam over every float variable of `varmap` (in name order) with learning rate `lr`.
    pub fn new(varmap: &VarMap, lr: f64) -> Result<Self> {
        check_lr(lr)?;
        let mut vars = Vec::new();
        for (name, var) in float_vars(varmap) {
            let zeros = || Var::zeros(var.shape(), var.dtype(), var.device());
            vars.push(Moments { name, m: zeros()?, v: zeros()?, var });
        }
        Ok(Self { vars, step: 0, lr, beta1: 0.9, beta2: 0.999, eps: 1e-8 })
    }

    /// The learning rate.
    pub fn learning_rate(&self) -> f64 {
        self.lr
    }

    /// Sets the learning rate (finite and positive).
    pub fn set_learning_rate(&mut self, lr: f64) -> Result<()> {
        check_lr(lr)?;
        self.lr = lr;
        Ok(())
    }

    /// Steps taken so far (t in the bias corrections).
    pub fn steps_taken(&self) -> usize {
        self.step
    }

    /// One update from the gradients in `grads` (variables without a gradient keep their value).
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.step += 1;
        let scale_m = 1f64 / (1f64 - self.beta1.powi(self.step as i32));
        let scale_v = 1f64 / (1f64 - self.beta2.powi(self.step as i32));
        for s in &self.vars {
            let Some(g) = grads.get(&s.var) else { continue };
            let m = ((s.m.as_tensor() * self.beta1)? + (g * (1.0 - self.beta1))?)?;
            let v = ((s.v.as_tensor() * self.beta2)? + (g.sqr()? * (1.0 - self.beta2))?)?;
            let update = ((&m * scale_m)? / ((&v * scale_v)?.sqrt()? + self.eps)?)?;
            let theta = (s.var.as_tensor() - (update * self.lr)?)?;
            s.m.set(&m)?;
            s.v.set(&v)?;
            s.var.set(&theta)?;
        }
        Ok(())
    }

    /// The moments as named tensors (`adam.m/<var>`, `adam.v/<var>`), for a checkpoint.
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        self.vars
            .iter()
            .flat_map(|s| {
                [(format!("adam.m/{}", s.name), s.m.as_tensor().clone()), (format!("adam.v/{}", s.name), s.v.as_tensor().clone())]
            })
            .collect()
    }

    /// Restores the moments from `tensors` (as [`Adam::state_tensors`] names them) and the step
    /// count; every moment must be present with its variable's shape.
    pub fn restore(&mut self, tensors: &HashMap<String, Tensor>, step: usize) -> Result<()> {
        for s in &self.vars {
            for (kind, target) in [("m", &s.m), ("v", &s.v)] {
                restore_state(tensors, &format!("adam.{kind}/{}", s.name), target)?;
            }
        }
        self.step = step;
        Ok(())
    }
}

/// What the training loop needs from an optimiser: a step from a `GradStore`, the learning rate,
/// and its state as named tensors for checkpoints.
pub trait Optimizer {
    /// One update from the gradients in `grads` (variables without a gradient keep their value).
    fn step(&mut self, grads: &GradStore) -> Result<()>;
    /// The learning rate.
    fn learning_rate(&self) -> f64;
    /// Sets the learning rate (finite and positive).
    fn set_learning_rate(&mut self, lr: f64) -> Result<()>;
    /// Steps taken so far.
    fn steps_taken(&self) -> usize;
    /// The state as named tensors, for a checkpoint.
    fn state_tensors(&self) -> Vec<(String, Tensor)>;
    /// Restores the state from `tensors` (as `state_tensors` names them) and the step count.
    fn restore(&mut self, tensors: &HashMap<String, Tensor>, step: usize) -> Result<()>;
}

impl Optimizer for Adam {
    fn step(&mut self, grads: &GradStore) -> Result<()> {
        Adam::step(self, grads)
    }
    fn learning_rate(&self) -> f64 {
        self.lr
    }
    fn set_learning_rate(&mut self, lr: f64) -> Result<()> {
        Adam::set_learning_rate(self, lr)
    }
    fn steps_taken(&self) -> usize {
        self.step
    }
    fn state_tensors(&self) -> Vec<(String, Tensor)> {
        Adam::state_tensors(self)
    }
    fn restore(&mut self, tensors: &HashMap<String, Tensor>, step: usize) -> Result<()> {
        Adam::restore(self, tensors, step)
    }
}

/// Which optimiser the training loop uses ([`crate::TrainConfig::optimizer`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OptimizerKind {
    /// [`Adam`] (the default: OT-Flow, CNFs).
    Adam,
    /// [`Sgd`] with `momentum` μ and `weight_decay` λ (image classifiers).
    Sgd { momentum: f64, weight_decay: f64 },
}

impl OptimizerKind {
    /// The optimiser over the float variables of `varmap` with learning rate `lr`.
    pub fn build(self, varmap: &VarMap, lr: f64) -> Result<Box<dyn Optimizer>> {
        Ok(match self {
            Self::Adam => Box::new(Adam::new(varmap, lr)?),
            Self::Sgd { momentum, weight_decay } => Box::new(Sgd::new(varmap, lr, momentum, weight_decay)?),
        })
    }
}

/// Stochastic gradient descent with momentum and weight decay, PyTorch's `torch.optim.SGD`
/// (no dampening, not Nesterov): d ← g + λθ; b ← μb + d (b ← d at the first step);
/// θ ← θ − lr·b. candle-nn's `SGD` has no momentum.
pub struct Sgd {
    /// (name, variable, momentum buffer).
    vars: Vec<(String, Var, Var)>,
    step: usize,
    lr: f64,
    momentum: f64,
    weight_decay: f64,
}

impl Sgd {
    /// SGD over every float variable of `varmap` (in name order): learning rate `lr`, momentum
    /// μ ∈ [0, 1), weight decay λ ≥ 0.
    pub fn new(varmap: &VarMap, lr: f64, momentum: f64, weight_decay: f64) -> Result<Self> {
        check_lr(lr)?;
        if !((0.0..1.0).contains(&momentum) && weight_decay >= 0.0 && weight_decay.is_finite()) {
            return Err(TrainError::Config(format!(
                "SGD needs momentum in [0, 1) and a finite weight decay ≥ 0, got momentum {momentum}, weight decay {weight_decay}"
            )));
        }
        let mut vars = Vec::new();
        for (name, var) in float_vars(varmap) {
            let buffer = Var::zeros(var.shape(), var.dtype(), var.device())?;
            vars.push((name, var, buffer));
        }
        Ok(Self { vars, step: 0, lr, momentum, weight_decay })
    }
}

impl Optimizer for Sgd {
    fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.step += 1;
        for (_, var, buf) in &self.vars {
            let Some(g) = grads.get(var) else { continue };
            let d = if self.weight_decay > 0.0 { (g + (var.as_tensor() * self.weight_decay)?)? } else { g.clone() };
            let b = if self.step == 1 || self.momentum == 0.0 { d } else { ((buf.as_tensor() * self.momentum)? + d)? };
            var.set(&(var.as_tensor() - (&b * self.lr)?)?)?;
            buf.set(&b)?;
        }
        Ok(())
    }
    fn learning_rate(&self) -> f64 {
        self.lr
    }
    fn set_learning_rate(&mut self, lr: f64) -> Result<()> {
        check_lr(lr)?;
        self.lr = lr;
        Ok(())
    }
    fn steps_taken(&self) -> usize {
        self.step
    }
    fn state_tensors(&self) -> Vec<(String, Tensor)> {
        self.vars.iter().map(|(name, _, buf)| (format!("sgd.momentum/{name}"), buf.as_tensor().clone())).collect()
    }
    fn restore(&mut self, tensors: &HashMap<String, Tensor>, step: usize) -> Result<()> {
        for (name, _, buf) in &self.vars {
            restore_state(tensors, &format!("sgd.momentum/{name}"), buf)?;
        }
        self.step = step;
        Ok(())
    }
}

/// The float variables of `varmap` in name order: the order every optimiser keeps its state in.
fn float_vars(varmap: &VarMap) -> Vec<(String, Var)> {
    let data = varmap.data().lock().expect("VarMap mutex poisoned");
    let mut vars: Vec<(String, Var)> = data.iter().filter(|(_, v)| v.dtype().is_float()).map(|(n, v)| (n.clone(), v.clone())).collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}

/// Sets `target` from the checkpoint tensor `key`, which must exist with the target's shape.
fn restore_state(tensors: &HashMap<String, Tensor>, key: &str, target: &Var) -> Result<()> {
    let t = tensors.get(key).ok_or_else(|| TrainError::Config(format!("the checkpoint has no optimiser state '{key}'")))?;
    if t.dims() != target.dims() {
        return Err(TrainError::Config(format!("optimiser state '{key}' has shape {:?}, the model expects {:?}", t.dims(), target.dims())));
    }
    target.set(&t.to_dtype(target.dtype())?.to_device(target.device())?)?;
    Ok(())
}

fn check_lr(lr: f64) -> Result<()> {
    if lr > 0.0 && lr.is_finite() {
        Ok(())
    } else {
        Err(TrainError::Config(format!("the learning rate must be finite and positive, got {lr}")))
    }
}

/// Minimises `loss(iteration)` over the variables of `varmap` with Adam (learning rate `lr`)
/// for `iters` iterations; returns the loss per iteration, or a typed error on the first
/// non-finite loss instead of training on NaN. The loss closure keeps its caller's error type.
pub fn minimize<E: From<TrainError>>(
    varmap: &VarMap,
    lr: f64,
    iters: usize,
    mut loss: impl FnMut(usize) -> std::result::Result<Tensor, E>,
) -> std::result::Result<Vec<f64>, E> {
    if iters == 0 {
        return Err(TrainError::Config("minimize needs at least one iteration".into()).into());
    }
    let mut opt = Adam::new(varmap, lr)?;
    let mut losses = Vec::with_capacity(iters);
    for it in 0..iters {
        let l = loss(it)?;
        let value = l.to_dtype(DType::F64).and_then(|v| v.to_scalar::<f64>()).map_err(TrainError::from)?;
        if !value.is_finite() {
            return Err(TrainError::NonFiniteLoss { iter: it + 1, value }.into());
        }
        let grads = l.backward().map_err(TrainError::from)?;
        opt.step(&grads)?;
        losses.push(value);
    }
    Ok(losses)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::{AdamW, Optimizer, ParamsAdamW};

    /// Same numbers as candle-nn's AdamW without weight decay, bit for bit, over several steps:
    /// every run that trained with it before trains the same now.
    #[test]
    fn adam_equals_candle_adamw_bitwise() -> Result<()> {
        let run = |ours: bool| -> Result<Vec<u32>> {
            let vm = VarMap::new();
            vm.get((3, 4), "w", candle_nn::Init::Const(0.0), DType::F32, &Device::Cpu)?;
            let mut rng = tensor_core::SeededRng::new(1);
            let init = rng.normal((3, 4), DType::F32, &Device::Cpu)?;
            vm.data().lock().unwrap()["w"].set(&init)?;
            let x = rng.normal((5, 3), DType::F32, &Device::Cpu)?;
            let mut adam = Adam::new(&vm, 0.03)?;
            let mut adamw = AdamW::new(vm.all_vars(), ParamsAdamW { lr: 0.03, weight_decay: 0.0, ..Default::default() })?;
            for _ in 0..7 {
                let w = vm.data().lock().unwrap()["w"].as_tensor().clone();
                let loss = x.matmul(&w)?.tanh()?.sqr()?.mean_all()?;
                let grads = loss.backward()?;
                if ours {
                    adam.step(&grads)?;
                } else {
                    adamw.step(&grads)?;
                }
            }
            let w = vm.data().lock().unwrap()["w"].as_tensor().flatten_all()?.to_vec1::<f32>()?;
            Ok(w.iter().map(|v| v.to_bits()).collect())
        };
        assert_eq!(run(true)?, run(false)?);
        Ok(())
    }

    /// SGD with momentum and weight decay against its recursion written out in f64 scalars
    /// (PyTorch's update), on a quadratic whose gradient is known: several steps, one variable.
    #[test]
    fn sgd_momentum_follows_the_pytorch_recursion() -> Result<()> {
        let vm = VarMap::new();
        vm.get(2, "w", candle_nn::Init::Const(0.0), DType::F64, &Device::Cpu)?;
        vm.data().lock().unwrap()["w"].set(&Tensor::new(&[1.5f64, -2.0], &Device::Cpu)?)?;
        let (lr, mu, wd) = (0.1, 0.9, 1e-2);
        let mut sgd = Sgd::new(&vm, lr, mu, wd)?;
        let (mut theta, mut buf) = ([1.5f64, -2.0], [0f64; 2]);
        let curvature = [3.0, 0.5];
        for step in 0..6 {
            let w = vm.data().lock().unwrap()["w"].as_tensor().clone();
            let loss = (w.sqr()? * Tensor::new(&[curvature[0] / 2.0, curvature[1] / 2.0], &Device::Cpu)?)?.sum_all()?;
            super::Optimizer::step(&mut sgd, &loss.backward()?)?;
            for i in 0..2 {
                let d = curvature[i] * theta[i] + wd * theta[i];
                buf[i] = if step == 0 { d } else { mu * buf[i] + d };
                theta[i] -= lr * buf[i];
            }
        }
        let got = vm.data().lock().unwrap()["w"].as_tensor().to_vec1::<f64>()?;
        for i in 0..2 {
            assert!((got[i] - theta[i]).abs() < 1e-14, "{got:?} vs {theta:?}");
        }
        assert!(Sgd::new(&vm, lr, 1.0, 0.0).is_err(), "momentum 1 must be refused");
        Ok(())
    }
}
