//! Helpers shared by the CLI test files.
// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `nas` run from the workspace root, with the workspace's plugins.
pub fn nas() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_nas"));
    c.current_dir(root())
        .env("NAS_PLUGIN_PATH", workspace_plugins());
    c
}

/// A path under the temporary directory for the test `name` of the file `file`, unique to
/// this process, with nothing at it.
pub fn temp_path(file: &str, name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("nas-{file}-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Runs `cmd`: whether it succeeded, its stdout and its stderr. Exit code 1 is the host's
/// own error path; a host panic (exit 101) fails the test.
pub fn run(cmd: &mut Command) -> (bool, String, String) {
    let o = cmd.output().unwrap();
    assert!(
        matches!(o.status.code(), Some(0) | Some(1)),
        "host crashed: {:?}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into(),
        String::from_utf8_lossy(&o.stderr).into(),
    )
}

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
        nas_core::device::report_skip(&format!("no wgpu adapter: {err}"));
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

/// A run's journal as (trial, architecture, metrics), the timings left out: what two
/// runs that should agree are compared by.
pub fn journal_records(dir: &Path) -> Vec<(u64, serde_json::Value, serde_json::Value)> {
    std::fs::read_to_string(dir.join("journal.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["trial"].as_u64().unwrap(),
                v["arch"].clone(),
                v["metrics"].clone(),
            )
        })
        .collect()
}
