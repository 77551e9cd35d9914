//! Helpers for testing strategies without training anything: synthetic spaces, a
//! synthetic objective with a hidden target, a driver with asks in flight, and a
//! random-search baseline to beat.

use crate::decisions;
use crate::{json, Architecture, Choice, ChoiceKind, Metrics, Reduce, Rng, Setup, Strategy, Value};
use nas_types::arch::{same_value, validate};

/// `n` layer choices with `k` candidates each.
pub fn layer_space(n: usize, k: usize) -> Vec<Choice> {
    (0..n)
        .map(|i| Choice {
            label: format!("op{i}"),
            kind: ChoiceKind::Layer {
                candidates: (0..k).map(|j| format!("c{j}")).collect(),
            },
            inside: None,
            edge_ops: vec![],
        })
        .collect()
}

/// Layer, input (2 of 4), value and repeat choices, with choices scoped in the repeat.
pub fn mixed_space() -> Vec<Choice> {
    let mut s = layer_space(3, 4);
    s.push(Choice {
        label: "skip".into(),
        kind: ChoiceKind::Input {
            n_candidates: 4,
            n_chosen: 2,
            reduce: Reduce::Sum,
        },
        inside: None,
        edge_ops: vec![],
    });
    s.push(Choice {
        label: "width".into(),
        kind: ChoiceKind::Value {
            values: vec![json!(8), json!(16), json!(0.5)],
        },
        inside: None,
        edge_ops: vec![],
    });
    s.push(Choice {
        label: "depth".into(),
        kind: ChoiceKind::Repeat {
            depths: vec![1, 2, 3],
        },
        inside: None,
        edge_ops: vec![],
    });
    for b in 0..3 {
        s.push(Choice {
            label: format!("block{b}/op"),
            kind: ChoiceKind::Layer {
                candidates: vec!["a".into(), "b".into(), "c".into()],
            },
            inside: Some(("depth".into(), b)),
            edge_ops: vec![],
        });
    }
    s
}

/// Nodes `first..first + nodes` of a cell laid out as the `darts` space lays them out:
/// node `j`'s edge ops `c/op_{j}_{i}` (`k` candidates `o0`, `o1`, ...; one per earlier
/// state `i < j`), then its input choice `c/input_{j}` picking 2 of those edges.
pub fn darts_cell(first: usize, nodes: usize, k: usize) -> Vec<Choice> {
    let mut s = vec![];
    for j in first..first + nodes {
        let ops: Vec<String> = (0..j).map(|i| format!("c/op_{j}_{i}")).collect();
        s.extend(ops.iter().map(|op| Choice {
            label: op.clone(),
            kind: ChoiceKind::Layer {
                candidates: (0..k).map(|o| format!("o{o}")).collect(),
            },
            inside: None,
            edge_ops: vec![],
        }));
        s.push(Choice {
            label: format!("c/input_{j}"),
            kind: ChoiceKind::Input {
                n_candidates: j,
                n_chosen: 2,
                reduce: Reduce::Sum,
            },
            inside: None,
            edge_ops: ops,
        });
    }
    s
}

/// The network an architecture of [`darts_cell`] builds, worked out from the labels
/// alone: per node, its two picked edges with their ops (what the ops of the other
/// edges say builds nothing).
pub fn darts_network(arch: &Architecture) -> Vec<(String, Vec<(usize, String)>)> {
    arch.iter()
        .filter_map(|(label, v)| {
            let j = label.strip_prefix("c/input_")?;
            let edges = v
                .as_array()
                .expect("an input choice holds a list")
                .iter()
                .map(|i| {
                    let i = i.as_u64().unwrap() as usize;
                    let op = &arch[&format!("c/op_{j}_{i}")];
                    (i, op.as_str().unwrap().to_string())
                })
                .collect();
            Some((j.to_string(), edges))
        })
        .collect()
}

pub fn setup(space: Vec<Choice>, config: Value, seed: u64, budget: usize) -> Setup {
    Setup {
        space,
        config,
        seed,
        budget,
    }
}

