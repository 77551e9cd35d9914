//! 2-D pooling over NCHW f32 tensors: max, average and adaptive average, forward and backward.
//!
//! Every kernel works one `(n, c)` plane at a time; planes are independent, so they are spread
//! across rayon workers once the tensor is large enough to pay for the split.

use rayon::prelude::*;

use super::PAR_MIN;

/// Geometry of a 2-D pooling window over an NCHW tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2d {
    /// Batch size.
    pub n: usize,
    /// Channels.
    pub c: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Window height.
    pub kh: usize,
    /// Window width.
    pub kw: usize,
    /// Vertical stride.
    pub sh: usize,
    /// Horizontal stride.
    pub sw: usize,
    /// Zero rows of padding above and below.
    pub ph: usize,
    /// Zero columns of padding left and right.
    pub pw: usize,
}

impl Pool2d {
    /// Output height: `floor((h + 2*ph - kh) / sh) + 1` (PyTorch, `ceil_mode=False`).
    pub fn out_h(&self) -> usize {
        out_len(self.h, self.kh, self.sh, self.ph)
    }

    /// Output width: `floor((w + 2*pw - kw) / sw) + 1` (PyTorch, `ceil_mode=False`).
    pub fn out_w(&self) -> usize {
        out_len(self.w, self.kw, self.sw, self.pw)
    }

    /// The geometry checked by PyTorch's rules, as an error naming what is wrong: what a
    /// device backend asks before it indexes with it.
    pub fn validate(&self) -> crate::Res<(usize, usize)> {
        let bad = |m: String| Err(crate::KernelError::Invalid(format!("pool: {m}")));
        let (h, w) = (self.h + 2 * self.ph, self.w + 2 * self.pw);
        if self.h == 0 || self.w == 0 {
            return bad(format!("empty input plane {}x{}", self.h, self.w));
        }
        if self.kh == 0 || self.kw == 0 || self.sh == 0 || self.sw == 0 {
            return bad("window and stride must be positive".into());
        }
        if self.ph > self.kh / 2 || self.pw > self.kw / 2 {
            return bad(format!(
                "padding ({}, {}) must be at most half the window ({}, {})",
                self.ph, self.pw, self.kh, self.kw
            ));
        }
        if self.kh > h || self.kw > w {
            return bad("window larger than the padded input".into());
        }
        if !crate::accel::indexable(&[self.h * self.w, self.n * self.c, self.kh, self.kw]) {
            return bad(format!(
                "{} planes of {}x{} (window {}x{}): past the 2^31 a device kernel indexes",
                self.n * self.c,
                self.h,
                self.w,
                self.kh,
                self.kw
            ));
        }
        Ok((self.out_h(), self.out_w()))
    }

    /// Validates the geometry (PyTorch's rules) and returns `(out_h, out_w)`.
    fn check(&self) -> (usize, usize) {
        assert!(
            self.h > 0 && self.w > 0,
            "pool: empty input plane {}x{}",
            self.h,
            self.w
        );
        assert!(
            self.ph <= self.kh / 2 && self.pw <= self.kw / 2,
            "pool: padding ({}, {}) must be at most half the window ({}, {})",
            self.ph,
            self.pw,
            self.kh,
            self.kw
        );
        assert!(
            self.h * self.w <= u32::MAX as usize,
            "pool: plane too large for u32 argmax"
        );
        (self.out_h(), self.out_w())
    }
}

/// Output length of one pooled axis.
fn out_len(len: usize, k: usize, s: usize, p: usize) -> usize {
    assert!(k > 0 && s > 0, "pool: window and stride must be positive");
    let span = (len + 2 * p)
        .checked_sub(k)
        .expect("pool: window larger than the padded input");
    span / s + 1
}

/// Clipped input range `[lo, hi)` of the window of output `o` along one axis.
#[inline]
fn window(o: usize, s: usize, p: usize, k: usize, len: usize) -> (usize, usize) {
    let start = o * s;
    let lo = start.saturating_sub(p);
    let hi = (start + k).saturating_sub(p).min(len);
    (lo, hi)
}

/// Outputs `[lo, hi)` along one axis whose window tap `t` lands inside the input.
///
/// The input coordinate of output `o` at tap `t` is `o*s + t - p`.
#[inline]
fn tap_outputs(t: usize, s: usize, p: usize, len: usize, out: usize) -> (usize, usize) {
    let lo = if t >= p { 0 } else { (p - t).div_ceil(s) };
    let hi = if len + p > t {
        ((len - 1 + p - t) / s + 1).min(out)
    } else {
        0
    };
    (lo.min(hi), hi)
}

/// Runs `plane` on each pair of an output plane (`out_plane` values of `out`) and its
/// input plane (`in_plane` values of `inp`), in parallel when `large`.
fn for_planes<F>(
    out: &mut [f32],
    out_plane: usize,
    inp: &[f32],
    in_plane: usize,
    large: bool,
    plane: F,
) where
    F: Fn((&mut [f32], &[f32])) + Send + Sync,
{
    if large {
        out.par_chunks_mut(out_plane)
            .zip(inp.par_chunks(in_plane))
            .for_each(plane);
    } else {
        out.chunks_mut(out_plane)
            .zip(inp.chunks(in_plane))
            .for_each(plane);
    }
}

/// Sum of a slice with eight independent lanes (vectorisable, and more accurate than a chain).
#[inline]
fn lane_sum(s: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let chunks = s.chunks_exact(8);
    let rem = chunks.remainder();
    for ch in chunks {
        let ch: &[f32; 8] = ch.try_into().unwrap();
        for (a, &v) in acc.iter_mut().zip(ch) {
            *a += v;
        }
    }
    let mut t = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for v in rem {
        t += v;
    }
    t
}

