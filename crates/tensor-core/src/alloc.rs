//! A global allocator that keeps freed large blocks for reuse: [`LargeBlockCache`].
//!
//! glibc serves blocks above its mmap threshold (32 MiB at most) with a fresh `mmap` and gives
//! them back with `munmap` on free, so every large tensor of a training step — the (m, B, d)
//! Jacobians of OT-Flow's Laplacian are 66 MB at d = 63, m = 512, B = 512 — costs a page fault
//! and a page clear per 4 KiB, every step. A step allocates the same sizes step after step, so
//! keeping freed blocks by exact (size, alignment) and handing them back on the next request of
//! that size removes that cost. Smaller blocks go straight to the system allocator (glibc's heap
//! already reuses them). The cache holds at most a fixed number of bytes and blocks, evicting the
//! oldest; [`LargeBlockCache::release`] gives everything back to the system.
//!
//! A binary opts in with
//! ```
//! #[global_allocator]
//! static ALLOC: tensor_core::alloc::LargeBlockCache = tensor_core::alloc::LargeBlockCache::new(1 << 30);
//! fn main() {}
//! ```
//! The process's peak resident memory then includes the cached blocks (at most the capacity),
//! as it includes glibc's retained heap.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Blocks smaller than this go to the system allocator untouched.
pub const MIN_CACHED_BYTES: usize = 32 << 20;
const SLOTS: usize = 64;

#[derive(Clone, Copy)]
struct Block {
    ptr: usize,
    size: usize,
    align: usize,
    /// Insertion counter, for evicting the oldest block.
    stamp: u64,
}

struct Slots {
    blocks: [Option<Block>; SLOTS],
    bytes: usize,
    clock: u64,
}

/// A [`GlobalAlloc`] over [`System`] that reuses freed blocks of at least
/// [`MIN_CACHED_BYTES`] by exact size and alignment, holding at most `capacity` bytes.
pub struct LargeBlockCache {
    slots: Mutex<Slots>,
    capacity: AtomicUsize,
    hits: AtomicUsize,
    misses: AtomicUsize,
}

impl LargeBlockCache {
    /// A cache holding at most `capacity` bytes of freed blocks (0 turns it off).
    pub const fn new(capacity: usize) -> Self {
        Self {
            slots: Mutex::new(Slots { blocks: [None; SLOTS], bytes: 0, clock: 0 }),
            capacity: AtomicUsize::new(capacity),
            hits: AtomicUsize::new(0),
            misses: AtomicUsize::new(0),
        }
    }

    /// Changes the capacity; blocks beyond it are released at once.
    pub fn set_capacity(&self, capacity: usize) {
        self.capacity.store(capacity, Ordering::Relaxed);
        self.evict_to(capacity, 0);
    }

    /// Bytes held in freed blocks right now.
    pub fn cached_bytes(&self) -> usize {
        self.lock().bytes
    }

    /// (hits, misses): large requests served from the cache and from the system.
    pub fn stats(&self) -> (usize, usize) {
        (self.hits.load(Ordering::Relaxed), self.misses.load(Ordering::Relaxed))
    }

