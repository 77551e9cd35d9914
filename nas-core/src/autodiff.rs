//! Reverse-mode autodiff: the primitive ops a graph records, and one gradient rule per
//! primitive, top to bottom in `Op::backward`. Everything else is composed from these.

use crate::buffer;
use crate::tensor::{Tensor, Values};
use nas_kernels::accel::{self, Accel, Backend, Binary, DevBuf, Place, Res, Resident, Unary};
use nas_kernels::cpu::backend::HostBuf;
use nas_kernels::cpu::{conv, elementwise as ew, pool, shape as mv};
use std::collections::HashSet;

/// The result of a backend call; a device failure mid-step is a panic naming the
/// device and the primitive (the step cannot go on without it), which a host can report
/// as an error (`device::failure`). The CPU's errors are plain panics: the engine checks
/// the arguments before it calls a kernel, so one is a bug, not the device's.
pub(crate) fn on_device<T>(a: &dyn Accel, what: &str, r: accel::Res<T>) -> T {
    r.unwrap_or_else(|e| {
        let msg = format!("{} {what}: {e}", a.kind());
        if a.kind() == "cpu" {
            panic!("{msg}");
        }
        crate::device::fail(msg)
    })
}

/// The profile row of primitive `name` run through backend `a`: the plain name on the
/// CPU, `kind:name` on a device.
pub(crate) fn row_name(a: &dyn Accel, name: &'static str) -> &'static str {
    if a.kind() == "cpu" {
        name
    } else {
        accel::label(a.kind(), name)
    }
}

/// The backend of device `p` (open: a tensor lives there).
pub(crate) fn backend(p: Place) -> Backend {
    p.backend()
        .unwrap_or_else(|| panic!("{}: a tensor lives on a device that is not open", p.name()))
}

/// A recorded primitive: its inputs and what its gradient rule needs from the forward.
pub(crate) enum Op {
    Add(Tensor, Tensor),
    Sub(Tensor, Tensor),
    Mul(Tensor, Tensor),
    Div(Tensor, Tensor),
    /// `x + s` (the scalar kept for exporters; the gradient rule does not need it).
    AddScalar(Tensor, f32),
    MulScalar(Tensor, f32),
    Exp(Tensor),
    Log(Tensor),
    Relu(Tensor),
    Sigmoid(Tensor),
    Tanh(Tensor),
    /// Sum over axes; `kept` is the output shape with reduced axes as 1.
    Sum(Tensor, Vec<usize>),
    /// `[.., m, k] x [.., k, n]`, or a 2-D right operand shared by every batch.
    MatMul(Tensor, Tensor),
    /// `x W^T + b` with `W` as `[out, in]`.
    Linear(Tensor, Tensor, Option<Tensor>),
    Reshape(Tensor),
    Permute(Tensor, Vec<usize>),
    Concat(Vec<Tensor>, usize),
    Slice(Tensor, usize, usize),
    Conv2d(Tensor, Tensor, Option<Tensor>, conv::Conv2d),
    /// Max pooling, with the argmax its forward left on the device it ran on.
    MaxPool2d(Tensor, pool::Pool2d, DevBuf),
    AvgPool2d(Tensor, pool::Pool2d, bool),
    AdaptiveAvgPool2d(Tensor),
    /// Training-mode batch norm: input, gamma, beta, and the batch mean and 1/std (on
    /// the device the forward ran on).
    BatchNorm(Tensor, Tensor, Tensor, Tensor, Tensor),
    LogSoftmax(Tensor),
    Nll(Tensor, Vec<u32>),
    /// A `[o, i, k, k]` kernel placed, with dilation, into a larger `[o, i, K, K]` one.
    EmbedKernel(Tensor, EmbedGeom),
    /// `sum_k w[idx[k]] * xs[k]`: a mixed op's combination of its candidates' outputs.
    WeightedSum(Vec<Tensor>, Tensor, Vec<usize>),
}

/// Where `EmbedKernel` puts tap `(a, b)`: at `(off + a*dil, off + b*dil)`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct EmbedGeom {
    pub k: usize,
    pub size: usize,
    pub dil: usize,
    pub off: usize,
}

