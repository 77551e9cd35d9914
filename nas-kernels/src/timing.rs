//! Wall-clock timing of a piece of work, the one way every measurement here is taken
//! (latency tables, the CPU backend's peaks, `nas bench`).

use std::time::Instant;

/// Milliseconds of the fastest of `reps` calls of `f` (at least one), after one warm-up
/// call: the least disturbed run, for small repeated measurements.
pub fn fastest_ms(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    (0..reps.max(1))
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1e3
        })
        .fold(f64::MAX, f64::min)
}

/// Median milliseconds per call of `f`, over the calls made in about `secs` (at least
/// five), after two warm-up calls: for benchmarks on a machine whose speed wanders.
pub fn median_ms(secs: f64, mut f: impl FnMut()) -> f64 {
    f();
    f();
    let mut samples = vec![];
    let start = Instant::now();
    while start.elapsed().as_secs_f64() < secs || samples.len() < 5 {
        let t = Instant::now();
        f();
        samples.push(t.elapsed().as_secs_f64() * 1e3);
    }
    samples.sort_by(|a, b| a.total_cmp(b));
    samples[samples.len() / 2]
}
