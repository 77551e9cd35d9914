//! The unit tests of `nas_strategy_qlearning`, kept out of the library so that `cargo test` builds
//! the plugin once (a test harness inside the library would compile it twice).

use nas_strategies::decisions;
use nas_strategies::serde_json;
use nas_strategies::testing::*;
use nas_strategies::{json, Choice, Strategy, Value};
use nas_strategy_qlearning::*;

fn make(space: Vec<Choice>, config: Value, seed: u64, budget: usize) -> QLearning {
    QLearning::new(&setup(space, config, seed, budget)).unwrap()
}

#[test]
fn configured_epsilon_schedule_in_counts_and_fractions() {
    let s = make(layer_space(3, 3), json!({}), 0, 150);
    assert_eq!(s.epsilon_at(0), 1.0);
    // A configured schedule, in counts and fractions.
    let c = json!({"epsilon_schedule": [
        {"epsilon": 1.0, "models": 5},
        {"epsilon": 0.5, "fraction": 0.5},
        {"epsilon": 0.0, "models": 1}
    ]});
    let s = make(layer_space(3, 3), c, 0, 20);
    let eps: Vec<f64> = (0..18).map(|n| s.epsilon_at(n)).collect();
    assert_eq!(eps[..5], [1.0; 5]);
    assert_eq!(eps[5..15], [0.5; 10]);
    assert_eq!(eps[15..], [0.0; 3]);
    // Fractions: shares 3.33, 3.33, 3.33 of 10 -> 4, 3, 3 (ties to the earlier);
    // an empty stage is dropped, the rest keep their order.
    let c = json!({"epsilon_schedule": [
        {"epsilon": 0.9, "fraction": 1.0 / 3.0},
        {"epsilon": 0.7, "models": 0},
        {"epsilon": 0.5, "fraction": 1.0 / 3.0},
        {"epsilon": 0.2, "fraction": 1.0 / 3.0}
    ]});
    let s = make(layer_space(3, 3), c, 0, 10);
    assert_eq!(s.cfg.schedule, vec![(0.9, 4), (0.5, 7), (0.2, 10)]);
    assert_eq!(stages(&s, 10), vec![(0.9, 4), (0.5, 3), (0.2, 3)]);
}

#[test]
fn epsilon_follows_the_schedule_while_searching() {
    let space = layer_space(4, 3);
    let c = json!({"epsilon_schedule": [
        {"epsilon": 1.0, "models": 40}, {"epsilon": 0.0, "models": 1}
    ], "max_resample": 0});
    // A Q-table favouring one path by far: with epsilon 1 the asks ignore it (each
    // choice agrees with the path about a third of the time, not always).
    let favour = |s: &mut QLearning, p: &[usize]| {
        for i in 0..p.len() {
            let prev = if i == 0 { 0 } else { p[i - 1] };
            s.q[i][prev][p[i]] = 2.0; // above any reward, so the unique maximum
        }
    };
    // (Checked on each fresh agent's first ask: later ones could be masked by the
    // resampling of known architectures.)
    let p = vec![2, 0, 1, 2];
    let mut on_path = 0;
    for seed in 0..40 {
        let mut s = make(space.clone(), c.clone(), seed, 60);
        favour(&mut s, &p);
        let a = s.ask().unwrap().unwrap();
        on_path += (decisions::from_arch(&space, &a).unwrap() == p) as usize;
    }
    assert!(
        on_path <= 3,
        "{on_path} of 40 first asks on the favoured path"
    );

    // After 40 random models, a path not evaluated yet and not the current greedy
    // one is made clearly best: the next ask, at epsilon 0, is exactly that path.
    let mut s = make(space.clone(), c, 3, 60);
    let obj = Objective::new(&space, 3);
    drive(&mut s, &obj, 40, 1);
    assert_eq!(s.asked, 40);
    assert_eq!(s.epsilon_at(s.asked), 0.0);
    let old_greedy = s.greedy();
    let p: Vec<usize> = (0..81usize)
        .map(|n| vec![n / 27, n / 9 % 3, n / 3 % 3, n % 3])
        .find(|d| *d != old_greedy && !s.evaluated.contains_key(&decisions::key(&space, d)))
        .expect("40 of 81 evaluated");
    favour(&mut s, &p);
    assert_eq!(s.greedy(), p);
    let a = s.ask().unwrap().unwrap();
    assert_eq!(
        decisions::from_arch(&space, &a).unwrap(),
        p,
        "epsilon 0 walks the greedy path"
    );
    assert_eq!(decisions::to_arch(&space, &p), a);
}

/// The stages of the schedule as (epsilon, number of asks), read back from
/// `epsilon_at` over the budget (zero-length stages are invisible).
fn stages(s: &QLearning, budget: usize) -> Vec<(f64, usize)> {
    let mut out: Vec<(f64, usize)> = vec![];
    for n in 0..budget {
        let e = s.epsilon_at(n);
        match out.last_mut() {
            Some((le, c)) if *le == e => *c += 1,
            _ => out.push((e, 1)),
        }
    }
    out
}

