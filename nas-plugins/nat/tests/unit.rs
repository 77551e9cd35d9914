//! The unit tests of `nas_strategy_nat`, kept out of the library so that `cargo test` builds
//! the plugin once (a test harness inside the library would compile it twice).

use nas_strategies::decisions;
use nas_strategies::oneshot::drive;
use nas_strategies::oneshot::{
    DistillLoss, EpochStrategy, OneShotStrategy, Subset, WeightSchedule, MAX_FRONT,
};
use nas_strategies::testing::{fake_setup, picked, run_on_fake, FakeSupernet};
use nas_strategies::Reduce;
use nas_strategies::{json, ChoiceKind, Value};
use nas_strategy_nat::*;
use std::collections::HashSet;

fn refused(config: Value, want: &[&str]) {
    nas_strategies::testing::refused::<Nat>(config, want)
}

#[test]
fn bad_configs_name_the_field_and_value() {
    refused(json!({"objective": "flops"}), &["`objective`", "flops"]);
    refused(json!({"objective": 3}), &["`objective`"]);
    refused(json!({"initial": 1}), &["`initial`", "1", "2..="]);
    refused(json!({"candidates": 0}), &["`candidates`", "0"]);
    refused(json!({"population": 1}), &["`population`", "1"]);
    refused(json!({"generations": 0}), &["`generations`", "0"]);
    refused(json!({"crossover_prob": 1.5}), &["`crossover_prob`", "1.5"]);
    refused(json!({"mutation_prob": -0.1}), &["`mutation_prob`", "-0.1"]);
    refused(json!({"top": 0}), &["`top`", "0"]);
    refused(json!({"smoothing": -1.0}), &["`smoothing`", "-1"]);
    refused(json!({"subnets": 65}), &["`subnets`", "65", "1..=64"]);
    refused(json!({"distill": "alpha"}), &["`distill`", "alpha"]);
    refused(
        json!({"surrogates": ["gp", "cart"]}),
        &["`surrogates`", "cart"],
    );
    refused(json!({"surrogates": []}), &["`surrogates`", "[]"]);
    refused(
        json!({"surrogates": ["gp", "gp"]}),
        &["`surrogates`", "gp", "twice"],
    );
    refused(json!({"surrogates": "gp"}), &["`surrogates`", "gp"]);
    refused(json!({"folds": 1}), &["`folds`", "1"]);
    refused(
        json!({"eval_batches": 11}),
        &["`eval_batches`", "11", "1..=10"],
    );
    refused(json!({"recalibrate": 11}), &["`recalibrate`", "11"]);
    refused(json!({"reevaluate": "yes"}), &["`reevaluate`", "yes"]);
    refused(json!({"max_macs": -1}), &["`max_macs`", "-1"]);
    refused(
        json!({"warmup_epochs": 1}),
        &["`warmup_epochs`", "1", "0..=0"],
    );
    refused(json!({"temperature": 1}), &["`temperature`", "nat"]);
    refused(json!({"finetune_lr": -0.1}), &["`finetune_lr`", "-0.1"]);
    refused(json!({"finetune_lr": 11.0}), &["`finetune_lr`", "11"]);
    refused(json!({"finetune_lr": 1e-50}), &["`finetune_lr`", "1e-50"]);
    refused(json!({"finetune_warmup": 1.0}), &["`finetune_warmup`", "1"]);
    refused(
        json!({"finetune_warmup": -0.5}),
        &["`finetune_warmup`", "-0.5"],
    );
}

/// The weight schedules a run of NAT set on a fake supernet of 2 epochs of 31 steps,
/// resumed from its first checkpoint or not.
fn schedules(config: Value, resumed: bool) -> Vec<WeightSchedule> {
    let mut f = fake(2, 31, [0.3, 0.6, 0.9], [1.0, 2.0, 3.0]);
    let mut s = Nat::new(&fake_setup(&f, config.clone(), 0, None)).unwrap();
    s.run(&mut f, None).unwrap();
    if resumed {
        let state = f.checkpoints[0].clone();
        let mut g = fake(2, 31, [0.3, 0.6, 0.9], [1.0, 2.0, 3.0]);
        let mut r = Nat::new(&fake_setup(&g, config, 0, Some(state.clone()))).unwrap();
        r.run(&mut g, Some(&state)).unwrap();
        return g.schedules;
    }
    f.schedules
}

