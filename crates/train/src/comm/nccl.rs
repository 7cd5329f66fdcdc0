//! NCCL for the gradient all-reduce, between the GPUs' memories without a trip through the
//! host; MPI starts the group (rank 0's NCCL id is broadcast over it) and carries the small
//! figures (losses, validation, the adjoint scale). One GPU per rank.

use super::mpi::Mpi;
use super::Communicator;
use crate::error::{Result, TrainError};
use candle_core::cuda::cudarc::nccl::safe::{Comm, Id, ReduceOp};
use candle_core::op::BackpropOp;
use candle_core::{CudaDevice, CudaStorage, DType, Device, Storage, Tensor};
use mpi::collective::Root;
use mpi::topology::Communicator as _;

/// NCCL over the ranks of an MPI world, one CUDA device per rank.
pub struct Nccl {
    comm: Comm,
    device: CudaDevice,
    mpi: Mpi,
}

fn nccl_error(what: &str, e: impl std::fmt::Debug) -> TrainError {
    TrainError::Communication(format!("NCCL {what}: {e:?}"))
}

impl Nccl {
    /// A NCCL communicator over `mpi`'s ranks, on `device`: this rank's GPU (`cuda:N` with N the
    /// rank's index on its machine, so that no two ranks share a GPU).
    pub fn init(mpi: Mpi, device: &Device) -> Result<Self> {
        let Device::Cuda(device) = device else {
            return Err(TrainError::Config(format!("NCCL reduces on CUDA devices; this rank runs on {device:?}")));
        };
        let mut id = if mpi.rank() == 0 { *Id::new().map_err(|e| nccl_error("id", e))?.internal() } else { [0; 128] };
        mpi.world.process_at_rank(0).broadcast_into(&mut id[..]);
        let comm = Comm::from_rank(device.cuda_stream(), mpi.rank(), mpi.size(), Id::uninit(id)).map_err(|e| nccl_error("init", e))?;
        Ok(Self { comm, device: device.clone(), mpi })
    }
}

impl Communicator for Nccl {
    fn rank(&self) -> usize {
        self.mpi.rank()
    }
    fn size(&self) -> usize {
        self.mpi.size()
    }
    fn backend(&self) -> String {
        format!("NCCL (started by {})", self.mpi.backend())
    }
    fn all_reduce_sum(&self, values: &mut [f64]) -> Result<()> {
        self.mpi.all_reduce_sum(values)
    }
    fn all_reduce_min(&self, values: &mut [f64]) -> Result<()> {
        self.mpi.all_reduce_min(values)
    }
    fn all_reduce_sum_f32(&self, values: &mut [f32]) -> Result<()> {
        self.mpi.all_reduce_sum_f32(values)
    }
    /// On the device: NCCL sums the f32 buffer into a fresh one on the rank's GPU.
    fn all_reduce_tensor(&self, t: &Tensor) -> Result<Tensor> {
        let t = t.to_dtype(DType::F32)?.contiguous()?;
        let n = t.elem_count();
        let summed = {
            let (storage, layout) = t.storage_and_layout();
            let Storage::Cuda(storage) = &*storage else {
                return Err(TrainError::Config(format!("NCCL reduces CUDA tensors; the gradients are on {:?}", t.device())));
            };
            let start = layout.start_offset();
            let src = storage.as_cuda_slice::<f32>()?.slice(start..start + n);
            let mut dst = self.device.alloc_zeros::<f32>(n)?;
            self.comm.all_reduce(&src, &mut dst, &ReduceOp::Sum).map_err(|e| nccl_error("all-reduce", e))?;
            dst
        };
        let storage = Storage::Cuda(CudaStorage::wrap_cuda_slice(summed, self.device.clone()));
        Ok(Tensor::from_storage(storage, t.dims(), BackpropOp::none(), false))
    }
    fn abort(&self, code: i32) -> ! {
        self.mpi.abort(code)
    }
}
