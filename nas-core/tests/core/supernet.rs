//! Supernets of the seed-net space: fused against unfused mixed ops, one-hot paths,
//! mixing-weight gradients against finite differences, and weight inheritance.

use nas_core::nn::parameters;
use nas_core::space::builtin::seed::SeedSpace;
use nas_core::space::{fixed, Architecture, Supernet};
use nas_core::{no_grad, Rng, Tensor};

const SPACE: SeedSpace = SeedSpace {
    in_channels: 3,
    classes: 10,
};

fn batch(seed: u64) -> (Tensor, Vec<u32>) {
    let mut rng = Rng::new(seed);
    let x = Tensor::randn(&[6, 3, 16, 16], 1.0, &mut rng);
    let y = (0..6).map(|_| rng.below(10) as u32).collect();
    (x, y)
}

fn set_all(s: &Supernet, w: &[(&str, &[f32])]) {
    for (l, v) in w {
        s.set_weights(l, v).unwrap();
    }
}

/// Largest difference relative to the largest reference magnitude.
fn rel(a: &[f32], b: &[f32]) -> f32 {
    let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-12);
    a.iter()
        .zip(b)
        .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()))
        / scale
}

#[test]
fn fused_and_unfused_mixed_ops_agree_on_outputs_and_every_gradient() {
    let fused = Supernet::build(&SPACE, true, 5).unwrap();
    let plain = Supernet::build(&SPACE, false, 5).unwrap();
    let w: &[(&str, &[f32])] = &[
        ("conv1", &[0.3, 0.7]),
        ("conv2", &[0.55, 0.45]),
        ("skip", &[0.4, 0.6]),
    ];
    set_all(&fused, w);
    set_all(&plain, w);
    let (x, y) = batch(1);
    let outs: Vec<Vec<f32>> = [&fused, &plain]
        .iter()
        .map(|s| {
            let out = s.net.forward(&x);
            out.cross_entropy(&y).backward();
            out.to_vec()
        })
        .collect();
    let e = rel(&outs[0], &outs[1]);
    assert!(e < 1e-5, "outputs differ: {e}");
    let (pf, pp) = (
        parameters(fused.net.as_ref()),
        parameters(plain.net.as_ref()),
    );
    assert_eq!(pf.len(), pp.len());
    for ((nf, tf), (np, tp)) in pf.iter().zip(&pp) {
        assert_eq!(nf, np);
        let e = rel(&tf.grad().unwrap(), &tp.grad().unwrap());
        assert!(e < 1e-5, "gradient of {nf} differs: {e}");
    }
    for l in ["conv1", "conv2", "skip"] {
        let (a, b) = (fused.weight_grad(l).unwrap(), plain.weight_grad(l).unwrap());
        let e = rel(&a, &b);
        assert!(
            e < 1e-5,
            "mixing-weight gradient of {l} differs: {a:?} vs {b:?}"
        );
    }
}

/// A candidate conv's output is linear in its own weight and bias, so scaling its mixing
/// weight by (1 + t) is the same as scaling its parameters by (1 + t). Hence, exactly,
/// `a_i dL/da_i = <dL/dW_i, W_i> + <dL/db_i, b_i>`: the mixing-weight gradient checked
/// against the parameter gradients, which come from an independent code path. (Finite
/// differences are too noisy here: ReLU and max-pool kinks make the loss non-smooth at
/// any step that moves it measurably in f32.)
#[test]
fn mixing_weight_gradients_agree_with_parameter_gradients() {
    for fused in [false, true] {
        let s = Supernet::build(&SPACE, fused, 9).unwrap();
        let (x, y) = batch(2);
        let w: &[(&str, &[f32])] = &[
            ("conv1", &[0.3, 0.7]),
            ("conv2", &[0.6, 0.4]),
            ("skip", &[0.5, 0.5]),
        ];
        set_all(&s, w);
        s.net.forward(&x).cross_entropy(&y).backward();
        let params = parameters(s.net.as_ref());
        for (label, alphas) in &w[..2] {
            let g = s.weight_grad(label).unwrap();
            for (i, cand) in ["conv3x3", "conv5x5"].iter().enumerate() {
                let prefix = format!("{label}.{cand}.");
                let dot: f64 = params
                    .iter()
                    .filter(|(n, _)| n.starts_with(&prefix))
                    .map(|(_, t)| {
                        let gr = t.grad().unwrap();
                        t.data()
                            .iter()
                            .zip(&gr)
                            .map(|(a, b)| *a as f64 * *b as f64)
                            .sum::<f64>()
                    })
                    .sum();
                let lhs = alphas[i] as f64 * g[i] as f64;
                assert!(
                    (lhs - dot).abs() < 1e-4 * (1.0 + dot.abs()),
                    "fused={fused} {label}/{cand}: a*dL/da = {lhs} but <dL/dW, W> = {dot}"
                );
            }
        }
        // An architecture step alone gives the same mixing-weight gradients and touches
        // no parameter.
        let again = Supernet::build(&SPACE, fused, 9).unwrap();
        set_all(&again, w);
        again.backward_mixing(&again.net.forward(&x).cross_entropy(&y));
        for l in ["conv1", "conv2", "skip"] {
            let (a, b) = (again.weight_grad(l).unwrap(), s.weight_grad(l).unwrap());
            assert!(rel(&a, &b) < 1e-5, "fused={fused} {l}: {a:?} vs {b:?}");
        }
        assert!(parameters(again.net.as_ref())
            .iter()
            .all(|(_, t)| t.grad().is_none()));
        // The skip choice mixes [x1, x1 + x0]; the loss moves with it.
        let gs = s.weight_grad("skip").unwrap();
        assert!(
            gs.iter().all(|v| v.is_finite()) && gs.iter().any(|v| *v != 0.0),
            "{gs:?}"
        );
    }
}

