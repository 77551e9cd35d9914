//! Evaluators: what a trial's architecture scores. Tabular lookup in a NAS-Bench-201 CSV
//! (a noisy single-seed answer, like a real run) and training from scratch on a
//! validation split. Each reports accuracy plus costs (parameters, multiply-adds,
//! latency) so strategies can be multi-objective.

use crate::data::{Augment, Dataset};
use crate::optim::LrSchedule;
use crate::rng::Rng;
use crate::space::builtin::nb201;
use crate::space::cost::{cost, measure_latency};
use crate::space::{fixed, Architecture, Space};
use crate::train::{evaluate, sgd_for, train_epoch, TrainConfig};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// What an evaluator measured. `accuracy` is in [0, 1]; the rest are costs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub accuracy: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub macs: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    /// Anything else the evaluator reports.
    #[serde(default, flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// Scores architectures. `trial_seed` makes each trial's randomness reproducible.
pub trait Evaluator: Sync {
    fn evaluate(&self, arch: &Architecture, trial_seed: u64) -> Result<Metrics, String>;
    /// The noise-free score reported for the final answer, where the evaluator has one
    /// (the seed mean of a tabular benchmark).
    fn final_accuracy(&self, _arch: &Architecture) -> Option<f64> {
        None
    }
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

/// The NAS-Bench-201 table (CIFAR-10 validation accuracies), keyed by the six-digit key.
pub struct Nb201Table {
    pub rows: HashMap<String, Nb201Row>,
}

impl Nb201Table {
    /// Reads the CSV; errors name the file, line and field.
    pub fn load(path: &Path) -> Result<Nb201Table, String> {
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
            .filter(|(_, c)| c.starts_with("val_acc_s"))
            .map(|(i, _)| i)
            .collect();
        let mut rows = HashMap::new();
        for (n, line) in lines {
            if line.trim().is_empty() {
                continue;
            }
            let f: Vec<&str> = line.split(',').collect();
            let at = |i: usize, name: &str| -> Result<f64, String> {
                let v = f.get(i).ok_or_else(|| {
                    format!("{}: line {}: missing field `{name}`", path.display(), n + 1)
                })?;
                v.parse::<f64>().map_err(|_| {
                    format!(
                        "{}: line {}: field `{name}` is `{v}`, not a number",
                        path.display(),
                        n + 1
                    )
                })
            };
            let key = f.get(ik).copied().unwrap_or("");
            if key.len() != 6 || !key.bytes().all(|b| (b'0'..=b'4').contains(&b)) {
                return Err(format!(
                    "{}: line {}: bad key `{key}`",
                    path.display(),
                    n + 1
                ));
            }
            let seeds: Vec<f64> = seed_cols
                .iter()
                .filter_map(|&i| f.get(i).and_then(|v| v.parse::<f64>().ok()))
                .filter(|v| v.is_finite())
                .collect();
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
                    mean: at(im, "val_acc_mean")?,
                    params_mb: at(ip, "params_mb")?,
                    latency_s: at(il, "latency_s")?,
                    train_time_s: at(it, "train_time_s")?,
                },
            );
        }
        Ok(Nb201Table { rows })
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
        let mut extra = BTreeMap::new();
        extra.insert("arch_str".into(), Value::from(row.arch_str.clone()));
        extra.insert("train_time_s".into(), Value::from(row.train_time_s));
        Ok(Metrics {
            accuracy: acc / 100.0,
            params: Some(row.params_mb * 1e6),
            macs: None,
            latency_ms: Some(row.latency_s * 1e3),
            extra,
        })
    }
    fn final_accuracy(&self, arch: &Architecture) -> Option<f64> {
        self.row(arch).ok().map(|r| r.mean / 100.0)
    }
}

/// Trains each architecture from scratch and scores it on a validation split.
pub struct TrainEvaluator<'a> {
    pub space: &'a dyn Space,
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
        let cfg = TrainConfig {
            epochs: self.epochs,
            batch_size: self.batch_size,
            lr: self.lr,
            schedule: LrSchedule::Cosine {
                total: self.epochs as f32,
                min_lr: 0.0,
            },
            augment: Augment::default(),
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
        let input = [self.train.c, self.train.h, self.train.w];
        let c = cost(net.as_ref(), input);
        let mut extra = BTreeMap::new();
        extra.insert("val_loss".into(), Value::from(loss as f64));
        Ok(Metrics {
            accuracy: acc as f64,
            params: Some(c.params as f64),
            macs: Some(c.macs as f64),
            latency_ms: Some(measure_latency(net.as_ref(), input, 1, 5)),
            extra,
        })
    }
}
