//! One-shot strategies: a plugin that drives the host's weight-sharing supernet through
//! [`SupernetHost`] services (train a step with given mixing weights, the loss gradient
//! with respect to the mixing weights, evaluate a path with inherited weights, save,
//! restore and move the weights, checkpoint) instead of proposing whole trials.
//!
//! Mixing weights cross the boundary as one flat `f32` vector: the blocks of
//! [`OneShotInfo::groups`] one after another, one weight per candidate of a layer choice,
//! per input of an input choice, per value of a mixed value choice and per depth of a
//! mixed repeat. A weight of `+0.0` switches its candidate off (it is not computed);
//! `-0.0` keeps it computed while it adds nothing, so its weight still gets a gradient.
//!
//! Most strategies only say what one step does: implement [`EpochStrategy`] and the
//! SDK's [`drive`] runs the epochs, reports progress, checkpoints, and resumes.

use crate::decisions;
use crate::{Architecture, Choice, ChoiceKind, Metrics, Rng, Value};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ops::Range;

/// Which part of the search data a call uses: the split the supernet's weights train on,
/// or the held-out split architecture decisions are judged on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Val,
}

/// Which images an evaluation sees.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Subset {
    /// The next batches of each split's stream: every call sees new images (ENAS's
    /// reward).
    #[default]
    Next,
    /// The same images on every call of a search: the first batches of one fixed order
    /// of each split, for batch-norm recalibration and for scoring alike, so candidates
    /// are ranked on the same data (SPOS's evolutionary search).
    Fixed,
}

/// One choice's block of mixing weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Group {
    pub label: String,
    /// Index of the choice in [`OneShotInfo::choices`].
    pub choice: usize,
    pub size: usize,
}

/// What a one-shot strategy is told about the supernet and the search.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OneShotInfo {
    /// Every choice of the space, in definition order.
    pub choices: Vec<Choice>,
    /// The choices that have mixing weights, in the order of the flat weight vector.
    pub groups: Vec<Group>,
    pub epochs: usize,
    /// Training batches in one epoch (the last partial batch is dropped).
    pub batches_per_epoch: usize,
    pub batch_size: usize,
    /// Full batches in the validation split: the most an evaluation may ask for (0 from
    /// a host that does not say).
    #[serde(default)]
    pub val_batches: usize,
}

impl OneShotInfo {
    /// The fraction of the search done before step `step` of epoch `epoch` (for
    /// annealing schedules).
    pub fn progress(&self, epoch: usize, step: usize) -> f32 {
        let total = self.total_steps().max(1) as f32;
        (epoch * self.batches_per_epoch + step) as f32 / total
    }

    /// The training steps of the whole search (every epoch's batches).
    pub fn total_steps(&self) -> usize {
        self.epochs * self.batches_per_epoch
    }

    /// The most validation batches one evaluation may ask for: [`Self::val_batches`],
    /// or the host's own check alone where it does not say.
    pub fn max_eval_batches(&self) -> usize {
        if self.val_batches == 0 {
            usize::MAX
        } else {
            self.val_batches
        }
    }

    /// `values`, one per mixing weight as the host gave them (`what` names the table:
    /// latencies, op costs), or an error when there are not as many as mixing weights.
    pub fn per_weight<T>(&self, what: &str, values: Vec<T>) -> Result<Vec<T>, String> {
        if values.len() != self.len() {
            return Err(format!(
                "the host's {what} have {} entries, the supernet {} mixing weights",
                values.len(),
                self.len()
            ));
        }
        Ok(values)
    }

