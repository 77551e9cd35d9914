//! Spans as timed records: a `tracing` layer that, while recording is on, keeps every
//! span that closes (its name, fields, parent, thread, start and duration), so `nas
//! profile` and `NAS_TRACE` write a Chrome trace of the work the spans mark instead of
//! timing it by hand. Off, it costs one relaxed atomic load per span created.

use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Filter, Layer};
use tracing_subscriber::registry::LookupSpan;

pub static ON: AtomicBool = AtomicBool::new(false);
pub static RECORDING: Mutex<Recording> = Mutex::new(Recording {
    origin: None,
    done: Vec::new(),
});

pub struct Recording {
    origin: Option<Instant>,
    done: Vec<SpanRecord>,
}

/// One closed span.
#[derive(Clone, Debug)]
pub struct SpanRecord {
    pub name: &'static str,
    /// The module that opened it (`nas::search_cmd`, `nas_core::train`).
    pub target: &'static str,
    /// Its fields, in the order the span declares them.
    pub fields: Vec<(&'static str, Value)>,
    /// The name of the span it opened in, if any, and how many spans enclose it.
    pub parent: Option<&'static str>,
    pub depth: usize,
    /// The thread that opened it: 0, 1, ... in the order threads first opened a span.
    pub thread: usize,
    /// Microseconds from the origin given to [`start`] to its opening, and how long it
    /// stayed open.
    pub start_us: f64,
    pub dur_us: f64,
}

impl SpanRecord {
    /// The span as `tracing` writes it: `name{field=value ...}`.
    pub fn label(&self) -> String {
        if self.fields.is_empty() {
            return self.name.to_string();
        }
        let fields: Vec<String> = self
            .fields
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => format!("{k}={s}"),
                v => format!("{k}={v}"),
            })
            .collect();
        format!("{}{{{}}}", self.name, fields.join(" "))
    }
}

/// Starts recording the spans that open from now on, with times counted from `origin`
/// (dropping anything recorded before).
pub fn start(origin: Instant) {
    let mut r = RECORDING.lock().unwrap();
    r.origin = Some(origin);
    r.done.clear();
    ON.store(true, Ordering::Relaxed);
}

/// Stops recording and returns the spans that opened and closed since [`start`], in the
/// order they closed.
pub fn stop() -> Vec<SpanRecord> {
    ON.store(false, Ordering::Relaxed);
    let mut r = RECORDING.lock().unwrap();
    r.origin = None;
    std::mem::take(&mut r.done)
}

/// The recording layer, with its own filter: it sees every span (whatever `RUST_LOG`
/// says) while recording is on, and nothing else.
pub fn layer<S>() -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    Recorder.with_filter(WhileRecording)
}

/// Spans as Chrome trace events (complete events in microseconds, moved by `offset_us`),
/// one track per thread, with the spans' fields as arguments.
pub fn chrome_events(records: &[SpanRecord], offset_us: f64) -> Vec<Value> {
    let mut out: Vec<Value> = records
        .iter()
        .map(|r| {
            let mut args: Map<String, Value> = r
                .fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect();
            args.insert("target".into(), r.target.into());
            json!({
                "name": r.label(), "cat": "span", "ph": "X", "pid": 1,
                "tid": SPAN_TRACKS + r.thread, "ts": r.start_us + offset_us, "dur": r.dur_us,
                "args": args,
            })
        })
        .collect();
    let mut threads: Vec<usize> = records.iter().map(|r| r.thread).collect();
    threads.sort_unstable();
    threads.dedup();
    for t in threads {
        out.push(json!({
            "name": "thread_name", "ph": "M", "pid": 1, "tid": SPAN_TRACKS + t,
            "args": {"name": format!("spans (thread {t})")},
        }));
    }
    out
}

/// Where the span tracks of a trace start (below are others' tracks, such as kernels).
pub const SPAN_TRACKS: usize = 100;

pub struct Recorder;

/// What a span holds while it is open.
pub struct Open {
    start: Instant,
    fields: Vec<(&'static str, Value)>,
    thread: usize,
}

impl<S> Layer<S> for Recorder
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        let mut fields = vec![];
        attrs.record(&mut Fields(&mut fields));
        span.extensions_mut().insert(Open {
            start: Instant::now(),
            fields,
            thread: thread_index(),
        });
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            if let Some(open) = span.extensions_mut().get_mut::<Open>() {
                values.record(&mut Fields(&mut open.fields));
            }
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let end = Instant::now();
        let Some(span) = ctx.span(&id) else {
            return;
        };
        let ext = span.extensions();
        let Some(open) = ext.get::<Open>() else {
            return;
        };
        let mut r = RECORDING.lock().unwrap();
        let Some(origin) = r.origin else {
            return; // opened while recording, closed after it stopped
        };
        let record = SpanRecord {
            name: span.name(),
            target: span.metadata().target(),
            fields: open.fields.clone(),
            parent: span.parent().map(|p| p.name()),
            depth: span.scope().skip(1).count(),
            thread: open.thread,
            start_us: open.start.saturating_duration_since(origin).as_secs_f64() * 1e6,
            dur_us: end.saturating_duration_since(open.start).as_secs_f64() * 1e6,
        };
        r.done.push(record);
    }
}

/// The recorder's filter: spans only, and only while recording.
pub struct WhileRecording;

impl<S> Filter<S> for WhileRecording {
    fn enabled(&self, meta: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        meta.is_span() && ON.load(Ordering::Relaxed)
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        if meta.is_span() {
            Interest::sometimes() // asked at each span, as recording comes and goes
        } else {
            Interest::never()
        }
    }
}

/// A span's fields as JSON values; a field recorded again keeps its place.
pub struct Fields<'a>(&'a mut Vec<(&'static str, Value)>);

impl Fields<'_> {
    fn set(&mut self, f: &Field, v: Value) {
        match self.0.iter_mut().find(|(k, _)| *k == f.name()) {
            Some(slot) => slot.1 = v,
            None => self.0.push((f.name(), v)),
        }
    }
}

impl Visit for Fields<'_> {
    fn record_f64(&mut self, f: &Field, v: f64) {
        self.set(f, json!(v));
    }
    fn record_i64(&mut self, f: &Field, v: i64) {
        self.set(f, v.into());
    }
    fn record_u64(&mut self, f: &Field, v: u64) {
        self.set(f, v.into());
    }
    fn record_bool(&mut self, f: &Field, v: bool) {
        self.set(f, v.into());
    }
    fn record_str(&mut self, f: &Field, v: &str) {
        self.set(f, v.into());
    }
    fn record_debug(&mut self, f: &Field, v: &dyn std::fmt::Debug) {
        self.set(f, format!("{v:?}").into());
    }
}

/// The calling thread's number among those that opened a recorded span.
pub fn thread_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    INDEX.with(|i| *i)
}