#[test]
fn one_hot_paths_compute_only_the_active_candidates_and_match_the_derived_network() {
    let s = Supernet::build(&SPACE, true, 3).unwrap();
    set_all(
        &s,
        &[
            ("conv1", &[0.0, 1.0]),
            ("conv2", &[1.0, 0.0]),
            ("skip", &[0.0, 1.0]),
        ],
    );
    let (x, y) = batch(3);
    let out = s.net.forward(&x);
    out.cross_entropy(&y).backward();
    for (n, t) in parameters(s.net.as_ref()) {
        let off = n.starts_with("conv1.conv3x3") || n.starts_with("conv2.conv5x5");
        assert_eq!(t.grad().is_none(), off, "{n}: gradient presence");
    }
    let arch: Architecture =
        serde_json::from_str(r#"{"conv1": "conv5x5", "conv2": "conv3x3", "skip": [1]}"#).unwrap();
    let sub = s.derive(&SPACE, &arch).unwrap();
    // Same weights, same batch statistics: the same function.
    let sub_out = no_grad(|| sub.forward(&x));
    let e = rel(&sub_out.to_vec(), &out.to_vec());
    assert!(
        e < 1e-5,
        "derived subnet differs from the one-hot supernet: {e}"
    );
    // The derived network is an ordinary fixed network of the space.
    let plain = fixed(&SPACE, &arch, 0).unwrap();
    assert_eq!(
        parameters(plain.as_ref()).len(),
        parameters(sub.as_ref()).len()
    );
}

/// A weight of `-0.0` keeps its candidate computed at weight zero: the output is that of
/// the one-hot path, and the weight gets a gradient, the same from the fused and the
/// unfused mixed op (independent code paths); `+0.0` computes nothing and gets none.
/// (What ProxylessNAS's two-path gradient needs. A finite difference is no check here:
/// with ReLU and max-pool kinks this small network's loss is jagged at that scale.)
#[test]
fn negative_zero_weights_compute_a_candidate_at_weight_zero() {
    let (x, y) = batch(4);
    let mut kept_grads = vec![];
    for fused in [false, true] {
        let s = Supernet::build(&SPACE, fused, 11).unwrap();
        let loss_at = |conv1: &[f32]| -> (f32, Vec<f32>) {
            set_all(
                &s,
                &[
                    ("conv1", conv1),
                    ("conv2", &[1.0, 0.0]),
                    ("skip", &[0.0, 1.0]),
                ],
            );
            s.zero_weight_grads();
            let loss = s.net.forward(&x).cross_entropy(&y);
            s.backward_mixing(&loss);
            (loss.item(), s.weight_grad("conv1").unwrap())
        };
        let (off, g_off) = loss_at(&[1.0, 0.0]);
        let (kept, g_kept) = loss_at(&[1.0, -0.0]);
        assert!(
            (off - kept).abs() <= 1e-6 * off.abs(),
            "fused {fused}: a weight-zero candidate adds nothing ({off} vs {kept})"
        );
        assert_eq!(g_off[1], 0.0, "a switched-off candidate gets no gradient");
        assert!(
            g_kept[1] != 0.0,
            "fused {fused}: the kept candidate has a gradient"
        );
        kept_grads.push(g_kept[1]);
    }
    assert!(
        rel(&kept_grads[1..], &kept_grads[..1]) < 1e-3,
        "fused and unfused disagree: {kept_grads:?}"
    );
}
