//! The unit tests of `nas_strategy_fpnas`, kept out of the library so that `cargo test` builds
//! the plugin once (a test harness inside the library would compile it twice).

use nas_strategies::oneshot::{blocks_from_labels, EpochStrategy, OneShotInfo, Subset};
use nas_strategies::oneshot::{mix_size, Group};
use nas_strategies::testing::{
    check_resume, check_warmup, fake_setup, layer, picked, run_on_fake, FakeSupernet,
};
use nas_strategies::Choice;
use nas_strategies::{json, Architecture, Value};
use nas_strategy_fpnas::*;

fn create(f: &FakeSupernet, config: Value) -> Result<Fpnas, String> {
    Fpnas::create(&fake_setup(f, config, 0, None))
}

/// Creating with `config` fails with an error holding every one of `words`.
fn refused(f: &FakeSupernet, config: Value, words: &[&str]) {
    let e = create(f, config.clone())
        .err()
        .unwrap_or_else(|| panic!("{config} accepted"));
    for w in words {
        assert!(e.contains(w), "{config}: `{w}` not in: {e}");
    }
}

fn info_of(choices: Vec<Choice>) -> OneShotInfo {
    let groups = choices
        .iter()
        .enumerate()
        .map(|(i, c)| Group {
            label: c.label.clone(),
            choice: i,
            size: mix_size(c),
        })
        .collect();
    OneShotInfo {
        choices,
        groups,
        epochs: 1,
        batches_per_epoch: 10,
        batch_size: 1,
        val_batches: 10,
    }
}

/// The decision of group `g` in a one-hot mix: the indices switched on.
fn on(f: &FakeSupernet, mix: &[f32], g: usize) -> Vec<usize> {
    let r = f.info.ranges()[g].clone();
    r.clone()
        .filter(|&i| mix[i] != 0.0)
        .map(|i| i - r.start)
        .collect()
}

#[test]
fn blocks_follow_the_labels() {
    // A wrong rule (the first `/`, or all labels without `/` in one block) gives
    // other groups.
    let labels = [
        "stage0/layer0",
        "stage0/layer1",
        "stage1/layer0",
        "edge_1_0",
        "edge_2_0",
        "normal/op_2_0",
        "normal/input_2",
        "a/b/c",
        "a/b/d",
        "a/e",
        "stage0/layer2",
    ];
    let info = info_of(labels.iter().map(|l| layer(l, 3, None)).collect());
    assert_eq!(
        blocks_from_labels(&info),
        vec![
            vec![0, 1, 10],
            vec![2],
            vec![3],
            vec![4],
            vec![5, 6],
            vec![7, 8],
            vec![9]
        ]
    );
}

/// A fake whose best path is op0 c2, op1 c0, op2 c1, op3 c2, in [0, 2].
fn known_best(epochs: usize, batches: usize) -> FakeSupernet {
    let mut f = FakeSupernet::new(4, 3, epochs, batches);
    f.accuracy = vec![
        0.1, 0.3, 0.9, // op0
        0.9, 0.2, 0.4, // op1
        0.3, 0.9, 0.1, // op2
        0.2, 0.1, 0.9, // op3
        0.9, 0.2, 0.8, // in
    ];
    f
}

fn assert_known_best(arch: &Architecture) {
    let got = (0..4).map(|i| picked(arch, i)).collect::<Vec<_>>();
    assert_eq!(got, vec![2, 0, 1, 2], "{arch:?}");
    assert_eq!(arch["in"], json!([0, 2]), "{arch:?}");
}

#[test]
fn reinforce_finds_the_best_path_block_by_block() {
    // Each choice its own block (no `/` in the fake's labels), two rounds. A search
    // that ignored the rewards would end at the first option of each choice (the
    // policies' argmax at 0).
    let mut f = known_best(2, 60);
    let arch = run_on_fake::<Fpnas>(&mut f, json!({}), 3);
    assert_known_best(&arch);
    assert_eq!(f.steps, 120, "one weight step per batch");
    assert_eq!(f.evaluations, 120, "one reward per step");
    assert!(f.subsets.iter().all(|s| *s == Subset::Next));
}

