//! The discrete Monge–Ampère flow between Gaussians in closed form.
//!
//! From the reference ν = N(0, I) (g(y) = ½|y|²) to the target μ = N(m, S), an affine map
//! ∇ψ_k(y) = A_k y + b_k with A_k symmetric pushes ν to ρ_k = N(b_k, A_k²), so
//! ∇log(ρ_k/μ)(x) = −A_k⁻²(x − b_k) + S⁻¹(x − m) and ξ_k(y) = A_k ∇log(ρ_k/μ)(A_k y + b_k)
//! = −y + A_k S⁻¹ A_k y + A_k S⁻¹(b_k − m). The step ∇ψ_{k+1} = ∇ψ_k − η_k ξ_k stays affine:
//!
//! A_{k+1} = A_k + η_k (I − A_k S⁻¹ A_k),   b_{k+1} = b_k − η_k A_k S⁻¹ (b_k − m),
//!
//! whose fixed point is Brenier's map A = S^{1/2}, b = m. KL(ρ_k | μ) is closed form, so this is the
//! exact reference the neural samplers and the rate study are checked against.

use crate::error::{MaError, Result};
use crate::schedule::StepSchedule;
use crate::target::{Gaussian, Target};
use candle_core::{Device, Tensor};
use nalgebra::{DMatrix, DVector};
use score_diffusion::GaussianMixture;

/// ∇ψ(y) = A y + b with A symmetric.
#[derive(Clone, Debug, PartialEq)]
pub struct AffineMap {
    pub a: DMatrix<f64>,
    pub b: DVector<f64>,
}

impl AffineMap {
    /// The identity map in dimension d (ψ₀ = ½|y|², so ρ₀ = ν).
    pub fn identity(d: usize) -> Self {
        Self { a: DMatrix::identity(d, d), b: DVector::zeros(d) }
    }

    /// Brenier's map from N(0, I) to `target`: y ↦ S^{1/2} y + m.
    pub fn brenier(target: &Gaussian) -> Self {
        Self { a: symmetric_sqrt(target.covariance()), b: target.mean().clone() }
    }

    /// inf_y λ_min(∇²ψ) = λ_min(A): the convexity m_k the regret bounds assume positive.
    pub fn min_curvature(&self) -> f64 {
        self.a.clone().symmetric_eigen().eigenvalues.min()
    }

    /// KL(N(b, A²) | N(m, S)) = ½[tr(S⁻¹A²) + (m − b)ᵀS⁻¹(m − b) − d + log det S − log det A²].
    pub fn kl_to(&self, target: &Gaussian) -> f64 {
        let p = target.precision();
        let a2 = &self.a * &self.a;
        let r = target.mean() - &self.b;
        let log_det_a2 = a2.clone().determinant().ln();
        0.5 * ((p * &a2).trace() + r.dot(&(p * &r)) - self.a.nrows() as f64 + target.log_det() - log_det_a2)
    }

    /// One step of the discrete flow with step size η toward `target`.
    pub fn step(&self, target: &Gaussian, eta: f64) -> Result<Self> {
        let d = self.a.nrows();
        if target.dim() != d {
            return Err(MaError::Config(format!("the map has dimension {d} but the target {}", target.dim())));
        }
        let p = target.precision();
        let a_p = &self.a * p;
        let mut a = &self.a + (DMatrix::identity(d, d) - &a_p * &self.a) * eta;
        a = (&a + a.transpose()) * 0.5;
        let b = &self.b - (&a_p * (&self.b - target.mean())) * eta;
        if a.iter().chain(b.iter()).any(|v| !v.is_finite()) {
            return Err(MaError::Diverged(format!("the Gaussian iterate overflowed at step size {eta}")));
        }
        Ok(Self { a, b })
    }
}

/// The symmetric positive semi-definite square root of the symmetric part of `m` (negative
/// eigenvalues, round-off of a PSD matrix, are clamped to 0).
pub(crate) fn symmetric_sqrt(m: &DMatrix<f64>) -> DMatrix<f64> {
    let eig = ((m + m.transpose()) * 0.5).symmetric_eigen();
    &eig.eigenvectors * DMatrix::from_diagonal(&eig.eigenvalues.map(|v| v.max(0.0).sqrt())) * eig.eigenvectors.transpose()
}

/// The iterates ∇ψ_0 … ∇ψ_T of a run of `horizon` steps from the identity.
pub fn gaussian_flow(target: &Gaussian, schedule: StepSchedule, horizon: usize) -> Result<Vec<AffineMap>> {
    schedule.validate()?;
    let mut maps = vec![AffineMap::identity(target.dim())];
    for k in 0..horizon {
        let next = maps[k].step(target, schedule.step_size(k, horizon))?;
        maps.push(next);
    }
    Ok(maps)
}

