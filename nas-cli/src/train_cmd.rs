//! `nas train`: train the seed network on an IDX or CIFAR-10 directory, or on IDX files.

use crate::data_args::DataArgs;
use anyhow::{bail, Context, Result};
use clap::{Args, Parser};
use indicatif::{ProgressBar, ProgressStyle};
use nas_core::data::Augment;
use nas_core::nn::num_parameters;
use nas_core::optim::LrSchedule;
use nas_core::space::{self, builtin, Architecture};
use nas_core::train::{evaluate, sgd_for, train_epoch, TrainConfig};
use nas_core::Rng;
use std::path::Path;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Backend: cpu, wgpu (the first Vulkan adapter) or cuda[:N] (NVIDIA GPU N). On a
    /// device the network, its gradients and the optimiser's state live in its memory;
    /// each batch goes up once and the loss comes back once per step.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    #[command(flatten)]
    pub dataset: DataArgs,
    /// Passes over the training images.
    #[arg(long, default_value_t = 5)]
    pub epochs: usize,
    /// Images per training step (`--batch` too, as `nas search` calls it).
    #[arg(long, visible_alias = "batch", default_value_t = 64)]
    pub batch_size: usize,
    /// SGD's learning rate (where the schedule starts; above 0, at most 10).
    #[arg(long, default_value_t = 0.05, value_parser = parse_lr)]
    pub lr: f32,
    /// SGD's momentum (in [0, 1)).
    #[arg(long, default_value_t = 0.9, value_parser = parse_momentum)]
    pub momentum: f32,
    /// SGD's weight decay (L2; 0 to 1).
    #[arg(long, default_value_t = 5e-4, value_parser = parse_weight_decay)]
    pub weight_decay: f32,
    /// Nesterov momentum instead of the classical one.
    #[arg(long)]
    pub nesterov: bool,
    /// Learning-rate schedule: cosine (annealed to 0 over the run, per batch), constant,
    /// or step (x0.1 every third epoch).
    #[arg(long, default_value = "cosine")]
    pub schedule: String,
    #[command(flatten)]
    pub space: crate::space_args::SpaceArgs,
    /// Architecture to train: a `{label: choice}` JSON file (a run's best.json too), or
    /// `random` (drawn with --seed). Default for seed-net: conv1 3x3, conv2 5x5, skip =
    /// x1 + x0.
    #[arg(long)]
    pub arch: Option<String>,
    /// Hold out this many training images for validation each epoch (0 = none).
    #[arg(long, default_value_t = 0)]
    pub val: usize,
    /// Train on only the first N training images (quick runs).
    #[arg(long, value_parser = crate::data_args::parse_limit)]
    pub limit: Option<usize>,
    /// Random seed: the initial weights, the data order and `--arch random`.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Also report test accuracy after every epoch (not only at the end).
    #[arg(long)]
    pub test_every_epoch: bool,
    /// Save the trained weights (safetensors).
    #[arg(long)]
    pub save: Option<PathBuf>,
    #[command(flatten)]
    pub onnx: crate::onnx_out::OnnxArgs,
}

#[derive(Parser)]
struct TrainOnly {
    #[command(flatten)]
    t: TrainArgs,
}

/// `nas train`'s options from an argument list (`argv[0]` is the program name), for the
/// commands that train in process as `nas train` would (`retrain`, `rank-check
/// --train-export`).
pub fn parse(argv: Vec<String>) -> Result<TrainArgs> {
    Ok(TrainOnly::try_parse_from(argv)?.t)
}

pub fn run(a: TrainArgs) -> Result<()> {
    run_with(a, None).map(|_| ())
}

/// What a training run ended with.
pub struct Trained {
    /// The data options it trained and tested with, as applied (paths absolute).
    pub source: DataArgs,
    /// The dataset's name (its directory's).
    pub dataset: String,
    pub params: usize,
    pub test_loss: f32,
    pub test_accuracy: f32,
}

/// Above this many seconds of estimated training a run warns before it goes on.
const LONG_RUN_SECONDS: f64 = 300.0;

/// Training steps timed for the estimate of a run's time.
const TIMED_STEPS: usize = 10;

