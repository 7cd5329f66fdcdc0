//! Seeded parameter creation into a candle-nn `VarMap` (model files and training checkpoints live
//! in the `train` crate).
//!
//! candle-nn's own initialisers draw from the unseedable device RNG; [`ParamBuilder`] draws from
//! a [`SeededRng`] instead, so a model built twice from the same seed is bit-identical. A name
//! that already exists in the `VarMap` (say, loaded from a checkpoint) is reused, shape-checked.

use crate::error::{Error, Result};
use crate::rng::SeededRng;
use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::VarMap;

/// How a fresh parameter is filled.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// Every entry equal to the constant.
    Const(f64),
    /// U(−b, b) with b = 1/√fan_in: PyTorch's `nn.Linear` default for weights and biases.
    LinearDefault { fan_in: usize },
    /// Glorot/Xavier uniform for a (fan_out, fan_in) matrix: U(−b, b), b = √(6/(fan_in + fan_out)).
    XavierUniform,
    /// N(0, std²).
    Normal { std: f64 },
}

/// Creates named parameters in a `VarMap` with seeded initial values.
pub struct ParamBuilder<'a> {
    varmap: &'a VarMap,
    rng: &'a mut SeededRng,
    dtype: DType,
    device: Device,
    prefix: String,
}

impl<'a> ParamBuilder<'a> {
    /// A builder writing into `varmap`, drawing from `rng`, creating tensors of `dtype` on `device`.
    pub fn new(varmap: &'a VarMap, rng: &'a mut SeededRng, dtype: DType, device: &Device) -> Self {
        Self { varmap, rng, dtype, device: device.clone(), prefix: String::new() }
    }

    /// A builder whose names are prefixed with `prefix.` (nested modules).
    pub fn pp(&mut self, prefix: &str) -> ParamBuilder<'_> {
        let prefix = if self.prefix.is_empty() { prefix.to_string() } else { format!("{}.{prefix}", self.prefix) };
        ParamBuilder { varmap: self.varmap, rng: self.rng, dtype: self.dtype, device: self.device.clone(), prefix }
    }

    /// The dtype new parameters are created in.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The device new parameters are created on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The parameter `name` of `shape`: reused if the `VarMap` has it, else created with `init`.
    pub fn get<S: Into<Shape>>(&mut self, name: &str, shape: S, init: Init) -> Result<Tensor> {
        let shape = shape.into();
        let full = if self.prefix.is_empty() { name.to_string() } else { format!("{}.{name}", self.prefix) };
        let mut data = self.varmap.data().lock().expect("VarMap mutex poisoned");
        if let Some(var) = data.get(&full) {
            if var.shape() != &shape {
                return Err(Error::Shape {
                    context: "ParamBuilder::get (existing parameter)",
                    expected: format!("{shape:?} for '{full}'"),
                    got: var.dims().to_vec(),
                });
            }
            return Ok(var.as_tensor().clone());
        }
        let t = match init {
            Init::Const(c) => Tensor::full(c, shape.clone(), &Device::Cpu)?.to_dtype(self.dtype)?.to_device(&self.device)?,
            Init::LinearDefault { fan_in } => {
                let b = 1.0 / (fan_in.max(1) as f64).sqrt();
                self.rng.uniform(shape.clone(), -b, b, self.dtype, &self.device)?
            }
            Init::XavierUniform => {
                let (fan_out, fan_in) = match shape.dims() {
                    [o, i] => (*o, *i),
                    dims => return Err(Error::Shape { context: "Init::XavierUniform", expected: "a matrix".into(), got: dims.to_vec() }),
                };
                let b = (6.0 / (fan_in + fan_out) as f64).sqrt();
                self.rng.uniform(shape.clone(), -b, b, self.dtype, &self.device)?
            }
            Init::Normal { std } => (self.rng.normal(shape.clone(), self.dtype, &self.device)? * std)?,
        };
        let var = Var::from_tensor(&t)?;
        let out = var.as_tensor().clone();
        data.insert(full, var);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_build_is_reproducible() -> Result<()> {
        let build = |seed| -> Result<(VarMap, Tensor)> {
            let vm = VarMap::new();
            let mut rng = SeededRng::new(seed);
            let mut pb = ParamBuilder::new(&vm, &mut rng, DType::F32, &Device::Cpu);
            let w = pb.pp("layer").get("weight", (3, 4), Init::LinearDefault { fan_in: 4 })?;
            pb.get("a", (2, 5), Init::XavierUniform)?;
            Ok((vm, w))
        };
        let (_, w1) = build(3)?;
        let (vm2, w2) = build(3)?;
        assert_eq!(w1.to_vec2::<f32>()?, w2.to_vec2::<f32>()?);
        assert!(w1.abs()?.max_all()?.to_scalar::<f32>()? <= 0.5);
        assert!(vm2.data().lock().unwrap().contains_key("layer.weight"));

        Ok(())
    }

    #[test]
    fn existing_name_with_other_shape_is_an_error() -> Result<()> {
        let vm = VarMap::new();
        let mut rng = SeededRng::new(0);
        let mut pb = ParamBuilder::new(&vm, &mut rng, DType::F32, &Device::Cpu);
        pb.get("w", (2, 2), Init::Const(1.0))?;
        assert!(pb.get("w", (2, 3), Init::Const(1.0)).is_err());
        Ok(())
    }
}
