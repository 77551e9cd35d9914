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
    /// How many buffers of each length `take` has allocated on this thread. The pool
    /// keeps at most that many of a length: more could never all be taken again (the
    /// rest were made elsewhere, by callers' own vectors, and `give` frees them). Without
    /// this bound, vectors made outside the pool and dropped (a network's parameters, an
    /// eval-mode batch norm's per-channel scales) piled up in it for good, a little on
    /// every forward pass and a whole network on every trial of a search.
    made: HashMap<usize, usize>,
}

thread_local! {
    static POOL: RefCell<Pool> = RefCell::new(Pool {
        free: HashMap::new(),
        floats: 0,
        made: HashMap::new(),
    });
}

/// A buffer of `len` floats with unspecified (but initialised) contents.
pub fn take(len: usize) -> Vec<f32> {
    let reused = POOL.with(|p| {
        let mut p = p.borrow_mut();
        let v = p.free.get_mut(&len).and_then(|v| v.pop());
        if v.is_some() {
            p.floats -= len;
        } else {
            *p.made.entry(len).or_default() += 1;
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
        let made = p.made.get(&v.len()).copied().unwrap_or(0);
        let held = p.free.get(&v.len()).map_or(0, |f| f.len());
        if p.floats + v.len() <= KEEP_FLOATS && held < made {
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

/// Floats this thread's pool holds now.
pub fn pooled_floats() -> usize {
    POOL.with(|p| p.borrow().floats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_holds_no_more_of_a_length_than_take_made() {
        clear();
        let before = pooled_floats();
        // A length never taken: freed.
        give(vec![1.0; 12_345]);
        assert_eq!(pooled_floats(), before);
        // Two taken, three given back (one made by the caller): two kept.
        let (a, b) = (take(12_346), take(12_346));
        give(a);
        give(b);
        give(vec![0.0; 12_346]);
        assert_eq!(pooled_floats(), before + 2 * 12_346);
        // A caller that makes its own vectors of a pooled length, again and again, does
        // not grow the pool.
        for _ in 0..100 {
            give(vec![0.0; 12_346]);
        }
        assert_eq!(pooled_floats(), before + 2 * 12_346);
        assert_eq!(take(12_346).len(), 12_346);
        assert_eq!(take(12_346).len(), 12_346);
        assert_eq!(pooled_floats(), before);
    }
}
