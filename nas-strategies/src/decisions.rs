//! Every choice of a space seen as one categorical decision with `size()` options, and
//! the conversions between decision vectors and architectures (for strategies that
//! learn a distribution over decisions: RL controllers, Q-learning, surrogates).
//!
//! A *decision vector* holds one option index per choice of the space, in definition
//! order, inactive (repeat-scoped) choices included; [`to_arch`] drops the inactive
//! ones. Options are: the candidate index of a layer choice, the value index of a value
//! choice, the depth index of a repeat, and for an input choice picking `k` of `n` the
//! rank of the sorted index list among the C(n, k) combinations in lexicographic order.

use crate::{Architecture, Choice, ChoiceKind, Value};

/// C(n, k); 0 when k > n, `usize::MAX` where it does not fit (as [`Choice::size`]
/// counts an input choice's options; ranks then cover the first `usize::MAX` subsets).
pub fn binomial(n: usize, k: usize) -> usize {
    nas_types::binomial(n, k)
}

/// The `rank`-th sorted `k`-subset of `0..n` in lexicographic order
/// (`rank < C(n, k)`; rank 0 is `[0, 1, .., k-1]`).
pub fn unrank_combination(n: usize, k: usize, mut rank: usize) -> Vec<usize> {
    let mut out = Vec::with_capacity(k);
    let mut next = 0;
    for slot in 0..k {
        // Try each smallest element in turn, skipping the subsets that start lower.
        loop {
            let rest = binomial(n - next - 1, k - slot - 1);
            if rank < rest {
                break;
            }
            rank -= rest;
            next += 1;
        }
        out.push(next);
        next += 1;
    }
    out
}

/// The lexicographic rank of a sorted, distinct `k`-subset of `0..n` (inverse of
/// [`unrank_combination`]).
pub fn rank_combination(n: usize, idx: &[usize]) -> usize {
    let k = idx.len();
    let mut rank: usize = 0;
    let mut next = 0;
    for (slot, &v) in idx.iter().enumerate() {
        while next < v {
            rank = rank.saturating_add(binomial(n - next - 1, k - slot - 1));
            next += 1;
        }
        next = v + 1;
    }
    rank
}

/// Number of options of every choice.
pub fn sizes(space: &[Choice]) -> Vec<usize> {
    space.iter().map(|c| c.size()).collect()
}

/// Whether `d` is a decision vector of a space whose choices have `sizes` options: one
/// option in range per choice (what a loaded state's vectors are checked by).
pub fn fits(sizes: &[usize], d: &[usize]) -> bool {
    d.len() == sizes.len() && d.iter().zip(sizes).all(|(o, k)| o < k)
}

/// How many decision vectors options of `sizes` make (saturating at `usize::MAX`).
pub fn distinct(sizes: &[usize]) -> usize {
    sizes.iter().fold(1usize, |p, &s| p.saturating_mul(s))
}

/// A decision vector drawn uniformly: each choice's option independently.
pub fn random(space: &[Choice], rng: &mut crate::Rng) -> Vec<usize> {
    sizes(space).into_iter().map(|n| rng.below(n)).collect()
}

/// Checks that every choice has at least one option.
pub fn check_space(space: &[Choice]) -> Result<(), String> {
    for c in space {
        if c.size() == 0 {
            return Err(format!("choice `{}` has no options", c.label));
        }
    }
    Ok(())
}

/// The architecture value of option `option` of `choice`.
pub fn option_value(choice: &Choice, option: usize) -> Value {
    match &choice.kind {
        ChoiceKind::Layer { candidates } => Value::from(candidates[option].clone()),
        ChoiceKind::Input {
            n_candidates,
            n_chosen,
            ..
        } => Value::from(unrank_combination(*n_candidates, *n_chosen, option)),
        ChoiceKind::Value { values } => values[option].clone(),
        ChoiceKind::Repeat { depths } => Value::from(depths[option]),
    }
}

