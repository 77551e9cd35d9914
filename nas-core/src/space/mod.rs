//! Search spaces: networks with choice points (`LayerChoice`, `InputChoice`,
//! `ValueChoice`, `Repeat`). One builder function per space serves three purposes: it
//! describes the space's choices, builds the fixed network of an architecture, and
//! builds the weight-sharing supernet.

pub use nas_types::arch;
pub mod builtin;
pub mod cost;
pub mod file;
pub mod mixed;

pub use mixed::{
    drop_path, tap_point, tapped, visiting_candidate, with_bare_gates, with_drop_path, InputChoice,
    LayerChoice, FEATURES,
};
pub use nas_types::{ArchError, Architecture, Choice, ChoiceKind, Reduce};

use crate::nn::Module;
use crate::rng::Rng;
use crate::tensor::Tensor;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// Whether a candidate with mixing weight `w` is computed: every weight but `+0.0`.
/// A weight of `-0.0` keeps a candidate computed while it adds nothing, so its mixing
/// weight still gets a gradient (ProxylessNAS needs that for the path it did not pick).
pub fn computed(w: f32) -> bool {
    w.to_bits() != 0
}

/// Makes one candidate op of a layer choice.
pub type Make<'a> = Box<dyn FnOnce(&mut Rng) -> Box<dyn Module> + 'a>;

/// A decision as a space sees it while building: fixed, or mixed by weights.
#[derive(Clone, Debug)]
pub enum Decision<T> {
    Fixed(T),
    Mixed(Tensor),
}

/// What a `Builder` is building.
#[derive(Clone, Debug)]
pub enum Mode {
    /// Record the choices (builds the first candidate of each to keep shapes flowing).
    Describe,
    /// Build the plain network of one (validated) architecture.
    Fixed(Architecture),
    /// Build every candidate, mixed by weights given from outside.
    Supernet { fused: bool },
}

/// The context a space's builder function runs in.
pub struct Builder {
    pub mode: Mode,
    pub rng: Rng,
    choices: Vec<Choice>,
    /// Mixing weights of each choice in supernet mode (trainable leaves, set each step).
    alphas: BTreeMap<String, Tensor>,
    scope: Vec<(String, usize)>,
    /// Set when the space cannot be built in this mode (e.g. a shape-changing value
    /// choice in a supernet).
    error: Option<String>,
}

impl Builder {
    pub fn new(mode: Mode, seed: u64) -> Builder {
        Builder {
            mode,
            rng: Rng::new(seed),
            choices: vec![],
            alphas: BTreeMap::new(),
            scope: vec![],
            error: None,
        }
    }

    fn record(&mut self, label: &str, kind: ChoiceKind) {
        assert!(
            !self.choices.iter().any(|c| c.label == label),
            "space bug: duplicate choice label `{label}`"
        );
        self.choices.push(Choice {
            label: label.to_string(),
            kind,
            inside: self.scope.last().cloned(),
            edge_ops: vec![],
        });
    }

    /// Declares the candidates of the recorded input choice `label` to be edges computed
    /// by the op choices `ops` (see [`Choice::edge_ops`]).
    pub fn edge_ops(&mut self, label: &str, ops: Vec<String>) {
        let c = self
            .choices
            .iter_mut()
            .find(|c| c.label == label)
            .unwrap_or_else(|| panic!("space bug: no input choice `{label}` to give edges"));
        assert!(
            matches!(c.kind, ChoiceKind::Input { n_candidates, .. } if n_candidates == ops.len()),
            "space bug: `{label}` is not an input choice of {} candidates",
            ops.len()
        );
        c.edge_ops = ops;
    }

    fn fixed_value(&self, label: &str) -> Option<&Value> {
        match &self.mode {
            Mode::Fixed(a) => a.get(label),
            _ => None,
        }
    }

    /// Creates the mixing weights of a supernet choice (uniform until the strategy sets them).
    fn alpha(&mut self, label: &str, n: usize) {
        let t = Tensor::parameter(vec![1.0 / n as f32; n], &[n]);
        self.alphas.insert(label.to_string(), t);
    }

