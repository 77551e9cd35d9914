//! The per-thread pool of `f32` buffers lives beside the CPU kernels (the CPU backend
//! makes its results from it); the engine takes and gives through this name.

pub use nas_kernels::cpu::buffer::*;
