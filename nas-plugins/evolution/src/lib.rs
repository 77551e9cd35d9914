//! Regularized (aging) evolution, after Real et al., "Regularized Evolution for Image
//! Classifier Architecture Search" (AmoebaNet, 2019).
//!
//! The first `population` asks are random architectures. Once that many trials have been
//! told, each ask runs a tournament: `sample` members of the population are drawn
//! uniformly with replacement, as in the paper's algorithm, and the best one is mutated
//! (one random active choice changes to another of its options; an input choice swaps
//! one chosen index for an unused one; after a repeat changes depth, the choices of
//! blocks it no longer builds are dropped and those of new blocks drawn at random). Each tell adds the trial to the population and, once the
//! population is full, removes its oldest member. Asks may run ahead of tells, and tells
//! may come in any order: a child simply joins the population when it is told.
//!
//! With several objectives (`"objectives": ["accuracy", "params"]`, any of `accuracy`,
//! `params`, `macs`, `latency_ms`; accuracy is maximised, costs minimised) the tournament
//! compares members NSGA-II style: by non-dominated rank, then by crowding distance.
//! With `"limits": {"params": 1e6, "macs": ..., "latency_ms": ...}` a trial whose metrics
//! exceed a limit is infeasible: it stays in the population (and ages out), but it is
//! ranked after every feasible member and is never a parent. While no member is feasible,
//! asks are random.
//!
//! An ask never proposes an architecture the strategy has proposed or been told before
//! (a trial would be spent re-scoring it): a mutation that lands on one is drawn again
//! (up to 32 times, as is a random architecture of the first asks), and when every draw
//! lands on a known one, the ask takes the first unknown architecture of a walk over the
//! whole space in a random order (it stops at the first unknown one, so it visits at most
//! one more architecture than are known). Once the whole space has been proposed, asks
//! return none and the search ends. With `"reevaluate": true` (for noisy evaluators,
//! where a second score of the same architecture tells something) asks are plain
//! mutations and random draws, repeats included.
//!
//! Config: `population` (default 50, at most 100000), `sample` (tournament size, default
//! 10, at most the population), `objectives` (default `["accuracy"]`), `limits` (default
//! none; `max_params`, `max_macs` and `max_latency_ms` are the same limits, and where both
//! forms name one cost the tighter holds), `reevaluate` (default false).
//!
//! A trial's accuracy that is not a finite number counts as 0; a cost that is not finite
//! counts as the largest float. An objective or limit on a metric the trial lacks is an
//! error at tell.

use nas_strategies::oneshot::{rng_in_state, state_field};
use nas_strategies::{arch, choices, pareto};
use std::collections::HashSet;

use choices::{
    active_flags, canonical, in_built_block, input_indices, option, random_option, repair,
    same_value, size,
};
use nas_strategies::{
    config_field, export_strategy, json, serde_json, Architecture, Choice, ChoiceKind, Metrics,
    Rng, Setup, Strategy, Value,
};

/// The state of [`Evolution::unknown`]'s walk.
struct Walk<'a> {
    space: &'a [Choice],
    offsets: &'a [u128],
    edge_op: &'a [bool],
    known: &'a dyn Fn(&Architecture) -> bool,
}

impl Walk<'_> {
    /// The first unknown architecture that completes `arch` from choice `i` on.
    fn from(&self, i: usize, arch: &mut Architecture) -> Option<Architecture> {
        let Some(c) = self.space.get(i) else {
            return (!(self.known)(arch)).then(|| arch.clone());
        };
        // Choices come in definition order: a repeat's depth is set before its blocks'.
        if self.edge_op[i] || !in_built_block(c, arch) {
            return self.from(i + 1, arch);
        }
        let n = size(c);
        for k in 0..n {
            let v = option(c, (k + self.offsets[i]) % n);
            let ops: Vec<usize> = match arch::edge_input(c) {
                Some(_) => arch::as_indices(&v)
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|&e| c.edge_ops.get(e))
                    .filter_map(|op| arch::edge_op_position(self.space, i, op))
                    .collect(),
                None => vec![],
            };
            arch.insert(c.label.clone(), v);
            if let Some(a) = self.ops(i, &ops, arch) {
                return Some(a);
            }
        }
        arch.remove(&c.label);
        None
    }

    /// The first unknown architecture that sets the edge ops `ops` (picked by input
    /// choice `i`), then completes `arch` from choice `i + 1` on.
    fn ops(&self, i: usize, ops: &[usize], arch: &mut Architecture) -> Option<Architecture> {
        let Some((&o, rest)) = ops.split_first() else {
            return self.from(i + 1, arch);
        };
        let c = &self.space[o];
        let n = size(c);
        for k in 0..n {
            arch.insert(c.label.clone(), option(c, (k + self.offsets[o]) % n));
            if let Some(a) = self.ops(i, rest, arch) {
                return Some(a);
            }
        }
        arch.remove(&c.label);
        None
    }
}

