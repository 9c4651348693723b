//! Feature `metrics`: every lifecycle event counts in
//! `sessionware_events_total` and every store call's latency goes to the
//! `sessionware_store_seconds` histogram, through the `metrics` crate.
#![cfg(feature = "metrics")]

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use metrics::{
    Counter, CounterFn, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};

/// Records what was registered and how much it counted.
#[derive(Default)]
struct Seen {
    counted: Mutex<Vec<(String, u64)>>,
    timed: Mutex<Vec<String>>,
}

struct Count(Arc<Seen>, String);
impl CounterFn for Count {
    fn increment(&self, value: u64) {
        self.0.counted.lock().unwrap().push((self.1.clone(), value));
    }
    fn absolute(&self, _: u64) {}
}

struct Time(Arc<Seen>, String);
impl HistogramFn for Time {
    fn record(&self, value: f64) {
        assert!(value >= 0.0);
        self.0.timed.lock().unwrap().push(self.1.clone());
    }
}

struct Capture(Arc<Seen>);

fn describe(key: &Key) -> String {
    let mut labels: Vec<String> = key.labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
    labels.sort();
    format!("{}{{{}}}", key.name(), labels.join(","))
}

impl Recorder for Capture {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(Arc::new(Count(Arc::clone(&self.0), describe(key))))
    }
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(Arc::new(Time(Arc::clone(&self.0), describe(key))))
    }
}

#[test]
fn events_are_counted_and_store_calls_timed() {
    let seen = Arc::new(Seen::default());
    let recorder = Capture(Arc::clone(&seen));
    metrics::with_local_recorder(&recorder, || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let h = Harness::new();
            let app = app(&h.layer);
            let cookie = session_cookie(&send(&app, req("POST", "/incr", None)).await).unwrap();
            send(&app, req("POST", "/login/alice", Some(&cookie))).await;
        });
    });
    let counted = seen.counted.lock().unwrap().clone();
    assert!(counted.contains(&("sessionware_events_total{kind=session.created,reason=}".into(), 1)), "{counted:?}");
    assert!(counted.contains(&("sessionware_events_total{kind=session.login,reason=login}".into(), 1)), "{counted:?}");
    let timed = seen.timed.lock().unwrap().clone();
    for op in ["create", "lookup", "rotate"] {
        assert!(timed.contains(&format!("sessionware_store_seconds{{op={op}}}")), "{op} not timed: {timed:?}");
    }
}
