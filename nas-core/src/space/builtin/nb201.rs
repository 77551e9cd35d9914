//! `nb201`: the NAS-Bench-201 search space, built on the benchmark's own macro network
//! (its "TinyNetwork").
//!
//! The network is a stem (3x3 conv + BN), three stages of `n` cells at `c`, `2c` and `4c`
//! channels separated by residual reduction blocks, then BN + ReLU, global average pooling
//! and a linear classifier. A cell is a DAG on nodes 0..3: node 0 is the cell's input,
//! node `j` sums `edge_j_i(node i)` over `i < j`, and node 3 is the output. Each of the six
//! edges picks one of five ops ([`OPS`]).
//!
//! The cell is shared: an architecture has exactly six choices, labelled `edge_j_i`
//! ([`EDGES`]), and every cell of the network makes the same decisions, but each cell has
//! its own weights (see `Builder::layer_choice_shared`).
//!
//! Architectures also read and print in the benchmark's string format,
//! `|op~0|+|op~0|op~1|+|op~0|op~1|op~2|` ([`parse_arch_str`], [`arch_str`]), and read from
//! the six-digit keys of the benchmark tables ([`arch_from_key`]).
//!
//! Parameters are named like the benchmark's PyTorch model: `stem.0.weight`,
//! `cells.3.edge_2_1.nor_conv_3x3.op.1.weight`, `cells.5.conv_a.op.1.weight` (the
//! reduction blocks are counted among the cells, at indices `n` and `2n + 1`),
//! `lastact.0.weight`, `classifier.weight`. The benchmark's inputs are 32x32 (CIFAR) or
//! 16x16 (ImageNet16-120); other sizes work too, odd ones halved rounding up (see
//! [`HalvingAvgPool`]).

use crate::nn::{
    join, AdaptiveAvgPool2d, AvgPool2d, BatchNorm2d, Conv2d, Identity, Kind, Linear, Module, ReLU,
    ReLUConvBN, Sequential, Zero,
};
use crate::ops::ConvOpts;
use crate::rng::Rng;
use crate::space::{Architecture, Builder, LayerChoice, Space};
use crate::tensor::Tensor;
use serde_json::Value;

/// The candidate ops of every edge, in the benchmark's order (the index is the op's digit
/// in the benchmark's keys).
pub const OPS: [&str; 5] = [
    "none",
    "skip_connect",
    "nor_conv_1x1",
    "nor_conv_3x3",
    "avg_pool_3x3",
];

/// The edges of a cell as (to node, from node), in the order of the architecture string.
pub const EDGES: [(usize, usize); 6] = [(1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2)];

/// The choice label of the edge into node `to` from node `from`: `edge_{to}_{from}`.
pub fn edge_label(to: usize, from: usize) -> String {
    format!("edge_{to}_{from}")
}

/// The NAS-Bench-201 space: `c` channels in the first stage (16 in the benchmark), `n`
/// cells per stage (5 in the benchmark).
#[derive(Clone, Debug)]
pub struct Nb201Space {
    pub c: usize,
    pub n: usize,
    pub in_channels: usize,
    pub classes: usize,
}

impl Nb201Space {
    /// The benchmark's own sizes: C = 16, N = 5.
    pub fn new(in_channels: usize, classes: usize) -> Nb201Space {
        Nb201Space {
            c: 16,
            n: 5,
            in_channels,
            classes,
        }
    }
}

use crate::space::Make;

/// The five candidates of an edge at `c` channels, in the order of [`OPS`].
#[doc(hidden)]
pub fn edge_candidates(c: usize) -> Vec<(String, Make<'static>)> {
    let make = |name: &str, f: Make<'static>| (name.to_string(), f);
    vec![
        make(
            "none",
            Box::new(|_: &mut Rng| Box::new(Zero { stride: 1 }) as Box<dyn Module>),
        ),
        make(
            "skip_connect",
            Box::new(|_: &mut Rng| Box::new(Identity) as Box<dyn Module>),
        ),
        make(
            "nor_conv_1x1",
            Box::new(move |rng: &mut Rng| {
                Box::new(ReLUConvBN::new(c, c, 1, 1, 0, true, rng)) as Box<dyn Module>
            }),
        ),
        make(
            "nor_conv_3x3",
            Box::new(move |rng: &mut Rng| {
                Box::new(ReLUConvBN::new(c, c, 3, 1, 1, true, rng)) as Box<dyn Module>
            }),
        ),
        make(
            "avg_pool_3x3",
            Box::new(|_: &mut Rng| {
                Box::new(AvgPool2d {
                    k: 3,
                    stride: 1,
                    padding: 1,
                    count_include_pad: false,
                }) as Box<dyn Module>
            }),
        ),
    ]
}

