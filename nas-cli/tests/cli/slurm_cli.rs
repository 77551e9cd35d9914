//! `nas search --executor slurm` against stand-in `sbatch`, `squeue` and `scancel`
//! (tests/fake-slurm: they run each job at once in the background and keep the jobs'
//! states in a directory), so the whole path (the options, the probe job, `nas trial`,
//! the result files, resume, Ctrl-C) is tested on any machine. The real cluster's
//! matrix (requeue, a node lost, a controller restart) is `slurm_cluster.rs`.

use crate::common;

use common::{nas, run, temp_path};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn tmp(name: &str) -> PathBuf {
    let d = temp_path("slurm-cli", name);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `nas` with the stand-in programs first on the PATH, keeping their jobs in `state`.
fn nas_fake(state: &Path) -> Command {
    let fake = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fake-slurm");
    let path = format!("{}:{}", fake.display(), std::env::var("PATH").unwrap());
    let mut c = nas();
    c.env("PATH", path).env("FAKE_SLURM_DIR", state);
    c
}

const FAST: &str = r#"{"poll_seconds": 0.05, "result_grace_seconds": 0.5, "max_attempts": 2}"#;

fn search_args(out: &Path, budget: usize) -> Vec<String> {
    [
        "search",
        "--space",
        "nb201",
        "--strategy",
        "evolution",
        "--budget",
        &budget.to_string(),
        "--parallel",
        "2",
        "--seed",
        "3",
        "--out",
        &out.display().to_string(),
    ]
    .map(String::from)
    .to_vec()
}

fn journal(dir: &Path) -> Vec<(u64, Value, Value)> {
    common::journal_records(dir)
}

/// The journal of the same search run locally (the answer every cluster run must give).
fn local_journal(name: &str, budget: usize) -> Vec<(u64, Value, Value)> {
    let out = tmp(&format!("{name}-local"));
    let dir = out.join("run");
    let (ok, _, err) = run(nas().args(search_args(&dir, budget)));
    assert!(ok, "{err}");
    journal(&dir)
}

/// How often each job name was submitted.
fn submissions(state: &Path) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for l in std::fs::read_to_string(state.join("submitted"))
        .unwrap_or_default()
        .lines()
    {
        *m.entry(l.to_string()).or_insert(0) += 1;
    }
    m
}

/// A trial whose job fails on the device (an architecture too large for it) is
/// journaled failed with the device's message after one job, as a local search fails it:
/// `nas trial` writes the failure as the trial's result. Before, the job wrote nothing,
/// and the trial was submitted again until its attempts ran out.
#[test]
fn a_trial_too_large_for_the_device_fails_after_one_job() {
    let base = tmp("device");
    let space = crate::train_cli::space_with_a_wide_candidate(&base, "narrow");
    let (dir, state) = (base.join("run"), base.join("cluster"));
    let o = nas_fake(&state)
        .args(["--threads", "2", "search", "--space-file"])
        .arg(&space)
        .args(crate::train_cli::WIDE_SEARCH)
        .args([
            "--device",
            "wgpu",
            "--executor",
            "slurm",
            "--slurm",
            FAST,
            "--out",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    let Some((out, err)) = common::wgpu_output(&o) else {
        return;
    };
    assert!(o.status.success(), "{out}\n{err}");
    let got = journal(&dir);
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got[0].2["failed"].is_null(), "{got:?}");
    let why = got[1].2["failed"].as_str().unwrap_or_default();
    assert!(why.contains("past this adapter's limit"), "{got:?}");
    let tries = submissions(&state)
        .into_iter()
        .find(|(n, _)| n.ends_with("-1"))
        .unwrap();
    assert_eq!(tries.1, 1, "{tries:?}");
    let result = std::fs::read_to_string(dir.join("trials/1/result.json")).unwrap();
    assert!(result.contains("device_failure"), "{result}");
}

#[test]
fn a_cluster_search_journals_what_a_local_one_does_each_trial_once() {
    let want = local_journal("plain", 12);
    let base = tmp("plain");
    let (dir, state) = (base.join("run"), base.join("cluster"));
    let mut args = search_args(&dir, 12);
    args.extend(["--executor", "slurm", "--slurm", FAST].map(String::from));
    let (ok, out, err) = run(nas_fake(&state).args(&args));
    assert!(ok, "{out}\n{err}");
    assert_eq!(journal(&dir), want);
    let subs = submissions(&state);
    // The probe and one job per trial, none twice.
    assert_eq!(subs.len(), 13, "{subs:?}");
    assert!(subs.values().all(|&n| n == 1), "{subs:?}");
    // Each trial's files: its spec, its result, its job's log.
    let t5 = dir.join("trials/5");
    assert!(t5.join("spec.json").exists() && t5.join("result.json").exists());
    assert!(std::fs::read_dir(&t5).unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .starts_with("slurm-")));
    // The config records the executor, so `nas resume` goes on with it.
    let cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["executor"], "slurm");
}

