//! Device kernels for `nas`: each takes shapes and buffers and fills an output; none knows
//! about gradients or graphs. The CPU backend is the reference the others are tested against.

pub mod accel;
pub mod cpu;
pub mod cuda;
pub mod gpu;
pub mod transfer;
