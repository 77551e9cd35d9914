//! Optimisers (SGD with momentum/Nesterov/weight decay, Adam/AdamW), learning-rate
//! schedules and gradient clipping.

use crate::autodiff::{backend, on_device};
use crate::tensor::{Tensor, Values};
use nas_kernels::cpu::optim as host;

/// Something that updates parameters from their gradients.
pub trait Optimizer {
    /// Applies one update with the given learning rate to every parameter with a gradient.
    fn step(&mut self, lr: f32);
    fn params(&self) -> &[Tensor];
    /// Clears every parameter's gradient.
    fn zero_grad(&self) {
        self.params().iter().for_each(|p| p.zero_grad());
    }
}

/// Stochastic gradient descent as PyTorch defines it (dampening 0).
pub struct Sgd {
    params: Vec<Tensor>,
    pub momentum: f32,
    pub nesterov: bool,
    pub weight_decay: f32,
    velocity: Vec<Values>,
}

impl Sgd {
    pub fn new(params: Vec<Tensor>, momentum: f32, nesterov: bool, weight_decay: f32) -> Sgd {
        let velocity = params.iter().map(|_| Values::Host(vec![])).collect();
        Sgd {
            params,
            momentum,
            nesterov,
            weight_decay,
            velocity,
        }
    }

    /// The momentum buffers, one per parameter (empty before its first step), copied to
    /// the host.
    pub fn velocity(&self) -> Vec<Vec<f32>> {
        self.velocity.iter().map(Values::to_host).collect()
    }

    /// Restores momentum buffers saved by [`Sgd::velocity`]; each must be empty or the
    /// size of its parameter.
    pub fn set_velocity(&mut self, v: Vec<Vec<f32>>) -> Result<(), String> {
        if v.len() != self.params.len() {
            return Err(format!(
                "{} momentum buffers for {} parameters",
                v.len(),
                self.params.len()
            ));
        }
        for (i, (b, p)) in v.iter().zip(&self.params).enumerate() {
            if !b.is_empty() && b.len() != p.numel() {
                return Err(format!(
                    "momentum buffer {i} has {} values, its parameter {}",
                    b.len(),
                    p.numel()
                ));
            }
        }
        self.velocity = v.into_iter().map(Values::Host).collect();
        Ok(())
    }
}

impl Sgd {
    /// The update [`Optimizer::step`] would make with gradients `grads` (one per
    /// parameter; an empty one means no gradient, and the parameter is left alone, as
    /// the real step leaves it), applied to the weights while the momentum buffers stay
    /// as they are: second-order DARTS's look-ahead `w - lr * (mu * v + g + wd * w)`.
    pub fn step_with(&self, grads: &[Vec<f32>], lr: f32) -> Result<(), String> {
        if grads.len() != self.params.len() {
            return Err(format!(
                "{} gradients for {} parameters",
                grads.len(),
                self.params.len()
            ));
        }
        for ((p, v), g) in self.params.iter().zip(&self.velocity).zip(grads) {
            if g.is_empty() {
                continue;
            }
            if g.len() != p.numel() {
                return Err(format!(
                    "a gradient of {} values for a parameter of {}",
                    g.len(),
                    p.numel()
                ));
            }
            let mut v = v.to_host();
            self.update(&mut p.data_mut(), g, &mut v, lr);
        }
        Ok(())
    }

    /// One parameter's update with its momentum buffer `v` (empty before its first).
    fn update(&self, w: &mut [f32], g: &[f32], v: &mut Vec<f32>, lr: f32) {
        let (mu, wd, nesterov) = (self.momentum, self.weight_decay, self.nesterov);
        if mu == 0.0 {
            return host::sgd_plain(w, g, lr, wd);
        }
        let first = v.is_empty();
        if first {
            v.resize(w.len(), 0.0);
        }
        host::sgd_momentum(w, g, v, first, lr, mu, wd, nesterov);
    }
}

