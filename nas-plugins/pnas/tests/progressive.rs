//! PNAS's order of asks, seen only through the `Strategy` interface: every 1-block cell
//! first, then only expansions of cells already evaluated, one block deeper at a time;
//! after full depth only more expansions of the same cells unless `local_search` is on.

use nas_strategies::testing::{layer_space, setup, Objective};
use nas_strategies::{decisions, json, Choice, ChoiceKind, Strategy, Value};
use nas_strategy_pnas::Pnas;
use std::collections::HashSet;

/// NAS-Bench-201's cell: edges `edge_J_I`, each one of the benchmark's five ops
/// (`none` = 0, `skip_connect` = 1).
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
