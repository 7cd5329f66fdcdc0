//! Entropic optimal transport by Sinkhorn's algorithm (Cuturi 2013; Schmitzer 2019; Liang's
//! "Generative Models, Optimal Transport, and PDEs" "Sinkhorn"), on candle tensors in f64, in one
//! of two domains:
//!
//! - **kernel**: u ← a ⊘ Kv, v ← b ⊘ Kᵀu with K = exp((α ⊕ β − C)/ε), two matrix–vector products
//!   per iteration; whenever u or v leaves [1/τ, τ] it is absorbed into the log potentials
//!   (α += ε log u, β += ε log v, u = v = 1, K recomputed), as POT's `sinkhorn_stabilized`;
//! - **log**: f ← −ε LSE_j((g_j − C_ij)/ε + log b_j), g ← −ε LSE_i((f_i − C_ij)/ε + log a_i), with ε
//!   decreased geometrically from max C to the target (ε-scaling), for ε so small that
//!   exp(−C/ε) underflows.
//!
//! [`SinkhornDomain::Auto`] picks the kernel domain when max C/ε ≤ 100 (K ≥ e⁻¹⁰⁰, far from f64's
//! underflow) and the log domain otherwise. Both iterate until the marginals of the plan match a
//! and b to `tol` in max-abs (as POT reports it) and give the same plan.

use crate::error::{FmError, Result};
use candle_core::{DType, Tensor};

/// Sinkhorn updates per ε-scaling stage above the target ε: a warm start only needs a few.
const STAGE_ITERS: usize = 3;
/// The kernel domain absorbs u, v into the potentials when they leave [1/τ, τ].
const ABSORB_TAU: f64 = 1e3;
/// `Auto` uses the kernel domain up to this max C/ε.
const KERNEL_MAX_RATIO: f64 = 100.0;

/// Where [`sinkhorn`] iterates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SinkhornDomain {
    /// Kernel when max C/ε ≤ 100, else log.
    Auto,
    /// Scalings u, v and matrix–vector products with absorption (fast; K must not underflow).
    Kernel,
    /// Log-sum-exp updates of the potentials with ε-scaling (any ε).
    Log,
}

/// Settings of [`sinkhorn`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SinkhornConfig {
    /// Target regularisation ε (in cost units).
    pub eps: f64,
    /// Stop when the L1 marginal error is below this.
    pub tol: f64,
    /// Iteration budget at the target ε.
    pub max_iters: usize,
    /// Factor per ε-scaling stage of the log domain (0 < factor < 1).
    pub scaling: f64,
    pub domain: SinkhornDomain,
}

impl SinkhornConfig {
    /// ε with tolerance 1e-9, ε-scaling by ½, the domain picked automatically.
    pub fn new(eps: f64) -> Self {
        Self { eps, tol: 1e-9, max_iters: 10_000, scaling: 0.5, domain: SinkhornDomain::Auto }
    }
}

/// The entropic plan and what it cost.
pub struct SinkhornResult {
    /// P, (n, m), f64.
    pub plan: Tensor,
    /// ⟨C, P⟩.
    pub cost: f64,
    /// max(‖P1 − a‖_∞, ‖Pᵀ1 − b‖_∞) at the end.
    pub marginal_error: f64,
    /// Iterations at the target ε.
    pub iterations: usize,
    /// The domain that ran.
    pub domain: SinkhornDomain,
}

fn marginal_error(plan: &Tensor, a: &Tensor, b: &Tensor) -> Result<f64> {
    let r = (plan.sum(1)? - a)?.abs()?.max_all()?.to_scalar::<f64>()?;
    let c = (plan.sum(0)? - b)?.abs()?.max_all()?.to_scalar::<f64>()?;
    Ok(r.max(c))
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
    let ratio = c.abs()?.max_all()?.to_scalar::<f64>()? / cfg.eps;
    let result = match cfg.domain {
        SinkhornDomain::Kernel => kernel_domain(&c, &a, &b, cfg)?,
        SinkhornDomain::Auto if ratio <= KERNEL_MAX_RATIO => kernel_domain(&c, &a, &b, cfg)?,
        _ => log_domain(&c, &a, &b, cfg)?,
    };
    let (plan, err, iterations, domain) = result;
    if err.is_nan() || err >= cfg.tol {
        return Err(FmError::NotConverged { error: err, iterations });
    }
    let cost = (&plan * &c)?.sum_all()?.to_scalar::<f64>()?;
    Ok(SinkhornResult { plan, cost, marginal_error: err, iterations, domain })
}

