//! The CNF itself: its complete configuration (what a model file stores), the velocity network
//! built from it, and saving / loading.

use crate::error::{CnfError, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};
use std::path::Path;
use tensor_core::nets::{ConcatLinear, ConcatSquashLinear, ConcatSquashNet, HyperLayer, HyperNet, Mlp, TimeLayer, TimeNet};
use tensor_core::params::ParamBuilder;
use tensor_core::Activation;
use train::checkpoint::{load_model, save_model, LoadedModel, ModelFile};

/// The kind name in model files.
pub const KIND: &str = "cnf";

/// How tr ∂v/∂z is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TraceEstimator {
    /// Exactly, by d forward tangents.
    Exact,
    /// Hutchinson: εᵀ(∂v/∂z)ε with ε Rademacher (or Gaussian), drawn once per solve.
    Hutchinson { rademacher: bool },
}

/// The velocity network v_θ(z, t).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VelocityNet {
    /// FFJORD's concat-squash layers ("FFJORD: Free-form Continuous Dynamics for Scalable
    /// Reversible Generative Models", 2019).
    ConcatSquash { hidden: Vec<usize>, activation: Activation },
    /// An MLP with the time concatenated at the input (torchdiffeq's / torchcfm's toy net).
    Mlp { hidden: Vec<usize>, activation: Activation },
    /// torchdiffeq's hypernetwork velocity: `hidden` units in the weight MLP of t, `width`
    /// tanh units.
    Hyper { hidden: usize, width: usize },
}

/// Everything that defines a CNF's network and training term (with the parameters' dtype, what
/// a model file stores).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CnfConfig {
    /// Data dimension d.
    pub dim: usize,
    pub net: VelocityNet,
    pub trace: TraceEstimator,
}

impl CnfConfig {
    /// FFJORD's toy setting: concat-squash [64, 64] with tanh and the exact trace.
    pub fn ffjord_toy(dim: usize) -> Self {
        Self { dim, net: VelocityNet::ConcatSquash { hidden: vec![64, 64], activation: Activation::Tanh }, trace: TraceEstimator::Exact }
    }
}

/// A layer type a [`CnfConfig`] can build a velocity network of.
pub trait VelocityLayer: TimeLayer + Sized {
    /// The d → d network `net` describes, or an error when `net` is another layer type.
    fn build(pb: &mut ParamBuilder, dim: usize, net: &VelocityNet) -> Result<TimeNet<Self>>;
}

fn other_layers(net: &VelocityNet, wanted: &str) -> CnfError {
    CnfError::Config(format!("the configuration describes {net:?}, but this CNF's layers are {wanted}"))
}

impl VelocityLayer for ConcatSquashLinear {
    fn build(pb: &mut ParamBuilder, dim: usize, net: &VelocityNet) -> Result<TimeNet<Self>> {
        match net {
            VelocityNet::ConcatSquash { hidden, activation } => Ok(ConcatSquashNet::new(pb, dim, hidden, dim, *activation)?),
            other => Err(other_layers(other, "concat-squash")),
        }
    }
}

impl VelocityLayer for ConcatLinear {
    fn build(pb: &mut ParamBuilder, dim: usize, net: &VelocityNet) -> Result<TimeNet<Self>> {
        match net {
            VelocityNet::Mlp { hidden, activation } => Ok(Mlp::new(pb, dim, hidden, dim, *activation)?),
            other => Err(other_layers(other, "an MLP's")),
        }
    }
}

impl VelocityLayer for HyperLayer {
    fn build(pb: &mut ParamBuilder, dim: usize, net: &VelocityNet) -> Result<TimeNet<Self>> {
        match net {
            VelocityNet::Hyper { hidden, width } => Ok(HyperNet::new(pb, dim, *hidden, *width)?),
            other => Err(other_layers(other, "a hypernetwork's")),
        }
    }
}

/// A continuous normalizing flow: velocity network and trace estimator.
pub struct Cnf<L: TimeLayer> {
    pub net: TimeNet<L>,
    config: CnfConfig,
    param_dtype: DType,
}

impl<L: VelocityLayer> Cnf<L> {
    /// A CNF as `config` describes, parameters under `pb` (seeded initialisation).
    pub fn new(pb: &mut ParamBuilder, config: CnfConfig) -> Result<Self> {
        if config.dim == 0 {
            return Err(CnfError::Config("the data dimension must be at least 1".into()));
        }
        let net = L::build(pb, config.dim, &config.net)?;
        Ok(Self { net, config, param_dtype: pb.dtype() })
    }

    /// The configuration it was built from.
    pub fn config(&self) -> &CnfConfig {
        &self.config
    }

    /// The detached network in `dtype`, for evaluation without a graph.
    pub(crate) fn frozen(&self, dtype: DType) -> Result<TimeNet<L>> {
        Ok(self.net.to_dtype(dtype)?.detach()?)
    }
}

/// Checks `x` is a (B, d) batch for a model of dimension `dim`.
pub(crate) fn check_batch(x: &Tensor, dim: usize) -> Result<()> {
    tensor_core::error::expect_matrix(x, dim, "CNF input")?;
    Ok(())
}

impl<L: VelocityLayer> ModelFile for Cnf<L> {
    type Error = CnfError;
    const KIND: &'static str = KIND;
    fn save(&self, varmap: &VarMap, path: &Path, extra: &serde_json::Value) -> Result<()> {
        Ok(save_model(path, KIND, &self.config, self.param_dtype, extra, varmap)?)
    }
    fn load(path: &Path, device: &Device) -> Result<LoadedModel<Self>> {
        Ok(load_model(path, KIND, device, |pb, config: CnfConfig| Self::new(pb, config))?)
    }
}
