//! AlphaNet (Wang, Gong, Li, Chandra and Liu, "AlphaNet: Improved Training of Supernets
//! with Alpha-Divergence", ICML 2021). Every step trains, on one training batch, the
//! largest subnet on the labels, then `random` uniformly drawn subnets and the smallest
//! one (the sandwich rule), each learning from the largest's output probabilities by
//! in-place distillation with the adaptive alpha-divergence (`divergence` "alpha": per
//! image the larger of `D_alpha(p||q)` at `alpha_min` and `alpha_max`, the importance
//! ratio clipped at `clip`; "kl": `KL(p||q)`; "none": the students learn from the labels
//! too); the gradients of all paths add up and the weights take one step (the host's
//! [`SupernetHost::distill_step`]). After the last epoch an evolutionary search, as the
//! reference's, scores subnets with inherited weights (batch norm recalibrated for each,
//! on the same images for every candidate) within the cost limits (`max_macs`,
//! `max_params`, `max_latency_ms` or `limits`; the paper's is FLOPs) and exports the
//! most accurate: its first population is the smallest subnet and random ones within
//! the limits, and each generation mutates (each choice redrawn with probability
//! `mutation_prob`) and crosses over members of the Pareto front of cost and accuracy.
//!
//! "Largest" and "smallest" are per choice, by the cost of each option (multiply-adds,
//! then parameters, from the host's cost model: `SupernetHost::metrics` of the
//! architecture with that option and every other choice at its first option, repeats at
//! their deepest). A candidate that computes nothing (a layer candidate named `none` or
//! `zero`) is never the smallest's pick (the smallest subnet is a working network, as
//! the paper's); `skip` counts as what it costs (nothing), so the smallest mobilenet
//! subnet skips every layer that may be skipped, as the paper's smallest has the fewest
//! layers.
//!
//! Config: `divergence` ("alpha"), `alpha_min` (-1), `alpha_max` (1), `clip` (5; all
//! three the reference's), `random` (2, 0..=63: the reference trains 4 subnets a step,
//! the largest, two random and the smallest), `population` (16, 2..=100000),
//! `generations` (8, 1..=10000), `mutation_prob` (0.2, the reference's), `eval_batches`
//! (10, at most the validation split's), `recalibrate` (10, at most the training
//! split's), and the cost limits.

use nas_strategies::decisions;
use nas_strategies::oneshot::{
    rng_in_state, rng_only_state, scoring_counts, DistillLoss, EpochStrategy, OneShotInfo,
    OneShotSetup, Progress, Split, Subset, SupernetHost, MAX_STUDENTS,
};
use nas_strategies::{
    config_count, config_field, config_probability, export_one_shot, Architecture, ChoiceKind, Rng,
    Value,
};
use std::collections::BTreeMap;

/// A stated cap on the generations of the search.
const MAX_GENERATIONS: usize = 10_000;

/// The options of this strategy (besides the host's cost limits).
const FIELDS: &[&str] = &[
    "divergence",
    "alpha_min",
    "alpha_max",
    "clip",
    "random",
    "population",
    "generations",
    "mutation_prob",
    "eval_batches",
    "recalibrate",
];

/// The per-choice picks of the sandwich rule.
#[derive(Clone, Debug, PartialEq)]
struct Sandwich {
    largest: Vec<usize>,
    smallest: Vec<usize>,
}

pub struct AlphaNet {
    info: OneShotInfo,
    rng: Rng,
    loss: DistillLoss,
    random: usize,
    population: usize,
    generations: usize,
    mutation_prob: f32,
    eval_batches: usize,
    recalibrate: usize,
    limits: Vec<(String, f64)>,
    /// Computed from the host's cost model at the first step (not saved: a resumed run
    /// computes the same).
    sandwich: Option<Sandwich>,
}

/// A float option that must be finite, or an error naming it.
fn finite(config: &Value, field: &str, default: f32) -> Result<f32, String> {
    let v: f32 = config_field(config, field, default)?;
    if !v.is_finite() {
        return Err(format!(
            "config field `{field}`: {v} is not valid (must be finite)"
        ));
    }
    Ok(v)
}

