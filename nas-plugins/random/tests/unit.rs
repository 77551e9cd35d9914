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
