//! The host's side of a one-shot search: a supernet with its optimiser and data, serving
//! [`SupernetHost`] calls. `nas search` hands it to one-shot plugins; tests use it in
//! process.

use crate::hypernet::HyperNet;
use crate::ssl::{apply_mix, byol_loss, view_seed, Ssl};
use nas_core::data::{augment_view, Augment, Batches, BatchesState, Dataset};
use nas_core::device::Device;
use nas_core::experiment::write_atomic;
use nas_core::nn::{buffers, parameters, with_bn_momentum};
use nas_core::optim::{clip_grad_norm, LrSchedule, Optimizer, Sgd};
use nas_core::space::cost::{cost, LatencyTable};
use nas_core::space::{fixed, with_bare_gates, Space, Supernet};
use nas_core::train::correct;
use nas_core::{no_grad, Tensor};
use nas_strategies::oneshot::{
    DistillLoss, DistillLosses, Generated, GradInfo, Group, HyperSpec, OneShotInfo, Progress,
    Split, SslSpec, Subset, SupernetHost, WeightOp, WeightSchedule,
};
use nas_strategies::{Architecture, Metrics, Rng, Value};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// The most epochs a supernet trains for (a stated cap).
pub const MAX_EPOCHS: usize = 10_000;

/// How the supernet's weights train.
#[derive(Clone, Debug)]
pub struct TrainerConfig {
    /// 1..=[`MAX_EPOCHS`].
    pub epochs: usize,
    pub batch_size: usize,
    /// Initial learning rate of SGD with momentum, annealed by cosine over the search.
    pub lr: f32,
    pub momentum: f32,
    pub weight_decay: f32,
    /// Gradient-norm clip of each weight step (DARTS uses 5).
    pub grad_clip: Option<f32>,
    pub seed: u64,
    /// Where the supernet's weights live and train (its mixing weights stay on the host).
    pub device: Device,
    /// The augmentation of the training split's batches (none by default; a search on
    /// CIFAR-shaped data takes [`Augment::standard_for`]). Validation batches, and the
    /// fixed batches evaluations recalibrate and score on, are never augmented.
    pub augment: Augment,
}

impl Default for TrainerConfig {
    fn default() -> Self {
        TrainerConfig {
            epochs: 1,
            batch_size: 64,
            lr: 0.05,
            momentum: 0.9,
            weight_decay: 3e-4,
            grad_clip: Some(5.0),
            seed: 0,
            device: Device::Cpu,
            augment: Augment::default(),
        }
    }
}

/// One split's endless stream of full shuffled batches, and the current batch.
struct Stream<'a> {
    data: &'a Dataset,
    batches: Batches<'a>,
    x: Vec<f32>,
    y: Vec<u32>,
}

