//! The unit tests of `nas_cli::ssl` and of the trainer's self-supervised mode
//! (BossNAS's siamese supernets).

use nas_cli::trainer::{SupernetTrainer, TrainerConfig};
use nas_core::data::Dataset;
use nas_core::nn::{parameters, state};
use nas_core::space::Space;
use nas_core::Rng;
use nas_strategies::oneshot::{Split, SslSpec, SupernetHost, FEATURES};

fn space() -> Box<dyn Space> {
    super::small_nb201(4, 1, 12)
}

fn data(n: usize, seed: u64) -> Dataset {
    Dataset::random(n, 1, 12, 10, &mut Rng::new(seed))
}

fn spec(taps: &[&str]) -> SslSpec {
    SslSpec {
        taps: taps.iter().map(|t| t.to_string()).collect(),
        hidden: 16,
        dim: 8,
        crop_pad: 1,
        jitter: 0.3,
        ensemble: 2,
        lr_restarts: vec![],
    }
}

fn trainer<'a>(space: &'a dyn Space, train: &'a Dataset, val: &'a Dataset) -> SupernetTrainer<'a> {
    let cfg = TrainerConfig {
        batch_size: 8,
        epochs: 2,
        lr: 0.05,
        ..TrainerConfig::default()
    };
    SupernetTrainer::new(space, train, val, cfg).unwrap()
}

/// Every value of a module's tensors, in order.
fn values(m: &dyn nas_core::nn::Module) -> Vec<Vec<f32>> {
    state(m).into_iter().map(|(_, t)| t.to_vec()).collect()
}

fn paths(t: &SupernetTrainer, ds: &[[usize; 6]]) -> Vec<Vec<f32>> {
    ds.iter().map(|d| t.info().one_hot(d)).collect()
}

#[test]
fn the_target_follows_the_online_net_by_momentum() {
    let s = space();
    let (train, val) = (data(64, 1), data(32, 2));
    let mut t = trainer(s.as_ref(), &train, &val);
    t.self_supervised(&spec(&[FEATURES])).unwrap();
    let target = |t: &SupernetTrainer| -> Vec<Vec<f32>> {
        parameters(t.ssl().unwrap().target.net.as_ref())
            .into_iter()
            .map(|(_, p)| p.to_vec())
            .collect()
    };
    let online = |t: &SupernetTrainer| -> Vec<Vec<f32>> {
        parameters(t.supernet.net.as_ref())
            .into_iter()
            .map(|(_, p)| p.to_vec())
            .collect()
    };
    // The target starts as a copy of the online net.
    assert_eq!(target(&t), online(&t));
    let p = paths(&t, &[[3, 2, 3, 1, 3, 4], [2, 3, 1, 3, 0, 3]]);
    t.next_batch(Split::Train).unwrap();
    let t0 = target(&t);
    let loss = t.ssl_step(&p, FEATURES, 0.9).unwrap();
    assert!(loss.is_finite() && loss > 0.0 && loss <= 8.0, "{loss}");
    let (t1, o1) = (target(&t), online(&t));
    assert_ne!(o1, t0, "the online net trained");
    let mut moved = 0;
    for ((a, b), o) in t0.iter().zip(&t1).zip(&o1) {
        for ((a, b), o) in a.iter().zip(b).zip(o) {
            let want = 0.9 * a + 0.1 * o;
            assert!(
                (b - want).abs() <= 1e-6 * (1.0 + want.abs()),
                "{b} vs {want}"
            );
            moved += (b != a) as usize;
        }
    }
    assert!(moved > 0);
}

#[test]
fn a_block_tap_trains_only_the_layers_before_it() {
    let s = space();
    let (train, val) = (data(64, 1), data(32, 2));
    let mut t = trainer(s.as_ref(), &train, &val);
    t.self_supervised(&spec(&["edge_1_0", FEATURES])).unwrap();
    let named = |t: &SupernetTrainer, prefix: &str| -> Vec<Vec<f32>> {
        parameters(t.supernet.net.as_ref())
            .into_iter()
            .filter(|(n, _)| n.starts_with(prefix))
            .map(|(_, p)| p.to_vec())
            .collect()
    };
    let (stem, classifier) = (named(&t, "stem"), named(&t, "classifier"));
    assert!(!stem.is_empty() && !classifier.is_empty());
    t.next_batch(Split::Train).unwrap();
    // Paths with convolutions everywhere, so every layer could learn.
    let p = paths(&t, &[[3, 3, 3, 3, 3, 3]]);
    t.ssl_step(&p, "edge_1_0", 0.99).unwrap();
    assert_ne!(named(&t, "stem"), stem, "the stem is before the tap");
    assert_eq!(
        named(&t, "classifier"),
        classifier,
        "the classifier is after the tap: no gradient"
    );
    // A tap the spec does not have is refused by name.
    let e = t.ssl_step(&p, "edge_2_1", 0.99).unwrap_err();
    assert!(e.contains("`edge_2_1`"), "{e}");
}

