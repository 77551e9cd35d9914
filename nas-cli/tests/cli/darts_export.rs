//! The DARTS relaxation and export rule on the real `darts` space's choices: edge groups
//! weigh 1 and get no gradient, and the export keeps each edge's strongest op other than
//! `none` and each node's two edges whose kept ops weigh most.

use nas_core::space::builtin::darts::DartsSpace;
use nas_core::space::{arch::validate, describe, fixed};
use nas_core::{Rng, Tensor};
use nas_strategies::oneshot::{mix_size, Group, OneShotInfo};
use nas_strategies::{ChoiceKind, Value};
use std::collections::BTreeMap;

fn info() -> (DartsSpace, OneShotInfo) {
    let space = DartsSpace {
        c: 8,
        layers: 5,
        ..DartsSpace::new(3, 10)
    };
    let choices = describe(&space);
    let groups = choices
        .iter()
        .enumerate()
        .map(|(i, c)| Group {
            label: c.label.clone(),
            choice: i,
            size: mix_size(c),
        })
        .collect();
    let info = OneShotInfo {
        choices,
        groups,
        epochs: 1,
        batches_per_epoch: 1,
        batch_size: 1,
        val_batches: 1,
    };
    (space, info)
}

#[test]
fn the_darts_space_declares_its_node_inputs_as_edges() {
    let (_, info) = info();
    let inputs: Vec<usize> = (0..info.groups.len())
        .filter(|&g| matches!(info.choices[g].kind, ChoiceKind::Input { .. }))
        .collect();
    assert_eq!(inputs.len(), 8, "4 nodes in each of the 2 cell types");
    for g in inputs {
        assert!(info.is_edges(g), "{}", info.groups[g].label);
    }
    let logits: Vec<f32> = (0..info.len()).map(|i| (i % 7) as f32 * 0.3).collect();
    let p = info.softmax(&logits, 1.0);
    let grad_p: Vec<f32> = (0..info.len()).map(|i| (i % 5) as f32 - 2.0).collect();
    let g = info.softmax_backward(&p, &grad_p, 1.0);
    for (gi, r) in info.ranges().into_iter().enumerate() {
        if info.is_edges(gi) {
            assert!(p[r.clone()].iter().all(|&w| w == 1.0), "edges weigh 1");
            assert!(g[r].iter().all(|&x| x == 0.0), "and get no gradient");
        } else {
            assert!((p[r].iter().sum::<f32>() - 1.0).abs() < 1e-5);
        }
    }
}

#[test]
fn derive_follows_the_paper() {
    let (space, info) = info();
    let mut w: BTreeMap<String, Vec<f32>> = BTreeMap::new();
    for c in &info.choices {
        match c.kind {
            // By default every edge prefers avg_pool_3x3 equally, so nodes keep inputs 0
            // and 1.
            ChoiceKind::Layer { .. } => {
                w.insert(
                    c.label.clone(),
                    vec![0.1, 0.1, 0.2, 0.1, 0.1, 0.1, 0.1, 0.1],
                );
            }
            // The edge groups' own weights favour the last edges; they must be ignored.
            ChoiceKind::Input { n_candidates, .. } => {
                w.insert(
                    c.label.clone(),
                    (0..n_candidates).map(|i| i as f32).collect(),
                );
            }
            _ => unreachable!(),
        }
    }
    // `none` is strongest on op_2_0, but never picked.
    w.insert(
        "normal/op_2_0".into(),
        vec![0.6, 0.0, 0.0, 0.0, 0.3, 0.1, 0.0, 0.0],
    );
    // Node 3: best non-none strengths 0.15 (edge 0), 0.4 (edge 1), 0.3 (edge 2).
    w.insert(
        "normal/op_3_0".into(),
        vec![0.7, 0.0, 0.0, 0.15, 0.0, 0.0, 0.1, 0.05],
    );
    w.insert(
        "normal/op_3_1".into(),
        vec![0.0, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.4],
    );
    w.insert(
        "normal/op_3_2".into(),
        vec![0.1, 0.3, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1],
    );
    // Reduce node 5: edges 3 and 4 win with dil_conv_3x3 and skip_connect.
    w.insert(
        "reduce/op_5_3".into(),
        vec![0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.9, 0.1],
    );
    w.insert(
        "reduce/op_5_4".into(),
        vec![0.5, 0.0, 0.0, 0.5, 0.0, 0.0, 0.0, 0.0],
    );
    let flat: Vec<f32> = info
        .groups
        .iter()
        .flat_map(|g| w[&g.label].clone())
        .collect();
    let arch = info.derive(&flat);
    validate(&info.choices, &arch).unwrap();
    let get = |l: &str| arch[l].clone();
    assert_eq!(get("normal/op_2_0"), "sep_conv_3x3");
    assert_eq!(get("normal/input_2"), Value::from(vec![0, 1]));
    assert_eq!(get("normal/op_3_1"), "dil_conv_5x5");
    assert_eq!(get("normal/op_3_2"), "max_pool_3x3");
    assert_eq!(get("normal/input_3"), Value::from(vec![1, 2]));
    assert_eq!(get("normal/input_4"), Value::from(vec![0, 1]));
    // The export names the ops of the picked edges only (the genotype's ops), not the
    // strongest op of an edge the node leaves out.
    for dropped in ["normal/op_3_0", "normal/op_4_2", "reduce/op_5_0"] {
        assert!(!arch.contains_key(dropped), "{dropped} in {arch:?}");
    }
    assert_eq!(arch.len(), 2 * (4 + 2 * 4), "an input and two ops per node");
    assert_eq!(get("reduce/op_5_3"), "dil_conv_3x3");
    assert_eq!(get("reduce/op_5_4"), "skip_connect");
    assert_eq!(get("reduce/input_5"), Value::from(vec![3, 4]));
    // The export builds and runs.
    let net = fixed(&space, &arch, 0).unwrap();
    let x = Tensor::randn(&[2, 3, 32, 32], 1.0, &mut Rng::new(1));
    assert_eq!(net.forward(&x).shape(), &[2, 10]);
}
