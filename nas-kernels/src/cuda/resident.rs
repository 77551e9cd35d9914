//! The CUDA backend's [`Resident`] kernels: operands and results stay in the device's
//! memory ([`Buf`]), launched on the device's one stream, so nothing waits for the GPU
//! until something is read back (a loss, per-channel statistics, a checkpoint). Each
//! computes what the CPU kernel of the same name computes; the host-slice [`Accel`]
//! methods are these with a copy each way, which is how the equivalence tests reach them.
//!
//! [`Accel`]: crate::accel::Accel

use super::{cfg1d, err, Buf, ConvGeom, Cuda, PoolGeom};
use crate::accel::{broadcast_code, broadcast_shapes, check_channels, check_len, check_range};
use crate::accel::{check_running_lens, same_lengths, sum_shapes, Shape, LONG_SUM};
use crate::accel::{Binary, DevBuf, Embed, Res, Resident, Unary};
use crate::cpu::{conv::Conv2d, pool::Pool2d};
use crate::error::KernelError;
use cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};
use std::sync::Arc;

/// A checked padded shape as the broadcasting kernels take it.
fn shape6(d: Shape) -> Res<super::Shape6> {
    let mut s = super::Shape6 { d: [1; 6] };
    for (o, &v) in s.d.iter_mut().zip(&d) {
        *o = i32::try_from(v).map_err(|_| {
            KernelError::Invalid(format!("a dimension of {v} is past this kernel's shapes"))
        })?;
    }
    Ok(s)
}

/// `b` as this backend's buffer, or the error of a buffer of another device.
fn cb(b: &DevBuf) -> Res<&Buf> {
    match b {
        DevBuf::Cuda(b) => Ok(b),
        other => Err(crate::accel::foreign("CUDA kernel", "cuda", other)),
    }
}

/// [`cb`] of each buffer.
fn cbs(bs: &[DevBuf]) -> Res<Vec<&Buf>> {
    bs.iter().map(cb).collect()
}

impl Cuda {
    /// A zeroed device buffer of `len` floats (one for `len` 0), not yet shared.
    fn fresh(&self, len: usize) -> Res<CudaSlice<f32>> {
        self.zeros::<f32>(len)
    }

    /// One launch of `embed_kernel_f32` or its gradient (`name`), reading `src`, one
    /// thread per tap, into `out_len` fresh zeros.
    fn embed_launch(
        &self,
        name: &'static str,
        e: &Embed,
        src: &CudaSlice<f32>,
        out_len: usize,
    ) -> Res<DevBuf> {
        let mut out = self.fresh(out_len)?;
        let taps = e.planes * e.k * e.k;
        let int = |v: usize| {
            i32::try_from(v).map_err(|_| {
                KernelError::Invalid(format!("embed_kernel: {v} is past this kernel's sizes"))
            })
        };
        let (k, size, dil, off) = (int(e.k)?, int(e.size)?, int(e.dil)?, int(e.off)?);
        if taps > 0 {
            let f = self.func(name)?;
            let n = taps as i64;
            let mut l = self.stream.launch_builder(&f);
            l.arg(src).arg(&mut out).arg(&n);
            l.arg(&k).arg(&size).arg(&dil).arg(&off);
            // SAFETY: arguments match both kernels' signatures; `Embed::validate`
            // checked that every tap falls inside its large plane and both lengths.
            unsafe { l.launch(cfg1d(taps)) }.map_err(err(name))?;
        }
        Ok(Self::wrap(out, out_len))
    }

    /// `s`, holding `len` floats, as the engine holds it.
    fn wrap(s: CudaSlice<f32>, len: usize) -> DevBuf {
        DevBuf::Cuda(Buf {
            s: Arc::new(s),
            len,
        })
    }

    /// A new buffer holding a copy of `b` (a device-side copy).
    fn copy_of(&self, b: &Buf) -> Res<CudaSlice<f32>> {
        let mut y = self.fresh(b.len)?;
        if b.len > 0 {
            self.stream
                .memcpy_dtod(&b.s.slice(..b.len), &mut y.slice_mut(..b.len))
                .map_err(err("device copy"))?;
        }
        Ok(y)
    }

    /// The buffers back to back in a new one (device-side copies).
    fn concat(&self, parts: &[&Buf]) -> Res<CudaSlice<f32>> {
        let total = parts.iter().map(|b| b.len).sum();
        let mut y = self.fresh(total)?;
        let mut at = 0;
        for b in parts {
            if b.len > 0 {
                self.stream
                    .memcpy_dtod(&b.s.slice(..b.len), &mut y.slice_mut(at..at + b.len))
                    .map_err(err("device copy"))?;
            }
            at += b.len;
        }
        Ok(y)
    }

    /// `copy_axis_f32`: `len` entries along the middle axis of every outer index, from
    /// `xstart` of `x` (`[outer, xtotal, inner]`) to `ystart` of `y` (`[outer, ytotal,
    /// inner]`).
    #[allow(clippy::too_many_arguments)]
    fn copy_axis(
        &self,
        outer: usize,
        len: usize,
        inner: usize,
        (x, xtotal, xstart): (&Buf, usize, usize),
        (y, ytotal, ystart): (&mut CudaSlice<f32>, usize, usize),
    ) -> Res<()> {
        let n = outer * len * inner;
        if n == 0 {
            return Ok(());
        }
        let f = self.func("copy_axis_f32")?;
        let v = [outer, len, inner, xtotal, xstart, ytotal, ystart].map(|v| v as i64);
        let mut l = self.stream.launch_builder(&f);
        l.arg(&*x.s).arg(y);
        for a in &v {
            l.arg(a);
        }
        // SAFETY: arguments match `copy_axis_f32`; the callers checked both shapes.
        unsafe { l.launch(cfg1d(n)) }.map_err(err("copy_axis_f32"))?;
        Ok(())
    }

