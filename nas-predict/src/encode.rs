//! Encodings of an architecture (its decision vector) for predictors: fixed-length
//! vectors ([`OneHot`], [`PathEncoding`]) and token sequences ([`Tokens`]).

use nas_strategies::{decisions, Choice, ChoiceKind};
use std::collections::HashMap;
use std::ops::Range;

/// A fixed-length vector for every decision vector of one space.
pub trait Encoding {
    fn dim(&self) -> usize;
    fn encode(&self, decisions: &[usize]) -> Vec<f32>;
    /// Every row of `rows` encoded.
    fn encode_all(&self, rows: &[Vec<usize>]) -> Vec<Vec<f32>> {
        rows.iter().map(|d| self.encode(d)).collect()
    }
}

/// The option of every active choice, one-hot; an inactive (repeat-scoped) choice is all
/// zeros.
pub struct OneHot {
    space: Vec<Choice>,
    offsets: Vec<usize>,
    dim: usize,
}

impl OneHot {
    pub fn new(space: &[Choice]) -> OneHot {
        let mut offsets = Vec::with_capacity(space.len());
        let mut dim = 0;
        for c in space {
            offsets.push(dim);
            dim += c.size();
        }
        OneHot {
            space: space.to_vec(),
            offsets,
            dim,
        }
    }
}

impl Encoding for OneHot {
    fn dim(&self) -> usize {
        self.dim
    }
    fn encode(&self, d: &[usize]) -> Vec<f32> {
        let mut v = vec![0.0; self.dim];
        let active = decisions::active_mask(&self.space, d);
        for (i, &o) in d.iter().enumerate() {
            if active[i] {
                v[self.offsets[i] + o] = 1.0;
            }
        }
        v
    }
}

/// A label `P_J_I` with `J`, `I` numbers: (`P`, `J`, `I`), the edge from node `I` to node
/// `J` of cell `P` (NAS-Bench-201's `edge_2_0`, DARTS's `normal/op_2_0`).
pub fn cell_edge(label: &str) -> Option<(&str, usize, usize)> {
    let number = |s: &str| -> Option<usize> {
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            s.parse().ok()
        } else {
            None
        }
    };
    let (node, i) = label.rsplit_once('_')?;
    let (stem, j) = node.rsplit_once('_')?;
    if stem.is_empty() {
        return None;
    }
    let (j, i) = (number(j)?, number(i)?);
    (i < j).then_some((stem, j, i))
}

/// Op names that stand for no edge at all.
fn is_absent(op: &str) -> bool {
    op == "none" || op == "zero"
}

struct Edge {
    from: usize,
    to: usize,
    /// The layer choice that picks the edge's op.
    choice: usize,
    /// The input choice that switches the edge on, and the edge's index among its
    /// candidates; `None`: always on.
    gate: Option<(usize, usize)>,
}

struct Cell {
    /// Ops that make a path (every candidate of the cell's edges but `none`/`zero`).
    ops: Vec<String>,
    edges: Vec<Edge>,
    sources: Vec<usize>,
    ends: Vec<usize>,
    max_len: usize,
    offset: usize,
}

impl Cell {
    /// Features per source: every op sequence of length 1..=max_len.
    fn per_source(&self) -> usize {
        let k = self.ops.len();
        (1..=self.max_len).map(|l| k.pow(l as u32)).sum()
    }
}

/// The path encoding of cell spaces (White et al., BANANAS, 2021): for every cell, one
/// feature per (source node, sequence of ops) that says whether the architecture has a
/// path of those ops from that source to the cell's output. Edges whose op is `none`
/// (or `zero`) carry no path.
///
/// A cell is read off the labels: layer choices labelled `P_J_I` are the op of edge
/// `I -> J` in cell `P`, and an input choice whose `edge_ops` name such choices says
/// which of those edges exist (a DARTS node keeps two). Sources are the nodes no edge
/// enters. Where a cell has input choices (DARTS), every intermediate node feeds its
/// output (the output concatenates them), so a path may end at any non-source node;
/// otherwise (NAS-Bench-201) the output is the last node and paths end there. Choices
/// outside any cell are appended one-hot, so the encoding covers the whole architecture.
pub struct PathEncoding {
    space: Vec<Choice>,
    cells: Vec<Cell>,
    /// One-hot part: (choice, offset) of every choice outside a cell.
    rest: Vec<(usize, usize)>,
    dim: usize,
}

/// The largest encoding a space may have (a wide cell's path count grows as ops^depth).
pub const MAX_PATH_FEATURES: usize = 1 << 20;

