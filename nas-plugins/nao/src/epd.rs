//! NAO's encoder, predictor and decoder (Luo et al., 2018), on nas-core's autodiff.
//!
//! - Encoder: each choice's option is a token ([`Tokens`]: layer choices with the same
//!   candidates share tokens); an embedding table and one LSTM read the sequence in
//!   definition order. Each step's output is scaled to unit length; the architecture's
//!   embedding is the mean of those outputs, scaled to unit length again.
//! - Predictor: `mlp_layers` ReLU layers (0 by default, as in the reference) and a
//!   linear layer with a sigmoid: the embedding's predicted accuracy, on targets
//!   min-max scaled to [0, 1].
//! - Decoder: one LSTM whose hidden and cell states start at the embedding. Step `t`
//!   reads the previous decision's token (a start token first), attends over the
//!   encoder's outputs (dot-product scores, softmax, the weighted mix joined with the
//!   LSTM output through a tanh layer) and scores choice `t`'s options. Training feeds
//!   the true previous decision (teacher forcing); decoding takes the best option.
//!
//! The loss is `trade_off * MSE + (1 - trade_off) * NLL` (NLL averaged over decisions),
//! minimised by Adam with gradient-norm clipping. [`Epd::ascend`] gives each seed's
//! encoder outputs and the predictor's gradient with respect to them; [`Epd::decode_moved`]
//! moves the outputs by `step` times that gradient, rebuilds the embedding from them as
//! the encoder does, and decodes.

use nas_core::optim::{clip_grad_norm, Adam, Optimizer};
use nas_core::{no_grad, Rng, Tensor};
use nas_predict::Tokens;
use nas_strategies::Choice;
use std::ops::Range;

/// The model's sizes and training settings.
#[derive(Clone, Debug, PartialEq)]
pub struct EpdConfig {
    /// Token embedding width (encoder).
    pub emb: usize,
    /// LSTM width of encoder and decoder (the embedding's width).
    pub hidden: usize,
    pub mlp_layers: usize,
    pub mlp_hidden: usize,
    /// Weight of the prediction loss; the reconstruction loss has `1 - trade_off`.
    pub trade_off: f32,
    pub lr: f32,
    /// Minibatch size of training.
    pub batch: usize,
    /// Gradient-norm bound (0: none).
    pub grad_clip: f32,
    /// L2 weight decay of Adam (added to the gradient, as PyTorch's `weight_decay`).
    pub weight_decay: f32,
}

/// Weights start uniform in ±INIT (the reference TensorFlow code's initialiser).
const INIT: f32 = 0.1;

struct Lstm {
    w: Tensor,
    b: Tensor,
}

impl Lstm {
    fn new(input: usize, hidden: usize, rng: &mut Rng) -> Lstm {
        Lstm {
            w: uniform(&[4 * hidden, input + hidden], rng),
            b: Tensor::parameter(vec![0.0; 4 * hidden], &[4 * hidden]),
        }
    }
    fn step(&self, x: &Tensor, h: &Tensor, c: &Tensor) -> (Tensor, Tensor) {
        let hd = h.dim(1);
        let gates = Tensor::concat(&[x.clone(), h.clone()], 1).linear(&self.w, Some(&self.b));
        let i = gates.slice(1, 0, hd).sigmoid();
        let f = gates.slice(1, hd, hd).sigmoid();
        let g = gates.slice(1, 2 * hd, hd).tanh();
        let o = gates.slice(1, 3 * hd, hd).sigmoid();
        let c = f.mul(c).add(&i.mul(&g));
        let h = o.mul(&c.tanh());
        (h, c)
    }
}

fn uniform(shape: &[usize], rng: &mut Rng) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::parameter(
        (0..n).map(|_| rng.uniform_range(-INIT, INIT)).collect(),
        shape,
    )
}

/// `[rows, n]` one-hot rows of `ids`.
fn one_hot(ids: &[usize], n: usize) -> Tensor {
    let mut v = vec![0.0; ids.len() * n];
    for (r, &i) in ids.iter().enumerate() {
        v[r * n + i] = 1.0;
    }
    Tensor::from_vec(v, &[ids.len(), n])
}

/// `x` scaled to unit length along its last axis.
fn unit(x: &Tensor) -> Tensor {
    let last = x.rank() - 1;
    let norm = x
        .mul(x)
        .sum_axes(&[last], true)
        .add_scalar(1e-12)
        .log()
        .mul_scalar(0.5)
        .exp();
    x.div(&norm)
}

