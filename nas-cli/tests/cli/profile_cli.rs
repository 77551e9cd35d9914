//! `nas profile` as a user runs it: the per-kernel table, the fused/unfused comparison,
//! and a Chrome trace that parses and holds the kernels and the steps.

use crate::common;

use std::path::Path;
use std::process::Command;

fn nas() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_nas"));
    c.current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
    c
}

#[test]
fn profile_prints_the_kernel_table_and_writes_a_trace() {
    for (space, extra) in [
        ("seed-net", vec![]),
        ("darts", vec!["--channels", "4", "--cells", "2"]),
    ] {
        let trace =
            std::env::temp_dir().join(format!("nas-profile-{space}-{}.json", std::process::id()));
        let o = nas()
            .args([
                "--threads",
                "2",
                "profile",
                "--space",
                space,
                "--batch",
                "4",
                "--steps",
                "2",
            ])
            .args(&extra)
            .arg("--trace")
            .arg(&trace)
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success(),
            "{out}\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
        for want in [
            "kernel",
            "calls",
            "GFLOP/s",
            "fused mixed ops",
            "unfused mixed ops",
            "fused against unfused",
        ] {
            assert!(out.contains(want), "{space}: no `{want}` in:\n{out}");
        }
        // Each profiled convolution kernel ran, in both directions.
        assert!(
            out.contains(".fwd") && out.contains(".bwd") && out.contains("conv2d"),
            "{out}"
        );
        let t: serde_json::Value = serde_json::from_slice(&std::fs::read(&trace).unwrap()).unwrap();
        let evs = t["traceEvents"].as_array().unwrap();
        let kernels = evs.iter().filter(|e| e["cat"] == "kernel").count();
        let spans: Vec<&serde_json::Value> = evs.iter().filter(|e| e["cat"] == "span").collect();
        let steps: Vec<&str> = spans
            .iter()
            .filter_map(|e| e["name"].as_str())
            .filter(|n| n.starts_with("step"))
            .collect();
        assert!(kernels > 10, "{space}: {kernels} kernel events");
        assert_eq!(
            steps,
            [
                "step{mode=fused n=1}",
                "step{mode=fused n=2}",
                "step{mode=unfused n=1}",
                "step{mode=unfused n=2}"
            ]
        );
        // Each step's forward pass, backward pass and update are spans inside it, on
        // its track, one after another; each took time, and together no longer than it.
        let at = |e: &serde_json::Value| {
            let ts = e["ts"].as_f64().unwrap();
            (ts, ts + e["dur"].as_f64().unwrap())
        };
        for step in spans
            .iter()
            .filter(|e| e["name"].as_str().unwrap().starts_with("step"))
        {
            let (s0, s1) = at(step);
            assert!(s1 > s0, "{space}: {step}");
            let inner: Vec<&&serde_json::Value> = spans
                .iter()
                .filter(|e| e["tid"] == step["tid"] && e["name"] != step["name"])
                .filter(|e| at(e).0 >= s0 && at(e).1 <= s1)
                .collect();
            let names: Vec<&str> = inner.iter().map(|e| e["name"].as_str().unwrap()).collect();
            assert_eq!(names, ["forward", "backward", "update"], "{space}: {step}");
            let mut end = s0;
            for e in &inner {
                let (t0, t1) = at(e);
                assert!(t0 >= end && t1 > t0, "{space}: {e} in {step}");
                end = t1;
            }
        }
        // The spans time what the kernels ran in: every kernel call starts inside a step.
        for k in evs.iter().filter(|e| e["cat"] == "kernel") {
            let ts = k["ts"].as_f64().unwrap();
            assert!(
                spans
                    .iter()
                    .filter(|e| e["name"].as_str().unwrap().starts_with("step"))
                    .any(|e| at(e).0 <= ts && ts <= at(e).1),
                "{space}: kernel outside every step: {k}"
            );
        }
        // Kernel events nest inside their steps' time spans.
        let span = |name: &str| {
            let e = evs.iter().find(|e| e["name"] == name).unwrap();
            (
                e["ts"].as_f64().unwrap(),
                e["ts"].as_f64().unwrap() + e["dur"].as_f64().unwrap(),
            )
        };
        let (f0, f1) = (
            span("step{mode=fused n=1}").0,
            span("step{mode=fused n=2}").1,
        );
        let inside = evs
            .iter()
            .filter(|e| e["cat"] == "kernel")
            .filter(|e| {
                let ts = e["ts"].as_f64().unwrap();
                ts >= f0 && ts <= f1
            })
            .count();
        assert!(
            inside > 5,
            "{space}: kernels inside the fused steps: {inside}"
        );
        std::fs::remove_file(&trace).ok();
    }
}

#[test]
fn devices_that_cannot_run_are_clear_errors() {
    // Where a CUDA driver is installed, cuda:0 may well run; cuda:99 may not.
    let absent = if nas_core::device::cuda::driver_available() {
        "cuda:99"
    } else {
        "cuda:0"
    };
    for (dev, want) in [
        (absent, "CUDA"),
        ("cuda:x", "not a device number"),
        ("tpu", "expected cpu"),
    ] {
        let o = nas().args(["profile", "--device", dev]).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{dev}: {err}");
        assert!(err.contains(want) && err.contains(dev), "{dev}: {err}");
    }
}

