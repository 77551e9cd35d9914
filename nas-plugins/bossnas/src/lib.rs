//! BossNAS (Li, Tang, Wang, Peng, Wang, Liang and Chang, ICCV 2021): block-wisely
//! self-supervised neural architecture search. The space is cut into blocks, searched
//! one after another; no label is read during the search.
//!
//! Each block trains by ensemble bootstrapping, through the host's self-supervised mode
//! ([`SupernetHost::self_supervised`]): an online supernet and its momentum (EMA) copy
//! see two augmented views of each batch; every step samples `paths` paths (the blocks
//! already searched at their chosen candidates, the block under search drawn uniformly),
//! the target's projections of a view at the block's output, averaged over the paths,
//! are the ensemble target, and every online path predicts the other view's target
//! ([`SupernetHost::ssl_step`]). The momentum starts at `momentum` and rises to 1 by a
//! cosine over each block's steps, restarting at the next block. When a block's steps
//! are done its candidates are ranked by the same measure ([`SupernetHost::ssl_score`]):
//! each candidate path predicts, with batch norm recalibrated for it, the ensemble
//! target of `ensemble` paths of the block on fixed views of fixed validation images;
//! the best becomes the block's choice. The architecture of the chosen candidates is
//! exported.
//!
//! Blocks: from the config (`blocks`: a list of lists of choice labels covering every
//! searchable choice once, as FPNAS takes them) or from the labels (choices whose labels
//! share the part before the last `/`, as `stage0/layer1`), or one block of every choice
//! when no label has a `/` (`nb201`'s cell); the config's blocks must follow the
//! space's order. A block's output (its tap point) is the output of its last layer
//! choice, and the network's features (what the classifier reads) for the last block.
//! Choices after a block's tap point are computed at their first option and get no
//! gradient (in a space whose cells share choices and interleave, as DARTS's normal and
//! reduce cells, earlier passes of later choices come before the tap: use one block).
//!
//! The search's steps (`epochs x batches`) are split into one phase per block of equal
//! length (the last takes the remainder). Config: `blocks`; `paths` (4, 1..=16);
//! `momentum` (0.99, in [0, 1]); `hidden` (64) and `dim` (32), the heads' widths
//! (1..=4096); `crop_pad` (2, 0..=16) and `jitter` (0.4, in [0, 1]), the views;
//! `candidates` (64, 1..=4096, every candidate of a block when it has fewer);
//! `ensemble` (4, 1..=16); `eval_batches` (4, at most the validation split's batches)
//! and `recalibrate` (4, at most the training split's).

use nas_strategies::decisions;
use nas_strategies::oneshot::{
    blocks_from_config, blocks_from_labels, rng_in_state, rng_state, scoring_counts, state_field,
    within_limits, EpochStrategy, OneShotInfo, OneShotSetup, Progress, Split, SslSpec,
    SupernetHost, FEATURES, MAX_PATHS, MAX_SCORED,
};
use nas_strategies::{
    check_config_fields, config_count, config_field, config_probability, export_one_shot, json,
    Architecture, ChoiceKind, Rng, Value,
};
use std::collections::{BTreeMap, BTreeSet};

/// A stated cap on the candidates scored per block.
const MAX_CANDIDATES: usize = 4096;

pub struct BossNas {
    info: OneShotInfo,
    pub blocks: Vec<Vec<usize>>,
    /// Each block's tap point.
    pub taps: Vec<String>,
    sizes: Vec<usize>,
    pub spec: SslSpec,
    paths: usize,
    momentum: f32,
    candidates: usize,
    ensemble: usize,
    eval_batches: usize,
    recalibrate: usize,
    limits: Vec<(String, f64)>,
    /// Training steps per block (the last block also takes the remainder).
    phase_len: usize,
    rng: Rng,
    /// The decisions chosen so far: one per choice, fixed for the searched blocks.
    chosen: Vec<usize>,
    /// How many blocks are searched.
    pub searched: usize,
    /// Each searched block's best score.
    pub scores: Vec<f32>,
    /// Whether the host is in self-supervised mode yet (asked once per process: a
    /// resumed run's host already is, from its checkpoint, and answers the same).
    started: bool,
}

