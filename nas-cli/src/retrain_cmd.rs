//! `nas retrain`: train a run's best architecture from scratch and report its test
//! accuracy.

use crate::search_args::{best_of, load_run, run_limits};
use anyhow::Result;
use clap::{Args, Parser};
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct RetrainArgs {
    pub dir: PathBuf,
    #[arg(long, default_value_t = 5)]
    pub epochs: usize,
    /// Dataset to retrain and test on (default: the run's).
    #[arg(long)]
    pub data: Option<PathBuf>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Backend to retrain on (default: the run's).
    #[arg(long)]
    pub device: Option<String>,
}

#[derive(Parser)]
struct TrainOnly {
    #[command(flatten)]
    t: crate::train_cmd::TrainArgs,
}

pub fn retrain(a: RetrainArgs) -> Result<()> {
    let (run, args, j) = load_run(&a.dir)?;
    let b = best_of(&j, &run_limits(&args)?)?;
    println!(
        "retraining trial {} of {} from scratch",
        b.trials[0],
        run.path.display()
    );
    let data = a.data.clone().unwrap_or(args.data.clone());
    // The architecture goes to the trainer in process: a run directory is only read, so
    // a read-only one retrains too.
    let mut argv: Vec<String> = vec!["train".into()];
    argv.extend(["--data".into(), data.display().to_string()]);
    argv.extend([
        "--device".into(),
        a.device.clone().unwrap_or(args.device.clone()),
        "--epochs".into(),
        a.epochs.to_string(),
        "--seed".into(),
        a.seed.to_string(),
    ]);
    match &args.space.space_file {
        Some(f) => argv.extend(["--space-file".into(), f.display().to_string()]),
        None => argv.extend(["--space".into(), args.space.space.clone()]),
    }
    if let Some(c) = args.space.channels {
        argv.extend(["--channels".into(), c.to_string()]);
    }
    if let Some(c) = args.space.cells {
        argv.extend(["--cells".into(), c.to_string()]);
    }
    let t = TrainOnly::try_parse_from(argv)?;
    let what = format!("trial {} of {}", b.trials[0], run.path.display());
    crate::train_cmd::run_with(t.t, Some((b.arch.clone(), what)))
}
