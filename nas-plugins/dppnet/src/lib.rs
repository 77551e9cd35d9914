//! DPP-Net (Dong et al., ECCV 2018), device-aware progressive search: cells grow one
//! block at a time as in PNAS; at each depth every expansion of the kept cells gets a
//! predicted accuracy (a surrogate fitted on the results so far) and predicted device
//! costs (latency, parameters, multiply-adds, memory; [`costs`]), those over the device
//! budget are dropped, and the `K` evaluated are chosen by Pareto optimality over
//! predicted accuracy and the costs ([`pareto`]), front by front.
//!
//! # Blocks and unfinished cells
//!
//! As in `pnas`: consecutive choices labelled `P_J_I` sharing `P_J` (a node of a cell;
//! an input choice whose `edge_ops` name such edges joins it) form one block, every other
//! choice is a block of its own. A cell grown to `b` blocks is evaluated with the later
//! blocks fixed: a node block of layer choices that offer `skip_connect` on edge
//! `J-1 -> J` and `none` on the others becomes that pass-through (in `nb201` the cell is
//! then exactly the smaller cell), any other block takes option 0 of each choice.
//!
//! # The search
//!
//! Every depth `d` (the first starts from the all-fixed cell): every kept cell is
//! expanded by every option of block `d` (a uniform sample of `max_candidates` when
//! there are more), in random order. `K` of them are picked in `rounds` batches: before
//! each batch the surrogate and the cost models are fitted on every result told, each
//! unpicked expansion is predicted, those whose predicted cost (plus `margin` times the
//! model's residual RMS) exceeds a limit are left out, and the batch is taken from the
//! rest front by front (whole fronts, then from the front that does not fit the lowest
//! predicted error). The picks are kept; each is asked unless it was asked before. At
//! full depth further asks pick from the depth's remaining expansions, then from uniform
//! samples of unasked architectures; `ask` answers `None` when a fresh sample leaves
//! nothing within the budget.
//!
//! `K` for depth `d` of `B` is the budget left over `B - d + 1` (at least 1), or `beam`.
//!
//! # The budget
//!
//! `max_latency_ms`, `max_params`, `max_macs` and `limits` are the host's hard limits
//! (`nas_types::config_limits`): the host returns only architectures within them, and
//! the plugin also filters its candidates by them before evaluation. `max_memory_mb`
//! is the plugin's own (memory is not a host limit): 4 bytes per weight plus 4 per
//! activation of a batch of `batch` images (the `activations` the evaluators report).
//! Before two results report a cost its model is unfitted, and that cost filters
//! nothing by prediction. When the host opens its cost model (`ask_costed`, as `nas
//! search` does), every pick is also costed exactly before it is asked, and a pick
//! over a limit leaves the pool: nothing asked is over the budget. A pick whose costs
//! the host could not measure because the device cannot run it (costs marked failed)
//! is over every limit, and leaves the pool too.

pub mod costs;
pub mod pareto;

use costs::{costs_of, CostModel, Features, COSTS};
use nas_predict::{Encoding, MlpConfig, MlpEnsemble, OneHot, PathEncoding, Surrogate};
use nas_strategies::{
    config_field, decisions, export_strategy, json, Architecture, Choice, ChoiceKind, Costs,
    Metrics, Rng, Setup, Strategy, Value,
};
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::ops::Range;

const FIELDS: &[&str] = &[
    "beam",
    "rounds",
    "max_candidates",
    "margin",
    "max_memory_mb",
    "batch",
    "max_over",
];

/// The beam when the budget is unknown (PNAS's).
const DEFAULT_BEAM: usize = 256;

#[derive(Clone, Debug)]
pub struct Config {
    beam: Option<usize>,
    rounds: usize,
    max_candidates: usize,
    margin: f64,
    batch: usize,
    /// (index into [`COSTS`], maximum).
    limits: Vec<(usize, f64)>,
    /// Architectures the host's exact costs may put over the limits, none within,
    /// before the search ends as out of their reach.
    max_over: usize,
}

