//! Architectures: a `{label: choice}` JSON map, validated against a space's choices.

use crate::rng::Rng;
use crate::{Choice, ChoiceKind};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// One decision per choice label: a candidate name (layer), a list of indices (input),
/// a value (value) or a depth (repeat).
pub type Architecture = BTreeMap<String, Value>;

/// Why an architecture does not fit a space; always names the label and the value.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ArchError {
    #[error("missing choice `{label}` (expected {expected})")]
    Missing { label: String, expected: String },
    #[error("`{label}`: {value} is not allowed (expected {expected})")]
    Invalid {
        label: String,
        value: String,
        expected: String,
    },
    #[error("unknown label `{label}` (the space has no such choice)")]
    Unknown { label: String },
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
}

/// What a choice accepts, in words (error messages, `nas spaces --show`).
pub fn expected(c: &Choice) -> String {
    match &c.kind {
        ChoiceKind::Layer { candidates } => format!("one of {}", candidates.join(", ")),
        ChoiceKind::Input {
            n_candidates,
            n_chosen,
            ..
        } => format!("a list of {n_chosen} distinct indices below {n_candidates}"),
        ChoiceKind::Value { values } => format!(
            "one of {}",
            values
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        ChoiceKind::Repeat { depths } => format!("a depth in {depths:?}"),
    }
}

/// Values equal as JSON numbers (1 == 1.0) or exactly otherwise.
pub fn same_value(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// The indices of an input choice's decision (a JSON list of numbers), if it is one.
pub fn as_indices(v: &Value) -> Option<Vec<usize>> {
    match v {
        Value::Array(xs) => xs.iter().map(|x| x.as_u64().map(|u| u as usize)).collect(),
        Value::Number(n) => n.as_u64().map(|u| vec![u as usize]),
        _ => None,
    }
}

/// Whether a choice is active as far as repeats go: choices inside a `Repeat` exist only
/// for built blocks.
pub fn in_built_block(c: &Choice, arch: &Architecture) -> bool {
    match &c.inside {
        None => true,
        Some((rep, i)) => arch
            .get(rep)
            .and_then(|v| v.as_u64())
            .is_some_and(|d| d as usize > *i),
    }
}

/// Which choices `arch` makes, by position in `choices`: a choice inside a `Repeat`
/// exists only for the blocks the repeat builds, and the op choice of an edge (an input
/// choice's `edge_ops`) only when that input choice picks the edge (a `darts` node
/// builds the ops of its two chosen edges only). An edge op whose input choice is made
/// but missing or holds no valid pick counts as made.
pub fn active_flags(choices: &[Choice], arch: &Architecture) -> Vec<bool> {
    let mut on: Vec<bool> = choices.iter().map(|c| in_built_block(c, arch)).collect();
    edges_off(choices, &mut on, |j| {
        let (n_candidates, _) = edge_input(&choices[j])?;
        arch.get(&choices[j].label)
            .and_then(as_indices)
            .filter(|idx| idx.iter().all(|i| *i < n_candidates))
    });
    on
}

/// `(n_candidates, n_chosen)` of an input choice whose candidates are edges carrying op
/// choices of their own (`edge_ops`); `None` for any other choice.
pub fn edge_input(c: &Choice) -> Option<(usize, usize)> {
    match &c.kind {
        ChoiceKind::Input {
            n_candidates,
            n_chosen,
            ..
        } if !c.edge_ops.is_empty() => Some((*n_candidates, *n_chosen)),
        _ => None,
    }
}

/// Whether `c` is the op choice of an edge some input choice of `choices` picks among.
pub fn is_edge_op(choices: &[Choice], c: &Choice) -> bool {
    choices.iter().any(|x| x.edge_ops.contains(&c.label))
}

/// The edge rule of [`active_flags`] and of `decisions::active_mask`, for an `on` that
/// holds each choice's activity as far as repeats go: turns off the op choices of the
/// edges that input choices do not pick. `picked(j)` gives input choice `j`'s picked
/// edges (`None`: its pick is not known, and every edge counts as picked); an input
/// choice that is itself off turns all its edges' ops off.
pub fn edges_off(
    choices: &[Choice],
    on: &mut [bool],
    picked: impl Fn(usize) -> Option<Vec<usize>>,
) {
    for (j, c) in choices.iter().enumerate() {
        if edge_input(c).is_none() {
            continue;
        }
        let Some(picked) = (if on[j] { picked(j) } else { Some(vec![]) }) else {
            continue;
        };
        for (e, op) in c.edge_ops.iter().enumerate() {
            if !picked.contains(&e) {
                if let Some(o) = edge_op_position(choices, j, op) {
                    on[o] = false;
                }
            }
        }
    }
}

/// About how many architectures `choices` make, as a power of ten: the product of every
/// choice's options, except that an input choice whose candidates are edges counts the
/// ways to pick its edges with their ops (the sum over picks of the product of the
/// picked edges' op options) and its edges' op choices count nothing apart. A repeat's
/// blocks count as if always built.
pub fn log10_size(choices: &[Choice]) -> f64 {
    let mut sum = 0.0;
    for (j, c) in choices.iter().enumerate() {
        if is_edge_op(choices, c) {
            continue;
        }
        let count = match edge_input(c) {
            Some((_, n_chosen)) => {
                // e[i]: the ways to pick i of the edges seen so far, with their ops.
                let mut e = vec![0.0f64; n_chosen + 1];
                e[0] = 1.0;
                for op in &c.edge_ops {
                    let ops = edge_op_position(choices, j, op).map_or(1, |o| choices[o].size());
                    for i in (1..=n_chosen).rev() {
                        e[i] += e[i - 1] * ops as f64;
                    }
                }
                e[n_chosen]
            }
            None => c.size() as f64,
        };
        sum += count.log10();
    }
    // (An empty sum is -0.0, which would print as 10^-0.0.)
    sum + 0.0
}

/// Where the op choice `op` of input choice `j`'s edges sits in `choices`: looked for
/// backwards from `j` first, since a space builds an edge's op before the input choice
/// that picks among the edges.
pub fn edge_op_position(choices: &[Choice], j: usize, op: &str) -> Option<usize> {
    choices[..j]
        .iter()
        .rposition(|x| x.label == op)
        .or_else(|| {
            choices[j + 1..]
                .iter()
                .position(|x| x.label == op)
                .map(|o| o + j + 1)
        })
}

/// Checks `arch` against `choices`: every active choice has an allowed value and nothing
/// else is there.
pub fn validate(choices: &[Choice], arch: &Architecture) -> Result<(), ArchError> {
    for label in arch.keys() {
        if !choices.iter().any(|c| c.label == *label) {
            return Err(ArchError::Unknown {
                label: label.clone(),
            });
        }
    }
    let on = active_flags(choices, arch);
    for (c, _) in choices.iter().zip(on).filter(|(_, on)| *on) {
        let Some(v) = arch.get(&c.label) else {
            return Err(ArchError::Missing {
                label: c.label.clone(),
                expected: expected(c),
            });
        };
        let ok = match &c.kind {
            ChoiceKind::Layer { candidates } => v
                .as_str()
                .is_some_and(|s| candidates.iter().any(|n| n == s)),
            ChoiceKind::Input {
                n_candidates,
                n_chosen,
                ..
            } => as_indices(v).is_some_and(|idx| {
                let mut s = idx.clone();
                s.sort();
                s.dedup();
                idx.len() == *n_chosen
                    && s.len() == idx.len()
                    && idx.iter().all(|i| i < n_candidates)
            }),
            ChoiceKind::Value { values } => values.iter().any(|x| same_value(x, v)),
            ChoiceKind::Repeat { depths } => {
                v.as_u64().is_some_and(|d| depths.contains(&(d as usize)))
            }
        };
        if !ok {
            return Err(ArchError::Invalid {
                label: c.label.clone(),
                value: v.to_string(),
                expected: expected(c),
            });
        }
    }
    Ok(())
}

/// A uniformly random decision of one choice.
pub fn random_decision(c: &Choice, rng: &mut Rng) -> Value {
    match &c.kind {
        ChoiceKind::Layer { candidates } => {
            Value::from(candidates[rng.below(candidates.len())].clone())
        }
        ChoiceKind::Input {
            n_candidates,
            n_chosen,
            ..
        } => {
            let mut idx: Vec<usize> = (0..*n_candidates).collect();
            rng.shuffle(&mut idx);
            idx.truncate(*n_chosen);
            idx.sort();
            Value::from(idx)
        }
        ChoiceKind::Value { values } => values[rng.below(values.len())].clone(),
        ChoiceKind::Repeat { depths } => Value::from(depths[rng.below(depths.len())]),
    }
}

/// A uniformly random architecture of the space. The ops of edges that no input choice
/// picks are drawn (so a seed gives the same network as before they were left out) and
/// then left out.
pub fn random(choices: &[Choice], rng: &mut Rng) -> Architecture {
    let mut a = Architecture::new();
    for c in choices {
        if in_built_block(c, &a) {
            a.insert(c.label.clone(), random_decision(c, rng));
        }
    }
    made_only(choices, a)
}

/// `arch` without the choices it does not make ([`active_flags`]): the architecture of
/// the network it builds.
pub fn made_only(choices: &[Choice], mut arch: Architecture) -> Architecture {
    for (c, on) in choices.iter().zip(active_flags(choices, &arch)) {
        if !on {
            arch.remove(&c.label);
        }
    }
    arch
}

/// Reads an architecture from a JSON file: a `{label: choice}` map, or a run's
/// `best.json`, whose `arch` field holds that map (no choice's decision is a map, so a
/// label `arch` with a plain decision is read as a label).
pub fn load(path: &Path) -> Result<Architecture, ArchError> {
    let file = |reason: String| ArchError::File {
        path: path.display().to_string(),
        reason,
    };
    let text = crate::json::read_file(path).map_err(|e| file(e.to_string()))?;
    let mut v: Value = crate::json::parse(&text).map_err(|e| file(format!("not JSON: {e}")))?;
    if let Some(inner) = v.get_mut("arch").filter(|a| a.is_object()) {
        v = inner.take();
    }
    serde_json::from_value(v).map_err(|e| file(format!("not a {{label: choice}} JSON map: {e}")))
}

/// Writes an architecture as pretty JSON.
pub fn save(path: &Path, arch: &Architecture) -> std::io::Result<()> {
    std::fs::write(path, serde_json::to_string_pretty(arch).unwrap() + "\n")
}

#[cfg(test)]
mod tests {
    use super::super::Reduce;
    use super::*;
    use serde_json::json;

    /// Node 3 of a `darts` cell: an op per edge from states 0, 1, 2, then the input
    /// choice picking two of the edges.
    fn darts_node() -> Vec<Choice> {
        let ops: Vec<String> = (0..3).map(|i| format!("op_3_{i}")).collect();
        let mut s: Vec<Choice> = ops
            .iter()
            .map(|op| Choice {
                label: op.clone(),
                kind: ChoiceKind::Layer {
                    candidates: vec!["a".into(), "b".into(), "c".into()],
                },
                inside: None,
                edge_ops: vec![],
            })
            .collect();
        s.push(Choice {
            label: "input_3".into(),
            kind: ChoiceKind::Input {
                n_candidates: 3,
                n_chosen: 2,
                reduce: Reduce::Sum,
            },
            inside: None,
            edge_ops: ops,
        });
        s
    }

    /// Node 3 makes 3 pairs of edges x 3 x 3 ops = 27 networks (not 3^3 x 3 = 81).
    #[test]
    fn a_darts_node_counts_its_networks() {
        let space = darts_node();
        assert!((log10_size(&space) - 27f64.log10()).abs() < 1e-12);
        assert!(
            (log10_size(&choices())
                - choices()
                    .iter()
                    .map(|c| (c.size() as f64).log10())
                    .sum::<f64>())
            .abs()
                < 1e-12
        );
    }

    #[test]
    fn only_the_picked_edges_ops_are_made() {
        let space = darts_node();
        let arch = |pairs: &[(&str, Value)]| -> Architecture {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect()
        };
        let picked = arch(&[
            ("op_3_0", json!("a")),
            ("op_3_2", json!("c")),
            ("input_3", json!([0, 2])),
        ]);
        assert_eq!(active_flags(&space, &picked), vec![true, false, true, true]);
        validate(&space, &picked).unwrap();
        // Naming the unbuilt edge's op as well is still accepted, and is left out of
        // the network's architecture.
        let mut named = picked.clone();
        named.insert("op_3_1".into(), json!("b"));
        validate(&space, &named).unwrap();
        assert_eq!(made_only(&space, named), picked);
        // A picked edge's op is still required.
        let mut short = picked.clone();
        short.remove("op_3_2");
        assert!(matches!(
            validate(&space, &short),
            Err(ArchError::Missing { label, .. }) if label == "op_3_2"
        ));
        // A random architecture names the picked edges' ops only.
        let mut rng = Rng::new(5);
        for _ in 0..20 {
            let a = random(&space, &mut rng);
            validate(&space, &a).unwrap();
            assert_eq!(a.len(), 3, "{a:?}");
            let idx = as_indices(&a["input_3"]).unwrap();
            assert!(idx.iter().all(|i| a.contains_key(&format!("op_3_{i}"))));
        }
    }

    fn choices() -> Vec<Choice> {
        vec![
            Choice {
                label: "conv".into(),
                kind: ChoiceKind::Layer {
                    candidates: vec!["a".into(), "b".into()],
                },
                inside: None,
                edge_ops: vec![],
            },
            Choice {
                label: "skip".into(),
                kind: ChoiceKind::Input {
                    n_candidates: 3,
                    n_chosen: 2,
                    reduce: Reduce::Sum,
                },
                inside: None,
                edge_ops: vec![],
            },
            Choice {
                label: "depth".into(),
                kind: ChoiceKind::Repeat { depths: vec![1, 2] },
                inside: None,
                edge_ops: vec![],
            },
            Choice {
                label: "width1".into(),
                kind: ChoiceKind::Value {
                    values: vec![Value::from(8), Value::from(16)],
                },
                inside: Some(("depth".into(), 1)),
                edge_ops: vec![],
            },
        ]
    }

    fn arch(s: &str) -> Architecture {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn validation_names_the_label_and_value() {
        let c = choices();
        assert_eq!(
            validate(&c, &arch(r#"{"conv":"a","skip":[0,2],"depth":1}"#)),
            Ok(())
        );
        assert_eq!(
            validate(
                &c,
                &arch(r#"{"conv":"a","skip":[0,2],"depth":2,"width1":16.0}"#)
            ),
            Ok(())
        );
        let e = validate(&c, &arch(r#"{"conv":"c","skip":[0,2],"depth":1}"#)).unwrap_err();
        assert!(
            e.to_string().contains("`conv`") && e.to_string().contains("\"c\""),
            "{e}"
        );
        let e = validate(&c, &arch(r#"{"conv":"a","skip":[0,0],"depth":1}"#)).unwrap_err();
        assert!(e.to_string().contains("`skip`"), "{e}");
        let e = validate(&c, &arch(r#"{"conv":"a","skip":[0,3],"depth":1}"#)).unwrap_err();
        assert!(e.to_string().contains("[0,3]"), "{e}");
        let e = validate(&c, &arch(r#"{"conv":"a","skip":[0,1],"depth":2}"#)).unwrap_err();
        assert!(
            matches!(e, ArchError::Missing { ref label, .. } if label == "width1"),
            "{e}"
        );
        let e = validate(&c, &arch(r#"{"conv":"a","skip":[0,1],"depth":1,"zz":1}"#)).unwrap_err();
        assert!(e.to_string().contains("`zz`"), "{e}");
        let e = validate(&c, &arch(r#"{"conv":"a","skip":[0,1],"depth":3}"#)).unwrap_err();
        assert!(e.to_string().contains("`depth`"), "{e}");
    }

    #[test]
    fn a_runs_best_json_loads_as_its_architecture() {
        let dir = std::env::temp_dir().join(format!("nas-types-arch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let best = dir.join("best.json");
        std::fs::write(
            &best,
            r#"{"arch": {"conv": "b", "skip": [0, 2]}, "metrics": {"accuracy": 0.9}}"#,
        )
        .unwrap();
        assert_eq!(
            load(&best).unwrap(),
            arch(r#"{"conv": "b", "skip": [0, 2]}"#)
        );
        // A choice labelled `arch` is a label like any other.
        let plain = dir.join("plain.json");
        std::fs::write(&plain, r#"{"arch": "wide", "conv": "a"}"#).unwrap();
        assert_eq!(
            load(&plain).unwrap(),
            arch(r#"{"arch": "wide", "conv": "a"}"#)
        );
        std::fs::write(&plain, "[1, 2]").unwrap();
        let e = load(&plain).unwrap_err().to_string();
        assert!(
            e.contains("plain.json") && e.contains("{label: choice}"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn random_architectures_are_valid() {
        let c = choices();
        let mut rng = Rng::new(3);
        for _ in 0..100 {
            let a = random(&c, &mut rng);
            validate(&c, &a).unwrap();
        }
    }
}
