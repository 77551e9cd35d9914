//! FBNet (Wu et al., CVPR 2019): differentiable search of a layer-wise space. Every
//! choice mixes all its candidates by a Gumbel-softmax sample `m = softmax((theta + G) /
//! tau)` (every candidate computed, as in SNAS), and the architecture parameters `theta`
//! learn the paper's loss
//!
//! ```text
//! L(m) = CE(m) * alpha * (log LAT(m))^beta,   LAT(m) = sum_l sum_i m_{l,i} LAT(b_{l,i})
//! ```
//!
//! where `LAT(b_{l,i})` is candidate `i` of layer choice `l` in the host's measured
//! latency table ([`SupernetHost::latencies`]). The host gives `CE` and `dCE/dm` for the
//! current mix ([`SupernetHost::mix_grad`]); the plugin adds the latency term by the
//! product rule,
//!
//! ```text
//! dL/dm_i = alpha (log LAT)^beta dCE/dm_i + CE alpha beta (log LAT)^(beta - 1) LAT_i / LAT
//! ```
//!
//! and chains it through the Gumbel-softmax to `theta` ([`loss_and_grad`]).
//!
//! Each step: a weight step (the host's SGD) on a training batch with one sample; then,
//! after the weights-only phase, a second sample's loss gradient on a validation batch
//! and one Adam step of `theta` (lr `arch_lr` 0.01, L2 decay `arch_weight_decay` 5e-4,
//! betas 0.9/0.999: the rate and decay are the paper's, the betas PyTorch's defaults,
//! which its common PyTorch reimplementation uses; the paper says Adam and no more).
//!
//! Schedule: the paper's 90 epochs are spread over the run's steps. The temperature is
//! `tau` (5.0) times `tau_decay` (exp(-0.045), about 0.956) per schedule epoch, a
//! `1/tau_epochs` (90) of the run's steps ([`temperature`], [`schedule_epoch`]), so every
//! run ends where the paper's does (about 0.09) however many epochs it has; a run of 90
//! epochs follows the paper's per-epoch schedule exactly. The first `weights_only` (1/9:
//! the paper's 10 of 90 epochs) of the run's steps train the weights alone, on samples
//! of the still uniform `theta`; it is a fraction of steps, not whole epochs, so a
//! two-epoch run keeps the paper's proportion.
//!
//! Units: `LAT` is taken in microseconds (`latency_unit` "us", as the common
//! reimplementation measures its table) or milliseconds ("ms"). `(log LAT)^beta` needs
//! `log LAT > 0`; below [`LOG_FLOOR`] (LAT under about 1 unit, or a table of zeros) the
//! log is held at the floor and the latency term has no gradient.
//!
//! `alpha` scales the whole loss, so under Adam (invariant to a constant scale of the
//! gradient, up to its epsilon) it has almost no effect on the search; the trade-off is
//! set by `beta` (0 switches the latency term off) and the unit.
//!
//! The latency table is measured once, at the first architecture step, and kept in the
//! strategy's state, so a resumed run uses the same table.
//!
//! Export: the most likely architecture under `P_theta` (the argmax of `theta` per
//! choice; for cell edges the DARTS rule of [`OneShotInfo::derive`]).
//!
//! Config: `alpha`, `beta`, `latency_unit`, `tau`, `tau_decay`, `tau_epochs`,
//! `weights_only`, `arch_lr`, `arch_weight_decay`.

use nas_strategies::oneshot::{
    gumbel, rng_in_state, rng_state, state_field, EpochStrategy, OneShotInfo, OneShotSetup, Split,
    SupernetHost, VecAdam,
};
use nas_strategies::{
    check_config_fields, check_finite, config_field, config_rate, export_one_shot, json,
    Architecture, Rng, Value,
};

/// The options of `--config`.
pub const FIELDS: &[&str] = &[
    "alpha",
    "beta",
    "latency_unit",
    "tau",
    "tau_decay",
    "tau_epochs",
    "weights_only",
    "arch_lr",
    "arch_weight_decay",
];

/// The smallest `log LAT` the loss uses: below it the log is held here and the latency
/// term has no gradient.
pub const LOG_FLOOR: f64 = 1e-3;

/// FBNet's options, checked.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Config {
    pub alpha: f64,
    pub beta: f64,
    /// Latency units per millisecond (1000 for microseconds).
    pub unit_per_ms: f64,
    pub tau: f32,
    pub tau_decay: f32,
    /// The schedule's epochs the run's steps are divided into (the paper's 90).
    pub tau_epochs: usize,
    pub weights_only: f64,
    pub arch_lr: f32,
    pub arch_weight_decay: f32,
}

