//! Counts the supernet trainer is given are bounded: its epochs by a stated cap, and the
//! batches a plugin asks to evaluate or recalibrate on by what the splits hold.

use nas_cli::trainer::{SupernetTrainer, TrainerConfig};
use nas_core::data::Dataset;
use nas_core::space::builtin::{by_name, InputSpec};
use nas_core::Rng;
use nas_strategies::oneshot::{Subset, SupernetHost};

#[test]
fn counts_beyond_what_the_splits_allow_are_refused() {
    let mut rng = Rng::new(5);
    // 96 training and 40 validation images in batches of 8: 12 and 5 batches.
    let train = Dataset::random(96, 1, 28, 10, &mut rng);
    let val = Dataset::random(40, 1, 28, 10, &mut rng);
    let space = by_name(
        "seed-net",
        InputSpec {
            channels: 1,
            height: 28,
            width: 28,
            classes: 10,
        },
    )
    .unwrap();
    let huge = 1usize << 53;
    let cfg = |epochs: usize| TrainerConfig {
        batch_size: 8,
        epochs,
        ..TrainerConfig::default()
    };
    let e = SupernetTrainer::new(space.as_ref(), &train, &val, cfg(huge))
        .err()
        .expect("2^53 epochs are refused");
    assert!(
        e.contains("`epochs`") && e.contains(&huge.to_string()) && e.contains("1..=10000"),
        "{e}"
    );
    let mut t = SupernetTrainer::new(space.as_ref(), &train, &val, cfg(1)).unwrap();
    let info = t.info().clone();
    let mix = info.one_hot(&vec![0; info.choices.len()]);
    for (batches, recalibrate, want) in [
        (6, 0, "validation split holds 5 batches"),
        (huge, 0, "validation split holds 5 batches"),
        (1, 13, "training split holds 12 batches"),
        (1, huge, "training split holds 12 batches"),
    ] {
        for subset in [Subset::Fixed, Subset::Next] {
            let e = t
                .evaluate(&mix, batches, recalibrate, subset)
                .err()
                .unwrap_or_else(|| panic!("{batches} batches, {recalibrate} accepted"));
            assert!(e.contains(want), "{batches}, {recalibrate}: {e}");
        }
    }
    t.evaluate(&mix, 5, 12, Subset::Fixed).unwrap();
}
