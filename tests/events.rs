//! Observability (R83 to R85): life-cycle events carry a fingerprint, never
//! the ID or token, and nothing a client sends is logged at warn level.

mod common;

use common::*;

#[tokio::test]
async fn events_use_fingerprints_and_never_secrets() {
    let capture = LogCapture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(capture.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let h = Harness::new();
    let app = app(&h.layer);
    let mut secrets = Vec::new();
    let anon = session_cookie(&send(&app, req("POST", "/incr", None)).await).unwrap();
    secrets.push(anon.clone());
    let authed = session_cookie(&send(&app, req("POST", "/login/alice", Some(&anon))).await).unwrap();
    secrets.push(authed.clone());
    // Tampered, unknown, duplicated, and a store failure.
    let tampered = tamper(&authed);
    send(&app, req("GET", "/read", Some(&tampered))).await;
    send(&app, req("GET", "/read", Some(&anon))).await;
    let other = session_cookie(&send(&app, req("POST", "/incr", None)).await).unwrap();
    secrets.push(other.clone());
    send(&app, req("GET", "/read", Some(&format!("{authed}; {other}")))).await;
    h.store.fail(Op::Load);
    send(&app, req("GET", "/read", Some(&authed))).await;
    h.store.heal();
    send(&app, req("POST", "/logout", Some(&authed))).await;
    // An ended session is unknown; the pre-login ID was retired by the login.
    send(&app, req("GET", "/read", Some(&authed))).await;

    let log = capture.text();
    for event in [
        "session.created",
        "session.login",
        "session.purged",
        "session.store_error",
        "reason=\"bad_signature\"",
        "reason=\"unknown\"",
        "reason=\"retired\"",
        "reason=\"duplicate_cookie\"",
    ] {
        assert!(log.contains(event), "missing {event} in:\n{log}");
    }
    for secret in &secrets {
        let token = secret.split_once('=').unwrap().1;
        assert!(!log.contains(token), "a token leaked into the logs");
        assert!(!log.contains(&token[5..27]), "part of a token leaked into the logs");
    }
    let warn: Vec<&str> = log.lines().filter(|l| l.contains(" WARN ")).collect();
    assert!(warn.is_empty(), "client-driven events must not log at warn: {warn:?}");
    assert!(log
        .lines()
        .filter(|l| l.contains("session.login"))
        .all(|l| l.contains("session=") && l.contains("previous=")));
}
