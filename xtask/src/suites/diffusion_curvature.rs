//! `diffusion-curvature`: Liang's "Generative Models, Optimal Transport, and PDEs" figures (Liang, Koriyama & Dharmakeerthi 2024) from exact
//! posterior covariances. For the two-point mass ½δ₋₁ + ½δ₁, ½δ₀ + ½N(0, 1) and the mixture
//! 0.1N(−4, 1) + 0.2N(−2, 0.5) + 0.4N(2, 0.5) + 0.3N(4, 1): the survival function s_r(u) of the
//! localization L_r at low and high SNR, ζ*_M(t) of the OU process, m*(r), and the forward OU
//! chain from μ and ν₀ = δ₀ followed by the backward OT denoising map b^μ (T = 100 steps,
//! η = 0.01). A last row checks the 1-D Gaussian one-step ratio numerically.

use super::{get_str, get_usize, json_points, read_plot_data, write_plot_data, Suite};
use crate::plot::{line_panels, LinePanel, Series};
use crate::report::{Report, Row};
use candle_core::{DType, Device, Tensor};
use ode_solvers::uniform_grid;
use score_diffusion::localization::{zeta_star, LocalizationProfile};
use score_diffusion::ot_denoise::{gaussian_ratio, w2_1d, OuChain};
use score_diffusion::GaussianMixture;
use serde_json::{json, Value};
use std::path::Path;
use tensor_core::SeededRng;

pub struct DiffusionCurvature;

const EXAMPLES: [&str; 3] = ["two-point", "point-plus-gaussian", "mixture4"];
const LOW_SNR: [f64; 3] = [0.5, 0.71, 1.0];
const HIGH_SNR: [f64; 3] = [1.5, 3.0, 5.0];
const M_VALUES: [f64; 3] = [1.0, 2.0, 5.0];
const BETA_INV: f64 = 1.0;

fn example(name: &str) -> Result<GaussianMixture, String> {
    let comps: &[(f64, f64, f64)] = match name {
        "two-point" => &[(0.5, -1.0, 0.0), (0.5, 1.0, 0.0)],
        "point-plus-gaussian" => &[(0.5, 0.0, 0.0), (0.5, 0.0, 1.0)],
        "mixture4" => &[(0.1, -4.0, 1.0), (0.2, -2.0, 0.5), (0.4, 2.0, 0.5), (0.3, 4.0, 1.0)],
        other => return Err(format!("unknown example '{other}'")),
    };
    GaussianMixture::one_dimensional(comps).map_err(|e| e.to_string())
}

fn monte_carlo(quick: bool) -> usize {
    if quick {
        4000
    } else {
        40_000
    }
}

fn s(e: impl std::fmt::Display) -> String {
    e.to_string()
}

