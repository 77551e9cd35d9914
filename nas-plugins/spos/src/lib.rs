//! Single-path one-shot (Guo et al., 2020): the supernet trains one sampled path per
//! batch, uniform over multiply-add bins as the reference's supernet training samples
//! (`macs_bins` bins of equal width over `macs_range`; a bin drawn uniformly, then
//! uniform paths until one falls in it, a plain uniform path after 500 misses; the
//! path's cost summed from the host's per-candidate op costs, as the reference's table
//! of per-op FLOPs); then an evolutionary search runs over the trained supernet, each
//! candidate scored with inherited weights on `eval_batches` validation batches after
//! recalibrating batch norm on `recalibrate` training batches for its path. Every
//! candidate of a search is recalibrated and scored on the same images
//! ([`Subset::Fixed`]), so rankings compare architectures, not batches. Candidates
//! over `max_params`, `max_macs` or `max_latency_ms` (or the same costs in `limits`;
//! from the host's cost model) are never scored. Each generation takes the `parents`
//! best scored so far and breeds a new `population`, as the reference code does: half
//! by mutation (a parent with each choice redrawn with probability `mutation_prob`),
//! half by uniform crossover of two parents, and random draws where those find too few
//! new candidates.
//!
//! Config: `population` (20, 2..=100000), `generations` (10, at most 10000), `parents`
//! (10, below the population), `mutation_prob` (0.1), `eval_batches` (10, at most the
//! validation split's batches), `recalibrate` (10, at most the training split's
//! batches), `macs_bins` (7; 0 samples every choice uniformly), `macs_range` (`[low,
//! high]` multiply-adds per image of the whole network; default the least and the most
//! among 1,000 uniform paths),
//! `max_params`, `max_macs`, `max_latency_ms`, `limits`. A count out of its
//! range is an error naming the field, its value and the range. The reference searches
//! a population of 50 for 20 generations; our defaults (20 for 10) keep the search after
//! the supernet to about 220 scorings instead of 1,000, for a CPU.

use nas_strategies::decisions;
use nas_strategies::oneshot::{
    rng_in_state, rng_only_state, scoring_counts, within_limits, EpochStrategy, OneShotInfo,
    OneShotSetup, Progress, Split, Subset, SupernetHost,
};
use nas_strategies::{
    config_count, config_field, config_probability, export_one_shot, Architecture, Rng, Value,
};
use std::collections::BTreeMap;

/// A stated cap on the generations of the evolutionary search.
const MAX_GENERATIONS: usize = 10_000;
/// A stated cap on the multiply-add bins of the supernet's path sampling.
const MAX_BINS: usize = 1_000;
/// Uniform draws that look for a path in the drawn bin before a plain uniform one
/// (the reference's `timeout`).
const BIN_TRIES: usize = 500;

/// The supernet's path sampler: uniform over multiply-add bins.
#[derive(Debug)]
struct Bins {
    /// Multiply-adds of each mixing weight's candidate (the host's op costs).
    macs: Vec<f64>,
    /// Multiply-adds of the network outside the choices' candidates (0 unless a range
    /// in whole-network units was asked for).
    fixed: f64,
    low: f64,
    high: f64,
    count: usize,
}

impl Bins {
    /// The multiply-adds of decision vector `d` by the op costs.
    fn cost(&self, info: &OneShotInfo, d: &[usize]) -> f64 {
        self.fixed + info.path_total(d, &self.macs)
    }

    /// A path for the supernet's step: a uniform bin, then uniform paths until one
    /// falls in it (a plain uniform path after [`BIN_TRIES`] misses), as the
    /// reference's `get_uniform_sample_cand`; and whether it fell in its bin.
    fn draw(&self, info: &OneShotInfo, rng: &mut Rng) -> (Vec<usize>, bool) {
        let width = (self.high - self.low) / self.count as f64;
        let i = rng.below(self.count);
        let (l, r) = (
            self.low + i as f64 * width,
            self.low + (i + 1) as f64 * width,
        );
        // A relative slack so a path on a bin's edge is not lost to rounding.
        let eps = 1e-9 * self.high.abs().max(1.0);
        for _ in 0..BIN_TRIES {
            let d = decisions::random(&info.choices, rng);
            let c = self.cost(info, &d);
            if c >= l - eps && c <= r + eps {
                return (d, true);
            }
        }
        (decisions::random(&info.choices, rng), false)
    }
}

/// Uniform paths whose costs set the default range: the least and the most of them.
const SPAN_DRAWS: usize = 1_000;

pub struct Spos {
    info: OneShotInfo,
    rng: Rng,
    population: usize,
    generations: usize,
    parents: usize,
    mutation_prob: f32,
    eval_batches: usize,
    recalibrate: usize,
    limits: Vec<(String, f64)>,
    seed: u64,
    macs_bins: usize,
    macs_range: Option<(f64, f64)>,
    /// The sampler, made at the first step (`None` until then; `Some(None)` when the
    /// paths are uniform: `macs_bins` 0, or every path costs the same).
    bins: Option<Option<Bins>>,
    /// Candidates the search after the supernet has considered (scored or skipped as
    /// already scored or over a limit); not saved, a resume repeats that search.
    pub considered: usize,
}

