//! Optimise-then-discretise: the continuous adjoint solved backwards in time.
//!
//! ODE (Pontryagin; Chen et al. 2018): with y' = f(t, y, θ), the augmented state (y, a, g)
//! obeys y' = f, a' = −aᵀ∂f/∂y, g' = −aᵀ∂f/∂θ from (y(T), ∂L/∂y(T), 0) back to t₀, where
//! a(t₀) = ∂L/∂y₀ and g(t₀) = ∂L/∂θ. y is re-integrated backwards, as torchdiffeq does.
//!
//! SDE (Li, Wong, Chen, Duvenaud 2020), Stratonovich form dy = f̃ dt + g∘dW: the augmented
//! state follows dy = f̃ dt + g∘dW, da = −aᵀ∂f̃/∂y dt − aᵀ∂g/∂y∘dW, dg_θ likewise, backwards on
//! the same Brownian path, by stochastic Heun. An Itô term needs f̃ = f − ½ g ∂g/∂y first
//! (Øksendal; Ruthotto, "Continuous-Time Deep Learning for Generative AI and High-Dim PDEs", Leburu–Nurbekyan–Ruthotto): without it the gradient is biased whenever
//! ∂g/∂y depends on y.

use super::{accumulate, vjp, Tape};
use crate::brownian::VirtualBrownianTree;
use crate::error::{Result, SolverError};
use crate::solve::{solve, SolveConfig, Steps};
use crate::solver::Method;
use crate::state::{detach, lincomb, mul, scale, zeros_like, State};
use crate::term::{Calculus, OdeTerm, SdeTerm};
use candle_core::Tensor;

/// Whether the continuous adjoint of an Itô SDE applies the Itô → Stratonovich drift correction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ItoCorrection {
    /// f̃ = f − ½ g ∂g/∂y (needs `SdeTerm::diffusion_derivative`): unbiased.
    Apply,
    /// Use the Itô drift as if it were Stratonovich: the naive, biased OTD.
    Skip,
}

fn split<S: State>(z: &[Tensor], like: &S, nl: usize) -> Result<(S, S, Vec<Tensor>)> {
    Ok((like.with_leaves(z[..nl].to_vec())?, like.with_leaves(z[nl..2 * nl].to_vec())?, z[2 * nl..].to_vec()))
}

fn negated(gp: Vec<Option<Tensor>>, params: &[Tensor]) -> Result<Vec<Tensor>> {
    gp.into_iter()
        .zip(params)
        .map(|(g, p)| {
            Ok(match g {
                Some(g) => g.neg()?,
                None => p.detach().zeros_like()?,
            })
        })
        .collect()
}

/// The starting point of a backward sweep: the last output boundary and the state there.
fn start<S: State>(tape: &Tape<S>) -> Result<(usize, S)> {
    let (k, &i) =
        tape.out_index.iter().enumerate().max_by_key(|(_, &i)| i).ok_or_else(|| SolverError::Config("a solve with no outputs".into()))?;
    Ok((i, detach(&tape.outputs[k])?))
}

