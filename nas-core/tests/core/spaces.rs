//! The built-in `darts`, `chain` and `mobilenet` spaces: their choices, fixed networks of
//! random architectures, supernets (mixed and one-hot), the DARTS discretisation and
//! weight inheritance.

use nas_core::nn::{num_parameters, parameters, state, Module};
use nas_core::space::arch::{random, validate};
use nas_core::space::builtin::chain::ChainSpace;
use nas_core::space::builtin::darts::{self, DartsSpace};
use nas_core::space::builtin::mobilenet::MobileNetSpace;
use nas_core::space::builtin::{by_name, InputSpec, NAMES};
use nas_core::space::{describe, fixed, Architecture, ChoiceKind, Reduce, Space, Supernet};
use nas_core::{Rng, Tensor};
use serde_json::Value;
use std::collections::BTreeMap;

/// The two input shapes every space is checked on: (channels, size).
const INPUTS: [(usize, usize); 2] = [(3, 32), (1, 28)];

fn darts_space(in_channels: usize) -> DartsSpace {
    DartsSpace {
        c: 8,
        layers: 5,
        ..DartsSpace::new(in_channels, 10)
    }
}

fn batch_hw(channels: usize, h: usize, w: usize, seed: u64) -> (Tensor, Vec<u32>) {
    let mut rng = Rng::new(seed);
    let x = Tensor::randn(&[2, channels, h, w], 1.0, &mut rng);
    let y = (0..2).map(|_| rng.below(10) as u32).collect();
    (x, y)
}

fn nonzero(g: &Option<Vec<f32>>) -> bool {
    g.as_ref().is_some_and(|g| g.iter().any(|v| *v != 0.0))
}

/// Forward and backward on a random batch; checks the output and returns the loss.
fn step(net: &dyn Module, channels: usize, size: usize) -> f32 {
    step_hw(net, channels, size, size)
}

/// [`step`] on images of `h` x `w`.
fn step_hw(net: &dyn Module, channels: usize, h: usize, w: usize) -> f32 {
    let (x, y) = batch_hw(channels, h, w, 11);
    let out = net.forward(&x);
    assert_eq!(out.shape(), &[2, 10]);
    let loss = out.cross_entropy(&y);
    loss.backward();
    let l = loss.item();
    assert!(l.is_finite(), "loss {l}");
    l
}

/// Five random architectures validate, build and train a step.
fn check_fixed_networks(space: &dyn Space, channels: usize, size: usize) {
    let choices = describe(space);
    let mut rng = Rng::new(1);
    for t in 0..5 {
        let arch = random(&choices, &mut rng);
        validate(&choices, &arch).unwrap();
        let net = fixed(space, &arch, t).unwrap();
        step(net.as_ref(), channels, size);
        let params = parameters(net.as_ref());
        let with_grad = params.iter().filter(|(_, p)| nonzero(&p.grad())).count();
        let (_, fc) = params
            .iter()
            .find(|(n, _)| n == "classifier.weight")
            .unwrap();
        assert!(
            nonzero(&fc.grad()),
            "{}: classifier has no gradient",
            space.name()
        );
        assert!(
            with_grad * 2 >= params.len(),
            "{} {arch:?}: only {with_grad} of {} parameters have a gradient",
            space.name(),
            params.len()
        );
    }
}

/// The supernet trains a step and gives mixing-weight gradients for every choice.
fn check_supernet(space: &dyn Space, channels: usize, size: usize) {
    let s = Supernet::build(space, false, 7).unwrap();
    let labels: Vec<String> = describe(space).into_iter().map(|c| c.label).collect();
    assert_eq!(s.alphas.keys().cloned().collect::<Vec<_>>(), {
        let mut l = labels.clone();
        l.sort();
        l
    });
    step(s.net.as_ref(), channels, size);
    for l in &labels {
        let g = s.weight_grad(l).unwrap();
        assert!(g.iter().all(|v| v.is_finite()), "{l}: {g:?}");
        assert!(
            g.iter().any(|v| *v != 0.0),
            "{l}: zero mixing-weight gradient"
        );
    }
}

fn one_hot(n: usize, i: usize) -> Vec<f32> {
    (0..n).map(|k| if k == i { 1.0 } else { 0.0 }).collect()
}

fn darts_labels(nodes: usize) -> Vec<String> {
    let mut v = vec![];
    for kind in ["normal", "reduce"] {
        for j in 2..2 + nodes {
            v.extend((0..j).map(|i| format!("{kind}/op_{j}_{i}")));
            v.push(format!("{kind}/input_{j}"));
        }
    }
    v
}

