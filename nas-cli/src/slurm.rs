//! The Slurm executor (`nas search --executor slurm`): every trial is one `sbatch` job
//! that runs `nas trial RUN --trial N` on a node, which reads the trial's spec from the
//! run directory and writes its result there atomically. The host only submits, polls
//! (`squeue` and the result files) and journals; Slurm schedules.
//!
//! What it promises is the journal's: every trial in it exactly once. A trial's files
//! live in `RUN/trials/N/` (`spec.json`, `result.json`, the jobs' logs), and every
//! submission is recorded in `RUN/dispatch.jsonl` (appended and flushed to disk before
//! and after `sbatch`), so a host killed at any moment finds on `nas resume` each
//! unjournaled trial's result, or its live job (by its name, which also covers a kill
//! between `sbatch` and recording the id), or submits it again. A job requeued by Slurm
//! (preemption, a node lost) keeps its id and name and reruns; a job started twice
//! writes the same result twice, which `nas trial` makes harmless. A job that ends
//! without a result is submitted again, up to `max_attempts`, and then journaled as
//! failed.

use crate::executor::{Executor, Outcome};
use crate::search_args::trial_seed;
use anyhow::{anyhow, bail, Context, Result};
use nas_core::evaluate::Metrics;
use nas_core::experiment::write_atomic;
use nas_core::space::Architecture;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The options of `--slurm` (JSON, inline or `@file.json`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SlurmConfig {
    /// `sbatch --partition`.
    #[serde(default)]
    pub partition: Option<String>,
    /// `sbatch --account`.
    #[serde(default)]
    pub account: Option<String>,
    /// `sbatch --gres`, for example `gpu:1`.
    #[serde(default)]
    pub gres: Option<String>,
    /// `sbatch --time`, for example `01:00:00`.
    #[serde(default)]
    pub time: Option<String>,
    /// More `sbatch` arguments, each one string (`["--mem=4G", "--qos=low"]`).
    #[serde(default)]
    pub sbatch_args: Vec<String>,
    /// How often a trial is submitted before it is journaled as failed.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// Seconds between two looks at the cluster.
    #[serde(default = "default_poll")]
    pub poll_seconds: f64,
    /// Seconds a trial whose job ended may take for its result to appear (a shared
    /// filesystem shows another node's files late) before the attempt counts as failed.
    #[serde(default = "default_grace")]
    pub result_grace_seconds: f64,
    /// Whether a search first runs a probe job to check that the nodes see the run
    /// directory and the `nas` binary.
    #[serde(default = "default_probe")]
    pub probe: bool,
    /// Seconds the probe job may take (queueing included).
    #[serde(default = "default_probe_timeout")]
    pub probe_timeout_seconds: f64,
    /// The `nas` binary the jobs run [default: this one, by its absolute path].
    #[serde(default)]
    pub nas: Option<PathBuf>,
}

pub fn default_attempts() -> u32 {
    3
}
pub fn default_poll() -> f64 {
    2.0
}
pub fn default_grace() -> f64 {
    30.0
}
pub fn default_probe() -> bool {
    true
}
pub fn default_probe_timeout() -> f64 {
    600.0
}

impl Default for SlurmConfig {
    fn default() -> Self {
        serde_json::from_value(json!({})).unwrap()
    }
}

impl SlurmConfig {
    /// Reads `--slurm` (inline JSON, or `@file.json`); an error names the field and value.
    pub fn parse(text: Option<&str>) -> Result<SlurmConfig> {
        let Some(text) = text else {
            return Ok(SlurmConfig::default());
        };
        let v = crate::search_args::json_option("--slurm", text)?;
        let what = match text.starts_with('@') {
            true => format!("--slurm {text}"),
            false => "--slurm".to_string(),
        };
        let c: SlurmConfig = serde_json::from_value(v).map_err(|e| anyhow!("{what}: {e}"))?;
        let bad = |field: &str, value: String, want: &str| {
            Err(anyhow!("{what}: `{field}` is {value}; it must be {want}"))
        };
        if !(1..=100).contains(&c.max_attempts) {
            return bad("max_attempts", c.max_attempts.to_string(), "from 1 to 100");
        }
        if !(c.poll_seconds.is_finite() && (0.01..=3600.0).contains(&c.poll_seconds)) {
            return bad(
                "poll_seconds",
                c.poll_seconds.to_string(),
                "from 0.01 to 3600",
            );
        }
        if !(c.result_grace_seconds.is_finite()
            && (0.0..=86400.0).contains(&c.result_grace_seconds))
        {
            return bad(
                "result_grace_seconds",
                c.result_grace_seconds.to_string(),
                "from 0 to 86400",
            );
        }
        if !(c.probe_timeout_seconds.is_finite() && c.probe_timeout_seconds > 0.0) {
            return bad(
                "probe_timeout_seconds",
                c.probe_timeout_seconds.to_string(),
                "a positive number",
            );
        }
        for (field, v) in [
            ("partition", &c.partition),
            ("account", &c.account),
            ("gres", &c.gres),
            ("time", &c.time),
        ] {
            if let Some(v) = v {
                if v.is_empty() || v.starts_with('-') || v.contains(char::is_whitespace) {
                    return bad(field, format!("{v:?}"), "one word, not an option");
                }
            }
        }
        if let Some(arg) = c.sbatch_args.iter().find(|a| taken_sbatch_option(a)) {
            return bad(
                "sbatch_args",
                format!("{arg:?}"),
                "free of the options the executor sets or relies on (--job-name, \
                 --output, --error, --open-mode, --parsable, --requeue, --no-requeue, \
                 --wrap, --array, --clusters, --hold, --wait and their short forms): it \
                 finds a trial's jobs by their name on the default cluster and reads \
                 their logs where it put them",
            );
        }
        Ok(c)
    }

    /// The arguments every `sbatch` of the run gets, before the job's own.
    pub fn sbatch_options(&self) -> Vec<String> {
        let mut o = vec![];
        for (flag, v) in [
            ("--partition", &self.partition),
            ("--account", &self.account),
            ("--gres", &self.gres),
            ("--time", &self.time),
        ] {
            if let Some(v) = v {
                o.push(format!("{flag}={v}"));
            }
        }
        o.extend(self.sbatch_args.iter().cloned());
        o
    }
}

/// Whether an `sbatch` argument is one the executor sets (the job's name, log,
/// requeueing, command) or relies on not being set (one job per submission, on the
/// cluster `squeue` and `scancel` reach, not held, not waited for): a job renamed or on
/// another cluster was never seen again, and was submitted anew each grace period.
pub fn taken_sbatch_option(arg: &str) -> bool {
    const LONG: [&str; 12] = [
        "--job-name",
        "--output",
        "--error",
        "--open-mode",
        "--parsable",
        "--requeue",
        "--no-requeue",
        "--wrap",
        "--array",
        "--clusters",
        "--hold",
        "--wait",
    ];
    // Short forms, with their value attached or not: -J -o -e -a -M -H -W.
    const SHORT: [char; 7] = ['J', 'o', 'e', 'a', 'M', 'H', 'W'];
    if let Some(long) = arg.strip_prefix("--") {
        // sbatch takes an unambiguous abbreviation of a long option (`--job=x`).
        let name = long.split('=').next().unwrap_or("");
        return LONG
            .iter()
            .any(|l| !name.is_empty() && l[2..].starts_with(name));
    }
    arg.strip_prefix('-')
        .and_then(|s| s.chars().next())
        .is_some_and(|c| SHORT.contains(&c))
}

/// One job as `squeue` lists it.
#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    pub id: String,
    pub name: String,
    pub state: String,
    /// Why it is in that state (`squeue`'s reason), if it says.
    pub reason: String,
}

