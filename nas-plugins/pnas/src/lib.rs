//! Progressive Neural Architecture Search (Liu et al., ECCV 2018) over a space of ordered
//! choices: cells grow one block at a time; a surrogate trained on the results of the
//! smaller cells ranks every expansion by the next block, and only the best `K` are
//! evaluated and kept.
//!
//! # Blocks
//!
//! The space's choices are cut, in definition order, into blocks. Consecutive choices
//! labelled `P_J_I` (`J`, `I` numbers: edge `I -> J` of node `J` of cell `P`, as
//! NAS-Bench-201's `edge_2_0` or DARTS's `normal/op_2_0`) that share `P_J` form one
//! block (a node), and an input choice whose `edge_ops` name such edges joins their block
//! (a DARTS node's input choice). Every other choice is a block of its own. So `nb201`
//! has 3 blocks: node 1 `{edge_1_0}` (5 options), node 2 `{edge_2_0, edge_2_1}` (25) and
//! node 3 `{edge_3_0, edge_3_1, edge_3_2}` (125); `darts` has one block per node of each
//! cell (8). A block's options are every combination of its choices' options, a choice
//! inactive under the cell (repeat-scoped) having one.
//!
//! # The search
//!
//! - Depth 1: every 1-block cell (B1) is evaluated. When B1 has more cells than `K`
//!   (below), a uniform sample of `K` of them is, since no surrogate is trained yet (the
//!   paper evaluates all 136 of its B1).
//! - Depth `b -> b+1`: every cell kept at depth `b` is expanded by every option of block
//!   `b+1` (when that makes more than `max_candidates`, a uniform sample of
//!   `max_candidates` distinct expansions stands for them). `K` of them are picked, in
//!   `rounds` batches of `ceil(K / rounds)`: before each batch the surrogate is trained on
//!   every result told so far, and the batch is its top predictions among the
//!   expansions not picked yet (ties in expansion order). The picked cells are the ones
//!   kept, and each is evaluated unless it is the same architecture as a cell evaluated
//!   before (in nb201, a node grown as a pass-through gives back the smaller cell).
//! - Full depth: the paper stops and returns the best cell of depth B; the host keeps
//!   its best result. If the host asks more, each further round picks the next `K` (in
//!   `rounds` batches) from the same depth-B expansions, skipping those evaluated. Once
//!   every one has been evaluated (a last block inactive in most kept cells leaves few),
//!   a uniform sample of `max_candidates` unevaluated architectures of the whole space is
//!   ranked instead, and `ask` answers `None` when no unevaluated one is found.
//! - `"local_search": true` (off by default; not in the paper) replaces those rounds by a
//!   local search: the `K` best results (mean accuracy) get `mutations` mutants each (one
//!   or two changed choices), and the surrogate's top `K` unseen mutants are evaluated,
//!   round after round. It also takes a share of the budget (below).
//!
//! The default, `rounds` 1, is the paper's single batch per depth. `"rounds": 8` (an
//! option, not in the paper) picks each depth's `K` in 8 batches and refits the
//! surrogate between them: the paper trains a depth's `K` children at once on many GPUs,
//! while here a search has ~150 sequential queries and the surrogate has seen nothing of
//! block `b+1` when a depth starts (in nb201 the 125 options of node 3 only appear as
//! pass-throughs before depth 3), so refitting on the depth's first batches sharpens the
//! ranking of the rest. `nas bench-strategies` on NAS-Bench-201 (100 runs x 150 queries,
//! see `tests/nb201.rs`): random search 91.09, the paper's default 91.11 (no better than
//! random at this budget), `rounds` 8 91.30, with `local_search` 91.27.
//!
//! Other differences from the paper, and why: B1 sampled when
//! larger than `K`, the surrogate (below), and a depth started before every result of
//! the previous one is told when asks run ahead of tells (the paper waits for all of
//! them); tells may come in any order.
//!
//! # How an unfinished cell is evaluated
//!
//! A `b`-block cell is evaluated as a full architecture of the space whose blocks past
//! `b` take a fixed completion, the same for every cell (never random):
//! - A node block made only of layer choices `P_J_I` (not repeat-scoped) offering `none`,
//!   with `skip_connect` on its edge from node `J-1`, is completed as a pass-through:
//!   `skip_connect` on edge `J-1 -> J`, `none` on the others, so node `J` equals node
//!   `J-1`. In nb201, whose cell output is its last node and whose `skip_connect` is the
//!   identity, a cell grown to node `b` is then exactly the real smaller cell whose output
//!   is node `b` (for example `edge_1_0 = op` is the cell `out = op(in)`). The plugin
//!   cannot see a space's wiring: for another space with such labels and ops it assumes
//!   the same.
//! - Any other block takes option 0 of each of its choices (a layer choice's first
//!   candidate, the first value, the first depth, the first combination): such spaces
//!   (`darts`, `chain`, `mobilenet`, ...) have no smaller cell of their own, and this
//!   fixed default is how their unfinished cells are scored.
//!
//! # Beam and budget
//!
//! `K` for depth `d` of `B` is `remaining / (B - d + 1)` (at least 1), `remaining` being
//! the budget less the architectures asked so far, so the depths share what is left and
//! the last one takes all of it; with `local_search` the local search counts as one more
//! share. A `beam` in the config fixes `K` for every depth instead; without a budget
//! (0) `K` is the paper's 256. On nb201 with 150 asks: depth 1 evaluates its 5 cells;
//! depth 2 picks `145 / 2 = 72` of its 125 expansions (those that are depth-1 cells
//! again are not re-asked, so 67 to 72 asks); depth 3 picks `150 - 5 - asks at depth
//! 2` (78 to 73) of its `72 x 125 = 9000` expansions, and any ask left (a picked cell
//! already evaluated) goes to the next round at depth 3. With `local_search`: 5, 48,
//! about 48, and the rest (about 49) local search. With a budget smaller than the depths
//! need, the search stops where the budget ends, and the host keeps the best result seen.
//!
//! # Surrogate
//!
//! An ensemble of `ensemble` MLPs (one hidden ReLU layer of `hidden` units). The input is
//! a cell's evaluated architecture: the one-hot option of every active choice, and, for
//! each candidate list shared by several layer choices (nb201's five ops), the fraction
//! of those choices taking each candidate. The paper's MLP embeds each block's tokens with
//! embeddings shared by all blocks and averages over blocks, which is what lets results on
//! small cells speak for the blocks not grown yet; the shared fractions are that average
//! (a linear embedding of them is the average of the choices' embeddings), and the one-hot
//! part adds what each position learns once it has results. Before each batch it is
//! trained (warm-started: `train_steps` full-batch AdamW steps at `lr`, decoupled weight
//! decay 1e-4, MSE on standardised accuracies) on every result so far, where the paper
//! refits from scratch; with fewer than 2 results it keeps its random initialisation.
//!
//! Config: `beam` (from the budget, above; at most `max_candidates`), `rounds` (1, at
//! most the budget), `max_candidates` (20000, at most 10^6), `hidden` (32, at most
//! 4096), `ensemble` (3, at most 100), `train_steps` (150, at most 10^6), `lr` (0.01, in (0, 1]),
//! `local_search` (false), `mutations` (16, for the local search; at most 10000). A
//! count out of its range is an error naming the field, its value and the range.
//!
//! Save/load keeps the depth, the kept and parent cells, the expansions not picked yet,
//! the queue, every result, the asks in flight, the number asked, the surrogates' weights
//! and Adam moments and the generator, so a loaded search continues exactly as the saved
//! one would have. A state saved by pnas 0.1 (prefixes of choices with random
//! completions) is refused.