/// An argmax as max pooling keeps it: a `u32`, or a `u32`'s bits in an `f32` (as the
/// backends' buffers of floats hold it).
pub trait ArgIndex: Copy + Send + Sync {
    fn from_u32(i: u32) -> Self;
    fn get(self) -> u32;
}

impl ArgIndex for u32 {
    #[inline]
    fn from_u32(i: u32) -> u32 {
        i
    }
    #[inline]
    fn get(self) -> u32 {
        self
    }
}

impl ArgIndex for f32 {
    #[inline]
    fn from_u32(i: u32) -> f32 {
        f32::from_bits(i)
    }
    #[inline]
    fn get(self) -> u32 {
        self.to_bits()
    }
}

/// Max pooling forward; padding acts as -inf; `argmax` gets the flat `h*w` index in the input plane.
pub fn max_pool2d_forward<A: ArgIndex>(p: &Pool2d, x: &[f32], y: &mut [f32], argmax: &mut [A]) {
    let (oh, ow) = p.check();
    let (h, w) = (p.h, p.w);
    let planes = p.n * p.c;
    assert_eq!(x.len(), planes * h * w, "max_pool2d_forward: x length");
    assert_eq!(y.len(), planes * oh * ow, "max_pool2d_forward: y length");
    assert_eq!(argmax.len(), y.len(), "max_pool2d_forward: argmax length");
    if y.is_empty() {
        return;
    }
    let fast = p.kh == 2 && p.kw == 2 && p.sh == 2 && p.sw == 2 && p.ph == 0 && p.pw == 0;
    let unit_stride = p.sh == 1 && p.sw == 1;
    let plane = |((yp, ap), xp): ((&mut [f32], &mut [A]), &[f32])| {
        if fast {
            max_plane_2x2(w, ow, xp, yp, ap)
        } else if unit_stride && !xp.iter().any(|v| v.is_nan()) {
            max_plane_s1(p, ow, xp, yp, ap)
        } else {
            max_plane(p, ow, xp, yp, ap)
        }
    };
    if x.len() < PAR_MIN {
        y.chunks_mut(oh * ow)
            .zip(argmax.chunks_mut(oh * ow))
            .zip(x.chunks(h * w))
            .for_each(plane);
    } else {
        y.par_chunks_mut(oh * ow)
            .zip(argmax.par_chunks_mut(oh * ow))
            .zip(x.par_chunks(h * w))
            .for_each(plane);
    }
}

/// One plane of 2x2 stride-2 unpadded max pooling.
fn max_plane_2x2<A: ArgIndex>(w: usize, ow: usize, xp: &[f32], yp: &mut [f32], ap: &mut [A]) {
    for (oy, (yrow, arow)) in yp
        .chunks_exact_mut(ow)
        .zip(ap.chunks_exact_mut(ow))
        .enumerate()
    {
        let r0 = &xp[2 * oy * w..][..2 * ow];
        let r1 = &xp[(2 * oy + 1) * w..][..2 * ow];
        let base = (2 * oy * w) as u32;
        let w32 = w as u32;
        let it = yrow
            .iter_mut()
            .zip(arow.iter_mut())
            .zip(r0.chunks_exact(2).zip(r1.chunks_exact(2)));
        for (ox, ((m, a), (q0, q1))) in it.enumerate() {
            let i0 = base + 2 * ox as u32;
            let (mut best, mut bi) = (q0[0], i0);
            if q0[1] > best || q0[1].is_nan() {
                best = q0[1];
                bi = i0 + 1;
            }
            if q1[0] > best || q1[0].is_nan() {
                best = q1[0];
                bi = i0 + w32;
            }
            if q1[1] > best || q1[1].is_nan() {
                best = q1[1];
                bi = i0 + w32 + 1;
            }
            *m = best;
            *a = A::from_u32(bi);
        }
    }
}

