//! [`ParabolicCnn`]: the classifier's layers, its forward pass through the three ODE blocks
//! under any gradient mode, and evaluation.

use crate::block::ParabolicBlock;
use crate::config::{ClassifierConfig, Head};
use crate::data::{images_and_labels, normalize};
use crate::error::{ClassifierError, Result};
use candle_core::{DType, Tensor};
use candle_nn::VarMap;
use ode_solvers::{solve, Method, SolveConfig, Steps};
use tensor_core::nets::conv::{avg_pool_2x2, global_avg_pool, instance_norm, matmul_16bit_exact, Conv1x1, Conv3x3};
use tensor_core::params::{Init, ParamBuilder};
use train::{BlockSolve, GradientMode};

/// 1×1 convolution, instance norm (affine), ReLU, 2×2 average pooling: the layer between two
/// ODE blocks, doubling the channels and halving the resolution.
#[derive(Clone, Debug)]
struct Connector {
    conv: Conv1x1,
    gamma: Tensor,
    beta: Tensor,
}

impl Connector {
    fn new(pb: &mut ParamBuilder, c_in: usize, c_out: usize) -> Result<Self> {
        let conv = Conv1x1::new(&mut pb.pp("conv"), c_in, c_out)?;
        let mut norm = pb.pp("norm");
        Ok(Self { conv, gamma: norm.get("weight", c_out, Init::Const(1.0))?, beta: norm.get("bias", c_out, Init::Const(0.0))? })
    }

    fn forward(&self, y: &Tensor, dtype: DType) -> Result<Tensor> {
        let z = self.conv.to_dtype(dtype)?.forward(&y.to_dtype(dtype)?)?;
        Ok(avg_pool_2x2(&instance_norm(&z, Some((&self.gamma, &self.beta)))?.relu()?)?)
    }
}

/// The parabolic CNN of rampde's STL-10 experiment ("Mixed Precision Training of Neural ODEs";
/// the network of Ruthotto & Haber, "Deep Neural Networks Motivated by Partial Differential
/// Equations", 2020), channels-last: stem 3×3 conv → instance norm → ReLU; ODE block (width);
/// connector; ODE block (2·width); connector; ODE block (4·width); global average pooling (or
/// the flattened state, [`Head`]); linear classifier. Each block is integrated on [0, 1] on the grid a step gives.
pub struct ParabolicCnn {
    config: ClassifierConfig,
    stem: Conv3x3,
    stem_gamma: Tensor,
    stem_beta: Tensor,
    blocks: [ParabolicBlock; 3],
    connectors: [Connector; 2],
    head_weight: Tensor,
    head_bias: Tensor,
}

/// Per-solve output of a forward pass: the logits, and the three block solves (kept for the
/// backward pass).
pub(crate) struct Forward<'a> {
    pub logits: Tensor,
    pub solves: Vec<BlockSolve<'a, Tensor>>,
}

impl ParabolicCnn {
    /// The network of `config` with its parameters in `pb` (PyTorch's default initialisation of
    /// the convolutions and the classifier, rampde's N(0, 0.1²) for the ODE kernels).
    pub fn new(config: ClassifierConfig, pb: &mut ParamBuilder) -> Result<Self> {
        config.validate()?;
        let w = config.width;
        let stem = Conv3x3::new(&mut pb.pp("stem"), config.channels, w, true)?;
        let mut norm = pb.pp("stem_norm");
        let (stem_gamma, stem_beta) = (norm.get("weight", w, Init::Const(1.0))?, norm.get("bias", w, Init::Const(0.0))?);
        let blocks = [
            ParabolicBlock::new(&mut pb.pp("block1"), w, config.intervals)?,
            ParabolicBlock::new(&mut pb.pp("block2"), 2 * w, config.intervals)?,
            ParabolicBlock::new(&mut pb.pp("block3"), 4 * w, config.intervals)?,
        ];
        let connectors = [Connector::new(&mut pb.pp("connector1"), w, 2 * w)?, Connector::new(&mut pb.pp("connector2"), 2 * w, 4 * w)?];
        let mut head = pb.pp("head");
        let features = config.head_features();
        let init = Init::LinearDefault { fan_in: features };
        let (head_weight, head_bias) = (head.get("weight", (features, config.classes), init)?, head.get("bias", config.classes, init)?);
        Ok(Self { config, stem, stem_gamma, stem_beta, blocks, connectors, head_weight, head_bias })
    }

    /// A fresh network of `config` in a new `VarMap`, its parameters drawn from `seed` in
    /// `dtype` on `device`.
    pub fn init(config: ClassifierConfig, seed: u64, dtype: DType, device: &candle_core::Device) -> Result<(Self, VarMap)> {
        let varmap = VarMap::new();
        let mut rng = tensor_core::SeededRng::new(seed);
        let model = Self::new(config, &mut ParamBuilder::new(&varmap, &mut rng, dtype, device))?;
        Ok((model, varmap))
    }

    /// Its configuration.
    pub fn config(&self) -> &ClassifierConfig {
        &self.config
    }

    /// The three ODE blocks.
    pub fn blocks(&self) -> &[ParabolicBlock; 3] {
        &self.blocks
    }