impl Config {
    pub fn from_json(config: &Value) -> Result<Config, String> {
        check_config_fields(config, "fbnet", FIELDS)?;
        let bad = |field: &str, v: f64, need: &str| {
            Err(format!(
                "config field `{field}`: {v} is not valid (must be {need})"
            ))
        };
        let alpha: f64 = config_field(config, "alpha", 0.2)?;
        if !(alpha > 0.0 && alpha.is_finite()) {
            return bad("alpha", alpha, "> 0");
        }
        let beta: f64 = config_field(config, "beta", 0.6)?;
        if !((0.0..=20.0).contains(&beta)) {
            return bad("beta", beta, "in [0, 20]");
        }
        let unit: String = config_field(config, "latency_unit", "us".to_string())?;
        let unit_per_ms = match unit.as_str() {
            "us" => 1000.0,
            "ms" => 1.0,
            other => {
                return Err(format!(
                "config field `latency_unit`: \"{other}\" is not valid (must be \"us\" or \"ms\")"
            ))
            }
        };
        let tau: f32 = config_field(config, "tau", 5.0)?;
        if !(tau > 0.0 && tau.is_finite()) {
            return bad("tau", tau as f64, "> 0");
        }
        let tau_decay: f32 = config_field(config, "tau_decay", (-0.045f32).exp())?;
        if !(tau_decay > 0.0 && tau_decay <= 1.0) {
            return bad("tau_decay", tau_decay as f64, "in (0, 1]");
        }
        let tau_epochs: usize = config_field(config, "tau_epochs", PAPER_EPOCHS)?;
        if !(1..=1_000_000).contains(&tau_epochs) {
            return bad("tau_epochs", tau_epochs as f64, "in [1, 1000000]");
        }
        let weights_only: f64 = config_field(config, "weights_only", 1.0 / 9.0)?;
        if !((0.0..1.0).contains(&weights_only)) {
            return bad("weights_only", weights_only, "in [0, 1)");
        }
        let arch_lr = config_rate(config, "arch_lr", 0.01)?;
        let arch_weight_decay: f32 = config_field(config, "arch_weight_decay", 5e-4)?;
        if !(arch_weight_decay >= 0.0 && arch_weight_decay.is_finite()) {
            return bad("arch_weight_decay", arch_weight_decay as f64, ">= 0");
        }
        Ok(Config {
            alpha,
            beta,
            unit_per_ms,
            tau,
            tau_decay,
            tau_epochs,
            weights_only,
            arch_lr,
            arch_weight_decay,
        })
    }
}

/// The paper's search length in epochs, over which its temperature anneals.
pub const PAPER_EPOCHS: usize = 90;

/// The temperature of schedule epoch `epoch`: `tau * tau_decay^epoch`.
pub fn temperature(tau: f32, tau_decay: f32, epoch: usize) -> f32 {
    (tau as f64 * (tau_decay as f64).powi(epoch as i32)) as f32
}

/// The schedule epoch of the run's step `done` (counted from 0) of `total`: the run's
/// steps divided into `epochs` equal parts.
pub fn schedule_epoch(done: usize, total: usize, epochs: usize) -> usize {
    ((done as u128 * epochs as u128) / total.max(1) as u128) as usize
}

/// The loss of one architecture step, with what it was made of.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Loss {
    /// `CE * alpha * (log LAT)^beta`.
    pub loss: f64,
    /// `LAT(m)` in milliseconds.
    pub latency_ms: f64,
    /// `log LAT` as used (at least [`LOG_FLOOR`]).
    pub log_latency: f64,
    /// Whether `log LAT` was below the floor (no latency gradient).
    pub held: bool,
}

/// The loss `CE * alpha * (log LAT(mix))^beta` and its gradient with respect to `mix`,
/// given the cross-entropy `ce` and its gradient `dce` at `mix`, and every mixing
/// weight's latency `lat_ms` (0 for weights without one).
pub fn loss_and_grad(
    ce: f32,
    dce: &[f32],
    mix: &[f32],
    lat_ms: &[f32],
    cfg: &Config,
) -> (Loss, Vec<f32>) {
    let latency_ms: f64 = mix
        .iter()
        .zip(lat_ms)
        .map(|(&m, &l)| m as f64 * l as f64)
        .sum();
    let lat = latency_ms * cfg.unit_per_ms;
    let ln = lat.ln();
    let held = !(ln >= LOG_FLOOR);
    let log_latency = if held { LOG_FLOOR } else { ln };
    let factor = cfg.alpha * log_latency.powf(cfg.beta);
    // d/dm_i of alpha (log LAT)^beta: alpha beta (log LAT)^(beta - 1) / LAT * dLAT/dm_i.
    let dfactor = if held || cfg.beta == 0.0 {
        0.0
    } else {
        cfg.alpha * cfg.beta * log_latency.powf(cfg.beta - 1.0) / lat * cfg.unit_per_ms
    };
    let grad = dce
        .iter()
        .zip(lat_ms)
        .map(|(&g, &l)| (factor * g as f64 + ce as f64 * dfactor * l as f64) as f32)
        .collect();
    (
        Loss {
            loss: ce as f64 * factor,
            latency_ms,
            log_latency,
            held,
        },
        grad,
    )
}

