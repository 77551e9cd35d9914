//! Layers: the building blocks of networks, each a `Module` that owns its parameters.

use crate::ops::ConvOpts;
use crate::rng::Rng;
use crate::tensor::{no_grad, Tensor};
use std::cell::{Cell, RefCell};

/// Whether a tensor a module holds is trained or is state (running statistics).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Parameter,
    Buffer,
}

/// A network or a piece of one.
pub trait Module {
    fn forward(&self, x: &Tensor) -> Tensor;
    /// Visits every named tensor this module holds (parameters and buffers), with names
    /// like `conv1.weight`.
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor, Kind));
    /// Switches training behaviour (batch statistics, dropout) on or off.
    fn set_training(&self, _training: bool) {}
    /// The op as a linear map of its input, if it is one: what lets a mixed op fold its
    /// candidates into a single convolution.
    fn linear_form(&self) -> Option<LinearForm> {
        None
    }
}

/// A module that is linear in its input.
#[derive(Clone)]
pub enum LinearForm {
    Conv {
        weight: Tensor,
        bias: Option<Tensor>,
        opts: ConvOpts,
    },
    Identity,
    /// Zeros, spatially strided.
    Zero {
        stride: usize,
    },
}

/// Joins a prefix and a name with a dot.
pub fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// All trainable parameters of a module, with their names.
pub fn parameters(m: &dyn Module) -> Vec<(String, Tensor)> {
    let mut v = vec![];
    m.visit("", &mut |n, t, k| {
        if k == Kind::Parameter {
            v.push((n, t.clone()))
        }
    });
    v
}

/// Every named tensor (parameters and buffers).
pub fn state(m: &dyn Module) -> Vec<(String, Tensor)> {
    let mut v = vec![];
    m.visit("", &mut |n, t, _| v.push((n, t.clone())));
    v
}

/// Every buffer (batch-norm running statistics), in visiting order.
pub fn buffers(m: &dyn Module) -> Vec<Tensor> {
    let mut v = vec![];
    m.visit("", &mut |_, t, k| {
        if k == Kind::Buffer {
            v.push(t.clone())
        }
    });
    v
}

pub fn num_parameters(m: &dyn Module) -> usize {
    parameters(m).iter().map(|(_, t)| t.numel()).sum()
}

/// PyTorch's default initialisation (Kaiming-uniform with a = sqrt(5)): uniform in
/// +-1/sqrt(fan_in), for weights and biases alike.
fn default_init(shape: &[usize], fan_in: usize, rng: &mut Rng) -> Tensor {
    let bound = 1.0 / (fan_in as f32).sqrt();
    // From the buffer pool, where a dropped network's parameters go: a search that builds
    // a network per trial reuses the last one's buffers instead of growing the pool.
    let mut d = crate::buffer::take(shape.iter().product());
    d.iter_mut()
        .for_each(|v| *v = rng.uniform_range(-bound, bound));
    Tensor::parameter(d, shape)
}

/// Kaiming-normal initialisation for ReLU networks: N(0, 2/fan_in).
pub fn kaiming_normal(shape: &[usize], fan_in: usize, rng: &mut Rng) -> Tensor {
    let std = (2.0 / fan_in as f32).sqrt();
    let mut d = crate::buffer::take(shape.iter().product());
    d.iter_mut().for_each(|v| *v = rng.normal() * std);
    Tensor::parameter(d, shape)
}

pub struct Conv2d {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    pub opts: ConvOpts,
}

impl Conv2d {
    /// A convolution with bias (PyTorch's default).
    pub fn new(cin: usize, cout: usize, k: usize, opts: ConvOpts, rng: &mut Rng) -> Conv2d {
        Conv2d::build(cin, cout, k, opts, true, rng)
    }
    pub fn no_bias(cin: usize, cout: usize, k: usize, opts: ConvOpts, rng: &mut Rng) -> Conv2d {
        Conv2d::build(cin, cout, k, opts, false, rng)
    }
    fn build(cin: usize, cout: usize, k: usize, o: ConvOpts, bias: bool, rng: &mut Rng) -> Conv2d {
        assert!(
            o.groups > 0 && cin % o.groups == 0 && cout % o.groups == 0,
            "conv {cin}->{cout} with {} groups",
            o.groups
        );
        let fan_in = cin / o.groups * k * k;
        let weight = default_init(&[cout, cin / o.groups, k, k], fan_in, rng);
        let bias = bias.then(|| default_init(&[cout], fan_in, rng));
        Conv2d {
            weight,
            bias,
            opts: o,
        }
    }
}

