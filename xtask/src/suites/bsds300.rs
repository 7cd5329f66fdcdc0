//! `bsds300`: Ruthotto's "Continuous-Time Deep Learning for Generative AI and High-Dim PDEs" BSDS300 table — OT-Flow (d = 63) trained by full-graph DTO (the
//! torchdiffeq column) and by this project's adjoint at f32, bf16 and f16 with dynamic scaling,
//! plus f16 without scaling for both (expected to fail or degrade: the table says how).
//! Columns: the validation record that selected the restored parameters (best_iter, val_nll_nats,
//! val_hjb), the test NLL of those parameters on the test split, peak memory, time per iteration.
//! Real data when `BSDS300.hdf5` is found (see README), else the natural-patches stand-in,
//! labelled as such in every output. Presets: `--quick` (small, minutes on 2 cores), and the full
//! run with rampde's configuration (width 1024, 2 layers, batch 512, lr 1e-3, 16 steps, 30 for
//! validation) — meant for a GPU. OT-Flow's original BSDS300 preset (width 512, batch 300,
//! 14/30 steps) is recorded in the config for reference.

use super::{get_str, gradient_mode, measure_peak, read_plot_data, write_plot_data, Suite};
use crate::plot::{line_panels, LinePanel, Series};
use crate::report::{Report, Row};
use candle_core::{DType, Device};
use candle_nn::VarMap;
use datasets::natural_patches::{self, PatchCounts};
use datasets::{bsds300, Splits};
use ot_flow::{OtFlow, OtFlowConfig};
use serde_json::{json, Value};
use std::path::Path;
use tensor_core::params::ParamBuilder;
use tensor_core::{Precision, SeededRng};
use train::{train, ContinuousFlow, LrSchedule, TrainConfig};

pub struct Bsds300Suite;

const ROWS: [(&str, &str, &str); 6] = [
    ("full-graph", "f32", "none"),
    ("mp-adjoint", "f32", "dynamic"),
    ("mp-adjoint", "bf16", "dynamic"),
    ("mp-adjoint", "f16", "dynamic"),
    ("mp-adjoint", "f16", "none"),
    ("full-graph", "f16", "none"),
];

struct Preset {
    width: usize,
    batch: usize,
    steps: usize,
    val_steps: usize,
    iters: usize,
    lr: f64,
    n_train: usize,
    n_val: usize,
    n_test: usize,
}

fn preset(quick: bool) -> Preset {
    if quick {
        Preset { width: 64, batch: 128, steps: 8, val_steps: 16, iters: 20, lr: 2e-2, n_train: 20_000, n_val: 2_000, n_test: 2_000 }
    } else {
        Preset {
            width: 1024,
            batch: 512,
            steps: 16,
            val_steps: 30,
            iters: 2000,
            lr: 1e-3,
            n_train: 1_000_000,
            n_val: 50_000,
            n_test: 50_000,
        }
    }
}

/// A row's name in plots and plot-data files: mode-precision-scaling.
fn row_name(cfg: &Row) -> Result<String, String> {
    Ok(format!("{}-{}-{}", get_str(cfg, "mode")?, get_str(cfg, "precision")?, get_str(cfg, "scaling")?))
}

/// The real BSDS300 if present, else the stand-in with the requested sizes.
fn data(p: &Preset, seed: u64) -> Result<Splits, String> {
    match bsds300::find() {
        Ok(path) => bsds300::load(&path).map_err(|e| e.to_string()),
        Err(_) => natural_patches::generate(PatchCounts { train: p.n_train, validation: p.n_val, test: p.n_test }, seed)
            .map_err(|e| e.to_string()),
    }
}

