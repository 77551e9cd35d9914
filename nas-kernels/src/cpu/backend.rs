//! The CPU as a backend like the others: both boundaries ([`Resident`] on host buffers,
//! [`Accel`] on slices) over this module's kernels, with the argument checks the device
//! backends make (the same functions, in `accel`), held to the same test suites as the
//! device backends. The engine's forward ops and gradient rules on host tensors run
//! through it: a host tensor keeps its values in a [`HostBuf`], which the kernels read
//! in place.

use super::{buffer, conv, elementwise as ew, gemm, norm, optim, pool, shape as mv, softmax};
use crate::accel::{
    self, check_channels, check_len, check_range, check_running_lens, same_lengths, Accel, Binary,
    DevBuf, Embed, KernelError, Peaks, Place, Res, Resident, Unary,
};
use crate::cpu::conv::Conv2d;
use crate::cpu::pool::Pool2d;
use std::sync::Arc;

/// Values in host memory, as a [`DevBuf`] holds them and as a host tensor keeps them.
/// Cloning shares them; no kernel writes into a buffer it did not make, and a writer
/// ([`HostBuf::make_mut`]) copies values someone else still shares. The last holder
/// gives the vector back to this thread's pool ([`buffer`]).
#[derive(Clone, Debug)]
pub struct HostBuf(Arc<Vec<f32>>);

impl HostBuf {
    pub fn new(v: Vec<f32>) -> HostBuf {
        HostBuf(Arc::new(v))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn as_slice(&self) -> &[f32] {
        &self.0
    }

    pub fn as_vec(&self) -> &Vec<f32> {
        &self.0
    }

    /// The values to change in place: these, or a pooled copy if another holder shares
    /// them (which keeps its values).
    pub fn make_mut(&mut self) -> &mut Vec<f32> {
        if Arc::get_mut(&mut self.0).is_none() {
            self.0 = Arc::new(self.clone().into_vec());
        }
        Arc::get_mut(&mut self.0).expect("a buffer no one else holds")
    }

    /// The values, taken out without a copy where no one else shares them (else a
    /// pooled copy).
    pub fn into_vec(mut self) -> Vec<f32> {
        match Arc::get_mut(&mut self.0) {
            Some(v) => std::mem::take(v),
            None => {
                let mut copy = buffer::take(self.0.len());
                copy.copy_from_slice(&self.0);
                copy
            }
        }
    }

    /// Whether both hold the same values (one buffer, shared).
    pub fn same(&self, other: &HostBuf) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    pub fn to_u32_vec(&self) -> Vec<u32> {
        self.0.iter().map(|v| v.to_bits()).collect()
    }
}

impl Drop for HostBuf {
    fn drop(&mut self) {
        if let Some(v) = Arc::get_mut(&mut self.0) {
            buffer::give(std::mem::take(v));
        }
    }
}

/// The CPU backend (rayon's workers, this module's kernels).
pub struct Cpu;

/// The process's CPU backend.
pub static CPU: Cpu = Cpu;

/// The host values of `x`, or the error of a buffer of another device.
fn hb(x: &DevBuf) -> Res<&[f32]> {
    match x {
        DevBuf::Host(b) => Ok(b.as_slice()),
        other => Err(accel::foreign("cpu kernel", "cpu", other)),
    }
}

fn out(v: Vec<f32>) -> Res<DevBuf> {
    Ok(DevBuf::Host(HostBuf::new(v)))
}

/// `len` floats made by `f`, which writes every one (a pooled buffer, its old values
/// left for `f` to overwrite).
fn made(len: usize, f: impl FnOnce(&mut [f32])) -> Res<DevBuf> {
    let mut y = buffer::take(len);
    f(&mut y);
    out(y)
}

/// `len` floats made by `f` from zeros (`f` adds into them, or writes only some).
fn made_zeroed(len: usize, f: impl FnOnce(&mut [f32])) -> Res<DevBuf> {
    made(len, |y| {
        y.fill(0.0);
        f(y)
    })
}

/// Adds `bias[ch]` to every value of channel `ch` of `y`, rows of `plane` values with
/// the channels cycling (`[n, c, plane]`, `c` the bias's length).
fn add_per_channel(y: &mut [f32], bias: &[f32], plane: usize) {
    if plane <= 1 {
        // A bias per column of rows (a linear layer's): whole rows at a time.
        for row in y.chunks_mut(bias.len().max(1)) {
            row.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
        }
        return;
    }
    for (i, row) in y.chunks_mut(plane).enumerate() {
        let b = bias[i % bias.len()];
        row.iter_mut().for_each(|v| *v += b);
    }
}

/// Runs `$body` with `$f` bound to the host map of [`Unary`] `$op`, a closure of its own
/// type for each op so the kernel inlines it (a boxed or pointed-to function costs a call
/// per value and keeps the loop from vectorising).
macro_rules! with_unary {
    ($op:expr, $f:ident => $body:expr) => {
        match $op {
            Unary::Relu => {
                let $f = |x: f32| x.max(0.0);
                $body
            }
            Unary::Exp => {
                let $f = f32::exp;
                $body
            }
            Unary::Log => {
                let $f = f32::ln;
                $body
            }
            Unary::Sigmoid => {
                let $f = super::math::sigmoid;
                $body
            }
            Unary::Tanh => {
                let $f = super::math::tanh;
                $body
            }
            Unary::Affine(a, b) => {
                let $f = move |x: f32| x * a + b;
                $body
            }
        }
    };
}

/// [`with_unary`] for [`Binary`] ops.
macro_rules! with_binary {
    ($op:expr, $f:ident => $body:expr) => {
        match $op {
            Binary::Add => {
                let $f = |a: f32, b: f32| a + b;
                $body
            }
            Binary::Sub => {
                let $f = |a: f32, b: f32| a - b;
                $body
            }
            Binary::Mul => {
                let $f = |a: f32, b: f32| a * b;
                $body
            }
            Binary::Div => {
                let $f = |a: f32, b: f32| a / b;
                $body
            }
            Binary::ReluGrad => {
                let $f = |g: f32, y: f32| if y > 0.0 { g } else { 0.0 };
                $body
            }
            Binary::SigmoidGrad => {
                let $f = |g: f32, y: f32| g * y * (1.0 - y);
                $body
            }
            Binary::TanhGrad => {
                let $f = |g: f32, y: f32| g * (1.0 - y * y);
                $body
            }
        }
    };
}

impl Resident for Cpu {
    fn place(&self) -> Place {
        Place::Cpu
    }

