//! A path's multiply-adds summed from the host's per-candidate op costs
//! (`OneShotInfo::path_total`, what SPOS's multiply-add bins weigh) against the host's
//! count of the same path built as a fixed network.

use nas_cli::trainer::{SupernetTrainer, TrainerConfig};
use nas_core::data::Dataset;
use nas_core::space::builtin::{by_name, InputSpec};
use nas_core::Rng;
use nas_strategies::decisions;
use nas_strategies::oneshot::SupernetHost;

/// `name`'s path costs for `n` random paths: (summed from op costs by
/// `path_total`, summed from op costs over every mixing weight the one-hot mix turns
/// on, the host's count of the path built as a fixed network).
fn costs(name: &str, n: usize) -> Vec<(f64, f64, f64)> {
    let input = InputSpec {
        channels: 1,
        height: 8,
        width: 8,
        classes: 10,
    };
    let space = by_name(name, input).unwrap();
    let data = Dataset::random(16, 1, 8, 10, &mut Rng::new(0));
    let cfg = TrainerConfig {
        batch_size: 8,
        epochs: 1,
        ..TrainerConfig::default()
    };
    let mut t = SupernetTrainer::new(space.as_ref(), &data, &data, cfg).unwrap();
    let macs: Vec<f64> = t.op_costs().unwrap().iter().map(|c| c.macs).collect();
    let info = t.info().clone();
    let mut rng = Rng::new(1);
    (0..n)
        .map(|_| {
            let d = decisions::random(&info.choices, &mut rng);
            let arch = decisions::to_arch(&info.choices, &d);
            let whole = t.metrics(&arch).unwrap().macs.unwrap();
            let naive: f64 = info
                .one_hot(&d)
                .iter()
                .zip(&macs)
                .map(|(&m, c)| m as f64 * c)
                .sum();
            (info.path_total(&d, &macs), naive, whole)
        })
        .collect()
}

/// Whether `whole - part` is the same for every path.
fn constant(parts: &[(f64, f64)]) -> bool {
    let d0 = parts[0].1 - parts[0].0;
    parts
        .iter()
        .all(|(p, w)| ((w - p) - d0).abs() <= 1e-9 * w.abs().max(1.0))
}

#[test]
fn op_costs_sum_to_the_hosts_count_of_a_path_up_to_a_constant() {
    // The network outside the choices' candidates costs the same on every path, so a
    // path's count less its summed op costs is one constant per space. `chain` is
    // left out: its `filters` value choices change every later op's cost, and the op
    // costs are measured at the supernet's widest filters.
    for name in ["seed-net", "nb201", "darts", "mobilenet"] {
        let c = costs(name, 8);
        let exact: Vec<(f64, f64)> = c.iter().map(|&(p, _, w)| (p, w)).collect();
        assert!(constant(&exact), "{name}: {c:?}");
        assert!(
            c.iter().any(|&(p, _, _)| p != c[0].0),
            "{name}: paths all cost the same"
        );
        // Where a choice can be switched off (a `darts` node's unpicked edges),
        // summing every weight the one-hot mix turns on counts ops the path never
        // runs.
        let naive: Vec<(f64, f64)> = c.iter().map(|&(_, n, w)| (n, w)).collect();
        assert_eq!(constant(&naive), name != "darts", "{name}: {c:?}");
    }
}
