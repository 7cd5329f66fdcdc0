//! Which states a solve returns.

/// Output times of a solve.
#[derive(Clone, Debug, PartialEq)]
pub enum SaveAt {
    /// Only the final state.
    Final,
    /// The initial state and the state after every step.
    Steps,
    /// The states at these times (increasing in the direction of integration, inside the
    /// interval). Off-grid times need a method with dense output; the checkpointed and
    /// continuous adjoints need them on the step grid.
    Times(Vec<f64>),
}
