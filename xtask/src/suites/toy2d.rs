//! `toy2d`: OT-Flow with its published toy settings (OT-Flow's `detailedSetup.md`: width 32,
//! M = 2, per-data-set α, training/validation steps, learning rate and drop frequency; RK4) and
//! a FFJORD-style CNF (concat-squash 64-64, tanh, exact trace, RK4, the same step counts) on
//! seven 2-D densities.
//! Every row trains on one draw, keeps the parameters with the best validation objective on a
//! second and reports on a third (the test draw).
//! Columns: test NLL (exact trace/Laplacian), MMD to held-out data (OT-Flow's metric, α = 1),
//! kinetic energy E∫½‖v‖² dt, evaluations to sample with adaptive Dopri5, train time. Plots per
//! data set: density, samples, and trajectories of both models side by side (Ruthotto's "Continuous-Time Deep Learning for Generative AI and High-Dim PDEs"
//! "straight vs curvy" picture). Also rampde's 2-D CNF precision study (torchdiffeq's
//! hypernetwork velocity, `tensor_core::nets::HyperNet`): f32 / bf16 / f16
//! without scaling / f16 dynamic, full graph (autocast) vs the mixed-precision adjoint.

use super::{get_str, json_points, read_plot_data, write_plot_data, Suite};
use crate::plot::{panels, Panel};
use crate::report::{Report, Row};
use crate::runner::OUT_ENV;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use cnf::{Cnf, CnfConfig, TraceEstimator, VelocityNet};
use datasets::toy2d::Toy2d;
use ode_solvers::{solve, Method, PiController, SaveAt, SolveConfig, Steps};
use ot_flow::{OtFlow, ToyPreset};
use plotters::style::RGBColor;
use serde_json::{json, Value};
use std::path::Path;
use tensor_core::nets::{ConcatSquashLinear, HyperLayer};
use tensor_core::params::ParamBuilder;
use tensor_core::SeededRng;
use train::{train, ContinuousFlow, GradientMode, LrSchedule, TrainConfig, Trainable};

pub struct Toy2dSuite;

const DATASETS: [Toy2d; 7] =
    [Toy2d::EightGaussians, Toy2d::Checkerboard, Toy2d::TwoSpirals, Toy2d::Moons, Toy2d::Pinwheel, Toy2d::Swissroll, Toy2d::Circles];
const PRECISION_ROWS: [(&str, &str); 7] = [
    ("full-graph", "f32"),
    ("full-graph", "bf16"),
    ("full-graph", "f16"),
    ("mp-adjoint", "f32"),
    ("mp-adjoint", "bf16"),
    ("mp-adjoint", "f16-none"),
    ("mp-adjoint", "f16-dynamic"),
];
const BOX: f64 = 4.5;

/// OT-Flow's published settings for `ds`.
fn otflow_published(ds: Toy2d) -> ToyPreset {
    ToyPreset::for_dataset(ds.name()).expect("every toy set has a published preset")
}

struct Settings {
    iters: usize,
    batch: usize,
    steps: usize,
    val_steps: usize,
    n_train: usize,
    n_test: usize,
}

/// Quick: 100 iterations at batch 512 in f32 with the published step counts. Full: the
/// published iterations at batch 5000 (f32 here; the paper trains in f64).
fn settings(quick: bool, ds: Toy2d) -> Settings {
    let ToyPreset { steps: nt, val_steps: nt_val, iters: niters, .. } = otflow_published(ds);
    if quick {
        Settings { iters: 100, batch: 512, steps: nt, val_steps: nt_val, n_train: 8192, n_test: 2000 }
    } else {
        Settings { iters: niters, batch: 5000, steps: nt, val_steps: nt_val, n_train: 100_000, n_test: 5000 }
    }
}

/// The settings a row was configured with (rows carry them, so a child needs no other state).
fn row_settings(cfg: &Row) -> Result<Settings, String> {
    let g = |k| super::get_usize(cfg, k);
    let batch = g("batch")?;
    Ok(Settings {
        iters: g("iters")?,
        batch,
        steps: g("steps")?,
        val_steps: g("val_steps")?,
        n_train: (16 * batch).max(8192),
        n_test: if batch >= 5000 { 5000 } else { 2000 },
    })
}

