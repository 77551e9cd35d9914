//! ProxylessNAS (Cai, Zhu and Han, 2019): binarized paths. Each weight step trains one
//! path sampled from `p = softmax(alpha)`, so memory and time are those of one
//! network. Each architecture step samples two candidates per choice, keeps one
//! active (drawn from their renormalised probabilities) and the other computed at
//! weight zero, and takes the gradient of the binary gates on a validation batch; the
//! two logits get `dL/dalpha_i = sum_j dL/dg_j q_j (delta_ij - q_i)`. Input choices
//! picking `k` inputs treat their `k` sampled inputs plus one more the same way.
//!
//! Latency: with `latency_weight` > 0 (default 0.1), the loss adds
//! `latency_weight * E[latency] / E_uniform[latency]`, the expected latency under `p`
//! from the host's measured latency table, whose gradient is exact.
//!
//! Export: the strongest candidate of every choice.
//!
//! Config: `latency_weight`, `arch_lr` (default 1e-3 here), `arch_weight_decay`.

use nas_strategies::oneshot::{
    sample, EpochStrategy, OneShotInfo, OneShotSetup, SampledLogits, Split, SupernetHost,
    ARCH_FIELDS,
};
use nas_strategies::{config_field, export_one_shot, json, Architecture, ChoiceKind, Rng, Value};

pub struct Proxyless {
    info: OneShotInfo,
    latency_weight: f32,
    /// Per-weight latency (ms) and the uniform expectation, once measured.
    latency: Option<(Vec<f32>, f32)>,
    state: SampledLogits,
}

/// Samples `k` distinct indices from probabilities `p` (without replacement).
fn sample_distinct(p: &[f32], k: usize, rng: &mut Rng) -> Vec<usize> {
    let mut w = p.to_vec();
    let mut out = vec![];
    for _ in 0..k.min(p.len()) {
        let s: f32 = w.iter().sum();
        let q: Vec<f32> = if s > 0.0 {
            w.iter().map(|v| v / s).collect()
        } else {
            w.iter().map(|_| 1.0 / w.len() as f32).collect()
        };
        let mut i = sample(&q, rng);
        while out.contains(&i) {
            i = (i + 1) % w.len();
        }
        w[i] = 0.0;
        out.push(i);
    }
    out
}

impl Proxyless {
    /// How many candidates of a group are active in one path.
    fn active_count(&self, g: usize) -> usize {
        match &self.info.choices[self.info.groups[g].choice].kind {
            ChoiceKind::Input { n_chosen, .. } => *n_chosen,
            _ => 1,
        }
    }

    /// One path sampled from `p`: `k` active candidates per group.
    fn path(&mut self, p: &[f32]) -> Vec<f32> {
        let mut mix = vec![0.0; p.len()];
        for (g, r) in self.info.ranges().into_iter().enumerate() {
            let k = self.active_count(g);
            for i in sample_distinct(&p[r.clone()], k, &mut self.state.rng) {
                mix[r.start + i] = 1.0;
            }
        }
        mix
    }

    /// The expected-latency term's gradient with respect to the logits.
    fn latency_grad(
        &mut self,
        host: &mut dyn SupernetHost,
        p: &[f32],
    ) -> Result<(Vec<f32>, f32), String> {
        if self.latency.is_none() {
            let lat = host.latencies()?;
            let uniform: f32 = self
                .info
                .ranges()
                .into_iter()
                .map(|r| r.clone().map(|i| lat[i]).sum::<f32>() / r.len() as f32)
                .sum();
            self.latency = Some((lat, uniform.max(1e-6)));
        }
        let (lat, norm) = self.latency.as_ref().unwrap();
        let scale = self.latency_weight / norm;
        let mut g = vec![0.0; p.len()];
        let mut expected = 0.0;
        for r in self.info.ranges() {
            let e: f32 = r.clone().map(|i| p[i] * lat[i]).sum();
            expected += e;
            for i in r {
                g[i] = scale * p[i] * (lat[i] - e);
            }
        }
        Ok((g, expected))
    }
}

impl EpochStrategy for Proxyless {
    fn create(setup: &OneShotSetup) -> Result<Self, String> {
        let mut fields = vec!["latency_weight"];
        fields.extend_from_slice(ARCH_FIELDS);
        nas_strategies::check_config_fields(&setup.config, "proxylessnas", &fields)?;
        let lw: f32 = config_field(&setup.config, "latency_weight", 0.1)?;
        if !(lw >= 0.0 && lw.is_finite()) {
            return Err(format!(
                "config field `latency_weight`: {lw} is not valid (must be >= 0)"
            ));
        }
        let mut config = setup.config.clone();
        if config.get("arch_lr").is_none() {
            if let Some(m) = config.as_object_mut() {
                m.insert("arch_lr".into(), json!(1e-3));
            } else {
                config = json!({"arch_lr": 1e-3});
            }
        }
        Ok(Proxyless {
            info: setup.info.clone(),
            latency_weight: lw,
            latency: None,
            state: SampledLogits::new(&setup.info, &config, setup.seed)?,
        })
    }

