//! `fm-diffusion`: simulation-free models on 2-D toys at torchcfm's protocol (MLP 3×64 SELU,
//! batch 512, AdamW 1e-3, σ = 0.1, 100 Euler steps, exact W2 on held-out points; torchcfm's own
//! 8gaussians — scale 5 — and moons conventions). Flow matching: I-CFM, OT-CFM (exact assignment),
//! Sinkhorn OT-CFM, Schrödinger-bridge CFM (exact coupling, Brownian-bridge path), rectified flow
//! (one reflow of I-CFM). VP diffusion (ε-prediction, DSM) sampled by the reverse SDE, the PF-ODE
//! (Euler and adaptive Dopri5) and the smart-zero member g̃ = g/2.
//! Tasks: N(0, I) → 8gaussians, N(0, I) → moons, moons → 8gaussians (diffusion needs a Gaussian
//! source, so it runs on the first two). On N → 8gaussians also a CNF and OT-Flow trained by
//! maximum likelihood (an ODE solve per step), which fills Ruthotto's "Continuous-Time Deep Learning for Generative AI and High-Dim PDEs" strategy table with
//! measured costs. Also the time per training step next to the same step in PyTorch
//! (`benches/reference/cfm_step.py`).

use super::{get_str, get_usize, json_points, read_plot_data, run_python_reference, time_runs, write_plot_data, Suite};
use crate::plot::{panels, Panel};
use crate::report::{Report, Row};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use cnf::{Cnf, CnfConfig};
use datasets::toy2d::{torchcfm_8gaussians, torchcfm_moons};
use flow_matching::sample::{kinetic_energy, sample, w2_exact};
use flow_matching::{cfm_loss, train_cfm, train_on_pairs, CfmConfig, Coupling, Path as CfmPath};
use ode_solvers::path_energy::path_energy;
use ode_solvers::{time_net_field, Method, OdeTerm, PiController, Steps};
use ot_flow::{OtFlow, ToyPreset};
use plotters::style::RGBColor;
use score_diffusion::sampler::{prior_sample, probability_flow, reverse_sde, smart_zero, tweedie_denoise, ReverseGrid};
use score_diffusion::{train_dsm, DsmConfig, ForwardSde, Parametrization, ScoreNet, Weighting};
use serde_json::{json, Value};
use std::path::Path;
use std::time::Instant;
use tensor_core::nets::{ConcatSquashLinear, Mlp};
use tensor_core::params::ParamBuilder;
use tensor_core::{Activation, SeededRng};
use train::{train, LrSchedule, TrainConfig, Trainable};

pub struct FmDiffusion;

const TASKS: [&str; 3] = ["N→8gaussians", "N→moons", "moons→8gaussians"];
const FM_METHODS: [&str; 5] = ["i-cfm", "ot-cfm", "sinkhorn-cfm", "sb-cfm", "rectified-flow"];
/// Models trained by maximum likelihood through an ODE solve (data at t = 0, noise at t = 1).
const MLE_MODELS: [&str; 2] = ["cnf", "ot-flow"];
/// RK4 steps per training solve of the MLE models (OT-Flow's published 8gaussians nt), doubled to sample.
const MLE_STEPS: usize = 8;
const SIGMA: f64 = 0.1;
const DIFFUSION_SAMPLERS: [&str; 4] = ["vp reverse-sde", "vp pf-ode euler", "vp pf-ode dopri5", "vp smart-zero c=0.5"];
const BATCH: usize = 512;
const WIDTH: usize = 64;
const T_MIN: f64 = 1e-3;

