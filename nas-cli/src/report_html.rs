//! `report.html`: a run's whole report as one self-contained page (no network, nothing
//! outside the file): the best architecture drawn ([`crate::arch_graph`]), the plots of
//! `nas report` inline ([`crate::plot`]), a one-shot search's training curves and mixing
//! weights, and every trial in a table that sorts by any column. `nas report --html`
//! writes it; a running search rewrites it as trials arrive (at most every few seconds),
//! and while it runs the page reloads itself.

use crate::arch_graph;
use crate::plot::{self, escape};
use crate::report_cmd::{best_so_far_svg, mixing_series, pareto_svg, progress_svg};
use crate::search_args::{run_limits, SearchArgs};
use anyhow::{anyhow, Result};
use nas_core::experiment::{self, candidates, write_atomic, Limits, RunDir, TrialRecord};
use nas_core::space::{Architecture, Choice, ChoiceKind};
use serde_json::Value;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The page's file in the run directory.
pub const FILE: &str = "report.html";
/// A running search rewrites the page at most this often.
pub const LIVE_EVERY: Duration = Duration::from_secs(3);
/// A live page reloads itself this often.
pub const RELOAD_SECONDS: u32 = 5;

/// What the page says of the search behind it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum State {
    /// The search is running: the page reloads itself.
    Running,
    /// The search ran to its end.
    Finished,
    /// The search stopped before its end: on an error, or killed (`nas report` sees
    /// that no process holds the run's lock); it resumes with `nas resume`.
    Stopped,
}

/// Everything the page shows, read from a run.
pub struct Page<'a> {
    /// The run directory as the user named it.
    pub name: String,
    pub args: &'a SearchArgs,
    pub journal: &'a [TrialRecord],
    /// The choices of the run's space (`space.json`), when the run recorded them.
    pub choices: Option<Vec<Choice>>,
    /// A one-shot search's `progress.jsonl`.
    pub progress: Option<String>,
    /// The best architecture's benchmark accuracy (`best.json`), when there is one.
    pub final_accuracy: Option<f64>,
    pub state: State,
    /// When the page was written, in milliseconds since the Unix epoch (a live page
    /// says how old it is).
    pub written_ms: u128,
}

/// Writes the page of `run` (its `journal` as the caller has it) into the run directory,
/// atomically, and returns its path.
pub fn write(
    run: &RunDir,
    args: &SearchArgs,
    journal: &[TrialRecord],
    state: State,
) -> Result<PathBuf> {
    let choices = std::fs::read(run.space_path())
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let progress = std::fs::read_to_string(run.path.join("progress.jsonl")).ok();
    let final_accuracy = std::fs::read(run.best_path())
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|v| v["final_accuracy"].as_f64());
    let page = Page {
        name: run.path.display().to_string(),
        args,
        journal,
        choices,
        progress,
        final_accuracy,
        state,
        written_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0),
    };
    let html = render(&page)?;
    let path = run.path.join(FILE);
    write_atomic(&path, html.as_bytes()).map_err(|e| anyhow!(e))?;
    Ok(path)
}

/// Keeps a running search's page up to date without slowing it: [`Live::update`]
/// rewrites it at most every [`LIVE_EVERY`], and a failure to write is a warning, once.
#[derive(Default)]
pub struct Live {
    last: Option<Instant>,
    warned: bool,
}

impl Live {
    pub fn new() -> Live {
        Live::default()
    }

    /// Rewrites the page as a live one, if the last rewrite is long enough ago.
    pub fn update(&mut self, run: &RunDir, args: &SearchArgs, journal: &[TrialRecord]) {
        if self.last.is_some_and(|t| t.elapsed() < LIVE_EVERY) {
            return;
        }
        self.last = Some(Instant::now());
        // After an interrupt the page is the watcher's to write (as stopped).
        let _page = crate::interrupt::PAGE
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if crate::interrupt::interrupted() {
            return;
        }
        if let Err(e) = write(run, args, journal, State::Running) {
            if !std::mem::replace(&mut self.warned, true) {
                eprintln!("warning: {FILE} not written: {e:#}");
            }
        }
    }
}