    fn step(
        &mut self,
        host: &mut dyn SupernetHost,
        _epoch: usize,
        _step: usize,
    ) -> Result<Vec<(&'static str, f32)>, String> {
        host.next_batch(Split::Train)?;
        let p = self.state.arch.probs(&self.info);
        let path = self.path(&p);
        let train_loss = host.train_step(&path, None)?;

        // Architecture step: per group, the sampled candidates and one more.
        host.next_batch(Split::Val)?;
        let mut mix = vec![0.0f32; p.len()];
        let mut sets = vec![];
        for (g, r) in self.info.ranges().into_iter().enumerate() {
            let k = self.active_count(g);
            let picked = sample_distinct(&p[r.clone()], k + 1, &mut self.state.rng);
            // Of the picked, keep k active by their renormalised probabilities.
            let active = if picked.len() > k {
                let q: Vec<f32> = picked.iter().map(|&i| p[r.start + i]).collect();
                let mut keep = sample_distinct(&q, k, &mut self.state.rng);
                keep.iter_mut().for_each(|j| *j = picked[*j]);
                keep
            } else {
                picked.clone()
            };
            for &i in &picked {
                mix[r.start + i] = if active.contains(&i) { 1.0 } else { -0.0 };
            }
            sets.push((r.start, picked));
        }
        let mut g = vec![0.0; p.len()];
        let r = host.mix_grad(&mix, Split::Val, &mut g, false)?;
        let mut g_alpha = vec![0.0; p.len()];
        for (start, picked) in &sets {
            let m = picked
                .iter()
                .map(|&i| self.state.arch.alpha[start + i])
                .fold(f32::NEG_INFINITY, f32::max);
            let e: Vec<f32> = picked
                .iter()
                .map(|&i| (self.state.arch.alpha[start + i] - m).exp())
                .collect();
            let s: f32 = e.iter().sum();
            let q: Vec<f32> = e.iter().map(|v| v / s).collect();
            for (a, &i) in picked.iter().enumerate() {
                let mut acc = 0.0;
                for (b, &j) in picked.iter().enumerate() {
                    let delta = if a == b { 1.0 } else { 0.0 };
                    acc += g[start + j] * q[b] * (delta - q[a]);
                }
                g_alpha[start + i] = acc;
            }
        }
        let mut out = vec![("train_loss", train_loss), ("val_loss", r.loss)];
        if self.latency_weight > 0.0 {
            let (gl, expected) = self.latency_grad(host, &p)?;
            g_alpha.iter_mut().zip(&gl).for_each(|(a, b)| *a += b);
            out.push(("expected_latency_ms", expected));
        }
        self.state.arch.step(&g_alpha);
        Ok(out)
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

export_one_shot!(Proxyless, "proxylessnas", "0.1.0");

#[cfg(test)]
mod tests {
    use super::*;
    use nas_strategies::testing::{picked, run_on_fake, FakeSupernet};

    fn run(f: &mut FakeSupernet, config: Value) -> Architecture {
        run_on_fake::<Proxyless>(f, config, 3)
    }

    #[test]
    fn two_path_gradients_find_the_best_candidates() {
        let mut f = FakeSupernet::new(2, 3, 1, 300);
        f.slope = vec![1.0, 0.5, -1.0, -1.0, 0.5, 1.0, -1.0, 1.0, -0.5];
        let arch = run(&mut f, json!({"latency_weight": 0.0, "arch_lr": 0.05}));
        assert_eq!((picked(&arch, 0), picked(&arch, 1)), (2, 0));
        assert_eq!(arch["in"], json!([0, 2]));
    }

    #[test]
    fn the_latency_term_moves_to_faster_candidates() {
        let mut f = FakeSupernet::new(2, 3, 1, 300);
        f.latency = vec![5.0, 1.0, 9.0, 2.0, 8.0, 8.0, 0.0, 0.0, 0.0];
        let arch = run(&mut f, json!({"latency_weight": 1.0, "arch_lr": 0.05}));
        assert_eq!((picked(&arch, 0), picked(&arch, 1)), (1, 0));
    }
}
