//! The neural Monge–Ampère sampler (Deb & Liang, "No-Regret Generative Modeling via Parabolic
//! Monge–Ampère PDE", 2025, Algorithms 1 and 2).
//!
//! Step k: draw X̃ ∼ ρ_k = (∇ψ_k)#ν (the sampling step), learn m̂_k ≈ ∇log(ρ_k/μ) from X̃ and the
//! data (the learning step, [`Estimator`]), then move the map:
//!
//! ∇ψ_{k+1}(y) = ∇ψ_k(y) − η_k ∇²ψ_k(y) m̂_k(∇ψ_k(y)),
//!
//! which is ψ_{k+1} = ψ_k − η_k ĥ_k ∘ ∇ψ_k for Algorithm 1 and n_{k+1} = n_k − η_k ∇n_k·(m̂_k ∘ n_k)
//! for Algorithm 2 with n_k = ∇ψ_k.
//!
//! **Representation.** The algorithms grow the network by one residual block per step. Evaluating
//! ∇ψ_{k+1} then needs ∇²ψ_k, which needs ∇³ψ_{k−1}, …: the k-th iterate needs k-th derivatives
//! of the first network, so its cost grows exponentially in k under automatic differentiation.
//! Here each update is instead projected onto one network of fixed size: ψ_{k+1} is ψ_k's network
//! trained (warm-started, Adam) to match the update's values at fresh reference draws,
//! min E_ν|∇ψ_{k+1}(y) − [∇ψ_k(y) − η_k ∇²ψ_k(y) m̂_k(∇ψ_k(y))]|². Each step then costs the same, and
//! the projection's relative residual is reported per step next to the convexity m_k.

use crate::error::{MaError, Result};
use crate::estimator::{Estimator, EstimatorConfig, Learner};
use crate::gaussian::symmetric_sqrt;
use crate::map::BrenierMap;
use crate::schedule::StepSchedule;
use candle_core::{DType, Device, Tensor};
use tensor_core::SeededRng;
use train::Adam;

/// ψ₀.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Initialization {
    /// ψ₀ ≈ ½|y|²: ρ₀ ≈ ν = N(0, I).
    Identity,
    /// ψ₀ ≈ ½yᵀΣ^{1/2}y + mᵀy from the data's mean m and covariance Σ: ρ₀ ≈ N(m, Σ).
    MomentMatched,
}

/// Everything that defines a run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SamplerConfig {
    /// T, the number of steps.
    pub horizon: usize,
    /// η_k.
    pub schedule: StepSchedule,
    /// The learning step (Algorithm 1 or 2).
    pub estimator: Estimator,
    /// ψ₀.
    pub initialization: Initialization,
    /// The estimator's networks.
    pub estimator_config: EstimatorConfig,
    /// Ridge functions of ψ's input-convex network.
    pub map_width: usize,
    /// Samples of ρ_k per step, and reference draws the update is projected on.
    pub particles: usize,
    /// Adam iterations and learning rate of the projection (the rate at η₀; at step k it is
    /// map_lr·η_k/η₀).
    pub map_iters: usize,
    pub map_lr: f64,
    /// Seed of every draw and initialisation.
    pub seed: u64,
}

impl SamplerConfig {
    /// Defaults sized for 1-D and 2-D targets: moment-matched ψ₀, width 32, 512 particles, the
    /// estimator's [`EstimatorConfig::for_estimator`], 200 projection Adam iterations per step at 3e-3.
    pub fn new(horizon: usize, schedule: StepSchedule, estimator: Estimator) -> Self {
        Self {
            horizon,
            schedule,
            estimator,
            initialization: Initialization::MomentMatched,
            estimator_config: EstimatorConfig::for_estimator(estimator),
            map_width: 32,
            particles: 512,
            map_iters: 200,
            map_lr: 3e-3,
            seed: 0,
        }
    }

