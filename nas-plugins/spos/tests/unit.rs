//! The unit tests of `nas_strategy_spos`, kept out of the library so that `cargo test` builds
//! the plugin once (a test harness inside the library would compile it twice).

use nas_strategies::oneshot::OneShotStrategy;
use nas_strategies::oneshot::{EpochStrategy, OneShotSetup, Subset};
use nas_strategies::testing::{picked, run_on_fake, FakeSupernet};
use nas_strategies::{json, Architecture, Value};
use nas_strategy_spos::*;

fn run(f: &mut FakeSupernet, config: Value) -> Architecture {
    run_on_fake::<Spos>(f, config, 5)
}

/// Creating with `config` on a fake supernet of `batches` batches a split fails,
/// naming `field`, `value` and the allowed `range`.
fn refused(config: Value, batches: usize, field: &str, value: u64, range: &str) {
    let setup = OneShotSetup {
        info: FakeSupernet::new(2, 3, 1, batches).info,
        config: config.clone(),
        seed: 0,
        resume: None,
    };
    let e = <Spos as EpochStrategy>::create(&setup)
        .err()
        .unwrap_or_else(|| panic!("{config} accepted"));
    assert!(
        e.contains(&format!("`{field}`")) && e.contains(&value.to_string()) && e.contains(range),
        "{config}: {e}"
    );
}

#[test]
fn each_generation_breeds_a_whole_new_population() {
    // As the reference: every generation scores `population` new candidates (half
    // mutated, half crossed over, random draws where those repeat), not only
    // `population - parents` (what ours bred before).
    let mut f = FakeSupernet::new(6, 4, 1, 2);
    run(
        &mut f,
        json!({"population": 8, "parents": 4, "generations": 3, "eval_batches": 1,
               "recalibrate": 0}),
    );
    assert_eq!(f.evaluations, 8 + 3 * 8);
}

#[test]
fn a_population_over_the_space_stops_when_the_space_is_exhausted() {
    // 27 architectures, a population of 100,000: the search used to draw 50 times
    // the population (5 million draws, 18 s, found by the fuzz target `config`)
    // looking for members that do not exist.
    let mut f = FakeSupernet::new(2, 3, 1, 2);
    let setup = nas_strategies::testing::fake_setup(
        &f,
        json!({"population": 100_000, "parents": 10}),
        5,
        None,
    );
    let mut s = Spos::new(&setup).unwrap();
    s.run(&mut f, None).unwrap();
    assert!(f.evaluations <= 27, "{} evaluations", f.evaluations);
    // At most 50 draws per member of the initial population (27 here), and the
    // generations stop once the space is exhausted.
    assert!(
        s.considered <= 50 * 27 + 200,
        "{} candidates considered",
        s.considered
    );
}

#[test]
fn counts_beyond_their_bounds_are_refused() {
    let huge = 1u64 << 53;
    refused(
        json!({"population": huge}),
        10,
        "population",
        huge,
        "2..=100000",
    );
    refused(
        json!({"generations": huge}),
        10,
        "generations",
        huge,
        "1..=10000",
    );
    refused(
        json!({"eval_batches": huge}),
        10,
        "eval_batches",
        huge,
        "1..=10",
    );
    refused(
        json!({"eval_batches": 11}),
        10,
        "eval_batches",
        11,
        "1..=10",
    );
    refused(json!({"recalibrate": 11}), 10, "recalibrate", 11, "0..=10");
    refused(
        json!({"population": 4, "parents": 4}),
        10,
        "parents",
        4,
        "1..=3",
    );
}

#[test]
fn evolution_finds_the_best_path_within_the_limit() {
    let mut f = FakeSupernet::new(4, 3, 1, 10);
    // Candidate c2 is the most accurate everywhere, and the most expensive.
    f.accuracy = vec![0.3, 0.6, 0.9].repeat(4);
    f.accuracy.extend([0.5, 0.5, 0.5]);
    f.latency = vec![1.0, 2.0, 10.0].repeat(4);
    f.latency.extend([0.0, 0.0, 0.0]);
    let free = run(
        &mut f,
        json!({"population": 10, "parents": 5, "generations": 10}),
    );
    assert!((0..4).all(|i| picked(&free, i) == 2), "{free:?}");
    // At most 12 multiply-adds: any path with a c2 costs at least 10 + 3 = 13, so
    // the best allowed path is four c1 (8).
    let limited = run(
        &mut f,
        json!({"population": 10, "parents": 5, "generations": 10, "max_macs": 12.0}),
    );
    assert!((0..4).all(|i| picked(&limited, i) == 1), "{limited:?}");
    assert_eq!(f.steps, 20, "one single-path step per batch");
    // Every candidate was scored on the same fixed images.
    assert!(!f.subsets.is_empty());
    assert!(
        f.subsets.iter().all(|s| *s == Subset::Fixed),
        "{:?}",
        f.subsets
    );
}

#[test]
fn resuming_from_a_checkpoint_ends_where_an_uninterrupted_run_does() {
    nas_strategies::testing::check_resume::<Spos>(
        json!({"population": 6, "parents": 3, "generations": 2}),
        || nas_strategies::testing::FakeSupernet::new(2, 3, 2, 20),
    );
}

