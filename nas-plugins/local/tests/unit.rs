//! The unit tests of `nas_strategy_local`, kept out of the library so that `cargo test` builds
//! the plugin once (a test harness inside the library would compile it twice).

use nas_strategies::observed::Observed;
use nas_strategies::testing::{self, layer_space, mixed_space, Objective};
use nas_strategies::{decisions, serde_json, Choice, Strategy, Value};
use nas_strategies::{json, validate};
use nas_strategy_local::*;

fn make(space: Vec<Choice>, config: Value, budget: usize) -> LocalSearch {
    LocalSearch::new(&testing::setup(space, config, 3, budget)).unwrap()
}

#[test]
fn a_bad_config_field_is_named() {
    let space = layer_space(3, 4);
    for (cfg, word) in [
        (json!({"inital": 3}), "inital"),
        (json!({"initial": 0}), "initial"),
        (json!({"reevaluate_top": 0}), "reevaluate_top"),
        (json!({"first_improvement": 1}), "first_improvement"),
    ] {
        let e = LocalSearch::new(&testing::setup(space.clone(), cfg, 0, 10))
            .err()
            .expect("refused");
        assert!(e.contains(word), "{e}");
    }
    assert!(LocalSearch::new(&testing::setup(space, json!({"max_params": 5}), 0, 10)).is_ok());
}

/// On a space of 4 choices of 5 options: 10 random architectures, then every
/// neighbour of the best of them not among the 10 (of 16), each queried once.
#[test]
fn a_step_queries_every_neighbour_of_the_best_initial_architecture() {
    let space = layer_space(4, 5);
    let obj = Objective::new(&space, 1);
    let f = |d: &Vec<usize>| obj.accuracy(&decisions::to_arch(&space, d));
    let mut s = make(space.clone(), json!({}), 100);
    let mut asked = vec![];
    let mut ask = |s: &mut LocalSearch| {
        let a = s.ask().unwrap().unwrap();
        validate(&space, &a).unwrap();
        s.tell(&a, &obj.metrics(&a)).unwrap();
        asked.push(decisions::from_arch(&space, &a).unwrap());
    };
    for _ in 0..11 {
        ask(&mut s);
    }
    let Phase::Step { queue, .. } = &s.phase else {
        panic!("not stepping after 11 asks")
    };
    let n = queue.len() + 1;
    for _ in 1..n {
        ask(&mut s);
    }
    let best = asked[..10]
        .iter()
        .max_by(|a, b| f(a).total_cmp(&f(b)))
        .unwrap()
        .clone();
    let near = |d: &Vec<usize>| d.iter().zip(&best).filter(|(x, y)| x != y).count() == 1;
    assert_eq!(n, 16 - asked[..10].iter().filter(|d| near(d)).count());
    assert!(asked[10..].iter().all(near), "{asked:?}");
    let keys: std::collections::HashSet<_> = asked.iter().collect();
    assert_eq!(keys.len(), asked.len(), "an architecture queried twice");
}

/// Hill climbing on the synthetic objective (the fraction of choices equal to a
/// hidden target) finds the target, which random search at the same budget does not.
#[test]
fn climbs_to_the_optimum_of_a_separable_objective() {
    let space = layer_space(6, 5);
    for seed in 0..3 {
        let obj = Objective::new(&space, seed);
        let mut s = LocalSearch::new(&testing::setup(space.clone(), json!({}), seed, 150)).unwrap();
        let accs = testing::drive(&mut s, &obj, 150, 1);
        assert!(
            testing::best(&accs) >= 1.0,
            "seed {seed}: {}",
            testing::best(&accs)
        );
        let r = testing::random_search(&obj, seed, 150);
        assert!(testing::best(&r) < 1.0);
    }
}

/// Asks running ahead of tells (8 in flight, told in reverse) stay valid and climb,
/// with either option of the authors' code; the mixed space (repeats, input and value
/// choices) works too.
#[test]
fn asks_in_flight_and_every_choice_kind() {
    for space in [layer_space(6, 5), mixed_space()] {
        for cfg in [
            json!({"first_improvement": true}),
            json!({"stop_at_minimum": false}),
        ] {
            let obj = Objective::new(&space, 5);
            let mut s = make(space.clone(), cfg.clone(), 200);
            let best = testing::run_validating(&mut s, &space, 200, 8, |a| obj.accuracy(a));
            assert!(best > 0.8, "{cfg}: {best}");
        }
    }
}

/// The last `reevaluate_last` asks re-query the best few, and nothing else.
#[test]
fn the_last_asks_reevaluate_the_top_few() {
    let space = layer_space(5, 4);
    let obj = Objective::new(&space, 2);
    let mut s = make(
        space.clone(),
        json!({"reevaluate_last": 12, "reevaluate_top": 3}),
        50,
    );
    let mut first = vec![];
    for t in 0..50 {
        let a = s.ask().unwrap().unwrap();
        let d = decisions::from_arch(&space, &a).unwrap();
        if t < 38 {
            first.push(d);
        } else {
            assert!(first.contains(&d), "ask {t} is not a re-evaluation");
        }
        s.tell(&a, &obj.metrics(&a)).unwrap();
    }
    let mut scored: Vec<&Observed> = s.obs.entries().iter().collect();
    scored.sort_by(|a, b| b.score().total_cmp(&a.score()));
    // The objective is deterministic: the top 3 stay the top 3 and share the 12.
    let told: Vec<usize> = scored[..3].iter().map(|e| e.told).collect();
    assert_eq!(told, [5, 5, 5], "{told:?}");
}

/// A search saved and loaded into a fresh strategy asks what the original asks.
#[test]
fn a_loaded_search_continues_exactly() {
    let space = mixed_space();
    let obj = Objective::new(&space, 4);
    let cfg = json!({"reevaluate_last": 5});
    let mut a = make(space.clone(), cfg.clone(), 60);
    for _ in 0..37 {
        let x = a.ask().unwrap().unwrap();
        a.tell(&x, &obj.metrics(&x)).unwrap();
    }
    // One ask in flight across the save.
    let pending = a.ask().unwrap().unwrap();
    let state = a.save().unwrap();
    let text = serde_json::to_string(&state).unwrap();
    let mut b = make(space.clone(), cfg, 60);
    b.load(serde_json::from_str(&text).unwrap()).unwrap();
    a.tell(&pending, &obj.metrics(&pending)).unwrap();
    b.tell(&pending, &obj.metrics(&pending)).unwrap();
    for _ in 0..22 {
        let (x, y) = (a.ask().unwrap().unwrap(), b.ask().unwrap().unwrap());
        assert_eq!(x, y);
        a.tell(&x, &obj.metrics(&x)).unwrap();
        b.tell(&y, &obj.metrics(&y)).unwrap();
    }
    assert!(b.load(json!({"rng": [1, 2, 3, 4]})).is_err());
    // A damaged state whose queued neighbour is not of the space is refused on loading,
    // not a panic when the neighbour is asked.
    let mut bad = state.clone();
    let queue = bad["phase"]["Step"]["queue"]
        .as_array_mut()
        .expect("a step in progress at the save");
    queue.push(json!([0]));
    let e = b.load(bad).err().unwrap();
    assert!(e.contains("not of this space"), "{e}");
}