impl Config {
    pub fn parse(c: &Value, budget: usize) -> Result<Config, String> {
        nas_strategies::check_config_fields(c, "dppnet", FIELDS)?;
        let count = nas_strategies::config_count;
        let max_candidates = count(c, "max_candidates", 20_000, 1, 1_000_000)?;
        let beam: Option<usize> = config_field(c, "beam", None)?;
        let beam = beam
            .map(|k| nas_strategies::check_count("beam", k, 1, max_candidates))
            .transpose()?;
        let margin: f64 = config_field(c, "margin", 1.0)?;
        if !(0.0..=100.0).contains(&margin) {
            return Err(format!(
                "config field `margin`: {margin} is out of range (allowed 0..=100)"
            ));
        }
        let mut limits = vec![];
        for (k, max) in nas_strategies::config_limits(c)? {
            let i = COSTS.iter().position(|n| *n == k).expect("a host cost");
            limits.push((i, max));
        }
        if let Some(v) = c.get("max_memory_mb").filter(|v| !v.is_null()) {
            match v.as_f64() {
                Some(x) if x.is_finite() && x >= 0.0 => limits.push((3, x)),
                _ => {
                    return Err(format!(
                        "config field `max_memory_mb`: {v} is not valid (a number >= 0)"
                    ))
                }
            }
        }
        Ok(Config {
            beam,
            rounds: count(c, "rounds", 1, 1, budget.max(1))?,
            max_candidates,
            margin,
            batch: count(c, "batch", 1, 1, 1 << 20)?,
            limits,
            max_over: count(c, "max_over", 1000, 1, 100_000_000)?,
        })
    }
}

/// A block: its choices and the options they take while it is not grown.
#[derive(Clone, Debug)]
struct Block {
    range: Range<usize>,
    fill: Vec<usize>,
}

/// The node (`P_J`) of a choice: its own label's, or its edges'.
fn node_of(c: &Choice) -> Option<(&str, usize)> {
    let label = c.edge_ops.first().unwrap_or(&c.label);
    nas_predict::encode::cell_edge(label).map(|(p, j, _)| (p, j))
}

/// The pass-through completion of a node block, if it has one.
fn pass_through(space: &[Choice]) -> Option<Vec<usize>> {
    let mut from_prev = false;
    let mut out = vec![];
    for c in space {
        let (_, j, i) = nas_predict::encode::cell_edge(&c.label)?;
        let ChoiceKind::Layer { candidates } = &c.kind else {
            return None;
        };
        if c.inside.is_some() {
            return None;
        }
        from_prev |= i + 1 == j;
        let want = if i + 1 == j { "skip_connect" } else { "none" };
        out.push(candidates.iter().position(|x| x == want)?);
    }
    from_prev.then_some(out)
}

fn make_blocks(space: &[Choice]) -> Vec<Block> {
    let mut blocks = vec![];
    let mut start = 0;
    for end in 1..=space.len() {
        let split = end == space.len() || {
            let (a, b) = (node_of(&space[end - 1]), node_of(&space[end]));
            a.is_none() || a != b
        };
        if split {
            let fill = pass_through(&space[start..end]).unwrap_or_else(|| vec![0; end - start]);
            blocks.push(Block {
                range: start..end,
                fill,
            });
            start = end;
        }
    }
    blocks
}

/// A told result: decisions, accuracy and costs (in the order of [`COSTS`]).
#[derive(Clone, Debug)]
struct Told {
    d: Vec<usize>,
    accuracy: f64,
    costs: [Option<f64>; 4],
}

pub struct Dppnet {
    space: Vec<Choice>,
    sizes: Vec<usize>,
    blocks: Vec<Block>,
    cfg: Config,
    seed: u64,
    budget: usize,
    encoding: Box<dyn Encoding + Send>,
    features: Features,
    rng: Rng,
    /// Blocks grown (0 before the first depth).
    depth: usize,
    /// The cells picked at this depth.
    kept: Vec<Vec<usize>>,
    /// This depth's expansions not picked yet.
    pool: Vec<Vec<usize>>,
    picks_left: usize,
    /// Picks per batch at this depth.
    batch: usize,
    /// Whether the pool is a sample of the whole space (after full depth).
    sampled: bool,
    queue: VecDeque<Vec<usize>>,
    results: Vec<Told>,
    /// Keys of every architecture asked or queued.
    seen: HashSet<String>,
    asked: usize,
    /// Surrogate fits so far (each fit's seed).
    fits: u64,
    /// The host's exact costs of candidates the Pareto selection chose, by key (when the
    /// host has a cost model: `ask_costed`).
    exact: BTreeMap<String, [Option<f64>; 4]>,
    /// Whether the host's exact costs put any architecture of `exact` within the limits
    /// (kept as they come; a loaded state works it out from `exact`). Until then, every
    /// one of `exact` was over them.
    reached: bool,
}

