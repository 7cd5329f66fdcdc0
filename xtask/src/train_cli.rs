//! `cargo xtask train` and `cargo xtask sample`: a user's own density-estimation run, as thin
//! glue over the crates (data from `datasets`, models from `cnf` / `ot-flow`, the loop, files
//! and resume from `train`).
//!
//! `train ot-flow|cnf --data <toy name | file.npy | file.csv>` standardises the data (on by
//! default), splits it into training / validation / test, trains with a progress bar, keeps the
//! best parameters by validation in `<out>/model.safetensors` (with the complete configuration
//! and the standardisation), writes the training state to `<out>/checkpoint.safetensors`, and
//! reports the test NLL in the data's own units. `--resume <out>` continues a stopped run.
//! Under `mpirun -n N` (built with `--features mpi`) the run is data-parallel: every rank takes
//! its shard of each batch, rank 0 shows progress and writes the files.
//! `sample --model <out>` rebuilds the model from its file, draws samples (npy or csv, in the
//! data's units) and, for 2-D data, writes a PNG next to them.

use crate::plot::{panels, Panel};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use clap::{Args, ValueEnum};
use cnf::{Cnf, CnfConfig, TraceEstimator};
use datasets::npy_csv::{load_matrix, write_csv, write_npy};
use datasets::toy2d::Toy2d;
use datasets::{Matrix, Splits, Standardization};
use indicatif::{ProgressBar, ProgressStyle};
use ot_flow::{OtFlow, OtFlowConfig};
use plotters::style::RGBColor;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::path::{Path, PathBuf};
use tensor_core::nets::ConcatSquashLinear;
use tensor_core::params::ParamBuilder;
use tensor_core::{Precision, SeededRng};
use train::checkpoint::{model_kind, write_atomic};
use train::{
    Communicator, ContinuousFlow, GradientMethod, GradientMode, LrSchedule, ModelFile, Scaling, TrainConfig, TrainRecord, Trainable,
};

/// Which model.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq, Serialize, Deserialize)]
pub enum ModelKind {
    OtFlow,
    Cnf,
}

/// The settings of a run (also stored as `<out>/run.json`, which `--resume` reads back).
#[derive(Args, Debug, Clone, Serialize, Deserialize)]
pub struct RunArgs {
    /// The model to train.
    #[arg(value_enum)]
    model: Option<ModelKind>,
    /// A toy data set name (8gaussians, moons, …) or a .npy / .csv file (rows = samples).
    #[arg(long)]
    data: Option<String>,
    /// Network evaluation precision: f32, bf16 or f16.
    #[arg(long, default_value = "f32")]
    precision: String,
    /// Gradient method: full-graph, checkpointed, continuous or mp-adjoint (default: checkpointed
    /// in f32, mp-adjoint in 16 bits).
    #[arg(long)]
    gradient: Option<String>,
    /// Adjoint scaling of the mixed-precision adjoint: dynamic (default) or none.
    #[arg(long)]
    scaling: Option<String>,
    /// RK4 steps for training (validation and test use twice as many).
    #[arg(long, default_value_t = 8)]
    steps: usize,
    #[arg(long, default_value_t = 1000)]
    iters: usize,
    #[arg(long, default_value_t = 1024)]
    batch: usize,
    /// Width of Φ's ResNet (OT-Flow) or of the two hidden layers (CNF).
    #[arg(long, default_value_t = 32)]
    width: usize,
    /// Learning rate (default 0.05 for OT-Flow, 0.01 for the CNF).
    #[arg(long)]
    lr: Option<f64>,
    /// Train on the raw data instead of standardising each column to mean 0, scale 1.
    #[arg(long)]
    no_standardize: bool,
    /// Write the training checkpoint every this many iterations.
    #[arg(long, default_value_t = 10)]
    checkpoint_every: usize,
    /// Output folder: model.safetensors, checkpoint.safetensors, run.json.
    #[arg(long, default_value = "target/train")]
    out: PathBuf,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, default_value = "cpu")]
    device: String,
}