impl AlphaNet {
    fn random_decisions(&mut self) -> Vec<usize> {
        decisions::random(&self.info.choices, &mut self.rng)
    }

    /// The cost of an architecture: (multiply-adds, parameters), what the host knows of
    /// them (latency where it gives neither).
    fn cost(host: &mut dyn SupernetHost, arch: &Architecture) -> Result<(f64, f64), String> {
        let m = host.metrics(arch)?;
        Ok(match (m.macs, m.params) {
            (None, None) => (m.latency_ms.unwrap_or(0.0), 0.0),
            (macs, params) => (macs.unwrap_or(0.0), params.unwrap_or(0.0)),
        })
    }

    /// The largest and smallest option of every choice by its cost (see the crate's
    /// documentation).
    fn sandwich(&self, host: &mut dyn SupernetHost) -> Result<Sandwich, String> {
        let choices = &self.info.choices;
        let base: Vec<usize> = choices
            .iter()
            .map(|c| match &c.kind {
                ChoiceKind::Repeat { depths } => (0..depths.len())
                    .max_by_key(|&i| (depths[i], std::cmp::Reverse(i)))
                    .unwrap_or(0),
                _ => 0,
            })
            .collect();
        let sizes = decisions::sizes(choices);
        let (mut largest, mut smallest) = (base.clone(), base.clone());
        for (i, c) in choices.iter().enumerate() {
            if sizes[i] < 2 {
                continue;
            }
            let mut costs = Vec::with_capacity(sizes[i]);
            for o in 0..sizes[i] {
                let mut d = base.clone();
                d[i] = o;
                costs.push(Self::cost(host, &decisions::to_arch(choices, &d))?);
            }
            let nothing = |o: usize| match &c.kind {
                ChoiceKind::Layer { candidates } => {
                    matches!(candidates[o].as_str(), "none" | "zero")
                }
                _ => false,
            };
            let by = |a: &usize, b: &usize| {
                let (x, y) = (costs[*a], costs[*b]);
                x.0.total_cmp(&y.0).then(x.1.total_cmp(&y.1))
            };
            // The first of equals, both ways.
            largest[i] = (0..sizes[i]).rev().max_by(by).unwrap_or(0);
            let working: Vec<usize> = (0..sizes[i]).filter(|&o| !nothing(o)).collect();
            let pool = if working.is_empty() {
                (0..sizes[i]).collect()
            } else {
                working
            };
            smallest[i] = pool.into_iter().min_by(by).unwrap_or(0);
        }
        Ok(Sandwich { largest, smallest })
    }

    /// Whether `d` is within every cost limit, and its cost.
    fn within(&self, host: &mut dyn SupernetHost, d: &[usize]) -> Result<(bool, f64), String> {
        let m = host.metrics(&decisions::to_arch(&self.info.choices, d))?;
        let ok = self
            .limits
            .iter()
            .all(|(what, max)| m.cost(what).is_none_or(|v| v <= *max));
        Ok((ok, m.macs.or(m.params).or(m.latency_ms).unwrap_or(0.0)))
    }
}

/// What the search knows of a candidate: its accuracy with inherited weights and its
/// cost.
#[derive(Clone, Debug)]
struct Scored {
    acc: f32,
    cost: f64,
    d: Vec<usize>,
}

/// The candidates no other beats on both accuracy and cost (higher and lower).
fn pareto(scored: &BTreeMap<String, Scored>) -> Vec<Scored> {
    let all: Vec<&Scored> = scored.values().collect();
    all.iter()
        .filter(|a| {
            !all.iter()
                .any(|b| b.acc >= a.acc && b.cost <= a.cost && (b.acc > a.acc || b.cost < a.cost))
        })
        .map(|a| (*a).clone())
        .collect()
}