    /// `add_bias_f32` in place: `bias[(i / plane) % c]` added to each of `y`'s `len`.
    fn add_bias(
        &self,
        y: &mut CudaSlice<f32>,
        len: usize,
        c: usize,
        plane: usize,
        bias: &Buf,
    ) -> Res<()> {
        let f = self.func("add_bias_f32")?;
        let (ci, hw, total) = (c as i32, plane as i64, len as i64);
        let mut l = self.stream.launch_builder(&f);
        l.arg(y).arg(&*bias.s).arg(&ci).arg(&hw).arg(&total);
        // SAFETY: arguments match `add_bias_f32`; `len` is whole rows of `c` x `plane`.
        unsafe { l.launch(cfg1d(len)) }.map_err(err("add_bias_f32"))?;
        Ok(())
    }

    /// The forward convolution into a new buffer (no bias): depthwise ones by their
    /// kernel, the rest im2col + SGEMM per image and group.
    fn conv_forward(&self, p: &Conv2d, x: &Buf, w: &Buf) -> Res<CudaSlice<f32>> {
        let mut y = self.fresh(p.out_len())?;
        if Self::depthwise(p) {
            let g = ConvGeom::from(p);
            let f = self.func("depthwise_forward_f32")?;
            let mut l = self.stream.launch_builder(&f);
            l.arg(&g).arg(&*x.s).arg(&*w.s).arg(&mut y);
            // SAFETY: arguments match `depthwise_forward_f32`.
            unsafe { l.launch(cfg1d(p.out_len())) }.map_err(err("depthwise_forward_f32"))?;
            return Ok(y);
        }
        let g = Self::group_geom(p);
        let (cin_g, cout_g) = (p.cin / p.groups, p.cout / p.groups);
        let (kk, pp) = (cin_g * p.kh * p.kw, p.out_h() * p.out_w());
        let mut col = self.fresh(kk * pp)?;
        for b in 0..p.n {
            for gi in 0..p.groups {
                let xo = (b * p.cin + gi * cin_g) * p.h * p.w;
                self.im2col(&g, &x.s.slice(xo..xo + cin_g * p.h * p.w), &mut col)?;
                let wv = w.s.slice(gi * cout_g * kk..(gi + 1) * cout_g * kk);
                let yo = (b * p.cout + gi * cout_g) * pp;
                let mut yv = y.slice_mut(yo..yo + cout_g * pp);
                let cv = col.slice(..);
                self.gemm_strided(1, (cout_g, pp, kk), &wv, false, &cv, false, &mut yv, false)?;
            }
        }
        Ok(y)
    }

    /// `avg_pool_forward_f32` or `avg_pool_backward_f32` (same arguments: geometry,
    /// count_include_pad, input, zeroed output of `out_len`).
    fn avg_pool_kernel(
        &self,
        name: &'static str,
        p: &Pool2d,
        cip: bool,
        input: &Buf,
        out_len: usize,
    ) -> Res<DevBuf> {
        let g = PoolGeom::from(p);
        let mut out = self.fresh(out_len)?;
        let cip = cip as i32;
        let f = self.func(name)?;
        let mut l = self.stream.launch_builder(&f);
        l.arg(&g).arg(&cip).arg(&*input.s).arg(&mut out);
        // SAFETY: arguments match both kernels; one thread per output element.
        unsafe { l.launch(cfg1d(out_len)) }.map_err(err(name))?;
        Ok(Self::wrap(out, out_len))
    }

    /// `adaptive_avg_pool_forward_f32` or `..._backward_f32` (same arguments: planes,
    /// h, w, oh, ow, input, zeroed output of `out_len`).
    fn adaptive_kernel(
        &self,
        name: &'static str,
        dims: [usize; 5],
        input: &Buf,
        out_len: usize,
    ) -> Res<DevBuf> {
        let mut out = self.fresh(out_len)?;
        let dims = dims.map(|v| v as i32);
        let f = self.func(name)?;
        let mut l = self.stream.launch_builder(&f);
        for d in &dims {
            l.arg(d);
        }
        l.arg(&*input.s).arg(&mut out);
        // SAFETY: arguments match both kernels; one thread per output element.
        unsafe { l.launch(cfg1d(out_len)) }.map_err(err(name))?;
        Ok(Self::wrap(out, out_len))
    }
}

impl Resident for Cuda {
    fn place(&self) -> crate::accel::Place {
        crate::accel::Place::Cuda
    }

    fn finish(&self) -> Res<()> {
        self.stream.synchronize().map_err(err("synchronize"))
    }

    fn upload(&self, x: &[f32]) -> Res<DevBuf> {
        Ok(Self::wrap(self.up(x)?, x.len()))
    }

    fn zeros(&self, len: usize) -> Res<DevBuf> {
        Ok(Self::wrap(Cuda::zeros::<f32>(self, len)?, len))
    }

