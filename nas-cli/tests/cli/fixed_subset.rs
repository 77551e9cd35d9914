//! Candidates ranked on the same images: a `Subset::Fixed` evaluation recalibrates and
//! scores on the same batches whatever the streams did in between, while
//! `Subset::Next` moves on through the streams.

use nas_cli::trainer::{SupernetTrainer, TrainerConfig};
use nas_core::data::Dataset;
use nas_core::space::builtin::{by_name, InputSpec};
use nas_core::Rng;
use nas_strategies::oneshot::{Split, Subset, SupernetHost};

#[test]
fn fixed_evaluations_score_every_candidate_on_the_same_images() {
    let mut rng = Rng::new(5);
    let train = Dataset::random(96, 1, 28, 10, &mut rng);
    let val = Dataset::random(96, 1, 28, 10, &mut rng);
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
    let cfg = TrainerConfig {
        batch_size: 8,
        ..TrainerConfig::default()
    };
    let mut t = SupernetTrainer::new(space.as_ref(), &train, &val, cfg).unwrap();
    let info = t.info().clone();
    let a = info.one_hot(&vec![0; info.choices.len()]);
    let b = info.one_hot(&vec![1; info.choices.len()]);
    // Train a little, so paths differ and scores depend on the images.
    for _ in 0..4 {
        t.next_batch(Split::Train).unwrap();
        t.train_step(&a, None).unwrap();
        t.next_batch(Split::Train).unwrap();
        t.train_step(&b, None).unwrap();
    }
    let first = t.evaluate(&a, 3, 2, Subset::Fixed).unwrap();
    // The streams move on: other candidates, batches and evaluations in between.
    let next: Vec<f32> = (0..4)
        .map(|_| t.evaluate(&a, 3, 2, Subset::Next).unwrap())
        .collect();
    t.evaluate(&b, 3, 2, Subset::Fixed).unwrap();
    t.next_batch(Split::Val).unwrap();
    t.next_batch(Split::Train).unwrap();
    let again = t.evaluate(&a, 3, 2, Subset::Fixed).unwrap();
    assert_eq!(
        first.to_bits(),
        again.to_bits(),
        "the same path, the same images"
    );
    // What ranking on the streams' next batches would do: the same path scores
    // differently call to call (this is what the fixed subset removes).
    assert!(
        next.iter().any(|&x| x != next[0]),
        "the streams' next batches all gave {next:?}: the test cannot tell subsets apart"
    );
}
