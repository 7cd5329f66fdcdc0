//! `stl10`: the STL-10 table of "Mixed Precision Training of Neural ODEs" (rampde,
//! `paper/stl10/`) — the parabolic CNN trained by full-graph backprop (the torchdiffeq column,
//! with autocast below f32) and by the mixed-precision adjoint at f32, tf32, bf16 and f16 with
//! dynamic scaling, plus f16 without scaling (expected to fail or be flagged).
//!
//! Columns: accuracy on the test split of the parameters selected on the validation split
//! (evaluated in the row's precision), the validation accuracy that selected them, peak memory,
//! inference forward time per batch, time per training iteration (forward + backward + update),
//! total training time; plots of the training loss against wall-clock time and of the
//! validation accuracy against epochs.
//!
//! Data: `--quick` runs the same model family scaled down on the 1,797 real 8×8 UCI digits
//! (STL-10 cannot be downloaded here), labelled "digits (STL-10 absent)" in every output; the full
//! preset is rampde's run on STL-10 (`stl10_binary/`, width 128, batch 16, 160 epochs, its 4k/1k
//! split of the training images, the official 8k test images) and needs the files.

use super::{get_str, get_usize, gradient_mode, measure_peak, read_plot_data, time_runs, write_plot_data, Suite};
use crate::plot::{line_panels, LinePanel, Series};
use crate::report::{Report, Row};
use candle_core::{DType, Device, Tensor};
use datasets::digits::Digits;
use datasets::stl10::{self, Stl10, Stl10Split};
use ode_classifier::data::{channel_statistics, labelled_rows};
use ode_classifier::{ClassifierConfig, ParabolicCnn};
use serde_json::{json, Value};
use std::path::Path;
use tensor_core::{Precision, SeededRng};
use train::{train_objective, LrSchedule, OptimizerKind, TrainConfig};

pub struct Stl10Suite;

const ROWS: [(&str, &str, &str); 8] = [
    ("full-graph", "f32", "none"),
    ("mp-adjoint", "f32", "dynamic"),
    ("mp-adjoint", "tf32", "dynamic"),
    ("mp-adjoint", "bf16", "dynamic"),
    ("mp-adjoint", "f16", "dynamic"),
    ("mp-adjoint", "f16", "none"),
    ("full-graph", "bf16", "none"),
    ("full-graph", "f16", "none"),
];

const DIGITS_LABEL: &str =
    "digits (STL-10 absent): the 1,797 real 8×8 UCI handwritten digits (CC BY 4.0), stratified 60/20/20 train/validation/test";

struct Preset {
    /// Image side: 96 for STL-10; for the digits, 8 × the upsampling factor.
    side: usize,
    width: usize,
    batch: usize,
    epochs: usize,
    optimizer: OptimizerKind,
    /// The learning rate of every row.
    lr: f64,
    /// Further learning rates tried on the full-graph f32 row: the table shows the validation
    /// accuracy that justifies `lr`.
    lr_alternatives: &'static [f64],
}

fn preset(quick: bool) -> Preset {
    if quick {
        // rampde's SGD recipe barely moves this small network in 10 epochs (measured: 0.42 test
        // accuracy here, 0.31 in PyTorch, benches/reference/parabolic_digits.py); Adam does. The
        // rate: validation accuracy 0.866 / 0.947 / 0.978 at 1e-3 / 3e-3 / 1e-2 (full graph, f32)
        Preset { side: 16, width: 8, batch: 16, epochs: 10, optimizer: OptimizerKind::Adam, lr: 1e-2, lr_alternatives: &[3e-3, 3e-2] }
    } else {
        let optimizer = OptimizerKind::Sgd { momentum: 0.9, weight_decay: 1e-4 };
        Preset { side: stl10::SIDE, width: 128, batch: 16, epochs: 160, optimizer, lr: 0.05, lr_alternatives: &[] }
    }
}

