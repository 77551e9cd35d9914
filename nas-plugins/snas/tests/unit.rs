//! The unit tests of `nas_strategy_snas`, kept out of the library so that `cargo test` builds
//! the plugin once (a test harness inside the library would compile it twice).

use nas_strategy_snas::*;

#[test]
fn a_warm_up_trains_uniform_paths_before_the_search() {
    nas_strategies::testing::check_warmup::<Snas>(nas_strategies::json!({"arch_lr": 0.05}));
}
use nas_strategies::json;
use nas_strategies::testing::{picked, run_on_fake, FakeSupernet};

#[test]
fn relaxed_samples_follow_the_gradient_to_the_best_candidates() {
    let mut f = FakeSupernet::new(2, 3, 1, 200);
    f.slope = vec![1.0, 0.5, -1.0, -1.0, 0.5, 1.0, -1.0, 1.0, -0.5];
    let arch = run_on_fake::<Snas>(&mut f, json!({"arch_lr": 0.05}), 1);
    assert_eq!((picked(&arch, 0), picked(&arch, 1)), (2, 0));
    assert_eq!(arch["in"], json!([0, 2]));
}

#[test]
fn a_node_sums_its_edges_and_the_export_ranks_them_by_their_ops() {
    nas_strategies::testing::check_cell_relaxation::<Snas>(json!({"arch_lr": 0.05}), 200);
}

#[test]
fn resuming_from_a_checkpoint_ends_where_an_uninterrupted_run_does() {
    nas_strategies::testing::check_resume::<Snas>(json!({"arch_lr": 0.05}), || {
        nas_strategies::testing::FakeSupernet::new(2, 3, 2, 100)
    });
}