/// A quantity a trial reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Objective {
    Accuracy,
    Params,
    Macs,
    Latency,
}

impl Objective {
    const ALL: [Objective; 4] = [
        Objective::Accuracy,
        Objective::Params,
        Objective::Macs,
        Objective::Latency,
    ];

    fn name(self) -> &'static str {
        match self {
            Objective::Accuracy => "accuracy",
            Objective::Params => "params",
            Objective::Macs => "macs",
            Objective::Latency => "latency_ms",
        }
    }

    fn parse(s: &str) -> Option<Objective> {
        Objective::ALL.into_iter().find(|o| o.name() == s)
    }

    fn raw(self, m: &Metrics) -> Option<f64> {
        match self {
            Objective::Accuracy => Some(m.accuracy),
            Objective::Params => m.params,
            Objective::Macs => m.macs,
            Objective::Latency => m.latency_ms,
        }
    }

    /// The value to minimise (accuracy negated).
    fn minimised(self, m: &Metrics) -> Result<f64, String> {
        let v = self.raw(m).ok_or_else(|| {
            format!(
                "objective `{}` needs the trial's `{}` metric, which the evaluator did not \
                 report",
                self.name(),
                self.name()
            )
        })?;
        Ok(if self == Objective::Accuracy { -v } else { v })
    }
}

/// Non-finite numbers made serialisable and ordered: accuracy counts as 0, costs as the
/// largest float.
fn clean(m: &Metrics) -> Metrics {
    let mut m = m.clone();
    if !m.accuracy.is_finite() {
        m.accuracy = 0.0;
    }
    for x in [&mut m.params, &mut m.macs, &mut m.latency_ms]
        .into_iter()
        .flatten()
    {
        if !x.is_finite() {
            *x = f64::MAX;
        }
    }
    m
}

struct Member {
    arch: Architecture,
    metrics: Metrics,
    /// The order it was told in: the smallest is the oldest.
    born: u64,
    /// Its objectives, all to minimise.
    objectives: Vec<f64>,
    feasible: bool,
}

pub struct Evolution {
    space: Vec<Choice>,
    population_size: usize,
    sample: usize,
    objectives: Vec<Objective>,
    limits: Vec<(Objective, f64)>,
    rng: Rng,
    /// Oldest first.
    population: Vec<Member>,
    born: u64,
    /// Asks not yet told.
    pending: usize,
    /// Whether asks may repeat an architecture already proposed or told.
    reevaluate: bool,
    /// The canonical keys of every architecture proposed or told (see [`key`]).
    seen: HashSet<String>,
}

/// Tries of a mutation (or random draw) before an ask walks the space for an unknown
/// architecture.
const DRAWS: usize = 32;

/// An architecture's identity: its canonical option indices (`-` where a choice is
/// inactive), so equal architectures have one key whatever their inactive entries.
pub fn key(space: &[Choice], arch: &Architecture) -> String {
    match canonical(space, arch) {
        Ok(idx) => idx
            .iter()
            .map(|i| i.map_or("-".to_string(), |k| k.to_string()))
            .collect::<Vec<_>>()
            .join("."),
        // Not of the space (the host refuses it anyway): its JSON keeps it distinct.
        Err(_) => serde_json::to_string(arch).unwrap_or_default(),
    }
}

/// The front number of each point (0 for the Pareto front; all objectives minimised).
pub fn nondominated_ranks(points: &[Vec<f64>]) -> Vec<usize> {
    pareto::ranks(&pareto::fronts(points), points.len())
}

