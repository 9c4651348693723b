//! Exclusive sessions: read-modify-write serialised across app instances.

mod common;

use std::time::Duration;

use axum::{routing::post, Router};
use common::*;
use http::StatusCode;
use sessionware::{
    store::{MemoryStore, SessionStore},
    Keys, Session, SessionConfig, SessionError, SessionLayer,
};

async fn locked_incr(session: Session) -> Result<String, SessionError> {
    session.lock().await?;
    let n: u64 = session.get("n").await?.unwrap_or(0);
    tokio::task::yield_now().await;
    session.insert("n", n + 1).await?;
    Ok((n + 1).to_string())
}

async fn hold(session: Session) -> Result<(), SessionError> {
    session.lock().await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    Ok(())
}

fn instance(store: MemoryStore, keys: Keys, config: SessionConfig) -> Router {
    Router::new()
        .route("/incr", post(locked_incr))
        .route("/plain-incr", post(common::handlers::incr))
        .route("/hold", post(hold))
        .route("/locked-read", post(locked_read))
        .layer(SessionLayer::new(store, keys).with_config(config))
}

async fn two_hundred_increments_through_two_instances_end_at_200(t: Transport) {
    let store = MemoryStore::default();
    let keys = Keys::generate().unwrap();
    let a = instance(store.clone(), keys.clone(), config_on(t.clone()));
    let b = instance(store.clone(), keys, config_on(t));
    let cookie = session_cookie(&send(&a, req("POST", "/plain-incr", None)).await).unwrap();
    let tasks: Vec<_> = (0..199)
        .map(|i| {
            let app = if i % 2 == 0 { a.clone() } else { b.clone() };
            let cookie = cookie.clone();
            tokio::spawn(async move { send(&app, req("POST", "/incr", Some(&cookie))).await.status() })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::OK);
    }
    let record = store.load(&store.keys()[0], SystemClock.now_ms()).await.unwrap().unwrap();
    assert_eq!(record.data.get("n").unwrap().get(), "200", "no increment lost");
}

async fn a_dead_holder_blocks_only_until_its_lease_ends(t: Transport) {
    let store = MemoryStore::default();
    let config = SessionConfig::builder()
        .transport(t)
        .lock_lease(Duration::from_millis(200))
        .lock_wait(Duration::from_secs(2))
        .build()
        .unwrap();
    let app = instance(store.clone(), Keys::generate().unwrap(), config);
    let cookie = session_cookie(&send(&app, req("POST", "/plain-incr", None)).await).unwrap();
    // A holder that never releases: take the lease directly, as a crashed process would leave it.
    let key = store.keys()[0];
    assert!(store.try_lock(&key, "crashed-process", 200, SystemClock.now_ms()).await.unwrap());
    let started = std::time::Instant::now();
    let res = send(&app, req("POST", "/incr", Some(&cookie))).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(150), "waited for the lease");
    assert_eq!(body(res).await, "2");
}

async fn lock_wait_times_out_with_a_typed_error(t: Transport) {
    let store = MemoryStore::default();
    let config = SessionConfig::builder().transport(t).lock_wait(Duration::from_millis(50)).build().unwrap();
    let app = instance(store.clone(), Keys::generate().unwrap(), config);
    let cookie = session_cookie(&send(&app, req("POST", "/plain-incr", None)).await).unwrap();
    assert!(store.try_lock(&store.keys()[0], "other", 10_000, SystemClock.now_ms()).await.unwrap());
    let res = send(&app, req("POST", "/incr", Some(&cookie))).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    store.unlock(&store.keys()[0], "other", SystemClock.now_ms()).await.unwrap();
    assert_eq!(send(&app, req("POST", "/incr", Some(&cookie))).await.status(), StatusCode::OK);
}

async fn locked_read(session: Session) -> Result<String, SessionError> {
    session.lock().await?;
    Ok(session.get::<u64>("n").await?.unwrap_or(0).to_string())
}

async fn a_locked_request_that_changes_nothing_releases_its_lock(t: Transport) {
    let store = MemoryStore::default();
    let app = instance(store.clone(), Keys::generate().unwrap(), config_on(t));
    let cookie = session_cookie(&send(&app, req("POST", "/plain-incr", None)).await).unwrap();
    let res = send(&app, req("POST", "/locked-read", Some(&cookie))).await;
    assert_eq!(body(res).await, "1");
    assert!(
        store.try_lock(&store.keys()[0], "next", 1000, SystemClock.now_ms()).await.unwrap(),
        "the lease was released"
    );
}

async fn a_cancelled_request_releases_its_lock(t: Transport) {
    let store = MemoryStore::default();
    let app = instance(store.clone(), Keys::generate().unwrap(), config_on(t));
    let cookie = session_cookie(&send(&app, req("POST", "/plain-incr", None)).await).unwrap();
    let fut = send(&app, req("POST", "/hold", Some(&cookie)));
    // Drop the request while it holds the lock.
    let _ = tokio::time::timeout(Duration::from_millis(50), fut).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(store.try_lock(&store.keys()[0], "next", 1000, SystemClock.now_ms()).await.unwrap(), "released on drop");
}

/// A client that goes away while its response is being committed (the
/// store write in flight) still releases the lease at once: the lease is
/// owned by the commit, whose drop releases it.
async fn a_request_dropped_during_its_commit_releases_its_lock(t: Transport) {
    let h = Harness::with_config(
        SessionConfig::builder()
            .transport(t)
            .lock_lease(Duration::from_secs(60))
            .lock_wait(Duration::from_millis(500))
            .build()
            .unwrap(),
    );
    let app = Router::new().route("/incr", post(locked_incr)).layer(h.layer.clone());
    let cookie = session_cookie(&send(&app, req("POST", "/incr", None)).await).unwrap();
    // The commit's write hangs in the store; the client gives up meanwhile.
    h.store.stall(Op::Apply);
    let applies = h.store.count(Op::Apply);
    let fut = send(&app, req("POST", "/incr", Some(&cookie)));
    let _ = tokio::time::timeout(Duration::from_millis(100), fut).await;
    assert_eq!(h.store.count(Op::Apply), applies + 1, "the request was dropped inside its commit");
    tokio::time::sleep(Duration::from_millis(20)).await;
    h.store.heal();
    let key = h.store.inner.keys()[0];
    assert!(
        h.store.inner.try_lock(&key, "next", 1000, SystemClock.now_ms()).await.unwrap(),
        "released when the commit was dropped"
    );
}

/// Over both transports, on two worker threads.
mod two_hundred_increments_through_two_instances_end_at_200 {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cookie() {
        super::two_hundred_increments_through_two_instances_end_at_200(super::Transport::Cookie).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn header() {
        super::two_hundred_increments_through_two_instances_end_at_200(super::Transport::header()).await
    }
}

over_both_transports!(
    a_dead_holder_blocks_only_until_its_lease_ends,
    lock_wait_times_out_with_a_typed_error,
    a_locked_request_that_changes_nothing_releases_its_lock,
    a_cancelled_request_releases_its_lock,
    a_request_dropped_during_its_commit_releases_its_lock,
);