use nas_strategies::decisions;

use nas_core::optim::{Adam, AdamState, Optimizer};
use nas_core::{no_grad, Tensor};
use nas_strategies::{
    config_field, export_strategy, json, Architecture, Choice, ChoiceKind, Metrics, Rng, Setup,
    Strategy, Value,
};
use std::collections::{HashMap, HashSet, VecDeque};
use std::ops::Range;

const FIELDS: &[&str] = &[
    "beam",
    "max_candidates",
    "hidden",
    "ensemble",
    "train_steps",
    "lr",
    "local_search",
    "mutations",
    "rounds",
];

/// The paper's beam, used when the budget is unknown.
const PAPER_BEAM: usize = 256;

/// Stated caps of the counts in the config (past them a search does not finish).
const MAX_CANDIDATES: usize = 1_000_000;
const MAX_HIDDEN: usize = 4096;
const MAX_ENSEMBLE: usize = 100;
const MAX_TRAIN_STEPS: usize = 1_000_000;
const MAX_MUTATIONS: usize = 10_000;

#[derive(Clone, Debug)]
struct Config {
    beam: Option<usize>,
    max_candidates: usize,
    hidden: usize,
    ensemble: usize,
    train_steps: usize,
    lr: f32,
    local_search: bool,
    mutations: usize,
    rounds: usize,
}

impl Config {
    /// `budget`: the trials the search will run (0 when unknown).
    fn parse(c: &Value, budget: usize) -> Result<Config, String> {
        nas_strategies::check_config_fields(c, "pnas", FIELDS)?;
        let count = nas_strategies::config_count;
        let max_candidates = count(c, "max_candidates", 20_000, 1, MAX_CANDIDATES)?;
        let beam: Option<usize> = config_field(c, "beam", None)?;
        // K of the pool of at most `max_candidates` expansions.
        let beam = beam
            .map(|k| nas_strategies::check_count("beam", k, 1, max_candidates))
            .transpose()?;
        let cfg = Config {
            beam,
            max_candidates,
            hidden: count(c, "hidden", 32, 1, MAX_HIDDEN)?,
            ensemble: count(c, "ensemble", 3, 1, MAX_ENSEMBLE)?,
            train_steps: count(c, "train_steps", 150, 0, MAX_TRAIN_STEPS)?,
            lr: config_field(c, "lr", 0.01)?,
            local_search: config_field(c, "local_search", false)?,
            mutations: count(c, "mutations", 16, 1, MAX_MUTATIONS)?,
            // Each round picks at least one architecture: no more rounds than trials.
            rounds: count(
                c,
                "rounds",
                1,
                1,
                if budget == 0 { usize::MAX } else { budget },
            )?,
        };
        // Adam moves each weight by about `lr` a step, on standardised targets: past 1 the
        // surrogates diverge (to NaN weights, which no saved state can hold).
        if !(cfg.lr > 0.0 && cfg.lr <= 1.0) {
            return Err(format!(
                "config field `lr`: {} is not valid (must be in (0, 1])",
                cfg.lr
            ));
        }
        Ok(cfg)
    }
}