/// Accuracy = the fraction of active choices equal to a hidden target, plus a little
/// deterministic noise (below 0.02) that depends on the architecture.
pub struct Objective {
    pub space: Vec<Choice>,
    pub target: Vec<usize>,
}

impl Objective {
    pub fn new(space: &[Choice], seed: u64) -> Objective {
        let mut rng = Rng::new(seed ^ 0xDEAD_BEEF);
        let target = space.iter().map(|c| rng.below(c.size())).collect();
        Objective {
            space: space.to_vec(),
            target,
        }
    }

    pub fn accuracy(&self, arch: &Architecture) -> f64 {
        validate(&self.space, arch).expect("valid architecture");
        let d = decisions::from_arch(&self.space, arch).unwrap();
        let active = decisions::active_mask(&self.space, &d);
        let (mut hit, mut n) = (0, 0);
        for i in 0..d.len() {
            if active[i] {
                n += 1;
                hit += (d[i] == self.target[i]) as usize;
            }
        }
        let key = decisions::key(&self.space, &d);
        let h = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
        });
        hit as f64 / n as f64 + 0.02 * ((h >> 11) as f64 / (1u64 << 53) as f64)
    }

    pub fn metrics(&self, arch: &Architecture) -> Metrics {
        Metrics {
            accuracy: self.accuracy(arch),
            ..Default::default()
        }
    }
}

/// Runs a strategy for `budget` trials with `in_flight` asks outstanding at a time (told
/// in reverse order); returns every accuracy in order of the tells.
pub fn drive<S: Strategy>(s: &mut S, obj: &Objective, budget: usize, in_flight: usize) -> Vec<f64> {
    let mut accs = vec![];
    while accs.len() < budget {
        let n = in_flight.min(budget - accs.len());
        let mut asked = vec![];
        for _ in 0..n {
            let a = s.ask().unwrap().expect("an architecture");
            validate(&obj.space, &a).unwrap();
            asked.push(a);
        }
        for a in asked.iter().rev() {
            let m = obj.metrics(a);
            accs.push(m.accuracy);
            s.tell(a, &m).unwrap();
        }
    }
    accs
}

/// Random search's accuracies over `budget` uniform draws.
pub fn random_search(obj: &Objective, seed: u64, budget: usize) -> Vec<f64> {
    let mut rng = Rng::new(seed.wrapping_mul(7919).wrapping_add(17));
    (0..budget)
        .map(|_| obj.accuracy(&crate::random_architecture(&obj.space, &mut rng)))
        .collect()
}

pub fn best(xs: &[f64]) -> f64 {
    xs.iter().cloned().fold(f64::MIN, f64::max)
}

pub fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

/// A layer choice with candidates `op0..`, inside a repeat block when `inside` is set.
pub fn layer(label: &str, n: usize, inside: Option<(&str, usize)>) -> Choice {
    Choice {
        label: label.into(),
        kind: ChoiceKind::Layer {
            candidates: (0..n).map(|i| format!("op{i}")).collect(),
        },
        inside: inside.map(|(r, i)| (r.to_string(), i)),
        edge_ops: vec![],
    }
}

/// A choice of any kind, inside a repeat block when `inside` is set.
pub fn choice(label: &str, kind: ChoiceKind, inside: Option<(&str, usize)>) -> Choice {
    Choice {
        label: label.into(),
        kind,
        inside: inside.map(|(r, i)| (r.to_string(), i)),
        edge_ops: vec![],
    }
}

/// `n_layers` layer choices of `width` candidates, a 2-of-4 input choice, and a repeat
/// of depth 1..3 with a choice in each block and a nested repeat in block 1.
pub fn nested_space(n_layers: usize, width: usize) -> Vec<Choice> {
    let mut s: Vec<Choice> = (0..n_layers)
        .map(|i| layer(&format!("l{i}"), width, None))
        .collect();
    s.extend([
        choice(
            "skip",
            ChoiceKind::Input {
                n_candidates: 4,
                n_chosen: 2,
                reduce: Reduce::Sum,
            },
            None,
        ),
        choice(
            "depth",
            ChoiceKind::Repeat {
                depths: vec![1, 2, 3],
            },
            None,
        ),
        layer("blk0/op", 4, Some(("depth", 0))),
        choice(
            "blk1/width",
            ChoiceKind::Value {
                values: vec![json!(8), json!(16), json!(16.0)],
            },
            Some(("depth", 1)),
        ),
        choice(
            "blk1/inner",
            ChoiceKind::Repeat { depths: vec![0, 1] },
            Some(("depth", 1)),
        ),
        layer("blk1/inner0/op", 3, Some(("blk1/inner", 0))),
        layer("blk2/op", 4, Some(("depth", 2))),
    ]);
    s
}

