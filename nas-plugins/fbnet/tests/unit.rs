//! The unit tests of `nas_strategy_fbnet`, kept out of the library so that `cargo test` builds
//! the plugin once (a test harness inside the library would compile it twice).

use nas_strategies::oneshot::OneShotStrategy;
use nas_strategies::oneshot::{EpochStrategy, SupernetHost};
use nas_strategies::testing::{fake_setup, picked, run_on_fake, FakeSupernet};
use nas_strategies::{json, Architecture, Value};
use nas_strategy_fbnet::*;

fn cfg(config: Value) -> Config {
    Config::from_json(&config).unwrap()
}

/// A smooth positive stand-in for the cross-entropy of a mix, and its gradient.
fn ce(mix: &[f32]) -> (f64, Vec<f64>) {
    let mut v = 0.7;
    let mut g = vec![];
    for (i, &m) in mix.iter().enumerate() {
        let (c, q) = (0.3 * ((i * 7 % 5) as f64 - 2.0), 0.2 + 0.1 * (i % 3) as f64);
        v += c * m as f64 + q * (m as f64) * (m as f64);
        g.push(c + 2.0 * q * m as f64);
    }
    (v, g)
}

/// `L(mix)` as `loss_and_grad` computes it, with [`ce`] (or a constant) as the
/// cross-entropy.
fn loss_and_grad_of(mix: &[f32], lat: &[f32], c: &Config, flat_ce: bool) -> (Loss, Vec<f32>) {
    let (v, g) = if flat_ce {
        (1.3, vec![0.0; mix.len()])
    } else {
        ce(mix)
    };
    let g: Vec<f32> = g.iter().map(|x| *x as f32).collect();
    loss_and_grad(v as f32, &g, mix, lat, c)
}

fn loss_of(mix: &[f32], lat: &[f32], c: &Config, flat_ce: bool) -> (f64, Vec<f32>) {
    let (l, g) = loss_and_grad_of(mix, lat, c, flat_ce);
    (l.loss, g)
}

const LAT: [f32; 9] = [0.3, 0.12, 0.5, 0.2, 0.45, 0.05, 0.0, 0.0, 0.0];

fn check_fd(c: &Config, flat_ce: bool, lat_scale: f32) {
    let lat: Vec<f32> = LAT.iter().map(|l| l * lat_scale).collect();
    let mix = [0.2f32, 0.5, 0.3, 0.1, 0.6, 0.3, 0.4, 0.35, 0.25];
    let (l, grad) = loss_and_grad_of(&mix, &lat, c, flat_ce);
    assert!(!l.held, "{l:?}");
    // Finite differences in f64 over the same formula (through f32 inputs).
    for i in 0..mix.len() {
        let h = 1e-3f32;
        let (mut p, mut m) = (mix, mix);
        p[i] += h;
        m[i] -= h;
        let fd = (loss_of(&p, &lat, c, flat_ce).0 - loss_of(&m, &lat, c, flat_ce).0)
            / (p[i] - m[i]) as f64;
        let tol = 1e-3 * fd.abs().max(1e-2);
        assert!(
            (fd - grad[i] as f64).abs() < tol,
            "beta {} flat {flat_ce}: weight {i}: fd {fd} vs {}",
            c.beta,
            grad[i]
        );
    }
    // The check is not vacuous: the latency term moves the gradient.
    if c.beta > 0.0 {
        let off = Config { beta: 0.0, ..*c };
        let (_, g0) = loss_of(&mix, &lat, &off, flat_ce);
        assert!(grad.iter().zip(&g0).any(|(a, b)| (a - b).abs() > 1e-3));
    }
}

#[test]
fn the_latency_term_alone_matches_finite_differences() {
    // Microseconds (LAT about 575), and milliseconds on a table ten times slower
    // (LAT about 5.75, log LAT near 1.7, where (log LAT)^(beta - 1) is steep).
    for (unit, scale) in [("us", 1.0), ("ms", 10.0)] {
        for beta in [0.6, 2.0] {
            let c = cfg(json!({"beta": beta, "latency_unit": unit}));
            check_fd(&c, true, scale);
        }
    }
}

#[test]
fn the_product_of_cross_entropy_and_latency_matches_finite_differences() {
    for beta in [0.0, 0.6, 3.0] {
        check_fd(&cfg(json!({"beta": beta, "alpha": 0.7})), false, 1.0);
    }
}

