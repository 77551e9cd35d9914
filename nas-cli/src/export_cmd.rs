//! `nas export`: a finished run's best architecture, or its Pareto set.

use crate::search_args::SearchArgs;
use crate::search_args::{
    best_of, cost_of, load_run, load_train_data, run_cost, run_limits, TrainData,
};
use crate::trainer::{SupernetTrainer, TrainerConfig};
use anyhow::{anyhow, bail, Result};
use clap::Args;
use nas_core::data::Dataset;
use nas_core::experiment::{candidates, pareto, write_output, Candidate, RunDir};
use nas_core::nn::{with_bn_momentum, Module};
use nas_core::space::Space;
use nas_core::{no_grad, Tensor};
use std::path::PathBuf;

/// Batches of training images that recalibrate batch norm before `--onnx` exports an
/// architecture with the supernet's weights (as many as the search scored it after).
pub const RECALIBRATE: usize = 20;

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
    // --onnx: the best architecture with the weights it inherits from the supernet
    // (one-shot runs keep them), batch norm recalibrated first.
    #[command(flatten)]
    pub onnx: crate::onnx_out::OnnxArgs,
}

pub fn export(a: ExportArgs) -> Result<()> {
    let (run, args, j) = load_run(&a.dir)?;
    let record = run.path.join("oneshot.json");
    if a.onnx.onnx.is_some() && !record.exists() {
        let weights = std::fs::read_dir(&run.path).is_ok_and(|d| {
            d.filter_map(|e| e.ok()).any(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.starts_with("supernet") && n.ends_with(".safetensors")
            })
        });
        if weights {
            bail!(
                "--onnx: {} is missing: it names the supernet checkpoint the search ended \
                 with, so the weights files beside it cannot be told apart; `nas retrain \
                 {} --onnx PATH` trains the best architecture and exports that",
                record.display(),
                run.path.display()
            );
        }
        bail!(
            "--onnx: {} has no supernet weights (one-shot searches keep them); `nas retrain \
             {} --onnx PATH` trains its best architecture and exports that",
            run.path.display(),
            run.path.display()
        );
    }
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| run.path.join("export.json"));
    a.onnx.check_outputs(
        &[("--out", Some(&out))],
        &[("--space-file", args.space.space_file.as_deref())],
    )?;
    if a.pareto.as_deref() == Some("accuracy") {
        bail!(
            "--pareto accuracy: accuracy is what the set trades against a cost; name the \
             cost (params, macs, latency_ms)"
        );
    }
    let cost = a.pareto.clone().or_else(|| run_cost(&args));
    let limits = run_limits(&args)?;
    // Errors when no trial is within the limits.
    let b = best_of(&j, &limits)?;
    let v = match &cost {
        Some(c) => {
            let cands = candidates(&j, &limits);
            let front = pareto(&cands, cost_of(c));
            if front.is_empty() {
                // The costs the trials do report, to pick from.
                let mut have: Vec<String> = nas_types::COSTS
                    .iter()
                    .filter(|n| cands.iter().any(|x| x.metrics.cost(n).is_some()))
                    .map(|n| n.to_string())
                    .collect();
                for x in &cands {
                    for (k, v) in &x.metrics.extra {
                        if v.is_number() && !have.contains(k) {
                            have.push(k.clone());
                        }
                    }
                }
                let have = match have.is_empty() {
                    true => "none is reported".to_string(),
                    false => format!("the trials report {}", have.join(", ")),
                };
                let asked = match &a.pareto {
                    Some(_) => format!("--pareto {c}"),
                    None => format!("the run's objective `{c}` (in its --config)"),
                };
                bail!("{asked}: no trial reports that cost ({have})");
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
    if a.onnx.onnx.is_some() {
        inherited_onnx(&a, &run, &args, &b)?;
    }
    Ok(())
}

/// `--onnx`: the fixed network of `arch` with the weights of the run's last supernet
/// checkpoint, its batch norm recalibrated on training images (the supernet's running
/// statistics are those of every path mixed), written as ONNX.
pub fn inherited_onnx(
    a: &ExportArgs,
    run: &RunDir,
    args: &SearchArgs,
    b: &Candidate,
) -> Result<()> {
    let arch = &b.arch;
    let data = load_train_data(args)?;
    let space = args.space.resolve_for_batch(data.input, args.batch)?;
    let mut trainer = restore_supernet(run, args, space.as_ref(), &data, "--onnx")?;
    // A SMASH run's candidates hold what its HyperNet generates for this architecture.
    trainer
        .prepare_weights(arch)
        .map_err(|e| anyhow!("--onnx: {e}"))?;
    let derived = trainer
        .supernet
        .derive_noting(space.as_ref(), arch)
        .map_err(|e| anyhow!("--onnx: the best architecture: {e}"))?;
    let net = derived.net;
    let batches = recalibrate(net.as_ref(), &data.train, args.batch);
    // The network the search scored (the same weights; batch norm recalibrated on other
    // batches, so within a little of it), unless the space's fixed network computes
    // otherwise than the supernet's path, which is said.
    let mut differs = derived.notes;
    if !derived.untrained.is_empty() {
        differs.push(format!(
            "{} of its tensors have no counterpart in the supernet and keep their initial \
             values",
            derived.untrained.len()
        ));
    }
    if !differs.is_empty() {
        tracing::warn!(
            "--onnx: the fixed network of the best architecture computes otherwise than \
             the supernet's path the search scored: {}; its accuracy below is its own",
            differs.join("; ")
        );
    }
    let (_, acc) = nas_core::train::evaluate(net.as_ref(), &data.val, 256);
    println!(
        "with the supernet's weights, batch norm recalibrated on {batches} training \
         batches: {:.2}% on the validation split (the search scored it {:.2}%)",
        acc * 100.0,
        b.metrics.accuracy * 100.0
    );
    // The statistics the search normalised its images with (those of its training set).
    let (mean, std) = args.dataset.load(args.seed)?.splits.train.channel_stats();
    let about = [
        ("architecture", serde_json::to_string(arch)?),
        ("space", args.space.display()),
        (
            "weights",
            "inherited from the one-shot supernet, batch norm recalibrated".to_string(),
        ),
    ];
    a.onnx.write(net.as_ref(), &data.val, (&mean, &std), &about)
}

/// The supernet of a one-shot run as its last checkpoint left it; `what` names the
/// command in the error when the run has no checkpoint.
pub fn restore_supernet<'a>(
    run: &RunDir,
    args: &SearchArgs,
    space: &'a dyn Space,
    data: &'a TrainData,
    what: &str,
) -> Result<SupernetTrainer<'a>> {
    let cfg = TrainerConfig {
        epochs: args.epochs,
        batch_size: args.batch,
        seed: args.seed,
        ..TrainerConfig::default()
    };
    let mut trainer =
        SupernetTrainer::new(space, &data.train, &data.val, cfg).map_err(|e| anyhow!(e))?;
    trainer.checkpoint_dir = Some(run.path.clone());
    if trainer.load_checkpoint().map_err(|e| anyhow!(e))?.is_none() {
        bail!("{what}: {} has no supernet checkpoint", run.path.display());
    }
    Ok(trainer)
}

/// Batch norm's running statistics set to the plain average of those of the first
/// batches of `images`; returns how many batches that was.
pub fn recalibrate(net: &dyn Module, images: &Dataset, batch: usize) -> usize {
    let batch = batch.max(1);
    let batches = RECALIBRATE.min(images.n / batch).max(1);
    net.set_training(true);
    no_grad(|| {
        for k in 0..batches {
            let n = batch.min(images.n - k * batch);
            let at = k * batch * images.image_len();
            let x = Tensor::from_vec(
                images.images[at..at + n * images.image_len()].to_vec(),
                &[n, images.c, images.h, images.w],
            );
            with_bn_momentum(1.0 / (k + 1) as f32, || drop(net.forward(&x)));
        }
    });
    net.set_training(false);
    batches
}
