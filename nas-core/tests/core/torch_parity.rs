//! The seed network's forward output, loss, every parameter gradient, the input gradient
//! and the batch-norm running statistics against PyTorch on the same weights and input.
//! Fixtures come from `scripts/make_torch_fixtures.py` (PyTorch only to regenerate them).

use nas_core::io::load_tensors;
use nas_core::nn::{parameters, state};
use nas_core::space::builtin::seed::SeedSpace;
use nas_core::space::{fixed, Architecture};
use nas_core::{no_grad, Tensor};
use std::collections::HashMap;
use std::path::PathBuf;

/// Largest entry-wise difference relative to the reference's largest magnitude.
fn rel_err(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-12);
    got.iter()
        .zip(want)
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()))
        / scale
}

fn fixture(name: &str) -> HashMap<String, Tensor> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(name);
    load_tensors(&p).unwrap()
}

fn run(name: &str) {
    let f = fixture(name);
    let input = f["input"].clone();
    let labels: Vec<u32> = f["labels"].to_vec().iter().map(|v| *v as u32).collect();
    let space = SeedSpace {
        in_channels: input.dim(1),
        classes: 10,
    };
    let arch: Architecture =
        serde_json::from_str(r#"{"conv1": "conv3x3", "conv2": "conv5x5", "skip": [1]}"#).unwrap();
    let net = fixed(&space, &arch, 0).unwrap();
    // Our names carry the chosen candidate (`conv1.conv3x3.weight`); PyTorch's do not.
    let torch_name = |n: &str| n.replace(".conv3x3", "").replace(".conv5x5", "");
    no_grad(|| {
        for (n, t) in parameters(net.as_ref()) {
            let src = &f[&format!("param.{}", torch_name(&n))];
            assert_eq!(src.shape(), t.shape(), "{n}");
            t.data_mut().copy_from_slice(&src.data());
        }
    });
    let x = Tensor::parameter(input.to_vec(), input.shape());
    let logits = net.forward(&x);
    let loss = logits.cross_entropy(&labels);
    loss.backward();
    let tol = 1e-4;
    let e = rel_err(&logits.to_vec(), &f["logits"].to_vec());
    assert!(e < tol, "{name}: logits rel err {e}");
    let e = rel_err(&loss.to_vec(), &f["loss"].to_vec());
    assert!(e < tol, "{name}: loss rel err {e}");
    for (n, t) in parameters(net.as_ref()) {
        let e = rel_err(
            &t.grad().unwrap(),
            &f[&format!("grad.{}", torch_name(&n))].to_vec(),
        );
        assert!(e < tol, "{name}: grad of {n} rel err {e}");
    }
    let e = rel_err(&x.grad().unwrap(), &f["grad.input"].to_vec());
    assert!(e < tol, "{name}: input grad rel err {e}");
    let mut stats = 0;
    for (n, t) in state(net.as_ref()) {
        if n.starts_with("bn.running") {
            let e = rel_err(&t.to_vec(), &f[&n].to_vec());
            assert!(e < tol, "{name}: {n} rel err {e}");
            stats += 1;
        }
    }
    assert_eq!(stats, 2, "{name}: the network's BN running statistics");
    net.set_training(false);
    let ev = no_grad(|| net.forward(&input));
    let e = rel_err(&ev.to_vec(), &f["eval_logits"].to_vec());
    assert!(e < tol, "{name}: eval logits rel err {e}");
}

#[test]
fn seed_net_matches_pytorch_3x32x32() {
    run("seed_net_c3_32.safetensors");
}

#[test]
fn seed_net_matches_pytorch_1x28x28() {
    run("seed_net_c1_28.safetensors");
}
