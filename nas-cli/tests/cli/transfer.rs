//! `--init-from`: a one-shot search starts its supernet from another run's weights, and
//! the transfer is real: a supernet trained on Fashion-MNIST classes 0-4 and carried over
//! to classes 5-9 learns them faster than one trained from scratch.

use crate::common;

use common::{nas, run};

use std::path::Path;

/// `nas --threads 2 search ARGS --out OUT [--init-from FROM]`: whether it succeeded,
/// its stdout and stderr.
fn search(args: &str, out: &Path, init: Option<&Path>) -> (bool, String, String) {
    let mut c = nas();
    c.args(["--threads", "2", "search"])
        .args(args.split_whitespace())
        .arg("--out")
        .arg(out);
    if let Some(from) = init {
        c.arg("--init-from").arg(from);
    }
    run(&mut c)
}

/// A search on seed-net with SPOS that must succeed; its stdout.
fn spos(args: &str, out: &Path, init: Option<&Path>) -> String {
    // The loss of the supernet's training is what counts; SPOS's search after it is
    // kept small (it scores 2 paths on one batch). Paths are uniform (`macs_bins` 0),
    // so what the losses compare is the weights, not how often each path trains.
    let args = format!(
        "--space seed-net --strategy spos --val 1000 --config \
         {{\"population\":2,\"generations\":1,\"eval_batches\":1,\"recalibrate\":0,\
         \"macs_bins\":0}} {args}"
    );
    let (ok, stdout, stderr) = search(&args, out, init);
    assert!(ok, "{args} failed:\n{stdout}\n{stderr}");
    stdout
}

/// The mean training loss of a one-shot run's first epoch, from its progress record.
fn first_epoch_loss(dir: &Path) -> f64 {
    let text = std::fs::read_to_string(dir.join("progress.jsonl")).unwrap();
    text.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["epoch"] == 0 && v["values"]["train_loss"].is_number())
        .unwrap_or_else(|| panic!("no loss in {}:\n{text}", dir.display()))["values"]["train_loss"]
        .as_f64()
        .unwrap()
}

#[test]
fn a_supernet_carried_over_to_other_classes_learns_them_faster_than_a_fresh_one() {
    let base = common::temp_path("transfer", "faster");
    // Pretraining: classes 0-4 (tops, trousers, pullovers, dresses, coats), 3 epochs of
    // 94 steps.
    let pre = base.join("pre");
    let out = spos("--classes 0,1,2,3,4 --epochs 3 --limit 6000", &pre, None);
    assert!(pre.join("supernet.safetensors").exists(), "{out}");
    // Classes 5-9 (sandals, shirts, sneakers, bags, ankle boots): 46 steps, from the
    // pretrained weights and from fresh ones, with two seeds. From scratch the first
    // epoch's mean loss was 0.94-1.02 over three seeds, carried over 0.68-0.72.
    for seed in ["0", "1"] {
        let t = base.join(format!("transfer-{seed}"));
        let on =
            |limit: &str| format!("--classes 5,6,7,8,9 --epochs 1 --limit {limit} --seed {seed}");
        let out = spos(&on("3000"), &t, Some(&pre));
        assert!(out.contains("supernet weights from"), "{out}");
        let s = base.join(format!("scratch-{seed}"));
        spos(&on("3000"), &s, None);
        let (lt, ls) = (first_epoch_loss(&t), first_epoch_loss(&s));
        eprintln!("seed {seed}: mean loss of 46 steps {lt:.3} carried over, {ls:.3} fresh");
        assert!(
            lt < ls - 0.15,
            "seed {seed}: carried over {lt:.3}, from scratch {ls:.3}"
        );
        // The transferred supernet after half the steps is at least where the fresh one
        // is after all of them.
        let h = base.join(format!("half-{seed}"));
        spos(&on("1500"), &h, Some(&pre));
        let lh = first_epoch_loss(&h);
        eprintln!("seed {seed}: 23 steps carried over {lh:.3}");
        assert!(
            lh < ls + 0.1,
            "seed {seed}: 23 steps carried over {lh:.3}, 46 fresh {ls:.3}"
        );
    }
    let _ = std::fs::remove_dir_all(&base);
}

/// The weight learning rates a one-shot run's progress records hold, in order.
fn learning_rates(dir: &Path) -> Vec<f64> {
    let text = std::fs::read_to_string(dir.join("progress.jsonl")).unwrap();
    text.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["lr"].as_f64())
        .collect::<Option<Vec<f64>>>()
        .unwrap_or_else(|| panic!("a record without `lr` in {}:\n{text}", dir.display()))
}

#[test]
fn nat_fine_tunes_a_pretrained_supernet_at_the_rate_it_asks_for() {
    let base = common::temp_path("transfer", "nat");
    let pre = base.join("pre");
    spos("--epochs 1 --limit 2000", &pre, None);
    // NAT, kept small: 2 epochs of 62 steps of seed-net (a record at step 50 of each),
    // an archive of 4.
    let nat = |out: &Path, lr: f64| {
        let args = format!(
            "--space seed-net --strategy nat --epochs 2 --limit 5000 --val 1000 --config \
             {{\"initial\":4,\"candidates\":2,\"population\":4,\"generations\":2,\
             \"eval_batches\":1,\"recalibrate\":0,\"finetune_lr\":{lr}}}"
        );
        let (ok, stdout, stderr) = search(&args, out, Some(&pre));
        assert!(ok, "{args} failed:\n{stdout}\n{stderr}");
        learning_rates(out)
    };
    // The reference's fine-tuning, at most 2.5e-3 (a warm-up from 1e-4 over 4 steps,
    // then a cosine: 1.6e-3 at step 50), through the plugin boundary; with
    // `finetune_lr` 0 the host's 0.05 cosine (0.032 at step 50).
    let tuned = nat(&base.join("tuned"), 2.5e-3);
    assert!(!tuned.is_empty());
    assert!(tuned.iter().all(|&lr| lr <= 2.5e-3 + 1e-9), "{tuned:?}");
    assert!(tuned[0] > 1e-3, "{tuned:?}");
    let host = nat(&base.join("host"), 0.0);
    assert!(host[0] > 0.02, "{host:?}");
    let _ = std::fs::remove_dir_all(&base);
}

#[test]
fn init_from_refuses_what_it_cannot_use() {
    let base = common::temp_path("transfer", "refuses");
    // A seed-net run's weights do not fit a nb201 supernet.
    let other = base.join("seed-net");
    spos("--epochs 1 --limit 256", &other, None);
    let target = base.join("t");
    let attempt = |from: &Path, strategy: &str| {
        let args = format!(
            "--space nb201 --channels 4 --cells 1 --strategy {strategy} --epochs 1 --limit 256 \
             --val 128 --budget 2"
        );
        let (ok, out, err) = search(&args, &target, Some(from));
        assert!(!ok, "{out}");
        let _ = std::fs::remove_dir_all(&target);
        err
    };
    let err = attempt(&other, "spos");
    assert!(
        err.contains("none of its") && err.contains("fits this supernet"),
        "{err}"
    );
    let err = attempt(&base.join("missing"), "spos");
    assert!(
        err.contains("--init-from") && err.contains("no such file"),
        "{err}"
    );
    let err = attempt(&base, "spos");
    assert!(err.contains("no supernet weights there"), "{err}");
    let err = attempt(&other, "random");
    assert!(err.contains("trains no supernet"), "{err}");
    let _ = std::fs::remove_dir_all(&base);
}
