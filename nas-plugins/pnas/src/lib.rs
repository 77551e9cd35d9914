//! Progressive Neural Architecture Search (Liu et al., 2018), adapted to a space of
//! ordered choices: an architecture is grown one choice at a time (a choice plays the
//! part of PNAS's block), and a surrogate ranks the partial architectures.
//!
//! - Level `k0`: the prefixes made of the first `k0` choices are enumerated (sampled when
//!   there are more than `max_candidates`); `initial` of them (round-robin when there are
//!   fewer) are evaluated.
//! - Level `m -> m+1`: every kept prefix is expanded by every option of choice `m` (one
//!   child when choice `m` is inactive under the prefix); the surrogate, trained on every
//!   result so far, scores the children and the best `beam` are evaluated and kept.
//!   When there are fewer children than `beam`, all are kept and the `beam` evaluations
//!   are shared among them round-robin.
//! - Full depth reached: the search goes on by mutating the `beam` best architectures
//!   evaluated so far (`mutations` mutants each, one or two changed choices) and sending
//!   the `beam` best mutants by surrogate score.
//!
//! An evaluated prefix is a full architecture: the choices past the prefix are filled
//! with uniformly random options when it is queued (redrawn a few times to avoid
//! repeats). This makes each result a sample of "how good is this prefix, the rest left
//! to chance", the quantity the next level's ranking needs.
//!
//! Surrogate: an ensemble of `ensemble` MLPs (one hidden ReLU layer of `hidden` units)
//! over a one-hot encoding of the decisions, zeros for choices not filled (past the
//! prefix) or inactive (repeat-scoped). To score children of length `m`, it is trained
//! (warm-started, `train_steps` full-batch Adam steps at `lr` on the MSE of standardised
//! accuracies) on every evaluated architecture encoded both cut to its first `m`
//! choices and whole; the ensemble's mean prediction ranks.
//!
//! Config: `k0` (1), `beam` (budget / (2 x levels), clamped to 4..32; 8 without a
//! budget), `initial` (= beam), `max_candidates` (10000), `hidden` (32), `ensemble` (3),
//! `train_steps` (150), `lr` (0.01), `mutations` (16).
//!
//! Save/load keeps the level, the beam, the queue, every result, the asks in flight, the
//! surrogates' weights and the generator; the surrogates' Adam moments restart at zero
//! after a load (the SDK's Adam keeps them private).

use nas_strategies::decisions;

use nas_core::optim::{Adam, Optimizer};
use nas_core::{no_grad, Tensor};
use nas_strategies::{
    config_field, export_strategy, json, Architecture, Choice, Metrics, Rng, Setup, Strategy, Value,
};
use std::collections::{HashMap, HashSet, VecDeque};

const FIELDS: &[&str] = &[
    "k0",
    "beam",
    "initial",
    "max_candidates",
    "hidden",
    "ensemble",
    "train_steps",
    "lr",
    "mutations",
];

#[derive(Clone, Debug)]
struct Config {
    k0: usize,
    beam: usize,
    initial: usize,
    max_candidates: usize,
    hidden: usize,
    ensemble: usize,
    train_steps: usize,
    lr: f32,
    mutations: usize,
}

impl Config {
    fn parse(c: &Value, n_choices: usize, budget: usize) -> Result<Config, String> {
        nas_strategies::check_config_fields(c, "pnas", FIELDS)?;
        let k0: usize = config_field(c, "k0", 1)?;
        let levels = n_choices.saturating_sub(k0.max(1)) + 1;
        let auto_beam = if budget == 0 {
            8
        } else {
            (budget / (2 * levels)).clamp(4, 32)
        };
        let beam: usize = config_field(c, "beam", auto_beam)?;
        let cfg = Config {
            k0,
            beam,
            initial: config_field(c, "initial", beam)?,
            max_candidates: config_field(c, "max_candidates", 10_000)?,
            hidden: config_field(c, "hidden", 32)?,
            ensemble: config_field(c, "ensemble", 3)?,
            train_steps: config_field(c, "train_steps", 150)?,
            lr: config_field(c, "lr", 0.01)?,
            mutations: config_field(c, "mutations", 16)?,
        };
        for (f, v) in [
            ("k0", cfg.k0),
            ("beam", cfg.beam),
            ("initial", cfg.initial),
            ("max_candidates", cfg.max_candidates),
            ("hidden", cfg.hidden),
            ("ensemble", cfg.ensemble),
            ("mutations", cfg.mutations),
        ] {
            if v == 0 {
                return Err(format!(
                    "config field `{f}`: 0 is not valid (must be at least 1)"
                ));
            }
        }
        if !(cfg.lr > 0.0 && cfg.lr.is_finite()) {
            return Err(format!(
                "config field `lr`: {} is not valid (must be positive)",
                cfg.lr
            ));
        }
        Ok(cfg)
    }
}

