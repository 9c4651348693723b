//! Ending sessions at once by cutoff, through the layer: a password change
//! (`Session::credentials_changed`) ends every other session of the user and
//! keeps the caller signed in under a new ID; `SessionControl` ends one
//! user's sessions or every session. Each attack is a request that should
//! no longer be served, and each race holds a request between its load and
//! its commit.

mod common;

use std::sync::{Arc, Mutex};

use axum::{routing::post, Router};
use common::*;
use http::StatusCode;
use sessionware::{
    store::{Capabilities, MemoryStore},
    EventKind, Keys, Session, SessionError, SessionLayer,
};

async fn credentials_changed(session: Session) -> Result<StatusCode, SessionError> {
    session.credentials_changed().await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn changed_then_logout(session: Session) -> Result<(), SessionError> {
    session.credentials_changed().await?;
    session.purge().await
}

fn app_of(layer: &SessionLayer) -> Router {
    handlers::routes()
        .route("/credentials-changed", post(credentials_changed))
        .route("/changed-then-logout", post(changed_then_logout))
        .layer(layer.clone())
}

#[tokio::test]
async fn a_password_change_ends_the_users_other_sessions_and_keeps_the_caller() {
    let h = Harness::new();
    let app = app_of(&h.layer);
    let (phone, laptop, tablet) = (login(&app, "alice").await, login(&app, "alice").await, login(&app, "alice").await);
    let bob = login(&app, "bob").await;
    h.clock.advance(std::time::Duration::from_secs(5));

    let res = send(&app, req("POST", "/credentials-changed", Some(&laptop))).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let renewed = session_cookie(&res).expect("the caller gets a new ID");
    assert_ne!(renewed, laptop);
    assert_eq!(who(&app, &renewed).await, (StatusCode::OK, "alice".into()), "the caller stays signed in");

    for (cookie, what) in [(&phone, "the phone"), (&tablet, "the tablet")] {
        let res = send(&app, req("GET", "/me", Some(cookie))).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{what}'s stolen or stale cookie is no longer served");
        assert!(is_removal(&res), "{what} gets the removal cookie");
    }
    assert_eq!(who(&app, &bob).await, (StatusCode::OK, "bob".into()), "another user's session is untouched");
    // The caller's old ID was retired by the renewal: not a session, and no
    // removal cookie that would clobber the new one.
    let res = send(&app, req("GET", "/me", Some(&laptop))).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(no_cookie(&res), "a late request on the caller's old ID must not remove the new cookie");
    // Signing in again afterwards works.
    let again = login(&app, "alice").await;
    assert_eq!(who(&app, &again).await, (StatusCode::OK, "alice".into()));
}

#[tokio::test]
async fn a_password_change_needs_a_signed_in_user() {
    let h = Harness::new();
    let app = app_of(&h.layer);
    let res = send(&app, req("POST", "/credentials-changed", None)).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(h.store.count(Op::Cut), 0, "nothing is cut for a visitor");
}

#[tokio::test]
async fn a_layer_without_cutoffs_refuses_with_a_typed_error() {
    let store = Capabilities::new(MemoryStore::default()).with_user_index().with_leases();
    let layer = SessionLayer::with_capabilities(store, Keys::generate().unwrap());
    let app = app_of(&layer);
    let alice = login(&app, "alice").await;
    let res = send(&app, req("POST", "/credentials-changed", Some(&alice))).await;
    assert!(res.status().is_server_error(), "unsupported is an error, not a silent success: {}", res.status());
    let err = layer.control().end_all_sessions().await.unwrap_err();
    assert!(matches!(err, SessionError::Unsupported(_)), "{err:?}");
}

/// A request of another device that loaded its session before the password
/// change and commits after it (a write, or a renewal) keeps nothing alive.
#[tokio::test]
async fn requests_in_flight_across_a_password_change_keep_nothing_alive() {
    for uri in ["/incr", "/renew"] {
        let h = Harness::new();
        let app = app_of(&h.layer);
        let (mine, stolen) = (login(&app, "alice").await, login(&app, "alice").await);
        h.clock.advance(std::time::Duration::from_secs(5));
        let held = hold(&h, &app, "POST", uri, &stolen).await;
        let res = send(&app, req("POST", "/credentials-changed", Some(&mine))).await;
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        release(&h);
        let late = held.await.unwrap();
        // Whatever the late request answered, nothing it left is served.
        let next = session_cookie(&late).unwrap_or_else(|| stolen.clone());
        for cookie in [&stolen, &next] {
            assert_eq!(who(&app, cookie).await.0, StatusCode::UNAUTHORIZED, "{uri}: the other device is signed out");
        }
        let renewed = session_cookie(&res).unwrap();
        assert_eq!(who(&app, &renewed).await, (StatusCode::OK, "alice".into()), "{uri}");
    }
}

/// A concurrent request on the caller's own old ID, held across the change,
/// does not remove the caller's new cookie.
#[tokio::test]
async fn the_callers_own_concurrent_request_does_not_clobber_its_new_cookie() {
    let h = Harness::new();
    let app = app_of(&h.layer);
    let mine = login(&app, "alice").await;
    let held = hold(&h, &app, "GET", "/me", &mine).await;
    let res = send(&app, req("POST", "/credentials-changed", Some(&mine))).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    release(&h);
    let late = held.await.unwrap();
    assert!(!is_removal(&late), "the late response must not remove the session cookie");
}

#[tokio::test]
async fn a_password_change_then_logout_still_ends_every_session() {
    let h = Harness::new();
    let app = app_of(&h.layer);
    let (mine, other) = (login(&app, "alice").await, login(&app, "alice").await);
    h.clock.advance(std::time::Duration::from_secs(1));
    let res = send(&app, req("POST", "/changed-then-logout", Some(&mine))).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(h.store.count(Op::Cut), 1);
    assert_eq!(who(&app, &other).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(who(&app, &mine).await.0, StatusCode::UNAUTHORIZED);
}

/// A cutoff that cannot be made fails the response (fail closed): the
/// caller is not told the other sessions ended.
#[tokio::test]
async fn a_failed_cutoff_fails_the_response() {
    let h = Harness::new();
    let app = app_of(&h.layer);
    let mine = login(&app, "alice").await;
    h.store.fail(Op::Cut);
    let res = send(&app, req("POST", "/credentials-changed", Some(&mine))).await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let err = h.layer.control().end_user_sessions("alice").await.unwrap_err();
    assert!(matches!(err, SessionError::Store(_)), "{err:?}");
}

#[tokio::test]
async fn control_ends_one_users_sessions_or_every_session() {
    let events = Arc::new(Mutex::new(Vec::new()));
    let h = Harness::new();
    let seen = Arc::clone(&events);
    let layer = h.layer.clone().on_event(move |e| {
        if let EventKind::CutOff { all } = e.kind {
            seen.lock().unwrap().push((all, e.user.clone()));
        }
    });
    let app = app_of(&layer);
    let (alice, bob) = (login(&app, "alice").await, login(&app, "bob").await);
    let visitor = session_cookie(&send(&app, req("POST", "/incr", None)).await).unwrap();
    let control = layer.control();

    control.end_user_sessions("alice").await.unwrap();
    assert_eq!(who(&app, &alice).await.0, StatusCode::UNAUTHORIZED, "a disabled account is signed out at once");
    assert_eq!(who(&app, &bob).await.0, StatusCode::OK);
    h.clock.advance(std::time::Duration::from_millis(1));
    let again = login(&app, "alice").await;
    assert_eq!(who(&app, &again).await.0, StatusCode::OK, "a later sign-in works");

    h.clock.advance(std::time::Duration::from_millis(1));
    control.end_all_sessions().await.unwrap();
    for cookie in [&bob, &again] {
        assert_eq!(who(&app, cookie).await.0, StatusCode::UNAUTHORIZED, "every signed-in session ends");
    }
    let res = send(&app, req("GET", "/read", Some(&visitor))).await;
    assert_eq!(body(res).await, "none", "a visitor's session ends too");
    h.clock.advance(std::time::Duration::from_millis(1));
    let fresh = login(&app, "bob").await;
    assert_eq!(who(&app, &fresh).await.0, StatusCode::OK, "sessions made after it work");
    assert_eq!(*events.lock().unwrap(), vec![(false, Some("alice".to_string())), (true, None)]);
}
