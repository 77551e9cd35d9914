//! The plugin boundary and the experiment loop, as users meet them: real plugins built
//! as separate cargo projects (outside the workspace, depending on nas-strategies only),
//! broken plugins, a search killed with SIGKILL and resumed.

use crate::common;

use common::{nas, root};

use common::{run, table_search};

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Builds the plugins of examples/plugins (an example strategy, a wrong-ABI library, a
/// panicking strategy, one that proposes invalid architectures) as their own cargo
/// workspace, once, unoptimised (they only propose architectures; the host under test
/// does the work), and returns the directory holding the libraries.
fn test_plugins() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let src = root().join("examples/plugins");
        let target = root().join("target/test-plugins");
        // --locked: a test never rewrites a tracked file; a stale lock file is a failure
        // that says how to refresh it.
        let out = Command::new(env!("CARGO"))
            .args(["build", "--locked", "--manifest-path"])
            .arg(src.join("Cargo.toml"))
            .env("CARGO_TARGET_DIR", &target)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "building test plugins (if examples/plugins/Cargo.lock is out of date, refresh \
             it with `cargo update --workspace --manifest-path examples/plugins/Cargo.toml` \
             and commit it):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let dir = target.join("debug");
        // A file that is not a plugin at all.
        std::fs::write(
            dir.join("libnot_a_plugin.so"),
            b"this is not a shared library",
        )
        .unwrap();
        dir
    })
}

fn out_dir(name: &str) -> PathBuf {
    common::temp_path("search", name)
}

#[test]
fn plugins_lists_good_ones_and_explains_broken_ones() {
    let dir = test_plugins();
    let (ok, out, err) = run(nas().args(["plugins", "--plugin-dir"]).arg(dir));
    assert!(ok, "{err}");
    assert!(out.contains("example") && out.contains("ask/tell"), "{out}");
    assert!(
        out.contains("ABI version 999"),
        "wrong ABI not explained: {out}"
    );
    // A plugin built against the SDK before the boundary last changed.
    let v = nas_strategies::abi::ABI_VERSION;
    let stale = format!("plugin ABI version {}, this host speaks version {v}", v - 1);
    assert!(
        out.lines()
            .any(|l| l.contains("libnas_strategy_old_abi.so") && l.contains(&stale)),
        "stale ABI not explained: {out}"
    );
    assert!(
        out.contains("libnot_a_plugin.so") && out.contains("cannot load"),
        "{out}"
    );
}

#[test]
fn an_external_plugin_runs_a_search() {
    let d = out_dir("example");
    let (ok, out, err) = run(nas()
        .args([
            "search",
            "--space",
            "nb201",
            "--strategy",
            "example",
            "--budget",
            "20",
            "--plugin-dir",
        ])
        .arg(test_plugins())
        .arg("--out")
        .arg(&d));
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("20 trials"), "{out}");
    let journal = std::fs::read_to_string(d.join("journal.jsonl")).unwrap();
    assert_eq!(journal.lines().count(), 20);
    std::fs::remove_dir_all(&d).ok();
    // The guide's example refuses a misspelled option, as the built-in plugins do.
    let (ok, _, err) = run(nas()
        .args(["search", "--space", "nb201", "--strategy", "example"])
        .args([
            "--budget",
            "5",
            "--config",
            r#"{"warmpu": 3}"#,
            "--plugin-dir",
        ])
        .arg(test_plugins())
        .arg("--out")
        .arg(&d));
    assert!(
        !ok && err.contains("warmpu") && err.contains("example"),
        "{err}"
    );
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn panics_and_invalid_architectures_are_clear_errors() {
    for (strategy, want) in [
        ("panicky", "panicked: the panicky strategy always panics"),
        ("invalid", "invalid architecture"),
    ] {
        let d = out_dir(strategy);
        let (ok, out, err) = run(nas()
            .args([
                "search",
                "--space",
                "nb201",
                "--strategy",
                strategy,
                "--budget",
                "5",
                "--plugin-dir",
            ])
            .arg(test_plugins())
            .arg("--out")
            .arg(&d));
        assert!(!ok, "{strategy} should fail: {out}");
        assert!(
            err.contains(want) && err.contains(strategy),
            "{strategy}: {err}"
        );
        assert!(
            !err.contains("stack backtrace"),
            "panics are reported, not printed: {err}"
        );
        std::fs::remove_dir_all(&d).ok();
    }
    let (ok, _, err) = run(nas()
        .args([
            "search",
            "--space",
            "nb201",
            "--strategy",
            "no-such",
            "--plugin-dir",
        ])
        .arg(test_plugins()));
    // Where it looked, and how a plugin built elsewhere is found.
    assert!(
        !ok && err.contains("no strategy plugin named `no-such`") && err.contains("--plugin-dir"),
        "{err}"
    );
}

