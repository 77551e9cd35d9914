//! A network's forward pass recorded as a graph of primitives, for exporters (ONNX): the
//! autodiff record of one pass, read back as plain data. What the graph computes is what
//! `forward` computed, so an export cannot drift from the network it describes.

use crate::autodiff::Op;
use crate::nn::{state, Module};
use crate::tensor::{grad_enabled, Tensor};
use std::collections::HashMap;

/// A recorded forward pass: every value it made, inputs before the ops that read them.
pub struct Graph {
    pub values: Vec<Value>,
    /// The index of the network's input in `values`.
    pub input: usize,
    /// The index of the network's output.
    pub output: usize,
}

/// One value of the pass: where it came from, its shape, and the numbers it held.
pub struct Value {
    pub def: Def,
    pub shape: Vec<usize>,
    /// The values of the traced pass (what a constant holds, or a reference to check
    /// against).
    pub tensor: Tensor,
}

/// Where a value came from.
#[derive(Clone, Debug, PartialEq)]
pub enum Def {
    /// The network's input.
    Input,
    /// A tensor of the network's state (parameter or buffer), by its name there.
    State(String),
    /// A tensor the pass made without reading the input or the state (zeros, a batch
    /// norm's folded statistics).
    Constant,
    /// A primitive applied to earlier values (indices into [`Graph::values`]).
    Op(Prim, Vec<usize>),
}

/// The geometry of a convolution or pooling window: (height, width) pairs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    /// Zero rows/columns on each side.
    pub padding: [usize; 2],
    pub dilation: [usize; 2],
    pub groups: usize,
}

/// A recorded primitive and the attributes it was applied with (its inputs are in
/// [`Def::Op`]). Elementwise binary ops broadcast as NumPy does.
#[derive(Clone, Debug, PartialEq)]
pub enum Prim {
    Add,
    Sub,
    Mul,
    Div,
    AddScalar(f32),
    MulScalar(f32),
    Exp,
    Log,
    Relu,
    Sigmoid,
    Tanh,
    /// Sum over the axes that are 1 in `kept` (the output is `kept`, or `kept` without
    /// the reduced axes).
    Sum {
        kept: Vec<usize>,
    },
    /// `[.., m, k] x [.., k, n]`, or a 2-D right operand shared by every batch.
    MatMul,
    /// `x W^T (+ b)` over the last axis, `W` as `[out, in]`.
    Linear,
    /// To the value's shape.
    Reshape,
    Permute(Vec<usize>),
    Concat {
        axis: usize,
    },
    /// The entries `start..start + len` along `axis`, `len` being the value's size there.
    Slice {
        axis: usize,
        start: usize,
    },
    /// NCHW input, `[out, in / groups, kh, kw]` weight, optional bias.
    Conv2d(Window),
    /// Padding never wins the max.
    MaxPool2d(Window),
    AvgPool2d {
        window: Window,
        count_include_pad: bool,
    },
    /// PyTorch's bins: output `i` of `n` averages `[floor(i*len/n), ceil((i+1)*len/n))`.
    AdaptiveAvgPool2d,
    /// Batch norm with batch statistics (a network traced in training mode).
    BatchNormTrain,
    /// Over the last axis.
    LogSoftmax,
    /// A loss; no exporter wants it.
    Nll,
    /// A `[o, i, k, k]` kernel placed, with dilation, into a `[o, i, size, size]` one.
    EmbedKernel {
        size: usize,
        dilation: usize,
    },
    /// `sum_k w[idx[k]] * xs[k]` over the inputs `xs..., w`.
    WeightedSum {
        idx: Vec<usize>,
    },
}