#[derive(Args, Debug)]
pub struct TrainArgs {
    #[command(flatten)]
    run: RunArgs,
    /// Continue the run whose output folder is DIR, with the settings stored there (give no
    /// other option).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["model", "data", "precision", "gradient", "scaling", "steps", "iters", "batch", "width", "lr", "no_standardize", "checkpoint_every", "out", "seed", "device"])]
    resume: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct SampleArgs {
    /// Folder written by `train` (model.safetensors).
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

fn text(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Training, validation and test data, and where they came from.
fn load_splits(spec: &str, seed: u64) -> Result<Splits, String> {
    if let Ok(toy) = spec.parse::<Toy2d>() {
        return Ok(Splits {
            train: toy.sample(20_000, seed),
            validation: toy.sample(2_000, seed + 1),
            test: toy.sample(2_000, seed + 2),
            source: format!("toy {toy}"),
        });
    }
    let m = load_matrix(Path::new(spec)).map_err(text)?;
    Splits::shuffled(&m, 0.1, 0.1, seed, spec).map_err(text)
}

/// The gradient mode the options name, or why they do not fit together.
fn gradient_mode(args: &RunArgs, precision: Precision) -> Result<GradientMode, String> {
    let method = match &args.gradient {
        Some(g) => g.parse().map_err(text)?,
        None if precision.is_half() => GradientMethod::MixedAdjoint,
        None => GradientMethod::Checkpointed,
    };
    let scaling = args.scaling.as_deref().map(str::parse::<Scaling>).transpose().map_err(text)?;
    GradientMode::for_precision(method, precision, scaling).map_err(text)
}

/// `cargo xtask train`: one process, or one rank of the group an MPI launcher started (an
/// error on any rank ends the group). Under a launcher, `--device cuda` means the rank's own
/// GPU, `cuda:{local rank}`.
pub fn run_train(args: &TrainArgs) -> Result<(), String> {
    let (run, resuming) = match &args.resume {
        Some(dir) => {
            let path = dir.join("run.json");
            let stored = std::fs::read_to_string(&path)
                .map_err(|e| format!("{}: {e} (is {} the output folder of a training run?)", path.display(), dir.display()))?;
            let run: RunArgs = serde_json::from_str(&stored).map_err(|e| format!("{}: {e}", path.display()))?;
            (RunArgs { out: dir.clone(), ..run }, true)
        }
        None => (args.run.clone(), false),
    };
    let device = match run.device.as_str() {
        "cuda" if train::comm::launched_by_mpi().is_some() => format!("cuda:{}", train::comm::local_rank()),
        other => other.to_string(),
    };
    let device = tensor_core::parse_device(&device).map_err(text)?;
    let comm = train::comm::from_environment(&device).map_err(text)?;
    let result = train_rank(&run, resuming, &device, comm.as_ref());
    if let Err(e) = &result {
        if comm.size() > 1 {
            eprintln!("error on rank {} of {}: {e}", comm.rank(), comm.size());
            comm.abort(1);
        }
    }
    result
}

fn train_rank(run: &RunArgs, resuming: bool, device: &Device, comm: &dyn Communicator) -> Result<(), String> {
    let root = comm.rank() == 0;
    let kind = run.model.ok_or("name the model to train (ot-flow or cnf), or --resume DIR")?;
    let spec = run.data.as_deref().ok_or("--data is required: a toy name (8gaussians, moons, …) or a .npy / .csv file")?;
    let precision: Precision = run.precision.parse().map_err(text)?;
    if precision == Precision::F64 {
        return Err("--precision f64 is not offered for training; use f32, bf16 or f16".into());
    }
    let mode = gradient_mode(run, precision)?;
    let lr = run.lr.unwrap_or(if kind == ModelKind::OtFlow { 0.05 } else { 1e-2 });
    let schedule = match kind {
        ModelKind::OtFlow => LrSchedule::StepDecay { every: 100.max(run.iters / 5), factor: 2.0 },
        ModelKind::Cnf => LrSchedule::Plateau { factor: 2.0, patience: 10, max_drops: 3 },
    };
    let cfg = TrainConfig::default()
        .iters(run.iters)
        .batch(run.batch)
        .lr(lr)
        .schedule(schedule)
        .steps(run.steps)
        .val_steps(2 * run.steps)
        .val_every((run.iters / 20).max(1))
        .early_stopping(if kind == ModelKind::OtFlow { Some(10) } else { None })
        .mode(mode)
        .seed(run.seed)
        .checkpoint_dir(Some(run.out.clone()))
        .checkpoint_every(run.checkpoint_every);
    cfg.validate().map_err(text)?;
    let splits = load_splits(spec, run.seed)?;
    let standardization = if run.no_standardize {
        Standardization::identity(splits.train.cols)
    } else {
        Standardization::fit(&splits.train).map_err(text)?
    };
    let tensor = |m: &Matrix| -> Result<Tensor, String> { standardization.apply(m).map_err(text)?.to_tensor(device).map_err(text) };
    let data = [tensor(&splits.train)?, tensor(&splits.validation)?, tensor(&splits.test)?];
    if !resuming && root {
        std::fs::create_dir_all(&run.out).map_err(|e| format!("{}: {e}", run.out.display()))?;
        write_atomic(&run.out.join("run.json"), serde_json::to_string_pretty(&run).map_err(text)?.as_bytes()).map_err(text)?;
    }
    let dim = splits.train.cols;
    let group = if comm.size() > 1 { format!(", data-parallel over {} ranks ({})", comm.size(), comm.backend()) } else { String::new() };
    if root {
        println!(
            "{} {kind:?} on {} (d = {dim}; {} train / {} validation / {} test samples; {}), {} evaluation, {mode:?}{group}",
            if resuming { "resuming" } else { "training" },
            splits.source,
            splits.train.rows,
            splits.validation.rows,
            splits.test.rows,
            if run.no_standardize { "raw".into() } else { format!("standardised, Σ log σ = {:.3}", standardization.log_det()) },
            precision.name()
        );
    }
    let session =
        Session { run, cfg: &cfg, data: &data, standardization: &standardization, source: &splits.source, resuming, device, comm };
    let vm = VarMap::new();
    let mut rng = SeededRng::new(run.seed);
    let mut pb = ParamBuilder::new(&vm, &mut rng, DType::F32, device);
    match kind {
        ModelKind::OtFlow => {
            session.fit(&OtFlow::new(&mut pb, OtFlowConfig { dim, width: run.width, ..OtFlowConfig::toy() }).map_err(text)?, &vm)
        }
        ModelKind::Cnf => session.fit(&Cnf::<ConcatSquashLinear>::new(&mut pb, cnf_config(dim, run.width)).map_err(text)?, &vm),
    }
}

/// The CNF `train` builds: concat-squash d → width → width → d with tanh, the exact trace up to
/// d = 8 and Rademacher–Hutchinson above.
pub fn cnf_config(dim: usize, width: usize) -> CnfConfig {
    let trace = if dim <= 8 { TraceEstimator::Exact } else { TraceEstimator::Hutchinson { rademacher: true } };
    CnfConfig { trace, net: cnf::VelocityNet::ConcatSquash { hidden: vec![width, width], activation: tensor_core::Activation::Tanh }, dim }
}

/// One training run's inputs.
struct Session<'a> {
    run: &'a RunArgs,
    cfg: &'a TrainConfig,
    /// Standardised training, validation and test data.
    data: &'a [Tensor; 3],
    standardization: &'a Standardization,
    source: &'a str,
    resuming: bool,
    device: &'a Device,
    /// The data-parallel group (a single process unless an MPI launcher started this one).
    comm: &'a dyn Communicator,
}

impl Session<'_> {
    /// Trains (or resumes) `model`, saves the best parameters with the configuration and the
    /// standardisation, and prints the test NLL in the data's units.
    fn fit<M: Trainable + ContinuousFlow + ModelFile>(&self, model: &M, vm: &VarMap) -> Result<(), String> {
        let root = self.comm.rank() == 0;
        let bar = if root { ProgressBar::new(self.cfg.iters as u64) } else { ProgressBar::hidden() };
        bar.set_style(ProgressStyle::with_template("[{bar:30}] {pos}/{len} {msg} (ETA {eta})").map_err(text)?.progress_chars("=> "));
        let log_det = self.standardization.log_det();
        let mut val_nll = f64::NAN;
        let mut on = |r: &TrainRecord| {
            if let Some(v) = r.validation.as_ref().and_then(|v| v.get("nll")) {
                val_nll = v + log_det;
            }
            bar.set_position(r.iter as u64);
            bar.set_message(format!(
                "loss {:.4} val NLL {val_nll:.4} lr {:.1e}{}",
                r.loss,
                r.lr,
                if r.degraded { " (underflow flagged)" } else { "" }
            ));
        };
        let [train_x, val_x, test_x] = self.data;
        let outcome = if self.resuming {
            train::resume_distributed(model, vm, train_x, val_x, self.cfg, self.comm, &mut on)
        } else {
            train::train_distributed(model, vm, train_x, val_x, self.cfg, self.comm, &mut on)
        }
        .map_err(text)?;
        bar.finish();
        if !root {
            return Ok(());
        }
        let steps = 2 * self.run.steps;
        let test_nll = model
            .log_prob(test_x, steps)
            .map_err(text)?
            .neg()
            .and_then(|t| t.mean_all())
            .and_then(|t| t.to_dtype(DType::F64))
            .and_then(|t| t.to_scalar::<f64>())
            .map_err(text)?
            + log_det;
        let path = self.run.out.join("model.safetensors");
        let extra = json!({"standardization": self.standardization, "data": self.source, "steps": steps});
        model.save(vm, &path, &extra).map_err(text)?;
        let best = outcome.best.as_ref().map_or("no validation".into(), |(i, m)| {
            format!("best validation NLL {:.4} at iteration {i}", m.get("nll").unwrap_or(f64::NAN) + log_det)
        });
        println!("{} iterations ({best}); test NLL {test_nll:.4} nats in the data's units; saved {}", outcome.last_iter, path.display());
        if !self.device.is_cpu() {
            println!(
                "(on {}: a resumed run is bit-identical to an uninterrupted one only on the CPU)",
                tensor_core::device_name(self.device)
            );
        }
        Ok(())
    }
}

/// `cargo xtask sample`.
pub fn run_sample(args: &SampleArgs) -> Result<(), String> {
    let path = args.model.join("model.safetensors");
    if !path.exists() {
        return Err(format!("{}: not found (run `cargo xtask train … --out {}` first)", path.display(), args.model.display()));
    }
    match model_kind(&path).map_err(text)?.as_str() {
        "ot-flow" => draw::<OtFlow>(args, &path),
        "cnf" => draw::<Cnf<ConcatSquashLinear>>(args, &path),
        other => Err(format!("{}: a '{other}' model, which `sample` does not know", path.display())),
    }
}

/// Loads the model at `path`, samples `args.n` points and writes them in the data's units.
fn draw<M: ContinuousFlow + ModelFile>(args: &SampleArgs, path: &Path) -> Result<(), String> {
    let device = Device::Cpu;
    let loaded = M::load(path, &device).map_err(text)?;
    let dim = loaded.model.dim();
    let standardization: Standardization = match loaded.extra.get("standardization") {
        Some(s) => serde_json::from_value(s.clone()).map_err(|e| format!("{}: corrupt standardisation ({e})", path.display()))?,
        None => Standardization::identity(dim),
    };
    let z = SeededRng::new(args.seed).normal((args.n, dim), DType::F32, &device).map_err(text)?;
    let x = loaded.model.sample(&z, args.steps).map_err(text)?;
    let rows = x.to_vec2::<f32>().map_err(text)?;
    let m = standardization.undo(&Matrix { data: rows.iter().flatten().copied().collect(), rows: args.n, cols: dim }).map_err(text)?;
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    match args.out.extension().and_then(|e| e.to_str()) {
        Some("csv") => write_csv(&args.out, &m),
        _ => write_npy(&args.out, &m),
    }
    .map_err(text)?;
    println!("wrote {} samples to {}", args.n, args.out.display());
    if dim == 2 && args.n > 0 {
        let pts: Vec<(f64, f64)> = (0..m.rows).map(|i| (m.row(i)[0] as f64, m.row(i)[1] as f64)).collect();
        let lim = pts.iter().fold(1e-6f64, |a, p| a.max(p.0.abs()).max(p.1.abs())) * 1.1;
        let png = args.out.with_extension("png");
        let source = loaded.extra.get("data").and_then(|d| d.as_str()).unwrap_or("");
        panels(
            &png,
            &format!("{source} samples"),
            &[M::KIND.to_string()],
            &["samples"],
            &[vec![Panel::Scatter { clouds: vec![(pts, RGBColor(200, 30, 30))] }]],
            -lim,
            lim,
        )?;
        println!("wrote {}", png.display());
    }
    Ok(())
}
