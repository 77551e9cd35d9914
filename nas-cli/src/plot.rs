//! The plots of `nas report`, as SVG text: pure functions from numbers to a document,
//! which the report writes into the run directory.
//!
//! Every plot has ticks at "nice" values (1, 2 or 5 times a power of ten) with labels and
//! light gridlines, a legend where it shows more than one series, and notes for what it
//! does not show as it is. Text is escaped, and points that are not finite are skipped,
//! so no `NaN` or `inf` reaches the document.

use std::fmt::Write as _;

/// Width of every plot.
pub const W: f64 = 720.0;
/// Margins around a panel's plotting area: tick labels and the axis label on the left,
/// the legend and notes above, the x tick labels and axis label below.
pub const LEFT: f64 = 76.0;
pub const RIGHT: f64 = 24.0;
pub const TOP: f64 = 40.0;
pub const BOTTOM: f64 = 52.0;
/// Height of the plotting area of a plot of one panel, and of the progress plot's panels.
pub const MAIN_H: f64 = 320.0;
pub const SIDE_H: f64 = 140.0;
/// Most ticks on an axis: x axes are wider than y axes are tall.
pub const X_TICKS: usize = 9;
pub const Y_TICKS: usize = 8;
/// Up to this many points a line's points are marked too.
pub const MARKED: usize = 40;

pub const PALETTE: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];
/// Height of a row of a legend that wraps.
pub const LEGEND_ROW: f64 = 16.0;
/// Height of the plotting area of a mixing-weights plot.
pub const WEIGHTS_H: f64 = 150.0;
pub const GRID: &str = "#e6e6e6";
pub const MINOR_GRID: &str = "#f3f3f3";
pub const FAINT: &str = "#8c8c8c";

/// `s` with the characters that are markup in SVG text and attributes escaped.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters are not allowed in XML 1.0 text.
            c if (c as u32) < 0x20 && c != '\t' && c != '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Ticks of an axis: their values, `step` apart, and their labels.
#[derive(Clone, Debug, PartialEq)]
pub struct Ticks {
    pub step: f64,
    pub values: Vec<f64>,
    pub labels: Vec<String>,
}

/// The 1-2-5 steps from a little below `x` upwards.
pub fn steps_from(x: f64) -> impl Iterator<Item = f64> {
    let e = (x.log10().floor() as i32).clamp(-400, 400);
    (e - 1..e + 400).flat_map(|e| [1.0, 2.0, 5.0].map(|m| m * 10f64.powi(e)))
}

/// The multiples of `step` that are ticks of `[lo, hi]`, as `(a, b)`: `k * step` for
/// `k` in `a..=b`. Inside the range, or (`loose`) from the last at most `lo` to the
/// first at least `hi`; either with a little slack for rounding.
pub fn multiples(lo: f64, hi: f64, step: f64, loose: bool) -> (i64, i64) {
    let (l, h) = (lo / step, hi / step);
    if loose {
        ((l + 1e-9).floor() as i64, (h - 1e-9).ceil() as i64)
    } else {
        ((l - 1e-9).ceil() as i64, (h + 1e-9).floor() as i64)
    }
}

/// `[lo, hi]` widened when it is a single value (or reversed), so it has ticks.
pub fn widen(lo: f64, hi: f64, integer: bool) -> (f64, f64) {
    if hi > lo {
        (lo, hi)
    } else if integer {
        (lo, lo + 1.0)
    } else {
        let d = if lo == 0.0 { 1.0 } else { lo.abs() * 0.01 };
        (lo - d, lo + d)
    }
}

