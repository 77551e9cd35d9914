//! FPNAS (Cui, Chen, Li, Liu, Shen and Jia, "Fast and Practical Neural Architecture
//! Search", ICCV 2019): the architecture is a tuple of blocks, and the bi-level problem
//! (the architecture that scores best on validation data with the weights trained for
//! it) is approximated block by block: one block's architecture is optimised while every
//! other block stays at the current best, cycling over the blocks. The shared supernet
//! weights train on the paths the block's search proposes.
//!
//! Blocks come from the space's labels (the choices whose labels share the part before
//! the last `/` form one block; a label without `/` is a block of its own) or from the
//! config (`blocks`: a list of lists of labels that covers every choice once). The run's
//! search steps are split into `rounds` x blocks phases of equal length (the last one
//! takes the remainder); phase `p` searches block `p mod B`. Each step of a phase proposes
//! the block's part of a path (blocks already searched at their current best, blocks
//! whose first phase is still to come drawn uniformly), scores that path with the shared
//! weights on the next `reward_batches` validation batches, tells the inner strategy the
//! score, and trains the weights one step on that path. At the end of the phase the block
//! takes the inner strategy's answer. The paper's method section was not checked (see
//! docs/strategies.md, "fpnas").
//!
//! Inner strategies (`inner`):
//! - `reinforce` (default): per block, one softmax policy per choice (logits starting at
//!   0), REINFORCE with a moving-average baseline and an optional entropy bonus, Adam on
//!   the logits; a phase ends with each choice at its most likely option. The logits,
//!   their optimiser and the baseline carry over from one round to the next.
//! - `evolution`: per phase, regularised (aging) evolution over the block's options: the
//!   first `population` proposals are the block's best (from the second round on) and
//!   uniform draws, later ones a copy of the best of `sample_size` random members with
//!   one choice redrawn; the oldest member leaves as a child joins; a phase ends with the
//!   best-scored proposal.
//!
//! Config: `blocks`, `inner` ("reinforce"), `rounds` (2, or fewer where the search has
//! too few steps; 1..=steps / blocks), `reward_batches` (1, at most the validation
//! split's batches), `warmup_epochs` (0); for `reinforce`: `lr` (0.05, in (0, 1]),
//! `batch` (1, 1..=10000: samples per policy update), `baseline_decay` (0.9, in [0, 1)),
//! `entropy_weight` (0, >= 0); for `evolution`: `population` (10, 2..=10000),
//! `sample_size` (3, or the population if smaller; 1..=population).

use nas_strategies::decisions;
use nas_strategies::oneshot::{
    blocks_from_config, blocks_from_labels, rng_in_state, rng_state, sample, softmax_into,
    state_field, EpochStrategy, OneShotInfo, OneShotSetup, Split, Subset, SupernetHost, VecAdam,
    Warmup, WARMUP_FIELD,
};
use nas_strategies::{
    check_config_fields, check_count, config_count, config_field, config_rate, export_one_shot,
    json, Architecture, Rng, Value,
};
use serde::{Deserialize, Serialize};

/// Options of every run, and of each inner strategy.
const COMMON: &[&str] = &["blocks", "inner", "rounds", "reward_batches", WARMUP_FIELD];
const REINFORCE: &[&str] = &["lr", "batch", "baseline_decay", "entropy_weight"];
const EVOLUTION: &[&str] = &["population", "sample_size"];

/// Stated caps on counts a config may set.
const MAX_BATCH: usize = 10_000;
const MAX_POPULATION: usize = 10_000;

/// A number in a config that must satisfy `ok`, with a default; else an error naming
/// the field, the value and `rule`.
fn config_number(
    c: &Value,
    field: &str,
    default: f32,
    ok: impl Fn(f32) -> bool,
    rule: &str,
) -> Result<f32, String> {
    let v: f32 = config_field(c, field, default)?;
    if v.is_finite() && ok(v) {
        Ok(v)
    } else {
        Err(format!(
            "config field `{field}`: {v} is not valid (must be {rule})"
        ))
    }
}

