//! The unit tests of `nas_strategy_bananas`, kept out of the library so that `cargo test` builds
//! the plugin once (a test harness inside the library would compile it twice).

use nas_strategies::json;
use nas_strategies::testing::{self, layer_space, mixed_space, Objective};
use nas_strategies::{serde_json, Strategy};
use nas_strategy_bananas::*;

#[test]
fn a_bad_config_field_is_named() {
    let space = layer_space(3, 4);
    for (cfg, word) in [
        (json!({"intial": 3}), "intial"),
        (json!({"per_round": 0}), "per_round"),
        (json!({"mutation_prob": 0.0}), "mutation_prob"),
        (json!({"members": 1000}), "members"),
        (json!({"encoding": "paths"}), "encoding"),
        (json!({"race_z": -1.0}), "race_z"),
        (json!({"race_last": 5, "reevaluate_last": 5}), "race_last"),
    ] {
        let e = Bananas::new(&testing::setup(space.clone(), cfg, 0, 10))
            .err()
            .expect("refused");
        assert!(e.contains(word), "{e}");
    }
}

/// On the synthetic objective (the fraction of choices equal to a hidden target) it
/// beats random search at the same budget, with asks in flight, on every choice kind.
#[test]
fn beats_random_search_on_a_synthetic_objective() {
    for space in [layer_space(8, 5), mixed_space()] {
        let (mut ours, mut theirs) = (0.0, 0.0);
        for seed in 0..3 {
            let obj = Objective::new(&space, seed);
            let mut s = Bananas::new(&testing::setup(space.clone(), json!({}), seed, 60)).unwrap();
            ours += testing::run_validating(&mut s, &space, 60, 4, |a| obj.accuracy(a));
            theirs += testing::best(&testing::random_search(&obj, seed, 60));
        }
        assert!(ours > theirs, "{ours} vs random {theirs}");
    }
}

/// A search saved and loaded into a fresh strategy asks what the original asks.
#[test]
fn a_loaded_search_continues_exactly() {
    let space = layer_space(6, 5);
    let obj = Objective::new(&space, 4);
    for cfg in [
        json!({"reevaluate_last": 4, "per_round": 5, "reevaluate_predicted": 2}),
        json!({"per_round": 5, "encoding": "onehot", "polish_last": 8, "race_last": 8}),
    ] {
        continues_exactly(&space, &obj, cfg);
    }
}

fn continues_exactly(
    space: &[nas_strategies::Choice],
    obj: &Objective,
    cfg: nas_strategies::Value,
) {
    let make = || Bananas::new(&testing::setup(space.to_vec(), cfg.clone(), 2, 40)).unwrap();
    let mut a = make();
    for _ in 0..17 {
        let x = a.ask().unwrap().unwrap();
        a.tell(&x, &obj.metrics(&x)).unwrap();
    }
    let text = serde_json::to_string(&a.save().unwrap()).unwrap();
    let mut b = make();
    b.load(serde_json::from_str(&text).unwrap()).unwrap();
    for _ in 0..23 {
        let (x, y) = (a.ask().unwrap().unwrap(), b.ask().unwrap().unwrap());
        assert_eq!(x, y);
        a.tell(&x, &obj.metrics(&x)).unwrap();
        b.tell(&y, &obj.metrics(&y)).unwrap();
    }
}

/// A noisy objective: each architecture's true accuracy (the synthetic objective's) plus
/// a score drawn from `{-n, 0, +n}` by a counter, as a seed of a table would be.
struct Noisy<'a> {
    obj: &'a Objective,
    n: f64,
    count: usize,
}

impl Noisy<'_> {
    fn score(&mut self, a: &nas_strategies::Architecture) -> nas_strategies::Metrics {
        self.count += 1;
        let shift = [-self.n, 0.0, self.n][(self.count * 7 + self.count / 3) % 3];
        testing::metrics(self.obj.accuracy(a) + shift)
    }

    /// Scores `a`, records the score in `told` and tells it to `s`.
    fn tell(&mut self, s: &mut Bananas, told: &mut Told, a: &nas_strategies::Architecture) {
        let m = self.score(a);
        record(told, a, m.accuracy);
        s.tell(a, &m).unwrap();
    }
}

