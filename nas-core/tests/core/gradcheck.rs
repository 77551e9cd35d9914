//! Every primitive's gradient against central finite differences on random inputs of
//! several shapes (odd sizes, stride 2, padding, dilation 2, groups), on every device
//! (`test_device!`): on wgpu the inputs are placed in device memory, so the forward ops
//! and the gradient rules run there (or on the CPU where an op has no device kernel).

use nas_core::device::test_device;
use nas_core::{ConvOpts, Rng, Tensor};

nas_core::test_device!(
    elementwise_and_broadcasting,
    reductions_and_movement,
    matmul_and_linear,
    conv2d_all_geometries,
    pooling,
    batch_norm_softmax_and_loss,
    kernel_embedding,
    weighted_sum_of_candidates,
);

/// Contracts the output with fixed random weights so every output entry matters.
fn scalar_of(out: &Tensor, r: &[f32]) -> f64 {
    out.data()
        .iter()
        .zip(r)
        .map(|(a, b)| *a as f64 * *b as f64)
        .sum()
}

/// Compares autodiff gradients of `sum(f(inputs) * r)` with central differences at up to
/// `max_checks` entries of each input.
fn check(name: &str, inputs: &[Tensor], eps: f32, f: impl Fn(&[Tensor]) -> Tensor) {
    let dev = test_device();
    for t in inputs {
        dev.place_tensor(t).unwrap();
    }
    let name = &format!("{name} on {dev}");
    let mut rng = Rng::new(99);
    let out = f(inputs);
    let r: Vec<f32> = (0..out.numel()).map(|_| rng.normal()).collect();
    let rt = Tensor::from_vec(r.clone(), out.shape());
    for t in inputs {
        t.zero_grad();
    }
    out.mul(&rt).sum().backward();
    for (k, t) in inputs.iter().enumerate() {
        if !t.requires_grad() {
            continue;
        }
        let g = t
            .grad()
            .unwrap_or_else(|| panic!("{name}: input {k} got no gradient"));
        let n = t.numel();
        let step = (n / 40).max(1);
        for i in (0..n).step_by(step) {
            let orig = t.data()[i];
            t.data_mut()[i] = orig + eps;
            let up = scalar_of(&f(inputs), &r);
            t.data_mut()[i] = orig - eps;
            let down = scalar_of(&f(inputs), &r);
            t.data_mut()[i] = orig;
            let num = (up - down) / (2.0 * eps as f64);
            let ana = g[i] as f64;
            let tol = 2e-2 * num.abs().max(ana.abs()) + 3e-3;
            assert!(
                (num - ana).abs() <= tol,
                "{name}: input {k} entry {i}: autodiff {ana:.6} vs finite difference {num:.6}"
            );
        }
    }
}

fn param(shape: &[usize], rng: &mut Rng) -> Tensor {
    Tensor::parameter(Tensor::randn(shape, 1.0, rng).to_vec(), shape)
}

/// Values away from zero, so ReLU's kink is never within a finite-difference step.
fn param_off_zero(shape: &[usize], rng: &mut Rng) -> Tensor {
    let n: usize = shape.iter().product();
    let v = (0..n)
        .map(|_| {
            let x = rng.normal();
            if x.abs() < 0.1 {
                x.signum() * 0.1 + x
            } else {
                x
            }
        })
        .collect();
    Tensor::parameter(v, shape)
}

/// Distinct values (a shuffled ramp) so max pooling has no near-ties.
fn param_distinct(shape: &[usize], rng: &mut Rng) -> Tensor {
    let n: usize = shape.iter().product();
    let mut v: Vec<f32> = (0..n).map(|i| i as f32 * 0.1).collect();
    rng.shuffle(&mut v);
    Tensor::parameter(v, shape)
}