pub(crate) fn backward_ode<S: State>(
    term: &dyn OdeTerm<S>,
    method: Method,
    tape: &Tape<S>,
    cots: &[(usize, S)],
    params: &[Tensor],
) -> Result<(S, Vec<Option<Tensor>>)> {
    let (last, y_last) = start(tape)?;
    let nl = y_last.leaves().len();
    let a = Tape::add_cotangent(cots, last, zeros_like(&y_last)?)?;
    let mut z: Vec<Tensor> = y_last
        .leaves()
        .into_iter()
        .chain(a.leaves())
        .chain(params.iter().map(|p| p.detach().zeros_like()).collect::<candle_core::Result<Vec<_>>>()?)
        .collect();
    let like = y_last.clone();
    let augmented = |t: f64, z: &Vec<Tensor>| -> Result<Vec<Tensor>> {
        let (y, a, _) = split(z, &like, nl)?;
        let (f, a_fy, a_ft) = vjp(&y, &a, params, |y| term.vector_field(t, y))?;
        Ok(f.leaves().into_iter().chain(scale(&a_fy, -1.0)?.leaves()).chain(negated(a_ft, params)?).collect())
    };
    // boundaries where cotangents enter, walked backwards
    let mut stops: Vec<usize> = tape.out_index.iter().copied().filter(|&i| i < last).chain(std::iter::once(0)).collect();
    stops.sort_unstable();
    stops.dedup();
    let mut hi = last;
    for &lo in stops.iter().rev() {
        if lo < hi {
            let steps = match tape.backward_controller {
                Some(controller) => Steps::Adaptive { t0: tape.nodes[hi], t1: tape.nodes[lo], controller },
                None => Steps::Grid(tape.nodes[lo..=hi].iter().rev().copied().collect()),
            };
            z = solve(&augmented, method, &z, &SolveConfig::new(steps))?.last().clone();
        }
        let (y, a, g) = split(&z, &like, nl)?;
        let a = Tape::add_cotangent(cots, lo, a)?;
        z = y.leaves().into_iter().chain(a.leaves()).chain(g).collect();
        hi = lo;
    }
    let (_, a0, g) = split(&z, &like, nl)?;
    Ok((a0, g.into_iter().map(Some).collect()))
}

pub(crate) fn backward_sde<S: State>(
    term: &dyn SdeTerm<S>,
    brownian: &VirtualBrownianTree,
    correction: ItoCorrection,
    tape: &Tape<S>,
    cots: &[(usize, S)],
    params: &[Tensor],
) -> Result<(S, Vec<Option<Tensor>>)> {
    let correct = term.calculus() == Calculus::Ito && correction == ItoCorrection::Apply;
    // the Stratonovich drift the adjoint integrates
    let drift = |t: f64, y: &S| -> Result<S> {
        let f = term.drift(t, y)?;
        if !correct {
            return Ok(f);
        }
        let dg = term
            .diffusion_derivative(t, y)?
            .ok_or_else(|| SolverError::Mismatch("the Itô → Stratonovich correction needs SdeTerm::diffusion_derivative".into()))?;
        lincomb(&f, &[(-0.5, &mul(&term.diffusion(t, y)?, &dg)?)])
    };
    let (last, mut y) = start(tape)?;
    let mut a = Tape::add_cotangent(cots, last, zeros_like(&y)?)?;
    let mut g: Vec<Option<Tensor>> = vec![None; params.len()];
    // augmented increment over [t, t + h] with Brownian increment dw: (Δy, Δa, Δg)
    let increment = |t: f64, h: f64, dw: &S, y: &S, a: &S| -> Result<(S, S, Vec<Option<Tensor>>)> {
        let (dy, a_dy, a_dt) = vjp(y, a, params, |y| lincomb(&scale(&drift(t, y)?, h)?, &[(1.0, &mul(&term.diffusion(t, y)?, dw)?)]))?;
        Ok((dy, scale(&a_dy, -1.0)?, a_dt))
    };
    for n in (0..last).rev() {
        let (t1, t0) = (tape.nodes[n + 1], tape.nodes[n]);
        let (h, dw) = (t0 - t1, brownian.increment(&y, t1, t0)?);
        // stochastic Heun on the augmented system, backwards in time
        let (dy1, da1, dg1) = increment(t1, h, &dw, &y, &a)?;
        let (y_pred, a_pred) = (crate::state::add(&y, &dy1)?, crate::state::add(&a, &da1)?);
        let (dy2, da2, dg2) = increment(t0, h, &dw, &y_pred, &a_pred)?;
        y = lincomb(&y, &[(0.5, &dy1), (0.5, &dy2)])?;
        a = lincomb(&a, &[(0.5, &da1), (0.5, &da2)])?;
        accumulate(&mut g, dg1, -0.5)?;
        accumulate(&mut g, dg2, -0.5)?;
        a = Tape::add_cotangent(cots, n, a)?;
    }
    Ok((a, g))
}