/// [`run`], training `given` (an architecture, and how to name it in errors) instead of
/// the one `--arch` names: `nas retrain` hands over a run's best this way, and is always
/// told the estimated time (other runs only when it is long).
pub fn run_with(a: TrainArgs, given: Option<(Architecture, String)>) -> Result<Trained> {
    let _span = tracing::info_span!("train", epochs = a.epochs).entered();
    crate::at_least_one(&[("--batch-size", a.batch_size), ("--epochs", a.epochs)])?;
    let arch_file = a.arch.as_deref().filter(|s| *s != "random").map(Path::new);
    let mut inputs = vec![
        ("--space-file", a.space.space_file.as_deref()),
        ("--arch", arch_file),
    ];
    // (`--data` names a directory, which an output is refused as.)
    inputs.extend(
        a.dataset
            .paths()
            .into_iter()
            .filter(|(f, _)| *f != "--data"),
    );
    a.onnx
        .check_outputs(&[("--save", a.save.as_ref())], &inputs)?;
    let device = crate::device::select(&a.device)?;
    let schedule = match a.schedule.as_str() {
        "constant" => LrSchedule::Constant,
        "cosine" => LrSchedule::Cosine {
            total: a.epochs as f32,
            min_lr: 0.0,
        },
        "step" => LrSchedule::Step {
            step_size: 3,
            gamma: 0.1,
        },
        s => bail!("--schedule {s}: expected constant, cosine or step"),
    };
    let loaded = a.dataset.load(a.seed)?;
    let mut rng = Rng::new(a.seed);
    let mut train = loaded.splits.train;
    let mut test = loaded.splits.test;
    if let Some(n) = a.limit {
        train = train.take(n.min(train.len()));
    }
    let (mean, std) = train.channel_stats();
    train.normalise(&mean, &std);
    test.normalise(&mean, &std);
    let val = if a.val > 0 {
        if a.val >= train.len() {
            bail!(
                "--val {} leaves no training images (have {})",
                a.val,
                train.len()
            );
        }
        let (t, v) = train.split(a.val, &mut rng);
        train = t;
        Some(v)
    } else {
        None
    };
    let augment = Augment::standard_for(train.c, train.h, train.w);
    let cfg = TrainConfig {
        epochs: a.epochs,
        batch_size: a.batch_size,
        lr: a.lr,
        momentum: a.momentum,
        nesterov: a.nesterov,
        weight_decay: a.weight_decay,
        schedule,
        grad_clip: None,
        augment,
        seed: a.seed,
    };
    let input = builtin::InputSpec {
        channels: train.c,
        height: train.h,
        width: train.w,
        classes: train.classes,
    };
    let sp = a.space.resolve_for_batch(input, a.batch_size)?;
    let arch: Architecture = match (given.as_ref(), a.arch.as_deref()) {
        (Some((arch, _)), _) => arch.clone(),
        (None, Some("random")) => space::arch::random(&space::describe(sp.as_ref()), &mut rng),
        (None, Some(path)) => space::arch::load(std::path::Path::new(path))
            .map_err(|e| anyhow::anyhow!("--arch {e}"))?,
        (None, None) if a.space.space == "seed-net" && a.space.space_file.is_none() => {
            serde_json::from_str(r#"{"conv1": "conv3x3", "conv2": "conv5x5", "skip": [1]}"#)?
        }
        (None, None) => bail!(
            "space {} needs --arch FILE (or --arch random)",
            a.space.display()
        ),
    };
    let model = space::fixed(sp.as_ref(), &arch, rng.next_u64()).map_err(|e| {
        let what = match (&given, a.arch.as_deref()) {
            (Some((_, what)), _) => what.clone(),
            (None, arch) => format!("--arch {}", arch.unwrap_or("(default)")),
        };
        anyhow::anyhow!("{what}: {e}")
    })?;
    let model = model.as_ref();
    device
        .place(model)
        .map_err(|e| anyhow::anyhow!("--device {}: {e}", a.device))?;
    let mut opt = sgd_for(model, &cfg);
    println!(
        "{} {} ({} parameters) on {} ({} train, {} test, {}x{}x{}, {} classes), {}",
        a.space.display(),
        serde_json::to_string(&arch)?,
        num_parameters(model),
        loaded.label,
        train.len(),
        test.len(),
        train.c,
        train.h,
        train.w,
        train.classes,
        crate::count(rayon::current_num_threads(), "thread")
    );
    let steps = train.len().div_ceil(cfg.batch_size);
    let timed = TIMED_STEPS.min(steps);
    let started = std::time::Instant::now();
    let mut estimated = false;
    for epoch in 0..cfg.epochs {
        let bar = ProgressBar::new(steps as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "epoch {prefix} [{bar:30}] {pos}/{len} {per_sec} loss {msg} eta {eta}",
            )
            .context("progress template")?
            .progress_chars("=> "),
        );
        bar.set_prefix(format!("{}/{}", epoch + 1, cfg.epochs));
        let stats = train_epoch(
            model,
            &mut opt,
            &train,
            &cfg,
            epoch,
            &mut rng,
            &mut |d, _, l| {
                if !estimated && (d >= timed || started.elapsed().as_secs() >= 10) {
                    // The time of the first steps (10, or those of the first 10 s),
                    // scaled to every step of the run and to its evaluations (forward
                    // only: a third of a step per batch of images).
                    estimated = true;
                    let per_step = started.elapsed().as_secs_f64() / d as f64;
                    let evals = (test.len() + val.as_ref().map_or(0, |v| v.len()) * cfg.epochs)
                        .div_ceil(cfg.batch_size) as f64
                        / 3.0;
                    let secs = per_step * ((steps * cfg.epochs) as f64 + evals);
                    let how = format!(
                        "{:.0} ms a step over the first {d}, {steps} steps an epoch, {} \
                         epoch{}, then testing",
                        per_step * 1e3,
                        cfg.epochs,
                        if cfg.epochs == 1 { "" } else { "s" }
                    );
                    bar.suspend(|| {
                        if secs > LONG_RUN_SECONDS {
                            tracing::warn!(
                                "this will take about {} ({how}); --epochs and --limit \
                                 shorten it",
                                duration(secs)
                            );
                        } else if given.is_some() {
                            println!("estimated time: about {} ({how})", duration(secs));
                        }
                    });
                }
                bar.set_position(d as u64);
                if d % 20 == 0 {
                    bar.set_message(format!("{l:.4}"));
                }
            },
        );
        bar.finish_and_clear();
        let mut line = format!(
            "epoch {}/{}  lr {:.4}  loss {:.4}  train acc {:.2}%  {:.1}s",
            epoch + 1,
            cfg.epochs,
            stats.lr,
            stats.loss,
            stats.accuracy * 100.0,
            stats.seconds
        );
        if a.test_every_epoch {
            let (_, ta) = evaluate(model, &test, 256);
            line += &format!("  test acc {:.2}%", ta * 100.0);
        }
        if let Some(v) = &val {
            let (vl, va) = evaluate(model, v, 256);
            line += &format!("  val loss {vl:.4}  val acc {:.2}%", va * 100.0);
        }
        println!("{line}");
        if !stats.loss.is_finite() {
            bail!(
                "epoch {}: the training loss is {} (training diverged): a smaller --lr \
                 (this run's {}) may train",
                epoch + 1,
                stats.loss,
                cfg.lr
            );
        }
    }
    let (tl, ta) = evaluate(model, &test, 256);
    println!("test loss {tl:.4}  test accuracy {:.2}%", ta * 100.0);
    if let Some(p) = &a.save {
        nas_core::io::save_module(p, model).with_context(|| format!("--save {}", p.display()))?;
        println!("saved weights to {}", p.display());
    }
    let about = [
        ("architecture", serde_json::to_string(&arch)?),
        ("space", a.space.display()),
        ("weights", "trained from scratch".to_string()),
    ];
    a.onnx.write(model, &test, (&mean, &std), &about)?;
    Ok(Trained {
        source: loaded.source,
        dataset: loaded.splits.name,
        params: num_parameters(model),
        test_loss: tl,
        test_accuracy: ta,
    })
}

