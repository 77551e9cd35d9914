//! GDAS (Dong and Yang, 2019): each step samples one path by Gumbel-max on the
//! architecture logits, and only that path is computed, forward and backward. The
//! architecture gradient reaches every logit through the Gumbel-softmax it stands for
//! (straight-through: the hard one-hot forward, the soft sample's gradient). As in the
//! reference's NAS-Bench-201 cell, which adds each unchosen op's gate to the edge's sum
//! as a bare term, an unchosen op of a layer choice gets the sum of the choice's output
//! gradient as its gate's gradient ([`SupernetHost::gate_grad`]), the chosen op
//! `<dL/dy, op(x)>`. In a space whose cells have edges with op choices (`darts`) the
//! reference's DARTS-space cell multiplies only the chosen op by its gate, so there
//! unchosen ops get no gradient ([`SupernetHost::mix_grad`]). Weights learn on training
//! batches, logits on validation batches. The temperature falls linearly from `tau_max`
//! (10) to `tau_min` (0.1) over the search.
//!
//! A cell node's incoming edges are not sampled: each is on at weight 1 and only its op
//! is sampled (GDAS samples one op per edge and sums a node's edges).
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

pub struct Gdas {
    info: OneShotInfo,
    warmup: Warmup,
    tau: (f32, f32),
    /// Whether unchosen ops' bare gates get a gradient (no cell edges in the space).
    pub bare_gates: bool,
    pub state: SampledLogits,
}

/// A hard sample: the one-hot path of the perturbed logits `z` (every edge of a cell
/// node kept, each with its sampled op), and the soft sample `softmax(z / tau)` its
/// gradient goes through.
pub fn hard_sample(info: &OneShotInfo, z: &[f32], tau: f32) -> (Vec<f32>, Vec<f32>) {
    (
        info.all_edges(info.one_hot(&info.strongest(z))),
        info.softmax(z, tau),
    )
}

impl Gdas {
    fn tau(&self, epoch: usize, step: usize) -> f32 {
        let t = self.info.progress(epoch, step);
        self.tau.0 - (self.tau.0 - self.tau.1) * t
    }
}

impl EpochStrategy for Gdas {
    fn create(setup: &OneShotSetup) -> Result<Self, String> {
        let mut fields = vec!["tau_max", "tau_min"];
        fields.extend_from_slice(ARCH_FIELDS);
        nas_strategies::check_config_fields(&setup.config, "gdas", &fields)?;
        Ok(Gdas {
            warmup: Warmup::from_config(setup)?,
            info: setup.info.clone(),
            tau: temperature_range(&setup.config, 10.0, 0.1)?,
            bare_gates: !(0..setup.info.groups.len()).any(|g| setup.info.is_edges(g)),
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
        host.next_batch(Split::Train)?;
        let z = self.state.arch.perturbed(&mut self.state.rng);
        let (hard, _) = hard_sample(&self.info, &z, tau);
        let train_loss = host.train_step(&hard, None)?;
        host.next_batch(Split::Val)?;
        let z = self.state.arch.perturbed(&mut self.state.rng);
        let (hard, soft) = hard_sample(&self.info, &z, tau);
        let mut g = vec![0.0; hard.len()];
        // Unchosen ops are not computed; their gates get the reference's gradient (the
        // sum of their choice's output gradient in its NAS-Bench-201 cell, none in its
        // DARTS-space cell).
        let r = if self.bare_gates {
            host.gate_grad(&hard, Split::Val, &mut g)?
        } else {
            host.mix_grad(&hard, Split::Val, &mut g, false)?
        };
        let g_alpha = self.info.softmax_backward(&soft, &g, tau);
        self.state.arch.step(&g_alpha)?;
        Ok(vec![
            ("train_loss", train_loss),
            ("val_loss", r.loss),
            ("tau", tau),
        ])
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

export_one_shot!(Gdas, "gdas", "0.2.0");
