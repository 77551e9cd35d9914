//! `nas search` with a one-shot strategy: the host builds the supernet, serves the
//! plugin's calls, checkpoints into the run directory (so `nas resume` continues after
//! a kill), and journals the exported architecture as the run's one trial, so `nas
//! export` and `nas retrain` treat it like any other run.

use crate::host::Plugin;
use crate::search_args::{load_train_data, SearchArgs, TrainData};
use crate::trainer::{SupernetTrainer, TrainerConfig};
use anyhow::{anyhow, Result};
use indicatif::{ProgressBar, ProgressStyle};
use nas_core::evaluate::{Evaluator, Nb201Table};
use nas_core::experiment::{write_atomic, RunDir, TrialRecord};
use nas_core::space::{arch, describe, Choice, Space};
use nas_strategies::oneshot::{OneShotSetup, Progress, SupernetHost};
use std::io::Write as _;
use std::time::Instant;

/// Batches of training data used to recalibrate batch norm before scoring the exported
/// architecture with the supernet's weights.
const RECALIBRATE: usize = 20;

fn short(a: &nas_core::space::Architecture) -> String {
    let s = serde_json::to_string(a).unwrap_or_default();
    if s.len() > 160 {
        format!("{}...", &s[..157])
    } else {
        s
    }
}

/// Prints a line above the progress bar, or plainly when there is no terminal to draw
/// the bar on (so logs keep the per-epoch lines).
pub(crate) fn say(bar: &ProgressBar, msg: String) {
    if bar.is_hidden() {
        println!("{msg}");
    } else {
        bar.println(msg);
    }
}

/// What a one-shot search runs on: its training data and space.
pub struct Inputs {
    data: TrainData,
    space: Box<dyn Space>,
}

impl Inputs {
    /// The choices of the space.
    pub fn choices(&self) -> Vec<Choice> {
        describe(self.space.as_ref())
    }
}

/// Loads and checks a one-shot search's data, space and config, writing nothing.
pub fn prepare(a: &SearchArgs) -> Result<Inputs> {
    a.strategy_config()?;
    let data = load_train_data(a)?;
    let space = a.space.resolve_for_batch(data.input, a.batch)?;
    Ok(Inputs { data, space })
}

/// Keeps the lines of a resumed search's `progress.jsonl` up to the checkpoint it resumes
/// from (`None`: no checkpoint, so none), since the search reports the steps after it
/// again. A torn last line goes too.
fn trim_progress(path: &std::path::Path, upto: Option<(u64, u64)>) -> Result<()> {
    let Ok(bytes) = std::fs::read(path) else {
        return Ok(());
    };
    let mut kept = Vec::with_capacity(bytes.len());
    for line in bytes.split(|&b| b == b'\n') {
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(line) else {
            continue;
        };
        let at = (v["epoch"].as_u64(), v["step"].as_u64());
        if let ((Some(e), Some(s)), Some(u)) = (at, upto) {
            if (e, s) <= u {
                kept.extend_from_slice(line);
                kept.push(b'\n');
            }
        }
    }
    if kept.len() != bytes.len() {
        write_atomic(path, &kept).map_err(|e| anyhow!(e))?;
    }
    Ok(())
}

