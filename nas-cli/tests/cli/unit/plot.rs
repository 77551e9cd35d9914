//! The unit tests of `nas_cli::plot` (`nas-cli/src/plot.rs`).

use nas_cli::plot::*;

#[test]
fn ticks_are_nice_round_numbers() {
    // Trial numbers 0..147: integer ticks in steps of 20 from 0 (not 0, 29.4, ...).
    let t = nice_ticks(0.0, 147.0, 9, true, false);
    assert_eq!(t.step, 20.0);
    assert_eq!(t.values, [0.0, 20.0, 40.0, 60.0, 80.0, 100.0, 120.0, 140.0]);
    assert_eq!(t.labels[7], "140");
    // Fewer ticks allowed: the next nice step.
    let t = nice_ticks(0.0, 147.0, 4, true, false);
    assert_eq!(t.values, [0.0, 50.0, 100.0]);
    let t = nice_ticks(0.0, 147.0, 4, true, true);
    assert_eq!(t.values, [0.0, 50.0, 100.0, 150.0]);
    // A narrow range of fractions: as many decimals as the step needs, no more, and
    // no float noise (0.9135, not 0.91350000000001).
    let t = nice_ticks(0.913, 0.9161, 7, false, false);
    assert_eq!(t.step, 0.0005);
    assert_eq!(
        t.labels,
        ["0.9130", "0.9135", "0.9140", "0.9145", "0.9150", "0.9155", "0.9160"]
    );
    // Loose: the axis is widened to ticks around the range.
    let t = nice_ticks(86.3, 94.17, 7, false, true);
    assert_eq!(t.step, 2.0);
    assert_eq!(t.labels, ["86", "88", "90", "92", "94", "96"]);
    let t = nice_ticks(91.31, 91.62, 7, false, true);
    assert_eq!(t.labels, ["91.3", "91.4", "91.5", "91.6", "91.7"]);
    // Large values in thousands or millions; negative and zero without "-0".
    let t = nice_ticks(120_000.0, 1_480_000.0, 8, false, true);
    assert_eq!(t.labels, ["0", "0.5M", "1.0M", "1.5M"]);
    let t = nice_ticks(12_000.0, 14_500.0, 7, false, false);
    assert_eq!(
        t.labels,
        ["12.0k", "12.5k", "13.0k", "13.5k", "14.0k", "14.5k"]
    );
    let t = nice_ticks(-1.0, 1.0, 5, false, false);
    assert_eq!(t.labels, ["-1.0", "-0.5", "0", "0.5", "1.0"]);
    // Extremes do not hang, panic or put a number that is not finite on an axis.
    for (lo, hi) in [(-1e308, 1e308), (1e-320, 2e-320), (5e300, 6e300)] {
        let t = nice_ticks(lo, hi, 7, false, true);
        assert!(t.values.iter().all(|v| v.is_finite()), "{t:?}");
    }
    // One value: a range around it, still with ticks; integers stay integers.
    assert!(!nice_ticks(91.0, 91.0, 7, false, true).values.is_empty());
    let t = nice_ticks(0.0, 0.0, 9, true, false);
    assert_eq!(t.values, [0.0, 1.0]);
    let t = nice_ticks(0.0, 3.0, 9, true, false);
    assert_eq!(t.values, [0.0, 1.0, 2.0, 3.0]);
}

#[test]
fn costs_over_two_decades_go_on_a_log_axis() {
    assert!(!use_log(100_000.0, 1_500_000.0));
    assert!(!use_log(1e5, 1e7), "exactly two decades is linear");
    assert!(use_log(1e5, 1.5e7));
    assert!(!use_log(0.0, 1e9), "zero has no place on a log axis");
    assert!(!use_log(-5.0, 1e9));
    let a = Axis::log(3e4, 2e7);
    assert_eq!(a.ticks, [1e5, 1e6, 1e7]);
    assert_eq!(a.labels, ["100k", "1M", "10M"]);
    assert!(a.minor.contains(&5e4) && a.minor.contains(&2e6));
    let a = Axis::log(2e-5, 0.03);
    assert_eq!(a.labels, ["0.0001", "0.001", "0.01"]);
    // The plot says so in its label, and places its points by their logarithm.
    let pts = [(3e4, 70.0, true), (1e6, 90.0, true), (2e7, 93.0, false)];
    let svg = pareto(&pts, "params");
    assert!(svg.contains(">params (log)</text>"), "{svg}");
    let svg = pareto(&[(3e5, 70.0, true), (1e6, 90.0, true)], "params");
    assert!(svg.contains(">params</text>"), "{svg}");
}

