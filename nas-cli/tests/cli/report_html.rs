//! The HTML report as a user opens it: headless Chromium loads `report.html` from the
//! run directory, runs its script, and the rendered DOM holds every trial's row (sorted
//! as the address asks), the plots and the architecture drawn as a graph; a screenshot
//! is kept under the target directory. Without Chromium the browser checks skip and
//! say so, unless `NAS_REQUIRE_CHROMIUM` is set (CI sets it).

use crate::common;

use common::{nas, run, temp_path};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The Chromium binary on PATH, or `None` when there is none (having said so, or failed
/// where one is required).
fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = ["chromium", "chromium-browser"].iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("NAS_REQUIRE_CHROMIUM").is_none(),
            "NAS_REQUIRE_CHROMIUM is set but there is no chromium on PATH"
        );
        nas_core::device::report_skip(
            "no chromium on PATH; the HTML report was not opened in a browser \
             (.ci/run installs Debian's `chromium`)",
        );
    }
    found
}

/// Runs headless Chromium on `page` with `args` (its own fresh profile, nothing from the
/// network) and returns its standard output; fails the test if it does not end within
/// a minute or fails.
fn browse(bin: &Path, page: &str, args: &[String]) -> String {
    // Tests run at once: each run its own profile and output file.
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let profile = temp_path("report_html", &format!("chromium-{n}"));
    std::fs::create_dir_all(&profile).unwrap();
    // Its output goes to a file: a page's DOM is more than a pipe holds unread.
    let stdout = profile.join("stdout");
    let mut child = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(page)
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(profile.join("stderr")).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().ok();
            panic!("chromium did not finish with {page} within a minute");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "chromium failed on {page}: {}",
        std::fs::read_to_string(profile.join("stderr")).unwrap_or_default()
    );
    let dom = std::fs::read_to_string(&stdout).unwrap();
    std::fs::remove_dir_all(&profile).ok();
    dom
}

/// The page's rendered DOM after its script ran, loaded with `fragment` in its address.
fn dom(bin: &Path, file: &Path, fragment: &str) -> String {
    let url = format!(
        "file://{}{fragment}",
        file.canonicalize().unwrap().display()
    );
    browse(
        bin,
        &url,
        &["--virtual-time-budget=3000".into(), "--dump-dom".into()],
    )
}

/// Takes a screenshot of `file` into `png` (under the target directory, kept as the
/// test's artifact) and checks it is a PNG of the window's size with something drawn.
fn screenshot(bin: &Path, file: &Path, png: &Path, size: (u32, u32)) {
    std::fs::create_dir_all(png.parent().unwrap()).unwrap();
    std::fs::remove_file(png).ok();
    let url = format!("file://{}", file.canonicalize().unwrap().display());
    browse(
        bin,
        &url,
        &[
            format!("--window-size={},{}", size.0, size.1),
            format!("--screenshot={}", png.display()),
        ],
    );
    let bytes = std::fs::read(png).unwrap_or_else(|e| panic!("{}: {e}", png.display()));
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let be = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap());
    assert_eq!((be(16), be(20)), size, "the screenshot's size");
    // A blank page of this size compresses to a few kilobytes; plots and a table do not.
    assert!(
        bytes.len() > 40_000,
        "{}: {} bytes, is the page blank?",
        png.display(),
        bytes.len()
    );
    println!("screenshot: {}", png.display());
}

/// The inside of the element that starts with `open` (up to the first `close` after it).
fn inside<'a>(html: &'a str, open: &str, close: &str) -> &'a str {
    let start = html
        .find(open)
        .unwrap_or_else(|| panic!("no {open} in the page"));
    let rest = &html[start..];
    &rest[..rest.find(close).unwrap_or(rest.len())]
}

/// The page refers to nothing outside itself: no scripts, styles, images or frames
/// from elsewhere, no address but the SVG namespace.
fn self_contained(html: &str) {
    for bad in ["src=", "<link", "@import", "href=", "<iframe"] {
        assert!(!html.contains(bad), "the page has {bad}");
    }
    let outside = html
        .match_indices("http")
        .filter(|(i, _)| !html[*i..].starts_with("http://www.w3.org/2000/svg"))
        .count();
    assert_eq!(outside, 0, "the page names an address");
    assert_eq!(
        html.matches("url(").count(),
        html.matches("url(#").count(),
        "a url() that is not the page's own"
    );
}

