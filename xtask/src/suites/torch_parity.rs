//! `torch-parity`: the same computation in continuum and in PyTorch on the same CPU and thread
//! count, rows interleaved, medians. Cases: a tanh MLP forward+backward (d = 63, width 512,
//! batch 512; `benches/reference/mlp_fwd_bwd.py`); OT-Flow's Φ with ∇Φ and the exact Laplacian
//! and their backward (d = 63, width 512 — and 1024 in the full run — batch 512; the authors'
//! `Phi.trHess` through `benches/reference/otflow_iteration.py --case phi`); and one OT-Flow training iteration (forward
//! through RK4 with the exact Laplacian, the three costs, backward, Adam step) at the toy size and
//! at a BSDS300-shaped size (the full run adds rampde's width 1024 / batch 512) against the
//! authors' code (`benches/reference/otflow_iteration.py` with a checkout of EmoryMLIP/OT-Flow
//! named by `$OTFLOW_REPO`). continuum runs with its fused kernels and, one switch away, with the
//! composite candle ops (`tensor_core::kernels::set_fused`). Without torch or the checkout a
//! PyTorch row says "skipped" and why; continuum never needs Python.

use super::{get_str, get_usize, run_python_reference, time_runs, Suite};
use crate::report::{Report, Row};
use candle_core::{DType, Device};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarMap};
use mixed_precision_adjoint::{value_and_grad, DynamicScaler, GradientMode};
use ode_solvers::Method;
use ot_flow::{OtFlow, OtFlowConfig};
use serde_json::{json, Value};
use std::path::Path;
use tensor_core::nets::{Mlp, Potential, PotentialConfig};
use tensor_core::params::ParamBuilder;
use tensor_core::{Activation, Precision, SeededRng};

pub struct TorchParity;

const ALPHA: [f64; 3] = [1.0, 2000.0, 800.0];

fn configs(quick: bool) -> Vec<(usize, usize, usize, usize)> {
    // (d, m, batch, nt)
    let mut c = vec![(2, 32, 512, 8), (63, 128, 256, 16)];
    if !quick {
        c.push((63, 1024, 512, 16));
    }
    c
}

