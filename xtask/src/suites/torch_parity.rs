//! `torch-parity`: the same computation in continuum and in PyTorch on the same CPU and thread
//! count, rows interleaved, medians. Cases: a tanh MLP forward+backward (d = 63, width 512,
//! batch 512; `benches/reference/mlp_fwd_bwd.py`); FFJORD's toy CNF velocity with its exact
//! trace and backward (d = 2, width 64, batch 1024; `benches/reference/cnf_trace.py`, FFJORD's
//! brute-force divergence); one RK4 step of OT-Flow's augmented dynamics with backward (d = 63,
//! width 512, batch 512; the authors' `stepRK4` through `otflow_iteration.py --case rk4-step`);
//! OT-Flow's Φ with ∇Φ and the exact Laplacian
//! and their backward (d = 63, width 512 — and 1024 in the full run — batch 512; the authors'
//! `Phi.trHess` through `benches/reference/otflow_iteration.py --case phi`); and one OT-Flow training iteration (forward
//! through RK4 with the exact Laplacian, the three costs, backward, Adam step) at the toy size and
//! at a BSDS300-shaped size (the full run adds rampde's width 1024 / batch 512) against the
//! authors' code (`benches/reference/otflow_iteration.py` with a checkout of EmoryMLIP/OT-Flow
//! named by `$OTFLOW_REPO`). continuum runs with its fused kernels and, one switch away, with the
//! composite candle ops (`tensor_core::kernels::set_fused`). The bf16 rows put continuum's 16-bit
//! evaluation (the MLP at widths 512 and 1024 and Φ with weights cast to bf16 each repetition;
//! the iteration by the mixed-precision adjoint with bf16 evaluation) beside PyTorch's
//! `torch.autocast("cpu", torch.bfloat16)` around the same forward (`--autocast bf16`). Without
//! torch or the checkout a PyTorch row says "skipped" and why; continuum never needs Python.

use super::{get_str, get_usize, run_python_reference, time_runs, Suite};
use crate::report::{Report, Row};
use candle_core::{DType, Device};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarMap};
use mixed_precision_adjoint::DynamicScaler;
use ode_solvers::Method;
use ot_flow::{OtFlow, OtFlowConfig};
use serde_json::{json, Value};
use std::path::Path;
use tensor_core::nets::{ConcatSquashNet, Mlp, Potential, PotentialConfig};
use tensor_core::params::ParamBuilder;
use tensor_core::{Activation, Precision, SeededRng};
use train::{value_and_grad, GradientMode};