fn s(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn matrix(m: datasets::Matrix, device: &Device) -> Result<Tensor, String> {
    m.to_tensor(device).map_err(s)
}

/// (source, target) samples of a task: n points each, seeded.
fn task_samples(task: &str, n: usize, seed: u64, device: &Device) -> Result<(Tensor, Tensor), String> {
    let gaussian = || SeededRng::new(seed).normal((n, 2), DType::F32, device).map_err(s);
    match task {
        "N→8gaussians" => Ok((gaussian()?, matrix(torchcfm_8gaussians(n, seed + 1), device)?)),
        "N→moons" => Ok((gaussian()?, matrix(torchcfm_moons(n, seed + 1), device)?)),
        "moons→8gaussians" => Ok((matrix(torchcfm_moons(n, seed + 2), device)?, matrix(torchcfm_8gaussians(n, seed + 1), device)?)),
        other => Err(format!("unknown task '{other}'")),
    }
}

fn mlp(vm: &VarMap, seed: u64, device: &Device) -> Result<Mlp, String> {
    Mlp::new(&mut ParamBuilder::new(vm, &mut SeededRng::new(seed), DType::F32, device), 2, &[WIDTH, WIDTH, WIDTH], 2, Activation::Selu)
        .map_err(s)
}

fn points(t: &Tensor, n: usize) -> Result<Vec<[f64; 2]>, String> {
    Ok(t.narrow(0, 0, n.min(t.dim(0).map_err(s)?))
        .and_then(|t| t.to_dtype(DType::F64))
        .and_then(|t| t.to_vec2::<f64>())
        .map_err(s)?
        .into_iter()
        .map(|r| [r[0], r[1]])
        .collect())
}

impl FmDiffusion {
    fn flow_row(&self, task: &str, method: &str, iters: usize, n_test: usize, device: &Device, seed: u64) -> Result<Row, String> {
        let (source, data) = task_samples(task, 8192, seed, device)?;
        let (z, test) = task_samples(task, n_test, seed + 100, device)?;
        let (coupling, path) = match method {
            "ot-cfm" => (Coupling::ExactOt, CfmPath::Straight { sigma: SIGMA }),
            "sinkhorn-cfm" => (Coupling::Sinkhorn { eps: 0.05, normalize: true }, CfmPath::Straight { sigma: SIGMA }),
            "sb-cfm" => (Coupling::ExactOt, CfmPath::BrownianBridge { sigma: SIGMA }),
            _ => (Coupling::Independent, CfmPath::Straight { sigma: SIGMA }),
        };
        let cfg = CfmConfig { coupling, path, iters, batch: BATCH, lr: 1e-3, seed };
        let vm = VarMap::new();
        let mut net = mlp(&vm, seed, device)?;
        let start = Instant::now();
        train_cfm(&net, &vm, &source, &data, &cfg).map_err(s)?;
        if method == "rectified-flow" {
            // one reflow round: pairs (x₀, ODE(x₀)) from the first model, a fresh net trained on them
            let (x1, _) = sample(&net, &source, Method::Rk4, Steps::uniform(0.0, 1.0, 20).map_err(s)?).map_err(s)?;
            let vm2 = VarMap::new();
            let net2 = mlp(&vm2, seed + 7, device)?;
            train_on_pairs(&net2, &vm2, &source, &x1, &CfmConfig { path: CfmPath::Straight { sigma: 0.0 }, ..cfg }).map_err(s)?;
            net = net2;
        }
        let train_s = start.elapsed().as_secs_f64();
        let start = Instant::now();
        let (x, stats) = sample(&net, &z, Method::Euler, Steps::uniform(0.0, 1.0, 100).map_err(s)?).map_err(s)?;
        let sample_s = start.elapsed().as_secs_f64();
        let energy = kinetic_energy(&net, &z, 100).map_err(s)?;
        let train_iters = iters * if method == "rectified-flow" { 2 } else { 1 };
        let mut row = sample_metrics(&x, &test, stats.nfe, Cost { train_s, train_iters, train_nfe_per_iter: 1, sample_s })?;
        insert_path_energy(&mut row, energy, &z, &test)?;
        // trajectories for the picture
        let traj: Vec<Vec<[f64; 2]>> = {
            let frozen = net.detach().map_err(s)?;
            let v = time_net_field(frozen.clone());
            let sol = ode_solvers::solve(
                &v,
                Method::Euler,
                &z.narrow(0, 0, 40).map_err(s)?,
                &ode_solvers::SolveConfig::new(Steps::uniform(0.0, 1.0, 50).map_err(s)?).save_at(ode_solvers::SaveAt::Steps),
            )
            .map_err(s)?;
            let frames: Vec<Vec<[f64; 2]>> = sol.ys.iter().map(|y| points(y, 40)).collect::<Result<_, _>>()?;
            (0..40).map(|i| frames.iter().map(|f| f[i]).collect()).collect()
        };
        write_plot_data(
            self.name(),
            &format!("{task}-{method}"),
            &json!({"samples": points(&x, 1000)?, "data": points(&test, 1000)?, "paths": traj}),
        )?;
        Ok(row)
    }

    fn diffusion_row(&self, task: &str, sampler: &str, iters: usize, n_test: usize, device: &Device, seed: u64) -> Result<Row, String> {
        let (_, data) = task_samples(task, 8192, seed, device)?;
        let (_, test) = task_samples(task, n_test, seed + 100, device)?;
        let sde = ForwardSde::vp(1.0);
        let vm = VarMap::new();
        let model = ScoreNet { net: mlp(&vm, seed, device)?, sde, parametrization: Parametrization::Noise };
        let start = Instant::now();
        train_dsm(&model, &vm, &data, &DsmConfig { weighting: Weighting::Sigma2, t_min: T_MIN, iters, batch: BATCH, lr: 1e-3, seed })
            .map_err(s)?;
        let train_s = start.elapsed().as_secs_f64();
        let score = model.detach().map_err(s)?;
        let z = prior_sample(&sde, n_test, 2, &mut SeededRng::new(seed + 200), DType::F32, device).map_err(s)?;
        let grid = ReverseGrid::full(&sde, T_MIN, 100);
        let start = Instant::now();
        let (x, nfe) = match sampler {
            "vp reverse-sde" => (reverse_sde(&score, &sde, &z, grid, seed + 3).map_err(s)?, 100),
            "vp smart-zero c=0.5" => (smart_zero(&score, &sde, &z, 0.5, grid, seed + 3).map_err(s)?, 100),
            "vp pf-ode euler" => {
                let (x, st) =
                    probability_flow(&score, &sde, &z, Method::Euler, Steps::uniform(sde.t_max(), T_MIN, 100).map_err(s)?).map_err(s)?;
                (x, st.nfe)
            }
            "vp pf-ode dopri5" => {
                let (x, st) = probability_flow(
                    &score,
                    &sde,
                    &z,
                    Method::Dopri5,
                    Steps::Adaptive { t0: sde.t_max(), t1: T_MIN, controller: PiController::new(1e-3, 1e-3) },
                )
                .map_err(s)?;
                (x, st.nfe)
            }
            other => return Err(format!("unknown sampler '{other}'")),
        };
        let x = tweedie_denoise(&score, &sde, &x, T_MIN).map_err(s)?;
        let sample_s = start.elapsed().as_secs_f64();
        let row = sample_metrics(&x, &test, nfe, Cost { train_s, train_iters: iters, train_nfe_per_iter: 1, sample_s })?;
        write_plot_data(
            self.name(),
            &format!("{task}-{sampler}"),
            &json!({"samples": points(&x, 1000)?, "data": points(&test, 1000)?, "paths": []}),
        )?;
        Ok(row)
    }

    /// A CNF (concat-squash 64-64 tanh, exact trace) or OT-Flow (width 32, 2 layers, OT-Flow's
    /// 8gaussians α and learning rate) trained by maximum likelihood, data at t = 0 → N(0, I) at
    /// t = 1, RK4 with [`MLE_STEPS`] steps, checkpointed gradients; sampled from N(0, I) back to
    /// t = 0 with twice the steps.
    fn mle_row(&self, task: &str, model: &str, iters: usize, n_test: usize, device: &Device, seed: u64) -> Result<Row, String> {
        let (_, data) = task_samples(task, 8192, seed, device)?;
        let (z, test) = task_samples(task, n_test, seed + 100, device)?;
        let (_, val) = task_samples(task, n_test, seed + 300, device)?;
        let vm = VarMap::new();
        let mut rng = SeededRng::new(seed);
        let mut pb = ParamBuilder::new(&vm, &mut rng, DType::F32, device);
        let (lr, schedule) = if model == "ot-flow" {
            (0.1, LrSchedule::StepDecay { every: (iters / 10).max(1), factor: 2.0 })
        } else {
            (1e-2, LrSchedule::Constant)
        };
        let tc = TrainConfig::default()
            .iters(iters)
            .batch(BATCH)
            .lr(lr)
            .schedule(schedule)
            .steps(MLE_STEPS)
            .val_steps(12)
            .val_every((iters / 4).max(1))
            .seed(seed);
        let e = |e: &dyn std::fmt::Display| e.to_string();
        let (train_s, velocity): (f64, Box<dyn OdeTerm<Tensor>>) = match model {
            "ot-flow" => {
                let m = OtFlow::new(&mut pb, ToyPreset::for_dataset("8gaussians").ok_or("no 8gaussians preset")?.config())
                    .map_err(|err| e(&err))?;
                (timed_train(&m, &vm, &data, &val, &tc)?, Box::new(m.frozen().and_then(|f| f.velocity(DType::F32)).map_err(|err| e(&err))?))
            }
            "cnf" => {
                let m = Cnf::<ConcatSquashLinear>::new(&mut pb, CnfConfig::ffjord_toy(2)).map_err(|err| e(&err))?;
                let train_s = timed_train(&m, &vm, &data, &val, &tc)?;
                (train_s, Box::new(time_net_field(m.net.detach().map_err(s)?)))
            }
            other => return Err(format!("unknown model '{other}'")),
        };
        let start = Instant::now();
        let (energy, x) = path_energy(velocity.as_ref(), Method::Rk4, &z, 1.0, 0.0, 2 * MLE_STEPS).map_err(s)?;
        let sample_s = start.elapsed().as_secs_f64();
        let mut row = sample_metrics(
            &x,
            &test,
            4 * 2 * MLE_STEPS,
            Cost { train_s, train_iters: iters, train_nfe_per_iter: 4 * MLE_STEPS, sample_s },
        )?;
        insert_path_energy(&mut row, energy, &z, &test)?;
        write_plot_data(
            self.name(),
            &format!("{task}-{model}"),
            &json!({"samples": points(&x, 1000)?, "data": points(&test, 1000)?, "paths": []}),
        )?;
        Ok(row)
    }

    fn step_time_row(&self, side: &str, reps: usize, device: &Device, seed: u64) -> Result<Row, String> {
        let mut row = Row::new();
        if side == "pytorch" {
            let reps = reps.to_string();
            let words = ["--batch", "512", "--width", "64", "--reps", reps.as_str(), "--threads", "2"];
            let args: Vec<&std::ffi::OsStr> = words.iter().map(std::ffi::OsStr::new).collect();
            match run_python_reference("cfm_step.py", &args) {
                Ok(v) => {
                    row.insert("step_time_median_s".into(), v["median_s"].clone());
                    row.insert(
                        "status".into(),
                        format!("ok (torch {}, {})", v["torch"].as_str().unwrap_or("?"), v["source"].as_str().unwrap_or("?")).into(),
                    );
                }
                Err(why) => {
                    row.insert("status".into(), format!("skipped: {why}").into());
                }
            }
            return Ok(row);
        }
        let (source, data) = task_samples("N→8gaussians", 8192, seed, device)?;
        let vm = VarMap::new();
        let net = mlp(&vm, seed, device)?;
        let mut opt = <candle_nn::AdamW as candle_nn::Optimizer>::new(
            vm.all_vars(),
            candle_nn::ParamsAdamW { lr: 1e-3, weight_decay: 0.0, ..Default::default() },
        )
        .map_err(s)?;
        let mut rng = SeededRng::new(seed);
        let (median, _) = time_runs(reps, || {
            let (x0, x1) = (rng.rows(&source, BATCH).map_err(s)?, rng.rows(&data, BATCH).map_err(s)?);
            let loss = cfm_loss(&net, &x0, &x1, CfmPath::Straight { sigma: SIGMA }, &mut rng).map_err(s)?;
            candle_nn::Optimizer::backward_step(&mut opt, &loss).map_err(s)
        })?;
        row.insert("step_time_median_s".into(), median.into());
        row.insert("status".into(), "ok".into());
        Ok(row)
    }
}

impl Suite for FmDiffusion {
    fn name(&self) -> &'static str {
        "fm-diffusion"
    }
    fn description(&self) -> &'static str {
        "flow matching (I-CFM, OT-CFM exact/Sinkhorn, rectified flow) and VP diffusion (reverse SDE, PF-ODE, smart zero) on 2-D toys at torchcfm's protocol"
    }
    fn data_source(&self, _quick: bool) -> String {
        "2-D toys with torchcfm's conventions (8gaussians: scale 5, noise std 0.1^¼; moons: torchdyn noise 0.2, ×3 − 1), generated by datasets::toy2d".into()
    }
    fn config(&self, quick: bool) -> Value {
        json!({"network": "MLP [3, 64, 64, 64, 2] SELU (torchcfm.models.MLP)", "batch": BATCH, "optimizer": "AdamW lr 1e-3", "sigma": 0.1, "eval": "100 Euler steps from held-out source points, exact W2",
               "iters_fm": iters(quick).0, "iters_diffusion": iters(quick).1, "iters_cnf_otflow": mle_iters(quick),
               "sinkhorn_coupling": "ε = 0.05 on the cost divided by its maximum (torchcfm's normalize_cost=True)", "sb_cfm": "exact OT coupling (torchcfm's default ot_method), Brownian-bridge path σ√(t(1−t)) with σ = 0.1",
               "cnf": "concat-squash [2, 64, 64, 2] tanh, exact trace, Adam 1e-2", "ot_flow": "width 32, 2 layers, α = (1, 30, 1), lr 0.1 halved every tenth of the run", "mle_solver": "RK4, 8 steps to train, 16 to sample, checkpointed gradients", "n_test": n_test(quick), "diffusion": "VP linear β 0.1→20, T = 1, ε-prediction, σ²-weighted DSM, t_min 1e-3, Tweedie last step",
               "torchcfm_published_iters": 20000})
    }
    fn rows(&self, quick: bool) -> Vec<Row> {
        let (fm_iters, diff_iters) = iters(quick);
        let mut rows = Vec::new();
        for task in TASKS {
            for m in FM_METHODS {
                rows.push(json!({"task": task, "method": m, "iters": fm_iters, "n_test": n_test(quick)}));
            }
            if task == "N→8gaussians" {
                for m in MLE_MODELS {
                    rows.push(json!({"task": task, "method": m, "iters": mle_iters(quick), "n_test": n_test(quick)}));
                }
            }
            if task.starts_with("N→") {
                for m in DIFFUSION_SAMPLERS {
                    rows.push(json!({"task": task, "method": m, "iters": diff_iters, "n_test": n_test(quick)}));
                }
            }
        }
        for side in ["continuum", "pytorch"] {
            rows.push(json!({"task": "train-step time (I-CFM, batch 512)", "method": side, "reps": if quick { 50 } else { 200 }}));
        }
        rows.into_iter().filter_map(|r| r.as_object().cloned()).collect()
    }
    fn run_row(&self, cfg: &Row, device: &Device, seed: u64) -> Result<Row, String> {
        let (task, method) = (get_str(cfg, "task")?, get_str(cfg, "method")?);
        if task.starts_with("train-step") {
            return self.step_time_row(method, get_usize(cfg, "reps")?, device, seed);
        }
        let (iters, n_test) = (get_usize(cfg, "iters")?, get_usize(cfg, "n_test")?);
        if method.starts_with("vp ") {
            self.diffusion_row(task, method, iters, n_test, device, seed)
        } else if MLE_MODELS.contains(&method) {
            self.mle_row(task, method, iters, n_test, device, seed)
        } else {
            self.flow_row(task, method, iters, n_test, device, seed)
        }
    }
    fn finish(&self, report: &mut Report, out: &Path) -> Result<(), String> {
        let methods: Vec<&str> = FM_METHODS.iter().chain(&MLE_MODELS).chain(&DIFFUSION_SAMPLERS).copied().collect();
        for task in TASKS {
            let mut grid = vec![Vec::new(), Vec::new()];
            let mut names = Vec::new();
            for m in &methods {
                let Some(d) = read_plot_data(out, self.name(), &format!("{task}-{m}")) else { continue };
                names.push(*m);
                grid[0].push(Panel::Scatter {
                    clouds: vec![(json_points(&d["data"]), RGBColor(160, 160, 160)), (json_points(&d["samples"]), RGBColor(200, 30, 30))],
                });
                grid[1]
                    .push(Panel::Paths { paths: d["paths"].as_array().map(|a| a.iter().map(json_points).collect()).unwrap_or_default() });
            }
            if names.is_empty() {
                continue;
            }
            let file = format!("fm_diffusion_{}.png", task.replace('→', "_to_"));
            panels(
                &out.join(&file),
                &format!("{task}: samples (red) vs data (grey), and trajectories"),
                &["samples".into(), "paths".into()],
                &names,
                &grid,
                -9.0,
                9.0,
            )?;
            report.plots.push(file);
        }
        let get = |task: &str, m: &str, key: &str| {
            report
                .rows
                .iter()
                .find(|r| r.get("task").and_then(Value::as_str) == Some(task) && r.get("method").and_then(Value::as_str) == Some(m))
                .and_then(|r| r.get(key))
                .and_then(Value::as_f64)
        };
        if let (Some(ours), Some(theirs)) = (
            get("train-step time (I-CFM, batch 512)", "continuum", "step_time_median_s"),
            get("train-step time (I-CFM, batch 512)", "pytorch", "step_time_median_s"),
        ) {
            report.notes.push(format!("train step (I-CFM, MLP 3×64 SELU, batch 512, AdamW): continuum {:.2} ms vs PyTorch {:.2} ms on the same CPU and 2 threads: ratio {:.2}.", ours * 1e3, theirs * 1e3, ours / theirs));
        }
        for task in ["N→8gaussians", "moons→8gaussians"] {
            if let (Some(ot), Some(ind)) = (get(task, "ot-cfm", "normalized_path_energy"), get(task, "i-cfm", "normalized_path_energy")) {
                report.notes.push(format!(
                    "{task}: normalized path energy |E∫‖v‖² − W2²|/W2² OT-CFM {ot:.3} vs I-CFM {ind:.3} (TorchCFM paper: {}).",
                    if task.starts_with('N') { "0.018 vs 0.222" } else { "0.053 vs 2.738" }
                ));
            }
        }
        report.notes.push("W2 is exact (optimal assignment) between generated and held-out target points; NFE counts velocity/score evaluations. Diffusion rows have no path energy (their time runs over [t_min, 1] on a different clock). --quick trains far fewer iterations than torchcfm's 20 000: compare methods with each other.".into());
        report.sections.push(strategy_table(&get));
        Ok(())
    }
}

