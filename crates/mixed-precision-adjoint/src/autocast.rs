//! The torchdiffeq + autocast baseline of "Mixed Precision Training of Neural ODEs": the state
//! stays in the data's precision, each vector-field evaluation runs in a low one.

use candle_core::DType;
use ode_solvers::{OdeTerm, State};
use tensor_core::Precision;

/// Runs a term in a low precision on a state of any precision: leaves cast down, results cast
/// back to the state's dtype (PyTorch's autocast around one vector-field evaluation).
pub struct Autocast<'a, S: State> {
    inner: &'a dyn OdeTerm<S>,
    low: DType,
}

impl<'a, S: State> Autocast<'a, S> {
    /// `inner` evaluated in `low`.
    pub fn new(inner: &'a dyn OdeTerm<S>, low: Precision) -> Self {
        Self { inner, low: low.dtype() }
    }
}

impl<S: State> OdeTerm<S> for Autocast<'_, S> {
    fn vector_field(&self, t: f64, y: &S) -> ode_solvers::Result<S> {
        let down = y.with_leaves(y.leaves().iter().map(|l| Ok(l.to_dtype(self.low)?)).collect::<ode_solvers::Result<_>>()?)?;
        let f = self.inner.vector_field(t, &down)?;
        y.with_leaves(f.leaves().iter().zip(y.leaves()).map(|(l, h)| Ok(l.to_dtype(h.dtype())?)).collect::<ode_solvers::Result<_>>()?)
    }
}
