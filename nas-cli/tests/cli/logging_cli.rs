//! What `nas` logs (issue 19): warnings and the host's messages in their plain form by
//! default, `RUST_LOG` choosing what is written, the long operations as spans (logged
//! as they close at `debug`, and written as a Chrome trace with `NAS_TRACE`); and a
//! multi-trial search whose writes and ranking grow with its budget, not its square.

use crate::common;

use common::{nas, temp_path, workspace_plugins};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// `nas` with `RUST_LOG` (and its older name) unset, or set to `rust_log`.
fn nas_logging(rust_log: Option<&str>) -> Command {
    let mut c = nas();
    c.env_remove("RUST_LOG")
        .env_remove("NAS_LOG")
        .env_remove("NAS_TRACE");
    if let Some(v) = rust_log {
        c.env("RUST_LOG", v);
    }
    c
}

/// The `key=value` fields of the first stderr line holding `message`.
fn fields(err: &str, message: &str) -> BTreeMap<String, String> {
    let line = err
        .lines()
        .find(|l| l.contains(message))
        .unwrap_or_else(|| panic!("no `{message}` in:\n{err}"));
    line.split_whitespace()
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn number(f: &BTreeMap<String, String>, key: &str) -> u64 {
    f.get(key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no number `{key}` in {f:?}"))
}

/// A search that warns (a plugin path entry that is not there) and then fails at its
/// first trial (a table with no rows), which the host reports as an info message.
fn failing_search(dir: &Path, rust_log: Option<&str>, tag: &str) -> String {
    let table = dir.join("empty.csv");
    std::fs::write(
        &table,
        "key,arch_str,val_acc_s777,val_acc_mean,params_mb,latency_s,train_time_s\n",
    )
    .unwrap();
    let path =
        std::env::join_paths([dir.join("no-such-dir").as_path(), workspace_plugins()]).unwrap();
    let mut c = nas_logging(rust_log);
    c.env("NAS_PLUGIN_PATH", path)
        .args(["search", "--space", "nb201", "--strategy", "random"])
        .args(["--budget", "2", "--table"])
        .arg(&table)
        .arg("--out")
        .arg(dir.join(format!("run-{tag}")));
    let (ok, _, err) = common::run(&mut c);
    assert!(!ok, "{tag}: the search ran with an empty table:\n{err}");
    assert!(
        err.lines()
            .last()
            .is_some_and(|l| l.starts_with("error: trial 0: ")),
        "{tag}: the failure is printed last, whatever RUST_LOG says:\n{err}"
    );
    err
}

#[test]
fn rust_log_chooses_what_is_written() {
    let dir = temp_path("logging", "filters");
    std::fs::create_dir_all(&dir).unwrap();
    let warning = "NAS_PLUGIN_PATH entry";
    let info = "the search failed before its first trial";

    // By default: the warning and the message as they always read, and nothing else.
    let err = failing_search(&dir, None, "default");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 3, "{err}");
    assert!(
        lines[0].starts_with(&format!("warning: {warning} "))
            && lines[0].ends_with("does not exist"),
        "{err}"
    );
    assert!(
        lines[1].starts_with(info) && lines[1].ends_with("holds no run"),
        "{err}"
    );

    // `error`: neither; `warn`: the warning alone, in tracing's format.
    let err = failing_search(&dir, Some("error"), "error");
    assert!(!err.contains(warning) && !err.contains(info), "{err}");
    let err = failing_search(&dir, Some("warn"), "warn");
    let line = err.lines().find(|l| l.contains(warning)).expect(&err);
    assert!(
        line.contains("WARN") && line.contains("nas_cli::host"),
        "{err}"
    );
    assert!(!err.contains(info), "{err}");

    // `info`: the message too, and the search's span as it closes, with its time.
    let err = failing_search(&dir, Some("info"), "info");
    assert!(
        err.lines().any(|l| l.contains("INFO") && l.contains(info)),
        "{err}"
    );
    assert!(
        err.lines()
            .any(|l| l.contains("search{strategy=random budget=2}")
                && l.contains("close")
                && l.contains("time.busy=")),
        "{err}"
    );
    assert!(!err.contains("DEBUG"), "{err}");

    // `debug`: the spans of loading the plugin and the table, inside the search's.
    let err = failing_search(&dir, Some("debug"), "debug");
    for span in ["load plugin{file=", "load table"] {
        assert!(
            err.lines().any(
                |l| l.contains(&format!("search{{strategy=random budget=2}}:{span}"))
                    && l.contains("close")
            ),
            "no `{span}` span in:\n{err}"
        );
    }

    // A filter that does not parse is said, and the default used.
    let err = failing_search(&dir, Some("nas=[["), "bad");
    assert!(err.starts_with("warning: RUST_LOG=nas=[[: "), "{err}");
    assert!(err.contains(&format!("\nwarning: {warning} ")), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_search_logs_its_trials_as_spans_and_writes_in_proportion_to_its_budget() {
    let dir = temp_path("logging", "search");
    std::fs::create_dir_all(&dir).unwrap();
    let run = dir.join("run");
    let trace = dir.join("trace.json");
    let budget: u64 = 400;
    let o = nas_logging(Some("debug"))
        .env("NAS_TRACE", &trace)
        .args(["search", "--space", "nb201", "--strategy", "evolution"])
        .args(["--budget", &budget.to_string(), "--out"])
        .arg(&run)
        .output()
        .unwrap();
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(o.status.success(), "{out}\n{err}");
    assert!(out.contains("400 trials; best is trial"), "{out}");
    assert!(
        !out.contains("DEBUG") && !out.contains("close"),
        "the log is on stderr: {out}"
    );

    // Every trial is a span of the search's, closed once.
    let search = "search{strategy=evolution budget=400}";
    let trials = err
        .lines()
        .filter(|l| l.contains(&format!("{search}:trial{{n=")) && l.contains("close"))
        .count();
    assert_eq!(trials as u64, budget, "{err}");

    // What the loop wrote: the journal once (each trial appended), and states of the
    // strategy that add up to no more than the journal and a few states, where saving
    // one after every trial wrote 400 states of up to 20 KB (evolution's grows with the
    // architectures it has seen).
    let f = fields(&err, "search wrote its run");
    let journal = std::fs::metadata(run.join("journal.jsonl")).unwrap().len();
    let state = std::fs::metadata(run.join("strategy_state.json"))
        .unwrap()
        .len();
    assert_eq!(number(&f, "trials"), budget);
    assert_eq!(number(&f, "journal_bytes"), journal, "{f:?}");
    let (saves, on_time) = (number(&f, "state_saves"), number(&f, "state_saves_on_time"));
    assert!(
        number(&f, "state_bytes") <= journal + (2 + on_time) * state,
        "{f:?}: the journal has {journal} bytes, the last state {state}"
    );
    assert!(saves >= 2 && saves <= budget / 8 + on_time, "{f:?}");
    // Each trial was ranked once by the loop; re-ranking the journal after every trial
    // would make it budget^2 / 2 (80,000). What else ranks (the live report page, every
    // few seconds) adds a few journals' worth.
    let ranked = number(&f, "trials_ranked");
    assert!(ranked >= budget && ranked < budget * budget / 4, "{f:?}");

    // NAS_TRACE: the same spans as a Chrome trace, the trials and state saves inside
    // the search.
    let t: serde_json::Value = serde_json::from_slice(&std::fs::read(&trace).unwrap()).unwrap();
    let evs = t["traceEvents"].as_array().unwrap();
    let at = |e: &serde_json::Value| {
        let ts = e["ts"].as_f64().unwrap();
        (ts, ts + e["dur"].as_f64().unwrap())
    };
    let named = |prefix: &str| -> Vec<&serde_json::Value> {
        evs.iter()
            .filter(|e| e["cat"] == "span" && e["name"].as_str().unwrap().starts_with(prefix))
            .collect()
    };
    let outer = named(search);
    assert_eq!(outer.len(), 1, "{t}");
    let (s0, s1) = at(outer[0]);
    let trial_spans = named("trial{n=");
    assert_eq!(trial_spans.len() as u64, budget);
    let state_spans = named("save state{told=");
    assert_eq!(state_spans.len() as u64, saves);
    for e in trial_spans.iter().chain(&state_spans) {
        let (t0, t1) = at(e);
        assert!(s0 <= t0 && t0 <= t1 && t1 <= s1, "{e} outside {}", outer[0]);
    }
    // In journal order, one after another.
    for (k, w) in trial_spans.windows(2).enumerate() {
        assert_eq!(w[0]["args"]["n"], k, "{}", w[0]);
        assert!(at(w[0]).1 <= at(w[1]).0, "{} then {}", w[0], w[1]);
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn one_shot_epochs_are_spans() {
    let dir = temp_path("logging", "one-shot");
    let o = nas_logging(Some("nas_cli=debug"))
        .args(["search", "--space", "seed-net", "--strategy", "darts"])
        .args(["--epochs", "2", "--limit", "256", "--batch", "32", "--out"])
        .arg(&dir)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let epochs: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("nas_cli::trainer") && l.contains("close"))
        .collect();
    assert_eq!(epochs.len(), 2, "{err}");
    assert!(
        epochs[0].contains("epoch{n=0}") && epochs[1].contains("epoch{n=1}"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// `$NAS_DATA` naming no directory (a typo) was passed over without a word, and the
/// bundled data used instead; it is said now, once, and the search still runs.
#[test]
fn a_missing_nas_data_directory_is_said() {
    let dir = temp_path("logging", "nas-data");
    let missing = dir.join("no-such-data");
    let (ok, out, err) = common::run(
        nas_logging(None)
            .env("NAS_DATA", &missing)
            .args([
                "search",
                "--space",
                "nb201",
                "--strategy",
                "random",
                "--budget",
                "2",
            ])
            .arg("--out")
            .arg(dir.join("run")),
    );
    assert!(ok, "{out}\n{err}");
    let said: Vec<&str> = err.lines().filter(|l| l.contains("$NAS_DATA")).collect();
    assert_eq!(said.len(), 1, "{err}");
    assert!(
        said[0].starts_with("warning: $NAS_DATA ") && said[0].ends_with("does not exist"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
