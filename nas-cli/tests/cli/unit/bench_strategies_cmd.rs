//! The unit tests of `nas_cli::bench_strategies_cmd` (`nas-cli/src/bench_strategies_cmd.rs`).

use nas_cli::bench_strategies_cmd::*;
use nas_core::experiment::Limits;
use nas_core::space::Architecture;
use nas_strategies::Metrics;
use serde_json::json;

fn arch(op: &str) -> Architecture {
    let mut a = Architecture::new();
    a.insert("op".into(), json!(op));
    a
}

fn acc(a: f64) -> Metrics {
    Metrics {
        accuracy: a,
        ..Default::default()
    }
}

/// Three runs worked by hand. True (seed-mean) accuracies: a 91.0, b 91.6, c 91.55.
/// Run 1: a 0.912, b 0.911 (a still leads), c 0.916 (c leads: 91.55, reached at 3).
/// Run 2: b 0.917 (reached at 1), a 0.920 (a leads: the best no longer reaches),
/// b 0.926 (b's mean 0.9215 leads again; the first query counts: still 1).
/// Run 3: a 0.930, then c 0.925 twice (a still leads): never reached.
/// So the cell is the mean of 3 and 1 over the 2 runs that reached 91.5: "2 (2/3)".
#[test]
fn queries_to_reach_follow_the_host_ranking_by_mean_observation() {
    let truth = |a: &Architecture| match a["op"].as_str().unwrap() {
        "a" => 91.0,
        "b" => 91.6,
        _ => 91.55,
    };
    let runs: [&[(&str, f64)]; 3] = [
        &[("a", 0.912), ("b", 0.911), ("c", 0.916)],
        &[("b", 0.917), ("a", 0.920), ("b", 0.926)],
        &[("a", 0.930), ("c", 0.925), ("c", 0.925)],
    ];
    let mut reached = vec![];
    let mut best = vec![];
    for run in runs {
        let mut t = RunTracker::new(Limits::default(), 91.5);
        for (op, a) in run {
            t.add(&arch(op), &acc(*a), truth);
        }
        reached.push(t.reached_at);
        best.push(t.best().unwrap()["op"].as_str().unwrap().to_string());
    }
    assert_eq!(reached, [Some(3), Some(1), None]);
    assert_eq!(best, ["c", "b", "a"]);
    assert_eq!(reach_cell(&reached), "2 (2/3)");
    assert_eq!(reach_cell(&[Some(63), None, Some(64)]), "64 (2/3)");
    assert_eq!(reach_cell(&[None, None]), "- (0/2)");
    // A lucky single score of a re-evaluated architecture does not decide: after
    // b 0.930, a 0.920, b 0.900 (b's mean 0.915), a leads.
    let mut t = RunTracker::new(Limits::default(), 91.5);
    for (op, a) in [("b", 0.930), ("a", 0.920), ("b", 0.900)] {
        t.add(&arch(op), &acc(a), truth);
    }
    assert_eq!(t.best().unwrap()["op"], "a");
    assert_eq!(t.reached_at, Some(1));
}

/// Two standard errors of the difference, and the word for it.
#[test]
fn comparison_with_random_names_the_side_beyond_two_standard_errors() {
    // Means 91.5 and 91.0, population std 0.5 each over 4 runs: two standard errors
    // 2 * sqrt(0.25/4 + 0.25/4) = 0.71.
    let s = [91.0, 92.0, 91.0, 92.0];
    let r = [90.5, 91.5, 90.5, 91.5];
    assert_eq!(against_random(&s, &r), "no better, +0.50 (±0.71)");
    let s = [92.0, 93.0, 92.0, 93.0];
    assert_eq!(against_random(&s, &r), "better, +1.50 (±0.71)");
    assert_eq!(against_random(&r, &s), "worse, -1.50 (±0.71)");
}
