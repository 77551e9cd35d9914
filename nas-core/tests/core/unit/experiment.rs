//! The unit tests of `nas_core::experiment` (`nas-core/src/experiment.rs`).

use nas_core::evaluate::Metrics;
use nas_core::experiment::*;
use nas_core::space::Architecture;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::Ordering;

fn rec(i: usize, acc: f64, params: f64) -> TrialRecord {
    TrialRecord {
        trial: i,
        arch: Architecture::new(),
        metrics: Metrics {
            accuracy: acc,
            params: Some(params),
            ..Default::default()
        },
        seconds: 0.0,
    }
}

/// `writer` names the process that holds a run's lock and nothing once it is
/// released; a writer still takes the lock while a reader asks (a reader that took
/// the lock exclusively, or a writer that did not retry, would fail here).
#[test]
fn a_runs_writer_is_seen_while_it_holds_the_lock() {
    let dir = std::env::temp_dir().join(format!("nas-writer-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let d = RunDir::create(&dir, &serde_json::json!({})).unwrap();
    let reader = RunDir::open(&dir).unwrap();
    assert_eq!(reader.writer(), Some(format!("pid {}", std::process::id())));
    drop(d);
    assert_eq!(reader.writer(), None, "the writer is gone");
    // A reader asking over and over does not keep a writer out.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let asking = {
        let stop = stop.clone();
        let dir = dir.clone();
        std::thread::spawn(move || {
            let r = RunDir::open(&dir).unwrap();
            while !stop.load(Ordering::Relaxed) {
                let _ = r.writer();
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
        })
    };
    for _ in 0..20 {
        let w = RunDir::open_to_write(&dir).expect("a writer kept out by a reader");
        drop(w);
    }
    stop.store(true, Ordering::Relaxed);
    asking.join().unwrap();
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn journal_survives_a_torn_last_line() {
    let dir = std::env::temp_dir().join(format!("nas-journal-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let d = RunDir::create(&dir, &serde_json::json!({})).unwrap();
    d.append(&rec(0, 0.5, 10.0)).unwrap();
    d.append(&rec(1, 0.6, 20.0)).unwrap();
    // A kill in the middle of the third write.
    let mut f = OpenOptions::new()
        .append(true)
        .open(d.journal_path())
        .unwrap();
    f.write_all(b"{\"trial\": 2, \"arch\": {").unwrap();
    drop(f);
    let j = d.journal().unwrap();
    assert_eq!(j.len(), 2);
    let msg = d.repair_journal().unwrap().unwrap();
    let cut = dir.join("journal.jsonl.cut-1");
    assert!(msg.contains(&cut.display().to_string()), "{msg}");
    assert_eq!(std::fs::read(&cut).unwrap(), b"{\"trial\": 2, \"arch\": {");
    assert_eq!(d.repair_journal().unwrap(), None);
    d.append(&rec(2, 0.7, 5.0)).unwrap();
    let j = d.journal().unwrap();
    assert_eq!(j.iter().map(|r| r.trial).collect::<Vec<_>>(), [0, 1, 2]);
    drop(d);
    let e = RunDir::create(&dir, &serde_json::json!({})).err().unwrap();
    assert!(e.contains("already holds a run"), "{e}");
    // Only a writer repairs or appends.
    let r = RunDir::open(&dir).unwrap();
    assert!(r.append(&rec(3, 0.7, 5.0)).is_err());
    assert!(r.repair_journal().is_err());
    std::fs::remove_dir_all(&dir).ok();
}

fn temp_run(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nas-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A byte that is not UTF-8 inside a middle line is an error naming the file and
/// the line, and reading never writes the journal (only `nas resume` repairs it).
#[test]
fn reading_a_journal_never_writes_it() {
    let dir = temp_run("journal-read-only");
    let d = RunDir::create(&dir, &serde_json::json!({})).unwrap();
    for i in 0..3 {
        let mut r = rec(i, 0.5, 10.0);
        r.arch = arch(i as i64);
        r.arch.insert("name".into(), serde_json::json!("conv_3x3"));
        d.append(&r).unwrap();
    }
    let good = std::fs::read(d.journal_path()).unwrap();
    let mut bad = good.clone();
    let at = bad.windows(4).position(|w| w == b"conv").unwrap();
    bad[at + 1] = 0xFF;
    std::fs::write(d.journal_path(), &bad).unwrap();
    let e = d.journal().unwrap_err();
    assert!(e.contains("journal.jsonl") && e.contains("line 1"), "{e}");
    assert!(e.contains("0xFF") || e.contains("UTF-8"), "{e}");
    assert_eq!(std::fs::read(d.journal_path()).unwrap(), bad);
    // A torn last line is left out of what a reader sees, and left in the file.
    let mut torn = good.clone();
    torn.extend_from_slice(b"{\"trial\": 3, \"arch\": {");
    std::fs::write(d.journal_path(), &torn).unwrap();
    assert_eq!(d.journal().unwrap().len(), 3);
    assert_eq!(std::fs::read(d.journal_path()).unwrap(), torn);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn trial_numbers_must_run_in_order() {
    let dir = temp_run("journal-numbers");
    let d = RunDir::create(&dir, &serde_json::json!({})).unwrap();
    d.append(&rec(0, 0.5, 10.0)).unwrap();
    d.append(&rec(0, 0.6, 10.0)).unwrap();
    let e = d.journal().unwrap_err();
    assert!(e.contains("journal.jsonl") && e.contains("line 2"), "{e}");
    assert!(e.contains("trial 0") && e.contains("trial 1"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

/// Held trials come back as they were kept, a new keep replaces the old, none removes
/// the file; a line that does not parse is an error naming the file and the line; a
/// reader cannot hold; a run made afresh in the directory drops what was held for the
/// journal before it.
#[test]
fn held_trials_come_back_as_kept() {
    let dir = temp_run("held");
    // (A search's config names its strategy: what a run's remnant is told by.)
    let config = serde_json::json!({"strategy": "random"});
    let d = RunDir::create(&dir, &config).unwrap();
    assert_eq!(d.held().unwrap(), vec![]);
    let (a, b) = (rec(3, 0.5, 10.0), rec(5, 0.7, 20.0));
    d.hold(&[a.clone(), b.clone()]).unwrap();
    assert_eq!(d.held().unwrap(), vec![a.clone(), b.clone()]);
    d.hold(std::slice::from_ref(&b)).unwrap();
    assert_eq!(d.held().unwrap(), vec![b.clone()]);
    d.hold(&[]).unwrap();
    assert!(!d.held_path().exists());
    d.hold(&[]).unwrap();
    std::fs::write(d.held_path(), "{\"trial\": 1}\n").unwrap();
    let e = d.held().unwrap_err();
    assert!(e.contains("held.jsonl") && e.contains("line 1"), "{e}");
    assert!(RunDir::open(&dir).unwrap().hold(&[a]).is_err());
    drop(d);
    std::fs::remove_file(dir.join("journal.jsonl")).unwrap();
    let d = RunDir::create(&dir, &config).unwrap();
    assert!(!d.held_path().exists(), "held for a journal that is gone");
    std::fs::remove_dir_all(&dir).ok();
}

/// A run directory has one writer at a time; a second is told who holds it.
#[test]
fn a_second_writer_is_refused_with_the_holders_pid() {
    let dir = temp_run("journal-lock");
    let d = RunDir::create(&dir, &serde_json::json!({})).unwrap();
    let e = RunDir::create(&dir, &serde_json::json!({}))
        .err()
        .expect("a second writer must be refused");
    let pid = format!("pid {}", std::process::id());
    assert!(
        e.contains(&pid) && e.contains(&dir.display().to_string()),
        "{e}"
    );
    drop(d);
    std::fs::remove_dir_all(&dir).ok();
}

/// A writer killed inside [`write_atomic`] leaves its temporary file; the next writer
/// of the run removes those of the run's own files, and a reader removes nothing.
#[test]
fn a_writer_removes_what_a_killed_writer_left() {
    let dir = temp_run("journal-litter");
    drop(RunDir::create(&dir, &serde_json::json!({})).unwrap());
    let left = [
        ".best.json.tmp-4242",
        ".strategy_state.json.tmp-17",
        ".config.json.tmp-9",
        ".journal.jsonl.cut-2.tmp-31",
    ];
    let kept = [".pareto.svg.tmp-5", ".best.json.tmp-x", "best.json.tmp-3"];
    for f in left.iter().chain(&kept) {
        std::fs::write(dir.join(f), b"partial").unwrap();
    }
    let names = || {
        let mut n: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp-"))
            .collect();
        n.sort();
        n
    };
    drop(RunDir::open(&dir).unwrap());
    assert_eq!(names().len(), left.len() + kept.len());
    drop(RunDir::open_to_write(&dir).unwrap());
    let mut want: Vec<String> = kept.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(names(), want);
    std::fs::remove_dir_all(&dir).ok();
}

fn arch(k: i64) -> Architecture {
    let mut a = Architecture::new();
    a.insert("op".into(), serde_json::json!(k));
    a
}

#[test]
fn pareto_front_keeps_the_undominated() {
    let t: Vec<TrialRecord> = vec![
        rec(0, 0.9, 100.0),
        rec(1, 0.8, 50.0),
        rec(2, 0.7, 60.0),
        rec(3, 0.95, 200.0),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, mut r)| {
        r.arch = arch(i as i64);
        r
    })
    .collect();
    let c = candidates(&t, &Limits::default());
    assert_eq!(pareto(&c, |m| m.params), vec![1, 0, 3]);
}

#[test]
fn limits_leave_out_infeasible_trials_and_each_architecture_comes_once() {
    // Architecture 1 is scored three times (noisy), architecture 3 breaks the limit.
    let mut t = vec![];
    for (i, (a, acc, params)) in [
        (1, 0.90, 100.0),
        (2, 0.85, 50.0),
        (1, 0.80, 100.0),
        (3, 0.99, 500.0),
        (1, f64::NAN, 100.0),
        (4, 0.70, 300.0),
    ]
    .into_iter()
    .enumerate()
    {
        let mut r = rec(i, acc, params);
        r.arch = arch(a);
        t.push(r);
    }
    let limits = Limits::from_config(&serde_json::json!({"limits": {"params": 300}})).unwrap();
    let c = candidates(&t, &limits);
    let archs: Vec<&Architecture> = c.iter().map(|c| &c.arch).collect();
    assert_eq!(archs, [&arch(1), &arch(2), &arch(4)]);
    assert_eq!(c[0].trials, [0, 2, 4]);
    assert!((c[0].metrics.accuracy - (0.90 + 0.80 + 0.0) / 3.0).abs() < 1e-12);
    // The best feasible is architecture 2: 3 is over the limit, 1's mean is 0.567.
    assert_eq!(best(&c).unwrap().arch, arch(2));
    let front = pareto(&c, |m| m.params);
    assert_eq!(front, [1]);
    // No feasible trial: nothing to return.
    let tight = Limits::from_config(&serde_json::json!({"max_params": 10})).unwrap();
    assert!(candidates(&t, &tight).is_empty());
    assert!(best(&candidates(&t, &tight)).is_none());
    // A limited cost the trial does not report makes it infeasible.
    let lat = Limits::from_config(&serde_json::json!({"limits": {"latency_ms": 5}})).unwrap();
    assert!(candidates(&t, &lat).is_empty());
}

#[test]
fn the_leaderboard_agrees_with_the_candidates_after_every_trial() {
    // Few architectures, coarse accuracies (ties), repeats, infeasible and failed
    // trials, and not-a-number scores: after each trial the running leaderboard
    // holds what `candidates` and `best` make of the journal so far.
    let limits = Limits::from_config(&serde_json::json!({"max_params": 250})).unwrap();
    for seed in 0..20 {
        let mut rng = nas_core::Rng::new(seed);
        let mut board = Leaderboard::new(limits.clone());
        let mut journal = vec![];
        for i in 0..60 {
            let acc = match rng.below(10) {
                0 => f64::NAN,
                1 => -0.0,
                _ => rng.below(5) as f64 / 4.0,
            };
            let mut r = rec(i, acc, [100.0, 200.0, 300.0][rng.below(3)]);
            r.arch = arch(rng.below(8) as i64);
            if rng.below(12) == 0 {
                r.metrics = Metrics::failed("no result");
                r.metrics.params = Some(10.0);
            }
            board.add(&r);
            journal.push(r);
            let want = candidates(&journal, &limits);
            assert_eq!(board.candidates(), &want[..], "seed {seed}, trial {i}");
            assert_eq!(board.best(), best(&want), "seed {seed}, trial {i}");
        }
        assert!(board.best().is_some(), "seed {seed}: nothing feasible");
    }
    // Each added trial is counted once.
    let before = trials_ranked();
    let mut board = Leaderboard::new(Limits::default());
    for i in 0..5 {
        board.add(&rec(i, 0.5, 1.0));
    }
    assert!(trials_ranked() >= before + 5);
}

#[test]
fn bad_limits_name_the_field() {
    for (cfg, want) in [
        (serde_json::json!({"limits": {"flops": 3}}), "`flops`"),
        (
            serde_json::json!({"limits": {"params": "big"}}),
            "limits.params",
        ),
        (serde_json::json!({"limits": [1]}), "`limits`"),
        (serde_json::json!({"max_macs": -1}), "max_macs"),
    ] {
        let e = Limits::from_config(&cfg).unwrap_err();
        assert!(e.contains(want), "{e}");
    }
}

/// A journaled accuracy outside 0..=1 (no evaluator writes one; a hand edit of `2.0` was
/// reported as 200% at the head of the ranking) is an error naming the file, the line
/// and the field.
#[test]
fn an_accuracy_past_one_is_a_damaged_line() {
    let dir = temp_run("journal-accuracy");
    let d = RunDir::create(&dir, &serde_json::json!({})).unwrap();
    d.append(&rec(0, 0.5, 10.0)).unwrap();
    d.append(&rec(1, 2.0, 10.0)).unwrap();
    d.append(&rec(2, 0.6, 10.0)).unwrap();
    let e = d.journal().err().expect("an error");
    assert!(
        e.contains("journal.jsonl")
            && e.contains("line 2")
            && e.contains("field `metrics.accuracy`: 2 is not an accuracy"),
        "{e}"
    );
    drop(d);
    std::fs::remove_dir_all(&dir).ok();
}

/// A journaled cost below zero or past any network's (no evaluator writes one) is an
/// error naming the line and the field. Before, `"params": -5` was read, led the Pareto
/// set, and `1e308` printed a 309-digit number across the report's table.
#[test]
fn a_negative_or_absurd_cost_is_a_damaged_line() {
    let path = std::path::Path::new("journal.jsonl");
    let good = serde_json::to_string(&rec(0, 0.5, 10.0)).unwrap();
    for (bad, want) in [
        (
            rec(1, 0.6, -5.0),
            "field `metrics.params`: -5 is not a cost",
        ),
        (
            rec(1, 0.6, 1e308),
            "field `metrics.params`: 1e308 is not a cost",
        ),
    ] {
        let line = serde_json::to_string(&bad).unwrap();
        let e = parse_journal(path, format!("{good}\n{line}\n").as_bytes())
            .err()
            .expect("an error");
        assert!(e.contains("line 2") && e.contains(want), "{e}");
    }
    let mut m = rec(1, 0.6, 10.0);
    m.metrics.latency_ms = Some(-0.5);
    let line = serde_json::to_string(&m).unwrap();
    let e = parse_journal(path, format!("{good}\n{line}\n").as_bytes())
        .err()
        .expect("an error");
    assert!(e.contains("field `metrics.latency_ms`: -0.5"), "{e}");
    // Zero is a cost (a network of identities has no parameters).
    let zero = serde_json::to_string(&rec(1, 0.6, 0.0)).unwrap();
    assert!(parse_journal(path, format!("{good}\n{zero}\n").as_bytes()).is_ok());
}

/// Only a last line a kill could have left is torn: a prefix of a record (its JSON
/// ended early, or its bytes end inside a UTF-8 character). A whole last line without
/// its newline that is still no record (a hand edit of its accuracy to 2, or text after
/// the record) is a damaged line like any other, not a torn write that resume would
/// move aside without a word about what was wrong with it.
#[test]
fn only_a_cut_record_is_a_torn_last_line() {
    let path = std::path::Path::new("journal.jsonl");
    let good = serde_json::to_string(&rec(0, 0.5, 10.0)).unwrap();
    let second = serde_json::to_string(&rec(1, 2.0, 10.0)).unwrap();
    let text = format!("{good}\n{second}");
    let e = parse_journal(path, text.as_bytes())
        .err()
        .expect("an error");
    assert!(
        e.contains("line 2") && e.contains("field `metrics.accuracy`: 2 is not an accuracy"),
        "{e}"
    );
    let e = parse_journal(path, format!("{good}\n{good} x").as_bytes())
        .err()
        .expect("an error");
    assert!(
        e.contains("line 2") && e.contains("not a trial record"),
        "{e}"
    );
    // Every prefix of a record is torn; the whole record without its newline is not.
    let third = serde_json::to_string(&rec(1, 0.25, 10.0)).unwrap();
    for cut in 1..third.len() {
        let j = parse_journal(path, format!("{good}\n{}", &third[..cut]).as_bytes())
            .unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        assert_eq!(j.trials.len(), 1);
        assert!(
            matches!(j.tail, JournalTail::Torn { line: 2, .. }),
            "{:?}",
            j.tail
        );
    }
    let j = parse_journal(path, format!("{good}\n{third}").as_bytes()).unwrap();
    assert_eq!((j.trials.len(), &j.tail), (2, &JournalTail::NoNewline));
    // A record cut inside a two-byte character (in its architecture's label).
    let mut bytes = format!("{good}\n{{\"trial\": 1, \"arch\": {{\"é").into_bytes();
    bytes.pop();
    let j = parse_journal(path, &bytes).unwrap();
    assert!(
        matches!(j.tail, JournalTail::Torn { line: 2, .. }),
        "{:?}",
        j.tail
    );
    // A cut record followed by the zero bytes a crash can leave where the file grew, and
    // zeros alone: torn.
    for tail in [&b"{\"trial\": 1, \"ar\0\0\0"[..], b"\0\0\0\0"] {
        let mut bytes = format!("{good}\n").into_bytes();
        bytes.extend_from_slice(tail);
        let j = parse_journal(path, &bytes).unwrap();
        assert!(
            matches!(j.tail, JournalTail::Torn { line: 2, .. }),
            "{:?}",
            j.tail
        );
    }
    // Text that is no record's start, ending inside a character: damage, not a cut.
    let mut bytes = format!("{good}\nxyz").into_bytes();
    bytes.push(0xC3);
    let e = parse_journal(path, &bytes).err().expect("an error");
    assert!(e.contains("line 2") && e.contains("not UTF-8"), "{e}");
}

/// Two searches started at one instant in one directory: the one that lost the race
/// could see the winner's config.json before its journal and be told the directory was
/// "not a run" holding the user's files. A directory holding a run's lock is left to
/// the lock, which names the process writing it.
#[test]
fn a_directory_a_run_is_being_made_in_is_refused_by_its_lock() {
    let dir = std::env::temp_dir().join(format!("nas-making-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let _held = RunLock::take(&dir).unwrap();
    // What the loser saw: a file of a run's name, its config not yet a search's when
    // read (here a best.json, which no search's config vouches for).
    std::fs::write(dir.join("best.json"), b"{}").unwrap();
    let e = RunDir::create(&dir, &serde_json::json!({})).err().unwrap();
    assert!(e.contains("is writing this run"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

/// A saved state that lost its `strategy` field is an error naming the file: it was
/// handed to the strategy as `null`, which a strategy reading its fields with defaults
/// took for a fresh start (and proposed trials again). A stateless plugin's own `null`
/// still loads.
#[test]
fn a_state_without_its_strategy_field_is_refused() {
    let dir = temp_run("state-field");
    let d = RunDir::create(&dir, &serde_json::json!({})).unwrap();
    d.save_state(3, "random", &serde_json::Value::Null).unwrap();
    let (told, by, state) = d.load_state().unwrap().unwrap();
    assert_eq!(
        (told, by.as_deref(), state),
        (3, Some("random"), serde_json::Value::Null)
    );
    std::fs::write(d.state_path(), br#"{"told": 3, "by": "random"}"#).unwrap();
    let e = d.load_state().unwrap_err();
    assert!(
        e.contains("strategy_state.json") && e.contains("`strategy`"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// A run's `config.json` edited by hand is read as the user's other JSON files are: a
/// byte-order mark at its start (what some editors write) is skipped, where it was
/// "expected value at line 1 column 1", and a key given twice is an error naming it,
/// where the last one silently won.
#[test]
fn a_hand_edited_config_is_read_as_other_json_files() {
    let dir = temp_run("config-bom");
    let d = RunDir::create(&dir, &serde_json::json!({"budget": 5})).unwrap();
    std::fs::write(d.config_path(), "\u{feff}{\"budget\": 7}").unwrap();
    assert_eq!(d.config().unwrap()["budget"], 7);
    std::fs::write(d.config_path(), "{\"budget\": 7, \"budget\": 9}").unwrap();
    let e = d.config().unwrap_err();
    assert!(e.contains("config.json") && e.contains("budget"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}
