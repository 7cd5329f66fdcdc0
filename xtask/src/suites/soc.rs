//! `soc`: stochastic optimal control with a neural value function ("A Neural Network Approach
//! for Stochastic Optimal Control", Li, Verma, Ruthotto), NeuralSOC's 100-D benchmarks:
//!
//! - type 1 (Han–Jentzen–E: f = 2u, L = ‖u‖², σ = √2, g = log((1 + ‖z‖²)/2), z₀ = 0): Φ_θ(0, 0)
//!   against the Hopf–Cole Monte Carlo value (literature 4.5901), and the mean relative error of
//!   Φ_θ along closed-loop validation paths;
//! - type 2 (the shifted target z* = 3·𝟙, terminal weight 1000, σ = 0.4√2): the closed loop's
//!   control objective J against the iteration when Φ_θ is trained on PMP paths or on the random
//!   walk, the final J against the Hopf–Cole estimate (with its effective sample size), and the
//!   paths projected on the first two coordinates;
//! - time per iteration and peak memory next to NeuralSOC's own code at the same width, batch,
//!   steps and network (`benches/reference/neuralsoc_100d.py` with `$NEURALSOC_REPO` a checkout of
//!   EmoryMLIP/NeuralSOC; a "skipped" row without torch or the checkout).

use super::{get_str, get_usize, json_points, measure_peak, read_plot_data, run_python_reference, write_plot_data, Suite};
use crate::plot::{line_panels, LinePanel, Series};
use crate::report::{Report, Row};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use neural_soc::{evaluate, fit, rollout, ControlProblem, HopfCole, QuadraticControl, Sampler, SocTrainConfig, SocWeights};
use serde_json::{json, Value};
use std::path::Path;
use tensor_core::nets::{Potential, PotentialConfig};
use tensor_core::params::ParamBuilder;
use tensor_core::SeededRng;

pub struct SocSuite;

const DIM: usize = 100;
/// NeuralSOC's `train_100d.py --net ResNet_OTflow`: width 64, Phi_OTflow(nTh = 4).
const WIDTH: usize = 64;
const LAYERS: usize = 4;