    /// Gives every cached block back to the system.
    pub fn release(&self) {
        self.evict_to(0, 0);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Slots> {
        // the critical sections never panic, but a poisoned lock must not abort allocation
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Frees the oldest blocks until at most `bytes` are held and a slot is free for `incoming`
    /// more bytes (so `bytes + incoming` fits the capacity given).
    fn evict_to(&self, bytes: usize, incoming: usize) {
        let mut freed = Vec::<Block>::new();
        {
            let mut s = self.lock();
            loop {
                let full = s.blocks.iter().all(Option::is_some) && incoming > 0;
                if s.bytes + incoming <= bytes && !full {
                    break;
                }
                let Some(i) = (0..SLOTS).filter(|&i| s.blocks[i].is_some()).min_by_key(|&i| s.blocks[i].map_or(u64::MAX, |b| b.stamp))
                else {
                    break;
                };
                let b = s.blocks[i].take().expect("slot checked above");
                s.bytes -= b.size;
                // `freed` allocates only while small, far below MIN_CACHED_BYTES: no reentry into the lock
                freed.push(b);
            }
        }
        for b in freed {
            // SAFETY: the block came from System.alloc with this size and alignment
            unsafe { System.dealloc(b.ptr as *mut u8, Layout::from_size_align_unchecked(b.size, b.align)) };
        }
    }

    fn take(&self, layout: Layout) -> Option<*mut u8> {
        let mut s = self.lock();
        let i = (0..SLOTS).find(|&i| s.blocks[i].is_some_and(|b| b.size == layout.size() && b.align == layout.align()))?;
        let b = s.blocks[i].take().expect("slot found above");
        s.bytes -= b.size;
        Some(b.ptr as *mut u8)
    }
}

// SAFETY: every block handed out is either fresh from `System` or a block previously obtained
// from `System` with the identical layout and since freed by its owner; blocks are freed to
// `System` with the layout they were allocated with.
unsafe impl GlobalAlloc for LargeBlockCache {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() < MIN_CACHED_BYTES {
            return System.alloc(layout);
        }
        if let Some(p) = self.take(layout) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return p;
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() < MIN_CACHED_BYTES {
            return System.alloc_zeroed(layout);
        }
        if let Some(p) = self.take(layout) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            std::ptr::write_bytes(p, 0, layout.size());
            return p;
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        System.alloc_zeroed(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let capacity = self.capacity.load(Ordering::Relaxed);
        if layout.size() < MIN_CACHED_BYTES || layout.size() > capacity {
            return System.dealloc(ptr, layout);
        }
        self.evict_to(capacity, layout.size());
        let mut s = self.lock();
        match s.blocks.iter().position(Option::is_none) {
            Some(i) if s.bytes + layout.size() <= capacity => {
                s.clock += 1;
                let stamp = s.clock;
                s.blocks[i] = Some(Block { ptr: ptr as usize, size: layout.size(), align: layout.align(), stamp });
                s.bytes += layout.size();
            }
            // another thread filled the room between eviction and now
            _ => {
                drop(s);
                System.dealloc(ptr, layout)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_a_block_of_the_same_layout_and_respects_the_capacity() {
        let cache = LargeBlockCache::new(3 * MIN_CACHED_BYTES);
        let big = Layout::from_size_align(MIN_CACHED_BYTES, 64).unwrap();
        let bigger = Layout::from_size_align(MIN_CACHED_BYTES + 4096, 64).unwrap();
        unsafe {
            let a = cache.alloc(big);
            a.write(7);
            cache.dealloc(a, big);
            assert_eq!(cache.cached_bytes(), MIN_CACHED_BYTES);
            let b = cache.alloc_zeroed(big);
            assert_eq!(b, a, "the freed block comes back");
            assert_eq!(*b, 0, "alloc_zeroed clears a reused block");
            assert_eq!(cache.stats(), (1, 1));
            let c = cache.alloc(bigger);
            assert_ne!(c, b);
            cache.dealloc(b, big);
            cache.dealloc(c, bigger);
            assert_eq!(cache.cached_bytes(), 2 * MIN_CACHED_BYTES + 4096);
            // a third block would exceed the capacity: the oldest (b) is evicted for it
            let d = cache.alloc(bigger);
            assert_eq!(d, c);
            let e = cache.alloc(bigger);
            cache.dealloc(d, bigger);
            cache.dealloc(e, bigger);
            assert_eq!(cache.cached_bytes(), 2 * (MIN_CACHED_BYTES + 4096));
            cache.set_capacity(0);
            assert_eq!(cache.cached_bytes(), 0);
            let f = cache.alloc(bigger);
            cache.dealloc(f, bigger);
            assert_eq!(cache.cached_bytes(), 0, "capacity 0 caches nothing");
        }
    }
}
