//! The architectures a strategy has asked, each once, with the accuracies told for it:
//! what strategies that query an architecture again (re-evaluation on a noisy evaluator)
//! or must never query one twice keep. An architecture's score is the mean of every
//! accuracy told for it, as the host ranks a run's architectures.

use crate::{decisions, Architecture, Choice, Metrics, Rng};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// One architecture asked, with its scores so far.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Observed {
    pub decisions: Vec<usize>,
    /// The sum of the accuracies told (a non-finite one counts as 0).
    pub sum: f64,
    /// The sum of the squared accuracies told (absent from states saved before it:
    /// then 0, and [`Observed::variance`] ignores the entry).
    #[serde(default)]
    pub sumsq: f64,
    pub told: usize,
    /// Asks of it not yet told.
    pub out: usize,
    /// Tells of it that were failed trials (no result: counted in `told` at accuracy
    /// 0, the worst, which a predictor may leave out of its data).
    #[serde(default)]
    pub failed: usize,
}

impl Observed {
    /// The mean of the results told (failed tells, which add 0 to `sum`, left out);
    /// `None` while none was told or every tell failed.
    pub fn result_mean(&self) -> Option<f64> {
        let results = self.told.saturating_sub(self.failed);
        (results > 0).then(|| self.sum / results as f64)
    }

    /// The mean accuracy told; minus infinity before the first tell.
    pub fn score(&self) -> f64 {
        if self.told == 0 {
            f64::NEG_INFINITY
        } else {
            self.sum / self.told as f64
        }
    }

    /// The unbiased variance of the accuracies told, when at least two were and their
    /// squares were kept.
    pub fn variance(&self) -> Option<f64> {
        if self.told < 2 || self.sumsq <= 0.0 {
            return None;
        }
        let n = self.told as f64;
        let mean = self.sum / n;
        Some(((self.sumsq - n * mean * mean) / (n - 1.0)).max(0.0))
    }
}

/// Every architecture asked, in the order first asked (an index names one for good),
/// found by its decisions.
#[derive(Clone, Debug, Default)]
pub struct Observations {
    space: Vec<Choice>,
    entries: Vec<Observed>,
    /// Decision key -> index into `entries`.
    index: HashMap<String, usize>,
}

impl Observations {
    pub fn new(space: &[Choice]) -> Observations {
        Observations {
            space: space.to_vec(),
            ..Observations::default()
        }
    }

    /// Observations read back from a saved state (what [`Observations::entries`] gave):
    /// an error when one is not an architecture of `space`.
    pub fn from_entries(space: &[Choice], entries: Vec<Observed>) -> Result<Observations, String> {
        let n = space.len();
        if let Some(e) = entries.iter().find(|e| e.decisions.len() != n) {
            return Err(format!(
                "state: an architecture of {} decisions in a space of {n} choices",
                e.decisions.len()
            ));
        }
        if let Some(e) = entries.iter().find(|e| e.failed > e.told) {
            return Err(format!(
                "state: decisions {:?} have {} failed tells of {} told",
                e.decisions, e.failed, e.told
            ));
        }
        // (An option past a choice's panicked in the encoders at the next ask.)
        let sizes = decisions::sizes(space);
        if let Some(e) = entries
            .iter()
            .find(|e| !decisions::fits(&sizes, &e.decisions))
        {
            return Err(format!(
                "state: decisions {:?} are not of this space (an option past its choice's)",
                e.decisions
            ));
        }
        let index = entries
            .iter()
            .enumerate()
            .map(|(i, e)| (decisions::key(space, &e.decisions), i))
            .collect();
        Ok(Observations {
            space: space.to_vec(),
            entries,
            index,
        })
    }

    pub fn entries(&self) -> &[Observed] {
        &self.entries
    }

