//! A per-thread pool of `f32` buffers, so a training step in steady state reuses the
//! buffers of the previous step instead of allocating.

use std::cell::RefCell;
use std::collections::HashMap;

/// Most floats the pool of one thread holds (4 GiB); buffers beyond it are freed. A
/// supernet step frees and reallocates hundreds of same-sized activations, so the pool
/// must be large enough to hold a whole step's worth or the kernel zeroes fresh pages.
const KEEP_FLOATS: usize = 1 << 30;

/// Takes after which a length that was not taken again is dropped from the pool (its
/// buffers freed, its count of made buffers forgotten), and how often the pool looks
/// for such lengths: the rule wgpu's device-buffer pool follows too
/// ([`crate::idle`]). A training step takes the same lengths again within a few
/// thousand takes; a length idle this long belongs to a network that is gone (an
/// earlier trial's, an earlier input's), and keeping it would let a long process that
/// builds many networks of different shapes fill the pool up to [`KEEP_FLOATS`] with
/// buffers no one takes again.
#[doc(hidden)]
pub use crate::idle::{IDLE_TAKES, SWEEP_EVERY};

#[doc(hidden)]
pub struct Pool {
    free: HashMap<usize, Vec<Vec<f32>>>,
    floats: usize,
    /// When each length was last taken on this thread.
    pub last: crate::idle::Recency<usize>,
    /// How many buffers of each length `take` has allocated on this thread. The pool
    /// keeps at most that many of a length: more could never all be taken again (the
    /// rest were made elsewhere, by callers' own vectors, and `give` frees them). Without
    /// this bound, vectors made outside the pool and dropped (a network's parameters, an
    /// eval-mode batch norm's per-channel scales) piled up in it for good, a little on
    /// every forward pass and a whole network on every trial of a search.
    pub made: HashMap<usize, usize>,
}

impl Pool {
    /// Counts a take of `len`, and forgets the lengths that went idle (see
    /// [`IDLE_TAKES`]).
    fn note_take(&mut self, len: usize) {
        for idle in self.last.take(len) {
            self.made.remove(&idle);
            if let Some(f) = self.free.remove(&idle) {
                self.floats -= idle * f.len();
            }
        }
    }
}

thread_local! {
    #[doc(hidden)]
    pub static POOL: RefCell<Pool> = RefCell::new(Pool {
        free: HashMap::new(),
        floats: 0,
        last: Default::default(),
        made: HashMap::new(),
    });
}

/// A buffer of `len` floats with unspecified (but initialised) contents.
pub fn take(len: usize) -> Vec<f32> {
    let reused = POOL.with(|p| {
        let mut p = p.borrow_mut();
        p.note_take(len);
        let v = p.free.get_mut(&len).and_then(|v| v.pop());
        if v.is_some() {
            p.floats -= len;
        } else {
            *p.made.entry(len).or_default() += 1;
        }
        v
    });
    reused.unwrap_or_else(|| zeros(len))
}

/// A new vector of `len` zeros; host memory that cannot be had is a failure
/// ([`crate::failure::fail`]: an error for the user, as a device's is, not an abort).
fn zeros(len: usize) -> Vec<f32> {
    if len == 0 {
        return Vec::new();
    }
    let failed = || {
        crate::failure::fail(format!(
            "out of host memory: a buffer of {len} floats ({:.1} GiB) could not be allocated \
             (a smaller batch, image or network fits)",
            len as f64 * 4.0 / (1u64 << 30) as f64
        ))
    };
    let Ok(layout) = std::alloc::Layout::array::<f32>(len) else {
        failed()
    };
    // SAFETY: `layout` is non-zero in size (len > 0); a non-null result is `len` zeroed
    // (so initialised) floats allocated by the global allocator with the layout a
    // `Vec<f32>` of capacity `len` frees with.
    unsafe {
        let p = std::alloc::alloc_zeroed(layout) as *mut f32;
        if p.is_null() {
            failed()
        }
        Vec::from_raw_parts(p, len, len)
    }
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
        p.last.clear();
        p.made.clear();
    });
}

/// Floats this thread's pool holds now.
pub fn pooled_floats() -> usize {
    POOL.with(|p| p.borrow().floats)
}
