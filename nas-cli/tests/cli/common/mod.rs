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

/// Runs `cmd`, which must fail as a usage error does (exit 2, from the argument parser)
/// or as the host's own errors do (exit 1), and returns its stderr.
pub fn fails(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(
        matches!(o.status.code(), Some(1) | Some(2)),
        "{cmd:?}: {:?}\n{}\n{err}",
        o.status,
        String::from_utf8_lossy(&o.stdout)
    );
    err
}

/// `nas search --space nb201` (the table evaluator) with `extra`, into `d`.
pub fn table_search(d: &Path, extra: &[&str]) -> (bool, String, String) {
    run(nas()
        .args(["search", "--space", "nb201"])
        .args(extra)
        .arg("--out")
        .arg(d))
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
        // The whole workspace's libraries, not `-p` per plugin: a build of a subset
        // resolves features differently, and its artifacts then replace those of the
        // surrounding `cargo test --workspace`, which costs minutes of rebuilding. Built
        // this way, after a workspace test build, it finds everything fresh.
        let mut cmd = std::process::Command::new(env!("CARGO"));
        cmd.current_dir(&root)
            .args(["build", "--release", "--workspace", "--lib"]);
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

/// The first `n` images and labels of the bundled Fashion-MNIST test set, written as an
/// uncompressed IDX pair under the temporary directory (a test set small enough for a
/// slow device to score quickly): the paths of the images and of the labels.
#[allow(dead_code)]
pub fn bundled_test_subset(n: usize, name: &str) -> (PathBuf, PathBuf) {
    use std::io::Read;
    let dir = temp_path("test-subset", name);
    std::fs::create_dir_all(&dir).unwrap();
    let read = |file: &str| -> Vec<u8> {
        let gz = std::fs::File::open(root().join("data/fashion-mnist").join(file)).unwrap();
        let mut v = Vec::new();
        flate2::read::GzDecoder::new(gz)
            .read_to_end(&mut v)
            .unwrap();
        v
    };
    let count = |v: &[u8]| u32::from_be_bytes(v[4..8].try_into().unwrap()) as usize;
    let (mut images, mut labels) = (
        read("t10k-images-idx3-ubyte.gz"),
        read("t10k-labels-idx1-ubyte.gz"),
    );
    assert!(n <= count(&images) && n <= count(&labels));
    let pixels = u32::from_be_bytes(images[8..12].try_into().unwrap()) as usize
        * u32::from_be_bytes(images[12..16].try_into().unwrap()) as usize;
    images.truncate(16 + n * pixels);
    labels.truncate(8 + n);
    for v in [&mut images, &mut labels] {
        v[4..8].copy_from_slice(&(n as u32).to_be_bytes());
    }
    let (ip, lp) = (dir.join("test-images"), dir.join("test-labels"));
    std::fs::write(&ip, images).unwrap();
    std::fs::write(&lp, labels).unwrap();
    (ip, lp)
}