impl AlphaNet {
    /// Scores `d` unless it was scored before or breaks a limit; whether it was scored.
    fn score(
        &mut self,
        host: &mut dyn SupernetHost,
        scored: &mut BTreeMap<String, Scored>,
        d: Vec<usize>,
    ) -> Result<bool, String> {
        let key = decisions::key(&self.info.choices, &d);
        if scored.contains_key(&key) {
            return Ok(false);
        }
        let (ok, cost) = self.within(host, &d)?;
        if !ok {
            return Ok(false);
        }
        let mix = self.info.one_hot(&d);
        let acc = host.evaluate(&mix, self.eval_batches, self.recalibrate, Subset::Fixed)?;
        scored.insert(key, Scored { acc, cost, d });
        Ok(true)
    }
}

impl EpochStrategy for AlphaNet {
    fn create(setup: &OneShotSetup) -> Result<Self, String> {
        let c = &setup.config;
        nas_strategies::check_config_fields(c, "alphanet", FIELDS)?;
        let divergence: String = config_field(c, "divergence", "alpha".to_string())?;
        let alpha_min = finite(c, "alpha_min", -1.0)?;
        let alpha_max = finite(c, "alpha_max", 1.0)?;
        if alpha_min > alpha_max {
            return Err(format!(
                "config fields `alpha_min`/`alpha_max`: {alpha_min}/{alpha_max} are not valid \
                 (need alpha_min <= alpha_max)"
            ));
        }
        let clip = finite(c, "clip", 5.0)?;
        if clip <= 0.0 {
            return Err(format!(
                "config field `clip`: {clip} is not valid (must be above 0)"
            ));
        }
        let loss = match divergence.as_str() {
            "alpha" => DistillLoss::Alpha {
                alpha_min,
                alpha_max,
                clip,
            },
            "kl" => DistillLoss::Kl,
            "none" => DistillLoss::None,
            other => {
                return Err(format!(
                    "config field `divergence`: \"{other}\" is not valid (alpha, kl or none)"
                ))
            }
        };
        loss.check()?;
        let mutation_prob = config_probability(c, "mutation_prob", 0.2)? as f32;
        let (eval_batches, recalibrate) = scoring_counts(setup, 10, 10)?;
        Ok(AlphaNet {
            info: setup.info.clone(),
            rng: Rng::new(setup.seed),
            loss,
            // One student is the smallest subnet.
            random: config_count(c, "random", 2, 0, MAX_STUDENTS - 1)?,
            population: config_count(c, "population", 16, 2, nas_strategies::MAX_POPULATION)?,
            generations: config_count(c, "generations", 8, 1, MAX_GENERATIONS)?,
            mutation_prob,
            eval_batches,
            recalibrate,
            limits: nas_strategies::config_limits(c)?,
            sandwich: None,
        })
    }

    fn step(
        &mut self,
        host: &mut dyn SupernetHost,
        _epoch: usize,
        _step: usize,
    ) -> Result<Vec<(&'static str, f32)>, String> {
        if self.sandwich.is_none() {
            self.sandwich = Some(self.sandwich(host)?);
        }
        let sandwich = self.sandwich.clone().unwrap();
        host.next_batch(Split::Train)?;
        let teacher = self.info.one_hot(&sandwich.largest);
        // As the reference: the random subnets, then the smallest.
        let mut students: Vec<Vec<f32>> = (0..self.random)
            .map(|_| {
                let d = self.random_decisions();
                self.info.one_hot(&d)
            })
            .collect();
        students.push(self.info.one_hot(&sandwich.smallest));
        let r = host.distill_step(&teacher, &students, self.loss)?;
        let mut figures = vec![
            ("largest_loss", r.teacher),
            ("smallest_loss", *r.students.last().unwrap_or(&0.0)),
        ];
        if self.random > 0 {
            let n = r.students.len() - 1;
            figures.push((
                "random_loss",
                r.students[..n].iter().sum::<f32>() / n as f32,
            ));
        }
        Ok(figures)
    }

    fn current(&self, info: &OneShotInfo) -> Architecture {
        // The search picks the answer after training; until then the placeholder.
        info.derive(&vec![1.0; info.len()])
    }