    fn dropout_mask(&self, len: usize, d: &crate::cpu::random::Dropout) -> Res<DevBuf> {
        crate::cpu::random::Dropout::check_len(len)?;
        let mut y = self.fresh(len)?;
        if len > 0 {
            let f = self.func("dropout_mask_f32")?;
            let n = len as i64;
            let mut l = self.stream.launch_builder(&f);
            l.arg(&mut y)
                .arg(&n)
                .arg(&d.s0)
                .arg(&d.s1)
                .arg(&d.below)
                .arg(&d.keep);
            // SAFETY: arguments match `dropout_mask_f32`; `y` holds `len` floats.
            unsafe { l.launch(cfg1d(len)) }.map_err(err("dropout_mask_f32"))?;
        }
        Ok(Self::wrap(y, len))
    }

    fn unary(&self, op: Unary, x: &DevBuf) -> Res<DevBuf> {
        let x = cb(x)?;
        let (code, a, b) = op.code();
        let code = code as i32;
        let mut y = self.fresh(x.len)?;
        let f = self.func("unary_f32")?;
        let n = x.len as i64;
        let mut l = self.stream.launch_builder(&f);
        l.arg(&*x.s).arg(&mut y).arg(&n).arg(&code).arg(&a).arg(&b);
        // SAFETY: arguments match `unary_f32`.
        unsafe { l.launch(cfg1d(x.len)) }.map_err(err("unary_f32"))?;
        Ok(Self::wrap(y, x.len))
    }

    fn binary(&self, op: Binary, a: &DevBuf, b: &DevBuf) -> Res<DevBuf> {
        let (a, b) = (cb(a)?, cb(b)?);
        check_len("binary operand", b.len, a.len)?;
        let n = a.len;
        if n > i32::MAX as usize {
            return Err(KernelError::Invalid(format!(
                "binary: {n} values are past this kernel's shapes"
            )));
        }
        let mut y = self.fresh(n)?;
        let ni = n as i64;
        if op.is_gradient() {
            // `unary_backward_f32`'s rules (1 ReLU, 4 sigmoid, 5 tanh) read the
            // activation's output as both its input and output operands: the ReLU's is
            // positive exactly where its input is.
            let f = self.func("unary_backward_f32")?;
            let code: i32 = match op {
                Binary::ReluGrad => 1,
                Binary::SigmoidGrad => 4,
                _ => 5,
            };
            let zero = 0f32;
            let mut l = self.stream.launch_builder(&f);
            l.arg(&*b.s).arg(&*b.s).arg(&*a.s).arg(&mut y);
            l.arg(&ni).arg(&code).arg(&zero);
            // SAFETY: arguments match `unary_backward_f32`; `y` starts zeroed.
            unsafe { l.launch(cfg1d(n)) }.map_err(err("unary_backward_f32"))?;
            return Ok(Self::wrap(y, n));
        }
        let code = op.code() as i32;
        let flat = super::Shape6 {
            d: [1, 1, 1, 1, 1, n.max(1) as i32],
        };
        let f = self.func("binary_f32")?;
        let mut l = self.stream.launch_builder(&f);
        l.arg(&*a.s).arg(&flat).arg(&*b.s).arg(&flat);
        l.arg(&mut y).arg(&flat).arg(&ni).arg(&code);
        // SAFETY: arguments match `binary_f32`; the three shapes are the same flat one.
        unsafe { l.launch(cfg1d(n)) }.map_err(err("binary_f32"))?;
        Ok(Self::wrap(y, n))
    }

    fn binary_broadcast(
        &self,
        op: Binary,
        a: &DevBuf,
        sa: &[usize],
        b: &DevBuf,
        sb: &[usize],
    ) -> Res<DevBuf> {
        let (a, b) = (cb(a)?, cb(b)?);
        let [y, da, db] = broadcast_shapes(sa, a.len, sb, b.len)?;
        let code = broadcast_code(op)? as i32;
        let n: usize = y.iter().product();
        let (sy, sa, sb) = (shape6(y)?, shape6(da)?, shape6(db)?);
        let mut out = self.fresh(n)?;
        if n > 0 {
            let f = self.func("binary_f32")?;
            let ni = n as i64;
            let mut l = self.stream.launch_builder(&f);
            l.arg(&*a.s).arg(&sa).arg(&*b.s).arg(&sb);
            l.arg(&mut out).arg(&sy).arg(&ni).arg(&code);
            // SAFETY: arguments match `binary_f32`; `broadcast_shapes` checked the operands'
            // lengths against their shapes, and `out` holds the broadcast shape.
            unsafe { l.launch(cfg1d(n)) }.map_err(err("binary_f32"))?;
        }
        Ok(Self::wrap(out, n))
    }

    fn embed_kernel(&self, e: &Embed, x: &DevBuf) -> Res<DevBuf> {
        let x = cb(x)?;
        let big = e.planes * e.size * e.size;
        e.validate(x.len, big)?;
        self.embed_launch("embed_kernel_f32", e, &x.s, big)
    }

    fn embed_kernel_backward(&self, e: &Embed, g: &DevBuf) -> Res<DevBuf> {
        let g = cb(g)?;
        let small = e.planes * e.k * e.k;
        e.validate(small, g.len)?;
        self.embed_launch("embed_kernel_backward_f32", e, &g.s, small)
    }