impl Module for Conv2d {
    fn forward(&self, x: &Tensor) -> Tensor {
        x.conv2d(&self.weight, self.bias.as_ref(), self.opts)
    }
    fn linear_form(&self) -> Option<LinearForm> {
        Some(LinearForm::Conv {
            weight: self.weight.clone(),
            bias: self.bias.clone(),
            opts: self.opts,
        })
    }
    fn visit(&self, p: &str, f: &mut dyn FnMut(String, &Tensor, Kind)) {
        f(join(p, "weight"), &self.weight, Kind::Parameter);
        if let Some(b) = &self.bias {
            f(join(p, "bias"), b, Kind::Parameter);
        }
    }
}

pub struct Linear {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
}

impl Linear {
    pub fn new(nin: usize, nout: usize, rng: &mut Rng) -> Linear {
        let weight = default_init(&[nout, nin], nin, rng);
        let bias = Some(default_init(&[nout], nin, rng));
        Linear { weight, bias }
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Tensor {
        x.linear(&self.weight, self.bias.as_ref())
    }
    fn visit(&self, p: &str, f: &mut dyn FnMut(String, &Tensor, Kind)) {
        f(join(p, "weight"), &self.weight, Kind::Parameter);
        if let Some(b) = &self.bias {
            f(join(p, "bias"), b, Kind::Parameter);
        }
    }
}

/// Batch normalisation over the channels of NCHW input, with running statistics for eval.
pub struct BatchNorm2d {
    pub weight: Tensor,
    pub bias: Tensor,
    pub running_mean: Tensor,
    pub running_var: Tensor,
    pub momentum: f32,
    pub eps: f32,
    pub affine: bool,
    training: Cell<bool>,
}

impl BatchNorm2d {
    pub fn new(c: usize) -> BatchNorm2d {
        BatchNorm2d::with_affine(c, true)
    }
    /// `affine = false` fixes gamma = 1 and beta = 0 (as DARTS search cells do).
    pub fn with_affine(c: usize, affine: bool) -> BatchNorm2d {
        let mk = |v: f32| {
            if affine {
                let mut d = crate::buffer::take(c);
                d.fill(v);
                Tensor::parameter(d, &[c])
            } else {
                Tensor::full(&[c], v)
            }
        };
        BatchNorm2d {
            weight: mk(1.0),
            bias: mk(0.0),
            running_mean: Tensor::zeros(&[c]),
            running_var: Tensor::full(&[c], 1.0),
            momentum: 0.1,
            eps: 1e-5,
            affine,
            training: Cell::new(true),
        }
    }
}

thread_local! {
    static BN_MOMENTUM: Cell<Option<f32>> = const { Cell::new(None) };
}

/// Runs `f` with every batch norm of this thread updating its running statistics with
/// momentum `m` instead of its own (`1/k` on the k-th batch gives the plain average of
/// the batches' statistics, as when recalibrating a supernet path).
pub fn with_bn_momentum<R>(m: f32, f: impl FnOnce() -> R) -> R {
    let old = BN_MOMENTUM.with(|c| c.replace(Some(m)));
    let r = f();
    BN_MOMENTUM.with(|c| c.set(old));
    r
}

impl Module for BatchNorm2d {
    fn forward(&self, x: &Tensor) -> Tensor {
        if self.training.get() {
            let (y, mean, invstd) = x.batch_norm_train(&self.weight, &self.bias, self.eps);
            let s = x.shape();
            self.running_mean.update_running_stats(
                &self.running_var,
                s[0] * s[2] * s[3],
                &mean,
                &invstd,
                self.eps,
                BN_MOMENTUM.with(|m| m.get()).unwrap_or(self.momentum),
            );
            y
        } else if x.on_device() && !(self.affine && crate::tensor::grad_enabled()) {
            // Eval mode is an affine map per channel: y = x * scale + shift, with scale
            // and shift made where the running statistics live (nothing read back).
            // 1/sqrt(v + eps) as exp(-log(v + eps) / 2), from the device's unary ops;
            // without affine, gamma = 1 and beta = 0 are not read at all.
            let c = x.dim(1);
            let (scale, shift) = crate::tensor::no_grad(|| {
                let log = self.running_var.add_scalar(self.eps).log();
                let inv = log.mul_scalar(-0.5).exp();
                let (scale, shift) = if self.affine {
                    let scale = inv.mul(&self.weight);
                    let shift = self.bias.sub(&self.running_mean.mul(&scale));
                    (scale, shift)
                } else {
                    let shift = self.running_mean.mul(&inv).mul_scalar(-1.0);
                    (inv, shift)
                };
                (scale.reshape(&[1, c, 1, 1]), shift.reshape(&[1, c, 1, 1]))
            });
            x.mul(&scale).add(&shift)
        } else {
            // Eval mode is an affine map per channel: y = x * scale + shift.
            let c = x.dim(1);
            let (rm, rv) = (self.running_mean.data(), self.running_var.data());
            let (g, b) = (self.weight.data(), self.bias.data());
            let scale: Vec<f32> = (0..c).map(|i| g[i] / (rv[i] + self.eps).sqrt()).collect();
            let shift: Vec<f32> = (0..c).map(|i| b[i] - rm[i] * scale[i]).collect();
            drop((rm, rv, g, b));
            let st = Tensor::from_vec(scale, &[1, c, 1, 1]);
            let sh = Tensor::from_vec(shift, &[1, c, 1, 1]);
            if self.affine && crate::tensor::grad_enabled() {
                // Keep the graph to gamma/beta when someone differentiates through eval.
                let inv: Vec<f32> = {
                    let rv = self.running_var.data();
                    rv.iter().map(|v| 1.0 / (v + self.eps).sqrt()).collect()
                };
                let mean = Tensor::from_vec(self.running_mean.to_vec(), &[1, c, 1, 1]);
                let inv = Tensor::from_vec(inv, &[1, c, 1, 1]);
                let g = self.weight.reshape(&[1, c, 1, 1]);
                let b = self.bias.reshape(&[1, c, 1, 1]);
                return x.sub(&mean).mul(&inv).mul(&g).add(&b);
            }
            x.mul(&st).add(&sh)
        }
    }
    fn visit(&self, p: &str, f: &mut dyn FnMut(String, &Tensor, Kind)) {
        if self.affine {
            f(join(p, "weight"), &self.weight, Kind::Parameter);
            f(join(p, "bias"), &self.bias, Kind::Parameter);
        }
        f(join(p, "running_mean"), &self.running_mean, Kind::Buffer);
        f(join(p, "running_var"), &self.running_var, Kind::Buffer);
    }
    fn set_training(&self, t: bool) {
        self.training.set(t);
    }
}

pub struct ReLU;
impl Module for ReLU {
    fn forward(&self, x: &Tensor) -> Tensor {
        x.relu()
    }
    fn visit(&self, _: &str, _: &mut dyn FnMut(String, &Tensor, Kind)) {}
}

pub struct Identity;
impl Module for Identity {
    fn forward(&self, x: &Tensor) -> Tensor {
        x.clone()
    }
    fn linear_form(&self) -> Option<LinearForm> {
        Some(LinearForm::Identity)
    }
    fn visit(&self, _: &str, _: &mut dyn FnMut(String, &Tensor, Kind)) {}
}

/// The `none` op of cell spaces: zeros, spatially strided like the op it replaces.
pub struct Zero {
    pub stride: usize,
}
impl Module for Zero {
    fn forward(&self, x: &Tensor) -> Tensor {
        let s = x.shape();
        let (h, w) = (s[2].div_ceil(self.stride), s[3].div_ceil(self.stride));
        // A constant: its gradient with respect to x is zero, so nothing flows back. It is
        // made where x lives, so a device step uploads no zeros.
        Tensor::zeros_beside(&[s[0], s[1], h, w], x)
    }
    fn linear_form(&self) -> Option<LinearForm> {
        Some(LinearForm::Zero {
            stride: self.stride,
        })
    }
    fn visit(&self, _: &str, _: &mut dyn FnMut(String, &Tensor, Kind)) {}
}

pub struct MaxPool2d {
    pub k: usize,
    pub stride: usize,
    pub padding: usize,
}
impl Module for MaxPool2d {
    fn forward(&self, x: &Tensor) -> Tensor {
        x.max_pool2d(self.k, self.stride, self.padding)
    }
    fn visit(&self, _: &str, _: &mut dyn FnMut(String, &Tensor, Kind)) {}
}

pub struct AvgPool2d {
    pub k: usize,
    pub stride: usize,
    pub padding: usize,
    pub count_include_pad: bool,
}
impl Module for AvgPool2d {
    fn forward(&self, x: &Tensor) -> Tensor {
        x.avg_pool2d(self.k, self.stride, self.padding, self.count_include_pad)
    }
    fn visit(&self, _: &str, _: &mut dyn FnMut(String, &Tensor, Kind)) {}
}

pub struct AdaptiveAvgPool2d {
    pub out: (usize, usize),
}
impl Module for AdaptiveAvgPool2d {
    fn forward(&self, x: &Tensor) -> Tensor {
        x.adaptive_avg_pool2d(self.out.0, self.out.1)
    }
    fn visit(&self, _: &str, _: &mut dyn FnMut(String, &Tensor, Kind)) {}
}

pub struct Dropout {
    pub p: f32,
    rng: RefCell<Rng>,
    training: Cell<bool>,
}
impl Dropout {
    pub fn new(p: f32, rng: &mut Rng) -> Dropout {
        Dropout {
            p,
            rng: RefCell::new(rng.fork()),
            training: Cell::new(true),
        }
    }
}
impl Module for Dropout {
    fn forward(&self, x: &Tensor) -> Tensor {
        if self.training.get() {
            x.dropout(self.p, &mut self.rng.borrow_mut())
        } else {
            x.clone()
        }
    }
    fn visit(&self, _: &str, _: &mut dyn FnMut(String, &Tensor, Kind)) {}
    fn set_training(&self, t: bool) {
        self.training.set(t);
    }
}

/// Modules applied one after another; children are named by their index.
#[derive(Default)]
pub struct Sequential {
    pub layers: Vec<Box<dyn Module>>,
}
impl Sequential {
    pub fn new(layers: Vec<Box<dyn Module>>) -> Sequential {
        Sequential { layers }
    }
}
impl Module for Sequential {
    fn forward(&self, x: &Tensor) -> Tensor {
        let mut y = x.clone();
        for l in &self.layers {
            y = l.forward(&y);
        }
        y
    }
    fn visit(&self, p: &str, f: &mut dyn FnMut(String, &Tensor, Kind)) {
        for (i, l) in self.layers.iter().enumerate() {
            l.visit(&join(p, &i.to_string()), f);
        }
    }
    fn set_training(&self, t: bool) {
        self.layers.iter().for_each(|l| l.set_training(t));
    }
}

/// ReLU, then a convolution, then batch norm: the workhorse of DARTS cells.
pub struct ReLUConvBN {
    pub op: Sequential,
}
impl ReLUConvBN {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        padding: usize,
        affine: bool,
        rng: &mut Rng,
    ) -> Self {
        let o = ConvOpts {
            stride,
            padding,
            ..Default::default()
        };
        ReLUConvBN {
            op: Sequential::new(vec![
                Box::new(ReLU),
                Box::new(Conv2d::no_bias(cin, cout, k, o, rng)),
                Box::new(BatchNorm2d::with_affine(cout, affine)),
            ]),
        }
    }
}

