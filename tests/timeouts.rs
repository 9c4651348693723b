//! Idle and absolute timeouts (R37 to R39) and throttled expiry refresh.

mod common;

use std::time::Duration;

use common::*;
use http::StatusCode;
use sessionware::{
    store::{Metadata, Record},
    SessionConfig, SessionId,
};

const MIN: Duration = Duration::from_secs(60);

fn config(t: Transport) -> SessionConfig {
    SessionConfig::builder()
        .transport(t)
        .idle_timeout(10 * MIN)
        .absolute_timeout(60 * MIN)
        .touch_after(0.2)
        .build()
        .unwrap()
}

async fn idle_timeout_slides_and_expires(t: Transport) {
    let h = Harness::with_config(config(t));
    let app = app(&h.layer);
    let cookie = session_cookie(&send(&app, req("POST", "/incr", None)).await).unwrap();
    h.clock.advance(9 * MIN);
    assert_eq!(body(send(&app, req("GET", "/read", Some(&cookie))).await).await, "1", "valid at idle - 1 min");
    assert_eq!(h.store.count(Op::Touch), 1, "the read slid the idle deadline");
    h.clock.advance(9 * MIN);
    assert_eq!(body(send(&app, req("GET", "/read", Some(&cookie))).await).await, "1", "the touch kept it alive");
    h.clock.advance(11 * MIN);
    let res = send(&app, req("GET", "/read", Some(&cookie))).await;
    assert!(is_removal(&res));
    assert_eq!(body(res).await, "none", "expired after idle + 1 min");
    assert!(h.store.inner.is_empty(), "the expired record is deleted");
}

async fn absolute_timeout_is_never_extended(t: Transport) {
    let h = Harness::with_config(config(t));
    let app = app(&h.layer);
    let cookie = session_cookie(&send(&app, req("POST", "/incr", None)).await).unwrap();
    // Activity every 5 minutes (idle/2), writes included.
    for _ in 0..11 {
        h.clock.advance(5 * MIN);
        let res = send(&app, req("POST", "/incr", Some(&cookie))).await;
        assert_eq!(res.status(), StatusCode::OK);
    }
    // t = 55 min: still valid.
    assert_ne!(body(send(&app, req("GET", "/read", Some(&cookie))).await).await, "none");
    h.clock.advance(5 * MIN + Duration::from_secs(1));
    assert_eq!(body(send(&app, req("GET", "/read", Some(&cookie))).await).await, "none", "dead at absolute + 1 s");
    assert!(h.store.inner.is_empty());
}

async fn login_restarts_the_absolute_deadline_but_renew_does_not(t: Transport) {
    let h = Harness::with_config(config(t));
    let app = app(&h.layer);
    let anon = session_cookie(&send(&app, req("POST", "/incr", None)).await).unwrap();
    h.clock.advance(50 * MIN);
    let authed = session_cookie(&send(&app, req("POST", "/login/alice", Some(&anon))).await).unwrap();
    h.clock.advance(9 * MIN);
    let renewed = session_cookie(&send(&app, req("POST", "/renew", Some(&authed))).await).unwrap();
    h.clock.advance(9 * MIN);
    // t = 68 min: 18 min after login, past the anonymous session's original deadline.
    assert_eq!(body(send(&app, req("GET", "/me", Some(&renewed))).await).await, "alice");
    for _ in 0..5 {
        h.clock.advance(8 * MIN);
        send(&app, req("GET", "/me", Some(&renewed))).await;
    }
    // t = 108 min = login + 58 min; two more minutes pass the login's absolute deadline.
    h.clock.advance(2 * MIN + Duration::from_secs(1));
    assert_eq!(send(&app, req("GET", "/me", Some(&renewed))).await.status(), StatusCode::UNAUTHORIZED);
}

async fn the_layer_checks_deadlines_whatever_the_store_says(t: Transport) {
    // A store that lags in evicting: the record is returned though expired.
    let h = Harness::with_config(config(t));
    let app = app(&h.layer);
    let id = SessionId::generate().unwrap();
    let mut meta = Metadata::new(T0 - 30 * 60_000, 10 * 60_000, 60 * 60_000);
    meta.expires_at = T0 + 60_000; // the store's own view: alive
    meta.absolute_deadline = T0 - 1; // but the absolute deadline has passed
    h.store.raw.lock().unwrap().insert(id.storage_key(), Record::new(meta));
    let cookie = h.credential_for(&id);
    let res = send(&app, req("GET", "/contains", Some(&cookie))).await;
    assert!(is_removal(&res));
    assert_eq!(h.store.count(Op::Delete), 1, "the layer deleted the dead record");
    assert!(h.store.raw.lock().unwrap().is_empty());
    assert_eq!(body(res).await, "false");
}

async fn reads_touch_only_after_the_configured_share(t: Transport) {
    let h = Harness::with_config(config(t));
    let app = app(&h.layer);
    let cookie = session_cookie(&send(&app, req("POST", "/incr", None)).await).unwrap();
    let applies = h.store.count(Op::Apply);
    for _ in 0..20 {
        h.clock.advance(Duration::from_secs(5));
        send(&app, req("GET", "/read", Some(&cookie))).await;
    }
    // 100 s < 2 min (20% of 10 min): no write at all.
    assert_eq!(h.store.count(Op::Touch), 0);
    assert_eq!(h.store.count(Op::Apply), applies, "reads never rewrite the data");
    h.clock.advance(MIN);
    send(&app, req("GET", "/read", Some(&cookie))).await;
    assert_eq!(h.store.count(Op::Touch), 1, "one cheap touch once the share has passed");
    send(&app, req("GET", "/read", Some(&cookie))).await;
    assert_eq!(h.store.count(Op::Touch), 1);
}

#[test]
fn extreme_config_values_do_not_panic() {
    for d in [Duration::ZERO, Duration::from_nanos(1), Duration::MAX] {
        let _ = SessionConfig::builder().idle_timeout(d).build();
        let _ = SessionConfig::builder().absolute_timeout(d).build();
        let _ = SessionConfig::builder().store_timeout(d).build();
    }
    for share in [f64::NAN, f64::INFINITY, -1.0, 0.0, 1.0] {
        let _ = SessionConfig::builder().touch_after(share).build();
    }
}

over_both_transports!(
    idle_timeout_slides_and_expires,
    absolute_timeout_is_never_extended,
    login_restarts_the_absolute_deadline_but_renew_does_not,
    the_layer_checks_deadlines_whatever_the_store_says,
    reads_touch_only_after_the_configured_share,
);