/// Nice ticks for `[lo, hi]`: the smallest step of 1, 2 or 5 times a power of ten that
/// gives at most `max` ticks (a step of at least 1 when `integer`). Without `loose` the
/// ticks lie within `[lo, hi]`; with it the range is widened to the multiples of the
/// step around it, which are ticks too (the axis then starts and ends on a tick).
pub fn nice_ticks(lo: f64, hi: f64, max: usize, integer: bool, loose: bool) -> Ticks {
    let (lo, hi) = widen(lo, hi, integer);
    let span = hi - lo;
    if !(span.is_finite() && span > 0.0) {
        // Beyond what a plot of run figures meets (a span of more than 1e308): the ends.
        return Ticks {
            step: span,
            values: vec![lo, hi],
            labels: vec![short_label(lo), short_label(hi)],
        };
    }
    let max = max.max(2) as i64;
    let ok = |s: f64| {
        let (a, b) = multiples(lo, hi, s, loose);
        (1..=max).contains(&b.saturating_sub(a).saturating_add(1))
    };
    let step = steps_from(span / max as f64)
        .filter(|&s| s > 0.0 && (!integer || s >= 1.0))
        .find(|&s| ok(s))
        .unwrap_or(span);
    let (a, b) = multiples(lo, hi, step, loose);
    let values: Vec<f64> = (a..=b).map(|k| k as f64 * step).collect();
    let labels = labels(&values, step);
    Ticks {
        step,
        values,
        labels,
    }
}

/// Labels of linear ticks `step` apart: as many decimals as the step needs, and large
/// values in thousands (k), millions (M) or billions (G).
pub fn labels(values: &[f64], step: f64) -> Vec<String> {
    let big = values.iter().fold(0f64, |m, v| m.max(v.abs()));
    let (unit, suffix) = unit_of(big);
    let decimals = (-(step / unit).log10() - 1e-9).ceil().clamp(0.0, 20.0) as usize;
    values
        .iter()
        .map(|v| {
            let s = format!("{:.*}", decimals, v / unit);
            // Zero is "0" (not "-0.0" for a tick at zero up to rounding, nor "0.0M").
            if s.parse::<f64>() == Ok(0.0) {
                "0".to_string()
            } else {
                format!("{s}{suffix}")
            }
        })
        .collect()
}

pub fn unit_of(v: f64) -> (f64, &'static str) {
    if v >= 1e9 {
        (1e9, "G")
    } else if v >= 1e6 {
        (1e6, "M")
    } else if v >= 1e4 {
        (1e3, "k")
    } else {
        (1.0, "")
    }
}

/// A value to three significant digits in the fewest characters: `1e5` is `100k`,
/// `0.0001` is `0.0001`, `1.5e6` is `1.5M`.
pub fn short_label(v: f64) -> String {
    let (unit, suffix) = unit_of(v.abs());
    let x = v / unit;
    if x == 0.0 || !x.is_finite() {
        return "0".into();
    }
    let decimals = (2 - x.abs().log10().floor() as i32).clamp(0, 20) as usize;
    let s = format!("{x:.decimals$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        &s
    };
    format!("{s}{suffix}")
}

/// Whether an axis over `[lo, hi]` is better read on a log scale: the values are all
/// positive and span more than two decades.
pub fn use_log(lo: f64, hi: f64) -> bool {
    lo > 0.0 && hi.is_finite() && hi / lo > 100.0
}

/// The `p`th percentile (0 to 100) of `v`, interpolating between ranks; `None` for no
/// values. Values that are not finite are left out.
pub fn percentile(v: &[f64], p: f64) -> Option<f64> {
    let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let at = p.clamp(0.0, 100.0) / 100.0 * (v.len() - 1) as f64;
    let (i, f) = (at.floor() as usize, at.fract());
    Some(if i + 1 < v.len() {
        v[i] + f * (v[i + 1] - v[i])
    } else {
        v[i]
    })
}

/// The note a plot makes of the `n` points it drew at its bottom edge because they lie
/// below its axis, which starts at `below`; none when there are none.
pub fn clip_note(n: usize, noun: (&str, &str), below: &str) -> Option<String> {
    match n {
        0 => None,
        1 => Some(format!(
            "1 {} below {below} drawn at the bottom edge",
            noun.0
        )),
        n => Some(format!(
            "{n} {} below {below} drawn at the bottom edge",
            noun.1
        )),
    }
}

