//! How source and target samples are paired in a minibatch (Tong et al. 2024, "TorchCFM";
//! Pooladian et al. 2023): independently, by the exact OT assignment (a permutation), or by
//! sampling pairs from the entropic Sinkhorn plan.

use crate::error::{FmError, Result};
use crate::ot::{transport, OtSolver, Plan};
use crate::sinkhorn::SinkhornConfig;
use candle_core::{DType, Tensor};
use rand::Rng;
use tensor_core::stats::sq_distances;
use tensor_core::SeededRng;

/// A minibatch coupling.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Coupling {
    /// x₀ and x₁ paired as drawn (I-CFM).
    Independent,
    /// The exact squared-distance OT assignment: x₁ permuted (OT-CFM, exact).
    ExactOt,
    /// Pairs drawn from the entropic plan for the squared-distance cost at regularisation ε.
    /// `normalize` divides the cost by its largest entry first (torchcfm's `normalize_cost=True`;
    /// its default ε is 0.05 on the raw cost). Schrödinger-bridge CFM with bridge noise σ uses
    /// ε = 2σ² on the raw cost.
    Sinkhorn { eps: f64, normalize: bool },
}

impl Coupling {
    /// A short name for tables.
    pub fn name(&self) -> String {
        match self {
            Self::Independent => "independent".into(),
            Self::ExactOt => "exact-ot".into(),
            Self::Sinkhorn { eps, normalize } => format!("sinkhorn(eps={eps}{})", if *normalize { ", normalized cost" } else { "" }),
        }
    }

    /// Pairs (x₀, x₁) of equal batch size.
    pub fn pair(&self, x0: &Tensor, x1: &Tensor, rng: &mut SeededRng) -> Result<(Tensor, Tensor)> {
        let n = x0.dim(0)?;
        if x1.dim(0)? != n {
            return Err(FmError::Config(format!("coupling needs equal batches, got {n} and {}", x1.dim(0)?)));
        }
        let cost = sq_distances(&x0.to_dtype(DType::F64)?, &x1.to_dtype(DType::F64)?)?;
        match self {
            Self::Independent => Ok((x0.clone(), x1.clone())),
            Self::ExactOt => {
                let Plan::Permutation(sigma) = transport(&cost, OtSolver::Exact)?.plan else {
                    unreachable!("the exact solver returns a permutation")
                };
                let idx: Vec<u32> = sigma.iter().map(|&j| j as u32).collect();
                Ok((x0.clone(), x1.index_select(&Tensor::new(idx.as_slice(), x1.device())?, 0)?))
            }
            Self::Sinkhorn { eps, normalize } => {
                let scale = if *normalize { cost.max_all()?.to_scalar::<f64>()?.max(1e-300) } else { 1.0 };
                let plan =
                    transport(&(cost / scale)?, OtSolver::Sinkhorn(SinkhornConfig { tol: 1e-6, ..SinkhornConfig::new(*eps) }))?.dense()?;
                // draw n index pairs from the plan (with replacement, as torchcfm does)
                let p = plan.flatten_all()?.to_vec1::<f64>()?;
                let total: f64 = p.iter().sum();
                let mut cdf = Vec::with_capacity(p.len());
                let mut acc = 0.0;
                for v in &p {
                    acc += v / total;
                    cdf.push(acc);
                }
                let (mut rows, mut cols) = (Vec::with_capacity(n), Vec::with_capacity(n));
                for _ in 0..n {
                    let u: f64 = rng.inner().random();
                    let k = cdf.partition_point(|&c| c < u).min(p.len() - 1);
                    rows.push((k / n) as u32);
                    cols.push((k % n) as u32);
                }
                let sel = |x: &Tensor, i: &[u32]| -> Result<Tensor> { Ok(x.index_select(&Tensor::new(i, x.device())?, 0)?) };
                Ok((sel(x0, &rows)?, sel(x1, &cols)?))
            }
        }
    }
}
