//! Helpers over a space's choices: options by index, activity of repeat-scoped choices,
//! combinations of input choices, and repairing an architecture after an edit.

use crate::{Architecture, Choice, ChoiceKind, Rng, Value};

/// Values equal as JSON numbers (1 == 1.0) or exactly otherwise.
pub use nas_types::arch::same_value;

/// `n` choose `k`, saturating.
pub fn binomial(n: usize, k: usize) -> u128 {
    if k > n {
        return 0;
    }
    let k = k.min(n - k);
    let mut acc: u128 = 1;
    for i in 0..k {
        // acc * (n - i) / (i + 1) is exact at every step (a binomial coefficient).
        acc = match acc.checked_mul((n - i) as u128) {
            Some(x) => x / (i as u128 + 1),
            None => return u128::MAX,
        };
    }
    acc
}

/// The `rank`-th `k`-subset of `0..n` in lexicographic order (sorted indices).
pub fn combination(n: usize, k: usize, mut rank: u128) -> Vec<usize> {
    let mut out = Vec::with_capacity(k);
    let mut x = 0;
    for j in 0..k {
        loop {
            // Subsets that continue with `x` at position `j`.
            let c = binomial(n - x - 1, k - j - 1);
            if rank < c {
                break;
            }
            rank -= c;
            x += 1;
        }
        out.push(x);
        x += 1;
    }
    out
}

/// The lexicographic rank of a sorted `k`-subset of `0..n`.
pub fn combination_rank(n: usize, idx: &[usize]) -> u128 {
    let k = idx.len();
    let mut rank = 0u128;
    let mut x = 0;
    for (j, &i) in idx.iter().enumerate() {
        while x < i {
            rank += binomial(n - x - 1, k - j - 1);
            x += 1;
        }
        x = i + 1;
    }
    rank
}

/// The indices an input choice holds, sorted; `None` when the value is not a list of
/// distinct indices of the right length below `n`.
pub fn input_indices(v: &Value, n: usize, k: usize) -> Option<Vec<usize>> {
    let mut idx: Vec<usize> = match v {
        Value::Array(xs) => xs
            .iter()
            .map(|x| x.as_u64().map(|u| u as usize))
            .collect::<Option<_>>()?,
        Value::Number(x) => vec![x.as_u64()? as usize],
        _ => return None,
    };
    idx.sort_unstable();
    idx.dedup();
    (idx.len() == k && idx.iter().all(|&i| i < n)).then_some(idx)
}

/// Which choices an architecture makes (repeat blocks built, edges picked).
pub use nas_types::arch::{active_flags, in_built_block};

/// Whether a choice's repeat block is built in `arch`; it does not see edges (an
/// unpicked edge's op counts as active here).
#[deprecated(note = "use `active_flags` (repeat blocks and picked edges) or `in_built_block`")]
pub fn active(c: &Choice, arch: &Architecture) -> bool {
    in_built_block(c, arch)
}

/// The `k`-th decision of a choice (`k < size`).
pub fn option(c: &Choice, k: u128) -> Value {
    match &c.kind {
        ChoiceKind::Layer { candidates } => Value::from(candidates[k as usize].clone()),
        ChoiceKind::Input {
            n_candidates,
            n_chosen,
            ..
        } => Value::from(combination(*n_candidates, *n_chosen, k)),
        ChoiceKind::Value { values } => values[k as usize].clone(),
        ChoiceKind::Repeat { depths } => Value::from(depths[k as usize]),
    }
}

/// The index of a decision among a choice's options (the first one when a space lists a
/// value twice).
pub fn index_of(c: &Choice, v: &Value) -> Option<u128> {
    match &c.kind {
        ChoiceKind::Layer { candidates } => {
            let s = v.as_str()?;
            candidates.iter().position(|n| n == s).map(|k| k as u128)
        }
        ChoiceKind::Input {
            n_candidates,
            n_chosen,
            ..
        } => input_indices(v, *n_candidates, *n_chosen)
            .map(|idx| combination_rank(*n_candidates, &idx)),
        ChoiceKind::Value { values } => values
            .iter()
            .position(|x| same_value(x, v))
            .map(|k| k as u128),
        ChoiceKind::Repeat { depths } => {
            let d = v.as_u64()? as usize;
            depths.iter().position(|&x| x == d).map(|k| k as u128)
        }
    }
}

/// How many decisions a choice has.
pub fn size(c: &Choice) -> u128 {
    match &c.kind {
        ChoiceKind::Layer { candidates } => candidates.len() as u128,
        ChoiceKind::Input {
            n_candidates,
            n_chosen,
            ..
        } => binomial(*n_candidates, *n_chosen),
        ChoiceKind::Value { values } => values.len() as u128,
        ChoiceKind::Repeat { depths } => depths.len() as u128,
    }
}

/// A uniformly random decision of a choice.
pub use nas_types::arch::random_decision as random_option;

/// The canonical form of an architecture: each choice's option index, `None` where the
/// choice is inactive. An error names the first choice that does not fit.
pub fn canonical(space: &[Choice], arch: &Architecture) -> Result<Vec<Option<u128>>, String> {
    for label in arch.keys() {
        if !space.iter().any(|c| c.label == *label) {
            return Err(format!(
                "unknown label `{label}` (the space has no such choice)"
            ));
        }
    }
    space
        .iter()
        .zip(active_flags(space, arch))
        .map(|(c, on)| {
            if !on {
                return Ok(None);
            }
            let v = arch
                .get(&c.label)
                .ok_or_else(|| format!("missing choice `{}`", c.label))?;
            index_of(c, v)
                .map(Some)
                .ok_or_else(|| format!("`{}`: {v} is not one of its options", c.label))
        })
        .collect()
}

/// Makes `arch` fit the space after an edit: choices that became inactive are removed,
/// and active choices that are missing (or hold something the choice does not offer) get
/// a random decision. Goes in definition order, so nested repeats settle too; the ops
/// of edges settle after every input choice has (a `darts` node lists its edges' ops
/// before the input choice that picks among them).
pub fn repair(space: &[Choice], arch: &mut Architecture, rng: &mut Rng) {
    arch.retain(|label, _| space.iter().any(|c| c.label == *label));
    let edge_op = |c: &Choice| nas_types::arch::is_edge_op(space, c);
    let settle = |c: &Choice, on: bool, arch: &mut Architecture, rng: &mut Rng| {
        if !on {
            arch.remove(&c.label);
            return;
        }
        let fits = arch.get(&c.label).is_some_and(|v| index_of(c, v).is_some());
        if !fits {
            arch.insert(c.label.clone(), random_option(c, rng));
        }
    };
    for c in space.iter().filter(|c| !edge_op(c)) {
        let on = in_built_block(c, arch);
        settle(c, on, arch, rng);
    }
    let on = active_flags(space, arch);
    for (c, on) in space.iter().zip(on).filter(|(c, _)| edge_op(c)) {
        settle(c, on, arch, rng);
    }
}
