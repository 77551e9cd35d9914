//! The unit tests of `nas_strategy_evolution`, kept out of the library so that `cargo test` builds
//! the plugin once (a test harness inside the library would compile it twice).

use nas_strategies::testing::{
    agreement, layer, metrics, nested_space as space, run_validating as run,
};
use nas_strategies::validate;
use nas_strategies::{
    json, serde_json, Architecture, Choice, Metrics, Rng, Setup, Strategy, Value,
};
use nas_strategy_evolution::*;

fn setup(space: Vec<Choice>, config: Value, seed: u64) -> Setup {
    Setup {
        space,
        config,
        seed,
        budget: 300,
    }
}

#[test]
fn every_ask_is_valid_with_asks_in_flight() {
    let space = space(3, 4);
    let target = nas_strategies::random_architecture(&space, &mut Rng::new(99));
    for batch in [1, 7] {
        let mut s = Evolution::new(&setup(
            space.clone(),
            json!({"population": 20, "sample": 5}),
            1,
        ))
        .unwrap();
        run(&mut s, &space, 400, batch, |a| agreement(a, &target));
        assert_eq!(s.population().len(), 20);
        assert_eq!(s.pending(), 0);
    }
}

#[test]
fn mutation_changes_one_active_choice() {
    let space = space(3, 4);
    let mut s = Evolution::new(&setup(space.clone(), json!({}), 4)).unwrap();
    let mut rng = Rng::new(5);
    let mut depth_changes = 0;
    for _ in 0..2000 {
        let p = nas_strategies::random_architecture(&space, &mut rng);
        let c = s.mutate(&p);
        validate(&space, &c).unwrap();
        assert_ne!(c, p);
        let changed: Vec<&String> = p
            .keys()
            .chain(c.keys().filter(|k| !p.contains_key(*k)))
            .filter(|k| c.get(*k) != p.get(*k))
            .collect();
        if p["depth"] != c["depth"] {
            depth_changes += 1;
        } else if p.get("blk1/inner") != c.get("blk1/inner") {
            // The nested repeat changed: its scoped choice appears or goes.
            assert_eq!(changed.len(), 2, "{p:?} -> {c:?}");
        } else {
            assert_eq!(changed.len(), 1, "{p:?} -> {c:?}");
            if changed[0] == "skip" {
                let (x, y) = (p["skip"].as_array().unwrap(), c["skip"].as_array().unwrap());
                assert_eq!(
                    x.iter().filter(|i| y.contains(i)).count(),
                    1,
                    "one index swapped"
                );
            }
        }
    }
    assert!(depth_changes > 50);
}

/// In a `darts` cell, a mutation changes the network: an op on an edge the node does not
/// pick is not a choice to mutate (a quarter of single-choice mutations were, for a
/// node of three edges).
#[test]
fn mutation_changes_the_network_of_a_darts_cell() {
    use nas_strategies::testing::{darts_cell, darts_network};
    let space = darts_cell(2, 3, 4);
    let mut s = Evolution::new(&setup(space.clone(), json!({}), 4)).unwrap();
    let mut rng = Rng::new(6);
    for _ in 0..1000 {
        let p = nas_strategies::random_architecture(&space, &mut rng);
        let c = s.mutate(&p);
        validate(&space, &c).unwrap();
        let (before, after) = (darts_network(&p), darts_network(&c));
        assert_ne!(before, after, "{p:?} -> {c:?}");
        // A moved input keeps its op: the ops of each node are the same multiset unless
        // an op was mutated (then the inputs are the same).
        for ((_, x), (_, y)) in before.iter().zip(&after) {
            let ops = |e: &[(usize, String)]| {
                let mut o: Vec<String> = e.iter().map(|(_, op)| op.clone()).collect();
                o.sort();
                o
            };
            let inputs = |e: &[(usize, String)]| e.iter().map(|(i, _)| *i).collect::<Vec<_>>();
            assert!(ops(x) == ops(y) || inputs(x) == inputs(y), "{p:?} -> {c:?}");
        }
    }
}