#[test]
fn builtin_registry_knows_the_new_spaces() {
    let input = InputSpec {
        channels: 3,
        height: 32,
        width: 32,
        classes: 10,
    };
    for name in ["darts", "chain", "mobilenet"] {
        assert!(NAMES.contains(&name));
        assert_eq!(by_name(name, input).unwrap().name(), name);
    }
}

#[test]
fn darts_describes_per_cell_type_choices() {
    let choices = describe(&darts_space(3));
    let labels: Vec<&str> = choices.iter().map(|c| c.label.as_str()).collect();
    assert_eq!(labels, darts_labels(4));
    for c in &choices {
        match &c.kind {
            ChoiceKind::Layer { candidates } => assert_eq!(candidates, &darts::OPS),
            ChoiceKind::Input {
                n_candidates,
                n_chosen,
                reduce,
            } => {
                let j: usize = c.label.rsplit_once('_').unwrap().1.parse().unwrap();
                assert_eq!((*n_candidates, *n_chosen, *reduce), (j, 2, Reduce::Sum));
            }
            k => panic!("unexpected choice {k:?}"),
        }
    }
    assert_eq!(darts_space(3).reductions(), [1, 3]);
}

#[test]
fn darts_fixed_networks_train() {
    for (c, s) in INPUTS {
        check_fixed_networks(&darts_space(c), c, s);
    }
}

#[test]
fn darts_supernet_trains_and_gives_mixing_weight_gradients() {
    for (c, s) in INPUTS {
        check_supernet(&darts_space(c), c, s);
    }
}

/// One-hot weights: sep_conv_3x3 on every edge, each node reading its last input only.
/// Only those ops run and get gradients.
#[test]
fn darts_one_hot_supernet_runs_only_the_active_path() {
    let space = darts_space(3);
    let s = Supernet::build(&space, false, 3).unwrap();
    let sep = darts::OPS
        .iter()
        .position(|o| *o == "sep_conv_3x3")
        .unwrap();
    for c in &s.choices {
        let w = match &c.kind {
            ChoiceKind::Layer { candidates } => one_hot(candidates.len(), sep),
            ChoiceKind::Input { n_candidates, .. } => one_hot(*n_candidates, n_candidates - 1),
            _ => unreachable!(),
        };
        s.set_weights(&c.label, &w).unwrap();
    }
    step(s.net.as_ref(), 3, 32);
    let mut active = 0;
    for (name, p) in parameters(s.net.as_ref()) {
        let parts: Vec<&str> = name.split('.').collect();
        let Some(e) = parts.iter().position(|p| p.starts_with("edge")) else {
            continue;
        };
        let j: usize = parts[e - 1].trim_start_matches("node").parse().unwrap();
        let i: usize = parts[e].trim_start_matches("edge").parse().unwrap();
        if parts[e + 1] == "sep_conv_3x3" && i == j - 1 {
            assert!(nonzero(&p.grad()), "{name} is active but has no gradient");
            active += 1;
        } else {
            assert!(
                !nonzero(&p.grad()),
                "{name} is switched off but has a gradient"
            );
        }
    }
    assert!(active > 0);
    for c in &s.choices {
        let g = s.weight_grad(&c.label).unwrap();
        let on = match &c.kind {
            ChoiceKind::Layer { .. } => sep,
            _ => g.len() - 1,
        };
        for (k, v) in g.iter().enumerate() {
            if k != on {
                assert_eq!(
                    *v, 0.0,
                    "{}: candidate {k} is off but has a gradient",
                    c.label
                );
            }
        }
    }
}

/// The derived network has the supernet's tensors under the same names.
fn check_inheritance(space: &dyn Space, arch: &Architecture, channels: usize, size: usize) {
    let s = Supernet::build(space, false, 21).unwrap();
    // A training step moves the batch-norm statistics away from their initial values.
    step(s.net.as_ref(), channels, size);
    let sup: BTreeMap<String, Tensor> = state(s.net.as_ref()).into_iter().collect();
    let net = s.derive(space, arch).unwrap();
    let sub = state(net.as_ref());
    assert!(!sub.is_empty());
    for (n, t) in &sub {
        let src = sup
            .get(n)
            .unwrap_or_else(|| panic!("{}: `{n}` is not in the supernet", space.name()));
        assert_eq!(
            src.to_vec(),
            t.to_vec(),
            "{}: `{n}` was not inherited",
            space.name()
        );
    }
    step(net.as_ref(), channels, size);
}

