//! The forward side of every primitive and the compositions built from them.

use crate::autodiff::{on_device, row_name, EmbedGeom, Op};
use crate::buffer;
use crate::profile::record;
use crate::rng::Rng;
use crate::tensor::Tensor;
use nas_kernels::accel::{self, Binary, Unary};
use nas_kernels::cpu::random::Dropout;
use nas_kernels::cpu::{conv, elementwise as ew, pool, shape as mv};

/// Runs forward primitive `name` through the backend of the device that holds `operands`
/// (any of them in its memory: host ones are uploaded, once each), leaving the result
/// there: the CPU backend when all are on the host, which reads their values in place.
/// Operands on two devices are a panic naming the op and both devices.
fn on_resident<T>(
    operands: &[&Tensor],
    name: &'static str,
    flops: f64,
    bytes: f64,
    f: impl FnOnce(&dyn accel::Resident) -> accel::Res<T>,
) -> T {
    let place = crate::tensor::common_place(operands, || name);
    let (a, r) = place.map_or_else(accel::cpu, crate::autodiff::backend);
    record(row_name(a, name), flops, bytes, || {
        let y = on_device(a, name, f(r));
        if crate::profile::enabled() {
            // The row's time is the kernels', not the time to ask for them.
            on_device(a, name, r.finish());
        }
        y
    })
}

thread_local! {
    /// Multiply-adds of conv/linear/matmul ops since `count_macs` started (None = off).
    static MACS: std::cell::Cell<Option<u64>> = const { std::cell::Cell::new(None) };
}

fn add_macs(n: usize) {
    MACS.with(|m| {
        if let Some(v) = m.get() {
            m.set(Some(v + n as u64))
        }
    });
}

/// Runs `f` and returns its result with the multiply-adds of every convolution, linear
/// layer and matrix product it ran (the "FLOPs" NAS papers report).
pub fn count_macs<R>(f: impl FnOnce() -> R) -> (R, u64) {
    let prev = MACS.with(|m| m.replace(Some(0)));
    let r = f();
    let n = MACS.with(|m| m.replace(prev)).unwrap_or(0);
    if let Some(p) = prev {
        MACS.with(|m| m.set(Some(p + n)));
    }
    (r, n)
}

/// Geometry of a convolution, in the order users write it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvOpts {
    pub stride: usize,
    pub padding: usize,
    pub dilation: usize,
    pub groups: usize,
}

impl Default for ConvOpts {
    fn default() -> Self {
        ConvOpts {
            stride: 1,
            padding: 0,
            dilation: 1,
            groups: 1,
        }
    }
}

/// Name of a convolution's kernel in profiles: depthwise, pointwise (1x1) and general
/// convolutions run different code.
pub(crate) fn conv_name(p: &conv::Conv2d, dir: &str) -> &'static str {
    let kind = if p.groups > 1 && p.groups == p.cin && p.cin_g() == 1 {
        0
    } else if p.kh == 1 && p.kw == 1 {
        1
    } else {
        2
    };
    match (kind, dir) {
        (0, "fwd") => "conv2d_depthwise.fwd",
        (0, _) => "conv2d_depthwise.bwd",
        (1, "fwd") => "conv2d_1x1.fwd",
        (1, _) => "conv2d_1x1.bwd",
        (_, "fwd") => "conv2d.fwd",
        _ => "conv2d.bwd",
    }
}

/// Floating-point operations and bytes of one convolution forward.
pub(crate) fn conv_cost(p: &conv::Conv2d) -> (f64, f64) {
    let bytes = 4.0 * (p.n * p.cin * p.h * p.w + p.weight_len() + p.out_len()) as f64;
    (2.0 * p.macs() as f64, bytes)
}

/// Operations and bytes of one pooling forward.
pub(crate) fn pool_cost(p: &pool::Pool2d) -> (f64, f64) {
    let out = (p.n * p.c * p.out_h() * p.out_w()) as f64;
    let inp = (p.n * p.c * p.h * p.w) as f64;
    (out * (p.kh * p.kw) as f64, 4.0 * (inp + out))
}

