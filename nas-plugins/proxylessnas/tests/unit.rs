//! The unit tests of `nas_strategy_proxylessnas`, kept out of the library so that `cargo test` builds
//! the plugin once (a test harness inside the library would compile it twice).

use nas_strategies::oneshot::EpochStrategy;
use nas_strategies::{json, Architecture, Value};
use nas_strategy_proxylessnas::*;

#[test]
fn a_warm_up_trains_uniform_paths_before_the_search() {
    nas_strategies::testing::check_warmup::<Proxyless>(nas_strategies::json!({"arch_lr": 0.05}));
}
use nas_strategies::testing::{fake_setup, picked, run_on_fake, FakeSupernet};

fn run(f: &mut FakeSupernet, config: Value) -> Architecture {
    run_on_fake::<Proxyless>(f, config, 3)
}

#[test]
fn two_path_gradients_find_the_best_candidates() {
    let mut f = FakeSupernet::new(2, 3, 1, 300);
    f.slope = vec![1.0, 0.5, -1.0, -1.0, 0.5, 1.0, -1.0, 1.0, -0.5];
    let arch = run(&mut f, json!({"latency_weight": 0.0, "arch_lr": 0.05}));
    assert_eq!((picked(&arch, 0), picked(&arch, 1)), (2, 0));
    assert_eq!(arch["in"], json!([0, 2]));
}

#[test]
fn the_latency_term_moves_to_faster_candidates() {
    let mut f = FakeSupernet::new(2, 3, 1, 300);
    f.latency = vec![5.0, 1.0, 9.0, 2.0, 8.0, 8.0, 0.0, 0.0, 0.0];
    let arch = run(&mut f, json!({"latency_weight": 1.0, "arch_lr": 0.05}));
    assert_eq!((picked(&arch, 0), picked(&arch, 1)), (1, 0));
}

/// Two layer choices of five candidates (each architecture step leaves three of
/// each out) and a 2-of-3 input choice, with slopes and latencies everywhere, and
/// a strategy that has taken `warm` steps (so every logit has moments).
fn warmed(warm: usize) -> (FakeSupernet, Proxyless) {
    let mut f = FakeSupernet::new(2, 5, 1, 100);
    f.slope = vec![
        0.3, -0.2, 0.5, -0.7, 0.1, -0.4, 0.6, 0.2, -0.1, 0.3, -0.5, 0.4, 0.2,
    ];
    f.latency = vec![
        3.0, 1.0, 4.0, 1.5, 5.0, 9.0, 2.0, 6.0, 5.0, 3.0, 1.0, 2.0, 3.0,
    ];
    let config = json!({"latency_weight": 0.5, "arch_lr": 0.05});
    let mut s = Proxyless::create(&fake_setup(&f, config, 11, None)).unwrap();
    for i in 0..warm {
        s.step(&mut f, 0, i).unwrap();
    }
    (f, s)
}

/// The weights the last architecture step involved: those its mix kept on.
fn involved(f: &FakeSupernet) -> Vec<bool> {
    let mix = f.mixes.last().unwrap();
    mix.iter().map(|w| w.to_bits() != 0).collect()
}

#[test]
fn a_step_leaves_the_logits_and_moments_of_unpicked_candidates_as_they_were() {
    let (mut f, mut s) = warmed(30);
    let mut unpicked_with_momentum = 0;
    for i in 0..40 {
        let (alpha, m, v, t) = (
            s.state.arch.alpha.clone(),
            s.adam.m.clone(),
            s.adam.v.clone(),
            s.adam.t.clone(),
        );
        s.step(&mut f, 0, 30 + i).unwrap();
        let inv = involved(&f);
        assert!(inv.iter().any(|&b| !b), "every weight was involved");
        for j in 0..alpha.len() {
            if inv[j] {
                assert_eq!(s.adam.t[j], t[j] + 1, "step {i}: weight {j} took no step");
                continue;
            }
            unpicked_with_momentum += (m[j] != 0.0) as usize;
            assert_eq!(
                s.state.arch.alpha[j].to_bits(),
                alpha[j].to_bits(),
                "step {i}: logit {j} was not picked but moved"
            );
            assert_eq!(s.adam.m[j].to_bits(), m[j].to_bits(), "step {i}: m[{j}]");
            assert_eq!(s.adam.v[j].to_bits(), v[j].to_bits(), "step {i}: v[{j}]");
            assert_eq!(s.adam.t[j], t[j], "step {i}: t[{j}]");
        }
    }
    // The check is not vacuous: unpicked logits had momentum to move them.
    assert!(unpicked_with_momentum > 20, "{unpicked_with_momentum}");
}

#[test]
fn a_step_keeps_the_log_sum_exp_of_the_picked_logits_of_each_choice() {
    let (mut f, mut s) = warmed(30);
    let ranges = f.info.ranges();
    for i in 0..40 {
        let before = s.state.arch.alpha.clone();
        s.step(&mut f, 0, 30 + i).unwrap();
        let inv = involved(&f);
        let after = &s.state.arch.alpha;
        for r in &ranges {
            let idx: Vec<usize> = (0..r.len()).filter(|&j| inv[r.start + j]).collect();
            assert!(idx.len() >= 2, "step {i}: group {r:?} involved {idx:?}");
            let old = log_sum_exp(&before, r.start, &idx);
            let new = log_sum_exp(after, r.start, &idx);
            assert!((old - new).abs() < 1e-5, "step {i}, {r:?}: {old} -> {new}");
            // The split among them does move.
            assert!(idx
                .iter()
                .any(|&j| after[r.start + j] != before[r.start + j]));
        }
    }
}

#[test]
fn a_saved_state_resumes_to_the_same_steps() {
    let (mut f, mut s) = warmed(25);
    let saved = nas_strategies::serde_json::to_string(&s.save().unwrap()).unwrap();
    let mut resumed = Proxyless::create(&fake_setup(&f, json!({}), 0, None)).unwrap();
    resumed
        .load(nas_strategies::serde_json::from_str(&saved).unwrap())
        .unwrap();
    // `latency_weight` is config, not state: the resumed run has its own.
    resumed.latency_weight = s.latency_weight;
    // The table was timed once; timed again on resuming it would differ (it was not
    // saved, and a resumed run went another way).
    f.latency = f.latency.iter().map(|l| 2.0 * l + 1.0).collect();
    for i in 0..10 {
        s.step(&mut f, 0, 25 + i).unwrap();
        resumed.step(&mut f, 0, 25 + i).unwrap();
    }
    assert_eq!(s.state.arch.alpha, resumed.state.arch.alpha);
    assert_eq!(s.adam.m, resumed.adam.m);
    assert_eq!(s.adam.v, resumed.adam.v);
    assert_eq!(s.adam.t, resumed.adam.t);
    // A state without the moments is refused.
    let mut bare: Value = nas_strategies::serde_json::from_str(&saved).unwrap();
    bare.as_object_mut().unwrap().remove("masked_adam");
    assert!(resumed.load(bare).is_err());
}

#[test]
fn a_node_sums_its_edges_and_the_export_ranks_them_by_their_ops() {
    nas_strategies::testing::check_cell_relaxation::<Proxyless>(
        json!({"latency_weight": 0.0, "arch_lr": 0.05}),
        300,
    );
}

#[test]
fn resuming_from_a_checkpoint_ends_where_an_uninterrupted_run_does() {
    nas_strategies::testing::check_resume::<Proxyless>(json!({"arch_lr": 0.05}), || {
        FakeSupernet::new(2, 3, 2, 100)
    });
}
