//! A mean-field game solved with a potential Φ ("A machine learning framework for solving
//! high-dimensional mean field game and mean field control problems", Ruthotto, Osher, Li,
//! Nurbekyan, Fung, PNAS 2020): minimise over v = −∇Φ
//!
//! J = L + α_F·F + α_G·G,  L = ∫₀¹ E[½‖v‖²] dt,  F = ∫₀¹ F(ρ_t) dt,  G = G(ρ₁),
//!
//! along the characteristics x' = −∇Φ, ℓ' = −ΔΦ (the exact Laplacian of OT-Flow's potential) from
//! x(0) ~ ρ₀, with the HJB penalties of the paper: c_H = ∫ |−∂ₜΦ + ½‖∇Φ‖² − α_F δF/δρ| dt along
//! each path, and |Φ(x(1), 1) − α_G δG/δρ(x(1))| at the end.
//! Augmented state: (x, ℓ, c_L, c_F, c_H, log ρ₀(x(0))).

use super::costs::{Gaussian, Interaction, Terminal};
use crate::error::{OtFlowError, Result};
use crate::loss::up;
use crate::model::QUADRATIC_RANK;
use candle_core::{DType, Tensor};
use candle_nn::VarMap;
use ode_solvers::{solve, Method, OdeTerm, SaveAt, SolveConfig, Steps};
use serde::{Deserialize, Serialize};
use std::path::Path;
use tensor_core::nets::{Potential, PotentialConfig};
use tensor_core::params::ParamBuilder;
use train::checkpoint::{load_model, save_model, LoadedModel, ModelFile};
use train::{Metrics, Trainable};

/// (x, ℓ, c_L, c_F, c_H, log ρ₀): shapes (B, d) and five (B, 1).
pub type MfgState = (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor);

/// The weights of the objective and of the penalties.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct MfgWeights {
    /// α_F.
    pub interaction: f64,
    /// α_G.
    pub terminal: f64,
    /// The HJB penalty along the paths.
    pub hjb: f64,
    /// The terminal HJB penalty |Φ(·, 1) − α_G δG/δρ|.
    pub hjb_final: f64,
}

/// Everything that defines a game and its network (what a model file stores).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MfgConfig {
    pub dim: usize,
    pub width: usize,
    pub layers: usize,
    /// ρ₀, which the training data must be drawn from (its log-density enters the costs).
    pub initial: Gaussian,
    pub interaction: Interaction,
    pub terminal: Terminal,
    pub weights: MfgWeights,
}

impl MfgConfig {
    /// Dynamic optimal transport between N(μ₀, s²I) and N(μ₁, s²I) with a KL terminal cost of
    /// weight α_G, no interaction. Its optimum is a translation by λ(μ₁ − μ₀), λ = a/(1 + a),
    /// a = α_G/s², with J* = ½‖μ₁ − μ₀‖²·λ: [`MfgConfig::translation_optimum`].
    pub fn gaussian_transport(dim: usize, width: usize, mu0: Vec<f64>, mu1: Vec<f64>, std: f64, alpha_g: f64) -> Self {
        Self {
            dim,
            width,
            layers: 2,
            initial: Gaussian::isotropic(mu0, std),
            interaction: Interaction::default(),
            terminal: Terminal::Kl(Gaussian::isotropic(mu1, std)),
            weights: MfgWeights { interaction: 0.0, terminal: alpha_g, hjb: 1.0, hjb_final: 1.0 },
        }
    }

    /// For [`MfgConfig::gaussian_transport`]: (J*, transport cost L*, terminal KL*) of the optimal
    /// translation; `None` for another configuration.
    pub fn translation_optimum(&self) -> Option<(f64, f64, f64)> {
        let (Terminal::Kl(target), None, 0.0) = (&self.terminal, &self.interaction.obstacle, self.interaction.congestion) else {
            return None;
        };
        let (s0, s1) = (&self.initial.std, &target.std);
        if s0.len() != 1 || s1 != s0 {
            return None;
        }
        let d2: f64 = self.initial.mean.iter().zip(&target.mean).map(|(a, b)| (a - b).powi(2)).sum();
        let a = self.weights.terminal / (s0[0] * s0[0]);
        let lambda = a / (1.0 + a);
        let (transport, kl) = (0.5 * d2 * lambda * lambda, 0.5 * d2 * (1.0 - lambda).powi(2) / (s0[0] * s0[0]));
        Some((transport + self.weights.terminal * kl, transport, kl))
    }

