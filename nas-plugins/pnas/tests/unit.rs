//! The unit tests of `nas_strategy_pnas`, kept out of the library so that `cargo test` builds
//! the plugin once (a test harness inside the library would compile it twice).

use nas_strategies::decisions;
use nas_strategies::serde_json;
use nas_strategies::testing::*;
use nas_strategies::{json, Choice, ChoiceKind, Rng, Strategy, Value};
use nas_strategy_pnas::*;
use std::collections::HashSet;

fn make(space: Vec<Choice>, config: Value, seed: u64, budget: usize) -> Pnas {
    Pnas::new(&setup(space, config, seed, budget)).unwrap()
}

/// NAS-Bench-201's cell as the `nb201` space describes it: six edges `edge_J_I`, each
/// of the benchmark's five ops.
fn nb201_like() -> Vec<Choice> {
    let ops = [
        "none",
        "skip_connect",
        "nor_conv_1x1",
        "nor_conv_3x3",
        "avg_pool_3x3",
    ];
    [(1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2)]
        .iter()
        .map(|(j, i)| Choice {
            label: format!("edge_{j}_{i}"),
            kind: ChoiceKind::Layer {
                candidates: ops.iter().map(|s| s.to_string()).collect(),
            },
            inside: None,
            edge_ops: vec![],
        })
        .collect()
}

/// Asks one, tells it, and returns its decisions.
fn step(s: &mut Pnas, obj: &Objective, space: &[Choice]) -> Vec<usize> {
    let a = s.ask().unwrap().unwrap();
    s.tell(&a, &obj.metrics(&a)).unwrap();
    decisions::from_arch(space, &a).unwrap()
}

#[test]
fn blocks_are_nodes_in_nb201_and_choices_elsewhere() {
    let s = make(nb201_like(), json!({}), 0, 150);
    assert_eq!(s.blocks(), vec![0..1, 1..3, 3..6]);
    assert!(s.smaller_cells_are_real());
    // Node 1 grown: node 2 = node 1 (skip from 1), node 3 = node 2 (skip from 2).
    assert_eq!(s.complete(&[3]), vec![3, 0, 1, 0, 0, 1]);
    assert_eq!(s.complete(&[3, 2, 4]), vec![3, 2, 4, 0, 0, 1]);
    let s = make(layer_space(4, 3), json!({}), 0, 150);
    assert_eq!(s.blocks(), vec![0..1, 1..2, 2..3, 3..4]);
    assert!(!s.smaller_cells_are_real());
    assert_eq!(s.complete(&[2, 1]), vec![2, 1, 0, 0]);
    let s = make(nested_space(2, 3), json!({}), 0, 150);
    assert_eq!(s.blocks().len(), s.space.len());
}

/// A `darts` node of three edges is 3 input pairs x 8 x 8 ops = 192 networks: the op
/// named for the unpicked edge builds nothing. A budget of 192 evaluates each once
/// (the block's 1,536 combinations counted as cells, 256 of them were sampled, many
/// the same network).
#[test]
fn a_darts_node_grows_by_its_networks() {
    use nas_strategies::testing::{darts_cell, darts_network};
    let space = darts_cell(3, 1, 8);
    let obj = Objective::new(&space, 1);
    let mut s = make(space.clone(), json!({}), 0, 192);
    assert_eq!(s.blocks(), vec![0..4]);
    let mut networks = HashSet::new();
    for _ in 0..192 {
        let a = s.ask().unwrap().unwrap();
        nas_strategies::validate(&space, &a).unwrap();
        assert!(networks.insert(darts_network(&a)), "asked twice: {a:?}");
        s.tell(&a, &obj.metrics(&a)).unwrap();
    }
    assert_eq!(networks.len(), 192);
}

/// The expansions of nb201 cells `parents` (prefixes of 1 or 3 edges) by their next
/// node, completed with pass-throughs: built here, independently of the plugin.
fn nb201_expansions(parents: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let mut out = vec![];
    for p in parents {
        let (width, fill) = if p.len() == 1 {
            (2, vec![0, 0, 1])
        } else {
            (3, vec![])
        };
        for r in 0..5usize.pow(width) {
            let mut c = p.clone();
            c.extend((0..width).rev().map(|w| r / 5usize.pow(w) % 5));
            c.extend(&fill);
            out.push(c);
        }
    }
    out
}

