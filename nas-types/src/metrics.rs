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
