//! `chain`: a chain-structured space with skip connections, in the style of the first
//! reinforcement-learning NAS work (Zoph and Le, 2017).
//!
//! A `Repeat` labelled `depth` picks the number of layers. Layer `i` has:
//! - `layer{i}/filters`: its output channels (a value choice);
//! - `layer{i}/skip{k}` for each layer `k < i - 1`: 1 to also read layer `k`'s output,
//!   0 not to (the previous layer, or the image for layer 0, is always read); the inputs
//!   read are concatenated along channels;
//! - `layer{i}/op`: its op, one of [`OPS`]. Convolutions are followed by BN and ReLU;
//!   pools keep the channels, so a 1x1 convolution, BN and ReLU follow them when the
//!   input's channels differ from the layer's filters.
//!
//! Every layer keeps the spatial size (stride 1), so any layer can feed any later one;
//! global average pooling and a linear classifier end the network.
//!
//! The supernet mixes what changes shapes the way FBNetV2 does: every layer has the
//! largest filter count and its output is multiplied by a channel mask, the mixing
//! weights times one mask per filter value (ones on the first `filters` channels); every
//! skip is read, scaled by its weight for 1; and the classifier reads the mixing-weighted
//! sum of the pooled outputs at each candidate depth. One-hot weights compute the fixed
//! network (zero channels past the chosen width), whose layers are slices of the
//! supernet's ([`ChainSpace::inherit`](Space::inherit)), except a pool op whose 1x1
//! convolution (present where the input's channels differ from the filters) is in one
//! of the two and not the other.

use crate::nn::{
    join, AdaptiveAvgPool2d, AvgPool2d, BatchNorm2d, Conv2d, Kind, Linear, MaxPool2d, Module, ReLU,
    Sequential,
};
use crate::ops::ConvOpts;
use crate::rng::Rng;
use crate::space::{Builder, Decision, LayerChoice, Space};
use crate::tensor::Tensor;

/// The candidate ops of every layer.
pub const OPS: [&str; 7] = [
    "conv3x3",
    "conv5x5",
    "conv7x7",
    "sep_conv3x3",
    "sep_conv5x5",
    "max_pool3x3",
    "avg_pool3x3",
];

#[derive(Clone, Debug)]
pub struct ChainSpace {
    pub in_channels: usize,
    pub classes: usize,
    /// The depths `depth` may take.
    pub depths: Vec<usize>,
    /// The filters each layer may have.
    pub filters: Vec<usize>,
}

impl ChainSpace {
    /// Depths 2 to 6 and filters 16, 32 or 64.
    pub fn new(in_channels: usize, classes: usize) -> ChainSpace {
        ChainSpace {
            in_channels,
            classes,
            depths: vec![2, 3, 4, 5, 6],
            filters: vec![16, 32, 64],
        }
    }
}

fn conv_bn_relu(cin: usize, cout: usize, k: usize, rng: &mut Rng) -> Vec<Box<dyn Module>> {
    let o = ConvOpts {
        padding: k / 2,
        ..Default::default()
    };
    vec![
        Box::new(Conv2d::no_bias(cin, cout, k, o, rng)),
        Box::new(BatchNorm2d::new(cout)),
        Box::new(ReLU),
    ]
}

/// One op of the chain space from `cin` to `cout` channels, keeping the spatial size.
pub fn op(name: &str, cin: usize, cout: usize, rng: &mut Rng) -> Box<dyn Module> {
    let layers: Vec<Box<dyn Module>> = match name {
        "conv3x3" => conv_bn_relu(cin, cout, 3, rng),
        "conv5x5" => conv_bn_relu(cin, cout, 5, rng),
        "conv7x7" => conv_bn_relu(cin, cout, 7, rng),
        "sep_conv3x3" | "sep_conv5x5" => {
            let k = if name == "sep_conv3x3" { 3 } else { 5 };
            let dw = ConvOpts {
                padding: k / 2,
                groups: cin,
                ..Default::default()
            };
            let mut v: Vec<Box<dyn Module>> = vec![Box::new(Conv2d::no_bias(cin, cin, k, dw, rng))];
            v.extend(conv_bn_relu(cin, cout, 1, rng));
            v
        }
        "max_pool3x3" | "avg_pool3x3" => {
            let pool: Box<dyn Module> = if name == "max_pool3x3" {
                Box::new(MaxPool2d {
                    k: 3,
                    stride: 1,
                    padding: 1,
                })
            } else {
                Box::new(AvgPool2d {
                    k: 3,
                    stride: 1,
                    padding: 1,
                    count_include_pad: false,
                })
            };
            let mut v = vec![pool];
            if cin != cout {
                v.extend(conv_bn_relu(cin, cout, 1, rng));
            }
            v
        }
        _ => panic!("unknown chain op `{name}`"),
    };
    Box::new(Sequential::new(layers))
}

/// A layer: the earlier layers it also reads (with their mixing weights in a
/// supernet), its op, and in a supernet its filter mixing weights and masks.
pub struct ChainLayer {
    pub skips: Vec<(usize, Option<Tensor>)>,
    pub op: LayerChoice,
    /// Supernet only: (mixing weights over filter values, `[values, max]` masks).
    pub width: Option<(Tensor, Tensor)>,
}

