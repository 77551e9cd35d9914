//! ONNX export: a network's eval-mode forward pass, traced by `nas_core::trace`, written as
//! an ONNX model (opset 13) with its weights as initializers and a symbolic batch size.
//!
//! The network is traced twice, at two batch sizes: the two records must agree op for op,
//! and the axes whose size differs between them are the batch axis (named `N` in the
//! model). What does not depend on the input (weights, batch norm's folded statistics,
//! reshaped parameters) is computed by our engine once and stored as constants; the
//! graph holds only the ops on the input's path.

// Generated (nas-onnx/codegen): kept as prost-build wrote it.
#[allow(clippy::all, missing_docs)]
#[rustfmt::skip]
pub mod onnx;

pub mod check;

use nas_core::nn::Module;
use nas_core::trace::{trace, Def, Graph, Prim, Window};
use nas_core::{no_grad, Rng, Tensor};
use onnx::attribute_proto::AttributeType;
use onnx::tensor_proto::DataType;
use onnx::tensor_shape_proto::{dimension, Dimension};
use onnx::{
    type_proto, AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto,
    StringStringEntryProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};
use prost::Message;
use std::collections::HashMap;
use std::path::Path;

/// The ONNX operator set the exported graphs use.
pub const OPSET: i64 = 13;
/// The IR version that goes with opset 13 (ONNX 1.8).
const IR_VERSION: i64 = 7;
/// The name of the model's input (`[N, C, H, W]` images) and output (`[N, classes]`).
pub const INPUT: &str = "input";
pub const OUTPUT: &str = "output";
/// The name of the symbolic batch size.
pub const BATCH: &str = "N";
/// The two batch sizes the network is traced at.
const TRACE_BATCHES: [usize; 2] = [2, 3];

/// The network `net` (put in eval mode) on images of `image` = `[channels, height,
/// width]`, as an ONNX model; `metadata` goes to the model's metadata properties (the
/// architecture, the space).
pub fn export(
    net: &dyn Module,
    image: [usize; 3],
    metadata: &[(&str, String)],
) -> Result<ModelProto, String> {
    net.set_training(false);
    let mut rng = Rng::new(0);
    let [a, b] = TRACE_BATCHES.map(|n| {
        let x = Tensor::uniform(&[n, image[0], image[1], image[2]], -1.0, 1.0, &mut rng);
        trace(net, &x)
    });
    let (a, b) = (a?, b?);
    let batch = batch_axes(&a, &b)?;
    let mut e = Emitter::new(&a, batch);
    e.emit_all()?;
    let graph = e.finish(image)?;
    Ok(ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: OPSET,
        }],
        producer_name: "nas".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        graph: Some(graph),
        metadata_props: metadata
            .iter()
            .map(|(k, v)| StringStringEntryProto {
                key: k.to_string(),
                value: v.clone(),
            })
            .collect(),
        ..Default::default()
    })
}

/// The model's bytes (the `.onnx` file).
pub fn encode(model: &ModelProto) -> Vec<u8> {
    model.encode_to_vec()
}

/// Writes `model` to `path` (following a symbolic link, as every file the user names).
pub fn write(path: &Path, model: &ModelProto) -> Result<(), String> {
    nas_core::experiment::write_output(path, &encode(model))
}

/// A batch of `batch` random images (standard normal, like normalised data) and what
/// `net` (put in eval mode) outputs for them: a reference to check an exported model
/// against in another runtime.
pub fn sample(net: &dyn Module, image: [usize; 3], batch: usize, seed: u64) -> (Tensor, Tensor) {
    net.set_training(false);
    let mut rng = Rng::new(seed);
    let x = Tensor::randn(&[batch, image[0], image[1], image[2]], 1.0, &mut rng);
    let y = no_grad(|| net.forward(&x));
    (x, y)
}

/// Writes a sample as safetensors: `input` and `output` (what `scripts/onnx_check.py` and
/// the tract checker, so `check::run`, read).
pub fn write_sample(path: &Path, input: &Tensor, output: &Tensor) -> Result<(), String> {
    let tensors = [
        (INPUT.to_string(), input.clone()),
        (OUTPUT.to_string(), output.clone()),
    ];
    nas_core::io::save_tensors(path, &tensors).map_err(|e| format!("{e:#}"))
}