/// REINFORCE's options.
#[derive(Clone, Copy, Debug)]
struct PolicyOptions {
    lr: f32,
    batch: usize,
    baseline_decay: f32,
    entropy_weight: f32,
}

/// One block's policy: a softmax over each choice's options, its Adam moments, the
/// moving-average baseline and the gradient gathered towards the next update.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Policy {
    logits: Vec<f32>,
    adam: VecAdam,
    baseline: Option<f32>,
    grad: Vec<f32>,
    pending: usize,
}

impl Policy {
    fn new(n: usize, o: &PolicyOptions) -> Policy {
        Policy {
            logits: vec![0.0; n],
            adam: VecAdam::new(n, o.lr, 0.9, 0.999, 0.0),
            baseline: None,
            grad: vec![0.0; n],
            pending: 0,
        }
    }

    /// The probabilities of choice `k`'s options (its logits at `range`).
    fn probs(&self, range: std::ops::Range<usize>) -> Vec<f32> {
        let mut p = vec![0.0; range.len()];
        softmax_into(&self.logits[range], 1.0, &mut p);
        p
    }
}

/// The inner strategy and its state.
#[derive(Clone, Debug)]
enum Inner {
    Reinforce {
        options: PolicyOptions,
        /// One policy per block, kept across rounds.
        policies: Vec<Policy>,
    },
    Evolution {
        population: usize,
        sample_size: usize,
        /// This phase's members (oldest first) with their scores.
        members: Vec<(Vec<usize>, f32)>,
        /// This phase's best-scored proposal.
        best: Option<(Vec<usize>, f32)>,
    },
}

pub struct Fpnas {
    info: OneShotInfo,
    warmup: Warmup,
    blocks: Vec<Vec<usize>>,
    /// Options per choice of the space (decision sizes).
    sizes: Vec<usize>,
    pub rounds: usize,
    /// Search steps in a phase (the last phase also takes the remainder).
    phase_len: usize,
    reward_batches: usize,
    inner: Inner,
    rng: Rng,
    /// The current best: one decision per choice of the space.
    best: Vec<usize>,
    /// The phase under way (none before the first search step).
    phase: Option<usize>,
}

impl Fpnas {
    fn phases(&self) -> usize {
        self.rounds * self.blocks.len()
    }

    /// The phase of search step `g` (counted from the end of the warm-up).
    fn phase_of(&self, g: usize) -> usize {
        (g / self.phase_len).min(self.phases() - 1)
    }

    /// Whether block `b` has had a phase that ended before phase `p`.
    fn searched(&self, b: usize, p: usize) -> bool {
        p >= self.blocks.len() || b < p
    }

    /// The block phase `p` searches.
    pub fn block_of(&self, p: usize) -> usize {
        p % self.blocks.len()
    }

    /// Each choice's range in block `b`'s flat logits.
    fn ranges(&self, b: usize) -> Vec<std::ops::Range<usize>> {
        let mut at = 0;
        self.blocks[b]
            .iter()
            .map(|&ci| {
                at += self.sizes[ci];
                at - self.sizes[ci]..at
            })
            .collect()
    }

    /// The block's options of the next proposal.
    fn propose(&mut self, b: usize, searched: bool) -> Vec<usize> {
        let ranges = self.ranges(b);
        let choices: Vec<usize> = self.blocks[b].clone();
        match &mut self.inner {
            Inner::Reinforce { policies, .. } => {
                let p = &policies[b];
                ranges
                    .into_iter()
                    .map(|r| sample(&p.probs(r), &mut self.rng))
                    .collect()
            }
            Inner::Evolution {
                population,
                sample_size,
                members,
                ..
            } => {
                if members.is_empty() && searched {
                    // The block's best is the first member.
                    choices.iter().map(|&ci| self.best[ci]).collect()
                } else if members.len() < *population {
                    choices
                        .iter()
                        .map(|&ci| self.rng.below(self.sizes[ci]))
                        .collect()
                } else {
                    let mut parent = self.rng.below(members.len());
                    for _ in 1..*sample_size {
                        let m = self.rng.below(members.len());
                        if members[m].1 > members[parent].1 {
                            parent = m;
                        }
                    }
                    let mut child = members[parent].0.clone();
                    // Redraw one choice that has another option, to a different one.
                    let open: Vec<usize> = (0..choices.len())
                        .filter(|&k| self.sizes[choices[k]] > 1)
                        .collect();
                    if !open.is_empty() {
                        let k = open[self.rng.below(open.len())];
                        let n = self.sizes[choices[k]];
                        child[k] = (child[k] + 1 + self.rng.below(n - 1)) % n;
                    }
                    child
                }
            }
        }
    }