impl Tensor {
    /// An elementwise map, run where the values are.
    fn unary(&self, u: Unary, op: impl FnOnce(Tensor) -> Op) -> Tensor {
        let n = self.numel();
        let y = on_resident(&[self], "elementwise.fwd", n as f64, 8.0 * n as f64, |r| {
            r.unary(u, &self.dev_buf(r)?)
        });
        Tensor::from_device(self.shape().to_vec(), y, op(self.clone()))
    }

    fn binary(
        &self,
        other: &Tensor,
        f: impl Fn(f32, f32) -> f32 + Sync,
        code: Binary,
        op: fn(Tensor, Tensor) -> Op,
    ) -> Tensor {
        let shape = ew::broadcast_shape(self.shape(), other.shape()).unwrap_or_else(|| {
            panic!(
                "shapes {:?} and {:?} do not broadcast",
                self.shape(),
                other.shape()
            )
        });
        let n: usize = shape.iter().product();
        let bytes = 4.0 * (self.numel() + other.numel() + n) as f64;
        // The kernels broadcast over at most 6 dimensions once those that broadcast alike
        // are merged; past that, the host's loop. Same shapes (any rank) merge into one,
        // checked first without the merging's work.
        if self.shape() == other.shape() || accel::broadcast_fits(self.shape(), other.shape()) {
            let (a, b) = (self, other);
            let y = on_resident(&[a, b], "elementwise.fwd", n as f64, bytes, |r| {
                let (da, db) = (a.dev_buf(r)?, b.dev_buf(r)?);
                crate::autodiff::binary_on(r, code, &da, a.shape(), &db, b.shape())
            });
            return Tensor::from_device(shape, y, op(a.clone(), b.clone()));
        }
        let mut out = buffer::take(n);
        record("elementwise.fwd", n as f64, bytes, || {
            ew::binary(
                &self.data(),
                self.shape(),
                &other.data(),
                other.shape(),
                &mut out,
                f,
            )
        });
        Tensor::from_op(shape, out, op(self.clone(), other.clone()))
    }

    pub fn add(&self, o: &Tensor) -> Tensor {
        self.binary(o, |a, b| a + b, Binary::Add, Op::Add)
    }
    pub fn sub(&self, o: &Tensor) -> Tensor {
        self.binary(o, |a, b| a - b, Binary::Sub, Op::Sub)
    }
    pub fn mul(&self, o: &Tensor) -> Tensor {
        self.binary(o, |a, b| a * b, Binary::Mul, Op::Mul)
    }
    pub fn div(&self, o: &Tensor) -> Tensor {
        self.binary(o, |a, b| a / b, Binary::Div, Op::Div)
    }
    pub fn add_scalar(&self, s: f32) -> Tensor {
        self.unary(Unary::Affine(1.0, s), move |t| Op::AddScalar(t, s))
    }
    pub fn mul_scalar(&self, s: f32) -> Tensor {
        self.unary(Unary::Affine(s, 0.0), move |t| Op::MulScalar(t, s))
    }
    pub fn neg(&self) -> Tensor {
        self.mul_scalar(-1.0)
    }
    pub fn exp(&self) -> Tensor {
        self.unary(Unary::Exp, Op::Exp)
    }
    pub fn log(&self) -> Tensor {
        self.unary(Unary::Log, Op::Log)
    }
    pub fn relu(&self) -> Tensor {
        self.unary(Unary::Relu, Op::Relu)
    }
    pub fn sigmoid(&self) -> Tensor {
        self.unary(Unary::Sigmoid, Op::Sigmoid)
    }
    pub fn tanh(&self) -> Tensor {
        self.unary(Unary::Tanh, Op::Tanh)
    }

