//! Declarative search spaces: a JSON file describing a sequential network with choice
//! points, so a user can define a space without writing Rust. See `docs/space-files.md`.

use super::{Builder, Reduce, Space};
use crate::nn::{self, Kind, Module, Sequential};
use crate::ops::ConvOpts;
use crate::rng::Rng;
use crate::tensor::Tensor;
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::path::Path;

/// An integer field: a number, or `{"choice": label, "values": [...]}` (a ValueChoice).
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum Int {
    Fixed(usize),
    Choice { choice: String, values: Vec<usize> },
}

/// One entry of a `layers` list.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum Layer {
    /// A LayerChoice among named candidates, each a list of layers.
    Choice {
        choice: String,
        candidates: BTreeMap<String, Vec<Layer>>,
    },
    /// `body` repeated a chosen number of times (a Repeat).
    Repeat {
        repeat: String,
        depths: Vec<usize>,
        body: Vec<Layer>,
    },
    /// An InputChoice between `body(x)` and `body(x) + x` (an optional residual).
    Residual { residual: String, body: Vec<Layer> },
    /// A plain op.
    Op(OpSpec),
}

/// A plain op and its settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpSpec {
    pub op: String,
    pub out: Option<Value>,
    pub kernel: Option<Int>,
    #[serde(default)]
    pub stride: Option<usize>,
    #[serde(default)]
    pub dilation: Option<usize>,
    #[serde(default)]
    pub groups: Option<usize>,
}

/// A space file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpaceFile {
    pub name: String,
    pub layers: Vec<Layer>,
}

/// The shape flowing through the network while it is checked or built.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Shape {
    Image(usize, usize, usize),
    Flat(usize),
}

const OPS: &[&str] = &[
    "conv", "sep_conv", "dil_conv", "bn", "relu", "max_pool", "avg_pool", "identity", "zero",
    "gap", "linear",
];

/// A space read from a file, for data of a given shape.
pub struct FileSpace {
    pub spec: SpaceFile,
    pub input: [usize; 3],
    pub classes: usize,
}

impl FileSpace {
    /// Reads and checks a space file: unknown ops, shape or channel mismatches, duplicate
    /// labels and empty choices are errors that name the place in the file.
    pub fn load(path: &Path, input: [usize; 3], classes: usize) -> Result<FileSpace, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let spec: SpaceFile = serde_json::from_str(&text)
            .map_err(|e| format!("{}: not a space file: {e}", path.display()))?;
        let space = FileSpace {
            spec,
            input,
            classes,
        };
        space
            .check()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(space)
    }

    /// Walks every path of the file (first value of each value choice, every candidate)
    /// checking shapes and labels.
    fn check(&self) -> Result<(), String> {
        let mut labels = HashSet::new();
        let s = Shape::Image(self.input[0], self.input[1], self.input[2]);
        let out = check_layers(&self.spec.layers, s, "layers", self.classes, &mut labels)?;
        match out {
            Shape::Flat(f) if f == self.classes => Ok(()),
            other => Err(format!(
                "the network ends with shape {other:?}; it must end in {} class scores \
                 (finish with {{\"op\": \"gap\"}}, {{\"op\": \"linear\", \"out\": \"classes\"}})",
                self.classes
            )),
        }
    }
}

fn first(i: &Option<Int>, default: usize) -> usize {
    match i {
        None => default,
        Some(Int::Fixed(v)) => *v,
        Some(Int::Choice { values, .. }) => values.first().copied().unwrap_or(default),
    }
}

fn out_channels(o: &OpSpec, classes: usize, at: &str) -> Result<usize, String> {
    match &o.out {
        Some(Value::Number(n)) if n.as_u64().is_some_and(|v| v > 0) => {
            Ok(n.as_u64().unwrap() as usize)
        }
        Some(Value::String(s)) if s == "classes" => Ok(classes),
        Some(v) => Err(format!(
            "{at}.out: {v} is not a positive integer or \"classes\""
        )),
        None => Err(format!("{at}: op `{}` needs `out`", o.op)),
    }
}

