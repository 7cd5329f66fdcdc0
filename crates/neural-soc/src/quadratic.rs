//! Control-affine dynamics with a quadratic control cost, where the feedback and the Hamiltonian
//! have closed forms:
//!
//! f = a·u,  L = c‖u‖² + Q(z)  ⇒  u*(p) = −a p / (2c),  H(z, p) = −a²‖p‖²/(4c) + Q(z).
//!
//! With Q = 0 and σ = s·I the Hopf–Cole transform linearises the HJB equation
//! ([`crate::hopf_cole`]). The Han–Jentzen–E benchmark ("Solving high-dimensional partial
//! differential equations using deep learning") is this problem with a = 2, c = 1, σ = √2 and
//! g(z) = log((1 + ‖z‖²)/2): [`QuadraticControl::han_jentzen_e`].

use crate::error::{Result, SocError};
use crate::problem::{ControlProblem, Diffusion};
use candle_core::{DType, Device, Tensor};
use tensor_core::SeededRng;

/// A terminal cost g with its gradient.
pub trait TerminalCost {
    /// g(z) and ∇g(z), shapes (B, 1) and (B, d).
    fn eval(&self, z: &Tensor) -> Result<(Tensor, Tensor)>;
}

/// g(z) = w·log((1 + ‖z − z*‖²)/2), ∇g = 2w(z − z*)/(1 + ‖z − z*‖²) (Han–Jentzen–E's terminal cost
/// with weight w and target z*).
#[derive(Clone, Debug, PartialEq)]
pub struct LogTerminal {
    pub target: Vec<f64>,
    pub weight: f64,
}

/// g(z) = w‖z − z*‖², ∇g = 2w(z − z*) (linear–quadratic problems, closed-form value).
#[derive(Clone, Debug, PartialEq)]
pub struct QuadraticTerminal {
    pub target: Vec<f64>,
    pub weight: f64,
}

fn residual(z: &Tensor, target: &[f64]) -> Result<Tensor> {
    if z.dim(1)? != target.len() {
        return Err(SocError::Problem(format!("the terminal cost's target has {} entries, the state has {}", target.len(), z.dim(1)?)));
    }
    Ok(z.broadcast_sub(&Tensor::new(target, z.device())?.to_dtype(z.dtype())?.unsqueeze(0)?)?)
}

impl TerminalCost for LogTerminal {
    fn eval(&self, z: &Tensor) -> Result<(Tensor, Tensor)> {
        let r = residual(z, &self.target)?;
        let q = (r.sqr()?.sum_keepdim(1)? + 1.0)?;
        let g = ((&q * 0.5)?.log()? * self.weight)?;
        let grad = (r.broadcast_div(&q)? * (2.0 * self.weight))?;
        Ok((g, grad))
    }
}

impl TerminalCost for QuadraticTerminal {
    fn eval(&self, z: &Tensor) -> Result<(Tensor, Tensor)> {
        let r = residual(z, &self.target)?;
        Ok(((r.sqr()?.sum_keepdim(1)? * self.weight)?, (r * (2.0 * self.weight))?))
    }
}

/// The initial distribution ρ₀.
#[derive(Clone, Debug, PartialEq)]
pub enum InitialStates {
    /// Every path starts at this point.
    Fixed(Vec<f64>),
    /// N(mean, std²·I).
    Gaussian { mean: Vec<f64>, std: f64 },
}

/// A state cost Q(z): (B, d) → (B, 1).
pub type StateCost = Box<dyn Fn(&Tensor) -> Result<Tensor> + Send + Sync>;

/// dz = a·u ds + σ dW, L = c‖u‖² + Q(z), terminal cost g: see the module docs.
pub struct QuadraticControl {
    pub dim: usize,
    pub horizon: f64,
    /// a in f = a·u.
    pub gain: f64,
    /// c in L = c‖u‖² + Q(z).
    pub control_cost: f64,
    /// Q(z), shape (B, 1) from (B, d); `None` for Q = 0.
    pub state_cost: Option<StateCost>,
    pub diffusion: Diffusion,
    pub terminal: Box<dyn TerminalCost + Send + Sync>,
    pub initial: InitialStates,
}