impl Suite for TorchParity {
    fn name(&self) -> &'static str {
        "torch-parity"
    }
    fn description(&self) -> &'static str {
        "one OT-Flow training iteration: continuum vs the authors' PyTorch code, same CPU and threads"
    }
    fn data_source(&self, _quick: bool) -> String {
        "random inputs x ~ N(0, I) (time does not depend on the data)".into()
    }
    fn config(&self, quick: bool) -> Value {
        json!({"iteration": "RK4 forward with exact Laplacian + costs J = a0 L + a1 C + a2 R, backward, Adam step", "alpha": ALPHA, "layers": 2, "dtype": "f32",
               "threads": 2, "reps": if quick { 3 } else { 5 }, "reference": "benches/reference/otflow_iteration.py with $OTFLOW_REPO = a checkout of EmoryMLIP/OT-Flow"})
    }
    fn rows(&self, quick: bool) -> Vec<Row> {
        let reps = if quick { 3 } else { 5 };
        let mut rows = Vec::new();
        for side in ["continuum fused", "continuum composite", "pytorch"] {
            rows.push(json!({"case": "mlp-fwd-bwd", "side": side, "d": 63, "width": 512, "batch": 512, "reps": 4 * reps}));
        }
        for m in if quick { vec![512] } else { vec![512, 1024] } {
            for side in ["continuum fused", "continuum composite", "pytorch (OT-Flow code)"] {
                rows.push(json!({"case": "phi-derivatives", "side": side, "d": 63, "width": m, "batch": 512, "reps": reps}));
            }
        }
        for (d, m, b, nt) in configs(quick) {
            for side in ["continuum full-graph", "continuum checkpointed", "continuum checkpointed composite", "pytorch (OT-Flow code)"] {
                rows.push(json!({"case": "otflow-iteration", "side": side, "d": d, "width": m, "batch": b, "nt": nt, "reps": reps}));
            }
        }
        rows.into_iter().filter_map(|r| r.as_object().cloned()).collect()
    }

    fn run_row(&self, cfg: &Row, device: &Device, seed: u64) -> Result<Row, String> {
        let side = get_str(cfg, "side")?;
        tensor_core::kernels::set_fused(!side.ends_with("composite"));
        match get_str(cfg, "case")? {
            "mlp-fwd-bwd" => return mlp_row(cfg, side, device, seed),
            "phi-derivatives" => return phi_row(cfg, side, device, seed),
            _ => {}
        }
        let (d, m, b, nt, reps) = (get_usize(cfg, "d")?, get_usize(cfg, "width")?, get_usize(cfg, "batch")?, get_usize(cfg, "nt")?, get_usize(cfg, "reps")?);
        if side.starts_with("pytorch") {
            return Ok(otflow_reference("iteration", &[("--d", d), ("--m", m), ("--batch", b), ("--nt", nt), ("--reps", reps)]));
        }
        let mut row = Row::new();
        let mode = if side.contains("checkpointed") { GradientMode::Checkpointed } else { GradientMode::FullGraph };
        let vm = VarMap::new();
        let mut rng = SeededRng::new(seed);
        let model = OtFlow::new(&mut ParamBuilder::new(&vm, &mut rng, DType::F32, device), OtFlowConfig { dim: d, width: m, layers: 2, alpha: ALPHA }).map_err(|e| e.to_string())?;
        let params: Vec<candle_core::Tensor> = vm.all_vars().iter().map(|v| v.as_tensor().clone()).collect();
        let mut opt = AdamW::new(vm.all_vars(), ParamsAdamW { lr: 1e-3, weight_decay: 0.0, ..Default::default() }).map_err(|e| e.to_string())?;
        let x = rng.normal((b, d), DType::F32, device).map_err(|e| e.to_string())?;
        let grid: Vec<f64> = (0..=nt).map(|i| i as f64 / nt as f64).collect();
        let mut scaler = DynamicScaler::new(Precision::F32);
        let dynamics = model.dynamics(DType::F32).map_err(|e| e.to_string())?;
        let y0 = OtFlow::initial_state(&x).map_err(|e| e.to_string())?;
        let (median, min) = time_runs(reps, || {
            let (_, grads, _) = value_and_grad(&dynamics, Method::Rk4, &grid, &y0, mode, &params, &mut scaler, &|z| Ok(ot_flow::loss::costs(ALPHA, z)?.total)).map_err(|e| e.to_string())?;
            opt.step(&grads).map_err(|e| e.to_string())
        })?;
        row.insert("time_median_s".into(), median.into());
        row.insert("time_min_s".into(), min.into());
        row.insert("status".into(), "ok".into());
        Ok(row)
    }

    fn finish(&self, report: &mut Report, _out: &Path) -> Result<(), String> {
        let rows = report.rows.clone();
        let mlp = |side: &str| rows.iter().find(|r| r.get("case").and_then(Value::as_str) == Some("mlp-fwd-bwd") && r.get("side").and_then(Value::as_str) == Some(side)).and_then(|r| r.get("time_median_s")).and_then(Value::as_f64);
        if let (Some(fused), Some(composite)) = (mlp("continuum fused"), mlp("continuum composite")) {
            let torch = mlp("pytorch").map_or("PyTorch skipped".to_string(), |p| format!("continuum / PyTorch = {:.2} fused, {:.2} composite (PyTorch {:.1} ms)", fused / p, composite / p, p * 1e3));
            report.notes.push(format!("MLP 63→512→512→63 tanh, batch 512, forward+backward: fused {:.1} ms, composite {:.1} ms; {torch}.", fused * 1e3, composite * 1e3));
        }
        for m in [512u64, 1024] {
            let phi = |side: &str| rows.iter().find(|r| r.get("case").and_then(Value::as_str) == Some("phi-derivatives") && r.get("width").and_then(Value::as_u64) == Some(m) && r.get("side").and_then(Value::as_str) == Some(side)).and_then(|r| r.get("time_median_s")).and_then(Value::as_f64);
            if let (Some(fused), Some(composite)) = (phi("continuum fused"), phi("continuum composite")) {
                let torch = phi("pytorch (OT-Flow code)").map_or("PyTorch skipped".to_string(), |p| format!("continuum / PyTorch = {:.2} fused, {:.2} composite (OT-Flow's Phi.trHess {:.0} ms)", fused / p, composite / p, p * 1e3));
                report.notes.push(format!("Φ + ∇Φ + ΔΦ + backward, d = 63, m = {m}, batch 512: fused {:.0} ms, composite {:.0} ms; {torch}.", fused * 1e3, composite * 1e3));
            }
        }
        for (d, m, b, nt) in configs(false) {
            let t = |side: &str| rows.iter().find(|r| r.get("side").and_then(Value::as_str) == Some(side) && r.get("width").and_then(Value::as_u64) == Some(m as u64) && r.get("d").and_then(Value::as_u64) == Some(d as u64)).and_then(|r| r.get("time_median_s")).and_then(Value::as_f64);
            if let (Some(ours), Some(theirs)) = (t("continuum full-graph"), t("pytorch (OT-Flow code)")) {
                report.notes.push(format!("OT-Flow iteration d = {d}, m = {m}, batch {b}, nt {nt}: continuum / PyTorch = {:.2} (full graph), {:.2} (checkpointed), {:.2} (checkpointed, composite kernels)", ours / theirs, t("continuum checkpointed").unwrap_or(f64::NAN) / theirs, t("continuum checkpointed composite").unwrap_or(f64::NAN) / theirs));
            }
        }
        Ok(())
    }
}