/// Drives nb201 to its budget of 150 one ask at a time, checking every batch: depth 1
/// is the five 1-node cells; each later batch is the surrogate's top `r` (of the
/// depth's `K`, in `rounds` batches) among the expansions of the previous depth's kept
/// cells not picked yet, and asks exactly those not evaluated before.
fn check_growth_and_ranking(config: Value, rounds: usize) {
    let space = nb201_like();
    let obj = Objective::new(&space, 4);
    let mut s = make(space.clone(), config, 4, 150);
    let key = |d: &[usize]| decisions::key(&space, d);
    let mut evaluated: Vec<Vec<usize>> = (0..5).map(|_| step(&mut s, &obj, &space)).collect();
    let mut firsts: Vec<usize> = evaluated.iter().map(|d| d[0]).collect();
    firsts.sort();
    assert_eq!(firsts, vec![0, 1, 2, 3, 4]);
    // Each the real cell `out = op(in)`: node 2 and node 3 pass node 1 through.
    assert!(evaluated.iter().all(|d| d[1..] == [0, 1, 0, 0, 1]));
    let mut asked = 5;
    let (mut expansions, mut picked): (Vec<Vec<usize>>, HashSet<String>) = (vec![], HashSet::new());
    let (mut k, mut to_pick, mut continuation) = (0, 0, false);
    let mut batches = [0; 4];
    while asked < 150 {
        assert!(
            s.queue.is_empty(),
            "a batch is asked whole before the next starts"
        );
        let (depth_before, kept_before) = (s.depth(), s.kept().to_vec());
        let first = s.ask().unwrap().unwrap();
        let depth = s.depth();
        if depth != depth_before {
            assert_eq!(depth, depth_before + 1, "one block deeper at a time");
            expansions = nb201_expansions(&kept_before);
            picked.clear();
            k = (150 - asked) / (4 - depth);
            to_pick = k.min(expansions.len());
        } else if to_pick == 0 {
            // Full depth, K picked: more of the same expansions, those not evaluated.
            assert_eq!(depth, 3);
            continuation = true;
            k = 150 - asked;
        }
        let seen: HashSet<String> = evaluated.iter().map(|d| key(d)).collect();
        let left: Vec<&Vec<usize>> = expansions
            .iter()
            .filter(|c| !picked.contains(&key(c)) && !(continuation && seen.contains(&key(c))))
            .collect();
        if continuation {
            to_pick = k.min(left.len());
        }
        let r = k.div_ceil(rounds).clamp(1, to_pick);
        let now: Vec<String> = s.kept().iter().map(|p| key(&s.complete(p))).collect();
        let new: HashSet<String> = now[if depth == depth_before {
            kept_before.len()
        } else {
            0
        }..]
            .iter()
            .cloned()
            .collect();
        assert_eq!(new.len(), r, "depth {depth}: a batch of {r}");
        let cells: Vec<Vec<usize>> = left.iter().map(|c| (*c).clone()).collect();
        let scores = s.predict(&cells);
        let (mut lo_new, mut hi_other) = (f32::MAX, f32::MIN);
        let mut found = 0;
        for (c, sc) in cells.iter().zip(&scores) {
            if new.contains(&key(c)) {
                found += 1;
                lo_new = lo_new.min(*sc);
            } else {
                hi_other = hi_other.max(*sc);
            }
        }
        assert_eq!(found, r, "depth {depth}: the batch is made of expansions");
        assert!(
            lo_new > hi_other,
            "depth {depth}: not the top {r}: {lo_new} vs {hi_other}"
        );
        picked.extend(new.iter().cloned());
        to_pick -= r;
        batches[depth] += 1;
        // The batch's asks: its cells not evaluated before, nothing else.
        let want: HashSet<String> = new.difference(&seen).cloned().collect();
        let d = decisions::from_arch(&space, &first).unwrap();
        s.tell(&first, &obj.metrics(&first)).unwrap();
        let mut got: HashSet<String> = [key(&d)].into_iter().collect();
        evaluated.push(d);
        asked += 1;
        while !s.queue.is_empty() && asked < 150 {
            let d = step(&mut s, &obj, &space);
            assert_eq!(s.depth(), depth);
            got.insert(key(&d));
            evaluated.push(d);
            asked += 1;
        }
        if asked < 150 {
            assert_eq!(got, want, "depth {depth}");
        } else {
            assert!(got.is_subset(&want), "depth {depth}");
        }
    }
    assert!(
        batches[2] >= rounds.min(8) && batches[3] >= rounds.min(8),
        "{batches:?}"
    );
    assert!(s.history.iter().all(|(_, depth, _)| *depth <= 3));
}