    fn finish(&self) -> Res<()> {
        Ok(())
    }

    fn upload(&self, x: &[f32]) -> Res<DevBuf> {
        made(x.len(), |y| y.copy_from_slice(x))
    }

    fn zeros(&self, len: usize) -> Res<DevBuf> {
        made_zeroed(len, |_| ())
    }

    fn dropout_mask(&self, len: usize, d: &super::random::Dropout) -> Res<DevBuf> {
        super::random::Dropout::check_len(len)?;
        made(len, |y| super::random::dropout_mask(d, y))
    }

    fn embed_kernel(&self, e: &Embed, x: &DevBuf) -> Res<DevBuf> {
        let x = hb(x)?;
        let n = e.planes * e.size * e.size;
        e.validate(x.len(), n)?;
        made_zeroed(n, |y| {
            for (p, plane) in x.chunks(e.k * e.k).enumerate() {
                let big = &mut y[p * e.size * e.size..(p + 1) * e.size * e.size];
                for a in 0..e.k {
                    for b in 0..e.k {
                        big[e.at(a, b)] = plane[a * e.k + b];
                    }
                }
            }
        })
    }

    fn embed_kernel_backward(&self, e: &Embed, g: &DevBuf) -> Res<DevBuf> {
        let g = hb(g)?;
        let n = e.planes * e.k * e.k;
        e.validate(n, g.len())?;
        made(n, |y| {
            for (p, small) in y.chunks_mut(e.k * e.k).enumerate() {
                let big = &g[p * e.size * e.size..(p + 1) * e.size * e.size];
                for a in 0..e.k {
                    for b in 0..e.k {
                        small[a * e.k + b] = big[e.at(a, b)];
                    }
                }
            }
        })
    }

    fn unary(&self, op: Unary, x: &DevBuf) -> Res<DevBuf> {
        let x = hb(x)?;
        made(x.len(), |y| with_unary!(op, f => ew::map(x, y, f)))
    }

    fn binary(&self, op: Binary, a: &DevBuf, b: &DevBuf) -> Res<DevBuf> {
        let (a, b) = (hb(a)?, hb(b)?);
        check_len("binary operand", b.len(), a.len())?;
        made(a.len(), |y| with_binary!(op, f => ew::zip_map(a, b, y, f)))
    }

