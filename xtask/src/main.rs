//! `cargo xtask`: the one entry point for continuum's benchmark and reproduction suites.
//!
//! `cargo xtask bench [SUITE]… [--quick] [--device cpu|cuda] [--out DIR] [--seed N]` runs the
//! suites (all of them when none is named, or `all`), each row in a child process so its peak
//! memory is its own, and writes `DIR/<suite>.json`, `DIR/<suite>.md`, the suite's PNG plots, and
//! `DIR/index.md` linking every report in DIR with its run time.

mod data_parallel;
mod gpu_check;
mod plot;
mod report;
mod runner;
mod suites;
mod train_cli;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Freed tensors of 32 MiB and more are kept for the next step instead of going back to the OS
/// (see `tensor_core::alloc`); at most 1 GiB is held, or `CONTINUUM_BLOCK_CACHE_MIB` (0 turns the
/// cache off, to measure what it buys).
#[global_allocator]
static ALLOC: tensor_core::alloc::LargeBlockCache = tensor_core::alloc::LargeBlockCache::new(1 << 30);

/// Applies `CONTINUUM_BLOCK_CACHE_MIB` to the block cache.
fn configure_block_cache() -> Result<(), String> {
    match std::env::var("CONTINUUM_BLOCK_CACHE_MIB") {
        Ok(v) => {
            let mib: usize = v.trim().parse().map_err(|_| format!("CONTINUUM_BLOCK_CACHE_MIB must be a whole number of MiB, got '{v}'"))?;
            ALLOC.set_capacity(mib << 20);
            Ok(())
        }
        Err(_) => Ok(()),
    }
}

#[derive(Parser)]
#[command(name = "xtask", about = "continuum's benchmark and reproduction suites")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run benchmark suites and write JSON, Markdown and PNG results.
    Bench {
        /// Suites to run (none or `all`: every suite); see --list.
        suites: Vec<String>,
        /// The embedded-default preset: small sizes that finish in minutes on 2 CPU cores.
        #[arg(long)]
        quick: bool,
        /// Device: cpu, cuda or cuda:N.
        #[arg(long, default_value = "cpu")]
        device: String,
        /// Output folder (default: target/bench/).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Seed of every random draw.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// List the suites and exit.
        #[arg(long)]
        list: bool,
    },
    /// Run every suite's smallest row on a GPU and on the CPU with the same seed and compare
    /// (build with `--features cuda`): the first thing to run on a GPU machine.
    GpuCheck {
        /// Suites to check (default: all).
        suites: Vec<String>,
        /// The GPU to check.
        #[arg(long, default_value = "cuda")]
        device: String,
        /// Output folder for gpu-check.md (default: target/bench/).
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Train OT-Flow or a CNF on a toy set or your own .npy/.csv data.
    Train(train_cli::TrainArgs),
    /// Draw samples from a trained model (npy/csv, plus a PNG for 2-D data).
    Sample(train_cli::SampleArgs),
    /// Internal: a few data-parallel training iterations under the launching group (`mpirun`),
    /// timed, optionally checked against a single process.
    #[command(hide = true)]
    DataParallel(data_parallel::DataParallelArgs),
    /// Internal: run one row of a suite and print its result as one JSON line.
    #[command(hide = true)]
    BenchRow {
        #[arg(long)]
        suite: String,
        #[arg(long)]
        config: String,
        #[arg(long)]
        device: String,
        #[arg(long)]
        seed: u64,
    },
}

/// `target/bench/` of the workspace.
fn default_out() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap_or(std::path::Path::new(".")).join("target/bench")
}

fn main() {
    let cli = Cli::parse();
    let result = configure_block_cache().and_then(|()| match cli.command {
        Command::Bench { suites, quick, device, out, seed, list } => {
            if list {
                for s in suites::all() {
                    println!("{:<14} {}", s.name(), s.description());
                }
                Ok(())
            } else {
                runner::run_suites(&suites, quick, &device, &out.unwrap_or_else(default_out), seed)
            }
        }
        Command::GpuCheck { suites, device, out, seed } => gpu_check::run(&device, &suites, &out.unwrap_or_else(default_out), seed),
        Command::BenchRow { suite, config, device, seed } => runner::run_row(&suite, &config, &device, seed),
        Command::Train(args) => train_cli::run_train(&args),
        Command::Sample(args) => train_cli::run_sample(&args),
        Command::DataParallel(args) => data_parallel::run(&args),
    });
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
