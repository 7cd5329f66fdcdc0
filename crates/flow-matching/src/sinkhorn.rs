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
//! On the CPU the kernel domain runs on plain slices, one pass over K per iteration (row i gives
//! (Kv)_i, u_i and its share of Kᵀu) with a vectorised eˣ; elsewhere on candle tensors.
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
    let on_cpu = c.device().is_cpu();
    let c_flat = if on_cpu { Some(c.flatten_all()?.to_vec1::<f64>()?) } else { None };
    let max_abs = match &c_flat {
        Some(v) => v.iter().fold(0.0f64, |m, x| m.max(x.abs())),
        None => c.abs()?.max_all()?.to_scalar::<f64>()?,
    };
    let kernel = match cfg.domain {
        SinkhornDomain::Kernel => true,
        SinkhornDomain::Auto => max_abs / cfg.eps <= KERNEL_MAX_RATIO,
        SinkhornDomain::Log => false,
    };
    let (plan, err, iterations, domain, cost) = match (kernel, c_flat) {
        (true, Some(flat)) => {
            let r = kernel_domain_cpu(&flat, &a.to_vec1::<f64>()?, &b.to_vec1::<f64>()?, m, cfg, max_abs)?;
            (Tensor::from_vec(r.plan, (n, m), c.device())?, r.error, r.iterations, SinkhornDomain::Kernel, Some(r.cost))
        }
        (true, None) => {
            let (p, e, i, d) = kernel_domain(&c, &a, &b, cfg)?;
            (p, e, i, d, None)
        }
        (false, _) => {
            let (p, e, i, d) = log_domain(&c, &a, &b, cfg)?;
            (p, e, i, d, None)
        }
    };
    if err.is_nan() || err >= cfg.tol {
        return Err(FmError::NotConverged { error: err, iterations });
    }
    let cost = match cost {
        Some(v) => v,
        None => (&plan * &c)?.sum_all()?.to_scalar::<f64>()?,
    };
    Ok(SinkhornResult { plan, cost, marginal_error: err, iterations, domain })
}

/// What the CPU kernel-domain iterations return.
struct CpuRun {
    plan: Vec<f64>,
    error: f64,
    iterations: usize,
    cost: f64,
}

/// K_ij = exp((α_i + β_j − C_ij)/ε) into `k`, row by row through a scratch row (vectorised eˣ).
fn fill_kernel(k: &mut [f64], c: &[f64], alpha: &[f64], beta: &[f64], eps: f64) -> Result<()> {
    let m = beta.len();
    let mut row = vec![0.0; m];
    for ((k_row, c_row), &al) in k.chunks_exact_mut(m).zip(c.chunks_exact(m)).zip(alpha) {
        for ((r, &cij), &be) in row.iter_mut().zip(c_row).zip(beta) {
            *r = (al + be - cij) / eps;
        }
        tensor_core::kernels::exp_slice(&row, k_row)?;
    }
    Ok(())
}

/// Σ_j x_j y_j with eight independent partial sums (so the loop vectorises without reassociation;
/// no `mul_add`, which without a compile-time FMA target is a software call per element).
fn dot(x: &[f64], y: &[f64]) -> f64 {
    let mut acc = [0.0f64; 8];
    let (xc, yc) = (x.chunks_exact(8), y.chunks_exact(8));
    let tail: f64 = xc.remainder().iter().zip(yc.remainder()).map(|(a, b)| a * b).sum();
    for (xs, ys) in xc.zip(yc) {
        for l in 0..8 {
            acc[l] += xs[l] * ys[l];
        }
    }
    acc.iter().sum::<f64>() + tail
}

