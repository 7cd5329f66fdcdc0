//! Evaluation without a graph: OT-Flow's costs on held-out data, the inverse error, and the
//! [`ContinuousFlow`] view (encoding, sampling, log-likelihood along x' = −∇ₓΦ/α₀ with RK4).

use crate::error::Result;
use crate::loss::{costs, Costs};
use crate::model::{OtFlow, OtState};
use candle_core::{DType, Tensor};
use ode_solvers::{solve, Method, OdeTerm, SolveConfig, Steps};
use train::ContinuousFlow;

impl OtFlow {
    /// The final augmented state (x(1), ℓ(1), c_L(1), c_H(1)) of data `x` with `steps` RK4 steps,
    /// no graph.
    fn final_state(&self, x: &Tensor, steps: usize) -> Result<OtState> {
        tensor_core::error::expect_matrix(x, self.config.dim, "OT-Flow input")?;
        let dynamics = self.frozen()?.dynamics(x.dtype())?;
        Ok(solve(&dynamics, Method::Rk4, &OtFlow::initial_state(&x.detach())?, &SolveConfig::new(Steps::uniform(0.0, 1.0, steps)?))?
            .last()
            .clone())
    }

    /// OT-Flow's costs on `x` with `steps` RK4 steps and no graph.
    pub fn evaluate(&self, x: &Tensor, steps: usize) -> Result<Costs> {
        costs(self.config.alpha, &self.final_state(x, steps)?)
    }

    /// Mean ‖T⁻¹(T(x)) − x‖ over the batch.
    pub fn inverse_error(&self, x: &Tensor, steps: usize) -> Result<f64> {
        let back = self.sample(&self.encode(x, steps)?, steps)?;
        Ok((back - x)?.sqr()?.sum_keepdim(1)?.sqrt()?.mean_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?)
    }
}

impl ContinuousFlow for OtFlow {
    type Error = crate::error::OtFlowError;
    fn dim(&self) -> usize {
        self.config.dim
    }
    fn velocity(&self, dtype: DType) -> Result<Box<dyn OdeTerm<Tensor> + '_>> {
        Ok(Box::new(self.frozen()?.velocity(dtype)?))
    }
    /// log p(x) = log N(x(1)) + ℓ(1) with the exact Laplacian.
    fn log_prob(&self, x: &Tensor, steps: usize) -> Result<Tensor> {
        let (x1, l1, _, _) = self.final_state(x, steps)?;
        Ok((tensor_core::stats::standard_normal_log_prob(&x1)? + l1)?)
    }
}
