//! A kernel profiler: while it is on, every instrumented kernel call (forward kernels by
//! name, backward by the gradient rule of its op) records its wall time, floating-point
//! operations and bytes moved. `nas profile` turns the records into a per-kernel table
//! and a Chrome trace (Perfetto and chrome://tracing open it), beside the spans of the
//! steps the kernels ran in.
//!
//! Off by default; the check is one relaxed atomic load per kernel call.

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;

static ON: AtomicBool = AtomicBool::new(false);
static EVENTS: Mutex<Vec<Event>> = Mutex::new(Vec::new());
static START: Mutex<Option<Instant>> = Mutex::new(None);

/// One kernel call.
#[derive(Clone, Debug)]
pub struct Event {
    pub name: String,
    /// Microseconds since profiling started.
    pub start_us: f64,
    pub dur_us: f64,
    pub flops: f64,
    pub bytes: f64,
}

/// Whether calls are being recorded.
#[inline]
pub fn enabled() -> bool {
    ON.load(Ordering::Relaxed)
}

/// Starts recording (dropping anything recorded before); returns the moment the
/// records' times count from.
pub fn start() -> Instant {
    EVENTS.lock().unwrap().clear();
    let origin = Instant::now();
    *START.lock().unwrap() = Some(origin);
    ON.store(true, Ordering::Relaxed);
    origin
}

/// Stops recording and returns the calls recorded since `start`.
pub fn stop() -> Vec<Event> {
    ON.store(false, Ordering::Relaxed);
    std::mem::take(&mut *EVENTS.lock().unwrap())
}

/// Runs `f`, recording it as one call of `name` when profiling is on.
#[inline]
pub fn record<R>(name: &str, flops: f64, bytes: f64, f: impl FnOnce() -> R) -> R {
    if !enabled() {
        return f();
    }
    let t0 = Instant::now();
    let r = f();
    let dur = t0.elapsed();
    let start = START.lock().unwrap().unwrap_or(t0);
    let ev = Event {
        name: name.to_string(),
        start_us: t0.saturating_duration_since(start).as_secs_f64() * 1e6,
        dur_us: dur.as_secs_f64() * 1e6,
        flops,
        bytes,
    };
    EVENTS.lock().unwrap().push(ev);
    r
}

/// One row of the per-kernel table.
#[derive(Clone, Debug)]
pub struct Row {
    pub name: String,
    pub calls: usize,
    pub total_ms: f64,
    pub flops: f64,
    pub bytes: f64,
}

impl Row {
    pub fn gflops(&self) -> f64 {
        self.flops / (self.total_ms * 1e6).max(1e-9)
    }
    pub fn gbs(&self) -> f64 {
        self.bytes / (self.total_ms * 1e6).max(1e-9)
    }
}

/// Calls grouped by kernel, the most expensive first.
pub fn summary(events: &[Event]) -> Vec<Row> {
    let mut by: BTreeMap<&str, Row> = BTreeMap::new();
    for e in events {
        let r = by.entry(&e.name).or_insert_with(|| Row {
            name: e.name.clone(),
            calls: 0,
            total_ms: 0.0,
            flops: 0.0,
            bytes: 0.0,
        });
        r.calls += 1;
        r.total_ms += e.dur_us / 1e3;
        r.flops += e.flops;
        r.bytes += e.bytes;
    }
    let mut rows: Vec<Row> = by.into_values().collect();
    rows.sort_by(|a, b| b.total_ms.total_cmp(&a.total_ms));
    rows
}

/// The calls as a Chrome trace (`{"traceEvents": [...]}`, complete events in
/// microseconds, on the track `kernels`), with the caller's `more` events (such as the
/// spans of the steps) beside them.
pub fn chrome_trace(events: &[Event], more: Vec<Value>) -> Value {
    let mut out: Vec<Value> = events
        .iter()
        .map(|e| {
            json!({
                "name": e.name, "cat": "kernel", "ph": "X", "pid": 1, "tid": 1,
                "ts": e.start_us, "dur": e.dur_us,
                "args": {"gflop": e.flops / 1e9, "mbytes": e.bytes / 1e6},
            })
        })
        .collect();
    out.extend(more);
    out.push(
        json!({"name": "thread_name", "ph": "M", "pid": 1, "tid": 1, "args": {"name": "kernels"}}),
    );
    json!({ "traceEvents": out, "displayTimeUnit": "ms" })
}
