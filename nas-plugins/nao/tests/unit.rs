//! The unit tests of `nas_strategy_nao`, kept out of the library so that `cargo test` builds
//! the plugin once (a test harness inside the library would compile it twice).

use nas_core::Rng;
use nas_predict::kendall_tau;
use nas_strategies::decisions;
use nas_strategies::serde_json;
use nas_strategies::testing::{
    best, drive, layer_space, mean, mixed_space, random_search, setup, Objective,
};
use nas_strategies::{json, Choice, Strategy, Value};
use nas_strategy_nao::*;
use std::collections::HashSet;

/// A small, quick configuration for tests on synthetic spaces.
fn quick() -> Value {
    json!({"initial": 20, "per_round": 10, "epochs": 60, "hidden": 16, "emb": 8, "lr": 0.02})
}

fn make(space: Vec<Choice>, config: Value, seed: u64, budget: usize) -> Nao {
    Nao::new(&setup(space, config, seed, budget)).unwrap()
}

#[test]
fn asks_are_valid_and_new_on_a_mixed_space_with_asks_in_flight() {
    let space = mixed_space();
    let obj = Objective::new(&space, 8);
    let mut s = make(space.clone(), quick(), 8, 60);
    let accs = drive(&mut s, &obj, 60, 4);
    assert_eq!(accs.len(), 60);
    assert!(s.pending.is_empty());
    assert!(s.rounds >= 3, "{} rounds", s.rounds);
    let keys: HashSet<String> = s.history.iter().map(|(d, _)| s.key(d)).collect();
    assert_eq!(keys.len(), 60, "an architecture was asked twice");
}

#[test]
fn the_model_learns_to_reconstruct_and_rank() {
    let space = layer_space(6, 4);
    let obj = Objective::new(&space, 3);
    let mut s = make(space.clone(), json!({"epochs": 300}), 3, 150);
    let mut rng = Rng::new(9);
    let draw = |rng: &mut Rng| {
        let a = nas_strategies::random_architecture(&space, rng);
        decisions::from_arch(&space, &a).unwrap()
    };
    for _ in 0..100 {
        let d = draw(&mut rng);
        let acc = obj.accuracy(&decisions::to_arch(&space, &d));
        s.history.push((d, acc));
    }
    s.train();
    let rows: Vec<Vec<usize>> = s.history.iter().map(|h| h.0.clone()).collect();
    let back = s.model().reconstruct(&rows);
    let same = back.iter().zip(&rows).filter(|(a, b)| a == b).count();
    let agree = back
        .iter()
        .zip(&rows)
        .map(|(a, b)| a.iter().zip(b).filter(|(x, y)| x == y).count())
        .sum::<usize>();
    eprintln!("{same} of 100 reconstructed exactly, {agree} of 600 decisions");
    // Untrained, one in 4^6 would come back whole and a quarter of the decisions.
    assert!(same >= 80, "{same} of 100 reconstructed exactly");
    assert!(agree >= 540, "{agree} of 600 decisions reconstructed");
    let test: Vec<Vec<usize>> = (0..300).map(|_| draw(&mut rng)).collect();
    let truth: Vec<f64> = test
        .iter()
        .map(|d| obj.accuracy(&decisions::to_arch(&space, d)))
        .collect();
    let pred: Vec<f64> = s.predict(&test).iter().map(|&p| p as f64).collect();
    let tau = kendall_tau(&pred, &truth);
    // A weak ranker on this objective (measured 0.17), but a ranker: chance is 0.
    assert!(tau > 0.1, "held-out Kendall tau {tau:.3}");
}

#[test]
fn moving_up_the_gradient_raises_the_prediction() {
    let space = layer_space(6, 4);
    let obj = Objective::new(&space, 4);
    let mut s = make(space.clone(), quick(), 4, 100);
    drive(&mut s, &obj, 40, 1);
    s.train();
    let seeds: Vec<Vec<usize>> = s.history.iter().take(20).map(|h| h.0.clone()).collect();
    let a = s.model().ascend(&seeds);
    assert!(a.grad.iter().any(|g| *g != 0.0));
    // Decoded far enough up the gradient, the seeds become architectures the
    // predictor rates higher.
    let before = mean(&a.predicted.iter().map(|&p| p as f64).collect::<Vec<_>>());
    let moved = s.model().decode_moved(&a, 20.0);
    let after = mean(
        &s.predict(&moved)
            .iter()
            .map(|&p| p as f64)
            .collect::<Vec<_>>(),
    );
    assert!(
        after > before,
        "predicted {after:.3} after the move, {before:.3} before"
    );
    // At step 0 the decoder gives back (almost) the seeds themselves.
    let back = s.model().decode_moved(&a, 0.0);
    let same = back.iter().zip(&seeds).filter(|(x, y)| x == y).count();
    assert!(same >= 15, "{same} of 20 seeds decoded back");
}

