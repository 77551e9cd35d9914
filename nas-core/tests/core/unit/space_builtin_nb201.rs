//! The unit tests of `nas_core::space::builtin::nb201` (`nas-core/src/space/builtin/nb201.rs`).

use nas_core::nn::Module;
use nas_core::rng::Rng;
use nas_core::space::builtin::nb201::*;
use nas_core::space::Builder;
use nas_core::tensor::Tensor;

use nas_core::nn::{num_parameters, parameters};
use nas_core::space::{describe, fixed, ChoiceKind, Mode, Supernet};

#[test]
fn halving_pool_rounds_up_like_ceil_mode() {
    // 3x3 -> 2x2: the last row and column are averaged on their own (PyTorch's
    // `AvgPool2d(2, 2, ceil_mode=True)`); an even side is plain 2x2 pooling.
    let x = Tensor::from_vec((1..=9).map(|v| v as f32).collect(), &[1, 1, 3, 3]);
    let y = HalvingAvgPool.forward(&x);
    assert_eq!(y.shape(), &[1, 1, 2, 2]);
    assert_eq!(y.to_vec(), [3.0, 4.5, 7.5, 9.0]);
    let x = Tensor::from_vec((1..=16).map(|v| v as f32).collect(), &[1, 1, 4, 4]);
    let (a, b) = (HalvingAvgPool.forward(&x), x.avg_pool2d(2, 2, 0, true));
    assert_eq!(a.to_vec(), b.to_vec());
    // Each input pixel gets its share of its window's gradient.
    let x = Tensor::parameter(vec![0.0; 9], &[1, 1, 3, 3]);
    HalvingAvgPool.forward(&x).sum().backward();
    assert_eq!(
        x.grad().unwrap(),
        [0.25, 0.25, 0.5, 0.25, 0.25, 0.5, 0.5, 0.5, 1.0]
    );
}

#[test]
fn reduction_block_takes_odd_sizes() {
    let mut rng = Rng::new(0);
    let block = ResNetBasicBlock::new(2, 4, &mut rng);
    for (side, want) in [(1, 1), (7, 4), (15, 8), (30, 15)] {
        let x = Tensor::uniform(&[2, 2, side, side], -1.0, 1.0, &mut rng);
        assert_eq!(block.forward(&x).shape(), &[2, 4, want, want]);
    }
}

fn space(c: usize, n: usize) -> Nb201Space {
    Nb201Space {
        c,
        n,
        in_channels: 3,
        classes: 10,
    }
}

#[test]
fn six_shared_choices_of_five_ops() {
    let choices = describe(&space(16, 5));
    let labels: Vec<&str> = choices.iter().map(|c| c.label.as_str()).collect();
    assert_eq!(
        labels,
        ["edge_1_0", "edge_2_0", "edge_2_1", "edge_3_0", "edge_3_1", "edge_3_2"]
    );
    for c in &choices {
        assert_eq!(
            c.kind,
            ChoiceKind::Layer {
                candidates: OPS.iter().map(|s| s.to_string()).collect()
            }
        );
    }
}

#[test]
fn parameter_counts_of_known_rows() {
    // Rows 000000 and 000002 of the CIFAR-10 table: 0.073306 and 0.101306 M.
    let s = space(16, 5);
    for (key, count) in [("000000", 73306), ("000002", 101306)] {
        let net = fixed(&s, &arch_from_key(key).unwrap(), 0).unwrap();
        assert_eq!(num_parameters(net.as_ref()), count, "{key}");
    }
}

#[test]
fn parameter_names_follow_the_benchmark_model() {
    let a = parse_arch_str(
        "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|avg_pool_3x3~2|",
    )
    .unwrap();
    let net = fixed(&space(16, 5), &a, 0).unwrap();
    let names: Vec<String> = parameters(net.as_ref())
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    for n in [
        "stem.0.weight",
        "stem.1.weight",
        "cells.0.edge_1_0.nor_conv_3x3.op.1.weight",
        "cells.3.edge_2_1.nor_conv_3x3.op.2.bias",
        "cells.5.conv_a.op.1.weight",
        "cells.5.downsample.1.weight",
        "cells.11.conv_b.op.2.weight",
        "cells.16.edge_1_0.nor_conv_3x3.op.1.weight",
        "lastact.0.weight",
        "classifier.weight",
        "classifier.bias",
    ] {
        assert!(
            names.iter().any(|x| x == n),
            "no parameter `{n}` in {names:?}"
        );
    }
    assert!(!names.iter().any(|x| x.contains("edge_2_0")));
    assert!(!names.iter().any(|x| x.starts_with("cells.17")));
}

