//! The experiment directory of a run: its config, an append-only journal of every trial,
//! the strategy's saved state and the best architecture. A run killed at any moment
//! resumes from it, re-running no journaled trial and losing none.

use crate::evaluate::Metrics;
use crate::space::Architecture;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// One finished trial, as journaled.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TrialRecord {
    pub trial: usize,
    pub arch: Architecture,
    pub metrics: Metrics,
    pub seconds: f64,
}

/// How a journal ends.
#[derive(Clone, Debug, PartialEq)]
pub enum JournalTail {
    /// Its last line ends with a newline (or it is empty).
    Clean,
    /// Its last record is whole but the newline after it was not written.
    NoNewline,
    /// Its last line (1-based `line`) was cut short, by a kill during its write; its
    /// bytes start at byte `at`.
    Torn { line: usize, at: u64 },
}

/// A journal as read: its trials, in order, and how it ends.
#[derive(Clone, Debug, PartialEq)]
pub struct Journal {
    pub trials: Vec<TrialRecord>,
    pub tail: JournalTail,
}

/// Reads a journal's bytes (of the file `path`, named in errors). Every line but the last
/// must be a trial record, numbered 0, 1, 2, ... in order; a last line without its
/// newline that is the start of a record (what a kill during its write leaves) is a torn
/// write, reported in `tail`, not an error.
pub fn parse_journal(path: &Path, bytes: &[u8]) -> Result<Journal, String> {
    let mut trials: Vec<TrialRecord> = vec![];
    let mut tail = JournalTail::Clean;
    // (A byte-order mark, which an editor may put before the first line, is skipped.)
    let mut at = if bytes.starts_with(b"\xEF\xBB\xBF") {
        3
    } else {
        0
    };
    let mut line = 0usize;
    while at < bytes.len() {
        line += 1;
        let (text, next, ended) = match bytes[at..].iter().position(|&b| b == b'\n') {
            Some(n) => (&bytes[at..at + n], at + n + 1, true),
            None => (&bytes[at..], bytes.len(), false),
        };
        if text.iter().all(u8::is_ascii_whitespace) {
            at = next;
            continue;
        }
        match parse_record(text) {
            Ok(r) => {
                if r.trial != trials.len() {
                    return Err(format!(
                        "{}: line {line}: trial {} where trial {} was due (trial numbers run \
                         0, 1, 2, ... in order; did two processes write this run?)",
                        path.display(),
                        r.trial,
                        trials.len()
                    ));
                }
                trials.push(r);
                if !ended {
                    tail = JournalTail::NoNewline;
                }
            }
            Err(_) if !ended && cut_record(text) => {
                tail = JournalTail::Torn {
                    line,
                    at: at as u64,
                };
            }
            Err(e) => {
                return Err(format!(
                    "{}: line {line}: not a trial record: {e}; repair or remove that line",
                    path.display()
                ))
            }
        }
        at = next;
    }
    Ok(Journal { trials, tail })
}

/// The largest cost a journal records (parameters, MACs, milliseconds): far past any
/// network's.
pub const MAX_COST: f64 = 1e18;

/// One journal line as a trial record, from its bytes (never a lossy conversion).
fn parse_record(text: &[u8]) -> Result<TrialRecord, String> {
    let s = std::str::from_utf8(text).map_err(|e| {
        let i = e.valid_up_to();
        format!("byte 0x{:02X} at column {} is not UTF-8", text[i], i + 1)
    })?;
    let r: TrialRecord = serde_json::from_str(s).map_err(|e| e.to_string())?;
    // What no evaluator writes (a hand edit), which would head every ranking.
    let acc = r.metrics.accuracy;
    if !(0.0..=1.0).contains(&acc) {
        return Err(format!(
            "field `metrics.accuracy`: {acc} is not an accuracy (a fraction from 0 to 1)"
        ));
    }
    // A cost below zero would lead every Pareto set; one past any network's, every
    // table's width. (Before, `"params": -5` joined the Pareto set.)
    for (field, v) in [
        ("params", r.metrics.params),
        ("macs", r.metrics.macs),
        ("latency_ms", r.metrics.latency_ms),
    ] {
        if let Some(v) = v.filter(|v| !(0.0..=MAX_COST).contains(v)) {
            let v = match v.abs() < 1e15 {
                true => format!("{v}"),
                false => format!("{v:e}"),
            };
            return Err(format!(
                "field `metrics.{field}`: {v} is not a cost (from 0 to {MAX_COST:e})"
            ));
        }
    }
    Ok(r)
}