/// One surrogate: `x -> w2 relu(w1 x + b1) + b2`.
struct Mlp {
    w1: Tensor,
    b1: Tensor,
    w2: Tensor,
    b2: Tensor,
    opt: Adam,
}

impl Mlp {
    fn new(dim: usize, hidden: usize, rng: &mut Rng) -> Mlp {
        let (s1, s2) = (1.0 / (dim as f32).sqrt(), 1.0 / (hidden as f32).sqrt());
        let w1 = Tensor::parameter(
            (0..hidden * dim)
                .map(|_| rng.uniform_range(-s1, s1))
                .collect(),
            &[hidden, dim],
        );
        let b1 = Tensor::parameter(vec![0.0; hidden], &[hidden]);
        let w2 = Tensor::parameter(
            (0..hidden).map(|_| rng.uniform_range(-s2, s2)).collect(),
            &[1, hidden],
        );
        let b2 = Tensor::parameter(vec![0.0], &[1]);
        let opt = Adam::new(
            vec![w1.clone(), b1.clone(), w2.clone(), b2.clone()],
            1e-4,
            true,
        );
        Mlp {
            w1,
            b1,
            w2,
            b2,
            opt,
        }
    }

    fn params(&self) -> [&Tensor; 4] {
        [&self.w1, &self.b1, &self.w2, &self.b2]
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        x.linear(&self.w1, Some(&self.b1))
            .relu()
            .linear(&self.w2, Some(&self.b2))
    }

    fn train(&mut self, x: &Tensor, y: &Tensor, steps: usize, lr: f32) {
        for _ in 0..steps {
            let d = self.forward(x).sub(y);
            let loss = d.mul(&d).mean();
            self.opt.zero_grad();
            loss.backward();
            self.opt.step(lr);
        }
        self.opt.zero_grad();
    }
}

pub struct Pnas {
    space: Vec<Choice>,
    sizes: Vec<usize>,
    /// Where each choice's one-hot block starts.
    offsets: Vec<usize>,
    dim: usize,
    cfg: Config,
    rng: Rng,
    /// Length of the current prefixes; 0 before the search starts.
    level: usize,
    /// The prefixes kept at this level.
    beam: Vec<Vec<usize>>,
    /// Architectures waiting to be asked: (decisions, level they were made at).
    queue: VecDeque<(Vec<usize>, usize)>,
    /// Every result: (decisions, level, accuracy).
    history: Vec<(Vec<usize>, usize, f32)>,
    pending: HashMap<String, Vec<(Vec<usize>, usize)>>,
    models: Vec<Mlp>,
}

impl Pnas {
    fn encode(&self, d: &[usize], m: usize, out: &mut [f32]) {
        let active = decisions::active_mask(&self.space, d);
        for i in 0..m.min(d.len()) {
            if active[i] {
                out[self.offsets[i] + d[i]] = 1.0;
            }
        }
    }

    fn matrix(&self, rows: &[(&[usize], usize)]) -> Tensor {
        let mut x = vec![0.0; rows.len() * self.dim];
        for (r, (d, m)) in rows.iter().enumerate() {
            self.encode(d, *m, &mut x[r * self.dim..(r + 1) * self.dim]);
        }
        Tensor::from_vec(x, &[rows.len(), self.dim])
    }

    /// Trains the surrogates on every result, cut to `m` choices and whole.
    fn train(&mut self, m: usize) {
        if self.history.len() < 2 {
            return;
        }
        let n = self.sizes.len();
        let mut rows: Vec<(&[usize], usize)> = vec![];
        let mut ys = vec![];
        for (d, _, acc) in &self.history {
            rows.push((d, m));
            ys.push(*acc);
            if m < n {
                rows.push((d, n));
                ys.push(*acc);
            }
        }
        let mean = ys.iter().sum::<f32>() / ys.len() as f32;
        let var = ys.iter().map(|y| (y - mean) * (y - mean)).sum::<f32>() / ys.len() as f32;
        let std = var.sqrt().max(1e-3);
        let y: Vec<f32> = ys.iter().map(|v| (v - mean) / std).collect();
        let x = self.matrix(&rows);
        let y = Tensor::from_vec(y, &[rows.len(), 1]);
        let (steps, lr) = (self.cfg.train_steps, self.cfg.lr);
        for model in &mut self.models {
            model.train(&x, &y, steps, lr);
        }
    }

