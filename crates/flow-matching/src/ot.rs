//! One call for optimal transport between two uniform point clouds given their cost matrix:
//! [`transport`]`(cost, solver)` returns an [`OtSolution`] — the plan (a permutation for
//! the exact solver, a dense matrix for Sinkhorn), its cost ⟨C, P⟩ and the max-abs marginal
//! error (as POT reports it) — whichever solver ran. [`exact_assignment`] and [`sinkhorn`] are
//! the solvers themselves (flat costs, weighted marginals).

use crate::assignment::exact_assignment;
use crate::error::{FmError, Result};
use crate::sinkhorn::{sinkhorn, SinkhornConfig, SinkhornDomain};
use candle_core::{DType, Tensor};

/// Which problem [`transport`] solves.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OtSolver {
    /// Unregularised OT between n and n uniform points: an optimal permutation (auction prices,
    /// Jonker–Volgenant augmentation).
    Exact,
    /// Entropic OT at the configuration's ε (kernel or log domain, [`SinkhornConfig::domain`]).
    Sinkhorn(SinkhornConfig),
}

/// The plan of an [`OtSolution`].
#[derive(Clone, Debug)]
pub enum Plan {
    /// Row i goes to column σ[i] with mass 1/n.
    Permutation(Vec<usize>),
    /// P (n, m), f64.
    Dense(Tensor),
}

/// What [`transport`] found.
#[derive(Clone, Debug)]
pub struct OtSolution {
    pub plan: Plan,
    /// ⟨C, P⟩.
    pub cost: f64,
    /// max(‖P1 − a‖_∞, ‖Pᵀ1 − b‖_∞); 0 for a permutation.
    pub marginal_error: f64,
    /// Sinkhorn iterations at the target ε (0 for the exact solver).
    pub iterations: usize,
    /// What ran: "auction + Jonker–Volgenant assignment", "kernel-domain Sinkhorn with absorption" or
    /// "log-domain Sinkhorn with ε-scaling".
    pub method: &'static str,
}

impl OtSolution {
    /// P as a dense (n, m) f64 matrix (a permutation's has 1/n at (i, σ(i)), built on the CPU).
    pub fn dense(&self) -> Result<Tensor> {
        match &self.plan {
            Plan::Dense(p) => Ok(p.clone()),
            Plan::Permutation(sigma) => {
                let n = sigma.len();
                let mut p = vec![0f64; n * n];
                for (i, &j) in sigma.iter().enumerate() {
                    p[i * n + j] = 1.0 / n as f64;
                }
                Ok(Tensor::from_vec(p, (n, n), &candle_core::Device::Cpu)?)
            }
        }
    }

    /// The plan's barycentric projection T(x_i) = Σ_j P_ij y_j / Σ_j P_ij of the row points onto
    /// `targets` (m, d), the column points: a map estimate from the plan (the exact plan's is the
    /// assignment itself; the entropic one's is the entropic map of Pooladian & Niles-Weed,
    /// "Entropic estimation of optimal transport maps", 2021). (n, d) f64.
    pub fn barycentric_map(&self, targets: &Tensor) -> Result<Tensor> {
        let y = targets.to_dtype(DType::F64)?;
        match &self.plan {
            Plan::Permutation(sigma) => {
                if y.dim(0)? != sigma.len() {
                    return Err(FmError::Config(format!(
                        "the plan has {} columns but {} target points were given",
                        sigma.len(),
                        y.dim(0)?
                    )));
                }
                let idx = Tensor::from_vec(sigma.iter().map(|&j| j as u32).collect::<Vec<_>>(), sigma.len(), y.device())?;
                Ok(y.index_select(&idx, 0)?)
            }
            Plan::Dense(p) => {
                if y.dim(0)? != p.dim(1)? {
                    return Err(FmError::Config(format!("the plan has {} columns but {} target points were given", p.dim(1)?, y.dim(0)?)));
                }
                let p = p.to_device(y.device())?;
                Ok(p.matmul(&y)?.broadcast_div(&p.sum_keepdim(1)?)?)
            }
        }
    }
}

/// OT between uniform weights on the rows and the columns of `cost` (n, m) by `solver`.
pub fn transport(cost: &Tensor, solver: OtSolver) -> Result<OtSolution> {
    let (n, m) = cost.dims2().map_err(|_| FmError::Config(format!("transport needs a 2-D cost matrix, got shape {:?}", cost.dims())))?;
    if n == 0 || m == 0 {
        return Err(FmError::Config(format!("transport needs a non-empty cost matrix, got {n}×{m}")));
    }
    match solver {
        OtSolver::Exact => {
            if n != m {
                return Err(FmError::Config(format!(
                    "exact OT between uniform clouds is an assignment: the cost must be square, got {n}×{m}"
                )));
            }
            let flat = cost.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
            let sigma = exact_assignment(&flat, n)?;
            let total = sigma.iter().enumerate().map(|(i, &j)| flat[i * n + j]).sum::<f64>() / n as f64;
            Ok(OtSolution {
                plan: Plan::Permutation(sigma),
                cost: total,
                marginal_error: 0.0,
                iterations: 0,
                method: "auction + Jonker–Volgenant assignment",
            })
        }
        OtSolver::Sinkhorn(cfg) => {
            let a = Tensor::full(1.0 / n as f64, n, cost.device())?;
            let b = Tensor::full(1.0 / m as f64, m, cost.device())?;
            let r = sinkhorn(cost, &a, &b, cfg)?;
            let method = match r.domain {
                SinkhornDomain::Kernel => "kernel-domain Sinkhorn with absorption",
                _ => "log-domain Sinkhorn with ε-scaling",
            };
            Ok(OtSolution { plan: Plan::Dense(r.plan), cost: r.cost, marginal_error: r.marginal_error, iterations: r.iterations, method })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinkhorn::SinkhornConfig;
    use candle_core::Device;
    use tensor_core::{stats::sq_distances, SeededRng};

    #[test]
    fn barycentric_maps_of_the_exact_and_a_sharp_entropic_plan_agree() -> Result<()> {
        let mut rng = SeededRng::new(3);
        let x = rng.normal((40, 2), DType::F64, &Device::Cpu)?;
        let y = (rng.normal((40, 2), DType::F64, &Device::Cpu)? * 0.5)?.broadcast_add(&Tensor::new(&[[2.0f64, -1.0]], &Device::Cpu)?)?;
        let c = sq_distances(&x, &y)?;
        let exact = transport(&c, OtSolver::Exact)?;
        let t_exact = exact.barycentric_map(&y)?;
        // the dense form of the same plan projects to the same points
        let dense = OtSolution { plan: Plan::Dense(exact.dense()?), ..exact.clone() };
        assert!((dense.barycentric_map(&y)? - &t_exact)?.abs()?.max_all()?.to_scalar::<f64>()? < 1e-12);
        // a small ε blurs the map only slightly: mean squared gap well below the spread of y
        let c_max = c.max_all()?.to_scalar::<f64>()?;
        let sharp = transport(&(c / c_max)?, OtSolver::Sinkhorn(SinkhornConfig { tol: 1e-9, ..SinkhornConfig::new(2e-3) }))?;
        let gap = (sharp.barycentric_map(&y)? - &t_exact)?.sqr()?.sum(1)?.mean_all()?.to_scalar::<f64>()?;
        assert!(gap < 0.02, "entropic map is {gap} from the exact one");
        assert!(exact.barycentric_map(&y.narrow(0, 0, 10)?).is_err());
        Ok(())
    }
}
