//! An architecture drawn as SVG for the HTML report: every cell of the space as a DAG
//! (nodes on a line, each chosen edge an arc labelled with its op) and the rest as a chain
//! of layers (a box per block of choices, skip connections as arcs beside them).
//!
//! A cell is found by its labels, as the built-in spaces and space files name them:
//! layer choices `[prefix/]edge_{to}_{from}` (NAS-Bench-201) or `[prefix/]op_{to}_{from}`
//! (DARTS), where an input choice whose candidates are edges ([`Choice::edge_ops`]) keeps
//! only the edges it picked and the cell outputs the concatenation of its intermediate
//! nodes. A chain's skip is a value choice `layer{i}/skip{k}` set to 1: layer `i` also
//! reads layer `k`.

use crate::plot::{color, escape};
use nas_core::space::{arch::as_indices, Architecture, Choice, ChoiceKind};
use serde_json::Value;
use std::fmt::Write as _;

/// One drawing: what it shows (a cell's prefix, or "layers") and its SVG.
pub struct Drawing {
    pub title: String,
    pub svg: String,
}

/// Pixels between nodes of a cell, the radius of a node, and the height of an arc over
/// one node and of each node more.
pub const NODE_GAP: f64 = 160.0;
pub const NODE_R: f64 = 16.0;
pub const ARC_H: f64 = 34.0;
pub const ARC_STEP: f64 = 32.0;
/// A layer's box: width, title line and the lines below it.
pub const BOX_W: f64 = 300.0;
pub const LINE_H: f64 = 16.0;
pub const BOX_GAP: f64 = 26.0;

/// The drawings of `arch` in the space of `choices`: its cells, then its other choices
/// as layers. Choices the architecture does not hold (inside a repeat it did not build)
/// are left out.
pub fn draw(choices: &[Choice], arch: &Architecture) -> Vec<Drawing> {
    let mut cells: Vec<Cell> = vec![];
    let mut rest: Vec<&Choice> = vec![];
    for c in choices {
        let Some(v) = arch.get(&c.label) else {
            continue;
        };
        let (prefix, name) = split_label(&c.label);
        let at = |cells: &mut Vec<Cell>| match cells.iter().position(|x| x.prefix == prefix) {
            Some(i) => i,
            None => {
                cells.push(Cell {
                    prefix: prefix.to_string(),
                    edges: vec![],
                    picks: vec![],
                });
                cells.len() - 1
            }
        };
        match (&c.kind, cell_edge(name)) {
            (ChoiceKind::Layer { candidates }, Some((to, from))) => {
                let op = v.as_str().unwrap_or_default().to_string();
                let i = at(&mut cells);
                cells[i].edges.push(CellEdge {
                    label: c.label.clone(),
                    from,
                    to,
                    color: candidates.iter().position(|x| *x == op).unwrap_or(0),
                    op,
                });
            }
            (ChoiceKind::Input { .. }, _) if !c.edge_ops.is_empty() => {
                let i = at(&mut cells);
                let picked = as_indices(v).unwrap_or_default();
                cells[i].picks.push((
                    c.edge_ops.clone(),
                    picked
                        .iter()
                        .filter_map(|&k| c.edge_ops.get(k).cloned())
                        .collect(),
                ));
            }
            _ => rest.push(c),
        }
    }
    let mut out: Vec<Drawing> = cells
        .iter()
        .filter(|c| !c.edges.is_empty())
        .map(|c| Drawing {
            title: if c.prefix.is_empty() {
                "cell".into()
            } else {
                format!("cell {}", c.prefix)
            },
            svg: draw_cell(c),
        })
        .collect();
    // An input choice over edges whose ops are not a cell's (a space file's own
    // labels) is drawn as a layer.
    for c in choices {
        if !c.edge_ops.is_empty()
            && arch.contains_key(&c.label)
            && !cells
                .iter()
                .any(|x| x.prefix == split_label(&c.label).0 && !x.edges.is_empty())
        {
            rest.push(c);
        }
    }
    rest.sort_by_key(|c| choices.iter().position(|x| x.label == c.label));
    if !rest.is_empty() {
        out.push(Drawing {
            title: "layers".into(),
            svg: draw_layers(&rest, arch),
        });
    }
    out
}

