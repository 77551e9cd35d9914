//! Grid search: enumerates every architecture of the space exactly once, as a mixed-radix
//! number over the choices (the first choice varies slowest). Input choices count their
//! index combinations in lexicographic order; choices inside a `Repeat` are digits only
//! while that repeat builds their block, so no architecture comes twice; a value a space
//! lists twice (`16` and `16.0`) is enumerated once. An input choice whose candidates are
//! edges with op choices of their own (a `darts` node) is one digit over its picks and
//! the picked edges' ops together, so the op of an edge the node does not pick is never
//! a digit (nor named in what `ask` returns): each network comes once. `ask` returns `None` once every
//! architecture has been proposed. The saved state is the position; a tell of the
//! architecture at the position (a host replaying trials journaled after the last save)
//! moves past it.
//!
//! Config:
//! - `shuffle` (bool, default `false`): visit the architectures in a seeded random order
//!   (a keyed permutation of the positions, so nothing is materialised).
//!
//! Spaces with more than 10^7 architectures are refused.

use nas_strategies::choices;
use nas_strategies::oneshot::state_field;

use choices::{combination, same_value};
use nas_strategies::arch::{edge_input, edge_op_position, is_edge_op};
use nas_strategies::{
    config_field, export_strategy, json, Architecture, Choice, ChoiceKind, Metrics, Rng, Setup,
    Strategy, Value,
};
use std::collections::HashMap;

/// The most architectures a grid enumerates.
pub const MAX_ARCHITECTURES: u64 = 10_000_000;

/// Counting states kept before giving up on a pathological space.
const MEMO_CAP: usize = 4_000_000;

/// The distinct decisions of one choice, in the space's order.
enum Digits {
    /// Layer, value and repeat choices: their distinct options.
    List(Vec<Value>),
    /// Input choices: every `k`-subset of `n` inputs.
    Comb { n: usize, k: usize, count: u128 },
    /// Input choices whose candidates are edges with op choices: each pick (in the order
    /// of `Comb`) with each combination of its edges' ops (the last edge's op varying
    /// fastest). `ops[e]`: edge `e`'s op label and distinct options (`None`: the space
    /// has no such choice, and the edge has no op to name).
    Edges {
        picks: Vec<(Vec<usize>, u128)>,
        ops: Vec<Option<(String, Vec<Value>)>>,
        count: u128,
    },
}

impl Digits {
    fn len(&self) -> u128 {
        match self {
            Digits::List(v) => v.len() as u128,
            Digits::Comb { count, .. } | Digits::Edges { count, .. } => *count,
        }
    }

    /// Decision `k` of the choice labelled `label`: its value, and for a pick of edges
    /// the picked edges' ops.
    fn decide(&self, label: &str, mut k: u128) -> Vec<(String, Value)> {
        match self {
            Digits::List(v) => vec![(label.to_string(), v[k as usize].clone())],
            Digits::Comb { n, k: m, .. } => {
                vec![(label.to_string(), Value::from(combination(*n, *m, k)))]
            }
            Digits::Edges { picks, ops, .. } => {
                for (pick, ways) in picks {
                    if k >= *ways {
                        k -= ways;
                        continue;
                    }
                    let mut out = vec![(label.to_string(), Value::from(pick.clone()))];
                    let mut at = vec![];
                    for &e in pick.iter().rev() {
                        if let Some((op, vals)) = &ops[e] {
                            let m = vals.len() as u128;
                            at.push((op.clone(), vals[(k % m) as usize].clone()));
                            k /= m;
                        }
                    }
                    out.extend(at.into_iter().rev());
                    return out;
                }
                unreachable!("grid: decision past the choice's count")
            }
        }
    }

    /// The value of decision `k` (for a repeat: its depth).
    fn value(&self, k: u128) -> Value {
        self.decide("", k).swap_remove(0).1
    }
}

/// Which repeats are at which depth while counting or decoding (`None`: not decided, or
/// the repeat itself is inactive).
type Depths = Vec<Option<usize>>;

pub struct Grid {
    space: Vec<Choice>,
    digits: Vec<Digits>,
    /// For a repeat-scoped choice: (the repeat's id, the block index).
    parent: Vec<Option<(usize, usize)>>,
    /// For a repeat choice: its id (an index into `Depths`).
    repeat_id: Vec<Option<usize>>,
    /// The op choices of edges: their input choice's digit decides them.
    edge_op: Vec<bool>,
    /// For each position, the repeats that choices at or after it depend on.
    relevant: Vec<Vec<usize>>,
    /// Architectures of the choices from a position on, given the relevant depths.
    memo: HashMap<(usize, Depths), (u128, f64)>,
    n_repeats: usize,
    total: u64,
    position: u64,
    shuffle: bool,
    key: u64,
}

impl Grid {
    /// How many architectures the space has.
    pub fn size(&self) -> u64 {
        self.total
    }

    /// How many architectures have been proposed.
    pub fn position(&self) -> u64 {
        self.position
    }

    fn is_active(&self, i: usize, depths: &Depths) -> bool {
        match self.parent[i] {
            None => true,
            Some((r, block)) => depths[r].is_some_and(|d| d > block),
        }
    }

