//! The unit tests of `nas_cli::slurm` (`nas-cli/src/slurm.rs`).

use anyhow::Result;
use nas_cli::executor::{Executor, Outcome};
use nas_cli::slurm::*;
use nas_core::evaluate::Metrics;
use nas_core::experiment::write_atomic;
use nas_core::space::Architecture;
use serde_json::json;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// A stand-in cluster: each look at it (`jobs`) moves every job one step (PENDING,
/// RUNNING, then an end), and a job that ends well writes its trial's result as
/// `nas trial` would, unless the trial is set to fail.
#[derive(Default)]
struct Fake {
    run: PathBuf,
    jobs: Vec<(Job, usize)>,
    next: u32,
    submits: Vec<(String, usize)>,
    cancelled: Vec<String>,
    fail: BTreeSet<usize>,
    /// Trials whose evaluation fails on the device: the job writes a result saying so
    /// and exits with an error, as `nas trial` does.
    device_fail: BTreeSet<usize>,
    /// Submissions that reach the cluster but report failure to the caller.
    lose_submits: usize,
    /// Looks at the cluster that fail (a controller restarting).
    squeue_down: usize,
    /// Steps a finished job's result takes to appear (a slow shared filesystem).
    result_lag: usize,
    lagging: Vec<(usize, usize)>,
    /// A second job of the same trial is started with each submission.
    duplicate: bool,
    /// Jobs submitted are held (as after a failed relaunch) until released.
    hold: bool,
    released: Vec<String>,
    /// After this many submissions succeed, refuse the next `.1` (the cluster's
    /// answer: not submitted).
    refuse_after: Option<(usize, usize)>,
    refused: usize,
}

fn trial_of(cmd: &[String]) -> usize {
    cmd.last().unwrap().parse().unwrap()
}

impl Fake {
    fn new(run: &Path) -> Fake {
        Fake {
            run: run.to_path_buf(),
            next: 100,
            ..Default::default()
        }
    }
    fn write_result(&self, trial: usize, device_failure: Option<String>) {
        let spec: Spec =
            serde_json::from_slice(&std::fs::read(spec_path(&self.run, trial)).unwrap()).unwrap();
        let r = TrialResult {
            trial,
            arch: spec.arch,
            metrics: Metrics {
                accuracy: trial as f64 / 100.0,
                ..Default::default()
            },
            seconds: 1.0,
            job: None,
            restart: None,
            device_failure,
        };
        write_atomic(
            &result_path(&self.run, trial),
            &serde_json::to_vec(&r).unwrap(),
        )
        .unwrap();
    }
    fn add(&mut self, name: &str, trial: usize) -> String {
        self.next += 1;
        let id = self.next.to_string();
        self.jobs.push((
            Job {
                id: id.clone(),
                name: name.into(),
                state: "PENDING".into(),
                reason: "None".into(),
            },
            trial,
        ));
        id
    }
}

