//! Commands on plugins and finished runs: `nas plugins`, `nas export`, `nas retrain`,
//! `nas report`, and `nas bench-strategies` (every plugin on the NAS-Bench-201 table).

use crate::search_cmd::{best_of, run_limits, trial_seed, SearchArgs};
use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Parser};
use nas_core::evaluate::{Evaluator, Nb201Table};
use nas_core::experiment::{candidates, cost, pareto, write_atomic, RunDir, TrialRecord};
use nas_core::space::builtin::{self, InputSpec};
use nas_core::space::describe;
use nas_strategies::abi::ABI_VERSION;
use nas_cli::host::{discover, search_dirs};
use nas_strategies::Setup;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub struct PluginsArgs {
    #[arg(long)]
    pub plugin_dir: Vec<PathBuf>,
}

pub fn plugins(a: PluginsArgs) -> Result<()> {
    let dirs = search_dirs(&a.plugin_dir);
    let d = discover(&dirs);
    println!(
        "{:<12} {:<9} {:<9} {:<4} path",
        "name", "version", "kind", "ABI"
    );
    for p in &d.plugins {
        println!(
            "{:<12} {:<9} {:<9} {:<4} {}",
            p.name,
            p.version,
            p.kind_name(),
            ABI_VERSION,
            p.path.display()
        );
    }
    for (p, why) in &d.rejected {
        println!("rejected {}: {why}", p.display());
    }
    if d.plugins.is_empty() {
        println!(
            "no plugins found in {}; build them with `cargo build --release --workspace`",
            dirs.iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

fn load_run(dir: &Path) -> Result<(RunDir, SearchArgs, Vec<TrialRecord>)> {
    let run = RunDir::open(dir).map_err(|e| anyhow!(e))?;
    let a: SearchArgs = serde_json::from_value(run.config().map_err(|e| anyhow!(e))?)
        .with_context(|| format!("{}: config.json is not a search config", dir.display()))?;
    let j = run.journal().map_err(|e| anyhow!(e))?;
    if j.is_empty() {
        bail!("{}: the run has no finished trials yet", dir.display());
    }
    Ok((run, a, j))
}

/// The cost a multi-objective run traded accuracy against, if it had one.
fn run_cost(a: &SearchArgs) -> Option<String> {
    let cfg = a.strategy_config().ok()?;
    cfg.get("objectives")?
        .as_array()?
        .iter()
        .filter_map(|v| v.as_str())
        .find(|o| *o != "accuracy")
        .map(str::to_string)
}

fn cost_of(name: &str) -> impl Fn(&nas_core::evaluate::Metrics) -> Option<f64> + '_ {
    move |m| cost(m, name)
}

#[derive(Args, Debug)]
pub struct ExportArgs {
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
                "Pareto set of accuracy against {c}: {} architectures{}",
                front.len(),
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
                "best of {} trials: trial {} ({:.2}%{})",
                j.len(),
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
    write_atomic(&out, &serde_json::to_vec_pretty(&v)?).map_err(|e| anyhow!(e))?;
    println!("wrote {}", out.display());
    Ok(())
}

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
    let arch_file = run.path.join("best_arch.json");
    write_atomic(&arch_file, &serde_json::to_vec_pretty(&b.arch)?).map_err(|e| anyhow!(e))?;
    println!(
        "retraining trial {} of {} from scratch",
        b.trials[0],
        run.path.display()
    );
    let data = a.data.clone().unwrap_or(args.data.clone());
    let mut argv: Vec<String> = ["train", "--arch"].iter().map(|s| s.to_string()).collect();
    argv.push(arch_file.display().to_string());
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
    crate::train_cmd::run(t.t)
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    pub dir: PathBuf,
    /// Rows of the table (best trials first).
    #[arg(long, default_value_t = 10)]
    pub top: usize,
}

pub fn report(a: ReportArgs) -> Result<()> {
    let (run, args, j) = load_run(&a.dir)?;
    if j.iter().any(|r| r.metrics.extra.contains_key("scored_by")) {
        println!(
            "{}: one-shot {} on {}, {} epochs; its export, scored with the supernet's weights:",
            run.path.display(),
            args.strategy,
            args.space.display(),
            args.epochs
        );
    } else {
        println!(
            "{}: {} on {}, {} of {} trials",
            run.path.display(),
            args.strategy,
            args.space.display(),
            j.len(),
            args.budget
        );
    }
    let limits = run_limits(&args)?;
    let cands = candidates(&j, &limits);
    let left_out = j.len() - cands.iter().map(|c| c.trials.len()).sum::<usize>();
    if left_out > 0 {
        println!("{left_out} trials are over the limits ({limits}) and left out");
    }
    if cands.is_empty() {
        bail!(
            "none of the run's {} trials is within the limits ({limits})",
            j.len()
        );
    }
    let mut order: Vec<usize> = (0..cands.len()).collect();
    order.sort_by(|&x, &y| {
        cands[y]
            .metrics
            .accuracy
            .total_cmp(&cands[x].metrics.accuracy)
    });
    println!(
        "{:>6} {:>6} {:>9} {:>12} {:>12} {:>10}  architecture",
        "trial", "times", "accuracy", "params", "MMACs", "lat. ms"
    );
    let f = |v: Option<f64>, s: f64| v.map(|x| format!("{:.2}", x / s)).unwrap_or("-".into());
    for &i in order.iter().take(a.top) {
        let r = &cands[i];
        println!(
            "{:>6} {:>6} {:>8.2}% {:>12} {:>12} {:>10}  {}",
            r.trials[0],
            r.trials.len(),
            r.metrics.accuracy * 100.0,
            f(r.metrics.params, 1.0).trim_end_matches(".00"),
            f(r.metrics.macs, 1e6),
            f(r.metrics.latency_ms, 1.0),
            serde_json::to_string(&r.arch)?
        );
    }
    let mut best_so_far = vec![];
    let mut m = f64::MIN;
    for r in &j {
        if limits.feasible(&r.metrics) && r.metrics.accuracy.is_finite() {
            m = m.max(r.metrics.accuracy);
        }
        best_so_far.push(if m == f64::MIN { 0.0 } else { m * 100.0 });
    }
    let svg = line_plot(&best_so_far, "trial", "best accuracy so far (%)");
    let p = run.path.join("best_so_far.svg");
    write_atomic(&p, svg.as_bytes()).map_err(|e| anyhow!(e))?;
    println!("wrote {}", p.display());
    let cost = run_cost(&args).unwrap_or_else(|| "params".into());
    let front = pareto(&cands, cost_of(&cost));
    if !front.is_empty() {
        let pts: Vec<(f64, f64, bool)> = cands
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                cost_of(&cost)(&r.metrics)
                    .map(|c| (c, r.metrics.accuracy * 100.0, front.contains(&i)))
            })
            .collect();
        let svg = scatter_plot(&pts, &cost, "accuracy (%)");
        let p = run.path.join("pareto.svg");
        write_atomic(&p, svg.as_bytes()).map_err(|e| anyhow!(e))?;
        println!(
            "Pareto front ({} of accuracy against {cost}); wrote {}",
            front.len(),
            p.display()
        );
    }
    Ok(())
}