/// An axis: its range, scale, ticks (with labels) and unlabelled minor gridlines.
#[derive(Clone, Debug)]
pub struct Axis {
    pub lo: f64,
    pub hi: f64,
    pub log: bool,
    pub ticks: Vec<f64>,
    pub labels: Vec<String>,
    pub minor: Vec<f64>,
}

impl Axis {
    /// A linear axis over `[lo, hi]` (widened to ticks when `loose`).
    pub fn linear(lo: f64, hi: f64, max: usize, integer: bool, loose: bool) -> Axis {
        let t = nice_ticks(lo, hi, max, integer, loose);
        let (lo, hi) = if loose {
            (t.values[0], *t.values.last().unwrap())
        } else {
            widen(lo, hi, integer)
        };
        Axis {
            lo,
            hi,
            log: false,
            ticks: t.values,
            labels: t.labels,
            minor: vec![],
        }
    }

    /// A linear axis with nice ticks for the values in `[lo, hi]` and a little room above
    /// them, so the highest does not sit on the frame; below them too, or, with
    /// `floor_on_tick`, down to the tick at or below `lo` (a value the axis can be said
    /// to start at).
    pub fn padded(lo: f64, hi: f64, max: usize, floor_on_tick: bool) -> Axis {
        let (lo, hi) = widen(lo, hi, false);
        let step = nice_ticks(lo, hi, max, false, false).step;
        let lo = if floor_on_tick {
            (lo / step + 1e-9).floor() * step
        } else {
            lo - 0.04 * (hi - lo)
        };
        let hi = hi + 0.04 * (hi - lo);
        let (a, b) = multiples(lo, hi, step, false);
        let ticks: Vec<f64> = (a..=b).map(|k| k as f64 * step).collect();
        let labels = labels(&ticks, step);
        Axis {
            lo,
            hi,
            log: false,
            ticks,
            labels,
            minor: vec![],
        }
    }

    /// A log axis over `[lo, hi]` (both positive), with a little room on either side:
    /// ticks at the powers of ten, minor gridlines at 2 and 5 times them.
    pub fn log(lo: f64, hi: f64) -> Axis {
        let (a, b) = (lo.log10(), hi.log10());
        let pad = (b - a).max(0.1) * 0.04;
        let (a, b) = (a - pad, b + pad);
        let (mut ticks, mut minor) = (vec![], vec![]);
        for e in a.floor() as i32..=b.ceil() as i32 {
            let d = 10f64.powi(e);
            if (a..=b).contains(&(e as f64)) {
                ticks.push(d);
            }
            for m in [2.0, 5.0] {
                if (a..=b).contains(&(m * d).log10()) {
                    minor.push(m * d);
                }
            }
        }
        let labels = ticks.iter().map(|&v| short_label(v)).collect();
        Axis {
            lo: 10f64.powf(a),
            hi: 10f64.powf(b),
            log: true,
            ticks,
            labels,
            minor,
        }
    }

    /// Where `v` lies along the axis, from 0 (`lo`) to 1 (`hi`).
    fn frac(&self, v: f64) -> f64 {
        if self.log {
            (v.log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10())
        } else {
            (v - self.lo) / (self.hi - self.lo)
        }
    }

    /// Whether `v` can be placed on the axis at all.
    fn takes(&self, v: f64) -> bool {
        v.is_finite() && (!self.log || v > 0.0)
    }
}

/// The plotting area of a panel, in pixels, and its axes.
pub struct Panel {
    x0: f64,
    y0: f64,
    w: f64,
    h: f64,
    x: Axis,
    y: Axis,
}

/// A pixel position that is a number whatever the data was: no `NaN` in the document.
pub fn finite(px: f64) -> f64 {
    if px.is_finite() {
        px.clamp(-1e5, 1e5)
    } else {
        0.0
    }
}

impl Panel {
    fn px(&self, v: f64) -> f64 {
        finite(self.x0 + self.x.frac(v) * self.w)
    }
    fn py(&self, v: f64) -> f64 {
        finite(self.y0 + self.h - self.y.frac(v) * self.h)
    }
    fn bottom(&self) -> f64 {
        self.y0 + self.h
    }
    fn right(&self) -> f64 {
        self.x0 + self.w
    }
}

