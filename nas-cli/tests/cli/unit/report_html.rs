//! The unit tests of `nas_cli::report_html` (`nas-cli/src/report_html.rs`).

use nas_cli::plot::{self};
use nas_cli::report_html::*;
use nas_cli::search_args::SearchArgs;
use nas_core::experiment::TrialRecord;
use nas_core::space::Choice;
use serde_json::Value;

#[test]
fn numbers_are_short_and_whole_numbers_whole() {
    assert_eq!(number(830426.0), "830426");
    assert_eq!(number(19.724999999999998), "19.72");
    assert_eq!(number(0.011669758), "0.01167");
    assert_eq!(number(117.88352), "117.88");
    assert_eq!(number(f64::NAN), "-");
}

fn args(space: &str, strategy: &str, config: Option<&str>) -> SearchArgs {
    serde_json::from_value(serde_json::json!({
        "space": space, "strategy": strategy, "budget": 3, "seed": 0,
        "out": "runs/x", "evaluator": "auto", "epochs": 2, "val": 100, "limit": null,
        "parallel": 1, "config": config,
    }))
    .unwrap()
}

fn trial(n: usize, accuracy: f64, params: f64) -> TrialRecord {
    TrialRecord {
        trial: n,
        // Each trial its own architecture (trials of one are grouped).
        arch: [("conv1".to_string(), Value::from(format!("op{n}")))].into(),
        metrics: nas_core::evaluate::Metrics {
            accuracy,
            params: Some(params),
            ..Default::default()
        },
        seconds: 0.5,
    }
}

/// The trial numbers of a page's rows, in order.
fn rows(html: &str) -> Vec<usize> {
    html.split("data-trial=\"")
        .skip(1)
        .map(|t| t.split('"').next().unwrap().parse().unwrap())
        .collect()
}

#[test]
fn a_page_lists_every_trial_best_first_and_marks_the_limits() {
    let a = args("seed-net", "random", Some(r#"{"limits": {"params": 100}}"#));
    let j = [
        trial(0, 0.5, 50.0),
        trial(1, 0.9, 150.0),
        trial(2, 0.7, 80.0),
    ];
    let page = Page {
        name: "runs/x".into(),
        args: &a,
        journal: &j,
        choices: None,
        progress: None,
        final_accuracy: None,
        state: State::Stopped,
        written_ms: 0,
    };
    let html = render(&page).unwrap();
    assert!(
        html.contains("<body data-state=\"finished\""),
        "3 of 3 trials"
    );
    assert_eq!(rows(&html), [1, 2, 0]);
    // Trial 1 is the most accurate but over the limit: the best is trial 2.
    assert!(html.contains("<tr class=\"trial best\" data-trial=\"2\">"));
    assert_eq!(html.matches("class=\"trial best\"").count(), 1);
    let row1 = html.split("data-trial=\"1\"").nth(1).unwrap();
    let row1 = &row1[..row1.find("</tr>").unwrap()];
    assert!(
        row1.contains(">no</td>") && row1.contains(">150</td>"),
        "{row1}"
    );
    assert!(html.contains("Trial 2: accuracy <b>70.00%</b>"));
    assert!(html.contains("id=\"best-so-far\"") && html.contains("id=\"pareto\""));
    // Two of three trials: stopped, no longer reloading.
    let page = Page {
        journal: &j[..2],
        ..page
    };
    assert!(render(&page)
        .unwrap()
        .contains("<body data-state=\"stopped\""));
}

#[test]
fn a_one_shot_page_while_it_trains_shows_the_current_architecture_and_reloads() {
    let a = args("seed-net", "gdas", None);
    let choices: Vec<Choice> = serde_json::from_str(
        r#"[{"label":"conv1","type":"layer","candidates":["conv3x3","conv5x5"]},
            {"label":"conv2","type":"layer","candidates":["conv3x3","conv5x5"]}]"#,
    )
    .unwrap();
    let progress = [
        r#"{"epoch":0,"step":50,"values":{"train_loss":2.0},"arch":{"conv1":"conv3x3","conv2":"conv3x3"},"mix":{"conv1":[0.5,0.5],"conv2":[0.6,0.4]}}"#,
        r#"{"epoch":0,"step":100,"values":{"train_loss":1.5},"arch":{"conv1":"conv5x5","conv2":"conv3x3"},"mix":{"conv1":[0.4,0.6],"conv2":[0.7,0.3]}}"#,
    ]
    .join("\n");
    let page = Page {
        name: "runs/x".into(),
        args: &a,
        journal: &[],
        choices: Some(choices),
        progress: Some(progress),
        final_accuracy: None,
        state: State::Running,
        written_ms: 1,
    };
    let html = render(&page).unwrap();
    assert!(html.contains("<body data-state=\"running\""));
    assert!(
        html.contains("location.reload(); }, 5000)"),
        "reloads every 5 s"
    );
    assert!(html.contains("Current architecture"));
    assert!(html.contains("(epoch 1, step 100)"));
    // The last report's architecture is the one drawn.
    assert!(html.contains(">conv5x5</text>"), "{html}");
    assert_eq!(html.matches("<figure class=\"mixing\">").count(), 2);
    assert!(html.contains("id=\"progress\""));
    assert!(rows(&html).is_empty());
}

#[test]
fn inlined_plots_do_not_share_clip_ids() {
    let a = inline(&plot::best_so_far(&[(0, 50.0), (1, 60.0)], 1), "a");
    let b = inline(&plot::best_so_far(&[(0, 50.0), (1, 60.0)], 1), "b");
    assert!(a.contains("id=\"a-clip0\"") && a.contains("url(#a-clip0)"));
    assert!(!a.contains("\"clip0\"") && !a.contains("#clip0"));
    assert!(b.contains("url(#b-clip0)"));
}
