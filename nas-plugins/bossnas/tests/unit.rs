//! The unit tests of `nas_strategy_bossnas`, kept out of the library so that `cargo test`
//! builds the plugin once.

use nas_strategies::oneshot::{EpochStrategy, FEATURES};
use nas_strategies::testing::{fake_setup, picked, refused, run_on_fake, FakeSupernet};
use nas_strategies::{json, Value};
use nas_strategy_bossnas::*;

/// Four layer choices of three candidates and an input choice, labelled as two blocks:
/// `b0/op0`, `b0/op1` and `b1/op2`, `b1/op3`, `b1/in`. Accuracy (the fake's score of a
/// path) adds up over the choices; the best candidate differs between layers.
fn two_blocks(epochs: usize, batches: usize) -> FakeSupernet {
    let mut f = FakeSupernet::new(4, 3, epochs, batches);
    let labels = ["b0/op0", "b0/op1", "b1/op2", "b1/op3", "b1/in"];
    for (c, l) in f.info.choices.iter_mut().zip(labels) {
        c.label = l.to_string();
    }
    for (g, l) in f.info.groups.iter_mut().zip(labels) {
        g.label = l.to_string();
    }
    f.accuracy = vec![
        0.1, 0.9, 0.2, // b0/op0: 1
        0.7, 0.1, 0.2, // b0/op1: 0
        0.1, 0.2, 0.8, // b1/op2: 2
        0.3, 0.6, 0.1, // b1/op3: 1
        0.5, 0.5, 0.5, // b1/in
    ];
    f
}

fn run(f: &mut FakeSupernet, config: Value) -> nas_strategies::Architecture {
    run_on_fake::<BossNas>(f, config, 3)
}

#[test]
fn blocks_are_searched_one_after_another_by_the_self_supervised_measure() {
    let mut f = two_blocks(1, 10);
    let arch = run(&mut f, json!({}));
    // Each block's best under the additive score, searched exhaustively (9 and 27
    // candidates, fewer than the default 64).
    let picked = |label: &str| arch[label].as_str().unwrap().to_string();
    assert_eq!(
        ["b0/op0", "b0/op1", "b1/op2", "b1/op3"].map(picked),
        ["c1", "c0", "c2", "c1"],
        "{arch:?}"
    );
    let spec = &f.ssl[..];
    assert_eq!(spec.len(), 1, "self_supervised is asked once");
    assert_eq!(
        spec[0].taps,
        vec!["b0/op1".to_string(), FEATURES.to_string()]
    );
    // No label-based service: no training step or evaluation, only ssl steps.
    assert_eq!(f.evaluations, 0);
    assert_eq!(f.ssl_steps.len(), 10);
    assert_eq!(f.steps, 10);
    let ranges = f.info.ranges();
    let on = |mix: &[f32], g: usize| -> usize {
        let r = ranges[g].clone();
        mix[r].iter().position(|&w| w == 1.0).unwrap()
    };
    for (k, (paths, tap, _)) in f.ssl_steps.iter().enumerate() {
        assert_eq!(paths.len(), 4, "four paths per step");
        for p in paths {
            if k < 5 {
                // Block 0 trains; the later choices stay at their first option.
                assert_eq!(tap, "b0/op1");
                assert_eq!((on(p, 2), on(p, 3)), (0, 0), "{p:?}");
            } else {
                // Block 1 trains with block 0 fixed at its choice.
                assert_eq!(tap, FEATURES);
                assert_eq!((on(p, 0), on(p, 1)), (1, 0), "{p:?}");
            }
        }
    }
    // Block 0's training paths are drawn: more than one option appears.
    let seen: std::collections::BTreeSet<usize> = f.ssl_steps[..5]
        .iter()
        .flat_map(|(ps, _, _)| ps.iter().map(|p| on(p, 0)))
        .collect();
    assert!(seen.len() > 1, "{seen:?}");
    // One ranking per block, after its steps, against an ensemble of its own paths.
    assert_eq!(f.ssl_scores.len(), 2);
    let (paths, ensemble, tap, batches, recal) = &f.ssl_scores[0];
    assert_eq!(
        (paths.len(), tap.as_str(), *batches, *recal),
        (9, "b0/op1", 4, 4)
    );
    assert_eq!(ensemble.len(), 4);
    let (paths, ensemble, _, _, _) = &f.ssl_scores[1];
    assert_eq!(paths.len(), 27);
    for p in paths.iter().chain(ensemble) {
        assert_eq!((on(p, 0), on(p, 1)), (1, 0), "block 0 is fixed: {p:?}");
    }
}

