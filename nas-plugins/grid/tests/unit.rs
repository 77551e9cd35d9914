//! The unit tests of `nas_strategy_grid`, kept out of the library so that `cargo test` builds
//! the plugin once (a test harness inside the library would compile it twice).

use nas_strategies::testing::{choice, layer};
use nas_strategies::validate;
use nas_strategies::Reduce;
use nas_strategies::{json, Architecture, Choice, ChoiceKind, Metrics, Setup, Strategy, Value};
use nas_strategy_grid::*;
use std::collections::HashSet;

/// Three 4-way layer choices, a 2-of-4 input choice, a repeat of depth 1..3 with a
/// choice in each block (one listing a value twice), and a nested repeat.
fn space() -> Vec<Choice> {
    vec![
        layer("a", 4, None),
        layer("b", 4, None),
        layer("c", 4, None),
        choice(
            "skip",
            ChoiceKind::Input {
                n_candidates: 4,
                n_chosen: 2,
                reduce: Reduce::Sum,
            },
            None,
        ),
        choice(
            "depth",
            ChoiceKind::Repeat {
                depths: vec![1, 2, 3],
            },
            None,
        ),
        layer("blk0/op", 2, Some(("depth", 0))),
        choice(
            "blk1/width",
            ChoiceKind::Value {
                values: vec![json!(8), json!(16)],
            },
            Some(("depth", 1)),
        ),
        choice(
            "blk1/inner",
            ChoiceKind::Repeat { depths: vec![0, 1] },
            Some(("depth", 1)),
        ),
        layer("blk1/inner0/op", 3, Some(("blk1/inner", 0))),
        choice(
            "blk2/width",
            ChoiceKind::Value {
                values: vec![json!(8), json!(16), json!(16.0)],
            },
            Some(("depth", 2)),
        ),
    ]
}

fn setup(space: Vec<Choice>, config: Value, seed: u64) -> Setup {
    Setup {
        space,
        config,
        seed,
        budget: 100,
    }
}

/// A key equal for architectures the space treats as equal (16 == 16.0).
fn norm(a: &Architecture) -> String {
    a.iter()
        .map(|(k, v)| match v.as_f64() {
            Some(x) => format!("{k}={x};"),
            None => format!("{k}={v};"),
        })
        .collect()
}

/// Every architecture, found by brute force over the full product of all options
/// (including inactive ones), deduplicated.
fn brute_force(space: &[Choice]) -> HashSet<String> {
    let opts: Vec<Vec<Value>> = space
        .iter()
        .map(|c| match &c.kind {
            ChoiceKind::Layer { candidates } => candidates.iter().map(|s| json!(s)).collect(),
            ChoiceKind::Value { values } => values.clone(),
            ChoiceKind::Repeat { depths } => depths.iter().map(|d| json!(d)).collect(),
            ChoiceKind::Input {
                n_candidates,
                n_chosen,
                ..
            } => {
                assert_eq!(*n_chosen, 2);
                let mut v = vec![];
                for i in 0..*n_candidates {
                    for j in i + 1..*n_candidates {
                        v.push(json!([i, j]));
                    }
                }
                v
            }
        })
        .collect();
    let mut seen = HashSet::new();
    let mut digit = vec![0usize; space.len()];
    loop {
        let mut a = Architecture::new();
        for (i, c) in space.iter().enumerate() {
            let on = match &c.inside {
                None => true,
                Some((r, b)) => a
                    .get(r)
                    .and_then(|v| v.as_u64())
                    .is_some_and(|d| d as usize > *b),
            };
            if on {
                a.insert(c.label.clone(), opts[i][digit[i]].clone());
            }
        }
        validate(space, &a).unwrap();
        seen.insert(norm(&a));
        let mut i = space.len();
        loop {
            if i == 0 {
                return seen;
            }
            i -= 1;
            digit[i] += 1;
            if digit[i] < opts[i].len() {
                break;
            }
            digit[i] = 0;
        }
    }
}

fn all(g: &mut Grid) -> Vec<Architecture> {
    let mut out = vec![];
    while let Some(a) = g.ask().unwrap() {
        out.push(a);
    }
    out
}

