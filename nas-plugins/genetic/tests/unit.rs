//! The unit tests of `nas_strategy_genetic`, kept out of the library so that `cargo test` builds
//! the plugin once (a test harness inside the library would compile it twice).

use nas_strategies::choices::{canonical, input_indices};
use nas_strategies::testing::{
    agreement, choice, layer, metrics, nested_space as space, run_validating as run,
};
use nas_strategies::{
    json, validate, Architecture, Choice, ChoiceKind, Rng, Setup, Strategy, Value,
};
use nas_strategies::{serde_json, Reduce};
use nas_strategy_genetic::*;

fn setup(space: Vec<Choice>, config: Value, seed: u64) -> Setup {
    Setup {
        space,
        config,
        seed,
        budget: 300,
    }
}

fn input(label: &str, n: usize, k: usize) -> Choice {
    let kind = ChoiceKind::Input {
        n_candidates: n,
        n_chosen: k,
        reduce: Reduce::Sum,
    };
    choice(label, kind, None)
}

/// The option index of a layer choice's decision (`op3` -> 3).
fn op(v: &Value) -> usize {
    v.as_str().unwrap()[2..].parse().unwrap()
}

/// Panics unless each count is within `tol` of its probability times the total.
fn assert_frequencies(what: &str, counts: &[usize], probs: &[f64], tol: f64) {
    let n: usize = counts.iter().sum();
    for (i, (&c, &p)) in counts.iter().zip(probs).enumerate() {
        let f = c as f64 / n as f64;
        assert!(
            (f - p).abs() < tol,
            "{what}: option {i} has frequency {f:.4}, not {p:.4} ({counts:?})"
        );
    }
}

/// A genome holds a gene for every edge's op of a `darts` node; the architecture it
/// decodes to names the picked edges' ops only, and such an architecture encodes.
#[test]
fn darts_genomes_name_the_built_ops() {
    use nas_strategies::testing::{darts_cell, darts_network};
    let sp = darts_cell(2, 3, 4);
    let mut rng = Rng::new(3);
    for _ in 0..200 {
        let a = nas_strategies::random_architecture(&sp, &mut rng);
        let g: Vec<bool> = (0..genome_len(&sp)).map(|_| rng.below(2) == 1).collect();
        for b in [decode(&sp, &encode(&sp, &a).unwrap()), decode(&sp, &g)] {
            let Ok(b) = b else { continue };
            validate(&sp, &b).unwrap();
            // Two ops per node and the node's input choice: nothing else.
            assert_eq!(b.len(), 3 * 3, "{b:?}");
            let back = decode(&sp, &encode(&sp, &b).unwrap()).unwrap();
            assert_eq!(darts_network(&back), darts_network(&b));
        }
    }
}

#[test]
fn encoding_lengths_and_round_trips() {
    let sp = space(3, 4);
    // 3 layers * 2 bits, skip: 4 connection bits, depth: 3 -> 2, blk0: 2,
    // width: 3 values -> 2, inner: 1, inner0: 2, blk2: 2.
    assert_eq!(genome_len(&sp), 6 + 4 + 2 + 2 + 2 + 1 + 2 + 2);
    let mut rng = Rng::new(1);
    let mut rejected = 0;
    for _ in 0..500 {
        let a = nas_strategies::random_architecture(&sp, &mut rng);
        let g = encode(&sp, &a).unwrap();
        assert_eq!(g.len(), genome_len(&sp));
        let b = decode(&sp, &g).unwrap();
        validate(&sp, &b).unwrap();
        assert_eq!(canonical(&sp, &a).unwrap(), canonical(&sp, &b).unwrap());
        // A random bit string either decodes to a valid architecture that encodes
        // back to the same decisions, or names the block that is out of range.
        let g: Vec<bool> = (0..genome_len(&sp)).map(|_| rng.below(2) == 1).collect();
        match decode(&sp, &g) {
            Ok(a) => {
                validate(&sp, &a).unwrap();
                // (`16` and `16.0` are one option, so compare canonical forms.)
                let back = decode(&sp, &encode(&sp, &a).unwrap()).unwrap();
                assert_eq!(canonical(&sp, &back).unwrap(), canonical(&sp, &a).unwrap());
            }
            Err(e) => {
                assert!(
                    e.contains("out of range") || e.contains("connection bits"),
                    "{e}"
                );
                rejected += 1;
            }
        }
    }
    assert!(rejected > 0);
    // Out of range: 3 bits for 5 candidates, 5 to 7 are rejected, not wrapped.
    let five = vec![layer("x", 5, None)];
    let dec = |bits: [bool; 3]| decode(&five, &bits);
    assert_eq!(dec([true, false, false]).unwrap()["x"], json!("op4"));
    for bits in [[true, false, true], [true, true, false], [true, true, true]] {
        let e = dec(bits).unwrap_err();
        assert!(e.contains("`x`") && e.contains("out of range"), "{e}");
    }
    // Input choices are connection bits: bit i set means candidate i is an input.
    let inp = vec![input("i", 4, 2)];
    assert_eq!(genome_len(&inp), 4);
    let a: Architecture = [("i".to_string(), json!([3, 1]))].into_iter().collect();
    assert_eq!(encode(&inp, &a).unwrap(), [false, true, false, true]);
    assert_eq!(
        decode(&inp, &[false, true, false, true]).unwrap()["i"],
        json!([1, 3])
    );
    assert!(decode(&inp, &[true, true, true, false])
        .unwrap_err()
        .contains("3 connection bits set, not 2"));
    assert!(encode(
        &inp,
        &[("i".to_string(), json!([1, 1]))].into_iter().collect()
    )
    .is_err());
    // One option: no bits.
    assert_eq!(genome_len(&[layer("one", 1, None)]), 0);
}

