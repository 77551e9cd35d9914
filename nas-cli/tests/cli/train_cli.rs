//! `nas train` end to end, as a user runs it: real bundled data, real binary.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn nas() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_nas"));
    c.current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
    c
}

/// Test accuracies printed by `nas train --test-every-epoch`, in percent.
fn test_accuracies(stdout: &str) -> Vec<f32> {
    stdout
        .lines()
        .filter_map(|l| l.split("test acc ").nth(1))
        .map(|v| v.trim_end_matches('%').trim().parse().unwrap())
        .collect()
}

/// Runs `nas train` for `epochs` with the default recipe and returns the test accuracy
/// after each epoch.
fn train(epochs: usize, seed: u64) -> Vec<f32> {
    let (e, seed) = (epochs.to_string(), seed.to_string());
    let out = nas()
        .args([
            "--threads",
            "2",
            "train",
            "--epochs",
            &e,
            "--test-every-epoch",
            "--seed",
            &seed,
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("test accuracy"), "{stdout}");
    let acc = test_accuracies(&stdout);
    assert_eq!(acc.len(), epochs, "{stdout}");
    acc
}

/// The core issue's recipe (SGD lr 0.05, momentum 0.9, weight decay 5e-4, batch 64) with
/// the default per-batch cosine schedule, on Fashion-MNIST. The issue's bars: 86% after
/// one epoch, 88.5% after five. One-epoch runs vary by about a point with the seed, so
/// that bar is held by the mean of three seeds. (Two tests, so the harness runs them
/// side by side.)
#[test]
fn trains_the_seed_network_to_the_one_epoch_bar_on_fashion_mnist() {
    let ones: Vec<f32> = (0..3).map(|s| train(1, s)[0]).collect();
    let mean = ones.iter().sum::<f32>() / 3.0;
    assert!(
        mean >= 86.0,
        "after 1-epoch runs (seeds 0-2): {ones:?}, mean {mean}"
    );
}

/// The issue's five-epoch bar (see above).
#[test]
fn trains_the_seed_network_to_the_five_epoch_bar_on_fashion_mnist() {
    let five = train(5, 0);
    assert!(five[4] >= 88.5, "after a 5-epoch run: {five:?}");
}

#[test]
fn bad_inputs_give_errors_that_name_them() {
    let out = nas()
        .args(["train", "--data", "no/such/dir"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no/such/dir"), "{err}");

    let dir = std::env::temp_dir().join(format!("nas-cli-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/fashion-mnist");
    for f in std::fs::read_dir(&src).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, dir.join(f.file_name().unwrap())).unwrap();
    }
    // Truncate the training images: the error must name that file.
    let victim = dir.join("train-images-idx3-ubyte.gz");
    let bytes = std::fs::read(&victim).unwrap();
    std::fs::write(&victim, &bytes[..bytes.len() / 2]).unwrap();
    let out = nas().args(["train", "--data"]).arg(&dir).output().unwrap();
    std::fs::remove_dir_all(&dir).ok();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("train-images-idx3-ubyte.gz"), "{err}");

    let arch = std::env::temp_dir().join(format!("nas-cli-arch-{}.json", std::process::id()));
    std::fs::write(
        &arch,
        r#"{"conv1": "conv7x7", "conv2": "conv5x5", "skip": [1]}"#,
    )
    .unwrap();
    let out = nas().args(["train", "--arch"]).arg(&arch).output().unwrap();
    std::fs::remove_file(&arch).ok();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`conv1`") && err.contains("conv7x7"), "{err}");

    // `--limit 0` trained on nothing and reported an accuracy (train, a train-evaluator
    // search, retrain): an error naming the flag instead.
    for cmd in [
        &["train", "--limit", "0"][..],
        &[
            "search",
            "--strategy",
            "random",
            "--evaluator",
            "train",
            "--limit",
            "0",
        ],
        &["retrain", "no-such-run", "--limit", "0"],
    ] {
        let out = nas().args(cmd).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{cmd:?}: {err}");
        assert!(
            err.contains("--limit") && err.contains("at least 1"),
            "{err}"
        );
    }

    // Outputs that cannot be written are refused before the training they would keep
    // (before: after it, the result lost); two flags naming one file are refused; a
    // missing directory is made, for `nas export --out` as for `nas train --save`.
    let dir = common::temp_path("train-cli", "outputs");
    std::fs::create_dir_all(&dir).unwrap();
    let save = dir.join("w.safetensors");
    for (args, want) in [
        (
            vec!["--save".into(), dir.clone()],
            "is a directory; name a file to write",
        ),
        (
            vec!["--save".into(), save.clone(), "--onnx".into(), save.clone()],
            "--save names the same file",
        ),
    ] {
        let (ok, stdout, err) = common::run(
            nas()
                .args(["--threads", "2", "train", "--epochs", "1", "--limit", "64"])
                .args(&args),
        );
        assert!(!ok, "{args:?}: {stdout}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(
            !stdout.contains("test accuracy"),
            "{args:?} trained first: {stdout}"
        );
    }
    let onnx = dir.join("made/here/m.onnx");
    let (ok, _, err) = common::run(
        nas()
            .args(["--threads", "2", "train", "--epochs", "1", "--limit", "64"])
            .arg("--onnx")
            .arg(&onnx),
    );
    assert!(ok, "{err}");
    assert!(onnx.is_file());
    std::fs::remove_dir_all(&dir).ok();

    // `--threads 100000` spent minutes and gigabytes making threads before any work
    // (this test's timeout stops it if it still does), and `--threads 0` meant all cores.
    for t in ["0", "100000"] {
        let out = nas().args(["--threads", t, "spaces"]).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "--threads {t}: {err}");
        assert!(
            err.contains(&format!("--threads {t}: expected 1 to 1024")),
            "{err}"
        );
    }
}

