//! Euler–Maruyama (Kloeden & Platen 1992, §10.2): y₁ = y₀ + f(t₀, y₀) h + g(t₀, y₀) ⊙ ΔW.

use crate::error::Result;
use crate::state::{check_like, lincomb, mul, State};
use crate::term::SdeTerm;

/// One Euler–Maruyama step; returns (y₁, evaluations of f and g).
pub fn euler_maruyama_step<S: State>(term: &dyn SdeTerm<S>, t: f64, h: f64, y0: &S, dw: &S) -> Result<(S, usize)> {
    let f = term.drift(t, y0)?;
    check_like(&f, y0, "the drift")?;
    let g = term.diffusion(t, y0)?;
    check_like(&g, y0, "the diffusion")?;
    let gdw = mul(&g, dw)?;
    Ok((lincomb(y0, &[(h, &f), (1.0, &gdw)])?, 2))
}