    fn binary_broadcast(
        &self,
        op: Binary,
        a: &DevBuf,
        sa: &[usize],
        b: &DevBuf,
        sb: &[usize],
    ) -> Res<DevBuf> {
        let (a, b) = (hb(a)?, hb(b)?);
        let [y, ..] = accel::broadcast_shapes(sa, a.len(), sb, b.len())?;
        accel::broadcast_code(op)?;
        let n = y.iter().product();
        if n == 0 {
            return out(vec![]);
        }
        made(n, |y| with_binary!(op, f => ew::binary(a, sa, b, sb, y, f)))
    }

    fn reduce_to(&self, g: &DevBuf, sy: &[usize], sx: &[usize]) -> Res<DevBuf> {
        let g = hb(g)?;
        accel::sum_shapes(sy, g.len(), sx)?;
        let n: usize = sx.iter().product();
        if n == 0 || g.is_empty() {
            return out(vec![0.0; n]);
        }
        // Both at the same rank (the shorter padded with leading 1s), as the kernel walks.
        let rank = sy.len().max(sx.len());
        let pad = |s: &[usize]| {
            let mut p = vec![1; rank - s.len()];
            p.extend_from_slice(s);
            p
        };
        let (sy, sx) = (pad(sy), pad(sx));
        made_zeroed(n, |y| ew::acc_sum_to(g, &sy, y, &sx))
    }

    fn permute(&self, shape: &[usize], perm: &[usize], x: &DevBuf) -> Res<DevBuf> {
        let x = hb(x)?;
        accel::permute6(shape, perm, x.len())?;
        if x.is_empty() {
            return out(vec![]);
        }
        made(x.len(), |y| mv::permute(x, shape, perm, y))
    }

    fn matmul_batched(
        &self,
        batch: usize,
        m: usize,
        n: usize,
        k: usize,
        a: &DevBuf,
        ta: bool,
        b: &DevBuf,
        tb: bool,
    ) -> Res<DevBuf> {
        let (a, b) = (hb(a)?, hb(b)?);
        crate::accel::matmul_lens(batch, m, n, k, a.len(), b.len())?;
        made(batch * m * n, |y| {
            if !y.is_empty() {
                gemm::sgemm_batched(batch, m, n, k, a, ta, b, tb, y, false)
            }
        })
    }

    fn concat_axis(&self, outer: usize, inner: usize, parts: &[(DevBuf, usize)]) -> Res<DevBuf> {
        let parts = parts
            .iter()
            .map(|(b, len)| {
                let x = hb(b)?;
                check_len("concat part", x.len(), outer * len * inner)?;
                Ok((x, *len))
            })
            .collect::<Res<Vec<_>>>()?;
        let total: usize = parts.iter().map(|(_, len)| len).sum();
        made(outer * total * inner, |y| {
            let mut at = 0;
            for (x, len) in parts {
                mv::copy_axis_block(x, outer, len, inner, y, total, at, false);
                at += len;
            }
        })
    }

    fn slice_axis(
        &self,
        outer: usize,
        total: usize,
        inner: usize,
        start: usize,
        len: usize,
        x: &DevBuf,
    ) -> Res<DevBuf> {
        let x = hb(x)?;
        check_len("slice input", x.len(), outer * total * inner)?;
        check_range(start, len, total)?;
        made(outer * len * inner, |y| {
            mv::slice_axis(x, outer, total, inner, start, len, y)
        })
    }

    fn unslice_axis(
        &self,
        outer: usize,
        total: usize,
        inner: usize,
        start: usize,
        len: usize,
        g: &DevBuf,
    ) -> Res<DevBuf> {
        let g = hb(g)?;
        check_len("slice gradient", g.len(), outer * len * inner)?;
        check_range(start, len, total)?;
        made_zeroed(outer * total * inner, |y| {
            mv::copy_axis_block(g, outer, len, inner, y, total, start, false)
        })
    }

    fn add_channel(&self, c: usize, plane: usize, x: &DevBuf, bias: &DevBuf) -> Res<DevBuf> {
        let (x, bias) = (hb(x)?, hb(bias)?);
        check_len("bias", bias.len(), c)?;
        check_channels(x.len(), c, plane)?;
        made(x.len(), |y| {
            y.copy_from_slice(x);
            add_per_channel(y, bias, plane)
        })
    }