    /// Logits (B, classes) in the state dtype for normalized images (B, H, W, C), every layer and field
    /// evaluated in `dtype` and the ODE states kept in the images' dtype, the blocks solved by
    /// `mode` on `grid`. `fields` are the blocks' fields, built by the caller so that they
    /// outlive the solves.
    pub(crate) fn forward<'a>(
        &self,
        x: &Tensor,
        fields: &'a [crate::block::ParabolicField; 3],
        method: Method,
        grid: &[f64],
        mode: GradientMode,
        dtype: DType,
    ) -> Result<Forward<'a>> {
        let state = x.dtype();
        let mut y = self.stem_layer(x, dtype)?;
        let mut solves = Vec::with_capacity(3);
        for (i, field) in fields.iter().enumerate() {
            let solve = BlockSolve::new(field, method, grid, &y, mode)?;
            y = if i < 2 { self.connectors[i].forward(solve.output(), dtype)?.to_dtype(state)? } else { solve.output().clone() };
            solves.push(solve);
        }
        let logits = self.head_layer(&y, dtype)?;
        Ok(Forward { logits, solves })
    }

    /// The blocks' fields in `dtype`.
    pub(crate) fn fields(&self, dtype: DType) -> Result<[crate::block::ParabolicField; 3]> {
        Ok([self.blocks[0].field(dtype)?, self.blocks[1].field(dtype)?, self.blocks[2].field(dtype)?])
    }

    /// Logits (B, classes) of raw images (B, H, W, C) (not yet normalized) without a graph:
    /// RK4 with `steps` steps per block, evaluated in `dtype` (the states in f32, or f64 for f64
    /// images).
    pub fn logits(&self, images: &Tensor, steps: usize, dtype: DType) -> Result<Tensor> {
        let state = if images.dtype() == DType::F64 { DType::F64 } else { DType::F32 };
        let x = normalize(&images.detach().to_dtype(state)?, &self.config)?;
        let fields = [self.blocks[0].detached_field(dtype)?, self.blocks[1].detached_field(dtype)?, self.blocks[2].detached_field(dtype)?];
        let grid = SolveConfig::new(Steps::uniform(0.0, 1.0, steps)?);
        // detached after every layer: no graph keeps the states alive
        let mut y = self.stem_layer(&x, dtype)?.detach();
        for (i, field) in fields.iter().enumerate() {
            let low = mixed_precision_adjoint::Autocast::new(field, tensor_core::Precision::of_dtype(dtype));
            y = solve(&low, Method::Rk4, &y, &grid)?.last().detach();
            if i < 2 {
                y = self.connectors[i].forward(&y, dtype)?.to_dtype(x.dtype())?.detach();
            }
        }
        Ok(self.head_layer(&y, dtype)?.detach())
    }

    /// Stem: 3×3 conv → instance norm → ReLU, evaluated in `dtype`, returned in x's dtype.
    fn stem_layer(&self, x: &Tensor, dtype: DType) -> Result<Tensor> {
        let z = self.stem.to_dtype(dtype)?.forward(&x.to_dtype(dtype)?)?;
        Ok(instance_norm(&z, Some((&self.stem_gamma, &self.stem_beta)))?.relu()?.to_dtype(x.dtype())?)
    }

    /// The [`Head`] and the linear classifier in `dtype`; logits in the state's dtype (f32, or
    /// f64).
    fn head_layer(&self, y: &Tensor, dtype: DType) -> Result<Tensor> {
        let low = y.to_dtype(dtype)?;
        let pooled = match self.config.head {
            Head::GlobalAverage => global_avg_pool(&low)?,
            Head::Flatten => low.flatten_from(1)?,
        };
        Ok(matmul_16bit_exact(&pooled, &self.head_weight.to_dtype(dtype)?)?
            .broadcast_add(&self.head_bias.to_dtype(dtype)?)?
            .to_dtype(y.dtype())?)
    }

    /// Mean cross-entropy and accuracy on labelled rows (label, then pixels), in chunks of 256
    /// images, evaluated in `dtype` with `steps` RK4 steps per block.
    pub fn evaluate(&self, rows: &Tensor, steps: usize, dtype: DType) -> Result<Evaluation> {
        let n = rows.dim(0)?;
        if n == 0 {
            return Err(ClassifierError::Data("no rows to evaluate".into()));
        }
        let (mut loss, mut correct) = (0f64, 0usize);
        for start in (0..n).step_by(256) {
            let chunk = rows.narrow(0, start, 256.min(n - start))?;
            let (images, labels) = images_and_labels(&chunk, &self.config)?;
            let logits = self.logits(&images, steps, dtype)?;
            loss += candle_nn::loss::cross_entropy(&logits, &labels)?.to_dtype(DType::F64)?.to_scalar::<f64>()? * chunk.dim(0)? as f64;
            let predicted = logits.argmax(1)?.to_vec1::<u32>()?;
            correct += predicted.iter().zip(labels.to_vec1::<u32>()?).filter(|(p, l)| **p == *l).count();
        }
        Ok(Evaluation { cross_entropy: loss / n as f64, accuracy: correct as f64 / n as f64 })
    }
}

/// Held-out figures of a classifier.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Evaluation {
    pub cross_entropy: f64,
    pub accuracy: f64,
}
