//! `nas report`: a finished run's table of architectures and its plots (best accuracy
//! so far, the Pareto front; a one-shot search's training progress), as SVG, drawn by
//! [`crate::plot`]; with `--html`, all of it in one page ([`crate::report_html`]).

use crate::plot;
use crate::report_html::State;
use crate::search_args::{cost_of, load_run_as_is, run_cost, run_limits, SearchArgs};
use anyhow::{bail, Result};
use clap::Args;
use nas_core::experiment::{candidates, pareto, write_atomic, Candidate, Limits, TrialRecord};
use nas_core::space::{Choice, ChoiceKind};
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// The run directory (as `nas search --out` made it).
    pub dir: PathBuf,
    /// Rows of the table (best trials first).
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    /// Also write the whole report as one self-contained page, `report.html` in the run
    /// directory (a running search keeps it up to date itself).
    #[arg(long)]
    pub html: bool,
}

pub fn report(a: ReportArgs) -> Result<()> {
    let (run, args, j) = load_run_as_is(&a.dir)?;
    let progress = run.path.join("progress.jsonl");
    // Before its first progress report, a one-shot run is known by its strategy's kind.
    let one_shot = j.iter().any(|r| r.metrics.extra.contains_key("scored_by"))
        || (j.is_empty() && (progress.exists() || strategy_is_one_shot(&args)));
    if one_shot {
        println!(
            "{}: one-shot {} on {}, {}{}",
            run.path.display(),
            args.strategy,
            args.space.display(),
            crate::count(args.epochs, "epoch"),
            match j.len() {
                0 => String::new(),
                1 => "; its export, scored with the supernet's weights:".into(),
                n => format!(
                    "; its export (trial 0) and its Pareto set ({} more), scored with the \
                     supernet's weights:",
                    n - 1
                ),
            }
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
    // A run that is not whole is still being written, or was stopped: its lock says which.
    let one_shot_run = crate::report_html::one_shot(&j, progress.exists()) || one_shot;
    let ended = run.ended_path().exists();
    let state = if ended || crate::report_html::complete(&args, &j, one_shot_run) {
        State::Finished
    } else if let Some(w) = run.writer() {
        match one_shot_run {
            true => println!("still running ({w}): the supernet trains"),
            false => println!("still running ({w}): the journal grows as trials end"),
        }
        State::Running
    } else {
        println!(
            "stopped before its end (killed, or ended on an error): `nas resume {}` continues it",
            run.path.display()
        );
        State::Stopped
    };
    let limits = run_limits(&args)?;
    let cands = candidates(&j, &limits);
    if let Some(what) = crate::search_args::left_out(&j, &limits) {
        println!("{what}; left out of the ranking");
    }
    // Each failure and why (the first ten), which is what a user looks for here.
    let failed: Vec<(usize, &str)> = crate::search_args::failed_trials(&j).collect();
    for (t, why) in failed.iter().take(10) {
        println!("  trial {t} failed: {why}");
    }
    if failed.len() > 10 {
        println!("  ... and {} more failed", failed.len() - 10);
    }
    if j.is_empty() {
        // Nothing to rank: what the run has is its state, a one-shot search's training
        // so far, and with --html the page that says so.
        let mut shown = false;
        if let Some(text) = read_progress(&progress) {
            println!(
                "no architecture exported yet; its training so far: {}",
                progress_summary(&text)
            );
            write_plot(
                &run.path.join("progress.svg"),
                &progress_svg(&text, args.epochs),
            );
            shown = true;
        }
        if a.html {
            let path = crate::report_html::write(&run, &args, &j, state)?;
            println!("wrote {}", path.display());
            shown = true;
        }
        if !shown {
            println!(
                "{}",
                match (one_shot, state) {
                    (true, State::Finished) =>
                        "nothing recorded: the search ended without a \
                                                progress report",
                    (true, _) => "nothing recorded yet: no progress report so far",
                    // The strategy proposed nothing (it had nothing to propose).
                    (false, State::Finished) => "no trials: the search ended without one",
                    (false, _) => "no trial has ended yet",
                }
            );
        }
        return Ok(());
    }
    // No trial within the limits: nothing to export or retrain, but the report still
    // shows what the run found (the trials' costs say how far off the limits they are).
    let outside = cands.is_empty();
    let cands = if outside {
        let all = candidates(&j, &Limits::default());
        if all.is_empty() {
            // Every trial failed: the failures above are all there is.
            bail!("{}", crate::search_args::none_returned(&j, &limits));
        }
        println!(
            "{}: nothing to export or retrain; the trials, all outside the limits:",
            crate::search_args::none_returned(&j, &limits)
        );
        all
    } else {
        cands
    };
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
    if outside {
        println!("no plots: they show the trials within the limits");
    } else if one_shot {
        // A best-so-far plot of an export says nothing; the search's own record of its
        // training does, and the Pareto plot of a multi-objective strategy's set.
        if j.len() > 1 {
            if let Some((svg, front, cost)) = pareto_svg(&cands, &args) {
                println!("Pareto front: {front} of accuracy against {cost}");
                write_plot(&run.path.join("pareto.svg"), &svg);
            }
        }
        if !progress.exists() {
            eprintln!(
                "warning: {}: no such file; no progress plot",
                progress.display()
            );
        }
        if let Some(text) = read_progress(&progress) {
            write_plot(
                &run.path.join("progress.svg"),
                &progress_svg(&text, args.epochs),
            );
        }
    } else {
        write_plot(
            &run.path.join("best_so_far.svg"),
            &best_so_far_svg(&j, &limits),
        );
        if let Some((svg, front, cost)) = pareto_svg(&cands, &args) {
            println!("Pareto front: {front} of accuracy against {cost}");
            write_plot(&run.path.join("pareto.svg"), &svg);
        }
    }
    if a.html {
        let path = crate::report_html::write(&run, &args, &j, state)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// The best-so-far plot of a multi-trial run's feasible trials.
pub fn best_so_far_svg(j: &[TrialRecord], limits: &Limits) -> String {
    let trials: Vec<(usize, f64)> = j
        .iter()
        .filter(|r| limits.feasible(&r.metrics))
        .map(|r| (r.trial, r.metrics.accuracy * 100.0))
        .collect();
    let last = j.iter().map(|r| r.trial).max().unwrap_or(0);
    plot::best_so_far(&trials, last)
}

/// The Pareto plot of a run's candidates against its cost objective (parameters when it
/// has none), with the size of the front and the cost's name; `None` when no candidate
/// has that cost.
pub fn pareto_svg(cands: &[Candidate], args: &SearchArgs) -> Option<(String, usize, String)> {
    let cost = run_cost(args).unwrap_or_else(|| "params".into());
    let front = pareto(cands, cost_of(&cost));
    if front.is_empty() {
        return None;
    }
    let pts: Vec<(f64, f64, bool)> = cands
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            cost_of(&cost)(&r.metrics).map(|c| (c, r.metrics.accuracy * 100.0, front.contains(&i)))
        })
        .collect();
    let svg = plot::pareto(&pts, &cost_label(&cost));
    Some((svg, front.len(), cost))
}

/// The progress plot of a one-shot search's `progress.jsonl` text.
pub fn progress_svg(text: &str, epochs: usize) -> String {
    let (series, after) = progress_series(text, epochs);
    let footnote = match after {
        0 => None,
        n => Some(format!(
            "{} from the search after training not shown",
            crate::count(n, "report")
        )),
    };
    plot::progress(&series, "epoch", footnote.as_deref())
}

/// How a plot names a cost.
pub fn cost_label(cost: &str) -> String {
    match cost {
        "params" => "parameters".into(),
        "macs" => "multiply-accumulates (MACs)".into(),
        "latency_ms" => "latency (ms)".into(),
        c => c.into(),
    }
}

/// The figures of a one-shot search's `progress.jsonl` (one JSON object a line:
/// `epoch`, the steps done in it, `step`, and the mean `values` since the last line)
/// against fractional epochs, `epoch + step / steps per epoch`; and how many lines come
/// from a search after the `epochs` of training (`epoch` at least `epochs`, `step` then
/// counting that search's rounds), which are not on that scale. Every epoch of training
/// ends with a line at its last step, so the largest step of training is the number of
/// steps in an epoch. Lines that are not such objects (a line cut short) are skipped.
pub fn progress_series(text: &str, epochs: usize) -> (Vec<plot::Series>, usize) {
    let (lines, after) = training_lines(text, epochs);
    let mut by_name: std::collections::BTreeMap<String, Vec<(f64, f64)>> = Default::default();
    for (x, v) in &lines {
        for (k, v) in v["values"].as_object().into_iter().flatten() {
            if let Some(y) = v.as_f64() {
                by_name.entry(k.clone()).or_default().push((*x, y));
            }
        }
    }
    let series = by_name
        .into_iter()
        .map(|(name, mut points)| {
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            plot::Series { name, points }
        })
        .collect();
    (series, after)
}

/// The 1-based numbers of the lines of a `progress.jsonl` text that are not progress
/// records (a JSON object with `epoch`, `step` and `values`): damage, or a hand edit.
/// Blank lines are not counted, nor a last line without its newline (a search writing
/// it, or killed while it did).
pub fn damaged_progress_lines(text: &str) -> Vec<usize> {
    let whole = match text.rfind('\n') {
        Some(i) => &text[..i],
        None => "",
    };
    whole
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && progress_record(l).is_none())
        .map(|(i, _)| i + 1)
        .collect()
}

/// One `progress.jsonl` line as `(epoch, step, the whole object)`, if it is a record.
fn progress_record(line: &str) -> Option<(u64, u64, serde_json::Value)> {
    let v = serde_json::from_str::<serde_json::Value>(line).ok()?;
    match (
        v["epoch"].as_u64(),
        v["step"].as_u64(),
        v["values"].is_object(),
    ) {
        (Some(e), Some(st), true) => Some((e, st, v)),
        _ => None,
    }
}

/// The last progress record of `text` in words: how many reports, where the last was
/// and its figures ("5 reports, the last in epoch 1, step 250: tau 7.6255, ..."), or
/// that none is readable.
fn progress_summary(text: &str) -> String {
    let records: Vec<(u64, u64, serde_json::Value)> =
        text.lines().filter_map(progress_record).collect();
    let Some((epoch, step, v)) = records.last() else {
        return "no readable report yet".into();
    };
    let figures: Vec<String> = v["values"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, x)| x.as_f64().map(|x| format!("{k} {x:.4}")))
        .collect();
    format!(
        "{} report{}, the last in epoch {}, step {step}{}{}",
        records.len(),
        if records.len() == 1 { "" } else { "s" },
        epoch + 1,
        if figures.is_empty() { "" } else { ": " },
        figures.join(", ")
    )
}

