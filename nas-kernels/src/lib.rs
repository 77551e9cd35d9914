//! Device kernels for `nas`: each takes shapes and buffers and fills an output; none knows
//! about gradients or graphs. The CPU backend is the reference the others are tested against.
//!
//! The device backends are cargo features, both on by default: `wgpu` and `cuda`. Without
//! one, its module keeps its interface and every way in says the build lacks it.

pub mod accel;
pub mod error;
pub use error::{KernelError, Res};
pub mod cpu;
#[cfg(feature = "cuda")]
pub mod cuda;
#[cfg(not(feature = "cuda"))]
#[path = "off/cuda.rs"]
pub mod cuda;
pub mod failure;
#[cfg(feature = "wgpu")]
pub mod gpu;
#[cfg(not(feature = "wgpu"))]
#[path = "off/gpu.rs"]
pub mod gpu;
pub mod idle;
pub mod timing;
pub mod transfer;

/// Says that a test skipped something and why (`msg`), where `cargo test` shows it: on
/// standard error, past the test harness's capture, as `SKIPPED <test>: <msg>`. Where
/// `NAS_SKIP_LOG` names a file the line is also appended there (`.ci/run` counts them).
pub fn report_skip(msg: &str) {
    use std::io::Write;
    let test = std::thread::current()
        .name()
        .unwrap_or("a test")
        .to_string();
    let line = format!("SKIPPED {test}: {msg}\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
    if let Some(path) = std::env::var_os("NAS_SKIP_LOG") {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = f.write_all(line.as_bytes());
        }
    }
}
