//! Batch normalisation over NCHW f32 tensors viewed as `[n, c, hw]`: training and eval forward,
//! the running-statistics update, and the training-mode backward.
//!
//! Per-channel statistics are accumulated in f64 (two passes: mean, then centred squares) with
//! rayon across channels; the elementwise passes then run across `(n, c)` planes.

use rayon::prelude::*;

use super::PAR_MIN;

/// Eight-lane f64 sum of an f32 slice (vectorisable; lanes are combined at the end).
#[inline]
fn sum_f64(s: &[f32]) -> f64 {
    let mut acc = [0f64; 8];
    let chunks = s.chunks_exact(8);
    let rem = chunks.remainder();
    for ch in chunks {
        let ch: &[f32; 8] = ch.try_into().unwrap();
        for (a, &v) in acc.iter_mut().zip(ch) {
            *a += v as f64;
        }
    }
    let mut t: f64 = acc.iter().sum();
    for &v in rem {
        t += v as f64;
    }
    t
}

/// Eight-lane f64 `sum((x - mu)^2)`.
#[inline]
fn sq_dev_f64(s: &[f32], mu: f64) -> f64 {
    let mut acc = [0f64; 8];
    let chunks = s.chunks_exact(8);
    let rem = chunks.remainder();
    for ch in chunks {
        let ch: &[f32; 8] = ch.try_into().unwrap();
        for (a, &v) in acc.iter_mut().zip(ch) {
            let d = v as f64 - mu;
            *a += d * d;
        }
    }
    let mut t: f64 = acc.iter().sum();
    for &v in rem {
        let d = v as f64 - mu;
        t += d * d;
    }
    t
}

/// Eight-lane f64 `sum(g * (x - mu))`.
#[inline]
fn dot_dev_f64(g: &[f32], x: &[f32], mu: f64) -> f64 {
    let mut acc = [0f64; 8];
    let gc = g.chunks_exact(8);
    let xc = x.chunks_exact(8);
    let (gr, xr) = (gc.remainder(), xc.remainder());
    for (gch, xch) in gc.zip(xc) {
        let gch: &[f32; 8] = gch.try_into().unwrap();
        let xch: &[f32; 8] = xch.try_into().unwrap();
        for ((a, &gv), &xv) in acc.iter_mut().zip(gch).zip(xch) {
            *a += gv as f64 * (xv as f64 - mu);
        }
    }
    let mut t: f64 = acc.iter().sum();
    for (&gv, &xv) in gr.iter().zip(xr) {
        t += gv as f64 * (xv as f64 - mu);
    }
    t
}

/// The `hw`-long plane of channel `ch` in batch item `b`.
#[inline]
fn plane(x: &[f32], c: usize, hw: usize, b: usize, ch: usize) -> &[f32] {
    &x[(b * c + ch) * hw..][..hw]
}

/// Runs `f(ch, a, b)` for every channel, in parallel when the tensor is large.
fn per_channel(
    len: usize,
    a: &mut [f32],
    b: &mut [f32],
    f: impl Fn(usize, &mut f32, &mut f32) + Sync + Send,
) {
    if len < PAR_MIN {
        a.iter_mut()
            .zip(b.iter_mut())
            .enumerate()
            .for_each(|(ch, (a, b))| f(ch, a, b));
    } else {
        a.par_iter_mut()
            .zip(b.par_iter_mut())
            .enumerate()
            .for_each(|(ch, (a, b))| f(ch, a, b));
    }
}

/// `y = (x - m) * a + b` per `(n, c)` plane with `(m, a, b) = coef(channel)`.
fn affine_planes(
    c: usize,
    hw: usize,
    x: &[f32],
    y: &mut [f32],
    coef: impl Fn(usize) -> (f32, f32, f32) + Sync + Send,
) {
    if y.is_empty() {
        return;
    }
    let plane = |(p, (yp, xp)): (usize, (&mut [f32], &[f32]))| {
        let (m, a, b) = coef(p % c);
        yp.iter_mut()
            .zip(xp)
            .for_each(|(o, &v)| *o = (v - m) * a + b);
    };
    if y.len() < PAR_MIN {
        y.chunks_mut(hw)
            .zip(x.chunks(hw))
            .enumerate()
            .for_each(plane);
    } else {
        y.par_chunks_mut(hw)
            .zip(x.par_chunks(hw))
            .enumerate()
            .for_each(plane);
    }
}

