//! The curvature bounds of "Denoising Diffusions with Optimal Transport: Localization,
//! Curvature, and Multi-Scale Complexity" (Liang, Dharmakeerthi & Koriyama) checked in numbers:
//! m*(r) and ζ*_M(t) against their closed forms on Gaussians and against quadrature on the
//! two-point mixture, and the multi-scale theorem's bound on the backward step's W2 expansion
//! rate, 2 − 2ζ*_M(t), against the rate the library's backward map actually has on perturbations
//! of that mixture.

use candle_core::{Device, Tensor};
use ode_solvers::uniform_grid;
use score_diffusion::localization::{ou_snr, zeta_star, LocalizationProfile};
use score_diffusion::ot_denoise::OuChain;
use score_diffusion::GaussianMixture;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Nodes z and weights of the trapezoid rule for the standard normal on [−10, 10] (4,001 nodes):
/// Σ w g(z) ≈ ∫ g(z) φ(z) dz.
fn normal_quadrature() -> Vec<(f64, f64)> {
    let (n, lim) = (4000usize, 10.0f64);
    let h = 2.0 * lim / n as f64;
    (0..=n)
        .map(|k| {
            let z = -lim + h * k as f64;
            let end = if k == 0 || k == n { 0.5 } else { 1.0 };
            (z, end * h * (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt())
        })
        .collect()
}

/// E g(Z) for Z ~ N(0, 1), by [`normal_quadrature`].
fn gauss_expect(g: impl Fn(f64) -> f64) -> f64 {
    normal_quadrature().into_iter().map(|(z, w)| w * g(z)).sum()
}

/// A displacement field φ with its name and sup φ².
type Perturbation = (&'static str, fn(f64) -> f64, f64);

/// h_μ(δ, r) for μ = ½δ₋ₐ + ½δₐ by quadrature: L_r(y) = r²a² sech²(r a y) and, by symmetry,
/// Y_r = r a + Z.
fn two_point_tail(a: f64, r: f64, delta: f64) -> f64 {
    gauss_expect(|z| {
        let l = (r * a).powi(2) / (r * a * (r * a + z)).cosh().powi(2);
        (l - (1.0 - delta)).max(0.0)
    })
}

/// For μ = N(0, σ² I), L_r ≡ ℓ = r²σ²/(1 + r²σ²): h_μ(δ, r) = (ℓ − 1 + δ)₊, so m*(r) = 0 and
/// ζ*_M(t) = [1 − min(M, 1) ℓ]/(1 − e^{−2t}).
#[test]
fn gaussian_m_star_and_zeta_star_are_closed_form() -> Result<()> {
    let grid = uniform_grid(0.0, 1.0, 1000)?;
    for (dim, sigma2) in [(1usize, 0.5f64), (2, 3.0)] {
        let mu = GaussianMixture::new(vec![1.0], vec![vec![0.0; dim]], vec![sigma2])?;
        for t in [0.1f64, 0.5, 2.0] {
            let r = ou_snr(t, 1.0);
            let ell = r * r * sigma2 / (1.0 + r * r * sigma2);
            let profile = LocalizationProfile::draw(&mu, r, 500, 3)?;
            assert!((profile.max() - ell).abs() < 1e-12, "L_r is the constant ℓ = {ell}, got max {}", profile.max());
            for delta in [0.0, 0.3, 0.9, 1.0] {
                let want = (ell - 1.0 + delta).max(0.0);
                assert!((profile.integrated_tail(delta) - want).abs() < 1e-12, "h({delta}, {r})");
            }
            assert_eq!(profile.m_star(&grid), 0.0, "strongly log-concave: no tail below δ = 1 − ℓ");
            let decay = 1.0 - (-2.0 * t).exp();
            for m in [0.5f64, 1.0, 4.0] {
                let want = (1.0 - m.min(1.0) * ell) / decay;
                let got = zeta_star(&mu, t, m, 1.0, 500, 1000, 3)?;
                // the sup sits at δ = 1 − ℓ (M ≥ 1) or δ = 1: within one grid step of 1e-3
                assert!(got <= want + 1e-12 && want - got <= 1e-3 / decay, "d {dim}, t {t}, M {m}: ζ* {got} vs {want}");
            }
        }
    }
    Ok(())
}

/// On μ = ½δ₋₁ + ½δ₁ (the seed's simplest non-log-concave example) the Monte Carlo profile's
/// integrated tail, m*(r) and ζ*_M(t) agree with quadrature to Monte Carlo accuracy.
#[test]
fn two_point_tail_m_star_and_zeta_star_match_quadrature() -> Result<()> {
    let mu = GaussianMixture::one_dimensional(&[(0.5, -1.0, 0.0), (0.5, 1.0, 0.0)])?;
    let grid = uniform_grid(0.0, 1.0, 200)?;
    for r in [0.71, 1.5, 3.0] {
        let profile = LocalizationProfile::draw(&mu, r, 40_000, 5)?;
        for delta in [0.1, 0.5, 1.0] {
            let (got, want) = (profile.integrated_tail(delta), two_point_tail(1.0, r, delta));
            // L_r ≤ r², so the standard error is at most r²/√n ≈ 0.045 at r = 3; measured far less
            assert!((got - want).abs() < 0.01 * r * r, "r {r}, δ {delta}: h {got} vs quadrature {want}");
        }
        let m_quad = grid.iter().filter(|d| **d > 0.0).map(|&d| two_point_tail(1.0, r, d) / d).fold(f64::INFINITY, f64::min);
        assert!((profile.m_star(&grid) - m_quad).abs() < 0.02 * r * r, "r {r}: m* {} vs {m_quad}", profile.m_star(&grid));
        if r < 1.0 {
            assert_eq!(m_quad, 0.0, "L_r ≤ r² < 1: the tail is empty for small δ");
        } else {
            assert!(m_quad > 0.0, "r {r}: high SNR puts mass above 1");
        }
    }
    let (t, m) = (0.3f64, 2.0);
    let r = ou_snr(t, 1.0);
    let want = grid.iter().map(|&d| d - m * two_point_tail(1.0, r, d)).fold(f64::NEG_INFINITY, f64::max) / (1.0 - (-2.0 * t).exp());
    let got = zeta_star(&mu, t, m, 1.0, 40_000, 200, 5)?;
    assert!((got - want).abs() < 0.05 * want.abs().max(1.0), "ζ*_M(t): {got} vs quadrature {want}");
    Ok(())
}

/// The multi-scale theorem: for ν = (i + εφ)#μ_t in M(μ_t, M), M = sup φ²/E_μt φ², the backward
/// step's expansion rate (1/η)[W2²(b#μ_t, b#ν)/W2²(μ_t, ν) − 1] is at most
/// 2 − 2/(1 − e^{−2t})·[δ − M h_μ(δ, r(t))] for every δ, i.e. 2 − 2ζ*_M(t). In 1-D every map here
/// is monotone, so W2²(μ_t, ν) = ε² E φ² and W2²(b#μ_t, b#ν) = E[(b(x + εφ(x)) − b(x))²]
/// exactly; both by quadrature over μ_t, with the library's backward map b. The measured rate also
/// matches its η, ε → 0 limit 2 + 2 E[(log p_t)'' φ²]/E φ², and a constant shift (M = 1) attains
/// the bound.
#[test]
fn backward_expansion_rate_respects_the_multiscale_bound() -> Result<()> {
    let mu = GaussianMixture::one_dimensional(&[(0.5, -1.0, 0.0), (0.5, 1.0, 0.0)])?;
    let (eta, eps) = (1e-5, 1e-5);
    let grid = uniform_grid(0.0, 1.0, 400)?;
    // (name, φ, sup φ²)
    let perturbations: [Perturbation; 3] = [("shift", |_| 1.0, 1.0), ("tanh", f64::tanh, 1.0), ("bump", |x| (-x * x).exp(), 1.0)];
    for t in [0.05f64, 0.3, 1.0] {
        let (alpha, sigma) = ((-t).exp(), (1.0 - (-2.0 * t).exp()).sqrt());
        // the backward map at time t = kη of a chain with step η
        let k = (t / eta).round() as usize;
        let chain = OuChain { beta_inv: 1.0, eta, steps: k };
        let b = |x: &[f64]| -> Result<Vec<f64>> {
            let y = chain.backward_map(&mu, k, &Tensor::from_slice(x, (x.len(), 1), &Device::Cpu)?)?;
            Ok(y.flatten_all()?.to_vec1::<f64>()?)
        };
        // quadrature nodes of μ_t = ½N(−α, σ²) + ½N(α, σ²) and their weights
        let mut nodes = Vec::new();
        let mut weights = Vec::new();
        for centre in [-alpha, alpha] {
            for (z, w) in normal_quadrature() {
                nodes.push(centre + sigma * z);
                weights.push(0.5 * w);
            }
        }
        let x = Tensor::from_slice(&nodes, (nodes.len(), 1), &Device::Cpu)?;
        let (_, curvature) = mu.score_and_laplacian(&x, alpha, sigma)?;
        let curvature = curvature.flatten_all()?.to_vec1::<f64>()?;
        let bx = b(&nodes)?;
        for (name, phi, sup_phi2) in perturbations {
            let mean_phi2: f64 = nodes.iter().zip(&weights).map(|(x, w)| w * phi(*x).powi(2)).sum();
            let m = sup_phi2 / mean_phi2;
            let moved: Vec<f64> = nodes.iter().map(|x| x + eps * phi(*x)).collect();
            let b_moved = b(&moved)?;
            let w2_after: f64 = bx.iter().zip(&b_moved).zip(&weights).map(|((a, c), w)| w * (c - a).powi(2)).sum();
            let rate = (w2_after / (eps * eps * mean_phi2) - 1.0) / eta;
            let limit =
                2.0 + 2.0 * nodes.iter().zip(&weights).zip(&curvature).map(|((x, w), c)| w * c * phi(*x).powi(2)).sum::<f64>() / mean_phi2;
            assert!((rate - limit).abs() < 1e-3 * limit.abs().max(1.0), "t {t}, {name}: measured rate {rate} vs its limit {limit}");
            let r = ou_snr(t, 1.0);
            let zeta = grid.iter().map(|&d| d - m * two_point_tail(1.0, r, d)).fold(f64::NEG_INFINITY, f64::max) / (sigma * sigma);
            let bound = 2.0 - 2.0 * zeta;
            // two quadratures and a finite η, ε: 1e-4 relative slack
            assert!(rate <= bound + 1e-4 * bound.abs().max(1.0), "t {t}, {name} (M = {m:.2}): rate {rate} above the bound {bound}");
            if name == "shift" {
                // M = 1 and δ = 1 turn the bound into 2 + 2(E L_r − 1)/σ² = 2 + 2E[(log p_t)'']: equality
                assert!((rate - bound).abs() < 1e-3 * bound.abs().max(1.0), "t {t}: the shift attains the bound, {rate} vs {bound}");
            }
        }
    }
    Ok(())
}

/// μ = N(0, σ²), β = 1: the OT-map chain and the SDE chain both carry exact draws of μ_{Kη} back
/// to μ. Their variances follow v ← (1 + η(1 − c/v_k))² v (+ 2η for the SDE) with c = 1 for
/// the map and 2 for the SDE; the samples match these recursions to Monte Carlo accuracy, and
/// the recursions end within O(η) of σ².
#[test]
fn backward_map_and_backward_sde_both_return_to_the_data() -> Result<()> {
    let (eta, steps, n) = (0.01, 100usize, 20_000usize);
    let chain = OuChain { beta_inv: 1.0, eta, steps };
    for sigma2 in [0.25f64, 4.0] {
        let mu = GaussianMixture::one_dimensional(&[(1.0, 0.0, sigma2)])?;
        let v = |k: usize| (-2.0 * eta * k as f64).exp() * (sigma2 - 1.0) + 1.0;
        let mut rng = tensor_core::SeededRng::new(21);
        let x_k = (rng.normal((n, 1), candle_core::DType::F64, &Device::Cpu)? * v(steps).sqrt())?;
        for (form, c, noise) in [("map", 1.0, 0.0), ("sde", 2.0, 2.0 * eta)] {
            let mut var = v(steps);
            for k in (1..=steps).rev() {
                var = (1.0 + eta * (1.0 - c / v(k))).powi(2) * var + noise;
            }
            assert!((var - sigma2).abs() < 5.0 * eta * sigma2.max(1.0), "σ² {sigma2}, {form}: recursion ends at {var}");
            let path = if form == "map" { chain.backward(&mu, &x_k)? } else { chain.backward_sde(&mu, &x_k, 4)? };
            let end = path.last().expect("K + 1 clouds").flatten_all()?.to_vec1::<f64>()?;
            let mean = end.iter().sum::<f64>() / n as f64;
            let sample_var = end.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
            // standard error of a sample variance: v √(2/n) ≈ 1% of v
            assert!((sample_var - var).abs() < 0.05 * var, "σ² {sigma2}, {form}: sample variance {sample_var} vs recursion {var}");
            assert!(mean.abs() < 5.0 * (var / n as f64).sqrt(), "σ² {sigma2}, {form}: mean {mean}");
        }
    }
    Ok(())
}

/// The chained bound W2²(μ, (b_[K] ∘ f_[K])#ν)/W2²(μ, ν) ≤ exp(−2ηβ⁻¹ Σ_k ζ_{kη} + O(η²)) on
/// Gaussians, where it is sharp: μ = N(0, σ²) has ∇²log p_{μ_t} = −1/v_t (ζ_t = 1/v_t); ν =
/// N(m, s²) moves forward by its own deterministic map f = i − η(x + β⁻¹∇log p_{ν_t}) (Gaussian in
/// closed form) and back by the library's backward map of μ (linear: read off at two points). A
/// shifted ν (s = σ) attains the bound; other variances contract faster.
#[test]
fn chained_contraction_matches_the_curvature_bound_on_gaussians() -> Result<()> {
    let (eta, steps) = (0.005, 200usize);
    let chain = OuChain { beta_inv: 1.0, eta, steps };
    for (sigma2, m0, s0) in [(0.25f64, 1.0f64, 0.8f64), (4.0, -0.5, 1.0), (0.25, 1.0, 0.5), (4.0, -0.5, 2.0)] {
        let mu = GaussianMixture::one_dimensional(&[(1.0, 0.0, sigma2)])?;
        let v = |k: usize| (-2.0 * eta * k as f64).exp() * (sigma2 - 1.0) + 1.0;
        // forward: ν_t = N(m, s²) under x ← x − η(x − (x − m)/s²)
        let (mut m, mut s) = (m0, s0);
        for _ in 0..steps {
            (m, s) = ((1.0 - eta) * m, s * (1.0 - eta + eta / (s * s)));
        }
        // backward with μ's map: x ← a_k x + c_k (c_k = 0 for centred μ)
        for k in (1..=steps).rev() {
            let y = chain.backward_map(&mu, k, &Tensor::new(&[[0.0f64], [1.0]], &Device::Cpu)?)?.flatten_all()?.to_vec1::<f64>()?;
            let (c, a) = (y[0], y[1] - y[0]);
            (m, s) = (a * m + c, a * s);
        }
        let sigma = sigma2.sqrt();
        let ratio = (m * m + (s - sigma).powi(2)) / (m0 * m0 + (s0 - sigma).powi(2));
        let bound = (-2.0 * eta * (1..=steps).map(|k| 1.0 / v(k)).sum::<f64>()).exp();
        assert!(ratio <= bound * 1.05, "σ² {sigma2}, ν = N({m0}, {s0}²): ratio {ratio} above the bound {bound}");
        if s0 == sigma {
            // ν differs from μ by a shift: it keeps μ's variance, and the bound is attained
            assert!((ratio / bound - 1.0).abs() < 0.05, "σ² {sigma2}: a shifted ν attains the bound, ratio {ratio} vs {bound}");
        }
    }
    Ok(())
}