    /// The ensemble's mean prediction (standardised accuracy) for prefixes cut at `m`.
    pub fn predict(&self, ds: &[Vec<usize>], m: usize) -> Vec<f32> {
        if ds.is_empty() {
            return vec![];
        }
        let rows: Vec<(&[usize], usize)> = ds.iter().map(|d| (d.as_slice(), m)).collect();
        let x = self.matrix(&rows);
        no_grad(|| {
            let mut sum = vec![0.0; ds.len()];
            for model in &self.models {
                for (s, p) in sum.iter_mut().zip(model.forward(&x).to_vec()) {
                    *s += p;
                }
            }
            sum.iter().map(|s| s / self.models.len() as f32).collect()
        })
    }

    /// The `k` best of `cands` (full-length vectors, judged on their first `m` choices),
    /// ties broken at random.
    fn top(&mut self, cands: Vec<Vec<usize>>, m: usize, k: usize) -> Vec<Vec<usize>> {
        if cands.len() <= k {
            return cands;
        }
        self.train(m);
        let scores = self.predict(&cands, m);
        let mut order: Vec<(f32, usize)> = scores
            .iter()
            .enumerate()
            .map(|(i, s)| (s + 1e-6 * self.rng.uniform(), i))
            .collect();
        order.sort_by(|a, b| b.0.total_cmp(&a.0));
        order
            .into_iter()
            .take(k)
            .map(|(_, i)| cands[i].clone())
            .collect()
    }

    fn seen_keys(&self) -> HashSet<String> {
        let mut s: HashSet<String> = self
            .history
            .iter()
            .map(|(d, _, _)| decisions::key(&self.space, d))
            .collect();
        s.extend(self.pending.keys().cloned());
        s.extend(
            self.queue
                .iter()
                .map(|(d, _)| decisions::key(&self.space, d)),
        );
        s
    }

    /// Queues `prefix` (length `m`) with the rest filled at random, avoiding repeats.
    fn enqueue(&mut self, prefix: &[usize], m: usize, seen: &mut HashSet<String>) {
        let n = self.sizes.len();
        let tries = if m >= n { 1 } else { 20 };
        for _ in 0..tries {
            let mut d = prefix[..m].to_vec();
            d.extend((m..n).map(|i| self.rng.below(self.sizes[i])));
            let k = decisions::key(&self.space, &d);
            if seen.insert(k) {
                self.queue.push_back((d, m));
                return;
            }
        }
    }

    /// Queues `k` evaluations shared round-robin among `prefixes`.
    fn enqueue_round_robin(&mut self, prefixes: &[Vec<usize>], m: usize, k: usize) {
        let mut seen = self.seen_keys();
        for j in 0..k.max(prefixes.len()) {
            let p = prefixes[j % prefixes.len()].clone();
            self.enqueue(&p, m, &mut seen);
        }
    }

    fn random_prefix(&mut self, m: usize) -> Vec<usize> {
        (0..m).map(|i| self.rng.below(self.sizes[i])).collect()
    }