#[test]
fn finetune_lr_sets_the_references_fine_tuning_schedule() {
    // The reimplementation fine-tunes at 2.5e-3 after a warm-up from 1e-4 over 5 of its
    // 155 epochs; `finetune_lr` 2.5e-3 gives that, and by default the weights keep the
    // host's schedule. Before, NAT could only train at the host's.
    let tuned = WeightSchedule {
        lr: 2.5e-3,
        warmup_steps: 2, // 5/155 of 62 steps, rounded
        warmup_lr: 1e-4,
    };
    let reference = json!({"finetune_lr": 2.5e-3});
    assert_eq!(schedules(reference.clone(), false), vec![tuned]);
    assert_eq!(
        schedules(reference, true),
        vec![tuned],
        "set again on resume"
    );
    assert!(schedules(json!({}), false).is_empty());
    assert!(schedules(json!({"finetune_lr": 0}), false).is_empty());
    let own = schedules(json!({"finetune_lr": 0.01, "finetune_warmup": 0.5}), false);
    assert_eq!(
        own,
        vec![WeightSchedule {
            lr: 0.01,
            warmup_steps: 31,
            warmup_lr: 1e-4,
        }]
    );
    // The schedule itself: linear warm-up, then a cosine to 0 over the rest.
    let s = own[0];
    assert!((s.lr_at(0, 62) - 1e-4).abs() < 1e-9);
    assert!((s.lr_at(15, 62) - (1e-4 + (0.01 - 1e-4) * 15.0 / 31.0)).abs() < 1e-7);
    assert!((s.lr_at(31, 62) - 0.01).abs() < 1e-9);
    let mid = s.lr_at(31 + 15, 62);
    let want = 0.01 * 0.5 * (1.0 + (std::f32::consts::PI * 15.0 / 31.0).cos());
    assert!((mid - want).abs() < 1e-7, "{mid} {want}");
    assert!(s.lr_at(61, 62) < 1e-4);
}

#[test]
fn subset_selection_evens_out_the_gaps_of_the_front() {
    // The front costs 0 and 10. Alone, 5 leaves gaps (5, 5) and std 0; 1 leaves
    // (1, 9), 9 leaves (9, 1), 6 leaves (6, 4).
    assert_eq!(
        subset_select(&[0.0, 10.0], &[1.0, 5.0, 9.0, 6.0], 1),
        vec![1]
    );
    // Then 1, 9 and 6 all leave the gaps {1, 4, 5} in some order: the earliest, 1;
    // then 9 leaves (1, 4, 4, 1) and 6 (1, 4, 1, 4), equal: 9, the earlier; then 6.
    assert_eq!(
        subset_select(&[0.0, 10.0], &[1.0, 5.0, 9.0, 6.0], 4),
        vec![1, 0, 2, 3]
    );
    // 2.5 fills the wider gap of (0, 5, 10, 20): gaps (5, 5, 5, 5, ...) would need
    // 15; of 15 and 7, 15 leaves (5, 5, 5, 5), 7 leaves (5, 2, 3, 10).
    assert_eq!(
        subset_select(&[0.0, 5.0, 10.0, 20.0], &[7.0, 15.0], 1),
        vec![1]
    );
    // Fewer candidates than asked: all of them.
    assert_eq!(subset_select(&[], &[3.0, 1.0], 5).len(), 2);
}

#[test]
fn the_distribution_counts_active_choices_of_the_top_members() {
    use nas_strategies::testing::{choice, layer};
    let space = vec![
        layer("a", 3, None),
        choice("depth", ChoiceKind::Repeat { depths: vec![0, 1] }, None),
        layer("inner", 2, Some(("depth", 0))),
    ];
    // Three members: `a` takes 0, 0, 2; depth 1, 1, 0; `inner` (active only where
    // depth is 1, i.e. option 1) takes 1 and 1; the third member's 0 is inactive.
    let top = vec![vec![0, 1, 1], vec![0, 1, 1], vec![2, 0, 0]];
    let p = estimate(&space, &top, 1.0);
    let close = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-12);
    assert!(close(&p[0], &[3.0 / 6.0, 1.0 / 6.0, 2.0 / 6.0]), "{p:?}");
    assert!(close(&p[1], &[2.0 / 5.0, 3.0 / 5.0]), "{p:?}");
    assert!(close(&p[2], &[1.0 / 4.0, 3.0 / 4.0]), "{p:?}");
    // Without smoothing, the frequencies; a choice nobody has active is uniform.
    let p = estimate(&space, &top, 0.0);
    assert!(close(&p[0], &[2.0 / 3.0, 0.0, 1.0 / 3.0]), "{p:?}");
    let p = estimate(&space, &[vec![1, 0, 0]], 0.0);
    assert!(close(&p[2], &[0.5, 0.5]), "{p:?}");
}

/// A fake supernet of four layers whose candidate `c{k}` costs `cost[k]`
/// multiply-adds and is `acc[k]` accurate, and a 2-of-3 input choice that costs
/// nothing and is 0.5 accurate.
fn fake(epochs: usize, batches: usize, acc: [f32; 3], cost: [f32; 3]) -> FakeSupernet {
    let mut f = FakeSupernet::new(4, 3, epochs, batches);
    f.latency = cost.repeat(4);
    f.latency.extend([0.0; 3]);
    f.accuracy = acc.repeat(4);
    f.accuracy.extend([0.5; 3]);
    f
}