fn same_value(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// The option index of an architecture value, if it is one of the choice's options.
pub fn option_index(choice: &Choice, v: &Value) -> Option<usize> {
    match &choice.kind {
        ChoiceKind::Layer { candidates } => {
            let s = v.as_str()?;
            candidates.iter().position(|c| c == s)
        }
        ChoiceKind::Input {
            n_candidates,
            n_chosen,
            ..
        } => {
            let mut idx: Vec<usize> = match v {
                Value::Array(xs) => xs
                    .iter()
                    .map(|x| x.as_u64().map(|u| u as usize))
                    .collect::<Option<_>>()?,
                Value::Number(n) => vec![n.as_u64()? as usize],
                _ => return None,
            };
            idx.sort_unstable();
            idx.dedup();
            if idx.len() != *n_chosen || idx.iter().any(|i| i >= n_candidates) {
                return None;
            }
            Some(rank_combination(*n_candidates, &idx))
        }
        ChoiceKind::Value { values } => values.iter().position(|x| same_value(x, v)),
        ChoiceKind::Repeat { depths } => {
            let d = v.as_u64()? as usize;
            depths.iter().position(|x| *x == d)
        }
    }
}

/// Which choices are active under `decisions`: a repeat-scoped choice is active when its
/// repeat is active and the repeat's chosen depth exceeds the block index, and an edge's
/// op choice (an input choice's `edge_ops`) when its input choice is active and picks
/// the edge.
pub fn active_mask(space: &[Choice], decisions: &[usize]) -> Vec<bool> {
    let mut active = vec![true; space.len()];
    for (i, c) in space.iter().enumerate() {
        if let Some((rep, block)) = &c.inside {
            active[i] = match space[..i].iter().position(|r| r.label == *rep) {
                Some(j) => {
                    active[j]
                        && match &space[j].kind {
                            ChoiceKind::Repeat { depths } => depths[decisions[j]] > *block,
                            _ => false,
                        }
                }
                None => false,
            };
        }
    }
    nas_types::arch::edges_off(space, &mut active, |j| {
        let (n_candidates, n_chosen) = nas_types::arch::edge_input(&space[j])?;
        Some(unrank_combination(n_candidates, n_chosen, decisions[j]))
    });
    active
}

/// Moves ops with the edges an input choice now picks instead: where `after` changed an
/// input choice of `before` (a `darts` node's pair of edges), the k-th edge it picks
/// anew takes the op of the k-th edge it dropped, as a mutation of the input of one of
/// a node's two slots keeps the slot's op (the regularized-evolution paper's "hidden
/// state" mutation). Without this a newly picked edge would hold whatever its unmade
/// op choice held: option 0 (`none`) for an architecture that does not name it.
/// Spaces without edge ops are left as they are.
pub fn carry_edge_ops(space: &[Choice], before: &[usize], after: &mut [usize]) {
    for (j, c) in space.iter().enumerate() {
        let Some((n_candidates, n_chosen)) = nas_types::arch::edge_input(c) else {
            continue;
        };
        if before[j] == after[j] {
            continue;
        }
        let old = unrank_combination(n_candidates, n_chosen, before[j]);
        let new = unrank_combination(n_candidates, n_chosen, after[j]);
        let dropped = old.iter().filter(|e| !new.contains(e));
        let added = new.iter().filter(|e| !old.contains(e));
        for (&from, &to) in dropped.zip(added) {
            let at = |e: usize| nas_types::arch::edge_op_position(space, j, &c.edge_ops[e]);
            if let (Some(f), Some(t)) = (at(from), at(to)) {
                after[t] = before[f];
            }
        }
    }
}

/// The architecture of a decision vector (inactive choices dropped).
pub fn to_arch(space: &[Choice], decisions: &[usize]) -> Architecture {
    let active = active_mask(space, decisions);
    let mut a = Architecture::new();
    for (i, c) in space.iter().enumerate() {
        if active[i] {
            a.insert(c.label.clone(), option_value(c, decisions[i]));
        }
    }
    a
}

/// The decision vector of an architecture; choices it lacks (inactive ones) get option
/// 0. An error names a value that is not one of its choice's options.
pub fn from_arch(space: &[Choice], arch: &Architecture) -> Result<Vec<usize>, String> {
    space
        .iter()
        .map(|c| match arch.get(&c.label) {
            None => Ok(0),
            Some(v) => option_index(c, v)
                .ok_or_else(|| format!("`{}`: {v} is not one of its options", c.label)),
        })
        .collect()
}

/// A key that identifies an architecture (its active decisions), for matching tells to
/// asks and spotting repeats.
pub fn key(space: &[Choice], decisions: &[usize]) -> String {
    let active = active_mask(space, decisions);
    decisions
        .iter()
        .zip(&active)
        .map(|(d, a)| if *a { d.to_string() } else { "-".into() })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `darts` node builds the ops of the two edges its input choice picks; the op
    /// named for the third edge is no decision of the network.
    #[test]
    fn an_unpicked_edges_op_is_no_decision() {
        use crate::choices::{canonical, repair};
        // c/op_3_0, c/op_3_1, c/op_3_2, c/input_3 (option 0 picks edges [0, 1]).
        let space = crate::testing::darts_cell(3, 1, 4);
        let (a, b) = ([1, 2, 3, 0], [1, 2, 0, 0]);
        assert_eq!(active_mask(&space, &a), vec![true, true, false, true]);
        assert_eq!(key(&space, &a), key(&space, &b));
        assert!(!to_arch(&space, &a).contains_key("c/op_3_2"));
        let c = [1, 2, 3, 1]; // Picks [0, 2]: edge 2's op is built, edge 1's is not.
        assert_eq!(active_mask(&space, &c), vec![true, false, true, true]);
        assert_ne!(key(&space, &c), key(&space, &[1, 2, 0, 1]));
        // The same from architectures: what the unpicked edge names does not count.
        let arch = |ops: [&str; 3], pick: [usize; 2]| {
            let mut m: Architecture = (0..3)
                .map(|i| (format!("c/op_3_{i}"), Value::from(ops[i])))
                .collect();
            m.insert("c/input_3".into(), Value::from(pick.to_vec()));
            m
        };
        let key_of = |a: &Architecture| canonical(&space, a).unwrap();
        let x = arch(["o1", "o2", "o3"], [0, 1]);
        assert_eq!(key_of(&x), key_of(&arch(["o1", "o2", "o0"], [0, 1])));
        assert_ne!(key_of(&x), key_of(&arch(["o1", "o0", "o3"], [0, 1])));
        assert_eq!(key_of(&x), key_of(&to_arch(&space, &a)));
        // Repair drops the unbuilt op and gives an edge picked after an edit its op.
        let mut y = x.clone();
        y.insert("c/input_3".into(), Value::from(vec![0, 2]));
        y.remove("c/op_3_2");
        repair(&space, &mut y, &mut crate::Rng::new(0));
        assert!(y.contains_key("c/op_3_2") && !y.contains_key("c/op_3_1"));
        assert_eq!((y["c/op_3_0"].clone(), y.len()), (Value::from("o1"), 3));
    }

    /// A node's input moved to another edge takes the op of the edge it left, rather
    /// than the unmade op the vector held there (option 0, `none` in `darts`).
    #[test]
    fn a_moved_input_keeps_its_op() {
        // c/op_3_0, c/op_3_1, c/op_3_2, c/input_3: [0, 1] is option 0, [0, 2] 1, [1, 2] 2.
        let space = crate::testing::darts_cell(3, 1, 4);
        let before = [1, 3, 0, 0];
        let mut after = [1, 3, 0, 1];
        carry_edge_ops(&space, &before, &mut after);
        assert_eq!(after, [1, 3, 3, 1], "edge 1's op moves to edge 2");
        let mut after = [1, 3, 0, 2];
        carry_edge_ops(&space, &before, &mut after);
        assert_eq!(after, [1, 3, 1, 2], "edge 0's op moves to edge 2");
        // Spaces without edge ops, and unchanged inputs, are left as they are.
        let mut same = [1, 3, 2, 0];
        carry_edge_ops(&space, &before, &mut same);
        assert_eq!(same, [1, 3, 2, 0]);
        let plain = crate::testing::layer_space(3, 4);
        let mut v = [0, 1, 2];
        carry_edge_ops(&plain, &[3, 3, 3], &mut v);
        assert_eq!(v, [0, 1, 2]);
    }

    #[test]
    fn combinations_rank_and_unrank_are_inverse_and_ordered() {
        for n in 1..7 {
            for k in 1..=n {
                let total = binomial(n, k);
                let mut prev: Option<Vec<usize>> = None;
                for r in 0..total {
                    let c = unrank_combination(n, k, r);
                    assert_eq!(c.len(), k);
                    assert!(c.windows(2).all(|w| w[0] < w[1]) && c[k - 1] < n);
                    assert_eq!(rank_combination(n, &c), r);
                    if let Some(p) = prev {
                        assert!(p < c, "lexicographic order");
                    }
                    prev = Some(c);
                }
            }
        }
        assert_eq!(unrank_combination(4, 2, 0), vec![0, 1]);
        assert_eq!(unrank_combination(4, 2, 5), vec![2, 3]);
        // 66 choose 33 fits in 64 bits, though the partial products of the binomials
        // unranking takes do not (a fold in usize overflowed): the last subset.
        let last = binomial(66, 33) - 1;
        let top: Vec<usize> = (33..66).collect();
        assert_eq!(unrank_combination(66, 33, last), top);
        assert_eq!(rank_combination(66, &top), last);
    }
}
