//! The modules a choice point becomes: one chosen op (fixed network) or a mixed op over
//! every candidate (supernet), including the fused form for candidates that are linear
//! in the input.

use super::Reduce;
use crate::nn::{join, Kind, LinearForm, Module};
use crate::ops::ConvOpts;
use crate::tensor::Tensor;
use std::cell::{Cell, RefCell};

thread_local! {
    static BARE_GATES: Cell<bool> = const { Cell::new(false) };
    /// The supernet candidate whose tensors a `visit` of this thread is reporting.
    static CANDIDATE: RefCell<Option<(String, usize)>> = const { RefCell::new(None) };
    /// The armed tap of this thread: the point's name and what it last saw.
    static TAP: RefCell<Option<(String, Option<Tensor>)>> = const { RefCell::new(None) };
    /// The armed drop path of this thread: its probability and the generator of its
    /// masks.
    static DROP_PATH: RefCell<Option<(f32, crate::rng::Rng)>> = const { RefCell::new(None) };
}

/// Runs `f` (a training forward pass) with drop path armed at probability `prob`: each
/// cell edge's output (of the `darts` space's cells, where SNAS's reference drops them)
/// is zeroed for each image with probability `prob` and scaled by `1 / (1 - prob)`
/// otherwise, the masks drawn from a generator seeded with `seed` in the order the
/// edges run. Outside it, and at `prob` 0, edges are left alone.
pub fn with_drop_path<R>(prob: f32, seed: u64, f: impl FnOnce() -> R) -> R {
    /// Puts the outer arming back however `f` ends (a panic caught above included).
    struct Restore(Option<(f32, crate::rng::Rng)>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let outer = self.0.take();
            DROP_PATH.with(|c| c.replace(outer));
        }
    }
    let armed = (prob > 0.0).then(|| (prob, crate::rng::Rng::new(seed)));
    let _restore = Restore(DROP_PATH.with(|c| c.replace(armed)));
    f()
}

/// `x` (a batch, images first) with whole images dropped as [`with_drop_path`] armed,
/// or `x` itself when nothing is armed. The mask is made where `x` lives.
pub fn drop_path(x: &Tensor) -> Tensor {
    let draw = DROP_PATH.with(|c| {
        c.borrow_mut()
            .as_mut()
            .map(|(p, rng)| (*p, crate::rng::Rng::new(rng.next_u64())))
    });
    let Some((p, mut rng)) = draw else {
        return x.clone();
    };
    let mut shape = vec![1; x.rank()];
    shape[0] = x.dim(0);
    let ones = Tensor::zeros_beside(&shape, x).add_scalar(1.0);
    x.mul(&ones.dropout(p, &mut rng))
}

pub use nas_types::FEATURES;

/// Marks a tap point in a forward pass: `name` is a layer choice's label (every layer
/// choice marks its output) or [`FEATURES`]. Does nothing unless [`tapped`] armed that
/// name on this thread.
pub fn tap_point(name: &str, t: &Tensor) {
    TAP.with(|c| {
        if let Some((n, seen)) = c.borrow_mut().as_mut() {
            if n == name {
                *seen = Some(t.clone());
            }
        }
    })
}

/// Runs `f` (a forward pass) with the tap point `name` armed, and returns what the last
/// pass of that point in `f` produced (`None` when `f` never passed it): a block's
/// output for block-wise self-supervised training (BossNAS). The tensor keeps its graph,
/// so a loss on it back-propagates into the layers before the tap only.
pub fn tapped<R>(name: &str, f: impl FnOnce() -> R) -> (R, Option<Tensor>) {
    let outer = TAP.with(|c| c.replace(Some((name.to_string(), None))));
    let r = f();
    let seen = TAP.with(|c| std::mem::replace(&mut *c.borrow_mut(), outer));
    (r, seen.and_then(|(_, t)| t))
}

