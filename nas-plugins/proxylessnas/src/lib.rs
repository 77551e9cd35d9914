//! ProxylessNAS (Cai, Zhu and Han, 2019): binarized paths. Each weight step trains one
//! path sampled from `p = softmax(alpha)`, so memory and time are those of one
//! network.
//!
//! Architecture step (the "two" mode of the reference code, `MixedEdge` in
//! mit-han-lab/proxylessnas), after every weight step: per choice it samples two
//! distinct candidates from `p`, the *involved* set `S`, keeps one active, drawn from
//! their renormalised probabilities `q = softmax(alpha_S)`, and computes the other at
//! weight zero; the gradient of the binary gates on a validation batch gives the
//! involved logits `dL/dalpha_i = sum_j dL/dg_j q_j (delta_ij - q_i)`. Input choices
//! picking `k` inputs involve their `k` active inputs plus one more, the same way.
//!
//! Latency: with `latency_weight` > 0 (default 0.1), the loss adds
//! `latency_weight * E_S[latency] / E_uniform[latency]` summed over choices, where
//! `E_S = sum_{i in S} q_i lat_i` (latencies from the host's measured table) and
//! `E_uniform` is the expectation under uniform choices. This is what the reference
//! differentiates in this mode: its `expected_latency` reads `current_prob_over_ops`,
//! which is zero outside the sampled pair and the pair's renormalised probabilities on
//! it, so the term's gradient `q_i (lat_i - E_S)` reaches the involved logits only,
//! like the binary gates'. The reported `expected_latency_ms` is the full expectation
//! under `p`. The table is measured once, at the first architecture step, and kept in
//! the strategy's state, so a resumed run uses the same table.
//!
//! Update: one Adam step (L2 decay `arch_weight_decay` added to the gradient) on the
//! involved logits only; every other logit, its two moments and its step count stay
//! exactly as they were, and each logit's bias correction counts its own steps. Then,
//! per choice (`rescale_updated_arch_param` in the reference), the involved logits are
//! all shifted by `offset = logsumexp(alpha_S new) - logsumexp(alpha_S old)`, so the
//! involved candidates' total probability against the others is unchanged and only
//! their split moves.
//!
//! Differences from the reference, and why:
//! - The reference runs a dense `torch.optim.Adam` over each choice's logits, where the
//!   uninvolved ones have zero gradient; with its defaults (beta1 = 0, weight decay 0)
//!   their logits stay put but their second moments decay and the step count advances.
//!   Here nothing of an uninvolved logit changes: with the betas and decay below a dense
//!   step would move them by momentum and decay, against the point of the rescaling.
//! - Adam's betas are 0.5/0.999 and `arch_weight_decay` defaults to 1e-3 (the settings
//!   shared by this crate's gradient strategies), not the reference's 0/0.999 and 0;
//!   `arch_lr` defaults to 1e-3 as there.
//! - The latency term is additive (the reference's `add#linear`, normalised by the
//!   uniform expectation rather than a reference latency), not its default `mul#log`.
//! - The reference updates the architecture every 5 weight steps after a warm-up and
//!   skips a choice whose active op is the zero op; here every step updates it, and no
//!   candidate is special.
//!
//! A cell node's incoming edges (an edge group, as in the `darts` space) are not
//! binarized: every edge is on at weight 1 and only its op is sampled, so a node sums
//! its edges as in DARTS.
//!
//! Export: the strongest candidate of every choice; for edges the DARTS rule (each
//! edge's strongest op other than `none`, the two edges whose kept op weighs most).
//!
//! Config: `latency_weight`, `arch_lr` (default 1e-3 here), `arch_weight_decay`.

use nas_strategies::oneshot::{
    sample, state_field, EpochStrategy, OneShotInfo, OneShotSetup, SampledLogits, Split,
    SupernetHost, VecAdam, Warmup, ARCH_FIELDS,
};
use nas_strategies::{config_field, export_one_shot, json, Architecture, ChoiceKind, Rng, Value};

