//! "Remember me": a remembered session has its own idle and absolute limits
//! (issue 12, point 1), enforced by the layer; its cookie never outlives it.
//! The trap this replaces: `set_persistent(true)` gave a 12-hour cookie to a
//! session the server ended after 30 idle minutes.
#![allow(dead_code)]

mod common;

use std::time::Duration;

use axum::{
    extract::Path,
    routing::{get, post},
    Router,
};
use common::*;
use http::StatusCode;
use sessionware::{Session, SessionConfig, SessionError, SessionLayer};

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);

/// Signs `user` in, remembered when `remember` is `yes`.
async fn sign_in(session: Session, Path((user, remember)): Path<(String, String)>) -> Result<(), SessionError> {
    session.login(user).await?;
    session.set_persistent(remember == "yes").await
}

/// `set_persistent(true)` first, then the login: the same result.
async fn remember_then_login(session: Session, Path(user): Path<String>) -> Result<(), SessionError> {
    session.set_persistent(true).await?;
    session.login(user).await
}

async fn forget(session: Session) -> Result<(), SessionError> {
    session.set_persistent(false).await
}

/// A sensitive action: needs a sign-in within the last 5 minutes.
async fn sensitive(session: Session) -> Result<(), SessionError> {
    session.require_recent_auth(5 * MINUTE).await
}

fn routes(layer: &SessionLayer) -> Router {
    handlers::routes()
        .route("/sign-in/{user}/{remember}", post(sign_in))
        .route("/remember-then-login/{user}", post(remember_then_login))
        .route("/forget", post(forget))
        .route("/sensitive", get(sensitive))
        .layer(layer.clone())
}

/// The cookie (`name=value`) and its `Max-Age` in seconds.
async fn signed_in(app: &Router, uri: &str, cookie: Option<&str>) -> (String, Option<i64>) {
    let res = send(app, req("POST", uri, cookie)).await;
    assert_eq!(res.status(), StatusCode::OK);
    let c = set_cookies(&res).remove(0);
    (format!("{}={}", c.name(), c.value()), c.max_age().map(|a| a.whole_seconds()))
}

/// R16: the idle deadline of a remembered session is its own: it survives
/// two idle hours (the normal idle timeout is 30 minutes), each request
/// moves it, and it ends after the persistent idle timeout (30 days).
#[tokio::test]
async fn a_remembered_session_outlives_the_normal_idle_timeout_and_ends_at_its_own() {
    let h = Harness::new();
    let app = routes(&h.layer);
    let (cookie, _) = signed_in(&app, "/sign-in/alice/yes", None).await;
    h.clock.advance(2 * HOUR);
    assert_eq!(who(&app, &cookie).await, (StatusCode::OK, "alice".into()), "alive after 2 h idle");
    h.clock.advance(29 * DAY);
    assert_eq!(who(&app, &cookie).await, (StatusCode::OK, "alice".into()), "alive after 29 idle days");
    h.clock.advance(30 * DAY);
    assert_eq!(who(&app, &cookie).await.0, StatusCode::UNAUTHORIZED, "ended after 30 idle days");
}

/// R16: a read-only request on a remembered session moves its idle deadline
/// once the share of its own window has passed (3 days), not on every
/// request: reads every 2 days keep it alive for 60 days without a write.
#[tokio::test]
async fn reads_keep_a_remembered_session_alive_and_are_throttled_by_its_own_window() {
    let h = Harness::new();
    let app = routes(&h.layer);
    let (cookie, _) = signed_in(&app, "/sign-in/alice/yes", None).await;
    let touches = h.store.count(Op::Touch);
    h.clock.advance(HOUR);
    assert_eq!(who(&app, &cookie).await.0, StatusCode::OK);
    assert_eq!(h.store.count(Op::Touch), touches, "no touch within the first 3 days");
    for _ in 0..30 {
        h.clock.advance(2 * DAY);
        assert_eq!(who(&app, &cookie).await.0, StatusCode::OK);
    }
    assert!(h.store.count(Op::Touch) > touches, "the idle deadline was moved by touches");
}