#[test]
fn pnas_grows_block_by_block_with_the_surrogate_ranking() {
    // The default, the paper's: a single batch per depth.
    check_growth_and_ranking(json!({}), 1);
    // The option: each depth's K in 8 batches, the surrogate refit between them.
    check_growth_and_ranking(json!({"rounds": 8}), 8);
}

#[test]
fn local_search_is_an_option() {
    let space = nb201_like();
    let obj = Objective::new(&space, 5);
    // Off by default: even asked past its budget, nothing but depths 1 to 3.
    let mut s = make(space.clone(), json!({}), 5, 150);
    drive(&mut s, &obj, 220, 1);
    assert!(s.history.iter().all(|(_, depth, _)| *depth <= 3));
    // On: after the depth-3 picks, the rest are mutants (tagged depth 4) of results,
    // one or two choices away, ranked by the surrogate.
    let mut s = make(space.clone(), json!({"local_search": true}), 5, 150);
    drive(&mut s, &obj, 150, 1);
    let tags: Vec<usize> = s.history.iter().map(|(_, t, _)| *t).collect();
    let first = tags
        .iter()
        .position(|&t| t == 4)
        .expect("local search results");
    assert!(tags[..first].windows(2).all(|w| w[0] <= w[1] && w[1] <= 3));
    assert!(tags[first..].iter().all(|&t| t == 4), "{tags:?}");
    assert!(150 - first >= 40, "{} local search asks", 150 - first);
    for (t, (d, _, _)) in s.history.iter().enumerate().skip(first) {
        let near = s.history[..t]
            .iter()
            .any(|(e, _, _)| e.iter().zip(d).filter(|(x, y)| x != y).count() <= 2);
        assert!(near, "{d:?} is not a mutant of an earlier result");
    }
}

#[test]
fn asks_are_valid_and_new_on_a_mixed_space_with_asks_in_flight() {
    let space = mixed_space();
    let obj = Objective::new(&space, 8);
    for config in [json!({}), json!({"local_search": true}), json!({"beam": 3})] {
        let mut s = make(space.clone(), config.clone(), 8, 120);
        let accs = drive(&mut s, &obj, 120, 5);
        assert_eq!(accs.len(), 120);
        assert!(s.pending.is_empty());
        assert_eq!(s.depth(), s.blocks().len(), "{config}");
        let keys: HashSet<String> = s
            .history
            .iter()
            .map(|(d, _, _)| decisions::key(&space, d))
            .collect();
        assert_eq!(keys.len(), 120, "{config}");
    }
}

#[test]
fn a_small_space_runs_out_and_says_so() {
    // Two choices of two options: 4 architectures in all.
    let space = layer_space(2, 2);
    let obj = Objective::new(&space, 2);
    let mut s = make(space.clone(), json!({}), 2, 10);
    let accs = drive(&mut s, &obj, 4, 1);
    assert_eq!(accs.len(), 4);
    assert!(s.ask().unwrap().is_none());
}

#[test]
fn surrogate_learns_the_objective() {
    let space = layer_space(6, 4);
    let obj = Objective::new(&space, 3);
    let mut s = make(space.clone(), json!({}), 3, 150);
    let mut rng = Rng::new(9);
    for _ in 0..100 {
        let a = nas_strategies::random_architecture(&space, &mut rng);
        let d = decisions::from_arch(&space, &a).unwrap();
        s.history.push((d, 6, obj.accuracy(&a) as f32));
    }
    s.train();
    let test: Vec<Vec<usize>> = (0..200)
        .map(|_| {
            let a = nas_strategies::random_architecture(&space, &mut rng);
            decisions::from_arch(&space, &a).unwrap()
        })
        .collect();
    let truth: Vec<f64> = test
        .iter()
        .map(|d| obj.accuracy(&decisions::to_arch(&space, d)))
        .collect();
    let pred: Vec<f64> = s.predict(&test).iter().map(|p| *p as f64).collect();
    let (mt, mp) = (mean(&truth), mean(&pred));
    let cov: f64 = truth
        .iter()
        .zip(&pred)
        .map(|(t, p)| (t - mt) * (p - mp))
        .sum();
    let vt: f64 = truth.iter().map(|t| (t - mt).powi(2)).sum();
    let vp: f64 = pred.iter().map(|p| (p - mp).powi(2)).sum();
    let r = cov / (vt * vp).sqrt();
    assert!(r > 0.8, "correlation of predictions with the truth {r:.3}");
}