    /// Total number of mixing weights.
    pub fn len(&self) -> usize {
        self.groups.iter().map(|g| g.size).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The range of each group in the flat vector.
    pub fn ranges(&self) -> Vec<Range<usize>> {
        let mut at = 0;
        self.groups
            .iter()
            .map(|g| {
                at += g.size;
                at - g.size..at
            })
            .collect()
    }

    /// The group of each choice, if it has mixing weights.
    fn group_of(&self) -> Vec<Option<usize>> {
        let mut v = vec![None; self.choices.len()];
        for (gi, g) in self.groups.iter().enumerate() {
            v[g.choice] = Some(gi);
        }
        v
    }

    /// Checks that every group has weights and matches its choice.
    pub fn check(&self) -> Result<(), String> {
        if self.groups.is_empty() {
            return Err("the supernet has no mixed choices to search".into());
        }
        for g in &self.groups {
            let c = self
                .choices
                .get(g.choice)
                .ok_or_else(|| format!("group `{}` names choice {}", g.label, g.choice))?;
            if c.label != g.label || g.size == 0 || g.size != mix_size(c) {
                return Err(format!(
                    "group `{}` ({} weights) does not match its choice",
                    g.label, g.size
                ));
            }
        }
        Ok(())
    }

    /// Whether group `g` is a node's edges (an input choice whose candidates carry op
    /// choices of their own, [`Choice::edge_ops`]).
    pub fn is_edges(&self, g: usize) -> bool {
        !self.choices[self.groups[g].choice].edge_ops.is_empty()
    }

    /// Group-wise softmax of `logits / temperature`: the continuous relaxation of
    /// DARTS. Edge groups ([`OneShotInfo::is_edges`]) are not relaxed: every edge
    /// weighs 1, so a node is the plain sum of its mixed edges, as in the paper; their
    /// logits are left unused.
    pub fn softmax(&self, logits: &[f32], temperature: f32) -> Vec<f32> {
        let mut out = vec![0.0; logits.len()];
        for (g, r) in self.ranges().into_iter().enumerate() {
            if self.is_edges(g) {
                out[r].fill(1.0);
            } else {
                softmax_into(&logits[r.clone()], temperature, &mut out[r]);
            }
        }
        out
    }

    /// The gradient with respect to the logits of `p = softmax(logits / t)` (as
    /// [`OneShotInfo::softmax`] computes it), given the gradient with respect to `p`.
    /// Edge groups get none.
    pub fn softmax_backward(&self, p: &[f32], grad_p: &[f32], temperature: f32) -> Vec<f32> {
        let mut out = vec![0.0; p.len()];
        for (g, r) in self.ranges().into_iter().enumerate() {
            if self.is_edges(g) {
                continue;
            }
            let dot: f32 = r.clone().map(|i| p[i] * grad_p[i]).sum();
            for i in r {
                out[i] = p[i] * (grad_p[i] - dot) / temperature;
            }
        }
        out
    }

    /// `mix` with every edge of every edge group switched on at weight 1: a sampled
    /// path of a DARTS-style cell keeps all its edges and samples their ops.
    pub fn all_edges(&self, mut mix: Vec<f32>) -> Vec<f32> {
        for (g, r) in self.ranges().into_iter().enumerate() {
            if self.is_edges(g) {
                mix[r].fill(1.0);
            }
        }
        mix
    }

    /// One option per choice (the decision-vector convention of [`decisions`]) with the
    /// largest weights: the argmax of a layer, value or repeat choice, the `k` heaviest
    /// inputs of an input choice. Choices without weights take option 0.
    pub fn strongest(&self, w: &[f32]) -> Vec<usize> {
        let ranges = self.ranges();
        let group = self.group_of();
        self.choices
            .iter()
            .enumerate()
            .map(|(ci, c)| match group[ci] {
                None => 0,
                Some(g) => {
                    let ws = &w[ranges[g].clone()];
                    match &c.kind {
                        ChoiceKind::Input {
                            n_candidates,
                            n_chosen,
                            ..
                        } => heaviest(ws, *n_candidates, *n_chosen),
                        _ => argmax(ws),
                    }
                }
            })
            .collect()
    }

    /// The architecture the weights `w` stand for: [`OneShotInfo::strongest`], except
    /// for edges, where the DARTS paper's rule applies: each edge's op choice keeps its
    /// strongest op other than `none`, and each node keeps the `k` edges whose kept op
    /// weighs most (the weights of the edge group itself are not used).
    pub fn derive(&self, w: &[f32]) -> Architecture {
        let ranges = self.ranges();
        let group = self.group_of();
        let mut d = self.strongest(w);
        let weights = |ci: usize| group[ci].map(|g| &w[ranges[g].clone()]);
        let index = |label: &str| self.choices.iter().position(|c| c.label == label);
        // Edge ops: the strongest op that is not `none`, and its weight.
        let mut strength = vec![0.0f32; self.choices.len()];
        for c in self.choices.iter().filter(|c| !c.edge_ops.is_empty()) {
            for op in &c.edge_ops {
                let Some(oi) = index(op) else { continue };
                let (ChoiceKind::Layer { candidates }, Some(ws)) =
                    (&self.choices[oi].kind, weights(oi))
                else {
                    continue;
                };
                let best = (0..candidates.len())
                    .filter(|&k| candidates[k] != "none")
                    .reduce(|b, k| if ws[k] > ws[b] { k } else { b });
                if let Some(k) = best {
                    d[oi] = k;
                    strength[oi] = ws[k];
                }
            }
        }
        for (ci, c) in self.choices.iter().enumerate() {
            if let (
                ChoiceKind::Input {
                    n_candidates,
                    n_chosen,
                    ..
                },
                false,
            ) = (&c.kind, c.edge_ops.is_empty())
            {
                let s: Vec<f32> = c
                    .edge_ops
                    .iter()
                    .map(|op| index(op).map_or(0.0, |oi| strength[oi]))
                    .collect();
                d[ci] = heaviest(&s, *n_candidates, *n_chosen);
            }
        }
        decisions::to_arch(&self.choices, &d)
    }

    /// The one-hot mixing weights of a decision vector: weight 1 on the chosen candidate
    /// (every chosen input of an input choice), `+0.0` elsewhere.
    pub fn one_hot(&self, d: &[usize]) -> Vec<f32> {
        let mut mix = vec![0.0; self.len()];
        for (g, r) in self.groups.iter().zip(self.ranges()) {
            let c = &self.choices[g.choice];
            match &c.kind {
                ChoiceKind::Input {
                    n_candidates,
                    n_chosen,
                    ..
                } => {
                    for i in decisions::unrank_combination(*n_candidates, *n_chosen, d[g.choice]) {
                        mix[r.start + i] = 1.0;
                    }
                }
                _ => mix[r.start + d[g.choice]] = 1.0,
            }
        }
        mix
    }

    /// The sum of `per_weight` (one value per mixing weight, as the host's op costs)
    /// over the candidates path `d` computes: each active choice's chosen candidates
    /// (an input choice's `k`), where a choice inside a repeat deeper than the chosen
    /// depth is not active, and the op choice of a cell edge the node did not pick
    /// computes nothing.
    pub fn path_total(&self, d: &[usize], per_weight: &[f64]) -> f64 {
        let on = decisions::active_mask(&self.choices, d);
        let mix = self.one_hot(d);
        self.groups
            .iter()
            .zip(self.ranges())
            .filter(|(g, _)| on[g.choice])
            .flat_map(|(_, r)| r)
            .map(|i| mix[i] as f64 * per_weight[i])
            .sum()
    }

    /// The one-hot mixing weights of an architecture.
    pub fn one_hot_arch(&self, arch: &Architecture) -> Result<Vec<f32>, String> {
        Ok(self.one_hot(&decisions::from_arch(&self.choices, arch)?))
    }
}

/// The number of mixing weights a choice has in a supernet.
pub fn mix_size(c: &Choice) -> usize {
    match &c.kind {
        ChoiceKind::Layer { candidates } => candidates.len(),
        ChoiceKind::Input { n_candidates, .. } => *n_candidates,
        ChoiceKind::Value { values } => values.len(),
        ChoiceKind::Repeat { depths } => depths.len(),
    }
}

/// The decision (combination rank) of the `k` largest of `n` weights (the earlier on
/// ties).
fn heaviest(ws: &[f32], n: usize, k: usize) -> usize {
    let mut idx: Vec<usize> = (0..n).collect();
    idx.sort_by(|&a, &b| ws[b].total_cmp(&ws[a]).then(a.cmp(&b)));
    let mut top = idx[..k].to_vec();
    top.sort_unstable();
    decisions::rank_combination(n, &top)
}

/// Index of the largest value (the first on ties).
pub fn argmax(w: &[f32]) -> usize {
    let mut best = 0;
    for (i, v) in w.iter().enumerate() {
        if *v > w[best] {
            best = i;
        }
    }
    best
}

/// `softmax(x / t)` into `out`.
pub fn softmax_into(x: &[f32], t: f32, out: &mut [f32]) {
    let m = x.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    let mut s = 0.0;
    for (o, &v) in out.iter_mut().zip(x) {
        *o = ((v - m) / t).exp();
        s += *o;
    }
    out.iter_mut().for_each(|o| *o /= s);
}

/// A standard Gumbel sample.
pub fn gumbel(rng: &mut Rng) -> f32 {
    let u = (rng.uniform() as f64).clamp(1e-12, 1.0 - 1e-7);
    -(-u.ln()).ln() as f32
}

/// Samples an index from probabilities `p` (which sum to 1).
pub fn sample(p: &[f32], rng: &mut Rng) -> usize {
    let u = rng.uniform();
    let mut acc = 0.0;
    for (i, v) in p.iter().enumerate() {
        acc += v;
        if u < acc {
            return i;
        }
    }
    p.len() - 1
}

/// The loss gradient a call reports, and the norm of the weight gradient it kept.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct GradInfo {
    pub loss: f32,
    /// L2 norm of the network weights' gradient, when the call kept it as the direction.
    pub weight_grad_norm: f32,
}

/// The loss the students of a [`SupernetHost::distill_step`] learn from (AlphaNet's
/// in-place distillation; the teacher always learns from the labels).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DistillLoss {
    /// AlphaNet's adaptive alpha-divergence: per image, the larger of `D_alpha(p||q)` at
    /// `alpha_min` and at `alpha_max` (`p` the teacher's probabilities, `q` the
    /// student's), with the importance ratio `(p/q)^alpha` clipped at `clip` in its
    /// gradient `-(1/alpha) E_q[min((p/q)^alpha, clip) grad log q]`. At `alpha` 1 this is
    /// `KL(p||q)`, unclipped; at `alpha` 0 `KL(q||p)` with `p/q` clipped (as the
    /// paper's reference code has both).
    Alpha {
        alpha_min: f32,
        alpha_max: f32,
        clip: f32,
    },
    /// `KL(p||q)`: the soft cross-entropy of in-place distillation (BigNAS, AttentiveNAS).
    Kl,
    /// No distillation: every student learns from the labels (cross-entropy), as the
    /// teacher does; the sandwich rule alone.
    None,
}

impl DistillLoss {
    /// An error unless the parameters are usable: finite alphas with
    /// `alpha_min <= alpha_max`, and a finite clip above 0.
    pub fn check(&self) -> Result<(), String> {
        if let DistillLoss::Alpha {
            alpha_min,
            alpha_max,
            clip,
        } = *self
        {
            if !(alpha_min.is_finite() && alpha_max.is_finite() && alpha_min <= alpha_max) {
                return Err(format!(
                    "distillation loss: alpha_min {alpha_min} and alpha_max {alpha_max} must \
                     be finite with alpha_min <= alpha_max"
                ));
            }
            if !(clip > 0.0 && clip.is_finite()) {
                return Err(format!(
                    "distillation loss: clip {clip} must be finite and above 0"
                ));
            }
        }
        Ok(())
    }
}