fn archive(s: &Nat) -> Vec<Member> {
    let state = s.save().unwrap();
    nas_strategies::serde_json::from_value::<State>(state["state"].clone())
        .unwrap()
        .archive
}

/// The decisions of every architecture `front` gave the host.
fn front_decisions(f: &FakeSupernet) -> Vec<Vec<usize>> {
    f.front
        .as_ref()
        .expect("front was called")
        .iter()
        .map(|a| decisions::from_arch(&f.info.choices, a).unwrap())
        .collect()
}

#[test]
fn the_front_is_the_archives_non_dominated_set() {
    // c1 gains most accuracy for its cost, c2 is the most accurate: a real trade-off.
    let mut f = fake(2, 6, [0.3, 0.7, 0.8], [1.0, 2.0, 3.0]);
    let mut s = Nat::create(&fake_setup(&f, json!({}), 3, None)).unwrap();
    let export = drive(&mut s, &mut f, None).unwrap();
    let members = archive(&s);
    // By brute force: the members no other member beats on both accuracy and cost.
    let beats = |b: &Member, a: &Member| {
        b.acc >= a.acc && b.cost <= a.cost && (b.acc > a.acc || b.cost < a.cost)
    };
    let mut want: Vec<Vec<usize>> = members
        .iter()
        .filter(|a| !members.iter().any(|b| beats(b, a)))
        .map(|m| m.d.clone())
        .collect();
    let mut got = front_decisions(&f);
    assert!(got.len() >= 3, "a front with a trade-off: {got:?}");
    // The host's order: cost ascending.
    let cost = |d: &[usize]| (0..4).map(|i| d[i] + 1).sum::<usize>();
    assert!(
        got.windows(2).all(|w| cost(&w[0]) <= cost(&w[1])),
        "{got:?}"
    );
    want.sort();
    got.sort();
    assert_eq!(got, want);
    // The export is the most accurate member (four c2 if it was ever scored, which
    // the largest subnet of the first archive is).
    assert!((0..4).all(|i| picked(&export, i) == 2), "{export:?}");
    // Every archive member is a distinct subnet.
    let keys: HashSet<String> = members.iter().map(|m| s.key(&m.d)).collect();
    assert_eq!(keys.len(), members.len());
}

#[test]
fn the_export_and_the_front_keep_to_a_macs_limit() {
    // At most 9 multiply-adds: the best within is a c2 (3) and three c1 (2 each):
    // accuracy 2.9 over the layers, where two c2, a c1 and a c0 (also 9) give 2.6
    // and four c1 (8) give 2.8. Unlimited, four c2 (12) would win.
    for seed in 0..3 {
        let mut f = fake(3, 4, [0.3, 0.7, 0.8], [1.0, 2.0, 3.0]);
        let arch = run_on_fake::<Nat>(&mut f, json!({"max_macs": 9.0}), seed);
        let picks: Vec<usize> = (0..4).map(|i| picked(&arch, i)).collect();
        assert_eq!(
            picks.iter().map(|p| p + 1).sum::<usize>(),
            9,
            "seed {seed}: {picks:?}"
        );
        assert_eq!(
            picks.iter().filter(|&&p| p == 2).count(),
            1,
            "seed {seed}: {picks:?}"
        );
        let front = front_decisions(&f);
        assert!(!front.is_empty());
        for d in front {
            let macs: usize = (0..4).map(|i| d[i] + 1).sum();
            assert!(macs <= 9, "seed {seed}: front member {d:?} costs {macs}");
        }
        assert!(f.subsets.iter().all(|s| *s == Subset::Fixed));
    }
    // The smallest subnet (four c0) costs 4: nothing fits under 3.
    let mut g = fake(1, 2, [0.3, 0.7, 0.8], [1.0, 2.0, 3.0]);
    let mut s = Nat::create(&fake_setup(&g, json!({"max_macs": 3.0}), 0, None)).unwrap();
    let e = drive(&mut s, &mut g, None).unwrap_err();
    assert!(e.contains("within the limits"), "{e}");
}