impl Job {
    /// A job Slurm put on hold itself, which waits until released: a requeued job
    /// whose relaunch failed (after a controller crash, say) is left PENDING with
    /// "launch failed requeued held". Other holds are a person's (`scontrol hold`,
    /// "JobHeldUser"; `scontrol requeuehold`, "job requeued in held state"; an
    /// administrator's, "JobHeldAdmin") and are left alone (before, every reason
    /// holding "held" but JobHeldUser was released).
    pub fn held_by_slurm(&self) -> bool {
        self.state == "PENDING"
            && self
                .reason
                .to_ascii_lowercase()
                .contains("launch failed requeued held")
    }
}

/// Whether a job in this state may still run (or is running); every other state is
/// final. A requeued job passes through REQUEUED and PENDING again under the same id.
pub fn is_live(state: &str) -> bool {
    !matches!(
        state,
        "COMPLETED"
            | "FAILED"
            | "CANCELLED"
            | "TIMEOUT"
            | "NODE_FAIL"
            | "OUT_OF_MEMORY"
            | "BOOT_FAIL"
            | "DEADLINE"
            | "PREEMPTED"
            | "REVOKED"
    )
}

/// What the executor needs of a cluster: submit a job, list jobs by name, cancel jobs.
/// [`Programs`] does it with Slurm's commands; tests stand in for it.
pub trait Cluster {
    /// Submits `command` as a requeueable job named `name` writing its output to `log`
    /// (a `sbatch -o` pattern); returns the job id.
    fn submit(&mut self, name: &str, log: &Path, command: &[String]) -> Result<String, String>;
    /// The jobs with these names, finished ones included while Slurm still lists them.
    fn jobs(&mut self, names: &[String]) -> Result<Vec<Job>, String>;
    fn cancel(&mut self, ids: &[String]) -> Result<(), String>;
    /// Releases jobs from a hold.
    fn release(&mut self, ids: &[String]) -> Result<(), String>;
}

/// Slurm through `sbatch`, `squeue` and `scancel` on the `PATH`.
pub struct Programs {
    pub options: Vec<String>,
}

impl Programs {
    pub fn new(cfg: &SlurmConfig) -> Programs {
        Programs {
            options: cfg.sbatch_options(),
        }
    }
}

