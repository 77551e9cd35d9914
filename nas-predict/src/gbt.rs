//! Gradient-boosted regression trees (squared loss) on standardised targets: each round
//! fits a tree of depth at most `depth` to the residuals of the rounds before, on a
//! random `subsample` of the points, and adds it scaled by `learning_rate`. Splits are
//! exact (every threshold between two distinct values of a feature), chosen by the
//! largest drop in the squared error; a leaf keeps at least `min_leaf` points.
//!
//! Pure Rust and small: no maintained Rust crate offers boosted trees without a C
//! library behind it, and encodings of architectures (a few hundred points, a few
//! hundred 0/1 features) need nothing more than this.

use crate::{check_data, standardise, Prediction, Surrogate};
use nas_strategies::Rng;

/// How a [`Gbt`] boosts.
#[derive(Clone, Debug, PartialEq)]
pub struct GbtConfig {
    /// Boosting rounds (trees).
    pub trees: usize,
    /// Most splits from a tree's root to a leaf.
    pub depth: usize,
    pub learning_rate: f64,
    /// Fewest training points in a leaf.
    pub min_leaf: usize,
    /// Fraction of the points each tree is fitted on (drawn afresh per tree).
    pub subsample: f64,
    pub seed: u64,
}

impl Default for GbtConfig {
    fn default() -> Self {
        GbtConfig {
            trees: 200,
            depth: 3,
            learning_rate: 0.1,
            min_leaf: 2,
            subsample: 0.8,
            seed: 0,
        }
    }
}

impl GbtConfig {
    fn check(&self) -> Result<(), String> {
        if self.trees == 0 || self.depth == 0 || self.min_leaf == 0 {
            return Err("gbt: trees, depth and min_leaf must be at least 1".into());
        }
        if !(self.learning_rate > 0.0 && self.learning_rate <= 1.0) {
            return Err(format!(
                "gbt: learning_rate {} is not in (0, 1]",
                self.learning_rate
            ));
        }
        if !(self.subsample > 0.0 && self.subsample <= 1.0) {
            return Err(format!(
                "gbt: subsample {} is not in (0, 1]",
                self.subsample
            ));
        }
        Ok(())
    }
}

/// A node of a regression tree: a split (`feature < threshold` goes left) or a leaf.
#[derive(Clone, Debug)]
enum Node {
    Split {
        feature: usize,
        threshold: f32,
        left: usize,
        right: usize,
    },
    Leaf(f64),
}

#[derive(Clone, Debug, Default)]
struct Tree {
    nodes: Vec<Node>,
}

impl Tree {
    fn predict(&self, x: &[f32]) -> f64 {
        let mut i = 0;
        loop {
            match self.nodes[i] {
                Node::Split {
                    feature,
                    threshold,
                    left,
                    right,
                } => i = if x[feature] < threshold { left } else { right },
                Node::Leaf(v) => return v,
            }
        }
    }
}

/// Boosted regression trees; see the module's documentation.
pub struct Gbt {
    cfg: GbtConfig,
    trees: Vec<Tree>,
    y_mean: f64,
    y_std: f64,
    /// The root-mean-square residual on the training points, in target units: the
    /// `std` of every prediction (a boosted model has no spread of its own).
    residual: f64,
}

impl Gbt {
    pub fn new(cfg: GbtConfig) -> Result<Gbt, String> {
        cfg.check()?;
        Ok(Gbt {
            cfg,
            trees: vec![],
            y_mean: 0.0,
            y_std: 1.0,
            residual: 1.0,
        })
    }

    fn raw(&self, x: &[f32]) -> f64 {
        self.trees
            .iter()
            .map(|t| self.cfg.learning_rate * t.predict(x))
            .sum()
    }
}

