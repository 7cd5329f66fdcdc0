//! The benchmark and reproduction suites. A suite lists its row configurations, runs one row
//! (in a child process, see `runner`), and finishes the report with notes and plots.

mod bsds300;
mod diffusion_curvature;
mod fm_diffusion;
mod manifold;
mod mfg;
mod monge_ampere;
mod mp_memory;
mod ode_solvers_suite;
mod ot_couplings;
mod roundoff;
mod scaling;
mod sde_adjoint;
mod soc;
mod stiff_ode;
mod stl10;
mod tensor_core_suite;
mod torch_parity;
mod toy2d;

use crate::report::{Report, Row};
use candle_core::Device;
use serde_json::Value;
use std::path::Path;
use tensor_core::Precision;
use train::{GradientMethod, GradientMode, Scaling};

/// One benchmark suite.
pub trait Suite {
    /// Name on the command line and of the output files.
    fn name(&self) -> &'static str;
    /// One line for `--list`.
    fn description(&self) -> &'static str;
    /// The data the suite runs on, as printed in every output.
    fn data_source(&self, quick: bool) -> String;
    /// The suite-wide configuration, recorded in the report.
    fn config(&self, quick: bool) -> Value;
    /// Row configurations; each is copied into its output row.
    fn rows(&self, quick: bool) -> Vec<Row>;
    /// Runs one row and returns its figures.
    fn run_row(&self, cfg: &Row, device: &Device, seed: u64) -> Result<Row, String>;
    /// Adds derived columns, notes and plots once every row has run.
    fn finish(&self, report: &mut Report, out: &Path) -> Result<(), String>;
}

/// Every suite, in the order `bench` runs them.
pub fn all() -> Vec<Box<dyn Suite>> {
    vec![
        Box::new(tensor_core_suite::TensorCore),
        Box::new(ode_solvers_suite::OdeSolvers),
        Box::new(sde_adjoint::SdeAdjoint),
        Box::new(stiff_ode::StiffOde),
        Box::new(roundoff::Roundoff),
        Box::new(mp_memory::MpMemory),
        Box::new(toy2d::Toy2dSuite),
        Box::new(bsds300::Bsds300Suite),
        Box::new(torch_parity::TorchParity),
        Box::new(ot_couplings::OtCouplings),
        Box::new(fm_diffusion::FmDiffusion),
        Box::new(diffusion_curvature::DiffusionCurvature),
        Box::new(manifold::ManifoldSuite),
        Box::new(soc::SocSuite),
        Box::new(mfg::MfgSuite),
        Box::new(monge_ampere::MongeAmpereSuite),
        Box::new(scaling::ScalingSuite),
        Box::new(stl10::Stl10Suite),
    ]
}

/// Reads an unsigned integer field of a row config.
pub fn get_usize(cfg: &Row, key: &str) -> Result<usize, String> {
    cfg.get(key).and_then(Value::as_u64).map(|v| v as usize).ok_or_else(|| format!("row config lacks integer '{key}'"))
}

/// Reads a string field of a row config.
pub fn get_str<'a>(cfg: &'a Row, key: &str) -> Result<&'a str, String> {
    cfg.get(key).and_then(Value::as_str).ok_or_else(|| format!("row config lacks string '{key}'"))
}

/// Saves a row's plot data as `<out>/<suite>-data/<name>.json` (rows run in child processes;
/// `finish` reads it back with [`read_plot_data`]). Without an output folder it does nothing.
pub fn write_plot_data(suite: &str, name: &str, data: &Value) -> Result<(), String> {
    let Some(out) = std::env::var_os(crate::runner::OUT_ENV) else { return Ok(()) };
    let dir = Path::new(&out).join(format!("{suite}-data"));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    std::fs::write(dir.join(format!("{name}.json")), data.to_string()).map_err(|e| format!("{}: {e}", dir.display()))
}

/// The plot data a row saved with [`write_plot_data`], if any.
pub fn read_plot_data(out: &Path, suite: &str, name: &str) -> Option<Value> {
    std::fs::read_to_string(out.join(format!("{suite}-data")).join(format!("{name}.json"))).ok().and_then(|s| serde_json::from_str(&s).ok())
}

/// (x, y) pairs from a JSON array of two-element arrays.
pub fn json_points(v: &Value) -> Vec<(f64, f64)> {
    v.as_array().map(|a| a.iter().filter_map(|p| Some((p.get(0)?.as_f64()?, p.get(1)?.as_f64()?))).collect()).unwrap_or_default()
}