pub fn output_of(cmd: &mut Command, what: &str) -> Result<String, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("`{what}` could not run: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!("`{what}` failed ({}): {}", out.status, err.trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl Cluster for Programs {
    fn submit(&mut self, name: &str, log: &Path, command: &[String]) -> Result<String, String> {
        let out = output_of(
            Command::new("sbatch")
                .arg("--parsable")
                .arg("--requeue")
                // A requeued job's rerun adds to its log instead of emptying it.
                .arg("--open-mode=append")
                .arg(format!("--job-name={name}"))
                .arg(format!("--output={}", log.display()))
                .args(&self.options)
                .arg("--wrap")
                .arg(shell_join(command)),
            "sbatch",
        )?;
        // `--parsable` prints `ID` or `ID;CLUSTER`.
        let id = out
            .trim()
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit() || b == b'_') {
            return Err(format!(
                "`sbatch --parsable` printed {:?}, not a job id",
                out.trim()
            ));
        }
        Ok(id)
    }

    fn jobs(&mut self, names: &[String]) -> Result<Vec<Job>, String> {
        let mut all = vec![];
        for chunk in names.chunks(64) {
            let out = output_of(
                Command::new("squeue")
                    // `--all`: jobs in hidden partitions too.
                    .args([
                        "--all",
                        "--noheader",
                        "--states=all",
                        "--format=%i|%j|%T|%r",
                    ])
                    .arg(format!("--name={}", chunk.join(","))),
                "squeue",
            )?;
            all.extend(parse_squeue(&out));
        }
        Ok(all)
    }

    fn cancel(&mut self, ids: &[String]) -> Result<(), String> {
        if ids.is_empty() {
            return Ok(());
        }
        output_of(Command::new("scancel").args(ids), "scancel").map(|_| ())
    }

    fn release(&mut self, ids: &[String]) -> Result<(), String> {
        if ids.is_empty() {
            return Ok(());
        }
        output_of(
            Command::new("scontrol").arg("release").args(ids),
            "scontrol release",
        )
        .map(|_| ())
    }
}

/// `squeue --format=%i|%j|%T|%r` lines as jobs (a line that is not one is skipped; the
/// reason, which may hold spaces and commas, is last).
pub fn parse_squeue(out: &str) -> Vec<Job> {
    out.lines()
        .filter_map(|l| {
            let mut f = l.trim().splitn(4, '|');
            let (id, name, state) = (f.next()?, f.next()?, f.next()?);
            let state = state.split_whitespace().next()?;
            (!id.is_empty()).then(|| Job {
                id: id.to_string(),
                name: name.to_string(),
                state: state.to_string(),
                reason: f.next().unwrap_or("").trim().to_string(),
            })
        })
        .collect()
}

/// A command line for `sh -c` that runs exactly these arguments.
pub fn shell_join(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if !a.is_empty()
                && a.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"/._-=:,+@%".contains(&b))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// From now on Ctrl-C (or SIGTERM) asks the waiting loop to cancel the run's jobs and
/// stop, instead of killing the host at once (the flag is `interrupt`'s).
pub fn catch_interrupts() {
    crate::interrupt::catch_signals();
}

/// Sleeps, waking early when interrupted.
pub fn nap(seconds: f64) {
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    while !crate::interrupt::interrupted() {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
}

/// The name of a run's jobs: `nas-` and a hash of the run directory's path and of the
/// run's own id (so two runs never share names, not even a run deleted and made again
/// at the same path), then the trial (or `probe`). A run dispatched by a `nas` from
/// before the id has none, and keeps the names it had. The hash (FNV-1a) is mixed
/// before its high 32 bits are taken, so paths that differ only at their end
/// (`runs/a1`, `runs/a2`) differ in the first digits, which is what `squeue` shows of a
/// name.
pub fn job_name(run: &Path, id: Option<&str>, what: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h = (h ^ *b as u64).wrapping_mul(0x0100_0000_01b3);
        }
    };
    eat(run.as_os_str().as_encoded_bytes());
    if let Some(id) = id {
        eat(&[0]);
        eat(id.as_bytes());
    }
    // A 64-bit finaliser (MurmurHash3's): every bit of h moves every bit out.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    format!("nas-{:08x}-{what}", (h >> 32) as u32)
}

/// A new run's id: the clock's nanoseconds and the process id, mixed.
fn new_run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    format!("{:016x}", trial_seed(nanos, std::process::id() as usize))
}

/// The files of one trial in a run directory.
pub fn trial_dir(run: &Path, trial: usize) -> PathBuf {
    run.join("trials").join(trial.to_string())
}
pub fn spec_path(run: &Path, trial: usize) -> PathBuf {
    trial_dir(run, trial).join("spec.json")
}
pub fn result_path(run: &Path, trial: usize) -> PathBuf {
    trial_dir(run, trial).join("result.json")
}

/// What `nas trial` evaluates: one trial of a run.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Spec {
    pub trial: usize,
    pub arch: Architecture,
    pub seed: u64,
}

/// What `nas trial` writes.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TrialResult {
    pub trial: usize,
    pub arch: Architecture,
    pub metrics: Metrics,
    pub seconds: f64,
    /// The Slurm job and restart count that wrote it, where a job did.
    #[serde(default)]
    pub job: Option<String>,
    #[serde(default)]
    pub restart: Option<u32>,
    /// Set when the evaluation failed on the device (its message): the trial fails as a
    /// local one that met the same failure does, without another attempt (the next would
    /// fail alike).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_failure: Option<String>,
}

impl TrialResult {
    /// What became of the trial, by its result.
    pub fn outcome(self) -> Outcome {
        match self.device_failure {
            Some(why) => Outcome::DeviceFailed(why),
            None => Outcome::Done(self.metrics, self.seconds),
        }
    }
}

/// The result of `trial` for `arch`, if one is there (a result for another
/// architecture, left by an earlier spec of the trial, is none).
pub fn read_result(run: &Path, trial: usize, arch: &Architecture) -> Option<TrialResult> {
    let bytes = std::fs::read(result_path(run, trial)).ok()?;
    let r: TrialResult = serde_json::from_slice(&bytes).ok()?;
    (r.trial == trial && &r.arch == arch).then_some(r)
}