#[test]
fn enumerates_every_architecture_once() {
    let space = space();
    let expected = brute_force(&space);
    // 4^3 * 6 * 2 * (1 + 2 * (1 + 3) + 2 * (1 + 3) * 2)
    assert_eq!(expected.len(), 384 * 2 * 25);
    for shuffle in [false, true] {
        let mut g = Grid::new(&setup(space.clone(), json!({ "shuffle": shuffle }), 5)).unwrap();
        assert_eq!(g.size(), expected.len() as u64);
        let archs = all(&mut g);
        assert_eq!(archs.len(), expected.len());
        let mut got = HashSet::new();
        for a in &archs {
            validate(&space, a).unwrap();
            assert!(got.insert(norm(a)), "duplicate {a:?}");
        }
        assert_eq!(got, expected);
        assert_eq!(g.ask().unwrap(), None);
        assert_eq!(g.ask().unwrap(), None);
    }
}

#[test]
fn fixed_order_is_mixed_radix_and_shuffle_is_seeded() {
    let small = vec![layer("x", 2, None), layer("y", 3, None)];
    let mut g = Grid::new(&setup(small, json!({}), 1)).unwrap();
    let order: Vec<(String, String)> = all(&mut g)
        .iter()
        .map(|a| {
            (
                a["x"].as_str().unwrap().into(),
                a["y"].as_str().unwrap().into(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = (0..2)
        .flat_map(|x| (0..3).map(move |y| (format!("op{x}"), format!("op{y}"))))
        .collect();
    assert_eq!(order, want);

    let big = space();
    let run = |seed| {
        let mut g = Grid::new(&setup(big.clone(), json!({"shuffle": true}), seed)).unwrap();
        (0..50)
            .map(|_| g.ask().unwrap().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(run(3), run(3));
    assert_ne!(run(3), run(4));
    let mut plain = Grid::new(&setup(big.clone(), json!({}), 3)).unwrap();
    let plain: Vec<_> = (0..50).map(|_| plain.ask().unwrap().unwrap()).collect();
    assert_ne!(run(3), plain);
}

#[test]
fn save_new_load_resumes() {
    for shuffle in [false, true] {
        let s = setup(space(), json!({ "shuffle": shuffle }), 9);
        let mut g = Grid::new(&s).unwrap();
        for _ in 0..123 {
            g.ask().unwrap().unwrap();
        }
        let state: Value = serde_json_roundtrip(&g.save().unwrap());
        let mut h = Grid::new(&s).unwrap();
        h.load(state).unwrap();
        assert_eq!(h.position(), 123);
        for _ in 0..500 {
            assert_eq!(g.ask().unwrap(), h.ask().unwrap());
        }
    }
    // A host resumes from the last saved state and replays the trials journaled
    // after it: those are not proposed again.
    for shuffle in [false, true] {
        let s = setup(space(), json!({ "shuffle": shuffle }), 4);
        let mut g = Grid::new(&s).unwrap();
        let first: Vec<Architecture> = (0..20).map(|_| g.ask().unwrap().unwrap()).collect();
        for a in &first {
            g.tell(a, &Metrics::default()).unwrap();
        }
        let state = g.save().unwrap();
        let journal: Vec<Architecture> = (0..7).map(|_| g.ask().unwrap().unwrap()).collect();
        for a in journal.iter().take(5) {
            g.tell(a, &Metrics::default()).unwrap();
        }
        let mut h = Grid::new(&s).unwrap();
        h.load(state).unwrap();
        for a in journal.iter().take(5) {
            h.tell(a, &Metrics::default()).unwrap();
        }
        // Old tells change nothing.
        h.tell(&first[3], &Metrics::default()).unwrap();
        assert_eq!(h.position(), 25);
        assert_eq!(h.ask().unwrap().as_ref(), Some(&journal[5]));
    }
    let mut g = Grid::new(&setup(space(), json!({}), 9)).unwrap();
    let e = g
        .load(json!({"position": 1, "size": 7, "shuffle": false}))
        .unwrap_err();
    assert!(e.contains('7'), "{e}");
    // A state missing a field is no state (it loaded as position 0, and the grid
    // proposed the run's trials again).
    let good = g.save().unwrap();
    for field in ["position", "size", "shuffle"] {
        let mut state = good.clone();
        state.as_object_mut().unwrap().remove(field);
        let e = Grid::new(&setup(space(), json!({}), 9))
            .unwrap()
            .load(state)
            .unwrap_err();
        assert!(e.contains(&format!("`{field}`")), "{field}: {e}");
    }
}

fn serde_json_roundtrip(v: &Value) -> Value {
    nas_strategies::serde_json::from_str(&v.to_string()).unwrap()
}

#[test]
fn refuses_large_spaces_and_bad_config() {
    // 10^7 exactly is fine; one more choice makes it too big, and the size is named.
    let ok: Vec<Choice> = (0..7).map(|i| layer(&format!("l{i}"), 10, None)).collect();
    assert_eq!(
        Grid::new(&setup(ok.clone(), json!({}), 0)).unwrap().size(),
        10_000_000
    );
    let mut big = ok;
    big.push(layer("l7", 3, None));
    let e = Grid::new(&setup(big.clone(), json!({}), 0)).err().unwrap();
    assert!(e.contains("30000000"), "{e}");
    let huge: Vec<Choice> = (0..60).map(|i| layer(&format!("l{i}"), 10, None)).collect();
    let e = Grid::new(&setup(huge, json!({}), 0)).err().unwrap();
    assert!(e.contains("1.000e60"), "{e}");

    let e = Grid::new(&setup(space(), json!({"shuffle": 3}), 0))
        .err()
        .unwrap();
    assert!(e.contains("`shuffle`"), "{e}");
    let e = Grid::new(&setup(space(), json!({"shufle": true}), 0))
        .err()
        .unwrap();
    assert!(e.contains("`shufle`"), "{e}");
}

#[test]
fn empty_and_trivial_spaces() {
    let mut g = Grid::new(&setup(vec![], json!({}), 0)).unwrap();
    assert_eq!(g.size(), 1);
    assert_eq!(g.ask().unwrap(), Some(Architecture::new()));
    assert_eq!(g.ask().unwrap(), None);
    let mut g = Grid::new(&setup(vec![layer("x", 0, None)], json!({}), 0)).unwrap();
    assert_eq!(g.size(), 0);
    assert_eq!(g.ask().unwrap(), None);
    for seed in 0..4 {
        let mut g = Grid::new(&setup(
            vec![layer("x", 2, None)],
            json!({"shuffle": true}),
            seed,
        ))
        .unwrap();
        let mut got: Vec<_> = all(&mut g).iter().map(|a| a["x"].clone()).collect();
        got.sort_by_key(|v| v.to_string());
        assert_eq!(got, vec![json!("op0"), json!("op1")]);
    }
}

/// A `darts` node builds the ops of the two edges it picks only: the grid proposes each
/// network once and names no other edge's op. Two nodes of 2 and 3 edges with 3 ops each
/// have 3^2 * (3 * 3^2) = 243 networks; before, the grid counted every edge's op as a
/// digit (3^2 * 3^3 * 3 = 729 architectures) and proposed most networks three times.
#[test]
fn a_darts_cell_is_enumerated_by_its_networks() {
    use nas_strategies::arch::made_only;
    use nas_strategies::testing::{darts_cell, darts_network};
    let space = darts_cell(2, 2, 3);
    for shuffle in [false, true] {
        let mut g = Grid::new(&setup(space.clone(), json!({ "shuffle": shuffle }), 3)).unwrap();
        assert_eq!(g.size(), 243);
        let archs = all(&mut g);
        assert_eq!(archs.len(), 243);
        let mut networks = HashSet::new();
        for a in &archs {
            validate(&space, a).unwrap();
            assert_eq!(
                &made_only(&space, a.clone()),
                a,
                "names an unbuilt op: {a:?}"
            );
            assert!(
                networks.insert(format!("{:?}", darts_network(a))),
                "one network twice: {a:?}"
            );
        }
    }
    // A host replaying a journaled trial moves the grid past it.
    let mut g = Grid::new(&setup(space.clone(), json!({}), 3)).unwrap();
    let first = g.ask().unwrap().unwrap();
    let mut h = Grid::new(&setup(space, json!({}), 3)).unwrap();
    h.tell(&first, &Metrics::default()).unwrap();
    assert_eq!(h.position(), 1);
}