pub struct TorchParity;

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
        "MLP, CNF trace, Φ derivatives, RK4 step, OT-Flow iteration: continuum vs PyTorch, same CPU and threads"
    }
    fn data_source(&self, _quick: bool) -> String {
        "random inputs x ~ N(0, I) (time does not depend on the data)".into()
    }
    fn config(&self, quick: bool) -> Value {
        json!({"iteration": "RK4 forward with exact Laplacian + costs J = a0 L + a1 C + a2 R, backward, Adam step", "alpha": OtFlowConfig::bsds300(0).alpha, "layers": 2, "dtype": "f32",
               "threads": 2, "reps": if quick { 3 } else { 5 }, "reference": "benches/reference/otflow_iteration.py with $OTFLOW_REPO = a checkout of EmoryMLIP/OT-Flow"})
    }
    fn rows(&self, quick: bool) -> Vec<Row> {
        let reps = if quick { 3 } else { 5 };
        let mut rows = Vec::new();
        for side in ["continuum fused", "continuum composite", "pytorch", "continuum bf16", "pytorch autocast bf16"] {
            rows.push(json!({"case": "mlp-fwd-bwd", "side": side, "d": 63, "width": 512, "batch": 512, "reps": 20 * reps}));
        }
        for side in ["continuum fused", "pytorch", "continuum bf16", "pytorch autocast bf16"] {
            rows.push(json!({"case": "mlp-fwd-bwd", "side": side, "d": 63, "width": 1024, "batch": 512, "reps": 10 * reps}));
        }
        for side in ["continuum fused", "continuum composite", "pytorch"] {
            rows.push(json!({"case": "cnf-trace", "side": side, "d": 2, "width": 64, "batch": 1024, "reps": 20 * reps}));
        }
        for side in ["continuum fused", "continuum composite", "pytorch (OT-Flow code)"] {
            rows.push(json!({"case": "rk4-step", "side": side, "d": 63, "width": 512, "batch": 512, "nt": 16, "reps": reps}));
        }
        for m in if quick { vec![512] } else { vec![512, 1024] } {
            for side in [
                "continuum fused",
                "continuum composite",
                "pytorch (OT-Flow code)",
                "continuum bf16",
                "pytorch (OT-Flow code) autocast bf16",
            ] {
                rows.push(json!({"case": "phi-derivatives", "side": side, "d": 63, "width": m, "batch": 512, "reps": reps}));
            }
        }
        for (d, m, b, nt) in configs(quick) {
            for side in [
                "continuum full-graph",
                "continuum checkpointed",
                "continuum checkpointed composite",
                "pytorch (OT-Flow code)",
                "continuum mp-adjoint bf16",
                "pytorch (OT-Flow code) autocast bf16",
            ] {
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
            "cnf-trace" => return cnf_trace_row(cfg, side, device, seed),
            "rk4-step" => return rk4_step_row(cfg, side, device, seed),
            _ => {}
        }
        let (d, m, b, nt, reps) =
            (get_usize(cfg, "d")?, get_usize(cfg, "width")?, get_usize(cfg, "batch")?, get_usize(cfg, "nt")?, get_usize(cfg, "reps")?);
        if side.starts_with("pytorch") {
            return Ok(otflow_reference("iteration", side, &[("--d", d), ("--m", m), ("--batch", b), ("--nt", nt), ("--reps", reps)]));
        }
        // f32 by full graph or checkpoints, or the mixed-precision adjoint with bf16 evaluation
        let low = if side.ends_with("bf16") { Precision::Bf16 } else { Precision::F32 };
        let mode = match side {
            s if s.contains("checkpointed") => GradientMode::Checkpointed,
            s if s.contains("mp-adjoint") => super::gradient_mode("mp-adjoint", low, None)?,
            _ => GradientMode::FullGraph,
        };
        let vm = VarMap::new();
        let mut rng = SeededRng::new(seed);
        let model =
            OtFlow::new(&mut ParamBuilder::new(&vm, &mut rng, DType::F32, device), OtFlowConfig { dim: d, ..OtFlowConfig::bsds300(m) })
                .map_err(|e| e.to_string())?;
        let params: Vec<candle_core::Tensor> = vm.all_vars().iter().map(|v| v.as_tensor().clone()).collect();
        let mut opt =
            AdamW::new(vm.all_vars(), ParamsAdamW { lr: 1e-3, weight_decay: 0.0, ..Default::default() }).map_err(|e| e.to_string())?;
        let x = rng.normal((b, d), DType::F32, device).map_err(|e| e.to_string())?;
        let grid: Vec<f64> = (0..=nt).map(|i| i as f64 / nt as f64).collect();
        let mut scaler = DynamicScaler::new(low);
        let dynamics = model.dynamics(low.dtype()).map_err(|e| e.to_string())?;
        let y0 = OtFlow::initial_state(&x).map_err(|e| e.to_string())?;
        timed_row(reps, || {
            let (_, grads, _) = value_and_grad(&dynamics, Method::Rk4, &grid, &y0, mode, &params, &mut scaler, &|z| {
                Ok(ot_flow::loss::costs(model.config.alpha, z).map_err(train::TrainError::model)?.total)
            })
            .map_err(|e| e.to_string())?;
            opt.step(&grads).map_err(|e| e.to_string())
        })
    }

    fn finish(&self, report: &mut Report, _out: &Path) -> Result<(), String> {
        let rows = report.rows.clone();
        // the median of the row with this case, side and sizes
        let median = |case: &str, side: &str, sizes: &[(&str, u64)]| {
            rows.iter()
                .find(|r| {
                    r.get("case").and_then(Value::as_str) == Some(case)
                        && r.get("side").and_then(Value::as_str) == Some(side)
                        && sizes.iter().all(|(k, v)| r.get(*k).and_then(Value::as_u64) == Some(*v))
                })
                .and_then(|r| r.get("time_median_s"))
                .and_then(Value::as_f64)
        };
        // "fused X ms, composite Y ms; continuum / PyTorch = …" for a case with both kernel paths
        let mut fused_vs_torch = |label: String, case: &str, torch_side: &str, sizes: &[(&str, u64)]| {
            if let (Some(fused), Some(composite)) = (median(case, "continuum fused", sizes), median(case, "continuum composite", sizes)) {
                let torch = median(case, torch_side, sizes).map_or("PyTorch skipped".to_string(), |p| {
                    format!("continuum / PyTorch = {:.2} fused, {:.2} composite (PyTorch {})", fused / p, composite / p, ms(p))
                });
                report.notes.push(format!("{label}: fused {}, composite {}; {torch}.", ms(fused), ms(composite)));
            }
        };
        fused_vs_torch("MLP 63→512→512→63 tanh, batch 512, forward+backward".into(), "mlp-fwd-bwd", "pytorch", &[("width", 512)]);
        fused_vs_torch("CNF velocity (concat-squash 2→64→64→64→2, tanh) with exact trace and backward, batch 1024 (PyTorch: FFJORD's brute-force divergence)".into(), "cnf-trace", "pytorch", &[]);
        fused_vs_torch(
            "One RK4 step of OT-Flow's augmented dynamics with backward, d = 63, m = 512, batch 512 (PyTorch: OT-Flow's stepRK4)".into(),
            "rk4-step",
            "pytorch (OT-Flow code)",
            &[],
        );
        for m in [512u64, 1024] {
            fused_vs_torch(
                format!("Φ + ∇Φ + ΔΦ + backward, d = 63, m = {m}, batch 512 (PyTorch: OT-Flow's Phi.trHess)"),
                "phi-derivatives",
                "pytorch (OT-Flow code)",
                &[("width", m)],
            );
        }
        // the 16-bit rows: continuum's bf16 against PyTorch's autocast, and against its own f32
        for (label, case, torch, m) in [
            ("MLP 63→512→512→63", "mlp-fwd-bwd", "pytorch autocast bf16", 512u64),
            ("MLP 63→1024→1024→63", "mlp-fwd-bwd", "pytorch autocast bf16", 1024),
            ("Φ + ∇Φ + ΔΦ + backward (m = 512)", "phi-derivatives", "pytorch (OT-Flow code) autocast bf16", 512),
            ("Φ + ∇Φ + ΔΦ + backward (m = 1024)", "phi-derivatives", "pytorch (OT-Flow code) autocast bf16", 1024),
        ] {
            let sizes = [("width", m)];
            if let (Some(ours), Some(f32)) = (median(case, "continuum bf16", &sizes), median(case, "continuum fused", &sizes)) {
                let torch = median(case, torch, &sizes).map_or("PyTorch autocast skipped".to_string(), |p| {
                    format!("PyTorch autocast bf16 {} (continuum / PyTorch = {:.2})", ms(p), ours / p)
                });
                report.notes.push(format!("{label} in bf16: continuum {} ({:.2}× its f32); {torch}.", ms(ours), ours / f32));
            }
        }
        for (d, m, b, nt) in configs(false) {
            let t = |side: &str| median("otflow-iteration", side, &[("d", d as u64), ("width", m as u64)]);
            if let (Some(ours), Some(theirs)) = (t("continuum full-graph"), t("pytorch (OT-Flow code)")) {
                report.notes.push(format!("OT-Flow iteration d = {d}, m = {m}, batch {b}, nt {nt}: continuum / PyTorch = {:.2} (full graph), {:.2} (checkpointed), {:.2} (checkpointed, composite kernels)", ours / theirs, t("continuum checkpointed").unwrap_or(f64::NAN) / theirs, t("continuum checkpointed composite").unwrap_or(f64::NAN) / theirs));
            }
            if let (Some(ours), Some(theirs), Some(f32)) =
                (t("continuum mp-adjoint bf16"), t("pytorch (OT-Flow code) autocast bf16"), t("continuum full-graph"))
            {
                report.notes.push(format!(
                    "OT-Flow iteration d = {d}, m = {m} in bf16: continuum mp-adjoint {} / PyTorch autocast {} = {:.2}; continuum bf16 / f32 = {:.2}.",
                    ms(ours),
                    ms(theirs),
                    ours / theirs,
                    ours / f32
                ));
            }
        }
        Ok(())
    }
}

