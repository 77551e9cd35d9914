//! The unit tests of `nas_strategy_smash`, kept out of the library so that `cargo test`
//! builds the plugin once.

use nas_strategies::decisions;
use nas_strategies::oneshot::{EpochStrategy, HyperSpec, OneShotSetup, OneShotStrategy, Subset};
use nas_strategies::testing::{fake_setup, picked, refused, run_on_fake, FakeSupernet};
use nas_strategies::{json, Architecture, Value};
use nas_strategy_smash::*;

fn run(f: &mut FakeSupernet, config: Value) -> Architecture {
    run_on_fake::<Smash>(f, config, 5)
}

/// Six layers of four candidates and an input choice: 12,288 architectures, far more
/// than the searches below score.
fn fake() -> FakeSupernet {
    let mut f = FakeSupernet::new(6, 4, 1, 10);
    // Accuracy adds up over the choices; c3 is best everywhere but in op2, where c0
    // is (the optimum is not "the same candidate everywhere").
    f.accuracy = vec![0.1, 0.2, 0.3, 0.4].repeat(6);
    f.accuracy[2 * 4] = 0.9;
    f.accuracy.extend([0.5, 0.5, 0.5]);
    f
}

#[test]
fn the_host_generates_the_weights_from_the_first_step() {
    let mut f = fake();
    run(
        &mut f,
        json!({"hidden": 32, "layers": 3, "block": 4, "samples": 5, "perturbations": 0,
               "markov_steps": 0}),
    );
    let spec = HyperSpec {
        hidden: 32,
        layers: 3,
        block: 4,
        lr: 1e-3,
    };
    // Asked once, before any training step, with the config's HyperNet.
    assert_eq!(f.generated, vec![(spec, 0)]);
    assert_eq!(f.steps, 10, "one step per batch");
    // Every step trains one path: one candidate per layer choice, two inputs of three.
    for mix in &f.mixes {
        for r in f.info.ranges() {
            let on = mix[r.clone()].iter().filter(|&&w| w == 1.0).count();
            let off = mix[r.clone()].iter().filter(|&&w| w == 0.0).count();
            assert_eq!(on + off, r.len(), "{mix:?}");
            assert!(on == 1 || on == 2, "{mix:?}");
        }
    }
}

#[test]
fn hill_climbing_reaches_the_optimum_of_an_additive_score() {
    // From the best of 20 random draws, single-decision perturbations kept only when
    // they score higher must climb to the optimum of a score that adds up over the
    // choices; without the climb the search stops short of it.
    let mut f = fake();
    let arch = run(
        &mut f,
        json!({"samples": 20, "perturbations": 10, "markov_steps": 400}),
    );
    for i in 0..6 {
        assert_eq!(picked(&arch, i), if i == 2 { 0 } else { 3 }, "{arch:?}");
    }
    assert!(f.subsets.iter().all(|s| *s == Subset::Fixed));
    let mut g = fake();
    let short = run(
        &mut g,
        json!({"samples": 20, "perturbations": 0, "markov_steps": 0}),
    );
    assert_ne!(
        short, arch,
        "20 random draws found the optimum: the test is too easy"
    );
    assert_eq!(g.evaluations, 20);
}

#[test]
fn a_perturbation_is_a_new_architecture() {
    let f = fake();
    let setup = fake_setup(&f, json!({"perturb_prob": 0.0}), 3, None);
    let mut s = <Smash as EpochStrategy>::create(&setup).unwrap();
    let d = vec![0, 1, 2, 3, 0, 1, 2];
    for _ in 0..50 {
        let p = s.perturb(&d);
        let changed = p.iter().zip(&d).filter(|(a, b)| a != b).count();
        assert_eq!(changed, 1, "{p:?}");
        let sizes = decisions::sizes(&f.info.choices);
        assert!(p.iter().zip(&sizes).all(|(v, n)| v < n));
    }
    // With probability 1 every decision is redrawn, and still differs as a whole.
    let setup = fake_setup(&f, json!({"perturb_prob": 1.0}), 3, None);
    let mut s = <Smash as EpochStrategy>::create(&setup).unwrap();
    for _ in 0..50 {
        assert_ne!(s.perturb(&d), d);
    }
}

#[test]
fn no_scored_architecture_breaks_a_limit() {
    let mut f = fake();
    // c3 costs 10 multiply-adds, the rest 1: at most 15, so at most one c3.
    f.latency = vec![1.0, 1.0, 1.0, 10.0].repeat(6);
    f.latency.extend([0.0, 0.0, 0.0]);
    let arch = run(
        &mut f,
        json!({"samples": 30, "perturbations": 10, "markov_steps": 300, "max_macs": 15.0}),
    );
    let threes = (0..6).filter(|&i| picked(&arch, i) == 3).count();
    assert!(threes <= 1, "{arch:?}");
    // The best allowed: op2's c0 and one c3, the rest c2.
    assert_eq!(picked(&arch, 2), 0, "{arch:?}");
    assert_eq!(threes, 1, "{arch:?}");
}

#[test]
fn bad_configs_name_the_field() {
    refused::<Smash>(json!({"hidden": 0}), &["`hidden`", "0", "1..=4096"]);
    refused::<Smash>(json!({"layers": 9}), &["`layers`", "9", "1..=8"]);
    refused::<Smash>(json!({"block": 65}), &["`block`", "65"]);
    refused::<Smash>(json!({"samples": 0}), &["`samples`", "0"]);
    refused::<Smash>(json!({"hyper_lr": 0.0}), &["`hyper_lr`", "0"]);
    refused::<Smash>(json!({"perturb_prob": 1.5}), &["`perturb_prob`", "1.5"]);
    refused::<Smash>(json!({"eval_batches": 11}), &["`eval_batches`", "11"]);
    refused::<Smash>(json!({"population": 3}), &["`population`", "smash"]);
}

#[test]
fn resuming_from_a_checkpoint_ends_where_an_uninterrupted_run_does() {
    nas_strategies::testing::check_resume::<Smash>(
        json!({"samples": 6, "perturbations": 3, "markov_steps": 3}),
        || FakeSupernet::new(2, 3, 2, 20),
    );
}

#[test]
fn a_resumed_run_asks_for_the_same_hypernet() {
    // The resumed process's strategy asks again; the host (which restored the
    // HyperNet from its checkpoint) answers the same spec.
    let mut f = FakeSupernet::new(2, 3, 2, 5);
    let mut s = Smash::new(&fake_setup(&f, json!({"samples": 3}), 1, None)).unwrap();
    s.run(&mut f, None).unwrap();
    let first = f.checkpoints[0].clone();
    let mut g = FakeSupernet::new(2, 3, 2, 5);
    let setup = OneShotSetup {
        resume: Some(first.clone()),
        ..fake_setup(&g, json!({"samples": 3}), 1, None)
    };
    Smash::new(&setup)
        .unwrap()
        .run(&mut g, Some(&first))
        .unwrap();
    assert_eq!(g.generated.len(), 1);
    assert_eq!(g.generated[0].0, s.spec);
}