/// A label `P_J_I` with `J`, `I` numbers: (`P_J`, `J`, `I`).
fn node_edge(label: &str) -> Option<(&str, usize, usize)> {
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
    Some((node, number(j)?, number(i)?))
}

/// The node a choice belongs to, if any: its own `P_J_I` label, or an input choice's
/// edges'.
fn node_of(c: &Choice) -> Option<&str> {
    match c.edge_ops.first() {
        Some(e) => node_edge(e).map(|x| x.0),
        None => node_edge(&c.label).map(|x| x.0),
    }
}

/// One block: a range of choices and the options they take while the block is not grown.
#[derive(Clone, Debug)]
struct Block {
    range: Range<usize>,
    fill: Vec<usize>,
    /// Whether `fill` makes the block a pass-through of the previous node.
    pass_through: bool,
}

/// The pass-through completion of a node block (see the module doc), if it has one.
fn pass_through(space: &[Choice]) -> Option<Vec<usize>> {
    let mut out = vec![];
    let mut from_prev = false;
    for c in space {
        let (_, j, i) = node_edge(&c.label)?;
        let ChoiceKind::Layer { candidates } = &c.kind else {
            return None;
        };
        if c.inside.is_some() {
            return None;
        }
        let want = if i + 1 == j {
            from_prev = true;
            "skip_connect"
        } else {
            "none"
        };
        out.push(candidates.iter().position(|x| x == want)?);
    }
    from_prev.then_some(out)
}

fn make_blocks(space: &[Choice]) -> Vec<Block> {
    let n = space.len();
    let mut blocks = vec![];
    let mut start = 0;
    for end in 1..=n {
        let split = end == n || {
            let (a, b) = (node_of(&space[end - 1]), node_of(&space[end]));
            a.is_none() || a != b
        };
        if split {
            let (fill, pass) = match pass_through(&space[start..end]) {
                Some(f) => (f, true),
                None => (vec![0; end - start], false),
            };
            blocks.push(Block {
                range: start..end,
                fill,
                pass_through: pass,
            });
            start = end;
        }
    }
    blocks
}

/// One surrogate: `x -> w2 relu(w1 x + b1) + b2`.
struct Mlp {
    w1: Tensor,
    b1: Tensor,
    w2: Tensor,
    b2: Tensor,
    opt: Adam,
}

impl Mlp {
    fn new(dim: usize, hidden: usize, rng: &mut Rng) -> Mlp {
        let (s1, s2) = (1.0 / (dim as f32).sqrt(), 1.0 / (hidden as f32).sqrt());
        let w1 = Tensor::parameter(
            (0..hidden * dim)
                .map(|_| rng.uniform_range(-s1, s1))
                .collect(),
            &[hidden, dim],
        );
        let b1 = Tensor::parameter(vec![0.0; hidden], &[hidden]);
        let w2 = Tensor::parameter(
            (0..hidden).map(|_| rng.uniform_range(-s2, s2)).collect(),
            &[1, hidden],
        );
        let b2 = Tensor::parameter(vec![0.0], &[1]);
        let opt = Adam::new(
            vec![w1.clone(), b1.clone(), w2.clone(), b2.clone()],
            1e-4,
            true,
        );
        Mlp {
            w1,
            b1,
            w2,
            b2,
            opt,
        }
    }

    fn params(&self) -> [&Tensor; 4] {
        [&self.w1, &self.b1, &self.w2, &self.b2]
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        x.linear(&self.w1, Some(&self.b1))
            .relu()
            .linear(&self.w2, Some(&self.b2))
    }

    fn train(&mut self, x: &Tensor, y: &Tensor, steps: usize, lr: f32) {
        for _ in 0..steps {
            let d = self.forward(x).sub(y);
            let loss = d.mul(&d).mean();
            self.opt.zero_grad();
            loss.backward();
            self.opt.step(lr);
        }
        self.opt.zero_grad();
    }
}

