//! MPI ranks through rsmpi: the processes `mpirun -n N` (or `srun`, `mpiexec`) starts, on one
//! machine or several. MPI's default error handler (errors are fatal) turns a failed
//! collective into the end of the job rather than a hang, and [`Communicator::abort`] is
//! `MPI_Abort`.

use super::Communicator;
use crate::error::{Result, TrainError};
use mpi::collective::{CommunicatorCollectives, SystemOperation};
use mpi::environment::Universe;
use mpi::topology::{Communicator as _, SimpleCommunicator};

/// `MPI_COMM_WORLD`. MPI is finalised when this is dropped; a process initialises it once.
pub struct Mpi {
    pub(super) world: SimpleCommunicator,
    // dropped last: finalises MPI
    _universe: Universe,
}

impl Mpi {
    /// Initialises MPI (once per process). Run under `mpirun`; without a launcher it is a group
    /// of one.
    pub fn init() -> Result<Self> {
        let universe = mpi::initialize()
            .ok_or_else(|| TrainError::Config("MPI was already initialised in this process (create one Mpi and share it)".into()))?;
        Ok(Self { world: universe.world(), _universe: universe })
    }

    /// The name of the machine this rank runs on (`MPI_Get_processor_name`).
    pub fn processor_name(&self) -> String {
        mpi::environment::processor_name().unwrap_or_else(|_| "unknown".into())
    }

    fn reduce<T: mpi::datatype::Equivalence + Copy>(&self, values: &mut [T], op: SystemOperation) {
        let send = values.to_vec();
        self.world.all_reduce_into(&send[..], values, op);
    }
}

impl Communicator for Mpi {
    fn rank(&self) -> usize {
        self.world.rank() as usize
    }
    fn size(&self) -> usize {
        self.world.size() as usize
    }
    fn backend(&self) -> String {
        let (major, minor) = mpi::environment::version();
        let library = mpi::environment::library_version().unwrap_or_default();
        format!("MPI {major}.{minor} ({})", library.split([',', '\n', '\0']).next().unwrap_or("").trim())
    }
    fn all_reduce_sum(&self, values: &mut [f64]) -> Result<()> {
        self.reduce(values, SystemOperation::sum());
        Ok(())
    }
    fn all_reduce_min(&self, values: &mut [f64]) -> Result<()> {
        self.reduce(values, SystemOperation::min());
        Ok(())
    }
    fn all_reduce_sum_f32(&self, values: &mut [f32]) -> Result<()> {
        self.reduce(values, SystemOperation::sum());
        Ok(())
    }
    fn abort(&self, code: i32) -> ! {
        self.world.abort(code)
    }
}
