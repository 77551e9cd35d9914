//! Helpers shared by the backend equivalence tests.

use nas_kernels::gpu::Gpu;
use std::sync::OnceLock;

/// The process's wgpu device, or None (with a message) where there is no adapter. With
/// `NAS_REQUIRE_WGPU=1` (set by .ci/run) a missing adapter fails the test instead.
#[allow(dead_code)]
pub fn gpu() -> Option<&'static Gpu> {
    static G: OnceLock<nas_kernels::Res<Gpu>> = OnceLock::new();
    // A kernel that reads a reused output buffer's old values fails here.
    nas_kernels::gpu::poison_freed_buffers();
    match G.get_or_init(Gpu::new) {
        Ok(g) => Some(g),
        Err(e) => {
            assert!(
                std::env::var_os("NAS_REQUIRE_WGPU").is_none(),
                "NAS_REQUIRE_WGPU is set: {e}"
            );
            // An adapter that is there but fails to open is a failure, not a skip.
            assert!(
                matches!(e, nas_kernels::KernelError::Unavailable(_)),
                "wgpu failed to open: {e}"
            );
            nas_kernels::report_skip(&format!("no wgpu adapter: {e}"));
            None
        }
    }
}

/// Reproducible values in [-1, 1) (xorshift64).
pub fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// Asserts `got` is within `tol` of `want`, relative to the largest reference magnitude.
pub fn close(got: &[f32], want: &[f32], tol: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let scale = want.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
    let err = got
        .iter()
        .zip(want)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        err <= tol * scale,
        "{what}: max error {err} (scale {scale})"
    );
}

/// A training batch norm of `[n, c, hw]` random input with a per-channel offset (so the
/// mean matters), its CPU forward and, for an output gradient, its CPU backward.
#[allow(dead_code)]
pub struct BnCase {
    pub x: Vec<f32>,
    pub gamma: Vec<f32>,
    pub beta: Vec<f32>,
    pub eps: f32,
    /// The CPU's output, batch mean and 1/std.
    pub y: Vec<f32>,
    pub mean: Vec<f32>,
    pub invstd: Vec<f32>,
    /// An output gradient and the CPU's input, gamma and beta gradients for it.
    pub g: Vec<f32>,
    pub gx: Vec<f32>,
    pub ggamma: Vec<f32>,
    pub gbeta: Vec<f32>,
}

