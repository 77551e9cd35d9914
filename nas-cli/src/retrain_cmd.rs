//! `nas retrain`: train a run's best architecture from scratch, report its test
//! accuracy, and record the result in the run (`retrain.json`) when the run can be
//! written.

use crate::data_args::DataArgs;
use crate::data_paths::absolute;
use crate::search_args::{best_of, load_run, run_limits};
use anyhow::{Context, Result};
use clap::Args;
use nas_core::experiment::write_atomic;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args, Debug)]
pub struct RetrainArgs {
    /// The run directory (as `nas search --out` made it).
    pub dir: PathBuf,
    /// Passes over the training images.
    #[arg(long, default_value_t = 5)]
    pub epochs: usize,
    /// Data to retrain and test on: each option defaults to the run's (a source given,
    /// --data or files, replaces the run's with its --test-split).
    #[command(flatten)]
    pub dataset: DataArgs,
    /// Random seed of the retraining: the initial weights and the data order.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Backend to retrain on (default: the run's).
    #[arg(long)]
    pub device: Option<String>,
    /// Save the trained weights (safetensors).
    #[arg(long, value_name = "PATH")]
    pub save: Option<PathBuf>,
    #[command(flatten)]
    pub onnx: crate::onnx_out::OnnxArgs,
    /// Train on only the first N training images (quick runs; the test set is whole).
    #[arg(long, value_parser = crate::data_args::parse_limit)]
    pub limit: Option<usize>,
    /// Channels of the first stage to retrain with (default: the run's; nb201 and darts).
    #[arg(long)]
    pub channels: Option<usize>,
    /// Cells to retrain with (default: the run's; nb201: per stage, darts: in all).
    #[arg(long)]
    pub cells: Option<usize>,
}

pub fn retrain(a: RetrainArgs) -> Result<()> {
    let _span = tracing::info_span!("retrain", run = %a.dir.display()).entered();
    let started = Instant::now();
    let (run, args, j) = load_run(&a.dir)?;
    crate::search_args::check_setup(&run, &args)?;
    let b = best_of(&j, &run_limits(&args)?)?;
    println!(
        "retraining trial {} of {} from scratch",
        b.trials[0],
        run.path.display()
    );
    // The data: the run's options, but for those given. The test hold-out of the run's
    // files is drawn with the seed the search recorded (the search's --seed), so the
    // retraining tests on the images the search never saw.
    let options = a.dataset.over(&args.dataset);
    let source = options.resolved(a.seed).with_context(|| {
        if a.dataset.names_source() {
            "the data given".to_string()
        } else {
            format!(
                "the run's data (config.json in {}; --data or --train-images sets another)",
                run.path.display()
            )
        }
    })?;
    let data = source.describe();
    // What the search scored its architectures on, beside what they retrain on.
    let one_shot = j.iter().any(|r| r.metrics.extra.contains_key("scored_by"));
    let scored_by = if !one_shot && args.uses_table().unwrap_or(false) {
        println!(
            "note: the search scored architectures by the NAS-Bench-201 table, which is \
             CIFAR-10 (validation accuracy); retraining runs on the data given, {}, so its \
             accuracy is not the table's (--data DIR with CIFAR-10 binary batches retrains \
             on CIFAR-10)",
            data
        );
        "the NAS-Bench-201 table (CIFAR-10 validation accuracy)".to_string()
    } else {
        let searched = args.dataset.resolved(args.seed).ok().map(|s| s.describe());
        if searched.as_ref().is_some_and(|s| *s != data) {
            println!(
                "note: the search scored architectures on {}; retraining runs on {data}",
                searched.as_ref().unwrap(),
            );
        }
        searched.unwrap_or_else(|| "its data".into())
    };
    let device = a.device.clone().unwrap_or(args.device.clone());
    // The architecture goes to the trainer in process: a run directory is only read (but
    // for the result, written when it can be), so a read-only one retrains too.
    let mut argv: Vec<String> = vec!["train".into()];
    argv.extend(source.argv());
    argv.extend([
        "--device".into(),
        device.clone(),
        "--epochs".into(),
        a.epochs.to_string(),
        "--seed".into(),
        a.seed.to_string(),
    ]);
    match &args.space.space_file {
        Some(f) => argv.extend(["--space-file".into(), f.display().to_string()]),
        None => argv.extend(["--space".into(), args.space.space.clone()]),
    }
    let channels = a.channels.or(args.space.channels);
    let cells = a.cells.or(args.space.cells);
    if let Some(c) = channels {
        argv.extend(["--channels".into(), c.to_string()]);
    }
    if let Some(c) = cells {
        argv.extend(["--cells".into(), c.to_string()]);
    }
    if let Some(n) = a.limit {
        argv.extend(["--limit".into(), n.to_string()]);
    }
    if let Some(p) = &a.save {
        argv.extend(["--save".into(), p.display().to_string()]);
    }
    argv.extend(a.onnx.argv());
    let t = crate::train_cmd::parse(argv)?;
    let what = format!("trial {} of {}", b.trials[0], run.path.display());
    let done = crate::train_cmd::run_with(t, Some((b.arch.clone(), what)))?;
    let mut result = serde_json::json!({
        "run": absolute(&run.path),
        "trial": b.trials[0],
        "arch": b.arch,
        "space": args.space.display(),
        "channels": channels,
        "cells": cells,
        "search_accuracy": b.metrics.accuracy,
        "scored_by": scored_by,
        "epochs": a.epochs,
        "seed": a.seed,
        "limit": a.limit,
        "device": device,
        "dataset": done.dataset,
        "params": done.params,
        "test_loss": done.test_loss,
        "test_accuracy": done.test_accuracy,
        "seconds": started.elapsed().as_secs_f64(),
        "weights": a.save.as_deref().map(absolute),
    });
    // The data options it ran with: `data` (the directory) or the IDX files, `classes`,
    // `test_split` and `split_seed`.
    if let (Some(r), serde_json::Value::Object(d)) =
        (result.as_object_mut(), serde_json::to_value(&done.source)?)
    {
        r.extend(d);
    }
    // The result is worth keeping, but a run that cannot be written (a read-only copy)
    // still retrains: the accuracy printed above is the answer.
    let p = run.path.join("retrain.json");
    match write_atomic(&p, &serde_json::to_vec_pretty(&result)?) {
        Ok(()) => println!("wrote {}", p.display()),
        Err(e) => tracing::warn!("the result is not recorded in the run: {e}"),
    }
    Ok(())
}