/// What a [`SupernetHost::distill_step`] reports: the teacher's cross-entropy on the
/// labels and each student's loss (the divergence from the teacher, or its
/// cross-entropy for [`DistillLoss::None`]), in the order the students were given.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DistillLosses {
    pub teacher: f32,
    pub students: Vec<f32>,
}

/// The most students one [`SupernetHost::distill_step`] takes (a stated cap).
pub const MAX_STUDENTS: usize = 64;

/// The most architectures one [`SupernetHost::front`] takes (a stated cap: the host
/// scores each on the validation split when the run ends).
pub const MAX_FRONT: usize = 256;

/// The HyperNet of SMASH's generated-weights mode ([`SupernetHost::generate_weights`]).
/// Every convolution and linear weight inside a layer-choice candidate is generated;
/// the rest of the supernet (stems, heads, batch norm, biases) keeps ordinary weights.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HyperSpec {
    /// Width of the HyperNet's hidden layers (1..=[`MAX_HYPER_WIDTH`]).
    pub hidden: usize,
    /// Hidden layers (1..=[`MAX_HYPER_LAYERS`]).
    pub layers: usize,
    /// Side of the weight blocks one HyperNet output fills: a generated tensor of
    /// `cout x cin x k x k` is cut into blocks of `block x block` channel pairs
    /// (1..=[`MAX_HYPER_BLOCK`]).
    pub block: usize,
    /// The HyperNet's Adam learning rate before the host's schedule scales it (SMASH's
    /// 1e-3; in (0, 1]).
    pub lr: f32,
}

/// Stated caps of a [`HyperSpec`].
pub const MAX_HYPER_WIDTH: usize = 4096;
pub const MAX_HYPER_LAYERS: usize = 8;
pub const MAX_HYPER_BLOCK: usize = 64;

impl HyperSpec {
    /// An error naming the field unless every field is in its range.
    pub fn check(&self) -> Result<(), String> {
        for (field, v, max) in [
            ("hidden", self.hidden, MAX_HYPER_WIDTH),
            ("layers", self.layers, MAX_HYPER_LAYERS),
            ("block", self.block, MAX_HYPER_BLOCK),
        ] {
            crate::check_count(field, v, 1, max)?;
        }
        if !(self.lr > 0.0 && self.lr <= 1.0) {
            return Err(format!(
                "config field `hyper_lr`: {} is not valid (must be in (0, 1])",
                self.lr
            ));
        }
        Ok(())
    }
}

/// What [`SupernetHost::generate_weights`] answers: how much it generates.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Generated {
    /// Weight tensors the HyperNet generates (over every candidate).
    pub tensors: usize,
    /// Their elements.
    pub weights: usize,
    /// The HyperNet's own parameters.
    pub hypernet_params: usize,
    /// Parameters of the supernet that stay ordinary (free) weights.
    pub free_params: usize,
}

/// The blocks of a space: the choices with mixing weights whose labels share the part
/// before the last `/`, in the order of their first choice; a label without `/` is a
/// block of its own. Each block lists choice indices into `info.choices`.
pub fn blocks_from_labels(info: &OneShotInfo) -> Vec<Vec<usize>> {
    let mut blocks: Vec<(Option<String>, Vec<usize>)> = vec![];
    for g in &info.groups {
        let label = &info.choices[g.choice].label;
        match label.rsplit_once('/') {
            Some((prefix, _)) => {
                match blocks
                    .iter_mut()
                    .find(|(p, _)| p.as_deref() == Some(prefix))
                {
                    Some((_, b)) => b.push(g.choice),
                    None => blocks.push((Some(prefix.to_string()), vec![g.choice])),
                }
            }
            None => blocks.push((None, vec![g.choice])),
        }
    }
    blocks.into_iter().map(|(_, b)| b).collect()
}

/// The blocks a config's `blocks` field names: every label a searchable choice of the
/// space (one with mixing weights), none twice, no block empty, every such choice in a
/// block.
pub fn blocks_from_config(info: &OneShotInfo, v: &Value) -> Result<Vec<Vec<usize>>, String> {
    let lists: Vec<Vec<String>> = serde_json::from_value(v.clone()).map_err(|_| {
        format!("config field `blocks`: {v} is not valid (a list of lists of choice labels)")
    })?;
    if lists.is_empty() {
        return Err("config field `blocks`: [] is not valid (no block)".into());
    }
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    let mut blocks = vec![];
    for (bi, list) in lists.iter().enumerate() {
        if list.is_empty() {
            return Err(format!("config field `blocks`: block {bi} is empty"));
        }
        let mut b = vec![];
        for label in list {
            let Some(g) = info
                .groups
                .iter()
                .find(|g| info.choices[g.choice].label == *label)
            else {
                let what = if info.choices.iter().any(|c| c.label == *label) {
                    "has no mixing weights in this supernet"
                } else {
                    "is not a choice of the space"
                };
                return Err(format!(
                    "config field `blocks`: label `{label}` (block {bi}) {what}"
                ));
            };
            if let Some(first) = seen.insert(label, bi) {
                return Err(format!(
                    "config field `blocks`: label `{label}` is named twice (blocks {first} and {bi})"
                ));
            }
            b.push(g.choice);
        }
        blocks.push(b);
    }
    if let Some(g) = info
        .groups
        .iter()
        .find(|g| !seen.contains_key(info.choices[g.choice].label.as_str()))
    {
        return Err(format!(
            "config field `blocks`: choice `{}` is in no block (every choice of the space \
             must be in one)",
            info.choices[g.choice].label
        ));
    }
    Ok(blocks)
}

/// BossNAS's self-supervised mode ([`SupernetHost::self_supervised`]): an online
/// supernet and a momentum (EMA) copy of it, each with a projector on every tap point,
/// and a predictor on the online side, trained without labels on two augmented views of
/// each batch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SslSpec {
    /// The tap points a step or a score may read (a block's output): layer-choice
    /// labels (a choice's output) or `"features"` (the pooled representation the
    /// classifier reads). 1..=[`MAX_TAPS`], none twice.
    pub taps: Vec<String>,
    /// Width of the hidden layer of each projector and predictor (1..=[`MAX_SSL_WIDTH`]).
    pub hidden: usize,
    /// Width of a projection (1..=[`MAX_SSL_WIDTH`]).
    pub dim: usize,
    /// The views: each image is padded by `crop_pad` pixels and cropped back at a random
    /// offset, mirrored half the time, and its contrast and brightness jittered by
    /// `jitter` (0..=[`MAX_CROP_PAD`]; [0, 1]).
    pub crop_pad: usize,
    pub jitter: f32,
    /// How many paths make an ensemble target: what the strategy ranks with, and how
    /// many uniformly drawn paths `nas rank-check` scores against at the last tap
    /// (1..=[`MAX_PATHS`]).
    pub ensemble: usize,
    /// Training steps at which the weights' cosine schedule starts again, with fresh
    /// momentum buffers (BossNAS's blocks, each trained with an optimiser of its own):
    /// strictly increasing, each above 0 and below the search's steps. Empty: one
    /// schedule over the search.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lr_restarts: Vec<usize>,
}

pub use nas_types::FEATURES;

/// Stated caps of an [`SslSpec`] and of the calls of its mode.
pub const MAX_TAPS: usize = 64;
pub const MAX_SSL_WIDTH: usize = 4096;
pub const MAX_CROP_PAD: usize = 16;
/// The most paths one `ssl_step` trains, or one ensemble target averages.
pub const MAX_PATHS: usize = 16;
/// The most paths one `ssl_score` scores.
pub const MAX_SCORED: usize = 4096;

