//! Helpers shared by the CLI test files.
// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

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

/// Builds every strategy plugin of the workspace (once per test binary) beside the `nas`
/// binary under test, so a test never loads a stale plugin (`cargo test -p nas-cli`
/// alone does not rebuild the plugins' shared libraries), and returns their directory.
pub fn workspace_plugins() -> &'static std::path::Path {
    static DIR: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut cmd = std::process::Command::new(env!("CARGO"));
        cmd.current_dir(&root).args(["build", "--release"]);
        for e in std::fs::read_dir(root.join("nas-plugins")).unwrap() {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            cmd.args(["-p", &format!("nas-strategy-{name}")]);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "building the strategy plugins:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The binary under test sits in the same target directory as the plugins.
        std::path::Path::new(env!("CARGO_BIN_EXE_nas"))
            .parent()
            .unwrap()
            .to_path_buf()
    })
}