#[allow(dead_code)]
pub fn bn_case(n: usize, c: usize, hw: usize, seed: u64) -> BnCase {
    use nas_kernels::cpu::norm;
    let x: Vec<f32> = random(n * c * hw, seed)
        .iter()
        .enumerate()
        .map(|(i, v)| v * 2.0 + ((i / hw) % c) as f32 * 0.5)
        .collect();
    let gamma: Vec<f32> = random(c, seed + 1).iter().map(|v| v + 1.5).collect();
    let beta = random(c, seed + 2);
    let eps = 1e-5;
    let (mut y, mut mean, mut invstd) = (vec![0.0; x.len()], vec![0.0; c], vec![0.0; c]);
    norm::batch_norm_forward_train(
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
    let g = random(x.len(), seed + 3);
    let (mut gx, mut ggamma, mut gbeta) = (vec![0.0; x.len()], vec![0.0; c], vec![0.0; c]);
    norm::batch_norm_backward(
        n,
        c,
        hw,
        &x,
        &g,
        &gamma,
        &mean,
        &invstd,
        &mut gx,
        &mut ggamma,
        &mut gbeta,
    );
    BnCase {
        x,
        gamma,
        beta,
        eps,
        y,
        mean,
        invstd,
        g,
        gx,
        ggamma,
        gbeta,
    }
}

/// One test per function of [`suite`], each handed the backend by the test file's
/// `with_device(f: impl FnOnce(&dyn Accel))`, which skips where there is no device.
#[allow(unused_macros)]
macro_rules! suite_tests {
    () => {
        suite_tests!(
            matmul,
            conv2d,
            conv2d_past_one_grid_row,
            long_k,
            long_direct_convs,
            im2col_past_a_binding,
            pooling,
            long_pooling_windows,
            batch_norm,
            log_softmax,
            weighted_sum,
            nll
        );
    };
    ($($name:ident),*) => {$(
        #[test]
        fn $name() {
            with_device(common::suite::$name);
        }
    )*};
}

/// One test per function of [`resident`], each handed the backend by the test file's
/// `with_resident(f: impl FnOnce(&dyn Resident))`, which skips where there is no device.
#[allow(unused_macros)]
macro_rules! resident_tests {
    () => {
        resident_tests!(
            optimisers_and_bias,
            elementwise,
            broadcasting_and_sums,
            kernel_embedding,
            concat_and_slice,
            permutes,
            batched_matmul,
            dropout_masks,
            bad_geometry,
            max_pool_ties_and_nans,
            batch_norm_on_the_device,
            long_reductions,
            long_channel_sums
        );
    };
    ($($name:ident),*) => {$(
        #[test]
        fn $name() {
            with_resident(common::resident::$name);
        }
    )*};
}

/// The [`Accel`](nas_kernels::accel::Accel) primitives against the CPU kernels, one
/// function per family, run by each backend's equivalence test file.
#[allow(dead_code)]
pub mod suite {
    use super::{close, random};
    use nas_kernels::accel::Accel;
    use nas_kernels::cpu::{conv, gemm, pool, softmax};

    /// Shapes inside one 64x64 tile and across several, with k tails, every transpose;
    /// and blocks of 8x8 whose last rows and columns are several but not all real.
    pub fn matmul(a: &dyn Accel) {
        for (m, n, k) in [
            (67, 45, 129),
            (130, 200, 70),
            (1, 1, 1),
            (13, 14, 9),
            (6, 21, 5),
        ] {
            let x = random(m * k, 3);
            let y = random(k * n, 4);
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let mut want = vec![0.0; m * n];
                gemm::sgemm(m, n, k, &x, ta, &y, tb, &mut want, false, false);
                let got = a.matmul(m, n, k, &x, ta, &y, tb).unwrap();
                close(
                    &got,
                    &want,
                    1e-4,
                    &format!("matmul {m}x{n}x{k} ta={ta} tb={tb}"),
                );
            }
        }
    }

    /// Plain, strided, padded, dilated, grouped and depthwise geometries, forward and
    /// both gradients (the direct kernels' per-image parts of the weight gradient, with
    /// two images, included).
    pub fn conv2d(a: &dyn Accel) {
        for (cin, cout, k, s, pad, d, groups) in [
            (3, 8, 3, 1, 1, 1, 1),
            (4, 6, 5, 2, 2, 1, 2),
            (8, 8, 3, 1, 2, 2, 8),
            (8, 8, 5, 2, 2, 1, 8),
            (6, 4, 1, 1, 0, 1, 1),
            (5, 7, 3, 2, 0, 1, 1),
            // Two output channels per input channel, unpadded depthwise, and a grouped
            // one at stride 1.
            (4, 8, 3, 1, 1, 1, 4),
            (8, 8, 3, 1, 0, 1, 8),
            (4, 6, 3, 1, 1, 1, 2),
        ] {
            let p = conv::Conv2d {
                n: 2,
                cin,
                h: 13,
                w: 11,
                cout,
                kh: k,
                kw: k,
                sh: s,
                sw: s,
                ph: pad,
                pw: pad,
                dh: d,
                dw: d,
                groups,
            };
            conv_matches(a, &p, 5, 1e-4);
        }
    }

    /// Convolution `p` forward and both gradients on `a` against the CPU, on random
    /// inputs from `seed` (`wtol` for the weight gradient, a sum over the whole batch).
    fn conv_matches(a: &dyn Accel, p: &conv::Conv2d, seed: u64, wtol: f32) {
        let x = random(p.n * p.cin * p.h * p.w, seed);
        let w = random(p.weight_len(), seed + 1);
        let mut want = vec![0.0; p.out_len()];
        conv::conv2d_forward(p, &x, &w, None, &mut want);
        close(
            &a.conv2d(p, &x, &w).unwrap(),
            &want,
            1e-4,
            &format!("conv {p:?}"),
        );
        let gy = random(p.out_len(), seed + 2);
        let mut gx = vec![0.0; x.len()];
        conv::conv2d_backward_input(p, &gy, &w, &mut gx);
        let got = a.conv2d_backward_input(p, &gy, &w).unwrap();
        close(&got, &gx, 1e-4, &format!("conv input grad {p:?}"));
        let mut gw = vec![0.0; w.len()];
        conv::conv2d_backward_weight(p, &x, &gy, &mut gw, None);
        let got = a.conv2d_backward_weight(p, &x, &gy).unwrap();
        close(&got, &gw, wtol, &format!("conv weight grad {p:?}"));
    }

    /// Depthwise convolutions whose grid does not fit one row of workgroups: a plane of
    /// more than 65,535 8x8 blocks, and more than 65,535 planes.
    pub fn conv2d_past_one_grid_row(a: &dyn Accel) {
        for (n, c, h, w, k) in [(1, 1, 2050, 2049, 3), (2, 33_000, 1, 1, 1)] {
            let p = conv::Conv2d {
                groups: c,
                ..conv::Conv2d::same(n, c, h, w, c, k)
            };
            conv_matches(a, &p, 11, 1e-3);
        }
    }

    /// Products over a k past llvmpipe's limit of 65,535 loop iterations per shader (one
    /// count for all its loops): a matmul with k = 70,000 (every transpose); an
    /// ungrouped convolution over a 300x300 plane, whose weight gradient reduces 90,000
    /// positions per image; and two images whose products each run over a k past the
    /// 16,384 of a matmul part (2,049 input channels of 3x3 taps forward, 16,400 output
    /// channels back to the input).
    pub fn long_k(a: &dyn Accel) {
        let (m, n, k) = (3, 10, 70_000);
        let x = random(m * k, 21);
        let y = random(k * n, 22);
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let mut want = vec![0.0; m * n];
            gemm::sgemm(m, n, k, &x, ta, &y, tb, &mut want, false, false);
            let got = a.matmul(m, n, k, &x, ta, &y, tb).unwrap();
            close(&got, &want, 1e-4, &format!("matmul k={k} ta={ta} tb={tb}"));
        }
        let p = conv::Conv2d::same(2, 2, 300, 300, 3, 3);
        conv_matches(a, &p, 23, 1e-4);
        for (cin, cout, side) in [(2_049, 2, 4), (1, 16_400, 2)] {
            let p = conv::Conv2d::same(2, cin, side, side, cout, 3);
            conv_matches(a, &p, 24, 1e-4);
        }
    }

    /// An ungrouped convolution whose batch's im2col matrix (8 images of 256 channels x
    /// 5x5 taps at 28x28: 153 MiB) is past a binding of Mesa's CPU driver (128 MiB) while
    /// its input and output are small: the wgpu backend takes the direct kernels for it
    /// (before, a device error that ended a one-shot search of the chain space at batch
    /// 8 on lavapipe).
    pub fn im2col_past_a_binding(a: &dyn Accel) {
        let p = conv::Conv2d::same(8, 256, 28, 28, 4, 5);
        conv_matches(a, &p, 41, 1e-4);
    }

    /// Convolutions that take the direct kernels with long loops per output: many input
    /// channels per group (forward), many output channels per group (input gradient),
    /// and an ungrouped one whose im2col matrix has more than 65,535 rows. Each output
    /// sums more than 65,535 products, past the loop count llvmpipe lets a shader run.
    pub fn long_direct_convs(a: &dyn Accel) {
        for (cin, cout, groups) in [(2_800, 2, 2), (2, 2_800, 2), (1_400, 2, 1)] {
            let p = conv::Conv2d {
                groups,
                ..conv::Conv2d::same(1, cin, 7, 7, cout, 7)
            };
            conv_matches(a, &p, 31, 1e-4);
        }
    }

    /// A `k`x`k` pooling with stride `s` and padding `pad` over 2x5 planes of 13x11.
    pub fn pool_geom(k: usize, s: usize, pad: usize) -> pool::Pool2d {
        pool::Pool2d {
            n: 2,
            c: 5,
            h: 13,
            w: 11,
            kh: k,
            kw: k,
            sh: s,
            sw: s,
            ph: pad,
            pw: pad,
        }
    }

    /// Max and average pooling (with and without padding in the divisor) and adaptive
    /// average pooling, forward and backward; max pooling's argmax must be identical.
    pub fn pooling(a: &dyn Accel) {
        for (k, s, pad) in [(2, 2, 0), (3, 1, 1), (3, 2, 1), (5, 2, 2)] {
            pool_matches(a, &pool_geom(k, s, pad), 7);
        }
        for (oh, ow) in [(1, 1), (4, 3), (5, 7)] {
            adaptive_matches(a, [2, 3, 13, 11], oh, ow, 12);
        }
    }

    /// Pooling windows and adaptive bins of more than 65,535 values, past the loop
    /// count llvmpipe lets a shader run: a 257x257 window, and planes of 300x300 to 1x1
    /// and 2x3.
    pub fn long_pooling_windows(a: &dyn Accel) {
        let p = pool::Pool2d {
            n: 1,
            c: 2,
            h: 260,
            w: 259,
            ..pool_geom(257, 1, 0)
        };
        pool_matches(a, &p, 8);
        for (oh, ow) in [(1, 1), (2, 3)] {
            adaptive_matches(a, [1, 2, 300, 300], oh, ow, 9);
        }
    }

    /// Max and average pooling `p` (average with and without padding in the divisor),
    /// forward and backward, against the CPU.
    fn pool_matches(a: &dyn Accel, p: &pool::Pool2d, seed: u64) {
        let what = format!("k{} s{} p{} on {}x{}", p.kh, p.sh, p.ph, p.h, p.w);
        let x = random(p.n * p.c * p.h * p.w, seed);
        let len = p.n * p.c * p.out_h() * p.out_w();
        let (mut y, mut arg) = (vec![0.0; len], vec![0u32; len]);
        pool::max_pool2d_forward(p, &x, &mut y, &mut arg);
        let (gy_, ga) = a.max_pool(p, &x).unwrap();
        close(&gy_, &y, 1e-6, &format!("max pool {what}"));
        assert_eq!(ga, arg, "max pool argmax {what}");
        let gy = random(len, seed + 4);
        let mut gx = vec![0.0; x.len()];
        pool::max_pool2d_backward(p, &gy, &arg, &mut gx);
        let got = a.max_pool_backward(p, &gy, &arg).unwrap();
        close(&got, &gx, 1e-5, &format!("max pool grad {what}"));
        for cip in [false, true] {
            let mut y = vec![0.0; len];
            pool::avg_pool2d_forward(p, cip, &x, &mut y);
            let got = a.avg_pool(p, cip, &x).unwrap();
            close(&got, &y, 1e-5, &format!("avg pool {what} cip={cip}"));
            let mut gx = vec![0.0; x.len()];
            pool::avg_pool2d_backward(p, cip, &gy, &mut gx);
            let got = a.avg_pool_backward(p, cip, &gy).unwrap();
            close(&got, &gx, 1e-5, &format!("avg pool grad {what} cip={cip}"));
        }
    }

    /// Adaptive average pooling of `[n, c, h, w]` to `oh x ow`, forward and backward,
    /// against the CPU.
    fn adaptive_matches(a: &dyn Accel, [n, c, h, w]: [usize; 4], oh: usize, ow: usize, seed: u64) {
        let what = format!("{h}x{w} to {oh}x{ow}");
        let x = random(n * c * h * w, seed);
        let mut y = vec![0.0; n * c * oh * ow];
        pool::adaptive_avg_pool2d_forward(n, c, h, w, oh, ow, &x, &mut y);
        let got = a.adaptive_avg_pool(n * c, h, w, oh, ow, &x).unwrap();
        close(&got, &y, 1e-5, &format!("adaptive pool {what}"));
        let gy = random(y.len(), seed + 1);
        let mut gx = vec![0.0; x.len()];
        pool::adaptive_avg_pool2d_backward(n, c, h, w, oh, ow, &gy, &mut gx);
        let got = a
            .adaptive_avg_pool_backward(n * c, h, w, oh, ow, &gy)
            .unwrap();
        close(&got, &gx, 1e-5, &format!("adaptive pool grad {what}"));
    }

    /// Training-mode batch norm and its backward (see [`super::bn_case`]).
    pub fn batch_norm(a: &dyn Accel) {
        for (n, c, hw) in [(4, 3, 100), (64, 16, 1024), (2, 70, 9)] {
            let k = super::bn_case(n, c, hw, 14);
            let what = format!("batch norm {n}x{c}x{hw}");
            let (gy_, gm, gi) = a
                .batch_norm_train(n, c, hw, &k.x, &k.gamma, &k.beta, k.eps)
                .unwrap();
            close(&gm, &k.mean, 1e-4, &format!("{what} mean"));
            close(&gi, &k.invstd, 1e-4, &format!("{what} invstd"));
            close(&gy_, &k.y, 1e-4, &format!("{what} output"));
            let (ax, ag, ab) = a
                .batch_norm_backward(n, c, hw, &k.x, &k.g, &k.gamma, &k.mean, &k.invstd)
                .unwrap();
            close(&ag, &k.ggamma, 1e-4, &format!("{what} gamma grad"));
            close(&ab, &k.gbeta, 1e-4, &format!("{what} beta grad"));
            close(&ax, &k.gx, 1e-3, &format!("{what} input grad"));
        }
    }

    pub fn log_softmax(a: &dyn Accel) {
        // Wide rows (a workgroup each) past 21,845 columns, where one invocation per row
        // would loop past llvmpipe's 65,535 iterations.
        for (rows, cols) in [(64, 10), (3, 1000), (5, 1500), (2, 30_000)] {
            let x: Vec<f32> = random(rows * cols, 8).iter().map(|v| v * 5.0).collect();
            let mut y = vec![0.0; rows * cols];
            softmax::log_softmax_forward(rows, cols, &x, &mut y);
            let got = a.log_softmax(rows, cols, &x).unwrap();
            close(&got, &y, 1e-4, &format!("log_softmax {rows}x{cols}"));
            let gy = random(rows * cols, 18);
            let mut gx = vec![0.0; rows * cols];
            softmax::log_softmax_backward(rows, cols, &y, &gy, &mut gx);
            let got = a.log_softmax_backward(rows, cols, &y, &gy).unwrap();
            close(&got, &gx, 1e-4, &format!("log_softmax grad {rows}x{cols}"));
        }
    }

    /// The mixed op's weighted sum and both its gradients, for one to eight candidates
    /// and lengths around the 64-lane and 256-thread blocks; mismatched arguments are
    /// errors.
    pub fn weighted_sum(a: &dyn Accel) {
        use nas_kernels::cpu::elementwise as ew;
        for (k, n) in [(1, 1), (2, 63), (5, 257), (8, 4099), (4, 70_001)] {
            let xs = random(k * n, 21 + k as u64);
            let w = random(k, 22);
            let gy = random(n, 23);
            let what = format!("weighted_sum k={k} n={n}");
            let parts: Vec<&[f32]> = xs.chunks(n).collect();
            let mut y = vec![0.0; n];
            ew::weighted_sum(&parts, &w, &mut y);
            close(&a.weighted_sum(k, &xs, &w).unwrap(), &y, 1e-5, &what);
            let (gx, gw) = a.weighted_sum_backward(k, &xs, &w, &gy).unwrap();
            let want_gx: Vec<f32> = w
                .iter()
                .flat_map(|wj| gy.iter().map(move |g| wj * g))
                .collect();
            close(&gx, &want_gx, 1e-6, &format!("{what} input grads"));
            let want_gw: Vec<f32> = parts.iter().map(|x| ew::dot(&gy, x)).collect();
            // A dot product of n terms in another order: relative to its size.
            close(&gw, &want_gw, 1e-4, &format!("{what} weight grads"));
        }
        assert!(a.weighted_sum(3, &[0.0; 10], &[1.0; 3]).is_err());
        assert!(a
            .weighted_sum_backward(2, &[0.0; 10], &[1.0; 2], &[0.0; 4])
            .is_err());
    }

    /// The mean NLL and its gradient; a target past the classes is an error, not a read
    /// out of bounds.
    pub fn nll(a: &dyn Accel) {
        for (rows, cols) in [(1, 2), (64, 10), (300, 7)] {
            let logp = random(rows * cols, 9);
            let t: Vec<u32> = (0..rows).map(|r| ((r * 7 + 3) % cols) as u32).collect();
            let what = format!("nll {rows}x{cols}");
            let want = softmax::nll_loss_forward(rows, cols, &logp, &t);
            close(
                &[a.nll(rows, cols, &logp, &t).unwrap()],
                &[want],
                1e-5,
                &what,
            );
            let mut gx = vec![0.0; rows * cols];
            softmax::nll_loss_backward(rows, cols, &t, 0.75, &mut gx);
            let got = a.nll_backward(rows, cols, &t, 0.75).unwrap();
            close(&got, &gx, 1e-6, &format!("{what} grad"));
        }
        // More rows than one lane of a workgroup may loop over on llvmpipe (65,535 times
        // 64); multiples of 1/4, so every order of summation is exact.
        let (rows, cols) = (4_300_000, 2);
        let logp: Vec<f32> = (0..rows * cols).map(|i| -((i % 5) as f32) * 0.25).collect();
        let t: Vec<u32> = (0..rows).map(|r| (r % cols) as u32).collect();
        let sum: f64 = t
            .iter()
            .enumerate()
            .map(|(r, &c)| -logp[r * cols + c as usize] as f64)
            .sum();
        let got = a.nll(rows, cols, &logp, &t).unwrap();
        close(
            &[got],
            &[(sum / rows as f64) as f32],
            1e-6,
            "nll of 4.3M rows",
        );
        let e = a.nll(2, 3, &[0.0; 6], &[1, 3]).unwrap_err();
        assert!(
            matches!(&e, nas_kernels::KernelError::Invalid(m) if m.contains("target 3")),
            "{e}"
        );
        assert!(a.nll_backward(2, 3, &[0], 1.0).is_err());
    }
}