/// KL(ρ̄ | μ) of the average ρ̄ = (1/K)Σ_k N(b_k, a_k²) of one-dimensional iterates (a Gaussian
/// mixture), by the trapezoid rule on 20,001 points spanning ±12 standard deviations of every
/// component and μ.
pub fn average_kl_1d(maps: &[AffineMap], target: &dyn Target) -> Result<f64> {
    if target.dim() != 1 || maps.iter().any(|m| m.a.nrows() != 1) || maps.is_empty() {
        return Err(MaError::Config("average_kl_1d needs one-dimensional maps and target".into()));
    }
    let (lo, hi) = maps.iter().fold((-12.0f64, 12.0f64), |(lo, hi), m| {
        let (c, s) = (m.b[0], m.a[(0, 0)].abs());
        (lo.min(c - 12.0 * s), hi.max(c + 12.0 * s))
    });
    let n = 20_001;
    let h = (hi - lo) / (n - 1) as f64;
    let average = GaussianMixture::new(
        vec![1.0; maps.len()],
        maps.iter().map(|m| vec![m.b[0]]).collect(),
        maps.iter().map(|m| m.a[(0, 0)].powi(2)).collect(),
    )?;
    let x = Tensor::from_vec((0..n).map(|i| lo + h * i as f64).collect::<Vec<_>>(), (n, 1), &Device::Cpu)?;
    let log_rho = average.log_prob(&x, 1.0, 0.0)?.flatten_all()?.to_vec1::<f64>()?;
    let log_mu = target.log_density(&x)?.flatten_all()?.to_vec1::<f64>()?;
    Ok(log_rho
        .iter()
        .zip(&log_mu)
        .enumerate()
        .map(|(i, (lr, lm))| {
            let w = if i == 0 || i == n - 1 { 0.5 } else { 1.0 };
            w * h * lr.exp() * (lr - lm)
        })
        .sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target_2d() -> Gaussian {
        Gaussian::new(&[1.0, -0.5], &[2.0, 0.6, 0.6, 0.5]).unwrap()
    }

    /// ξ from its definition ∇_y[log ρ_k(∇ψ_k(y)) − log μ(∇ψ_k(y))] by central differences, with
    /// ρ_k's density by the change of variables — nothing of the closed form is reused.
    #[test]
    fn the_closed_form_step_is_the_discrete_flow_of_its_definition() {
        let target = target_2d();
        let map = AffineMap { a: DMatrix::from_row_slice(2, 2, &[1.3, 0.2, 0.2, 0.8]), b: DVector::from_column_slice(&[0.3, 0.1]) };
        let eta = 0.2;
        let next = map.step(&target, eta).unwrap();
        let rho = Gaussian::new(map.b.as_slice(), (&map.a * &map.a).transpose().as_slice()).unwrap();
        let h_at = |y: &DVector<f64>| {
            let x = &map.a * y + &map.b;
            let x = Tensor::from_vec(x.as_slice().to_vec(), (1, 2), &Device::Cpu).unwrap();
            let log_at = |t: &Gaussian| t.log_density(&x).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap()[0];
            log_at(&rho) - log_at(&target)
        };
        for y in [[0.4, -1.1], [-0.7, 0.3], [1.5, 2.0]] {
            let y = DVector::from_column_slice(&y);
            let e = 1e-5;
            let xi = DVector::from_fn(2, |j, _| {
                let mut dy = DVector::zeros(2);
                dy[j] = e;
                (h_at(&(&y + &dy)) - h_at(&(&y - &dy))) / (2.0 * e)
            });
            let expected = &map.a * &y + &map.b - xi * eta;
            let got = &next.a * &y + &next.b;
            assert!((expected - got).norm() < 1e-7, "step disagrees with its definition at y = {y}");
        }
    }

    #[test]
    fn constant_steps_converge_to_brenier_and_kl_matches_quadrature() {
        let target = target_2d();
        let maps = gaussian_flow(&target, StepSchedule::Constant(0.3), 200).unwrap();
        let last = maps.last().unwrap();
        let brenier = AffineMap::brenier(&target);
        assert!((&last.a - &brenier.a).norm() < 1e-8 && (&last.b - &brenier.b).norm() < 1e-8);
        assert!(last.kl_to(&target) < 1e-14 && last.kl_to(&target) >= -1e-14);
        assert!(maps.iter().all(|m| m.min_curvature() > 0.0));
        // KL is monotone along the flow for this step size
        assert!(maps.windows(2).all(|w| w[1].kl_to(&target) <= w[0].kl_to(&target) + 1e-15));
        // 1-D: closed-form KL equals the quadrature of the same density
        let t1 = Gaussian::new(&[0.7], &[0.36]).unwrap();
        let m = AffineMap { a: DMatrix::from_element(1, 1, 1.4), b: DVector::from_element(1, -0.2) };
        let quad = average_kl_1d(std::slice::from_ref(&m), &t1).unwrap();
        assert!((quad - m.kl_to(&t1)).abs() < 1e-9, "quadrature {quad} vs closed form {}", m.kl_to(&t1));
    }

    #[test]
    fn the_average_iterate_is_no_worse_than_the_average_kl() {
        // convexity of KL: KL(ρ̄ | μ) ≤ (1/K)Σ KL(ρ_k | μ)
        let t1 = Gaussian::new(&[2.0], &[0.25]).unwrap();
        let maps = gaussian_flow(&t1, StepSchedule::Constant(0.1), 20).unwrap();
        let avg = average_kl_1d(&maps[..20], &t1).unwrap();
        let mean_kl = maps[..20].iter().map(|m| m.kl_to(&t1)).sum::<f64>() / 20.0;
        assert!(avg > 0.0 && avg <= mean_kl, "KL(ρ̄) = {avg}, mean KL {mean_kl}");
    }
}
