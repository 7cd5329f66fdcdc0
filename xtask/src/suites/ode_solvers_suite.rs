//! `ode-solvers`: cost per step and evaluations per step of every Runge–Kutta method on an MLP
//! vector field (batch 512, d = 2 and 63), and time and peak memory of one gradient through
//! RK4 by full-graph DTO, the checkpointed discrete adjoint and the continuous adjoint, for
//! N ∈ {16, 64, 256} steps.

use super::{get_str, get_usize, measure_peak, time_runs, Suite};
use crate::plot::{loglog, Series};
use crate::report::{Report, Row};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use ode_solvers::{solve, time_net_field, Adjoint, Method, SolveConfig, Steps};
use serde_json::{json, Value};
use std::path::Path;
use tensor_core::nets::Mlp;
use tensor_core::params::ParamBuilder;
use tensor_core::{Activation, SeededRng};

pub struct OdeSolvers;

const BATCH: usize = 512;
const STEP_ROWS_N: usize = 16;
const MEMORY_NS: [usize; 3] = [16, 64, 256];
const MEMORY_DIM: usize = 63;
const MEMORY_WIDTH: usize = 256;
const MODES: [&str; 3] = ["full-graph", "checkpointed", "continuous"];

fn width(d: usize) -> usize {
    if d <= 2 {
        64
    } else {
        256
    }
}

fn adjoint(mode: &str) -> Result<Adjoint, String> {
    match mode {
        "full-graph" => Ok(Adjoint::FullGraph),
        "checkpointed" => Ok(Adjoint::Checkpointed),
        "continuous" => Ok(Adjoint::Continuous),
        other => Err(format!("unknown gradient mode '{other}'")),
    }
}

fn network(d: usize, w: usize, device: &Device, seed: u64) -> Result<(VarMap, Mlp, Tensor), String> {
    let e = |e: tensor_core::Error| e.to_string();
    let vm = VarMap::new();
    let mut rng = SeededRng::new(seed);
    let net = Mlp::new(&mut ParamBuilder::new(&vm, &mut rng, DType::F32, device), d, &[w, w], d, Activation::Tanh).map_err(e)?;
    let x = rng.normal((BATCH, d), DType::F32, device).map_err(e)?;
    Ok((vm, net, x))
}

