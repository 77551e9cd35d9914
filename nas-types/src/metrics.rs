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

/// What each candidate of a layer choice costs on its real input inside the supernet,
/// for one image: SNAS's resource constraint weighs a sampled op by these.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OpCost {
    pub params: f64,
    /// Multiply-adds (convolutions, linear layers, matmuls).
    pub macs: f64,
    /// Memory access in floats: the input read, every value the op makes, and its
    /// parameters (ShuffleNet V2's memory access cost, counted per op).
    pub memory: f64,
}

impl std::ops::AddAssign for OpCost {
    fn add_assign(&mut self, o: OpCost) {
        self.params += o.params;
        self.macs += o.macs;
        self.memory += o.memory;
    }
}

/// The `extra` field that marks a trial whose evaluation never produced a result (a
/// cluster job that failed on every attempt); it holds why.
pub const FAILED_FIELD: &str = "failed";

impl Metrics {
    /// The metrics of a trial that produced no result: accuracy 0 (the worst a
    /// strategy can be told) and `failed` saying why. A run never returns such a trial.
    pub fn failed(why: &str) -> Metrics {
        let mut m = Metrics::default();
        m.extra
            .insert(FAILED_FIELD.into(), Value::String(why.into()));
        m
    }

    /// Whether these are the metrics of a failed trial (see [`Metrics::failed`]).
    pub fn is_failed(&self) -> bool {
        self.extra.contains_key(FAILED_FIELD)
    }

    /// Why a failed trial failed, as its evaluator said; `None` for a trial that did not
    /// fail.
    pub fn failure(&self) -> Option<&str> {
        self.extra
            .get(FAILED_FIELD)
            .map(|v| v.as_str().unwrap_or("no reason recorded"))
    }

    /// A cost by its name: `params`, `macs`, `latency_ms`, or a number the evaluator
    /// added under that name in `extra` (`activations`).
    pub fn cost(&self, name: &str) -> Option<f64> {
        match name {
            "params" => self.params,
            "macs" => self.macs,
            "latency_ms" => self.latency_ms,
            _ => self.extra.get(name).and_then(|v| v.as_f64()),
        }
    }
}

/// The costs every evaluator may report by name (beside the numbers it adds in
/// `extra`), which hard limits and objectives name.
pub const COSTS: &[&str] = &["params", "macs", "latency_ms"];

/// Hard limits as a person reads them: `params <= 400000, latency_ms <= 5`.
pub fn show_limits(limits: &[(String, f64)]) -> String {
    let shown: Vec<String> = limits.iter().map(|(k, v)| format!("{k} <= {v}")).collect();
    shown.join(", ")
}

/// The config fields that set a run's hard cost limits. The host applies them to all a
/// run returns (best, export, Pareto set, retrain, report), whatever the strategy, so
/// every strategy's config may hold them; a strategy may also use them itself (to breed
/// only from feasible parents, to search only feasible subnets).
pub const LIMIT_FIELDS: &[&str] = &["limits", "max_params", "max_macs", "max_latency_ms"];

/// The hard limits in a strategy config, as `(cost, maximum)` with cost one of
/// `params`, `macs`, `latency_ms`: `"limits": {"params": 4e5, ...}` and the fields
/// `max_params`, `max_macs`, `max_latency_ms`. An error names the field and the value.
pub fn config_limits(cfg: &Value) -> Result<Vec<(String, f64)>, String> {
    let value = |field: &str, v: &Value| match v.as_f64() {
        Some(x) if x.is_finite() && x >= 0.0 => Ok(x),
        _ => Err(format!(
            "config field `{field}`: {v} is not valid (a number >= 0)"
        )),
    };
    let mut out: Vec<(String, f64)> = vec![];
    let mut push = |k: &str, x: f64| match out.iter_mut().find(|(c, _)| c == k) {
        // Both forms of one cost: the tighter holds.
        Some(e) => e.1 = e.1.min(x),
        None => out.push((k.to_string(), x)),
    };
    match cfg.get("limits") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (k, v) in map {
                if !COSTS.contains(&k.as_str()) {
                    return Err(format!(
                        "config field `limits`: unknown cost `{k}` (use params, macs, latency_ms)"
                    ));
                }
                push(k, value(&format!("limits.{k}"), v)?);
            }
        }
        Some(l) => {
            return Err(format!(
                "config field `limits`: {l} is not an object of cost: maximum"
            ))
        }
    }
    for k in COSTS {
        let field = format!("max_{k}");
        match cfg.get(&field) {
            None | Some(Value::Null) => {}
            Some(v) => push(k, value(&field, v)?),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_come_from_either_form_and_the_tighter_holds() {
        let cfg = serde_json::json!({"limits": {"params": 300, "macs": 5e6}, "max_params": 200});
        // (Key order follows serde_json's map, sorted or not by the features in use.)
        let mut got = config_limits(&cfg).unwrap();
        got.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            got,
            vec![("macs".to_string(), 5e6), ("params".to_string(), 200.0)]
        );
        for (bad, field) in [
            (serde_json::json!({"limits": {"accuracy": 0.5}}), "`limits`"),
            (serde_json::json!({"limits": 5}), "`limits`"),
            (serde_json::json!({"max_macs": -1}), "`max_macs`"),
            (
                serde_json::json!({"limits": {"params": "big"}}),
                "`limits.params`",
            ),
        ] {
            let e = config_limits(&bad).unwrap_err();
            assert!(e.contains(field), "{bad}: {e}");
        }
    }

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