#[test]
fn derived_networks_inherit_supernet_weights() {
    let d = darts_space(3);
    let m = MobileNetSpace::new(3, 10, 32);
    let mut rng = Rng::new(5);
    for space in [&d as &dyn Space, &m] {
        for _ in 0..2 {
            let arch = random(&describe(space), &mut rng);
            check_inheritance(space, &arch, 3, 32);
        }
    }
}

#[test]
fn darts_search_network_parameter_count() {
    let space = DartsSpace::new(3, 10);
    let s = Supernet::build(&space, false, 0).unwrap();
    let n = num_parameters(s.net.as_ref());
    println!("DARTS supernet (C=16, 8 cells, 4 nodes): {n} parameters");
    // The DARTS paper's search network has about 1.93M.
    assert!((1_800_000..2_050_000).contains(&n), "{n} parameters");
    let small = Supernet::build(&darts_space(3), false, 0).unwrap();
    println!(
        "DARTS supernet (C=8, 5 cells): {} parameters",
        num_parameters(small.net.as_ref())
    );
    let m = Supernet::build(&MobileNetSpace::new(3, 10, 32), false, 0).unwrap();
    println!(
        "mobilenet supernet (32x32): {} parameters",
        num_parameters(m.net.as_ref())
    );
}

#[test]
fn chain_describes_layers_filters_skips_and_ops() {
    let choices = describe(&ChainSpace::new(3, 10));
    let mut expected = vec!["depth".to_string()];
    for i in 0..6usize {
        expected.push(format!("layer{i}/filters"));
        expected.extend((0..i.saturating_sub(1)).map(|k| format!("layer{i}/skip{k}")));
        expected.push(format!("layer{i}/op"));
    }
    let labels: Vec<String> = choices.iter().map(|c| c.label.clone()).collect();
    assert_eq!(labels, expected);
    for c in &choices[1..] {
        let i: usize = c.label[5..c.label.find('/').unwrap()].parse().unwrap();
        assert_eq!(c.inside, Some(("depth".to_string(), i)), "{}", c.label);
    }
    let op = choices.iter().find(|c| c.label == "layer3/op").unwrap();
    assert_eq!(
        op.kind,
        ChoiceKind::Layer {
            candidates: nas_core::space::builtin::chain::OPS
                .map(String::from)
                .to_vec()
        }
    );
}

#[test]
fn chain_fixed_networks_train() {
    for (c, s) in INPUTS {
        check_fixed_networks(&ChainSpace::new(c, 10), c, s);
    }
}

#[test]
fn chain_with_every_skip_trains() {
    let space = ChainSpace::new(3, 10);
    let choices = describe(&space);
    let mut arch = Architecture::new();
    for c in &choices {
        let v = match c.label.as_str() {
            "depth" => Value::from(6),
            l if l.ends_with("/filters") => Value::from(16),
            l if l.ends_with("/op") => Value::from("avg_pool3x3"),
            _ => Value::from(1),
        };
        arch.insert(c.label.clone(), v);
    }
    let net = fixed(&space, &arch, 0).unwrap();
    step(net.as_ref(), 3, 32);
}

#[test]
fn chain_supernet_mixes_filters_skips_and_depth() {
    let space = ChainSpace::new(3, 10);
    check_supernet(&space, 3, 16);
    // One-hot: depth 2, so layers 2.. are not run and get no gradient; width 16.
    let s = Supernet::build(&space, false, 3).unwrap();
    for c in describe(&space) {
        let n = s.alphas[&c.label].numel();
        let pick = if c.label == "depth" {
            0
        } else if c.label.contains("/skip") {
            1
        } else {
            0
        };
        s.set_weights(&c.label, &one_hot(n, pick)).unwrap();
    }
    step(s.net.as_ref(), 3, 16);
    for (n, t) in nas_core::nn::parameters(s.net.as_ref()) {
        let deep = n.starts_with("layers.")
            && n["layers.".len()..]
                .split('.')
                .next()
                .unwrap()
                .parse::<usize>()
                .unwrap()
                >= 2;
        if deep {
            assert!(
                t.grad().is_none(),
                "{n} is past the chosen depth but got a gradient"
            );
        }
    }
}