/// The fraction of choices (of either architecture) on which `a` agrees with `target`.
pub fn agreement(a: &Architecture, target: &Architecture) -> f64 {
    let mut labels: Vec<&String> = a.keys().chain(target.keys()).collect();
    labels.sort();
    labels.dedup();
    let hits = labels
        .iter()
        .filter(|l| match (a.get(**l), target.get(**l)) {
            (Some(x), Some(y)) => same_value(x, y),
            _ => false,
        })
        .count();
    hits as f64 / labels.len() as f64
}

/// Metrics with only an accuracy.
pub fn metrics(accuracy: f64) -> Metrics {
    Metrics {
        accuracy,
        ..Default::default()
    }
}

/// Runs `budget` trials, `batch` asks in flight at a time, told in reverse order;
/// returns the best accuracy and checks every ask against the space.
pub fn run_validating<S: Strategy>(
    s: &mut S,
    space: &[Choice],
    budget: usize,
    batch: usize,
    f: impl Fn(&Architecture) -> f64,
) -> f64 {
    let mut best: f64 = 0.0;
    let mut done = 0;
    while done < budget {
        let n = batch.min(budget - done);
        let asked: Vec<Architecture> = (0..n).map(|_| s.ask().unwrap().unwrap()).collect();
        for a in asked.iter().rev() {
            validate(space, a).unwrap_or_else(|e| panic!("{e}: {a:?}"));
            let acc = f(a);
            best = best.max(acc);
            s.tell(a, &metrics(acc)).unwrap();
        }
        done += n;
    }
    best
}

/// A stand-in supernet for testing one-shot strategies without training anything. Every
/// mixing weight `i` has a loss slope, an accuracy and a latency: the loss of a mix is
/// `sum_i slope_i * mix_i`, a path's accuracy is the mean accuracy of its weights that
/// are on, and its multiply-adds are the sum of their latencies. So a working strategy
/// moves towards low-slope, high-accuracy or low-latency candidates, which a test can
/// check.
pub struct FakeSupernet {
    pub info: crate::oneshot::OneShotInfo,
    pub slope: Vec<f32>,
    pub accuracy: Vec<f32>,
    pub latency: Vec<f32>,
    /// What `op_costs` gives each mixing weight.
    pub costs: Vec<crate::OpCost>,
    /// Every `set_drop_path` probability, in order.
    pub drop_paths: Vec<f32>,
    /// Every `set_weight_schedule`, in order.
    pub schedules: Vec<crate::oneshot::WeightSchedule>,
    pub steps: usize,
    pub evaluations: usize,
    pub checkpoints: Vec<Value>,
    /// Every mix a training step or a gradient call was given, in order.
    pub mixes: Vec<Vec<f32>>,
    /// The subset of every evaluation, in order.
    pub subsets: Vec<crate::oneshot::Subset>,
    /// Every weight operation, in order.
    pub weight_ops: Vec<crate::oneshot::WeightOp>,
    /// The learning rate of weight step `k`: `lr0 / (1 + k)` (a schedule that moves).
    pub lr0: f32,
    /// What `gate_grad` gives a layer-choice candidate that is switched off (the sum of
    /// the choice's output gradient in a real supernet).
    pub gate: f32,
    /// How many `gate_grad` calls were made.
    pub gate_grads: usize,
    /// Every `distill_step`: the teacher's mix, the students' and the loss, in order
    /// (each also counts as a training step in `steps`, its paths in `mixes`).
    pub distills: Vec<(Vec<f32>, Vec<Vec<f32>>, crate::oneshot::DistillLoss)>,
    /// The architectures of the last `front` call (checked as the real host checks them).
    pub front: Option<Vec<Architecture>>,
    /// The spec of every `generate_weights` call, and the step count at each.
    pub generated: Vec<(crate::oneshot::HyperSpec, usize)>,
    /// The spec of every `self_supervised` call.
    pub ssl: Vec<crate::oneshot::SslSpec>,
    /// Every `ssl_step`: its paths, tap and momentum (each also counts as a training
    /// step in `steps`, its paths in `mixes`).
    pub ssl_steps: Vec<(Vec<Vec<f32>>, String, f32)>,
    /// Every `ssl_score`: its paths, ensemble, tap, batches and recalibration.
    pub ssl_scores: Vec<(Vec<Vec<f32>>, Vec<Vec<f32>>, String, usize, usize)>,
}

