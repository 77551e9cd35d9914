//! Helpers for testing strategies without training anything: synthetic spaces, a
//! synthetic objective with a hidden target, a driver with asks in flight, and a
//! random-search baseline to beat.

use crate::decisions;
use crate::{json, Architecture, Choice, ChoiceKind, Metrics, Reduce, Rng, Setup, Strategy, Value};
use nas_core::space::arch::{same_value, validate};

/// `n` layer choices with `k` candidates each.
pub fn layer_space(n: usize, k: usize) -> Vec<Choice> {
    (0..n)
        .map(|i| Choice {
            label: format!("op{i}"),
            kind: ChoiceKind::Layer {
                candidates: (0..k).map(|j| format!("c{j}")).collect(),
            },
            inside: None,
        })
        .collect()
}

/// Layer, input (2 of 4), value and repeat choices, with choices scoped in the repeat.
pub fn mixed_space() -> Vec<Choice> {
    let mut s = layer_space(3, 4);
    s.push(Choice {
        label: "skip".into(),
        kind: ChoiceKind::Input {
            n_candidates: 4,
            n_chosen: 2,
            reduce: Reduce::Sum,
        },
        inside: None,
    });
    s.push(Choice {
        label: "width".into(),
        kind: ChoiceKind::Value {
            values: vec![json!(8), json!(16), json!(0.5)],
        },
        inside: None,
    });
    s.push(Choice {
        label: "depth".into(),
        kind: ChoiceKind::Repeat {
            depths: vec![1, 2, 3],
        },
        inside: None,
    });
    for b in 0..3 {
        s.push(Choice {
            label: format!("block{b}/op"),
            kind: ChoiceKind::Layer {
                candidates: vec!["a".into(), "b".into(), "c".into()],
            },
            inside: Some(("depth".into(), b)),
        });
    }
    s
}

pub fn setup(space: Vec<Choice>, config: Value, seed: u64, budget: usize) -> Setup {
    Setup {
        space,
        config,
        seed,
        budget,
    }
}

/// Accuracy = the fraction of active choices equal to a hidden target, plus a little
/// deterministic noise (below 0.02) that depends on the architecture.
pub struct Objective {
    pub space: Vec<Choice>,
    pub target: Vec<usize>,
}

impl Objective {
    pub fn new(space: &[Choice], seed: u64) -> Objective {
        let mut rng = Rng::new(seed ^ 0xDEAD_BEEF);
        let target = space.iter().map(|c| rng.below(c.size())).collect();
        Objective {
            space: space.to_vec(),
            target,
        }
    }

    pub fn accuracy(&self, arch: &Architecture) -> f64 {
        nas_core::space::arch::validate(&self.space, arch).expect("valid architecture");
        let d = decisions::from_arch(&self.space, arch).unwrap();
        let active = decisions::active_mask(&self.space, &d);
        let (mut hit, mut n) = (0, 0);
        for i in 0..d.len() {
            if active[i] {
                n += 1;
                hit += (d[i] == self.target[i]) as usize;
            }
        }
        let key = decisions::key(&self.space, &d);
        let h = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
        });
        hit as f64 / n as f64 + 0.02 * ((h >> 11) as f64 / (1u64 << 53) as f64)
    }

    pub fn metrics(&self, arch: &Architecture) -> Metrics {
        Metrics {
            accuracy: self.accuracy(arch),
            ..Default::default()
        }
    }
}

/// Runs a strategy for `budget` trials with `in_flight` asks outstanding at a time (told
/// in reverse order); returns every accuracy in order of the tells.
pub fn drive<S: Strategy>(s: &mut S, obj: &Objective, budget: usize, in_flight: usize) -> Vec<f64> {
    let mut accs = vec![];
    while accs.len() < budget {
        let n = in_flight.min(budget - accs.len());
        let mut asked = vec![];
        for _ in 0..n {
            let a = s.ask().unwrap().expect("an architecture");
            nas_core::space::arch::validate(&obj.space, &a).unwrap();
            asked.push(a);
        }
        for a in asked.iter().rev() {
            let m = obj.metrics(a);
            accs.push(m.accuracy);
            s.tell(a, &m).unwrap();
        }
    }
    accs
}

