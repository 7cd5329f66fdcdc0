//! `tensor-core`: OT-Flow's core speed claim. Time and peak memory of Φ's value + ∇Φ + exact
//! ΔΦ by the trace recursion (O(m²d) per sample) versus the same Laplacian by d Hessian-vector
//! products (one forward-mode pass through ∇Φ per coordinate), for d ∈ {2, 63, 784} and
//! m ∈ {32, 512}.

use super::{get_str, get_usize, measure_peak, time_runs, Suite};
use crate::plot::{loglog, Series};
use crate::report::{Report, Row};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use serde_json::{json, Value};
use std::path::Path;
use tensor_core::nets::{Potential, PotentialConfig};
use tensor_core::params::ParamBuilder;
use tensor_core::SeededRng;

pub struct TensorCore;

/// max|a − b| / max|b|.
fn rel_max_diff(a: &Tensor, b: &Tensor) -> candle_core::Result<f64> {
    let num = (a - b)?.abs()?.max_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
    let den = b.abs()?.max_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
    Ok(num / den.max(1e-30))
}

const DIMS: [usize; 3] = [2, 63, 784];
const WIDTHS: [usize; 2] = [32, 512];
const METHODS: [&str; 2] = ["recursion", "hvp"];

fn batch(quick: bool) -> usize {
    if quick {
        64
    } else {
        512
    }
}

fn reps(quick: bool) -> usize {
    if quick {
        3
    } else {
        5
    }
}

impl Suite for TensorCore {
    fn name(&self) -> &'static str {
        "tensor-core"
    }
    fn description(&self) -> &'static str {
        "OT-Flow potential: value+∇Φ+ΔΦ by the trace recursion vs ΔΦ by d Hessian-vector products"
    }
    fn data_source(&self, _quick: bool) -> String {
        "random inputs x ~ N(0, I), t = 0.5 (no data set)".into()
    }
    fn config(&self, quick: bool) -> Value {
        json!({"batch": batch(quick), "reps": reps(quick), "layers": 2, "rank": 10, "dtype": "f32", "pass": "forward (value, gradient, Laplacian), no backward"})
    }
    fn rows(&self, quick: bool) -> Vec<Row> {
        let mut rows = Vec::new();
        for &d in &DIMS {
            for &m in &WIDTHS {
                for method in METHODS {
                    let cfg = json!({"method": method, "d": d, "width": m, "batch": batch(quick), "reps": reps(quick)});
                    rows.push(cfg.as_object().cloned().unwrap_or_default());
                }
            }
        }
        rows
    }

    fn run_row(&self, cfg: &Row, device: &Device, seed: u64) -> Result<Row, String> {
        let e = |e: tensor_core::Error| e.to_string();
        let (d, m, b, reps) = (get_usize(cfg, "d")?, get_usize(cfg, "width")?, get_usize(cfg, "batch")?, get_usize(cfg, "reps")?);
        let method = get_str(cfg, "method")?;
        let vm = VarMap::new();
        let mut rng = SeededRng::new(seed);
        let phi = Potential::new(&mut ParamBuilder::new(&vm, &mut rng, DType::F32, device), PotentialConfig::new(d, m))
            .map_err(e)?
            .detach()
            .map_err(e)?;
        let x = rng.normal((b, d), DType::F32, device).map_err(e)?;
        let t = Tensor::new(0.5f32, device).map_err(|e| e.to_string())?;
        let mut lap = None;
        let measured = measure_peak(device, || {
            time_runs(reps, || {
                let value = phi.value(&x, &t).map_err(e)?;
                let l = match method {
                    "recursion" => phi.derivatives(&x, &t).map_err(e)?.laplacian,
                    "hvp" => {
                        phi.gradient(&x, &t).map_err(e)?;
                        phi.laplacian_by_hvp(&x, &t).map_err(e)?
                    }
                    other => return Err(format!("unknown method '{other}'")),
                };
                std::hint::black_box(value);
                lap = Some(l);
                Ok(())
            })
        })?;
        let (median, min) = measured.value;
        let mut row = Row::new();
        row.insert("time_median_s".into(), median.into());
        row.insert("time_min_s".into(), min.into());
        row.insert("peak_rss_mb".into(), measured.peak_rss_mb.into());
        row.insert("peak_above_start_mb".into(), measured.peak_above_start_mb.into());
        if method == "hvp" {
            // the two methods must agree: relative max difference in f32
            let reference = phi.derivatives(&x, &t).map_err(e)?.laplacian;
            let diff = rel_max_diff(&lap.ok_or("no Laplacian computed")?, &reference).map_err(|e| e.to_string())?;
            row.insert("rel_diff_vs_recursion".into(), diff.into());
        }
        Ok(row)
    }

    fn finish(&self, report: &mut Report, out: &Path) -> Result<(), String> {
        let time = |method: &str, d: u64, m: u64, rows: &[Row]| -> Option<f64> {
            rows.iter()
                .find(|r| {
                    r.get("method").and_then(Value::as_str) == Some(method)
                        && r.get("d").and_then(Value::as_u64) == Some(d)
                        && r.get("width").and_then(Value::as_u64) == Some(m)
                })
                .and_then(|r| r.get("time_median_s"))
                .and_then(Value::as_f64)
        };
        let snapshot = report.rows.clone();
        for row in report.rows.iter_mut().filter(|r| r.get("method").and_then(Value::as_str) == Some("recursion")) {
            let (d, m) = (row["d"].as_u64().unwrap_or(0), row["width"].as_u64().unwrap_or(0));
            if let (Some(rec), Some(hvp)) = (time("recursion", d, m, &snapshot), time("hvp", d, m, &snapshot)) {
                row.insert("speedup_vs_hvp".into(), (hvp / rec).into());
                report
                    .notes
                    .push(format!("d = {d}, m = {m}: the trace recursion is {:.1}× faster than {d} Hessian-vector products", hvp / rec));
            }
        }
        let mut series = Vec::new();
        for &m in &WIDTHS {
            for method in METHODS {
                let points: Vec<(f64, f64)> =
                    DIMS.iter().filter_map(|&d| time(method, d as u64, m as u64, &snapshot).map(|t| (d as f64, t))).collect();
                series.push(Series { label: format!("{method}, m = {m}"), points });
            }
        }
        let file = "tensor-core_time.png";
        loglog(&out.join(file), "OT-Flow Laplacian: trace recursion vs d HVPs", "dimension d", "time per batch (s)", &series)?;
        report.plots.push(file.into());
        Ok(())
    }
}
