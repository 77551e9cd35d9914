//! The unit tests of `nas_cli::distill` (`nas-cli/src/distill.rs`).

use nas_cli::distill::*;
use nas_core::Tensor;
use nas_strategies::oneshot::DistillLoss;

const CLASSES: usize = 5;

/// Student logits of 3 images, and the teacher's: image 0 close, image 1 where the
/// student is sure of class 0 and the teacher of class 3, image 2 the reverse.
fn logits() -> (Vec<f32>, Vec<f32>) {
    let student = vec![
        0.3, -0.2, 0.5, 0.1, -0.4, //
        4.0, 0.2, -0.5, -1.0, 0.1, //
        0.0, 0.3, -0.2, -0.9, 0.4,
    ];
    let teacher = vec![
        0.2, -0.1, 0.6, 0.0, -0.3, //
        0.1, -0.3, 0.2, 3.5, -0.2, //
        -0.5, 0.2, 3.0, 0.4, -1.0,
    ];
    (student, teacher)
}

/// The gradient the engine computes for `student_loss` with respect to the logits.
fn engine_grad(z: &[f32], lp: &[f64], loss: DistillLoss) -> (Vec<f32>, Figures) {
    let t = Tensor::parameter(z.to_vec(), &[z.len() / CLASSES, CLASSES]);
    let labels = vec![0u32; z.len() / CLASSES];
    let (l, f) = student_loss(&t, lp, &labels, loss);
    l.backward();
    (t.grad().unwrap(), f)
}

/// The clipped divergence as a function whose exact gradient is the clipped
/// estimator: per class, `phi(q) = p^a q^(1-a) / (a (a - 1))` where the ratio
/// `(p/q)^a` is within the clip, continued linearly with the clipped slope
/// `-clip / a` where it is not (the KL limits likewise), summed over classes and
/// averaged over images; `alphas` holds each image's alpha.
fn clipped_divergence(z: &[f64], lp: &[f64], alphas: &[f64], clip: f64) -> f64 {
    let mut total = 0.0;
    for (r, row) in z.chunks(CLASSES).enumerate() {
        let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
        let a = alphas[r];
        for k in 0..CLASSES {
            let q = (row[k] - lse).exp();
            let p = lp[r * CLASSES + k].exp();
            total += if (a - 1.0).abs() < NEAR {
                -p * q.ln()
            } else if a.abs() < NEAR {
                let qs = p / clip;
                if q >= qs {
                    q * (q / p).ln()
                } else {
                    qs * (qs / p).ln() + (1.0 - clip.ln()) * (q - qs)
                }
            } else {
                let phi = |q: f64| p.powf(a) * q.powf(1.0 - a) / (a * (a - 1.0));
                let qs = p * clip.powf(-1.0 / a);
                let inside = if a > 0.0 { q >= qs } else { q <= qs };
                if inside {
                    phi(q)
                } else {
                    phi(qs) - clip / a * (q - qs)
                }
            };
        }
    }
    total / (z.len() / CLASSES) as f64
}

/// Checks the engine's gradient against central differences of `clipped_divergence`
/// with each image's alpha as `student_loss` chose it.
fn check(loss: DistillLoss, alphas: &[f64], clip: f64) -> Figures {
    let (z, t) = logits();
    let lp = log_probs(&t, CLASSES);
    let (g, f) = engine_grad(&z, &lp, loss);
    let z64: Vec<f64> = z.iter().map(|&v| v as f64).collect();
    for i in 0..z.len() {
        let h = 1e-5;
        let (mut zp, mut zm) = (z64.clone(), z64.clone());
        zp[i] += h;
        zm[i] -= h;
        let fd = (clipped_divergence(&zp, &lp, alphas, clip)
            - clipped_divergence(&zm, &lp, alphas, clip))
            / (2.0 * h);
        assert!(
            (fd - g[i] as f64).abs() < 1e-4 + 1e-3 * fd.abs(),
            "{loss:?}: logit {i}: engine {} vs finite differences {fd}",
            g[i]
        );
    }
    f
}

// A wrong direction of the divergence (D(q||p) for D(p||q)), a clip applied to the
// ratio instead of its power, a clipped ratio whose gradient is 0 (the derivative of
// the clipped value) rather than the clipped slope, a sign error, or the selection
// taking the smaller divergence would each move at least one logit's gradient off
// the finite differences here.