impl Dppnet {
    fn key(&self, d: &[usize]) -> String {
        decisions::key(&self.space, d)
    }

    /// `K` for a depth.
    fn beam(&self, depth: usize) -> usize {
        if let Some(k) = self.cfg.beam {
            return k;
        }
        if self.budget == 0 {
            return DEFAULT_BEAM;
        }
        let left = self.budget.saturating_sub(self.asked);
        (left / (self.blocks.len() + 1 - depth.min(self.blocks.len()))).max(1)
    }

    /// Every expansion of the kept cells by block `b` (a uniform sample of
    /// `max_candidates` distinct ones when there are more), shuffled.
    fn expand(&mut self, b: usize) -> Vec<Vec<usize>> {
        let r = self.blocks[b].range.clone();
        let sizes = self.sizes.clone();
        let options: usize = sizes[r.clone()].iter().product();
        let set = |cell: &[usize], mut o: usize| {
            let mut d = cell.to_vec();
            for i in r.clone().rev() {
                d[i] = o % sizes[i];
                o /= sizes[i];
            }
            d
        };
        let total = self.kept.len().saturating_mul(options);
        let mut out = vec![];
        if total <= self.cfg.max_candidates {
            for cell in &self.kept {
                out.extend((0..options).map(|o| set(cell, o)));
            }
        } else {
            let mut keys = HashSet::new();
            for _ in 0..self.cfg.max_candidates * 4 {
                if out.len() == self.cfg.max_candidates {
                    break;
                }
                let cell = &self.kept[self.rng.below(self.kept.len())];
                let d = set(cell, self.rng.below(options));
                if keys.insert(decisions::key(&self.space, &d)) {
                    out.push(d);
                }
            }
        }
        self.rng.shuffle(&mut out);
        out
    }

    /// A uniform sample of unasked architectures (at most `max_candidates`).
    fn sample_unseen(&mut self) -> Vec<Vec<usize>> {
        let mut keys = HashSet::new();
        let mut out = vec![];
        for _ in 0..self.cfg.max_candidates {
            let d: Vec<usize> = self.sizes.iter().map(|&s| self.rng.below(s)).collect();
            let k = self.key(&d);
            if !self.seen.contains(&k) && keys.insert(k) {
                out.push(d);
            }
        }
        out
    }

    /// Predicted accuracy of each pool member (0 for all before two results).
    fn predict_accuracy(&mut self) -> Result<Vec<f64>, String> {
        if self.results.len() < 2 {
            return Ok(vec![0.0; self.pool.len()]);
        }
        let x: Vec<Vec<f32>> = self
            .results
            .iter()
            .map(|t| self.encoding.encode(&t.d))
            .collect();
        let y: Vec<f64> = self.results.iter().map(|t| t.accuracy).collect();
        self.fits += 1;
        let mut s = MlpEnsemble::new(
            MlpConfig::default(),
            self.seed ^ self.fits.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        )?;
        s.fit(&x, &y)?;
        let px: Vec<Vec<f32>> = self.pool.iter().map(|d| self.encoding.encode(d)).collect();
        Ok(s.predict(&px).iter().map(|p| p.mean).collect())
    }

    /// Predicted costs of each pool member: `(cost index, prediction, margin)` per cost
    /// with a fitted model; an architecture already told, or costed by the host, has its
    /// own costs, margin 0.
    fn predict_costs(&self) -> Vec<Vec<(usize, f64, f64)>> {
        let models: Vec<(usize, CostModel)> = (0..COSTS.len())
            .filter_map(|c| {
                let data: Vec<(&[usize], f64)> = self
                    .results
                    .iter()
                    .filter_map(|t| t.costs[c].map(|v| (&t.d[..], v)))
                    .collect();
                CostModel::fit(&self.features, &data).map(|m| (c, m))
            })
            .collect();
        let told: std::collections::HashMap<String, &Told> =
            self.results.iter().map(|t| (self.key(&t.d), t)).collect();
        self.pool
            .iter()
            .map(|d| {
                let key = self.key(d);
                let known = told
                    .get(&key)
                    .map(|t| t.costs)
                    .or_else(|| self.exact.get(&key).copied());
                models
                    .iter()
                    .map(|(c, m)| match known.and_then(|k| k[*c]) {
                        Some(v) => (*c, v, 0.0),
                        None => (*c, m.predict(&self.features, d), self.cfg.margin * m.rmse),
                    })
                    .collect()
            })
            .collect()
    }

