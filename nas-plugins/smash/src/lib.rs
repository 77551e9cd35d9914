//! SMASH (Brock, Lim, Ritchie and Weston, 2018): a HyperNet generates the weights of
//! each sampled architecture, and training a network through generated weights trains
//! the HyperNet. Every step draws one architecture uniformly, has the host generate its
//! candidates' weights ([`SupernetHost::generate_weights`]) and takes one training step
//! through them. After the last epoch the search scores architectures with generated
//! weights, as the reference's evaluation does: `samples` random architectures, then
//! `perturbations` independent perturbations of the best of them (each decision redrawn
//! with probability `perturb_prob`), then `markov_steps` of hill climbing from the best
//! so far (a perturbation is kept only when it scores higher). Every score is the
//! accuracy on `eval_batches` validation batches, batch norm recalibrated on
//! `recalibrate` training batches for the path, on the same images for every
//! architecture ([`Subset::Fixed`]). The best scored architecture is exported.
//!
//! Config: `hidden` (64), `layers` (2), `block` (8) and `hyper_lr` (1e-3), the
//! HyperNet (see [`HyperSpec`]); `samples` (100, 1..=100000), `perturbations` (20, 0..=100000),
//! `markov_steps` (20, 0..=100000), `perturb_prob` (0.05, in [0, 1]), `eval_batches`
//! (10, at most the validation split's batches), `recalibrate` (10, at most the
//! training split's), and the host's hard limits, which no scored architecture breaks.
//! The reference samples 500, perturbs 100 times and climbs 100 steps; our defaults
//! keep the same proportions at a fifth of the scorings, for a CPU.

use nas_strategies::decisions;
use nas_strategies::oneshot::{
    rng_in_state, rng_only_state, scoring_counts, within_limits, EpochStrategy, HyperSpec,
    OneShotInfo, OneShotSetup, Progress, Split, Subset, SupernetHost,
};
use nas_strategies::{
    config_count, config_field, config_probability, export_one_shot, Architecture, Rng, Value,
};
use std::collections::{BTreeMap, BTreeSet};

/// A stated cap on each phase of the search after training.
const MAX_SCORINGS: usize = 100_000;

/// What the search after training has seen, by key: the architectures it scored
/// (accuracy and decisions), and those over a limit (their costs are not asked twice).
#[derive(Default)]
struct Scored {
    scored: BTreeMap<String, (f32, Vec<usize>)>,
    over: BTreeSet<String>,
}

impl Scored {
    fn best(&self) -> Option<(f32, Vec<usize>)> {
        self.scored
            .values()
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .cloned()
    }
    /// Architectures seen, scored or over a limit.
    fn seen(&self) -> usize {
        self.scored.len() + self.over.len()
    }
}

pub struct Smash {
    info: OneShotInfo,
    rng: Rng,
    pub spec: HyperSpec,
    samples: usize,
    perturbations: usize,
    markov_steps: usize,
    perturb_prob: f32,
    eval_batches: usize,
    recalibrate: usize,
    limits: Vec<(String, f64)>,
    /// Whether the host generates the weights yet (asked once per process: a resumed
    /// run's host already does, from its checkpoint, and answers the same).
    generating: bool,
}

impl Smash {
    fn generate(&mut self, host: &mut dyn SupernetHost) -> Result<(), String> {
        if !self.generating {
            host.generate_weights(&self.spec)?;
            self.generating = true;
        }
        Ok(())
    }

    /// `d` with each decision redrawn with probability `perturb_prob`; when that
    /// changes nothing, one decision is redrawn among its other options (a perturbation
    /// is a new architecture, where the space has one).
    pub fn perturb(&mut self, d: &[usize]) -> Vec<usize> {
        let sizes = decisions::sizes(&self.info.choices);
        let mut out: Vec<usize> = d
            .iter()
            .zip(&sizes)
            .map(|(&v, &n)| {
                if self.rng.uniform() < self.perturb_prob {
                    self.rng.below(n)
                } else {
                    v
                }
            })
            .collect();
        let open: Vec<usize> = (0..sizes.len()).filter(|&i| sizes[i] > 1).collect();
        if out == d && !open.is_empty() {
            let i = open[self.rng.below(open.len())];
            out[i] = (d[i] + 1 + self.rng.below(sizes[i] - 1)) % sizes[i];
        }
        out
    }

    /// Scores `d` into `scored` unless it was scored before or breaks a limit; its
    /// accuracy when scored now or before.
    fn score(
        &mut self,
        host: &mut dyn SupernetHost,
        scored: &mut Scored,
        d: &[usize],
    ) -> Result<Option<f32>, String> {
        let key = decisions::key(&self.info.choices, d);
        if let Some((acc, _)) = scored.scored.get(&key) {
            return Ok(Some(*acc));
        }
        if scored.over.contains(&key) {
            return Ok(None);
        }
        if !within_limits(host, &self.limits, d)? {
            scored.over.insert(key);
            return Ok(None);
        }
        let mix = self.info.one_hot(d);
        let acc = host.evaluate(&mix, self.eval_batches, self.recalibrate, Subset::Fixed)?;
        scored.scored.insert(key, (acc, d.to_vec()));
        Ok(Some(acc))
    }

