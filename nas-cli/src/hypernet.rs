//! SMASH's generated weights (Brock et al., 2018): a HyperNet maps an encoding of the
//! architecture to the weights of the candidates it switches on, and trains through
//! them. The host's side of [`SupernetHost::generate_weights`](
//! nas_strategies::oneshot::SupernetHost::generate_weights).
//!
//! Every convolution and linear weight inside a layer-choice candidate is a target. A
//! target of shape `cout x cin x kh x kw` is cut into blocks of `block x block` channel
//! pairs; the HyperNet, one MLP shared by every block of every target (as SMASH's
//! HyperNet is one network run over every slice of its weights), maps a block's code to
//! `block * block * kmax * kmax` values, of which the block keeps its channels and the
//! centre `kh x kw` of the kernel. A block's code is the whole architecture (each mixing
//! weight on or off, as +1/-1: SMASH's embedding is +-1 too) and where the block sits:
//! its choice, candidate and which of the candidate's tensors (one-hot), its block row
//! and column (one-hot) and its kernel size. Each generated tensor is divided by its L2
//! norm, as SMASH's generated weights are, then scaled to the norm Kaiming
//! initialisation gives a tensor of its shape (SMASH's ops feed free convolutions;
//! ours may feed nothing else).
//!
//! The generated values are written into the supernet's own tensors, the network runs
//! as usual, and the weights' gradient is carried back through the normalisation into
//! the HyperNet's outputs (a vector-Jacobian product: `sum(out * G)` backpropagated).

use nas_core::nn::{Kind, Linear, Module};
use nas_core::optim::{Adam, AdamState, Optimizer};
use nas_core::space::{computed, visiting_candidate, Supernet};
use nas_core::{no_grad, Tensor};
use nas_strategies::oneshot::{Generated, HyperSpec, OneShotInfo};
use nas_strategies::Rng;
use std::collections::{BTreeMap, HashMap};

/// SMASH's LeakyReLU slope.
const LEAK: f32 = 0.02;

/// A weight tensor the HyperNet generates.
struct Target {
    tensor: Tensor,
    /// Its candidate's mixing weight.
    mix: usize,
    /// Position code: the choice (group), the candidate, which of its tensors.
    group: usize,
    cand: usize,
    ordinal: usize,
    /// Block rows and columns.
    nbo: usize,
    nbi: usize,
    kh: usize,
    kw: usize,
    /// For each element, the HyperNet output it takes, counted from the target's first
    /// block row: `row * out + offset`.
    index: Vec<u32>,
    /// The norm a generated tensor is scaled to.
    gain: f32,
}

/// A generation kept for the backward pass: the HyperNet's output and, per generated
/// target, its first row and the norm of its raw values.
struct Pending {
    /// None when the path switches on no candidate with generated weights.
    out: Option<Tensor>,
    rows: Vec<(usize, usize, f32)>,
}

pub struct HyperNet {
    pub spec: HyperSpec,
    targets: Vec<Target>,
    layers: Vec<Linear>,
    adam: Adam,
    mixes: usize,
    /// Length of a block's code: the mixing weights, the one-hot fields, the kernel size.
    nin: usize,
    /// Widths of the one-hot fields: groups, candidates, ordinals, block rows, columns.
    widths: [usize; 5],
    kmax: usize,
    out: usize,
    pending: Option<Pending>,
}

