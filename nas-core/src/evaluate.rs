//! Evaluators: what a trial's architecture scores. Tabular lookup in a NAS-Bench-201 CSV
//! (a noisy single-seed answer, like a real run) and training from scratch on a
//! validation split. Each reports accuracy plus costs (parameters, multiply-adds,
//! latency) so strategies can be multi-objective.

use crate::data::{Augment, Dataset};
use crate::optim::LrSchedule;
use crate::rng::Rng;
use crate::space::builtin::nb201;
use crate::space::cost::{cost, measure_latency, Cost};
use crate::space::{fixed, Architecture, Space};
use crate::train::{evaluate, sgd_for, train_epoch, TrainConfig};
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;

pub use nas_types::Metrics;

/// Each trial's seed, a function of the run seed and the trial number only: what every
/// executor of `nas search` and `nas bench-strategies` hands an [`Evaluator`], and what
/// the plugins' table tests (`nas_predict::testing`) use to ask the table as the host
/// would.
pub fn trial_seed(run_seed: u64, trial: usize) -> u64 {
    Rng::new(run_seed ^ (trial as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)).next_u64()
}

/// Scores architectures. `trial_seed` makes each trial's randomness reproducible.
pub trait Evaluator: Sync {
    fn evaluate(&self, arch: &Architecture, trial_seed: u64) -> Result<Metrics, String>;
    /// The noise-free score reported for the final answer, where the evaluator has one
    /// (the seed mean of a tabular benchmark).
    fn final_accuracy(&self, _arch: &Architecture) -> Option<f64> {
        None
    }
    /// What `arch` costs, as [`evaluate`](Self::evaluate) would report it, without
    /// evaluating it: parameters, multiply-adds, latency and `activations`; accuracy 0.
    /// (What ask/tell strategies get through `Strategy::ask_costed`.)
    fn costs(&self, arch: &Architecture) -> Result<Metrics, String>;
}

/// One architecture of the NAS-Bench-201 table.
#[derive(Clone, Debug)]
pub struct Nb201Row {
    pub arch_str: String,
    /// Validation accuracy (%) of each seed that has one.
    pub seeds: Vec<f64>,
    pub mean: f64,
    pub params_mb: f64,
    pub latency_s: f64,
    pub train_time_s: f64,
}

/// What a number of the NAS-Bench-201 table may be.
enum Range {
    /// A percentage: 0..=100.
    Accuracy,
    /// Parameters (MB), latency and time (s): 0..=1e12.
    Cost,
}

impl Range {
    fn holds(&self, x: f64) -> bool {
        match self {
            Range::Accuracy => (0.0..=100.0).contains(&x),
            // (Past 10^12 megabytes or seconds is no network's, and its trial's journal
            // line, in parameters or milliseconds, would pass what a journal holds.)
            Range::Cost => (0.0..=1e12).contains(&x),
        }
    }

    fn says(&self) -> &'static str {
        match self {
            Range::Accuracy => "not an accuracy (must be within 0..=100)",
            Range::Cost => "not a cost (must be within 0..=1e12)",
        }
    }
}

/// The NAS-Bench-201 table (CIFAR-10 validation accuracies), keyed by the six-digit key.
pub struct Nb201Table {
    pub rows: HashMap<String, Nb201Row>,
    /// When set, each query also counts the multiply-adds and activations of the
    /// benchmark's network (C=16, N=5, 3x32x32) with the cost model, once per
    /// architecture.
    pub count_macs: bool,
    costs: std::sync::Mutex<HashMap<String, Cost>>,
}

