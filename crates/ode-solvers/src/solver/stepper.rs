//! The stepper: one step of a fixed scheme, the unit every fixed-grid driver runs and the
//! checkpointed adjoint replays backwards, for Runge–Kutta methods and SDE schemes alike.

use crate::brownian::VirtualBrownianTree;
use crate::error::Result;
use crate::solver::explicit_rk::rk_step;
use crate::solver::{euler_maruyama, milstein, stochastic_heun, SdeMethod, Tableau};
use crate::state::State;
use crate::term::{OdeTerm, SdeTerm};

/// One step of a fixed scheme from t₀ to t₁: what every driver runs and what the checkpointed
/// adjoint replays.
pub(crate) trait Stepper<S: State> {
    /// (y₁, the FSAL stage to carry, evaluations).
    fn step(&self, t0: f64, t1: f64, y: &S, carry: Option<S>) -> Result<(S, Option<S>, usize)>;
}

pub(crate) struct RkStepper<'a, S: State> {
    pub tab: &'static Tableau,
    pub term: &'a dyn OdeTerm<S>,
}

impl<S: State> Stepper<S> for RkStepper<'_, S> {
    fn step(&self, t0: f64, t1: f64, y: &S, carry: Option<S>) -> Result<(S, Option<S>, usize)> {
        let s = rk_step(self.tab, self.term, t0, t1 - t0, y, carry)?;
        let carry = if self.tab.fsal { s.stages.last().cloned() } else { None };
        Ok((s.y1, carry, s.nfe))
    }
}

pub(crate) struct SdeStepper<'a, S: State> {
    pub method: SdeMethod,
    pub term: &'a dyn SdeTerm<S>,
    pub brownian: &'a VirtualBrownianTree,
}

impl<S: State> Stepper<S> for SdeStepper<'_, S> {
    fn step(&self, t0: f64, t1: f64, y: &S, _carry: Option<S>) -> Result<(S, Option<S>, usize)> {
        let dw = self.brownian.increment(y, t0, t1)?;
        let h = t1 - t0;
        let (y1, nfe) = match self.method {
            SdeMethod::EulerMaruyama => euler_maruyama::euler_maruyama_step(self.term, t0, h, y, &dw)?,
            SdeMethod::Milstein => milstein::milstein_step(self.term, t0, h, y, &dw)?,
            SdeMethod::StochasticHeun => stochastic_heun::stochastic_heun_step(self.term, t0, h, y, &dw)?,
        };
        Ok((y1, None, nfe))
    }
}
