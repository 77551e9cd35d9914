//! The unit tests of `nas_cli::arch_graph` (`nas-cli/src/arch_graph.rs`).

use nas_cli::arch_graph::*;
use nas_cli::plot::color;
use nas_core::space::Reduce;
use nas_core::space::{Architecture, Choice, ChoiceKind};
use serde_json::Value;

fn layer(label: &str, candidates: &[&str]) -> Choice {
    Choice {
        label: label.into(),
        kind: ChoiceKind::Layer {
            candidates: candidates.iter().map(|c| c.to_string()).collect(),
        },
        inside: None,
        edge_ops: vec![],
    }
}

fn arch(pairs: &[(&str, Value)]) -> Architecture {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// The op labels of a drawing, in document order.
fn ops(svg: &str) -> Vec<&str> {
    svg.split("class=\"op\"")
        .skip(1)
        .map(|t| t.split('>').nth(1).unwrap().split('<').next().unwrap())
        .collect()
}

#[test]
fn a_nb201_cell_is_four_nodes_and_six_labelled_edges() {
    let ops_ = [
        "none",
        "skip_connect",
        "nor_conv_1x1",
        "nor_conv_3x3",
        "avg_pool_3x3",
    ];
    let labels = [
        "edge_1_0", "edge_2_0", "edge_2_1", "edge_3_0", "edge_3_1", "edge_3_2",
    ];
    let choices: Vec<Choice> = labels.iter().map(|l| layer(l, &ops_)).collect();
    let picked = [
        "nor_conv_3x3",
        "none",
        "skip_connect",
        "avg_pool_3x3",
        "nor_conv_1x1",
        "nor_conv_3x3",
    ];
    let a = arch(
        &labels
            .iter()
            .zip(picked)
            .map(|(l, o)| (*l, Value::from(o)))
            .collect::<Vec<_>>(),
    );
    let d = draw(&choices, &a);
    assert_eq!(d.len(), 1, "one cell, no layers");
    assert_eq!(d[0].title, "cell");
    let svg = &d[0].svg;
    assert_eq!(svg.matches("class=\"node\"").count(), 4);
    assert_eq!(svg.matches("class=\"edge\"").count(), 6);
    let mut got = ops(svg);
    got.sort();
    let mut want = picked.to_vec();
    want.sort();
    assert_eq!(got, want);
    // `none` is drawn dashed and grey; a convolution in its candidate's colour.
    assert!(svg.contains("stroke-dasharray=\"4 3\""));
    assert!(svg.contains(&format!("fill=\"{}\"", color(3))));
    // The longest arc (0 to 3) spans three gaps; its label sits above the others'.
    let y_of = |op: &str| -> f64 {
        let t = svg.split(&format!(">{op}</text>")).next().unwrap();
        let t = t.rsplit("class=\"op\"").next().unwrap();
        t.split("y=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(y_of("avg_pool_3x3") < y_of("none"), "{svg}");
    assert!(y_of("none") < y_of("nor_conv_3x3"), "{svg}");
}

#[test]
fn a_darts_cell_draws_the_picked_edges_into_a_concat() {
    let ops_ = ["none", "sep_conv_3x3", "max_pool_3x3"];
    let mut choices = vec![];
    let mut a = Architecture::new();
    for node in 2..=3usize {
        let mut edge_ops = vec![];
        for from in 0..node {
            let l = format!("normal/op_{node}_{from}");
            choices.push(layer(&l, &ops_));
            a.insert(l.clone(), Value::from(ops_[1 + (from % 2)]));
            edge_ops.push(l);
        }
        choices.push(Choice {
            label: format!("normal/input_{node}"),
            kind: ChoiceKind::Input {
                n_candidates: node,
                n_chosen: 2,
                reduce: Reduce::Sum,
            },
            inside: None,
            edge_ops,
        });
    }
    // Node 3 keeps its edges from 0 and 2, not from 1.
    a.insert("normal/input_2".into(), serde_json::json!([0, 1]));
    a.insert("normal/input_3".into(), serde_json::json!([0, 2]));
    let d = draw(&choices, &a);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].title, "cell normal");
    let svg = &d[0].svg;
    // Nodes 0..3 and the output; four op edges and the two intermediate nodes
    // into the output.
    assert_eq!(svg.matches("class=\"node\"").count(), 5);
    assert_eq!(svg.matches("class=\"edge\"").count(), 6);
    assert_eq!(ops(svg).len(), 4);
    assert!(svg.contains(">out</text>") && svg.contains(">concat</text>"));
    assert_eq!(svg.matches(">input</text>").count(), 2);
}

#[test]
fn a_chain_is_boxes_in_order_with_its_skips_as_arcs() {
    let ops_ = ["conv3x3", "max_pool3x3"];
    let mut choices = vec![Choice {
        label: "depth".into(),
        kind: ChoiceKind::Repeat {
            depths: vec![2, 3, 4],
        },
        inside: None,
        edge_ops: vec![],
    }];
    let value = |l: &str, vs: &[i64]| Choice {
        label: l.into(),
        kind: ChoiceKind::Value {
            values: vs.iter().map(|v| Value::from(*v)).collect(),
        },
        inside: None,
        edge_ops: vec![],
    };
    for i in 0..4usize {
        choices.push(value(&format!("layer{i}/filters"), &[16, 32]));
        for k in 0..i.saturating_sub(1) {
            choices.push(value(&format!("layer{i}/skip{k}"), &[0, 1]));
        }
        choices.push(layer(&format!("layer{i}/op"), &ops_));
    }
    // Depth 3: layer3's choices are not in the architecture.
    let a = arch(&[
        ("depth", Value::from(3)),
        ("layer0/filters", Value::from(16)),
        ("layer0/op", Value::from("conv3x3")),
        ("layer1/filters", Value::from(32)),
        ("layer1/op", Value::from("max_pool3x3")),
        ("layer2/filters", Value::from(32)),
        ("layer2/skip0", Value::from(1)),
        ("layer2/op", Value::from("conv3x3")),
    ]);
    let d = draw(&choices, &a);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].title, "layers");
    let svg = &d[0].svg;
    assert_eq!(svg.matches("class=\"layer\"").count(), 3);
    assert_eq!(svg.matches("class=\"skip\"").count(), 1);
    assert!(svg.contains(">depth = 3</text>"));
    let order: Vec<usize> = [
        "layer0",
        "layer1",
        "layer2",
        "op: max_pool3x3",
        "filters: 16",
    ]
    .iter()
    .map(|t| {
        svg.find(&format!(">{t}</text>"))
            .unwrap_or_else(|| panic!("{t}: {svg}"))
    })
    .collect();
    assert!(order[0] < order[1] && order[1] < order[2], "{svg}");
    assert!(order[4] < order[3] && order[3] < order[2]);
    // A plain space's choices (no prefixes) are boxes of their own.
    let seed = [
        layer("conv1", &["conv3x3", "conv5x5"]),
        layer("conv2", &["conv3x3", "conv5x5"]),
    ];
    let d = draw(
        &seed,
        &arch(&[("conv1", "conv5x5".into()), ("conv2", "conv3x3".into())]),
    );
    assert_eq!(d[0].svg.matches("class=\"layer\"").count(), 2);
    assert!(d[0].svg.contains(">conv5x5</text>"));
}