#[test]
fn the_alpha_divergence_gradient_matches_finite_differences_unclipped() {
    // A clip no ratio reaches: the exact gradient of D_alpha at each image's alpha.
    for (lo, hi) in [(-0.5f32, 0.5f32), (0.3, 2.0), (-2.0, -1.5)] {
        let loss = DistillLoss::Alpha {
            alpha_min: lo,
            alpha_max: hi,
            clip: 1e30,
        };
        let alphas = chosen(loss);
        let f = check(loss, &alphas, 1e30);
        assert_eq!(f.clipped, 0);
    }
}

#[test]
fn the_alpha_divergence_gradient_matches_finite_differences_clipped() {
    // The paper's defaults (alpha -1 and 1, clip 5) and a positive pair: images 1
    // and 2, where the two disagree, have ratios past the clip.
    for (lo, hi, clip) in [(-1.0f32, 1.0f32, 5.0f32), (0.5, 2.0, 3.0), (-1.0, 0.0, 2.0)] {
        let loss = DistillLoss::Alpha {
            alpha_min: lo,
            alpha_max: hi,
            clip,
        };
        let alphas = chosen(loss);
        let f = check(loss, &alphas, clip as f64);
        assert!(f.clipped > 0, "{loss:?} clipped nothing: {f:?}");
    }
    // With the defaults, some image takes each side.
    let loss = DistillLoss::Alpha {
        alpha_min: -1.0,
        alpha_max: 1.0,
        clip: 5.0,
    };
    let a = chosen(loss);
    assert!(a.contains(&-1.0) && a.contains(&1.0), "{a:?}");
}

/// Each image's alpha as `student_loss` picks it (the larger divergence), computed
/// here from the closed form (clipped ratios as the reference's value).
fn chosen(loss: DistillLoss) -> Vec<f64> {
    let DistillLoss::Alpha {
        alpha_min,
        alpha_max,
        clip,
    } = loss
    else {
        unreachable!()
    };
    let (z, t) = logits();
    let (lq, lp) = (log_probs(&z, CLASSES), log_probs(&t, CLASSES));
    let value = |r: usize, a: f64| -> f64 {
        (0..CLASSES)
            .map(|k| {
                let (q, p) = (lq[r * CLASSES + k].exp(), lp[r * CLASSES + k].exp());
                if (a - 1.0).abs() < NEAR {
                    p * (p / q).ln()
                } else if a.abs() < NEAR {
                    -q * (p / q).min(clip as f64).ln()
                } else {
                    q * ((p / q).powf(a).min(clip as f64) - 1.0) / (a * (a - 1.0))
                }
            })
            .sum()
    };
    (0..3)
        .map(|r| {
            let (lo, hi) = (alpha_min as f64, alpha_max as f64);
            if value(r, lo) > value(r, hi) {
                lo
            } else {
                hi
            }
        })
        .collect()
}

#[test]
fn the_kl_choice_is_kl_and_alpha_one() {
    let (z, t) = logits();
    let lp = log_probs(&t, CLASSES);
    // Its gradient is KL(p||q)'s (finite differences of sum_k -p_k log q_k).
    let f = check(DistillLoss::Kl, &[1.0; 3], 1.0);
    // Its value is KL(p||q), computed here directly.
    let lq = log_probs(&z, CLASSES);
    let kl: f64 = (0..lq.len())
        .map(|i| lp[i].exp() * (lp[i] - lq[i]))
        .sum::<f64>()
        / 3.0;
    assert!((f.value as f64 - kl).abs() < 1e-6, "{} vs {kl}", f.value);
    // And the alpha-divergence at alpha 1 is the same loss, unclipped.
    let (g_kl, _) = engine_grad(&z, &lp, DistillLoss::Kl);
    let one = DistillLoss::Alpha {
        alpha_min: 1.0,
        alpha_max: 1.0,
        clip: 1.0,
    };
    let (g_one, f_one) = engine_grad(&z, &lp, one);
    assert_eq!(g_kl, g_one);
    assert_eq!(f_one.clipped, 0);
}

