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

/// Whether a choice is active: choices inside a `Repeat` exist only for built blocks.
fn active(c: &Choice, arch: &Architecture) -> bool {
    match &c.inside {
        None => true,
        Some((rep, i)) => arch
            .get(rep)
            .and_then(|v| v.as_u64())
            .is_some_and(|d| d as usize > *i),
    }
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
    for c in choices {
        if !active(c, arch) {
            continue;
        }
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

/// A uniformly random architecture of the space.
pub fn random(choices: &[Choice], rng: &mut Rng) -> Architecture {
    let mut a = Architecture::new();
    for c in choices {
        if active(c, &a) {
            a.insert(c.label.clone(), random_decision(c, rng));
        }
    }
    a
}

/// Reads an architecture from a JSON file: a `{label: choice}` map, or a run's
/// `best.json`, whose `arch` field holds that map (no choice's decision is a map, so a
/// label `arch` with a plain decision is read as a label).
pub fn load(path: &Path) -> Result<Architecture, ArchError> {
    let file = |reason: String| ArchError::File {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| file(e.to_string()))?;
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