impl EmbedGeom {
    /// The device kernels' form of this geometry, for `planes` planes.
    pub(crate) fn device(&self, planes: usize) -> accel::Embed {
        accel::Embed {
            planes,
            k: self.k,
            size: self.size,
            dil: self.dil,
            off: self.off,
        }
    }
}

impl Op {
    /// The profile name of this op's gradient rule, with its floating-point operations
    /// and bytes moved (`out` is the output's length).
    fn profile(&self, out: usize, device: Option<Backend>) -> (&'static str, f64, f64) {
        let (name, flops, bytes) = self.profile_cpu(out);
        match device {
            Some((a, _)) => (row_name(a, name), flops, bytes),
            None => (name, flops, bytes),
        }
    }

    /// The op's name in profiles and messages.
    pub(crate) fn name(&self) -> &'static str {
        self.profile_cpu(0).0
    }

    fn profile_cpu(&self, out: usize) -> (&'static str, f64, f64) {
        use Op::*;
        let n = out as f64;
        let numel = |t: &Tensor| t.numel() as f64;
        match self {
            Conv2d(_, _, _, p) => {
                let (f, b) = crate::ops::conv_cost(p);
                (crate::ops::conv_name(p, "bwd"), 2.0 * f, 2.0 * b)
            }
            MatMul(a, b) => {
                let k = a.shape()[a.rank() - 1] as f64;
                ("matmul.bwd", 4.0 * n * k, 8.0 * (numel(a) + numel(b) + n))
            }
            Linear(x, w, _) => {
                let k = w.dim(1) as f64;
                ("linear.bwd", 4.0 * n * k, 8.0 * (numel(x) + numel(w) + n))
            }
            MaxPool2d(x, ..) => ("max_pool2d.bwd", n, 4.0 * (numel(x) + 2.0 * n)),
            AvgPool2d(x, p, _) => (
                "avg_pool2d.bwd",
                n * (p.kh * p.kw) as f64,
                4.0 * (numel(x) + n),
            ),
            AdaptiveAvgPool2d(x) => ("adaptive_avg_pool2d.bwd", numel(x), 4.0 * (numel(x) + n)),
            BatchNorm(..) => ("batch_norm.bwd", 8.0 * n, 16.0 * n),
            WeightedSum(xs, ..) => {
                let k = xs.len() as f64;
                ("weighted_sum.bwd", 4.0 * k * n, 4.0 * (2.0 * k + 1.0) * n)
            }
            LogSoftmax(_) => ("log_softmax.bwd", 4.0 * n, 12.0 * n),
            Nll(..) => ("nll.bwd", n, 8.0 * n),
            EmbedKernel(x, _) => ("embed_kernel.bwd", numel(x), 4.0 * (numel(x) + n)),
            Reshape(_) | Permute(..) | Concat(..) | Slice(..) => ("shape.bwd", 0.0, 8.0 * n),
            Sum(a, _) => ("sum.bwd", numel(a), 4.0 * (numel(a) + n)),
            _ => ("elementwise.bwd", 2.0 * n, 12.0 * n),
        }
    }

    pub(crate) fn inputs(&self) -> Vec<&Tensor> {
        use Op::*;
        match self {
            Add(a, b) | Sub(a, b) | Mul(a, b) | Div(a, b) | MatMul(a, b) => vec![a, b],
            AddScalar(a, _)
            | MulScalar(a, _)
            | Exp(a)
            | Log(a)
            | Relu(a)
            | Sigmoid(a)
            | Tanh(a) => {
                vec![a]
            }
            Sum(a, _) | Reshape(a) | Permute(a, _) | Slice(a, _, _) => vec![a],
            Linear(x, w, b) | Conv2d(x, w, b, _) => {
                let mut v = vec![x, w];
                v.extend(b.as_ref());
                v
            }
            Concat(xs, _) => xs.iter().collect(),
            WeightedSum(xs, w, _) => xs.iter().chain(std::iter::once(w)).collect(),
            MaxPool2d(x, ..) | AvgPool2d(x, ..) | AdaptiveAvgPool2d(x) => vec![x],
            BatchNorm(x, g, b, ..) => vec![x, g, b],
            LogSoftmax(x) | Nll(x, _) | EmbedKernel(x, _) => vec![x],
        }
    }

    /// Adds this op's contribution to its inputs' gradients, given the output `out` and the
    /// gradient `g` of the loss with respect to it, through the backend of the device
    /// where its gradient or its operands are (the CPU's for host tensors); the host rule
    /// only where no backend takes the shapes ([`Op::resident_rule`]).
    fn backward(&self, out: &Tensor, g: Values) {
        if let Some((a, r)) = self.device_rule(out, &g) {
            // The CPU's kernels read a host gradient in place (one a device made, for a
            // max pooling the CPU ran, is read back first).
            let g = if r.place() == Place::Cpu {
                Values::Dev(DevBuf::Host(HostBuf::new(g.into_host())))
            } else {
                g
            };
            if let Err(e) = self.backward_dev(out, &g, r) {
                on_device(a, &format!("{} backward", self.name()), Err(e))
            }
            return;
        }
        let g = g.into_host();
        self.backward_host(out, &g);
        buffer::give(g);
    }

    /// The backend this op's gradient rule runs through, where [`Op::resident_rule`]
    /// says one takes it: that of the device of its output gradient, or of its
    /// operands, or the CPU's.
    fn device_rule(&self, out: &Tensor, g: &Values) -> Option<Backend> {
        if !self.resident_rule(out) {
            return None;
        }
        let place = match (self, g) {
            // Its argmax lives where the forward ran.
            (Op::MaxPool2d(_, _, arg), _) => Some(arg.place()).filter(|&p| p != Place::Cpu),
            (_, Values::Dev(b)) => Some(b.place()),
            (_, Values::Host(_)) => crate::tensor::common_place(&self.inputs(), || self.name()),
        };
        Some(place.map_or_else(accel::cpu, backend))
    }

    /// Whether the backends' kernels take this op's gradient: all but broadcasting,
    /// summing or permuting past [`accel::BROADCAST_DIMS`] dimensions once those that
    /// broadcast alike (or stay adjacent) are merged (same shapes merge into one, checked
    /// first without the merging's work). Those run the host rule.
    fn resident_rule(&self, out: &Tensor) -> bool {
        use Op::*;
        match self {
            Add(a, b) | Sub(a, b) | Mul(a, b) | Div(a, b) => {
                (a.shape() == out.shape() && b.shape() == out.shape())
                    || accel::broadcast_fits(a.shape(), b.shape())
            }
            Sum(a, kept) => accel::sum_fits(a.shape(), kept),
            Permute(a, perm) => accel::permute_fits(a.shape(), perm),
            _ => true,
        }
    }

    /// The rule of this op through backend `r` (where [`Op::resident_rule`] says the
    /// backends take it). Gradients made on a device stay there; the CPU's are host
    /// vectors.
    fn backward_dev(&self, out: &Tensor, g: &Values, r: &dyn Resident) -> Res<()> {
        use Op::*;
        let os = out.shape();
        let gd = || g.dev(r);
        {
            match self {
                Nll(x, targets) => {
                    let cols = *x.shape().last().unwrap();
                    let rows = x.numel() / cols;
                    let g0 = match g {
                        Values::Host(v) => v[0],
                        Values::Dev(b) => b.to_vec()?[0],
                    };
                    acc_dev(x, r, || r.nll_backward(rows, cols, targets, g0))
                }
                // A broadcast operand's gradient is the output gradient summed down to
                // its shape.
                Add(a, b) => {
                    acc_dev(a, r, || fold_dev(r, gd()?, os, a.shape()))?;
                    acc_dev(b, r, || fold_dev(r, gd()?, os, b.shape()))
                }
                Sub(a, b) => {
                    acc_dev(a, r, || fold_dev(r, gd()?, os, a.shape()))?;
                    acc_dev(b, r, || {
                        let gb = fold_dev(r, gd()?, os, b.shape())?;
                        r.unary(Unary::Affine(-1.0, 0.0), &gb)
                    })
                }
                Mul(a, b) | Div(a, b) => {
                    let code = if matches!(self, Mul(..)) {
                        Binary::Mul
                    } else {
                        Binary::Div
                    };
                    acc_dev(a, r, || {
                        let t = binary_on(r, code, &gd()?, os, &b.dev_buf(r)?, b.shape())?;
                        fold_dev(r, t, os, a.shape())
                    })?;
                    acc_dev(b, r, || match code {
                        Binary::Mul => {
                            let t = binary_on(r, code, &gd()?, os, &a.dev_buf(r)?, a.shape())?;
                            fold_dev(r, t, os, b.shape())
                        }
                        // d(a/b)/db = -out / b
                        _ => {
                            let t = r.binary(Binary::Mul, &gd()?, &out.dev_buf(r)?)?;
                            let t = binary_on(r, code, &t, os, &b.dev_buf(r)?, b.shape())?;
                            let t = fold_dev(r, t, os, b.shape())?;
                            r.unary(Unary::Affine(-1.0, 0.0), &t)
                        }
                    })
                }
                EmbedKernel(x, e) => acc_dev(x, r, || {
                    r.embed_kernel_backward(&e.device(x.dim(0) * x.dim(1)), &gd()?)
                }),
                Sum(a, kept) => acc_dev(a, r, || {
                    // The output gradient broadcast back over the summed axes.
                    let zeros = r.zeros(a.numel())?;
                    binary_on(r, Binary::Add, &zeros, a.shape(), &gd()?, kept)
                }),
                AddScalar(a, _) | Reshape(a) => acc_dev(a, r, || gd()),
                Permute(a, perm) => acc_dev(a, r, || r.permute(os, &inverse(perm), &gd()?)),
                Concat(xs, axis) => {
                    let (outer, total, inner) = mv::around(os, *axis);
                    let mut at = 0;
                    for x in xs {
                        let len = x.dim(*axis);
                        acc_dev(x, r, || r.slice_axis(outer, total, inner, at, len, &gd()?))?;
                        at += len;
                    }
                    Ok(())
                }
                Slice(a, axis, start) => {
                    let (outer, len, inner) = mv::around(os, *axis);
                    let total = a.dim(*axis);
                    acc_dev(a, r, || {
                        r.unslice_axis(outer, total, inner, *start, len, &gd()?)
                    })
                }
                MulScalar(a, s) => acc_dev(a, r, || r.unary(Unary::Affine(*s, 0.0), &gd()?)),
                Exp(a) => acc_dev(a, r, || r.binary(Binary::Mul, &gd()?, &out.dev_buf(r)?)),
                Log(a) => acc_dev(a, r, || r.binary(Binary::Div, &gd()?, &a.dev_buf(r)?)),
                Relu(a) => acc_dev(a, r, || {
                    r.binary(Binary::ReluGrad, &gd()?, &out.dev_buf(r)?)
                }),
                Sigmoid(a) => acc_dev(a, r, || {
                    r.binary(Binary::SigmoidGrad, &gd()?, &out.dev_buf(r)?)
                }),
                Tanh(a) => acc_dev(a, r, || {
                    r.binary(Binary::TanhGrad, &gd()?, &out.dev_buf(r)?)
                }),
                // A shared (2-D) `b` takes every batch's rows as one product.
                MatMul(a, b) => {
                    let (m, k) = (a.dim(a.rank() - 2), a.dim(a.rank() - 1));
                    let n = b.dim(b.rank() - 1);
                    let batch = a.numel() / (m * k);
                    let (rows, each) = match b.rank() {
                        2 => (batch * m, 1),
                        _ => (m, batch),
                    };
                    acc_dev(a, r, || {
                        r.matmul_batched(each, rows, k, n, &gd()?, false, &b.dev_buf(r)?, true)
                    })?;
                    acc_dev(b, r, || {
                        r.matmul_batched(each, k, n, rows, &a.dev_buf(r)?, true, &gd()?, false)
                    })
                }
                Linear(x, w, b) => {
                    let (nout, nin) = (w.dim(0), w.dim(1));
                    let rows = x.numel() / nin;
                    acc_dev(x, r, || {
                        r.matmul(rows, nin, nout, &gd()?, false, &w.dev_buf(r)?, false)
                    })?;
                    acc_dev(w, r, || {
                        r.matmul(nout, nin, rows, &gd()?, true, &x.dev_buf(r)?, false)
                    })?;
                    match b {
                        Some(b) => acc_dev(b, r, || r.channel_sum(rows, nout, 1, &gd()?)),
                        None => Ok(()),
                    }
                }
                Conv2d(x, w, b, p) => {
                    acc_dev(x, r, || r.conv2d_backward_input(p, &gd()?, &w.dev_buf(r)?))?;
                    acc_dev(w, r, || r.conv2d_backward_weight(p, &x.dev_buf(r)?, &gd()?))?;
                    match b {
                        Some(b) => {
                            let plane = p.out_h() * p.out_w();
                            acc_dev(b, r, || r.channel_sum(p.n, p.cout, plane, &gd()?))
                        }
                        None => Ok(()),
                    }
                }
                MaxPool2d(x, p, arg) => acc_dev(x, r, || r.max_pool_backward(p, &gd()?, arg)),
                AvgPool2d(x, p, inc) => acc_dev(x, r, || r.avg_pool_backward(p, *inc, &gd()?)),
                AdaptiveAvgPool2d(x) => {
                    let s = x.shape();
                    acc_dev(x, r, || {
                        r.adaptive_avg_pool_backward(s[0] * s[1], s[2], s[3], os[2], os[3], &gd()?)
                    })
                }
                BatchNorm(x, gamma, beta, mean, invstd) => {
                    let s = x.shape();
                    let (n, c, hw) = (s[0], s[1], s[2] * s[3]);
                    let (xb, gb) = (x.dev_buf(r)?, gamma.dev_buf(r)?);
                    let (mb, ib) = (mean.dev_buf(r)?, invstd.dev_buf(r)?);
                    let (gx, gg, gbeta) =
                        r.batch_norm_backward(n, c, hw, &xb, &gd()?, &gb, &mb, &ib)?;
                    acc_dev(x, r, || Ok(gx))?;
                    acc_dev(gamma, r, || Ok(gg))?;
                    acc_dev(beta, r, || Ok(gbeta))
                }
                LogSoftmax(x) => {
                    let cols = *os.last().unwrap();
                    let rows = out.numel() / cols;
                    acc_dev(x, r, || {
                        r.log_softmax_backward(rows, cols, &out.dev_buf(r)?, &gd()?)
                    })
                }
                WeightedSum(xs, w, idx) => {
                    let wd = w.to_vec();
                    for (x, &i) in xs.iter().zip(idx) {
                        acc_dev(x, r, || r.unary(Unary::Affine(wd[i], 0.0), &gd()?))?;
                    }
                    if needs(w) {
                        let bufs = xs.iter().map(|x| x.dev_buf(r)).collect::<Res<Vec<_>>>()?;
                        let gw = r.weighted_sum_backward_weight(&bufs, &gd()?)?;
                        acc(w, |o| idx.iter().zip(&gw).for_each(|(&i, v)| o[i] += v));
                    }
                    Ok(())
                }
            }
        }
    }

    /// The host rule.
    fn backward_host(&self, out: &Tensor, g: &[f32]) {
        use Op::*;
        let os = out.shape();
        match self {
            Add(a, b) => {
                acc_reduced(a, g, os, 1.0);
                acc_reduced(b, g, os, 1.0);
            }
            Sub(a, b) => {
                acc_reduced(a, g, os, 1.0);
                acc_reduced(b, g, os, -1.0);
            }
            Mul(a, b) => {
                let (ad, bd) = (a.data(), b.data());
                if needs(a) {
                    with_tmp(g.len(), |t| {
                        ew::binary(g, os, &bd, b.shape(), t, |x, y| x * y);
                        acc_reduced(a, t, os, 1.0);
                    });
                }
                if needs(b) {
                    with_tmp(g.len(), |t| {
                        ew::binary(g, os, &ad, a.shape(), t, |x, y| x * y);
                        acc_reduced(b, t, os, 1.0);
                    });
                }
            }
            Div(a, b) => {
                let bd = b.data();
                if needs(a) {
                    with_tmp(g.len(), |t| {
                        ew::binary(g, os, &bd, b.shape(), t, |x, y| x / y);
                        acc_reduced(a, t, os, 1.0);
                    });
                }
                if needs(b) {
                    // d(a/b)/db = -out / b
                    let od = out.data();
                    with_tmp(g.len(), |t| {
                        ew::zip_map(g, &od, t, |x, y| x * y);
                        let t2 = t.to_vec();
                        ew::binary(&t2, os, &bd, b.shape(), t, |x, y| x / y);
                        acc_reduced(b, t, os, -1.0);
                    });
                }
            }
            Sum(a, kept) => acc(a, |ga| ew::acc_broadcast(g, kept, ga, a.shape())),
            Permute(a, perm) => put(a, |ga| mv::permute(g, os, &inverse(perm), ga)),
            // The backends take every other rule (`Op::resident_rule`).
            _ => unreachable!("{} has no host rule", self.name()),
        }
    }
}