#[test]
fn beats_random_search_at_equal_budget() {
    let space = layer_space(6, 4);
    let (mut ours, mut rand) = (vec![], vec![]);
    for seed in 0..6 {
        let obj = Objective::new(&space, 300 + seed);
        let config = json!({"initial": 20, "per_round": 20, "epochs": 60, "hidden": 16,
                            "emb": 8, "lr": 0.02});
        let mut s = make(space.clone(), config, seed, 100);
        ours.push(best(&drive(&mut s, &obj, 100, 1)));
        rand.push(best(&random_search(&obj, seed, 100)));
    }
    let (o, r) = (mean(&ours), mean(&rand));
    eprintln!("nao best {o:.3} vs random {r:.3}");
    assert!(o > r + 0.05, "nao {o:.3} vs random {r:.3}");
}

#[test]
fn a_small_space_runs_out_and_says_so() {
    let space = layer_space(2, 2);
    let obj = Objective::new(&space, 2);
    let mut s = make(space, json!({"initial": 2, "epochs": 5}), 2, 10);
    assert_eq!(drive(&mut s, &obj, 4, 1).len(), 4);
    assert!(s.ask().unwrap().is_none());
}

#[test]
fn save_new_load_continues_the_same() {
    let space = mixed_space();
    let obj = Objective::new(&space, 6);
    let mut a = make(space.clone(), quick(), 6, 80);
    drive(&mut a, &obj, 35, 1);
    let inflight = a.ask().unwrap().unwrap();
    let text = serde_json::to_string(&a.save().unwrap()).unwrap();
    let mut b = make(space.clone(), quick(), 66, 80);
    b.load(serde_json::from_str(&text).unwrap()).unwrap();
    let probe: Vec<Vec<usize>> = a.history.iter().map(|h| h.0.clone()).collect();
    assert_eq!(a.predict(&probe), b.predict(&probe));
    assert_eq!(a.history, b.history);
    for s in [&mut a, &mut b] {
        s.tell(&inflight, &obj.metrics(&inflight)).unwrap();
    }
    // The rest of the queue and the rounds after it (trained from the restored
    // weights) come out the same.
    let rounds = a.rounds;
    for _ in 0..25 {
        let (x, y) = (a.ask().unwrap().unwrap(), b.ask().unwrap().unwrap());
        assert_eq!(x, y);
        a.tell(&x, &obj.metrics(&x)).unwrap();
        b.tell(&y, &obj.metrics(&y)).unwrap();
    }
    assert!(a.rounds > rounds, "the comparison crossed a round");
    let e = b.load(json!({"weights": [[1.0]]})).err().unwrap();
    assert!(e.contains("weight"), "{e}");
}

#[test]
fn a_tell_it_did_not_ask_is_an_error() {
    let space = layer_space(3, 3);
    let mut s = make(space.clone(), quick(), 1, 10);
    let a = s.ask().unwrap().unwrap();
    let mut other = a.clone();
    let k = other.keys().next().unwrap().clone();
    let v = if other[&k] == "c0" { "c1" } else { "c0" };
    other.insert(k, Value::from(v));
    let e = s
        .tell(&other, &nas_strategies::testing::metrics(0.5))
        .err()
        .unwrap();
    assert!(e.contains("did not ask"), "{e}");
}

#[test]
fn bad_config_names_the_field_and_range() {
    let sp = layer_space(2, 2);
    for (c, want) in [
        (json!({"per_round": 0}), "`per_round`"),
        (json!({"seeds": 100001}), "1..=100000"),
        (json!({"hidden": 2000}), "`hidden`"),
        (json!({"lr": 1.5}), "`lr`"),
        (json!({"trade_off": 1.2}), "`trade_off`"),
        (json!({"grad_clip": -1.0}), "`grad_clip`"),
        (json!({"weight_decay": -1e-4}), "`weight_decay`"),
        (json!({"max_step": "x"}), "`max_step`"),
        (json!({"step": 3}), "`step`"),
    ] {
        let e = Nao::new(&setup(sp.clone(), c.clone(), 0, 10))
            .err()
            .unwrap_or_else(|| panic!("{c} accepted"));
        assert!(e.contains(want), "{c}: {e}");
    }
}

/// A failed trial (the host tells it as accuracy 0) is no result to learn from: it was
/// the minimum of the scaled targets and squeezed every real accuracy into the top of
/// the range. It is not asked again either.
#[test]
fn a_failed_trial_is_no_result_and_not_asked_again() {
    let space = layer_space(3, 3);
    let mut s = make(space.clone(), quick(), 2, 20);
    let a = s.ask().unwrap().unwrap();
    s.tell(&a, &nas_strategies::Metrics::failed("out of memory"))
        .unwrap();
    assert!(s.history.is_empty() && s.pending.is_empty());
    let failed = s.key(&decisions::from_arch(&space, &a).unwrap());
    for _ in 0..15 {
        let b = s.ask().unwrap().unwrap();
        assert_ne!(s.key(&decisions::from_arch(&space, &b).unwrap()), failed);
        s.tell(&b, &nas_strategies::testing::metrics(0.5)).unwrap();
    }
    assert_eq!(s.history.len(), 15);
}
