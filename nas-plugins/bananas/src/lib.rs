//! BANANAS, after Colin White, Willie Neiswanger and Yash Savani, "BANANAS: Bayesian
//! Optimization with Neural Architectures for Neural Architecture Search" (AAAI 2021);
//! reference: the authors' `naszilla` code (`bananas` in `nas_algorithms.py`,
//! `get_candidates` in `nas_benchmarks.py`, `acq_fn` in `acquisition_functions.py`).
//!
//! The first `initial` asks are random architectures not queried before. Then rounds:
//! an ensemble of MLPs (`nas-predict`'s, `members` networks, each from its own random
//! start) is fitted on every architecture told so far (its input the path encoding on
//! cell spaces, one-hot otherwise; its target the architecture's mean accuracy); the
//! candidates are about `candidates` new mutants of the best told architectures (the
//! best `mutate_best`, then the next ones while fewer were found, up to 5 times as many:
//! each active choice of a parent changes with probability `mutation_prob`; a mutant
//! already queried or already a candidate is dropped); each candidate's accuracy is drawn
//! from a normal with the ensemble's mean and spread for it (independent Thompson
//! sampling), and the `per_round` highest draws are asked.
//!
//! An architecture's score is the mean of every accuracy told for it. `reevaluate_last`
//! (default 0, not in the paper): the last that many asks of the budget re-query, of the
//! `reevaluate_top` best by mean score, the one scored fewest times, as `local` does;
//! with `reevaluate_predicted` (default 0) the pool also holds that many told
//! architectures the ensemble (fitted once when re-evaluation starts) predicts best, so
//! a good architecture with one unlucky score gets another chance.
//!
//! Two end games, not in the paper, for a noisy evaluator (where one score of an
//! architecture misleads by about as much as the best few differ):
//! - `polish_last` (default 0): those asks (before the race's) first go to the leader's
//!   neighbours: while the architecture with the best mean score has a neighbour (one
//!   active choice changed) not yet asked, the one the ensemble (fitted on every tell)
//!   predicts best is asked; when it has none, rounds go on as above.
//! - `race_last` (default 0): those last asks race the leader (the best mean score, what
//!   the host returns) against its strongest challenger, the other told architecture
//!   with the highest upper bound `mean + race_z * sigma / sqrt(n)` (`n` its scores, asks
//!   out included; `sigma` the noise of one score, the within-architecture standard
//!   deviation pooled over every architecture told more than once, 0 before any was),
//!   asking whichever of the two has been scored fewer times (the leader on a tie):
//!   LUCB1's rule (Kalyanakrishnan et al., 2012) for finding the best arm. A lucky single
//!   score is asked again as soon as it leads; an unlucky one of a good architecture
//!   gets another as soon as its bound is the highest below the leader.
//!
//! Asks may run ahead of tells: a round starts when its asks are all out; the next round
//! is fitted on what has been told by then. `ask` answers `None` when neither mutation
//! nor 1000 random draws find anything new.
//!
//! Config: `initial` (10), `per_round` (10), `candidates` (100), `mutate_best` (1),
//! `members` (5), `mutation_prob` (0.25, in (0, 1]), `reevaluate_last` (0),
//! `reevaluate_top` (5), `reevaluate_predicted` (0), `encoding` (`"path"`, the paper's,
//! on cell spaces; `"onehot"`: each choice's option one-hot), `polish_last` (0),
//! `race_last` (0; not with `reevaluate_last`), `race_z` (2, in [0, 100]); counts
//! 1..=100000 (`reevaluate_last`, `polish_last` and `race_last` from 0), and the host's
//! hard limits (which the host applies; the search ignores them).

use nas_predict::{Encoding, MlpConfig, MlpEnsemble, OneHot, PathEncoding, Surrogate};
use nas_strategies::observed::{Observations, Observed};
use nas_strategies::{
    check_config_fields, config_count, config_field, decisions, export_strategy, serde_json,
    Architecture, Choice, Metrics, Rng, Setup, Strategy, Value,
};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// Random draws an ask tries before it gives up finding an architecture not queried.
const DRAWS: usize = 1000;

#[derive(Clone, Debug, Serialize, Deserialize)]
struct State {
    rng: [u64; 4],
    entries: Vec<Observed>,
    queue: Vec<Vec<usize>>,
    asked: usize,
    #[serde(default)]
    predicted_best: Option<Vec<usize>>,
}

