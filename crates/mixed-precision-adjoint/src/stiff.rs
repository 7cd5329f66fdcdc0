//! Ruthotto's "Continuous-Time Deep Learning for Generative AI and High-Dim PDEs" stiff test problem: y'(t) = −(θ₁t² + θ₂t + θ₃) y on [0, T], ℓ = ½ y(T)², RK4.
//! Its solution y(T) = y₀ exp(−θ₁T³/3 − θ₂T²/2 − θ₃T) gives every gradient in closed form:
//! ∂ℓ/∂y₀ = y(T)²/y₀, ∂ℓ/∂θ₁ = −y(T)²T³/3, ∂ℓ/∂θ₂ = −y(T)²T²/2, ∂ℓ/∂θ₃ = −y(T)²T.
//! y grows to ≈ 1.2·10⁴ before decaying to ≈ 6·10⁻³ while the adjoint falls to ≈ 10⁻⁹: far below
//! f16's smallest subnormal, which is what dynamic adjoint scaling is for.

use crate::autocast::Autocast;
use crate::backward::BackwardReport;
use crate::error::Result;
use crate::forward::{solve_mixed, MpConfig};
use crate::scaler::DynamicScaler;
use candle_core::{DType, Device, Tensor, Var};
use ode_solvers::{solve, Adjoint, Method, SaveAt, SolveConfig, Steps};
use tensor_core::{Precision, PrecisionPolicy};

/// The problem's constants.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StiffProblem {
    /// (θ₁, θ₂, θ₃).
    pub theta: [f64; 3],
    /// y(0).
    pub y0: f64,
    /// Final time T.
    pub t_end: f64,
    /// RK4 steps.
    pub steps: usize,
}

/// y(T) and the gradients of ℓ = ½y(T)².
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StiffResult {
    pub y_end: f64,
    pub dl_dy0: f64,
    pub dl_dtheta: [f64; 3],
}

impl StiffResult {
    /// Relative errors (y(T), ∂ℓ/∂y₀, ∂ℓ/∂θ₁, ∂ℓ/∂θ₂, ∂ℓ/∂θ₃) against `exact`.
    pub fn relative_errors(&self, exact: &StiffResult) -> [f64; 5] {
        let r = |a: f64, b: f64| ((a - b) / b).abs();
        [
            r(self.y_end, exact.y_end),
            r(self.dl_dy0, exact.dl_dy0),
            r(self.dl_dtheta[0], exact.dl_dtheta[0]),
            r(self.dl_dtheta[1], exact.dl_dtheta[1]),
            r(self.dl_dtheta[2], exact.dl_dtheta[2]),
        ]
    }
}

/// How a row of the stiff table computes its gradient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StiffMethod {
    /// This crate: low-precision evaluation, high-precision accumulation, scaled (or not) adjoint.
    MixedPrecision { scaled: bool },
    /// The torchdiffeq-with-autocast analogue: state in H, f evaluated in L, full-graph backprop.
    FullGraphAutocast,
    /// Everything in L, state included, full-graph backprop ("NaNs after a few steps").
    NaiveLow,
}

impl StiffProblem {
    /// The seed's setting: θ = (8, −11, 2⁻¹⁶), T = 2.65, N = 400, y₀ = 65504/180 (rampde's y₀).
    pub fn seed() -> Self {
        Self { theta: [8.0, -11.0, 2f64.powi(-16)], y0: 65504.0 / 180.0, t_end: 2.65, steps: 400 }
    }

    /// rampde's repository variant: θ₂ = −10 and 399 steps.
    pub fn rampde() -> Self {
        Self { theta: [8.0, -10.0, 2f64.powi(-16)], steps: 399, ..Self::seed() }
    }

    /// The analytic reference in f64.
    pub fn exact(&self) -> StiffResult {
        let [a, b, c] = self.theta;
        let t = self.t_end;
        let y = self.y0 * (-a * t.powi(3) / 3.0 - b * t * t / 2.0 - c * t).exp();
        let y2 = y * y;
        StiffResult { y_end: y, dl_dy0: y2 / self.y0, dl_dtheta: [-y2 * t.powi(3) / 3.0, -y2 * t * t / 2.0, -y2 * t] }
    }

    fn grid(&self) -> Vec<f64> {
        (0..=self.steps).map(|i| self.t_end * i as f64 / self.steps as f64).collect()
    }