    fn depth(&self, i: usize, k: u128) -> usize {
        self.digits[i].value(k).as_u64().unwrap_or(0) as usize
    }

    /// The number of architectures of the choices from `i` on (saturating, and as an
    /// approximate float for spaces too large to count exactly).
    fn count(&mut self, i: usize, depths: &mut Depths) -> Result<(u128, f64), String> {
        if i == self.space.len() {
            return Ok((1, 1.0));
        }
        let key = (
            i,
            self.relevant[i]
                .iter()
                .map(|&r| depths[r])
                .collect::<Vec<_>>(),
        );
        if let Some(&v) = self.memo.get(&key) {
            return Ok(v);
        }
        let v = if self.edge_op[i] || !self.is_active(i, depths) {
            self.count(i + 1, depths)?
        } else if let Some(r) = self.repeat_id[i] {
            let mut total = (0u128, 0f64);
            for k in 0..self.digits[i].len() {
                depths[r] = Some(self.depth(i, k));
                let (a, b) = self.count(i + 1, depths)?;
                total = (total.0.saturating_add(a), total.1 + b);
            }
            depths[r] = None;
            total
        } else {
            let m = self.digits[i].len();
            let (a, b) = self.count(i + 1, depths)?;
            (a.saturating_mul(m), b * m as f64)
        };
        if self.memo.len() >= MEMO_CAP {
            return Err(format!(
                "grid: the space's repeats combine in more than {MEMO_CAP} ways, far more \
                 architectures than the {MAX_ARCHITECTURES} a grid can enumerate"
            ));
        }
        self.memo.insert(key, v);
        Ok(v)
    }

    /// The architecture at position `rank` of the enumeration (`rank < size`).
    fn unrank(&mut self, mut rank: u128) -> Result<Architecture, String> {
        let mut depths: Depths = vec![None; self.n_repeats];
        let mut arch = Architecture::new();
        for i in 0..self.space.len() {
            if self.edge_op[i] || !self.is_active(i, &depths) {
                continue;
            }
            let k = match self.repeat_id[i] {
                Some(r) => {
                    let mut k = 0;
                    loop {
                        depths[r] = Some(self.depth(i, k));
                        let (c, _) = self.count(i + 1, &mut depths)?;
                        if rank < c || k + 1 == self.digits[i].len() {
                            break k;
                        }
                        rank -= c;
                        k += 1;
                    }
                }
                None => {
                    let (c, _) = self.count(i + 1, &mut depths)?;
                    let k = rank / c.max(1);
                    rank %= c.max(1);
                    k
                }
            };
            arch.extend(self.digits[i].decide(&self.space[i].label, k));
        }
        Ok(arch)
    }

    /// A keyed bijection of `0..total` (a Feistel network over the next power of four,
    /// cycle-walking back into range).
    fn permute(&self, mut x: u64) -> u64 {
        let n = self.total;
        if n <= 2 {
            return if n == 2 && self.key & 1 == 1 {
                1 - x
            } else {
                x
            };
        }
        let bits = 64 - (n - 1).leading_zeros();
        let half = bits.div_ceil(2);
        let mask = (1u64 << half) - 1;
        loop {
            let (mut l, mut r) = (x >> half, x & mask);
            for round in 0..4u64 {
                let f = mix(self.key ^ round.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ r) & mask;
                (l, r) = (r, l ^ f);
            }
            x = (l << half) | r;
            if x < n {
                return x;
            }
        }
    }
}

/// SplitMix64's finaliser.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A choice's distinct options, in the space's order (a value listed twice once).
fn options(c: &Choice) -> Vec<Value> {
    let vals: Vec<Value> = match &c.kind {
        ChoiceKind::Layer { candidates } => {
            candidates.iter().map(|s| Value::from(s.clone())).collect()
        }
        ChoiceKind::Value { values } => values.clone(),
        ChoiceKind::Repeat { depths } => depths.iter().map(|&d| Value::from(d)).collect(),
        ChoiceKind::Input { n_candidates, .. } => (0..*n_candidates).map(Value::from).collect(),
    };
    let mut out: Vec<Value> = vec![];
    for v in vals {
        if !out.iter().any(|x| same_value(x, &v)) {
            out.push(v);
        }
    }
    out
}

/// The digit of choice `j` of `space`.
fn digits(space: &[Choice], j: usize) -> Digits {
    let c = &space[j];
    if let Some((n, k)) = edge_input(c) {
        let ops: Vec<Option<(String, Vec<Value>)>> = c
            .edge_ops
            .iter()
            .map(|op| edge_op_position(space, j, op).map(|o| (op.clone(), options(&space[o]))))
            .collect();
        let picks: Vec<(Vec<usize>, u128)> = (0..choices::binomial(n, k))
            .map(|r| {
                let pick = combination(n, k, r);
                let ways = pick
                    .iter()
                    .filter_map(|&e| ops.get(e)?.as_ref())
                    .fold(1u128, |w, (_, vals)| w.saturating_mul(vals.len() as u128));
                (pick, ways)
            })
            .collect();
        let count = picks.iter().fold(0u128, |t, (_, w)| t.saturating_add(*w));
        return Digits::Edges { picks, ops, count };
    }
    match &c.kind {
        ChoiceKind::Input {
            n_candidates,
            n_chosen,
            ..
        } => Digits::Comb {
            n: *n_candidates,
            k: *n_chosen,
            count: choices::binomial(*n_candidates, *n_chosen),
        },
        _ => Digits::List(options(c)),
    }
}