impl PathEncoding {
    /// An error when the space has no cell, or its paths would need more than
    /// [`MAX_PATH_FEATURES`] features.
    pub fn new(space: &[Choice]) -> Result<PathEncoding, String> {
        let mut by_cell: Vec<(String, Vec<usize>)> = vec![];
        let mut in_cell = vec![false; space.len()];
        for (i, c) in space.iter().enumerate() {
            let ChoiceKind::Layer { .. } = c.kind else {
                continue;
            };
            if let Some((p, _, _)) = cell_edge(&c.label) {
                match by_cell.iter_mut().find(|(q, _)| q == p) {
                    Some((_, v)) => v.push(i),
                    None => by_cell.push((p.to_string(), vec![i])),
                }
                in_cell[i] = true;
            }
        }
        if by_cell.is_empty() {
            return Err(
                "the space has no cell (no layer choice labelled P_J_I, the op of \
                        edge I -> J of cell P) to take paths through"
                    .into(),
            );
        }
        let index: HashMap<&str, usize> = space
            .iter()
            .enumerate()
            .map(|(i, c)| (c.label.as_str(), i))
            .collect();
        // Input choices gating a cell's edges.
        let mut gates: HashMap<usize, (usize, usize)> = HashMap::new();
        for (i, c) in space.iter().enumerate() {
            if let ChoiceKind::Input { n_candidates, .. } = c.kind {
                if c.edge_ops.len() == n_candidates && !c.edge_ops.is_empty() {
                    let ids: Option<Vec<usize>> = c
                        .edge_ops
                        .iter()
                        .map(|l| index.get(l.as_str()).copied().filter(|&k| in_cell[k]))
                        .collect();
                    if let Some(ids) = ids {
                        for (k, id) in ids.into_iter().enumerate() {
                            gates.insert(id, (i, k));
                        }
                        in_cell[i] = true;
                    }
                }
            }
        }
        let mut cells = vec![];
        let mut dim = 0;
        for (_, members) in by_cell {
            let mut ops: Vec<String> = vec![];
            let mut edges = vec![];
            for &m in &members {
                let ChoiceKind::Layer { candidates } = &space[m].kind else {
                    unreachable!()
                };
                for op in candidates {
                    if !is_absent(op) && !ops.contains(op) {
                        ops.push(op.clone());
                    }
                }
                let (_, to, from) = cell_edge(&space[m].label).unwrap();
                edges.push(Edge {
                    from,
                    to,
                    choice: m,
                    gate: gates.get(&m).copied(),
                });
            }
            let targets: Vec<usize> = edges.iter().map(|e| e.to).collect();
            let mut nodes: Vec<usize> = edges.iter().flat_map(|e| [e.from, e.to]).collect();
            nodes.sort_unstable();
            nodes.dedup();
            let sources: Vec<usize> = nodes
                .iter()
                .copied()
                .filter(|n| !targets.contains(n))
                .collect();
            let gated = edges.iter().any(|e| e.gate.is_some());
            let ends: Vec<usize> = if gated {
                nodes
                    .iter()
                    .copied()
                    .filter(|n| !sources.contains(n))
                    .collect()
            } else {
                vec![*nodes.last().unwrap()]
            };
            // The longest path has one edge per step up the node order.
            let max_len = nodes.len() - 1;
            let mut cell = Cell {
                ops,
                edges,
                sources,
                ends,
                max_len,
                offset: dim,
            };
            let size = cell
                .sources
                .len()
                .checked_mul(cell.per_source())
                .filter(|&s| s <= MAX_PATH_FEATURES)
                .ok_or_else(|| {
                    format!(
                        "the path encoding of this space would need more than {} features",
                        MAX_PATH_FEATURES
                    )
                })?;
            cell.offset = dim;
            dim += size;
            if dim > MAX_PATH_FEATURES {
                return Err(format!(
                    "the path encoding of this space would need more than {} features",
                    MAX_PATH_FEATURES
                ));
            }
            cells.push(cell);
        }
        let mut rest = vec![];
        for (i, c) in space.iter().enumerate() {
            if !in_cell[i] {
                rest.push((i, dim));
                dim += c.size();
            }
        }
        Ok(PathEncoding {
            space: space.to_vec(),
            cells,
            rest,
            dim,
        })
    }