pub struct Proxyless {
    info: OneShotInfo,
    warmup: Warmup,
    pub latency_weight: f32,
    /// Per-weight latency (ms) and the uniform expectation, once measured.
    latency: Option<(Vec<f32>, f32)>,
    /// The logits and the generator; the Adam settings of `state.arch.adam` are used,
    /// its (dense) moments are not.
    pub state: SampledLogits,
    /// The moments of the masked Adam step on the logits.
    pub adam: MaskedAdam,
}

/// Adam whose step touches only the given entries: an entry not given keeps its value,
/// its moments and its step count.
pub struct MaskedAdam {
    pub m: Vec<f32>,
    pub v: Vec<f32>,
    /// Steps taken by each entry (its bias correction).
    pub t: Vec<u32>,
}

impl MaskedAdam {
    fn new(n: usize) -> MaskedAdam {
        MaskedAdam {
            m: vec![0.0; n],
            v: vec![0.0; n],
            t: vec![0; n],
        }
    }

    /// `x_i -= lr * adam_i(grad_i + wd * x_i)` for each `i` in `idx`, with the
    /// learning rate, betas and weight decay of `cfg`.
    fn step(&mut self, cfg: &VecAdam, x: &mut [f32], grad: &[f32], idx: &[usize]) {
        let (b1, b2) = (cfg.beta1, cfg.beta2);
        for &i in idx {
            self.t[i] += 1;
            let c1 = 1.0 - b1.powi(self.t[i] as i32);
            let c2 = 1.0 - b2.powi(self.t[i] as i32);
            let g = grad[i] + cfg.weight_decay * x[i];
            self.m[i] = b1 * self.m[i] + (1.0 - b1) * g;
            self.v[i] = b2 * self.v[i] + (1.0 - b2) * g * g;
            x[i] -= cfg.lr * (self.m[i] / c1) / ((self.v[i] / c2).sqrt() + 1e-8);
        }
    }

    fn save(&self) -> Value {
        json!({"m": self.m, "v": self.v, "t": self.t})
    }

    fn load(&mut self, state: &Value) -> Result<(), String> {
        let (m, v, t): (Vec<f32>, Vec<f32>, Vec<u32>) = (
            state_field(state, "m")?,
            state_field(state, "v")?,
            state_field(state, "t")?,
        );
        let n = self.m.len();
        if m.len() != n || v.len() != n || t.len() != n {
            return Err(format!(
                "saved architecture moments do not have {n} entries each"
            ));
        }
        *self = MaskedAdam { m, v, t };
        Ok(())
    }
}

