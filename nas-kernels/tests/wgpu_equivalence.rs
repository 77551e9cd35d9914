#![cfg(feature = "wgpu")]
//! The wgpu kernels against the CPU reference on random inputs, on whatever Vulkan
//! adapter there is (CI: Mesa's CPU driver, lavapipe). With `NAS_REQUIRE_WGPU=1` (set by
//! .ci/run) a missing adapter fails the tests; elsewhere they say they skipped.
//! Tolerance: 1e-4 relative to the largest reference magnitude (1e-3 for exp/tanh,
//! whose GPU implementations may differ in the last bits).

#[macro_use]
mod common;
use common::{close, gpu, random};

#[test]
fn elementwise_ops_match_the_cpu() {
    let Some(g) = gpu() else { return };
    println!("adapter: {}", g.adapter);
    let x = random(70_001, 1);
    let y: Vec<f32> = random(70_001, 2).iter().map(|v| v + 3.0).collect();
    let cases: [(u32, fn(f32) -> f32, f32); 5] = [
        (1, |v| v.max(0.0), 1e-6),
        (2, f32::exp, 1e-3),
        (4, |v| 1.0 / (1.0 + (-v).exp()), 1e-3),
        (5, f32::tanh, 1e-3),
        (7, |v| -v, 1e-6),
    ];
    for (op, f, tol) in cases {
        let want: Vec<f32> = x.iter().map(|v| f(*v)).collect();
        close(
            &g.unary(&x, op, 0.0, 0.0).unwrap(),
            &want,
            tol,
            &format!("unary {op}"),
        );
    }
    let want: Vec<f32> = x.iter().map(|v| v * 1.5 - 0.25).collect();
    close(&g.unary(&x, 6, 1.5, -0.25).unwrap(), &want, 1e-6, "affine");
    let ops: [fn(f32, f32) -> f32; 4] = [|a, b| a + b, |a, b| a - b, |a, b| a * b, |a, b| a / b];
    for (op, f) in ops.iter().enumerate() {
        let want: Vec<f32> = x.iter().zip(&y).map(|(a, b)| f(*a, *b)).collect();
        close(
            &g.binary(&x, &y, op as u32).unwrap(),
            &want,
            1e-6,
            &format!("binary {op}"),
        );
    }
}

fn with_device(f: impl FnOnce(&dyn nas_kernels::accel::Accel)) {
    if let Some(g) = gpu() {
        f(g);
    }
}

suite_tests!();

fn with_resident(f: impl FnOnce(&dyn nas_kernels::accel::Resident)) {
    if let Some(g) = gpu() {
        f(g);
    }
}

resident_tests!();

/// The per-channel (lane) kernels with the many short parts a GPU takes, here on
/// whatever adapter runs the tests (llvmpipe in CI, where parts are long): a part length
/// that is not a multiple of the 64 lanes, and the GPU's own. Other tests running
/// meanwhile take these parts too, which changes nothing but rounding.
#[test]
fn lane_kernels_in_gpu_sized_parts() {
    let Some(g) = gpu() else { return };
    // The adapter's own part length again when this test ends, passed or not.
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            nas_kernels::gpu::set_lane_part(0);
        }
    }
    let _reset = Reset;
    for part in [200, 64 * 64] {
        nas_kernels::gpu::set_lane_part(part);
        common::resident::batch_norm_on_the_device(g);
        common::resident::optimisers_and_bias(g);
        common::resident::long_channel_sums(g);
        common::suite::batch_norm(g);
        common::suite::weighted_sum(g);
    }
}
