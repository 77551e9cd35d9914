//! The plots `nas report` writes, as a user opens them: well-formed SVG with ticks,
//! legends and the right kind of line, and for a one-shot search its training progress
//! instead of a best-so-far plot of one point.

use crate::common;

use common::{nas, run, temp_path};
use std::path::Path;

/// Checks that `svg` is well-formed enough for a viewer: every tag closed in order under
/// one `svg` root, attribute quotes paired, `&` only in entities, no `>` in text, and no
/// number that is not finite.
fn well_formed(svg: &str) -> Result<(), String> {
    let text_ok = |t: &str| -> Result<(), String> {
        if t.contains('>') {
            return Err(format!("`>` in text: {t:?}"));
        }
        for (i, _) in t.match_indices('&') {
            let entity = t[i + 1..].split(';').next().unwrap_or("");
            let known = ["amp", "lt", "gt", "quot", "apos"].contains(&entity)
                || (entity.starts_with('#') && entity[1..].chars().all(|c| c.is_ascii_digit()));
            if !known || !t[i..].contains(';') {
                return Err(format!("bare `&` in {t:?}"));
            }
        }
        Ok(())
    };
    let mut stack: Vec<&str> = vec![];
    let mut roots = 0;
    let mut rest = svg;
    while let Some(i) = rest.find('<') {
        text_ok(&rest[..i])?;
        let j = i + rest[i..].find('>').ok_or("a tag is never closed")?;
        let tag = &rest[i + 1..j];
        if tag.matches('"').count() % 2 != 0 {
            return Err(format!("unpaired quote in <{tag}>"));
        }
        text_ok(&tag.replace('>', ""))?;
        if let Some(name) = tag.strip_prefix('/') {
            match stack.pop() {
                Some(open) if open == name.trim() => {}
                other => return Err(format!("</{name}> closes {other:?}")),
            }
        } else if !tag.starts_with('?') && !tag.starts_with('!') {
            let name = tag
                .split_whitespace()
                .next()
                .unwrap_or("")
                .trim_end_matches('/');
            if name.is_empty() {
                return Err("an empty tag".into());
            }
            if stack.is_empty() {
                roots += 1;
                if name != "svg" {
                    return Err(format!("root <{name}>"));
                }
            }
            if !tag.ends_with('/') {
                stack.push(name);
            }
        }
        rest = &rest[j + 1..];
    }
    text_ok(rest)?;
    if !rest.trim().is_empty() {
        return Err(format!("text after the root: {rest:?}"));
    }
    if !stack.is_empty() {
        return Err(format!("never closed: {stack:?}"));
    }
    if roots != 1 {
        return Err(format!("{roots} root elements"));
    }
    let lower = svg.to_lowercase();
    if lower.contains("nan") || lower.contains("inf") {
        return Err("a number that is not finite".into());
    }
    Ok(())
}

fn read_plot(dir: &Path, name: &str) -> String {
    let svg = std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    if let Err(e) = well_formed(&svg) {
        panic!("{name} is not well-formed: {e}\n{svg}");
    }
    svg
}

/// The numbers of the `<text>` elements anchored at `anchor` (`middle`: the x ticks and
/// axis label; `end`: the y ticks).
fn ticks(svg: &str, anchor: &str) -> Vec<f64> {
    svg.split(&format!("text-anchor=\"{anchor}\">"))
        .skip(1)
        .filter_map(|t| t.split("</text>").next()?.parse().ok())
        .collect()
}

/// The step between `ticks`, which must be the same throughout and 1, 2 or 5 times a
/// power of ten.
fn nice_step(ticks: &[f64]) -> f64 {
    let step = ticks[1] - ticks[0];
    for w in ticks.windows(2) {
        assert!(
            ((w[1] - w[0]) - step).abs() < 1e-9 * step.abs().max(1.0),
            "uneven ticks {ticks:?}"
        );
    }
    let m = step / 10f64.powf(step.log10().floor());
    assert!(
        [1.0, 2.0, 5.0].iter().any(|n| (m - n).abs() < 1e-6),
        "step {step} of {ticks:?} is not 1, 2 or 5 times a power of ten"
    );
    step
}

/// The texts of the `<text>` elements of `svg`.
fn texts(svg: &str) -> Vec<&str> {
    svg.split("<text")
        .skip(1)
        .filter_map(|t| t.split_once('>')?.1.split("</text>").next())
        .collect()
}

#[test]
fn the_checker_catches_what_a_viewer_would_not_open() {
    assert!(well_formed("<svg><g><rect/></g><text>a &amp; b</text></svg>").is_ok());
    assert!(well_formed("<svg><g></svg>").is_err());
    assert!(well_formed("<svg><g></text></g></svg>").is_err());
    assert!(well_formed("<svg><text>a & b</text></svg>").is_err());
    assert!(well_formed("<svg><text>a > b</text></svg>").is_err());
    assert!(well_formed("<svg><rect x=\"1/></svg>").is_err());
    assert!(well_formed("<svg></svg><svg></svg>").is_err());
    assert!(well_formed("<svg><circle cx=\"NaN\"/></svg>").is_err());
}

