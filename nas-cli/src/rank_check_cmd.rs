//! `nas rank-check`: how well a one-shot run's supernet ranks architectures, judged
//! against a ground truth of the same architectures trained from scratch (the bundled
//! table: a sample of NAS-Bench-201 cells trained as C=8, N=1 networks on Fashion-MNIST,
//! made by `scripts/make_ground_truth.sh`). It prints Kendall's tau and Spearman's rho
//! between the supernet's score of each architecture and its trained accuracy, and the
//! regret of the supernet's pick and of the run's export.

use crate::data_paths::{resolve, Bundled};
use crate::export_cmd::restore_supernet;
use crate::search_args::{best_of, load_run, load_train_data, run_limits, SearchArgs};
use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use nas_core::experiment::write_atomic;
use nas_core::space::builtin::nb201;
use nas_core::space::Architecture;
use nas_predict::rank::{kendall_tau, spearman};
use nas_strategies::oneshot::{Subset, SupernetHost};
use nas_strategies::{decisions, Rng};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub struct RankCheckArgs {
    /// The run directory of a one-shot search of the `nb201` space.
    pub dir: PathBuf,
    /// The ground-truth table (CSV: arch_str, seed, test_accuracy, ...); default the
    /// bundled `ground-truth/nb201-c8n1-fashion.csv`.
    #[arg(long, value_name = "PATH")]
    pub truth: Option<PathBuf>,
    /// Validation batches each architecture is scored on (the same images for all;
    /// fewer make the scores noisier: at 5 a score's standard error is about 2 points).
    #[arg(long, default_value_t = 30)]
    pub batches: usize,
    /// Training batches batch norm is recalibrated on before each architecture's score
    /// (0: each validation batch's own statistics).
    #[arg(long, default_value_t = 20)]
    pub recalibrate: usize,
    /// Train the run's export as the table's architectures were (its protocol file
    /// says how), when the table lacks it, so its regret can be given.
    #[arg(long)]
    pub train_export: bool,
}

/// How the table's architectures were trained: the JSON file beside the CSV.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Protocol {
    pub space: String,
    pub channels: usize,
    pub cells: usize,
    pub epochs: usize,
    /// Training images (the first N of the training set).
    pub limit: usize,
    pub seeds: Vec<u64>,
    /// Anything else worth knowing (how it was made, how long it took).
    #[serde(default)]
    pub about: BTreeMap<String, serde_json::Value>,
}

/// One architecture of the table: its trained accuracies, one per seed.
#[derive(Clone, Debug)]
pub struct TruthRow {
    pub arch_str: String,
    pub arch: Architecture,
    pub accuracies: Vec<f64>,
    /// Its parameter count, when the table has a `params` column.
    pub params: Option<f64>,
}

impl TruthRow {
    pub fn mean(&self) -> f64 {
        self.accuracies.iter().sum::<f64>() / self.accuracies.len() as f64
    }
}

/// The table's rows, one per architecture in order of first appearance. An error names
/// the file, the line, the field and the value.
pub fn parse_truth(path: &Path, text: &str) -> Result<Vec<TruthRow>> {
    let at = |line: usize| format!("{} line {line}", path.display());
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    let Some((_, header)) = lines.next() else {
        bail!("{}: empty (expected a CSV header)", path.display());
    };
    let cols: Vec<&str> = header.split(',').map(str::trim).collect();
    let col = |name: &str| {
        cols.iter().position(|c| *c == name).ok_or_else(|| {
            anyhow!(
                "{}: the header has no `{name}` column (it has: {})",
                at(1),
                cols.join(", ")
            )
        })
    };
    let (ia, iacc) = (col("arch_str")?, col("test_accuracy")?);
    let iparams = cols.iter().position(|c| *c == "params");
    let mut rows: Vec<TruthRow> = vec![];
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    for (n, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        if f.len() != cols.len() {
            bail!(
                "{}: {} fields, the header has {}",
                at(n),
                f.len(),
                cols.len()
            );
        }
        let arch = nb201::parse_arch_str(f[ia]).map_err(|e| anyhow!("{}: arch_str: {e}", at(n)))?;
        let acc: f64 = f[iacc]
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite() && (0.0..=100.0).contains(v))
            .ok_or_else(|| {
                anyhow!(
                    "{}: test_accuracy `{}` is not a percentage between 0 and 100",
                    at(n),
                    f[iacc]
                )
            })?;
        let params = match iparams {
            Some(i) => Some(
                f[i].parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite() && *v >= 0.0)
                    .ok_or_else(|| {
                        anyhow!("{}: params `{}` is not a parameter count", at(n), f[i])
                    })?,
            ),
            None => None,
        };
        // One key per cell whatever the spelling: the canonical string.
        let key = nb201::arch_str(&arch);
        match index.get(&key) {
            Some(&i) => rows[i].accuracies.push(acc),
            None => {
                index.insert(key.clone(), rows.len());
                rows.push(TruthRow {
                    arch_str: key,
                    arch,
                    accuracies: vec![acc],
                    params,
                });
            }
        }
    }
    if rows.len() < 2 {
        bail!(
            "{}: {} architecture(s); ranking needs at least 2",
            path.display(),
            rows.len()
        );
    }
    Ok(rows)
}