/// The indices of the non-dominated points of `(accuracy, cost)` pairs: accuracy
/// maximised, cost minimised. Equal points do not dominate each other.
pub fn pareto_front(points: &[(f64, f64)]) -> Vec<usize> {
    let p: Vec<Vec<f64>> = points.iter().map(|&(a, c)| vec![-a, c]).collect();
    let ranks = nondominated_ranks(&p);
    (0..p.len()).filter(|&i| ranks[i] == 0).collect()
}

impl Evolution {
    fn member(&self, arch: Architecture, metrics: &Metrics, born: u64) -> Result<Member, String> {
        let metrics = clean(metrics);
        let objectives = self
            .objectives
            .iter()
            .map(|o| o.minimised(&metrics))
            .collect::<Result<Vec<_>, _>>()?;
        let mut feasible = true;
        for &(o, limit) in &self.limits {
            let v = o.raw(&metrics).ok_or_else(|| {
                format!(
                    "limit on `{}` needs the trial's `{}` metric, which the evaluator did not \
                     report",
                    o.name(),
                    o.name()
                )
            })?;
            feasible &= v <= limit;
        }
        Ok(Member {
            arch,
            metrics,
            born,
            objectives,
            feasible,
        })
    }

    /// Rank and crowding distance of the feasible members (by population index);
    /// infeasible members rank after all of them.
    fn ranking(&self) -> (Vec<usize>, Vec<f64>) {
        let feasible: Vec<usize> = (0..self.population.len())
            .filter(|&i| self.population[i].feasible)
            .collect();
        let points: Vec<Vec<f64>> = feasible
            .iter()
            .map(|&i| self.population[i].objectives.clone())
            .collect();
        let (r, c) =
            pareto::ranks_and_crowding(&pareto::fronts(&points), points.len(), |i| &points[i]);
        let mut rank = vec![usize::MAX; self.population.len()];
        let mut crowd = vec![0.0; self.population.len()];
        for (k, &i) in feasible.iter().enumerate() {
            rank[i] = r[k];
            crowd[i] = c[k];
        }
        (rank, crowd)
    }

    /// The parent: the best of `sample` feasible members drawn uniformly with
    /// replacement, as the paper's algorithm draws its sample (a member can be drawn
    /// twice).
    fn tournament(&mut self, feasible: &[usize]) -> usize {
        let drawn: Vec<usize> = (0..self.sample)
            .map(|_| feasible[self.rng.below(feasible.len())])
            .collect();
        if self.objectives.len() == 1 {
            let v = |i: usize| self.population[i].objectives[0];
            let mut best = drawn[0];
            for &i in &drawn[1..] {
                if v(i) < v(best) {
                    best = i;
                }
            }
            best
        } else {
            let (rank, crowd) = self.ranking();
            let mut best = drawn[0];
            for &i in &drawn[1..] {
                if rank[i] < rank[best] || (rank[i] == rank[best] && crowd[i] > crowd[best]) {
                    best = i;
                }
            }
            best
        }
    }

    /// `parent` with one random active choice changed, then repaired.
    pub fn mutate(&mut self, parent: &Architecture) -> Architecture {
        let mut child = parent.clone();
        repair(&self.space, &mut child, &mut self.rng);
        let on = active_flags(&self.space, &child);
        let mutable: Vec<usize> = (0..self.space.len())
            .filter(|&i| {
                let c = &self.space[i];
                if !on[i] {
                    return false;
                }
                let cur = &child[&c.label];
                match &c.kind {
                    ChoiceKind::Input {
                        n_candidates,
                        n_chosen,
                        ..
                    } => n_chosen < n_candidates,
                    _ => (0..size(c)).any(|k| !same_value(&option(c, k), cur)),
                }
            })
            .collect();
        if mutable.is_empty() {
            return child;
        }
        let c = &self.space[mutable[self.rng.below(mutable.len())]];
        let cur = child[&c.label].clone();
        let new = match &c.kind {
            ChoiceKind::Input {
                n_candidates,
                n_chosen,
                ..
            } => match input_indices(&cur, *n_candidates, *n_chosen) {
                Some(mut idx) => {
                    let unused: Vec<usize> =
                        (0..*n_candidates).filter(|i| !idx.contains(i)).collect();
                    let at = self.rng.below(idx.len());
                    let (from, to) = (idx[at], unused[self.rng.below(unused.len())]);
                    idx[at] = to;
                    idx.sort_unstable();
                    // A node's slot moves to another input and keeps its op (the paper's
                    // hidden-state mutation), where the input choice picks among edges.
                    if let (Some(f), Some(t)) = (c.edge_ops.get(from), c.edge_ops.get(to)) {
                        if let Some(op) = child.get(f).cloned() {
                            child.insert(t.clone(), op);
                        }
                    }
                    Value::from(idx)
                }
                None => random_option(c, &mut self.rng),
            },
            _ => {
                let others: Vec<u128> = (0..size(c))
                    .filter(|&k| !same_value(&option(c, k), &cur))
                    .collect();
                option(c, others[self.rng.below(others.len())])
            }
        };
        child.insert(c.label.clone(), new);
        repair(&self.space, &mut child, &mut self.rng);
        child
    }

