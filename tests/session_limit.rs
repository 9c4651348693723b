//! The per-user session limit through the layer (R46,
//! `max_sessions_per_user`): a login past the limit ends the user's least
//! recently used sessions, or is refused (409, the caller keeps the session
//! and cookie it had); logins racing each other (one held between its load
//! and its commit, or ten released together) never leave more than the
//! limit; each eviction or refusal is an event.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use http::StatusCode;
use sessionware::{
    store::{Capabilities, Capability, MemoryStore},
    ConfigError, Event, EventKind, Keys, LimitPolicy, SessionConfig, SessionError, SessionLayer, SharedError,
};

fn limited(max: usize, policy: LimitPolicy) -> Harness {
    Harness::with_config(SessionConfig::builder().max_sessions_per_user(max, policy).build().unwrap())
}

/// The layer with its events recorded.
fn recorded(layer: &SessionLayer) -> (SessionLayer, Arc<Mutex<Vec<Event>>>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&events);
    (layer.clone().on_event(move |e| log.lock().unwrap().push(e.clone())), events)
}

/// The limit's events: the kind and the user.
fn limit_events(events: &Mutex<Vec<Event>>) -> Vec<(EventKind, Option<String>)> {
    let events = events.lock().unwrap();
    events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Evicted { .. } | EventKind::LoginRefused))
        .map(|e| (e.kind, e.user.clone()))
        .collect()
}

fn alice() -> (StatusCode, String) {
    (StatusCode::OK, "alice".into())
}

async fn live_sessions(h: &Harness, user: &str) -> usize {
    h.store.list_user(user, h.clock.now_ms(), usize::MAX).await.unwrap().len()
}

#[tokio::test]
async fn evicting_after_three_logins_the_first_cookie_is_anonymous_and_one_event_says_so() {
    let h = limited(2, LimitPolicy::EvictLeastRecent);
    let (layer, events) = recorded(&h.layer);
    let app = app(&layer);
    let first = login(&app, "alice").await;
    h.clock.advance(std::time::Duration::from_secs(1));
    let second = login(&app, "alice").await;
    h.clock.advance(std::time::Duration::from_secs(1));
    let bob = login(&app, "bob").await;
    let third = login(&app, "alice").await;

    let res = send(&app, req("GET", "/me", Some(&first))).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "the least recently used session is signed out");
    assert!(is_removal(&res), "and its cookie removed");
    assert_eq!(who(&app, &second).await, alice());
    assert_eq!(who(&app, &third).await, alice());
    assert_eq!(who(&app, &bob).await, (StatusCode::OK, "bob".into()), "another user's sessions do not count");
    assert_eq!(limit_events(&events), [(EventKind::Evicted { count: 1 }, Some("alice".into()))]);
    assert_eq!(live_sessions(&h, "alice").await, 2);
}

#[tokio::test]
async fn refusing_the_third_login_fails_and_the_first_two_stay() {
    let h = limited(2, LimitPolicy::RefuseNew);
    let (layer, events) = recorded(&h.layer);
    let app = app(&layer);
    let (first, second) = (login(&app, "alice").await, login(&app, "alice").await);
    let res = send(&app, req("POST", "/login/alice", None)).await;
    assert_eq!(res.status(), StatusCode::CONFLICT, "the third login is refused");
    assert!(no_cookie(&res), "a refused login sets no cookie");
    let err = res.extensions().get::<SharedError>().expect("the error is attached");
    assert!(matches!(err.error(), SessionError::TooManySessions { max: 2 }), "{err:?}");
    assert_eq!(who(&app, &first).await, alice());
    assert_eq!(who(&app, &second).await, alice());
    assert_eq!(limit_events(&events), [(EventKind::LoginRefused, Some("alice".into()))]);
    assert_eq!(live_sessions(&h, "alice").await, 2);
    assert_eq!(h.store.inner.len(), 2, "the refused login's session was created anonymous, and deleted");
}

#[tokio::test]
async fn a_refused_login_keeps_the_callers_anonymous_session_and_cookie() {
    let h = limited(1, LimitPolicy::RefuseNew);
    let app = app(&h.layer);
    let _elsewhere = login(&app, "alice").await;
    let visitor = session_cookie(&send(&app, req("POST", "/incr", None)).await).unwrap();
    let res = send(&app, req("POST", "/login/alice", Some(&visitor))).await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
    assert!(no_cookie(&res), "the client keeps its cookie");
    assert_eq!(who(&app, &visitor).await.0, StatusCode::UNAUTHORIZED, "nobody signed in");
    let res = send(&app, req("GET", "/read", Some(&visitor))).await;
    assert_eq!(body(res).await, "1", "the visitor's session and its data are as they were");
}

