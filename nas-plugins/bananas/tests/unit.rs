//! The unit tests of `nas_strategy_bananas`, kept out of the library so that `cargo test` builds
//! the plugin once (a test harness inside the library would compile it twice).

use nas_strategies::json;
use nas_strategies::testing::{self, layer_space, mixed_space, Objective};
use nas_strategies::{serde_json, Strategy};
use nas_strategy_bananas::*;

#[test]
fn a_bad_config_field_is_named() {
    let space = layer_space(3, 4);
    for (cfg, word) in [
        (json!({"intial": 3}), "intial"),
        (json!({"per_round": 0}), "per_round"),
        (json!({"mutation_prob": 0.0}), "mutation_prob"),
        (json!({"members": 1000}), "members"),
    ] {
        let e = Bananas::new(&testing::setup(space.clone(), cfg, 0, 10))
            .err()
            .expect("refused");
        assert!(e.contains(word), "{e}");
    }
}

/// On the synthetic objective (the fraction of choices equal to a hidden target) it
/// beats random search at the same budget, with asks in flight, on every choice kind.
#[test]
fn beats_random_search_on_a_synthetic_objective() {
    for space in [layer_space(8, 5), mixed_space()] {
        let (mut ours, mut theirs) = (0.0, 0.0);
        for seed in 0..3 {
            let obj = Objective::new(&space, seed);
            let mut s = Bananas::new(&testing::setup(space.clone(), json!({}), seed, 60)).unwrap();
            ours += testing::run_validating(&mut s, &space, 60, 4, |a| obj.accuracy(a));
            theirs += testing::best(&testing::random_search(&obj, seed, 60));
        }
        assert!(ours > theirs, "{ours} vs random {theirs}");
    }
}

/// A search saved and loaded into a fresh strategy asks what the original asks.
#[test]
fn a_loaded_search_continues_exactly() {
    let space = layer_space(6, 5);
    let obj = Objective::new(&space, 4);
    let cfg = json!({"reevaluate_last": 4, "per_round": 5, "reevaluate_predicted": 2});
    let make = || Bananas::new(&testing::setup(space.clone(), cfg.clone(), 2, 40)).unwrap();
    let mut a = make();
    for _ in 0..17 {
        let x = a.ask().unwrap().unwrap();
        a.tell(&x, &obj.metrics(&x)).unwrap();
    }
    let text = serde_json::to_string(&a.save().unwrap()).unwrap();
    let mut b = make();
    b.load(serde_json::from_str(&text).unwrap()).unwrap();
    for _ in 0..23 {
        let (x, y) = (a.ask().unwrap().unwrap(), b.ask().unwrap().unwrap());
        assert_eq!(x, y);
        a.tell(&x, &obj.metrics(&x)).unwrap();
        b.tell(&y, &obj.metrics(&y)).unwrap();
    }
}