/// The kernel domain on plain CPU slices with one pass over K per iteration: row i gives
/// (Kv)_i, hence u_i = a_i/(Kv)_i and the row's share u_i K_i of Kᵀu, then v = b ⊘ Kᵀu. The row
/// error max_i |u_i (Kv)_i − a_i| of the state entering a pass comes free from the same pass;
/// absorption as in [`kernel_domain`]. The plan overwrites K at the end, with its marginals and
/// ⟨C, P⟩ from that same pass.
fn kernel_domain_cpu(c: &[f64], a: &[f64], b: &[f64], m: usize, cfg: SinkhornConfig, max_abs: f64) -> Result<CpuRun> {
    let n = a.len();
    let eps = cfg.eps;
    let (mut alpha, mut beta) = (vec![0.0; n], vec![0.0; m]);
    let mut k = vec![0.0; n * m];
    fill_kernel(&mut k, c, &alpha, &beta, eps)?;
    let (mut u, mut v) = (vec![1.0; n], vec![1.0; m]);
    let mut ktu = vec![0.0; m];
    let mut iterations = 0;
    while iterations < cfg.max_iters {
        ktu.iter_mut().for_each(|x| *x = 0.0);
        let mut entering_error = 0.0f64;
        for ((k_row, ui), &ai) in k.chunks_exact(m).zip(u.iter_mut()).zip(a) {
            let kv = dot(k_row, &v);
            entering_error = entering_error.max((*ui * kv - ai).abs());
            *ui = ai / kv;
            for (acc, &kij) in ktu.iter_mut().zip(k_row) {
                *acc += kij * *ui;
            }
        }
        for ((vj, &bj), &s) in v.iter_mut().zip(b).zip(&ktu) {
            *vj = bj / s;
        }
        iterations += 1;
        let (lo, hi) = u.iter().chain(&v).fold((f64::INFINITY, 0.0f64), |(lo, hi), &x| (lo.min(x), hi.max(x)));
        if !(lo > 0.0 && hi.is_finite()) {
            return Err(FmError::Config(format!(
                "sinkhorn: the kernel exp(−C/ε) underflowed (max C/ε = {:.0}); use SinkhornDomain::Log or a larger ε",
                max_abs / eps
            )));
        }
        if entering_error < cfg.tol && iterations > 1 {
            break;
        }
        if hi > ABSORB_TAU || lo < 1.0 / ABSORB_TAU {
            alpha.iter_mut().zip(&u).for_each(|(al, ui)| *al += eps * ui.ln());
            beta.iter_mut().zip(&v).for_each(|(be, vj)| *be += eps * vj.ln());
            fill_kernel(&mut k, c, &alpha, &beta, eps)?;
            u.iter_mut().for_each(|x| *x = 1.0);
            v.iter_mut().for_each(|x| *x = 1.0);
        }
    }
    // P = diag(u) K diag(v) in place, with its marginals and cost
    let (mut row_err, mut col_sums, mut cost) = (0.0f64, vec![0.0; m], 0.0);
    for (((k_row, c_row), &ui), &ai) in k.chunks_exact_mut(m).zip(c.chunks_exact(m)).zip(&u).zip(a) {
        let mut row_sum = 0.0;
        for (((p, &cij), &vj), col) in k_row.iter_mut().zip(c_row).zip(&v).zip(col_sums.iter_mut()) {
            *p *= ui * vj;
            row_sum += *p;
            *col += *p;
            cost += *p * cij;
        }
        row_err = row_err.max((row_sum - ai).abs());
    }
    let col_err = col_sums.iter().zip(b).fold(0.0f64, |e, (s, bj)| e.max((s - bj).abs()));
    Ok(CpuRun { plan: k, error: row_err.max(col_err), iterations, cost })
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

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use tensor_core::{stats::sq_distances, SeededRng};

    /// The slice iterations (what the CPU runs) and the candle-op iterations (what other devices
    /// run) give the same plan, cost and marginals, with absorption on the way (ε small enough
    /// that u, v leave [1/τ, τ]).
    #[test]
    fn cpu_slices_and_candle_ops_give_the_same_kernel_domain_plan() -> Result<()> {
        let mut rng = SeededRng::new(5);
        let (n, m) = (37, 29);
        let x = rng.normal((n, 2), DType::F64, &Device::Cpu)?;
        let y = (rng.normal((m, 2), DType::F64, &Device::Cpu)? + 1.0)?;
        let c = sq_distances(&x, &y)?;
        let max_abs = c.max_all()?.to_scalar::<f64>()?;
        let a = (rng.uniform(n, 0.5, 1.5, DType::F64, &Device::Cpu)?).affine(1.0, 0.0)?;
        let a = (&a / a.sum_all()?.to_scalar::<f64>()?)?;
        let b = Tensor::full(1.0 / m as f64, m, &Device::Cpu)?;
        let cfg = SinkhornConfig { tol: 1e-12, domain: SinkhornDomain::Kernel, ..SinkhornConfig::new(max_abs / 60.0) };
        let (plan, err, _, _) = kernel_domain(&c, &a, &b, cfg)?;
        let fast = kernel_domain_cpu(&c.flatten_all()?.to_vec1::<f64>()?, &a.to_vec1::<f64>()?, &b.to_vec1::<f64>()?, m, cfg, max_abs)?;
        let gap = (Tensor::from_vec(fast.plan, (n, m), &Device::Cpu)? - &plan)?.abs()?.max_all()?.to_scalar::<f64>()?;
        let cost = (&plan * &c)?.sum_all()?.to_scalar::<f64>()?;
        assert!(gap < 1e-12, "plans differ by {gap}");
        assert!((fast.cost - cost).abs() < 1e-10 * cost, "costs {} vs {cost}", fast.cost);
        assert!(err < 1e-12 && fast.error < 1e-12, "marginal errors {err} and {}", fast.error);
        Ok(())
    }
}