    fn reduce_to(&self, g: &DevBuf, sy: &[usize], sx: &[usize]) -> Res<DevBuf> {
        let g = cb(g)?;
        let [y, x] = sum_shapes(sy, g.len, sx)?;
        let n: usize = x.iter().product();
        let mut out = self.fresh(n)?;
        if n > 0 {
            // Long sums take a block each, short ones a thread.
            let (name, cfg) = if g.len / n >= LONG_SUM {
                ("reduce_to_lanes_f32", Self::per_channel(n.min(65_535), 256))
            } else {
                ("reduce_to_f32", cfg1d(n))
            };
            let (sy, sx) = (shape6(y)?, shape6(x)?);
            let f = self.func(name)?;
            let (ni, one) = (n as i64, 1f32);
            let mut l = self.stream.launch_builder(&f);
            l.arg(&*g.s)
                .arg(&sy)
                .arg(&mut out)
                .arg(&sx)
                .arg(&ni)
                .arg(&one);
            // SAFETY: arguments match both kernels; `sum_shapes` checked `g`'s length
            // against `sy`, which `sx` broadcasts to; `out` (zeroed) holds `sx`; the
            // block kernel's shared array holds its 256 threads.
            unsafe { l.launch(cfg) }.map_err(err(name))?;
        }
        Ok(Self::wrap(out, n))
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
        let (a, b) = (cb(a)?, cb(b)?);
        crate::accel::matmul_lens(batch, m, n, k, a.len, b.len)?;
        let len = batch * m * n;
        let mut y = self.fresh(len)?;
        let (av, bv) = (a.s.slice(..a.len.max(1)), b.s.slice(..b.len.max(1)));
        let mut yv = y.slice_mut(..);
        self.gemm_strided(batch, (m, n, k), &av, ta, &bv, tb, &mut yv, false)?;
        Ok(Self::wrap(y, len))
    }

    fn concat_axis(&self, outer: usize, inner: usize, parts: &[(DevBuf, usize)]) -> Res<DevBuf> {
        let total: usize = parts.iter().map(|(_, len)| len).sum();
        let mut y = self.fresh(outer * total * inner)?;
        let mut at = 0;
        for (x, len) in parts {
            let x = cb(x)?;
            check_len("concat part", x.len, outer * len * inner)?;
            self.copy_axis(outer, *len, inner, (x, *len, 0), (&mut y, total, at))?;
            at += len;
        }
        Ok(Self::wrap(y, outer * total * inner))
    }

    fn permute(&self, shape: &[usize], perm: &[usize], x: &DevBuf) -> Res<DevBuf> {
        let x = cb(x)?;
        let (dims, strides) = crate::accel::permute6(shape, perm, x.len)?;
        let n = x.len;
        let g = super::Perm6 {
            n: n as i64,
            dims: dims.map(|d| d as i64),
            strides: strides.map(|s| s as i64),
        };
        let mut y = self.fresh(n)?;
        let f = self.func("permute_f32")?;
        let mut l = self.stream.launch_builder(&f);
        l.arg(&g).arg(&*x.s).arg(&mut y);
        // SAFETY: arguments match `permute_f32`; every source index is below `n` (the
        // strides are the input's, the dims its permuted shape, checked against `n`).
        unsafe { l.launch(cfg1d(n)) }.map_err(err("permute_f32"))?;
        Ok(Self::wrap(y, n))
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
        let x = cb(x)?;
        check_len("slice input", x.len, outer * total * inner)?;
        check_range(start, len, total)?;
        let mut y = self.fresh(outer * len * inner)?;
        self.copy_axis(outer, len, inner, (x, total, start), (&mut y, len, 0))?;
        Ok(Self::wrap(y, outer * len * inner))
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
        let g = cb(g)?;
        check_len("slice gradient", g.len, outer * len * inner)?;
        check_range(start, len, total)?;
        // New buffers start zeroed.
        let mut y = self.fresh(outer * total * inner)?;
        self.copy_axis(outer, len, inner, (g, len, 0), (&mut y, total, start))?;
        Ok(Self::wrap(y, outer * total * inner))
    }

    fn add_channel(&self, c: usize, plane: usize, x: &DevBuf, bias: &DevBuf) -> Res<DevBuf> {
        let (x, bias) = (cb(x)?, cb(bias)?);
        check_len("bias", bias.len, c)?;
        check_channels(x.len, c, plane)?;
        let mut y = self.copy_of(x)?;
        self.add_bias(&mut y, x.len, c, plane, bias)?;
        Ok(Self::wrap(y, x.len))
    }

    fn channel_sum(&self, n: usize, c: usize, plane: usize, g: &DevBuf) -> Res<DevBuf> {
        let g = cb(g)?;
        check_len("channel_sum input", g.len, n * c * plane)?;
        let mut y = self.fresh(c)?;
        if c > 0 {
            let f = self.func("channel_sum_f32")?;
            let (ni, ci, hw) = (n as i32, c as i32, plane as i64);
            let mut l = self.stream.launch_builder(&f);
            l.arg(&*g.s).arg(&mut y).arg(&ni).arg(&ci).arg(&hw);
            // SAFETY: arguments match `channel_sum_f32`; one 256-thread block per channel
            // (its shared array's size); `y` starts zeroed.
            unsafe { l.launch(Self::per_channel(c, 256)) }.map_err(err("channel_sum_f32"))?;
        }
        Ok(Self::wrap(y, c))
    }

