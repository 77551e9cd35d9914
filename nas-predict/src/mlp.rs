//! An ensemble of MLPs (ReLU hidden layers, one linear output), each trained from its
//! own random start by full-batch AdamW on the mean squared error of standardised
//! targets, on nas-core's tensors and autodiff. The ensemble's mean is the prediction
//! and its spread the uncertainty (as BANANAS uses it).

use crate::{check_data, standardise, Prediction, Surrogate};
use nas_core::optim::{Adam, Optimizer};
use nas_core::{no_grad, Rng, Tensor};

/// The defaults (5 members of 3 hidden layers of 64, 150 steps at 0.01, decay 0.01)
/// ranked held-out NAS-Bench-201 cells best among the settings tried in
/// `tests/nb201_tau.rs` (tau 0.60 after 100 points on the path encoding; 2 layers of 32
/// with 300 steps: 0.47).
#[derive(Clone, Debug, PartialEq)]
pub struct MlpConfig {
    /// Networks in the ensemble.
    pub members: usize,
    /// Hidden layers (at least 1) and their width.
    pub layers: usize,
    pub hidden: usize,
    /// Full-batch AdamW steps per fit, at learning rate `lr`.
    pub steps: usize,
    pub lr: f32,
    /// Decoupled weight decay.
    pub weight_decay: f32,
}

impl Default for MlpConfig {
    fn default() -> Self {
        MlpConfig {
            members: 5,
            layers: 3,
            hidden: 64,
            steps: 150,
            lr: 0.01,
            weight_decay: 0.01,
        }
    }
}

/// One network: `(w, b)` per layer, the last one to a single output.
struct Net {
    layers: Vec<(Tensor, Tensor)>,
}

impl Net {
    fn new(dim: usize, cfg: &MlpConfig, rng: &mut Rng) -> Net {
        let mut layers = vec![];
        let mut fan_in = dim;
        for l in 0..=cfg.layers {
            let out = if l == cfg.layers { 1 } else { cfg.hidden };
            // He-uniform for the ReLU layers, Glorot-like for the output.
            let s = if l == cfg.layers {
                (1.0 / fan_in as f32).sqrt()
            } else {
                (6.0 / fan_in as f32).sqrt()
            };
            let w = Tensor::parameter(
                (0..out * fan_in)
                    .map(|_| rng.uniform_range(-s, s))
                    .collect(),
                &[out, fan_in],
            );
            let b = Tensor::parameter(vec![0.0; out], &[out]);
            layers.push((w, b));
            fan_in = out;
        }
        Net { layers }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let mut h = x.clone();
        let last = self.layers.len() - 1;
        for (i, (w, b)) in self.layers.iter().enumerate() {
            h = h.linear(w, Some(b));
            if i < last {
                h = h.relu();
            }
        }
        h
    }

    fn params(&self) -> Vec<Tensor> {
        self.layers
            .iter()
            .flat_map(|(w, b)| [w.clone(), b.clone()])
            .collect()
    }
}

pub struct MlpEnsemble {
    cfg: MlpConfig,
    rng: Rng,
    nets: Vec<Net>,
    dim: usize,
    y_mean: f64,
    y_std: f64,
}

impl MlpEnsemble {
    /// An error names a count that is zero.
    pub fn new(cfg: MlpConfig, seed: u64) -> Result<MlpEnsemble, String> {
        for (name, v) in [
            ("members", cfg.members),
            ("layers", cfg.layers),
            ("hidden", cfg.hidden),
        ] {
            if v == 0 {
                return Err(format!("MLP ensemble: `{name}` must be at least 1"));
            }
        }
        if !(cfg.lr > 0.0 && cfg.lr <= 1.0) {
            return Err(format!("MLP ensemble: `lr` {} is not in (0, 1]", cfg.lr));
        }
        Ok(MlpEnsemble {
            cfg,
            rng: Rng::new(seed),
            nets: vec![],
            dim: 0,
            y_mean: 0.0,
            y_std: 1.0,
        })
    }