#[test]
fn save_new_load_gives_the_same_asks() {
    let space = space(3, 4);
    let target = nas_strategies::random_architecture(&space, &mut Rng::new(7));
    let st = setup(space.clone(), json!({"population": 15, "sample": 4}), 11);
    let mut a = Evolution::new(&st).unwrap();
    run(&mut a, &space, 40, 3, |x| agreement(x, &target));
    // Two asks in flight at save time.
    let inflight: Vec<Architecture> = (0..2).map(|_| a.ask().unwrap().unwrap()).collect();
    let saved: Value = serde_json::from_str(&a.save().unwrap().to_string()).unwrap();
    let mut b = Evolution::new(&st).unwrap();
    b.load(saved).unwrap();
    assert_eq!(b.pending(), 2);
    assert_eq!(
        a.population()
            .iter()
            .map(|m| (m.0.clone(), m.1.accuracy))
            .collect::<Vec<_>>(),
        b.population()
            .iter()
            .map(|m| (m.0.clone(), m.1.accuracy))
            .collect::<Vec<_>>()
    );
    for x in &inflight {
        a.tell(x, &metrics(agreement(x, &target))).unwrap();
        b.tell(x, &metrics(agreement(x, &target))).unwrap();
    }
    for _ in 0..100 {
        let (x, y) = (a.ask().unwrap().unwrap(), b.ask().unwrap().unwrap());
        assert_eq!(x, y);
        a.tell(&x, &metrics(agreement(&x, &target))).unwrap();
        b.tell(&y, &metrics(agreement(&y, &target))).unwrap();
    }
}

#[test]
fn beats_random_search_on_a_synthetic_objective() {
    let space = space(12, 5);
    let (budget, seeds) = (300, 20);
    let (mut evo, mut rnd) = (0.0, 0.0);
    for seed in 0..seeds {
        let target = nas_strategies::random_architecture(&space, &mut Rng::new(1000 + seed));
        let mut s = Evolution::new(&setup(space.clone(), json!({}), seed)).unwrap();
        evo += run(&mut s, &space, budget, 4, |a| agreement(a, &target));
        let mut rng = Rng::new(seed);
        rnd += (0..budget)
            .map(|_| {
                agreement(
                    &nas_strategies::random_architecture(&space, &mut rng),
                    &target,
                )
            })
            .fold(0.0, f64::max);
    }
    let (evo, rnd) = (evo / seeds as f64, rnd / seeds as f64);
    eprintln!("evolution {evo:.3}, random {rnd:.3}");
    assert!(evo > rnd + 0.15, "evolution {evo:.3} vs random {rnd:.3}");
}

#[test]
fn pareto_front_of_a_hand_made_example() {
    let pts = [
        (0.90, 100.0), // front
        (0.80, 50.0),  // front
        (0.85, 120.0), // dominated by 0
        (0.70, 50.0),  // dominated by 1
        (0.95, 200.0), // front
        (0.80, 50.0),  // equal to 1: front too
        (0.60, 10.0),  // front
        (0.60, 20.0),  // dominated by 6
    ];
    assert_eq!(pareto_front(&pts), vec![0, 1, 4, 5, 6]);
    assert_eq!(pareto_front(&[]), Vec::<usize>::new());
    let ranks = nondominated_ranks(&pts.iter().map(|&(a, c)| vec![-a, c]).collect::<Vec<_>>());
    assert_eq!(ranks, vec![0, 0, 1, 1, 0, 0, 0, 1]);
}

/// Distinct architectures of a flat space that differ pairwise in at least 3 choices.
fn far_apart(space: &[Choice], n: usize, seed: u64) -> Vec<Architecture> {
    let mut rng = Rng::new(seed);
    let mut out: Vec<Architecture> = vec![];
    while out.len() < n {
        let a = nas_strategies::random_architecture(space, &mut rng);
        if out.iter().all(|b| distance(&a, b) >= 3) {
            out.push(a);
        }
    }
    out
}

fn distance(a: &Architecture, b: &Architecture) -> usize {
    a.keys().filter(|k| a.get(*k) != b.get(*k)).count()
}