pub struct Bananas {
    space: Vec<Choice>,
    encoding: Box<dyn Encoding + Send>,
    initial: usize,
    per_round: usize,
    candidates: usize,
    mutate_best: usize,
    members: usize,
    mutation_prob: f32,
    reevaluate_last: usize,
    reevaluate_top: usize,
    reevaluate_predicted: usize,
    polish_last: usize,
    race_last: usize,
    race_z: f64,
    budget: usize,
    rng: Rng,
    obs: Observations,
    /// The current round's picks still to ask, the best last.
    queue: Vec<Vec<usize>>,
    asked: usize,
    /// The `reevaluate_predicted` told architectures the ensemble ranks best, fixed when
    /// re-evaluation starts.
    predicted_best: Option<Vec<usize>>,
}

impl Bananas {
    fn propose(&mut self, d: Vec<usize>) -> Architecture {
        self.asked += 1;
        self.obs.ask(d).1
    }

    fn unseen_random(&mut self) -> Option<Vec<usize>> {
        self.obs.unseen_random(&mut self.rng, DRAWS)
    }

    /// Told entries, best mean score first (the earlier on a tie).
    fn ranked(&self) -> Vec<usize> {
        self.obs.ranked()
    }

    /// The decisions the ensemble is fitted on now (for tests).
    #[doc(hidden)]
    pub fn fitted_on(&mut self) -> Result<Vec<Vec<usize>>, String> {
        let (rows, _) = self.fit()?;
        Ok(rows
            .iter()
            .map(|&i| self.obs.get(i).decisions.clone())
            .collect())
    }

    /// A mutant of `d`: each active choice changes to another of its options with
    /// probability `mutation_prob`.
    fn mutate(&mut self, d: &[usize]) -> Vec<usize> {
        let active = decisions::active_mask(&self.space, d);
        let mut m = d.to_vec();
        for (i, c) in self.space.iter().enumerate() {
            let n = c.size();
            if active[i] && n > 1 && self.rng.bernoulli(self.mutation_prob) {
                let o = self.rng.below(n - 1);
                m[i] = if o >= d[i] { o + 1 } else { o };
            }
        }
        decisions::carry_edge_ops(&self.space, d, &mut m);
        m
    }

    /// Fits the ensemble on every told architecture and fills the queue with the round's
    /// picks; false when no candidate was found.
    fn plan_round(&mut self) -> Result<bool, String> {
        let ranked = self.ranked();
        // Candidates not asked before, each once.
        let mut seen: HashSet<String> = HashSet::new();
        let mut cands: Vec<Vec<usize>> = vec![];
        // As the reference: the best `mutate_best` parents, more (up to 5 times as many)
        // while fewer than `candidates` were found.
        let tries = (self.candidates / self.mutate_best).max(1);
        for &p in ranked.iter().take(self.mutate_best * 5) {
            if cands.len() >= self.candidates {
                break;
            }
            let parent = self.obs.get(p).decisions.clone();
            for _ in 0..tries {
                let m = self.mutate(&parent);
                if !self.obs.contains(&m) && seen.insert(decisions::key(&self.space, &m)) {
                    cands.push(m);
                }
            }
        }
        if cands.is_empty() {
            return Ok(false);
        }
        let (_, model) = self.fit()?;
        let xc: Vec<Vec<f32>> = cands.iter().map(|d| self.encoding.encode(d)).collect();
        let mut draws: Vec<(f64, usize)> = model
            .predict(&xc)
            .iter()
            .enumerate()
            .map(|(i, p)| (p.mean + p.std * self.rng.normal() as f64, i))
            .collect();
        draws.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        self.queue = draws
            .iter()
            .take(self.per_round)
            .rev()
            .map(|&(_, i)| cands[i].clone())
            .collect();
        Ok(true)
    }

    /// Fits the ensemble on every told architecture with a result (a failed trial's 0
    /// among real accuracies would pull the fit; while every one failed, on those):
    /// the entries fitted on and the model.
    fn fit(&mut self) -> Result<(Vec<usize>, MlpEnsemble), String> {
        let all = self.ranked();
        let with_result: Vec<usize> = all
            .iter()
            .copied()
            .filter(|&i| self.obs.get(i).result_mean().is_some())
            .collect();
        let ranked = if with_result.is_empty() {
            all
        } else {
            with_result
        };
        let x: Vec<Vec<f32>> = ranked
            .iter()
            .map(|&i| self.encoding.encode(&self.obs.get(i).decisions))
            .collect();
        let y: Vec<f64> = ranked
            .iter()
            .map(|&i| {
                let e = self.obs.get(i);
                e.result_mean().unwrap_or_else(|| e.score())
            })
            .collect();
        let cfg = MlpConfig {
            members: self.members,
            ..MlpConfig::default()
        };
        let mut model = MlpEnsemble::new(cfg, self.rng.next_u64())?;
        model.fit(&x, &y)?;
        Ok((ranked, model))
    }