/// Dilated depthwise-separable convolution: ReLU, depthwise dilated conv, 1x1 conv, BN.
pub struct DilConv {
    pub op: Sequential,
}
impl DilConv {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        padding: usize,
        dilation: usize,
        affine: bool,
        rng: &mut Rng,
    ) -> Self {
        let dw = ConvOpts {
            stride,
            padding,
            dilation,
            groups: cin,
        };
        DilConv {
            op: Sequential::new(vec![
                Box::new(ReLU),
                Box::new(Conv2d::no_bias(cin, cin, k, dw, rng)),
                Box::new(Conv2d::no_bias(cin, cout, 1, ConvOpts::default(), rng)),
                Box::new(BatchNorm2d::with_affine(cout, affine)),
            ]),
        }
    }
}

/// Separable convolution as in DARTS: two DilConvs of dilation 1, the first strided.
pub struct SepConv {
    pub op: Sequential,
}
impl SepConv {
    pub fn new(
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        padding: usize,
        affine: bool,
        rng: &mut Rng,
    ) -> Self {
        SepConv {
            op: Sequential::new(vec![
                Box::new(DilConv::new(cin, cin, k, stride, padding, 1, affine, rng)),
                Box::new(DilConv::new(cin, cout, k, 1, padding, 1, affine, rng)),
            ]),
        }
    }
}

