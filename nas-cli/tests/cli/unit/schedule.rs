//! A strategy's weight schedule in the host (`SupernetHost::set_weight_schedule`): the
//! rate each weight step takes, kept in the checkpoint, refused beside the modes whose
//! rates follow the host's own schedule.

use nas_cli::trainer::{SupernetTrainer, TrainerConfig};
use nas_core::data::Dataset;
use nas_core::Rng;
use nas_strategies::oneshot::{HyperSpec, Split, SslSpec, SupernetHost, WeightSchedule};

const SCHEDULE: WeightSchedule = WeightSchedule {
    lr: 0.01,
    warmup_steps: 3,
    warmup_lr: 1e-3,
};

/// A C=4, N=1 NAS-Bench-201 space on 1x8x8 images.
fn space() -> Box<dyn nas_core::space::Space> {
    super::small_nb201(4, 1, 8)
}

fn data(n: usize, seed: u64) -> Dataset {
    Dataset::random(n, 1, 8, 10, &mut Rng::new(seed))
}

fn trainer<'a>(
    space: &'a dyn nas_core::space::Space,
    train: &'a Dataset,
    val: &'a Dataset,
) -> SupernetTrainer<'a> {
    let cfg = TrainerConfig {
        batch_size: 4,
        epochs: 2,
        ..TrainerConfig::default()
    };
    SupernetTrainer::new(space, train, val, cfg).unwrap()
}

#[test]
fn weight_steps_follow_a_strategys_schedule_across_a_checkpoint() {
    let sp = space();
    let (train, val) = (data(40, 1), data(8, 2));
    let dir = std::env::temp_dir().join(format!("nas-schedule-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut t = trainer(sp.as_ref(), &train, &val);
    t.checkpoint_dir = Some(dir.clone());
    let total = 2 * (40 / 4);
    assert!(t
        .set_weight_schedule(&WeightSchedule {
            lr: 0.0,
            ..SCHEDULE
        })
        .is_err());
    t.set_weight_schedule(&SCHEDULE).unwrap();
    let mix = t.info().one_hot(&vec![3; t.info().choices.len()]);
    let mut rates = vec![];
    for k in 0..total {
        assert_eq!(t.lr().unwrap(), SCHEDULE.lr_at(k, total), "step {k}");
        t.next_batch(Split::Train).unwrap();
        t.train_step(&mix, None).unwrap();
        rates.push(t.last_lr);
        if k == 4 {
            t.checkpoint(&serde_json::json!({})).unwrap();
        }
    }
    // Warm-up from 1e-3 to 0.01 over 3 steps, then a cosine to 0; the host's own
    // schedule (0.05 at step 0) is not used.
    assert_eq!(rates[0], 1e-3);
    assert_eq!(rates[3], 0.01);
    assert!(rates.windows(2).skip(3).all(|w| w[1] < w[0]), "{rates:?}");
    // A trainer resumed from the checkpoint at step 5 takes the same rates, though
    // nothing sets the schedule again.
    let mut r = trainer(sp.as_ref(), &train, &val);
    r.checkpoint_dir = Some(dir.clone());
    r.load_checkpoint().unwrap().unwrap();
    assert_eq!(r.lr().unwrap(), rates[5]);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_schedule_is_refused_beside_generated_weights_and_restarts() {
    let sp = space();
    let (train, val) = (data(40, 1), data(8, 2));
    let hyper = HyperSpec {
        hidden: 8,
        layers: 1,
        block: 4,
        lr: 1e-3,
    };
    let mut t = trainer(sp.as_ref(), &train, &val);
    t.generate_weights(&hyper).unwrap();
    let e = t.set_weight_schedule(&SCHEDULE).unwrap_err();
    assert!(e.contains("generated weights"), "{e}");
    let mut t = trainer(sp.as_ref(), &train, &val);
    t.set_weight_schedule(&SCHEDULE).unwrap();
    let e = t.generate_weights(&hyper).unwrap_err();
    assert!(e.contains("weight schedule"), "{e}");
    let ssl = SslSpec {
        taps: vec![],
        hidden: 8,
        dim: 4,
        crop_pad: 1,
        jitter: 0.3,
        ensemble: 1,
        lr_restarts: vec![10],
    };
    let e = t.self_supervised(&ssl).unwrap_err();
    assert!(
        e.contains("restarts") && e.contains("weight schedule"),
        "{e}"
    );
}
