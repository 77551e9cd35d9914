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