#[test]
fn a_tap_the_supernet_does_not_pass_is_refused() {
    let s = space();
    let (train, val) = (data(64, 1), data(32, 2));
    let mut t = trainer(s.as_ref(), &train, &val);
    let e = t.self_supervised(&spec(&["nope"])).unwrap_err();
    assert!(e.contains("`nope`") && e.contains(FEATURES), "{e}");
}

#[test]
fn scores_and_steps_read_no_label_and_scoring_changes_nothing() {
    let s = space();
    let (train, val) = (data(64, 1), data(32, 2));
    // The same images with other labels.
    let relabel = |d: &Dataset| {
        let mut d = d.clone();
        for l in d.labels.iter_mut() {
            *l = (*l + 3) % 10;
        }
        d
    };
    let (train2, val2) = (relabel(&train), relabel(&val));
    let mut a = trainer(s.as_ref(), &train, &val);
    let mut b = trainer(s.as_ref(), &train2, &val2);
    let p = paths(
        &a,
        &[[3, 2, 3, 1, 3, 4], [2, 3, 1, 3, 0, 3], [1, 1, 3, 3, 2, 2]],
    );
    let ensemble = paths(&a, &[[3, 3, 3, 3, 3, 3], [2, 2, 2, 2, 2, 2]]);
    let mut scores = vec![];
    for t in [&mut a, &mut b] {
        t.self_supervised(&spec(&[FEATURES])).unwrap();
        let mut losses = vec![];
        for _ in 0..3 {
            t.next_batch(Split::Train).unwrap();
            losses.push(t.ssl_step(&p[..2], FEATURES, 0.99).unwrap());
        }
        let before = values(t.supernet.net.as_ref());
        let s1 = t.ssl_score(&p, &ensemble, FEATURES, 2, 2).unwrap();
        assert_eq!(
            values(t.supernet.net.as_ref()),
            before,
            "scoring changed the net"
        );
        let s2 = t.ssl_score(&p, &ensemble, FEATURES, 2, 2).unwrap();
        assert_eq!(s1, s2, "the same images and views on every call");
        assert!(s1.iter().all(|v| v.is_finite() && *v <= 0.0), "{s1:?}");
        assert!(
            s1[0] != s1[1] || s1[1] != s1[2],
            "every path scores alike: {s1:?}"
        );
        scores.push((losses, s1));
    }
    assert_eq!(scores[0], scores[1], "a label was read");
}

#[test]
fn training_raises_the_score_of_a_trained_path() {
    let s = space();
    let (train, val) = (data(256, 1), data(64, 2));
    let mut t = trainer(s.as_ref(), &train, &val);
    t.self_supervised(&spec(&[FEATURES])).unwrap();
    let p = paths(&t, &[[3, 3, 3, 3, 3, 3]]);
    let score = |t: &mut SupernetTrainer| t.ssl_score(&p, &p, FEATURES, 4, 4).unwrap()[0];
    let first = score(&mut t);
    for _ in 0..40 {
        t.next_batch(Split::Train).unwrap();
        t.ssl_step(&p, FEATURES, 0.99).unwrap();
    }
    let last = score(&mut t);
    println!("score {first} -> {last}");
    assert!(last > first + 1.0, "score {first} -> {last}");
}

/// BossNAS's blocks each anneal their own cosine from the full rate (the reference
/// builds an optimiser per block): with a restart at step `k` the rate falls towards 0
/// over steps 0..k and is back at the full rate at step `k`; without one it anneals once
/// over the search. Restarts that do not rise, or lie outside the search, are refused.
#[test]
fn learning_rate_restarts_start_the_cosine_again() {
    let s = space();
    let (train, val) = (data(64, 1), data(32, 2));
    let mut t = trainer(s.as_ref(), &train, &val);
    let total = 2 * t.info().batches_per_epoch;
    let k = total / 2;
    assert!(k >= 2, "{total} steps");
    let mut bad = spec(&[FEATURES]);
    for restarts in [vec![0], vec![k, k], vec![total]] {
        bad.lr_restarts = restarts.clone();
        let e = t.self_supervised(&bad).unwrap_err();
        assert!(e.contains("restarts"), "{restarts:?}: {e}");
    }
    let mut sp = spec(&[FEATURES]);
    sp.lr_restarts = vec![k];
    t.self_supervised(&sp).unwrap();
    let p = paths(&t, &[[3, 2, 3, 1, 3, 4]]);
    let mut rates = vec![];
    for _ in 0..=k {
        rates.push(t.current_lr());
        t.next_batch(Split::Train).unwrap();
        t.ssl_step(&p, FEATURES, 0.99).unwrap();
    }
    assert_eq!(rates[0], 0.05);
    assert!(rates[k - 1] < 0.05 * 0.2, "{rates:?}");
    assert_eq!(rates[k], 0.05, "{rates:?}");
    // One schedule over the search without restarts: half-way is half the rate.
    let mut t = trainer(s.as_ref(), &train, &val);
    t.self_supervised(&spec(&[FEATURES])).unwrap();
    for _ in 0..k {
        t.next_batch(Split::Train).unwrap();
        t.ssl_step(&p, FEATURES, 0.99).unwrap();
    }
    assert!((t.current_lr() - 0.025).abs() < 1e-6, "{}", t.current_lr());
}
