//! The unit tests of `nas_strategy_darts`, kept out of the library so that `cargo test` builds
//! the plugin once (a test harness inside the library would compile it twice).

use nas_strategies::oneshot::OneShotSetup;
use nas_strategies::{json, Value};
use nas_strategy_darts::*;

#[test]
fn a_warm_up_trains_uniform_paths_before_the_search() {
    nas_strategies::testing::check_warmup::<Darts>(nas_strategies::json!({"arch_lr": 0.05}));
}
use nas_strategies::oneshot::OneShotStrategy;
use nas_strategies::testing::{fake_setup, picked, FakeSupernet};

fn fake(epochs: usize) -> FakeSupernet {
    let mut f = FakeSupernet::new(2, 3, epochs, 100);
    // op0 favours c2, op1 favours c0, the input choice favours inputs 0 and 2.
    f.slope = vec![1.0, 0.5, -1.0, -1.0, 0.5, 1.0, -1.0, 1.0, -0.5];
    f
}

fn setup(f: &FakeSupernet, config: Value, resume: Option<Value>) -> OneShotSetup {
    fake_setup(f, config, 0, resume)
}

#[test]
fn both_orders_follow_the_gradient_to_the_best_candidates() {
    for order in [1, 2] {
        let mut f = fake(1);
        let cfg = json!({"order": order, "arch_lr": 0.05});
        let mut d = <Darts as OneShotStrategy>::new(&setup(&f, cfg, None)).unwrap();
        let arch = d.run(&mut f, None).unwrap();
        assert_eq!(
            (picked(&arch, 0), picked(&arch, 1)),
            (2, 0),
            "order {order}"
        );
        assert_eq!(arch["in"], json!([0, 2]));
        assert_eq!(f.steps, 100);
    }
}

#[test]
fn the_virtual_step_follows_the_learning_rate() {
    use nas_strategies::oneshot::WeightOp;
    let mut f = fake(1);
    let mut d = <Darts as OneShotStrategy>::new(&setup(&f, json!({"order": 2}), None)).unwrap();
    d.run(&mut f, None).unwrap();
    // The fake's rate falls as 0.1 / (1 + steps): each step's virtual step must use
    // the rate of the weight step that follows it.
    let xis: Vec<f32> = f
        .weight_ops
        .iter()
        .filter_map(|op| match op {
            WeightOp::VirtualStep { lr } => Some(*lr),
            _ => None,
        })
        .collect();
    assert_eq!(xis.len(), 100);
    for (k, xi) in xis.iter().enumerate() {
        assert_eq!(*xi, 0.1 / (1 + k) as f32, "step {k}");
    }
    // A fixed `xi` overrides the schedule.
    let mut f = fake(1);
    let cfg = json!({"order": 2, "xi": 0.5});
    let mut d = <Darts as OneShotStrategy>::new(&setup(&f, cfg, None)).unwrap();
    d.run(&mut f, None).unwrap();
    assert!(f
        .weight_ops
        .iter()
        .all(|op| !matches!(op, WeightOp::VirtualStep { lr } if *lr != 0.5)));
}

#[test]
fn resuming_from_a_checkpoint_ends_where_an_uninterrupted_run_does() {
    for order in [1, 2] {
        nas_strategies::testing::check_resume::<Darts>(
            json!({"arch_lr": 0.01, "order": order}),
            || fake(2),
        );
    }
}

#[test]
fn bad_config_names_the_field() {
    let f = fake(1);
    for (cfg, want) in [
        (json!({"order": 3}), "`order`"),
        (json!({"xi": -1.0}), "`xi`"),
        (json!({"arch_lr": 0.0}), "`arch_lr`"),
        (json!({"speed": 1}), "`speed`"),
    ] {
        let e = <Darts as OneShotStrategy>::new(&setup(&f, cfg, None))
            .err()
            .unwrap();
        assert!(e.contains(want), "{e}");
    }
}

#[test]
fn a_node_sums_its_edges_and_the_export_ranks_them_by_their_ops() {
    nas_strategies::testing::check_cell_relaxation::<Darts>(json!({"arch_lr": 0.05}), 100);
}