    fn conv2d(&self, p: &Conv2d, x: &DevBuf, w: &DevBuf, bias: Option<&DevBuf>) -> Res<DevBuf> {
        let (x, w) = (cb(x)?, cb(w)?);
        let bias = bias.map(cb).transpose()?;
        crate::accel::conv_lens(p, Some(x.len), Some(w.len), None, bias.map(|b| b.len))?;
        let mut y = self.conv_forward(p, x, w)?;
        if let Some(b) = bias {
            self.add_bias(&mut y, p.out_len(), p.cout, p.out_h() * p.out_w(), b)?;
        }
        Ok(Self::wrap(y, p.out_len()))
    }

    fn conv2d_backward_input(&self, p: &Conv2d, gy: &DevBuf, w: &DevBuf) -> Res<DevBuf> {
        let (gy, w) = (cb(gy)?, cb(w)?);
        crate::accel::conv_lens(p, None, Some(w.len), Some(gy.len), None)?;
        let len = p.n * p.cin * p.h * p.w;
        let mut dx = self.fresh(len)?;
        if Self::depthwise(p) {
            let g = ConvGeom::from(p);
            let f = self.func("depthwise_backward_input_f32")?;
            let mut l = self.stream.launch_builder(&f);
            l.arg(&g).arg(&*gy.s).arg(&*w.s).arg(&mut dx);
            // SAFETY: arguments match `depthwise_backward_input_f32`.
            unsafe { l.launch(cfg1d(len)) }.map_err(err("depthwise_backward_input_f32"))?;
            return Ok(Self::wrap(dx, len));
        }
        let g = Self::group_geom(p);
        let (cin_g, cout_g) = (p.cin / p.groups, p.cout / p.groups);
        let (kk, pp) = (cin_g * p.kh * p.kw, p.out_h() * p.out_w());
        let mut col = self.fresh(kk * pp)?;
        let f = self.func("col2im_f32")?;
        for b in 0..p.n {
            for gi in 0..p.groups {
                let wv = w.s.slice(gi * cout_g * kk..(gi + 1) * cout_g * kk);
                let go = (b * p.cout + gi * cout_g) * pp;
                let gv = gy.s.slice(go..go + cout_g * pp);
                let mut cv = col.slice_mut(..);
                self.gemm_strided(1, (kk, pp, cout_g), &wv, true, &gv, false, &mut cv, false)?;
                let xo = (b * p.cin + gi * cin_g) * p.h * p.w;
                let mut xv = dx.slice_mut(xo..xo + cin_g * p.h * p.w);
                let mut l = self.stream.launch_builder(&f);
                l.arg(&g).arg(&col).arg(&mut xv);
                // SAFETY: arguments match `col2im_f32`.
                unsafe { l.launch(cfg1d(cin_g * p.h * p.w)) }.map_err(err("col2im_f32"))?;
            }
        }
        Ok(Self::wrap(dx, len))
    }

    fn conv2d_backward_weight(&self, p: &Conv2d, x: &DevBuf, gy: &DevBuf) -> Res<DevBuf> {
        let (x, gy) = (cb(x)?, cb(gy)?);
        crate::accel::conv_lens(p, Some(x.len), None, Some(gy.len), None)?;
        let len = p.weight_len();
        let mut dw = self.fresh(len)?;
        if Self::depthwise(p) {
            let g = ConvGeom::from(p);
            let f = self.func("depthwise_backward_weight_f32")?;
            let mut l = self.stream.launch_builder(&f);
            l.arg(&g).arg(&*x.s).arg(&*gy.s).arg(&mut dw);
            // SAFETY: arguments match `depthwise_backward_weight_f32`; one block per
            // (channel, tap), 256 threads as its reduction assumes.
            unsafe { l.launch(Self::per_channel(len, 256)) }
                .map_err(err("depthwise_backward_weight_f32"))?;
            return Ok(Self::wrap(dw, len));
        }
        let g = Self::group_geom(p);
        let (cin_g, cout_g) = (p.cin / p.groups, p.cout / p.groups);
        let (kk, pp) = (cin_g * p.kh * p.kw, p.out_h() * p.out_w());
        let mut col = self.fresh(kk * pp)?;
        for b in 0..p.n {
            for gi in 0..p.groups {
                let xo = (b * p.cin + gi * cin_g) * p.h * p.w;
                self.im2col(&g, &x.s.slice(xo..xo + cin_g * p.h * p.w), &mut col)?;
                let go = (b * p.cout + gi * cout_g) * pp;
                let gv = gy.s.slice(go..go + cout_g * pp);
                let mut wv = dw.slice_mut(gi * cout_g * kk..(gi + 1) * cout_g * kk);
                let cv = col.slice(..);
                self.gemm_strided(1, (cout_g, kk, pp), &gv, false, &cv, true, &mut wv, true)?;
            }
        }
        Ok(Self::wrap(dw, len))
    }

    fn max_pool(&self, p: &Pool2d, x: &DevBuf) -> Res<(DevBuf, DevBuf)> {
        let x = cb(x)?;
        crate::accel::pool_lens(p, "max_pool", Some(x.len), None, None)?;
        let g = PoolGeom::from(p);
        let len = p.n * p.c * p.out_h() * p.out_w();
        // The argmax is written as `unsigned int`s into a float buffer (its bits).
        let (mut y, mut arg) = (self.fresh(len)?, self.fresh(len)?);
        let f = self.func("max_pool_forward_f32")?;
        let mut l = self.stream.launch_builder(&f);
        l.arg(&g).arg(&*x.s).arg(&mut y).arg(&mut arg);
        // SAFETY: arguments match `max_pool_forward_f32` (u32 and f32 are both 4 bytes).
        unsafe { l.launch(cfg1d(len)) }.map_err(err("max_pool_forward_f32"))?;
        Ok((Self::wrap(y, len), Self::wrap(arg, len)))
    }