fn iters(quick: bool) -> (usize, usize) {
    if quick {
        (1000, 2000)
    } else {
        (20000, 20000)
    }
}

/// What a row's model cost to train and to sample.
struct Cost {
    train_s: f64,
    train_iters: usize,
    /// Forward velocity evaluations per training step.
    train_nfe_per_iter: usize,
    sample_s: f64,
}

/// The columns every row shares: exact W2 and MMD of samples `x` against held-out `test`, NFE,
/// and the training and sampling cost.
fn sample_metrics(x: &Tensor, test: &Tensor, nfe: usize, cost: Cost) -> Result<Row, String> {
    let mut row = Row::new();
    row.insert("w2".into(), w2_exact(x, test).map_err(s)?.into());
    row.insert("mmd".into(), tensor_core::stats::mmd(x, test, 1.0).map_err(s)?.into());
    row.insert("nfe".into(), nfe.into());
    row.insert("train_time_s".into(), cost.train_s.into());
    row.insert("train_ms_per_iter".into(), (1e3 * cost.train_s / cost.train_iters as f64).into());
    row.insert("train_nfe_per_iter".into(), cost.train_nfe_per_iter.into());
    row.insert("sample_time_s".into(), cost.sample_s.into());
    Ok(row)
}

/// The path energy E∫‖v‖² dt of a flow and TorchCFM's normalised form |E∫‖v‖² − W2²|/W2², with
/// W2 between the flow's source points `z` and the held-out targets.
fn insert_path_energy(row: &mut Row, energy: f64, z: &Tensor, test: &Tensor) -> Result<(), String> {
    let w2_ends = w2_exact(z, test).map_err(s)?;
    row.insert("path_energy".into(), energy.into());
    row.insert("normalized_path_energy".into(), ((energy - w2_ends * w2_ends).abs() / (w2_ends * w2_ends)).into());
    Ok(())
}

