//! What a one-shot run's checkpoint keeps of the host's side beside the weights and the
//! strategy's state.

use nas_cli::trainer::{SupernetTrainer, TrainerConfig};
use nas_core::data::Dataset;
use nas_core::Rng;
use nas_strategies::oneshot::SupernetHost;

/// The latency table a strategy asked for (FBNet's, ProxylessNAS's) is timed once; a
/// resumed run predicted its export's latency by timing the whole network instead (the
/// table was only in memory), so its journaled `latency_ms` was another figure, by
/// another method, than an uninterrupted run's.
#[test]
fn the_latency_table_survives_a_checkpoint() {
    let sp = super::small_nb201(4, 1, 8);
    let (train, val) = (
        Dataset::random(16, 1, 8, 10, &mut Rng::new(1)),
        Dataset::random(8, 1, 8, 10, &mut Rng::new(2)),
    );
    let cfg = TrainerConfig {
        batch_size: 4,
        epochs: 1,
        ..TrainerConfig::default()
    };
    let dir = std::env::temp_dir().join(format!("nas-latency-ckpt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut t = SupernetTrainer::new(sp.as_ref(), &train, &val, cfg.clone()).unwrap();
    t.checkpoint_dir = Some(dir.clone());
    let table = t.latencies().unwrap();
    let n = t.info().choices.len();
    let arch = t.info().derive(&t.info().one_hot(&vec![1; n]));
    let predicted = t.metrics(&arch).unwrap().latency_ms;
    t.checkpoint(&serde_json::json!({})).unwrap();

    let mut r = SupernetTrainer::new(sp.as_ref(), &train, &val, cfg).unwrap();
    r.checkpoint_dir = Some(dir.clone());
    r.load_checkpoint().unwrap().unwrap();
    assert_eq!(r.metrics(&arch).unwrap().latency_ms, predicted);
    assert_eq!(r.latencies().unwrap(), table, "timed again");
    std::fs::remove_dir_all(&dir).ok();
}
