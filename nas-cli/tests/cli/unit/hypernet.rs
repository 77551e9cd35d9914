//! The unit tests of `nas_cli::hypernet` (SMASH's generated weights) and of the
//! trainer's generated-weights mode.

use nas_cli::hypernet::HyperNet;
use nas_cli::trainer::{SupernetTrainer, TrainerConfig};
use nas_core::data::Dataset;
use nas_core::nn::parameters;
use nas_core::space::{Space, Supernet};
use nas_core::{no_grad, Rng, Tensor};
use nas_strategies::oneshot::{HyperSpec, OneShotInfo, Split, Subset, SupernetHost};

const SPEC: HyperSpec = HyperSpec {
    hidden: 16,
    layers: 2,
    block: 4,
    lr: 1e-2,
};

/// A C=6, N=1 NAS-Bench-201 space: its 6-channel stage has blocks of 4 and a partial
/// block of 2, so block edges are exercised.
fn space() -> Box<dyn Space> {
    super::small_nb201(6, 1, 16)
}

fn data(n: usize, seed: u64) -> Dataset {
    Dataset::random(n, 1, 16, 10, &mut Rng::new(seed))
}

fn trainer<'a>(space: &'a dyn Space, train: &'a Dataset, val: &'a Dataset) -> SupernetTrainer<'a> {
    let cfg = TrainerConfig {
        batch_size: 8,
        epochs: 2,
        ..TrainerConfig::default()
    };
    SupernetTrainer::new(space, train, val, cfg).unwrap()
}

/// The one-hot mix of NAS-Bench-201 decisions (0 none, 1 skip, 2 1x1, 3 3x3, 4 pool).
fn mix(info: &OneShotInfo, d: &[usize]) -> Vec<f32> {
    info.one_hot(d)
}

fn set_mix(s: &Supernet, info: &OneShotInfo, mix: &[f32]) {
    for (g, r) in info.groups.iter().zip(info.ranges()) {
        s.set_weights(&g.label, &mix[r]).unwrap();
    }
}

fn loss(s: &Supernet, x: &Tensor, y: &[u32]) -> Tensor {
    s.net.set_training(true);
    s.net.forward(x).cross_entropy(y)
}

/// Checks the HyperNet's parameter gradient against central differences of `loss` (a
/// function of the weights `h` generates for `m`), on the three largest entries of each
/// parameter tensor; a difference step that crosses a ReLU's kink is off, so the
/// closer of two steps counts.
fn check_gradient(h: &mut HyperNet, m: &[f32], loss: &dyn Fn() -> Tensor) {
    h.generate(m, true).unwrap();
    let l = loss();
    h.zero_grad();
    l.backward();
    h.backward().unwrap();
    let params: Vec<Tensor> = h.params().to_vec();
    for p in &params {
        let g = p.grad().expect("every HyperNet parameter gets a gradient");
        let mut order: Vec<usize> = (0..g.len()).collect();
        order.sort_by(|&a, &b| g[b].abs().total_cmp(&g[a].abs()));
        for &i in order.iter().take(3) {
            let v0 = p.data()[i];
            let mut at = |v: f32| {
                no_grad(|| p.data_mut()[i] = v);
                h.generate(m, false).unwrap();
                no_grad(|| loss().item()) as f64
            };
            let analytic = g[i] as f64;
            let error = [3e-3f32, 1e-3]
                .iter()
                .map(|e| {
                    let eps = e * v0.abs().max(0.1);
                    let numeric = (at(v0 + eps) - at(v0 - eps)) / (2.0 * eps as f64);
                    (numeric - analytic).abs()
                })
                .fold(f64::INFINITY, f64::min);
            no_grad(|| p.data_mut()[i] = v0);
            assert!(
                error <= 0.02 * analytic.abs() + 1e-4,
                "entry {i} of a {:?} tensor: analytic {analytic:.6}, off by {error:.6}",
                p.shape()
            );
        }
    }
}