impl Nb201Table {
    /// Reads the CSV; errors name the file, line and field.
    pub fn load(path: &Path) -> Result<Nb201Table, String> {
        let _span = tracing::debug_span!("load table").entered();
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut lines = text.lines().enumerate();
        let (_, header) = lines
            .next()
            .ok_or_else(|| format!("{}: empty file", path.display()))?;
        let cols: Vec<&str> = header.split(',').collect();
        let col = |name: &str| {
            cols.iter()
                .position(|c| *c == name)
                .ok_or_else(|| format!("{}: line 1: no column `{name}`", path.display()))
        };
        let (ik, ia, im, ip, il, it) = (
            col("key")?,
            col("arch_str")?,
            col("val_acc_mean")?,
            col("params_mb")?,
            col("latency_s")?,
            col("train_time_s")?,
        );
        let seed_cols: Vec<usize> = cols
            .iter()
            .enumerate()
            // `val_acc_s777`, not `val_acc_std` (a column some tables add).
            .filter(|(_, c)| {
                c.strip_prefix("val_acc_s")
                    .is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            })
            .map(|(i, _)| i)
            .collect();
        let mut rows = HashMap::new();
        for (n, line) in lines {
            if line.trim().is_empty() {
                continue;
            }
            let f: Vec<&str> = line.split(',').collect();
            // A number in `range` (accuracies are percentages; costs are finite and
            // not negative), or an error naming the file, line and column.
            let checked = |v: &str, name: &str, range: &Range| -> Result<f64, String> {
                let x = v.parse::<f64>().map_err(|_| {
                    format!(
                        "{}: line {}: field `{name}` is `{v}`, not a number",
                        path.display(),
                        n + 1
                    )
                })?;
                if !range.holds(x) {
                    return Err(format!(
                        "{}: line {}: field `{name}` is `{v}`, {}",
                        path.display(),
                        n + 1,
                        range.says()
                    ));
                }
                Ok(x)
            };
            let at = |i: usize, name: &str, range: &Range| -> Result<f64, String> {
                let v = f.get(i).ok_or_else(|| {
                    format!("{}: line {}: missing field `{name}`", path.display(), n + 1)
                })?;
                checked(v, name, range)
            };
            let key = f.get(ik).copied().unwrap_or("");
            if key.len() != 6 || !key.bytes().all(|b| (b'0'..=b'4').contains(&b)) {
                return Err(format!(
                    "{}: line {}: bad key `{key}`",
                    path.display(),
                    n + 1
                ));
            }
            // A seed without a run is empty or `nan`; any other value must be an accuracy.
            let mut seeds = vec![];
            for &i in &seed_cols {
                let v = f.get(i).map_or("", |v| v.trim());
                if v.is_empty() || v.eq_ignore_ascii_case("nan") {
                    continue;
                }
                seeds.push(checked(v, cols[i], &Range::Accuracy)?);
            }
            if seeds.is_empty() {
                return Err(format!(
                    "{}: line {}: no seed has an accuracy",
                    path.display(),
                    n + 1
                ));
            }
            rows.insert(
                key.to_string(),
                Nb201Row {
                    arch_str: f.get(ia).unwrap_or(&"").to_string(),
                    seeds,
                    mean: at(im, "val_acc_mean", &Range::Accuracy)?,
                    params_mb: at(ip, "params_mb", &Range::Cost)?,
                    latency_s: at(il, "latency_s", &Range::Cost)?,
                    train_time_s: at(it, "train_time_s", &Range::Cost)?,
                },
            );
        }
        Ok(Nb201Table {
            rows,
            count_macs: false,
            costs: Default::default(),
        })
    }

    /// Multiply-adds of the benchmark's network for `arch` (cached).
    pub fn macs(&self, arch: &Architecture) -> Result<u64, String> {
        Ok(self.cost(arch)?.macs)
    }

    /// The cost model's figures of the benchmark's network for `arch` (cached).
    pub fn cost(&self, arch: &Architecture) -> Result<Cost, String> {
        let key = nb201::arch_key(arch)?;
        if let Some(c) = self.costs.lock().unwrap().get(&key) {
            return Ok(*c);
        }
        let input = crate::space::builtin::InputSpec {
            channels: 3,
            height: 32,
            width: 32,
            classes: 10,
        };
        let space = crate::space::builtin::nb201(16, 5, input);
        let net = fixed(space.as_ref(), arch, 0).map_err(|e| e.to_string())?;
        let c = cost(net.as_ref(), [3, 32, 32]);
        self.costs.lock().unwrap().insert(key, c);
        Ok(c)
    }

    pub fn row(&self, arch: &Architecture) -> Result<&Nb201Row, String> {
        let key = nb201::arch_key(arch)?;
        self.rows
            .get(&key)
            .ok_or_else(|| format!("architecture key {key} is not in the table"))
    }

    /// The best seed-mean accuracy in the table (%).
    pub fn optimum(&self) -> f64 {
        self.rows.values().map(|r| r.mean).fold(f64::MIN, f64::max)
    }
}

impl Evaluator for Nb201Table {
    /// One seed's validation accuracy, drawn at random as a real single run would give.
    fn evaluate(&self, arch: &Architecture, trial_seed: u64) -> Result<Metrics, String> {
        let row = self.row(arch)?;
        let mut rng = Rng::new(trial_seed);
        let acc = row.seeds[rng.below(row.seeds.len())];
        // The costs as `costs` gives them, without the cost model's where not counted.
        let mut m = match self.count_macs {
            true => self.costs(arch)?,
            false => Metrics {
                params: Some(row.params_mb * 1e6),
                latency_ms: Some(row.latency_s * 1e3),
                ..Metrics::default()
            },
        };
        m.accuracy = acc / 100.0;
        m.extra
            .insert("arch_str".into(), Value::from(row.arch_str.clone()));
        m.extra
            .insert("train_time_s".into(), Value::from(row.train_time_s));
        Ok(m)
    }
    fn final_accuracy(&self, arch: &Architecture) -> Option<f64> {
        self.row(arch).ok().map(|r| r.mean / 100.0)
    }
    /// The table's parameters and latency, and the cost model's multiply-adds and
    /// activations of the benchmark's network (whether or not queries count them).
    fn costs(&self, arch: &Architecture) -> Result<Metrics, String> {
        let row = self.row(arch)?;
        let c = self.cost(arch)?;
        Ok(Metrics {
            accuracy: 0.0,
            params: Some(row.params_mb * 1e6),
            macs: Some(c.macs as f64),
            latency_ms: Some(row.latency_s * 1e3),
            extra: [("activations".to_string(), Value::from(c.activations))].into(),
        })
    }
}