pub fn drive(a: &SearchArgs, run: &RunDir, plugin: &Plugin, inputs: Inputs) -> Result<()> {
    let Inputs { data, space } = inputs;
    let journal = run.journal().map_err(|e| anyhow!(e))?;
    if let Some(r) = journal.first() {
        return finish(a, run, &describe(space.as_ref()), r);
    }
    let cfg = TrainerConfig {
        epochs: a.epochs,
        batch_size: a.batch,
        seed: a.seed,
        device: crate::device::parse(&a.device)?,
        // As `nas train` and the references' searches: CIFAR's crop and flip on
        // CIFAR-shaped data, nothing on Fashion-MNIST.
        augment: nas_core::data::Augment::standard_for(data.train.c, data.train.h, data.train.w),
        ..TrainerConfig::default()
    };
    let mut trainer = SupernetTrainer::new(space.as_ref(), &data.train, &data.val, cfg)
        .map_err(|e| anyhow!(e))?;
    trainer.checkpoint_dir = Some(run.path.clone());
    trainer.checkpoint_setup = Some(serde_json::json!({
        "strategy": a.strategy.replace('-', "_"),
        "limit": a.limit,
        "batch": a.batch,
        "val": a.val,
        "classes": a.dataset.classes.as_ref().map(|c| c.to_string()),
    }));
    let resume = trainer.load_checkpoint().map_err(|e| anyhow!(e))?;
    if let (None, Some(from)) = (&resume, &a.init_from) {
        let fresh = trainer.init_from(from).map_err(|e| anyhow!(e))?;
        println!(
            "supernet weights from {}{}",
            from.display(),
            match fresh.len() {
                0 => String::new(),
                n => format!(
                    "; {} did not fit and start fresh: {}{}",
                    crate::count(n, "tensor"),
                    fresh[..n.min(5)].join(", "),
                    if n > 5 { ", ..." } else { "" }
                ),
            }
        );
    }
    let info = trainer.info().clone();
    let per_epoch = info.batches_per_epoch as u64;
    let bar = ProgressBar::new(per_epoch * info.epochs as u64);
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} steps, {msg} eta {eta}")?
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("{} on {}", a.strategy, space.name()));
    // Where the checkpoint left the search: (epoch, step).
    let upto = resume.as_ref().map(|r| {
        let at = r.get("position").cloned().unwrap_or_default();
        let n = |k: &str| at.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
        (n("epoch"), n("step"))
    });
    if let Some((e, s)) = upto {
        bar.set_position(e * per_epoch + s);
        say(
            &bar,
            // Counted from 1, as the progress lines count epochs.
            match s {
                0 => format!("resumed from the checkpoint after epoch {e}"),
                _ => format!(
                    "resumed from the checkpoint in epoch {}, after step {s}",
                    e + 1
                ),
            },
        );
    }
    let progress_path = run.path.join("progress.jsonl");
    trim_progress(&progress_path, upto)?;
    let started = Instant::now();
    {
        let bar = bar.clone();
        let path = progress_path.clone();
        let mut page = crate::report_html::Live::new();
        trainer.on_progress = Box::new(move |p: &Progress, mix: &[f32], lr: f32| {
            let values: Vec<String> = p
                .values
                .iter()
                .map(|(k, v)| format!("{k} {v:.4}"))
                .collect();
            bar.set_position(p.epoch as u64 * per_epoch + p.step as u64);
            bar.set_message(values.join(", "));
            if p.step as u64 == per_epoch || p.epoch >= info.epochs {
                let what = if p.epoch >= info.epochs {
                    format!("search step {}", p.step)
                } else {
                    format!("epoch {}", p.epoch + 1)
                };
                say(
                    &bar,
                    format!("{what}: {} | {}", values.join(", "), short(&p.arch)),
                );
            }
            let mut line = serde_json::json!({
                "epoch": p.epoch, "step": p.step, "values": p.values, "arch": p.arch,
                "seconds": started.elapsed().as_secs_f64(), "lr": lr,
            });
            if let Some(m) = mix_by_choice(&info, mix) {
                line["mix"] = m;
            }
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
            {
                let _ = writeln!(f, "{line}");
            }
            page.update(run, a, &[]);
        });
    }
    let setup = OneShotSetup {
        info: trainer.info().clone(),
        config: a.strategy_config()?,
        seed: a.seed,
        resume,
    };
    let found = plugin
        .run_one_shot(&setup, &mut trainer)
        .map_err(|e| stopped_on_device(e, run))?;
    bar.finish_and_clear();
    arch::validate(&setup.info.choices, &found).map_err(|e| {
        anyhow!(
            "strategy `{}` exported an invalid architecture: {e}",
            a.strategy
        )
    })?;
    let search_seconds = started.elapsed().as_secs_f64();
    let mut metrics =
        score(&mut trainer, &found).map_err(|e| stopped_on_device(e.to_string(), run))?;
    metrics
        .extra
        .insert("search_seconds".into(), search_seconds.into());
    let mut final_accuracy = None;
    if let Some(table) = nb201_table(a)? {
        if let Ok(row) = table.row(&found) {
            metrics
                .extra
                .insert("nb201_arch_str".into(), row.arch_str.clone().into());
            metrics
                .extra
                .insert("nb201_accuracy".into(), (row.mean / 100.0).into());
            final_accuracy = table.final_accuracy(&found);
        }
    }
    let rec = TrialRecord {
        trial: 0,
        arch: found.clone(),
        metrics: metrics.clone(),
        seconds: search_seconds,
    };
    // A multi-objective strategy's Pareto set goes into the journal beside the export,
    // scored the same way, so `nas export --pareto` and `nas report` show it.
    let mut records = vec![rec.clone()];
    let front: Vec<_> = trainer
        .front
        .iter()
        .filter(|f| **f != found)
        .cloned()
        .collect();
    if !front.is_empty() {
        println!(
            "scoring the strategy's Pareto set ({}) with the supernet's weights",
            crate::count(front.len(), "more architecture")
        );
    }
    for (i, f) in front.into_iter().enumerate() {
        let mut m = score(&mut trainer, &f)?;
        m.extra.insert("pareto_set".into(), true.into());
        records.push(TrialRecord {
            trial: i + 1,
            arch: f,
            metrics: m,
            seconds: 0.0,
        });
    }
    // The final weights, for `--init-from` (a later run on other data or classes).
    trainer
        .save_weights(&run.path.join(crate::trainer::FINAL_WEIGHTS))
        .map_err(|e| anyhow!(e))?;
    run.append_all(&records).map_err(|e| anyhow!(e))?;
    write_best(run, &rec, final_accuracy)?;
    println!(
        "{} finished in {:.1} s; exported architecture: {}",
        a.strategy,
        search_seconds,
        serde_json::to_string(&found)?
    );
    let untrained = if trainer.ssl_spec().is_some() {
        " (a self-supervised search never trains the classifier: this says nothing of \
         the architecture; retrain it)"
    } else {
        ""
    };
    println!(
        "its accuracy with the supernet's weights (validation split): {:.2}%{untrained}",
        metrics.accuracy * 100.0
    );
    if let Some(s) = metrics.extra.get("nb201_arch_str") {
        println!(
            "NAS-Bench-201 entry: {} = {:.2}% (validation accuracy in {}, mean over seeds)",
            s.as_str().unwrap_or(""),
            final_accuracy.unwrap_or(0.0) * 100.0,
            a.table_path()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        );
    }
    println!(
        "written to {} (retrain it with `nas retrain {}`)",
        run.best_path().display(),
        run.path.display()
    );
    Ok(())
}