/// Asserts that the tensor and per-channel slices have the sizes `[n, c, hw]` and `[c]`.
fn check(name: &str, n: usize, c: usize, hw: usize, tensors: &[usize], channels: &[usize]) {
    for &l in tensors {
        assert_eq!(l, n * c * hw, "{name}: tensor length {l} != {n}*{c}*{hw}");
    }
    for &l in channels {
        assert_eq!(l, c, "{name}: per-channel length {l} != {c}");
    }
}

/// Training-mode forward: batch statistics (biased variance) per channel. Writes y, and mean and invstd (1/sqrt(var+eps)) per channel for the backward.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_forward_train(
    n: usize,
    c: usize,
    hw: usize,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
    y: &mut [f32],
    mean: &mut [f32],
    invstd: &mut [f32],
) {
    let name = "batch_norm_forward_train";
    check(
        name,
        n,
        c,
        hw,
        &[x.len(), y.len()],
        &[gamma.len(), beta.len(), mean.len(), invstd.len()],
    );
    let count = (n * hw) as f64;
    per_channel(x.len(), mean, invstd, |ch, m, is| {
        let s: f64 = (0..n).map(|b| sum_f64(plane(x, c, hw, b, ch))).sum();
        let mu = s / count;
        let ss: f64 = (0..n).map(|b| sq_dev_f64(plane(x, c, hw, b, ch), mu)).sum();
        *m = mu as f32;
        *is = (1.0 / (ss / count + eps as f64).sqrt()) as f32;
    });
    let (mean, invstd) = (&*mean, &*invstd);
    affine_planes(c, hw, x, y, |ch| {
        (mean[ch], invstd[ch] * gamma[ch], beta[ch])
    });
}

/// Running-stat update `running = (1-m)*running + m*batch`, with the unbiased (`count/(count-1)`) variance recovered from `invstd`.
pub fn batch_norm_update_running(
    count: usize,
    momentum: f32,
    mean: &[f32],
    invstd: &[f32],
    eps: f32,
    running_mean: &mut [f32],
    running_var: &mut [f32],
) {
    let c = mean.len();
    let name = "batch_norm_update_running";
    check(
        name,
        1,
        c,
        0,
        &[],
        &[invstd.len(), running_mean.len(), running_var.len()],
    );
    let m = momentum as f64;
    let unbias = if count > 1 {
        count as f64 / (count - 1) as f64
    } else {
        1.0
    };
    for ch in 0..c {
        let is = invstd[ch] as f64;
        let var = (1.0 / (is * is) - eps as f64).max(0.0) * unbias;
        running_mean[ch] = ((1.0 - m) * running_mean[ch] as f64 + m * mean[ch] as f64) as f32;
        running_var[ch] = ((1.0 - m) * running_var[ch] as f64 + m * var) as f32;
    }
}

/// Eval-mode forward with running statistics.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_forward_eval(
    n: usize,
    c: usize,
    hw: usize,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    running_mean: &[f32],
    running_var: &[f32],
    eps: f32,
    y: &mut [f32],
) {
    let name = "batch_norm_forward_eval";
    let chans = [
        gamma.len(),
        beta.len(),
        running_mean.len(),
        running_var.len(),
    ];
    check(name, n, c, hw, &[x.len(), y.len()], &chans);
    affine_planes(c, hw, x, y, |ch| {
        let a = gamma[ch] as f64 / (running_var[ch] as f64 + eps as f64).sqrt();
        (running_mean[ch], a as f32, beta[ch])
    });
}

