//! The NAS-Bench-201 test harness that strategy tests share (behind the `testing`
//! feature): the bundled table and the benchmark's space, random decision vectors, the
//! host's per-query seed, random search as the `random` plugin does it, a search run on
//! the table as `nas search` and `nas bench-strategies` run one, and the summaries the
//! tests compare (mean, standard deviation, two standard errors of a difference).
//!
//! It lives here, not in the SDK's `testing` (`nas_strategies::testing`), because the
//! table, the space and the host's `Leaderboard` are nas-core's, and the SDK does not
//! depend on the engine; nas-predict already sits over both. A plugin's tests take it
//! as a dev-dependency with `features = ["testing"]`.

use nas_core::evaluate::{Evaluator, Nb201Table};
use nas_core::experiment::{Leaderboard, Limits, TrialRecord};
use nas_core::space::builtin::{self, InputSpec};
use nas_core::space::describe;
use nas_strategies::{
    decisions, Architecture, Choice, Costs, Metrics, Rng, Setup, Strategy, Value,
};
use rayon::prelude::*;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// The bundled NAS-Bench-201 table (CIFAR-10 validation accuracies).
pub fn nb201_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/nasbench201/nb201_cifar10.csv")
}

/// The bundled NAS-Bench-201 table, loaded.
pub fn nb201_table() -> Nb201Table {
    Nb201Table::load(&nb201_path()).unwrap()
}

/// The benchmark's space: the `nb201` cell at C = 16, N = 5 on 3x32x32 images, 10 classes.
pub fn nb201_space() -> Vec<Choice> {
    let input = InputSpec {
        channels: 3,
        height: 32,
        width: 32,
        classes: 10,
    };
    describe(builtin::nb201(16, 5, input).as_ref())
}

/// The table and the space.
pub fn nb201() -> (Nb201Table, Vec<Choice>) {
    (nb201_table(), nb201_space())
}

/// A uniformly random architecture of the space, as a decision vector.
pub fn random_decisions(space: &[Choice], rng: &mut Rng) -> Vec<usize> {
    let a = nas_strategies::random_architecture(space, rng);
    decisions::from_arch(space, &a).unwrap()
}

/// Each trial's seed as the host makes it (the same function, so a harness search asks
/// the table what `nas search` would).
pub use nas_core::evaluate::trial_seed;

/// The query seed of `nas bench-strategies`: run `run` has run seed `1000 + run`.
pub fn bench_seed(run: usize, trial: usize) -> u64 {
    trial_seed(1000 + run as u64, trial)
}

/// Random search as the `random` plugin does it: each architecture drawn uniformly, a
/// repeat of one already asked drawn again up to `redraws` times (the plugin: 100;
/// 0 gives plain uniform draws).
pub struct RandomSearch {
    space: Vec<Choice>,
    rng: Rng,
    redraws: usize,
    seen: HashSet<String>,
}

impl RandomSearch {
    pub fn with(space: &[Choice], seed: u64, redraws: usize) -> RandomSearch {
        RandomSearch {
            space: space.to_vec(),
            rng: Rng::new(seed),
            redraws,
            seen: HashSet::new(),
        }
    }
}

impl Strategy for RandomSearch {
    /// The plugin's: up to 100 redraws.
    fn new(setup: &Setup) -> Result<Self, String> {
        Ok(RandomSearch::with(&setup.space, setup.seed, 100))
    }
    fn ask(&mut self) -> Result<Option<Architecture>, String> {
        let key = |a: &Architecture| {
            decisions::key(&self.space, &decisions::from_arch(&self.space, a).unwrap())
        };
        let mut a = nas_strategies::random_architecture(&self.space, &mut self.rng);
        for _ in 0..self.redraws {
            if !self.seen.contains(&key(&a)) {
                break;
            }
            a = nas_strategies::random_architecture(&self.space, &mut self.rng);
        }
        if self.redraws > 0 {
            self.seen.insert(key(&a));
        }
        Ok(Some(a))
    }
    fn tell(&mut self, _: &Architecture, _: &Metrics) -> Result<(), String> {
        Ok(())
    }
    fn save(&self) -> Result<Value, String> {
        Ok(Value::Null)
    }
    fn load(&mut self, _: Value) -> Result<(), String> {
        Ok(())
    }
}

/// For [`bench`]: run `r` gets `S` made with run seed `r`.
pub fn strategy<S: Strategy + 'static>(
    space: &[Choice],
    config: Value,
    budget: usize,
) -> impl Fn(usize) -> Box<dyn Strategy> + Sync + '_ {
    move |r| {
        Box::new(
            S::new(&Setup {
                space: space.to_vec(),
                config: config.clone(),
                seed: r as u64,
                budget,
            })
            .unwrap(),
        )
    }
}

/// For [`bench`]: run `r` gets the `random` plugin's search with run seed `r`.
pub fn random_search(space: &[Choice]) -> impl Fn(usize) -> Box<dyn Strategy> + Sync + '_ {
    move |r| Box::new(RandomSearch::with(space, r as u64, 100))
}

/// One search on the table, as `nas search` runs it: up to `budget` queries (fewer when
/// the strategy has nothing left to ask), query `t` scored with seed `seed(t)` (one random
/// seed's validation accuracy), every one told; the journal of its trials.
pub fn search(
    table: &Nb201Table,
    s: &mut dyn Strategy,
    budget: usize,
    seed: impl Fn(usize) -> u64,
) -> Vec<TrialRecord> {
    let mut journal = Vec::with_capacity(budget);
    // The host's cost model, as `nas search` opens it to every ask.
    let costs = |a: &Architecture| table.costs(a);
    for t in 0..budget {
        let Some(arch) = s.ask_costed(&Costs::Local(&costs)).unwrap() else {
            break;
        };
        let metrics = table.evaluate(&arch, seed(t)).unwrap();
        s.tell(&arch, &metrics).unwrap();
        journal.push(TrialRecord {
            trial: t,
            arch,
            metrics,
            seconds: 0.0,
        });
    }
    journal
}

