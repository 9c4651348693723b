//! Concurrent requests on one session: no lost keys, no resurrection (R54, R55).

mod common;

use std::sync::atomic::Ordering;

use common::*;
use http::StatusCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_concurrent_writers_keep_all_keys() {
    let h = Harness::new();
    let app = app(&h.layer);
    let cookie = session_cookie(&send(&app, req("POST", "/incr", None)).await).unwrap();
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let app = app.clone();
            let cookie = cookie.clone();
            tokio::spawn(async move {
                let res = send(&app, req("POST", &format!("/set/k{i}"), Some(&cookie))).await;
                assert_eq!(res.status(), StatusCode::OK);
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let key = h.store.inner.keys()[0];
    let record = sessionware::store::SessionStore::load(&h.store.inner, &key, h.clock.now_ms()).await.unwrap().unwrap();
    for i in 0..100 {
        assert!(record.data.get(&format!("k{i}")).is_some(), "lost k{i}");
    }
    assert_eq!(record.data.len(), 101);
}

#[tokio::test]
async fn a_request_that_loaded_before_logout_cannot_resurrect() {
    let h = Harness::new();
    let app = app(&h.layer);
    let cookie = session_cookie(&send(&app, req("POST", "/login/alice", None)).await).unwrap();

    // Request A loads the session and is held inside the store's load.
    h.store.pause_load.store(true, Ordering::SeqCst);
    let a = {
        let app = app.clone();
        let cookie = cookie.clone();
        tokio::spawn(async move { send(&app, req("POST", "/set/late", Some(&cookie))).await })
    };
    h.store.loaded.notified().await;
    h.store.pause_load.store(false, Ordering::SeqCst);

    // Request B logs out.
    let res = send(&app, req("POST", "/logout", Some(&cookie))).await;
    assert!(is_removal(&res));
    assert!(h.store.inner.is_empty());

    // A resumes and writes.
    h.store.release.notify_one();
    let res = a.await.unwrap();
    assert!(is_removal(&res) || res.headers().get(http::header::SET_COOKIE).is_none());
    assert!(h.store.inner.is_empty(), "the late write must not bring the session back");
    assert_eq!(send(&app, req("GET", "/me", Some(&cookie))).await.status(), StatusCode::UNAUTHORIZED);
}