thread_local! {
    /// While set, backward fills the gradients of these leaves only (see `grad_only`).
    static ONLY: std::cell::RefCell<Option<HashSet<u64>>> = const { std::cell::RefCell::new(None) };
}

/// Runs `f` (which calls `backward`) so that only `leaves` receive gradients: rules skip
/// work whose result would only reach other leaves (e.g. a supernet's weight gradients
/// during an architecture step, which needs only the mixing weights' gradients).
pub fn grad_only<R>(leaves: &[Tensor], f: impl FnOnce() -> R) -> R {
    let set: HashSet<u64> = leaves.iter().map(|t| t.id()).collect();
    let prev = ONLY.with(|o| o.replace(Some(set)));
    struct Restore(Option<HashSet<u64>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let p = self.0.take();
            ONLY.with(|o| *o.borrow_mut() = p);
        }
    }
    let _r = Restore(prev);
    f()
}

/// Whether backward must produce a gradient for `t`.
fn needs(t: &Tensor) -> bool {
    t.requires_grad()
        && (!t.is_leaf() || ONLY.with(|o| o.borrow().as_ref().is_none_or(|s| s.contains(&t.id()))))
}

/// Runs `f` with a scratch buffer from the pool.
fn with_tmp<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    let mut t = buffer::take(len);
    let r = f(&mut t);
    buffer::give(t);
    r
}