pub fn header(s: &mut String, h: f64) {
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{h}\" \
         viewBox=\"0 0 {W} {h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>"
    );
}

/// Gridlines, ticks and their labels, the frame and the axis labels of a panel, and a
/// clip path (`clip{id}`) for what is drawn in it. The x tick labels and label are left
/// out when `x_label` is `None` (a panel above another that has them).
pub fn axes(s: &mut String, p: &Panel, id: usize, x_label: Option<&str>, y_label: &str) {
    let _ = writeln!(
        s,
        "<clipPath id=\"clip{id}\"><rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\"/></clipPath>",
        p.x0 - 4.0,
        p.y0 - 4.0,
        p.w + 8.0,
        p.h + 8.0
    );
    s.push_str("<g stroke-width=\"1\">\n");
    for &v in &p.x.minor {
        let x = p.px(v);
        let _ = writeln!(
            s,
            "<line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"{MINOR_GRID}\"/>",
            p.y0,
            p.bottom()
        );
    }
    for &v in &p.x.ticks {
        let x = p.px(v);
        let _ = writeln!(
            s,
            "<line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"{GRID}\"/>",
            p.y0,
            p.bottom()
        );
    }
    for &v in &p.y.ticks {
        let y = p.py(v);
        let _ = writeln!(
            s,
            "<line x1=\"{:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"{GRID}\"/>",
            p.x0,
            p.right()
        );
    }
    s.push_str("</g>\n");
    let _ = writeln!(
        s,
        "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"none\" stroke=\"#444\"/>",
        p.x0, p.y0, p.w, p.h
    );
    s.push_str("<g fill=\"#333\">\n");
    for (&v, l) in p.y.ticks.iter().zip(&p.y.labels) {
        let y = p.py(v);
        let _ = writeln!(
            s,
            "<line x1=\"{:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#444\"/>\n\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            p.x0 - 4.0,
            p.x0,
            p.x0 - 7.0,
            y + 4.0,
            escape(l)
        );
    }
    for &v in &p.x.ticks {
        let x = p.px(v);
        let _ = writeln!(
            s,
            "<line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#444\"/>",
            p.bottom(),
            p.bottom() + 4.0
        );
    }
    if let Some(x_label) = x_label {
        for (&v, l) in p.x.ticks.iter().zip(&p.x.labels) {
            let _ = writeln!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                p.px(v),
                p.bottom() + 18.0,
                escape(l)
            );
        }
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"13\">{}</text>",
            p.x0 + p.w / 2.0,
            p.bottom() + 40.0,
            escape(x_label)
        );
    }
    let (lx, ly) = (18.0, p.y0 + p.h / 2.0);
    let _ = writeln!(
        s,
        "<text x=\"{lx}\" y=\"{ly:.1}\" transform=\"rotate(-90 {lx} {ly:.1})\" \
         text-anchor=\"middle\" font-size=\"13\">{}</text>",
        escape(y_label)
    );
    s.push_str("</g>\n");
}

