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
struct Config {
    alpha: f32,
    discount: f32,
    q_init: f32,
    replay: usize,
    max_resample: usize,
    /// (epsilon, number of asks at which the stage ends), cumulative.
    schedule: Vec<(f64, usize)>,
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
    cfg: Config,
    /// `q[i][prev][a]`: choice `i`, previous decision `prev` (0 for the first choice),
    /// option `a`.
    q: Vec<Vec<Vec<f32>>>,
    /// Replay memory: every (trajectory, reward) seen, resamples of known ones included.
    memory: Vec<(Vec<usize>, f32)>,
    /// Accuracy of every architecture told, by key (the latest tell wins).
    evaluated: HashMap<String, f32>,
    /// Asks in flight, by key.
    pending: HashMap<String, Vec<Vec<usize>>>,
    /// Architectures proposed so far (the epsilon schedule's clock).
    asked: usize,
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
        let mut pending: Vec<&Vec<usize>> = self.pending.values().flatten().collect();
        pending.sort();
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
        let fits =
            |d: &Vec<usize>| d.len() == sizes.len() && d.iter().zip(sizes).all(|(x, s)| x < s);
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
        self.rng = Rng::from_state(config_field(&state, "rng", self.rng.state())?);
        Ok(())
    }
}

/// Decisions back from a key (inactive choices, `-`, as option 0).
fn key_decisions(k: &str) -> Vec<usize> {
    k.split(',').map(|x| x.parse().unwrap_or(0)).collect()
}

export_strategy!(QLearning, "qlearning", "0.1.0");

#[cfg(test)]
mod tests {
    use super::*;
    use nas_strategies::serde_json;
    use nas_strategies::testing::*;

    fn make(space: Vec<Choice>, config: Value, seed: u64, budget: usize) -> QLearning {
        QLearning::new(&setup(space, config, seed, budget)).unwrap()
    }

    #[test]
    fn configured_epsilon_schedule_in_counts_and_fractions() {
        let s = make(layer_space(3, 3), json!({}), 0, 150);
        assert_eq!(s.epsilon_at(0), 1.0);
        // A configured schedule, in counts and fractions.
        let c = json!({"epsilon_schedule": [
            {"epsilon": 1.0, "models": 5},
            {"epsilon": 0.5, "fraction": 0.5},
            {"epsilon": 0.0, "models": 1}
        ]});
        let s = make(layer_space(3, 3), c, 0, 20);
        let eps: Vec<f64> = (0..18).map(|n| s.epsilon_at(n)).collect();
        assert_eq!(eps[..5], [1.0; 5]);
        assert_eq!(eps[5..15], [0.5; 10]);
        assert_eq!(eps[15..], [0.0; 3]);
        // Fractions: shares 3.33, 3.33, 3.33 of 10 -> 4, 3, 3 (ties to the earlier);
        // an empty stage is dropped, the rest keep their order.
        let c = json!({"epsilon_schedule": [
            {"epsilon": 0.9, "fraction": 1.0 / 3.0},
            {"epsilon": 0.7, "models": 0},
            {"epsilon": 0.5, "fraction": 1.0 / 3.0},
            {"epsilon": 0.2, "fraction": 1.0 / 3.0}
        ]});
        let s = make(layer_space(3, 3), c, 0, 10);
        assert_eq!(s.cfg.schedule, vec![(0.9, 4), (0.5, 7), (0.2, 10)]);
        assert_eq!(stages(&s, 10), vec![(0.9, 4), (0.5, 3), (0.2, 3)]);
    }

    #[test]
    fn epsilon_follows_the_schedule_while_searching() {
        let space = layer_space(4, 3);
        let c = json!({"epsilon_schedule": [
            {"epsilon": 1.0, "models": 40}, {"epsilon": 0.0, "models": 1}
        ], "max_resample": 0});
        // A Q-table favouring one path by far: with epsilon 1 the asks ignore it (each
        // choice agrees with the path about a third of the time, not always).
        let favour = |s: &mut QLearning, p: &[usize]| {
            for i in 0..p.len() {
                let prev = if i == 0 { 0 } else { p[i - 1] };
                s.q[i][prev][p[i]] = 2.0; // above any reward, so the unique maximum
            }
        };
        // (Checked on each fresh agent's first ask: later ones could be masked by the
        // resampling of known architectures.)
        let p = vec![2, 0, 1, 2];
        let mut on_path = 0;
        for seed in 0..40 {
            let mut s = make(space.clone(), c.clone(), seed, 60);
            favour(&mut s, &p);
            let a = s.ask().unwrap().unwrap();
            on_path += (decisions::from_arch(&space, &a).unwrap() == p) as usize;
        }
        assert!(
            on_path <= 3,
            "{on_path} of 40 first asks on the favoured path"
        );

        // After 40 random models, a path not evaluated yet and not the current greedy
        // one is made clearly best: the next ask, at epsilon 0, is exactly that path.
        let mut s = make(space.clone(), c, 3, 60);
        let obj = Objective::new(&space, 3);
        drive(&mut s, &obj, 40, 1);
        assert_eq!(s.asked, 40);
        assert_eq!(s.epsilon_at(s.asked), 0.0);
        let old_greedy = s.greedy();
        let p: Vec<usize> = (0..81usize)
            .map(|n| vec![n / 27, n / 9 % 3, n / 3 % 3, n % 3])
            .find(|d| *d != old_greedy && !s.evaluated.contains_key(&decisions::key(&space, d)))
            .expect("40 of 81 evaluated");
        favour(&mut s, &p);
        assert_eq!(s.greedy(), p);
        let a = s.ask().unwrap().unwrap();
        assert_eq!(
            decisions::from_arch(&space, &a).unwrap(),
            p,
            "epsilon 0 walks the greedy path"
        );
        assert_eq!(decisions::to_arch(&space, &p), a);
    }

