//! `nas bench-strategies`: every ask/tell plugin on the NAS-Bench-201 table.

use crate::search_args::trial_seed;
use anyhow::{anyhow, Result};
use clap::Args;
use nas_cli::host::{discover, discover_all, search_dirs};
use nas_core::evaluate::{Evaluator, Nb201Table};
use nas_core::space::builtin::{self, InputSpec};
use nas_core::space::describe;
use nas_strategies::Setup;
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
    /// The NAS-Bench-201 table [default: the bundled nasbench201/nb201_cifar10.csv,
    /// looked up in $NAS_DATA, ./data and beside the binary].
    #[arg(long, value_name = "FILE")]
    pub table: Option<PathBuf>,
    /// Extra directories to look for plugins in (before NAS_PLUGIN_PATH and the binary's).
    #[arg(long)]
    pub plugin_dir: Vec<PathBuf>,
}

/// Every strategy on the NAS-Bench-201 table: mean and spread of the seed-mean validation
/// accuracy of the architecture each run returns (its best observed trial).
pub fn bench_strategies(a: BenchStrategiesArgs) -> Result<()> {
    let table_path = crate::data_paths::resolve(
        a.table.as_deref(),
        crate::data_paths::Bundled::Nb201Table,
        "--table",
    )?;
    let table = Nb201Table::load(&table_path).map_err(|e| anyhow!("--table: {e}"))?;
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
    let names: Vec<String> = if a.strategies.is_empty() {
        found
            .plugins
            .iter()
            .filter(|p| p.kind == nas_strategies::abi::KIND_ASK_TELL)
            .map(|p| p.name.clone())
            .collect()
    } else {
        a.strategies.clone()
    };
    println!(
        "NAS-Bench-201 table {} (validation accuracy, mean over seeds), {} runs x {} queries; \
         table optimum {:.2}%",
        table_path.display(),
        a.runs,
        a.budget,
        table.optimum()
    );
    println!(
        "{:<12} {:>8} {:>8} {:>8} {:>8}",
        "strategy", "mean", "std", "min", "max"
    );
    for name in names {
        let plugin = found.get(&name).map_err(|e| anyhow!(e))?;
        let mut finals = vec![];
        for r in 0..a.runs {
            let setup = Setup {
                space: choices.clone(),
                config: serde_json::json!({}),
                seed: r as u64,
                budget: a.budget,
            };
            let mut s = plugin.create(&setup).map_err(|e| anyhow!(e))?;
            let mut best: Option<(f64, nas_core::space::Architecture)> = None;
            for t in 0..a.budget {
                let Some(arch) = s.ask().map_err(|e| anyhow!(e))? else {
                    break;
                };
                let m = table
                    .evaluate(&arch, trial_seed(1000 + r as u64, t))
                    .map_err(|e| anyhow!("{name}: {e}"))?;
                if best.as_ref().is_none_or(|(b, _)| m.accuracy > *b) {
                    best = Some((m.accuracy, arch.clone()));
                }
                s.tell(&arch, &m).map_err(|e| anyhow!(e))?;
            }
            let (_, arch) = best.ok_or_else(|| anyhow!("{name}: no trial"))?;
            finals.push(table.final_accuracy(&arch).unwrap() * 100.0);
        }
        let n = finals.len() as f64;
        let mean = finals.iter().sum::<f64>() / n;
        let std = (finals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
        let (lo, hi) = finals
            .iter()
            .fold((f64::MAX, f64::MIN), |(l, h), v| (l.min(*v), h.max(*v)));
        println!("{name:<12} {mean:>8.2} {std:>8.2} {lo:>8.2} {hi:>8.2}");
    }
    Ok(())
}
