//! The experiment directory of a run: its config, an append-only journal of every trial,
//! the strategy's saved state and the best architecture. A run killed at any moment
//! resumes from it, re-running no journaled trial and losing none.

use crate::evaluate::Metrics;
use crate::space::Architecture;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

/// One finished trial, as journaled.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TrialRecord {
    pub trial: usize,
    pub arch: Architecture,
    pub metrics: Metrics,
    pub seconds: f64,
}

/// A run's directory.
pub struct RunDir {
    pub path: PathBuf,
}

impl RunDir {
    pub fn config_path(&self) -> PathBuf {
        self.path.join("config.json")
    }
    pub fn journal_path(&self) -> PathBuf {
        self.path.join("journal.jsonl")
    }
    pub fn state_path(&self) -> PathBuf {
        self.path.join("strategy_state.json")
    }
    pub fn best_path(&self) -> PathBuf {
        self.path.join("best.json")
    }

    /// Creates a new run directory (refusing one that already holds a journal).
    pub fn create(path: &Path, config: &Value) -> Result<RunDir, String> {
        let d = RunDir {
            path: path.to_path_buf(),
        };
        if d.journal_path().exists() {
            return Err(format!(
                "{}: already holds a run; use `nas resume {}` or choose another --out",
                path.display(),
                path.display()
            ));
        }
        std::fs::create_dir_all(path).map_err(|e| format!("{}: {e}", path.display()))?;
        write_atomic(
            &d.config_path(),
            &serde_json::to_vec_pretty(config).unwrap(),
        )?;
        File::create(d.journal_path())
            .map_err(|e| format!("{}: {e}", d.journal_path().display()))?;
        Ok(d)
    }

    /// Opens an existing run directory.
    pub fn open(path: &Path) -> Result<RunDir, String> {
        let d = RunDir {
            path: path.to_path_buf(),
        };
        if !d.config_path().exists() {
            return Err(format!(
                "{}: not a run directory (no config.json)",
                path.display()
            ));
        }
        Ok(d)
    }

    pub fn config(&self) -> Result<Value, String> {
        let p = self.config_path();
        let t = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        serde_json::from_str(&t).map_err(|e| format!("{}: {e}", p.display()))
    }

    /// Every complete journaled trial. A last line cut short by a kill is dropped (and
    /// cut from the file, so later appends start on a fresh line); any other bad line is
    /// an error naming it.
    pub fn journal(&self) -> Result<Vec<TrialRecord>, String> {
        let p = self.journal_path();
        let f = match File::open(&p) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(format!("{}: {e}", p.display())),
        };
        let mut out = vec![];
        let mut good_bytes = 0u64;
        let lines: Vec<String> = BufReader::new(f)
            .split(b'\n')
            .map(|l| l.map(|b| String::from_utf8_lossy(&b).into_owned()))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("{}: {e}", p.display()))?;
        let total = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
        for (i, line) in lines.iter().enumerate() {
            let complete = good_bytes + line.len() as u64 + 1 <= total;
            if line.trim().is_empty() {
                good_bytes += line.len() as u64 + 1;
                continue;
            }
            match serde_json::from_str::<TrialRecord>(line) {
                Ok(r) if complete => {
                    good_bytes += line.len() as u64 + 1;
                    out.push(r);
                }
                _ if i + 1 == lines.len() || !complete => {
                    // Torn final write: drop it.
                    let f = OpenOptions::new()
                        .write(true)
                        .open(&p)
                        .map_err(|e| e.to_string())?;
                    f.set_len(good_bytes)
                        .map_err(|e| format!("{}: {e}", p.display()))?;
                    break;
                }
                Err(e) => return Err(format!("{}: line {}: {e}", p.display(), i + 1)),
                Ok(_) => unreachable!(),
            }
        }
        Ok(out)
    }

    /// Appends one trial and flushes it to disk before returning.
    pub fn append(&self, r: &TrialRecord) -> Result<(), String> {
        let p = self.journal_path();
        let mut f = OpenOptions::new()
            .append(true)
            .create(true)
            .open(&p)
            .map_err(|e| format!("{}: {e}", p.display()))?;
        let mut line = serde_json::to_vec(r).map_err(|e| e.to_string())?;
        line.push(b'\n');
        f.write_all(&line)
            .map_err(|e| format!("{}: {e}", p.display()))?;
        f.sync_data().map_err(|e| format!("{}: {e}", p.display()))
    }

    /// The strategy state saved after `told` trials had been told to it.
    pub fn save_state(&self, told: usize, state: &Value) -> Result<(), String> {
        let v = serde_json::json!({ "told": told, "strategy": state });
        write_atomic(&self.state_path(), &serde_json::to_vec(&v).unwrap())
    }

    pub fn load_state(&self) -> Result<Option<(usize, Value)>, String> {
        let p = self.state_path();
        if !p.exists() {
            return Ok(None);
        }
        let t = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        let v: Value = serde_json::from_str(&t).map_err(|e| format!("{}: {e}", p.display()))?;
        let told = v["told"]
            .as_u64()
            .ok_or_else(|| format!("{}: no `told` count", p.display()))?;
        Ok(Some((told as usize, v["strategy"].clone())))
    }
}