/// (a) GeNet decoding is uniform over options: a uniformly random valid code, the
/// initial population, and a block whose bits are each flipped with probability 1/2
/// all give every option the same frequency (wrapping codes modulo the option count
/// gives some options twice the chance of others).
#[test]
fn decoding_is_uniform_over_options() {
    let sizes = [3, 5, 6];
    let sp: Vec<Choice> = sizes
        .iter()
        .map(|&m| layer(&format!("m{m}"), m, None))
        .collect();
    let uniform = |m: usize| vec![1.0 / m as f64; m];
    // Uniformly random codes, those out of range rejected.
    let mut rng = Rng::new(5);
    for (c, &m) in sp.iter().zip(&sizes) {
        let bits = genome_len(std::slice::from_ref(c));
        let mut counts = vec![0; m];
        let mut n = 0;
        while n < 60_000 {
            let code: Vec<bool> = (0..bits).map(|_| rng.below(2) == 1).collect();
            if let Ok(v) = decode_block(c, &code) {
                counts[op(&v)] += 1;
                n += 1;
            }
        }
        assert_frequencies(
            &format!("random codes, {m} options"),
            &counts,
            &uniform(m),
            0.01,
        );
    }
    // The strategy: the initial population, then generations bred with every bit of
    // every individual flipped with probability 1/2.
    let config = json!({"p_crossover": 0.0, "p_mutation": 1.0, "q_mutation": 0.5});
    let target = nas_strategies::random_architecture(&sp, &mut Rng::new(0));
    let mut initial = vec![vec![0; 3], vec![0; 5], vec![0; 6]];
    let mut bred = initial.clone();
    for seed in 0..60 {
        let mut s = Genetic::new(&setup(sp.clone(), config.clone(), seed)).unwrap();
        for t in 0..200 {
            let a = s.ask().unwrap().unwrap();
            for (i, c) in sp.iter().enumerate() {
                let counts = if t < 20 { &mut initial } else { &mut bred };
                counts[i][op(&a[&c.label])] += 1;
            }
            s.tell(&a, &metrics(agreement(&a, &target))).unwrap();
        }
        assert_eq!(s.generation(), 10);
    }
    for (i, &m) in sizes.iter().enumerate() {
        // 1200 draws (initial) and 10800 (bred) per choice.
        assert_frequencies(
            &format!("initial, {m} options"),
            &initial[i],
            &uniform(m),
            0.05,
        );
        assert_frequencies(
            &format!("mutated, {m} options"),
            &bred[i],
            &uniform(m),
            0.02,
        );
    }
}