/// Whether a journal's last line, without its newline and no record, is what a kill
/// during a record's write leaves: the start of a record (its JSON ends early, or its
/// bytes end inside a UTF-8 character whose start is such JSON), perhaps followed by the
/// zero bytes some file systems leave where a file grew before a crash.
fn cut_record(text: &[u8]) -> bool {
    let end = text.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    let t = &text[..end];
    let s = match std::str::from_utf8(t) {
        Ok(s) => s,
        Err(e) if e.error_len().is_none() => match std::str::from_utf8(&t[..e.valid_up_to()]) {
            Ok(s) => s,
            Err(_) => return false,
        },
        Err(_) => return false,
    };
    // Nothing but zeros, or a prefix of a JSON value.
    s.is_empty() || serde_json::from_str::<serde_json::Value>(s).is_err_and(|e| e.is_eof())
}

/// The lock that makes one process at a time the writer of a run directory: an OS lock
/// on the directory's `run.lock` (holding the writer's pid), released when dropped or
/// when the process ends, however it ends.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

impl RunLock {
    /// Takes the lock of the run directory `dir` (which must exist), or says which
    /// process holds it.
    pub fn take(dir: &Path) -> Result<RunLock, String> {
        let p = dir.join("run.lock");
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&p)
            .map_err(|e| format!("{}: {e}", p.display()))?;
        // `RunDir::writer` (`nas report` asking whether a run is still being written)
        // holds a shared lock for an instant: a writer that meets it tries again.
        let mut tries = 0;
        let locked = loop {
            match f.try_lock() {
                Err(std::fs::TryLockError::WouldBlock) if tries < 20 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                r => break r,
            }
        };
        match locked {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(format!(
                    "{}: another nas process ({}) is writing this run; wait for it to end \
                     or stop it",
                    dir.display(),
                    lock_holder(&p)
                ))
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(format!("{}: cannot lock: {e}", p.display()))
            }
        }
        let pid = format!("{}\n", std::process::id());
        f.set_len(0)
            .and_then(|_| f.write_all(pid.as_bytes()))
            .and_then(|_| f.sync_data())
            .map_err(|e| format!("{}: {e}", p.display()))?;
        Ok(RunLock { _file: f })
    }
}