/// An NAS-Bench-201 evolution search: the page the search leaves (finished, no longer
/// reloading) and the one `nas report --html` writes hold every trial, the plots and the
/// cell; in Chromium the table sorts by the column the address names, and the
/// screenshot shows it.
#[test]
fn a_search_report_opens_in_a_browser_with_every_trial_and_plot() {
    let dir = temp_path("report_html", "evolution");
    let (ok, out, err) = run(nas()
        .args(["search", "--space", "nb201", "--strategy", "evolution"])
        .args(["--budget", "60", "--out"])
        .arg(&dir));
    assert!(ok, "{out}\n{err}");
    let file = dir.join("report.html");
    let left = std::fs::read_to_string(&file).expect("the search wrote no report.html");
    assert!(
        left.contains("<body data-state=\"finished\""),
        "the finished search's page still says it runs"
    );
    assert_eq!(left.matches("<tr class=\"trial").count(), 60);
    std::fs::remove_file(&file).unwrap();
    let (ok, out, err) = run(nas().arg("report").arg(&dir).arg("--html"));
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("report.html"), "{out}");
    let html = std::fs::read_to_string(&file).unwrap();
    self_contained(&html);
    assert!(html.contains("<body data-state=\"finished\""));

    let Some(bin) = chromium() else {
        return;
    };
    let started = Instant::now();
    let d = dom(&bin, &file, "#sort=trial-asc");
    let table = inside(&d, "<table id=\"trials-table\"", "</table>");
    assert!(
        table.contains("data-sortable=\"yes\""),
        "the page's script did not run"
    );
    // Every trial, in the order the address asked for (the page itself lists the
    // best first).
    let trials: Vec<usize> = table
        .split("data-trial=\"")
        .skip(1)
        .map(|t| t.split('"').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(trials, (0..60).collect::<Vec<_>>());
    let heads: Vec<&str> = table
        .split("<th ")
        .skip(1)
        .map(|t| t.split('>').nth(1).unwrap().split('<').next().unwrap())
        .collect();
    for h in [
        "trial",
        "accuracy (%)",
        "params",
        "MMACs",
        "latency (ms)",
        "arch_str",
        "architecture",
    ] {
        assert!(heads.contains(&h), "no column {h}: {heads:?}");
    }
    assert!(
        inside(table, "<th data-key=\"trial\"", "</th>").contains("aria-sort=\"ascending\""),
        "the sorted column is not marked"
    );
    // Each row holds the trial's architecture.
    let row = inside(table, "data-trial=\"7\"", "</tr>");
    assert!(row.contains("edge_3_2"), "{row}");
    // The plots, drawn.
    for id in ["best-so-far", "pareto"] {
        let fig = inside(
            &d,
            &format!("<figure class=\"plot\" id=\"{id}\""),
            "</figure>",
        );
        assert!(
            fig.contains("<svg") && fig.contains("</svg>"),
            "{id}: {fig}"
        );
    }
    assert!(inside(&d, "id=\"best-so-far\"", "</figure>").contains("class=\"best\""));
    assert!(inside(&d, "id=\"pareto\"", "</figure>").contains("class=\"front\""));
    // The best architecture: NAS-Bench-201's cell, four nodes and its six edges with
    // their ops (the edges of `none` included, drawn dashed).
    let cell = inside(&d, "<svg class=\"cell\"", "</svg>");
    assert_eq!(cell.matches("class=\"node\"").count(), 4, "{cell}");
    assert_eq!(cell.matches("class=\"edge\"").count(), 6, "{cell}");
    assert_eq!(cell.matches("class=\"op\"").count(), 6, "{cell}");

    let png = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report_html/nb201-evolution.png");
    screenshot(&bin, &file, &png, (1200, 1500));
    println!(
        "chromium checks took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// A one-shot search's page: its training curves, the mixing weights of every choice
/// over the epochs (recorded in `progress.jsonl`, one weight per candidate, each
/// choice's weights summing to 1), and the exported architecture.
#[test]
fn a_one_shot_report_shows_its_training_and_mixing_weights() {
    let dir = temp_path("report_html", "gdas");
    let (ok, out, err) = run(nas()
        .args(["--threads", "2", "search", "--space", "seed-net"])
        .args(["--strategy", "gdas", "--epochs", "2", "--limit", "6000"])
        .arg("--out")
        .arg(&dir));
    assert!(ok, "{out}\n{err}");
    let progress = std::fs::read_to_string(dir.join("progress.jsonl")).unwrap();
    let mut lines = 0;
    for l in progress.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        let mix = v["mix"]
            .as_object()
            .unwrap_or_else(|| panic!("no mix: {l}"));
        let labels: Vec<&String> = mix.keys().collect();
        assert_eq!(labels, ["conv1", "conv2", "skip"], "{l}");
        for (k, ws) in mix {
            let ws: Vec<f64> = ws
                .as_array()
                .unwrap()
                .iter()
                .map(|w| w.as_f64().unwrap())
                .collect();
            assert_eq!(ws.len(), 2, "{k}: {l}");
            // GDAS trains one path a step: the means are how often each candidate was on
            // it, so they sum to 1 (to the four decimals kept).
            let sum: f64 = ws.iter().sum();
            assert!((sum - 1.0).abs() < 2e-4, "{k}: {ws:?} sum to {sum}");
            assert!(ws.iter().all(|w| (0.0..=1.0).contains(w)), "{k}: {ws:?}");
        }
        lines += 1;
    }
    assert!(lines >= 4, "{lines} progress lines");
    let file = dir.join("report.html");
    let html = std::fs::read_to_string(&file).unwrap();
    self_contained(&html);
    assert!(html.contains("<body data-state=\"finished\""));
    // Old runs without mixing weights still report.
    let old: String = progress
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("mix");
            v.to_string() + "\n"
        })
        .collect();
    let old_dir = temp_path("report_html", "gdas-old");
    std::fs::create_dir_all(&old_dir).unwrap();
    for f in ["config.json", "journal.jsonl", "space.json"] {
        std::fs::copy(dir.join(f), old_dir.join(f)).unwrap();
    }
    std::fs::write(old_dir.join("progress.jsonl"), old).unwrap();
    let (ok, out, err) = run(nas().arg("report").arg(&old_dir).arg("--html"));
    assert!(ok, "{out}\n{err}");
    let old_html = std::fs::read_to_string(old_dir.join("report.html")).unwrap();
    assert!(old_html.contains("id=\"progress\"") && old_html.contains("Not recorded"));
    assert!(!old_html.contains("class=\"mixing\""));
    std::fs::remove_dir_all(&old_dir).ok();

    let Some(bin) = chromium() else {
        return;
    };
    let d = dom(&bin, &file, "");
    let fig = inside(&d, "<figure class=\"plot\" id=\"progress\"", "</figure>");
    assert!(fig.contains("<svg") && fig.contains("<polyline"), "{fig}");
    let mixing: Vec<&str> = d.split("<figure class=\"mixing\"").skip(1).collect();
    assert_eq!(mixing.len(), 3, "a plot per choice");
    for (m, label) in mixing.iter().zip(["conv1", "conv2", "skip"]) {
        let m = &m[..m.find("</figure>").unwrap()];
        assert!(
            m.contains(&format!("<figcaption>{label}</figcaption>")),
            "{m}"
        );
        assert_eq!(m.matches("class=\"weight\"").count(), 2, "{label}: {m}");
    }
    // The seed network's three choices as layers, in order.
    let layers = inside(&d, "<svg class=\"layers\"", "</svg>");
    assert_eq!(layers.matches("class=\"layer\"").count(), 3, "{layers}");
    assert_eq!(d.matches("<tr class=\"trial").count(), 1);
    let png = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report_html/seed-net-gdas.png");
    screenshot(&bin, &file, &png, (1200, 1500));
    std::fs::remove_dir_all(&dir).ok();
}

