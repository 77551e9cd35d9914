//! The wgpu backend's interface in a build without the `wgpu` feature: no device can be
//! opened, so no device buffer exists.

use crate::error::{KernelError, Res};

#[path = "buf.rs"]
mod buf;
pub use buf::Buf;

const OFF: &str = "this nas was built without wgpu support (cargo feature `wgpu`)";

/// Nothing to poison: this build makes no wgpu buffers.
#[doc(hidden)]
pub fn poison_freed_buffers() {}

/// A wgpu adapter; none can be opened in this build.
pub struct Gpu {
    pub adapter: String,
    never: std::convert::Infallible,
}

impl Gpu {
    /// An error: this build has no wgpu support.
    pub fn new() -> Res<Gpu> {
        Err(KernelError::Unavailable(OFF.into()))
    }

    /// Unreachable: no `Gpu` exists in this build.
    pub fn buffer_limit(&self) -> u64 {
        match self.never {}
    }

    /// Unreachable: no `Gpu` exists in this build.
    pub fn backend(&self) -> (&dyn crate::accel::Accel, &dyn crate::accel::Resident) {
        match self.never {}
    }
}
