//! `ot-couplings`: the minibatch OT solvers of `flow-matching` next to POT on the same cost
//! matrices — Sinkhorn (the kernel domain with absorption at this ε, as `flow_matching::sinkhorn`
//! picks it) against `ot.sinkhorn` (log and plain methods),
//! the exact assignment (Jonker–Volgenant) against `ot.emd`, both through `flow_matching::transport`. The matrices are what OT-CFM sees: squared
//! distances between N(0, I) draws and torchcfm's 8gaussians, divided by their maximum
//! (torchcfm's normalisation), ε = 0.05. POT runs through `benches/reference/ot_pot.py` when
//! `python3 -c 'import ot'` works; otherwise its rows say they were skipped.

use super::{get_str, get_usize, run_python_reference, time_runs, Suite};
use crate::plot::{loglog, Series};
use crate::report::{Report, Row};
use candle_core::{DType, Device, Tensor};
use datasets::toy2d::torchcfm_8gaussians;
use datasets::Matrix;
use flow_matching::sinkhorn::SinkhornConfig;
use flow_matching::{transport, OtSolver};
use serde_json::{json, Value};
use std::path::Path;
use tensor_core::SeededRng;

pub struct OtCouplings;

const EPS: f64 = 0.05;
const TOL: f64 = 1e-6;

