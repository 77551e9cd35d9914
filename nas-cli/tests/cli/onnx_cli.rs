//! `--onnx`: `nas retrain` writes the retrained network and `nas export` a one-shot run's
//! architecture with the supernet's weights as ONNX models that run in a real ONNX
//! runtime (ONNX Runtime, or tract where Python lacks it: `nas_onnx::check`) and give the
//! outputs `nas` saved beside them (`--onnx-sample`).

use crate::common;

use common::{nas, run, temp_path};
use std::path::Path;

/// The largest difference between a real ONNX runtime's output for the sample's input
/// (`nas_onnx::check`: ONNX Runtime, or tract where Python lacks it) and the sample's
/// output (what `nas` computed), and how many images the sample holds.
fn runtime_vs_nas(model: &Path, sample: &Path) -> (f32, usize) {
    let out = nas_onnx::check::run(model, sample).unwrap_or_else(|e| panic!("{e}"));
    let got = out.data;
    let s = nas_core::io::load_tensors(sample).unwrap();
    let want = s["output"].to_vec();
    assert_eq!(got.len(), want.len(), "output sizes");
    assert!(want.iter().any(|v| v.abs() > 0.01), "{want:?}");
    let diff = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    eprintln!(
        "{}: largest difference from {} {diff:e}",
        model.display(),
        out.runtime
    );
    (diff, s["input"].shape()[0])
}

#[test]
fn retrain_writes_an_onnx_model_that_a_runtime_runs() {
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
    let (diff, images) = runtime_vs_nas(&model, &sample);
    assert_eq!(images, 8);
    assert!(diff <= 1e-4, "the runtime differs from nas by {diff}");
    // A run that trained its trials keeps no supernet to export from.
    let (ok, _, err) = run(nas().arg("export").arg(&runp).arg("--onnx").arg(&model));
    assert!(!ok && err.contains("no supernet weights"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn export_writes_a_one_shot_architecture_with_the_supernets_weights() {
    exports_with_the_supernets_weights("darts", "{}", 3.0);
}

/// The same of SMASH: the exported network holds what the HyperNet generates for the
/// export (0.09 points from the search's score), not what the checkpoint holds from the
/// last training step's path (0.97 points from it, measured).
#[test]
fn export_writes_a_smash_architecture_with_its_generated_weights() {
    exports_with_the_supernets_weights(
        "smash",
        r#"{"samples": 5, "perturbations": 1, "markov_steps": 1}"#,
        0.5,
    );
}

/// A one-shot search of `seed-net`, then `nas export --onnx`: the exported network scores
/// within `tolerance` points of what the search scored its export.
fn exports_with_the_supernets_weights(strategy: &str, config: &str, tolerance: f64) {
    let dir = temp_path("onnx", &format!("export-{strategy}"));
    let runp = dir.join("run");
    let search = "--threads 2 search --space seed-net --epochs 1 --limit 2000 --out";
    let (ok, out, err) = run(nas().args(search.split_whitespace()).arg(&runp).args([
        "--strategy",
        strategy,
        "--config",
        config,
    ]));
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
    println!("{strategy}: the search scored {searched}%, the exported network {exported}%");
    assert!(
        (exported - searched).abs() < tolerance && searched > 15.0,
        "exported {exported}%, searched {searched}%\n{out}"
    );
    let (diff, _) = runtime_vs_nas(&model, &sample);
    assert!(diff <= 1e-4, "the runtime differs from nas by {diff}");
    let _ = std::fs::remove_dir_all(&dir);
}
