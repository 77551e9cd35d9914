//! The unit tests of `nas_core::space::mixed` (`nas-core/src/space/mixed.rs`).

use nas_core::nn::Module;
use nas_core::ops::ConvOpts;
use nas_core::space::mixed::*;
use nas_core::tensor::Tensor;

use nas_core::nn::Conv2d;
use nas_core::rng::Rng;

/// A layer choice of three convolutions (1x1, 3x3, 5x5; linear, so a fused op folds
/// the active ones into one), the same weights whether fused or not.
fn choice(alpha: &Tensor, fused: bool) -> LayerChoice {
    let mut rng = Rng::new(3);
    let ops = [1usize, 3, 5]
        .into_iter()
        .map(|k| {
            let o = ConvOpts {
                padding: k / 2,
                ..Default::default()
            };
            let conv = Conv2d::new(2, 4, k, o, &mut rng);
            (format!("conv{k}x{k}"), Box::new(conv) as Box<dyn Module>)
        })
        .collect();
    LayerChoice::mixed("op", ops, alpha.clone(), fused)
}

/// The mixing weights' gradient of `L = sum(tanh(y) * r)` over the choice's output
/// `y`, with bare gates or not, and `y`'s values.
fn gate_grads(w: &[f32], fused: bool, bare: bool) -> (Vec<f32>, Vec<f32>) {
    let alpha = Tensor::parameter(w.to_vec(), &[w.len()]);
    let op = choice(&alpha, fused);
    let mut rng = Rng::new(7);
    let x = Tensor::randn(&[2, 2, 5, 5], 1.0, &mut rng);
    let r = Tensor::randn(&[2, 4, 5, 5], 1.0, &mut rng);
    let y = if bare {
        with_bare_gates(|| op.forward(&x))
    } else {
        op.forward(&x)
    };
    y.tanh().mul(&r).sum().backward();
    (alpha.grad().unwrap_or_default(), y.to_vec())
}

#[test]
fn a_bare_gate_gets_the_sum_of_the_output_gradient_fused_or_not() {
    // Two candidates on (the fused path folds them) and one: each off candidate's
    // gate gets dL/dh = sum_i dL/dy_i = sum_i (1 - tanh(y_i)^2) r_i, on both paths.
    for w in [[0.3, 0.7, 0.0], [0.0, 1.0, 0.0]] {
        let off: Vec<usize> = (0..3).filter(|&i| w[i] == 0.0).collect();
        let mut seen = vec![];
        for fused in [true, false] {
            let (g, y) = gate_grads(&w, fused, true);
            let mut rng = Rng::new(7);
            let _x = Tensor::randn(&[2, 2, 5, 5], 1.0, &mut rng);
            let r = Tensor::randn(&[2, 4, 5, 5], 1.0, &mut rng).to_vec();
            let want: f64 = y
                .iter()
                .zip(&r)
                .map(|(&y, &r)| (1.0 - (y as f64).tanh().powi(2)) * r as f64)
                .sum();
            assert!(want.abs() > 0.1, "a test that cannot tell: {want}");
            for &i in &off {
                let e = (g[i] as f64 - want).abs() / want.abs();
                assert!(
                    e < 1e-4,
                    "{w:?} fused {fused}: gate {i} {} against {want}",
                    g[i]
                );
            }
            // The output is the plain mix: the gates add 0.
            let (g_plain, y_plain) = gate_grads(&w, fused, false);
            assert_eq!(y, y_plain);
            for i in 0..3 {
                if off.contains(&i) {
                    assert_eq!(g_plain[i], 0.0, "without bare gates an off gate gets 0");
                } else {
                    assert!((g[i] - g_plain[i]).abs() <= 1e-5 * g[i].abs().max(1.0));
                }
            }
            seen.push(g);
        }
        let e = seen[0]
            .iter()
            .zip(&seen[1])
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs() / b.abs().max(1e-3)));
        assert!(
            e < 1e-4,
            "{w:?}: fused and unfused gate gradients differ by {e}"
        );
    }
}