/// For each value of `a`, whether its first axis is the batch (`a` and `b` being the same
/// network traced at batch 2 and 3).
fn batch_axes(a: &Graph, b: &Graph) -> Result<Vec<bool>, String> {
    let differ = || {
        "the network's forward pass is not the same at every batch size, so it has no \
         graph for a symbolic batch"
            .to_string()
    };
    if a.values.len() != b.values.len() || a.input != b.input || a.output != b.output {
        return Err(differ());
    }
    let [na, nb] = TRACE_BATCHES;
    a.values
        .iter()
        .zip(&b.values)
        .enumerate()
        .map(|(i, (va, vb))| {
            if va.def != vb.def || va.shape.len() != vb.shape.len() {
                return Err(differ());
            }
            if va.shape == vb.shape {
                return Ok(false);
            }
            if va.shape[0] == na && vb.shape[0] == nb && va.shape[1..] == vb.shape[1..] {
                return Ok(true);
            }
            Err(format!(
                "value {i} ({:?}) has shape {:?} at batch {na} and {:?} at batch {nb}: only \
                 the first axis may follow the batch size",
                va.def, va.shape, vb.shape
            ))
        })
        .collect()
}

/// Builds the ONNX graph from one trace.
struct Emitter<'g> {
    g: &'g Graph,
    /// Whether each value depends on the input (the rest is constant).
    dynamic: Vec<bool>,
    /// Whether each value's first axis is the batch.
    batch: Vec<bool>,
    /// The ONNX name of each value, once it has one.
    names: Vec<Option<String>>,
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    /// The `int64[1]` value holding the batch size, once a node needs it.
    batch_size: Option<String>,
    fresh: usize,
    /// How many ops read each value (the output counts as read once more).
    uses: Vec<usize>,
    /// Convolutions not written yet, by value: the per-channel affine ops after them
    /// (eval-mode batch norm) fold into their weights until something else reads them.
    pending: HashMap<usize, PendingConv>,
}

/// A convolution with constant weights, and the affine ops folded into it so far.
struct PendingConv {
    input: String,
    /// The state name of its weight, to name the folded one after.
    weight_name: String,
    weight: Vec<f32>,
    weight_shape: Vec<usize>,
    bias: Vec<f32>,
    attrs: Vec<AttributeProto>,
}

