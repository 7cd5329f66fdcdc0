//! Ranks as threads of one process: the reductions of an MPI group over shared memory, summed in
//! rank order so every rank gets the same bits.

use super::Communicator;
use crate::error::Result;
use std::sync::{Arc, Barrier, Mutex};

struct Shared {
    barrier: Barrier,
    slots: Mutex<Vec<Vec<f64>>>,
}

/// One rank of a group of threads; [`LocalGroup::new`] makes all of them, one per thread.
pub struct LocalGroup {
    rank: usize,
    size: usize,
    shared: Arc<Shared>,
}

impl LocalGroup {
    /// A group of `size` ranks, to be moved into `size` threads that train together.
    pub fn new(size: usize) -> Vec<LocalGroup> {
        let shared = Arc::new(Shared { barrier: Barrier::new(size), slots: Mutex::new(vec![Vec::new(); size]) });
        (0..size).map(|rank| LocalGroup { rank, size, shared: shared.clone() }).collect()
    }

    /// Every rank's `values` combined elementwise by `op`, in rank order.
    fn reduce(&self, values: &mut [f64], op: fn(f64, f64) -> f64) {
        self.shared.slots.lock().expect("a rank panicked")[self.rank] = values.to_vec();
        self.shared.barrier.wait();
        {
            let slots = self.shared.slots.lock().expect("a rank panicked");
            for (i, v) in values.iter_mut().enumerate() {
                *v = slots.iter().map(|s| s[i]).reduce(op).unwrap_or(*v);
            }
        }
        // nobody writes the next call's values before every rank has read this call's
        self.shared.barrier.wait();
    }
}

impl Communicator for LocalGroup {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.size
    }
    fn backend(&self) -> String {
        format!("{} threads", self.size)
    }
    fn all_reduce_sum(&self, values: &mut [f64]) -> Result<()> {
        self.reduce(values, |a, b| a + b);
        Ok(())
    }
    fn all_reduce_min(&self, values: &mut [f64]) -> Result<()> {
        self.reduce(values, f64::min);
        Ok(())
    }
    /// Summed in f64 and rounded once.
    fn all_reduce_sum_f32(&self, values: &mut [f32]) -> Result<()> {
        let mut wide: Vec<f64> = values.iter().map(|&v| v as f64).collect();
        self.reduce(&mut wide, |a, b| a + b);
        for (v, w) in values.iter_mut().zip(wide) {
            *v = w as f32;
        }
        Ok(())
    }
    /// Threads share the process: ends it.
    fn abort(&self, code: i32) -> ! {
        std::process::exit(code)
    }
}