/// Writes a file so that a crash leaves either the old or the new content.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    f.write_all(bytes)
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    f.sync_data()
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

/// A cost a trial reports: `params`, `macs`, `latency_ms`, or a number the evaluator
/// added under that name.
pub fn cost(m: &Metrics, name: &str) -> Option<f64> {
    match name {
        "params" => m.params,
        "macs" => m.macs,
        "latency_ms" => m.latency_ms,
        _ => m.extra.get(name).and_then(|v| v.as_f64()),
    }
}

/// Hard limits on a trial's costs: a trial over any of them, or lacking a limited cost,
/// is infeasible, and nothing a user gets back from a run (best, export, Pareto set,
/// retrain, report) is infeasible.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Limits(pub Vec<(String, f64)>);

impl Limits {
    /// The limits in a strategy config: `"limits": {"params": 4e5, ...}` (the
    /// multi-objective strategies' field) and the one-shot searches' `max_params`,
    /// `max_macs`, `max_latency_ms`. An error names the field and value.
    pub fn from_config(cfg: &Value) -> Result<Limits, String> {
        let mut out = vec![];
        if let Some(l) = cfg.get("limits") {
            let map = l.as_object().ok_or_else(|| {
                format!("config field `limits`: {l} is not an object of cost: maximum")
            })?;
            for (k, v) in map {
                if !matches!(k.as_str(), "params" | "macs" | "latency_ms") {
                    return Err(format!(
                        "config field `limits`: unknown cost `{k}` (use params, macs, latency_ms)"
                    ));
                }
                out.push((k.clone(), limit_value(&format!("limits.{k}"), v)?));
            }
        }
        for k in ["params", "macs", "latency_ms"] {
            let field = format!("max_{k}");
            if let Some(v) = cfg.get(&field) {
                out.push((k.to_string(), limit_value(&field, v)?));
            }
        }
        Ok(Limits(out))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn feasible(&self, m: &Metrics) -> bool {
        self.0
            .iter()
            .all(|(k, max)| cost(m, k).is_some_and(|c| c <= *max))
    }
}

fn limit_value(field: &str, v: &Value) -> Result<f64, String> {
    match v.as_f64() {
        Some(x) if x.is_finite() && x >= 0.0 => Ok(x),
        _ => Err(format!(
            "config field `{field}`: {v} is not valid (a number >= 0)"
        )),
    }
}

impl std::fmt::Display for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|(k, v)| format!("{k} <= {v}")).collect();
        write!(f, "{}", parts.join(", "))
    }
}

/// One architecture of a run and every trial that scored it. Its `metrics` are its
/// first trial's, with `accuracy` the mean over all of them (a noisy evaluator scores
/// the same architecture differently; its luckiest score would flatter it).
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    pub arch: Architecture,
    /// Trial numbers, in journal order.
    pub trials: Vec<usize>,
    pub metrics: Metrics,
}

/// The run's feasible architectures, each once, in the order of their first trial.
/// A trial's accuracy that is not a finite number counts as 0.
pub fn candidates(journal: &[TrialRecord], limits: &Limits) -> Vec<Candidate> {
    let mut out: Vec<Candidate> = vec![];
    let mut sums: Vec<f64> = vec![];
    let mut index: std::collections::HashMap<String, usize> = Default::default();
    for t in journal.iter().filter(|t| limits.feasible(&t.metrics)) {
        let acc = if t.metrics.accuracy.is_finite() {
            t.metrics.accuracy
        } else {
            0.0
        };
        let key = serde_json::to_string(&t.arch).unwrap_or_default();
        match index.get(&key) {
            Some(&i) => {
                out[i].trials.push(t.trial);
                sums[i] += acc;
                out[i].metrics.accuracy = sums[i] / out[i].trials.len() as f64;
            }
            None => {
                index.insert(key, out.len());
                let mut metrics = t.metrics.clone();
                metrics.accuracy = acc;
                out.push(Candidate {
                    arch: t.arch.clone(),
                    trials: vec![t.trial],
                    metrics,
                });
                sums.push(acc);
            }
        }
    }
    out
}

/// The candidate with the highest accuracy (the first on ties).
pub fn best(c: &[Candidate]) -> Option<&Candidate> {
    c.iter().reduce(|b, x| {
        if x.metrics.accuracy > b.metrics.accuracy {
            x
        } else {
            b
        }
    })
}