/// Kills a training search with SIGKILL, resumes it, and checks the journal: every trial
/// exactly once, the prefix from before the kill untouched, the budget reached.
#[test]
fn a_killed_search_resumes_without_losing_or_repeating_trials() {
    let d = out_dir("kill");
    let budget = 10;
    let mut child = nas()
        .args([
            "--threads",
            "1",
            "search",
            "--space",
            "seed-net",
            "--strategy",
            "example",
            "--evaluator",
            "train",
        ])
        .args([
            "--limit",
            "512",
            "--val",
            "256",
            "--epochs",
            "1",
            "--budget",
            &budget.to_string(),
            "--plugin-dir",
        ])
        .arg(test_plugins())
        .arg("--out")
        .arg(&d)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let journal = d.join("journal.jsonl");
    let start = Instant::now();
    loop {
        let n = std::fs::read_to_string(&journal)
            .map(|t| t.lines().count())
            .unwrap_or(0);
        if n >= 3 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "search made no progress"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "search ended before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let before = std::fs::read_to_string(&journal).unwrap();
    let complete: Vec<&str> = before.lines().filter(|l| l.ends_with('}')).collect();
    assert!(complete.len() < budget, "killed too late to test resuming");
    let (ok, out, err) = run(nas()
        .arg("--threads")
        .arg("1")
        .arg("resume")
        .arg(&d)
        .env("NAS_PLUGIN_PATH", test_plugins()));
    assert!(ok, "{out}\n{err}");
    let after = std::fs::read_to_string(&journal).unwrap();
    let lines: Vec<&str> = after.lines().collect();
    assert_eq!(lines.len(), budget, "{after}");
    for (i, l) in complete.iter().enumerate() {
        assert_eq!(lines[i], *l, "journaled trial {i} changed on resume");
    }
    for (i, l) in lines.iter().enumerate() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert_eq!(
            v["trial"], i,
            "trial numbers must run 0..budget exactly once"
        );
    }
    std::fs::remove_dir_all(&d).ok();
}

/// What a user gets back from a run with a hard limit: `best.json`, `nas export` (the
/// Pareto set), `nas report` and `nas retrain` only ever hold architectures within the
/// limit, each once; a run with no feasible trial says so.
#[test]
fn hard_limits_hold_in_everything_a_run_returns() {
    let dir = out_dir("limits");
    let limit = 400_000.0;
    let cfg =
        format!(r#"{{"objectives": ["accuracy", "params"], "limits": {{"params": {limit}}}}}"#);
    let (ok, out, err) = run(nas()
        .args([
            "search",
            "--space",
            "nb201",
            "--strategy",
            "evolution",
            "--budget",
            "150",
        ])
        .args(["--config", &cfg, "--out"])
        .arg(&dir));
    assert!(ok, "{out}\n{err}");
    let journal = std::fs::read_to_string(dir.join("journal.jsonl")).unwrap();
    let over = journal
        .lines()
        .filter(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["metrics"]["params"].as_f64().unwrap() > limit
        })
        .count();
    assert!(
        over > 0,
        "the run never proposed an infeasible architecture, so it tests nothing"
    );

    let best: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("best.json")).unwrap()).unwrap();
    assert!(
        best["metrics"]["params"].as_f64().unwrap() <= limit,
        "{best}"
    );

    let (ok, out, err) = run(nas().arg("export").arg(&dir));
    assert!(ok, "{out}\n{err}");
    let front: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("export.json")).unwrap()).unwrap();
    assert!(!front.is_empty());
    let mut seen = std::collections::HashSet::new();
    for m in &front {
        assert!(m["metrics"]["params"].as_f64().unwrap() <= limit, "{m}");
        assert!(
            seen.insert(m["arch"].to_string()),
            "listed twice: {}",
            m["arch"]
        );
    }
    // A cost no trial reports: the error lists those they do.
    // Accuracy is no cost: before, "no trial reports that cost", though every one does.
    let (ok, _, err) = run(nas().arg("export").arg(&dir).args(["--pareto", "accuracy"]));
    assert!(
        !ok && err.contains("--pareto accuracy: accuracy is what the set trades"),
        "{err}"
    );
    let (ok, _, err) = run(nas().arg("export").arg(&dir).args(["--pareto", "flops"]));
    assert!(!ok, "{err}");
    assert!(
        err.contains("--pareto flops: no trial reports that cost (the trials report params, macs, latency_ms"),
        "{err}"
    );
    let (ok, out, err) = run(nas().arg("report").arg(&dir));
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("over the limits (params <= 400000)"), "{out}");

    // A limit no architecture meets: nothing to return, and the commands say why.
    let none = out_dir("limits-none");
    let (ok, out, err) = run(nas()
        .args([
            "search",
            "--space",
            "nb201",
            "--strategy",
            "random",
            "--budget",
            "5",
        ])
        .args(["--config", r#"{"max_params": 10}"#, "--out"])
        .arg(&none));
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("within the limits (params <= 10)"), "{out}");
    assert!(!none.join("best.json").exists());
    for cmd in ["export", "retrain"] {
        let (ok, out, err) = run(nas().arg(cmd).arg(&none));
        assert!(!ok, "{cmd}: {out}");
        assert!(
            err.contains("none of the run's 5 trials is within the limits"),
            "{cmd}: {err}"
        );
    }
    // The report still shows the trials (before, it failed with the message alone): each
    // with its parameters, which say how far off the limit it is.
    let (ok, out, err) = run(nas().arg("report").arg(&none).arg("--html"));
    assert!(ok, "{out}\n{err}");
    assert!(
        out.contains(
            "none of the run's 5 trials is within the limits (params <= 10): nothing to \
             export or retrain; the trials, all outside the limits:"
        ),
        "{out}"
    );
    let rows = out.lines().filter(|l| l.contains("{\"")).count();
    assert!((1..=5).contains(&rows), "{out}");
    assert!(out.contains("no plots") && !none.join("best_so_far.svg").exists());
    assert!(
        out.contains("wrote ") && out.contains("report.html"),
        "{out}"
    );
    std::fs::remove_dir_all(&dir).ok();
    std::fs::remove_dir_all(&none).ok();
}