/// (b) Input choices are connection bits: every proposal has exactly `k` distinct
/// inputs, every candidate is proposed, and each is an input with probability
/// `k / n` when the bits are random (a rank of the combination, wrapped, favours low
/// candidates).
#[test]
fn input_choices_are_connection_bits() {
    let shapes = [(5, 2), (4, 1), (6, 3), (3, 3)];
    let sp: Vec<Choice> = shapes
        .iter()
        .map(|&(n, k)| input(&format!("in{n}_{k}"), n, k))
        .collect();
    assert_eq!(genome_len(&sp), 5 + 4 + 6 + 3);
    let config = json!({"p_crossover": 0.0, "p_mutation": 1.0, "q_mutation": 0.5});
    let mut counts: Vec<Vec<usize>> = shapes.iter().map(|&(n, _)| vec![0; n]).collect();
    for seed in 0..40 {
        let mut s = Genetic::new(&setup(sp.clone(), config.clone(), seed)).unwrap();
        for t in 0..200 {
            let a = s.ask().unwrap().unwrap();
            validate(&sp, &a).unwrap();
            for (i, (c, &(n, k))) in sp.iter().zip(&shapes).enumerate() {
                let idx = input_indices(&a[&c.label], n, k).expect("k distinct inputs");
                assert_eq!(a[&c.label], json!(idx), "sorted connection indices");
                for j in idx {
                    counts[i][j] += 1;
                }
            }
            s.tell(&a, &metrics((t % 7) as f64)).unwrap();
        }
    }
    for (i, &(n, k)) in shapes.iter().enumerate() {
        assert!(counts[i].iter().all(|&c| c > 0), "{:?}", counts[i]);
        let total = counts[i].iter().sum::<usize>() as f64;
        let p = vec![1.0 / n as f64; n];
        assert_eq!(total as usize, 8000 * k);
        assert_frequencies(&format!("{k} of {n} inputs"), &counts[i], &p, 0.015);
    }
}

/// (c) Selection is the paper's roulette: drawn with probability proportional to
/// `r - r_min`, so the least fit individual is never drawn while another is fitter.
#[test]
fn selection_is_roulette_above_the_least_fit() {
    let fitness = [0.3, 0.5, 0.9, 0.3, 0.7];
    let probs = [0.0, 0.2 / 1.2, 0.6 / 1.2, 0.0, 0.4 / 1.2];
    // The roulette itself: a chi-square test on 60000 draws (4 degrees of freedom
    // less the two impossible ones; 13.8 is the 0.001 quantile for 2).
    let w = roulette_weights(&fitness);
    let mut rng = Rng::new(3);
    let mut counts = [0usize; 5];
    let n = 60_000;
    for _ in 0..n {
        counts[spin(&w, &mut rng)] += 1;
    }
    assert_eq!((counts[0], counts[3]), (0, 0), "{counts:?}");
    let chi2: f64 = [1, 2, 4]
        .iter()
        .map(|&i| {
            let e = probs[i] * n as f64;
            (counts[i] as f64 - e).powi(2) / e
        })
        .sum();
    assert!(chi2 < 13.8, "chi-square {chi2:.1}: {counts:?}");
    // Equal fitness: uniform.
    let w = roulette_weights(&[0.4; 4]);
    let mut counts = [0usize; 4];
    for _ in 0..40_000 {
        counts[spin(&w, &mut rng)] += 1;
    }
    assert_frequencies("equal fitness", &counts, &[0.25; 4], 0.01);
    // The strategy: with no crossover or mutation, the next generation is the
    // selected individuals themselves.
    let sp: Vec<Choice> = (0..8).map(|i| layer(&format!("l{i}"), 4, None)).collect();
    let config = json!({"population": 5, "p_crossover": 0.0, "p_mutation": 0.0});
    let mut counts = [0usize; 5];
    for seed in 0..2000 {
        let mut s = Genetic::new(&setup(sp.clone(), config.clone(), seed)).unwrap();
        let gen0: Vec<Architecture> = (0..5).map(|_| s.ask().unwrap().unwrap()).collect();
        if (1..5).any(|i| gen0[..i].contains(&gen0[i])) {
            continue; // two equal architectures: not told apart
        }
        for (a, f) in gen0.iter().zip(fitness).rev() {
            s.tell(a, &metrics(f)).unwrap();
        }
        assert_eq!(s.generation(), 1);
        for (a, _) in s.members() {
            counts[gen0.iter().position(|x| *x == a).unwrap()] += 1;
        }
    }
    assert_eq!((counts[0], counts[3]), (0, 0), "{counts:?}");
    assert_frequencies("selected", &counts, &probs, 0.02);
}