#[test]
fn a_front_past_the_cap_keeps_its_ends() {
    // Accuracy grows exactly with cost (multiples of 1/8: no rounding), so every
    // subnet of the archive is non-dominated: more than MAX_FRONT of them.
    let mut f = FakeSupernet::new(6, 3, 1, 1);
    f.latency = [1.0, 2.0, 3.0].repeat(6);
    f.latency.extend([0.0; 3]);
    f.accuracy = [0.125, 0.25, 0.375].repeat(6);
    f.accuracy.extend([0.5; 3]);
    let config = json!({"initial": 300, "candidates": 1, "population": 4,
        "generations": 1, "surrogates": ["rbf"], "folds": 2});
    let mut s = Nat::create(&fake_setup(&f, config, 0, None)).unwrap();
    drive(&mut s, &mut f, None).unwrap();
    assert!(archive(&s).len() > MAX_FRONT);
    let front = front_decisions(&f);
    assert_eq!(front.len(), MAX_FRONT);
    let cost = |d: &[usize]| (0..6).map(|i| d[i] + 1).sum::<usize>();
    // The smallest (6) and the largest (18) subnet are the front's ends.
    assert_eq!(cost(&front[0]), 6);
    assert_eq!(cost(&front[MAX_FRONT - 1]), 18);
}

#[test]
fn each_iteration_scores_its_candidates_and_each_epoch_rescores_the_archive() {
    let mut f = fake(1, 3, [0.3, 0.7, 0.8], [1.0, 2.0, 3.0]);
    let mut s = Nat::create(&fake_setup(
        &f,
        json!({"initial": 10, "candidates": 3}),
        0,
        None,
    ))
    .unwrap();
    drive(&mut s, &mut f, None).unwrap();
    // The first iteration: 10 initial subnets and 3 candidates; at the epoch's end
    // all 13 again, then 3 more candidates.
    assert_eq!(archive(&s).len(), 16);
    assert_eq!(f.evaluations, 10 + 3 + 13 + 3);
    let mut f = fake(1, 3, [0.3, 0.7, 0.8], [1.0, 2.0, 3.0]);
    let mut s = Nat::create(&fake_setup(
        &f,
        json!({"initial": 10, "candidates": 3, "reevaluate": false}),
        0,
        None,
    ))
    .unwrap();
    drive(&mut s, &mut f, None).unwrap();
    assert_eq!(f.evaluations, 16);
    // The smallest and the largest subnet are in the initial archive.
    let members = archive(&s);
    assert!(members.iter().any(|m| m.d[..4] == [0, 0, 0, 0]));
    assert!(members.iter().any(|m| m.d[..4] == [2, 2, 2, 2]));
}

#[test]
fn adaptation_learns_from_the_largest_on_subnets_drawn_from_the_archives_best() {
    // c2 is the cheapest and the most accurate on every layer: the archive's best
    // members take it most, so the adaptation draws it more than uniformly.
    let mut f = fake(3, 40, [0.2, 0.5, 0.9], [3.0, 2.0, 1.0]);
    let mut s = Nat::create(&fake_setup(&f, json!({"subnets": 3}), 1, None)).unwrap();
    drive(&mut s, &mut f, None).unwrap();
    assert_eq!(f.distills.len(), 120, "one distillation step per batch");
    assert_eq!(f.steps, 120, "and no other weight step");
    let info = f.info.clone();
    // The largest by cost: c0 on every layer, the first inputs (all cost nothing).
    let largest = info.one_hot(&[0, 0, 0, 0, 0]);
    let (mut c2, mut layers) = (0, 0);
    for (teacher, students, loss) in &f.distills {
        assert_eq!(*loss, DistillLoss::Kl);
        assert_eq!(*teacher, largest);
        assert_eq!(students.len(), 3);
        for m in students {
            // A one-hot subnet: one candidate a layer, two inputs.
            let on: Vec<usize> = info
                .ranges()
                .into_iter()
                .map(|r| m[r].iter().filter(|&&w| w == 1.0).count())
                .collect();
            assert_eq!(on, vec![1, 1, 1, 1, 2]);
            assert!(m.iter().all(|&w| w == 0.0 || w == 1.0));
            for l in 0..4 {
                layers += 1;
                c2 += (m[3 * l + 2] == 1.0) as usize;
            }
        }
    }
    let share = c2 as f64 / layers as f64;
    assert!(
        share > 0.5,
        "c2 drawn on {share} of the layers (uniform: 1/3)"
    );
    // Without distillation: one subnet a step by a plain training step, or several
    // learning from the labels in one step.
    let mut f = fake(1, 5, [0.2, 0.5, 0.9], [3.0, 2.0, 1.0]);
    run_on_fake::<Nat>(&mut f, json!({"distill": "none"}), 0);
    assert!(f.distills.is_empty());
    assert_eq!(f.steps, 5);
    let mut f = fake(1, 5, [0.2, 0.5, 0.9], [3.0, 2.0, 1.0]);
    run_on_fake::<Nat>(&mut f, json!({"distill": "none", "subnets": 2}), 0);
    assert_eq!(f.distills.len(), 5);
    assert!(f
        .distills
        .iter()
        .all(|(_, st, l)| *l == DistillLoss::None && st.len() == 1));
}