#[test]
fn arch_strings_and_keys() {
    let s = "|nor_conv_3x3~0|+|none~0|nor_conv_1x1~1|+|skip_connect~0|none~1|avg_pool_3x3~2|";
    let a = parse_arch_str(s).unwrap();
    assert_eq!(a["edge_1_0"], "nor_conv_3x3");
    assert_eq!(a["edge_2_1"], "nor_conv_1x1");
    assert_eq!(a["edge_3_2"], "avg_pool_3x3");
    assert_eq!(arch_str(&a), s);
    assert_eq!(arch_key(&a).unwrap(), "302104");
    assert_eq!(arch_from_key("302104").unwrap(), a);
}

#[test]
fn parse_errors_name_the_bad_piece() {
    let err = |s: &str| parse_arch_str(s).unwrap_err();
    let e = err("|none~0|+|none~0|conv~1|+|none~0|none~1|none~2|");
    assert!(
        e.contains("`conv~1`") && e.contains("unknown op `conv`"),
        "{e}"
    );
    let e = err("|none~0|+|none~0|none~2|+|none~0|none~1|none~2|");
    assert!(e.contains("`none~2`") && e.contains("node 2"), "{e}");
    let e = err("|none~0|+|none~0|none~1|");
    assert!(e.contains("3 nodes"), "{e}");
    let e = err("|none~0|+|none~0|+|none~0|none~1|none~2|");
    assert!(e.contains("node 2 `|none~0|`"), "{e}");
    let e = err("none~0|+|none~0|none~1|+|none~0|none~1|none~2|");
    assert!(e.contains("node 1 `none~0|`"), "{e}");
    let e = err("|none0|+|none~0|none~1|+|none~0|none~1|none~2|");
    assert!(e.contains("`none0`"), "{e}");
    let e = arch_from_key("00500").unwrap_err();
    assert!(e.contains("`00500`") && e.contains("6 digits"), "{e}");
    let e = arch_from_key("005000").unwrap_err();
    assert!(e.contains("digit 3 is `5`"), "{e}");
}

#[test]
fn one_hot_supernet_is_the_derived_network() {
    // Every cell follows the six shared mixing weights: with one-hot weights, the
    // supernet computes exactly the fixed network that inherits its weights.
    let s = space(4, 2);
    let sn = Supernet::build(&s, false, 0).unwrap();
    assert_eq!(sn.alphas.len(), 6);
    let choices = describe(&s);
    let mut rng = Rng::new(5);
    let x = Tensor::uniform(&[2, 3, 8, 8], -1.0, 1.0, &mut rng);
    for _ in 0..4 {
        let a = nas_core::space::arch::random(&choices, &mut rng);
        for (label, op) in &a {
            let mut w = [0.0; 5];
            w[OPS.iter().position(|o| op == o).unwrap()] = 1.0;
            sn.set_weights(label, &w).unwrap();
        }
        let net = sn.derive(&s, &a).unwrap();
        let (y0, y1) = (sn.net.forward(&x).to_vec(), net.forward(&x).to_vec());
        for (u, v) in y0.iter().zip(&y1) {
            assert!((u - v).abs() < 1e-5, "{}: {y0:?} vs {y1:?}", arch_str(&a));
        }
    }
}

#[test]
#[should_panic(expected = "shared layer choice `nope`")]
fn sharing_an_unrecorded_choice_is_a_space_bug() {
    let mut b = Builder::new(Mode::Describe, 0);
    b.layer_choice_shared("nope", edge_candidates(4));
}

#[test]
#[should_panic(expected = "shared layer choice `edge_1_0`")]
fn sharing_with_other_candidates_is_a_space_bug() {
    let mut b = Builder::new(Mode::Describe, 0);
    b.layer_choice("edge_1_0", edge_candidates(4));
    let mut c = edge_candidates(4);
    c.pop();
    b.layer_choice_shared("edge_1_0", c);
}