    /// Whether `arch` was proposed or told before.
    fn known(&self, arch: &Architecture) -> bool {
        self.seen.contains(&key(&self.space, arch))
    }

    /// The first architecture not known yet of a walk over the whole space, each
    /// choice's options taken from a random offset on; none when every one is known.
    /// Stops at the first unknown one, so it visits at most `seen.len() + 1` complete
    /// architectures. An input choice whose candidates are edges decides its picked
    /// edges' ops right after its pick, and the other edges' ops are never set, so no
    /// network is visited twice (once per op of an edge it does not build).
    fn unknown(&mut self) -> Option<Architecture> {
        let offsets: Vec<u128> = self
            .space
            .iter()
            .map(|c| self.rng.next_u64() as u128 % size(c).max(1))
            .collect();
        let edge_op: Vec<bool> = self
            .space
            .iter()
            .map(|c| arch::is_edge_op(&self.space, c))
            .collect();
        let walk = Walk {
            space: &self.space,
            offsets: &offsets,
            edge_op: &edge_op,
            known: &|a: &Architecture| self.known(a),
        };
        walk.from(0, &mut Architecture::new())
    }

    /// The population, oldest first, as (architecture, metrics, feasible).
    pub fn population(&self) -> Vec<(Architecture, Metrics, bool)> {
        self.population
            .iter()
            .map(|m| (m.arch.clone(), m.metrics.clone(), m.feasible))
            .collect()
    }

    /// The feasible members no other feasible member dominates (the best-accuracy ones
    /// with a single objective).
    pub fn front(&self) -> Vec<(Architecture, Metrics)> {
        let (rank, _) = self.ranking();
        (0..self.population.len())
            .filter(|&i| rank[i] == 0)
            .map(|i| {
                (
                    self.population[i].arch.clone(),
                    self.population[i].metrics.clone(),
                )
            })
            .collect()
    }

    /// Asks not yet told.
    pub fn pending(&self) -> usize {
        self.pending
    }
}

impl Strategy for Evolution {
    fn new(setup: &Setup) -> Result<Self, String> {
        let c = &setup.config;
        nas_strategies::check_config_fields(
            c,
            "evolution",
            &["population", "sample", "objectives", "limits", "reevaluate"],
        )?;
        let reevaluate: bool = config_field(c, "reevaluate", false)?;
        let population_size =
            nas_strategies::config_count(c, "population", 50, 1, nas_strategies::MAX_POPULATION)?;
        // At most the population (the paper's S <= P).
        let sample =
            nas_strategies::config_count(c, "sample", 10.min(population_size), 1, population_size)?;
        let names: Vec<String> = config_field(c, "objectives", vec!["accuracy".to_string()])?;
        if names.is_empty() {
            return Err("config field `objectives`: needs at least one objective".into());
        }
        let mut objectives = vec![];
        for n in &names {
            let o = Objective::parse(n).ok_or_else(|| {
                format!(
                    "config field `objectives`: unknown objective `{n}` (use accuracy, params, \
                     macs, latency_ms)"
                )
            })?;
            if objectives.contains(&o) {
                return Err(format!("config field `objectives`: `{n}` is listed twice"));
            }
            objectives.push(o);
        }
        let limits = nas_strategies::config_limits(c)?
            .into_iter()
            .map(|(k, x)| (Objective::parse(&k).expect("a cost is an objective"), x))
            .collect();
        Ok(Evolution {
            space: setup.space.clone(),
            population_size,
            sample,
            objectives,
            limits,
            rng: Rng::new(setup.seed),
            population: vec![],
            born: 0,
            pending: 0,
            reevaluate,
            seen: HashSet::new(),
        })
    }