/// `RUN/dispatch.jsonl`: one line per event of a trial's jobs, each flushed to disk
/// before the executor goes on.
pub struct DispatchLog {
    path: PathBuf,
    /// The run's id, for its job names (`None`: a run first dispatched by a `nas` from
    /// before ids, whose jobs keep their old names).
    pub id: Option<String>,
    /// For each trial, the attempts made since its spec was last written.
    pub attempts: BTreeMap<usize, u32>,
    /// Trials whose last attempt an interrupt cancelled, with the jobs it cancelled:
    /// submitted again as that same attempt, not counted as a failed one.
    pub interrupted: BTreeMap<usize, BTreeSet<String>>,
    /// Whether the id is new and still to be written (as the log's first line, before
    /// the first event: a search that submits nothing leaves no log).
    id_unwritten: bool,
}

impl DispatchLog {
    fn open(run: &Path) -> Result<DispatchLog> {
        let path = run.join("dispatch.jsonl");
        let mut attempts = BTreeMap::new();
        let mut interrupted: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
        let text = match std::fs::read(&path) {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => bail!("{}: {e}", path.display()),
        };
        // A line cut short by a kill is skipped: the events it would have recorded are
        // found again from the cluster and the result files.
        let mut id = None;
        for v in text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        {
            if v["event"] == "run" {
                id = v["id"].as_str().map(str::to_string);
            }
            let Some(t) = v["trial"].as_u64() else {
                continue;
            };
            let t = t as usize;
            match v["event"].as_str() {
                Some("spec") => {
                    attempts.insert(t, 0);
                    interrupted.remove(&t);
                }
                Some("submitted") => {
                    let a = v["attempt"].as_u64().unwrap_or(0) as u32;
                    let e = attempts.entry(t).or_insert(0);
                    *e = (*e).max(a);
                    interrupted.remove(&t);
                }
                Some("interrupted") => {
                    let jobs = v["jobs"].as_array().into_iter().flatten();
                    let ids = jobs.filter_map(|j| j.as_str().map(str::to_string));
                    interrupted.entry(t).or_default().extend(ids);
                }
                _ => {}
            }
        }
        // A run's first dispatch gives it its id (a log with lines but no id is an
        // older run's: its names stay as they were).
        let id_unwritten = text.trim().is_empty();
        if id_unwritten {
            id = Some(new_run_id());
        }
        Ok(DispatchLog {
            path,
            attempts,
            interrupted,
            id,
            id_unwritten,
        })
    }

    pub fn record(&mut self, v: Value) -> Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .with_context(|| self.path.display().to_string())?;
        let mut line = Vec::new();
        if self.id_unwritten {
            serde_json::to_writer(&mut line, &json!({"event": "run", "id": self.id}))?;
            line.push(b'\n');
        }
        serde_json::to_writer(&mut line, &v)?;
        line.push(b'\n');
        f.write_all(&line)
            .and_then(|_| f.sync_data())
            .with_context(|| self.path.display().to_string())?;
        self.id_unwritten = false;
        Ok(())
    }
}

/// One trial the executor waits for.
pub struct Pending {
    trial: usize,
    arch: Architecture,
    name: String,
    /// Attempts submitted (0: none yet).
    attempt: u32,
    /// The ids of its jobs seen so far, with their last states.
    jobs: BTreeMap<String, String>,
    /// When its jobs were first all seen ended without a result.
    ended_since: Option<Instant>,
    /// Submit it (again) at the next look: its last `sbatch` failed (the job may or may
    /// not exist), or an interrupt cancelled its last attempt.
    submit_failed: bool,
    /// Jobs of it an interrupt cancelled: never its attempt again, even while Slurm
    /// still lists them as live (COMPLETING, until the kill completes).
    cancelled: BTreeSet<String>,
    /// `sbatch` refusals in a row, and when to try again: the wait doubles, from twice
    /// `poll_seconds` up to 5 minutes (before, a refused submission was tried again at
    /// every look, every 2 s by default, for as long as the refusal lasted).
    refusals: u32,
    retry_at: Option<Instant>,
    outcome: Option<Outcome>,
}

/// The Slurm executor of one run.
pub struct Slurm<C: Cluster> {
    pub cluster: C,
    cfg: SlurmConfig,
    run: PathBuf,
    seed: u64,
    nas: PathBuf,
    pub log: DispatchLog,
    /// Whether a job was ever submitted successfully (an `sbatch` that fails before any
    /// did is a configuration error, reported at once).
    pub submitted_any: bool,
    squeue_failing: bool,
}

impl<C: Cluster> Slurm<C> {
    /// The executor of the run in `run` (an absolute path), whose jobs run `nas`.
    pub fn new(cluster: C, cfg: SlurmConfig, run: &Path, seed: u64, nas: PathBuf) -> Result<Self> {
        catch_interrupts();
        Ok(Slurm {
            cluster,
            log: DispatchLog::open(run)?,
            cfg,
            run: run.to_path_buf(),
            seed,
            nas,
            submitted_any: false,
            squeue_failing: false,
        })
    }

    /// The name of this run's job `what` (a trial's number, `probe` or `search`).
    pub fn job_name(&self, what: &str) -> String {
        job_name(&self.run, self.log.id.as_deref(), what)
    }