    pub fn get(&self, i: usize) -> &Observed {
        &self.entries[i]
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The index of `d`, if it was asked.
    pub fn find(&self, d: &[usize]) -> Option<usize> {
        self.index.get(&decisions::key(&self.space, d)).copied()
    }

    pub fn contains(&self, d: &[usize]) -> bool {
        self.find(d).is_some()
    }

    /// Records an ask of `d` (a new entry the first time): its index and architecture.
    pub fn ask(&mut self, d: Vec<usize>) -> (usize, Architecture) {
        let i = match self.find(&d) {
            Some(i) => i,
            None => {
                self.index
                    .insert(decisions::key(&self.space, &d), self.entries.len());
                self.entries.push(Observed {
                    decisions: d,
                    sum: 0.0,
                    sumsq: 0.0,
                    told: 0,
                    out: 0,
                    failed: 0,
                });
                self.entries.len() - 1
            }
        };
        self.entries[i].out += 1;
        (
            i,
            decisions::to_arch(&self.space, &self.entries[i].decisions),
        )
    }

    /// Records the accuracy told for `arch`; an error naming `strategy` when it was never
    /// asked.
    pub fn tell(
        &mut self,
        arch: &Architecture,
        m: &Metrics,
        strategy: &str,
    ) -> Result<usize, String> {
        let d = decisions::from_arch(&self.space, arch)?;
        let Some(i) = self.find(&d) else {
            return Err(format!(
                "told an architecture {strategy} did not propose: {}",
                serde_json::to_string(arch).unwrap_or_default()
            ));
        };
        let e = &mut self.entries[i];
        let a = if m.accuracy.is_finite() {
            m.accuracy
        } else {
            0.0
        };
        e.sum += a;
        e.sumsq += a * a;
        e.told += 1;
        e.failed += m.is_failed() as usize;
        e.out = e.out.saturating_sub(1);
        Ok(i)
    }

    /// A uniformly random architecture not asked before, if one of `draws` draws finds it.
    pub fn unseen_random(&self, rng: &mut Rng, draws: usize) -> Option<Vec<usize>> {
        for _ in 0..draws {
            let a = crate::random_architecture(&self.space, rng);
            let d = decisions::from_arch(&self.space, &a).ok()?;
            if !self.contains(&d) {
                return Some(d);
            }
        }
        None
    }

    /// Every neighbour of `d` (one active choice changed to another of its options; an
    /// edge a node picks anew takes the op of the edge it dropped,
    /// [`decisions::carry_edge_ops`]) not asked before, in choice order, then option
    /// order.
    pub fn unseen_neighbours(&self, d: &[usize]) -> Vec<Vec<usize>> {
        let active = decisions::active_mask(&self.space, d);
        let mut out = vec![];
        for (i, c) in self.space.iter().enumerate() {
            for o in (0..c.size()).filter(|&o| active[i] && o != d[i]) {
                let mut n = d.to_vec();
                n[i] = o;
                decisions::carry_edge_ops(&self.space, d, &mut n);
                if !self.contains(&n) {
                    out.push(n);
                }
            }
        }
        out
    }

    /// Sorts indices best score first (the earlier asked on a tie).
    pub fn sort_best_first(&self, v: &mut [usize]) {
        v.sort_by(|&a, &b| {
            self.entries[b]
                .score()
                .total_cmp(&self.entries[a].score())
                .then(a.cmp(&b))
        });
    }

    /// Every told entry, best score first (the earlier asked on a tie).
    pub fn ranked(&self) -> Vec<usize> {
        let mut told: Vec<usize> = (0..self.entries.len())
            .filter(|&i| self.entries[i].told > 0)
            .collect();
        self.sort_best_first(&mut told);
        told
    }

    /// The noise of one evaluation, as a variance: the within-architecture variance of
    /// the scores told, pooled over every architecture told more than once; `None` while
    /// none was.
    pub fn noise_variance(&self) -> Option<f64> {
        let (mut ss, mut dof) = (0.0, 0usize);
        for e in &self.entries {
            if let Some(v) = e.variance() {
                ss += v * (e.told - 1) as f64;
                dof += e.told - 1;
            }
        }
        (dof > 0).then(|| ss / dof as f64)
    }

    /// What a re-evaluating ask takes from `pool`: the one scored fewest times, counting
    /// asks out (the better scored, then the earlier asked, on a tie).
    pub fn least_scored(&self, mut pool: Vec<usize>) -> Option<usize> {
        self.sort_best_first(&mut pool);
        pool.into_iter()
            .min_by_key(|&i| self.entries[i].told + self.entries[i].out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ChoiceKind;

    fn space() -> Vec<Choice> {
        (0..2)
            .map(|i| Choice {
                label: format!("c{i}"),
                kind: ChoiceKind::Layer {
                    candidates: vec!["a".into(), "b".into(), "c".into()],
                },
                inside: None,
                edge_ops: vec![],
            })
            .collect()
    }

    fn told(accuracy: f64) -> Metrics {
        Metrics {
            accuracy,
            ..Metrics::default()
        }
    }

    #[test]
    fn scores_are_means_and_reevaluation_takes_the_least_scored_of_the_best() {
        let s = space();
        let mut o = Observations::new(&s);
        let (a, arch_a) = o.ask(vec![0, 0]);
        let (b, arch_b) = o.ask(vec![1, 2]);
        assert_eq!((a, b), (0, 1));
        assert_eq!(o.ask(vec![0, 0]).0, a, "the same decisions, the same entry");
        o.tell(&arch_a, &told(0.9), "t").unwrap();
        o.tell(&arch_a, &told(0.5), "t").unwrap();
        o.tell(&arch_b, &told(0.6), "t").unwrap();
        assert!((o.get(a).score() - 0.7).abs() < 1e-9);
        assert_eq!(o.get(a).out, 0);
        assert_eq!(o.ranked(), vec![a, b], "a (0.7) before b (0.6)");
        // b is told once, a twice: b is re-evaluated first.
        assert_eq!(o.least_scored(vec![a, b]), Some(b));
        let other = decisions::to_arch(&s, &[2, 2]);
        let e = o.tell(&other, &told(0.1), "local").unwrap_err();
        assert!(e.contains("local did not propose"), "{e}");
        let back = Observations::from_entries(&s, o.entries().to_vec()).unwrap();
        assert_eq!(back.find(&[1, 2]), Some(b));
        let mut bad = o.entries().to_vec();
        bad[0].decisions.push(0);
        assert!(Observations::from_entries(&s, bad).is_err());
        let mut rng = Rng::new(1);
        let d = o.unseen_random(&mut rng, 1000).unwrap();
        assert!(!o.contains(&d));
    }

    #[test]
    fn the_noise_is_the_pooled_variance_within_architectures() {
        let space = space();
        let mut obs = Observations::new(&space);
        let tell = |obs: &mut Observations, d: usize, acc: f64| {
            let (_, a) = obs.ask(vec![d, 0]);
            obs.tell(&a, &told(acc), "t").unwrap();
        };
        tell(&mut obs, 2, 0.9);
        assert_eq!(
            obs.noise_variance(),
            None,
            "one score says nothing of the noise"
        );
        for (d, acc) in [(0, 0.5), (0, 0.7), (1, 0.1), (1, 0.1), (1, 0.4)] {
            tell(&mut obs, d, acc);
        }
        // (0.5, 0.7): 0.02 on 1 degree of freedom; (0.1, 0.1, 0.4): 0.03 on 2.
        let want = (0.02 + 0.03 * 2.0) / 3.0;
        assert!((obs.noise_variance().unwrap() - want).abs() < 1e-12);
        // Entries in the order first asked: 2, 0, 1.
        assert_eq!(obs.get(0).variance(), None);
        assert!((obs.get(1).variance().unwrap() - 0.02).abs() < 1e-12);
        assert!((obs.get(2).variance().unwrap() - 0.03).abs() < 1e-12);
    }
}