#[test]
fn mobilenet_describes_one_block_choice_per_layer() {
    let space = MobileNetSpace::new(3, 10, 32);
    assert_eq!(space.stem_stride, 1);
    assert_eq!(MobileNetSpace::new(3, 10, 224).stem_stride, 2);
    let choices = describe(&space);
    let labels: Vec<&str> = choices.iter().map(|c| c.label.as_str()).collect();
    let mut expected = vec![];
    for (s, n) in [2, 3, 3, 2].into_iter().enumerate() {
        expected.extend((0..n).map(|l| format!("stage{s}/layer{l}")));
    }
    assert_eq!(labels, expected);
    let blocks = [
        "mb_k3_e3", "mb_k3_e6", "mb_k5_e3", "mb_k5_e6", "mb_k7_e3", "mb_k7_e6",
    ];
    for c in &choices {
        let ChoiceKind::Layer { candidates } = &c.kind else {
            panic!("{c:?}")
        };
        let mut want: Vec<&str> = blocks.to_vec();
        if !c.label.ends_with("layer0") {
            want.push("skip");
        }
        assert_eq!(candidates, &want, "{}", c.label);
    }
}

#[test]
fn mobilenet_fixed_networks_train() {
    for (c, s) in INPUTS {
        check_fixed_networks(&MobileNetSpace::new(c, 10, s), c, s);
    }
}

#[test]
fn mobilenet_supernet_trains_and_gives_mixing_weight_gradients() {
    for (c, s) in INPUTS {
        check_supernet(&MobileNetSpace::new(c, 10, s), c, s);
    }
}

#[test]
fn mobilenet_one_hot_supernet_runs_only_the_active_blocks() {
    let space = MobileNetSpace::new(3, 10, 32);
    let s = Supernet::build(&space, false, 3).unwrap();
    let mut chosen = BTreeMap::new();
    for (t, c) in s.choices.iter().enumerate() {
        let ChoiceKind::Layer { candidates } = &c.kind else {
            unreachable!()
        };
        let k = t % candidates.len();
        s.set_weights(&c.label, &one_hot(candidates.len(), k))
            .unwrap();
        chosen.insert(c.label.replace('/', "."), candidates[k].clone());
    }
    step(s.net.as_ref(), 3, 32);
    let mut active = 0;
    for (name, p) in parameters(s.net.as_ref()) {
        let parts: Vec<&str> = name.splitn(4, '.').collect();
        if !parts[0].starts_with("stage") {
            continue;
        }
        let layer = format!("{}.{}", parts[0], parts[1]);
        if chosen[&layer] == parts[2] {
            assert!(nonzero(&p.grad()), "{name} is active but has no gradient");
            active += 1;
        } else {
            assert!(
                !nonzero(&p.grad()),
                "{name} is switched off but has a gradient"
            );
        }
    }
    assert!(active > 0);
}

/// Image sides every built-in space is tried at: tiny, odd, and not multiples of 4.
const SIDES: [usize; 10] = [1, 2, 3, 4, 5, 6, 7, 9, 15, 30];

/// The smallest side each built-in space takes (seed-net has two 2x2 max-pools).
fn min_side(name: &str) -> usize {
    if name == "seed-net" {
        4
    } else {
        1
    }
}

/// A smaller supernet of the same space, so every side's supernet step stays quick.
fn small_supernet_space(name: &str, input: InputSpec) -> Box<dyn Space> {
    match name {
        "nb201" => nas_core::space::builtin::nb201(4, 1, input),
        "darts" => Box::new(DartsSpace {
            c: 4,
            layers: 3,
            ..DartsSpace::new(input.channels, input.classes)
        }),
        n => by_name(n, input).unwrap(),
    }
}

/// Images that are not square: a strip one pixel wide or high, and sides below and
/// above seed-net's smallest.
const NON_SQUARE: [(usize, usize); 6] = [(28, 1), (1, 28), (3, 30), (30, 3), (7, 16), (16, 7)];

/// Every built-in space either takes a small, odd or non-square image (its fixed
/// networks, costed as `nas spaces` does, and its supernet run a training step) or
/// refuses it at construction with an error that names the space, the smallest side it
/// takes and the image's height and width.
#[test]
fn every_builtin_space_takes_small_and_odd_sides_or_refuses_them() {
    let shapes = SIDES.iter().map(|&s| (s, s)).chain(NON_SQUARE);
    for name in NAMES {
        for (h, w) in shapes.clone() {
            let channels = if (h + w) % 4 == 0 { 3 } else { 1 };
            let input = InputSpec {
                channels,
                height: h,
                width: w,
                classes: 10,
            };
            let min = min_side(name);
            let space = match by_name(name, input) {
                Err(e) => {
                    assert!(h.min(w) < min, "{name} refuses {h}x{w}: {e}");
                    assert!(
                        e.contains(&format!("`{name}`"))
                            && e.contains(&format!("{min}x{min}"))
                            && e.contains(&format!("{h}x{w}")),
                        "{name} at {h}x{w}: {e}"
                    );
                    continue;
                }
                Ok(s) => s,
            };
            assert!(h.min(w) >= min, "{name} takes {h}x{w}, below {min}x{min}");
            let choices = describe(space.as_ref());
            let mut rng = Rng::new((h * 100 + w) as u64);
            for t in 0..3 {
                let arch = random(&choices, &mut rng);
                let net = fixed(space.as_ref(), &arch, t).unwrap();
                let c = nas_core::space::cost::cost(net.as_ref(), [channels, h, w]);
                assert!(c.params > 0, "{name} at {h}x{w}");
                step_hw(net.as_ref(), channels, h, w);
            }
            let small = small_supernet_space(name, input);
            let s = Supernet::build(small.as_ref(), false, 3).unwrap();
            step_hw(s.net.as_ref(), channels, h, w);
        }
    }
}