    fn channel_sum(&self, n: usize, c: usize, plane: usize, g: &DevBuf) -> Res<DevBuf> {
        let g = hb(g)?;
        check_len("channel_sum input", g.len(), n * c * plane)?;
        let plane = plane.max(1);
        if plane == 1 {
            // Column sums of rows (a linear layer's bias): whole rows at a time.
            return made_zeroed(c, |y| {
                for row in g.chunks(c.max(1)) {
                    y.iter_mut().zip(row).for_each(|(s, v)| *s += v);
                }
            });
        }
        if g.len() < super::PAR_MIN || plane < 256 {
            return made_zeroed(c, |y| {
                for (i, row) in g.chunks(plane).enumerate() {
                    y[i % c] += ew::sum_lanes(row);
                }
            });
        }
        // Each row's sum on rayon's workers, then the rows of a channel in order.
        use rayon::prelude::*;
        let rows: Vec<f32> = g.par_chunks(plane).map(ew::sum_lanes).collect();
        made_zeroed(c, |y| {
            for (i, v) in rows.iter().enumerate() {
                y[i % c] += v;
            }
        })
    }

    fn conv2d(&self, p: &Conv2d, x: &DevBuf, w: &DevBuf, bias: Option<&DevBuf>) -> Res<DevBuf> {
        let (x, w) = (hb(x)?, hb(w)?);
        let bias = bias.map(hb).transpose()?;
        accel::conv_lens(
            p,
            Some(x.len()),
            Some(w.len()),
            None,
            bias.map(<[f32]>::len),
        )?;
        if p.out_len() == 0 || x.is_empty() {
            // No outputs, or a sum over no input channels: the bias alone.
            let plane = p.out_h() * p.out_w();
            return made_zeroed(p.out_len(), |y| {
                if let Some(b) = bias {
                    add_per_channel(y, b, plane);
                }
            });
        }
        made(p.out_len(), |y| conv::conv2d_forward(p, x, w, bias, y))
    }

    fn conv2d_backward_input(&self, p: &Conv2d, gy: &DevBuf, w: &DevBuf) -> Res<DevBuf> {
        let (gy, w) = (hb(gy)?, hb(w)?);
        accel::check_conv(p, None, Some(w), Some(gy))?;
        let len = p.n * p.cin * p.h * p.w;
        if len == 0 || gy.is_empty() {
            return out(vec![0.0; len]);
        }
        made(len, |gx| conv::conv2d_backward_input(p, gy, w, gx))
    }

    fn conv2d_backward_weight(&self, p: &Conv2d, x: &DevBuf, gy: &DevBuf) -> Res<DevBuf> {
        let (x, gy) = (hb(x)?, hb(gy)?);
        accel::check_conv(p, Some(x), None, Some(gy))?;
        if p.weight_len() == 0 || x.is_empty() || gy.is_empty() {
            return out(vec![0.0; p.weight_len()]);
        }
        made(p.weight_len(), |gw| {
            conv::conv2d_backward_weight(p, x, gy, gw, None)
        })
    }

    fn max_pool(&self, p: &Pool2d, x: &DevBuf) -> Res<(DevBuf, DevBuf)> {
        let x = hb(x)?;
        crate::accel::pool_lens(p, "max_pool", Some(x.len()), None, None)?;
        let len = p.n * p.c * p.out_h() * p.out_w();
        // The argmax's indices as their bits, in a buffer of floats like the values'.
        let (mut y, mut arg) = (buffer::take(len), buffer::take(len));
        pool::max_pool2d_forward(p, x, &mut y, &mut arg);
        Ok((out(y)?, out(arg)?))
    }

    fn max_pool_backward(&self, p: &Pool2d, gy: &DevBuf, arg: &DevBuf) -> Res<DevBuf> {
        let gy = hb(gy)?;
        let DevBuf::Host(arg) = arg else {
            return Err(accel::foreign("max_pool_backward", "cpu", arg));
        };
        accel::pool_lens(p, "max_pool", None, Some(gy.len()), Some(arg.len()))?;
        let arg = arg.as_slice();
        if arg.iter().any(|&i| i.to_bits() as usize >= p.h * p.w) {
            return Err(KernelError::Invalid(
                "max_pool_backward: an argmax outside the input plane".into(),
            ));
        }
        made(p.n * p.c * p.h * p.w, |gx| {
            pool::max_pool2d_backward(p, gy, arg, gx)
        })
    }