    /// The architecture a re-evaluating ask takes: of the `reevaluate_top` best by mean
    /// score and the `reevaluate_predicted` best by the ensemble's prediction, the one
    /// scored fewest times (counting asks out), the better scored on a tie.
    fn reevaluation(&mut self) -> Result<Option<usize>, String> {
        if self.reevaluate_predicted > 0 && self.predicted_best.is_none() {
            let (ranked, model) = self.fit()?;
            let x: Vec<Vec<f32>> = ranked
                .iter()
                .map(|&i| self.encoding.encode(&self.obs.get(i).decisions))
                .collect();
            let p = model.predict(&x);
            let mut order: Vec<usize> = (0..ranked.len()).collect();
            order.sort_by(|&a, &b| p[b].mean.total_cmp(&p[a].mean).then(a.cmp(&b)));
            self.predicted_best = Some(
                order
                    .into_iter()
                    .take(self.reevaluate_predicted)
                    .map(|j| ranked[j])
                    .collect(),
            );
        }
        let mut pool: Vec<usize> = self.ranked();
        pool.truncate(self.reevaluate_top);
        for &i in self.predicted_best.iter().flatten() {
            if !pool.contains(&i) {
                pool.push(i);
            }
        }
        Ok(self.obs.least_scored(pool))
    }

    /// The leader's neighbour a polishing ask takes: of those not asked before, the one
    /// the ensemble predicts best (the first in choice order on a tie).
    fn polish(&mut self) -> Result<Option<Vec<usize>>, String> {
        let Some(&lead) = self.ranked().first() else {
            return Ok(None);
        };
        let d = self.obs.get(lead).decisions.clone();
        let mut near = self.obs.unseen_neighbours(&d);
        if near.is_empty() {
            return Ok(None);
        }
        let (_, model) = self.fit()?;
        let x: Vec<Vec<f32>> = near.iter().map(|d| self.encoding.encode(d)).collect();
        let p = model.predict(&x);
        let best = (0..near.len())
            .max_by(|&a, &b| p[a].mean.total_cmp(&p[b].mean).then(b.cmp(&a)))
            .expect("a neighbour");
        Ok(Some(near.swap_remove(best)))
    }

    /// The architecture a racing ask takes (LUCB1): of the leader and the challenger with
    /// the highest upper bound, the one scored fewer times.
    fn race(&self) -> Option<usize> {
        let ranked = self.ranked();
        let (&lead, rest) = ranked.split_first()?;
        let sigma = self.obs.noise_variance().unwrap_or(0.0).sqrt();
        let bound = |i: usize| {
            let e = self.obs.get(i);
            e.score() + self.race_z * sigma / ((e.told + e.out) as f64).sqrt()
        };
        let challenger = rest
            .iter()
            .copied()
            .max_by(|&a, &b| bound(a).total_cmp(&bound(b)).then(b.cmp(&a)));
        match challenger {
            Some(c) => self.obs.least_scored(vec![lead, c]),
            None => Some(lead),
        }
    }

    fn state(&self) -> State {
        State {
            rng: self.rng.state(),
            entries: self.obs.entries().to_vec(),
            queue: self.queue.clone(),
            asked: self.asked,
            predicted_best: self.predicted_best.clone(),
        }
    }
}