    fn finish(&mut self, host: &mut dyn SupernetHost) -> Result<Architecture, String> {
        let space = self.info.choices.clone();
        if self.sandwich.is_none() {
            self.sandwich = Some(self.sandwich(host)?);
        }
        let Sandwich { largest, smallest } = self.sandwich.clone().unwrap();
        if self.limits.iter().any(|(f, _)| f == "latency_ms") {
            host.latencies()?; // predicted latencies come from the measured table
        }
        let sizes = decisions::sizes(&space);
        let distinct = decisions::distinct(&sizes);
        let population = self.population.min(distinct);
        let mut scored: BTreeMap<String, Scored> = BTreeMap::new();
        // The sandwich's ends with inherited weights, reported (the largest is a
        // candidate only within the limits).
        let mix = self.info.one_hot(&largest);
        let largest_acc =
            host.evaluate(&mix, self.eval_batches, self.recalibrate, Subset::Fixed)?;
        let mix = self.info.one_hot(&smallest);
        let smallest_acc =
            host.evaluate(&mix, self.eval_batches, self.recalibrate, Subset::Fixed)?;
        // As the reference: the smallest subnet, then random ones within the limits.
        self.score(host, &mut scored, smallest)?;
        let mut tries = 0;
        while scored.len() < population && tries < 50 * population {
            let d = self.random_decisions();
            self.score(host, &mut scored, d)?;
            tries += 1;
        }
        if scored.is_empty() {
            return Err(format!(
                "no architecture within the limits ({}) (the smallest subnet and {tries} \
                 random draws)",
                nas_strategies::show_limits(&self.limits)
            ));
        }
        for generation in 0..self.generations {
            let front = pareto(&scored);
            let before = scored.len();
            let half = population / 2;
            // Half the generation mutated from members of the front, half crossed over
            // between two of them; each retried while it repeats or breaks a limit.
            let (mut made, mut tries) = (0, 0);
            while made < half && tries < 10 * population && scored.len() < distinct {
                tries += 1;
                let a = front[self.rng.below(front.len())].d.clone();
                let child: Vec<usize> = (0..sizes.len())
                    .map(|i| {
                        if self.rng.uniform() < self.mutation_prob {
                            self.rng.below(sizes[i])
                        } else {
                            a[i]
                        }
                    })
                    .collect();
                made += self.score(host, &mut scored, child)? as usize;
            }
            let (mut crossed, mut tries) = (0, 0);
            while crossed < population - half && tries < 10 * population && scored.len() < distinct
            {
                tries += 1;
                let a = front[self.rng.below(front.len())].d.clone();
                let b = front[self.rng.below(front.len())].d.clone();
                let child: Vec<usize> = (0..sizes.len())
                    .map(|i| if self.rng.bernoulli(0.5) { a[i] } else { b[i] })
                    .collect();
                crossed += self.score(host, &mut scored, child)? as usize;
            }
            let best = scored
                .values()
                .max_by(|a, b| a.acc.total_cmp(&b.acc))
                .unwrap();
            let mut values = BTreeMap::new();
            values.insert("best_supernet_accuracy".to_string(), best.acc);
            values.insert("scored".to_string(), scored.len() as f32);
            values.insert("front".to_string(), front.len() as f32);
            values.insert("largest_supernet_accuracy".to_string(), largest_acc);
            values.insert("smallest_supernet_accuracy".to_string(), smallest_acc);
            host.progress(&Progress {
                epoch: self.info.epochs,
                step: generation + 1,
                values,
                arch: decisions::to_arch(&space, &best.d),
            })?;
            if scored.len() == before {
                break; // nothing new within the limits: the search is exhausted
            }
        }
        let best = scored
            .values()
            .max_by(|a, b| a.acc.total_cmp(&b.acc))
            .unwrap();
        Ok(decisions::to_arch(&space, &best.d))
    }

    fn save(&self) -> Result<Value, String> {
        Ok(rng_only_state(&self.rng))
    }

    fn load(&mut self, state: Value) -> Result<(), String> {
        self.rng = rng_in_state(&state)?;
        Ok(())
    }
}

export_one_shot!(AlphaNet, "alphanet", "0.1.1");
