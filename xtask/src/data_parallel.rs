//! `xtask data-parallel` (hidden): a few data-parallel training iterations of OT-Flow or a CNF
//! on the 8-Gaussians toy, as one rank of whatever group launched the process (`mpirun -n N`,
//! or a single process), timed; with `--compare`, rank 0 then trains the same model in a single
//! process on the same global batches and fails unless the parameters agree to 1e-6 relative in
//! f32 — the definition of correct data parallelism. `.ci/run` runs it under `mpirun -n 2`, and the
//! `scaling` suite times it.

use crate::train_cli::{cnf_config, ModelKind};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use clap::Args;
use cnf::Cnf;
use datasets::toy2d::Toy2d;
use ot_flow::{OtFlow, OtFlowConfig};
use serde_json::json;
use tensor_core::nets::ConcatSquashLinear;
use tensor_core::params::ParamBuilder;
use tensor_core::{Precision, SeededRng};
use train::{Communicator, GradientMethod, GradientMode, SingleProcess, TrainConfig, TrainRecord, Trainable};

/// The largest relative L2 difference of the parameters from the single-process run that
/// `--compare` accepts: f32 summation order in f32; in 16 bits, bf16's unit roundoff 2⁻⁸ (each
/// shard's adjoint is scaled and rounded for its own rows, so 16-bit runs agree only to 16-bit
/// precision).
fn tolerance(precision: Precision) -> f64 {
    if precision.is_half() {
        2f64.powi(-8)
    } else {
        1e-6
    }
}

