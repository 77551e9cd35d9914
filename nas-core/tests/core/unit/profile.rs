//! The unit tests of `nas_core::profile` (`nas-core/src/profile.rs`).

use nas_core::profile::*;
use serde_json::json;

#[test]
fn records_only_while_on_and_groups_by_kernel() {
    record("before", 1.0, 1.0, || ());
    start();
    let v = record("a", 2e9, 4e9, || 7);
    assert_eq!(v, 7);
    record("a", 2e9, 4e9, || {
        std::thread::sleep(std::time::Duration::from_millis(2))
    });
    record("b", 0.0, 8.0, || ());
    // Other tests may run kernels meanwhile; keep this test's names.
    let ev: Vec<Event> = stop()
        .into_iter()
        .filter(|e| ["a", "b", "before"].contains(&e.name.as_str()))
        .collect();
    record("after", 1.0, 1.0, || ());
    assert_eq!(ev.len(), 3);
    let rows = summary(&ev);
    assert_eq!(rows[0].name, "a");
    assert_eq!((rows[0].calls, rows[0].flops), (2, 4e9));
    assert!(rows[0].total_ms >= 2.0);
    assert!(rows[0].gflops() > 0.0 && rows[0].gflops() < 4e9 / 2e6);
    let step = json!({"name": "step", "ph": "X", "tid": 100, "ts": 0.0, "dur": 10.0});
    let t = chrome_trace(&ev, vec![step]);
    let evs = t["traceEvents"].as_array().unwrap();
    assert!(evs.iter().any(|e| e["name"] == "b" && e["ph"] == "X"));
    assert!(evs.iter().any(|e| e["name"] == "step" && e["tid"] == 100));
}