impl SslSpec {
    /// An error naming the field unless every field is in its range.
    pub fn check(&self) -> Result<(), String> {
        let field = |e: String| format!("self_supervised: {e}");
        crate::check_count("taps", self.taps.len(), 1, MAX_TAPS).map_err(field)?;
        for (i, t) in self.taps.iter().enumerate() {
            if t.is_empty() || self.taps[..i].contains(t) {
                return Err(format!(
                    "self_supervised: tap `{t}` is empty or named twice"
                ));
            }
        }
        crate::check_count("hidden", self.hidden, 1, MAX_SSL_WIDTH).map_err(field)?;
        crate::check_count("dim", self.dim, 1, MAX_SSL_WIDTH).map_err(field)?;
        crate::check_count("crop_pad", self.crop_pad, 0, MAX_CROP_PAD).map_err(field)?;
        crate::check_count("ensemble", self.ensemble, 1, MAX_PATHS).map_err(field)?;
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err(format!(
                "self_supervised: `jitter` {} is not in [0, 1]",
                self.jitter
            ));
        }
        Ok(())
    }
}

/// How a search after training scores a path (`evaluate`'s counts): `eval_batches`
/// validation batches (default `eval` or the split's batches if fewer; at most those)
/// after `recalibrate` training batches (default `recal` or the split's if fewer; at
/// most a pass over it). An error names the field, the value and the range.
pub fn scoring_counts(
    setup: &OneShotSetup,
    eval: usize,
    recal: usize,
) -> Result<(usize, usize), String> {
    let (val, train) = (setup.info.max_eval_batches(), setup.info.batches_per_epoch);
    let c = &setup.config;
    Ok((
        crate::config_count(c, "eval_batches", eval.min(val), 1, val)?,
        crate::config_count(c, "recalibrate", recal.min(train), 0, train)?,
    ))
}

/// Whether the architecture of decision vector `d` is within every limit
/// (`(cost, maximum)`, as [`crate::config_limits`] gives them), by the host's cost model;
/// a cost the host does not report does not count against it.
pub fn within_limits(
    host: &mut dyn SupernetHost,
    limits: &[(String, f64)],
    d: &[usize],
) -> Result<bool, String> {
    if limits.is_empty() {
        return Ok(true);
    }
    let m = host.metrics(&decisions::to_arch(&host.info().choices, d))?;
    Ok(limits
        .iter()
        .all(|(what, max)| m.cost(what).is_none_or(|v| v <= *max)))
}

/// What a host checks of a [`SupernetHost::front`]: at most [`MAX_FRONT`] architectures,
/// each valid in `choices`.
pub fn check_front(choices: &[Choice], archs: &[Architecture]) -> Result<(), String> {
    if archs.len() > MAX_FRONT {
        return Err(format!(
            "front: {} architectures, at most {MAX_FRONT}",
            archs.len()
        ));
    }
    for (i, a) in archs.iter().enumerate() {
        nas_types::arch::validate(choices, a)
            .map_err(|e| format!("front: architecture {i} does not fit the space: {e}"))?;
    }
    Ok(())
}

/// Operations on the supernet's weights (what second-order DARTS needs).
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum WeightOp {
    /// Copies the weights into a numbered slot.
    Save { slot: usize },
    /// Copies a slot back into the weights.
    Restore { slot: usize },
    /// `w += scale * d`, where `d` is the weight gradient the last
    /// `mix_grad(.., keep_weight_grad = true)` kept.
    AddDirection { scale: f32 },
    /// The weight optimiser's own step with gradient `d` (as kept for
    /// `AddDirection`) and learning rate `lr`, momentum and weight decay included,
    /// leaving the optimiser's state as it was: `w - lr * (mu * v + d + wd * w)` for SGD
    /// with momentum (second-order DARTS's virtual step).
    VirtualStep { lr: f32 },
}

/// What a strategy reports while it runs (printed by the host and journaled).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Progress {
    pub epoch: usize,
    /// Steps done in this epoch.
    pub step: usize,
    /// Mean losses (and other figures) since the last report.
    pub values: BTreeMap<String, f32>,
    /// The architecture the strategy would export now, or its placeholder (see
    /// [`EpochStrategy::current`]).
    pub arch: Architecture,
}