    fn max_pool_backward(&self, p: &Pool2d, gy: &DevBuf, arg: &DevBuf) -> Res<DevBuf> {
        let (gy, arg) = (cb(gy)?, cb(arg)?);
        crate::accel::pool_lens(p, "max_pool", None, Some(gy.len), Some(arg.len))?;
        let out = p.n * p.c * p.out_h() * p.out_w();
        let g = PoolGeom::from(p);
        let len = p.n * p.c * p.h * p.w;
        let mut dx = self.fresh(len)?;
        let f = self.func("max_pool_backward_f32")?;
        let mut l = self.stream.launch_builder(&f);
        l.arg(&g).arg(&*gy.s).arg(&*arg.s).arg(&mut dx);
        // SAFETY: arguments match `max_pool_backward_f32`; `dx` starts zeroed; the
        // argmax holds the forward's `unsigned int`s.
        unsafe { l.launch(cfg1d(out)) }.map_err(err("max_pool_backward_f32"))?;
        Ok(Self::wrap(dx, len))
    }

    fn avg_pool(&self, p: &Pool2d, cip: bool, x: &DevBuf) -> Res<DevBuf> {
        let x = cb(x)?;
        crate::accel::pool_lens(p, "avg_pool", Some(x.len), None, None)?;
        let len = p.n * p.c * p.out_h() * p.out_w();
        self.avg_pool_kernel("avg_pool_forward_f32", p, cip, x, len)
    }

    fn avg_pool_backward(&self, p: &Pool2d, cip: bool, gy: &DevBuf) -> Res<DevBuf> {
        let gy = cb(gy)?;
        crate::accel::pool_lens(p, "avg_pool", None, Some(gy.len), None)?;
        let len = p.n * p.c * p.h * p.w;
        self.avg_pool_kernel("avg_pool_backward_f32", p, cip, gy, len)
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
        let x = cb(x)?;
        crate::accel::adaptive_lens([planes, h, w, oh, ow], Some(x.len), None)?;
        let dims = [planes, h, w, oh, ow];
        self.adaptive_kernel("adaptive_avg_pool_forward_f32", dims, x, planes * oh * ow)
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
        let gy = cb(gy)?;
        crate::accel::adaptive_lens([planes, h, w, oh, ow], None, Some(gy.len))?;
        let dims = [planes, h, w, oh, ow];
        self.adaptive_kernel("adaptive_avg_pool_backward_f32", dims, gy, planes * h * w)
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
        let (x, gamma, beta) = (cb(x)?, cb(gamma)?, cb(beta)?);
        let total = n * c * hw;
        crate::accel::batch_norm_lens(
            [n, c, hw],
            x.len,
            None,
            &[("gamma", gamma.len), ("beta", beta.len)],
        )?;
        let (mut mean, mut invstd) = (self.fresh(c)?, self.fresh(c)?);
        let mut y = self.fresh(total)?;
        if total > 0 {
            let (ni, ci, hwi, tot) = (n as i32, c as i32, hw as i64, total as i64);
            let f = self.func("bn_stats_f32")?;
            let mut l = self.stream.launch_builder(&f);
            l.arg(&*x.s).arg(&ni).arg(&ci).arg(&hwi).arg(&eps);
            l.arg(&mut mean).arg(&mut invstd);
            // SAFETY: arguments match `bn_stats_f32`; one 256-thread block per channel.
            unsafe { l.launch(Self::per_channel(c, 256)) }.map_err(err("bn_stats_f32"))?;
            let f = self.func("bn_apply_f32")?;
            let mut l = self.stream.launch_builder(&f);
            l.arg(&*x.s)
                .arg(&mean)
                .arg(&invstd)
                .arg(&*gamma.s)
                .arg(&*beta.s);
            l.arg(&ci).arg(&hwi).arg(&mut y).arg(&tot);
            // SAFETY: arguments match `bn_apply_f32`.
            unsafe { l.launch(cfg1d(total)) }.map_err(err("bn_apply_f32"))?;
        }
        Ok((
            Self::wrap(y, total),
            Self::wrap(mean, c),
            Self::wrap(invstd, c),
        ))
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
        let (x, gy, gamma) = (cb(x)?, cb(gy)?, cb(gamma)?);
        let (mean, invstd) = (cb(mean)?, cb(invstd)?);
        let total = n * c * hw;
        let per_channel = [
            ("gamma", gamma.len),
            ("mean", mean.len),
            ("1/std", invstd.len),
        ];
        crate::accel::batch_norm_lens([n, c, hw], x.len, Some(gy.len), &per_channel)?;
        let (mut sum_g, mut sum_gx) = (self.fresh(c)?, self.fresh(c)?);
        let mut gx = self.fresh(total)?;
        if total > 0 {
            let (ni, ci, hwi, tot) = (n as i32, c as i32, hw as i64, total as i64);
            let m = (n * hw) as f32;
            let f = self.func("bn_backward_sums_f32")?;
            let mut l = self.stream.launch_builder(&f);
            l.arg(&*x.s).arg(&*gy.s).arg(&*mean.s).arg(&*invstd.s);
            l.arg(&ni)
                .arg(&ci)
                .arg(&hwi)
                .arg(&mut sum_g)
                .arg(&mut sum_gx);
            // SAFETY: arguments match `bn_backward_sums_f32`; one 256-thread block per
            // channel.
            unsafe { l.launch(Self::per_channel(c, 256)) }.map_err(err("bn_backward_sums_f32"))?;
            let f = self.func("bn_backward_input_f32")?;
            let mut l = self.stream.launch_builder(&f);
            l.arg(&*x.s)
                .arg(&*gy.s)
                .arg(&*mean.s)
                .arg(&*invstd.s)
                .arg(&*gamma.s);
            l.arg(&sum_g).arg(&sum_gx).arg(&ci).arg(&hwi).arg(&m);
            l.arg(&mut gx).arg(&tot);
            // SAFETY: arguments match `bn_backward_input_f32`; `gx` starts zeroed.
            unsafe { l.launch(cfg1d(total)) }.map_err(err("bn_backward_input_f32"))?;
        }
        Ok((
            Self::wrap(gx, total),
            Self::wrap(sum_gx, c),
            Self::wrap(sum_g, c),
        ))
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
        let (mean, invstd) = (cb(mean)?, cb(invstd)?);
        let (rm, rv) = (cb(running_mean)?, cb(running_var)?);
        let c = mean.len;
        check_running_lens(c, invstd.len, rm.len, rv.len)?;
        let (mut rm2, mut rv2) = (self.copy_of(rm)?, self.copy_of(rv)?);
        if c > 0 {
            let (ci, cnt) = (c as i32, count as i64);
            let f = self.func("bn_running_f32")?;
            let mut l = self.stream.launch_builder(&f);
            l.arg(&*mean.s).arg(&*invstd.s).arg(&mut rm2).arg(&mut rv2);
            l.arg(&ci).arg(&cnt).arg(&momentum).arg(&eps);
            // SAFETY: arguments match `bn_running_f32`; the four buffers hold `c` floats.
            unsafe { l.launch(cfg1d(c)) }.map_err(err("bn_running_f32"))?;
        }
        Ok((Self::wrap(rm2, c), Self::wrap(rv2, c)))
    }

