//! `nas search --executor slurm` on a real Slurm cluster: the one-node cluster that
//! `scripts/slurm-up.sh` starts (CI starts it before the tests). What clusters do to
//! jobs is done to the search while it runs (a requeue, the node marked down and back,
//! the controller killed and restarted, the host killed), and each time the journal
//! must hold every trial exactly once with the result the table gives it, the same
//! journal an uninterrupted local run writes. Skipped, visibly, where `sbatch` is
//! absent, unless `NAS_REQUIRE_SLURM` is set.
//!
//! The scenarios disturb the whole cluster, so they run one after another in one test.

use crate::common;

use common::{nas, run, temp_path};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The tests of this file disturb the cluster; one runs at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn cluster_up() -> bool {
    let ok = Command::new("sinfo")
        .args(["-h", "-o", "%T"])
        .output()
        .is_ok_and(|o| o.status.success() && !o.stdout.is_empty());
    if !ok {
        let why = "no Slurm cluster answers `sinfo` (scripts/slurm-up.sh starts one)";
        assert!(std::env::var_os("NAS_REQUIRE_SLURM").is_none(), "{why}");
        nas_core::device::report_skip(&format!("slurm_cluster: {why}"));
    }
    ok
}

fn tmp(name: &str) -> PathBuf {
    let d = temp_path("slurm-cluster", name);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Quick polling, a short grace, and the binary under test on the node.
const SLURM: &str = r#"{"poll_seconds": 0.2, "result_grace_seconds": 2, "max_attempts": 2}"#;

fn search(out: &Path, budget: usize, parallel: usize, slurm: bool) -> Vec<String> {
    let mut a: Vec<String> = [
        "search",
        "--space",
        "nb201",
        "--strategy",
        "evolution",
        "--budget",
        &budget.to_string(),
        "--parallel",
        &parallel.to_string(),
        "--seed",
        "5",
        "--out",
        &out.display().to_string(),
    ]
    .map(String::from)
    .to_vec();
    if slurm {
        a.extend(["--executor", "slurm", "--slurm", SLURM].map(String::from));
    }
    a
}

fn journal(dir: &Path) -> Vec<(u64, Value, Value)> {
    common::journal_records(dir)
}

fn local(name: &str, budget: usize, parallel: usize) -> Vec<(u64, Value, Value)> {
    let dir = tmp(&format!("{name}-local")).join("run");
    let (ok, _, err) = run(nas().args(search(&dir, budget, parallel, false)));
    assert!(ok, "{err}");
    journal(&dir)
}

fn spawn(args: &[String], delay_ms: u64) -> Child {
    nas()
        .env("NAS_TEST_TRIAL_DELAY_MS", delay_ms.to_string())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finish(child: Child) -> String {
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(
        o.status.success(),
        "{:?}\n{}\n{err}",
        o.status,
        String::from_utf8_lossy(&o.stdout)
    );
    err
}

/// The run's jobs that `squeue` shows running (id, name).
fn running(dir: &Path) -> Vec<(String, String)> {
    let out = Command::new("squeue")
        .args(["-h", "--states=RUNNING", "-o", "%i|%j|%k"])
        .output()
        .unwrap();
    let _ = dir;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut f = l.split('|');
            Some((f.next()?.to_string(), f.next()?.to_string()))
        })
        .filter(|(_, n)| n.starts_with("nas-") && !n.ends_with("-probe"))
        .collect()
}

