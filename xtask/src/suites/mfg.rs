//! `mfg`: mean-field games with OT-Flow's potential ("A machine learning framework for solving
//! high-dimensional mean field game and mean field control problems", Ruthotto, Osher, Li,
//! Nurbekyan, Fung, PNAS 2020):
//!
//! - dynamic optimal transport between Gaussians with a KL terminal cost in d = 2, 10, 50, 100:
//!   transport cost, terminal KL, objective J against the closed-form optimum (a translation),
//!   the HJB residuals, time per iteration;
//! - crowd motion in 2-D (after MFGnet.jl's obstacle example): N((0, 3), 0.3²I) to N((0, −3), 0.3²I)
//!   around a Gaussian obstacle with congestion; the costs, the share of paths that cross the
//!   obstacle's core, and a plot of the paths bending around it.

use super::{get_str, get_usize, json_points, measure_peak, read_plot_data, write_plot_data, Suite};
use crate::plot::{line_panels, LinePanel, Series};
use crate::report::{Report, Row};
use candle_core::{DType, Device};
use candle_nn::VarMap;
use ot_flow::mfg::{MeanFieldGame, MfgConfig};
use serde_json::{json, Value};
use std::path::Path;
use tensor_core::params::ParamBuilder;
use tensor_core::SeededRng;
use train::{LrSchedule, TrainConfig};

pub struct MfgSuite;

const WIDTH: usize = 32;
const STEPS: usize = 4;
const VAL_STEPS: usize = 8;

