#![cfg(feature = "wgpu")]
//! The wgpu kernels against the CPU reference on random inputs, on whatever Vulkan
//! adapter there is (CI: Mesa's CPU driver, lavapipe). With `NAS_REQUIRE_WGPU=1` (set by
//! .ci/run) a missing adapter fails the tests; elsewhere they say they skipped.
//! Tolerance: 1e-4 relative to the largest reference magnitude (1e-3 for exp/tanh,
//! whose GPU implementations may differ in the last bits).

#[macro_use]
mod common;
use common::{close, gpu, random};

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

fn with_device(f: impl FnOnce(&dyn nas_kernels::accel::Accel)) {
    if let Some(g) = gpu() {
        f(g);
    }
}

suite_tests!();

/// One SGD step by `nas-core`'s `Sgd` formulas (PyTorch's): the new weights and
/// momentum buffer.
#[allow(clippy::too_many_arguments)]
fn sgd_reference(
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
fn adam_reference(
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

/// The optimiser updates against the formulas of `nas-core`'s `Sgd` and `Adam` (PyTorch's).
#[test]
fn sgd_and_adam_steps_match_the_reference() {
    let Some(g) = gpu() else { return };
    let n = 1000;
    let w0 = random(n, 20);
    let grad = random(n, 21);
    let v0 = random(n, 22);
    for (mu, wd, nesterov, first) in [
        (0.0, 0.0, false, false),
        (0.9, 3e-4, false, true),
        (0.9, 3e-4, false, false),
        (0.9, 1e-3, true, false),
    ] {
        let (lr, mut w, mut v) = (0.05f32, w0.clone(), v0.clone());
        let (ww, wv) = sgd_reference(&w0, &grad, &v0, lr, mu, wd, nesterov, first);
        g.sgd(&mut w, &grad, &mut v, lr, mu, wd, nesterov, first)
            .unwrap();
        let what = format!("sgd mu={mu} wd={wd} nesterov={nesterov} first={first}");
        close(&w, &ww, 1e-6, &what);
        close(&v, &wv, 1e-6, &what);
    }
    let m0: Vec<f32> = random(n, 23).iter().map(|v| v * 0.1).collect();
    let s0: Vec<f32> = random(n, 24).iter().map(|v| v.abs() * 0.01).collect();
    for (decoupled, t) in [(false, 1), (true, 7)] {
        let (lr, b1, b2, eps, wd) = (1e-3f32, 0.9f32, 0.999f32, 1e-8f32, 0.01f32);
        let (mut w, mut m, mut v) = (w0.clone(), m0.clone(), s0.clone());
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
        g.adam(
            &mut w,
            &grad,
            &mut m,
            &mut v,
            lr,
            (b1, b2, eps),
            wd,
            decoupled,
            t,
        )
        .unwrap();
        let what = format!("adam decoupled={decoupled} t={t}");
        close(&w, &ww, 1e-5, &what);
        close(&m, &wm, 1e-5, &what);
        close(&v, &wv, 1e-5, &what);
    }
}

/// The device-resident primitives training uses (buffers in, buffers out) against the
/// same references: the optimiser steps (a first SGD step starts its momentum buffer on
/// the device), the ReLU gradient, per-channel bias and its gradient.
#[test]
fn resident_steps_and_bias_ops_match_the_reference() {
    use nas_kernels::accel::{Binary, Resident};
    let Some(g) = gpu() else { return };
    let r: &dyn Resident = g;
    let n = 1000;
    let (w0, grad, v0) = (random(n, 30), random(n, 31), random(n, 32));
    let (wd_, gd) = (r.upload(&w0), r.upload(&grad));
    for (mu, wd, nesterov, first) in [
        (0.0, 0.0, false, false),
        (0.9, 3e-4, false, true),
        (0.9, 3e-4, true, false),
    ] {
        let lr = 0.05f32;
        let (ww, wv) = sgd_reference(&w0, &grad, &v0, lr, mu, wd, nesterov, first);
        let v = (!first).then(|| r.upload(&v0));
        let (w, v) = r.sgd(&wd_, &gd, v.as_ref(), lr, mu, wd, nesterov).unwrap();
        let what = format!("resident sgd mu={mu} wd={wd} nesterov={nesterov} first={first}");
        close(&w.to_vec().unwrap(), &ww, 1e-6, &what);
        if mu != 0.0 {
            close(&v.to_vec().unwrap(), &wv, 1e-6, &what);
        }
    }
    let m0: Vec<f32> = random(n, 33).iter().map(|v| v * 0.1).collect();
    let s0: Vec<f32> = random(n, 34).iter().map(|v| v.abs() * 0.01).collect();
    for (decoupled, t) in [(false, 1), (true, 5)] {
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
        let (m, v) = (r.upload(&m0), r.upload(&s0));
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
    let got = r.binary(Binary::ReluGrad, &gd, &r.upload(&y)).unwrap();
    close(&got.to_vec().unwrap(), &want, 0.0, "relu gradient");
    // A bias per channel of [3, 7, 5] and its gradient (sums over batch and plane).
    let (b, c, plane) = (3, 7, 5);
    let x = random(b * c * plane, 36);
    let bias = random(c, 37);
    let want: Vec<f32> = (0..x.len()).map(|i| x[i] + bias[(i / plane) % c]).collect();
    let got = r
        .add_channel(c, plane, &r.upload(&x), &r.upload(&bias))
        .unwrap();
    close(&got.to_vec().unwrap(), &want, 1e-6, "add_channel");
    let mut sums = vec![0.0f32; c];
    for (i, v) in x.iter().enumerate() {
        sums[(i / plane) % c] += v;
    }
    let got = r.channel_sum(b, c, plane, &r.upload(&x)).unwrap();
    close(&got.to_vec().unwrap(), &sums, 1e-5, "channel_sum");
    assert!(r
        .add_channel(c, plane, &r.upload(&x[1..]), &r.upload(&bias))
        .is_err());
}