    /// The stages of the schedule as (epsilon, number of asks), read back from
    /// `epsilon_at` over the budget (zero-length stages are invisible).
    fn stages(s: &QLearning, budget: usize) -> Vec<(f64, usize)> {
        let mut out: Vec<(f64, usize)> = vec![];
        for n in 0..budget {
            let e = s.epsilon_at(n);
            match out.last_mut() {
                Some((le, c)) if *le == e => *c += 1,
                _ => out.push((e, 1)),
            }
        }
        out
    }

    const PAPER_EPS: [f64; 10] = [1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1];

    #[test]
    fn default_schedule_is_metaqnns_scaled_to_the_budget() {
        // Budget 2700: exactly the published schedule (Baker et al. 2017).
        let s = make(layer_space(3, 3), json!({}), 0, 2700);
        let paper = [1500, 100, 100, 100, 150, 150, 150, 150, 150, 150];
        let want: Vec<(f64, usize)> = PAPER_EPS.iter().cloned().zip(paper).collect();
        assert_eq!(stages(&s, 2700), want);
        assert_eq!(
            s.epsilon_at(2700),
            0.1,
            "the last epsilon holds after the budget"
        );

        // Budget 150, by hand: 150 * count / 2700 is
        //   1500 -> 83.33, 100 -> 5.56 (x3), 150 -> 8.33 (x6);
        // floors 83 + 3*5 + 6*8 = 146, 4 models left over, given by largest remainder:
        // the three 0.56 remainders first (5 -> 6), then the first of the seven tied
        // 0.33 remainders in stage order (83 -> 84). 84 + 3*6 + 6*8 = 150.
        let want150 = [84, 6, 6, 6, 8, 8, 8, 8, 8, 8];
        assert_eq!(want150.iter().sum::<usize>(), 150);
        let want: Vec<(f64, usize)> = PAPER_EPS.iter().cloned().zip(want150).collect();
        let space = layer_space(6, 4);
        let obj = Objective::new(&space, 9);
        let mut s = make(space.clone(), json!({}), 9, 150);
        assert_eq!(stages(&s, 150), want);
        assert_eq!(s.cfg.replay, 128, "the paper replays 128 samples per model");
        assert_eq!((s.cfg.alpha, s.cfg.discount), (0.01, 1.0));

        // The epsilon actually used by each ask follows the stages: drive the search
        // through the Strategy trait (two asks in flight), recording the schedule's
        // clock before each ask.
        let mut used = vec![];
        while used.len() < 150 {
            let mut asked = vec![];
            for _ in 0..2 {
                let before = s.asked;
                used.push(s.epsilon_at(before));
                asked.push(Strategy::ask(&mut s).unwrap().unwrap());
                assert_eq!(s.asked, before + 1, "one tick of the schedule per ask");
            }
            for a in asked.iter().rev() {
                Strategy::tell(&mut s, a, &obj.metrics(a)).unwrap();
            }
        }
        let expected: Vec<f64> = want
            .iter()
            .flat_map(|&(e, n)| std::iter::repeat(e).take(n))
            .collect();
        assert_eq!(used, expected);

        // Tiny budgets keep the stages in order, drop the empty ones, and sum exactly.
        for budget in [1, 2, 7, 10, 27, 100, 1000, 2699, 2701, 5400] {
            let s = make(layer_space(3, 3), json!({}), 0, budget);
            let st = stages(&s, budget);
            assert_eq!(st.iter().map(|x| x.1).sum::<usize>(), budget, "{budget}");
            let eps: Vec<f64> = st.iter().map(|x| x.0).collect();
            assert!(eps.windows(2).all(|w| w[0] > w[1]), "{budget}: {eps:?}");
            assert_eq!(eps[0], 1.0, "{budget}");
            for (e, n) in st {
                let k = PAPER_EPS.iter().position(|&p| p == e).unwrap();
                let exact = budget as f64 * paper[k] as f64 / 2700.0;
                assert!((n as f64 - exact).abs() < 1.0, "{budget}: {n} vs {exact}");
            }
        }
    }