/// A batch too large for the device (a whole 60,000-image epoch at once: its im2col
/// buffer is past any adapter's per-binding limit) is an error that says so, not a
/// crash with a backtrace.
#[test]
fn a_batch_too_large_for_the_device_is_an_error() {
    let out = nas()
        .args([
            "--threads",
            "2",
            "train",
            "--device",
            "wgpu",
            "--epochs",
            "1",
        ])
        .args(["--batch-size", "60000", "--limit", "60000"])
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    let Some((_, stderr)) = common::wgpu_output(&out) else {
        return;
    };
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("error: wgpu") && stderr.contains("past this adapter's limit"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("stack backtrace"),
        "{stderr}"
    );
}

/// A space of two candidates, one too wide for the wgpu adapter at batch 8 (its 6,000
/// channels of 28x28 take 144 MiB, past the 128 MiB a storage binding may hold on
/// lavapipe), `first` naming which the grid strategy tries first.
pub(crate) fn space_with_a_wide_candidate(
    dir: &std::path::Path,
    first: &str,
) -> std::path::PathBuf {
    space_with_a_candidate_of_width(dir, first, 6000)
}

/// [`space_with_a_wide_candidate`] with the wide candidate's channels.
fn space_with_a_candidate_of_width(
    dir: &std::path::Path,
    first: &str,
    channels: usize,
) -> std::path::PathBuf {
    let (narrow, wide) = if first == "narrow" {
        ("a_narrow", "b_wide")
    } else {
        ("b_narrow", "a_wide")
    };
    let space = serde_json::json!({
        "name": "widths",
        "layers": [
            {"choice": "block", "candidates": {
                narrow: [{"op": "conv", "out": 8}, {"op": "relu"}],
                wide: [
                    {"op": "conv", "out": channels, "kernel": 1},
                    {"op": "relu"},
                    {"op": "conv", "out": 8, "kernel": 1}
                ]
            }},
            {"op": "gap"},
            {"op": "linear", "out": "classes"}
        ]
    });
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("space.json");
    std::fs::write(&path, space.to_string()).unwrap();
    path
}

/// A grid search of two trials over [`space_with_a_wide_candidate`], each trained
/// briefly on a few images (the space file and `--out` come beside it).
pub(crate) const WIDE_SEARCH: [&str; 14] = [
    "--strategy",
    "grid",
    "--evaluator",
    "train",
    "--budget",
    "2",
    "--epochs",
    "1",
    "--limit",
    "64",
    "--val",
    "64",
    "--batch",
    "8",
];

fn search_on_wgpu(
    space: &std::path::Path,
    out: &std::path::Path,
) -> Option<(std::process::Output, String)> {
    search_on_wgpu_with(space, out, &[], &[])
}

