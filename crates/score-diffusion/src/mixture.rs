//! Isotropic Gaussian mixtures μ = Σ_k w_k N(m_k, v_k I), point masses (v_k = 0) and empirical
//! measures included, and everything diffusion needs about them in closed form. Under
//! Y = αX + σZ the law of Y is Σ_k w_k N(α m_k, (α² v_k + σ²) I), so the score, its divergence
//! and the posterior of X given Y are exact (Liang, "Generative Models, Optimal Transport, and PDEs": "for any empirical measure, an analytic
//! expression"). Computed on candle tensors in the dtype of the query points (use f64).

use crate::error::{DiffusionError, Result};
use candle_core::{DType, Device, Tensor};
use tensor_core::stats::sq_distances;
use tensor_core::SeededRng;

/// Σ_k w_k N(m_k, v_k I) in ℝ^d.
#[derive(Clone, Debug, PartialEq)]
pub struct GaussianMixture {
    weights: Vec<f64>,
    means: Vec<Vec<f64>>,
    variances: Vec<f64>,
}

/// What a query point knows about the components: responsibilities and kernel variances.
struct Posterior {
    /// P(component k | Y = y), (B, K).
    resp: Tensor,
    /// α m_k, (K, d).
    centers: Tensor,
    /// α² v_k + σ², (K,).
    total_var: Vec<f64>,
}

impl GaussianMixture {
    /// A mixture from weights (normalised here), means and per-component variances (0 = point mass).
    pub fn new(weights: Vec<f64>, means: Vec<Vec<f64>>, variances: Vec<f64>) -> Result<Self> {
        let k = weights.len();
        let d = means.first().map_or(0, Vec::len);
        if k == 0 || means.len() != k || variances.len() != k || d == 0 || means.iter().any(|m| m.len() != d) {
            return Err(DiffusionError::Config(format!(
                "mixture needs K ≥ 1 weights, means and variances of one dimension d ≥ 1; got {k} weights, {} means, {} variances",
                means.len(),
                variances.len()
            )));
        }
        if weights.iter().any(|w| !(*w > 0.0 && w.is_finite()))
            || variances.iter().any(|v| !(*v >= 0.0 && v.is_finite()))
            || means.iter().flatten().any(|m| !m.is_finite())
        {
            return Err(DiffusionError::Config("mixture weights must be positive and finite, variances ≥ 0, means finite".into()));
        }
        let total: f64 = weights.iter().sum();
        Ok(Self { weights: weights.iter().map(|w| w / total).collect(), means, variances })
    }

    /// The empirical measure (1/n) Σ δ_{x_i} of the rows of `points` (n, d).
    pub fn empirical(points: &Tensor) -> Result<Self> {
        let rows = points.to_dtype(DType::F64)?.to_vec2::<f64>()?;
        let n = rows.len();
        Self::new(vec![1.0; n], rows, vec![0.0; n])
    }

    /// A 1-D mixture from (weight, mean, variance) triples.
    pub fn one_dimensional(components: &[(f64, f64, f64)]) -> Result<Self> {
        Self::new(
            components.iter().map(|c| c.0).collect(),
            components.iter().map(|c| vec![c.1]).collect(),
            components.iter().map(|c| c.2).collect(),
        )
    }

    /// d.
    pub fn dim(&self) -> usize {
        self.means[0].len()
    }

    /// n samples, shape (n, d).
    pub fn sample(&self, n: usize, rng: &mut SeededRng, dtype: DType, device: &Device) -> Result<Tensor> {
        let d = self.dim();
        let u = rng.uniform(n, 0.0, 1.0, DType::F64, &Device::Cpu)?.to_vec1::<f64>()?;
        let z = rng.normal((n, d), DType::F64, &Device::Cpu)?.to_vec2::<f64>()?;
        let mut cdf = self.weights.clone();
        for i in 1..cdf.len() {
            cdf[i] += cdf[i - 1];
        }
        let mut out = Vec::with_capacity(n * d);
        for (ui, zi) in u.iter().zip(&z) {
            let k = cdf.iter().position(|c| ui < c).unwrap_or(cdf.len() - 1);
            let s = self.variances[k].sqrt();
            out.extend(self.means[k].iter().zip(zi).map(|(m, e)| m + s * e));
        }
        Ok(Tensor::from_vec(out, (n, d), &Device::Cpu)?.to_dtype(dtype)?.to_device(device)?)
    }

