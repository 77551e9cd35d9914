//! Values a new user can give that the tool ran with before and now refuses, naming the
//! flag (a reading of the CLI as a new user, 2026-12): settings that cannot train, a
//! `limit` of 0 in a run's `config.json`, a network larger than the memory, two spaces
//! at once, a benchmark time or target out of range.

use crate::common::{self, fails as refused, nas, run, table_search};
use std::path::{Path, PathBuf};

/// Replaces each `from` (which must be there) by its `to` in the run's `config.json`;
/// returns the file's path.
fn edit_config(d: &Path, edits: &[(&str, &str)]) -> PathBuf {
    let config = d.join("config.json");
    let mut text = std::fs::read_to_string(&config).unwrap();
    for (from, to) in edits {
        assert!(text.contains(from), "{from} not in {text}");
        text = text.replace(from, to);
    }
    std::fs::write(&config, text).unwrap();
    config
}

/// `nas resume` of the run in `d`, which must end in the host's error; its stderr.
fn resume_refused(d: &Path) -> String {
    let (ok, out, err) = run(nas().arg("resume").arg(d));
    assert!(!ok, "{out}\n{err}");
    err
}

/// The trials of the run in `d`'s journal.
fn journaled(d: &Path) -> usize {
    let journal = std::fs::read_to_string(d.join("journal.jsonl")).unwrap();
    journal.lines().count()
}

/// `nas train --lr nan` trained to a loss of NaN and a test accuracy of 10% and exited
/// 0, as did `--lr inf`, `--lr 1e30`, `--weight-decay nan` and `--momentum 5`.
#[test]
fn training_settings_that_cannot_train_are_refused() {
    for (flag, value, want) in [
        ("--lr", "nan", "a learning rate above 0 and at most 10"),
        ("--lr", "inf", "a learning rate above 0 and at most 10"),
        ("--lr", "1e30", "a learning rate above 0 and at most 10"),
        ("--lr", "0", "a learning rate above 0 and at most 10"),
        ("--momentum", "5", "a momentum in [0, 1)"),
        ("--weight-decay", "nan", "a weight decay from 0 to 1"),
    ] {
        let err = refused(nas().args(["train", "--epochs", "1", "--limit", "64", flag, value]));
        assert!(
            err.contains(flag) && err.contains(want),
            "{flag} {value}: {err}"
        );
    }
}