    fn advance(&mut self) {
        let n = self.sizes.len();
        if self.level == 0 {
            let k0 = self.cfg.k0.min(n);
            let count = self.sizes[..k0]
                .iter()
                .try_fold(1usize, |a, &s| a.checked_mul(s));
            let mut prefixes: Vec<Vec<usize>> = match count {
                Some(c) if c <= self.cfg.max_candidates => (0..c)
                    .map(|mut r| {
                        let mut p = vec![0; k0];
                        for i in (0..k0).rev() {
                            p[i] = r % self.sizes[i];
                            r /= self.sizes[i];
                        }
                        p
                    })
                    .collect(),
                _ => {
                    let mut set = HashSet::new();
                    let mut ps = vec![];
                    for _ in 0..self.cfg.max_candidates {
                        let p = self.random_prefix(k0);
                        if set.insert(p.clone()) {
                            ps.push(p);
                        }
                    }
                    ps
                }
            };
            // Prefixes that differ only in inactive choices are the same.
            let mut keys = HashSet::new();
            prefixes.retain(|p| keys.insert(self.prefix_key(p)));
            self.rng.shuffle(&mut prefixes);
            prefixes.truncate(self.cfg.initial);
            self.level = k0;
            self.beam = prefixes.clone();
            let k = self.cfg.initial;
            self.enqueue_round_robin(&prefixes, k0, k);
        } else if self.level < n {
            let m = self.level;
            let mut children = vec![];
            let mut keys = HashSet::new();
            for p in &self.beam {
                let mut padded = p.clone();
                padded.resize(n, 0);
                let active = decisions::active_mask(&self.space, &padded);
                let options = if active[m] { self.sizes[m] } else { 1 };
                for o in 0..options {
                    let mut c = p.clone();
                    c.push(o);
                    if keys.insert(self.prefix_key(&c)) {
                        children.push(c);
                    }
                }
            }
            let mut full: Vec<Vec<usize>> = children
                .into_iter()
                .map(|mut c| {
                    c.resize(n, 0);
                    c
                })
                .collect();
            if m + 1 == n {
                // Complete children already evaluated would only be repeats.
                let seen = self.seen_keys();
                let fresh: Vec<Vec<usize>> = full
                    .iter()
                    .filter(|c| !seen.contains(&decisions::key(&self.space, c)))
                    .cloned()
                    .collect();
                if !fresh.is_empty() {
                    full = fresh;
                }
            }
            let kept: Vec<Vec<usize>> = self
                .top(full, m + 1, self.cfg.beam)
                .into_iter()
                .map(|mut c| {
                    c.truncate(m + 1);
                    c
                })
                .collect();
            self.level = m + 1;
            self.beam = kept.clone();
            let k = self.cfg.beam;
            self.enqueue_round_robin(&kept, m + 1, k);
        } else {
            self.mutate();
        }
    }

