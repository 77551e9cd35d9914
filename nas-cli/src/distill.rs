//! The students' losses of AlphaNet's in-place distillation ([`DistillLoss`]), over the
//! engine's autodiff: what [`crate::trainer::SupernetTrainer`]'s `distill_step` trains
//! each student path with, the teacher's probabilities being fixed targets.
//!
//! Every distillation loss here has a gradient of the form
//! `dL/dz = -sum_k c_k d(log q_k)/dz` for the student's logits `z` (`q = softmax(z)`),
//! with coefficients `c` that are constants of the step (no gradient flows through
//! them, nor into the teacher). So the loss is built as `-sum(c * log_softmax(z))`, the
//! coefficients computed here from detached values, and the autodiff does the rest.
//!
//! - `KL(p||q)`: `c_k = p_k` (the soft cross-entropy; its value is reported as the KL).
//! - AlphaNet's adaptive alpha-divergence (Wang et al., ICML 2021): for one `alpha`,
//!   `D_alpha(p||q) = sum_k q_k ((p_k/q_k)^alpha - 1) / (alpha (alpha - 1))`, whose
//!   gradient is `-(1/alpha) sum_k q_k (p_k/q_k)^alpha grad log q_k`; the importance
//!   ratio `(p/q)^alpha` is clipped at `clip` (in the value and in the gradient, as the
//!   paper's reference code does), so `c_k = q_k min((p_k/q_k)^alpha, clip) / alpha`.
//!   Near `alpha` 1 (`|alpha - 1| < 1e-3`) it is `KL(p||q)`, unclipped; near 0
//!   (`|alpha| < 1e-3`) `KL(q||p)` with the ratio `p/q` clipped at `clip`, `c_k = q_k
//!   log min(p_k/q_k, clip)`: both as the reference has them. Per image, the loss is the
//!   divergence at `alpha_min` or at `alpha_max`, whichever is larger there (ties:
//!   `alpha_max`). Constants added to `c_k / q_k` (the reference's `f_base`, its `-1`)
//!   change no gradient, since `sum_k q_k grad log q_k = 0`, and are left out.

use nas_core::Tensor;
use nas_strategies::oneshot::DistillLoss;

/// Row-wise log-softmax of `[rows, cols]` logits, in f64.
pub fn log_probs(logits: &[f32], cols: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(logits.len());
    for row in logits.chunks(cols.max(1)) {
        let m = row.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b as f64));
        let lse = m + row.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln();
        out.extend(row.iter().map(|&v| v as f64 - lse));
    }
    out
}

/// Where `|alpha|` or `|alpha - 1|` is below this, the divergence is its KL limit (as
/// the reference code decides).
pub const NEAR: f64 = 1e-3;

/// One image's divergence `D_alpha(p||q)` from log-probabilities `lq` (student) and
/// `lp` (teacher), and the coefficients `c_k` of its gradient into `c`; returns the
/// value and how many ratios were clipped.
pub fn alpha_row(lq: &[f64], lp: &[f64], alpha: f64, clip: f64, c: &mut [f64]) -> (f64, usize) {
    let ln_clip = clip.ln();
    let mut value = 0.0;
    let mut clipped = 0;
    for k in 0..lq.len() {
        let q = lq[k].exp();
        let log_w = lp[k] - lq[k];
        if (alpha - 1.0).abs() < NEAR {
            // KL(p||q) = sum_k p_k log(p_k/q_k); unclipped.
            let p = lp[k].exp();
            value += p * log_w;
            c[k] = p;
        } else if alpha.abs() < NEAR {
            // KL(q||p) with the ratio p/q clipped at `clip`.
            let lw = if log_w > ln_clip {
                clipped += 1;
                ln_clip
            } else {
                log_w
            };
            value -= q * lw;
            c[k] = q * lw;
        } else {
            let a_log_w = alpha * log_w;
            let iw = if a_log_w > ln_clip {
                clipped += 1;
                clip
            } else {
                a_log_w.exp()
            };
            value += q * (iw - 1.0) / (alpha * (alpha - 1.0));
            c[k] = q * iw / alpha;
        }
    }
    (value, clipped)
}

/// What [`student_loss`] computed besides the loss: its value (the mean over the batch)
/// and, for the alpha-divergence, how many images took `alpha_min` and how many
/// importance ratios were clipped.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Figures {
    pub value: f32,
    pub took_alpha_min: usize,
    pub clipped: usize,
}

/// A student's loss on logits `logits` (`[rows, classes]`) against the teacher's
/// log-probabilities `teacher` (the same shape, detached) or, for
/// [`DistillLoss::None`], against the labels: a one-element tensor whose gradient with
/// respect to `logits` is the loss's, and its figures.
pub fn student_loss(
    logits: &Tensor,
    teacher: &[f64],
    labels: &[u32],
    loss: DistillLoss,
) -> (Tensor, Figures) {
    if loss == DistillLoss::None {
        let l = logits.cross_entropy(labels);
        let value = l.item();
        return (
            l,
            Figures {
                value,
                ..Default::default()
            },
        );
    }
    let shape = logits.shape().to_vec();
    let cols = *shape.last().unwrap_or(&1);
    let rows = logits.numel() / cols.max(1);
    let lq = log_probs(&logits.to_vec(), cols);
    assert_eq!(teacher.len(), lq.len(), "teacher and student shapes differ");
    let mut c = vec![0.0f64; lq.len()];
    let mut figures = Figures::default();
    let mut total = 0.0;
    match loss {
        DistillLoss::Kl | DistillLoss::None => {
            for r in 0..rows {
                let span = r * cols..(r + 1) * cols;
                total += alpha_row(
                    &lq[span.clone()],
                    &teacher[span.clone()],
                    1.0,
                    1.0,
                    &mut c[span],
                )
                .0;
            }
        }
        DistillLoss::Alpha {
            alpha_min,
            alpha_max,
            clip,
        } => {
            let (lo, hi, clip) = (alpha_min as f64, alpha_max as f64, clip as f64);
            let mut c_lo = vec![0.0f64; cols];
            for r in 0..rows {
                let span = r * cols..(r + 1) * cols;
                let (lq, lp) = (&lq[span.clone()], &teacher[span.clone()]);
                let (v_lo, n_lo) = alpha_row(lq, lp, lo, clip, &mut c_lo);
                let (v_hi, n_hi) = alpha_row(lq, lp, hi, clip, &mut c[span.clone()]);
                if v_lo > v_hi {
                    c[span].copy_from_slice(&c_lo);
                    total += v_lo;
                    figures.took_alpha_min += 1;
                    figures.clipped += n_lo;
                } else {
                    total += v_hi;
                    figures.clipped += n_hi;
                }
            }
        }
    }
    figures.value = (total / rows.max(1) as f64) as f32;
    // The mean over the batch, as the reference's reduction.
    let scale = 1.0 / rows.max(1) as f64;
    let c = Tensor::from_vec(c.iter().map(|v| (v * scale) as f32).collect(), &shape);
    let l = logits.log_softmax().mul(&c).sum().neg();
    (l, figures)
}
