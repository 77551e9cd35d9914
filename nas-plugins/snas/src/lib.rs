//! SNAS (Xie et al., 2019): each step mixes the candidates of every choice by a relaxed
//! Gumbel-softmax sample `softmax((alpha + G) / tau)`; one backward pass on a training
//! batch trains the weights and gives the logits' gradient through the sample (a single
//! level: weights and logits learn from the same batches). The temperature anneals
//! geometrically from `tau_max` (1.0) to `tau_min` (0.03) over the search.
//!
//! A cell node's incoming edges are not sampled: each weighs 1 (SNAS samples the op of
//! every edge and sums a node's edges, as DARTS does).
//!
//! Export: the strongest candidate of every choice; for edges the DARTS rule (each
//! edge's strongest op other than `none`, the two edges whose kept op weighs most).
//!
//! Config: `tau_max`, `tau_min`, `arch_lr`, `arch_weight_decay`.

use nas_strategies::oneshot::{
    temperature_range, EpochStrategy, OneShotInfo, OneShotSetup, SampledLogits, Split,
    SupernetHost, Warmup, ARCH_FIELDS,
};
use nas_strategies::{export_one_shot, Architecture, Value};

pub struct Snas {
    info: OneShotInfo,
    warmup: Warmup,
    tau: (f32, f32),
    state: SampledLogits,
}

impl EpochStrategy for Snas {
    fn create(setup: &OneShotSetup) -> Result<Self, String> {
        let mut fields = vec!["tau_max", "tau_min"];
        fields.extend_from_slice(ARCH_FIELDS);
        nas_strategies::check_config_fields(&setup.config, "snas", &fields)?;
        Ok(Snas {
            warmup: Warmup::from_config(setup)?,
            info: setup.info.clone(),
            tau: temperature_range(&setup.config, 1.0, 0.03)?,
            state: SampledLogits::new(&setup.info, &setup.config, setup.seed)?,
        })
    }

    fn step(
        &mut self,
        host: &mut dyn SupernetHost,
        epoch: usize,
        step: usize,
    ) -> Result<Vec<(&'static str, f32)>, String> {
        let t = self.info.progress(epoch, step);
        let tau = self.tau.0 * (self.tau.1 / self.tau.0).powf(t);
        host.next_batch(Split::Train)?;
        let z = self.state.arch.perturbed(&mut self.state.rng);
        let soft = self.info.softmax(&z, tau);
        let mut g = vec![0.0; soft.len()];
        let loss = host.train_step(&soft, Some(&mut g))?;
        let g_alpha = self.info.softmax_backward(&soft, &g, tau);
        self.state.arch.step(&g_alpha)?;
        Ok(vec![("train_loss", loss), ("tau", tau)])
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

export_one_shot!(Snas, "snas", "0.1.0");