#[test]
fn resuming_from_a_checkpoint_ends_where_an_uninterrupted_run_does() {
    nas_strategies::testing::check_resume::<Nat>(
        json!({"initial": 8, "candidates": 3, "population": 12, "generations": 5}),
        || fake(2, 20, [0.3, 0.7, 0.8], [1.0, 2.0, 3.0]),
    );
}

#[test]
fn a_warm_up_trains_uniform_paths_before_the_search() {
    nas_strategies::testing::check_warmup::<Nat>(json!({"initial": 6, "generations": 3}));
}

#[test]
fn loading_a_state_of_another_space_is_an_error() {
    let f = fake(1, 3, [0.3, 0.7, 0.8], [1.0, 2.0, 3.0]);
    let mut s = Nat::create(&fake_setup(&f, json!({}), 0, None)).unwrap();
    let mut state = s.save().unwrap();
    state["state"]["archive"] =
        json!([{"d": [0, 0, 5, 0, 0], "acc": 0.5, "cost": 1.0, "violation": 0.0}]);
    let e = s.load(state).unwrap_err();
    assert!(e.contains("does not fit"), "{e}");
    // A fitting member with no ends (the teacher read at the next step: it panicked
    // indexing an empty `largest`), and a figure that read as infinity, are refused.
    let member = json!({"d": [0, 0, 0, 0, 0], "acc": 0.5, "cost": 1.0, "violation": 0.0});
    let mut state = s.save().unwrap();
    state["state"]["archive"] = json!([member]);
    let e = s.load(state.clone()).unwrap_err();
    assert!(e.contains("does not fit"), "{e}");
    state["state"]["largest"] = json!([0, 0, 0, 0, 0]);
    state["state"]["smallest"] = json!([0, 0, 0, 0, 0]);
    s.load(state.clone()).unwrap();
    state["state"]["archive"][0]["acc"] = json!(1e39);
    let e = s.load(state).unwrap_err();
    assert!(e.contains("not finite"), "{e}");
    let _ = Reduce::Sum;
}

mod nsga {
    use nas_strategies::pareto::dominates;
    use nas_strategies::pareto::ranks;
    use nas_strategies::Rng;
    use nas_strategy_nat::nsga::*;
    use std::collections::HashSet;

    fn fit(points: &[(f64, f64)]) -> Vec<Fitness> {
        points
            .iter()
            .map(|&(a, b)| Fitness::new(vec![a, b], 0.0))
            .collect()
    }

    #[test]
    fn fronts_and_ranks_match_a_hand_sort() {
        // P0 (1,5), P1 (2,3), P2 (4,1) dominate each other nowhere; P3 (3,4) is
        // dominated by P1, P5 (2,6) by P0, and P4 (5,5) by P1 and P3.
        let pop = fit(&[(1., 5.), (2., 3.), (4., 1.), (3., 4.), (5., 5.), (2., 6.)]);
        let fronts = non_dominated_sort(&pop);
        assert_eq!(fronts, vec![vec![0, 1, 2], vec![3, 5], vec![4]]);
        assert_eq!(ranks(&fronts, 6), vec![0, 0, 0, 1, 2, 1]);
        assert!(dominates(&[1.0, 1.0], &[1.0, 2.0]));
        assert!(
            !dominates(&[1.0, 2.0], &[1.0, 2.0]),
            "equal is no domination"
        );
        assert!(!dominates(&[0.0, 3.0], &[1.0, 2.0]));
    }

    #[test]
    fn constraint_violations_sort_before_objectives() {
        // Q0 is best on both objectives but outside the constraints; Q1 (violation 0.5)
        // beats Q2 (violation 2) whatever their objectives; Q3 and Q4 are feasible and
        // trade off.
        let pop = vec![
            Fitness::new(vec![0.0, 0.0], 1.0),
            Fitness::new(vec![9.0, 9.0], 0.5),
            Fitness::new(vec![1.0, 1.0], 2.0),
            Fitness::new(vec![5.0, 6.0], 0.0),
            Fitness::new(vec![6.0, 5.0], 0.0),
        ];
        assert!(constrained_dominates(&pop[3], &pop[0]));
        assert!(constrained_dominates(&pop[1], &pop[0]));
        assert!(
            constrained_dominates(&pop[0], &pop[2]) && !constrained_dominates(&pop[2], &pop[0])
        );
        assert!(
            !constrained_dominates(&pop[3], &pop[4]) && !constrained_dominates(&pop[4], &pop[3])
        );
        assert_eq!(
            non_dominated_sort(&pop),
            vec![vec![3, 4], vec![1], vec![0], vec![2]]
        );
    }

