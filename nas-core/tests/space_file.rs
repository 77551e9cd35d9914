//! Declarative space files: the documented example builds and trains a step in every
//! mode; bad files are rejected with the place and the reason.

use nas_core::nn::Module;
use nas_core::space::file::FileSpace;
use nas_core::space::{arch, describe, fixed, Architecture, ChoiceKind, Supernet};
use nas_core::{Rng, Tensor};
use std::path::PathBuf;

fn example() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/spaces/small-cnn.json")
}

fn step(net: &dyn Module, c: usize) {
    let mut rng = Rng::new(1);
    let x = Tensor::randn(&[4, c, 28, 28], 1.0, &mut rng);
    let out = net.forward(&x);
    assert_eq!(out.shape(), &[4, 10]);
    let loss = out.cross_entropy(&[1, 2, 3, 4]);
    assert!(loss.item().is_finite());
    loss.backward();
    let ps = nas_core::nn::parameters(net);
    assert!(ps.iter().any(|(_, t)| t.grad().is_some()));
}

#[test]
fn example_file_describes_builds_and_trains() {
    let space = FileSpace::load(&example(), [1, 28, 28], 10).unwrap();
    let choices = describe(&space);
    let labels: Vec<&str> = choices.iter().map(|c| c.label.as_str()).collect();
    assert_eq!(
        labels,
        [
            "stem_kernel",
            "block1",
            "depth",
            "depth.0/skip",
            "depth.1/skip",
            "depth.2/skip"
        ]
    );
    assert!(matches!(choices[2].kind, ChoiceKind::Repeat { .. }));
    let a: Architecture = serde_json::from_str(
        r#"{"stem_kernel": 5, "block1": "sep5x5", "depth": 2, "depth.0/skip": [1], "depth.1/skip": [0]}"#,
    )
    .unwrap();
    step(fixed(&space, &a, 0).unwrap().as_ref(), 1);
    let mut rng = Rng::new(4);
    for _ in 0..4 {
        let a = arch::random(&choices, &mut rng);
        step(fixed(&space, &a, 0).unwrap().as_ref(), 1);
    }
    // A ValueChoice of the kernel and a variable Repeat have no weight-sharing form here.
    let e = Supernet::build(&space, false, 0).err().unwrap();
    assert!(e.contains("stem_kernel"), "{e}");
}

fn bad(json: &str) -> String {
    let p = std::env::temp_dir().join(format!(
        "nas-bad-space-{}-{}.json",
        std::process::id(),
        json.len()
    ));
    std::fs::write(&p, json).unwrap();
    let e = FileSpace::load(&p, [1, 28, 28], 10)
        .err()
        .expect("should be rejected");
    std::fs::remove_file(&p).ok();
    assert!(
        e.contains("nas-bad-space"),
        "error should name the file: {e}"
    );
    e
}

#[test]
fn bad_files_are_rejected_with_place_and_reason() {
    let tail = r#"{"op": "gap"}, {"op": "linear", "out": "classes"}"#;
    let e = bad(&format!(
        r#"{{"name": "x", "layers": [{{"op": "conv9", "out": 4}}, {tail}]}}"#
    ));
    assert!(
        e.contains("layers[0]") && e.contains("unknown op `conv9`"),
        "{e}"
    );
    let e = bad(&format!(
        r#"{{"name": "x", "layers": [{{"choice": "c", "candidates": {{"a": [{{"op": "conv", "out": 8}}], "b": [{{"op": "identity"}}]}}}}, {tail}]}}"#
    ));
    assert!(e.contains("layers[0]") && e.contains("disagree"), "{e}");
    let e = bad(&format!(
        r#"{{"name": "x", "layers": [{{"choice": "c", "candidates": {{}}}}, {tail}]}}"#
    ));
    assert!(e.contains("no candidates"), "{e}");
    let e = bad(&format!(
        r#"{{"name": "x", "layers": [{{"residual": "s", "body": [{{"op": "relu"}}]}}, {{"residual": "s", "body": [{{"op": "relu"}}]}}, {tail}]}}"#
    ));
    assert!(
        e.contains("layers[1]") && e.contains("duplicate label `s`"),
        "{e}"
    );
    let e = bad(&format!(
        r#"{{"name": "x", "layers": [{{"residual": "s", "body": [{{"op": "conv", "out": 5}}]}}, {tail}]}}"#
    ));
    assert!(e.contains("cannot be added"), "{e}");
    let e = bad(r#"{"name": "x", "layers": [{"op": "conv", "out": 4}]}"#);
    assert!(e.contains("class scores"), "{e}");
    let e = bad(r#"{"name": "x", "layers": [{"op": "linear", "out": 4}]}"#);
    assert!(e.contains("layers[0]") && e.contains("flat"), "{e}");
    let e = bad(r#"{"name": "x", "layerz": []}"#);
    assert!(e.contains("not a space file"), "{e}");
}
