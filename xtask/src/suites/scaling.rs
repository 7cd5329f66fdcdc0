//! `scaling`: data-parallel training on this machine — one process with 2 threads against 2 MPI
//! processes with 1 thread each, same global batch — with time per iteration, throughput,
//! communication time per step and bytes all-reduced, and the expected scaling to more ranks
//! from the measured compute/communication ratio (ring all-reduce model).
//!
//! Each row starts `xtask data-parallel` (the MPI row under `mpirun -n 2`), which trains
//! OT-Flow on the 8-Gaussians toy and checks the result against a single process on the same
//! batches. The MPI row needs xtask built with `--features mpi` and `mpirun` on the PATH;
//! otherwise it says it was skipped.

use super::{get_str, get_usize, Suite};
use crate::report::{format_figure, Report, Row};
use candle_core::Device;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;

pub struct ScalingSuite;

/// The two ways to use this machine's 2 cores.
const LAYOUTS: [&str; 2] = ["1 process × 2 threads", "2 processes × 1 thread"];

/// Interconnects for the projection: (name, bandwidth in bytes/s, per-hop latency in s).
/// Typical one-direction figures: 10 GbE between CPU nodes, InfiniBand HDR (200 Gb/s) between
/// nodes, NVLink 4 within a GPU node (NCCL's measured all-reduce bus bandwidth is of this order).
const LINKS: [(&str, f64, f64); 3] = [("10 GbE", 1.25e9, 50e-6), ("InfiniBand HDR", 25e9, 3e-6), ("NVLink 4", 300e9, 5e-6)];

/// Ring all-reduce time of `bytes` over `ranks` ranks: 2(N−1)/N · bytes / bandwidth plus
/// 2(N−1) latencies ("Bandwidth optimal all-reduce algorithms for clusters of workstations",
/// Patarasuk & Yuan, 2009).
pub fn ring_all_reduce_seconds(bytes: f64, ranks: usize, bandwidth: f64, latency: f64) -> f64 {
    let n = ranks as f64;
    2.0 * (n - 1.0) / n * bytes / bandwidth + 2.0 * (n - 1.0) * latency
}

fn iters(quick: bool) -> usize {
    if quick {
        10
    } else {
        30
    }
}

/// The global batch, split over the ranks.
fn batch(quick: bool) -> usize {
    if quick {
        1024
    } else {
        4096
    }
}

fn s(e: impl std::fmt::Display) -> String {
    e.to_string()
}