fn new_label(label: &str, at: &str, labels: &mut HashSet<String>) -> Result<(), String> {
    if !labels.insert(label.to_string()) {
        return Err(format!("{at}: duplicate label `{label}`"));
    }
    Ok(())
}

fn check_layers(
    layers: &[Layer],
    mut s: Shape,
    at: &str,
    classes: usize,
    labels: &mut HashSet<String>,
) -> Result<Shape, String> {
    for (i, l) in layers.iter().enumerate() {
        let at = format!("{at}[{i}]");
        s = match l {
            Layer::Op(o) => {
                if let Some(Int::Choice { choice, values }) = &o.kernel {
                    new_label(choice, &at, labels)?;
                    if values.is_empty() {
                        return Err(format!("{at}.kernel: choice `{choice}` has no values"));
                    }
                }
                op_shape(o, s, &at, classes)?
            }
            Layer::Choice { choice, candidates } => {
                new_label(choice, &at, labels)?;
                if candidates.is_empty() {
                    return Err(format!("{at}: choice `{choice}` has no candidates"));
                }
                let mut out: Option<(String, Shape)> = None;
                for (name, body) in candidates {
                    let plain = body
                        .iter()
                        .all(|l| matches!(l, Layer::Op(o) if !matches!(o.kernel, Some(Int::Choice { .. }))));
                    if !plain {
                        return Err(format!(
                            "{at}.{name}: a candidate of `{choice}` may only hold plain ops \
                             (no choices inside a layer choice)"
                        ));
                    }
                    let o = check_layers(body, s, &format!("{at}.{name}"), classes, labels)?;
                    if let Some((n0, s0)) = &out {
                        if *s0 != o {
                            return Err(format!(
                                "{at}: candidates of `{choice}` disagree: `{n0}` gives {s0:?}, \
                                 `{name}` gives {o:?}"
                            ));
                        }
                    }
                    out = Some((name.clone(), o));
                }
                out.unwrap().1
            }
            Layer::Repeat {
                repeat,
                depths,
                body,
            } => {
                new_label(repeat, &at, labels)?;
                if depths.is_empty() {
                    return Err(format!("{at}: repeat `{repeat}` has no depths"));
                }
                // The body runs any number of times, so it must keep the shape.
                let o = check_layers(body, s, &format!("{at}.body"), classes, labels)?;
                if o != s {
                    return Err(format!(
                        "{at}: repeat `{repeat}` body changes shape {s:?} -> {o:?}; a repeated \
                         body must keep its input shape"
                    ));
                }
                s
            }
            Layer::Residual { residual, body } => {
                new_label(residual, &at, labels)?;
                let o = check_layers(body, s, &format!("{at}.body"), classes, labels)?;
                if o != s {
                    return Err(format!(
                        "{at}: residual `{residual}` body changes shape {s:?} -> {o:?}, so it \
                         cannot be added to its input"
                    ));
                }
                s
            }
        };
    }
    Ok(s)
}