impl Spos {
    fn random(&mut self) -> Vec<usize> {
        decisions::random(&self.info.choices, &mut self.rng)
    }

    /// Makes the path sampler at the first step: the op costs' bins, or `None` for
    /// uniform paths.
    fn make_sampler(&mut self, host: &mut dyn SupernetHost) -> Result<(), String> {
        if self.bins.is_some() {
            return Ok(());
        }
        let made = if self.macs_bins == 0 {
            None
        } else {
            let costs = self.info.per_weight("op costs", host.op_costs()?)?;
            let macs: Vec<f64> = costs.iter().map(|c| c.macs).collect();
            // The default range: the cheapest and the dearest of uniform paths, drawn
            // by a generator of their own (the same on a resumed run).
            let mut rng = Rng::new(self.seed ^ 0x5350_4f53);
            let (mut low, mut high) = (f64::INFINITY, f64::NEG_INFINITY);
            for _ in 0..SPAN_DRAWS {
                let c = self
                    .info
                    .path_total(&decisions::random(&self.info.choices, &mut rng), &macs);
                (low, high) = (low.min(c), high.max(c));
            }
            match self.macs_range {
                // Every path costs the same: bins cannot tell paths apart.
                None if high <= low => None,
                None => Some(Bins {
                    macs,
                    fixed: 0.0,
                    low,
                    high,
                    count: self.macs_bins,
                }),
                Some((lo, hi)) => {
                    // The range is in the whole network's multiply-adds: add what lies
                    // outside the choices, from the host's count for one path.
                    let d = vec![0; self.info.choices.len()];
                    let arch = decisions::to_arch(&self.info.choices, &d);
                    let whole = host
                        .metrics(&arch)?
                        .macs
                        .ok_or("`macs_range`: the host does not count multiply-adds".to_string())?;
                    let fixed = whole - self.info.path_total(&d, &macs);
                    let (least, most) = (fixed + low, fixed + high);
                    if hi < least || lo > most {
                        return Err(format!(
                            "config field `macs_range`: [{lo}, {hi}] lies outside the \
                             multiply-adds of {SPAN_DRAWS} uniform paths ({least} to {most})"
                        ));
                    }
                    Some(Bins {
                        macs,
                        fixed,
                        low: lo,
                        high: hi,
                        count: self.macs_bins,
                    })
                }
            }
        };
        self.bins = Some(made);
        Ok(())
    }

    /// The path of a training step, and whether it fell in its bin (`None` for uniform
    /// paths).
    fn sample(&mut self) -> (Vec<usize>, Option<bool>) {
        match &self.bins {
            Some(Some(bins)) => {
                let (d, hit) = bins.draw(&self.info, &mut self.rng);
                (d, Some(hit))
            }
            _ => (self.random(), None),
        }
    }

    /// Scores `d` into `scored` unless it was scored before or breaks a limit.
    fn score(
        &mut self,
        host: &mut dyn SupernetHost,
        scored: &mut BTreeMap<String, (f32, Vec<usize>)>,
        d: Vec<usize>,
    ) -> Result<bool, String> {
        self.considered += 1;
        let key = decisions::key(&self.info.choices, &d);
        if scored.contains_key(&key) || !within_limits(host, &self.limits, &d)? {
            return Ok(false);
        }
        let mix = self.info.one_hot(&d);
        let acc = host.evaluate(&mix, self.eval_batches, self.recalibrate, Subset::Fixed)?;
        scored.insert(key, (acc, d));
        Ok(true)
    }
}

impl EpochStrategy for Spos {
    fn create(setup: &OneShotSetup) -> Result<Self, String> {
        let c = &setup.config;
        let fields = [
            "population",
            "generations",
            "parents",
            "mutation_prob",
            "eval_batches",
            "recalibrate",
            "macs_bins",
            "macs_range",
        ];
        nas_strategies::check_config_fields(c, "spos", &fields)?;
        let population = config_count(c, "population", 20, 2, nas_strategies::MAX_POPULATION)?;
        // Below the population, which leaves room for children.
        let parents = config_count(c, "parents", 10.min(population - 1), 1, population - 1)?;
        let mutation_prob = config_probability(c, "mutation_prob", 0.1)? as f32;
        let limits = nas_strategies::config_limits(c)?;
        let (eval_batches, recalibrate) = scoring_counts(setup, 10, 10)?;
        let macs_bins = config_count(c, "macs_bins", 7, 0, MAX_BINS)?;
        let macs_range: Option<[f64; 2]> = config_field(c, "macs_range", None)?;
        if macs_range.is_some() && macs_bins == 0 {
            return Err(
                "config field `macs_range` needs `macs_bins` above 0 (0 samples \
                        paths uniformly, with no range)"
                    .into(),
            );
        }
        if let Some([lo, hi]) = macs_range {
            if !(lo.is_finite() && hi.is_finite() && 0.0 <= lo && lo < hi) {
                return Err(format!(
                    "config field `macs_range`: [{lo}, {hi}] is not valid (two finite \
                     multiply-add counts, 0 <= low < high)"
                ));
            }
        }
        Ok(Spos {
            seed: setup.seed,
            macs_bins,
            macs_range: macs_range.map(|[lo, hi]| (lo, hi)),
            bins: None,
            considered: 0,
            info: setup.info.clone(),
            rng: Rng::new(setup.seed),
            population,
            generations: config_count(c, "generations", 10, 1, MAX_GENERATIONS)?,
            parents,
            mutation_prob,
            eval_batches,
            recalibrate,
            limits,
        })
    }

