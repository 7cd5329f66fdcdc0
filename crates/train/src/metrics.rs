//! Named figures: what a validation or an evaluation returns.

use serde::{Deserialize, Serialize};

/// Figures by name (`nll`, `transport`, `hjb`, …), in the order the model reports them, and the
/// name of the one that selects the best parameters (minimised).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "MetricsRepr", into = "MetricsRepr")]
pub struct Metrics {
    objective: String,
    figures: Vec<(String, f64)>,
}

/// JSON has no NaN or infinity: non-finite figures are stored as null and read back as NaN.
#[derive(Serialize, Deserialize)]
struct MetricsRepr {
    objective: String,
    figures: Vec<(String, Option<f64>)>,
}

impl From<MetricsRepr> for Metrics {
    fn from(r: MetricsRepr) -> Self {
        Self { objective: r.objective, figures: r.figures.into_iter().map(|(n, v)| (n, v.unwrap_or(f64::NAN))).collect() }
    }
}

impl From<Metrics> for MetricsRepr {
    fn from(m: Metrics) -> Self {
        Self { objective: m.objective, figures: m.figures.into_iter().map(|(n, v)| (n, Some(v).filter(|v| v.is_finite()))).collect() }
    }
}

impl Metrics {
    /// Figures whose `objective` entry selects the best parameters; `objective` must be one of
    /// the names.
    pub fn new(objective: &str, figures: &[(&str, f64)]) -> Self {
        debug_assert!(figures.iter().any(|(n, _)| *n == objective), "objective '{objective}' is not among the figures");
        Self { objective: objective.into(), figures: figures.iter().map(|(n, v)| (n.to_string(), *v)).collect() }
    }

    /// [`Metrics::new`] from scalar tensors (any float dtype, read as f64): how models turn their
    /// differentiable costs into figures.
    pub fn from_scalars(objective: &str, figures: &[(&str, &candle_core::Tensor)]) -> candle_core::Result<Self> {
        let values = figures
            .iter()
            .map(|(n, t)| Ok((*n, t.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?)))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Self::new(objective, &values))
    }

    /// The figure named `name`.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.figures.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }

    /// The name of the selecting figure.
    pub fn objective_name(&self) -> &str {
        &self.objective
    }

    /// The selecting figure's value (NaN if absent, which never wins).
    pub fn objective(&self) -> f64 {
        self.get(&self.objective).unwrap_or(f64::NAN)
    }

    /// The same names and objective with new values, in [`Metrics::iter`]'s order (a figure
    /// without a new value keeps its own).
    pub fn with_values(&self, values: &[f64]) -> Self {
        let figures = self.figures.iter().enumerate().map(|(i, (n, v))| (n.clone(), values.get(i).copied().unwrap_or(*v))).collect();
        Self { objective: self.objective.clone(), figures }
    }

    /// Every (name, value) in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, f64)> {
        self.figures.iter().map(|(n, v)| (n.as_str(), *v))
    }
}

impl std::fmt::Display for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.iter().map(|(n, v)| format!("{n} {v:.4}")).collect();
        f.write_str(&parts.join(", "))
    }
}
