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

/// The log resource penalty's gradient against central finite differences, for each
/// cost it can weigh, on random samples and costs; a choice whose sampled cost is
/// under 1 adds neither penalty nor gradient (the reference's clamp).
#[test]
fn the_resource_penalty_gradient_matches_finite_differences() {
    use nas_strategies::OpCost;
    let f = FakeSupernet::new(3, 4, 1, 10);
    let info = &f.info;
    let mut rng = nas_strategies::Rng::new(7);
    for which in [
        Resource::All,
        Resource::Params,
        Resource::Macs,
        Resource::Memory,
    ] {
        for _ in 0..5 {
            let costs: Vec<OpCost> = (0..info.len())
                .map(|i| {
                    // The third choice's candidates cost under 1: clamped.
                    let scale = if (8..12).contains(&i) { 0.02 } else { 1000.0 };
                    OpCost {
                        params: scale * rng.uniform() as f64,
                        macs: scale * 10.0 * rng.uniform() as f64,
                        memory: scale * (1.0 + rng.uniform() as f64),
                    }
                })
                .collect();
            let mix: Vec<f32> = (0..info.len()).map(|_| 0.05 + rng.uniform()).collect();
            let (p, g) = resource_penalty(info, &costs, &mix, which);
            assert!(p > 0.0, "{which:?}: penalty {p}");
            for i in 0..mix.len() {
                let h = 5e-2 * mix[i];
                let mut up = mix.clone();
                up[i] += h;
                let mut down = mix.clone();
                down[i] -= h;
                let fd = (resource_penalty(info, &costs, &up, which).0
                    - resource_penalty(info, &costs, &down, which).0)
                    / (2.0 * h);
                assert!(
                    (fd - g[i]).abs() <= 5e-3 * g[i].abs().max(0.05),
                    "{which:?} weight {i}: gradient {} against finite differences {fd}",
                    g[i]
                );
                if i >= 8 {
                    // The clamped choice and the input choice: nothing.
                    assert_eq!(g[i], 0.0, "{which:?} weight {i}");
                }
            }
        }
    }
}

/// The paper's constraint at its default weight (1e-2) turns a search whose loss
/// slightly prefers an expensive candidate to the cheap one; without it (weight 0)
/// the loss's choice stands. Before the constraint was built SNAS ignored costs.
#[test]
fn the_resource_constraint_moves_the_search_to_cheap_candidates() {
    use nas_strategies::OpCost;
    let fake = || {
        let mut f = FakeSupernet::new(2, 3, 1, 200);
        // Each layer: c0 slightly lowers the loss; c2 costs a hundredth of the others.
        f.slope = vec![-0.01, 0.0, 0.0, -0.01, 0.0, 0.0, 0.0, 0.0, 0.0];
        let dear = OpCost {
            params: 1000.0,
            macs: 1000.0,
            memory: 1000.0,
        };
        let cheap = OpCost {
            params: 10.0,
            macs: 10.0,
            memory: 10.0,
        };
        f.costs = vec![
            dear,
            dear,
            cheap,
            dear,
            dear,
            cheap,
            OpCost::default(),
            OpCost::default(),
            OpCost::default(),
        ];
        f
    };
    let arch = run_on_fake::<Snas>(&mut fake(), json!({"arch_lr": 0.05}), 1);
    assert_eq!((picked(&arch, 0), picked(&arch, 1)), (2, 2), "{arch:?}");
    let arch = run_on_fake::<Snas>(
        &mut fake(),
        json!({"arch_lr": 0.05, "resource_lambda": 0}),
        1,
    );
    assert_eq!((picked(&arch, 0), picked(&arch, 1)), (0, 0), "{arch:?}");
    // Weighing only parameters: the same costs, the same pick.
    let arch = run_on_fake::<Snas>(
        &mut fake(),
        json!({"arch_lr": 0.05, "resource": "params"}),
        1,
    );
    assert_eq!((picked(&arch, 0), picked(&arch, 1)), (2, 2), "{arch:?}");
}

#[test]
fn the_temperature_falls_linearly_over_the_search() {
    let f = FakeSupernet::new(2, 3, 2, 100);
    use nas_strategies::oneshot::EpochStrategy;
    let s = Snas::create(&nas_strategies::testing::fake_setup(&f, json!({}), 0, None)).unwrap();
    let (first, mid, last) = (s.tau(0, 0), s.tau(1, 0), s.tau(1, 99));
    // As the reference's schedule, stepped before each epoch: one step below the top
    // at the first step, the bottom at the last (it ended one step above it).
    assert!((first - (1.0 - 0.97 / 200.0)).abs() < 1e-6, "{first}");
    assert!((mid - (1.0 + 0.03) / 2.0).abs() < 0.01, "{mid}");
    assert!((last - 0.03).abs() < 1e-6, "{last}");
}

#[test]
fn the_logits_gradient_is_clipped_at_its_norm() {
    let mut g = vec![30.0, 40.0];
    clip_norm(&mut g, 10.0);
    assert!(
        (g[0] - 6.0).abs() < 1e-5 && (g[1] - 8.0).abs() < 1e-5,
        "{g:?}"
    );
    let mut g = vec![3.0, 4.0];
    clip_norm(&mut g, 10.0);
    assert_eq!(g, vec![3.0, 4.0]);
    clip_norm(&mut g, 0.0);
    assert_eq!(g, vec![3.0, 4.0]);
}

#[test]
fn bad_settings_are_refused() {
    use nas_strategies::testing::refused;
    refused::<Snas>(json!({"resource_lambda": -1}), &["resource_lambda", "-1"]);
    refused::<Snas>(json!({"resource": "flops"}), &["resource", "flops", "macs"]);
    refused::<Snas>(json!({"arch_grad_clip": -2}), &["arch_grad_clip", "-2"]);
}

/// The search asks the host to drop paths at the reference's 0.3 once (also after a
/// resume, whose fresh instance asks again), at the configured probability, and not at
/// all when it is 0; a probability of 1 or more is refused.
#[test]
fn training_steps_drop_paths_as_configured() {
    let mut f = FakeSupernet::new(2, 3, 1, 20);
    run_on_fake::<Snas>(&mut f, json!({}), 0);
    assert_eq!(f.drop_paths, vec![0.3]);
    let mut f = FakeSupernet::new(2, 3, 1, 20);
    run_on_fake::<Snas>(&mut f, json!({"drop_path": 0.1}), 0);
    assert_eq!(f.drop_paths, vec![0.1]);
    let mut f = FakeSupernet::new(2, 3, 1, 20);
    run_on_fake::<Snas>(&mut f, json!({"drop_path": 0}), 0);
    assert!(f.drop_paths.is_empty());
    nas_strategies::testing::refused::<Snas>(json!({"drop_path": 1}), &["drop_path", "1"]);
}
