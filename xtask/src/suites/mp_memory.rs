//! `mp-memory`: peak memory and time of one training step at Ruthotto's "Continuous-Time Deep Learning for Generative AI and High-Dim PDEs" BSDS300 shape — OT-Flow's
//! training step (`ot_flow`'s dynamics (x, ℓ, c_L, c_H) and objective J, d = 63, RK4, 16 steps,
//! batch 512, width 512 and 1024) — by full-graph DTO (state in f32, Φ evaluated in the low
//! precision: the torchdiffeq + autocast analogue) versus this project's mixed-precision adjoint
//! (both through `train::value_and_grad`),
//! at f32, bf16 and f16. Each row runs in its own process; peak resident memory is its own.
//! `--quick` shrinks to width 128, batch 256 so it finishes in a minute on 2 cores.

use super::{get_str, get_usize, gradient_mode, measure_peak, Suite};
use crate::report::{Report, Row};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use mixed_precision_adjoint::DynamicScaler;
use ode_solvers::Method;
use ot_flow::{OtFlow, OtFlowConfig};
use serde_json::{json, Value};
use std::path::Path;
use tensor_core::params::ParamBuilder;
use tensor_core::{Precision, SeededRng};
use train::{value_and_grad, Trainable};

pub struct MpMemory;

const DIM: usize = 63;
const STEPS: usize = 16;

fn sizes(quick: bool) -> (Vec<usize>, usize) {
    if quick {
        (vec![128], 256)
    } else {
        (vec![512, 1024], 512)
    }
}

impl Suite for MpMemory {
    fn name(&self) -> &'static str {
        "mp-memory"
    }
    fn description(&self) -> &'static str {
        "Ruthotto, “Continuous-Time Deep Learning for Generative AI and High-Dim PDEs”: peak memory/time of one OT-Flow-shaped training step, full-graph DTO vs mixed-precision adjoint"
    }
    fn data_source(&self, _quick: bool) -> String {
        "random inputs x ~ N(0, I) (memory and time do not depend on the data)".into()
    }
    fn config(&self, quick: bool) -> Value {
        let (widths, batch) = sizes(quick);
        json!({"dynamics": "OT-Flow (x, l, c_L, c_H), alpha = (1, 2000, 800)", "d": DIM, "widths": widths, "batch": batch, "layers": 2, "method": "rk4", "steps": STEPS, "loss": "OT-Flow's J = a0 L + a1 C + a2 R", "high_precision": "f32"})
    }
    fn rows(&self, quick: bool) -> Vec<Row> {
        let (widths, batch) = sizes(quick);
        let mut rows = Vec::new();
        for w in widths {
            for mode in ["full-graph", "mp-adjoint"] {
                for p in ["f32", "bf16", "f16"] {
                    rows.push(json!({"mode": mode, "precision": p, "width": w, "batch": batch}));
                }
            }
        }
        rows.into_iter().filter_map(|r| r.as_object().cloned()).collect()
    }

    fn run_row(&self, cfg: &Row, device: &Device, seed: u64) -> Result<Row, String> {
        let c = |e: candle_core::Error| e.to_string();
        let (w, b) = (get_usize(cfg, "width")?, get_usize(cfg, "batch")?);
        let low: Precision = get_str(cfg, "precision")?.parse().map_err(|e: tensor_core::Error| e.to_string())?;
        let vm = VarMap::new();
        let mut rng = SeededRng::new(seed);
        let model = OtFlow::new(
            &mut ParamBuilder::new(&vm, &mut rng, DType::F32, device),
            OtFlowConfig { dim: DIM, width: w, ..OtFlowConfig::bsds300(w) },
        )
        .map_err(|e| e.to_string())?;
        let params: Vec<Tensor> = vm.all_vars().iter().map(|v| v.as_tensor().clone()).collect();
        let x = rng.normal((b, DIM), DType::F32, device).map_err(|e| e.to_string())?;
        let y0 = model.initial_state(&x).map_err(|e| e.to_string())?;
        let field = Trainable::dynamics(&model, low.dtype(), seed).map_err(|e| e.to_string())?;
        let mode = gradient_mode(get_str(cfg, "mode")?, low, None)?;
        let grid: Vec<f64> = (0..=STEPS).map(|i| i as f64 / STEPS as f64).collect();
        let mut scaler = DynamicScaler::new(low);
        let measured = measure_peak(device, || {
            let (loss, _, report) = value_and_grad(field.as_ref(), Method::Rk4, &grid, &y0, mode, &params, &mut scaler, &|s| {
                model.loss(s).map_err(train::TrainError::model)
            })
            .map_err(|e| e.to_string())?;
            Ok((loss, report))
        })?;
        let (loss, report) = measured.value;
        let mut row = Row::new();
        row.insert("peak_above_start_mb".into(), measured.peak_above_start_mb.into());
        row.insert("peak_rss_mb".into(), measured.peak_rss_mb.into());
        row.insert("time_per_iter_s".into(), measured.seconds.into());
        row.insert("loss".into(), loss.to_dtype(DType::F64).and_then(|l| l.to_scalar::<f64>()).map_err(c)?.into());
        if let Some(r) = report {
            row.insert("underflow_flagged".into(), (if r.degraded() { "yes" } else { "no" }).into());
        }
        Ok(row)
    }

    fn finish(&self, report: &mut Report, _out: &Path) -> Result<(), String> {
        let rows = report.rows.clone();
        let find = |mode: &str, p: &str, w: u64| {
            rows.iter().find(|r| {
                r.get("mode").and_then(Value::as_str) == Some(mode)
                    && r.get("precision").and_then(Value::as_str) == Some(p)
                    && r.get("width").and_then(Value::as_u64) == Some(w)
            })
        };
        let widths: Vec<u64> = rows
            .iter()
            .filter_map(|r| r.get("width").and_then(Value::as_u64))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        for w in widths {
            if let Some(full) = find("full-graph", "f32", w).and_then(|r| r.get("peak_above_start_mb")).and_then(Value::as_f64) {
                for p in ["f32", "bf16", "f16"] {
                    if let Some(mp) = find("mp-adjoint", p, w).and_then(|r| r.get("peak_above_start_mb")).and_then(Value::as_f64) {
                        report.notes.push(format!(
                            "width {w}: full-graph f32 / mp-adjoint {p} peak memory = {:.1}× ({full:.0} MB vs {mp:.0} MB)",
                            full / mp.max(1e-3)
                        ));
                    }
                }
            }
        }
        report.notes.push("Ruthotto, “Continuous-Time Deep Learning for Generative AI and High-Dim PDEs” reports 18.9 GB → 1.5 GB (12×) on a GPU at width 1024; these are CPU resident-memory peaks of a child process per row.".into());
        report.notes.push(format!(
            "What the 16-bit rows run on: continuum's fused kernels (network op, OT-Flow's trace recursion, matrix products, casts, activations, bias) compute bf16/f16 from the exact 16-bit values with f32 accumulation and round where the 16-bit ops would; the rest of Φ's evaluation and candle's gradient accumulation run candle's 16-bit ops, element by element. bf16 matrix products on this machine: {}; f16 products are f32 products of the f16 values.",
            tensor_core::kernels::dot_bf16::bf16_product_path()
        ));
        Ok(())
    }
}