impl HyperNet {
    /// The HyperNet of `supernet`'s candidates, seeded by `seed`; an error when no
    /// candidate holds a weight to generate.
    pub fn new(
        supernet: &Supernet,
        info: &OneShotInfo,
        spec: HyperSpec,
        seed: u64,
    ) -> Result<HyperNet, String> {
        spec.check()?;
        let groups: HashMap<&str, usize> = info
            .groups
            .iter()
            .enumerate()
            .map(|(g, group)| (group.label.as_str(), g))
            .collect();
        let ranges = info.ranges();
        let mut found: Vec<(usize, usize, usize, Tensor)> = vec![];
        let mut ordinals: BTreeMap<(usize, usize), usize> = BTreeMap::new();
        supernet.net.visit("", &mut |_, t, kind| {
            if kind != Kind::Parameter || !(t.rank() == 4 || t.rank() == 2) {
                return;
            }
            let Some((label, cand)) = visiting_candidate() else {
                return;
            };
            let Some(&g) = groups.get(label.as_str()) else {
                return;
            };
            let o = ordinals.entry((g, cand)).or_insert(0);
            found.push((g, cand, *o, t.clone()));
            *o += 1;
        });
        if found.is_empty() {
            return Err(
                "generated weights: no candidate of this space holds a convolution or \
                 linear weight to generate"
                    .into(),
            );
        }
        let b = spec.block;
        let shape4 = |t: &Tensor| -> [usize; 4] {
            let s = t.shape();
            if s.len() == 4 {
                [s[0], s[1], s[2], s[3]]
            } else {
                [s[0], s[1], 1, 1]
            }
        };
        let kmax = found
            .iter()
            .map(|(.., t)| {
                let s = shape4(t);
                s[2].max(s[3])
            })
            .max()
            .unwrap_or(1);
        let out = b * b * kmax * kmax;
        let mut targets = Vec::with_capacity(found.len());
        for (g, cand, ordinal, tensor) in found {
            let [co, ci, kh, kw] = shape4(&tensor);
            let (nbo, nbi) = (co.div_ceil(b), ci.div_ceil(b));
            let (dy, dx) = ((kmax - kh) / 2, (kmax - kw) / 2);
            let mut index = Vec::with_capacity(tensor.numel());
            for o in 0..co {
                for i in 0..ci {
                    let row = (o / b) * nbi + i / b;
                    let pair = (o % b) * b + i % b;
                    for y in 0..kh {
                        for x in 0..kw {
                            let off = pair * kmax * kmax + (y + dy) * kmax + x + dx;
                            index.push((row * out + off) as u32);
                        }
                    }
                }
            }
            let fan_in = (ci * kh * kw).max(1);
            let gain = (2.0 * tensor.numel() as f32 / fan_in as f32).sqrt();
            targets.push(Target {
                tensor,
                mix: ranges[g].start + cand,
                group: g,
                cand,
                ordinal,
                nbo,
                nbi,
                kh,
                kw,
                index,
                gain,
            });
        }
        if targets.iter().map(|t| t.nbo * t.nbi * out).sum::<usize>() > u32::MAX as usize {
            return Err("generated weights: the supernet is too large to index".into());
        }
        let widths = [
            info.groups.len(),
            targets.iter().map(|t| t.cand + 1).max().unwrap_or(1),
            targets.iter().map(|t| t.ordinal + 1).max().unwrap_or(1),
            targets.iter().map(|t| t.nbo).max().unwrap_or(1),
            targets.iter().map(|t| t.nbi).max().unwrap_or(1),
        ];
        let mixes = info.len();
        let nin = mixes + widths.iter().sum::<usize>() + 2;
        let mut rng = Rng::new(seed ^ 0x5A5A_11FE_4E7);
        let mut layers = vec![];
        let mut width = nin;
        for _ in 0..spec.layers {
            layers.push(Linear::new(width, spec.hidden, &mut rng));
            width = spec.hidden;
        }
        layers.push(Linear::new(width, out, &mut rng));
        let params: Vec<Tensor> = layers
            .iter()
            .flat_map(|l| std::iter::once(l.weight.clone()).chain(l.bias.clone()))
            .collect();
        let mut adam = Adam::new(params, 0.0, false).with_betas(0.5, 0.999);
        adam.eps = 1e-4; // SMASH's
        Ok(HyperNet {
            spec,
            targets,
            layers,
            adam,
            mixes,
            nin,
            widths,
            kmax,
            out,
            pending: None,
        })
    }

    /// Whether `t` is one of the generated tensors.
    pub fn generates(&self, t: &Tensor) -> bool {
        self.targets.iter().any(|g| g.tensor.same(t))
    }

