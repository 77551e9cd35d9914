//! GeNet (Xie & Yuille, "Genetic CNN", ICCV 2017): a genetic algorithm over a
//! fixed-length binary genome, with the paper's roulette selection, block-wise crossover,
//! bit-flip mutation, and re-evaluation of every individual in every generation.
//!
//! # Encoding
//!
//! Every choice of the space, in definition order, is one gene block; a block plays the
//! part of one of the paper's stages (crossover exchanges whole blocks).
//!
//! - An input choice picking `k` of `n` candidates is `n` connection bits: bit `i` set
//!   means candidate `i` is an input, as in the paper's stage codes (bit `(i, j)`: node
//!   `j` takes node `i`'s output). A block whose number of set bits is not `k` (after a
//!   mutation, or in a random initial genome) is repaired: random set bits are cleared,
//!   or random clear bits set, one at a time, until exactly `k` are set.
//! - A layer, value or repeat choice with `m` options is the option's index in
//!   `ceil(log2 m)` bits, most significant first (a choice with one option has no bits).
//!   A code `>= m` is out of range and is never kept: a random initial block is redrawn,
//!   and a mutated block is mutated again from its parent's block, until it is in range.
//!   So every option is equally likely in the initial population, and a block whose bits
//!   are all flipped with probability 1/2 decodes to a uniformly random option (no code
//!   is folded onto another, as wrapping modulo `m` would do).
//!
//! Choices inside a `Repeat` keep their blocks while the repeat does not build them, so
//! the genome has one length for the whole search and a block comes back when the depth
//! grows again. The architecture of a genome holds the active choices only.
//!
//! # Search
//!
//! Generations of `population` individuals; the first is random bits (repaired or
//! redrawn as above). Every individual of a generation is asked, survivors included.
//! An individual's fitness is its accuracy (not finite: 0), and an architecture told
//! more than once (a survivor, a duplicate in one generation, an architecture bred again
//! later) has the mean of all its scores, so a lucky single-seed score is diluted by
//! every later one instead of keeping the individual ahead.
//! Once every individual of the generation has been told, the next one is bred:
//!
//! 1. Selection (roulette): `population` draws with replacement, individual `n` drawn
//!    with probability proportional to `r_n - r_min` (`r_min` the generation's lowest
//!    fitness, so a least fit individual is never drawn while another is fitter);
//!    uniform when every fitness is equal.
//! 2. Crossover: the draws in consecutive pairs (0 and 1, 2 and 3, ...; an odd last one
//!    has no partner); a pair is crossed with probability `p_crossover`, and then each
//!    block is exchanged with probability `q_crossover`.
//! 3. Mutation: each individual that was not in a crossed pair is mutated with
//!    probability `p_mutation` (the paper's Algorithm 1: "for each non-crossover
//!    individual"), and then each bit is flipped with probability `q_mutation` (then the
//!    block is repaired or redrawn as above).
//!
//! Config: `population` (default 20, 2..=100000; when the budget is known, also at most
//! the budget (or 2 for a budget of 1), and the default shrinks to it: every member is
//! one trial), `p_crossover` (0.2), `q_crossover` (0.2), `p_mutation` (0.8),
//! `q_mutation` (0.05), the paper's CIFAR-10 values; each is checked (a probability in [0, 1])
//! and an error names the field and its value. The options of the binary-coded
//! algorithm this plugin was before (`crossover`, `crossover_type`, `mutation`,
//! `tournament`, `elite`) are errors that say what replaced them.
//!
//! # Differences from the paper, and why
//!
//! - Blocks are choices, not stages, and non-input choices are binary-coded indices: the
//!   paper searches connections only (every node's op is fixed), our spaces also pick
//!   ops, widths and depths.
//! - Out-of-range codes are rejected (the paper's codes have none): folding them onto
//!   valid ones would make some options twice as likely as others. If 1000 mutations of
//!   a block in a row are out of range (possible only with `q_mutation` near 1), the
//!   block keeps its parent's code.
//! - An input choice has exactly `k` inputs, so its connection bits are repaired to `k`
//!   set bits: GeNet's in-degree is free (and a node without inputs is dropped), ours is
//!   fixed by the space.
//! - Inactive blocks (choices of repeat blocks not built, and the ops of cell edges
//!   their input choice does not pick) are carried, crossed over and mutated like the
//!   others: the paper has no variable-depth spaces or edge ops. An edge picked anew
//!   takes the op its latent block carries.
//! - Re-evaluation averages per architecture (every score ever told for it), not per
//!   individual: two individuals that decode to one architecture are one network.
//! - Asks may run ahead of tells. An ask made while every individual of the generation
//!   is out (asked, not yet told) returns a random extra architecture that does not
//!   belong to the generation (the paper evaluates a generation in lock step); its score
//!   counts towards that architecture's mean if it is ever bred. A tell of an
//!   individual not asked yet (a host replaying trials journaled after the last saved
//!   state) counts for it, so it is not asked again.
//! - There is no number of generations (the paper's T = 50): generations are bred until
//!   the host stops asking; the paper's 50 generations of 20 are 1000 trials.
//!
//! With the paper's rates about half of the individuals of a generation are unchanged
//! survivors, so about half of the asks re-evaluate architectures already told. That is
//! the point on a noisy objective at the paper's scale, but it costs exploration on a
//! small budget: on the NAS-Bench-201 table (single-seed answers) GeNet beats random
//! search at 1000 queries and falls below it at 150 (see `tests/nb201.rs`).