    fn ask(&mut self) -> Result<Option<Architecture>, String> {
        self.pending += 1;
        let feasible: Vec<usize> = (0..self.population.len())
            .filter(|&i| self.population[i].feasible)
            .collect();
        let random = self.population.len() < self.population_size || feasible.is_empty();
        let parent = if random {
            None
        } else {
            let p = self.tournament(&feasible);
            Some(self.population[p].arch.clone())
        };
        let draw = |s: &mut Self| match &parent {
            None => nas_strategies::random_architecture(&s.space, &mut s.rng),
            Some(p) => s.mutate(p),
        };
        let mut arch = draw(self);
        if !self.reevaluate {
            let mut tries = 1;
            while self.known(&arch) && tries < DRAWS {
                arch = draw(self);
                tries += 1;
            }
            if self.known(&arch) {
                match self.unknown() {
                    Some(a) => arch = a,
                    None => {
                        // Every architecture of the space has been proposed.
                        self.pending -= 1;
                        return Ok(None);
                    }
                }
            }
            self.seen.insert(key(&self.space, &arch));
        }
        Ok(Some(arch))
    }

    fn tell(&mut self, arch: &Architecture, metrics: &Metrics) -> Result<(), String> {
        canonical(&self.space, arch)
            .map_err(|e| format!("tell: the architecture does not fit the space: {e}"))?;
        if !self.reevaluate {
            self.seen.insert(key(&self.space, arch));
        }
        if metrics.is_failed() {
            // No result: no member (it would take a slot, or, with a cost objective or
            // limit, have no cost to rank by), and not proposed again.
            self.pending = self.pending.saturating_sub(1);
            return Ok(());
        }
        let m = self.member(arch.clone(), metrics, self.born)?;
        self.population.push(m);
        self.born += 1;
        while self.population.len() > self.population_size {
            self.population.remove(0);
        }
        self.pending = self.pending.saturating_sub(1);
        Ok(())
    }

    fn save(&self) -> Result<Value, String> {
        let population: Vec<Value> = self
            .population
            .iter()
            .map(|m| json!({ "arch": m.arch, "metrics": m.metrics, "born": m.born }))
            .collect();
        Ok(json!({
            "rng": self.rng.state(),
            "born": self.born,
            "pending": self.pending,
            "population": population,
            "seen": sorted_seen(&self.seen),
        }))
    }

    fn load(&mut self, state: Value) -> Result<(), String> {
        let rng = rng_in_state(&state)?;
        let born: u64 = config_field(&state, "born", 0)?;
        let pending: usize = config_field(&state, "pending", 0)?;
        let raw: Vec<Value> = config_field(&state, "population", vec![])?;
        let seen: Vec<String> = config_field(&state, "seen", vec![])?;
        let mut population = vec![];
        for (i, v) in raw.iter().enumerate() {
            let at = |e: String| format!("saved population member {i}: {e}");
            let arch: Architecture = state_field(v, "arch").map_err(at)?;
            canonical(&self.space, &arch)
                .map_err(|e| at(format!("its architecture does not fit the space: {e}")))?;
            let metrics: Metrics =
                serde_json::from_value(v.get("metrics").cloned().unwrap_or_default())
                    .map_err(|e| at(format!("bad metrics: {e}")))?;
            let b: u64 = config_field(v, "born", 0).map_err(at)?;
            population.push(self.member(arch, &metrics, b).map_err(at)?);
        }
        population.sort_by_key(|m| m.born);
        let excess = population.len().saturating_sub(self.population_size);
        population.drain(..excess);
        self.rng = rng;
        self.born = born.max(population.last().map_or(0, |m| m.born + 1));
        self.pending = pending;
        if !self.reevaluate {
            self.seen = seen.into_iter().collect();
            for m in &population {
                self.seen.insert(key(&self.space, &m.arch));
            }
        }
        self.population = population;
        Ok(())
    }
}

/// The known keys in a stable order, so a saved state does not depend on hashing.
fn sorted_seen(seen: &HashSet<String>) -> Vec<&String> {
    let mut v: Vec<&String> = seen.iter().collect();
    v.sort();
    v
}

export_strategy!(Evolution, "evolution", "0.2.1");