/// How a legend shows a series.
pub enum Key<'a> {
    Line(&'a str),
    Dot(&'a str, f64),
}

/// Text is about 6.5 px a character at the legend's size: an entry's width.
pub fn legend_width(label: &str) -> f64 {
    24.0 + 6.5 * label.chars().count() as f64 + 18.0
}

/// The rows a legend of `entries` takes above a panel of width `w`: as many entries a
/// row as fit.
pub fn legend_rows(w: f64, entries: &[&str]) -> usize {
    let (mut rows, mut x) = (1, 0.0);
    for label in entries {
        let lw = legend_width(label);
        if x > 0.0 && x + lw - 18.0 > w {
            rows += 1;
            x = 0.0;
        }
        x += lw;
    }
    rows
}

/// A legend above the panel, from its left edge, in rows of [`LEGEND_ROW`] pixels that
/// end just above it (one row unless the entries do not fit in one).
pub fn legend(s: &mut String, p: &Panel, entries: &[(Key, &str)]) {
    let labels: Vec<&str> = entries.iter().map(|e| e.1).collect();
    let mut y = p.y0 - 14.0 - LEGEND_ROW * (legend_rows(p.w, &labels) - 1) as f64;
    let mut x = p.x0;
    s.push_str("<g class=\"legend\">\n");
    for (key, label) in entries {
        if x > p.x0 && x + legend_width(label) - 18.0 > p.right() {
            x = p.x0;
            y += LEGEND_ROW;
        }
        match key {
            Key::Line(c) => {
                let _ = writeln!(
                    s,
                    "<line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"{c}\" stroke-width=\"2\"/>",
                    y - 4.0,
                    x + 18.0,
                    y - 4.0
                );
            }
            Key::Dot(c, opacity) => {
                let _ = writeln!(
                    s,
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3.5\" fill=\"{c}\" fill-opacity=\"{opacity}\"/>",
                    x + 9.0,
                    y - 4.0
                );
            }
        }
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{y:.1}\">{}</text>",
            x + 24.0,
            escape(label)
        );
        x += legend_width(label);
    }
    s.push_str("</g>\n");
}

/// A small note above the panel, at its right edge.
pub fn note(s: &mut String, p: &Panel, text: &str) {
    let _ = writeln!(
        s,
        "<text class=\"note\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" font-size=\"11\" fill=\"#666\">{}</text>",
        p.right(),
        p.y0 - 14.0,
        escape(text)
    );
}

/// A downward triangle at the bottom edge of the panel at `x`: a point below the axis.
pub fn clipped_marker(s: &mut String, p: &Panel, x: f64, fill: &str) {
    let (x, y) = (p.px(x), p.bottom() - 1.0);
    let _ = writeln!(
        s,
        "<path d=\"M{:.1},{:.1} L{:.1},{:.1} L{x:.1},{y:.1} Z\" fill=\"{fill}\" fill-opacity=\"0.7\"/>",
        x - 4.0,
        y - 7.0,
        x + 4.0,
        y - 7.0
    );
}

/// A step line through `pts` (in data units, sorted by x): from each point, across to
/// the next one's x and then up or down to it; then across to `end_x`, if given.
pub fn step_path(p: &Panel, pts: &[(f64, f64)], end_x: Option<f64>) -> String {
    let mut d = String::new();
    let mut last_y = f64::NAN;
    for (i, &(x, y)) in pts.iter().enumerate() {
        if i == 0 {
            let _ = write!(d, "M{:.1},{:.1}", p.px(x), p.py(y));
        } else {
            let _ = write!(d, " H{:.1}", p.px(x));
            if y != last_y {
                let _ = write!(d, " V{:.1}", p.py(y));
            }
        }
        last_y = y;
    }
    if let (Some(e), false) = (end_x, pts.is_empty()) {
        let _ = write!(d, " H{:.1}", p.px(e));
    }
    d
}

