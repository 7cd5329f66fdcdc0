//! OT-Flow's model ("OT-Flow: Fast and Accurate Continuous Normalizing Flows via Optimal
//! Transport", Onken, Wu Fung, Li, Ruthotto, AAAI 2021): the potential Φ of
//! `tensor-core` and the augmented characteristics it drives. Sign conventions follow the
//! reference code (`OTFlowProblem.py::odefun`): with α = (α₀, α₁, α₂),
//!
//! dx/dt = −∇ₓΦ/α₀,  dℓ/dt = −ΔₓΦ/α₀,  dc_L/dt = ½‖dx/dt‖²,  dc_H/dt = |−∂ₜΦ + α₀·½‖dx/dt‖²|,
//!
//! from (x, 0, 0, 0) at t = 0 (data) to t = 1 (standard normal). ℓ is the log-determinant
//! (log p(x) = log N(x(1)) + ℓ(1)), c_L the transport cost, c_H the HJB residual.

use crate::error::{OtFlowError, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use ode_solvers::OdeTerm;
use serde::{Deserialize, Serialize};
use std::path::Path;
use tensor_core::nets::{Potential, PotentialConfig};
use tensor_core::params::ParamBuilder;
use train::checkpoint::{load_model, save_model, LoadedModel, ModelFile};

/// (x, ℓ, c_L, c_H): shapes (B, d), (B, 1), (B, 1), (B, 1).
pub type OtState = (Tensor, Tensor, Tensor, Tensor);

/// The kind name in model files.
pub const KIND: &str = "ot-flow";

/// Sizes and weights of an OT-Flow model: with the parameters' dtype, everything a model file
/// needs to rebuild it (Φ's activation is OT-Flow's log cosh, its quadratic term rank 10).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct OtFlowConfig {
    /// Data dimension d.
    pub dim: usize,
    /// ResNet width m.
    pub width: usize,
    /// ResNet layers M (OT-Flow's nTh).
    pub layers: usize,
    /// (α₀, α₁, α₂): transport, likelihood and HJB weights of J = α₀L + α₁C + α₂R.
    pub alpha: [f64; 3],
}

/// OT-Flow's published training settings for a 2-D toy data set (`detailedSetup.md`; all with
/// width 32, batch 5000, double precision and the learning rate halved every `drop_every`
/// iterations).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ToyPreset {
    /// (α₀, α₁, α₂).
    pub alpha: [f64; 3],
    /// RK4 steps for training (`nt`) and validation (`nt_val`).
    pub steps: usize,
    pub val_steps: usize,
    pub lr: f64,
    pub drop_every: usize,
    pub iters: usize,
}

impl ToyPreset {
    /// The preset for FFJORD's toy set `name` (8gaussians, checkerboard, swissroll, circles,
    /// moons, pinwheel, 2spirals; rings takes 2spirals'), or `None` for another name.
    pub fn for_dataset(name: &str) -> Option<Self> {
        let p = |alpha, steps, val_steps, lr, drop_every, iters| Some(Self { alpha, steps, val_steps, lr, drop_every, iters });
        match name {
            "8gaussians" => p([1.0, 30.0, 1.0], 8, 12, 0.1, 500, 5000),
            "checkerboard" => p([1.0, 15.0, 2.0], 12, 16, 0.05, 1000, 20000),
            "swissroll" => p([1.0, 30.0, 15.0], 8, 16, 0.05, 1000, 5000),
            "circles" => p([1.0, 5.0, 1.0], 8, 12, 0.05, 1000, 5000),
            "moons" => p([1.0, 8.0, 1.0], 8, 12, 0.05, 1000, 5000),
            "pinwheel" => p([1.0, 30.0, 15.0], 8, 16, 0.05, 1000, 5000),
            "2spirals" | "rings" => p([1.0, 10.0, 1.0], 8, 12, 0.05, 1000, 5000),
            _ => None,
        }
    }

    /// The model configuration: OT-Flow's toy network with this data set's weights.
    pub fn config(&self) -> OtFlowConfig {
        OtFlowConfig { alpha: self.alpha, ..OtFlowConfig::toy() }
    }
}

/// Rank of Φ's quadratic term ½sᵀAᵀAs (OT-Flow's `r`).
pub const QUADRATIC_RANK: usize = 10;

impl OtFlowConfig {
    /// OT-Flow's 2-D toy defaults (`trainToyOTflow.py`): m = 32, M = 2, α = (1, 100, 5).
    pub fn toy() -> Self {
        Self { dim: 2, width: 32, layers: 2, alpha: [1.0, 100.0, 5.0] }
    }