/// Runs `benches/reference/<script>` with `python3` and parses the last JSON line it prints.
/// Err is the reason it could not (no python3, no torch, the script failed), for a "skipped" row.
pub fn run_python_reference(script: &str, args: &[&std::ffi::OsStr]) -> Result<Value, String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../benches/reference").join(script);
    let out = std::process::Command::new("python3").arg(&path).args(args).output().map_err(|e| format!("cannot run python3 ({e})"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!("reference failed ({})", err.lines().last().unwrap_or("no output")));
    }
    let line = out.stdout.rsplit(|&c| c == b'\n').find(|l| l.starts_with(b"{")).ok_or("reference printed no JSON")?;
    serde_json::from_slice(line).map_err(|e| e.to_string())
}

/// Median and minimum wall time of `reps` runs of `f` after one warm-up run, in seconds.
pub fn time_runs(reps: usize, mut f: impl FnMut() -> Result<(), String>) -> Result<(f64, f64), String> {
    f()?;
    let mut t = Vec::with_capacity(reps);
    for _ in 0..reps.max(1) {
        let start = std::time::Instant::now();
        f()?;
        t.push(start.elapsed().as_secs_f64());
    }
    t.sort_by(f64::total_cmp);
    Ok((t[t.len() / 2], t[0]))
}

/// What [`measure_peak`] saw.
pub struct Measured<T> {
    pub value: T,
    pub seconds: f64,
    /// Peak memory during `f`, in MB: the process's resident memory on the CPU, the device's
    /// memory in use (sampled from the driver) on CUDA — [`memory_kind`] says which.
    pub peak_rss_mb: f64,
    /// The same peak above the row's start, in MB.
    pub peak_above_start_mb: f64,
}

/// What the memory columns of a report on `device` measure, for its notes.
pub fn memory_kind(device: &Device) -> &'static str {
    if device.is_cuda() {
        "GPU memory in use on the device (total − free from the driver, sampled every 5 ms during the row; candle's caching pool included)"
    } else {
        "host peak resident memory (VmHWM) of the row's child process"
    }
}

/// Runs `f` measuring its peak memory on `device` ([`memory_kind`]): on the CPU the process's
/// peak resident memory, reset first (rows run in their own child process, so the peak is the
/// row's own); on CUDA the device memory in use, sampled from the driver.
pub fn measure_peak<T>(device: &Device, f: impl FnOnce() -> Result<T, String>) -> Result<Measured<T>, String> {
    let s = |e: tensor_core::Error| e.to_string();
    let on_device = tensor_core::memory::device_memory_used_bytes(device).map_err(s)?;
    let baseline = match on_device {
        Some(used) => used,
        None => tensor_core::memory::current_rss_bytes().map_err(s)?,
    };
    tensor_core::memory::reset_peak_rss().map_err(s)?;
    let sampler = tensor_core::memory::DevicePeak::start(device, std::time::Duration::from_millis(5)).map_err(s)?;
    let start = std::time::Instant::now();
    let value = f();
    let seconds = start.elapsed().as_secs_f64();
    let device_peak = sampler.finish().map_err(s)?;
    let value = value?;
    let peak = match device_peak {
        Some(p) => p,
        None => tensor_core::memory::peak_rss_bytes().map_err(s)?,
    };
    Ok(Measured { value, seconds, peak_rss_mb: peak as f64 / 1e6, peak_above_start_mb: peak.saturating_sub(baseline) as f64 / 1e6 })
}

/// The gradient mode a row names by method (`full-graph`, `checkpointed`, `continuous`,
/// `mp-adjoint`), evaluation precision and scaling (`dynamic` / `none`; read for `mp-adjoint`
/// only, where `None` means dynamic).
pub fn gradient_mode(method: &str, precision: Precision, scaling: Option<&str>) -> Result<GradientMode, String> {
    let method: GradientMethod = method.parse().map_err(|e: train::TrainError| e.to_string())?;
    let scaling = match (method, scaling) {
        (GradientMethod::MixedAdjoint, Some(s)) => Some(s.parse::<Scaling>().map_err(|e| e.to_string())?),
        _ => None,
    };
    GradientMode::for_precision(method, precision, scaling).map_err(|e| e.to_string())
}
