//! The unit tests of `nas_strategy_enas`, kept out of the library so that `cargo test` builds
//! the plugin once (a test harness inside the library would compile it twice).

use nas_strategies::oneshot::{EpochStrategy, OneShotSetup};
use nas_strategies::{json, Value};
use nas_strategy_enas::*;

#[test]
fn a_warm_up_trains_uniform_paths_before_the_search() {
    nas_strategies::testing::check_warmup::<Enas>(
        nas_strategies::json!({"controller_steps": 10, "final_samples": 2, "final_batches": 1}),
    );
}
use nas_strategies::testing::{picked, run_on_fake, FakeSupernet};

/// Creating with `config` on a fake supernet of `batches` batches a split fails,
/// naming `field`, `value` and the allowed `range`.
fn refused(config: Value, batches: usize, field: &str, value: u64, range: &str) {
    let setup = OneShotSetup {
        info: FakeSupernet::new(2, 3, 1, batches).info,
        config: config.clone(),
        seed: 0,
        resume: None,
    };
    let e = <Enas as EpochStrategy>::create(&setup)
        .err()
        .unwrap_or_else(|| panic!("{config} accepted"));
    assert!(
        e.contains(&format!("`{field}`")) && e.contains(&value.to_string()) && e.contains(range),
        "{config}: {e}"
    );
}

#[test]
fn counts_beyond_their_bounds_are_refused() {
    let huge = 1u64 << 53;
    refused(
        json!({"controller_steps": huge}),
        20,
        "controller_steps",
        huge,
        "1..=100000",
    );
    refused(
        json!({"final_samples": huge}),
        20,
        "final_samples",
        huge,
        "1..=10000",
    );
    refused(
        json!({"final_batches": huge}),
        20,
        "final_batches",
        huge,
        "1..=20",
    );
    refused(
        json!({"final_batches": 21}),
        20,
        "final_batches",
        21,
        "1..=20",
    );
    refused(
        json!({"controller": {"batch": huge}}),
        20,
        "batch",
        huge,
        "1..=10000",
    );
}

#[test]
fn the_controller_learns_the_most_accurate_path() {
    let mut f = FakeSupernet::new(2, 3, 2, 20);
    f.accuracy = vec![0.2, 0.3, 0.9, 0.9, 0.1, 0.2, 0.5, 0.5, 0.5];
    let config = json!({"controller_steps": 150, "controller": {"lr": 0.05}});
    let arch = run_on_fake::<Enas>(&mut f, config, 4);
    assert_eq!((picked(&arch, 0), picked(&arch, 1)), (2, 0));
    assert_eq!(f.steps, 40, "one shared-weight step per batch");
}

#[test]
fn resuming_from_a_checkpoint_ends_where_an_uninterrupted_run_does() {
    nas_strategies::testing::check_resume::<Enas>(json!({"controller_steps": 5}), || {
        nas_strategies::testing::FakeSupernet::new(2, 3, 2, 20)
    });
}