impl<'a> Stream<'a> {
    /// `data` must hold at least one batch (the trainer checks before).
    fn new(data: &'a Dataset, batch: usize, seed: u64) -> Result<Stream<'a>, String> {
        Ok(Stream {
            data,
            batches: Batches::endless(data, batch, seed)?,
            x: vec![],
            y: vec![],
        })
    }

    fn next(&mut self) {
        self.batches.next_into(&mut self.x, &mut self.y);
    }

    /// Augments the current batch as `aug` says, drawing from a generator seeded by `seed`
    /// and the batch's place in the stream, so a resumed stream augments its batches as
    /// an uninterrupted one does.
    fn augment(&mut self, aug: &Augment, seed: u64) {
        let s = self.state();
        let mut rng = Rng::new(view_seed(
            seed ^ s.pass_state[0],
            0x0A06_3E47_11D5_C0DE,
            s.pos,
        ));
        let d = self.data;
        self.x = augment_view(&self.x, d.c, d.h, d.w, aug, 0.0, &mut rng);
    }

    /// The current batch's images and how many there are.
    fn current(&self) -> Result<(&[f32], usize), String> {
        if self.y.is_empty() {
            return Err("no current batch: call next_batch first".into());
        }
        Ok((&self.x, self.y.len()))
    }

    fn input(&self) -> Result<Tensor, String> {
        let (x, n) = self.current()?;
        let d = self.data;
        Ok(Tensor::from_vec(x.to_vec(), &[n, d.c, d.h, d.w]))
    }

    fn state(&self) -> BatchesState {
        self.batches.state().expect("an endless stream has a state")
    }

    fn restore(&mut self, s: &BatchesState) {
        self.batches.restore(s)
    }
}

/// What `oneshot.json` in a checkpoint directory holds.
#[derive(Serialize, Deserialize)]
struct CheckpointFile {
    generation: u64,
    steps: usize,
    train: BatchesState,
    val: BatchesState,
    strategy: Value,
    /// The strategy's last [`SupernetHost::front`].
    #[serde(default)]
    front: Vec<Architecture>,
    /// SMASH's HyperNet, when the run generates its weights
    /// ([`SupernetHost::generate_weights`]), and its Adam's step count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hypernet: Option<HyperSpec>,
    #[serde(default)]
    hypernet_steps: i32,
    /// BossNAS's self-supervised mode, when the run is in it
    /// ([`SupernetHost::self_supervised`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ssl: Option<SslSpec>,
    /// The strategy's weight schedule ([`SupernetHost::set_weight_schedule`]), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    schedule: Option<WeightSchedule>,
    /// What made the checkpoint ([`SupernetTrainer::checkpoint_setup`]); checkpoints
    /// taken before 2026-12 do not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    setup: Option<Value>,
    /// The latency table measured for the strategy ([`SupernetHost::latencies`]), if
    /// any: a resumed run predicts its export's latency from the same table (it timed
    /// the whole network instead, as the table was gone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    latency: Option<LatencyTable>,
}

/// The file a finished one-shot run keeps its supernet's final weights in (tensor names
/// `net.<parameter>`, as in the checkpoints), for `--init-from` and inherited-weight
/// exports.
pub const FINAL_WEIGHTS: &str = "supernet.safetensors";

/// A supernet being searched: its weights' optimiser, the training and validation
/// streams, weight slots and the kept gradient direction.
pub struct SupernetTrainer<'a> {
    space: &'a dyn Space,
    pub supernet: Supernet,
    params: Vec<Tensor>,
    opt: Sgd,
    cfg: TrainerConfig,
    info: OneShotInfo,
    train: Stream<'a>,
    val: Stream<'a>,
    /// The streams of [`Subset::Fixed`] evaluations, and where each starts every time.
    fixed: [(Stream<'a>, BatchesState); 2],
    input: [usize; 3],
    /// Weight steps taken (drives the learning-rate schedule).
    steps: usize,
    slots: BTreeMap<usize, Vec<Vec<f32>>>,
    direction: Option<Vec<Vec<f32>>>,
    latency: Option<LatencyTable>,
    /// The drop-path probability of training steps (SNAS's; 0: none).
    drop_path: f32,
    /// A strategy's own schedule for the weights (NAT's), in place of the cosine from
    /// `cfg.lr`.
    schedule: Option<WeightSchedule>,
    /// The learning rate of the last weight step (0 before the first), which progress
    /// records report beside the figures of the steps they cover.
    pub last_lr: f32,
    generation: u64,
    /// Where checkpoints go; none means `checkpoint` only keeps the state in memory.
    pub checkpoint_dir: Option<PathBuf>,
    /// The search's setup as a JSON object (strategy, data and batch options), kept in
    /// each checkpoint; a checkpoint whose setup differs is refused, naming the fields,
    /// rather than resumed by another strategy or on other data.
    pub checkpoint_setup: Option<Value>,
    /// The last checkpoint's strategy state (also when there is no directory).
    pub last_state: Option<Value>,
    /// The strategy's last [`SupernetHost::front`] (a multi-objective run's Pareto set).
    pub front: Vec<Architecture>,
    /// Called with every progress report, the mean of the mixing weights the training
    /// steps since the report before used (empty when none trained), so a search
    /// records how its architecture distribution moved whatever the strategy, and the
    /// learning rate of the last weight step.
    pub on_progress: Box<dyn FnMut(&Progress, &[f32], f32) + 'a>,
    /// The sum of the mixing weights of the training steps since the last report, and
    /// how many steps that is.
    mix_sum: Vec<f64>,
    mix_steps: usize,
    /// The span of the epoch being trained: opened by its first weight step, closed by
    /// the progress report that ends it.
    epoch_span: Option<tracing::span::EnteredSpan>,
    /// SMASH's HyperNet, in generated-weights mode (`params` then holds only the free
    /// weights).
    hyper: Option<HyperNet>,
    /// BossNAS's target supernet and heads, in self-supervised mode (`params` then
    /// also holds the online heads).
    ssl: Option<Ssl>,
}

impl<'a> SupernetTrainer<'a> {
    /// A per-candidate table (label -> candidate -> value) laid out as the mix is: a
    /// layer choice's candidates get theirs, every other weight the default.
    fn per_weight<T, U: Default + Clone>(
        &self,
        table: &std::collections::BTreeMap<String, std::collections::BTreeMap<String, T>>,
        f: impl Fn(&T) -> U,
    ) -> Vec<U> {
        let mut out = vec![U::default(); self.info.len()];
        for (g, r) in self.info.groups.iter().zip(self.info.ranges()) {
            if let (Some(row), nas_core::space::ChoiceKind::Layer { candidates }) =
                (table.get(&g.label), &self.info.choices[g.choice].kind)
            {
                for (i, c) in candidates.iter().enumerate() {
                    if let Some(v) = row.get(c) {
                        out[r.start + i] = f(v);
                    }
                }
            }
        }
        out
    }

    /// A fresh supernet of `space` (fused mixed ops) searched on `train` and `val`.
    pub fn new(
        space: &'a dyn Space,
        train: &'a Dataset,
        val: &'a Dataset,
        cfg: TrainerConfig,
    ) -> Result<SupernetTrainer<'a>, String> {
        if cfg.batch_size == 0 {
            return Err("batch size must be at least 1".into());
        }
        nas_strategies::check_count("epochs", cfg.epochs, 1, MAX_EPOCHS)?;
        let supernet = Supernet::build(space, true, cfg.seed)?;
        cfg.device.place(supernet.net.as_ref())?;
        for (name, d) in [("training", train), ("validation", val)] {
            if d.n < cfg.batch_size {
                return Err(format!(
                    "the {name} split has {} images, fewer than one batch of {}",
                    d.n, cfg.batch_size
                ));
            }
        }
        let groups = supernet
            .choices
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                supernet.alphas.get(&c.label).map(|t| Group {
                    label: c.label.clone(),
                    choice: i,
                    size: t.numel(),
                })
            })
            .collect();
        let info = OneShotInfo {
            choices: supernet.choices.clone(),
            groups,
            epochs: cfg.epochs,
            batches_per_epoch: train.n / cfg.batch_size,
            batch_size: cfg.batch_size,
            val_batches: val.n / cfg.batch_size,
        };
        info.check()?;
        let params: Vec<Tensor> = parameters(supernet.net.as_ref())
            .into_iter()
            .map(|(_, t)| t)
            .collect();
        let opt = Sgd::new(params.clone(), cfg.momentum, false, cfg.weight_decay);
        let mut seeds = Rng::new(cfg.seed ^ 0x5EED_0F_0E5E);
        let fixed = |d: &'a Dataset, seed: u64| {
            let s = Stream::new(d, cfg.batch_size, seed)?;
            let start = s.state();
            Ok::<_, String>((s, start))
        };
        let fixed = [
            fixed(train, cfg.seed ^ 0xF1_7ED_7A1)?,
            fixed(val, cfg.seed ^ 0xF1_7ED_0A1)?,
        ];
        Ok(SupernetTrainer {
            space,
            supernet,
            params,
            opt,
            info,
            train: Stream::new(train, cfg.batch_size, seeds.next_u64())?,
            val: Stream::new(val, cfg.batch_size, seeds.next_u64())?,
            fixed,
            input: [train.c, train.h, train.w],
            cfg,
            steps: 0,
            slots: BTreeMap::new(),
            direction: None,
            latency: None,
            drop_path: 0.0,
            schedule: None,
            last_lr: 0.0,
            generation: 0,
            checkpoint_dir: None,
            checkpoint_setup: None,
            last_state: None,
            front: vec![],
            on_progress: Box::new(|_, _, _| {}),
            mix_sum: vec![],
            mix_steps: 0,
            epoch_span: None,
            hyper: None,
            ssl: None,
        })
    }

    /// Switches to generated weights (see [`SupernetHost::generate_weights`]): the
    /// HyperNet's targets leave the weight optimiser, which keeps the free weights.
    fn start_hypernet(&mut self, spec: &HyperSpec) -> Result<Generated, String> {
        if self.schedule.is_some() {
            return Err("generate_weights: not with a strategy's weight schedule \
                        (`set_weight_schedule`)"
                .into());
        }
        if let Some(h) = &self.hyper {
            if h.spec == *spec {
                return Ok(h.summary(self.free_params()));
            }
            return Err(format!(
                "generate_weights: the run's HyperNet is {:?}, not {spec:?}",
                h.spec
            ));
        }
        if self.cfg.device != Device::Cpu {
            return Err(format!(
                "generate_weights: generated weights run on the CPU only (--device {}; \
                 use --device cpu)",
                self.cfg.device
            ));
        }
        if self.steps > 0 {
            return Err("generate_weights: must come before the first training step".to_string());
        }
        let h = HyperNet::new(&self.supernet, &self.info, *spec, self.cfg.seed)?;
        self.params.retain(|p| !h.generates(p));
        self.opt = Sgd::new(
            self.params.clone(),
            self.cfg.momentum,
            false,
            self.cfg.weight_decay,
        );
        self.hyper = Some(h);
        Ok(self.hyper.as_ref().unwrap().summary(self.free_params()))
    }

    /// Switches to self-supervised training (see [`SupernetHost::self_supervised`]):
    /// the target is copied from the supernet now, and the online heads join the
    /// weight optimiser.
    fn start_ssl(&mut self, spec: &SslSpec) -> Result<(), String> {
        if self.schedule.is_some() && !spec.lr_restarts.is_empty() {
            return Err(
                "self_supervised: learning-rate restarts not with a strategy's \
                        weight schedule (`set_weight_schedule`)"
                    .into(),
            );
        }
        if let Some(s) = &self.ssl {
            if s.spec == *spec {
                return Ok(());
            }
            return Err(format!(
                "self_supervised: the run's spec is {:?}, not {spec:?}",
                s.spec
            ));
        }
        spec.check()?;
        let total = self.total_steps();
        if spec
            .lr_restarts
            .iter()
            .zip(std::iter::once(&0).chain(&spec.lr_restarts))
            .any(|(&r, &before)| r <= before || r >= total)
        {
            return Err(format!(
                "self_supervised: learning-rate restarts {:?} must rise strictly, each above 0 \
                 and below the search's {total} steps",
                spec.lr_restarts
            ));
        }
        if self.cfg.device != Device::Cpu {
            return Err(format!(
                "self_supervised: siamese supernets run on the CPU only (--device {}; \
                 use --device cpu)",
                self.cfg.device
            ));
        }
        if self.hyper.is_some() {
            return Err("self_supervised: not with generated weights (SMASH)".into());
        }
        if self.steps > 0 {
            return Err("self_supervised: must come before the first training step".into());
        }
        let first = self.info.one_hot(&vec![0; self.info.choices.len()]);
        let ssl = Ssl::new(
            self.space,
            &self.supernet,
            &self.info,
            spec,
            self.input,
            &first,
            self.cfg.seed,
        )?;
        self.params.extend(ssl.params());
        self.opt = Sgd::new(
            self.params.clone(),
            self.cfg.momentum,
            false,
            self.cfg.weight_decay,
        );
        self.ssl = Some(ssl);
        Ok(())
    }

    /// Checks the paths of a self-supervised call: 1..=`max`, each a valid mix.
    fn check_paths(&self, what: &str, paths: &[Vec<f32>], max: usize) -> Result<(), String> {
        if paths.is_empty() || paths.len() > max {
            return Err(format!(
                "{what}: {} paths given, 1..={max} allowed",
                paths.len()
            ));
        }
        for p in paths {
            self.check_mix(p).map_err(|e| format!("{what}: {e}"))?;
        }
        Ok(())
    }

    /// Opens the epoch's span at its first weight step, and adds the mixes a weight
    /// step trains to the sums the next progress report averages.
    fn record_paths<'m>(&mut self, mixes: impl IntoIterator<Item = &'m [f32]>) {
        if self.epoch_span.is_none() {
            let n = self.steps / self.info.batches_per_epoch.max(1);
            self.epoch_span = Some(tracing::debug_span!("epoch", n).entered());
        }
        self.mix_sum.resize(self.info.len(), 0.0);
        for m in mixes {
            for (s, &w) in self.mix_sum.iter_mut().zip(m) {
                *s += w as f64;
            }
            self.mix_steps += 1;
        }
    }

    /// An error unless `batches` validation batches (at least one) and `recalibrate`
    /// training batches fit the splits; `what` names the call.
    fn check_scoring(&self, what: &str, batches: usize, recalibrate: usize) -> Result<(), String> {
        if batches == 0 {
            return Err(format!("{what} needs at least one batch"));
        }
        // More would score images twice (and a count such as 2^53 would never end).
        if batches > self.info.val_batches {
            return Err(format!(
                "{what}: {batches} batches asked, the validation split holds {} batches \
                 of {}",
                self.info.val_batches, self.cfg.batch_size
            ));
        }
        if recalibrate > self.info.batches_per_epoch {
            return Err(format!(
                "{what}: recalibration on {recalibrate} batches asked, the training split \
                 holds {} batches of {}",
                self.info.batches_per_epoch, self.cfg.batch_size
            ));
        }
        Ok(())
    }

    fn free_params(&self) -> usize {
        self.params.iter().map(Tensor::numel).sum()
    }

    /// An error for a weight service generated weights do not offer.
    fn no_hypernet(&self, what: &str) -> Result<(), String> {
        match self.hyper {
            Some(_) => Err(format!(
                "{what} is not offered with generated weights (SMASH's HyperNet)"
            )),
            None => Ok(()),
        }
    }

    /// The spec of the run's self-supervised mode, if it is in it.
    pub fn ssl_spec(&self) -> Option<&SslSpec> {
        self.ssl.as_ref().map(|s| &s.spec)
    }

    /// The target supernet and heads of self-supervised mode.
    pub fn ssl(&self) -> Option<&Ssl> {
        self.ssl.as_ref()
    }

    /// In generated-weights mode, writes the weights the HyperNet generates for `arch`
    /// into the supernet (what a network derived from it for `arch` should hold); does
    /// nothing otherwise.
    pub fn prepare_weights(&mut self, arch: &Architecture) -> Result<(), String> {
        let mix = self.info.one_hot_arch(arch)?;
        match &mut self.hyper {
            Some(h) => h.generate(&mix, false),
            None => Ok(()),
        }
    }

    fn set_mix(&self, mix: &[f32]) -> Result<(), String> {
        self.check_mix(mix)?;
        apply_mix(&self.info, &self.supernet, mix)
    }

    /// An error unless `mix` is a mix of this supernet that computes something in
    /// every group.
    fn check_mix(&self, mix: &[f32]) -> Result<(), String> {
        if mix.len() != self.info.len() {
            return Err(format!(
                "{} mixing weights given, the supernet has {}",
                mix.len(),
                self.info.len()
            ));
        }
        if let Some(v) = mix.iter().find(|v| !v.is_finite()) {
            return Err(format!("mixing weight {v} is not finite"));
        }
        for (g, r) in self.info.groups.iter().zip(self.info.ranges()) {
            if mix[r.clone()].iter().all(|w| w.to_bits() == 0) {
                return Err(format!(
                    "every mixing weight of `{}` is +0: nothing would be computed",
                    g.label
                ));
            }
        }
        Ok(())
    }

    fn mix_grads(&self, out: &mut [f32]) {
        for (g, r) in self.info.groups.iter().zip(self.info.ranges()) {
            let w = self.supernet.weight_grad(&g.label).unwrap_or_default();
            for (o, v) in out[r]
                .iter_mut()
                .zip(w.iter().chain(std::iter::repeat(&0.0)))
            {
                *o = *v;
            }
        }
    }

    fn stream(&mut self, split: Split) -> &mut Stream<'a> {
        match split {
            Split::Train => &mut self.train,
            Split::Val => &mut self.val,
        }
    }

    /// The current training batch's images (NCHW) and how many there are, as the next
    /// training step sees them (augmented where the run augments).
    pub fn train_batch(&self) -> Result<(&[f32], usize), String> {
        self.train.current()
    }

    /// The weight steps of the whole search.
    fn total_steps(&self) -> usize {
        self.info.total_steps()
    }

    /// The learning rate of the next weight step.
    pub fn current_lr(&self) -> f32 {
        if let Some(s) = &self.schedule {
            return s.lr_at(self.steps, self.total_steps());
        }
        let restarts = self
            .ssl
            .as_ref()
            .map_or(&[][..], |s| &s.spec.lr_restarts[..]);
        if !restarts.is_empty() {
            // A cosine per phase between restarts (BossNAS's blocks).
            let total = self.total_steps();
            let start = restarts.iter().rev().find(|&&r| r <= self.steps).copied();
            let start = start.unwrap_or(0);
            let end = restarts.iter().find(|&&r| r > self.steps).copied();
            let len = (end.unwrap_or(total).max(start + 1) - start) as f32;
            return LrSchedule::Cosine {
                total: len,
                min_lr: 0.0,
            }
            .lr(self.cfg.lr, (self.steps - start) as f32);
        }
        let per_epoch = self.info.batches_per_epoch.max(1) as f32;
        LrSchedule::Cosine {
            total: self.cfg.epochs as f32,
            min_lr: 0.0,
        }
        .lr(self.cfg.lr, self.steps as f32 / per_epoch)
    }

    /// Accuracy of an architecture with the supernet's weights on the validation split's
    /// whole batches (the last `val.n % batch` images are left out, as every one-shot
    /// score leaves them; `nas export --onnx` scores every image), batch-norm statistics
    /// recalibrated on `recalibrate` training batches (at most the split's).
    pub fn evaluate_arch(
        &mut self,
        arch: &Architecture,
        recalibrate: usize,
    ) -> Result<f32, String> {
        let mix = self.info.one_hot_arch(arch)?;
        let batches = self.info.val_batches;
        // At most a pass over the training split.
        let recalibrate = recalibrate.min(self.info.batches_per_epoch);
        // The same images whatever the streams' positions.
        self.evaluate(&mix, batches, recalibrate, Subset::Fixed)
    }

    /// Loads the last checkpoint of `checkpoint_dir`, if there is one: the supernet,
    /// optimiser and data positions; returns the strategy's state to resume with.
    pub fn load_checkpoint(&mut self) -> Result<Option<Value>, String> {
        let Some(dir) = self.checkpoint_dir.clone() else {
            return Ok(None);
        };
        let path = dir.join("oneshot.json");
        if !path.exists() {
            return Ok(None);
        }
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let c: CheckpointFile = serde_json::from_str(&text)
            .map_err(|e| format!("{}: not a one-shot checkpoint: {e}", path.display()))?;
        if let (Some(Value::Object(then)), Some(Value::Object(now))) =
            (&c.setup, &self.checkpoint_setup)
        {
            let differ: Vec<String> = crate::changed_fields(then, now)
                .map(|(k, was, v)| format!("{k} {was} then, {v} now"))
                .collect();
            if !differ.is_empty() {
                return Err(format!(
                    "{}: the checkpoint was taken by another search ({}): a checkpoint \
                     resumes only the search that took it (set those back in the run's \
                     config.json, or remove {} and the search starts over from its first \
                     epoch)",
                    path.display(),
                    differ.join("; "),
                    path.display()
                ));
            }
        }
        let wpath = dir.join(format!("supernet-{}.safetensors", c.generation));
        // The one way on from weights that cannot be read: start over (a finished run
        // is not searched again by its resume: a new one is).
        let over = match dir.join("ended").exists() {
            false => format!(
                "; the checkpoint cannot be used: remove {} and the search starts over \
                 from its first epoch",
                path.display()
            ),
            true => format!(
                "; the checkpoint cannot be used, and the search has finished (its export \
                 and journal stand): to have its supernet again, search again into \
                 another directory; {} cannot be resumed into it",
                dir.display()
            ),
        };
        let file = nas_core::io::load_tensors(&wpath).map_err(|e| format!("{e:#}{over}"))?;
        let missing = self.copy_weights(&file);
        if !missing.is_empty() {
            return Err(format!(
                "{}: does not fit this supernet (missing or misshapen: {}){over}",
                wpath.display(),
                missing[..missing.len().min(5)].join(", ")
            ));
        }
        if let Some(spec) = &c.hypernet {
            self.start_hypernet(spec)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            if let Some(h) = &mut self.hyper {
                h.load(&file, c.hypernet_steps)
                    .map_err(|e| format!("{}: {e}", wpath.display()))?;
            }
        }
        if let Some(spec) = &c.ssl {
            self.start_ssl(spec)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            if let Some(s) = &self.ssl {
                s.load(&file)
                    .map_err(|e| format!("{}: {e}", wpath.display()))?;
            }
        }
        let velocity = (0..self.params.len())
            .map(|i| {
                file.get(&format!("velocity.{i}"))
                    .map(|t| t.to_vec())
                    .unwrap_or_default()
            })
            .collect();
        self.opt
            .set_velocity(velocity)
            .map_err(|e| format!("{}: {e}", wpath.display()))?;
        self.steps = c.steps;
        // After the modes above, which refuse to start beside a schedule.
        self.schedule = c.schedule;
        self.latency = c.latency;
        self.train.restore(&c.train);
        self.val.restore(&c.val);
        self.generation = c.generation;
        self.last_state = Some(c.strategy.clone());
        self.front = c.front;
        Ok(Some(c.strategy))
    }

    /// Copies the tensors of `file` (`net.<parameter>`) into the supernet's weights and
    /// buffers by name; returns the names of those it has no tensor of that shape for.
    fn copy_weights(&mut self, file: &HashMap<String, Tensor>) -> Vec<String> {
        let mut missing = vec![];
        no_grad(|| {
            self.supernet.net.visit(
                "",
                &mut |name, t, _| match file.get(&format!("net.{name}")) {
                    Some(v) if v.shape() == t.shape() => t.data_mut().copy_from_slice(&v.data()),
                    _ => missing.push(name),
                },
            )
        });
        missing
    }

    /// `--init-from`: starts the supernet from the weights at `from`, a one-shot run's
    /// directory (its final weights, else its last checkpoint's) or a `.safetensors`
    /// file. Tensors that do not fit by name and shape stay fresh; returns their names.
    /// An error when nothing fits (another space, or not a supernet's weights).
    pub fn init_from(&mut self, from: &Path) -> Result<Vec<String>, String> {
        let path = if from.is_dir() {
            let last = from.join(FINAL_WEIGHTS);
            if last.exists() {
                last
            } else {
                let c = from.join("oneshot.json");
                let text = std::fs::read_to_string(&c).map_err(|_| {
                    format!(
                        "--init-from {}: no supernet weights there (neither {FINAL_WEIGHTS} \
                         nor a checkpoint's oneshot.json; one-shot searches keep them)",
                        from.display()
                    )
                })?;
                let c: CheckpointFile = serde_json::from_str(&text)
                    .map_err(|e| format!("{}: not a one-shot checkpoint: {e}", c.display()))?;
                from.join(format!("supernet-{}.safetensors", c.generation))
            }
        } else {
            from.to_path_buf()
        };
        let file = nas_core::io::load_tensors(&path)
            .map_err(|e| format!("--init-from {}: {e:#}", path.display()))?;
        let mut total = 0;
        self.supernet.net.visit("", &mut |_, _, _| total += 1);
        let fresh = self.copy_weights(&file);
        if fresh.len() == total {
            return Err(format!(
                "--init-from {}: none of its {} tensors fits this supernet (by name \
                 `net.<parameter>` and shape); was it saved from a search of this space?",
                path.display(),
                file.len()
            ));
        }
        Ok(fresh)
    }

    /// Writes the supernet's weights and buffers to `path` (as a checkpoint names them,
    /// without the optimiser's state).
    pub fn save_weights(&self, path: &Path) -> Result<(), String> {
        nas_core::io::save_tensors(path, &self.named_weights(false)).map_err(|e| format!("{e:#}"))
    }

    /// The supernet's weights and buffers, named `net.<parameter>`, and the HyperNet's
    /// (`hyper.*`, with its optimiser's state when `with_state`) in generated-weights
    /// mode; with `with_state`, self-supervised mode's target and heads (`ssl_target.*`,
    /// `ssl.*`) too.
    fn named_weights(&self, with_state: bool) -> Vec<(String, Tensor)> {
        let mut tensors: Vec<(String, Tensor)> = vec![];
        self.supernet.net.visit("", &mut |name, t, _| {
            tensors.push((format!("net.{name}"), t.clone()))
        });
        if let Some(h) = &self.hyper {
            tensors.extend(h.named(with_state));
        }
        if let (Some(s), true) = (&self.ssl, with_state) {
            tensors.extend(s.named());
        }
        tensors
    }

    /// The loss of one batch of `split` under `mix` and its gradient by every mixing
    /// weight into `grad` (what `mix_grad` and `gate_grad` answer): `keep_weight_grad`
    /// keeps the weights' gradient as the direction of a later virtual step, and
    /// `bare_gates` counts each candidate a layer choice does not compute as a gate
    /// added bare to its output (GDAS's reference).
    fn arch_grad(
        &mut self,
        mix: &[f32],
        split: Split,
        grad: &mut [f32],
        keep_weight_grad: bool,
        bare_gates: bool,
    ) -> Result<GradInfo, String> {
        self.no_hypernet(if bare_gates { "gate_grad" } else { "mix_grad" })?;
        self.set_mix(mix)?;
        let stream = self.stream(split);
        let x = stream.input()?;
        let y = stream.y.clone();
        self.supernet.net.set_training(true);
        let logits = if bare_gates {
            with_bare_gates(|| self.supernet.net.forward(&x))
        } else {
            self.supernet.net.forward(&x)
        };
        let loss = logits.cross_entropy(&y);
        self.supernet.zero_weight_grads();
        let mut norm = 0.0;
        if keep_weight_grad {
            self.opt.zero_grad();
            loss.backward();
            let d: Vec<Vec<f32>> = self
                .params
                .iter()
                .map(|p| p.grad().unwrap_or_default())
                .collect();
            norm = d
                .iter()
                .flatten()
                .map(|v| (*v as f64) * (*v as f64))
                .sum::<f64>()
                .sqrt() as f32;
            self.direction = Some(d);
            self.opt.zero_grad();
        } else {
            self.supernet.backward_mixing(&loss);
        }
        self.mix_grads(grad);
        // As the training step's: a NaN reached the plugin as JSON's null, and it said
        // "bad host answer: invalid type: null".
        let l = loss.item();
        if !l.is_finite() {
            return Err(format!(
                "the architecture step's loss is {l} at step {} (training diverged)",
                self.steps
            ));
        }
        Ok(GradInfo {
            loss: l,
            weight_grad_norm: norm,
        })
    }
}