impl FakeSupernet {
    /// `layers` layer choices with `k` candidates each, then one input choice picking 2
    /// of 3; `epochs` epochs of `batches` steps; every slope, accuracy and latency 0.
    pub fn new(layers: usize, k: usize, epochs: usize, batches: usize) -> FakeSupernet {
        let mut choices = layer_space(layers, k);
        choices.push(Choice {
            label: "in".into(),
            kind: ChoiceKind::Input {
                n_candidates: 3,
                n_chosen: 2,
                reduce: Reduce::Sum,
            },
            inside: None,
            edge_ops: vec![],
        });
        let groups: Vec<crate::oneshot::Group> = choices
            .iter()
            .enumerate()
            .map(|(i, c)| crate::oneshot::Group {
                label: c.label.clone(),
                choice: i,
                size: crate::oneshot::mix_size(c),
            })
            .collect();
        let n = groups.iter().map(|g| g.size).sum();
        FakeSupernet {
            info: crate::oneshot::OneShotInfo {
                choices,
                groups,
                epochs,
                batches_per_epoch: batches,
                batch_size: 1,
                val_batches: batches,
            },
            slope: vec![0.0; n],
            accuracy: vec![0.0; n],
            latency: vec![0.0; n],
            costs: vec![crate::OpCost::default(); n],
            drop_paths: vec![],
            schedules: vec![],
            steps: 0,
            evaluations: 0,
            checkpoints: vec![],
            mixes: vec![],
            subsets: vec![],
            weight_ops: vec![],
            lr0: 0.1,
            gate: 0.0,
            gate_grads: 0,
            distills: vec![],
            front: None,
            generated: vec![],
            ssl: vec![],
            ssl_steps: vec![],
            ssl_scores: vec![],
        }
    }

    /// A DARTS-style node: three edges `op0..op2`, each an op choice of `none`, `c1`,
    /// `c2`, and the node's input choice `in` keeping 2 of the 3 edges, declared as
    /// edges ([`Choice::edge_ops`]). Weights: `op{e}` at `3e..3e+3`, `in` at `9..12`.
    pub fn cell(epochs: usize, batches: usize) -> FakeSupernet {
        let mut f = FakeSupernet::new(3, 3, epochs, batches);
        for c in f.info.choices.iter_mut() {
            match &mut c.kind {
                ChoiceKind::Layer { candidates } => candidates[0] = "none".into(),
                ChoiceKind::Input { .. } => {
                    c.edge_ops = vec!["op0".into(), "op1".into(), "op2".into()];
                }
                _ => {}
            }
        }
        f
    }

    /// Panics unless every mix the strategy gave kept all the edges of every edge
    /// group on at weight 1 (a node is the plain sum of its mixed edges).
    pub fn assert_edges_summed(&self) {
        assert!(!self.mixes.is_empty(), "no mix was given");
        for (k, mix) in self.mixes.iter().enumerate() {
            for (g, r) in self.info.ranges().into_iter().enumerate() {
                let group = &self.info.groups[g];
                if !self.info.choices[group.choice].edge_ops.is_empty() {
                    assert!(
                        mix[r.clone()].iter().all(|&w| w == 1.0),
                        "mix {k}: edges of `{}` weigh {:?}, not 1",
                        group.label,
                        &mix[r]
                    );
                }
            }
        }
    }

