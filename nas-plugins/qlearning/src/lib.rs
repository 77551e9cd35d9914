//! MetaQNN (Baker et al., 2017, "Designing Neural Network Architectures using
//! Reinforcement Learning"): tabular Q-learning, adapted to a space of ordered choices.
//!
//! An architecture is a walk through the choices in definition order: the state before
//! choice `i` is `(i, decision at choice i-1)` (a start state for the first choice) and
//! the actions are choice `i`'s options. The reward is the accuracy, given at the
//! terminal step. Actions are epsilon-greedy on a Q-table initialised to `q_init` (0.5,
//! as in the authors' code); greedy ties are broken uniformly at random.
//!
//! Epsilon schedule. The paper trains 1500, 100, 100, 100, 150, 150, 150, 150, 150 and
//! 150 models at epsilon 1.0, 0.9, 0.8, ..., 0.1 (2700 in all, 55.6% at epsilon 1). The
//! default schedule keeps those proportions and scales them to the run's budget
//! (`Setup::budget`, the number of trials): stage `k` gets `budget * count_k / 2700`
//! models, rounded by the largest remainder method (floors, then one more model each to
//! the largest remainders, ties to the earlier stage) so the stages sum exactly to the
//! budget. Stages that get no model are dropped; the rest keep their order. At budget
//! 2700 this is the paper's schedule exactly; at 150 it is 84, 6, 6, 6, 8, 8, 8, 8, 8, 8.
//! The schedule's clock counts proposed architectures (asks); asks past its end keep
//! the last stage's epsilon.
//!
//! Learning. Each tell stores (trajectory, reward) in the replay memory, updates Q along
//! that trajectory once, then replays `replay` (128, as in the paper) trajectories drawn
//! uniformly from the memory (with replacement), each updating Q backwards from its
//! terminal step: `Q(s_i, a_i) += alpha * (target - Q(s_i, a_i))`, `target = reward` at
//! the last choice and `discount * max_a Q(s_{i+1}, a)` before it. `alpha` is 0.01 and
//! `discount` 1, as in the paper.
//!
//! As in MetaQNN, a sampled architecture that was already evaluated is not proposed
//! again (the paper's counts are of unique models): it goes into the replay memory with
//! its known accuracy and the agent samples again. Such resamples do not advance the
//! epsilon schedule. A sample equal to an ask still in flight is also sampled again,
//! without any update.
//!
//! Differences from the paper and the authors' code, and why:
//! - The paper scales nothing: its schedule is for 2700 models. Here the same
//!   proportions are fitted to whatever budget the run has, so a short run still
//!   explores for 55.6% of it and then exploits.
//! - A resampled known architecture gets one Q update along its trajectory, not a full
//!   replay round of 128; and after `max_resample` (50) resamples in one ask the agent
//!   falls back to an unseen uniformly random architecture (up to 100 draws; if all are
//!   seen, the last sample is proposed again) instead of sampling forever, because a
//!   small space can be nearly exhausted by the budget.
//! - Each tell also updates Q once along the new trajectory before replaying, so every
//!   result is learned from at least once (the replay's uniform draws may miss it).
//! - The state is the choice index and the previous decision, not the paper's layer
//!   descriptions (type, depth, representation size): the space here is a fixed list of
//!   choices. Every choice is decided, repeat-scoped ones too; inactive ones are dropped
//!   from the architecture but stay in the trajectory (they are still states on the
//!   walk).
//!
//! Config: `alpha` (0.01), `discount` (1.0), `q_init` (0.5), `replay` (128, at most
//! 100000), `max_resample` (50, at most 10000), `epsilon_schedule`: replaces the default with a list of stages,
//! each `{"epsilon": e, "models": n}` (a count of asks) or `{"epsilon": e, "fraction": f}`
//! (a share of the budget; the `fraction` stages' shares are rounded by the largest
//! remainder method to their rounded total). Empty stages are dropped, as above. A bad
//! value is an error naming the field and the value.
//!
//! Save/load keeps the Q-table, the replay memory, the evaluated architectures, the asks
//! in flight, the ask count and the generator.

use nas_strategies::decisions;

use nas_strategies::{
    config_field, export_strategy, json, Architecture, Choice, Metrics, Rng, Setup, Strategy, Value,
};
use std::collections::HashMap;