impl Suite for OdeSolvers {
    fn name(&self) -> &'static str {
        "ode-solvers"
    }
    fn description(&self) -> &'static str {
        "per-step cost and NFE of every RK method; memory of full-graph vs checkpointed vs continuous adjoint"
    }
    fn data_source(&self, _quick: bool) -> String {
        "random initial states x ~ N(0, I) (no data set)".into()
    }
    fn config(&self, quick: bool) -> Value {
        json!({"batch": BATCH, "vector_field": "MLP [d, w, w, d] tanh, f32", "step_rows": {"t": [0, 1], "steps": STEP_ROWS_N, "width_d2": 64, "width_d63": 256},
               "memory_rows": {"method": "rk4", "d": MEMORY_DIM, "width": MEMORY_WIDTH, "loss": "sum(y(1)^2)"}, "reps": if quick { 2 } else { 5 }})
    }
    fn rows(&self, quick: bool) -> Vec<Row> {
        let reps = if quick { 2 } else { 5 };
        let mut rows = Vec::new();
        for d in [2usize, 63] {
            for m in Method::ALL {
                rows.push(json!({"kind": "step", "method": m.name(), "d": d, "width": width(d), "reps": reps}));
            }
        }
        for n in MEMORY_NS {
            for mode in MODES {
                rows.push(json!({"kind": "gradient", "method": "rk4", "mode": mode, "d": MEMORY_DIM, "width": MEMORY_WIDTH, "steps": n, "reps": 1}));
            }
        }
        rows.into_iter().filter_map(|r| r.as_object().cloned()).collect()
    }

    fn run_row(&self, cfg: &Row, device: &Device, seed: u64) -> Result<Row, String> {
        let e = |e: ode_solvers::SolverError| e.to_string();
        let (d, w, reps) = (get_usize(cfg, "d")?, get_usize(cfg, "width")?, get_usize(cfg, "reps")?);
        let method: Method = get_str(cfg, "method")?.parse().map_err(e)?;
        let (vm, net, x) = network(d, w, device, seed)?;
        let mut row = Row::new();
        match get_str(cfg, "kind")? {
            "step" => {
                let frozen = net.detach().map_err(|e| e.to_string())?;
                let field = time_net_field(frozen.clone());
                let cfg = SolveConfig::new(Steps::uniform(0.0, 1.0, STEP_ROWS_N).map_err(e)?);
                let mut nfe = 0;
                let (median, _) = time_runs(reps, || {
                    nfe = solve(&field, method, &x, &cfg).map_err(e)?.stats.nfe;
                    Ok(())
                })?;
                row.insert("time_per_step_ms".into(), (1e3 * median / STEP_ROWS_N as f64).into());
                row.insert("nfe_per_step".into(), (nfe as f64 / STEP_ROWS_N as f64).into());
                row.insert("time_per_nfe_ms".into(), (1e3 * median / nfe as f64).into());
            }
            "gradient" => {
                let mode = adjoint(get_str(cfg, "mode")?)?;
                let n = get_usize(cfg, "steps")?;
                let params: Vec<Tensor> = vm.all_vars().iter().map(|v| v.as_tensor().clone()).collect();
                let field = time_net_field(net.clone());
                let solve_cfg = SolveConfig::new(Steps::uniform(0.0, 1.0, n).map_err(e)?).adjoint(mode);
                let measured = measure_peak(device, || {
                    let sol = solve(&field, method, &x, &solve_cfg).map_err(e)?;
                    let loss = sol.last().sqr().and_then(|s| s.sum_all()).map_err(|e| e.to_string())?;
                    let mut grads = loss.backward().map_err(|e| e.to_string())?;
                    if mode != Adjoint::FullGraph {
                        sol.backward(&field, method, &params, &mut grads).map_err(e)?;
                    }
                    Ok(grads)
                })?;
                let grads = &measured.value;
                let gnorm: f64 = params
                    .iter()
                    .filter_map(|p| grads.get(p))
                    .map(|g| {
                        g.sqr()
                            .and_then(|s| s.sum_all())
                            .and_then(|s| s.to_dtype(DType::F64))
                            .and_then(|s| s.to_scalar::<f64>())
                            .unwrap_or(f64::NAN)
                    })
                    .sum::<f64>()
                    .sqrt();
                row.insert("time_fwd_bwd_s".into(), measured.seconds.into());
                row.insert("peak_rss_mb".into(), measured.peak_rss_mb.into());
                row.insert("peak_above_start_mb".into(), measured.peak_above_start_mb.into());
                row.insert("grad_norm".into(), gnorm.into());
            }
            other => return Err(format!("unknown row kind '{other}'")),
        }
        Ok(row)
    }

    fn finish(&self, report: &mut Report, out: &Path) -> Result<(), String> {
        let mem = |mode: &str, n: usize, rows: &[Row]| -> Option<f64> {
            rows.iter()
                .find(|r| r.get("mode").and_then(Value::as_str) == Some(mode) && r.get("steps").and_then(Value::as_u64) == Some(n as u64))
                .and_then(|r| r.get("peak_above_start_mb"))
                .and_then(Value::as_f64)
        };
        let rows = report.rows.clone();
        for n in MEMORY_NS {
            if let (Some(full), Some(ck), Some(ct)) =
                (mem("full-graph", n, &rows), mem("checkpointed", n, &rows), mem("continuous", n, &rows))
            {
                report.notes.push(format!(
                    "N = {n}: peak memory above start, full graph / checkpointed = {:.1}×, full graph / continuous = {:.1}×",
                    full / ck.max(1e-3),
                    full / ct.max(1e-3)
                ));
            }
        }
        let grad = |mode: &str, n: usize| {
            rows.iter()
                .find(|r| r.get("mode").and_then(Value::as_str) == Some(mode) && r.get("steps").and_then(Value::as_u64) == Some(n as u64))
                .and_then(|r| r.get("grad_norm"))
                .and_then(Value::as_f64)
        };
        if let (Some(a), Some(b)) = (grad("full-graph", 16), grad("checkpointed", 16)) {
            report.notes.push(format!("sanity: gradient norms at N = 16, full graph {a:.6e} vs checkpointed {b:.6e} (f32)"));
        }
        let series: Vec<Series> = MODES
            .iter()
            .map(|m| Series {
                label: m.to_string(),
                points: MEMORY_NS.iter().filter_map(|&n| mem(m, n, &rows).map(|v| (n as f64, v.max(1e-3)))).collect(),
            })
            .collect();
        let file = "ode-solvers_memory.png";
        loglog(
            &out.join(file),
            "Peak memory of one RK4 gradient (d = 63, w = 256, batch 512)",
            "steps N",
            "peak memory above start (MB)",
            &series,
        )?;
        report.plots.push(file.into());
        Ok(())
    }
}