    fn check_query(&self, y: &Tensor, alpha: f64, sigma: f64) -> Result<usize> {
        let n = tensor_core::error::expect_matrix(y, self.dim(), "GaussianMixture query")?;
        if !(alpha.is_finite() && sigma.is_finite() && sigma >= 0.0) {
            return Err(DiffusionError::Config(format!("need finite α and σ ≥ 0, got α = {alpha}, σ = {sigma}")));
        }
        if self.variances.iter().any(|v| alpha * alpha * v + sigma * sigma <= 0.0) {
            return Err(DiffusionError::Config("a point mass with σ = 0 has no density: query at a time t > 0".into()));
        }
        Ok(n)
    }

    fn posterior(&self, y: &Tensor, alpha: f64, sigma: f64) -> Result<(Posterior, Tensor)> {
        self.check_query(y, alpha, sigma)?;
        let (dtype, dev, d) = (y.dtype(), y.device(), self.dim() as f64);
        let k = self.weights.len();
        let centers =
            Tensor::from_vec(self.means.iter().flatten().map(|m| alpha * m).collect::<Vec<_>>(), (k, self.dim()), dev)?.to_dtype(dtype)?;
        let total_var: Vec<f64> = self.variances.iter().map(|v| alpha * alpha * v + sigma * sigma).collect();
        let inv = Tensor::from_vec(total_var.iter().map(|v| -0.5 / v).collect::<Vec<_>>(), (1, k), dev)?.to_dtype(dtype)?;
        let offset = Tensor::from_vec(
            self.weights.iter().zip(&total_var).map(|(w, v)| w.ln() - 0.5 * d * (2.0 * std::f64::consts::PI * v).ln()).collect::<Vec<_>>(),
            (1, k),
            dev,
        )?
        .to_dtype(dtype)?;
        let logits = sq_distances(y, &centers)?.broadcast_mul(&inv)?.broadcast_add(&offset)?;
        // candle refuses to reduce an empty tensor: an empty batch has an empty maximum
        let max = if logits.dim(0)? == 0 { Tensor::zeros((0, 1), dtype, dev)? } else { logits.max_keepdim(1)? };
        let shifted = logits.broadcast_sub(&max)?;
        let sum = shifted.exp()?.sum_keepdim(1)?;
        let log_p = (max + sum.log()?)?;
        let resp = logits.broadcast_sub(&log_p)?.exp()?;
        Ok((Posterior { resp, centers, total_var }, log_p))
    }

    /// log p_Y(y) for Y = αX + σZ, shape (B, 1).
    pub fn log_prob(&self, y: &Tensor, alpha: f64, sigma: f64) -> Result<Tensor> {
        Ok(self.posterior(y, alpha, sigma)?.1)
    }

    /// u_k = (α m_k − y)/(α² v_k + σ²), (B, K, d): the score of each component.
    fn component_scores(y: &Tensor, post: &Posterior) -> Result<Tensor> {
        let (dtype, dev) = (y.dtype(), y.device());
        let k = post.total_var.len();
        let inv = Tensor::from_vec(post.total_var.iter().map(|v| 1.0 / v).collect::<Vec<_>>(), (1, k, 1), dev)?.to_dtype(dtype)?;
        Ok(post.centers.unsqueeze(0)?.broadcast_sub(&y.unsqueeze(1)?)?.broadcast_mul(&inv)?)
    }

    /// ∇ log p_Y(y) = Σ_k P(k | y) (α m_k − y)/(α² v_k + σ²), shape (B, d).
    pub fn score(&self, y: &Tensor, alpha: f64, sigma: f64) -> Result<Tensor> {
        let (post, _) = self.posterior(y, alpha, sigma)?;
        let u = Self::component_scores(y, &post)?;
        Ok(post.resp.unsqueeze(2)?.broadcast_mul(&u)?.sum(1)?)
    }