    /// Runs a job that writes a file into the run directory through `nas trial --probe`,
    /// and checks the file arrives: the nodes see the run directory and the binary.
    pub fn probe(&mut self) -> Result<()> {
        if !self.cfg.probe {
            return Ok(());
        }
        let nonce = format!("{:x}", trial_seed(std::process::id() as u64, 0) as u32);
        let dir = self.run.join("trials");
        std::fs::create_dir_all(&dir).with_context(|| dir.display().to_string())?;
        let file = dir.join(format!("probe-{nonce}"));
        let log = log_pattern(&dir, &format!("probe-{nonce}-%j.out"));
        let name = self.job_name("probe");
        let cmd = vec![
            self.nas.display().to_string(),
            "trial".into(),
            self.run.display().to_string(),
            "--probe".into(),
            nonce.clone(),
        ];
        let id = self
            .cluster
            .submit(&name, &log, &cmd)
            .map_err(|e| anyhow!("--executor slurm: the probe job could not be submitted: {e}"))?;
        self.submitted_any = true;
        let start = Instant::now();
        let mut ended = None;
        loop {
            if file.exists() {
                let _ = std::fs::remove_file(&file);
                return Ok(());
            }
            if crate::interrupt::interrupted() {
                let _ = self.cluster.cancel(&[id.clone()]);
                bail!("interrupted while the probe job {id} waited");
            }
            if start.elapsed().as_secs_f64() > self.cfg.probe_timeout_seconds {
                let _ = self.cluster.cancel(&[id.clone()]);
                bail!(
                    "--executor slurm: the probe job {id} did not finish within {} s \
                     (`probe_timeout_seconds` in --slurm; `\"probe\": false` skips the probe)",
                    self.cfg.probe_timeout_seconds
                );
            }
            if let Ok(jobs) = self.cluster.jobs(std::slice::from_ref(&name)) {
                let state = jobs.iter().find(|j| j.id == id).map(|j| j.state.clone());
                if state.as_deref().is_none_or(|s| !is_live(s)) {
                    let since = *ended.get_or_insert_with(Instant::now);
                    if since.elapsed().as_secs_f64() >= self.cfg.result_grace_seconds.min(60.0) {
                        let logged = log_of(&dir, &format!("probe-{nonce}-"), &id);
                        let why = match logged {
                            Some((p, tail)) => format!(
                                "its log {} says:\n{tail}\n(is `{}` on every node? \
                                 `nas` in --slurm names the binary the jobs run)",
                                p.display(),
                                self.nas.display()
                            ),
                            None => format!(
                                "neither its file nor its log appeared in {}: the run \
                                 directory must be on a filesystem the cluster's nodes \
                                 share (choose one with --out)",
                                dir.display()
                            ),
                        };
                        bail!(
                            "--executor slurm: the probe job {id} ended ({}) without \
                             writing its file; {why}",
                            state.unwrap_or_else(|| "no longer listed".into())
                        );
                    }
                }
            }
            nap(self.cfg.poll_seconds.min(1.0));
        }
    }

    /// The command a trial's job runs.
    fn command(&self, trial: usize) -> Vec<String> {
        vec![
            self.nas.display().to_string(),
            "trial".into(),
            self.run.display().to_string(),
            "--trial".into(),
            trial.to_string(),
        ]
    }

    /// Writes the spec of a trial, unless it holds this architecture already; a spec of
    /// another architecture (a resumed strategy that proposed differently) is replaced,
    /// its result removed and its jobs cancelled, and its attempts start again.
    pub fn write_spec(&mut self, trial: usize, arch: &Architecture, name: &str) -> Result<()> {
        let p = spec_path(&self.run, trial);
        let spec = Spec {
            trial,
            arch: arch.clone(),
            seed: trial_seed(self.seed, trial),
        };
        if let Ok(b) = std::fs::read(&p) {
            if serde_json::from_slice::<Spec>(&b).is_ok_and(|s| s == spec) {
                // A device failure an earlier process left (its search stopped at it, not
                // journaled) is evaluated again, as a local search does on resume.
                let left = read_result(&self.run, trial, arch);
                if left.is_some_and(|r| r.device_failure.is_some()) {
                    let _ = std::fs::remove_file(result_path(&self.run, trial));
                    self.log.attempts.insert(trial, 0);
                }
                return Ok(());
            }
            if let Ok(jobs) = self.cluster.jobs(&[name.to_string()]) {
                let live: Vec<String> = jobs
                    .into_iter()
                    .filter(|j| is_live(&j.state))
                    .map(|j| j.id)
                    .collect();
                let _ = self.cluster.cancel(&live);
            }
            let _ = std::fs::remove_file(result_path(&self.run, trial));
        }
        let dir = trial_dir(&self.run, trial);
        std::fs::create_dir_all(&dir).with_context(|| dir.display().to_string())?;
        write_atomic(&p, &serde_json::to_vec_pretty(&spec)?).map_err(|e| anyhow!(e))?;
        self.log.record(json!({"trial": trial, "event": "spec"}))?;
        self.log.attempts.insert(trial, 0);
        Ok(())
    }