/// Writes the page of a search that has ended (`ok`: it ran to its end), so it stops
/// reloading. A search that ended before it recorded anything has no page.
pub fn finish(run: &RunDir, args: &SearchArgs, ok: bool) {
    let Ok(journal) = run.journal() else {
        return; // `nas resume` repairs the journal, and writes the page then
    };
    if journal.is_empty() && !run.path.join(FILE).exists() {
        return;
    }
    let state = if ok { State::Finished } else { State::Stopped };
    let _page = crate::interrupt::PAGE
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Err(e) = write(run, args, &journal, state) {
        eprintln!("warning: {FILE} not written: {e:#}");
    }
}

/// Whether the run's trials are those of a one-shot search (its one trial, the export).
pub fn is_one_shot(p: &Page) -> bool {
    one_shot(p.journal, p.progress.is_some())
}

/// Whether a run is a one-shot search: it has a training record (`progress.jsonl`), or
/// its journal holds an export scored by a supernet (a run killed before its export has
/// only the former).
pub fn one_shot(journal: &[TrialRecord], has_progress: bool) -> bool {
    has_progress
        || journal
            .iter()
            .any(|r| r.metrics.extra.contains_key("scored_by"))
}

/// Whether a run's journal is whole: a one-shot run's holds its export, a multi-trial
/// run's its budget of trials.
pub fn complete(args: &SearchArgs, journal: &[TrialRecord], one_shot: bool) -> bool {
    if one_shot {
        !journal.is_empty()
    } else {
        journal.len() >= args.budget
    }
}

/// The page as HTML.
pub fn render(p: &Page) -> Result<String> {
    let limits = run_limits(p.args)?;
    let one_shot = is_one_shot(p);
    let complete = complete(p.args, p.journal, one_shot);
    // A whole journal is a finished search, whatever the writer thought.
    let state = if complete { State::Finished } else { p.state };
    let (state_name, status) = match state {
        State::Running => (
            "running",
            format!("running: this page reloads every {RELOAD_SECONDS} s"),
        ),
        State::Finished => ("finished", "finished".to_string()),
        State::Stopped => (
            "stopped",
            format!(
                "stopped before its end (`nas resume {}` continues it)",
                p.name
            ),
        ),
    };
    let mut h = String::new();
    let title = format!("nas report: {}", p.name);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n\
         <body data-state=\"{state_name}\" data-updated=\"{}\">\n<header>\n<h1>{}</h1>\n",
        escape(&title),
        p.written_ms,
        escape(&title)
    );
    let what = if one_shot {
        format!(
            "one-shot <b>{}</b> on <b>{}</b>, {}",
            escape(&p.args.strategy),
            escape(&p.args.space.display()),
            crate::count(p.args.epochs, "epoch")
        )
    } else {
        format!(
            "<b>{}</b> on <b>{}</b>, {} of {}",
            escape(&p.args.strategy),
            escape(&p.args.space.display()),
            p.journal.len(),
            crate::count(p.args.budget, "trial")
        )
    };
    let _ = writeln!(
        h,
        "<p class=\"summary\">{what}, seed {}{}</p>\n\
         <p class=\"status\">Search {}<span id=\"age\"></span></p>\n</header>",
        p.args.seed,
        if limits.is_empty() {
            String::new()
        } else {
            format!("; hard limits: {}", escape(&limits.to_string()))
        },
        escape(&status)
    );
    best_section(&mut h, p, &limits, one_shot);
    if one_shot {
        training_section(&mut h, p);
        if p.journal.len() > 1 {
            // A multi-objective strategy's Pareto set, journaled beside its export.
            h.push_str("<section id=\"plots\">\n<h2>Pareto set</h2>\n<div class=\"plots\">\n");
            pareto_figure(&mut h, p, &limits);
            h.push_str("</div>\n</section>\n");
        }
    } else if !p.journal.is_empty() {
        plots_section(&mut h, p, &limits);
    }
    trials_section(&mut h, p, &limits);
    let _ = writeln!(
        h,
        "<footer>Written by <code>nas report</code>; everything on this page is in this one file.</footer>\n\
         <script>{}</script>\n</body>\n</html>",
        SCRIPT.replace("RELOAD_MS", &(RELOAD_SECONDS * 1000).to_string())
    );
    Ok(h)
}