/// A search whose every trial failed is an error naming the first failure, and the
/// commands on its run say the trials failed and why (before: the search ended with
/// exit 0, and it and `nas report` said the trials were "over the limits ()", with no
/// limits set and no word of the failures).
#[test]
fn a_search_whose_every_trial_failed_says_so() {
    let base = tmp("all-fail");
    let (dir, state) = (base.join("run"), base.join("cluster"));
    let mut args = search_args(&dir, 3);
    args.extend(["--executor", "slurm", "--slurm", FAST].map(String::from));
    let (ok, out, err) = run(nas_fake(&state)
        .env("NAS_TEST_FAIL_TRIALS", "0,1,2")
        .args(&args));
    assert!(!ok, "{out}\n{err}");
    assert!(
        err.contains("every one of the run's 3 trials failed; the first (trial 0: no result after 2 attempts"),
        "{err}"
    );
    assert!(!format!("{out}{err}").contains("limits"), "{out}\n{err}");
    // The search ran to its end (the run is not one to resume).
    assert!(dir.join("ended").exists());
    let (ok, out, err) = run(nas().arg("report").arg(&dir));
    assert!(!ok, "{out}\n{err}");
    assert!(
        out.contains("3 trials failed; left out of the ranking"),
        "{out}"
    );
    assert!(
        out.contains("  trial 2 failed: no result after 2 attempts"),
        "{out}"
    );
    assert!(!format!("{out}{err}").contains("limits"), "{out}\n{err}");
    let (ok, out, err) = run(nas().arg("export").arg(&dir));
    assert!(!ok, "{out}\n{err}");
    assert!(
        err.contains("every one of the run's 3 trials failed"),
        "{err}"
    );
    // One failed trial of three: the search returns the best of the others and counts
    // the failure.
    let dir = base.join("one");
    let mut args = search_args(&dir, 3);
    args.extend(["--executor", "slurm", "--slurm", FAST].map(String::from));
    let (ok, out, err) = run(nas_fake(&state)
        .env("NAS_TEST_FAIL_TRIALS", "1")
        .args(&args));
    assert!(ok, "{out}\n{err}");
    assert!(
        out.contains("1 trial failed; left out of the ranking"),
        "{out}"
    );
    std::fs::remove_dir_all(&base).ok();
}

#[test]
fn a_trial_that_always_fails_is_journaled_failed_after_its_attempts() {
    let want = local_journal("fail", 6);
    let base = tmp("fail");
    let (dir, state) = (base.join("run"), base.join("cluster"));
    let mut args = search_args(&dir, 6);
    args.extend(["--executor", "slurm", "--slurm", FAST].map(String::from));
    let (ok, out, err) = run(nas_fake(&state)
        .env("NAS_TEST_FAIL_TRIALS", "2")
        .args(&args));
    assert!(ok, "{out}\n{err}");
    let got = journal(&dir);
    assert_eq!(got.len(), 6);
    assert!(
        got[2].2["failed"].as_str().unwrap().contains("2 attempts"),
        "{:?}",
        got[2]
    );
    assert_eq!(got[2].2["accuracy"], 0.0);
    // The trials before the failure are the local run's; the one that failed was tried
    // twice (max_attempts) and no more.
    assert_eq!(got[..2], want[..2]);
    let name = submissions(&state)
        .into_iter()
        .find(|(n, _)| n.ends_with("-2"))
        .unwrap();
    assert_eq!(name.1, 2, "{name:?}");
    // What the run returns never is the failed trial.
    let best: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("best.json")).unwrap()).unwrap();
    assert!(!best["trials"].as_array().unwrap().contains(&Value::from(2)));
    assert!(err.contains("trial 2: failed"), "{err}");
}

