//! The dataset options of `nas train`, `nas search` and `nas retrain` (issue 19, item 6,
//! "any dataset a user has"): `--classes`, an IDX pair with any file names
//! (`--train-images`/`--train-labels`), `--test-split`, and their errors.

use crate::common;

use common::{fails, nas, root, run, temp_path};

use std::path::{Path, PathBuf};

fn json(p: &Path) -> serde_json::Value {
    let t = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&t).unwrap()
}

/// The bundled Fashion-MNIST file `name`.
fn fashion(name: &str) -> PathBuf {
    root().join("data/fashion-mnist").join(name)
}

#[test]
fn train_keeps_only_the_listed_classes() {
    let (ok, out, err) = run(nas().args([
        "--threads",
        "2",
        "train",
        "--epochs",
        "1",
        "--limit",
        "2000",
        "--classes",
        "3,7",
    ]));
    assert!(ok, "{out}\n{err}");
    // Two outputs; the test set holds only the 1000 test images of each kept class.
    assert!(
        out.contains("on fashion-mnist classes 3,7 (2000 train, 2000 test, 1x28x28, 2 classes)"),
        "{out}"
    );
    assert!(out.contains("test accuracy"), "{out}");
}

#[test]
fn train_on_idx_files_with_any_names_and_a_held_out_test_set() {
    let d = temp_path("data-options", "files");
    std::fs::create_dir_all(&d).unwrap();
    let (images, labels) = (d.join("my pictures.bin"), d.join("tags"));
    std::fs::copy(fashion("train-images-idx3-ubyte.gz"), &images).unwrap();
    std::fs::copy(fashion("train-labels-idx1-ubyte.gz"), &labels).unwrap();
    let (ok, out, err) = run(nas()
        .args(["--threads", "2", "train", "--train-images"])
        .arg(&images)
        .arg("--train-labels")
        .arg(&labels)
        .args(["--test-split", "0.2", "--epochs", "1", "--limit", "2000"]));
    assert!(ok, "{out}\n{err}");
    // A fifth of the 60000 training images is the test set; --limit caps the rest.
    assert!(
        out.contains("on my pictures.bin (2000 train, 12000 test, 1x28x28, 10 classes)"),
        "{out}"
    );
    assert!(out.contains("test accuracy"), "{out}");

    // Without test files the hold-out is needed, and it names the flags.
    let (ok, out, err) = run(nas()
        .args(["train", "--train-images"])
        .arg(&images)
        .arg("--train-labels")
        .arg(&labels));
    assert!(!ok, "{out}");
    assert!(
        err.contains("--test-images/--test-labels need --test-split FRACTION"),
        "{err}"
    );
    std::fs::remove_dir_all(&d).ok();
}

/// A table-free search with `--classes` records them in config.json, and `nas retrain`
/// of the run trains and tests on the same two classes (and records them); a config.json
/// from before the options were recorded still reads.
#[test]
fn a_search_and_its_retraining_keep_the_classes() {
    let d = temp_path("data-options", "search");
    let (ok, out, err) = run(nas()
        .args(["--threads", "2", "search", "--space", "seed-net"])
        .args(["--strategy", "random", "--evaluator", "train"])
        .args(["--budget", "2"])
        .args(["--epochs", "1", "--limit", "500", "--val", "500"])
        .args(["--classes", "3,7", "--out"])
        .arg(&d));
    assert!(ok, "search:\n{out}\n{err}");
    let config = json(&d.join("config.json"));
    assert_eq!(config["classes"], serde_json::json!([3, 7]), "{config}");
    assert!(
        Path::new(config["data"].as_str().unwrap()).is_absolute(),
        "{config}"
    );

    let (ok, out, err) = run(nas()
        .args(["--threads", "2", "retrain"])
        .arg(&d)
        .args(["--epochs", "1", "--limit", "1000"]));
    assert!(ok, "retrain:\n{out}\n{err}");
    assert!(
        out.contains("on fashion-mnist classes 3,7 (1000 train, 2000 test, 1x28x28, 2 classes)"),
        "{out}"
    );
    let r = json(&d.join("retrain.json"));
    assert_eq!(r["classes"], serde_json::json!([3, 7]), "{r}");

    // An older run's config.json, without the new options: the run still reports and
    // retrains (on every class).
    let mut old = config.clone();
    for k in [
        "classes",
        "train_images",
        "train_labels",
        "test_images",
        "test_labels",
        "test_split",
        "split_seed",
    ] {
        old.as_object_mut().unwrap().remove(k);
    }
    std::fs::write(d.join("config.json"), old.to_string()).unwrap();
    // (An older run kept no setup record either.)
    std::fs::remove_file(d.join("setup.json")).unwrap();
    let (ok, out, err) = run(nas().arg("report").arg(&d));
    assert!(ok, "report of an older run:\n{out}\n{err}");
    let (ok, out, err) = run(nas()
        .args(["--threads", "2", "retrain"])
        .arg(&d)
        .args(["--epochs", "1", "--limit", "200"]));
    assert!(ok, "retrain of an older run:\n{out}\n{err}");
    assert!(out.contains("10 classes"), "{out}");
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn data_option_errors_name_the_flag_and_the_value() {
    // A class outside the data's labels (found once the data is read).
    let (ok, out, err) = run(nas().args(["train", "--epochs", "1", "--classes", "3,12"]));
    assert!(!ok, "{out}");
    assert!(
        err.contains("--classes 3,12") && err.contains("class 12") && err.contains("0..9"),
        "{err}"
    );
    // A value that is not a list of numbers, and a duplicate.
    let err = fails(nas().args(["train", "--classes", "3,x"]));
    assert!(err.contains("'3,x'") && err.contains("--classes"), "{err}");
    let err = fails(nas().args(["train", "--classes", "4,4"]));
    assert!(
        err.contains("--classes") && err.contains("class 4 is listed twice"),
        "{err}"
    );
    // One class trained a one-output network that scored 100% on anything.
    let err = fails(nas().args(["train", "--classes", "3"]));
    assert!(
        err.contains("--classes") && err.contains("one class (3): a classifier needs at least two"),
        "{err}"
    );
    // Half of a pair, and files mixed with --data.
    let images = fashion("train-images-idx3-ubyte.gz");
    let (ok, out, err) = run(nas().args(["train", "--train-images"]).arg(&images));
    assert!(!ok, "{out}");
    assert!(err.contains("is given without --train-labels"), "{err}");
    let (ok, out, err) = run(nas()
        .args(["search", "--space", "seed-net", "--strategy", "random"])
        .args(["--evaluator", "train", "--data", "data/fashion-mnist"])
        .arg("--train-images")
        .arg(&images)
        .arg("--train-labels")
        .arg(fashion("train-labels-idx1-ubyte.gz"))
        .arg("--out")
        .arg(temp_path("data-options", "mixed")));
    assert!(!ok, "{out}");
    assert!(
        err.contains("--data data/fashion-mnist and --train-images"),
        "{err}"
    );
    // A hold-out from a directory that has its own test split.
    let (ok, out, err) = run(nas().args([
        "train",
        "--data",
        "data/fashion-mnist",
        "--test-split",
        "0.2",
    ]));
    assert!(!ok, "{out}");
    assert!(
        err.contains("--test-split 0.2: --data data/fashion-mnist has its own test split"),
        "{err}"
    );
    // A fraction out of range.
    let err = fails(nas().args(["train", "--test-split", "1.5"]));
    assert!(
        err.contains("'1.5'") && err.contains("--test-split"),
        "{err}"
    );
}
