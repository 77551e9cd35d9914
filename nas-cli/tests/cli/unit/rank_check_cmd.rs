//! The unit tests of `nas_cli::rank_check_cmd` (`nas-cli/src/rank_check_cmd.rs`).

use nas_cli::rank_check_cmd::*;
use nas_predict::rank::kendall_tau;
use std::path::Path;

const CELL: &str =
    "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|none~1|nor_conv_1x1~2|";
const OTHER: &str = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|";

#[test]
fn a_table_groups_its_seeds_by_cell() {
    let text = format!(
        "arch_str,seed,test_accuracy,params\n{CELL},0,80,1\n{OTHER},0,10,1\n{CELL},1,82,1\n"
    );
    let rows = parse_truth(Path::new("t.csv"), &text).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].arch_str, CELL);
    assert_eq!(rows[0].accuracies, vec![80.0, 82.0]);
    assert_eq!(rows[0].mean(), 81.0);
    assert_eq!(rows[1].mean(), 10.0);
    assert_eq!(rows[1].params, Some(1.0));
}

#[test]
fn a_bad_table_is_named_with_line_field_and_value() {
    let err = |text: &str| format!("{:#}", parse_truth(Path::new("t.csv"), text).unwrap_err());
    let e = err(&format!(
        "arch_str,test_accuracy\n{CELL},80\n{OTHER},high\n"
    ));
    assert!(
        e.contains("t.csv line 3") && e.contains("test_accuracy `high`"),
        "{e}"
    );
    let e = err(&format!("arch_str,test_accuracy\n{CELL},180\n{OTHER},1\n"));
    assert!(e.contains("line 2") && e.contains("`180`"), "{e}");
    let e = err("arch_str,test_accuracy\n|bogus~0|,80\n");
    assert!(e.contains("t.csv line 2: arch_str"), "{e}");
    let e = err(&format!("arch_str,test_accuracy,params\n{CELL},80,-3\n"));
    assert!(e.contains("line 2: params `-3`"), "{e}");
    let e = err("arch,test_accuracy\n");
    assert!(e.contains("no `arch_str` column"), "{e}");
    let e = err(&format!("arch_str,test_accuracy\n{CELL},80,3\n"));
    assert!(e.contains("3 fields, the header has 2"), "{e}");
    let e = err(&format!("arch_str,test_accuracy\n{CELL},80\n"));
    assert!(e.contains("ranking needs at least 2"), "{e}");
    assert!(err("").contains("empty"));
}

#[test]
fn the_random_scorer_spread_matches_random_rankings() {
    // Taus of shuffled rankings against a fixed one spread as the formula says.
    let n = 60;
    let truth: Vec<f64> = (0..n).map(|i| i as f64).collect();
    let mut rng = nas_core::Rng::new(7);
    let taus: Vec<f64> = (0..400)
        .map(|_| {
            let mut s = truth.clone();
            for i in (1..n).rev() {
                s.swap(i, rng.below(i + 1));
            }
            kendall_tau(&s, &truth)
        })
        .collect();
    let mean = taus.iter().sum::<f64>() / taus.len() as f64;
    let sd = (taus.iter().map(|t| (t - mean).powi(2)).sum::<f64>() / taus.len() as f64).sqrt();
    let want = random_tau_std(n);
    assert!(mean.abs() < 0.02, "mean tau {mean}");
    assert!((sd - want).abs() < 0.15 * want, "sd {sd}, formula {want}");
}