#[test]
fn the_momentum_rises_by_a_cosine_and_restarts_at_each_block() {
    let mut f = two_blocks(1, 10);
    run(&mut f, json!({"momentum": 0.9}));
    let m: Vec<f32> = f.ssl_steps.iter().map(|s| s.2).collect();
    for block in [&m[..5], &m[5..]] {
        assert!((block[0] - 0.9).abs() < 1e-6, "{m:?}");
        assert!(block.windows(2).all(|w| w[1] > w[0]), "{m:?}");
        // Step 4 of 5: 1 - 0.1 * (cos(0.8 pi) + 1) / 2.
        let want = 1.0 - 0.1 * ((0.8 * std::f32::consts::PI).cos() + 1.0) / 2.0;
        assert!((block[4] - want).abs() < 1e-6, "{m:?}");
    }
    assert_eq!(momentum_at(0.99, 10, 10), 1.0);
}

#[test]
fn a_large_block_is_ranked_on_distinct_sampled_candidates() {
    let mut f = two_blocks(1, 10);
    run(&mut f, json!({"candidates": 5, "ensemble": 2}));
    let (paths, ensemble, _, _, _) = &f.ssl_scores[1];
    assert_eq!(paths.len(), 5);
    assert_eq!(ensemble.len(), 2);
    let distinct: std::collections::BTreeSet<Vec<u32>> = paths
        .iter()
        .map(|p| p.iter().map(|w| w.to_bits()).collect())
        .collect();
    assert_eq!(distinct.len(), 5);
}

#[test]
fn a_space_without_block_labels_is_one_block_read_at_its_features() {
    let mut f = FakeSupernet::new(3, 3, 1, 6);
    f.accuracy = vec![0.1, 0.9, 0.2, 0.7, 0.1, 0.2, 0.1, 0.2, 0.8, 0.5, 0.5, 0.5];
    let arch = run(&mut f, json!({"candidates": 100}));
    assert_eq!(f.ssl[0].taps, vec![FEATURES.to_string()]);
    assert_eq!([0, 1, 2].map(|i| picked(&arch, i)), [1, 0, 2]);
    assert_eq!(f.ssl_scores.len(), 1);
    assert_eq!(
        f.ssl_scores[0].0.len(),
        27 * 3,
        "every candidate of the block"
    );
}

#[test]
fn no_ranked_path_breaks_a_limit() {
    let mut f = two_blocks(1, 10);
    // Each block's best (by accuracy) costs 10 multiply-adds a choice, the rest 1; at
    // most 13 in all: one expensive choice.
    f.latency = vec![
        1.0, 10.0, 1.0, // b0/op0: its best, c1, is dear
        10.0, 1.0, 1.0, // b0/op1: its best, c0, is dear
        1.0, 1.0, 10.0, // b1/op2: its best, c2, is dear
        1.0, 1.0, 1.0, // b1/op3
        0.0, 0.0, 0.0,
    ];
    let arch = run(&mut f, json!({"max_macs": 13.0}));
    let macs: f32 = f
        .info
        .one_hot_arch(&arch)
        .unwrap()
        .iter()
        .zip(&f.latency)
        .map(|(m, l)| m * l)
        .sum();
    assert!(macs <= 13.0, "{arch:?} costs {macs}");
    // Every ranked path was within the limit.
    for (paths, _, _, _, _) in &f.ssl_scores {
        for p in paths {
            let c: f32 = p.iter().zip(&f.latency).map(|(m, l)| m * l).sum();
            assert!(c <= 13.0, "{p:?} costs {c}");
        }
    }
    // Block 0 takes one dear choice (the better one, b0/op0's c1: 0.9 against 0.7),
    // which leaves block 1 none.
    assert_eq!(arch["b0/op0"], json!("c1"), "{arch:?}");
    assert_ne!(arch["b1/op2"], json!("c2"), "{arch:?}");
    // A limit nothing meets is an error that names it.
    let mut g = two_blocks(1, 10);
    g.latency = vec![5.0; 15];
    let e = nas_strategies::oneshot::OneShotStrategy::run(
        &mut BossNas::create(&fake_setup(&g, json!({"max_macs": 1.0}), 0, None)).unwrap(),
        &mut g,
        None,
    )
    .unwrap_err();
    assert!(e.contains("max_macs") || e.contains("macs"), "{e}");
}