/// Trains an MLE model and returns the seconds it took.
fn timed_train<M: Trainable>(m: &M, vm: &VarMap, data: &Tensor, val: &Tensor, tc: &TrainConfig) -> Result<f64, String> {
    let start = Instant::now();
    train(m, vm, data, val, tc, &mut |_| {}).map_err(|e| e.to_string())?;
    Ok(start.elapsed().as_secs_f64())
}

/// Iterations of the CNF and OT-Flow rows (each runs an ODE solve with backprop: ~100× a CFM
/// step); the full preset is OT-Flow's published 8gaussians run length.
fn mle_iters(quick: bool) -> usize {
    if quick {
        300
    } else {
        5000
    }
}

fn n_test(quick: bool) -> usize {
    if quick {
        500
    } else {
        1000
    }
}

/// Ruthotto's "Continuous-Time Deep Learning for Generative AI and High-Dim PDEs" table ("Method | PDE | Optimal? | Train | Sample") with the measured numbers on
/// N(0, I) → 8gaussians: training cost per iteration and velocity evaluations per iteration,
/// sampling NFE and time, W2 to held-out data, and the normalised path energy as the measure of
/// optimality (0 = straight constant-speed paths, the OT map's).
fn strategy_table(get: &dyn Fn(&str, &str, &str) -> Option<f64>) -> String {
    let task = "N→8gaussians";
    let mut t = String::from("### Ruthotto's “Continuous-Time Deep Learning for Generative AI and High-Dim PDEs” strategy table, measured (N(0, I) → 8gaussians)\n\n| method | PDE | seed's \"optimal?\" | normalised path energy | train ms/iter | train NFE/iter | sample NFE | sample s | W2 |\n|---|---|---|---|---|---|---|---|---|\n");
    let rows = [
        ("CNF (MLE, exact trace)", "cnf", "continuity", "no"),
        ("OT-Flow", "ot-flow", "continuity", "yes"),
        ("flow matching (I-CFM)", "i-cfm", "continuity", "no"),
        ("flow matching (OT-CFM)", "ot-cfm", "continuity", "no"),
        ("diffusion (reverse SDE)", "vp reverse-sde", "Fokker–Planck", "no"),
        ("diffusion (PF-ODE, Dopri5)", "vp pf-ode dopri5", "Fokker–Planck", "no"),
    ];
    let f = |m: &str, k: &str| {
        get(task, m, k).map_or("—".to_string(), |v| {
            if v.fract() == 0.0 && v.abs() < 1e9 {
                format!("{v}")
            } else {
                crate::report::format_figure(v)
            }
        })
    };
    for (label, m, pde, optimal) in rows {
        t += &format!(
            "| {label} | {pde} | {optimal} | {} | {} | {} | {} | {} | {} |\n",
            f(m, "normalized_path_energy"),
            f(m, "train_ms_per_iter"),
            f(m, "train_nfe_per_iter"),
            f(m, "nfe"),
            f(m, "sample_time_s"),
            f(m, "w2")
        );
    }
    t + "\nTrain NFE/iter counts forward velocity evaluations per training step (CNF/OT-Flow: RK4 × 8 steps, plus their backward); diffusion rows have no path energy (their clock runs over [t_min, 1] with a different schedule). The CNF and OT-Flow rows train fewer iterations than the others (see config)."
}