    /// Tells the inner strategy the score of proposal `cand` for block `b`.
    fn tell(&mut self, b: usize, cand: &[usize], score: f32) -> Result<(), String> {
        let ranges = self.ranges(b);
        match &mut self.inner {
            Inner::Reinforce { options, policies } => {
                let p = &mut policies[b];
                let baseline = p.baseline.unwrap_or(score);
                let advantage = score - baseline;
                p.baseline = Some(
                    options.baseline_decay * baseline + (1.0 - options.baseline_decay) * score,
                );
                // The loss is -advantage * log pi(cand) - entropy_weight * H(pi); its
                // gradient with respect to each choice's logits.
                for (k, r) in ranges.into_iter().enumerate() {
                    let probs = p.probs(r.clone());
                    let h: f32 = -probs
                        .iter()
                        .map(|&q| if q > 0.0 { q * q.ln() } else { 0.0 })
                        .sum::<f32>();
                    for (j, &q) in probs.iter().enumerate() {
                        let onehot = (j == cand[k]) as u8 as f32;
                        let dlogp = onehot - q;
                        let dh = if q > 0.0 { -q * (q.ln() + h) } else { 0.0 };
                        p.grad[r.start + j] += -advantage * dlogp - options.entropy_weight * dh;
                    }
                }
                p.pending += 1;
                if p.pending >= options.batch {
                    let g: Vec<f32> = p.grad.iter().map(|v| v / p.pending as f32).collect();
                    p.adam.step(&mut p.logits, &g);
                    p.grad.iter_mut().for_each(|v| *v = 0.0);
                    p.pending = 0;
                    nas_strategies::check_finite(
                        &p.logits,
                        "the block policy's logits",
                        "lower `lr`",
                    )?;
                }
            }
            Inner::Evolution {
                population,
                members,
                best,
                ..
            } => {
                members.push((cand.to_vec(), score));
                if members.len() > *population {
                    members.remove(0);
                }
                if best.as_ref().is_none_or(|(_, s)| score > *s) {
                    *best = Some((cand.to_vec(), score));
                }
            }
        }
        Ok(())
    }

    /// Ends phase `p`: its block takes the inner strategy's answer.
    fn end_phase(&mut self, p: usize) {
        let b = self.block_of(p);
        let ranges = self.ranges(b);
        let answer: Option<Vec<usize>> = match &mut self.inner {
            Inner::Reinforce { policies, .. } => Some(
                ranges
                    .into_iter()
                    .map(|r| nas_strategies::oneshot::argmax(&policies[b].logits[r]))
                    .collect(),
            ),
            Inner::Evolution { members, best, .. } => {
                members.clear();
                best.take().map(|(d, _)| d)
            }
        };
        if let Some(d) = answer {
            for (k, &ci) in self.blocks[b].iter().enumerate() {
                self.best[ci] = d[k];
            }
        }
    }

    fn labels(&self) -> Vec<Vec<String>> {
        self.blocks
            .iter()
            .map(|b| {
                b.iter()
                    .map(|&ci| self.info.choices[ci].label.clone())
                    .collect()
            })
            .collect()
    }
}