impl Optimizer for Sgd {
    fn step(&mut self, lr: f32) {
        let mut velocity = std::mem::take(&mut self.velocity);
        for (p, v) in self.params.iter().zip(velocity.iter_mut()) {
            let mut gl = p.grad_lock();
            let Some(g) = gl.as_mut() else { continue };
            match g {
                // A gradient on a device: the update runs there, and the weights and the
                // momentum buffer stay there.
                Values::Dev(gb) => {
                    let (a, r) = backend(gb.place());
                    let (mu, wd, nesterov) = (self.momentum, self.weight_decay, self.nesterov);
                    let res = (|| {
                        let vb = match &*v {
                            Values::Dev(b) => Some(b.clone()),
                            Values::Host(h) if h.is_empty() => None,
                            Values::Host(h) => Some(r.upload(h)?),
                        };
                        r.sgd(&p.dev_buf(r)?, gb, vb.as_ref(), lr, mu, wd, nesterov)
                    })();
                    let (w, nv) = on_device(a, "sgd", res);
                    p.set_device(w);
                    *v = Values::Dev(nv);
                }
                g => self.update(&mut p.data_mut(), g.host_mut(), v.host_mut(), lr),
            }
        }
        self.velocity = velocity;
    }
    fn params(&self) -> &[Tensor] {
        &self.params
    }
}

/// Adam; with `decoupled` weight decay it is AdamW.
pub struct Adam {
    params: Vec<Tensor>,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    pub decoupled: bool,
    m: Vec<Values>,
    v: Vec<Values>,
    t: i32,
}

impl Adam {
    pub fn new(params: Vec<Tensor>, weight_decay: f32, decoupled: bool) -> Adam {
        let m = params
            .iter()
            .map(|p| Values::Host(vec![0.0; p.numel()]))
            .collect();
        let v = params
            .iter()
            .map(|p| Values::Host(vec![0.0; p.numel()]))
            .collect();
        Adam {
            params,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay,
            decoupled,
            m,
            v,
            t: 0,
        }
    }
    pub fn with_betas(mut self, beta1: f32, beta2: f32) -> Adam {
        self.beta1 = beta1;
        self.beta2 = beta2;
        self
    }

    /// Steps taken (what [`AdamState::t`] holds), without copying the moments.
    pub fn steps(&self) -> i32 {
        self.t
    }

    /// The moments and the step count, so a run can save and resume its optimiser.
    pub fn state(&self) -> AdamState {
        AdamState {
            m: self.m.iter().map(Values::to_host).collect(),
            v: self.v.iter().map(Values::to_host).collect(),
            t: self.t,
        }
    }

    /// Restores a state from [`Adam::state`]; each moment must fit its parameter, the
    /// moments be finite (the second ones not negative) and the step count in
    /// `0..i32::MAX`: a saved state edited or damaged past that made the next step NaN
    /// (a count below 0 zeroes the bias correction) or overflow.
    pub fn set_state(&mut self, s: AdamState) -> Result<(), String> {
        if !(0..i32::MAX).contains(&s.t) {
            return Err(format!("Adam step count {} is not valid (0 or more)", s.t));
        }
        if s.m.len() != self.params.len() || s.v.len() != self.params.len() {
            return Err(format!(
                "Adam state for {} parameters, the optimiser has {}",
                s.m.len(),
                self.params.len()
            ));
        }
        for (i, p) in self.params.iter().enumerate() {
            if s.m[i].len() != p.numel() || s.v[i].len() != p.numel() {
                return Err(format!("Adam moment {i} does not fit its parameter"));
            }
            if s.m[i].iter().any(|x| !x.is_finite())
                || s.v[i].iter().any(|x| !(x.is_finite() && *x >= 0.0))
            {
                return Err(format!(
                    "Adam moment {i} holds a value that is not finite (or a negative \
                     second moment)"
                ));
            }
        }
        self.m = s.m.into_iter().map(Values::Host).collect();
        self.v = s.v.into_iter().map(Values::Host).collect();
        self.t = s.t;
        Ok(())
    }
}

/// What [`Adam::state`] returns.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdamState {
    pub m: Vec<Vec<f32>>,
    pub v: Vec<Vec<f32>>,
    pub t: i32,
}