    fn loss(&self, mix: &[f32]) -> f32 {
        mix.iter().zip(&self.slope).map(|(m, s)| m * s).sum()
    }
}

impl crate::oneshot::SupernetHost for FakeSupernet {
    fn info(&self) -> &crate::oneshot::OneShotInfo {
        &self.info
    }
    fn next_batch(&mut self, _: crate::oneshot::Split) -> Result<(), String> {
        Ok(())
    }
    fn train_step(&mut self, mix: &[f32], grad: Option<&mut [f32]>) -> Result<f32, String> {
        assert_eq!(mix.len(), self.slope.len());
        self.mixes.push(mix.to_vec());
        self.steps += 1;
        if let Some(g) = grad {
            g.copy_from_slice(&self.slope);
        }
        Ok(self.loss(mix))
    }
    fn mix_grad(
        &mut self,
        mix: &[f32],
        _: crate::oneshot::Split,
        grad: &mut [f32],
        _: bool,
    ) -> Result<crate::oneshot::GradInfo, String> {
        self.mixes.push(mix.to_vec());
        // Candidates switched off (+0.0) get no gradient, as in a real supernet.
        for (i, g) in grad.iter_mut().enumerate() {
            *g = if mix[i].to_bits() == 0 {
                0.0
            } else {
                self.slope[i]
            };
        }
        Ok(crate::oneshot::GradInfo {
            loss: self.loss(mix),
            weight_grad_norm: 1.0,
        })
    }
    fn gate_grad(
        &mut self,
        mix: &[f32],
        split: crate::oneshot::Split,
        grad: &mut [f32],
    ) -> Result<crate::oneshot::GradInfo, String> {
        let r = self.mix_grad(mix, split, grad, false)?;
        // A bare gate of a layer choice gets the sum of the choice's output gradient,
        // which this fake sets as `gate` (0 unless a test sets it).
        for (g, range) in self.info.groups.iter().zip(self.info.ranges()) {
            if matches!(self.info.choices[g.choice].kind, ChoiceKind::Layer { .. }) {
                for i in range.filter(|&i| mix[i].to_bits() == 0) {
                    grad[i] = self.gate;
                }
            }
        }
        self.gate_grads += 1;
        Ok(r)
    }
    fn distill_step(
        &mut self,
        teacher: &[f32],
        students: &[Vec<f32>],
        loss: crate::oneshot::DistillLoss,
    ) -> Result<crate::oneshot::DistillLosses, String> {
        // The checks the real host makes.
        loss.check()?;
        if students.len() > crate::oneshot::MAX_STUDENTS {
            return Err(format!("distill_step: {} students", students.len()));
        }
        for m in std::iter::once(teacher).chain(students.iter().map(|s| s.as_slice())) {
            assert_eq!(m.len(), self.slope.len());
            self.mixes.push(m.to_vec());
        }
        self.steps += 1;
        self.distills
            .push((teacher.to_vec(), students.to_vec(), loss));
        // A student's loss: how far its loss under the slopes is from the teacher's.
        let t = self.loss(teacher);
        Ok(crate::oneshot::DistillLosses {
            teacher: t,
            students: students.iter().map(|s| (self.loss(s) - t).abs()).collect(),
        })
    }
    fn front(&mut self, archs: &[Architecture]) -> Result<(), String> {
        crate::oneshot::check_front(&self.info.choices, archs)?;
        self.front = Some(archs.to_vec());
        Ok(())
    }
    fn generate_weights(
        &mut self,
        spec: &crate::oneshot::HyperSpec,
    ) -> Result<crate::oneshot::Generated, String> {
        spec.check()?;
        self.generated.push((*spec, self.steps));
        Ok(crate::oneshot::Generated::default())
    }
    fn self_supervised(&mut self, spec: &crate::oneshot::SslSpec) -> Result<(), String> {
        spec.check()?;
        self.ssl.push(spec.clone());
        Ok(())
    }
    fn ssl_step(&mut self, paths: &[Vec<f32>], tap: &str, momentum: f32) -> Result<f32, String> {
        let spec = self.ssl.last().ok_or("ssl_step before self_supervised")?;
        if !spec.taps.iter().any(|t| t == tap) {
            return Err(format!("ssl_step: no tap `{tap}`"));
        }
        if paths.is_empty() || paths.len() > crate::oneshot::MAX_PATHS {
            return Err(format!("ssl_step: {} paths", paths.len()));
        }
        for p in paths {
            assert_eq!(p.len(), self.slope.len());
            self.mixes.push(p.clone());
        }
        self.steps += 1;
        self.ssl_steps
            .push((paths.to_vec(), tap.to_string(), momentum));
        Ok(paths.iter().map(|p| self.loss(p)).sum::<f32>() / paths.len() as f32)
    }
    /// A path's score is the mean `accuracy` of the weights it switches on, as
    /// `evaluate` answers.
    fn ssl_score(
        &mut self,
        paths: &[Vec<f32>],
        ensemble: &[Vec<f32>],
        tap: &str,
        batches: usize,
        recalibrate: usize,
    ) -> Result<Vec<f32>, String> {
        let spec = self.ssl.last().ok_or("ssl_score before self_supervised")?;
        if !spec.taps.iter().any(|t| t == tap) {
            return Err(format!("ssl_score: no tap `{tap}`"));
        }
        if batches == 0 || batches > self.info.val_batches {
            return Err(format!("ssl_score: {batches} batches"));
        }
        if recalibrate > self.info.batches_per_epoch {
            return Err(format!("ssl_score: recalibration on {recalibrate} batches"));
        }
        if ensemble.is_empty() || ensemble.len() > crate::oneshot::MAX_PATHS {
            return Err(format!("ssl_score: an ensemble of {}", ensemble.len()));
        }
        self.ssl_scores.push((
            paths.to_vec(),
            ensemble.to_vec(),
            tap.to_string(),
            batches,
            recalibrate,
        ));
        Ok(paths
            .iter()
            .map(|mix| {
                let on: Vec<usize> = (0..mix.len()).filter(|&i| mix[i] != 0.0).collect();
                on.iter().map(|&i| self.accuracy[i]).sum::<f32>() / on.len().max(1) as f32
            })
            .collect())
    }
    fn weights(&mut self, op: crate::oneshot::WeightOp) -> Result<(), String> {
        self.weight_ops.push(op);
        Ok(())
    }
    fn lr(&mut self) -> Result<f32, String> {
        Ok(self.lr0 / (1 + self.steps) as f32)
    }
    fn evaluate(
        &mut self,
        mix: &[f32],
        batches: usize,
        recalibrate: usize,
        subset: crate::oneshot::Subset,
    ) -> Result<f32, String> {
        // The bounds the real host checks.
        if batches == 0 || batches > self.info.val_batches {
            return Err(format!(
                "evaluate: {batches} batches asked, the validation split holds {}",
                self.info.val_batches
            ));
        }
        if recalibrate > self.info.batches_per_epoch {
            return Err(format!(
                "evaluate: recalibration on {recalibrate} batches asked, the training split \
                 holds {}",
                self.info.batches_per_epoch
            ));
        }
        self.subsets.push(subset);
        self.evaluations += 1;
        let on: Vec<usize> = (0..mix.len()).filter(|&i| mix[i] != 0.0).collect();
        Ok(on.iter().map(|&i| self.accuracy[i]).sum::<f32>() / on.len().max(1) as f32)
    }
    fn latencies(&mut self) -> Result<Vec<f32>, String> {
        Ok(self.latency.clone())
    }
    fn op_costs(&mut self) -> Result<Vec<crate::OpCost>, String> {
        Ok(self.costs.clone())
    }
    fn set_drop_path(&mut self, prob: f32) -> Result<(), String> {
        crate::oneshot::check_drop_path(prob)?;
        self.drop_paths.push(prob);
        Ok(())
    }
    fn set_weight_schedule(
        &mut self,
        schedule: &crate::oneshot::WeightSchedule,
    ) -> Result<(), String> {
        schedule.check(self.info.total_steps())?;
        self.schedules.push(*schedule);
        Ok(())
    }
    fn metrics(&mut self, arch: &Architecture) -> Result<Metrics, String> {
        let mix = self.info.one_hot_arch(arch)?;
        let macs: f32 = mix.iter().zip(&self.latency).map(|(m, l)| m * l).sum();
        Ok(Metrics {
            macs: Some(macs as f64),
            ..Default::default()
        })
    }
    fn checkpoint(&mut self, state: &Value) -> Result<(), String> {
        self.checkpoints.push(state.clone());
        Ok(())
    }
    fn progress(&mut self, _: &crate::oneshot::Progress) -> Result<(), String> {
        Ok(())
    }
}

