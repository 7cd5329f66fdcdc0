//! Per-column standardisation x ↦ (x − μ)/σ, fitted on training data and kept with a model so
//! that samples come back in the data's units and likelihoods can be reported in them.

use crate::error::{DataError, Result};
use crate::Matrix;
use serde::{Deserialize, Serialize};

/// Column means μ and scales σ (standard deviations; 1 for a constant column).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Standardization {
    pub mean: Vec<f64>,
    pub scale: Vec<f64>,
}

impl Standardization {
    /// μ and σ of `m`'s columns; a non-finite value is an error naming its row and column.
    pub fn fit(m: &Matrix) -> Result<Self> {
        if let Some(i) = m.data.iter().position(|v| !v.is_finite()) {
            return Err(DataError::Format {
                source_name: "data".into(),
                reason: format!("non-finite value {} at row {}, column {}", m.data[i], i / m.cols.max(1), i % m.cols.max(1)),
            });
        }
        let mean = m.column_means();
        let mut var = vec![0f64; m.cols];
        for i in 0..m.rows {
            for ((acc, &v), mu) in var.iter_mut().zip(m.row(i)).zip(&mean) {
                *acc += (v as f64 - mu).powi(2);
            }
        }
        let scale = var.into_iter().map(|v| (v / m.rows.max(1) as f64).sqrt()).map(|s| if s > 0.0 { s } else { 1.0 }).collect();
        Ok(Self { mean, scale })
    }

    /// μ = 0, σ = 1 in `dim` dimensions (no change).
    pub fn identity(dim: usize) -> Self {
        Self { mean: vec![0.0; dim], scale: vec![1.0; dim] }
    }

    /// (x − μ)/σ row by row.
    pub fn apply(&self, m: &Matrix) -> Result<Matrix> {
        self.check(m)?;
        Ok(self.map(m, |v, mu, s| (v - mu) / s))
    }

    /// μ + σ·z row by row: back to the data's units.
    pub fn undo(&self, m: &Matrix) -> Result<Matrix> {
        self.check(m)?;
        Ok(self.map(m, |v, mu, s| mu + s * v))
    }

    /// Σ log σ: log p_x(x) = log p_z((x − μ)/σ) − Σ log σ.
    pub fn log_det(&self) -> f64 {
        self.scale.iter().map(|s| s.ln()).sum()
    }

    fn check(&self, m: &Matrix) -> Result<()> {
        if m.cols != self.mean.len() {
            return Err(DataError::Format {
                source_name: "data".into(),
                reason: format!("{} columns, the standardisation was fitted on {}", m.cols, self.mean.len()),
            });
        }
        Ok(())
    }

    fn map(&self, m: &Matrix, f: impl Fn(f64, f64, f64) -> f64) -> Matrix {
        let data = m
            .data
            .chunks_exact(m.cols.max(1))
            .flat_map(|row| {
                row.iter().zip(&self.mean).zip(&self.scale).map(|((&v, &mu), &s)| f(v as f64, mu, s) as f32).collect::<Vec<_>>()
            })
            .collect();
        Matrix { data, rows: m.rows, cols: m.cols }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standardised_columns_have_zero_mean_unit_scale_and_undo_inverts() -> Result<()> {
        let m = Matrix::new(vec![1e6, 3.0, 3e6, 3.0, 2e6, 3.0], 3, 2)?;
        let s = Standardization::fit(&m)?;
        let z = s.apply(&m)?;
        let zs = Standardization::fit(&z)?;
        assert!(zs.mean.iter().all(|v| v.abs() < 1e-6) && (zs.scale[0] - 1.0).abs() < 1e-6, "{zs:?}");
        assert_eq!(s.scale[1], 1.0, "a constant column keeps scale 1");
        let back = s.undo(&z)?;
        assert!(back.data.iter().zip(&m.data).all(|(a, b)| (a - b).abs() <= 1e-6 * b.abs().max(1.0)));
        assert!((s.log_det() - (2e12f64 / 3.0).sqrt().ln()).abs() < 1e-9);
        let nan = Matrix::new(vec![1.0, f32::NAN], 1, 2)?;
        assert!(Standardization::fit(&nan).unwrap_err().to_string().contains("row 0, column 1"));
        Ok(())
    }
}