/// The best-so-far plot of a search: each of `trials` (the trial's number in the
/// journal, and its accuracy in percent) as a faint dot, and the best accuracy so far as
/// a step line from the first trial with an accuracy to trial `last`. The y axis starts
/// at the lower of the first accuracy and the 5th percentile of the accuracies, so a few
/// trials at chance do not flatten the curve; those below it are drawn at the bottom
/// edge and a note says how many.
pub fn best_so_far(trials: &[(usize, f64)], last: usize) -> String {
    let pts: Vec<(f64, f64)> = trials
        .iter()
        .filter(|(_, a)| a.is_finite())
        .map(|&(t, a)| (t as f64, a))
        .collect();
    let accs: Vec<f64> = pts.iter().map(|p| p.1).collect();
    let mut best = vec![];
    let mut m = f64::NEG_INFINITY;
    for &(t, a) in &pts {
        if a > m {
            m = a;
            best.push((t, a));
        }
    }
    let (lo, hi) = match (pts.first(), percentile(&accs, 5.0)) {
        (Some(first), Some(p5)) => (first.1.min(p5), m),
        _ => (0.0, 100.0),
    };
    let last = last.max(pts.iter().fold(0, |l, p| l.max(p.0 as usize)));
    let p = Panel {
        x0: LEFT,
        y0: TOP,
        w: W - LEFT - RIGHT,
        h: MAIN_H,
        x: Axis::linear(0.0, last as f64, X_TICKS, true, false),
        y: Axis::padded(lo, hi, Y_TICKS, true),
    };
    let mut s = String::new();
    header(&mut s, TOP + MAIN_H + BOTTOM);
    axes(&mut s, &p, 0, Some("trial"), "best accuracy so far (%)");
    let mut below = 0;
    s.push_str("<g clip-path=\"url(#clip0)\">\n");
    for &(t, a) in &pts {
        if a < p.y.lo {
            below += 1;
            clipped_marker(&mut s, &p, t, FAINT);
        } else {
            let _ = writeln!(
                s,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\" fill=\"{FAINT}\" fill-opacity=\"0.45\"/>",
                p.px(t),
                p.py(a)
            );
        }
    }
    if !best.is_empty() {
        let _ = writeln!(
            s,
            "<path class=\"best\" d=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"/>",
            step_path(&p, &best, Some(last as f64)),
            PALETTE[0]
        );
    }
    s.push_str("</g>\n");
    legend(
        &mut s,
        &p,
        &[
            (Key::Line(PALETTE[0]), "best so far"),
            (Key::Dot(FAINT, 0.6), "accuracy of each trial"),
        ],
    );
    let clipped = clip_note(
        below,
        ("trial", "trials"),
        &format!("{}%", axis_value(&p.y, p.y.lo)),
    );
    if pts.is_empty() {
        note(&mut s, &p, "no trial has an accuracy to plot");
    } else if let Some(n) = clipped {
        note(&mut s, &p, &n);
    }
    s + "</svg>\n"
}

/// `v`, a value at one of the axis's ticks, as the axis labels it.
pub fn axis_value(a: &Axis, v: f64) -> String {
    a.ticks
        .iter()
        .zip(&a.labels)
        .find(|(t, _)| (**t - v).abs() <= 1e-9 * v.abs().max(1.0))
        .map(|(_, l)| l.clone())
        .unwrap_or_else(|| short_label(v))
}

