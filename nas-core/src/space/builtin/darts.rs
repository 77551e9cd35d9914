//! `darts`: the NASNet/DARTS cell space, laid out as the search network of the DARTS
//! paper (Liu, Simonyan and Yang, 2019).
//!
//! A stem (3x3 conv to `stem_multiplier * c` channels, BN) feeds `layers` cells; the
//! cells at `layers / 3` and `2 * layers / 3` are reduction cells, which halve the
//! spatial size and double the channels. Each cell reads the outputs of the two cells
//! before it (states 0 and 1), preprocesses them to `c` channels, and computes `nodes`
//! intermediate nodes numbered `2 .. 2 + nodes`. Node `j` sums the ops on two of its
//! `j` earlier states; the cell outputs the concatenation of its intermediate nodes.
//! Global average pooling and a linear classifier end the network.
//!
//! There are two cell types, normal and reduce, and every cell of a type makes the same
//! decisions, so choices are labelled per type:
//! - `normal/op_{j}_{i}`: the op on the edge from state `i` into node `j` (one of
//!   [`OPS`]);
//! - `normal/input_{j}`: which two of node `j`'s `j` earlier states it sums (an
//!   `InputChoice` picking 2, reduced by sum, whose candidates are declared edges
//!   carrying the `op_{j}_{i}` choices ([`crate::space::Choice::edge_ops`]), so a
//!   weight-sharing search can sum all of them and rank them by their ops);
//!
//! and the same with `reduce/`. A fixed network builds only the ops on the chosen edges;
//! an architecture names those (the op choices of the other edges are inactive,
//! `nas_types::arch::active_flags`, and ignored where an architecture still names them).
//!
//! As in the DARTS search network, batch norms inside the ops are not affine (in fixed
//! networks as well, so that a derived network has the supernet's tensors), and the
//! pooling ops are followed by a (non-affine) batch norm.

use crate::nn::{
    join, AdaptiveAvgPool2d, AvgPool2d, BatchNorm2d, Conv2d, DilConv, FactorizedReduce, Identity,
    Kind, Linear, MaxPool2d, Module, ReLUConvBN, SepConv, Sequential, Zero,
};
use crate::ops::ConvOpts;
use crate::rng::Rng;
use crate::space::arch;
use crate::space::{Builder, InputChoice, LayerChoice, Mode, Reduce, Space};
use crate::tensor::Tensor;

/// The candidate ops of every edge, in the order of the mixing weights.
pub const OPS: [&str; 8] = [
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
];

/// The DARTS cell space.
#[derive(Clone, Debug)]
pub struct DartsSpace {
    /// Channels of the first cells (doubled at each reduction).
    pub c: usize,
    /// Number of cells (8 in the DARTS search network).
    pub layers: usize,
    /// Intermediate nodes per cell.
    pub nodes: usize,
    pub in_channels: usize,
    pub classes: usize,
    /// The stem has `stem_multiplier * c` channels.
    pub stem_multiplier: usize,
}

impl DartsSpace {
    /// The DARTS search network's settings (C = 16, 8 cells, 4 nodes, stem multiplier 3).
    pub fn new(in_channels: usize, classes: usize) -> DartsSpace {
        DartsSpace {
            c: 16,
            layers: 8,
            nodes: 4,
            in_channels,
            classes,
            stem_multiplier: 3,
        }
    }

    /// Indices of the reduction cells.
    pub fn reductions(&self) -> [usize; 2] {
        [self.layers / 3, 2 * self.layers / 3]
    }
}