/// Seconds as "12.3 ms" (or "1.23 s").
fn ms(seconds: f64) -> String {
    if seconds >= 1.0 {
        format!("{seconds:.2} s")
    } else {
        format!("{:.1} ms", seconds * 1e3)
    }
}

/// A row's median and minimum of `reps` timed runs of `f`.
fn timed_row(reps: usize, f: impl FnMut() -> Result<(), String>) -> Result<Row, String> {
    let (median, min) = time_runs(reps, f)?;
    let mut row = Row::new();
    row.insert("time_median_s".into(), median.into());
    row.insert("time_min_s".into(), min.into());
    row.insert("status".into(), "ok".into());
    Ok(row)
}

/// FFJORD's toy CNF velocity (concat-squash d → w → w → w → d, tanh) with its exact trace:
/// backward of Σ f² + Σ tr ∂f/∂x to every parameter.
fn cnf_trace_row(cfg: &Row, side: &str, device: &Device, seed: u64) -> Result<Row, String> {
    let (d, m, b, reps) = (get_usize(cfg, "d")?, get_usize(cfg, "width")?, get_usize(cfg, "batch")?, get_usize(cfg, "reps")?);
    if side == "pytorch" {
        return Ok(reference_row("cnf_trace.py", &[], &[("--d", d), ("--width", m), ("--batch", b), ("--reps", reps)]));
    }
    let e = |e: tensor_core::Error| e.to_string();
    let vm = VarMap::new();
    let mut rng = SeededRng::new(seed);
    let net =
        ConcatSquashNet::new(&mut ParamBuilder::new(&vm, &mut rng, DType::F32, device), d, &[m, m, m], d, Activation::Tanh).map_err(e)?;
    let x = rng.normal((b, d), DType::F32, device).map_err(e)?;
    let t = candle_core::Tensor::new(0.3f32, device).map_err(|e| e.to_string())?;
    timed_row(reps, || {
        let (f, tr) = net.exact_trace(&x, &t).map_err(e)?;
        f.sqr().and_then(|f| f.sum_all()? + tr.sum_all()?).and_then(|l| l.backward()).map(|_| ()).map_err(|e| e.to_string())
    })
}