/// On wgpu the table names the kernels that ran there, for the seed network and a small
/// DARTS supernet, and the trace is written.
#[test]
fn profile_on_wgpu_names_the_gpu_kernels() {
    for (space, extra, wants) in [
        (
            "seed-net",
            &[][..],
            &[
                "wgpu:conv2d",
                "wgpu:linear.fwd",
                "wgpu:batch_norm.fwd",
                "wgpu:batch_norm.bwd",
                "wgpu:max_pool2d.bwd",
                "wgpu:log_softmax.fwd",
                "wgpu:nll.fwd",
                "wgpu:nll.bwd",
            ][..],
        ),
        (
            "darts",
            &["--cells", "2", "--channels", "8", "--size", "16"][..],
            &[
                "wgpu:conv2d_depthwise.fwd",
                "wgpu:conv2d_depthwise.bwd",
                "wgpu:conv2d_1x1.bwd",
                "wgpu:avg_pool2d.bwd",
                "wgpu:max_pool2d.fwd",
                "wgpu:weighted_sum.fwd",
                "wgpu:weighted_sum.bwd",
            ][..],
        ),
    ] {
        let trace = std::env::temp_dir().join(format!(
            "nas-profile-wgpu-{space}-{}.json",
            std::process::id()
        ));
        let o = nas()
            .args(["--threads", "2", "profile", "--space", space])
            .args(["--batch", "2", "--steps", "1"])
            .args(extra)
            .args(["--device", "wgpu", "--trace"])
            .arg(&trace)
            .output()
            .unwrap();
        let Some((out, err)) = common::wgpu_output(&o) else {
            return;
        };
        assert!(o.status.success(), "{space}: {out}\n{err}");
        for want in wants {
            assert!(out.contains(want), "{space}: no `{want}` in:\n{out}");
        }
        // Both modes say what crossed between host and device per step, and something did.
        let copies: Vec<&str> = out
            .lines()
            .filter(|l| l.starts_with("host-device copies per step: "))
            .collect();
        assert_eq!(copies.len(), 2, "{space}: {out}");
        for l in copies {
            assert!(!l.contains(" 0.00 MB in 0 calls up"), "{space}: {l}");
        }
        assert!(out.contains("fused against unfused"), "{space}:\n{out}");
        // The device's own peaks, measured, positive, and every wgpu row below 100% of
        // them (each call also pays its copies, so none can reach the peak).
        let line = out
            .lines()
            .find(|l| l.contains("peaks (measured on the adapter"));
        let line = line.unwrap_or_else(|| panic!("{space}: no device peaks in:\n{out}"));
        let gflops: f64 = line
            .split("): ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{space}: cannot read the peaks in `{line}`"));
        assert!(gflops > 0.5, "{space}: `{line}`");
        for row in out
            .lines()
            .filter(|l| l.starts_with("wgpu:") && l.ends_with('%'))
        {
            let flops_share: f64 = row
                .split_whitespace()
                .rev()
                .nth(1)
                .and_then(|v| v.trim_end_matches('%').parse().ok())
                .unwrap_or_else(|| panic!("{space}: cannot read `{row}`"));
            assert!(flops_share < 100.0, "{space}: `{row}`");
        }
        let t = std::fs::read_to_string(&trace).unwrap();
        let v: serde_json::Value = serde_json::from_str(&t).unwrap();
        let events = v["traceEvents"].as_array().map_or(0, |e| e.len());
        assert!(events > 50, "{space}: {events} trace events");
        std::fs::remove_file(&trace).ok();
    }
}

/// `nas cuda-kernels` writes an ELF CUBIN per architecture where NVRTC is at hand (CI),
/// says how to get NVRTC where it is not, and names a bad architecture.
#[test]
fn cuda_kernels_are_prebuilt_for_machines_without_nvrtc() {
    let out = std::env::temp_dir().join(format!("nas-cubins-{}", std::process::id()));
    let o = nas()
        .args(["cuda-kernels", "--arch", "sm_80,sm_90", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    if nas_core::device::cuda::nvrtc_available() {
        assert!(o.status.success(), "{err}");
        for sm in ["sm_80", "sm_90"] {
            let bin = std::fs::read(out.join(format!("nas-kernels-{sm}.cubin"))).unwrap();
            assert_eq!(&bin[..4], b"\x7fELF", "{sm}");
        }
    } else {
        assert!(
            std::env::var_os("NAS_REQUIRE_CUDA_TOOLS").is_none(),
            "NVRTC required but missing"
        );
        assert!(
            err.contains("NVRTC") && err.contains("LD_LIBRARY_PATH"),
            "{err}"
        );
        // Nothing written, not even the directory.
        assert!(!out.exists(), "{}", out.display());
    }
    std::fs::remove_dir_all(&out).ok();
    let o = nas()
        .args(["cuda-kernels", "--arch", "compute_90", "--out"])
        .arg(std::env::temp_dir())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("--arch compute_90"), "{err}");
}

/// An input too large to hold is an error naming the flags (before, `--size 100000`
/// aborted with "memory allocation of 3840000000000 bytes failed" and a backtrace).
#[test]
fn an_input_past_memory_is_an_error_naming_the_flags() {
    for args in [&["--size", "100000"][..], &["--batch", "100000000"]] {
        let o = nas()
            .args(["--threads", "2", "profile", "--steps", "1"])
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains(args[0]) && err.contains("over the cap") && !err.contains("backtrace"),
            "{err}"
        );
    }
}
