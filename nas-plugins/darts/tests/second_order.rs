//! Second-order DARTS: the unrolled architecture gradient (with its finite-difference
//! Hessian-vector product) against a direct finite difference of `Lval(w', a)`, where
//! `w' = w - xi * (mu * v + dLtrain/dw(w, a) + wd * w)` is the weight optimiser's step
//! (momentum included), in the architecture logits `a`; and that virtual step against
//! the optimiser's real one.

use nas_cli::trainer::{SupernetTrainer, TrainerConfig};
use nas_core::data::Dataset;
use nas_core::nn::{Conv2d, Kind, Linear, Module};
use nas_core::space::{Builder, LayerChoice, Make, Space};
use nas_core::{ConvOpts, Rng, Tensor};
use nas_strategies::oneshot::{Split, SupernetHost, WeightOp};
use nas_strategy_darts::second_order_grad;

/// A tiny smooth supernet (tanh, no max-pool or ReLU kinks, whose gradients would jump
/// and make a finite difference through the unrolled step meaningless): two layer
/// choices over convolutions, then a pooled linear classifier.
struct Smooth;

struct SmoothNet {
    a: LayerChoice,
    b: LayerChoice,
    fc: Linear,
}

fn convs(cin: usize, cout: usize, ks: &[usize]) -> Vec<(String, Make<'static>)> {
    ks.iter()
        .map(|&k| {
            let make: Make = Box::new(move |rng: &mut Rng| {
                let o = ConvOpts {
                    padding: k / 2,
                    ..Default::default()
                };
                Box::new(Conv2d::new(cin, cout, k, o, rng)) as Box<dyn Module>
            });
            (format!("conv{k}"), make)
        })
        .collect()
}

impl Space for Smooth {
    fn name(&self) -> &str {
        "smooth"
    }
    fn build(&self, b: &mut Builder) -> Box<dyn Module> {
        let a = b.layer_choice("a", convs(1, 4, &[1, 3, 5]));
        let c = b.layer_choice("b", convs(4, 4, &[1, 3]));
        let fc = Linear::new(4 * 4 * 4, 10, &mut b.rng);
        Box::new(SmoothNet { a, b: c, fc })
    }
}

impl Module for SmoothNet {
    fn forward(&self, x: &Tensor) -> Tensor {
        let x = self.a.forward(x).tanh();
        let x = self
            .b
            .forward(&x)
            .tanh()
            .adaptive_avg_pool2d(4, 4)
            .flatten(1);
        self.fc.forward(&x)
    }
    fn visit(&self, p: &str, f: &mut dyn FnMut(String, &Tensor, Kind)) {
        self.a.visit(&nas_core::nn::join(p, "a"), f);
        self.b.visit(&nas_core::nn::join(p, "b"), f);
        self.fc.visit(&nas_core::nn::join(p, "fc"), f);
    }
}

/// `Lval` after one virtual step, at logits `alpha`, from the weights in slot 9.
fn unrolled_val_loss(t: &mut SupernetTrainer, alpha: &[f32], xi: f32) -> f64 {
    let p = t.info().softmax(alpha, 1.0);
    let mut scratch = vec![0.0; p.len()];
    t.weights(WeightOp::Restore { slot: 9 }).unwrap();
    t.mix_grad(&p, Split::Train, &mut scratch, true).unwrap();
    t.weights(WeightOp::VirtualStep { lr: xi }).unwrap();
    let loss = t
        .mix_grad(&p, Split::Val, &mut scratch, false)
        .unwrap()
        .loss;
    t.weights(WeightOp::Restore { slot: 9 }).unwrap();
    loss as f64
}