#[derive(Args, Debug)]
pub struct DataParallelArgs {
    /// The model to train.
    #[arg(value_enum)]
    model: ModelKind,
    #[arg(long, default_value_t = 5)]
    iters: usize,
    /// The global batch (split over the ranks).
    #[arg(long, default_value_t = 256)]
    batch: usize,
    #[arg(long, default_value_t = 32)]
    width: usize,
    /// RK4 steps.
    #[arg(long, default_value_t = 8)]
    steps: usize,
    /// f32 (checkpointed adjoint), or bf16 / f16 (mixed-precision adjoint, dynamic scaling).
    #[arg(long, default_value = "f32")]
    precision: String,
    /// Rank 0 also trains in a single process and compares the parameters.
    #[arg(long)]
    compare: bool,
    /// Simulates a crash: rank RANK exits with status 3 after iteration ITER, telling no one.
    #[arg(long, num_args = 2, value_names = ["RANK", "ITER"])]
    crash: Option<Vec<usize>>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

fn text(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// `xtask data-parallel`: an error on any rank ends the whole group (`MPI_Abort`).
pub fn run(args: &DataParallelArgs) -> Result<(), String> {
    let comm = train::comm::from_environment(&Device::Cpu).map_err(text)?;
    let result = run_rank(args, comm.as_ref());
    if let Err(e) = &result {
        if comm.size() > 1 {
            eprintln!("error on rank {} of {}: {e}", comm.rank(), comm.size());
            comm.abort(1);
        }
    }
    result
}

fn run_rank(args: &DataParallelArgs, comm: &dyn Communicator) -> Result<(), String> {
    let precision: Precision = args.precision.parse().map_err(text)?;
    let method = if precision.is_half() { GradientMethod::MixedAdjoint } else { GradientMethod::Checkpointed };
    let mode = GradientMode::for_precision(method, precision, None).map_err(text)?;
    let cfg = TrainConfig::default()
        .iters(args.iters)
        .batch(args.batch)
        .lr(2e-2)
        .steps(args.steps)
        .val_steps(args.steps)
        .val_every(args.iters)
        .mode(mode)
        .seed(args.seed);
    let device = Device::Cpu;
    let data = |n, seed| Toy2d::EightGaussians.sample(n, seed).to_tensor(&device).map_err(text);
    let (train_x, val_x) = (data(20_000, args.seed)?, data(2_000, args.seed + 1)?);
    let run = Run { args, cfg: &cfg, train_x: &train_x, val_x: &val_x, comm, tolerance: tolerance(precision) };
    match args.model {
        ModelKind::OtFlow => run.go(|pb| OtFlow::new(pb, OtFlowConfig { width: args.width, ..OtFlowConfig::toy() }).map_err(text)),
        ModelKind::Cnf => run.go(|pb| Cnf::<ConcatSquashLinear>::new(pb, cnf_config(2, args.width)).map_err(text)),
    }
}

struct Run<'a> {
    args: &'a DataParallelArgs,
    cfg: &'a TrainConfig,
    train_x: &'a Tensor,
    val_x: &'a Tensor,
    comm: &'a dyn Communicator,
    tolerance: f64,
}

impl Run<'_> {
    /// Trains a model from `make` on this rank; rank 0 prints one JSON line.
    fn go<M: Trainable>(&self, make: impl Fn(&mut ParamBuilder) -> Result<M, String>) -> Result<(), String> {
        let (rank, size) = (self.comm.rank(), self.comm.size());
        let build = || -> Result<(M, VarMap), String> {
            let vm = VarMap::new();
            let model = make(&mut ParamBuilder::new(&vm, &mut SeededRng::new(self.args.seed), DType::F32, &Device::Cpu))?;
            Ok((model, vm))
        };
        let (model, vm) = build()?;
        let mut stamps = Vec::new();
        let mut on = |r: &TrainRecord| {
            if self.args.crash.as_deref() == Some(&[rank, r.iter]) {
                eprintln!("rank {rank}: simulated crash after iteration {}", r.iter);
                std::process::exit(3);
            }
            stamps.push(r.seconds);
        };
        let start = std::time::Instant::now();
        let out = train::train_distributed(&model, &vm, self.train_x, self.val_x, self.cfg, self.comm, &mut on).map_err(text)?;
        let total = start.elapsed().as_secs_f64();
        if rank != 0 {
            return Ok(());
        }
        // iteration times from the records' stamps; the median leaves out the first (warm-up)
        // and the last (which validates)
        let mut per_iter: Vec<f64> = stamps.windows(2).map(|w| w[1] - w[0]).collect();
        per_iter.sort_by(f64::total_cmp);
        let iters = out.last_iter.max(1) as f64;
        let mut row = json!({
            "ranks": size,
            "backend": self.comm.backend(),
            "threads_per_rank": std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "all".into()),
            "seconds_per_iter": per_iter.get(per_iter.len() / 2).copied().unwrap_or(total / iters),
            "samples_per_second": self.cfg.batch as f64 / per_iter.get(per_iter.len() / 2).copied().unwrap_or(total / iters),
            "comm_seconds_per_iter": out.communication.seconds / iters,
            "bytes_per_iter": out.communication.bytes as f64 / iters,
            "final_loss": out.history.last().map_or(f64::NAN, |r| r.loss),
        });
        if self.args.compare {
            let (single, single_vm) = build()?;
            train::train_distributed(&single, &single_vm, self.train_x, self.val_x, self.cfg, &SingleProcess, &mut |_| {}).map_err(text)?;
            let (ours, reference) = (flat_params(&vm)?, flat_params(&single_vm)?);
            let norm = reference.iter().map(|v| v * v).sum::<f64>().sqrt();
            let diff = ours.iter().zip(&reference).map(|(a, b)| (a - b) * (a - b)).sum::<f64>().sqrt();
            let moved = flat_params(&build()?.1)?.iter().zip(&reference).map(|(a, b)| (a - b) * (a - b)).sum::<f64>().sqrt();
            row["relative_difference"] = json!(diff / norm);
            row["tolerance"] = json!(self.tolerance);
            row["relative_change_from_init"] = json!(moved / norm);
            println!("{row}");
            if diff > self.tolerance * norm || moved == 0.0 {
                return Err(format!(
                    "{size} ranks ended {:.3e} (relative) from the single-process run, more than {:.1e} (the parameters moved {:.3e} from their start)",
                    diff / norm,
                    self.tolerance,
                    moved / norm
                ));
            }
        } else {
            println!("{row}");
        }
        Ok(())
    }
}

/// Every parameter of `vm`, in name order, as f64.
fn flat_params(vm: &VarMap) -> Result<Vec<f64>, String> {
    let mut out = Vec::new();
    for (_, t) in train::checkpoint::named_vars(vm, "") {
        out.extend(t.flatten_all().and_then(|t| t.to_dtype(DType::F64)).and_then(|t| t.to_vec1::<f64>()).map_err(text)?);
    }
    Ok(out)
}