/// A one-shot run's `progress.jsonl`, with a warning naming the lines that are not
/// progress records (the plot leaves them out); `None`, with a warning, where the file
/// is there but cannot be read.
fn read_progress(path: &std::path::Path) -> Option<String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            eprintln!("warning: {}: {e}; no progress plot", path.display());
            return None;
        }
    };
    let bad = damaged_progress_lines(&text);
    if !bad.is_empty() {
        let shown: Vec<String> = bad.iter().take(5).map(|l| l.to_string()).collect();
        eprintln!(
            "warning: {}: {} not a progress record (line {}{}); left out of the plot",
            path.display(),
            match bad.len() {
                1 => "1 line is".to_string(),
                n => format!("{n} lines are"),
            },
            shown.join(", "),
            if bad.len() > 5 { ", ..." } else { "" }
        );
    }
    Some(text)
}

/// The lines of `progress.jsonl` from the `epochs` of training, each at its fractional
/// epoch (see [`progress_series`]), and how many lines come after training.
pub fn training_lines(text: &str, epochs: usize) -> (Vec<(f64, serde_json::Value)>, usize) {
    let mut recs = vec![];
    let mut after = 0;
    for line in text.lines() {
        let Some((e, st, v)) = progress_record(line) else {
            continue;
        };
        if e as usize >= epochs {
            after += 1;
            continue;
        }
        recs.push((e, st, v));
    }
    let per_epoch = recs.iter().map(|r| r.1).max().unwrap_or(1).max(1) as f64;
    let lines = recs
        .into_iter()
        .map(|(e, st, v)| (e as f64 + st as f64 / per_epoch, v))
        .collect();
    (lines, after)
}