impl Strategy for Bananas {
    fn new(setup: &Setup) -> Result<Self, String> {
        let c = &setup.config;
        check_config_fields(
            c,
            "bananas",
            &[
                "initial",
                "per_round",
                "candidates",
                "mutate_best",
                "members",
                "mutation_prob",
                "reevaluate_last",
                "reevaluate_top",
                "reevaluate_predicted",
                "encoding",
                "polish_last",
                "race_last",
                "race_z",
            ],
        )?;
        decisions::check_space(&setup.space)?;
        let mutation_prob: f32 = config_field(c, "mutation_prob", 0.25)?;
        if !(mutation_prob > 0.0 && mutation_prob <= 1.0) {
            return Err(format!(
                "config field `mutation_prob`: {mutation_prob} is not valid (must be in (0, 1])"
            ));
        }
        let encoding: Box<dyn Encoding + Send> =
            match config_field(c, "encoding", "path".to_string())?.as_str() {
                "path" => match PathEncoding::new(&setup.space) {
                    Ok(p) => Box::new(p),
                    Err(_) => Box::new(OneHot::new(&setup.space)),
                },
                "onehot" => Box::new(OneHot::new(&setup.space)),
                other => {
                    return Err(format!(
                        "config field `encoding`: {other:?} is not an encoding (path, onehot)"
                    ))
                }
            };
        let race_z: f64 = config_field(c, "race_z", 2.0)?;
        if !(0.0..=100.0).contains(&race_z) {
            return Err(format!(
                "config field `race_z`: {race_z} is not valid (must be in [0, 100])"
            ));
        }
        let reevaluate_last = config_count(c, "reevaluate_last", 0, 0, 100_000)?;
        let race_last = config_count(c, "race_last", 0, 0, 100_000)?;
        if reevaluate_last > 0 && race_last > 0 {
            return Err(format!(
                "config fields `reevaluate_last` ({reevaluate_last}) and `race_last` \
                 ({race_last}): set one of the two end games"
            ));
        }
        Ok(Bananas {
            space: setup.space.clone(),
            encoding,
            initial: config_count(c, "initial", 10, 1, 100_000)?,
            per_round: config_count(c, "per_round", 10, 1, 100_000)?,
            candidates: config_count(c, "candidates", 100, 1, 100_000)?,
            mutate_best: config_count(c, "mutate_best", 1, 1, 100_000)?,
            members: config_count(c, "members", 5, 1, 100)?,
            mutation_prob,
            reevaluate_last,
            reevaluate_top: config_count(c, "reevaluate_top", 5, 1, 100_000)?,
            reevaluate_predicted: config_count(c, "reevaluate_predicted", 0, 0, 100_000)?,
            polish_last: config_count(c, "polish_last", 0, 0, 100_000)?,
            race_last,
            race_z,
            budget: setup.budget,
            rng: Rng::new(setup.seed),
            obs: Observations::new(&setup.space),
            queue: vec![],
            asked: 0,
            predicted_best: None,
        })
    }

    fn ask(&mut self) -> Result<Option<Architecture>, String> {
        // The end game's asks (at most one of the two is set), and the polish before it.
        let end = self.race_last.max(self.reevaluate_last);
        let left = self.budget.saturating_sub(self.asked);
        if end > 0 && left <= end {
            let again = if self.race_last > 0 {
                self.race()
            } else {
                self.reevaluation()?
            };
            if let Some(i) = again {
                let d = self.obs.get(i).decisions.clone();
                return Ok(Some(self.propose(d)));
            }
        } else if left > end && left <= end + self.polish_last {
            if let Some(d) = self.polish()? {
                return Ok(Some(self.propose(d)));
            }
        }
        if self.asked < self.initial || self.ranked().is_empty() {
            return Ok(self.unseen_random().map(|d| self.propose(d)));
        }
        while let Some(d) = self.queue.pop() {
            if !self.obs.contains(&d) {
                return Ok(Some(self.propose(d)));
            }
        }
        if self.plan_round()? {
            if let Some(d) = self.queue.pop() {
                return Ok(Some(self.propose(d)));
            }
        }
        Ok(self.unseen_random().map(|d| self.propose(d)))
    }

    fn tell(&mut self, arch: &Architecture, m: &Metrics) -> Result<(), String> {
        self.obs.tell(arch, m, "bananas").map(|_| ())
    }

    fn save(&self) -> Result<Value, String> {
        serde_json::to_value(self.state()).map_err(|e| e.to_string())
    }

    fn load(&mut self, state: Value) -> Result<(), String> {
        let s: State = serde_json::from_value(state).map_err(|e| format!("state: {e}"))?;
        let sizes = decisions::sizes(&self.space);
        let n = sizes.len();
        if s.queue.iter().any(|d| !decisions::fits(&sizes, d)) {
            return Err(format!(
                "state: an architecture that is not of this space ({n} choices)"
            ));
        }
        let obs = Observations::from_entries(&self.space, s.entries)?;
        if let Some(i) = s.predicted_best.iter().flatten().find(|&&i| i >= obs.len()) {
            return Err(format!("state: architecture {i} of {}", obs.len()));
        }
        self.rng = Rng::restored(s.rng).map_err(|e| format!("state: `rng`: {e}"))?;
        self.obs = obs;
        self.queue = s.queue;
        self.asked = s.asked;
        self.predicted_best = s.predicted_best;
        Ok(())
    }
}

export_strategy!(Bananas, "bananas", "0.1.1");