fn points(t: &Tensor) -> Result<Vec<(f64, f64)>, String> {
    Ok(t.to_dtype(DType::F64).and_then(|t| t.to_vec2::<f64>()).map_err(|e| e.to_string())?.into_iter().map(|r| (r[0], r[1])).collect())
}

fn train_cfg(model: &str, ds: Toy2d, s: &Settings, mode: GradientMode, seed: u64) -> TrainConfig {
    let ToyPreset { lr, drop_every: drop, iters: niters, .. } = otflow_published(ds);
    // OT-Flow: the published rate, its drop frequency scaled to this run's length; CNF: constant
    let (lr, schedule) = if model == "ot-flow" {
        (lr, LrSchedule::StepDecay { every: (drop * s.iters / niters).max(1), factor: 2.0 })
    } else {
        (1e-2, LrSchedule::Constant)
    };
    TrainConfig::default()
        .iters(s.iters)
        .batch(s.batch)
        .lr(lr)
        .schedule(schedule)
        .steps(s.steps)
        .val_steps(s.val_steps)
        .val_every((s.iters / 4).max(1))
        .mode(mode)
        .seed(seed)
}

/// A row's (mode, precision label) as a gradient mode; `f16-none` / `f16-dynamic` choose scaling.
fn mode_of(mode: &str, precision: &str) -> Result<GradientMode, String> {
    let (low, scaling) = match precision {
        "f16-none" => ("f16", Some("none")),
        "f16-dynamic" => ("f16", Some("dynamic")),
        p => (p, None),
    };
    super::gradient_mode(mode, low.parse().map_err(|e: tensor_core::Error| e.to_string())?, scaling)
}