/// Every strategy takes the host's hard limits in its config, in either form, and what
/// its run returns holds them. Before, only `random` and `evolution` took `limits`, and
/// only `random` and `spos` the `max_*` fields: the others refused the config, so a
/// limit could not be set for them at all.
#[test]
fn every_strategy_takes_the_hard_limits() {
    let limit = 400_000.0;
    for (strategy, cfg) in [
        (
            "qlearning",
            format!(r#"{{"limits": {{"params": {limit}}}}}"#),
        ),
        ("pnas", format!(r#"{{"max_params": {limit}}}"#)),
        (
            "grid",
            format!(r#"{{"max_params": {limit}, "shuffle": true}}"#),
        ),
        ("evolution", format!(r#"{{"max_params": {limit}}}"#)),
    ] {
        let dir = out_dir(&format!("limits-{strategy}"));
        let (ok, out, err) = run(nas()
            .args(["search", "--space", "nb201", "--strategy", strategy])
            .args(["--budget", "40", "--config", &cfg, "--out"])
            .arg(&dir));
        assert!(ok, "{strategy}: {out}\n{err}");
        let best: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("best.json")).unwrap()).unwrap();
        assert!(
            best["metrics"]["params"].as_f64().unwrap() <= limit,
            "{strategy}: {best}"
        );
    }
    // A limit that is not a number is still refused, naming the field.
    let (ok, _, err) = run(nas()
        .args(["search", "--space", "nb201", "--strategy", "pnas"])
        .args([
            "--budget",
            "5",
            "--config",
            r#"{"max_macs": "many"}"#,
            "--out",
        ])
        .arg(out_dir("limits-bad")));
    assert!(!ok && err.contains("`max_macs`"), "{err}");
    // Limits no architecture meets: DPP-Net, which costs its picks before asking them,
    // ends after `max_over` costed, saying so and leaving no run behind. Before, it
    // costed 11,303 architectures in silence for 109 s, then printed "no trials".
    let dir = out_dir("limits-dppnet-out-of-reach");
    let (ok, out, err) = run(nas()
        .args(["search", "--space", "nb201", "--strategy", "dppnet"])
        .args([
            "--budget",
            "5",
            "--config",
            r#"{"max_params": 1, "max_over": 50}"#,
        ])
        .arg("--out")
        .arg(&dir));
    assert!(!ok, "{out}\n{err}");
    assert!(
        err.contains("no architecture within the limits")
            && err.contains("all 50 architectures costed over them (params <= 1, the least seen "),
        "{err}"
    );
    assert!(
        err.contains("holds no run") && !dir.exists(),
        "{out}\n{err}"
    );
}

/// Each learning strategy beats random search on the real NAS-Bench-201 table (not a
/// synthetic objective any hill climber wins): over 100 runs of 150 queries, its mean
/// returned accuracy is above random search's by more than two standard errors.
/// `qlearning` is held to not falling below random: MetaQNN's published schedule spends
/// 56% of the budget at epsilon 1, so at 150 queries it cannot pull far ahead; so is
/// `pnas` as published (one batch per depth; its `"rounds": 8` option beats random, which
/// its own `tests/nb201.rs` checks). `genetic`
/// (GeNet as published) is not held to it here: about half its asks re-evaluate
/// surviving individuals, and at 150 queries it returns less than random search; its own
/// test (`nas-plugins/genetic/tests/nb201.rs`) checks it at the paper's 1000 queries,
/// where it wins.
#[test]
fn learning_strategies_beat_random_search_on_nas_bench_201() {
    // The strategies this test judges (the others' rows are in the README's table).
    let (ok, out, err) = run(nas().args([
        "bench-strategies",
        "--runs",
        "100",
        "--budget",
        "150",
        "--strategies",
        "random,evolution,reinforce,pnas,qlearning,nao",
    ]));
    assert!(ok, "{out}\n{err}");
    let row = |name: &str| -> (f64, f64) {
        let cols: Vec<f64> = out
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no `{name}` row in:\n{out}"))
            .split_whitespace()
            .skip(1)
            .take(2)
            .map(|v| v.parse().unwrap())
            .collect();
        (cols[0], cols[1])
    };
    let (random, random_sd) = row("random");
    println!("{out}");
    for s in ["evolution", "reinforce", "pnas", "qlearning", "nao"] {
        let (mean, sd) = row(s);
        let se = ((sd * sd + random_sd * random_sd) / 100.0).sqrt();
        if s == "qlearning" || s == "pnas" {
            assert!(
                mean > random - 2.0 * se,
                "{s}: {mean:.2} below random {random:.2}"
            );
        } else {
            assert!(
                mean > random + 2.0 * se,
                "{s}: {mean:.2} does not beat random {random:.2} (two standard errors {:.2})",
                2.0 * se
            );
        }
    }
}

/// Bad options of `nas bench-strategies` are errors naming them, before its table
/// starts (before: `--runs 0` printed NaN and 309-digit numbers and exit 0, `--budget 0`
/// said "no feasible trial", and a one-shot or missing strategy was an error after the
/// table's header).
#[test]
fn bench_strategies_refuses_bad_options_before_it_starts() {
    for (args, want) in [
        (
            ["--runs", "0", "--budget", "5", "--strategies", "random"],
            "--runs 0: must be at least 1",
        ),
        (
            ["--runs", "1", "--budget", "0", "--strategies", "random"],
            "--budget 0: must be at least 1",
        ),
        (
            [
                "--runs",
                "1",
                "--budget",
                "5",
                "--strategies",
                "random,darts",
            ],
            "--strategies darts: a one-shot strategy",
        ),
        (
            [
                "--runs",
                "1",
                "--budget",
                "5",
                "--strategies",
                "random,nope",
            ],
            "no strategy plugin named `nope`",
        ),
    ] {
        let (ok, out, err) = run(nas().arg("bench-strategies").args(args));
        assert!(!ok, "{args:?}: {out}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(out.is_empty(), "{args:?}: the table started: {out}");
    }
}

/// `nas export`, `nas report` and `nas retrain` only read a run. A byte that is not UTF-8
/// inside an op name of the journal's first line is an error naming the file and the
/// line, and the journal is left as it was; a torn last line is left out of what they
/// read, and only `nas resume` cuts it, keeping a copy of what it cut.
#[test]
fn read_only_commands_never_write_the_journal() {
    let d = out_dir("read-only");
    let (ok, out, err) = table_search(&d, &["--strategy", "random", "--budget", "5"]);
    assert!(ok, "{out}\n{err}");
    let path = d.join("journal.jsonl");
    let good = std::fs::read(&path).unwrap();
    let line1 = good.iter().position(|&b| b == b'\n').unwrap();
    let arch = good.windows(6).position(|w| w == b"\"arch\"").unwrap();
    let op = arch + good[arch..line1].iter().position(|&b| b == b'_').unwrap();
    let mut bad = good.clone();
    bad[op] = 0xFF;
    std::fs::write(&path, &bad).unwrap();
    for cmd in ["export", "report", "retrain"] {
        let (ok, out, err) = run(nas().arg(cmd).arg(&d));
        assert!(!ok, "{cmd} read a corrupt journal: {out}");
        assert!(
            err.contains("journal.jsonl") && err.contains("line 1"),
            "{cmd}: {err}"
        );
        assert_eq!(
            std::fs::read(&path).unwrap(),
            bad,
            "{cmd} wrote the journal"
        );
    }

    let tail = b"{\"trial\": 5, \"arch\": {\"";
    let mut torn = good.clone();
    torn.extend_from_slice(tail);
    std::fs::write(&path, &torn).unwrap();
    for cmd in ["export", "report"] {
        let (ok, out, err) = run(nas().arg(cmd).arg(&d));
        assert!(ok, "{cmd}: {out}\n{err}");
        assert_eq!(
            std::fs::read(&path).unwrap(),
            torn,
            "{cmd} wrote the journal"
        );
    }
    let (ok, out, err) = run(nas().arg("resume").arg(&d));
    assert!(ok, "{out}\n{err}");
    assert!(
        format!("{out}{err}").contains("journal.jsonl.cut-1"),
        "{out}\n{err}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), good);
    assert_eq!(std::fs::read(d.join("journal.jsonl.cut-1")).unwrap(), tail);
    std::fs::remove_dir_all(&d).ok();
}

/// A run directory has one writer: `nas resume` beside a running search is refused with
/// the pid of the search, and of two searches started at once into one directory, one
/// runs and the other is refused cleanly.
#[test]
fn a_run_directory_has_one_writer() {
    let d = out_dir("one-writer");
    let mut child = nas()
        .args([
            "--threads",
            "1",
            "search",
            "--space",
            "seed-net",
            "--strategy",
            "random",
        ])
        .args([
            "--evaluator",
            "train",
            "--limit",
            "512",
            "--val",
            "256",
            "--budget",
            "50",
        ])
        .arg("--out")
        .arg(&d)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !d.join("journal.jsonl").exists() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the search never started"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let (ok, out, err) = run(nas().arg("resume").arg(&d));
    let pid = child.id();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!ok, "resume ran beside a running search: {out}");
    assert!(err.contains(&format!("pid {pid}")), "{err}");
    std::fs::remove_dir_all(&d).ok();

    let d = out_dir("same-instant");
    let spawn = || {
        nas()
            .args([
                "search",
                "--space",
                "nb201",
                "--strategy",
                "random",
                "--budget",
                "300",
            ])
            .arg("--out")
            .arg(&d)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let outs = [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()];
    let errs: Vec<String> = outs
        .iter()
        .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
        .collect();
    assert_eq!(
        outs.iter().filter(|o| o.status.success()).count(),
        1,
        "{errs:?}"
    );
    let loser = outs.iter().position(|o| !o.status.success()).unwrap();
    assert!(
        errs[loser].contains("is writing this run") || errs[loser].contains("already holds a run"),
        "{}",
        errs[loser]
    );
    let journal = std::fs::read_to_string(d.join("journal.jsonl")).unwrap();
    for (i, l) in journal.lines().enumerate() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["trial"], i);
    }
    assert_eq!(journal.lines().count(), 300);
    std::fs::remove_dir_all(&d).ok();
}

/// A search that fails on its inputs (strategy, table, data, config) leaves no run
/// behind, so the corrected command runs.
#[test]
fn a_failed_search_leaves_no_run_behind() {
    let d = out_dir("mistake");
    for bad in [
        &["--strategy", "no-such"][..],
        &["--strategy", "random", "--table", "no/such/table.csv"],
        &[
            "--strategy",
            "random",
            "--evaluator",
            "train",
            "--data",
            "no/such/data",
        ],
        &["--strategy", "random", "--config", "{not json"],
        &["--strategy", "evolution", "--config", r#"{"sample": 0}"#],
        &["--strategy", "gdas", "--data", "no/such/data"],
        &[
            "--strategy",
            "darts",
            "--limit",
            "640",
            "--val",
            "640",
            "--config",
            r#"{"order": 3}"#,
        ],
    ] {
        let (ok, out, _) = table_search(&d, &[bad, &["--budget", "3"]].concat());
        assert!(!ok, "{bad:?}: {out}");
        for f in ["config.json", "journal.jsonl"] {
            assert!(!d.join(f).exists(), "{bad:?} left {f} behind");
        }
    }
    let (ok, out, err) = table_search(&d, &["--strategy", "random", "--budget", "3"]);
    assert!(ok, "{out}\n{err}");
    std::fs::remove_dir_all(&d).ok();
}

/// A GDAS search of `seed-net` for one epoch into `d`, with extra arguments.
fn gdas_search(d: &Path, extra: &[&str]) -> (bool, String, String) {
    run(nas()
        .args([
            "--threads",
            "2",
            "search",
            "--space",
            "seed-net",
            "--strategy",
            "gdas",
        ])
        .args(["--epochs", "1"])
        .args(extra)
        .arg("--out")
        .arg(d))
}

/// A one-shot run killed after journaling its export but before writing `best.json`
/// gets it from `nas resume`.
#[test]
fn resume_finishes_a_one_shot_run() {
    let d = out_dir("oneshot-best");
    let (ok, out, err) = gdas_search(&d, &["--limit", "640", "--val", "640"]);
    assert!(ok, "{out}\n{err}");
    let best: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("best.json")).unwrap()).unwrap();
    std::fs::remove_file(d.join("best.json")).unwrap();
    let (ok, out, err) = run(nas().arg("resume").arg(&d));
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("already finished"), "{out}");
    let again: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(d.join("best.json")).expect("resume must write best.json"),
    )
    .unwrap();
    assert_eq!(again["arch"], best["arch"]);
    assert_eq!(again["trial"], best["trial"]);
    std::fs::remove_dir_all(&d).ok();
}

/// The journal's trials, without their timings (which differ from run to run).
fn trials(d: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(d.join("journal.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("seconds");
            v
        })
        .collect()
}

/// A search killed after journaling a trial but before saving the strategy's state (in
/// the middle of a batch of parallel trials, or before the first save) resumes to the
/// very run an uninterrupted search makes: the kill is simulated by cutting the journal
/// back and rolling the state back to before the trials kept.
#[test]
fn a_resumed_search_proposes_what_the_uninterrupted_one_did() {
    let args = [
        "--strategy",
        "evolution",
        "--config",
        r#"{"population": 4, "sample": 2}"#,
        "--parallel",
        "3",
        "--budget",
        "15",
    ];
    let whole = out_dir("uninterrupted");
    let (ok, out, err) = table_search(&whole, &args);
    assert!(ok, "{out}\n{err}");
    let reference = trials(&whole);
    assert_eq!(reference.len(), 15);
    for keep in [2, 7] {
        let d = out_dir(&format!("rolled-back-{keep}"));
        let (ok, out, err) = table_search(&d, &args);
        assert!(ok, "{out}\n{err}");
        let text = std::fs::read_to_string(d.join("journal.jsonl")).unwrap();
        let kept: String = text.lines().take(keep).map(|l| format!("{l}\n")).collect();
        std::fs::write(d.join("journal.jsonl"), kept).unwrap();
        std::fs::remove_file(d.join("strategy_state.json")).unwrap();
        std::fs::remove_file(d.join("best.json")).unwrap();
        let (ok, out, err) = run(nas().arg("resume").arg(&d));
        assert!(ok, "{out}\n{err}");
        assert_eq!(trials(&d), reference, "resumed after {keep} trials");
        std::fs::remove_dir_all(&d).ok();
    }
    // A state saved after the batch of trials 3..6, and trial 6 journaled after it: the
    // run stopped at a budget of 6 and given a budget of 15 is that run.
    let d = out_dir("state-behind");
    let short: Vec<&str> = args[..args.len() - 1]
        .iter()
        .copied()
        .chain(["6"])
        .collect();
    let (ok, out, err) = table_search(&d, &short);
    assert!(ok, "{out}\n{err}");
    let config = d.join("config.json");
    let mut c: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    c["budget"] = 15.into();
    std::fs::write(&config, c.to_string()).unwrap();
    let line6 = std::fs::read_to_string(whole.join("journal.jsonl"))
        .unwrap()
        .lines()
        .nth(6)
        .unwrap()
        .to_string();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(d.join("journal.jsonl"))
        .unwrap();
    std::io::Write::write_all(&mut f, format!("{line6}\n").as_bytes()).unwrap();
    drop(f);
    let (ok, out, err) = run(nas().arg("resume").arg(&d));
    assert!(ok, "{out}\n{err}");
    assert_eq!(
        trials(&d),
        reference,
        "resumed with the state one trial behind"
    );
    std::fs::remove_dir_all(&d).ok();
    std::fs::remove_dir_all(&whole).ok();
}

/// The files and pipes a user points `nas` at: a report piped into `head` ends quietly
/// (it panicked on the closed pipe); `export --out` writes into a FIFO and through a
/// symbolic link instead of replacing them, and refuses a directory leaving no temporary
/// file behind; an error quotes a 100 KB value in a few hundred bytes, not whole.
#[test]
fn outputs_pipes_and_long_values_are_handled() {
    use std::io::Read;
    let d = out_dir("outputs");
    let (ok, out, err) = table_search(&d, &["--strategy", "random", "--budget", "30"]);
    assert!(ok, "{out}\n{err}");

    // A closed pipe: the reader is gone before the report prints its table.
    let mut child = nas()
        .arg("report")
        .arg(&d)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    assert_ne!(status.code(), Some(101), "report crashed: {err}");
    assert!(!err.contains("panicked"), "{err}");

    // A FIFO is written into, and stays a FIFO.
    let fifo = d.join("export.fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read_to_string(fifo).unwrap())
    };
    let (ok, out, err) = run(nas().arg("export").arg(&d).arg("--out").arg(&fifo));
    assert!(ok, "{out}\n{err}");
    let got = reader.join().unwrap();
    assert!(got.contains("edge_1_0"), "the FIFO's reader got {got:?}");
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::symlink_metadata(&fifo)
        .unwrap()
        .file_type()
        .is_fifo());

    // A symbolic link is followed: its target gets the export, the link stays.
    let target = d.join("target.json");
    std::fs::write(&target, "old").unwrap();
    let link = d.join("link.json");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let (ok, out, err) = run(nas().arg("export").arg(&d).arg("--out").arg(&link));
    assert!(ok, "{out}\n{err}");
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(std::fs::read_to_string(&target)
        .unwrap()
        .contains("edge_1_0"));

    // A directory is refused, and no temporary file is left beside it.
    let dir = d.join("a-directory");
    std::fs::create_dir(&dir).unwrap();
    let (ok, _, err) = run(nas().arg("export").arg(&d).arg("--out").arg(&dir));
    assert!(!ok && err.contains("a-directory"), "{err}");
    let stray: Vec<String> = std::fs::read_dir(&d)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("tmp"))
        .collect();
    assert!(stray.is_empty(), "temporary files left: {stray:?}");

    // A long bad value is quoted in part.
    let value = "x".repeat(100_000);
    for args in [
        vec![
            "--strategy".to_string(),
            "evolution".into(),
            "--config".into(),
            format!("{{\"population\": \"{value}\"}}"),
        ],
        vec!["--strategy".into(), value.clone()],
        vec![
            "--strategy".into(),
            "random".into(),
            "--budget".into(),
            value.clone(),
        ],
    ] {
        let o = nas()
            .args(["search", "--space", "nb201"])
            .args(&args)
            .arg("--out")
            .arg(d.join("never"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success());
        assert!(
            err.len() < 3000 && err.contains("characters cut"),
            "{} bytes of error for a {} byte value: {}",
            err.len(),
            value.len(),
            &err[..err.len().min(300)]
        );
    }
    std::fs::remove_dir_all(&d).ok();
}