impl<'g> Emitter<'g> {
    fn new(g: &'g Graph, batch: Vec<bool>) -> Emitter<'g> {
        let mut dynamic = vec![false; g.values.len()];
        for (i, v) in g.values.iter().enumerate() {
            dynamic[i] = match &v.def {
                Def::Input => true,
                Def::Op(_, ins) => ins.iter().any(|&j| dynamic[j]),
                Def::State(_) | Def::Constant => false,
            };
        }
        let mut names = vec![None; g.values.len()];
        names[g.input] = Some(INPUT.to_string());
        let mut uses = vec![0; g.values.len()];
        uses[g.output] += 1;
        for v in &g.values {
            if let Def::Op(_, ins) = &v.def {
                ins.iter().for_each(|&j| uses[j] += 1);
            }
        }
        Emitter {
            g,
            dynamic,
            batch,
            names,
            nodes: vec![],
            inits: vec![],
            batch_size: None,
            fresh: 0,
            uses,
            pending: HashMap::new(),
        }
    }

    /// Emits a node for every value on the input's path, in order.
    fn emit_all(&mut self) -> Result<(), String> {
        for i in 0..self.g.values.len() {
            if let (true, Def::Op(p, ins)) = (self.dynamic[i], &self.g.values[i].def) {
                self.op(i, p, ins)
                    .map_err(|e| format!("exporting value {i} ({p:?}) to ONNX: {e}"))?;
            }
        }
        Ok(())
    }

    /// The graph, with its input, output and initializers.
    fn finish(mut self, image: [usize; 3]) -> Result<GraphProto, String> {
        let out = self.g.output;
        let name = self.name(out)?;
        // The output is a node's: the network's last op, or an identity of a value that
        // is not an op's (a network that returns its input, or a constant).
        let last_is_out = self
            .nodes
            .last()
            .is_some_and(|n| n.output.first() == Some(&name));
        let renamed = if last_is_out && self.dynamic[out] {
            self.nodes.last_mut().unwrap().output[0] = OUTPUT.into();
            true
        } else {
            false
        };
        if !renamed {
            self.node("Identity", vec![name], OUTPUT.into(), vec![]);
        }
        let out_shape = &self.g.values[out].shape;
        let mut input_dims = vec![1usize];
        input_dims.extend(image);
        Ok(GraphProto {
            name: "nas".into(),
            node: self.nodes,
            initializer: self.inits,
            input: vec![value_info(INPUT, &input_dims, true)],
            output: vec![value_info(OUTPUT, out_shape, self.batch[out])],
            ..Default::default()
        })
    }

    /// The ONNX name of value `i`: an emitted node's output, the input, or a constant
    /// (made an initializer, or a node filling a batch-sized tensor, the first time).
    fn name(&mut self, i: usize) -> Result<String, String> {
        if let Some(p) = self.pending.remove(&i) {
            return Ok(self.write_conv(i, p));
        }
        if let Some(n) = &self.names[i] {
            return Ok(n.clone());
        }
        if self.dynamic[i] {
            return Err(format!("value {i} is read before it is made"));
        }
        let v = &self.g.values[i];
        let data = v.tensor.to_vec();
        let name = if self.batch[i] {
            // As large as the batch but not made from the input (zeros standing for a
            // `none` op, or what follows them): every image's slice is the same, so one
            // is stored and expanded to the batch at run time.
            let row = data.len() / v.shape[0];
            if (1..v.shape[0]).any(|k| data[k * row..(k + 1) * row] != data[..row]) {
                return Err(format!(
                    "value {i} is a constant of batch size whose images differ"
                ));
            }
            let mut dims = vec![1i64];
            dims.extend(v.shape[1..].iter().map(|&d| d as i64));
            let one = self.fresh_name("image");
            self.inits.push(f32_tensor(&one, &data[..row], &dims));
            let shape = self.batch_shape(&v.shape[1..]);
            let name = self.fresh_name("batch");
            self.node("Expand", vec![one, shape], name.clone(), vec![]);
            name
        } else {
            let name = match &v.def {
                Def::State(n) => n.clone(),
                _ => format!("const.{i}"),
            };
            let dims: Vec<i64> = v.shape.iter().map(|&d| d as i64).collect();
            self.inits.push(f32_tensor(&name, &data, &dims));
            name
        };
        self.names[i] = Some(name.clone());
        Ok(name)
    }

    /// A new value name, unique in the graph (state names have no `:`).
    fn fresh_name(&mut self, what: &str) -> String {
        self.fresh += 1;
        format!("{what}:{}", self.fresh)
    }

    fn node(&mut self, op: &str, inputs: Vec<String>, output: String, attrs: Vec<AttributeProto>) {
        self.nodes.push(NodeProto {
            name: output.clone(),
            op_type: op.into(),
            input: inputs,
            output: vec![output],
            attribute: attrs,
            ..Default::default()
        });
    }

    /// A new `float` initializer.
    fn const_f32(&mut self, data: &[f32], dims: &[usize]) -> String {
        let name = self.fresh_name("c");
        let dims: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
        self.inits.push(f32_tensor(&name, data, &dims));
        name
    }

    /// A new 1-D `int64` initializer.
    fn const_i64(&mut self, data: &[i64]) -> String {
        let name = self.fresh_name("c");
        self.inits.push(TensorProto {
            name: name.clone(),
            dims: vec![data.len() as i64],
            data_type: DataType::Int64 as i32,
            raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        });
        name
    }

    /// `[N, rest...]` as an `int64` shape tensor, N read from the input at run time.
    fn batch_shape(&mut self, rest: &[usize]) -> String {
        let n = match &self.batch_size {
            Some(n) => n.clone(),
            None => {
                let shape = self.fresh_name("input_shape");
                self.node("Shape", vec![INPUT.into()], shape.clone(), vec![]);
                let (s, e) = (self.const_i64(&[0]), self.const_i64(&[1]));
                let n = self.fresh_name("batch_size");
                self.node("Slice", vec![shape, s, e], n.clone(), vec![]);
                self.batch_size = Some(n.clone());
                n
            }
        };
        if rest.is_empty() {
            return n;
        }
        let rest: Vec<i64> = rest.iter().map(|&d| d as i64).collect();
        let r = self.const_i64(&rest);
        let name = self.fresh_name("shape");
        self.node(
            "Concat",
            vec![n, r],
            name.clone(),
            vec![attr_int("axis", 0)],
        );
        name
    }

    /// The target of a reshape of value `from` to the shape of value `to`: the batch
    /// axis copied from the input (`0`) or inferred (`-1`).
    fn reshape_target(&mut self, from: usize, to: usize) -> Result<String, String> {
        let mut t: Vec<i64> = self.g.values[to].shape.iter().map(|&d| d as i64).collect();
        match (self.batch[from], self.batch[to]) {
            (false, false) => {}
            (true, true) if self.g.values[from].shape[0] == self.g.values[to].shape[0] => t[0] = 0,
            (true, true) => t[0] = -1,
            _ => return Err("a reshape moves the batch axis".into()),
        }
        Ok(self.const_i64(&t))
    }

    /// A convolution of `ins[0]` by the constant weight (and bias) `ins[1..]`, to be
    /// written when something reads it.
    fn pending_conv(&mut self, ins: &[usize], w: &Window) -> Result<PendingConv, String> {
        let input = self.name(ins[0])?;
        let weight = &self.g.values[ins[1]];
        let cout = weight.shape[0];
        let bias = match ins.get(2) {
            Some(&b) => self.g.values[b].tensor.to_vec(),
            None => vec![0.0; cout],
        };
        let mut attrs = window_attrs(w);
        attrs.push(attr_ints("dilations", &to_i64(&w.dilation)));
        attrs.push(attr_int("group", w.groups as i64));
        Ok(PendingConv {
            input,
            weight_name: match &weight.def {
                Def::State(n) => n.clone(),
                _ => format!("const.{}", ins[1]),
            },
            weight: weight.tensor.to_vec(),
            weight_shape: weight.shape.clone(),
            bias,
            attrs,
        })
    }

    /// Writes the convolution of value `i`, folded weights and all.
    fn write_conv(&mut self, i: usize, p: PendingConv) -> String {
        let w = format!("{}:{i}", p.weight_name);
        let b = format!("{}:{i}:bias", p.weight_name);
        let dims: Vec<i64> = p.weight_shape.iter().map(|&d| d as i64).collect();
        self.inits.push(f32_tensor(&w, &p.weight, &dims));
        self.inits
            .push(f32_tensor(&b, &p.bias, &[p.bias.len() as i64]));
        let out = format!("{i}:Conv");
        self.node("Conv", vec![p.input, w, b], out.clone(), p.attrs);
        self.names[i] = Some(out.clone());
        out
    }

    /// Folds value `i`, an affine op per channel (`x * a`, `x / a`, `x + a`, `x - a`,
    /// with `a` constant) of a pending convolution that nothing else reads, into that
    /// convolution: how eval-mode batch norm after a convolution disappears.
    fn fold(&mut self, i: usize, p: &Prim, ins: &[usize]) -> bool {
        let x = ins[0];
        let (conv, scale, a) = match p {
            Prim::AddScalar(s) => (x, false, vec![*s]),
            Prim::MulScalar(s) => (x, true, vec![*s]),
            Prim::Add | Prim::Sub | Prim::Mul | Prim::Div => {
                // Sub and Div fold only with the convolution on the left.
                let (conv, other) = match (self.pending.contains_key(&x), p) {
                    (true, _) => (x, ins[1]),
                    (false, Prim::Add | Prim::Mul) => (ins[1], x),
                    _ => return false,
                };
                if self.dynamic[other] || !self.pending.contains_key(&conv) {
                    return false;
                }
                // One value per channel (or one for all) broadcast over an NCHW output
                // of the convolution's own shape.
                let s = &self.g.values[other].shape;
                let mut s4 = vec![1; 4usize.saturating_sub(s.len())];
                s4.extend(s);
                let c = self.g.values[conv].shape[1];
                let per_channel = s.len() <= 4
                    && s4[0] == 1
                    && s4[2] == 1
                    && s4[3] == 1
                    && (s4[1] == 1 || s4[1] == c);
                if !per_channel || self.g.values[i].shape != self.g.values[conv].shape {
                    return false;
                }
                let a = self.g.values[other].tensor.to_vec();
                (conv, matches!(p, Prim::Mul | Prim::Div), a)
            }
            _ => return false,
        };
        if self.uses[conv] != 1 || !self.pending.contains_key(&conv) {
            return false;
        }
        let mut pc = self.pending.remove(&conv).unwrap();
        let per = pc.weight.len() / pc.bias.len();
        for (o, b) in pc.bias.iter_mut().enumerate() {
            let v = a[if a.len() == 1 { 0 } else { o }];
            match p {
                Prim::Add | Prim::AddScalar(_) => *b += v,
                Prim::Sub => *b -= v,
                Prim::Mul | Prim::MulScalar(_) => *b *= v,
                _ => *b /= v,
            }
            if scale {
                for w in &mut pc.weight[o * per..(o + 1) * per] {
                    if matches!(p, Prim::Div) {
                        *w /= v
                    } else {
                        *w *= v
                    }
                }
            }
        }
        self.pending.insert(i, pc);
        true
    }

    /// Emits the nodes computing value `i`, `p` applied to `ins`.
    fn op(&mut self, i: usize, p: &Prim, ins: &[usize]) -> Result<(), String> {
        let vals = &self.g.values;
        let shape = vals[i].shape.clone();
        let in_shape = vals[ins[0]].shape.clone();
        if let Prim::Conv2d(w) = p {
            if ins[1..].iter().all(|&j| !self.dynamic[j]) {
                let conv = self.pending_conv(ins, w)?;
                self.pending.insert(i, conv);
                return Ok(());
            }
        }
        if self.fold(i, p, ins) {
            return Ok(());
        }
        let mut x: Vec<String> = vec![];
        for &j in ins {
            x.push(self.name(j)?);
        }
        let out = format!("{i}:{}", onnx_name(p));
        match p {
            Prim::Add | Prim::Sub | Prim::Mul | Prim::Div => {
                self.node(onnx_name(p), x, out.clone(), vec![]);
            }
            Prim::AddScalar(s) | Prim::MulScalar(s) => {
                let c = self.const_f32(&[*s], &[]);
                self.node(onnx_name(p), vec![x[0].clone(), c], out.clone(), vec![]);
            }
            Prim::Exp | Prim::Log | Prim::Relu | Prim::Sigmoid | Prim::Tanh => {
                self.node(onnx_name(p), x, out.clone(), vec![]);
            }
            Prim::LogSoftmax => {
                let axis = attr_int("axis", -1);
                self.node("LogSoftmax", x, out.clone(), vec![axis]);
            }
            Prim::Sum { kept } => {
                let axes: Vec<i64> = (0..kept.len())
                    .filter(|&a| kept[a] == 1)
                    .map(|a| a as i64)
                    .collect();
                let axes = self.const_i64(&axes);
                let keep = attr_int("keepdims", 1);
                if *kept == shape {
                    self.node(
                        "ReduceSum",
                        vec![x[0].clone(), axes],
                        out.clone(),
                        vec![keep],
                    );
                } else {
                    let kept_batch = self.batch[ins[0]] && kept[0] != 1;
                    let tmp = self.fresh_name("sum");
                    self.node(
                        "ReduceSum",
                        vec![x[0].clone(), axes],
                        tmp.clone(),
                        vec![keep],
                    );
                    let mut t: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
                    if kept_batch && self.batch[i] {
                        t[0] = 0;
                    }
                    let t = self.const_i64(&t);
                    self.node("Reshape", vec![tmp, t], out.clone(), vec![]);
                }
            }
            Prim::MatMul => self.node("MatMul", x, out.clone(), vec![]),
            Prim::Linear => {
                if in_shape.len() == 2 {
                    let t = attr_int("transB", 1);
                    self.node("Gemm", x, out.clone(), vec![t]);
                } else {
                    // `x W^T` over the last axis: MatMul with W transposed, then the bias.
                    let w = &vals[ins[1]];
                    let wt = if self.dynamic[ins[1]] {
                        let wt = self.fresh_name("wt");
                        let perm = attr_ints("perm", &[1, 0]);
                        self.node("Transpose", vec![x[1].clone()], wt.clone(), vec![perm]);
                        wt
                    } else {
                        let (o, n) = (w.shape[0], w.shape[1]);
                        let d = w.tensor.to_vec();
                        let t: Vec<f32> = (0..n * o).map(|k| d[(k % o) * n + k / o]).collect();
                        self.const_f32(&t, &[n, o])
                    };
                    if x.len() == 3 {
                        let tmp = self.fresh_name("matmul");
                        self.node("MatMul", vec![x[0].clone(), wt], tmp.clone(), vec![]);
                        self.node("Add", vec![tmp, x[2].clone()], out.clone(), vec![]);
                    } else {
                        self.node("MatMul", vec![x[0].clone(), wt], out.clone(), vec![]);
                    }
                }
            }
            Prim::Reshape => {
                let t = self.reshape_target(ins[0], i)?;
                self.node("Reshape", vec![x[0].clone(), t], out.clone(), vec![]);
            }
            Prim::Permute(perm) => {
                if self.batch[ins[0]] && perm[0] != 0 {
                    return Err("a permutation moves the batch axis".into());
                }
                let perm: Vec<i64> = perm.iter().map(|&a| a as i64).collect();
                let perm = attr_ints("perm", &perm);
                self.node("Transpose", x, out.clone(), vec![perm]);
            }
            Prim::Concat { axis } => {
                if *axis == 0 && ins.iter().any(|&j| self.batch[j]) {
                    return Err("a concatenation along the batch axis".into());
                }
                let a = attr_int("axis", *axis as i64);
                self.node("Concat", x, out.clone(), vec![a]);
            }
            Prim::Slice { axis, start } => {
                let len = shape[*axis];
                let end = if *axis == 0 && self.batch[ins[0]] {
                    if *start != 0 || !self.batch[i] {
                        return Err("a slice of the batch axis".into());
                    }
                    i64::MAX
                } else {
                    (start + len) as i64
                };
                let s = self.const_i64(&[*start as i64]);
                let e = self.const_i64(&[end]);
                let a = self.const_i64(&[*axis as i64]);
                self.node("Slice", vec![x[0].clone(), s, e, a], out.clone(), vec![]);
            }
            Prim::Conv2d(w) => {
                let mut attrs = window_attrs(w);
                attrs.push(attr_ints("dilations", &to_i64(&w.dilation)));
                attrs.push(attr_int("group", w.groups as i64));
                self.node("Conv", x, out.clone(), attrs);
            }
            Prim::MaxPool2d(w) => {
                self.node("MaxPool", x, out.clone(), window_attrs(w));
            }
            Prim::AvgPool2d {
                window,
                count_include_pad,
            } => {
                let mut attrs = window_attrs(window);
                attrs.push(attr_int("count_include_pad", *count_include_pad as i64));
                self.node("AveragePool", x, out.clone(), attrs);
            }
            Prim::AdaptiveAvgPool2d => {
                let (h, w) = (in_shape[2], in_shape[3]);
                let (oh, ow) = (shape[2], shape[3]);
                if oh == 1 && ow == 1 {
                    self.node("GlobalAveragePool", x, out.clone(), vec![]);
                } else if h % oh == 0 && w % ow == 0 {
                    let k = [(h / oh) as i64, (w / ow) as i64];
                    let attrs = vec![attr_ints("kernel_shape", &k), attr_ints("strides", &k)];
                    self.node("AveragePool", x, out.clone(), attrs);
                } else {
                    // Uneven bins: the average is separable, rows then columns, so it is
                    // `A_h x A_w^T` with each row of A averaging one bin.
                    let cols = bins(w, ow);
                    let cols_t: Vec<f32> =
                        (0..w * ow).map(|k| cols[(k % ow) * w + k / ow]).collect();
                    let bw = self.const_f32(&cols_t, &[w, ow]);
                    let ah = self.const_f32(&bins(h, oh), &[oh, h]);
                    let tmp = self.fresh_name("pool_cols");
                    self.node("MatMul", vec![x[0].clone(), bw], tmp.clone(), vec![]);
                    self.node("MatMul", vec![ah, tmp], out.clone(), vec![]);
                }
            }
            Prim::WeightedSum { idx } => {
                let w = ins[ins.len() - 1];
                if self.dynamic[w] {
                    return Err("mixing weights that depend on the input".into());
                }
                let wv = self.g.values[w].tensor.to_vec();
                let mut acc: Option<String> = None;
                for (k, &j) in idx.iter().enumerate() {
                    let c = self.const_f32(&[wv[j]], &[]);
                    let term = self.fresh_name("weighted");
                    self.node("Mul", vec![x[k].clone(), c], term.clone(), vec![]);
                    acc = Some(match acc {
                        None => term,
                        Some(a) => {
                            let s = self.fresh_name("sum");
                            self.node("Add", vec![a, term], s.clone(), vec![]);
                            s
                        }
                    });
                }
                let a = acc.ok_or("a weighted sum of nothing")?;
                self.node("Identity", vec![a], out.clone(), vec![]);
            }
            Prim::BatchNormTrain => {
                return Err(
                    "batch norm with batch statistics: the network was traced in \
                            training mode"
                        .into(),
                )
            }
            Prim::Nll => return Err("a loss is not part of an inference graph".into()),
            Prim::EmbedKernel { .. } => {
                return Err("a kernel made from the input".into());
            }
        }
        self.names[i] = Some(out);
        Ok(())
    }
}

/// The ONNX op type of a primitive that maps to one op.
fn onnx_name(p: &Prim) -> &'static str {
    match p {
        Prim::Add | Prim::AddScalar(_) => "Add",
        Prim::Sub => "Sub",
        Prim::Mul | Prim::MulScalar(_) => "Mul",
        Prim::Div => "Div",
        Prim::Exp => "Exp",
        Prim::Log => "Log",
        Prim::Relu => "Relu",
        Prim::Sigmoid => "Sigmoid",
        Prim::Tanh => "Tanh",
        Prim::Sum { .. } => "ReduceSum",
        Prim::MatMul => "MatMul",
        Prim::Linear => "Gemm",
        Prim::Reshape => "Reshape",
        Prim::Permute(_) => "Transpose",
        Prim::Concat { .. } => "Concat",
        Prim::Slice { .. } => "Slice",
        Prim::Conv2d(_) => "Conv",
        Prim::MaxPool2d(_) => "MaxPool",
        Prim::AvgPool2d { .. } => "AveragePool",
        Prim::AdaptiveAvgPool2d => "AveragePool",
        Prim::LogSoftmax => "LogSoftmax",
        Prim::WeightedSum { .. } => "Sum",
        Prim::BatchNormTrain | Prim::Nll | Prim::EmbedKernel { .. } => "Unsupported",
    }
}

