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

/// Defines `$name` as a function that runs `$body` compiled for AVX2 where the CPU has
/// it (checked at run time; the build targets baseline x86-64, whose vectors are SSE2's
/// 4 lanes) and as the baseline build elsewhere. Only the vector width changes: Rust
/// does not contract a multiply and an add into an FMA, so each lane computes the same
/// operations in the same order and the result has the same bits either way. Whatever
/// `$body` calls must be `#[inline(always)]` to be compiled for AVX2 too.
macro_rules! avx2_or_baseline {
    ($(#[$m:meta])* $v:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$m])*
        #[allow(clippy::too_many_arguments)]
        $v fn $name($($arg: $ty),*) {
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn body($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn wide($($arg: $ty),*) {
                    body($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU has AVX2 (checked above).
                    return unsafe { wide($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}
pub(crate) use avx2_or_baseline;

/// Number of rayon workers kernels split across.
pub fn threads() -> usize {
    rayon::current_num_threads()
}