/// The mixing weights a one-shot search recorded in `progress.jsonl` (`mix`: for each
/// choice with weights, the mean of its weights over the training steps since the line
/// before), as one series per candidate for each choice, in the order of `choices`; a
/// candidate is named as the choice names it. Choices whose candidates are edges are
/// left out (a search holds every edge at 1), and so are runs from before the searches
/// recorded them (no `mix`).
pub fn mixing_series(
    text: &str,
    epochs: usize,
    choices: &[Choice],
) -> Vec<(String, Vec<plot::Series>)> {
    let (lines, _) = training_lines(text, epochs);
    let mut out: Vec<(String, Vec<plot::Series>)> = vec![];
    for c in choices.iter().filter(|c| c.edge_ops.is_empty()) {
        let mut series: Vec<plot::Series> = vec![];
        for (x, v) in &lines {
            let Some(ws) = v["mix"][&c.label].as_array() else {
                continue;
            };
            for (i, w) in ws.iter().enumerate() {
                if i == series.len() {
                    series.push(plot::Series {
                        name: candidate_name(c, i),
                        points: vec![],
                    });
                }
                if let Some(w) = w.as_f64() {
                    series[i].points.push((*x, w));
                }
            }
        }
        if !series.is_empty() {
            out.push((c.label.clone(), series));
        }
    }
    out
}