/// The setup of a one-shot strategy on a fake supernet.
pub fn fake_setup(
    f: &FakeSupernet,
    config: Value,
    seed: u64,
    resume: Option<Value>,
) -> crate::oneshot::OneShotSetup {
    crate::oneshot::OneShotSetup {
        info: f.info.clone(),
        config,
        seed,
        resume,
    }
}

/// Creates a one-shot strategy and runs it from scratch on a fake supernet.
pub fn run_on_fake<S: crate::oneshot::OneShotStrategy>(
    f: &mut FakeSupernet,
    config: Value,
    seed: u64,
) -> Architecture {
    S::new(&fake_setup(f, config, seed, None))
        .unwrap()
        .run(f, None)
        .unwrap()
}

/// Checks that an epoch strategy refuses `config` (on a small fake supernet) with an
/// error that contains every one of `want` (the field's name, the bad value, the range).
pub fn refused<S: crate::oneshot::EpochStrategy>(config: Value, want: &[&str]) {
    let f = FakeSupernet::new(2, 3, 1, 10);
    let e = S::create(&fake_setup(&f, config.clone(), 0, None))
        .err()
        .unwrap_or_else(|| panic!("{config} accepted"));
    for w in want {
        assert!(e.contains(w), "{config}: {e} does not name {w}");
    }
}