    /// Submits the next attempt of a trial (or its current one again, when the last
    /// `sbatch` failed and no job of it turned up).
    fn submit(&mut self, p: &mut Pending) -> Result<()> {
        let attempt = if p.submit_failed {
            p.attempt.max(1)
        } else {
            p.attempt + 1
        };
        // (Not before the run's first submission: a refused one leaves no log, so a
        // search that never reached the cluster leaves no run. A job whose id a kill lost
        // is found by its name either way.)
        if self.submitted_any {
            self.log.record(json!({
                "trial": p.trial, "attempt": attempt, "event": "submitting", "name": p.name,
            }))?;
        }
        let log = log_pattern(&trial_dir(&self.run, p.trial), "slurm-%j.out");
        match self.cluster.submit(&p.name, &log, &self.command(p.trial)) {
            Ok(id) => {
                self.log.record(json!({
                    "trial": p.trial, "attempt": attempt, "event": "submitted", "job": id,
                }))?;
                self.submitted_any = true;
                p.attempt = attempt;
                p.jobs.insert(id, "PENDING".into());
                p.submit_failed = false;
                p.ended_since = None;
                (p.refusals, p.retry_at) = (0, None);
            }
            Err(e) if !self.submitted_any => bail!("--executor slurm: {e}"),
            Err(e) => {
                p.refusals += 1;
                let wait =
                    (self.cfg.poll_seconds * 2f64.powi(p.refusals.min(30) as i32)).min(300.0);
                p.retry_at = Some(Instant::now() + std::time::Duration::from_secs_f64(wait));
                tracing::warn!(
                    "trial {}: {e}; trying again in {wait:.0} s ({} in a row)",
                    p.trial,
                    crate::count(p.refusals as usize, "refusal")
                );
                self.log.record(json!({
                    "trial": p.trial, "attempt": attempt, "event": "submit-failed",
                    "error": e,
                }))?;
                p.attempt = attempt;
                p.submit_failed = true;
            }
        }
        Ok(())
    }

    /// Cancels every live job of the pending trials (after an interrupt).
    fn cancel_all(&mut self, pending: &[Pending]) -> usize {
        let names: Vec<String> = pending.iter().map(|p| p.name.clone()).collect();
        // The live jobs listed under the trials' names, by name; when the cluster does
        // not answer, the ids seen last.
        let live: Vec<(String, String)> = match self.cluster.jobs(&names) {
            Ok(jobs) => jobs
                .into_iter()
                .filter(|j| is_live(&j.state))
                .map(|j| (j.name, j.id))
                .collect(),
            Err(_) => pending
                .iter()
                .filter(|p| p.outcome.is_none())
                .flat_map(|p| {
                    p.jobs
                        .iter()
                        .filter(|(_, s)| is_live(s))
                        .map(|(id, _)| (p.name.clone(), id.clone()))
                })
                .collect(),
        };
        let ids: BTreeSet<String> = live.iter().map(|(_, id)| id.clone()).collect();
        let ids: Vec<String> = ids.into_iter().collect();
        let _ = self.cluster.cancel(&ids);
        // The attempts cancelled are not the trials' failures: a resume submits each
        // again as the same attempt, and never takes the cancelled jobs for it, though
        // Slurm lists them live until their kill completes (before, each interrupt used
        // up one of every trial's `max_attempts`, and with 1 the resume journaled them
        // all failed).
        for p in pending
            .iter()
            .filter(|p| p.outcome.is_none() && p.attempt > 0)
        {
            let jobs: Vec<&String> = live
                .iter()
                .filter(|(name, _)| *name == p.name)
                .map(|(_, id)| id)
                .collect();
            let _ = self.log.record(json!({
                "trial": p.trial, "attempt": p.attempt, "event": "interrupted", "jobs": jobs,
            }));
        }
        ids.len()
    }

    /// The jobs with these names, or `None` while the cluster does not answer (said
    /// once per outage). Jobs Slurm itself holds are released on the way.
    fn look(&mut self, names: &[String]) -> Option<Vec<Job>> {
        let jobs = match self.cluster.jobs(names) {
            Ok(j) => j,
            Err(e) => {
                if !self.squeue_failing {
                    tracing::warn!("{e}; waiting for the cluster");
                    self.squeue_failing = true;
                }
                return None;
            }
        };
        if self.squeue_failing {
            tracing::info!("the cluster answers again");
            self.squeue_failing = false;
        }
        let held: Vec<&Job> = jobs.iter().filter(|j| j.held_by_slurm()).collect();
        if !held.is_empty() {
            let ids: Vec<String> = held.iter().map(|j| j.id.clone()).collect();
            for j in &held {
                tracing::info!(
                    "job {} ({}) held by Slurm ({}); releasing it",
                    j.id,
                    j.name,
                    j.reason
                );
            }
            if let Err(e) = self.cluster.release(&ids) {
                tracing::warn!("{e}");
            }
        }
        Some(jobs)
    }