/// A tanh MLP on (x, t), forward and backward of the sum of squared outputs (no optimiser step).
fn mlp_row(cfg: &Row, side: &str, device: &Device, seed: u64) -> Result<Row, String> {
    let (d, m, b, reps) = (get_usize(cfg, "d")?, get_usize(cfg, "width")?, get_usize(cfg, "batch")?, get_usize(cfg, "reps")?);
    if side == "pytorch" {
        return Ok(reference_row("mlp_fwd_bwd.py", &[], &[("--d", d), ("--width", m), ("--batch", b), ("--reps", reps)]));
    }
    let mut row = Row::new();
    let e = |e: tensor_core::Error| e.to_string();
    let vm = VarMap::new();
    let mut rng = SeededRng::new(seed);
    let net = Mlp::new(&mut ParamBuilder::new(&vm, &mut rng, DType::F32, device), d, &[m, m], d, Activation::Tanh).map_err(e)?;
    let x = rng.normal((b, d), DType::F32, device).map_err(e)?;
    let t = candle_core::Tensor::new(0.3f32, device).map_err(|e| e.to_string())?;
    let (median, min) = time_runs(reps, || {
        let out = net.forward(&x, &t).map_err(e)?;
        out.sqr().and_then(|o| o.sum_all()).and_then(|l| l.backward()).map(|_| ()).map_err(|e| e.to_string())
    })?;
    row.insert("time_median_s".into(), median.into());
    row.insert("time_min_s".into(), min.into());
    row.insert("status".into(), "ok".into());
    Ok(row)
}

/// OT-Flow's Φ: value, ∇Φ, ∂ₜΦ and the exact Laplacian, then backward of
/// ΣΦ + Σ‖∇Φ‖² + ΣΔΦ to every parameter (what `otflow_iteration.py --case phi` does with `Phi.trHess`).
fn phi_row(cfg: &Row, side: &str, device: &Device, seed: u64) -> Result<Row, String> {
    let (d, m, b, reps) = (get_usize(cfg, "d")?, get_usize(cfg, "width")?, get_usize(cfg, "batch")?, get_usize(cfg, "reps")?);
    if side.starts_with("pytorch") {
        return Ok(otflow_reference("phi", &[("--d", d), ("--m", m), ("--batch", b), ("--reps", reps)]));
    }
    let e = |e: tensor_core::Error| e.to_string();
    let vm = VarMap::new();
    let mut rng = SeededRng::new(seed);
    let phi = Potential::new(&mut ParamBuilder::new(&vm, &mut rng, DType::F32, device), PotentialConfig::new(d, m)).map_err(e)?;
    let x = rng.normal((b, d), DType::F32, device).map_err(e)?;
    let t = candle_core::Tensor::new(0.3f32, device).map_err(|e| e.to_string())?;
    let (median, min) = time_runs(reps, || {
        let dv = phi.derivatives(&x, &t).map_err(e)?;
        let value = phi.value(&x, &t).map_err(e)?;
        let loss = value.sum_all().and_then(|v| v + dv.grad_x.sqr()?.sum_all()?).and_then(|v| v + dv.grad_t.sqr()?.sum_all()?).and_then(|v| v + dv.laplacian.sum_all()?).map_err(|e| e.to_string())?;
        loss.backward().map(|_| ()).map_err(|e| e.to_string())
    })?;
    let mut row = Row::new();
    row.insert("time_median_s".into(), median.into());
    row.insert("time_min_s".into(), min.into());
    row.insert("status".into(), "ok".into());
    Ok(row)
}

/// A PyTorch row: the reference script's median and minimum time, or why it was skipped.
/// `leading` arguments come first; every size is passed as `--name value`, with 2 threads.
fn reference_row(script: &str, leading: &[&std::ffi::OsStr], sizes: &[(&str, usize)]) -> Row {
    let values: Vec<String> = sizes.iter().map(|(_, v)| v.to_string()).collect();
    let mut args: Vec<&std::ffi::OsStr> = leading.to_vec();
    for ((name, _), value) in sizes.iter().zip(&values) {
        args.extend([std::ffi::OsStr::new(name), std::ffi::OsStr::new(value)]);
    }
    args.extend([std::ffi::OsStr::new("--threads"), std::ffi::OsStr::new("2")]);
    let mut row = Row::new();
    match run_python_reference(script, &args) {
        Ok(v) => {
            row.insert("time_median_s".into(), v["median_s"].clone());
            row.insert("time_min_s".into(), v["min_s"].clone());
            row.insert("status".into(), format!("ok (torch {})", v["torch"].as_str().unwrap_or("?")).into());
        }
        Err(why) => {
            row.insert("status".into(), format!("skipped: {why}").into());
        }
    }
    row
}

/// A row timed by the authors' OT-Flow code (`otflow_iteration.py --case <case>`), which needs
/// `$OTFLOW_REPO`; without it the row says so.
fn otflow_reference(case: &str, sizes: &[(&str, usize)]) -> Row {
    let Some(repo) = std::env::var_os("OTFLOW_REPO") else {
        let mut row = Row::new();
        row.insert("status".into(), "skipped: set OTFLOW_REPO to a checkout of github.com/EmoryMLIP/OT-Flow".into());
        return row;
    };
    reference_row("otflow_iteration.py", &["--otflow-repo".as_ref(), repo.as_os_str(), "--case".as_ref(), case.as_ref()], sizes)
}