#[test]
fn a_few_trials_at_chance_are_clipped_with_a_note() {
    assert_eq!(clip_note(0, ("trial", "trials"), "80%"), None);
    assert_eq!(
        clip_note(1, ("trial", "trials"), "80%").unwrap(),
        "1 trial below 80% drawn at the bottom edge"
    );
    // 100 trials between 86% and 94%, three of them at chance (10%).
    let mut trials: Vec<(usize, f64)> = (0..100)
        .map(|i| (i, 86.0 + (i as f64 * 7.3) % 8.0))
        .collect();
    for t in [7, 21, 40] {
        trials[t].1 = 10.0;
    }
    let svg = best_so_far(&trials, 99);
    // The axis starts near the trials (at 86%), not at 10%.
    assert!(
        svg.contains("3 trials below 86% drawn at the bottom edge"),
        "{svg}"
    );
    assert_eq!(
        svg.matches("<path d=\"M").count(),
        3,
        "three markers at the edge"
    );
    // When the first trial is the low one, the curve starts there and nothing is
    // below the axis.
    trials[0].1 = 10.0;
    let svg = best_so_far(&trials, 99);
    assert!(!svg.contains("below"), "{svg}");
    assert_eq!(svg.matches("<path d=\"M").count(), 0);
}

#[test]
fn best_so_far_is_a_step_line_over_the_trials() {
    let trials = [(0, 80.0), (1, 85.0), (2, 83.0), (4, 90.0)];
    let svg = best_so_far(&trials, 6);
    let d = svg
        .split("class=\"best\" d=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    // Across then up at trials 1 and 4 (not at 2: it is no better), then across
    // to the last trial, 6.
    let cmds: String = d.chars().filter(|c| c.is_ascii_alphabetic()).collect();
    assert_eq!(cmds, "MHVHVH", "{d}");
    assert_eq!(
        svg.matches("<circle").count(),
        4 + 1,
        "4 trials and the legend's dot"
    );
    assert!(svg.contains("best so far") && svg.contains("accuracy of each trial"));
    // Trials are numbered from 0, as the journal and the report's table number them.
    assert!(
        svg.contains(">0</text>") && svg.contains(">6</text>"),
        "{svg}"
    );
}

#[test]
fn text_is_escaped_and_no_nan_reaches_the_plot() {
    assert_eq!(escape("a<b & c>\"d\""), "a&lt;b &amp; c&gt;&quot;d&quot;");
    let svg = pareto(
        &[
            (1.0, 50.0, true),
            (f64::NAN, 60.0, false),
            (2.0, f64::INFINITY, true),
        ],
        "cost <&> \"x\"",
    );
    assert!(svg.contains("cost &lt;&amp;&gt; &quot;x&quot;"), "{svg}");
    let svg2 = best_so_far(&[(0, f64::NAN), (1, 50.0), (2, f64::NEG_INFINITY)], 2);
    let svg3 = progress(
        &[Series {
            name: "train_loss".into(),
            points: vec![
                (0.5, 2.0),
                (1.0, f64::NAN),
                (f64::INFINITY, 1.0),
                (1.5, 1.0),
            ],
        }],
        "epoch",
        Some("a & b"),
    );
    for s in [&svg, &svg2, &svg3] {
        let l = s.to_lowercase();
        assert!(!l.contains("nan") && !l.contains("inf"), "{s}");
    }
    assert!(svg3.contains("a &amp; b"));
    // Nothing to plot is still a plot, with axes.
    assert!(best_so_far(&[(0, f64::NAN)], 0).contains("no trial has an accuracy"));
    assert!(progress(&[], "epoch", None).contains("recorded no figures"));
}

#[test]
fn progress_puts_losses_together_and_other_figures_apart() {
    let s = |name: &str, k: f64| Series {
        name: name.into(),
        points: (1..=6).map(|i| (i as f64 / 3.0, k / i as f64)).collect(),
    };
    let svg = progress(
        &[s("train_loss", 2.0), s("val_loss", 2.2), s("tau", 10.0)],
        "epoch",
        None,
    );
    assert_eq!(svg.matches("<polyline").count(), 3);
    // Two panels: the losses (with a legend) and tau.
    assert_eq!(svg.matches("<clipPath").count(), 2);
    assert_eq!(svg.matches("class=\"legend\"").count(), 1);
    assert!(svg.contains(">train_loss</text>") && svg.contains(">val_loss</text>"));
    assert!(svg.contains(">tau</text>") && svg.contains(">loss</text>"));
    // One x label, at the bottom.
    assert_eq!(svg.matches(">epoch</text>").count(), 1);
}

#[test]
fn mixing_weights_share_a_unit_axis_and_a_legend_that_wraps() {
    let s = |name: &str, k: f64| Series {
        name: name.into(),
        points: (0..=4)
            .map(|i| (i as f64 / 2.0, k * i as f64 / 4.0))
            .collect(),
    };
    let ops = [
        "none",
        "max_pool_3x3",
        "avg_pool_3x3",
        "skip_connect",
        "sep_conv_3x3",
        "sep_conv_5x5",
        "dil_conv_3x3",
        "dil_conv_5x5",
    ];
    let series: Vec<Series> = ops.iter().map(|o| s(o, 0.1)).collect();
    let svg = weights(&series, "epoch", "normal/op_2_0");
    assert_eq!(svg.matches("class=\"weight\"").count(), 8);
    // Every candidate in the legend, in its colour, over more than one row.
    for (i, o) in ops.iter().enumerate() {
        assert!(svg.contains(&format!(">{o}</text>")), "{o}: {svg}");
        assert!(svg.contains(color(i)));
    }
    let rows: std::collections::BTreeSet<&str> = svg
        .split("class=\"legend\"")
        .nth(1)
        .unwrap()
        .split("<text x=\"")
        .skip(1)
        .map(|t| t.split("y=\"").nth(1).unwrap().split('"').next().unwrap())
        .collect();
    assert_eq!(rows.len(), 2, "{svg}");
    // No legend text past the panel's right edge (at x = 696).
    for t in svg
        .split("class=\"legend\"")
        .nth(1)
        .unwrap()
        .split("<text x=\"")
        .skip(1)
    {
        let x: f64 = t.split('"').next().unwrap().parse().unwrap();
        let label = t.split('>').nth(1).unwrap().split('<').next().unwrap();
        assert!(x + 6.5 * label.len() as f64 <= W - RIGHT, "{label} at {x}");
    }
    // The y axis is 0 to 1 whatever the data (here at most 0.1).
    assert!(
        svg.contains(">1.0</text>") && svg.contains(">0</text>"),
        "{svg}"
    );
    // Two candidates fit in one row, as every plot's legend did before.
    let svg = weights(&series[..2], "epoch", "c");
    assert_eq!(svg.matches(&format!("y=\"{:.1}\">", TOP - 14.0)).count(), 2);
}

#[test]
fn percentiles_interpolate_and_skip_nan() {
    assert_eq!(percentile(&[], 5.0), None);
    assert_eq!(percentile(&[3.0], 5.0), Some(3.0));
    assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0, 5.0], 50.0), Some(3.0));
    assert_eq!(percentile(&[5.0, f64::NAN, 1.0], 100.0), Some(5.0));
    let v: Vec<f64> = (0..=100).map(f64::from).collect();
    assert!((percentile(&v, 5.0).unwrap() - 5.0).abs() < 1e-12);
}