    /// Each member's prediction (in target units) for every row of `x`.
    pub fn members(&self, x: &[Vec<f32>]) -> Vec<Vec<f64>> {
        if x.is_empty() || self.nets.is_empty() {
            return vec![];
        }
        let flat: Vec<f32> = x.iter().flatten().copied().collect();
        let t = Tensor::from_vec(flat, &[x.len(), self.dim]);
        no_grad(|| {
            self.nets
                .iter()
                .map(|n| {
                    n.forward(&t)
                        .to_vec()
                        .into_iter()
                        .map(|v| self.y_mean + self.y_std * v as f64)
                        .collect()
                })
                .collect()
        })
    }
}

impl Surrogate for MlpEnsemble {
    fn fit(&mut self, x: &[Vec<f32>], y: &[f64]) -> Result<(), String> {
        let dim = check_data(x, y)?;
        let (mean, sd) = standardise(y);
        let n = x.len();
        let xt = Tensor::from_vec(x.iter().flatten().copied().collect(), &[n, dim]);
        let yt = Tensor::from_vec(
            y.iter().map(|v| ((v - mean) / sd) as f32).collect(),
            &[n, 1],
        );
        let mut nets = vec![];
        for _ in 0..self.cfg.members {
            let net = Net::new(dim, &self.cfg, &mut self.rng);
            let mut opt = Adam::new(net.params(), self.cfg.weight_decay, true);
            for _ in 0..self.cfg.steps {
                let d = net.forward(&xt).sub(&yt);
                let loss = d.mul(&d).mean();
                opt.zero_grad();
                loss.backward();
                opt.step(self.cfg.lr);
            }
            opt.zero_grad();
            nets.push(net);
        }
        let w: Vec<f32> = nets
            .iter()
            .flat_map(|n| n.params())
            .flat_map(|p| p.to_vec())
            .collect();
        nas_strategies::check_finite(&w, "the MLP ensemble's weights", "lower `lr`")?;
        self.nets = nets;
        self.dim = dim;
        self.y_mean = mean;
        self.y_std = sd;
        Ok(())
    }

    fn predict(&self, x: &[Vec<f32>]) -> Vec<Prediction> {
        if self.nets.is_empty() {
            return vec![
                Prediction {
                    mean: 0.0,
                    std: 1.0
                };
                x.len()
            ];
        }
        let per = self.members(x);
        let k = per.len() as f64;
        (0..x.len())
            .map(|i| {
                let m = per.iter().map(|p| p[i]).sum::<f64>() / k;
                let v = per.iter().map(|p| (p[i] - m).powi(2)).sum::<f64>() / k;
                Prediction {
                    mean: m,
                    std: v.sqrt(),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_a_nonlinear_function_of_binary_features() {
        // y = x0 xor x1 + 0.5 x2 over every 4-bit input: not linear in the bits.
        let x: Vec<Vec<f32>> = (0..16u32)
            .map(|k| (0..4).map(|b| ((k >> b) & 1) as f32).collect())
            .collect();
        let y: Vec<f64> = x
            .iter()
            .map(|v| ((v[0] != v[1]) as u8 as f64) + 0.5 * v[2] as f64)
            .collect();
        let mut m = MlpEnsemble::new(MlpConfig::default(), 1).unwrap();
        m.fit(&x, &y).unwrap();
        let p = m.predict(&x);
        let worst = p
            .iter()
            .zip(&y)
            .map(|(a, b)| (a.mean - b).abs())
            .fold(0.0, f64::max);
        assert!(worst < 0.1, "largest error {worst}");
        assert_eq!(m.members(&x).len(), 5);
        assert!(p.iter().all(|q| q.std >= 0.0 && q.std.is_finite()));
    }

    #[test]
    fn zero_counts_are_refused() {
        for cfg in [
            MlpConfig {
                members: 0,
                ..Default::default()
            },
            MlpConfig {
                hidden: 0,
                ..Default::default()
            },
        ] {
            assert!(MlpEnsemble::new(cfg, 0).is_err());
        }
        let cfg = MlpConfig {
            lr: 2.0,
            ..Default::default()
        };
        assert!(MlpEnsemble::new(cfg, 0).err().unwrap().contains("`lr`"));
    }
}