    fn avg_pool(&self, p: &Pool2d, cip: bool, x: &DevBuf) -> Res<DevBuf> {
        let x = hb(x)?;
        crate::accel::pool_lens(p, "avg_pool", Some(x.len()), None, None)?;
        made(p.n * p.c * p.out_h() * p.out_w(), |y| {
            pool::avg_pool2d_forward(p, cip, x, y)
        })
    }

    fn avg_pool_backward(&self, p: &Pool2d, cip: bool, gy: &DevBuf) -> Res<DevBuf> {
        let gy = hb(gy)?;
        accel::pool_lens(p, "avg_pool", None, Some(gy.len()), None)?;
        made(p.n * p.c * p.h * p.w, |gx| {
            pool::avg_pool2d_backward(p, cip, gy, gx)
        })
    }

    fn adaptive_avg_pool(
        &self,
        planes: usize,
        h: usize,
        w: usize,
        oh: usize,
        ow: usize,
        x: &DevBuf,
    ) -> Res<DevBuf> {
        let x = hb(x)?;
        crate::accel::adaptive_lens([planes, h, w, oh, ow], Some(x.len()), None)?;
        check_bins(h, w, oh, ow)?;
        if planes * oh * ow == 0 {
            return out(vec![]);
        }
        made(planes * oh * ow, |y| {
            pool::adaptive_avg_pool2d_forward(planes, 1, h, w, oh, ow, x, y)
        })
    }

    fn adaptive_avg_pool_backward(
        &self,
        planes: usize,
        h: usize,
        w: usize,
        oh: usize,
        ow: usize,
        gy: &DevBuf,
    ) -> Res<DevBuf> {
        let gy = hb(gy)?;
        crate::accel::adaptive_lens([planes, h, w, oh, ow], None, Some(gy.len()))?;
        check_bins(h, w, oh, ow)?;
        if planes * h * w == 0 {
            return out(vec![]);
        }
        made(planes * h * w, |gx| {
            pool::adaptive_avg_pool2d_backward(planes, 1, h, w, oh, ow, gy, gx)
        })
    }

    fn batch_norm_train(
        &self,
        n: usize,
        c: usize,
        hw: usize,
        x: &DevBuf,
        gamma: &DevBuf,
        beta: &DevBuf,
        eps: f32,
    ) -> Res<(DevBuf, DevBuf, DevBuf)> {
        let (x, gamma, beta) = (hb(x)?, hb(gamma)?, hb(beta)?);
        crate::accel::batch_norm_lens(
            [n, c, hw],
            x.len(),
            None,
            &[("gamma", gamma.len()), ("beta", beta.len())],
        )?;
        let (mut y, mut mean, mut invstd) = (buffer::take(x.len()), vec![0.0; c], vec![0.0; c]);
        norm::batch_norm_forward_train(
            n,
            c,
            hw,
            x,
            gamma,
            beta,
            eps,
            &mut y,
            &mut mean,
            &mut invstd,
        );
        Ok((out(y)?, out(mean)?, out(invstd)?))
    }

    fn batch_norm_backward(
        &self,
        n: usize,
        c: usize,
        hw: usize,
        x: &DevBuf,
        gy: &DevBuf,
        gamma: &DevBuf,
        mean: &DevBuf,
        invstd: &DevBuf,
    ) -> Res<(DevBuf, DevBuf, DevBuf)> {
        let (x, gy) = (hb(x)?, hb(gy)?);
        let (gamma, mean, invstd) = (hb(gamma)?, hb(mean)?, hb(invstd)?);
        let per_channel = [
            ("gamma", gamma.len()),
            ("mean", mean.len()),
            ("1/std", invstd.len()),
        ];
        crate::accel::batch_norm_lens([n, c, hw], x.len(), Some(gy.len()), &per_channel)?;
        let (mut gx, mut gg, mut gb) = (buffer::take(x.len()), vec![0.0; c], vec![0.0; c]);
        norm::batch_norm_backward(
            n, c, hw, x, gy, gamma, mean, invstd, &mut gx, &mut gg, &mut gb,
        );
        Ok((out(gx)?, out(gg)?, out(gb)?))
    }