/// Indices of the Pareto-optimal candidates: highest accuracy for their cost (lower
/// `cost` is better), sorted by cost; candidates without the cost are left out.
pub fn pareto(c: &[Candidate], cost: impl Fn(&Metrics) -> Option<f64>) -> Vec<usize> {
    let pts: Vec<(usize, f64, f64)> = c
        .iter()
        .enumerate()
        .filter_map(|(i, t)| cost(&t.metrics).map(|x| (i, t.metrics.accuracy, x)))
        .collect();
    let mut front: Vec<(usize, f64)> = pts
        .iter()
        .filter(|(_, a, c)| {
            !pts.iter()
                .any(|(_, a2, c2)| a2 >= a && c2 <= c && (a2 > a || c2 < c))
        })
        .map(|(i, _, c)| (*i, *c))
        .collect();
    front.sort_by(|x, y| x.1.total_cmp(&y.1));
    front.into_iter().map(|(i, _)| i).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(i: usize, acc: f64, params: f64) -> TrialRecord {
        TrialRecord {
            trial: i,
            arch: Architecture::new(),
            metrics: Metrics {
                accuracy: acc,
                params: Some(params),
                ..Default::default()
            },
            seconds: 0.0,
        }
    }

    #[test]
    fn journal_survives_a_torn_last_line() {
        let dir = std::env::temp_dir().join(format!("nas-journal-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let d = RunDir::create(&dir, &serde_json::json!({})).unwrap();
        d.append(&rec(0, 0.5, 10.0)).unwrap();
        d.append(&rec(1, 0.6, 20.0)).unwrap();
        // A kill in the middle of the third write.
        let mut f = OpenOptions::new()
            .append(true)
            .open(d.journal_path())
            .unwrap();
        f.write_all(b"{\"trial\": 2, \"arch\": {").unwrap();
        drop(f);
        let j = d.journal().unwrap();
        assert_eq!(j.len(), 2);
        d.append(&rec(2, 0.7, 5.0)).unwrap();
        let j = d.journal().unwrap();
        assert_eq!(j.iter().map(|r| r.trial).collect::<Vec<_>>(), [0, 1, 2]);
        assert!(RunDir::create(&dir, &serde_json::json!({})).is_err());
        std::fs::remove_dir_all(&dir).ok();
    }

    fn arch(k: i64) -> Architecture {
        let mut a = Architecture::new();
        a.insert("op".into(), serde_json::json!(k));
        a
    }

    #[test]
    fn pareto_front_keeps_the_undominated() {
        let t: Vec<TrialRecord> = vec![
            rec(0, 0.9, 100.0),
            rec(1, 0.8, 50.0),
            rec(2, 0.7, 60.0),
            rec(3, 0.95, 200.0),
        ]
        .into_iter()
        .enumerate()
        .map(|(i, mut r)| {
            r.arch = arch(i as i64);
            r
        })
        .collect();
        let c = candidates(&t, &Limits::default());
        assert_eq!(pareto(&c, |m| m.params), vec![1, 0, 3]);
    }

    #[test]
    fn limits_leave_out_infeasible_trials_and_each_architecture_comes_once() {
        // Architecture 1 is scored three times (noisy), architecture 3 breaks the limit.
        let mut t = vec![];
        for (i, (a, acc, params)) in [
            (1, 0.90, 100.0),
            (2, 0.85, 50.0),
            (1, 0.80, 100.0),
            (3, 0.99, 500.0),
            (1, f64::NAN, 100.0),
            (4, 0.70, 300.0),
        ]
        .into_iter()
        .enumerate()
        {
            let mut r = rec(i, acc, params);
            r.arch = arch(a);
            t.push(r);
        }
        let limits = Limits::from_config(&serde_json::json!({"limits": {"params": 300}})).unwrap();
        let c = candidates(&t, &limits);
        let archs: Vec<&Architecture> = c.iter().map(|c| &c.arch).collect();
        assert_eq!(archs, [&arch(1), &arch(2), &arch(4)]);
        assert_eq!(c[0].trials, [0, 2, 4]);
        assert!((c[0].metrics.accuracy - (0.90 + 0.80 + 0.0) / 3.0).abs() < 1e-12);
        // The best feasible is architecture 2: 3 is over the limit, 1's mean is 0.567.
        assert_eq!(best(&c).unwrap().arch, arch(2));
        let front = pareto(&c, |m| m.params);
        assert_eq!(front, [1]);
        // No feasible trial: nothing to return.
        let tight = Limits::from_config(&serde_json::json!({"max_params": 10})).unwrap();
        assert!(candidates(&t, &tight).is_empty());
        assert!(best(&candidates(&t, &tight)).is_none());
        // A limited cost the trial does not report makes it infeasible.
        let lat = Limits::from_config(&serde_json::json!({"limits": {"latency_ms": 5}})).unwrap();
        assert!(candidates(&t, &lat).is_empty());
    }

    #[test]
    fn bad_limits_name_the_field() {
        for (cfg, want) in [
            (serde_json::json!({"limits": {"flops": 3}}), "`flops`"),
            (serde_json::json!({"limits": {"params": "big"}}), "limits.params"),
            (serde_json::json!({"limits": [1]}), "`limits`"),
            (serde_json::json!({"max_macs": -1}), "max_macs"),
        ] {
            let e = Limits::from_config(&cfg).unwrap_err();
            assert!(e.contains(want), "{e}");
        }
    }
}
