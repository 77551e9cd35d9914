//! `--onnx`: `nas retrain` writes the retrained network and `nas export` a one-shot run's
//! architecture with the supernet's weights as ONNX models that run in tract (a real ONNX
//! runtime, nas-onnx/check) and give the outputs `nas` saved beside them (`--onnx-sample`).

mod common;

use common::{nas, run, temp_path};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The tract checker, built once (unoptimised, as nas-onnx's tests build it).
fn checker() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let target = common::root().join("target/onnx-check");
        let out = Command::new(env!("CARGO"))
            .args(["build", "--locked", "--manifest-path"])
            .arg(common::root().join("nas-onnx/check/Cargo.toml"))
            .env("CARGO_TARGET_DIR", &target)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "building the ONNX checker:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        target.join("debug/nas-onnx-check")
    })
}

/// The largest difference between tract's output for the sample's input and the
/// sample's output (what `nas` computed), and how many images the sample holds.
fn tract_vs_nas(model: &Path, sample: &Path) -> (f32, usize) {
    let out = Command::new(checker())
        .arg(model)
        .arg(sample)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tract on {}:\n{}",
        model.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let got: Vec<f32> = serde_json::from_value(v["data"].clone()).unwrap();
    let s = nas_core::io::load_tensors(sample).unwrap();
    let want = s["output"].to_vec();
    assert_eq!(got.len(), want.len(), "output sizes");
    assert!(want.iter().any(|v| v.abs() > 0.01), "{want:?}");
    let diff = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    (diff, s["input"].shape()[0])
}

#[test]
fn retrain_writes_an_onnx_model_that_tract_runs() {
    let dir = temp_path("onnx", "retrain");
    let runp = dir.join("run");
    let search = "--threads 2 search --space seed-net --strategy random --budget 1 \
                  --epochs 1 --limit 500 --out";
    let (ok, _, err) = run(nas().args(search.split_whitespace()).arg(&runp));
    assert!(ok, "{err}");
    let (model, sample) = (dir.join("model.onnx"), dir.join("sample.safetensors"));
    let (ok, out, err) = run(nas()
        .args(["--threads", "2", "retrain"])
        .arg(&runp)
        .args(["--epochs", "1", "--limit", "500", "--onnx"])
        .arg(&model)
        .arg("--onnx-sample")
        .arg(&sample));
    assert!(ok, "{err}");
    assert!(out.contains("ONNX opset 13"), "{out}");
    let (diff, images) = tract_vs_nas(&model, &sample);
    assert_eq!(images, 8);
    assert!(diff <= 1e-4, "tract differs from nas by {diff}");
    // A run that trained its trials keeps no supernet to export from.
    let (ok, _, err) = run(nas().arg("export").arg(&runp).arg("--onnx").arg(&model));
    assert!(!ok && err.contains("no supernet weights"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn export_writes_a_one_shot_architecture_with_the_supernets_weights() {
    let dir = temp_path("onnx", "export");
    let runp = dir.join("run");
    let search = "--threads 2 search --space seed-net --strategy darts --epochs 1 \
                  --limit 2000 --out";
    let (ok, out, err) = run(nas().args(search.split_whitespace()).arg(&runp));
    assert!(ok, "{err}");
    let searched = out
        .lines()
        .find_map(|l| {
            l.strip_prefix("its accuracy with the supernet's weights (validation split): ")
        })
        .and_then(|v| v.trim_end_matches('%').parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no accuracy in {out}"));
    let (model, sample) = (
        dir.join("inherited.onnx"),
        dir.join("inherited.safetensors"),
    );
    let (ok, out, err) = run(nas()
        .args(["--threads", "2", "export"])
        .arg(&runp)
        .arg("--onnx")
        .arg(&model)
        .arg("--onnx-sample")
        .arg(&sample));
    assert!(ok, "{err}");
    // The weights are the supernet's: the exported network scores what the search did,
    // within what recalibrating batch norm on other batches moves.
    let exported = out
        .lines()
        .find(|l| l.starts_with("with the supernet's weights"))
        .and_then(|l| l.split(": ").nth(1)?.split('%').next()?.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no accuracy in {out}"));
    assert!(
        (exported - searched).abs() < 3.0 && searched > 15.0,
        "exported {exported}%, searched {searched}%\n{out}"
    );
    let (diff, _) = tract_vs_nas(&model, &sample);
    assert!(diff <= 1e-4, "tract differs from nas by {diff}");
    let _ = std::fs::remove_dir_all(&dir);
}