/// Backward of training-mode BN: OVERWRITES gx, ggamma, gbeta.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_backward(
    n: usize,
    c: usize,
    hw: usize,
    x: &[f32],
    gy: &[f32],
    gamma: &[f32],
    mean: &[f32],
    invstd: &[f32],
    gx: &mut [f32],
    ggamma: &mut [f32],
    gbeta: &mut [f32],
) {
    let name = "batch_norm_backward";
    let chans = [
        gamma.len(),
        mean.len(),
        invstd.len(),
        ggamma.len(),
        gbeta.len(),
    ];
    check(name, n, c, hw, &[x.len(), gy.len(), gx.len()], &chans);
    // Per channel: gbeta = sum(gy), ggamma = sum(gy * xhat) with xhat = (x - mean) * invstd.
    per_channel(x.len(), ggamma, gbeta, |ch, gg, gb| {
        let mu = mean[ch] as f64;
        let s: f64 = (0..n).map(|b| sum_f64(plane(gy, c, hw, b, ch))).sum();
        let d: f64 = (0..n)
            .map(|b| dot_dev_f64(plane(gy, c, hw, b, ch), plane(x, c, hw, b, ch), mu))
            .sum();
        *gb = s as f32;
        *gg = (d * invstd[ch] as f64) as f32;
    });
    if gx.is_empty() {
        return;
    }
    // gx = gamma*invstd * (gy - gbeta/M - xhat * ggamma/M)
    //    = a*gy - k*(x - mean) - d  with a = gamma*invstd, k = a*invstd*ggamma/M, d = a*gbeta/M.
    let (ggamma, gbeta) = (&*ggamma, &*gbeta);
    let count = (n * hw) as f64;
    let plane_fn = |p: usize, gxp: &mut [f32], gyp: &[f32], xp: &[f32]| {
        let ch = p % c;
        let is = invstd[ch] as f64;
        let a = gamma[ch] as f64 * is;
        let k = (a * is * ggamma[ch] as f64 / count) as f32;
        let d = (a * gbeta[ch] as f64 / count) as f32;
        let (a, m) = (a as f32, mean[ch]);
        for ((o, &g), &v) in gxp.iter_mut().zip(gyp).zip(xp) {
            *o = a * g - k * (v - m) - d;
        }
    };
    if gx.len() < PAR_MIN {
        gx.chunks_mut(hw)
            .zip(gy.chunks(hw).zip(x.chunks(hw)))
            .enumerate()
            .for_each(|(p, (gxp, (gyp, xp)))| plane_fn(p, gxp, gyp, xp));
    } else {
        gx.par_chunks_mut(hw)
            .zip(gy.par_chunks(hw).zip(x.par_chunks(hw)))
            .enumerate()
            .for_each(|(p, (gxp, (gyp, xp)))| plane_fn(p, gxp, gyp, xp));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tiny deterministic generator for test inputs.
    struct Lcg(u64);

    impl Lcg {
        fn uniform(&mut self) -> f32 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        }
        fn vec(&mut self, n: usize) -> Vec<f32> {
            (0..n).map(|_| self.uniform()).collect()
        }
    }

    const SHAPES: [(usize, usize, usize); 5] =
        [(2, 3, 35), (3, 5, 7), (1, 1, 1), (1, 4, 13), (4, 8, 1024)];

    /// Per-channel mean and biased variance, straight from the definition, in f64.
    fn naive_stats(n: usize, c: usize, hw: usize, x: &[f32]) -> (Vec<f64>, Vec<f64>) {
        let m = (n * hw) as f64;
        let mut mean = vec![0.0; c];
        let mut var = vec![0.0; c];
        for ch in 0..c {
            for b in 0..n {
                for i in 0..hw {
                    mean[ch] += x[(b * c + ch) * hw + i] as f64;
                }
            }
            mean[ch] /= m;
            for b in 0..n {
                for i in 0..hw {
                    let d = x[(b * c + ch) * hw + i] as f64 - mean[ch];
                    var[ch] += d * d;
                }
            }
            var[ch] /= m;
        }
        (mean, var)
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
                "{what}: d/d[{i}] numeric {num} vs analytic {ana}"
            );
        }
    }

    fn inputs(rng: &mut Lcg, n: usize, c: usize, hw: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let x: Vec<f32> = rng.vec(n * c * hw).iter().map(|v| 2.0 * v + 0.5).collect();
        let gamma: Vec<f32> = rng.vec(c).iter().map(|v| 1.0 + 0.5 * v).collect();
        let beta = rng.vec(c);
        (x, gamma, beta)
    }

    #[test]
    fn forward_train_matches_naive() {
        let mut rng = Lcg(11);
        let eps = 1e-5;
        for (n, c, hw) in SHAPES {
            let (x, gamma, beta) = inputs(&mut rng, n, c, hw);
            let mut y = vec![f32::NAN; x.len()];
            let (mut mean, mut invstd) = (vec![f32::NAN; c], vec![f32::NAN; c]);
            batch_norm_forward_train(
                n,
                c,
                hw,
                &x,
                &gamma,
                &beta,
                eps,
                &mut y,
                &mut mean,
                &mut invstd,
            );
            let (m, v) = naive_stats(n, c, hw, &x);
            for ch in 0..c {
                let is = 1.0 / (v[ch] + eps as f64).sqrt();
                assert!(
                    close(mean[ch], m[ch], 1e-6),
                    "mean[{ch}] {} vs {}",
                    mean[ch],
                    m[ch]
                );
                assert!(
                    close(invstd[ch], is, 1e-5),
                    "invstd[{ch}] {} vs {is}",
                    invstd[ch]
                );
                for b in 0..n {
                    for i in 0..hw {
                        let j = (b * c + ch) * hw + i;
                        let want = (x[j] as f64 - m[ch]) * is * gamma[ch] as f64 + beta[ch] as f64;
                        assert!(close(y[j], want, 1e-5), "y[{j}] {} vs {want}", y[j]);
                    }
                }
            }
        }
    }

    #[test]
    fn forward_train_statistics_survive_a_large_offset() {
        // Mean 1000, spread 1e-2: single-pass f32 sums would lose the variance entirely.
        let mut rng = Lcg(12);
        let (n, c, hw) = (8, 2, 4096);
        let x: Vec<f32> = rng
            .vec(n * c * hw)
            .iter()
            .map(|v| 1000.0 + 0.01 * v)
            .collect();
        let (gamma, beta) = (vec![1.0; c], vec![0.0; c]);
        let mut y = vec![0.0; x.len()];
        let (mut mean, mut invstd) = (vec![0.0; c], vec![0.0; c]);
        batch_norm_forward_train(
            n,
            c,
            hw,
            &x,
            &gamma,
            &beta,
            0.0,
            &mut y,
            &mut mean,
            &mut invstd,
        );
        let (m, v) = naive_stats(n, c, hw, &x);
        for ch in 0..c {
            assert!(close(mean[ch], m[ch], 1e-7));
            assert!(
                close(invstd[ch], 1.0 / v[ch].sqrt(), 1e-5),
                "{} vs {}",
                invstd[ch],
                v[ch]
            );
        }
        // The stored f32 mean is off by up to half an ulp of 1000 (3e-5, 0.5% of a deviation),
        // which shifts y a little; its spread must still be exactly normalised.
        let len = y.len() as f64;
        let ym = y.iter().map(|&v| v as f64).sum::<f64>() / len;
        let yv = y.iter().map(|&v| (v as f64 - ym).powi(2)).sum::<f64>() / len;
        assert!(
            ym.abs() < 1e-2 && (yv - 1.0).abs() < 1e-3,
            "y mean {ym}, var {yv}"
        );
    }

    #[test]
    fn update_running_matches_naive() {
        let mut rng = Lcg(13);
        let (n, c, hw) = (2, 3, 35);
        let eps = 1e-5;
        let (x, gamma, beta) = inputs(&mut rng, n, c, hw);
        let mut y = vec![0.0; x.len()];
        let (mut mean, mut invstd) = (vec![0.0; c], vec![0.0; c]);
        batch_norm_forward_train(
            n,
            c,
            hw,
            &x,
            &gamma,
            &beta,
            eps,
            &mut y,
            &mut mean,
            &mut invstd,
        );
        let rm0 = rng.vec(c);
        let rv0: Vec<f32> = rng.vec(c).iter().map(|v| 1.0 + 0.5 * v).collect();
        let (mut rm, mut rv) = (rm0.clone(), rv0.clone());
        let count = n * hw;
        batch_norm_update_running(count, 0.1, &mean, &invstd, eps, &mut rm, &mut rv);
        let (m, v) = naive_stats(n, c, hw, &x);
        for ch in 0..c {
            let want_m = 0.9 * rm0[ch] as f64 + 0.1 * m[ch];
            let unbiased = v[ch] * count as f64 / (count - 1) as f64;
            let want_v = 0.9 * rv0[ch] as f64 + 0.1 * unbiased;
            assert!(
                close(rm[ch], want_m, 1e-6),
                "running_mean[{ch}] {} vs {want_m}",
                rm[ch]
            );
            assert!(
                close(rv[ch], want_v, 1e-5),
                "running_var[{ch}] {} vs {want_v}",
                rv[ch]
            );
        }
    }

    #[test]
    fn forward_eval_matches_naive() {
        let mut rng = Lcg(14);
        let eps = 1e-3;
        for (n, c, hw) in SHAPES {
            let (x, gamma, beta) = inputs(&mut rng, n, c, hw);
            let rm = rng.vec(c);
            let rv: Vec<f32> = rng.vec(c).iter().map(|v| 1.0 + 0.9 * v).collect();
            let mut y = vec![f32::NAN; x.len()];
            batch_norm_forward_eval(n, c, hw, &x, &gamma, &beta, &rm, &rv, eps, &mut y);
            for (j, &got) in y.iter().enumerate() {
                let ch = (j / hw) % c;
                let want = (x[j] as f64 - rm[ch] as f64) / (rv[ch] as f64 + eps as f64).sqrt()
                    * gamma[ch] as f64
                    + beta[ch] as f64;
                assert!(close(got, want, 1e-5), "y[{j}] {got} vs {want}");
            }
        }
    }

    #[test]
    fn backward_matches_finite_differences() {
        let mut rng = Lcg(15);
        let eps = 1e-5;
        for (n, c, hw) in [(2, 3, 35), (3, 5, 7), (1, 4, 13), (4, 2, 1)] {
            let (x, gamma, beta) = inputs(&mut rng, n, c, hw);
            let r = rng.vec(x.len());
            let fwd = |x: &[f32], gamma: &[f32], beta: &[f32]| {
                let mut y = vec![0.0; x.len()];
                let (mut m, mut is) = (vec![0.0; c], vec![0.0; c]);
                batch_norm_forward_train(n, c, hw, x, gamma, beta, eps, &mut y, &mut m, &mut is);
                (y, m, is)
            };
            let (_, mean, invstd) = fwd(&x, &gamma, &beta);
            let mut gx = vec![f32::NAN; x.len()];
            let (mut gg, mut gb) = (vec![f32::NAN; c], vec![f32::NAN; c]);
            batch_norm_backward(
                n, c, hw, &x, &r, &gamma, &mean, &invstd, &mut gx, &mut gg, &mut gb,
            );
            let what = format!("bn {n}x{c}x{hw}");
            fd_check(
                &x,
                &gx,
                1e-2,
                |xs| dot(&fwd(xs, &gamma, &beta).0, &r),
                &format!("{what} x"),
            );
            fd_check(
                &gamma,
                &gg,
                1e-2,
                |g| dot(&fwd(&x, g, &beta).0, &r),
                &format!("{what} gamma"),
            );
            fd_check(
                &beta,
                &gb,
                1e-2,
                |b| dot(&fwd(&x, &gamma, b).0, &r),
                &format!("{what} beta"),
            );
        }
    }

    #[test]
    fn backward_large_matches_naive_formula() {
        let mut rng = Lcg(16);
        let (n, c, hw) = (4, 8, 1024);
        let eps = 1e-5;
        let (x, gamma, beta) = inputs(&mut rng, n, c, hw);
        let gy = rng.vec(x.len());
        let mut y = vec![0.0; x.len()];
        let (mut mean, mut invstd) = (vec![0.0; c], vec![0.0; c]);
        batch_norm_forward_train(
            n,
            c,
            hw,
            &x,
            &gamma,
            &beta,
            eps,
            &mut y,
            &mut mean,
            &mut invstd,
        );
        let mut gx = vec![f32::NAN; x.len()];
        let (mut gg, mut gb) = (vec![f32::NAN; c], vec![f32::NAN; c]);
        batch_norm_backward(
            n, c, hw, &x, &gy, &gamma, &mean, &invstd, &mut gx, &mut gg, &mut gb,
        );
        let m = (n * hw) as f64;
        for ch in 0..c {
            let idx = |b: usize, i: usize| (b * c + ch) * hw + i;
            let (mu, is) = (mean[ch] as f64, invstd[ch] as f64);
            let (mut sg, mut sgx) = (0.0f64, 0.0f64);
            for b in 0..n {
                for i in 0..hw {
                    sg += gy[idx(b, i)] as f64;
                    sgx += gy[idx(b, i)] as f64 * (x[idx(b, i)] as f64 - mu) * is;
                }
            }
            assert!(
                close(gb[ch], sg, 1e-5) && close(gg[ch], sgx, 1e-5),
                "channel {ch} sums"
            );
            for b in 0..n {
                for i in 0..hw {
                    let xhat = (x[idx(b, i)] as f64 - mu) * is;
                    let want =
                        gamma[ch] as f64 * is * (gy[idx(b, i)] as f64 - sg / m - xhat * sgx / m);
                    assert!(
                        close(gx[idx(b, i)], want, 1e-5),
                        "gx {} vs {want}",
                        gx[idx(b, i)]
                    );
                }
            }
        }
    }
}