/// [`search_on_wgpu`] with more arguments and environment variables.
fn search_on_wgpu_with(
    space: &std::path::Path,
    out: &std::path::Path,
    more: &[&str],
    env: &[(&str, &str)],
) -> Option<(std::process::Output, String)> {
    let o = nas()
        .envs(env.iter().copied())
        .args(["--threads", "2", "search", "--space-file"])
        .arg(space)
        .args(WIDE_SEARCH)
        .args(more)
        .args(["--device", "wgpu", "--out"])
        .arg(out)
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    let (_, stderr) = common::wgpu_output(&o)?;
    assert!(
        !stderr.contains("panicked") && !stderr.contains("stack backtrace"),
        "{stderr}"
    );
    Some((o, stderr))
}

/// An architecture too large for the device fails as a trial (journaled as failed with
/// the device's message, told to the strategy) once another trial of the search has
/// finished there; the search goes on. Before, it ended the search, and resuming asked
/// for the same trial again. Where no trial has finished, the same failure ends the
/// search with an error that points at the settings (every trial would fail alike).
#[test]
fn an_architecture_too_large_for_the_device_fails_its_trial() {
    let dir = common::temp_path("train-cli", "device-trial");
    let space = space_with_a_wide_candidate(&dir, "narrow");
    let run = dir.join("run");
    let Some((o, stderr)) = search_on_wgpu(&space, &run) else {
        return;
    };
    assert!(o.status.success(), "{stderr}");
    assert!(stderr.contains("trial 1: failed: wgpu"), "{stderr}");
    let journal = std::fs::read_to_string(run.join("journal.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = journal
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{journal}");
    assert_eq!(lines[0]["arch"]["block"], "a_narrow", "{journal}");
    assert!(lines[0]["metrics"]["failed"].is_null(), "{journal}");
    let why = lines[1]["metrics"]["failed"].as_str().unwrap_or_default();
    assert!(why.contains("past this adapter's limit"), "{journal}");

    let space = space_with_a_wide_candidate(&dir.join("wide-first"), "wide");
    let Some((o, stderr)) = search_on_wgpu(&space, &dir.join("run-wide-first")) else {
        return;
    };
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("error: trial 0: wgpu")
            && stderr.contains("No trial of this search has finished"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The records of a JSON-lines file of a run (none where it is not there).
fn jsonl(p: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A device that no longer works after a trial's failure ends the search, but the
/// trials of the batch before that trial are journaled (before, the whole batch was
/// dropped and ran again on resume); resuming in a new process evaluates the rest.
/// `NAS_TEST_DEVICE_BREAKS` makes the device count as broken after the failure.
#[test]
fn a_device_broken_mid_batch_keeps_the_trials_before_it() {
    let dir = common::temp_path("train-cli", "device-breaks");
    let space = space_with_a_wide_candidate(&dir, "narrow");
    let run = dir.join("run");
    let breaks = [("NAS_TEST_DEVICE_BREAKS", "1")];
    let Some((o, stderr)) = search_on_wgpu_with(&space, &run, &["--parallel", "2"], &breaks) else {
        return;
    };
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("error: trial 1: wgpu")
            && stderr.contains("the device does not work after it")
            && stderr.contains("nas resume")
            && !stderr.contains("kept"),
        "{stderr}"
    );
    let records = |run: &std::path::Path| jsonl(&run.join("journal.jsonl"));
    let before = records(&run);
    assert_eq!(before.len(), 1, "{before:?}");
    assert_eq!(before[0]["arch"]["block"], "a_narrow");
    assert!(before[0]["metrics"]["failed"].is_null(), "{before:?}");

    let o = nas()
        .args(["--threads", "2", "resume"])
        .arg(&run)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    let after = records(&run);
    assert_eq!(after.len(), 2, "{after:?}");
    assert_eq!(after[0], before[0], "the journaled trial is not run again");
    let why = after[1]["metrics"]["failed"].as_str().unwrap_or_default();
    assert!(why.contains("past this adapter's limit"), "{after:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A device that breaks at the first trial of a batch (the wide one, trial 0) while the
/// batch's second (the narrow one) finishes: the narrow trial is kept, not journaled
/// ahead of the stopped one (its number gives its seed), and the resume journals it in
/// its place as it finished, without running it again, after the wide one fails as a
/// trial. Before, the narrow trial was thrown away and trained again on resume.
#[test]
fn a_device_broken_mid_batch_keeps_the_finished_trials_after_it() {
    let dir = common::temp_path("train-cli", "device-breaks-after");
    let space = space_with_a_wide_candidate(&dir, "wide");
    let run = dir.join("run");
    let breaks = [("NAS_TEST_DEVICE_BREAKS", "1")];
    let Some((o, stderr)) = search_on_wgpu_with(&space, &run, &["--parallel", "2"], &breaks) else {
        return;
    };
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("error: trial 0: wgpu")
            && stderr.contains("the trial after it that finished is kept"),
        "{stderr}"
    );
    assert!(jsonl(&run.join("journal.jsonl")).is_empty());
    let held = jsonl(&run.join("held.jsonl"));
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0]["trial"], 1);
    assert_eq!(held[0]["arch"]["block"], "b_narrow");
    assert!(held[0]["metrics"]["failed"].is_null(), "{held:?}");

    let o = nas()
        .args(["--threads", "2", "resume"])
        .arg(&run)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    let after = jsonl(&run.join("journal.jsonl"));
    assert_eq!(after.len(), 2, "{after:?}");
    let why = after[0]["metrics"]["failed"].as_str().unwrap_or_default();
    assert!(why.contains("past this adapter's limit"), "{after:?}");
    // Its seconds and metrics as held: a trial trained again would take other seconds.
    assert_eq!(
        after[1], held[0],
        "the held trial is journaled as it finished"
    );
    assert!(
        !run.join("held.jsonl").exists(),
        "nothing is held once journaled"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A one-shot search whose supernet holds a candidate the device cannot run (50,000
/// channels of 28x28 for one image: 150 MiB, past lavapipe's 128 MiB binding) stops
/// with the device's message and says where the run stands. Before, the error read
/// "plugin `darts`: host panicked: ...", as if the host had crashed.
#[test]
fn a_one_shot_search_past_the_device_says_so() {
    let dir = common::temp_path("train-cli", "oneshot-past-device");
    let space = space_with_a_candidate_of_width(&dir, "wide", 50_000);
    let o = nas()
        .args(["--threads", "2", "search", "--space-file"])
        .arg(&space)
        .args([
            "--strategy",
            "darts",
            "--epochs",
            "1",
            "--limit",
            "16",
            "--val",
            "8",
        ])
        .args(["--batch", "1", "--device", "wgpu", "--out"])
        .arg(dir.join("run"))
        .output()
        .unwrap();
    let Some((_, stderr)) = common::wgpu_output(&o) else {
        return;
    };
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("past this adapter's limit")
            && stderr.contains("The search stopped on the device before its first checkpoint")
            && !stderr.contains("host panicked")
            && !stderr.contains("backtrace"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// DPP-Net with a latency limit on the device: a candidate whose latency cannot be
/// measured there (50,000 channels of 28x28 take 150 MiB for one image, past the 128
/// MiB of a binding on lavapipe) is over every limit and never asked; the search goes
/// on to the other and ends normally. Before, the failed measurement ended the search
/// with an error.
#[test]
fn dppnet_never_asks_a_network_the_device_cannot_run() {
    let dir = common::temp_path("train-cli", "dppnet-cannot-run");
    let space = space_with_a_candidate_of_width(&dir, "wide", 50_000);
    let run = dir.join("run");
    let o = nas()
        .args(["--threads", "2", "search", "--space-file"])
        .arg(&space)
        .args([
            "--strategy",
            "dppnet",
            "--evaluator",
            "train",
            "--budget",
            "2",
        ])
        .args([
            "--epochs", "1", "--limit", "64", "--val", "64", "--batch", "8",
        ])
        .args(["--config", r#"{"max_latency_ms": 1e6}"#])
        .args(["--device", "wgpu", "--out"])
        .arg(&run)
        .output()
        .unwrap();
    let Some((stdout, stderr)) = common::wgpu_output(&o) else {
        return;
    };
    assert!(o.status.success(), "{stdout}\n{stderr}");
    let journal = std::fs::read_to_string(run.join("journal.jsonl")).unwrap();
    let blocks: Vec<String> = journal
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["arch"]["block"].to_string())
        .collect();
    assert_eq!(blocks, ["\"b_narrow\""], "{journal}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `nas train --device wgpu` (the whole training step on the Vulkan adapter; CI has
/// Mesa's CPU driver) reaches the CPU's test accuracy within a point, same seed, on a
/// 3,200-image epoch scored on the first 2,000 test images (a full epoch on the CPU
/// Vulkan driver takes minutes, and scoring the whole test set most of a minute; the
/// README gives the full-epoch figures).
#[test]
fn the_wgpu_device_trains_to_the_cpu_accuracy() {
    let data = common::root().join("data/fashion-mnist");
    let (test_images, test_labels) = common::bundled_test_subset(2000, "wgpu-train");
    let run = |device: &str| -> Option<f32> {
        let out = nas()
            .args(["--threads", "2", "train", "--device", device])
            .args(["--epochs", "1", "--limit", "3200", "--seed", "3"])
            .arg("--train-images")
            .arg(data.join("train-images-idx3-ubyte.gz"))
            .arg("--train-labels")
            .arg(data.join("train-labels-idx1-ubyte.gz"))
            .arg("--test-images")
            .arg(&test_images)
            .arg("--test-labels")
            .arg(&test_labels)
            .output()
            .unwrap();
        let Some((stdout, stderr)) = common::wgpu_output(&out) else {
            return None;
        };
        assert!(out.status.success(), "{device}: {stdout}\n{stderr}");
        let acc = stdout
            .lines()
            .find_map(|l| l.split("test accuracy ").nth(1))
            .and_then(|v| v.trim_end_matches('%').trim().parse().ok())
            .unwrap_or_else(|| panic!("{device}: no test accuracy in {stdout}"));
        Some(acc)
    };
    let gpu = run("wgpu");
    let cpu = gpu.map(|_| run("cpu").unwrap());
    std::fs::remove_dir_all(test_images.parent().unwrap()).ok();
    let (Some(gpu), Some(cpu)) = (gpu, cpu) else {
        return;
    };
    println!("test accuracy: cpu {cpu:.2}%, wgpu {gpu:.2}%");
    assert!(cpu > 55.0, "the short run should learn something: {cpu}");
    assert!((cpu - gpu).abs() <= 1.0, "cpu {cpu:.2}% vs wgpu {gpu:.2}%");
}

/// `nas resume DIR --device D` runs the rest of a search on another device (a GPU that
/// broke, a CPU to finish on) and records it, so a later resume goes on there; a device
/// that does not parse is the flag's error and leaves the run as it was. Before,
/// `resume` took no `--device` and a run could only go on where it started.
#[test]
fn a_search_resumes_on_another_device() {
    let dir = common::temp_path("train-cli", "resume-device");
    let (ok, _, err) = common::run(
        nas()
            .args(["--threads", "2", "search", "--space", "seed-net"])
            .args([
                "--strategy",
                "random",
                "--evaluator",
                "train",
                "--budget",
                "2",
            ])
            .args([
                "--epochs", "1", "--limit", "64", "--val", "64", "--batch", "8",
            ])
            .arg("--out")
            .arg(&dir),
    );
    assert!(ok, "{err}");
    // The run as a kill after its first trial leaves it.
    let journal = dir.join("journal.jsonl");
    let first = std::fs::read_to_string(&journal)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string();
    std::fs::write(&journal, first + "\n").unwrap();
    for f in ["ended", "strategy_state.json", "best.json"] {
        let _ = std::fs::remove_file(dir.join(f));
    }
    let config = dir.join("config.json");
    let recorded = std::fs::read_to_string(&config).unwrap();
    let (ok, _, err) = common::run(nas().args(["resume", "--device", "tpu"]).arg(&dir));
    assert!(!ok, "{err}");
    assert!(
        err.contains("error: --device tpu: ") && !err.contains("config.json"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&config).unwrap(), recorded);

    let o = nas()
        .args(["--threads", "2", "resume", "--device", "wgpu"])
        .arg(&dir)
        .output()
        .unwrap();
    let Some((stdout, stderr)) = common::wgpu_output(&o) else {
        let _ = std::fs::remove_dir_all(&dir);
        return;
    };
    assert!(o.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("the rest of the search runs on wgpu (before: cpu)"),
        "{stdout}"
    );
    assert_eq!(
        std::fs::read_to_string(&journal).unwrap().lines().count(),
        2
    );
    let now: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    assert_eq!(now["device"], "wgpu");
    let _ = std::fs::remove_dir_all(&dir);
}