    /// Whether pool member `i` is within the budget by the host's exact costs.
    fn exactly_within(&mut self, i: usize, costs: &Costs) -> Result<bool, String> {
        let key = self.key(&self.pool[i]);
        let c = match self.exact.get(&key) {
            Some(c) => *c,
            None => {
                let arch = decisions::to_arch(&self.space, &self.pool[i]);
                let m = costs.metrics(&arch)?;
                // A network the device cannot run (the host's costs say it failed
                // there) is over every device budget.
                let c = match m.is_failed() {
                    true => [Some(f64::MAX); 4],
                    false => costs_of(&m, self.cfg.batch),
                };
                self.exact.insert(key, c);
                let within = self.within(&c);
                self.reached |= within;
                return Ok(within);
            }
        };
        Ok(self.within(&c))
    }

    fn within(&self, c: &[Option<f64>; 4]) -> bool {
        self.cfg
            .limits
            .iter()
            .all(|(k, max)| c[*k].is_none_or(|v| v <= *max))
    }

    /// Whether the first `max_over` architectures the host costed were all over the
    /// limits: the search ends there rather than cost the rest of the space one by one
    /// (a pool of 20,000 candidates, each built and timed by the host).
    fn out_of_reach(&self) -> bool {
        !self.reached && self.exact.len() >= self.cfg.max_over
    }

    /// The end of a search whose limits are out of reach: an error saying how far the
    /// least costly architectures seen are.
    fn end_out_of_reach(&self) -> Result<Option<Architecture>, String> {
        let limits: Vec<String> = self
            .cfg
            .limits
            .iter()
            .map(|(k, max)| {
                let least = self
                    .exact
                    .values()
                    .filter_map(|c| c[*k])
                    .filter(|v| *v < f64::MAX)
                    .fold(f64::INFINITY, f64::min);
                match least.is_finite() {
                    true => format!("{} <= {max}, the least seen {least}", COSTS[*k]),
                    false => format!("{} <= {max}", COSTS[*k]),
                }
            })
            .collect();
        Err(format!(
            "no architecture within the limits: the host's exact costs put all {} \
             architectures costed over them ({}); loosen the limits, or raise the \
             config field `max_over` (now {}) to look further",
            self.exact.len(),
            limits.join("; "),
            self.cfg.max_over
        ))
    }

    /// Picks the next batch from the pool; how many it picked. With the host's costs
    /// (`host`), every pick is within the budget by its exact costs: a chosen candidate
    /// over it leaves the pool and the selection runs again without it.
    fn pick(&mut self, host: Option<&Costs>) -> Result<usize, String> {
        let acc = self.predict_accuracy()?;
        let costs = self.predict_costs();
        let mut candidates = vec![];
        let mut points = vec![];
        for (i, pc) in costs.iter().enumerate() {
            let within = self.cfg.limits.iter().all(|(c, max)| {
                pc.iter()
                    .find(|(k, _, _)| k == c)
                    .is_none_or(|(_, v, m)| v + m <= *max)
            });
            if within {
                candidates.push(i);
                let mut p = vec![-acc[i]];
                p.extend(pc.iter().map(|(_, v, _)| *v));
                points.push(p);
            }
        }
        let n = self.batch.min(self.picks_left);
        let mut over: Vec<usize> = vec![];
        // How far down the selection's order the exact costs are checked after a batch
        // came out wholly over the budget: doubled each time, so a pool mostly over it
        // is cleared in a few selections, not in one selection per batch (before, an
        // unreachable limit on NAS-Bench-201 took 109 s of selections to end).
        let mut probe = n;
        let chosen: Vec<usize> = loop {
            let chosen: Vec<usize> = pareto::select(&points, n)
                .into_iter()
                .map(|j| candidates[j])
                .collect();
            let Some(host) = host.filter(|_| !self.cfg.limits.is_empty()) else {
                break chosen;
            };
            let mut out = vec![];
            for &i in &chosen {
                if self.out_of_reach() {
                    break;
                }
                if !self.exactly_within(i, host)? {
                    out.push(i);
                }
            }
            if self.out_of_reach() {
                break vec![];
            }
            if out.is_empty() {
                break chosen;
            }
            let all_over = out.len() == chosen.len();
            if probe > n {
                for j in pareto::select(&points, probe) {
                    let i = candidates[j];
                    if self.out_of_reach() {
                        break;
                    }
                    if !out.contains(&i) && !self.exactly_within(i, host)? {
                        out.push(i);
                    }
                }
            }
            if all_over {
                probe = probe.saturating_mul(2);
            }
            let keep: Vec<bool> = candidates.iter().map(|i| !out.contains(i)).collect();
            let mut k = keep.iter();
            points.retain(|_| *k.next().unwrap());
            let mut k = keep.iter();
            candidates.retain(|_| *k.next().unwrap());
            over.extend(out);
        };
        let picked: Vec<Vec<usize>> = chosen.iter().map(|&i| self.pool[i].clone()).collect();
        let mut gone: Vec<usize> = chosen.into_iter().chain(over).collect();
        gone.sort_unstable_by(|a, b| b.cmp(a));
        for i in gone {
            self.pool.swap_remove(i);
        }
        for d in picked.iter() {
            if self.seen.insert(self.key(d)) {
                self.queue.push_back(d.clone());
            }
        }
        self.picks_left = if picked.is_empty() {
            0
        } else {
            self.picks_left - picked.len()
        };
        let got = picked.len();
        self.kept.extend(picked);
        Ok(got)
    }