impl Strategy for Grid {
    fn new(setup: &Setup) -> Result<Self, String> {
        nas_strategies::check_config_fields(&setup.config, "grid", &["shuffle"])?;
        let shuffle: bool = config_field(&setup.config, "shuffle", false)?;
        let space = setup.space.clone();
        let mut repeat_id = vec![None; space.len()];
        let mut n_repeats = 0;
        for (i, c) in space.iter().enumerate() {
            if matches!(c.kind, ChoiceKind::Repeat { .. }) {
                repeat_id[i] = Some(n_repeats);
                n_repeats += 1;
            }
        }
        let mut parent = vec![None; space.len()];
        for (i, c) in space.iter().enumerate() {
            if let Some((rep, block)) = &c.inside {
                let r = space[..i]
                    .iter()
                    .position(|p| p.label == *rep && matches!(p.kind, ChoiceKind::Repeat { .. }))
                    .ok_or_else(|| {
                        format!(
                            "choice `{}` is inside `{rep}`, which is not a repeat defined \
                             before it",
                            c.label
                        )
                    })?;
                parent[i] = Some((repeat_id[r].unwrap(), *block));
            }
        }
        let mut relevant = vec![vec![]; space.len() + 1];
        for i in (0..space.len()).rev() {
            let mut r = relevant[i + 1].clone();
            if let Some((p, _)) = parent[i] {
                if !r.contains(&p) {
                    r.push(p);
                    r.sort_unstable();
                }
            }
            relevant[i] = r;
        }
        let mut g = Grid {
            digits: (0..space.len()).map(|j| digits(&space, j)).collect(),
            edge_op: space.iter().map(|c| is_edge_op(&space, c)).collect(),
            space,
            parent,
            repeat_id,
            relevant,
            memo: HashMap::new(),
            n_repeats,
            total: 0,
            position: 0,
            shuffle,
            key: Rng::new(setup.seed).next_u64(),
        };
        let (exact, approx) = g.count(0, &mut vec![None; n_repeats])?;
        if exact > MAX_ARCHITECTURES as u128 {
            let size = if exact == u128::MAX {
                format!("about {approx:.3e}")
            } else {
                exact.to_string()
            };
            return Err(format!(
                "grid: the space has {size} architectures, more than the {MAX_ARCHITECTURES} \
                 (10^7) a grid enumerates; use a sampling strategy or a smaller space"
            ));
        }
        g.total = exact as u64;
        Ok(g)
    }

    fn ask(&mut self) -> Result<Option<Architecture>, String> {
        if self.position >= self.total {
            return Ok(None);
        }
        let at = if self.shuffle {
            self.permute(self.position)
        } else {
            self.position
        };
        self.position += 1;
        self.unrank(at as u128).map(Some)
    }

    /// Tells are only looked at for one thing: a tell of the architecture the grid would
    /// propose next moves past it. That is what a host replaying trials journaled after
    /// the last saved state does, and it keeps them from being proposed twice. (A trial
    /// told after its ask is never the next one: every position is a different
    /// architecture.)
    fn tell(&mut self, arch: &Architecture, _: &Metrics) -> Result<(), String> {
        if self.position >= self.total {
            return Ok(());
        }
        let at = if self.shuffle {
            self.permute(self.position)
        } else {
            self.position
        };
        let next = self.unrank(at as u128)?;
        if choices::canonical(&self.space, &next).ok() == choices::canonical(&self.space, arch).ok()
        {
            self.position += 1;
        }
        Ok(())
    }

    fn save(&self) -> Result<Value, String> {
        Ok(json!({
            "position": self.position,
            "size": self.total,
            "shuffle": self.shuffle,
        }))
    }

    fn load(&mut self, state: Value) -> Result<(), String> {
        let size: u64 = state_field(&state, "size")?;
        if size != self.total {
            return Err(format!(
                "saved grid state is for a space of {size} architectures; this space has {} \
                 (a state of another space, or saved by grid before 0.2.0, which counted \
                 the ops of edges a node does not pick)",
                self.total
            ));
        }
        let shuffle: bool = state_field(&state, "shuffle")?;
        if shuffle != self.shuffle {
            return Err(format!(
                "saved grid state has shuffle = {shuffle}; this grid has shuffle = {}",
                self.shuffle
            ));
        }
        let position: u64 = state_field(&state, "position")?;
        if position > self.total {
            return Err(format!(
                "saved grid position {position} is past the space's {} architectures",
                self.total
            ));
        }
        self.position = position;
        Ok(())
    }
}

export_strategy!(Grid, "grid", "0.2.0");