/// Checks that a one-shot strategy killed after its first checkpoint and resumed by a
/// fresh instance ends in the same state as an uninterrupted run: `fake` makes a fresh
/// two-epoch fake supernet (the same each call).
pub fn check_resume<S: crate::oneshot::EpochStrategy>(
    config: Value,
    fake: impl Fn() -> FakeSupernet,
) {
    use crate::oneshot::OneShotStrategy;
    let mut whole = fake();
    assert_eq!(whole.info.epochs, 2, "a two-epoch run");
    let batches = whole.info.batches_per_epoch;
    let mut s = S::new(&fake_setup(&whole, config.clone(), 7, None)).unwrap();
    let arch = s.run(&mut whole, None).unwrap();
    assert!(
        whole.checkpoints.len() >= 2,
        "at least one checkpoint per epoch"
    );
    let end = s.save().unwrap();
    // The checkpoint at the end of the first epoch is the last one before the second.
    let first = whole
        .checkpoints
        .iter()
        .find(|c| c["position"]["epoch"] == json!(1) && c["position"]["step"] == json!(0))
        .expect("a checkpoint at the start of epoch 1")
        .clone();
    let mut rest = fake();
    let mut s2 = S::new(&fake_setup(&rest, config, 7, Some(first.clone()))).unwrap();
    let arch2 = s2.run(&mut rest, Some(&first)).unwrap();
    assert_eq!(rest.steps, batches, "only the second epoch is run again");
    let resumed = s2.save().unwrap();
    if resumed != end {
        let mut diff = vec![];
        json_diff("", &end, &resumed, &mut diff);
        panic!("the resumed run ends in another state: {}", diff.join("; "));
    }
    assert_eq!(arch2, arch);
}

