//! NAO on the NAS-Bench-201 table. `predictor_ranks_held_out_cells` measures how well
//! NAO's encoder and predictor rank 1000 held-out cells after training on 50, 100 and
//! 150 others (targets one random seed's accuracy, as a search sees it).
//! `beats_random_search_on_the_nas_bench_201_table` (ignored: about 3 minutes) runs it as
//! `nas bench-strategies --runs 100 --budget 150` does (run seeds 0..99, query seeds
//! `trial_seed(1000 + run, query)`, a run returns its best observed architecture, scored
//! by its seed mean), against random search as the `random` plugin does it; it must
//! beat random search by more than two standard errors.
use nas_core::evaluate::{Evaluator, Nb201Table};
use nas_core::space::builtin::{self, InputSpec};
use nas_core::space::describe;
use nas_predict::kendall_tau;
use nas_strategies::{decisions, json, Architecture, Choice, Metrics, Rng, Setup, Strategy};
use nas_strategy_nao::Nao;
use std::collections::HashSet;
use std::path::Path;

const RUNS: usize = 100;
const BUDGET: usize = 150;

fn nb201() -> (Nb201Table, Vec<Choice>) {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/nasbench201/nb201_cifar10.csv");
    let table = Nb201Table::load(&path).unwrap();
    let input = InputSpec {
        channels: 3,
        height: 32,
        width: 32,
        classes: 10,
    };
    (table, describe(builtin::nb201(16, 5, input).as_ref()))
}

fn random_decisions(space: &[Choice], rng: &mut Rng) -> Vec<usize> {
    let a = nas_strategies::random_architecture(space, rng);
    decisions::from_arch(space, &a).unwrap()
}

#[test]
fn predictor_ranks_held_out_cells() {
    let (table, space) = nb201();
    let mut rng = Rng::new(7);
    let mut seen = HashSet::new();
    let mut unique = |rng: &mut Rng| loop {
        let d = random_decisions(&space, rng);
        if seen.insert(d.clone()) {
            return d;
        }
    };
    let held: Vec<Vec<usize>> = (0..1000).map(|_| unique(&mut rng)).collect();
    let train: Vec<Vec<usize>> = (0..150).map(|_| unique(&mut rng)).collect();
    let truth: Vec<f64> = held
        .iter()
        .map(|d| table.row(&decisions::to_arch(&space, d)).unwrap().mean)
        .collect();
    let mut taus = vec![];
    for n in [50, 100, 150] {
        let mut s = Nao::new(&Setup {
            space: space.clone(),
            config: json!({}),
            seed: 1,
            budget: BUDGET,
        })
        .unwrap();
        for (t, d) in train[..n].iter().enumerate() {
            let m = table
                .evaluate(&decisions::to_arch(&space, d), t as u64)
                .unwrap();
            s.history.push((d.clone(), m.accuracy));
        }
        s.train();
        let pred: Vec<f64> = s.predict(&held).iter().map(|&p| p as f64).collect();
        taus.push(kendall_tau(&pred, &truth));
    }
    // Measured: 0.261, 0.295, 0.390.
    eprintln!("NAO predictor, Kendall tau on 1000 held-out cells after 50/100/150: {taus:.3?}");
    assert!(taus[1] > 0.25, "tau after 100 points {:.3}", taus[1]);
}

/// `nas bench-strategies`' query seed.
fn trial_seed(run_seed: u64, trial: usize) -> u64 {
    Rng::new(run_seed ^ (trial as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)).next_u64()
}

/// Mean and standard deviation.
fn summary(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    (
        mean,
        (xs.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt(),
    )
}

/// Per run: the final accuracy (%) of the best observed architecture, and the queries
/// it took for that to reach 91.5% (BUDGET + 1 when it never did).
fn bench(
    table: &Nb201Table,
    mut next: impl FnMut(usize) -> Box<dyn FnMut(Option<(&Architecture, f64)>) -> Architecture>,
) -> (Vec<f64>, Vec<usize>) {
    let (mut finals, mut reach) = (vec![], vec![]);
    for r in 0..RUNS {
        let mut ask = next(r);
        let mut best: Option<(f64, Architecture)> = None;
        let mut told: Option<(Architecture, f64)> = None;
        let mut hit = BUDGET + 1;
        for t in 0..BUDGET {
            let arch = ask(told.as_ref().map(|(a, m)| (a, *m)));
            let m = table
                .evaluate(&arch, trial_seed(1000 + r as u64, t))
                .unwrap();
            if best.as_ref().is_none_or(|(b, _)| m.accuracy > *b) {
                best = Some((m.accuracy, arch.clone()));
                if hit > BUDGET && table.final_accuracy(&arch).unwrap() >= 0.915 {
                    hit = t + 1;
                }
            }
            told = Some((arch, m.accuracy));
        }
        finals.push(table.final_accuracy(&best.unwrap().1).unwrap() * 100.0);
        reach.push(hit);
    }
    (finals, reach)
}

#[test]
#[ignore = "about 3 minutes: 100 searches of 150 queries"]
fn beats_random_search_on_the_nas_bench_201_table() {
    let (table, space) = nb201();
    let started = std::time::Instant::now();
    let nao = bench(&table, |r| {
        let mut s = Nao::new(&Setup {
            space: space.clone(),
            config: json!({}),
            seed: r as u64,
            budget: BUDGET,
        })
        .unwrap();
        Box::new(move |told| {
            if let Some((a, acc)) = told {
                let m = Metrics {
                    accuracy: acc,
                    ..Default::default()
                };
                s.tell(a, &m).unwrap();
            }
            s.ask().unwrap().expect("an architecture")
        })
    });
    let secs = started.elapsed().as_secs_f64();
    let random = bench(&table, |r| {
        let space = space.clone();
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
    });
    for (name, (finals, reach)) in [("random", &random), ("nao", &nao)] {
        let (m, sd) = summary(finals);
        let lo = finals.iter().cloned().fold(f64::MAX, f64::min);
        let hi = finals.iter().cloned().fold(f64::MIN, f64::max);
        let hits: Vec<f64> = reach
            .iter()
            .filter(|&&h| h <= BUDGET)
            .map(|&h| h as f64)
            .collect();
        let q = if hits.is_empty() {
            f64::NAN
        } else {
            summary(&hits).0
        };
        eprintln!(
            "{name:<8} mean {m:.2} std {sd:.2} min {lo:.2} max {hi:.2}; reached 91.5% in \
             {}/{RUNS} runs, after {q:.0} queries on average",
            hits.len()
        );
    }
    eprintln!("nao: {secs:.0} s for {RUNS} runs");
    let ((n, ns), (r, rs)) = (summary(&nao.0), summary(&random.0));
    let se = ((ns * ns + rs * rs) / RUNS as f64).sqrt();
    assert!(
        n > r + 2.0 * se,
        "nao {n:.2} vs random {r:.2} (two standard errors {:.2})",
        2.0 * se
    );
}