use nas_strategies::choices::{
    active_flags, canonical, in_built_block, index_of, input_indices, option, size,
};
use nas_strategies::{
    check_config_fields, config_field, export_strategy, json, validate, Architecture, Choice,
    ChoiceKind, Metrics, Rng, Setup, Strategy, Value,
};
use std::collections::BTreeMap;

/// How one choice is coded.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Block {
    /// An option index below `options` in `bits` bits, most significant first.
    Code { bits: usize, options: u128 },
    /// One bit per candidate (set: it is an input); exactly `chosen` are set.
    Connections { candidates: usize, chosen: usize },
}

impl Block {
    fn of(c: &Choice) -> Block {
        match c.kind {
            ChoiceKind::Input {
                n_candidates,
                n_chosen,
                ..
            } => Block::Connections {
                candidates: n_candidates,
                chosen: n_chosen,
            },
            _ => {
                let options = size(c);
                Block::Code {
                    bits: bits_for(options),
                    options,
                }
            }
        }
    }

    fn len(self) -> usize {
        match self {
            Block::Code { bits, .. } => bits,
            Block::Connections { candidates, .. } => candidates,
        }
    }
}

/// Bits a choice of `n` options takes: ceil(log2(n)).
fn bits_for(n: u128) -> usize {
    if n <= 1 {
        0
    } else {
        (128 - (n - 1).leading_zeros()) as usize
    }
}

fn code_of(bits: &[bool]) -> u128 {
    bits.iter().fold(0u128, |acc, &b| (acc << 1) | b as u128)
}

/// The bit ranges of a space's gene blocks, in definition order.
fn layout(space: &[Choice]) -> Vec<(Block, std::ops::Range<usize>)> {
    let mut at = 0;
    space
        .iter()
        .map(|c| {
            let b = Block::of(c);
            at += b.len();
            (b, at - b.len()..at)
        })
        .collect()
}

/// The length of a genome of this space.
pub fn genome_len(space: &[Choice]) -> usize {
    space.iter().map(|c| Block::of(c).len()).sum()
}

/// The genome of an architecture. Choices it does not use (inactive repeat blocks, the ops of
/// edges no input choice picks) get option 0: a code of zeros, or the first `k`
/// connection bits set.
pub fn encode(space: &[Choice], arch: &Architecture) -> Result<Vec<bool>, String> {
    let mut out = Vec::with_capacity(genome_len(space));
    for (c, on) in space.iter().zip(active_flags(space, arch)) {
        let value = if on {
            Some(
                arch.get(&c.label)
                    .ok_or_else(|| format!("missing choice `{}`", c.label))?,
            )
        } else {
            None
        };
        let bad = |v: &Value| format!("`{}`: {v} is not one of its options", c.label);
        match Block::of(c) {
            Block::Code { bits, .. } => {
                let k = match value {
                    Some(v) => index_of(c, v).ok_or_else(|| bad(v))?,
                    None => 0,
                };
                out.extend((0..bits).rev().map(|b| (k >> b) & 1 == 1));
            }
            Block::Connections { candidates, chosen } => {
                let idx = match value {
                    Some(v) => input_indices(v, candidates, chosen).ok_or_else(|| bad(v))?,
                    None => (0..chosen).collect(),
                };
                out.extend((0..candidates).map(|i| idx.contains(&i)));
            }
        }
    }
    Ok(out)
}

