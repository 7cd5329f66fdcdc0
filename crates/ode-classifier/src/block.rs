//! The parabolic ODE block: y' = −K(t)ᵀ IN(ReLU(K(t) y + b(t))), the right-hand side of
//! "Deep Neural Networks Motivated by Partial Differential Equations" (Ruthotto & Haber, 2020)
//! whose Jacobian is negative semi-definite for monotone activations: a stable, heat-equation
//! like flow of feature maps. K(t) is a 3×3 convolution, Kᵀ the transposed convolution with the
//! same weights, IN instance norm without affine parameters.
//!
//! The weights are piecewise constant in time, as in rampde's STL-10 network: interval
//! k = ⌊t·n⌋ of [0, 1] (clamped to n − 1) uses bank entry k, for any solver and step size.

use crate::error::Result;
use candle_core::{DType, Tensor};
use ode_solvers::OdeTerm;
use tensor_core::nets::conv::{instance_norm, Conv3x3};
use tensor_core::params::{Init, ParamBuilder};

/// A block's weight bank: `intervals` 3×3 convolutions of C → C channels with biases.
#[derive(Clone, Debug)]
pub struct ParabolicBlock {
    /// (n, 9, C, C), channels-last 3×3 kernels (see [`Conv3x3`]).
    pub kernels: Tensor,
    /// (n, C).
    pub biases: Tensor,
}

impl ParabolicBlock {
    /// rampde's initialisation: kernels N(0, 0.1²), biases 0.
    pub fn new(pb: &mut ParamBuilder, channels: usize, intervals: usize) -> Result<Self> {
        let kernels = pb.get("kernels", (intervals, 9, channels, channels), Init::Normal { std: 0.1 })?;
        let biases = pb.get("biases", (intervals, channels), Init::Const(0.0))?;
        Ok(Self { kernels, biases })
    }

    /// The vector field with the weights cast to `dtype` (differentiably: gradients reach the
    /// stored weights); states must come in `dtype`.
    pub fn field(&self, dtype: DType) -> Result<ParabolicField> {
        Ok(ParabolicField { kernels: self.kernels.to_dtype(dtype)?, biases: self.biases.to_dtype(dtype)?, intervals: self.kernels.dim(0)? })
    }

    /// The vector field with detached weights in `dtype`, for evaluation without a graph.
    pub fn detached_field(&self, dtype: DType) -> Result<ParabolicField> {
        Ok(ParabolicField {
            kernels: self.kernels.detach().to_dtype(dtype)?,
            biases: self.biases.detach().to_dtype(dtype)?,
            intervals: self.kernels.dim(0)?,
        })
    }
}

/// A [`ParabolicBlock`]'s right-hand side as an ODE term on channels-last feature maps.
pub struct ParabolicField {
    kernels: Tensor,
    biases: Tensor,
    intervals: usize,
}

impl ParabolicField {
    /// The weight interval of time t: ⌊t·n⌋ clamped to [0, n − 1] (a grid point belongs to the
    /// interval it starts, up to rounding in t).
    pub fn interval(&self, t: f64) -> usize {
        ((t * self.intervals as f64 + 1e-9).floor().max(0.0) as usize).min(self.intervals - 1)
    }
}

impl OdeTerm<Tensor> for ParabolicField {
    fn vector_field(&self, t: f64, y: &Tensor) -> ode_solvers::Result<Tensor> {
        let k = self.interval(t);
        let conv = Conv3x3 { weight: self.kernels.get(k)?, bias: Some(self.biases.get(k)?) };
        let inner = instance_norm(&conv.forward(y).map_err(candle_core::Error::wrap)?.relu()?, None).map_err(candle_core::Error::wrap)?;
        Ok(conv.transpose(&inner).map_err(candle_core::Error::wrap)?.neg()?)
    }
}