/// During a `Module::visit` of a supernet, the innermost layer-choice candidate the
/// tensor being reported belongs to: the choice's label and the candidate's index
/// (`None` outside every candidate: stems, heads, the cell's own layers). What lets a
/// host map each mixing weight to the tensors of its candidate (SMASH's generated
/// weights).
pub fn visiting_candidate() -> Option<(String, usize)> {
    CANDIDATE.with(|c| c.borrow().clone())
}

/// Runs `f` with every layer choice of this thread adding the mixing weight of each
/// candidate it does not compute (`+0.0`) to its output as a bare term, as GDAS's
/// reference adds an unchosen gate to a node's sum: the value is unchanged (the gates
/// are 0) and the candidate is still not computed, but its mixing weight's gradient is
/// the sum of the output's gradient instead of 0. Only the forward passes run inside
/// `f` build the term; a backward pass may run after.
pub fn with_bare_gates<R>(f: impl FnOnce() -> R) -> R {
    let old = BARE_GATES.with(|c| c.replace(true));
    let r = f();
    BARE_GATES.with(|c| c.set(old));
    r
}

/// A `LayerChoice` in a network: its candidates (one in a fixed network, all in a
/// supernet) and, in a supernet, the mixing weights given from outside.
pub struct LayerChoice {
    pub label: String,
    pub ops: Vec<(String, Box<dyn Module>)>,
    alpha: Option<Tensor>,
    fused: bool,
    /// The identity candidate's kernel as the fused op last used it (kept, so a device
    /// uploads it once rather than every step).
    identity: std::cell::RefCell<Option<Tensor>>,
}

impl LayerChoice {
    pub(crate) fn fixed(label: &str, name: String, op: Box<dyn Module>) -> LayerChoice {
        LayerChoice {
            label: label.to_string(),
            ops: vec![(name, op)],
            alpha: None,
            fused: false,
            identity: Default::default(),
        }
    }

    #[doc(hidden)]
    pub fn mixed(
        label: &str,
        ops: Vec<(String, Box<dyn Module>)>,
        alpha: Tensor,
        fused: bool,
    ) -> LayerChoice {
        LayerChoice {
            label: label.to_string(),
            ops,
            alpha: Some(alpha),
            fused,
            identity: Default::default(),
        }
    }

    /// Whether every active candidate has a linear form the fused kernel can fold.
    fn fusable(&self, active: &[usize]) -> Option<Vec<LinearForm>> {
        let forms: Option<Vec<LinearForm>> = active
            .iter()
            .map(|&i| self.ops[i].1.linear_form())
            .collect();
        let forms = forms?;
        let convs: Vec<&ConvOpts> = forms
            .iter()
            .filter_map(|f| match f {
                LinearForm::Conv { opts, .. } => Some(opts),
                _ => None,
            })
            .collect();
        let first = *convs.first()?;
        let same = convs
            .iter()
            .all(|o| o.stride == first.stride && o.groups == 1);
        let aligned = forms.iter().all(|f| match f {
            LinearForm::Conv { weight, opts, .. } => {
                let span = opts.dilation * (weight.dim(2) - 1) + 1;
                weight.dim(2) == weight.dim(3) && span % 2 == 1 && opts.padding == span / 2
            }
            LinearForm::Identity => first.stride == 1,
            LinearForm::Zero { stride } => *stride == first.stride,
        });
        (same && aligned).then_some(forms)
    }