pub struct ChainNet {
    pub layers: Vec<ChainLayer>,
    pub gap: AdaptiveAvgPool2d,
    pub classifier: Linear,
    /// Supernet only: mixing weights over the candidate depths, and those depths.
    pub depth: Option<(Tensor, Vec<usize>)>,
}

impl Module for ChainNet {
    fn forward(&self, x: &Tensor) -> Tensor {
        // In a supernet, only layers up to the deepest depth with a non-zero weight run.
        let (run, active_depths) = match &self.depth {
            None => (self.layers.len(), vec![]),
            Some((a, depths)) => {
                let w = a.to_vec();
                let act: Vec<usize> = (0..depths.len())
                    .filter(|&i| crate::space::computed(w[i]))
                    .collect();
                assert!(!act.is_empty(), "chain: every depth weight is zero");
                (act.iter().map(|&i| depths[i]).max().unwrap(), act)
            }
        };
        let mut outs: Vec<Tensor> = vec![];
        for layer in &self.layers[..run] {
            let prev = outs.last().unwrap_or(x).clone();
            let input = if layer.skips.is_empty() {
                prev
            } else {
                let mut xs = vec![prev];
                for (k, w) in &layer.skips {
                    xs.push(match w {
                        None => outs[*k].clone(),
                        // The weight of "1" scales the skip; "0" contributes nothing.
                        Some(a) => outs[*k].mul(&a.slice(0, 1, 1)),
                    });
                }
                Tensor::concat(&xs, 1)
            };
            let mut y = layer.op.forward(&input);
            if let Some((a, masks)) = &layer.width {
                let c = masks.dim(1);
                let mask = a
                    .reshape(&[1, a.numel()])
                    .matmul(masks)
                    .reshape(&[1, c, 1, 1]);
                y = y.mul(&mask);
            }
            outs.push(y);
        }
        let y = match &self.depth {
            None => self.gap.forward(outs.last().unwrap_or(x)).flatten(1),
            Some((a, depths)) => {
                let pooled: Vec<Tensor> = active_depths
                    .iter()
                    .map(|&i| self.gap.forward(&outs[depths[i] - 1]).flatten(1))
                    .collect();
                Tensor::weighted_sum(&pooled, a, &active_depths)
            }
        };
        crate::space::tap_point(crate::space::FEATURES, &y);
        self.classifier.forward(&y)
    }
    fn visit(&self, p: &str, f: &mut dyn FnMut(String, &Tensor, Kind)) {
        for (i, l) in self.layers.iter().enumerate() {
            l.op.visit(&join(p, &format!("layers.{i}")), f);
        }
        self.classifier.visit(&join(p, "classifier"), f);
    }
    fn set_training(&self, t: bool) {
        self.layers.iter().for_each(|l| l.op.set_training(t));
    }
}

/// `t`'s elements at the indices `keep` gives along each axis (all where `None`).
fn gather(t: &Tensor, keep: &[Option<Vec<usize>>]) -> Tensor {
    let shape = t.shape().to_vec();
    let idx: Vec<Vec<usize>> = shape
        .iter()
        .zip(keep)
        .map(|(&n, k)| k.clone().unwrap_or_else(|| (0..n).collect()))
        .collect();
    let mut strides = vec![1; shape.len()];
    for a in (0..shape.len().saturating_sub(1)).rev() {
        strides[a] = strides[a + 1] * shape[a + 1];
    }
    let src = t.to_vec();
    let mut out = vec![];
    let dims: Vec<usize> = idx.iter().map(Vec::len).collect();
    let total: usize = dims.iter().product();
    let mut at = vec![0; dims.len()];
    for _ in 0..total {
        out.push(
            src[at
                .iter()
                .enumerate()
                .map(|(a, &i)| idx[a][i] * strides[a])
                .sum::<usize>()],
        );
        for a in (0..dims.len()).rev() {
            at[a] += 1;
            if at[a] < dims[a] {
                break;
            }
            at[a] = 0;
        }
    }
    Tensor::from_vec(out, &dims)
}

impl Space for ChainSpace {
    fn name(&self) -> &str {
        "chain"
    }