thread_local! {
    /// Row maxima and their columns for `max_plane_s1`.
    static ROWS: std::cell::RefCell<(Vec<f32>, Vec<u32>)> = const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// One plane of stride-1 max pooling without NaNs, separably: the maximum (and its first
/// column) of each input row over each output column's window, then the maximum over the
/// window's rows, where an earlier row wins ties. That is the row-major first maximum of
/// the window, as `max_plane` finds it, with `kh + kw` comparisons per output instead of
/// `kh * kw`, the second pass over contiguous rows.
fn max_plane_s1<A: ArgIndex>(p: &Pool2d, ow: usize, xp: &[f32], yp: &mut [f32], ap: &mut [A]) {
    let (h, w) = (p.h, p.w);
    let oh = yp.len() / ow;
    ROWS.with(|r| {
        let (rowmax, rowarg) = &mut *r.borrow_mut();
        rowmax.resize(h * ow, 0.0);
        rowarg.resize(h * ow, 0);
        for iy in 0..h {
            let row = &xp[iy * w..(iy + 1) * w];
            let rm = &mut rowmax[iy * ow..(iy + 1) * ow];
            let ra = &mut rowarg[iy * ow..(iy + 1) * ow];
            for ox in 0..ow {
                let (x0, x1) = window(ox, 1, p.pw, p.kw, w);
                let mut best = f32::NEG_INFINITY;
                let mut bi = x0;
                for (ix, &v) in row.iter().enumerate().take(x1).skip(x0) {
                    let take = v > best;
                    best = if take { v } else { best };
                    bi = if take { ix } else { bi };
                }
                rm[ox] = best;
                ra[ox] = bi as u32;
            }
        }
        for oy in 0..oh {
            let (y0, y1) = window(oy, 1, p.ph, p.kh, h);
            let yrow = &mut yp[oy * ow..(oy + 1) * ow];
            let arow = &mut ap[oy * ow..(oy + 1) * ow];
            let base = (y0 * w) as u32;
            yrow.copy_from_slice(&rowmax[y0 * ow..(y0 + 1) * ow]);
            for (a, &c) in arow.iter_mut().zip(&rowarg[y0 * ow..(y0 + 1) * ow]) {
                *a = A::from_u32(base + c);
            }
            for iy in y0 + 1..y1 {
                let base = (iy * w) as u32;
                let rm = &rowmax[iy * ow..(iy + 1) * ow];
                let ra = &rowarg[iy * ow..(iy + 1) * ow];
                for ox in 0..ow {
                    let take = rm[ox] > yrow[ox];
                    yrow[ox] = if take { rm[ox] } else { yrow[ox] };
                    arow[ox] = A::from_u32(if take { base + ra[ox] } else { arow[ox].get() });
                }
            }
        }
    })
}

/// One plane of general max pooling, walking each clipped window directly.
///
/// The window is visited in row-major order and only a strictly larger value (or a NaN)
/// replaces the running maximum, so ties resolve to the first element like PyTorch. The
/// update is written as selects so it compiles to branch-free code.
fn max_plane<A: ArgIndex>(p: &Pool2d, ow: usize, xp: &[f32], yp: &mut [f32], ap: &mut [A]) {
    let w = p.w;
    for (oy, (yrow, arow)) in yp
        .chunks_exact_mut(ow)
        .zip(ap.chunks_exact_mut(ow))
        .enumerate()
    {
        let (iy0, iy1) = window(oy, p.sh, p.ph, p.kh, p.h);
        for (ox, (m, a)) in yrow.iter_mut().zip(arow.iter_mut()).enumerate() {
            let (ix0, ix1) = window(ox, p.sw, p.pw, p.kw, w);
            let mut best = f32::NEG_INFINITY;
            let mut bi = iy0 * w + ix0;
            for iy in iy0..iy1 {
                let base = iy * w + ix0;
                for (j, &v) in xp[base..iy * w + ix1].iter().enumerate() {
                    let take = v > best || v.is_nan();
                    best = if take { v } else { best };
                    bi = if take { base + j } else { bi };
                }
            }
            *m = best;
            *a = A::from_u32(bi as u32);
        }
    }
}

/// Max pooling backward: overwrites `gx` with `gy` scattered to the recorded argmax positions.
pub fn max_pool2d_backward<A: ArgIndex>(p: &Pool2d, gy: &[f32], argmax: &[A], gx: &mut [f32]) {
    let (oh, ow) = p.check();
    let (hw, ohw) = (p.h * p.w, oh * ow);
    let planes = p.n * p.c;
    assert_eq!(gx.len(), planes * hw, "max_pool2d_backward: gx length");
    assert_eq!(gy.len(), planes * ohw, "max_pool2d_backward: gy length");
    assert_eq!(argmax.len(), gy.len(), "max_pool2d_backward: argmax length");
    if gx.is_empty() {
        return;
    }
    if gy.is_empty() {
        gx.fill(0.0);
        return;
    }
    let plane = |(gxp, (gyp, ap)): (&mut [f32], (&[f32], &[A]))| {
        gxp.fill(0.0);
        for (&g, &a) in gyp.iter().zip(ap) {
            gxp[a.get() as usize] += g;
        }
    };
    if gx.len() < PAR_MIN {
        gx.chunks_mut(hw)
            .zip(gy.chunks(ohw).zip(argmax.chunks(ohw)))
            .for_each(plane);
    } else {
        gx.par_chunks_mut(hw)
            .zip(gy.par_chunks(ohw).zip(argmax.par_chunks(ohw)))
            .for_each(plane);
    }
}

/// One axis's factor of the average-pooling divisor for output `o`: the window's length
/// inside the input, or inside the padded input when padding counts (PyTorch's rules; the
/// divisor of output `(oy, ox)` is the product of its two factors).
#[inline]
fn avg_factor(o: usize, s: usize, p: usize, k: usize, len: usize, cip: bool) -> usize {
    if cip {
        (o * s + k).min(len + 2 * p) - o * s
    } else {
        let (lo, hi) = window(o, s, p, k, len);
        hi - lo
    }
}

/// Average-pooling divisor of output `(oy, ox)`.
#[inline]
fn avg_divisor(p: &Pool2d, cip: bool, oy: usize, ox: usize) -> f32 {
    let fy = avg_factor(oy, p.sh, p.ph, p.kh, p.h, cip);
    let fx = avg_factor(ox, p.sw, p.pw, p.kw, p.w, cip);
    (fy * fx) as f32
}

/// The divisor of every output of a stride-1 average pooling (one plane, row-major).
fn avg_divisors_s1(p: &Pool2d, cip: bool, oh: usize, ow: usize) -> Vec<f32> {
    let cols: Vec<usize> = (0..ow)
        .map(|o| avg_factor(o, 1, p.pw, p.kw, p.w, cip))
        .collect();
    (0..oh)
        .flat_map(|oy| {
            let fy = avg_factor(oy, 1, p.ph, p.kh, p.h, cip);
            cols.iter().map(move |&fx| (fy * fx) as f32)
        })
        .collect()
}

/// Adds row `src` into `dst` at each horizontal tap of a stride-1 window: `forward` sums
/// input columns into output columns (`dst` has the output width), otherwise the
/// transpose spreads output columns back over input columns (`dst` has the input width).
#[inline]
fn taps_s1(p: &Pool2d, ow: usize, src: &[f32], dst: &mut [f32], forward: bool) {
    for kx in 0..p.kw {
        let (lo, hi) = tap_outputs(kx, 1, p.pw, p.w, ow);
        if lo >= hi {
            continue;
        }
        let col0 = lo + kx - p.pw;
        let (d, s) = if forward {
            (&mut dst[lo..hi], &src[col0..col0 + hi - lo])
        } else {
            (&mut dst[col0..col0 + hi - lo], &src[lo..hi])
        };
        d.iter_mut().zip(s).for_each(|(o, &v)| *o += v);
    }
}

/// Stride-1 average pooling forward, separably: each input row's sums over every
/// output column's window, then each output row the sum of its window's rows.
fn avg_pool2d_forward_s1(p: &Pool2d, cip: bool, x: &[f32], y: &mut [f32], oh: usize, ow: usize) {
    let (h, w) = (p.h, p.w);
    let div = avg_divisors_s1(p, cip, oh, ow);
    let plane = |(yp, xp): (&mut [f32], &[f32])| {
        let mut hs = vec![0f32; h * ow];
        for (hrow, xrow) in hs.chunks_exact_mut(ow).zip(xp.chunks_exact(w)) {
            taps_s1(p, ow, xrow, hrow, true);
        }
        for (oy, (yrow, drow)) in yp
            .chunks_exact_mut(ow)
            .zip(div.chunks_exact(ow))
            .enumerate()
        {
            yrow.fill(0.0);
            let (iy0, iy1) = window(oy, 1, p.ph, p.kh, h);
            for hrow in hs[iy0 * ow..iy1 * ow].chunks_exact(ow) {
                yrow.iter_mut().zip(hrow).for_each(|(o, &v)| *o += v);
            }
            yrow.iter_mut().zip(drow).for_each(|(o, &d)| *o /= d);
        }
    };
    for_planes(y, oh * ow, x, h * w, x.len() >= PAR_MIN, plane);
}

/// Stride-1 average pooling backward, the transpose of [`avg_pool2d_forward_s1`]: each
/// output gradient over its divisor is summed into the rows of its window, then each
/// row's sums are spread over the columns of their windows.
fn avg_pool2d_backward_s1(p: &Pool2d, cip: bool, gy: &[f32], gx: &mut [f32], oh: usize, ow: usize) {
    let (h, w) = (p.h, p.w);
    let div = avg_divisors_s1(p, cip, oh, ow);
    let plane = |(gxp, gyp): (&mut [f32], &[f32])| {
        let mut vs = vec![0f32; h * ow];
        let mut scaled = vec![0f32; ow];
        for (oy, (gyrow, drow)) in gyp.chunks_exact(ow).zip(div.chunks_exact(ow)).enumerate() {
            for ((s, &g), &d) in scaled.iter_mut().zip(gyrow).zip(drow) {
                *s = g / d;
            }
            let (iy0, iy1) = window(oy, 1, p.ph, p.kh, h);
            for vrow in vs[iy0 * ow..iy1 * ow].chunks_exact_mut(ow) {
                vrow.iter_mut().zip(&scaled).for_each(|(o, &v)| *o += v);
            }
        }
        gxp.fill(0.0);
        for (gxrow, vrow) in gxp.chunks_exact_mut(w).zip(vs.chunks_exact(ow)) {
            taps_s1(p, ow, vrow, gxrow, false);
        }
    };
    for_planes(gx, h * w, gy, oh * ow, gx.len() >= PAR_MIN, plane);
}

/// Average pooling forward; `count_include_pad` chooses whether padding counts in the divisor.
pub fn avg_pool2d_forward(p: &Pool2d, count_include_pad: bool, x: &[f32], y: &mut [f32]) {
    let (oh, ow) = p.check();
    let (h, w) = (p.h, p.w);
    let planes = p.n * p.c;
    assert_eq!(x.len(), planes * h * w, "avg_pool2d_forward: x length");
    assert_eq!(y.len(), planes * oh * ow, "avg_pool2d_forward: y length");
    if y.is_empty() {
        return;
    }
    if p.sh == 1 && p.sw == 1 {
        return avg_pool2d_forward_s1(p, count_include_pad, x, y, oh, ow);
    }
    let plane = |(yp, xp): (&mut [f32], &[f32])| {
        for (oy, yrow) in yp.chunks_exact_mut(ow).enumerate() {
            yrow.fill(0.0);
            let (iy0, iy1) = window(oy, p.sh, p.ph, p.kh, h);
            for iy in iy0..iy1 {
                let xrow = &xp[iy * w..(iy + 1) * w];
                for kx in 0..p.kw {
                    let (lo, hi) = tap_outputs(kx, p.sw, p.pw, w, ow);
                    if lo >= hi {
                        continue;
                    }
                    let col0 = lo * p.sw + kx - p.pw;
                    let ys = &mut yrow[lo..hi];
                    if p.sw == 1 {
                        let xs = &xrow[col0..col0 + (hi - lo)];
                        ys.iter_mut().zip(xs).for_each(|(o, &v)| *o += v);
                    } else {
                        let xs = xrow[col0..].iter().step_by(p.sw);
                        ys.iter_mut().zip(xs).for_each(|(o, &v)| *o += v);
                    }
                }
            }
            for (ox, o) in yrow.iter_mut().enumerate() {
                *o /= avg_divisor(p, count_include_pad, oy, ox);
            }
        }
    };
    for_planes(y, oh * ow, x, h * w, x.len() >= PAR_MIN, plane);
}

/// Average pooling backward: overwrites `gx` with each `gy / divisor` spread over its window.
pub fn avg_pool2d_backward(p: &Pool2d, count_include_pad: bool, gy: &[f32], gx: &mut [f32]) {
    let (oh, ow) = p.check();
    let (h, w) = (p.h, p.w);
    let planes = p.n * p.c;
    assert_eq!(gx.len(), planes * h * w, "avg_pool2d_backward: gx length");
    assert_eq!(gy.len(), planes * oh * ow, "avg_pool2d_backward: gy length");
    if gx.is_empty() {
        return;
    }
    if gy.is_empty() {
        gx.fill(0.0);
        return;
    }
    if p.sh == 1 && p.sw == 1 {
        return avg_pool2d_backward_s1(p, count_include_pad, gy, gx, oh, ow);
    }
    let plane = |(gxp, gyp): (&mut [f32], &[f32])| {
        gxp.fill(0.0);
        for (oy, gyrow) in gyp.chunks_exact(ow).enumerate() {
            let (iy0, iy1) = window(oy, p.sh, p.ph, p.kh, h);
            for (ox, &g) in gyrow.iter().enumerate() {
                let g = g / avg_divisor(p, count_include_pad, oy, ox);
                let (ix0, ix1) = window(ox, p.sw, p.pw, p.kw, w);
                for iy in iy0..iy1 {
                    gxp[iy * w + ix0..iy * w + ix1]
                        .iter_mut()
                        .for_each(|v| *v += g);
                }
            }
        }
    };
    for_planes(gx, h * w, gy, oh * ow, gx.len() >= PAR_MIN, plane);
}

/// PyTorch's adaptive bin `[floor(i*len/out), ceil((i+1)*len/out))`.
#[inline]
fn adaptive_bin(i: usize, len: usize, out: usize) -> (usize, usize) {
    (i * len / out, ((i + 1) * len).div_ceil(out))
}

/// Checks adaptive-pool buffer sizes; returns false when there is nothing to compute.
fn adaptive_check(
    name: &str,
    (n, c, h, w, oh, ow): (usize, usize, usize, usize, usize, usize),
    xlen: usize,
    ylen: usize,
) -> bool {
    assert_eq!(xlen, n * c * h * w, "{name}: input length");
    assert_eq!(ylen, n * c * oh * ow, "{name}: output length");
    if ylen > 0 {
        assert!(h > 0 && w > 0, "{name}: empty input plane {h}x{w}");
    }
    xlen > 0 && ylen > 0
}

/// Adaptive average pooling forward from `h x w` planes to `oh x ow` planes (PyTorch bins).
#[allow(clippy::too_many_arguments)]
pub fn adaptive_avg_pool2d_forward(
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    x: &[f32],
    y: &mut [f32],
) {
    let dims = (n, c, h, w, oh, ow);
    if !adaptive_check("adaptive_avg_pool2d_forward", dims, x.len(), y.len()) {
        return;
    }
    let plane = |(yp, xp): (&mut [f32], &[f32])| {
        if oh == 1 && ow == 1 {
            yp[0] = lane_sum(xp) / (h * w) as f32;
            return;
        }
        for (oy, yrow) in yp.chunks_exact_mut(ow).enumerate() {
            let (y0, y1) = adaptive_bin(oy, h, oh);
            for (ox, o) in yrow.iter_mut().enumerate() {
                let (x0, x1) = adaptive_bin(ox, w, ow);
                let mut s = 0.0f32;
                for iy in y0..y1 {
                    s += lane_sum(&xp[iy * w + x0..iy * w + x1]);
                }
                *o = s / ((y1 - y0) * (x1 - x0)) as f32;
            }
        }
    };
    for_planes(y, oh * ow, x, h * w, x.len() >= PAR_MIN, plane);
}

/// Adaptive average pooling backward: overwrites `gx` with each `gy / bin size` over its bin.
#[allow(clippy::too_many_arguments)]
pub fn adaptive_avg_pool2d_backward(
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    gy: &[f32],
    gx: &mut [f32],
) {
    let dims = (n, c, h, w, oh, ow);
    if !adaptive_check("adaptive_avg_pool2d_backward", dims, gx.len(), gy.len()) {
        gx.fill(0.0);
        return;
    }
    let plane = |(gxp, gyp): (&mut [f32], &[f32])| {
        gxp.fill(0.0);
        for (oy, gyrow) in gyp.chunks_exact(ow).enumerate() {
            let (y0, y1) = adaptive_bin(oy, h, oh);
            for (ox, &g) in gyrow.iter().enumerate() {
                let (x0, x1) = adaptive_bin(ox, w, ow);
                let g = g / ((y1 - y0) * (x1 - x0)) as f32;
                for iy in y0..y1 {
                    gxp[iy * w + x0..iy * w + x1]
                        .iter_mut()
                        .for_each(|v| *v += g);
                }
            }
        }
    };
    for_planes(gx, h * w, gy, oh * ow, gx.len() >= PAR_MIN, plane);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tiny deterministic generator for test inputs.
    struct Lcg(u64);

    impl Lcg {
        fn next_u32(&mut self) -> u32 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 33) as u32
        }
        fn uniform(&mut self) -> f32 {
            (self.next_u32() >> 7) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0
        }
        fn vec(&mut self, n: usize) -> Vec<f32> {
            (0..n).map(|_| self.uniform()).collect()
        }
        /// Distinct values (a shuffled, scaled 0..n) so max pooling has no ties.
        fn distinct(&mut self, n: usize) -> Vec<f32> {
            let mut v: Vec<f32> = (0..n).map(|i| i as f32 * 0.25 - n as f32 * 0.125).collect();
            for i in (1..n).rev() {
                let j = self.next_u32() as usize % (i + 1);
                v.swap(i, j);
            }
            v
        }
    }

    fn geom(
        (n, c, h, w): (usize, usize, usize, usize),
        (kh, kw): (usize, usize),
        (sh, sw): (usize, usize),
        (ph, pw): (usize, usize),
    ) -> Pool2d {
        Pool2d {
            n,
            c,
            h,
            w,
            kh,
            kw,
            sh,
            sw,
            ph,
            pw,
        }
    }

    /// Shapes covering odd sizes, stride 2, padding 1, kernel 3, rectangular windows, the
    /// 2x2 fast path (with an odd width that it must ignore) and a tensor big enough to split.
    fn cases() -> Vec<Pool2d> {
        vec![
            geom((2, 3, 5, 7), (3, 3), (2, 2), (1, 1)),
            geom((2, 3, 5, 7), (3, 3), (1, 1), (1, 1)),
            geom((1, 2, 5, 7), (3, 3), (2, 2), (0, 0)),
            geom((2, 2, 5, 7), (2, 2), (2, 2), (0, 0)),
            geom((2, 2, 6, 8), (2, 2), (2, 2), (0, 0)),
            geom((1, 3, 7, 5), (2, 3), (1, 2), (1, 1)),
            geom((1, 2, 4, 4), (4, 4), (1, 1), (2, 2)),
            geom((1, 1, 1, 1), (1, 1), (1, 1), (0, 0)),
            geom((4, 8, 33, 31), (3, 3), (2, 2), (1, 1)),
            geom((4, 8, 32, 32), (2, 2), (2, 2), (0, 0)),
            // Stride 1 (the separable average path): NAS-Bench-201's 3x3 on 28x28 planes,
            // in parallel; a wide kernel with uneven padding; one wider than the input.
            geom((4, 8, 28, 28), (3, 3), (1, 1), (1, 1)),
            geom((1, 2, 6, 9), (2, 5), (1, 1), (0, 2)),
            geom((2, 1, 3, 2), (3, 5), (1, 1), (1, 2)),
        ]
    }

    /// Ties and -inf plateaus resolve like the direct definition on every path (the
    /// stride-1 separable one included): the first maximum in row-major order.
    #[test]
    fn max_pool_ties_go_to_the_first_maximum() {
        for p in cases() {
            let n = p.n * p.c * p.h * p.w;
            // Few distinct values, so windows hold ties; some planes all -inf.
            let x: Vec<f32> = (0..n)
                .map(|i| match (i * 7 + i / 5) % 4 {
                    0 => f32::NEG_INFINITY,
                    k => (k % 2) as f32,
                })
                .collect();
            let (oh, ow) = (p.out_h(), p.out_w());
            let (mut y, mut a) = (
                vec![0.0; p.n * p.c * oh * ow],
                vec![0u32; p.n * p.c * oh * ow],
            );
            max_pool2d_forward(&p, &x, &mut y, &mut a);
            let (ny, na) = naive_max(&p, &x);
            assert_eq!(y, ny, "{p:?}");
            assert_eq!(a, na, "{p:?}");
            let flat = vec![f32::NEG_INFINITY; n];
            max_pool2d_forward(&p, &flat, &mut y, &mut a);
            assert_eq!(a, naive_max(&p, &flat).1, "-inf plateau {p:?}");
        }
    }

    /// Direct definition of max pooling (first maximum wins, NaN not exercised).
    fn naive_max(p: &Pool2d, x: &[f32]) -> (Vec<f32>, Vec<u32>) {
        let (oh, ow) = (p.out_h(), p.out_w());
        let mut y = vec![0.0; p.n * p.c * oh * ow];
        let mut a = vec![0u32; y.len()];
        for pl in 0..p.n * p.c {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut best = f32::NEG_INFINITY;
                    let mut bi = usize::MAX;
                    for ky in 0..p.kh {
                        for kx in 0..p.kw {
                            let iy = (oy * p.sh + ky) as isize - p.ph as isize;
                            let ix = (ox * p.sw + kx) as isize - p.pw as isize;
                            if iy < 0 || ix < 0 || iy >= p.h as isize || ix >= p.w as isize {
                                continue;
                            }
                            let idx = iy as usize * p.w + ix as usize;
                            let v = x[pl * p.h * p.w + idx];
                            if bi == usize::MAX || v > best || v.is_nan() {
                                best = v;
                                bi = idx;
                            }
                        }
                    }
                    let o = (pl * oh + oy) * ow + ox;
                    y[o] = best;
                    a[o] = bi as u32;
                }
            }
        }
        (y, a)
    }

    /// Direct definition of average pooling with PyTorch's divisor rules (floor mode).
    fn naive_avg(p: &Pool2d, cip: bool, x: &[f32]) -> Vec<f32> {
        let (oh, ow) = (p.out_h(), p.out_w());
        let mut y = vec![0.0; p.n * p.c * oh * ow];
        for pl in 0..p.n * p.c {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut s = 0.0f64;
                    let mut cnt = 0usize;
                    for ky in 0..p.kh {
                        for kx in 0..p.kw {
                            let iy = (oy * p.sh + ky) as isize - p.ph as isize;
                            let ix = (ox * p.sw + kx) as isize - p.pw as isize;
                            if iy < 0 || ix < 0 || iy >= p.h as isize || ix >= p.w as isize {
                                continue;
                            }
                            s += x[pl * p.h * p.w + iy as usize * p.w + ix as usize] as f64;
                            cnt += 1;
                        }
                    }
                    let div = if cip { p.kh * p.kw } else { cnt };
                    y[(pl * oh + oy) * ow + ox] = (s / div as f64) as f32;
                }
            }
        }
        y
    }

    /// Direct definition of adaptive average pooling.
    fn naive_adaptive(
        (n, c, h, w): (usize, usize, usize, usize),
        (oh, ow): (usize, usize),
        x: &[f32],
    ) -> Vec<f32> {
        let mut y = vec![0.0; n * c * oh * ow];
        for pl in 0..n * c {
            for oy in 0..oh {
                let y0 = (oy * h) as f64 / oh as f64;
                let y1 = ((oy + 1) * h) as f64 / oh as f64;
                let (y0, y1) = (y0.floor() as usize, y1.ceil() as usize);
                for ox in 0..ow {
                    let x0 = ((ox * w) as f64 / ow as f64).floor() as usize;
                    let x1 = (((ox + 1) * w) as f64 / ow as f64).ceil() as usize;
                    let mut s = 0.0f64;
                    for iy in y0..y1 {
                        for ix in x0..x1 {
                            s += x[pl * h * w + iy * w + ix] as f64;
                        }
                    }
                    y[(pl * oh + oy) * ow + ox] = (s / ((y1 - y0) * (x1 - x0)) as f64) as f32;
                }
            }
        }
        y
    }

    fn assert_close(got: &[f32], want: &[f32], tol: f32, what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() <= tol * (1.0 + w.abs()),
                "{what}[{i}]: got {g}, want {w}"
            );
        }
    }

    /// `sum(f(x) * r)` in f64.
    fn dot(y: &[f32], r: &[f32]) -> f64 {
        y.iter().zip(r).map(|(&a, &b)| a as f64 * b as f64).sum()
    }

    /// Compares `analytic` with central differences of `loss` at every coordinate of `x`.
    fn fd_check(x: &[f32], analytic: &[f32], eps: f32, loss: impl Fn(&[f32]) -> f64, what: &str) {
        let mut xs = x.to_vec();
        for i in 0..x.len() {
            let x0 = x[i];
            xs[i] = x0 + eps;
            let (xp, lp) = (xs[i], loss(&xs));
            xs[i] = x0 - eps;
            let (xm, lm) = (xs[i], loss(&xs));
            xs[i] = x0;
            let num = (lp - lm) / (xp as f64 - xm as f64);
            let ana = analytic[i] as f64;
            assert!(
                (num - ana).abs() <= 1e-2 * ana.abs() + 1e-3,
                "{what}: d/dx[{i}] numeric {num} vs analytic {ana}"
            );
        }
    }

    #[test]
    fn out_dims_follow_pytorch_floor_mode() {
        let p = geom((1, 1, 5, 7), (3, 3), (2, 2), (1, 1));
        assert_eq!((p.out_h(), p.out_w()), (3, 4));
        let p = geom((1, 1, 5, 7), (2, 2), (2, 2), (0, 0));
        assert_eq!((p.out_h(), p.out_w()), (2, 3));
        let p = geom((1, 1, 4, 4), (4, 4), (1, 1), (2, 2));
        assert_eq!((p.out_h(), p.out_w()), (5, 5));
    }

    #[test]
    fn max_pool_forward_matches_naive() {
        let mut rng = Lcg(1);
        for p in cases() {
            let x = rng.vec(p.n * p.c * p.h * p.w);
            let n_out = p.n * p.c * p.out_h() * p.out_w();
            let (mut y, mut a) = (vec![0.0; n_out], vec![0u32; n_out]);
            max_pool2d_forward(&p, &x, &mut y, &mut a);
            let (yr, ar) = naive_max(&p, &x);
            assert_eq!(y, yr, "{p:?}: values");
            assert_eq!(a, ar, "{p:?}: argmax");
        }
    }

    /// A NaN in a window is its maximum and the argmax is the last NaN in row-major
    /// order, on every path, with NaN-free planes beside NaN-riddled ones.
    #[test]
    fn max_pool_propagates_nans_like_the_direct_walk() {
        let mut rng = Lcg(5);
        for p in cases() {
            let x: Vec<f32> = (0..p.n * p.c * p.h * p.w)
                .map(|i| match rng.next_u32() % 5 {
                    0 if (i / (p.h * p.w)) % 2 == 0 => f32::NAN,
                    k => k as f32,
                })
                .collect();
            let n_out = p.n * p.c * p.out_h() * p.out_w();
            let (mut y, mut a) = (vec![0.0; n_out], vec![0u32; n_out]);
            max_pool2d_forward(&p, &x, &mut y, &mut a);
            let (yr, ar) = naive_max(&p, &x);
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&y), bits(&yr), "{p:?}: values");
            assert_eq!(a, ar, "{p:?}: argmax");
        }
    }

    #[test]
    fn max_pool_ties_pick_first_in_window() {
        let mut rng = Lcg(2);
        for p in cases() {
            // Only three distinct values: lots of ties.
            let x: Vec<f32> = (0..p.n * p.c * p.h * p.w)
                .map(|_| (rng.next_u32() % 3) as f32)
                .collect();
            let n_out = p.n * p.c * p.out_h() * p.out_w();
            let (mut y, mut a) = (vec![0.0; n_out], vec![0u32; n_out]);
            max_pool2d_forward(&p, &x, &mut y, &mut a);
            let (yr, ar) = naive_max(&p, &x);
            assert_eq!(y, yr, "{p:?}: values");
            assert_eq!(a, ar, "{p:?}: argmax");
        }
    }

    #[test]
    fn max_pool_backward_matches_finite_differences() {
        let mut rng = Lcg(3);
        for p in cases().into_iter().filter(|p| p.n * p.c * p.h * p.w < 500) {
            let x = rng.distinct(p.n * p.c * p.h * p.w);
            let n_out = p.n * p.c * p.out_h() * p.out_w();
            let r = rng.vec(n_out);
            let (mut y, mut a) = (vec![0.0; n_out], vec![0u32; n_out]);
            max_pool2d_forward(&p, &x, &mut y, &mut a);
            let mut gx = vec![f32::NAN; x.len()];
            max_pool2d_backward(&p, &r, &a, &mut gx);
            let loss = |xs: &[f32]| {
                let (mut y, mut a) = (vec![0.0; n_out], vec![0u32; n_out]);
                max_pool2d_forward(&p, xs, &mut y, &mut a);
                dot(&y, &r)
            };
            fd_check(&x, &gx, 1e-2, loss, &format!("max {p:?}"));
        }
    }

    #[test]
    fn max_pool_backward_large_matches_scatter() {
        let mut rng = Lcg(4);
        for p in cases() {
            let x = rng.vec(p.n * p.c * p.h * p.w);
            let n_out = p.n * p.c * p.out_h() * p.out_w();
            let gy = rng.vec(n_out);
            let (mut y, mut a) = (vec![0.0; n_out], vec![0u32; n_out]);
            max_pool2d_forward(&p, &x, &mut y, &mut a);
            let mut gx = vec![f32::NAN; x.len()];
            max_pool2d_backward(&p, &gy, &a, &mut gx);
            let mut want = vec![0.0f32; x.len()];
            let ohw = p.out_h() * p.out_w();
            for (i, (&g, &ai)) in gy.iter().zip(&a).enumerate() {
                want[(i / ohw) * p.h * p.w + ai as usize] += g;
            }
            assert_close(&gx, &want, 1e-6, &format!("max backward {p:?}"));
        }
    }

    #[test]
    fn avg_pool_forward_matches_naive() {
        let mut rng = Lcg(5);
        for p in cases() {
            for cip in [true, false] {
                let x = rng.vec(p.n * p.c * p.h * p.w);
                let mut y = vec![f32::NAN; p.n * p.c * p.out_h() * p.out_w()];
                avg_pool2d_forward(&p, cip, &x, &mut y);
                assert_close(
                    &y,
                    &naive_avg(&p, cip, &x),
                    1e-5,
                    &format!("avg {cip} {p:?}"),
                );
            }
        }
    }

    #[test]
    fn avg_pool_backward_matches_finite_differences() {
        let mut rng = Lcg(6);
        for p in cases().into_iter().filter(|p| p.n * p.c * p.h * p.w < 500) {
            for cip in [true, false] {
                let x = rng.vec(p.n * p.c * p.h * p.w);
                let n_out = p.n * p.c * p.out_h() * p.out_w();
                let r = rng.vec(n_out);
                let mut gx = vec![f32::NAN; x.len()];
                avg_pool2d_backward(&p, cip, &r, &mut gx);
                let loss = |xs: &[f32]| {
                    let mut y = vec![0.0; n_out];
                    avg_pool2d_forward(&p, cip, xs, &mut y);
                    dot(&y, &r)
                };
                fd_check(&x, &gx, 1e-2, loss, &format!("avg {cip} {p:?}"));
            }
        }
    }

    #[test]
    fn avg_pool_backward_large_is_adjoint_of_forward() {
        // <forward(x), r> == <x, backward(r)> exactly for a linear map.
        let mut rng = Lcg(7);
        for p in cases() {
            for cip in [true, false] {
                let x = rng.vec(p.n * p.c * p.h * p.w);
                let n_out = p.n * p.c * p.out_h() * p.out_w();
                let r = rng.vec(n_out);
                let mut y = vec![0.0; n_out];
                avg_pool2d_forward(&p, cip, &x, &mut y);
                let mut gx = vec![f32::NAN; x.len()];
                avg_pool2d_backward(&p, cip, &r, &mut gx);
                let (lhs, rhs) = (dot(&y, &r), dot(&x, &gx));
                assert!(
                    (lhs - rhs).abs() <= 1e-4 * (1.0 + lhs.abs()),
                    "{p:?}: {lhs} vs {rhs}"
                );
            }
        }
    }

    /// `(n, c, h, w)` of a test input.
    type Dims = (usize, usize, usize, usize);

    const ADAPTIVE: [(Dims, (usize, usize)); 7] = [
        ((2, 3, 7, 7), (4, 4)),
        ((2, 3, 5, 5), (3, 3)),
        ((1, 2, 7, 5), (4, 3)),
        ((2, 2, 32, 32), (4, 4)),
        ((2, 3, 5, 7), (1, 1)),
        ((1, 2, 3, 3), (5, 4)),
        ((4, 8, 32, 32), (4, 4)),
    ];

    #[test]
    fn adaptive_forward_matches_naive() {
        let mut rng = Lcg(8);
        for (dims @ (n, c, h, w), (oh, ow)) in ADAPTIVE {
            let x = rng.vec(n * c * h * w);
            let mut y = vec![f32::NAN; n * c * oh * ow];
            adaptive_avg_pool2d_forward(n, c, h, w, oh, ow, &x, &mut y);
            let want = naive_adaptive(dims, (oh, ow), &x);
            assert_close(&y, &want, 1e-5, &format!("adaptive {dims:?} -> {oh}x{ow}"));
        }
    }

    #[test]
    fn adaptive_bins_overlap_like_pytorch() {
        assert_eq!(
            (0..4).map(|i| adaptive_bin(i, 7, 4)).collect::<Vec<_>>(),
            [(0, 2), (1, 4), (3, 6), (5, 7)]
        );
        assert_eq!(
            (0..3).map(|i| adaptive_bin(i, 5, 3)).collect::<Vec<_>>(),
            [(0, 2), (1, 4), (3, 5)]
        );
    }

    #[test]
    fn adaptive_backward_matches_finite_differences() {
        let mut rng = Lcg(9);
        for (dims @ (n, c, h, w), (oh, ow)) in ADAPTIVE {
            let x = rng.vec(n * c * h * w);
            let r = rng.vec(n * c * oh * ow);
            let mut gx = vec![f32::NAN; x.len()];
            adaptive_avg_pool2d_backward(n, c, h, w, oh, ow, &r, &mut gx);
            if x.len() > 2048 {
                // Too many coordinates for finite differences: check the adjoint identity.
                let mut y = vec![0.0; r.len()];
                adaptive_avg_pool2d_forward(n, c, h, w, oh, ow, &x, &mut y);
                let (lhs, rhs) = (dot(&y, &r), dot(&x, &gx));
                assert!(
                    (lhs - rhs).abs() <= 1e-4 * (1.0 + lhs.abs()),
                    "{dims:?}: {lhs} vs {rhs}"
                );
                continue;
            }
            let loss = |xs: &[f32]| {
                let mut y = vec![0.0; r.len()];
                adaptive_avg_pool2d_forward(n, c, h, w, oh, ow, xs, &mut y);
                dot(&y, &r)
            };
            fd_check(
                &x,
                &gx,
                1e-2,
                loss,
                &format!("adaptive {dims:?} -> {oh}x{ow}"),
            );
        }
    }
}