    /// Sum over `axes`; reduced axes are kept as size 1 when `keepdim`.
    pub fn sum_axes(&self, axes: &[usize], keepdim: bool) -> Tensor {
        let mut kept = self.shape().to_vec();
        for &a in axes {
            assert!(
                a < kept.len(),
                "sum over axis {a} of a rank-{} tensor",
                kept.len()
            );
            kept[a] = 1;
        }
        let shape = if keepdim {
            kept.clone()
        } else {
            let s: Vec<usize> = (0..kept.len())
                .filter(|i| !axes.contains(i))
                .map(|i| kept[i])
                .collect();
            if s.is_empty() {
                vec![1]
            } else {
                s
            }
        };
        let n = self.numel() as f64;
        if accel::sum_fits(self.shape(), &kept) {
            let y = on_resident(&[self], "sum.fwd", n, 4.0 * n, |r| {
                r.reduce_to(&self.dev_buf(r)?, self.shape(), &kept)
            });
            return Tensor::from_device(shape, y, Op::Sum(self.clone(), kept));
        }
        let mut out = buffer::take_zeroed(kept.iter().product());
        record("sum.fwd", n, 4.0 * n, || {
            ew::acc_sum_to(&self.data(), self.shape(), &mut out, &kept)
        });
        Tensor::from_op(shape, out, Op::Sum(self.clone(), kept))
    }
    pub fn sum(&self) -> Tensor {
        let axes: Vec<usize> = (0..self.rank()).collect();
        self.sum_axes(&axes, false)
    }
    pub fn mean(&self) -> Tensor {
        self.sum().mul_scalar(1.0 / self.numel() as f32)
    }
    pub fn mean_axes(&self, axes: &[usize], keepdim: bool) -> Tensor {
        let n: usize = axes.iter().map(|&a| self.dim(a)).product();
        self.sum_axes(axes, keepdim).mul_scalar(1.0 / n as f32)
    }

    /// Batched matrix product `[.., m, k] x [.., k, n]`; a 2-D `b` is shared by every batch.
    pub fn matmul(&self, b: &Tensor) -> Tensor {
        let (ar, br) = (self.rank(), b.rank());
        assert!(
            ar >= 2 && br >= 2,
            "matmul needs matrices, got {:?} and {:?}",
            self.shape(),
            b.shape()
        );
        let (m, k) = (self.dim(ar - 2), self.dim(ar - 1));
        let (k2, n) = (b.dim(br - 2), b.dim(br - 1));
        assert_eq!(
            k,
            k2,
            "matmul inner dims differ: {:?} x {:?}",
            self.shape(),
            b.shape()
        );
        let batch = self.numel() / (m * k);
        let shared = br == 2;
        assert!(
            shared || b.shape()[..br - 2] == self.shape()[..ar - 2],
            "matmul batch dims differ: {:?} x {:?}",
            self.shape(),
            b.shape()
        );
        let mut shape = self.shape().to_vec();
        shape[ar - 1] = n;
        add_macs(batch * m * n * k);
        let flops = 2.0 * (batch * m * n * k) as f64;
        let bytes = 4.0 * (self.numel() + b.numel() + batch * m * n) as f64;
        // A shared `b` takes every batch's rows as one product.
        let (rows, each) = if shared { (batch * m, 1) } else { (m, batch) };
        let y = on_resident(&[self, b], "matmul.fwd", flops, bytes, |r| {
            r.matmul_batched(
                each,
                rows,
                n,
                k,
                &self.dev_buf(r)?,
                false,
                &b.dev_buf(r)?,
                false,
            )
        });
        Tensor::from_device(shape, y, Op::MatMul(self.clone(), b.clone()))
    }

    /// `self W^T + b` over the last axis, with `W` as `[out, in]` (PyTorch's layout).
    pub fn linear(&self, w: &Tensor, b: Option<&Tensor>) -> Tensor {
        let (nout, nin) = (w.dim(0), w.dim(1));
        assert_eq!(
            *self.shape().last().unwrap(),
            nin,
            "linear: input {:?} does not end in {nin}",
            self.shape()
        );
        let rows = self.numel() / nin;
        add_macs(rows * nin * nout);
        let flops = 2.0 * (rows * nin * nout) as f64;
        let bytes = 4.0 * (rows * nin + nin * nout + rows * nout) as f64;
        let mut shape = self.shape().to_vec();
        *shape.last_mut().unwrap() = nout;
        let operands: Vec<&Tensor> = [self, w].into_iter().chain(b).collect();
        let y = on_resident(&operands, "linear.fwd", flops, bytes, |r| {
            let y = r.matmul(
                rows,
                nout,
                nin,
                &self.dev_buf(r)?,
                false,
                &w.dev_buf(r)?,
                true,
            )?;
            match b {
                Some(b) => r.add_channel(nout, 1, &y, &b.dev_buf(r)?),
                None => Ok(y),
            }
        });
        let op = Op::Linear(self.clone(), w.clone(), b.cloned());
        Tensor::from_device(shape, y, op)
    }