#[test]
fn no_distillation_is_the_cross_entropy_on_the_labels() {
    let (z, _) = logits();
    let t = Tensor::parameter(z.clone(), &[3, CLASSES]);
    let labels = [2u32, 0, 4];
    let (l, f) = student_loss(&t, &[0.0; 15], &labels, DistillLoss::None);
    let want = t.cross_entropy(&labels).item();
    assert_eq!(l.item(), want);
    assert_eq!(f.value, want);
}

/// Two trainers of `seed-net` on the same random data, weights and batches.
fn trainers() -> (
    nas_core::data::Dataset,
    nas_core::data::Dataset,
    Box<dyn nas_core::space::Space>,
) {
    let mut rng = nas_core::Rng::new(3);
    let train = nas_core::data::Dataset::random(64, 1, 28, 10, &mut rng);
    let val = nas_core::data::Dataset::random(32, 1, 28, 10, &mut rng);
    let space = nas_core::space::builtin::by_name(
        "seed-net",
        nas_core::space::builtin::InputSpec {
            channels: 1,
            height: 28,
            width: 28,
            classes: 10,
        },
    )
    .unwrap();
    (train, val, space)
}

fn weights(t: &nas_cli::trainer::SupernetTrainer) -> Vec<f32> {
    nas_core::nn::parameters(t.supernet.net.as_ref())
        .into_iter()
        .flat_map(|(_, p)| p.to_vec())
        .collect()
}

#[test]
fn a_distill_step_adds_every_paths_gradient_and_steps_once() {
    use nas_cli::trainer::{SupernetTrainer, TrainerConfig};
    use nas_strategies::oneshot::{Split, SupernetHost};
    let (train, val, space) = trainers();
    // Plain SGD from zero momentum, no decay, no clipping: one step moves the
    // weights by -lr * (the summed gradient).
    let cfg = TrainerConfig {
        batch_size: 16,
        weight_decay: 0.0,
        grad_clip: None,
        ..TrainerConfig::default()
    };
    let make = || SupernetTrainer::new(space.as_ref(), &train, &val, cfg.clone()).unwrap();
    let (mut a, mut b, mut c) = (make(), make(), make());
    let info = a.info().clone();
    let teacher = info.one_hot(&vec![1; info.choices.len()]);
    let w0 = weights(&a);
    for t in [&mut a, &mut b, &mut c] {
        t.next_batch(Split::Train).unwrap();
    }
    let la = a.train_step(&teacher, None).unwrap();
    // Without students a distillation step is the teacher's training step.
    let lb = b.distill_step(&teacher, &[], DistillLoss::Kl).unwrap();
    assert_eq!(lb.teacher, la);
    assert!(lb.students.is_empty());
    assert_eq!(weights(&a), weights(&b));
    // The teacher again as a student learning from the labels: the same gradient
    // twice, one step. Stepping once per path (or dropping the students' gradient)
    // would not double the move.
    let lc = c
        .distill_step(&teacher, &[teacher.clone()], DistillLoss::None)
        .unwrap();
    assert_eq!(lc.students, vec![la]);
    let (wa, wc) = (weights(&a), weights(&c));
    let mut moved = 0;
    for i in 0..w0.len() {
        let (da, dc) = (wa[i] - w0[i], wc[i] - w0[i]);
        assert!(
            (dc - 2.0 * da).abs() <= 1e-5 + 1e-3 * da.abs(),
            "weight {i}: moved {dc}, twice the teacher's is {}",
            2.0 * da
        );
        moved += (da != 0.0) as usize;
    }
    assert!(moved > 100, "{moved} weights moved");
    assert_eq!(c.lr().unwrap(), a.lr().unwrap(), "one step each");
    // A bad student is refused before anything trains.
    let w = weights(&c);
    let e = c
        .distill_step(&teacher, &[vec![0.5; 3]], DistillLoss::Kl)
        .unwrap_err();
    assert!(e.contains("mixing weights"), "{e}");
    let bad = DistillLoss::Alpha {
        alpha_min: 1.0,
        alpha_max: -1.0,
        clip: 5.0,
    };
    let e = c
        .distill_step(&teacher, &[teacher.clone()], bad)
        .unwrap_err();
    assert!(e.contains("alpha_min"), "{e}");
    assert_eq!(weights(&c), w);
}
