//! `nas` run from directories that are not the checkout: the bundled data and table are
//! found beside the binary (or through NAS_DATA), a run records absolute paths so the
//! commands on it work from anywhere, `nas retrain` records its result in the run, and
//! a data path that is not there is an error naming the option that sets it.

use crate::common;

use common::run;

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

/// An empty directory of its own for each test.
fn fresh(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("nas-anywhere-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `nas` (the binary at `exe`) run in `cwd`, with the workspace's plugins and without
/// NAS_DATA.
fn nas_at(exe: &Path, cwd: &Path) -> Command {
    let mut c = Command::new(exe);
    c.current_dir(cwd)
        .env("NAS_PLUGIN_PATH", common::workspace_plugins())
        .env_remove("NAS_DATA");
    c
}

fn nas(cwd: &Path) -> Command {
    nas_at(Path::new(env!("CARGO_BIN_EXE_nas")), cwd)
}

fn json(p: &Path) -> serde_json::Value {
    let t = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&t).unwrap()
}

/// The binary, linked (or copied) to `<dir>/bin/nas`, away from the checkout's data.
fn binary_in(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let exe = bin.join("nas");
    if std::fs::hard_link(env!("CARGO_BIN_EXE_nas"), &exe).is_err() {
        std::fs::copy(env!("CARGO_BIN_EXE_nas"), &exe).unwrap();
    }
    exe
}

/// The done-when of "works from any directory": from an empty directory a table search
/// and a training run find the bundled table and data without a path; from another
/// directory the run retrains (recording `retrain.json`), reports and resumes.
#[test]
fn search_train_retrain_and_report_from_anywhere() {
    let base = fresh("run");
    let (work, elsewhere) = (base.join("work"), base.join("elsewhere"));
    std::fs::create_dir_all(&work).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();

    let (ok, out, err) = run(nas(&work).args([
        "search",
        "--space",
        "nb201",
        "--strategy",
        "evolution",
        "--budget",
        "20",
    ]));
    assert!(ok, "search from an empty directory:\n{out}\n{err}");
    let dir = work.join("runs/nb201-evolution-0");
    let config = json(&dir.join("config.json"));
    for key in ["table", "data", "out"] {
        let p = PathBuf::from(config[key].as_str().unwrap());
        assert!(p.is_absolute(), "config.json {key}: {p:?}");
    }
    let table = PathBuf::from(config["table"].as_str().unwrap());
    assert_eq!(
        table,
        root().join("data/nasbench201/nb201_cifar10.csv"),
        "the bundled table, found beside the binary"
    );

    let (ok, out, err) = run(nas(&work).args([
        "--threads",
        "2",
        "train",
        "--epochs",
        "1",
        "--limit",
        "2000",
    ]));
    assert!(ok, "train from an empty directory:\n{out}\n{err}");
    assert!(
        out.contains("on fashion-mnist") && out.contains("test accuracy"),
        "{out}"
    );

    // From another directory, the run named by a relative path.
    let rel = Path::new("../work/runs/nb201-evolution-0");
    let retrain = |extra: &[&str]| {
        run(nas(&elsewhere)
            .args(["--threads", "2", "retrain"])
            .arg(rel)
            .args(["--epochs", "1", "--limit", "500", "--channels", "8"])
            .args(["--cells", "1"])
            .args(extra))
    };
    let (ok, out, err) = retrain(&["--save", "w.safetensors"]);
    assert!(ok, "retrain from elsewhere:\n{out}\n{err}");
    assert!(
        out.contains("NAS-Bench-201 table, which is CIFAR-10") && out.contains("fashion-mnist"),
        "no word that the table is CIFAR-10 and the retrain is not:\n{out}"
    );
    assert!(out.contains("estimated time: about"), "{out}");
    let best = json(&dir.join("best.json"));
    let r = json(&dir.join("retrain.json"));
    assert_eq!(r["arch"], best["arch"], "{r}");
    assert_eq!(r["trial"], best["trial"], "{r}");
    assert_eq!(r["epochs"], 1, "{r}");
    assert_eq!(r["seed"], 0, "{r}");
    assert_eq!(
        Path::new(r["data"].as_str().unwrap()),
        root().join("data/fashion-mnist"),
        "{r}"
    );
    let acc = r["test_accuracy"].as_f64().unwrap();
    assert!(acc > 0.0 && acc <= 1.0, "{r}");
    assert!(
        out.contains(&format!("test accuracy {:.2}%", acc * 100.0)),
        "retrain.json's accuracy is not the one printed: {r}\n{out}"
    );
    assert!(r["seconds"].as_f64().unwrap() > 0.0, "{r}");
    assert!(r["scored_by"].as_str().unwrap().contains("CIFAR-10"), "{r}");
    let weights = elsewhere.join("w.safetensors");
    assert!(weights.exists(), "--save wrote no weights");
    assert_eq!(
        Path::new(r["weights"].as_str().unwrap()),
        weights.canonicalize().unwrap()
    );

    let (ok, out, err) = run(nas(&elsewhere).arg("report").arg(rel));
    assert!(ok, "report from elsewhere:\n{out}\n{err}");
    assert!(out.contains("evolution on nb201, 20 of 20 trials"), "{out}");
    assert!(
        out.contains("accuracy") && out.contains("architecture"),
        "{out}"
    );
    assert!(
        out.contains(&best["arch"].to_string()),
        "the best architecture is not in the table:\n{out}"
    );

    let (ok, out, err) = run(nas(&elsewhere).arg("resume").arg(rel));
    assert!(ok, "resume from elsewhere:\n{out}\n{err}");
    assert!(out.contains("20 trials; best"), "{out}");

    // A run that cannot take the result still retrains, and says the result is not kept.
    std::fs::remove_file(dir.join("retrain.json")).unwrap();
    std::fs::create_dir_all(dir.join("retrain.json/in-the-way")).unwrap();
    let (ok, out, err) = retrain(&[]);
    assert!(ok, "retrain into a run it cannot write:\n{out}\n{err}");
    assert!(out.contains("test accuracy"), "{out}");
    assert!(
        err.contains("warning: the result is not recorded in the run")
            && err.contains("retrain.json"),
        "{err}"
    );
    std::fs::remove_dir_all(&base).ok();
}

/// A data path that is not there is an error naming the option that sets it and the
/// value, or, for a default not found, NAS_DATA and every place looked in.
#[test]
fn a_missing_data_path_names_its_option() {
    let base = fresh("missing");
    let (ok, out, err) = run(nas(&base).args(["train", "--data", "no/such/dir"]));
    assert!(!ok, "{out}");
    assert!(
        err.contains("--data no/such/dir") && err.contains(&*base.to_string_lossy()),
        "{err}"
    );

    let out_dir = base.join("run");
    let (ok, out, err) = run(nas(&base)
        .args(["search", "--space", "nb201", "--strategy", "random"])
        .args(["--budget", "3", "--table", "no/such.csv", "--out"])
        .arg(&out_dir));
    assert!(!ok, "{out}");
    assert!(
        err.contains("--table") && err.contains("no/such.csv"),
        "{err}"
    );
    assert!(!out_dir.join("config.json").exists());

    // A binary away from any data, run in an empty directory without NAS_DATA.
    let exe = binary_in(&base.join("a/b"));
    let empty = base.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let (ok, out, err) = run(nas_at(&exe, &empty).args(["train", "--epochs", "1"]));
    assert!(!ok, "{out}");
    for want in [
        "--data".to_string(),
        "NAS_DATA".to_string(),
        empty.join("data/fashion-mnist").display().to_string(),
        base.join("a/b/bin/data/fashion-mnist")
            .display()
            .to_string(),
        base.join("a/b/share/nas/data/fashion-mnist")
            .display()
            .to_string(),
        base.join("a/data/fashion-mnist").display().to_string(),
    ] {
        assert!(err.contains(&want), "no `{want}` in:\n{err}");
    }
    let (ok, out, err) = run(nas_at(&exe, &empty).args([
        "search",
        "--space",
        "nb201",
        "--strategy",
        "random",
        "--budget",
        "3",
    ]));
    assert!(!ok, "{out}");
    assert!(
        err.contains("--table") && err.contains("nasbench201/nb201_cifar10.csv"),
        "{err}"
    );
    assert!(!empty.join("runs/nb201-random-0/config.json").exists());
    std::fs::remove_dir_all(&base).ok();
}

/// The bundled table is found through NAS_DATA, and in `<prefix>/share/nas/data` for a
/// binary installed in `<prefix>/bin`.
#[test]
fn bundled_data_is_found_through_nas_data_and_an_install_prefix() {
    let base = fresh("lookup");
    let search = |exe: &Path, data: Option<&Path>, out: &str| {
        let mut c = nas_at(exe, &base);
        if let Some(d) = data {
            c.env("NAS_DATA", d);
        }
        let (ok, o, err) = run(c.args([
            "search",
            "--space",
            "nb201",
            "--strategy",
            "random",
            "--budget",
            "3",
            "--out",
            out,
        ]));
        assert!(ok, "{out}:\n{o}\n{err}");
        PathBuf::from(
            json(&base.join(out).join("config.json"))["table"]
                .as_str()
                .unwrap(),
        )
    };
    let loose = binary_in(&base.join("loose"));
    let table = root().join("data/nasbench201/nb201_cifar10.csv");
    assert_eq!(search(&loose, Some(&root().join("data")), "env"), table);

    let prefix = base.join("prefix");
    let exe = binary_in(&prefix);
    std::fs::create_dir_all(prefix.join("share/nas")).unwrap();
    std::os::unix::fs::symlink(root().join("data"), prefix.join("share/nas/data")).unwrap();
    assert_eq!(search(&exe, None, "installed"), table);
    std::fs::remove_dir_all(&base).ok();
}