    fn validate(&self) -> Result<()> {
        self.schedule.validate()?;
        let e = &self.estimator_config;
        if self.horizon == 0 || self.particles < 2 || self.map_width == 0 || e.width == 0 || e.batch == 0 {
            return Err(MaError::Config(format!("need T ≥ 1, ≥ 2 particles, map width ≥ 1, estimator width and batch ≥ 1; got {self:?}")));
        }
        if !(self.map_lr.is_finite() && self.map_lr > 0.0 && e.lr.is_finite() && e.lr > 0.0) {
            return Err(MaError::Config(format!(
                "learning rates must be finite and positive, got map {} and estimator {}",
                self.map_lr, e.lr
            )));
        }
        Ok(())
    }
}

/// What one step did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepRecord {
    /// k (the step that made ψ_{k+1}).
    pub k: usize,
    /// η_k.
    pub step_size: f64,
    /// The estimator's last minibatch loss (logistic: 2 ln 2 ≈ 1.386 when it cannot tell ρ_k from μ).
    pub estimator_loss: f64,
    /// √(E|∇ψ_{k+1} − update|² / E|η_k ∇²ψ_k m̂_k|²): the part of the step the projection missed.
    pub projection_residual: f64,
    /// m_{k+1} = min λ_min(∇²ψ_{k+1}) over the reference draws (convexity when > 0).
    pub min_curvature: f64,
    /// max λ_max(∇²ψ_{k+1}) over the same draws.
    pub max_curvature: f64,
}

/// The mean and the covariance (row-major) of the rows of `data` (n, d).
fn moments(data: &Tensor) -> Result<(Vec<f64>, Vec<f64>)> {
    let (n, d) = data.dims2()?;
    let mean = data.mean(0)?;
    let centred = data.broadcast_sub(&mean)?;
    let cov = (centred.t()?.matmul(&centred)? / (n as f64 - 1.0))?;
    Ok((mean.to_vec1::<f64>()?, cov.flatten_all()?.to_vec1::<f64>()?.into_iter().take(d * d).collect()))
}

/// A run of the neural Monge–Ampère sampler on data from μ.
pub struct MongeAmpereSampler {
    config: SamplerConfig,
    data: Tensor,
    map: BrenierMap,
    /// The projection's optimiser, kept across steps: fresh Adam moments would kick every weight
    /// by about the learning rate each step, as large as a small step's update.
    map_optimizer: Adam,
    learner: Learner,
    rng: SeededRng,
    k: usize,
}

impl MongeAmpereSampler {
    /// A sampler at ψ₀ = ½|y|² for `data` (n, d), finite, n ≥ 2.
    pub fn new(config: SamplerConfig, data: &Tensor) -> Result<Self> {
        config.validate()?;
        let (n, d) = data.dims2().map_err(|_| MaError::Data(format!("data must be a matrix (n, d), got shape {:?}", data.dims())))?;
        if n < 2 || d == 0 {
            return Err(MaError::Data(format!("data needs at least 2 points of dimension ≥ 1, got {n}×{d}")));
        }
        let data = data.to_dtype(DType::F64)?.to_device(&Device::Cpu)?;
        if let Some(i) = data.flatten_all()?.to_vec1::<f64>()?.iter().position(|v| !v.is_finite()) {
            return Err(MaError::Data(format!("data row {} has a NaN or infinite entry", i / d)));
        }
        let mut rng = SeededRng::new(config.seed);
        let map = match config.initialization {
            Initialization::Identity => BrenierMap::identity(d, config.map_width, &mut rng)?,
            Initialization::MomentMatched => {
                let (mean, cov) = moments(&data)?;
                let root = symmetric_sqrt(&nalgebra::DMatrix::from_row_slice(d, d, &cov));
                BrenierMap::affine(root.transpose().as_slice(), &mean, config.map_width, &mut rng)?
            }
        };
        let learner = Learner::new(config.estimator, &config.estimator_config, &data, &mut rng)?;
        let map_optimizer = Adam::new(map.varmap(), config.map_lr)?;
        Ok(Self { config, data, map, map_optimizer, learner, rng, k: 0 })
    }

    /// The current map ∇ψ_k.
    pub fn map(&self) -> &BrenierMap {
        &self.map
    }

    /// k, the steps taken.
    pub fn steps_taken(&self) -> usize {
        self.k
    }

