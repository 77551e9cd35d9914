//! Elementwise maps, broadcasting binary ops and sums over broadcast axes.

use rayon::prelude::*;

/// `y[i] = f(x[i])`.
pub fn map(x: &[f32], y: &mut [f32], f: impl Fn(f32) -> f32 + Sync) {
    if y.len() >= super::PAR_MIN {
        y.par_chunks_mut(4096)
            .zip(x.par_chunks(4096))
            .for_each(|(yc, xc)| yc.iter_mut().zip(xc).for_each(|(a, b)| *a = f(*b)));
    } else {
        y.iter_mut().zip(x).for_each(|(a, b)| *a = f(*b));
    }
}

/// `z[i] = f(x[i], y[i])` for same-length slices.
pub fn zip_map(x: &[f32], y: &[f32], z: &mut [f32], f: impl Fn(f32, f32) -> f32 + Sync) {
    assert!(
        x.len() == z.len() && y.len() == z.len(),
        "zip_map: lengths differ"
    );
    if z.len() >= super::PAR_MIN {
        z.par_chunks_mut(4096)
            .zip(x.par_chunks(4096).zip(y.par_chunks(4096)))
            .for_each(|(zc, (xc, yc))| {
                for ((o, a), b) in zc.iter_mut().zip(xc).zip(yc) {
                    *o = f(*a, *b)
                }
            });
    } else {
        for ((o, a), b) in z.iter_mut().zip(x).zip(y) {
            *o = f(*a, *b)
        }
    }
}

/// `y[i] += f(x[i])` (gradient accumulation).
pub fn acc_map(x: &[f32], y: &mut [f32], f: impl Fn(f32) -> f32 + Sync) {
    assert_eq!(x.len(), y.len(), "acc_map: lengths differ");
    if y.len() >= super::PAR_MIN {
        y.par_chunks_mut(4096)
            .zip(x.par_chunks(4096))
            .for_each(|(yc, xc)| yc.iter_mut().zip(xc).for_each(|(a, b)| *a += f(*b)));
    } else {
        y.iter_mut().zip(x).for_each(|(a, b)| *a += f(*b));
    }
}

/// `z[i] += f(x[i], y[i])` (gradient accumulation of a two-input rule).
pub fn acc_zip_map(x: &[f32], y: &[f32], z: &mut [f32], f: impl Fn(f32, f32) -> f32 + Sync) {
    assert!(
        x.len() == z.len() && y.len() == z.len(),
        "acc_zip_map: lengths differ"
    );
    if z.len() >= super::PAR_MIN {
        z.par_chunks_mut(4096)
            .zip(x.par_chunks(4096).zip(y.par_chunks(4096)))
            .for_each(|(zc, (xc, yc))| {
                for ((o, a), b) in zc.iter_mut().zip(xc).zip(yc) {
                    *o += f(*a, *b)
                }
            });
    } else {
        for ((o, a), b) in z.iter_mut().zip(x).zip(y) {
            *o += f(*a, *b)
        }
    }
}

/// The broadcast of two shapes (NumPy rules), or None if they are incompatible.
pub fn broadcast_shape(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let r = a.len().max(b.len());
    let mut out = vec![0; r];
    for i in 0..r {
        let da = if i + a.len() >= r {
            a[i + a.len() - r]
        } else {
            1
        };
        let db = if i + b.len() >= r {
            b[i + b.len() - r]
        } else {
            1
        };
        out[i] = if da == db || db == 1 {
            da
        } else if da == 1 {
            db
        } else {
            return None;
        };
    }
    Some(out)
}

/// A walk over an output shape with one or two operands broadcast into it, with adjacent
/// dimensions merged so the innermost loop is as long as possible.
#[derive(Debug)]
struct Walk {
    dims: Vec<usize>,
    strides: [Vec<usize>; 2],
}