/// The [`Resident`] primitives (device buffers in and out) that the [`suite`] does not
/// reach through the host-slice boundary, against references; run by each backend's
/// equivalence test file.
#[allow(dead_code)]
pub mod resident {
    use super::{close, random};
    use nas_kernels::accel::{Binary, DevBuf, Resident, Unary};

    fn up(r: &dyn Resident, x: &[f32]) -> DevBuf {
        r.upload(x).unwrap()
    }

    /// One SGD step by `nas-core`'s `Sgd` formulas (PyTorch's): the new weights and
    /// momentum buffer.
    #[allow(clippy::too_many_arguments)]
    pub fn sgd_reference(
        w0: &[f32],
        grad: &[f32],
        v0: &[f32],
        lr: f32,
        mu: f32,
        wd: f32,
        nesterov: bool,
        first: bool,
    ) -> (Vec<f32>, Vec<f32>) {
        let (mut ww, mut wv) = (w0.to_vec(), v0.to_vec());
        for ((w, g), v) in ww.iter_mut().zip(grad).zip(wv.iter_mut()) {
            let d = g + wd * *w;
            if mu == 0.0 {
                *w -= lr * d;
                continue;
            }
            *v = if first { d } else { mu * *v + d };
            *w -= lr * if nesterov { d + mu * *v } else { *v };
        }
        (ww, wv)
    }