    /// The next architecture to ask (`ask`'s answer), with the host's costs when given.
    fn next(&mut self, host: Option<&Costs>) -> Result<Option<Architecture>, String> {
        loop {
            if let Some(d) = self.queue.pop_front() {
                self.asked += 1;
                return Ok(Some(decisions::to_arch(&self.space, &d)));
            }
            if self.out_of_reach() {
                return self.end_out_of_reach();
            }
            if self.picks_left > 0 && !self.pool.is_empty() {
                if self.pick(host)? == 0 {
                    if self.out_of_reach() {
                        continue;
                    }
                    if self.sampled {
                        // A fresh sample of the whole space with nothing predicted
                        // within the budget: nothing is left to propose.
                        return Ok(None);
                    }
                    // Nothing left here is predicted within the budget: go on from a
                    // sample of the whole space.
                    self.pool.clear();
                    self.kept.clear();
                }
                continue;
            }
            if !self.advance() {
                return Ok(None);
            }
        }
    }

    /// Starts the next depth, or at full depth the next round; false when nothing is left.
    fn advance(&mut self) -> bool {
        let full = self.blocks.len();
        if self.depth < full && (self.depth == 0 || !self.kept.is_empty()) {
            if self.depth == 0 {
                let mut base = vec![0; self.space.len()];
                for b in &self.blocks {
                    base[b.range.clone()].copy_from_slice(&b.fill);
                }
                self.kept = vec![base];
            }
            self.pool = self.expand(self.depth);
            self.kept.clear();
            self.depth += 1;
        } else {
            self.depth = full;
            let seen = &self.seen;
            let space = &self.space;
            self.pool
                .retain(|d| !seen.contains(&decisions::key(space, d)));
            self.sampled = self.pool.is_empty();
            if self.sampled {
                self.pool = self.sample_unseen();
            }
            if self.pool.is_empty() {
                return false;
            }
        }
        let k = self.beam(self.depth);
        self.picks_left = k;
        self.batch = k.div_ceil(self.cfg.rounds).max(1);
        true
    }
}

impl Strategy for Dppnet {
    fn new(setup: &Setup) -> Result<Self, String> {
        decisions::check_space(&setup.space)?;
        let cfg = Config::parse(&setup.config, setup.budget)?;
        let encoding: Box<dyn Encoding + Send> = match PathEncoding::new(&setup.space) {
            Ok(p) => Box::new(p),
            Err(_) => Box::new(OneHot::new(&setup.space)),
        };
        Ok(Dppnet {
            sizes: decisions::sizes(&setup.space),
            blocks: make_blocks(&setup.space),
            features: Features::new(&setup.space),
            space: setup.space.clone(),
            cfg,
            seed: setup.seed,
            budget: setup.budget,
            encoding,
            rng: Rng::new(setup.seed),
            depth: 0,
            kept: vec![],
            pool: vec![],
            picks_left: 0,
            batch: 1,
            sampled: false,
            queue: VecDeque::new(),
            results: vec![],
            seen: HashSet::new(),
            asked: 0,
            fits: 0,
            exact: BTreeMap::new(),
            reached: false,
        })
    }

    fn ask(&mut self) -> Result<Option<Architecture>, String> {
        self.next(None)
    }