/// Adds into `t`'s gradient (created as zeros on first use); `f` must accumulate.
fn acc(t: &Tensor, f: impl FnOnce(&mut [f32])) {
    if !needs(t) {
        return;
    }
    let mut gl = t.grad_lock();
    let buf = gl.get_or_insert_with(|| Values::Host(buffer::take_zeroed(t.numel())));
    f(buf.host_mut());
}

/// `a op b` on the device, `a` of shape `sa` and `b` of `sb`: the same-shape kernel where
/// the shapes agree, else the broadcasting one.
pub(crate) fn binary_on(
    r: &dyn Resident,
    op: Binary,
    a: &DevBuf,
    sa: &[usize],
    b: &DevBuf,
    sb: &[usize],
) -> Res<DevBuf> {
    if sa == sb {
        r.binary(op, a, b)
    } else {
        r.binary_broadcast(op, a, sa, b, sb)
    }
}

/// The gradient `g` of an output of shape `gs` summed down to an operand of shape `ts`
/// (unchanged where the shapes agree).
fn fold_dev(r: &dyn Resident, g: DevBuf, gs: &[usize], ts: &[usize]) -> Res<DevBuf> {
    if gs == ts {
        Ok(g)
    } else {
        r.reduce_to(&g, gs, ts)
    }
}

