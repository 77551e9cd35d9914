//! Row-wise softmax and log-softmax over `[rows, cols]` f32 matrices, and the mean negative
//! log-likelihood loss on log-probabilities, forward and backward.
//!
//! Rows are independent and are spread across rayon workers once the matrix is large enough.

use rayon::prelude::*;

use super::PAR_MIN;

/// Eight-lane f32 sum (vectorisable, and more accurate than a single running sum).
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
    for &v in rem {
        t += v;
    }
    t
}

/// Eight-lane maximum (NaN-propagating like PyTorch's reductions).
#[inline]
fn lane_max(s: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 8];
    let chunks = s.chunks_exact(8);
    let rem = chunks.remainder();
    for ch in chunks {
        let ch: &[f32; 8] = ch.try_into().unwrap();
        for (a, &v) in acc.iter_mut().zip(ch) {
            *a = if v > *a || v.is_nan() { v } else { *a };
        }
    }
    let mut m = f32::NEG_INFINITY;
    for &v in acc.iter().chain(rem) {
        m = if v > m || v.is_nan() { v } else { m };
    }
    m
}

/// Applies `f(x_row, y_row)` to every row, in parallel when the matrix is large.
fn rows_map(cols: usize, x: &[f32], y: &mut [f32], f: impl Fn(&[f32], &mut [f32]) + Sync + Send) {
    if y.is_empty() || cols == 0 {
        return;
    }
    if y.len() < PAR_MIN {
        y.chunks_mut(cols)
            .zip(x.chunks(cols))
            .for_each(|(yr, xr)| f(xr, yr));
    } else {
        y.par_chunks_mut(cols)
            .zip(x.par_chunks(cols))
            .for_each(|(yr, xr)| f(xr, yr));
    }
}

/// Row-wise `y = (x - max) - log(sum(exp(x - max)))` (numerically stable log-softmax).
pub fn log_softmax_forward(rows: usize, cols: usize, x: &[f32], y: &mut [f32]) {
    assert_eq!(x.len(), rows * cols, "log_softmax_forward: x length");
    assert_eq!(y.len(), rows * cols, "log_softmax_forward: y length");
    rows_map(cols, x, y, |xr, yr| {
        let m = lane_max(xr);
        // Use the output row as scratch for the exponentials.
        yr.iter_mut().zip(xr).for_each(|(o, &v)| *o = (v - m).exp());
        let ls = lane_sum(yr).ln();
        yr.iter_mut().zip(xr).for_each(|(o, &v)| *o = (v - m) - ls);
    });
}

/// Log-softmax backward from its output `y`: OVERWRITES `gx = gy - exp(y) * sum(gy)` per row.
pub fn log_softmax_backward(rows: usize, cols: usize, y: &[f32], gy: &[f32], gx: &mut [f32]) {
    assert_eq!(y.len(), rows * cols, "log_softmax_backward: y length");
    assert_eq!(gy.len(), rows * cols, "log_softmax_backward: gy length");
    assert_eq!(gx.len(), rows * cols, "log_softmax_backward: gx length");
    if gx.is_empty() || cols == 0 {
        return;
    }
    let row = |(gxr, (yr, gyr)): (&mut [f32], (&[f32], &[f32]))| {
        let s = lane_sum(gyr);
        for ((o, &yv), &g) in gxr.iter_mut().zip(yr).zip(gyr) {
            *o = g - yv.exp() * s;
        }
    };
    if gx.len() < PAR_MIN {
        gx.chunks_mut(cols)
            .zip(y.chunks(cols).zip(gy.chunks(cols)))
            .for_each(row);
    } else {
        gx.par_chunks_mut(cols)
            .zip(y.par_chunks(cols).zip(gy.par_chunks(cols)))
            .for_each(row);
    }
}

/// Row-wise numerically stable softmax `y = exp(x - max) / sum(exp(x - max))`.
pub fn softmax_forward(rows: usize, cols: usize, x: &[f32], y: &mut [f32]) {
    assert_eq!(x.len(), rows * cols, "softmax_forward: x length");
    assert_eq!(y.len(), rows * cols, "softmax_forward: y length");
    rows_map(cols, x, y, |xr, yr| {
        let m = lane_max(xr);
        yr.iter_mut().zip(xr).for_each(|(o, &v)| *o = (v - m).exp());
        let inv = 1.0 / lane_sum(yr);
        yr.iter_mut().for_each(|o| *o *= inv);
    });
}