/// The Pareto plot of a multi-objective search: each architecture's `(cost, accuracy in
/// percent, on the front)`, the front's points joined by its staircase (the best
/// accuracy found at each cost), against `cost_label`. The cost axis is logarithmic when
/// the costs span more than two decades; the accuracy axis starts as the best-so-far
/// plot's does, low enough for the whole front.
pub fn pareto(points: &[(f64, f64, bool)], cost_label: &str) -> String {
    let pts: Vec<(f64, f64, bool)> = points
        .iter()
        .copied()
        .filter(|(c, a, _)| c.is_finite() && a.is_finite())
        .collect();
    let range = |f: &dyn Fn(&(f64, f64, bool)) -> f64, only_front: bool| {
        pts.iter()
            .filter(|p| p.2 || !only_front)
            .map(f)
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
                (l.min(v), h.max(v))
            })
    };
    let (c_lo, c_hi) = range(&|p| p.0, false);
    let (front_lo, _) = range(&|p| p.1, true);
    let (_, a_hi) = range(&|p| p.1, false);
    let accs: Vec<f64> = pts.iter().map(|p| p.1).collect();
    let a_lo = front_lo.min(percentile(&accs, 5.0).unwrap_or(f64::INFINITY));
    let log = use_log(c_lo, c_hi);
    let x = if pts.is_empty() {
        Axis::linear(0.0, 1.0, X_TICKS, false, true)
    } else if log {
        Axis::log(c_lo, c_hi)
    } else {
        Axis::padded(c_lo, c_hi, X_TICKS, false)
    };
    let y = if pts.is_empty() {
        Axis::linear(0.0, 100.0, Y_TICKS, false, true)
    } else {
        Axis::padded(a_lo, a_hi, Y_TICKS, true)
    };
    let p = Panel {
        x0: LEFT,
        y0: TOP,
        w: W - LEFT - RIGHT,
        h: MAIN_H,
        x,
        y,
    };
    let x_label = if log {
        format!("{cost_label} (log)")
    } else {
        cost_label.to_string()
    };
    let mut s = String::new();
    header(&mut s, TOP + MAIN_H + BOTTOM);
    axes(&mut s, &p, 0, Some(&x_label), "accuracy (%)");
    s.push_str("<g clip-path=\"url(#clip0)\">\n");
    let mut below = 0;
    for &(c, a, _) in pts.iter().filter(|p| !p.2) {
        if !p.x.takes(c) {
            continue;
        }
        if a < p.y.lo {
            below += 1;
            clipped_marker(&mut s, &p, c, FAINT);
        } else {
            let _ = writeln!(
                s,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{FAINT}\" fill-opacity=\"0.55\"/>",
                p.px(c),
                p.py(a)
            );
        }
    }
    let mut front: Vec<(f64, f64)> = pts
        .iter()
        .filter(|q| q.2 && p.x.takes(q.0))
        .map(|q| (q.0, q.1))
        .collect();
    front.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    if !front.is_empty() {
        let _ = writeln!(
            s,
            "<path class=\"front\" d=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\"/>",
            step_path(&p, &front, None),
            PALETTE[1]
        );
    }
    for &(c, a) in &front {
        let _ = writeln!(
            s,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"{}\" stroke=\"white\" stroke-width=\"1\"/>",
            p.px(c),
            p.py(a),
            PALETTE[1]
        );
    }
    s.push_str("</g>\n");
    legend(
        &mut s,
        &p,
        &[
            (Key::Dot(PALETTE[1], 1.0), "Pareto front"),
            (Key::Dot(FAINT, 0.6), "other architectures"),
        ],
    );
    if let Some(n) = clip_note(
        below,
        ("architecture", "architectures"),
        &format!("{}%", axis_value(&p.y, p.y.lo)),
    ) {
        note(&mut s, &p, &n);
    }
    s + "</svg>\n"
}

/// One named series of a line plot.
#[derive(Clone, Debug, Default)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// The progress plot of a one-shot search: its figures against `x_label` (epochs), the
/// losses together in the top panel and every other figure in a panel of its own below
/// (they have scales of their own); `footnote`, if any, above the top panel.
pub fn progress(series: &[Series], x_label: &str, footnote: Option<&str>) -> String {
    let series: Vec<Series> = series
        .iter()
        .map(|s| Series {
            name: s.name.clone(),
            points: s
                .points
                .iter()
                .copied()
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .collect(),
        })
        .filter(|s| !s.points.is_empty())
        .collect();
    let (losses, others): (Vec<&Series>, Vec<&Series>) =
        series.iter().partition(|s| s.name.ends_with("loss"));
    let mut panels: Vec<(Vec<&Series>, String)> = vec![];
    if !losses.is_empty() {
        panels.push((losses, "loss".into()));
    }
    for o in others {
        panels.push((vec![o], o.name.clone()));
    }
    let x_hi = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .fold(0f64, f64::max);
    let x_lo = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .fold(0f64, f64::min);
    let x = Axis::linear(x_lo, x_hi, X_TICKS, false, false);
    let heights: Vec<f64> = (0..panels.len().max(1))
        .map(|i| if i == 0 { MAIN_H } else { SIDE_H })
        .collect();
    let total = heights.iter().map(|h| TOP + h).sum::<f64>() + BOTTOM;
    let mut s = String::new();
    header(&mut s, total);
    if panels.is_empty() {
        let p = Panel {
            x0: LEFT,
            y0: TOP,
            w: W - LEFT - RIGHT,
            h: MAIN_H,
            x,
            y: Axis::linear(0.0, 1.0, Y_TICKS, false, true),
        };
        axes(&mut s, &p, 0, Some(x_label), "");
        note(&mut s, &p, "the search recorded no figures");
        return s + "</svg>\n";
    }
    let mut y0 = TOP;
    let mut color = 0;
    let n = panels.len();
    for (i, (members, y_label)) in panels.iter().enumerate() {
        let (lo, hi) = members
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
                (l.min(v), h.max(v))
            });
        let h = heights[i];
        let ticks = if i == 0 { Y_TICKS } else { 4 };
        let p = Panel {
            x0: LEFT,
            y0,
            w: W - LEFT - RIGHT,
            h,
            x: x.clone(),
            y: Axis::padded(lo, hi, ticks, false),
        };
        // A panel of one series is labelled with its name; of several, with a legend.
        let y_label = match members.as_slice() {
            [one] => one.name.as_str(),
            _ => y_label.as_str(),
        };
        axes(&mut s, &p, i, (i + 1 == n).then_some(x_label), y_label);
        let mut keys = vec![];
        let _ = writeln!(s, "<g clip-path=\"url(#clip{i})\">");
        for m in members {
            let c = PALETTE[color % PALETTE.len()];
            color += 1;
            let pts: Vec<String> = m
                .points
                .iter()
                .map(|&(x, y)| format!("{:.1},{:.1}", p.px(x), p.py(y)))
                .collect();
            let _ = writeln!(
                s,
                "<polyline fill=\"none\" stroke=\"{c}\" stroke-width=\"2\" points=\"{}\"/>",
                pts.join(" ")
            );
            if m.points.len() <= MARKED {
                for &(x, y) in &m.points {
                    let _ = writeln!(
                        s,
                        "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{c}\"/>",
                        p.px(x),
                        p.py(y)
                    );
                }
            }
            keys.push((Key::Line(c), m.name.as_str()));
        }
        s.push_str("</g>\n");
        if keys.len() > 1 {
            legend(&mut s, &p, &keys);
        }
        if let (0, Some(f)) = (i, footnote) {
            note(&mut s, &p, f);
        }
        y0 += h + TOP;
    }
    s + "</svg>\n"
}

