//! Gradients through a solve, three ways, all ending in one candle `GradStore`:
//!
//! 1. [`Adjoint::FullGraph`] — discretise-then-optimise by recording every step in candle's
//!    autograd graph (torchdiffeq's `odeint`): exact for the discrete solution, memory O(N·graph).
//! 2. [`Adjoint::Checkpointed`] — the discrete adjoint: keep only the states, rebuild one step's
//!    graph at a time backwards (`checkpointed.rs`). Same numbers as 1 up to round-off, memory
//!    O(N·state).
//! 3. [`Adjoint::Continuous`] — optimise-then-discretise: solve the adjoint ODE/SDE backwards
//!    (torchdiffeq's `odeint_adjoint`; `continuous.rs`). Memory O(state); gradients converge to
//!    the discrete ones as the step shrinks.
//!
//! With 2 and 3 the solution's outputs are fresh autograd leaves: compute the loss from them,
//! call `loss.backward()`, then `Solution::backward*` with the parameters to carry the
//! cotangents through the solve; parameter gradients are added into the store, and ∂L/∂y₀ is
//! returned (and propagated further when y₀ itself came from tracked computation).

mod checkpointed;
mod continuous;
mod tape;

pub(crate) use tape::{Tape, TapeKind, TapedMethod};

pub use continuous::ItoCorrection;

use crate::brownian::VirtualBrownianTree;
use crate::error::{Result, SolverError};
use crate::solution::Solution;
use crate::solver::{Method, SdeMethod};
use crate::state::{dot, State};
use crate::term::{OdeTerm, SdeTerm};
use candle_core::backprop::GradStore;
use candle_core::Tensor;

/// How gradients flow through a solve.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Adjoint {
    /// Backprop through the recorded steps.
    FullGraph,
    /// Discrete adjoint with recomputation of one step at a time.
    Checkpointed,
    /// Continuous adjoint equation solved backwards.
    Continuous,
}

impl<S: State> Solution<S> {
    /// The tape, checked against the method the caller replays: a backward pass with another
    /// method than the forward solve's would silently differentiate a different discretisation.
    fn tape(&self, replay: TapedMethod) -> Result<&Tape<S>> {
        let tape = self.tape.as_ref().ok_or_else(|| {
            SolverError::Config("this solution was solved with Adjoint::FullGraph: call backward() on the loss instead".into())
        })?;
        if tape.method != replay {
            return Err(SolverError::Mismatch(format!(
                "backward pass with {replay:?}, but the forward solve used {:?}: pass the forward solve's method",
                tape.method
            )));
        }
        Ok(tape)
    }

    /// Carries the output cotangents in `grads` back through an ODE solve (checkpointed or
    /// continuous adjoint), adds ∂L/∂θ for each of `params` into `grads` and returns ∂L/∂y₀.
    /// `term` and `method` must be the ones of the forward solve (another method is a
    /// [`SolverError::Mismatch`]).
    pub fn backward(&self, term: &dyn OdeTerm<S>, method: Method, params: &[Tensor], grads: &mut GradStore) -> Result<S> {
        let tape = self.tape(TapedMethod::Ode(method))?;
        let cots = tape.cotangents(grads)?;
        let (a0, pg) = match &tape.kind {
            TapeKind::Checkpointed(states) => {
                let stepper = crate::solver::stepper::RkStepper { tab: method.tableau(), term };
                checkpointed::backward(&stepper, tape, states, &cots, params)?
            }
            TapeKind::Continuous => continuous::backward_ode(term, method, tape, &cots, params)?,
        };
        tape.deliver(&a0, params, pg, grads)?;
        Ok(a0)
    }

    /// As [`Solution::backward`] for an SDE solve, replaying the same Brownian path. For the
    /// continuous adjoint of an Itô term, `correction` chooses between the Itô → Stratonovich
    /// corrected adjoint (unbiased) and the naive one (biased when ∂g/∂y depends on y; kept to
    /// reproduce Ruthotto's "Continuous-Time Deep Learning for Generative AI and High-Dim PDEs" comparison). Ignored by the checkpointed adjoint.
    pub fn backward_sde(
        &self,
        term: &dyn SdeTerm<S>,
        method: SdeMethod,
        brownian: &VirtualBrownianTree,
        correction: ItoCorrection,
        params: &[Tensor],
        grads: &mut GradStore,
    ) -> Result<S> {
        let tape = self.tape(TapedMethod::Sde(method))?;
        let cots = tape.cotangents(grads)?;
        let (a0, pg) = match &tape.kind {
            TapeKind::Checkpointed(states) => {
                let stepper = crate::solver::stepper::SdeStepper { method, term, brownian };
                checkpointed::backward(&stepper, tape, states, &cots, params)?
            }
            TapeKind::Continuous => continuous::backward_sde(term, brownian, correction, tape, &cots, params)?,
        };
        tape.deliver(&a0, params, pg, grads)?;
        Ok(a0)
    }
}

