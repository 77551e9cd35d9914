//! Device kernels for `nas`: each takes shapes and buffers and fills an output; none knows
//! about gradients or graphs. The CPU backend is the reference the others are tested against.
//!
//! The device backends are cargo features, both on by default: `wgpu` and `cuda`. Without
//! one, its module keeps its interface and every way in says the build lacks it.

pub mod accel;
pub mod cpu;
#[cfg(feature = "cuda")]
pub mod cuda;
#[cfg(not(feature = "cuda"))]
#[path = "off/cuda.rs"]
pub mod cuda;
#[cfg(feature = "wgpu")]
pub mod gpu;
#[cfg(not(feature = "wgpu"))]
#[path = "off/gpu.rs"]
pub mod gpu;
pub mod transfer;