    /// The HyperNet's parameters (weights then bias, layer by layer).
    pub fn params(&self) -> &[Tensor] {
        self.adam.params()
    }

    pub fn summary(&self, free_params: usize) -> Generated {
        Generated {
            tensors: self.targets.len(),
            weights: self.targets.iter().map(|t| t.tensor.numel()).sum(),
            hypernet_params: self.params().iter().map(Tensor::numel).sum(),
            free_params,
        }
    }

    /// The code of one block of target `t`.
    fn code(&self, mix: &[f32], t: &Target, bo: usize, bi: usize, row: &mut [f32]) {
        for (r, &w) in row.iter_mut().zip(mix) {
            *r = if computed(w) { 1.0 } else { -1.0 };
        }
        let mut at = self.mixes;
        for (v, w) in [t.group, t.cand, t.ordinal, bo, bi]
            .into_iter()
            .zip(self.widths)
        {
            row[at + v] = 1.0;
            at += w;
        }
        row[at] = t.kh as f32 / self.kmax as f32;
        row[at + 1] = t.kw as f32 / self.kmax as f32;
    }

    /// Generates the weights of every candidate `mix` switches on into the supernet's
    /// tensors. With `train` the generation is kept for [`HyperNet::backward`].
    pub fn generate(&mut self, mix: &[f32], train: bool) -> Result<(), String> {
        if mix.len() != self.mixes {
            return Err(format!(
                "{} mixing weights given, the HyperNet codes {}",
                mix.len(),
                self.mixes
            ));
        }
        let nin = self.nin;
        let active: Vec<usize> = (0..self.targets.len())
            .filter(|&i| computed(mix[self.targets[i].mix]))
            .collect();
        self.pending = None;
        if active.is_empty() {
            if train {
                self.pending = Some(Pending {
                    out: None,
                    rows: vec![],
                });
            }
            return Ok(());
        }
        let blocks: usize = active
            .iter()
            .map(|&i| self.targets[i].nbo * self.targets[i].nbi)
            .sum();
        let mut codes = vec![0.0f32; blocks * nin];
        let mut rows = Vec::with_capacity(active.len());
        let mut r = 0;
        for &i in &active {
            let t = &self.targets[i];
            rows.push((i, r, 0.0));
            for bo in 0..t.nbo {
                for bi in 0..t.nbi {
                    self.code(mix, t, bo, bi, &mut codes[r * nin..(r + 1) * nin]);
                    r += 1;
                }
            }
        }
        let x = Tensor::from_vec(codes, &[blocks, nin]);
        let run = || {
            let mut h = x.clone();
            let last = self.layers.len() - 1;
            for (k, l) in self.layers.iter().enumerate() {
                h = l.forward(&h);
                if k < last {
                    // LeakyReLU(0.02) as 0.02 x + 0.98 relu(x).
                    h = h.mul_scalar(LEAK).add(&h.relu().mul_scalar(1.0 - LEAK));
                }
            }
            h
        };
        let out = if train { run() } else { no_grad(run) };
        {
            let o = out.data();
            for (i, row0, norm) in rows.iter_mut() {
                let t = &self.targets[*i];
                let base = *row0 * self.out;
                let raw: Vec<f32> = t.index.iter().map(|&k| o[base + k as usize]).collect();
                let n = raw
                    .iter()
                    .map(|v| (*v as f64) * (*v as f64))
                    .sum::<f64>()
                    .sqrt()
                    .max(1e-12) as f32;
                *norm = n;
                let s = t.gain / n;
                if !s.is_finite() || raw.iter().any(|v| !v.is_finite()) {
                    return Err("the HyperNet generated non-finite weights".into());
                }
                no_grad(|| {
                    for (w, v) in t.tensor.data_mut().iter_mut().zip(&raw) {
                        *w = v * s;
                    }
                });
            }
        }
        if train {
            self.pending = Some(Pending {
                out: Some(out),
                rows,
            });
        }
        Ok(())
    }

