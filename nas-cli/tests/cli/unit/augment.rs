//! The training batches of a one-shot search on CIFAR-shaped data are augmented as
//! `nas train`'s are (random crop after 4 pixels of padding, horizontal flip), and
//! reproducibly across a checkpoint; other shapes are not augmented.

use nas_cli::trainer::{SupernetTrainer, TrainerConfig};
use nas_core::data::{Augment, Dataset};
use nas_core::space::Space;
use nas_core::Rng;
use nas_strategies::oneshot::{Split, SupernetHost};

fn space(c: usize, side: usize) -> Box<dyn Space> {
    super::small_nb201(4, c, side)
}

fn trainer<'a>(
    sp: &'a dyn Space,
    train: &'a Dataset,
    val: &'a Dataset,
    augment: Augment,
) -> SupernetTrainer<'a> {
    let cfg = TrainerConfig {
        batch_size: 4,
        epochs: 2,
        augment,
        ..TrainerConfig::default()
    };
    SupernetTrainer::new(sp, train, val, cfg).unwrap()
}

/// The first training batch of a trainer made with `augment`.
fn first_batch(sp: &dyn Space, train: &Dataset, val: &Dataset, augment: Augment) -> Vec<f32> {
    let mut t = trainer(sp, train, val, augment);
    t.next_batch(Split::Train).unwrap();
    t.train_batch().unwrap().0.to_vec()
}

#[test]
fn cifar_shaped_training_batches_are_cropped_and_flipped() {
    let (c, side) = (3, 32);
    let sp = space(c, side);
    let train = Dataset::random(16, c, side, 10, &mut Rng::new(1));
    let val = Dataset::random(8, c, side, 10, &mut Rng::new(2));
    let recipe = Augment::standard_for(c, side, side);
    assert_eq!((recipe.random_crop_pad, recipe.hflip), (4, true));
    let raw = first_batch(sp.as_ref(), &train, &val, Augment::default());
    let aug = first_batch(sp.as_ref(), &train, &val, recipe.clone());
    assert_eq!(raw.len(), aug.len());
    // Each image only moves its own pixels (per channel) and pads with zeros.
    let plane = side * side;
    let mut changed = 0;
    for (r, a) in raw.chunks(plane).zip(aug.chunks(plane)) {
        assert!(
            a.iter().all(|v| *v == 0.0 || r.contains(v)),
            "an augmented pixel that is neither padding nor a pixel of its own plane"
        );
        changed += (r != a) as usize;
    }
    assert!(changed >= 8, "{changed} of 12 planes changed");
    // Validation batches are not augmented.
    let mut t = trainer(sp.as_ref(), &train, &val, recipe.clone());
    let mut u = trainer(sp.as_ref(), &train, &val, Augment::default());
    t.next_batch(Split::Val).unwrap();
    u.next_batch(Split::Val).unwrap();
    let mix = t.info().one_hot(&vec![1; t.info().choices.len()]);
    let (vt, vu) = (
        t.evaluate(&mix, 1, 0, nas_strategies::oneshot::Subset::Next)
            .unwrap(),
        u.evaluate(&mix, 1, 0, nas_strategies::oneshot::Subset::Next)
            .unwrap(),
    );
    assert_eq!(vt, vu);
}

#[test]
fn augmented_batches_repeat_after_a_checkpoint() {
    let (c, side) = (3, 32);
    let sp = space(c, side);
    let train = Dataset::random(16, c, side, 10, &mut Rng::new(3));
    let val = Dataset::random(8, c, side, 10, &mut Rng::new(4));
    let recipe = Augment::standard_for(c, side, side);
    let dir = std::env::temp_dir().join(format!("nas-augment-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut t = trainer(sp.as_ref(), &train, &val, recipe.clone());
    t.checkpoint_dir = Some(dir.clone());
    let mix = t.info().one_hot(&vec![3; t.info().choices.len()]);
    t.next_batch(Split::Train).unwrap();
    t.train_step(&mix, None).unwrap();
    t.checkpoint(&serde_json::json!({})).unwrap();
    t.next_batch(Split::Train).unwrap();
    let next = t.train_batch().unwrap().0.to_vec();
    let mut r = trainer(sp.as_ref(), &train, &val, recipe);
    r.checkpoint_dir = Some(dir.clone());
    r.load_checkpoint().unwrap().unwrap();
    r.next_batch(Split::Train).unwrap();
    assert_eq!(r.train_batch().unwrap().0, &next[..]);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn other_shapes_are_not_augmented() {
    // Fashion-MNIST's shape: no recipe, the batches as they are.
    let recipe = Augment::standard_for(1, 28, 28);
    assert!(recipe.is_off());
    let sp = space(1, 28);
    let train = Dataset::random(16, 1, 28, 10, &mut Rng::new(5));
    let val = Dataset::random(8, 1, 28, 10, &mut Rng::new(6));
    assert_eq!(
        first_batch(sp.as_ref(), &train, &val, recipe),
        first_batch(sp.as_ref(), &train, &val, Augment::default())
    );
}
