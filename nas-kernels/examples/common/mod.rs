//! What the kernel-timing examples share.
use std::time::Instant;

/// Milliseconds per call of `f`: one warm-up call, then the best of 5 rounds of 10 calls
/// (the best round, since this machine's other work only ever slows a round down).
pub fn best_ms(f: &mut dyn FnMut()) -> f64 {
    f();
    (0..5)
        .map(|_| {
            let s = Instant::now();
            for _ in 0..10 {
                f();
            }
            s.elapsed().as_secs_f64() * 100.0
        })
        .fold(f64::INFINITY, f64::min)
}