fn s(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn iters(case: &str, quick: bool) -> usize {
    match (case, quick) {
        ("type1", true) => 300,
        ("type2", true) => 300,
        (_, false) => 2000,
        _ => 20,
    }
}

fn problem(case: &str) -> Result<QuadraticControl, String> {
    match case {
        "type1" | "timing" => QuadraticControl::han_jentzen_e(DIM).map_err(s),
        "type2" => QuadraticControl::shifted_target(DIM).map_err(s),
        other => Err(format!("unknown case '{other}'")),
    }
}

/// PMP paths train with `train_100d.py`'s β, random-walk paths with its BSDE and terminal terms.
fn weights(sampler: Sampler) -> SocWeights {
    match sampler {
        Sampler::Pmp => SocWeights::reference(),
        Sampler::RandomWalk => SocWeights::random_walk(),
    }
}

fn potential(vm: &VarMap, seed: u64, device: &Device) -> Result<Potential, String> {
    let mut rng = SeededRng::new(seed);
    Potential::new(
        &mut ParamBuilder::new(vm, &mut rng, DType::F32, device),
        PotentialConfig { dim: DIM, width: WIDTH, layers: LAYERS, rank: 10 },
    )
    .map_err(s)
}

fn scalar(t: &Tensor) -> Result<f64, String> {
    t.to_dtype(DType::F64).and_then(|t| t.flatten_all()?.get(0)?.to_scalar::<f64>()).map_err(s)
}

impl Suite for SocSuite {
    fn name(&self) -> &'static str {
        "soc"
    }
    fn description(&self) -> &'static str {
        "stochastic optimal control, NeuralSOC's 100-D benchmarks: Φ(0,0) vs Hopf–Cole, PMP vs random-walk sampling, time vs NeuralSOC"
    }
    fn data_source(&self, _quick: bool) -> String {
        "analytic control problems (no data set): NeuralSOC's 100-D benchmarks type 1 and 2".into()
    }
    fn config(&self, quick: bool) -> Value {
        let c = SocTrainConfig::default();
        json!({"dim": DIM, "value_function": format!("OT-Flow potential, width {WIDTH}, {LAYERS} ResNet layers, rank 10"),
               "iters": {"type1": iters("type1", quick), "type2": iters("type2", quick)}, "batch": c.batch, "steps": c.steps,
               "val_batch": c.val_batch, "val_steps": c.val_steps, "val_every": c.val_every, "lr": c.lr,
               "schedule": "lr / 10 every 1500 iterations", "weights_pmp": format!("{:?}", weights(Sampler::Pmp)),
               "weights_random_walk": format!("{:?}", weights(Sampler::RandomWalk)),
               "hopf_cole_samples": {"phi0": if quick { 100_000 } else { 400_000 }, "along_paths": if quick { 5_000 } else { 20_000 }},
               "reference": "benches/reference/neuralsoc_100d.py with $NEURALSOC_REPO = a checkout of EmoryMLIP/NeuralSOC", "dtype": "f32", "threads": 2})
    }
    fn rows(&self, quick: bool) -> Vec<Row> {
        let mut rows = vec![json!({"case": "type1", "sampler": "pmp", "side": "continuum", "iters": iters("type1", quick)})];
        for sampler in ["pmp", "random-walk"] {
            rows.push(json!({"case": "type2", "sampler": sampler, "side": "continuum", "iters": iters("type2", quick)}));
        }
        for side in ["continuum", "neuralsoc (pytorch)"] {
            rows.push(json!({"case": "timing", "sampler": "pmp", "side": side, "iters": if quick { 10 } else { 30 }}));
        }
        rows.into_iter().filter_map(|r| r.as_object().cloned()).collect()
    }

    fn run_row(&self, cfg: &Row, device: &Device, seed: u64) -> Result<Row, String> {
        let case = get_str(cfg, "case")?;
        let sampler: Sampler = get_str(cfg, "sampler")?.parse().map_err(s)?;
        let iters = get_usize(cfg, "iters")?;
        let quick = iters < 2000;
        if case == "timing" {
            return timing_row(get_str(cfg, "side")?, iters, device, seed);
        }
        let problem = problem(case)?;
        let vm = VarMap::new();
        let phi = potential(&vm, seed, device)?;
        let train = SocTrainConfig { iters, sampler, weights: weights(sampler), seed, ..Default::default() };
        let mut curve = Vec::new();
        let measured = measure_peak(device, || {
            fit(&problem, &phi, &vm, &train, false, &mut |r| {
                if let Some(v) = &r.validation {
                    curve.push(json!([r.iter, v.get("J"), v.get("phi0")]));
                    eprintln!(
                        "  {case} {} iter {:>4}: validation J {:.4}, Φ(0,0) {:.4}",
                        sampler.name(),
                        r.iter,
                        v.get("J").unwrap_or(f64::NAN),
                        v.get("phi0").unwrap_or(f64::NAN)
                    );
                }
            })
            .map_err(s)
        })?;
        let (best_iter, best) = measured.value.best.clone().ok_or("no validation ran")?;
        let mut row = Row::new();
        row.insert("best_iter".into(), best_iter.into());
        for k in ["J", "phi0", "hjb", "bsde", "terminal_value"] {
            row.insert(format!("val_{k}"), best.get(k).unwrap_or(f64::NAN).into());
        }
        row.insert("time_per_iter_s".into(), (measured.seconds / iters as f64).into());
        row.insert("train_time_s".into(), measured.seconds.into());
        row.insert("peak_rss_mb".into(), measured.peak_rss_mb.into());
        let z0 = Tensor::zeros((1, DIM), DType::F32, device).map_err(s)?;
        let phi0 = scalar(&phi.value(&z0, &Tensor::new(0f64, device).map_err(s)?).map_err(s)?)?;
        row.insert("phi0".into(), phi0.into());
        let hc = HopfCole::new(&problem).map_err(s)?;
        let mut rng = SeededRng::new(seed + 100);
        let reference = hc.value(0.0, &vec![0.0; DIM], if quick { 100_000 } else { 400_000 }, &mut rng).map_err(s)?;
        row.insert("phi0_hopf_cole".into(), reference.value.into());
        row.insert("phi0_hopf_cole_se".into(), reference.std_error.into());
        row.insert("hopf_cole_ess".into(), reference.effective_samples.into());
        row.insert("rel_err_phi0".into(), ((phi0 - reference.value).abs() / reference.value.abs()).into());
        // the closed loop of the selected parameters on a test draw (initial states and noise)
        // that selection never saw
        let z_test = problem.initial_states(train.val_batch, &mut SeededRng::new(seed + 300), DType::F32, device).map_err(s)?;
        let test = evaluate(&problem, &phi, &z_test, train.val_steps, seed + 301).map_err(s)?.metrics().map_err(s)?;
        let test_j = test.get("J").unwrap_or(f64::NAN);
        row.insert("test_J".into(), test_j.into());
        row.insert("objective_gap".into(), (test_j - reference.value).into());
        // closed-loop paths of the trained feedback, on a fresh seed
        let z = problem.initial_states(16, &mut SeededRng::new(seed + 200), DType::F32, device).map_err(s)?;
        let traj =
            rollout(&problem, &phi.detach().map_err(s)?, Sampler::Pmp, &z, train.val_steps, &mut SeededRng::new(seed + 201)).map_err(s)?;
        let mut plot = json!({"curve": curve});
        if case == "type1" {
            // s = 0, T/4, T/2, 3T/4 on every path
            let n = traj.times.len() - 1;
            let at: Vec<usize> = (0..4).map(|q| q * n / 4).collect();
            let cmp = hc.compare_along(&traj, &at, if quick { 5_000 } else { 20_000 }, &mut rng).map_err(s)?;
            row.insert("mean_rel_err_along_paths".into(), cmp.mean_relative_error.into());
            let along: Vec<Value> = cmp
                .points
                .iter()
                .take(4)
                .map(|p| json!({"phi": p.iter().map(|q| [q.0, q.1]).collect::<Vec<_>>(), "reference": p.iter().map(|q| [q.0, q.2]).collect::<Vec<_>>()}))
                .collect();
            plot["along"] = json!(along);
        }
        let xy: Vec<Vec<[f64; 2]>> = (0..16)
            .map(|p| {
                traj.states
                    .iter()
                    .map(|z| {
                        Ok([
                            scalar(&z.narrow(0, p, 1).map_err(s)?.narrow(1, 0, 1).map_err(s)?)?,
                            scalar(&z.narrow(0, p, 1).map_err(s)?.narrow(1, 1, 1).map_err(s)?)?,
                        ])
                    })
                    .collect::<Result<_, String>>()
            })
            .collect::<Result<_, String>>()?;
        plot["paths"] = json!(xy);
        write_plot_data("soc", &format!("{case}-{}", sampler.name()), &plot)?;
        Ok(row)
    }

    fn finish(&self, report: &mut Report, out: &Path) -> Result<(), String> {
        let find = |case: &str, side: &str| {
            report
                .rows
                .iter()
                .find(|r| r.get("case").and_then(Value::as_str) == Some(case) && r.get("side").and_then(Value::as_str) == Some(side))
                .cloned()
        };
        if let (Some(ours), Some(theirs)) = (find("timing", "continuum"), find("timing", "neuralsoc (pytorch)")) {
            if let (Some(a), Some(b)) =
                (ours.get("time_per_iter_s").and_then(Value::as_f64), theirs.get("time_per_iter_s").and_then(Value::as_f64))
            {
                report.notes.push(format!(
                    "time per iteration, continuum / NeuralSOC: {:.3} s / {:.3} s = {:.2}× (goal ≤ 0.5×)",
                    a,
                    b,
                    a / b
                ));
            }
        }
        report.notes.push("Φ(0,0): literature value for type 1 is 4.5901 (Han–Jentzen–E); phi0_hopf_cole is this suite's Monte Carlo estimate with its standard error. rel_err_phi0 uses the best parameters by the validation control objective J (closed-loop PMP paths on a fixed draw).".into());
        report.notes.push("Hopf–Cole values use the importance proposal with the largest effective sample size in a pilot (hopf_cole_ess of the row's sample count): plain sampling for type 1, the Laplace proposal at the shifted target for type 2, where plain sampling leaves about one effective sample. objective_gap = closed-loop test J − Hopf–Cole Φ(0,0); test_J is the selected parameters' closed loop on 128 paths whose initial states and noise selection never saw (val_* are the selection draw's figures); J is an Euler–Maruyama estimate, so it carries sampling and time-step error.".into());
        report.notes.push("random-walk rows train on BSDE + terminal terms (J and Φ(0) − J along paths that ignore the control are not the control objective); every J in the table and the plot is the closed loop u*(∇Φ_θ) on the same validation draw.".into());
        let mut curves = Vec::new();
        let mut paths = Vec::new();
        for (name, label) in [("type1-pmp", "type 1, PMP"), ("type2-pmp", "type 2, PMP"), ("type2-random-walk", "type 2, random walk")] {
            let Some(data) = read_plot_data(out, "soc", name) else { continue };
            let pts: Vec<(f64, f64)> = data["curve"]
                .as_array()
                .map(|a| a.iter().filter_map(|p| Some((p.get(0)?.as_f64()?, p.get(1)?.as_f64()?))).collect())
                .unwrap_or_default();
            if name.starts_with("type2") {
                curves.push(Series { label: label.into(), points: pts });
            } else {
                let phi0: Vec<(f64, f64)> = data["curve"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|p| Some((p.get(0)?.as_f64()?, p.get(2)?.as_f64()?))).collect())
                    .unwrap_or_default();
                let mut panel_series =
                    vec![Series { label: "validation J".into(), points: pts }, Series { label: "Φθ(0,0)".into(), points: phi0 }];
                if let Some(r) = find("type1", "continuum").and_then(|r| r.get("phi0_hopf_cole").and_then(Value::as_f64)) {
                    let xmax = panel_series[0].points.last().map_or(1.0, |p| p.0);
                    panel_series.push(Series { label: "Hopf–Cole Φ(0,0)".into(), points: vec![(0.0, r), (xmax, r)] });
                }
                paths.push(LinePanel {
                    title: "type 1: training".into(),
                    x_label: "iteration".into(),
                    y_label: "value".into(),
                    series: panel_series,
                    legend: true,
                });
                if let Some(along) = data.get("along") {
                    let series = along
                        .as_array()
                        .into_iter()
                        .flatten()
                        .enumerate()
                        .map(|(k, p)| {
                            let diff =
                                json_points(&p["phi"]).iter().zip(json_points(&p["reference"])).map(|(a, b)| (a.0, a.1 - b.1)).collect();
                            Series { label: format!("path {k}"), points: diff }
                        })
                        .collect();
                    paths.push(LinePanel {
                        title: "type 1: Φθ − Hopf–Cole along closed-loop paths".into(),
                        x_label: "s".into(),
                        y_label: "Φθ − Φ".into(),
                        series,
                        legend: true,
                    });
                }
            }
            if name.starts_with("type2") {
                let series: Vec<Series> = data["paths"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| Series { label: String::new(), points: json_points(p) })
                    .collect();
                paths.push(LinePanel {
                    title: format!("{label}: closed-loop paths (z₁, z₂)"),
                    x_label: "z₁".into(),
                    y_label: "z₂".into(),
                    series,
                    legend: false,
                });
            }
        }
        if !curves.is_empty() {
            paths.insert(
                0,
                LinePanel {
                    title: "type 2: closed-loop J vs iteration".into(),
                    x_label: "iteration".into(),
                    y_label: "J (validation)".into(),
                    series: curves,
                    legend: true,
                },
            );
        }
        if !paths.is_empty() {
            line_panels(&out.join("soc.png"), "NeuralSOC 100-D benchmarks (analytic problems, no data set)", 2, &paths)?;
            report.notes.push("plot: soc.png (type 2 J vs iteration per sampler; type 1 training and Φθ vs Hopf–Cole along paths; type 2 closed-loop paths on the first two coordinates)".into());
        }
        Ok(())
    }
}

