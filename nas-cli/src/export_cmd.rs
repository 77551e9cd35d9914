//! `nas export`: a finished run's best architecture, or its Pareto set.

use crate::search_args::{best_of, cost_of, load_run, run_cost, run_limits};
use anyhow::{anyhow, bail, Result};
use clap::Args;
use nas_core::experiment::{candidates, pareto, write_output};
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// The run directory (as `nas search --out` made it).
    pub dir: PathBuf,
    /// Where to write (default DIR/export.json).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Export the Pareto set of accuracy against this cost (params, macs, latency_ms);
    /// the default for multi-objective runs is their cost objective.
    #[arg(long)]
    pub pareto: Option<String>,
}

pub fn export(a: ExportArgs) -> Result<()> {
    let (run, args, j) = load_run(&a.dir)?;
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| run.path.join("export.json"));
    let cost = a.pareto.clone().or_else(|| run_cost(&args));
    let limits = run_limits(&args)?;
    // Errors when no trial is within the limits.
    let b = best_of(&j, &limits)?;
    let v = match &cost {
        Some(c) => {
            let cands = candidates(&j, &limits);
            let front = pareto(&cands, cost_of(c));
            if front.is_empty() {
                bail!("--pareto {c}: no trial reports that cost");
            }
            println!(
                "Pareto set of accuracy against {c}: {}{}",
                crate::count(front.len(), "architecture"),
                if limits.is_empty() {
                    String::new()
                } else {
                    format!(", all within the limits ({limits})")
                }
            );
            serde_json::Value::Array(
                front
                    .iter()
                    .map(|&i| {
                        serde_json::json!({
                            "arch": cands[i].arch,
                            "metrics": cands[i].metrics,
                            "trials": cands[i].trials,
                        })
                    })
                    .collect(),
            )
        }
        None => {
            println!(
                "best of {}: trial {} ({:.2}%{})",
                crate::count(j.len(), "trial"),
                b.trials[0],
                b.metrics.accuracy * 100.0,
                match b.trials.len() {
                    1 => String::new(),
                    n => format!(", mean of its {n} trials"),
                }
            );
            serde_json::to_value(&b.arch)?
        }
    };
    write_output(&out, &serde_json::to_vec_pretty(&v)?).map_err(|e| anyhow!(e))?;
    println!("wrote {}", out.display());
    Ok(())
}