/// The best split of the points `idx` on any feature: (feature, threshold, the points
/// going left, those going right), or `None` when no split leaves `min_leaf` points on
/// each side and lowers the squared error.
fn best_split(
    x: &[Vec<f32>],
    r: &[f64],
    idx: &[usize],
    min_leaf: usize,
) -> Option<(usize, f32, Vec<usize>, Vec<usize>)> {
    let n = idx.len();
    if n < 2 * min_leaf {
        return None;
    }
    let total: f64 = idx.iter().map(|&i| r[i]).sum();
    // Squared error drop of a split = sl^2/nl + sr^2/nr - total^2/n.
    let base = total * total / n as f64;
    let mut best: Option<(f64, usize, f32)> = None;
    let mut order = idx.to_vec();
    for f in 0..x[idx[0]].len() {
        order.sort_by(|&a, &b| x[a][f].total_cmp(&x[b][f]));
        let mut sl = 0.0;
        for k in 0..n - 1 {
            sl += r[order[k]];
            let nl = k + 1;
            let (a, b) = (x[order[k]][f], x[order[k + 1]][f]);
            if a == b || nl < min_leaf || n - nl < min_leaf {
                continue;
            }
            let sr = total - sl;
            let gain = sl * sl / nl as f64 + sr * sr / (n - nl) as f64 - base;
            if gain > 1e-12 && best.is_none_or(|(g, _, _)| gain > g) {
                best = Some((gain, f, a + (b - a) / 2.0));
            }
        }
    }
    let (_, f, t) = best?;
    let (left, right) = idx.iter().partition(|&&i| x[i][f] < t);
    Some((f, t, left, right))
}

/// Grows a tree on the points `idx` fitting the residuals `r`; returns its root's index.
fn grow(
    tree: &mut Tree,
    x: &[Vec<f32>],
    r: &[f64],
    idx: &[usize],
    depth: usize,
    min_leaf: usize,
) -> usize {
    let at = tree.nodes.len();
    let mean = idx.iter().map(|&i| r[i]).sum::<f64>() / idx.len() as f64;
    tree.nodes.push(Node::Leaf(mean));
    if depth == 0 {
        return at;
    }
    if let Some((feature, threshold, l, rt)) = best_split(x, r, idx, min_leaf) {
        let left = grow(tree, x, r, &l, depth - 1, min_leaf);
        let right = grow(tree, x, r, &rt, depth - 1, min_leaf);
        tree.nodes[at] = Node::Split {
            feature,
            threshold,
            left,
            right,
        };
    }
    at
}

impl Surrogate for Gbt {
    fn fit(&mut self, x: &[Vec<f32>], y: &[f64]) -> Result<(), String> {
        check_data(x, y)?;
        let (mean, sd) = standardise(y);
        self.y_mean = mean;
        self.y_std = sd;
        self.trees.clear();
        let target: Vec<f64> = y.iter().map(|v| (v - mean) / sd).collect();
        let mut fitted = vec![0.0; x.len()];
        let mut rng = Rng::new(self.cfg.seed);
        let n = x.len();
        let take = ((n as f64 * self.cfg.subsample).round() as usize).clamp(1, n);
        let mut all: Vec<usize> = (0..n).collect();
        for _ in 0..self.cfg.trees {
            let r: Vec<f64> = target.iter().zip(&fitted).map(|(t, f)| t - f).collect();
            rng.shuffle(&mut all);
            let mut idx = all[..take].to_vec();
            idx.sort_unstable();
            let mut tree = Tree::default();
            grow(&mut tree, x, &r, &idx, self.cfg.depth, self.cfg.min_leaf);
            for (i, f) in fitted.iter_mut().enumerate() {
                *f += self.cfg.learning_rate * tree.predict(&x[i]);
            }
            self.trees.push(tree);
        }
        let mse = target
            .iter()
            .zip(&fitted)
            .map(|(t, f)| (t - f).powi(2))
            .sum::<f64>()
            / n as f64;
        self.residual = mse.sqrt() * sd;
        Ok(())
    }

