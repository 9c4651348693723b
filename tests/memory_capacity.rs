//! MemoryStore at its caps: one client that floods the store with new
//! sessions cannot lock users out (issue 9, point 7).

mod common;

use axum::{
    routing::{get, post},
    Router,
};
use common::*;
use http::StatusCode;
use sessionware::{
    store::{Auth, MemoryStore, Metadata, Record, SessionStore, StoreError, WhenFull},
    Keys, Session, SessionError, SessionId, SessionLayer,
};

const CAP: usize = 64;

fn app(store: MemoryStore) -> Router {
    Router::new()
        .route("/incr", post(handlers::incr))
        .route("/big", post(big))
        .route("/login/{user}", post(handlers::login))
        .route("/me", get(handlers::me))
        .layer(SessionLayer::new(store, Keys::generate().unwrap()))
}

/// Stores a value of about 1 KiB.
async fn big(session: Session) -> Result<(), SessionError> {
    session.insert("blob", "x".repeat(1_000)).await
}

/// A cookieless client makes `n` new sessions.
async fn flood(app: &Router, n: usize) -> usize {
    let mut ok = 0;
    for _ in 0..n {
        if send(app, req("POST", "/incr", None)).await.status() == StatusCode::OK {
            ok += 1;
        }
    }
    ok
}

#[tokio::test]
async fn a_flood_of_new_sessions_evicts_anonymous_ones_and_logins_keep_working() {
    let store = MemoryStore::builder().max_sessions(CAP).build();
    let app = app(store.clone());
    let early = session_cookie(&send(&app, req("POST", "/login/early", None)).await).unwrap();

    assert_eq!(flood(&app, 4 * CAP).await, 4 * CAP, "every new session was served");
    assert!(store.len() <= CAP, "the cap holds: {} sessions", store.len());

    // A new visitor logs in while the store is full, and stays logged in
    // through another flood.
    let alice = session_cookie(&send(&app, req("POST", "/login/alice", None)).await).expect("login at the cap");
    assert_eq!(flood(&app, 4 * CAP).await, 4 * CAP);
    assert!(store.len() <= CAP);
    for (cookie, user) in [(&alice, "alice"), (&early, "early")] {
        let res = send(&app, req("GET", "/me", Some(cookie))).await;
        assert_eq!(res.status(), StatusCode::OK, "{user} was evicted");
        assert_eq!(body(res).await, user);
    }
}

#[tokio::test]
async fn the_byte_budget_holds_and_logins_keep_working() {
    // About 16 sessions of ~1 KiB each.
    let store = MemoryStore::builder().max_bytes(16 * 1_200).build();
    let app = app(store.clone());
    for _ in 0..200 {
        let res = send(&app, req("POST", "/big", None)).await;
        assert_eq!(res.status(), StatusCode::OK);
    }
    assert!(store.len() <= 17, "{} sessions of ~1 KiB in a ~19 KB budget", store.len());
    let alice = session_cookie(&send(&app, req("POST", "/login/alice", None)).await).expect("login at the cap");
    assert_eq!(body(send(&app, req("GET", "/me", Some(&alice))).await).await, "alice");
}

#[tokio::test]
async fn signed_in_sessions_are_never_evicted() {
    let store = MemoryStore::builder().max_sessions(8).build();
    let now = SystemClock.now_ms();
    let mut signed_in = Vec::new();
    for i in 0..8 {
        let mut record = Record::new(Metadata::new(now, 60_000, 600_000));
        record.meta.auth = Some(Auth::new(format!("user{i}"), now));
        let key = SessionId::generate().unwrap().storage_key();
        assert!(store.create(&key, &record, now).await.unwrap());
        signed_in.push(key);
    }
    let anonymous = Record::new(Metadata::new(now, 60_000, 600_000));
    let key = SessionId::generate().unwrap().storage_key();
    assert!(matches!(store.create(&key, &anonymous, now).await, Err(StoreError::Capacity)));
    for key in &signed_in {
        assert!(store.load(key, now).await.unwrap().is_some());
    }
}