/// One RK4 step (t = 0 → 1/nt) of OT-Flow's augmented dynamics from (x, 0, 0, 0), backward of
/// the sum of every entry of the new state (what `otflow_iteration.py --case rk4-step` does).
fn rk4_step_row(cfg: &Row, side: &str, device: &Device, seed: u64) -> Result<Row, String> {
    let (d, m, b, nt, reps) =
        (get_usize(cfg, "d")?, get_usize(cfg, "width")?, get_usize(cfg, "batch")?, get_usize(cfg, "nt")?, get_usize(cfg, "reps")?);
    if side.starts_with("pytorch") {
        return Ok(otflow_reference("rk4-step", side, &[("--d", d), ("--m", m), ("--batch", b), ("--nt", nt), ("--reps", reps)]));
    }
    let vm = VarMap::new();
    let mut rng = SeededRng::new(seed);
    let model = OtFlow::new(&mut ParamBuilder::new(&vm, &mut rng, DType::F32, device), OtFlowConfig { dim: d, ..OtFlowConfig::bsds300(m) })
        .map_err(|e| e.to_string())?;
    let x = rng.normal((b, d), DType::F32, device).map_err(|e| e.to_string())?;
    let dynamics = model.dynamics(DType::F32).map_err(|e| e.to_string())?;
    let y0 = OtFlow::initial_state(&x).map_err(|e| e.to_string())?;
    let config = ode_solvers::SolveConfig::new(ode_solvers::Steps::Grid(vec![0.0, 1.0 / nt as f64]));
    timed_row(reps, || {
        let solution = ode_solvers::solve(&dynamics, Method::Rk4, &y0, &config).map_err(|e| e.to_string())?;
        let y1 = solution.last();
        let total =
            y1.0.sum_all()
                .and_then(|s| s + y1.1.sum_all()?)
                .and_then(|s| s + y1.2.sum_all()?)
                .and_then(|s| s + y1.3.sum_all()?)
                .map_err(|e| e.to_string())?;
        total.backward().map(|_| ()).map_err(|e| e.to_string())
    })
}