#[test]
fn evolution_finds_the_best_path_with_configured_blocks() {
    let mut f = known_best(2, 60);
    let arch = run_on_fake::<Fpnas>(
        &mut f,
        json!({"inner": "evolution", "population": 6, "rounds": 1,
               "blocks": [["op0", "op1"], ["op2", "op3", "in"]]}),
        3,
    );
    assert_known_best(&arch);
}

#[test]
fn only_the_searched_block_varies_and_the_blocks_cycle() {
    // Every path scores the same, so the policies stay uniform and each phase ends
    // with its block at option 0 of every choice (the argmax of equal logits; for
    // `in` the first pair, [0, 1]). Two blocks, two rounds of 10-step phases: block 0,
    // 1, 0, 1. In phase 0 block 1 has no best yet and is drawn uniformly; from then
    // on a block outside its phase stays at the answer of its last phase.
    // A strategy that sampled every choice each step (SPOS, ENAS) varies the other
    // block in phases 1 to 3; one that did not cycle never varies block 1 after
    // phase 0 or block 0 after; one that did not carry a block's answer into the
    // next phases shows another value there.
    let mut f = FakeSupernet::new(4, 3, 1, 40);
    f.accuracy = vec![0.5; 15];
    let config = json!({"blocks": [["op0", "op1"], ["op2", "op3", "in"]]});
    run_on_fake::<Fpnas>(&mut f, config, 0);
    assert_eq!(f.mixes.len(), 40);
    let blocks = [vec![0, 1], vec![2, 3, 4]];
    for p in 0..4 {
        let phase = &f.mixes[10 * p..10 * p + 10];
        let searched = &blocks[p % 2];
        for g in 0..5 {
            let values: std::collections::BTreeSet<Vec<usize>> =
                phase.iter().map(|m| on(&f, m, g)).collect();
            if searched.contains(&g) || p == 0 {
                assert!(values.len() > 1, "phase {p}: group {g} never varies");
            } else {
                let want = if g == 4 { vec![0, 1] } else { vec![0] };
                assert_eq!(
                    values.into_iter().collect::<Vec<_>>(),
                    vec![want],
                    "phase {p}: group {g} is not fixed at its block's answer"
                );
            }
        }
    }
}

#[test]
fn resuming_from_a_checkpoint_ends_where_an_uninterrupted_run_does() {
    // The checkpoint after epoch 0 falls inside a phase (3 blocks, 2 rounds, phases
    // of 6 steps) with 2 of 4 samples of a policy update gathered, so a state without
    // the pending gradient, the phase, the baseline or the generator ends elsewhere.
    let fake = || {
        let mut f = FakeSupernet::new(2, 3, 2, 20);
        f.accuracy = vec![0.1, 0.3, 0.9, 0.9, 0.2, 0.4, 0.9, 0.2, 0.8];
        f
    };
    check_resume::<Fpnas>(json!({"batch": 4}), fake);
    check_resume::<Fpnas>(json!({"inner": "evolution", "population": 4}), fake);
}

#[test]
fn a_state_of_other_blocks_or_of_another_block_is_refused() {
    // A resume with other blocks than the search had would carry each policy to the
    // wrong choices; a state whose population does not fit its block would index
    // past a choice's options.
    let f = FakeSupernet::new(2, 3, 1, 20);
    let mut s = create(&f, json!({})).unwrap();
    let saved = s.save().unwrap();
    s.load(saved.clone()).unwrap();
    let mut other = create(&f, json!({"blocks": [["op0", "op1"], ["in"]]})).unwrap();
    let e = other.load(saved).unwrap_err();
    assert!(e.contains("blocks"), "{e}");
    let mut evo = create(&f, json!({"inner": "evolution"})).unwrap();
    let mut state = evo.save().unwrap();
    state["phase"] = json!(0);
    state["inner"]["members"] = json!([[[5], 0.5]]);
    let e = evo.load(state).unwrap_err();
    assert!(e.contains("`members`"), "{e}");
}