/// The holder of a lock file, as its pid (which the holder writes just after locking).
fn lock_holder(p: &Path) -> String {
    for _ in 0..50 {
        let pid = std::fs::read_to_string(p).unwrap_or_default();
        if let Ok(pid) = pid.trim().parse::<u32>() {
            return format!("pid {pid}");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    "pid unknown".into()
}

/// A run's directory. Opened to read ([`RunDir::open`]) it is never written; created or
/// opened to write ([`RunDir::create`], [`RunDir::open_to_write`]) it holds the run's
/// lock, so one process at a time writes it.
pub struct RunDir {
    pub path: PathBuf,
    lock: Option<RunLock>,
    /// Whether [`RunDir::create`] made the directory (so discarding the run may remove
    /// it; a directory the user made stays).
    made: bool,
}

impl RunDir {
    pub fn config_path(&self) -> PathBuf {
        self.path.join("config.json")
    }
    pub fn journal_path(&self) -> PathBuf {
        self.path.join("journal.jsonl")
    }
    pub fn state_path(&self) -> PathBuf {
        self.path.join("strategy_state.json")
    }
    pub fn best_path(&self) -> PathBuf {
        self.path.join("best.json")
    }
    /// Written when a search ends of itself (its budget spent, or its strategy with
    /// nothing more to propose), so a report tells such a run from one that stopped
    /// before its end; removed when a resume starts.
    pub fn ended_path(&self) -> PathBuf {
        self.path.join("ended")
    }
    /// Trials that finished on a device after another trial of their batch was
    /// interrupted there (the device broke): kept for the resume, which journals them in
    /// their places instead of evaluating them again ([`RunDir::hold`]).
    pub fn held_path(&self) -> PathBuf {
        self.path.join("held.jsonl")
    }
    /// The choices of the space the run searches, written when the run is made, so the
    /// commands that only read a run check its architectures without building the space.
    pub fn space_path(&self) -> PathBuf {
        self.path.join("space.json")
    }

    /// Creates a new run directory and takes its lock (refusing a directory that
    /// already holds a journal, or that another process is writing).
    pub fn create(path: &Path, config: &Value) -> Result<RunDir, String> {
        let made = !path.exists();
        // A directory that is not a run but holds files of the names a run writes (a
        // user's best.json, report.html or plots): the run would replace them. (A run's
        // journal is refused below, with its own message; what a run whose journal was
        // removed leaves, its config beside its other records, is a run's to replace.)
        let has = |f: &str| path.join(f).exists();
        let remnant = made_by_a_search(path)
            && [
                "held.jsonl",
                "space.json",
                "setup.json",
                "strategy_state.json",
                "run.lock",
                "oneshot.json",
            ]
            .iter()
            .any(|f| has(f));
        if !made && !remnant && !has("journal.jsonl") {
            let names: Vec<String> = std::fs::read_dir(path)
                .map_err(|e| format!("{}: {e}", path.display()))?
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            // A run's lock, made before any of its files: a search that started here
            // since the checks above (its config.json already listed) is the lock's to
            // refuse, by its pid, not a user's files.
            let locked = names.iter().any(|n| n == "run.lock");
            let mut theirs: Vec<String> = names
                .into_iter()
                .filter(|n| written_by_a_run(n) && n != "run.lock" && !n.starts_with('.'))
                .collect();
            if !locked && !theirs.is_empty() {
                theirs.sort();
                return Err(format!(
                    "{}: is not a run but holds {}, which a new run there would replace; \
                     choose another --out (or move them)",
                    path.display(),
                    theirs.join(", ")
                ));
            }
        }
        std::fs::create_dir_all(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let d = RunDir {
            path: path.to_path_buf(),
            lock: Some(RunLock::take(path)?),
            made,
        };
        d.remove_stale_temporaries();
        if d.journal_path().exists() {
            return Err(format!(
                "{}: already holds a run; use `nas resume {}` or choose another --out",
                path.display(),
                path.display()
            ));
        }
        write_atomic(
            &d.config_path(),
            &serde_json::to_vec_pretty(config).unwrap(),
        )?;
        // Held trials belong to the journal they were held for, which is gone (removed
        // first: a new journal never sits beside them).
        d.hold(&[])?;
        File::create(d.journal_path())
            .map_err(|e| format!("{}: {e}", d.journal_path().display()))?;
        Ok(d)
    }

    /// Replaces the run's recorded options (`nas resume --device` moves the rest of a
    /// search); only the run's writer may.
    pub fn set_config(&self, config: &Value) -> Result<(), String> {
        if self.lock.is_none() {
            return Err(format!("{}: opened to read only", self.path.display()));
        }
        write_atomic(
            &self.config_path(),
            &serde_json::to_vec_pretty(config).unwrap(),
        )
    }

    /// Opens an existing run directory to read it.
    pub fn open(path: &Path) -> Result<RunDir, String> {
        let d = RunDir {
            path: path.to_path_buf(),
            lock: None,
            made: false,
        };
        if let Err(e) = std::fs::metadata(path) {
            return Err(match e.kind() {
                std::io::ErrorKind::NotFound => {
                    format!("{}: no such run directory", path.display())
                }
                _ => format!("{}: {e}", path.display()),
            });
        }
        if !d.config_path().exists() {
            return Err(format!(
                "{}: not a run directory (no config.json)",
                path.display()
            ));
        }
        Ok(d)
    }

    /// The process writing the run now (`pid N`), or `None` when no process holds its
    /// lock: the run ended, or its writer was killed. Takes nothing: it holds a shared
    /// lock on `run.lock` for an instant, which a writer starting then waits out.
    pub fn writer(&self) -> Option<String> {
        let p = self.path.join("run.lock");
        let f = File::open(&p).ok()?;
        match f.try_lock_shared() {
            Ok(()) => None, // released as `f` closes
            Err(std::fs::TryLockError::WouldBlock) => Some(lock_holder(&p)),
            Err(std::fs::TryLockError::Error(_)) => None,
        }
    }

    /// Opens an existing run directory to continue it, taking its lock.
    pub fn open_to_write(path: &Path) -> Result<RunDir, String> {
        let mut d = RunDir::open(path)?;
        d.lock = Some(RunLock::take(path)?);
        d.remove_stale_temporaries();
        Ok(d)
    }

    /// Removes the temporary files ([`write_atomic`]'s `.NAME.tmp-PID`) that a writer
    /// killed in the middle of a write left beside the run's own files (the config, the
    /// space, the strategy state, best.json, the journal's cut copies, a one-shot run's
    /// progress and checkpoint, the page a running search keeps up to date, the held
    /// trials). Called by a
    /// writer, which holds the lock, so no other process is writing those; the temporary
    /// files of the plots a `nas report` writes without the lock are left alone.
    fn remove_stale_temporaries(&self) {
        let Ok(entries) = std::fs::read_dir(&self.path) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let Some(rest) = name.to_str().and_then(|n| n.strip_prefix('.')) else {
                continue;
            };
            let Some((base, pid)) = rest.rsplit_once(".tmp-") else {
                continue;
            };
            let ours = RUN_FILES.contains(&base)
                || base
                    .strip_prefix("journal.jsonl.cut-")
                    .is_some_and(|n| n.parse::<u32>().is_ok());
            if ours && !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }

    /// Removes what [`RunDir::create`] made, when the run has recorded nothing since
    /// (its journal is empty and no other file a run writes is there), so a search that
    /// failed before its first trial leaves no run behind. Files that are not a run's
    /// stay, and so does a directory the user made (before, a file of the user's kept
    /// the half-made run, which `--out` then refused and `nas resume` replayed into the
    /// same failure; and an empty directory the user made was removed). Returns whether
    /// it discarded the run.
    pub fn discard_if_empty(self) -> bool {
        let ours = [
            "config.json",
            "journal.jsonl",
            "run.lock",
            "space.json",
            "setup.json",
        ];
        let recorded = std::fs::read_dir(&self.path).map_or(true, |entries| {
            entries.flatten().any(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                !ours.contains(&name.as_str()) && written_by_a_run(&name)
            })
        });
        let empty = std::fs::metadata(self.journal_path()).is_ok_and(|m| m.len() == 0);
        if self.lock.is_none() || recorded || !empty {
            return false;
        }
        for f in ours {
            let _ = std::fs::remove_file(self.path.join(f));
        }
        // A cluster search's trial directory, made for a probe job that failed: removed
        // where empty (a probe's log in it stays, with the directory).
        let _ = std::fs::remove_dir(self.path.join("trials"));
        if self.made {
            // Fails, leaving it, where files of the user's are in it.
            let _ = std::fs::remove_dir(&self.path);
        }
        true
    }

    /// Gives up the run's lock (to a cluster job that goes on writing the run); the
    /// directory is only read from here on.
    pub fn release(&mut self) {
        self.lock = None;
    }

    fn writable(&self) -> Result<(), String> {
        match self.lock {
            Some(_) => Ok(()),
            None => Err(format!(
                "{}: opened to read, not to write",
                self.path.display()
            )),
        }
    }

    pub fn config(&self) -> Result<Value, String> {
        let p = self.config_path();
        // As a user's JSON files are read: a byte-order mark (a hand edit's) skipped, a
        // key given twice refused, the size bounded.
        let t = crate::json::read_file(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        crate::json::parse(&t).map_err(|e| format!("{}: {e}", p.display()))
    }

    /// The journal as it is on disk (read only): its complete trials and how it ends.
    /// A corrupt line before the last, or trials out of order, is an error naming the
    /// file and the line.
    pub fn read_journal(&self) -> Result<Journal, String> {
        let p = self.journal_path();
        match std::fs::read(&p) {
            Ok(bytes) => parse_journal(&p, &bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Journal {
                trials: vec![],
                tail: JournalTail::Clean,
            }),
            Err(e) => Err(format!("{}: {e}", p.display())),
        }
    }

    /// Every complete journaled trial (see [`RunDir::read_journal`]); a last line cut
    /// short by a kill is left out, and left in the file.
    pub fn journal(&self) -> Result<Vec<TrialRecord>, String> {
        self.read_journal().map(|j| j.trials)
    }

    /// Makes the journal end on a whole line, so appends start on a fresh one: a last
    /// line cut short by a kill is moved to `journal.jsonl.cut-<n>` (the first free n)
    /// and cut from the journal; a missing last newline is added. Returns what it did,
    /// for the user, or `None` when the journal was whole. Only a writer repairs.
    pub fn repair_journal(&self) -> Result<Option<String>, String> {
        self.writable()?;
        let p = self.journal_path();
        match self.read_journal()?.tail {
            JournalTail::Clean => Ok(None),
            JournalTail::NoNewline => {
                let mut f = OpenOptions::new()
                    .append(true)
                    .open(&p)
                    .map_err(|e| format!("{}: {e}", p.display()))?;
                f.write_all(b"\n")
                    .and_then(|_| f.sync_data())
                    .map_err(|e| format!("{}: {e}", p.display()))?;
                Ok(Some(format!(
                    "{}: added the newline missing after the last trial",
                    p.display()
                )))
            }
            JournalTail::Torn { line, at } => {
                let bytes = std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?;
                let cut = (1..)
                    .map(|n| self.path.join(format!("journal.jsonl.cut-{n}")))
                    .find(|c| !c.exists())
                    .unwrap();
                write_atomic(&cut, &bytes[at as usize..])?;
                let f = OpenOptions::new()
                    .write(true)
                    .open(&p)
                    .map_err(|e| format!("{}: {e}", p.display()))?;
                f.set_len(at)
                    .and_then(|_| f.sync_data())
                    .map_err(|e| format!("{}: {e}", p.display()))?;
                Ok(Some(format!(
                    "{}: line {line} was cut short (the run was killed while writing it); \
                     moved its {} bytes to {} and cut them from the journal",
                    p.display(),
                    bytes.len() as u64 - at,
                    cut.display()
                )))
            }
        }
    }

    /// Appends one trial and flushes it to disk before returning; returns the bytes
    /// written.
    pub fn append(&self, r: &TrialRecord) -> Result<usize, String> {
        self.append_all(std::slice::from_ref(r))
    }

    /// Appends trials in one write (a run's journal gains all of them or, killed in the
    /// middle, a cut last line that the reader drops) and flushes them to disk before
    /// returning; returns the bytes written.
    pub fn append_all(&self, rs: &[TrialRecord]) -> Result<usize, String> {
        self.writable()?;
        let p = self.journal_path();
        let mut f = OpenOptions::new()
            .append(true)
            .create(true)
            .open(&p)
            .map_err(|e| format!("{}: {e}", p.display()))?;
        let lines = jsonl(rs)?;
        f.write_all(&lines)
            .map_err(|e| format!("{}: {e}", p.display()))?;
        f.sync_data().map_err(|e| format!("{}: {e}", p.display()))?;
        Ok(lines.len())
    }

    /// Keeps `trials` (finished, not journaled: a trial before them in their batch was
    /// interrupted) for the resume, in place of any kept before; none removes the file.
    pub fn hold(&self, trials: &[TrialRecord]) -> Result<(), String> {
        self.writable()?;
        let p = self.held_path();
        if trials.is_empty() {
            return match std::fs::remove_file(&p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(format!("{}: {e}", p.display()))
                }
                _ => Ok(()),
            };
        }
        write_atomic(&p, &jsonl(trials)?)
    }

    /// The trials [`RunDir::hold`] kept; none where there is no file. A file that does
    /// not parse is an error naming it and the line (the caller may evaluate the trials
    /// again instead).
    pub fn held(&self) -> Result<Vec<TrialRecord>, String> {
        let p = self.held_path();
        let text = match std::fs::read(&p) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(format!("{}: {e}", p.display())),
        };
        text.split(|&b| b == b'\n')
            .enumerate()
            .filter(|(_, l)| !l.is_empty())
            .map(|(i, l)| {
                serde_json::from_slice(l)
                    .map_err(|e| format!("{}: line {}: {e}", p.display(), i + 1))
            })
            .collect()
    }

    /// The state of strategy `by` saved after `told` trials had been told to it; returns
    /// the bytes written.
    pub fn save_state(&self, told: usize, by: &str, state: &Value) -> Result<usize, String> {
        self.writable()?;
        let v = serde_json::json!({ "told": told, "by": by, "strategy": state });
        let bytes = serde_json::to_vec(&v).unwrap();
        write_atomic(&self.state_path(), &bytes)?;
        Ok(bytes.len())
    }

    /// The saved state: trials told, the strategy that saved it (states saved before
    /// 2026-12 do not say) and its state.
    #[allow(clippy::type_complexity)]
    pub fn load_state(&self) -> Result<Option<(usize, Option<String>, Value)>, String> {
        let p = self.state_path();
        if !p.exists() {
            return Ok(None);
        }
        let t = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        let v: Value = serde_json::from_str(&t).map_err(|e| format!("{}: {e}", p.display()))?;
        let told = v["told"]
            .as_u64()
            .ok_or_else(|| format!("{}: no `told` count", p.display()))?;
        let by = v["by"].as_str().map(str::to_string);
        // A missing state would reach the strategy as `null` (what a stateless plugin
        // saves), which some would take for a fresh start and propose trials the journal
        // already holds.
        let state = v.get("strategy").ok_or_else(|| {
            format!(
                "{}: no `strategy` field (the strategy's state)",
                p.display()
            )
        })?;
        Ok(Some((told as usize, by, state.clone())))
    }
}

/// `rs` as JSON lines, each ending in a newline (the journal's form, and the held
/// trials').
fn jsonl(rs: &[TrialRecord]) -> Result<Vec<u8>, String> {
    let mut lines = vec![];
    for r in rs {
        lines.extend(serde_json::to_vec(r).map_err(|e| e.to_string())?);
        lines.push(b'\n');
    }
    Ok(lines)
}

/// The files of a run that are written whole ([`write_atomic`]).
const RUN_FILES: [&str; 10] = [
    "config.json",
    "setup.json",
    "held.jsonl",
    "ended",
    "space.json",
    "strategy_state.json",
    "best.json",
    "progress.jsonl",
    "oneshot.json",
    "report.html",
];

/// Whether `dir`'s `config.json` is a search's (a JSON object naming its strategy), not a
/// file of the user's of that name.
fn made_by_a_search(dir: &Path) -> bool {
    crate::json::read_file(&dir.join("config.json"))
        .ok()
        .and_then(|t| crate::json::parse(&t).ok())
        .is_some_and(|v| v.get("strategy").is_some_and(Value::is_string))
}

/// Whether a file of this name in a run directory is one of the run's records (what
/// [`written_by_a_run`] names but the plots, the page and temporaries): an output the
/// user names there is refused, since writing it would damage the run.
fn record_of_a_run(name: &str) -> bool {
    written_by_a_run(name)
        && !name.ends_with(".svg")
        && name != "report.html"
        && !name.starts_with('.')
}

/// Whether a file of this name in a run directory is one a run writes (its own files,
/// checkpoints, cut journal lines, temporaries), not a file of the user's.
fn written_by_a_run(name: &str) -> bool {
    RUN_FILES.contains(&name)
        || ["journal.jsonl", "run.lock", "dispatch.jsonl"].contains(&name)
        || name.starts_with("journal.jsonl.cut-")
        || name.starts_with("supernet")
        || (name.starts_with('.') && name.contains(".tmp-"))
        || name.ends_with(".svg")
}

/// Writes a file so that a crash leaves either the old or the new content: the bytes go
/// to a hidden temporary file beside it (`.NAME.tmp-PID`), which is flushed and renamed
/// over `path`. When anything fails the temporary file is removed again.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let name = path
        .file_name()
        .ok_or_else(|| format!("{}: names no file", path.display()))?;
    let tmp = hidden_beside(path, name, "tmp");
    // Named by the file the caller asked for: the temporary one is ours.
    let written = File::create(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|_| f.sync_data()))
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => format!(
                "{}: its directory {} does not exist",
                path.display(),
                parent_of(path).display()
            ),
            _ => format!("{}: {e}", path.display()),
        });
    let done = written
        .and_then(|_| std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display())));
    if done.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    done
}