#[test]
fn the_gradient_reaches_the_logits_through_the_gumbel_softmax() {
    let f = FakeSupernet::new(2, 3, 1, 1);
    let info = f.info.clone();
    let c = cfg(json!({}));
    let g: Vec<f32> = (0..9).map(|i| ((i * 37 % 11) as f32 - 5.0) * 0.3).collect();
    let tau = 5.0 * (-0.045f32 * 3.0).exp();
    let loss_at = |theta: &[f32]| -> (f64, Vec<f32>, Vec<f32>) {
        let z: Vec<f32> = theta.iter().zip(&g).map(|(t, g)| t + g).collect();
        let m = info.softmax(&z, tau);
        let (l, dl) = loss_of(&m, &LAT, &c, false);
        (l, dl, m)
    };
    let theta = [0.4f32, -0.3, 0.1, 0.0, 0.8, -0.5, 0.2, -0.1, 0.3];
    let (_, dl, m) = loss_at(&theta);
    let g_theta = info.softmax_backward(&m, &dl, tau);
    for i in 0..theta.len() {
        let h = 1e-2f32;
        let (mut p, mut q) = (theta, theta);
        p[i] += h;
        q[i] -= h;
        let fd = (loss_at(&p).0 - loss_at(&q).0) / (2.0 * h as f64);
        assert!(
            (fd - g_theta[i] as f64).abs() < 2e-3 * fd.abs().max(1e-2),
            "logit {i}: fd {fd} vs {}",
            g_theta[i]
        );
    }
}

#[test]
fn a_log_latency_below_the_floor_is_held_and_has_no_gradient() {
    let c = cfg(json!({"latency_unit": "ms"}));
    let mix = [0.5f32, 0.5, 0.0, 0.5, 0.5, 0.0, 0.3, 0.3, 0.4];
    let dce = [0.1f32, -0.2, 0.3, 0.0, 0.5, -0.1, 0.2, 0.2, 0.2];
    // 0.5 ms in all: log LAT < 0. And a table of zeros: log LAT = -inf.
    for lat in [[0.5f32, 0.5, 0.5, 0.5, 0.5, 0.5, 0.0, 0.0, 0.0], [0.0; 9]] {
        let (l, grad) = loss_and_grad(1.5, &dce, &mix, &lat, &c);
        assert!(l.held && l.loss.is_finite(), "{l:?}");
        assert_eq!(l.log_latency, LOG_FLOOR);
        let factor = 0.2 * LOG_FLOOR.powf(0.6);
        for (g, d) in grad.iter().zip(&dce) {
            assert_eq!(*g, (factor * *d as f64) as f32);
        }
    }
    // In microseconds the same 0.5 ms is far above the floor.
    let lat = [0.5f32, 0.5, 0.5, 0.5, 0.5, 0.5, 0.0, 0.0, 0.0];
    let (l, _) = loss_and_grad(1.5, &dce, &mix, &lat, &cfg(json!({})));
    assert!(!l.held && (l.log_latency - (1000.0f64).ln()).abs() < 1e-9);
}

#[test]
fn the_temperature_follows_the_paper_schedule() {
    assert_eq!(temperature(5.0, (-0.045f32).exp(), 0), 5.0);
    for e in [1usize, 2, 10, 89] {
        let want = 5.0 * (-0.045 * e as f64).exp();
        let got = temperature(5.0, (-0.045f32).exp(), e) as f64;
        assert!(
            (got - want).abs() < 1e-5 * want,
            "epoch {e}: {got} vs {want}"
        );
    }
    assert!((temperature(5.0, 0.956, 1) - 4.78).abs() < 1e-5);
    // With as many schedule epochs as the run has, a run reports the temperature of
    // each epoch, the same at every step of it.
    let mut f = FakeSupernet::new(2, 3, 3, 10);
    let setup = fake_setup(
        &f,
        json!({"tau": 2.0, "tau_decay": 0.5, "tau_epochs": 3}),
        1,
        None,
    );
    let mut s = Fbnet::create(&setup).unwrap();
    for epoch in 0..3 {
        for step in 0..10 {
            let out = s.step(&mut f, epoch, step).unwrap();
            let tau = out.iter().find(|(k, _)| *k == "tau").unwrap().1;
            assert_eq!(
                tau,
                2.0 * 0.5f32.powi(epoch as i32),
                "epoch {epoch} step {step}"
            );
        }
    }
}

