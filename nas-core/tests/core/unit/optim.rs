//! The unit tests of `nas_core::optim` (`nas-core/src/optim.rs`).

use nas_core::optim::*;
use nas_core::tensor::Tensor;

fn quad(p: &Tensor) {
    // loss = 0.5 * sum((w - 3)^2): gradient w - 3
    p.zero_grad();
    let l = p
        .add_scalar(-3.0)
        .mul(&p.add_scalar(-3.0))
        .sum()
        .mul_scalar(0.5);
    l.backward();
}

#[test]
fn sgd_momentum_matches_hand_computed_steps() {
    let p = Tensor::parameter(vec![0.0], &[1]);
    let mut o = Sgd::new(vec![p.clone()], 0.9, false, 0.0);
    quad(&p);
    o.step(0.1); // v = -3, w = 0.3
    assert!((p.item() - 0.3).abs() < 1e-6);
    quad(&p);
    o.step(0.1); // g = -2.7, v = 0.9*-3 - 2.7 = -5.4, w = 0.3 + 0.54 = 0.84
    assert!((p.item() - 0.84).abs() < 1e-5, "{}", p.item());
    let p = Tensor::parameter(vec![0.0], &[1]);
    let mut o = Sgd::new(vec![p.clone()], 0.9, true, 0.0);
    quad(&p);
    o.step(0.1); // d=-3, v=-3, step = -3 + 0.9*-3 = -5.7
    assert!((p.item() - 0.57).abs() < 1e-6);
}

#[test]
fn optimisers_converge_on_a_quadratic() {
    for kind in 0..3 {
        let p = Tensor::parameter(vec![0.0, 10.0, -4.0], &[3]);
        let mut o: Box<dyn Optimizer> = match kind {
            0 => Box::new(Sgd::new(vec![p.clone()], 0.9, true, 0.0)),
            1 => Box::new(Adam::new(vec![p.clone()], 0.0, false)),
            _ => Box::new(Adam::new(vec![p.clone()], 1e-4, true)),
        };
        for _ in 0..500 {
            quad(&p);
            o.step(0.05);
        }
        for v in p.to_vec() {
            assert!((v - 3.0).abs() < 0.05, "optimiser {kind}: {v}");
        }
    }
}

#[test]
fn schedules_and_clipping() {
    let c = LrSchedule::Cosine {
        total: 10.0,
        min_lr: 0.0,
    };
    assert!((c.lr(1.0, 0.0) - 1.0).abs() < 1e-6);
    assert!((c.lr(1.0, 5.0) - 0.5).abs() < 1e-6);
    assert!((c.lr(1.0, 2.5) - 0.853_553).abs() < 1e-5);
    assert!(c.lr(1.0, 10.0).abs() < 1e-6);
    let s = LrSchedule::Step {
        step_size: 3,
        gamma: 0.1,
    };
    assert!((s.lr(1.0, 7.5) - 0.01).abs() < 1e-7);
    let p = Tensor::parameter(vec![0.0, 0.0], &[2]);
    let l = p.mul(&Tensor::from_vec(vec![3.0, 4.0], &[2])).sum();
    l.backward();
    let n = clip_grad_norm(&[p.clone()], 1.0);
    assert!((n - 5.0).abs() < 1e-5);
    let g = p.grad().unwrap();
    assert!((g[0] - 0.6).abs() < 1e-4 && (g[1] - 0.8).abs() < 1e-4);
}

/// A saved Adam state is checked as it is restored: a negative step count zeroed the
/// bias correction (every weight NaN at the next step), `i32::MAX` overflowed it, and a
/// non-finite or negative moment made the next step NaN; each was accepted.
#[test]
fn a_damaged_adam_state_is_refused() {
    let p = Tensor::parameter(vec![1.0, 2.0], &[2]);
    let mut opt = Adam::new(vec![p.clone()], 0.0, false);
    quad(&p);
    opt.step(0.1);
    let good = opt.state();
    opt.set_state(good.clone()).unwrap();
    let mut bad = vec![];
    for t in [-1, i32::MAX] {
        bad.push((format!("t {t}"), AdamState { t, ..good.clone() }));
    }
    let mut s = good.clone();
    s.m[0][1] = f32::INFINITY;
    bad.push(("infinite m".into(), s));
    let mut s = good.clone();
    s.v[0][0] = -1.0;
    bad.push(("negative v".into(), s));
    for (what, s) in bad {
        assert!(opt.set_state(s).is_err(), "{what} accepted");
    }
}
