//! Runs exported models in a real ONNX runtime, for tests: nas's own, and anyone's who
//! builds on the exporter from a checkout of this workspace.
//!
//! ONNX Runtime, the reference implementation, runs the model where `python3` imports
//! `onnxruntime` (`scripts/onnx_check.py --json`; CI installs the wheel, about 15 s).
//! Elsewhere the tests fall back to tract, a pure-Rust runtime: `check/`, its own
//! workspace, built here once, unoptimised (two to three minutes on two cores), so that
//! `cargo test` alone still runs every model somewhere. Two variables steer it:
//! - `NAS_ONNXRUNTIME_PATH`: a directory added to Python's module path (where `.ci/run`
//!   installs the wheel with `pip --target`);
//! - `NAS_REQUIRE_ONNXRUNTIME`: a missing ONNX Runtime is an error, not the fallback (CI
//!   sets it, so a broken install cannot silently cost the tract build).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// What a runtime computed for a sample's `input`.
#[derive(Clone, Debug)]
pub struct Output {
    /// Which runtime ran the model: `"onnxruntime"` or `"tract"`.
    pub runtime: &'static str,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

enum Runtime {
    OnnxRuntime,
    Tract(PathBuf),
}

/// The workspace root (this crate's parent), where `scripts/` and `check/` are.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn python() -> Command {
    let mut c = Command::new("python3");
    if let Some(dir) = std::env::var_os("NAS_ONNXRUNTIME_PATH") {
        let mut path = std::ffi::OsString::from(dir);
        if let Some(old) = std::env::var_os("PYTHONPATH") {
            path.push(":");
            path.push(old);
        }
        c.env("PYTHONPATH", path);
    }
    c
}

/// Whether `python3` imports `onnxruntime`.
fn has_onnxruntime() -> bool {
    python()
        .args(["-c", "import onnxruntime"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Builds the tract checker (`--locked`: a test never rewrites a tracked file).
fn build_tract() -> Result<PathBuf, String> {
    let target = root().join("target/onnx-check");
    let manifest = root().join("nas-onnx/check/Cargo.toml");
    let out = Command::new(env!("CARGO"))
        .args(["build", "--locked", "--manifest-path"])
        .arg(&manifest)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .map_err(|e| format!("running cargo to build the tract checker: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "building the tract checker (if nas-onnx/check/Cargo.lock is out of date, \
             refresh it with `cargo update --manifest-path nas-onnx/check/Cargo.toml` and \
             commit it):\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(target.join("debug/nas-onnx-check"))
}

/// The runtime this process uses, chosen (and tract built) once.
fn runtime() -> Result<&'static Runtime, String> {
    static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            if has_onnxruntime() {
                Ok(Runtime::OnnxRuntime)
            } else if std::env::var_os("NAS_REQUIRE_ONNXRUNTIME").is_some() {
                Err(
                    "NAS_REQUIRE_ONNXRUNTIME is set but `python3 -c \"import onnxruntime\"` \
                     fails (with NAS_ONNXRUNTIME_PATH, if set, on the module path)"
                        .into(),
                )
            } else {
                build_tract().map(Runtime::Tract)
            }
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Runs `model` on the `input` of `sample` (a file `write_sample` wrote) and returns the
/// model's first output.
pub fn run(model: &Path, sample: &Path) -> Result<Output, String> {
    let (name, out) = match runtime()? {
        Runtime::OnnxRuntime => (
            "onnxruntime",
            python()
                .arg(root().join("scripts/onnx_check.py"))
                .arg("--json")
                .arg(model)
                .arg(sample)
                .output(),
        ),
        Runtime::Tract(bin) => ("tract", Command::new(bin).arg(model).arg(sample).output()),
    };
    let out = out.map_err(|e| format!("starting {name}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{name} on {}:\n{}",
            model.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "{name}'s output is not JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })?;
    let shape =
        serde_json::from_value(v["shape"].clone()).map_err(|e| format!("{name}: shape: {e}"))?;
    let data =
        serde_json::from_value(v["data"].clone()).map_err(|e| format!("{name}: data: {e}"))?;
    Ok(Output {
        runtime: name,
        shape,
        data,
    })
}
