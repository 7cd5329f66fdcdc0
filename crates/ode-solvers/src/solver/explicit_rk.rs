//! The one explicit Runge–Kutta stepper: k_i = f(t + c_i h, y₀ + h Σ_j a_ij k_j),
//! y₁ = y₀ + h Σ b_i k_i, error estimate h Σ e_i k_i; and its dense output.

use super::tableau::{tsit5_weights, DenseOutput, Tableau};
use crate::error::{Result, SolverError};
use crate::state::{check_like, lincomb, State};
use crate::term::OdeTerm;

/// The result of one step.
pub struct RkStep<S> {
    /// y₁.
    pub y1: S,
    /// h Σ (b_i − b̂_i) k_i for embedded pairs.
    pub err: Option<S>,
    /// The stages k_i (dense output needs them).
    pub stages: Vec<S>,
    /// Vector-field evaluations this step made.
    pub nfe: usize,
}

/// The stages k_i of one step from (t, y₀) and the evaluations made; `k0` = f(t, y₀) when known.
fn rk_stages<S: State>(tab: &Tableau, term: &dyn OdeTerm<S>, t: f64, h: f64, y0: &S, k0: Option<S>) -> Result<(Vec<S>, usize)> {
    let mut nfe = 0;
    let k0 = match k0 {
        Some(k) => k,
        None => {
            nfe += 1;
            let k = term.vector_field(t, y0)?;
            check_like(&k, y0, "the vector field")?;
            k
        }
    };
    let mut stages = Vec::with_capacity(tab.stages());
    stages.push(k0);
    for i in 1..tab.stages() {
        let terms: Vec<(f64, &S)> = tab.a[i].iter().zip(&stages).map(|(a, k)| (h * a, k)).collect();
        let yi = lincomb(y0, &terms)?;
        stages.push(term.vector_field(t + tab.c[i] * h, &yi)?);
        nfe += 1;
    }
    Ok((stages, nfe))
}

/// The increment direction Φ = Σ b_i k_i of one step, so that y₁ = y₀ + hΦ. Computed in y₀'s
/// dtype: Ruthotto's "Continuous-Time Deep Learning for Generative AI and High-Dim PDEs" mixed-precision forward evaluates it in the low precision and adds hΦ in
/// the high one.
pub fn rk_increment<S: State>(tab: &Tableau, term: &dyn OdeTerm<S>, t: f64, h: f64, y0: &S) -> Result<(S, usize)> {
    let (stages, nfe) = rk_stages(tab, term, t, h, y0, None)?;
    let terms: Vec<(f64, &S)> = tab.b.iter().zip(&stages).map(|(b, k)| (*b, k)).collect();
    Ok((lincomb(&crate::state::zeros_like(y0)?, &terms)?, nfe))
}

/// One step of `tab` from (t, y₀) with step h; `k0` = f(t, y₀) when already known (FSAL).
pub fn rk_step<S: State>(tab: &Tableau, term: &dyn OdeTerm<S>, t: f64, h: f64, y0: &S, k0: Option<S>) -> Result<RkStep<S>> {
    let (stages, nfe) = rk_stages(tab, term, t, h, y0, k0)?;
    let weighted = |w: &[f64], base: &S| -> Result<S> {
        let terms: Vec<(f64, &S)> = w.iter().zip(&stages).map(|(b, k)| (h * b, k)).collect();
        lincomb(base, &terms)
    };
    let y1 = weighted(tab.b, y0)?;
    let err = match tab.b_err {
        Some(e) => {
            let zero = crate::state::zeros_like(y0)?;
            Some(weighted(e, &zero)?)
        }
        None => None,
    };
    Ok(RkStep { y1, err, stages, nfe })
}

/// y(t₀ + θh) inside a step, by the tableau's continuous extension.
pub fn dense_eval<S: State>(tab: &Tableau, theta: f64, h: f64, y0: &S, y1: &S, stages: &[S]) -> Result<S> {
    let last = || stages.last().ok_or_else(|| SolverError::Shape("a step with no stages".into()));
    match tab.dense {
        DenseOutput::None => Err(SolverError::BadSaveAt(format!("{} has no dense output: put output times on the step grid", tab.name))),
        DenseOutput::Hermite => {
            let (t2, t3) = (theta * theta, theta * theta * theta);
            let (h00, h10, h01, h11) = (2.0 * t3 - 3.0 * t2 + 1.0, t3 - 2.0 * t2 + theta, -2.0 * t3 + 3.0 * t2, t3 - t2);
            let base = crate::state::scale(y0, h00)?;
            lincomb(&base, &[(h10 * h, &stages[0]), (h01, y1), (h11 * h, last()?)])
        }
        DenseOutput::QuarticMidpoint(c_mid) => {
            // y(θ) = e + θd + θ²c + θ³b + θ⁴a through y₀, y_mid, y₁ with slopes f₀, f₁
            let mid_terms: Vec<(f64, &S)> = c_mid.iter().zip(stages).map(|(c, k)| (h * c, k)).collect();
            let y_mid = lincomb(y0, &mid_terms)?;
            let (f0, f1) = (&stages[0], last()?);
            let (x, x2, x3, x4) = (theta, theta.powi(2), theta.powi(3), theta.powi(4));
            // coefficients of y₀, y₁, y_mid, h f₀, h f₁ in Σ θ^k coef_k
            let cy0 = 1.0 - 11.0 * x2 + 18.0 * x3 - 8.0 * x4;
            let cy1 = -5.0 * x2 + 14.0 * x3 - 8.0 * x4;
            let cym = 16.0 * x2 - 32.0 * x3 + 16.0 * x4;
            let cf0 = x - 4.0 * x2 + 5.0 * x3 - 2.0 * x4;
            let cf1 = x2 - 3.0 * x3 + 2.0 * x4;
            let base = crate::state::scale(y0, cy0)?;
            lincomb(&base, &[(cy1, y1), (cym, &y_mid), (cf0 * h, f0), (cf1 * h, f1)])
        }
        DenseOutput::Tsit5 => {
            let w = tsit5_weights(theta);
            let terms: Vec<(f64, &S)> = w.iter().zip(stages).map(|(b, k)| (h * b, k)).collect();
            lincomb(y0, &terms)
        }
    }
}