/// Train, validation and test rows (label, channels-last pixels) and the network's configuration:
/// digits for `--quick`, STL-10 (rampde's split: 4,000 training and 1,000 validation images of
/// the training set, drawn by `seed`; the official test set) for the full preset.
fn data(quick: bool, p: &Preset, seed: u64, device: &Device) -> Result<([Tensor; 3], ClassifierConfig), String> {
    let s = |e: &dyn std::fmt::Display| e.to_string();
    if quick {
        let digits = Digits::embedded().and_then(|d| d.upsampled(p.side / datasets::digits::SIDE)).map_err(|e| s(&e))?;
        let [fit, val, test] = digits.stratified_split(0.2, 0.2, seed).map_err(|e| s(&e))?;
        let (mean, std) = channel_statistics(&digits.select(&fit).images.data, 1).map_err(|e| s(&e))?;
        let config = ClassifierConfig::digits(p.side, p.width, mean[0], std[0]);
        let rows = |ids: &[usize]| {
            let d = digits.select(ids);
            labelled_rows(&d.labels, &d.images.data, &config, device).map_err(|e| s(&e))
        };
        return Ok(([rows(&fit)?, rows(&val)?, rows(&test)?], config));
    }
    let dir = stl10::find_dir().map_err(|e| s(&e))?;
    let (train, test) = (Stl10::load(&dir, Stl10Split::Train).map_err(|e| s(&e))?, Stl10::load(&dir, Stl10Split::Test).map_err(|e| s(&e))?);
    let mut order: Vec<usize> = (0..train.len).collect();
    use rand::seq::SliceRandom;
    order.shuffle(SeededRng::new(seed).inner());
    let config = ClassifierConfig { width: p.width, ..ClassifierConfig::stl10() };
    let rows = |d: &Stl10, ids: &[usize]| -> Result<Tensor, String> {
        let labels = d.labels.as_ref().ok_or("STL-10 split without labels")?;
        let pixels: Vec<f32> = ids.iter().flat_map(|&i| d.to_hwc_f32(i..i + 1)).collect();
        let y: Vec<u8> = ids.iter().map(|&i| labels[i]).collect();
        labelled_rows(&y, &pixels, &config, device).map_err(|e| s(&e))
    };
    let all_test: Vec<usize> = (0..test.len).collect();
    Ok(([rows(&train, &order[..4000])?, rows(&train, &order[4000..])?, rows(&test, &all_test)?], config))
}

/// A row's name in plots and plot-data files: mode-precision-scaling, and the learning rate when it
/// is one of the alternatives.
fn row_name(cfg: &Row) -> Result<String, String> {
    let name = format!("{}-{}-{}", get_str(cfg, "mode")?, get_str(cfg, "precision")?, get_str(cfg, "scaling")?);
    let quick = get_str(cfg, "preset")? == "quick";
    Ok(match cfg.get("lr").and_then(Value::as_f64) {
        Some(lr) if lr != preset(quick).lr => format!("{name}-lr{lr:e}"),
        _ => name,
    })
}

