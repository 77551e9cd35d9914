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
#[derive(Clone, Debug)]
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

/// A layer is told apart by its keys (`choice`, `repeat`, `residual`, else an op), and
/// only that kind is read. (serde's `untagged` tried each kind in turn, reading a
/// repeat's or a residual's whole body for every kind before it, so a file of `N`
/// nested residuals took 2^N reads: 60 never loaded.)
impl<'de> Deserialize<'de> for Layer {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Layer, D::Error> {
        #[derive(Deserialize)]
        struct ChoiceSpec {
            choice: String,
            candidates: BTreeMap<String, Vec<Layer>>,
        }
        #[derive(Deserialize)]
        struct RepeatSpec {
            repeat: String,
            depths: Vec<usize>,
            body: Vec<Layer>,
        }
        #[derive(Deserialize)]
        struct ResidualSpec {
            residual: String,
            body: Vec<Layer>,
        }
        let v = Value::deserialize(d)?;
        let has = |k: &str| v.get(k).is_some();
        let layer = if has("choice") {
            serde_json::from_value(v).map(|c: ChoiceSpec| Layer::Choice {
                choice: c.choice,
                candidates: c.candidates,
            })
        } else if has("repeat") {
            serde_json::from_value(v).map(|r: RepeatSpec| Layer::Repeat {
                repeat: r.repeat,
                depths: r.depths,
                body: r.body,
            })
        } else if has("residual") {
            serde_json::from_value(v).map(|r: ResidualSpec| Layer::Residual {
                residual: r.residual,
                body: r.body,
            })
        } else {
            serde_json::from_value(v).map(Layer::Op)
        };
        layer.map_err(serde::de::Error::custom)
    }
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

/// The batch size [`FileSpace::load`] bounds a file's activation memory at (the
/// default `--batch-size` of `nas train`).
pub const DEFAULT_BATCH: usize = 64;

/// The most memory a file's network may need, in bytes: 4 bytes for every parameter and
/// for every activation of a batch, with the largest value of every choice point and
/// every candidate of every layer choice (a supernet holds and runs them all).
pub const MAX_BYTES: u64 = 4 << 30;

/// The most layers (op instances, with every repeat at its largest depth and every
/// candidate of every layer choice) a file's network may have.
pub const MAX_LAYERS: u64 = 10_000;

/// A space read from a file, for data of a given shape.
pub struct FileSpace {
    pub spec: SpaceFile,
    pub input: [usize; 3],
    pub classes: usize,
    /// The bytes the file's largest network needs at the batch size it was loaded for
    /// (see [`MAX_BYTES`]): its parameters and the activations of a batch, with the
    /// largest value of every choice and every candidate of every layer choice.
    pub bytes: u64,
}

impl FileSpace {
    /// Reads and checks a space file for [`DEFAULT_BATCH`] images at a time (see
    /// [`FileSpace::load_for_batch`]).
    pub fn load(path: &Path, input: [usize; 3], classes: usize) -> Result<FileSpace, String> {
        FileSpace::load_for_batch(path, input, classes, DEFAULT_BATCH)
    }