fn s(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn sizes(quick: bool) -> Vec<usize> {
    if quick {
        vec![64, 256, 1000]
    } else {
        vec![256, 1000, 4000]
    }
}

/// The normalised cost matrix for batch `n`, rounded to f32 so that both sides read the same
/// numbers from the .npy file.
fn cost_matrix(n: usize, seed: u64) -> Result<Matrix, String> {
    let x0 = SeededRng::new(seed).normal((n, 2), DType::F64, &Device::Cpu).map_err(s)?;
    let m = torchcfm_8gaussians(n, seed + 1);
    let x1 = m.to_tensor(&Device::Cpu).and_then(|t| t.to_dtype(DType::F64)).map_err(s)?;
    let c = tensor_core::stats::sq_distances(&x0, &x1).map_err(s)?;
    let c = c
        .broadcast_div(&c.max_all().map_err(s)?)
        .and_then(|c| c.to_dtype(DType::F32))
        .and_then(|c| c.flatten_all())
        .and_then(|c| c.to_vec1::<f32>())
        .map_err(s)?;
    Matrix::new(c, n, n).map_err(s)
}

impl OtCouplings {
    fn continuum(&self, m: &Matrix, reps: usize, device: &Device) -> Result<Row, String> {
        let n = m.rows;
        let c = Tensor::from_slice(&m.data, (n, n), device).and_then(|t| t.to_dtype(DType::F64)).map_err(s)?;
        let entropic = OtSolver::Sinkhorn(SinkhornConfig { tol: TOL, ..SinkhornConfig::new(EPS) });
        let r = transport(&c, entropic).map_err(s)?;
        let (sk_median, sk_min) = time_runs(reps, || transport(&c, entropic).map(|_| ()).map_err(s))?;
        let exact = transport(&c, OtSolver::Exact).map_err(s)?;
        let (ex_median, ex_min) = time_runs(reps, || transport(&c, OtSolver::Exact).map(|_| ()).map_err(s))?;
        let mut row = Row::new();
        for (k, v) in [
            ("sinkhorn_cost", r.cost),
            ("sinkhorn_marginal_error", r.marginal_error),
            ("sinkhorn_median_s", sk_median),
            ("sinkhorn_min_s", sk_min),
            ("emd_cost", exact.cost),
            ("emd_median_s", ex_median),
            ("emd_min_s", ex_min),
        ] {
            row.insert(k.into(), v.into());
        }
        row.insert("sinkhorn_iterations".into(), r.iterations.into());
        row.insert("status".into(), format!("ok ({}; {})", r.method, exact.method).into());
        Ok(row)
    }

    fn pot(&self, m: &Matrix, reps: usize) -> Result<Row, String> {
        let dir = std::env::temp_dir().join(format!("continuum-ot-couplings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let file = dir.join(format!("cost_{}.npy", m.rows));
        datasets::npy_csv::write_npy(&file, m).map_err(s)?;
        let (eps, tol, reps) = (EPS.to_string(), TOL.to_string(), reps.to_string());
        let args: Vec<&std::ffi::OsStr> = vec![
            "--cost".as_ref(),
            file.as_os_str(),
            "--eps".as_ref(),
            eps.as_ref(),
            "--tol".as_ref(),
            tol.as_ref(),
            "--reps".as_ref(),
            reps.as_ref(),
        ];
        let result = run_python_reference("ot_pot.py", &args);
        std::fs::remove_dir_all(&dir).ok();
        let mut row = Row::new();
        match result {
            Ok(v) => {
                for (method, prefix) in [("sinkhorn_log", "sinkhorn"), ("sinkhorn", "sinkhorn_plain"), ("emd", "emd")] {
                    for key in ["cost", "marginal_error", "median_s", "min_s", "iterations", "result_code"] {
                        if let Some(x) = v[method].get(key) {
                            row.insert(format!("{prefix}_{key}"), x.clone());
                        }
                    }
                }
                row.insert("status".into(), format!("ok (POT {})", v["pot"].as_str().unwrap_or("?")).into());
            }
            Err(why) => {
                row.insert("status".into(), format!("skipped: {why}").into());
            }
        }
        Ok(row)
    }
}

impl Suite for OtCouplings {
    fn name(&self) -> &'static str {
        "ot-couplings"
    }
    fn description(&self) -> &'static str {
        "Sinkhorn and exact assignment of flow-matching next to POT's ot.sinkhorn / ot.emd on the same cost matrices"
    }
    fn data_source(&self, _quick: bool) -> String {
        "squared distances between N(0, I) draws and torchcfm's 8gaussians (datasets::toy2d), normalised by their maximum, rounded to f32"
            .into()
    }
    fn config(&self, quick: bool) -> Value {
        json!({"eps": EPS, "tol": TOL, "tol_meaning": "continuum: L1 error of both marginals; POT: its stopThr (L2 error of one marginal)", "sizes": sizes(quick), "reps": reps(quick), "threads": "POT: numpy's; continuum: candle CPU", "reference": "benches/reference/ot_pot.py (pip install pot)"})
    }
    fn rows(&self, quick: bool) -> Vec<Row> {
        let mut rows = Vec::new();
        for n in sizes(quick) {
            for side in ["continuum", "pot"] {
                rows.push(json!({"n": n, "side": side, "reps": reps(quick)}));
            }
        }
        rows.into_iter().filter_map(|r| r.as_object().cloned()).collect()
    }
    fn run_row(&self, cfg: &Row, device: &Device, seed: u64) -> Result<Row, String> {
        let (n, reps) = (get_usize(cfg, "n")?, get_usize(cfg, "reps")?);
        let m = cost_matrix(n, seed)?;
        match get_str(cfg, "side")? {
            "continuum" => self.continuum(&m, reps, device),
            "pot" => self.pot(&m, reps),
            other => Err(format!("unknown side '{other}'")),
        }
    }
    fn finish(&self, report: &mut Report, out: &Path) -> Result<(), String> {
        let get = |n: usize, side: &str, key: &str| {
            report
                .rows
                .iter()
                .find(|r| r.get("n").and_then(Value::as_u64) == Some(n as u64) && r.get("side").and_then(Value::as_str) == Some(side))
                .and_then(|r| r.get(key))
                .and_then(Value::as_f64)
        };
        let ns: Vec<usize> = report
            .rows
            .iter()
            .filter_map(|r| r.get("n").and_then(Value::as_u64))
            .map(|n| n as usize)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        for &n in &ns {
            if let (Some(ours), Some(pot), Some(t_ours), Some(t_pot)) = (
                get(n, "continuum", "sinkhorn_cost"),
                get(n, "pot", "sinkhorn_cost"),
                get(n, "continuum", "sinkhorn_median_s"),
                get(n, "pot", "sinkhorn_median_s"),
            ) {
                report.notes.push(format!("n = {n}: Sinkhorn cost continuum {ours:.8} vs POT (log) {pot:.8}, relative difference {:.1e}; time {:.1} ms vs {:.1} ms (ratio {:.2}).", (ours - pot).abs() / pot, t_ours * 1e3, t_pot * 1e3, t_ours / t_pot));
                if let Some(t_plain) = get(n, "pot", "sinkhorn_plain_median_s") {
                    report.notes.push(format!(
                        "n = {n}: Sinkhorn time continuum {:.1} ms vs POT's plain kernel method {:.1} ms (ratio {:.2}).",
                        t_ours * 1e3,
                        t_plain * 1e3,
                        t_ours / t_plain
                    ));
                }
            }
            if let (Some(ours), Some(pot), Some(t_ours), Some(t_pot)) = (
                get(n, "continuum", "emd_cost"),
                get(n, "pot", "emd_cost"),
                get(n, "continuum", "emd_median_s"),
                get(n, "pot", "emd_median_s"),
            ) {
                let optimal = match get(n, "pot", "emd_result_code") {
                    Some(code) if code != 1.0 => format!(" (ot.emd result code {code}: not optimal)"),
                    _ => String::new(),
                };
                report.notes.push(format!("n = {n}: exact OT cost assignment {ours:.8} vs ot.emd {pot:.8}{optimal}, relative difference {:.1e}; time {:.1} ms vs {:.1} ms (ratio {:.2}).", (ours - pot).abs() / pot, t_ours * 1e3, t_pot * 1e3, t_ours / t_pot));
            }
        }
        let series: Vec<Series> = [
            ("continuum", "sinkhorn", "continuum Sinkhorn (auto domain)"),
            ("pot", "sinkhorn", "POT sinkhorn_log"),
            ("pot", "sinkhorn_plain", "POT sinkhorn (plain)"),
            ("continuum", "emd", "continuum assignment"),
            ("pot", "emd", "POT emd"),
        ]
        .iter()
        .map(|&(side, prefix, label)| Series {
            label: label.into(),
            points: ns.iter().filter_map(|&n| get(n, side, &format!("{prefix}_median_s")).map(|t| (n as f64, t))).collect(),
        })
        .filter(|s| !s.points.is_empty())
        .collect();
        if !series.is_empty() {
            let file = "ot-couplings_time.png";
            loglog(
                &out.join(file),
                "Minibatch OT solvers: time per call (ε = 0.05 on max-normalised cost)",
                "batch n",
                "median seconds",
                &series,
            )?;
            report.plots.push(file.into());
        }
        report
            .notes
            .push("Costs are ⟨C, P⟩ with uniform weights 1/n; the entropic cost sits above the exact one by the blur of ε = 0.05.".into());
        Ok(())
    }
}

fn reps(quick: bool) -> usize {
    if quick {
        3
    } else {
        5
    }
}