/// R17: a remembered session ends at its own absolute deadline (90 days
/// after the sign-in), however active.
#[tokio::test]
async fn a_remembered_session_ends_at_its_own_absolute_deadline() {
    let h = Harness::new();
    let app = routes(&h.layer);
    let (cookie, _) = signed_in(&app, "/sign-in/alice/yes", None).await;
    for _ in 0..89 {
        h.clock.advance(DAY);
        assert_eq!(who(&app, &cookie).await.0, StatusCode::OK);
    }
    h.clock.advance(DAY);
    assert_eq!(who(&app, &cookie).await.0, StatusCode::UNAUTHORIZED, "ended 90 days after the sign-in");
}

/// R16: a session that is not remembered still ends after 30 idle minutes.
#[tokio::test]
async fn a_normal_session_still_ends_after_the_normal_idle_timeout() {
    let h = Harness::new();
    let app = routes(&h.layer);
    let (cookie, max_age) = signed_in(&app, "/sign-in/alice/no", None).await;
    assert_eq!(max_age, None, "a browser-session cookie");
    h.clock.advance(29 * MINUTE);
    assert_eq!(who(&app, &cookie).await.0, StatusCode::OK);
    h.clock.advance(30 * MINUTE);
    assert_eq!(who(&app, &cookie).await.0, StatusCode::UNAUTHORIZED);
}

/// R19: the cookie's `Max-Age` is the time to the persistent absolute
/// deadline, whichever order the login and `set_persistent` come in, and
/// shrinks as the deadline nears: the cookie never outlives the session.
#[tokio::test]
async fn max_age_follows_the_persistent_absolute_deadline() {
    let h = Harness::new();
    let app = routes(&h.layer);
    let (_, after) = signed_in(&app, "/sign-in/alice/yes", None).await;
    let (cookie, before) = signed_in(&app, "/remember-then-login/bob", None).await;
    assert_eq!(after, Some(90 * 24 * 3600));
    assert_eq!(before, after);
    h.clock.advance(10 * DAY);
    // A re-authentication of the same user keeps "remember me" and restarts it.
    let (cookie, again) = signed_in(&app, "/login/bob", Some(&cookie)).await;
    assert_eq!(again, Some(90 * 24 * 3600));
    for _ in 0..89 {
        h.clock.advance(DAY);
        assert_eq!(who(&app, &cookie).await.0, StatusCode::OK, "alive until 90 days after the second sign-in");
    }
    h.clock.advance(DAY);
    assert_eq!(who(&app, &cookie).await.0, StatusCode::UNAUTHORIZED);
}

/// R19: `Max-Age` never passes 400 days, the browsers' cap, even with the
/// longest persistent limit; the server session ends when the cookie does.
#[tokio::test]
async fn max_age_is_capped_at_400_days_and_the_session_ends_with_it() {
    let config = SessionConfig::builder()
        .persistent_idle_timeout(400 * DAY)
        .persistent_absolute_timeout(400 * DAY)
        .build()
        .unwrap();
    let h = Harness::with_config(config);
    let app = routes(&h.layer);
    let (cookie, max_age) = signed_in(&app, "/sign-in/alice/yes", None).await;
    assert_eq!(max_age, Some(400 * 24 * 3600));
    h.clock.advance(400 * DAY - MINUTE);
    assert_eq!(who(&app, &cookie).await.0, StatusCode::OK);
    h.clock.advance(MINUTE);
    assert_eq!(who(&app, &cookie).await.0, StatusCode::UNAUTHORIZED);
    assert!(SessionConfig::builder().persistent_absolute_timeout(401 * DAY).build().is_err());
}

/// R7: "remember me" never stands in for a recent sign-in: a remembered
/// session signed in a day ago fails `require_recent_auth`.
#[tokio::test]
async fn require_recent_auth_fails_on_a_remembered_session_signed_in_long_ago() {
    let h = Harness::new();
    let app = routes(&h.layer);
    let (cookie, _) = signed_in(&app, "/sign-in/alice/yes", None).await;
    assert_eq!(send(&app, req("GET", "/sensitive", Some(&cookie))).await.status(), StatusCode::OK);
    h.clock.advance(DAY);
    assert_eq!(who(&app, &cookie).await.0, StatusCode::OK, "still signed in");
    let res = send(&app, req("GET", "/sensitive", Some(&cookie))).await;
    assert_ne!(res.status(), StatusCode::OK, "a day-old sign-in is not recent, remembered or not");
}