fn s(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Rows of `--quick` carry `"quick": true`.
fn quick(cfg: &Row) -> Result<bool, String> {
    Ok(cfg.get("quick").and_then(Value::as_bool).unwrap_or(false))
}

fn game_config(case: &str, dim: usize) -> Result<MfgConfig, String> {
    match case {
        "transport" => {
            let unit = |v: f64| (0..dim).map(|i| if i == 0 { v } else { 0.0 }).collect::<Vec<_>>();
            Ok(MfgConfig::gaussian_transport(dim, WIDTH, unit(-1.5), unit(1.5), 0.5, 2.0))
        }
        "crowd" => Ok(MfgConfig::crowd_motion(WIDTH, 0.01)),
        other => Err(format!("unknown case '{other}'")),
    }
}

impl Suite for MfgSuite {
    fn name(&self) -> &'static str {
        "mfg"
    }
    fn description(&self) -> &'static str {
        "mean-field games: Gaussian transport in d = 2…100 against the closed form, 2-D crowd motion around an obstacle"
    }
    fn data_source(&self, _quick: bool) -> String {
        "analytic densities (no data set): Gaussian ρ₀ and ρ₁, MFGnet.jl's obstacle".into()
    }
    fn config(&self, quick: bool) -> Value {
        json!({"width": WIDTH, "layers": 2, "steps": STEPS, "val_steps": VAL_STEPS, "iters": if quick { 300 } else { 1000 }, "crowd_iters": if quick { 900 } else { 3000 }, "batch": if quick { 256 } else { 512 },
               "lr": 0.02, "schedule": "lr / 2 every 400 iterations", "transport": "N(−1.5e₁, 0.5²I) → N(1.5e₁, 0.5²I), α_G = 2, HJB weights 1",
               "crowd": "N((0,3), 0.3²I) → N((0,−3), 0.3²I), obstacle 200·N(0, diag(1, 0.25)), congestion 0.01, α_F = 2, α_G = 4, HJB weights 2 (MFGnet.jl's obstacle example with 4× its obstacle height)", "validation": "1024 draws of ρ₀ (selection)", "test": "1024 other draws of ρ₀ (the table)", "dtype": "f32"})
    }
    fn rows(&self, quick: bool) -> Vec<Row> {
        let iters = if quick { 300 } else { 1000 };
        let mut rows: Vec<Value> =
            [2, 10, 50, 100].iter().map(|d| json!({"case": "transport", "d": d, "iters": iters, "quick": quick, "lr": 0.02})).collect();
        rows.push(json!({"case": "crowd", "d": 2, "iters": 3 * iters, "quick": quick, "lr": 0.02}));
        rows.into_iter().filter_map(|r| r.as_object().cloned()).collect()
    }

    fn run_row(&self, cfg: &Row, device: &Device, seed: u64) -> Result<Row, String> {
        let (case, d, iters) = (get_str(cfg, "case")?, get_usize(cfg, "d")?, get_usize(cfg, "iters")?);
        let lr = cfg.get("lr").and_then(Value::as_f64).ok_or("row config lacks number 'lr'")?;
        let config = game_config(case, d)?;
        let vm = VarMap::new();
        let mut rng = SeededRng::new(seed);
        let game = MeanFieldGame::new(&mut ParamBuilder::new(&vm, &mut rng, DType::F32, device), config.clone()).map_err(s)?;
        let batch = if quick(cfg)? { 256 } else { 512 };
        let fit = config.initial.sample(batch * 4, &mut rng, DType::F32, device).map_err(s)?;
        let val = config.initial.sample(1024, &mut rng, DType::F32, device).map_err(s)?;
        let test = config.initial.sample(1024, &mut rng, DType::F32, device).map_err(s)?;
        let train_cfg = TrainConfig::default()
            .iters(iters)
            .batch(batch)
            .lr(lr)
            .schedule(LrSchedule::StepDecay { every: 400, factor: 2.0 })
            .steps(STEPS)
            .val_steps(VAL_STEPS)
            .val_every(50)
            .seed(seed);
        let measured = measure_peak(device, || train::train(&game, &vm, &fit, &val, &train_cfg, &mut |_| {}).map_err(s))?;
        let (best_iter, best) = measured.value.best.clone().ok_or("no validation ran")?;
        let mut row = Row::new();
        row.insert("best_iter".into(), best_iter.into());
        row.insert("val_J".into(), best.get("J").unwrap_or(f64::NAN).into());
        // the selected parameters on a test draw of ρ₀ that selection never saw
        let tested = game.evaluate(&test, VAL_STEPS).and_then(|c| c.metrics()).map_err(s)?;
        for k in ["J", "transport", "interaction", "terminal", "hjb", "hjb_final"] {
            row.insert(k.into(), tested.get(k).unwrap_or(f64::NAN).into());
        }
        if let Some((j_star, l_star, kl_star)) = config.translation_optimum() {
            row.insert("J_star".into(), j_star.into());
            row.insert("rel_gap_J".into(), ((tested.get("J").unwrap_or(f64::NAN) - j_star) / j_star).into());
            row.insert("transport_star".into(), l_star.into());
            row.insert("terminal_star".into(), kl_star.into());
        }
        row.insert("time_per_iter_s".into(), (measured.seconds / iters as f64).into());
        row.insert("peak_rss_mb".into(), measured.peak_rss_mb.into());
        if case == "crowd" {
            let x0 = config.initial.sample(64, &mut SeededRng::new(seed + 7), DType::F32, device).map_err(s)?;
            let paths = game.paths(&x0, 4 * VAL_STEPS).map_err(s)?;
            let xs: Vec<Vec<Vec<f32>>> = paths.iter().map(|p| p.0.to_vec2::<f32>().map_err(s)).collect::<Result<_, String>>()?;
            // the obstacle's core: inside its one-σ ellipse x₁² + (x₂/0.5)² ≤ 1
            let through = (0..64).filter(|&i| xs.iter().any(|x| (x[i][0] as f64).powi(2) + (x[i][1] as f64 / 0.5).powi(2) <= 1.0)).count();
            row.insert("share_through_core".into(), (through as f64 / 64.0).into());
            let lateral = (0..64).map(|i| xs.iter().map(|x| (x[i][0] as f64).abs()).fold(0.0, f64::max)).sum::<f64>() / 64.0;
            row.insert("mean_max_lateral".into(), lateral.into());
            let traj: Vec<Vec<[f64; 2]>> = (0..64).map(|i| xs.iter().map(|x| [x[i][0] as f64, x[i][1] as f64]).collect()).collect();
            write_plot_data("mfg", "crowd", &json!({"paths": traj}))?;
        }
        Ok(row)
    }

    fn finish(&self, report: &mut Report, out: &Path) -> Result<(), String> {
        report.notes.push("J* etc.: the optimum of Gaussian transport with a KL terminal cost is the translation by λΔμ, λ = a/(1 + a), a = α_G/s²; J* = ½‖Δμ‖²λ (transport ½‖Δμ‖²λ², terminal KL ½‖Δμ‖²(1−λ)²/s²). The parameters are selected on a validation draw of 1024 (val_J); every other figure is on a separate test draw of 1024, with 8 RK4 steps.".into());
        report.notes.push("crowd: share_through_core = share of 64 paths entering the obstacle's one-σ ellipse x₁² + (x₂/0.5)² ≤ 1 (a straight transport would put about all of them through it); mean_max_lateral = mean over paths of max |x₁|.".into());
        if let Some(data) = read_plot_data(out, "mfg", "crowd") {
            let mut series: Vec<Series> =
                data["paths"].as_array().into_iter().flatten().map(|p| Series { label: String::new(), points: json_points(p) }).collect();
            let ellipse: Vec<(f64, f64)> = (0..=64)
                .map(|k| {
                    let a = k as f64 * std::f64::consts::TAU / 64.0;
                    (a.cos(), 0.5 * a.sin())
                })
                .collect();
            series.push(Series { label: "obstacle 1σ".into(), points: ellipse });
            let panel = LinePanel {
                title: "paths (0, 3) → (0, −3); ellipse: obstacle core".into(),
                x_label: "x₁".into(),
                y_label: "x₂".into(),
                series,
                legend: false,
            };
            line_panels(&out.join("mfg-crowd.png"), "MFG crowd motion (analytic densities)", 1, &[panel])?;
            report.notes.push("plot: mfg-crowd.png (64 paths of the trained game and the obstacle's one-σ ellipse)".into());
        }
        Ok(())
    }
}