/// What the test keeps of each architecture told: its scores.
type Told = Vec<(String, Vec<f64>)>;

fn record(told: &mut Told, a: &nas_strategies::Architecture, acc: f64) {
    let k = serde_json::to_string(a).unwrap();
    match told.iter_mut().find(|(x, _)| *x == k) {
        Some((_, v)) => v.push(acc),
        None => told.push((k, vec![acc])),
    }
}

fn mean_of(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// Indices into `told`, best mean first (the earlier told on a tie): the host's order.
fn by_mean(told: &Told) -> Vec<usize> {
    let mut order: Vec<usize> = (0..told.len()).collect();
    order.sort_by(|&x, &y| {
        mean_of(&told[y].1)
            .total_cmp(&mean_of(&told[x].1))
            .then(x.cmp(&y))
    });
    order
}

/// Racing (LUCB1): each of the last `race_last` asks is the leader (the best mean score,
/// the earlier told on a tie) or the challenger with the highest upper bound, whichever
/// was scored fewer times; the bound uses the pooled within-architecture noise, computed
/// here from the scores the test told.
#[test]
fn racing_asks_the_leader_or_its_strongest_challenger() {
    let space = layer_space(4, 4);
    let obj = Objective::new(&space, 5);
    let (budget, race) = (40, 15);
    let cfg = json!({"initial": 12, "per_round": 4, "race_last": race, "race_z": 2.0});
    let mut s = Bananas::new(&testing::setup(space.clone(), cfg, 3, budget)).unwrap();
    let mut noisy = Noisy {
        obj: &obj,
        n: 0.05,
        count: 0,
    };
    let mut told: Told = vec![];
    let (mut leader_asks, mut challenger_asks) = (0, 0);
    for t in 0..budget {
        let a = s.ask().unwrap().expect("an architecture");
        if t >= budget - race {
            let k = serde_json::to_string(&a).unwrap();
            let order = by_mean(&told);
            let lead = order[0];
            let (ss, dof) =
                told.iter()
                    .filter(|(_, v)| v.len() > 1)
                    .fold((0.0, 0), |(ss, d), (_, v)| {
                        let m = mean_of(v);
                        (
                            ss + v.iter().map(|x| (x - m).powi(2)).sum::<f64>(),
                            d + v.len() - 1,
                        )
                    });
            let sigma = if dof > 0 {
                (ss / dof as f64).sqrt()
            } else {
                0.0
            };
            let bound =
                |i: usize| mean_of(&told[i].1) + 2.0 * sigma / (told[i].1.len() as f64).sqrt();
            let top = order[1..]
                .iter()
                .map(|&i| bound(i))
                .fold(f64::MIN, f64::max);
            let i = told
                .iter()
                .position(|(x, _)| *x == k)
                .expect("a race asks a told architecture");
            if i == lead {
                leader_asks += 1;
            } else {
                assert!(
                    (bound(i) - top).abs() < 1e-12,
                    "ask {t}: a challenger whose bound {} is not the highest, {top}",
                    bound(i)
                );
                assert!(
                    told[i].1.len() < told[lead].1.len(),
                    "ask {t}: the challenger has as many scores as the leader"
                );
                challenger_asks += 1;
            }
        }
        noisy.tell(&mut s, &mut told, &a);
    }
    assert!(
        leader_asks > 0 && challenger_asks > 0,
        "{leader_asks} leader and {challenger_asks} challenger asks"
    );
}

/// Polishing: each of the `polish_last` asks before the race is a neighbour (one choice
/// changed) of the leader at that moment, never asked before, while it has one (here it
/// always has).
#[test]
fn polishing_asks_the_leaders_unasked_neighbours() {
    let space = layer_space(6, 5);
    let obj = Objective::new(&space, 6);
    let (budget, polish, race) = (40, 10, 6);
    // Rounds' mutants change every choice, so only polishing asks a neighbour.
    let cfg = json!({"initial": 10, "per_round": 5, "mutation_prob": 1.0,
                     "polish_last": polish, "race_last": race});
    let mut s = Bananas::new(&testing::setup(space.clone(), cfg, 1, budget)).unwrap();
    let mut noisy = Noisy {
        obj: &obj,
        n: 0.02,
        count: 0,
    };
    let mut told: Told = vec![];
    let mut polished = 0;
    for t in 0..budget {
        let a = s.ask().unwrap().expect("an architecture");
        let d = nas_strategies::decisions::from_arch(&space, &a).unwrap();
        if (budget - polish - race..budget - race).contains(&t) {
            let order = by_mean(&told);
            let lead: nas_strategies::Architecture =
                serde_json::from_str(&told[order[0]].0).unwrap();
            let l = nas_strategies::decisions::from_arch(&space, &lead).unwrap();
            let k = serde_json::to_string(&a).unwrap();
            let fresh = !told.iter().any(|(x, _)| *x == k);
            let differ = l.iter().zip(&d).filter(|(x, y)| x != y).count();
            assert!(fresh, "ask {t}: polishing asked a told architecture");
            let told_d = |m: &[usize]| {
                told.iter().any(|(x, _)| {
                    let a: nas_strategies::Architecture = serde_json::from_str(x).unwrap();
                    nas_strategies::decisions::from_arch(&space, &a).unwrap() == m
                })
            };
            let has_new_neighbour = (0..l.len()).any(|i| {
                (0..space[i].size()).any(|o| {
                    let mut m = l.clone();
                    m[i] = o;
                    o != l[i] && !told_d(&m)
                })
            });
            if has_new_neighbour {
                assert_eq!(
                    differ, 1,
                    "ask {t}: not a neighbour of the leader {l:?}: {d:?}"
                );
                polished += 1;
            }
        }
        noisy.tell(&mut s, &mut told, &a);
    }
    assert!(
        polished == polish,
        "only {polished} of {polish} polishing asks had a neighbour to ask"
    );
}

/// A saved observation whose decision is past its choice's options panicked in the
/// encoder at the next ask ("index out of bounds"); it is refused as the state loads.
#[test]
fn a_saved_decision_past_its_choice_is_refused() {
    let space = layer_space(3, 5);
    let obj = Objective::new(&space, 1);
    let mut a = Bananas::new(&testing::setup(space.clone(), json!({}), 1, 30)).unwrap();
    testing::run_validating(&mut a, &space, 12, 1, |x| obj.accuracy(x));
    let mut state = a.save().unwrap();
    state["entries"][0]["decisions"][0] = json!(5);
    let e = Bananas::new(&testing::setup(space.clone(), json!({}), 1, 30))
        .unwrap()
        .load(state)
        .unwrap_err();
    assert!(e.contains("not of this space"), "{e}");
}

/// A failed trial (no result) is not in the ensemble's data: its accuracy 0 beside real
/// ones pulled the fit (as in PNAS, NAO and DPP-Net, which leave it out).
#[test]
fn a_failed_trial_is_not_fitted_on() {
    let space = layer_space(3, 5);
    let obj = Objective::new(&space, 2);
    let mut s = Bananas::new(&testing::setup(space.clone(), json!({}), 2, 30)).unwrap();
    let mut failed = None;
    for k in 0..12 {
        let a = s.ask().unwrap().unwrap();
        if k == 5 {
            s.tell(&a, &nas_strategies::Metrics::failed("node lost"))
                .unwrap();
            failed = Some(nas_strategies::decisions::from_arch(&space, &a).unwrap());
        } else {
            s.tell(&a, &obj.metrics(&a)).unwrap();
        }
    }
    let rows = s.fitted_on().unwrap();
    assert_eq!(rows.len(), 11);
    assert!(!rows.contains(&failed.unwrap()));
    // And it survives a save.
    let mut b = Bananas::new(&testing::setup(space.clone(), json!({}), 2, 30)).unwrap();
    b.load(s.save().unwrap()).unwrap();
    assert_eq!(b.fitted_on().unwrap().len(), 11);
}