/// The services a host gives a one-shot strategy. Batches are explicit: `next_batch`
/// moves a split to its next mini-batch, and the other calls use the current one, so a
/// strategy can take several gradients on the same batch.
pub trait SupernetHost {
    fn info(&self) -> &OneShotInfo;
    /// Moves `split` to its next batch (reshuffling at the end of a pass).
    fn next_batch(&mut self, split: Split) -> Result<(), String>;
    /// One optimiser step of the network weights on the current training batch with
    /// mixing weights `mix`; returns the loss. When `grad` is given it receives the loss
    /// gradient with respect to `mix` from the same backward pass.
    fn train_step(&mut self, mix: &[f32], grad: Option<&mut [f32]>) -> Result<f32, String>;
    /// The loss gradient with respect to `mix` on the current batch of `split`, into
    /// `grad`; the network weights do not change. With `keep_weight_grad` the host also
    /// keeps the weights' gradient as the direction of [`WeightOp::AddDirection`].
    fn mix_grad(
        &mut self,
        mix: &[f32],
        split: Split,
        grad: &mut [f32],
        keep_weight_grad: bool,
    ) -> Result<GradInfo, String>;
    /// GDAS's gradient of a hard path: the loss gradient with respect to `mix` on the
    /// current batch of `split`, as [`mix_grad`](Self::mix_grad) gives it (no weight
    /// gradient kept), except that each candidate of a layer choice that `mix` switches
    /// off (`+0.0`) counts as a gate added bare to the choice's output, as GDAS's
    /// reference adds an unchosen gate to a node's sum: it is still not computed and
    /// adds 0, and its gradient is the sum of the output's gradient instead of 0. Other
    /// choices (inputs, values, repeats) are as in `mix_grad`.
    fn gate_grad(
        &mut self,
        mix: &[f32],
        split: Split,
        grad: &mut [f32],
    ) -> Result<GradInfo, String>;
    /// AlphaNet's sandwich step on the current training batch: the `teacher` path
    /// learns from the labels (cross-entropy); its output probabilities, detached, are
    /// the targets every path of `students` learns from with `loss`; the weight
    /// gradients of all paths add up and the weights take one optimiser step (as
    /// `train_step`'s: momentum, schedule, clipping). At most [`MAX_STUDENTS`] students.
    /// A host without it answers an error.
    fn distill_step(
        &mut self,
        _teacher: &[f32],
        _students: &[Vec<f32>],
        _loss: DistillLoss,
    ) -> Result<DistillLosses, String> {
        Err(
            "this host does not offer distill_step (AlphaNet's sandwich step); \
             update nas"
                .into(),
        )
    }
    /// The run's Pareto set, from a multi-objective strategy (NAT): when the run ends the
    /// host journals each architecture of the last call beside the export, scored as the
    /// export is (the supernet's weights on the validation split) with its costs, so `nas
    /// export --pareto` and `nas report` show the front. A later call replaces an earlier
    /// one; call it before [`checkpoint`](Self::checkpoint) so a resumed run has it. At
    /// most [`MAX_FRONT`] architectures, each valid in the space. A host without it
    /// answers an error.
    fn front(&mut self, _archs: &[Architecture]) -> Result<(), String> {
        Err(
            "this host does not offer front (a multi-objective run's Pareto set); update nas"
                .into(),
        )
    }
    /// SMASH's generated-weights mode: from now on (and in every checkpoint, so a
    /// resumed run, `nas rank-check` and `nas export` keep it) the weights of each
    /// candidate a mix switches on are generated by a HyperNet from an encoding of the
    /// whole architecture (each mixing weight on or off) and of where the weight sits,
    /// before every [`train_step`](Self::train_step) and
    /// [`evaluate`](Self::evaluate); a training step trains the HyperNet through the
    /// generated weights (Adam, betas 0.5/0.999, no weight decay, at `spec.lr` scaled by
    /// the host's schedule) and the free weights as usual. The mixes are paths: each
    /// candidate on at weight 1 or off (`+0.0`), as the encoding only sees which.
    /// Calling it again with the same spec does nothing; another
    /// spec is an error. The other weight services (`mix_grad`, `gate_grad`,
    /// `distill_step`, `weights`) answer an error in this mode. A host without it
    /// answers an error.
    fn generate_weights(&mut self, _spec: &HyperSpec) -> Result<Generated, String> {
        Err("this host does not offer generate_weights (SMASH's HyperNet); update nas".into())
    }
    /// BossNAS's self-supervised mode: from now on (and in every checkpoint) the host
    /// keeps a momentum copy of the supernet (the target, a copy of the weights at this
    /// call) and, per tap point of `spec`, a projector on each side and a predictor on
    /// the online side, and offers [`ssl_step`](Self::ssl_step) and
    /// [`ssl_score`](Self::ssl_score). Neither reads a label. Calling it again with the
    /// same spec does nothing; another spec is an error, as is a tap point the supernet
    /// does not pass. A host without it answers an error.
    fn self_supervised(&mut self, _spec: &SslSpec) -> Result<(), String> {
        Err(
            "this host does not offer self_supervised (BossNAS's siamese supernets); \
             update nas"
                .into(),
        )
    }
    /// One self-supervised step on the current training batch, as BossNAS's ensemble
    /// bootstrapping trains a block: two augmented views of the batch; the target's
    /// projections of each view at `tap`, L2-normalised and averaged over `paths`, are
    /// the ensemble target; every path of the online net predicts (projector, then
    /// predictor, at `tap`) the other view's target, with the loss `2 - 2 cos` summed
    /// over both views and averaged over the paths. The online weights (and heads) take
    /// one optimiser step, as `train_step`'s; then every target weight becomes
    /// `momentum * target + (1 - momentum) * online`. Returns the loss. 1..=[`MAX_PATHS`]
    /// paths; `momentum` in [0, 1].
    fn ssl_step(&mut self, _paths: &[Vec<f32>], _tap: &str, _momentum: f32) -> Result<f32, String> {
        Err("this host does not offer ssl_step (BossNAS); update nas".into())
    }
    /// BossNAS's ranking: the score (higher is better: minus the mean loss) of each of
    /// `paths` at `tap` against the ensemble target of the target net's `ensemble`
    /// paths, on two fixed views of `batches` fixed validation batches (the same images
    /// and views on every call), the online net's batch norm recalibrated for each path
    /// on `recalibrate` fixed training batches. No weight changes; no label is read.
    fn ssl_score(
        &mut self,
        _paths: &[Vec<f32>],
        _ensemble: &[Vec<f32>],
        _tap: &str,
        _batches: usize,
        _recalibrate: usize,
    ) -> Result<Vec<f32>, String> {
        Err("this host does not offer ssl_score (BossNAS); update nas".into())
    }
    fn weights(&mut self, op: WeightOp) -> Result<(), String>;
    /// The learning rate the next weight step will use (it follows the host's schedule).
    fn lr(&mut self) -> Result<f32, String>;
    /// Accuracy of the path `mix` with inherited weights on `batches` validation
    /// batches, after recalibrating batch-norm statistics on `recalibrate` training
    /// batches for that path (0: use each batch's own statistics); `subset` says whether
    /// those are the streams' next batches or the same ones on every call. The
    /// supernet's own statistics are left as they were.
    fn evaluate(
        &mut self,
        mix: &[f32],
        batches: usize,
        recalibrate: usize,
        subset: Subset,
    ) -> Result<f32, String>;
    /// Predicted latency (ms) of every mixing weight's candidate from the host's latency
    /// table: layer-choice candidates have one, other weights 0.
    fn latencies(&mut self) -> Result<Vec<f32>, String>;
    /// Parameters, multiply-adds and memory access of every mixing weight's candidate
    /// on its input inside the supernet, per image, summed over the cells that share
    /// its label: layer-choice candidates have theirs, other weights zeros. SNAS's
    /// resource constraint weighs them. The default body answers an error, so a host
    /// or a test double written before it still compiles.
    fn op_costs(&mut self) -> Result<Vec<crate::OpCost>, String> {
        Err("this host gives no op costs (`op_costs`); update nas".into())
    }
    /// From now on [`SupernetHost::train_step`] drops paths: each cell edge's output
    /// (in spaces whose cells have edges with op choices, as `darts`) is zeroed per
    /// image with probability `prob` (in [0, 1); 0 turns it off) and the rest scaled by
    /// `1 / (1 - prob)`, as SNAS's reference does during its search. The masks come
    /// from the run's seed and the step, so a resumed search draws the same ones. A
    /// host without it answers an error.
    fn set_drop_path(&mut self, _prob: f32) -> Result<(), String> {
        Err("this host does not offer drop path (`set_drop_path`); update nas".into())
    }
    /// From now on the supernet's weights follow `schedule` instead of the host's
    /// learning-rate schedule (see [`WeightSchedule`]); [`drive`] sets a strategy's
    /// [`EpochStrategy::weight_schedule`] before its first step, on a resumed run too.
    /// A host without it answers an error.
    fn set_weight_schedule(&mut self, _schedule: &WeightSchedule) -> Result<(), String> {
        Err(
            "this host does not offer a strategy's weight schedule (`set_weight_schedule`); \
             update nas"
                .into(),
        )
    }
    /// Parameters, multiply-adds and predicted latency of an architecture.
    fn metrics(&mut self, arch: &Architecture) -> Result<Metrics, String>;
    /// Saves the supernet, the optimiser, the data position and `state` together, so a
    /// killed search resumes from here with `state` as [`OneShotSetup::resume`].
    fn checkpoint(&mut self, state: &Value) -> Result<(), String>;
    fn progress(&mut self, p: &Progress) -> Result<(), String>;
}

/// What a one-shot strategy is created with.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OneShotSetup {
    pub info: OneShotInfo,
    /// The strategy's own options (`--config` JSON); `{}` when none.
    pub config: Value,
    pub seed: u64,
    /// The state of the last checkpoint when the search resumes.
    pub resume: Option<Value>,
}

/// A one-shot strategy: it runs the whole search against the host and returns the
/// architecture it exports.
pub trait OneShotStrategy {
    /// Builds the strategy; a bad `setup.config` is an error naming the field.
    fn new(setup: &OneShotSetup) -> Result<Self, String>
    where
        Self: Sized;
    /// Runs the search; `resume` is the state of the checkpoint to continue from.
    fn run(
        &mut self,
        host: &mut dyn SupernetHost,
        resume: Option<&Value>,
    ) -> Result<Architecture, String>;
}

impl<S: EpochStrategy> OneShotStrategy for S {
    fn new(setup: &OneShotSetup) -> Result<Self, String> {
        S::create(setup)
    }
    fn run(
        &mut self,
        host: &mut dyn SupernetHost,
        resume: Option<&Value>,
    ) -> Result<Architecture, String> {
        drive(self, host, resume)
    }
}

