//! SNAS (Xie et al., 2019): each step mixes the candidates of every choice by a relaxed
//! Gumbel-softmax sample `Z = softmax((alpha + G) / tau)`; one backward pass on a
//! training batch trains the weights and gives the logits' gradient through the sample
//! (a single level: weights and logits learn from the same batches). The temperature
//! falls linearly from `tau_max` (1.0) to `tau_min` (0.03) over the search.
//!
//! The resource constraint (every search of the paper has one): the loss adds
//! `resource_lambda * sum over layer choices of mean_r log(sum_o Z_o R_r(o))`, where
//! `R_r(o)` are candidate `o`'s parameters, multiply-adds and memory access on its input
//! in the supernet (the host's [`SupernetHost::op_costs`]); its gradient reaches the
//! logits through the same sample, as the reference's reparametrised log penalty does.
//! A choice whose sampled cost is under 1 (a `none` op) adds nothing, as there.
//!
//! The logits' gradient (loss and constraint) is clipped at norm `arch_grad_clip` (10)
//! before their Adam step. Training steps (after any warm-up) drop paths (`drop_path`,
//! 0.3: each cell edge's output zeroed per image, as the reference's search does).
//!
//! A cell node's incoming edges are not sampled: each weighs 1 (SNAS samples the op of
//! every edge and sums a node's edges, as DARTS does).
//!
//! Export: the strongest candidate of every choice; for edges the DARTS rule (each
//! edge's strongest op other than `none`, the two edges whose kept op weighs most).
//!
//! Config: `tau_max`, `tau_min`, `resource_lambda`, `resource`, `arch_grad_clip`,
//! `drop_path`, `arch_lr`, `arch_weight_decay`, `warmup_epochs`.

use nas_strategies::oneshot::{
    temperature_range, EpochStrategy, OneShotInfo, OneShotSetup, SampledLogits, Split,
    SupernetHost, Warmup, ARCH_FIELDS,
};
use nas_strategies::{config_field, export_one_shot, Architecture, ChoiceKind, OpCost, Value};

/// Which costs the resource constraint weighs (the reference's `--separation`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    /// The mean of the three logs (the reference's default, `all`).
    All,
    Params,
    Macs,
    Memory,
}

impl Resource {
    pub fn parse(name: &str) -> Result<Resource, String> {
        Ok(match name {
            "all" => Resource::All,
            "params" => Resource::Params,
            "macs" => Resource::Macs,
            "memory" => Resource::Memory,
            _ => {
                return Err(format!(
                    "config field `resource`: \"{name}\" is not one of \"all\", \"params\", \
                     \"macs\", \"memory\""
                ))
            }
        })
    }

    /// The costs it weighs, each read from an [`OpCost`].
    fn parts(self) -> &'static [fn(&OpCost) -> f64] {
        const PARAMS: fn(&OpCost) -> f64 = |c| c.params;
        const MACS: fn(&OpCost) -> f64 = |c| c.macs;
        const MEMORY: fn(&OpCost) -> f64 = |c| c.memory;
        match self {
            Resource::All => &[PARAMS, MACS, MEMORY],
            Resource::Params => &[PARAMS],
            Resource::Macs => &[MACS],
            Resource::Memory => &[MEMORY],
        }
    }
}

/// SNAS's log resource penalty of the sample `mix` and its gradient with respect to
/// `mix`: for every layer choice and every cost `r` that `which` weighs,
/// `log(S_r) / n` with `S_r = sum_o mix_o R_r(o)` (`n` the number of costs weighed),
/// whose gradient is `R_r(o) / (n S_r)`. A sum under 1 counts as 1 (no penalty, no
/// gradient), as the reference clamps it.
pub fn resource_penalty(
    info: &OneShotInfo,
    costs: &[OpCost],
    mix: &[f32],
    which: Resource,
) -> (f32, Vec<f32>) {
    let mut grad = vec![0.0f32; mix.len()];
    let mut penalty = 0.0f64;
    let parts = which.parts();
    let n = parts.len() as f64;
    for (g, r) in info.groups.iter().zip(info.ranges()) {
        if !matches!(info.choices[g.choice].kind, ChoiceKind::Layer { .. }) {
            continue;
        }
        for part in parts {
            let s: f64 = r.clone().map(|i| mix[i] as f64 * part(&costs[i])).sum();
            if s < 1.0 {
                continue;
            }
            penalty += s.ln() / n;
            for i in r.clone() {
                grad[i] += (part(&costs[i]) / (n * s)) as f32;
            }
        }
    }
    (penalty as f32, grad)
}

/// Scales `g` down to norm `max` if it is longer (no clipping for `max` 0).
pub fn clip_norm(g: &mut [f32], max: f32) {
    let norm = g.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt() as f32;
    if max > 0.0 && norm > max {
        let s = max / norm;
        g.iter_mut().for_each(|x| *x *= s);
    }
}

