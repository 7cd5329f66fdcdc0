//! What a solve returns: output times and states, statistics, and for the memory-saving
//! adjoints the tape their backward pass replays.

use crate::state::State;

/// Counters of a solve.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Vector-field (drift/diffusion) evaluations.
    pub nfe: usize,
    /// Accepted steps.
    pub accepted: usize,
    /// Rejected steps (adaptive only).
    pub rejected: usize,
}

/// The solution of an ODE or SDE solve.
pub struct Solution<S: State> {
    /// Output times.
    pub ts: Vec<f64>,
    /// States at the output times. Under [`crate::Adjoint::FullGraph`] they carry the autograd
    /// graph; under the other adjoints they are fresh leaves whose gradients the user's
    /// `backward()` finds and `Solution::backward` carries on through the solve.
    pub ys: Vec<S>,
    /// Counters.
    pub stats: Stats,
    pub(crate) tape: Option<crate::adjoint::Tape<S>>,
}

impl<S: State> Solution<S> {
    /// The last output state.
    pub fn last(&self) -> &S {
        self.ys.last().expect("a solution has at least one output")
    }
}