/// How a choice names its `i`th candidate (its `i`th mixing weight).
pub fn candidate_name(c: &Choice, i: usize) -> String {
    let named = match &c.kind {
        ChoiceKind::Layer { candidates } => candidates.get(i).cloned(),
        ChoiceKind::Input { n_candidates, .. } => (i < *n_candidates).then(|| format!("input {i}")),
        ChoiceKind::Value { values } => values.get(i).map(|v| match v {
            serde_json::Value::String(s) => s.clone(),
            v => v.to_string(),
        }),
        ChoiceKind::Repeat { depths } => depths.get(i).map(|d| format!("depth {d}")),
    };
    named.unwrap_or_else(|| format!("#{i}"))
}

/// Writes a plot into the run directory. A report reads a run and may be asked of one it
/// cannot write (a read-only copy): the table is the answer, so a plot that cannot be
/// written is a warning, not an error.
pub fn write_plot(p: &std::path::Path, svg: &str) {
    match write_atomic(p, svg.as_bytes()) {
        Ok(()) => println!("wrote {}", p.display()),
        Err(e) => eprintln!("warning: plot not written: {e}"),
    }
}

/// Whether the run's strategy is a one-shot one, by its plugin (false where it cannot
/// be loaded: the report goes on as for a multi-trial run).
fn strategy_is_one_shot(args: &SearchArgs) -> bool {
    let found = crate::host::discover(&crate::host::search_dirs(&args.plugin_dir));
    found
        .get(&args.strategy)
        .is_ok_and(|p| p.kind == nas_strategies::abi::KIND_ONE_SHOT)
}
