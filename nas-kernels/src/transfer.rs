//! Counts of the bytes and calls that cross between host and device memory, in each
//! direction, over every device backend of the process. Profiles print them per step;
//! tests bound what a step may move.

use std::ops::Sub;
use std::sync::atomic::{AtomicU64, Ordering};

static UP_BYTES: AtomicU64 = AtomicU64::new(0);
static UP_CALLS: AtomicU64 = AtomicU64::new(0);
static DOWN_BYTES: AtomicU64 = AtomicU64::new(0);
static DOWN_CALLS: AtomicU64 = AtomicU64::new(0);

/// Totals since the process started; subtract two to get what happened in between.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Transfers {
    /// Host to device.
    pub up_bytes: u64,
    pub up_calls: u64,
    /// Device to host.
    pub down_bytes: u64,
    pub down_calls: u64,
}

impl Sub for Transfers {
    type Output = Transfers;
    fn sub(self, o: Transfers) -> Transfers {
        Transfers {
            up_bytes: self.up_bytes - o.up_bytes,
            up_calls: self.up_calls - o.up_calls,
            down_bytes: self.down_bytes - o.down_bytes,
            down_calls: self.down_calls - o.down_calls,
        }
    }
}

/// The totals so far.
pub fn snapshot() -> Transfers {
    Transfers {
        up_bytes: UP_BYTES.load(Ordering::Relaxed),
        up_calls: UP_CALLS.load(Ordering::Relaxed),
        down_bytes: DOWN_BYTES.load(Ordering::Relaxed),
        down_calls: DOWN_CALLS.load(Ordering::Relaxed),
    }
}

/// Records one host-to-device copy of `bytes`.
#[cfg_attr(not(any(feature = "wgpu", feature = "cuda")), allow(dead_code))]
pub(crate) fn up(bytes: usize) {
    UP_BYTES.fetch_add(bytes as u64, Ordering::Relaxed);
    UP_CALLS.fetch_add(1, Ordering::Relaxed);
}

/// Records one device-to-host copy of `bytes`.
#[cfg_attr(not(any(feature = "wgpu", feature = "cuda")), allow(dead_code))]
pub(crate) fn down(bytes: usize) {
    DOWN_BYTES.fetch_add(bytes as u64, Ordering::Relaxed);
    DOWN_CALLS.fetch_add(1, Ordering::Relaxed);
}