    fn log_softmax(&self, rows: usize, cols: usize, x: &DevBuf) -> Res<DevBuf> {
        let x = cb(x)?;
        crate::accel::log_softmax_lens(rows, cols, x.len, None)?;
        let mut y = self.fresh(x.len)?;
        if x.len == 0 {
            return Ok(Self::wrap(y, 0));
        }
        let f = self.func("log_softmax_f32")?;
        let (r, c) = (rows as i32, cols as i32);
        let mut l = self.stream.launch_builder(&f);
        l.arg(&*x.s).arg(&mut y).arg(&r).arg(&c);
        // SAFETY: arguments match `log_softmax_f32`; one 128-thread block per row.
        unsafe { l.launch(Self::per_channel(rows, 128)) }.map_err(err("log_softmax_f32"))?;
        Ok(Self::wrap(y, x.len))
    }

    fn log_softmax_backward(
        &self,
        rows: usize,
        cols: usize,
        y: &DevBuf,
        gy: &DevBuf,
    ) -> Res<DevBuf> {
        let (y, gy) = (cb(y)?, cb(gy)?);
        crate::accel::log_softmax_lens(rows, cols, y.len, Some(gy.len))?;
        let mut gx = self.fresh(y.len)?;
        if y.len == 0 {
            return Ok(Self::wrap(gx, 0));
        }
        let f = self.func("log_softmax_backward_f32")?;
        let (r, c) = (rows as i32, cols as i32);
        let mut l = self.stream.launch_builder(&f);
        l.arg(&*y.s).arg(&*gy.s).arg(&mut gx).arg(&r).arg(&c);
        // SAFETY: arguments match `log_softmax_backward_f32`; one 128-thread block per
        // row; `gx` starts zeroed.
        unsafe { l.launch(Self::per_channel(rows, 128)) }
            .map_err(err("log_softmax_backward_f32"))?;
        Ok(Self::wrap(gx, y.len))
    }

    fn nll(&self, rows: usize, cols: usize, logp: &DevBuf, targets: &[u32]) -> Res<f32> {
        let logp = cb(logp)?;
        crate::accel::check_targets(rows, cols, logp.len, targets)?;
        let dt = self.up_targets(targets)?;
        let mut loss = self.fresh(1)?;
        let (r, c) = (rows as i32, cols as i32);
        let f = self.func("nll_f32")?;
        let mut l = self.stream.launch_builder(&f);
        l.arg(&*logp.s).arg(&*dt).arg(&r).arg(&c).arg(&mut loss);
        // SAFETY: arguments match `nll_f32`; one block of 256 threads, as its shared
        // array needs; every target was checked below `cols`.
        unsafe { l.launch(Self::per_channel(1, 256)) }.map_err(err("nll_f32"))?;
        Ok(self.down(&loss, 1)?[0])
    }

