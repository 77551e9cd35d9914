//! The unit tests of `nas_strategy_random`, kept out of the library so that `cargo test` builds
//! the plugin once (a test harness inside the library would compile it twice).

use nas_strategies::{json, Setup, Strategy, Value};
use nas_strategy_random::*;

fn setup(config: Value) -> Setup {
    Setup {
        space: vec![],
        config,
        seed: 0,
        budget: 10,
    }
}

#[test]
fn a_config_field_random_search_does_not_take_is_named() {
    let e = RandomSearch::new(&setup(json!({"populaton": 10})))
        .err()
        .expect("a stray field must be refused");
    assert!(e.contains("populaton") && e.contains("limits"), "{e}");
    assert!(RandomSearch::new(&setup(json!({"max_params": 10}))).is_ok());
    assert!(RandomSearch::new(&setup(json!("oops"))).is_err());
    assert!(RandomSearch::new(&setup(json!({}))).is_ok());
    assert!(RandomSearch::new(&setup(json!({"limits": {"params": 1e5}}))).is_ok());
}

/// A saved state missing its generator or its list of proposals, or holding the
/// generator's all-zero state (from which every draw is 0: the same architecture on
/// every ask), is refused; each loaded before.
#[test]
fn a_damaged_saved_state_is_refused() {
    let space = nas_strategies::testing::layer_space(4, 5);
    let make = || {
        RandomSearch::new(&Setup {
            space: space.clone(),
            ..setup(json!({}))
        })
        .unwrap()
    };
    let mut s = make();
    s.ask().unwrap();
    let good = s.save().unwrap();
    make().load(good.clone()).unwrap();
    let mut zero = good.clone();
    zero["rng"] = json!([0, 0, 0, 0]);
    let mut no_seen = good.clone();
    no_seen.as_object_mut().unwrap().remove("seen");
    for (what, state, field) in [
        ("zero generator", zero, "`rng`"),
        ("no seen", no_seen, "`seen`"),
        ("empty", json!({}), "`rng`"),
        ("null", Value::Null, "`rng`"),
    ] {
        let e = make().load(state).expect_err(what);
        assert!(e.contains(field), "{what}: {e}");
    }
}