    /// With the host's cost model, no architecture over the budget is asked: each pick
    /// is checked by its exact costs (the paper's device constraints, computed for the
    /// candidate rather than predicted).
    fn ask_costed(&mut self, costs: &Costs) -> Result<Option<Architecture>, String> {
        self.next(Some(costs))
    }

    fn tell(&mut self, arch: &Architecture, m: &Metrics) -> Result<(), String> {
        if m.is_failed() {
            return Ok(());
        }
        // A NaN would be saved as `null` and read back as 0: a resumed search would fit
        // another surrogate than the uninterrupted one.
        if !m.accuracy.is_finite() {
            return Err(format!("dppnet: accuracy {} is not finite", m.accuracy));
        }
        let d = decisions::from_arch(&self.space, arch)?;
        self.seen.insert(self.key(&d));
        self.results.push(Told {
            d,
            accuracy: m.accuracy,
            costs: costs_of(m, self.cfg.batch),
        });
        Ok(())
    }

    fn save(&self) -> Result<Value, String> {
        let results: Vec<Value> = self
            .results
            .iter()
            .map(|t| json!({"d": t.d, "accuracy": t.accuracy, "costs": t.costs}))
            .collect();
        let mut seen: Vec<&String> = self.seen.iter().collect();
        seen.sort();
        Ok(json!({
            "depth": self.depth,
            "kept": self.kept,
            "pool": self.pool,
            "picks_left": self.picks_left,
            "batch": self.batch,
            "sampled": self.sampled,
            "queue": self.queue,
            "results": results,
            "seen": seen,
            "asked": self.asked,
            "fits": self.fits,
            "rng": self.rng.state(),
            "exact": self.exact,
        }))
    }

    fn load(&mut self, s: Value) -> Result<(), String> {
        let f = |k: &str| format!("dppnet state: {k}");
        self.depth = config_field(&s, "depth", 0).map_err(|e| f(&e))?;
        if self.depth > self.blocks.len() {
            return Err(f(&format!(
                "depth {} > {} blocks",
                self.depth,
                self.blocks.len()
            )));
        }
        let vectors = |k: &str| -> Result<Vec<Vec<usize>>, String> {
            let v: Vec<Vec<usize>> = config_field(&s, k, vec![]).map_err(|e| f(&e))?;
            match v.iter().find(|d| {
                d.len() != self.sizes.len() || d.iter().zip(&self.sizes).any(|(o, n)| o >= n)
            }) {
                Some(d) => Err(f(&format!(
                    "`{k}`: {d:?} is not a decision vector of this space"
                ))),
                None => Ok(v),
            }
        };
        self.kept = vectors("kept")?;
        self.pool = vectors("pool")?;
        self.queue = vectors("queue")?.into();
        self.picks_left = config_field(&s, "picks_left", 0).map_err(|e| f(&e))?;
        self.batch = config_field::<usize>(&s, "batch", 1)
            .map_err(|e| f(&e))?
            .max(1);
        self.sampled = config_field(&s, "sampled", false).map_err(|e| f(&e))?;
        self.asked = config_field(&s, "asked", 0).map_err(|e| f(&e))?;
        self.fits = config_field(&s, "fits", 0).map_err(|e| f(&e))?;
        self.exact = config_field(&s, "exact", BTreeMap::new()).map_err(|e| f(&e))?;
        self.reached = self.exact.values().any(|c| self.within(c));
        self.rng = nas_strategies::oneshot::rng_in_state(&s).map_err(|e| f(&e))?;
        let seen: Vec<String> = config_field(&s, "seen", vec![]).map_err(|e| f(&e))?;
        self.seen = seen.into_iter().collect();
        let results: Vec<Value> = config_field(&s, "results", vec![]).map_err(|e| f(&e))?;
        self.results = vec![];
        for r in results {
            let d: Vec<usize> = config_field(&r, "d", vec![]).map_err(|e| f(&e))?;
            if d.len() != self.sizes.len() || d.iter().zip(&self.sizes).any(|(o, n)| o >= n) {
                return Err(f(&format!(
                    "result {d:?} is not a decision vector of this space"
                )));
            }
            self.results.push(Told {
                d,
                accuracy: config_field(&r, "accuracy", 0.0).map_err(|e| f(&e))?,
                costs: config_field(&r, "costs", [None; 4]).map_err(|e| f(&e))?,
            });
        }
        Ok(())
    }
}

export_strategy!(Dppnet, "dppnet", "0.1.1");
