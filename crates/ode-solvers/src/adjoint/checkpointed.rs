//! The discrete adjoint with checkpoints (Gholami, Keutzer, Biros 2019, "ANODE"; Ruthotto's "Continuous-Time Deep Learning for Generative AI and High-Dim PDEs"
//! DTO): from the stored states y_n, rebuild step n's graph alone, pull the cotangent back
//! a_n = (∂y_{n+1}/∂y_n)ᵀ a_{n+1}, and add (∂y_{n+1}/∂θ)ᵀ a_{n+1} to ∂L/∂θ. Exactly the
//! gradient of the discrete solution, with only one step's graph alive at a time.

use super::{accumulate, vjp, Tape};
use crate::error::Result;
use crate::solver::stepper::Stepper;
use crate::state::{zeros_like, State};
use candle_core::Tensor;

pub(crate) fn backward<S: State>(
    stepper: &dyn Stepper<S>,
    tape: &Tape<S>,
    states: &[S],
    cots: &[(usize, S)],
    params: &[Tensor],
) -> Result<(S, Vec<Option<Tensor>>)> {
    let n_steps = tape.nodes.len() - 1;
    let mut a = Tape::add_cotangent(cots, n_steps, zeros_like(&states[n_steps])?)?;
    let mut param_grads: Vec<Option<Tensor>> = vec![None; params.len()];
    for n in (0..n_steps).rev() {
        let (t0, t1) = (tape.nodes[n], tape.nodes[n + 1]);
        let (_, a_prev, gp) = vjp(&states[n], &a, params, |y| Ok(stepper.step(t0, t1, y, None)?.0))?;
        accumulate(&mut param_grads, gp, 1.0)?;
        a = Tape::add_cotangent(cots, n, a_prev)?;
    }
    Ok((a, param_grads))
}
