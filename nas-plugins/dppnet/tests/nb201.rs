//! DPP-Net on the NAS-Bench-201 table, run as `nas bench-strategies` and `nas search`
//! run a strategy (query seeds `trial_seed(1000 + run, query)`), with what a run returns
//! computed by the host's own code (`experiment::candidates` under the run's hard
//! limits, `experiment::pareto` against latency). The latency is the table's. The
//! harness is `nas_predict::testing`'s.

use nas_core::evaluate::{Evaluator, Nb201Table};
use nas_core::experiment::{self, Limits, TrialRecord};
use nas_predict::testing::{self as nb, nb201_space as space, nb201_table as table};
use nas_strategies::{json, Choice, Setup, Strategy, Value};
use nas_strategy_dppnet::Dppnet;
use std::collections::BTreeSet;

const BUDGET: usize = 150;

/// One run's journal.
fn run(table: &Nb201Table, space: &[Choice], config: &Value, seed: u64) -> Vec<TrialRecord> {
    let setup = Setup {
        space: space.to_vec(),
        config: config.clone(),
        seed,
        budget: BUDGET,
    };
    let mut s = Dppnet::new(&setup).unwrap();
    nb::search(table, &mut s, BUDGET, |t| nb::trial_seed(1000 + seed, t))
}

/// The latency (ms) below which `q` of the table's architectures lie.
fn latency_quantile(table: &Nb201Table, q: f64) -> f64 {
    let mut l: Vec<f64> = table.rows.values().map(|r| r.latency_s * 1e3).collect();
    l.sort_by(f64::total_cmp);
    l[(q * l.len() as f64) as usize]
}

/// The run's Pareto front against latency, as the host returns it: architecture strings.
fn front(journal: &[TrialRecord], limits: &Limits) -> Vec<(String, f64)> {
    let c = experiment::candidates(journal, limits);
    experiment::pareto(&c, |m| m.latency_ms)
        .into_iter()
        .map(|i| {
            (
                c[i].metrics.extra["arch_str"].as_str().unwrap().to_string(),
                c[i].metrics.latency_ms.unwrap(),
            )
        })
        .collect()
}

/// With a latency budget at the table's 10th percentile, every architecture of the
/// front the host returns is within it, and the front differs from the unconstrained
/// run's (which goes over the budget). The plugin's own filter, which acts on predicted
/// latencies and checks each pick by the host's exact costs before asking it, keeps
/// every ask within the budget (on predictions alone it kept 418 of 450) and evaluates
/// at least 1.5 times as many architectures within it as the unconstrained search
/// (measured: 450 against 227).
#[test]
fn a_latency_budget_holds_and_changes_the_front() {
    let table = table();
    let space = space();
    let budget = latency_quantile(&table, 0.1);
    let cfg = json!({ "max_latency_ms": budget });
    let limits = Limits::from_config(&cfg).unwrap();
    let (mut over, mut asks, mut feasible_free, mut feasible_constrained) = (0, 0, 0, 0);
    for seed in 0..3 {
        let constrained = run(&table, &space, &cfg, seed);
        let free = run(&table, &space, &json!({}), seed);
        assert_eq!(constrained.len(), BUDGET);
        let lat = |t: &TrialRecord| t.metrics.latency_ms.unwrap();
        asks += constrained.len();
        over += constrained.iter().filter(|t| lat(t) > budget).count();
        feasible_constrained += constrained.iter().filter(|t| lat(t) <= budget).count();
        feasible_free += free.iter().filter(|t| lat(t) <= budget).count();

        // What the host returns: every member within the budget.
        let returned = front(&constrained, &limits);
        assert!(!returned.is_empty());
        for (a, l) in &returned {
            assert!(*l <= budget, "seed {seed}: {a} takes {l} ms > {budget}");
        }
        // Without the host's filter, the plugin's front is within the budget too.
        let unconstrained = front(&free, &Limits::default());
        assert!(unconstrained.iter().any(|(_, l)| *l > budget));
        let set = |f: &[(String, f64)]| f.iter().map(|x| x.0.clone()).collect::<BTreeSet<_>>();
        assert_ne!(set(&returned), set(&unconstrained), "seed {seed}");
    }
    eprintln!(
        "budget {budget:.2} ms: {over} of {asks} asks over it; within it: \
         {feasible_constrained} constrained, {feasible_free} unconstrained"
    );
    assert_eq!(over, 0, "{over} of {asks} asks over the budget");
    assert!(2 * feasible_constrained >= 3 * feasible_free);
}