    fn report(
        &self,
        host: &mut dyn SupernetHost,
        phase: usize,
        scored: &Scored,
    ) -> Result<(), String> {
        let Some((acc, d)) = scored.best() else {
            return Ok(());
        };
        let mut values = BTreeMap::new();
        values.insert("best_generated_accuracy".to_string(), acc);
        values.insert("scored".to_string(), scored.scored.len() as f32);
        host.progress(&Progress {
            epoch: self.info.epochs,
            step: phase,
            values,
            arch: decisions::to_arch(&self.info.choices, &d),
        })
    }
}

impl EpochStrategy for Smash {
    fn create(setup: &OneShotSetup) -> Result<Self, String> {
        let c = &setup.config;
        let fields = [
            "hidden",
            "layers",
            "block",
            "hyper_lr",
            "samples",
            "perturbations",
            "markov_steps",
            "perturb_prob",
            "eval_batches",
            "recalibrate",
        ];
        nas_strategies::check_config_fields(c, "smash", &fields)?;
        let spec = HyperSpec {
            hidden: config_field(c, "hidden", 64)?,
            layers: config_field(c, "layers", 2)?,
            block: config_field(c, "block", 8)?,
            lr: config_field(c, "hyper_lr", 1e-3)?,
        };
        spec.check()?;
        let (eval_batches, recalibrate) = scoring_counts(setup, 10, 10)?;
        Ok(Smash {
            info: setup.info.clone(),
            rng: Rng::new(setup.seed),
            spec,
            samples: config_count(c, "samples", 100, 1, MAX_SCORINGS)?,
            perturbations: config_count(c, "perturbations", 20, 0, MAX_SCORINGS)?,
            markov_steps: config_count(c, "markov_steps", 20, 0, MAX_SCORINGS)?,
            perturb_prob: config_probability(c, "perturb_prob", 0.05)? as f32,
            eval_batches,
            recalibrate,
            limits: nas_strategies::config_limits(c)?,
            generating: false,
        })
    }

    fn step(
        &mut self,
        host: &mut dyn SupernetHost,
        _epoch: usize,
        _step: usize,
    ) -> Result<Vec<(&'static str, f32)>, String> {
        self.generate(host)?;
        host.next_batch(Split::Train)?;
        let d = decisions::random(&self.info.choices, &mut self.rng);
        let mix = self.info.one_hot(&d);
        let loss = host.train_step(&mix, None)?;
        Ok(vec![("train_loss", loss)])
    }

    fn current(&self, info: &OneShotInfo) -> Architecture {
        info.derive(&vec![1.0; info.len()])
    }

    fn finish(&mut self, host: &mut dyn SupernetHost) -> Result<Architecture, String> {
        self.generate(host)?;
        if self.limits.iter().any(|(f, _)| f == "latency_ms") {
            host.latencies()?; // predicted latencies come from the measured table
        }
        let mut scored = Scored::default();
        let distinct = decisions::distinct(&decisions::sizes(&self.info.choices));
        // Random architectures (within the limits).
        let mut tries = 0;
        while scored.scored.len() < self.samples && tries < 50 * self.samples {
            tries += 1;
            let d = decisions::random(&self.info.choices, &mut self.rng);
            self.score(host, &mut scored, &d)?;
            if scored.seen() == distinct {
                break; // a small space is exhausted
            }
        }
        let Some((_, first)) = scored.best() else {
            return Err(format!(
                "no architecture within the limits ({}) in {tries} random draws",
                nas_strategies::show_limits(&self.limits)
            ));
        };
        self.report(host, 1, &scored)?;
        // Independent perturbations of the best random architecture.
        for _ in 0..self.perturbations {
            let d = self.perturb(&first);
            self.score(host, &mut scored, &d)?;
        }
        self.report(host, 2, &scored)?;
        // Hill climbing from the best so far: a perturbation replaces the current
        // architecture only when it scores higher.
        let (mut acc, mut current) = scored.best().expect("scored above");
        for _ in 0..self.markov_steps {
            let d = self.perturb(&current);
            if let Some(a) = self.score(host, &mut scored, &d)? {
                if a > acc {
                    (acc, current) = (a, d);
                }
            }
        }
        self.report(host, 3, &scored)?;
        let (_, best) = scored.best().expect("scored above");
        Ok(decisions::to_arch(&self.info.choices, &best))
    }

    fn save(&self) -> Result<Value, String> {
        Ok(rng_only_state(&self.rng))
    }

    fn load(&mut self, state: Value) -> Result<(), String> {
        self.rng = rng_in_state(&state)?;
        Ok(())
    }
}

export_one_shot!(Smash, "smash", "0.1.0");