/// A cell: one `LayerChoice` per edge, in the order of [`EDGES`].
pub struct Cell {
    pub edges: Vec<LayerChoice>,
}

impl Cell {
    /// Builds a cell at `c` channels. The first cell of the network records the choices
    /// (`record`); the others share them.
    fn build(b: &mut Builder, c: usize, record: bool) -> Cell {
        let edges = EDGES
            .iter()
            .map(|&(to, from)| {
                let label = edge_label(to, from);
                if record {
                    b.layer_choice(&label, edge_candidates(c))
                } else {
                    b.layer_choice_shared(&label, edge_candidates(c))
                }
            })
            .collect();
        Cell { edges }
    }
}

impl Module for Cell {
    fn forward(&self, x: &Tensor) -> Tensor {
        let mut nodes = vec![x.clone()];
        for to in 1..4 {
            let mut sum: Option<Tensor> = None;
            for (&(j, from), edge) in EDGES.iter().zip(&self.edges) {
                // A fixed `none` edge adds nothing: skip it rather than add zeros.
                if j != to || (edge.ops.len() == 1 && edge.ops[0].0 == "none") {
                    continue;
                }
                let y = edge.forward(&nodes[from]);
                sum = Some(match sum {
                    None => y,
                    Some(s) => s.add(&y),
                });
            }
            nodes.push(sum.unwrap_or_else(|| Tensor::zeros_beside(x.shape(), x)));
        }
        nodes.pop().unwrap()
    }
    fn visit(&self, p: &str, f: &mut dyn FnMut(String, &Tensor, Kind)) {
        for e in &self.edges {
            e.visit(&join(p, &e.label), f);
        }
    }
    fn set_training(&self, t: bool) {
        self.edges.iter().for_each(|e| e.set_training(t));
    }
}

/// 2x2 average pooling with stride 2 that rounds the output size up, like PyTorch's
/// `ceil_mode`: on an odd side the last row (or column) is averaged on its own. So it
/// gives `ceil(h / 2)` rows, as the stride-2 3x3 convolution beside it does, and the
/// benchmark's reduction block takes any input size (on even sizes it is plain 2x2
/// pooling).
pub struct HalvingAvgPool;

impl Module for HalvingAvgPool {
    fn forward(&self, x: &Tensor) -> Tensor {
        let mut x = x.clone();
        for axis in [2, 3] {
            let n = x.dim(axis);
            if n % 2 == 1 {
                // A copy of the last row averages with itself to its own value.
                let last = x.slice(axis, n - 1, 1);
                x = Tensor::concat(&[x, last], axis);
            }
        }
        x.avg_pool2d(2, 2, 0, true)
    }
    fn visit(&self, _: &str, _: &mut dyn FnMut(String, &Tensor, Kind)) {}
}

/// The benchmark's residual reduction block: `downsample(x) + conv_b(conv_a(x))`, halving
/// the spatial size (rounding up on odd sizes).
pub struct ResNetBasicBlock {
    pub conv_a: ReLUConvBN,
    pub conv_b: ReLUConvBN,
    /// 2x2 average pooling with stride 2 ([`HalvingAvgPool`]), then a 1x1 convolution.
    pub downsample: Sequential,
}

impl ResNetBasicBlock {
    pub fn new(cin: usize, planes: usize, rng: &mut Rng) -> ResNetBasicBlock {
        let conv_a = ReLUConvBN::new(cin, planes, 3, 2, 1, true, rng);
        let conv_b = ReLUConvBN::new(planes, planes, 3, 1, 1, true, rng);
        let downsample = Sequential::new(vec![
            Box::new(HalvingAvgPool),
            Box::new(Conv2d::no_bias(cin, planes, 1, ConvOpts::default(), rng)),
        ]);
        ResNetBasicBlock {
            conv_a,
            conv_b,
            downsample,
        }
    }
}

