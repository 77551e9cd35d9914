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
