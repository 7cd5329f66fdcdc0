//! `cargo xtask train` and `cargo xtask sample`: a user's own density-estimation run.
//!
//! `train ot-flow|cnf --data <toy name | file.npy | file.csv>` trains with a progress bar
//! (loss, validation NLL, learning rate, ETA), keeps the best parameters in
//! `<out>/model.safetensors` and the model's settings in `<out>/model.json`.
//! `sample --model <out>` rebuilds the model, draws samples (npy or csv) and, for 2-D data,
//! writes a PNG next to them.

use crate::plot::{panels, Panel};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use clap::{Args, ValueEnum};
use cnf::{Cnf, TraceEstimator};
use datasets::npy_csv::{load_matrix, write_csv, write_npy};
use datasets::toy2d::Toy2d;
use datasets::Matrix;
use indicatif::{ProgressBar, ProgressStyle};
use mixed_precision_adjoint::{train, GradientMode, TrainConfig};
use ode_solvers::Method;
use ot_flow::{OtFlow, OtFlowConfig};
use plotters::style::RGBColor;
use serde_json::json;
use std::path::{Path, PathBuf};
use tensor_core::nets::{ConcatSquashLinear, ConcatSquashNet};
use tensor_core::params::{load_checkpoint, ParamBuilder};
use tensor_core::{Activation, Precision, PrecisionPolicy, SeededRng};

/// Which model.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum ModelKind {
    OtFlow,
    Cnf,
}

/// How gradients are computed.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Gradient {
    Checkpointed,
    FullGraph,
    Continuous,
}

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// The model to train.
    #[arg(value_enum)]
    model: ModelKind,
    /// A toy data set name (8gaussians, moons, …) or a .npy / .csv file (rows = samples).
    #[arg(long)]
    data: String,
    /// Network evaluation precision: f32, bf16 or f16 (16-bit runs use the mixed-precision adjoint).
    #[arg(long, default_value = "f32")]
    precision: String,
    /// Adjoint scaling for 16-bit runs.
    #[arg(long, default_value = "dynamic", value_parser = ["dynamic", "none"])]
    scaling: String,
    /// Gradient mode for f32 runs.
    #[arg(long, value_enum, default_value = "checkpointed")]
    gradient: Gradient,
    /// RK4 steps for training (validation uses twice as many).
    #[arg(long, default_value_t = 8)]
    steps: usize,
    #[arg(long, default_value_t = 1000)]
    iters: usize,
    #[arg(long, default_value_t = 1024)]
    batch: usize,
    /// Width of Φ's ResNet (OT-Flow) or of the two hidden layers (CNF).
    #[arg(long, default_value_t = 32)]
    width: usize,
    #[arg(long)]
    lr: Option<f64>,
    /// Output folder for model.safetensors / model.json.
    #[arg(long, default_value = "target/train")]
    out: PathBuf,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, default_value = "cpu")]
    device: String,
}