pub struct Pnas {
    pub space: Vec<Choice>,
    sizes: Vec<usize>,
    /// Where each choice's one-hot block starts.
    offsets: Vec<usize>,
    /// For each choice that shares its candidates with another layer choice: where the
    /// shared "bag of options" features of that candidate list start.
    shared: Vec<Option<usize>>,
    dim: usize,
    cfg: Config,
    budget: usize,
    rng: Rng,
    blocks: Vec<Block>,
    /// Blocks grown in the current cells; 0 before the search starts.
    depth: usize,
    /// The cells kept at the current depth: prefixes ending where block `depth` ends.
    pub kept: Vec<Vec<usize>>,
    /// The cells whose expansions made the current depth (one empty cell at depth 1).
    pub parents: Vec<Vec<usize>>,
    /// The beam of the last depth (or round after full depth) started.
    last_k: usize,
    /// The expansions of this depth not picked yet.
    pool: Vec<Vec<usize>>,
    /// How many cells of this depth's beam are still to pick.
    to_pick: usize,
    /// Architectures handed out by `ask`.
    asked: usize,
    /// Architectures waiting to be asked: (decisions, depth; `B + 1` for the local search).
    pub queue: VecDeque<(Vec<usize>, usize)>,
    /// Every result: (decisions, depth, accuracy).
    pub history: Vec<(Vec<usize>, usize, f32)>,
    /// Failed trials (no result): not trained on, not asked again.
    pub failed: Vec<Vec<usize>>,
    pub pending: HashMap<String, Vec<(Vec<usize>, usize)>>,
    models: Vec<Mlp>,
}

impl Pnas {
    /// The choice ranges of the blocks, in order.
    pub fn blocks(&self) -> Vec<Range<usize>> {
        self.blocks.iter().map(|b| b.range.clone()).collect()
    }

    /// Whether every block has a pass-through completion, so that every unfinished cell
    /// is evaluated as a real smaller cell (see the module doc).
    pub fn smaller_cells_are_real(&self) -> bool {
        self.blocks.iter().skip(1).all(|b| b.pass_through)
    }

    /// Blocks grown in the current cells (0 before the first ask).
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// The cells kept at the current depth (decisions of their grown blocks).
    pub fn kept(&self) -> &[Vec<usize>] {
        &self.kept
    }

    /// The full decisions evaluated for a cell (a prefix ending at a block's end): the
    /// blocks not grown take their fixed completion.
    pub fn complete(&self, prefix: &[usize]) -> Vec<usize> {
        let mut d = prefix.to_vec();
        for b in &self.blocks {
            if b.range.start >= prefix.len() {
                d.extend_from_slice(&b.fill);
            }
        }
        d
    }

    fn key_of(&self, prefix: &[usize]) -> String {
        decisions::key(&self.space, &self.complete(prefix))
    }

    /// The surrogate's input for full decisions `d` (see the module doc).
    fn encode(&self, d: &[usize], out: &mut [f32]) {
        let active = decisions::active_mask(&self.space, d);
        // Shared block start -> (active choices counted, candidates).
        let mut groups: HashMap<usize, (f32, usize)> = HashMap::new();
        for (i, &x) in d.iter().enumerate() {
            if active[i] {
                out[self.offsets[i] + x] = 1.0;
                if let Some(g) = self.shared[i] {
                    out[g + x] += 1.0;
                    groups.entry(g).or_insert((0.0, self.sizes[i])).0 += 1.0;
                }
            }
        }
        for (g, (n, size)) in groups {
            for v in &mut out[g..g + size] {
                *v /= n;
            }
        }
    }

    fn matrix(&self, rows: &[&[usize]]) -> Tensor {
        let mut x = vec![0.0; rows.len() * self.dim];
        for (r, d) in rows.iter().enumerate() {
            self.encode(d, &mut x[r * self.dim..(r + 1) * self.dim]);
        }
        Tensor::from_vec(x, &[rows.len(), self.dim])
    }

    /// Trains the surrogates on every result.
    pub fn train(&mut self) {
        if self.history.len() < 2 {
            return;
        }
        let rows: Vec<&[usize]> = self.history.iter().map(|(d, _, _)| d.as_slice()).collect();
        let ys: Vec<f32> = self.history.iter().map(|(_, _, a)| *a).collect();
        let mean = ys.iter().sum::<f32>() / ys.len() as f32;
        let var = ys.iter().map(|y| (y - mean) * (y - mean)).sum::<f32>() / ys.len() as f32;
        let std = var.sqrt().max(1e-3);
        let y: Vec<f32> = ys.iter().map(|v| (v - mean) / std).collect();
        let x = self.matrix(&rows);
        let y = Tensor::from_vec(y, &[rows.len(), 1]);
        let (steps, lr) = (self.cfg.train_steps, self.cfg.lr);
        for model in &mut self.models {
            model.train(&x, &y, steps, lr);
        }
    }

    /// The ensemble's mean prediction (standardised accuracy) of cells, each given by a
    /// prefix ending at a block's end or by full decisions (completed as in
    /// [`Pnas::complete`]).
    pub fn predict(&self, cells: &[Vec<usize>]) -> Vec<f32> {
        if cells.is_empty() {
            return vec![];
        }
        let full: Vec<Vec<usize>> = cells.iter().map(|c| self.complete(c)).collect();
        let rows: Vec<&[usize]> = full.iter().map(|d| d.as_slice()).collect();
        let x = self.matrix(&rows);
        no_grad(|| {
            let mut sum = vec![0.0; cells.len()];
            for model in &self.models {
                for (s, p) in sum.iter_mut().zip(model.forward(&x).to_vec()) {
                    *s += p;
                }
            }
            sum.iter().map(|s| s / self.models.len() as f32).collect()
        })
    }

