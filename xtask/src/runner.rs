//! Runs suites row by row, each row in a child process (`xtask bench-row`), so peak resident
//! memory is per row and an out-of-memory kill becomes a failed row rather than a crash.

use crate::report::{Report, Row};
use crate::suites::{self, Suite};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn find_suite(name: &str) -> Result<Box<dyn Suite>, String> {
    suites::all().into_iter().find(|s| s.name() == name).ok_or_else(|| {
        let names: Vec<_> = suites::all().iter().map(|s| s.name()).collect();
        format!("unknown suite '{name}': expected one of {}", names.join(", "))
    })
}

/// A short label of a row config for the progress bar: its string-valued fields.
fn row_label(cfg: &Row) -> String {
    cfg.iter()
        .map(|(k, v)| match v {
            Value::String(s) => s.clone(),
            other => format!("{k}={other}"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Environment variable through which a child row learns the output folder (for plot data).
pub const OUT_ENV: &str = "CONTINUUM_BENCH_OUT";

/// The environment rows run under, each entry overridable by the user's own value:
/// - `GLIBC_TUNABLES`: blocks up to 32 MiB from glibc's heap instead of fresh mmaps, and freed
///   memory kept instead of trimmed, so the per-op tensor allocations of a training step stop
///   paying page faults (MLP 63→512→512→63 fwd+bwd at batch 512 on 2 cores: 14.2 → 9.8 ms;
///   larger blocks are kept by the xtask binary's `tensor_core::alloc::LargeBlockCache`);
/// - `CANDLE_BARRIER_POOL_SPIN_LIMIT`: candle's elementwise worker threads spin 25 000 times
///   before they sleep, competing with the matmul threads for 2 cores; 1000 spins take the same
///   MLP from 5.8 to 4.5 ms and leave the larger rows unchanged (`cargo xtask bench torch-parity`).
///
/// The peak resident memory the suites report keeps its meaning (the high-water mark of the
/// process, retained blocks included).
const ROW_ENV: [(&str, &str); 2] = [
    ("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=4294967296"),
    ("CANDLE_BARRIER_POOL_SPIN_LIMIT", "1000"),
];

/// The environment rows run under: [`ROW_ENV`] and `RAYON_NUM_THREADS`, where the user has not
/// set a variable. `RAYON_NUM_THREADS` defaults to the cores this process may use: without it
/// candle re-reads /proc/cpuinfo on every matmul to count physical cores, ≈ 2 ms of a 5 ms CNF
/// exact-trace step (concat-squash 2→64→64→64→2, batch 1024; `cargo xtask bench torch-parity`).
fn row_env() -> Vec<(&'static str, String)> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from).to_string();
    ROW_ENV
        .iter()
        .map(|&(k, v)| (k, v.to_string()))
        .chain(std::iter::once(("RAYON_NUM_THREADS", cores)))
        .map(|(k, v)| (k, std::env::var(k).unwrap_or(v)))
        .collect()
}

/// Runs one row in a child process (`xtask bench-row`) and reads its result.
pub(crate) fn run_child(suite: &str, cfg: &Row, device: &str, seed: u64, out_dir: &Path) -> Result<Row, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find own executable: {e}"))?;
    let out = Command::new(exe)
        .env(OUT_ENV, out_dir)
        .envs(row_env())
        .args([
            "bench-row",
            "--suite",
            suite,
            "--device",
            device,
            "--seed",
            &seed.to_string(),
            "--config",
            &Value::Object(cfg.clone()).to_string(),
        ])
        .output()
        .map_err(|e| format!("cannot start child: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        let why = match out.status.code() {
            Some(code) => format!("exit {code}"),
            None => "killed by a signal (out of memory?)".into(),
        };
        let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
        return Err(format!("{why}: {last}"));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().rev().find(|l| l.starts_with('{')).ok_or("child printed no result")?;
    serde_json::from_str(line).map_err(|e| format!("unreadable child result: {e}"))
}

/// `cargo xtask bench`: every named suite (all when `names` is empty).
pub fn run_suites(names: &[String], quick: bool, device: &str, out: &Path, seed: u64) -> Result<(), String> {
    let dev = tensor_core::parse_device(device).map_err(|e| e.to_string())?;
    let every = names.is_empty() || names.iter().any(|n| n == "all");
    let selected: Vec<Box<dyn Suite>> =
        if every { suites::all() } else { names.iter().map(|n| find_suite(n)).collect::<Result<_, _>>()? };
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    for suite in selected {
        let started = std::time::Instant::now();
        let configs = suite.rows(quick);
        let bar = ProgressBar::new(configs.len() as u64);
        bar.set_style(
            ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos}/{len} {msg} (elapsed {elapsed}, ETA {eta})")
                .map_err(|e| e.to_string())?
                .progress_chars("=> "),
        );
        bar.set_prefix(suite.name());
        let mut rows = Vec::with_capacity(configs.len());
        for cfg in configs {
            bar.set_message(row_label(&cfg));
            let mut row = cfg.clone();
            match run_child(suite.name(), &cfg, device, seed, out) {
                Ok(result) => row.extend(result),
                Err(why) => {
                    bar.println(format!("{}: row {} failed: {why}", suite.name(), row_label(&cfg)));
                    row.insert("status".into(), format!("failed: {why}").into());
                }
            }
            rows.push(row);
            bar.inc(1);
        }
        bar.finish_and_clear();
        let mut report = Report {
            suite: suite.name().into(),
            device: tensor_core::device_name(&dev),
            data_source: suite.data_source(quick),
            config: suite.config(quick),
            rows,
            notes: Vec::new(),
            plots: Vec::new(),
            sections: Vec::new(),
            seconds: 0.0,
        };
        std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
        suite.finish(&mut report, out)?;
        let env: Vec<String> = row_env().into_iter().map(|(k, v)| format!("{k}={v}")).collect();
        report.notes.push(format!("rows ran in child processes with {} (see xtask/src/runner.rs)", env.join(" ")));
        report.notes.push(format!("memory columns: {}", suites::memory_kind(&dev)));
        report.seconds = started.elapsed().as_secs_f64();
        report.write(out).map_err(|e| format!("{}: {e}", out.display()))?;
        println!("{}", report.markdown());
        println!("wrote {}/{}.{{json,md}}", out.display(), suite.name());
        let index = crate::report::write_index(out).map_err(|e| format!("{}: {e}", out.display()))?;
        println!("updated {}", index.display());
    }
    Ok(())
}

/// `xtask bench-row`: one row, result printed as a JSON line.
pub fn run_row(suite: &str, config: &str, device: &str, seed: u64) -> Result<(), String> {
    let suite = find_suite(suite)?;
    let cfg: Row = serde_json::from_str(config).map_err(|e| format!("bad row config: {e}"))?;
    let dev = tensor_core::parse_device(device).map_err(|e| e.to_string())?;
    let row = suite.run_row(&cfg, &dev, seed)?;
    println!("{}", Value::Object(row));
    Ok(())
}
