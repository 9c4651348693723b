//! The lifecycle event hook (`SessionLayer::on_event`): typed events with
//! fingerprints, users, routes and times. (A test binary of its own: the
//! `tracing` capture of `tests/events.rs` must not share callsites with it.)

mod common;

use std::sync::{Arc, Mutex};

use common::*;

/// The event hook receives typed events with the fingerprint (never the
/// ID), the user where known, the route and the time.
#[tokio::test]
async fn the_hook_receives_typed_lifecycle_events() {
    use sessionware::{Deadline, Event, EventKind, RejectReason, RenewReason, SessionConfig};

    let seen: Arc<Mutex<Vec<Event>>> = Arc::default();
    let log = Arc::clone(&seen);
    let config = SessionConfig::builder()
        .idle_timeout(std::time::Duration::from_secs(600))
        .renew_after(std::time::Duration::from_secs(300))
        .build()
        .unwrap();
    let h = Harness::with_config(config);
    let layer = h.layer.clone().on_event(move |e| log.lock().unwrap().push(e.clone()));
    let app = app(&layer);

    let anon = session_cookie(&send(&app, req("POST", "/incr", None)).await).unwrap();
    let authed = session_cookie(&send(&app, req("POST", "/login/alice", Some(&anon))).await).unwrap();
    let tampered = tamper(&authed);
    send(&app, req("GET", "/read", Some(&tampered))).await;
    send(&app, req("GET", "/read", Some(&anon))).await; // retired by the login
    h.clock.advance(std::time::Duration::from_secs(301));
    let renewed = session_cookie(&send(&app, req("GET", "/read", Some(&authed))).await).unwrap();
    h.store.fail(Op::Load);
    send(&app, req("GET", "/read", Some(&renewed))).await;
    h.store.heal();
    send(&app, req("POST", "/logout", Some(&renewed))).await;
    let idle = session_cookie(&send(&app, req("POST", "/incr", None)).await).unwrap();
    // A store that lags behind the deadline (it still returns the record):
    // the layer's own expiry check catches it.
    let key = h.store.inner.keys()[0];
    let record = sessionware::store::SessionStore::load(&h.store.inner, &key, h.clock.now_ms()).await.unwrap().unwrap();
    h.store.raw.lock().unwrap().insert(key, record);
    h.clock.advance(std::time::Duration::from_secs(601));
    send(&app, req("GET", "/read", Some(&idle))).await;

    let events = seen.lock().unwrap().clone();
    let kinds: Vec<EventKind> = events.iter().map(|e| e.kind).collect();
    for want in [
        EventKind::Created,
        EventKind::Renewed(RenewReason::Login),
        EventKind::Rejected(RejectReason::BadSignature),
        EventKind::Rejected(RejectReason::Retired),
        EventKind::Renewed(RenewReason::Periodic),
        EventKind::StoreError { op: "lookup" },
        EventKind::Purged,
        EventKind::Expired(Deadline::Idle),
    ] {
        assert!(kinds.contains(&want), "missing {want:?} in {kinds:?}");
    }
    let login = events.iter().find(|e| e.kind == EventKind::Renewed(RenewReason::Login)).unwrap();
    assert_eq!(login.user.as_deref(), Some("alice"));
    assert_eq!(login.method, Some(http::Method::POST));
    assert_eq!(login.path.as_deref(), Some("/login/alice"));
    let purged = events.iter().find(|e| e.kind == EventKind::Purged).unwrap();
    assert_eq!(purged.user.as_deref(), None, "a logout that never read the session does not know its user");
    for e in &events {
        if let Some(fp) = &e.session {
            assert_eq!(fp.len(), 12, "a fingerprint, never an ID: {e:?}");
        }
        let shown = format!("{e:?}");
        for secret in [&anon, &authed, &renewed, &idle] {
            let token = secret.split_once('=').unwrap().1;
            assert!(!shown.contains(&token[..20]), "an event carried a token: {shown}");
        }
    }
}