/// Encoder, predictor and decoder.
pub struct Epd {
    cfg: EpdConfig,
    tokens: Tokens,
    ranges: Vec<Range<usize>>,
    enc_embed: Tensor,
    enc: Lstm,
    mlp: Vec<(Tensor, Tensor)>,
    dec_embed: Tensor,
    dec: Lstm,
    att_w: Tensor,
    att_b: Tensor,
    out_w: Tensor,
    out_b: Tensor,
}

/// The seeds' encoder outputs and the predictor's gradient with respect to them, each
/// `[seeds, choices, hidden]`, flat.
pub struct Ascent {
    pub seeds: usize,
    pub outputs: Vec<f32>,
    pub grad: Vec<f32>,
    /// The seeds' predicted (scaled) accuracy.
    pub predicted: Vec<f32>,
}

impl Epd {
    pub fn new(space: &[Choice], cfg: EpdConfig, rng: &mut Rng) -> Epd {
        let tokens = Tokens::new(space);
        let ranges = (0..space.len()).map(|i| tokens.range(i)).collect();
        let (v, h) = (tokens.len(), cfg.hidden);
        let enc_embed = uniform(&[v, cfg.emb], rng);
        let enc = Lstm::new(cfg.emb, h, rng);
        let mut mlp = vec![];
        let mut width = h;
        for _ in 0..cfg.mlp_layers {
            mlp.push((
                uniform(&[cfg.mlp_hidden, width], rng),
                Tensor::parameter(vec![0.0; cfg.mlp_hidden], &[cfg.mlp_hidden]),
            ));
            width = cfg.mlp_hidden;
        }
        mlp.push((
            uniform(&[1, width], rng),
            Tensor::parameter(vec![0.0], &[1]),
        ));
        // The decoder's tokens: the encoder's and a start token (the last).
        let dec_embed = uniform(&[v + 1, h], rng);
        let dec = Lstm::new(h, h, rng);
        let att_w = uniform(&[h, 2 * h], rng);
        let att_b = Tensor::parameter(vec![0.0; h], &[h]);
        let out_w = uniform(&[v, h], rng);
        let out_b = Tensor::parameter(vec![0.0; v], &[v]);
        Epd {
            cfg,
            tokens,
            ranges,
            enc_embed,
            enc,
            mlp,
            dec_embed,
            dec,
            att_w,
            att_b,
            out_w,
            out_b,
        }
    }

    pub fn config(&self) -> &EpdConfig {
        &self.cfg
    }

    pub fn params(&self) -> Vec<Tensor> {
        let mut p = vec![
            self.enc_embed.clone(),
            self.enc.w.clone(),
            self.enc.b.clone(),
        ];
        for (w, b) in &self.mlp {
            p.push(w.clone());
            p.push(b.clone());
        }
        p.extend([
            self.dec_embed.clone(),
            self.dec.w.clone(),
            self.dec.b.clone(),
            self.att_w.clone(),
            self.att_b.clone(),
            self.out_w.clone(),
            self.out_b.clone(),
        ]);
        p
    }

    /// Every weight, tensor by tensor (for saving).
    pub fn weights(&self) -> Vec<Vec<f32>> {
        self.params().iter().map(|p| p.to_vec()).collect()
    }

    /// Restores [`Epd::weights`]; an error when they do not fit this model or are not
    /// finite.
    pub fn set_weights(&self, w: &[Vec<f32>]) -> Result<(), String> {
        let params = self.params();
        if w.len() != params.len() {
            return Err(format!(
                "the saved model has {} weight tensors, this one {} (another space or \
                 `mlp_layers`?)",
                w.len(),
                params.len()
            ));
        }
        for (i, (p, v)) in params.iter().zip(w).enumerate() {
            if p.numel() != v.len() {
                return Err(format!(
                    "saved weight tensor {i} has {} values, the model needs {} (another \
                     space, `emb`, `hidden` or `mlp_hidden`?)",
                    v.len(),
                    p.numel()
                ));
            }
            if v.iter().any(|x| !x.is_finite()) {
                return Err(format!("saved weight tensor {i} is not finite"));
            }
        }
        for (p, v) in params.iter().zip(w) {
            p.data_mut().copy_from_slice(v);
        }
        Ok(())
    }