/// An SVG to put inline: its clip paths' ids made unique in the page (each plot numbers
/// its own from 0).
pub fn inline(svg: &str, id: &str) -> String {
    svg.replace("id=\"clip", &format!("id=\"{id}-clip"))
        .replace("url(#clip", &format!("url(#{id}-clip"))
}

/// Choices to draw an architecture with when the run recorded none: each decision as a
/// layer choice of that one candidate.
pub fn choices_of(arch: &Architecture) -> Vec<Choice> {
    arch.iter()
        .map(|(k, v)| Choice {
            label: k.clone(),
            kind: ChoiceKind::Layer {
                candidates: vec![v.as_str().map(str::to_string).unwrap_or(v.to_string())],
            },
            inside: None,
            edge_ops: vec![],
        })
        .collect()
}

/// The best architecture (or, while a one-shot search trains, the one it would export
/// now): what it scored, its drawing and its JSON.
pub fn best_section(h: &mut String, p: &Page, limits: &Limits, one_shot: bool) {
    let cands = candidates(p.journal, limits);
    let best = crate::search_args::answer(&cands, one_shot).cloned();
    let (heading, line, arch) = match &best {
        Some(b) => {
            let mut line = format!(
                "Trial {}{}: accuracy <b>{:.2}%</b>{}",
                b.trials[0],
                match b.trials.len() {
                    1 => String::new(),
                    n => format!(" (mean of its {n} trials)"),
                },
                b.metrics.accuracy * 100.0,
                if one_shot {
                    " with the supernet's weights on the validation split"
                } else {
                    ""
                }
            );
            for (name, v, scale, unit) in [
                ("parameters", b.metrics.params, 1.0, ""),
                ("MACs", b.metrics.macs, 1e6, "M"),
                ("latency", b.metrics.latency_ms, 1.0, " ms"),
            ] {
                if let Some(v) = v {
                    let _ = write!(line, ", {name} {}{unit}", number(v / scale));
                }
            }
            let table = p.final_accuracy.or_else(|| {
                b.metrics
                    .extra
                    .get("nb201_accuracy")
                    .and_then(|v| v.as_f64())
            });
            if let Some(f) = table {
                let _ = write!(
                    line,
                    "; benchmark accuracy (mean over seeds) <b>{:.2}%</b>",
                    f * 100.0
                );
            }
            (
                if one_shot {
                    "Exported architecture"
                } else {
                    "Best architecture"
                },
                line,
                Some(b.arch.clone()),
            )
        }
        None => {
            // A one-shot search still training: the architecture of its last report.
            let last = p
                .progress
                .as_deref()
                .and_then(|t| {
                    t.lines()
                        .rev()
                        .find_map(|l| serde_json::from_str::<Value>(l).ok())
                })
                .filter(|v| v["arch"].is_object());
            match last {
                Some(v) => (
                    "Current architecture",
                    format!(
                        "What the strategy would export now (epoch {}, step {})",
                        v["epoch"].as_u64().unwrap_or(0) + 1,
                        v["step"].as_u64().unwrap_or(0)
                    ),
                    serde_json::from_value(v["arch"].clone()).ok(),
                ),
                None => (
                    "Best architecture",
                    if p.journal.is_empty() {
                        "No trial yet.".into()
                    } else {
                        "No trial is within the limits.".into()
                    },
                    None,
                ),
            }
        }
    };
    let _ = writeln!(
        h,
        "<section id=\"architecture\">\n<h2>{heading}</h2>\n<p>{line}</p>"
    );
    if let Some(arch) = arch {
        let choices = p.choices.clone().unwrap_or_else(|| choices_of(&arch));
        h.push_str("<div class=\"drawings\">\n");
        for (i, d) in arch_graph::draw(&choices, &arch).iter().enumerate() {
            let _ = writeln!(
                h,
                "<figure class=\"arch\" id=\"arch-{i}\"><figcaption>{}</figcaption>\n{}</figure>",
                escape(&d.title),
                d.svg
            );
        }
        h.push_str("</div>\n");
        let _ = writeln!(
            h,
            "<details><summary>As JSON (what <code>nas export</code> writes)</summary>\
             <pre class=\"arch-json\">{}</pre></details>",
            escape(&serde_json::to_string_pretty(&arch).unwrap_or_default())
        );
    }
    h.push_str("</section>\n");
}