    fn prefix_key(&self, p: &[usize]) -> String {
        let mut d = p.to_vec();
        d.resize(self.sizes.len(), 0);
        let active = decisions::active_mask(&self.space, &d);
        p.iter()
            .enumerate()
            .map(|(i, x)| if active[i] { x.to_string() } else { "-".into() })
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Full depth: mutants of the best results, ranked by the surrogate.
    fn mutate(&mut self) {
        let n = self.sizes.len();
        let mut by_key: HashMap<String, (Vec<usize>, f32, usize)> = HashMap::new();
        for (d, _, acc) in &self.history {
            let e = by_key
                .entry(decisions::key(&self.space, d))
                .or_insert((d.clone(), 0.0, 0));
            e.1 += acc;
            e.2 += 1;
        }
        let mut ranked: Vec<(String, Vec<usize>, f32)> = by_key
            .into_iter()
            .map(|(k, (d, s, c))| (k, d, s / c as f32))
            .collect();
        ranked.sort_by(|a, b| b.2.total_cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
        let parents: Vec<Vec<usize>> = ranked
            .into_iter()
            .take(self.cfg.beam)
            .map(|(_, d, _)| d)
            .collect();
        let mut seen = self.seen_keys();
        let mut cands = vec![];
        let mut cand_keys = HashSet::new();
        for p in &parents {
            for _ in 0..self.cfg.mutations {
                let mut c = p.clone();
                let changes = if self.rng.bernoulli(0.3) { 2 } else { 1 };
                for _ in 0..changes {
                    let active = decisions::active_mask(&self.space, &c);
                    let mutable: Vec<usize> =
                        (0..n).filter(|&i| active[i] && self.sizes[i] > 1).collect();
                    if mutable.is_empty() {
                        break;
                    }
                    let i = mutable[self.rng.below(mutable.len())];
                    let o = self.rng.below(self.sizes[i] - 1);
                    c[i] = if o >= c[i] { o + 1 } else { o };
                }
                let k = decisions::key(&self.space, &c);
                if !seen.contains(&k) && cand_keys.insert(k) {
                    cands.push(c);
                }
            }
        }
        let best = self.top(cands, n, self.cfg.beam);
        for c in best {
            seen.insert(decisions::key(&self.space, &c));
            self.queue.push_back((c, n));
        }
        if self.queue.is_empty() {
            // No new mutant: unseen random architectures, or any when none is left.
            for _ in 0..1000 {
                let d = self.random_prefix(n);
                if seen.insert(decisions::key(&self.space, &d)) {
                    self.queue.push_back((d, n));
                    return;
                }
            }
            let d = self.random_prefix(n);
            self.queue.push_back((d, n));
        }
    }

    /// The current level (prefix length) of the search.
    pub fn level(&self) -> usize {
        self.level
    }
}

impl Strategy for Pnas {
    fn new(setup: &Setup) -> Result<Self, String> {
        decisions::check_space(&setup.space)?;
        if setup.space.is_empty() {
            return Err("the space has no choices".into());
        }
        let cfg = Config::parse(&setup.config, setup.space.len(), setup.budget)?;
        let sizes = decisions::sizes(&setup.space);
        let mut offsets = vec![];
        let mut dim = 0;
        for s in &sizes {
            offsets.push(dim);
            dim += s;
        }
        let mut rng = Rng::new(setup.seed);
        let models = (0..cfg.ensemble)
            .map(|_| Mlp::new(dim, cfg.hidden, &mut rng))
            .collect();
        Ok(Pnas {
            space: setup.space.clone(),
            sizes,
            offsets,
            dim,
            cfg,
            rng,
            level: 0,
            beam: vec![],
            queue: VecDeque::new(),
            history: vec![],
            pending: HashMap::new(),
            models,
        })
    }

    fn ask(&mut self) -> Result<Option<Architecture>, String> {
        let n = self.sizes.len();
        for _ in 0..1000 {
            if self.queue.is_empty() {
                self.advance();
            }
            let Some((d, m)) = self.queue.pop_front() else {
                continue;
            };
            let key = decisions::key(&self.space, &d);
            // A queued architecture told meanwhile (re-told after a resume) is skipped
            // unless it is only a random completion, which gets a fresh draw.
            let told = self
                .history
                .iter()
                .any(|(h, _, _)| decisions::key(&self.space, h) == key);
            let d = if told || self.pending.contains_key(&key) {
                if m >= n {
                    continue;
                }
                let mut seen = self.seen_keys();
                let before = self.queue.len();
                self.enqueue(&d[..m], m, &mut seen);
                if self.queue.len() == before {
                    continue;
                }
                self.queue.pop_back().unwrap().0
            } else {
                d
            };
            let arch = decisions::to_arch(&self.space, &d);
            self.pending
                .entry(decisions::key(&self.space, &d))
                .or_default()
                .push((d, m));
            return Ok(Some(arch));
        }
        Err("pnas found nothing to propose".into())
    }

    fn tell(&mut self, arch: &Architecture, metrics: &Metrics) -> Result<(), String> {
        let acc = metrics.accuracy as f32;
        if !acc.is_finite() {
            return Err(format!(
                "accuracy {} is not a finite number",
                metrics.accuracy
            ));
        }
        let d = decisions::from_arch(&self.space, arch)?;
        let key = decisions::key(&self.space, &d);
        let (d, m) = match self.pending.get_mut(&key) {
            Some(v) if !v.is_empty() => {
                let x = v.remove(0);
                if v.is_empty() {
                    self.pending.remove(&key);
                }
                x
            }
            _ => (d, self.sizes.len()),
        };
        self.history.push((d, m, acc));
        Ok(())
    }

    fn save(&self) -> Result<Value, String> {
        let mut pending: Vec<&(Vec<usize>, usize)> = self.pending.values().flatten().collect();
        pending.sort();
        let models: Vec<Vec<Vec<f32>>> = self
            .models
            .iter()
            .map(|m| m.params().iter().map(|p| p.to_vec()).collect())
            .collect();
        Ok(json!({
            "strategy": "pnas",
            "level": self.level,
            "beam": self.beam,
            "queue": self.queue,
            "history": self.history,
            "pending": pending,
            "models": models,
            "rng": self.rng.state(),
        }))
    }

    fn load(&mut self, state: Value) -> Result<(), String> {
        let n = self.sizes.len();
        let level: usize = config_field(&state, "level", 0)?;
        let beam: Vec<Vec<usize>> = config_field(&state, "beam", vec![])?;
        let queue: VecDeque<(Vec<usize>, usize)> = config_field(&state, "queue", VecDeque::new())?;
        let history: Vec<(Vec<usize>, usize, f32)> = config_field(&state, "history", vec![])?;
        let pending: Vec<(Vec<usize>, usize)> = config_field(&state, "pending", vec![])?;
        let models: Vec<Vec<Vec<f32>>> = config_field(&state, "models", vec![])?;
        if level > n {
            return Err(format!(
                "saved level {level} exceeds the space's {n} choices"
            ));
        }
        let sizes = &self.sizes;
        let fits =
            |d: &[usize], len: usize| d.len() == len && d.iter().zip(sizes).all(|(x, s)| x < s);
        if let Some(p) = beam.iter().find(|p| !fits(p, level)) {
            return Err(format!("saved beam prefix {p:?} does not fit this space"));
        }
        let full = queue
            .iter()
            .map(|(d, _)| d)
            .chain(pending.iter().map(|(d, _)| d))
            .chain(history.iter().map(|(d, _, _)| d));
        for d in full {
            if !fits(d, n) {
                return Err(format!("saved decisions {d:?} do not fit this space"));
            }
        }
        if models.len() != self.models.len() {
            return Err(format!(
                "saved state has {} surrogate models, `ensemble` is {}",
                models.len(),
                self.models.len()
            ));
        }
        for m in &models {
            let want: Vec<usize> = self.models[0].params().iter().map(|p| p.numel()).collect();
            let got: Vec<usize> = m.iter().map(|w| w.len()).collect();
            if want != got {
                return Err(format!(
                    "saved surrogate weights have sizes {got:?}, expected {want:?} (another \
                     space or `hidden`?)"
                ));
            }
        }
        for (model, w) in self.models.iter_mut().zip(&models) {
            for (p, v) in model.params().iter().zip(w) {
                p.data_mut().copy_from_slice(v);
            }
            let params = model.params().iter().map(|p| (*p).clone()).collect();
            model.opt = Adam::new(params, 1e-4, true);
        }
        self.level = level;
        self.beam = beam;
        self.queue = queue;
        self.history = history;
        self.pending.clear();
        for (d, m) in pending {
            self.pending
                .entry(decisions::key(&self.space, &d))
                .or_default()
                .push((d, m));
        }
        self.rng = Rng::from_state(config_field(&state, "rng", self.rng.state())?);
        Ok(())
    }
}

export_strategy!(Pnas, "pnas", "0.1.0");

#[cfg(test)]
mod tests {
    use super::*;
    use nas_strategies::serde_json;
    use nas_strategies::testing::*;

    fn make(space: Vec<Choice>, config: Value, seed: u64, budget: usize) -> Pnas {
        Pnas::new(&setup(space, config, seed, budget)).unwrap()
    }

    #[test]
    fn asks_are_valid_and_new_on_a_mixed_space_with_asks_in_flight() {
        let space = mixed_space();
        let obj = Objective::new(&space, 8);
        for k0 in [1, 2] {
            let mut s = make(space.clone(), json!({"k0": k0}), 8, 120);
            let accs = drive(&mut s, &obj, 120, 5);
            assert_eq!(accs.len(), 120);
            assert!(s.pending.is_empty());
            assert_eq!(s.level(), space.len());
            let keys: HashSet<String> = s
                .history
                .iter()
                .map(|(d, _, _)| decisions::key(&space, d))
                .collect();
            assert!(keys.len() >= 115, "{} distinct of 120", keys.len());
        }
    }

    #[test]
    fn levels_grow_one_choice_at_a_time() {
        let space = layer_space(6, 4);
        let obj = Objective::new(&space, 1);
        let mut s = make(space.clone(), json!({"beam": 5}), 1, 100);
        // Level 1: 5 evaluations shared by the 4 first-choice options.
        drive(&mut s, &obj, 5, 1);
        assert_eq!(s.level(), 1);
        let firsts: HashSet<usize> = s.history.iter().map(|(d, _, _)| d[0]).collect();
        assert_eq!(firsts.len(), 4);
        for level in 2..=6 {
            drive(&mut s, &obj, 5, 1);
            assert_eq!(s.level(), level);
            assert_eq!(s.beam.len(), 5);
            assert!(s.beam.iter().all(|p| p.len() == level));
            // The new prefixes extend the previous level's.
            for (d, m, _) in &s.history[s.history.len() - 5..] {
                assert_eq!(*m, level);
                assert!(s.beam.iter().any(|p| p[..] == d[..level]));
            }
        }
    }

    #[test]
    fn surrogate_learns_the_objective() {
        let space = layer_space(6, 4);
        let obj = Objective::new(&space, 3);
        let mut s = make(space.clone(), json!({}), 3, 150);
        let mut rng = Rng::new(9);
        for _ in 0..100 {
            let a = nas_strategies::random_architecture(&space, &mut rng);
            let d = decisions::from_arch(&space, &a).unwrap();
            s.history.push((d, 6, obj.accuracy(&a) as f32));
        }
        s.train(6);
        let test: Vec<Vec<usize>> = (0..200)
            .map(|_| {
                let a = nas_strategies::random_architecture(&space, &mut rng);
                decisions::from_arch(&space, &a).unwrap()
            })
            .collect();
        let truth: Vec<f64> = test
            .iter()
            .map(|d| obj.accuracy(&decisions::to_arch(&space, d)))
            .collect();
        let pred: Vec<f64> = s.predict(&test, 6).iter().map(|p| *p as f64).collect();
        let (mt, mp) = (mean(&truth), mean(&pred));
        let cov: f64 = truth
            .iter()
            .zip(&pred)
            .map(|(t, p)| (t - mt) * (p - mp))
            .sum();
        let vt: f64 = truth.iter().map(|t| (t - mt).powi(2)).sum();
        let vp: f64 = pred.iter().map(|p| (p - mp).powi(2)).sum();
        let r = cov / (vt * vp).sqrt();
        assert!(r > 0.8, "correlation of predictions with the truth {r:.3}");
    }

    #[test]
    fn bad_config_names_the_field() {
        let sp = layer_space(2, 2);
        for (c, f) in [
            (json!({"beam": 0}), "`beam`"),
            (json!({"lr": "x"}), "`lr`"),
            (json!({"bream": 3}), "`bream`"),
        ] {
            let e = Pnas::new(&setup(sp.clone(), c, 0, 10)).err().unwrap();
            assert!(e.contains(f), "{e}");
        }
    }

    #[test]
    fn save_new_load_keeps_the_surrogate_and_continues() {
        let space = mixed_space();
        let obj = Objective::new(&space, 6);
        let mut a = make(space.clone(), json!({}), 6, 100);
        drive(&mut a, &obj, 37, 1);
        let inflight = a.ask().unwrap().unwrap();
        let text = serde_json::to_string(&a.save().unwrap()).unwrap();
        let mut b = make(space.clone(), json!({}), 66, 100);
        b.load(serde_json::from_str(&text).unwrap()).unwrap();
        let probe: Vec<Vec<usize>> = a.history.iter().map(|(d, _, _)| d.clone()).collect();
        assert_eq!(
            a.predict(&probe, space.len()),
            b.predict(&probe, space.len())
        );
        assert_eq!(a.level(), b.level());
        assert_eq!(a.beam, b.beam);
        assert_eq!(a.history, b.history);
        // The queued architectures come out the same.
        let queued = a.queue.len();
        assert!(queued > 0);
        for _ in 0..queued {
            let (x, y) = (a.ask().unwrap().unwrap(), b.ask().unwrap().unwrap());
            assert_eq!(x, y);
            b.tell(&y, &obj.metrics(&y)).unwrap();
        }
        b.tell(&inflight, &obj.metrics(&inflight)).unwrap();
        assert!(b.pending.is_empty());
        drive(&mut b, &obj, 40, 3);
        let e = b.load(json!({"models": [[[1.0]]]})).err().unwrap();
        assert!(e.contains("surrogate"), "{e}");
    }

    #[test]
    fn beats_random_search_at_equal_budget() {
        let space = layer_space(6, 4);
        let (mut ours, mut rand) = (vec![], vec![]);
        for seed in 0..12 {
            let obj = Objective::new(&space, 300 + seed);
            let mut s = make(space.clone(), json!({}), seed, 150);
            ours.push(best(&drive(&mut s, &obj, 150, 1)));
            rand.push(best(&random_search(&obj, seed, 150)));
        }
        let (o, r) = (mean(&ours), mean(&rand));
        eprintln!("pnas best {o:.3} vs random {r:.3}");
        assert!(o > r + 0.1, "pnas {o:.3} vs random {r:.3}");
    }
}