/// Checks a strategy's warm-up (`warmup_epochs` 1 added to `config`, on a two-epoch fake
/// supernet): the first epoch trains the weights on uniformly drawn one-hot paths (the
/// ones [`crate::oneshot::Warmup::path`] gives) and leaves the strategy's state as a
/// fresh one's; the second epoch searches; a resume from the checkpoint after the
/// warm-up ends as an uninterrupted run; a warm-up of every epoch is refused.
pub fn check_warmup<S: crate::oneshot::EpochStrategy>(config: Value) {
    use crate::oneshot::{OneShotStrategy, Warmup, WARMUP_FIELD};
    let with = |w: usize| {
        let mut c = config.clone();
        c[WARMUP_FIELD] = json!(w);
        c
    };
    let fake = || FakeSupernet::new(2, 3, 2, 20);
    let mut f = fake();
    let batches = f.info.batches_per_epoch;
    let setup = fake_setup(&f, with(1), 7, None);
    let fresh = S::new(&setup).unwrap().save().unwrap();
    S::new(&setup).unwrap().run(&mut f, None).unwrap();
    let warm = Warmup::from_config(&setup).unwrap();
    assert_eq!(warm.epochs, 1);
    for step in 0..batches {
        assert_eq!(
            f.mixes[step],
            warm.path(&f.info, 0, step),
            "warm-up step {step} trains the drawn path"
        );
    }
    let drawn: std::collections::BTreeSet<String> =
        (0..batches).map(|k| format!("{:?}", f.mixes[k])).collect();
    assert!(drawn.len() > 5, "the warm-up paths vary: {drawn:?}");
    assert!(
        f.steps > batches,
        "the second epoch searches and trains too ({} steps)",
        f.steps
    );
    let after = f
        .checkpoints
        .iter()
        .find(|c| c["position"]["epoch"] == json!(1) && c["position"]["step"] == json!(0))
        .expect("a checkpoint after the warm-up");
    assert_eq!(
        after["strategy"], fresh,
        "the warm-up leaves the strategy as it was made"
    );
    check_resume::<S>(with(1), fake);
    let e = S::new(&fake_setup(&f, with(2), 7, None)).err().unwrap();
    assert!(e.contains(WARMUP_FIELD) && e.contains("0..=1"), "{e}");
}

/// The paths where two JSON values differ (at most 10), with short renderings.
fn json_diff(at: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    if out.len() >= 10 || a == b {
        return;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for k in x.keys().chain(y.keys()) {
                json_diff(
                    &format!("{at}.{k}"),
                    &x[k.as_str()].clone(),
                    y.get(k).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                json_diff(&format!("{at}[{i}]"), p, q, out);
            }
        }
        _ => {
            let short = |v: &Value| v.to_string().chars().take(60).collect::<String>();
            out.push(format!("{at}: {} vs {}", short(a), short(b)));
        }
    }
}

/// Runs a one-shot strategy on [`FakeSupernet::cell`] and checks the DARTS relaxation
/// and export: every mix keeps all edges at weight 1; `none` grows strongest on edge 0
/// but the export keeps its best other op; the export keeps the two edges whose kept ops
/// are strongest (0 and 1), although the edge group's own slopes favour edge 2, which a
/// strategy that relaxed the edges too would follow.
pub fn check_cell_relaxation<S: crate::oneshot::OneShotStrategy>(config: Value, batches: usize) {
    let mut f = FakeSupernet::cell(1, batches);
    f.slope = vec![
        -1.0, -0.9, 1.0, // op0: none, then c1
        0.0, 1.0, -1.0, // op1: c2
        -1.0, 1.0, 1.0, // op2: every op but none loses weight
        1.0, 1.0, -3.0, // in: would pick edge 2
    ];
    let arch = run_on_fake::<S>(&mut f, config, 0);
    f.assert_edges_summed();
    assert_eq!(arch["op0"], json!("c1"), "{arch:?}");
    assert_eq!(arch["op1"], json!("c2"), "{arch:?}");
    assert_eq!(arch["in"], json!([0, 1]), "{arch:?}");
}

/// The candidate a one-shot run picked for layer choice `op{i}`, as its index.
pub fn picked(arch: &Architecture, i: usize) -> usize {
    arch[&format!("op{i}")]
        .as_str()
        .and_then(|s| s.strip_prefix('c'))
        .and_then(|s| s.parse().ok())
        .expect("a layer choice of layer_space")
}