#[test]
fn multi_objective_population_front_is_the_pareto_front() {
    let flat: Vec<Choice> = (0..8).map(|i| layer(&format!("l{i}"), 6, None)).collect();
    let pts = [
        (0.90, 100.0),
        (0.80, 50.0),
        (0.85, 120.0),
        (0.70, 50.0),
        (0.95, 200.0),
        (0.60, 10.0),
        (0.60, 20.0),
        (0.50, 300.0),
    ];
    let archs = far_apart(&flat, pts.len(), 3);
    let mut s = Evolution::new(&setup(
        flat.clone(),
        json!({"population": 8, "sample": 3, "objectives": ["accuracy", "params"]}),
        2,
    ))
    .unwrap();
    for (a, &(acc, params)) in archs.iter().zip(&pts) {
        let m = Metrics {
            accuracy: acc,
            params: Some(params),
            ..Default::default()
        };
        s.tell(a, &m).unwrap();
    }
    let front: Vec<usize> = s
        .front()
        .iter()
        .map(|(a, _)| archs.iter().position(|x| x == a).unwrap())
        .collect();
    assert_eq!(front, pareto_front(&pts));
    // A tournament of 8 draws from 8 (with replacement) holds one of the front's two
    // extremes (rank 0, infinite crowding distance) with probability
    // 1 - (6/8)^8 = 0.90, and then one of them wins. (Repeats allowed: 200 asks
    // without tells would use up the parents' neighbours.)
    let mut s2 = Evolution::new(&setup(
        flat.clone(),
        json!({"population": 8, "sample": 8, "objectives": ["accuracy", "params"],
               "reevaluate": true}),
        2,
    ))
    .unwrap();
    for (a, &(acc, params)) in archs.iter().zip(&pts) {
        let m = Metrics {
            accuracy: acc,
            params: Some(params),
            ..Default::default()
        };
        s2.tell(a, &m).unwrap();
    }
    let mut extremes = 0;
    for _ in 0..200 {
        let c = s2.ask().unwrap().unwrap();
        let parent = archs.iter().position(|a| distance(a, &c) == 1).unwrap();
        // The front's extremes (infinite crowding distance): 0.95/200 and 0.60/10.
        extremes += (parent == 4 || parent == 5) as usize;
    }
    assert!(
        (160..200).contains(&extremes),
        "{extremes} of 200 parents were extremes"
    );
    // A missing objective metric is an error naming it.
    let e = s.tell(&archs[0], &metrics(0.5)).unwrap_err();
    assert!(e.contains("params"), "{e}");
}

#[test]
fn limits_exclude_infeasible_parents() {
    let flat: Vec<Choice> = (0..8).map(|i| layer(&format!("l{i}"), 6, None)).collect();
    for objectives in [json!(["accuracy"]), json!(["accuracy", "params"])] {
        let mut s = Evolution::new(&setup(
            flat.clone(),
            // Repeats allowed: 200 asks without tells would use up the neighbours.
            json!({"population": 10, "sample": 10, "objectives": objectives,
                   "limits": {"params": 100.0}, "reevaluate": true}),
            6,
        ))
        .unwrap();
        let archs = far_apart(&flat, 10, 8);
        // Even members are infeasible (too many params) and far more accurate.
        for (i, a) in archs.iter().enumerate() {
            let (acc, params) = if i % 2 == 0 {
                (0.99, 1000.0)
            } else {
                (0.1 + 0.01 * i as f64, 50.0)
            };
            s.tell(
                a,
                &Metrics {
                    accuracy: acc,
                    params: Some(params),
                    ..Default::default()
                },
            )
            .unwrap();
        }
        assert!(s.front().iter().all(|(_, m)| m.params.unwrap() <= 100.0));
        let mut best = 0;
        for _ in 0..200 {
            let c = s.ask().unwrap().unwrap();
            let parent = archs.iter().position(|a| distance(a, &c) == 1).unwrap();
            assert!(parent % 2 == 1, "infeasible parent {parent}");
            best += (parent == 9) as usize;
        }
        // The best feasible member (it dominates the others) wins whenever it is
        // drawn: in 1 - (4/5)^10 = 89% of the tournaments of 10 draws from 5.
        assert!((150..200).contains(&best), "the best won {best} of 200");
    }
    // With no feasible member, asks are random (and valid).
    let mut s = Evolution::new(&setup(
        flat.clone(),
        json!({"population": 3, "limits": {"macs": 1}}),
        1,
    ))
    .unwrap();
    for a in far_apart(&flat, 3, 2) {
        s.tell(
            &a,
            &Metrics {
                accuracy: 0.9,
                macs: Some(5.0),
                ..Default::default()
            },
        )
        .unwrap();
    }
    for _ in 0..20 {
        validate(&flat, &s.ask().unwrap().unwrap()).unwrap();
    }
    let e = s
        .tell(&far_apart(&flat, 1, 3)[0], &metrics(0.3))
        .unwrap_err();
    assert!(e.contains("macs"), "{e}");
}

