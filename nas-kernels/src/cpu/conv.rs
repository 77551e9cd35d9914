//! 2-D convolution (stride, padding, dilation, groups) forward, input gradient and weight
//! gradient, per image: for stride 1 and enough input channels, one GEMM per kernel tap on
//! shifted windows of the padded image ("wide" planes, no im2col); otherwise im2col +
//! GEMM; a direct kernel for depthwise; a plain GEMM for 1x1.

use super::avx2_or_baseline;
use super::gemm::{sgemm, sgemm_strided, Views};
use rayon::prelude::*;
use std::cell::RefCell;

/// Geometry of a convolution over an NCHW input with an `[cout, cin/groups, kh, kw]` weight.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Conv2d {
    pub n: usize,
    pub cin: usize,
    pub h: usize,
    pub w: usize,
    pub cout: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub ph: usize,
    pub pw: usize,
    pub dh: usize,
    pub dw: usize,
    pub groups: usize,
}

impl Conv2d {
    /// An ungrouped stride-1 convolution of `k`x`k` kernels (odd `k`), padded to keep the
    /// plane's size.
    pub fn same(n: usize, cin: usize, h: usize, w: usize, cout: usize, k: usize) -> Conv2d {
        Conv2d {
            n,
            cin,
            h,
            w,
            cout,
            kh: k,
            kw: k,
            sh: 1,
            sw: 1,
            ph: k / 2,
            pw: k / 2,
            dh: 1,
            dw: 1,
            groups: 1,
        }
    }

    /// Checks that the geometry describes a real convolution; the message names the field.
    pub fn validate(&self) -> crate::Res<()> {
        if self.groups == 0 || self.cin % self.groups != 0 || self.cout % self.groups != 0 {
            return Err(crate::KernelError::Invalid(format!(
                "groups={} must divide in_channels={} and out_channels={}",
                self.groups, self.cin, self.cout
            )));
        }
        if self.sh == 0 || self.sw == 0 || self.dh == 0 || self.dw == 0 {
            return Err(crate::KernelError::Invalid(
                "stride and dilation must be at least 1".into(),
            ));
        }
        if self.kh == 0 || self.kw == 0 {
            return Err(crate::KernelError::Invalid(
                "kernel size must be at least 1".into(),
            ));
        }
        let eh = self.dh * (self.kh - 1) + 1;
        let ew = self.dw * (self.kw - 1) + 1;
        if self.h + 2 * self.ph < eh || self.w + 2 * self.pw < ew {
            return Err(crate::KernelError::Invalid(format!(
                "kernel {}x{} (dilation {}x{}) is larger than the padded input {}x{}",
                self.kh,
                self.kw,
                self.dh,
                self.dw,
                self.h + 2 * self.ph,
                self.w + 2 * self.pw
            )));
        }
        Ok(())
    }
    pub fn out_h(&self) -> usize {
        (self.h + 2 * self.ph - self.dh * (self.kh - 1) - 1) / self.sh + 1
    }
    pub fn out_w(&self) -> usize {
        (self.w + 2 * self.pw - self.dw * (self.kw - 1) - 1) / self.sw + 1
    }
    pub fn cin_g(&self) -> usize {
        self.cin / self.groups
    }
    pub fn cout_g(&self) -> usize {
        self.cout / self.groups
    }
    /// Rows of the im2col matrix of one group.
    pub fn col_rows(&self) -> usize {
        self.cin_g() * self.kh * self.kw
    }
    pub fn weight_len(&self) -> usize {
        self.cout * self.col_rows()
    }
    pub fn out_len(&self) -> usize {
        self.n * self.cout * self.out_h() * self.out_w()
    }
    /// Multiply-adds of the forward pass.
    pub fn macs(&self) -> usize {
        self.out_len() * self.col_rows()
    }
    fn pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.sh == 1 && self.sw == 1 && self.ph == 0 && self.pw == 0
    }
    fn depthwise(&self) -> bool {
        self.groups == self.cin && self.groups == self.cout
    }
}

/// Batch chunks of the weight gradient (see `conv2d_backward_weight`).
const WEIGHT_GRAD_CHUNKS: usize = 8;