/// The protocol file of a table: `X.json` beside `X.csv`, if there is one.
pub fn load_protocol(truth: &Path) -> Result<Option<Protocol>> {
    let p = truth.with_extension("json");
    if !p.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&p).with_context(|| p.display().to_string())?;
    serde_json::from_str(&text)
        .map(Some)
        .with_context(|| format!("{}: not a ground-truth protocol", p.display()))
}

/// The standard deviation of Kendall's tau between `n` scores and an unrelated ranking
/// (no ties): what a random scorer's tau spreads by around 0.
pub fn random_tau_std(n: usize) -> f64 {
    let n = n as f64;
    (2.0 * (2.0 * n + 5.0) / (9.0 * n * (n - 1.0))).sqrt()
}

/// The export trained as the table's cells were: its accuracy per seed (percent).
pub fn train_as_table(p: &Protocol, arch: &Architecture) -> Result<Vec<f64>> {
    let mut out = vec![];
    for seed in &p.seeds {
        let argv: Vec<String> = [
            "train",
            "--space",
            &p.space,
            "--channels",
            &p.channels.to_string(),
            "--cells",
            &p.cells.to_string(),
            "--epochs",
            &p.epochs.to_string(),
            "--limit",
            &p.limit.to_string(),
            "--seed",
            &seed.to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let t = crate::train_cmd::parse(argv)?;
        let done = crate::train_cmd::run_with(t, Some((arch.clone(), "the export".into())))?;
        out.push(done.test_accuracy as f64 * 100.0);
    }
    Ok(out)
}

/// The figures `rank-check` prints and keeps in `rank-check.json`.
#[derive(Serialize)]
pub struct Report {
    truth: PathBuf,
    architectures: usize,
    batches: usize,
    recalibrate: usize,
    kendall_tau: f64,
    spearman_rho: f64,
    random_tau_std: f64,
    params_tau: Option<f64>,
    top1: String,
    top1_accuracy: f64,
    best_accuracy: f64,
    top1_regret: f64,
    export: String,
    export_accuracy: Option<f64>,
    export_regret: Option<f64>,
    /// Each architecture: its cell, the supernet's score (percent), its trained mean.
    scores: Vec<(String, f64, f64)>,
}

/// The generator of the random paths whose ensemble is the target when a
/// self-supervised run is scored.
pub const SSL_ENSEMBLE_SEED: u64 = 0xB055_7A5;

pub fn rank_check(a: RankCheckArgs) -> Result<()> {
    let (run, args, j) = load_run(&a.dir)?;
    if !run.path.join("oneshot.json").exists() {
        bail!(
            "{}: not a one-shot run (no supernet checkpoint, oneshot.json): rank-check \
             judges how a supernet ranks architectures",
            run.path.display()
        );
    }
    check_space(&args, &run.path)?;
    let truth_path = resolve(a.truth.as_deref(), Bundled::GroundTruth, "--truth")?;
    let text = std::fs::read_to_string(&truth_path)
        .with_context(|| format!("--truth {}", truth_path.display()))?;
    let rows = parse_truth(&truth_path, &text)?;
    let protocol = load_protocol(&truth_path)?;
    if let Some(p) = &protocol {
        let (c, n) = (args.space.channels, args.space.cells);
        if c != Some(p.channels) || n != Some(p.cells) {
            println!(
                "note: the table's cells were trained as C={}, N={} networks; the run's \
                 supernet is C={}, N={}",
                p.channels,
                p.cells,
                c.map_or("16 (default)".into(), |c| c.to_string()),
                n.map_or("5 (default)".into(), |n| n.to_string()),
            );
        }
    }
    let data = load_train_data(&args)?;
    let space = args.space.resolve_for_batch(data.input, args.batch)?;
    let mut trainer = restore_supernet(&run, &args, space.as_ref(), &data, "rank-check")?;
    let info = trainer.info().clone();
    if a.batches == 0 || a.batches > info.val_batches {
        bail!(
            "--batches {}: must be between 1 and the validation split's {} batches of {}",
            a.batches,
            info.val_batches,
            args.batch
        );
    }
    if a.recalibrate > info.batches_per_epoch {
        bail!(
            "--recalibrate {}: the training split holds {} batches of {}",
            a.recalibrate,
            info.batches_per_epoch,
            args.batch
        );
    }
    println!(
        "scoring {} architectures of {} with the supernet of {}: {} validation batches of \
         {} each (the same images for all), batch norm recalibrated on {} training batches",
        rows.len(),
        truth_path.display(),
        run.path.display(),
        a.batches,
        args.batch,
        a.recalibrate
    );
    let bar = indicatif::ProgressBar::new(rows.len() as u64);
    let mut scores = Vec::with_capacity(rows.len());
    let mixes = rows
        .iter()
        .map(|r| {
            info.one_hot_arch(&r.arch)
                .map_err(|e| anyhow!("{}: {e}", r.arch_str))
        })
        .collect::<Result<Vec<_>>>()?;
    let unit = match trainer.ssl_spec().cloned() {
        // A self-supervised run (BossNAS) scores as its search does, with no label.
        Some(spec) => {
            let tap = spec.taps.last().expect("a spec has a tap").clone();
            let mut rng = Rng::new(SSL_ENSEMBLE_SEED);
            let ensemble: Vec<Vec<f32>> = (0..spec.ensemble)
                .map(|_| info.one_hot(&decisions::random(&info.choices, &mut rng)))
                .collect();
            println!(
                "a self-supervised run: each score is minus the loss at `{tap}` against \
                 the ensemble target of {} random paths (no label read)",
                spec.ensemble
            );
            for chunk in mixes.chunks(16) {
                let s = trainer
                    .ssl_score(chunk, &ensemble, &tap, a.batches, a.recalibrate)
                    .map_err(|e| anyhow!(e))?;
                scores.extend(s.into_iter().map(|v| v as f64));
                bar.inc(chunk.len() as u64);
            }
            ""
        }
        None => {
            for mix in &mixes {
                let s = trainer
                    .evaluate(mix, a.batches, a.recalibrate, Subset::Fixed)
                    .map_err(|e| anyhow!(e))?;
                scores.push(s as f64 * 100.0);
                bar.inc(1);
            }
            "%"
        }
    };
    bar.finish_and_clear();
    let truth: Vec<f64> = rows.iter().map(TruthRow::mean).collect();
    let tau = kendall_tau(&scores, &truth);
    let rho = spearman(&scores, &truth);
    let spread = random_tau_std(rows.len());
    let best = truth.iter().cloned().fold(f64::MIN, f64::max);
    // The supernet's pick among the table's architectures (the first of equal scores).
    let top = (0..rows.len()).fold(0, |b, i| if scores[i] > scores[b] { i } else { b });
    println!("Kendall tau   {tau:.3}   (a random scorer: 0 \u{b1} {spread:.3})");
    println!("Spearman rho  {rho:.3}");
    // A scorer that needs no training: more parameters ranks higher.
    let by_params = rows
        .iter()
        .map(|r| r.params)
        .collect::<Option<Vec<f64>>>()
        .map(|p| kendall_tau(&p, &truth));
    if let Some(t) = by_params {
        println!("Kendall tau of a scorer by parameter count: {t:.3}");
    }
    println!(
        "the supernet's pick of the table: {} (score {:.2}{unit}), trained {:.2}%; the \
         table's best {:.2}%: regret {:.2} points",
        rows[top].arch_str,
        scores[top],
        truth[top],
        best,
        best - truth[top]
    );
    let export = best_of(&j, &run_limits(&args)?)?;
    let export_str = nb201::arch_str(&export.arch);
    let mut export_accuracy = rows
        .iter()
        .position(|r| r.arch_str == export_str)
        .map(|i| truth[i]);
    if export_accuracy.is_none() && a.train_export {
        let p = protocol.as_ref().ok_or_else(|| {
            anyhow!(
                "--train-export: {} has no protocol file ({}) saying how its \
                 architectures were trained",
                truth_path.display(),
                truth_path.with_extension("json").display()
            )
        })?;
        println!("training the export {export_str} as the table's cells were");
        let accs = train_as_table(p, &export.arch)?;
        export_accuracy = Some(accs.iter().sum::<f64>() / accs.len() as f64);
    }
    match export_accuracy {
        Some(acc) => println!(
            "the run's export {export_str}: trained {acc:.2}%: regret {:.2} points",
            best - acc
        ),
        None => println!(
            "the run's export {export_str} is not in the table (--train-export trains it \
             as the table's cells were, to give its regret)"
        ),
    }
    let report = Report {
        truth: truth_path,
        architectures: rows.len(),
        batches: a.batches,
        recalibrate: a.recalibrate,
        kendall_tau: tau,
        spearman_rho: rho,
        random_tau_std: spread,
        params_tau: by_params,
        top1: rows[top].arch_str.clone(),
        top1_accuracy: truth[top],
        best_accuracy: best,
        top1_regret: best - truth[top],
        export: export_str,
        export_accuracy,
        export_regret: export_accuracy.map(|acc| best - acc),
        scores: rows
            .iter()
            .zip(&scores)
            .zip(&truth)
            .map(|((r, s), t)| (r.arch_str.clone(), *s, *t))
            .collect(),
    };
    let p = run.path.join("rank-check.json");
    match write_atomic(&p, &serde_json::to_vec_pretty(&report)?) {
        Ok(()) => println!("wrote {}", p.display()),
        Err(e) => tracing::warn!("the figures are not kept in the run: {e}"),
    }
    Ok(())
}

/// The table holds NAS-Bench-201 cells: the run must have searched that space.
pub fn check_space(args: &SearchArgs, dir: &Path) -> Result<()> {
    if args.space.space_file.is_some() || args.space.space != "nb201" {
        bail!(
            "{}: searched {}; the ground-truth table holds NAS-Bench-201 cells, so \
             rank-check needs a one-shot run of --space nb201",
            dir.display(),
            args.space.display()
        );
    }
    Ok(())
}