impl Suite for ScalingSuite {
    fn name(&self) -> &'static str {
        "scaling"
    }
    fn description(&self) -> &'static str {
        "data-parallel OT-Flow: 1 process × 2 threads vs 2 MPI processes × 1 thread, communication per step"
    }
    fn data_source(&self, _quick: bool) -> String {
        "8gaussians toy (20,000 training, 2,000 validation samples)".into()
    }
    fn config(&self, quick: bool) -> Value {
        json!({"model": "OT-Flow d = 2", "iters": iters(quick), "batch": batch(quick), "precision": "f32, checkpointed adjoint", "RK4 steps": 8})
    }
    fn rows(&self, quick: bool) -> Vec<Row> {
        let widths: &[usize] = if quick { &[32, 128] } else { &[32, 256, 512] };
        let mut rows = Vec::new();
        for &width in widths {
            for layout in LAYOUTS {
                let mut r = Row::new();
                r.insert("layout".into(), layout.into());
                r.insert("width".into(), width.into());
                r.insert("iters".into(), iters(quick).into());
                r.insert("batch".into(), batch(quick).into());
                rows.push(r);
            }
        }
        rows
    }
    fn run_row(&self, cfg: &Row, _device: &Device, seed: u64) -> Result<Row, String> {
        let layout = get_str(cfg, "layout")?;
        let (width, iters, batch) = (get_usize(cfg, "width")?, get_usize(cfg, "iters")?, get_usize(cfg, "batch")?);
        let exe = std::env::current_exe().map_err(s)?;
        let args: Vec<String> = ["data-parallel", "ot-flow", "--compare"]
            .iter()
            .map(|a| a.to_string())
            .chain(
                ["--batch", &batch.to_string(), "--width", &width.to_string(), "--iters", &iters.to_string(), "--seed", &seed.to_string()]
                    .map(String::from),
            )
            .collect();
        let mut row = Row::new();
        let mut command = if layout == LAYOUTS[0] {
            let mut c = Command::new(&exe);
            c.args(&args).env("RAYON_NUM_THREADS", "2");
            c
        } else {
            if !cfg!(feature = "mpi") {
                row.insert("status".into(), "skipped: xtask built without MPI (cargo xtask --features mpi …, see README)".into());
                return Ok(row);
            }
            if Command::new("mpirun").arg("--version").output().is_err() {
                row.insert("status".into(), "skipped: no mpirun on the PATH (Debian: openmpi-bin)".into());
                return Ok(row);
            }
            let mut c = Command::new("mpirun");
            // OpenMPI refuses root without these (CI runs as root); MPICH ignores them
            c.args(["-n", "2", "-x", "RAYON_NUM_THREADS=1"]).arg(&exe).args(&args);
            c.env("OMPI_ALLOW_RUN_AS_ROOT", "1").env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
            c
        };
        let out = command.output().map_err(|e| format!("cannot start {command:?}: {e}"))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            return Err(format!("data-parallel run failed: {}", err.lines().find(|l| l.contains("error")).unwrap_or("no message")));
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout.lines().rev().find(|l| l.starts_with('{')).ok_or("the data-parallel run printed no result")?;
        let result: Value = serde_json::from_str(line).map_err(s)?;
        for key in ["backend", "seconds_per_iter", "samples_per_second", "comm_seconds_per_iter", "bytes_per_iter", "relative_difference"] {
            row.insert(key.into(), result.get(key).cloned().unwrap_or(Value::Null));
        }
        row.insert("status".into(), "ok".into());
        Ok(row)
    }
    fn finish(&self, report: &mut Report, _out: &Path) -> Result<(), String> {
        let figure = |r: &Row, k: &str| r.get(k).and_then(Value::as_f64);
        let mut table = String::from(
            "### Expected weak scaling (per-rank batch fixed), from the measured compute time and gradient bytes\n\n\
             Efficiency = compute / (compute + ring all-reduce), with the all-reduce not overlapped with the backward pass \
             (a lower bound: DDP-style overlap hides part of it). Compute per iteration is the 1-process row's time here, \
             on 2 CPU cores; on a GPU it is shorter, which lowers every efficiency below.\n\n\
             The last column is the compute per iteration that keeps 8 ranks at 90% efficiency (9 × the all-reduce): \
             a GPU step shorter than that is communication-bound on that link.\n\n\
             | width | compute s/iter | gradient bytes | link | 2 ranks | 4 ranks | 8 ranks | compute for 90% at 8 ranks |\n|---|---|---|---|---|---|---|---|\n",
        );
        let mut any = false;
        for single in report.rows.iter().filter(|r| r.get("layout").and_then(Value::as_str) == Some(LAYOUTS[0])) {
            let (Some(compute), Some(width)) = (figure(single, "seconds_per_iter"), figure(single, "width")) else { continue };
            let Some(bytes) = report
                .rows
                .iter()
                .filter(|r| figure(r, "width") == Some(width))
                .find_map(|r| figure(r, "bytes_per_iter").filter(|b| *b > 0.0))
            else {
                continue;
            };
            for (link, bandwidth, latency) in LINKS {
                any = true;
                let eff: Vec<String> = [2, 4, 8]
                    .iter()
                    .map(|&n| format!("{:.1}%", 100.0 * compute / (compute + ring_all_reduce_seconds(bytes, n, bandwidth, latency))))
                    .collect();
                table.push_str(&format!(
                    "| {width} | {} | {} | {link} ({} GB/s, {} µs) | {} | {} s |\n",
                    format_figure(compute),
                    bytes,
                    bandwidth / 1e9,
                    latency * 1e6,
                    eff.join(" | "),
                    format_figure(9.0 * ring_all_reduce_seconds(bytes, 8, bandwidth, latency))
                ));
            }
        }
        if any {
            report.sections.push(table);
        }
        for width in report.rows.iter().filter_map(|r| r.get("width").and_then(Value::as_u64)).collect::<std::collections::BTreeSet<_>>() {
            let time = |layout: &str| {
                report
                    .rows
                    .iter()
                    .find(|r| figure(r, "width") == Some(width as f64) && r.get("layout").and_then(Value::as_str) == Some(layout))
                    .and_then(|r| figure(r, "seconds_per_iter"))
            };
            if let (Some(threads), Some(processes)) = (time(LAYOUTS[0]), time(LAYOUTS[1])) {
                report.notes.push(format!(
                    "width {width}: 2 MPI processes take {:.2}× the time per iteration of 1 process with 2 threads",
                    processes / threads
                ));
            }
        }
        report.notes.push(
            "every row also trained the same model in a single process on the same global batches: relative_difference is the \
             relative L2 distance of the parameters (the run fails above 1e-6)"
                .into(),
        );
        Ok(())
    }
}