#[test]
fn the_tournament_draws_with_replacement() {
    // Two members, a tournament of 2: drawn with replacement (the paper's way), the
    // worse one is both draws, and so the parent, a quarter of the time; drawn
    // without replacement it would never be.
    let flat: Vec<Choice> = (0..6).map(|i| layer(&format!("l{i}"), 6, None)).collect();
    let mut s = Evolution::new(&setup(
        flat.clone(),
        json!({"population": 2, "sample": 2, "reevaluate": true}),
        3,
    ))
    .unwrap();
    let archs = far_apart(&flat, 2, 4);
    s.tell(&archs[0], &metrics(0.9)).unwrap();
    s.tell(&archs[1], &metrics(0.1)).unwrap();
    let n = 2000;
    let worse = (0..n)
        .filter(|_| distance(&archs[1], &s.ask().unwrap().unwrap()) == 1)
        .count();
    let share = worse as f64 / n as f64;
    // 0.25 within about 5 standard errors (0.0097 each).
    assert!(
        (0.2..0.3).contains(&share),
        "the worse member was the parent {share}"
    );
}

#[test]
fn aging_removes_the_oldest() {
    let flat: Vec<Choice> = (0..4).map(|i| layer(&format!("l{i}"), 6, None)).collect();
    let mut s = Evolution::new(&setup(
        flat.clone(),
        json!({"population": 3, "sample": 2}),
        0,
    ))
    .unwrap();
    let archs = far_apart(&flat, 5, 1);
    for (i, a) in archs.iter().enumerate() {
        s.tell(a, &metrics(1.0 - 0.1 * i as f64)).unwrap();
    }
    // The best (the first told) aged out even though it is the best.
    let pop: Vec<Architecture> = s.population().into_iter().map(|m| m.0).collect();
    assert_eq!(pop, archs[2..].to_vec());
}

#[test]
fn counts_beyond_their_bounds_are_refused() {
    let sp = space(2, 3);
    let huge = 1u64 << 53;
    for (config, field, value, range) in [
        (
            json!({"population": huge}),
            "population",
            huge,
            "1..=100000",
        ),
        (
            json!({"population": 100_001}),
            "population",
            100_001,
            "1..=100000",
        ),
        (
            json!({"population": 20, "sample": huge}),
            "sample",
            huge,
            "1..=20",
        ),
    ] {
        let e = Evolution::new(&setup(sp.clone(), config.clone(), 0))
            .err()
            .unwrap_or_else(|| panic!("{config} accepted"));
        assert!(
            e.contains(&format!("`{field}`"))
                && e.contains(&value.to_string())
                && e.contains(range),
            "{config}: {e}"
        );
    }
    Evolution::new(&setup(
        sp,
        json!({"population": 100_000, "sample": 100_000}),
        0,
    ))
    .unwrap();
}

#[test]
fn bad_config_names_the_field() {
    let sp = space(2, 3);
    for (config, field) in [
        (json!({"population": 0}), "population"),
        (json!({"population": 5, "sample": 6}), "sample"),
        (json!({"sample": "x"}), "sample"),
        (json!({"objectives": ["accuracy", "flops"]}), "objectives"),
        (json!({"objectives": []}), "objectives"),
        (json!({"limits": {"accuracy": 0.5}}), "limits"),
        (json!({"limits": {"params": "big"}}), "limits.params"),
        (json!({"popultion": 5}), "popultion"),
    ] {
        let e = Evolution::new(&setup(sp.clone(), config.clone(), 0))
            .err()
            .unwrap();
        assert!(e.contains(&format!("`{field}`")), "{config}: {e}");
    }
    let mut s = Evolution::new(&setup(sp.clone(), json!({}), 0)).unwrap();
    let mut bad = nas_strategies::random_architecture(&sp, &mut Rng::new(0));
    bad.insert("nope".into(), json!(1));
    assert!(s.tell(&bad, &metrics(0.5)).unwrap_err().contains("nope"));
    // Non-finite metrics are stored as serialisable numbers.
    let a = nas_strategies::random_architecture(&sp, &mut Rng::new(0));
    s.tell(&a, &metrics(f64::NAN)).unwrap();
    let saved: Value = serde_json::from_str(&s.save().unwrap().to_string()).unwrap();
    let mut t = Evolution::new(&setup(sp.clone(), json!({}), 0)).unwrap();
    t.load(saved).unwrap();
    assert_eq!(t.population()[0].1.accuracy, 0.0);
}