/// Seconds per training iteration (type 1, PMP, `train_100d.py`'s sizes) in continuum or in
/// NeuralSOC's own code, and peak memory.
fn timing_row(side: &str, iters: usize, device: &Device, seed: u64) -> Result<Row, String> {
    let c = SocTrainConfig::default();
    let mut row = Row::new();
    if side.starts_with("neuralsoc") {
        let Some(repo) = std::env::var_os("NEURALSOC_REPO") else {
            row.insert("status".into(), "skipped: set NEURALSOC_REPO to a checkout of github.com/EmoryMLIP/NeuralSOC".into());
            return Ok(row);
        };
        let n = |v: usize| std::ffi::OsString::from(v.to_string());
        let args: Vec<std::ffi::OsString> = vec![
            "--neuralsoc-repo".into(),
            repo,
            "--m".into(),
            n(WIDTH),
            "--layers".into(),
            n(LAYERS),
            "--batch".into(),
            n(c.batch),
            "--nt".into(),
            n(c.steps),
            "--iters".into(),
            n(iters),
        ];
        let refs: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
        match run_python_reference("neuralsoc_100d.py", &refs) {
            Ok(v) => {
                row.insert("time_per_iter_s".into(), v["median_s"].clone());
                row.insert("min_time_per_iter_s".into(), v["min_s"].clone());
                row.insert("peak_rss_mb".into(), v["peak_rss_mb"].clone());
                row.insert("status".into(), format!("ok (torch {})", v["torch"].as_str().unwrap_or("?")).into());
            }
            Err(e) => {
                row.insert("status".into(), format!("skipped: {e}").into());
            }
        }
        return Ok(row);
    }
    let problem = problem("timing")?;
    let vm = VarMap::new();
    let phi = potential(&vm, seed, device)?;
    // a warm-up iteration, `iters` timed ones, and a last one that validates (not timed)
    let cfg = SocTrainConfig { iters: iters + 2, val_every: usize::MAX / 2, seed, ..Default::default() };
    let mut stamps = Vec::new();
    let measured = measure_peak(device, || fit(&problem, &phi, &vm, &cfg, false, &mut |r| stamps.push(r.seconds)).map_err(s))?;
    let mut dt: Vec<f64> = stamps.windows(2).take(iters).map(|w| w[1] - w[0]).collect();
    dt.sort_by(f64::total_cmp);
    row.insert("time_per_iter_s".into(), dt[dt.len() / 2].into());
    row.insert("min_time_per_iter_s".into(), dt[0].into());
    row.insert("peak_rss_mb".into(), measured.peak_rss_mb.into());
    row.insert("status".into(), "ok".into());
    Ok(row)
}
