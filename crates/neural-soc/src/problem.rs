//! A stochastic optimal control problem as data: minimise over feedback controls u
//!
//! J(u) = E[∫₀ᵀ L(s, z, u) ds + g(z(T))],  dz = f(s, z, u) ds + σ dW,  z(0) ~ ρ₀.
//!
//! Its value function Φ solves the Hamilton–Jacobi–Bellman equation
//!
//! ∂ₛΦ + ½ tr(σσᵀ ∇²Φ) + H(s, z, ∇Φ) = 0,  Φ(T, z) = g(z),  H(s, z, p) = min_u p·f(s, z, u) + L(s, z, u),
//!
//! and the optimal feedback is u*(s, z, ∇Φ) with u*(s, z, p) the minimiser (Pontryagin's maximum
//! principle with adjoint p = ∇Φ). "A Neural Network Approach for Stochastic Optimal Control"
//! (Li, Verma, Ruthotto) writes the same with p = −∇Φ and a maximising Hamiltonian.

use crate::error::{Result, SocError};
use candle_core::{DType, Device, Tensor};
use tensor_core::SeededRng;

/// σ of dz = f ds + σ dW (constant in s and z).
#[derive(Clone, Debug, PartialEq)]
pub enum Diffusion {
    /// σ = c·I.
    Isotropic(f64),
    /// σ = diag(σ₁, …, σ_d).
    Diagonal(Vec<f64>),
}

impl Diffusion {
    /// Checks the entries are finite and non-negative, and a diagonal has `dim` of them.
    pub fn check(&self, dim: usize) -> Result<()> {
        let entries: &[f64] = match self {
            Diffusion::Isotropic(c) => std::slice::from_ref(c),
            Diffusion::Diagonal(v) if v.len() != dim => {
                return Err(SocError::Problem(format!("σ = diag(…) has {} entries for a state of dimension {dim}", v.len())))
            }
            Diffusion::Diagonal(v) => v,
        };
        match entries.iter().find(|c| !c.is_finite() || **c < 0.0) {
            Some(c) => Err(SocError::Problem(format!("σ has the entry {c}: entries must be finite and non-negative"))),
            None => Ok(()),
        }
    }

    /// σ·dW for increments `dw` of shape (B, d).
    pub fn apply(&self, dw: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Diffusion::Isotropic(c) => (dw * *c)?,
            Diffusion::Diagonal(v) => dw.broadcast_mul(&Tensor::new(v.as_slice(), dw.device())?.to_dtype(dw.dtype())?.unsqueeze(0)?)?,
        })
    }

    /// The common value c when σ = c·I (a diagonal with equal entries counts), else `None`.
    pub fn isotropic(&self) -> Option<f64> {
        match self {
            Diffusion::Isotropic(c) => Some(*c),
            Diffusion::Diagonal(v) => v.first().filter(|c| v.iter().all(|e| e == *c)).copied(),
        }
    }
}

/// A stochastic optimal control problem on s ∈ [0, T] (see the module docs for the equations).
/// Tensors are batches: states z (B, d), controls u (B, m), adjoints p (B, d), costs (B, 1).
pub trait ControlProblem {
    /// State dimension d.
    fn dim(&self) -> usize;
    /// Horizon T.
    fn horizon(&self) -> f64;
    /// σ.
    fn diffusion(&self) -> &Diffusion;
    /// `n` draws from the initial distribution ρ₀, shape (n, d).
    fn initial_states(&self, n: usize, rng: &mut SeededRng, dtype: DType, device: &Device) -> Result<Tensor>;
    /// f(s, z, u), shape (B, d).
    fn drift(&self, s: f64, z: &Tensor, u: &Tensor) -> Result<Tensor>;
    /// L(s, z, u), shape (B, 1).
    fn running_cost(&self, s: f64, z: &Tensor, u: &Tensor) -> Result<Tensor>;
    /// g(z) and ∇g(z), shapes (B, 1) and (B, d).
    fn terminal_cost(&self, z: &Tensor) -> Result<(Tensor, Tensor)>;
    /// u*(s, z, p) = argmin_u p·f(s, z, u) + L(s, z, u).
    fn feedback(&self, s: f64, z: &Tensor, p: &Tensor) -> Result<Tensor>;
    /// H(s, z, p) = p·f(s, z, u*) + L(s, z, u*), shape (B, 1); override with a closed form.
    fn hamiltonian(&self, s: f64, z: &Tensor, p: &Tensor) -> Result<Tensor> {
        let u = self.feedback(s, z, p)?;
        Ok(((p * self.drift(s, z, &u)?)?.sum_keepdim(1)? + self.running_cost(s, z, &u)?)?)
    }
}

/// Evaluates every function of `problem` once on a few initial states and returns a typed error
/// naming the first that has the wrong shape or a non-finite value: a bad definition fails here,
/// before training, not as a shape error deep inside a rollout.
pub fn check_problem(problem: &dyn ControlProblem, dtype: DType, device: &Device) -> Result<()> {
    let d = problem.dim();
    let t = problem.horizon();
    if d == 0 {
        return Err(SocError::Problem("the state dimension is 0".into()));
    }
    if !(t > 0.0 && t.is_finite()) {
        return Err(SocError::Problem(format!("the horizon must be finite and positive, got {t}")));
    }
    problem.diffusion().check(d)?;
    let n = 4;
    let z = problem.initial_states(n, &mut SeededRng::new(0), dtype, device)?;
    expect_shape(&z, &[n, d], "initial_states(4)")?;
    expect_finite(&z, "initial state")?;
    let (g, grad_g) = problem.terminal_cost(&z)?;
    expect_shape(&g, &[n, 1], "terminal cost g")?;
    expect_shape(&grad_g, &[n, d], "terminal gradient ∇g")?;
    expect_finite(&g, "terminal cost g")?;
    expect_finite(&grad_g, "terminal gradient ∇g")?;
    let u = problem.feedback(0.0, &z, &grad_g)?;
    expect_finite(&u, "feedback u*")?;
    expect_shape(&problem.drift(0.0, &z, &u)?, &[n, d], "drift f(s, z, u*)")?;
    expect_shape(&problem.running_cost(0.0, &z, &u)?, &[n, 1], "running cost L(s, z, u*)")?;
    let h = problem.hamiltonian(0.0, &z, &grad_g)?;
    expect_shape(&h, &[n, 1], "Hamiltonian H(s, z, p)")?;
    expect_finite(&h, "Hamiltonian")
}

/// A shape error naming the problem's function.
pub(crate) fn expect_shape(t: &Tensor, dims: &[usize], what: &str) -> Result<()> {
    if t.dims() == dims {
        Ok(())
    } else {
        Err(SocError::Problem(format!("{what} has shape {:?}, expected {dims:?}", t.dims())))
    }
}

/// A [`SocError::NonFinite`] when `t` holds a NaN or an infinity.
pub(crate) fn expect_finite(t: &Tensor, what: &'static str) -> Result<()> {
    // a sum in f64 is NaN or infinite exactly when an entry is (candle's max skips NaN)
    let sum = t.to_dtype(DType::F64)?.abs()?.sum_all()?.to_scalar::<f64>()?;
    if sum.is_finite() {
        Ok(())
    } else {
        Err(SocError::NonFinite { what, detail: format!("Σ|·| = {sum} over a batch of shape {:?}", t.dims()) })
    }
}