/// While a search runs, its page is rewritten as trials arrive and says it runs (so it
/// reloads itself); when the search ends, the page says so and stops reloading.
#[test]
fn a_running_search_keeps_its_page_up_to_date() {
    let dir = temp_path("report_html", "live");
    let mut child = nas()
        .args(["--threads", "2", "search", "--space", "seed-net"])
        .args([
            "--strategy",
            "random",
            "--evaluator",
            "train",
            "--budget",
            "3",
        ])
        .args(["--limit", "500", "--val", "500", "--out"])
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let file = dir.join("report.html");
    let mut live_rows = None;
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the search did not end");
        // The page is replaced atomically: whatever is read is a whole page.
        if let Ok(html) = std::fs::read_to_string(&file) {
            assert!(html.trim_end().ends_with("</html>"), "a page cut short");
            if live_rows.is_none() && html.contains("<body data-state=\"running\"") {
                live_rows = Some(html.matches("<tr class=\"trial").count());
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = live_rows.expect("no live page was seen while the search ran");
    assert!((1..3).contains(&rows), "{rows} rows on the live page");
    let html = std::fs::read_to_string(&file).unwrap();
    assert!(html.contains("<body data-state=\"finished\""));
    assert!(html.contains("location.reload"));
    assert_eq!(html.matches("<tr class=\"trial").count(), 3);
    std::fs::remove_dir_all(&dir).ok();
}

/// Ctrl-C during a search in this process (a multi-trial one, and a one-shot one before
/// it exported anything): it stops with exit code 130 and a word on how to resume, its
/// page says it stopped (no longer reloading as a running one), and `nas report` reports
/// the run as stopped (the one-shot one with its training so far). Before, SIGINT killed
/// the process silently, the page kept saying "running", and `nas report` of the one-shot
/// run was an error ("the run has no finished trials yet").
#[test]
fn ctrl_c_stops_a_search_and_its_page_says_so() {
    let base = temp_path("report_html", "ctrl-c");
    let multi: Vec<&str> = vec![
        "--strategy",
        "random",
        "--evaluator",
        "train",
        "--budget",
        "50",
        "--limit",
        "500",
        "--val",
        "200",
    ];
    let one_shot: Vec<&str> = vec![
        "--strategy",
        "darts",
        "--epochs",
        "20",
        "--limit",
        "4000",
        "--val",
        "256",
    ];
    for (name, args, ready) in [
        ("multi", multi, "journal.jsonl"),
        ("one-shot", one_shot, "progress.jsonl"),
    ] {
        let dir = base.join(name);
        let child = nas()
            .args(["--threads", "2", "search", "--space", "seed-net"])
            .args(&args)
            .arg("--out")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        // Until something is recorded (a trial, a progress report) and the page is live.
        let live = |d: &Path| {
            std::fs::metadata(d.join(ready)).is_ok_and(|m| m.len() > 0)
                && std::fs::read_to_string(d.join("report.html"))
                    .is_ok_and(|h| h.contains("data-state=\"running\""))
        };
        while !live(&dir) {
            assert!(Instant::now() < deadline, "{name}: nothing recorded");
            std::thread::sleep(Duration::from_millis(20));
        }
        // SAFETY: signalling a child this test started.
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        let o = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(130), "{name}: {err}");
        assert!(
            err.contains("interrupted") && err.contains("nas resume"),
            "{err}"
        );
        let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
        assert!(html.contains("<body data-state=\"stopped\""), "{name}");
        let (ok, out, err) = run(nas().arg("report").arg(&dir));
        assert!(ok, "{name}: {err}");
        assert!(out.contains("stopped before its end"), "{name}: {out}");
        if name == "one-shot" {
            assert!(out.contains("no architecture exported yet"), "{out}");
            // Where the training is, not a colon followed by nothing.
            let line = out.lines().find(|l| l.contains("training so far")).unwrap();
            assert!(
                line.contains(" report") && line.contains("the last in epoch 1, step "),
                "{out}"
            );
            assert!(dir.join("progress.svg").exists());
        }
    }
    std::fs::remove_dir_all(&base).ok();
}
