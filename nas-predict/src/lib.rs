//! Performance predictors that search strategies share: encodings of an architecture
//! ([`encode`]: one-hot, the path encoding of cell spaces, token sequences), surrogates
//! fitted on evaluated architectures and asked about new ones ([`Surrogate`]: an
//! ensemble of MLPs trained with nas-core's autodiff, a Gaussian process with an RBF
//! kernel, gradient-boosted regression trees), and rank correlations to judge them ([`rank`]: Kendall's tau, Spearman's rho).
//!
//! Everything works on decision vectors (`nas_strategies::decisions`): one option index
//! per choice of the space. A plugin links this crate (and with it nas-core) only if it
//! fits a surrogate; the SDK itself stays free of the engine.
//!
//! Behind the `testing` feature, `testing` is the NAS-Bench-201 harness that the
//! strategies' tests share (it needs the engine's table, so it cannot be the SDK's).

pub mod encode;
pub mod gbt;
pub mod gp;
pub mod mlp;
pub mod rank;
#[cfg(feature = "testing")]
pub mod testing;

pub use encode::{Encoding, OneHot, PathEncoding, Tokens};
pub use gbt::{Gbt, GbtConfig};
pub use gp::Gp;
pub use mlp::{MlpConfig, MlpEnsemble};
pub use rank::{kendall_tau, spearman};

/// A surrogate's answer for one architecture: the predicted accuracy and how unsure the
/// surrogate is (the ensemble's spread, the GP's posterior standard deviation), both in
/// the units of the targets it was fitted on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Prediction {
    pub mean: f64,
    pub std: f64,
}

/// A regression model from encoded architectures to accuracy.
pub trait Surrogate {
    /// Fits on `x` (encodings, all of one length) and `y` (their accuracies), replacing
    /// whatever was fitted before. An error says what is wrong with the data.
    fn fit(&mut self, x: &[Vec<f32>], y: &[f64]) -> Result<(), String>;
    /// Predictions for `x`; before any fit, the prior (mean 0, std 1).
    fn predict(&self, x: &[Vec<f32>]) -> Vec<Prediction>;
}

/// Checks a training set: as many targets as inputs, at least one, equal lengths,
/// finite values.
pub(crate) fn check_data(x: &[Vec<f32>], y: &[f64]) -> Result<usize, String> {
    if x.len() != y.len() {
        return Err(format!("{} inputs but {} targets", x.len(), y.len()));
    }
    let Some(first) = x.first() else {
        return Err("no training data".into());
    };
    let dim = first.len();
    if let Some(i) = x.iter().position(|v| v.len() != dim) {
        return Err(format!(
            "input {i} has {} features, input 0 has {dim}",
            x[i].len()
        ));
    }
    if x.iter().flatten().any(|v| !v.is_finite()) {
        return Err("an input is not finite".into());
    }
    if let Some(i) = y.iter().position(|v| !v.is_finite()) {
        return Err(format!("target {i} is {}", y[i]));
    }
    Ok(dim)
}

/// Mean and standard deviation (population; 1 when the targets are all equal, so
/// standardising never divides by zero).
pub(crate) fn standardise(y: &[f64]) -> (f64, f64) {
    let n = y.len() as f64;
    let mean = y.iter().sum::<f64>() / n;
    let sd = (y.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
    (mean, if sd > 1e-12 { sd } else { 1.0 })
}