/// A strategy described by what one training step does; [`drive`] runs it.
pub trait EpochStrategy {
    fn create(setup: &OneShotSetup) -> Result<Self, String>
    where
        Self: Sized;
    /// One step (`step` of `epoch`); returns figures to report (losses).
    fn step(
        &mut self,
        host: &mut dyn SupernetHost,
        epoch: usize,
        step: usize,
    ) -> Result<Vec<(&'static str, f32)>, String>;
    /// Work after each epoch (ENAS trains its controller here).
    fn end_epoch(
        &mut self,
        _host: &mut dyn SupernetHost,
        _epoch: usize,
    ) -> Result<Vec<(&'static str, f32)>, String> {
        Ok(vec![])
    }
    /// The architecture the strategy would export now (a strategy with none yet, as
    /// SPOS before its search or ENAS before its first controller phase, gives a
    /// placeholder: `info.derive` on equal weights).
    fn current(&self, info: &OneShotInfo) -> Architecture;
    /// The final answer, after the last epoch (SPOS searches the trained supernet here).
    fn finish(&mut self, host: &mut dyn SupernetHost) -> Result<Architecture, String> {
        Ok(self.current(host.info()))
    }
    /// The strategy's whole state (parameters, optimiser moments, random generator).
    fn save(&self) -> Result<Value, String>;
    fn load(&mut self, state: Value) -> Result<(), String>;
    /// The warm-up before the search proper (see [`Warmup`]); none by default.
    fn warmup(&self) -> Warmup {
        Warmup::default()
    }
    /// The strategy's own schedule for the supernet's weights (see [`WeightSchedule`]);
    /// the host's by default.
    fn weight_schedule(&self) -> Option<WeightSchedule> {
        None
    }
}

/// Epochs at the start of a run in which only the supernet's weights train, each step on
/// a path drawn uniformly at random (every cell edge on, its op drawn), and the strategy
/// itself does nothing: no `step`, no `end_epoch`. Strategies that take it read the
/// config field `warmup_epochs` (default 0, below `--epochs`) with [`Warmup::from_config`].
/// Weight sharing judges ops by weights that have barely trained at first, when
/// parameter-free ops look best; a warm-up lets every op's weights learn before the
/// architecture does (ProxylessNAS's reference trains the weights alone for 40 epochs
/// before it searches; several DARTS variants warm up likewise).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Warmup {
    pub epochs: usize,
    /// Seeds the paths (the run's seed): each step's path depends on it and the step
    /// alone, so a resumed warm-up draws the paths an uninterrupted one would.
    pub seed: u64,
}

/// The config field of [`Warmup`].
pub const WARMUP_FIELD: &str = "warmup_epochs";

impl Warmup {
    pub fn from_config(setup: &OneShotSetup) -> Result<Warmup, String> {
        let most = setup.info.epochs.saturating_sub(1);
        let epochs: usize = crate::config_field(&setup.config, WARMUP_FIELD, 0)?;
        if epochs > most {
            return Err(format!(
                "config field `{WARMUP_FIELD}`: {epochs} is out of range (allowed 0..={most}: \
                 at least one of the run's {} epoch{} must search)",
                setup.info.epochs,
                if setup.info.epochs == 1 { "" } else { "s" }
            ));
        }
        Ok(Warmup {
            epochs,
            seed: setup.seed,
        })
    }

    /// The uniformly drawn path of step `step` of warm-up epoch `epoch`.
    pub fn path(&self, info: &OneShotInfo, epoch: usize, step: usize) -> Vec<f32> {
        let mut rng = Rng::new(
            self.seed
                ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
                ^ (step as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F),
        );
        let z: Vec<f32> = (0..info.len()).map(|_| rng.uniform()).collect();
        info.all_edges(info.one_hot(&info.strongest(&z)))
    }
}

/// Where a run of [`drive`] is: the next step to take.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
struct Position {
    epoch: usize,
    step: usize,
}

/// Steps between progress reports, and between checkpoints.
const REPORT_EVERY: usize = 50;
const CHECKPOINT_EVERY: usize = 200;

/// Runs an [`EpochStrategy`]: `epochs x batches_per_epoch` steps, `end_epoch` after
/// each epoch, a progress report every 50 steps and at each epoch's end, a checkpoint
/// every 200 steps and after each epoch; `resume` (a checkpoint's state) continues
/// where that checkpoint was taken.
pub fn drive<S: EpochStrategy>(
    s: &mut S,
    host: &mut dyn SupernetHost,
    resume: Option<&Value>,
) -> Result<Architecture, String> {
    let info = host.info().clone();
    let mut at = Position { epoch: 0, step: 0 };
    if let Some(r) = resume {
        at = serde_json::from_value(r.get("position").cloned().unwrap_or(Value::Null))
            .map_err(|e| format!("checkpoint state has no valid position: {e}"))?;
        s.load(r.get("strategy").cloned().unwrap_or(Value::Null))?;
    }
    if let Some(schedule) = s.weight_schedule() {
        host.set_weight_schedule(&schedule)?;
    }
    let checkpoint = |s: &S, host: &mut dyn SupernetHost, at: Position| -> Result<(), String> {
        let state = serde_json::json!({"position": at, "strategy": s.save()?});
        host.checkpoint(&state)
    };
    let mut sums: BTreeMap<String, (f64, usize)> = BTreeMap::new();
    let report = |s: &S,
                  host: &mut dyn SupernetHost,
                  sums: &mut BTreeMap<String, (f64, usize)>,
                  epoch: usize,
                  step: usize|
     -> Result<(), String> {
        let values = sums
            .iter()
            .map(|(k, (t, n))| (k.clone(), (*t / (*n).max(1) as f64) as f32))
            .collect();
        sums.clear();
        host.progress(&Progress {
            epoch,
            step,
            values,
            arch: s.current(&info),
        })
    };
    let warmup = s.warmup();
    while at.epoch < info.epochs {
        let warming = at.epoch < warmup.epochs;
        while at.step < info.batches_per_epoch {
            let figures = if warming {
                host.next_batch(Split::Train)?;
                let path = warmup.path(&info, at.epoch, at.step);
                vec![("warmup_loss", host.train_step(&path, None)?)]
            } else {
                s.step(host, at.epoch, at.step)?
            };
            for (k, v) in figures {
                let e = sums.entry(k.to_string()).or_insert((0.0, 0));
                e.0 += v as f64;
                e.1 += 1;
            }
            at.step += 1;
            if at.step % REPORT_EVERY == 0 && at.step < info.batches_per_epoch {
                report(s, host, &mut sums, at.epoch, at.step)?;
            }
            if at.step % CHECKPOINT_EVERY == 0 && at.step < info.batches_per_epoch {
                checkpoint(s, host, at)?;
            }
        }
        if !warming {
            for (k, v) in s.end_epoch(host, at.epoch)? {
                sums.insert(k.to_string(), (v as f64, 1));
            }
        }
        report(s, host, &mut sums, at.epoch, at.step)?;
        at = Position {
            epoch: at.epoch + 1,
            step: 0,
        };
        checkpoint(s, host, at)?;
    }
    s.finish(host)
}

/// Adam on a plain vector (for architecture parameters), with L2 weight decay as the
/// DARTS code applies it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VecAdam {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub weight_decay: f32,
    m: Vec<f32>,
    v: Vec<f32>,
    t: u32,
}

impl VecAdam {
    pub fn new(n: usize, lr: f32, beta1: f32, beta2: f32, weight_decay: f32) -> VecAdam {
        VecAdam {
            lr,
            beta1,
            beta2,
            weight_decay,
            m: vec![0.0; n],
            v: vec![0.0; n],
            t: 0,
        }
    }

    /// Checks a saved optimiser for `n` values: moments of that length, finite (the
    /// second not negative), settings finite, and a step count that can grow. A saved
    /// state with shorter moments panicked at its first step.
    pub fn check(&self, n: usize) -> Result<(), String> {
        if self.m.len() != n || self.v.len() != n {
            return Err(format!(
                "its Adam moments have {} and {} values, for {n} logits",
                self.m.len(),
                self.v.len()
            ));
        }
        let finite = [self.lr, self.beta1, self.beta2, self.weight_decay]
            .iter()
            .chain(&self.m)
            .all(|x| x.is_finite());
        if !finite || self.v.iter().any(|x| !(x.is_finite() && *x >= 0.0)) {
            return Err("its Adam state holds a value that is not finite".into());
        }
        if self.t == u32::MAX {
            return Err("its Adam step count is at its largest".into());
        }
        Ok(())
    }

