//! `nas search` and `nas resume`: the host's experiment loop. A strategy plugin proposes
//! architectures, an evaluator scores them (several in flight at once), and every trial
//! is journaled before the strategy hears of it, so a killed run resumes exactly.

use crate::search_args::{
    best_of, load_train_data, run_limits, search_input, trial_seed, SearchArgs,
};
use anyhow::{anyhow, bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use nas_cli::host::{discover, search_dirs, LoadedStrategy};
use nas_core::evaluate::{Evaluator, Nb201Table, TrainEvaluator};
use nas_core::experiment::{self, candidates, write_atomic, Limits, RunDir, TrialRecord};
use nas_core::space::{arch, describe, Architecture};
use nas_strategies::Setup;
use std::path::Path;
use std::time::Instant;

pub fn run(a: SearchArgs) -> Result<()> {
    let dir = a.out_dir();
    let mut a = a;
    // Pin the directory in the config, so `nas resume` and the run agree on it.
    a.out = Some(dir.clone());
    let config = serde_json::to_value(&a)?;
    let run = RunDir::create(&dir, &config).map_err(|e| anyhow!(e))?;
    println!("run directory: {}", dir.display());
    drive(&a, &run)
}

pub fn resume(dir: &Path) -> Result<()> {
    let run = RunDir::open(dir).map_err(|e| anyhow!(e))?;
    let a: SearchArgs = serde_json::from_value(run.config().map_err(|e| anyhow!(e))?)
        .with_context(|| format!("{}: config.json is not a search config", dir.display()))?;
    drive(&a, &run)
}

fn drive(a: &SearchArgs, run: &RunDir) -> Result<()> {
    if a.budget == 0 || a.parallel == 0 || a.batch == 0 || a.epochs == 0 {
        bail!("--budget, --parallel, --batch and --epochs must be at least 1");
    }
    crate::device::select(&a.device)?;
    let found = discover(&search_dirs(&a.plugin_dir));
    let plugin = found.get(&a.strategy).map_err(|e| {
        anyhow!(
            "{e}\n(plugins are built by `cargo build --release --workspace`; see `nas plugins`)"
        )
    })?;
    if plugin.kind == nas_strategies::abi::KIND_ONE_SHOT {
        return crate::oneshot_cmd::drive(a, run, plugin);
    }
    let table_eval = a.uses_table()?;
    let data = if table_eval {
        None
    } else {
        Some(load_train_data(a)?)
    };
    let input = search_input(table_eval, data.as_ref());
    let space = a.space.resolve(input)?;
    let table = if table_eval {
        let mut t = Nb201Table::load(&a.table).map_err(|e| anyhow!(e))?;
        t.count_macs = true;
        Some(t)
    } else {
        None
    };
    let train_eval = data.as_ref().map(|d| TrainEvaluator {
        space: space.as_ref(),
        train: &d.train,
        val: &d.val,
        epochs: a.epochs,
        batch_size: a.batch,
        lr: 0.05,
    });
    let evaluator: &dyn Evaluator = match (&table, &train_eval) {
        (Some(t), _) => t,
        (None, Some(t)) => t,
        _ => unreachable!(),
    };
    let choices = describe(space.as_ref());
    let setup = Setup {
        space: choices.clone(),
        config: a.strategy_config()?,
        seed: a.seed,
        budget: a.budget,
    };
    let mut strategy = plugin.create(&setup).map_err(|e| anyhow!(e))?;
    let mut journal = run.journal().map_err(|e| anyhow!(e))?;
    if !journal.is_empty() || run.load_state().map_err(|e| anyhow!(e))?.is_some() {
        restore(&mut strategy, run, &journal)?;
        println!("resumed: {} trials already journaled", journal.len());
    }
    let bar = ProgressBar::new(a.budget as u64);
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} trials, {msg} eta {eta}")?
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("{} on {}", a.strategy, space.name()));
    bar.set_position(journal.len() as u64);
    let limits = run_limits(a)?;
    let best_msg = |j: &[TrialRecord]| match experiment::best(&candidates(j, &limits)) {
        Some(b) => format!("best {:.2}%", b.metrics.accuracy * 100.0),
        None if j.is_empty() => "no trial yet".into(),
        None => "no trial within the limits yet".into(),
    };
    bar.set_message(best_msg(&journal));
    while journal.len() < a.budget {
        let want = a.parallel.min(a.budget - journal.len());
        let mut asked = vec![];
        for _ in 0..want {
            match strategy.ask().map_err(|e| anyhow!(e))? {
                Some(arch) => {
                    arch::validate(&choices, &arch).map_err(|e| {
                        anyhow!(
                            "strategy `{}` proposed an invalid architecture: {e}",
                            a.strategy
                        )
                    })?;
                    asked.push(arch);
                }
                None => break,
            }
        }
        if asked.is_empty() {
            bar.println("the strategy has nothing more to propose");
            break;
        }
        let first = journal.len();
        let results = evaluate_all(evaluator, &asked, a.seed, first);
        for (k, (arch, res)) in asked.into_iter().zip(results).enumerate() {
            let (metrics, seconds) = res.map_err(|e| anyhow!("trial {}: {e}", first + k))?;
            let rec = TrialRecord {
                trial: journal.len(),
                arch,
                metrics,
                seconds,
            };
            // Journal first: a trial is never lost once evaluated, and never re-run.
            run.append(&rec).map_err(|e| anyhow!(e))?;
            strategy
                .tell(&rec.arch, &rec.metrics)
                .map_err(|e| anyhow!(e))?;
            journal.push(rec);
        }
        let state = strategy.save().map_err(|e| anyhow!(e))?;
        run.save_state(journal.len(), &state)
            .map_err(|e| anyhow!(e))?;
        write_best(run, &journal, &limits, evaluator)?;
        bar.set_position(journal.len() as u64);
        bar.set_message(best_msg(&journal));
    }
    bar.finish_and_clear();
    write_best(run, &journal, &limits, evaluator)?;
    summarize(&journal, &limits, evaluator, run);
    Ok(())
}