/// `prefix/name` split at its last `/` (`""` when there is none).
pub fn split_label(label: &str) -> (&str, &str) {
    match label.rsplit_once('/') {
        Some((p, n)) => (p, n),
        None => ("", label),
    }
}

/// `(to, from)` of an edge choice's name: `edge_3_1` or `op_3_1`, from an earlier node.
pub fn cell_edge(name: &str) -> Option<(usize, usize)> {
    let rest = name
        .strip_prefix("edge_")
        .or_else(|| name.strip_prefix("op_"))?;
    let (to, from) = rest.split_once('_')?;
    let (to, from) = (to.parse().ok()?, from.parse().ok()?);
    (from < to).then_some((to, from))
}

pub struct CellEdge {
    label: String,
    from: usize,
    to: usize,
    op: String,
    /// The op's place among its choice's candidates: its colour.
    color: usize,
}

pub struct Cell {
    prefix: String,
    edges: Vec<CellEdge>,
    /// Each edge input choice: the labels of its candidate edges, and of those picked.
    picks: Vec<(Vec<String>, Vec<String>)>,
}

/// A cell: its nodes on a line (inputs grey, the output last), an arc over them for each
/// edge it computes, with the op's name at the top of the arc.
pub fn draw_cell(c: &Cell) -> String {
    // Edges an input choice could pick but did not are not in the network.
    let kept: Vec<&CellEdge> = c
        .edges
        .iter()
        .filter(|e| {
            c.picks
                .iter()
                .all(|(all, picked)| !all.contains(&e.label) || picked.contains(&e.label))
        })
        .collect();
    let last = c.edges.iter().map(|e| e.to).max().unwrap_or(0);
    let inputs = c.edges.iter().map(|e| e.to).min().unwrap_or(1);
    // A DARTS-style cell (edges picked by input choices) concatenates its intermediate
    // nodes into an output node of its own; otherwise its last node is the output.
    let concat = !c.picks.is_empty();
    let nodes = if concat { last + 2 } else { last + 1 };
    let mut arcs: Vec<(usize, usize, Option<&CellEdge>)> =
        kept.iter().map(|e| (e.from, e.to, Some(*e))).collect();
    if concat {
        arcs.extend((inputs..=last).map(|n| (n, last + 1, None)));
    }
    let tallest = arcs.iter().map(|a| a.1 - a.0).max().unwrap_or(1);
    let arc_h = |span: usize| ARC_H + ARC_STEP * (span - 1) as f64;
    let (left, top) = (50.0, 24.0 + arc_h(tallest));
    let w = left * 2.0 + NODE_GAP * (nodes - 1) as f64;
    let h = top + NODE_R + 34.0;
    let node_x = |n: usize| left + NODE_GAP * n as f64;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg class=\"cell\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{w:.0}\" height=\"{h:.0}\" \
         viewBox=\"0 0 {w:.0} {h:.0}\" font-family=\"sans-serif\" font-size=\"13\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>"
    );
    // Longer arcs first, so the labels of shorter ones sit on top of them.
    arcs.sort_by_key(|a| std::cmp::Reverse(a.1 - a.0));
    let y = top - NODE_R;
    for &(from, to, edge) in &arcs {
        let (x1, x2) = (node_x(from), node_x(to));
        let k = arc_h(to - from) * 4.0 / 3.0; // a cubic's controls at 4/3 its apex
        let (stroke, dash, op) = match edge {
            Some(e) if e.op == "none" => ("#b0b0b0", " stroke-dasharray=\"4 3\"", e.op.as_str()),
            Some(e) => (color(e.color), "", e.op.as_str()),
            None => ("#8c8c8c", " stroke-dasharray=\"2 2\"", ""),
        };
        let _ = writeln!(
            s,
            "<path class=\"edge\" d=\"M{:.1},{y:.1} C{:.1},{:.1} {:.1},{:.1} {:.1},{y:.1}\" fill=\"none\" \
             stroke=\"{stroke}\" stroke-width=\"2\"{dash}/>\n\
             <path d=\"M{:.1},{:.1} L{:.1},{:.1} L{x2:.1},{y:.1} Z\" fill=\"{stroke}\"/>",
            x1 + 4.0,
            x1 + 4.0,
            y - k,
            x2 - 4.0,
            y - k,
            x2 - 4.0,
            x2 - 8.0,
            y - 9.0,
            x2,
            y - 9.0,
        );
        if !op.is_empty() {
            let _ = writeln!(
                s,
                "<text class=\"op\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"{stroke}\" \
                 stroke=\"white\" stroke-width=\"4\" paint-order=\"stroke\">{}</text>",
                (x1 + x2) / 2.0,
                y - arc_h(to - from) + 4.0,
                escape(op)
            );
        }
    }
    for n in 0..nodes {
        let x = node_x(n);
        let (fill, caption) = if n < inputs {
            ("#e6e6e6", "input")
        } else if n + 1 == nodes {
            ("#fde6b0", if concat { "concat" } else { "output" })
        } else {
            ("white", "")
        };
        let name = if concat && n + 1 == nodes {
            "out".to_string()
        } else {
            n.to_string()
        };
        let _ = writeln!(
            s,
            "<circle class=\"node\" cx=\"{x:.1}\" cy=\"{top:.1}\" r=\"{NODE_R}\" fill=\"{fill}\" stroke=\"#444\"/>\n\
             <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{name}</text>",
            top + 4.0
        );
        if !caption.is_empty() {
            let _ = writeln!(
                s,
                "<text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"11\" fill=\"#666\">{caption}</text>",
                top + NODE_R + 16.0
            );
        }
    }
    s + "</svg>\n"
}