    /// (∇ log p_Y, Δ log p_Y): Δ = Σ_k r_k(‖u_k‖² − d/(α²v_k + σ²)) − ‖Σ_k r_k u_k‖², the trace
    /// of the Hessian of a log-sum-exp; shapes (B, d) and (B, 1).
    pub fn score_and_laplacian(&self, y: &Tensor, alpha: f64, sigma: f64) -> Result<(Tensor, Tensor)> {
        let (post, _) = self.posterior(y, alpha, sigma)?;
        let u = Self::component_scores(y, &post)?;
        let r = post.resp.unsqueeze(2)?;
        let s = r.broadcast_mul(&u)?.sum(1)?;
        let k = post.total_var.len();
        let d = self.dim() as f64;
        let dv = Tensor::from_vec(post.total_var.iter().map(|v| d / v).collect::<Vec<_>>(), (1, k), y.device())?.to_dtype(y.dtype())?;
        let per_k = u.sqr()?.sum(2)?.broadcast_sub(&dv)?;
        let lap = ((&post.resp * per_k)?.sum_keepdim(1)? - s.sqr()?.sum_keepdim(1)?)?;
        Ok((s, lap))
    }

    /// The posterior of X given Y = αX + σZ = y: (E[X | y] of shape (B, d), Cov[X | y] of shape
    /// (B, d, d)). Per component, X | y, k ~ N(m_k + (α v_k/(α²v_k + σ²))(y − α m_k), v_kσ²/(α²v_k + σ²) I).
    pub fn posterior_moments(&self, y: &Tensor, alpha: f64, sigma: f64) -> Result<(Tensor, Tensor)> {
        let (post, _) = self.posterior(y, alpha, sigma)?;
        let (dtype, dev) = (y.dtype(), y.device());
        let (k, d) = (self.weights.len(), self.dim());
        let means = Tensor::from_vec(self.means.iter().flatten().copied().collect::<Vec<_>>(), (1, k, d), dev)?.to_dtype(dtype)?;
        let gain =
            Tensor::from_vec(self.variances.iter().zip(&post.total_var).map(|(v, tv)| alpha * v / tv).collect::<Vec<_>>(), (1, k, 1), dev)?
                .to_dtype(dtype)?;
        let within = Tensor::from_vec(
            self.variances.iter().zip(&post.total_var).map(|(v, tv)| v * sigma * sigma / tv).collect::<Vec<_>>(),
            (1, k),
            dev,
        )?
        .to_dtype(dtype)?;
        // m_k(y), (B, K, d)
        let m = means.broadcast_add(&y.unsqueeze(1)?.broadcast_sub(&post.centers.unsqueeze(0)?)?.broadcast_mul(&gain)?)?;
        let r = post.resp.unsqueeze(2)?;
        let mean = r.broadcast_mul(&m)?.sum(1)?;
        let second = r.broadcast_mul(&m)?.transpose(1, 2)?.contiguous()?.matmul(&m.contiguous()?)?;
        let spread = post.resp.broadcast_mul(&within)?.sum_keepdim(1)?.unsqueeze(2)?;
        let eye = Tensor::eye(d, dtype, dev)?.unsqueeze(0)?;
        let outer = mean.unsqueeze(2)?.matmul(&mean.unsqueeze(1)?)?;
        let cov = ((second - outer)? + eye.broadcast_mul(&spread)?)?;
        Ok((mean, cov))
    }
}

/// The largest eigenvalue of each symmetric (d, d) block of `cov` (B, d, d) — the operator norm
/// of a covariance.
pub fn operator_norms(cov: &Tensor) -> Result<Vec<f64>> {
    let (b, d, d2) = cov.dims3()?;
    if d != d2 {
        return Err(DiffusionError::Config(format!("operator norm needs square blocks, got ({b}, {d}, {d2})")));
    }
    let flat = cov.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
    Ok(flat
        .chunks(d * d)
        .map(|c| {
            if d == 1 {
                c[0].abs()
            } else {
                nalgebra::DMatrix::from_row_slice(d, d, c).symmetric_eigen().eigenvalues.iter().fold(0.0f64, |a, e| a.max(e.abs()))
            }
        })
        .collect())
}