impl Cluster for Fake {
    fn submit(&mut self, name: &str, _log: &Path, cmd: &[String]) -> Result<String, String> {
        let trial = trial_of(cmd);
        if let Some((ok, n)) = self.refuse_after {
            if self.submits.len() >= ok && self.refused < n {
                self.refused += 1;
                return Err("sbatch: error: QOSMaxSubmitJobPerUserLimit".into());
            }
        }
        self.submits.push((name.into(), trial));
        let id = self.add(name, trial);
        if self.hold {
            self.jobs.last_mut().unwrap().0.reason = "launch failed requeued held".into();
        }
        if self.duplicate {
            self.add(name, trial);
        }
        if self.lose_submits > 0 {
            self.lose_submits -= 1;
            return Err("sbatch: error: Socket timed out on send/recv operation".into());
        }
        Ok(id)
    }
    fn jobs(&mut self, names: &[String]) -> Result<Vec<Job>, String> {
        if self.squeue_down > 0 {
            self.squeue_down -= 1;
            return Err(
                "squeue: error: slurm_load_jobs error: Unable to contact slurm controller".into(),
            );
        }
        let (mut finished, mut device_failed) = (vec![], vec![]);
        for (j, trial) in &mut self.jobs {
            match j.state.as_str() {
                "PENDING" if j.reason.contains("held") => {}
                // A cancelled job's kill completing: listed so for one more look.
                "COMPLETING" if j.reason == "dying" => j.reason = "None".into(),
                "COMPLETING" => j.state = "CANCELLED".into(),
                "PENDING" => j.state = "RUNNING".into(),
                "RUNNING" if self.fail.contains(trial) => j.state = "FAILED".into(),
                "RUNNING" if self.device_fail.contains(trial) => {
                    j.state = "FAILED".into();
                    let why = "cuda: out of memory allocating 9000000000 bytes".to_string();
                    device_failed.push((*trial, why));
                }
                "RUNNING" => {
                    j.state = "COMPLETED".into();
                    finished.push(*trial);
                }
                _ => {}
            }
        }
        for t in finished {
            self.lagging.push((t, self.result_lag));
        }
        for (t, why) in device_failed {
            self.write_result(t, Some(why));
        }
        let mut keep = vec![];
        for (t, left) in std::mem::take(&mut self.lagging) {
            if left == 0 {
                self.write_result(t, None);
            } else {
                keep.push((t, left - 1));
            }
        }
        self.lagging = keep;
        Ok(self
            .jobs
            .iter()
            .filter(|(j, _)| names.contains(&j.name))
            .map(|(j, _)| j.clone())
            .collect())
    }
    fn release(&mut self, ids: &[String]) -> Result<(), String> {
        for (j, _) in &mut self.jobs {
            if ids.contains(&j.id) {
                j.reason = "None".into();
                self.released.push(j.id.clone());
            }
        }
        Ok(())
    }
    fn cancel(&mut self, ids: &[String]) -> Result<(), String> {
        for (j, _) in &mut self.jobs {
            if ids.contains(&j.id) && is_live(&j.state) {
                j.state = "CANCELLED".into();
                self.cancelled.push(j.id.clone());
            }
        }
        Ok(())
    }
}

fn cfg(grace: f64) -> SlurmConfig {
    SlurmConfig {
        poll_seconds: 0.01,
        result_grace_seconds: grace,
        ..SlurmConfig::default()
    }
}

fn archs(n: usize) -> Vec<Architecture> {
    (0..n)
        .map(|i| {
            let mut a = Architecture::new();
            a.insert("op".into(), json!(i));
            a
        })
        .collect()
}