    fn batch_norm_running(
        &self,
        count: usize,
        momentum: f32,
        eps: f32,
        mean: &DevBuf,
        invstd: &DevBuf,
        running_mean: &DevBuf,
        running_var: &DevBuf,
    ) -> Res<(DevBuf, DevBuf)> {
        let (mean, invstd) = (hb(mean)?, hb(invstd)?);
        let (mut rm, mut rv) = (hb(running_mean)?.to_vec(), hb(running_var)?.to_vec());
        check_running_lens(mean.len(), invstd.len(), rm.len(), rv.len())?;
        norm::batch_norm_update_running(count, momentum, mean, invstd, eps, &mut rm, &mut rv);
        Ok((out(rm)?, out(rv)?))
    }

    fn log_softmax(&self, rows: usize, cols: usize, x: &DevBuf) -> Res<DevBuf> {
        let x = hb(x)?;
        crate::accel::log_softmax_lens(rows, cols, x.len(), None)?;
        made(rows * cols, |y| {
            softmax::log_softmax_forward(rows, cols, x, y)
        })
    }

    fn log_softmax_backward(
        &self,
        rows: usize,
        cols: usize,
        y: &DevBuf,
        gy: &DevBuf,
    ) -> Res<DevBuf> {
        let (y, gy) = (hb(y)?, hb(gy)?);
        crate::accel::log_softmax_lens(rows, cols, y.len(), Some(gy.len()))?;
        made(rows * cols, |gx| {
            softmax::log_softmax_backward(rows, cols, y, gy, gx)
        })
    }

    fn nll(&self, rows: usize, cols: usize, logp: &DevBuf, targets: &[u32]) -> Res<f32> {
        let logp = hb(logp)?;
        accel::check_targets(rows, cols, logp.len(), targets)?;
        Ok(softmax::nll_loss_forward(rows, cols, logp, targets))
    }

    fn nll_backward(&self, rows: usize, cols: usize, targets: &[u32], g: f32) -> Res<DevBuf> {
        accel::check_targets(rows, cols, rows * cols, targets)?;
        made(rows * cols, |gx| {
            softmax::nll_loss_backward(rows, cols, targets, g, gx)
        })
    }

    fn weighted_sum(&self, xs: &[DevBuf], w: &[f32]) -> Res<DevBuf> {
        let xs = xs.iter().map(hb).collect::<Res<Vec<_>>>()?;
        let n = same_lengths("weighted sum", xs.iter().map(|x| x.len()), w.len())?;
        made(n, |y| ew::weighted_sum(&xs, w, y))
    }

    fn weighted_sum_backward_weight(&self, xs: &[DevBuf], gy: &DevBuf) -> Res<Vec<f32>> {
        let gy = hb(gy)?;
        let xs = xs.iter().map(hb).collect::<Res<Vec<_>>>()?;
        let n = same_lengths("weighted sum", xs.iter().map(|x| x.len()), xs.len())?;
        check_len("weighted sum output gradient", gy.len(), n)?;
        Ok(xs.iter().map(|x| ew::dot(gy, x)).collect())
    }

    fn sgd(
        &self,
        w: &DevBuf,
        g: &DevBuf,
        v: Option<&DevBuf>,
        lr: f32,
        mu: f32,
        wd: f32,
        nesterov: bool,
    ) -> Res<(DevBuf, DevBuf)> {
        let (mut w, g) = (hb(w)?.to_vec(), hb(g)?);
        let n = w.len();
        check_len("sgd gradient", g.len(), n)?;
        let (mut v, first) = match v {
            Some(v) => {
                let v = hb(v)?;
                check_len("sgd momentum buffer", v.len(), n)?;
                (v.to_vec(), false)
            }
            None => (vec![0.0; n], true),
        };
        if mu == 0.0 {
            // No momentum: the buffer comes back as it was, as on the devices.
            optim::sgd_plain(&mut w, g, lr, wd);
        } else {
            optim::sgd_momentum(&mut w, g, &mut v, first, lr, mu, wd, nesterov);
        }
        Ok((out(w)?, out(v)?))
    }

    fn adam(
        &self,
        w: &DevBuf,
        g: &DevBuf,
        m: &DevBuf,
        v: &DevBuf,
        lr: f32,
        betas_eps: (f32, f32, f32),
        wd: f32,
        decoupled: bool,
        t: i32,
    ) -> Res<(DevBuf, DevBuf, DevBuf)> {
        let (mut w, g) = (hb(w)?.to_vec(), hb(g)?);
        let (mut m, mut v) = (hb(m)?.to_vec(), hb(v)?.to_vec());
        let n = w.len();
        crate::accel::step_lens(
            "adam",
            n,
            g.len(),
            &[("first moment", m.len()), ("second moment", v.len())],
        )?;
        let adam = optim::Adam {
            lr,
            betas_eps,
            wd,
            decoupled,
            t,
        };
        adam.update(&mut w, g, &mut m, &mut v);
        Ok((out(w)?, out(m)?, out(v)?))
    }
}

/// The CPU's [`Accel`]: the kernels on the caller's slices (no copies to make).
impl Accel for Cpu {
    fn kind(&self) -> &'static str {
        "cpu"
    }

