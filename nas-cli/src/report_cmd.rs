//! `nas report`: a finished run's table of architectures and its plots (best accuracy
//! so far, the Pareto front), as SVG.

use crate::search_args::{cost_of, load_run, run_cost, run_limits};
use anyhow::{bail, Result};
use clap::Args;
use nas_core::experiment::{candidates, pareto, write_atomic};
use std::fmt::Write as _;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// The run directory (as `nas search --out` made it).
    pub dir: PathBuf,
    /// Rows of the table (best trials first).
    #[arg(long, default_value_t = 10)]
    pub top: usize,
}

pub fn report(a: ReportArgs) -> Result<()> {
    let (run, args, j) = load_run(&a.dir)?;
    if j.iter().any(|r| r.metrics.extra.contains_key("scored_by")) {
        println!(
            "{}: one-shot {} on {}, {}; its export, scored with the supernet's weights:",
            run.path.display(),
            args.strategy,
            args.space.display(),
            crate::count(args.epochs, "epoch")
        );
    } else {
        println!(
            "{}: {} on {}, {} of {}",
            run.path.display(),
            args.strategy,
            args.space.display(),
            j.len(),
            crate::count(args.budget, "trial")
        );
    }
    let limits = run_limits(&args)?;
    let cands = candidates(&j, &limits);
    let left_out = j.len() - cands.iter().map(|c| c.trials.len()).sum::<usize>();
    if left_out > 0 {
        println!(
            "{} over the limits ({limits}) and left out",
            match left_out {
                1 => "1 trial is".to_string(),
                n => format!("{n} trials are"),
            }
        );
    }
    if cands.is_empty() {
        bail!(
            "none of the run's {} is within the limits ({limits})",
            crate::count(j.len(), "trial")
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
    write_plot(&p, &svg);
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
        println!("Pareto front: {} of accuracy against {cost}", front.len());
        write_plot(&run.path.join("pareto.svg"), &svg);
    }
    Ok(())
}

/// Writes a plot into the run directory. A report reads a run and may be asked of one it
/// cannot write (a read-only copy): the table is the answer, so a plot that cannot be
/// written is a warning, not an error.
fn write_plot(p: &std::path::Path, svg: &str) {
    match write_atomic(p, svg.as_bytes()) {
        Ok(()) => println!("wrote {}", p.display()),
        Err(e) => eprintln!("warning: plot not written: {e}"),
    }
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
    // x from 0, as the journal numbers its trials.
    let mut s = frame(x_label, y_label, (0.0, n), (lo, hi));
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