/// (plan, marginal error, iterations, domain).
type Run = (Tensor, f64, usize, SinkhornDomain);

fn kernel_domain(c: &Tensor, a: &Tensor, b: &Tensor, cfg: SinkhornConfig) -> Result<Run> {
    let (n, m) = c.dims2()?;
    let eps = cfg.eps;
    // α a column (n, 1), β a row (1, m); u a column, v a row
    let (a, b) = (a.reshape((n, 1))?, b.reshape((1, m))?);
    let (mut alpha, mut beta) = (Tensor::zeros((n, 1), DType::F64, c.device())?, Tensor::zeros((1, m), DType::F64, c.device())?);
    let kernel = |alpha: &Tensor, beta: &Tensor| -> Result<Tensor> { Ok(((alpha.broadcast_add(beta)? - c)? / eps)?.exp()?) };
    let mut k = kernel(&alpha, &beta)?;
    let mut u = Tensor::ones((n, 1), DType::F64, c.device())?;
    let mut v = Tensor::ones((1, m), DType::F64, c.device())?;
    let range = |t: &Tensor| -> Result<(f64, f64)> { Ok((t.min_all()?.to_scalar::<f64>()?, t.max_all()?.to_scalar::<f64>()?)) };
    let mut iterations = 0;
    while iterations < cfg.max_iters {
        u = (&a / k.matmul(&v.t()?)?)?;
        v = (&b / u.t()?.matmul(&k)?)?;
        iterations += 1;
        let ((ul, uh), (vl, vh)) = (range(&u)?, range(&v)?);
        if !(ul > 0.0 && vl > 0.0 && uh.is_finite() && vh.is_finite()) {
            return Err(FmError::Config(format!(
                "sinkhorn: the kernel exp(−C/ε) underflowed (max C/ε = {:.0}); use SinkhornDomain::Log or a larger ε",
                c.abs()?.max_all()?.to_scalar::<f64>()? / eps
            )));
        }
        if uh > ABSORB_TAU || vh > ABSORB_TAU || ul < 1.0 / ABSORB_TAU || vl < 1.0 / ABSORB_TAU {
            alpha = (alpha + (u.log()? * eps)?)?;
            beta = (beta + (v.log()? * eps)?)?;
            k = kernel(&alpha, &beta)?;
            u = u.ones_like()?;
            v = v.ones_like()?;
        }
        if iterations % 10 == 0 {
            // columns match after the v-update; the rows are what is left
            let err = (u.broadcast_mul(&k.matmul(&v.t()?)?)? - &a)?.abs()?.max_all()?.to_scalar::<f64>()?;
            if err < cfg.tol {
                break;
            }
        }
    }
    let plan = u.broadcast_mul(&k)?.broadcast_mul(&v)?;
    let a = a.reshape(n)?;
    let b = b.reshape(m)?;
    Ok((plan.clone(), marginal_error(&plan, &a, &b)?, iterations, SinkhornDomain::Kernel))
}

fn log_domain(c: &Tensor, a: &Tensor, b: &Tensor, cfg: SinkhornConfig) -> Result<Run> {
    let m = c.dim(1)?;
    let (log_a, log_b) = (a.log()?.unsqueeze(0)?, b.log()?.unsqueeze(0)?);
    // f and g are kept as rows; −C/ε and its transpose are formed once per ε so that both
    // half-updates reduce along contiguous rows (one broadcast add and a log-sum-exp each)
    let kernels = |eps: f64| -> Result<(Tensor, Tensor)> {
        let k = (c / -eps)?;
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
            err = marginal_error(&plan_of(&f, &g)?, a, b)?;
            if err < cfg.tol {
                break;
            }
        }
    }
    let plan = plan_of(&f, &g)?;
    err = err.min(marginal_error(&plan, a, b)?);
    Ok((plan, err, iterations, SinkhornDomain::Log))
}
