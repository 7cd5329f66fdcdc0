//! Target densities μ = e^{−f} known in closed form (normalised), for the samplers' evaluation:
//! the exact KL of a map's push-forward needs log μ, the tests need ∇log μ and samples.
//! Gaussian mixtures are `score_diffusion::GaussianMixture` (re-exported by this crate), which
//! implements [`Target`] here.

use crate::error::{MaError, Result};
use candle_core::{DType, Device, Tensor};
use nalgebra::{DMatrix, DVector};
use score_diffusion::GaussianMixture;
use tensor_core::SeededRng;

const LN_2PI: f64 = 1.837_877_066_409_345_3;

/// A normalised density on ℝ^d with its score and a sampler.
pub trait Target {
    /// d.
    fn dim(&self) -> usize;
    /// A short name for tables.
    fn name(&self) -> String;
    /// log μ at each row of `x` (B, d): (B, 1) f64.
    fn log_density(&self, x: &Tensor) -> Result<Tensor>;
    /// ∇log μ = −∇f at each row of `x` (B, d): (B, d) f64.
    fn score(&self, x: &Tensor) -> Result<Tensor>;
    /// n independent draws, (n, d) f64 on the CPU.
    fn sample(&self, n: usize, rng: &mut SeededRng) -> Result<Tensor>;
}

/// The rows of a (B, d) tensor as one flat f64 vector, or a typed error naming the shape.
pub(crate) fn rows_of(x: &Tensor, d: usize, context: &str) -> Result<Vec<f64>> {
    match x.dims() {
        [_, c] if *c == d => Ok(x.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?),
        dims => Err(MaError::Data(format!("{context}: expected points of shape (B, {d}), got {dims:?}"))),
    }
}

/// `f(row, out)` for every row of `x` (B, d), collected as (B, width) f64: how the closed-form
/// targets below evaluate their per-point formulas on a batch.
fn per_row(x: &Tensor, d: usize, width: usize, context: &str, f: impl Fn(&[f64], &mut [f64])) -> Result<Tensor> {
    let rows = rows_of(x, d, context)?;
    let b = rows.len() / d;
    let mut out = vec![0.0; b * width];
    for (r, o) in rows.chunks(d).zip(out.chunks_mut(width)) {
        f(r, o);
    }
    Ok(Tensor::from_vec(out, (b, width), &Device::Cpu)?)
}

fn gaussian_draws(n: usize, d: usize, rng: &mut SeededRng) -> Result<Vec<f64>> {
    Ok(rng.normal((n * d,), DType::F64, &Device::Cpu)?.to_vec1::<f64>()?)
}

/// N(m, S) with a symmetric positive-definite covariance S.
#[derive(Clone, Debug)]
pub struct Gaussian {
    mean: DVector<f64>,
    covariance: DMatrix<f64>,
    precision: DMatrix<f64>,
    chol: DMatrix<f64>,
    log_det: f64,
}

impl Gaussian {
    /// N(mean, covariance); the covariance must be symmetric positive definite.
    pub fn new(mean: &[f64], covariance: &[f64]) -> Result<Self> {
        let d = mean.len();
        if d == 0 || covariance.len() != d * d {
            return Err(MaError::Config(format!(
                "Gaussian: mean of length {d} needs a {d}×{d} covariance, got {} entries",
                covariance.len()
            )));
        }
        let s = DMatrix::from_row_slice(d, d, covariance);
        if (&s - s.transpose()).abs().max() > 1e-12 * s.abs().max().max(1.0) || mean.iter().chain(covariance).any(|v| !v.is_finite()) {
            return Err(MaError::Config("Gaussian: the covariance must be finite and symmetric".into()));
        }
        let chol = s.clone().cholesky().ok_or_else(|| MaError::Config("Gaussian: the covariance is not positive definite".into()))?;
        let l = chol.l();
        let log_det = 2.0 * l.diagonal().iter().map(|v| v.ln()).sum::<f64>();
        Ok(Self { mean: DVector::from_column_slice(mean), precision: chol.inverse(), covariance: s, chol: l, log_det })
    }

    /// N(0, I_d).
    pub fn standard(d: usize) -> Result<Self> {
        Self::new(&vec![0.0; d], DMatrix::<f64>::identity(d, d).as_slice())
    }

    /// m.
    pub fn mean(&self) -> &DVector<f64> {
        &self.mean
    }

    /// S.
    pub fn covariance(&self) -> &DMatrix<f64> {
        &self.covariance
    }

