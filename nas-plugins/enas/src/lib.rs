//! ENAS (Pham et al., 2018): an LSTM controller samples architectures; the shared
//! supernet weights train on one sampled path per training batch; after each epoch the
//! controller samples `controller_steps` paths, each rewarded by its accuracy on the
//! next validation batch with the shared weights, and takes one REINFORCE step per
//! `batch` of them, with a moving-average baseline and an entropy bonus (the controller
//! of the `reinforce` strategy). At the end `final_samples` paths are sampled and the
//! best on `final_batches` validation batches (the same batches for every sample) is
//! exported.
//!
//! Defaults are the reference code's micro search (`cifar10_micro_search.sh` and its
//! flags): 300 samples per epoch in 30 updates of 10 (`controller_num_aggregate` 10,
//! `controller_train_steps` 30), LSTM size 64, Adam lr 0.0035, baseline decay 0.99,
//! entropy weight 1e-4, tanh constant 1.1; and its objective and optimiser (the
//! controller's `"style": "enas"`: the entropy in the reward, with no gradient of its
//! own, the baseline from 0 taking each reward in first; Adam with beta1 0 and
//! TensorFlow's epsilon 1e-3, on the uncorrected second moment; no clipping).
//! Differences, and why:
//! - The reference divides the op logits' tanh constant by `op_tanh_reduce` (2.5); our
//!   controller has one constant for every decision, as it serves every space, not only
//!   the cell's ops and inputs.
//! - The reference's code has no final pick: it logs sampled architectures with their
//!   accuracy on one batch (the paper derives one by sampling several and keeping the
//!   best on one validation minibatch). We export the best of `final_samples` on
//!   `final_batches` fixed batches (10 by default, for a steadier pick than one batch).
//!
//! Config: `controller_steps` (300, at most 100000), `final_samples` (10, at most
//! 10000), `final_batches` (10, at most the validation split's batches), and
//! `controller` (options of the reinforce controller, over the defaults above:
//! `hidden`, `lr`, `batch`, `entropy_weight`, `baseline_decay`, `temperature`, `tanh_c`,
//! ...).

use nas_controller::Reinforce;
use nas_strategies::oneshot::{
    EpochStrategy, OneShotInfo, OneShotSetup, Split, Subset, SupernetHost, Warmup,
};
use nas_strategies::{
    config_count, config_field, export_one_shot, json, Architecture, Metrics, Setup, Strategy,
    Value,
};

/// Stated caps: controller steps per epoch, and paths sampled for the final answer.
const MAX_CONTROLLER_STEPS: usize = 100_000;
const MAX_FINAL_SAMPLES: usize = 10_000;

pub struct Enas {
    info: OneShotInfo,
    warmup: Warmup,
    ctrl: Reinforce,
    controller_steps: usize,
    final_samples: usize,
    final_batches: usize,
    /// The best path of the last controller phase (what progress shows).
    current: Option<(f32, Architecture)>,
}