    /// Clears the gradients of the HyperNet and of every generated tensor.
    pub fn zero_grad(&self) {
        self.adam.zero_grad();
        self.targets.iter().for_each(|t| t.tensor.zero_grad());
    }

    /// After the loss's backward pass: carries the generated tensors' gradients back
    /// into the HyperNet's parameters (through the normalisation), then clears them.
    pub fn backward(&mut self) -> Result<(), String> {
        let Some(p) = self.pending.take() else {
            return Err("no generation to train through: generate with train first".into());
        };
        let Some(out) = p.out else {
            return Ok(()); // nothing generated for this path
        };
        let mut g_out = vec![0.0f32; out.numel()];
        for &(i, row0, norm) in &p.rows {
            let t = &self.targets[i];
            let Some(g) = t.tensor.grad() else { continue };
            let w = t.tensor.to_vec();
            // w = gain * r / |r|: dw/dr = gain / |r| (I - u u^T), u = w / gain.
            let dot: f64 = w
                .iter()
                .zip(&g)
                .map(|(w, g)| (*w as f64 / t.gain as f64) * *g as f64)
                .sum();
            let s = t.gain / norm;
            let base = row0 * self.out;
            for ((k, gv), wv) in t.index.iter().zip(&g).zip(&w) {
                let u = wv / t.gain;
                g_out[base + *k as usize] += s * (gv - u * dot as f32);
            }
            t.tensor.zero_grad();
        }
        let shape = out.shape().to_vec();
        out.mul(&Tensor::from_vec(g_out, &shape)).sum().backward();
        Ok(())
    }

    /// One Adam step of the HyperNet at `lr`.
    pub fn step(&mut self, lr: f32) {
        self.adam.step(lr);
    }

    /// The HyperNet's tensors and its optimiser's state, named for a checkpoint.
    pub fn named(&self, with_state: bool) -> Vec<(String, Tensor)> {
        let mut v: Vec<(String, Tensor)> = vec![];
        for (k, l) in self.layers.iter().enumerate() {
            v.push((format!("hyper.{k}.weight"), l.weight.clone()));
            if let Some(b) = &l.bias {
                v.push((format!("hyper.{k}.bias"), b.clone()));
            }
        }
        if with_state {
            let s = self.adam.state();
            for (i, (m, vv)) in s.m.iter().zip(&s.v).enumerate() {
                v.push((
                    format!("hyper_adam.m.{i}"),
                    Tensor::from_vec(m.clone(), &[m.len()]),
                ));
                v.push((
                    format!("hyper_adam.v.{i}"),
                    Tensor::from_vec(vv.clone(), &[vv.len()]),
                ));
            }
        }
        v
    }

    pub fn adam_steps(&self) -> i32 {
        self.adam.steps()
    }

    /// Loads what [`HyperNet::named`] saved (`steps`: the optimiser's step count); an
    /// error names the first tensor missing or of another shape.
    pub fn load(&mut self, file: &HashMap<String, Tensor>, steps: i32) -> Result<(), String> {
        let get = |name: &str, len: usize| -> Result<Vec<f32>, String> {
            match file.get(name) {
                Some(t) if t.numel() == len => Ok(t.to_vec()),
                Some(t) => Err(format!(
                    "`{name}` has {} values, the HyperNet's has {len}",
                    t.numel()
                )),
                None => Err(format!("no `{name}` (the HyperNet's weights)")),
            }
        };
        for (name, t) in self.named(false) {
            let v = get(&name, t.numel())?;
            no_grad(|| t.data_mut().copy_from_slice(&v));
        }
        let lens: Vec<usize> = self.params().iter().map(Tensor::numel).collect();
        let mut state = AdamState {
            m: vec![],
            v: vec![],
            t: steps,
        };
        for (i, n) in lens.into_iter().enumerate() {
            state.m.push(get(&format!("hyper_adam.m.{i}"), n)?);
            state.v.push(get(&format!("hyper_adam.v.{i}"), n)?);
        }
        self.adam.set_state(state)
    }
}