impl SupernetHost for SupernetTrainer<'_> {
    fn info(&self) -> &OneShotInfo {
        &self.info
    }

    fn next_batch(&mut self, split: Split) -> Result<(), String> {
        self.stream(split).next();
        // Training batches take the run's augmentation, except in self-supervised mode,
        // which makes its own views of them.
        if split == Split::Train && !self.cfg.augment.is_off() && self.ssl.is_none() {
            self.train.augment(&self.cfg.augment, self.cfg.seed);
        }
        Ok(())
    }

    fn train_step(&mut self, mix: &[f32], grad: Option<&mut [f32]>) -> Result<f32, String> {
        self.set_mix(mix)?;
        self.record_paths([mix]);
        let x = self.train.input()?;
        if let Some(h) = &mut self.hyper {
            h.generate(mix, true)?;
        }
        self.supernet.net.set_training(true);
        // Drop path's masks: the run's seed and the step (a resumed search draws the
        // same ones).
        let drop_seed = view_seed(self.cfg.seed, 0xD807_9A74, self.steps);
        let logits = nas_core::space::with_drop_path(self.drop_path, drop_seed, || {
            self.supernet.net.forward(&x)
        });
        let loss = logits.cross_entropy(&self.train.y);
        self.opt.zero_grad();
        self.supernet.zero_weight_grads();
        if let Some(h) = &self.hyper {
            h.zero_grad();
        }
        loss.backward();
        let lr = self.current_lr();
        match &mut self.hyper {
            None => {
                if let Some(c) = self.cfg.grad_clip {
                    clip_grad_norm(&self.params, c);
                }
            }
            Some(h) => {
                h.backward()?;
                if let Some(c) = self.cfg.grad_clip {
                    let all: Vec<Tensor> = self.params.iter().chain(h.params()).cloned().collect();
                    clip_grad_norm(&all, c);
                }
                // SMASH's Adam, annealed as the free weights are.
                h.step(h.spec.lr * lr / self.cfg.lr.max(f32::MIN_POSITIVE));
            }
        }
        self.opt.step(lr);
        self.last_lr = lr;
        self.steps += 1;
        if let Some(g) = grad {
            self.mix_grads(g);
        }
        let l = loss.item();
        if !l.is_finite() {
            return Err(format!("the training loss is {l} at step {}", self.steps));
        }
        Ok(l)
    }

    fn mix_grad(
        &mut self,
        mix: &[f32],
        split: Split,
        grad: &mut [f32],
        keep_weight_grad: bool,
    ) -> Result<GradInfo, String> {
        self.arch_grad(mix, split, grad, keep_weight_grad, false)
    }

    fn gate_grad(
        &mut self,
        mix: &[f32],
        split: Split,
        grad: &mut [f32],
    ) -> Result<GradInfo, String> {
        self.arch_grad(mix, split, grad, false, true)
    }

    fn distill_step(
        &mut self,
        teacher: &[f32],
        students: &[Vec<f32>],
        loss: DistillLoss,
    ) -> Result<DistillLosses, String> {
        self.no_hypernet("distill_step")?;
        loss.check()?;
        if students.len() > nas_strategies::oneshot::MAX_STUDENTS {
            return Err(format!(
                "distill_step: {} students, at most {}",
                students.len(),
                nas_strategies::oneshot::MAX_STUDENTS
            ));
        }
        // Every path is checked before any of them trains.
        for m in std::iter::once(teacher).chain(students.iter().map(|s| s.as_slice())) {
            self.set_mix(m)?;
        }
        self.record_paths(std::iter::once(teacher).chain(students.iter().map(|s| s.as_slice())));
        let x = self.train.input()?;
        let y = self.train.y.clone();
        self.supernet.net.set_training(true);
        self.opt.zero_grad();
        self.supernet.zero_weight_grads();
        // The teacher learns from the labels; its probabilities, detached, are the
        // students' targets. Each path's gradient is added to the weights' before the
        // next path runs (one graph in memory at a time).
        self.set_mix(teacher)?;
        let logits = self.supernet.net.forward(&x);
        let classes = *logits.shape().last().unwrap_or(&1);
        let target = crate::distill::log_probs(&logits.to_vec(), classes);
        let l = logits.cross_entropy(&y);
        l.backward();
        let mut out = DistillLosses {
            teacher: l.item(),
            students: Vec::with_capacity(students.len()),
        };
        drop((l, logits));
        for s in students {
            self.set_mix(s)?;
            let z = self.supernet.net.forward(&x);
            let (l, f) = crate::distill::student_loss(&z, &target, &y, loss);
            l.backward();
            out.students.push(f.value);
        }
        if let Some(c) = self.cfg.grad_clip {
            clip_grad_norm(&self.params, c);
        }
        let lr = self.current_lr();
        self.opt.step(lr);
        self.last_lr = lr;
        self.steps += 1;
        if let Some(v) = std::iter::once(out.teacher)
            .chain(out.students.iter().copied())
            .find(|v| !v.is_finite())
        {
            return Err(format!(
                "a distillation step's loss is {v} at step {}",
                self.steps
            ));
        }
        Ok(out)
    }

    fn front(&mut self, archs: &[Architecture]) -> Result<(), String> {
        nas_strategies::oneshot::check_front(&self.info.choices, archs)?;
        self.front = archs.to_vec();
        Ok(())
    }

    fn generate_weights(&mut self, spec: &HyperSpec) -> Result<Generated, String> {
        self.start_hypernet(spec)
    }

    fn self_supervised(&mut self, spec: &SslSpec) -> Result<(), String> {
        self.start_ssl(spec)
    }

    fn ssl_step(&mut self, paths: &[Vec<f32>], tap: &str, momentum: f32) -> Result<f32, String> {
        if self.ssl.is_none() {
            return Err("ssl_step: call self_supervised first".into());
        }
        self.check_paths("ssl_step", paths, nas_strategies::oneshot::MAX_PATHS)?;
        if !(0.0..=1.0).contains(&momentum) {
            return Err(format!("ssl_step: momentum {momentum} is not in [0, 1]"));
        }
        self.record_paths(paths.iter().map(|p| p.as_slice()));
        let (x, n) = self.train.current()?;
        // A new pair of views each step, reproducible from the run's seed and the step.
        let ssl = self.ssl.as_ref().expect("checked above");
        let seed = view_seed(self.cfg.seed, 0x55_1_57E9, self.steps);
        let views = ssl.views(x, n, self.input, seed);
        let targets = ssl.ensemble_targets(&self.info, tap, paths, &views)?;
        self.supernet.net.set_training(true);
        ssl.set_heads_training(tap, true)?;
        self.opt.zero_grad();
        self.supernet.zero_weight_grads();
        let mut total = 0.0;
        let share = 1.0 / paths.len() as f32;
        for p in paths {
            apply_mix(&self.info, &self.supernet, p)?;
            // Each view predicts the other's target; one graph in memory at a time.
            for (v, t) in [(0, 1), (1, 0)] {
                let z = ssl.predict(&self.supernet, tap, &views[v])?;
                let l = byol_loss(&z, &targets[t]).mul_scalar(share);
                l.backward();
                total += l.item();
            }
        }
        if let Some(c) = self.cfg.grad_clip {
            clip_grad_norm(&self.params, c);
        }
        if ssl.spec.lr_restarts.contains(&self.steps) {
            // A phase's first step: its optimiser starts afresh (empty buffers, as
            // before the first step; nothing is read back from a device).
            self.opt.set_velocity(vec![vec![]; self.params.len()])?;
        }
        let lr = self.current_lr();
        self.opt.step(lr);
        self.last_lr = lr;
        ssl.ema(&self.supernet, momentum);
        self.steps += 1;
        if !total.is_finite() {
            return Err(format!(
                "the self-supervised loss is {total} at step {}",
                self.steps
            ));
        }
        Ok(total)
    }

    fn ssl_score(
        &mut self,
        paths: &[Vec<f32>],
        ensemble: &[Vec<f32>],
        tap: &str,
        batches: usize,
        recalibrate: usize,
    ) -> Result<Vec<f32>, String> {
        if self.ssl.is_none() {
            return Err("ssl_score: call self_supervised first".into());
        }
        self.check_paths("ssl_score", paths, nas_strategies::oneshot::MAX_SCORED)?;
        self.check_paths(
            "ssl_score (ensemble)",
            ensemble,
            nas_strategies::oneshot::MAX_PATHS,
        )?;
        self.check_scoring("ssl_score", batches, recalibrate)?;
        let ssl = self.ssl.as_ref().expect("checked above");
        let buffers = ssl.buffers(&self.supernet);
        // Kept where they live: on a device, nothing is read back.
        let saved: Vec<nas_core::Saved> = buffers.iter().map(|t| t.save()).collect();
        let [(train, train0), (val, val0)] = &mut self.fixed;
        // The same validation images and views on every call, and their targets.
        val.restore(val0);
        let mut pairs = Vec::with_capacity(batches);
        for b in 0..batches {
            val.next();
            let n = val.y.len();
            let views = ssl.views(
                &val.x,
                n,
                self.input,
                view_seed(self.cfg.seed, 0x5C0_8E5, b),
            );
            let targets = ssl.ensemble_targets(&self.info, tap, ensemble, &views)?;
            pairs.push((views, targets));
        }
        // Batch norm is recalibrated on views as the steps make them (one view of each
        // of the first `recalibrate` fixed training batches), the same for every path.
        train.restore(train0);
        let recal: Vec<Tensor> = (0..recalibrate)
            .map(|k| {
                train.next();
                let seed = view_seed(self.cfg.seed, 0x8EC_A1, k);
                let [v, _] = ssl.views(&train.x, train.y.len(), self.input, seed);
                v
            })
            .collect();
        let net = &self.supernet;
        let mut scores = Vec::with_capacity(paths.len());
        for (i, p) in paths.iter().enumerate() {
            apply_mix(&self.info, net, p)?;
            let loss = no_grad(|| -> Result<f32, String> {
                net.net.set_training(true);
                ssl.set_heads_training(tap, true)?;
                if recalibrate > 0 {
                    for (k, x) in recal.iter().enumerate() {
                        with_bn_momentum(1.0 / (k + 1) as f32, || ssl.predict(net, tap, x))?;
                    }
                    net.net.set_training(false);
                    ssl.set_heads_training(tap, false)?;
                }
                let mut sum = 0.0;
                for (views, targets) in &pairs {
                    for (v, t) in [(0, 1), (1, 0)] {
                        let z = ssl.predict(net, tap, &views[v])?;
                        sum += byol_loss(&z, &targets[t]).item();
                    }
                }
                Ok(sum / batches as f32)
            });
            net.net.set_training(true);
            ssl.set_heads_training(tap, true)?;
            for (t, v) in buffers.iter().zip(&saved) {
                t.restore(v);
            }
            let loss = loss?;
            if !loss.is_finite() {
                return Err(format!(
                    "ssl_score: the loss of path {i} at `{tap}` is {loss} (the weights may \
                     have diverged)"
                ));
            }
            scores.push(-loss);
        }
        Ok(scores)
    }

    fn weights(&mut self, op: WeightOp) -> Result<(), String> {
        self.no_hypernet("weights")?;
        match op {
            WeightOp::Save { slot } => {
                let w = self.params.iter().map(|p| p.to_vec()).collect();
                self.slots.insert(slot, w);
            }
            WeightOp::Restore { slot } => {
                let w = self
                    .slots
                    .get(&slot)
                    .ok_or_else(|| format!("no weights saved in slot {slot}"))?;
                for (p, w) in self.params.iter().zip(w) {
                    p.data_mut().copy_from_slice(w);
                }
            }
            WeightOp::AddDirection { scale } => {
                let d = self
                    .direction
                    .as_ref()
                    .ok_or("no direction kept: call mix_grad with keep_weight_grad first")?;
                for (p, d) in self.params.iter().zip(d) {
                    for (w, g) in p.data_mut().iter_mut().zip(d) {
                        *w += scale * g;
                    }
                }
            }
            WeightOp::VirtualStep { lr } => {
                let d = self
                    .direction
                    .as_ref()
                    .ok_or("no direction kept: call mix_grad with keep_weight_grad first")?;
                self.opt.step_with(d, lr)?;
            }
        }
        Ok(())
    }

    fn lr(&mut self) -> Result<f32, String> {
        Ok(self.current_lr())
    }

    fn evaluate(
        &mut self,
        mix: &[f32],
        batches: usize,
        recalibrate: usize,
        subset: Subset,
    ) -> Result<f32, String> {
        self.set_mix(mix)?;
        if let Some(h) = &mut self.hyper {
            h.generate(mix, false)?;
        }
        self.check_scoring("evaluate", batches, recalibrate)?;
        let buffers = buffers(self.supernet.net.as_ref());
        // Kept where they live: on a device, nothing is read back.
        let saved: Vec<nas_core::Saved> = buffers.iter().map(|t| t.save()).collect();
        let net = self.supernet.net.as_ref();
        let (train, val) = match subset {
            Subset::Next => (&mut self.train, &mut self.val),
            Subset::Fixed => {
                let [(t, t0), (v, v0)] = &mut self.fixed;
                t.restore(t0);
                v.restore(v0);
                (t, v)
            }
        };
        let (mut right, mut seen) = (0usize, 0usize);
        no_grad(|| -> Result<(), String> {
            if recalibrate > 0 {
                net.set_training(true);
                for k in 1..=recalibrate {
                    train.next();
                    let x = train.input()?;
                    with_bn_momentum(1.0 / k as f32, || drop(net.forward(&x)));
                }
                net.set_training(false);
            } else {
                // Each batch's own statistics (train mode; the buffers are put back).
                net.set_training(true);
            }
            for _ in 0..batches {
                val.next();
                let x = val.input()?;
                let logits = net.forward(&x);
                right += correct(&logits, &val.y);
                seen += val.y.len();
            }
            Ok(())
        })?;
        net.set_training(true);
        for (t, v) in buffers.iter().zip(&saved) {
            t.restore(v);
        }
        Ok(right as f32 / seen.max(1) as f32)
    }

    fn latencies(&mut self) -> Result<Vec<f32>, String> {
        if self.latency.is_none() {
            self.latency = Some(LatencyTable::measure(self.space, self.input, 1, 5)?);
        }
        let table = self.latency.as_ref().unwrap();
        Ok(self.per_weight(&table.ops, |&ms| ms as f32))
    }

    fn set_drop_path(&mut self, prob: f32) -> Result<(), String> {
        nas_strategies::oneshot::check_drop_path(prob)?;
        self.drop_path = prob;
        Ok(())
    }

    fn set_weight_schedule(&mut self, schedule: &WeightSchedule) -> Result<(), String> {
        schedule.check(self.total_steps())?;
        if self
            .ssl
            .as_ref()
            .is_some_and(|s| !s.spec.lr_restarts.is_empty())
        {
            return Err(
                "set_weight_schedule: not with a self-supervised run's learning-rate restarts"
                    .into(),
            );
        }
        if self.hyper.is_some() {
            // The HyperNet's rate follows the host's schedule (SMASH's).
            return Err("set_weight_schedule: not with generated weights (SMASH)".into());
        }
        self.schedule = Some(*schedule);
        Ok(())
    }

    fn op_costs(&mut self) -> Result<Vec<nas_strategies::OpCost>, String> {
        let table = nas_core::space::cost::op_costs(self.space, self.input)?;
        Ok(self.per_weight(&table, |&c| c))
    }

    fn metrics(&mut self, arch: &Architecture) -> Result<Metrics, String> {
        let net = fixed(self.space, arch, 0).map_err(|e| e.to_string())?;
        let c = cost(net.as_ref(), self.input);
        let latency = match &self.latency {
            Some(t) => t.predict(arch),
            None => nas_core::space::cost::measure_latency(net.as_ref(), self.input, 1, 5),
        };
        Ok(Metrics {
            accuracy: 0.0,
            params: Some(c.params as f64),
            macs: Some(c.macs as f64),
            latency_ms: Some(latency),
            extra: [("activations".to_string(), c.activations.into())].into(),
        })
    }

    fn checkpoint(&mut self, state: &Value) -> Result<(), String> {
        self.last_state = Some(state.clone());
        let Some(dir) = self.checkpoint_dir.clone() else {
            return Ok(());
        };
        let gen = self.generation + 1;
        let mut tensors = self.named_weights(true);
        for (i, v) in self.opt.velocity().iter().enumerate() {
            if !v.is_empty() {
                tensors.push((
                    format!("velocity.{i}"),
                    Tensor::from_vec(v.clone(), &[v.len()]),
                ));
            }
        }
        let wpath = dir.join(format!("supernet-{gen}.safetensors"));
        nas_core::io::save_tensors(&wpath, &tensors).map_err(|e| format!("{e:#}"))?;
        let file = CheckpointFile {
            generation: gen,
            steps: self.steps,
            train: self.train.state(),
            val: self.val.state(),
            strategy: state.clone(),
            front: self.front.clone(),
            hypernet: self.hyper.as_ref().map(|h| h.spec),
            hypernet_steps: self.hyper.as_ref().map_or(0, |h| h.adam_steps()),
            ssl: self.ssl.as_ref().map(|s| s.spec.clone()),
            schedule: self.schedule,
            setup: self.checkpoint_setup.clone(),
            latency: self.latency.clone(),
        };
        let bytes = serde_json::to_vec(&file).map_err(|e| e.to_string())?;
        write_atomic(&dir.join("oneshot.json"), &bytes)?;
        // The state now points at the new weights; the old ones can go.
        std::fs::remove_file(dir.join(format!("supernet-{}.safetensors", self.generation))).ok();
        self.generation = gen;
        Ok(())
    }

    fn progress(&mut self, p: &Progress) -> Result<(), String> {
        if p.step >= self.info.batches_per_epoch || p.epoch >= self.info.epochs {
            self.epoch_span = None;
        }
        let n = std::mem::take(&mut self.mix_steps).max(1) as f64;
        let mean: Vec<f32> = std::mem::take(&mut self.mix_sum)
            .into_iter()
            .map(|s| (s / n) as f32)
            .collect();
        (self.on_progress)(p, &mean, self.last_lr);
        Ok(())
    }
}