    fn step(
        &mut self,
        host: &mut dyn SupernetHost,
        _epoch: usize,
        _step: usize,
    ) -> Result<Vec<(&'static str, f32)>, String> {
        host.next_batch(Split::Train)?;
        self.make_sampler(host)?;
        let (d, in_bin) = self.sample();
        let mix = self.info.one_hot(&d);
        let loss = host.train_step(&mix, None)?;
        let mut out = vec![("train_loss", loss)];
        if let Some(hit) = in_bin {
            // The share of paths that fell in their drawn bin (the rest are plain
            // uniform draws after 500 misses).
            out.push(("in_bin", hit as u8 as f32));
        }
        Ok(out)
    }

    fn current(&self, info: &OneShotInfo) -> Architecture {
        info.derive(&vec![1.0; info.len()])
    }

    fn finish(&mut self, host: &mut dyn SupernetHost) -> Result<Architecture, String> {
        let space = self.info.choices.clone();
        let mut scored: BTreeMap<String, (f32, Vec<usize>)> = BTreeMap::new();
        if self.limits.iter().any(|(f, _)| f == "latency_ms") {
            host.latencies()?; // predicted latencies come from the measured table
        }
        let sizes = decisions::sizes(&space);
        // No more members than the space has architectures: past that, draws only
        // repeat ones already scored.
        let distinct = decisions::distinct(&sizes);
        let population = self.population.min(distinct);
        // Initial population: random architectures within the limits.
        let mut tries = 0;
        while scored.len() < population && tries < 50 * population {
            let d = self.random();
            self.score(host, &mut scored, d)?;
            tries += 1;
        }
        if scored.is_empty() {
            return Err(format!(
                "no architecture within the limits ({}) in {tries} random draws",
                nas_strategies::show_limits(&self.limits)
            ));
        }
        for generation in 0..self.generations {
            let mut ranked: Vec<(f32, Vec<usize>)> = scored.values().cloned().collect();
            ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
            ranked.truncate(self.parents);
            let before = scored.len();
            // As the reference: half the generation mutated from the parents, half
            // crossed over between two of them, then random draws while it is short.
            let half = population / 2;
            let mut made = 0;
            let mut tries = 0;
            while made < half && tries < 10 * half && scored.len() < distinct {
                tries += 1;
                let a = &ranked[self.rng.below(ranked.len())].1;
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
            while crossed < population - half && tries < 10 * half && scored.len() < distinct {
                tries += 1;
                let a = &ranked[self.rng.below(ranked.len())].1;
                let b = &ranked[self.rng.below(ranked.len())].1;
                let child: Vec<usize> = (0..sizes.len())
                    .map(|i| if self.rng.bernoulli(0.5) { a[i] } else { b[i] })
                    .collect();
                crossed += self.score(host, &mut scored, child)? as usize;
            }
            made += crossed;
            let mut tries = 0;
            while made < population && tries < 50 * population && scored.len() < distinct {
                tries += 1;
                let d = self.random();
                made += self.score(host, &mut scored, d)? as usize;
            }
            let best = scored.values().max_by(|a, b| a.0.total_cmp(&b.0)).unwrap();
            let mut values = BTreeMap::new();
            values.insert("best_supernet_accuracy".to_string(), best.0);
            values.insert("scored".to_string(), scored.len() as f32);
            host.progress(&Progress {
                epoch: self.info.epochs,
                step: generation + 1,
                values,
                arch: decisions::to_arch(&space, &best.1),
            })?;
            if scored.len() == before {
                break; // nothing new to try: a small space is exhausted
            }
        }
        let best = scored.values().max_by(|a, b| a.0.total_cmp(&b.0)).unwrap();
        Ok(decisions::to_arch(&space, &best.1))
    }

    fn save(&self) -> Result<Value, String> {
        Ok(rng_only_state(&self.rng))
    }

    fn load(&mut self, state: Value) -> Result<(), String> {
        self.rng = rng_in_state(&state)?;
        Ok(())
    }
}

export_one_shot!(Spos, "spos", "0.2.0");