/// A plugin is loaded from the bytes its check read, not from its file a second time (a
/// file rewritten between the check and the load would get past the check): the library
/// is mapped from an in-memory copy, and its file is not mapped at all.
#[cfg(target_os = "linux")]
#[test]
fn a_plugin_is_loaded_from_the_bytes_that_were_checked() {
    let file = common::workspace_plugins().join("libnas_strategy_random.so");
    let plugin = nas_cli::host::Plugin::load(&file).unwrap();
    assert_eq!(plugin.name, "random");
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    assert!(maps.contains("memfd:nas-plugin"), "{maps}");
    assert!(!maps.contains("libnas_strategy_random.so"), "{maps}");
}

/// A run records its space's choices, and the commands that only read a run check every
/// journaled architecture against them: a journal edited into an op the space does not
/// have is an error naming the trial (it was exported as the best architecture).
#[test]
fn read_only_commands_check_architectures_against_the_space() {
    let d = out_dir("space-check");
    let (ok, out, err) = table_search(&d, &["--strategy", "random", "--budget", "6"]);
    assert!(ok, "{out}\n{err}");
    assert!(d.join("space.json").exists());
    let path = d.join("journal.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    lines[3]["arch"]["edge_2_1"] = "conv_9x9".into();
    lines[3]["metrics"]["accuracy"] = 0.999.into();
    let edited: String = lines.iter().map(|v| format!("{v}\n")).collect();
    std::fs::write(&path, &edited).unwrap();
    for cmd in ["export", "report", "retrain"] {
        let (ok, out, err) = run(nas().arg(cmd).arg(&d));
        assert!(
            !ok,
            "{cmd} accepted an architecture outside the space: {out}"
        );
        assert!(
            err.contains("trial 3") && err.contains("space.json") && err.contains("conv_9x9"),
            "{cmd}: {err}"
        );
    }
    std::fs::remove_dir_all(&d).ok();
}

/// A search that fails before its first trial in a directory the user made (holding a
/// file of theirs, or empty) leaves the directory and their file, and no half-made run:
/// the same `--out` then takes a search. Before, the file kept the failed run, which
/// `--out` refused ("already holds a run") and `nas resume` replayed into the same
/// error; and an empty directory of the user's was removed.
#[test]
fn a_failed_search_in_a_users_directory_leaves_it_as_it_was() {
    let base = out_dir("users-dir");
    let (kept, empty) = (base.join("kept"), base.join("empty"));
    std::fs::create_dir_all(&kept).unwrap();
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::write(kept.join("notes.txt"), "mine").unwrap();
    for d in [&kept, &empty] {
        let bad = [
            "--strategy",
            "nat",
            "--budget",
            "3",
            "--config",
            r#"{"bogus": 1}"#,
        ];
        let (ok, out, err) = table_search(d, &bad);
        assert!(!ok && err.contains("bogus"), "{out}\n{err}");
        assert!(d.is_dir(), "the user's directory was removed");
        let left: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        let want: &[&str] = if d == &kept { &["notes.txt"] } else { &[] };
        assert_eq!(left, want, "{}", d.display());
        let (ok, out, err) = table_search(d, &["--strategy", "random", "--budget", "3"]);
        assert!(ok, "{out}\n{err}");
    }
    std::fs::remove_dir_all(&base).ok();
}

/// A journal whose last line a kill cut after the strategy state was saved: `nas
/// resume` replays the journal from its start instead of refusing (before, every resume
/// failed: "the strategy state says 20 trials, the journal has 19"), and ends with the
/// budget. A search whose strategy runs out before its budget has ended, and `nas
/// report` says so (before: "stopped before its end", and `--html` rewrote the page as
/// stopped). Too many `--cells` is an error naming the flag (before, memory grew until
/// the process aborted).
#[test]
fn resume_past_a_cut_line_and_runs_that_end_early() {
    let d = out_dir("cut-state");
    let (ok, out, err) = table_search(&d, &["--strategy", "evolution", "--budget", "20"]);
    assert!(ok, "{out}\n{err}");
    assert!(d.join("strategy_state.json").exists());
    let j = d.join("journal.jsonl");
    let len = std::fs::metadata(&j).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&j)
        .unwrap()
        .set_len(len - 30)
        .unwrap();
    let (ok, out, err) = run(nas().arg("resume").arg(&d));
    assert!(ok, "{out}\n{err}");
    assert!(
        out.contains("replaying the journal from its start"),
        "{out}"
    );
    let lines = std::fs::read_to_string(&j).unwrap().lines().count();
    assert_eq!(lines, 20);
    std::fs::remove_dir_all(&d).ok();

    // Grid over a space file of two architectures, with a budget of five.
    let d = out_dir("ends-early");
    std::fs::create_dir_all(&d).unwrap();
    let space = d.join("two.json");
    let two = r#"{"name": "two", "layers": [
        {"choice": "block", "candidates": {"a": [{"op": "conv", "out": 4}], "b": [{"op": "conv", "out": 4, "kernel": 1}]}},
        {"op": "gap"}, {"op": "linear", "out": "classes"}]}"#;
    std::fs::write(&space, two).unwrap();
    // Without --out the run is named after the space file (before: after seed-net, the
    // default of --space).
    let runs = d.join("runs/two-grid-0");
    let (ok, out, err) = run(nas()
        .current_dir(&d)
        .env("NAS_DATA", root().join("data"))
        .args(["--threads", "2", "search", "--space-file"])
        .arg(&space)
        .args([
            "--strategy",
            "grid",
            "--budget",
            "5",
            "--evaluator",
            "train",
        ])
        .args([
            "--limit", "64", "--val", "64", "--batch", "32", "--epochs", "1",
        ]));
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("run directory: runs/two-grid-0"), "{out}");
    let (ok, out, err) = run(nas().arg("report").arg(&runs).arg("--html"));
    assert!(ok, "{out}\n{err}");
    assert!(!out.contains("stopped before its end"), "{out}");
    let html = std::fs::read_to_string(runs.join("report.html")).unwrap();
    assert!(html.contains("<body data-state=\"finished\""));
    std::fs::remove_dir_all(&d).ok();

    let (ok, _, err) = run(nas().args(["spaces", "--space", "nb201", "--cells", "100000"]));
    assert!(!ok && err.contains("--cells 100000: at most 100"), "{err}");
}

