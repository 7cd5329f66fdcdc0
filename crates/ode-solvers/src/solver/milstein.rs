//! Milstein's scheme for diagonal noise (Kloeden & Platen 1992, §10.3):
//! y₁ = y₀ + f h + g ΔW + ½ g ∂g/∂y (ΔW² − h), Itô, strong order 1.
//! Without an analytic ∂g/∂y from the term, the derivative-free form (Kloeden & Platen §11.1)
//! replaces g ∂g/∂y by (g(ȳ) − g(y₀))/√h with ȳ = y₀ + f h + g √h.

use crate::error::Result;
use crate::state::{check_like, lincomb, mul, State};
use crate::term::SdeTerm;

/// One Milstein step; returns (y₁, evaluations of f, g and ∂g).
pub fn milstein_step<S: State>(term: &dyn SdeTerm<S>, t: f64, h: f64, y0: &S, dw: &S) -> Result<(S, usize)> {
    let f = term.drift(t, y0)?;
    check_like(&f, y0, "the drift")?;
    let g = term.diffusion(t, y0)?;
    check_like(&g, y0, "the diffusion")?;
    let dw2_minus_h = dw.with_leaves(dw.leaves().iter().map(|w| Ok((w.sqr()? - h)?)).collect::<Result<_>>()?)?;
    let (gg, nfe) = match term.diffusion_derivative(t, y0)? {
        Some(dg) => (mul(&g, &dg)?, 3),
        None => {
            let sqrt_h = h.abs().sqrt();
            let y_bar = lincomb(y0, &[(h, &f), (sqrt_h, &g)])?;
            let g_bar = term.diffusion(t, &y_bar)?;
            (crate::state::scale(&lincomb(&g_bar, &[(-1.0, &g)])?, 1.0 / sqrt_h)?, 3)
        }
    };
    let correction = mul(&gg, &dw2_minus_h)?;
    let gdw = mul(&g, dw)?;
    Ok((lincomb(y0, &[(h, &f), (1.0, &gdw), (0.5, &correction)])?, nfe))
}