/// The colour of the `i`th series (candidates, ops): the plots' palette, repeating.
pub fn color(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

/// The mixing weights of one choice over a one-shot search: a line per candidate (in
/// [`color`] order, with a legend) against `x_label` (epochs), on a fixed axis from 0 to
/// 1 so the plots of several choices compare at a glance; `y_label` names the choice.
pub fn weights(series: &[Series], x_label: &str, y_label: &str) -> String {
    let points = |s: &Series| -> Vec<(f64, f64)> {
        s.points
            .iter()
            .copied()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .collect()
    };
    let (x_lo, x_hi) = series
        .iter()
        .flat_map(|s| points(s).into_iter().map(|p| p.0))
        .fold((0f64, 0f64), |(l, h), x| (l.min(x), h.max(x)));
    let labels: Vec<&str> = series.iter().map(|s| s.name.as_str()).collect();
    let w = W - LEFT - RIGHT;
    let top = TOP + LEGEND_ROW * (legend_rows(w, &labels) - 1) as f64;
    let p = Panel {
        x0: LEFT,
        y0: top,
        w,
        h: WEIGHTS_H,
        x: Axis::linear(x_lo, x_hi, X_TICKS, false, false),
        y: Axis::linear(0.0, 1.0, 5, false, false),
    };
    let mut s = String::new();
    header(&mut s, top + WEIGHTS_H + BOTTOM);
    axes(&mut s, &p, 0, Some(x_label), y_label);
    let mut keys = vec![];
    s.push_str("<g clip-path=\"url(#clip0)\">\n");
    for (i, m) in series.iter().enumerate() {
        let c = color(i);
        let pts: Vec<String> = points(m)
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", p.px(x), p.py(y)))
            .collect();
        let _ = writeln!(
            s,
            "<polyline class=\"weight\" fill=\"none\" stroke=\"{c}\" stroke-width=\"2\" points=\"{}\"/>",
            pts.join(" ")
        );
        keys.push((Key::Line(c), m.name.as_str()));
    }
    s.push_str("</g>\n");
    legend(&mut s, &p, &keys);
    s + "</svg>\n"
}