/// `log(sum_i exp(alpha[start + i]))` over `idx`, in `f64`.
pub fn log_sum_exp(alpha: &[f32], start: usize, idx: &[usize]) -> f64 {
    let m = idx
        .iter()
        .map(|&i| alpha[start + i] as f64)
        .fold(f64::NEG_INFINITY, f64::max);
    let s: f64 = idx
        .iter()
        .map(|&i| (alpha[start + i] as f64 - m).exp())
        .sum();
    m + s.ln()
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

    /// One path sampled from `p`: `k` active candidates per group, every edge of an
    /// edge group.
    fn path(&mut self, p: &[f32]) -> Vec<f32> {
        let mut mix = vec![0.0; p.len()];
        for (g, r) in self.info.ranges().into_iter().enumerate() {
            if self.info.is_edges(g) {
                mix[r].fill(1.0);
                continue;
            }
            let k = self.active_count(g);
            for i in sample_distinct(&p[r.clone()], k, &mut self.state.rng) {
                mix[r.start + i] = 1.0;
            }
        }
        mix
    }

    /// Measures the latency table once (a resumed run has it from its state).
    fn measure_latency(&mut self, host: &mut dyn SupernetHost) -> Result<(), String> {
        if self.latency.is_none() {
            let lat = self.info.per_weight("latencies", host.latencies()?)?;
            self.set_latency(lat);
        }
        Ok(())
    }

    /// Takes `lat` as the latency table, with its uniform expectation.
    fn set_latency(&mut self, lat: Vec<f32>) {
        let uniform: f32 = self
            .info
            .ranges()
            .into_iter()
            .map(|r| r.clone().map(|i| lat[i]).sum::<f32>() / r.len() as f32)
            .sum();
        self.latency = Some((lat, uniform.max(1e-6)));
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
            warmup: Warmup::from_config(setup)?,
            info: setup.info.clone(),
            latency_weight: lw,
            latency: None,
            state: SampledLogits::new(&setup.info, &config, setup.seed)?,
            adam: MaskedAdam::new(setup.info.len()),
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
            if self.info.is_edges(g) {
                // A cell node keeps all its edges; only their ops are binarized.
                mix[r].fill(1.0);
                continue;
            }
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
        let mut out = vec![("train_loss", train_loss), ("val_loss", r.loss)];
        if self.latency_weight > 0.0 {
            self.measure_latency(host)?;
        }
        let latency = match &self.latency {
            Some((lat, norm)) if self.latency_weight > 0.0 => {
                let expected = p.iter().zip(lat).map(|(p, l)| p * l).sum();
                out.push(("expected_latency_ms", expected));
                Some((lat, self.latency_weight / norm))
            }
            _ => None,
        };

        // The involved logits' gradient: the binary gates' through the renormalised
        // probabilities q of the involved set, plus the latency term's over that set.
        let alpha = &self.state.arch.alpha;
        let mut g_alpha = vec![0.0; p.len()];
        let mut involved = vec![];
        let mut old_lse = vec![];
        for (start, picked) in &sets {
            let lse = log_sum_exp(alpha, *start, picked);
            let q: Vec<f32> = picked
                .iter()
                .map(|&i| (alpha[start + i] as f64 - lse).exp() as f32)
                .collect();
            let expected_s: f32 = match latency {
                Some((lat, _)) => picked
                    .iter()
                    .zip(&q)
                    .map(|(&i, q)| q * lat[start + i])
                    .sum(),
                None => 0.0,
            };
            for (a, &i) in picked.iter().enumerate() {
                let mut acc = 0.0;
                for (b, &j) in picked.iter().enumerate() {
                    let delta = if a == b { 1.0 } else { 0.0 };
                    acc += g[start + j] * q[b] * (delta - q[a]);
                }
                if let Some((lat, scale)) = latency {
                    acc += scale * q[a] * (lat[start + i] - expected_s);
                }
                g_alpha[start + i] = acc;
                involved.push(start + i);
            }
            old_lse.push(lse);
        }

        // Adam on the involved logits only, then each set's logits shifted back to
        // their old log-sum-exp.
        let arch = &mut self.state.arch;
        self.adam
            .step(&arch.adam, &mut arch.alpha, &g_alpha, &involved);
        for ((start, picked), old) in sets.iter().zip(old_lse) {
            let offset = log_sum_exp(&arch.alpha, *start, picked) - old;
            for &i in picked {
                arch.alpha[start + i] = (arch.alpha[start + i] as f64 - offset) as f32;
            }
        }
        arch.check()?;
        Ok(out)
    }

    fn warmup(&self) -> Warmup {
        self.warmup
    }

    fn current(&self, info: &OneShotInfo) -> Architecture {
        self.state.arch.derive(info)
    }

    fn save(&self) -> Result<Value, String> {
        let mut state = self.state.save()?;
        state["masked_adam"] = self.adam.save();
        // Timed once, on this machine: a resumed run timing it again would get other
        // numbers, and other gradients.
        state["latency"] = json!(self.latency.as_ref().map(|(l, _)| l));
        Ok(state)
    }

    fn load(&mut self, state: Value) -> Result<(), String> {
        let latency: Option<Vec<f32>> = state_field(&state, "latency")?;
        let latency = latency
            .map(|l| self.info.per_weight("saved latencies", l))
            .transpose()?;
        self.adam
            .load(state.get("masked_adam").unwrap_or(&Value::Null))?;
        self.state.load(state)?;
        match latency {
            Some(l) => self.set_latency(l),
            None => self.latency = None,
        }
        Ok(())
    }
}

export_one_shot!(Proxyless, "proxylessnas", "0.1.0");
