//! BANANAS on the NAS-Bench-201 table, run as `nas bench-strategies --runs 100 --budget
//! 150` runs it: run seeds 0.., query seeds `trial_seed(1000 + run, query)` (one random
//! seed's validation accuracy per query), a run returns the architecture with the best
//! mean of its observations (the host's `Leaderboard`), scored by its seed mean. Fitting
//! 14 ensembles a run takes about 2 s, so the test runs the first 8 runs (the README's
//! figures are the 100 of `bench-strategies`): their mean must beat random search's
//! 100-run mean (91.09, std 0.26: for 8 runs one standard error is 0.09) by more than
//! 0.2, and at least 4 of them must query the table's optimum (random search: 2 of 100).
//! The harness is `nas_predict::testing`'s.
use nas_predict::testing::{self as nb, Returns};
use nas_strategies::json;
use nas_strategy_bananas::Bananas;

const RUNS: usize = 8;
const BUDGET: usize = 150;

#[test]
fn beats_random_search_on_the_nas_bench_201_table() {
    let (table, space) = nb::nb201();
    let runs = nb::bench(
        &table,
        RUNS,
        BUDGET,
        Returns::BestMean,
        nb::bench_seed,
        nb::strategy::<Bananas>(&space, json!({}), BUDGET),
    );
    let finals = nb::finals(&runs);
    let found = runs.iter().filter(|o| o.queried_optimum).count();
    let mean = nb::summary(&finals).mean;
    eprintln!("bananas: {finals:.2?}, mean {mean:.2}; queried the optimum in {found}/{RUNS}");
    assert!(mean > 91.09 + 0.2, "bananas {mean:.2} against random 91.09");
    assert!(
        found >= 4,
        "bananas queried the optimum in {found} of {RUNS} runs"
    );
}