/// Adds the device gradient `f` makes into `t`'s (asking for it only if `t` needs one):
/// a first gradient is kept as it is, a later one added on the device (or on the host,
/// where `t`'s gradient already is).
fn acc_dev(t: &Tensor, r: &dyn Resident, f: impl FnOnce() -> Res<DevBuf>) -> Res<()> {
    if !needs(t) {
        return Ok(());
    }
    let g = f()?;
    let mut gl = t.grad_lock();
    let g = match g {
        // The CPU's gradient: kept as the host's (the optimisers update in place; a
        // fresh result is taken without a copy), added in place to one there already.
        DevBuf::Host(h) => {
            match gl.as_mut() {
                None => *gl = Some(Values::Host(h.into_vec())),
                Some(e) => ew::acc_map(h.as_slice(), e.host_mut(), |v| v),
            }
            return Ok(());
        }
        g => g,
    };
    *gl = Some(match gl.take() {
        None => Values::Dev(g),
        Some(Values::Dev(e)) => Values::Dev(r.binary(Binary::Add, &e, &g)?),
        Some(Values::Host(mut h)) => {
            ew::acc_map(&g.to_vec()?, &mut h, |v| v);
            Values::Host(h)
        }
    });
    Ok(())
}

/// Like `acc`, for kernels that overwrite their output: writes straight into a fresh
/// gradient, or into scratch that is then added.
fn put(t: &Tensor, f: impl FnOnce(&mut [f32])) {
    if !needs(t) {
        return;
    }
    let mut gl = t.grad_lock();
    match gl.as_mut() {
        None => {
            let mut b = buffer::take(t.numel());
            f(&mut b);
            *gl = Some(Values::Host(b));
        }
        Some(existing) => {
            let mut b = buffer::take(t.numel());
            f(&mut b);
            ew::acc_map(&b, existing.host_mut(), |v| v);
            buffer::give(b);
        }
    }
}

