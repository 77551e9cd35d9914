//! The CPU backend: rayon across independent work, vectorisable inner loops, and the `gemm`
//! crate for the innermost matrix kernel.

pub mod backend;
pub mod buffer;
pub mod conv;
pub mod elementwise;
pub mod gemm;
pub mod math;
pub mod norm;
pub mod optim;
pub mod pool;
pub mod random;
pub mod shape;
pub mod softmax;

/// Below this many elements a kernel runs on the calling thread: splitting costs more.
pub const PAR_MIN: usize = 1 << 15;

/// Number of rayon workers kernels split across.
pub fn threads() -> usize {
    rayon::current_num_threads()
}