#[test]
fn unrolled_gradient_matches_a_direct_finite_difference() {
    let mut rng = Rng::new(3);
    let (train, val) = (
        Dataset::random(16, 1, 12, 10, &mut rng),
        Dataset::random(16, 1, 12, 10, &mut rng),
    );
    let space = Smooth;
    let cfg = TrainerConfig {
        batch_size: 16,
        ..TrainerConfig::default()
    };
    let mut t = SupernetTrainer::new(&space, &train, &val, cfg).unwrap();
    let info = t.info().clone();
    let alpha: Vec<f32> = (0..info.len()).map(|_| rng.normal() * 0.5).collect();
    let p = info.softmax(&alpha, 1.0);
    // A few real steps first, so the momentum buffers are not empty.
    for _ in 0..3 {
        t.next_batch(Split::Train).unwrap();
        t.train_step(&p, None).unwrap();
    }
    t.next_batch(Split::Train).unwrap();
    t.next_batch(Split::Val).unwrap();
    t.weights(WeightOp::Save { slot: 9 }).unwrap();
    let xi = 0.5;

    let (g_p, _) = second_order_grad(&mut t, &p, Some(xi)).unwrap();
    let second = info.softmax_backward(&p, &g_p, 1.0);
    let mut g1 = vec![0.0; p.len()];
    t.mix_grad(&p, Split::Val, &mut g1, false).unwrap();
    let first = info.softmax_backward(&p, &g1, 1.0);

    let h = 1e-2f32;
    let direct: Vec<f64> = (0..alpha.len())
        .map(|i| {
            let (mut up, mut down) = (alpha.clone(), alpha.clone());
            up[i] += h;
            down[i] -= h;
            (unrolled_val_loss(&mut t, &up, xi) - unrolled_val_loss(&mut t, &down, xi))
                / (2.0 * h as f64)
        })
        .collect();
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    let diff = |a: &[f32]| -> f64 {
        let d: Vec<f64> = a.iter().zip(&direct).map(|(x, y)| *x as f64 - y).collect();
        norm(&d) / norm(&direct)
    };
    let (err2, err1) = (diff(&second), diff(&first));
    println!(
        "direct {direct:?}\nsecond {second:?}\nfirst {first:?}\nerr2 {err2:.4} err1 {err1:.4}"
    );
    assert!(
        err2 < 0.02,
        "second-order gradient off by {err2:.4} (relative)"
    );
    // The check has teeth: the first-order gradient is measurably different.
    assert!(
        err1 > 10.0 * err2,
        "first-order error {err1:.4} vs second-order {err2:.4}"
    );
}

fn weights(t: &SupernetTrainer) -> Vec<f32> {
    nas_core::nn::parameters(t.supernet.net.as_ref())
        .into_iter()
        .flat_map(|(_, p)| p.to_vec())
        .collect()
}

#[test]
fn the_virtual_step_is_the_optimisers_step() {
    let mut rng = Rng::new(4);
    let (train, val) = (
        Dataset::random(32, 1, 12, 10, &mut rng),
        Dataset::random(16, 1, 12, 10, &mut rng),
    );
    let cfg = TrainerConfig {
        batch_size: 16,
        grad_clip: None,
        weight_decay: 0.01,
        epochs: 10,
        ..TrainerConfig::default()
    };
    let mut t = SupernetTrainer::new(&Smooth, &train, &val, cfg).unwrap();
    let info = t.info().clone();
    let p = info.softmax(&vec![0.0; info.len()], 1.0);
    for _ in 0..3 {
        t.next_batch(Split::Train).unwrap();
        t.train_step(&p, None).unwrap();
    }
    t.next_batch(Split::Train).unwrap();
    let before = weights(&t);
    t.weights(WeightOp::Save { slot: 0 }).unwrap();
    let mut scratch = vec![0.0; p.len()];
    t.mix_grad(&p, Split::Train, &mut scratch, true).unwrap();
    let lr = SupernetHost::lr(&mut t).unwrap();
    t.weights(WeightOp::VirtualStep { lr }).unwrap();
    let virtual_step = weights(&t);
    t.weights(WeightOp::Restore { slot: 0 }).unwrap();
    t.train_step(&p, None).unwrap();
    let real_step = weights(&t);
    let moved: f32 = before
        .iter()
        .zip(&real_step)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(moved > 1e-4, "the step moved nothing ({moved})");
    for (i, (v, r)) in virtual_step.iter().zip(&real_step).enumerate() {
        assert!(
            (v - r).abs() <= 1e-6 * (1.0 + r.abs()),
            "weight {i}: {v} vs {r}"
        );
    }
    // Without momentum and weight decay (the old virtual step) it would differ.
    t.weights(WeightOp::Restore { slot: 0 }).unwrap();
    t.mix_grad(&p, Split::Train, &mut scratch, true).unwrap();
    t.weights(WeightOp::AddDirection { scale: -lr }).unwrap();
    let plain = weights(&t);
    let off = plain
        .iter()
        .zip(&real_step)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(
        off > 1e-5,
        "momentum and weight decay changed nothing ({off})"
    );
}