    #[test]
    fn counts_beyond_their_bounds_are_refused() {
        let sp = layer_space(2, 2);
        let huge = 1u64 << 53;
        for (c, field, range) in [
            (json!({"replay": huge}), "replay", "0..=100000"),
            (json!({"max_resample": huge}), "max_resample", "0..=10000"),
        ] {
            let e = QLearning::new(&setup(sp.clone(), c.clone(), 0, 10))
                .err()
                .unwrap_or_else(|| panic!("{c} accepted"));
            assert!(
                e.contains(&format!("`{field}`"))
                    && e.contains(&huge.to_string())
                    && e.contains(range),
                "{c}: {e}"
            );
        }
    }

    #[test]
    fn bad_config_names_the_field() {
        let sp = layer_space(2, 2);
        for (c, f) in [
            (json!({"alpha": 0}), "`alpha`"),
            (json!({"replay": -1}), "`replay`"),
            (
                json!({"epsilon_schedule": [{"epsilon": 2.0, "models": 3}]}),
                "`epsilon_schedule`",
            ),
            (
                json!({"epsilon_schedule": [{"epsilon": 0.5}]}),
                "`epsilon_schedule`",
            ),
            (json!({"epsilonschedule": []}), "`epsilonschedule`"),
            (json!({"epsilon_schedule": []}), "`epsilon_schedule`: []"),
            (
                json!({"epsilon_schedule": [{"epsilon": 0.5, "fraction": -0.1}]}),
                "`epsilon_schedule`: [{\"epsilon\":0.5,\"fraction\":-0.1}]",
            ),
            (
                json!({"epsilon_schedule": [{"epsilon": 0.5, "models": 1.5}]}),
                "`epsilon_schedule`",
            ),
            (
                json!({"epsilon_schedule": [{"epsilon": 0.5, "models": 2, "fraction": 0.1}]}),
                "`epsilon_schedule`",
            ),
            (json!({"epsilon_schedule": [0.5]}), "`epsilon_schedule`"),
            (
                json!({"epsilon_schedule": {"epsilon": 0.5}}),
                "`epsilon_schedule`",
            ),
        ] {
            let e = QLearning::new(&setup(sp.clone(), c, 0, 10)).err().unwrap();
            assert!(e.contains(f), "{e}");
        }
    }

    #[test]
    fn asks_are_valid_on_a_mixed_space_and_mostly_new() {
        let space = mixed_space();
        let obj = Objective::new(&space, 2);
        let mut s = make(space.clone(), json!({}), 2, 120);
        drive(&mut s, &obj, 120, 3);
        assert!(s.pending.is_empty());
        assert!(
            s.evaluated.len() >= 115,
            "{} distinct of 120",
            s.evaluated.len()
        );
        // Q values stay within the rewards' range.
        for t in &s.q {
            for row in t {
                for v in row {
                    assert!((0.0..=1.02).contains(v), "{v}");
                }
            }
        }
    }

    #[test]
    fn save_new_load_keeps_the_q_table_and_continues() {
        let space = mixed_space();
        let obj = Objective::new(&space, 4);
        let mut a = make(space.clone(), json!({}), 4, 100);
        drive(&mut a, &obj, 50, 1);
        let inflight = a.ask().unwrap().unwrap();
        let text = serde_json::to_string(&a.save().unwrap()).unwrap();
        let mut b = make(space.clone(), json!({}), 77, 100);
        b.load(serde_json::from_str(&text).unwrap()).unwrap();
        assert_eq!(a.q, b.q);
        assert_eq!(a.memory, b.memory);
        assert_eq!(a.evaluated, b.evaluated);
        assert_eq!(a.asked, b.asked);
        for _ in 0..5 {
            let (x, y) = (a.ask().unwrap().unwrap(), b.ask().unwrap().unwrap());
            assert_eq!(x, y);
            let m = obj.metrics(&x);
            a.tell(&x, &m).unwrap();
            b.tell(&y, &m).unwrap();
        }
        assert_eq!(a.q, b.q);
        b.tell(&inflight, &obj.metrics(&inflight)).unwrap();
        assert!(b.pending.is_empty());
        drive(&mut b, &obj, 20, 2);
        let e = b.load(json!({"q": [[[0.5]]]})).err().unwrap();
        assert!(e.contains("Q-table"), "{e}");
    }

    #[test]
    fn beats_random_search_at_equal_budget() {
        let space = layer_space(6, 4);
        let (mut ours, mut rand) = (vec![], vec![]);
        for seed in 0..16 {
            let obj = Objective::new(&space, 200 + seed);
            let mut s = make(space.clone(), json!({}), seed, 150);
            ours.push(best(&drive(&mut s, &obj, 150, 1)));
            rand.push(best(&random_search(&obj, seed, 150)));
        }
        let (o, r) = (mean(&ours), mean(&rand));
        eprintln!("qlearning best {o:.3} vs random {r:.3}");
        assert!(o > r + 0.05, "qlearning {o:.3} vs random {r:.3}");
    }
}