/// The blocks a run searches: the config's, else by label, else one of everything.
/// The config's must follow the space's order: every choice of a block comes after
/// every choice of the blocks before it (a block's tap is its last choice's output).
pub fn blocks(info: &OneShotInfo, config: &Value) -> Result<Vec<Vec<usize>>, String> {
    if let Some(v) = config.get("blocks") {
        let blocks = blocks_from_config(info, v)?;
        for (b, pair) in blocks.windows(2).enumerate() {
            let last = pair[0].iter().max().expect("blocks are not empty");
            let first = pair[1].iter().min().expect("blocks are not empty");
            if first < last {
                return Err(format!(
                    "config field `blocks`: block {} holds `{}`, which comes before `{}` of \
                     block {b} in the space (blocks go in the space's order)",
                    b + 1,
                    info.choices[*first].label,
                    info.choices[*last].label
                ));
            }
        }
        return Ok(blocks);
    }
    let by_label = blocks_from_labels(info);
    if info.groups.iter().any(|g| g.label.contains('/')) {
        Ok(by_label)
    } else {
        Ok(vec![by_label.into_iter().flatten().collect()])
    }
}

/// The tap point of each block: the output of its last layer choice, and the network's
/// features for the last block.
pub fn taps(info: &OneShotInfo, blocks: &[Vec<usize>]) -> Result<Vec<String>, String> {
    let n = blocks.len();
    blocks
        .iter()
        .enumerate()
        .map(|(b, block)| {
            if b + 1 == n {
                return Ok(FEATURES.to_string());
            }
            let last = *block.iter().max().expect("blocks are not empty");
            let c = &info.choices[last];
            match c.kind {
                ChoiceKind::Layer { .. } => Ok(c.label.clone()),
                _ => Err(format!(
                    "block {b} ends in `{}`, not a layer choice: its output is not a \
                     tap point (set `blocks` so that every block but the last ends in a \
                     layer choice)",
                    c.label
                )),
            }
        })
        .collect()
}

/// BYOL's momentum at step `k` of `total`: from `base` up to 1 by a cosine.
pub fn momentum_at(base: f32, k: usize, total: usize) -> f32 {
    let t = k as f32 / total.max(1) as f32;
    1.0 - (1.0 - base) * ((std::f32::consts::PI * t).cos() + 1.0) / 2.0
}

impl BossNas {
    fn start(&mut self, host: &mut dyn SupernetHost) -> Result<(), String> {
        if !self.started {
            host.self_supervised(&self.spec)?;
            self.started = true;
        }
        Ok(())
    }

    fn phases(&self) -> usize {
        self.blocks.len()
    }

    /// The block that global step `g` trains.
    pub fn block_of(&self, g: usize) -> usize {
        (g / self.phase_len).min(self.phases() - 1)
    }

    /// The steps block `b` trains for.
    fn phase_steps(&self, b: usize, total: usize) -> usize {
        if b + 1 == self.phases() {
            total - b * self.phase_len
        } else {
            self.phase_len
        }
    }

    /// A path's decisions: the chosen ones, with block `b` set to `options`.
    fn with_block(&self, b: usize, options: &[usize]) -> Vec<usize> {
        let mut d = self.chosen.clone();
        for (&ci, &o) in self.blocks[b].iter().zip(options) {
            d[ci] = o;
        }
        d
    }

    /// The option count of each choice of block `b`.
    fn block_sizes(&self, b: usize) -> Vec<usize> {
        self.blocks[b].iter().map(|&ci| self.sizes[ci]).collect()
    }

    fn random_block(&mut self, b: usize) -> Vec<usize> {
        let sizes = self.block_sizes(b);
        sizes.into_iter().map(|n| self.rng.below(n)).collect()
    }

    /// Every option vector of block `b` in order (it has at most `candidates`).
    fn all_of_block(&self, b: usize) -> Vec<Vec<usize>> {
        let sizes = self.block_sizes(b);
        let mut out = vec![vec![]];
        for n in sizes {
            out = out
                .into_iter()
                .flat_map(|p: Vec<usize>| {
                    (0..n).map(move |o| {
                        let mut q = p.clone();
                        q.push(o);
                        q
                    })
                })
                .collect();
        }
        out
    }