/// One op of the DARTS search space on `c` channels.
pub fn op(name: &str, c: usize, stride: usize, rng: &mut Rng) -> Box<dyn Module> {
    let bn = || Box::new(BatchNorm2d::with_affine(c, false)) as Box<dyn Module>;
    match name {
        "none" => Box::new(Zero { stride }),
        "max_pool_3x3" => Box::new(Sequential::new(vec![
            Box::new(MaxPool2d {
                k: 3,
                stride,
                padding: 1,
            }),
            bn(),
        ])),
        "avg_pool_3x3" => Box::new(Sequential::new(vec![
            Box::new(AvgPool2d {
                k: 3,
                stride,
                padding: 1,
                count_include_pad: false,
            }),
            bn(),
        ])),
        "skip_connect" if stride == 1 => Box::new(Identity),
        "skip_connect" => Box::new(FactorizedReduce::new(c, c, false, rng)),
        "sep_conv_3x3" => Box::new(SepConv::new(c, c, 3, stride, 1, false, rng)),
        "sep_conv_5x5" => Box::new(SepConv::new(c, c, 5, stride, 2, false, rng)),
        "dil_conv_3x3" => Box::new(DilConv::new(c, c, 3, stride, 2, 2, false, rng)),
        "dil_conv_5x5" => Box::new(DilConv::new(c, c, 5, stride, 4, 2, false, rng)),
        _ => panic!("unknown DARTS op `{name}`"),
    }
}

use crate::space::Make;

fn candidates(c: usize, stride: usize) -> Vec<(String, Make<'static>)> {
    OPS.iter()
        .map(|&name| {
            let make: Make = Box::new(move |rng: &mut Rng| op(name, c, stride, rng));
            (name.to_string(), make)
        })
        .collect()
}

/// A choice made by the first cell of a type, shared by the later ones.
fn layer_choice(b: &mut Builder, label: &str, c: usize, stride: usize) -> LayerChoice {
    if b.choices().iter().any(|ch| ch.label == label) {
        b.layer_choice_shared(label, candidates(c, stride))
    } else {
        b.layer_choice(label, candidates(c, stride))
    }
}

fn input_choice(b: &mut Builder, label: &str, n: usize) -> InputChoice {
    if b.choices().iter().any(|ch| ch.label == label) {
        b.input_choice_shared(label, n, 2, Reduce::Sum)
    } else {
        b.input_choice(label, n, 2, Reduce::Sum)
    }
}

/// An edge of a cell: the op on state `from`.
pub struct Edge {
    pub from: usize,
    pub op: LayerChoice,
}

/// An intermediate node: its edges (all of them in a supernet, the chosen ones in a
/// fixed network) and the choice that sums two of them.
pub struct Node {
    pub edges: Vec<Edge>,
    pub input: InputChoice,
}

pub struct Cell {
    pub reduction: bool,
    pub preprocess0: Box<dyn Module>,
    pub preprocess1: Box<dyn Module>,
    pub nodes: Vec<Node>,
}

impl Cell {
    pub fn forward(&self, s0: &Tensor, s1: &Tensor) -> Tensor {
        let mut states = vec![self.preprocess0.forward(s0), self.preprocess1.forward(s1)];
        for node in &self.nodes {
            let active = node.input.active();
            // Only the inputs the choice reads are computed; the others are placeholders.
            let xs: Vec<Tensor> = states
                .iter()
                .enumerate()
                .map(|(i, s)| match node.edges.iter().find(|e| e.from == i) {
                    Some(e) if active.contains(&i) => crate::space::drop_path(&e.op.forward(s)),
                    _ => s.clone(),
                })
                .collect();
            states.push(node.input.forward(&xs));
        }
        Tensor::concat(&states[2..], 1)
    }

    fn visit(&self, p: &str, f: &mut dyn FnMut(String, &Tensor, Kind)) {
        self.preprocess0.visit(&join(p, "preprocess0"), f);
        self.preprocess1.visit(&join(p, "preprocess1"), f);
        for (k, node) in self.nodes.iter().enumerate() {
            let np = join(p, &format!("node{}", k + 2));
            for e in &node.edges {
                e.op.visit(&join(&np, &format!("edge{}", e.from)), f);
            }
        }
    }

    fn set_training(&self, t: bool) {
        self.preprocess0.set_training(t);
        self.preprocess1.set_training(t);
        for node in &self.nodes {
            node.edges.iter().for_each(|e| e.op.set_training(t));
        }
    }
}

pub struct DartsNet {
    pub stem: Sequential,
    pub cells: Vec<Cell>,
    pub gap: AdaptiveAvgPool2d,
    pub classifier: Linear,
}