impl EpochStrategy for Fpnas {
    fn create(setup: &OneShotSetup) -> Result<Self, String> {
        let c = &setup.config;
        let info = &setup.info;
        let inner_name: String = config_field(c, "inner", "reinforce".to_string())?;
        let (own, other) = match inner_name.as_str() {
            "reinforce" => (REINFORCE, EVOLUTION),
            "evolution" => (EVOLUTION, REINFORCE),
            v => {
                return Err(format!(
                "config field `inner`: \"{v}\" is not valid (one of \"reinforce\", \"evolution\")"
            ))
            }
        };
        if let Some(f) = other.iter().find(|f| c.get(**f).is_some()) {
            return Err(format!(
                "config field `{f}` is not an option of the `{inner_name}` inner strategy \
                 (its options: {})",
                own.join(", ")
            ));
        }
        let fields: Vec<&str> = COMMON
            .iter()
            .chain(REINFORCE)
            .chain(EVOLUTION)
            .copied()
            .collect();
        check_config_fields(c, "fpnas", &fields)?;
        info.check()?;
        let warmup = Warmup::from_config(setup)?;
        let blocks = match c.get("blocks") {
            None | Some(Value::Null) => blocks_from_labels(info),
            Some(v) => blocks_from_config(info, v)?,
        };
        let steps = (info.epochs - warmup.epochs) * info.batches_per_epoch;
        let most_rounds = steps / blocks.len();
        if most_rounds == 0 {
            return Err(format!(
                "the search has {steps} steps, fewer than its {} blocks: each block needs \
                 a phase of at least one step (raise --epochs or --limit, or join blocks \
                 with the config field `blocks`)",
                blocks.len()
            ));
        }
        let rounds = config_count(c, "rounds", 2.min(most_rounds), 1, most_rounds)?;
        let val = info.max_eval_batches();
        let reward_batches = config_count(c, "reward_batches", 1, 1, val)?;
        let phase_len = steps / (rounds * blocks.len());
        let inner = if inner_name == "reinforce" {
            let options = PolicyOptions {
                lr: config_rate(c, "lr", 0.05)?,
                // A batch longer than a phase would end the block's first phase with no
                // update: the argmax of untouched logits, option 0 everywhere (`none`
                // on nb201), which the blocks searched after it would be scored beside.
                batch: config_count(c, "batch", 1, 1, MAX_BATCH.min(phase_len))?,
                baseline_decay: config_number(
                    c,
                    "baseline_decay",
                    0.9,
                    |v| (0.0..1.0).contains(&v),
                    "in [0, 1)",
                )?,
                entropy_weight: config_number(c, "entropy_weight", 0.0, |v| v >= 0.0, ">= 0")?,
            };
            let sizes = decisions::sizes(&info.choices);
            Inner::Reinforce {
                options,
                policies: blocks
                    .iter()
                    .map(|b| Policy::new(b.iter().map(|&ci| sizes[ci]).sum(), &options))
                    .collect(),
            }
        } else {
            let population = config_count(c, "population", 10, 2, MAX_POPULATION)?;
            let sample_size: usize = config_field(c, "sample_size", 3.min(population))?;
            Inner::Evolution {
                population,
                sample_size: check_count("sample_size", sample_size, 1, population)?,
                members: vec![],
                best: None,
            }
        };
        let sizes = decisions::sizes(&info.choices);
        Ok(Fpnas {
            info: info.clone(),
            warmup,
            phase_len,
            blocks,
            sizes,
            rounds,
            reward_batches,
            inner,
            rng: Rng::new(setup.seed),
            // A placeholder until each block's first phase ends: the first option of
            // every choice (choices without mixing weights stay there, as
            // `OneShotInfo::derive` leaves them).
            best: vec![0; info.choices.len()],
            phase: None,
        })
    }

    fn step(
        &mut self,
        host: &mut dyn SupernetHost,
        epoch: usize,
        step: usize,
    ) -> Result<Vec<(&'static str, f32)>, String> {
        let g = (epoch - self.warmup.epochs) * self.info.batches_per_epoch + step;
        let p = self.phase_of(g);
        match self.phase {
            Some(q) if q == p => {}
            Some(q) => {
                self.end_phase(q);
                self.phase = Some(p);
            }
            None => self.phase = Some(p),
        }
        let b = self.block_of(p);
        let cand = self.propose(b, self.searched(b, p));
        let mut d = self.best.clone();
        for (k, &ci) in self.blocks[b].iter().enumerate() {
            d[ci] = cand[k];
        }
        // A block whose first phase is still to come has no best yet: its part of the
        // path is drawn uniformly.
        let open: Vec<usize> = (0..self.blocks.len())
            .filter(|&ob| !self.searched(ob, p) && ob != b)
            .collect();
        for ob in open {
            for &ci in &self.blocks[ob] {
                d[ci] = self.rng.below(self.sizes[ci]);
            }
        }
        let mix = self.info.one_hot(&d);
        let reward = host.evaluate(&mix, self.reward_batches, 0, Subset::Next)?;
        self.tell(b, &cand, reward)?;
        host.next_batch(Split::Train)?;
        let loss = host.train_step(&mix, None)?;
        Ok(vec![("train_loss", loss), ("reward", reward)])
    }

