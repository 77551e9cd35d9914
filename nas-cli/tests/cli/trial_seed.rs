//! The NAS-Bench-201 test harness of the plugins' tests (`nas_predict::testing`) seeds
//! each query with the host's `trial_seed` (`nas_core::evaluate`) and restates the
//! `random` plugin's search. Here both are held to what `nas search` does: every trial a
//! random search journals has the table's answer for the harness's seed of that trial
//! (a host that seeded its trials otherwise would fail it), and the harness's random
//! search asks the same architectures in the same order.

use crate::common;

use nas_core::evaluate::Evaluator;
use nas_core::experiment::RunDir;
use nas_predict::testing::{self as nb, RandomSearch};
use nas_strategies::{json, Setup, Strategy};

const BUDGET: usize = 60;
const SEED: u64 = 5;

#[test]
fn the_test_harness_seeds_and_searches_as_the_host_does() {
    let out = common::temp_path("trial_seed", "random");
    let (ok, _, err) = common::run(
        common::nas()
            .args(["search", "--space", "nb201", "--strategy", "random"])
            .args(["--budget", &BUDGET.to_string(), "--seed", &SEED.to_string()])
            .arg("--out")
            .arg(&out),
    );
    assert!(ok, "nas search failed:\n{err}");
    let journal = RunDir::open(&out).unwrap().journal().unwrap();
    let _ = std::fs::remove_dir_all(&out);
    assert_eq!(journal.len(), BUDGET);
    let (table, space) = nb::nb201();
    // The host's seeds: each journaled accuracy is the table's answer for the
    // harness's seed of that trial, and not for another seed formula (a NAS-Bench-201
    // row has 3 seeds, so a wrong one misses about 2 trials in 3).
    let mut other = 0;
    for t in &journal {
        let m = table
            .evaluate(&t.arch, nb::trial_seed(SEED, t.trial))
            .unwrap();
        assert_eq!(m.accuracy, t.metrics.accuracy, "trial {}", t.trial);
        let wrong = table
            .evaluate(&t.arch, nb::trial_seed(SEED + 1, t.trial))
            .unwrap();
        other += (wrong.accuracy != t.metrics.accuracy) as usize;
    }
    assert!(
        other > BUDGET / 3,
        "only {other} trials tell the seeds apart"
    );
    // The `random` plugin's search: the same architectures, in the same order.
    let mut s = RandomSearch::new(&Setup {
        space: space.clone(),
        config: json!({}),
        seed: SEED,
        budget: BUDGET,
    })
    .unwrap();
    let ours = nb::search(&table, &mut s, BUDGET, |t| nb::trial_seed(SEED, t));
    let archs = |j: &[nas_core::experiment::TrialRecord]| -> Vec<_> {
        j.iter().map(|t| t.arch.clone()).collect()
    };
    assert_eq!(archs(&ours), archs(&journal));
}