impl Walk {
    fn new(out: &[usize], ins: [&[usize]; 2]) -> Walk {
        let r = out.len();
        let mut st: [Vec<usize>; 2] = [vec![0; r], vec![0; r]];
        for (k, s) in ins.iter().enumerate() {
            let off = r - s.len();
            let mut acc = 1;
            for i in (0..s.len()).rev() {
                st[k][i + off] = if s[i] == 1 && out[i + off] != 1 {
                    0
                } else {
                    acc
                };
                acc *= s[i];
            }
        }
        // Drop size-1 dims, then merge neighbours that are contiguous in every operand.
        let mut dims = vec![];
        let mut ms: [Vec<usize>; 2] = [vec![], vec![]];
        for i in 0..r {
            if out[i] == 1 {
                continue;
            }
            if let Some(&last) = dims.last() {
                let ok = (0..2).all(|k| ms[k].last().copied() == Some(st[k][i] * out[i]));
                if ok {
                    *dims.last_mut().unwrap() = last * out[i];
                    for k in 0..2 {
                        *ms[k].last_mut().unwrap() = st[k][i];
                    }
                    continue;
                }
            }
            dims.push(out[i]);
            for k in 0..2 {
                ms[k].push(st[k][i]);
            }
        }
        if dims.is_empty() {
            dims.push(1);
            ms = [vec![0], vec![0]];
        }
        Walk { dims, strides: ms }
    }
    fn inner(&self) -> usize {
        *self.dims.last().unwrap()
    }
    fn inner_strides(&self) -> (usize, usize) {
        (
            *self.strides[0].last().unwrap(),
            *self.strides[1].last().unwrap(),
        )
    }
    /// Offsets of both operands at the start of output row `r`.
    fn row_base(&self, mut r: usize) -> (usize, usize) {
        let (mut a, mut b) = (0, 0);
        for d in (0..self.dims.len() - 1).rev() {
            let i = r % self.dims[d];
            r /= self.dims[d];
            a += i * self.strides[0][d];
            b += i * self.strides[1][d];
        }
        (a, b)
    }
}

/// `out = f(a, b)` with NumPy broadcasting; `out` has the broadcast shape.
pub fn binary(
    a: &[f32],
    a_shape: &[usize],
    b: &[f32],
    b_shape: &[usize],
    out: &mut [f32],
    f: impl Fn(f32, f32) -> f32 + Sync,
) {
    let out_shape = broadcast_shape(a_shape, b_shape).expect("binary: shapes do not broadcast");
    assert_eq!(
        out.len(),
        out_shape.iter().product::<usize>(),
        "binary: output length"
    );
    if a_shape == b_shape {
        return zip_map(a, b, out, f);
    }
    let walk = Walk::new(&out_shape, [a_shape, b_shape]);
    let inner = walk.inner();
    let (sa, sb) = walk.inner_strides();
    let row = |r: usize, o: &mut [f32]| {
        let (pa, pb) = walk.row_base(r);
        match (sa, sb) {
            (1, 1) => {
                for ((v, x), y) in o.iter_mut().zip(&a[pa..pa + inner]).zip(&b[pb..pb + inner]) {
                    *v = f(*x, *y)
                }
            }
            (1, 0) => {
                let y = b[pb];
                for (v, x) in o.iter_mut().zip(&a[pa..pa + inner]) {
                    *v = f(*x, y)
                }
            }
            (0, 1) => {
                let x = a[pa];
                for (v, y) in o.iter_mut().zip(&b[pb..pb + inner]) {
                    *v = f(x, *y)
                }
            }
            _ => {
                for (j, v) in o.iter_mut().enumerate() {
                    *v = f(a[pa + j * sa], b[pb + j * sb])
                }
            }
        }
    };
    if out.len() >= super::PAR_MIN && out.len() / inner >= 2 {
        out.par_chunks_mut(inner)
            .enumerate()
            .for_each(|(r, o)| row(r, o));
    } else {
        for (r, o) in out.chunks_mut(inner).enumerate() {
            row(r, o);
        }
    }
}

