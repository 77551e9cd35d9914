//! NAT's accuracy predictor: "adaptive switching" picks, each time the archive grows,
//! the surrogate kind whose cross-validated Kendall tau is best (mean over the folds
//! less its standard deviation, as the reference code ranks them) and refits it on the
//! whole archive. The kinds are `nas-predict`'s MLP ensemble and Gaussian process and a
//! radial-basis-function interpolant of this crate's own ([`Rbf`]); one more kind is one
//! line of [`make`].

use nas_predict::{kendall_tau, Gbt, GbtConfig, Gp, MlpConfig, MlpEnsemble, Prediction, Surrogate};
use nas_strategies::Rng;

/// The surrogate kinds [`make`] knows, in the default order (a tie goes to the
/// earlier). A new kind is a name here and its line in [`make`].
pub const KINDS: &[&str] = &["rbf", "gp", "mlp", "gbt"];

/// A fresh surrogate of kind `name`; `seed` seeds one that draws random numbers.
pub fn make(name: &str, seed: u64) -> Result<Box<dyn Surrogate>, String> {
    Ok(match name {
        "rbf" => Box::new(Rbf::default()),
        "gp" => Box::new(Gp::new()),
        "mlp" => Box::new(MlpEnsemble::new(MlpConfig::default(), seed)?),
        // Boosted trees: the paper's decision-tree kind (CART), boosted.
        "gbt" => Box::new(Gbt::new(GbtConfig {
            seed,
            ..GbtConfig::default()
        })?),
        other => return Err(format!("unknown surrogate `{other}`")),
    })
}

/// An RBF interpolant with the distance kernel `phi(r) = r` and a constant tail:
/// `s(x) = sum_i w_i |x - x_i| + c` with `sum_i w_i = 0`, through every training point
/// up to a tiny ridge. The kernel is conditionally positive definite of order 1, so the
/// system is solvable for distinct points with a constant tail alone (a linear tail, as
/// the cubic kernel needs, would have more unknowns than points on one-hot encodings).
/// Targets are standardised; the prediction's `std` is 0 (no uncertainty).
#[derive(Default)]
pub struct Rbf {
    x: Vec<Vec<f64>>,
    w: Vec<f64>,
    c: f64,
    y_mean: f64,
    y_std: f64,
}

fn dist(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f64>()
        .sqrt()
}

/// Solves `a z = b` (`a` n x n, row-major) by Gaussian elimination with partial
/// pivoting; `None` when a pivot vanishes.
pub fn solve(mut a: Vec<f64>, mut b: Vec<f64>) -> Option<Vec<f64>> {
    let n = b.len();
    let scale = a.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-300);
    for col in 0..n {
        let p = (col..n).max_by(|&i, &j| a[i * n + col].abs().total_cmp(&a[j * n + col].abs()))?;
        if a[p * n + col].abs() <= 1e-13 * scale {
            return None;
        }
        if p != col {
            for k in 0..n {
                a.swap(p * n + k, col * n + k);
            }
            b.swap(p, col);
        }
        for r in col + 1..n {
            let f = a[r * n + col] / a[col * n + col];
            if f != 0.0 {
                for k in col..n {
                    a[r * n + k] -= f * a[col * n + k];
                }
                b[r] -= f * b[col];
            }
        }
    }
    let mut z = vec![0.0; n];
    for r in (0..n).rev() {
        let s: f64 = (r + 1..n).map(|k| a[r * n + k] * z[k]).sum();
        z[r] = (b[r] - s) / a[r * n + r];
    }
    Some(z)
}