/// Waits until one of the run's trial jobs runs; returns it.
fn a_running_job(dir: &Path) -> (String, String) {
    let start = Instant::now();
    loop {
        if let Some(j) = running(dir).into_iter().next() {
            return j;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no job of the run started"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits for `child`, as an administrator would: resuming the node `n` when Slurm
/// drains it.
fn admin_while(mut child: Child, n: &str) -> Child {
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "the search did not end"
        );
        let o = Command::new("sinfo")
            .args(["-h", "-N", "-o", "%T"])
            .output()
            .unwrap();
        let state = String::from_utf8_lossy(&o.stdout).trim().to_string();
        if state.starts_with("drain") {
            scontrol(&["update", &format!("nodename={n}"), "state=resume"]);
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    child
}

fn scontrol(args: &[&str]) {
    let o = Command::new("scontrol").args(args).output().unwrap();
    assert!(
        o.status.success(),
        "scontrol {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn node() -> String {
    let o = Command::new("sinfo")
        .args(["-h", "-N", "-o", "%N"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .next()
        .unwrap()
        .trim()
        .to_string()
}

fn slurm_dir() -> PathBuf {
    std::env::var_os("NAS_SLURM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/var/lib/nas-slurm".into())
}

fn up_script() -> PathBuf {
    common::root().join("scripts/slurm-up.sh")
}

/// Every trial once, each with the local run's result; and each trial's result file
/// written by a job of its own name.
fn check(name: &str, dir: &Path, want: &[(u64, Value, Value)]) {
    let got = journal(dir);
    assert_eq!(got.len(), want.len(), "{name}: {got:?}");
    assert_eq!(got, want, "{name}");
}

#[test]
fn trials_survive_what_clusters_do_to_jobs() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !cluster_up() {
        return;
    }
    let t0 = Instant::now();
    let lap = |what: &str| {
        eprintln!(
            "slurm_cluster: {what} done at {:.1} s",
            t0.elapsed().as_secs_f64()
        )
    };
    // 1. 12 trials, 2 jobs in flight: the local run's journal, each trial one job.
    let want2 = local("plain", 12, 2);
    let dir = tmp("plain").join("run");
    finish(spawn(&search(&dir, 12, 2, true), 0));
    lap("plain");
    check("plain", &dir, &want2);

    // 2. The host killed mid-run, then resumed.
    let dir = tmp("kill").join("run");
    let mut child = spawn(&search(&dir, 12, 2, true), 800);
    let start = Instant::now();
    while journal(&dir).len() < 4 {
        assert!(start.elapsed() < Duration::from_secs(120));
        std::thread::sleep(Duration::from_millis(50));
    }
    a_running_job(&dir);
    child.kill().unwrap();
    child.wait().unwrap();
    let (ok, out, err) = run(nas()
        .env("NAS_TEST_TRIAL_DELAY_MS", "800")
        .args(["resume", &dir.display().to_string()]));
    assert!(ok, "{out}\n{err}");
    lap("kill");
    check("kill", &dir, &want2);

    // 3. One job in flight: a running job requeued (`scontrol requeue`), which reruns
    // under the same id; then, trials later, the node marked down under a running job
    // and back. The run proposes exactly what a local one does.
    let want1 = local("requeue", 5, 1);
    let dir = tmp("requeue").join("run");
    let child = spawn(&search(&dir, 5, 1, true), 1500);
    let (id, _) = a_running_job(&dir);
    scontrol(&["requeue", &id]);
    let start = Instant::now();
    while journal(&dir).len() < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no progress after the requeue"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    a_running_job(&dir);
    let n = node();
    scontrol(&[
        "update",
        &format!("nodename={n}"),
        "state=down",
        "reason=nas-test",
    ]);
    std::thread::sleep(Duration::from_secs(2));
    scontrol(&["update", &format!("nodename={n}"), "state=resume"]);
    finish(child);
    lap("requeue and node down");
    check("requeue and node down", &dir, &want1);

    // 5. The controller killed while a trial runs, then restarted with its state.
    let dir = tmp("ctld").join("run");
    let child = spawn(&search(&dir, 5, 1, true), 1500);
    a_running_job(&dir);
    let pid = std::fs::read_to_string(slurm_dir().join("run/slurmctld.pid")).unwrap();
    let pid: i32 = pid.trim().parse().unwrap();
    // SAFETY: signalling the test cluster's controller, by the pid it wrote.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    std::thread::sleep(Duration::from_secs(3));
    let o = Command::new(up_script())
        .arg("--keep-state")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // A job the dead controller had started and the new one starts again makes slurmd
    // refuse the copy, and the controller drains the node ("Duplicate jobid") and holds
    // the job. Holding is the search's to undo (it releases its jobs); the drained node
    // is an administrator's, done here.
    let child = admin_while(child, &n);
    let err = finish(child);
    lap("ctld");
    check("ctld", &dir, &want1);
    eprintln!("{err}");

    // 6. A trial that always fails: journaled failed after its attempts; the rest are
    // the local run's.
    let dir = tmp("fail").join("run");
    let mut c = nas();
    c.env("NAS_TEST_FAIL_TRIALS", "1")
        .args(search(&dir, 4, 2, true));
    let (ok, out, err) = run(&mut c);
    assert!(ok, "{out}\n{err}");
    let got = journal(&dir);
    assert_eq!(got.len(), 4);
    assert!(
        got[1].2["failed"].as_str().unwrap().contains("2 attempts"),
        "{:?}",
        got[1]
    );
    assert_eq!(got[0], want2[0]);
    lap("fail");
}

/// A train-evaluator search on seed-net through Slurm returns the same best
/// architecture as the same search run in this process.
#[test]
fn a_training_search_on_the_cluster_finds_what_a_local_one_finds() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !cluster_up() {
        return;
    }
    let args = |dir: &Path, slurm: bool| {
        let mut a: Vec<String> = [
            "search",
            "--space",
            "seed-net",
            "--strategy",
            "random",
            "--budget",
            "3",
            "--parallel",
            "3",
            "--evaluator",
            "train",
            "--epochs",
            "1",
            "--limit",
            "512",
            "--val",
            "256",
            "--batch",
            "64",
            "--seed",
            "2",
            "--out",
            &dir.display().to_string(),
        ]
        .map(String::from)
        .to_vec();
        if slurm {
            a.extend(["--executor", "slurm", "--slurm", SLURM].map(String::from));
        }
        a
    };
    let best = |dir: &Path| -> Value {
        let v: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("best.json")).unwrap()).unwrap();
        v["arch"].clone()
    };
    let l = tmp("train-local").join("run");
    let (ok, _, err) = run(nas().args(args(&l, false)));
    assert!(ok, "{err}");
    let s = tmp("train-slurm").join("run");
    let (ok, out, err) = run(nas().args(args(&s, true)));
    assert!(ok, "{out}\n{err}");
    assert_eq!(best(&s), best(&l));
    // Each trial's architecture and accuracy (its measured latency differs run to run).
    let acc = |j: Vec<(u64, Value, Value)>| -> Vec<(Value, Value)> {
        j.into_iter()
            .map(|(_, a, m)| (a, m["accuracy"].clone()))
            .collect()
    };
    assert_eq!(acc(journal(&s)), acc(journal(&l)));
}