    /// A `LayerChoice`: one op among named candidates, each made by its closure.
    pub fn layer_choice(
        &mut self,
        label: &str,
        candidates: Vec<(String, Make<'_>)>,
    ) -> LayerChoice {
        assert!(
            !candidates.is_empty(),
            "space bug: layer choice `{label}` has no candidates"
        );
        let names: Vec<String> = candidates.iter().map(|(n, _)| n.clone()).collect();
        self.record(
            label,
            ChoiceKind::Layer {
                candidates: names.clone(),
            },
        );
        if matches!(self.mode, Mode::Supernet { .. }) {
            self.alpha(label, names.len());
        }
        self.make_layer_choice(label, candidates)
    }

    /// Another `LayerChoice` for a label already made by `layer_choice`, with the same
    /// candidate names: a choice shared by several places of the network (the cell of
    /// NAS-Bench-201, repeated through the network). It is not recorded again; it makes
    /// the same decision (the same chosen candidate in a fixed network, the same mixing
    /// weights in a supernet) but builds fresh modules, so each place has its own weights.
    pub fn layer_choice_shared(
        &mut self,
        label: &str,
        candidates: Vec<(String, Make<'_>)>,
    ) -> LayerChoice {
        let names: Vec<String> = candidates.iter().map(|(n, _)| n.clone()).collect();
        let recorded = self
            .choices
            .iter()
            .find(|c| c.label == label)
            .map(|c| &c.kind);
        assert!(
            matches!(recorded, Some(ChoiceKind::Layer { candidates }) if *candidates == names),
            "space bug: shared layer choice `{label}` was not made by `layer_choice` with \
             candidates {names:?}"
        );
        self.make_layer_choice(label, candidates)
    }

    /// The module of a recorded layer choice in this builder's mode.
    fn make_layer_choice(
        &mut self,
        label: &str,
        candidates: Vec<(String, Make<'_>)>,
    ) -> LayerChoice {
        match self.mode.clone() {
            Mode::Describe | Mode::Fixed(_) => {
                let chosen = match self.fixed_value(label) {
                    Some(v) => v.as_str().expect("architecture was validated").to_string(),
                    None => candidates[0].0.clone(),
                };
                let (n, f) = candidates
                    .into_iter()
                    .find(|(n, _)| *n == chosen)
                    .expect("architecture was validated");
                LayerChoice::fixed(label, n, f(&mut self.rng))
            }
            Mode::Supernet { fused } => {
                let alpha = self.alphas[label].clone();
                let ops = candidates
                    .into_iter()
                    .map(|(n, f)| (n, f(&mut self.rng)))
                    .collect();
                LayerChoice::mixed(label, ops, alpha, fused)
            }
        }
    }

    /// An `InputChoice`: `n_chosen` of `n_candidates` inputs, combined by `reduce`.
    pub fn input_choice(
        &mut self,
        label: &str,
        n_candidates: usize,
        n_chosen: usize,
        reduce: Reduce,
    ) -> InputChoice {
        assert!(
            n_chosen >= 1 && n_chosen <= n_candidates,
            "space bug: input choice `{label}` picks {n_chosen} of {n_candidates}"
        );
        self.record(
            label,
            ChoiceKind::Input {
                n_candidates,
                n_chosen,
                reduce,
            },
        );
        if matches!(self.mode, Mode::Supernet { .. }) {
            if reduce == Reduce::Concat && n_chosen != n_candidates {
                self.error.get_or_insert(format!(
                    "input choice `{label}` concatenates a subset of its inputs, which \
                     changes tensor shapes"
                ));
            }
            self.alpha(label, n_candidates);
        }
        self.make_input_choice(label, n_candidates, n_chosen, reduce)
    }

    /// Another `InputChoice` for a label already made by `input_choice`, with the same
    /// candidates, count and reduction: a choice shared by several places of the network
    /// (the cells of one type in the DARTS space). It is not recorded again; it makes the
    /// same decision (the same chosen inputs in a fixed network, the same mixing weights
    /// in a supernet).
    pub fn input_choice_shared(
        &mut self,
        label: &str,
        n_candidates: usize,
        n_chosen: usize,
        reduce: Reduce,
    ) -> InputChoice {
        let kind = ChoiceKind::Input {
            n_candidates,
            n_chosen,
            reduce,
        };
        assert!(
            self.choices
                .iter()
                .any(|c| c.label == label && c.kind == kind),
            "space bug: shared input choice `{label}` was not made by `input_choice` \
             picking {n_chosen} of {n_candidates} ({reduce:?})"
        );
        self.make_input_choice(label, n_candidates, n_chosen, reduce)
    }

    /// The module of a recorded input choice in this builder's mode.
    fn make_input_choice(
        &mut self,
        label: &str,
        n_candidates: usize,
        n_chosen: usize,
        reduce: Reduce,
    ) -> InputChoice {
        match &self.mode {
            Mode::Describe => InputChoice::fixed(label, (0..n_chosen).collect(), reduce),
            Mode::Fixed(_) => {
                let idx = arch::as_indices(self.fixed_value(label).unwrap()).unwrap();
                InputChoice::fixed(label, idx, reduce)
            }
            Mode::Supernet { .. } => {
                InputChoice::mixed(label, n_candidates, reduce, self.alphas[label].clone())
            }
        }
    }

    /// A `ValueChoice`. In a supernet, a value that changes tensor shapes cannot be mixed;
    /// wrap value-dependent ops in a `layer_choice` instead (as the built-in spaces do).
    pub fn value_choice<T: Clone + Serialize>(&mut self, label: &str, values: &[T]) -> T {
        assert!(
            !values.is_empty(),
            "space bug: value choice `{label}` has no values"
        );
        let vals: Vec<Value> = values
            .iter()
            .map(|v| serde_json::to_value(v).unwrap())
            .collect();
        self.record(
            label,
            ChoiceKind::Value {
                values: vals.clone(),
            },
        );
        match &self.mode {
            Mode::Fixed(_) => {
                let v = self.fixed_value(label).unwrap();
                let i = vals.iter().position(|x| arch::same_value(x, v)).unwrap();
                values[i].clone()
            }
            Mode::Supernet { .. } => {
                if values.len() > 1 {
                    self.error.get_or_insert(format!(
                        "value choice `{label}` changes its layer (its weights' shape, or \
                         its output's), and a supernet here shares weights only between \
                         candidates of a layer choice (a layer choice of the values' layers \
                         has one)"
                    ));
                }
                values[0].clone()
            }
            Mode::Describe => values[0].clone(),
        }
    }

    /// A `Repeat`: `f(builder, i)` builds block `i`; the chosen depth keeps the first
    /// `depth` blocks. Choices made inside block `i` exist only when depth > i.
    pub fn repeat<M>(
        &mut self,
        label: &str,
        depths: &[usize],
        f: impl FnMut(&mut Builder, usize) -> M,
    ) -> Vec<M> {
        self.repeat_blocks(label, depths, f, false)
    }

    /// Records a repeat and builds its blocks; `mixed` says the caller mixes the depth
    /// in a supernet (so a variable depth is no reason to refuse one).
    fn repeat_blocks<M>(
        &mut self,
        label: &str,
        depths: &[usize],
        mut f: impl FnMut(&mut Builder, usize) -> M,
        mixed: bool,
    ) -> Vec<M> {
        assert!(
            !depths.is_empty(),
            "space bug: repeat `{label}` has no depths"
        );
        self.record(
            label,
            ChoiceKind::Repeat {
                depths: depths.to_vec(),
            },
        );
        let max = *depths.iter().max().unwrap();
        let depth = match &self.mode {
            Mode::Fixed(_) => self.fixed_value(label).unwrap().as_u64().unwrap() as usize,
            Mode::Describe => max,
            Mode::Supernet { .. } => {
                if depths.len() > 1 && !mixed {
                    self.error.get_or_insert(format!(
                        "repeat `{label}` has a variable depth; supernets here have fixed \
                         depth (give it one depth for one-shot search)"
                    ));
                }
                max
            }
        };
        (0..depth)
            .map(|i| {
                self.scope.push((label.to_string(), i));
                let m = f(self, i);
                self.scope.pop();
                m
            })
            .collect()
    }

    /// A `ValueChoice` whose values a supernet can mix (as channel masks do, FBNetV2
    /// style): in a fixed network the chosen value, in a supernet the mixing weights,
    /// one per value, that the space applies itself. Describe mode gives the first value.
    pub fn value_choice_mixed<T: Clone + Serialize>(
        &mut self,
        label: &str,
        values: &[T],
    ) -> Decision<T> {
        match self.mode {
            Mode::Supernet { .. } => {
                let vals = values
                    .iter()
                    .map(|v| serde_json::to_value(v).unwrap())
                    .collect();
                self.record(label, ChoiceKind::Value { values: vals });
                self.alpha(label, values.len());
                Decision::Mixed(self.alphas[label].clone())
            }
            _ => Decision::Fixed(self.value_choice(label, values)),
        }
    }

    /// A `Repeat` whose depth a supernet can mix: the supernet builds the deepest
    /// network and returns mixing weights over `depths` for the space to combine the
    /// outputs at each depth; a fixed network builds the chosen depth.
    pub fn repeat_mixed<M>(
        &mut self,
        label: &str,
        depths: &[usize],
        f: impl FnMut(&mut Builder, usize) -> M,
    ) -> (Vec<M>, Option<Tensor>) {
        let blocks = self.repeat_blocks(label, depths, f, true);
        if matches!(self.mode, Mode::Supernet { .. }) {
            self.alpha(label, depths.len());
            return (blocks, Some(self.alphas[label].clone()));
        }
        (blocks, None)
    }

    /// A prefix for labels inside a sub-structure (`"cell3/"` + `"op1"`).
    pub fn choices(&self) -> &[Choice] {
        &self.choices
    }
}

/// A space: a builder function plus the input it expects.
pub trait Space: Sync {
    fn name(&self) -> &str;
    /// Builds the network in the builder's mode.
    fn build(&self, b: &mut Builder) -> Box<dyn Module>;
    /// The tensors of `arch`'s fixed network taken from a supernet's state
    /// ([`Supernet::derive`]), and a note for each way the fixed network computes other
    /// than the supernet's one-hot path of `arch`. By default the supernet's own tensors,
    /// which fit where name and shape agree; a space whose supernet holds wider layers
    /// than its networks (`chain`: every layer at the largest filter count) slices them.
    fn inherit(
        &self,
        _arch: &Architecture,
        supernet: Vec<(String, Tensor)>,
    ) -> (Vec<(String, Tensor)>, Vec<String>) {
        (supernet, vec![])
    }
}

/// The choices of a space, in definition order.
pub fn describe(space: &dyn Space) -> Vec<Choice> {
    let mut b = Builder::new(Mode::Describe, 0);
    let _ = space.build(&mut b);
    b.choices
}

/// The plain network of `arch`, which is validated against the space first.
pub fn fixed(
    space: &dyn Space,
    arch: &Architecture,
    seed: u64,
) -> Result<Box<dyn Module>, ArchError> {
    let choices = describe(space);
    arch::validate(&choices, arch)?;
    let mut b = Builder::new(Mode::Fixed(arch.clone()), seed);
    Ok(space.build(&mut b))
}

/// An architecture's fixed network with a supernet's weights ([`Supernet::derive_noting`]).
pub struct Derived {
    pub net: Box<dyn Module>,
    /// Each way it computes other than the supernet's one-hot path ([`Space::inherit`]).
    pub notes: Vec<String>,
    /// Its tensors the supernet has no counterpart for (they keep their initial values).
    pub untrained: Vec<String>,
}

/// A weight-sharing supernet: the network with every candidate, and the mixing weights
/// of each choice point, which the strategy sets before each step.
pub struct Supernet {
    pub net: Box<dyn Module>,
    pub choices: Vec<Choice>,
    pub alphas: BTreeMap<String, Tensor>,
}

impl Supernet {
    pub fn build(space: &dyn Space, fused: bool, seed: u64) -> Result<Supernet, String> {
        let mut b = Builder::new(Mode::Supernet { fused }, seed);
        let net = space.build(&mut b);
        if let Some(e) = b.error {
            return Err(format!("space `{}` has no supernet: {e}", space.name()));
        }
        Ok(Supernet {
            net,
            choices: b.choices,
            alphas: b.alphas,
        })
    }

    /// Sets the mixing weights of one choice. A weight of `+0.0` switches its candidate off:
    /// it is not computed (one-hot and sparse modes).
    pub fn set_weights(&self, label: &str, w: &[f32]) -> Result<(), String> {
        let t = self
            .alphas
            .get(label)
            .ok_or_else(|| format!("no mixed choice labelled `{label}`"))?;
        if t.numel() != w.len() {
            return Err(format!(
                "`{label}` has {} candidates, got {} weights",
                t.numel(),
                w.len()
            ));
        }
        t.data_mut().copy_from_slice(w);
        Ok(())
    }

    /// The loss gradient with respect to one choice's mixing weights, after `backward`
    /// (zeros for candidates that were switched off).
    pub fn weight_grad(&self, label: &str) -> Option<Vec<f32>> {
        let t = self.alphas.get(label)?;
        Some(t.grad().unwrap_or_else(|| vec![0.0; t.numel()]))
    }

    /// Back-propagates `loss` into the mixing weights only (an architecture step): the
    /// network's parameters get no gradient, and the work that would only produce theirs
    /// is skipped.
    pub fn backward_mixing(&self, loss: &Tensor) {
        let leaves: Vec<Tensor> = self.alphas.values().cloned().collect();
        crate::autodiff::grad_only(&leaves, || loss.backward());
    }

    pub fn zero_weight_grads(&self) {
        self.alphas.values().for_each(|t| t.zero_grad());
    }

    /// The fixed network of `arch`, inheriting this supernet's trained weights.
    pub fn derive(
        &self,
        space: &dyn Space,
        arch: &Architecture,
    ) -> Result<Box<dyn Module>, ArchError> {
        self.derive_noting(space, arch).map(|d| d.net)
    }

    /// [`derive`](Self::derive), and how the network differs from the supernet's one-hot
    /// path of `arch` ([`Derived`]).
    pub fn derive_noting(
        &self,
        space: &dyn Space,
        arch: &Architecture,
    ) -> Result<Derived, ArchError> {
        let net = fixed(space, arch, 0)?;
        let (state, notes) = space.inherit(arch, crate::nn::state(self.net.as_ref()));
        crate::nn::copy_state(net.as_ref(), &state);
        let fits =
            |n: &str, t: &Tensor| state.iter().any(|(m, s)| m == n && s.shape() == t.shape());
        let untrained = crate::nn::state(net.as_ref())
            .into_iter()
            .filter(|(n, t)| !fits(n, t))
            .map(|(n, _)| n)
            .collect();
        Ok(Derived {
            net,
            notes,
            untrained,
        })
    }
}
