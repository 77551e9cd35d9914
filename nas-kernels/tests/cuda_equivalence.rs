#![cfg(feature = "cuda")]
//! The CUDA backend against the CPU reference on random inputs: every primitive of the
//! accelerator boundary and of the device-resident one (the shared suites in `common`),
//! plus the unary kernel. Needs an NVIDIA driver
//! and device (`scripts/gpu-check.sh` runs it on one); elsewhere each test prints that it
//! skipped and why. Tolerance: 1e-4 relative to the largest reference magnitude (f32
//! sums in another order).

use nas_kernels::cuda::Cuda;

#[macro_use]
mod common;
use common::{close, random};

/// The GPU, or `None` (the test skips, saying so) where there is none. Only a device that
/// is not there skips: where a driver is installed, or where the device answered with
/// anything but "unavailable" (its kernels do not build or load, a call fails), the
/// test fails, as the engine's tests on cuda:0 do.
fn device() -> Option<Cuda> {
    match Cuda::new(0) {
        Ok(c) => {
            println!(
                "running on {} (sm_{}{})",
                c.name, c.compute_capability.0, c.compute_capability.1
            );
            Some(c)
        }
        Err(e) if nas_kernels::cuda::driver_available() || !unavailable(&e) => {
            panic!("cuda:0: {e}")
        }
        Err(e) => {
            nas_kernels::report_skip(&format!("no CUDA device: {e}"));
            None
        }
    }
}

fn unavailable(e: &nas_kernels::KernelError) -> bool {
    matches!(e, nas_kernels::KernelError::Unavailable(_))
}

#[test]
fn unary_ops_match_the_cpu() {
    let Some(gpu) = device() else { return };
    let x = random(10_001, 3);
    let relu: Vec<f32> = x.iter().map(|v| v.max(0.0)).collect();
    close(&gpu.unary(&x, 1, 0.0, 0.0).unwrap(), &relu, 1e-4, "relu");
    let t: Vec<f32> = x.iter().map(|v| v.tanh()).collect();
    close(&gpu.unary(&x, 5, 0.0, 0.0).unwrap(), &t, 1e-4, "tanh");
    let affine: Vec<f32> = x.iter().map(|v| v * 1.5 - 0.25).collect();
    close(
        &gpu.unary(&x, 6, 1.5, -0.25).unwrap(),
        &affine,
        1e-4,
        "affine",
    );
}

fn with_device(f: impl FnOnce(&dyn nas_kernels::accel::Accel)) {
    if let Some(gpu) = device() {
        f(&gpu);
    }
}

suite_tests!();

fn with_resident(f: impl FnOnce(&dyn nas_kernels::accel::Resident)) {
    if let Some(gpu) = device() {
        f(&gpu);
    }
}

resident_tests!();