/// Brings a fresh strategy to where the journal ends: its saved state, then the trials
/// journaled after that state was saved.
fn restore(s: &mut LoadedStrategy, run: &RunDir, journal: &[TrialRecord]) -> Result<()> {
    let told = match run.load_state().map_err(|e| anyhow!(e))? {
        Some((told, state)) => {
            s.load(&state).map_err(|e| anyhow!(e))?;
            told
        }
        None => 0,
    };
    if told > journal.len() {
        bail!(
            "{}: state says {told} trials, the journal has {}",
            run.path.display(),
            journal.len()
        );
    }
    for r in &journal[told..] {
        s.tell(&r.arch, &r.metrics).map_err(|e| anyhow!(e))?;
    }
    Ok(())
}

/// Evaluates architectures concurrently, one thread each.
fn evaluate_all(
    ev: &dyn Evaluator,
    archs: &[Architecture],
    seed: u64,
    first: usize,
) -> Vec<Result<(nas_core::evaluate::Metrics, f64), String>> {
    let one = |k: usize| {
        let t = Instant::now();
        ev.evaluate(&archs[k], trial_seed(seed, first + k))
            .map(|m| (m, t.elapsed().as_secs_f64()))
    };
    if archs.len() == 1 {
        return vec![one(0)];
    }
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..archs.len()).map(|k| s.spawn(move || one(k))).collect();
        hs.into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("evaluation panicked".into()))
            })
            .collect()
    })
}

fn write_best(run: &RunDir, j: &[TrialRecord], limits: &Limits, ev: &dyn Evaluator) -> Result<()> {
    if let Ok(b) = best_of(j, limits) {
        let v = serde_json::json!({
            "trial": b.trials[0],
            "trials": b.trials,
            "arch": b.arch,
            "metrics": b.metrics,
            "final_accuracy": ev.final_accuracy(&b.arch),
        });
        write_atomic(&run.best_path(), &serde_json::to_vec_pretty(&v)?).map_err(|e| anyhow!(e))?;
    }
    Ok(())
}

fn summarize(j: &[TrialRecord], limits: &Limits, ev: &dyn Evaluator, run: &RunDir) {
    if j.is_empty() {
        println!("no trials");
        return;
    }
    let b = match best_of(j, limits) {
        Ok(b) => b,
        Err(e) => {
            println!("{e}; no architecture to return");
            return;
        }
    };
    let within = if limits.is_empty() {
        String::new()
    } else {
        format!(" within the limits ({limits})")
    };
    println!(
        "{} trials; best{within} is trial {} ({} trial{} of it): observed accuracy {:.2}%",
        j.len(),
        b.trials[0],
        b.trials.len(),
        if b.trials.len() == 1 { "" } else { "s" },
        b.metrics.accuracy * 100.0
    );
    if let Some(f) = ev.final_accuracy(&b.arch) {
        println!(
            "its benchmark accuracy (mean over seeds): {:.2}%",
            f * 100.0
        );
    }
    println!(
        "architecture: {}",
        serde_json::to_string(&b.arch).unwrap_or_default()
    );
    println!("written to {}", run.best_path().display());
}