impl Module for DartsNet {
    fn forward(&self, x: &Tensor) -> Tensor {
        let s = self.stem.forward(x);
        let (mut s0, mut s1) = (s.clone(), s);
        for cell in &self.cells {
            let s2 = cell.forward(&s0, &s1);
            s0 = std::mem::replace(&mut s1, s2);
        }
        let y = self.gap.forward(&s1).flatten(1);
        crate::space::tap_point(crate::space::FEATURES, &y);
        self.classifier.forward(&y)
    }
    fn visit(&self, p: &str, f: &mut dyn FnMut(String, &Tensor, Kind)) {
        self.stem.visit(&join(p, "stem"), f);
        for (k, cell) in self.cells.iter().enumerate() {
            cell.visit(&join(p, &format!("cells.{k}")), f);
        }
        self.classifier.visit(&join(p, "classifier"), f);
    }
    fn set_training(&self, t: bool) {
        self.stem.set_training(t);
        self.cells.iter().for_each(|c| c.set_training(t));
    }
}

#[allow(clippy::too_many_arguments)]
fn build_cell(
    b: &mut Builder,
    nodes: usize,
    c_pp: usize,
    c_p: usize,
    c: usize,
    reduction: bool,
    reduction_prev: bool,
) -> Cell {
    let kind = if reduction { "reduce" } else { "normal" };
    let preprocess0: Box<dyn Module> = if reduction_prev {
        Box::new(FactorizedReduce::new(c_pp, c, false, &mut b.rng))
    } else {
        Box::new(ReLUConvBN::new(c_pp, c, 1, 1, 0, false, &mut b.rng))
    };
    let preprocess1 = Box::new(ReLUConvBN::new(c_p, c, 1, 1, 0, false, &mut b.rng));
    let mut cell_nodes = vec![];
    for j in 2..2 + nodes {
        let input_label = format!("{kind}/input_{j}");
        // A fixed network needs the ops of the chosen edges only.
        let built: Vec<usize> = match &b.mode {
            Mode::Fixed(a) => a
                .get(&input_label)
                .and_then(arch::as_indices)
                .expect("architecture was validated"),
            _ => (0..j).collect(),
        };
        let edges = built
            .into_iter()
            .map(|i| {
                let stride = if reduction && i < 2 { 2 } else { 1 };
                let op = layer_choice(b, &format!("{kind}/op_{j}_{i}"), c, stride);
                Edge { from: i, op }
            })
            .collect();
        let input = input_choice(b, &input_label, j);
        b.edge_ops(
            &input_label,
            (0..j).map(|i| format!("{kind}/op_{j}_{i}")).collect(),
        );
        cell_nodes.push(Node { edges, input });
    }
    Cell {
        reduction,
        preprocess0,
        preprocess1,
        nodes: cell_nodes,
    }
}

impl Space for DartsSpace {
    fn name(&self) -> &str {
        "darts"
    }

    fn build(&self, b: &mut Builder) -> Box<dyn Module> {
        assert!(
            self.nodes >= 1,
            "the DARTS space needs at least one node per cell"
        );
        let c_stem = self.stem_multiplier * self.c;
        let stem_opts = ConvOpts {
            padding: 1,
            ..Default::default()
        };
        let stem = Sequential::new(vec![
            Box::new(Conv2d::no_bias(
                self.in_channels,
                c_stem,
                3,
                stem_opts,
                &mut b.rng,
            )),
            Box::new(BatchNorm2d::new(c_stem)),
        ]);
        let (mut c_pp, mut c_p, mut c) = (c_stem, c_stem, self.c);
        let mut reduction_prev = false;
        let mut cells = vec![];
        for k in 0..self.layers {
            let reduction = self.reductions().contains(&k);
            if reduction {
                c *= 2;
            }
            cells.push(build_cell(
                b,
                self.nodes,
                c_pp,
                c_p,
                c,
                reduction,
                reduction_prev,
            ));
            reduction_prev = reduction;
            (c_pp, c_p) = (c_p, self.nodes * c);
        }
        let classifier = Linear::new(c_p, self.classes, &mut b.rng);
        Box::new(DartsNet {
            stem,
            cells,
            gap: AdaptiveAvgPool2d { out: (1, 1) },
            classifier,
        })
    }
}