/// Mean negative log-likelihood of the targets given log-probabilities: returns the loss. Panics if a target >= cols.
pub fn nll_loss_forward(rows: usize, cols: usize, logp: &[f32], targets: &[u32]) -> f32 {
    assert_eq!(logp.len(), rows * cols, "nll_loss_forward: logp length");
    assert_eq!(targets.len(), rows, "nll_loss_forward: targets length");
    let mut s = 0.0f64;
    for (r, &t) in targets.iter().enumerate() {
        let t = t as usize;
        assert!(
            t < cols,
            "nll_loss_forward: target {t} out of range for {cols} classes"
        );
        s -= logp[r * cols + t] as f64;
    }
    (s / rows as f64) as f32
}

/// Gradient of the mean NLL w.r.t. logp times the scalar upstream gradient g: OVERWRITES gx (-g/rows at each target, 0 elsewhere).
pub fn nll_loss_backward(rows: usize, cols: usize, targets: &[u32], g: f32, gx: &mut [f32]) {
    assert_eq!(gx.len(), rows * cols, "nll_loss_backward: gx length");
    assert_eq!(targets.len(), rows, "nll_loss_backward: targets length");
    if gx.is_empty() {
        return;
    }
    let v = -g / rows as f32;
    let row = |(gr, &t): (&mut [f32], &u32)| {
        let t = t as usize;
        assert!(
            t < cols,
            "nll_loss_backward: target {t} out of range for {cols} classes"
        );
        gr.fill(0.0);
        gr[t] = v;
    };
    if gx.len() < PAR_MIN {
        gx.chunks_mut(cols).zip(targets).for_each(row);
    } else {
        gx.par_chunks_mut(cols)
            .zip(targets.par_iter())
            .for_each(row);
    }
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
    }

    const SHAPES: [(usize, usize); 6] = [(5, 7), (3, 1), (1, 13), (4, 9), (2, 33), (64, 1000)];

    /// Log-softmax of one row straight from the definition, in f64.
    fn naive_log_softmax(xr: &[f32]) -> Vec<f64> {
        let m = xr.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
        let lse = m + xr.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln();
        xr.iter().map(|&v| v as f64 - lse).collect()
    }

    fn close(got: f32, want: f64, tol: f64) -> bool {
        (got as f64 - want).abs() <= tol * (1.0 + want.abs())
    }

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
    fn log_softmax_forward_matches_naive() {
        let mut rng = Lcg(21);
        for (rows, cols) in SHAPES {
            // Large offsets and spreads: a naive exp would overflow.
            let x: Vec<f32> = rng
                .vec(rows * cols)
                .iter()
                .map(|v| 30.0 * v + 500.0)
                .collect();
            let mut y = vec![f32::NAN; x.len()];
            log_softmax_forward(rows, cols, &x, &mut y);
            for r in 0..rows {
                let want = naive_log_softmax(&x[r * cols..(r + 1) * cols]);
                for (j, &w) in want.iter().enumerate() {
                    let got = y[r * cols + j];
                    assert!(close(got, w, 1e-5), "{rows}x{cols} [{r},{j}]: {got} vs {w}");
                }
            }
        }
    }

    #[test]
    fn softmax_forward_matches_naive() {
        let mut rng = Lcg(22);
        for (rows, cols) in SHAPES {
            let x: Vec<f32> = rng
                .vec(rows * cols)
                .iter()
                .map(|v| 10.0 * v - 200.0)
                .collect();
            let mut y = vec![f32::NAN; x.len()];
            softmax_forward(rows, cols, &x, &mut y);
            for r in 0..rows {
                let want = naive_log_softmax(&x[r * cols..(r + 1) * cols]);
                let mut s = 0.0f64;
                for (j, &w) in want.iter().enumerate() {
                    let got = y[r * cols + j];
                    s += got as f64;
                    assert!(
                        (got as f64 - w.exp()).abs() <= 1e-5 * w.exp() + 1e-7,
                        "{rows}x{cols} [{r},{j}]: {got} vs {}",
                        w.exp()
                    );
                }
                assert!((s - 1.0).abs() < 1e-5, "row {r} sums to {s}");
            }
        }
    }

    #[test]
    fn log_softmax_backward_matches_finite_differences() {
        let mut rng = Lcg(23);
        for (rows, cols) in [(5, 7), (3, 1), (1, 13), (4, 9), (2, 33)] {
            let x: Vec<f32> = rng.vec(rows * cols).iter().map(|v| 3.0 * v).collect();
            let r = rng.vec(x.len());
            let fwd = |xs: &[f32]| {
                let mut y = vec![0.0; xs.len()];
                log_softmax_forward(rows, cols, xs, &mut y);
                y
            };
            let y = fwd(&x);
            let mut gx = vec![f32::NAN; x.len()];
            log_softmax_backward(rows, cols, &y, &r, &mut gx);
            fd_check(
                &x,
                &gx,
                1e-2,
                |xs| dot(&fwd(xs), &r),
                &format!("log_softmax {rows}x{cols}"),
            );
        }
    }

    #[test]
    fn log_softmax_backward_large_matches_formula() {
        let mut rng = Lcg(24);
        let (rows, cols) = (64, 1000);
        let x = rng.vec(rows * cols);
        let gy = rng.vec(rows * cols);
        let mut y = vec![0.0; x.len()];
        log_softmax_forward(rows, cols, &x, &mut y);
        let mut gx = vec![f32::NAN; x.len()];
        log_softmax_backward(rows, cols, &y, &gy, &mut gx);
        for r in 0..rows {
            let s: f64 = gy[r * cols..(r + 1) * cols].iter().map(|&v| v as f64).sum();
            for j in r * cols..(r + 1) * cols {
                let want = gy[j] as f64 - (y[j] as f64).exp() * s;
                assert!(close(gx[j], want, 1e-5), "gx[{j}] {} vs {want}", gx[j]);
            }
        }
    }

    #[test]
    fn nll_loss_forward_matches_naive() {
        let mut rng = Lcg(25);
        for (rows, cols) in SHAPES {
            let mut logp = vec![0.0; rows * cols];
            log_softmax_forward(rows, cols, &rng.vec(rows * cols), &mut logp);
            let t: Vec<u32> = (0..rows).map(|_| rng.next_u32() % cols as u32).collect();
            let want = -(0..rows)
                .map(|r| logp[r * cols + t[r] as usize] as f64)
                .sum::<f64>()
                / rows as f64;
            let got = nll_loss_forward(rows, cols, &logp, &t);
            assert!(close(got, want, 1e-6), "{rows}x{cols}: {got} vs {want}");
        }
    }

    #[test]
    fn nll_loss_backward_matches_finite_differences() {
        let mut rng = Lcg(26);
        for (rows, cols) in [(5, 7), (3, 1), (1, 13), (4, 9), (2, 33)] {
            let logp = rng.vec(rows * cols);
            let t: Vec<u32> = (0..rows).map(|_| rng.next_u32() % cols as u32).collect();
            let g = 0.5 + rng.uniform().abs();
            let mut gx = vec![f32::NAN; logp.len()];
            nll_loss_backward(rows, cols, &t, g, &mut gx);
            let loss = |l: &[f32]| g as f64 * nll_loss_forward(rows, cols, l, &t) as f64;
            fd_check(&logp, &gx, 1e-2, loss, &format!("nll {rows}x{cols}"));
        }
    }

    #[test]
    fn nll_loss_backward_large_is_sparse() {
        let (rows, cols) = (64, 1000);
        let t: Vec<u32> = (0..rows as u32).map(|r| (r * 37) % cols as u32).collect();
        let mut gx = vec![f32::NAN; rows * cols];
        nll_loss_backward(rows, cols, &t, 2.0, &mut gx);
        for (i, &v) in gx.iter().enumerate() {
            let want = if i % cols == t[i / cols] as usize {
                -2.0 / rows as f32
            } else {
                0.0
            };
            assert_eq!(v, want, "gx[{i}]");
        }
    }

    #[test]
    #[should_panic(expected = "out of range")]
    fn nll_loss_forward_rejects_bad_target() {
        nll_loss_forward(2, 3, &[0.0; 6], &[1, 3]);
    }
}
