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

use nas_strategies::{choices, pareto};
use std::collections::HashSet;

use choices::{active, canonical, input_indices, option, random_option, repair, same_value, size};
use nas_strategies::{
    config_field, export_strategy, json, serde_json, Architecture, Choice, ChoiceKind, Metrics,
    Rng, Setup, Strategy, Value,
};

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
fn key(space: &[Choice], arch: &Architecture) -> String {
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
fn nondominated_ranks(points: &[Vec<f64>]) -> Vec<usize> {
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
        let mutable: Vec<usize> = (0..self.space.len())
            .filter(|&i| {
                let c = &self.space[i];
                if !active(c, &child) {
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
                    idx[at] = unused[self.rng.below(unused.len())];
                    idx.sort_unstable();
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
    /// architectures.
    fn unknown(&mut self) -> Option<Architecture> {
        let offsets: Vec<u128> = self
            .space
            .iter()
            .map(|c| self.rng.next_u64() as u128 % size(c).max(1))
            .collect();
        let mut arch = Architecture::new();
        self.walk(0, &mut arch, &offsets)
    }

    fn walk(&self, i: usize, arch: &mut Architecture, offsets: &[u128]) -> Option<Architecture> {
        let Some(c) = self.space.get(i) else {
            return (!self.known(arch)).then(|| arch.clone());
        };
        // Choices come in definition order: a repeat's depth is set before its blocks'.
        if !active(c, arch) {
            return self.walk(i + 1, arch, offsets);
        }
        let n = size(c);
        for k in 0..n {
            arch.insert(c.label.clone(), option(c, (k + offsets[i]) % n));
            if let Some(a) = self.walk(i + 1, arch, offsets) {
                return Some(a);
            }
        }
        arch.remove(&c.label);
        None
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
        let m = self.member(arch.clone(), metrics, self.born)?;
        if !self.reevaluate {
            self.seen.insert(key(&self.space, arch));
        }
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
        let rng: [u64; 4] = config_field(&state, "rng", self.rng.state())?;
        let born: u64 = config_field(&state, "born", 0)?;
        let pending: usize = config_field(&state, "pending", 0)?;
        let raw: Vec<Value> = config_field(&state, "population", vec![])?;
        let seen: Vec<String> = config_field(&state, "seen", vec![])?;
        let mut population = vec![];
        for (i, v) in raw.iter().enumerate() {
            let at = |e: String| format!("saved population member {i}: {e}");
            let arch: Architecture = config_field(v, "arch", Architecture::new()).map_err(at)?;
            let metrics: Metrics =
                serde_json::from_value(v.get("metrics").cloned().unwrap_or_default())
                    .map_err(|e| at(format!("bad metrics: {e}")))?;
            let b: u64 = config_field(v, "born", 0).map_err(at)?;
            population.push(self.member(arch, &metrics, b).map_err(at)?);
        }
        population.sort_by_key(|m| m.born);
        let excess = population.len().saturating_sub(self.population_size);
        population.drain(..excess);
        self.rng = Rng::from_state(rng);
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

export_strategy!(Evolution, "evolution", "0.1.0");

#[cfg(test)]
mod tests {
    use super::*;
    use nas_strategies::testing::{
        agreement, layer, metrics, nested_space as space, run_validating as run,
    };
    use nas_strategies::validate;

    fn setup(space: Vec<Choice>, config: Value, seed: u64) -> Setup {
        Setup {
            space,
            config,
            seed,
            budget: 300,
        }
    }

    #[test]
    fn every_ask_is_valid_with_asks_in_flight() {
        let space = space(3, 4);
        let target = nas_strategies::random_architecture(&space, &mut Rng::new(99));
        for batch in [1, 7] {
            let mut s = Evolution::new(&setup(
                space.clone(),
                json!({"population": 20, "sample": 5}),
                1,
            ))
            .unwrap();
            run(&mut s, &space, 400, batch, |a| agreement(a, &target));
            assert_eq!(s.population().len(), 20);
            assert_eq!(s.pending(), 0);
        }
    }

    #[test]
    fn mutation_changes_one_active_choice() {
        let space = space(3, 4);
        let mut s = Evolution::new(&setup(space.clone(), json!({}), 4)).unwrap();
        let mut rng = Rng::new(5);
        let mut depth_changes = 0;
        for _ in 0..2000 {
            let p = nas_strategies::random_architecture(&space, &mut rng);
            let c = s.mutate(&p);
            validate(&space, &c).unwrap();
            assert_ne!(c, p);
            let changed: Vec<&String> = p
                .keys()
                .chain(c.keys().filter(|k| !p.contains_key(*k)))
                .filter(|k| c.get(*k) != p.get(*k))
                .collect();
            if p["depth"] != c["depth"] {
                depth_changes += 1;
            } else if p.get("blk1/inner") != c.get("blk1/inner") {
                // The nested repeat changed: its scoped choice appears or goes.
                assert_eq!(changed.len(), 2, "{p:?} -> {c:?}");
            } else {
                assert_eq!(changed.len(), 1, "{p:?} -> {c:?}");
                if changed[0] == "skip" {
                    let (x, y) = (p["skip"].as_array().unwrap(), c["skip"].as_array().unwrap());
                    assert_eq!(
                        x.iter().filter(|i| y.contains(i)).count(),
                        1,
                        "one index swapped"
                    );
                }
            }
        }
        assert!(depth_changes > 50);
    }

    #[test]
    fn save_new_load_gives_the_same_asks() {
        let space = space(3, 4);
        let target = nas_strategies::random_architecture(&space, &mut Rng::new(7));
        let st = setup(space.clone(), json!({"population": 15, "sample": 4}), 11);
        let mut a = Evolution::new(&st).unwrap();
        run(&mut a, &space, 40, 3, |x| agreement(x, &target));
        // Two asks in flight at save time.
        let inflight: Vec<Architecture> = (0..2).map(|_| a.ask().unwrap().unwrap()).collect();
        let saved: Value = serde_json::from_str(&a.save().unwrap().to_string()).unwrap();
        let mut b = Evolution::new(&st).unwrap();
        b.load(saved).unwrap();
        assert_eq!(b.pending(), 2);
        assert_eq!(
            a.population()
                .iter()
                .map(|m| (m.0.clone(), m.1.accuracy))
                .collect::<Vec<_>>(),
            b.population()
                .iter()
                .map(|m| (m.0.clone(), m.1.accuracy))
                .collect::<Vec<_>>()
        );
        for x in &inflight {
            a.tell(x, &metrics(agreement(x, &target))).unwrap();
            b.tell(x, &metrics(agreement(x, &target))).unwrap();
        }
        for _ in 0..100 {
            let (x, y) = (a.ask().unwrap().unwrap(), b.ask().unwrap().unwrap());
            assert_eq!(x, y);
            a.tell(&x, &metrics(agreement(&x, &target))).unwrap();
            b.tell(&y, &metrics(agreement(&y, &target))).unwrap();
        }
    }

    #[test]
    fn beats_random_search_on_a_synthetic_objective() {
        let space = space(12, 5);
        let (budget, seeds) = (300, 20);
        let (mut evo, mut rnd) = (0.0, 0.0);
        for seed in 0..seeds {
            let target = nas_strategies::random_architecture(&space, &mut Rng::new(1000 + seed));
            let mut s = Evolution::new(&setup(space.clone(), json!({}), seed)).unwrap();
            evo += run(&mut s, &space, budget, 4, |a| agreement(a, &target));
            let mut rng = Rng::new(seed);
            rnd += (0..budget)
                .map(|_| {
                    agreement(
                        &nas_strategies::random_architecture(&space, &mut rng),
                        &target,
                    )
                })
                .fold(0.0, f64::max);
        }
        let (evo, rnd) = (evo / seeds as f64, rnd / seeds as f64);
        eprintln!("evolution {evo:.3}, random {rnd:.3}");
        assert!(evo > rnd + 0.15, "evolution {evo:.3} vs random {rnd:.3}");
    }

    #[test]
    fn pareto_front_of_a_hand_made_example() {
        let pts = [
            (0.90, 100.0), // front
            (0.80, 50.0),  // front
            (0.85, 120.0), // dominated by 0
            (0.70, 50.0),  // dominated by 1
            (0.95, 200.0), // front
            (0.80, 50.0),  // equal to 1: front too
            (0.60, 10.0),  // front
            (0.60, 20.0),  // dominated by 6
        ];
        assert_eq!(pareto_front(&pts), vec![0, 1, 4, 5, 6]);
        assert_eq!(pareto_front(&[]), Vec::<usize>::new());
        let ranks = nondominated_ranks(&pts.iter().map(|&(a, c)| vec![-a, c]).collect::<Vec<_>>());
        assert_eq!(ranks, vec![0, 0, 1, 1, 0, 0, 0, 1]);
    }

    /// Distinct architectures of a flat space that differ pairwise in at least 3 choices.
    fn far_apart(space: &[Choice], n: usize, seed: u64) -> Vec<Architecture> {
        let mut rng = Rng::new(seed);
        let mut out: Vec<Architecture> = vec![];
        while out.len() < n {
            let a = nas_strategies::random_architecture(space, &mut rng);
            if out.iter().all(|b| distance(&a, b) >= 3) {
                out.push(a);
            }
        }
        out
    }

    fn distance(a: &Architecture, b: &Architecture) -> usize {
        a.keys().filter(|k| a.get(*k) != b.get(*k)).count()
    }

    #[test]
    fn multi_objective_population_front_is_the_pareto_front() {
        let flat: Vec<Choice> = (0..8).map(|i| layer(&format!("l{i}"), 6, None)).collect();
        let pts = [
            (0.90, 100.0),
            (0.80, 50.0),
            (0.85, 120.0),
            (0.70, 50.0),
            (0.95, 200.0),
            (0.60, 10.0),
            (0.60, 20.0),
            (0.50, 300.0),
        ];
        let archs = far_apart(&flat, pts.len(), 3);
        let mut s = Evolution::new(&setup(
            flat.clone(),
            json!({"population": 8, "sample": 3, "objectives": ["accuracy", "params"]}),
            2,
        ))
        .unwrap();
        for (a, &(acc, params)) in archs.iter().zip(&pts) {
            let m = Metrics {
                accuracy: acc,
                params: Some(params),
                ..Default::default()
            };
            s.tell(a, &m).unwrap();
        }
        let front: Vec<usize> = s
            .front()
            .iter()
            .map(|(a, _)| archs.iter().position(|x| x == a).unwrap())
            .collect();
        assert_eq!(front, pareto_front(&pts));
        // A tournament of 8 draws from 8 (with replacement) holds one of the front's two
        // extremes (rank 0, infinite crowding distance) with probability
        // 1 - (6/8)^8 = 0.90, and then one of them wins. (Repeats allowed: 200 asks
        // without tells would use up the parents' neighbours.)
        let mut s2 = Evolution::new(&setup(
            flat.clone(),
            json!({"population": 8, "sample": 8, "objectives": ["accuracy", "params"],
                   "reevaluate": true}),
            2,
        ))
        .unwrap();
        for (a, &(acc, params)) in archs.iter().zip(&pts) {
            let m = Metrics {
                accuracy: acc,
                params: Some(params),
                ..Default::default()
            };
            s2.tell(a, &m).unwrap();
        }
        let mut extremes = 0;
        for _ in 0..200 {
            let c = s2.ask().unwrap().unwrap();
            let parent = archs.iter().position(|a| distance(a, &c) == 1).unwrap();
            // The front's extremes (infinite crowding distance): 0.95/200 and 0.60/10.
            extremes += (parent == 4 || parent == 5) as usize;
        }
        assert!(
            (160..200).contains(&extremes),
            "{extremes} of 200 parents were extremes"
        );
        // A missing objective metric is an error naming it.
        let e = s.tell(&archs[0], &metrics(0.5)).unwrap_err();
        assert!(e.contains("params"), "{e}");
    }

    #[test]
    fn limits_exclude_infeasible_parents() {
        let flat: Vec<Choice> = (0..8).map(|i| layer(&format!("l{i}"), 6, None)).collect();
        for objectives in [json!(["accuracy"]), json!(["accuracy", "params"])] {
            let mut s = Evolution::new(&setup(
                flat.clone(),
                // Repeats allowed: 200 asks without tells would use up the neighbours.
                json!({"population": 10, "sample": 10, "objectives": objectives,
                       "limits": {"params": 100.0}, "reevaluate": true}),
                6,
            ))
            .unwrap();
            let archs = far_apart(&flat, 10, 8);
            // Even members are infeasible (too many params) and far more accurate.
            for (i, a) in archs.iter().enumerate() {
                let (acc, params) = if i % 2 == 0 {
                    (0.99, 1000.0)
                } else {
                    (0.1 + 0.01 * i as f64, 50.0)
                };
                s.tell(
                    a,
                    &Metrics {
                        accuracy: acc,
                        params: Some(params),
                        ..Default::default()
                    },
                )
                .unwrap();
            }
            assert!(s.front().iter().all(|(_, m)| m.params.unwrap() <= 100.0));
            let mut best = 0;
            for _ in 0..200 {
                let c = s.ask().unwrap().unwrap();
                let parent = archs.iter().position(|a| distance(a, &c) == 1).unwrap();
                assert!(parent % 2 == 1, "infeasible parent {parent}");
                best += (parent == 9) as usize;
            }
            // The best feasible member (it dominates the others) wins whenever it is
            // drawn: in 1 - (4/5)^10 = 89% of the tournaments of 10 draws from 5.
            assert!((150..200).contains(&best), "the best won {best} of 200");
        }
        // With no feasible member, asks are random (and valid).
        let mut s = Evolution::new(&setup(
            flat.clone(),
            json!({"population": 3, "limits": {"macs": 1}}),
            1,
        ))
        .unwrap();
        for a in far_apart(&flat, 3, 2) {
            s.tell(
                &a,
                &Metrics {
                    accuracy: 0.9,
                    macs: Some(5.0),
                    ..Default::default()
                },
            )
            .unwrap();
        }
        for _ in 0..20 {
            validate(&flat, &s.ask().unwrap().unwrap()).unwrap();
        }
        let e = s
            .tell(&far_apart(&flat, 1, 3)[0], &metrics(0.3))
            .unwrap_err();
        assert!(e.contains("macs"), "{e}");
    }

    #[test]
    fn the_tournament_draws_with_replacement() {
        // Two members, a tournament of 2: drawn with replacement (the paper's way), the
        // worse one is both draws, and so the parent, a quarter of the time; drawn
        // without replacement it would never be.
        let flat: Vec<Choice> = (0..6).map(|i| layer(&format!("l{i}"), 6, None)).collect();
        let mut s = Evolution::new(&setup(
            flat.clone(),
            json!({"population": 2, "sample": 2, "reevaluate": true}),
            3,
        ))
        .unwrap();
        let archs = far_apart(&flat, 2, 4);
        s.tell(&archs[0], &metrics(0.9)).unwrap();
        s.tell(&archs[1], &metrics(0.1)).unwrap();
        let n = 2000;
        let worse = (0..n)
            .filter(|_| distance(&archs[1], &s.ask().unwrap().unwrap()) == 1)
            .count();
        let share = worse as f64 / n as f64;
        // 0.25 within about 5 standard errors (0.0097 each).
        assert!(
            (0.2..0.3).contains(&share),
            "the worse member was the parent {share}"
        );
    }

    #[test]
    fn aging_removes_the_oldest() {
        let flat: Vec<Choice> = (0..4).map(|i| layer(&format!("l{i}"), 6, None)).collect();
        let mut s = Evolution::new(&setup(
            flat.clone(),
            json!({"population": 3, "sample": 2}),
            0,
        ))
        .unwrap();
        let archs = far_apart(&flat, 5, 1);
        for (i, a) in archs.iter().enumerate() {
            s.tell(a, &metrics(1.0 - 0.1 * i as f64)).unwrap();
        }
        // The best (the first told) aged out even though it is the best.
        let pop: Vec<Architecture> = s.population().into_iter().map(|m| m.0).collect();
        assert_eq!(pop, archs[2..].to_vec());
    }

    #[test]
    fn counts_beyond_their_bounds_are_refused() {
        let sp = space(2, 3);
        let huge = 1u64 << 53;
        for (config, field, value, range) in [
            (
                json!({"population": huge}),
                "population",
                huge,
                "1..=100000",
            ),
            (
                json!({"population": 100_001}),
                "population",
                100_001,
                "1..=100000",
            ),
            (
                json!({"population": 20, "sample": huge}),
                "sample",
                huge,
                "1..=20",
            ),
        ] {
            let e = Evolution::new(&setup(sp.clone(), config.clone(), 0))
                .err()
                .unwrap_or_else(|| panic!("{config} accepted"));
            assert!(
                e.contains(&format!("`{field}`"))
                    && e.contains(&value.to_string())
                    && e.contains(range),
                "{config}: {e}"
            );
        }
        Evolution::new(&setup(
            sp,
            json!({"population": 100_000, "sample": 100_000}),
            0,
        ))
        .unwrap();
    }

    #[test]
    fn bad_config_names_the_field() {
        let sp = space(2, 3);
        for (config, field) in [
            (json!({"population": 0}), "population"),
            (json!({"population": 5, "sample": 6}), "sample"),
            (json!({"sample": "x"}), "sample"),
            (json!({"objectives": ["accuracy", "flops"]}), "objectives"),
            (json!({"objectives": []}), "objectives"),
            (json!({"limits": {"accuracy": 0.5}}), "limits"),
            (json!({"limits": {"params": "big"}}), "limits.params"),
            (json!({"popultion": 5}), "popultion"),
        ] {
            let e = Evolution::new(&setup(sp.clone(), config.clone(), 0))
                .err()
                .unwrap();
            assert!(e.contains(&format!("`{field}`")), "{config}: {e}");
        }
        let mut s = Evolution::new(&setup(sp.clone(), json!({}), 0)).unwrap();
        let mut bad = nas_strategies::random_architecture(&sp, &mut Rng::new(0));
        bad.insert("nope".into(), json!(1));
        assert!(s.tell(&bad, &metrics(0.5)).unwrap_err().contains("nope"));
        // Non-finite metrics are stored as serialisable numbers.
        let a = nas_strategies::random_architecture(&sp, &mut Rng::new(0));
        s.tell(&a, &metrics(f64::NAN)).unwrap();
        let saved: Value = serde_json::from_str(&s.save().unwrap().to_string()).unwrap();
        let mut t = Evolution::new(&setup(sp.clone(), json!({}), 0)).unwrap();
        t.load(saved).unwrap();
        assert_eq!(t.population()[0].1.accuracy, 0.0);
    }

    /// Asks and tells through a whole small space: every ask is new until none is left,
    /// then asks return none; with asks in flight too.
    #[test]
    fn asks_never_repeat_while_unseen_architectures_remain() {
        use nas_strategies::testing::layer_space;
        // 3 x 3 x 2 = 18 architectures.
        let mut space = layer_space(2, 3);
        space.push(layer("l2", 2, None));
        for (seed, batch) in [(0, 1), (1, 4), (7, 1)] {
            let mut s = Evolution::new(&setup(
                space.clone(),
                json!({"population": 4, "sample": 2}),
                seed,
            ))
            .unwrap();
            let mut seen = std::collections::BTreeSet::new();
            'asks: loop {
                let mut asked = vec![];
                for _ in 0..batch {
                    match s.ask().unwrap() {
                        Some(a) => asked.push(a),
                        None => break,
                    }
                }
                for a in &asked {
                    validate(&space, a).unwrap();
                    assert!(
                        seen.insert(key(&space, a)),
                        "repeated {a:?} after {}",
                        seen.len()
                    );
                    s.tell(a, &metrics(agreement_count(a) as f64 / 3.0))
                        .unwrap();
                }
                if asked.len() < batch {
                    break 'asks;
                }
            }
            assert_eq!(seen.len(), 18, "seed {seed}: stopped early");
            assert!(s.ask().unwrap().is_none());
        }
        // A nested space (repeats, an input choice) far larger than the asks: no repeat.
        let nested = space_nested();
        let mut s = Evolution::new(&setup(
            nested.clone(),
            json!({"population": 10, "sample": 3}),
            3,
        ))
        .unwrap();
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..300 {
            let a = s.ask().unwrap().unwrap();
            assert!(seen.insert(key(&nested, &a)), "repeated {a:?}");
            // One architecture wins by far: a plain evolution keeps mutating it back.
            s.tell(&a, &metrics(if seen.len() == 11 { 0.99 } else { 0.1 }))
                .unwrap();
        }
    }

    /// `"reevaluate": true` keeps the old behaviour: repeats allowed, asks never run out.
    #[test]
    fn reevaluate_allows_repeats() {
        use nas_strategies::testing::layer_space;
        let space = layer_space(2, 3);
        let mut s = Evolution::new(&setup(
            space.clone(),
            json!({"population": 4, "sample": 2, "reevaluate": true}),
            0,
        ))
        .unwrap();
        let mut seen = std::collections::BTreeSet::new();
        let mut repeats = 0;
        for _ in 0..60 {
            let a = s.ask().unwrap().unwrap();
            repeats += usize::from(!seen.insert(key(&space, &a)));
            s.tell(&a, &metrics(agreement_count(&a) as f64 / 2.0))
                .unwrap();
        }
        assert!(repeats > 0);
        let e = Evolution::new(&setup(space, json!({"reevaluate": 1}), 0))
            .err()
            .unwrap();
        assert!(e.contains("reevaluate"), "{e}");
    }

    /// How many choices hold their first candidate (a toy objective).
    fn agreement_count(a: &Architecture) -> usize {
        a.values().filter(|v| v.as_str() == Some("c0")).count()
    }

    fn space_nested() -> Vec<Choice> {
        space(3, 4)
    }
}