/// A memory budget (weights and a batch of 64 images' activations, MiB) holds for every
/// architecture asked when the host opens its cost model (as `nas search` does: the
/// selection's picks are checked by their exact costs), and not when it does not: the
/// plugin's additive prediction of memory misses, since an edge's activations depend on
/// what the rest of the cell keeps alive (measured without the host's costs: 17 of 40
/// asks over a 100 MiB budget in `nas search`). A filter that ignored the exact costs,
/// or memory without activations, would fail the first half.
#[test]
fn a_memory_budget_holds_for_every_ask_with_the_hosts_costs() {
    let mut table = table();
    table.count_macs = true; // activations in each query's metrics, as `nas search` has
    let space = space();
    let cfg = json!({ "max_memory_mb": 100, "batch": 64 });
    let memory = |m: &nas_strategies::Metrics| {
        (4.0 * m.params.unwrap() + 4.0 * 64.0 * m.extra["activations"].as_f64().unwrap())
            / (1024.0 * 1024.0)
    };
    let setup = Setup {
        space: space.clone(),
        config: cfg,
        seed: 0,
        budget: 30,
    };
    // With the host's costs (the harness opens them to every ask).
    let mut s = Dppnet::new(&setup).unwrap();
    let costed = nb::search(&table, &mut s, 30, |t| nb::trial_seed(1000, t));
    assert!(costed.len() >= 20, "{} asks", costed.len());
    for t in &costed {
        let m = memory(&t.metrics);
        assert!(m <= 100.0, "trial {}: {m:.1} MiB", t.trial);
    }
    // Without them (plain asks).
    let mut s = Dppnet::new(&setup).unwrap();
    let mut over = 0;
    for q in 0..30 {
        let Some(arch) = s.ask().unwrap() else { break };
        let m = table.evaluate(&arch, nb::trial_seed(1000, q)).unwrap();
        over += (memory(&m) > 100.0) as usize;
        s.tell(&arch, &m).unwrap();
    }
    eprintln!(
        "over 100 MiB: 0 of {} with the host's costs, {over} of 30 without",
        costed.len()
    );
    assert!(
        over > 0,
        "the prediction alone kept every ask within the budget"
    );
}

/// The host's costs of a network the device cannot run come back marked failed (as the
/// train evaluator answers when measuring its latency fails on the device): such a
/// network is over every limit, never asked, and the search goes on. Here the device
/// "cannot run" the slowest 30% of the table, and the limit is the 95th percentile of
/// latency, which most of those are under: before, they were asked (their failed costs
/// had no latency, which passed the check).
#[test]
fn networks_the_device_cannot_run_are_never_asked() {
    use nas_strategies::{Architecture, Costs, Metrics};
    let table = table();
    let (runs_below, limit) = (
        latency_quantile(&table, 0.7),
        latency_quantile(&table, 0.95),
    );
    let costs = |a: &Architecture| -> Result<Metrics, String> {
        let m = table.costs(a)?;
        if m.latency_ms.unwrap() <= runs_below {
            return Ok(m);
        }
        let mut failed = Metrics::failed("the device cannot run it: out of memory");
        failed.params = m.params;
        Ok(failed)
    };
    let setup = Setup {
        space: space(),
        config: json!({ "max_latency_ms": limit }),
        seed: 0,
        budget: 40,
    };
    let mut s = Dppnet::new(&setup).unwrap();
    let mut asked = 0;
    for t in 0..40 {
        let Some(arch) = s.ask_costed(&Costs::Local(&costs)).unwrap() else {
            break;
        };
        let m = table.evaluate(&arch, nb::trial_seed(1000, t)).unwrap();
        let ms = m.latency_ms.unwrap();
        assert!(
            ms <= runs_below,
            "ask {t}: {ms:.2} ms, which the device cannot run"
        );
        s.tell(&arch, &m).unwrap();
        asked += 1;
    }
    assert_eq!(asked, 40, "the search stopped early");
}