impl Module for ResNetBasicBlock {
    fn forward(&self, x: &Tensor) -> Tensor {
        let y = self.conv_b.forward(&self.conv_a.forward(x));
        self.downsample.forward(x).add(&y)
    }
    fn visit(&self, p: &str, f: &mut dyn FnMut(String, &Tensor, Kind)) {
        self.conv_a.visit(&join(p, "conv_a"), f);
        self.conv_b.visit(&join(p, "conv_b"), f);
        self.downsample.visit(&join(p, "downsample"), f);
    }
    fn set_training(&self, t: bool) {
        self.conv_a.set_training(t);
        self.conv_b.set_training(t);
        self.downsample.set_training(t);
    }
}

/// The benchmark's macro network.
pub struct TinyNetwork {
    /// 3x3 convolution (no bias) and BN.
    pub stem: Sequential,
    /// The `3n` cells and the two reduction blocks, in order.
    pub cells: Vec<Box<dyn Module>>,
    /// BN and ReLU.
    pub lastact: Sequential,
    pub global_pooling: AdaptiveAvgPool2d,
    pub classifier: Linear,
}

impl Module for TinyNetwork {
    fn forward(&self, x: &Tensor) -> Tensor {
        let mut y = self.stem.forward(x);
        for cell in &self.cells {
            y = cell.forward(&y);
        }
        let y = self.lastact.forward(&y);
        let y = self.global_pooling.forward(&y).flatten(1);
        crate::space::tap_point(crate::space::FEATURES, &y);
        self.classifier.forward(&y)
    }
    fn visit(&self, p: &str, f: &mut dyn FnMut(String, &Tensor, Kind)) {
        self.stem.visit(&join(p, "stem"), f);
        let cells = join(p, "cells");
        for (i, cell) in self.cells.iter().enumerate() {
            cell.visit(&join(&cells, &i.to_string()), f);
        }
        self.lastact.visit(&join(p, "lastact"), f);
        self.classifier.visit(&join(p, "classifier"), f);
    }
    fn set_training(&self, t: bool) {
        self.stem.set_training(t);
        self.cells.iter().for_each(|c| c.set_training(t));
        self.lastact.set_training(t);
    }
}

impl Space for Nb201Space {
    fn name(&self) -> &str {
        "nb201"
    }
    fn build(&self, b: &mut Builder) -> Box<dyn Module> {
        let c = self.c;
        let pad1 = ConvOpts {
            padding: 1,
            ..Default::default()
        };
        let stem = Sequential::new(vec![
            Box::new(Conv2d::no_bias(self.in_channels, c, 3, pad1, &mut b.rng)),
            Box::new(BatchNorm2d::new(c)),
        ]);
        let mut cells: Vec<Box<dyn Module>> = vec![];
        let mut record = true;
        for (stage, width) in [c, 2 * c, 4 * c].into_iter().enumerate() {
            if stage > 0 {
                cells.push(Box::new(ResNetBasicBlock::new(
                    width / 2,
                    width,
                    &mut b.rng,
                )));
            }
            for _ in 0..self.n {
                cells.push(Box::new(Cell::build(b, width, record)));
                record = false;
            }
        }
        let lastact = Sequential::new(vec![Box::new(BatchNorm2d::new(4 * c)), Box::new(ReLU)]);
        let classifier = Linear::new(4 * c, self.classes, &mut b.rng);
        Box::new(TinyNetwork {
            stem,
            cells,
            lastact,
            global_pooling: AdaptiveAvgPool2d { out: (1, 1) },
            classifier,
        })
    }
}

/// Reads the benchmark's architecture string, `|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`:
/// node 1's edge from node 0, node 2's edges from nodes 0 and 1, node 3's from 0, 1, 2.
/// Errors name the piece that is wrong.
pub fn parse_arch_str(s: &str) -> Result<Architecture, String> {
    let s = s.trim();
    let nodes: Vec<&str> = s.split('+').collect();
    if nodes.len() != 3 {
        return Err(format!(
            "`{s}`: expected 3 nodes separated by `+`, found {}",
            nodes.len()
        ));
    }
    let mut arch = Architecture::new();
    for (k, node) in nodes.iter().enumerate() {
        let to = k + 1;
        let inner = node
            .strip_prefix('|')
            .and_then(|n| n.strip_suffix('|'))
            .ok_or_else(|| format!("node {to} `{node}`: must start and end with `|`"))?;
        let edges: Vec<&str> = inner.split('|').collect();
        if edges.len() != to {
            return Err(format!(
                "node {to} `{node}`: expected {to} edge(s) `op~input`, found {}",
                edges.len()
            ));
        }
        for (from, edge) in edges.iter().enumerate() {
            let (op, input) = edge
                .split_once('~')
                .ok_or_else(|| format!("node {to} edge `{edge}`: expected `op~input`"))?;
            if !OPS.contains(&op) {
                return Err(format!(
                    "node {to} edge `{edge}`: unknown op `{op}` (expected one of {})",
                    OPS.join(", ")
                ));
            }
            if input != from.to_string() {
                return Err(format!(
                    "node {to} edge `{edge}`: input `{input}` should be {from} (edges come \
                     in order of their input node)"
                ));
            }
            arch.insert(edge_label(to, from), Value::from(op));
        }
    }
    Ok(arch)
}