    /// The mixed op as one convolution: `conv(x, sum_i a_i W_i) + sum_i a_i b_i`, with each
    /// kernel embedded at the largest span. Autodiff through the mixing gives the weight
    /// and mixing-weight gradients.
    fn fused_forward(
        &self,
        x: &Tensor,
        alpha: &Tensor,
        active: &[usize],
        forms: &[LinearForm],
    ) -> Tensor {
        let mut size = 1;
        let (mut cout, mut cin, mut stride) = (0, x.dim(1), 1);
        for f in forms {
            if let LinearForm::Conv { weight, opts, .. } = f {
                size = size.max(opts.dilation * (weight.dim(2) - 1) + 1);
                cout = weight.dim(0);
                cin = weight.dim(1);
                stride = opts.stride;
            }
        }
        let mut w: Option<Tensor> = None;
        let mut b: Option<Tensor> = None;
        let add = |acc: &mut Option<Tensor>, t: Tensor| {
            *acc = Some(match acc.take() {
                None => t,
                Some(a) => a.add(&t),
            })
        };
        for (&i, f) in active.iter().zip(forms) {
            let a = alpha.slice(0, i, 1);
            match f {
                LinearForm::Conv { weight, bias, opts } => {
                    add(&mut w, weight.embed_kernel(size, opts.dilation).mul(&a));
                    if let Some(bias) = bias {
                        add(&mut b, bias.mul(&a));
                    }
                }
                LinearForm::Identity => {
                    assert_eq!(
                        cin, cout,
                        "`{}`: identity candidate needs cin == cout",
                        self.label
                    );
                    let shape = [cout, cin, size, size];
                    let mut kept = self.identity.borrow_mut();
                    if kept.as_ref().is_none_or(|t| t.shape() != shape) {
                        let mut d = vec![0.0; cout * cin * size * size];
                        for c in 0..cout {
                            d[(c * cin + c) * size * size + (size / 2) * size + size / 2] = 1.0;
                        }
                        *kept = Some(Tensor::from_vec(d, &shape));
                    }
                    add(&mut w, kept.as_ref().unwrap().mul(&a));
                }
                LinearForm::Zero { .. } => {}
            }
        }
        let opts = ConvOpts {
            stride,
            padding: size / 2,
            ..Default::default()
        };
        x.conv2d(&w.expect("fused op has a conv candidate"), b.as_ref(), opts)
    }
}

impl LayerChoice {
    /// The weighted sum of the `active` candidates (fused into one convolution where
    /// they allow).
    fn mix(&self, x: &Tensor, alpha: &Tensor, active: &[usize]) -> Tensor {
        if self.fused && active.len() > 1 {
            if let Some(forms) = self.fusable(active) {
                return self.fused_forward(x, alpha, active, &forms);
            }
        }
        let ys: Vec<Tensor> = active.iter().map(|&i| self.ops[i].1.forward(x)).collect();
        for (y, &i) in ys.iter().zip(active) {
            assert_eq!(
                y.shape(),
                ys[0].shape(),
                "`{}`: candidate `{}` gives a different shape",
                self.label,
                self.ops[i].0
            );
        }
        Tensor::weighted_sum(&ys, alpha, active)
    }
}

impl LayerChoice {
    /// The choice's output without its tap point: the chosen op, or the mix of the
    /// candidates that are computed (with GDAS's bare gates when armed).
    fn choose(&self, x: &Tensor) -> Tensor {
        let Some(alpha) = &self.alpha else {
            return self.ops[0].1.forward(x);
        };
        let active: Vec<usize> = alpha
            .data()
            .iter()
            .enumerate()
            .filter(|(_, w)| super::computed(**w))
            .map(|(i, _)| i)
            .collect();
        assert!(
            !active.is_empty(),
            "`{}`: every mixing weight is zero",
            self.label
        );
        super::cost::profile_candidates(&self.label, &self.ops, x);
        let y = self.mix(x, alpha, &active);
        if !BARE_GATES.with(|c| c.get()) {
            return y;
        }
        let off: Vec<usize> = (0..self.ops.len())
            .filter(|i| !active.contains(i))
            .collect();
        if off.is_empty() {
            return y;
        }
        // One bare term for all the gates: a shape-[1] sum broadcast over the output,
        // whose gradient rule sums the output's gradient into each gate.
        let gates = off
            .iter()
            .map(|&i| alpha.slice(0, i, 1))
            .reduce(|a, b| a.add(&b))
            .expect("a candidate is off");
        y.add(&gates)
    }
}