/// (d) Survivors are evaluated again: an individual kept unchanged into the next
/// generation is asked again, and its fitness becomes the mean of its scores, so a
/// lucky first score does not keep it ahead.
#[test]
fn survivors_are_evaluated_again_and_averaged() {
    let sp: Vec<Choice> = (0..8).map(|i| layer(&format!("l{i}"), 4, None)).collect();
    let config = json!({"population": 4, "p_crossover": 0.0, "p_mutation": 0.0});
    let mut checked = 0;
    for seed in 0..100 {
        let mut s = Genetic::new(&setup(sp.clone(), config.clone(), seed)).unwrap();
        let gen0: Vec<Architecture> = (0..4).map(|_| s.ask().unwrap().unwrap()).collect();
        if (1..4).any(|i| gen0[..i].contains(&gen0[i])) {
            continue;
        }
        // A is lucky first; D is the least fit and is not selected.
        let first = [1.0, 0.6, 0.55, 0.5];
        let second = [0.0, 0.6, 0.55];
        for (a, f) in gen0.iter().zip(first) {
            s.tell(a, &metrics(f)).unwrap();
        }
        let which = |a: &Architecture| gen0.iter().position(|x| x == a).unwrap();
        let gen1: Vec<usize> = s.members().iter().map(|(a, _)| which(a)).collect();
        assert!(gen1.iter().all(|&i| i < 3), "{gen1:?}");
        // Every member is asked again, survivors included, before any extra.
        let asked: Vec<usize> = (0..4).map(|_| which(&s.ask().unwrap().unwrap())).collect();
        assert_eq!(asked, gen1);
        assert_eq!(s.extras, 0);
        for &i in &asked {
            s.tell(&gen0[i], &metrics(second[i])).unwrap();
        }
        assert_eq!(s.generation(), 2);
        // A's fitness is the mean of its scores: 1.0 once, then 0.0 per copy.
        let copies = gen1.iter().filter(|&&i| i == 0).count();
        let key = canonical(&sp, &gen0[0]).unwrap();
        let expect = 1.0 / (1 + copies) as f64;
        assert_eq!(s.mean(&key), Some(expect));
        assert_eq!(s.scores[&key].count, 1 + copies as u64);
        // So A (at most 0.5) is now the least fit and is not selected again, unless
        // it was alone in generation 1.
        if copies > 0 && copies < 4 {
            let gen2: Vec<usize> = s.members().iter().map(|(a, _)| which(a)).collect();
            assert!(
                !gen2.contains(&0),
                "lucky A was selected again: {gen1:?} -> {gen2:?}"
            );
            checked += 1;
        }
    }
    assert!(checked > 20, "{checked}");
}

#[test]
fn every_ask_is_valid_with_asks_in_flight() {
    let sp = space(3, 4);
    let target = nas_strategies::random_architecture(&sp, &mut Rng::new(99));
    for (batch, q) in [(1, 0.05), (7, 0.3), (30, 1.0)] {
        let config = json!({"population": 10, "q_mutation": q, "p_crossover": 0.5});
        let mut s = Genetic::new(&setup(sp.clone(), config, 1)).unwrap();
        run(&mut s, &sp, 400, batch, |a| agreement(a, &target));
        assert!(s.generation() >= 10, "generation {}", s.generation());
    }
}

#[test]
fn generations_and_extras() {
    let sp = space(4, 4);
    let target = nas_strategies::random_architecture(&sp, &mut Rng::new(3));
    let mut s = Genetic::new(&setup(sp.clone(), json!({"population": 5}), 2)).unwrap();
    let gen0: Vec<Architecture> = (0..5).map(|_| s.ask().unwrap().unwrap()).collect();
    // The generation is all out: the next asks are random extras.
    let extra = s.ask().unwrap().unwrap();
    validate(&sp, &extra).unwrap();
    assert_eq!(s.extras, 1);
    for a in gen0.iter().skip(1) {
        s.tell(a, &metrics(agreement(a, &target))).unwrap();
    }
    s.tell(&extra, &metrics(1.0)).unwrap(); // not a member's
    assert_eq!(s.extras, 0);
    assert_eq!(s.generation(), 0);
    s.tell(&gen0[0], &metrics(agreement(&gen0[0], &target)))
        .unwrap();
    assert_eq!(s.generation(), 1);
    // The extra's score is kept for its architecture.
    let key = canonical(&sp, &extra).unwrap();
    assert!(s.scores[&key].count >= 1);
    // All 5 members of generation 1 are asked, in order, before the next extra.
    let m = s.members();
    let gen1: Vec<Architecture> = (0..5).map(|_| s.ask().unwrap().unwrap()).collect();
    assert_eq!(gen1, m.iter().map(|x| x.0.clone()).collect::<Vec<_>>());
    s.ask().unwrap().unwrap();
    assert_eq!(s.extras, 1);
    // Tells match individuals by architecture, in any order, duplicates included.
    for a in gen1.iter().rev() {
        s.tell(a, &metrics(0.0)).unwrap();
    }
    assert_eq!(s.generation(), 2);
}