    /// S⁻¹.
    pub fn precision(&self) -> &DMatrix<f64> {
        &self.precision
    }

    /// log det S.
    pub fn log_det(&self) -> f64 {
        self.log_det
    }
}

impl Gaussian {
    fn log_density_at(&self, x: &[f64]) -> f64 {
        let r = DVector::from_column_slice(x) - &self.mean;
        -0.5 * (r.dot(&(&self.precision * &r)) + self.mean.len() as f64 * LN_2PI + self.log_det)
    }
}

impl Target for Gaussian {
    fn dim(&self) -> usize {
        self.mean.len()
    }
    fn name(&self) -> String {
        format!("Gaussian (d = {})", self.dim())
    }
    fn log_density(&self, x: &Tensor) -> Result<Tensor> {
        per_row(x, self.dim(), 1, "Gaussian::log_density", |r, o| o[0] = self.log_density_at(r))
    }
    fn score(&self, x: &Tensor) -> Result<Tensor> {
        per_row(x, self.dim(), self.dim(), "Gaussian::score", |r, o| {
            let g = -(&self.precision * (DVector::from_column_slice(r) - &self.mean));
            o.copy_from_slice(g.as_slice());
        })
    }
    fn sample(&self, n: usize, rng: &mut SeededRng) -> Result<Tensor> {
        let d = self.dim();
        let z = DMatrix::from_row_slice(n, d, &gaussian_draws(n, d, rng)?);
        let x = z * self.chol.transpose() + DMatrix::from_fn(n, d, |_, j| self.mean[j]);
        Ok(Tensor::from_vec(x.transpose().as_slice().to_vec(), (n, d), &Device::Cpu)?)
    }
}

/// Σ_k w_k N(m_k, v_k I) as a target: its density at α = 1, σ = 0.
impl Target for GaussianMixture {
    fn dim(&self) -> usize {
        GaussianMixture::dim(self)
    }
    fn name(&self) -> String {
        format!("Gaussian mixture (d = {})", GaussianMixture::dim(self))
    }
    fn log_density(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.log_prob(&x.to_dtype(DType::F64)?, 1.0, 0.0)?)
    }
    fn score(&self, x: &Tensor) -> Result<Tensor> {
        Ok(GaussianMixture::score(self, &x.to_dtype(DType::F64)?, 1.0, 0.0)?)
    }
    fn sample(&self, n: usize, rng: &mut SeededRng) -> Result<Tensor> {
        Ok(GaussianMixture::sample(self, n, rng, DType::F64, &Device::Cpu)?)
    }
}

/// The banana: x₁ ~ N(0, s₁²), x₂ | x₁ ~ N(b(x₁² − s₁²), s₂²) — a unit-Jacobian bend of a
/// Gaussian, so log μ is exact: log N(x₁; 0, s₁²) + log N(x₂ − b(x₁² − s₁²); 0, s₂²).
#[derive(Clone, Copy, Debug)]
pub struct Banana {
    pub s1: f64,
    pub s2: f64,
    pub bend: f64,
}

impl Banana {
    /// A banana with the given spreads and bend; spreads must be positive.
    pub fn new(s1: f64, s2: f64, bend: f64) -> Result<Self> {
        if !(s1 > 0.0 && s2 > 0.0 && s1.is_finite() && s2.is_finite() && bend.is_finite()) {
            return Err(MaError::Config(format!("Banana needs finite positive spreads and a finite bend, got ({s1}, {s2}, {bend})")));
        }
        Ok(Self { s1, s2, bend })
    }

    fn residual(&self, x: &[f64]) -> f64 {
        x[1] - self.bend * (x[0] * x[0] - self.s1 * self.s1)
    }
}

impl Banana {
    fn log_density_at(&self, x: &[f64]) -> f64 {
        let r = self.residual(x);
        -0.5 * (x[0] * x[0] / (self.s1 * self.s1) + r * r / (self.s2 * self.s2)) - LN_2PI - (self.s1 * self.s2).ln()
    }
}

