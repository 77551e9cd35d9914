//! What an evaluator reports of a trial.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// What an evaluator measured. `accuracy` is in [0, 1]; the rest are costs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub accuracy: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub macs: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    /// Anything else the evaluator reports.
    #[serde(default, flatten)]
    pub extra: BTreeMap<String, Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_survive_json_text_exactly() {
        // A journal or a saved state is JSON text, read back when a run resumes: every
        // number must read back as the very float that was written, or a resumed run
        // drifts from an uninterrupted one. (The fuzz target `config` found
        // 0.49648308753967285 reading back one unit in the last place off.)
        let mut rng = crate::Rng::new(5);
        for x in [
            0.49648308753967285,
            0.1 + 0.2,
            1.0 / 3.0,
            2632.715,
            19.724999999999998,
        ]
        .into_iter()
        .chain((0..1000).map(|_| rng.uniform() as f64 * rng.uniform() as f64))
        {
            let m = Metrics {
                accuracy: x,
                params: Some(x * 1e6),
                ..Default::default()
            };
            let back: Metrics = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
            assert_eq!(
                back.accuracy.to_bits(),
                x.to_bits(),
                "{x:?} read back as {:?}",
                back.accuracy
            );
            assert_eq!(back, m);
            let v: serde_json::Value =
                serde_json::from_str(&serde_json::to_string(&x).unwrap()).unwrap();
            assert_eq!(
                v.as_f64().unwrap().to_bits(),
                x.to_bits(),
                "{x:?} as a JSON value"
            );
        }
    }
}