#[test]
fn counts_beyond_their_bounds_are_refused() {
    let sp = layer_space(2, 2);
    let huge = 1u64 << 53;
    // (hidden and ensemble just past their caps: the old code built the models.)
    for (c, field, value, range) in [
        (json!({"beam": huge}), "beam", huge, "1..=20000"),
        (
            json!({"max_candidates": 100, "beam": 101}),
            "beam",
            101,
            "1..=100",
        ),
        (
            json!({"max_candidates": huge}),
            "max_candidates",
            huge,
            "1..=1000000",
        ),
        (json!({"hidden": 4097}), "hidden", 4097, "1..=4096"),
        (json!({"ensemble": 101}), "ensemble", 101, "1..=100"),
        (
            json!({"train_steps": huge}),
            "train_steps",
            huge,
            "0..=1000000",
        ),
        (json!({"mutations": huge}), "mutations", huge, "1..=10000"),
        (json!({"rounds": huge}), "rounds", huge, "1..=10"),
    ] {
        let e = Pnas::new(&setup(sp.clone(), c.clone(), 0, 10))
            .err()
            .unwrap_or_else(|| panic!("{c} accepted"));
        assert!(
            e.contains(&format!("`{field}`"))
                && e.contains(&value.to_string())
                && e.contains(range),
            "{c}: {e}"
        );
    }
}

#[test]
fn a_learning_rate_that_diverges_is_refused() {
    // Adam moves each weight by about `lr` a step: at 1.8e19 (which the fuzz target
    // `config` found) the surrogates' weights became NaN, saved as nulls that no
    // load takes back, so the search could not resume.
    let sp = layer_space(2, 2);
    for lr in [1.8e19, 1.5, 0.0, -0.1] {
        let e = Pnas::new(&setup(sp.clone(), json!({"lr": lr}), 0, 10))
            .err()
            .unwrap_or_else(|| panic!("lr {lr} should be refused"));
        assert!(e.contains("`lr`") && e.contains("(0, 1]"), "{e}");
    }
    assert!(Pnas::new(&setup(sp, json!({"lr": 1.0}), 0, 10)).is_ok());
}

#[test]
fn bad_config_names_the_field() {
    let sp = layer_space(2, 2);
    for (c, f) in [
        (json!({"beam": 0}), "`beam`"),
        (json!({"lr": "x"}), "`lr`"),
        (json!({"local_search": 1}), "`local_search`"),
        (json!({"bream": 3}), "`bream`"),
        (json!({"k0": 1}), "`k0`"),
    ] {
        let e = Pnas::new(&setup(sp.clone(), c, 0, 10)).err().unwrap();
        assert!(e.contains(f), "{e}");
    }
}

#[test]
fn save_new_load_keeps_the_surrogate_and_continues() {
    let space = mixed_space();
    let obj = Objective::new(&space, 6);
    for config in [json!({}), json!({"local_search": true})] {
        let mut a = make(space.clone(), config.clone(), 6, 100);
        drive(&mut a, &obj, 37, 1);
        let inflight = a.ask().unwrap().unwrap();
        let text = serde_json::to_string(&a.save().unwrap()).unwrap();
        let mut b = make(space.clone(), config.clone(), 66, 100);
        b.load(serde_json::from_str(&text).unwrap()).unwrap();
        let probe: Vec<Vec<usize>> = a.history.iter().map(|(d, _, _)| d.clone()).collect();
        assert_eq!(a.predict(&probe), b.predict(&probe));
        assert_eq!(a.depth(), b.depth());
        assert_eq!(a.kept, b.kept);
        assert_eq!(a.parents, b.parents);
        assert_eq!(a.history, b.history);
        // The next asks come out the same, from the queue and from the rounds after it
        // (the surrogates trained from the restored weights and moments).
        b.tell(&inflight, &obj.metrics(&inflight)).unwrap();
        a.tell(&inflight, &obj.metrics(&inflight)).unwrap();
        assert!(b.pending.is_empty());
        let depth = a.depth();
        for _ in 0..30 {
            let (x, y) = (a.ask().unwrap().unwrap(), b.ask().unwrap().unwrap());
            assert_eq!(x, y, "{config}");
            a.tell(&x, &obj.metrics(&x)).unwrap();
            b.tell(&y, &obj.metrics(&y)).unwrap();
        }
        assert!(a.depth() > depth, "the comparison crossed a depth");
        drive(&mut b, &obj, 40, 3);
        let e = b.load(json!({"models": [[[1.0]]]})).err().unwrap();
        assert!(e.contains("surrogate"), "{e}");
    }
}