    /// Ranks block `b`'s candidates and fixes its best. A candidate is ranked only when
    /// its path (the blocks chosen so far, the candidate, the later choices at their
    /// first option) is within the host's hard limits; for the last block that path is
    /// the export.
    /// Returns the best score and how many candidates were ranked.
    fn search_block(
        &mut self,
        host: &mut dyn SupernetHost,
        b: usize,
    ) -> Result<(f32, usize), String> {
        if self.limits.iter().any(|(f, _)| f == "latency_ms") {
            host.latencies()?; // predicted latencies come from the measured table
        }
        let sizes = self.block_sizes(b);
        let distinct = decisions::distinct(&sizes);
        let mut cands: Vec<Vec<usize>> = vec![];
        if distinct <= self.candidates {
            for o in self.all_of_block(b) {
                if within_limits(host, &self.limits, &self.with_block(b, &o))? {
                    cands.push(o);
                }
            }
        } else {
            let mut seen = BTreeSet::new();
            let mut tries = 0;
            while cands.len() < self.candidates && tries < 50 * self.candidates {
                tries += 1;
                let o = self.random_block(b);
                if seen.insert(o.clone())
                    && within_limits(host, &self.limits, &self.with_block(b, &o))?
                {
                    cands.push(o);
                }
            }
        }
        if cands.is_empty() {
            return Err(format!(
                "block {b} ({}): no candidate within the limits ({}) (blocks before it at \
                 their choices, later choices at their first option)",
                self.taps[b],
                nas_strategies::show_limits(&self.limits)
            ));
        }
        let ensemble: Vec<Vec<f32>> = (0..self.ensemble)
            .map(|_| {
                let o = self.random_block(b);
                self.info.one_hot(&self.with_block(b, &o))
            })
            .collect();
        let mixes: Vec<Vec<f32>> = cands
            .iter()
            .map(|o| self.info.one_hot(&self.with_block(b, o)))
            .collect();
        let mut scores = Vec::with_capacity(mixes.len());
        for chunk in mixes.chunks(MAX_SCORED) {
            scores.extend(host.ssl_score(
                chunk,
                &ensemble,
                &self.taps[b],
                self.eval_batches,
                self.recalibrate,
            )?);
        }
        let best = (0..scores.len()).fold(0, |m, i| if scores[i] > scores[m] { i } else { m });
        self.chosen = self.with_block(b, &cands[best]);
        self.searched = b + 1;
        self.scores.push(scores[best]);
        Ok((scores[best], scores.len()))
    }
}

impl EpochStrategy for BossNas {
    fn create(setup: &OneShotSetup) -> Result<Self, String> {
        let c = &setup.config;
        let fields = [
            "blocks",
            "paths",
            "momentum",
            "hidden",
            "dim",
            "crop_pad",
            "jitter",
            "candidates",
            "ensemble",
            "eval_batches",
            "recalibrate",
        ];
        check_config_fields(c, "bossnas", &fields)?;
        let info = setup.info.clone();
        let blocks = blocks(&info, c)?;
        let taps = taps(&info, &blocks)?;
        let total = info.total_steps();
        if total < blocks.len() {
            return Err(format!(
                "{} blocks need at least one training step each; the search has {total} \
                 (raise --epochs)",
                blocks.len()
            ));
        }
        let ensemble = config_count(c, "ensemble", 4, 1, MAX_PATHS)?;
        let spec = SslSpec {
            taps: taps.clone(),
            hidden: config_count(c, "hidden", 64, 1, nas_strategies::oneshot::MAX_SSL_WIDTH)?,
            dim: config_count(c, "dim", 32, 1, nas_strategies::oneshot::MAX_SSL_WIDTH)?,
            crop_pad: config_count(c, "crop_pad", 2, 0, nas_strategies::oneshot::MAX_CROP_PAD)?,
            jitter: config_probability(c, "jitter", 0.4)? as f32,
            ensemble,
            // Each block's phase anneals its own cosine from the full rate, with fresh
            // momentum, as the reference builds an optimiser per block.
            lr_restarts: (1..blocks.len())
                .map(|b| b * (total / blocks.len()))
                .collect(),
        };
        spec.check()?;
        let momentum: f32 = config_field(c, "momentum", 0.99)?;
        if !(0.0..=1.0).contains(&momentum) {
            return Err(format!(
                "config field `momentum`: {momentum} is not valid (must be in [0, 1])"
            ));
        }
        let (eval_batches, recalibrate) = scoring_counts(setup, 4, 4)?;
        Ok(BossNas {
            sizes: decisions::sizes(&info.choices),
            chosen: vec![0; info.choices.len()],
            phase_len: total / blocks.len(),
            blocks,
            taps,
            spec,
            paths: config_count(c, "paths", 4, 1, MAX_PATHS)?,
            momentum,
            candidates: config_count(c, "candidates", 64, 1, MAX_CANDIDATES)?,
            ensemble,
            eval_batches,
            recalibrate,
            limits: nas_strategies::config_limits(c)?,
            rng: Rng::new(setup.seed),
            searched: 0,
            scores: vec![],
            started: false,
            info,
        })
    }

