//! `nas bench-strategies`: every ask/tell plugin on the NAS-Bench-201 table.

use crate::host::{discover, discover_all, search_dirs};
use crate::search_args::{json_option, trial_seed};
use anyhow::{anyhow, bail, Result};
use clap::Args;
use nas_core::evaluate::{Evaluator, Nb201Table};
use nas_core::experiment::{Leaderboard, Limits, TrialRecord};
use nas_core::space::builtin::{self, InputSpec};
use nas_core::space::describe;
use nas_core::space::Architecture;
use nas_strategies::{Metrics, Setup};
use rayon::prelude::*;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct BenchStrategiesArgs {
    /// Runs per strategy.
    #[arg(long, default_value_t = 100)]
    pub runs: usize,
    /// Table queries per run.
    #[arg(long, default_value_t = 150)]
    pub budget: usize,
    /// Strategies to compare (default: every ask/tell plugin found).
    #[arg(long, value_delimiter = ',')]
    pub strategies: Vec<String>,
    /// Options given to every strategy benchmarked, as JSON, inline or `@file.json`
    /// (default `{}`: each strategy's defaults); `random`, the baseline, takes only its
    /// hard limits.
    #[arg(long, value_name = "JSON")]
    pub config: Option<String>,
    /// The accuracy (%, seed mean) whose first reaching is counted in the `queries to`
    /// column: the queries a run took until the architecture it would return scored at
    /// least this.
    #[arg(long, value_name = "PERCENT", default_value_t = 91.5, value_parser = parse_percent)]
    pub reach: f64,
    /// The NAS-Bench-201 table [default: the bundled nasbench201/nb201_cifar10.csv,
    /// looked up in $NAS_DATA, ./data and beside the binary].
    #[arg(long, value_name = "FILE")]
    pub table: Option<PathBuf>,
    /// Extra directories to look for plugins in (before NAS_PLUGIN_PATH and the binary's).
    #[arg(long)]
    pub plugin_dir: Vec<PathBuf>,
}

/// One run followed as the host follows a search: every query ranked by
/// [`Leaderboard`] (an architecture scored by the mean of its observations, so a lucky
/// single score of a re-evaluated one does not stand), the returned architecture judged
/// by `truth` (its seed mean, %).
pub struct RunTracker {
    board: Leaderboard,
    queries: usize,
    /// The query after which the returned architecture first scored `reach` or more.
    pub reached_at: Option<usize>,
    reach: f64,
}

impl RunTracker {
    pub fn new(limits: Limits, reach: f64) -> RunTracker {
        RunTracker {
            board: Leaderboard::new(limits),
            queries: 0,
            reached_at: None,
            reach,
        }
    }

    /// Ranks one more query's result.
    pub fn add(&mut self, arch: &Architecture, m: &Metrics, truth: impl Fn(&Architecture) -> f64) {
        self.board.add(&TrialRecord {
            trial: self.queries,
            arch: arch.clone(),
            metrics: m.clone(),
            seconds: 0.0,
        });
        self.queries += 1;
        if self.reached_at.is_none() {
            if let Some(b) = self.board.best() {
                if truth(&b.arch) >= self.reach {
                    self.reached_at = Some(self.queries);
                }
            }
        }
    }

    /// The architecture the run returns.
    pub fn best(&self) -> Option<&Architecture> {
        self.board.best().map(|c| &c.arch)
    }
}