/// A multi-trial search's plots: the best accuracy so far and the Pareto front.
pub fn plots_section(h: &mut String, p: &Page, limits: &Limits) {
    h.push_str("<section id=\"plots\">\n<h2>Plots</h2>\n<div class=\"plots\">\n");
    let _ = writeln!(
        h,
        "<figure class=\"plot\" id=\"best-so-far\"><figcaption>Best accuracy so far</figcaption>\n{}</figure>",
        inline(&best_so_far_svg(p.journal, limits), "best-so-far")
    );
    pareto_figure(h, p, limits);
    h.push_str("</div>\n</section>\n");
}

/// The Pareto plot of the run's feasible architectures, when they report the cost.
pub fn pareto_figure(h: &mut String, p: &Page, limits: &Limits) {
    let cands = candidates(p.journal, limits);
    if let Some((svg, front, cost)) = pareto_svg(&cands, p.args) {
        let _ = writeln!(
            h,
            "<figure class=\"plot\" id=\"pareto\"><figcaption>Pareto front: {} of accuracy \
             against {}</figcaption>\n{}</figure>",
            crate::count(front, "architecture"),
            escape(&cost),
            inline(&svg, "pareto")
        );
    }
}

/// A one-shot search's training: its figures by epoch, and the mixing weights of every
/// choice over time.
pub fn training_section(h: &mut String, p: &Page) {
    h.push_str("<section id=\"training\">\n<h2>Training</h2>\n");
    let Some(text) = &p.progress else {
        h.push_str("<p>The search recorded no progress (no <code>progress.jsonl</code>).</p>\n</section>\n");
        return;
    };
    let _ = writeln!(
        h,
        "<figure class=\"plot\" id=\"progress\"><figcaption>Losses and other figures by epoch</figcaption>\n{}</figure>",
        inline(&progress_svg(text, p.args.epochs), "progress")
    );
    let choices = p.choices.clone().unwrap_or_default();
    let groups = mixing_series(text, p.args.epochs, &choices);
    h.push_str("<h3 id=\"mixing\">Mixing weights</h3>\n");
    if groups.is_empty() {
        h.push_str(
            "<p>Not recorded: the search ran before searches recorded their mixing weights.</p>\n",
        );
    } else {
        h.push_str(
            "<p>Each choice's mixing weights, the mean over the training steps between two \
             reports: the relaxed weights of DARTS and SNAS, how often each candidate was on \
             the path of the path-sampling strategies.</p>\n<div class=\"grid\">\n",
        );
        for (i, (label, series)) in groups.iter().enumerate() {
            let _ = writeln!(
                h,
                "<figure class=\"mixing\"><figcaption>{}</figcaption>\n{}</figure>",
                escape(label),
                inline(
                    &plot::weights(series, "epoch", "weight"),
                    &format!("mix{i}")
                )
            );
        }
        h.push_str("</div>\n");
    }
    h.push_str("</section>\n");
}

/// A number as the table shows it: integers whole, others to four significant digits
/// or two decimals, whichever is more.
pub fn number(x: f64) -> String {
    if !x.is_finite() {
        return "-".into();
    }
    if x.fract() == 0.0 && x.abs() < 1e15 {
        return format!("{x:.0}");
    }
    let decimals = (3 - x.abs().log10().floor() as i32).clamp(2, 8) as usize;
    let s = format!("{x:.decimals$}");
    let s = s.trim_end_matches('0');
    s.trim_end_matches('.').to_string()
}

/// A table cell: the text shown and the value it sorts by (a number, or text, which is
/// aligned left).
pub fn cell(shown: &str, sort: &str, numeric: bool) -> String {
    format!(
        "<td{} data-v=\"{}\">{}</td>",
        if numeric { "" } else { " class=\"t\"" },
        escape(sort),
        escape(shown)
    )
}