    /// One Adam step `t` by `nas-core`'s `Adam` formulas (AdamW when `decoupled`), in place.
    pub fn adam_reference(
        (w, m, v): (&mut [f32], &mut [f32], &mut [f32]),
        grad: &[f32],
        lr: f32,
        (b1, b2, eps): (f32, f32, f32),
        wd: f32,
        decoupled: bool,
        t: i32,
    ) {
        let (c1, c2) = (1.0 - b1.powi(t), 1.0 - b2.powi(t));
        for i in 0..w.len() {
            let mut gi = grad[i];
            if decoupled {
                w[i] -= lr * wd * w[i];
            } else {
                gi += wd * w[i];
            }
            m[i] = b1 * m[i] + (1.0 - b1) * gi;
            v[i] = b2 * v[i] + (1.0 - b2) * gi * gi;
            w[i] -= lr * (m[i] / c1) / ((v[i] / c2).sqrt() + eps);
        }
    }

    /// The optimiser steps (a first SGD step starts its momentum buffer on
    /// the device), the ReLU gradient, per-channel bias and its gradient.
    pub fn optimisers_and_bias(r: &dyn Resident) {
        let n = 1000;
        let (w0, grad, v0) = (random(n, 30), random(n, 31), random(n, 32));
        let (wd_, gd) = (up(r, &w0), up(r, &grad));
        for (mu, wd, nesterov, first) in [
            (0.0, 0.0, false, false),
            (0.9, 3e-4, false, true),
            (0.9, 3e-4, false, false),
            (0.9, 1e-3, true, false),
        ] {
            let lr = 0.05f32;
            let (ww, wv) = sgd_reference(&w0, &grad, &v0, lr, mu, wd, nesterov, first);
            let v = (!first).then(|| up(r, &v0));
            let (w, v) = r.sgd(&wd_, &gd, v.as_ref(), lr, mu, wd, nesterov).unwrap();
            let what = format!("resident sgd mu={mu} wd={wd} nesterov={nesterov} first={first}");
            close(&w.to_vec().unwrap(), &ww, 1e-6, &what);
            if mu != 0.0 {
                close(&v.to_vec().unwrap(), &wv, 1e-6, &what);
            }
        }
        let m0: Vec<f32> = random(n, 33).iter().map(|v| v * 0.1).collect();
        let s0: Vec<f32> = random(n, 34).iter().map(|v| v.abs() * 0.01).collect();
        for (decoupled, t) in [(false, 1), (true, 5), (true, 7)] {
            let (lr, b1, b2, eps, wd) = (1e-3f32, 0.9f32, 0.999f32, 1e-8f32, 0.01f32);
            let (mut ww, mut wm, mut wv) = (w0.clone(), m0.clone(), s0.clone());
            adam_reference(
                (&mut ww, &mut wm, &mut wv),
                &grad,
                lr,
                (b1, b2, eps),
                wd,
                decoupled,
                t,
            );
            let (m, v) = (up(r, &m0), up(r, &s0));
            let (w, m, v) = r
                .adam(&wd_, &gd, &m, &v, lr, (b1, b2, eps), wd, decoupled, t)
                .unwrap();
            let what = format!("resident adam decoupled={decoupled} t={t}");
            close(&w.to_vec().unwrap(), &ww, 1e-5, &what);
            close(&m.to_vec().unwrap(), &wm, 1e-5, &what);
            close(&v.to_vec().unwrap(), &wv, 1e-5, &what);
        }
        // ReLU gradient: the upstream gradient where the output is positive.
        let y: Vec<f32> = random(n, 35).iter().map(|v| v.max(0.0)).collect();
        let want: Vec<f32> = grad
            .iter()
            .zip(&y)
            .map(|(g, y)| if *y > 0.0 { *g } else { 0.0 })
            .collect();
        let got = r.binary(Binary::ReluGrad, &gd, &up(r, &y)).unwrap();
        close(&got.to_vec().unwrap(), &want, 0.0, "relu gradient");
        // Sigmoid and tanh gradients from their outputs (in (0, 1) and (-1, 1)).
        let s: Vec<f32> = random(n, 38)
            .iter()
            .map(|v| 0.5 + 0.45 * v.tanh())
            .collect();
        let t: Vec<f32> = random(n, 39).iter().map(|v| 0.95 * v.tanh()).collect();
        let rules: [(Binary, &[f32], fn(f32, f32) -> f32); 2] = [
            (Binary::SigmoidGrad, &s, |g, y| g * y * (1.0 - y)),
            (Binary::TanhGrad, &t, |g, y| g * (1.0 - y * y)),
        ];
        for (op, y, f) in rules {
            let want: Vec<f32> = grad.iter().zip(y).map(|(g, y)| f(*g, *y)).collect();
            let got = r.binary(op, &gd, &up(r, y)).unwrap();
            close(&got.to_vec().unwrap(), &want, 1e-6, &format!("{op:?}"));
            let (sa, sb) = ([n], [1, n]);
            assert!(r.binary_broadcast(op, &gd, &sa, &up(r, y), &sb).is_err());
        }
        // A bias per channel of [3, 7, 5] and its gradient (sums over batch and plane),
        // and per column of [3, 7] rows (a linear layer's), and of long planes.
        for (b, c, plane) in [(3, 7, 5), (3, 7, 1), (2, 3, 20_000)] {
            let x = random(b * c * plane, 36);
            let bias = random(c, 37);
            let want: Vec<f32> = (0..x.len()).map(|i| x[i] + bias[(i / plane) % c]).collect();
            let got = r.add_channel(c, plane, &up(r, &x), &up(r, &bias)).unwrap();
            close(
                &got.to_vec().unwrap(),
                &want,
                1e-6,
                &format!("add_channel {plane}"),
            );
            let mut sums = vec![0.0f32; c];
            for (i, v) in x.iter().enumerate() {
                sums[(i / plane) % c] += v;
            }
            let got = r.channel_sum(b, c, plane, &up(r, &x)).unwrap();
            close(
                &got.to_vec().unwrap(),
                &sums,
                1e-4,
                &format!("channel_sum {plane}"),
            );
        }
        let (c, plane) = (7, 5);
        let (x, bias) = (random(3 * c * plane, 36), random(c, 37));
        assert!(r
            .add_channel(c, plane, &up(r, &x[1..]), &up(r, &bias))
            .is_err());
    }

