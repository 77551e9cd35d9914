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

/// Indices of the Pareto-optimal trials: highest accuracy for their cost (lower `cost`
/// is better); trials without the cost are left out.
pub fn pareto(trials: &[TrialRecord], cost: impl Fn(&Metrics) -> Option<f64>) -> Vec<usize> {
    let pts: Vec<(usize, f64, f64)> = trials
        .iter()
        .enumerate()
        .filter_map(|(i, t)| cost(&t.metrics).map(|c| (i, t.metrics.accuracy, c)))
        .collect();
    let mut front: Vec<usize> = pts
        .iter()
        .filter(|(_, a, c)| {
            !pts.iter()
                .any(|(_, a2, c2)| a2 >= a && c2 <= c && (a2 > a || c2 < c))
        })
        .map(|(i, _, _)| *i)
        .collect();
    front.sort_by(|&x, &y| {
        cost(&trials[x].metrics)
            .partial_cmp(&cost(&trials[y].metrics))
            .unwrap()
    });
    front
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

    #[test]
    fn pareto_front_keeps_the_undominated() {
        let t = vec![
            rec(0, 0.9, 100.0),
            rec(1, 0.8, 50.0),
            rec(2, 0.7, 60.0),
            rec(3, 0.95, 200.0),
        ];
        assert_eq!(pareto(&t, |m| m.params), vec![1, 0, 3]);
    }
}