    fn step(
        &mut self,
        host: &mut dyn SupernetHost,
        epoch: usize,
        step: usize,
    ) -> Result<Vec<(&'static str, f32)>, String> {
        self.start(host)?;
        let g = epoch * self.info.batches_per_epoch + step;
        let b = self.block_of(g);
        // A block whose steps are done is searched before the next one trains.
        // A block whose steps are done is searched before the next one trains; its
        // score is reported with this step's figures (at this step's position, so a
        // resumed run reports it once).
        let mut figures = vec![];
        while self.searched < b {
            let (score, n) = self.search_block(host, self.searched)?;
            figures.push(("block", (self.searched - 1) as f32));
            figures.push(("block_score", score));
            figures.push(("candidates", n as f32));
        }
        host.next_batch(Split::Train)?;
        // Distinct paths, as the reference's `random.sample` of the block's paths (a
        // block with fewer options than `paths` repeats some).
        let mut drawn: Vec<Vec<usize>> = Vec::with_capacity(self.paths);
        let mut tries = 0;
        while drawn.len() < self.paths {
            let o = self.random_block(b);
            tries += 1;
            if !drawn.contains(&o) || tries > 50 * self.paths {
                drawn.push(o);
            }
        }
        let paths: Vec<Vec<f32>> = drawn
            .iter()
            .map(|o| self.info.one_hot(&self.with_block(b, o)))
            .collect();
        let total = self.info.total_steps();
        let m = momentum_at(
            self.momentum,
            g - b * self.phase_len,
            self.phase_steps(b, total),
        );
        let loss = host.ssl_step(&paths, &self.taps[b], m)?;
        figures.extend([("ssl_loss", loss), ("momentum", m)]);
        Ok(figures)
    }

    fn current(&self, info: &OneShotInfo) -> Architecture {
        decisions::to_arch(&info.choices, &self.chosen)
    }

    fn finish(&mut self, host: &mut dyn SupernetHost) -> Result<Architecture, String> {
        self.start(host)?;
        // The last block (and any a short run left) is searched after training.
        while self.searched < self.phases() {
            let b = self.searched;
            let (score, n) = self.search_block(host, b)?;
            let mut values = BTreeMap::new();
            values.insert("block".to_string(), b as f32);
            values.insert("block_score".to_string(), score);
            values.insert("candidates".to_string(), n as f32);
            host.progress(&Progress {
                epoch: self.info.epochs,
                step: b,
                values,
                arch: self.current(&self.info),
            })?;
        }
        Ok(self.current(&self.info))
    }

    fn save(&self) -> Result<Value, String> {
        Ok(json!({
            "rng": rng_state(&self.rng),
            "chosen": self.chosen,
            "searched": self.searched,
            "scores": self.scores,
        }))
    }

    fn load(&mut self, state: Value) -> Result<(), String> {
        self.rng = rng_in_state(&state)?;
        let chosen: Vec<usize> = state_field(&state, "chosen")?;
        let searched: usize = state_field(&state, "searched")?;
        let scores: Vec<f32> = state_field(&state, "scores")?;
        if chosen.len() != self.info.choices.len()
            || chosen.iter().zip(&self.sizes).any(|(&o, &n)| o >= n)
            || searched > self.phases()
            || scores.len() != searched
        {
            return Err("the checkpoint's BossNAS state does not fit this space".into());
        }
        // The blocks not searched yet hold their first option (the later choices of
        // every path trained and ranked until their block is searched).
        let mut unsearched = self.blocks.iter().skip(searched).flatten();
        if let Some(&c) = unsearched.find(|&&c| chosen[c] != 0) {
            return Err(format!(
                "the checkpoint's BossNAS state has `{}` at option {} though its block is \
                 not searched yet (blocks searched: {searched})",
                self.info.choices[c].label, chosen[c]
            ));
        }
        (self.chosen, self.searched, self.scores) = (chosen, searched, scores);
        Ok(())
    }
}

export_one_shot!(BossNas, "bossnas", "0.1.0");