const W: f64 = 640.0;
const H: f64 = 400.0;
const PAD: f64 = 56.0;

fn frame(x_label: &str, y_label: &str, x: (f64, f64), y: (f64, f64)) -> String {
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    let _ = writeln!(
        s,
        "<line x1=\"{PAD}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>",
        H - PAD,
        W - PAD / 2.0,
        H - PAD
    );
    let _ = writeln!(
        s,
        "<line x1=\"{PAD}\" y1=\"{}\" x2=\"{PAD}\" y2=\"{}\" stroke=\"black\"/>",
        PAD / 2.0,
        H - PAD
    );
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{x_label}</text>",
        W / 2.0,
        H - 16.0
    );
    let _ = writeln!(s, "<text x=\"16\" y=\"{}\" transform=\"rotate(-90 16 {})\" text-anchor=\"middle\">{y_label}</text>", H / 2.0, H / 2.0);
    for (v, px) in [(x.0, PAD), (x.1, W - PAD / 2.0)] {
        let _ = writeln!(
            s,
            "<text x=\"{px}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            H - PAD + 16.0,
            fmt_num(v)
        );
    }
    for (v, py) in [(y.0, H - PAD), (y.1, PAD / 2.0)] {
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
            PAD - 4.0,
            py + 4.0,
            fmt_num(v)
        );
    }
    s
}