/// The decision a gene block stands for, or why it stands for none: a code out of range,
/// or connection bits with the wrong number set.
pub fn decode_block(c: &Choice, bits: &[bool]) -> Result<Value, String> {
    let block = Block::of(c);
    if bits.len() != block.len() {
        return Err(format!(
            "`{}`: {} bits, not the {} of its block",
            c.label,
            bits.len(),
            block.len()
        ));
    }
    match block {
        Block::Code { options, .. } => {
            let k = code_of(bits);
            if k >= options {
                return Err(format!(
                    "`{}`: code {k} is out of range ({options} options)",
                    c.label
                ));
            }
            Ok(option(c, k))
        }
        Block::Connections { chosen, .. } => {
            let idx: Vec<usize> = (0..bits.len()).filter(|&i| bits[i]).collect();
            if idx.len() != chosen {
                return Err(format!(
                    "`{}`: {} connection bits set, not {chosen}",
                    c.label,
                    idx.len()
                ));
            }
            Ok(Value::from(idx))
        }
    }
}

/// The architecture a genome stands for; an error names the first block that is out of
/// range (every block is checked, the inactive ones too).
pub fn decode(space: &[Choice], genome: &[bool]) -> Result<Architecture, String> {
    if genome.len() != genome_len(space) {
        return Err(format!(
            "the genome has {} bits; this space's has {}",
            genome.len(),
            genome_len(space)
        ));
    }
    let mut arch = Architecture::new();
    for (c, (_, r)) in space.iter().zip(layout(space)) {
        let v = decode_block(c, &genome[r])?;
        if in_built_block(c, &arch) {
            arch.insert(c.label.clone(), v);
        }
    }
    // The ops of edges no input choice picks are genes the network does not build.
    for (c, on) in space.iter().zip(active_flags(space, &arch)) {
        if !on {
            arch.remove(&c.label);
        }
    }
    Ok(arch)
}