    pub fn reshape(&self, shape: &[usize]) -> Tensor {
        assert_eq!(
            shape.iter().product::<usize>(),
            self.numel(),
            "cannot reshape {:?} to {shape:?}",
            self.shape()
        );
        // The same buffer under the new shape, nothing copied (a write to either copies
        // it first).
        let y = on_resident(&[self], "shape.fwd", 0.0, 0.0, |r| self.dev_buf(r));
        Tensor::from_device(shape.to_vec(), y, Op::Reshape(self.clone()))
    }
    /// Flattens every axis from `from` on into one.
    pub fn flatten(&self, from: usize) -> Tensor {
        let mut s = self.shape()[..from].to_vec();
        s.push(self.shape()[from..].iter().product());
        self.reshape(&s)
    }
    pub fn permute(&self, perm: &[usize]) -> Tensor {
        assert_eq!(
            perm.len(),
            self.rank(),
            "permute {perm:?} of shape {:?}",
            self.shape()
        );
        let shape: Vec<usize> = perm.iter().map(|&p| self.dim(p)).collect();
        let bytes = 8.0 * self.numel() as f64;
        if accel::permute_fits(self.shape(), perm) {
            let y = on_resident(&[self], "shape.fwd", 0.0, bytes, |r| {
                r.permute(self.shape(), perm, &self.dev_buf(r)?)
            });
            return Tensor::from_device(shape, y, Op::Permute(self.clone(), perm.to_vec()));
        }
        // Past the kernels' 6 axes, merged where they stay adjacent: the host's loop.
        let mut out = buffer::take(self.numel());
        mv::permute(&self.data(), self.shape(), perm, &mut out);
        Tensor::from_op(shape, out, Op::Permute(self.clone(), perm.to_vec()))
    }
    pub fn transpose(&self, a: usize, b: usize) -> Tensor {
        let mut perm: Vec<usize> = (0..self.rank()).collect();
        perm.swap(a, b);
        self.permute(&perm)
    }

    /// Concatenation along `axis`; all other axes must agree.
    pub fn concat(xs: &[Tensor], axis: usize) -> Tensor {
        assert!(!xs.is_empty(), "concat of nothing");
        let mut shape = xs[0].shape().to_vec();
        shape[axis] = 0;
        for x in xs {
            let mut s = x.shape().to_vec();
            shape[axis] += s[axis];
            s[axis] = 0;
            let mut want = xs[0].shape().to_vec();
            want[axis] = 0;
            assert_eq!(s, want, "concat along {axis}: shapes differ off-axis");
        }
        let (outer, _, inner) = mv::around(&shape, axis);
        let operands: Vec<&Tensor> = xs.iter().collect();
        let bytes = 8.0 * shape.iter().product::<usize>() as f64;
        let y = on_resident(&operands, "concat.fwd", 0.0, bytes, |r| {
            let parts = xs
                .iter()
                .map(|x| Ok((x.dev_buf(r)?, x.dim(axis))))
                .collect::<accel::Res<Vec<_>>>()?;
            r.concat_axis(outer, inner, &parts)
        });
        Tensor::from_device(shape, y, Op::Concat(xs.to_vec(), axis))
    }

    /// `len` entries along `axis` starting at `start`.
    pub fn slice(&self, axis: usize, start: usize, len: usize) -> Tensor {
        assert!(
            start + len <= self.dim(axis),
            "slice {start}..{} of axis {axis} with size {}",
            start + len,
            self.dim(axis)
        );
        let (outer, src_len, inner) = mv::around(self.shape(), axis);
        let mut shape = self.shape().to_vec();
        shape[axis] = len;
        let bytes = 8.0 * (outer * len * inner) as f64;
        let y = on_resident(&[self], "slice.fwd", 0.0, bytes, |r| {
            r.slice_axis(outer, src_len, inner, start, len, &self.dev_buf(r)?)
        });
        Tensor::from_device(shape, y, Op::Slice(self.clone(), axis, start))
    }