/// Stated caps: trajectories replayed per tell, and resamples in one ask.
const MAX_REPLAY: usize = 100_000;
const MAX_RESAMPLE: usize = 10_000;

const FIELDS: &[&str] = &[
    "alpha",
    "discount",
    "q_init",
    "replay",
    "max_resample",
    "epsilon_schedule",
];

#[derive(Clone, Debug)]
pub struct Config {
    pub alpha: f32,
    pub discount: f32,
    q_init: f32,
    pub replay: usize,
    max_resample: usize,
    /// (epsilon, number of asks at which the stage ends), cumulative.
    pub schedule: Vec<(f64, usize)>,
}

/// MetaQNN's published schedule (Baker et al. 2017, and `epsilon_schedule` in the
/// authors' code): (epsilon, models trained at it), 2700 models in all.
const PAPER_SCHEDULE: [(f64, u64); 10] = [
    (1.0, 1500),
    (0.9, 100),
    (0.8, 100),
    (0.7, 100),
    (0.6, 150),
    (0.5, 150),
    (0.4, 150),
    (0.3, 150),
    (0.2, 150),
    (0.1, 150),
];

/// Splits `total` into integer parts proportional to `weights` by the largest remainder
/// method: each part gets `floor(total * w / sum)`, then the parts left over go one
/// each to the largest remainders (ties to the earlier part). The parts sum to `total`
/// (when some weight is positive) and each is the floor or the ceiling of its exact
/// share. Exact integer arithmetic, so the published counts come back exactly.
fn apportion(weights: &[u64], total: usize) -> Vec<usize> {
    let sum: u128 = weights.iter().map(|&w| w as u128).sum();
    if sum == 0 {
        return vec![0; weights.len()];
    }
    let t = total as u128;
    let mut parts: Vec<usize> = weights
        .iter()
        .map(|&w| (t * w as u128 / sum) as usize)
        .collect();
    let left = total - parts.iter().sum::<usize>();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    // Stable sort: equal remainders keep stage order.
    order.sort_by_key(|&j| std::cmp::Reverse(t * weights[j] as u128 % sum));
    for &j in order.iter().take(left) {
        parts[j] += 1;
    }
    parts
}