/// Every trial with every metric and its architecture, best first; a click on a
/// column's heading sorts by it.
pub fn trials_section(h: &mut String, p: &Page, limits: &Limits) {
    let _ = writeln!(
        h,
        "<section id=\"trials\">\n<h2>Trials</h2>\n<p>{}; click a column's heading to sort by it \
         (again to reverse).</p>",
        crate::count(p.journal.len(), "trial")
    );
    let mut extra: Vec<&String> = p
        .journal
        .iter()
        .flat_map(|r| r.metrics.extra.keys())
        .collect();
    extra.sort();
    extra.dedup();
    let best: Vec<usize> = experiment::best(&candidates(p.journal, limits))
        .map(|b| b.trials.clone())
        .unwrap_or_default();
    let mut cols: Vec<(String, String, bool)> = vec![
        ("trial".into(), "trial".into(), true),
        ("accuracy".into(), "accuracy (%)".into(), true),
        ("params".into(), "params".into(), true),
        ("macs".into(), "MMACs".into(), true),
        ("latency_ms".into(), "latency (ms)".into(), true),
        ("seconds".into(), "seconds".into(), true),
    ];
    let extra: Vec<(&String, bool)> = extra
        .into_iter()
        .map(|k| {
            let numeric = p
                .journal
                .iter()
                .filter_map(|r| r.metrics.extra.get(k))
                .all(|v| v.is_number());
            (k, numeric)
        })
        .collect();
    for (k, numeric) in &extra {
        cols.push(((*k).clone(), (*k).clone(), *numeric));
    }
    if !limits.is_empty() {
        cols.push(("feasible".into(), "within limits".into(), false));
    }
    cols.push(("arch".into(), "architecture".into(), false));
    h.push_str("<div class=\"table\">\n<table id=\"trials-table\">\n<thead><tr>");
    for (key, name, numeric) in &cols {
        let _ = write!(
            h,
            "<th data-key=\"{}\" data-type=\"{}\"{}>{}</th>",
            escape(key),
            if *numeric { "num" } else { "text" },
            if key == "accuracy" {
                " aria-sort=\"descending\""
            } else {
                ""
            },
            escape(name)
        );
    }
    h.push_str("</tr></thead>\n<tbody>\n");
    let mut order: Vec<&TrialRecord> = p.journal.iter().collect();
    order.sort_by(|a, b| {
        b.metrics
            .accuracy
            .total_cmp(&a.metrics.accuracy)
            .then(a.trial.cmp(&b.trial))
    });
    for r in order {
        let m = &r.metrics;
        let _ = write!(
            h,
            "<tr class=\"trial{}\" data-trial=\"{}\">",
            if best.contains(&r.trial) { " best" } else { "" },
            r.trial
        );
        h.push_str(&cell(&r.trial.to_string(), &r.trial.to_string(), true));
        h.push_str(&cell(
            &format!("{:.2}", m.accuracy * 100.0),
            &m.accuracy.to_string(),
            true,
        ));
        for (v, scale) in [(m.params, 1.0), (m.macs, 1e6), (m.latency_ms, 1.0)] {
            match v {
                Some(v) => h.push_str(&cell(&number(v / scale), &v.to_string(), true)),
                None => h.push_str(&cell("", "", true)),
            }
        }
        h.push_str(&cell(&number(r.seconds), &r.seconds.to_string(), true));
        for (k, numeric) in &extra {
            match m.extra.get(*k) {
                Some(Value::Number(n)) => {
                    let x = n.as_f64().unwrap_or(f64::NAN);
                    h.push_str(&cell(&number(x), &n.to_string(), *numeric));
                }
                Some(Value::String(s)) => h.push_str(&cell(s, s, *numeric)),
                Some(v) => h.push_str(&cell(&v.to_string(), &v.to_string(), *numeric)),
                None => h.push_str(&cell("", "", *numeric)),
            }
        }
        if !limits.is_empty() {
            let ok = if limits.feasible(m) { "yes" } else { "no" };
            h.push_str(&cell(ok, ok, false));
        }
        let arch = serde_json::to_string(&r.arch).unwrap_or_default();
        let _ = write!(
            h,
            "<td class=\"t arch\" data-v=\"{}\"><code>{}</code></td>",
            escape(&arch),
            escape(&arch)
        );
        h.push_str("</tr>\n");
    }
    h.push_str("</tbody>\n</table>\n</div>\n</section>\n");
}