/// The error a one-shot search ends with: where it carries a device failure (a plugin
/// reports the host call that met it as "host panicked"), that failure, and that the run
/// keeps its last checkpoint for `nas resume`.
fn stopped_on_device(e: String, run: &RunDir) -> anyhow::Error {
    let Some(why) = nas_core::device::failure_within(&e) else {
        return anyhow!(e);
    };
    if run.path.join("oneshot.json").exists() {
        anyhow!(
            "{why}\nThe search stopped on the device; the run keeps its last checkpoint \
             (`nas resume {}` continues from it)",
            run.path.display()
        )
    } else {
        anyhow!("{why}\nThe search stopped on the device before its first checkpoint")
    }
}

/// What a one-shot run journals of an architecture: its costs and its accuracy with the
/// supernet's weights (batch norm recalibrated for it) on the validation split.
fn score(
    trainer: &mut SupernetTrainer,
    arch: &nas_core::space::Architecture,
) -> Result<nas_core::evaluate::Metrics> {
    let acc = trainer
        .evaluate_arch(arch, RECALIBRATE)
        .map_err(|e| anyhow!(e))?;
    let mut m = trainer.metrics(arch).map_err(|e| anyhow!(e))?;
    m.accuracy = acc as f64;
    m.extra.insert(
        "scored_by".into(),
        "supernet weights on the validation split".into(),
    );
    Ok(m)
}

/// The mean mixing weights of a progress report by choice, `{label: [weights]}`, to four
/// decimals (the report plots them); `None` when no training step came before it.
fn mix_by_choice(
    info: &nas_strategies::oneshot::OneShotInfo,
    mix: &[f32],
) -> Option<serde_json::Value> {
    if mix.is_empty() || mix.len() != info.len() {
        return None;
    }
    let by_choice = info
        .groups
        .iter()
        .zip(info.ranges())
        .map(|(g, r)| {
            let ws: Vec<f64> = mix[r]
                .iter()
                .map(|&w| (w as f64 * 1e4).round() / 1e4)
                .collect();
            (g.label.clone(), ws.into())
        })
        .collect::<serde_json::Map<_, _>>();
    Some(by_choice.into())
}

/// A run whose export is journaled: it writes what a finished run holds and the kill
/// may have left out (`best.json`), and nothing else.
fn finish(a: &SearchArgs, run: &RunDir, choices: &[Choice], r: &TrialRecord) -> Result<()> {
    arch::validate(choices, &r.arch).map_err(|e| {
        anyhow!(
            "{}: trial {}: its architecture does not fit the space {}: {e}",
            run.journal_path().display(),
            r.trial,
            a.space.display()
        )
    })?;
    println!(
        "this one-shot search already finished: {}",
        serde_json::to_string(&r.arch)?
    );
    if !run.best_path().exists() {
        let final_accuracy = nb201_table(a)?.and_then(|t| t.final_accuracy(&r.arch));
        write_best(run, r, final_accuracy)?;
        println!(
            "wrote {}, which the run stopped before writing",
            run.best_path().display()
        );
    }
    Ok(())
}

/// The NAS-Bench-201 table a search on the built-in nb201 space is looked up in, when
/// it is there.
fn nb201_table(a: &SearchArgs) -> Result<Option<Nb201Table>> {
    if a.space.space != "nb201" || a.space.space_file.is_some() {
        return Ok(None);
    }
    let Ok(path) = a.table_path() else {
        return Ok(None);
    };
    Nb201Table::load(&path)
        .map(Some)
        .map_err(|e| anyhow!("--table: {e}"))
}

/// Writes the run's `best.json`: its one trial, the export.
fn write_best(run: &RunDir, r: &TrialRecord, final_accuracy: Option<f64>) -> Result<()> {
    let best = serde_json::json!({
        "trial": r.trial,
        "arch": r.arch,
        "metrics": r.metrics,
        "final_accuracy": final_accuracy,
    });
    write_atomic(&run.best_path(), &serde_json::to_vec_pretty(&best)?).map_err(|e| anyhow!(e))
}