fn elementwise_and_broadcasting() {
    let mut rng = Rng::new(1);
    let a = param(&[2, 3, 5], &mut rng);
    let b = param(&[3, 1], &mut rng);
    let c = param(&[1], &mut rng);
    // Same shapes (a device kernel each), then broadcasting (on a device, its broadcasting
    // kernel forward and summing kernel backward; past 6 dimensions, the CPU's).
    let a2 = param(&[2, 3, 5], &mut rng);
    let a3: Vec<f32> = (0..30).map(|_| 0.5 + rng.uniform() * 2.0).collect();
    let a3 = Tensor::parameter(a3, &[2, 3, 5]);
    check("add same", &[a.clone(), a2.clone()], 1e-2, |t| {
        t[0].add(&t[1])
    });
    check("sub same", &[a.clone(), a2.clone()], 1e-2, |t| {
        t[0].sub(&t[1])
    });
    check("mul same", &[a.clone(), a2.clone()], 1e-2, |t| {
        t[0].mul(&t[1])
    });
    check("div same", &[a.clone(), a3.clone()], 1e-3, |t| {
        t[0].div(&t[1])
    });
    // The same mask on every pass (one seed): the gradient is the mask.
    check("dropout", &[a.clone()], 1e-2, |t| {
        t[0].dropout(0.4, &mut Rng::new(8))
    });
    check("add", &[a.clone(), b.clone()], 1e-2, |t| t[0].add(&t[1]));
    check("sub", &[a.clone(), b.clone()], 1e-2, |t| t[0].sub(&t[1]));
    check("mul", &[a.clone(), b.clone()], 1e-2, |t| t[0].mul(&t[1]));
    check("mul scalar tensor", &[a.clone(), c.clone()], 1e-2, |t| {
        t[0].mul(&t[1])
    });
    let pos = Tensor::parameter(
        (0..15).map(|_| 0.5 + rng.uniform() * 2.0).collect(),
        &[3, 5],
    );
    check("div", &[a.clone(), pos.clone()], 1e-3, |t| t[0].div(&t[1]));
    let nchw = param(&[2, 3, 4, 5], &mut rng);
    let per_channel = Tensor::parameter(
        (0..3).map(|_| 0.5 + rng.uniform() * 2.0).collect(),
        &[1, 3, 1, 1],
    );
    let pc = [nchw.clone(), per_channel.clone()];
    check("mul per channel", &pc, 1e-2, |t| t[0].mul(&t[1]));
    check("div per channel", &pc, 1e-3, |t| t[0].div(&t[1]));
    check("sub per channel, swapped", &pc, 1e-2, |t| t[1].sub(&t[0]));
    let five = param(&[2, 1, 2, 3, 4], &mut rng);
    check("add, 5 dimensions", &[five.clone(), b.clone()], 1e-2, |t| {
        t[0].add(&t[1])
    });
    // 6 dimensions broadcast on the device, and so do 7 that merge into fewer; 7 that
    // broadcast each differently from the next fall back to the CPU.
    let six = param(&[2, 1, 3, 1, 2, 2], &mut rng);
    let six_b = param(&[1, 2, 1, 2, 1, 2], &mut rng);
    check("mul, 6 dimensions", &[six.clone(), six_b], 1e-2, |t| {
        t[0].mul(&t[1])
    });
    let seven = param(&[2, 1, 1, 3, 1, 2, 2], &mut rng);
    check("sub, 7 dimensions merged", &[seven, six], 1e-2, |t| {
        t[0].sub(&t[1])
    });
    let odd = param(&[2, 1, 2, 1, 2, 1, 2], &mut rng);
    let even = param(&[1, 2, 1, 2, 1, 2, 1], &mut rng);
    check("mul, 7 dimensions apart", &[odd, even.clone()], 1e-2, |t| {
        t[0].mul(&t[1])
    });
    // Same shapes of any rank run on the device.
    let five2 = param(&[2, 1, 2, 3, 4], &mut rng);
    check("mul same, 5 dimensions", &[five, five2], 1e-2, |t| {
        t[0].mul(&t[1])
    });
    check("add_scalar", &[a.clone()], 1e-2, |t| t[0].add_scalar(0.7));
    check("mul_scalar", &[a.clone()], 1e-2, |t| t[0].mul_scalar(-1.3));
    check("exp", &[a.clone()], 1e-3, |t| t[0].exp());
    check("log", &[pos.clone()], 1e-3, |t| t[0].log());
    check("sigmoid", &[a.clone()], 1e-2, |t| t[0].sigmoid());
    check("tanh", &[a.clone()], 1e-2, |t| t[0].tanh());
    let z = param_off_zero(&[4, 7], &mut rng);
    check("relu", &[z], 1e-2, |t| t[0].relu());
}