    /// `x -= lr * adam(grad + wd * x)`.
    pub fn step(&mut self, x: &mut [f32], grad: &[f32]) {
        self.t += 1;
        let (b1, b2) = (self.beta1, self.beta2);
        let c1 = 1.0 - b1.powi(self.t as i32);
        let c2 = 1.0 - b2.powi(self.t as i32);
        for i in 0..x.len() {
            let g = grad[i] + self.weight_decay * x[i];
            self.m[i] = b1 * self.m[i] + (1.0 - b1) * g;
            self.v[i] = b2 * self.v[i] + (1.0 - b2) * g * g;
            x[i] -= self.lr * (self.m[i] / c1) / ((self.v[i] / c2).sqrt() + 1e-8);
        }
    }
}

/// Config fields every [`ArchParams`] strategy reads (and its [`Warmup`]).
pub const ARCH_FIELDS: &[&str] = &["arch_lr", "arch_weight_decay", WARMUP_FIELD];

/// Architecture parameters (one logit per mixing weight) with their Adam optimiser
/// (betas 0.5/0.999 as in DARTS); `arch_lr` (default 3e-4) and `arch_weight_decay`
/// (default 1e-3) come from the strategy's config.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ArchParams {
    pub alpha: Vec<f32>,
    pub adam: VecAdam,
}

impl ArchParams {
    pub fn new(info: &OneShotInfo, config: &Value) -> Result<ArchParams, String> {
        let lr = crate::config_rate(config, "arch_lr", 3e-4)?;
        let wd: f32 = crate::config_field(config, "arch_weight_decay", 1e-3)?;
        if !(wd >= 0.0 && wd.is_finite()) {
            return Err(format!(
                "config field `arch_weight_decay`: {wd} is not valid (must be >= 0)"
            ));
        }
        let n = info.len();
        Ok(ArchParams {
            alpha: vec![0.0; n],
            adam: VecAdam::new(n, lr, 0.5, 0.999, wd),
        })
    }

    /// Softmax of the logits per choice.
    pub fn probs(&self, info: &OneShotInfo) -> Vec<f32> {
        info.softmax(&self.alpha, 1.0)
    }

    /// The architecture these logits stand for (see [`OneShotInfo::derive`]).
    pub fn derive(&self, info: &OneShotInfo) -> Architecture {
        info.derive(&self.probs(info))
    }

    /// One Adam step with the loss gradient with respect to the logits; an error when
    /// the logits are no longer finite (a diverged search, which could not be saved).
    pub fn step(&mut self, grad: &[f32]) -> Result<(), String> {
        self.adam.step(&mut self.alpha, grad);
        self.check()
    }

    /// An error when a logit is NaN or infinite.
    pub fn check(&self) -> Result<(), String> {
        crate::check_finite(
            &self.alpha,
            "the architecture parameters",
            "lower `arch_lr`",
        )
    }

    /// The logits plus one standard Gumbel sample each.
    pub fn perturbed(&self, rng: &mut Rng) -> Vec<f32> {
        self.alpha.iter().map(|a| a + gumbel(rng)).collect()
    }

    pub fn save(&self) -> Result<Value, String> {
        serde_json::to_value(self).map_err(|e| e.to_string())
    }

    /// Restores saved parameters, checking they fit this supernet.
    pub fn load(&mut self, v: Value) -> Result<(), String> {
        let p: ArchParams = serde_json::from_value(v)
            .map_err(|e| format!("bad saved architecture parameters: {e}"))?;
        if p.alpha.len() != self.alpha.len() {
            return Err(format!(
                "saved architecture parameters have {} logits, the supernet {}",
                p.alpha.len(),
                self.alpha.len()
            ));
        }
        if p.alpha.iter().any(|x| !x.is_finite()) {
            return Err("saved architecture parameters hold a logit that is not finite".into());
        }
        p.adam
            .check(p.alpha.len())
            .map_err(|e| format!("saved architecture parameters: {e}"))?;
        *self = p;
        Ok(())
    }
}

/// The state of the strategies that sample paths from their logits (SNAS, GDAS,
/// ProxylessNAS): the logits with their optimiser and the generator of the samples,
/// saved and restored together.
pub struct SampledLogits {
    pub arch: ArchParams,
    pub rng: Rng,
}

impl SampledLogits {
    /// `config` holds the [`ARCH_FIELDS`].
    pub fn new(info: &OneShotInfo, config: &Value, seed: u64) -> Result<SampledLogits, String> {
        Ok(SampledLogits {
            arch: ArchParams::new(info, config)?,
            rng: Rng::new(seed),
        })
    }

    pub fn save(&self) -> Result<Value, String> {
        Ok(serde_json::json!({"arch": self.arch.save()?, "rng": rng_state(&self.rng)}))
    }

    pub fn load(&mut self, state: Value) -> Result<(), String> {
        self.arch
            .load(state.get("arch").cloned().unwrap_or(Value::Null))?;
        self.rng = rng_in_state(&state)?;
        Ok(())
    }
}

/// A strategy's own schedule for the supernet's weights in place of the host's (SGD at
/// its rate, annealed by cosine to 0 over the search): `lr` at its peak, reached by a
/// linear warm-up from `warmup_lr` over the first `warmup_steps` weight steps, then a
/// cosine to 0 over the rest of the search (NAT's fine-tuning of a pretrained supernet).
/// Momentum, weight decay and clipping stay the host's.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct WeightSchedule {
    pub lr: f32,
    pub warmup_steps: usize,
    pub warmup_lr: f32,
}

impl WeightSchedule {
    /// The most a schedule's rate may be.
    pub const MAX_LR: f32 = 10.0;

    /// The check of a schedule for a search of `total` weight steps, host and test
    /// double alike: `0 < lr <= 10`, `0 <= warmup_lr <= lr`, fewer warm-up steps than
    /// the search has.
    pub fn check(&self, total: usize) -> Result<(), String> {
        if !(self.lr > 0.0 && self.lr <= Self::MAX_LR) {
            return Err(format!(
                "weight schedule: learning rate {} is not in (0, {}]",
                self.lr,
                Self::MAX_LR
            ));
        }
        if !(self.warmup_lr >= 0.0 && self.warmup_lr <= self.lr) {
            return Err(format!(
                "weight schedule: warm-up rate {} is not in [0, {}] (the peak rate)",
                self.warmup_lr, self.lr
            ));
        }
        if self.warmup_steps >= total.max(1) {
            return Err(format!(
                "weight schedule: {} warm-up steps, the search has {total}",
                self.warmup_steps
            ));
        }
        Ok(())
    }

    /// The rate of weight step `step` (from 0) of a search of `total` steps.
    pub fn lr_at(&self, step: usize, total: usize) -> f32 {
        if step < self.warmup_steps {
            let f = step as f32 / self.warmup_steps as f32;
            return self.warmup_lr + (self.lr - self.warmup_lr) * f;
        }
        let rest = total.saturating_sub(self.warmup_steps).max(1) as f32;
        let p = ((step - self.warmup_steps) as f32 / rest).clamp(0.0, 1.0);
        self.lr * 0.5 * (1.0 + (std::f32::consts::PI * p).cos())
    }
}

/// The check of a drop-path probability, host and test double alike: in [0, 1).
pub fn check_drop_path(prob: f32) -> Result<(), String> {
    if (0.0..1.0).contains(&prob) {
        Ok(())
    } else {
        Err(format!(
            "drop path probability {prob} is not in [0, 1) (0 turns it off)"
        ))
    }
}