impl DiffusionCurvature {
    fn run_example(&self, name: &str, n: usize, cloud: usize, seed: u64) -> Result<Row, String> {
        let mu = example(name)?;
        let grid = uniform_grid(0.0, 1.0, 200).map_err(s)?;
        let mut row = Row::new();
        // survival functions at low and high SNR
        let mut survival = serde_json::Map::new();
        for &r in LOW_SNR.iter().chain(&HIGH_SNR) {
            let p = LocalizationProfile::draw(&mu, r, n, seed).map_err(s)?;
            let us = uniform_grid(0.0, p.max().max(1.2) * 1.02, 159).map_err(s)?;
            survival.insert(format!("{r}"), json!(us.iter().map(|&u| [u, p.survival(u)]).collect::<Vec<_>>()));
            row.insert(format!("P(L>1) r={r}"), p.survival(1.0).into());
        }
        // m*(r) over SNR: the hardest scale is where it peaks
        let snrs: Vec<f64> = (0..40).map(|i| 0.1 * 1.12f64.powi(i)).collect();
        let mut m_star = Vec::new();
        for &r in &snrs {
            m_star.push([r, LocalizationProfile::draw(&mu, r, n / 2, seed + 1).map_err(s)?.m_star(&grid[1..])]);
        }
        let hardest = m_star.iter().copied().fold([0.0, f64::MIN], |a, b| if b[1] > a[1] { b } else { a });
        row.insert("m*_max".into(), hardest[1].into());
        row.insert("hardest_snr".into(), hardest[0].into());
        // ζ*_M(t) for the OU process
        let ts: Vec<f64> = (1..=40).map(|i| 0.05 * i as f64).collect();
        let mut zeta = serde_json::Map::new();
        for &m in &M_VALUES {
            let mut curve = Vec::new();
            for &t in &ts {
                curve.push([t, zeta_star(&mu, t, m, BETA_INV, n / 2, 200, seed + 2).map_err(s)?]);
            }
            let worst = curve.iter().map(|c| c[1]).fold(f64::INFINITY, f64::min);
            row.insert(format!("min_t zeta*_{m}"), worst.into());
            zeta.insert(format!("{m}"), json!(curve));
        }
        // forward chain from μ and from ν₀ = δ₀, then the backward OT map of μ
        let chain = OuChain { beta_inv: BETA_INV, eta: 0.01, steps: 100 };
        let mut rng = SeededRng::new(seed + 3);
        let x0 = mu.sample(cloud, &mut rng, DType::F64, &Device::Cpu).map_err(s)?;
        let nu0 = Tensor::zeros((cloud, 1), DType::F64, &Device::Cpu).map_err(s)?;
        let fwd_mu = chain.forward(&x0, seed + 4).map_err(s)?;
        let fwd_nu = chain.forward(&nu0, seed + 5).map_err(s)?;
        let back_mu = chain.backward(&mu, fwd_mu.last().ok_or("empty chain")?).map_err(s)?;
        let back_nu = chain.backward(&mu, fwd_nu.last().ok_or("empty chain")?).map_err(s)?;
        let reference = mu.sample(cloud, &mut rng, DType::F64, &Device::Cpu).map_err(s)?;
        let w = |a: &Tensor| w2_1d(a, &reference).map_err(s);
        let (w_nu0, w_back_nu) = (w(&nu0)?, w(back_nu.last().ok_or("empty chain")?)?);
        row.insert("W2(mu_T, mu)".into(), w(fwd_mu.last().ok_or("empty chain")?)?.into());
        row.insert("W2(b(mu_T), mu)".into(), w(back_mu.last().ok_or("empty chain")?)?.into());
        row.insert("W2(nu_0, mu)".into(), w_nu0.into());
        row.insert("W2(b∘f(nu_0), mu)".into(), w_back_nu.into());
        row.insert("diffuse-then-denoise ratio".into(), (w_back_nu / w_nu0).into());
        row.insert("W2 two samples of mu".into(), w(&x0)?.into());
        let paths = |clouds: &[Tensor], forward: bool| -> Result<Vec<Vec<[f64; 2]>>, String> {
            let values: Vec<Vec<f64>> = clouds
                .iter()
                .map(|c| c.narrow(0, 0, 40).and_then(|c| c.flatten_all()).and_then(|c| c.to_vec1::<f64>()).map_err(s))
                .collect::<Result<_, _>>()?;
            let k = values.len() - 1;
            Ok((0..40)
                .map(|i| values.iter().enumerate().map(|(j, v)| [0.01 * if forward { j } else { k - j } as f64, v[i]]).collect())
                .collect())
        };
        let data = json!({
            "survival": survival, "m_star": m_star, "zeta": zeta,
            "forward_mu": paths(&fwd_mu, true)?, "forward_nu": paths(&fwd_nu, true)?,
            "backward_mu": paths(&back_mu, false)?, "backward_nu": paths(&back_nu, false)?,
        });
        write_plot_data(self.name(), name, &data)?;
        Ok(row)
    }

    fn run_ratio(&self, seed: u64) -> Result<Row, String> {
        let chain = OuChain { beta_inv: 1.0, eta: 0.01, steps: 100 };
        let mut rng = SeededRng::new(seed);
        let (mut gap_doubled, mut gap_seed, mut expansion_ok) = (0.0f64, 0.0f64, true);
        for sigma2 in [0.25, 0.5, 2.0, 4.0] {
            let mu = GaussianMixture::one_dimensional(&[(1.0, 0.0, sigma2)]).map_err(s)?;
            for k in [1, 5, 10, 25, 50, 100] {
                let vk = (-2.0 * 0.01 * k as f64).exp() * (sigma2 - 1.0) + 1.0;
                let mu_k = (rng.normal((4000, 1), DType::F64, &Device::Cpu).map_err(s)? * vk.sqrt()).map_err(s)?;
                let nu_k = rng.normal((4000, 1), DType::F64, &Device::Cpu).map_err(s)?.affine(0.6, 0.4).map_err(s)?;
                let after =
                    w2_1d(&chain.backward_map(&mu, k, &mu_k).map_err(s)?, &chain.backward_map(&mu, k, &nu_k).map_err(s)?).map_err(s)?;
                let ratio = after / w2_1d(&mu_k, &nu_k).map_err(s)?;
                let (seed_form, doubled) = gaussian_ratio(sigma2, 0.01, k);
                gap_doubled = gap_doubled.max((ratio - doubled).abs());
                gap_seed = gap_seed.max((ratio - seed_form).abs());
                expansion_ok &= (ratio > 1.0) == (sigma2 > 1.0);
            }
        }
        let mut row = Row::new();
        row.insert("max |ratio − (1+η(σ²−1)/(e^{2kη}+σ²−1))|".into(), gap_doubled.into());
        row.insert("max |ratio − seed's (1+η(σ²−1)/(e^{kη}+σ²−1))|".into(), gap_seed.into());
        row.insert("expansion iff σ²>1".into(), (if expansion_ok { "yes" } else { "no" }).into());
        Ok(row)
    }
}

