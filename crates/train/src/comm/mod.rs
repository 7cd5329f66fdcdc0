//! Data parallelism across processes: the [`Communicator`] a training run all-reduces through,
//! and its backends.
//!
//! The practice of PyTorch DDP and Horovod ("Horovod: fast and easy distributed deep learning in
//! TensorFlow", Sergeev & Del Balso, 2018): every rank holds the whole model, computes the
//! gradient of its shard of each minibatch, and one all-reduce per step sums the shards'
//! gradients, so every rank applies the same update.
//!
//! - [`SingleProcess`]: one rank, every reduction the identity (what [`crate::train`] uses);
//! - [`LocalGroup`]: ranks as threads of one process (tests, and a machine without MPI);
//! - `Mpi` (feature `mpi`): processes started by `mpirun`, on one machine or many (rsmpi over
//!   the system's MPI library: OpenMPI, MPICH);
//! - `Nccl` (feature `nccl`, which needs `cuda` and `mpi`): the gradient all-reduce on the GPUs
//!   by NCCL, MPI for the rest (starting up, the small figures).

mod local;
#[cfg(feature = "mpi")]
mod mpi;
#[cfg(feature = "nccl")]
mod nccl;

#[cfg(feature = "mpi")]
pub use self::mpi::Mpi;
pub use local::LocalGroup;
#[cfg(feature = "nccl")]
pub use nccl::Nccl;

use crate::error::{Result, TrainError};
use candle_core::{DType, Tensor};

/// A group of ranks that reduce together. Every rank must make the same calls in the same order
/// (a collective that one rank skips leaves the others waiting: a failing rank calls
/// [`Communicator::abort`]).
pub trait Communicator {
    /// This process's rank, 0 ≤ rank < size.
    fn rank(&self) -> usize;
    /// The number of ranks.
    fn size(&self) -> usize;
    /// The backend's name, for reports (`single process`, `threads`, `MPI`, `NCCL`).
    fn backend(&self) -> String;
    /// Sums `values` elementwise over the ranks, in place; every rank ends with the same sums.
    fn all_reduce_sum(&self, values: &mut [f64]) -> Result<()>;
    /// Elementwise minimum over the ranks, in place.
    fn all_reduce_min(&self, values: &mut [f64]) -> Result<()>;
    /// Sums an f32 buffer over the ranks, in place (the host path of the gradient all-reduce).
    fn all_reduce_sum_f32(&self, values: &mut [f32]) -> Result<()>;
    /// Sums a 1-D f32 tensor over the ranks: the gradient all-reduce. By default through host
    /// memory with [`Communicator::all_reduce_sum_f32`]; NCCL keeps it on the device.
    fn all_reduce_tensor(&self, t: &Tensor) -> Result<Tensor> {
        let mut host = t.to_dtype(DType::F32)?.to_vec1::<f32>()?;
        self.all_reduce_sum_f32(&mut host)?;
        Ok(Tensor::from_vec(host, t.dims(), t.device())?)
    }
    /// Ends the whole group with `code`: what a rank that hit an error does, so the others do
    /// not wait for it in a collective.
    fn abort(&self, code: i32) -> !;
}

/// One rank: every reduction is the identity.
#[derive(Clone, Copy, Debug, Default)]
pub struct SingleProcess;

impl Communicator for SingleProcess {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn backend(&self) -> String {
        "single process".into()
    }
    fn all_reduce_sum(&self, _: &mut [f64]) -> Result<()> {
        Ok(())
    }
    fn all_reduce_min(&self, _: &mut [f64]) -> Result<()> {
        Ok(())
    }
    fn all_reduce_sum_f32(&self, _: &mut [f32]) -> Result<()> {
        Ok(())
    }
    fn all_reduce_tensor(&self, t: &Tensor) -> Result<Tensor> {
        Ok(t.clone())
    }
    fn abort(&self, code: i32) -> ! {
        std::process::exit(code)
    }
}

/// The number of ranks when an MPI launcher (`mpirun` / `mpiexec` of OpenMPI or MPICH, `srun`
/// with PMI) started this process as one of several, read from the launchers' environment
/// variables without initialising MPI.
pub fn launched_by_mpi() -> Option<usize> {
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MPI_LOCALNRANKS"]
        .iter()
        .find_map(|k| std::env::var(k).ok()?.trim().parse::<usize>().ok())
        .filter(|&n| n > 1)
}

