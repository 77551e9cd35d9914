//! A GeNet-style genetic algorithm (Xie & Yuille, "Genetic CNN", 2017) over a
//! fixed-length binary encoding of the space.
//!
//! Encoding: every choice, in definition order, takes ceil(log2(size)) bits, most
//! significant first (a choice with one option takes none). A gene's integer past the
//! choice's size wraps modulo the size when decoding. An input choice encodes the
//! lexicographic index of its combination of inputs. Choices inside a `Repeat` are always
//! encoded and simply ignored while the repeat does not build their block, so a genome
//! keeps them across depth changes.
//!
//! Search: generations of `population` individuals; the first is random. When every
//! individual of a generation has been told, the next one is bred: the best `elite`
//! individuals are carried over with their known accuracy (not evaluated again), and the
//! rest are children of two parents picked by tournament selection (`tournament` drawn
//! with replacement, the most accurate wins), crossed over with probability `crossover`
//! (uniform or one-point) and mutated by flipping each bit with probability `mutation`.
//! An ask made while every individual of the current generation is out (asked, not yet
//! told) returns a random extra architecture that does not belong to the generation; its
//! tell is accepted and ignored. A tell of an individual not asked yet (a host replaying
//! trials journaled after the last saved state) counts for it, so it is not asked again.
//!
//! Config: `population` (default 20, at least 2), `crossover` (probability, default 0.5),
//! `crossover_type` (`"uniform"`, the default, or `"one_point"`), `mutation` (per-bit
//! probability, default 0.05), `tournament` (default 3), `elite` (default 1).
//!
//! A trial's accuracy that is not a finite number counts as 0.

use nas_strategies::choices;

use choices::{active, canonical, index_of, option, size};
use nas_strategies::{
    config_field, export_strategy, json, Architecture, Choice, Metrics, Rng, Setup, Strategy, Value,
};

/// Bits a choice of `n` options takes: ceil(log2(n)).
fn bits_for(n: u128) -> usize {
    if n <= 1 {
        0
    } else {
        (128 - (n - 1).leading_zeros()) as usize
    }
}

/// The length of a genome of this space.
pub fn genome_len(space: &[Choice]) -> usize {
    space.iter().map(|c| bits_for(size(c))).sum()
}

fn push_bits(out: &mut Vec<bool>, v: u128, n: usize) {
    for b in (0..n).rev() {
        out.push((v >> b) & 1 == 1);
    }
}

fn encode_with(
    space: &[Choice],
    arch: &Architecture,
    inactive: &mut dyn FnMut(usize) -> u128,
) -> Result<Vec<bool>, String> {
    let mut out = Vec::with_capacity(genome_len(space));
    for c in space {
        let n = bits_for(size(c));
        let v = if active(c, arch) {
            let v = arch
                .get(&c.label)
                .ok_or_else(|| format!("missing choice `{}`", c.label))?;
            index_of(c, v).ok_or_else(|| format!("`{}`: {v} is not one of its options", c.label))?
        } else {
            inactive(n)
        };
        push_bits(&mut out, v, n);
    }
    Ok(out)
}

/// The genome of an architecture; choices it does not use (inactive repeat blocks) are
/// encoded as zeros.
pub fn encode(space: &[Choice], arch: &Architecture) -> Result<Vec<bool>, String> {
    encode_with(space, arch, &mut |_| 0)
}