fn fmt_num(v: f64) -> String {
    if v.abs() >= 1e4 {
        format!("{v:.2e}")
    } else {
        format!("{v:.2}")
    }
}

fn scale(v: f64, lo: f64, hi: f64, a: f64, b: f64) -> f64 {
    if hi > lo {
        a + (v - lo) / (hi - lo) * (b - a)
    } else {
        (a + b) / 2.0
    }
}

fn line_plot(ys: &[f64], x_label: &str, y_label: &str) -> String {
    let (lo, hi) = ys
        .iter()
        .fold((f64::MAX, f64::MIN), |(l, h), v| (l.min(*v), h.max(*v)));
    let n = ys.len().max(2) as f64 - 1.0;
    let mut s = frame(x_label, y_label, (1.0, n + 1.0), (lo, hi));
    let pts: Vec<String> = ys
        .iter()
        .enumerate()
        .map(|(i, y)| {
            format!(
                "{:.1},{:.1}",
                scale(i as f64, 0.0, n, PAD, W - PAD / 2.0),
                scale(*y, lo, hi, H - PAD, PAD / 2.0)
            )
        })
        .collect();
    let _ = writeln!(
        s,
        "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2\" points=\"{}\"/>",
        pts.join(" ")
    );
    s + "</svg>\n"
}

fn scatter_plot(pts: &[(f64, f64, bool)], x_label: &str, y_label: &str) -> String {
    let (xl, xh) = pts
        .iter()
        .fold((f64::MAX, f64::MIN), |(l, h), p| (l.min(p.0), h.max(p.0)));
    let (yl, yh) = pts
        .iter()
        .fold((f64::MAX, f64::MIN), |(l, h), p| (l.min(p.1), h.max(p.1)));
    let mut s = frame(x_label, y_label, (xl, xh), (yl, yh));
    let mut front: Vec<(f64, f64)> = vec![];
    for &(x, y, on) in pts {
        let (px, py) = (
            scale(x, xl, xh, PAD, W - PAD / 2.0),
            scale(y, yl, yh, H - PAD, PAD / 2.0),
        );
        let c = if on { "#d62728" } else { "#999999" };
        let _ = writeln!(
            s,
            "<circle cx=\"{px:.1}\" cy=\"{py:.1}\" r=\"3\" fill=\"{c}\"/>"
        );
        if on {
            front.push((px, py));
        }
    }
    front.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap());
    let line: Vec<String> = front
        .iter()
        .map(|(x, y)| format!("{x:.1},{y:.1}"))
        .collect();
    let _ = writeln!(
        s,
        "<polyline fill=\"none\" stroke=\"#d62728\" points=\"{}\"/>",
        line.join(" ")
    );
    s + "</svg>\n"
}

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
    #[arg(long, default_value = "data/nasbench201/nb201_cifar10.csv")]
    pub table: PathBuf,
    #[arg(long)]
    pub plugin_dir: Vec<PathBuf>,
}

/// Every strategy on the NAS-Bench-201 table: mean and spread of the seed-mean validation
/// accuracy of the architecture each run returns (its best observed trial).
pub fn bench_strategies(a: BenchStrategiesArgs) -> Result<()> {
    let table = Nb201Table::load(&a.table).map_err(|e| anyhow!(e))?;
    let space = builtin::nb201(
        16,
        5,
        InputSpec {
            channels: 3,
            size: 32,
            classes: 10,
        },
    );
    let choices = describe(space.as_ref());
    let found = discover(&search_dirs(&a.plugin_dir));
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
        a.table.display(),
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