/// The communicator this process's environment asks for: MPI's world when an MPI launcher
/// started it (and this build has the `mpi` feature) — with NCCL for the gradients when
/// `device` is a GPU and the build has `nccl` — else a single process. A launch by `mpirun`
/// without the feature is an error that says how to build, not N copies training alone.
#[cfg_attr(not(feature = "nccl"), allow(unused_variables))]
pub fn from_environment(device: &candle_core::Device) -> Result<Box<dyn Communicator>> {
    match launched_by_mpi() {
        #[cfg(feature = "nccl")]
        Some(_) if device.is_cuda() => Ok(Box::new(Nccl::init(Mpi::init()?, device)?)),
        #[cfg(feature = "mpi")]
        Some(_) => Ok(Box::new(Mpi::init()?)),
        #[cfg(not(feature = "mpi"))]
        Some(n) => Err(TrainError::Config(format!(
            "started by an MPI launcher as one of {n} ranks, but built without MPI: build with the `mpi` feature \
             (cargo build --release -p xtask --features mpi; needs libopenmpi-dev and libclang-dev)"
        ))),
        None => Ok(Box::new(SingleProcess)),
    }
}

/// This rank's index among the ranks on its machine, from the launcher's environment (0 when
/// not launched by MPI): the GPU a rank should use, `cuda:{local_rank}`.
pub fn local_rank() -> usize {
    ["OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID"]
        .iter()
        .find_map(|k| std::env::var(k).ok()?.trim().parse().ok())
        .unwrap_or(0)
}

/// Rows `[start, start + len)` of `n` that rank `rank` of `size` takes: contiguous shards whose
/// sizes differ by at most one, in rank order, so their union is the whole batch.
pub fn shard(n: usize, rank: usize, size: usize) -> (usize, usize) {
    let (base, extra) = (n / size, n % size);
    let start = rank * base + rank.min(extra);
    (start, base + usize::from(rank < extra))
}

/// Bytes and seconds a run spent in the gradient all-reduce.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CommStats {
    /// All-reduce calls (buckets) made.
    pub calls: usize,
    /// Bytes all-reduced (the payload each rank contributes).
    pub bytes: usize,
    /// Wall seconds inside the all-reduce calls.
    pub seconds: f64,
}

/// Gradients are all-reduced in buckets of at most this many f32 values (16 MiB): large enough
/// to amortise the per-call latency, small enough not to double a big model's memory at once.
pub const BUCKET_VALUES: usize = 4 << 20;

/// Sums `weight · tensors[i]` over the ranks, bucketed, accumulating in f32 whatever the
/// tensors' dtype; returns the sums in each tensor's own shape and dtype.
pub fn all_reduce_weighted(comm: &dyn Communicator, tensors: &[Tensor], weight: f64, stats: &mut CommStats) -> Result<Vec<Tensor>> {
    let mut out = Vec::with_capacity(tensors.len());
    let mut begin = 0;
    while begin < tensors.len() {
        let mut end = begin + 1;
        let mut values = tensors[begin].elem_count();
        while end < tensors.len() && values + tensors[end].elem_count() <= BUCKET_VALUES {
            values += tensors[end].elem_count();
            end += 1;
        }
        let flat: Vec<Tensor> = tensors[begin..end]
            .iter()
            .map(|t| t.to_dtype(DType::F32)?.flatten_all()?.affine(weight, 0.0))
            .collect::<candle_core::Result<_>>()?;
        let bucket = Tensor::cat(&flat, 0)?;
        let clock = std::time::Instant::now();
        let summed = comm.all_reduce_tensor(&bucket)?;
        stats.seconds += clock.elapsed().as_secs_f64();
        stats.calls += 1;
        stats.bytes += 4 * values;
        let mut offset = 0;
        for t in &tensors[begin..end] {
            let n = t.elem_count();
            out.push(summed.narrow(0, offset, n)?.reshape(t.dims())?.to_dtype(t.dtype())?);
            offset += n;
        }
        begin = end;
    }
    Ok(out)
}

/// Makes every rank's `tensors` equal to rank 0's (the sum of rank 0's values and zeros).
pub fn broadcast_from_root(comm: &dyn Communicator, tensors: &[Tensor], stats: &mut CommStats) -> Result<Vec<Tensor>> {
    all_reduce_weighted(comm, tensors, if comm.rank() == 0 { 1.0 } else { 0.0 }, stats)
}

/// An error for a setting data parallelism cannot run with.
pub(crate) fn check_group(comm: &dyn Communicator, batch: usize, validation_rows: usize) -> Result<()> {
    let size = comm.size();
    if size == 0 || comm.rank() >= size {
        return Err(TrainError::Config(format!("rank {} of a group of {size}", comm.rank())));
    }
    if batch < size || validation_rows < size {
        return Err(TrainError::Config(format!(
            "{size} ranks need at least one row each: the batch has {batch} rows and the validation split {validation_rows}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_the_batch_in_order() {
        for (n, size) in [(10, 3), (7, 7), (512, 2), (5, 4)] {
            let mut next = 0;
            for rank in 0..size {
                let (start, len) = shard(n, rank, size);
                assert_eq!(start, next);
                assert!(len == n / size || len == n / size + 1);
                next += len;
            }
            assert_eq!(next, n);
        }
    }
}