    fn predict(&self, x: &[Vec<f32>]) -> Vec<Prediction> {
        if self.trees.is_empty() {
            return x
                .iter()
                .map(|_| Prediction {
                    mean: 0.0,
                    std: 1.0,
                })
                .collect();
        }
        x.iter()
            .map(|v| Prediction {
                mean: self.y_mean + self.y_std * self.raw(v),
                std: self.residual,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stump_takes_the_split_that_lowers_the_squared_error_most() {
        // Feature 0 splits {1, 1, 5, 5} cleanly; feature 1 mixes them.
        let x = vec![
            vec![0.0, 0.0],
            vec![0.0, 1.0],
            vec![1.0, 0.0],
            vec![1.0, 1.0],
        ];
        let y = [1.0, 1.0, 5.0, 5.0];
        let r: Vec<f64> = y.to_vec();
        let idx = [0, 1, 2, 3];
        let (f, t, l, rt) = best_split(&x, &r, &idx, 1).unwrap();
        assert_eq!((f, t, l, rt), (0, 0.5, vec![0, 1], vec![2, 3]));
        // A stump with a learning rate of 1 and every point: the two means exactly.
        let mut g = Gbt::new(GbtConfig {
            trees: 1,
            depth: 1,
            learning_rate: 1.0,
            subsample: 1.0,
            min_leaf: 1,
            seed: 0,
        })
        .unwrap();
        g.fit(&x, &y).unwrap();
        let p: Vec<f64> = g.predict(&x).iter().map(|p| p.mean).collect();
        for (a, b) in p.iter().zip(y) {
            assert!((a - b).abs() < 1e-9, "{p:?}");
        }
        // min_leaf 3 leaves no split of 4 points: the mean.
        assert!(best_split(&x, &r, &idx, 3).is_none());
    }

    #[test]
    fn boosting_learns_an_interaction_that_one_tree_of_depth_one_cannot() {
        // y = 3 a - 2 b + 4 a c on 0/1 features, plus an irrelevant feature d.
        let mut rng = Rng::new(7);
        let point = |rng: &mut Rng| -> Vec<f32> { (0..4).map(|_| rng.below(2) as f32).collect() };
        let f = |v: &[f32]| 3.0 * v[0] as f64 - 2.0 * v[1] as f64 + 4.0 * (v[0] * v[2]) as f64;
        let x: Vec<Vec<f32>> = (0..80).map(|_| point(&mut rng)).collect();
        let y: Vec<f64> = x.iter().map(|v| f(v)).collect();
        let test: Vec<Vec<f32>> = (0..16)
            .map(|k| (0..4).map(|b| ((k >> b) & 1) as f32).collect())
            .collect();
        let err = |cfg: GbtConfig| {
            let mut g = Gbt::new(cfg).unwrap();
            g.fit(&x, &y).unwrap();
            let p = g.predict(&test);
            (test
                .iter()
                .zip(&p)
                .map(|(v, p)| (p.mean - f(v)).powi(2))
                .sum::<f64>()
                / 16.0)
                .sqrt()
        };
        let boosted = err(GbtConfig::default());
        let stump = err(GbtConfig {
            trees: 1,
            depth: 1,
            learning_rate: 1.0,
            subsample: 1.0,
            ..GbtConfig::default()
        });
        // The targets' standard deviation is about 2.5.
        assert!(boosted < 0.15, "boosted RMSE {boosted}");
        assert!(stump > 1.0, "stump RMSE {stump}");
    }

    #[test]
    fn bad_settings_and_data_are_errors() {
        for cfg in [
            GbtConfig {
                trees: 0,
                ..GbtConfig::default()
            },
            GbtConfig {
                learning_rate: 0.0,
                ..GbtConfig::default()
            },
            GbtConfig {
                subsample: 1.5,
                ..GbtConfig::default()
            },
        ] {
            assert!(Gbt::new(cfg).is_err());
        }
        let mut g = Gbt::new(GbtConfig::default()).unwrap();
        assert!(g.fit(&[vec![0.0], vec![1.0]], &[1.0]).is_err());
        assert!(g.fit(&[vec![0.0]], &[f64::NAN]).is_err());
        // Before a fit: the prior.
        assert_eq!(g.predict(&[vec![0.0]])[0].std, 1.0);
    }
}