#[test]
fn the_hypernet_gradient_matches_finite_differences() {
    // The gradient carried back from the generated weights (through their
    // normalisation and the block layout) into the HyperNet's parameters.
    let sp = space();
    let (train, val) = (data(16, 1), data(16, 2));
    let t = trainer(sp.as_ref(), &train, &val);
    let info = t.info().clone();
    let mut h = HyperNet::new(&t.supernet, &info, SPEC, 3).unwrap();
    let m = mix(&info, &[3, 2, 3, 1, 3, 2]);
    set_mix(&t.supernet, &info, &m);
    // The network's loss on a batch.
    let x = Tensor::from_vec(train.images[..8 * 256].to_vec(), &[8, 1, 16, 16]);
    let y = train.labels[..8].to_vec();
    check_gradient(&mut h, &m, &|| loss(&t.supernet, &x, &y));
    // Batch norm after each convolution makes that loss blind to a generated tensor's
    // scale, so its gradient is orthogonal to the weights and the normalisation's
    // projection does not show. A loss of the weights alone, which is not, checks it.
    let mut rng = Rng::new(4);
    let targets: Vec<(Tensor, Tensor)> = parameters(t.supernet.net.as_ref())
        .into_iter()
        .filter(|(_, w)| h.generates(w))
        .map(|(_, w)| {
            let r: Vec<f32> = (0..w.numel()).map(|_| rng.normal()).collect();
            let r = Tensor::from_vec(r, w.shape());
            (w, r)
        })
        .collect();
    check_gradient(&mut h, &m, &|| {
        targets
            .iter()
            .map(|(w, r)| w.mul(r).mul(w).sum())
            .reduce(|a, b| a.add(&b))
            .unwrap()
    });
}

#[test]
fn generated_weights_depend_on_the_whole_architecture() {
    let sp = space();
    let (train, val) = (data(16, 1), data(16, 2));
    let t = trainer(sp.as_ref(), &train, &val);
    let info = t.info().clone();
    let mut h = HyperNet::new(&t.supernet, &info, SPEC, 3).unwrap();
    // Edge 0's 3x3 convolution under two architectures that differ on edge 5 only.
    let conv = parameters(t.supernet.net.as_ref())
        .into_iter()
        .find(|(n, _)| n.contains("edge_1_0.nor_conv_3x3") && n.ends_with("weight"))
        .map(|(_, t)| t)
        .expect("edge 0's 3x3 convolution");
    assert!(h.generates(&conv));
    h.generate(&mix(&info, &[3, 0, 0, 0, 0, 1]), false).unwrap();
    let a = conv.to_vec();
    h.generate(&mix(&info, &[3, 0, 0, 0, 0, 4]), false).unwrap();
    let b = conv.to_vec();
    assert_ne!(
        a, b,
        "the other edge's op must change the generated weights"
    );
    // Scaled to Kaiming's norm for its shape (6 x 6 x 3 x 3, fan-in 54).
    let norm = a.iter().map(|v| v * v).sum::<f32>().sqrt();
    let want = (2.0 * a.len() as f32 / 54.0).sqrt();
    assert!((norm - want).abs() < 1e-4 * want, "{norm} against {want}");
    // The same architecture generates the same weights.
    h.generate(&mix(&info, &[3, 0, 0, 0, 0, 1]), false).unwrap();
    assert_eq!(conv.to_vec(), a);
}

#[test]
fn only_candidate_weights_are_generated_and_the_rest_stay_free() {
    let sp = space();
    let (train, val) = (data(16, 1), data(16, 2));
    let mut t = trainer(sp.as_ref(), &train, &val);
    let total: usize = parameters(t.supernet.net.as_ref())
        .iter()
        .map(|(_, t)| t.numel())
        .sum();
    let g = t.generate_weights(&SPEC).unwrap();
    // Per cell edge: the 1x1 (36) and 3x3 (324) convolutions; 6 edges, 3 cells of 6,
    // 12 and 24 channels (x1, x4, x16).
    assert_eq!(g.tensors, 2 * 6 * 3);
    assert_eq!(g.weights, 6 * (36 + 324) * (1 + 4 + 16));
    assert_eq!(g.weights + g.free_params, total);
    assert!(g.hypernet_params > 0);
    // The same spec again is a no-op; another is refused.
    assert_eq!(t.generate_weights(&SPEC).unwrap(), g);
    let other = HyperSpec { hidden: 8, ..SPEC };
    let e = t.generate_weights(&other).unwrap_err();
    assert!(e.contains("HyperNet"), "{e}");
    // Services that would bypass the HyperNet are refused.
    let info = t.info().clone();
    let m = mix(&info, &[3, 2, 3, 1, 3, 2]);
    t.next_batch(Split::Train).unwrap();
    let mut grad = vec![0.0; m.len()];
    let e = t.mix_grad(&m, Split::Train, &mut grad, false).unwrap_err();
    assert!(e.contains("generated weights"), "{e}");
}