#[derive(Args, Debug)]
pub struct SampleArgs {
    /// Folder written by `train` (model.json + model.safetensors).
    #[arg(long)]
    model: PathBuf,
    #[arg(long, default_value_t = 2000)]
    n: usize,
    /// Output file: .npy or .csv (a PNG is written beside it for 2-D data).
    #[arg(long, default_value = "target/train/samples.npy")]
    out: PathBuf,
    #[arg(long, default_value_t = 16)]
    steps: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// A built model of either kind.
enum Built {
    OtFlow(OtFlow),
    Cnf(Box<Cnf<ConcatSquashLinear>>),
}

fn build(kind: ModelKind, dim: usize, width: usize, vm: &VarMap, seed: u64, device: &Device) -> Result<Built, String> {
    let mut rng = SeededRng::new(seed);
    let mut pb = ParamBuilder::new(vm, &mut rng, DType::F32, device);
    Ok(match kind {
        ModelKind::OtFlow => Built::OtFlow(OtFlow::new(&mut pb, OtFlowConfig { dim, width, ..OtFlowConfig::toy() }).map_err(|e| e.to_string())?),
        ModelKind::Cnf => {
            let net = ConcatSquashNet::new(&mut pb, dim, &[width, width], dim, Activation::Tanh).map_err(|e| e.to_string())?;
            let trace = if dim <= 8 { TraceEstimator::Exact } else { TraceEstimator::Hutchinson { rademacher: true } };
            Built::Cnf(Box::new(Cnf::new(net, trace, seed).map_err(|e| e.to_string())?))
        }
    })
}

fn load_data(spec: &str, seed: u64) -> Result<(Matrix, Matrix, String), String> {
    if let Ok(toy) = spec.parse::<Toy2d>() {
        return Ok((toy.sample(20_000, seed), toy.sample(2_000, seed + 1), format!("toy {toy}")));
    }
    let m = load_matrix(Path::new(spec)).map_err(|e| e.to_string())?;
    if m.rows < 10 {
        return Err(format!("{spec}: {} samples is too few to train and validate on", m.rows));
    }
    // a seeded 90/10 split
    let mut idx: Vec<usize> = (0..m.rows).collect();
    use rand::seq::SliceRandom;
    idx.shuffle(SeededRng::new(seed).inner());
    let n_val = (m.rows / 10).max(1);
    let take = |ids: &[usize]| Matrix { data: ids.iter().flat_map(|&i| m.row(i).to_vec()).collect(), rows: ids.len(), cols: m.cols };
    Ok((take(&idx[n_val..]), take(&idx[..n_val]), spec.to_string()))
}

fn tensor(m: &Matrix, device: &Device) -> Result<Tensor, String> {
    Tensor::from_vec(m.data.clone(), (m.rows, m.cols), device).map_err(|e| e.to_string())
}

/// `cargo xtask train`.
pub fn run_train(args: &TrainArgs) -> Result<(), String> {
    let device = tensor_core::parse_device(&args.device).map_err(|e| e.to_string())?;
    let precision: Precision = args.precision.parse().map_err(|e: tensor_core::Error| e.to_string())?;
    let (train_m, val_m, source) = load_data(&args.data, args.seed)?;
    let dim = train_m.cols;
    let mode = match precision {
        Precision::F32 | Precision::Tf32 => match args.gradient {
            Gradient::Checkpointed => GradientMode::Checkpointed,
            Gradient::FullGraph => GradientMode::FullGraph,
            Gradient::Continuous => GradientMode::Continuous,
        },
        Precision::Bf16 | Precision::F16 => GradientMode::Mixed { policy: PrecisionPolicy::new(precision, Precision::F32).map_err(|e| e.to_string())?, scaled: args.scaling == "dynamic" },
        Precision::F64 => return Err("--precision f64 is not offered for training; use f32, bf16 or f16".into()),
    };
    std::fs::create_dir_all(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    let vm = VarMap::new();
    let model = build(args.model, dim, args.width, &vm, args.seed, &device)?;
    let lr = args.lr.unwrap_or(if args.model == ModelKind::OtFlow { 0.05 } else { 1e-2 });
    let cfg = TrainConfig {
        iters: args.iters, batch: args.batch, lr, drop_every: if args.model == ModelKind::OtFlow { 100.max(args.iters / 5) } else { 0 }, lr_drop: 2.0,
        steps: args.steps, val_steps: 2 * args.steps, val_every: (args.iters / 20).max(1), early_stopping: Some(10), method: Method::Rk4, mode, seed: args.seed,
        checkpoint: Some(args.out.join("model.safetensors")),
        clamp: None,
    };
    let meta = json!({"model": format!("{:?}", args.model), "dim": dim, "width": args.width, "seed": args.seed, "data": source, "precision": precision.name(), "steps": args.steps});
    std::fs::write(args.out.join("model.json"), serde_json::to_string_pretty(&meta).map_err(|e| e.to_string())? + "\n").map_err(|e| e.to_string())?;
    println!("training {:?} on {source} (d = {dim}, {} train / {} validation samples), {} evaluation, {:?}", args.model, train_m.rows, val_m.rows, precision, mode);
    let bar = ProgressBar::new(args.iters as u64);
    bar.set_style(ProgressStyle::with_template("[{bar:30}] {pos}/{len} {msg} (ETA {eta})").map_err(|e| e.to_string())?.progress_chars("=> "));
    let (train_x, val_x) = (tensor(&train_m, &device)?, tensor(&val_m, &device)?);
    let mut last_nll = f64::NAN;
    let mut on = |r: &mixed_precision_adjoint::TrainRecord| {
        if let Some(v) = &r.validation {
            last_nll = if args.model == ModelKind::OtFlow { v[2] } else { v[0] };
        }
        bar.set_message(format!("loss {:.4} val NLL {:.4} lr {:.1e}{}", r.loss, last_nll, r.lr, if r.degraded { " (underflow flagged)" } else { "" }));
        bar.inc(1);
    };
    let history = match &model {
        Built::OtFlow(m) => train(m, &vm, &train_x, &val_x, &cfg, &mut on),
        Built::Cnf(m) => train(m.as_ref(), &vm, &train_x, &val_x, &cfg, &mut on),
    }
    .map_err(|e| e.to_string())?;
    bar.finish();
    println!("{} iterations in {:.1} s; best validation NLL {last_nll:.4} nats; saved {}", history.len(), history.last().map_or(0.0, |r| r.seconds), args.out.join("model.safetensors").display());
    Ok(())
}

/// `cargo xtask sample`.
pub fn run_sample(args: &SampleArgs) -> Result<(), String> {
    let meta_path = args.model.join("model.json");
    let meta: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&meta_path).map_err(|e| format!("{}: {e} (run `cargo xtask train` first)", meta_path.display()))?).map_err(|e| format!("{}: {e}", meta_path.display()))?;
    let kind = match meta["model"].as_str() {
        Some("OtFlow") => ModelKind::OtFlow,
        Some("Cnf") => ModelKind::Cnf,
        other => return Err(format!("{}: unknown model {other:?}", meta_path.display())),
    };
    let (dim, width, seed) = (meta["dim"].as_u64().unwrap_or(0) as usize, meta["width"].as_u64().unwrap_or(0) as usize, meta["seed"].as_u64().unwrap_or(0));
    let device = Device::Cpu;
    let vm = VarMap::new();
    let model = build(kind, dim, width, &vm, seed, &device)?;
    load_checkpoint(&vm, args.model.join("model.safetensors")).map_err(|e| e.to_string())?;
    let z = SeededRng::new(args.seed).normal((args.n, dim), DType::F32, &device).map_err(|e| e.to_string())?;
    let x = match &model {
        Built::OtFlow(m) => ot_flow::sample::sample(m, &z, args.steps),
        Built::Cnf(m) => m.sample(&z, args.steps),
    }
    .map_err(|e| e.to_string())?;
    let rows = x.to_vec2::<f32>().map_err(|e| e.to_string())?;
    let m = Matrix { data: rows.iter().flatten().copied().collect(), rows: args.n, cols: dim };
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    match args.out.extension().and_then(|e| e.to_str()) {
        Some("csv") => write_csv(&args.out, &m),
        _ => write_npy(&args.out, &m),
    }
    .map_err(|e| e.to_string())?;
    println!("wrote {} samples to {}", args.n, args.out.display());
    if dim == 2 {
        let pts: Vec<(f64, f64)> = rows.iter().map(|r| (r[0] as f64, r[1] as f64)).collect();
        let lim = pts.iter().fold(1.0f64, |a, p| a.max(p.0.abs()).max(p.1.abs())) * 1.1;
        let png = args.out.with_extension("png");
        panels(&png, &format!("{} samples", meta["data"].as_str().unwrap_or("")), &[format!("{kind:?}")], &["samples"], &[vec![Panel::Scatter { clouds: vec![(pts, RGBColor(200, 30, 30))] }]], -lim, lim)?;
        println!("wrote {}", png.display());
    }
    Ok(())
}