    /// Removes the surrogate's `k` best cells from the pool and returns them, best first
    /// (ties in pool order).
    fn take_top(&mut self, k: usize) -> Vec<Vec<usize>> {
        let scores = self.predict(&self.pool);
        let mut order: Vec<usize> = (0..self.pool.len()).collect();
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
        let top: Vec<usize> = order.into_iter().take(k).collect();
        let picked = top.iter().map(|&i| self.pool[i].clone()).collect();
        let chosen: HashSet<usize> = top.into_iter().collect();
        let mut i = 0;
        self.pool.retain(|_| {
            i += 1;
            !chosen.contains(&(i - 1))
        });
        picked
    }

    fn is_active(&self, prefix: &[usize], i: usize) -> bool {
        let mut d = prefix.to_vec();
        d.resize(self.sizes.len(), 0);
        decisions::active_mask(&self.space, &d)[i]
    }

    /// Block `b`'s choices in the order their options are decided: an edge's op choice
    /// after the input choice that says whether the edge is built (a `darts` node lists
    /// its ops first), every other choice in definition order.
    fn block_order(&self, b: usize) -> Vec<usize> {
        let range = self.blocks[b].range.clone();
        let edge_op = |i: &usize| {
            let label = &self.space[*i].label;
            self.space[range.clone()]
                .iter()
                .any(|c| c.edge_ops.contains(label))
        };
        let (ops, rest): (Vec<usize>, Vec<usize>) = range.clone().partition(edge_op);
        rest.into_iter().chain(ops).collect()
    }

    /// Every option of block `b` appended to `prefix` (a choice the cell does not make,
    /// repeat-scoped or an unpicked edge's op, has one: option 0), or `None` when there
    /// are more than `limit`.
    fn block_options(&self, prefix: &[usize], b: usize, limit: usize) -> Option<Vec<Vec<usize>>> {
        let mut base = prefix.to_vec();
        base.resize(self.blocks[b].range.end, 0);
        let mut partial = vec![base];
        for i in self.block_order(b) {
            let mut next = vec![];
            for p in partial {
                let options = if self.is_active(&p, i) {
                    self.sizes[i]
                } else {
                    1
                };
                for o in 0..options {
                    let mut q = p.clone();
                    q[i] = o;
                    next.push(q);
                }
                if next.len() > limit {
                    return None;
                }
            }
            partial = next;
        }
        Some(partial)
    }

