//! The rough edges of issue 19: a table search's memory, progress output without a
//! terminal, `--help`, `nas spaces --space X`, the example architecture file.

use crate::common;

use common::{nas, root};

use std::path::PathBuf;
use std::process::{Command, Stdio};

fn out_dir(name: &str) -> PathBuf {
    common::temp_path("rough", name)
}

fn run(cmd: &mut Command) -> (String, String) {
    let o = cmd.output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{cmd:?} failed:\n{out}\n{err}");
    (out, err)
}

/// A table search's peak resident memory does not grow with its trials. It used to grow
/// by about 2 MB a trial (0.7 GB at 150 trials, 3.2 GB at 1,500): every network built to
/// count an architecture's multiply-adds left its parameters in the tensor buffer pool,
/// and every eval-mode batch norm its per-channel scales. Now 150 trials peak at about
/// 22 MB and 1,500 at about 29 MB; the bound leaves room for other allocators.
#[cfg(target_os = "linux")]
#[test]
fn a_table_search_of_1500_trials_stays_small() {
    let dir = out_dir("memory");
    let mut child = nas()
        .args(["search", "--space", "nb201", "--strategy", "evolution"])
        .args(["--budget", "1500", "--out"])
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The child's peak RSS (VmHWM), read while it runs: after it exits /proc forgets it.
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kb = 0u64;
    let status = loop {
        if let Ok(s) = std::fs::read_to_string(&status_file) {
            if let Some(kb) = s
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            {
                peak_kb = peak_kb.max(kb);
            }
        }
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(status.success(), "the search failed");
    let journal = std::fs::read_to_string(dir.join("journal.jsonl")).unwrap();
    assert_eq!(journal.lines().count(), 1500);
    assert!(peak_kb > 0, "no VmHWM read from {status_file}");
    assert!(
        peak_kb < 100 * 1024,
        "a 1,500-trial table search peaked at {} MB",
        peak_kb / 1024
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The `Arguments:`/`Options:` lines of a `--help` output that say nothing of their
/// argument (nothing but clap's `[default: ...]` after the name).
fn undescribed(help: &str) -> Vec<String> {
    let mut bad = vec![];
    let mut in_args = false;
    let lines: Vec<&str> = help.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        if l.starts_with("Arguments:") || l.starts_with("Options:") {
            in_args = true;
            continue;
        }
        if !l.starts_with(' ') && !l.is_empty() {
            in_args = false;
        }
        let t = l.trim_start();
        if !in_args || !(t.starts_with('-') || t.starts_with('<')) {
            continue;
        }
        // The name ends at the first run of two spaces; the description follows, or
        // (clap's next-line layout) comes on the next, more indented line.
        let mut desc = t.split_once("  ").map_or("", |(_, d)| d).trim().to_string();
        if desc.is_empty() {
            if let Some(n) = lines.get(i + 1) {
                let nt = n.trim_start();
                if n.len() - nt.len() > l.len() - t.len() && !nt.starts_with('-') {
                    desc = nt.to_string();
                }
            }
        }
        while let Some(s) = desc.find("[default: ") {
            let e = desc[s..].find(']').map_or(desc.len(), |e| s + e + 1);
            desc.replace_range(s..e, "");
        }
        if desc.trim().is_empty() {
            bad.push(l.trim().to_string());
        }
    }
    bad
}

#[test]
fn the_help_of_every_command_describes_every_argument() {
    let (top, _) = run(nas().arg("--help"));
    let cmds: Vec<String> = top
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .filter(|c| c != "help")
        .collect();
    assert!(
        cmds.len() >= 10,
        "commands read from `nas --help`: {cmds:?}\n{top}"
    );
    assert!(undescribed(&top).is_empty(), "{top}");
    let mut bad = vec![];
    for c in &cmds {
        let (help, _) = run(nas().args([c, "--help"]));
        assert!(help.contains("Options:"), "nas {c} --help:\n{help}");
        bad.extend(
            undescribed(&help)
                .into_iter()
                .map(|l| format!("nas {c}: {l}")),
        );
    }
    assert!(
        bad.is_empty(),
        "arguments without a description:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_help_parser_finds_an_undescribed_argument() {
    let help = "Usage: x\n\nArguments:\n  <DIR>  \n\nOptions:\n      --seed <SEED>  [default: 0]\n      --out <OUT>  Where\n  -h, --help  Print help\n";
    assert_eq!(undescribed(help), ["<DIR>", "--seed <SEED>  [default: 0]"]);
}

fn no_control_codes(what: &str, s: &str) {
    assert!(
        !s.contains('\r') && !s.contains('\x1b'),
        "{what} has terminal control codes: {s:?}"
    );
}

/// Without a terminal, progress comes as plain lines: no bar redrawn with `\r` or ANSI
/// escapes, and a multi-trial search says how far it is every tenth of its budget.
#[test]
fn progress_without_a_terminal_is_plain_lines() {
    let dir = out_dir("plain-oneshot");
    let (out, err) = run(nas()
        .args(["search", "--space", "seed-net", "--strategy", "darts"])
        .args(["--epochs", "1", "--limit", "640", "--val", "640", "--out"])
        .arg(&dir));
    no_control_codes("one-shot stdout", &out);
    no_control_codes("one-shot stderr", &err);
    assert!(out.contains("epoch 1: "), "{out}");
    let _ = std::fs::remove_dir_all(&dir);

    let dir = out_dir("plain-table");
    let (out, err) = run(nas()
        .args(["search", "--space", "nb201", "--strategy", "random"])
        .args(["--budget", "20", "--out"])
        .arg(&dir));
    no_control_codes("search stdout", &out);
    no_control_codes("search stderr", &err);
    for n in [2, 10, 18] {
        assert!(out.contains(&format!("\n{n}/20 trials, best ")), "{out}");
    }
    assert!(!out.contains("20/20 trials"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);

    // A strategy that runs out before the budget says so (it used to go to the hidden
    // bar and be lost): grid over a space of 9 architectures, asked for 12.
    let dir = out_dir("plain-exhausted");
    let (out, _) = run(nas()
        .args(["search", "--space-file", "tests/spaces/harmful.json"])
        .args(["--strategy", "grid", "--budget", "12", "--epochs", "1"])
        .args(["--limit", "64", "--val", "64", "--out"])
        .arg(&dir));
    assert!(
        out.contains("the strategy has nothing more to propose") && out.contains("\n9 trials;"),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Counts of one are singular, and the trial numbers printed are the journal's (from 0).
#[test]
fn messages_count_one_trial_in_the_singular() {
    let dir = out_dir("one-trial");
    let (out, _) = run(nas()
        .args(["search", "--space", "nb201", "--strategy", "random"])
        .args(["--budget", "1", "--out"])
        .arg(&dir));
    assert!(
        out.contains("1 trial; best is trial 0 (1 trial of it)"),
        "{out}"
    );
    let journal = std::fs::read_to_string(dir.join("journal.jsonl")).unwrap();
    assert!(journal.contains("\"trial\":0"), "{journal}");
    let (out, _) = run(nas().arg("export").arg(&dir));
    assert!(out.contains("best of 1 trial: trial 0 ("), "{out}");
    let (out, _) = run(nas().arg("report").arg(&dir));
    assert!(out.contains(", 1 of 1 trial\n"), "{out}");
    assert!(!out.contains(" 1 trials"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `nas spaces --space X` shows X's choices without `--show`.
#[test]
fn naming_a_space_shows_it() {
    let (shown, _) = run(nas().args(["spaces", "--show", "--space", "nb201"]));
    let (named, _) = run(nas().args(["spaces", "--space", "nb201"]));
    assert_eq!(named, shown);
    assert!(
        named.starts_with("nb201: ") && named.contains("LayerChoice"),
        "{named}"
    );
    let (all, _) = run(nas().arg("spaces"));
    assert!(
        all.contains("seed-net: ") && all.contains("darts: "),
        "{all}"
    );
    assert!(!all.contains("LayerChoice"), "{all}");
}

/// The example architecture file beside the example space file trains.
#[test]
fn the_example_architecture_trains() {
    let arch = "examples/spaces/small-cnn-arch.json";
    let (out, _) = run(nas()
        .args(["train", "--space-file", "examples/spaces/small-cnn.json"])
        .args(["--arch", arch, "--epochs", "1", "--limit", "256"]));
    let want: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root().join(arch)).unwrap()).unwrap();
    assert!(out.contains(&want.to_string()), "{out}");
    assert!(
        out.contains("epoch 1/1") && out.contains("test accuracy"),
        "{out}"
    );
}

/// A data set that would not fit in the memory available is refused before it is read,
/// naming the file and the sizes. `NAS_MAX_MEMORY` stands in for a small machine; before,
/// the loader accepted any file up to 1 GiB of bytes (4 GiB as floats), a gzip bomb of a
/// few megabytes included.
#[test]
fn data_larger_than_the_memory_available_is_refused() {
    let dir = out_dir("big-data");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let idx = |name: &str, magic: u32, dims: &[u32], body: u64| {
        let mut head = magic.to_be_bytes().to_vec();
        dims.iter().for_each(|d| head.extend(d.to_be_bytes()));
        let f = std::fs::File::create(dir.join(name)).unwrap();
        use std::io::Write;
        (&f).write_all(&head).unwrap();
        f.set_len(head.len() as u64 + body).unwrap();
    };
    let n = 20_000u32;
    idx(
        "train-images-idx3-ubyte",
        0x803,
        &[n, 28, 28],
        n as u64 * 784,
    );
    idx("train-labels-idx1-ubyte", 0x801, &[n], n as u64);
    idx("t10k-images-idx3-ubyte", 0x803, &[10, 28, 28], 7840);
    idx("t10k-labels-idx1-ubyte", 0x801, &[10], 10);
    let o = nas()
        .args(["train", "--epochs", "1", "--data"])
        .arg(&dir)
        .env("NAS_MAX_MEMORY", "50000000")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success(),
        "a data set over the memory limit was loaded"
    );
    assert!(
        err.contains("train-images-idx3-ubyte")
            && err.contains("20000 images of 28x28")
            && err.contains("0.07 GiB in memory")
            && err.contains("0.05 GiB available (NAS_MAX_MEMORY included)"),
        "{err}"
    );
    // Within the limit the same files load (and train).
    let o = nas()
        .args(["train", "--epochs", "1", "--limit", "64", "--data"])
        .arg(&dir)
        .env("NAS_MAX_MEMORY", "500000000")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("available"), "{err}");
}

/// A search killed with SIGKILL cannot write its page as stopped: it stays the live page,
/// saying "running" and reloading. `nas report` asks the run's lock instead: while the
/// search runs it names the process; once the process is gone it says the run stopped
/// and how to continue it, and `--html` rewrites the page as stopped. (Before, the
/// report only said "stopped, or still running elsewhere", and the page kept
/// reloading.)
#[test]
fn a_killed_search_is_reported_stopped_and_a_live_one_running() {
    let dir = out_dir("killed-report");
    let _ = std::fs::remove_dir_all(&dir);
    let mut child = nas()
        .args(["search", "--space", "nb201", "--strategy", "random"])
        .args(["--budget", "15625", "--out"])
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let journal = dir.join("journal.jsonl");
    let start = std::time::Instant::now();
    while std::fs::read_to_string(&journal)
        .map(|j| j.lines().count() < 3)
        .unwrap_or(true)
    {
        assert!(child.try_wait().unwrap().is_none(), "the search ended");
        assert!(start.elapsed().as_secs() < 60, "no trial journaled");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let (live, _) = run(nas().arg("report").arg(&dir));
    assert!(
        live.contains(&format!("still running (pid {})", child.id())),
        "{live}"
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let page = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(
        page.contains("<body data-state=\"running\""),
        "the live page"
    );
    let (out, _) = run(nas().arg("report").arg(&dir).arg("--html"));
    assert!(out.contains("stopped before its end"), "{out}");
    assert!(out.contains("nas resume"), "{out}");
    let page = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(
        page.contains("<body data-state=\"stopped\""),
        "the page after `nas report --html`"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
