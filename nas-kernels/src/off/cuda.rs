//! The CUDA backend's interface in a build without the `cuda` feature: the same names,
//! each saying that this build has no CUDA support.

use crate::error::{KernelError, Res};

#[path = "buf.rs"]
mod buf;
pub use buf::Buf;

const OFF: &str = "this nas was built without CUDA support (cargo feature `cuda`)";

/// Never true in this build.
pub fn nvrtc_available() -> bool {
    false
}

/// Never true in this build.
pub fn driver_available() -> bool {
    false
}

/// An error: this build cannot compile CUDA kernels.
pub fn compile_cubin(_arch: &str) -> Res<Vec<u8>> {
    Err(KernelError::Unavailable(OFF.into()))
}

/// The file name of the prebuilt CUBIN for `sm` (`"sm_90"`), as `nas cuda-kernels`
/// writes it.
pub fn cubin_file_name(sm: &str) -> String {
    format!("nas-kernels-{sm}.cubin")
}

/// A CUDA device; none can be opened in this build.
pub struct Cuda {
    pub ordinal: usize,
    pub name: String,
    pub compute_capability: (i32, i32),
    never: std::convert::Infallible,
}

impl Cuda {
    /// An error: this build has no CUDA support.
    pub fn new(_ordinal: usize) -> Res<Cuda> {
        Err(KernelError::Unavailable(OFF.into()))
    }

    /// Unreachable: no `Cuda` exists in this build.
    pub fn backend(&self) -> (&dyn crate::accel::Accel, &dyn crate::accel::Resident) {
        match self.never {}
    }
}