/// Halves the spatial size with two offset 1x1 stride-2 convolutions whose outputs are
/// concatenated, so no input pixel is skipped. On an odd side the input of the offset
/// convolution is padded with a zero row (column) at the end, as PyTorch implementations
/// pad, so both give `ceil(h / 2)` rows, as the other stride-2 ops of a reduction cell.
pub struct FactorizedReduce {
    pub conv1: Conv2d,
    pub conv2: Conv2d,
    pub bn: BatchNorm2d,
}
impl FactorizedReduce {
    pub fn new(cin: usize, cout: usize, affine: bool, rng: &mut Rng) -> Self {
        assert!(
            cout % 2 == 0,
            "FactorizedReduce needs an even number of output channels"
        );
        let o = ConvOpts {
            stride: 2,
            ..Default::default()
        };
        FactorizedReduce {
            conv1: Conv2d::no_bias(cin, cout / 2, 1, o, rng),
            conv2: Conv2d::no_bias(cin, cout / 2, 1, o, rng),
            bn: BatchNorm2d::with_affine(cout, affine),
        }
    }
}

macro_rules! delegate_module {
    ($t:ty) => {
        impl Module for $t {
            fn forward(&self, x: &Tensor) -> Tensor {
                self.op.forward(x)
            }
            fn visit(&self, p: &str, f: &mut dyn FnMut(String, &Tensor, Kind)) {
                self.op.visit(&join(p, "op"), f)
            }
            fn set_training(&self, t: bool) {
                self.op.set_training(t)
            }
        }
    };
}
delegate_module!(ReLUConvBN);
delegate_module!(DilConv);
delegate_module!(SepConv);

