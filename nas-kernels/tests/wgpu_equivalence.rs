#![cfg(feature = "wgpu")]
//! The wgpu kernels against the CPU reference on random inputs, on whatever Vulkan
//! adapter there is (CI: Mesa's CPU driver, lavapipe). With `NAS_REQUIRE_WGPU=1` (set by
//! .ci/run) a missing adapter fails the tests; elsewhere they say they skipped.
//! Tolerance: 1e-4 relative to the largest reference magnitude (1e-3 for exp/tanh,
//! whose GPU implementations may differ in the last bits).

#[macro_use]
mod common;
use common::resident::{adam_reference, sgd_reference};
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

fn with_resident(f: impl FnOnce(&dyn nas_kernels::accel::Resident)) {
    if let Some(g) = gpu() {
        f(g);
    }
}

resident_tests!();
