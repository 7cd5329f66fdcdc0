//! `cargo xtask gpu-check`: what a person with a GPU runs first. Every suite's smallest row
//! (the first of its `--quick` rows) runs on the GPU and on the CPU with the same seed, each in a
//! child process; the table printed (and written to `<out>/gpu-check.md`) gives each side's
//! status and wall time and the largest relative difference among the figures both report
//! (timings and memory left out: they are meant to differ).

use crate::report::Row;
use crate::runner::run_child;
use crate::suites;
use serde_json::Value;
use std::path::Path;

/// Figures that measure the machine rather than the computation.
fn is_machine_figure(key: &str) -> bool {
    ["time", "_ms", "_s", "mb", "per_s", "speed", "gflop", "ratio", "seconds", "iters_to"].iter().any(|p| key.contains(p))
}

/// The largest relative difference |a − b| / max(|b|, 1e-12) over the numeric, non-machine
/// figures of two rows, and the key where it occurs.
fn largest_difference(gpu: &Row, cpu: &Row) -> Option<(f64, String)> {
    gpu.iter()
        .filter(|(k, _)| !is_machine_figure(k))
        .filter_map(|(k, v)| {
            let (a, b) = (v.as_f64()?, cpu.get(k)?.as_f64()?);
            (a.is_finite() && b.is_finite()).then(|| ((a - b).abs() / b.abs().max(1e-12), k.clone()))
        })
        .max_by(|x, y| x.0.total_cmp(&y.0))
}

/// Runs the check on `device` (a CUDA device), writing `out/gpu-check.md`.
pub fn run(device: &str, names: &[String], out: &Path, seed: u64) -> Result<(), String> {
    let dev = tensor_core::parse_device(device)
        .map_err(|e| format!("{e} (build the check with: cargo run --release -p xtask --features cuda -- gpu-check)"))?;
    if !dev.is_cuda() {
        return Err(format!("gpu-check compares a CUDA device with the CPU; '{device}' is not one"));
    }
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let mut md = format!("# gpu-check\n\n- device: {}\n- seed: {seed}\n\n| suite | row | cpu | gpu | cpu s | gpu s | largest relative difference |\n|---|---|---|---|---|---|---|\n", tensor_core::device_name(&dev));
    for suite in suites::all().into_iter().filter(|s| names.is_empty() || names.iter().any(|n| n == s.name())) {
        let Some(cfg) = suite.rows(true).into_iter().next() else { continue };
        let label: Vec<String> = cfg.values().filter_map(Value::as_str).map(str::to_string).collect();
        let timed = |d: &str| {
            let start = std::time::Instant::now();
            let r = run_child(suite.name(), &cfg, d, seed, out);
            (r, start.elapsed().as_secs_f64())
        };
        let ((cpu, cpu_s), (gpu, gpu_s)) = (timed("cpu"), timed(device));
        let status = |r: &Result<Row, String>| match r {
            Ok(row) => row.get("status").and_then(Value::as_str).unwrap_or("ok").replace('|', "/"),
            Err(e) => format!("failed: {}", e.replace('|', "/")),
        };
        let diff = match (&gpu, &cpu) {
            (Ok(g), Ok(c)) => largest_difference(g, c).map_or("no common figures".into(), |(d, k)| format!("{d:.2e} ({k})")),
            _ => "—".into(),
        };
        let line =
            format!("| {} | {} | {} | {} | {cpu_s:.1} | {gpu_s:.1} | {diff} |", suite.name(), label.join(" "), status(&cpu), status(&gpu));
        println!("{line}");
        md += &line;
        md.push('\n');
    }
    md += "\nEach side ran in its own child process; differences in the figures come from the devices' arithmetic (summation order, TF32, fused kernels on the CPU only) and from any suite whose row draws on the device.\n";
    let path = out.join("gpu-check.md");
    std::fs::write(&path, md).map_err(|e| format!("{}: {e}", path.display()))?;
    println!("wrote {}", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_skip_machine_figures_and_labels() {
        let row =
            |v: f64, t: f64| -> Row { serde_json::json!({"status": "ok", "test_accuracy": v, "iter_ms": t}).as_object().cloned().unwrap() };
        let (d, k) = largest_difference(&row(0.5, 1.0), &row(0.4, 9.0)).unwrap();
        assert_eq!(k, "test_accuracy");
        assert!((d - 0.25).abs() < 1e-12);
    }
}