    /// Whether all T steps have run.
    pub fn finished(&self) -> bool {
        self.k >= self.config.horizon
    }

    /// n draws of ρ_k = (∇ψ_k)#N(0, I).
    pub fn sample(&mut self, n: usize) -> Result<Tensor> {
        let y = self.rng.normal((n, self.map.dim()), DType::F64, &Device::Cpu)?;
        self.map.apply(&y)
    }

    /// One step: sampling, learning, and the projected map update.
    pub fn step(&mut self) -> Result<StepRecord> {
        if self.finished() {
            return Err(MaError::Config(format!("the run has taken all its {} steps", self.config.horizon)));
        }
        let cfg = self.config;
        let eta = cfg.schedule.step_size(self.k, cfg.horizon);
        let samples = self.sample(cfg.particles)?;
        let estimator_loss = self.learner.fit(&self.data, &samples, &cfg.estimator_config, &mut self.rng)?;
        // the update's values at fresh reference draws, from ψ_k (detached)
        let y = self.rng.normal((cfg.particles, self.map.dim()), DType::F64, &Device::Cpu)?;
        let x = self.map.apply(&y)?.detach();
        let m_hat = self.learner.grad_log_ratio(&x)?;
        let update = (self.map.jacobian_vector(&y, &m_hat)?.detach() * eta)?;
        let goal = (&x - &update)?;
        // the projection moves the map by about its learning rate per Adam step whatever the
        // update's size, so the rate follows the step size (map_lr at η₀, the largest η_k)
        self.map_optimizer.set_learning_rate(cfg.map_lr * eta / cfg.schedule.step_size(0, cfg.horizon))?;
        for _ in 0..cfg.map_iters {
            let loss = (self.map.apply(&y)? - &goal)?.sqr()?.sum(1)?.mean_all()?;
            self.map_optimizer.step(&loss.backward()?)?;
        }
        let miss = (self.map.apply(&y)? - &goal)?.sqr()?.sum(1)?.mean_all()?.to_scalar::<f64>()?;
        let size = update.sqr()?.sum(1)?.mean_all()?.to_scalar::<f64>()?;
        let curvature = self.map.curvature(&y)?;
        self.k += 1;
        let record = StepRecord {
            k: self.k - 1,
            step_size: eta,
            estimator_loss,
            projection_residual: (miss / size.max(f64::MIN_POSITIVE)).sqrt(),
            min_curvature: curvature.min_eigenvalue,
            max_curvature: curvature.max_eigenvalue,
        };
        if !(record.projection_residual.is_finite() && record.min_curvature.is_finite()) {
            return Err(MaError::Diverged(format!(
                "step {} produced a non-finite map (η = {eta}): lower the step size or the learning rates",
                record.k
            )));
        }
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_input_is_refused_with_a_named_reason() {
        let cfg = SamplerConfig::new(4, StepSchedule::Constant(0.5), Estimator::Logistic);
        let good = Tensor::ones((10, 2), DType::F64, &Device::Cpu).unwrap();
        let nan = Tensor::from_vec(vec![0.0, f64::NAN, 1.0, 2.0], (2, 2), &Device::Cpu).unwrap();
        assert!(matches!(MongeAmpereSampler::new(cfg, &nan), Err(MaError::Data(m)) if m.contains("row 0")));
        assert!(matches!(MongeAmpereSampler::new(cfg, &Tensor::ones(5, DType::F64, &Device::Cpu).unwrap()), Err(MaError::Data(_))));
        assert!(matches!(MongeAmpereSampler::new(SamplerConfig { horizon: 0, ..cfg }, &good), Err(MaError::Config(_))));
        let neg = SamplerConfig { schedule: StepSchedule::Harmonic(-1.0), ..cfg };
        assert!(matches!(MongeAmpereSampler::new(neg, &good), Err(MaError::Config(_))));
        let sm = SamplerConfig { estimator: Estimator::ScoreMatching { noise: 0.0 }, ..cfg };
        assert!(matches!(MongeAmpereSampler::new(sm, &good), Err(MaError::Config(_))));
    }
}
