//! SNAS (Xie et al., 2019): each step mixes the candidates of every choice by a relaxed
//! Gumbel-softmax sample `softmax((alpha + G) / tau)`; one backward pass on a training
//! batch trains the weights and gives the logits' gradient through the sample (a single
//! level: weights and logits learn from the same batches). The temperature anneals
//! geometrically from `tau_max` (1.0) to `tau_min` (0.03) over the search.
//!
//! Export: the strongest candidate of every choice (the DARTS rule in the DARTS space).
//!
//! Config: `tau_max`, `tau_min`, `arch_lr`, `arch_weight_decay`.

use nas_strategies::oneshot::{
    rng_from, rng_state, ArchParams, EpochStrategy, OneShotInfo, OneShotSetup, Split, SupernetHost,
    ARCH_FIELDS,
};
use nas_strategies::{config_field, export_one_shot, json, Architecture, Rng, Value};

pub struct Snas {
    info: OneShotInfo,
    tau: (f32, f32),
    arch: ArchParams,
    rng: Rng,
}

impl EpochStrategy for Snas {
    fn create(setup: &OneShotSetup) -> Result<Self, String> {
        let mut fields = vec!["tau_max", "tau_min"];
        fields.extend_from_slice(ARCH_FIELDS);
        nas_strategies::check_config_fields(&setup.config, "snas", &fields)?;
        let hi: f32 = config_field(&setup.config, "tau_max", 1.0)?;
        let lo: f32 = config_field(&setup.config, "tau_min", 0.03)?;
        if !(lo > 0.0 && hi >= lo && hi.is_finite()) {
            return Err(format!(
                "config fields `tau_max`/`tau_min`: {hi}/{lo} are not valid (need tau_max >= tau_min > 0)"
            ));
        }
        Ok(Snas {
            info: setup.info.clone(),
            tau: (hi, lo),
            arch: ArchParams::new(&setup.info, &setup.config)?,
            rng: Rng::new(setup.seed),
        })
    }

    fn step(
        &mut self,
        host: &mut dyn SupernetHost,
        epoch: usize,
        step: usize,
    ) -> Result<Vec<(&'static str, f32)>, String> {
        let total = (self.info.epochs * self.info.batches_per_epoch).max(1) as f32;
        let t = (epoch * self.info.batches_per_epoch + step) as f32 / total;
        let tau = self.tau.0 * (self.tau.1 / self.tau.0).powf(t);
        host.next_batch(Split::Train)?;
        let z = self.arch.perturbed(&mut self.rng);
        let soft = self.info.softmax(&z, tau);
        let mut g = vec![0.0; soft.len()];
        let loss = host.train_step(&soft, Some(&mut g))?;
        let g_alpha = self.info.softmax_backward(&soft, &g, tau);
        self.arch.step(&g_alpha);
        Ok(vec![("train_loss", loss), ("tau", tau)])
    }

    fn current(&self, info: &OneShotInfo) -> Architecture {
        info.derive(&self.arch.probs(info))
    }

    fn save(&self) -> Result<Value, String> {
        Ok(json!({"arch": self.arch.save()?, "rng": rng_state(&self.rng)}))
    }

    fn load(&mut self, state: Value) -> Result<(), String> {
        self.arch
            .load(state.get("arch").cloned().unwrap_or(Value::Null))?;
        self.rng = rng_from(state.get("rng").unwrap_or(&Value::Null))?;
        Ok(())
    }
}

export_one_shot!(Snas, "snas", "0.1.0");

#[cfg(test)]
mod tests {
    use super::*;
    use nas_strategies::oneshot::OneShotStrategy;
    use nas_strategies::testing::{picked, FakeSupernet};

    #[test]
    fn relaxed_samples_follow_the_gradient_to_the_best_candidates() {
        let mut f = FakeSupernet::new(2, 3, 1, 200);
        f.slope = vec![1.0, 0.5, -1.0, -1.0, 0.5, 1.0, -1.0, 1.0, -0.5];
        let s = OneShotSetup {
            info: f.info.clone(),
            config: json!({"arch_lr": 0.05}),
            seed: 1,
            resume: None,
        };
        let arch = <Snas as OneShotStrategy>::new(&s)
            .unwrap()
            .run(&mut f, None)
            .unwrap();
        assert_eq!((picked(&arch, 0), picked(&arch, 1)), (2, 0));
        assert_eq!(arch["in"], json!([0, 2]));
    }
}
