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

/// `n` choose `k`, or `usize::MAX` where it does not fit (each partial product
/// `C(n, i + 1) = C(n, i) (n - i) / (i + 1)` is exact, taken in 128 bits).
pub fn binomial(n: usize, k: usize) -> usize {
    if k > n {
        return 0;
    }
    let k = k.min(n - k);
    let mut acc: u128 = 1;
    for i in 0..k {
        acc = acc * (n - i) as u128 / (i + 1) as u128;
        if acc > usize::MAX as u128 {
            return usize::MAX;
        }
    }
    acc as usize
}

#[cfg(test)]
mod tests {
    use super::binomial;

    #[test]
    fn binomials_are_exact_and_saturate() {
        assert_eq!(binomial(5, 2), 10);
        assert_eq!(binomial(5, 0), 1);
        assert_eq!(binomial(3, 4), 0);
        // 66 choose 33 fits in 64 bits, though its partial products times the next
        // factor do not (the fold in usize overflowed here).
        assert_eq!(binomial(66, 33), 7_219_428_434_016_265_740);
        assert_eq!(binomial(100, 95), 75_287_520);
        assert_eq!(binomial(200, 100), usize::MAX);
    }
}