impl Target for Banana {
    fn dim(&self) -> usize {
        2
    }
    fn name(&self) -> String {
        format!("banana (s1 = {}, s2 = {}, bend = {})", self.s1, self.s2, self.bend)
    }
    fn log_density(&self, x: &Tensor) -> Result<Tensor> {
        per_row(x, 2, 1, "Banana::log_density", |r, o| o[0] = self.log_density_at(r))
    }
    fn score(&self, x: &Tensor) -> Result<Tensor> {
        per_row(x, 2, 2, "Banana::score", |x, out| {
            let r = self.residual(x) / (self.s2 * self.s2);
            out[0] = -x[0] / (self.s1 * self.s1) + r * 2.0 * self.bend * x[0];
            out[1] = -r;
        })
    }
    fn sample(&self, n: usize, rng: &mut SeededRng) -> Result<Tensor> {
        let z = gaussian_draws(n, 2, rng)?;
        let x: Vec<f64> = z
            .chunks(2)
            .flat_map(|p| {
                let x1 = self.s1 * p[0];
                [x1, self.bend * (x1 * x1 - self.s1 * self.s1) + self.s2 * p[1]]
            })
            .collect();
        Ok(Tensor::from_vec(x, (n, 2), &Device::Cpu)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets() -> Vec<Box<dyn Target>> {
        vec![
            Box::new(Gaussian::new(&[0.5, -1.0], &[1.5, 0.4, 0.4, 0.6]).unwrap()),
            Box::new(GaussianMixture::new(vec![0.3, 0.7], vec![vec![-2.0, 0.0], vec![1.5, 1.0]], vec![0.25, 0.64]).unwrap()),
            Box::new(Banana::new(1.0, 0.5, 0.4).unwrap()),
        ]
    }

    fn points(rows: &[[f64; 2]]) -> Tensor {
        Tensor::from_vec(rows.iter().flatten().copied().collect::<Vec<_>>(), (rows.len(), 2), &Device::Cpu).unwrap()
    }

    #[test]
    fn scores_match_finite_differences_of_the_log_density() {
        let h = 1e-5;
        let log_at =
            |t: &dyn Target, x: [f64; 2]| t.log_density(&points(&[x])).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap()[0];
        for t in targets() {
            for x in [[0.3, -0.2], [-1.7, 0.9], [2.1, 1.4]] {
                let g = t.score(&points(&[x])).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
                for j in 0..2 {
                    let (mut a, mut b) = (x, x);
                    a[j] += h;
                    b[j] -= h;
                    let fd = (log_at(t.as_ref(), a) - log_at(t.as_ref(), b)) / (2.0 * h);
                    assert!((fd - g[j]).abs() < 1e-6 * (1.0 + fd.abs()), "{}: ∂{j} FD {fd} vs {}", t.name(), g[j]);
                }
            }
        }
    }

    #[test]
    fn densities_integrate_to_one_and_samples_have_the_right_mean() {
        for t in targets() {
            // trapezoid on [−12, 12]² at spacing 0.04 (the banana's arms reach x₂ ≈ 9)
            let n = 601;
            let h = 24.0 / (n - 1) as f64;
            let grid: Vec<[f64; 2]> = (0..n * n).map(|k| [-12.0 + h * (k / n) as f64, -12.0 + h * (k % n) as f64]).collect();
            let log_p = t.log_density(&points(&grid)).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
            let mut total = 0.0;
            let mut mean = [0.0; 2];
            for (x, lp) in grid.iter().zip(&log_p) {
                let p = lp.exp() * h * h;
                total += p;
                mean[0] += p * x[0];
                mean[1] += p * x[1];
            }
            assert!((total - 1.0).abs() < 1e-6, "{}: ∫μ = {total}", t.name());
            let s = t.sample(40_000, &mut SeededRng::new(3)).unwrap().mean(0).unwrap().to_vec1::<f64>().unwrap();
            for j in 0..2 {
                assert!((s[j] - mean[j]).abs() < 0.03, "{}: sample mean {s:?} vs {mean:?}", t.name());
            }
        }
    }

    #[test]
    fn bad_definitions_are_refused() {
        assert!(Gaussian::new(&[0.0, 0.0], &[1.0, 2.0, 2.0, 1.0]).is_err());
        assert!(Gaussian::new(&[0.0], &[1.0, 0.0]).is_err());
        // a point mass has no density: a typed error, not −∞ or NaN
        let point_mass = GaussianMixture::new(vec![1.0], vec![vec![0.0]], vec![0.0]).unwrap();
        assert!(matches!(
            Target::log_density(&point_mass, &Tensor::zeros((2, 1), DType::F64, &Device::Cpu).unwrap()),
            Err(MaError::Diffusion(_))
        ));
        assert!(Banana::new(-1.0, 1.0, 0.0).is_err());
        let t = Banana::new(1.0, 1.0, 0.5).unwrap();
        assert!(matches!(t.log_density(&Tensor::zeros((3, 3), DType::F64, &Device::Cpu).unwrap()), Err(MaError::Data(_))));
    }
}
