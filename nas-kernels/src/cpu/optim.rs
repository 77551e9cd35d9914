//! The optimisers' updates of one parameter on the host: what the engine's SGD and Adam
//! run on host tensors and the CPU backend runs behind its `Resident` interface.

/// One SGD step with momentum `mu` (PyTorch's, dampening 0): the direction `g + wd * w`
/// goes into the momentum buffer `v` (which becomes the direction itself on the `first`
/// step), and the weights move by `lr` times the buffer (with `nesterov`, the direction
/// plus `mu` times the buffer).
#[allow(clippy::too_many_arguments)]
pub fn sgd_momentum(
    w: &mut [f32],
    g: &[f32],
    v: &mut [f32],
    first: bool,
    lr: f32,
    mu: f32,
    wd: f32,
    nesterov: bool,
) {
    for ((w, g), v) in w.iter_mut().zip(g).zip(v.iter_mut()) {
        let d = g + wd * *w;
        *v = if first { d } else { mu * *v + d };
        let step = if nesterov { d + mu * *v } else { *v };
        *w -= lr * step;
    }
}

/// One SGD step without momentum: the weights move by `lr` times `g + wd * w`.
pub fn sgd_plain(w: &mut [f32], g: &[f32], lr: f32, wd: f32) {
    for (w, g) in w.iter_mut().zip(g) {
        *w -= lr * (g + wd * *w);
    }
}

/// One Adam step: learning rate, `(beta1, beta2, eps)`, weight decay (decoupled: AdamW),
/// and the step's number `t` (1-based) for the bias corrections.
#[derive(Clone, Copy, Debug)]
pub struct Adam {
    pub lr: f32,
    pub betas_eps: (f32, f32, f32),
    pub wd: f32,
    pub decoupled: bool,
    pub t: i32,
}

impl Adam {
    /// Updates weights `w` with gradient `g` and moments `m`, `v` in place.
    pub fn update(&self, w: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
        let (b1, b2, eps) = self.betas_eps;
        let (lr, wd) = (self.lr, self.wd);
        let c1 = 1.0 - b1.powi(self.t);
        let c2 = 1.0 - b2.powi(self.t);
        for (((w, g), m), v) in w.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            let mut g = *g;
            if self.decoupled {
                *w -= lr * wd * *w;
            } else {
                g += wd * *w;
            }
            *m = b1 * *m + (1.0 - b1) * g;
            *v = b2 * *v + (1.0 - b2) * g * g;
            *w -= lr * (*m / c1) / ((*v / c2).sqrt() + eps);
        }
    }
}