impl Optimizer for Adam {
    fn step(&mut self, lr: f32) {
        self.t += 1;
        let (b1, b2, eps, wd) = (self.beta1, self.beta2, self.eps, self.weight_decay);
        for ((p, m), v) in self.params.iter().zip(&mut self.m).zip(&mut self.v) {
            let mut gl = p.grad_lock();
            let Some(g) = gl.as_mut() else { continue };
            if let Values::Dev(gb) = &*g {
                // On the device: weights and moments stay there.
                let (a, r) = backend(gb.place());
                let (decoupled, t) = (self.decoupled, self.t);
                let res = (|| {
                    let (md, vd) = (m.dev(r)?, v.dev(r)?);
                    let w = p.dev_buf(r)?;
                    r.adam(&w, gb, &md, &vd, lr, (b1, b2, eps), wd, decoupled, t)
                })();
                let (w, m2, v2) = on_device(a, "adam", res);
                p.set_device(w);
                (*m, *v) = (Values::Dev(m2), Values::Dev(v2));
                continue;
            }
            let (g, m, v) = (g.host_mut(), m.host_mut(), v.host_mut());
            let step = host::Adam {
                lr,
                betas_eps: (b1, b2, eps),
                wd,
                decoupled: self.decoupled,
                t: self.t,
            };
            step.update(&mut p.data_mut(), g, m, v);
        }
    }
    fn params(&self) -> &[Tensor] {
        &self.params
    }
}

/// Learning rate as a function of training progress, counted in (fractional) epochs.
#[derive(Clone, Debug, PartialEq)]
pub enum LrSchedule {
    Constant,
    /// Cosine annealing from the base rate to `min_lr` over `total` epochs, updated
    /// every batch.
    Cosine {
        total: f32,
        min_lr: f32,
    },
    /// Multiply by `gamma` every `step_size` whole epochs.
    Step {
        step_size: usize,
        gamma: f32,
    },
}

impl LrSchedule {
    /// The rate after `epochs` epochs of training (2.5 = halfway through the third).
    pub fn lr(&self, base: f32, epochs: f32) -> f32 {
        match *self {
            LrSchedule::Constant => base,
            LrSchedule::Cosine { total, min_lr } => {
                let p = (epochs / total.max(f32::EPSILON)).clamp(0.0, 1.0);
                min_lr + (base - min_lr) * 0.5 * (1.0 + (std::f32::consts::PI * p).cos())
            }
            LrSchedule::Step { step_size, gamma } => {
                base * gamma.powi((epochs as usize / step_size.max(1)) as i32)
            }
        }
    }
}

/// Scales gradients so their global L2 norm is at most `max_norm`; returns the norm before.
/// Gradients on the device are measured and scaled there (one float each comes back).
pub fn clip_grad_norm(params: &[Tensor], max_norm: f32) -> f32 {
    let mut total = 0.0f64;
    for p in params {
        match p.grad_lock().as_mut() {
            Some(Values::Dev(g)) => {
                let (a, r) = backend(g.place());
                let sq = r.weighted_sum_backward_weight(std::slice::from_ref(g), g);
                total += on_device(a, "gradient norm", sq)[0] as f64;
            }
            Some(g) => {
                let g = g.host_mut();
                total += g.iter().map(|v| (*v as f64) * (*v as f64)).sum::<f64>();
            }
            None => {}
        }
    }
    let norm = total.sqrt() as f32;
    if norm > max_norm {
        let s = max_norm / (norm + 1e-6);
        for p in params {
            let mut gl = p.grad_lock();
            match gl.as_mut() {
                Some(Values::Dev(g)) => {
                    let (a, r) = backend(g.place());
                    let scaled = r.unary(nas_kernels::accel::Unary::Affine(s, 0.0), g);
                    *g = on_device(a, "gradient clipping", scaled);
                }
                Some(g) => g.host_mut().iter_mut().for_each(|v| *v *= s),
                None => {}
            }
        }
    }
    norm
}
