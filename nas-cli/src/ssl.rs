//! BossNAS's siamese supernets (Li et al., ICCV 2021): the host's side of
//! [`SupernetHost::self_supervised`](nas_strategies::oneshot::SupernetHost::self_supervised).
//!
//! Beside the searched (online) supernet the host keeps a momentum copy, the target, and
//! on every tap point (a block's output) three small MLP heads as BYOL has them: a
//! projector on each side and a predictor on the online side. A step shows the online
//! net and the target two augmented views of a batch; the target's projections of each
//! view, L2-normalised and averaged over the step's sampled paths, are the ensemble
//! target, and each online path predicts the other view's target (`2 - 2 cos`). Labels
//! are never read. The online weights train with the host's optimiser; the target
//! follows them as an exponential moving average.
//!
//! A tap point is read with [`nas_core::space::tapped`]: the forward pass runs to the
//! end (the layers after the tap are computed and dropped; they get no gradient).

use nas_core::data::{augment_view, Augment};
use nas_core::nn::{buffers, join, parameters, state, BatchNorm2d, Kind, Linear, Module};
use nas_core::space::{tapped, Space, Supernet};
use nas_core::{no_grad, Tensor};
use nas_strategies::oneshot::{OneShotInfo, SslSpec};
use nas_strategies::Rng;
use std::collections::HashMap;

/// A two-layer MLP with batch norm and ReLU between (BYOL's projector and predictor).
pub struct Mlp {
    l1: Linear,
    bn: BatchNorm2d,
    l2: Linear,
    hidden: usize,
}

impl Mlp {
    fn new(nin: usize, hidden: usize, nout: usize, rng: &mut Rng) -> Mlp {
        Mlp {
            l1: Linear::new(nin, hidden, rng),
            bn: BatchNorm2d::new(hidden),
            l2: Linear::new(hidden, nout, rng),
            hidden,
        }
    }
}

impl Module for Mlp {
    fn forward(&self, x: &Tensor) -> Tensor {
        let n = x.dim(0);
        let h = self.l1.forward(x).reshape(&[n, self.hidden, 1, 1]);
        let h = self.bn.forward(&h).relu().reshape(&[n, self.hidden]);
        self.l2.forward(&h)
    }
    fn visit(&self, p: &str, f: &mut dyn FnMut(String, &Tensor, Kind)) {
        self.l1.visit(&join(p, "l1"), f);
        self.bn.visit(&join(p, "bn"), f);
        self.l2.visit(&join(p, "l2"), f);
    }
    fn set_training(&self, t: bool) {
        self.bn.set_training(t);
    }
}

/// The heads of one tap point.
struct Head {
    tap: String,
    proj: Mlp,
    pred: Mlp,
    target_proj: Mlp,
}

/// The self-supervised side of a search: the target supernet and the heads.
pub struct Ssl {
    pub spec: SslSpec,
    pub target: Supernet,
    heads: Vec<Head>,
}

/// `x / |x|` per row, differentiable (`|x|` from `exp(log(sum x^2) / 2)`).
fn normalize(x: &Tensor) -> Tensor {
    let inv = x
        .mul(x)
        .sum_axes(&[1], true)
        .add_scalar(1e-12)
        .log()
        .mul_scalar(-0.5)
        .exp();
    x.mul(&inv)
}

/// A tap's output as one vector per image: feature maps are averaged over space.
fn pool(f: &Tensor) -> Tensor {
    if f.rank() == 4 {
        f.mean_axes(&[2, 3], false)
    } else {
        f.flatten(1)
    }
}

/// BYOL's loss of predictions `z` against (normalised) targets `t`: the batch mean of
/// `2 - 2 cos(z, t)`.
pub fn byol_loss(z: &Tensor, t: &Tensor) -> Tensor {
    let cos = normalize(z).mul(t).sum_axes(&[1], false).mean();
    cos.mul_scalar(-2.0).add_scalar(2.0)
}

/// Sets every group's mixing weights of `net` from the flat `mix` (checked by the
/// caller).
pub fn apply_mix(info: &OneShotInfo, net: &Supernet, mix: &[f32]) -> Result<(), String> {
    for (g, r) in info.groups.iter().zip(info.ranges()) {
        net.set_weights(&g.label, &mix[r])?;
    }
    Ok(())
}

