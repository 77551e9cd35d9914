//! The unit tests of `nas_cli::spans` (`nas-cli/src/spans.rs`).

use nas_cli::spans::*;
use std::time::Instant;
use tracing_subscriber::layer::SubscriberExt;

#[test]
fn records_nested_spans_only_while_on() {
    let subscriber = tracing_subscriber::registry().with(layer());
    tracing::subscriber::with_default(subscriber, || {
        tracing::info_span!("before").in_scope(|| {});
        start(Instant::now());
        tracing::info_span!("outer", what = "x", n = 3).in_scope(|| {
            tracing::trace_span!("inner")
                .in_scope(|| std::thread::sleep(std::time::Duration::from_millis(2)));
            tracing::info!("an event is no span");
        });
        let r = stop();
        tracing::info_span!("after").in_scope(|| {});
        let names: Vec<&str> = r.iter().map(|s| s.name).collect();
        assert_eq!(names, ["inner", "outer"]);
        let (inner, outer) = (&r[0], &r[1]);
        assert_eq!((inner.parent, inner.depth), (Some("outer"), 1));
        assert_eq!((outer.parent, outer.depth), (None, 0));
        assert_eq!(outer.label(), "outer{what=x n=3}");
        assert!(inner.dur_us >= 2000.0, "{}", inner.dur_us);
        assert!(outer.start_us <= inner.start_us);
        assert!(outer.start_us + outer.dur_us >= inner.start_us + inner.dur_us);
        let ev = chrome_events(&r, 10.0);
        assert_eq!(ev[1]["name"], "outer{what=x n=3}");
        assert_eq!(ev[1]["args"]["n"], 3);
        assert_eq!(ev[1]["ts"].as_f64().unwrap(), outer.start_us + 10.0);
        assert!(ev.iter().any(|e| e["ph"] == "M"));
    });
}