    /// 2-D convolution of an NCHW input with an `[out, in/groups, kh, kw]` weight.
    pub fn conv2d(&self, w: &Tensor, b: Option<&Tensor>, o: ConvOpts) -> Tensor {
        assert_eq!(
            self.rank(),
            4,
            "conv2d input must be NCHW, got {:?}",
            self.shape()
        );
        assert_eq!(
            w.rank(),
            4,
            "conv2d weight must be 4-D, got {:?}",
            w.shape()
        );
        let s = self.shape();
        let p = conv::Conv2d {
            n: s[0],
            cin: s[1],
            h: s[2],
            w: s[3],
            cout: w.dim(0),
            kh: w.dim(2),
            kw: w.dim(3),
            sh: o.stride,
            sw: o.stride,
            ph: o.padding,
            pw: o.padding,
            dh: o.dilation,
            dw: o.dilation,
            groups: o.groups,
        };
        if let Err(e) = p.validate() {
            panic!("conv2d on input {s:?} with weight {:?}: {e}", w.shape());
        }
        assert_eq!(
            w.dim(1),
            p.cin_g(),
            "conv2d weight {:?} for {} input channels",
            w.shape(),
            p.cin
        );
        let (flops, bytes) = conv_cost(&p);
        let shape = vec![p.n, p.cout, p.out_h(), p.out_w()];
        let operands: Vec<&Tensor> = [self, w].into_iter().chain(b).collect();
        let y = on_resident(&operands, conv_name(&p, "fwd"), flops, bytes, |r| {
            let bias = b.map(|b| b.dev_buf(r)).transpose()?;
            r.conv2d(&p, &self.dev_buf(r)?, &w.dev_buf(r)?, bias.as_ref())
        });
        add_macs(p.macs());
        let op = Op::Conv2d(self.clone(), w.clone(), b.cloned(), p);
        Tensor::from_device(shape, y, op)
    }

    fn pool_geom(&self, k: usize, stride: usize, pad: usize) -> pool::Pool2d {
        assert_eq!(self.rank(), 4, "pooling needs NCHW, got {:?}", self.shape());
        let s = self.shape();
        pool::Pool2d {
            n: s[0],
            c: s[1],
            h: s[2],
            w: s[3],
            kh: k,
            kw: k,
            sh: stride,
            sw: stride,
            ph: pad,
            pw: pad,
        }
    }

    pub fn max_pool2d(&self, k: usize, stride: usize, pad: usize) -> Tensor {
        let p = self.pool_geom(k, stride, pad);
        let (flops, bytes) = pool_cost(&p);
        let shape = vec![p.n, p.c, p.out_h(), p.out_w()];
        let (y, arg) = on_resident(&[self], "max_pool2d.fwd", flops, bytes, |r| {
            r.max_pool(&p, &self.dev_buf(r)?)
        });
        let op = Op::MaxPool2d(self.clone(), p, arg);
        Tensor::from_device(shape, y, op)
    }

    pub fn avg_pool2d(
        &self,
        k: usize,
        stride: usize,
        pad: usize,
        count_include_pad: bool,
    ) -> Tensor {
        let p = self.pool_geom(k, stride, pad);
        let (flops, bytes) = pool_cost(&p);
        let shape = vec![p.n, p.c, p.out_h(), p.out_w()];
        let op = || Op::AvgPool2d(self.clone(), p, count_include_pad);
        let y = on_resident(&[self], "avg_pool2d.fwd", flops, bytes, |r| {
            r.avg_pool(&p, count_include_pad, &self.dev_buf(r)?)
        });
        Tensor::from_device(shape, y, op())
    }

