//! A per-thread pool of `f32` buffers, so a training step in steady state reuses the
//! buffers of the previous step instead of allocating.

use std::cell::RefCell;
use std::collections::HashMap;

/// Buffers kept per length; more than this are freed.
const KEEP_PER_LEN: usize = 32;

thread_local! {
    static POOL: RefCell<HashMap<usize, Vec<Vec<f32>>>> = RefCell::new(HashMap::new());
}

/// A buffer of `len` floats with unspecified (but initialised) contents.
pub fn take(len: usize) -> Vec<f32> {
    let reused = POOL.with(|p| p.borrow_mut().get_mut(&len).and_then(|v| v.pop()));
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
        let slot = p.entry(v.len()).or_default();
        if slot.len() < KEEP_PER_LEN {
            slot.push(v);
        }
    });
}

/// Frees every pooled buffer of this thread.
pub fn clear() {
    POOL.with(|p| p.borrow_mut().clear());
}