/// The same for real-valued shares `x` (models, not yet rounded) whose total is rounded
/// to the nearest count: floors, then the largest fractional parts (ties to the earlier).
fn apportion_f64(x: &[f64]) -> Vec<usize> {
    // The small slack keeps shares such as 0.1 * 30 = 3.0000000000000004 (or
    // 2.9999999999999996) at the count they mean.
    let floors: Vec<usize> = x.iter().map(|v| (v + 1e-9).floor() as usize).collect();
    let total = (x.iter().sum::<f64>() + 1e-9).round() as usize;
    let mut parts = floors.clone();
    let left = total.saturating_sub(floors.iter().sum());
    let rem: Vec<f64> = x.iter().zip(&floors).map(|(v, f)| v - *f as f64).collect();
    let mut order: Vec<usize> = (0..x.len()).collect();
    order.sort_by(|&a, &b| {
        rem[b]
            .partial_cmp(&rem[a])
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    for &j in order.iter().take(left) {
        parts[j] += 1;
    }
    parts
}

/// Stage lengths to the schedule: cumulative ends, empty stages dropped (the order of
/// the rest kept); when every stage is empty the last one is kept, so its epsilon holds.
fn to_schedule(stages: &[(f64, usize)]) -> Vec<(f64, usize)> {
    let mut out = vec![];
    let mut end = 0usize;
    for &(eps, n) in stages {
        if n > 0 {
            end = end.saturating_add(n);
            out.push((eps, end));
        }
    }
    if out.is_empty() {
        if let Some(&(eps, _)) = stages.last() {
            out.push((eps, 0));
        }
    }
    out
}

/// The default schedule: the paper's stages scaled to the budget.
fn default_schedule(budget: usize) -> Vec<(f64, usize)> {
    let weights: Vec<u64> = PAPER_SCHEDULE.iter().map(|s| s.1).collect();
    let counts = apportion(&weights, budget);
    let stages: Vec<(f64, usize)> = PAPER_SCHEDULE
        .iter()
        .zip(counts)
        .map(|(s, n)| (s.0, n))
        .collect();
    to_schedule(&stages)
}

fn parse_schedule(v: &Value, budget: usize) -> Result<Vec<(f64, usize)>, String> {
    let bad = |why: String| {
        Err(format!(
            "config field `epsilon_schedule`: {v} is not valid ({why})"
        ))
    };
    let Some(stages) = v.as_array() else {
        return bad("expected a list of {\"epsilon\", \"fraction\" or \"models\"} stages".into());
    };
    if stages.is_empty() {
        return bad("it has no stages".into());
    }
    // (epsilon, Ok(models) or Err(share of the budget in models)).
    let mut parsed: Vec<(f64, Result<usize, f64>)> = vec![];
    for s in stages {
        if !s.is_object() {
            return bad(format!("stage {s} is not an object"));
        }
        let Some(eps) = s.get("epsilon").and_then(|e| e.as_f64()) else {
            return bad(format!("stage {s} has no numeric `epsilon`"));
        };
        if !(0.0..=1.0).contains(&eps) {
            return bad(format!("epsilon {eps} is not in [0, 1]"));
        }
        let len = match (s.get("fraction"), s.get("models")) {
            (Some(f), None) => match f.as_f64() {
                Some(f) if f >= 0.0 && f.is_finite() => Err(f * budget as f64),
                _ => return bad(format!("stage {s}: `fraction` must be a number >= 0")),
            },
            (None, Some(m)) => match m.as_u64() {
                Some(m) => Ok(usize::try_from(m).unwrap_or(usize::MAX)),
                None => return bad(format!("stage {s}: `models` must be a count")),
            },
            _ => {
                return bad(format!(
                    "stage {s} needs exactly one of `fraction` and `models`"
                ))
            }
        };
        if let Some(k) = s.as_object().and_then(|o| {
            o.keys()
                .find(|k| !["epsilon", "fraction", "models"].contains(&k.as_str()))
        }) {
            return bad(format!("stage {s} has an unknown key `{k}`"));
        }
        parsed.push((eps, len));
    }
    // `fraction` stages: their shares of the budget, rounded by largest remainder so
    // they sum to their rounded total; `models` stages are taken as they are.
    let shares: Vec<f64> = parsed.iter().filter_map(|p| p.1.err()).collect();
    let mut rounded = apportion_f64(&shares).into_iter();
    let lens: Vec<(f64, usize)> = parsed
        .iter()
        .map(|&(eps, len)| (eps, len.unwrap_or_else(|_| rounded.next().unwrap_or(0))))
        .collect();
    Ok(to_schedule(&lens))
}

impl Config {
    fn parse(c: &Value, budget: usize) -> Result<Config, String> {
        nas_strategies::check_config_fields(c, "qlearning", FIELDS)?;
        let cfg = Config {
            alpha: config_field(c, "alpha", 0.01)?,
            discount: config_field(c, "discount", 1.0)?,
            q_init: config_field(c, "q_init", 0.5)?,
            replay: nas_strategies::config_count(c, "replay", 128, 0, MAX_REPLAY)?,
            max_resample: nas_strategies::config_count(c, "max_resample", 50, 0, MAX_RESAMPLE)?,
            schedule: match c.get("epsilon_schedule") {
                None | Some(Value::Null) => default_schedule(budget),
                Some(v) => parse_schedule(v, budget)?,
            },
        };
        let bad = |f: &str, v: f32, why: &str| {
            Err(format!("config field `{f}`: {v} is not valid ({why})"))
        };
        if !(cfg.alpha > 0.0 && cfg.alpha <= 1.0) {
            return bad("alpha", cfg.alpha, "must be in (0, 1]");
        }
        if !(0.0..=1.0).contains(&cfg.discount) {
            return bad("discount", cfg.discount, "must be in [0, 1]");
        }
        if !cfg.q_init.is_finite() {
            return bad("q_init", cfg.q_init, "must be a finite number");
        }
        Ok(cfg)
    }
}

pub struct QLearning {
    space: Vec<Choice>,
    sizes: Vec<usize>,
    pub cfg: Config,
    /// `q[i][prev][a]`: choice `i`, previous decision `prev` (0 for the first choice),
    /// option `a`.
    pub q: Vec<Vec<Vec<f32>>>,
    /// Replay memory: every (trajectory, reward) seen, resamples of known ones included.
    pub memory: Vec<(Vec<usize>, f32)>,
    /// Accuracy of every architecture told, by key (the latest tell wins).
    pub evaluated: HashMap<String, f32>,
    /// Asks in flight, by key.
    pub pending: HashMap<String, Vec<Vec<usize>>>,
    /// Architectures proposed so far (the epsilon schedule's clock).
    pub asked: usize,
    rng: Rng,
}

impl QLearning {
    /// Epsilon for the `n`-th proposed architecture (0-based).
    pub fn epsilon_at(&self, n: usize) -> f64 {
        self.cfg
            .schedule
            .iter()
            .find(|(_, end)| n < *end)
            .or(self.cfg.schedule.last())
            .map(|(e, _)| *e)
            .unwrap_or(0.0)
    }

    /// The Q-values of choice `i` after decision `prev` at choice `i-1`.
    pub fn q_values(&self, i: usize, prev: usize) -> &[f32] {
        &self.q[i][prev]
    }

    /// The greedy walk through the Q-table (ties to the lowest option).
    pub fn greedy(&self) -> Vec<usize> {
        let mut d = vec![];
        for i in 0..self.sizes.len() {
            let prev = if i == 0 { 0 } else { d[i - 1] };
            let row = &self.q[i][prev];
            let mut best = 0;
            for (a, v) in row.iter().enumerate() {
                if *v > row[best] {
                    best = a;
                }
            }
            d.push(best);
        }
        d
    }

    fn walk(&mut self, eps: f64) -> Vec<usize> {
        let mut d: Vec<usize> = Vec::with_capacity(self.sizes.len());
        for i in 0..self.sizes.len() {
            let prev = if i == 0 { 0 } else { d[i - 1] };
            let a = if (self.rng.uniform() as f64) < eps {
                self.rng.below(self.sizes[i])
            } else {
                let row = &self.q[i][prev];
                let max = row.iter().cloned().fold(f32::MIN, f32::max);
                let best: Vec<usize> = (0..row.len()).filter(|&a| row[a] >= max).collect();
                best[self.rng.below(best.len())]
            };
            d.push(a);
        }
        d
    }

    /// One backward Q update along a trajectory.
    fn update(&mut self, d: &[usize], reward: f32) {
        let n = d.len();
        for i in (0..n).rev() {
            let target = if i + 1 == n {
                reward
            } else {
                let next = &self.q[i + 1][d[i]];
                self.cfg.discount * next.iter().cloned().fold(f32::MIN, f32::max)
            };
            let prev = if i == 0 { 0 } else { d[i - 1] };
            let q = &mut self.q[i][prev][d[i]];
            *q += self.cfg.alpha * (target - *q);
        }
    }

    fn replay(&mut self) {
        for _ in 0..self.cfg.replay {
            if self.memory.is_empty() {
                return;
            }
            let j = self.rng.below(self.memory.len());
            let (d, r) = self.memory[j].clone();
            self.update(&d, r);
        }
    }

    fn seen(&self, key: &str) -> bool {
        self.evaluated.contains_key(key) || self.pending.contains_key(key)
    }

    fn propose(&mut self) -> Vec<usize> {
        let eps = self.epsilon_at(self.asked);
        let mut last = None;
        for _ in 0..=self.cfg.max_resample {
            let d = self.walk(eps);
            let key = decisions::key(&self.space, &d);
            if let Some(&acc) = self.evaluated.get(&key) {
                // Known: learn from it again without spending the budget.
                self.memory.push((d.clone(), acc));
                self.update(&d, acc);
            } else if !self.pending.contains_key(&key) {
                return d;
            }
            last = Some(d);
        }
        for _ in 0..100 {
            let d: Vec<usize> = self.sizes.iter().map(|&s| self.rng.below(s)).collect();
            if !self.seen(&decisions::key(&self.space, &d)) {
                return d;
            }
        }
        last.expect("at least one walk")
    }
}

impl Strategy for QLearning {
    fn new(setup: &Setup) -> Result<Self, String> {
        let cfg = Config::parse(&setup.config, setup.budget)?;
        decisions::check_space(&setup.space)?;
        if setup.space.is_empty() {
            return Err("the space has no choices".into());
        }
        let sizes = decisions::sizes(&setup.space);
        let q = (0..sizes.len())
            .map(|i| {
                let rows = if i == 0 { 1 } else { sizes[i - 1] };
                vec![vec![cfg.q_init; sizes[i]]; rows]
            })
            .collect();
        Ok(QLearning {
            space: setup.space.clone(),
            sizes,
            cfg,
            q,
            memory: vec![],
            evaluated: HashMap::new(),
            pending: HashMap::new(),
            asked: 0,
            rng: Rng::new(setup.seed),
        })
    }

    fn ask(&mut self) -> Result<Option<Architecture>, String> {
        let d = self.propose();
        self.asked += 1;
        let arch = decisions::to_arch(&self.space, &d);
        self.pending
            .entry(decisions::key(&self.space, &d))
            .or_default()
            .push(d);
        Ok(Some(arch))
    }

    fn tell(&mut self, arch: &Architecture, metrics: &Metrics) -> Result<(), String> {
        let reward = metrics.accuracy as f32;
        if !reward.is_finite() {
            return Err(format!(
                "accuracy {} is not a finite number",
                metrics.accuracy
            ));
        }
        let d = decisions::from_arch(&self.space, arch)?;
        let key = decisions::key(&self.space, &d);
        let traj = match self.pending.get_mut(&key) {
            Some(v) if !v.is_empty() => {
                let t = v.remove(0);
                if v.is_empty() {
                    self.pending.remove(&key);
                }
                t
            }
            // Not asked by us: its own decisions, inactive ones as option 0.
            _ => d,
        };
        self.evaluated.insert(key, reward);
        self.memory.push((traj.clone(), reward));
        self.update(&traj, reward);
        self.replay();
        Ok(())
    }

    fn save(&self) -> Result<Value, String> {
        // By key, and within a key in the order `tell` takes them (first in, first out).
        let mut keys: Vec<&String> = self.pending.keys().collect();
        keys.sort();
        let pending: Vec<&Vec<usize>> = keys.iter().flat_map(|k| &self.pending[*k]).collect();
        let mut evaluated: Vec<(&String, &f32)> = self.evaluated.iter().collect();
        evaluated.sort_by(|a, b| a.0.cmp(b.0));
        let evaluated: Vec<(Vec<usize>, f32)> = evaluated
            .into_iter()
            .map(|(k, v)| (key_decisions(k), *v))
            .collect();
        Ok(json!({
            "strategy": "qlearning",
            "q": self.q,
            "memory": self.memory,
            "evaluated": evaluated,
            "pending": pending,
            "asked": self.asked,
            "rng": self.rng.state(),
        }))
    }

    fn load(&mut self, state: Value) -> Result<(), String> {
        let q: Vec<Vec<Vec<f32>>> = config_field(&state, "q", vec![])?;
        let shape_ok = q.len() == self.q.len()
            && q.iter().zip(&self.q).all(|(a, b)| {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.len() == y.len())
            });
        if !shape_ok {
            return Err("saved Q-table does not fit this space".into());
        }
        let memory: Vec<(Vec<usize>, f32)> = config_field(&state, "memory", vec![])?;
        let pending: Vec<Vec<usize>> = config_field(&state, "pending", vec![])?;
        let evaluated: Vec<(Vec<usize>, f32)> = config_field(&state, "evaluated", vec![])?;
        let sizes = &self.sizes;
        let fits = |d: &Vec<usize>| decisions::fits(sizes, d);
        if let Some(d) = memory
            .iter()
            .map(|(d, _)| d)
            .chain(&pending)
            .chain(evaluated.iter().map(|(d, _)| d))
            .find(|d| !fits(d))
        {
            return Err(format!("saved decisions {d:?} do not fit this space"));
        }
        self.q = q;
        self.memory = memory;
        self.evaluated = evaluated
            .into_iter()
            .map(|(d, r)| (decisions::key(&self.space, &d), r))
            .collect();
        self.pending.clear();
        for d in pending {
            self.pending
                .entry(decisions::key(&self.space, &d))
                .or_default()
                .push(d);
        }
        self.asked = config_field(&state, "asked", 0)?;
        self.rng = nas_strategies::oneshot::rng_in_state(&state)?;
        Ok(())
    }
}

/// Decisions back from a key (inactive choices, `-`, as option 0).
fn key_decisions(k: &str) -> Vec<usize> {
    k.split(',').map(|x| x.parse().unwrap_or(0)).collect()
}

export_strategy!(QLearning, "qlearning", "0.1.1");