/// Random search's accuracies over `budget` uniform draws.
pub fn random_search(obj: &Objective, seed: u64, budget: usize) -> Vec<f64> {
    let mut rng = Rng::new(seed.wrapping_mul(7919).wrapping_add(17));
    (0..budget)
        .map(|_| obj.accuracy(&crate::random_architecture(&obj.space, &mut rng)))
        .collect()
}

pub fn best(xs: &[f64]) -> f64 {
    xs.iter().cloned().fold(f64::MIN, f64::max)
}

pub fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

/// A layer choice with candidates `op0..`, inside a repeat block when `inside` is set.
pub fn layer(label: &str, n: usize, inside: Option<(&str, usize)>) -> Choice {
    Choice {
        label: label.into(),
        kind: ChoiceKind::Layer {
            candidates: (0..n).map(|i| format!("op{i}")).collect(),
        },
        inside: inside.map(|(r, i)| (r.to_string(), i)),
    }
}

/// A choice of any kind, inside a repeat block when `inside` is set.
pub fn choice(label: &str, kind: ChoiceKind, inside: Option<(&str, usize)>) -> Choice {
    Choice {
        label: label.into(),
        kind,
        inside: inside.map(|(r, i)| (r.to_string(), i)),
    }
}

/// `n_layers` layer choices of `width` candidates, a 2-of-4 input choice, and a repeat
/// of depth 1..3 with a choice in each block and a nested repeat in block 1.
pub fn nested_space(n_layers: usize, width: usize) -> Vec<Choice> {
    let mut s: Vec<Choice> = (0..n_layers)
        .map(|i| layer(&format!("l{i}"), width, None))
        .collect();
    s.extend([
        choice(
            "skip",
            ChoiceKind::Input {
                n_candidates: 4,
                n_chosen: 2,
                reduce: Reduce::Sum,
            },
            None,
        ),
        choice(
            "depth",
            ChoiceKind::Repeat {
                depths: vec![1, 2, 3],
            },
            None,
        ),
        layer("blk0/op", 4, Some(("depth", 0))),
        choice(
            "blk1/width",
            ChoiceKind::Value {
                values: vec![json!(8), json!(16), json!(16.0)],
            },
            Some(("depth", 1)),
        ),
        choice(
            "blk1/inner",
            ChoiceKind::Repeat { depths: vec![0, 1] },
            Some(("depth", 1)),
        ),
        layer("blk1/inner0/op", 3, Some(("blk1/inner", 0))),
        layer("blk2/op", 4, Some(("depth", 2))),
    ]);
    s
}

/// The fraction of choices (of either architecture) on which `a` agrees with `target`.
pub fn agreement(a: &Architecture, target: &Architecture) -> f64 {
    let mut labels: Vec<&String> = a.keys().chain(target.keys()).collect();
    labels.sort();
    labels.dedup();
    let hits = labels
        .iter()
        .filter(|l| match (a.get(**l), target.get(**l)) {
            (Some(x), Some(y)) => same_value(x, y),
            _ => false,
        })
        .count();
    hits as f64 / labels.len() as f64
}

/// Metrics with only an accuracy.
pub fn metrics(accuracy: f64) -> Metrics {
    Metrics {
        accuracy,
        ..Default::default()
    }
}

/// Runs `budget` trials, `batch` asks in flight at a time, told in reverse order;
/// returns the best accuracy and checks every ask against the space.
pub fn run_validating<S: Strategy>(
    s: &mut S,
    space: &[Choice],
    budget: usize,
    batch: usize,
    f: impl Fn(&Architecture) -> f64,
) -> f64 {
    let mut best: f64 = 0.0;
    let mut done = 0;
    while done < budget {
        let n = batch.min(budget - done);
        let asked: Vec<Architecture> = (0..n).map(|_| s.ask().unwrap().unwrap()).collect();
        for a in asked.iter().rev() {
            validate(space, a).unwrap_or_else(|e| panic!("{e}: {a:?}"));
            let acc = f(a);
            best = best.max(acc);
            s.tell(a, &metrics(acc)).unwrap();
        }
        done += n;
    }
    best
}