impl Module for LayerChoice {
    fn forward(&self, x: &Tensor) -> Tensor {
        let y = self.choose(x);
        tap_point(&self.label, &y);
        y
    }
    fn visit(&self, p: &str, f: &mut dyn FnMut(String, &Tensor, Kind)) {
        for (i, (n, op)) in self.ops.iter().enumerate() {
            if self.alpha.is_none() {
                op.visit(&join(p, n), f);
                continue;
            }
            let outer = CANDIDATE.with(|c| c.replace(Some((self.label.clone(), i))));
            op.visit(&join(p, n), f);
            CANDIDATE.with(|c| *c.borrow_mut() = outer);
        }
    }
    fn set_training(&self, t: bool) {
        self.ops.iter().for_each(|(_, o)| o.set_training(t));
    }
    fn linear_form(&self) -> Option<LinearForm> {
        if self.alpha.is_none() {
            self.ops[0].1.linear_form()
        } else {
            None
        }
    }
}

/// An `InputChoice` in a network: the chosen inputs (fixed) or all inputs weighted by the
/// mixing weights (supernet), combined by `reduce`.
pub struct InputChoice {
    pub label: String,
    pub chosen: Vec<usize>,
    pub reduce: Reduce,
    alpha: Option<Tensor>,
    n_candidates: usize,
}

impl InputChoice {
    pub(crate) fn fixed(label: &str, chosen: Vec<usize>, reduce: Reduce) -> InputChoice {
        let n = chosen.iter().max().map_or(0, |m| m + 1);
        InputChoice {
            label: label.to_string(),
            chosen,
            reduce,
            alpha: None,
            n_candidates: n,
        }
    }
    #[doc(hidden)]
    pub fn mixed(label: &str, n: usize, reduce: Reduce, alpha: Tensor) -> InputChoice {
        InputChoice {
            label: label.to_string(),
            chosen: (0..n).collect(),
            reduce,
            alpha: Some(alpha),
            n_candidates: n,
        }
    }

    /// The candidates the next `forward` reads: the chosen ones in a fixed network, those
    /// with a non-zero mixing weight in a supernet. A space need not compute the others
    /// (any tensor can stand in for them).
    pub fn active(&self) -> Vec<usize> {
        match &self.alpha {
            None => self.chosen.clone(),
            Some(a) => {
                let w = a.data();
                (0..self.n_candidates)
                    .filter(|&i| super::computed(w[i]))
                    .collect()
            }
        }
    }

    /// Combines the chosen inputs among `xs` (all candidates, in order).
    pub fn forward(&self, xs: &[Tensor]) -> Tensor {
        assert!(
            xs.len() >= self.n_candidates,
            "`{}`: {} inputs given, {} candidates",
            self.label,
            xs.len(),
            self.n_candidates
        );
        if let (Some(a), Reduce::Sum | Reduce::Mean) = (&self.alpha, self.reduce) {
            let w = a.to_vec();
            let idx: Vec<usize> = (0..self.n_candidates)
                .filter(|&i| super::computed(w[i]))
                .collect();
            assert!(
                !idx.is_empty(),
                "`{}`: every mixing weight is zero",
                self.label
            );
            let picked: Vec<Tensor> = idx.iter().map(|&i| xs[i].clone()).collect();
            let s = Tensor::weighted_sum(&picked, a, &idx);
            return if self.reduce == Reduce::Mean && idx.len() > 1 {
                s.mul_scalar(1.0 / idx.len() as f32)
            } else {
                s
            };
        }
        let picked: Vec<Tensor> = match &self.alpha {
            None => self.chosen.iter().map(|&i| xs[i].clone()).collect(),
            Some(a) => {
                let w = a.to_vec();
                (0..self.n_candidates)
                    .filter(|&i| super::computed(w[i]))
                    .map(|i| xs[i].mul(&a.slice(0, i, 1)))
                    .collect()
            }
        };
        assert!(!picked.is_empty(), "`{}`: no input chosen", self.label);
        match self.reduce {
            Reduce::Concat => Tensor::concat(&picked, 1),
            Reduce::Sum | Reduce::Mean => {
                let n = picked.len();
                let mut it = picked.into_iter();
                let first = it.next().unwrap();
                let s = it.fold(first, |acc, t| acc.add(&t));
                if self.reduce == Reduce::Mean && n > 1 {
                    s.mul_scalar(1.0 / n as f32)
                } else {
                    s
                }
            }
        }
    }
}
