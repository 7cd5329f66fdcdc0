//! Path samplers ("A Neural Network Approach for Stochastic Optimal Control", §4; NeuralSOC's
//! `fsde.py`), both Euler–Maruyama on a uniform grid s_i = iT/N:
//!
//! - [`Sampler::Pmp`]: the PMP-driven SDE z_{i+1} = z_i + f(s_i, z_i, u*(s_i, z_i, ∇Φ_θ)) Δs + σ ΔW_i.
//!   The graph runs through every step, so the control objective's gradient is
//!   discretise-then-optimise: the paths go where the current feedback sends them.
//! - [`Sampler::RandomWalk`]: z_{i+1} = z_i + σ ΔW_i, independent of Φ_θ (the baseline that never
//!   visits the region optimal paths go to when the target is far away).
//!
//! Φ_θ and its derivatives are evaluated once per path point and kept: the losses reuse them.

use crate::error::{Result, SocError};
use crate::problem::{expect_finite, ControlProblem};
use candle_core::Tensor;
use std::str::FromStr;
use tensor_core::nets::Potential;
use tensor_core::SeededRng;

/// How paths are drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sampler {
    /// Drift f(s, z, u*(s, z, ∇Φ_θ)): the closed loop of the current value function.
    Pmp,
    /// No drift: z = z₀ + σW.
    RandomWalk,
}

impl Sampler {
    /// `pmp` or `random-walk`.
    pub fn name(self) -> &'static str {
        match self {
            Sampler::Pmp => "pmp",
            Sampler::RandomWalk => "random-walk",
        }
    }
}

impl FromStr for Sampler {
    type Err = SocError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "pmp" => Ok(Sampler::Pmp),
            "random-walk" => Ok(Sampler::RandomWalk),
            other => Err(SocError::Config(format!("unknown sampler '{other}': expected 'pmp' or 'random-walk'"))),
        }
    }
}

/// Φ_θ and its derivatives at one path point, shapes (B, 1), (B, d), (B, 1), (B, 1).
#[derive(Clone, Debug)]
pub struct PathPoint {
    pub value: Tensor,
    pub grad: Tensor,
    pub dt: Tensor,
    pub laplacian: Tensor,
}

impl PathPoint {
    /// Φ_θ, ∇Φ_θ, ∂ₛΦ_θ and ΔΦ_θ at time `s`, from one forward sweep.
    pub fn at(phi: &Potential, s: f64, z: &Tensor) -> Result<Self> {
        let (value, d) = phi.value_and_derivatives(z, &Tensor::new(s, z.device())?)?;
        Ok(Self { value, grad: d.grad_x, dt: d.grad_t, laplacian: d.laplacian })
    }
}

/// A batch of sampled paths.
#[derive(Clone, Debug)]
pub struct Trajectory {
    /// s₀ = 0, …, s_N = T.
    pub times: Vec<f64>,
    /// z₀, …, z_N, each (B, d).
    pub states: Vec<Tensor>,
    /// The drift b_i the sampler used on step i (f(s_i, z_i, u*_i) or 0), i < N.
    pub drifts: Vec<Tensor>,
    /// σ ΔW_i, i < N.
    pub noise: Vec<Tensor>,
    /// Φ_θ at every state.
    pub points: Vec<PathPoint>,
}

impl Trajectory {
    /// The step Δs.
    pub fn step(&self) -> f64 {
        self.times[1] - self.times[0]
    }
}

/// Samples paths from `z0` (B, d) with `steps` Euler–Maruyama steps on [0, T]; every draw comes
/// from `rng`.
pub fn rollout(
    problem: &dyn ControlProblem,
    phi: &Potential,
    sampler: Sampler,
    z0: &Tensor,
    steps: usize,
    rng: &mut SeededRng,
) -> Result<Trajectory> {
    let d = problem.dim();
    let b = tensor_core::error::expect_matrix(z0, d, "initial states of a rollout")?;
    if steps == 0 {
        return Err(SocError::Config("a rollout needs at least one time step".into()));
    }
    let ds = problem.horizon() / steps as f64;
    let times: Vec<f64> = (0..=steps).map(|i| i as f64 * ds).collect();
    let mut traj = Trajectory { times, states: vec![z0.clone()], drifts: vec![], noise: vec![], points: vec![] };
    for i in 0..=steps {
        let (s, z) = (traj.times[i], traj.states[i].clone());
        let point = PathPoint::at(phi, s, &z)?;
        if i < steps {
            let drift = match sampler {
                Sampler::Pmp => problem.drift(s, &z, &problem.feedback(s, &z, &point.grad)?)?,
                Sampler::RandomWalk => z.zeros_like()?,
            };
            let noise = problem.diffusion().apply(&(rng.normal((b, d), z.dtype(), z.device())? * ds.sqrt())?)?;
            let next = ((&z + (&drift * ds)?)? + &noise)?;
            traj.drifts.push(drift);
            traj.noise.push(noise);
            traj.states.push(next);
        }
        traj.points.push(point);
    }
    // a NaN or infinity carries through every later step: one check at the end, not a host
    // read-back per step
    expect_finite(&traj.states[steps], "state at the end of a rollout (the feedback diverged)")?;
    Ok(traj)
}