    fn nll_backward(&self, rows: usize, cols: usize, targets: &[u32], g: f32) -> Res<DevBuf> {
        crate::accel::check_targets(rows, cols, rows * cols, targets)?;
        let dt = self.up_targets(targets)?;
        let mut gx = self.fresh(rows * cols)?;
        let (r, c) = (rows as i32, cols as i32);
        let f = self.func("nll_backward_f32")?;
        let mut l = self.stream.launch_builder(&f);
        l.arg(&*dt).arg(&g).arg(&r).arg(&c).arg(&mut gx);
        // SAFETY: arguments match `nll_backward_f32`; `gx` starts zeroed and every target
        // was checked below `cols`.
        unsafe { l.launch(cfg1d(rows)) }.map_err(err("nll_backward_f32"))?;
        Ok(Self::wrap(gx, rows * cols))
    }

    fn weighted_sum(&self, xs: &[DevBuf], w: &[f32]) -> Res<DevBuf> {
        let xs = cbs(xs)?;
        let n = same_lengths("weighted sum", xs.iter().map(|x| x.len), w.len())?;
        let cat = self.concat(&xs)?;
        let dw = self.up(w)?;
        let mut y = self.fresh(n)?;
        let (ki, ni) = (xs.len() as i32, n as i64);
        let f = self.func("weighted_sum_f32")?;
        let mut l = self.stream.launch_builder(&f);
        l.arg(&cat).arg(&dw).arg(&ki).arg(&mut y).arg(&ni);
        // SAFETY: arguments match `weighted_sum_f32`; `cat` holds `k * n` values.
        unsafe { l.launch(cfg1d(n)) }.map_err(err("weighted_sum_f32"))?;
        Ok(Self::wrap(y, n))
    }

    fn weighted_sum_backward_weight(&self, xs: &[DevBuf], gy: &DevBuf) -> Res<Vec<f32>> {
        let (xs, gy) = (cbs(xs)?, cb(gy)?);
        let k = xs.len();
        let n = same_lengths("weighted sum", xs.iter().map(|x| x.len), k)?;
        check_len("weighted sum output gradient", gy.len, n)?;
        let cat = self.concat(&xs)?;
        let mut gw = self.fresh(k)?;
        let ni = n as i64;
        let f = self.func("weighted_sum_backward_weight_f32")?;
        let mut l = self.stream.launch_builder(&f);
        l.arg(&cat).arg(&*gy.s).arg(&ni).arg(&mut gw);
        let cfg = LaunchConfig {
            grid_dim: (n.div_ceil(256).clamp(1, 1024) as u32, k as u32, 1),
            ..cfg1d(n)
        };
        // SAFETY: arguments match `weighted_sum_backward_weight_f32`; grid y is the
        // candidate, 256 threads per block as its shared array needs; `gw` starts zeroed.
        unsafe { l.launch(cfg) }.map_err(err("weighted_sum_backward_weight_f32"))?;
        self.down(&gw, k)
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
        let (w, g) = (cb(w)?, cb(g)?);
        let n = w.len;
        check_len("sgd gradient", g.len, n)?;
        let mut w2 = self.copy_of(w)?;
        // The buffer starts as the step's direction (zeros read, then replaced).
        let mut v2 = match v {
            Some(v) => {
                let v = cb(v)?;
                check_len("sgd momentum buffer", v.len, n)?;
                self.copy_of(v)?
            }
            None => self.fresh(n)?,
        };
        let (ni, nest, first) = (n as i64, nesterov as i32, v.is_none() as i32);
        let f = self.func("sgd_f32")?;
        let mut l = self.stream.launch_builder(&f);
        l.arg(&mut w2).arg(&*g.s).arg(&mut v2).arg(&ni);
        l.arg(&lr).arg(&mu).arg(&wd).arg(&nest).arg(&first);
        // SAFETY: arguments match `sgd_f32`; the three buffers hold `n` floats.
        unsafe { l.launch(cfg1d(n)) }.map_err(err("sgd_f32"))?;
        Ok((Self::wrap(w2, n), Self::wrap(v2, n)))
    }

    fn adam(
        &self,
        w: &DevBuf,
        g: &DevBuf,
        m: &DevBuf,
        v: &DevBuf,
        lr: f32,
        (b1, b2, eps): (f32, f32, f32),
        wd: f32,
        decoupled: bool,
        t: i32,
    ) -> Res<(DevBuf, DevBuf, DevBuf)> {
        let (w, g, m, v) = (cb(w)?, cb(g)?, cb(m)?, cb(v)?);
        let n = w.len;
        crate::accel::step_lens(
            "adam",
            n,
            g.len,
            &[("first moment", m.len), ("second moment", v.len)],
        )?;
        let (mut w2, mut m2, mut v2) = (self.copy_of(w)?, self.copy_of(m)?, self.copy_of(v)?);
        let (ni, dec) = (n as i64, decoupled as i32);
        let f = self.func("adam_f32")?;
        let mut l = self.stream.launch_builder(&f);
        l.arg(&mut w2).arg(&*g.s).arg(&mut m2).arg(&mut v2).arg(&ni);
        l.arg(&lr)
            .arg(&b1)
            .arg(&b2)
            .arg(&eps)
            .arg(&wd)
            .arg(&dec)
            .arg(&t);
        // SAFETY: arguments match `adam_f32`; the four buffers hold `n` floats.
        unsafe { l.launch(cfg1d(n)) }.map_err(err("adam_f32"))?;
        Ok((Self::wrap(w2, n), Self::wrap(m2, n), Self::wrap(v2, n)))
    }
}