    /// The encoder's outputs, `[rows, choices, hidden]`, each of unit length.
    fn encode(&self, rows: &[Vec<usize>]) -> Tensor {
        let (b, h) = (rows.len(), self.cfg.hidden);
        let seqs: Vec<Vec<usize>> = rows.iter().map(|d| self.tokens.sequence(d)).collect();
        let mut hs = Tensor::zeros(&[b, h]);
        let mut cs = Tensor::zeros(&[b, h]);
        let mut outs = vec![];
        for t in 0..self.ranges.len() {
            let ids: Vec<usize> = seqs.iter().map(|s| s[t]).collect();
            let x = one_hot(&ids, self.tokens.len()).matmul(&self.enc_embed);
            (hs, cs) = self.enc.step(&x, &hs, &cs);
            outs.push(unit(&hs).reshape(&[b, 1, h]));
        }
        Tensor::concat(&outs, 1)
    }

    /// The architecture embedding of encoder outputs: their mean, of unit length.
    fn embed(outputs: &Tensor) -> Tensor {
        unit(&outputs.mean_axes(&[1], false))
    }

    /// The predictor on embeddings: `[rows, 1]` in (0, 1).
    fn predictor(&self, emb: &Tensor) -> Tensor {
        let mut x = emb.clone();
        let last = self.mlp.len() - 1;
        for (i, (w, b)) in self.mlp.iter().enumerate() {
            x = x.linear(w, Some(b));
            x = if i < last { x.relu() } else { x.sigmoid() };
        }
        x
    }

    /// One decoder step: the log-probabilities of choice `t`'s options, `[rows, size]`.
    fn decode_step(
        &self,
        t: usize,
        prev: &[usize],
        state: (Tensor, Tensor),
        ctx: &Tensor,
    ) -> (Tensor, (Tensor, Tensor)) {
        let (b, h) = (prev.len(), self.cfg.hidden);
        let x = one_hot(prev, self.tokens.len() + 1).matmul(&self.dec_embed);
        let (hs, cs) = self.dec.step(&x, &state.0, &state.1);
        // Dot-product attention over the encoder's outputs.
        let scores = hs.reshape(&[b, 1, h]).mul(ctx).sum_axes(&[2], false);
        let attn = scores.softmax();
        let l = ctx.dim(1);
        let mix = attn.reshape(&[b, l, 1]).mul(ctx).sum_axes(&[1], false);
        let joined = Tensor::concat(&[mix, hs.clone()], 1)
            .linear(&self.att_w, Some(&self.att_b))
            .tanh();
        let r = &self.ranges[t];
        let logits = joined.linear(
            &self.out_w.slice(0, r.start, r.len()),
            Some(&self.out_b.slice(0, r.start, r.len())),
        );
        (logits.log_softmax(), (hs, cs))
    }

    /// The start token's id in the decoder's vocabulary.
    fn start(&self) -> usize {
        self.tokens.len()
    }

    /// Mean negative log-likelihood of `rows` decoded from `ctx` and `emb` (teacher
    /// forcing).
    fn reconstruction(&self, rows: &[Vec<usize>], ctx: &Tensor, emb: &Tensor) -> Tensor {
        let mut state = (emb.clone(), emb.clone());
        let mut prev = vec![self.start(); rows.len()];
        let mut total: Option<Tensor> = None;
        for t in 0..self.ranges.len() {
            let (logp, s) = self.decode_step(t, &prev, state, ctx);
            state = s;
            let targets: Vec<u32> = rows.iter().map(|d| d[t] as u32).collect();
            let nll = logp.nll_loss(&targets);
            total = Some(match total {
                None => nll,
                Some(x) => x.add(&nll),
            });
            prev = rows.iter().map(|d| self.ranges[t].start + d[t]).collect();
        }
        total
            .expect("a space with choices")
            .mul_scalar(1.0 / self.ranges.len() as f32)
    }

    /// Greedy decoding from encoder outputs and embeddings.
    fn decode(&self, ctx: &Tensor, emb: &Tensor) -> Vec<Vec<usize>> {
        let b = emb.dim(0);
        let mut state = (emb.clone(), emb.clone());
        let mut prev = vec![self.start(); b];
        let mut out = vec![Vec::with_capacity(self.ranges.len()); b];
        for t in 0..self.ranges.len() {
            let (logp, s) = self.decode_step(t, &prev, state, ctx);
            state = s;
            let lp = logp.to_vec();
            let size = self.ranges[t].len();
            for (r, row) in out.iter_mut().enumerate() {
                let scores = &lp[r * size..(r + 1) * size];
                let best = (0..size)
                    .max_by(|&a, &c| scores[a].total_cmp(&scores[c]).then(c.cmp(&a)))
                    .unwrap();
                row.push(best);
                prev[r] = self.ranges[t].start + best;
            }
        }
        out
    }