impl Suite for Bsds300Suite {
    fn name(&self) -> &'static str {
        "bsds300"
    }
    fn description(&self) -> &'static str {
        "Ruthotto's “Continuous-Time Deep Learning for Generative AI and High-Dim PDEs” BSDS300 table: OT-Flow d=63, full-graph vs mixed-precision adjoint at f32/bf16/f16"
    }
    fn data_source(&self, _quick: bool) -> String {
        match bsds300::find() {
            Ok(p) => format!("BSDS300 ({})", p.display()),
            Err(_) => format!("{} — BSDS300.hdf5 not found, see README", natural_patches::SOURCE),
        }
    }
    fn config(&self, quick: bool) -> Value {
        let p = preset(quick);
        json!({"preset": if quick { "quick" } else { "rampde (width 1024, batch 512, lr 1e-3, 16 steps, 30 validation)" },
               "width": p.width, "layers": 2, "batch": p.batch, "steps": p.steps, "val_steps": p.val_steps, "iters": p.iters, "lr": p.lr,
               "clamp": 1.5, "lr_drop": "÷3.3 on validation plateaus (patience 15), at most 3 times, then stop", "alpha": OtFlowConfig::bsds300(p.width).alpha, "alpha_order": "(transport L, likelihood C, HJB R) as OT-Flow's J = a0 L + a1 C + a2 R", "base_density": "standard normal N(0, I_63)",
               "train_samples": p.n_train, "val_samples": p.n_val, "test_samples": p.n_test, "selection": "best validation J (the restored parameters); NLL reported on the test split", "high_precision": "f32",
               "otflow_original_preset": {"width": 512, "batch": 300, "steps": 14, "val_steps": 30, "lr": 1e-3, "alpha": OtFlowConfig::bsds300(512).alpha}})
    }
    fn rows(&self, quick: bool) -> Vec<Row> {
        let p = preset(quick);
        ROWS.iter()
            .filter_map(|(mode, precision, scaling)| json!({"preset": if quick { "quick" } else { "rampde" }, "mode": mode, "precision": precision, "scaling": scaling, "width": p.width, "batch": p.batch, "iters": p.iters}).as_object().cloned())
            .collect()
    }

    fn run_row(&self, cfg: &Row, device: &Device, seed: u64) -> Result<Row, String> {
        let quick = get_str(cfg, "preset")? == "quick";
        let p = preset(quick);
        let low: Precision = get_str(cfg, "precision")?.parse().map_err(|e: tensor_core::Error| e.to_string())?;
        let scaling = get_str(cfg, "scaling")?;
        let mode = gradient_mode(get_str(cfg, "mode")?, low, Some(scaling))?;
        let splits = data(&p, seed)?;
        let tensor = |m: &datasets::Matrix| m.to_tensor(device).map_err(|e| e.to_string());
        let (train_x, val_x, test_x) =
            (tensor(&splits.train)?, tensor(&splits.validation.head(p.n_val))?, tensor(&splits.test.head(p.n_test))?);
        let vm = VarMap::new();
        let mut rng = SeededRng::new(seed);
        let model = OtFlow::new(&mut ParamBuilder::new(&vm, &mut rng, DType::F32, device), OtFlowConfig::bsds300(p.width))
            .map_err(|e| e.to_string())?;
        // OT-Flow's large-data trainer: |θ| ≤ 1.5, learning rate ÷3.3 on validation plateaus (patience 15)
        let tc = TrainConfig::default()
            .iters(p.iters)
            .batch(p.batch)
            .lr(p.lr)
            .schedule(LrSchedule::Plateau { factor: 3.3, patience: 15, max_drops: 3 })
            .steps(p.steps)
            .val_steps(p.val_steps)
            .val_every(if quick { p.iters } else { 100 })
            .clamp(Some(1.5))
            .mode(mode)
            .seed(seed);
        let measured = measure_peak(device, || Ok(train(&model, &vm, &train_x, &val_x, &tc, &mut |_| {})))?;
        let (result, elapsed, peak) = (measured.value, measured.seconds, measured.peak_above_start_mb);
        let mut row = Row::new();
        match result {
            Ok(outcome) => {
                let history = &outcome.history;
                // training curves for the plot: loss against iteration and against wall time
                let curve: Vec<(f64, f64, f64)> = history.iter().map(|r| (r.iter as f64, r.seconds, r.loss)).collect();
                write_plot_data(self.name(), &row_name(cfg)?, &json!({"loss": curve}))?;
                // the validation that selected the restored parameters, and the test NLL of those
                if let Some((iter, best)) = &outcome.best {
                    row.insert("best_iter".into(), (*iter).into());
                    row.insert("val_nll_nats".into(), best.get("nll").unwrap_or(f64::NAN).into());
                    row.insert("val_hjb".into(), best.get("hjb").unwrap_or(f64::NAN).into());
                }
                let test_nll = model
                    .log_prob(&test_x, p.val_steps)
                    .and_then(|lp| Ok(lp.neg()?.mean_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?))
                    .map_err(|e| e.to_string())?;
                row.insert("test_nll_nats".into(), test_nll.into());
                row.insert("status".into(), (if history.iter().any(|r| r.degraded) { "flagged: adjoint underflow" } else { "ok" }).into());
            }
            Err(e) => {
                row.insert("status".into(), format!("failed: {e}").into());
            }
        }
        row.insert("peak_above_start_mb".into(), peak.into());
        row.insert("time_per_iter_s".into(), (elapsed / p.iters as f64).into());
        Ok(row)
    }

    fn finish(&self, report: &mut Report, out: &Path) -> Result<(), String> {
        let rows = report.rows.clone();
        let (mut by_iter, mut by_time) = (Vec::new(), Vec::new());
        for r in &rows {
            let Some(d) = read_plot_data(out, self.name(), &row_name(r)?) else { continue };
            let curve: Vec<(f64, f64, f64)> = d["loss"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|p| Some((p.get(0)?.as_f64()?, p.get(1)?.as_f64()?, p.get(2)?.as_f64()?)))
                        .filter(|p| p.2.is_finite())
                        .collect()
                })
                .unwrap_or_default();
            let label = row_name(r)?;
            by_iter.push(Series { label: label.clone(), points: curve.iter().map(|p| (p.0, p.2)).collect() });
            by_time.push(Series { label, points: curve.iter().map(|p| (p.1, p.2)).collect() });
        }
        if !by_iter.is_empty() {
            let panel = |x: &str, series| LinePanel {
                title: format!("training loss J = a0 L + a1 C + a2 R against {x}"),
                x_label: x.into(),
                y_label: "J (training batch)".into(),
                series,
                legend: true,
            };
            let data = if bsds300::find().is_ok() { "BSDS300" } else { "BSDS300 stand-in" };
            line_panels(
                &out.join("bsds300_training.png"),
                &format!("OT-Flow, d = 63, {data}: training curves"),
                2,
                &[panel("iteration", by_iter), panel("wall time (s)", by_time)],
            )?;
            report.plots.push("bsds300_training.png".into());
        }
        let mem = |mode: &str, p: &str, s: &str| {
            rows.iter()
                .find(|r| {
                    r.get("mode").and_then(Value::as_str) == Some(mode)
                        && r.get("precision").and_then(Value::as_str) == Some(p)
                        && r.get("scaling").and_then(Value::as_str) == Some(s)
                })
                .and_then(|r| r.get("peak_above_start_mb"))
                .and_then(Value::as_f64)
        };
        if let (Some(full), Some(mp)) = (mem("full-graph", "f32", "none"), mem("mp-adjoint", "f16", "dynamic")) {
            report.notes.push(format!(
                "peak memory full-graph f32 / mp-adjoint f16 dynamic = {:.1}× ({full:.0} MB vs {mp:.0} MB)",
                full / mp.max(1e-3)
            ));
        }
        report.notes.push(format!("data: {}", self.data_source(true)));
        report.notes.push("--quick trains a width-64 model for 20 iterations at lr 0.02: NLL values show that every mode runs and agrees, not converged quality; the full preset (rampde's configuration) is meant for a GPU.".into());
        Ok(())
    }
}