    /// Runs RK4 with `method` at precisions (`low`, `high`) on `device`; returns the result and,
    /// for the mixed-precision rows, the backward report. Non-finite results come back as NaN
    /// figures, not errors: failing is what some rows are expected to do.
    pub fn run(
        &self,
        method: StiffMethod,
        low: Precision,
        high: Precision,
        device: &Device,
    ) -> Result<(StiffResult, Option<BackwardReport>)> {
        let theta = Var::from_tensor(&Tensor::new(&self.theta, device)?.to_dtype(high.dtype())?)?;
        let y0 = Var::from_tensor(&Tensor::new(&[[self.y0]], device)?.to_dtype(high.dtype())?)?;
        let (ldt, th) = (low.dtype(), theta.as_tensor().clone());
        // f(t, y) = −(θ₁t² + θ₂t + θ₃) y, evaluated in y's dtype with θ cast to it (differentiably)
        let field = move |t: f64, y: &Tensor| -> ode_solvers::Result<Tensor> {
            let th = th.to_dtype(y.dtype())?;
            let rate = ((th.narrow(0, 0, 1)? * (t * t))? + (th.narrow(0, 1, 1)? * t)?)?.add(&th.narrow(0, 2, 1)?)?;
            Ok(y.broadcast_mul(&rate.neg()?.reshape((1, 1))?)?)
        };
        let to_f64 = |t: &Tensor| -> Result<f64> { Ok(t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?[0]) };
        let read = |y_end: &Tensor, dy0: f64, dth: Option<&Tensor>| -> Result<StiffResult> {
            let d = match dth {
                Some(g) => g.to_dtype(DType::F64)?.to_vec1::<f64>()?,
                None => vec![f64::NAN; 3],
            };
            Ok(StiffResult { y_end: to_f64(y_end)?, dl_dy0: dy0, dl_dtheta: [d[0], d[1], d[2]] })
        };
        match method {
            StiffMethod::MixedPrecision { scaled } => {
                let config =
                    MpConfig { policy: PrecisionPolicy::new(low, high)?, method: Method::Rk4, grid: self.grid(), save_at: SaveAt::Final };
                // the stored trajectory is already in L, so the field runs in L as it is
                let sol = solve_mixed(&field, y0.as_tensor(), &config)?;
                let loss = (sol.last().sqr()?.sum_all()? * 0.5)?;
                let mut grads = loss.backward()?;
                let mut scaler = if scaled { DynamicScaler::new(low) } else { DynamicScaler::disabled(low) };
                match sol.backward(&field, &[theta.as_tensor().clone()], &mut scaler, &mut grads) {
                    Ok((a0, report)) => Ok((read(sol.last(), to_f64(&a0)?, grads.get(theta.as_tensor()))?, Some(report))),
                    Err(crate::MpError::NonFinite { .. }) | Err(crate::MpError::ScalingFailed { .. }) => {
                        Ok((read(sol.last(), f64::NAN, None)?, None))
                    }
                    Err(e) => Err(e),
                }
            }
            StiffMethod::FullGraphAutocast | StiffMethod::NaiveLow => {
                // the naive baseline keeps the state in L too; autocast keeps it in H
                let y_start = match method {
                    StiffMethod::NaiveLow => y0.as_tensor().to_dtype(ldt)?,
                    _ => y0.as_tensor().clone(),
                };
                let autocast = Autocast::new(&field, low);
                let sol = solve(&autocast, Method::Rk4, &y_start, &SolveConfig::new(Steps::Grid(self.grid())).adjoint(Adjoint::FullGraph));
                let y_end = match sol {
                    Ok(s) => s.last().clone(),
                    Err(ode_solvers::SolverError::NonFinite { .. }) => {
                        return Ok((StiffResult { y_end: f64::NAN, dl_dy0: f64::NAN, dl_dtheta: [f64::NAN; 3] }, None))
                    }
                    Err(e) => return Err(e.into()),
                };
                let loss = (y_end.to_dtype(high.dtype())?.sqr()?.sum_all()? * 0.5)?;
                let grads = loss.backward()?;
                let dy0 = grads.get(y0.as_tensor()).map(to_f64).transpose()?.unwrap_or(f64::NAN);
                Ok((read(&y_end, dy0, grads.get(theta.as_tensor()))?, None))
            }
        }
    }
}