/// `.NAME.WHAT-PID` beside `path` (whose file name is `name`): this process's hidden
/// scratch file for it.
fn hidden_beside(path: &Path, name: &std::ffi::OsStr, what: &str) -> PathBuf {
    let mut hidden = std::ffi::OsString::from(".");
    hidden.push(name);
    hidden.push(format!(".{what}-{}", std::process::id()));
    path.with_file_name(hidden)
}

/// The directory `path` is in (`.` for a bare file name).
fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Checks, before any work, that [`write_output`] can write `path`: not a directory, its
/// directory there (made if missing, as `write_output` makes it) and a file can be
/// created in it. The error says why (the caller names the path), so a read-only or
/// mistyped output fails at once rather than after the training it was to keep.
pub fn check_output(path: &Path) -> Result<(), String> {
    let name = path.file_name().ok_or("names no file")?;
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => return Err("is a directory; name a file to write".into()),
        // A FIFO or a terminal is written in place.
        Ok(m) if !m.is_file() => return Ok(()),
        _ => {}
    }
    let dir = parent_of(path);
    // The path as named, and where a link there leads (a link to a run's journal was
    // written through), also a link to a record not written yet (`best.json`).
    let target = std::fs::canonicalize(path).ok().or_else(|| {
        let to = std::fs::read_link(path).ok()?;
        let from = std::fs::canonicalize(parent_of(path)).ok()?;
        Some(from.join(to))
    });
    for p in std::iter::once(path).chain(target.as_deref()) {
        let (Some(own), d) = (p.file_name().and_then(|n| n.to_str()), parent_of(p)) else {
            continue;
        };
        if record_of_a_run(own) && (d.join("journal.jsonl").is_file() || made_by_a_search(d)) {
            let via = match p == path {
                true => String::new(),
                false => format!(" (where {} leads)", path.display()),
            };
            return Err(format!(
                "is the run's own {own}{via} (the run in {}); writing it would damage the \
                 run, so name another file",
                d.display()
            ));
        }
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("cannot make its directory {}: {e}", dir.display()))?;
    let probe = hidden_beside(path, name, "probe");
    File::create(&probe).map_err(|e| format!("cannot write in {}: {e}", dir.display()))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Whether `output` names the file `input` (both there, after links are followed): an