    #[test]
    fn crowding_distances_match_hand_computation() {
        // One front Q0 (0,10), Q1 (1,6), Q2 (3,3), Q3 (10,0); both ranges are 10.
        // Q1: (3-0)/10 + (10-3)/10 = 1.0; Q2: (10-1)/10 + (6-0)/10 = 1.5; ends infinite.
        let pop = fit(&[(0., 10.), (1., 6.), (3., 3.), (10., 0.)]);
        let d = crowding_distance(&pop, &[0, 1, 2, 3]);
        assert!(d[0].is_infinite() && d[3].is_infinite());
        assert!((d[1] - 1.0).abs() < 1e-12, "{d:?}");
        assert!((d[2] - 1.5).abs() < 1e-12, "{d:?}");
        // In another order the distances follow their members.
        let d = crowding_distance(&pop, &[2, 3, 1, 0]);
        assert!((d[0] - 1.5).abs() < 1e-12 && (d[2] - 1.0).abs() < 1e-12);
        // Two members, or a flat objective: no finite distance, no division by zero.
        assert!(crowding_distance(&pop, &[1, 2])
            .iter()
            .all(|v| v.is_infinite()));
        let flat = fit(&[(1., 1.), (1., 1.), (1., 1.)]);
        assert_eq!(crowding_distance(&flat, &[0, 1, 2])[1], 0.0);
    }

    #[test]
    fn survival_fills_by_fronts_then_by_crowding() {
        // Front 0: Q0..Q3 as above, plus Q4 (2,9) dominated by Q1, Q5 (11,11) by all.
        let pop = fit(&[
            (0., 10.),
            (1., 6.),
            (3., 3.),
            (10., 0.),
            (2., 9.),
            (11., 11.),
        ]);
        // Three of front 0: the two ends (infinite), then Q2 (1.5) before Q1 (1.0).
        assert_eq!(survive(&pop, 3), vec![0, 3, 2]);
        // Five: all of front 0, then front 1 (Q4).
        assert_eq!(survive(&pop, 5), vec![0, 1, 2, 3, 4]);
        assert_eq!(survive(&pop, 10).len(), 6);
    }

    #[test]
    fn tournaments_prefer_lower_rank_then_wider_crowding() {
        let rank = [0, 1, 0, 0];
        let crowd = [1.0, 9.0, 2.0, 1.0];
        assert_eq!(crowded_better(&rank, &crowd, 0, 1), Some(true));
        assert_eq!(crowded_better(&rank, &crowd, 0, 2), Some(false));
        assert_eq!(crowded_better(&rank, &crowd, 0, 3), None);
        // Over many tournaments the worst member (rank 1) wins only against itself:
        // about 1/16 of them.
        let mut rng = Rng::new(3);
        let mut wins = [0usize; 4];
        for _ in 0..16_000 {
            wins[tournament(&rank, &crowd, &mut rng)] += 1;
        }
        assert!((800..1200).contains(&wins[1]), "{wins:?}");
        // Member 2 (rank 0, widest) wins every draw it is in: 7/16.
        assert!((6500..7500).contains(&wins[2]), "{wins:?}");
    }

    #[test]
    fn mutation_always_changes_a_redrawn_choice_and_crossover_mixes_parents() {
        let mut rng = Rng::new(1);
        let sizes = [3, 1, 4];
        for _ in 0..200 {
            let mut d = vec![2, 0, 1];
            mutate(&mut d, &sizes, 1.0, &mut rng);
            assert_ne!(d[0], 2);
            assert_eq!(d[1], 0, "a choice with one option stays");
            assert_ne!(d[2], 1);
            assert!(d[0] < 3 && d[2] < 4);
        }
        let mut d = vec![2, 0, 1];
        mutate(&mut d, &sizes, 0.0, &mut rng);
        assert_eq!(d, vec![2, 0, 1]);
        let (a, b) = (vec![0; 20], vec![1; 20]);
        let c = uniform_crossover(&a, &b, &mut rng);
        let ones = c.iter().sum::<usize>();
        assert!((3..18).contains(&ones), "{c:?}");
    }

    /// Four choices of three options: option `o` of choice `i` costs `COST[i][o]` and
    /// loses `LOSS[i][o]`; both are minimised.
    const COST: [[f64; 3]; 4] = [[1., 2., 4.], [0., 3., 5.], [2., 3., 7.], [1., 1.5, 6.]];
    const LOSS: [[f64; 3]; 4] = [[5., 3., 0.], [6., 2., 1.], [4., 3., 0.], [3., 2.5, 2.]];

    fn objectives(d: &[usize]) -> Fitness {
        let c = (0..4).map(|i| COST[i][d[i]]).sum();
        let l = (0..4).map(|i| LOSS[i][d[i]]).sum();
        Fitness::new(vec![c, l], 0.0)
    }

    fn all() -> Vec<Vec<usize>> {
        (0..81)
            .map(|r: usize| vec![r % 3, r / 3 % 3, r / 9 % 3, r / 27])
            .collect()
    }