/// The temperature range (`tau_max`, `tau_min`) of a Gumbel-softmax strategy, with
/// defaults; an error names the fields unless `tau_max >= tau_min > 0`.
pub fn temperature_range(config: &Value, max: f32, min: f32) -> Result<(f32, f32), String> {
    let hi: f32 = crate::config_field(config, "tau_max", max)?;
    let lo: f32 = crate::config_field(config, "tau_min", min)?;
    if !(lo > 0.0 && hi >= lo && hi.is_finite()) {
        return Err(format!(
            "config fields `tau_max`/`tau_min`: {hi}/{lo} are not valid (need tau_max >= tau_min > 0)"
        ));
    }
    Ok((hi, lo))
}

/// Saves a random generator's state as JSON.
pub fn rng_state(rng: &Rng) -> Value {
    serde_json::json!(rng.state())
}

/// Restores a random generator saved by [`rng_state`].
pub fn rng_from(v: &Value) -> Result<Rng, String> {
    let s: [u64; 4] =
        serde_json::from_value(v.clone()).map_err(|e| format!("bad saved generator: {e}"))?;
    Rng::restored(s).map_err(|e| format!("bad saved generator: {e}"))
}

/// The saved state of a strategy whose only state is its random generator:
/// `{"rng": ...}`.
pub fn rng_only_state(rng: &Rng) -> Value {
    serde_json::json!({ "rng": rng_state(rng) })
}

/// The generator in a saved state's `rng` field (as [`rng_only_state`] writes it).
pub fn rng_in_state(state: &Value) -> Result<Rng, String> {
    rng_from(state.get("rng").unwrap_or(&Value::Null))
        .map_err(|e| format!("saved state field `rng`: {e}"))
}

/// A field of saved state, or an error naming it.
pub fn state_field<T: serde::de::DeserializeOwned>(
    state: &Value,
    field: &str,
) -> Result<T, String> {
    serde_json::from_value(state.get(field).cloned().unwrap_or(Value::Null))
        .map_err(|e| format!("saved state field `{field}`: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Reduce;
    use serde_json::json;

    /// Saved logits whose Adam moments are shorter than the logits (a damaged
    /// `oneshot.json`) panicked at the next step, indexing past them; a value past f32's
    /// range (read as infinity) went in too. Both are refused as they load.
    #[test]
    fn damaged_saved_logits_are_refused() {
        let info = info();
        let mut p = ArchParams::new(&info, &json!({})).unwrap();
        let good = p.save().unwrap();
        p.load(good.clone()).unwrap();
        for (path, v) in [
            ("/adam/m", json!([1.0])),
            ("/adam/v/0", json!(-1.0)),
            ("/adam/m/0", json!(1e39)),
            ("/alpha/0", json!(1e39)),
        ] {
            let mut s = good.clone();
            *s.pointer_mut(path).unwrap_or_else(|| panic!("{path}")) = v;
            let e = p.load(s).expect_err(path);
            assert!(e.contains("saved architecture parameters"), "{path}: {e}");
        }
    }

    #[test]
    fn arch_rates_past_one_are_refused_and_a_diverged_step_is_an_error() {
        let info = info();
        for lr in [0.0, -1.0, 1.5, 1e30] {
            let e = ArchParams::new(&info, &json!({ "arch_lr": lr }))
                .err()
                .unwrap_or_else(|| panic!("arch_lr {lr} accepted"));
            assert!(e.contains("`arch_lr`") && e.contains("(0, 1]"), "{e}");
        }
        let mut p = ArchParams::new(&info, &json!({"arch_lr": 1.0})).unwrap();
        p.step(&vec![1.0; info.len()]).unwrap();
        let e = p.step(&vec![f32::NAN; info.len()]).unwrap_err();
        assert!(e.contains("diverged") && e.contains("arch_lr"), "{e}");
    }

    fn info() -> OneShotInfo {
        let choices = vec![
            Choice {
                label: "op".into(),
                kind: ChoiceKind::Layer {
                    candidates: vec!["a".into(), "b".into(), "c".into()],
                },
                inside: None,
                edge_ops: vec![],
            },
            Choice {
                label: "in".into(),
                kind: ChoiceKind::Input {
                    n_candidates: 4,
                    n_chosen: 2,
                    reduce: Reduce::Sum,
                },
                inside: None,
                edge_ops: vec![],
            },
        ];
        OneShotInfo {
            groups: vec![
                Group {
                    label: "op".into(),
                    choice: 0,
                    size: 3,
                },
                Group {
                    label: "in".into(),
                    choice: 1,
                    size: 4,
                },
            ],
            choices,
            epochs: 1,
            batches_per_epoch: 1,
            batch_size: 1,
            val_batches: 1,
        }
    }

    #[test]
    fn softmax_backward_matches_finite_differences() {
        let info = info();
        let x = [0.3f32, -1.2, 0.8, 0.1, 0.5, -0.4, 2.0];
        let gp = [0.7f32, -0.3, 1.1, 0.2, -0.9, 0.4, 0.6];
        let t = 0.7;
        let p = info.softmax(&x, t);
        let g = info.softmax_backward(&p, &gp, t);
        let f = |x: &[f32]| -> f64 {
            let p = info.softmax(x, t);
            p.iter().zip(&gp).map(|(a, b)| (*a * *b) as f64).sum()
        };
        for i in 0..x.len() {
            let h = 1e-3;
            let (mut xp, mut xm) = (x, x);
            xp[i] += h;
            xm[i] -= h;
            let fd = (f(&xp) - f(&xm)) / (2.0 * h as f64);
            assert!((fd - g[i] as f64).abs() < 1e-3, "{i}: fd {fd} vs {}", g[i]);
        }
    }

    #[test]
    fn strongest_takes_the_argmax_and_the_heaviest_inputs() {
        let info = info();
        let w = [0.1f32, 0.5, 0.4, 0.3, 0.05, 0.6, 0.2];
        let arch = decisions::to_arch(&info.choices, &info.strongest(&w));
        assert_eq!(arch["op"], Value::from("b"));
        assert_eq!(arch["in"], serde_json::json!([0, 2]));
        let mix = info.one_hot_arch(&arch).unwrap();
        assert_eq!(mix, vec![0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0]);
        assert!(info.check().is_ok());
    }

    #[test]
    fn weight_schedules_are_checked() {
        let ok = WeightSchedule {
            lr: 0.01,
            warmup_steps: 9,
            warmup_lr: 1e-4,
        };
        assert!(ok.check(10).is_ok());
        let bad = [
            (WeightSchedule { lr: 0.0, ..ok }, "learning rate 0"),
            (WeightSchedule { lr: 11.0, ..ok }, "learning rate 11"),
            (WeightSchedule { lr: f32::NAN, ..ok }, "learning rate NaN"),
            (
                WeightSchedule {
                    warmup_lr: 0.02,
                    ..ok
                },
                "warm-up rate 0.02",
            ),
            (
                WeightSchedule {
                    warmup_lr: -1.0,
                    ..ok
                },
                "warm-up rate -1",
            ),
            (
                WeightSchedule {
                    warmup_steps: 10,
                    ..ok
                },
                "10 warm-up steps",
            ),
        ];
        for (s, want) in bad {
            let e = s.check(10).unwrap_err();
            assert!(e.contains(want), "{s:?}: {e}");
        }
        // No warm-up: the cosine starts at the peak.
        let cos = WeightSchedule {
            warmup_steps: 0,
            ..ok
        };
        assert_eq!(cos.lr_at(0, 10), 0.01);
        assert!((cos.lr_at(5, 10) - 0.005).abs() < 1e-7);
    }
}