/// A multi-objective search's plots: best accuracy so far as a step line over the
/// trials' dots, with nice tick labels (trials from 0, as the table numbers them), and
/// the Pareto front apart from the other architectures, with a legend.
#[test]
fn a_search_gets_readable_best_so_far_and_pareto_plots() {
    let dir = temp_path("report_plots", "evolution");
    let (ok, out, err) = run(nas()
        .args(["search", "--space", "nb201", "--strategy", "evolution"])
        .args(["--budget", "40"])
        .args([
            "--config",
            r#"{"objectives":["accuracy","params"]}"#,
            "--out",
        ])
        .arg(&dir));
    assert!(ok, "{out}\n{err}");
    let (ok, out, err) = run(nas().arg("report").arg(&dir));
    assert!(ok, "{out}\n{err}");
    assert!(
        out.contains("best_so_far.svg") && out.contains("pareto.svg"),
        "{out}"
    );
    assert!(!dir.join("progress.svg").exists());

    let svg = read_plot(&dir, "best_so_far.svg");
    let labels = texts(&svg);
    // Trial ticks (below the x axis, centred) are integers from 0 in a nice step;
    // accuracy ticks (left of the y axis) are in a nice step too.
    let x = ticks(&svg, "middle");
    assert!(x.len() >= 4 && x[0] == 0.0, "{x:?}");
    let step = nice_step(&x);
    assert!(step >= 1.0 && step.fract() == 0.0, "{x:?}");
    let y = ticks(&svg, "end");
    assert!(y.len() >= 3, "{y:?}");
    nice_step(&y);
    assert!(
        labels.contains(&"trial") && labels.contains(&"best so far"),
        "{labels:?}"
    );
    let d = svg
        .split("class=\"best\" d=\"")
        .nth(1)
        .expect("no best-so-far path")
        .split('"')
        .next()
        .unwrap();
    assert!(
        d.starts_with('M') && d.contains(" H") && d.ends_with(|c: char| c.is_ascii_digit()),
        "not a step path: {d}"
    );
    assert!(
        !d.contains('L'),
        "a step path goes across and up, never diagonally: {d}"
    );
    // The trials behind it, one dot each (or a marker at the edge when far below).
    let dots = svg.matches("<circle").count() + svg.matches("<path d=\"M").count();
    assert!(dots >= 40, "{dots} marks for 40 trials");

    let svg = read_plot(&dir, "pareto.svg");
    let labels = texts(&svg);
    assert!(labels.contains(&"Pareto front"), "no legend: {labels:?}");
    assert!(labels.contains(&"other architectures"), "{labels:?}");
    assert!(labels.contains(&"parameters"), "{labels:?}");
    assert!(svg.contains("class=\"front\""), "{svg}");
    std::fs::remove_dir_all(&dir).ok();
}

/// A one-shot search journals one trial; its report plots the search's own progress
/// (losses and tau against epochs, from `progress.jsonl`) instead of a best-so-far or
/// Pareto plot of that one point.
#[test]
fn a_one_shot_search_gets_a_progress_plot() {
    let dir = temp_path("report_plots", "gdas");
    let (ok, out, err) = run(nas()
        .args([
            "--threads",
            "2",
            "search",
            "--space",
            "seed-net",
            "--strategy",
            "gdas",
        ])
        .args(["--epochs", "2", "--limit", "3000", "--out"])
        .arg(&dir));
    assert!(ok, "{out}\n{err}");
    let (ok, out, err) = run(nas().arg("report").arg(&dir));
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("progress.svg"), "{out}");
    assert!(!dir.join("best_so_far.svg").exists(), "{out}");
    assert!(!dir.join("pareto.svg").exists(), "{out}");
    let svg = read_plot(&dir, "progress.svg");
    let lines: Vec<&str> = svg
        .split("<polyline")
        .skip(1)
        .map(|p| {
            p.split("points=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap()
        })
        .collect();
    // train_loss, val_loss and tau, each a point an epoch at least.
    assert_eq!(lines.len(), 3, "{svg}");
    for l in &lines {
        assert!(l.split(' ').count() >= 2, "a line of one point: {l}");
    }
    let labels = texts(&svg);
    for l in ["train_loss", "val_loss", "tau", "epoch", "1.0", "2.0"] {
        assert!(labels.contains(&l), "no {l}: {labels:?}");
    }
    // A damaged line is named, and the plot is drawn from the others.
    let p = dir.join("progress.jsonl");
    let text = std::fs::read_to_string(&p).unwrap();
    std::fs::write(&p, format!("not json\n{text}")).unwrap();
    let (ok, out, err) = run(nas().arg("report").arg(&dir));
    assert!(ok, "{out}\n{err}");
    assert!(
        err.contains("progress.jsonl: 1 line is not a progress record (line 1)"),
        "{err}"
    );
    assert_eq!(
        read_plot(&dir, "progress.svg").matches("<polyline").count(),
        3
    );
    std::fs::remove_dir_all(&dir).ok();
}
