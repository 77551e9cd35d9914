//! Which sizes a buffer pool still uses: the host's pool of `f32` vectors and wgpu's pool
//! of device buffers both keep freed buffers by size and drop a size nobody has taken
//! for a long while (an earlier network's, in a search that builds many), so a long
//! process does not fill its pool with buffers no one takes again.

use std::collections::HashMap;
use std::hash::Hash;

/// Takes after which a size not taken again is idle.
pub const IDLE_TAKES: u64 = 1 << 16;

/// How often, in takes, [`Recency::take`] looks for idle sizes.
pub const SWEEP_EVERY: u64 = 1 << 12;

/// The take count at each size's last take.
#[derive(Debug)]
pub struct Recency<K> {
    takes: u64,
    last: HashMap<K, u64>,
}

impl<K> Default for Recency<K> {
    fn default() -> Self {
        Recency {
            takes: 0,
            last: HashMap::new(),
        }
    }
}

impl<K: Hash + Eq + Copy> Recency<K> {
    /// Counts a take of size `k`. Once every [`SWEEP_EVERY`] takes, returns the sizes not
    /// taken in the last [`IDLE_TAKES`] takes, forgotten here, for the pool to drop; else
    /// nothing (and allocates nothing).
    pub fn take(&mut self, k: K) -> Vec<K> {
        self.takes += 1;
        let now = self.takes;
        self.last.insert(k, now);
        if now % SWEEP_EVERY != 0 {
            return Vec::new();
        }
        let idle: Vec<K> = self
            .last
            .iter()
            .filter(|&(_, &t)| now - t > IDLE_TAKES)
            .map(|(&k, _)| k)
            .collect();
        for k in &idle {
            self.last.remove(k);
        }
        idle
    }

    /// Notes size `k` as seen now if it was never taken (a size given back but not taken
    /// again then becomes idle in time).
    pub fn seen(&mut self, k: K) {
        self.last.entry(k).or_insert(self.takes);
    }

    /// How many sizes it tracks.
    pub fn len(&self) -> usize {
        self.last.len()
    }

    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
    }

    /// Forgets every size.
    pub fn clear(&mut self) {
        self.last.clear();
    }
}
