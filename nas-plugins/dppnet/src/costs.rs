//! Device costs of an architecture predicted before it is evaluated. An ask/tell plugin
//! sees only the space's choices and the metrics of the trials it has been told, so each
//! cost is an additive model fitted on those metrics: a base, one cost per candidate
//! shared by several layer choices (times how many of them take it), and one per option
//! of each choice; the same form as the host's per-op latency table (a base plus one
//! time per candidate), learned from whole-network measurements instead of timed op by op.

use nas_strategies::{decisions, Choice, ChoiceKind, Metrics};

/// The costs the plugin knows: what the evaluator reports, and memory derived from it.
pub const COSTS: [&str; 4] = ["latency_ms", "params", "macs", "memory_mb"];

/// Ridge penalties, on standardised costs: the shared per-candidate costs almost free,
/// the per-option corrections dear, so an option seen only on other choices (a cell edge
/// whose op has been evaluated elsewhere) is costed by its candidate's shared cost.
const SHARED_PENALTY: f64 = 1e-3;
const OPTION_PENALTY: f64 = 1.0;

/// A trial's costs in the order of [`COSTS`]. Memory (MiB) is 4 bytes per weight plus,
/// where the evaluator reports `activations` (floats of one image's forward pass), 4
/// bytes per activation of a batch of `batch` images.
pub fn costs_of(m: &Metrics, batch: usize) -> [Option<f64>; 4] {
    let activations = m
        .extra
        .get("activations")
        .and_then(|v| v.as_f64())
        .unwrap_or(0.0);
    let memory = m
        .params
        .map(|p| (4.0 * p + 4.0 * batch as f64 * activations) / (1024.0 * 1024.0));
    [m.latency_ms, m.params, m.macs, memory]
}

/// The features of a decision vector: 1, per shared candidate list how many active
/// choices take each candidate, then the one-hot option of every active choice.
pub struct Features {
    space: Vec<Choice>,
    /// (the choices sharing one candidate list, the offset of its counts).
    shared: Vec<(Vec<usize>, usize)>,
    /// Offset of each choice's one-hot part.
    offsets: Vec<usize>,
    dim: usize,
}

impl Features {
    pub fn new(space: &[Choice]) -> Features {
        let mut lists: Vec<(&Vec<String>, Vec<usize>)> = vec![];
        for (i, c) in space.iter().enumerate() {
            if let ChoiceKind::Layer { candidates } = &c.kind {
                match lists.iter_mut().find(|(l, _)| *l == candidates) {
                    Some((_, members)) => members.push(i),
                    None => lists.push((candidates, vec![i])),
                }
            }
        }
        let mut dim = 1;
        let mut shared = vec![];
        for (list, members) in lists {
            if members.len() > 1 {
                shared.push((members, dim));
                dim += list.len();
            }
        }
        let mut offsets = vec![];
        for c in space {
            offsets.push(dim);
            dim += c.size();
        }
        Features {
            space: space.to_vec(),
            shared,
            offsets,
            dim,
        }
    }

    pub fn encode(&self, d: &[usize]) -> Vec<f64> {
        let active = decisions::active_mask(&self.space, d);
        let mut x = vec![0.0; self.dim];
        x[0] = 1.0;
        for (members, off) in &self.shared {
            for &i in members.iter().filter(|&&i| active[i]) {
                x[off + d[i]] += 1.0;
            }
        }
        for (i, &o) in d.iter().enumerate() {
            if active[i] {
                x[self.offsets[i] + o] = 1.0;
            }
        }
        x
    }

    fn penalty(&self, j: usize) -> f64 {
        match j {
            0 => 0.0,
            j if j < self.offsets.first().copied().unwrap_or(self.dim) => SHARED_PENALTY,
            _ => OPTION_PENALTY,
        }
    }
}

/// One cost's fitted model.
#[derive(Clone, Debug)]
pub struct CostModel {
    w: Vec<f64>,
    mean: f64,
    sd: f64,
    /// Root mean squared error on the data it was fitted on, in the cost's units.
    pub rmse: f64,
}

impl CostModel {
    /// Fits on `(decisions, cost)` pairs; `None` with fewer than 2.
    pub fn fit(f: &Features, data: &[(&[usize], f64)]) -> Option<CostModel> {
        if data.len() < 2 {
            return None;
        }
        let n = data.len() as f64;
        let mean = data.iter().map(|(_, y)| y).sum::<f64>() / n;
        let sd = (data.iter().map(|(_, y)| (y - mean).powi(2)).sum::<f64>() / n).sqrt();
        let sd = if sd > 1e-12 { sd } else { 1.0 };
        let d = f.dim;
        let mut a = vec![vec![0.0; d + 1]; d];
        let xs: Vec<Vec<f64>> = data.iter().map(|(x, _)| f.encode(x)).collect();
        for (x, (_, y)) in xs.iter().zip(data) {
            let t = (y - mean) / sd;
            for i in 0..d {
                if x[i] == 0.0 {
                    continue;
                }
                for j in 0..d {
                    a[i][j] += x[i] * x[j];
                }
                a[i][d] += x[i] * t;
            }
        }
        for (j, row) in a.iter_mut().enumerate() {
            row[j] += f.penalty(j);
        }
        let w = solve(a)?;
        let mut m = CostModel {
            w,
            mean,
            sd,
            rmse: 0.0,
        };
        let sse: f64 = xs
            .iter()
            .zip(data)
            .map(|(x, (_, y))| (m.predict_x(x) - y).powi(2))
            .sum();
        m.rmse = (sse / n).sqrt();
        Some(m)
    }

    fn predict_x(&self, x: &[f64]) -> f64 {
        self.mean + self.sd * self.w.iter().zip(x).map(|(w, x)| w * x).sum::<f64>()
    }

    pub fn predict(&self, f: &Features, d: &[usize]) -> f64 {
        self.predict_x(&f.encode(d))
    }
}

/// Solves the augmented system `a = [A | b]` by Gaussian elimination with partial
/// pivoting; `None` when it is singular (the intercept with no data cannot be).
fn solve(mut a: Vec<Vec<f64>>) -> Option<Vec<f64>> {
    let n = a.len();
    for c in 0..n {
        let p = (c..n).max_by(|&i, &j| a[i][c].abs().total_cmp(&a[j][c].abs()))?;
        if a[p][c].abs() < 1e-12 {
            return None;
        }
        a.swap(c, p);
        let (top, rest) = a.split_at_mut(c + 1);
        let pivot = &top[c];
        for row in rest {
            let k = row[c] / pivot[c];
            if k != 0.0 {
                for (x, p) in row[c..].iter_mut().zip(&pivot[c..]) {
                    *x -= k * p;
                }
            }
        }
    }
    let mut w = vec![0.0; n];
    for r in (0..n).rev() {
        let s: f64 = (r + 1..n).map(|j| a[r][j] * w[j]).sum();
        w[r] = (a[r][n] - s) / a[r][r];
    }
    Some(w)
}