const PAPER_EPS: [f64; 10] = [1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1];

#[test]
fn default_schedule_is_metaqnns_scaled_to_the_budget() {
    // Budget 2700: exactly the published schedule (Baker et al. 2017).
    let s = make(layer_space(3, 3), json!({}), 0, 2700);
    let paper = [1500, 100, 100, 100, 150, 150, 150, 150, 150, 150];
    let want: Vec<(f64, usize)> = PAPER_EPS.iter().cloned().zip(paper).collect();
    assert_eq!(stages(&s, 2700), want);
    assert_eq!(
        s.epsilon_at(2700),
        0.1,
        "the last epsilon holds after the budget"
    );

    // Budget 150, by hand: 150 * count / 2700 is
    //   1500 -> 83.33, 100 -> 5.56 (x3), 150 -> 8.33 (x6);
    // floors 83 + 3*5 + 6*8 = 146, 4 models left over, given by largest remainder:
    // the three 0.56 remainders first (5 -> 6), then the first of the seven tied
    // 0.33 remainders in stage order (83 -> 84). 84 + 3*6 + 6*8 = 150.
    let want150 = [84, 6, 6, 6, 8, 8, 8, 8, 8, 8];
    assert_eq!(want150.iter().sum::<usize>(), 150);
    let want: Vec<(f64, usize)> = PAPER_EPS.iter().cloned().zip(want150).collect();
    let space = layer_space(6, 4);
    let obj = Objective::new(&space, 9);
    let mut s = make(space.clone(), json!({}), 9, 150);
    assert_eq!(stages(&s, 150), want);
    assert_eq!(s.cfg.replay, 128, "the paper replays 128 samples per model");
    assert_eq!((s.cfg.alpha, s.cfg.discount), (0.01, 1.0));

    // The epsilon actually used by each ask follows the stages: drive the search
    // through the Strategy trait (two asks in flight), recording the schedule's
    // clock before each ask.
    let mut used = vec![];
    while used.len() < 150 {
        let mut asked = vec![];
        for _ in 0..2 {
            let before = s.asked;
            used.push(s.epsilon_at(before));
            asked.push(Strategy::ask(&mut s).unwrap().unwrap());
            assert_eq!(s.asked, before + 1, "one tick of the schedule per ask");
        }
        for a in asked.iter().rev() {
            Strategy::tell(&mut s, a, &obj.metrics(a)).unwrap();
        }
    }
    let expected: Vec<f64> = want
        .iter()
        .flat_map(|&(e, n)| std::iter::repeat(e).take(n))
        .collect();
    assert_eq!(used, expected);

    // Tiny budgets keep the stages in order, drop the empty ones, and sum exactly.
    for budget in [1, 2, 7, 10, 27, 100, 1000, 2699, 2701, 5400] {
        let s = make(layer_space(3, 3), json!({}), 0, budget);
        let st = stages(&s, budget);
        assert_eq!(st.iter().map(|x| x.1).sum::<usize>(), budget, "{budget}");
        let eps: Vec<f64> = st.iter().map(|x| x.0).collect();
        assert!(eps.windows(2).all(|w| w[0] > w[1]), "{budget}: {eps:?}");
        assert_eq!(eps[0], 1.0, "{budget}");
        for (e, n) in st {
            let k = PAPER_EPS.iter().position(|&p| p == e).unwrap();
            let exact = budget as f64 * paper[k] as f64 / 2700.0;
            assert!((n as f64 - exact).abs() < 1.0, "{budget}: {n} vs {exact}");
        }
    }
}

#[test]
fn counts_beyond_their_bounds_are_refused() {
    let sp = layer_space(2, 2);
    let huge = 1u64 << 53;
    for (c, field, range) in [
        (json!({"replay": huge}), "replay", "0..=100000"),
        (json!({"max_resample": huge}), "max_resample", "0..=10000"),
    ] {
        let e = QLearning::new(&setup(sp.clone(), c.clone(), 0, 10))
            .err()
            .unwrap_or_else(|| panic!("{c} accepted"));
        assert!(
            e.contains(&format!("`{field}`")) && e.contains(&huge.to_string()) && e.contains(range),
            "{c}: {e}"
        );
    }
}