    /// Reads and checks a space file before anything is built: unknown ops, shape or
    /// channel mismatches, numbers that do not fit the shapes they act on (even kernels,
    /// kernels or dilations that reach past the input, pooling windows larger than it),
    /// duplicate labels and empty choices are errors, and so is a network too large to
    /// train `batch` images at a time (over [`MAX_BYTES`] or [`MAX_LAYERS`]). Every
    /// value of every choice is checked. Errors name the file, the field (a path into
    /// the JSON, such as `layers[3].candidates.sep5x5[0].kernel`) and its value.
    pub fn load_for_batch(
        path: &Path,
        input: [usize; 3],
        classes: usize,
        batch: usize,
    ) -> Result<FileSpace, String> {
        let text =
            nas_types::json::read_file(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let not = |e: String| format!("{}: not a space file: {e}", path.display());
        let raw: Value = nas_types::json::parse(&text).map_err(|e| not(e.to_string()))?;
        // The layer kinds are told apart by their keys, so serde's own error for a
        // stray key would only say that nothing matched: this names it and the keys.
        structure(&raw).map_err(not)?;
        let spec: SpaceFile = serde_json::from_value(raw).map_err(|e| not(e.to_string()))?;
        let mut space = FileSpace {
            spec,
            input,
            classes,
            bytes: 0,
        };
        space.bytes = space
            .check(batch)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(space)
    }

    /// Walks every path of the file (every value of each value choice, every candidate)
    /// checking shapes, labels and the size of the network. Returns the bytes the
    /// largest network needs at batch size `batch`.
    fn check(&self, batch: usize) -> Result<u64, String> {
        if self.input.contains(&0) || self.classes == 0 {
            return Err(format!(
                "the data's shape {:?} with {} classes is empty",
                self.input, self.classes
            ));
        }
        let mut c = Checker {
            classes: self.classes,
            batch: batch.max(1) as u64,
            labels: HashSet::new(),
            total: Cost::default(),
        };
        let s = Shape::Image(self.input[0], self.input[1], self.input[2]);
        let out = c.layers(&self.spec.layers, s, "layers")?;
        match out {
            Shape::Flat(f) if f == self.classes => Ok(c.total.bytes(c.batch)),
            other => Err(format!(
                "the network ends with shape {other:?}; it must end in {} class scores \
                 (finish with {{\"op\": \"gap\"}}, {{\"op\": \"linear\", \"out\": \"classes\"}})",
                self.classes
            )),
        }
    }
}

/// The keys of each kind of layer (the first names the kind), and of a value choice.
const LAYER_KEYS: [(&str, &[&str]); 4] = [
    (
        "op",
        &["op", "out", "kernel", "stride", "dilation", "groups"],
    ),
    ("choice", &["choice", "candidates"]),
    ("repeat", &["repeat", "depths", "body"]),
    ("residual", &["residual", "body"]),
];
const VALUE_CHOICE_KEYS: &[&str] = &["choice", "values"];

/// The settings each op takes (beside `op`): what its builder reads, no more.
const OP_SETTINGS: &[(&str, &[&str])] = &[
    ("conv", &["out", "kernel", "stride", "dilation", "groups"]),
    ("sep_conv", &["out", "kernel", "stride"]),
    ("dil_conv", &["out", "kernel", "stride", "dilation"]),
    ("bn", &[]),
    ("relu", &[]),
    ("identity", &[]),
    ("gap", &[]),
    ("zero", &["stride"]),
    ("max_pool", &["kernel", "stride"]),
    ("avg_pool", &["kernel", "stride"]),
    ("linear", &["out"]),
];

/// What each kind of layer takes, for error messages.
fn layer_kinds() -> String {
    LAYER_KEYS
        .iter()
        .map(|(k, keys)| format!("{} {k} takes {}", article(k), keys.join(", ")))
        .collect::<Vec<_>>()
        .join("; ")
}

fn article(kind: &str) -> &'static str {
    if kind == "op" {
        "an"
    } else {
        "a"
    }
}

fn quoted(keys: &[&String]) -> String {
    keys.iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks a space file's keys and the types of its fields before serde reads it, so an
/// error names the JSON path, the stray or missing key and the keys that fit there.
fn structure(v: &Value) -> Result<(), String> {
    let top = v.as_object().ok_or_else(|| {
        format!(
            "{} is not a JSON object with `name` and `layers`",
            kind_of(v)
        )
    })?;
    keys_in(
        "the file",
        top,
        &["name", "layers"],
        "a space file takes name, layers",
    )?;
    for k in ["name", "layers"] {
        if !top.contains_key(k) {
            return Err(format!(
                "the file needs `{k}` (a space file takes name, layers)"
            ));
        }
    }
    if !top["name"].is_string() {
        return Err(format!("name: {} is not a string", top["name"]));
    }
    layer_list(&top["layers"], "layers")
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn keys_in(
    at: &str,
    m: &serde_json::Map<String, Value>,
    allowed: &[&str],
    takes: &str,
) -> Result<(), String> {
    let unknown: Vec<&String> = m
        .keys()
        .filter(|k| !allowed.contains(&k.as_str()))
        .collect();
    match unknown.len() {
        0 => Ok(()),
        1 => Err(format!("{at}: unknown key {} ({takes})", quoted(&unknown))),
        _ => Err(format!("{at}: unknown keys {} ({takes})", quoted(&unknown))),
    }
}

fn layer_list(v: &Value, at: &str) -> Result<(), String> {
    let list = v
        .as_array()
        .ok_or_else(|| format!("{at}: {} is not a list of layers", kind_of(v)))?;
    for (i, l) in list.iter().enumerate() {
        layer(l, &format!("{at}[{i}]"))?;
    }
    Ok(())
}

fn count(v: &Value, at: &str) -> Result<(), String> {
    match v {
        Value::Null => Ok(()),
        Value::Number(n) if n.as_u64().is_some() => Ok(()),
        v => Err(format!("{at}: {v} is not a non-negative integer")),
    }
}

fn layer(v: &Value, at: &str) -> Result<(), String> {
    let m = v.as_object().ok_or_else(|| {
        format!(
            "{at}: {} is not a layer (an object); {}",
            kind_of(v),
            layer_kinds()
        )
    })?;
    let kinds: Vec<&(&str, &[&str])> = LAYER_KEYS
        .iter()
        .filter(|(k, _)| m.contains_key(*k))
        .collect();
    let (kind, keys) = match kinds.as_slice() {
        [one] => **one,
        [] => {
            let found: Vec<&String> = m.keys().collect();
            return Err(format!(
                "{at}: a layer needs one of `op`, `choice`, `repeat` or `residual`{}; {}",
                if found.is_empty() {
                    String::new()
                } else {
                    format!(" (it has {})", quoted(&found))
                },
                layer_kinds()
            ));
        }
        more => {
            let names: Vec<String> = more.iter().map(|(k, _)| format!("`{k}`")).collect();
            return Err(format!(
                "{at}: a layer has one of `op`, `choice`, `repeat` or `residual`, this one {}; {}",
                names.join(" and "),
                layer_kinds()
            ));
        }
    };
    let takes = format!("{} {kind} takes {}", article(kind), keys.join(", "));
    keys_in(at, m, keys, &takes)?;
    // An op's settings are optional; every key of the other kinds is needed.
    let required: &[&str] = if kind == "op" { &["op"] } else { keys };
    for r in required {
        if !m.contains_key(*r) {
            return Err(format!(
                "{at}: {} {kind} needs `{r}` ({takes})",
                article(kind)
            ));
        }
    }
    let string = |k: &str| match m.get(k) {
        Some(Value::String(_)) | None => Ok(()),
        Some(v) => Err(format!("{at}.{k}: {v} is not a string")),
    };
    string(kind)?;
    match kind {
        "op" => {
            // A setting the op does not read is a mistake (`{"op": "bn", "stride": 2}`
            // would not downsample); an unknown op is named where the ops are checked.
            let op = m["op"].as_str().unwrap_or_default();
            if let Some((_, takes)) = OP_SETTINGS.iter().find(|(o, _)| *o == op) {
                if let Some(k) = m
                    .keys()
                    .find(|k| *k != "op" && !takes.contains(&k.as_str()))
                {
                    let what = match takes.is_empty() {
                        true => "it takes no settings".to_string(),
                        false => format!("it takes {}", takes.join(", ")),
                    };
                    return Err(format!("{at}: op `{op}` takes no `{k}` ({what})"));
                }
            }
            if let Some(k) = m.get("kernel") {
                kernel(k, &format!("{at}.kernel"))?;
            }
            for k in ["stride", "dilation", "groups"] {
                match m.get(k) {
                    Some(x @ Value::Object(_)) => {
                        return Err(format!(
                            "{at}.{k}: {x} is not a number (only `kernel` may be a value \
                             choice; a choice of {k} is a layer choice between ops)"
                        ))
                    }
                    Some(x) => count(x, &format!("{at}.{k}"))?,
                    None => {}
                }
            }
        }
        "choice" => {
            let c = m["candidates"].as_object().ok_or_else(|| {
                format!(
                    "{at}.candidates: {} is not an object of named candidates (lists of layers)",
                    kind_of(&m["candidates"])
                )
            })?;
            for (name, body) in c {
                layer_list(body, &format!("{at}.candidates.{name}"))?;
            }
        }
        "repeat" => {
            let d = m["depths"].as_array().ok_or_else(|| {
                format!(
                    "{at}.depths: {} is not a list of depths",
                    kind_of(&m["depths"])
                )
            })?;
            for (i, x) in d.iter().enumerate() {
                if x.is_null() {
                    return Err(format!(
                        "{at}.depths[{i}]: null is not a non-negative integer"
                    ));
                }
                count(x, &format!("{at}.depths[{i}]"))?;
            }
            layer_list(&m["body"], &format!("{at}.body"))?;
        }
        _ => layer_list(&m["body"], &format!("{at}.body"))?,
    }
    Ok(())
}

/// A kernel size: a number, or a value choice `{"choice": label, "values": [...]}`.
fn kernel(v: &Value, at: &str) -> Result<(), String> {
    match v {
        Value::Object(m) => {
            keys_in(at, m, VALUE_CHOICE_KEYS, "a value choice takes choice, values")?;
            for k in VALUE_CHOICE_KEYS {
                if !m.contains_key(*k) {
                    return Err(format!(
                        "{at}: a value choice needs `{k}` (a value choice takes choice, values)"
                    ));
                }
            }
            if !m["choice"].is_string() {
                return Err(format!("{at}.choice: {} is not a string", m["choice"]));
            }
            let vals = m["values"]
                .as_array()
                .ok_or_else(|| format!("{at}.values: {} is not a list of numbers", kind_of(&m["values"])))?;
            for (i, x) in vals.iter().enumerate() {
                if x.is_null() {
                    return Err(format!("{at}.values[{i}]: null is not a non-negative integer"));
                }
                count(x, &format!("{at}.values[{i}]"))?;
            }
            Ok(())
        }
        Value::Null => Ok(()),
        v => count(v, at).map_err(|_| {
            format!("{at}: {v} is not a non-negative integer or a value choice {{\"choice\": label, \"values\": [...]}}")
        }),
    }
}

fn out_channels(o: &OpSpec, classes: usize, at: &str) -> Result<usize, String> {
    match &o.out {
        Some(Value::Number(n)) if n.as_u64().is_some_and(|v| v > 0) => {
            usize::try_from(n.as_u64().unwrap()).map_err(|_| format!("{at}.out: {n} is too large"))
        }
        Some(Value::String(s)) if s == "classes" => Ok(classes),
        Some(v @ Value::Object(_)) => Err(format!(
            "{at}.out: {v} is not a positive integer or \"classes\" (only `kernel` may be a \
             value choice; a choice of width is a layer choice between ops)"
        )),
        Some(v) => Err(format!(
            "{at}.out: {v} is not a positive integer or \"classes\""
        )),
        None => Err(format!("{at}: op `{}` needs `out`", o.op)),
    }
}

/// What (a part of) a network costs: parameters and activations of one image, in
/// floats, and layers. Sums and products saturate, so no file can overflow them.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Cost {
    params: u64,
    acts: u64,
    layers: u64,
}

impl Cost {
    fn new(params: u64, acts: u64) -> Cost {
        Cost {
            params,
            acts,
            layers: 1,
        }
    }
    fn add(self, o: Cost) -> Cost {
        Cost {
            params: self.params.saturating_add(o.params),
            acts: self.acts.saturating_add(o.acts),
            layers: self.layers.saturating_add(o.layers),
        }
    }
    fn times(self, n: u64) -> Cost {
        Cost {
            params: self.params.saturating_mul(n),
            acts: self.acts.saturating_mul(n),
            layers: self.layers.saturating_mul(n),
        }
    }
    fn minus(self, o: Cost) -> Cost {
        Cost {
            params: self.params - o.params,
            acts: self.acts - o.acts,
            layers: self.layers - o.layers,
        }
    }
    /// Bytes to hold the parameters and the activations of `batch` images.
    fn bytes(&self, batch: u64) -> u64 {
        self.acts
            .saturating_mul(batch)
            .saturating_add(self.params)
            .saturating_mul(4)
    }
}

/// The product of some sizes as a `u64`, saturating.
fn prod(xs: &[usize]) -> u64 {
    xs.iter().fold(1u64, |p, &x| p.saturating_mul(x as u64))
}

/// Checks a file's layers, keeping the cost of the largest network they describe.
struct Checker {
    classes: usize,
    batch: u64,
    labels: HashSet<String>,
    /// The cost of everything checked so far.
    total: Cost,
}

impl Checker {
    /// Records a choice label; `field` is where it is written.
    fn label(&mut self, label: &str, field: &str, at: &str) -> Result<(), String> {
        if label.trim().is_empty() {
            return Err(format!(
                "{field}: {label:?}: a label may not be empty (the architecture names each \
                 choice by it)"
            ));
        }
        if label.contains('/') {
            return Err(format!(
                "{field}: {label:?}: a label may not contain `/` (it separates the labels \
                 of repeated blocks)"
            ));
        }
        if !self.labels.insert(label.to_string()) {
            return Err(format!("{at}: duplicate label `{label}`"));
        }
        Ok(())
    }

    /// Adds `c` to the total; `field: value` is blamed when that makes the network too
    /// large.
    fn spend(&mut self, c: Cost, field: &str, value: &str) -> Result<(), String> {
        self.total = self.total.add(c);
        self.within(field, value)
    }

    /// Checks the total against [`MAX_BYTES`] and [`MAX_LAYERS`], blaming `field: value`.
    fn within(&self, field: &str, value: &str) -> Result<(), String> {
        let t = self.total;
        let bytes = t.bytes(self.batch);
        if bytes > MAX_BYTES {
            // Counts that saturated overflowed 64 bits.
            let count = |n: u64| match n {
                u64::MAX => "over 10^19".to_string(),
                n => n.to_string(),
            };
            let gib = |b: u64| match b {
                u64::MAX => "over 10^10 GiB".to_string(),
                b => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
            };
            return Err(format!(
                "{field}: {value} makes the network too large: with the largest value of \
                 every choice and every candidate, it needs {} parameters and {} \
                 activations per image, {} at batch {}, over the cap of {}",
                count(t.params),
                count(t.acts),
                gib(bytes),
                self.batch,
                gib(MAX_BYTES)
            ));
        }
        if t.layers > MAX_LAYERS {
            return Err(format!(
                "{field}: {value} makes the network too deep: with every repeat at its \
                 largest depth and every candidate, it has {} layers, over the cap of \
                 {MAX_LAYERS}",
                t.layers
            ));
        }
        Ok(())
    }

    fn layers(&mut self, layers: &[Layer], mut s: Shape, at: &str) -> Result<Shape, String> {
        for (i, l) in layers.iter().enumerate() {
            let at = format!("{at}[{i}]");
            s = match l {
                Layer::Op(o) => self.op(o, s, &at)?,
                Layer::Choice { choice, candidates } => {
                    self.label(choice, &format!("{at}.choice"), &at)?;
                    if candidates.is_empty() {
                        return Err(format!("{at}: choice `{choice}` has no candidates"));
                    }
                    let mut out: Option<(String, Shape)> = None;
                    for (name, body) in candidates {
                        if name.trim().is_empty() {
                            return Err(format!(
                                "{at}.candidates: {name:?}: a candidate's name may not be \
                                 empty (the architecture names the one chosen by it)"
                            ));
                        }
                        let plain = body.iter().all(
                            |l| matches!(l, Layer::Op(o) if !matches!(o.kernel, Some(Int::Choice { .. }))),
                        );
                        let at_c = format!("{at}.candidates.{name}");
                        if !plain {
                            return Err(format!(
                                "{at_c}: a candidate of `{choice}` may only hold plain ops \
                                 (no choices inside a layer choice)"
                            ));
                        }
                        // Every candidate is in the supernet: their costs add up.
                        let o = self.layers(body, s, &at_c)?;
                        if let Some((n0, s0)) = &out {
                            if *s0 != o {
                                return Err(format!(
                                    "{at}: candidates of `{choice}` disagree: `{n0}` gives \
                                     {s0:?}, `{name}` gives {o:?}"
                                ));
                            }
                        }
                        out = Some((name.clone(), o));
                    }
                    let o = out.unwrap().1;
                    // The mixed sum of the candidates.
                    self.spend(
                        Cost::new(0, o.numel()),
                        &format!("{at}.choice"),
                        &format!("{choice:?}"),
                    )?;
                    o
                }
                Layer::Repeat {
                    repeat,
                    depths,
                    body,
                } => {
                    self.label(repeat, &format!("{at}.repeat"), &at)?;
                    let Some((j, &max)) = depths.iter().enumerate().max_by_key(|(_, d)| **d) else {
                        return Err(format!("{at}: repeat `{repeat}` has no depths"));
                    };
                    given_once(depths, &format!("{at}.depths"))?;
                    // The body runs any number of times, so it must keep the shape.
                    let before = self.total;
                    let o = self.layers(body, s, &format!("{at}.body"))?;
                    if o != s {
                        return Err(format!(
                            "{at}: repeat `{repeat}` body changes shape {s:?} -> {o:?}; a \
                             repeated body must keep its input shape"
                        ));
                    }
                    // The deepest network has `max` blocks (and at least one layer).
                    let block = self.total.minus(before);
                    self.total = before.add(block.times(max as u64));
                    self.within(&format!("{at}.depths[{j}]"), &max.to_string())?;
                    s
                }
                Layer::Residual { residual, body } => {
                    self.label(residual, &format!("{at}.residual"), &at)?;
                    let o = self.layers(body, s, &format!("{at}.body"))?;
                    if o != s {
                        return Err(format!(
                            "{at}: residual `{residual}` body changes shape {s:?} -> {o:?}, so \
                             it cannot be added to its input"
                        ));
                    }
                    self.spend(
                        Cost::new(0, s.numel()),
                        &format!("{at}.residual"),
                        &format!("{residual:?}"),
                    )?;
                    s
                }
            };
        }
        Ok(s)
    }

    /// Checks a plain op with every value of its kernel; they must all give one shape.
    /// The largest value's cost is spent.
    fn op(&mut self, o: &OpSpec, s: Shape, at: &str) -> Result<Shape, String> {
        let kernels: Vec<(usize, String)> = match &o.kernel {
            None => vec![(3, format!("{at}.kernel"))],
            Some(Int::Fixed(k)) => vec![(*k, format!("{at}.kernel"))],
            Some(Int::Choice { choice, values }) => {
                self.label(choice, &format!("{at}.kernel.choice"), at)?;
                if values.is_empty() {
                    return Err(format!("{at}.kernel: choice `{choice}` has no values"));
                }
                given_once(values, &format!("{at}.kernel.values"))?;
                values
                    .iter()
                    .enumerate()
                    .map(|(j, &k)| (k, format!("{at}.kernel.values[{j}]")))
                    .collect()
            }
        };
        let mut out: Option<(Shape, Cost, &str, usize)> = None;
        for (k, field) in &kernels {
            let (shape, cost) = check_op(o, *k, field, s, at, self.classes)?;
            match &mut out {
                None => out = Some((shape, cost, field, *k)),
                Some((s0, c0, f0, k0)) => {
                    if *s0 != shape {
                        return Err(format!(
                            "{field}: {k} gives shape {shape:?}, but {f0}: {k0} gives {s0:?}; \
                             the values of a choice must give one shape"
                        ));
                    }
                    if cost.bytes(self.batch) > c0.bytes(self.batch) {
                        *c0 = cost;
                    }
                }
            }
        }
        let (shape, cost, ..) = out.unwrap();
        match &o.out {
            Some(v) => self.spend(cost, &format!("{at}.out"), &v.to_string())?,
            None => self.spend(cost, &format!("{at}.op"), &format!("{:?}", o.op))?,
        }
        Ok(shape)
    }
}

/// The values of a choice, each given once: a value given twice is the same
/// architecture under two indices, which a strategy would count as two.
fn given_once(values: &[usize], field: &str) -> Result<(), String> {
    for (j, v) in values.iter().enumerate() {
        if let Some(i) = values[..j].iter().position(|u| u == v) {
            return Err(format!(
                "{field}[{j}]: {v} is given twice (also {field}[{i}]); each value of a \
                 choice is given once"
            ));
        }
    }
    Ok(())
}

impl Shape {
    /// Floats of one image's tensor of this shape.
    fn numel(&self) -> u64 {
        match *self {
            Shape::Image(c, h, w) => prod(&[c, h, w]),
            Shape::Flat(f) => f as u64,
        }
    }
}

/// Parameters and activations of a DARTS-style `DilConv` (ReLU, depthwise conv, 1x1
/// conv, BN) from `cin` channels of `hw` pixels to `cout` channels of `ohw` pixels.
fn dil_conv_cost(cin: usize, cout: usize, k: usize, hw: usize, ohw: usize) -> Cost {
    let params = prod(&[cin, k, k])
        .saturating_add(prod(&[cin, cout]))
        .saturating_add(prod(&[2, cout]));
    let acts = prod(&[cin, hw])
        .saturating_add(prod(&[cin, ohw]))
        .saturating_add(prod(&[2, cout, ohw]));
    Cost::new(params, acts)
}

/// Checks one op with kernel `k` (written at `kfield`) on input `s`: every number
/// against the shape it acts on. Returns the output shape and what the op costs.
fn check_op(
    o: &OpSpec,
    k: usize,
    kfield: &str,
    s: Shape,
    at: &str,
    classes: usize,
) -> Result<(Shape, Cost), String> {
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
    let stride = o.stride.unwrap_or(1);
    let dil = o.dilation.unwrap_or(1);
    if k == 0 {
        return Err(format!("{kfield}: 0; a kernel must be at least 1"));
    }
    if stride == 0 {
        return Err(format!("{at}.stride: 0; a stride must be at least 1"));
    }
    if dil == 0 {
        return Err(format!("{at}.dilation: 0; a dilation must be at least 1"));
    }
    let down = |h: usize| (h - 1) / stride + 1;
    // A kernel of `k` taps `d` pixels apart, padded to keep the size, reaches `d * (k/2)`
    // pixels on each side of its centre: no further than the input is wide, or the
    // outer taps read nothing but padding.
    let reach = |d: usize, h: usize, w: usize| -> Result<(), String> {
        let side = h.max(w);
        let r = (k / 2).saturating_mul(d);
        if r <= side {
            return Ok(());
        }
        if k / 2 > side || o.dilation.is_none() {
            Err(format!(
                "{kfield}: {k} reaches {r} pixels from the centre (dilation {d}), beyond the \
                 {h}x{w} input"
            ))
        } else {
            Err(format!(
                "{at}.dilation: {d} with kernel {k} reaches {r} pixels from the centre, \
                 beyond the {h}x{w} input"
            ))
        }
    };
    Ok(match o.op.as_str() {
        "conv" | "sep_conv" | "dil_conv" => {
            let (c, h, w) = image(s)?;
            let out = out_channels(o, classes, at)?;
            // Only `conv` takes groups (the structure check refuses them elsewhere).
            let g = o.groups.unwrap_or(1);
            if g == 0 || c % g != 0 || out % g != 0 {
                return Err(format!(
                    "{at}.groups: {g} does not divide {c} in and {out} out channels"
                ));
            }
            if k.is_multiple_of(2) {
                return Err(format!(
                    "{kfield}: {k}; use odd kernels (padding keeps the size)"
                ));
            }
            let d = match o.op.as_str() {
                "conv" => dil,
                "sep_conv" => 1,
                _ => o.dilation.unwrap_or(2),
            };
            reach(d, h, w)?;
            let (oh, ow) = (down(h), down(w));
            let (hw, ohw) = (h * w, oh * ow);
            let cost = match o.op.as_str() {
                "conv" => Cost::new(
                    prod(&[out, c / g, k, k]).saturating_add(out as u64),
                    prod(&[out, ohw]),
                ),
                "sep_conv" => {
                    dil_conv_cost(c, c, k, hw, ohw).add(dil_conv_cost(c, out, k, ohw, ohw))
                }
                _ => dil_conv_cost(c, out, k, hw, ohw),
            };
            (Shape::Image(out, oh, ow), cost)
        }
        "bn" | "relu" | "identity" => {
            if o.op != "relu" {
                image(s)?;
            }
            let cost = match (o.op.as_str(), s) {
                ("bn", Shape::Image(c, ..)) => Cost::new(prod(&[2, c]), s.numel()),
                ("relu", _) => Cost::new(0, s.numel()),
                _ => Cost::new(0, 0),
            };
            (s, cost)
        }
        "zero" => {
            let (c, h, w) = image(s)?;
            let out = Shape::Image(c, down(h), down(w));
            (out, Cost::new(0, out.numel()))
        }
        "max_pool" | "avg_pool" => {
            let (c, h, w) = image(s)?;
            let st = o.stride.unwrap_or(k);
            let pad = if st == 1 {
                // As for convolutions: padding keeps the size only around a centre.
                if k.is_multiple_of(2) {
                    return Err(format!(
                        "{kfield}: {k} with stride 1; use odd kernels (padding keeps the size)"
                    ));
                }
                reach(1, h, w)?;
                k / 2
            } else {
                0
            };
            if h + 2 * pad < k || w + 2 * pad < k {
                return Err(format!(
                    "{kfield}: {k}: the pooling window is larger than the {h}x{w} input"
                ));
            }
            let out = Shape::Image(c, (h + 2 * pad - k) / st + 1, (w + 2 * pad - k) / st + 1);
            (out, Cost::new(0, out.numel()))
        }
        "gap" => {
            let c = image(s)?.0;
            (Shape::Flat(c), Cost::new(0, c as u64))
        }
        "linear" => match s {
            Shape::Flat(f) => {
                let out = out_channels(o, classes, at)?;
                let params = prod(&[f, out]).saturating_add(out as u64);
                (Shape::Flat(out), Cost::new(params, out as u64))
            }
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
    /// The pooled output is the network's features (the last `gap` of a space file).
    fn forward(&self, x: &Tensor) -> Tensor {
        let y = x.adaptive_avg_pool2d(1, 1).flatten(1);
        crate::space::tap_point(crate::space::FEATURES, &y);
        y
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

/// The shape after a layer choice's candidate `body` (plain ops, checked when the file
/// was loaded) on input `s`.
fn candidate_shape(body: &[Layer], mut s: Shape, classes: usize) -> Shape {
    for l in body {
        if let Layer::Op(o) = l {
            let k = match &o.kernel {
                Some(Int::Fixed(k)) => *k,
                _ => 3,
            };
            s = check_op(o, k, "", s, "", classes)
                .expect("candidates were checked when the file was loaded")
                .0;
        }
    }
    s
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
                    out = candidate_shape(&body, s, classes);
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
    let (out_shape, _) = check_op(o, k, "", s, "", classes)
        .expect("every value was checked when the file was loaded");
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