/// A tanh MLP on (x, t), forward and backward of the sum of squared outputs (no optimiser step).
fn mlp_row(cfg: &Row, side: &str, device: &Device, seed: u64) -> Result<Row, String> {
    let (d, m, b, reps) = (get_usize(cfg, "d")?, get_usize(cfg, "width")?, get_usize(cfg, "batch")?, get_usize(cfg, "reps")?);
    if side.starts_with("pytorch") {
        return Ok(reference_row("mlp_fwd_bwd.py", &autocast_flag(side), &[("--d", d), ("--width", m), ("--batch", b), ("--reps", reps)]));
    }
    let e = |e: tensor_core::Error| e.to_string();
    let c = |e: candle_core::Error| e.to_string();
    let vm = VarMap::new();
    let mut rng = SeededRng::new(seed);
    let net = Mlp::new(&mut ParamBuilder::new(&vm, &mut rng, DType::F32, device), d, &[m, m], d, Activation::Tanh).map_err(e)?;
    // bf16: weights cast every repetition (as autocast does), the loss summed in f32
    let low = if side.ends_with("bf16") { DType::BF16 } else { DType::F32 };
    let x = rng.normal((b, d), DType::F32, device).map_err(e)?.to_dtype(low).map_err(c)?;
    let t = candle_core::Tensor::new(0.3f32, device).and_then(|t| t.to_dtype(low)).map_err(c)?;
    timed_row(reps, || {
        let out = net.to_dtype(low).map_err(e)?.forward(&x, &t).map_err(e)?;
        out.to_dtype(DType::F32).and_then(|o| o.sqr()?.sum_all()?.backward()).map(|_| ()).map_err(c)
    })
}

/// OT-Flow's Φ: value, ∇Φ, ∂ₜΦ and the exact Laplacian, then backward of
/// ΣΦ + Σ‖∇Φ‖² + ΣΔΦ to every parameter (what `otflow_iteration.py --case phi` does with `Phi.trHess`).
fn phi_row(cfg: &Row, side: &str, device: &Device, seed: u64) -> Result<Row, String> {
    let (d, m, b, reps) = (get_usize(cfg, "d")?, get_usize(cfg, "width")?, get_usize(cfg, "batch")?, get_usize(cfg, "reps")?);
    if side.starts_with("pytorch") {
        return Ok(otflow_reference("phi", side, &[("--d", d), ("--m", m), ("--batch", b), ("--reps", reps)]));
    }
    let e = |e: tensor_core::Error| e.to_string();
    let c = |e: candle_core::Error| e.to_string();
    let vm = VarMap::new();
    let mut rng = SeededRng::new(seed);
    let phi32 = Potential::new(&mut ParamBuilder::new(&vm, &mut rng, DType::F32, device), PotentialConfig::new(d, m)).map_err(e)?;
    // bf16: weights cast every repetition (as autocast does), the loss summed in f32
    let low = if side.ends_with("bf16") { DType::BF16 } else { DType::F32 };
    let x = rng.normal((b, d), DType::F32, device).map_err(e)?.to_dtype(low).map_err(c)?;
    let t = candle_core::Tensor::new(0.3f32, device).and_then(|t| t.to_dtype(low)).map_err(c)?;
    timed_row(reps, || {
        let phi = phi32.to_dtype(low).map_err(e)?;
        let dv = phi.derivatives(&x, &t).map_err(e)?;
        let value = phi.value(&x, &t).map_err(e)?;
        let f32_sum = |t: &candle_core::Tensor| t.to_dtype(DType::F32)?.sum_all();
        let loss = f32_sum(&value)
            .and_then(|v| v + f32_sum(&dv.grad_x.sqr()?)?)
            .and_then(|v| v + f32_sum(&dv.grad_t.sqr()?)?)
            .and_then(|v| v + f32_sum(&dv.laplacian)?)
            .map_err(|e| e.to_string())?;
        loss.backward().map(|_| ()).map_err(|e| e.to_string())
    })
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
/// The reference scripts' `--autocast bf16` for a side named "… autocast bf16", else nothing.
fn autocast_flag(side: &str) -> Vec<&'static std::ffi::OsStr> {
    if side.ends_with("autocast bf16") {
        vec!["--autocast".as_ref(), "bf16".as_ref()]
    } else {
        Vec::new()
    }
}

fn otflow_reference(case: &str, side: &str, sizes: &[(&str, usize)]) -> Row {
    let Some(repo) = std::env::var_os("OTFLOW_REPO") else {
        let mut row = Row::new();
        row.insert("status".into(), "skipped: set OTFLOW_REPO to a checkout of github.com/EmoryMLIP/OT-Flow".into());
        return row;
    };
    let mut leading = vec!["--otflow-repo".as_ref(), repo.as_os_str(), "--case".as_ref(), case.as_ref()];
    leading.extend(autocast_flag(side));
    reference_row("otflow_iteration.py", &leading, sizes)
}