    fn describe(&self) -> String {
        format!("CPU, {} threads", super::threads())
    }

    fn matmul(
        &self,
        m: usize,
        n: usize,
        k: usize,
        a: &[f32],
        ta: bool,
        b: &[f32],
        tb: bool,
    ) -> Res<Vec<f32>> {
        crate::accel::matmul_lens(1, m, n, k, a.len(), b.len())?;
        let mut y = vec![0.0; m * n];
        gemm::sgemm(m, n, k, a, ta, b, tb, &mut y, false, true);
        Ok(y)
    }

    fn conv2d(&self, p: &Conv2d, x: &[f32], w: &[f32]) -> Res<Vec<f32>> {
        host(Resident::conv2d(self, p, &up(x), &up(w), None))
    }

    fn conv2d_backward_input(&self, p: &Conv2d, gy: &[f32], w: &[f32]) -> Res<Vec<f32>> {
        host(Resident::conv2d_backward_input(self, p, &up(gy), &up(w)))
    }

    fn conv2d_backward_weight(&self, p: &Conv2d, x: &[f32], gy: &[f32]) -> Res<Vec<f32>> {
        host(Resident::conv2d_backward_weight(self, p, &up(x), &up(gy)))
    }

    fn max_pool(&self, p: &Pool2d, x: &[f32]) -> Res<(Vec<f32>, Vec<u32>)> {
        let (y, arg) = Resident::max_pool(self, p, &up(x))?;
        Ok((host(Ok(y))?, arg.to_u32_vec()?))
    }

    fn max_pool_backward(&self, p: &Pool2d, gy: &[f32], arg: &[u32]) -> Res<Vec<f32>> {
        let arg = DevBuf::Host(HostBuf::new(
            arg.iter().map(|&i| f32::from_bits(i)).collect(),
        ));
        host(Resident::max_pool_backward(self, p, &up(gy), &arg))
    }

    fn avg_pool(&self, p: &Pool2d, cip: bool, x: &[f32]) -> Res<Vec<f32>> {
        host(Resident::avg_pool(self, p, cip, &up(x)))
    }

    fn avg_pool_backward(&self, p: &Pool2d, cip: bool, gy: &[f32]) -> Res<Vec<f32>> {
        host(Resident::avg_pool_backward(self, p, cip, &up(gy)))
    }

    fn adaptive_avg_pool(
        &self,
        planes: usize,
        h: usize,
        w: usize,
        oh: usize,
        ow: usize,
        x: &[f32],
    ) -> Res<Vec<f32>> {
        host(Resident::adaptive_avg_pool(
            self,
            planes,
            h,
            w,
            oh,
            ow,
            &up(x),
        ))
    }

    fn adaptive_avg_pool_backward(
        &self,
        planes: usize,
        h: usize,
        w: usize,
        oh: usize,
        ow: usize,
        gy: &[f32],
    ) -> Res<Vec<f32>> {
        host(Resident::adaptive_avg_pool_backward(
            self,
            planes,
            h,
            w,
            oh,
            ow,
            &up(gy),
        ))
    }

    fn batch_norm_train(
        &self,
        n: usize,
        c: usize,
        hw: usize,
        x: &[f32],
        gamma: &[f32],
        beta: &[f32],
        eps: f32,
    ) -> Res<(Vec<f32>, Vec<f32>, Vec<f32>)> {
        let (x, g, b) = (up(x), up(gamma), up(beta));
        let (y, m, i) = Resident::batch_norm_train(self, n, c, hw, &x, &g, &b, eps)?;
        Ok((host(Ok(y))?, host(Ok(m))?, host(Ok(i))?))
    }

    fn batch_norm_backward(
        &self,
        n: usize,
        c: usize,
        hw: usize,
        x: &[f32],
        gy: &[f32],
        gamma: &[f32],
        mean: &[f32],
        invstd: &[f32],
    ) -> Res<(Vec<f32>, Vec<f32>, Vec<f32>)> {
        let (x, gy, g) = (up(x), up(gy), up(gamma));
        let (m, i) = (up(mean), up(invstd));
        let (gx, gg, gb) = Resident::batch_norm_backward(self, n, c, hw, &x, &gy, &g, &m, &i)?;
        Ok((host(Ok(gx))?, host(Ok(gg))?, host(Ok(gb))?))
    }