/// A run's `config.json` edited by hand: a value of the wrong type is an error naming
/// the file and the field, a flattened one (`split_seed`, of the data options) too; a
/// value a flag would refuse is named by its flag after the file; a field the search
/// does not know is a warning. Before, the first two read "config.json is not a search
/// config: invalid type: string "x", expected usize" (no field), the third named only
/// the flags ("--budget, --parallel, --batch and --epochs must be at least 1"), and the
/// last was silent.
#[test]
fn a_hand_edited_config_names_the_file_and_the_field() {
    let d = out_dir("edited-config");
    let (ok, out, err) = table_search(&d, &["--strategy", "random", "--budget", "5"]);
    assert!(ok, "{out}\n{err}");
    let config = d.join("config.json");
    let original = std::fs::read_to_string(&config).unwrap();
    let edit = |from: &str, to: &str| {
        assert!(original.contains(from), "{original}");
        std::fs::write(&config, original.replace(from, to)).unwrap();
    };
    let shown = config.display().to_string();
    for (from, to, want) in [
        (
            r#""batch": 64"#,
            r#""batch": "x""#,
            "field `batch`: invalid type: string",
        ),
        (
            r#""split_seed": null"#,
            r#""split_seed": "x""#,
            "field `split_seed`: invalid type",
        ),
        (
            r#""seed": 0"#,
            r#""seed": -1"#,
            "field `seed`: invalid value: integer `-1`",
        ),
    ] {
        edit(from, to);
        let (ok, out, err) = run(nas().arg("report").arg(&d));
        assert!(!ok, "{to}: {out}");
        assert!(err.contains(&format!("{shown}: {want}")), "{to}: {err}");
    }
    edit(r#""budget": 5"#, r#""budget": 0"#);
    let (ok, out, err) = run(nas().arg("resume").arg(&d));
    assert!(!ok, "{out}");
    assert!(
        err.contains(&format!("{shown} (the run's options"))
            && err.contains("--budget 0: must be at least 1"),
        "{err}"
    );
    edit(r#""budget": 5"#, r#""budget": 5, "devise": "wgpu""#);
    let (ok, out, err) = run(nas().arg("report").arg(&d));
    assert!(ok, "{out}\n{err}");
    assert!(
        err.contains("field `devise` is not an option of `nas search`; ignored"),
        "{err}"
    );
    std::fs::remove_dir_all(&d).ok();
}

/// A one-shot run stopped before its first progress report (its journal empty, no
/// progress yet) is reported as one: its strategy's kind, its state, and that nothing is
/// recorded yet. Before, it read "0 of 100 trials" and ended in the error "no trial has
/// ended yet".
#[test]
fn a_one_shot_run_stopped_before_its_first_report_is_reported() {
    let d = out_dir("one-shot-nothing-yet");
    let (ok, out, err) = gdas_search(&d, &["--limit", "256", "--val", "64", "--batch", "32"]);
    assert!(ok, "{out}\n{err}");
    // As the run stood before its first report.
    for e in std::fs::read_dir(&d).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if !["config.json", "space.json", "journal.jsonl"].contains(&name.as_str()) {
            std::fs::remove_file(&p).unwrap();
        }
    }
    std::fs::write(d.join("journal.jsonl"), "").unwrap();
    let (ok, out, err) = run(nas().arg("report").arg(&d));
    assert!(ok, "{out}\n{err}");
    assert!(
        out.contains(": one-shot gdas on seed-net, 1 epoch"),
        "{out}"
    );
    assert!(out.contains("stopped before its end"), "{out}");
    assert!(out.contains("nothing recorded yet"), "{out}");
    std::fs::remove_dir_all(&d).ok();
}

/// `nas resume DIR --plugin-dir D` looks for the strategy in D first, instead of the
/// directories the run recorded (a plugin built elsewhere that moved), and records D;
/// before, resume had no such flag, and a run whose plugin moved could only be resumed
/// by editing its config.json or setting NAS_PLUGIN_PATH.
#[test]
fn resume_looks_for_the_plugin_where_it_is_told() {
    let dir = out_dir("resume-plugin-dir");
    let (moved, broken) = (
        out_dir("resume-plugin-dir-good"),
        out_dir("resume-plugin-dir-bad"),
    );
    let lib = common::workspace_plugins().join("libnas_strategy_random.so");
    let bytes = std::fs::read(&lib).unwrap();
    for (d, b) in [(&moved, &bytes[..]), (&broken, &bytes[..bytes.len() / 2])] {
        std::fs::create_dir_all(d).unwrap();
        std::fs::write(d.join("libnas_strategy_random.so"), b).unwrap();
    }
    let (ok, out, err) = run(nas()
        .args(["search", "--space", "nb201", "--strategy", "random"])
        .args(["--budget", "3", "--out"])
        .arg(&dir));
    assert!(ok, "{out}\n{err}");
    let config = || std::fs::read_to_string(dir.join("config.json")).unwrap();
    let before = config();
    // The directory given is searched first: its damaged copy is the one refused (the
    // workspace's own is found after it), and the run's record is left as it was.
    let (ok, out, err) = run(nas()
        .arg("resume")
        .arg(&dir)
        .arg("--plugin-dir")
        .arg(&broken));
    assert!(!ok, "{out}");
    assert!(
        err.contains(
            &broken
                .join("libnas_strategy_random.so")
                .display()
                .to_string()
        ),
        "{err}"
    );
    assert_eq!(config(), before);
    let (ok, out, err) = run(nas()
        .arg("resume")
        .arg(&dir)
        .arg("--plugin-dir")
        .arg(&moved));
    assert!(ok, "{out}\n{err}");
    assert!(
        out.contains(&format!("plugins are looked for in {}", moved.display())),
        "{out}"
    );
    let cfg: serde_json::Value = serde_json::from_str(&config()).unwrap();
    assert_eq!(cfg["plugin_dir"], serde_json::json!([moved]), "{cfg}");
    for d in [dir, moved, broken] {
        std::fs::remove_dir_all(&d).ok();
    }
}

/// A run records the version of the plugin that started it, and a resume by another
/// version warns that the search may differ (plugins' searches change between
/// versions: a run of an older SNAS resumed by a newer one would switch its
/// constraint on halfway). The same version resumes without a word.
#[test]
fn a_resume_by_another_plugin_version_says_so() {
    let dir = out_dir("resume-plugin-version");
    let (ok, out, err) = run(nas()
        .args(["search", "--space", "nb201", "--strategy", "random"])
        .args(["--budget", "3", "--out"])
        .arg(&dir));
    assert!(ok, "{out}\n{err}");
    let path = dir.join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let now = cfg["plugin_version"]
        .as_str()
        .expect("the version is recorded")
        .to_string();
    let (ok, _, err) = run(nas().arg("resume").arg(&dir));
    assert!(ok, "{err}");
    assert!(!err.contains("warning: `random`"), "{err}");
    cfg["plugin_version"] = serde_json::json!("0.0.1");
    std::fs::write(&path, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
    let (ok, _, err) = run(nas().arg("resume").arg(&dir));
    assert!(ok, "{err}");
    assert!(
        err.contains("`random` 0.0.1 started this run")
            && err.contains(&format!("{now} is resuming")),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
