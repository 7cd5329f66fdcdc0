//! Stochastic Heun (Rümelin 1982): predictor ỹ = y₀ + f(y₀)h + g(y₀)ΔW, corrector
//! y₁ = y₀ + ½(f(y₀) + f(ỹ))h + ½(g(y₀) + g(ỹ))ΔW. Converges to the Stratonovich solution.

use crate::error::Result;
use crate::state::{add, check_like, lincomb, mul, State};
use crate::term::SdeTerm;

/// One stochastic Heun step; returns (y₁, evaluations of f and g).
pub fn stochastic_heun_step<S: State>(term: &dyn SdeTerm<S>, t: f64, h: f64, y0: &S, dw: &S) -> Result<(S, usize)> {
    let f0 = term.drift(t, y0)?;
    check_like(&f0, y0, "the drift")?;
    let g0 = term.diffusion(t, y0)?;
    check_like(&g0, y0, "the diffusion")?;
    let y_pred = lincomb(y0, &[(h, &f0), (1.0, &mul(&g0, dw)?)])?;
    let f1 = term.drift(t + h, &y_pred)?;
    let g1 = term.diffusion(t + h, &y_pred)?;
    let gdw = mul(&add(&g0, &g1)?, dw)?;
    Ok((lincomb(y0, &[(0.5 * h, &f0), (0.5 * h, &f1), (0.5, &gdw)])?, 4))
}