/// The paper's 90 epochs are spread over a short run: a two-epoch run ends at the
/// paper's last temperature, about 5 e^(-0.045 * 89) = 0.09 (before, a two-epoch run
/// stayed near 5, its Gumbel-softmax samples near uniform throughout), and falls
/// step by step.
#[test]
fn a_short_run_anneals_over_the_papers_ninety_epochs() {
    assert_eq!(schedule_epoch(0, 100, 90), 0);
    assert_eq!(schedule_epoch(99, 100, 90), 89);
    assert_eq!(schedule_epoch(50, 100, 90), 45);
    let mut f = FakeSupernet::new(2, 3, 2, 45);
    let mut s = Fbnet::create(&fake_setup(&f, json!({}), 2, None)).unwrap();
    let mut taus = vec![];
    for epoch in 0..2 {
        for step in 0..45 {
            let out = s.step(&mut f, epoch, step).unwrap();
            taus.push(out.iter().find(|(k, _)| *k == "tau").unwrap().1 as f64);
        }
    }
    assert!((taus[0] - 5.0).abs() < 1e-6, "{taus:?}");
    let last = 5.0 * (-0.045f64 * 89.0).exp();
    assert!(
        (taus[89] - last).abs() < 1e-4 * last,
        "{} vs {last}",
        taus[89]
    );
    assert!(taus.windows(2).all(|w| w[1] < w[0]), "{taus:?}");
}

#[test]
fn the_first_ninth_of_the_steps_trains_the_weights_alone() {
    let mut f = FakeSupernet::new(2, 3, 2, 45);
    f.slope = vec![1.0, 0.5, -1.0, -1.0, 0.5, 1.0, -1.0, 1.0, -0.5];
    let mut s = Fbnet::create(&fake_setup(&f, json!({}), 1, None)).unwrap();
    assert_eq!(s.weights_only_steps, 10);
    let fresh = s.save().unwrap();
    for step in 0..10 {
        s.step(&mut f, 0, step).unwrap();
    }
    // Ten weight steps, no gradient call, no latency measured, no logit moved.
    assert_eq!((f.steps, f.mixes.len()), (10, 10));
    let mut state = s.save().unwrap();
    assert_ne!(state["rng"], fresh["rng"], "the weight steps drew samples");
    state["rng"] = fresh["rng"].clone();
    assert_eq!(state, fresh);
    s.step(&mut f, 0, 10).unwrap();
    assert_eq!((f.steps, f.mixes.len()), (11, 12));
    assert!(s.theta.iter().any(|t| *t != 0.0));
    // Every weight step trains on a soft sample: every candidate on, each group
    // summing to 1.
    for mix in &f.mixes {
        assert!(mix.iter().all(|w| *w > 0.0));
        assert!((mix[..3].iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }
    for (w, want) in [(0.0, 0), (0.5, 45), (0.99, 89)] {
        let s = Fbnet::create(&fake_setup(&f, json!({ "weights_only": w }), 1, None));
        assert_eq!(s.unwrap().weights_only_steps, want, "weights_only {w}");
    }
}

#[test]
fn bad_configs_name_the_field_and_the_value() {
    for (config, field, value) in [
        (json!({"alpha": 0}), "`alpha`", "0"),
        (json!({"alpha": -1.5}), "`alpha`", "-1.5"),
        (json!({"beta": -0.5}), "`beta`", "-0.5"),
        (json!({"beta": 1000}), "`beta`", "1000"),
        (json!({"beta": "high"}), "`beta`", "high"),
        (json!({"tau": 0}), "`tau`", "0"),
        (json!({"tau_decay": 1.5}), "`tau_decay`", "1.5"),
        (json!({"tau_decay": 0}), "`tau_decay`", "0"),
        (json!({"weights_only": 1}), "`weights_only`", "1"),
        (json!({"weights_only": -0.1}), "`weights_only`", "-0.1"),
        (json!({"latency_unit": "s"}), "`latency_unit`", "\"s\""),
        (json!({"arch_lr": 2}), "`arch_lr`", "2"),
        (
            json!({"arch_weight_decay": -1}),
            "`arch_weight_decay`",
            "-1",
        ),
        (json!({"warmup_epochs": 1}), "`warmup_epochs`", "fbnet"),
    ] {
        let e = Config::from_json(&config).unwrap_err();
        assert!(e.contains(field) && e.contains(value), "{config}: {e}");
    }
    let c = cfg(json!({}));
    assert_eq!(
        (c.alpha, c.beta, c.unit_per_ms, c.tau),
        (0.2, 0.6, 1000.0, 5.0)
    );
    assert!((c.tau_decay - 0.956).abs() < 1e-3 && c.arch_lr == 0.01);
    assert_eq!(c.arch_weight_decay, 5e-4);
}

#[test]
fn relaxed_samples_follow_the_cross_entropy_to_the_best_candidates() {
    let mut f = FakeSupernet::new(2, 3, 1, 300);
    f.slope = vec![1.0, 0.5, -1.0, -1.0, 0.5, 1.0, -1.0, 1.0, -0.5];
    let arch = run_on_fake::<Fbnet>(&mut f, json!({"beta": 0.0}), 1);
    assert_eq!((picked(&arch, 0), picked(&arch, 1)), (2, 0));
    assert_eq!(arch["in"], json!([0, 2]));
}

/// The export of a run on a fake supernet where the cross-entropy slightly prefers
/// the slow candidates and the latency table the fast ones, and its predicted
/// latency (the fake's `macs` is the sum of the export's latencies).
fn trade_off(config: Value) -> (Architecture, f64) {
    let mut f = FakeSupernet::new(2, 3, 1, 200);
    // The fake's cross-entropy is linear in the mix; an offset on the input choice
    // keeps it positive, as a real one is.
    f.slope = vec![0.3, 0.25, 0.2, 0.3, 0.25, 0.2, 1.0, 1.0, 1.0];
    f.latency = vec![0.2, 0.5, 0.9, 0.1, 0.3, 0.6, 0.0, 0.0, 0.0];
    let arch = run_on_fake::<Fbnet>(&mut f, config, 5);
    let lat = f.metrics(&arch).unwrap().macs.unwrap();
    (arch, lat)
}

#[test]
fn a_larger_latency_weight_exports_a_faster_architecture() {
    let (off, lat_off) = trade_off(json!({"beta": 0.0}));
    let (default, lat_default) = trade_off(json!({}));
    let (large, lat_large) = trade_off(json!({"beta": 6.0}));
    // Off: the cross-entropy decides (the slowest candidates); large: the latency.
    assert_eq!((picked(&off, 0), picked(&off, 1)), (2, 2), "{off:?}");
    assert_eq!((picked(&large, 0), picked(&large, 1)), (0, 0), "{large:?}");
    assert!(lat_large < lat_off, "{lat_large} vs {lat_off}");
    assert!(
        lat_default <= lat_off,
        "{lat_default} vs {lat_off} ({default:?})"
    );
}

#[test]
fn alpha_only_scales_the_loss_which_adam_ignores_without_decay() {
    // With `arch_weight_decay` 0, Adam sees the same gradient up to a constant
    // scale (its epsilon aside); with decay, alpha sets the decay's relative weight.
    let run = |alpha: f64| {
        let mut f = FakeSupernet::new(2, 3, 1, 100);
        f.slope = vec![0.3, 0.25, 0.2, 0.3, 0.25, 0.2, 1.0, 1.1, 0.9];
        f.latency = vec![0.2, 0.5, 0.9, 0.1, 0.3, 0.6, 0.0, 0.0, 0.0];
        let config = json!({ "alpha": alpha, "arch_weight_decay": 0.0 });
        let setup = fake_setup(&f, config, 3, None);
        let mut s = Fbnet::create(&setup).unwrap();
        s.run(&mut f, None).unwrap();
        s.theta
    };
    let (a, b) = (run(0.2), run(20.0));
    let moved = a.iter().fold(0.0f32, |m, t| m.max(t.abs()));
    assert!(moved > 0.1, "the logits moved by {moved}");
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() < 1e-4, "{a:?} vs {b:?}");
    }
}