/// `out += sum of x over the axes where out_shape broadcasts into x_shape`; `out_shape` must
/// broadcast to `x_shape`. Used to fold a broadcast operand's gradient back to its shape.
pub fn acc_sum_to(x: &[f32], x_shape: &[usize], out: &mut [f32], out_shape: &[usize]) {
    assert_eq!(
        out.len(),
        out_shape.iter().product::<usize>(),
        "acc_sum_to: output length"
    );
    if x_shape == out_shape {
        out.iter_mut().zip(x).for_each(|(a, b)| *a += b);
        return;
    }
    let walk = Walk::new(x_shape, [x_shape, out_shape]);
    let inner = walk.inner();
    let (_, so) = walk.inner_strides();
    for (r, xr) in x.chunks(inner).enumerate() {
        let (_, po) = walk.row_base(r);
        if so == 0 {
            out[po] += sum_lanes(xr);
        } else {
            out[po..po + inner]
                .iter_mut()
                .zip(xr)
                .for_each(|(a, b)| *a += b);
        }
    }
}

/// `out += x` broadcast from `x_shape` up to `out_shape` (the adjoint of `acc_sum_to`).
pub fn acc_broadcast(x: &[f32], x_shape: &[usize], out: &mut [f32], out_shape: &[usize]) {
    assert_eq!(
        out.len(),
        out_shape.iter().product::<usize>(),
        "acc_broadcast: output length"
    );
    if x_shape == out_shape {
        out.iter_mut().zip(x).for_each(|(a, b)| *a += b);
        return;
    }
    let walk = Walk::new(out_shape, [out_shape, x_shape]);
    let inner = walk.inner();
    let (_, sx) = walk.inner_strides();
    for (r, orow) in out.chunks_mut(inner).enumerate() {
        let (_, px) = walk.row_base(r);
        if sx == 0 {
            let v = x[px];
            orow.iter_mut().for_each(|a| *a += v);
        } else {
            orow.iter_mut()
                .zip(&x[px..px + inner])
                .for_each(|(a, b)| *a += b);
        }
    }
}

/// `out = sum_k w[k] * xs[k]` over same-length slices (a mixed op's weighted sum).
pub fn weighted_sum(xs: &[&[f32]], w: &[f32], out: &mut [f32]) {
    assert_eq!(
        xs.len(),
        w.len(),
        "weighted_sum: {} inputs, {} weights",
        xs.len(),
        w.len()
    );
    assert!(
        xs.iter().all(|x| x.len() == out.len()),
        "weighted_sum: lengths differ"
    );
    let chunk = 4096;
    let body = |(c, o): (usize, &mut [f32])| {
        let lo = c * chunk;
        o.iter_mut()
            .zip(&xs[0][lo..])
            .for_each(|(a, b)| *a = w[0] * b);
        for (x, wk) in xs.iter().zip(w).skip(1) {
            o.iter_mut().zip(&x[lo..]).for_each(|(a, b)| *a += wk * b);
        }
    };
    if out.len() >= super::PAR_MIN {
        out.par_chunks_mut(chunk).enumerate().for_each(body);
    } else {
        out.chunks_mut(chunk).enumerate().for_each(body);
    }
}

/// Dot product, summed in f64 over fixed chunks in a fixed order (deterministic).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "dot: lengths differ");
    let part = |(x, y): (&[f32], &[f32])| -> f64 { dot_lanes(x, y) as f64 };
    let chunk = 4096;
    if a.len() >= super::PAR_MIN {
        let parts: Vec<f64> = a
            .par_chunks(chunk)
            .zip(b.par_chunks(chunk))
            .map(part)
            .collect();
        parts.iter().sum::<f64>() as f32
    } else {
        a.chunks(chunk).zip(b.chunks(chunk)).map(part).sum::<f64>() as f32
    }
}

/// Dot product of the common prefix of `a` and `b` with 16 independent partial sums,
/// so it vectorises (a plain `.sum()` is a serial chain); the summation order is fixed.
#[inline]
pub fn dot_lanes(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        let x: &[f32; 16] = x.try_into().unwrap();
        let y: &[f32; 16] = y.try_into().unwrap();
        for i in 0..16 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut t = fold16(acc);
    for (x, y) in ra.iter().zip(rb) {
        t += x * y;
    }
    t
}

/// Sum of a slice with 16 independent partial sums (vectorises; fixed order).
#[inline]
pub fn sum_lanes(a: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let c = a.chunks_exact(16);
    let r = c.remainder();
    for x in c {
        let x: &[f32; 16] = x.try_into().unwrap();
        for i in 0..16 {
            acc[i] += x[i];
        }
    }
    let mut t = fold16(acc);
    for v in r {
        t += v;
    }
    t
}