impl Suite for Toy2dSuite {
    fn name(&self) -> &'static str {
        "toy2d"
    }
    fn description(&self) -> &'static str {
        "OT-Flow vs CNF on seven 2-D densities (NLL, MMD, kinetic energy, NFE, time, plots) + 2-D CNF precision study"
    }
    fn data_source(&self, _quick: bool) -> String {
        "FFJORD/OT-Flow 2-D toy generators (datasets::toy2d), seeded".into()
    }
    fn config(&self, quick: bool) -> Value {
        let s = settings(quick, Toy2d::EightGaussians);
        let published: serde_json::Map<String, Value> = DATASETS
            .iter()
            .map(|&d| {
                let ToyPreset { alpha, steps: nt, val_steps: nt_val, lr, drop_every: drop, iters: niters } = otflow_published(d);
                (d.name().to_string(), json!({"alpha": alpha, "nt": nt, "nt_val": nt_val, "lr": lr, "drop_freq": drop, "niters": niters}))
            })
            .collect();
        json!({"iters": s.iters, "batch": s.batch, "n_train": s.n_train, "n_test": s.n_test, "dtype": "f32",
               "ot-flow": {"width": 32, "layers": 2, "published_settings (detailedSetup.md)": published, "lr_drop": "÷2, drop frequency scaled to the run length", "gradient": "checkpointed"},
               "cnf": {"net": "concat-squash [2, 64, 64, 2] tanh", "trace": "exact", "lr": 0.01, "steps": "as OT-Flow's for the data set", "gradient": "checkpointed"},
               "sampling": "adaptive dopri5, rtol = atol = 1e-5", "mmd": "unbiased, Gaussian kernel exp(-|x-y|^2)",
               "precision_study": "rampde's 2-D CNF on 8gaussians: torchdiffeq's hypernetwork velocity (examples/cnf.py: hidden 32, width 64, tanh), exact trace, lr 0.01; f16/bf16 evaluation, f32 accumulation"})
    }
    fn rows(&self, quick: bool) -> Vec<Row> {
        let mut rows = Vec::new();
        for ds in DATASETS {
            let s = settings(quick, ds);
            for model in ["ot-flow", "cnf"] {
                rows.push(json!({"study": "toys", "dataset": ds.name(), "model": model, "mode": "checkpointed", "precision": "f32", "iters": s.iters, "batch": s.batch, "steps": s.steps, "val_steps": s.val_steps}));
            }
        }
        let s = settings(quick, Toy2d::EightGaussians);
        // 16-bit arithmetic is slow on CPUs: the quick precision study trains a third as long
        let precision_iters = if quick { s.iters / 3 } else { s.iters };
        for (mode, precision) in PRECISION_ROWS {
            rows.push(json!({"study": "precision", "dataset": "8gaussians", "model": "cnf-hyper", "mode": mode, "precision": precision, "iters": precision_iters, "batch": s.batch, "steps": s.steps, "val_steps": s.val_steps}));
        }
        rows.into_iter().filter_map(|r| r.as_object().cloned()).collect()
    }

    fn run_row(&self, cfg: &Row, device: &Device, seed: u64) -> Result<Row, String> {
        let e = |e: &dyn std::fmt::Display| e.to_string();
        let s = row_settings(cfg)?;
        let ds: Toy2d = get_str(cfg, "dataset")?.parse().map_err(|e: datasets::DataError| e.to_string())?;
        let model_name = get_str(cfg, "model")?;
        let mode = mode_of(get_str(cfg, "mode")?, get_str(cfg, "precision")?)?;
        // three independent draws: fit, select the best parameters, report
        let tensor = |n: usize, seed: u64| ds.sample(n, seed).to_tensor(device).map_err(|err| e(&err));
        let data = Split { train: tensor(s.n_train, seed)?, validation: tensor(s.n_test, seed + 3)?, test: tensor(s.n_test, seed + 1)? };
        let vm = VarMap::new();
        let mut rng = SeededRng::new(seed);
        let mut pb = ParamBuilder::new(&vm, &mut rng, DType::F32, device);
        let tc = train_cfg(model_name, ds, &s, mode, seed);
        let run = RowRun { cfg, settings: &s, data: &data, vm: &vm, train: &tc, seed, device };
        match model_name {
            "ot-flow" => run.measure(&OtFlow::new(&mut pb, otflow_published(ds).config()).map_err(|err| e(&err))?),
            "cnf" => run.measure(&Cnf::<ConcatSquashLinear>::new(&mut pb, CnfConfig::ffjord_toy(2)).map_err(|err| e(&err))?),
            "cnf-hyper" => run.measure(
                &Cnf::<HyperLayer>::new(
                    &mut pb,
                    CnfConfig { dim: 2, net: VelocityNet::Hyper { hidden: 32, width: 64 }, trace: TraceEstimator::Exact },
                )
                .map_err(|err| e(&err))?,
            ),
            other => Err(format!("unknown model '{other}'")),
        }
    }

    fn finish(&self, report: &mut Report, out: &Path) -> Result<(), String> {
        let load = |model: &str, ds: Toy2d| read_plot_data(out, "toy2d", &format!("{model}-{}", ds.name()));
        let pts = json_points;
        for ds in DATASETS {
            let (Some(ot), Some(cn)) = (load("ot-flow", ds), load("cnf", ds)) else { continue };
            let row = |v: &Value| -> Vec<Panel> {
                vec![
                    Panel::Heatmap {
                        values: v["density"]
                            .as_array()
                            .map(|r| {
                                r.iter()
                                    .map(|c| c.as_array().map(|c| c.iter().filter_map(Value::as_f64).collect()).unwrap_or_default())
                                    .collect()
                            })
                            .unwrap_or_default(),
                    },
                    Panel::Scatter {
                        clouds: vec![(pts(&v["data"]), RGBColor(160, 160, 160)), (pts(&v["samples"]), RGBColor(200, 30, 30))],
                    },
                    Panel::Paths { paths: v["paths"].as_array().map(|a| a.iter().map(pts).collect()).unwrap_or_default() },
                ]
            };
            let file = format!("toy2d_{}.png", ds.name());
            panels(
                &out.join(&file),
                &format!("{}: OT-Flow (top) vs CNF (bottom)", ds.name()),
                &["OT-Flow".into(), "CNF".into()],
                &["density", "samples (red) vs data (grey)", "trajectories data→latent"],
                &[row(&ot), row(&cn)],
                -BOX,
                BOX,
            )?;
            report.plots.push(file);
        }
        let get = |ds: &str, model: &str, key: &str| {
            report
                .rows
                .iter()
                .find(|r| {
                    r.get("study").and_then(Value::as_str) == Some("toys")
                        && r.get("dataset").and_then(Value::as_str) == Some(ds)
                        && r.get("model").and_then(Value::as_str) == Some(model)
                })
                .and_then(|r| r.get(key))
                .and_then(Value::as_f64)
        };
        let straighter = DATASETS.iter().filter(|d| matches!((get(d.name(), "ot-flow", "kinetic_energy"), get(d.name(), "cnf", "kinetic_energy")), (Some(a), Some(b)) if a < b)).count();
        report.notes.push(format!("kinetic energy: OT-Flow's paths are cheaper than the CNF's on {straighter} of {} data sets (the transport penalty at work: straight vs curvy).", DATASETS.len()));
        report.notes.push("test_nll_nats: nats on the test draw, with the parameters that had the best validation objective on a separate validation draw (best_iter, val_objective: J for OT-Flow, NLL for the CNF), exact trace (CNF) / exact Laplacian (OT-Flow), twice the training steps. --quick trains 100 iterations at batch 512 in f32 (the precision study 33); the published runs use 5000–20000 iterations at batch 5000 in f64: compare models with each other, not with the papers' converged numbers.".into());
        report.notes.push("precision study (rows with study = precision): 'diverged' = training produced a non-finite loss or the backward pass failed; 'underflow_flagged' = the unscaled f16 adjoint lost digits.".into());
        Ok(())
    }
}