fn op_shape(o: &OpSpec, s: Shape, at: &str, classes: usize) -> Result<Shape, String> {
    if !OPS.contains(&o.op.as_str()) {
        return Err(format!(
            "{at}: unknown op `{}` (known: {})",
            o.op,
            OPS.join(", ")
        ));
    }
    let image = |s: Shape| match s {
        Shape::Image(c, h, w) => Ok((c, h, w)),
        Shape::Flat(_) => Err(format!(
            "{at}: op `{}` needs an image, but the input is flat",
            o.op
        )),
    };
    let k = first(&o.kernel, 3);
    let stride = o.stride.unwrap_or(1);
    let dil = o.dilation.unwrap_or(1);
    if stride == 0 || dil == 0 || k == 0 {
        return Err(format!(
            "{at}: kernel, stride and dilation must be at least 1"
        ));
    }
    let down = |h: usize| (h - 1) / stride + 1;
    Ok(match o.op.as_str() {
        "conv" | "sep_conv" | "dil_conv" => {
            let (c, h, w) = image(s)?;
            let out = out_channels(o, classes, at)?;
            let g = o.groups.unwrap_or(1);
            if g == 0 || c % g != 0 || out % g != 0 {
                return Err(format!(
                    "{at}.groups: {g} does not divide {c} in and {out} out channels"
                ));
            }
            if k % 2 == 0 {
                return Err(format!(
                    "{at}.kernel: {k}; use odd kernels (padding keeps the size)"
                ));
            }
            Shape::Image(out, down(h), down(w))
        }
        "bn" | "relu" | "identity" => {
            if o.op != "relu" {
                image(s)?;
            }
            s
        }
        "zero" => {
            let (c, h, w) = image(s)?;
            Shape::Image(c, down(h), down(w))
        }
        "max_pool" | "avg_pool" => {
            let (c, h, w) = image(s)?;
            let st = o.stride.unwrap_or(k);
            let pad = k / 2 * usize::from(st == 1);
            if h + 2 * pad < k || w + 2 * pad < k {
                return Err(format!(
                    "{at}: pooling window {k} is larger than the input {h}x{w}"
                ));
            }
            Shape::Image(c, (h + 2 * pad - k) / st + 1, (w + 2 * pad - k) / st + 1)
        }
        "gap" => Shape::Flat(image(s)?.0),
        "linear" => match s {
            Shape::Flat(_) => Shape::Flat(out_channels(o, classes, at)?),
            Shape::Image(..) => {
                return Err(format!(
                    "{at}: `linear` needs a flat input; put {{\"op\": \"gap\"}} first"
                ))
            }
        },
        _ => unreachable!(),
    })
}

/// Global average pooling to a flat `[n, c]`.
struct Gap;
impl Module for Gap {
    fn forward(&self, x: &Tensor) -> Tensor {
        x.adaptive_avg_pool2d(1, 1).flatten(1)
    }
    fn visit(&self, _: &str, _: &mut dyn FnMut(String, &Tensor, Kind)) {}
}

/// `body(x)`, or `body(x) + x`, as an input choice decides.
struct Residual {
    body: Sequential,
    skip: super::InputChoice,
}
impl Module for Residual {
    fn forward(&self, x: &Tensor) -> Tensor {
        let y = self.body.forward(x);
        self.skip.forward(&[y.clone(), y.add(x)])
    }
    fn visit(&self, p: &str, f: &mut dyn FnMut(String, &Tensor, Kind)) {
        self.body.visit(p, f)
    }
    fn set_training(&self, t: bool) {
        self.body.set_training(t)
    }
}