thread_local! {
    static PAD_A: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static PAD_B: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static COL: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static PARTIAL: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's reusable buffer of at least `len` floats (contents unspecified).
fn with_buf<R>(
    key: &'static std::thread::LocalKey<RefCell<Vec<f32>>>,
    len: usize,
    f: impl FnOnce(&mut [f32]) -> R,
) -> R {
    key.with(|cell| {
        let mut v = cell.borrow_mut();
        if v.len() < len {
            v.resize(len, 0.0);
        }
        f(&mut v[..len])
    })
}

/// For output row `o` of kernel tap `k`: the input coordinate, or None in the padding.
#[inline]
fn src(o: usize, k: usize, stride: usize, pad: usize, dil: usize, size: usize) -> Option<usize> {
    let i = (o * stride + k * dil) as isize - pad as isize;
    (i >= 0 && (i as usize) < size).then_some(i as usize)
}

/// Range of output columns whose input column `ox*sw + off` lies in `[0, w)`. It is
/// empty (`lo == hi`) for a tap that sees only padding (padding wider than the input),
/// and then `lo + off` need not be a column of the input: callers index the input only
/// for a non-empty range.
#[inline]
fn valid_cols(ow: usize, sw: usize, off: isize, w: usize) -> (usize, usize) {
    // ox*sw + off >= 0  and  ox*sw + off < w
    let lo = if off >= 0 {
        0
    } else {
        ((-off) as usize).div_ceil(sw)
    };
    let hi = if (w as isize) <= off {
        0
    } else {
        ((w as isize - off) as usize).div_ceil(sw).min(ow)
    };
    (lo.min(hi), hi)
}

/// Unfolds one group of one image (`cin_g` planes) into `[cin_g*kh*kw, oh*ow]`.
fn im2col(p: &Conv2d, x: &[f32], col: &mut [f32]) {
    let (oh, ow) = (p.out_h(), p.out_w());
    let ohw = oh * ow;
    for c in 0..p.cin_g() {
        let plane = &x[c * p.h * p.w..(c + 1) * p.h * p.w];
        for ki in 0..p.kh {
            for kj in 0..p.kw {
                let row = (c * p.kh + ki) * p.kw + kj;
                let dst = &mut col[row * ohw..(row + 1) * ohw];
                let off = (kj * p.dw) as isize - p.pw as isize;
                let (lo, hi) = valid_cols(ow, p.sw, off, p.w);
                for oy in 0..oh {
                    let d = &mut dst[oy * ow..(oy + 1) * ow];
                    match src(oy, ki, p.sh, p.ph, p.dh, p.h) {
                        None => d.fill(0.0),
                        Some(iy) => {
                            let srow = &plane[iy * p.w..(iy + 1) * p.w];
                            d[..lo].fill(0.0);
                            d[hi..].fill(0.0);
                            if p.sw == 1 && lo < hi {
                                let s0 = (lo as isize + off) as usize;
                                d[lo..hi].copy_from_slice(&srow[s0..s0 + (hi - lo)]);
                            } else {
                                for (ox, v) in d.iter_mut().enumerate().take(hi).skip(lo) {
                                    *v = srow[(ox as isize * p.sw as isize + off) as usize];
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Folds `[cin_g*kh*kw, oh*ow]` back onto one group of one image, adding into `x`.
fn col2im(p: &Conv2d, col: &[f32], x: &mut [f32]) {
    let (oh, ow) = (p.out_h(), p.out_w());
    let ohw = oh * ow;
    for c in 0..p.cin_g() {
        let plane = &mut x[c * p.h * p.w..(c + 1) * p.h * p.w];
        for ki in 0..p.kh {
            for kj in 0..p.kw {
                let row = (c * p.kh + ki) * p.kw + kj;
                let s = &col[row * ohw..(row + 1) * ohw];
                let off = (kj * p.dw) as isize - p.pw as isize;
                let (lo, hi) = valid_cols(ow, p.sw, off, p.w);
                for oy in 0..oh {
                    if let Some(iy) = src(oy, ki, p.sh, p.ph, p.dh, p.h) {
                        let srow = &s[oy * ow..(oy + 1) * ow];
                        let drow = &mut plane[iy * p.w..(iy + 1) * p.w];
                        if p.sw == 1 && lo < hi {
                            let d0 = (lo as isize + off) as usize;
                            for (d, v) in drow[d0..d0 + (hi - lo)].iter_mut().zip(&srow[lo..hi]) {
                                *d += v;
                            }
                        } else {
                            for (ox, v) in srow.iter().enumerate().take(hi).skip(lo) {
                                drow[(ox as isize * p.sw as isize + off) as usize] += v;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `y = conv(x, w) + bias`. `y` has `p.out_len()` elements and is overwritten.
pub fn conv2d_forward(p: &Conv2d, x: &[f32], w: &[f32], bias: Option<&[f32]>, y: &mut [f32]) {
    check(p, x, w, y);
    let ohw = p.out_h() * p.out_w();
    let (cin_g, cout_g, k) = (p.cin_g(), p.cout_g(), p.col_rows());
    let img_in = p.cin * p.h * p.w;
    let implicit = Implicit::of(p).forward;
    y.par_chunks_mut(p.cout * ohw)
        .enumerate()
        .for_each(|(i, yi)| {
            let xi = &x[i * img_in..(i + 1) * img_in];
            if p.depthwise() && p.cin > 1 {
                depthwise_forward(p, xi, w, yi);
            } else if implicit {
                implicit_forward(p, xi, w, yi);
            } else {
                for g in 0..p.groups {
                    let xg = &xi[g * cin_g * p.h * p.w..(g + 1) * cin_g * p.h * p.w];
                    let wg = &w[g * cout_g * k..(g + 1) * cout_g * k];
                    let yg = &mut yi[g * cout_g * ohw..(g + 1) * cout_g * ohw];
                    if p.pointwise() {
                        sgemm(cout_g, ohw, k, wg, false, xg, false, yg, false, false);
                    } else {
                        with_buf(&COL, k * ohw, |col| {
                            im2col(p, xg, col);
                            sgemm(cout_g, ohw, k, wg, false, col, false, yg, false, false);
                        });
                    }
                }
            }
            if let Some(b) = bias {
                for (c, plane) in yi.chunks_mut(ohw).enumerate() {
                    let bc = b[c];
                    plane.iter_mut().for_each(|v| *v += bc);
                }
            }
        });
}

/// `gx = d(loss)/dx` given `gy`; `gx` is overwritten.
pub fn conv2d_backward_input(p: &Conv2d, gy: &[f32], w: &[f32], gx: &mut [f32]) {
    check(p, gx, w, gy);
    let ohw = p.out_h() * p.out_w();
    let (cin_g, cout_g, k) = (p.cin_g(), p.cout_g(), p.col_rows());
    let img_in = p.cin * p.h * p.w;
    let implicit = Implicit::of(p).input;
    gx.par_chunks_mut(img_in).enumerate().for_each(|(i, gxi)| {
        let gyi = &gy[i * p.cout * ohw..(i + 1) * p.cout * ohw];
        if p.depthwise() && p.cin > 1 {
            gxi.fill(0.0);
            depthwise_backward_input(p, gyi, w, gxi);
            return;
        }
        if implicit {
            implicit_backward_input(p, gyi, w, gxi);
            return;
        }
        for g in 0..p.groups {
            let gxg = &mut gxi[g * cin_g * p.h * p.w..(g + 1) * cin_g * p.h * p.w];
            let wg = &w[g * cout_g * k..(g + 1) * cout_g * k];
            let gyg = &gyi[g * cout_g * ohw..(g + 1) * cout_g * ohw];
            if p.pointwise() {
                sgemm(cin_g, ohw, cout_g, wg, true, gyg, false, gxg, false, false);
            } else {
                gxg.fill(0.0);
                with_buf(&COL, k * ohw, |col| {
                    sgemm(k, ohw, cout_g, wg, true, gyg, false, col, false, false);
                    col2im(p, col, gxg);
                });
            }
        }
    });
}

/// `gw = d(loss)/dw` and, if given, `gb = d(loss)/dbias`; both are overwritten.
pub fn conv2d_backward_weight(
    p: &Conv2d,
    x: &[f32],
    gy: &[f32],
    gw: &mut [f32],
    gb: Option<&mut [f32]>,
) {
    check(p, x, gw, gy);
    let ohw = p.out_h() * p.out_w();
    let (cin_g, cout_g, k) = (p.cin_g(), p.cout_g(), p.col_rows());
    let img_in = p.cin * p.h * p.w;
    let wlen = p.weight_len();
    let implicit = Implicit::of(p).weight;
    // A fixed number of batch chunks, whatever the thread count, each summed into its own
    // slot and the slots added in order: the result is the same bits on any machine.
    let tasks = WEIGHT_GRAD_CHUNKS.min(p.n).max(1);
    let per = p.n.div_ceil(tasks);
    with_buf(&PARTIAL, tasks * wlen, |slots| {
        slots
            .par_chunks_mut(wlen)
            .enumerate()
            .for_each(|(t, part)| {
                part.fill(0.0);
                for i in (t * per)..((t + 1) * per).min(p.n) {
                    let xi = &x[i * img_in..(i + 1) * img_in];
                    let gyi = &gy[i * p.cout * ohw..(i + 1) * p.cout * ohw];
                    if p.depthwise() && p.cin > 1 {
                        depthwise_backward_weight(p, xi, gyi, part);
                        continue;
                    }
                    if implicit {
                        implicit_backward_weight(p, xi, gyi, part);
                        continue;
                    }
                    for g in 0..p.groups {
                        let xg = &xi[g * cin_g * p.h * p.w..(g + 1) * cin_g * p.h * p.w];
                        let gyg = &gyi[g * cout_g * ohw..(g + 1) * cout_g * ohw];
                        let pg = &mut part[g * cout_g * k..(g + 1) * cout_g * k];
                        if p.pointwise() {
                            sgemm(cout_g, k, ohw, gyg, false, xg, true, pg, true, false);
                        } else {
                            with_buf(&COL, k * ohw, |col| {
                                im2col(p, xg, col);
                                sgemm(cout_g, k, ohw, gyg, false, col, true, pg, true, false);
                            });
                        }
                    }
                }
            });
        gw.copy_from_slice(&slots[..wlen]);
        for part in slots[wlen..].chunks(wlen) {
            gw.iter_mut().zip(part).for_each(|(a, b)| *a += b);
        }
    });
    if let Some(gb) = gb {
        gb.par_iter_mut().enumerate().for_each(|(c, v)| {
            let mut s = 0.0f32;
            for i in 0..p.n {
                let o = (i * p.cout + c) * ohw;
                s += super::elementwise::sum_lanes(&gy[o..o + ohw]);
            }
            *v = s;
        });
    }
}

fn check(p: &Conv2d, x: &[f32], w: &[f32], y: &[f32]) {
    if let Err(e) = p.validate() {
        panic!("conv2d: {e}");
    }
    assert_eq!(x.len(), p.n * p.cin * p.h * p.w, "conv2d: input length");
    assert_eq!(w.len(), p.weight_len(), "conv2d: weight length");
    assert_eq!(y.len(), p.out_len(), "conv2d: output length");
}

/// Stride-1 depthwise convolution on "wide" planes. With the input plane zero-padded to
/// `hp x wp`, output pixel `(oy, ox)` lives at `oy * wp + ox` of a wide output plane
/// (columns `ow..wp` are scratch), and kernel tap `(ki, kj)` reads the padded plane at
/// that index plus `ki * dh * wp + kj * dw`. So every tap is one long contiguous
/// multiply-add over the whole plane instead of many short rows.
struct Wide {
    wp: usize,
    /// Padded plane length, with slack so the last tap's read stays in bounds.
    padded: usize,
    /// Wide output plane length (`oh * wp`).
    len: usize,
}

impl Wide {
    fn new(p: &Conv2d) -> Wide {
        let wp = p.w + 2 * p.pw;
        let hp = p.h + 2 * p.ph;
        Wide {
            wp,
            padded: hp * wp + (p.kw - 1) * p.dw,
            len: p.out_h() * wp,
        }
    }
    fn tap(&self, p: &Conv2d, ki: usize, kj: usize) -> usize {
        ki * p.dh * self.wp + kj * p.dw
    }
    /// Copies an `h x w` plane into the zeroed padded buffer.
    fn pad(&self, p: &Conv2d, plane: &[f32], out: &mut [f32]) {
        out.fill(0.0);
        for (iy, row) in plane.chunks(p.w).enumerate() {
            let o = (iy + p.ph) * self.wp + p.pw;
            out[o..o + p.w].copy_from_slice(row);
        }
    }
    /// Spreads an `oh x ow` plane over a wide plane with zero scratch columns.
    fn widen(&self, p: &Conv2d, plane: &[f32], out: &mut [f32]) {
        let ow = p.out_w();
        for (oy, row) in plane.chunks(ow).enumerate() {
            out[oy * self.wp..oy * self.wp + ow].copy_from_slice(row);
            out[oy * self.wp + ow..(oy + 1) * self.wp].fill(0.0);
        }
    }
    /// `pad` for consecutive `h x w` planes, into consecutive padded planes of `out`.
    fn pad_planes(&self, p: &Conv2d, planes: &[f32], out: &mut [f32]) {
        for (src, dst) in planes.chunks(p.h * p.w).zip(out.chunks_mut(self.padded)) {
            self.pad(p, src, dst);
        }
    }
    /// `widen` for consecutive `oh x ow` planes, into consecutive wide planes of `out`.
    fn widen_planes(&self, p: &Conv2d, planes: &[f32], out: &mut [f32]) {
        let ohw = p.out_h() * p.out_w();
        for (src, dst) in planes.chunks(ohw).zip(out.chunks_mut(self.len)) {
            self.widen(p, src, dst);
        }
    }
    /// The `h` rows of the input inside a padded plane (the inverse of `pad`).
    fn interior<'a>(&self, p: &Conv2d, padded: &'a [f32]) -> impl Iterator<Item = &'a [f32]> {
        let (wp, ph, pw, w) = (self.wp, p.ph, p.pw, p.w);
        (0..p.h).map(move |iy| &padded[(iy + ph) * wp + pw..][..w])
    }
}

fn wide_ok(p: &Conv2d) -> bool {
    p.sh == 1 && p.sw == 1
}

/// Which products of a stride-1 convolution run as one GEMM per kernel tap (the
/// `implicit_*` functions) instead of im2col + one GEMM. Each tap's product has as its
/// inner dimension the input channels per group (forward), the output channels per group
/// (input gradient) or the pixels (weight gradient); when that is small the products are
/// thin updates of the whole output, which im2col's single product beats. The
/// thresholds are where the per-tap form measured faster (`examples/conv_parts.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Implicit {
    pub forward: bool,
    pub input: bool,
    pub weight: bool,
}

impl Implicit {
    pub fn of(p: &Conv2d) -> Implicit {
        let ok = wide_ok(p) && !p.pointwise() && !p.depthwise();
        Implicit {
            // Wide outputs have scratch columns, and im2col's copy is shared by every
            // output channel: with many of them its single product wins.
            forward: ok && p.cin_g() >= 16 && p.cout_g() <= 32,
            input: ok && p.cout_g() >= 8,
            weight: ok && p.cin_g() >= 4,
        }
    }
}

/// Stride-1 convolution of one image without im2col. On wide planes (see `Wide`) the
/// rows of im2col's matrix for kernel tap `t` are the padded input planes shifted by
/// `tap(t)`, so `y = sum over taps of W[:, :, t] * shift(x, t)`: one GEMM per tap,
/// reading the padded image in place, into a wide output that is then compacted.
fn implicit_forward(p: &Conv2d, xi: &[f32], w: &[f32], yi: &mut [f32]) {
    let wd = Wide::new(p);
    let (cin_g, cout_g, kk) = (p.cin_g(), p.cout_g(), p.kh * p.kw);
    let (plane, ohw, ow) = (p.h * p.w, p.out_h() * p.out_w(), p.out_w());
    with_buf(&PAD_A, cin_g * wd.padded, |xpad| {
        with_buf(&COL, cout_g * wd.len, |ywide| {
            for g in 0..p.groups {
                wd.pad_planes(p, &xi[g * cin_g * plane..(g + 1) * cin_g * plane], xpad);
                let wg = &w[g * cout_g * cin_g * kk..(g + 1) * cout_g * cin_g * kk];
                let v = Views {
                    a: (cin_g * kk, kk),
                    b: (wd.padded, 1),
                    c: (wd.len, 1),
                };
                for t in 0..kk {
                    let off = wd.tap(p, t / p.kw, t % p.kw);
                    sgemm_strided(
                        cout_g,
                        wd.len,
                        cin_g,
                        &wg[t..],
                        &xpad[off..],
                        ywide,
                        v,
                        t > 0,
                    );
                }
                let yg = &mut yi[g * cout_g * ohw..(g + 1) * cout_g * ohw];
                for (out, wide) in yg.chunks_mut(ow).zip(ywide.chunks(wd.wp)) {
                    out.copy_from_slice(&wide[..ow]);
                }
            }
        })
    })
}

/// The input gradient of `implicit_forward`: each tap's `W[:, :, t]^T * gy` is added
/// into the padded input gradient at the tap's shift (the wide output gradient has zero
/// scratch columns, so they add nothing), and the padding is then dropped.
fn implicit_backward_input(p: &Conv2d, gyi: &[f32], w: &[f32], gxi: &mut [f32]) {
    let wd = Wide::new(p);
    let (cin_g, cout_g, kk) = (p.cin_g(), p.cout_g(), p.kh * p.kw);
    let (plane, ohw) = (p.h * p.w, p.out_h() * p.out_w());
    with_buf(&PAD_A, cin_g * wd.padded, |gxpad| {
        with_buf(&COL, cout_g * wd.len, |gywide| {
            for g in 0..p.groups {
                wd.widen_planes(p, &gyi[g * cout_g * ohw..(g + 1) * cout_g * ohw], gywide);
                gxpad.fill(0.0);
                let wg = &w[g * cout_g * cin_g * kk..(g + 1) * cout_g * cin_g * kk];
                let v = Views {
                    a: (kk, cin_g * kk),
                    b: (wd.len, 1),
                    c: (wd.padded, 1),
                };
                for t in 0..kk {
                    let off = wd.tap(p, t / p.kw, t % p.kw);
                    sgemm_strided(
                        cin_g,
                        wd.len,
                        cout_g,
                        &wg[t..],
                        gywide,
                        &mut gxpad[off..],
                        v,
                        true,
                    );
                }
                let gxg = &mut gxi[g * cin_g * plane..(g + 1) * cin_g * plane];
                for (dst, src) in gxg.chunks_mut(plane).zip(gxpad.chunks(wd.padded)) {
                    for (row, inside) in dst.chunks_mut(p.w).zip(wd.interior(p, src)) {
                        row.copy_from_slice(inside);
                    }
                }
            }
        })
    })
}

/// The weight gradient of `implicit_forward` for one image, added into `gw`: for each
/// tap, `gy * shift(x, t)^T` over the wide pixels (zero scratch columns add nothing).
fn implicit_backward_weight(p: &Conv2d, xi: &[f32], gyi: &[f32], gw: &mut [f32]) {
    let wd = Wide::new(p);
    let (cin_g, cout_g, kk) = (p.cin_g(), p.cout_g(), p.kh * p.kw);
    let (plane, ohw) = (p.h * p.w, p.out_h() * p.out_w());
    with_buf(&PAD_A, cin_g * wd.padded, |xpad| {
        with_buf(&COL, cout_g * wd.len, |gywide| {
            for g in 0..p.groups {
                wd.pad_planes(p, &xi[g * cin_g * plane..(g + 1) * cin_g * plane], xpad);
                wd.widen_planes(p, &gyi[g * cout_g * ohw..(g + 1) * cout_g * ohw], gywide);
                let gwg = &mut gw[g * cout_g * cin_g * kk..(g + 1) * cout_g * cin_g * kk];
                let v = Views {
                    a: (wd.len, 1),
                    b: (1, wd.padded),
                    c: (cin_g * kk, kk),
                };
                for t in 0..kk {
                    let off = wd.tap(p, t / p.kw, t % p.kw);
                    sgemm_strided(
                        cout_g,
                        cin_g,
                        wd.len,
                        gywide,
                        &xpad[off..],
                        &mut gwg[t..],
                        v,
                        true,
                    );
                }
            }
        })
    })
}

avx2_or_baseline! {
/// `out[oy * ow + ox] (+)= sum over taps (off, w) of w * src[oy * stride + ox + off]`
/// for an `oh x ow` plane: a correlation of a padded plane with a kernel given as
/// offsets. Each block of 16 (then 8) output columns sums every tap in registers, in the
/// order of `taps`, and is stored once, so the result has the bits of adding the taps
/// one plane at a time while memory sees a load per tap and a store per block.
fn correlate(
    src: &[f32],
    stride: usize,
    taps: &[(usize, f32)],
    out: &mut [f32],
    shape: (usize, usize),
    add: bool,
) {
    let (oh, ow) = shape;
    #[inline(always)]
    fn block<const L: usize>(
        src: &[f32],
        at: usize,
        taps: &[(usize, f32)],
        out: &mut [f32],
        add: bool,
    ) {
        let mut acc = [0f32; L];
        for &(off, wv) in taps {
            let s: &[f32; L] = src[at + off..at + off + L].try_into().unwrap();
            for l in 0..L {
                acc[l] += wv * s[l];
            }
        }
        let o: &mut [f32; L] = out.try_into().unwrap();
        if add {
            for l in 0..L {
                o[l] += acc[l];
            }
        } else {
            *o = acc;
        }
    }
    for (oy, row) in out.chunks_mut(ow).take(oh).enumerate() {
        let base = oy * stride;
        let mut ox = 0;
        while ox + 16 <= ow {
            block::<16>(src, base + ox, taps, &mut row[ox..ox + 16], add);
            ox += 16;
        }
        if ox + 8 <= ow {
            block::<8>(src, base + ox, taps, &mut row[ox..ox + 8], add);
            ox += 8;
        }
        for (x, o) in row.iter_mut().enumerate().skip(ox) {
            let mut a = 0.0f32;
            for &(off, wv) in taps {
                a += wv * src[base + x + off];
            }
            if add {
                *o += a;
            } else {
                *o = a;
            }
        }
    }
}
}

/// A depthwise convolution's padded input plane split by stride phase. With the plane
/// zero-padded to `hp x wp` and strides `(sh, sw)`, padded pixel `(py, px)` goes to phase
/// plane `(py % sh, px % sw)` at `(py / sh, px / sw)`; phase planes are `wq = ceil(wp /
/// sw)` wide and lie back to back. Output `(oy, ox)` under tap `(a, b) = (ki * dh, kj *
/// dw)` reads padded pixel `(oy * sh + a, ox * sw + b)`, which is phase plane `(a % sh,
/// b % sw)` at `(oy + a / sh, ox + b / sw)`: for every tap, a whole output row reads one
/// contiguous row. So each stride runs as a stride-1 correlation (one phase for stride
/// 1), vectorised over output columns instead of gathering every `sw`-th input.
struct Phases {
    wq: usize,
    /// One phase plane's length: `hq * wq` and the slack the last tap's read runs past
    /// the last row by (a wide plane's scratch columns).
    plen: usize,
}

impl Phases {
    fn new(p: &Conv2d) -> Phases {
        let (hp, wp) = (p.h + 2 * p.ph, p.w + 2 * p.pw);
        let wq = wp.div_ceil(p.sw);
        Phases {
            wq,
            plen: hp.div_ceil(p.sh) * wq + (p.kw - 1) * p.dw / p.sw,
        }
    }
    /// Floats of all phase planes.
    fn len(&self, p: &Conv2d) -> usize {
        p.sh * p.sw * self.plen
    }
    /// Where tap `(ki, kj)` of output `(0, 0)` reads.
    fn tap(&self, p: &Conv2d, ki: usize, kj: usize) -> usize {
        let (a, b) = (ki * p.dh, kj * p.dw);
        ((a % p.sh) * p.sw + b % p.sw) * self.plen + (a / p.sh) * self.wq + b / p.sw
    }
    /// The runs of input row `iy` in the phase planes: for each column phase, the first
    /// input column in it, and where that lands (its run takes every `sw`-th column on).
    #[inline]
    fn runs(&self, p: &Conv2d, iy: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
        let py = iy + p.ph;
        let (sw, pw) = (p.sw, p.pw);
        let row = ((py % p.sh) * sw) * self.plen + (py / p.sh) * self.wq;
        (0..sw.min(p.w)).map(move |ix0| {
            let px = ix0 + pw;
            (ix0, row + (px % sw) * self.plen + px / sw)
        })
    }
    /// Writes an `h x w` plane into zeroed phase planes.
    fn split(&self, p: &Conv2d, plane: &[f32], out: &mut [f32]) {
        out.fill(0.0);
        for (iy, row) in plane.chunks(p.w).enumerate() {
            for (ix0, o) in self.runs(p, iy) {
                for (d, &v) in out[o..].iter_mut().zip(row[ix0..].iter().step_by(p.sw)) {
                    *d = v;
                }
            }
        }
    }
    /// Adds the input pixels of phase planes into an `h x w` plane (`split`'s adjoint).
    fn merge_add(&self, p: &Conv2d, phases: &[f32], plane: &mut [f32]) {
        for (iy, row) in plane.chunks_mut(p.w).enumerate() {
            for (ix0, o) in self.runs(p, iy) {
                for (a, &v) in row[ix0..].iter_mut().step_by(p.sw).zip(&phases[o..]) {
                    *a += v;
                }
            }
        }
    }
    /// An `oh x ow` plane spread `wq` wide, its columns past `ow` zero (so a tap's
    /// product of the whole plane adds nothing there).
    fn widen(&self, p: &Conv2d, plane: &[f32], out: &mut [f32]) {
        let ow = p.out_w();
        for (row, dst) in plane.chunks(ow).zip(out.chunks_mut(self.wq)) {
            dst[..ow].copy_from_slice(row);
            dst[ow..].fill(0.0);
        }
    }
}

fn depthwise_forward(p: &Conv2d, x: &[f32], w: &[f32], y: &mut [f32]) {
    let ph = Phases::new(p);
    let (oh, ow) = (p.out_h(), p.out_w());
    let mut taps = Vec::with_capacity(p.kh * p.kw);
    with_buf(&PAD_A, ph.len(p), |pad| {
        for c in 0..p.cin {
            ph.split(p, &x[c * p.h * p.w..(c + 1) * p.h * p.w], pad);
            taps.clear();
            for ki in 0..p.kh {
                for kj in 0..p.kw {
                    taps.push((ph.tap(p, ki, kj), w[(c * p.kh + ki) * p.kw + kj]));
                }
            }
            let yc = &mut y[c * oh * ow..(c + 1) * oh * ow];
            correlate(pad, ph.wq, &taps, yc, (oh, ow), false);
        }
    });
}

/// The stride-1 depthwise input gradient as a correlation: with the output gradient
/// placed at `((kh-1)*dh - ph, (kw-1)*dw - pw)` in a zero plane `w + (kw-1)*dw` wide,
/// `gx[iy, ix]` is the sum over taps of `w[ki, kj]` times that plane at
/// `(iy + (kh-1-ki)*dh, ix + (kw-1-kj)*dw)`. It needs the padding no wider than the
/// kernel's reach (`ph <= (kh-1)*dh`, likewise across), as every "same" padding is.
fn flipped_ok(p: &Conv2d) -> bool {
    p.sh == 1 && p.sw == 1 && p.ph <= (p.kh - 1) * p.dh && p.pw <= (p.kw - 1) * p.dw
}

fn depthwise_backward_input_flipped(p: &Conv2d, gy: &[f32], w: &[f32], gx: &mut [f32]) {
    let (oh, ow) = (p.out_h(), p.out_w());
    let (rh, rw) = ((p.kh - 1) * p.dh, (p.kw - 1) * p.dw);
    let (th, tw) = (rh - p.ph, rw - p.pw);
    let w2 = p.w + rw;
    // Rows up to h + rh, with slack for the last tap's read past the last row.
    let len = (p.h + rh) * w2 + rw;
    let mut taps = Vec::with_capacity(p.kh * p.kw);
    with_buf(&PAD_A, len, |gpad| {
        for c in 0..p.cin {
            gpad.fill(0.0);
            for (oy, row) in gy[c * oh * ow..(c + 1) * oh * ow].chunks(ow).enumerate() {
                let o = (oy + th) * w2 + tw;
                gpad[o..o + ow].copy_from_slice(row);
            }
            taps.clear();
            for ki in 0..p.kh {
                for kj in 0..p.kw {
                    let off = (p.kh - 1 - ki) * p.dh * w2 + (p.kw - 1 - kj) * p.dw;
                    taps.push((off, w[(c * p.kh + ki) * p.kw + kj]));
                }
            }
            let gc = &mut gx[c * p.h * p.w..(c + 1) * p.h * p.w];
            correlate(gpad, w2, &taps, gc, (p.h, p.w), true);
        }
    });
}

avx2_or_baseline! {
/// `dst[i] += a * src[i]` over the common length.
fn axpy(dst: &mut [f32], a: f32, src: &[f32]) {
    dst.iter_mut().zip(src).for_each(|(d, v)| *d += a * v);
}
}

avx2_or_baseline! {
/// `out[t] += dot(src[offs[t]..][..g.len()], g)` for each tap `t`, each dot summed as
/// `dot_lanes` sums it (16 lanes, folded, then the tail), so the bits are its. Up to 8
/// taps go through the plane together: each block of `g` is loaded once for all of
/// them, and their 8 independent sums keep the adder busy where one dot's 16 lanes
/// wait on their own latency.
fn tap_dots(src: &[f32], offs: &[usize], g: &[f32], out: &mut [f32]) {
    const TAPS: usize = 8;
    let n = g.len();
    let body = n - n % 16;
    for (offs, out) in offs.chunks(TAPS).zip(out.chunks_mut(TAPS)) {
        let mut acc = [[0f32; 16]; TAPS];
        for at in (0..body).step_by(16) {
            let gb: &[f32; 16] = g[at..at + 16].try_into().unwrap();
            for (a, &off) in acc.iter_mut().zip(offs) {
                let s: &[f32; 16] = src[off + at..off + at + 16].try_into().unwrap();
                for l in 0..16 {
                    a[l] += s[l] * gb[l];
                }
            }
        }
        for ((o, a), &off) in out.iter_mut().zip(acc).zip(offs) {
            let mut t = super::elementwise::fold16(a);
            for (x, y) in src[off + body..off + n].iter().zip(&g[body..]) {
                t += x * y;
            }
            *o += t;
        }
    }
}
}

/// Depthwise input gradient for one image, added into `gx`: each tap adds the whole
/// output gradient, spread `wq` wide, into the phase planes where its inputs live; the
/// phase planes then add into `gx`.
fn depthwise_backward_input(p: &Conv2d, gy: &[f32], w: &[f32], gx: &mut [f32]) {
    if flipped_ok(p) {
        return depthwise_backward_input_flipped(p, gy, w, gx);
    }
    let ph = Phases::new(p);
    let (oh, ow) = (p.out_h(), p.out_w());
    with_buf(&PAD_A, ph.len(p), |gpad| {
        with_buf(&PAD_B, oh * ph.wq, |g| {
            for c in 0..p.cin {
                ph.widen(p, &gy[c * oh * ow..(c + 1) * oh * ow], g);
                gpad.fill(0.0);
                for ki in 0..p.kh {
                    for kj in 0..p.kw {
                        let wv = w[(c * p.kh + ki) * p.kw + kj];
                        axpy(&mut gpad[ph.tap(p, ki, kj)..][..g.len()], wv, g);
                    }
                }
                ph.merge_add(p, gpad, &mut gx[c * p.h * p.w..(c + 1) * p.h * p.w]);
            }
        })
    });
}

/// Depthwise weight gradient for one image, added into `gw`: tap `(ki, kj)`'s is the dot
/// product of the output gradient, spread `wq` wide, with the phase planes from where
/// the tap reads.
fn depthwise_backward_weight(p: &Conv2d, x: &[f32], gy: &[f32], gw: &mut [f32]) {
    let ph = Phases::new(p);
    let (oh, ow) = (p.out_h(), p.out_w());
    let offs: Vec<usize> = (0..p.kh * p.kw)
        .map(|t| ph.tap(p, t / p.kw, t % p.kw))
        .collect();
    with_buf(&PAD_A, ph.len(p), |pad| {
        with_buf(&PAD_B, oh * ph.wq, |g| {
            for c in 0..p.cin {
                ph.split(p, &x[c * p.h * p.w..(c + 1) * p.h * p.w], pad);
                ph.widen(p, &gy[c * oh * ow..(c + 1) * oh * ow], g);
                let gwc = &mut gw[c * p.kh * p.kw..(c + 1) * p.kh * p.kw];
                tap_dots(pad, &offs, g, gwc);
            }
        })
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rand_vec(n: usize, seed: &mut u64) -> Vec<f32> {
        (0..n)
            .map(|_| {
                *seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((*seed >> 40) as f32 / (1u64 << 24) as f32) - 0.5
            })
            .collect()
    }

    /// Direct seven-loop convolution in f64: the reference.
    fn naive(p: &Conv2d, x: &[f32], w: &[f32]) -> Vec<f64> {
        let (oh, ow) = (p.out_h(), p.out_w());
        let mut y = vec![0.0f64; p.out_len()];
        for n in 0..p.n {
            for co in 0..p.cout {
                let g = co / p.cout_g();
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut s = 0.0f64;
                        for ci in 0..p.cin_g() {
                            let cin = g * p.cin_g() + ci;
                            for ki in 0..p.kh {
                                for kj in 0..p.kw {
                                    let iy = (oy * p.sh + ki * p.dh) as isize - p.ph as isize;
                                    let ix = (ox * p.sw + kj * p.dw) as isize - p.pw as isize;
                                    if iy < 0 || ix < 0 || iy >= p.h as isize || ix >= p.w as isize
                                    {
                                        continue;
                                    }
                                    let xv = x[((n * p.cin + cin) * p.h + iy as usize) * p.w
                                        + ix as usize];
                                    let wv = w[((co * p.cin_g() + ci) * p.kh + ki) * p.kw + kj];
                                    s += xv as f64 * wv as f64;
                                }
                            }
                        }
                        y[((n * p.cout + co) * oh + oy) * ow + ox] = s;
                    }
                }
            }
        }
        y
    }

    fn cases() -> Vec<Conv2d> {
        let c = |n, cin, h, w, cout, k, s, pad, d, g| Conv2d {
            n,
            cin,
            h,
            w,
            cout,
            kh: k,
            kw: k,
            sh: s,
            sw: s,
            ph: pad,
            pw: pad,
            dh: d,
            dw: d,
            groups: g,
        };
        vec![
            c(2, 3, 7, 9, 4, 3, 1, 1, 1, 1),
            c(3, 4, 8, 8, 6, 3, 2, 1, 1, 2),
            c(2, 4, 9, 7, 4, 3, 1, 2, 2, 1),
            c(2, 6, 7, 7, 6, 3, 2, 1, 1, 6),
            c(2, 5, 9, 9, 5, 5, 1, 4, 2, 5),
            c(2, 5, 5, 6, 3, 1, 1, 0, 1, 1),
            c(2, 4, 6, 6, 8, 1, 2, 0, 1, 1),
            c(1, 2, 5, 5, 3, 5, 1, 2, 1, 1),
            c(2, 4, 7, 6, 4, 3, 1, 1, 1, 4),
            c(2, 3, 8, 7, 3, 3, 1, 0, 1, 3),
            c(1, 3, 9, 8, 3, 5, 1, 2, 1, 3),
            // Rows long enough for the depthwise kernels' blocks of 16 and 8 columns.
            c(2, 3, 5, 21, 3, 3, 1, 1, 1, 3),
            c(1, 2, 4, 27, 2, 5, 1, 2, 1, 2),
            c(1, 2, 6, 19, 2, 3, 1, 2, 2, 2),
            // Strided depthwise rows long enough for those blocks (stride 2 and 3, split
            // into 4 and 9 phase planes), dilated among them.
            c(2, 3, 9, 37, 3, 3, 2, 1, 1, 3),
            c(1, 2, 8, 41, 2, 5, 2, 4, 2, 2),
            c(1, 2, 7, 53, 2, 3, 3, 1, 1, 2),
            // Stride 1 with at least four input channels per group: one GEMM per tap.
            c(2, 8, 6, 11, 6, 3, 1, 1, 1, 2),
            c(1, 6, 12, 10, 5, 5, 1, 2, 1, 1),
            c(2, 16, 8, 8, 16, 3, 1, 1, 1, 1),
            c(1, 5, 7, 9, 3, 3, 1, 0, 1, 1),
            c(2, 8, 7, 9, 4, 3, 1, 2, 2, 2),
            c(1, 32, 6, 7, 16, 3, 1, 2, 2, 2),
            c(2, 16, 5, 9, 8, 5, 1, 2, 1, 1),
        ]
    }

    /// Geometries whose padding is as wide as the input or wider (a 1x1 or 2x2 image
    /// under a 5x5 or dilated kernel), so some kernel taps see only padding: legal in
    /// PyTorch, and every path (im2col, depthwise, strided, dilated) must read nothing
    /// outside the input.
    fn padding_wider_than_input() -> Vec<Conv2d> {
        let c = |n, cin, h, w, cout, k, s, pad, d, g| Conv2d {
            n,
            cin,
            h,
            w,
            cout,
            kh: k,
            kw: k,
            sh: s,
            sw: s,
            ph: pad,
            pw: pad,
            dh: d,
            dw: d,
            groups: g,
        };
        vec![
            c(2, 3, 1, 1, 4, 5, 1, 2, 1, 1),
            c(2, 3, 1, 1, 4, 7, 1, 3, 1, 1),
            c(2, 3, 2, 2, 4, 7, 1, 3, 1, 1),
            c(2, 3, 1, 3, 4, 5, 2, 2, 1, 1),
            c(2, 3, 3, 1, 4, 5, 1, 2, 1, 1),
            c(1, 2, 1, 1, 3, 3, 1, 4, 1, 1),
            c(2, 4, 1, 1, 4, 5, 1, 2, 1, 4),
            c(2, 4, 1, 1, 4, 5, 2, 2, 1, 4),
            c(2, 4, 2, 2, 4, 7, 2, 3, 1, 4),
            c(2, 4, 1, 1, 4, 5, 1, 4, 2, 4),
            c(2, 4, 1, 2, 4, 3, 2, 2, 2, 4),
            c(2, 4, 1, 1, 4, 3, 1, 2, 2, 2),
            c(2, 4, 1, 1, 4, 5, 1, 2, 1, 1),
            c(2, 8, 2, 2, 4, 7, 1, 3, 1, 2),
            c(1, 16, 2, 1, 8, 5, 1, 2, 1, 1),
        ]
    }

    /// The cases above reach every path of each of the three products: im2col (strided,
    /// or too few channels for the per-tap GEMMs), the per-tap GEMMs (grouped and dilated
    /// among them), depthwise and 1x1.
    #[test]
    fn the_cases_cover_every_path() {
        let all: Vec<Conv2d> = cases()
            .into_iter()
            .chain(padding_wider_than_input())
            .collect();
        let general = |p: &&Conv2d| !p.depthwise() && !p.pointwise();
        for (name, pick) in [
            ("forward", (|i: Implicit| i.forward) as fn(Implicit) -> bool),
            ("input", |i| i.input),
            ("weight", |i| i.weight),
        ] {
            let per_tap: Vec<_> = all
                .iter()
                .filter(general)
                .filter(|p| pick(Implicit::of(p)))
                .collect();
            let im2col = all
                .iter()
                .filter(general)
                .filter(|p| !pick(Implicit::of(p)))
                .count();
            assert!(
                per_tap.len() >= 3 && im2col >= 3,
                "{name}: {} per tap, {im2col} im2col",
                per_tap.len()
            );
            assert!(per_tap.iter().any(|p| p.groups > 1 && p.dh > 1), "{name}");
            assert!(per_tap.iter().any(|p| p.h + 2 * p.ph < 2 * p.kh), "{name}");
        }
        assert!(all.iter().any(|p| p.depthwise()) && all.iter().any(|p| p.pointwise()));
    }

    #[test]
    fn forward_matches_direct_convolution() {
        check_forward(cases(), 3);
    }

    #[test]
    fn padding_wider_than_input_matches_direct_convolution() {
        check_forward(padding_wider_than_input(), 5);
        check_gradients(padding_wider_than_input(), 13);
    }

    fn check_forward(cases: Vec<Conv2d>, mut seed: u64) {
        for p in cases {
            p.validate().unwrap();
            let x = rand_vec(p.n * p.cin * p.h * p.w, &mut seed);
            let w = rand_vec(p.weight_len(), &mut seed);
            let b = rand_vec(p.cout, &mut seed);
            let mut y = vec![0.0; p.out_len()];
            conv2d_forward(&p, &x, &w, Some(&b), &mut y);
            let want = naive(&p, &x, &w);
            let ohw = p.out_h() * p.out_w();
            for (i, (a, r)) in y.iter().zip(&want).enumerate() {
                let r = r + b[(i / ohw) % p.cout] as f64;
                assert!((*a as f64 - r).abs() < 1e-4, "{p:?} at {i}: {a} vs {r}");
            }
        }
    }

    /// Both gradients against the adjoint identity <gy, conv(x,w)> using the reference:
    /// d/dx and d/dw of sum(gy * naive(x, w)) computed by finite differences in f64.
    #[test]
    fn gradients_match_finite_differences_of_reference() {
        check_gradients(cases(), 11);
    }

    fn check_gradients(cases: Vec<Conv2d>, mut seed: u64) {
        for p in cases {
            let x = rand_vec(p.n * p.cin * p.h * p.w, &mut seed);
            let w = rand_vec(p.weight_len(), &mut seed);
            let gy = rand_vec(p.out_len(), &mut seed);
            let f = |x: &[f32], w: &[f32]| -> f64 {
                naive(&p, x, w)
                    .iter()
                    .zip(&gy)
                    .map(|(a, b)| a * *b as f64)
                    .sum()
            };
            let mut gx = vec![0.0; x.len()];
            let mut gw = vec![0.0; w.len()];
            let mut gb = vec![0.0; p.cout];
            conv2d_backward_input(&p, &gy, &w, &mut gx);
            conv2d_backward_weight(&p, &x, &gy, &mut gw, Some(&mut gb));
            // The reference is linear in each argument, so a unit step is exact.
            for i in (0..x.len()).step_by(7) {
                let mut xp = x.clone();
                xp[i] += 1.0;
                let num = f(&xp, &w) - f(&x, &w);
                assert!(
                    (num - gx[i] as f64).abs() < 1e-3,
                    "{p:?} gx[{i}] {} vs {num}",
                    gx[i]
                );
            }
            for i in 0..w.len() {
                let mut wp = w.clone();
                wp[i] += 1.0;
                let num = f(&x, &wp) - f(&x, &w);
                assert!(
                    (num - gw[i] as f64).abs() < 1e-3,
                    "{p:?} gw[{i}] {} vs {num}",
                    gw[i]
                );
            }
            let ohw = p.out_h() * p.out_w();
            for (c, g) in gb.iter().enumerate() {
                let s: f64 = (0..p.n)
                    .flat_map(|n| gy[(n * p.cout + c) * ohw..(n * p.cout + c + 1) * ohw].iter())
                    .map(|v| *v as f64)
                    .sum();
                assert!((s - *g as f64).abs() < 1e-4);
            }
        }
    }
}