/// A fused choice between a 3x3 convolution and the identity (4 -> 4 channels) gives the
/// unfused weighted sum and the same mixing-weight gradients, on each of two passes
/// (the second reuses the identity kernel the first made), and again with a 1x1
/// convolution active instead, whose smaller kernel size needs another identity kernel.
#[test]
fn a_fused_identity_candidate_matches_the_weighted_sum_pass_after_pass() {
    let make = |alpha: &Tensor, fused: bool| {
        let mut rng = Rng::new(4);
        let ops: Vec<(String, Box<dyn Module>)> = [1usize, 3]
            .into_iter()
            .map(|k| {
                let o = ConvOpts {
                    padding: k / 2,
                    ..Default::default()
                };
                let conv = Conv2d::new(4, 4, k, o, &mut rng);
                (format!("conv{k}x{k}"), Box::new(conv) as Box<dyn Module>)
            })
            .chain(std::iter::once((
                "skip".to_string(),
                Box::new(nas_core::nn::Identity) as Box<dyn Module>,
            )))
            .collect();
        LayerChoice::mixed("op", ops, alpha.clone(), fused)
    };
    let mut rng = Rng::new(9);
    let x = Tensor::randn(&[2, 4, 5, 5], 1.0, &mut rng);
    let r = Tensor::randn(&[2, 4, 5, 5], 1.0, &mut rng);
    let run = |op: &LayerChoice, alpha: &Tensor| {
        alpha.zero_grad();
        let y = op.forward(&x);
        y.mul(&r).sum().backward();
        (y.to_vec(), alpha.grad().unwrap())
    };
    for w in [[0.0, 0.6, 0.4], [0.7, 0.0, 0.3], [0.0, 0.5, 0.5]] {
        let (af, au) = (
            Tensor::parameter(w.to_vec(), &[3]),
            Tensor::parameter(w.to_vec(), &[3]),
        );
        let (fused, unfused) = (make(&af, true), make(&au, false));
        for pass in 0..2 {
            let ((yf, gf), (yu, gu)) = (run(&fused, &af), run(&unfused, &au));
            for (a, b) in yf.iter().zip(&yu).chain(gf.iter().zip(&gu)) {
                assert!(
                    (a - b).abs() < 1e-4 * (1.0 + b.abs()),
                    "{w:?} pass {pass}: {a} vs {b}"
                );
            }
        }
    }
}

/// Drop path zeroes whole images of an edge's output with its probability and scales
/// the rest by 1/(1-p), so the mean is kept; its gradient is the mask. Unarmed (or at
/// 0) it leaves the tensor alone, and the same seed draws the same masks.
#[test]
fn drop_path_drops_whole_images() {
    use nas_core::space::{drop_path, with_drop_path};
    use nas_core::tensor::Tensor;
    let x = Tensor::parameter(vec![1.0; 400 * 6], &[400, 2, 3, 1]);
    assert_eq!(drop_path(&x).to_vec(), x.to_vec());
    assert_eq!(
        with_drop_path(0.0, 1, || drop_path(&x)).to_vec(),
        x.to_vec()
    );
    let y = with_drop_path(0.25, 7, || drop_path(&x));
    let v = y.to_vec();
    let mut dropped = 0;
    for img in v.chunks(6) {
        if img.iter().all(|&a| a == 0.0) {
            dropped += 1;
        } else {
            assert!(
                img.iter().all(|&a| (a - 1.0 / 0.75).abs() < 1e-6),
                "{img:?}"
            );
        }
    }
    // 100 expected of 400; a binomial's standard deviation is about 8.7.
    assert!((60..=140).contains(&dropped), "{dropped} of 400 dropped");
    y.sum().backward();
    assert_eq!(x.grad().unwrap(), v);
    assert_eq!(with_drop_path(0.25, 7, || drop_path(&x)).to_vec(), v);
    assert_ne!(with_drop_path(0.25, 8, || drop_path(&x)).to_vec(), v);
}

/// In the `darts` supernet the armed drop path changes a training forward pass, and
/// unarmed the pass is what it was.
#[test]
fn drop_path_reaches_the_darts_cells_edges() {
    use nas_core::rng::Rng;
    use nas_core::space::builtin::darts::DartsSpace;
    use nas_core::space::{with_drop_path, Supernet};
    use nas_core::tensor::Tensor;
    let space = DartsSpace {
        c: 4,
        layers: 2,
        ..DartsSpace::new(3, 10)
    };
    let sn = Supernet::build(&space, false, 0).unwrap();
    sn.net.set_training(true);
    let x = Tensor::randn(&[8, 3, 8, 8], 1.0, &mut Rng::new(1));
    let plain = sn.net.forward(&x).to_vec();
    assert_eq!(sn.net.forward(&x).to_vec(), plain);
    let dropped = with_drop_path(0.5, 3, || sn.net.forward(&x)).to_vec();
    assert_ne!(dropped, plain);
}