    /// The paths of `d` as (cell, source index, op ids), each once.
    pub fn paths(&self, d: &[usize]) -> Vec<(usize, usize, Vec<usize>)> {
        let active = decisions::active_mask(&self.space, d);
        let mut out = vec![];
        for (ci, cell) in self.cells.iter().enumerate() {
            // Live edges: from -> (to, op id).
            let mut next: HashMap<usize, Vec<(usize, usize)>> = HashMap::new();
            for e in &cell.edges {
                if !active[e.choice] {
                    continue;
                }
                let ChoiceKind::Layer { candidates } = &self.space[e.choice].kind else {
                    continue;
                };
                let op = &candidates[d[e.choice]];
                if is_absent(op) {
                    continue;
                }
                if let Some((g, k)) = e.gate {
                    let ChoiceKind::Input {
                        n_candidates,
                        n_chosen,
                        ..
                    } = self.space[g].kind
                    else {
                        continue;
                    };
                    let on = active[g]
                        && decisions::unrank_combination(n_candidates, n_chosen, d[g]).contains(&k);
                    if !on {
                        continue;
                    }
                }
                let id = cell.ops.iter().position(|o| o == op).unwrap();
                next.entry(e.from).or_default().push((e.to, id));
            }
            for (si, &s) in cell.sources.iter().enumerate() {
                // Depth-first over every path from the source.
                let mut stack: Vec<(usize, Vec<usize>)> = vec![(s, vec![])];
                while let Some((node, seq)) = stack.pop() {
                    if !seq.is_empty() && cell.ends.contains(&node) {
                        out.push((ci, si, seq.clone()));
                    }
                    for &(to, id) in next.get(&node).map(|v| v.as_slice()).unwrap_or(&[]) {
                        let mut s2 = seq.clone();
                        s2.push(id);
                        stack.push((to, s2));
                    }
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// The feature index of a path.
    fn feature(&self, cell: usize, source: usize, ops: &[usize]) -> usize {
        let c = &self.cells[cell];
        let k = c.ops.len();
        let shorter: usize = (1..ops.len()).map(|l| k.pow(l as u32)).sum();
        let within = ops.iter().fold(0, |acc, &o| acc * k + o);
        c.offset + source * c.per_source() + shorter + within
    }
}

impl Encoding for PathEncoding {
    fn dim(&self) -> usize {
        self.dim
    }
    fn encode(&self, d: &[usize]) -> Vec<f32> {
        let mut v = vec![0.0; self.dim];
        for (c, s, ops) in self.paths(d) {
            v[self.feature(c, s, &ops)] = 1.0;
        }
        let active = decisions::active_mask(&self.space, d);
        for &(i, off) in &self.rest {
            if active[i] {
                v[off + d[i]] = 1.0;
            }
        }
        v
    }
}

/// Each choice's options as tokens of one vocabulary, for sequence models (NAO's
/// encoder and decoder): layer choices with the same candidate list share their tokens
/// (NAS-Bench-201's five ops are five tokens for all six edges, as NAO's vocabulary has
/// one token per op), every other choice has tokens of its own. A choice's tokens are
/// contiguous, so its option `o` is token `range(choice).start + o`.
pub struct Tokens {
    ranges: Vec<Range<usize>>,
    len: usize,
}

impl Tokens {
    pub fn new(space: &[Choice]) -> Tokens {
        let mut shared: HashMap<Vec<String>, usize> = HashMap::new();
        let mut ranges = Vec::with_capacity(space.len());
        let mut len = 0;
        for c in space {
            let start = match &c.kind {
                ChoiceKind::Layer { candidates } => {
                    *shared.entry(candidates.clone()).or_insert_with(|| {
                        len += candidates.len();
                        len - candidates.len()
                    })
                }
                _ => {
                    len += c.size();
                    len - c.size()
                }
            };
            ranges.push(start..start + c.size());
        }
        Tokens { ranges, len }
    }
    /// The vocabulary's size.
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// The tokens of choice `choice`'s options.
    pub fn range(&self, choice: usize) -> Range<usize> {
        self.ranges[choice].clone()
    }
    /// The token sequence of a decision vector.
    pub fn sequence(&self, d: &[usize]) -> Vec<usize> {
        d.iter()
            .enumerate()
            .map(|(i, &o)| self.ranges[i].start + o)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nas_strategies::testing::layer_space;

    fn nb201() -> Vec<Choice> {
        let ops: Vec<String> = [
            "none",
            "skip_connect",
            "nor_conv_1x1",
            "nor_conv_3x3",
            "avg_pool_3x3",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        ["1_0", "2_0", "2_1", "3_0", "3_1", "3_2"]
            .iter()
            .map(|e| Choice {
                label: format!("edge_{e}"),
                kind: ChoiceKind::Layer {
                    candidates: ops.clone(),
                },
                inside: None,
                edge_ops: vec![],
            })
            .collect()
    }

    #[test]
    fn one_hot_marks_one_option_per_choice() {
        let space = layer_space(3, 4);
        let e = OneHot::new(&space);
        assert_eq!(e.dim(), 12);
        let v = e.encode(&[0, 3, 1]);
        let ones: Vec<usize> = (0..12).filter(|&i| v[i] == 1.0).collect();
        assert_eq!(ones, vec![0, 7, 9]);
    }

    #[test]
    fn nb201_paths_are_the_op_sequences_from_input_to_output() {
        let space = nb201();
        let e = PathEncoding::new(&space).unwrap();
        // 4 ops (none is no path), lengths 1..=3: 4 + 16 + 64.
        assert_eq!(e.dim(), 84);
        // edge_1_0 conv3x3, edge_2_1 skip, edge_3_2 conv1x1, edge_3_0 avg_pool, others none:
        // paths 0->3 (avg_pool) and 0->1->2->3 (conv3x3, skip, conv1x1).
        let d = [3, 0, 1, 4, 0, 2];
        let ops = |names: &[&str]| -> Vec<usize> {
            let all = [
                "skip_connect",
                "nor_conv_1x1",
                "nor_conv_3x3",
                "avg_pool_3x3",
            ];
            names
                .iter()
                .map(|n| all.iter().position(|a| a == n).unwrap())
                .collect()
        };
        let paths: Vec<Vec<usize>> = e.paths(&d).into_iter().map(|p| p.2).collect();
        assert_eq!(
            paths,
            vec![
                ops(&["nor_conv_3x3", "skip_connect", "nor_conv_1x1"]),
                ops(&["avg_pool_3x3"]),
            ]
            .into_iter()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
        );
        let v = e.encode(&d);
        assert_eq!(v.iter().filter(|x| **x == 1.0).count(), 2);
        // avg_pool alone is length 1, op id 3: feature 3.
        assert_eq!(v[3], 1.0);
        // A cell cut off from its output has no path at all.
        assert!(e.encode(&[3, 3, 3, 0, 0, 0]).iter().all(|x| *x == 0.0));
    }

    #[test]
    fn darts_paths_follow_the_chosen_inputs_and_end_anywhere() {
        let ops: Vec<String> = ["none", "skip", "conv"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let layer = |l: &str| Choice {
            label: l.into(),
            kind: ChoiceKind::Layer {
                candidates: ops.clone(),
            },
            inside: None,
            edge_ops: vec![],
        };
        let input = |j: usize| Choice {
            label: format!("c/input_{j}"),
            kind: ChoiceKind::Input {
                n_candidates: j,
                n_chosen: 1,
                reduce: nas_strategies::Reduce::Sum,
            },
            inside: None,
            edge_ops: (0..j).map(|i| format!("c/op_{j}_{i}")).collect(),
        };
        // Inputs 0 and 1; node 2 takes one of them, node 3 one of 0, 1, 2.
        let space = vec![
            layer("c/op_2_0"),
            layer("c/op_2_1"),
            input(2),
            layer("c/op_3_0"),
            layer("c/op_3_1"),
            layer("c/op_3_2"),
            input(3),
            layer("other"),
        ];
        let e = PathEncoding::new(&space).unwrap();
        // 2 ops, lengths 1..=3 (nodes 0..3), 2 sources; plus `other` one-hot.
        assert_eq!(e.dim(), 2 * (2 + 4 + 8) + 3);
        // Node 2 <- node 1 by conv; node 3 <- node 2 by skip. op_2_0 and op_3_0 are
        // set to conv but their edges are not chosen.
        let d = [2, 2, 1, 2, 0, 1, 2, 0];
        let paths: Vec<(usize, Vec<usize>)> = e.paths(&d).into_iter().map(|p| (p.1, p.2)).collect();
        // Source 1 (node 1): conv to node 2, conv+skip to node 3.
        assert_eq!(paths, vec![(1, vec![1]), (1, vec![1, 0])]);
    }

    #[test]
    fn a_space_without_cells_has_no_path_encoding() {
        let e = PathEncoding::new(&layer_space(3, 2)).err().unwrap();
        assert!(e.contains("no cell"), "{e}");
    }

    #[test]
    fn tokens_share_a_candidate_list() {
        let mut space = nb201();
        space.push(Choice {
            label: "width".into(),
            kind: ChoiceKind::Value {
                values: vec![8.into(), 16.into()],
            },
            inside: None,
            edge_ops: vec![],
        });
        let t = Tokens::new(&space);
        assert_eq!(t.len(), 7);
        assert_eq!(t.range(0), 0..5);
        assert_eq!(t.range(5), 0..5);
        assert_eq!(t.range(6), 5..7);
        assert_eq!(
            t.sequence(&[1, 2, 3, 4, 0, 1, 1]),
            vec![1, 2, 3, 4, 0, 1, 6]
        );
    }
}