/// Seconds as a person reads them: `40 s`, `12 min`, `2.5 h`.
fn duration(secs: f64) -> String {
    match secs {
        s if s < 90.0 => format!("{s:.0} s"),
        s if s < 5400.0 => format!("{:.0} min", s / 60.0),
        s => format!("{:.1} h", s / 3600.0),
    }
}

/// A finite number in `range` (`--lr`, `--momentum`, `--weight-decay`).
fn parse_in(s: &str, ok: impl Fn(f32) -> bool, what: &str) -> Result<f32, String> {
    match s.trim().parse::<f32>() {
        Ok(x) if x.is_finite() && ok(x) => Ok(x),
        Ok(_) => Err(format!("expected {what}")),
        Err(e) => Err(format!("expected a number ({what}): {e}")),
    }
}

fn parse_lr(s: &str) -> Result<f32, String> {
    parse_in(
        s,
        |x| x > 0.0 && x <= 10.0,
        "a learning rate above 0 and at most 10",
    )
}

fn parse_momentum(s: &str) -> Result<f32, String> {
    parse_in(s, |x| (0.0..1.0).contains(&x), "a momentum in [0, 1)")
}

fn parse_weight_decay(s: &str) -> Result<f32, String> {
    parse_in(
        s,
        |x| (0.0..=1.0).contains(&x),
        "a weight decay from 0 to 1",
    )
}