/// Trains each architecture from scratch and scores it on a validation split.
pub struct TrainEvaluator<'a> {
    pub space: &'a dyn Space,
    /// Where each network trains (its parameters are placed there).
    pub device: crate::device::Device,
    pub train: &'a Dataset,
    pub val: &'a Dataset,
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f32,
}

impl Evaluator for TrainEvaluator<'_> {
    fn evaluate(&self, arch: &Architecture, trial_seed: u64) -> Result<Metrics, String> {
        let mut rng = Rng::new(trial_seed);
        let net = fixed(self.space, arch, rng.next_u64()).map_err(|e| e.to_string())?;
        // A network the device cannot hold fails on it as a pass that runs out of its
        // memory does: a search fails the trial rather than ending.
        if let Err(e) = self.device.place(net.as_ref()) {
            crate::device::fail(format!("placing the network on the device: {e}"));
        }
        let cfg = TrainConfig {
            epochs: self.epochs,
            batch_size: self.batch_size,
            lr: self.lr,
            schedule: LrSchedule::Cosine {
                total: self.epochs as f32,
                min_lr: 0.0,
            },
            // As `nas train`, `nas retrain` and the one-shot trainer (until 2026-12-07
            // trials were not augmented on CIFAR-shaped data).
            augment: Augment::standard_for(self.train.c, self.train.h, self.train.w),
            seed: trial_seed,
            ..TrainConfig::default()
        };
        let mut opt = sgd_for(net.as_ref(), &cfg);
        for e in 0..self.epochs {
            train_epoch(
                net.as_ref(),
                &mut opt,
                self.train,
                &cfg,
                e,
                &mut rng,
                &mut |_, _, _| {},
            );
        }
        let (loss, acc) = evaluate(net.as_ref(), self.val, 256);
        let mut m = self.net_costs(net.as_ref());
        m.accuracy = acc as f64;
        m.extra.insert("val_loss".into(), Value::from(loss as f64));
        Ok(m)
    }

    /// The costs of the untrained network (they do not depend on its weights), built,
    /// placed and measured as `evaluate` would. A network the device cannot hold or run
    /// has no latency there: its costs say so as a failure (`Metrics::failed`), with
    /// its parameters, multiply-adds and activations counted on the host, and a
    /// device-aware strategy takes it as over any device budget. An error where the
    /// device no longer works after that failure (the search ends, and resumes in a new
    /// process).
    fn costs(&self, arch: &Architecture) -> Result<Metrics, String> {
        let net = fixed(self.space, arch, 0).map_err(|e| e.to_string())?;
        let measured = crate::device::catch(|| {
            self.device.place(net.as_ref())?;
            Ok::<_, String>(self.net_costs(net.as_ref()))
        });
        let e = match measured.and_then(|r| r) {
            Ok(m) => return Ok(m),
            Err(e) => e,
        };
        let why = format!("the device cannot run it: {e}");
        crate::device::usable().map_err(|broken| {
            format!("measuring its costs: {why}; the device does not work after it: {broken}")
        })?;
        // Counted again on the host, from a network that never went to the device.
        let host = fixed(self.space, arch, 0).map_err(|e| e.to_string())?;
        let mut m = self.counted_costs(host.as_ref());
        m.extra.extend(Metrics::failed(&why).extra);
        Ok(m)
    }
}

impl TrainEvaluator<'_> {
    /// One image's shape.
    fn input(&self) -> [usize; 3] {
        [self.train.c, self.train.h, self.train.w]
    }

    /// Parameters, multiply-adds and activations of `net` (no latency).
    fn counted_costs(&self, net: &dyn crate::nn::Module) -> Metrics {
        let c = cost(net, self.input());
        Metrics {
            accuracy: 0.0,
            params: Some(c.params as f64),
            macs: Some(c.macs as f64),
            latency_ms: None,
            extra: [("activations".to_string(), Value::from(c.activations))].into(),
        }
    }

    /// Parameters, multiply-adds, activations and measured latency of `net`.
    fn net_costs(&self, net: &dyn crate::nn::Module) -> Metrics {
        let mut m = self.counted_costs(net);
        m.latency_ms = Some(measure_latency(net, self.input(), 1, 5));
        m
    }
}