pub const STYLE: &str = r#"
body { font-family: sans-serif; margin: 1.5em auto; max-width: 1200px; padding: 0 1em; color: #222; }
h1 { font-size: 1.4em; margin-bottom: 0.2em; word-break: break-all; }
h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
h3 { font-size: 1.05em; }
.status { color: #555; }
body[data-state="running"] .status { color: #b35900; }
figure { margin: 0.8em 0; }
figcaption { font-size: 0.9em; color: #444; margin-bottom: 0.3em; }
figure svg { max-width: 100%; height: auto; }
.drawings { display: flex; flex-wrap: wrap; gap: 1.5em; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(540px, 1fr)); gap: 0.5em 1.5em; }
.grid svg { width: 100%; }
pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; }
table { border-collapse: collapse; font-size: 13px; width: 100%; }
th, td { border-bottom: 1px solid #e4e4e4; padding: 3px 6px; text-align: right; vertical-align: top; }
th { position: sticky; top: 0; background: #f0f0f0; cursor: pointer; user-select: none; white-space: nowrap; }
th[aria-sort="ascending"]::after { content: " \25B2"; }
th[aria-sort="descending"]::after { content: " \25BC"; }
th[data-type="text"], td.t { text-align: left; }
td.t { word-break: break-all; min-width: 8em; }
td.arch { font-size: 11px; min-width: 18em; }
.table { overflow-x: auto; }
.plots { display: grid; grid-template-columns: repeat(auto-fit, minmax(500px, 1fr)); gap: 0 2em; }
tr.best { background: #fff5d6; }
footer { margin-top: 2em; font-size: 0.85em; color: #777; }
"#;

/// Sorting the table (kept in the address's `#sort=KEY-asc|desc`, so a reload keeps
/// it), and the reload of a live page.
pub const SCRIPT: &str = r#"
(function () {
  var table = document.getElementById('trials-table');
  if (table && table.tHead) {
    var heads = table.tHead.rows[0].cells;
    var value = function (row, i, num) {
      var v = row.cells[i].getAttribute('data-v');
      if (v === null) v = row.cells[i].textContent;
      return num ? (v === '' ? NaN : Number(v)) : v;
    };
    var sortBy = function (i, desc) {
      var num = heads[i].getAttribute('data-type') === 'num';
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = value(a, i, num), y = value(b, i, num);
        if (num && (isNaN(x) || isNaN(y))) return isNaN(x) - isNaN(y);
        var d = num ? x - y : (x < y ? -1 : x > y ? 1 : 0);
        return desc ? -d : d;
      });
      rows.forEach(function (r) { body.appendChild(r); });
      for (var k = 0; k < heads.length; k++) heads[k].removeAttribute('aria-sort');
      heads[i].setAttribute('aria-sort', desc ? 'descending' : 'ascending');
      return heads[i].getAttribute('data-key') + (desc ? '-desc' : '-asc');
    };
    Array.prototype.forEach.call(heads, function (h, i) {
      h.addEventListener('click', function () {
        var now = h.getAttribute('aria-sort');
        var desc = now ? now === 'ascending' : h.getAttribute('data-type') === 'num';
        var hash = '#sort=' + sortBy(i, desc);
        try { history.replaceState(null, '', hash); } catch (e) { location.hash = hash; }
      });
    });
    var m = /^#sort=(.+)-(asc|desc)$/.exec(decodeURIComponent(location.hash));
    if (m) {
      for (var k = 0; k < heads.length; k++) {
        if (heads[k].getAttribute('data-key') === m[1]) sortBy(k, m[2] === 'desc');
      }
    }
    table.setAttribute('data-sortable', 'yes');
  }
  var body = document.body;
  if (body.getAttribute('data-state') === 'running') {
    var written = Number(body.getAttribute('data-updated'));
    var age = document.getElementById('age');
    if (age && written) {
      age.textContent = ' (page written ' + Math.max(0, Math.round((Date.now() - written) / 1000)) + ' s ago)';
    }
    setTimeout(function () { location.reload(); }, RELOAD_MS);
  }
})();
"#;
