//! The unit tests of `nas_cli::report_cmd` (`nas-cli/src/report_cmd.rs`).

use nas_cli::report_cmd::*;
use nas_core::space::{Choice, ChoiceKind};

#[test]
fn progress_is_plotted_against_fractional_epochs() {
    let text = [
        r#"{"epoch":0,"step":50,"values":{"train_loss":2.0,"tau":10.0},"arch":{}}"#,
        r#"{"epoch":0,"step":100,"values":{"train_loss":1.5,"tau":9.0},"arch":{}}"#,
        r#"{"epoch":1,"step":50,"values":{"train_loss":1.2,"tau":8.0},"arch":{}}"#,
        r#"{"epoch":1,"step":100,"values":{"train_loss":1.0,"tau":7.0},"arch":{}}"#,
        r#"{"epoch":2,"step":1,"values":{"best_supernet_accuracy":0.5},"arch":{}}"#,
        r#"{"epoch":1,"st"#,
    ]
    .join("\n");
    let (series, after) = progress_series(&text, 2);
    assert_eq!(after, 1);
    let names: Vec<&str> = series.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["tau", "train_loss"]);
    assert_eq!(
        series[1].points,
        [(0.5, 2.0), (1.0, 1.5), (1.5, 1.2), (2.0, 1.0)]
    );
}

/// The lines a report warns of: whole lines that are not progress records, not blank
/// ones and not a last line still being written.
#[test]
fn damaged_progress_lines_are_named() {
    let rec = r#"{"epoch":0,"step":5,"values":{"train_loss":2.0}}"#;
    let text = format!("{rec}\n\ngarbage\n{rec}\n{{\"epoch\":0}}\n[1]\n{rec}\n{{\"epo");
    assert_eq!(damaged_progress_lines(&text), [3, 5, 6]);
    // The same last line with its newline is damage too.
    assert_eq!(damaged_progress_lines(&format!("{text}\n")), [3, 5, 6, 8]);
    assert!(damaged_progress_lines("").is_empty());
    assert!(damaged_progress_lines(&format!("{rec}\n{rec}")).is_empty());
}

#[test]
fn mixing_weights_are_series_per_candidate_and_old_lines_have_none() {
    let layer = Choice {
        label: "conv1".into(),
        kind: ChoiceKind::Layer {
            candidates: vec!["conv3x3".into(), "conv5x5".into()],
        },
        inside: None,
        edge_ops: vec![],
    };
    let value = Choice {
        label: "width".into(),
        kind: ChoiceKind::Value {
            values: vec![16.into(), 32.into()],
        },
        inside: None,
        edge_ops: vec![],
    };
    let edges = Choice {
        label: "input_2".into(),
        kind: ChoiceKind::Input {
            n_candidates: 2,
            n_chosen: 2,
            reduce: nas_core::space::Reduce::Sum,
        },
        inside: None,
        edge_ops: vec!["op_2_0".into(), "op_2_1".into()],
    };
    let text = [
        // A line of a run from before the mixing weights were recorded.
        r#"{"epoch":0,"step":50,"values":{"train_loss":2.0},"arch":{}}"#,
        r#"{"epoch":0,"step":100,"values":{"train_loss":1.5},"arch":{},"mix":{"conv1":[0.5,0.5],"width":[0.4,0.6],"input_2":[1,1]}}"#,
        r#"{"epoch":1,"step":100,"values":{"train_loss":1.0},"arch":{},"mix":{"conv1":[0.25,0.75],"width":[0.3,0.7],"input_2":[1,1]}}"#,
        r#"{"epoch":2,"step":1,"values":{},"arch":{}}"#,
    ]
    .join("\n");
    let choices = [layer, value, edges];
    let m = mixing_series(&text, 2, &choices);
    let labels: Vec<&str> = m.iter().map(|g| g.0.as_str()).collect();
    assert_eq!(labels, ["conv1", "width"], "edge choices are left out");
    let names: Vec<&str> = m[0].1.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["conv3x3", "conv5x5"]);
    assert_eq!(m[0].1[1].points, [(1.0, 0.5), (2.0, 0.75)]);
    assert_eq!(m[1].1[0].name, "16");
    assert_eq!(m[1].1[0].points, [(1.0, 0.4), (2.0, 0.3)]);
    // No line with weights: nothing to plot.
    assert!(mixing_series(text.lines().next().unwrap(), 2, &choices).is_empty());
}