#[test]
fn save_new_load_gives_the_same_asks() {
    let sp = space(3, 4);
    let target = nas_strategies::random_architecture(&sp, &mut Rng::new(7));
    let st = setup(sp.clone(), json!({"population": 8, "q_mutation": 0.1}), 11);
    let mut a = Genetic::new(&st).unwrap();
    run(&mut a, &sp, 45, 3, |x| agreement(x, &target));
    // Asks in flight at save time, past the generation's end (extras included).
    let inflight: Vec<Architecture> = (0..10).map(|_| a.ask().unwrap().unwrap()).collect();
    let saved: Value = serde_json::from_str(&a.save().unwrap().to_string()).unwrap();
    let mut b = Genetic::new(&st).unwrap();
    b.load(saved).unwrap();
    assert_eq!(a.members(), b.members());
    assert_eq!((a.generation(), a.extras), (b.generation(), b.extras));
    assert_eq!(a.save().unwrap(), b.save().unwrap());
    for x in inflight.iter().rev() {
        a.tell(x, &metrics(agreement(x, &target))).unwrap();
        b.tell(x, &metrics(agreement(x, &target))).unwrap();
    }
    for _ in 0..100 {
        let (x, y) = (a.ask().unwrap().unwrap(), b.ask().unwrap().unwrap());
        assert_eq!(x, y);
        a.tell(&x, &metrics(agreement(&x, &target))).unwrap();
        b.tell(&y, &metrics(agreement(&y, &target))).unwrap();
    }
    assert_eq!(a.save().unwrap(), b.save().unwrap());
    // A host resumes from the last saved state and replays the trials journaled
    // after it: those individuals are not asked again.
    let state = a.save().unwrap();
    let journal: Vec<Architecture> = (0..3).map(|_| a.ask().unwrap().unwrap()).collect();
    for x in &journal {
        a.tell(x, &metrics(agreement(x, &target))).unwrap();
    }
    let mut b = Genetic::new(&st).unwrap();
    b.load(state).unwrap();
    for x in &journal {
        b.tell(x, &metrics(agreement(x, &target))).unwrap();
    }
    assert_eq!(a.members(), b.members());
    for _ in 0..30 {
        let (x, y) = (a.ask().unwrap().unwrap(), b.ask().unwrap().unwrap());
        assert_eq!(x, y);
        a.tell(&x, &metrics(agreement(&x, &target))).unwrap();
        b.tell(&y, &metrics(agreement(&y, &target))).unwrap();
    }
    let mut c = Genetic::new(&setup(sp.clone(), json!({"population": 9}), 0)).unwrap();
    let e = c.load(a.save().unwrap()).unwrap_err();
    assert!(e.contains("population"), "{e}");
    // A saved genome with a code out of range is refused, naming the choice.
    let mut state = a.save().unwrap();
    let len = genome_len(&sp);
    let mut bits = vec!['0'; len];
    bits[6..10].copy_from_slice(&['1', '1', '1', '0']); // `skip`: 3 inputs of 2
    state["members"][0]["genome"] = json!(bits.iter().collect::<String>());
    let e = Genetic::new(&st).unwrap().load(state).unwrap_err();
    assert!(e.contains("member 0") && e.contains("`skip`"), "{e}");
}

#[test]
fn beats_random_search_on_a_synthetic_objective() {
    let sp = space(12, 4);
    let (budget, seeds) = (300, 20);
    let (mut ga, mut rnd) = (0.0, 0.0);
    for seed in 0..seeds {
        let target = nas_strategies::random_architecture(&sp, &mut Rng::new(1000 + seed));
        let mut s = Genetic::new(&setup(sp.clone(), json!({}), seed)).unwrap();
        ga += run(&mut s, &sp, budget, 4, |a| agreement(a, &target));
        let mut rng = Rng::new(seed);
        rnd += (0..budget)
            .map(|_| agreement(&nas_strategies::random_architecture(&sp, &mut rng), &target))
            .fold(0.0, f64::max);
    }
    let (ga, rnd) = (ga / seeds as f64, rnd / seeds as f64);
    eprintln!("genetic {ga:.3}, random {rnd:.3}");
    assert!(ga > rnd + 0.1, "genetic {ga:.3} vs random {rnd:.3}");
}