    /// The expansions of `parents` by block `b`, distinct architectures in order (a
    /// uniform sample of `max_candidates` when there are more).
    fn expand(&mut self, parents: &[Vec<usize>], b: usize) -> Vec<Vec<usize>> {
        let max = self.cfg.max_candidates;
        let mut out = vec![];
        let mut keys = HashSet::new();
        let mut fits = true;
        'all: for p in parents {
            let Some(options) = self.block_options(p, b, max) else {
                fits = false;
                break;
            };
            for c in options {
                if keys.insert(self.key_of(&c)) {
                    out.push(c);
                    if out.len() > max {
                        fits = false;
                        break 'all;
                    }
                }
            }
        }
        if fits {
            return out;
        }
        out.clear();
        keys.clear();
        let order = self.block_order(b);
        let end = self.blocks[b].range.end;
        for _ in 0..4 * max {
            if out.len() >= max {
                break;
            }
            let mut c = parents[self.rng.below(parents.len())].clone();
            c.resize(end, 0);
            for &i in &order {
                c[i] = if self.is_active(&c, i) {
                    self.rng.below(self.sizes[i])
                } else {
                    0
                };
            }
            if keys.insert(self.key_of(&c)) {
                out.push(c);
            }
        }
        out
    }

    fn seen_keys(&self) -> HashSet<String> {
        let mut s: HashSet<String> = self
            .history
            .iter()
            .map(|(d, _, _)| decisions::key(&self.space, d))
            .collect();
        s.extend(self.failed.iter().map(|d| decisions::key(&self.space, d)));
        s.extend(self.pending.keys().cloned());
        s.extend(
            self.queue
                .iter()
                .map(|(d, _)| decisions::key(&self.space, d)),
        );
        s
    }

    /// Queues the cells not evaluated yet (nor asked, nor queued).
    fn enqueue(&mut self, cells: &[Vec<usize>], depth: usize) {
        let mut seen = self.seen_keys();
        for c in cells {
            let d = self.complete(c);
            if seen.insert(decisions::key(&self.space, &d)) {
                self.queue.push_back((d, depth));
            }
        }
    }

    /// `K` for a round at depth `d` (see the module doc).
    fn beam_for(&self, d: usize) -> usize {
        if let Some(k) = self.cfg.beam {
            return k;
        }
        if self.budget == 0 {
            return PAPER_BEAM;
        }
        let shares = self.blocks.len().saturating_sub(d) + 1 + self.cfg.local_search as usize;
        (self.budget.saturating_sub(self.asked) / shares).max(1)
    }

    /// Starts the next round; false when nothing is left to propose.
    fn advance(&mut self) -> bool {
        let nb = self.blocks.len();
        if self.to_pick == 0 && self.depth < nb {
            // The next depth: every expansion of the kept cells by the next block.
            let b = self.depth;
            let parents = if b == 0 {
                vec![vec![]]
            } else {
                std::mem::take(&mut self.kept)
            };
            self.pool = self.expand(&parents, b);
            self.parents = parents;
            self.depth = b + 1;
            let k = self.beam_for(b + 1);
            self.last_k = k;
            self.to_pick = k.min(self.pool.len());
            if b == 0 {
                // No trained surrogate yet: B1 whole, or a uniform sample of it.
                if self.pool.len() > k {
                    self.rng.shuffle(&mut self.pool);
                }
                let picked: Vec<Vec<usize>> = self.pool.drain(..self.to_pick).collect();
                self.to_pick = 0;
                self.enqueue(&picked, 1);
                self.kept = picked;
                return true;
            }
        } else if self.to_pick == 0 {
            if self.cfg.local_search {
                self.local_search();
                return true;
            }
            // More of the last depth: the next-ranked expansions not evaluated yet.
            let seen = self.seen_keys();
            let pool = std::mem::take(&mut self.pool);
            self.pool = pool
                .into_iter()
                .filter(|c| !seen.contains(&self.key_of(c)))
                .collect();
            if self.pool.is_empty() {
                self.pool = self.unseen_sample(&seen);
            }
            if self.pool.is_empty() {
                return false;
            }
            let k = self.beam_for(nb);
            self.last_k = k;
            self.to_pick = k.min(self.pool.len());
        }
        // One batch of the depth's K: the surrogate's best of the expansions left.
        let r = self
            .last_k
            .div_ceil(self.cfg.rounds)
            .clamp(1, self.to_pick.max(1));
        self.train();
        let picked = self.take_top(r);
        self.to_pick -= picked.len();
        self.enqueue(&picked, self.depth);
        self.kept.extend(picked);
        true
    }

    /// Up to `max_candidates` distinct architectures not in `seen`, drawn uniformly.
    fn unseen_sample(&mut self, seen: &HashSet<String>) -> Vec<Vec<usize>> {
        let max = self.cfg.max_candidates;
        let mut out = vec![];
        let mut keys = HashSet::new();
        for _ in 0..4 * max {
            if out.len() >= max {
                break;
            }
            let d: Vec<usize> = self.sizes.iter().map(|&s| self.rng.below(s)).collect();
            let key = decisions::key(&self.space, &d);
            if !seen.contains(&key) && keys.insert(key) {
                out.push(d);
            }
        }
        out
    }

    /// One round of the optional local search: mutants of the best results, ranked by
    /// the surrogate.
    fn local_search(&mut self) {
        let n = self.sizes.len();
        let tag = self.blocks.len() + 1;
        let k = self.last_k.max(1);
        let mut by_key: HashMap<String, (Vec<usize>, f32, usize)> = HashMap::new();
        for (d, _, acc) in &self.history {
            let e = by_key
                .entry(decisions::key(&self.space, d))
                .or_insert((d.clone(), 0.0, 0));
            e.1 += acc;
            e.2 += 1;
        }
        let mut ranked: Vec<(String, Vec<usize>, f32)> = by_key
            .into_iter()
            .map(|(k, (d, s, c))| (k, d, s / c as f32))
            .collect();
        ranked.sort_by(|a, b| b.2.total_cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
        let parents: Vec<Vec<usize>> = ranked.into_iter().take(k).map(|(_, d, _)| d).collect();
        let mut seen = self.seen_keys();
        let mut cands = vec![];
        let mut cand_keys = HashSet::new();
        for p in &parents {
            for _ in 0..self.cfg.mutations {
                let mut c = p.clone();
                let changes = if self.rng.bernoulli(0.3) { 2 } else { 1 };
                for _ in 0..changes {
                    let active = decisions::active_mask(&self.space, &c);
                    let mutable: Vec<usize> =
                        (0..n).filter(|&i| active[i] && self.sizes[i] > 1).collect();
                    if mutable.is_empty() {
                        break;
                    }
                    let i = mutable[self.rng.below(mutable.len())];
                    let o = self.rng.below(self.sizes[i] - 1);
                    let before = c.clone();
                    c[i] = if o >= c[i] { o + 1 } else { o };
                    decisions::carry_edge_ops(&self.space, &before, &mut c);
                }
                let key = decisions::key(&self.space, &c);
                if !seen.contains(&key) && cand_keys.insert(key) {
                    cands.push(c);
                }
            }
        }
        self.train();
        self.pool = cands;
        for c in self.take_top(k) {
            seen.insert(decisions::key(&self.space, &c));
            self.queue.push_back((c, tag));
        }
        self.pool.clear();
        if self.queue.is_empty() {
            // No new mutant: an unseen random architecture, or any when none is left.
            let random = |rng: &mut Rng| -> Vec<usize> {
                self.sizes.iter().map(|&s| rng.below(s)).collect()
            };
            for _ in 0..1000 {
                let d = random(&mut self.rng);
                if seen.insert(decisions::key(&self.space, &d)) {
                    self.queue.push_back((d, tag));
                    return;
                }
            }
            let d = random(&mut self.rng);
            self.queue.push_back((d, tag));
        }
    }
}