fn reductions_and_movement() {
    let mut rng = Rng::new(2);
    let a = param(&[2, 3, 4, 5], &mut rng);
    check("sum axes 1,3", &[a.clone()], 1e-2, |t| {
        t[0].sum_axes(&[1, 3], false)
    });
    check("sum axis 0 keep", &[a.clone()], 1e-2, |t| {
        t[0].sum_axes(&[0], true)
    });
    check("sum all", &[a.clone()], 1e-2, |t| t[0].sum());
    check("reshape", &[a.clone()], 1e-2, |t| t[0].reshape(&[6, 20]));
    check("permute", &[a.clone()], 1e-2, |t| {
        t[0].permute(&[2, 0, 3, 1])
    });
    // Six axes (the most a device permute takes), seven that merge into fewer (their
    // axes of size 1 dropped), and seven that stay apart (the CPU's, on a device too).
    let six = param(&[2, 1, 3, 2, 1, 2], &mut rng);
    check("permute 6-d", &[six], 1e-2, |t| {
        t[0].permute(&[5, 3, 1, 0, 4, 2])
    });
    let seven = param(&[2, 1, 3, 1, 2, 1, 2], &mut rng);
    check("permute 7-d merged", &[seven], 1e-2, |t| {
        t[0].permute(&[6, 3, 1, 0, 4, 2, 5])
    });
    let twos = param(&[2; 7], &mut rng);
    check("permute 7-d apart", &[twos.clone()], 1e-2, |t| {
        t[0].permute(&[6, 5, 4, 3, 2, 1, 0])
    });
    // A sum over every other axis of seven: seven dimensions apart (the CPU's).
    check("sum of 7-d, axes apart", &[twos], 1e-2, |t| {
        t[0].sum_axes(&[0, 2, 4, 6], true)
    });
    check("slice", &[a.clone()], 1e-2, |t| t[0].slice(2, 1, 2));
    let b = param(&[2, 2, 4, 5], &mut rng);
    check("concat", &[a.clone(), b], 1e-2, |t| {
        Tensor::concat(&[t[0].clone(), t[1].clone()], 1)
    });
    check("concat self", &[a.clone()], 1e-2, |t| {
        Tensor::concat(&[t[0].clone(), t[0].clone()], 3)
    });
}

fn matmul_and_linear() {
    let mut rng = Rng::new(3);
    let a = param(&[3, 5, 7], &mut rng);
    let b = param(&[3, 7, 4], &mut rng);
    let w = param(&[7, 6], &mut rng);
    check("batched matmul", &[a.clone(), b], 1e-2, |t| {
        t[0].matmul(&t[1])
    });
    check("shared matmul", &[a.clone(), w], 1e-2, |t| {
        t[0].matmul(&t[1])
    });
    let x = param(&[9, 7], &mut rng);
    let lw = param(&[5, 7], &mut rng);
    let lb = param(&[5], &mut rng);
    check("linear", &[x, lw, lb], 1e-2, |t| {
        t[0].linear(&t[1], Some(&t[2]))
    });
}

fn conv2d_all_geometries() {
    let mut rng = Rng::new(4);
    // (n, cin, h, w, cout, k, stride, pad, dilation, groups)
    let cases = [
        (2, 3, 7, 9, 4, 3, 1, 1, 1, 1),
        (2, 4, 8, 7, 6, 3, 2, 1, 1, 2),
        (1, 3, 9, 9, 2, 3, 1, 2, 2, 1),
        (2, 4, 7, 7, 4, 3, 2, 1, 1, 4),
        (1, 3, 11, 10, 3, 5, 1, 4, 2, 3),
        (2, 5, 5, 6, 3, 1, 1, 0, 1, 1),
        (2, 4, 6, 6, 6, 1, 2, 0, 1, 2),
        (2, 2, 6, 5, 3, 5, 1, 2, 1, 1),
    ];
    for (n, cin, h, w, cout, k, s, p, d, g) in cases {
        let x = param(&[n, cin, h, w], &mut rng);
        let wt = param(&[cout, cin / g, k, k], &mut rng);
        let b = param(&[cout], &mut rng);
        let o = ConvOpts {
            stride: s,
            padding: p,
            dilation: d,
            groups: g,
        };
        let name = format!("conv2d {n}x{cin}x{h}x{w} -> {cout} k{k} s{s} p{p} d{d} g{g}");
        check(&name, &[x, wt, b], 1e-2, |t| {
            t[0].conv2d(&t[1], Some(&t[2]), o)
        });
    }
}

fn pooling() {
    let mut rng = Rng::new(5);
    for (h, w, k, s, p) in [(7, 9, 3, 2, 1), (8, 8, 2, 2, 0), (5, 6, 3, 1, 1)] {
        let x = param_distinct(&[2, 3, h, w], &mut rng);
        check(
            &format!("max_pool {h}x{w} k{k} s{s} p{p}"),
            &[x.clone()],
            1e-2,
            |t| t[0].max_pool2d(k, s, p),
        );
        for inc in [true, false] {
            check(
                &format!("avg_pool {h}x{w} k{k} s{s} p{p} inc{inc}"),
                &[x.clone()],
                1e-2,
                |t| t[0].avg_pool2d(k, s, p, inc),
            );
        }
    }
    for (h, o) in [(7, 4), (5, 3), (8, 4), (6, 1)] {
        let x = param(&[2, 3, h, h], &mut rng);
        check(&format!("adaptive {h}->{o}"), &[x], 1e-2, |t| {
            t[0].adaptive_avg_pool2d(o, o)
        });
    }
}