/// Runs `net` on `x` and records the pass. The network runs in whatever mode it is in
/// (call `set_training(false)` first for an inference graph); gradients must be enabled
/// on this thread (not inside `no_grad`), since the record is autodiff's.
pub fn trace(net: &dyn Module, x: &Tensor) -> Result<Graph, String> {
    if !grad_enabled() {
        return Err("cannot trace inside no_grad: the record is autodiff's".into());
    }
    // A leaf that asks for a gradient makes every op that reads it (and what follows)
    // record itself.
    let input = Tensor::parameter(x.to_vec(), x.shape());
    let out = net.forward(&input);
    let names: HashMap<u64, String> = state(net).into_iter().map(|(n, t)| (t.id(), n)).collect();
    // Every node the output was made from; ids grow in creation order, which is a
    // topological order.
    let mut seen: HashMap<u64, Tensor> = HashMap::new();
    let mut stack = vec![out.clone()];
    while let Some(t) = stack.pop() {
        if seen.contains_key(&t.id()) {
            continue;
        }
        if let Some(op) = t.op() {
            stack.extend(op.inputs().into_iter().cloned());
        }
        seen.insert(t.id(), t);
    }
    let mut order: Vec<Tensor> = seen.into_values().collect();
    order.sort_by_key(|t| t.id());
    let index: HashMap<u64, usize> = order.iter().enumerate().map(|(i, t)| (t.id(), i)).collect();
    let mut values = Vec::with_capacity(order.len());
    for t in &order {
        let def = match t.op() {
            _ if t.same(&input) => Def::Input,
            None => match names.get(&t.id()) {
                Some(n) => Def::State(n.clone()),
                None => Def::Constant,
            },
            Some(op) => {
                let ins = op.inputs().iter().map(|i| index[&i.id()]).collect();
                Def::Op(prim(op), ins)
            }
        };
        values.push(Value {
            def,
            shape: t.shape().to_vec(),
            tensor: t.clone(),
        });
    }
    let output = index[&out.id()];
    // A network that ignores its input still has one in the graph.
    let input = match index.get(&input.id()) {
        Some(&i) => i,
        None => {
            values.push(Value {
                def: Def::Input,
                shape: input.shape().to_vec(),
                tensor: input.clone(),
            });
            values.len() - 1
        }
    };
    Ok(Graph {
        values,
        input,
        output,
    })
}

/// The public description of a recorded op.
fn prim(op: &Op) -> Prim {
    match op {
        Op::Add(..) => Prim::Add,
        Op::Sub(..) => Prim::Sub,
        Op::Mul(..) => Prim::Mul,
        Op::Div(..) => Prim::Div,
        Op::AddScalar(_, s) => Prim::AddScalar(*s),
        Op::MulScalar(_, s) => Prim::MulScalar(*s),
        Op::Exp(_) => Prim::Exp,
        Op::Log(_) => Prim::Log,
        Op::Relu(_) => Prim::Relu,
        Op::Sigmoid(_) => Prim::Sigmoid,
        Op::Tanh(_) => Prim::Tanh,
        Op::Sum(_, kept) => Prim::Sum { kept: kept.clone() },
        Op::MatMul(..) => Prim::MatMul,
        Op::Linear(..) => Prim::Linear,
        Op::Reshape(_) => Prim::Reshape,
        Op::Permute(_, p) => Prim::Permute(p.clone()),
        Op::Concat(_, axis) => Prim::Concat { axis: *axis },
        Op::Slice(_, axis, start) => Prim::Slice {
            axis: *axis,
            start: *start,
        },
        Op::Conv2d(_, _, _, p) => Prim::Conv2d(Window {
            kernel: [p.kh, p.kw],
            stride: [p.sh, p.sw],
            padding: [p.ph, p.pw],
            dilation: [p.dh, p.dw],
            groups: p.groups,
        }),
        Op::MaxPool2d(_, p, _) => Prim::MaxPool2d(pool_window(p)),
        Op::AvgPool2d(_, p, cip) => Prim::AvgPool2d {
            window: pool_window(p),
            count_include_pad: *cip,
        },
        Op::AdaptiveAvgPool2d(_) => Prim::AdaptiveAvgPool2d,
        Op::BatchNorm(..) => Prim::BatchNormTrain,
        Op::LogSoftmax(_) => Prim::LogSoftmax,
        Op::Nll(..) => Prim::Nll,
        Op::EmbedKernel(_, e) => Prim::EmbedKernel {
            size: e.size,
            dilation: e.dil,
        },
        Op::WeightedSum(_, _, idx) => Prim::WeightedSum { idx: idx.clone() },
    }
}

fn pool_window(p: &nas_kernels::cpu::pool::Pool2d) -> Window {
    Window {
        kernel: [p.kh, p.kw],
        stride: [p.sh, p.sw],
        padding: [p.ph, p.pw],
        dilation: [1, 1],
        groups: 1,
    }
}
