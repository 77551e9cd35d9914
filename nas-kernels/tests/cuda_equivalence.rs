//! The CUDA kernels against the CPU reference on random inputs. Needs an NVIDIA driver
//! and device (`scripts/gpu-check.sh` runs it on one); elsewhere each test prints that it
//! skipped and why. Tolerance: 1e-4 relative to the largest reference magnitude (f32
//! sums in another order).

use nas_kernels::cpu::{conv, gemm, pool, softmax};
use nas_kernels::cuda::Cuda;

mod common;
use common::{close, random};

fn device() -> Option<Cuda> {
    match Cuda::new(0) {
        Ok(c) => {
            println!(
                "running on {} (sm_{}{})",
                c.name, c.compute_capability.0, c.compute_capability.1
            );
            Some(c)
        }
        Err(e) => {
            println!("skipped, no CUDA device: {e}");
            None
        }
    }
}

#[test]
fn sgemm_matches_the_cpu_in_every_transpose() {
    let Some(gpu) = device() else { return };
    let (m, n, k) = (67, 45, 129);
    let a = random(m * k, 1);
    let b = random(k * n, 2);
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        let mut want = vec![0.0; m * n];
        gemm::sgemm(m, n, k, &a, ta, &b, tb, &mut want, false, false);
        close(
            &gpu.sgemm(m, n, k, &a, ta, &b, tb).unwrap(),
            &want,
            1e-4,
            "sgemm",
        );
    }
}

#[test]
fn unary_ops_match_the_cpu() {
    let Some(gpu) = device() else { return };
    let x = random(10_001, 3);
    let relu: Vec<f32> = x.iter().map(|v| v.max(0.0)).collect();
    close(&gpu.unary(&x, 1, 0.0, 0.0).unwrap(), &relu, 1e-4, "relu");
    let t: Vec<f32> = x.iter().map(|v| v.tanh()).collect();
    close(&gpu.unary(&x, 5, 0.0, 0.0).unwrap(), &t, 1e-4, "tanh");
    let affine: Vec<f32> = x.iter().map(|v| v * 1.5 - 0.25).collect();
    close(
        &gpu.unary(&x, 6, 1.5, -0.25).unwrap(),
        &affine,
        1e-4,
        "affine",
    );
}

#[test]
fn depthwise_convolution_matches_the_cpu() {
    let Some(gpu) = device() else { return };
    for (k, s, d) in [(3, 1, 1), (5, 1, 1), (3, 2, 1), (3, 1, 2), (5, 1, 2)] {
        let p = conv::Conv2d {
            n: 3,
            cin: 8,
            h: 17,
            w: 15,
            cout: 8,
            kh: k,
            kw: k,
            sh: s,
            sw: s,
            ph: d * (k - 1) / 2,
            pw: d * (k - 1) / 2,
            dh: d,
            dw: d,
            groups: 8,
        };
        let x = random(p.n * p.cin * p.h * p.w, 4);
        let w = random(p.weight_len(), 5);
        let mut want = vec![0.0; p.out_len()];
        conv::conv2d_forward(&p, &x, &w, None, &mut want);
        close(
            &gpu.depthwise_forward(&p, &x, &w).unwrap(),
            &want,
            1e-4,
            "depthwise",
        );
    }
}

#[test]
fn max_pool_matches_the_cpu_values_and_argmax() {
    let Some(gpu) = device() else { return };
    let p = pool::Pool2d {
        n: 2,
        c: 5,
        h: 13,
        w: 11,
        kh: 3,
        kw: 3,
        sh: 1,
        sw: 1,
        ph: 1,
        pw: 1,
    };
    let x = random(p.n * p.c * p.h * p.w, 6);
    let len = p.n * p.c * p.out_h() * p.out_w();
    let (mut y, mut a) = (vec![0.0; len], vec![0u32; len]);
    pool::max_pool2d_forward(&p, &x, &mut y, &mut a);
    let (gy, ga) = gpu.max_pool_forward(&p, &x).unwrap();
    close(&gy, &y, 1e-4, "max pool");
    assert_eq!(ga, a, "argmax");
}

#[test]
fn log_softmax_matches_the_cpu() {
    let Some(gpu) = device() else { return };
    let (rows, cols) = (64, 10);
    let x = random(rows * cols, 7);
    let mut want = vec![0.0; rows * cols];
    softmax::log_softmax_forward(rows, cols, &x, &mut want);
    close(
        &gpu.log_softmax(&x, rows, cols).unwrap(),
        &want,
        1e-4,
        "log_softmax",
    );
}