/// The architecture a genome stands for (genes past a choice's size wrap around).
pub fn decode(space: &[Choice], genome: &[bool]) -> Architecture {
    let mut arch = Architecture::new();
    let mut at = 0;
    for c in space {
        let n = bits_for(size(c));
        let v = genome[at..at + n]
            .iter()
            .fold(0u128, |acc, &b| (acc << 1) | b as u128);
        at += n;
        if active(c, &arch) {
            arch.insert(c.label.clone(), option(c, v % size(c)));
        }
    }
    arch
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum CrossoverType {
    Uniform,
    OnePoint,
}

#[derive(Clone)]
struct Individual {
    genome: Vec<bool>,
    arch: Architecture,
    /// The canonical form of `arch`, to match tells.
    key: Vec<Option<u128>>,
    fitness: Option<f64>,
    asked: bool,
}

pub struct Genetic {
    space: Vec<Choice>,
    population: usize,
    crossover: f32,
    crossover_type: CrossoverType,
    mutation: f32,
    tournament: usize,
    elite: usize,
    rng: Rng,
    generation: u64,
    members: Vec<Individual>,
    /// Random extras asked and not yet told.
    extras: usize,
}

fn probability(config: &Value, field: &str, default: f32) -> Result<f32, String> {
    let p: f32 = config_field(config, field, default)?;
    if !(0.0..=1.0).contains(&p) {
        return Err(format!(
            "config field `{field}`: {p} is not a probability in [0, 1]"
        ));
    }
    Ok(p)
}

impl Genetic {
    fn individual(&self, genome: Vec<bool>) -> Individual {
        let arch = decode(&self.space, &genome);
        let key = canonical(&self.space, &arch).expect("a decoded genome fits its space");
        Individual {
            genome,
            arch,
            key,
            fitness: None,
            asked: false,
        }
    }

    /// A uniformly random architecture's genome, with random genes where it is inactive.
    fn random_genome(&mut self) -> Vec<bool> {
        let arch = nas_strategies::random_architecture(&self.space, &mut self.rng);
        let rng = &mut self.rng;
        encode_with(&self.space, &arch, &mut |n| {
            (0..n).fold(0u128, |acc, _| (acc << 1) | rng.below(2) as u128)
        })
        .expect("a random architecture fits its space")
    }

    fn fitness(&self, i: usize) -> f64 {
        self.members[i].fitness.unwrap_or(f64::NEG_INFINITY)
    }

    fn select(&mut self) -> usize {
        let mut best = self.rng.below(self.members.len());
        for _ in 1..self.tournament {
            let i = self.rng.below(self.members.len());
            if self.fitness(i) > self.fitness(best) {
                best = i;
            }
        }
        best
    }

    fn breed(&mut self) {
        let mut order: Vec<usize> = (0..self.members.len()).collect();
        order.sort_by(|&a, &b| self.fitness(b).total_cmp(&self.fitness(a)));
        let mut next: Vec<Individual> = order[..self.elite]
            .iter()
            .map(|&i| self.members[i].clone())
            .collect();
        let len = genome_len(&self.space);
        while next.len() < self.population {
            let (p1, p2) = (self.select(), self.select());
            let (g1, g2) = (&self.members[p1].genome, &self.members[p2].genome);
            let (mut c1, mut c2) = (g1.clone(), g2.clone());
            if self.rng.uniform() < self.crossover {
                match self.crossover_type {
                    CrossoverType::Uniform => {
                        for b in 0..len {
                            if self.rng.below(2) == 1 {
                                std::mem::swap(&mut c1[b], &mut c2[b]);
                            }
                        }
                    }
                    CrossoverType::OnePoint if len >= 2 => {
                        let cut = 1 + self.rng.below(len - 1);
                        c1[cut..].copy_from_slice(&g2[cut..]);
                        c2[cut..].copy_from_slice(&g1[cut..]);
                    }
                    CrossoverType::OnePoint => {}
                }
            }
            for mut c in [c1, c2] {
                if next.len() < self.population {
                    for b in c.iter_mut() {
                        if self.rng.uniform() < self.mutation {
                            *b = !*b;
                        }
                    }
                    let ind = self.individual(c);
                    next.push(ind);
                }
            }
        }
        self.members = next;
        self.generation += 1;
    }

    /// The current generation's number (0 for the first).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The current generation: each individual's architecture and accuracy (once told).
    pub fn members(&self) -> Vec<(Architecture, Option<f64>)> {
        self.members
            .iter()
            .map(|m| (m.arch.clone(), m.fitness))
            .collect()
    }
}

impl Strategy for Genetic {
    fn new(setup: &Setup) -> Result<Self, String> {
        let c = &setup.config;
        nas_strategies::check_config_fields(
            c,
            "genetic",
            &[
                "population",
                "crossover",
                "crossover_type",
                "mutation",
                "tournament",
                "elite",
            ],
        )?;
        let population: usize = config_field(c, "population", 20)?;
        if population < 2 {
            return Err(format!(
                "config field `population`: {population} must be at least 2"
            ));
        }
        let crossover = probability(c, "crossover", 0.5)?;
        let mutation = probability(c, "mutation", 0.05)?;
        let crossover_type =
            match config_field(c, "crossover_type", "uniform".to_string())?.as_str() {
                "uniform" => CrossoverType::Uniform,
                "one_point" => CrossoverType::OnePoint,
                other => {
                    return Err(format!(
                        "config field `crossover_type`: `{other}` is not `uniform` or `one_point`"
                    ))
                }
            };
        let tournament: usize = config_field(c, "tournament", 3)?;
        if tournament == 0 {
            return Err("config field `tournament`: must be at least 1".into());
        }
        let elite: usize = config_field(c, "elite", 1)?;
        if elite >= population {
            return Err(format!(
                "config field `elite`: {elite} must be below the population ({population})"
            ));
        }
        if let Some(c) = setup.space.iter().find(|c| size(c) == 0) {
            return Err(format!("choice `{}` has no options to encode", c.label));
        }
        let mut g = Genetic {
            space: setup.space.clone(),
            population,
            crossover,
            crossover_type,
            mutation,
            tournament,
            elite,
            rng: Rng::new(setup.seed),
            generation: 0,
            members: vec![],
            extras: 0,
        };
        for _ in 0..population {
            let genome = g.random_genome();
            let ind = g.individual(genome);
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
        // An individual that is out, else one not yet asked: a host replaying trials
        // journaled after the last saved state tells those before asking them again.
        let out = self
            .members
            .iter()
            .position(|m| m.asked && m.fitness.is_none() && m.key == key);
        let unasked = || self.members.iter().position(|m| !m.asked && m.key == key);
        match out.or_else(unasked) {
            Some(i) => {
                let m = &mut self.members[i];
                m.asked = true;
                m.fitness = Some(fitness);
                if self.members.iter().all(|m| m.fitness.is_some()) {
                    self.breed();
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
                json!({ "genome": genome, "fitness": m.fitness, "asked": m.asked })
            })
            .collect();
        Ok(json!({
            "rng": self.rng.state(),
            "generation": self.generation,
            "extras": self.extras,
            "members": members,
        }))
    }

    fn load(&mut self, state: Value) -> Result<(), String> {
        let rng: [u64; 4] = config_field(&state, "rng", self.rng.state())?;
        let generation: u64 = config_field(&state, "generation", 0)?;
        let extras: usize = config_field(&state, "extras", 0)?;
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
            let mut ind = self.individual(text.chars().map(|c| c == '1').collect());
            ind.fitness = config_field(v, "fitness", None).map_err(at)?;
            ind.asked = config_field(v, "asked", false).map_err(at)? || ind.fitness.is_some();
            members.push(ind);
        }
        if members.len() != self.population {
            return Err(format!(
                "saved generation has {} members; this strategy's population is {}",
                members.len(),
                self.population
            ));
        }
        self.rng = Rng::from_state(rng);
        self.generation = generation;
        self.extras = extras;
        self.members = members;
        Ok(())
    }
}

export_strategy!(Genetic, "genetic", "0.1.0");

#[cfg(test)]
mod tests {
    use super::*;
    use nas_core::space::arch::validate;
    use nas_strategies::testing::{
        agreement, choice, layer, metrics, nested_space as space, run_validating as run,
    };
    use nas_strategies::{serde_json, ChoiceKind, Reduce};

    fn setup(space: Vec<Choice>, config: Value, seed: u64) -> Setup {
        Setup {
            space,
            config,
            seed,
            budget: 300,
        }
    }

    #[test]
    fn encoding_lengths_and_round_trips() {
        let sp = space(3, 4);
        // 3 * 2 bits, skip: 6 combos -> 3, depth: 3 -> 2, blk0: 2, width: 3 values -> 2,
        // inner: 1, inner0: 2, blk2: 2.
        assert_eq!(genome_len(&sp), 6 + 3 + 2 + 2 + 2 + 1 + 2 + 2);
        let mut rng = Rng::new(1);
        for _ in 0..500 {
            let a = nas_strategies::random_architecture(&sp, &mut rng);
            let g = encode(&sp, &a).unwrap();
            assert_eq!(g.len(), genome_len(&sp));
            let b = decode(&sp, &g);
            validate(&sp, &b).unwrap();
            assert_eq!(canonical(&sp, &a).unwrap(), canonical(&sp, &b).unwrap());
            // Random genomes decode to valid architectures, and re-encode to themselves
            // up to wrapping and inactive genes.
            let g: Vec<bool> = (0..genome_len(&sp)).map(|_| rng.below(2) == 1).collect();
            let a = decode(&sp, &g);
            validate(&sp, &a).unwrap();
            // (`16` and `16.0` are one option, so compare canonical forms.)
            let back = decode(&sp, &encode(&sp, &a).unwrap());
            assert_eq!(canonical(&sp, &back).unwrap(), canonical(&sp, &a).unwrap());
        }
        // Wrapping: 3 bits for 5 candidates, 6 and 7 wrap to 1 and 2.
        let five = vec![layer("x", 5, None)];
        let dec = |bits: [bool; 3]| decode(&five, &bits)["x"].clone();
        assert_eq!(dec([true, false, false]), json!("op4"));
        assert_eq!(dec([true, true, false]), json!("op1"));
        assert_eq!(dec([true, true, true]), json!("op2"));
        // Input choices encode the lexicographic index of their combination.
        let inp = vec![choice(
            "i",
            ChoiceKind::Input {
                n_candidates: 4,
                n_chosen: 2,
                reduce: Reduce::Sum,
            },
            None,
        )];
        let combos = [[0, 1], [0, 2], [0, 3], [1, 2], [1, 3], [2, 3]];
        for (k, c) in combos.iter().enumerate() {
            let a: Architecture = [("i".to_string(), json!(c))].into_iter().collect();
            let g = encode(&inp, &a).unwrap();
            let v = g.iter().fold(0, |acc, &b| acc * 2 + b as usize);
            assert_eq!(v, k);
            assert_eq!(decode(&inp, &g), a);
        }
        let a: Architecture = [("i".to_string(), json!([3, 1]))].into_iter().collect();
        assert_eq!(decode(&inp, &encode(&inp, &a).unwrap())["i"], json!([1, 3]));
        assert!(encode(
            &inp,
            &[("i".to_string(), json!([1, 1]))].into_iter().collect()
        )
        .is_err());
    }

    #[test]
    fn every_ask_is_valid_with_asks_in_flight() {
        let sp = space(3, 4);
        let target = nas_strategies::random_architecture(&sp, &mut Rng::new(99));
        for (batch, kind) in [(1, "uniform"), (7, "one_point"), (30, "uniform")] {
            let mut s = Genetic::new(&setup(
                sp.clone(),
                json!({"population": 10, "crossover_type": kind}),
                1,
            ))
            .unwrap();
            run(&mut s, &sp, 400, batch, |a| agreement(a, &target));
            assert!(s.generation() >= 10, "generation {}", s.generation());
        }
    }

    #[test]
    fn generations_elitism_and_extras() {
        let sp = space(4, 4);
        let target = nas_strategies::random_architecture(&sp, &mut Rng::new(3));
        let mut s = Genetic::new(&setup(sp.clone(), json!({"population": 5}), 2)).unwrap();
        let gen0: Vec<Architecture> = (0..5).map(|_| s.ask().unwrap().unwrap()).collect();
        // The generation is all out: the next asks are random extras.
        let extra = s.ask().unwrap().unwrap();
        validate(&sp, &extra).unwrap();
        assert_eq!(s.extras, 1);
        for a in gen0.iter().skip(1) {
            s.tell(a, &metrics(agreement(a, &target))).unwrap();
        }
        s.tell(&extra, &metrics(1.0)).unwrap(); // ignored
        assert_eq!(s.extras, 0);
        assert_eq!(s.generation(), 0);
        s.tell(&gen0[0], &metrics(agreement(&gen0[0], &target)))
            .unwrap();
        assert_eq!(s.generation(), 1);
        // The best of generation 0 is carried with its accuracy; the extra is not.
        let best = gen0
            .iter()
            .map(|a| agreement(a, &target))
            .fold(f64::MIN, f64::max);
        let m = s.members();
        assert_eq!(m[0].1, Some(best));
        assert!(m[1..].iter().all(|x| x.1.is_none()));
        // Only the 4 new individuals are asked before the next extra.
        let gen1: Vec<Architecture> = (0..4).map(|_| s.ask().unwrap().unwrap()).collect();
        assert_eq!(gen1, m[1..].iter().map(|x| x.0.clone()).collect::<Vec<_>>());
        s.ask().unwrap().unwrap();
        assert_eq!(s.extras, 1);
        // Tells match individuals by architecture, in any order, duplicates included.
        for a in gen1.iter().rev() {
            s.tell(a, &metrics(0.0)).unwrap();
        }
        assert_eq!(s.generation(), 2);
    }

    #[test]
    fn save_new_load_gives_the_same_asks() {
        let sp = space(3, 4);
        let target = nas_strategies::random_architecture(&sp, &mut Rng::new(7));
        let st = setup(sp.clone(), json!({"population": 8, "mutation": 0.1}), 11);
        let mut a = Genetic::new(&st).unwrap();
        run(&mut a, &sp, 45, 3, |x| agreement(x, &target));
        // Asks in flight at save time, past the generation's end (extras included).
        let inflight: Vec<Architecture> = (0..8).map(|_| a.ask().unwrap().unwrap()).collect();
        let saved: Value = serde_json::from_str(&a.save().unwrap().to_string()).unwrap();
        let mut b = Genetic::new(&st).unwrap();
        b.load(saved).unwrap();
        assert_eq!(a.members(), b.members());
        assert_eq!((a.generation(), a.extras), (b.generation(), b.extras));
        for x in inflight.iter().rev() {
            a.tell(x, &metrics(agreement(x, &target))).unwrap();
            b.tell(x, &metrics(agreement(x, &target))).unwrap();
        }
        for _ in 0..100 {
            let (x, y) = (a.ask().unwrap().unwrap(), b.ask().unwrap().unwrap());
            assert_eq!(x, y);
            a.tell(&x, &metrics(agreement(&x, &target))).unwrap();
            b.tell(&y, &metrics(agreement(&y, &target))).unwrap();
        }
        // A host resumes from the last saved state and replays the trials journaled
        // after it: those individuals are not asked again.
        let state = a.save().unwrap();
        let journal: Vec<Architecture> = (0..3).map(|_| a.ask().unwrap().unwrap()).collect();
        for x in &journal {
            a.tell(x, &metrics(agreement(x, &target))).unwrap();
        }
        let mut b = Genetic::new(&st).unwrap();
        b.load(state).unwrap();
        for x in &journal {
            b.tell(x, &metrics(agreement(x, &target))).unwrap();
        }
        assert_eq!(a.members(), b.members());
        for _ in 0..30 {
            let (x, y) = (a.ask().unwrap().unwrap(), b.ask().unwrap().unwrap());
            assert_eq!(x, y);
            a.tell(&x, &metrics(agreement(&x, &target))).unwrap();
            b.tell(&y, &metrics(agreement(&y, &target))).unwrap();
        }
        let mut c = Genetic::new(&setup(sp.clone(), json!({"population": 9}), 0)).unwrap();
        let e = c.load(a.save().unwrap()).unwrap_err();
        assert!(e.contains("population"), "{e}");
    }

    #[test]
    fn beats_random_search_on_a_synthetic_objective() {
        let sp = space(12, 4);
        let (budget, seeds) = (300, 20);
        let (mut ga, mut rnd) = (0.0, 0.0);
        for seed in 0..seeds {
            let target = nas_strategies::random_architecture(&sp, &mut Rng::new(1000 + seed));
            let mut s = Genetic::new(&setup(sp.clone(), json!({}), seed)).unwrap();
            ga += run(&mut s, &sp, budget, 4, |a| agreement(a, &target));
            let mut rng = Rng::new(seed);
            rnd += (0..budget)
                .map(|_| agreement(&nas_strategies::random_architecture(&sp, &mut rng), &target))
                .fold(0.0, f64::max);
        }
        let (ga, rnd) = (ga / seeds as f64, rnd / seeds as f64);
        eprintln!("genetic {ga:.3}, random {rnd:.3}");
        assert!(ga > rnd + 0.1, "genetic {ga:.3} vs random {rnd:.3}");
    }

    #[test]
    fn bad_config_names_the_field() {
        let sp = space(2, 3);
        for (config, field) in [
            (json!({"population": 1}), "population"),
            (json!({"crossover": 1.5}), "crossover"),
            (json!({"mutation": -0.1}), "mutation"),
            (json!({"crossover_type": "two_point"}), "crossover_type"),
            (json!({"tournament": 0}), "tournament"),
            (json!({"population": 4, "elite": 4}), "elite"),
            (json!({"mutaton": 0.1}), "mutaton"),
        ] {
            let e = Genetic::new(&setup(sp.clone(), config.clone(), 0))
                .err()
                .unwrap();
            assert!(e.contains(&format!("`{field}`")), "{config}: {e}");
        }
        let mut s = Genetic::new(&setup(sp.clone(), json!({}), 0)).unwrap();
        let mut bad = nas_strategies::random_architecture(&sp, &mut Rng::new(0));
        bad.insert("nope".into(), json!(1));
        assert!(s.tell(&bad, &metrics(0.5)).unwrap_err().contains("nope"));
    }
}