/// A run whose `config.json` says `"limit": 0` (which `--limit 0` refuses) journaled a
/// trial trained on nothing at chance accuracy when resumed; now the resume stops,
/// naming the file and the flag, and the journal keeps its trials.
#[test]
fn a_limit_of_0_in_a_runs_config_is_refused_on_resume() {
    let d = common::temp_path("input", "limit0");
    let (ok, out, err) = run(nas()
        .args(["search", "--space", "seed-net", "--strategy", "random"])
        .args(["--evaluator", "train", "--budget", "1", "--epochs", "1"])
        .args(["--limit", "200", "--val", "100", "--out"])
        .arg(&d));
    assert!(ok, "{out}\n{err}");
    let config = edit_config(
        &d,
        &[
            (r#""limit": 200"#, r#""limit": 0"#),
            (r#""budget": 1"#, r#""budget": 2"#),
        ],
    );
    // A run that records its setup refuses any edit of `limit` (below); one made before
    // runs recorded it refuses this value.
    std::fs::remove_file(d.join("setup.json")).unwrap();
    let err = resume_refused(&d);
    assert!(
        err.contains(&config.display().to_string())
            && err.contains("--limit 0: expected at least 1 training image"),
        "{err}"
    );
    assert_eq!(journaled(&d), 1);
    std::fs::remove_dir_all(&d).ok();
}

/// `nas spaces --space darts --channels 1024 --cells 100` (within the flags' stated
/// ranges) grew past 19 GB in a minute building the supernet; its parameters are far
/// more than any machine here holds. Now the parameters are counted as they are made
/// and the command stops at the bound. `NAS_MAX_MEMORY` stands in for a small machine.
#[test]
fn a_network_larger_than_the_memory_is_an_error() {
    let err = refused(
        nas()
            .args([
                "spaces",
                "--space",
                "darts",
                "--channels",
                "512",
                "--cells",
                "8",
            ])
            .env("NAS_MAX_MEMORY", "200000000"),
    );
    assert!(
        err.contains(
            "out of host memory: the network's parameters take more than the 0.19 GiB available"
        ) && err.contains("--channels or --cells"),
        "{err}"
    );
    // The default darts space fits the same bound.
    let (ok, out, err) = run(nas()
        .args(["spaces", "--space", "darts"])
        .env("NAS_MAX_MEMORY", "200000000"));
    assert!(ok && out.contains("darts: 36 choices"), "{out}\n{err}");
}

/// `--space nb201 --space-file F` searched F and recorded both; one space at a time now.
#[test]
fn two_spaces_at_once_are_refused() {
    let err = refused(
        nas()
            .args(["spaces", "--space", "nb201", "--space-file"])
            .arg(common::root().join("examples/spaces/small-cnn.json")),
    );
    assert!(
        err.contains("--space-file") && err.contains("--space"),
        "{err}"
    );
}

/// `nas bench --seconds inf` never ended and `--seconds nan`, `-0.5` or `0` ran;
/// `nas bench-strategies --reach nan` (or 150, past 100%) headed a column "queries to
/// NaN".
#[test]
fn benchmark_times_and_targets_out_of_range_are_refused() {
    for v in ["inf", "nan", "-0.5", "0"] {
        let err = refused(nas().args([
            "bench",
            "--only",
            "gemm",
            "--no-torch",
            &format!("--seconds={v}"),
        ]));
        assert!(
            err.contains("--seconds") && err.contains("above 0"),
            "{v}: {err}"
        );
    }
    for v in ["nan", "150", "-1"] {
        let err = refused(nas().args(["bench-strategies", "--runs", "1", &format!("--reach={v}")]));
        assert!(
            err.contains("--reach") && err.contains("from 0 to 100"),
            "{v}: {err}"
        );
    }
}

/// A strategy state that does not load (hand-edited, or written by another strategy)
/// read "plugin `evolution` load: config field `rng`: ..." (as if the config were
/// wrong), and a truncated one named the file only; both now name the state file and
/// say how to resume without it, which works.
#[test]
fn a_state_that_does_not_load_names_its_file_and_the_way_on() {
    let d = common::temp_path("input", "state");
    let (ok, out, err) = table_search(&d, &["--strategy", "evolution", "--budget", "4"]);
    assert!(ok, "{out}\n{err}");
    edit_config(&d, &[(r#""budget": 4"#, r#""budget": 6"#)]);
    let state = d.join("strategy_state.json");
    let shown = state.display().to_string();
    for bad in [
        r#"{"told": 4, "strategy": {"rng": "zz"}}"#,
        r#"{"told": 4, "strat"#,
    ] {
        std::fs::write(&state, bad).unwrap();
        let err = resume_refused(&d);
        assert!(
            err.contains(&shown) && err.contains(&format!("remove {shown} to resume")),
            "{bad}: {err}"
        );
    }
    std::fs::remove_file(&state).unwrap();
    let (ok, out, err) = run(nas().arg("resume").arg(&d));
    assert!(ok, "{out}\n{err}");
    assert_eq!(journaled(&d), 6);
    std::fs::remove_dir_all(&d).ok();
}

/// A run's `config.json` edited to another strategy resumed with it, the new strategy
/// fed the old one's trials, without a word; the state now says which strategy saved
/// it, and a resume under another name is refused.
#[test]
fn a_run_resumes_only_with_the_strategy_that_saved_it() {
    let d = common::temp_path("input", "strategy");
    let (ok, out, err) = table_search(&d, &["--strategy", "random", "--budget", "3"]);
    assert!(ok, "{out}\n{err}");
    edit_config(
        &d,
        &[
            (r#""strategy": "random""#, r#""strategy": "evolution""#),
            (r#""budget": 3"#, r#""budget": 5"#),
        ],
    );
    let err = resume_refused(&d);
    assert!(
        err.contains("saved by strategy `random`") && err.contains("names `evolution`"),
        "{err}"
    );
    assert_eq!(journaled(&d), 3);
    std::fs::remove_dir_all(&d).ok();
}

/// A table search given training options ran without a word and recorded them; it now
/// says that it trains nothing, which options it does not use, and which only its
/// retraining reads.
#[test]
fn a_table_search_says_which_training_options_it_does_not_use() {
    let d = common::temp_path("input", "table-options");
    let quick = ["--strategy", "random", "--budget", "2"];
    let (ok, out, err) = table_search(
        &d,
        &[&quick[..], &["--limit", "300", "--classes", "0,1"]].concat(),
    );
    assert!(ok, "{out}\n{err}");
    assert!(
        err.contains("warning: the table evaluator looks accuracies up")
            && err.contains(
                "--limit 300 is not used; --classes only says what `nas retrain` trains on"
            ),
        "{err}"
    );
    std::fs::remove_dir_all(&d).ok();
    // The trial training's options: not used by the table, nor by `nas retrain` (which
    // has its own --epochs); before, nothing was said of them.
    let training = ["--epochs", "30", "--batch", "256", "--val", "5000"];
    let (ok, out, err) = table_search(&d, &[&quick[..], &training[..]].concat());
    assert!(ok, "{out}\n{err}");
    assert!(
        err.contains("--epochs 30, --batch 256 and --val 5000 are not used"),
        "{err}"
    );
    std::fs::remove_dir_all(&d).ok();
    // The network's size: the table's figures are of C 16, N 5 whatever it is (a
    // reduced network's search said nothing of it).
    let (ok, out, err) = table_search(
        &d,
        &[&quick[..], &["--channels", "8", "--cells", "1"]].concat(),
    );
    assert!(
        ok,
        "{out}
{err}"
    );
    assert!(
        err.contains("--channels 8 and --cells 1 only size what `nas retrain` builds"),
        "{err}"
    );
    std::fs::remove_dir_all(&d).ok();
    let (ok, out, err) = table_search(&d, &quick);
    assert!(ok && !err.contains("table evaluator"), "{out}\n{err}");
    std::fs::remove_dir_all(&d).ok();
}

/// `bench-strategies` printed its table's header before a strategy refused its config;
/// the refusal comes first now, naming the strategy and the field.
#[test]
fn a_benchmarked_strategys_bad_config_is_refused_before_the_table() {
    let o = nas()
        .args(["bench-strategies", "--runs", "1", "--budget", "5"])
        .args([
            "--strategies",
            "random,evolution",
            "--config",
            r#"{"population": 0}"#,
        ])
        .output()
        .unwrap();
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    assert!(
        !out.contains("strategy") && !out.contains("NAS-Bench-201 table"),
        "{out}"
    );
    assert!(
        err.contains("--strategies evolution") && err.contains("population"),
        "{err}"
    );
}

/// Outputs that named a run's own records or the command's inputs were written over, the
/// command exited 0 and the run (or the user's file) was lost; each is refused now,
/// naming the flag, and the file is as it was.
#[test]
fn an_output_over_a_runs_record_or_an_input_is_refused() {
    let d = common::temp_path("input", "outputs");
    let (ok, out, err) = table_search(&d, &["--strategy", "random", "--budget", "2"]);
    assert!(ok, "{out}\n{err}");
    let journal = std::fs::read(d.join("journal.jsonl")).unwrap();
    for file in ["journal.jsonl", "config.json", "space.json"] {
        let target = d.join(file);
        let before = std::fs::read(&target).unwrap();
        let err = refused(nas().arg("export").arg(&d).arg("--out").arg(&target));
        assert!(
            err.contains("--out") && err.contains(&format!("is the run's own {file}")),
            "{err}"
        );
        assert_eq!(std::fs::read(&target).unwrap(), before, "{file} changed");
    }
    let trace = d.join("journal.jsonl");
    let err = refused(
        nas()
            .args(["profile", "--steps", "1", "--batch", "2", "--size", "8"])
            .arg("--trace")
            .arg(&trace),
    );
    assert!(
        err.contains("--trace") && err.contains("run's own journal.jsonl"),
        "{err}"
    );
    assert_eq!(std::fs::read(d.join("journal.jsonl")).unwrap(), journal);
    // A link to a run's record, outside the run: it was written through, and the run
    // no longer read.
    let link = common::temp_path("input", "latest-journal");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(d.join("journal.jsonl"), &link).unwrap();
    let err = refused(nas().arg("export").arg(&d).arg("--out").arg(&link));
    assert!(
        err.contains("is the run's own journal.jsonl (where") && err.contains("latest-journal"),
        "{err}"
    );
    assert_eq!(std::fs::read(d.join("journal.jsonl")).unwrap(), journal);
    // A link to a record the run has not written (yet): refused as well.
    assert!(!d.join("held.jsonl").exists());
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink(d.join("held.jsonl"), &link).unwrap();
    let err = refused(nas().arg("export").arg(&d).arg("--out").arg(&link));
    assert!(err.contains("is the run's own held.jsonl (where"), "{err}");
    assert!(!d.join("held.jsonl").exists());
    // NAS_TRACE naming a run's record: warned of, and not written.
    let o = nas()
        .env("NAS_TRACE", d.join("journal.jsonl"))
        .arg("report")
        .arg(&d)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && err.contains("NAS_TRACE"), "{err}");
    assert_eq!(std::fs::read(d.join("journal.jsonl")).unwrap(), journal);
    std::fs::remove_file(&link).ok();
    // A space file named as where to save the weights.
    let space = common::temp_path("input", "space.json");
    std::fs::copy(
        common::root().join("examples/spaces/small-cnn.json"),
        &space,
    )
    .unwrap();
    let text = std::fs::read(&space).unwrap();
    let err = refused(
        nas()
            .args([
                "train", "--arch", "random", "--epochs", "1", "--limit", "64",
            ])
            .arg("--space-file")
            .arg(&space)
            .arg("--save")
            .arg(&space),
    );
    assert!(
        err.contains("--save") && err.contains("--space-file file this command reads"),
        "{err}"
    );
    assert_eq!(std::fs::read(&space).unwrap(), text);
    // Too many profiled steps: each is kept for the trace, so memory grew without bound.
    let err = refused(nas().args(["profile", "--steps", "1001"]));
    assert!(err.contains("--steps 1001: at most 1000"), "{err}");
    std::fs::remove_file(&space).ok();
    std::fs::remove_dir_all(&d).ok();
}

/// A directory that is not a run but holds files of a run's names (a user's best.json):
/// a search there replaced them. Now it is refused, naming them, and they stay.
#[test]
fn a_search_into_a_directory_of_the_users_files_is_refused() {
    let d = common::temp_path("input", "users-dir");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("best.json"), "mine").unwrap();
    std::fs::write(d.join("notes.txt"), "mine too").unwrap();
    let (ok, out, err) = table_search(&d, &["--strategy", "random", "--budget", "2"]);
    assert!(!ok, "{out}\n{err}");
    assert!(err.contains("is not a run but holds best.json"), "{err}");
    assert_eq!(
        std::fs::read_to_string(d.join("best.json")).unwrap(),
        "mine"
    );
    // A config.json and a space.json of the user's (no search's config: it names no
    // strategy) are not what a run left either.
    std::fs::write(d.join("config.json"), r#"{"lr": 0.1}"#).unwrap();
    std::fs::write(d.join("space.json"), "{}").unwrap();
    let (ok, out, err) = table_search(&d, &["--strategy", "random", "--budget", "2"]);
    assert!(!ok, "{out}\n{err}");
    assert!(
        err.contains("holds best.json, config.json, space.json"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(d.join("config.json")).unwrap(),
        r#"{"lr": 0.1}"#
    );
    std::fs::remove_file(d.join("config.json")).unwrap();
    std::fs::remove_file(d.join("space.json")).unwrap();
    // A directory of other files only is fine (the run's files go beside them).
    std::fs::remove_file(d.join("best.json")).unwrap();
    let (ok, out, err) = table_search(&d, &["--strategy", "random", "--budget", "2"]);
    assert!(ok, "{out}\n{err}");
    assert_eq!(
        std::fs::read_to_string(d.join("notes.txt")).unwrap(),
        "mine too"
    );
    std::fs::remove_dir_all(&d).ok();
}

/// `--channels`/`--cells` with a space file were taken without a word (and a search
/// recorded them), though a file's layers give their own widths; now they are refused.
#[test]
fn channels_or_cells_with_a_space_file_are_refused() {
    let space = common::root().join("examples/spaces/small-cnn.json");
    for flags in [["--channels", "4"], ["--cells", "2"]] {
        let err = refused(
            nas()
                .args(["spaces", "--space-file"])
                .arg(&space)
                .args(flags),
        );
        assert!(
            err.contains(
                "--channels/--cells apply to the nb201 and darts spaces, not a space file"
            ),
            "{err}"
        );
    }
}

/// A run's `config.json` edited in what scores its trials (`limit`, `epochs`, `val`, the
/// evaluator, the seed...) resumed on the edit and ranked trials scored both ways as
/// one (a trial trained on 1,024 images at 66% led trials trained on 200 at 20%); and
/// a space file edited after the search made `nas retrain` train another network than
/// the journal's. Both are refused now, naming what changed; set back, the run resumes.
#[test]
fn a_run_resumes_and_retrains_only_as_it_scored_its_trials() {
    let d = common::temp_path("input", "setup");
    let space = common::temp_path("input", "setup-space.json");
    std::fs::copy(
        common::root().join("examples/spaces/small-cnn.json"),
        &space,
    )
    .unwrap();
    let (ok, out, err) = run(nas()
        .args(["search", "--strategy", "random", "--space-file"])
        .arg(&space)
        .args(["--evaluator", "train", "--budget", "1", "--epochs", "1"])
        .args(["--limit", "200", "--val", "100", "--out"])
        .arg(&d));
    assert!(ok, "{out}\n{err}");
    edit_config(
        &d,
        &[
            (r#""limit": 200"#, r#""limit": 1024"#),
            (r#""epochs": 1"#, r#""epochs": 2"#),
            (r#""budget": 1"#, r#""budget": 2"#),
        ],
    );
    let err = resume_refused(&d);
    assert!(
        err.contains("`limit` 200 then, 1024 now") && err.contains("`epochs` 1 then, 2 now"),
        "{err}"
    );
    assert_eq!(journaled(&d), 1);
    edit_config(
        &d,
        &[
            (r#""limit": 1024"#, r#""limit": 200"#),
            (r#""epochs": 2"#, r#""epochs": 1"#),
        ],
    );
    // The space file edited: a retrain would build another network.
    let text = std::fs::read_to_string(&space).unwrap();
    std::fs::write(&space, text.replacen(r#""out": 16"#, r#""out": 24"#, 1)).unwrap();
    let retrain = || {
        refused(
            nas()
                .arg("retrain")
                .arg(&d)
                .args(["--epochs", "1", "--limit", "64"]),
        )
    };
    let err = retrain();
    assert!(
        err.contains("is not what it was (its text differs)"),
        "{err}"
    );
    // The space file gone: the refusal names the run's setting, not a flag never given.
    std::fs::remove_file(&space).unwrap();
    let err = retrain();
    assert!(
        err.contains("config.json: `space_file`") && err.contains("is not there"),
        "{err}"
    );
    std::fs::write(&space, text).unwrap();
    // A run made before space files refused --channels may have recorded it: it never
    // applied, and the run still resumes.
    edit_config(&d, &[(r#""channels": null"#, r#""channels": 8"#)]);
    let (ok, out, err) = run(nas().arg("resume").arg(&d));
    assert!(ok, "{out}\n{err}");
    assert_eq!(journaled(&d), 2);
    std::fs::remove_dir_all(&d).ok();
    std::fs::remove_file(&space).ok();
}

/// A missing `--arch` or `--space-file` file was reported by its path alone ("my_arch.json:
/// No such file or directory"), unlike the data options; the flag is named now.
#[test]
fn a_missing_input_file_is_named_by_its_flag() {
    let err = refused(
        nas()
            .args(["train", "--space-file", "no-such-space.json"])
            .args(["--arch", "no-such-arch.json"]),
    );
    assert!(
        err.contains("--space-file no-such-space.json: no such file"),
        "{err}"
    );
    let err = refused(
        nas()
            .args(["train", "--space-file"])
            .arg(common::root().join("examples/spaces/small-cnn.json"))
            .args(["--arch", "no-such-arch.json"]),
    );
    assert!(err.contains("--arch no-such-arch.json: "), "{err}");
}

/// Searches started at once in one directory without `--out` each get a run of their
/// own (`runs/X`, `runs/X-2`, ...), as a second search started later does. Before, both
/// chose `runs/X` and the one that lost the race to its lock failed.
#[test]
fn searches_started_at_once_without_out_get_runs_of_their_own() {
    let d = common::temp_path("input", "same-time");
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    let children: Vec<_> = (0..3)
        .map(|_| {
            nas()
                .current_dir(&d)
                .args(["--threads", "1", "search", "--space", "nb201"])
                .args(["--strategy", "random", "--budget", "30"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{err}");
    }
    let mut runs: Vec<String> = std::fs::read_dir(d.join("runs"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    runs.sort();
    assert_eq!(
        runs,
        ["nb201-random-0", "nb201-random-0-2", "nb201-random-0-3"]
    );
    std::fs::remove_dir_all(&d).ok();
}