impl Suite for DiffusionCurvature {
    fn name(&self) -> &'static str {
        "diffusion-curvature"
    }
    fn description(&self) -> &'static str {
        "Liang, “Generative Models, Optimal Transport, and PDEs”: localization survival s_r(u), m*(r), ζ*_M(t), OU diffuse-then-denoise with the exact OT backward map, Gaussian one-step ratio"
    }
    fn data_source(&self, _quick: bool) -> String {
        "closed-form measures from Liang, “Generative Models, Optimal Transport, and PDEs” (two-point mass, ½δ₀+½N(0,1), 4-component mixture); no data set".into()
    }
    fn config(&self, quick: bool) -> Value {
        json!({"monte_carlo": monte_carlo(quick), "beta_inv": BETA_INV, "ou_chain": {"eta": 0.01, "steps": 100}, "low_snr": LOW_SNR, "high_snr": HIGH_SNR, "M": M_VALUES, "delta_grid": 201})
    }
    fn rows(&self, quick: bool) -> Vec<Row> {
        let cloud = if quick { 1000 } else { 4000 };
        EXAMPLES
            .iter()
            .map(|e| json!({"example": e, "monte_carlo": monte_carlo(quick), "cloud": cloud}))
            .chain([json!({"example": "gaussian-ratio"})])
            .filter_map(|r| r.as_object().cloned())
            .collect()
    }
    fn run_row(&self, cfg: &Row, _device: &Device, seed: u64) -> Result<Row, String> {
        match get_str(cfg, "example")? {
            "gaussian-ratio" => self.run_ratio(seed),
            name => self.run_example(name, get_usize(cfg, "monte_carlo")?, get_usize(cfg, "cloud")?, seed),
        }
    }
    fn finish(&self, report: &mut Report, out: &Path) -> Result<(), String> {
        let curves = |v: &Value, keys: &[f64], label: &str| -> Vec<Series> {
            keys.iter().map(|k| Series { label: format!("{label} = {k}"), points: json_points(&v[format!("{k}")]) }).collect()
        };
        let bundle = |v: &Value| -> Vec<Series> {
            v.as_array().map(|a| a.iter().map(|p| Series { label: String::new(), points: json_points(p) }).collect()).unwrap_or_default()
        };
        let mut figure = Vec::new();
        let mut transport = Vec::new();
        for name in EXAMPLES {
            let Some(d) = read_plot_data(out, self.name(), name) else { continue };
            let panel = |title: &str, x: &str, y: &str, series: Vec<Series>, legend: bool| LinePanel {
                title: format!("{name}: {title}"),
                x_label: x.into(),
                y_label: y.into(),
                series,
                legend,
            };
            figure.push(panel("s_r(u), low SNR", "u", "P(L_r > u)", curves(&d["survival"], &LOW_SNR, "r"), true));
            figure.push(panel("s_r(u), high SNR", "u", "P(L_r > u)", curves(&d["survival"], &HIGH_SNR, "r"), true));
            figure.push(panel("ζ*_M(t), OU β⁻¹ = 1", "t", "ζ*_M", curves(&d["zeta"], &M_VALUES, "M"), true));
            figure.push(panel(
                "m*(r)",
                "SNR r",
                "min_δ h(δ,r)/δ",
                vec![Series { label: "m*".into(), points: json_points(&d["m_star"]) }],
                false,
            ));
            transport.push(panel("forward from μ", "t = kη", "x", bundle(&d["forward_mu"]), false));
            transport.push(panel("forward from ν₀ = δ₀", "t = kη", "x", bundle(&d["forward_nu"]), false));
            transport.push(panel("backward b^μ from μ_T", "t = kη", "x", bundle(&d["backward_mu"]), false));
            transport.push(panel("backward b^μ from ν_T", "t = kη", "x", bundle(&d["backward_nu"]), false));
        }
        if !figure.is_empty() {
            line_panels(
                &out.join("diffusion_curvature.png"),
                "Liang, “Generative Models, Optimal Transport, and PDEs”: localization survival, ζ*_M(t), m*(r)",
                4,
                &figure,
            )?;
            line_panels(
                &out.join("diffusion_transport.png"),
                "Liang, “Generative Models, Optimal Transport, and PDEs”: forward OU diffusion and backward OT transport (T = 100, η = 0.01)",
                4,
                &transport,
            )?;
            report.plots.extend(["diffusion_curvature.png".to_string(), "diffusion_transport.png".to_string()]);
        }
        report.notes.push("L_r(y) = ‖Cov[rX | rX + Z = y]‖ is exact (closed-form posterior of the mixture); the law of L_r(Y_r) and h_μ(δ, r) = E(L_r − 1 + δ)₊ are Monte Carlo. L_r ≤ 1 − δ ⇔ ∇²log p ⪯ −δI: P(L>1) is the mass of positive-curvature (non-log-concave) locations.".into());
        report.notes.push("'diffuse-then-denoise ratio' = W2(μ, b^μ∘f(ν₀))/W2(μ, ν₀) with ν₀ = δ₀: below 1 when the chain contracts net of the backward expansion. The backward map uses the exact score of the continuous-time OU marginal μ_{kη}.".into());
        report.notes.push("gaussian-ratio: with dX = −X dt + √2 dB (f = ‖x‖²/2, β = 1, as Liang, “Generative Models, Optimal Transport, and PDEs” writes the chain) the exact backward map gives 1 + η(σ²−1)/(e^{2kη}+σ²−1); the seed's e^{kη} is the same ratio on the clock of dX = −½X dt + dB. The row shows which one the code follows.".into());
        Ok(())
    }
}