/// A stolen cookie of a normal session cannot be stretched to months by a
/// "remember me" request: without a sign-in the absolute deadline stays
/// (12 hours), and the new `Max-Age` reaches no further.
#[tokio::test]
async fn remember_me_without_a_sign_in_does_not_extend_the_absolute_deadline() {
    let h = Harness::new();
    let app = routes(&h.layer);
    let (cookie, _) = signed_in(&app, "/sign-in/alice/no", None).await;
    h.clock.advance(20 * MINUTE);
    let (cookie, max_age) = signed_in(&app, "/remember", Some(&cookie)).await;
    assert_eq!(max_age, Some(12 * 3600 - 20 * 60), "Max-Age reaches the 12-hour deadline, no further");
    h.clock.advance(2 * HOUR);
    assert_eq!(who(&app, &cookie).await.0, StatusCode::OK, "the persistent idle timeout applies");
    h.clock.advance(10 * HOUR - 20 * MINUTE);
    assert_eq!(who(&app, &cookie).await.0, StatusCode::UNAUTHORIZED, "ended 12 hours after the sign-in");
}

/// "Remember me" is chosen per sign-in: on a shared computer, a remembered
/// session followed by another user's sign-in without the box ticked is a
/// browser session with the normal limits.
#[tokio::test]
async fn another_users_sign_in_is_not_remembered_unless_chosen_again() {
    let h = Harness::new();
    let app = routes(&h.layer);
    let (cookie, _) = signed_in(&app, "/sign-in/alice/yes", None).await;
    let (cookie, max_age) = signed_in(&app, "/login/mallory", Some(&cookie)).await;
    assert_eq!(max_age, None, "a browser-session cookie");
    h.clock.advance(31 * MINUTE);
    assert_eq!(who(&app, &cookie).await.0, StatusCode::UNAUTHORIZED, "the normal idle timeout holds");
}

/// `set_persistent(false)` brings back the normal limits: a session
/// remembered for two days is past the normal absolute timeout and ends at
/// once (removal cookie); within it, the normal idle timeout holds again.
#[tokio::test]
async fn forgetting_brings_back_the_normal_limits() {
    let h = Harness::new();
    let app = routes(&h.layer);
    let (cookie, _) = signed_in(&app, "/sign-in/alice/yes", None).await;
    h.clock.advance(2 * DAY);
    let res = send(&app, req("POST", "/forget", Some(&cookie))).await;
    assert!(is_removal(&res), "past the normal absolute timeout: ended at once");
    assert_eq!(who(&app, &cookie).await.0, StatusCode::UNAUTHORIZED);

    let (cookie, _) = signed_in(&app, "/sign-in/bob/yes", None).await;
    h.clock.advance(HOUR);
    let (cookie, max_age) = signed_in(&app, "/forget", Some(&cookie)).await;
    assert_eq!(max_age, None, "a browser-session cookie again");
    h.clock.advance(31 * MINUTE);
    assert_eq!(who(&app, &cookie).await.0, StatusCode::UNAUTHORIZED, "the normal idle timeout holds");

    let (cookie, _) = signed_in(&app, "/sign-in/carol/yes", None).await;
    h.clock.advance(HOUR);
    let (cookie, _) = signed_in(&app, "/forget", Some(&cookie)).await;
    for _ in 0..10 {
        h.clock.advance(20 * MINUTE);
        assert_eq!(who(&app, &cookie).await.0, StatusCode::OK);
    }
    h.clock.advance(10 * HOUR);
    assert_eq!(who(&app, &cookie).await.0, StatusCode::UNAUTHORIZED, "the normal absolute timeout holds");
}

/// A concurrent request that loaded the session before "forget me" was
/// acknowledged writes with the stale remembered idle window: the layer
/// still ends the session after the normal idle timeout.
#[tokio::test]
async fn a_stale_write_cannot_give_a_forgotten_session_the_remembered_idle_window() {
    let h = Harness::new();
    let app = routes(&h.layer);
    let (cookie, _) = signed_in(&app, "/sign-in/alice/yes", None).await;
    let stale = hold(&h, &app, "POST", "/set/x", &cookie).await;
    let (cookie, _) = signed_in(&app, "/forget", Some(&cookie)).await;
    release(&h);
    assert_eq!(stale.await.unwrap().status(), StatusCode::OK);
    h.clock.advance(31 * MINUTE);
    assert_eq!(who(&app, &cookie).await.0, StatusCode::UNAUTHORIZED, "the normal idle timeout holds");
}