/// The gradient `grads` holds for each leaf of an output state (zero where it has none), detached:
/// the cotangent a memory-saving adjoint starts from.
pub fn output_cotangent<S: State>(y: &S, grads: &GradStore) -> Result<S> {
    y.with_leaves(y.leaves().iter().map(|l| Ok(grads.get(l).map(Tensor::detach).unwrap_or(l.zeros_like()?))).collect::<Result<Vec<_>>>()?)
}

/// Hands an adjoint's results to the user's gradient store: each parameter gradient is added in
/// (cast to the parameter's dtype), and ∂L/∂y₀ = `a0` is propagated into whatever tracked
/// computation produced `y0` (one backward through the surrogate ⟨y₀, a₀⟩).
pub fn deliver_gradients<S: State>(
    y0: &S,
    a0: &S,
    params: &[Tensor],
    param_grads: Vec<Option<Tensor>>,
    grads: &mut GradStore,
) -> Result<()> {
    let mut store = GradStore::default();
    for (p, g) in params.iter().zip(param_grads) {
        if let Some(g) = g {
            store.insert(p, g.to_dtype(p.dtype())?);
        }
    }
    grads.extend(store)?;
    if y0.leaves().iter().any(|l| l.track_op()) {
        let a0 =
            a0.with_leaves(a0.leaves().iter().zip(y0.leaves()).map(|(a, y)| Ok(a.detach().to_dtype(y.dtype())?)).collect::<Result<_>>()?)?;
        grads.extend(dot(y0, &a0)?.backward()?)?;
    }
    Ok(())
}

/// VJP of `f` at `y` with cotangent `a`: (f(y) detached, aᵀ∂f/∂y, aᵀ∂f/∂θ for each param).
/// One first-order backward through a surrogate ⟨f(y), a⟩; y is made a fresh leaf. Everything
/// returned is detached.
pub fn vjp<S: State>(y: &S, a: &S, params: &[Tensor], f: impl FnOnce(&S) -> Result<S>) -> Result<(S, S, Vec<Option<Tensor>>)> {
    let y_leaf = y.with_leaves(
        y.leaves().iter().map(|l| Ok(candle_core::Var::from_tensor(&l.detach())?.as_tensor().clone())).collect::<Result<_>>()?,
    )?;
    let fy = f(&y_leaf)?;
    let g = dot(&fy, &crate::state::detach(a)?)?.backward()?;
    // candle's gradient tensors keep an op pointing into the forward graph (a weight's gradient
    // references the layer input): detach, or summing them over steps chains every step's graph
    let gy = y_leaf
        .with_leaves(y_leaf.leaves().iter().map(|l| Ok(g.get(l).map(Tensor::detach).unwrap_or(l.zeros_like()?))).collect::<Result<_>>()?)?;
    let gp = params.iter().map(|p| g.get(p).map(Tensor::detach)).collect();
    Ok((crate::state::detach(&fy)?, gy, gp))
}

/// Σ of optional gradients.
pub(crate) fn accumulate(acc: &mut [Option<Tensor>], new: Vec<Option<Tensor>>, scale: f64) -> Result<()> {
    for (a, n) in acc.iter_mut().zip(new) {
        if let Some(n) = n {
            let n = if scale == 1.0 { n } else { (n * scale)? };
            *a = Some(match a.take() {
                Some(x) => (x + n)?,
                None => n,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// A VJP's outputs must not hold the forward graph: summed over steps they would keep every
    /// step's activations alive (the continuous adjoint's memory grew with N before this).
    #[test]
    fn vjp_outputs_carry_no_graph() -> Result<()> {
        let w = Var::new(&[[0.5f64, -1.0], [2.0, 0.3]], &Device::Cpu)?;
        let y = Tensor::new(&[[1.0f64, 2.0]], &Device::Cpu)?;
        let a = Tensor::new(&[[0.1f64, -0.2]], &Device::Cpu)?;
        let params = [w.as_tensor().clone()];
        let (f, gy, gp) = vjp(&y, &a, &params, |y| Ok(y.matmul(w.as_tensor())?.tanh()?.matmul(w.as_tensor())?))?;
        assert!(!f.track_op() && !gy.track_op());
        assert!(gp.iter().flatten().all(|g| !g.track_op()));
        Ok(())
    }
}