pub struct Snas {
    info: OneShotInfo,
    warmup: Warmup,
    tau: (f32, f32),
    lambda: f32,
    resource: Resource,
    clip: f32,
    drop_path: f32,
    /// Whether the host was told the drop-path probability (at the first step, a
    /// resumed search's too).
    drop_path_set: bool,
    /// The host's op costs, asked for at the first step (not saved: the host gives
    /// the same ones again after a resume).
    costs: Option<Vec<OpCost>>,
    state: SampledLogits,
}

impl Snas {
    /// The temperature at `epoch`, `step`: linear from `tau_max` to `tau_min`, which the
    /// last step takes (the reference steps its schedule at the start of each epoch, so
    /// its first epoch already runs one step below `tau_max` and its last at `tau_min`).
    pub fn tau(&self, epoch: usize, step: usize) -> f32 {
        let t = self.info.progress(epoch, step + 1);
        self.tau.0 - (self.tau.0 - self.tau.1) * t
    }
}

impl EpochStrategy for Snas {
    fn create(setup: &OneShotSetup) -> Result<Self, String> {
        let mut fields = vec![
            "tau_max",
            "tau_min",
            "resource_lambda",
            "resource",
            "arch_grad_clip",
            "drop_path",
        ];
        fields.extend_from_slice(ARCH_FIELDS);
        nas_strategies::check_config_fields(&setup.config, "snas", &fields)?;
        let lambda: f32 = config_field(&setup.config, "resource_lambda", 1e-2)?;
        if !(lambda >= 0.0 && lambda.is_finite()) {
            return Err(format!(
                "config field `resource_lambda`: {lambda} must be finite and at least 0 \
                 (0 turns the resource constraint off)"
            ));
        }
        let clip: f32 = config_field(&setup.config, "arch_grad_clip", 10.0)?;
        if !(clip >= 0.0 && clip.is_finite()) {
            return Err(format!(
                "config field `arch_grad_clip`: {clip} must be finite and at least 0 (0 does \
                 not clip)"
            ));
        }
        let drop_path: f32 = config_field(&setup.config, "drop_path", 0.3)?;
        nas_strategies::oneshot::check_drop_path(drop_path)
            .map_err(|e| format!("config field `drop_path`: {e}"))?;
        let resource: String = config_field(&setup.config, "resource", "all".to_string())?;
        Ok(Snas {
            warmup: Warmup::from_config(setup)?,
            info: setup.info.clone(),
            tau: temperature_range(&setup.config, 1.0, 0.03)?,
            lambda,
            resource: Resource::parse(&resource)?,
            clip,
            drop_path,
            drop_path_set: false,
            costs: None,
            state: SampledLogits::new(&setup.info, &setup.config, setup.seed)?,
        })
    }

    fn step(
        &mut self,
        host: &mut dyn SupernetHost,
        epoch: usize,
        step: usize,
    ) -> Result<Vec<(&'static str, f32)>, String> {
        let tau = self.tau(epoch, step);
        if !self.drop_path_set {
            if self.drop_path > 0.0 {
                host.set_drop_path(self.drop_path)?;
            }
            self.drop_path_set = true;
        }
        if self.lambda > 0.0 && self.costs.is_none() {
            self.costs = Some(self.info.per_weight("op costs", host.op_costs()?)?);
        }
        host.next_batch(Split::Train)?;
        let z = self.state.arch.perturbed(&mut self.state.rng);
        let soft = self.info.softmax(&z, tau);
        let mut g = vec![0.0; soft.len()];
        let loss = host.train_step(&soft, Some(&mut g))?;
        let mut out = vec![("train_loss", loss), ("tau", tau)];
        if let Some(costs) = &self.costs {
            let (penalty, pg) = resource_penalty(&self.info, costs, &soft, self.resource);
            for (g, p) in g.iter_mut().zip(&pg) {
                *g += self.lambda * p;
            }
            out.push(("resource_loss", self.lambda * penalty));
        }
        let mut g_alpha = self.info.softmax_backward(&soft, &g, tau);
        clip_norm(&mut g_alpha, self.clip);
        self.state.arch.step(&g_alpha)?;
        Ok(out)
    }

    fn warmup(&self) -> Warmup {
        self.warmup
    }

    fn current(&self, info: &OneShotInfo) -> Architecture {
        self.state.arch.derive(info)
    }

    fn save(&self) -> Result<Value, String> {
        self.state.save()
    }

    fn load(&mut self, state: Value) -> Result<(), String> {
        self.state.load(state)
    }
}

export_one_shot!(Snas, "snas", "0.2.0");