/// A fake supernet of 4 layer choices whose candidates cost 1, 2 and 10 multiply-adds
/// (the input choice costs nothing), and the host's count of a path agreeing with them;
/// `epochs` of `batches` steps.
fn priced_for(epochs: usize, batches: usize) -> FakeSupernet {
    let mut f = FakeSupernet::new(4, 3, epochs, batches);
    let macs = [1.0, 2.0, 10.0];
    for (i, c) in f.costs.iter_mut().enumerate().take(12) {
        c.macs = macs[i % 3];
    }
    f.latency = f.costs.iter().map(|c| c.macs as f32).collect();
    f
}

fn priced(batches: usize) -> FakeSupernet {
    priced_for(1, batches)
}

/// The figures of one training step of SPOS with `config` on `f`.
fn step_figures(f: &mut FakeSupernet, config: Value) -> Vec<&'static str> {
    let setup = nas_strategies::testing::fake_setup(f, config, 0, None);
    let mut s = <Spos as EpochStrategy>::create(&setup).unwrap();
    s.step(f, 0, 0)
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect()
}

/// How many training steps took candidate c2 (cost 10) at all four choices.
fn dearest_paths(f: &FakeSupernet) -> usize {
    f.mixes
        .iter()
        .filter(|m| (0..4).all(|i| m[3 * i + 2] == 1.0))
        .count()
}

#[test]
fn the_supernet_samples_paths_uniformly_over_multiply_add_bins() {
    // Paths cost 4 to 40; the 7 bins of the reference's sampler give the one path of
    // cost 40 (four c2, 1 in 81 uniform paths) the last bin to itself, so about 1 step
    // in 7 trains it, where uniform paths train it about 1 step in 81.
    let steps = 700;
    let mut binned = priced(steps);
    run(
        &mut binned,
        json!({"population": 4, "parents": 2, "generations": 1}),
    );
    let mut uniform = priced(steps);
    run(
        &mut uniform,
        json!({"population": 4, "parents": 2, "generations": 1, "macs_bins": 0}),
    );
    let (b, u) = (dearest_paths(&binned), dearest_paths(&uniform));
    assert!(
        (60..=150).contains(&b),
        "{b} of {steps} binned paths cost 40"
    );
    assert!(u < 25, "{u} of {steps} uniform paths cost 40");
    // A range in whole-network multiply-adds: one bin, [35, 40], holds only four c2.
    let mut ranged = priced(100);
    run(
        &mut ranged,
        json!({"population": 4, "parents": 2, "generations": 1, "macs_bins": 1,
               "macs_range": [35.0, 40.0]}),
    );
    assert!(dearest_paths(&ranged) >= 90, "{}", dearest_paths(&ranged));
    // Binned steps say whether their path fell in its bin; paths that all cost the
    // same cannot be binned and are uniform, as with `macs_bins` 0.
    assert_eq!(
        step_figures(&mut priced(4), json!({})),
        ["train_loss", "in_bin"]
    );
    let free = step_figures(&mut FakeSupernet::new(4, 3, 1, 4), json!({}));
    assert_eq!(free, ["train_loss"]);
    let off = step_figures(&mut priced(4), json!({"macs_bins": 0}));
    assert_eq!(off, ["train_loss"]);
}

#[test]
fn a_binned_search_resumes_where_an_uninterrupted_one_ends() {
    for config in [
        json!({"population": 6, "parents": 3, "generations": 2}),
        json!({"population": 6, "parents": 3, "generations": 2, "macs_range": [20.0, 40.0]}),
    ] {
        nas_strategies::testing::check_resume::<Spos>(config, || priced_for(2, 20));
    }
}

#[test]
fn a_range_no_path_reaches_is_refused() {
    // Paths cost 4 to 40 here.
    let setup = nas_strategies::testing::fake_setup(
        &priced(4),
        json!({"macs_range": [50.0, 60.0]}),
        0,
        None,
    );
    let mut s = <Spos as EpochStrategy>::create(&setup).unwrap();
    let e = s.step(&mut priced(4), 0, 0).unwrap_err();
    assert!(e.contains("`macs_range`") && e.contains("[50, 60]"), "{e}");
}

#[test]
fn bad_multiply_add_bins_are_refused() {
    refused(
        json!({"macs_bins": 1001}),
        10,
        "macs_bins",
        1001,
        "0..=1000",
    );
    for bad in [json!([5.0, 5.0]), json!([-1.0, 4.0]), json!([9.0, 3.0])] {
        let setup = OneShotSetup {
            info: FakeSupernet::new(2, 3, 1, 10).info,
            config: json!({ "macs_range": bad }),
            seed: 0,
            resume: None,
        };
        let e = <Spos as EpochStrategy>::create(&setup).err().unwrap();
        assert!(e.contains("`macs_range`"), "{e}");
    }
    let setup = OneShotSetup {
        info: FakeSupernet::new(2, 3, 1, 10).info,
        config: json!({ "macs_range": [1.0, 2.0], "macs_bins": 0 }),
        seed: 0,
        resume: None,
    };
    let e = <Spos as EpochStrategy>::create(&setup).err().unwrap();
    assert!(
        e.contains("`macs_range`") && e.contains("`macs_bins`"),
        "{e}"
    );
    let setup = OneShotSetup {
        info: FakeSupernet::new(2, 3, 1, 10).info,
        config: json!({ "macs_range": "wide" }),
        seed: 0,
        resume: None,
    };
    let e = <Spos as EpochStrategy>::create(&setup).err().unwrap();
    assert!(e.contains("`macs_range`") && e.contains("wide"), "{e}");
}
