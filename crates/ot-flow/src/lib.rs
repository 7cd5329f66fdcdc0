//! `ot-flow`: OT-Flow (Onken, Wu Fung, Li, Ruthotto, AAAI 2021; seeds 001/003) — a continuous
//! normalizing flow whose velocity is the gradient of a potential, v = −∇Φ, trained with the
//! exact Laplacian for the log-determinant plus transport (kinetic) and HJB penalties:
//!
//! J = α₀·E[∫½‖v‖²] + α₁·E[−log N(x(1)) − ℓ(1)] + α₂·E[∫|−∂ₜΦ + ½‖∇Φ‖²/α₀|].
//!
//! - [`model`]: the potential and the augmented dynamics (x, ℓ, c_L, c_H).
//! - [`loss`]: the three costs.
//! - [`sample`]: encoding, sampling, inverse error, evaluation.
//!
//! Training uses `mixed_precision_adjoint::train` with any gradient mode (full graph,
//! checkpointed, continuous, or mixed precision with dynamic scaling).

pub mod loss;
pub mod model;
pub mod sample;

pub use mixed_precision_adjoint::{MpError as Error, Result};
pub use model::{OtFlow, OtFlowConfig, OtState};

use candle_core::{DType, Tensor};
use mixed_precision_adjoint::FlowModel;
use ode_solvers::OdeTerm;

impl FlowModel for OtFlow {
    type State = OtState;
    fn dynamics(&self, dtype: DType) -> Result<Box<dyn OdeTerm<OtState> + '_>> {
        Ok(Box::new(OtFlow::dynamics(self, dtype)?))
    }
    fn initial_state(&self, x: &Tensor) -> Result<OtState> {
        OtFlow::initial_state(x)
    }
    fn loss(&self, z: &OtState) -> Result<Tensor> {
        Ok(loss::costs(self.config.alpha, z)?.total)
    }
    /// (J, L, C = NLL in nats, R).
    fn validate(&self, x: &Tensor, steps: usize) -> Result<Vec<f64>> {
        Ok(sample::evaluate(self, x, steps)?.to_vec())
    }
}