/// The seed of the views of item `k` (a step, a batch) of the stream `salt` names, in a
/// run seeded `seed`: reproducible, and different for every item and stream.
pub fn view_seed(seed: u64, salt: u64, k: usize) -> u64 {
    seed ^ salt ^ (k as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// What `net` passes at `tap` for input `x` under its current mixing weights.
fn tap_of(net: &Supernet, tap: &str, x: &Tensor) -> Result<Tensor, String> {
    let (_, seen) = tapped(tap, || net.net.forward(x));
    seen.map(|t| pool(&t))
        .ok_or_else(|| format!("the supernet passes no tap point `{tap}`"))
}

impl Ssl {
    /// The target, a copy of `online` now, and fresh heads on every tap of `spec`,
    /// sized by a forward pass of two blank images of shape `input` under `mix`.
    pub fn new(
        space: &dyn Space,
        online: &Supernet,
        info: &OneShotInfo,
        spec: &SslSpec,
        input: [usize; 3],
        mix: &[f32],
        seed: u64,
    ) -> Result<Ssl, String> {
        spec.check()?;
        let target = Supernet::build(space, true, seed)?;
        nas_core::nn::copy_state(target.net.as_ref(), &state(online.net.as_ref()));
        apply_mix(info, online, mix)?;
        let x = Tensor::zeros(&[2, input[0], input[1], input[2]]);
        let mut rng = Rng::new(seed ^ 0xB055_0A5);
        let mut heads = vec![];
        online.net.set_training(false);
        let widths: Result<Vec<usize>, String> = no_grad(|| {
            spec.taps
                .iter()
                .map(|tap| {
                    tap_of(online, tap, &x).map_err(|e| {
                        format!(
                            "self_supervised: {e} (taps are layer-choice labels or `{}`)",
                            nas_core::space::FEATURES
                        )
                    })
                })
                .map(|t| t.map(|t| t.dim(1)))
                .collect()
        });
        online.net.set_training(true);
        for (tap, width) in spec.taps.iter().zip(widths?) {
            let proj = Mlp::new(width, spec.hidden, spec.dim, &mut rng);
            let target_proj = Mlp::new(width, spec.hidden, spec.dim, &mut rng);
            nas_core::nn::copy_state(&target_proj, &state(&proj));
            heads.push(Head {
                tap: tap.clone(),
                proj,
                pred: Mlp::new(spec.dim, spec.hidden, spec.dim, &mut rng),
                target_proj,
            });
        }
        Ok(Ssl {
            spec: spec.clone(),
            target,
            heads,
        })
    }

    /// Two augmented views of a batch `x` of `n` images of shape `input`, drawn from a
    /// generator seeded by `seed` (see [`view_seed`]), as the spec makes them.
    pub fn views(&self, x: &[f32], n: usize, input: [usize; 3], seed: u64) -> [Tensor; 2] {
        let aug = Augment {
            random_crop_pad: self.spec.crop_pad,
            hflip: true,
        };
        let [c, h, w] = input;
        let mut rng = Rng::new(seed);
        let mut view = || {
            Tensor::from_vec(
                augment_view(x, c, h, w, &aug, self.spec.jitter, &mut rng),
                &[n, c, h, w],
            )
        };
        [view(), view()]
    }

    fn head(&self, tap: &str) -> Result<&Head, String> {
        self.heads.iter().find(|h| h.tap == tap).ok_or_else(|| {
            format!(
                "no tap point `{tap}` in this run's self-supervised mode (it has {})",
                self.spec.taps.join(", ")
            )
        })
    }

    /// The online heads' parameters (they train with the online supernet).
    pub fn params(&self) -> Vec<Tensor> {
        self.heads
            .iter()
            .flat_map(|h| parameters(&h.proj).into_iter().chain(parameters(&h.pred)))
            .map(|(_, t)| t)
            .collect()
    }

    /// Every tensor of the target and the heads, named for a checkpoint.
    pub fn named(&self) -> Vec<(String, Tensor)> {
        let mut v: Vec<(String, Tensor)> = state(self.target.net.as_ref())
            .into_iter()
            .map(|(n, t)| (format!("ssl_target.{n}"), t))
            .collect();
        for (i, h) in self.heads.iter().enumerate() {
            for (part, m) in [
                ("proj", &h.proj),
                ("pred", &h.pred),
                ("target_proj", &h.target_proj),
            ] {
                v.extend(
                    state(m)
                        .into_iter()
                        .map(|(n, t)| (format!("ssl.head{i}.{part}.{n}"), t)),
                );
            }
        }
        v
    }

    /// Loads what [`Ssl::named`] saved; an error names what is missing.
    pub fn load(&self, file: &HashMap<String, Tensor>) -> Result<(), String> {
        let mut missing = vec![];
        no_grad(|| {
            for (name, t) in self.named() {
                match file.get(&name) {
                    Some(v) if v.shape() == t.shape() => t.data_mut().copy_from_slice(&v.data()),
                    _ => missing.push(name),
                }
            }
        });
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "the self-supervised state is missing or misshapen: {}",
                missing[..missing.len().min(5)].join(", ")
            ))
        }
    }

    /// Every buffer (batch-norm statistics) of the online net given and of the heads
    /// and target, to put back after a scoring pass.
    pub fn buffers(&self, online: &Supernet) -> Vec<Tensor> {
        let mut v = buffers(online.net.as_ref());
        v.extend(buffers(self.target.net.as_ref()));
        for h in &self.heads {
            for m in [&h.proj, &h.pred, &h.target_proj] {
                v.extend(buffers(m));
            }
        }
        v
    }

    /// The ensemble target of a batch of images `x` at `tap`: the target's
    /// projections under each path of `paths`, L2-normalised, averaged, and normalised
    /// again (no graph). The target runs on batch statistics.
    pub fn ensemble_target(
        &self,
        info: &OneShotInfo,
        tap: &str,
        paths: &[Vec<f32>],
        x: &Tensor,
    ) -> Result<Tensor, String> {
        let head = self.head(tap)?;
        self.target.net.set_training(true);
        head.target_proj.set_training(true);
        no_grad(|| {
            let mut sum: Option<Tensor> = None;
            for p in paths {
                apply_mix(info, &self.target, p)?;
                let z = normalize(&head.target_proj.forward(&tap_of(&self.target, tap, x)?));
                sum = Some(match sum {
                    None => z,
                    Some(s) => s.add(&z),
                });
            }
            let sum = sum.ok_or("an ensemble target needs at least one path")?;
            Ok(normalize(&sum).detach())
        })
    }

    /// The ensemble targets of both views of a batch (see
    /// [`ensemble_target`](Self::ensemble_target)).
    pub fn ensemble_targets(
        &self,
        info: &OneShotInfo,
        tap: &str,
        paths: &[Vec<f32>],
        views: &[Tensor; 2],
    ) -> Result<[Tensor; 2], String> {
        Ok([
            self.ensemble_target(info, tap, paths, &views[0])?,
            self.ensemble_target(info, tap, paths, &views[1])?,
        ])
    }

    /// The online prediction of `x` at `tap` under `online`'s current mixing weights.
    pub fn predict(&self, online: &Supernet, tap: &str, x: &Tensor) -> Result<Tensor, String> {
        let head = self.head(tap)?;
        Ok(head
            .pred
            .forward(&head.proj.forward(&tap_of(online, tap, x)?)))
    }

    /// Switches the online heads of `tap` between training and evaluation behaviour.
    pub fn set_heads_training(&self, tap: &str, t: bool) -> Result<(), String> {
        let head = self.head(tap)?;
        head.proj.set_training(t);
        head.pred.set_training(t);
        Ok(())
    }

    /// The momentum update: every target parameter (supernet and projectors) becomes
    /// `m * target + (1 - m) * online`.
    pub fn ema(&self, online: &Supernet, m: f32) {
        let mut pairs: Vec<(Tensor, Tensor)> = parameters(self.target.net.as_ref())
            .into_iter()
            .zip(parameters(online.net.as_ref()))
            .map(|((_, t), (_, o))| (t, o))
            .collect();
        for h in &self.heads {
            pairs.extend(
                parameters(&h.target_proj)
                    .into_iter()
                    .zip(parameters(&h.proj))
                    .map(|((_, t), (_, o))| (t, o)),
            );
        }
        no_grad(|| {
            for (t, o) in pairs {
                let o = o.to_vec();
                for (t, o) in t.data_mut().iter_mut().zip(o) {
                    *t = m * *t + (1.0 - m) * o;
                }
            }
        });
    }
}