impl Strategy for Pnas {
    fn new(setup: &Setup) -> Result<Self, String> {
        decisions::check_space(&setup.space)?;
        if setup.space.is_empty() {
            return Err("the space has no choices".into());
        }
        let cfg = Config::parse(&setup.config, setup.budget)?;
        let sizes = decisions::sizes(&setup.space);
        let mut offsets = vec![];
        let mut dim = 0;
        for s in &sizes {
            offsets.push(dim);
            dim += s;
        }
        // Layer choices with the same candidates share a bag-of-options block.
        let mut shared = vec![None; sizes.len()];
        let mut groups: Vec<(&Vec<String>, Vec<usize>)> = vec![];
        for (i, c) in setup.space.iter().enumerate() {
            if let ChoiceKind::Layer { candidates } = &c.kind {
                match groups.iter_mut().find(|(cands, _)| *cands == candidates) {
                    Some((_, members)) => members.push(i),
                    None => groups.push((candidates, vec![i])),
                }
            }
        }
        for (cands, members) in groups {
            if members.len() >= 2 {
                for &i in &members {
                    shared[i] = Some(dim);
                }
                dim += cands.len();
            }
        }
        let mut rng = Rng::new(setup.seed);
        let models = (0..cfg.ensemble)
            .map(|_| Mlp::new(dim, cfg.hidden, &mut rng))
            .collect();
        Ok(Pnas {
            blocks: make_blocks(&setup.space),
            space: setup.space.clone(),
            sizes,
            offsets,
            shared,
            dim,
            cfg,
            budget: setup.budget,
            rng,
            depth: 0,
            kept: vec![],
            parents: vec![],
            last_k: 0,
            pool: vec![],
            to_pick: 0,
            asked: 0,
            queue: VecDeque::new(),
            history: vec![],
            failed: vec![],
            pending: HashMap::new(),
            models,
        })
    }

    fn ask(&mut self) -> Result<Option<Architecture>, String> {
        for _ in 0..1000 {
            if self.queue.is_empty() && !self.advance() {
                return Ok(None);
            }
            let Some((d, depth)) = self.queue.pop_front() else {
                continue;
            };
            let key = decisions::key(&self.space, &d);
            // Told meanwhile (re-told after a resume) or in flight: not asked again.
            let told = self
                .history
                .iter()
                .map(|(h, _, _)| h)
                .chain(&self.failed)
                .any(|h| decisions::key(&self.space, h) == key);
            if told || self.pending.contains_key(&key) {
                continue;
            }
            let arch = decisions::to_arch(&self.space, &d);
            self.pending.entry(key).or_default().push((d, depth));
            self.asked += 1;
            return Ok(Some(arch));
        }
        Err("pnas found nothing to propose".into())
    }

    fn tell(&mut self, arch: &Architecture, metrics: &Metrics) -> Result<(), String> {
        let acc = metrics.accuracy as f32;
        if !acc.is_finite() {
            return Err(format!(
                "accuracy {} is not a finite number",
                metrics.accuracy
            ));
        }
        let d = decisions::from_arch(&self.space, arch)?;
        let key = decisions::key(&self.space, &d);
        let (d, depth) = match self.pending.get_mut(&key) {
            Some(v) if !v.is_empty() => {
                let x = v.remove(0);
                if v.is_empty() {
                    self.pending.remove(&key);
                }
                x
            }
            _ => (d, self.blocks.len()),
        };
        if metrics.is_failed() {
            // No result: its accuracy 0 among real ones would squeeze the surrogate's
            // standardised targets (as NAO's and DPP-Net's).
            self.failed.push(d);
            return Ok(());
        }
        self.history.push((d, depth, acc));
        Ok(())
    }

    fn save(&self) -> Result<Value, String> {
        let mut pending: Vec<&(Vec<usize>, usize)> = self.pending.values().flatten().collect();
        pending.sort();
        let models: Vec<Vec<Vec<f32>>> = self
            .models
            .iter()
            .map(|m| m.params().iter().map(|p| p.to_vec()).collect())
            .collect();
        let adam: Vec<AdamState> = self.models.iter().map(|m| m.opt.state()).collect();
        Ok(json!({
            "strategy": "pnas",
            "depth": self.depth,
            "kept": self.kept,
            "parents": self.parents,
            "last_k": self.last_k,
            "pool": self.pool,
            "to_pick": self.to_pick,
            "asked": self.asked,
            "queue": self.queue,
            "history": self.history,
            "failed": self.failed,
            "pending": pending,
            "models": models,
            "adam": adam,
            "rng": self.rng.state(),
        }))
    }

