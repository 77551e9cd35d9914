//! BANANAS on the NAS-Bench-201 table, run as `nas bench-strategies --runs 100 --budget
//! 150` runs it: run seeds 0.., query seeds `trial_seed(1000 + run, query)` (one random
//! seed's validation accuracy per query), a run returns the architecture with the best
//! mean of its observations (the host's `Leaderboard`), scored by its seed mean. Fitting
//! 14 ensembles a run takes about 2 s, so the test runs the first 8 runs (the README's
//! figures are the 100 of `bench-strategies`): their mean must beat random search's
//! 100-run mean (91.09, std 0.26: for 8 runs one standard error is 0.09) by more than
//! 0.2, and at least 4 of them must query the table's optimum (random search: 2 of 100).
use nas_core::evaluate::{Evaluator, Nb201Table};
use nas_core::experiment::{Leaderboard, Limits, TrialRecord};
use nas_core::space::builtin::{self, InputSpec};
use nas_core::space::describe;
use nas_strategies::{json, Rng, Setup, Strategy};
use nas_strategy_bananas::Bananas;
use std::path::Path;

const RUNS: usize = 8;
const BUDGET: usize = 150;

/// `nas bench-strategies`' query seed.
fn trial_seed(run_seed: u64, trial: usize) -> u64 {
    Rng::new(run_seed ^ (trial as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)).next_u64()
}

#[test]
fn beats_random_search_on_the_nas_bench_201_table() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/nasbench201/nb201_cifar10.csv");
    let table = Nb201Table::load(&path).unwrap();
    let input = InputSpec {
        channels: 3,
        height: 32,
        width: 32,
        classes: 10,
    };
    let space = describe(builtin::nb201(16, 5, input).as_ref());
    let optimum = table.optimum();
    let (mut finals, mut found) = (vec![], 0);
    for r in 0..RUNS {
        let mut s = Bananas::new(&Setup {
            space: space.clone(),
            config: json!({}),
            seed: r as u64,
            budget: BUDGET,
        })
        .unwrap();
        let mut board = Leaderboard::new(Limits::default());
        let mut hit = false;
        for t in 0..BUDGET {
            let arch = s.ask().unwrap().expect("an architecture");
            let m = table
                .evaluate(&arch, trial_seed(1000 + r as u64, t))
                .unwrap();
            hit |= table.final_accuracy(&arch).unwrap() * 100.0 >= optimum - 1e-9;
            board.add(&TrialRecord {
                trial: t,
                arch: arch.clone(),
                metrics: m.clone(),
                seconds: 0.0,
            });
            s.tell(&arch, &m).unwrap();
        }
        found += hit as usize;
        finals.push(table.final_accuracy(&board.best().unwrap().arch).unwrap() * 100.0);
    }
    let mean = finals.iter().sum::<f64>() / RUNS as f64;
    eprintln!("bananas: {finals:.2?}, mean {mean:.2}; queried the optimum in {found}/{RUNS}");
    assert!(mean > 91.09 + 0.2, "bananas {mean:.2} against random 91.09");
    assert!(
        found >= 4,
        "bananas queried the optimum in {found} of {RUNS} runs"
    );
}