/// Adds `scale * g`, summed down from the broadcast shape `gs` to `t`'s shape.
fn acc_reduced(t: &Tensor, g: &[f32], gs: &[usize], scale: f32) {
    if !needs(t) {
        return;
    }
    if t.shape() == gs {
        return acc(t, |a| ew::acc_map(g, a, |v| v * scale));
    }
    let mut tmp = buffer::take_zeroed(t.numel());
    ew::acc_sum_to(g, gs, &mut tmp, t.shape());
    acc(t, |a| ew::acc_map(&tmp, a, |v| v * scale));
    buffer::give(tmp);
}

impl Tensor {
    /// Back-propagates from this one-element tensor (the loss) into every tensor that
    /// requires a gradient. Gradients of leaves accumulate until `zero_grad`; those of
    /// intermediate results are freed as soon as they have been used.
    pub fn backward(&self) {
        assert_eq!(
            self.numel(),
            1,
            "backward() needs a one-element loss, got {:?}",
            self.shape()
        );
        if !self.requires_grad() {
            return;
        }
        let order = self.topo_order();
        {
            let mut gl = self.grad_lock();
            match gl.as_mut() {
                Some(g) => g.host_mut()[0] += 1.0,
                None => *gl = Some(Values::Host(vec![1.0])),
            }
        }
        for t in order.iter().rev() {
            let Some(op) = t.op() else { continue };
            let Some(g) = t.grad_lock().take() else {
                continue;
            };
            if crate::profile::enabled() {
                let device = op.device_rule(t, &g);
                let (name, flops, bytes) = op.profile(t.numel(), device);
                crate::profile::record(name, flops, bytes, || {
                    op.backward(t, g);
                    if let Some((a, r)) = device {
                        on_device(a, name, r.finish());
                    }
                });
            } else {
                op.backward(t, g);
            }
        }
    }

    /// Nodes that require a gradient, each after all of its inputs.
    fn topo_order(&self) -> Vec<Tensor> {
        let mut seen = HashSet::new();
        let mut order = vec![];
        // Iterative DFS: (node, children pushed yet?)
        let mut stack = vec![(self.clone(), false)];
        while let Some((t, expanded)) = stack.pop() {
            if expanded {
                order.push(t);
                continue;
            }
            if !seen.insert(t.id()) {
                continue;
            }
            stack.push((t.clone(), true));
            if let Some(op) = t.op() {
                for i in op.inputs() {
                    if i.requires_grad() && !seen.contains(&i.id()) {
                        stack.push((i.clone(), false));
                    }
                }
            }
        }
        order
    }
}

/// The permutation that undoes `perm` (a permute's gradient).
fn inverse(perm: &[usize]) -> Vec<usize> {
    let mut inv = vec![0; perm.len()];
    for (i, &p) in perm.iter().enumerate() {
        inv[p] = i;
    }
    inv
}