impl Surrogate for Rbf {
    fn fit(&mut self, x: &[Vec<f32>], y: &[f64]) -> Result<(), String> {
        if x.len() != y.len() || x.is_empty() {
            return Err(format!("RBF: {} inputs and {} targets", x.len(), y.len()));
        }
        if y.iter().any(|v| !v.is_finite()) || x.iter().flatten().any(|v| !v.is_finite()) {
            return Err("RBF: a value is not finite".into());
        }
        let xs: Vec<Vec<f64>> = x
            .iter()
            .map(|v| v.iter().map(|&f| f as f64).collect())
            .collect();
        let n = xs.len();
        let mean = y.iter().sum::<f64>() / n as f64;
        let sd = (y.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
        let sd = if sd > 1e-12 { sd } else { 1.0 };
        // [[Phi - eps I, 1], [1^T, 0]] [w; c] = [y; 0]; -Phi is conditionally positive
        // definite, so subtracting the ridge keeps the system regular.
        let m = n + 1;
        let mut a = vec![0.0; m * m];
        let mut total = 0.0;
        for i in 0..n {
            for j in 0..n {
                let r = dist(&xs[i], &xs[j]);
                a[i * m + j] = r;
                total += r;
            }
            a[i * m + n] = 1.0;
            a[n * m + i] = 1.0;
        }
        let ridge = 1e-8 * (total / (n * n) as f64).max(1e-12);
        for i in 0..n {
            a[i * m + i] -= ridge;
        }
        let mut b: Vec<f64> = y.iter().map(|v| (v - mean) / sd).collect();
        b.push(0.0);
        let z = solve(a, b).ok_or("RBF: the interpolation system is singular")?;
        self.w = z[..n].to_vec();
        self.c = z[n];
        self.x = xs;
        self.y_mean = mean;
        self.y_std = sd;
        Ok(())
    }

    fn predict(&self, x: &[Vec<f32>]) -> Vec<Prediction> {
        x.iter()
            .map(|v| {
                if self.x.is_empty() {
                    return Prediction {
                        mean: 0.0,
                        std: 1.0,
                    };
                }
                let v: Vec<f64> = v.iter().map(|&f| f as f64).collect();
                let s: f64 = self
                    .x
                    .iter()
                    .zip(&self.w)
                    .map(|(t, w)| w * dist(t, &v))
                    .sum();
                Prediction {
                    mean: self.y_mean + self.y_std * (s + self.c),
                    std: 0.0,
                }
            })
            .collect()
    }
}

/// The folds of `n` points in a random order: `k` runs of near-equal size (the first
/// `n % k` one longer).
pub fn folds(n: usize, k: usize, rng: &mut Rng) -> Vec<Vec<usize>> {
    let mut perm: Vec<usize> = (0..n).collect();
    rng.shuffle(&mut perm);
    let (q, r) = (n / k, n % k);
    let mut out = vec![];
    let mut at = 0;
    for f in 0..k {
        let len = q + (f < r) as usize;
        out.push(perm[at..at + len].to_vec());
        at += len;
    }
    out
}

/// What adaptive switching chose.
pub struct Choice {
    /// Index into the kinds it was given.
    pub winner: usize,
    /// Each kind's score: mean over the folds of Kendall's tau less its standard
    /// deviation (NaN for a kind not cross-validated).
    pub scores: Vec<f64>,
    /// Each kind's mean tau over the folds.
    pub taus: Vec<f64>,
    /// The winner, fitted on all the data.
    pub model: Box<dyn Surrogate>,
}

/// Adaptive switching: `k`-fold cross-validation of every kind in `kinds` on `(x, y)`
/// (a fit that fails scores tau -1 on its fold), the winner refitted on everything.
/// With fewer than two points per fold (fewer than `2k` points, `k` at least 2) the
/// folds shrink to `n / 2`; below 4 points the first kind is taken without
/// cross-validation. `seed` seeds each fit (per kind and fold).
pub fn adaptive_switching(
    kinds: &[String],
    x: &[Vec<f32>],
    y: &[f64],
    k: usize,
    seed: u64,
    rng: &mut Rng,
) -> Result<Choice, String> {
    switching_with(&make, kinds, x, y, k, seed, rng)
}

/// [`adaptive_switching`] with the surrogates made by `make`.
pub fn switching_with(
    make: &dyn Fn(&str, u64) -> Result<Box<dyn Surrogate>, String>,
    kinds: &[String],
    x: &[Vec<f32>],
    y: &[f64],
    k: usize,
    seed: u64,
    rng: &mut Rng,
) -> Result<Choice, String> {
    let n = x.len();
    let k = k.min(n / 2);
    let mut scores = vec![f64::NAN; kinds.len()];
    let mut taus = vec![f64::NAN; kinds.len()];
    let mut winner = 0;
    if k >= 2 && kinds.len() > 1 {
        let split = folds(n, k, rng);
        for (j, kind) in kinds.iter().enumerate() {
            let mut t = Vec::with_capacity(k);
            for (f, test) in split.iter().enumerate() {
                let train: Vec<usize> = (0..n).filter(|i| !test.contains(i)).collect();
                let xs: Vec<Vec<f32>> = train.iter().map(|&i| x[i].clone()).collect();
                let ys: Vec<f64> = train.iter().map(|&i| y[i]).collect();
                let mut m = make(
                    kind,
                    seed ^ ((j * 1000 + f) as u64).wrapping_mul(0x9E37_79B9),
                )?;
                let tau = match m.fit(&xs, &ys) {
                    Ok(()) => {
                        let xt: Vec<Vec<f32>> = test.iter().map(|&i| x[i].clone()).collect();
                        let p: Vec<f64> = m.predict(&xt).iter().map(|p| p.mean).collect();
                        let truth: Vec<f64> = test.iter().map(|&i| y[i]).collect();
                        let tau = kendall_tau(&p, &truth);
                        if tau.is_finite() {
                            tau
                        } else {
                            -1.0
                        }
                    }
                    Err(_) => -1.0,
                };
                t.push(tau);
            }
            let mean = t.iter().sum::<f64>() / k as f64;
            let sd = (t.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / k as f64).sqrt();
            taus[j] = mean;
            scores[j] = mean - sd;
        }
        for j in 1..kinds.len() {
            if scores[j] > scores[winner] {
                winner = j;
            }
        }
    }
    let mut model = make(&kinds[winner], seed ^ 0xA5A5_A5A5)?;
    model.fit(x, y)?;
    Ok(Choice {
        winner,
        scores,
        taus,
        model,
    })
}