    /// Every elementwise map and same-shape operation, and zeros, on the device.
    pub fn elementwise(r: &dyn Resident) {
        let x = random(5_003, 40);
        let y: Vec<f32> = random(5_003, 41).iter().map(|v| v + 3.0).collect();
        let (dx, dy) = (up(r, &x), up(r, &y));
        let unary: [(Unary, fn(f32) -> f32, f32); 6] = [
            (Unary::Relu, |v| v.max(0.0), 0.0),
            (Unary::Exp, f32::exp, 1e-5),
            (Unary::Log, |v| (v + 3.0).ln(), 1e-5),
            (Unary::Sigmoid, |v| 1.0 / (1.0 + (-v).exp()), 1e-5),
            (Unary::Tanh, f32::tanh, 1e-5),
            (Unary::Affine(1.5, -0.25), |v| v * 1.5 - 0.25, 1e-6),
        ];
        for (op, f, tol) in unary {
            // Log reads the positive operand.
            let (src, inp) = match op {
                Unary::Log => (&dy, &y),
                _ => (&dx, &x),
            };
            let want: Vec<f32> = match op {
                Unary::Log => inp.iter().map(|v| v.ln()).collect(),
                _ => inp.iter().map(|v| f(*v)).collect(),
            };
            let got = r.unary(op, src).unwrap().to_vec().unwrap();
            close(&got, &want, tol.max(1e-6), &format!("{op:?}"));
        }
        let binary: [(Binary, fn(f32, f32) -> f32); 4] = [
            (Binary::Add, |a, b| a + b),
            (Binary::Sub, |a, b| a - b),
            (Binary::Mul, |a, b| a * b),
            (Binary::Div, |a, b| a / b),
        ];
        for (op, f) in binary {
            let want: Vec<f32> = x.iter().zip(&y).map(|(a, b)| f(*a, *b)).collect();
            let got = r.binary(op, &dx, &dy).unwrap().to_vec().unwrap();
            close(&got, &want, 1e-6, &format!("{op:?}"));
        }
        assert!(r.binary(Binary::Add, &dx, &up(r, &y[1..])).is_err());
        // Zeros made on the device read as zeros, also in memory a freed result held.
        drop(r.unary(Unary::Affine(0.0, 7.0), &dx).unwrap());
        let z = r.zeros(5_003).unwrap();
        assert_eq!((z.len(), z.place()), (5_003, r.place()));
        assert!(z.to_vec().unwrap().iter().all(|&v| v == 0.0), "zeros");
    }

    /// Broadcasting binary ops (a per-channel scale of NCHW, an outer product, a scalar,
    /// a lower-rank operand on either side) against the CPU's, and sums down to every
    /// kind of broadcast shape against the CPU's gradient fold, at up to 8 dimensions that
    /// merge into 6 or fewer; shapes that do not broadcast, 7 dimensions that stay apart
    /// and wrong lengths are errors.
    pub fn broadcasting_and_sums(r: &dyn Resident) {
        use nas_kernels::cpu::elementwise as ew;
        let cases: [(&[usize], &[usize]); 10] = [
            // Eight dimensions that merge into three (1s dropped, and two broadcast
            // alike), and seven into six.
            (&[2, 1, 3, 1, 1, 2, 2, 3], &[2, 1, 3, 1, 1, 1, 1, 3]),
            (&[2, 1, 2, 1, 2, 2, 2], &[1, 2, 1, 2, 1, 2, 2]),
            (&[2, 3, 4, 5], &[1, 3, 1, 1]),
            (&[1, 3, 1, 1], &[2, 3, 4, 5]),
            (&[3, 1], &[1, 4]),
            (&[5], &[2, 3, 5]),
            (&[1], &[4, 6]),
            (&[2, 1, 4, 1], &[3, 1, 7]),
            (&[2, 1, 3, 1, 2], &[4, 1, 1, 2]),
            (&[3, 1, 2, 1, 2, 1], &[1, 2, 1, 3, 1, 4]),
        ];
        let ops: [(Binary, fn(f32, f32) -> f32); 4] = [
            (Binary::Add, |a, b| a + b),
            (Binary::Sub, |a, b| a - b),
            (Binary::Mul, |a, b| a * b),
            (Binary::Div, |a, b| a / b),
        ];
        for (seed, (sa, sb)) in cases.into_iter().enumerate() {
            let a = random(sa.iter().product(), 90 + seed as u64);
            let b: Vec<f32> = random(sb.iter().product(), 120 + seed as u64)
                .iter()
                .map(|v| v + 3.0)
                .collect();
            let sy = ew::broadcast_shape(sa, sb).unwrap();
            for (op, f) in ops {
                let mut want = vec![0.0; sy.iter().product()];
                ew::binary(&a, sa, &b, sb, &mut want, f);
                let got = r
                    .binary_broadcast(op, &up(r, &a), sa, &up(r, &b), sb)
                    .unwrap();
                close(
                    &got.to_vec().unwrap(),
                    &want,
                    1e-6,
                    &format!("{op:?} {sa:?} {sb:?}"),
                );
            }
        }
        let sums: [(&[usize], &[usize]); 12] = [
            (&[2, 2, 1, 3, 1, 2, 2, 2], &[2, 2, 1, 3, 1, 1, 1, 2]),
            (&[2, 2, 2, 2, 2, 2, 2], &[2, 1, 2, 1, 2, 1, 1]),
            (&[2, 3, 4, 5], &[1, 3, 1, 1]),
            (&[2, 3, 4, 5], &[3, 1, 1]),
            (&[2, 3, 4, 5], &[1]),
            (&[2, 3, 4, 5], &[2, 1, 4, 1]),
            (&[2, 3, 4, 5], &[5]),
            (&[2, 3, 4, 5], &[2, 3, 4, 5]),
            (&[2, 3, 4, 5], &[]),
            (&[2, 3, 1, 2, 2, 3], &[1, 3, 1, 1, 2, 1]),
            (&[2, 3, 1, 2, 2, 3], &[2, 1, 1, 2, 1, 3]),
            (&[3, 2, 2, 1, 2], &[2, 1, 1, 1]),
        ];
        for (seed, (sy, sx)) in sums.into_iter().enumerate() {
            let g = random(sy.iter().product(), 150 + seed as u64);
            sum_matches(r, &g, sy, sx, 1e-5);
        }
        let (a, b) = (up(r, &random(6, 1)), up(r, &random(4, 2)));
        assert!(r
            .binary_broadcast(Binary::Add, &a, &[2, 3], &b, &[4])
            .is_err());
        assert!(r
            .binary_broadcast(Binary::Add, &a, &[6], &b, &[2, 2])
            .is_err());
        // Past 6 dimensions: 7 that broadcast each differently from the next.
        let (odd, even) = (up(r, &random(16, 3)), up(r, &random(8, 4)));
        let (so, se) = ([2, 1, 2, 1, 2, 1, 2], [1, 2, 1, 2, 1, 2, 1]);
        assert!(r
            .binary_broadcast(Binary::Add, &odd, &so, &even, &se)
            .is_err());
        let all = up(r, &random(128, 5));
        assert!(r.reduce_to(&all, &[2; 7], &so).is_err());
        assert!(r
            .binary_broadcast(Binary::ReluGrad, &a, &[6], &a, &[6])
            .is_err());
        assert!(r.reduce_to(&a, &[2, 3], &[2, 1, 1]).is_err());
        assert!(r.reduce_to(&a, &[2, 3], &[3, 3]).is_err());
        assert!(r.reduce_to(&a, &[2, 2], &[1]).is_err());
    }