impl Suite for Stl10Suite {
    fn name(&self) -> &'static str {
        "stl10"
    }
    fn description(&self) -> &'static str {
        "rampde's STL-10 table: the parabolic-CNN neural-ODE classifier, full graph vs mixed-precision adjoint at f32/tf32/bf16/f16 (quick: real 8×8 digits)"
    }
    fn data_source(&self, quick: bool) -> String {
        if quick {
            return DIGITS_LABEL.into();
        }
        match stl10::find_dir() {
            Ok(p) => format!("STL-10 ({})", p.display()),
            Err(_) => format!("STL-10 not found: {}", stl10::HOW_TO_GET),
        }
    }
    fn config(&self, quick: bool) -> Value {
        let p = preset(quick);
        let (image, params) = if quick {
            (
                "16×16×1: the 8×8 digits enlarged 2× by pixel replication (blocks at 16×16, 8×8, 4×4)",
                ClassifierConfig::digits(p.side, p.width, 0.0, 1.0).parameter_count(),
            )
        } else {
            ("96×96×3 (blocks at 96×96, 48×48, 24×24)", ClassifierConfig::stl10().parameter_count())
        };
        json!({"preset": if quick { "quick (digits, scaled down)" } else { "rampde (STL-10, width 128)" },
               "image": image, "width": p.width, "block_channels": [p.width, 2 * p.width, 4 * p.width], "parameters": params,
               "intervals_per_block": 4, "solver": "RK4, 4 steps per block on [0, 1]",
               "batch": p.batch, "epochs": p.epochs, "lr": p.lr,
               "optimizer": match p.optimizer { OptimizerKind::Adam => "Adam (rampde's SGD recipe barely trains this small network in 10 epochs)".to_string(), OptimizerKind::Sgd { momentum, weight_decay } => format!("SGD, momentum {momentum}, weight decay {weight_decay}") },
               "lr_selection": if p.lr_alternatives.is_empty() { "rampde's".to_string() } else { format!("{} against {:?}: the full-graph f32 rows of each, compared on validation accuracy", p.lr, p.lr_alternatives) },
               "head": if quick { "flattened 4×4×32 last state (global average pooling keeps too little of the state on 4×4 maps)" } else { "global average pooling (rampde)" },
               "schedule": "cosine to 1e-4 over the run", "clamp": "|θ| ≤ 1 before every step (rampde)",
               "augmentation": if quick { "shift by up to 2 pixels (crop of the zero-padded image); no flips (a mirrored digit is not a digit)" } else { "crop of the 12-pixel zero-padded image, horizontal flips" },
               "selection": "best validation error, evaluated every epoch in f32; test accuracy of those parameters, evaluated in the row's precision",
               "high_precision": "f32"})
    }
    fn rows(&self, quick: bool) -> Vec<Row> {
        let p = preset(quick);
        let alternatives = p.lr_alternatives.iter().map(|&lr| (ROWS[0], lr));
        ROWS.iter()
            .map(|&r| (r, p.lr))
            .chain(alternatives)
            .filter_map(|((mode, precision, scaling), lr)| {
                json!({"preset": if quick { "quick" } else { "rampde" }, "mode": mode, "precision": precision, "scaling": scaling, "lr": lr, "width": p.width, "epochs": p.epochs})
                    .as_object()
                    .cloned()
            })
            .collect()
    }

    fn run_row(&self, cfg: &Row, device: &Device, seed: u64) -> Result<Row, String> {
        let quick = get_str(cfg, "preset")? == "quick";
        let p = preset(quick);
        let low: Precision = get_str(cfg, "precision")?.parse().map_err(|e: tensor_core::Error| e.to_string())?;
        let mut row = Row::new();
        if let Some(note) = low.note_on(device) {
            // the same computation as the f32 row: say so instead of spending minutes on it
            row.insert("status".into(), format!("not run: {note}; see mp-adjoint f32").into());
            return Ok(row);
        }
        low.activate(device);
        let mode = gradient_mode(get_str(cfg, "mode")?, low, Some(get_str(cfg, "scaling")?))?;
        let ([fit, val, test], config) = data(quick, &p, seed, device)?;
        let (model, varmap) = ParabolicCnn::init(config, seed, DType::F32, device).map_err(|e| e.to_string())?;
        let per_epoch = fit.dim(0).map_err(|e| e.to_string())?.div_ceil(p.batch);
        let iters = get_usize(cfg, "epochs")? * per_epoch;
        let tc = TrainConfig::default()
            .iters(iters)
            .batch(p.batch)
            .lr(cfg.get("lr").and_then(Value::as_f64).unwrap_or(p.lr))
            .optimizer(p.optimizer)
            .schedule(LrSchedule::Cosine { min_lr: 1e-4, horizon: iters })
            .clamp(Some(1.0))
            .steps(4)
            .val_steps(4)
            .val_every(per_epoch)
            .mode(mode)
            .seed(seed);
        let mut curve = Vec::new();
        let measured = measure_peak(device, || {
            Ok(train_objective(&model, &varmap, &fit, &val, &tc, false, &mut |r| {
                curve.push((r.iter as f64, r.seconds, r.loss, r.validation.as_ref().and_then(|v| v.get("error"))))
            }))
        })?;
        let (result, elapsed) = (measured.value, measured.seconds);
        let epochs_curve: Vec<(f64, f64)> = curve.iter().filter_map(|c| Some((c.0 / per_epoch as f64, 1.0 - c.3?))).collect();
        // the training loss averaged over each epoch, against the wall clock at its end
        let loss_curve: Vec<(f64, f64)> = curve
            .chunks(per_epoch)
            .map(|c| (c.last().map_or(0.0, |l| l.1), c.iter().map(|l| l.2).sum::<f64>() / c.len() as f64))
            .filter(|p| p.1.is_finite())
            .collect();
        write_plot_data(self.name(), &row_name(cfg)?, &json!({"loss": loss_curve, "val_accuracy": epochs_curve}))?;
        match result {
            Ok(outcome) => {
                if let Some((iter, best)) = &outcome.best {
                    row.insert("best_epoch".into(), (iter / per_epoch).into());
                    row.insert("val_accuracy".into(), (1.0 - best.get("error").unwrap_or(f64::NAN)).into());
                }
                let test_acc = model.evaluate(&test, 4, low.dtype()).map_err(|e| e.to_string())?.accuracy;
                row.insert("test_accuracy".into(), test_acc.into());
                row.insert(
                    "status".into(),
                    (if outcome.history.iter().any(|r| r.degraded) { "flagged: adjoint underflow" } else { "ok" }).into(),
                );
            }
            Err(e) => {
                row.insert("status".into(), format!("failed: {e}").into());
            }
        }
        row.insert("peak_above_start_mb".into(), measured.peak_above_start_mb.into());
        row.insert("iter_ms".into(), (1e3 * elapsed / curve.len().max(1) as f64).into());
        row.insert("train_time_s".into(), elapsed.into());
        // inference forward of one training batch in the row's precision (median of 5)
        let batch = fit.narrow(0, 0, p.batch.min(fit.dim(0).map_err(|e| e.to_string())?)).map_err(|e| e.to_string())?;
        let (images, _) = ode_classifier::data::images_and_labels(&batch, model.config()).map_err(|e| e.to_string())?;
        let (fwd, _) = time_runs(5, || model.logits(&images, 4, low.dtype()).map(|_| ()).map_err(|e| e.to_string()))?;
        row.insert("fwd_ms_per_batch".into(), (1e3 * fwd).into());
        Ok(row)
    }

    fn finish(&self, report: &mut Report, out: &Path) -> Result<(), String> {
        let rows = report.rows.clone();
        let (mut by_time, mut by_epoch) = (Vec::new(), Vec::new());
        for r in &rows {
            let Some(d) = read_plot_data(out, self.name(), &row_name(r)?) else { continue };
            let label = row_name(r)?;
            by_time.push(Series { label: label.clone(), points: super::json_points(&d["loss"]) });
            by_epoch.push(Series { label, points: super::json_points(&d["val_accuracy"]) });
        }
        let quick = rows.first().and_then(|r| r.get("preset")).and_then(Value::as_str) == Some("quick");
        let data = if quick { "digits (STL-10 absent)" } else { "STL-10" };
        if !by_time.is_empty() {
            let panel = |title: &str, x: &str, y: &str, series| LinePanel {
                title: title.into(),
                x_label: x.into(),
                y_label: y.into(),
                series,
                legend: true,
            };
            line_panels(
                &out.join("stl10_training.png"),
                &format!("parabolic CNN on {data}: training"),
                2,
                &[
                    panel("training loss (epoch mean) against wall-clock time", "wall time (s)", "cross-entropy", by_time),
                    panel("validation accuracy (f32 evaluation)", "epoch", "accuracy", by_epoch),
                ],
            )?;
            report.plots.push("stl10_training.png".into());
        }
        let acc = |mode: &str, p: &str, s: &str| {
            rows.iter()
                .find(|r| {
                    r.get("mode").and_then(Value::as_str) == Some(mode)
                        && r.get("precision").and_then(Value::as_str) == Some(p)
                        && r.get("scaling").and_then(Value::as_str) == Some(s)
                })
                .and_then(|r| r.get("test_accuracy"))
                .and_then(Value::as_f64)
        };
        if let Some(f32_acc) = acc("mp-adjoint", "f32", "dynamic") {
            for (p, s) in [("bf16", "dynamic"), ("f16", "dynamic"), ("f16", "none")] {
                if let Some(a) = acc("mp-adjoint", p, s) {
                    report.notes.push(format!(
                        "mp-adjoint {p} ({s} scaling) test accuracy {:+.1} points against mp-adjoint f32 (target: within 1 point)",
                        100.0 * (a - f32_acc)
                    ));
                }
            }
        }
        // the learning-rate choice, on validation: the full-graph f32 rows at each rate
        let tried: Vec<(f64, f64)> = rows
            .iter()
            .filter(|r| {
                r.get("mode").and_then(Value::as_str) == Some("full-graph") && r.get("precision").and_then(Value::as_str) == Some("f32")
            })
            .filter_map(|r| Some((r.get("lr")?.as_f64()?, r.get("val_accuracy")?.as_f64()?)))
            .collect();
        if tried.len() > 1 {
            let best = tried.iter().fold((f64::NAN, f64::NEG_INFINITY), |b, &t| if t.1 > b.1 { t } else { b });
            let listed: Vec<String> = tried.iter().map(|(lr, a)| format!("{lr:e}: {a:.3}")).collect();
            let used = preset(quick).lr;
            report.notes.push(format!(
                "learning rate on validation (full-graph f32): {}; best {:e}{}",
                listed.join(", "),
                best.0,
                if best.0 == used { ", the rate every row uses".to_string() } else { format!(" — not the {used:e} the other rows use") }
            ));
        }
        report.notes.push(format!("data: {}", self.data_source(quick)));
        report.notes.push(format!("fwd_ms_per_batch: inference forward of one training batch (no graph) in the row's precision; iter_ms: forward + backward + update; 16-bit rows on the CPU run their convolution products through tensor_core::kernels::matmul (bf16 products: {}) and the rest by candle's element-by-element 16-bit ops", tensor_core::kernels::dot_bf16::bf16_product_path()));
        Ok(())
    }
}
