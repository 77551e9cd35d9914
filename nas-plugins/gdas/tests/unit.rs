//! The unit tests of `nas_strategy_gdas`, kept out of the library so that `cargo test` builds
//! the plugin once (a test harness inside the library would compile it twice).

use nas_strategies::oneshot::EpochStrategy;
use nas_strategy_gdas::*;

#[test]
fn a_warm_up_trains_uniform_paths_before_the_search() {
    nas_strategies::testing::check_warmup::<Gdas>(nas_strategies::json!({"arch_lr": 0.05}));
}
use nas_strategies::json;
use nas_strategies::testing::{picked, run_on_fake, FakeSupernet};

#[test]
fn hard_paths_train_one_candidate_and_the_logits_find_the_best() {
    let mut f = FakeSupernet::new(2, 3, 1, 300);
    f.slope = vec![1.0, 1.0, -1.0, -1.0, 1.0, 1.0, -1.0, 1.0, -1.0];
    let info = f.info.clone();
    let (hard, soft) = hard_sample(&info, &[0.0, 3.0, 1.0, 0.0, 0.0, 0.0, 2.0, 0.0, 1.0], 1.0);
    assert_eq!(hard, vec![0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 1.0]);
    assert!((soft[..3].iter().sum::<f32>() - 1.0).abs() < 1e-6);
    let arch = run_on_fake::<Gdas>(&mut f, json!({"arch_lr": 0.05}), 2);
    assert_eq!((picked(&arch, 0), picked(&arch, 1)), (2, 0));
    assert_eq!(arch["in"], json!([0, 2]));
}

#[test]
fn unchosen_gates_reach_the_logits_through_their_bare_term() {
    // Every op's own gradient is 0; only the bare gates of the unchosen ops carry
    // one. Without them (the host's `mix_grad`) no logit would move.
    for gate in [0.0, 1.0] {
        let mut f = FakeSupernet::new(2, 3, 1, 20);
        f.gate = gate;
        let setup = nas_strategies::testing::fake_setup(&f, json!({"arch_lr": 0.05}), 3, None);
        let mut s = Gdas::create(&setup).unwrap();
        for step in 0..20 {
            s.step(&mut f, 0, step).unwrap();
        }
        assert_eq!(f.gate_grads, 20);
        let moved = s
            .state
            .arch
            .alpha
            .iter()
            .fold(0.0f32, |m, a| m.max(a.abs()));
        if gate == 0.0 {
            assert_eq!(moved, 0.0);
        } else {
            assert!(moved > 0.01, "the logits moved by {moved}");
        }
    }
}

#[test]
fn a_node_sums_its_edges_and_the_export_ranks_them_by_their_ops() {
    nas_strategies::testing::check_cell_relaxation::<Gdas>(json!({"arch_lr": 0.05}), 200);
}

#[test]
fn resuming_from_a_checkpoint_ends_where_an_uninterrupted_run_does() {
    nas_strategies::testing::check_resume::<Gdas>(json!({"arch_lr": 0.05}), || {
        nas_strategies::testing::FakeSupernet::new(2, 3, 2, 100)
    });
}

/// In a space whose cells have edges with op choices (the `darts` space's kind) the
/// reference's cell gives unchosen ops no gradient, so the host's plain `mix_grad` is
/// asked, never `gate_grad`; elsewhere every step asks `gate_grad`. Before, every space
/// got the bare gates of the reference's NAS-Bench-201 cell.
#[test]
fn cell_edges_get_no_bare_gates() {
    let mut f = FakeSupernet::cell(1, 20);
    f.gate = 1.0;
    let setup = nas_strategies::testing::fake_setup(&f, json!({"arch_lr": 0.05}), 3, None);
    let mut s = Gdas::create(&setup).unwrap();
    assert!(!s.bare_gates);
    for step in 0..20 {
        s.step(&mut f, 0, step).unwrap();
    }
    assert_eq!(f.gate_grads, 0);
    let f = FakeSupernet::new(2, 3, 1, 20);
    let setup = nas_strategies::testing::fake_setup(&f, json!({}), 3, None);
    assert!(Gdas::create(&setup).unwrap().bare_gates);
}