    /// The supernet's layers hold the largest filter count and read every skip; `arch`'s
    /// layer `i` keeps its first `filters` output channels, and of its input channels
    /// those of the previous layer's first filters and of each skip it reads (the others
    /// are zero on the one-hot path), so its convolutions, batch norms and the classifier
    /// are slices of the supernet's and compute what the path computes. A pool op's 1x1
    /// convolution is not: the fixed network has one where its input's channels differ
    /// from its filters, the supernet where the widest input's do, and where only one of
    /// them has it the two compute otherwise (a note says so).
    fn inherit(
        &self,
        arch: &crate::space::Architecture,
        supernet: Vec<(String, Tensor)>,
    ) -> (Vec<(String, Tensor)>, Vec<String>) {
        // A whole number, written `16` or `16.0` (validation takes both).
        let num = |label: &str| {
            arch.get(label)
                .and_then(|v| v.as_f64())
                .filter(|x| x.fract() == 0.0 && *x >= 0.0)
                .map(|x| x as usize)
        };
        let max_f = *self.filters.iter().max().unwrap();
        let Some(depth) = num("depth") else {
            return (supernet, vec![]);
        };
        let f: Vec<usize> = (0..depth)
            .map(|i| num(&format!("layer{i}/filters")).unwrap_or(max_f))
            .collect();
        let op = |i: usize| {
            arch.get(&format!("layer{i}/op"))
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string()
        };
        // The input channels of layer `i` that the fixed network reads, in the supernet's.
        let reads = |i: usize| -> Vec<usize> {
            if i == 0 {
                return (0..self.in_channels).collect();
            }
            let mut r: Vec<usize> = (0..f[i - 1]).collect();
            for k in 0..i.saturating_sub(1) {
                if num(&format!("layer{i}/skip{k}")) == Some(1) {
                    let at = max_f * (1 + k);
                    r.extend(at..at + f[k]);
                }
            }
            r
        };
        let mut out = vec![];
        for (name, t) in supernet {
            if name == "classifier.weight" {
                let keep = [None, Some((0..f[depth - 1]).collect())];
                out.push((name, gather(&t, &keep)));
                continue;
            }
            let parts: Vec<&str> = name.split('.').collect();
            let [_, i, o, j, _] = parts[..] else {
                out.push((name, t));
                continue;
            };
            let Ok(i) = i.parse::<usize>() else {
                continue;
            };
            if parts[0] != "layers" || i >= depth || o != op(i) {
                continue;
            }
            let cols = Some((0..f[i]).collect::<Vec<_>>());
            let keep = match t.shape().len() {
                4 if o.starts_with("sep_conv") && j == "0" => {
                    vec![Some(reads(i)), None, None, None]
                }
                4 => vec![cols, Some(reads(i)), None, None],
                _ => vec![cols],
            };
            out.push((name, gather(&t, &keep)));
        }
        let mut notes = vec![];
        for i in 0..depth {
            let o = op(i);
            if !o.ends_with("pool3x3") {
                continue;
            }
            let widest = if i == 0 {
                self.in_channels
            } else {
                max_f * i.max(1)
            };
            let (sup, own) = (widest != max_f, reads(i).len() != f[i]);
            if sup != own {
                let (has, lacks) = match sup {
                    true => ("the supernet's", "the fixed network's"),
                    false => ("the fixed network's", "the supernet's"),
                };
                notes.push(format!(
                    "layer{i}: {has} {o} is followed by a 1x1 convolution, {lacks} is not"
                ));
            }
        }
        (out, notes)
    }

    fn build(&self, b: &mut Builder) -> Box<dyn Module> {
        assert!(
            self.depths.iter().all(|&d| d >= 1),
            "the chain space needs at least one layer"
        );
        // Output channels of the layers built so far.
        let mut outs: Vec<usize> = vec![];
        let max_f = *self.filters.iter().max().unwrap();
        let (layers, depth) = b.repeat_mixed("depth", &self.depths, |b, i| {
            let (filters, width) =
                match b.value_choice_mixed(&format!("layer{i}/filters"), &self.filters) {
                    Decision::Fixed(f) => (f, None),
                    Decision::Mixed(a) => {
                        let mut m = vec![0.0; self.filters.len() * max_f];
                        for (j, &f) in self.filters.iter().enumerate() {
                            m[j * max_f..j * max_f + f].fill(1.0);
                        }
                        (
                            max_f,
                            Some((a, Tensor::from_vec(m, &[self.filters.len(), max_f]))),
                        )
                    }
                };
            let skips: Vec<(usize, Option<Tensor>)> = (0..i.saturating_sub(1))
                .filter_map(|k| {
                    match b.value_choice_mixed(&format!("layer{i}/skip{k}"), &[0u8, 1]) {
                        Decision::Fixed(1) => Some((k, None)),
                        Decision::Fixed(_) => None,
                        Decision::Mixed(a) => Some((k, Some(a))),
                    }
                })
                .collect();
            let cin = outs.last().copied().unwrap_or(self.in_channels)
                + skips.iter().map(|(k, _)| outs[*k]).sum::<usize>();
            let candidates = OPS
                .iter()
                .map(|&name| {
                    let make: crate::space::Make<'static> =
                        Box::new(move |rng: &mut Rng| op(name, cin, filters, rng));
                    (name.to_string(), make)
                })
                .collect();
            let op = b.layer_choice(&format!("layer{i}/op"), candidates);
            outs.push(filters);
            ChainLayer { skips, op, width }
        });
        let c = outs.last().copied().unwrap_or(self.in_channels);
        Box::new(ChainNet {
            layers,
            gap: AdaptiveAvgPool2d { out: (1, 1) },
            classifier: Linear::new(c, self.classes, &mut b.rng),
            depth: depth.map(|a| (a, self.depths.clone())),
        })
    }
}