#[test]
fn bad_config_names_the_field() {
    let sp = layer_space(2, 2);
    for (c, f) in [
        (json!({"alpha": 0}), "`alpha`"),
        (json!({"replay": -1}), "`replay`"),
        (
            json!({"epsilon_schedule": [{"epsilon": 2.0, "models": 3}]}),
            "`epsilon_schedule`",
        ),
        (
            json!({"epsilon_schedule": [{"epsilon": 0.5}]}),
            "`epsilon_schedule`",
        ),
        (json!({"epsilonschedule": []}), "`epsilonschedule`"),
        (json!({"epsilon_schedule": []}), "`epsilon_schedule`: []"),
        (
            json!({"epsilon_schedule": [{"epsilon": 0.5, "fraction": -0.1}]}),
            "`epsilon_schedule`: [{\"epsilon\":0.5,\"fraction\":-0.1}]",
        ),
        (
            json!({"epsilon_schedule": [{"epsilon": 0.5, "models": 1.5}]}),
            "`epsilon_schedule`",
        ),
        (
            json!({"epsilon_schedule": [{"epsilon": 0.5, "models": 2, "fraction": 0.1}]}),
            "`epsilon_schedule`",
        ),
        (json!({"epsilon_schedule": [0.5]}), "`epsilon_schedule`"),
        (
            json!({"epsilon_schedule": {"epsilon": 0.5}}),
            "`epsilon_schedule`",
        ),
    ] {
        let e = QLearning::new(&setup(sp.clone(), c, 0, 10)).err().unwrap();
        assert!(e.contains(f), "{e}");
    }
}

#[test]
fn asks_are_valid_on_a_mixed_space_and_mostly_new() {
    let space = mixed_space();
    let obj = Objective::new(&space, 2);
    let mut s = make(space.clone(), json!({}), 2, 120);
    drive(&mut s, &obj, 120, 3);
    assert!(s.pending.is_empty());
    assert!(
        s.evaluated.len() >= 115,
        "{} distinct of 120",
        s.evaluated.len()
    );
    // Q values stay within the rewards' range.
    for t in &s.q {
        for row in t {
            for v in row {
                assert!((0.0..=1.02).contains(v), "{v}");
            }
        }
    }
}

#[test]
fn save_new_load_keeps_the_q_table_and_continues() {
    let space = mixed_space();
    let obj = Objective::new(&space, 4);
    let mut a = make(space.clone(), json!({}), 4, 100);
    drive(&mut a, &obj, 50, 1);
    let inflight = a.ask().unwrap().unwrap();
    let text = serde_json::to_string(&a.save().unwrap()).unwrap();
    let mut b = make(space.clone(), json!({}), 77, 100);
    b.load(serde_json::from_str(&text).unwrap()).unwrap();
    assert_eq!(a.q, b.q);
    assert_eq!(a.memory, b.memory);
    assert_eq!(a.evaluated, b.evaluated);
    assert_eq!(a.asked, b.asked);
    for _ in 0..5 {
        let (x, y) = (a.ask().unwrap().unwrap(), b.ask().unwrap().unwrap());
        assert_eq!(x, y);
        let m = obj.metrics(&x);
        a.tell(&x, &m).unwrap();
        b.tell(&y, &m).unwrap();
    }
    assert_eq!(a.q, b.q);
    b.tell(&inflight, &obj.metrics(&inflight)).unwrap();
    assert!(b.pending.is_empty());
    drive(&mut b, &obj, 20, 2);
    let e = b.load(json!({"q": [[[0.5]]]})).err().unwrap();
    assert!(e.contains("Q-table"), "{e}");
}

#[test]
fn beats_random_search_at_equal_budget() {
    let space = layer_space(6, 4);
    let (mut ours, mut rand) = (vec![], vec![]);
    for seed in 0..16 {
        let obj = Objective::new(&space, 200 + seed);
        let mut s = make(space.clone(), json!({}), seed, 150);
        ours.push(best(&drive(&mut s, &obj, 150, 1)));
        rand.push(best(&random_search(&obj, seed, 150)));
    }
    let (o, r) = (mean(&ours), mean(&rand));
    eprintln!("qlearning best {o:.3} vs random {r:.3}");
    assert!(o > r + 0.05, "qlearning {o:.3} vs random {r:.3}");
}

/// Two asks in flight for one network (they differ only in choices it does not build)
/// are told first in, first out; a save sorted them, so a resumed run could update Q
/// along the other's trajectory than the uninterrupted run did.
#[test]
fn in_flight_asks_of_one_network_keep_their_order_through_a_save() {
    let space = mixed_space();
    let mut a = make(space.clone(), json!({}), 6, 100);
    let depth = space.iter().position(|c| c.label == "depth").unwrap();
    let arch = a.ask().unwrap().unwrap();
    a.pending.clear();
    let mut d = decisions::from_arch(&space, &arch).unwrap();
    d[depth] = 0;
    let active = decisions::active_mask(&space, &d);
    let i = (0..space.len())
        .find(|&i| !active[i] && space[i].size() >= 2)
        .unwrap();
    let (mut first, mut second) = (d.clone(), d.clone());
    (first[i], second[i]) = (1, 0);
    let key = decisions::key(&space, &first);
    assert_eq!(key, decisions::key(&space, &second));
    a.pending
        .insert(key.clone(), vec![first.clone(), second.clone()]);
    let mut b = make(space.clone(), json!({}), 6, 100);
    b.load(a.save().unwrap()).unwrap();
    assert_eq!(b.pending[&key], vec![first, second]);
}
