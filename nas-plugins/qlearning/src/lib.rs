//! MetaQNN (Baker et al., 2017): tabular Q-learning, adapted to a space of ordered
//! choices.
//!
//! An architecture is a walk through the choices in definition order: the state before
//! choice `i` is `(i, decision at choice i-1)` (a start state for the first choice) and
//! the actions are choice `i`'s options. The reward is the accuracy, given at the
//! terminal step; discount 1. Actions are epsilon-greedy on a Q-table initialised to
//! `q_init` (0.5), with epsilon following a schedule over the asks (default, the
//! paper's shape: 1.0 for the first 40% of the budget, then 0.9, 0.8, ... 0.1 in equal
//! shares of the rest; after the schedule ends its last epsilon holds).
//!
//! Learning (experience replay): each tell stores (trajectory, reward) in the replay
//! memory, then `replay` stored trajectories drawn uniformly are replayed, each updating
//! Q backwards from its terminal step:
//! `Q(s_i, a_i) += alpha * (target - Q(s_i, a_i))`, `target = reward` at the last choice
//! and `max_a Q(s_{i+1}, a)` before it.
//!
//! As in MetaQNN, a sampled architecture that was already evaluated is not proposed
//! again: it goes into the replay memory with its known accuracy (one Q update) and the
//! agent samples again, up to `max_resample` times, then falls back to an unseen
//! uniformly random architecture (the space may be nearly exhausted). Such resamples do
//! not advance the epsilon schedule, which counts proposed architectures.
//!
//! Every choice is decided, repeat-scoped ones too; inactive ones are dropped from the
//! architecture but stay in the trajectory (they are still states on the walk).
//!
//! Config: `alpha` (0.01), `discount` (1.0), `q_init` (0.5), `replay` (50),
//! `max_resample` (50), `epsilon_schedule`: a list of `{"epsilon": e, "fraction": f}`
//! (a share of the budget) or `{"epsilon": e, "models": n}` stages.
//!
//! Save/load keeps the Q-table, the replay memory, the asks in flight, the ask count and
//! the generator.

use nas_strategies::decisions;

use nas_strategies::{
    config_field, export_strategy, json, Architecture, Choice, Metrics, Rng, Setup, Strategy, Value,
};
use std::collections::HashMap;

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

/// The default schedule: 1.0 for 40% of the budget, then 0.9 .. 0.1 sharing the rest.
fn default_schedule() -> Value {
    let mut stages = vec![json!({"epsilon": 1.0, "fraction": 0.4})];
    for i in (1..=9).rev() {
        stages.push(json!({"epsilon": i as f64 / 10.0, "fraction": 0.6 / 9.0}));
    }
    Value::from(stages)
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
    let mut out = vec![];
    let mut end = 0.0f64;
    for s in stages {
        let Some(eps) = s.get("epsilon").and_then(|e| e.as_f64()) else {
            return bad(format!("stage {s} has no numeric `epsilon`"));
        };
        if !(0.0..=1.0).contains(&eps) {
            return bad(format!("epsilon {eps} is not in [0, 1]"));
        }
        let len = match (s.get("fraction"), s.get("models")) {
            (Some(f), None) => match f.as_f64() {
                Some(f) if f >= 0.0 && f.is_finite() => f * budget as f64,
                _ => return bad(format!("stage {s}: `fraction` must be a number >= 0")),
            },
            (None, Some(m)) => match m.as_u64() {
                Some(m) => m as f64,
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
        end += len;
        // Rounding the cumulative end keeps the stages' total equal to the budget.
        out.push((eps, (end + 1e-9).round() as usize));
    }
    Ok(out)
}

impl Config {
    fn parse(c: &Value, budget: usize) -> Result<Config, String> {
        nas_strategies::check_config_fields(c, "qlearning", FIELDS)?;
        let cfg = Config {
            alpha: config_field(c, "alpha", 0.01)?,
            discount: config_field(c, "discount", 1.0)?,
            q_init: config_field(c, "q_init", 0.5)?,
            replay: config_field(c, "replay", 50)?,
            max_resample: config_field(c, "max_resample", 50)?,
            schedule: parse_schedule(
                &config_field(c, "epsilon_schedule", default_schedule())?,
                budget,
            )?,
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
    fn default_epsilon_schedule_has_the_papers_shape() {
        let s = make(layer_space(3, 3), json!({}), 0, 150);
        for n in 0..60 {
            assert_eq!(s.epsilon_at(n), 1.0, "ask {n}");
        }
        for (k, eps) in (1..=9).rev().enumerate() {
            for n in 60 + 10 * k..70 + 10 * k {
                assert!(
                    (s.epsilon_at(n) - eps as f64 / 10.0).abs() < 1e-12,
                    "ask {n}"
                );
            }
        }
        assert!((s.epsilon_at(150) - 0.1).abs() < 1e-12);
        assert!((s.epsilon_at(10_000) - 0.1).abs() < 1e-12);
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
    }

    #[test]
    fn epsilon_follows_the_schedule_while_searching() {
        // With epsilon 1 only, a fresh agent's asks ignore the Q-table; with epsilon 0 it
        // walks the greedy path. Checked through the choices actually made.
        let space = layer_space(4, 3);
        let obj = Objective::new(&space, 3);
        let c = json!({"epsilon_schedule": [
            {"epsilon": 1.0, "models": 40}, {"epsilon": 0.0, "models": 1}
        ], "max_resample": 0});
        let mut s = make(space.clone(), c, 3, 60);
        drive(&mut s, &obj, 40, 1);
        assert_eq!(s.asked, 40);
        let greedy = s.greedy();
        let a = s.ask().unwrap().unwrap();
        let d = decisions::from_arch(&space, &a).unwrap();
        let key = decisions::key(&space, &greedy);
        if !s.evaluated.contains_key(&key) {
            assert_eq!(d, greedy, "epsilon 0 walks the greedy path");
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