    #[test]
    fn finds_the_exact_pareto_front_of_a_small_problem() {
        // The true front by enumeration of all 81 decision vectors.
        let every = all();
        let fits: Vec<Fitness> = every.iter().map(|d| objectives(d)).collect();
        let mut truth: Vec<Vec<f64>> = non_dominated_sort(&fits)[0]
            .iter()
            .map(|&i| fits[i].f.clone())
            .collect();
        truth.sort_by(|a, b| a[0].total_cmp(&b[0]).then(a[1].total_cmp(&b[1])));
        truth.dedup();
        assert!(truth.len() >= 8, "a front worth finding: {truth:?}");
        let key = |d: &[usize]| format!("{d:?}");
        for seed in 0..3 {
            let mut rng = Rng::new(seed);
            let nsga = Nsga2 {
                population: 30,
                generations: 40,
                crossover_prob: 0.9,
                mutation_prob: 0.25,
            };
            let mut evaluations = 0;
            let out = nsga
                .run(&[3, 3, 3, 3], vec![], &mut rng, &key, &mut |b| {
                    evaluations += b.len();
                    Ok(b.iter().map(|d| objectives(d)).collect())
                })
                .unwrap();
            assert_eq!(out.len(), 30);
            let fits: Vec<Fitness> = out.iter().map(|s| s.fitness.clone()).collect();
            let mut found: Vec<Vec<f64>> = non_dominated_sort(&fits)[0]
                .iter()
                .map(|&i| fits[i].f.clone())
                .collect();
            found.sort_by(|a, b| a[0].total_cmp(&b[0]).then(a[1].total_cmp(&b[1])));
            found.dedup();
            assert_eq!(found, truth, "seed {seed} after {evaluations} evaluations");
            // No decision vector was scored twice in one population.
            let keys: HashSet<String> = out.iter().map(|s| key(&s.d)).collect();
            assert_eq!(keys.len(), out.len());
        }
    }

    #[test]
    fn an_initial_population_seeds_the_search_and_surplus_is_cut() {
        let every = all();
        let key = |d: &[usize]| format!("{d:?}");
        let nsga = Nsga2 {
            population: 10,
            generations: 0,
            crossover_prob: 0.9,
            mutation_prob: 0.25,
        };
        let mut rng = Rng::new(0);
        let mut seeds = every.clone();
        seeds.push(every[0].clone()); // a repeat is dropped
        let mut first = 0;
        let out = nsga
            .run(&[3, 3, 3, 3], seeds, &mut rng, &key, &mut |b| {
                first = b.len();
                Ok(b.iter().map(|d| objectives(d)).collect())
            })
            .unwrap();
        assert_eq!(first, 81, "every distinct seed scored once");
        // With no generation the survivors of all 81 are the best 10 by rank and
        // crowding: the true front's members come first.
        let fits: Vec<Fitness> = every.iter().map(|d| objectives(d)).collect();
        let expect: Vec<Vec<usize>> = survive(&fits, 10)
            .into_iter()
            .map(|i| every[i].clone())
            .collect();
        let got: HashSet<Vec<usize>> = out.iter().map(|s| s.d.clone()).collect();
        assert_eq!(got, expect.into_iter().collect::<HashSet<_>>());
    }
}

mod surrogate {
    use nas_predict::{kendall_tau, Prediction, Surrogate};
    use nas_strategies::Rng;
    use nas_strategy_nat::surrogate::*;

    #[test]
    fn the_linear_solver_solves_a_system_that_needs_pivoting() {
        // [[0, 2, 1], [1, 1, 0], [2, 0, 3]] z = [7, 3, 11] has z = (1, 2, 3): row 0 is
        // 0 + 4 + 3, row 1 is 1 + 2, row 2 is 2 + 9; its first pivot is 0.
        let a = vec![0.0, 2.0, 1.0, 1.0, 1.0, 0.0, 2.0, 0.0, 3.0];
        let z = solve(a, vec![7.0, 3.0, 11.0]).unwrap();
        for (got, want) in z.iter().zip([1.0, 2.0, 3.0]) {
            assert!((got - want).abs() < 1e-12, "{z:?}");
        }
        assert!(solve(vec![1.0, 2.0, 2.0, 4.0], vec![1.0, 2.0]).is_none());
    }