/// The benchmark's architecture string of `a`; an edge missing from `a` prints as `?`.
pub fn arch_str(a: &Architecture) -> String {
    let mut s = String::from("|");
    for (k, &(to, from)) in EDGES.iter().enumerate() {
        if k > 0 && from == 0 {
            s.push_str("+|");
        }
        let op = a
            .get(&edge_label(to, from))
            .and_then(|v| v.as_str())
            .unwrap_or("?");
        s.push_str(&format!("{op}~{from}|"));
    }
    s
}

/// Reads a benchmark table's six-digit `key`: one digit per edge in the order of the
/// architecture string, each the op's index in [`OPS`] (none = 0 ... avg_pool_3x3 = 4).
pub fn arch_from_key(key: &str) -> Result<Architecture, String> {
    let key = key.trim();
    if key.chars().count() != EDGES.len() {
        return Err(format!(
            "key `{key}`: expected {} digits, one per edge",
            EDGES.len()
        ));
    }
    let mut arch = Architecture::new();
    for (k, (ch, &(to, from))) in key.chars().zip(EDGES.iter()).enumerate() {
        let op = ch
            .to_digit(10)
            .and_then(|d| OPS.get(d as usize))
            .ok_or_else(|| {
                format!(
                    "key `{key}`: digit {} is `{ch}`, expected 0..{}",
                    k + 1,
                    OPS.len() - 1
                )
            })?;
        arch.insert(edge_label(to, from), Value::from(*op));
    }
    Ok(arch)
}

/// The op index (in [`OPS`]) of each edge of `a`, in the order of [`EDGES`].
fn edge_ops(a: &Architecture) -> Result<[usize; 6], String> {
    let mut ops = [0; 6];
    for (k, &(to, from)) in EDGES.iter().enumerate() {
        let label = edge_label(to, from);
        let op = a.get(&label).and_then(|v| v.as_str());
        ops[k] = op
            .and_then(|op| OPS.iter().position(|o| *o == op))
            .ok_or_else(|| match op {
                None => format!("missing edge `{label}`"),
                Some(op) => format!("`{label}`: unknown op `{op}`"),
            })?;
    }
    Ok(ops)
}

/// The six-digit key of `a` (the inverse of [`arch_from_key`]).
pub fn arch_key(a: &Architecture) -> Result<String, String> {
    Ok(edge_ops(a)?
        .iter()
        .map(|&i| char::from(b'0' + i as u8))
        .collect())
}

/// The benchmark's isomorphism class of `a`: architectures with the same string compute
/// the same function of the cell input up to their weights (the benchmark counts 6,466
/// classes among its 15,625 cells). Each node is written as the sorted `+`-sum of its
/// edges' terms: `#` for a `none` edge or an edge from a zero node, the input node's own
/// term for `skip_connect`, `(input)@op` for the other ops; node 0 is `0`. A node whose
/// terms are all `#` is zero only when it has a single edge (node 1), as in the
/// benchmark's own rule.
pub fn isomorphism_key(a: &Architecture) -> Result<String, String> {
    let ops = edge_ops(a)?;
    let mut nodes = vec!["0".to_string()];
    for to in 1..4 {
        let mut terms: Vec<String> = EDGES
            .iter()
            .zip(ops)
            .filter(|((j, _), _)| *j == to)
            .map(|(&(_, from), op)| match OPS[op] {
                _ if op == 0 || nodes[from] == "#" => "#".to_string(),
                "skip_connect" => nodes[from].clone(),
                name => format!("({})@{name}", nodes[from]),
            })
            .collect();
        terms.sort();
        nodes.push(terms.join("+"));
    }
    Ok(nodes.pop().unwrap())
}