/// The limit is kept when the login commits, not when the handler calls
/// `login`: a login held between its load and its commit, while another
/// login of the user completes, counts that one. Both ways in: a visitor's
/// live session (a renewal) and an ended one (a new session).
#[tokio::test]
async fn a_login_held_across_another_login_of_the_user_counts_it() {
    for policy in [LimitPolicy::RefuseNew, LimitPolicy::EvictLeastRecent] {
        for ended_cookie in [false, true] {
            let h = limited(2, policy);
            let app = app(&h.layer);
            let first = login(&app, "alice").await;
            h.clock.advance(std::time::Duration::from_secs(1));
            let cookie = session_cookie(&send(&app, req("POST", "/incr", None)).await).unwrap();
            if ended_cookie {
                send(&app, req("POST", "/logout", Some(&cookie))).await;
            }
            let held = hold(&h, &app, "POST", "/login/alice", &cookie).await;
            let racing = login(&app, "alice").await;
            release(&h);
            let res = held.await.unwrap();
            let what = format!("{policy:?}, ended cookie: {ended_cookie}");
            match policy {
                LimitPolicy::RefuseNew => {
                    assert_eq!(res.status(), StatusCode::CONFLICT, "{what}");
                    assert_eq!(who(&app, &first).await, alice(), "{what}");
                }
                _ => {
                    assert_eq!(res.status(), StatusCode::OK, "{what}");
                    let signed_in = session_cookie(&res).expect("a cookie");
                    assert_eq!(who(&app, &signed_in).await, alice(), "{what}");
                    assert_eq!(who(&app, &first).await.0, StatusCode::UNAUTHORIZED, "{what}: the oldest ends");
                }
            }
            assert_eq!(who(&app, &racing).await, alice(), "{what}");
            assert_eq!(live_sessions(&h, "alice").await, 2, "{what}: never more than the limit");
        }
    }
}

/// Ten logins of one user whose handlers return together (a barrier), so
/// that their commits run at once: at most two sessions are left.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_parallel_logins_leave_at_most_the_limit() {
    const N: usize = 10;
    for policy in [LimitPolicy::EvictLeastRecent, LimitPolicy::RefuseNew] {
        let h = limited(2, policy);
        let app = login_together(N).merge(handlers::routes()).layer(h.layer.clone());
        let tasks: Vec<_> = (0..N)
            .map(|_| {
                let app = app.clone();
                tokio::spawn(async move { send(&app, req("POST", "/login-together/alice", None)).await })
            })
            .collect();
        // Every commit first: a cookie checked while later logins still
        // commit may be evicted after it was counted.
        let mut responses = Vec::with_capacity(N);
        for task in tasks {
            responses.push(task.await.unwrap());
        }
        let mut signed_in = 0;
        let mut refused = 0;
        for res in responses {
            match res.status() {
                StatusCode::OK => {
                    let cookie = session_cookie(&res).expect("a cookie");
                    if who(&app, &cookie).await == alice() {
                        signed_in += 1;
                    }
                }
                StatusCode::CONFLICT => refused += 1,
                other => panic!("{policy:?}: a login answered {other}"),
            }
        }
        assert_eq!(signed_in, 2, "{policy:?}: {N} parallel logins under a limit of 2 leave 2 signed-in cookies");
        assert_eq!(live_sessions(&h, "alice").await, 2, "{policy:?}");
        let expected_refusals = if policy == LimitPolicy::RefuseNew { N - 2 } else { 0 };
        assert_eq!(refused, expected_refusals, "{policy:?}");
    }
}

/// A limit on a layer whose store has no per-user index is refused when the
/// layer is built (issue 9 point 1), never found by a failing login:
/// `try_with_config` names the missing capability, and `with_config`
/// panics at start-up with the same message.
#[test]
fn a_limit_without_a_user_index_is_refused_when_the_layer_is_built() {
    let caps = || Capabilities::new(MemoryStore::default()).with_leases().with_cutoffs();
    let config = SessionConfig::builder().max_sessions_per_user(2, LimitPolicy::default()).build().unwrap();
    let err = SessionLayer::with_capabilities(caps(), Keys::generate().unwrap()).try_with_config(config.clone());
    match err {
        Err(ConfigError::MissingCapability { setting, capability }) => {
            assert_eq!((setting, capability), ("max_sessions_per_user", Capability::UserIndex));
        }
        other => panic!("expected MissingCapability, got {other:?}"),
    }
    let built = std::panic::catch_unwind(|| {
        SessionLayer::with_capabilities(caps(), Keys::generate().unwrap()).with_config(config.clone())
    });
    let message = built.expect_err("with_config panics").downcast::<String>().unwrap();
    assert!(message.contains("max_sessions_per_user needs a store with a per-user session index"), "{message}");
    // With the index, or without a limit, the same store builds.
    let without_limit =
        SessionLayer::with_capabilities(caps(), Keys::generate().unwrap()).try_with_config(SessionConfig::default());
    assert!(without_limit.is_ok());
    assert!(SessionLayer::new(MemoryStore::default(), Keys::generate().unwrap()).try_with_config(config).is_ok());
}

/// Without a limit, a login without a session is still one `create`.
#[tokio::test]
async fn without_a_limit_nothing_changes() {
    let h = Harness::new();
    let app = app(&h.layer);
    for _ in 0..5 {
        login(&app, "alice").await;
    }
    assert_eq!(live_sessions(&h, "alice").await, 5);
    assert_eq!((h.store.count(Op::Create), h.store.count(Op::Rotate)), (5, 0));
}
