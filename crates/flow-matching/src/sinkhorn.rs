//! Entropic optimal transport by Sinkhorn's algorithm in the log domain with ε-scaling
//! (Cuturi 2013; Schmitzer 2019; Liang's "Generative Models, Optimal Transport, and PDEs" "Sinkhorn"), on candle tensors in f64:
//!
//! f ← −ε LSE_j((g_j − C_ij)/ε + log b_j),  g ← −ε LSE_i((f_i − C_ij)/ε + log a_i),
//! P_ij = exp((f_i + g_j − C_ij)/ε + log a_i + log b_j),
//!
//! with ε decreased geometrically from max C to the target, then iterated until the row and
//! column marginals of P match a and b.

use crate::error::{FmError, Result};
use candle_core::{DType, Tensor};

/// Sinkhorn updates per ε-scaling stage above the target ε: a warm start only needs a few.
const STAGE_ITERS: usize = 3;

/// Settings of [`sinkhorn`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SinkhornConfig {
    /// Target regularisation ε (in cost units).
    pub eps: f64,
    /// Stop when the L1 marginal error is below this.
    pub tol: f64,
    /// Iteration budget at the target ε.
    pub max_iters: usize,
    /// Factor per ε-scaling stage (0 < factor < 1).
    pub scaling: f64,
}

impl SinkhornConfig {
    /// ε with tolerance 1e-9 and ε-scaling by ½.
    pub fn new(eps: f64) -> Self {
        Self { eps, tol: 1e-9, max_iters: 10_000, scaling: 0.5 }
    }
}

/// The entropic plan and what it cost.
pub struct SinkhornResult {
    /// P, (n, m), f64.
    pub plan: Tensor,
    /// ⟨C, P⟩.
    pub cost: f64,
    /// ‖P1 − a‖₁ + ‖Pᵀ1 − b‖₁ at the end.
    pub marginal_error: f64,
    /// Iterations at the target ε.
    pub iterations: usize,
}

fn marginal_error(plan: &Tensor, a: &Tensor, b: &Tensor) -> Result<f64> {
    let r = (plan.sum(1)? - a)?.abs()?.sum_all()?.to_scalar::<f64>()?;
    let c = (plan.sum(0)? - b)?.abs()?.sum_all()?.to_scalar::<f64>()?;
    Ok(r + c)
}

/// Entropic OT between weights `a` (n) and `b` (m) for cost `cost` (n, m).
pub fn sinkhorn(cost: &Tensor, a: &Tensor, b: &Tensor, cfg: SinkhornConfig) -> Result<SinkhornResult> {
    let (n, m) = cost.dims2()?;
    if a.dims() != [n] || b.dims() != [m] {
        return Err(FmError::Config(format!("sinkhorn: cost is {n}×{m} but weights have shapes {:?} and {:?}", a.dims(), b.dims())));
    }
    if !(cfg.eps > 0.0 && cfg.scaling > 0.0 && cfg.scaling < 1.0) {
        return Err(FmError::Config(format!("sinkhorn: need eps > 0 and 0 < scaling < 1, got {cfg:?}")));
    }
    let (c, a, b) = (cost.to_dtype(DType::F64)?, a.to_dtype(DType::F64)?, b.to_dtype(DType::F64)?);
    let (log_a, log_b) = (a.log()?.unsqueeze(0)?, b.log()?.unsqueeze(0)?);
    // f and g are kept as rows; −C/ε and its transpose are formed once per ε so that both
    // half-updates reduce along contiguous rows (one broadcast add and a log-sum-exp each)
    let kernels = |eps: f64| -> Result<(Tensor, Tensor)> {
        let k = (&c / -eps)?;
        let kt = k.t()?.contiguous()?;
        Ok((k, kt))
    };
    let update = |g: &Tensor, eps: f64, (k, kt): &(Tensor, Tensor)| -> Result<(Tensor, Tensor)> {
        let f = (k.broadcast_add(&((g / eps)? + &log_b)?)?.log_sum_exp(1)? * -eps)?.unsqueeze(0)?;
        let g = (kt.broadcast_add(&((&f / eps)? + &log_a)?)?.log_sum_exp(1)? * -eps)?.unsqueeze(0)?;
        Ok((f, g))
    };
    let mut eps = c.abs()?.max_all()?.to_scalar::<f64>()?.max(cfg.eps);
    let mut g = Tensor::zeros((1, m), DType::F64, c.device())?;
    while eps > cfg.eps {
        let k = kernels(eps)?;
        for _ in 0..STAGE_ITERS {
            g = update(&g, eps, &k)?.1;
        }
        eps = (eps * cfg.scaling).max(cfg.eps);
    }
    let k = kernels(cfg.eps)?;
    let plan_of = |f: &Tensor, g: &Tensor| -> Result<Tensor> {
        Ok(k.0.broadcast_add(&((f / cfg.eps)? + &log_a)?.t()?)?.broadcast_add(&((g / cfg.eps)? + &log_b)?)?.exp()?)
    };
    let mut f;
    (f, g) = update(&g, cfg.eps, &k)?;
    let mut err = f64::INFINITY;
    let mut iterations = 0;
    while iterations < cfg.max_iters {
        (f, g) = update(&g, cfg.eps, &k)?;
        iterations += 1;
        if iterations % 10 == 0 {
            err = marginal_error(&plan_of(&f, &g)?, &a, &b)?;
            if err < cfg.tol {
                break;
            }
        }
    }
    let plan = plan_of(&f, &g)?;
    err = err.min(marginal_error(&plan, &a, &b)?);
    if err >= cfg.tol {
        return Err(FmError::NotConverged { error: err, iterations });
    }
    let cost = (&plan * &c)?.sum_all()?.to_scalar::<f64>()?;
    Ok(SinkhornResult { plan, cost, marginal_error: err, iterations })
}
