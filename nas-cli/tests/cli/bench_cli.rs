//! `nas bench` as a user runs it: the rows it prints, their figures, and the PyTorch
//! column only where the figures are comparable (the CPU).

use crate::common;

use std::path::Path;
use std::process::{Command, Output};

fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nas"))
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .args(["--threads", "2", "bench", "--seconds", "0.05"])
        .args(args)
        .output()
        .unwrap()
}

/// The number before `unit` on the row that starts with `row`.
fn figure(out: &str, row: &str, unit: &str) -> f64 {
    let line = out
        .lines()
        .find(|l| l.starts_with(row))
        .unwrap_or_else(|| panic!("no `{row}` row in:\n{out}"));
    let before = &line[..line.find(unit).unwrap_or_else(|| panic!("`{line}`"))];
    before
        .split_whitespace()
        .last()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no figure in `{line}`"))
}

#[test]
fn cpu_rows_carry_their_figures_and_pytorchs() {
    let o = bench(&["--only", "gemm,seed"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for n in [512, 1024, 2048] {
        let g = figure(&out, &format!("sgemm {n}^3"), "GFLOP/s");
        // Far below what any machine that builds this does, far above a broken kernel.
        assert!(g > 1.0, "sgemm {n}^3: {g} GFLOP/s");
    }
    let ms = figure(&out, "seed net train step", " ms");
    assert!(ms > 0.0 && ms < 5000.0, "{ms} ms");
    // PyTorch's figure: measured in this run where PyTorch is installed, else the
    // recorded one, marked and explained.
    let seed = out.lines().find(|l| l.starts_with("seed net")).unwrap();
    let has_torch = Command::new("python3")
        .args(["-c", "import torch"])
        .output()
        .is_ok_and(|o| o.status.success());
    if has_torch {
        assert!(!seed.ends_with("(rec.)"), "{seed}");
        let torch_ms: f64 = seed
            .trim_end_matches(" ms")
            .split_whitespace()
            .last()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no measured PyTorch figure: {seed}"));
        assert!(torch_ms > 0.0, "{seed}");
    } else {
        assert!(seed.ends_with("ms (rec.)"), "{seed}");
        assert!(out.contains("PyTorch not installed here"), "{out}");
        assert!(
            out.contains("(rec.): a recorded figure, not measured in this run"),
            "{out}"
        );
    }
    assert!(
        !out.contains("conv2d"),
        "--only left other groups in:\n{out}"
    );
}

#[test]
fn device_rows_name_the_device_and_leave_the_pytorch_column_empty() {
    let o = bench(&["--device", "wgpu", "--only", "seed"]);
    let Some((out, err)) = common::wgpu_output(&o) else {
        return;
    };
    assert!(o.status.success(), "{out}\n{err}");
    assert!(out.starts_with("nas bench on wgpu: "), "{out}");
    let ms = figure(&out, "seed net train step", " ms");
    assert!(ms > 0.0, "{ms} ms");
    let seed = out.lines().find(|l| l.starts_with("seed net")).unwrap();
    assert!(
        seed.trim_end().ends_with(" ms") && !seed.contains("12.7"),
        "{seed}"
    );
}

#[test]
fn a_bad_device_is_a_clear_error() {
    let o = bench(&["--device", "tpu"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("--device tpu") && err.contains("expected cpu"),
        "{err}"
    );
}

/// A group `--only` does not know is an error naming the value and the groups, not an
/// empty table (before, `--only bogus` printed no row and exited 0).
#[test]
fn an_unknown_group_is_a_clear_error() {
    let o = bench(&["--only", "seed,bogus"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("'bogus'") && err.contains("--only") && err.contains("darts-iter"),
        "{err}"
    );
}