    /// Sums long enough to pass llvmpipe's limit of 65,535 loop iterations per shader:
    /// a per-channel gradient of a [64, 16, 32, 32] batch (65,536 values per channel), a
    /// whole tensor of 2^20, and sums in several parts along either axis; and short ones
    /// into many outputs, beside them. The values are multiples of 1/4 whose sums stay
    /// exact in f32, so any order of summation gives the CPU's answer.
    pub fn long_reductions(r: &dyn Resident) {
        let cases: [(&[usize], &[usize]); 7] = [
            (&[64, 16, 32, 32], &[1, 16, 1, 1]),
            (&[1 << 20], &[1]),
            (&[70_000], &[]),
            (&[3, 70_001], &[3, 1]),
            (&[70_001, 3], &[1, 3]),
            (&[300, 700], &[1, 700]),
            (&[20, 255, 3], &[20, 1, 3]),
        ];
        for (sy, sx) in cases {
            let g: Vec<f32> = (0..sy.iter().product::<usize>())
                .map(|i| 1.0 + (i % 7) as f32 * 0.25)
                .collect();
            sum_matches(r, &g, sy, sx, 1e-7);
        }
    }

    /// `g` (shape `sy`) summed down to `sx` on `r` against the CPU's gradient fold.
    fn sum_matches(r: &dyn Resident, g: &[f32], sy: &[usize], sx: &[usize], tol: f32) {
        let mut want = vec![0.0; sx.iter().product()];
        nas_kernels::cpu::elementwise::acc_sum_to(g, sy, &mut want, sx);
        let got = r.reduce_to(&up(r, g), sy, sx).unwrap();
        close(
            &got.to_vec().unwrap(),
            &want,
            tol,
            &format!("sum of {sy:?} to {sx:?}"),
        );
    }

    /// Per-channel sums over more values than 64 lanes cover in 65,535 iterations each
    /// (4,300,000 per channel): a bias's gradient, batch norm's statistics and gradients,
    /// and a mixing weight's gradient.
    pub fn long_channel_sums(r: &dyn Resident) {
        let (c, plane) = (2, 4_300_000);
        // Multiples of 1/4 summing below 2^22: exact in f32 in any order.
        let g: Vec<f32> = (0..c * plane).map(|i| 0.25 * (1 + i % 2) as f32).collect();
        let want: Vec<f32> = (0..c)
            .map(|ch| g[ch * plane..(ch + 1) * plane].iter().sum())
            .collect();
        let got = r.channel_sum(1, c, plane, &up(r, &g)).unwrap();
        close(&got.to_vec().unwrap(), &want, 0.0, "channel sums");
        let k = super::bn_case(1, c, plane, 80);
        let (dx, dg, db) = (up(r, &k.x), up(r, &k.gamma), up(r, &k.beta));
        let (_, gm, gi) = r
            .batch_norm_train(1, c, plane, &dx, &dg, &db, k.eps)
            .unwrap();
        close(&gm.to_vec().unwrap(), &k.mean, 1e-4, "batch mean");
        close(&gi.to_vec().unwrap(), &k.invstd, 1e-4, "batch 1/std");
        let (_, dgg, dgb) = r
            .batch_norm_backward(1, c, plane, &dx, &up(r, &k.g), &dg, &gm, &gi)
            .unwrap();
        close(&dgg.to_vec().unwrap(), &k.ggamma, 1e-3, "gamma gradient");
        close(&dgb.to_vec().unwrap(), &k.gbeta, 1e-3, "beta gradient");
        // A ramp along each channel, so that the parts' means differ and combining them
        // takes their counts and deviations; against f64 sums.
        let ramp: Vec<f32> = (0..c * plane)
            .map(|i| 3.0 * (i % plane) as f32 / plane as f32 + (i / plane) as f32)
            .collect();
        let (one, zero) = (up(r, &vec![1.0; c]), up(r, &vec![0.0; c]));
        let (_, gm, gi) = r
            .batch_norm_train(1, c, plane, &up(r, &ramp), &one, &zero, 1e-5)
            .unwrap();
        let (mut mean, mut invstd) = (vec![], vec![]);
        for ch in ramp.chunks(plane) {
            let m = ch.iter().map(|&v| v as f64).sum::<f64>() / plane as f64;
            let v = ch.iter().map(|&v| (v as f64 - m).powi(2)).sum::<f64>() / plane as f64;
            mean.push(m as f32);
            invstd.push((1.0 / (v + 1e-5).sqrt()) as f32);
        }
        close(&gm.to_vec().unwrap(), &mean, 1e-5, "ramp mean");
        close(&gi.to_vec().unwrap(), &invstd, 1e-4, "ramp 1/std");
        let xs = [up(r, &g[..plane]), up(r, &g[plane..])];
        let ones = vec![1.0; plane];
        let got = r.weighted_sum_backward_weight(&xs, &up(r, &ones)).unwrap();
        close(&got, &want, 0.0, "mixing-weight gradient");
    }

    /// Kernels written at a larger size (dilated or not, 1x1 included) and the gradient
    /// read back, against host loops; taps outside the large plane and wrong lengths are
    /// errors.
    pub fn kernel_embedding(r: &dyn Resident) {
        use nas_kernels::accel::Embed;
        for (planes, k, size, dil) in [
            (6, 3, 5, 1),
            (4, 3, 5, 2),
            (3, 5, 5, 1),
            (2, 1, 7, 1),
            (5, 3, 9, 3),
        ] {
            let off = (size - (dil * (k - 1) + 1)) / 2;
            let e = Embed {
                planes,
                k,
                size,
                dil,
                off,
            };
            let at = |p: usize, a: usize, b: usize| {
                p * size * size + (off + a * dil) * size + off + b * dil
            };
            let x = random(planes * k * k, 160);
            let g = random(planes * size * size, 161);
            let (mut big, mut back) = (vec![0.0; g.len()], vec![0.0; x.len()]);
            for p in 0..planes {
                for a in 0..k {
                    for b in 0..k {
                        big[at(p, a, b)] = x[(p * k + a) * k + b];
                        back[(p * k + a) * k + b] = g[at(p, a, b)];
                    }
                }
            }
            let what = format!("{e:?}");
            let got = r.embed_kernel(&e, &up(r, &x)).unwrap();
            close(&got.to_vec().unwrap(), &big, 1e-7, &what);
            let got = r.embed_kernel_backward(&e, &up(r, &g)).unwrap();
            close(&got.to_vec().unwrap(), &back, 1e-7, &what);
        }
        let outside = Embed {
            planes: 1,
            k: 3,
            size: 4,
            dil: 2,
            off: 0,
        };
        assert!(r.embed_kernel(&outside, &up(r, &random(9, 1))).is_err());
        let e = Embed { size: 5, ..outside };
        assert!(r.embed_kernel(&e, &up(r, &random(9, 1))).is_ok());
        assert!(r.embed_kernel(&e, &up(r, &random(8, 1))).is_err());
        assert!(r.embed_kernel_backward(&e, &up(r, &random(24, 1))).is_err());
        // Sizes whose products wrap around, and a zero dilation, are errors too.
        let huge = Embed {
            planes: usize::MAX / 4 + 1,
            ..e
        };
        assert!(r.embed_kernel(&huge, &up(r, &random(9, 1))).is_err());
        let far = Embed {
            off: usize::MAX - 1,
            ..e
        };
        assert!(r.embed_kernel(&far, &up(r, &random(9, 1))).is_err());
        let flat = Embed { dil: 0, ..e };
        assert!(r.embed_kernel(&flat, &up(r, &random(9, 1))).is_err());
    }