#[test]
fn a_path_without_generated_weights_still_trains() {
    // Skip connections and pooling on every edge: nothing to generate, and the free
    // weights (stem, classifier) still take their step.
    let sp = space();
    let (train, val) = (data(16, 1), data(16, 2));
    let mut t = trainer(sp.as_ref(), &train, &val);
    t.generate_weights(&SPEC).unwrap();
    let info = t.info().clone();
    let free = parameters(t.supernet.net.as_ref())
        .into_iter()
        .find(|(n, _)| n.starts_with("classifier"))
        .map(|(_, t)| t)
        .expect("the classifier");
    let before = free.to_vec();
    for d in [[1, 1, 4, 1, 4, 0], [3, 1, 4, 1, 4, 0]] {
        t.next_batch(Split::Train).unwrap();
        t.train_step(&mix(&info, &d), None).unwrap();
    }
    assert_ne!(free.to_vec(), before);
}

#[test]
fn a_search_through_generated_weights_learns_and_resumes_bit_for_bit() {
    // A learnable task: the label is how much a noisy image is brightened.
    let make = |n: usize, seed: u64| {
        let mut d = data(n, seed);
        let mut rng = Rng::new(seed + 100);
        for i in 0..n {
            let q = rng.below(4);
            d.labels[i] = q as u32;
            d.images[i * 256..(i + 1) * 256]
                .iter_mut()
                .for_each(|v| *v += 1.5 * q as f32);
        }
        d
    };
    let (train, val) = (make(512, 1), make(64, 2));
    let sp = space();
    let dir = std::env::temp_dir().join(format!("nas-hypernet-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mixes: Vec<Vec<usize>> = {
        let mut rng = Rng::new(9);
        (0..120)
            .map(|_| (0..6).map(|_| 2 + rng.below(2)).collect())
            .collect()
    };
    let steps = |t: &mut SupernetTrainer, range: std::ops::Range<usize>| -> Vec<f32> {
        let info = t.info().clone();
        range
            .map(|k| {
                t.next_batch(Split::Train).unwrap();
                t.train_step(&mix(&info, &mixes[k]), None).unwrap()
            })
            .collect()
    };
    let mut t = trainer(sp.as_ref(), &train, &val);
    t.checkpoint_dir = Some(dir.clone());
    t.generate_weights(&SPEC).unwrap();
    let info = t.info().clone();
    let probe = mix(&info, &[3, 3, 3, 3, 3, 3]);
    let before = t.evaluate(&probe, 8, 0, Subset::Fixed).unwrap();
    let head = steps(&mut t, 0..100);
    t.checkpoint(&serde_json::json!({"k": 100})).unwrap();
    let tail = steps(&mut t, 100..120);
    let after = t.evaluate(&probe, 8, 4, Subset::Fixed).unwrap();
    assert!(
        after > before + 0.3 && after > 0.6,
        "generated weights learnt nothing: {before} -> {after} (losses {head:?} {tail:?})"
    );
    // A fresh trainer from the checkpoint: the HyperNet, its Adam and the free weights
    // come back, and the last 20 steps repeat exactly.
    let mut r = trainer(sp.as_ref(), &train, &val);
    r.checkpoint_dir = Some(dir.clone());
    assert_eq!(
        r.load_checkpoint().unwrap(),
        Some(serde_json::json!({"k": 100}))
    );
    r.generate_weights(&SPEC).unwrap();
    assert_eq!(steps(&mut r, 100..120), tail);
    assert_eq!(r.evaluate(&probe, 8, 4, Subset::Fixed).unwrap(), after);
    std::fs::remove_dir_all(&dir).ok();
}