    fn load(&mut self, state: Value) -> Result<(), String> {
        let n = self.sizes.len();
        let nb = self.blocks.len();
        let depth: usize = config_field(&state, "depth", 0)?;
        let kept: Vec<Vec<usize>> = config_field(&state, "kept", vec![])?;
        let parents: Vec<Vec<usize>> = config_field(&state, "parents", vec![])?;
        let last_k: usize = config_field(&state, "last_k", 0)?;
        let asked: usize = config_field(&state, "asked", 0)?;
        let pool: Vec<Vec<usize>> = config_field(&state, "pool", vec![])?;
        let to_pick: usize = config_field(&state, "to_pick", 0)?;
        let queue: VecDeque<(Vec<usize>, usize)> = config_field(&state, "queue", VecDeque::new())?;
        let history: Vec<(Vec<usize>, usize, f32)> = config_field(&state, "history", vec![])?;
        let failed: Vec<Vec<usize>> = config_field(&state, "failed", vec![])?;
        let pending: Vec<(Vec<usize>, usize)> = config_field(&state, "pending", vec![])?;
        let models: Vec<Vec<Vec<f32>>> = config_field(&state, "models", vec![])?;
        let adam: Vec<AdamState> = config_field(&state, "adam", vec![])?;
        if state.get("level").is_some() && state.get("depth").is_none() {
            return Err(
                "the state was saved by pnas 0.1 (random completions of prefixes of \
                        choices), which block-by-block PNAS cannot continue"
                    .into(),
            );
        }
        if depth > nb {
            return Err(format!(
                "saved depth {depth} exceeds the space's {nb} blocks"
            ));
        }
        let end = |b: usize| {
            if b == 0 {
                0
            } else {
                self.blocks[b - 1].range.end
            }
        };
        let sizes = &self.sizes;
        let fits =
            |d: &[usize], len: usize| d.len() == len && d.iter().zip(sizes).all(|(x, s)| x < s);
        if let Some(p) = kept.iter().find(|p| !fits(p, end(depth))) {
            return Err(format!("saved kept cell {p:?} does not fit this space"));
        }
        if let Some(p) = pool.iter().find(|p| !fits(p, end(depth)) && !fits(p, n)) {
            return Err(format!("saved expansion {p:?} does not fit this space"));
        }
        if let Some(p) = parents
            .iter()
            .find(|p| !fits(p, end(depth.saturating_sub(1))))
        {
            return Err(format!("saved parent cell {p:?} does not fit this space"));
        }
        let full = queue
            .iter()
            .map(|(d, _)| d)
            .chain(pending.iter().map(|(d, _)| d))
            .chain(history.iter().map(|(d, _, _)| d))
            .chain(&failed);
        for d in full {
            if !fits(d, n) {
                return Err(format!("saved decisions {d:?} do not fit this space"));
            }
        }
        // JSON holds no NaN, but a number past f32's range reads as infinity.
        if let Some((d, _, a)) = history.iter().find(|(_, _, a)| !a.is_finite()) {
            return Err(format!(
                "saved accuracy of {d:?} is not a finite number ({a})"
            ));
        }
        if models.iter().flatten().flatten().any(|w| !w.is_finite()) {
            return Err("saved surrogate weights hold a value that is not finite".into());
        }
        if to_pick > pool.len() {
            return Err(format!(
                "saved state has {to_pick} cells still to pick from {} expansions",
                pool.len()
            ));
        }
        if models.len() != self.models.len() {
            return Err(format!(
                "saved state has {} surrogate models, `ensemble` is {}",
                models.len(),
                self.models.len()
            ));
        }
        for m in &models {
            let want: Vec<usize> = self.models[0].params().iter().map(|p| p.numel()).collect();
            let got: Vec<usize> = m.iter().map(|w| w.len()).collect();
            if want != got {
                return Err(format!(
                    "saved surrogate weights have sizes {got:?}, expected {want:?} (another \
                     space or `hidden`?)"
                ));
            }
        }
        if !adam.is_empty() && adam.len() != models.len() {
            return Err(format!(
                "saved state has {} surrogate optimisers for {} models",
                adam.len(),
                models.len()
            ));
        }
        for (i, (model, w)) in self.models.iter_mut().zip(&models).enumerate() {
            for (p, v) in model.params().iter().zip(w) {
                p.data_mut().copy_from_slice(v);
            }
            let params = model.params().iter().map(|p| (*p).clone()).collect();
            model.opt = Adam::new(params, 1e-4, true);
            if let Some(st) = adam.get(i) {
                model
                    .opt
                    .set_state(st.clone())
                    .map_err(|e| format!("saved surrogate optimiser {i}: {e}"))?;
            }
        }
        self.depth = depth;
        self.kept = kept;
        self.parents = parents;
        self.last_k = last_k;
        self.pool = pool;
        self.to_pick = to_pick;
        self.asked = asked;
        self.queue = queue;
        self.history = history;
        self.failed = failed;
        self.pending.clear();
        for (d, m) in pending {
            self.pending
                .entry(decisions::key(&self.space, &d))
                .or_default()
                .push((d, m));
        }
        self.rng = nas_strategies::oneshot::rng_in_state(&state)?;
        Ok(())
    }
}

export_strategy!(Pnas, "pnas", "0.3.0");