fn executor(dir: &Path, fake: Fake, grace: f64) -> Slurm<Fake> {
    Slurm::new(fake, cfg(grace), dir, 7, "/bin/nas".into()).unwrap()
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("nas-slurm-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn accuracies(out: &[Outcome]) -> Vec<f64> {
    out.iter()
        .map(|o| match o {
            Outcome::Done(m, _) => m.accuracy,
            Outcome::Failed(_) | Outcome::DeviceFailed(_) | Outcome::Interrupted(_) => -1.0,
        })
        .collect()
}

#[test]
fn each_trial_runs_once_and_its_result_is_its_own() {
    let d = tmp("plain");
    let mut s = executor(&d, Fake::new(&d), 0.0);
    let out = s.evaluate(&archs(3), 4).unwrap();
    assert_eq!(accuracies(&out), vec![0.04, 0.05, 0.06]);
    let trials: Vec<usize> = s.cluster.submits.iter().map(|x| x.1).collect();
    assert_eq!(trials, vec![4, 5, 6]);
    let names: BTreeSet<&String> = s.cluster.submits.iter().map(|x| &x.0).collect();
    assert_eq!(names.len(), 3, "one name per trial");
    // The next batch finds nothing of this one's left to do.
    let again = s.evaluate(&archs(3), 4).unwrap();
    assert_eq!(accuracies(&again), vec![0.04, 0.05, 0.06]);
    assert_eq!(
        s.cluster.submits.len(),
        3,
        "a trial with a result is not submitted"
    );
}

#[test]
fn a_trial_that_always_fails_is_tried_max_attempts_times_then_failed() {
    let d = tmp("fail");
    let mut fake = Fake::new(&d);
    fake.fail.insert(1);
    let mut s = executor(&d, fake, 0.0);
    let out = s.evaluate(&archs(2), 0).unwrap();
    assert_eq!(
        out[0],
        Outcome::Done(
            Metrics {
                accuracy: 0.0,
                ..Default::default()
            },
            1.0
        )
    );
    match &out[1] {
        Outcome::Failed(why) => assert!(
            why.contains("3 attempts") && why.contains("FAILED"),
            "{why}"
        ),
        o => panic!("{o:?}"),
    }
    let tries = s.cluster.submits.iter().filter(|x| x.1 == 1).count();
    assert_eq!(tries, 3);
    let log = std::fs::read_to_string(d.join("dispatch.jsonl")).unwrap();
    assert_eq!(log.matches("\"event\":\"submitted\"").count(), 4, "{log}");
    assert!(log.contains("\"event\":\"failed\""));
}

/// A trial whose job failed on the device (its result says so) fails as a local trial
/// that met the failure does, after one attempt: the next would fail alike. Before,
/// `nas trial` wrote no result, and the executor submitted it `max_attempts` times.
#[test]
fn a_trial_that_failed_on_the_device_is_not_submitted_again() {
    let d = tmp("device");
    let mut fake = Fake::new(&d);
    fake.device_fail.insert(1);
    let mut s = executor(&d, fake, 0.0);
    let out = s.evaluate(&archs(3), 0).unwrap();
    assert_eq!(accuracies(&out), vec![0.0, -1.0, 0.02]);
    match &out[1] {
        Outcome::DeviceFailed(why) => assert!(why.contains("out of memory"), "{why}"),
        o => panic!("{o:?}"),
    }
    let tries = s.cluster.submits.iter().filter(|x| x.1 == 1).count();
    assert_eq!(tries, 1);
}

/// A device failure a stopped search left as a trial's result is evaluated again by the
/// next process (a resume), as a local search re-evaluates the trial it stopped at; the
/// result it wrote is not taken as the answer. Before, resume read it back and stopped
/// again at once.
#[test]
fn a_device_failure_left_behind_is_evaluated_again_on_resume() {
    let d = tmp("device-resume");
    let mut fake = Fake::new(&d);
    fake.device_fail.insert(0);
    let mut s = executor(&d, fake, 0.0);
    let out = s.evaluate(&archs(2), 0).unwrap();
    assert!(matches!(out[0], Outcome::DeviceFailed(_)), "{out:?}");
    // The search stopped there (no trial had finished); a new process resumes it.
    let mut s = executor(&d, Fake::new(&d), 0.0);
    let out = s.evaluate(&archs(2), 0).unwrap();
    assert_eq!(accuracies(&out), vec![0.0, 0.01]);
    assert_eq!(s.cluster.submits.iter().filter(|x| x.1 == 0).count(), 1);
}

#[test]
fn a_submit_reported_lost_that_reached_the_cluster_is_not_submitted_twice() {
    let d = tmp("lost");
    let mut fake = Fake::new(&d);
    let mut s = executor(&d, Fake::new(&d), 0.0);
    s.submitted_any = true; // not the run's first sbatch, which would be fatal
    fake.lose_submits = 1;
    s.cluster = fake;
    let out = s.evaluate(&archs(1), 0).unwrap();
    assert_eq!(accuracies(&out), vec![0.0]);
    assert_eq!(s.cluster.submits.len(), 1, "{:?}", s.cluster.submits);
    assert_eq!(s.cluster.jobs.len(), 1);
}

#[test]
fn the_first_sbatch_failing_is_an_error_that_says_why() {
    let d = tmp("first");
    let mut fake = Fake::new(&d);
    fake.lose_submits = 1;
    let mut s = executor(&d, fake, 0.0);
    let e = s.evaluate(&archs(1), 0).unwrap_err().to_string();
    assert!(e.contains("Socket timed out"), "{e}");
}

#[test]
fn a_duplicate_start_is_cancelled_and_counted_once() {
    let d = tmp("dup");
    let mut fake = Fake::new(&d);
    fake.duplicate = true;
    let mut s = executor(&d, fake, 0.0);
    let out = s.evaluate(&archs(2), 0).unwrap();
    assert_eq!(accuracies(&out), vec![0.0, 0.01]);
    assert_eq!(s.cluster.submits.len(), 2);
    // Each trial's younger job was cancelled.
    assert_eq!(s.cluster.cancelled.len(), 2, "{:?}", s.cluster.cancelled);
}

#[test]
fn a_late_result_within_the_grace_is_taken_without_a_resubmit() {
    let d = tmp("late");
    let mut fake = Fake::new(&d);
    fake.result_lag = 5;
    let mut s = executor(&d, fake, 5.0);
    let out = s.evaluate(&archs(1), 0).unwrap();
    assert_eq!(accuracies(&out), vec![0.0]);
    assert_eq!(s.cluster.submits.len(), 1);
    // Without a grace, the same lag costs a second attempt.
    let d2 = tmp("late0");
    let mut fake = Fake::new(&d2);
    fake.result_lag = 5;
    let mut s = executor(&d2, fake, 0.0);
    s.evaluate(&archs(1), 0).unwrap();
    assert!(s.cluster.submits.len() > 1);
}

#[test]
fn a_job_slurm_holds_is_released() {
    let d = tmp("held");
    let mut fake = Fake::new(&d);
    fake.hold = true;
    let mut s = executor(&d, fake, 0.0);
    let out = s.evaluate(&archs(1), 0).unwrap();
    assert_eq!(accuracies(&out), vec![0.0]);
    assert_eq!(s.cluster.released.len(), 1);
    // A person's holds are left alone: the user's, `scontrol requeuehold`'s and an
    // administrator's (the last two were released).
    for reason in ["JobHeldUser", "job requeued in held state", "JobHeldAdmin"] {
        let held = Job {
            id: "1".into(),
            name: "x".into(),
            state: "PENDING".into(),
            reason: reason.into(),
        };
        assert!(!held.held_by_slurm(), "{reason}");
    }
}

/// After its first job, a trial whose `sbatch` is refused is tried again after a wait
/// that doubles, not at every look (every `poll_seconds`, for as long as the refusal
/// lasted).
#[test]
fn a_refused_submission_is_tried_again_with_a_growing_wait() {
    let d = tmp("refused");
    let mut fake = Fake::new(&d);
    // The first trial's submission succeeds; the second's is refused 3 times.
    fake.refuse_after = Some((1, 3));
    let mut s = executor(&d, fake, 0.0);
    let start = std::time::Instant::now();
    let out = s.evaluate(&archs(2), 0).unwrap();
    assert_eq!(accuracies(&out), vec![0.0, 0.01]);
    // Waits of 0.02, 0.04 and 0.08 s at `poll_seconds` 0.01: at least 0.14 s, and 4
    // submissions of trial 1 in all (at every look it would have been tried ~14 times).
    assert!(start.elapsed().as_secs_f64() >= 0.14);
    let tries = s.cluster.refused + s.cluster.submits.iter().filter(|(_, t)| *t == 1).count();
    assert_eq!(tries, 4, "{:?}", s.cluster.submits);
}

#[test]
fn a_cluster_that_does_not_answer_decides_nothing() {
    let d = tmp("down");
    let mut fake = Fake::new(&d);
    fake.squeue_down = 20;
    let mut s = executor(&d, fake, 0.0);
    let out = s.evaluate(&archs(2), 0).unwrap();
    assert_eq!(accuracies(&out), vec![0.0, 0.01]);
    assert_eq!(s.cluster.submits.len(), 2);
}

#[test]
fn a_new_executor_reattaches_to_live_jobs_and_takes_results_left_behind() {
    let d = tmp("resume");
    // A host that submitted two trials and was killed: trial 0's job is running,
    // trial 1's job finished and left its result, trial 2 was being submitted
    // (recorded as submitting, no id) and its job exists.
    let a = archs(3);
    let mut s = executor(&d, Fake::new(&d), 0.0);
    for t in 0..3 {
        let name = s.job_name(&t.to_string());
        s.write_spec(t, &a[t], &name).unwrap();
    }
    s.log
        .record(json!({"trial": 0, "attempt": 1, "event": "submitted", "job": "101"}))
        .unwrap();
    s.log
        .record(json!({"trial": 1, "attempt": 1, "event": "submitted", "job": "102"}))
        .unwrap();
    s.log
        .record(json!({"trial": 2, "attempt": 1, "event": "submitting"}))
        .unwrap();
    let mut fake = Fake::new(&d);
    fake.add(&s.job_name("0"), 0);
    fake.jobs[0].0.state = "RUNNING".into();
    fake.write_result(1, None);
    fake.add(&s.job_name("2"), 2);
    let mut s = executor(&d, fake, 0.0);
    assert_eq!(s.log.attempts.get(&0), Some(&1));
    let out = s.evaluate(&a, 0).unwrap();
    assert_eq!(accuracies(&out), vec![0.0, 0.01, 0.02]);
    assert!(s.cluster.submits.is_empty(), "{:?}", s.cluster.submits);
}

/// A trial whose attempt an interrupt cancelled is submitted again as that attempt by a
/// new executor, even while Slurm still lists the cancelled job as live (COMPLETING
/// until its kill completes): taken for the trial's job, it ended without a result and
/// used up the trial's one attempt.
#[test]
fn an_attempt_cancelled_by_an_interrupt_is_not_counted() {
    let d = tmp("interrupted");
    let a = archs(1);
    let one = SlurmConfig {
        max_attempts: 1,
        ..cfg(0.0)
    };
    let mut s = Slurm::new(Fake::new(&d), one.clone(), &d, 7, "/bin/nas".into()).unwrap();
    let name = s.job_name("0");
    s.write_spec(0, &a[0], &name).unwrap();
    s.log
        .record(json!({"trial": 0, "attempt": 1, "event": "submitted", "job": "101"}))
        .unwrap();
    s.log
        .record(json!({"trial": 0, "attempt": 1, "event": "interrupted", "jobs": ["101"]}))
        .unwrap();
    let mut fake = Fake::new(&d);
    fake.add(&name, 0);
    fake.jobs[0].0.state = "COMPLETING".into();
    fake.jobs[0].0.reason = "dying".into();
    let mut s = Slurm::new(fake, one, &d, 7, "/bin/nas".into()).unwrap();
    let out = s.evaluate(&a, 0).unwrap();
    assert_eq!(accuracies(&out), vec![0.0]);
    assert_eq!(s.cluster.submits.len(), 1, "{:?}", s.cluster.submits);
}

#[test]
fn a_changed_spec_drops_the_old_result() {
    let d = tmp("spec");
    let a = archs(2);
    let mut s = executor(&d, Fake::new(&d), 0.0);
    s.evaluate(&a[..1], 0).unwrap();
    // The same trial number for another architecture (a resumed strategy that
    // proposed differently) is evaluated afresh, not given the old result.
    let out = s.evaluate(&a[1..], 0).unwrap();
    assert_eq!(accuracies(&out), vec![0.0]);
    assert_eq!(s.cluster.submits.len(), 2);
    let r = read_result(&d, 0, &a[1]).expect("the new architecture's result");
    assert_eq!(r.arch, a[1]);
}

#[test]
fn options_are_checked_and_squeue_lines_parse() {
    assert!(SlurmConfig::parse(Some(r#"{"partiton": "gpu"}"#))
        .unwrap_err()
        .to_string()
        .contains("partiton"));
    let e = SlurmConfig::parse(Some(r#"{"max_attempts": 0}"#))
        .unwrap_err()
        .to_string();
    assert!(e.contains("max_attempts") && e.contains('0'), "{e}");
    let e = SlurmConfig::parse(Some(r#"{"gres": "--x"}"#))
        .unwrap_err()
        .to_string();
    assert!(e.contains("gres"), "{e}");
    let c = SlurmConfig::parse(Some(
        r#"{"partition": "gpu", "gres": "gpu:1", "sbatch_args": ["--mem=4G"]}"#,
    ))
    .unwrap();
    assert_eq!(
        c.sbatch_options(),
        vec!["--partition=gpu", "--gres=gpu:1", "--mem=4G"]
    );
    let jobs = parse_squeue(
        "12|nas-1-0|RUNNING|None\n13|nas-1-1|CANCELLED by 0|x\ngarbage\n\
         14|nas-1-2|PENDING|launch failed requeued held\n",
    );
    assert_eq!(jobs.len(), 3);
    assert_eq!(jobs[1].state, "CANCELLED");
    assert!(jobs[2].held_by_slurm() && !jobs[0].held_by_slurm());
    // Options the executor sets or relies on, long, abbreviated or short, are refused
    // in `sbatch_args` (a job renamed was never found again and submitted anew each
    // grace period); others pass.
    for arg in [
        "--job-name=mine",
        "--job=mine",
        "--ou=x.log",
        "-Jmine",
        "-J",
        "--output=x.log",
        "-o",
        "--clusters=b",
        "-M",
        "--array=0-3",
        "--hold",
        "--wait",
        "--no-requeue",
    ] {
        let text = json!({ "sbatch_args": [arg] }).to_string();
        let e = SlurmConfig::parse(Some(&text)).unwrap_err().to_string();
        assert!(e.contains("sbatch_args") && e.contains(arg), "{arg}: {e}");
    }
    for arg in [
        "--mem=4G",
        "--qos=low",
        "--wait-all-nodes=1",
        "-N",
        "--nodes=1",
        "--acctg-freq=30",
    ] {
        assert!(!taken_sbatch_option(arg), "{arg}");
    }
    assert!(!is_live(&jobs[1].state) && is_live("REQUEUED") && is_live("PENDING"));
    assert_eq!(
        shell_join(&["/a b/nas".into(), "trial".into(), "it's".into()]),
        r#"'/a b/nas' trial 'it'\''s'"#
    );
}

/// Job names of runs whose paths differ in one character differ in their first hex
/// digits, which is what `squeue` shows of a name by default (`nas-c63b`); before, the
/// hash's low 32 bits barely moved with the path's last bytes (runs `sl1`, `sl2` and
/// `sl6` all began `nas-c63b`).
#[test]
fn job_names_of_neighbouring_runs_differ_in_their_first_digits() {
    let names: Vec<String> = (0..16)
        .map(|i| nas_cli::slurm::job_name(Path::new(&format!("/shared/runs/sl{i}")), None, "3"))
        .collect();
    let heads: std::collections::HashSet<&str> = names.iter().map(|n| &n[..8]).collect();
    assert_eq!(heads.len(), names.len(), "{names:?}");
    assert!(
        names.iter().all(|n| n.len() == 14 && n.ends_with("-3")),
        "{names:?}"
    );
}

/// A run deleted and made again at the same path gets job names of its own (its id is
/// new), so it does not adopt the old run's jobs still in the queue; a resumed run
/// (the same dispatch log) keeps its names; and a run whose log is from before ids
/// keeps the names it had. Before the id, a made-again run had the old run's names.
#[test]
fn a_run_made_again_at_the_same_path_has_names_of_its_own() {
    let d = tmp("again");
    let mut s = executor(&d, Fake::new(&d), 0.0);
    s.evaluate(&archs(1), 0).unwrap();
    let first = s.job_name("0");
    assert_eq!(
        executor(&d, Fake::new(&d), 0.0).job_name("0"),
        first,
        "resumed"
    );
    std::fs::remove_dir_all(&d).unwrap();
    std::fs::create_dir_all(&d).unwrap();
    let again = executor(&d, Fake::new(&d), 0.0).job_name("0");
    assert_ne!(again, first, "made again at {}", d.display());
    // An older run's log: lines, none of them an id.
    std::fs::write(
        d.join("dispatch.jsonl"),
        "{\"trial\":0,\"event\":\"spec\"}\n",
    )
    .unwrap();
    assert_eq!(
        executor(&d, Fake::new(&d), 0.0).job_name("0"),
        nas_cli::slurm::job_name(&d, None, "0")
    );
}