    /// Crowd motion in 2-D after MFGnet.jl's obstacle example: from N((0, 3), 0.3²I) to
    /// N((0, −3), 0.3²I) with its weights α_F = 2, α_G = 4 (HJB penalties 2 and 2) around the
    /// Gaussian obstacle Q = 200·N(0, diag(1², 0.5²)), and congestion weight `congestion`. The
    /// height is 4× the example's 50: with 50, crossing costs α_F·∫Q dt ≈ 6.6 and a detour of
    /// width a costs ≈ 2.5a², so going straight through is nearly optimal; with 200 the detour wins.
    pub fn crowd_motion(width: usize, congestion: f64) -> Self {
        Self {
            dim: 2,
            width,
            layers: 2,
            initial: Gaussian::isotropic(vec![0.0, 3.0], 0.3),
            interaction: Interaction {
                congestion,
                obstacle: Some(super::Obstacle { centre: vec![0.0, 0.0], std: vec![1.0, 0.5], height: 200.0 }),
            },
            terminal: Terminal::Kl(Gaussian::isotropic(vec![0.0, -3.0], 0.3)),
            weights: MfgWeights { interaction: 2.0, terminal: 4.0, hjb: 2.0, hjb_final: 2.0 },
        }
    }

    fn check(&self) -> Result<()> {
        if self.dim == 0 || self.width == 0 || self.layers < 2 {
            return Err(OtFlowError::Config(format!(
                "a game needs dim ≥ 1, width ≥ 1, layers ≥ 2; got {}, {}, {}",
                self.dim, self.width, self.layers
            )));
        }
        self.initial.check(self.dim, "initial density ρ₀")?;
        self.interaction.check(self.dim)?;
        self.terminal.check(self.dim)?;
        let w = self.weights;
        if [w.interaction, w.terminal, w.hjb, w.hjb_final].iter().any(|v| !v.is_finite() || *v < 0.0) {
            return Err(OtFlowError::Config(format!("weights must be finite and non-negative: {w:?}")));
        }
        Ok(())
    }
}

/// The costs of a batch of paths, as scalar tensors (differentiable).
pub struct MfgCosts {
    /// objective + penalties: what training minimises.
    pub total: Tensor,
    /// J = L + α_F F + α_G G.
    pub objective: Tensor,
    pub transport: Tensor,
    pub interaction: Tensor,
    pub terminal: Tensor,
    pub hjb: Tensor,
    pub hjb_final: Tensor,
}

impl MfgCosts {
    /// The costs as named figures; the objective for model selection is `loss`.
    pub fn metrics(&self) -> Result<Metrics> {
        Ok(Metrics::from_scalars(
            "loss",
            &[
                ("loss", &self.total),
                ("J", &self.objective),
                ("transport", &self.transport),
                ("interaction", &self.interaction),
                ("terminal", &self.terminal),
                ("hjb", &self.hjb),
                ("hjb_final", &self.hjb_final),
            ],
        )?)
    }
}

/// The kind name in model files.
pub const KIND: &str = "mean-field-game";

/// A mean-field game with its potential.
#[derive(Clone, Debug)]
pub struct MeanFieldGame {
    pub phi: Potential,
    pub config: MfgConfig,
    param_dtype: DType,
}

impl MeanFieldGame {
    /// A game with OT-Flow's potential initialisation, parameters under `pb`.
    pub fn new(pb: &mut ParamBuilder, config: MfgConfig) -> Result<Self> {
        config.check()?;
        let phi =
            Potential::new(pb, PotentialConfig { dim: config.dim, width: config.width, layers: config.layers, rank: QUADRATIC_RANK })?;
        Ok(Self { phi, config, param_dtype: pb.dtype() })
    }

    /// The augmented characteristics evaluated in `dtype`.
    pub fn dynamics(&self, dtype: DType) -> Result<MfgDynamics> {
        Ok(MfgDynamics {
            phi: self.phi.to_dtype(dtype)?,
            interaction: self.config.interaction.clone(),
            alpha_f: self.config.weights.interaction,
        })
    }

    /// (x, 0, 0, 0, 0, log ρ₀(x)) for draws x of ρ₀.
    pub fn initial_state(&self, x: &Tensor) -> Result<MfgState> {
        tensor_core::error::expect_matrix(x, self.config.dim, "mean-field game initial states")?;
        let z = Tensor::zeros((x.dim(0)?, 1), x.dtype(), x.device())?;
        let log_rho0 = self.config.initial.log_prob(x)?;
        Ok((x.clone(), z.clone(), z.clone(), z.clone(), z, log_rho0))
    }

