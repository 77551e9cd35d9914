//! Exported models run in a real ONNX runtime and give our outputs: a fixed network of
//! every built-in space and of a space file using every op of the format. The runtime is
//! ONNX Runtime where Python has it (CI), else tract, built here once (`nas_onnx::check`).

use nas_core::nn::{state, Module};
use nas_core::space::builtin::{self, darts::DartsSpace, InputSpec};
use nas_core::space::file::FileSpace;
use nas_core::space::{self, arch, Architecture, ChoiceKind, Space};
use nas_core::{no_grad, Rng};
use nas_onnx::onnx::ModelProto;
use std::path::{Path, PathBuf};

/// Largest difference allowed between the runtime's outputs and ours.
const TOL: f32 = 1e-4;
/// The sample's batch: neither of the batch sizes the exporter traces at, so the
/// symbolic batch is what makes the model run.
const BATCH: usize = 4;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn temp_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("onnx-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Batch norm's statistics and affine parameters drawn at random, so the folded
/// statistics are not the fresh network's 0 and 1.
fn randomise_batch_norms(net: &dyn Module, rng: &mut Rng) {
    let st = state(net);
    let norms: Vec<String> = st
        .iter()
        .filter_map(|(n, _)| n.strip_suffix("running_mean").map(str::to_string))
        .collect();
    no_grad(|| {
        for (n, t) in &st {
            let Some(p) = norms.iter().find(|p| n.starts_with(p.as_str())) else {
                continue;
            };
            let (lo, hi) = match &n[p.len()..] {
                "running_var" | "weight" => (0.5, 2.0),
                _ => (-0.5, 0.5),
            };
            t.data_mut()
                .iter_mut()
                .for_each(|v| *v = rng.uniform_range(lo, hi));
        }
    });
}

/// An architecture that picks the candidates of the layer choices in turn (so most ops
/// of a space are in it), values in turn, the deepest repeats and random inputs.
fn covering(choices: &[space::Choice], rng: &mut Rng) -> Architecture {
    let mut a = Architecture::new();
    let mut k = 0;
    for c in choices {
        // Choices inside a repeat exist for the blocks it builds.
        let built = c.inside.as_ref().is_none_or(|(rep, i)| {
            a.get(rep)
                .and_then(|v| v.as_u64())
                .is_some_and(|d| d as usize > *i)
        });
        if !built {
            continue;
        }
        let v = match &c.kind {
            ChoiceKind::Layer { candidates } => {
                k += 1;
                serde_json::Value::from(candidates[k % candidates.len()].clone())
            }
            ChoiceKind::Value { values } => {
                k += 1;
                values[k % values.len()].clone()
            }
            ChoiceKind::Repeat { depths } => serde_json::Value::from(*depths.iter().max().unwrap()),
            ChoiceKind::Input { .. } => arch::random_decision(c, rng),
        };
        a.insert(c.label.clone(), v);
    }
    a
}

/// What a check found: the largest difference and the ONNX op types of the model.
struct Checked {
    diff: f32,
    ops: Vec<String>,
}

/// Exports the fixed network of `arch` in `space`, runs it in the runtime on a random batch
/// and returns the largest difference from our output.
fn check(name: &str, space: &dyn Space, image: [usize; 3], arch: &Architecture) -> Checked {
    let mut rng = Rng::new(7);
    let net = space::fixed(space, arch, 1).unwrap();
    randomise_batch_norms(net.as_ref(), &mut rng);
    let model = nas_onnx::export(
        net.as_ref(),
        image,
        &[("architecture", serde_json::to_string(arch).unwrap())],
    )
    .unwrap_or_else(|e| panic!("{name}: {e}"));
    check_model(name, net.as_ref(), image, &model)
}

fn check_model(name: &str, net: &dyn Module, image: [usize; 3], model: &ModelProto) -> Checked {
    let dir = temp_dir();
    let path = dir.join(format!("{name}.onnx"));
    nas_onnx::write(&path, model).unwrap();
    let (x, y) = nas_onnx::sample(net, image, BATCH, 3);
    let sample = dir.join(format!("{name}.sample.safetensors"));
    nas_onnx::write_sample(&sample, &x, &y).unwrap();
    let out = nas_onnx::check::run(&path, &sample).unwrap_or_else(|e| panic!("{name}: {e}"));
    let (shape, got) = (out.shape, out.data);
    assert_eq!(shape, y.shape(), "{name}: output shape");
    let want = y.to_vec();
    let diff = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    // Outputs of random networks are not all tiny: the tolerance means something.
    let scale = want.iter().map(|v| v.abs()).fold(0.0f32, f32::max);
    assert!(scale > 0.05, "{name}: outputs are all near zero ({scale})");
    assert!(got.iter().all(|v| v.is_finite()), "{name}: {got:?}");
    let ops = model
        .graph
        .as_ref()
        .unwrap()
        .node
        .iter()
        .map(|n| n.op_type.clone())
        .collect();
    eprintln!(
        "{name}: largest difference from {} {diff:e} (outputs up to {scale:.3})",
        out.runtime
    );
    Checked { diff, ops }
}

fn input(channels: usize, side: usize) -> InputSpec {
    InputSpec {
        channels,
        height: side,
        width: side,
        classes: 10,
    }
}

fn assert_close(name: &str, c: &Checked) {
    assert!(
        c.diff <= TOL,
        "{name}: the runtime differs from nas by {} (> {TOL})",
        c.diff
    );
}

fn has(c: &Checked, ops: &[&str]) {
    for op in ops {
        assert!(c.ops.iter().any(|o| o == op), "no {op} in {:?}", c.ops);
    }
}

#[test]
fn seed_net_runs_in_an_onnx_runtime() {
    let sp = builtin::by_name("seed-net", input(1, 28)).unwrap();
    let a: Architecture =
        serde_json::from_str(r#"{"conv1": "conv5x5", "conv2": "conv3x3", "skip": [1]}"#).unwrap();
    let c = check("seed-net", sp.as_ref(), [1, 28, 28], &a);
    assert_close("seed-net", &c);
    // 7x7 pooled to 4x4 has uneven bins: the two matrix products.
    has(&c, &["Conv", "MaxPool", "MatMul", "Gemm", "Relu", "Add"]);
}

#[test]
fn chain_runs_in_an_onnx_runtime() {
    let sp = builtin::by_name("chain", input(3, 16)).unwrap();
    let a = covering(&space::describe(sp.as_ref()), &mut Rng::new(1));
    let c = check("chain", sp.as_ref(), [3, 16, 16], &a);
    assert_close("chain", &c);
    has(&c, &["Conv", "Concat", "GlobalAveragePool", "Gemm"]);
}

#[test]
fn nb201_runs_in_an_onnx_runtime() {
    let sp = builtin::nb201(8, 1, input(3, 15));
    // Every op, and node 1 cut off (`none`): the cells hold zeros of the batch's size,
    // and a convolution of them, which the model makes at run time.
    let a: Architecture = serde_json::from_str(
        r#"{"edge_1_0": "none", "edge_2_0": "skip_connect", "edge_2_1": "nor_conv_1x1",
            "edge_3_0": "nor_conv_3x3", "edge_3_1": "avg_pool_3x3",
            "edge_3_2": "nor_conv_3x3"}"#,
    )
    .unwrap();
    let c = check("nb201", sp.as_ref(), [3, 15, 15], &a);
    assert_close("nb201", &c);
    // The odd side pads the halving pool (Concat) in the reduction blocks.
    has(&c, &["Conv", "AveragePool", "Expand", "Concat", "Slice"]);
}

#[test]
fn darts_runs_in_an_onnx_runtime() {
    let mut sp = DartsSpace::new(3, 10);
    sp.c = 4;
    sp.layers = 4;
    let a = covering(&space::describe(&sp), &mut Rng::new(2));
    // 30 -> 15 -> 8: the cell after the second reduction halves a 15x15 input in its
    // factorized reduce, which pads the shifted half with zeros.
    let c = check("darts", &sp, [3, 30, 30], &a);
    assert_close("darts", &c);
    has(
        &c,
        &["Conv", "Concat", "Slice", "GlobalAveragePool", "Gemm"],
    );
}

#[test]
fn mobilenet_runs_in_an_onnx_runtime() {
    let sp = builtin::by_name("mobilenet", input(3, 32)).unwrap();
    let a = covering(&space::describe(sp.as_ref()), &mut Rng::new(3));
    let c = check("mobilenet", sp.as_ref(), [3, 32, 32], &a);
    assert_close("mobilenet", &c);
    // ReLU6 is relu(x) - relu(x - 6); depthwise convolutions are grouped ones.
    has(&c, &["Conv", "Sub", "Add", "GlobalAveragePool", "Gemm"]);
    let groups = c.ops.iter().filter(|o| *o == "Conv").count();
    assert!(groups > 10, "{:?}", c.ops);
}

#[test]
fn a_space_file_with_every_op_runs_in_an_onnx_runtime() {
    let path = root().join("nas-onnx/tests/every-op.json");
    let sp = FileSpace::load(&path, [3, 16, 16], 10).unwrap();
    for (i, pick) in ["grouped", "sep", "dil"].iter().enumerate() {
        let a: Architecture = serde_json::from_value(serde_json::json!({
            "mix": pick, "nothing": [1], "same": [1], "depth": 2,
            "depth.0/skip": [1], "depth.1/skip": [0],
        }))
        .unwrap();
        let name = format!("every-op-{i}");
        let c = check(&name, &sp, [3, 16, 16], &a);
        assert_close(&name, &c);
        has(&c, &["Conv", "MaxPool", "AveragePool", "Gemm", "Expand"]);
    }
}

#[test]
fn a_changed_weight_is_caught() {
    // The comparison is real: the same network with one output bias moved by 0.01 gives
    // outputs that far from ours.
    let sp = builtin::by_name("seed-net", input(1, 28)).unwrap();
    let a: Architecture =
        serde_json::from_str(r#"{"conv1": "conv3x3", "conv2": "conv5x5", "skip": [0]}"#).unwrap();
    let net = space::fixed(sp.as_ref(), &a, 1).unwrap();
    let mut model = nas_onnx::export(net.as_ref(), [1, 28, 28], &[]).unwrap();
    let init = model
        .graph
        .as_mut()
        .unwrap()
        .initializer
        .iter_mut()
        .find(|t| t.name == "fc3.bias")
        .expect("the output layer's bias is an initializer");
    let v = f32::from_le_bytes(init.raw_data[..4].try_into().unwrap()) + 0.01;
    init.raw_data[..4].copy_from_slice(&v.to_le_bytes());
    let c = check_model("seed-net-changed", net.as_ref(), [1, 28, 28], &model);
    assert!(
        (c.diff - 0.01).abs() < 1e-4,
        "a bias moved by 0.01 shows as {}",
        c.diff
    );
}
