//! The unit tests of `nas_cli::search_args` (`nas-cli/src/search_args.rs`).

use nas_cli::data_args::DataArgs;
use nas_cli::search_args::*;

/// A config.json written before runs recorded the data options (classes, IDX files,
/// test split) reads, with none of them set; one with them reads them back.
#[test]
fn configs_with_and_without_the_data_options_read() {
    let old = serde_json::json!({
        "space": "seed-net", "strategy": "random", "budget": 3, "seed": 0,
        "out": "/runs/x", "evaluator": "train", "data": "/data/fashion-mnist",
        "epochs": 1, "val": 100, "limit": null, "parallel": 1, "config": null,
    });
    let a: SearchArgs = serde_json::from_value(old).unwrap();
    assert_eq!(
        a.dataset,
        DataArgs {
            data: Some("/data/fashion-mnist".into()),
            ..DataArgs::default()
        }
    );
    let mut b = a.clone();
    b.dataset = DataArgs {
        data: None,
        train_images: Some("/d/a".into()),
        train_labels: Some("/d/b".into()),
        test_split: Some(0.2),
        split_seed: Some(7),
        classes: Some("3,7".parse().unwrap()),
        ..DataArgs::default()
    };
    let v = serde_json::to_value(&b).unwrap();
    assert_eq!(v["classes"], serde_json::json!([3, 7]));
    assert_eq!(v["test_split"], serde_json::json!(0.2));
    let back: SearchArgs = serde_json::from_value(v).unwrap();
    assert_eq!(back.dataset, b.dataset);
}

/// A journal written before 2026-12 names the op of every edge of a node, built or not.
/// Two trials of one network that differ only in an unbuilt edge's op were two
/// candidates, each ranked on its own; the journal is now read as the networks its
/// trials built, so they are one candidate of two trials.
#[test]
fn journaled_unbuilt_edge_ops_are_read_as_the_built_network() {
    use nas_core::experiment::{candidates, Limits, RunDir, TrialRecord};
    use nas_core::space::{Choice, ChoiceKind, Reduce};
    use nas_types::Metrics;
    let op = |e: usize| Choice {
        label: format!("op_{e}"),
        kind: ChoiceKind::Layer {
            candidates: vec!["conv".into(), "pool".into()],
        },
        inside: None,
        edge_ops: vec![],
    };
    let mut space: Vec<Choice> = (0..3).map(op).collect();
    space.push(Choice {
        label: "input".into(),
        kind: ChoiceKind::Input {
            n_candidates: 3,
            n_chosen: 2,
            reduce: Reduce::Sum,
        },
        inside: None,
        edge_ops: (0..3).map(|e| format!("op_{e}")).collect(),
    });
    // Edges 0 and 1 picked; edge 2's op differs and builds nothing.
    let trial = |t: usize, unbuilt: &str, accuracy: f64| TrialRecord {
        trial: t,
        arch: serde_json::from_value(serde_json::json!({
            "input": [0, 1], "op_0": "conv", "op_1": "pool", "op_2": unbuilt,
        }))
        .unwrap(),
        metrics: Metrics {
            accuracy,
            ..Metrics::default()
        },
        seconds: 1.0,
    };
    let mut journal = vec![trial(0, "conv", 0.5), trial(1, "pool", 0.7)];
    let dir = std::env::temp_dir().join(format!("nas-unbuilt-ops-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    let run = RunDir::create(&dir, &serde_json::json!({})).unwrap();
    check_journal(&run, &space, &mut journal, "the space").unwrap();
    let c = candidates(&journal, &Limits::default());
    assert_eq!(c.len(), 1, "{c:?}");
    assert_eq!(c[0].trials, vec![0, 1]);
    assert!((c[0].metrics.accuracy - 0.6).abs() < 1e-9);
    assert!(!c[0].arch.contains_key("op_2"), "{:?}", c[0].arch);
    // An architecture the space does not have is still refused, naming the trial.
    let mut bad = vec![trial(2, "conv", 0.5)];
    bad[0].arch.insert("op_0".into(), "zero".into());
    let e = check_journal(&run, &space, &mut bad, "the space").unwrap_err();
    assert!(e.to_string().contains("trial 2"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}