#[test]
fn beats_random_search_at_equal_budget() {
    let space = layer_space(6, 4);
    let (mut ours, mut rand) = (vec![], vec![]);
    for seed in 0..12 {
        let obj = Objective::new(&space, 300 + seed);
        let mut s = make(space.clone(), json!({}), seed, 150);
        ours.push(best(&drive(&mut s, &obj, 150, 1)));
        rand.push(best(&random_search(&obj, seed, 150)));
    }
    let (o, r) = (mean(&ours), mean(&rand));
    eprintln!("pnas best {o:.3} vs random {r:.3}");
    assert!(o > r + 0.1, "pnas {o:.3} vs random {r:.3}");
}

/// PNAS's order of asks, seen only through the `Strategy` interface: every 1-block cell
/// first, then only expansions of cells already evaluated, one block deeper at a time;
/// after full depth only more expansions of the same cells unless `local_search` is on.
mod progressive {
    use super::nb201_like;
    use nas_strategies::testing::{layer_space, setup, Objective};
    use nas_strategies::{decisions, json, Choice, Strategy, Value};
    use nas_strategy_pnas::Pnas;
    use std::collections::HashSet;

    /// Asks and tells `n` architectures one at a time; their decisions in order.
    fn run(space: &[Choice], config: Value, budget: usize, n: usize) -> Vec<Vec<usize>> {
        let obj = Objective::new(space, 11);
        let mut s = Pnas::new(&setup(space.to_vec(), config, 11, budget)).unwrap();
        (0..n)
            .map(|_| {
                let a = s.ask().unwrap().expect("an architecture");
                s.tell(&a, &obj.metrics(&a)).unwrap();
                decisions::from_arch(space, &a).unwrap()
            })
            .collect()
    }

    /// The depth of an nb201 ask: node `b` grown and the later nodes pass-throughs.
    fn nb201_depth(d: &[usize]) -> usize {
        if d[1..] == [0, 1, 0, 0, 1] {
            1
        } else if d[3..] == [0, 0, 1] {
            2
        } else {
            3
        }
    }

    /// Checks the nb201 order of asks; returns the number asked at each depth.
    fn check_nb201_growth(asks: &[Vec<usize>]) -> [usize; 4] {
        let mut count = [0; 4];
        let mut last = 1;
        for (t, d) in asks.iter().enumerate() {
            let depth = nb201_depth(d);
            assert!(depth >= last, "ask {t} {d:?}: depth {depth} after {last}");
            last = depth;
            count[depth] += 1;
            if depth == 1 {
                continue;
            }
            // The cell it expands (its first `depth - 1` nodes, later nodes passed through)
            // was evaluated before it.
            let parent: Vec<usize> = if depth == 2 {
                vec![d[0], 0, 1, 0, 0, 1]
            } else {
                vec![d[0], d[1], d[2], 0, 0, 1]
            };
            assert!(
                asks[..t].contains(&parent),
                "ask {t} {d:?}: {parent:?} not evaluated"
            );
        }
        count
    }

    #[test]
    fn nb201_cells_grow_one_node_at_a_time_and_are_real_smaller_cells() {
        let space = nb201_like();
        let asks = run(&space, json!({}), 150, 150);
        // Depth 1: the five 1-node cells `out = op(in)`, each once, before anything else.
        let mut firsts: Vec<usize> = asks[..5].iter().map(|d| d[0]).collect();
        firsts.sort();
        assert_eq!(firsts, vec![0, 1, 2, 3, 4]);
        assert!(
            asks[..5].iter().all(|d| nb201_depth(d) == 1),
            "{:?}",
            &asks[..5]
        );
        let count = check_nb201_growth(&asks);
        assert_eq!(count[1], 5);
        // Depth 2: the top 145 / 2 = 72 of 125 expansions, less those that are depth-1
        // cells again (at most 5).
        assert!((67..=72).contains(&count[2]), "{count:?}");
        assert_eq!(count[3], 150 - 5 - count[2]);
        let keys: HashSet<&Vec<usize>> = asks.iter().collect();
        assert_eq!(keys.len(), 150);
    }