/// Training, validation and test draws of one row.
struct Split {
    train: Tensor,
    validation: Tensor,
    test: Tensor,
}

/// One row's settings, data and variables, for [`RowRun::measure`].
struct RowRun<'a> {
    cfg: &'a Row,
    settings: &'a Settings,
    data: &'a Split,
    vm: &'a VarMap,
    train: &'a TrainConfig,
    seed: u64,
    device: &'a Device,
}

impl RowRun<'_> {
    /// Trains `m` (best parameters chosen on the validation draw), then measures it on the test
    /// draw: NLL, MMD, kinetic energy, sampling NFE, and the plot data.
    fn measure<M: Trainable + ContinuousFlow>(&self, m: &M) -> Result<Row, String> {
        let (cfg, s, seed, device) = (self.cfg, self.settings, self.seed, self.device);
        let test_x = &self.data.test;
        let start = std::time::Instant::now();
        let result = train(m, self.vm, &self.data.train, &self.data.validation, self.train, &mut |_| {});
        let train_s = start.elapsed().as_secs_f64();
        let mut row = Row::new();
        let outcome = match result {
            Ok(r) => r,
            Err(err) => {
                // diverging is a result here (f16 without scaling), not a crash
                row.insert("diverged".into(), "yes".into());
                row.insert("status".into(), format!("failed: {err}").into());
                row.insert("train_time_s".into(), train_s.into());
                return Ok(row);
            }
        };
        let history = &outcome.history;
        if let Some((iter, best)) = &outcome.best {
            row.insert("best_iter".into(), (*iter).into());
            row.insert("val_objective".into(), best.objective().into());
        }
        let nll = m
            .log_prob(test_x, 2 * s.val_steps)
            .map_err(|e| e.to_string())?
            .neg()
            .and_then(|t| t.mean_all())
            .and_then(|t| t.to_scalar::<f32>())
            .map_err(|e| e.to_string())? as f64;
        let velocity = m.velocity(DType::F32).map_err(|e| e.to_string())?;
        // sampling: adaptive Dopri5 from N(0, I) back to t = 0
        let z = SeededRng::new(seed + 2).normal((s.n_test, 2), DType::F32, device).map_err(|e| e.to_string())?;
        let sampled = solve(
            velocity.as_ref(),
            Method::Dopri5,
            &z,
            &SolveConfig::new(Steps::Adaptive { t0: 1.0, t1: 0.0, controller: PiController::new(1e-5, 1e-5) }),
        )
        .map_err(|e| e.to_string())?;
        let samples = sampled.last().clone();
        let mmd = tensor_core::stats::mmd(&samples, test_x, 1.0).map_err(|e| e.to_string())?;
        // kinetic energy E∫½‖v‖² along the data's trajectories
        let with_energy = |t: f64, s: &(Tensor, Tensor)| -> ode_solvers::Result<(Tensor, Tensor)> {
            let v = velocity.vector_field(t, &s.0)?;
            let k = (v.sqr()?.sum_keepdim(1)? * 0.5)?;
            Ok((v, k))
        };
        let zero = Tensor::zeros((s.n_test, 1), DType::F32, device).map_err(|e| e.to_string())?;
        let traj = solve(
            &with_energy,
            Method::Rk4,
            &(test_x.clone(), zero),
            &SolveConfig::new(Steps::uniform(0.0, 1.0, 16).map_err(|e| e.to_string())?).save_at(SaveAt::Steps),
        )
        .map_err(|e| e.to_string())?;
        let kinetic = traj.last().1.mean_all().and_then(|t| t.to_scalar::<f32>()).map_err(|e| e.to_string())? as f64;
        row.insert("test_nll_nats".into(), nll.into());
        row.insert("mmd".into(), mmd.into());
        row.insert("kinetic_energy".into(), kinetic.into());
        row.insert("nfe_sample".into(), sampled.stats.nfe.into());
        row.insert("train_time_s".into(), train_s.into());
        row.insert("final_train_loss".into(), history.last().map_or(f64::NAN, |r| r.loss).into());
        if matches!(self.train.mode, GradientMode::Mixed { .. }) {
            row.insert("underflow_flagged".into(), (if history.iter().any(|r| r.degraded) { "yes" } else { "no" }).into());
        }
        row.insert("diverged".into(), (if nll.is_finite() { "no" } else { "yes" }).into());
        // plot data for the toys study
        if get_str(cfg, "study")? == "toys" && std::env::var_os(OUT_ENV).is_some() {
            let n = 60;
            let axis: Vec<f32> = (0..n).map(|i| (-BOX + (i as f64 + 0.5) * 2.0 * BOX / n as f64) as f32).collect();
            let grid: Vec<f32> = axis.iter().flat_map(|&y| axis.iter().flat_map(move |&x| [x, y])).collect();
            let grid = Tensor::from_vec(grid, (n * n, 2), device).map_err(|e| e.to_string())?;
            let density: Vec<f64> = m
                .log_prob(&grid, s.val_steps)
                .map_err(|e| e.to_string())?
                .exp()
                .and_then(|t| t.flatten_all())
                .and_then(|t| t.to_dtype(DType::F64))
                .and_then(|t| t.to_vec1::<f64>())
                .map_err(|e| e.to_string())?;
            let k = 40;
            let paths: Vec<Vec<(f64, f64)>> = (0..k)
                .map(|i| {
                    traj.ys
                        .iter()
                        .map(|y| {
                            y.0.get(i)
                                .and_then(|r| r.to_dtype(DType::F64))
                                .and_then(|r| r.to_vec1::<f64>())
                                .map(|v| (v[0], v[1]))
                                .unwrap_or((0.0, 0.0))
                        })
                        .collect()
                })
                .collect();
            let data = json!({"samples": points(&samples.narrow(0, 0, 1500.min(s.n_test)).map_err(|e| e.to_string())?)?, "data": points(&test_x.narrow(0, 0, 1500.min(s.n_test)).map_err(|e| e.to_string())?)?, "density": density.chunks(n).map(|c| c.to_vec()).collect::<Vec<_>>(), "paths": paths});
            write_plot_data("toy2d", &format!("{}-{}", get_str(cfg, "model")?, get_str(cfg, "dataset")?), &data)?;
        }
        Ok(row)
    }
}
