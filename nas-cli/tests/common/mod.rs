//! Helpers shared by the CLI test files.

use std::process::Output;

/// A finished `nas` run's stdout and stderr, or `None`, having said so, when it failed
/// for want of a wgpu adapter and the environment does not require one
/// (`NAS_REQUIRE_WGPU`, which CI sets).
pub fn wgpu_output(o: &Output) -> Option<(String, String)> {
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    if !o.status.success()
        && err.contains("no wgpu")
        && std::env::var_os("NAS_REQUIRE_WGPU").is_none()
    {
        println!("skipped: {err}");
        return None;
    }
    Some((out, err))
}