    /// One look at the cluster: updates every pending trial, submitting what needs it.
    fn poll(&mut self, pending: &mut [Pending]) -> Result<()> {
        for p in pending.iter_mut().filter(|p| p.outcome.is_none()) {
            if let Some(r) = read_result(&self.run, p.trial, &p.arch) {
                p.outcome = Some(r.outcome());
            }
        }
        let names: Vec<String> = pending
            .iter()
            .filter(|p| p.outcome.is_none())
            .map(|p| p.name.clone())
            .collect();
        if names.is_empty() {
            return Ok(());
        }
        // The controller restarting, say: nothing is decided until it answers.
        let Some(jobs) = self.look(&names) else {
            return Ok(());
        };
        let grace = self.cfg.result_grace_seconds;
        let mut duplicates = vec![];
        for p in pending.iter_mut().filter(|p| p.outcome.is_none()) {
            let mine: Vec<&Job> = jobs
                .iter()
                .filter(|j| j.name == p.name && !p.cancelled.contains(&j.id))
                .collect();
            for j in &mine {
                p.jobs.insert(j.id.clone(), j.state.clone());
            }
            let live: Vec<&&Job> = mine.iter().filter(|j| is_live(&j.state)).collect();
            if !live.is_empty() {
                if live.len() > 1 {
                    // Two jobs of one trial (a submit thought lost): keep the oldest.
                    let mut ids: Vec<&String> = live.iter().map(|j| &j.id).collect();
                    ids.sort_by_key(|id| (id.len(), *id));
                    duplicates.extend(ids.into_iter().skip(1).cloned());
                }
                p.ended_since = None;
                p.submit_failed = false;
                continue;
            }
            // No job of it runs: its result may have landed since the first look.
            if let Some(r) = read_result(&self.run, p.trial, &p.arch) {
                p.outcome = Some(r.outcome());
                continue;
            }
            if p.attempt == 0 || p.submit_failed {
                if p.retry_at.is_none_or(|t| Instant::now() >= t) {
                    self.submit(p)?;
                }
                continue;
            }
            let since = *p.ended_since.get_or_insert_with(Instant::now);
            if since.elapsed().as_secs_f64() < grace {
                continue;
            }
            let states: Vec<String> = p
                .jobs
                .iter()
                .map(|(id, s)| format!("job {id} {}", if is_live(s) { "vanished" } else { s }))
                .collect();
            self.log.record(json!({
                "trial": p.trial, "attempt": p.attempt, "event": "ended", "jobs": states,
            }))?;
            if p.attempt >= self.cfg.max_attempts {
                let why = format!(
                    "no result after {} ({}); logs in {}",
                    crate::count(p.attempt as usize, "attempt"),
                    states.join(", "),
                    trial_dir(&self.run, p.trial).display()
                );
                self.log
                    .record(json!({"trial": p.trial, "event": "failed", "why": why}))?;
                p.outcome = Some(Outcome::Failed(why));
            } else {
                tracing::info!(
                    "trial {}: attempt {} ended without a result ({}); submitting it again",
                    p.trial,
                    p.attempt,
                    states.join(", ")
                );
                p.jobs.clear();
                self.submit(p)?;
            }
        }
        duplicates.sort();
        duplicates.dedup();
        if !duplicates.is_empty() {
            let _ = self.cluster.cancel(&duplicates);
        }
        Ok(())
    }
}

/// The `sbatch --output` pattern of file `file` (holding `%j`) in `dir`: a `%` of the
/// directory's path is written `%%`, which sbatch reads as itself (before, a run
/// directory named `a%jb` sent the logs to another directory, which did not exist, and
/// the jobs failed).
pub fn log_pattern(dir: &Path, file: &str) -> PathBuf {
    PathBuf::from(dir.to_string_lossy().replace('%', "%%")).join(file)
}

/// The tail of the log `sbatch -o DIR/PREFIX%j.out` wrote for job `id`, if it exists.
pub fn log_of(dir: &Path, prefix: &str, id: &str) -> Option<(PathBuf, String)> {
    let p = dir.join(format!("{prefix}{id}.out"));
    let text = std::fs::read_to_string(&p).ok()?;
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(10)..].join("\n");
    Some((p, tail))
}

impl<C: Cluster> Executor for Slurm<C> {
    fn evaluate(&mut self, archs: &[Architecture], first: usize) -> Result<Vec<Outcome>> {
        let mut pending = vec![];
        for (k, arch) in archs.iter().enumerate() {
            let trial = first + k;
            let name = self.job_name(&trial.to_string());
            self.write_spec(trial, arch, &name)?;
            pending.push(Pending {
                trial,
                arch: arch.clone(),
                name,
                attempt: self.log.attempts.get(&trial).copied().unwrap_or(0),
                jobs: BTreeMap::new(),
                ended_since: None,
                // An attempt an interrupt cancelled is submitted again as itself.
                submit_failed: self.log.interrupted.contains_key(&trial),
                cancelled: self
                    .log
                    .interrupted
                    .get(&trial)
                    .cloned()
                    .unwrap_or_default(),
                refusals: 0,
                retry_at: None,
                outcome: None,
            });
        }
        loop {
            if crate::interrupt::interrupted() {
                let n = self.cancel_all(&pending);
                bail!(
                    "interrupted: cancelled {} of the run; `nas resume {}` goes on from the \
                     journal",
                    crate::count(n, "job"),
                    self.run.display()
                );
            }
            self.poll(&mut pending)?;
            if pending.iter().all(|p| p.outcome.is_some()) {
                break;
            }
            nap(self.cfg.poll_seconds);
        }
        // Jobs of finished trials that still run (a duplicate start) are not needed. Only
        // jobs listed under the trials' names now are cancelled: after a controller crash
        // Slurm may give a forgotten job's id to another job.
        if pending.iter().any(|p| p.jobs.values().any(|s| is_live(s))) {
            let names: Vec<String> = pending.iter().map(|p| p.name.clone()).collect();
            if let Ok(jobs) = self.cluster.jobs(&names) {
                let stray: Vec<String> = jobs
                    .into_iter()
                    .filter(|j| is_live(&j.state))
                    .map(|j| j.id)
                    .collect();
                let _ = self.cluster.cancel(&stray);
            }
        }
        Ok(pending.into_iter().map(|p| p.outcome.unwrap()).collect())
    }
}

/// Where a search's trials run (`--executor`).
pub enum ExecutorKind {
    Local,
    Slurm(SlurmConfig),
}

