//! Helpers for testing strategies without training anything: synthetic spaces, a
//! synthetic objective with a hidden target, a driver with asks in flight, and a
//! random-search baseline to beat.

use crate::decisions;
use crate::{json, Architecture, Choice, ChoiceKind, Metrics, Reduce, Rng, Setup, Strategy, Value};

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