impl Module for FactorizedReduce {
    fn forward(&self, x: &Tensor) -> Tensor {
        let x = x.relu();
        let shifted = shift_by_one(&shift_by_one(&x, 2), 3);
        let a = self.conv1.forward(&x);
        let b = self.conv2.forward(&shifted);
        self.bn.forward(&Tensor::concat(&[a, b], 1))
    }
    fn visit(&self, p: &str, f: &mut dyn FnMut(String, &Tensor, Kind)) {
        self.conv1.visit(&join(p, "conv_1"), f);
        self.conv2.visit(&join(p, "conv_2"), f);
        self.bn.visit(&join(p, "bn"), f);
    }
    fn set_training(&self, t: bool) {
        self.bn.set_training(t)
    }
}

/// `x` without its first entry along `axis`, with a zero entry appended when the size is
/// odd: what a stride-2 1x1 convolution reads one pixel later, giving as many outputs as
/// on `x` itself.
fn shift_by_one(x: &Tensor, axis: usize) -> Tensor {
    let n = x.dim(axis);
    if n.is_multiple_of(2) {
        return x.slice(axis, 1, n - 1);
    }
    let mut shape = x.shape().to_vec();
    shape[axis] = 1;
    let zero = Tensor::zeros_beside(&shape, x);
    if n == 1 {
        return zero;
    }
    Tensor::concat(&[x.slice(axis, 1, n - 1), zero], axis)
}

/// Copies data from `src` into same-named tensors of `dst` (weight inheritance).
pub fn copy_state(dst: &dyn Module, src: &[(String, Tensor)]) -> usize {
    let mut copied = 0;
    no_grad(|| {
        dst.visit("", &mut |n, t, _| {
            if let Some((_, s)) = src.iter().find(|(sn, _)| *sn == n) {
                if s.shape() == t.shape() {
                    t.data_mut().copy_from_slice(&s.data());
                    copied += 1;
                }
            }
        })
    });
    copied
}