/// A side of 0 is refused by every built-in space, with the space named.
#[test]
fn every_builtin_space_refuses_an_empty_image() {
    for name in NAMES {
        let input = InputSpec {
            channels: 3,
            height: 0,
            width: 0,
            classes: 10,
        };
        let e = by_name(name, input)
            .err()
            .expect("size 0 should be refused");
        assert!(e.contains(&format!("`{name}`")) && e.contains("0x0"), "{e}");
    }
}

/// The one-hot mixing weights of `arch` (the first option for a choice it does not make).
fn set_one_hot(s: &Supernet, arch: &Architecture) {
    for c in &s.choices {
        let i = match (&c.kind, arch.get(&c.label)) {
            (ChoiceKind::Layer { candidates }, Some(v)) => candidates
                .iter()
                .position(|n| Some(n.as_str()) == v.as_str()),
            (ChoiceKind::Value { values }, Some(v)) => values.iter().position(|u| u == v),
            (ChoiceKind::Repeat { depths }, Some(v)) => {
                depths.iter().position(|d| Some(*d as u64) == v.as_u64())
            }
            _ => None,
        };
        let n = mix_size(&c.kind);
        s.set_weights(&c.label, &one_hot(n, i.unwrap_or(0)))
            .unwrap();
    }
}

fn mix_size(k: &ChoiceKind) -> usize {
    match k {
        ChoiceKind::Layer { candidates } => candidates.len(),
        ChoiceKind::Input { n_candidates, .. } => *n_candidates,
        ChoiceKind::Value { values } => values.len(),
        ChoiceKind::Repeat { depths } => depths.len(),
    }
}

/// A network derived from the chain supernet computes the supernet's one-hot path of
/// its architecture: the supernet's layers hold the widest filter count, and the fixed
/// network takes slices of them. Before, only tensors of the same shape were copied, so
/// every layer narrower than the widest kept its initial weights (an export of a chain
/// search scored 10.94% where the search had scored the path 3.12%). Where a pool op has
/// a 1x1 convolution in one network and not the other, the derivation says so.
#[test]
fn a_derived_chain_network_computes_the_supernets_one_hot_path() {
    let space = ChainSpace::new(3, 10);
    let s = Supernet::build(&space, false, 4).unwrap();
    // Batch statistics away from their initial values.
    step(s.net.as_ref(), 3, 16);
    let (x, _) = batch_hw(3, 16, 16, 5);
    let mut rng = Rng::new(8);
    let (mut compared, mut noted) = (0, 0);
    for _ in 0..24 {
        let arch = random(&describe(&space), &mut rng);
        set_one_hot(&s, &arch);
        let d = s.derive_noting(&space, &arch).unwrap();
        let net = d.net;
        s.net.set_training(false);
        net.set_training(false);
        let want = nas_core::tensor::no_grad(|| s.net.forward(&x)).to_vec();
        let got = nas_core::tensor::no_grad(|| net.forward(&x)).to_vec();
        s.net.set_training(true);
        let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-12);
        let e = want
            .iter()
            .zip(&got)
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()))
            / scale;
        let a = serde_json::to_string(&arch).unwrap();
        if d.notes.is_empty() && d.untrained.is_empty() {
            assert!(
                e < 1e-4,
                "{a}: the derived network differs from the path by {e}"
            );
            compared += 1;
        } else {
            // The 1x1 convolution the fixed network has alone starts untrained.
            let (notes, untrained) = (&d.notes, &d.untrained);
            assert!(
                !notes.is_empty()
                    && notes
                        .iter()
                        .all(|n| n.contains("pool3x3 is followed by a 1x1 convolution"))
                    && untrained.iter().all(|n| n.contains("pool3x3.")),
                "{a}: {notes:?} {untrained:?}"
            );
            noted += 1;
        }
    }
    assert!(
        compared >= 8 && noted >= 1,
        "{compared} compared, {noted} noted"
    );
}