    /// Concatenation along a middle axis, slicing and a slice's gradient.
    pub fn concat_and_slice(r: &dyn Resident) {
        let (outer, inner) = (3, 5);
        let lens = [2, 4, 1];
        let parts: Vec<Vec<f32>> = lens
            .iter()
            .enumerate()
            .map(|(i, l)| random(outer * l * inner, 50 + i as u64))
            .collect();
        let total: usize = lens.iter().sum();
        let mut want = Vec::new();
        for o in 0..outer {
            for (p, l) in parts.iter().zip(lens) {
                want.extend_from_slice(&p[o * l * inner..(o + 1) * l * inner]);
            }
        }
        let bufs: Vec<(DevBuf, usize)> =
            parts.iter().zip(lens).map(|(p, l)| (up(r, p), l)).collect();
        let cat = r.concat_axis(outer, inner, &bufs).unwrap();
        close(&cat.to_vec().unwrap(), &want, 0.0, "concat_axis");
        // The middle part back out of the concatenation.
        let got = r.slice_axis(outer, total, inner, 2, 4, &cat).unwrap();
        close(&got.to_vec().unwrap(), &parts[1], 0.0, "slice_axis");
        // Its gradient: the part in place, zeros elsewhere.
        let g = r
            .unslice_axis(outer, total, inner, 2, 4, &up(r, &parts[1]))
            .unwrap();
        let mut want = vec![0.0; outer * total * inner];
        for o in 0..outer {
            let at = (o * total + 2) * inner;
            want[at..at + 4 * inner].copy_from_slice(&parts[1][o * 4 * inner..(o + 1) * 4 * inner]);
        }
        close(&g.to_vec().unwrap(), &want, 0.0, "unslice_axis");
        assert!(r.slice_axis(outer, total, inner, 5, 4, &cat).is_err());
    }

    /// Dropout masks bit for bit the CPU reference's (several probabilities and seeds, an
    /// odd length past one grid row of workgroups, none), all dropped at p = 1, and
    /// about p of them dropped.
    pub fn dropout_masks(r: &dyn Resident) {
        use nas_kernels::cpu::random::{dropout_mask, Dropout};
        for (len, p, seed) in [
            (4_194_305, 0.5f32, 7u64),
            (1_000, 0.1, u64::MAX),
            (77, 0.9, 1 << 40),
            (33, 1.0, 3),
            (0, 0.5, 1),
        ] {
            let d = Dropout::new(p, seed).unwrap();
            let mut want = vec![0.0; len];
            dropout_mask(&d, &mut want);
            let got = r.dropout_mask(len, &d).unwrap().to_vec().unwrap();
            close(&got, &want, 0.0, &format!("dropout mask of {len} at p {p}"));
            if len > 1_000_000 {
                let dropped = got.iter().filter(|&&v| v == 0.0).count() as f64 / len as f64;
                assert!((dropped - p as f64).abs() < 0.002, "dropped {dropped}");
            }
        }
    }