impl EpochStrategy for Enas {
    fn create(setup: &OneShotSetup) -> Result<Self, String> {
        let c = &setup.config;
        nas_strategies::check_config_fields(
            c,
            "enas",
            &[
                "controller_steps",
                "final_samples",
                "final_batches",
                "controller",
                nas_strategies::oneshot::WARMUP_FIELD,
            ],
        )?;
        // The reference's controller (micro search), unless the user says otherwise.
        let mut ctrl_cfg = json!({
            "hidden": 64,
            "lr": 0.0035,
            "baseline_decay": 0.99,
            "entropy_weight": 1e-4,
            "tanh_c": 1.1,
            "batch": 10,
            // Its optimiser (`utils.get_train_ops`: Adam, beta1 0, epsilon 1e-3), no
            // clipping (the micro controller's `clip_mode` is None), and its objective
            // (entropy in the reward, baseline from 0 updated before the advantage).
            "adam_beta1": 0.0,
            "adam_eps": 1e-3,
            // TensorFlow's Adam adds epsilon to the uncorrected second moment's root.
            "adam_eps_form": "tf",
            "grad_clip": 0.0,
            "style": "enas",
        });
        match c.get("controller") {
            None => {}
            Some(Value::Object(user)) => {
                for (k, v) in user {
                    ctrl_cfg[k.as_str()] = v.clone();
                }
            }
            Some(v) => {
                return Err(format!(
                    "config field `controller`: {v} is not an object of controller options"
                ))
            }
        }
        let ctrl = Reinforce::new(&Setup {
            space: setup.info.choices.clone(),
            config: ctrl_cfg,
            seed: setup.seed,
            budget: usize::MAX,
        })
        .map_err(|e| format!("config field `controller`: {e}"))?;
        let val = setup.info.max_eval_batches();
        Ok(Enas {
            warmup: Warmup::from_config(setup)?,
            info: setup.info.clone(),
            ctrl,
            controller_steps: config_count(c, "controller_steps", 300, 1, MAX_CONTROLLER_STEPS)?,
            final_samples: config_count(c, "final_samples", 10, 1, MAX_FINAL_SAMPLES)?,
            // Validation batches the split holds.
            final_batches: config_count(c, "final_batches", 10.min(val), 1, val)?,
            current: None,
        })
    }

    fn step(
        &mut self,
        host: &mut dyn SupernetHost,
        _epoch: usize,
        _step: usize,
    ) -> Result<Vec<(&'static str, f32)>, String> {
        host.next_batch(Split::Train)?;
        let arch = self.ctrl.sample();
        let mix = self.info.one_hot_arch(&arch)?;
        let loss = host.train_step(&mix, None)?;
        Ok(vec![("train_loss", loss)])
    }

    fn end_epoch(
        &mut self,
        host: &mut dyn SupernetHost,
        _epoch: usize,
    ) -> Result<Vec<(&'static str, f32)>, String> {
        let mut total = 0.0;
        let mut best: Option<(f32, Architecture)> = None;
        for _ in 0..self.controller_steps {
            let arch = self.ctrl.ask()?.ok_or("the controller proposed nothing")?;
            let mix = self.info.one_hot_arch(&arch)?;
            let acc = host.evaluate(&mix, 1, 0, Subset::Next)?;
            self.ctrl.tell(
                &arch,
                &Metrics {
                    accuracy: acc as f64,
                    ..Default::default()
                },
            )?;
            total += acc;
            if best.as_ref().is_none_or(|(b, _)| acc > *b) {
                best = Some((acc, arch));
            }
        }
        self.current = best;
        Ok(vec![(
            "controller_reward",
            total / self.controller_steps as f32,
        )])
    }

    fn warmup(&self) -> Warmup {
        self.warmup
    }

    fn current(&self, info: &OneShotInfo) -> Architecture {
        match &self.current {
            Some((_, a)) => a.clone(),
            None => info.derive(&vec![1.0; info.len()]),
        }
    }

    fn finish(&mut self, host: &mut dyn SupernetHost) -> Result<Architecture, String> {
        let mut best: Option<(f32, Architecture)> = None;
        for _ in 0..self.final_samples {
            let arch = self.ctrl.sample();
            let mix = self.info.one_hot_arch(&arch)?;
            let acc = host.evaluate(&mix, self.final_batches, 0, Subset::Fixed)?;
            if best.as_ref().is_none_or(|(b, _)| acc > *b) {
                best = Some((acc, arch));
            }
        }
        Ok(best.expect("final_samples >= 1").1)
    }

    fn save(&self) -> Result<Value, String> {
        Ok(json!({"controller": self.ctrl.save()?, "current": self.current}))
    }

    fn load(&mut self, state: Value) -> Result<(), String> {
        self.ctrl
            .load(state.get("controller").cloned().unwrap_or(Value::Null))?;
        self.current = config_field(&state, "current", None)?;
        Ok(())
    }
}

export_one_shot!(Enas, "enas", "0.2.1");