impl QuadraticControl {
    /// Checks the constants (c > 0, a ≠ 0, finite) and dimensions; the constructors call it.
    pub fn checked(self) -> Result<Self> {
        let (a, c) = (self.gain, self.control_cost);
        if !(c > 0.0 && c.is_finite() && a != 0.0 && a.is_finite()) {
            return Err(SocError::Problem(format!("f = a·u, L = c‖u‖² needs a ≠ 0 and c > 0, both finite; got a = {a}, c = {c}")));
        }
        let start = match &self.initial {
            InitialStates::Fixed(x) => x,
            InitialStates::Gaussian { mean, std } if *std >= 0.0 && std.is_finite() => mean,
            InitialStates::Gaussian { std, .. } => return Err(SocError::Problem(format!("ρ₀'s standard deviation is {std}"))),
        };
        if start.len() != self.dim {
            return Err(SocError::Problem(format!("ρ₀ lives in dimension {}, the state in {}", start.len(), self.dim)));
        }
        if let Some(bad) = start.iter().find(|v| !v.is_finite()) {
            return Err(SocError::Problem(format!("ρ₀ has the non-finite entry {bad}")));
        }
        self.diffusion.check(self.dim)?;
        Ok(self)
    }

    /// NeuralSOC's 100-D benchmark type 1 (Han–Jentzen–E): d = 100, T = 1, a = 2, c = 1,
    /// σ = √2, g = log((1 + ‖z‖²)/2), z₀ = 0. Literature value Φ(0, 0) ≈ 4.5901.
    pub fn han_jentzen_e(dim: usize) -> Result<Self> {
        Self::benchmark(dim, 0.0, 1.0, 2f64.sqrt())
    }

    /// NeuralSOC's benchmark type 2, the shifted target: as [`Self::han_jentzen_e`] with
    /// z* = 3·𝟙, terminal weight 1000 and σ = 0.4√2 (`BenchmarkProblem.py`, type ≠ 1).
    pub fn shifted_target(dim: usize) -> Result<Self> {
        Self::benchmark(dim, 3.0, 1000.0, 0.4 * 2f64.sqrt())
    }

    fn benchmark(dim: usize, target: f64, weight: f64, sigma: f64) -> Result<Self> {
        Self {
            dim,
            horizon: 1.0,
            gain: 2.0,
            control_cost: 1.0,
            state_cost: None,
            diffusion: Diffusion::Isotropic(sigma),
            terminal: Box::new(LogTerminal { target: vec![target; dim], weight }),
            initial: InitialStates::Fixed(vec![0.0; dim]),
        }
        .checked()
    }
}

impl ControlProblem for QuadraticControl {
    fn dim(&self) -> usize {
        self.dim
    }
    fn horizon(&self) -> f64 {
        self.horizon
    }
    fn diffusion(&self) -> &Diffusion {
        &self.diffusion
    }
    fn initial_states(&self, n: usize, rng: &mut SeededRng, dtype: DType, device: &Device) -> Result<Tensor> {
        let row = |x: &[f64]| -> Result<Tensor> { Ok(Tensor::new(x, device)?.to_dtype(dtype)?.unsqueeze(0)?.broadcast_as((n, self.dim))?) };
        Ok(match &self.initial {
            InitialStates::Fixed(x) => row(x)?.contiguous()?,
            InitialStates::Gaussian { mean, std } => (rng.normal((n, self.dim), dtype, device)? * *std)?.broadcast_add(&row(mean)?)?,
        })
    }
    fn drift(&self, _s: f64, _z: &Tensor, u: &Tensor) -> Result<Tensor> {
        Ok((u * self.gain)?)
    }
    fn running_cost(&self, _s: f64, z: &Tensor, u: &Tensor) -> Result<Tensor> {
        let control = (u.sqr()?.sum_keepdim(1)? * self.control_cost)?;
        Ok(match &self.state_cost {
            Some(q) => (control + q(z)?)?,
            None => control,
        })
    }
    fn terminal_cost(&self, z: &Tensor) -> Result<(Tensor, Tensor)> {
        self.terminal.eval(z)
    }
    fn feedback(&self, _s: f64, _z: &Tensor, p: &Tensor) -> Result<Tensor> {
        Ok((p * (-self.gain / (2.0 * self.control_cost)))?)
    }
    fn hamiltonian(&self, _s: f64, z: &Tensor, p: &Tensor) -> Result<Tensor> {
        let h = (p.sqr()?.sum_keepdim(1)? * (-self.gain * self.gain / (4.0 * self.control_cost)))?;
        Ok(match &self.state_cost {
            Some(q) => (h + q(z)?)?,
            None => h,
        })
    }
}