pub struct Fbnet {
    info: OneShotInfo,
    cfg: Config,
    /// Steps of the run that train the weights alone.
    pub weights_only_steps: usize,
    /// The architecture parameters, one logit per mixing weight.
    pub theta: Vec<f32>,
    adam: VecAdam,
    rng: Rng,
    /// Every mixing weight's latency (ms), measured at the first architecture step.
    latency: Option<Vec<f32>>,
}

impl Fbnet {
    /// A Gumbel-softmax sample of every choice at temperature `tau` (cell edges at 1).
    fn sample(&mut self, tau: f32) -> Vec<f32> {
        let z: Vec<f32> = self
            .theta
            .iter()
            .map(|t| t + gumbel(&mut self.rng))
            .collect();
        self.info.softmax(&z, tau)
    }

    pub fn latency(&mut self, host: &mut dyn SupernetHost) -> Result<Vec<f32>, String> {
        if self.latency.is_none() {
            self.latency = Some(self.info.per_weight("latencies", host.latencies()?)?);
        }
        Ok(self.latency.clone().unwrap())
    }
}

impl EpochStrategy for Fbnet {
    fn create(setup: &OneShotSetup) -> Result<Self, String> {
        let cfg = Config::from_json(&setup.config)?;
        let info = &setup.info;
        let total = info.total_steps();
        let n = info.len();
        Ok(Fbnet {
            weights_only_steps: (cfg.weights_only * total as f64).floor() as usize,
            theta: vec![0.0; n],
            adam: VecAdam::new(n, cfg.arch_lr, 0.9, 0.999, cfg.arch_weight_decay),
            rng: Rng::new(setup.seed),
            latency: None,
            info: info.clone(),
            cfg,
        })
    }

    fn step(
        &mut self,
        host: &mut dyn SupernetHost,
        epoch: usize,
        step: usize,
    ) -> Result<Vec<(&'static str, f32)>, String> {
        let done = epoch * self.info.batches_per_epoch + step;
        let total = self.info.total_steps();
        let e = schedule_epoch(done, total, self.cfg.tau_epochs);
        let tau = temperature(self.cfg.tau, self.cfg.tau_decay, e);
        host.next_batch(Split::Train)?;
        let soft = self.sample(tau);
        let train_loss = host.train_step(&soft, None)?;
        let mut out = vec![("train_loss", train_loss), ("tau", tau)];
        if done < self.weights_only_steps {
            return Ok(out);
        }
        let lat = self.latency(host)?;
        host.next_batch(Split::Val)?;
        let soft = self.sample(tau);
        let mut g = vec![0.0; soft.len()];
        let r = host.mix_grad(&soft, Split::Val, &mut g, false)?;
        let (loss, dl) = loss_and_grad(r.loss, &g, &soft, &lat, &self.cfg);
        let g_theta = self.info.softmax_backward(&soft, &dl, tau);
        self.adam.step(&mut self.theta, &g_theta);
        check_finite(
            &self.theta,
            "the architecture parameters",
            "lower `arch_lr` or `beta`",
        )?;
        out.extend([
            ("val_loss", r.loss),
            ("fbnet_loss", loss.loss as f32),
            ("latency_ms", loss.latency_ms as f32),
        ]);
        Ok(out)
    }

    fn current(&self, info: &OneShotInfo) -> Architecture {
        info.derive(&info.softmax(&self.theta, 1.0))
    }

    fn save(&self) -> Result<Value, String> {
        Ok(json!({
            "theta": self.theta,
            "adam": self.adam,
            "rng": rng_state(&self.rng),
            "latency": self.latency,
        }))
    }

    fn load(&mut self, state: Value) -> Result<(), String> {
        let theta: Vec<f32> = state_field(&state, "theta")?;
        let adam: VecAdam = state_field(&state, "adam")?;
        let latency: Option<Vec<f32>> = state_field(&state, "latency")?;
        let n = self.theta.len();
        if theta.len() != n || latency.as_ref().is_some_and(|l| l.len() != n) {
            return Err(format!(
                "saved FBNet state does not fit this supernet ({n} mixing weights)"
            ));
        }
        self.rng = rng_in_state(&state)?;
        self.theta = theta;
        self.adam = adam;
        self.latency = latency;
        Ok(())
    }
}

export_one_shot!(Fbnet, "fbnet", "0.1.0");
