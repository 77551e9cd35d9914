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
    // Named by the text's hash: tests run at once, and two texts may be of one length.
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    json.hash(&mut h);
    let p = std::env::temp_dir().join(format!(
        "nas-bad-space-{}-{:x}.json",
        std::process::id(),
        h.finish()
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

/// Writes `json` to a fresh temporary file and loads it for 1x28x28 images of 10
/// classes at `batch`; returns the error, checking that it names the file and came
/// quickly (nothing was built or allocated for the hostile numbers).
fn refused_at(json: &str, batch: usize) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let p = std::env::temp_dir().join(format!(
        "nas-hostile-space-{}-{}.json",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&p, json).unwrap();
    let t = std::time::Instant::now();
    let r = FileSpace::load_for_batch(&p, [1, 28, 28], 10, batch);
    let took = t.elapsed();
    std::fs::remove_file(&p).ok();
    let e = r
        .err()
        .unwrap_or_else(|| panic!("should be refused: {json}"));
    assert!(took.as_secs_f64() < 2.0, "took {took:?} to refuse: {e}");
    assert!(e.contains("nas-hostile-space"), "should name the file: {e}");
    e
}

fn refused(json: &str) -> String {
    refused_at(json, 64)
}

/// The error names the field (a path into the JSON) and its value.
fn names(e: &str, field: &str, value: &str) {
    assert!(
        e.contains(&format!("{field}: {value}")),
        "should name `{field}` = {value}: {e}"
    );
}

const TAIL: &str = r#"{"op": "gap"}, {"op": "linear", "out": "classes"}"#;

#[test]
fn hostile_dilation_is_refused() {
    let e = refused(&format!(
        r#"{{"name": "x", "layers": [{{"op": "conv", "out": 4, "kernel": 3, "dilation": 100}}, {TAIL}]}}"#
    ));
    names(&e, "layers[0].dilation", "100");
    let e = refused(&format!(
        r#"{{"name": "x", "layers": [{{"op": "dil_conv", "out": 4, "kernel": 5, "dilation": 1000000}}, {TAIL}]}}"#
    ));
    names(&e, "layers[0].dilation", "1000000");
}

#[test]
fn hostile_depths_are_refused() {
    let e = refused(&format!(
        r#"{{"name": "x", "layers": [{{"op": "conv", "out": 4}}, {{"repeat": "d", "depths": [1, 9223372036854775807], "body": [{{"op": "relu"}}]}}, {TAIL}]}}"#
    ));
    names(&e, "layers[1].depths[1]", "9223372036854775807");
    let e = refused(&format!(
        r#"{{"name": "x", "layers": [{{"op": "conv", "out": 8}}, {{"repeat": "d", "depths": [100000], "body": [{{"op": "conv", "out": 8}}]}}, {TAIL}]}}"#
    ));
    names(&e, "layers[1].depths[0]", "100000");
    // Nested repeats multiply.
    let e = refused(&format!(
        r#"{{"name": "x", "layers": [{{"op": "conv", "out": 8}}, {{"repeat": "a", "depths": [2, 1000], "body": [{{"repeat": "b", "depths": [1000], "body": [{{"op": "identity"}}]}}]}}, {TAIL}]}}"#
    ));
    names(&e, "layers[1].depths[1]", "1000");
}

#[test]
fn every_value_of_a_kernel_choice_is_checked() {
    let e = refused(&format!(
        r#"{{"name": "x", "layers": [{{"op": "conv", "out": 4, "kernel": {{"choice": "k", "values": [3, 4]}}}}, {TAIL}]}}"#
    ));
    names(&e, "layers[0].kernel.values[1]", "4");
    // Pool kernels that give different shapes cannot be one choice.
    let e = refused(&format!(
        r#"{{"name": "x", "layers": [{{"op": "max_pool", "kernel": {{"choice": "k", "values": [2, 3]}}}}, {TAIL}]}}"#
    ));
    names(&e, "layers[0].kernel.values[1]", "3");
    let e = refused(&format!(
        r#"{{"name": "x", "layers": [{{"choice": "c", "candidates": {{"a": [{{"op": "conv", "out": 4, "kernel": 6}}]}}}}, {TAIL}]}}"#
    ));
    names(&e, "layers[0].candidates.a[0].kernel", "6");
    // A stride-1 pooling pads to keep the size, which an even window cannot: it grew
    // 28x28 to 29x29 without a word (a residual around it failed later, elsewhere).
    let e = refused(&format!(
        r#"{{"name": "x", "layers": [{{"op": "max_pool", "kernel": 2, "stride": 1}}, {TAIL}]}}"#
    ));
    names(&e, "layers[0].kernel", "2");
    assert!(e.contains("odd"), "{e}");
}

#[test]
fn hostile_kernels_are_refused() {
    let e = refused(&format!(
        r#"{{"name": "x", "layers": [{{"op": "conv", "out": 4, "kernel": 4294967299}}, {TAIL}]}}"#
    ));
    names(&e, "layers[0].kernel", "4294967299");
    let e = refused(&format!(
        r#"{{"name": "x", "layers": [{{"op": "max_pool", "kernel": 4294967299, "stride": 1}}, {TAIL}]}}"#
    ));
    names(&e, "layers[0].kernel", "4294967299");
    let e = refused(&format!(
        r#"{{"name": "x", "layers": [{{"op": "avg_pool", "kernel": 18446744073709551615}}, {TAIL}]}}"#
    ));
    names(&e, "layers[0].kernel", "18446744073709551615");
}

#[test]
fn oversized_networks_are_refused() {
    let e = refused(&format!(
        r#"{{"name": "x", "layers": [{{"op": "conv", "out": 100000000}}, {TAIL}]}}"#
    ));
    names(&e, "layers[0].out", "100000000");
    let e = refused(
        r#"{"name": "x", "layers": [{"op": "gap"}, {"op": "linear", "out": 4000000000}, {"op": "linear", "out": "classes"}]}"#,
    );
    names(&e, "layers[1].out", "4000000000");
    // Every candidate of a layer choice is in the supernet: each of these fits, both
    // together do not.
    let e = refused(&format!(
        r#"{{"name": "x", "layers": [{{"choice": "c", "candidates": {{"a": [{{"op": "conv", "out": 16000}}], "b": [{{"op": "conv", "out": 16000, "kernel": 5}}]}}}}, {TAIL}]}}"#
    ));
    names(&e, "layers[0].candidates.b[0].out", "16000");
    assert!(e.contains("too large") && e.contains("batch 64"), "{e}");
}

#[test]
fn activation_memory_is_bounded_at_the_batch_size() {
    // A wide layer that fits one image but not a large batch.
    let json = format!(r#"{{"name": "x", "layers": [{{"op": "conv", "out": 512}}, {TAIL}]}}"#);
    let p = std::env::temp_dir().join(format!("nas-batch-space-{}.json", std::process::id()));
    std::fs::write(&p, &json).unwrap();
    let ok = FileSpace::load_for_batch(&p, [1, 28, 28], 10, 1);
    let ok2 = FileSpace::load_for_batch(&p, [1, 28, 28], 10, 2);
    std::fs::remove_file(&p).ok();
    // What it needs, 4 bytes each: the conv's 512x1x3x3 weights and 512 biases, the
    // linear's 512x10 and 10, and per image the conv's 512x28x28 outputs, the 512 pooled
    // and the 10 scores.
    let params = 512 * 9 + 512 + 512 * 10 + 10;
    let acts = 512 * 28 * 28 + 512 + 10;
    assert_eq!(ok.unwrap().bytes, 4 * (params + acts));
    assert_eq!(ok2.unwrap().bytes, 4 * (params + 2 * acts));
    let e = refused_at(&json, 100_000);
    names(&e, "layers[0].out", "512");
    assert!(e.contains("100000"), "should name the batch: {e}");
}

#[test]
fn labels_that_could_clash_with_repeat_labels_are_refused() {
    let e = refused(&format!(
        r#"{{"name": "x", "layers": [{{"repeat": "d", "depths": [1], "body": [{{"residual": "s", "body": [{{"op": "relu"}}]}}]}}, {{"residual": "d.0/s", "body": [{{"op": "relu"}}]}}, {TAIL}]}}"#
    ));
    names(&e, "layers[1].residual", "\"d.0/s\"");
}

#[test]
fn the_example_fits_every_bound() {
    let space = FileSpace::load_for_batch(&example(), [3, 32, 32], 10, 256).unwrap();
    assert!(!describe(&space).is_empty());
}

/// A stray or missing key is named, with its JSON path and the keys that fit there,
/// instead of serde's "did not match any variant of untagged enum".
#[test]
fn unknown_keys_are_named_with_the_keys_that_fit() {
    let tail = r#"{"op": "gap"}, {"op": "linear", "out": "classes"}"#;
    let cases = [
        (
            format!(
                r#"{{"name": "x", "layers": [{{"op": "conv", "out": 4, "kernal": 3}}, {tail}]}}"#
            ),
            vec![
                "layers[0]",
                "unknown key `kernal`",
                "op, out, kernel, stride, dilation, groups",
            ],
        ),
        (
            format!(
                r#"{{"name": "x", "layers": [{{"repeat": "r", "depths": [1], "body": [{{"op": "relu", "strde": 1, "pad": 0}}]}}, {tail}]}}"#
            ),
            vec!["layers[0].body[0]", "unknown keys `pad`, `strde`"],
        ),
        (
            format!(
                r#"{{"name": "x", "layers": [{{"choice": "c", "candidates": {{"a": [{{"opp": "relu"}}]}}}}, {tail}]}}"#
            ),
            vec![
                "layers[0].candidates.a[0]",
                "`opp`",
                "a choice takes choice, candidates",
                "a repeat takes repeat, depths, body",
                "a residual takes residual, body",
            ],
        ),
        (
            format!(
                r#"{{"name": "x", "layers": [{{"residual": "s", "body": [], "depths": [1]}}, {tail}]}}"#
            ),
            vec![
                "layers[0]",
                "unknown key `depths`",
                "a residual takes residual, body",
            ],
        ),
        (
            format!(r#"{{"name": "x", "layers": [{{"repeat": "r", "body": []}}, {tail}]}}"#),
            vec!["layers[0]", "needs `depths`", "repeat, depths, body"],
        ),
        (
            format!(
                r#"{{"name": "x", "layers": [{{"op": "conv", "out": 4, "kernel": {{"choice": "k", "value": [3]}}}}, {tail}]}}"#
            ),
            vec!["layers[0].kernel", "unknown key `value`", "choice, values"],
        ),
        (
            format!(r#"{{"name": "x", "layers": [{{"op": "conv", "choice": "c"}}, {tail}]}}"#),
            vec!["layers[0]", "`op` and `choice`"],
        ),
        (
            format!(
                r#"{{"name": "x", "layers": [{{"repeat": "r", "depths": "2", "body": []}}, {tail}]}}"#
            ),
            vec!["layers[0].depths", "not a list"],
        ),
        (
            r#"{"name": "x", "layerz": []}"#.to_string(),
            vec!["not a space file", "unknown key `layerz`", "name, layers"],
        ),
    ];
    for (json, want) in &cases {
        let e = bad(json);
        assert!(!e.contains("untagged"), "{e}");
        for w in want {
            assert!(e.contains(w), "`{w}` not in: {e}");
        }
    }
}

/// Each layer, put first in a file that ends in class scores, is refused with an error
/// containing its text.
fn refused_as_first_layer(cases: &[(&str, &str)]) {
    for (layer, want) in cases {
        let e = bad(&format!(r#"{{"name": "x", "layers": [{layer}, {TAIL}]}}"#));
        assert!(e.contains(want), "{layer}: {e}");
    }
}

/// What a space file could say that a search would read otherwise than its author
/// meant: a key given twice in one object (JSON readers keep the last: `{"a": ..., "a":
/// ...}` had one candidate, `"out": 4, "out": 8` eight channels), an empty label or
/// candidate name (an architecture could not name it), and a value given twice in a
/// value choice or a repeat's depths (one architecture under two indices). Each was
/// accepted before; each is now an error naming the place.
#[test]
fn keys_twice_empty_labels_and_values_twice_are_rejected() {
    refused_as_first_layer(&[
        (
            r#"{"choice": "block", "candidates": {"a": [{"op": "conv", "out": 4}], "a": [{"op": "conv", "out": 4, "kernel": 1}]}}"#,
            "layers[0].candidates: key `a` is given twice at line 1",
        ),
        (
            r#"{"op": "conv", "out": 4, "out": 8}"#,
            "layers[0]: key `out` is given twice",
        ),
        (
            r#"{"choice": "", "candidates": {"a": [{"op": "relu"}], "b": [{"op": "bn"}]}}"#,
            "layers[0].choice: \"\": a label may not be empty",
        ),
        (
            r#"{"choice": "c", "candidates": {" ": [{"op": "relu"}], "b": [{"op": "bn"}]}}"#,
            "layers[0].candidates: \" \": a candidate's name may not be empty",
        ),
        (
            r#"{"op": "conv", "out": 4, "kernel": {"choice": "k", "values": [3, 5, 3]}}"#,
            "layers[0].kernel.values[2]: 3 is given twice (also layers[0].kernel.values[0])",
        ),
        (
            r#"{"repeat": "r", "depths": [1, 2, 2], "body": [{"op": "relu"}]}"#,
            "layers[0].depths[2]: 2 is given twice (also layers[0].depths[1])",
        ),
    ]);
}

/// A setting an op does not take is an error naming the op and what it takes, as the
/// guide says (before, only keys no op takes were refused: `{"op": "bn", "stride": 2}`
/// built a batch norm that does not downsample, and `sep_conv`'s `groups` was checked
/// and then not used).
#[test]
fn a_setting_an_op_does_not_take_is_rejected() {
    refused_as_first_layer(&[
        (
            r#"{"op": "bn", "stride": 2}"#,
            "layers[0]: op `bn` takes no `stride` (it takes no settings)",
        ),
        (
            r#"{"op": "relu", "kernel": 7}"#,
            "layers[0]: op `relu` takes no `kernel`",
        ),
        (
            r#"{"op": "identity", "out": 99}"#,
            "layers[0]: op `identity` takes no `out`",
        ),
        (
            r#"{"op": "zero", "out": 4}"#,
            "layers[0]: op `zero` takes no `out` (it takes stride)",
        ),
        (
            r#"{"op": "max_pool", "kernel": 2, "dilation": 3}"#,
            "layers[0]: op `max_pool` takes no `dilation` (it takes kernel, stride)",
        ),
        (
            r#"{"op": "sep_conv", "out": 8, "groups": 4}"#,
            "layers[0]: op `sep_conv` takes no `groups` (it takes out, kernel, stride)",
        ),
        (
            r#"{"op": "dil_conv", "out": 8, "groups": 1}"#,
            "op `dil_conv` takes no `groups` (it takes out, kernel, stride, dilation)",
        ),
        // A value choice where only `kernel` takes one.
        (
            r#"{"op": "conv", "out": 8, "stride": {"choice": "s", "values": [1, 2]}}"#,
            "layers[0].stride: {\"choice\":\"s\",\"values\":[1,2]} is not a number (only `kernel` may be a value choice",
        ),
        (
            r#"{"op": "conv", "out": {"choice": "w", "values": [8, 16]}}"#,
            "is not a positive integer or \"classes\" (only `kernel` may be a value choice",
        ),
    ]);
    // Inside a candidate the place is the candidate's.
    refused_as_first_layer(&[(
        r#"{"choice": "c", "candidates": {"a": [{"op": "relu", "out": 1}], "b": [{"op": "bn"}]}}"#,
        "layers[0].candidates.a[0]: op `relu` takes no `out`",
    )]);
}

/// Sixty nested residuals load (each level is read once). Before, serde tried every kind
/// of layer in turn and read each residual's body twice per level: 2^60 reads, a load
/// that never ended (22 levels took 4 s). The load runs on a thread so that a return
/// to the old behaviour fails here instead of hanging the suite.
#[test]
fn deeply_nested_layers_load_in_one_read() {
    let mut layer = r#"{"op": "relu"}"#.to_string();
    for i in 0..60 {
        layer = format!(r#"{{"residual": "r{i}", "body": [{layer}]}}"#);
    }
    let json = format!(
        r#"{{"name": "nested", "layers": [{layer}, {{"op": "gap"}}, {{"op": "linear", "out": "classes"}}]}}"#
    );
    let p = std::env::temp_dir().join(format!("nas-nested-{}.json", std::process::id()));
    std::fs::write(&p, json).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let q = p.clone();
    std::thread::spawn(move || {
        let r = FileSpace::load(&q, [1, 28, 28], 10).map(|s| describe(&s).len());
        tx.send(r).ok();
    });
    let got = rx.recv_timeout(std::time::Duration::from_secs(120));
    std::fs::remove_file(&p).ok();
    let choices = got
        .expect("a 60-deep file did not load within 120 s")
        .unwrap();
    assert_eq!(choices, 60);
}