/// A uniform draw in [0, 1) with 53 bits.
fn unit(rng: &mut Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

fn chance(rng: &mut Rng, p: f64) -> bool {
    unit(rng) < p
}

/// Sets or clears random bits, one at a time, until exactly `k` are set.
fn repair_connections(bits: &mut [bool], k: usize, rng: &mut Rng) {
    loop {
        let set = bits.iter().filter(|&&b| b).count();
        if set == k {
            return;
        }
        // The `j`-th bit that is set (too many) or clear (too few).
        let want = set < k;
        let j = rng.below(if want { bits.len() - set } else { set });
        let i = (0..bits.len()).filter(|&i| bits[i] != want).nth(j).unwrap();
        bits[i] = want;
    }
}

/// Mutations of one block tried before it keeps its parent's code.
const MAX_REDRAWS: usize = 1000;

/// The weights of roulette selection: `r - r_min`, or all 1 when every fitness is equal.
pub fn roulette_weights(fitness: &[f64]) -> Vec<f64> {
    let min = fitness.iter().cloned().fold(f64::INFINITY, f64::min);
    let w: Vec<f64> = fitness.iter().map(|r| r - min).collect();
    let total: f64 = w.iter().sum();
    if total > 0.0 && total.is_finite() {
        w
    } else {
        vec![1.0; fitness.len()]
    }
}

/// One roulette draw: index `i` with probability `weights[i] / sum`.
pub fn spin(weights: &[f64], rng: &mut Rng) -> usize {
    let total: f64 = weights.iter().sum();
    let mut u = unit(rng) * total;
    for (i, &w) in weights.iter().enumerate() {
        if u < w {
            return i;
        }
        u -= w;
    }
    // Rounding left `u` past the end: the last individual that can be drawn.
    weights.iter().rposition(|&w| w > 0.0).unwrap()
}

#[derive(Clone)]
struct Individual {
    genome: Vec<bool>,
    arch: Architecture,
    /// The canonical form of `arch`, to match tells.
    key: Vec<Option<u128>>,
    asked: bool,
    told: bool,
}

/// Every score told for one architecture.
#[derive(Clone, Debug)]
pub struct Scores {
    arch: Architecture,
    sum: f64,
    pub count: u64,
}

pub struct Genetic {
    space: Vec<Choice>,
    blocks: Vec<(Block, std::ops::Range<usize>)>,
    pub population: usize,
    p_crossover: f64,
    q_crossover: f64,
    p_mutation: f64,
    q_mutation: f64,
    rng: Rng,
    generation: u64,
    members: Vec<Individual>,
    /// Every architecture told, by canonical form.
    pub scores: BTreeMap<Vec<Option<u128>>, Scores>,
    /// Random extras asked and not yet told.
    pub extras: usize,
}

fn probability(config: &Value, field: &str, default: f64) -> Result<f64, String> {
    let p: f64 = config_field(config, field, default)?;
    if !(0.0..=1.0).contains(&p) {
        return Err(format!(
            "config field `{field}`: {p} is not a probability in [0, 1]"
        ));
    }
    Ok(p)
}

/// Options of the binary-coded algorithm this plugin was before it followed GeNet.
const RETIRED: [(&str, &str); 5] = [
    (
        "crossover",
        "use `p_crossover` (per pair) and `q_crossover` (per block)",
    ),
    (
        "crossover_type",
        "crossover exchanges whole blocks, each with probability `q_crossover`",
    ),
    (
        "mutation",
        "use `p_mutation` (per individual) and `q_mutation` (per bit)",
    ),
    ("tournament", "selection is GeNet's roulette"),
    (
        "elite",
        "every individual is evaluated again; none is carried with its score",
    ),
];

impl Genetic {
    fn individual(&self, genome: Vec<bool>) -> Result<Individual, String> {
        let arch = decode(&self.space, &genome)?;
        validate(&self.space, &arch).map_err(|e| e.to_string())?;
        let key = canonical(&self.space, &arch)?;
        Ok(Individual {
            genome,
            arch,
            key,
            asked: false,
            told: false,
        })
    }

    /// Random bits, each block redrawn while out of range or repaired to `k` inputs.
    fn random_genome(&mut self) -> Vec<bool> {
        let mut g = vec![false; genome_len(&self.space)];
        for (block, r) in self.blocks.clone() {
            let bits = &mut g[r];
            loop {
                for b in bits.iter_mut() {
                    *b = self.rng.below(2) == 1;
                }
                match block {
                    Block::Code { options, .. } if code_of(bits) >= options => continue,
                    Block::Code { .. } => break,
                    Block::Connections { chosen, .. } => {
                        repair_connections(bits, chosen, &mut self.rng);
                        break;
                    }
                }
            }
        }
        g
    }

    /// Flips each bit with probability `q_mutation`, block by block: a code out of range
    /// is mutated again from the parent's block, connection bits are repaired.
    fn mutate(&mut self, g: &mut [bool]) {
        let q = self.q_mutation;
        for (block, r) in self.blocks.clone() {
            let bits = &mut g[r];
            match block {
                Block::Code { options, .. } => {
                    let parent = bits.to_vec();
                    let mut tries = 0;
                    loop {
                        for (b, &p) in bits.iter_mut().zip(&parent) {
                            *b = p ^ chance(&mut self.rng, q);
                        }
                        if code_of(bits) < options {
                            break;
                        }
                        tries += 1;
                        if tries == MAX_REDRAWS {
                            bits.copy_from_slice(&parent);
                            break;
                        }
                    }
                }
                Block::Connections { chosen, .. } => {
                    for b in bits.iter_mut() {
                        *b ^= chance(&mut self.rng, q);
                    }
                    repair_connections(bits, chosen, &mut self.rng);
                }
            }
        }
    }

    /// The mean of every score told for an architecture (by canonical form).
    pub fn mean(&self, key: &[Option<u128>]) -> Option<f64> {
        self.scores.get(key).map(|s| s.sum / s.count as f64)
    }

    /// `population` roulette draws over the generation with these fitnesses.
    fn select(&mut self, fitness: &[f64]) -> Vec<usize> {
        let w = roulette_weights(fitness);
        (0..self.population)
            .map(|_| spin(&w, &mut self.rng))
            .collect()
    }

    fn breed(&mut self) -> Result<(), String> {
        let fitness: Vec<f64> = self
            .members
            .iter()
            .map(|m| self.mean(&m.key).expect("every member was told"))
            .collect();
        let picks = self.select(&fitness);
        let mut genomes: Vec<Vec<bool>> = picks
            .iter()
            .map(|&i| self.members[i].genome.clone())
            .collect();
        // Algorithm 1 of the paper: pairs cross over with probability p_C, then each
        // individual that did not cross over mutates with probability p_M.
        let mut crossed = vec![false; genomes.len()];
        for (pair, done) in genomes.chunks_mut(2).zip(crossed.chunks_mut(2)) {
            if let [a, b] = pair {
                if chance(&mut self.rng, self.p_crossover) {
                    done.fill(true);
                    for (_, r) in self.blocks.clone() {
                        if !r.is_empty() && chance(&mut self.rng, self.q_crossover) {
                            a[r.clone()].swap_with_slice(&mut b[r]);
                        }
                    }
                }
            }
        }
        let mut next = Vec::with_capacity(genomes.len());
        for (mut g, crossed) in genomes.into_iter().zip(crossed) {
            if !crossed && chance(&mut self.rng, self.p_mutation) {
                self.mutate(&mut g);
            }
            next.push(self.individual(g)?);
        }
        self.members = next;
        self.generation += 1;
        Ok(())
    }

    /// The current generation's number (0 for the first).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The current generation: each individual's architecture and the mean of every
    /// score told for that architecture so far (`None` before its first).
    pub fn members(&self) -> Vec<(Architecture, Option<f64>)> {
        self.members
            .iter()
            .map(|m| (m.arch.clone(), self.mean(&m.key)))
            .collect()
    }
}

impl Strategy for Genetic {
    fn new(setup: &Setup) -> Result<Self, String> {
        let c = &setup.config;
        for (field, instead) in RETIRED {
            if let Some(v) = c.get(field) {
                return Err(format!(
                    "config field `{field}` ({v}) is no longer an option of genetic: {instead}"
                ));
            }
        }
        check_config_fields(
            c,
            "genetic",
            &[
                "population",
                "p_crossover",
                "q_crossover",
                "p_mutation",
                "q_mutation",
            ],
        )?;
        // Every member is made at creation and is one trial: no more members than the
        // budget has trials (when it is known), and a stated cap keeps that finite.
        let most = match setup.budget {
            0 => nas_strategies::MAX_POPULATION,
            b => b.clamp(2, nas_strategies::MAX_POPULATION),
        };
        let population = nas_strategies::config_count(c, "population", 20.min(most), 2, most)?;
        if let Some(c) = setup.space.iter().find(|c| size(c) == 0) {
            return Err(format!("choice `{}` has no options to encode", c.label));
        }
        let mut g = Genetic {
            space: setup.space.clone(),
            blocks: layout(&setup.space),
            population,
            p_crossover: probability(c, "p_crossover", 0.2)?,
            q_crossover: probability(c, "q_crossover", 0.2)?,
            p_mutation: probability(c, "p_mutation", 0.8)?,
            q_mutation: probability(c, "q_mutation", 0.05)?,
            rng: Rng::new(setup.seed),
            generation: 0,
            members: vec![],
            scores: BTreeMap::new(),
            extras: 0,
        };
        for _ in 0..population {
            let genome = g.random_genome();
            let ind = g.individual(genome)?;
            g.members.push(ind);
        }
        Ok(g)
    }

    fn ask(&mut self) -> Result<Option<Architecture>, String> {
        if let Some(m) = self.members.iter_mut().find(|m| !m.asked) {
            m.asked = true;
            return Ok(Some(m.arch.clone()));
        }
        self.extras += 1;
        Ok(Some(nas_strategies::random_architecture(
            &self.space,
            &mut self.rng,
        )))
    }

    fn tell(&mut self, arch: &Architecture, metrics: &Metrics) -> Result<(), String> {
        let key = canonical(&self.space, arch)
            .map_err(|e| format!("tell: the architecture does not fit the space: {e}"))?;
        let fitness = if metrics.accuracy.is_finite() {
            metrics.accuracy
        } else {
            0.0
        };
        let s = self.scores.entry(key.clone()).or_insert_with(|| Scores {
            arch: arch.clone(),
            sum: 0.0,
            count: 0,
        });
        s.sum += fitness;
        s.count += 1;
        // An individual that is out, else one not yet asked: a host replaying trials
        // journaled after the last saved state tells those before asking them again.
        let out = self
            .members
            .iter()
            .position(|m| m.asked && !m.told && m.key == key);
        let unasked = || self.members.iter().position(|m| !m.asked && m.key == key);
        match out.or_else(unasked) {
            Some(i) => {
                let m = &mut self.members[i];
                m.asked = true;
                m.told = true;
                if self.members.iter().all(|m| m.told) {
                    self.breed()?;
                }
            }
            None => self.extras = self.extras.saturating_sub(1),
        }
        Ok(())
    }

    fn save(&self) -> Result<Value, String> {
        let members: Vec<Value> = self
            .members
            .iter()
            .map(|m| {
                let genome: String = m
                    .genome
                    .iter()
                    .map(|&b| if b { '1' } else { '0' })
                    .collect();
                json!({ "genome": genome, "asked": m.asked, "told": m.told })
            })
            .collect();
        let scores: Vec<Value> = self
            .scores
            .values()
            // The sum as Rust's shortest decimal that reads back to the same float:
            // a JSON number may come back one unit in the last place off.
            .map(|s| json!({ "arch": s.arch, "sum": s.sum.to_string(), "count": s.count }))
            .collect();
        Ok(json!({
            "rng": self.rng.state(),
            "generation": self.generation,
            "extras": self.extras,
            "members": members,
            "scores": scores,
        }))
    }

    fn load(&mut self, state: Value) -> Result<(), String> {
        let rng = nas_strategies::oneshot::rng_in_state(&state)?;
        let generation: u64 = config_field(&state, "generation", 0)?;
        let extras: usize = config_field(&state, "extras", 0)?;
        let raw_scores: Vec<Value> = config_field(&state, "scores", vec![])?;
        let mut scores = BTreeMap::new();
        for (i, v) in raw_scores.iter().enumerate() {
            let at = |e: String| format!("saved score {i}: {e}");
            let arch: Architecture = config_field(v, "arch", Architecture::new()).map_err(at)?;
            let key = canonical(&self.space, &arch).map_err(at)?;
            let text: String = config_field(v, "sum", String::new()).map_err(at)?;
            let sum: f64 = text
                .parse()
                .map_err(|_| at(format!("sum `{text}` is not a number")))?;
            let count: u64 = config_field(v, "count", 0).map_err(at)?;
            if count == 0 || !sum.is_finite() {
                return Err(at(format!("{count} scores summing to {sum}")));
            }
            scores.insert(key, Scores { arch, sum, count });
        }
        let raw: Vec<Value> = config_field(&state, "members", vec![])?;
        let len = genome_len(&self.space);
        let mut members = vec![];
        for (i, v) in raw.iter().enumerate() {
            let at = |e: String| format!("saved member {i}: {e}");
            let text: String = config_field(v, "genome", String::new()).map_err(at)?;
            if text.len() != len || !text.chars().all(|c| c == '0' || c == '1') {
                return Err(at(format!(
                    "genome `{text}` is not {len} bits of this space's encoding"
                )));
            }
            let mut ind = self
                .individual(text.chars().map(|c| c == '1').collect())
                .map_err(at)?;
            ind.told = config_field(v, "told", false).map_err(at)?;
            ind.asked = config_field(v, "asked", false).map_err(at)? || ind.told;
            if ind.told && !scores.contains_key(&ind.key) {
                return Err(at("told, but its architecture has no saved score".into()));
            }
            members.push(ind);
        }
        if members.len() != self.population {
            return Err(format!(
                "saved generation has {} members; this strategy's population is {}",
                members.len(),
                self.population
            ));
        }
        self.rng = rng;
        self.generation = generation;
        self.extras = extras;
        self.members = members;
        self.scores = scores;
        Ok(())
    }
}

export_strategy!(Genetic, "genetic", "0.3.0");