/// Pairwise sum of 16 lanes.
#[inline(always)]
pub fn fold16(a: [f32; 16]) -> f32 {
    let mut h = [0f32; 8];
    for i in 0..8 {
        h[i] = a[i] + a[i + 8];
    }
    ((h[0] + h[4]) + (h[1] + h[5])) + ((h[2] + h[6]) + (h[3] + h[7]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lane_reductions_match_f64_references_at_every_tail_length() {
        let mut seed = 7u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        };
        for n in [0usize, 1, 7, 15, 16, 17, 33, 100, 1031] {
            let a: Vec<f32> = (0..n).map(|_| next()).collect();
            let b: Vec<f32> = (0..n).map(|_| next()).collect();
            let d: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
            let s: f64 = a.iter().map(|x| *x as f64).sum();
            assert!(
                (dot_lanes(&a, &b) as f64 - d).abs() < 1e-5 * (n as f64 + 1.0),
                "dot n={n}"
            );
            assert!(
                (sum_lanes(&a) as f64 - s).abs() < 1e-5 * (n as f64 + 1.0),
                "sum n={n}"
            );
        }
        // Only the common prefix of unequal slices counts.
        assert_eq!(dot_lanes(&[1.0, 2.0, 3.0], &[4.0, 5.0]), 14.0);
    }

    #[test]
    fn broadcast_binary_matches_index_arithmetic() {
        let a_shape = [2, 3, 1, 4];
        let b_shape = [3, 5, 1];
        let a: Vec<f32> = (0..24).map(|v| v as f32).collect();
        let b: Vec<f32> = (0..15).map(|v| v as f32 * 100.0).collect();
        let out_shape = broadcast_shape(&a_shape, &b_shape).unwrap();
        assert_eq!(out_shape, vec![2, 3, 5, 4]);
        let mut out = vec![0.0; 120];
        binary(&a, &a_shape, &b, &b_shape, &mut out, |x, y| x + y);
        for i in 0..2 {
            for j in 0..3 {
                for k in 0..5 {
                    for l in 0..4 {
                        let want = a[(i * 3 + j) * 4 + l] + b[j * 5 + k];
                        assert_eq!(out[((i * 3 + j) * 5 + k) * 4 + l], want);
                    }
                }
            }
        }
        // Folding the output back sums over the broadcast axes.
        let mut gb = vec![0.0; 15];
        acc_sum_to(&out, &out_shape, &mut gb, &b_shape);
        for j in 0..3 {
            for k in 0..5 {
                let mut want = 0.0;
                for i in 0..2 {
                    for l in 0..4 {
                        want += out[((i * 3 + j) * 5 + k) * 4 + l];
                    }
                }
                assert_eq!(gb[j * 5 + k], want);
            }
        }
        let mut ga = vec![0.0; 24];
        acc_sum_to(&out, &out_shape, &mut ga, &a_shape);
        let total: f32 = out.iter().sum();
        assert!((ga.iter().sum::<f32>() - total).abs() < 1e-2);
        assert!(broadcast_shape(&[2, 3], &[4, 3, 2]).is_none());
    }

    #[test]
    fn scalar_and_bias_patterns() {
        let x: Vec<f32> = (0..2 * 3 * 4).map(|v| v as f32).collect();
        let bias = [10.0, 20.0, 30.0];
        let mut y = vec![0.0; 24];
        binary(&x, &[2, 3, 4], &bias, &[1, 3, 1], &mut y, |a, b| a * b);
        assert_eq!(y[4 * 1 + 1], 5.0 * 20.0);
        assert_eq!(y[12 + 8 + 3], 23.0 * 30.0);
        let mut s = vec![0.0; 1];
        binary(&x, &[2, 3, 4], &[2.0], &[1], &mut y, |a, b| a - b);
        acc_sum_to(&y, &[2, 3, 4], &mut s, &[1]);
        assert_eq!(s[0], (0..24).map(|v| v as f32 - 2.0).sum::<f32>());
    }
}