#[tokio::test]
async fn refuse_keeps_the_old_behaviour() {
    let store = MemoryStore::builder().max_sessions(CAP).when_full(WhenFull::Refuse).build();
    let app = app(store.clone());
    assert_eq!(flood(&app, CAP).await, CAP);
    let res = send(&app, req("POST", "/incr", None)).await;
    assert_ne!(res.status(), StatusCode::OK, "a full store refuses");
    assert!(session_cookie(&res).is_none());
    assert_eq!(store.len(), CAP);
}

/// The byte count follows every write path back to zero: new sessions,
/// growing data, logins (rotations), logouts, evictions and expiry.
#[tokio::test]
async fn the_byte_count_returns_to_zero() {
    let store = MemoryStore::builder().max_sessions(CAP).build();
    let app = Router::new()
        .route("/big", post(big))
        .route("/incr", post(handlers::incr))
        .route("/login/{user}", post(handlers::login))
        .route("/logout", post(handlers::logout))
        .layer(SessionLayer::new(store.clone(), Keys::generate().unwrap()));
    let mut cookies = Vec::new();
    for i in 0..2 * CAP {
        let c = session_cookie(&send(&app, req("POST", "/incr", None)).await).unwrap();
        send(&app, req("POST", "/big", Some(&c))).await;
        if i % 3 == 0 {
            let c = session_cookie(&send(&app, req("POST", &format!("/login/u{i}"), Some(&c))).await).unwrap();
            cookies.push(c);
        }
    }
    assert!(store.bytes() > 0);
    for c in &cookies {
        send(&app, req("POST", "/logout", Some(c))).await;
    }
    // Far past every deadline: the sweep removes what is left.
    store.sweep_expired(SystemClock.now_ms() + 365 * 24 * 3_600_000);
    assert_eq!(store.len(), 0);
    assert_eq!(store.bytes(), 0, "the byte count drifted");
}

/// The session count caps new sessions only: at the cap, with nothing to
/// evict, a signed-in user's write still lands (it adds no session).
#[tokio::test]
async fn at_the_count_cap_existing_sessions_still_write() {
    let store = MemoryStore::builder().max_sessions(8).build();
    let now = SystemClock.now_ms();
    let mut keys = Vec::new();
    for i in 0..8 {
        let mut record = Record::new(Metadata::new(now, 60_000, 600_000));
        record.meta.auth = Some(Auth::new(format!("user{i}"), now));
        let key = SessionId::generate().unwrap().storage_key();
        assert!(store.create(&key, &record, now).await.unwrap());
        keys.push(key);
    }
    let mut write = sessionware::store::ChangeSet::new(now, now + 60_000);
    write.set("cart", serde_json::value::to_raw_value(&[1, 2, 3]).unwrap());
    assert!(store.apply(&keys[0], &write, now).await.expect("a write at the count cap"));
    assert!(store.load(&keys[0], now).await.unwrap().unwrap().data.get("cart").is_some());
}

/// An eviction that lands between a request's load and its commit: the
/// request's write does not bring the evicted session back, and its
/// response does not set a cookie for it.
#[tokio::test]
async fn a_write_held_across_its_sessions_eviction_does_not_resurrect_it() {
    let h = Harness::over(
        sessionware::SessionConfig::default(),
        Keys::generate().unwrap(),
        MemoryStore::builder().max_sessions(4).build(),
    );
    let app = common::app(&h.layer);
    let victim = session_cookie(&send(&app, req("POST", "/incr", None)).await).unwrap();
    let held = hold(&h, &app, "POST", "/incr", &victim).await;
    // Newer anonymous sessions fill the store and push the victim out.
    h.clock.advance(std::time::Duration::from_secs(1));
    let before = h.store.inner.keys();
    for _ in 0..200 {
        assert_eq!(send(&app, req("POST", "/incr", None)).await.status(), StatusCode::OK);
    }
    assert!(before.iter().all(|k| !h.store.inner.keys().contains(k)), "the victim was evicted");
    release(&h);
    let res = held.await.unwrap();
    assert!(no_cookie(&res) || is_removal(&res), "no cookie for an evicted session");
    assert!(h.store.inner.len() <= 4);
    assert_eq!(body(send(&app, req("GET", "/read", Some(&victim))).await).await, "none", "not resurrected");
}
