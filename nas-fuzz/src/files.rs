//! The NB201 table, safetensors checkpoints and plugin libraries.

use crate::{rng_of, scratch_file};
use nas_core::evaluate::{Evaluator, Nb201Table};
use nas_core::io::{load_module, load_tensors};
use nas_core::nn::{self, BatchNorm2d, Conv2d, Module, Sequential};
use nas_core::space::builtin::nb201;
use nas_core::{ConvOpts, Rng, Tensor};

pub(crate) fn nb201_csv(bytes: &[u8]) {
    let path = scratch_file("nb201.csv", bytes);
    let Ok(t) = Nb201Table::load(&path) else {
        return;
    };
    let best = t.optimum();
    let in_range = |x: f64| (0.0..=100.0).contains(&x);
    let mut keys: Vec<&String> = t.rows.keys().collect();
    keys.sort();
    for key in &keys {
        let r = &t.rows[*key];
        assert!(!r.seeds.is_empty(), "row {key} has no seed");
        assert!(
            r.seeds.iter().all(|&s| in_range(s)),
            "row {key}: seeds {:?}",
            r.seeds
        );
        assert!(in_range(r.mean), "row {key}: mean {}", r.mean);
        for c in [r.params_mb, r.latency_s, r.train_time_s] {
            assert!(c.is_finite() && c >= 0.0, "row {key}: cost {c}");
        }
        assert!(
            r.mean <= best,
            "row {key}: mean {} above the optimum {best}",
            r.mean
        );
    }
    // A few rows looked up by architecture, as the evaluator does.
    let mut rng = rng_of(bytes);
    for _ in 0..keys.len().min(4) {
        let key = keys[rng.below(keys.len())];
        let a = nb201::arch_from_key(key).unwrap_or_else(|e| panic!("key {key}: {e}"));
        let row = t.row(&a).unwrap_or_else(|e| panic!("key {key}: {e}"));
        assert_eq!(row.arch_str, t.rows[key].arch_str);
        let m = t.evaluate(&a, rng.next_u64()).expect("a row evaluates");
        assert!((0.0..=1.0).contains(&m.accuracy), "accuracy {}", m.accuracy);
        assert_eq!(t.final_accuracy(&a), Some(row.mean / 100.0));
    }
    // An architecture the table may lack is an error, not a panic.
    let key: String = (0..6)
        .map(|_| char::from(b'0' + rng.below(5) as u8))
        .collect();
    let a = nb201::arch_from_key(&key).unwrap();
    assert_eq!(t.row(&a).is_ok(), t.rows.contains_key(&key));
}

/// The small network the safetensors target loads into: a 3x3 convolution from one
/// channel to two, and a batch norm (parameters and running statistics).
pub fn small_net() -> Sequential {
    let mut rng = Rng::new(1);
    let opts = ConvOpts {
        padding: 1,
        ..Default::default()
    };
    Sequential::new(vec![
        Box::new(Conv2d::new(1, 2, 3, opts, &mut rng)),
        Box::new(BatchNorm2d::new(2)),
    ])
}

pub(crate) fn safetensors(bytes: &[u8]) {
    let path = scratch_file("weights.safetensors", bytes);
    if let Ok(tensors) = load_tensors(&path) {
        for (name, t) in &tensors {
            let n: usize = t.shape().iter().product();
            assert_eq!(
                t.data().len(),
                n,
                "tensor `{name}` of shape {:?}",
                t.shape()
            );
        }
    }
    let net = small_net();
    if load_module(&path, &net).is_ok() {
        let file = load_tensors(&path).expect("a file that loads into a network loads");
        for (name, t) in nn::state(&net) {
            let src = &file[&name];
            let same = src
                .data()
                .iter()
                .map(|v| v.to_bits())
                .eq(t.data().iter().map(|v| v.to_bits()));
            assert!(same, "tensor `{name}` was not loaded as the file holds it");
        }
        let y = net.forward(&Tensor::zeros(&[1, 1, 4, 4]));
        assert_eq!(y.shape(), &[1, 2, 4, 4]);
    }
}

/// The symbols the host asks of a plugin library (see `nas-cli/src/host.rs`).
const ABI_SYMBOL: &str = "nas_plugin_abi_version";
const TABLE_SYMBOLS: [&str; 2] = ["nas_plugin_table", "nas_plugin_one_shot_table"];

pub(crate) fn plugin(bytes: &[u8]) {
    if let Ok(tables) = nas_cli::elf::check_image(bytes, &[ABI_SYMBOL], &TABLE_SYMBOLS) {
        for (i, t) in tables.iter().enumerate() {
            assert!(
                TABLE_SYMBOLS.contains(&t.as_str()),
                "not an asked-for table: {t}"
            );
            assert!(!tables[..i].contains(t), "table {t} found twice");
        }
    }
}