    fn log_softmax(&self, rows: usize, cols: usize, x: &[f32]) -> Res<Vec<f32>> {
        host(Resident::log_softmax(self, rows, cols, &up(x)))
    }

    fn log_softmax_backward(
        &self,
        rows: usize,
        cols: usize,
        y: &[f32],
        gy: &[f32],
    ) -> Res<Vec<f32>> {
        host(Resident::log_softmax_backward(
            self,
            rows,
            cols,
            &up(y),
            &up(gy),
        ))
    }

    fn weighted_sum(&self, k: usize, xs: &[f32], w: &[f32]) -> Res<Vec<f32>> {
        let n = accel::candidate_len(k, xs, w, None)?;
        host(Resident::weighted_sum(self, &candidates(k, n, xs), w))
    }

    fn weighted_sum_backward(
        &self,
        k: usize,
        xs: &[f32],
        w: &[f32],
        gy: &[f32],
    ) -> Res<(Vec<f32>, Vec<f32>)> {
        let n = accel::candidate_len(k, xs, w, Some(gy))?;
        let gx = w
            .iter()
            .flat_map(|&wj| gy.iter().map(move |g| wj * g))
            .collect();
        let gw = Resident::weighted_sum_backward_weight(self, &candidates(k, n, xs), &up(gy))?;
        Ok((gx, gw))
    }

    /// Measured here: SGEMM 1024^3 and a streaming copy of 64 MiB, the fastest of a few
    /// runs each.
    fn peaks(&self) -> Res<Peaks> {
        use crate::timing::fastest_ms;
        let n = 1024;
        let (a, b, mut c) = (
            vec![1.0f32; n * n],
            vec![0.5f32; n * n],
            vec![0.0f32; n * n],
        );
        let ms = fastest_ms(3, || {
            gemm::sgemm(n, n, n, &a, false, &b, false, &mut c, false, true);
            std::hint::black_box(&mut c);
        });
        let gflops = 2.0 * (n * n * n) as f64 / ms / 1e6;
        let len = 16 << 20;
        let (src, mut dst) = (vec![1.0f32; len], vec![0.0f32; len]);
        let ms = fastest_ms(5, || {
            dst.copy_from_slice(std::hint::black_box(&src));
            std::hint::black_box(&mut dst);
        });
        Ok(Peaks {
            gflops,
            gbs: 8.0 * len as f64 / ms / 1e6,
            how: "measured",
        })
    }

    fn nll(&self, rows: usize, cols: usize, logp: &[f32], targets: &[u32]) -> Res<f32> {
        Resident::nll(self, rows, cols, &up(logp), targets)
    }

    fn nll_backward(&self, rows: usize, cols: usize, targets: &[u32], g: f32) -> Res<Vec<f32>> {
        host(Resident::nll_backward(self, rows, cols, targets, g))
    }
}

/// The `k` candidates of `n` values each that `xs` holds back to back, as buffers.
fn candidates(k: usize, n: usize, xs: &[f32]) -> Vec<DevBuf> {
    (0..k).map(|j| up(&xs[j * n..(j + 1) * n])).collect()
}

/// An adaptive pooling's bins: `oh x ow` of them over a plane of `h x w`, which must hold
/// a value when there is a bin to average.
fn check_bins(h: usize, w: usize, oh: usize, ow: usize) -> Res<()> {
    if (h == 0 || w == 0) && oh * ow > 0 {
        return Err(KernelError::Invalid(format!(
            "adaptive_avg_pool: {oh}x{ow} bins over an empty {h}x{w} plane"
        )));
    }
    Ok(())
}

/// Host values as the CPU backend's buffer (a copy: the caller keeps its slice).
fn up(x: &[f32]) -> DevBuf {
    DevBuf::Host(HostBuf::new(x.to_vec()))
}

/// A CPU result's values, taken out of their buffer without a copy where nothing else
/// shares it.
fn host(r: Res<DevBuf>) -> Res<Vec<f32>> {
    match r? {
        DevBuf::Host(b) => Ok(b.into_vec()),
        other => other.to_vec(),
    }
}