#[test]
fn a_block_that_does_not_end_in_a_layer_choice_is_refused() {
    // `op0`, the input choice `in`, then `op1`: a block ending in `in` has no tap.
    let mut f = FakeSupernet::new(1, 3, 1, 10);
    let mut op1 = f.info.choices[0].clone();
    op1.label = "op1".into();
    f.info.choices.push(op1);
    f.info.groups.push(nas_strategies::oneshot::Group {
        label: "op1".into(),
        choice: 2,
        size: 3,
    });
    for v in [&mut f.slope, &mut f.accuracy, &mut f.latency] {
        v.extend([0.0; 3]);
    }
    let config = json!({"blocks": [["op0", "in"], ["op1"]]});
    let e = BossNas::create(&fake_setup(&f, config, 0, None))
        .err()
        .expect("refused");
    assert!(e.contains("`in`") && e.contains("block 0"), "{e}");
}

#[test]
fn blocks_out_of_the_spaces_order_are_refused() {
    let f = two_blocks(1, 10);
    let config = json!({"blocks": [["b0/op0", "b1/in"], ["b0/op1", "b1/op2", "b1/op3"]]});
    let e = BossNas::create(&fake_setup(&f, config, 0, None))
        .err()
        .expect("refused");
    assert!(
        e.contains("`blocks`") && e.contains("`b0/op1`") && e.contains("`b1/in`"),
        "{e}"
    );
}

#[test]
fn bad_configs_are_refused_by_name() {
    refused::<BossNas>(json!({"paths": 0}), &["`paths`", "0", "1..=16"]);
    refused::<BossNas>(json!({"paths": 17}), &["`paths`", "17"]);
    refused::<BossNas>(json!({"momentum": 1.5}), &["`momentum`", "1.5"]);
    refused::<BossNas>(json!({"hidden": 0}), &["`hidden`", "0"]);
    refused::<BossNas>(json!({"crop_pad": 17}), &["`crop_pad`", "17"]);
    refused::<BossNas>(json!({"jitter": -0.1}), &["`jitter`", "-0.1"]);
    refused::<BossNas>(json!({"ensemble": 0}), &["`ensemble`", "0"]);
    refused::<BossNas>(json!({"candidates": 0}), &["`candidates`", "0"]);
    refused::<BossNas>(json!({"eval_batches": 11}), &["`eval_batches`", "11"]);
    refused::<BossNas>(json!({"blocks": [["nope"]]}), &["`blocks`", "nope"]);
    refused::<BossNas>(json!({"population": 3}), &["`population`", "bossnas"]);
}

#[test]
fn resuming_from_a_checkpoint_ends_where_an_uninterrupted_run_does() {
    nas_strategies::testing::check_resume::<BossNas>(json!({}), || two_blocks(2, 10));
}

/// A step trains distinct paths of the block under search, as the reference's
/// `random.sample` of the block's paths, and the spec restarts the weights' schedule at
/// each block after the first (the reference builds an optimiser per block). Before,
/// paths were drawn independently (repeats) and one schedule spanned every block.
#[test]
fn a_step_trains_distinct_paths_and_each_block_restarts_the_schedule() {
    let mut f = two_blocks(1, 10);
    run(&mut f, json!({"paths": 4}));
    for (paths, _, _) in &f.ssl_steps {
        for i in 0..paths.len() {
            for j in 0..i {
                assert_ne!(paths[i], paths[j], "a step trained one path twice");
            }
        }
    }
    assert_eq!(f.ssl[0].lr_restarts, vec![5]);
}

/// A saved state with a choice of an unsearched block off its first option, or with the
/// generator's zero state (every draw 0: the same path trained over and over), is
/// refused; both loaded.
#[test]
fn a_damaged_saved_state_is_refused() {
    let f = two_blocks(2, 10);
    let make = || BossNas::create(&fake_setup(&f, json!({}), 0, None)).unwrap();
    let good = make().save().unwrap();
    make().load(good.clone()).unwrap();
    let mut off = good.clone();
    off["chosen"] = json!([0, 0, 2, 0, 0]);
    let e = make().load(off).unwrap_err();
    assert!(e.contains("b1/op2"), "{e}");
    let mut zero = good.clone();
    zero["rng"] = json!([0, 0, 0, 0]);
    let e = make().load(zero).unwrap_err();
    assert!(e.contains("`rng`"), "{e}");
}
