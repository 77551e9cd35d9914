//! The unit tests of `nas_strategy_alphanet`, kept out of the library so that `cargo test` builds
//! the plugin once (a test harness inside the library would compile it twice).

use nas_strategies::oneshot::{DistillLoss, EpochStrategy, Subset};
use nas_strategies::testing::{fake_setup, picked, run_on_fake, FakeSupernet};
use nas_strategies::{json, ChoiceKind, Value};
use nas_strategy_alphanet::*;

fn refused(config: Value, want: &[&str]) {
    nas_strategies::testing::refused::<AlphaNet>(config, want)
}

#[test]
fn bad_configs_name_the_field_and_value() {
    refused(json!({"divergence": "js"}), &["`divergence`", "js"]);
    refused(json!({"divergence": 1}), &["`divergence`"]);
    refused(json!({"alpha_min": 2.0}), &["`alpha_min`", "2"]);
    refused(json!({"alpha_max": "x"}), &["`alpha_max`", "x"]);
    refused(json!({"clip": 0.0}), &["`clip`", "0"]);
    refused(json!({"clip": -3.0}), &["`clip`", "-3"]);
    refused(json!({"random": 64}), &["`random`", "64", "0..=63"]);
    refused(json!({"population": 1}), &["`population`", "1"]);
    refused(json!({"generations": 0}), &["`generations`", "0"]);
    refused(json!({"mutation_prob": 1.5}), &["`mutation_prob`", "1.5"]);
    refused(
        json!({"eval_batches": 11}),
        &["`eval_batches`", "11", "1..=10"],
    );
    refused(json!({"recalibrate": 11}), &["`recalibrate`", "11"]);
    refused(json!({"max_macs": -1}), &["`max_macs`", "-1"]);
    refused(json!({"temperature": 1}), &["`temperature`", "alphanet"]);
}

/// A fake supernet whose candidate `c{k}` costs `k + 1` multiply-adds on every layer
/// (the input choice costs nothing) and is `acc[k]` accurate.
fn fake(epochs: usize, batches: usize, acc: [f32; 3]) -> FakeSupernet {
    let mut f = FakeSupernet::new(4, 3, epochs, batches);
    f.latency = vec![1.0, 2.0, 3.0].repeat(4);
    f.latency.extend([0.0; 3]);
    f.accuracy = acc.repeat(4);
    f.accuracy.extend([0.5; 3]);
    f
}

#[test]
fn every_step_sends_the_largest_the_random_and_the_smallest_subnet() {
    let mut f = fake(1, 12, [0.3, 0.6, 0.9]);
    // Candidate c0 is named `zero` on layer 0: never the smallest's pick there.
    if let ChoiceKind::Layer { candidates } = &mut f.info.choices[0].kind {
        candidates[0] = "zero".into();
    }
    let setup = fake_setup(&f, json!({"random": 3, "divergence": "kl"}), 1, None);
    let mut s = AlphaNet::create(&setup).unwrap();
    nas_strategies::oneshot::drive(&mut s, &mut f, None).unwrap();
    assert_eq!(f.distills.len(), 12, "one sandwich step per batch");
    assert_eq!(f.steps, 12, "and no other weight step");
    let info = f.info.clone();
    let largest = info.one_hot(&[2, 2, 2, 2, 0]);
    let smallest = info.one_hot(&[1, 0, 0, 0, 0]);
    let mut drawn = std::collections::BTreeSet::new();
    for (teacher, students, loss) in &f.distills {
        assert_eq!(*loss, DistillLoss::Kl);
        assert_eq!(
            *teacher, largest,
            "the teacher is the most expensive subnet"
        );
        assert_eq!(students.len(), 4, "three random subnets and the smallest");
        assert_eq!(students[3], smallest, "the smallest comes last");
        for s in &students[..3] {
            // One-hot paths of the space.
            for r in info.ranges() {
                assert!(s[r].iter().all(|&w| w == 0.0 || w == 1.0));
            }
            drawn.insert(format!("{s:?}"));
        }
    }
    // Random subnets vary (36 draws of 3^4 * 3 layer and input options).
    assert!(drawn.len() > 20, "{} distinct random subnets", drawn.len());
}

#[test]
fn the_default_loss_is_the_papers_adaptive_alpha_divergence() {
    let mut f = fake(1, 3, [0.3, 0.6, 0.9]);
    run_on_fake::<AlphaNet>(&mut f, json!({"generations": 1}), 0);
    assert_eq!(
        f.distills[0].2,
        DistillLoss::Alpha {
            alpha_min: -1.0,
            alpha_max: 1.0,
            clip: 5.0
        }
    );
    assert_eq!(
        f.distills[0].1.len(),
        3,
        "two random subnets and the smallest"
    );
    let mut f = fake(1, 3, [0.3, 0.6, 0.9]);
    run_on_fake::<AlphaNet>(&mut f, json!({"divergence": "none", "random": 0}), 0);
    assert_eq!(f.distills[0].2, DistillLoss::None);
    assert_eq!(f.distills[0].1.len(), 1, "the smallest alone");
}

#[test]
fn the_search_exports_the_most_accurate_subnet_within_the_limit() {
    // c2 is the most accurate and the most expensive on every layer; c1 gains most
    // over c0 for its cost.
    let acc = [0.3, 0.7, 0.8];
    let mut f = fake(1, 10, acc);
    let free = run_on_fake::<AlphaNet>(&mut f, json!({}), 5);
    assert!((0..4).all(|i| picked(&free, i) == 2), "{free:?}");
    // At most 9 multiply-adds: the best within is a c2 (3) and three c1 (2 each);
    // two c2 and a c1 and a c0 cost 9 too but score less. A search that ignored the
    // limit would export four c2 (12).
    let mut f = fake(1, 10, acc);
    let limited = run_on_fake::<AlphaNet>(&mut f, json!({"max_macs": 9.0}), 5);
    let picks: Vec<usize> = (0..4).map(|i| picked(&limited, i)).collect();
    let cost: usize = picks.iter().map(|p| p + 1).sum();
    assert_eq!(cost, 9, "{picks:?}");
    assert_eq!(picks.iter().filter(|&&p| p == 2).count(), 1, "{picks:?}");
    // Every candidate was scored on the same images, and none over the limit.
    assert!(f.subsets.iter().all(|s| *s == Subset::Fixed));
    let mut g = fake(1, 10, [0.3, 0.6, 0.9]);
    // The smallest subnet (four c0) costs 4: nothing fits under 3.
    let mut s = AlphaNet::create(&fake_setup(&g, json!({"max_macs": 3.0}), 0, None)).unwrap();
    let e = nas_strategies::oneshot::drive(&mut s, &mut g, None).unwrap_err();
    assert!(e.contains("no architecture within the limits"), "{e}");
}

#[test]
fn resuming_from_a_checkpoint_ends_where_an_uninterrupted_run_does() {
    nas_strategies::testing::check_resume::<AlphaNet>(
        json!({"population": 6, "generations": 2}),
        || {
            let mut f = FakeSupernet::new(2, 3, 2, 20);
            f.latency = vec![1.0, 2.0, 3.0, 1.0, 2.0, 3.0, 0.0, 0.0, 0.0];
            f.accuracy = vec![0.2, 0.5, 0.4, 0.6, 0.1, 0.3, 0.5, 0.5, 0.5];
            f
        },
    );
}
