//! Training and evaluation loops over a `Dataset`, shared by `nas train` and later by
//! the evaluators of a search.

use crate::data::{Augment, Batches, Dataset};
use crate::nn::{parameters, Module};
use crate::optim::{clip_grad_norm, LrSchedule, Optimizer, Sgd};
use crate::rng::Rng;
use crate::tensor::{no_grad, Tensor};
use std::time::Instant;

/// A training recipe.
#[derive(Clone, Debug)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f32,
    pub momentum: f32,
    pub nesterov: bool,
    pub weight_decay: f32,
    pub schedule: LrSchedule,
    pub grad_clip: Option<f32>,
    pub augment: Augment,
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 5,
            batch_size: 64,
            lr: 0.05,
            momentum: 0.9,
            nesterov: false,
            weight_decay: 5e-4,
            schedule: LrSchedule::Constant,
            grad_clip: None,
            augment: Augment::default(),
            seed: 0,
        }
    }
}

/// What one epoch did.
#[derive(Clone, Debug)]
pub struct EpochStats {
    pub epoch: usize,
    /// The learning rate at the epoch's first batch.
    pub lr: f32,
    pub loss: f32,
    pub accuracy: f32,
    pub seconds: f64,
}

/// Number of correct argmax predictions of `[rows, classes]` logits (ties to the first
/// maximum). A row holding a NaN predicts nothing: before, a NaN first logit made it
/// predict class 0, so a diverged network scored about one class's share.
pub fn correct(logits: &Tensor, labels: &[u32]) -> usize {
    let classes = logits.dim(logits.rank() - 1);
    let d = logits.data();
    d.chunks(classes)
        .zip(labels)
        .filter(|(row, _)| !row.iter().any(|v| v.is_nan()))
        .filter(|(row, &y)| {
            let mut best = 0;
            for (i, v) in row.iter().enumerate() {
                if *v > row[best] {
                    best = i;
                }
            }
            best == y as usize
        })
        .count()
}

/// The shape of a batch of `b` images of the dataset.
fn batch_shape(d: &Dataset, b: usize) -> [usize; 4] {
    [b, d.c, d.h, d.w]
}

/// One epoch of SGD-style training; `on_batch(done, total, running_loss)` reports progress.
pub fn train_epoch(
    model: &dyn Module,
    opt: &mut dyn Optimizer,
    data: &Dataset,
    cfg: &TrainConfig,
    epoch: usize,
    rng: &mut Rng,
    on_batch: &mut dyn FnMut(usize, usize, f32),
) -> EpochStats {
    let _span = tracing::debug_span!("epoch", n = epoch).entered();
    let start = Instant::now();
    model.set_training(true);
    let mut batches = Batches::new(data, cfg.batch_size, true, false, cfg.augment.clone(), rng);
    let total = batches.num_batches();
    let (mut x, mut y) = (Vec::new(), Vec::new());
    let (mut loss_sum, mut right, mut seen, mut done) = (0.0f64, 0usize, 0usize, 0usize);
    let first_lr = cfg.schedule.lr(cfg.lr, epoch as f32);
    while let Some(b) = batches.next_into(&mut x, &mut y) {
        let lr = cfg
            .schedule
            .lr(cfg.lr, epoch as f32 + done as f32 / total as f32);
        let input = Tensor::from_vec(std::mem::take(&mut x), &batch_shape(data, b));
        let logits = model.forward(&input);
        let loss = logits.cross_entropy(&y);
        opt.zero_grad();
        loss.backward();
        if let Some(c) = cfg.grad_clip {
            clip_grad_norm(opt.params(), c);
        }
        opt.step(lr);
        let l = loss.item();
        loss_sum += l as f64 * b as f64;
        right += correct(&logits, &y);
        seen += b;
        done += 1;
        // Hand the input buffer back for the next batch.
        drop((loss, logits));
        x = std::mem::take(&mut *input.data_mut());
        on_batch(done, total, (loss_sum / seen as f64) as f32);
    }
    EpochStats {
        epoch,
        lr: first_lr,
        loss: (loss_sum / seen.max(1) as f64) as f32,
        accuracy: right as f32 / seen.max(1) as f32,
        seconds: start.elapsed().as_secs_f64(),
    }
}

/// Mean loss and accuracy of the model in eval mode.
pub fn evaluate(model: &dyn Module, data: &Dataset, batch_size: usize) -> (f32, f32) {
    let _span = tracing::debug_span!("evaluate", images = data.n).entered();
    model.set_training(false);
    let mut rng = Rng::new(0);
    let mut batches = Batches::new(data, batch_size, false, false, Augment::default(), &mut rng);
    let (mut x, mut y) = (Vec::new(), Vec::new());
    let (mut loss_sum, mut right, mut seen) = (0.0f64, 0usize, 0usize);
    no_grad(|| {
        while let Some(b) = batches.next_into(&mut x, &mut y) {
            let input = Tensor::from_vec(std::mem::take(&mut x), &batch_shape(data, b));
            let logits = model.forward(&input);
            loss_sum += logits.cross_entropy(&y).item() as f64 * b as f64;
            right += correct(&logits, &y);
            seen += b;
            drop(logits);
            x = std::mem::take(&mut *input.data_mut());
        }
    });
    model.set_training(true);
    (
        (loss_sum / seen.max(1) as f64) as f32,
        right as f32 / seen.max(1) as f32,
    )
}

/// SGD over every parameter of `model` with the recipe's momentum and weight decay.
pub fn sgd_for(model: &dyn Module, cfg: &TrainConfig) -> Sgd {
    let ps = parameters(model).into_iter().map(|(_, t)| t).collect();
    Sgd::new(ps, cfg.momentum, cfg.nesterov, cfg.weight_decay)
}