    #[test]
    fn the_rbf_interpolates_its_points_and_is_linear_between_two() {
        // Two points on a line: s(x) = w0 |x| + w1 |x - 1| + c with w0 + w1 = 0 gives
        // w0 = 1, c = 3 for y = (2, 4): s(0.25) = 0.25 - 0.75 + 3 = 2.5, s(0.5) = 3.
        let x = vec![vec![0.0f32], vec![1.0]];
        let y = vec![2.0, 4.0];
        let mut r = Rbf::default();
        r.fit(&x, &y).unwrap();
        let p = r.predict(&[vec![0.0], vec![1.0], vec![0.25], vec![0.5]]);
        for (got, want) in p.iter().zip([2.0, 4.0, 2.5, 3.0]) {
            assert!((got.mean - want).abs() < 1e-6, "{p:?}");
        }
        // Distinct binary points with more features than points: still interpolated.
        let x: Vec<Vec<f32>> = (0..5usize)
            .map(|i| (0..12).map(|j| (((i + 1) >> (j % 3)) & 1) as f32).collect())
            .collect();
        let y = vec![0.1, 0.5, 0.3, 0.9, 0.7];
        r.fit(&x, &y).unwrap();
        for (p, want) in r.predict(&x).iter().zip(&y) {
            assert!((p.mean - want).abs() < 1e-5, "{} vs {want}", p.mean);
        }
    }

    #[test]
    fn folds_partition_the_points_in_near_equal_runs() {
        let mut rng = Rng::new(0);
        let f = folds(11, 4, &mut rng);
        assert_eq!(
            f.iter().map(|v| v.len()).collect::<Vec<_>>(),
            vec![3, 3, 3, 2]
        );
        let mut all: Vec<usize> = f.concat();
        all.sort_unstable();
        assert_eq!(all, (0..11).collect::<Vec<_>>());
    }

    /// Predicts the negated sum of the features, whatever it was fitted on.
    struct Anti;
    impl Surrogate for Anti {
        fn fit(&mut self, _: &[Vec<f32>], _: &[f64]) -> Result<(), String> {
            Ok(())
        }
        fn predict(&self, x: &[Vec<f32>]) -> Vec<Prediction> {
            x.iter()
                .map(|v| Prediction {
                    mean: -v.iter().sum::<f32>() as f64,
                    std: 0.0,
                })
                .collect()
        }
    }

    /// Always fails to fit.
    struct Broken;
    impl Surrogate for Broken {
        fn fit(&mut self, _: &[Vec<f32>], _: &[f64]) -> Result<(), String> {
            Err("broken".into())
        }
        fn predict(&self, x: &[Vec<f32>]) -> Vec<Prediction> {
            vec![
                Prediction {
                    mean: 0.0,
                    std: 0.0
                };
                x.len()
            ]
        }
    }

    fn maker(name: &str, seed: u64) -> Result<Box<dyn Surrogate>, String> {
        match name {
            "anti" => Ok(Box::new(Anti)),
            "broken" => Ok(Box::new(Broken)),
            other => make(other, seed),
        }
    }

    #[test]
    fn switching_picks_the_kind_that_ranks_held_out_points_best() {
        // y = (sum of the features)^2 plus a little of feature 0: the RBF and the GP
        // rank held-out points well, `anti` ranks them backwards, `broken` scores -1.
        let mut rng = Rng::new(5);
        let x: Vec<Vec<f32>> = (0..24)
            .map(|_| (0..6).map(|_| rng.below(2) as f32).collect())
            .collect();
        let y: Vec<f64> = x
            .iter()
            .map(|v| {
                let s: f32 = v.iter().sum();
                (s * s) as f64 + 0.1 * v[0] as f64
            })
            .collect();
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<String>>();
        for (kinds, want) in [
            (names(&["anti", "rbf"]), 1),
            (names(&["rbf", "anti"]), 0),
            (names(&["broken", "anti", "gp"]), 2),
        ] {
            let c = switching_with(&maker, &kinds, &x, &y, 4, 1, &mut rng).unwrap();
            assert_eq!(c.winner, want, "{kinds:?}: {:?}", c.scores);
            assert!(c.taus[want] > 0.3, "{:?}", c.taus);
            let p: Vec<f64> = c.model.predict(&x).iter().map(|p| p.mean).collect();
            assert!(
                kendall_tau(&p, &y) > 0.8,
                "the winner is refitted on all points"
            );
            let anti = kinds.iter().position(|k| k == "anti").unwrap();
            assert!(c.taus[anti] < -0.3, "{:?}", c.taus);
        }
        let c = switching_with(&maker, &names(&["broken", "rbf"]), &x, &y, 4, 1, &mut rng).unwrap();
        assert_eq!(c.taus[0], -1.0, "a failed fit scores tau -1");
        // Fewer than 4 points: the first kind, not cross-validated.
        let c =
            adaptive_switching(&names(&["rbf", "gp"]), &x[..3], &y[..3], 4, 1, &mut rng).unwrap();
        assert_eq!(c.winner, 0);
        assert!(c.scores.iter().all(|s| s.is_nan()));
        assert!(make("cart", 0).is_err());
    }
}
