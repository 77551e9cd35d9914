//! A Gaussian process with an RBF kernel, `k(x, x') = exp(-|x - x'|^2 / (2 l^2))`, on
//! standardised targets. Its lengthscale and noise are picked from a small grid by the
//! log marginal likelihood at each fit (the lengthscales are multiples of the median
//! distance between training points), so it needs no settings.

use crate::{check_data, standardise, Prediction, Surrogate};

/// Multiples of the median pairwise distance tried as the lengthscale.
const LENGTH_FACTORS: [f64; 6] = [0.25, 0.5, 0.75, 1.0, 1.5, 2.5];
/// Noise variances (of standardised targets) tried.
const NOISES: [f64; 4] = [1e-3, 1e-2, 0.1, 0.3];

#[derive(Default)]
pub struct Gp {
    x: Vec<Vec<f64>>,
    /// `K^-1 y` (standardised targets).
    alpha: Vec<f64>,
    /// Lower Cholesky factor of `K + noise I`, row-major.
    chol: Vec<f64>,
    lengthscale: f64,
    noise: f64,
    y_mean: f64,
    y_std: f64,
}

impl Gp {
    pub fn new() -> Gp {
        Gp::default()
    }
    /// The lengthscale and noise variance the last fit chose.
    pub fn hyperparameters(&self) -> (f64, f64) {
        (self.lengthscale, self.noise)
    }
}

/// A fit tried: log marginal likelihood, lengthscale, noise, Cholesky factor, `K^-1 y`.
type Candidate = (f64, f64, f64, Vec<f64>, Vec<f64>);

fn sq_dist(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Cholesky factor of the `n x n` matrix `a` (row-major), or None if not positive
/// definite.
fn cholesky(a: &[f64], n: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= l[i * n + k] * l[j * n + k];
            }
            if i == j {
                if s <= 0.0 {
                    return None;
                }
                l[i * n + i] = s.sqrt();
            } else {
                l[i * n + j] = s / l[j * n + j];
            }
        }
    }
    Some(l)
}

/// Solves `L z = b` (forward substitution).
fn solve_lower(l: &[f64], n: usize, b: &[f64]) -> Vec<f64> {
    let mut z = b.to_vec();
    for i in 0..n {
        for k in 0..i {
            z[i] -= l[i * n + k] * z[k];
        }
        z[i] /= l[i * n + i];
    }
    z
}

/// Solves `L^T z = b` (back substitution).
fn solve_upper_t(l: &[f64], n: usize, b: &[f64]) -> Vec<f64> {
    let mut z = b.to_vec();
    for i in (0..n).rev() {
        for k in i + 1..n {
            z[i] -= l[k * n + i] * z[k];
        }
        z[i] /= l[i * n + i];
    }
    z
}

impl Surrogate for Gp {
    fn fit(&mut self, x: &[Vec<f32>], y: &[f64]) -> Result<(), String> {
        check_data(x, y)?;
        let n = x.len();
        let xs: Vec<Vec<f64>> = x
            .iter()
            .map(|v| v.iter().map(|&f| f as f64).collect())
            .collect();
        let (mean, sd) = standardise(y);
        let ys: Vec<f64> = y.iter().map(|v| (v - mean) / sd).collect();
        let mut d2 = vec![0.0; n * n];
        let mut pos = vec![];
        for i in 0..n {
            for j in 0..i {
                let d = sq_dist(&xs[i], &xs[j]);
                d2[i * n + j] = d;
                d2[j * n + i] = d;
                if d > 0.0 {
                    pos.push(d.sqrt());
                }
            }
        }
        pos.sort_by(f64::total_cmp);
        let median = pos.get(pos.len() / 2).copied().unwrap_or(1.0);
        let mut best: Option<Candidate> = None;
        for f in LENGTH_FACTORS {
            let l = median * f;
            for noise in NOISES {
                let k: Vec<f64> = d2
                    .iter()
                    .enumerate()
                    .map(|(idx, d)| {
                        (-d / (2.0 * l * l)).exp() + if idx % (n + 1) == 0 { noise } else { 0.0 }
                    })
                    .collect();
                let Some(chol) = cholesky(&k, n) else {
                    continue;
                };
                let alpha = solve_upper_t(&chol, n, &solve_lower(&chol, n, &ys));
                // log p(y) = -y^T alpha / 2 - sum log L_ii - n log(2 pi) / 2
                let fit: f64 = ys.iter().zip(&alpha).map(|(a, b)| a * b).sum::<f64>();
                let logdet: f64 = (0..n).map(|i| chol[i * n + i].ln()).sum();
                let ll = -0.5 * fit - logdet;
                if best.as_ref().is_none_or(|b| ll > b.0) {
                    best = Some((ll, l, noise, chol, alpha));
                }
            }
        }
        let (_, l, noise, chol, alpha) =
            best.ok_or("no lengthscale gave a positive definite kernel matrix")?;
        *self = Gp {
            x: xs,
            alpha,
            chol,
            lengthscale: l,
            noise,
            y_mean: mean,
            y_std: sd,
        };
        Ok(())
    }

    fn predict(&self, x: &[Vec<f32>]) -> Vec<Prediction> {
        let n = self.x.len();
        x.iter()
            .map(|v| {
                if n == 0 {
                    return Prediction {
                        mean: 0.0,
                        std: 1.0,
                    };
                }
                let v: Vec<f64> = v.iter().map(|&f| f as f64).collect();
                let l = self.lengthscale;
                let ks: Vec<f64> = self
                    .x
                    .iter()
                    .map(|t| (-sq_dist(t, &v) / (2.0 * l * l)).exp())
                    .collect();
                let m: f64 = ks.iter().zip(&self.alpha).map(|(a, b)| a * b).sum();
                let w = solve_lower(&self.chol, n, &ks);
                let var = (1.0 - w.iter().map(|z| z * z).sum::<f64>()).max(0.0);
                Prediction {
                    mean: self.y_mean + self.y_std * m,
                    std: self.y_std * var.sqrt(),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolates_a_smooth_function_and_is_unsure_far_away() {
        let f = |x: f64| (3.0 * x).sin() + x;
        let xs: Vec<Vec<f32>> = (0..20).map(|i| vec![i as f32 / 10.0]).collect();
        let ys: Vec<f64> = xs.iter().map(|v| f(v[0] as f64)).collect();
        let mut gp = Gp::new();
        gp.fit(&xs, &ys).unwrap();
        let probe: Vec<Vec<f32>> = vec![vec![0.55], vec![1.25], vec![12.0]];
        let p = gp.predict(&probe);
        for (q, pr) in probe.iter().zip(&p).take(2) {
            let want = f(q[0] as f64);
            assert!(
                (pr.mean - want).abs() < 0.05,
                "{q:?}: {} vs {want}",
                pr.mean
            );
            assert!(pr.std < 0.1, "{q:?}: std {}", pr.std);
        }
        // Far from the data: the prior's mean and spread.
        assert!(p[2].std > 0.8 * gp.y_std, "{}", p[2].std);
        assert!((p[2].mean - gp.y_mean).abs() < 1e-3);
    }

    #[test]
    fn bad_data_is_refused() {
        let mut gp = Gp::new();
        assert!(gp.fit(&[vec![1.0]], &[1.0, 2.0]).is_err());
        assert!(gp.fit(&[vec![1.0], vec![1.0, 2.0]], &[1.0, 2.0]).is_err());
        assert!(gp.fit(&[vec![1.0]], &[f64::NAN]).is_err());
        assert!(gp.fit(&[], &[]).is_err());
    }
}