/// A decision as a short text: a name or number as it is, anything else as JSON.
pub fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        v => v.to_string(),
    }
}

/// The layer index of a prefix `layer{i}` (or any name ending in digits), and its stem.
pub fn numbered(prefix: &str) -> Option<(&str, usize)> {
    let stem = prefix.trim_end_matches(|c: char| c.is_ascii_digit());
    let n = prefix[stem.len()..].parse().ok()?;
    Some((stem, n))
}

/// The choices that are not a cell's as a chain of layers, top to bottom: one box per
/// prefix (a choice without one is a box of its own), holding its decisions; a repeat's
/// depth above them; a skip `skip{k}` = 1 as an arc from layer `k` on the right.
pub fn draw_layers(choices: &[&Choice], arch: &Architecture) -> String {
    let mut header: Vec<String> = vec![];
    let mut boxes: Vec<(String, Vec<String>)> = vec![];
    let mut skips: Vec<(String, usize)> = vec![];
    for c in choices {
        let v = &arch[&c.label];
        if matches!(c.kind, ChoiceKind::Repeat { .. }) {
            header.push(format!("{} = {}", c.label, show(v)));
            continue;
        }
        let (prefix, name) = split_label(&c.label);
        let skip_from = name
            .strip_prefix("skip")
            .and_then(|k| k.parse::<usize>().ok());
        if let (Some(k), false) = (skip_from, prefix.is_empty()) {
            if v.as_f64() == Some(1.0) || v.as_bool() == Some(true) {
                skips.push((prefix.to_string(), k));
            }
            if boxes.iter().all(|b| b.0 != prefix) {
                boxes.push((prefix.to_string(), vec![]));
            }
            continue;
        }
        if prefix.is_empty() {
            boxes.push((c.label.clone(), vec![show(v)]));
            continue;
        }
        let line = format!("{name}: {}", show(v));
        match boxes.iter_mut().find(|b| b.0 == prefix) {
            Some(b) => b.1.push(line),
            None => boxes.push((prefix.to_string(), vec![line])),
        }
    }
    // Each skip as (from box, to box); one whose source is not drawn stays a line of text.
    let mut arcs = vec![];
    for (to, k) in &skips {
        let ti = boxes.iter().position(|b| &b.0 == to).unwrap_or(0);
        let from = numbered(to).map(|(stem, _)| format!("{stem}{k}"));
        match from.and_then(|f| boxes.iter().position(|b| b.0 == f)) {
            Some(fi) => arcs.push((fi, ti)),
            None => boxes[ti].1.push(format!("skip{k}: 1")),
        }
    }
    let box_h = |b: &(String, Vec<String>)| 10.0 + LINE_H * (1 + b.1.len()) as f64;
    let widest_arc = arcs.iter().map(|a| a.1 - a.0).max().unwrap_or(0) as f64;
    let left = 20.0;
    let w = left + BOX_W + 40.0 + 14.0 * widest_arc + 20.0;
    let mut y = 12.0 + LINE_H * header.len() as f64;
    let mut s = String::new();
    let mut body = String::new();
    for line in &header {
        let _ = writeln!(
            body,
            "<text x=\"{left}\" y=\"{:.1}\" fill=\"#444\">{}</text>",
            y - 2.0,
            escape(line)
        );
    }
    y += 18.0;
    let _ = writeln!(
        body,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"11\" fill=\"#666\">input</text>",
        left + BOX_W / 2.0,
        y - 6.0
    );
    let mut mids = vec![];
    for (i, b) in boxes.iter().enumerate() {
        let h = box_h(b);
        let _ = writeln!(
            body,
            "<rect class=\"layer\" x=\"{left}\" y=\"{y:.1}\" width=\"{BOX_W}\" height=\"{h:.1}\" rx=\"5\" \
             fill=\"#f4f7fb\" stroke=\"#444\"/>\n\
             <text x=\"{:.1}\" y=\"{:.1}\" font-weight=\"bold\">{}</text>",
            left + 10.0,
            y + LINE_H,
            escape(&b.0)
        );
        for (k, line) in b.1.iter().enumerate() {
            let _ = writeln!(
                body,
                "<text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                left + 18.0,
                y + LINE_H * (k + 2) as f64,
                escape(line)
            );
        }
        mids.push(y + h / 2.0);
        y += h;
        // The arrow to the next box (or the output).
        let cx = left + BOX_W / 2.0;
        let _ = writeln!(
            body,
            "<line x1=\"{cx:.1}\" y1=\"{y:.1}\" x2=\"{cx:.1}\" y2=\"{:.1}\" stroke=\"#444\"/>\n\
             <path d=\"M{:.1},{:.1} L{:.1},{:.1} L{cx:.1},{:.1} Z\" fill=\"#444\"/>",
            y + BOX_GAP - 1.0,
            cx - 4.0,
            y + BOX_GAP - 8.0,
            cx + 4.0,
            y + BOX_GAP - 8.0,
            y + BOX_GAP - 1.0
        );
        y += BOX_GAP;
        if i + 1 == boxes.len() {
            let _ = writeln!(
                body,
                "<text x=\"{cx:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"11\" fill=\"#666\">output</text>",
                y + 10.0
            );
        }
    }
    let right = left + BOX_W;
    for (from, to) in &arcs {
        let bulge = 24.0 + 14.0 * (to - from) as f64;
        let (y1, y2) = (mids[*from], mids[*to]);
        let _ = writeln!(
            body,
            "<path class=\"skip\" d=\"M{right:.1},{y1:.1} C{:.1},{y1:.1} {:.1},{y2:.1} {:.1},{y2:.1}\" \
             fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\"/>\n\
             <path d=\"M{right:.1},{y2:.1} L{:.1},{:.1} L{:.1},{:.1} Z\" fill=\"{}\"/>",
            right + bulge,
            right + bulge,
            right + 2.0,
            color(1),
            right + 8.0,
            y2 - 4.0,
            right + 8.0,
            y2 + 4.0,
            color(1)
        );
    }
    let h = y + 18.0;
    let _ = writeln!(
        s,
        "<svg class=\"layers\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{w:.0}\" height=\"{h:.0}\" \
         viewBox=\"0 0 {w:.0} {h:.0}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>"
    );
    s + &body + "</svg>\n"
}