/// The `[out, len]` matrix whose row `i` averages PyTorch's adaptive bin `i`.
fn bins(len: usize, out: usize) -> Vec<f32> {
    let mut m = vec![0.0; out * len];
    for i in 0..out {
        let (lo, hi) = (i * len / out, ((i + 1) * len).div_ceil(out));
        for j in lo..hi {
            m[i * len + j] = 1.0 / (hi - lo) as f32;
        }
    }
    m
}

fn to_i64(v: &[usize; 2]) -> [i64; 2] {
    v.map(|d| d as i64)
}

/// `kernel_shape`, `strides` and `pads` (the same on both sides of each axis).
fn window_attrs(w: &Window) -> Vec<AttributeProto> {
    let [ph, pw] = to_i64(&w.padding);
    vec![
        attr_ints("kernel_shape", &to_i64(&w.kernel)),
        attr_ints("strides", &to_i64(&w.stride)),
        attr_ints("pads", &[ph, pw, ph, pw]),
    ]
}

fn attr_int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Int as i32,
        i: v,
        ..Default::default()
    }
}

fn attr_ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Ints as i32,
        ints: v.to_vec(),
        ..Default::default()
    }
}

/// A `float` tensor, little-endian in `raw_data`.
fn f32_tensor(name: &str, data: &[f32], dims: &[i64]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: DataType::Float as i32,
        raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

/// A `float` graph input or output of the given shape, its first axis the symbolic batch
/// when `batch`.
fn value_info(name: &str, shape: &[usize], batch: bool) -> ValueInfoProto {
    let dim = shape
        .iter()
        .enumerate()
        .map(|(a, &d)| Dimension {
            value: Some(if a == 0 && batch {
                dimension::Value::DimParam(BATCH.into())
            } else {
                dimension::Value::DimValue(d as i64)
            }),
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: DataType::Float as i32,
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nas_core::nn::{state, BatchNorm2d, Conv2d, Kind, Sequential};
    use nas_core::ConvOpts;

    fn ops(m: &ModelProto) -> Vec<&str> {
        let g = m.graph.as_ref().unwrap();
        g.node.iter().map(|n| n.op_type.as_str()).collect()
    }

    fn init(m: &ModelProto, name: &str) -> Vec<f32> {
        let g = m.graph.as_ref().unwrap();
        let t = g.initializer.iter().find(|t| t.name == name).unwrap();
        t.raw_data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    }

    #[test]
    fn batch_norm_after_a_convolution_folds_into_it() {
        let mut rng = Rng::new(0);
        let o = ConvOpts {
            padding: 1,
            ..Default::default()
        };
        let net = Sequential::new(vec![
            Box::new(Conv2d::new(2, 3, 3, o, &mut rng)),
            Box::new(BatchNorm2d::new(3)),
        ]);
        let st: Vec<(String, Tensor)> = state(&net);
        let get = |n: &str| st.iter().find(|(k, _)| k == n).unwrap().1.clone();
        no_grad(|| {
            for n in ["1.weight", "1.bias", "1.running_mean", "1.running_var"] {
                let lo = if n.ends_with("var") { 0.5 } else { -1.0 };
                let t = get(n);
                t.data_mut()
                    .iter_mut()
                    .for_each(|v| *v = rng.uniform_range(lo, 2.0));
            }
        });
        let m = export(&net, [2, 5, 5], &[]).unwrap();
        assert_eq!(ops(&m), ["Conv"]);
        let (w, b) = (get("0.weight").to_vec(), get("0.bias").to_vec());
        let (g, beta) = (get("1.weight").to_vec(), get("1.bias").to_vec());
        let (mean, var) = (
            get("1.running_mean").to_vec(),
            get("1.running_var").to_vec(),
        );
        let conv = &m.graph.as_ref().unwrap().node[0];
        assert!(conv.input[1].starts_with("0.weight:"), "{:?}", conv.input);
        let (fw, fb) = (init(&m, &conv.input[1]), init(&m, &conv.input[2]));
        for o in 0..3 {
            let s = g[o] / (var[o] + 1e-5).sqrt();
            assert!(
                (fb[o] - ((b[o] - mean[o]) * s + beta[o])).abs() < 1e-5,
                "{fb:?}"
            );
            for k in 0..18 {
                assert!((fw[o * 18 + k] - w[o * 18 + k] * s).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn the_model_names_a_symbolic_batch_and_reads_back() {
        let mut rng = Rng::new(1);
        let net = Conv2d::new(3, 4, 1, ConvOpts::default(), &mut rng);
        let meta = [("architecture", "{}".to_string())];
        let m = export(&net, [3, 6, 7], &meta).unwrap();
        assert_eq!(ModelProto::decode(encode(&m).as_slice()).unwrap(), m);
        assert_eq!((m.ir_version, m.opset_import[0].version), (7, 13));
        assert_eq!(m.metadata_props[0].key, "architecture");
        let g = m.graph.as_ref().unwrap();
        let dims = |v: &ValueInfoProto| -> Vec<String> {
            let Some(type_proto::Value::TensorType(t)) = &v.r#type.as_ref().unwrap().value else {
                panic!("not a tensor")
            };
            let shape = t.shape.as_ref().unwrap();
            shape
                .dim
                .iter()
                .map(|d| match d.value.as_ref().unwrap() {
                    dimension::Value::DimParam(p) => p.clone(),
                    dimension::Value::DimValue(v) => v.to_string(),
                })
                .collect()
        };
        assert_eq!(dims(&g.input[0]), ["N", "3", "6", "7"]);
        assert_eq!(dims(&g.output[0]), ["N", "4", "6", "7"]);
        assert_eq!(g.node.last().unwrap().output, [OUTPUT]);
    }

    /// A module whose forward is whatever `f` makes of its input.
    struct Forward(fn(&Tensor) -> Tensor);
    impl Module for Forward {
        fn forward(&self, x: &Tensor) -> Tensor {
            (self.0)(x)
        }
        fn visit(&self, _: &str, _: &mut dyn FnMut(String, &Tensor, Kind)) {}
    }

    #[test]
    fn a_forward_pass_that_changes_with_the_batch_size_is_refused() {
        let net = Forward(|x| if x.dim(0) == 2 { x.relu() } else { x.exp() });
        let e = export(&net, [1, 2, 2], &[]).unwrap_err();
        assert!(e.contains("not the same at every batch size"), "{e}");
    }

    #[test]
    fn a_constant_of_batch_size_is_expanded_when_every_image_has_the_same() {
        let net = Forward(|x| x.relu().add(&Tensor::full(x.shape(), 0.5)));
        let m = export(&net, [1, 2, 2], &[]).unwrap();
        assert!(ops(&m).contains(&"Expand"), "{:?}", ops(&m));
        let one = m
            .graph
            .as_ref()
            .unwrap()
            .initializer
            .iter()
            .find(|t| t.dims == [1, 1, 2, 2]);
        assert!(one.is_some(), "one image of the constant is stored");
        // Different numbers per image cannot be made for another batch size.
        let net = Forward(|x| {
            let n = x.numel();
            x.add(&Tensor::from_vec(
                (0..n).map(|v| v as f32).collect(),
                x.shape(),
            ))
        });
        let e = export(&net, [1, 2, 2], &[]).unwrap_err();
        assert!(e.contains("whose images differ"), "{e}");
    }

    #[test]
    fn adaptive_bins_are_pytorchs() {
        // 7 -> 4: [0, 2), [1, 4), [3, 6), [5, 7).
        let m = bins(7, 4);
        let rows: Vec<Vec<usize>> = (0..4)
            .map(|i| (0..7).filter(|&j| m[i * 7 + j] > 0.0).collect())
            .collect();
        assert_eq!(rows, [vec![0, 1], vec![1, 2, 3], vec![3, 4, 5], vec![5, 6]]);
        for i in 0..4 {
            let s: f32 = m[i * 7..(i + 1) * 7].iter().sum();
            assert!((s - 1.0).abs() < 1e-6);
        }
    }
}