impl ExecutorKind {
    /// `--executor` and `--slurm`, checked: an unknown executor, Slurm options without
    /// Slurm, or Slurm without `sbatch` on the `PATH` is an error that says so.
    pub fn from_args(a: &crate::search_args::SearchArgs) -> Result<ExecutorKind> {
        match a.executor.as_str() {
            "local" => {
                if a.slurm.is_some() {
                    bail!("--slurm is for `--executor slurm` (the executor is `local`)");
                }
                Ok(ExecutorKind::Local)
            }
            "slurm" => {
                let cfg = SlurmConfig::parse(a.slurm.as_deref())?;
                if find_on_path("sbatch").is_none() {
                    bail!(
                        "--executor slurm: `sbatch` is not on the PATH (run the search \
                         where Slurm's commands are, on a login node of the cluster)"
                    );
                }
                Ok(ExecutorKind::Slurm(cfg))
            }
            other => bail!("--executor {other}: unknown; the executors are `local` and `slurm`"),
        }
    }
}

pub fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// The Slurm executor of the run in `run`, its probe job passed.
pub fn start(cfg: SlurmConfig, run: &Path, seed: u64) -> Result<Slurm<Programs>> {
    let run = crate::data_paths::absolute(run);
    let nas = match &cfg.nas {
        Some(p) => p.clone(),
        None => std::env::current_exe()
            .and_then(|p| p.canonicalize())
            .context("the path of this `nas` binary, for the jobs to run")?,
    };
    let mut s = Slurm::new(Programs::new(&cfg), cfg, &run, seed, nas)?;
    s.probe()?;
    Ok(s)
}

/// A one-shot search as one cluster job: the job runs `nas resume RUN --here`, which
/// checkpoints as it goes, so a requeued job (preemption, a node lost) or a resubmitted
/// one goes on from its last checkpoint. This process submits the job (or finds it again,
/// by name, after it was itself killed), watches it, and submits it again when it ends
/// without finishing, up to `max_attempts`. The search has finished when its journal
/// holds its one record.
pub fn one_shot(cfg: SlurmConfig, run: &Path, seed: u64) -> Result<()> {
    let mut s = start(cfg, run, seed)?;
    let run = s.run.clone();
    let name = s.job_name("search");
    let log = log_pattern(&run, "slurm-search-%j.out");
    let cmd = vec![
        s.nas.display().to_string(),
        "resume".into(),
        run.display().to_string(),
        "--here".into(),
    ];
    // The job journals its export, then writes best.json: the search has finished when
    // both are there (a job killed between them ends without it, and the next attempt's
    // `resume` writes it).
    let finished = || {
        std::fs::read_to_string(run.join("journal.jsonl"))
            .is_ok_and(|t| t.lines().any(|l| !l.trim().is_empty()))
            && run.join("best.json").exists()
    };
    const SEARCH: usize = usize::MAX;
    // Attempts of this process: each `nas resume` has `max_attempts` of its own, as the
    // message that ends one says (before, the count was read back from the log, so a
    // search that had used them up could never be resumed).
    let mut attempt = 0;
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut ended_since: Option<Instant> = None;
    loop {
        if crate::interrupt::interrupted() {
            let ids: Vec<String> = seen
                .iter()
                .filter(|(_, st)| is_live(st))
                .map(|(id, _)| id.clone())
                .collect();
            let _ = s.cluster.cancel(&ids);
            bail!(
                "interrupted: cancelled {}; `nas resume {}` goes on from its checkpoint",
                crate::count(ids.len(), "job"),
                run.display()
            );
        }
        if finished() {
            break;
        }
        if let Some(jobs) = s.look(std::slice::from_ref(&name)) {
            for j in &jobs {
                if seen.get(&j.id) != Some(&j.state) {
                    println!("search job {}: {}", j.id, j.state);
                    seen.insert(j.id.clone(), j.state.clone());
                }
            }
            if jobs.iter().any(|j| is_live(&j.state)) {
                ended_since = None;
            } else if !finished() {
                let since = *ended_since.get_or_insert_with(Instant::now);
                // At once when no job of the search was seen ended here; else after the
                // grace (a job that ended as this host started may still be landing its
                // result).
                let first = attempt == 0 && seen.is_empty();
                if first || since.elapsed().as_secs_f64() >= s.cfg.result_grace_seconds {
                    if attempt >= s.cfg.max_attempts {
                        bail!(
                            "the search job ended without finishing {} (logs: {}); \
                                 `nas resume {}` tries again from its checkpoint",
                            crate::count(attempt as usize, "time"),
                            run.join("slurm-search-JOBID.out").display(),
                            run.display()
                        );
                    }
                    attempt += 1;
                    s.log.record(json!({
                        "trial": SEARCH, "attempt": attempt, "event": "submitting",
                    }))?;
                    let id = s
                        .cluster
                        .submit(&name, &log, &cmd)
                        .map_err(|e| anyhow!("--executor slurm: {e}"))?;
                    s.log.record(json!({
                        "trial": SEARCH, "attempt": attempt, "event": "submitted", "job": id,
                    }))?;
                    println!("submitted the search as job {id} (attempt {attempt})");
                    ended_since = None;
                }
            }
        }
        nap(s.cfg.poll_seconds);
    }
    let best = run.join("best.json");
    let text = std::fs::read_to_string(&best).unwrap_or_default();
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    println!(
        "the search finished; its output is in {}",
        run.join("slurm-search-*.out").display()
    );
    if !v["arch"].is_null() {
        println!("exported architecture: {}", v["arch"]);
        println!("written to {}", best.display());
    }
    Ok(())
}