    /// OT-Flow's BSDS300 model (`detailedSetup.md`): d = 63, M = 2, α = (1, 2000, 800), at ResNet
    /// width `width` (512 in the paper, 1024 in the mixed-precision study).
    pub fn bsds300(width: usize) -> Self {
        Self { dim: 63, width, layers: 2, alpha: [1.0, 2000.0, 800.0] }
    }
}

/// An OT-Flow model: a potential and the weights of its objective.
#[derive(Clone, Debug)]
pub struct OtFlow {
    pub phi: Potential,
    pub config: OtFlowConfig,
    param_dtype: DType,
}

impl OtFlow {
    /// A model with OT-Flow's initialisation, parameters under `pb`.
    pub fn new(pb: &mut ParamBuilder, config: OtFlowConfig) -> Result<Self> {
        if config.alpha[0] <= 0.0 || !config.alpha.iter().all(|a| a.is_finite() && *a >= 0.0) {
            return Err(OtFlowError::Config(format!("α = {:?}: α₀ must be positive, α₁ and α₂ non-negative, all finite", config.alpha)));
        }
        let phi =
            Potential::new(pb, PotentialConfig { dim: config.dim, width: config.width, layers: config.layers, rank: QUADRATIC_RANK })?;
        Ok(Self { phi, config, param_dtype: pb.dtype() })
    }

    /// The same model with its parameters detached (evaluation without a graph).
    pub fn frozen(&self) -> Result<Self> {
        Ok(Self { phi: self.phi.detach()?, ..self.clone() })
    }

    /// The augmented dynamics evaluated in `dtype` (parameters cast differentiably: the mixed
    /// precision term is `dynamics(DType::F16)`).
    pub fn dynamics(&self, dtype: DType) -> Result<Dynamics> {
        Ok(Dynamics { phi: self.phi.to_dtype(dtype)?, alpha0: self.config.alpha[0] })
    }

    /// The velocity only, x' = −∇ₓΦ/α₀ (sampling and encoding), evaluated in `dtype`.
    pub fn velocity(&self, dtype: DType) -> Result<Velocity> {
        Ok(Velocity { phi: self.phi.to_dtype(dtype)?, alpha0: self.config.alpha[0] })
    }

    /// (x, 0, 0, 0).
    pub fn initial_state(x: &Tensor) -> Result<OtState> {
        let z = Tensor::zeros((x.dim(0)?, 1), x.dtype(), x.device())?;
        Ok((x.clone(), z.clone(), z.clone(), z))
    }
}

/// The augmented OT-Flow vector field.
pub struct Dynamics {
    phi: Potential,
    alpha0: f64,
}

impl OdeTerm<OtState> for Dynamics {
    fn vector_field(&self, t: f64, s: &OtState) -> ode_solvers::Result<OtState> {
        let d = self.phi.derivatives(&s.0, &Tensor::new(t, s.0.device())?)?;
        let dx = (d.grad_x * (-1.0 / self.alpha0))?;
        let dl = (d.laplacian * (-1.0 / self.alpha0))?;
        let kinetic = (dx.sqr()?.sum_keepdim(1)? * 0.5)?;
        let hjb = ((kinetic.clone() * self.alpha0)? - d.grad_t)?.abs()?;
        Ok((dx, dl, kinetic, hjb))
    }
}

/// x' = −∇ₓΦ/α₀ alone.
pub struct Velocity {
    phi: Potential,
    alpha0: f64,
}

impl OdeTerm<Tensor> for Velocity {
    fn vector_field(&self, t: f64, x: &Tensor) -> ode_solvers::Result<Tensor> {
        let (g, _) = self.phi.gradient(x, &Tensor::new(t, x.device())?)?;
        Ok((g * (-1.0 / self.alpha0))?)
    }
}

impl ModelFile for OtFlow {
    type Error = OtFlowError;
    const KIND: &'static str = KIND;
    fn save(&self, varmap: &VarMap, path: &Path, extra: &serde_json::Value) -> Result<()> {
        Ok(save_model(path, KIND, &self.config, self.param_dtype, extra, varmap)?)
    }
    fn load(path: &Path, device: &Device) -> Result<LoadedModel<Self>> {
        Ok(load_model(path, KIND, device, |pb, config: OtFlowConfig| Self::new(pb, config))?)
    }
}