/// Asks and tells through a whole small space: every ask is new until none is left,
/// then asks return none; with asks in flight too.
#[test]
fn asks_never_repeat_while_unseen_architectures_remain() {
    use nas_strategies::testing::layer_space;
    // 3 x 3 x 2 = 18 architectures.
    let mut space = layer_space(2, 3);
    space.push(layer("l2", 2, None));
    for (seed, batch) in [(0, 1), (1, 4), (7, 1)] {
        let mut s = Evolution::new(&setup(
            space.clone(),
            json!({"population": 4, "sample": 2}),
            seed,
        ))
        .unwrap();
        let mut seen = std::collections::BTreeSet::new();
        'asks: loop {
            let mut asked = vec![];
            for _ in 0..batch {
                match s.ask().unwrap() {
                    Some(a) => asked.push(a),
                    None => break,
                }
            }
            for a in &asked {
                validate(&space, a).unwrap();
                assert!(
                    seen.insert(key(&space, a)),
                    "repeated {a:?} after {}",
                    seen.len()
                );
                s.tell(a, &metrics(agreement_count(a) as f64 / 3.0))
                    .unwrap();
            }
            if asked.len() < batch {
                break 'asks;
            }
        }
        assert_eq!(seen.len(), 18, "seed {seed}: stopped early");
        assert!(s.ask().unwrap().is_none());
    }
    // A nested space (repeats, an input choice) far larger than the asks: no repeat.
    let nested = space_nested();
    let mut s = Evolution::new(&setup(
        nested.clone(),
        json!({"population": 10, "sample": 3}),
        3,
    ))
    .unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..300 {
        let a = s.ask().unwrap().unwrap();
        assert!(seen.insert(key(&nested, &a)), "repeated {a:?}");
        // One architecture wins by far: a plain evolution keeps mutating it back.
        s.tell(&a, &metrics(if seen.len() == 11 { 0.99 } else { 0.1 }))
            .unwrap();
    }
}

/// A `darts` cell of 243 networks (two nodes of 2 and 3 edges, 3 ops): the search
/// proposes every network once, then stops, and what it proposes names the ops of the
/// picked edges only. Before, the walk that finds the last unseen networks set every
/// edge's op, so its proposals named unbuilt ops and it walked each network once per
/// combination of them.
#[test]
fn a_darts_cell_is_exhausted_network_by_network() {
    use nas_strategies::arch::made_only;
    use nas_strategies::testing::{darts_cell, darts_network};
    let space = darts_cell(2, 2, 3);
    let mut s = Evolution::new(&setup(
        space.clone(),
        json!({"population": 8, "sample": 3}),
        5,
    ))
    .unwrap();
    let mut networks = std::collections::BTreeSet::new();
    while let Some(a) = s.ask().unwrap() {
        validate(&space, &a).unwrap();
        assert_eq!(
            made_only(&space, a.clone()),
            a,
            "names an unbuilt op: {a:?}"
        );
        assert!(
            networks.insert(format!("{:?}", darts_network(&a))),
            "one network twice: {a:?}"
        );
        s.tell(&a, &metrics(0.5)).unwrap();
    }
    assert_eq!(networks.len(), 243);
}