    /// The costs at the final state, in f32 or better.
    pub fn costs(&self, z: &MfgState) -> Result<MfgCosts> {
        let (x, l, cl, cf, ch, log_rho0) = (up(&z.0)?, up(&z.1)?, up(&z.2)?, up(&z.3)?, up(&z.4)?, up(&z.5)?);
        let w = self.config.weights;
        let log_rho1 = (log_rho0 - &l)?;
        let (g, dg) = self.config.terminal.integrand_and_variation(&x, &log_rho1)?;
        let phi = self.phi.to_dtype(x.dtype())?;
        let phi1 = phi.value(&x, &Tensor::new(1f64, x.device())?)?;
        let hjb_final = (phi1 - (dg * w.terminal)?)?.abs()?.mean_all()?;
        let (transport, interaction, terminal, hjb) = (cl.mean_all()?, cf.mean_all()?, g.mean_all()?, ch.mean_all()?);
        let objective = ((&transport + (&interaction * w.interaction)?)? + (&terminal * w.terminal)?)?;
        let total = ((&objective + (&hjb * w.hjb)?)? + (&hjb_final * w.hjb_final)?)?;
        Ok(MfgCosts { total, objective, transport, interaction, terminal, hjb, hjb_final })
    }

    /// The same game with its potential detached (evaluation without a graph).
    pub fn frozen(&self) -> Result<Self> {
        Ok(Self { phi: self.phi.detach()?, ..self.clone() })
    }

    /// The states at every step of `steps` RK4 steps from `x` (no graph).
    pub fn paths(&self, x: &Tensor, steps: usize) -> Result<Vec<MfgState>> {
        let cfg = SolveConfig::new(Steps::uniform(0.0, 1.0, steps)?).save_at(SaveAt::Steps);
        Ok(solve(&self.frozen()?.dynamics(x.dtype())?, Method::Rk4, &self.initial_state(&x.detach())?, &cfg)?.ys)
    }

    /// The costs of draws `x` of ρ₀ with `steps` RK4 steps, no graph.
    pub fn evaluate(&self, x: &Tensor, steps: usize) -> Result<MfgCosts> {
        let last = self.paths(x, steps)?.pop().expect("a solve returns its final state");
        self.frozen()?.costs(&last)
    }
}

/// The augmented vector field of a [`MeanFieldGame`].
pub struct MfgDynamics {
    phi: Potential,
    interaction: Interaction,
    alpha_f: f64,
}

impl OdeTerm<MfgState> for MfgDynamics {
    fn vector_field(&self, t: f64, s: &MfgState) -> ode_solvers::Result<MfgState> {
        let (x, l, _, _, _, log_rho0) = s;
        let d = self.phi.derivatives(x, &Tensor::new(t, x.device())?)?;
        let kinetic = (d.grad_x.sqr()?.sum_keepdim(1)? * 0.5)?;
        let log_rho = (log_rho0 - l)?;
        let (rate, variation) = self.interaction.rate_and_variation(x, &log_rho)?;
        let hjb = ((&kinetic - &d.grad_t)? - (variation * self.alpha_f)?)?.abs()?;
        Ok((d.grad_x.neg()?, d.laplacian.neg()?, kinetic, rate, hjb, log_rho0.zeros_like()?))
    }
}

impl Trainable for MeanFieldGame {
    type State = MfgState;
    type Error = OtFlowError;
    fn dynamics(&self, dtype: DType, _seed: u64) -> Result<Box<dyn OdeTerm<MfgState> + '_>> {
        Ok(Box::new(MeanFieldGame::dynamics(self, dtype)?))
    }
    fn initial_state(&self, x: &Tensor) -> Result<MfgState> {
        MeanFieldGame::initial_state(self, x)
    }
    fn loss(&self, z: &MfgState) -> Result<Tensor> {
        Ok(self.costs(z)?.total)
    }
    /// `loss` (objective + penalties, as MFGnet selects), `J`, `transport`, `interaction`,
    /// `terminal`, `hjb`, `hjb_final`.
    fn validate(&self, x: &Tensor, steps: usize) -> Result<Metrics> {
        self.evaluate(x, steps)?.metrics()
    }
}

impl ModelFile for MeanFieldGame {
    type Error = OtFlowError;
    const KIND: &'static str = KIND;
    fn save(&self, varmap: &VarMap, path: &Path, extra: &serde_json::Value) -> Result<()> {
        Ok(save_model(path, KIND, &self.config, self.param_dtype, extra, varmap)?)
    }
    fn load(path: &Path, device: &candle_core::Device) -> Result<LoadedModel<Self>> {
        Ok(load_model(path, KIND, device, |pb, config: MfgConfig| Self::new(pb, config))?)
    }
}