#[test]
fn a_warm_up_trains_uniform_paths_before_the_search() {
    check_warmup::<Fpnas>(json!({}));
}

#[test]
fn a_cell_with_edges_searches_and_exports_a_valid_architecture() {
    let mut f = FakeSupernet::cell(1, 30);
    f.accuracy = vec![0.5; 12];
    let arch = run_on_fake::<Fpnas>(&mut f, json!({}), 1);
    nas_strategies::validate(&f.info.choices, &arch).unwrap();
}

#[test]
fn bad_configs_name_the_field_and_value() {
    let f = FakeSupernet::new(2, 3, 1, 10);
    refused(
        &f,
        json!({"blocks": [["op0", "zz"], ["op1", "in"]]}),
        &["`blocks`", "`zz`", "not a choice"],
    );
    refused(
        &f,
        json!({"blocks": [["op0", "op1"], [], ["in"]]}),
        &["`blocks`", "block 1 is empty"],
    );
    refused(
        &f,
        json!({"blocks": [["op0", "op1"], ["op1", "in"]]}),
        &["`blocks`", "`op1`", "twice"],
    );
    refused(
        &f,
        json!({"blocks": [["op0", "op1"]]}),
        &["`blocks`", "`in`", "no block"],
    );
    refused(&f, json!({"blocks": "op0"}), &["`blocks`", "\"op0\""]);
    refused(&f, json!({"blocks": []}), &["`blocks`", "[]"]);
    refused(&f, json!({"inner": "bayes"}), &["`inner`", "bayes"]);
    refused(&f, json!({"population": 5}), &["`population`", "reinforce"]);
    refused(
        &f,
        json!({"inner": "evolution", "lr": 0.1}),
        &["`lr`", "evolution"],
    );
    // A REINFORCE batch past a phase's steps (here 10 / (2 rounds x 3 blocks) = 1): the
    // block's first phase would end without an update, on option 0 everywhere.
    refused(&f, json!({"batch": 2}), &["`batch`", "2", "1..=1"]);
    refused(&f, json!({"rounds": 0}), &["`rounds`", "0", "1..=3"]);
    refused(&f, json!({"rounds": 4}), &["`rounds`", "4", "1..=3"]);
    refused(
        &f,
        json!({"reward_batches": 11}),
        &["`reward_batches`", "11", "1..=10"],
    );
    refused(&f, json!({"lr": 0}), &["`lr`", "0"]);
    refused(&f, json!({"lr": 2}), &["`lr`", "2"]);
    refused(&f, json!({"batch": 0}), &["`batch`", "0", "1..=1"]);
    refused(
        &f,
        json!({"baseline_decay": 1}),
        &["`baseline_decay`", "1", "[0, 1)"],
    );
    refused(
        &f,
        json!({"baseline_decay": -0.5}),
        &["`baseline_decay`", "-0.5"],
    );
    refused(
        &f,
        json!({"entropy_weight": -1}),
        &["`entropy_weight`", "-1", ">= 0"],
    );
    refused(
        &f,
        json!({"inner": "evolution", "population": 1}),
        &["`population`", "1", "2..=10000"],
    );
    refused(
        &f,
        json!({"inner": "evolution", "population": 4, "sample_size": 5}),
        &["`sample_size`", "5", "1..=4"],
    );
    refused(&f, json!({"colour": 1}), &["`colour`", "fpnas"]);
    // A run too short to give each block a phase.
    let short = FakeSupernet::new(2, 3, 1, 2);
    refused(&short, json!({}), &["2 steps", "3 blocks"]);
    // The defaults fit a run with fewer steps than two rounds need.
    let three = FakeSupernet::new(2, 3, 1, 4);
    assert_eq!(create(&three, json!({})).unwrap().rounds, 1);
}