fn batch_norm_softmax_and_loss() {
    let mut rng = Rng::new(6);
    let x = param(&[4, 3, 5, 3], &mut rng);
    let g = Tensor::parameter((0..3).map(|_| 1.0 + 0.3 * rng.normal()).collect(), &[3]);
    let b = param(&[3], &mut rng);
    check("batch_norm", &[x, g, b], 1e-2, |t| {
        t[0].batch_norm_train(&t[1], &t[2], 1e-5).0
    });
    let z = param(&[6, 7], &mut rng);
    check("log_softmax", &[z.clone()], 1e-2, |t| t[0].log_softmax());
    check("softmax", &[z.clone()], 1e-2, |t| t[0].softmax());
    let targets = [0u32, 6, 3, 3, 1, 2];
    check("cross_entropy", &[z], 1e-2, |t| {
        t[0].cross_entropy(&targets)
    });
}

/// The fused batch-norm primitive against the same thing composed from smaller primitives.
#[test]
fn fused_batch_norm_matches_composition() {
    let mut rng = Rng::new(7);
    let x = param(&[5, 4, 3, 3], &mut rng);
    let g = param(&[4], &mut rng);
    let b = param(&[4], &mut rng);
    let r = Tensor::randn(&[5, 4, 3, 3], 1.0, &mut rng);
    let fused = x.batch_norm_train(&g, &b, 1e-5).0;
    fused.mul(&r).sum().backward();
    let grads_fused: Vec<Vec<f32>> = [&x, &g, &b].iter().map(|t| t.grad().unwrap()).collect();
    for t in [&x, &g, &b] {
        t.zero_grad();
    }
    let mean = x.mean_axes(&[0, 2, 3], true);
    let xc = x.sub(&mean);
    let var = xc.mul(&xc).mean_axes(&[0, 2, 3], true);
    let inv = var.add_scalar(1e-5).log().mul_scalar(-0.5).exp();
    let composed = xc
        .mul(&inv)
        .mul(&g.reshape(&[1, 4, 1, 1]))
        .add(&b.reshape(&[1, 4, 1, 1]));
    composed.mul(&r).sum().backward();
    for (a, c) in fused.to_vec().iter().zip(composed.to_vec()) {
        assert!((a - c).abs() < 1e-4, "forward {a} vs {c}");
    }
    for (k, t) in [&x, &g, &b].iter().enumerate() {
        for (a, c) in grads_fused[k].iter().zip(t.grad().unwrap()) {
            assert!(
                (a - c).abs() < 1e-3 * (1.0 + c.abs()),
                "grad of input {k}: {a} vs {c}"
            );
        }
    }
}

#[test]
fn gradients_accumulate_through_shared_use() {
    let mut rng = Rng::new(8);
    let a = param(&[3, 4], &mut rng);
    // a used three times: d/da sum(a*a + a) = 2a + 1
    a.mul(&a).add(&a).sum().backward();
    for (g, v) in a.grad().unwrap().iter().zip(a.to_vec()) {
        assert!((g - (2.0 * v + 1.0)).abs() < 1e-5);
    }
}

fn kernel_embedding() {
    let mut rng = Rng::new(9);
    let w = param(&[3, 2, 3, 3], &mut rng);
    check("embed 3x3 in 5x5", &[w.clone()], 1e-2, |t| {
        t[0].embed_kernel(5, 1)
    });
    check("embed 3x3 dil 2 in 7x7", &[w.clone()], 1e-2, |t| {
        t[0].embed_kernel(7, 2)
    });
    // A 3x3 kernel embedded in 5x5 (padding 2) is the same convolution (padding 1).
    let x = Tensor::randn(&[2, 2, 7, 6], 1.0, &mut rng);
    let a = x.conv2d(
        &w,
        None,
        ConvOpts {
            padding: 1,
            ..Default::default()
        },
    );
    let b = x.conv2d(
        &w.embed_kernel(5, 1),
        None,
        ConvOpts {
            padding: 2,
            ..Default::default()
        },
    );
    let c = x.conv2d(
        &w,
        None,
        ConvOpts {
            padding: 2,
            dilation: 2,
            ..Default::default()
        },
    );
    let d = x.conv2d(
        &w.embed_kernel(5, 2),
        None,
        ConvOpts {
            padding: 2,
            ..Default::default()
        },
    );
    for (p, q) in a
        .to_vec()
        .iter()
        .zip(b.to_vec())
        .chain(c.to_vec().iter().zip(d.to_vec()))
    {
        assert!((p - q).abs() < 1e-5);
    }
}

fn weighted_sum_of_candidates() {
    let mut rng = Rng::new(10);
    let a = param(&[2, 3, 4], &mut rng);
    let b = param(&[2, 3, 4], &mut rng);
    let w = param(&[3], &mut rng);
    check("weighted_sum", &[a, b, w], 1e-2, |t| {
        Tensor::weighted_sum(&[t[0].clone(), t[1].clone()], &t[2], &[2, 0])
    });
}