    /// Batches of products, each matrix of its own operands (every transpose, a k past
    /// one 16,384 part, odd tiles, one product and none, more products and more row
    /// tiles than a grid dimension holds), against one CPU product per matrix; operands
    /// one matrix short are errors.
    pub fn batched_matmul(r: &dyn Resident) {
        use nas_kernels::cpu::gemm;
        for (batch, m, n, k) in [
            (3, 5, 7, 4),
            (2, 17, 9, 33),
            (1, 6, 6, 6),
            (4, 3, 2, 16_500),
            (0, 4, 4, 4),
            // More products than a grid dimension holds (65,535), and more rows than
            // 65,535 tiles of 16.
            (70_000, 2, 3, 2),
            (1, 1_100_000, 1, 2),
        ] {
            let a = random(batch * m * k, 80);
            let b = random(batch * k * n, 81);
            let (da, db) = (up(r, &a), up(r, &b));
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let mut want = vec![0.0; batch * m * n];
                for i in 0..batch {
                    let (ai, bi) = (&a[i * m * k..][..m * k], &b[i * k * n..][..k * n]);
                    let yi = &mut want[i * m * n..][..m * n];
                    gemm::sgemm(m, n, k, ai, ta, bi, tb, yi, false, false);
                }
                let what = format!("{batch} products {m}x{n}x{k} ta={ta} tb={tb}");
                let y = r.matmul_batched(batch, m, n, k, &da, ta, &db, tb).unwrap();
                close(&y.to_vec().unwrap(), &want, 1e-4, &what);
            }
        }
        // Three products of [2, 2] x [2, 3]: 12 and 18 values.
        let (a, b) = (up(r, &random(12, 82)), up(r, &random(18, 83)));
        let (a_short, b_short) = (up(r, &random(8, 84)), up(r, &random(12, 85)));
        assert!(r.matmul_batched(3, 2, 3, 2, &a, false, &b, false).is_ok());
        assert!(r
            .matmul_batched(3, 2, 3, 2, &a_short, false, &b, false)
            .is_err());
        assert!(r
            .matmul_batched(3, 2, 3, 2, &a, false, &b_short, false)
            .is_err());
    }

    /// Permutes of 1 to 6 axes, and of 7 and 8 that merge into fewer, against the CPU's,
    /// each undone by its inverse; a `perm` that is not an order of the axes, 7 axes that
    /// stay apart and a wrong length are errors.
    pub fn permutes(r: &dyn Resident) {
        use nas_kernels::cpu::shape::permute;
        for (shape, perm) in [
            (vec![7], vec![0]),
            (vec![3, 5], vec![1, 0]),
            (vec![2, 3, 4], vec![2, 0, 1]),
            (vec![2, 3, 4, 5], vec![0, 2, 3, 1]),
            (vec![2, 1, 3, 2, 4], vec![4, 2, 0, 3, 1]),
            (vec![2, 3, 1, 2, 3, 2], vec![5, 3, 1, 0, 4, 2]),
            // Eight axes: three runs that stay adjacent, axes of size 1 among them.
            (vec![2, 1, 3, 2, 1, 2, 2, 3], vec![5, 6, 7, 0, 1, 2, 3, 4]),
            (vec![2, 3, 2, 2, 3, 2, 2], vec![4, 5, 6, 2, 3, 0, 1]),
        ] {
            let n = shape.iter().product();
            let x = random(n, 70);
            let mut want = vec![0.0; n];
            permute(&x, &shape, &perm, &mut want);
            let what = format!("permute {shape:?} by {perm:?}");
            let y = r.permute(&shape, &perm, &up(r, &x)).unwrap();
            close(&y.to_vec().unwrap(), &want, 0.0, &what);
            let mut inv = vec![0; perm.len()];
            for (i, &p) in perm.iter().enumerate() {
                inv[p] = i;
            }
            let out: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
            let back = r.permute(&out, &inv, &y).unwrap();
            close(&back.to_vec().unwrap(), &x, 0.0, &format!("{what}, undone"));
        }
        let x = up(r, &random(24, 71));
        assert!(r.permute(&[2, 3, 4], &[0, 0, 1], &x).is_err());
        assert!(r.permute(&[2, 3, 4], &[0, 1, 3], &x).is_err());
        assert!(r.permute(&[2, 3, 4], &[0, 1], &x).is_err());
        assert!(r.permute(&[2, 3, 5], &[0, 1, 2], &x).is_err());
        // Seven axes that stay apart; eight that merge into fewer run (below).
        let all = up(r, &random(128, 72));
        assert!(r.permute(&[2; 7], &[6, 5, 4, 3, 2, 1, 0], &all).is_err());
    }

    /// Max pooling where the CPU's rules decide: windows of ties (the first maximum in
    /// row-major order wins), planes of -inf (the window's first element), and NaNs (a
    /// window holding one gives NaN, at its last NaN), with stride 1 and 2, padding and
    /// the 2x2 fast path; the argmax and the gradient it routes are the CPU's exactly.
    pub fn max_pool_ties_and_nans(r: &dyn Resident) {
        use nas_kernels::cpu::pool;
        let (n, c, h, w) = (2, 5, 13, 11);
        let x: Vec<f32> = (0..n * c * h * w)
            .map(|i| {
                let plane = i / (h * w);
                match (i * 7 + i / 5) % 5 {
                    _ if plane == 3 => f32::NEG_INFINITY,
                    0 if plane % 2 == 0 => f32::NAN,
                    0 | 1 => f32::NEG_INFINITY,
                    k => (k % 2) as f32,
                }
            })
            .collect();
        for (k, s, pad) in [(2, 2, 0), (3, 1, 1), (3, 2, 1), (5, 2, 2)] {
            let p = super::suite::pool_geom(k, s, pad);
            let what = format!("k{k} s{s} p{pad}");
            let len = n * c * p.out_h() * p.out_w();
            let (mut y, mut arg) = (vec![0.0; len], vec![0u32; len]);
            pool::max_pool2d_forward(&p, &x, &mut y, &mut arg);
            assert!(y.iter().any(|v| v.is_nan()) && y.iter().any(|v| *v == f32::NEG_INFINITY));
            let (gy_, ga) = r.max_pool(&p, &up(r, &x)).unwrap();
            let got = gy_.to_vec().unwrap();
            for (o, (g, want)) in got.iter().zip(&y).enumerate() {
                assert!(
                    g == want || (g.is_nan() && want.is_nan()),
                    "max pool {what}: output {o} is {g}, the CPU's {want}"
                );
            }
            assert_eq!(ga.to_u32_vec().unwrap(), arg, "max pool argmax {what}");
            let gy = random(len, 80);
            let mut gx = vec![0.0; x.len()];
            pool::max_pool2d_backward(&p, &gy, &arg, &mut gx);
            let got = r.max_pool_backward(&p, &up(r, &gy), &ga).unwrap();
            close(
                &got.to_vec().unwrap(),
                &gx,
                1e-6,
                &format!("max pool grad {what}"),
            );
        }
    }

    /// A pooling geometry PyTorch refuses (padding past half the window, which would put
    /// a window outside the plane), an argmax outside the plane and mismatched lengths
    /// are errors, not device writes out of bounds or panics.
    pub fn bad_geometry(r: &dyn Resident) {
        use nas_kernels::cpu::pool::Pool2d;
        let p = Pool2d {
            n: 1,
            c: 2,
            h: 4,
            w: 4,
            kh: 1,
            kw: 1,
            sh: 1,
            sw: 1,
            ph: 1,
            pw: 1,
        };
        let x = up(r, &random(32, 60));
        assert!(r.max_pool(&p, &x).is_err());
        assert!(r.avg_pool(&p, false, &x).is_err());
        let zero_stride = Pool2d {
            kh: 2,
            kw: 2,
            sh: 0,
            ph: 0,
            pw: 0,
            ..p
        };
        assert!(r.avg_pool(&zero_stride, true, &x).is_err());
        let ok = Pool2d {
            kh: 2,
            kw: 2,
            sh: 2,
            sw: 2,
            ph: 0,
            pw: 0,
            ..p
        };
        assert!(r.max_pool(&ok, &up(r, &random(31, 61))).is_err());
        let (y, arg) = r.max_pool(&ok, &x).unwrap();
        assert_eq!(y.len(), 8);
        // An argmax outside the plane (not one the forward wrote) is refused or dropped,
        // never written out of bounds: the device still answers right afterwards.
        let gy = up(r, &[1.0; 8]);
        let mut outside = arg.to_vec().unwrap();
        outside[3] = f32::from_bits(16);
        outside[5] = f32::from_bits(u32::MAX);
        if let Ok(gx) = r.max_pool_backward(&ok, &gy, &up(r, &outside)) {
            assert_eq!(gx.to_vec().unwrap().iter().sum::<f32>(), 6.0, "dropped");
        }
        let gx = r
            .max_pool_backward(&ok, &gy, &arg)
            .unwrap()
            .to_vec()
            .unwrap();
        assert_eq!(gx.iter().sum::<f32>(), 8.0, "the device after a bad argmax");
        // Sizes past what a device kernel indexes in 32 bits, and empty planes pooled to
        // something, are errors naming the op (checked before any length).
        let huge = Pool2d {
            h: 1 << 16,
            w: 1 << 16,
            ..ok
        };
        let e = r.max_pool(&huge, &x).err().unwrap().to_string();
        assert!(e.contains("pool") && e.contains("2^31"), "{e}");
        let e = r
            .adaptive_avg_pool(2, 0, 4, 1, 1, &x)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("empty input plane"), "{e}");
        let e = r
            .adaptive_avg_pool_backward(2, 4, 0, 1, 1, &up(r, &[1.0; 2]))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("empty input plane"), "{e}");
    }

    /// Training batch norm with its statistics left on the device, its backward from
    /// them, and the running statistics' update, against the CPU kernels.
    pub fn batch_norm_on_the_device(r: &dyn Resident) {
        use nas_kernels::cpu::norm;
        let (n, c, hw) = (3, 5, 7 * 6);
        let k = super::bn_case(n, c, hw, 70);
        let (dx, dg, db) = (up(r, &k.x), up(r, &k.gamma), up(r, &k.beta));
        let (gy_, gm, gi) = r.batch_norm_train(n, c, hw, &dx, &dg, &db, k.eps).unwrap();
        close(&gy_.to_vec().unwrap(), &k.y, 1e-4, "batch norm output");
        close(&gm.to_vec().unwrap(), &k.mean, 1e-5, "batch mean");
        close(&gi.to_vec().unwrap(), &k.invstd, 1e-4, "batch 1/std");
        let (dgx, dgg, dgb) = r
            .batch_norm_backward(n, c, hw, &dx, &up(r, &k.g), &dg, &gm, &gi)
            .unwrap();
        close(
            &dgx.to_vec().unwrap(),
            &k.gx,
            1e-4,
            "batch norm input gradient",
        );
        close(&dgg.to_vec().unwrap(), &k.ggamma, 1e-4, "gamma gradient");
        close(&dgb.to_vec().unwrap(), &k.gbeta, 1e-4, "beta gradient");
        let (mean, invstd, eps) = (&k.mean, &k.invstd, k.eps);
        let (rm, rv) = (
            random(c, 74),
            random(c, 75)
                .iter()
                .map(|v| v.abs() + 0.5)
                .collect::<Vec<_>>(),
        );
        let (drm, drv) = (up(r, &rm), up(r, &rv));
        for (count, m) in [(n * hw, 0.1), (1, 0.5)] {
            let (grm, grv) = r
                .batch_norm_running(count, m, eps, &gm, &gi, &drm, &drv)
                .unwrap();
            let (mut wm, mut wv) = (rm.clone(), rv.clone());
            norm::batch_norm_update_running(count, m, mean, invstd, eps, &mut wm, &mut wv);
            close(
                &grm.to_vec().unwrap(),
                &wm,
                1e-5,
                &format!("running mean, count {count}"),
            );
            close(
                &grv.to_vec().unwrap(),
                &wv,
                1e-4,
                &format!("running var, count {count}"),
            );
            // The inputs are left as they were.
            close(&drm.to_vec().unwrap(), &rm, 0.0, "running mean input");
        }
        assert!(r
            .batch_norm_train(n, c, hw, &dx, &up(r, &k.gamma[1..]), &db, eps)
            .is_err());
    }
}