    pub fn adaptive_avg_pool2d(&self, oh: usize, ow: usize) -> Tensor {
        let s = self.shape();
        assert_eq!(s.len(), 4, "adaptive pooling needs NCHW, got {s:?}");
        let (inp, outn) = (self.numel() as f64, (s[0] * s[1] * oh * ow) as f64);
        let bytes = 4.0 * (inp + outn);
        let y = on_resident(&[self], "adaptive_avg_pool2d.fwd", inp, bytes, |r| {
            r.adaptive_avg_pool(s[0] * s[1], s[2], s[3], oh, ow, &self.dev_buf(r)?)
        });
        let op = Op::AdaptiveAvgPool2d(self.clone());
        Tensor::from_device(vec![s[0], s[1], oh, ow], y, op)
    }

    /// Training-mode batch norm over NCHW; returns the output and the batch mean and
    /// 1/std per channel (`[c]` tensors, for the running statistics), all on the device
    /// the input lives on.
    pub fn batch_norm_train(
        &self,
        gamma: &Tensor,
        beta: &Tensor,
        eps: f32,
    ) -> (Tensor, Tensor, Tensor) {
        let s = self.shape();
        assert_eq!(s.len(), 4, "batch norm needs NCHW, got {s:?}");
        let (n, c, hw) = (s[0], s[1], s[2] * s[3]);
        let len = (n * c * hw) as f64;
        let (y, mean, invstd) = on_resident(
            &[self, gamma, beta],
            "batch_norm.fwd",
            6.0 * len,
            12.0 * len,
            |r| {
                let (g, b) = (gamma.dev_buf(r)?, beta.dev_buf(r)?);
                r.batch_norm_train(n, c, hw, &self.dev_buf(r)?, &g, &b, eps)
            },
        );
        let (mean, invstd) = (
            Tensor::device_constant(vec![c], mean),
            Tensor::device_constant(vec![c], invstd),
        );
        let op = Op::BatchNorm(
            self.clone(),
            gamma.clone(),
            beta.clone(),
            mean.clone(),
            invstd.clone(),
        );
        (Tensor::from_device(s.to_vec(), y, op), mean, invstd)
    }

    /// Updates these running means and the running variances `var` in place from a
    /// batch's statistics (`mean`, `invstd` of `count` values per channel, as
    /// `batch_norm_train` gives them): PyTorch's update with `momentum`, the variance
    /// unbiased. On the device the statistics are on (the running values move there).
    pub fn update_running_stats(
        &self,
        var: &Tensor,
        count: usize,
        mean: &Tensor,
        invstd: &Tensor,
        eps: f32,
        momentum: f32,
    ) {
        let c = self.numel();
        assert!(
            var.numel() == c && mean.numel() == c && invstd.numel() == c,
            "running statistics of {c} channels updated with {} variances, {} means and \
             {} deviations",
            var.numel(),
            mean.numel(),
            invstd.numel()
        );
        let operands = [self, var, mean, invstd];
        let flops = 8.0 * c as f64;
        let (rm, rv) = on_resident(&operands, "batch_norm.running", flops, 0.0, |r| {
            let (m, i) = (mean.dev_buf(r)?, invstd.dev_buf(r)?);
            let (rm, rv) = (self.dev_buf(r)?, var.dev_buf(r)?);
            r.batch_norm_running(count, momentum, eps, &m, &i, &rm, &rv)
        });
        self.set_device(rm);
        var.set_device(rv);
    }

    /// Log-softmax over the last axis.
    pub fn log_softmax(&self) -> Tensor {
        let cols = *self.shape().last().unwrap();
        let n = self.numel() as f64;
        let rows = self.numel() / cols;
        let y = on_resident(&[self], "log_softmax.fwd", 4.0 * n, 8.0 * n, |r| {
            r.log_softmax(rows, cols, &self.dev_buf(r)?)
        });
        let op = Op::LogSoftmax(self.clone());
        Tensor::from_device(self.shape().to_vec(), y, op)
    }
    pub fn softmax(&self) -> Tensor {
        self.log_softmax().exp()
    }