#[test]
fn a_lost_submit_and_a_silent_controller_lose_no_trial_and_run_none_twice() {
    let want = local_journal("lost", 8);
    let base = tmp("lost");
    let (dir, state) = (base.join("run"), base.join("cluster"));
    std::fs::create_dir_all(&state).unwrap();
    let down = state.join("down");
    std::fs::write(&down, "").unwrap();
    let mut args = search_args(&dir, 8);
    args.extend(["--executor", "slurm", "--slurm", FAST].map(String::from));
    // The 4th sbatch starts its job but says it failed; squeue fails for the first
    // second of the run.
    let child = nas_fake(&state)
        .env("FAKE_SLURM_LOSE_AT", "4")
        .env("FAKE_SLURM_SQUEUE_DOWN", &down)
        .args(&args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    std::fs::remove_file(&down).unwrap();
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert_eq!(journal(&dir), want);
    let subs = submissions(&state);
    assert!(subs.values().all(|&n| n == 1), "{subs:?}");
    assert!(err.contains("Socket timed out"), "{err}");
    assert!(err.contains("waiting for the cluster"), "{err}");
}

#[test]
fn a_host_killed_mid_run_resumes_onto_its_jobs() {
    let want = local_journal("kill", 10);
    let base = tmp("kill");
    let (dir, state) = (base.join("run"), base.join("cluster"));
    let mut args = search_args(&dir, 10);
    args.extend(["--executor", "slurm", "--slurm", FAST].map(String::from));
    let mut child = nas_fake(&state)
        .env("NAS_TEST_TRIAL_DELAY_MS", "300")
        .args(&args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it while a batch is out: after some trials are journaled.
    let start = Instant::now();
    while std::fs::read_to_string(dir.join("journal.jsonl"))
        .map(|t| t.lines().count())
        .unwrap_or(0)
        < 3
    {
        assert!(start.elapsed() < Duration::from_secs(60), "no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(150));
    child.kill().unwrap();
    child.wait().unwrap();
    let (ok, out, err) = run(nas_fake(&state)
        .env("NAS_TEST_TRIAL_DELAY_MS", "300")
        .args(["resume", &dir.display().to_string()]));
    assert!(ok, "{out}\n{err}");
    assert_eq!(journal(&dir), want);
    // Each trial ran as one job: the resumed host found the killed one's jobs by name.
    let subs = submissions(&state);
    let trials: Vec<_> = subs.iter().filter(|(n, _)| !n.ends_with("probe")).collect();
    assert_eq!(trials.len(), 10, "{subs:?}");
    assert!(trials.iter().all(|(_, &n)| n == 1), "{subs:?}");
}

/// A cluster search (`args`) of slow trials, sent SIGINT once the probe and two trials
/// are submitted; what it printed and how it ended.
fn interrupted_once_submitted(state: &Path, args: &[String]) -> std::process::Output {
    let child = nas_fake(state)
        .env("NAS_TEST_TRIAL_DELAY_MS", "30000")
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while submissions(state).len() < 3 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no jobs submitted"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: signalling a child this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    child.wait_with_output().unwrap()
}

#[test]
fn ctrl_c_cancels_the_runs_jobs() {
    let base = tmp("int");
    let (dir, state) = (base.join("run"), base.join("cluster"));
    let mut args = search_args(&dir, 4);
    args.extend(["--executor", "slurm", "--slurm", FAST].map(String::from));
    let o = interrupted_once_submitted(&state, &args);
    let err = String::from_utf8_lossy(&o.stderr);
    // 128 + SIGINT, as a local search ends on Ctrl-C (before: 1, and "error: ").
    assert_eq!(o.status.code(), Some(130), "{err}");
    assert!(err.contains("\ninterrupted: cancelled 2 jobs"), "{err}");
    assert!(!err.contains("error:"), "{err}");
    let cancelled = std::fs::read_to_string(state.join("cancelled")).unwrap();
    assert_eq!(cancelled.lines().count(), 2, "{cancelled}");
}

/// A search interrupted before its first trial was journaled, with one attempt a trial:
/// `nas resume` goes on as it said, and the jobs the interrupt cancelled are submitted
/// again, not counted as failed attempts. Before, the run was discarded (its
/// `dispatch.jsonl` and `trials/` left behind, and "not a run directory" on resume),
/// and a resume of a run with trials journaled journaled every cancelled trial failed.
#[test]
fn an_interrupted_cluster_search_resumes_without_spending_attempts() {
    let want = local_journal("int-resume", 4);
    let base = tmp("int-resume");
    let (dir, state) = (base.join("run%j"), base.join("cluster"));
    let one = r#"{"poll_seconds": 0.05, "result_grace_seconds": 0.5, "max_attempts": 1}"#;
    let mut args = search_args(&dir, 4);
    args.extend(["--executor", "slurm", "--slurm", one].map(String::from));
    let o = interrupted_once_submitted(&state, &args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(130), "{err}");
    // The job logs went where the executor reads them (the `%` of the run's name is
    // not sbatch's `%j`).
    assert!(
        std::fs::read_dir(dir.join("trials").join("0"))
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("slurm-")),
        "no job log in the trial's directory"
    );
    let (ok, out, err) = run(nas_fake(&state)
        .env("NAS_TEST_TRIAL_DELAY_MS", "50")
        .args(["resume", &dir.display().to_string()]));
    assert!(ok, "{out}\n{err}");
    assert_eq!(journal(&dir), want, "{err}");
}

#[test]
fn bad_cluster_options_and_unreachable_binaries_are_named() {
    let base = tmp("bad");
    let state = base.join("cluster");
    for (slurm, want) in [
        (r#"{"partiton": "gpu"}"#, "unknown field `partiton`"),
        (r#"{"max_attempts": 0}"#, "`max_attempts` is 0"),
        ("{", "--slurm {: not JSON"),
    ] {
        let dir = base.join("never");
        let mut args = search_args(&dir, 2);
        args.extend(["--executor", "slurm", "--slurm", slurm].map(String::from));
        let (ok, _, err) = run(nas_fake(&state).args(&args));
        assert!(!ok && err.contains(want), "{slurm}: {err}");
        assert!(!dir.exists(), "a rejected search leaves no run");
    }
    let dir = base.join("run");
    let mut args = search_args(&dir, 2);
    args.extend(["--executor", "slurn"].map(String::from));
    let (ok, _, err) = run(nas_fake(&state).args(&args));
    assert!(!ok && err.contains("--executor slurn: unknown"), "{err}");
    // The probe job cannot start the binary it was given: the error shows its log.
    let mut args = search_args(&dir, 2);
    args.extend(
        [
            "--executor",
            "slurm",
            "--slurm",
            r#"{"poll_seconds": 0.05, "result_grace_seconds": 0.2, "nas": "/nonexistent/nas"}"#,
        ]
        .map(String::from),
    );
    let (ok, _, err) = run(nas_fake(&state).args(&args));
    assert!(!ok, "{err}");
    assert!(
        err.contains("probe job") && err.contains("/nonexistent/nas"),
        "{err}"
    );
    // A partition the cluster does not have: sbatch's error, and no run left behind
    // (before, an empty `trials` directory stayed).
    let dir = base.join("bad-partition");
    let mut args = search_args(&dir, 2);
    args.extend(["--executor", "slurm", "--slurm", r#"{"partition": "nope"}"#].map(String::from));
    let (ok, _, err) = run(nas_fake(&state).args(&args));
    assert!(
        !ok && err.contains("invalid partition specified: nope"),
        "{err}"
    );
    assert!(
        !dir.exists(),
        "a search whose probe was refused leaves no run"
    );
    // Without Slurm's commands the error says where to run.
    let mut args = search_args(&base.join("run2"), 2);
    args.extend(["--executor", "slurm"].map(String::from));
    let (ok, _, err) = run(nas().env("PATH", "/nonexistent").args(&args));
    assert!(!ok && err.contains("`sbatch` is not on the PATH"), "{err}");
}

#[test]
fn a_one_shot_search_is_one_job_that_resumes_from_its_checkpoint_when_killed() {
    let base = tmp("oneshot");
    let (dir, state) = (base.join("run"), base.join("cluster"));
    let args: Vec<String> = [
        "--threads",
        "2",
        "search",
        "--space",
        "seed-net",
        "--strategy",
        "gdas",
        "--epochs",
        "2",
        "--limit",
        "1280",
        "--val",
        "640",
        "--out",
    ]
    .map(String::from)
    .into_iter()
    .chain([dir.display().to_string()])
    .chain(["--executor", "slurm", "--slurm", FAST].map(String::from))
    .collect();
    let child = nas_fake(&state)
        .args(&args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Once the job has checkpointed, it dies (its node lost, say).
    let start = Instant::now();
    while !dir.join("oneshot.json").exists() {
        assert!(start.elapsed() < Duration::from_secs(300), "no checkpoint");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The job's `nas` process only (not the stand-in's shells, whose command lines
    // hold the same words): a node lost under it.
    let pattern = format!(
        "^{} resume {} --here",
        env!("CARGO_BIN_EXE_nas"),
        dir.display()
    );
    let killed = Command::new("pkill")
        .args(["-KILL", "-f", &pattern])
        .status()
        .unwrap();
    assert!(killed.success(), "no job process to kill");
    let o = child.wait_with_output().unwrap();
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(o.status.success(), "{out}\n{err}");
    assert_eq!(journal(&dir).len(), 1, "the search finished once");
    let subs = submissions(&state);
    let search = subs.iter().find(|(n, _)| n.ends_with("-search")).unwrap();
    assert_eq!(*search.1, 2, "{subs:?}");
    assert!(
        out.contains("(attempt 2)") && out.contains("exported architecture"),
        "{out}"
    );
    // The second job went on from the checkpoint the first wrote.
    let logs: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let n = e.unwrap().file_name().to_string_lossy().into_owned();
            n.starts_with("slurm-search-").then_some(n)
        })
        .collect();
    assert_eq!(logs.len(), 2, "{logs:?}");
    let second = logs.iter().max().unwrap();
    let text = std::fs::read_to_string(dir.join(second)).unwrap();
    assert!(text.contains("resum"), "{text}");
}
