//! Choice points as a space describes them: what every strategy sees of a space.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How an input choice combines the inputs it picks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reduce {
    Sum,
    Mean,
    Concat,
}

/// What kind of decision a choice point is, with its candidates.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChoiceKind {
    /// Pick one op among named candidates; the architecture holds the name.
    Layer { candidates: Vec<String> },
    /// Pick `n_chosen` of `n_candidates` inputs; the architecture holds a list of indices.
    Input {
        n_candidates: usize,
        n_chosen: usize,
        reduce: Reduce,
    },
    /// Pick one value (channels, kernel size, ratio, ...); the architecture holds it.
    Value { values: Vec<Value> },
    /// Pick a depth; the architecture holds it.
    Repeat { depths: Vec<usize> },
}

/// A labelled choice point.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    pub label: String,
    #[serde(flatten)]
    pub kind: ChoiceKind,
    /// Set for choices inside a `Repeat` block: (repeat label, block index). The choice
    /// exists only when that repeat's depth exceeds the index.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub inside: Option<(String, usize)>,
    /// For an input choice whose candidates are edges, each computed by an op choice
    /// of its own (a DARTS cell node's incoming edges): the label of each candidate's
    /// op choice. Weight-sharing searches that follow DARTS sum every edge while they
    /// search and keep the edges whose ops are strongest when they export. Empty
    /// otherwise.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub edge_ops: Vec<String>,
}

impl Choice {
    /// How many distinct decisions this choice has.
    pub fn size(&self) -> usize {
        match &self.kind {
            ChoiceKind::Layer { candidates } => candidates.len(),
            ChoiceKind::Input {
                n_candidates,
                n_chosen,
                ..
            } => binomial(*n_candidates, *n_chosen),
            ChoiceKind::Value { values } => values.len(),
            ChoiceKind::Repeat { depths } => depths.len(),
        }
    }
}

fn binomial(n: usize, k: usize) -> usize {
    if k > n {
        return 0;
    }
    (0..k).fold(1usize, |acc, i| acc * (n - i) / (i + 1))
}