/// Mean and (population) standard deviation.
pub fn mean_std(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let std = (xs.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
    (mean, std)
}

/// The `queries to` cell: the mean, over the runs that got there, of the queries they
/// took, and how many of all the runs got there (`63 (87/100)`; `- (0/100)` when none).
pub fn reach_cell(reached: &[Option<usize>]) -> String {
    let hits: Vec<f64> = reached.iter().flatten().map(|&q| q as f64).collect();
    let mean = if hits.is_empty() {
        "-".to_string()
    } else {
        format!("{:.0}", mean_std(&hits).0)
    };
    format!("{mean} ({}/{})", hits.len(), reached.len())
}

/// The comparison with random search: the difference of the means and two standard
/// errors of it; `better` or `worse` when the difference is more than that.
pub fn against_random(finals: &[f64], random: &[f64]) -> String {
    let ((m, sd), (r, rsd)) = (mean_std(finals), mean_std(random));
    let se2 = 2.0 * (sd * sd / finals.len() as f64 + rsd * rsd / random.len() as f64).sqrt();
    let d = m - r;
    let word = if d > se2 {
        "better"
    } else if d < -se2 {
        "worse"
    } else {
        "no better"
    };
    format!("{word}, {d:+.2} (±{se2:.2})")
}

/// Every strategy on the NAS-Bench-201 table: mean and spread of the seed-mean validation
/// accuracy of the architecture each run returns (the one with the best mean of its
/// observations, as a search returns it), the queries it took to reach `--reach`, and
/// the comparison with random search when `random` is benchmarked (it runs first).
pub fn bench_strategies(a: BenchStrategiesArgs) -> Result<()> {
    crate::at_least_one(&[("--runs", a.runs), ("--budget", a.budget)])?;
    let table_path = crate::data_paths::resolve(
        a.table.as_deref(),
        crate::data_paths::Bundled::Nb201Table,
        "--table",
    )?;
    let table = Nb201Table::load(&table_path).map_err(|e| anyhow!("--table: {e}"))?;
    let config = match &a.config {
        Some(s) => json_option("--config", s)?,
        None => serde_json::json!({}),
    };
    let limits = Limits::from_config(&config).map_err(|e| anyhow!("--config: {e}"))?;
    let limits_only: serde_json::Value = match &config {
        serde_json::Value::Object(m) => m
            .iter()
            .filter(|(k, _)| nas_strategies::LIMIT_FIELDS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<serde_json::Map<_, _>>()
            .into(),
        _ => config.clone(),
    };
    let space = builtin::nb201(
        16,
        5,
        InputSpec {
            channels: 3,
            height: 32,
            width: 32,
            classes: 10,
        },
    );
    let choices = describe(space.as_ref());
    // Every plugin only when none is named: a damaged library of a strategy that is not
    // benchmarked is never loaded.
    let dirs = search_dirs(&a.plugin_dir);
    let found = if a.strategies.is_empty() {
        discover_all(&dirs)
    } else {
        discover(&dirs)
    };
    let mut names: Vec<String> = if a.strategies.is_empty() {
        found
            .plugins
            .iter()
            .filter(|p| p.kind == nas_strategies::abi::KIND_ASK_TELL)
            .map(|p| p.name.clone())
            .collect()
    } else {
        a.strategies.clone()
    };
    // A strategy named twice runs once.
    let mut once = std::collections::HashSet::new();
    names.retain(|n| once.insert(n.replace('-', "_")));
    // Every strategy named is found before the table starts.
    for name in &names {
        let p = found.get(name).map_err(|e| anyhow!(e))?;
        if p.kind != nas_strategies::abi::KIND_ASK_TELL {
            bail!(
                "--strategies {name}: a one-shot strategy (it trains a supernet); the table \
                 benchmark runs ask/tell strategies"
            );
        }
    }
    // Random search first: the others are compared with it.
    if let Some(i) = names.iter().position(|n| n == "random") {
        let r = names.remove(i);
        names.insert(0, r);
    }
    // Run `seed` of strategy `name`: random search, the baseline, takes only the limits.
    let setup = |name: &str, seed: u64| Setup {
        space: choices.clone(),
        config: if name == "random" {
            limits_only.clone()
        } else {
            config.clone()
        },
        seed,
        budget: a.budget,
    };
    // Every strategy takes the config before the table starts (its error, not a table
    // cut off after its header).
    for name in &names {
        let plugin = found.get(name).map_err(|e| anyhow!(e))?;
        plugin
            .create(&setup(name, 0))
            .map_err(|e| anyhow!("--strategies {name}: {e}"))?;
    }
    println!(
        "NAS-Bench-201 table {} (validation accuracy, mean over seeds), {} runs x {} queries; \
         table optimum {:.2}%",
        table_path.display(),
        a.runs,
        a.budget,
        table.optimum()
    );
    if a.config.is_some() {
        println!("config {config}");
    }
    let reach_head = format!("queries to {}", a.reach);
    println!(
        "{:<12} {:>8} {:>8} {:>8} {:>8} {:>18}  against random (mean, two standard errors)",
        "strategy", "mean", "std", "min", "max", reach_head
    );
    let truth = |arch: &Architecture| table.final_accuracy(arch).unwrap_or(0.0) * 100.0;
    let mut random: Option<Vec<f64>> = None;
    for name in names {
        let plugin = found.get(&name).map_err(|e| anyhow!(e))?;
        // The runs are independent: they run side by side on `--threads` threads (each
        // strategy made, asked and told on one), and come back in run order.
        let outcomes = (0..a.runs)
            .into_par_iter()
            .map(|r| -> Result<(f64, Option<usize>)> {
                let mut s = plugin
                    .create(&setup(&name, r as u64))
                    .map_err(|e| anyhow!(e))?;
                let mut run = RunTracker::new(limits.clone(), a.reach);
                for t in 0..a.budget {
                    let costs = |a: &Architecture| table.costs(a);
                    let Some(arch) = s.ask_costed(&costs).map_err(|e| anyhow!(e))? else {
                        break;
                    };
                    let m = table
                        .evaluate(&arch, trial_seed(1000 + r as u64, t))
                        .map_err(|e| anyhow!("{name}: {e}"))?;
                    run.add(&arch, &m, truth);
                    s.tell(&arch, &m).map_err(|e| anyhow!(e))?;
                }
                let arch = run
                    .best()
                    .ok_or_else(|| anyhow!("{name}: no feasible trial in run {r}"))?;
                Ok((truth(arch), run.reached_at))
            })
            .collect::<Result<Vec<_>>>()?;
        let (finals, reached): (Vec<f64>, Vec<Option<usize>>) = outcomes.into_iter().unzip();
        let (mean, std) = mean_std(&finals);
        let (lo, hi) = finals
            .iter()
            .fold((f64::MAX, f64::MIN), |(l, h), v| (l.min(*v), h.max(*v)));
        let vs = match &random {
            Some(rnd) if name != "random" => against_random(&finals, rnd),
            _ => String::new(),
        };
        println!(
            "{name:<12} {mean:>8.2} {std:>8.2} {lo:>8.2} {hi:>8.2} {:>18}  {vs}",
            reach_cell(&reached)
        );
        if name == "random" {
            random = Some(finals);
        }
    }
    Ok(())
}

/// `--reach`: a percentage from 0 to 100.
fn parse_percent(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(x) if (0.0..=100.0).contains(&x) => Ok(x),
        _ => Err("expected an accuracy in percent, from 0 to 100 (such as 91.5)".into()),
    }
}