/// Which architecture a run returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Returns {
    /// The first with the highest accuracy observed (one query's answer).
    BestObserved,
    /// The one with the best mean of its observations: the host's `Leaderboard`, which
    /// `nas search` returns from.
    BestMean,
}

/// What one run of a search gave.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The seed mean (%) of the architecture the run returns.
    pub final_acc: f64,
    /// Whether the run queried the table's optimum at all.
    pub queried_optimum: bool,
    /// After each query, the seed mean (a fraction, as `final_accuracy` gives it) of the
    /// best observed architecture so far.
    pub best_so_far: Vec<f64>,
}

impl Outcome {
    /// The queries it took for the best observed architecture's seed mean to reach
    /// `acc` (a fraction), or `None` if it never did.
    pub fn reached(&self, acc: f64) -> Option<usize> {
        self.best_so_far
            .iter()
            .position(|&b| b >= acc)
            .map(|t| t + 1)
    }
}

/// What a run's journal returns and found.
pub fn outcome(table: &Nb201Table, journal: &[TrialRecord], returns: Returns) -> Outcome {
    let optimum = table.optimum();
    let mut queried_optimum = false;
    let mut best: Option<(f64, &Architecture)> = None;
    let mut best_final = 0.0;
    let mut best_so_far = Vec::with_capacity(journal.len());
    for t in journal {
        let f = table.final_accuracy(&t.arch).unwrap();
        queried_optimum |= f * 100.0 >= optimum - 1e-9;
        if best.is_none_or(|(b, _)| t.metrics.accuracy > b) {
            best = Some((t.metrics.accuracy, &t.arch));
            best_final = f;
        }
        best_so_far.push(best_final);
    }
    let final_acc = match returns {
        Returns::BestObserved => table.final_accuracy(best.expect("a query").1),
        Returns::BestMean => {
            let mut board = Leaderboard::new(Limits::default());
            for t in journal {
                board.add(t);
            }
            table.final_accuracy(&board.best().expect("a query").arch)
        }
    };
    Outcome {
        final_acc: final_acc.unwrap() * 100.0,
        queried_optimum,
        best_so_far,
    }
}

/// `runs` searches of `budget` queries each, as `nas bench-strategies` runs them:
/// `make(r)` gives run `r`'s strategy, query `t` of run `r` is scored with seed
/// `seed(r, t)` ([`bench_seed`] is `bench-strategies`' own), and each run must spend its
/// whole budget. The runs are independent, so they run on rayon's threads, as
/// `bench-strategies` runs them (each strategy made, asked and told on one); outcomes
/// come back in run order, the same as one after another.
pub fn bench(
    table: &Nb201Table,
    runs: usize,
    budget: usize,
    returns: Returns,
    seed: impl Fn(usize, usize) -> u64 + Sync,
    make: impl Fn(usize) -> Box<dyn Strategy> + Sync,
) -> Vec<Outcome> {
    (0..runs)
        .into_par_iter()
        .map(|r| {
            let mut s = make(r);
            let journal = search(table, s.as_mut(), budget, |t| seed(r, t));
            assert_eq!(
                journal.len(),
                budget,
                "run {r}: the strategy stopped asking"
            );
            outcome(table, &journal, returns)
        })
        .collect()
}

/// The seed means (%) the runs returned.
pub fn finals(runs: &[Outcome]) -> Vec<f64> {
    runs.iter().map(|o| o.final_acc).collect()
}

/// Mean, (population) standard deviation, min and max of a sample.
#[derive(Clone, Copy, Debug)]
pub struct Summary {
    pub n: usize,
    pub mean: f64,
    pub sd: f64,
    pub min: f64,
    pub max: f64,
}

pub fn summary(xs: &[f64]) -> Summary {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    Summary {
        n: xs.len(),
        mean,
        sd: (xs.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt(),
        min: xs.iter().cloned().fold(f64::MAX, f64::min),
        max: xs.iter().cloned().fold(f64::MIN, f64::max),
    }
}

/// Two standard errors of the difference of two means of samples of equal size.
pub fn two_standard_errors(a: &Summary, b: &Summary) -> f64 {
    assert_eq!(a.n, b.n, "samples of different sizes");
    2.0 * ((a.sd * a.sd + b.sd * b.sd) / a.n as f64).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_and_standard_errors() {
        let s = summary(&[1.0, 2.0, 3.0, 6.0]);
        assert_eq!((s.n, s.mean, s.min, s.max), (4, 3.0, 1.0, 6.0));
        assert!((s.sd - 3.5f64.sqrt()).abs() < 1e-12);
        assert!((two_standard_errors(&s, &s) - 2.0 * (7.0f64 / 4.0).sqrt()).abs() < 1e-12);
    }

    #[test]
    fn reached_counts_queries() {
        let o = Outcome {
            final_acc: 0.0,
            queried_optimum: false,
            best_so_far: vec![0.90, 0.91, 0.92, 0.92],
        };
        assert_eq!(o.reached(0.915), Some(3));
        assert_eq!(o.reached(0.90), Some(1));
        assert_eq!(o.reached(0.93), None);
    }
}
