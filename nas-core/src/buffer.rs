//! A per-thread pool of `f32` buffers, so a training step in steady state reuses the
//! buffers of the previous step instead of allocating.

use std::cell::RefCell;
use std::collections::HashMap;

/// Most floats the pool of one thread holds (4 GiB); buffers beyond it are freed. A
/// supernet step frees and reallocates hundreds of same-sized activations, so the pool
/// must be large enough to hold a whole step's worth or the kernel zeroes fresh pages.
const KEEP_FLOATS: usize = 1 << 30;

struct Pool {
    free: HashMap<usize, Vec<Vec<f32>>>,
    floats: usize,
}

thread_local! {
    static POOL: RefCell<Pool> = RefCell::new(Pool { free: HashMap::new(), floats: 0 });
}

/// A buffer of `len` floats with unspecified (but initialised) contents.
pub fn take(len: usize) -> Vec<f32> {
    let reused = POOL.with(|p| {
        let mut p = p.borrow_mut();
        let v = p.free.get_mut(&len).and_then(|v| v.pop());
        if v.is_some() {
            p.floats -= len;
        }
        v
    });
    reused.unwrap_or_else(|| vec![0.0; len])
}

/// A buffer of `len` zeros.
pub fn take_zeroed(len: usize) -> Vec<f32> {
    let mut v = take(len);
    v.fill(0.0);
    v
}

/// Returns a buffer to this thread's pool.
pub fn give(v: Vec<f32>) {
    if v.is_empty() {
        return;
    }
    // try_with: during thread teardown the pool may already be gone; then just free.
    let _ = POOL.try_with(|p| {
        let mut p = p.borrow_mut();
        if p.floats + v.len() <= KEEP_FLOATS {
            p.floats += v.len();
            p.free.entry(v.len()).or_default().push(v);
        }
    });
}

/// Frees every pooled buffer of this thread.
pub fn clear() {
    POOL.with(|p| {
        let mut p = p.borrow_mut();
        p.free.clear();
        p.floats = 0;
    });
}
