//! The wgpu kernels against the CPU reference on random inputs, on whatever Vulkan
//! adapter there is (CI: Mesa's CPU driver, lavapipe). With `NAS_REQUIRE_WGPU=1` (set by
//! .ci/run) a missing adapter fails the tests; elsewhere they say they skipped.
//! Tolerance: 1e-4 relative to the largest reference magnitude (1e-3 for exp/tanh,
//! whose GPU implementations may differ in the last bits).

use nas_kernels::cpu::{conv, gemm, pool, softmax};
use nas_kernels::gpu::Gpu;
use std::sync::OnceLock;

mod common;
use common::{close, random};

fn gpu() -> Option<&'static Gpu> {
    static G: OnceLock<Result<Gpu, String>> = OnceLock::new();
    match G.get_or_init(Gpu::new) {
        Ok(g) => Some(g),
        Err(e) => {
            assert!(
                std::env::var_os("NAS_REQUIRE_WGPU").is_none(),
                "NAS_REQUIRE_WGPU is set: {e}"
            );
            println!("skipped: {e}");
            None
        }
    }
}

#[test]
fn elementwise_ops_match_the_cpu() {
    let Some(g) = gpu() else { return };
    println!("adapter: {}", g.adapter);
    let x = random(70_001, 1);
    let y: Vec<f32> = random(70_001, 2).iter().map(|v| v + 3.0).collect();
    let cases: [(u32, fn(f32) -> f32, f32); 5] = [
        (1, |v| v.max(0.0), 1e-6),
        (2, f32::exp, 1e-3),
        (4, |v| 1.0 / (1.0 + (-v).exp()), 1e-3),
        (5, f32::tanh, 1e-3),
        (7, |v| -v, 1e-6),
    ];
    for (op, f, tol) in cases {
        let want: Vec<f32> = x.iter().map(|v| f(*v)).collect();
        close(
            &g.unary(&x, op, 0.0, 0.0).unwrap(),
            &want,
            tol,
            &format!("unary {op}"),
        );
    }
    let want: Vec<f32> = x.iter().map(|v| v * 1.5 - 0.25).collect();
    close(&g.unary(&x, 6, 1.5, -0.25).unwrap(), &want, 1e-6, "affine");
    let ops: [fn(f32, f32) -> f32; 4] = [|a, b| a + b, |a, b| a - b, |a, b| a * b, |a, b| a / b];
    for (op, f) in ops.iter().enumerate() {
        let want: Vec<f32> = x.iter().zip(&y).map(|(a, b)| f(*a, *b)).collect();
        close(
            &g.binary(&x, &y, op as u32).unwrap(),
            &want,
            1e-6,
            &format!("binary {op}"),
        );
    }
}

#[test]
fn matmul_matches_the_cpu_in_every_transpose() {
    let Some(g) = gpu() else { return };
    let (m, n, k) = (67, 45, 129);
    let a = random(m * k, 3);
    let b = random(k * n, 4);
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        let mut want = vec![0.0; m * n];
        gemm::sgemm(m, n, k, &a, ta, &b, tb, &mut want, false, false);
        close(
            &g.matmul(m, n, k, &a, ta, &b, tb).unwrap(),
            &want,
            1e-4,
            "matmul",
        );
    }
}

#[test]
fn conv2d_matches_the_cpu_over_strides_dilations_and_groups() {
    let Some(g) = gpu() else { return };
    for (cin, cout, k, s, pad, d, groups) in [
        (3, 8, 3, 1, 1, 1, 1),
        (4, 6, 5, 2, 2, 1, 2),
        (8, 8, 3, 1, 2, 2, 8),
        (6, 4, 1, 1, 0, 1, 1),
        (5, 7, 3, 2, 0, 1, 1),
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
        let x = random(p.n * p.cin * p.h * p.w, 5);
        let w = random(p.weight_len(), 6);
        let mut want = vec![0.0; p.out_len()];
        conv::conv2d_forward(&p, &x, &w, None, &mut want);
        close(
            &g.conv2d(&p, &x, &w).unwrap(),
            &want,
            1e-4,
            &format!("conv {p:?}"),
        );
        let gy = random(p.out_len(), 9);
        let mut gx = vec![0.0; x.len()];
        conv::conv2d_backward_input(&p, &gy, &w, &mut gx);
        let got = g.conv2d_backward_input(&p, &gy, &w).unwrap();
        close(&got, &gx, 1e-4, &format!("conv input grad {p:?}"));
        let mut gw = vec![0.0; w.len()];
        conv::conv2d_backward_weight(&p, &x, &gy, &mut gw, None);
        let got = g.conv2d_backward_weight(&p, &x, &gy).unwrap();
        close(&got, &gw, 1e-4, &format!("conv weight grad {p:?}"));
    }
}

#[test]
fn max_pool_and_log_softmax_match_the_cpu() {
    let Some(g) = gpu() else { return };
    for (k, s, pad) in [(2, 2, 0), (3, 1, 1), (3, 2, 1)] {
        let p = pool::Pool2d {
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
        };
        let x = random(p.n * p.c * p.h * p.w, 7);
        let len = p.n * p.c * p.out_h() * p.out_w();
        let (mut y, mut a) = (vec![0.0; len], vec![0u32; len]);
        pool::max_pool2d_forward(&p, &x, &mut y, &mut a);
        let (gy, ga) = g.max_pool(&p, &x).unwrap();
        close(&gy, &y, 1e-6, "max pool");
        assert_eq!(ga, a, "max pool argmax k{k} s{s} p{pad}");
    }
    let (rows, cols) = (64, 10);
    let x: Vec<f32> = random(rows * cols, 8).iter().map(|v| v * 5.0).collect();
    let mut want = vec![0.0; rows * cols];
    softmax::log_softmax_forward(rows, cols, &x, &mut want);
    close(
        &g.log_softmax(&x, rows, cols).unwrap(),
        &want,
        1e-4,
        "log_softmax",
    );
}