    #[test]
    fn choices_grow_one_at_a_time_with_a_fixed_completion() {
        // No node labels: one block per choice; choices not grown take option 0.
        let space = layer_space(4, 3);
        let asks = run(&space, json!({}), 40, 40);
        let depth = |d: &[usize]| d.iter().rposition(|&x| x != 0).map_or(1, |i| i + 1);
        let mut firsts: Vec<usize> = asks[..3].iter().map(|d| d[0]).collect();
        firsts.sort();
        assert_eq!(firsts, vec![0, 1, 2]);
        assert!(
            asks[..3].iter().all(|d| d[1..] == [0, 0, 0]),
            "{:?}",
            &asks[..3]
        );
        let mut last = 1;
        for (t, d) in asks.iter().enumerate() {
            let b = depth(d);
            assert!(b >= last, "ask {t} {d:?}: depth {b} after {last}");
            last = b;
            if b > 1 {
                let mut parent = d.clone();
                parent[b - 1] = 0;
                assert!(asks[..t].contains(&parent), "ask {t} {d:?}");
            }
        }
        assert_eq!(last, 4);
    }

    #[test]
    fn no_local_search_by_default_and_the_option_works() {
        let space = nb201_like();
        // Default, asked beyond its budget: only more expansions of evaluated depth-2 cells.
        let asks = run(&space, json!({}), 150, 220);
        check_nb201_growth(&asks);
        // `local_search`: the local search takes one share of three (depth 2, depth 3, local
        // search), so depth 2 gets 145 / 3 = 48 picks, not 72 (its mutants are checked by
        // the unit test `local_search_is_an_option`).
        let asks = run(&space, json!({"local_search": true}), 150, 150);
        let start3 = asks.iter().position(|d| nb201_depth(d) == 3).unwrap();
        let count = check_nb201_growth(&asks[..start3]);
        assert!((43..=48).contains(&count[2]), "{count:?}");
        let keys: HashSet<&Vec<usize>> = asks.iter().collect();
        assert_eq!(keys.len(), 150);
    }
}

/// A failed trial (no result) is not trained on: its accuracy 0 among real ones
/// squeezed the surrogate's standardised targets. It is not asked again, and a saved
/// state keeps it.
#[test]
fn a_failed_trial_is_not_trained_on_nor_asked_again() {
    let space = nb201_like();
    let obj = Objective::new(&space, 2);
    let mut s = make(space.clone(), json!({}), 2, 150);
    drive(&mut s, &obj, 4, 1);
    let a = s.ask().unwrap().unwrap();
    let fail = decisions::from_arch(&space, &a).unwrap();
    s.tell(&a, &nas_strategies::Metrics::failed("node lost"))
        .unwrap();
    assert!(
        s.history.iter().all(|(d, _, _)| *d != fail),
        "the failed trial went into the surrogate's data"
    );
    let mut b = make(space.clone(), json!({}), 2, 150);
    b.load(s.save().unwrap()).unwrap();
    for t in [&mut s, &mut b] {
        for _ in 0..60 {
            let Some(x) = t.ask().unwrap() else { break };
            assert_ne!(decisions::from_arch(&space, &x).unwrap(), fail);
            t.tell(&x, &obj.metrics(&x)).unwrap();
        }
    }
}

/// A saved state whose numbers read as infinity (past f32's range), whose Adam step
/// count is negative, or which has more cells to pick than expansions left, is
/// refused: each loaded, and the surrogate's weights went NaN or its asks failed.
#[test]
fn a_damaged_saved_state_is_refused() {
    let space = nb201_like();
    let obj = Objective::new(&space, 3);
    let mut s = make(space.clone(), json!({}), 3, 150);
    drive(&mut s, &obj, 8, 1);
    let good = s.save().unwrap();
    make(space.clone(), json!({}), 3, 150)
        .load(good.clone())
        .unwrap();
    let mut cases = vec![];
    let mut v = good.clone();
    v["history"][0][2] = json!(1e39);
    cases.push(("infinite accuracy", v, "accuracy"));
    let mut v = good.clone();
    v["adam"][0]["t"] = json!(-1);
    cases.push(("negative step count", v, "step count"));
    let mut v = good.clone();
    v["models"][0][0][0] = json!(1e39);
    cases.push(("infinite weight", v, "not finite"));
    let mut v = good.clone();
    v["pool"] = json!([]);
    v["to_pick"] = json!(5);
    cases.push(("to_pick past the pool", v, "to pick"));
    for (what, state, says) in cases {
        let e = make(space.clone(), json!({}), 3, 150)
            .load(state)
            .expect_err(what);
        assert!(e.contains(says), "{what}: {e}");
    }
}