/// `"reevaluate": true` keeps the old behaviour: repeats allowed, asks never run out.
#[test]
fn reevaluate_allows_repeats() {
    use nas_strategies::testing::layer_space;
    let space = layer_space(2, 3);
    let mut s = Evolution::new(&setup(
        space.clone(),
        json!({"population": 4, "sample": 2, "reevaluate": true}),
        0,
    ))
    .unwrap();
    let mut seen = std::collections::BTreeSet::new();
    let mut repeats = 0;
    for _ in 0..60 {
        let a = s.ask().unwrap().unwrap();
        repeats += usize::from(!seen.insert(key(&space, &a)));
        s.tell(&a, &metrics(agreement_count(&a) as f64 / 2.0))
            .unwrap();
    }
    assert!(repeats > 0);
    let e = Evolution::new(&setup(space, json!({"reevaluate": 1}), 0))
        .err()
        .unwrap();
    assert!(e.contains("reevaluate"), "{e}");
}

/// How many choices hold their first candidate (a toy objective).
fn agreement_count(a: &Architecture) -> usize {
    a.values().filter(|v| v.as_str() == Some("c0")).count()
}

fn space_nested() -> Vec<Choice> {
    space(3, 4)
}

#[test]
fn a_failed_trial_is_no_member_whatever_the_objectives_and_limits() {
    // A failed trial has accuracy 0 and no costs: with a cost limit or objective it
    // stopped the search ("needs the trial's `params` metric"), and a resume replaying
    // it stopped again.
    let flat: Vec<Choice> = (0..6).map(|i| layer(&format!("l{i}"), 6, None)).collect();
    for config in [
        json!({"population": 3}),
        json!({"population": 3, "max_params": 1e6}),
        json!({"population": 3, "objectives": ["accuracy", "params"]}),
        json!({"population": 3, "limits": {"latency_ms": 5.0}}),
    ] {
        let mut s = Evolution::new(&setup(flat.clone(), config.clone(), 2)).unwrap();
        let archs = far_apart(&flat, 4, 5);
        let costs = |acc: f64| Metrics {
            accuracy: acc,
            params: Some(10.0),
            latency_ms: Some(1.0),
            ..Default::default()
        };
        s.tell(&archs[0], &costs(0.5)).unwrap();
        s.tell(&archs[1], &Metrics::failed("out of memory"))
            .unwrap_or_else(|e| panic!("{config}: {e}"));
        s.tell(&archs[2], &costs(0.6)).unwrap();
        // Not a member (no slot taken, never a parent), and not proposed again.
        let pop: Vec<Architecture> = s.population().into_iter().map(|m| m.0).collect();
        assert_eq!(pop, vec![archs[0].clone(), archs[2].clone()], "{config}");
        let state = s.save().unwrap();
        let mut r = Evolution::new(&setup(flat.clone(), config.clone(), 2)).unwrap();
        r.load(state).unwrap();
        for _ in 0..50 {
            let a = r.ask().unwrap().unwrap();
            assert_ne!(a, archs[1], "{config}: the failed trial was asked again");
        }
    }
}

#[test]
fn a_saved_member_not_of_the_space_is_refused() {
    let flat: Vec<Choice> = (0..3).map(|i| layer(&format!("l{i}"), 4, None)).collect();
    let mut s = Evolution::new(&setup(flat.clone(), json!({"population": 3}), 0)).unwrap();
    let a = far_apart(&flat, 1, 1).remove(0);
    s.tell(&a, &metrics(0.5)).unwrap();
    let good = s.save().unwrap();
    for (what, bad) in [
        (
            "an op of no choice",
            json!({"l0": "zzz", "l1": "op0", "l2": "op0"}),
        ),
        ("a missing choice", json!({"l0": "op0"})),
    ] {
        let mut state = good.clone();
        state["population"][0]["arch"] = bad;
        let e = Evolution::new(&setup(flat.clone(), json!({"population": 3}), 0))
            .unwrap()
            .load(state)
            .expect_err(what);
        assert!(e.contains("member 0"), "{what}: {e}");
    }
    // And a state with no generator is no state.
    let mut state = good.clone();
    state.as_object_mut().unwrap().remove("rng");
    let e = Evolution::new(&setup(flat.clone(), json!({"population": 3}), 0))
        .unwrap()
        .load(state)
        .unwrap_err();
    assert!(e.contains("`rng`"), "{e}");
}