/// Limits no architecture of the space meets end the search once `max_over` were
/// costed, all over them, with an error naming the limits and the least cost seen;
/// before, the plugin costed 11,303 architectures (the whole pool, then a sample) over
/// 109 s and ended with nothing to say. Limits one architecture in a hundred meets are
/// not taken for out of reach.
#[test]
fn limits_out_of_reach_end_the_search_after_max_over_over_them() {
    use nas_strategies::{Architecture, Costs};
    use std::cell::Cell;
    let table = table();
    let calls = Cell::new(0usize);
    let costs = |a: &Architecture| {
        calls.set(calls.get() + 1);
        table.costs(a)
    };
    let least = table
        .rows
        .values()
        .map(|r| r.params_mb * 1e6)
        .fold(f64::INFINITY, f64::min);
    let setup = |config| Setup {
        space: space(),
        config,
        seed: 0,
        budget: 40,
    };
    let mut s = Dppnet::new(&setup(json!({"max_params": 1, "max_over": 200}))).unwrap();
    let e = s.ask_costed(&Costs::Local(&costs)).unwrap_err();
    assert_eq!(calls.get(), 200, "{e}");
    assert!(e.contains("all 200 architectures costed"), "{e}");
    assert!(e.contains("(params <= 1, the least seen "), "{e}");
    assert!(e.contains("`max_over` (now 200)"), "{e}");
    let seen: f64 = e
        .split("the least seen ")
        .nth(1)
        .and_then(|t| t.split(')').next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no least cost in: {e}"));
    assert!(seen >= least && seen > 1.0, "{seen} < {least}");
    // Within reach of 1% of the space: found, then searched with no end for reach.
    let limit = latency_quantile(&table, 0.01);
    let mut s = Dppnet::new(&setup(json!({"max_latency_ms": limit}))).unwrap();
    let mut asked = 0;
    while let Some(arch) = s.ask_costed(&Costs::Local(&costs)).unwrap() {
        let m = table.evaluate(&arch, nb::trial_seed(1000, asked)).unwrap();
        assert!(m.latency_ms.unwrap() <= limit);
        s.tell(&arch, &m).unwrap();
        asked += 1;
        if asked == 40 {
            break;
        }
    }
    assert_eq!(asked, 40);
}

/// A saved search loaded into a fresh strategy asks exactly what the original asks.
#[test]
fn a_loaded_search_continues_exactly() {
    let table = table();
    let space = space();
    let setup = Setup {
        space: space.clone(),
        config: json!({"max_params": 4e5, "rounds": 3}),
        seed: 5,
        budget: 60,
    };
    let mut a = Dppnet::new(&setup).unwrap();
    let step = |s: &mut Dppnet, t: usize| {
        let arch = s.ask().unwrap().unwrap();
        s.tell(&arch, &table.evaluate(&arch, t as u64).unwrap())
            .unwrap();
        arch
    };
    for t in 0..25 {
        step(&mut a, t);
    }
    let mut b = Dppnet::new(&setup).unwrap();
    b.load(a.save().unwrap()).unwrap();
    for t in 25..60 {
        assert_eq!(step(&mut a, t), step(&mut b, t), "ask {t}");
    }
}

#[test]
fn config_errors_name_the_field_and_value() {
    let space = space();
    for (cfg, want) in [
        (json!({"max_latency_ms": -3}), "`max_latency_ms`: -3"),
        (json!({"max_memory_mb": "big"}), "`max_memory_mb`: \"big\""),
        (json!({"margin": 500.0}), "`margin`: 500"),
        (json!({"rounds": 0}), "`rounds`: 0"),
        (json!({"batch": 0}), "`batch`: 0"),
        (json!({"beam": 0}), "`beam`: 0"),
        (json!({"max_over": 0}), "`max_over`: 0"),
        (json!({"latency": 5}), "`latency`"),
    ] {
        let setup = Setup {
            space: space.clone(),
            config: cfg.clone(),
            seed: 0,
            budget: 10,
        };
        let e = Dppnet::new(&setup).err().expect("an error");
        assert!(e.contains(want), "{cfg}: {e}");
    }
}
