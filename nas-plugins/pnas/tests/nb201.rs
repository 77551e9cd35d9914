//! PNAS with its default config, with `"rounds": 1` (the paper's single batch per depth)
//! and with `"local_search": true`, on the NAS-Bench-201 table exactly as `nas
//! bench-strategies --runs 100 --budget 150` runs it (run seeds 0..99, query seeds
//! `trial_seed(1000 + run, query)`, a run returns its best observed architecture, scored
//! by its seed mean); random search as the `random` plugin does it (its row matches the
//! README's). `"rounds": 8` (refitting the surrogate within a depth) must beat random
//! search by more than two standard errors; the paper's default must not fall below it.
//! The harness is `nas_predict::testing`'s.
use nas_core::evaluate::Nb201Table;
use nas_predict::testing::{self as nb, Returns};
use nas_strategies::{json, Choice, Setup, Strategy, Value};
use nas_strategy_pnas::Pnas;

const RUNS: usize = 100;
const BUDGET: usize = 150;

/// The final accuracy (%) of each run's best observed architecture.
fn bench(table: &Nb201Table, make: impl Fn(usize) -> Box<dyn Strategy> + Sync) -> Vec<f64> {
    nb::finals(&nb::bench(
        table,
        RUNS,
        BUDGET,
        Returns::BestObserved,
        nb::bench_seed,
        make,
    ))
}

fn pnas(table: &Nb201Table, space: &[Choice], config: Value) -> Vec<f64> {
    bench(table, nb::strategy::<Pnas>(space, config, BUDGET))
}

#[test]
fn beats_random_search_on_the_nas_bench_201_table() {
    let (table, space) = nb::nb201();
    let s = Pnas::new(&Setup {
        space: space.clone(),
        config: json!({}),
        seed: 0,
        budget: BUDGET,
    })
    .unwrap();
    assert_eq!(
        s.blocks(),
        vec![0..1, 1..3, 3..6],
        "nb201's blocks are its nodes"
    );
    assert!(s.smaller_cells_are_real());
    let rows = [
        ("random", bench(&table, nb::random_search(&space))),
        ("pnas rounds 8", pnas(&table, &space, json!({"rounds": 8}))),
        ("pnas (paper)", pnas(&table, &space, json!({}))),
        (
            "pnas local_search",
            pnas(&table, &space, json!({"local_search": true})),
        ),
    ];
    for (name, xs) in &rows {
        let s = nb::summary(xs);
        let (m, sd, lo, hi) = (s.mean, s.sd, s.min, s.max);
        eprintln!("{name:<18} {m:>6.2} {sd:>5.2} {lo:>6.2} {hi:>6.2}");
    }
    let random = nb::summary(&rows[0].1);
    let rounds8 = nb::summary(&rows[1].1);
    let (r, p) = (random.mean, rounds8.mean);
    let two_se = nb::two_standard_errors(&rounds8, &random);
    assert!(
        p > r + two_se,
        "pnas rounds 8 {p:.2} vs random {r:.2} (two standard errors {two_se:.2})"
    );
    let paper = nb::summary(&rows[2].1);
    let d = paper.mean;
    assert!(
        d > r - nb::two_standard_errors(&paper, &random),
        "pnas (paper) {d:.2} below random {r:.2}"
    );
}