/// output a command would write over one of its own inputs.
pub fn same_file(output: &Path, input: &Path) -> bool {
    match (std::fs::canonicalize(output), std::fs::canonicalize(input)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Writes a file the user named (`--out`, `--save`). A regular file, or a new one, is
/// written atomically ([`write_atomic`]); a symbolic link is followed, so its target is
/// written and the link stays a link; a FIFO, a terminal or another special file (such as
/// `/dev/stdout`) is written in place, as a shell's `>` would; a directory, or a link to
/// nothing, is an error naming the path.
pub fn write_output(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Err(format!(
            "{}: is a directory; name a file to write",
            path.display()
        )),
        Ok(m) if !m.is_file() => OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|mut f| f.write_all(bytes).and_then(|_| f.flush()))
            .map_err(|e| format!("{}: {e}", path.display())),
        Ok(_) if link => {
            let target =
                std::fs::canonicalize(path).map_err(|e| format!("{}: {e}", path.display()))?;
            write_atomic(&target, bytes)
        }
        Ok(_) => write_atomic(path, bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && link => Err(format!(
            "{}: is a symbolic link to a file that does not exist",
            path.display()
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // A missing directory is made, for every output alike.
            std::fs::create_dir_all(parent_of(path))
                .map_err(|e| format!("{}: cannot make its directory: {e}", path.display()))?;
            write_atomic(path, bytes)
        }
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// A cost a trial reports: `params`, `macs`, `latency_ms`, or a number the evaluator
/// added under that name.
pub fn cost(m: &Metrics, name: &str) -> Option<f64> {
    m.cost(name)
}

/// Hard limits on a trial's costs: a trial over any of them, or lacking a limited cost,
/// is infeasible, and nothing a user gets back from a run (best, export, Pareto set,
/// retrain, report) is infeasible.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Limits(pub Vec<(String, f64)>);

impl Limits {
    /// The limits in a strategy config: `"limits": {"params": 4e5, ...}` (the
    /// multi-objective strategies' field) and the one-shot searches' `max_params`,
    /// `max_macs`, `max_latency_ms`. An error names the field and value.
    pub fn from_config(cfg: &Value) -> Result<Limits, String> {
        nas_types::config_limits(cfg).map(Limits)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn feasible(&self, m: &Metrics) -> bool {
        self.0
            .iter()
            .all(|(k, max)| cost(m, k).is_some_and(|c| c <= *max))
    }
}

impl std::fmt::Display for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", nas_types::show_limits(&self.0))
    }
}

/// One architecture of a run and every trial that scored it. Its `metrics` are its
/// first trial's, with `accuracy` the mean over all of them (a noisy evaluator scores
/// the same architecture differently; its luckiest score would flatter it).
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    pub arch: Architecture,
    /// Trial numbers, in journal order.
    pub trials: Vec<usize>,
    pub metrics: Metrics,
}

/// The run's feasible architectures, each once, in the order of their first trial; a
/// failed trial ([`Metrics::failed`]) is none.
/// A trial's accuracy that is not a finite number counts as 0.
pub fn candidates(journal: &[TrialRecord], limits: &Limits) -> Vec<Candidate> {
    let mut board = Leaderboard::new(limits.clone());
    for t in journal {
        board.add(t);
    }
    board.into_candidates()
}

/// Trial records ranked by [`Leaderboard::add`] in this process: what a search's loop
/// reports, so a test can tell a loop that ranks each trial once from one that re-reads
/// its whole journal after every trial (quadratic in the budget).
static RANKED: AtomicU64 = AtomicU64::new(0);

/// How many trial records this process has ranked (see [`Leaderboard::add`]).
pub fn trials_ranked() -> u64 {
    RANKED.load(Ordering::Relaxed)
}

/// The candidates of a run as its trials come in (what [`candidates`] returns for the
/// trials added so far), with the best kept in order: adding a trial costs the same
/// however long the journal is, so a search loop ranks each trial once.
#[derive(Clone, Debug, Default)]
pub struct Leaderboard {
    limits: Limits,
    list: Vec<Candidate>,
    sums: Vec<f64>,
    index: HashMap<String, usize>,
    /// (mean accuracy, first-trial order) of every candidate, best first.
    order: BTreeSet<(Reverse<Score>, usize)>,
}

/// A mean accuracy in a total order (not a number counts as the worst; -0 as 0).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Score(f64);

impl Eq for Score {}
impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Score {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}
impl Score {
    fn of(mean: f64) -> Score {
        Score(if mean.is_nan() {
            f64::NEG_INFINITY
        } else {
            mean + 0.0
        })
    }
}

impl Leaderboard {
    pub fn new(limits: Limits) -> Leaderboard {
        Leaderboard {
            limits,
            ..Leaderboard::default()
        }
    }

    /// Ranks one more trial (in journal order); an infeasible or failed one is left out.
    pub fn add(&mut self, t: &TrialRecord) {
        RANKED.fetch_add(1, Ordering::Relaxed);
        if t.metrics.is_failed() || !self.limits.feasible(&t.metrics) {
            return;
        }
        let acc = if t.metrics.accuracy.is_finite() {
            t.metrics.accuracy
        } else {
            0.0
        };
        let key = serde_json::to_string(&t.arch).unwrap_or_default();
        match self.index.get(&key) {
            Some(&i) => {
                let c = &mut self.list[i];
                self.order
                    .remove(&(Reverse(Score::of(c.metrics.accuracy)), i));
                c.trials.push(t.trial);
                self.sums[i] += acc;
                c.metrics.accuracy = self.sums[i] / c.trials.len() as f64;
                self.order
                    .insert((Reverse(Score::of(c.metrics.accuracy)), i));
            }
            None => {
                let i = self.list.len();
                self.index.insert(key, i);
                let mut metrics = t.metrics.clone();
                metrics.accuracy = acc;
                self.list.push(Candidate {
                    arch: t.arch.clone(),
                    trials: vec![t.trial],
                    metrics,
                });
                self.sums.push(acc);
                self.order.insert((Reverse(Score::of(acc)), i));
            }
        }
    }

    /// The candidate with the highest mean accuracy (the first on ties), as [`best`]
    /// picks it from [`Leaderboard::candidates`].
    pub fn best(&self) -> Option<&Candidate> {
        self.order.first().map(|&(_, i)| &self.list[i])
    }

    /// The candidates so far, in the order of their first trial.
    pub fn candidates(&self) -> &[Candidate] {
        &self.list
    }

    pub fn into_candidates(self) -> Vec<Candidate> {
        self.list
    }
}

/// The candidate with the highest accuracy (the first on ties).
pub fn best(c: &[Candidate]) -> Option<&Candidate> {
    c.iter().reduce(|b, x| {
        if x.metrics.accuracy > b.metrics.accuracy {
            x
        } else {
            b
        }
    })
}

/// Indices of the Pareto-optimal candidates: highest accuracy for their cost (lower
/// `cost` is better), sorted by cost; candidates without the cost are left out.
pub fn pareto(c: &[Candidate], cost: impl Fn(&Metrics) -> Option<f64>) -> Vec<usize> {
    let pts: Vec<(usize, f64, f64)> = c
        .iter()
        .enumerate()
        .filter_map(|(i, t)| cost(&t.metrics).map(|x| (i, t.metrics.accuracy, x)))
        .collect();
    let mut front: Vec<(usize, f64)> = pts
        .iter()
        .filter(|(_, a, c)| {
            !pts.iter()
                .any(|(_, a2, c2)| a2 >= a && c2 <= c && (a2 > a || c2 < c))
        })
        .map(|(i, _, c)| (*i, *c))
        .collect();
    front.sort_by(|x, y| x.1.total_cmp(&y.1));
    front.into_iter().map(|(i, _)| i).collect()
}