#[test]
fn the_population_is_bounded_by_the_budget() {
    // Every member is made at creation and is one trial: a population over the
    // budget is never evaluated. (The fuzz target `config` found 100,000 members
    // taking seconds to create for a budget of 8.)
    let sp = space(2, 3);
    let small = |config: Value| Setup {
        space: sp.clone(),
        config,
        seed: 0,
        budget: 8,
    };
    let e = Genetic::new(&small(json!({"population": 100_000})))
        .err()
        .expect("a population over the budget is refused");
    assert!(
        e.contains("`population`") && e.contains("100000") && e.contains("2..=8"),
        "{e}"
    );
    // The default population shrinks to the budget.
    let g = Genetic::new(&small(json!({}))).unwrap();
    assert_eq!(g.population, 8);
    assert!(Genetic::new(&small(json!({"population": 8}))).is_ok());
}

#[test]
fn counts_beyond_their_bounds_are_refused() {
    let sp = space(2, 3);
    // (Far beyond the cap the old code built every member at creation for ever.)
    let big = Setup {
        budget: 0,
        ..setup(sp, json!({"population": 100_001}), 0)
    };
    let e = Genetic::new(&big)
        .err()
        .expect("a population over the cap is refused");
    assert!(
        e.contains("`population`") && e.contains("100001") && e.contains("2..=100000"),
        "{e}"
    );
}

#[test]
fn bad_config_names_the_field() {
    let sp = space(2, 3);
    for (config, field, value) in [
        (json!({"population": 1}), "population", "1"),
        (json!({"population": "many"}), "population", "many"),
        (json!({"p_crossover": 1.5}), "p_crossover", "1.5"),
        (json!({"q_crossover": -0.5}), "q_crossover", "-0.5"),
        (json!({"p_mutation": 2}), "p_mutation", "2"),
        (json!({"q_mutation": -0.1}), "q_mutation", "-0.1"),
        (json!({"mutation": 0.1}), "mutation", "0.1"),
        (json!({"tournament": 3}), "tournament", "3"),
        (json!({"elite": 1}), "elite", "1"),
        (json!({"crossover": 0.5}), "crossover", "0.5"),
        (
            json!({"crossover_type": "uniform"}),
            "crossover_type",
            "uniform",
        ),
        (json!({"q_mutaton": 0.1}), "q_mutaton", ""),
    ] {
        let e = Genetic::new(&setup(sp.clone(), config.clone(), 0))
            .err()
            .unwrap();
        assert!(
            e.contains(&format!("`{field}`")) && e.contains(value),
            "{config}: {e}"
        );
    }
    let mut s = Genetic::new(&setup(sp.clone(), json!({}), 0)).unwrap();
    let mut bad = nas_strategies::random_architecture(&sp, &mut Rng::new(0));
    bad.insert("nope".into(), json!(1));
    assert!(s.tell(&bad, &metrics(0.5)).unwrap_err().contains("nope"));
}

/// The paper's Algorithm 1 mutates only the individuals that did not cross over: with
/// every pair crossed (exchanging nothing) and every other individual certain to have
/// every bit flipped, the next generation is the selected parents unchanged; with no
/// crossover, every one of them is mutated. Before, crossed individuals mutated too.
#[test]
fn only_individuals_that_did_not_cross_over_mutate() {
    let sp: Vec<Choice> = (0..8).map(|i| layer(&format!("l{i}"), 4, None)).collect();
    for (p_crossover, mutated) in [(1.0, false), (0.0, true)] {
        let config = json!({
            "population": 2,
            "p_crossover": p_crossover,
            "q_crossover": 0.0,
            "p_mutation": 1.0,
            "q_mutation": 1.0,
        });
        let mut s = Genetic::new(&setup(sp.clone(), config, 4)).unwrap();
        let gen0: Vec<Architecture> = (0..2).map(|_| s.ask().unwrap().unwrap()).collect();
        assert_ne!(gen0[0], gen0[1]);
        s.tell(&gen0[0], &metrics(0.9)).unwrap();
        s.tell(&gen0[1], &metrics(0.1)).unwrap();
        assert_eq!(s.generation(), 1);
        // Roulette above the least fit: both draws are the fitter individual.
        for (a, _) in s.members() {
            assert_eq!(a != gen0[0], mutated, "p_crossover {p_crossover}: {a:?}");
        }
    }
}
