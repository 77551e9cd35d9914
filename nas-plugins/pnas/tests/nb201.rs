//! PNAS with its default config, with `"rounds": 1` (the paper's single batch per depth)
//! and with `"local_search": true`, on the NAS-Bench-201 table exactly as `nas
//! bench-strategies --runs 100 --budget 150` runs it (run seeds 0..99, query seeds
//! `trial_seed(1000 + run, query)`, a run returns its best observed architecture, scored
//! by its seed mean); random search as the `random` plugin does it (its row matches the
//! README's). `"rounds": 8` (refitting the surrogate within a depth) must beat random
//! search by more than two standard errors; the paper's default must not fall below it.
use nas_core::evaluate::{Evaluator, Nb201Table};
use nas_core::space::builtin::{self, InputSpec};
use nas_core::space::describe;
use nas_strategies::{decisions, json, Architecture, Choice, Rng, Setup, Strategy, Value};
use nas_strategy_pnas::Pnas;
use std::collections::HashSet;
use std::path::Path;

const RUNS: usize = 100;
const BUDGET: usize = 150;

/// `nas bench-strategies`' query seed.
fn trial_seed(run_seed: u64, trial: usize) -> u64 {
    Rng::new(run_seed ^ (trial as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)).next_u64()
}

/// Mean, standard deviation, min, max.
fn summary(xs: &[f64]) -> (f64, f64, f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let sd = (xs.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
    let lo = xs.iter().cloned().fold(f64::MAX, f64::min);
    let hi = xs.iter().cloned().fold(f64::MIN, f64::max);
    (mean, sd, lo, hi)
}

/// The final accuracy (%) of each run's best observed architecture.
fn bench(
    table: &Nb201Table,
    mut next: impl FnMut(usize) -> Box<dyn FnMut(Option<(&Architecture, f64)>) -> Architecture>,
) -> Vec<f64> {
    (0..RUNS)
        .map(|r| {
            let mut ask = next(r);
            let mut best: Option<(f64, Architecture)> = None;
            let mut told: Option<(Architecture, f64)> = None;
            for t in 0..BUDGET {
                let arch = ask(told.as_ref().map(|(a, m)| (a, *m)));
                let m = table
                    .evaluate(&arch, trial_seed(1000 + r as u64, t))
                    .unwrap();
                if best.as_ref().is_none_or(|(b, _)| m.accuracy > *b) {
                    best = Some((m.accuracy, arch.clone()));
                }
                told = Some((arch, m.accuracy));
            }
            table.final_accuracy(&best.unwrap().1).unwrap() * 100.0
        })
        .collect()
}

fn pnas(table: &Nb201Table, space: &[Choice], config: Value) -> Vec<f64> {
    bench(table, |r| {
        let mut s = Pnas::new(&Setup {
            space: space.to_vec(),
            config: config.clone(),
            seed: r as u64,
            budget: BUDGET,
        })
        .unwrap();
        Box::new(move |told| {
            if let Some((a, acc)) = told {
                let m = nas_strategies::Metrics {
                    accuracy: acc,
                    ..Default::default()
                };
                s.tell(a, &m).unwrap();
            }
            s.ask().unwrap().expect("an architecture")
        })
    })
}

fn random(table: &Nb201Table, space: &[Choice]) -> Vec<f64> {
    bench(table, |r| {
        let space = space.to_vec();
        let mut rng = Rng::new(r as u64);
        let mut seen = HashSet::new();
        Box::new(move |_| {
            let key = |a: &Architecture| {
                decisions::key(&space, &decisions::from_arch(&space, a).unwrap())
            };
            let mut a = nas_strategies::random_architecture(&space, &mut rng);
            for _ in 0..100 {
                if !seen.contains(&key(&a)) {
                    break;
                }
                a = nas_strategies::random_architecture(&space, &mut rng);
            }
            seen.insert(key(&a));
            a
        })
    })
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
        ("random", random(&table, &space)),
        ("pnas rounds 8", pnas(&table, &space, json!({"rounds": 8}))),
        ("pnas (paper)", pnas(&table, &space, json!({}))),
        (
            "pnas local_search",
            pnas(&table, &space, json!({"local_search": true})),
        ),
    ];
    for (name, xs) in &rows {
        let (m, sd, lo, hi) = summary(xs);
        eprintln!("{name:<18} {m:>6.2} {sd:>5.2} {lo:>6.2} {hi:>6.2}");
    }
    let (r, rs, _, _) = summary(&rows[0].1);
    let (p, ps, _, _) = summary(&rows[1].1);
    let se = ((ps * ps + rs * rs) / RUNS as f64).sqrt();
    assert!(
        p > r + 2.0 * se,
        "pnas rounds 8 {p:.2} vs random {r:.2} (two standard errors {:.2})",
        2.0 * se
    );
    let (d, ds, _, _) = summary(&rows[2].1);
    let se = ((ds * ds + rs * rs) / RUNS as f64).sqrt();
    assert!(d > r - 2.0 * se, "pnas (paper) {d:.2} below random {r:.2}");
}