#[test]
fn a_node_sums_its_edges_and_the_export_ranks_them_by_their_ops() {
    nas_strategies::testing::check_cell_relaxation::<Fbnet>(json!({}), 200);
}

#[test]
fn resuming_from_a_checkpoint_ends_where_an_uninterrupted_run_does() {
    nas_strategies::testing::check_resume::<Fbnet>(json!({}), || {
        let mut f = FakeSupernet::new(2, 3, 2, 100);
        f.slope = vec![1.0, 0.5, -1.0, -1.0, 0.5, 1.0, 2.0, 2.0, 2.0];
        f.latency = vec![0.2, 0.5, 0.9, 0.1, 0.3, 0.6, 0.0, 0.0, 0.0];
        f
    });
}

#[test]
fn a_saved_state_keeps_the_latency_table_and_refuses_another_supernet() {
    let mut f = FakeSupernet::new(2, 3, 1, 20);
    f.latency = vec![0.2, 0.5, 0.9, 0.1, 0.3, 0.6, 0.0, 0.0, 0.0];
    let mut s = Fbnet::create(&fake_setup(&f, json!({"weights_only": 0}), 1, None)).unwrap();
    s.step(&mut f, 0, 0).unwrap();
    let saved = s.save().unwrap();
    assert_eq!(saved["latency"], json!(f.latency));
    // A resumed run uses the saved table, not the host's (which may be re-measured).
    let mut other = FakeSupernet::new(2, 3, 1, 20);
    other.latency = vec![9.0; 9];
    let mut r = Fbnet::create(&fake_setup(&other, json!({}), 1, None)).unwrap();
    r.load(saved.clone()).unwrap();
    assert_eq!(r.latency(&mut other).unwrap(), f.latency);
    let small = FakeSupernet::new(1, 3, 1, 20);
    let mut t = Fbnet::create(&fake_setup(&small, json!({}), 1, None)).unwrap();
    assert!(t.load(saved).unwrap_err().contains("does not fit"));
}