/// Builds `layers` from `shape`, returning the modules and the shape after them. Labels
/// get `prefix` (`depth.1/` inside block 1 of the repeat `depth`).
fn build_layers(
    b: &mut Builder,
    layers: &[Layer],
    mut s: Shape,
    classes: usize,
    prefix: &str,
) -> (Sequential, Shape) {
    let mut mods: Vec<Box<dyn Module>> = vec![];
    for l in layers {
        let (m, o): (Box<dyn Module>, Shape) = match l {
            Layer::Op(o) => build_op(b, o, s, classes, prefix),
            Layer::Choice { choice, candidates } => {
                let mut out = s;
                let mut cands: Vec<(String, super::Make<'_>)> = vec![];
                // Candidates are plain op lists (no nested choices inside a layer choice).
                for (name, body) in candidates {
                    let body = body.clone();
                    let shape = s;
                    out = check_layers(&body, s, "", classes, &mut HashSet::new()).unwrap_or(s);
                    cands.push((
                        name.clone(),
                        Box::new(move |rng: &mut Rng| {
                            let mut inner = Builder::new(super::Mode::Describe, rng.next_u64());
                            let m = build_layers(&mut inner, &body, shape, classes, "").0;
                            Box::new(m) as Box<dyn Module>
                        }),
                    ));
                }
                (
                    Box::new(b.layer_choice(&format!("{prefix}{choice}"), cands)),
                    out,
                )
            }
            Layer::Repeat {
                repeat,
                depths,
                body,
            } => {
                let label = format!("{prefix}{repeat}");
                let blocks = b.repeat(&label, depths, |b, i| {
                    build_layers(b, body, s, classes, &format!("{label}.{i}/")).0
                });
                let seq = Sequential::new(
                    blocks
                        .into_iter()
                        .map(|m| Box::new(m) as Box<dyn Module>)
                        .collect(),
                );
                (Box::new(seq), s)
            }
            Layer::Residual { residual, body } => {
                let (body, _) = build_layers(b, body, s, classes, prefix);
                let skip = b.input_choice(&format!("{prefix}{residual}"), 2, 1, Reduce::Sum);
                (Box::new(Residual { body, skip }), s)
            }
        };
        mods.push(m);
        s = o;
    }
    (Sequential::new(mods), s)
}

fn build_op(
    b: &mut Builder,
    o: &OpSpec,
    s: Shape,
    classes: usize,
    prefix: &str,
) -> (Box<dyn Module>, Shape) {
    let k = match &o.kernel {
        None => 3,
        Some(Int::Fixed(v)) => *v,
        Some(Int::Choice { choice, values }) => {
            b.value_choice(&format!("{prefix}{choice}"), values)
        }
    };
    let spec = OpSpec {
        kernel: Some(Int::Fixed(k)),
        ..o.clone()
    };
    let out_shape = op_shape(&spec, s, "", classes).expect("checked when the file was loaded");
    let stride = o.stride.unwrap_or(1);
    let rng = &mut b.rng;
    let m: Box<dyn Module> = match (o.op.as_str(), s, out_shape) {
        ("conv", Shape::Image(c, ..), Shape::Image(out, ..)) => {
            let opts = ConvOpts {
                stride,
                padding: o.dilation.unwrap_or(1) * (k / 2),
                dilation: o.dilation.unwrap_or(1),
                groups: o.groups.unwrap_or(1),
            };
            Box::new(nn::Conv2d::new(c, out, k, opts, rng))
        }
        ("sep_conv", Shape::Image(c, ..), Shape::Image(out, ..)) => {
            Box::new(nn::SepConv::new(c, out, k, stride, k / 2, true, rng))
        }
        ("dil_conv", Shape::Image(c, ..), Shape::Image(out, ..)) => {
            let d = o.dilation.unwrap_or(2);
            Box::new(nn::DilConv::new(
                c,
                out,
                k,
                stride,
                d * (k / 2),
                d,
                true,
                rng,
            ))
        }
        ("bn", Shape::Image(c, ..), _) => Box::new(nn::BatchNorm2d::new(c)),
        ("relu", ..) => Box::new(nn::ReLU),
        ("identity", ..) => Box::new(nn::Identity),
        ("zero", ..) => Box::new(nn::Zero { stride }),
        ("max_pool", ..) => {
            let st = o.stride.unwrap_or(k);
            Box::new(nn::MaxPool2d {
                k,
                stride: st,
                padding: k / 2 * usize::from(st == 1),
            })
        }
        ("avg_pool", ..) => {
            let st = o.stride.unwrap_or(k);
            Box::new(nn::AvgPool2d {
                k,
                stride: st,
                padding: k / 2 * usize::from(st == 1),
                count_include_pad: false,
            })
        }
        ("gap", ..) => Box::new(Gap),
        ("linear", Shape::Flat(f), Shape::Flat(out)) => Box::new(nn::Linear::new(f, out, rng)),
        _ => unreachable!("shapes were checked when the file was loaded"),
    };
    (m, out_shape)
}

impl Space for FileSpace {
    fn name(&self) -> &str {
        &self.spec.name
    }
    fn build(&self, b: &mut Builder) -> Box<dyn Module> {
        let s = Shape::Image(self.input[0], self.input[1], self.input[2]);
        Box::new(build_layers(b, &self.spec.layers, s, self.classes, "").0)
    }
}
