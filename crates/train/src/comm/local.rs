//! Ranks as threads of one process: the reductions of an MPI group over shared memory, summed in
//! rank order so every rank gets the same bits. A rank that is dropped (returned early, or
//! panicked) while the others wait in a collective makes their call an error instead of a hang.

use super::Communicator;
use crate::error::{Result, TrainError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

/// What the ranks share: every rank's values of the current call, and a barrier that knows when
/// a rank has left.
struct State {
    slots: Vec<Vec<f64>>,
    arrived: usize,
    generation: u64,
    left: Option<usize>,
}

struct Shared {
    state: Mutex<State>,
    turn: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
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
        let state = State { slots: vec![Vec::new(); size], arrived: 0, generation: 0, left: None };
        let shared = Arc::new(Shared { state: Mutex::new(state), turn: Condvar::new() });
        (0..size).map(|rank| LocalGroup { rank, size, shared: shared.clone() }).collect()
    }

    /// Waits until every rank has arrived; an error if one left the group instead.
    fn barrier(&self) -> Result<()> {
        let mut st = self.shared.lock();
        let generation = st.generation;
        st.arrived += 1;
        if st.arrived == self.size {
            st.arrived = 0;
            st.generation += 1;
            self.shared.turn.notify_all();
            return Ok(());
        }
        loop {
            if let Some(r) = st.left {
                return Err(TrainError::Communication(format!("rank {r} left the group while rank {} waited in a collective", self.rank)));
            }
            st = self.shared.turn.wait(st).unwrap_or_else(PoisonError::into_inner);
            if st.generation != generation {
                return Ok(());
            }
        }
    }

    /// Every rank's `values` combined elementwise by `op`, in rank order.
    fn reduce(&self, values: &mut [f64], op: fn(f64, f64) -> f64) -> Result<()> {
        self.shared.lock().slots[self.rank] = values.to_vec();
        self.barrier()?;
        {
            let st = self.shared.lock();
            for (i, v) in values.iter_mut().enumerate() {
                *v = st.slots.iter().map(|s| s[i]).reduce(op).unwrap_or(*v);
            }
        }
        // nobody writes the next call's values before every rank has read this call's
        self.barrier()
    }
}

impl Drop for LocalGroup {
    /// Leaving: a rank still waiting for this one gets an error.
    fn drop(&mut self) {
        self.shared.lock().left.get_or_insert(self.rank);
        self.shared.turn.notify_all();
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
        self.reduce(values, |a, b| a + b)
    }
    fn all_reduce_min(&self, values: &mut [f64]) -> Result<()> {
        self.reduce(values, f64::min)
    }
    /// Summed in f64 and rounded once.
    fn all_reduce_sum_f32(&self, values: &mut [f32]) -> Result<()> {
        let mut wide: Vec<f64> = values.iter().map(|&v| v as f64).collect();
        self.reduce(&mut wide, |a, b| a + b)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_get_the_same_sums_and_a_rank_that_leaves_is_an_error_not_a_hang() {
        let sums: Vec<Vec<f64>> = std::thread::scope(|scope| {
            let handles: Vec<_> = LocalGroup::new(3)
                .into_iter()
                .map(|g| {
                    scope.spawn(move || {
                        let mut v = vec![g.rank as f64, 1.0];
                        g.all_reduce_sum(&mut v).unwrap();
                        let mut m = vec![10.0 - g.rank as f64];
                        g.all_reduce_min(&mut m).unwrap();
                        v.extend(m);
                        v
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(sums.iter().all(|s| s == &[3.0, 3.0, 8.0]), "{sums:?}");

        let mut group = LocalGroup::new(2);
        let waiting = group.remove(0);
        let leaving = group.remove(0);
        let handle = std::thread::spawn(move || waiting.all_reduce_sum(&mut [1.0]));
        drop(leaving);
        let err = handle.join().unwrap().unwrap_err();
        assert!(err.to_string().contains("rank 1 left the group"), "{err}");
    }
}
