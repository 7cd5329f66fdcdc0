//! What the memory-saving adjoints keep from the forward pass: the states (checkpointed) or
//! nothing but the outputs (continuous), the step boundaries, and the method the backward pass
//! must replay.

use super::{deliver_gradients, output_cotangent};
use crate::controller::PiController;
use crate::error::Result;
use crate::solver::{Method, SdeMethod};
use crate::state::State;
use candle_core::backprop::GradStore;
use candle_core::Tensor;

/// The scheme a taped solve used; its backward pass must replay the same one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TapedMethod {
    Ode(Method),
    Sde(SdeMethod),
}

pub(crate) enum TapeKind<S> {
    Checkpointed(Vec<S>),
    Continuous,
}

/// What the memory-saving adjoints keep from the forward pass.
pub(crate) struct Tape<S: State> {
    pub kind: TapeKind<S>,
    /// Step boundaries t₀ … t_N.
    pub nodes: Vec<f64>,
    /// For each output, its step-boundary index.
    pub out_index: Vec<usize>,
    /// The output leaves handed to the user (their gradients are the cotangents).
    pub outputs: Vec<S>,
    /// The initial state as given (maybe tracked).
    pub y0: S,
    /// Adaptive forward solves: the controller the backward solve reuses.
    pub backward_controller: Option<PiController>,
    /// The method of the forward solve.
    pub method: TapedMethod,
}

impl<S: State> Tape<S> {
    /// Cotangents at step boundaries: index → Σ of the output gradients found in `grads`.
    pub(crate) fn cotangents(&self, grads: &GradStore) -> Result<Vec<(usize, S)>> {
        let mut out: Vec<(usize, S)> = Vec::new();
        for (&i, y) in self.out_index.iter().zip(&self.outputs) {
            let c = output_cotangent(y, grads)?;
            match out.iter_mut().find(|(j, _)| *j == i) {
                Some((_, acc)) => *acc = crate::state::add(acc, &c)?,
                None => out.push((i, c)),
            }
        }
        Ok(out)
    }

    /// Adds the cotangent entering at boundary `i` (if any) to `a`.
    pub(crate) fn add_cotangent(cots: &[(usize, S)], i: usize, a: S) -> Result<S> {
        match cots.iter().find(|(j, _)| *j == i) {
            Some((_, c)) => crate::state::add(&a, c),
            None => Ok(a),
        }
    }

    /// Hands the results to the user's store: parameter gradients added in, ∂L/∂y₀ propagated
    /// into whatever y₀ was computed from.
    pub(crate) fn deliver(&self, a0: &S, params: &[Tensor], param_grads: Vec<Option<Tensor>>, grads: &mut GradStore) -> Result<()> {
        deliver_gradients(&self.y0, a0, params, param_grads, grads)
    }
}