    /// Trains on `data` (decision vectors and targets in [0, 1]) for `epochs` passes of
    /// shuffled minibatches, with a fresh Adam (as the reference makes one per round);
    /// returns the last epoch's mean prediction and reconstruction losses.
    pub fn train(&self, data: &[(Vec<usize>, f32)], epochs: usize, rng: &mut Rng) -> (f32, f32) {
        let params = self.params();
        let mut opt = Adam::new(params.clone(), self.cfg.weight_decay, false);
        let mut order: Vec<usize> = (0..data.len()).collect();
        let (mut mse_sum, mut nll_sum, mut batches) = (0.0, 0.0, 0);
        for _ in 0..epochs {
            rng.shuffle(&mut order);
            (mse_sum, nll_sum, batches) = (0.0, 0.0, 0);
            for chunk in order.chunks(self.cfg.batch.max(1)) {
                let rows: Vec<Vec<usize>> = chunk.iter().map(|&i| data[i].0.clone()).collect();
                let y =
                    Tensor::from_vec(chunk.iter().map(|&i| data[i].1).collect(), &[rows.len(), 1]);
                let ctx = self.encode(&rows);
                let emb = Self::embed(&ctx);
                let d = self.predictor(&emb).sub(&y);
                let mse = d.mul(&d).mean();
                let nll = self.reconstruction(&rows, &ctx, &emb);
                let loss = mse
                    .mul_scalar(self.cfg.trade_off)
                    .add(&nll.mul_scalar(1.0 - self.cfg.trade_off));
                opt.zero_grad();
                loss.backward();
                if self.cfg.grad_clip > 0.0 {
                    clip_grad_norm(&params, self.cfg.grad_clip);
                }
                opt.step(self.cfg.lr);
                mse_sum += mse.item();
                nll_sum += nll.item();
                batches += 1;
            }
        }
        opt.zero_grad();
        let n = batches.max(1) as f32;
        (mse_sum / n, nll_sum / n)
    }

    /// The predicted (scaled) accuracy of each row.
    pub fn predict(&self, rows: &[Vec<usize>]) -> Vec<f32> {
        if rows.is_empty() {
            return vec![];
        }
        no_grad(|| self.predictor(&Self::embed(&self.encode(rows))).to_vec())
    }

    /// What each row decodes to from its own embedding (the autoencoder's round trip).
    pub fn reconstruct(&self, rows: &[Vec<usize>]) -> Vec<Vec<usize>> {
        if rows.is_empty() {
            return vec![];
        }
        no_grad(|| {
            let ctx = self.encode(rows);
            self.decode(&ctx, &Self::embed(&ctx))
        })
    }

    /// The seeds' encoder outputs and the gradient of their predicted accuracy with
    /// respect to them.
    pub fn ascend(&self, seeds: &[Vec<usize>]) -> Ascent {
        let outputs = no_grad(|| self.encode(seeds)).to_vec();
        let shape = [seeds.len(), self.ranges.len(), self.cfg.hidden];
        let leaf = Tensor::parameter(outputs.clone(), &shape);
        let pred = self.predictor(&Self::embed(&leaf));
        let predicted = pred.to_vec();
        pred.sum().backward();
        let grad = leaf.grad().unwrap_or_else(|| vec![0.0; outputs.len()]);
        for p in self.params() {
            p.zero_grad();
        }
        Ascent {
            seeds: seeds.len(),
            outputs,
            grad,
            predicted,
        }
    }

    /// The seeds of `a` moved by `step` times the gradient (each output scaled back to
    /// unit length, the embedding rebuilt from them), decoded.
    pub fn decode_moved(&self, a: &Ascent, step: f32) -> Vec<Vec<usize>> {
        if a.seeds == 0 {
            return vec![];
        }
        let moved: Vec<f32> = a
            .outputs
            .iter()
            .zip(&a.grad)
            .map(|(o, g)| o + step * g)
            .collect();
        let shape = [a.seeds, self.ranges.len(), self.cfg.hidden];
        no_grad(|| {
            let ctx = unit(&Tensor::from_vec(moved, &shape));
            self.decode(&ctx, &Self::embed(&ctx))
        })
    }
}