    /// Mean negative log-likelihood of `targets` under log-probabilities `self` (`[rows, classes]`).
    pub fn nll_loss(&self, targets: &[u32]) -> Tensor {
        let cols = *self.shape().last().unwrap();
        let rows = self.numel() / cols;
        assert_eq!(
            rows,
            targets.len(),
            "nll_loss: {rows} rows but {} targets",
            targets.len()
        );
        let (flops, bytes) = (rows as f64, 8.0 * rows as f64);
        let loss = on_resident(&[self], "nll.fwd", flops, bytes, |r| {
            r.nll(rows, cols, &self.dev_buf(r)?, targets)
        });
        Tensor::from_op(vec![1], vec![loss], Op::Nll(self.clone(), targets.to_vec()))
    }
    pub fn cross_entropy(&self, targets: &[u32]) -> Tensor {
        self.log_softmax().nll_loss(targets)
    }

    /// `sum_k w[idx[k]] * xs[k]` for same-shaped `xs`: one pass, and one gradient rule
    /// that gives both the inputs' and the weights' gradients.
    pub fn weighted_sum(xs: &[Tensor], w: &Tensor, idx: &[usize]) -> Tensor {
        assert!(
            !xs.is_empty() && xs.len() == idx.len(),
            "weighted_sum: inputs and indices"
        );
        for x in xs {
            assert_eq!(x.shape(), xs[0].shape(), "weighted_sum: shapes differ");
        }
        let wd = w.to_vec();
        let ws: Vec<f32> = idx.iter().map(|&i| wd[i]).collect();
        let n = xs[0].numel();
        let k = xs.len() as f64;
        let (flops, bytes) = (2.0 * k * n as f64, 4.0 * (k + 1.0) * n as f64);
        let operands: Vec<&Tensor> = xs.iter().collect();
        let y = on_resident(&operands, "weighted_sum.fwd", flops, bytes, |r| {
            let bufs = xs
                .iter()
                .map(|x| x.dev_buf(r))
                .collect::<accel::Res<Vec<_>>>()?;
            r.weighted_sum(&bufs, &ws)
        });
        let op = Op::WeightedSum(xs.to_vec(), w.clone(), idx.to_vec());
        Tensor::from_device(xs[0].shape().to_vec(), y, op)
    }

    /// Places this `[o, i, k, k]` kernel, dilated by `dil`, in the centre of a zero
    /// `[o, i, size, size]` kernel: the same convolution, written at a larger size.
    pub fn embed_kernel(&self, size: usize, dil: usize) -> Tensor {
        let k = self.dim(3);
        let span = dil * (k - 1) + 1;
        assert!(
            self.rank() == 4
                && self.dim(2) == k
                && dil >= 1
                && span <= size
                && (size - span) % 2 == 0,
            "cannot embed a {:?} kernel (dilation {dil}) in {size}x{size}",
            self.shape()
        );
        let e = EmbedGeom {
            k,
            size,
            dil,
            off: (size - span) / 2,
        };
        let planes = self.dim(0) * self.dim(1);
        let shape = vec![self.dim(0), self.dim(1), size, size];
        let bytes = 4.0 * (planes * (k * k + size * size)) as f64;
        let y = on_resident(&[self], "embed_kernel.fwd", 0.0, bytes, |r| {
            r.embed_kernel(&e.device(planes), &self.dev_buf(r)?)
        });
        Tensor::from_device(shape, y, Op::EmbedKernel(self.clone(), e))
    }

    /// Inverted dropout: zeroes each entry with probability `p` (at most 1) and scales the
    /// rest by 1/(1-p). The mask is made where `self` lives, from one draw of `rng`
    /// (`nas_kernels::cpu::random`: the same mask on every device).
    pub fn dropout(&self, p: f32, rng: &mut Rng) -> Tensor {
        if p <= 0.0 {
            return self.clone();
        }
        let n = self.numel();
        let draw = Dropout::new(p, rng.next_u64()).unwrap_or_else(|e| panic!("{e}"));
        let mask = on_resident(&[self], "dropout_mask.fwd", 0.0, 4.0 * n as f64, |r| {
            r.dropout_mask(n, &draw)
        });
        self.mul(&Tensor::device_constant(self.shape().to_vec(), mask))
    }
}