    fn current(&self, info: &OneShotInfo) -> Architecture {
        decisions::to_arch(&info.choices, &self.best)
    }

    fn finish(&mut self, _host: &mut dyn SupernetHost) -> Result<Architecture, String> {
        if let Some(p) = self.phase.take() {
            self.end_phase(p);
        }
        Ok(self.current(&self.info))
    }

    fn save(&self) -> Result<Value, String> {
        let inner = match &self.inner {
            Inner::Reinforce { policies, .. } => json!({ "policies": policies }),
            Inner::Evolution { members, best, .. } => json!({ "members": members, "best": best }),
        };
        Ok(json!({
            "blocks": self.labels(),
            "rounds": self.rounds,
            "phase": self.phase,
            "best": self.best,
            "rng": rng_state(&self.rng),
            "inner": inner,
        }))
    }

    fn load(&mut self, state: Value) -> Result<(), String> {
        let blocks: Vec<Vec<String>> = state_field(&state, "blocks")?;
        if blocks != self.labels() || state_field::<usize>(&state, "rounds")? != self.rounds {
            return Err(format!(
                "the checkpoint's blocks {blocks:?} or rounds differ from this run's {:?}, {} \
                 rounds (resume with the config the search started with)",
                self.labels(),
                self.rounds
            ));
        }
        let best: Vec<usize> = state_field(&state, "best")?;
        if best.len() != self.best.len() || best.iter().zip(&self.sizes).any(|(d, n)| d >= n) {
            return Err("saved state field `best` does not fit this space".into());
        }
        let phase: Option<usize> = state_field(&state, "phase")?;
        if phase.is_some_and(|p| p >= self.phases()) {
            return Err("saved state field `phase` is out of range".into());
        }
        let inner = state.get("inner").cloned().unwrap_or(Value::Null);
        match &mut self.inner {
            Inner::Reinforce { policies, .. } => {
                let saved: Vec<Policy> = state_field(&inner, "policies")?;
                if saved.len() != policies.len()
                    || saved.iter().zip(policies.iter()).any(|(s, p)| {
                        s.logits.len() != p.logits.len() || s.grad.len() != p.grad.len()
                    })
                {
                    return Err("saved state field `policies` does not fit the blocks".into());
                }
                *policies = saved;
            }
            Inner::Evolution { members, best, .. } => {
                let saved: Vec<(Vec<usize>, f32)> = state_field(&inner, "members")?;
                let saved_best: Option<(Vec<usize>, f32)> = state_field(&inner, "best")?;
                // Every proposal is of the block of the phase under way.
                let block: &[usize] = match phase {
                    Some(p) => &self.blocks[p % self.blocks.len()],
                    None => &[],
                };
                let fits = |d: &Vec<usize>| {
                    d.len() == block.len()
                        && d.iter().zip(block).all(|(&v, &ci)| v < self.sizes[ci])
                };
                if !saved
                    .iter()
                    .map(|m| &m.0)
                    .chain(saved_best.iter().map(|b| &b.0))
                    .all(fits)
                {
                    return Err("saved state field `members` does not fit the block".into());
                }
                *members = saved;
                *best = saved_best;
            }
        }
        self.best = best;
        self.phase = phase;
        self.rng = rng_in_state(&state)?;
        Ok(())
    }

    fn warmup(&self) -> Warmup {
        self.warmup
    }
}

export_one_shot!(Fpnas, "fpnas", "0.1.0");
