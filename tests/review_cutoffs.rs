//! Review of the cutoffs (issue 9 point 6): attacks on
//! `Session::credentials_changed`, `SessionControl` and the stores'
//! `Cutoffs`. Each test is an attack; the ones marked `ignore` are open
//! findings (see their reasons).

mod common;
#[path = "common/store_fixtures.rs"]
mod store_fixtures;

use std::{sync::Arc, time::Duration};

use axum::{routing::post, Router};
use common::*;
use http::StatusCode;
use sessionware::{
    store::{Capabilities, MemoryStore},
    Keys, ManualClock, Session, SessionConfig, SessionError, SessionLayer,
};
use tokio::sync::Notify;

async fn credentials_changed(session: Session) -> Result<StatusCode, SessionError> {
    session.credentials_changed().await?;
    Ok(StatusCode::NO_CONTENT)
}

fn app_of(layer: &SessionLayer) -> Router {
    handlers::routes().route("/credentials-changed", post(credentials_changed)).layer(layer.clone())
}

/// Logs `user` in on a new client; its cookie.
async fn login(app: &Router, user: &str) -> String {
    let res = send(app, req("POST", &format!("/login/{user}"), None)).await;
    assert_eq!(res.status(), StatusCode::OK);
    session_cookie(&res).expect("a login sets a cookie")
}

async fn who(app: &Router, cookie: &str) -> (StatusCode, String) {
    let res = send(app, req("GET", "/me", Some(cookie))).await;
    let status = res.status();
    (status, body(res).await)
}

/// A password-change route as an application writes it: it reads the
/// session first (who is asking), then checks the old password and stores
/// the new one (slow: two password hashes), then calls
/// `credentials_changed`. `reached` is notified once the session was read;
/// the handler goes on when `go` is notified.
fn password_change_route(layer: &SessionLayer, reached: Arc<Notify>, go: Arc<Notify>) -> Router {
    let handler = move |session: Session| {
        let (reached, go) = (Arc::clone(&reached), Arc::clone(&go));
        async move {
            let _ = session.user().await?;
            reached.notify_one();
            // Verifying the old password, hashing and storing the new one.
            go.notified().await;
            session.credentials_changed().await?;
            Ok::<_, SessionError>(StatusCode::NO_CONTENT)
        }
    };
    handlers::routes()
        .route("/credentials-changed", post(credentials_changed))
        .route("/change-password", post(handler))
        .layer(layer.clone())
}

/// Finding 1 (fixed): the cutoff was the request's time, read when the handler
/// first touched the session, not when the new credentials were in place.
/// An attacker who knows the old password and signs in while the
/// password-change request runs (between its first session read and its
/// `credentials_changed`, i.e. while the application verifies the old
/// password and stores the new one) signed in "after" the cutoff and keeps
/// a session that the change should have ended.
#[tokio::test]
async fn a_sign_in_with_the_old_password_during_the_change_is_ended() {
    let h = Harness::new();
    let (reached, go) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let app = password_change_route(&h.layer, Arc::clone(&reached), Arc::clone(&go));
    let mine = login(&app, "alice").await;
    h.clock.advance(Duration::from_secs(5));

    let change = {
        let app = app.clone();
        let request = req("POST", "/change-password", Some(&mine));
        tokio::spawn(async move { send(&app, request).await })
    };
    reached.notified().await;
    // The old password still works: the application has not stored the new one.
    h.clock.advance(Duration::from_millis(300));
    let attacker = login(&app, "alice").await;
    h.clock.advance(Duration::from_millis(300));
    go.notify_one();
    let res = change.await.unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let renewed = session_cookie(&res).expect("the caller gets a new ID");

    assert_eq!(
        who(&app, &attacker).await.0,
        StatusCode::UNAUTHORIZED,
        "a session signed in with the old password before it was replaced survived the password change"
    );
    assert_eq!(who(&app, &renewed).await, (StatusCode::OK, "alice".into()), "the caller stays signed in");
    // A sign-in after the change (with the new password) works.
    h.clock.advance(Duration::from_millis(1));
    let again = login(&app, "alice").await;
    assert_eq!(who(&app, &again).await.0, StatusCode::OK);
}

/// Finding 2 (fixed): when the cutoff fails after the rotation that re-signed the
/// caller in succeeded, the error response dropped the new cookie: the
/// client kept its old ID, which the rotation had retired, so the user who
/// just changed the password was signed out, and the new session was left
/// in the store (listed among the user's devices) with no client.
#[tokio::test]
async fn a_failed_cutoff_does_not_sign_the_caller_out() {
    let h = Harness::new();
    let app = app_of(&h.layer);
    let mine = login(&app, "alice").await;
    h.clock.advance(Duration::from_secs(1));
    h.store.fail(Op::Cut);
    let res = send(&app, req("POST", "/credentials-changed", Some(&mine))).await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR, "fail closed: the caller is told it failed");
    let renewed = session_cookie(&res);
    h.store.heal();
    let cookie = renewed.as_deref().unwrap_or(&mine);
    assert_eq!(
        who(&app, cookie).await,
        (StatusCode::OK, "alice".into()),
        "the caller must stay signed in (and can retry) after a failed cutoff"
    );
    // The retry works and ends the other sessions.
    let other = {
        h.clock.advance(Duration::from_secs(1));
        login(&app, "alice").await
    };
    h.clock.advance(Duration::from_secs(1));
    let res = send(&app, req("POST", "/credentials-changed", Some(cookie))).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(who(&app, &other).await.0, StatusCode::UNAUTHORIZED);
}

/// Finding 3 (fixed): a MemoryStore kept the records that a cutoff ended until
/// they expire, and never evicts signed-in ones, so they count against its
/// cap: after `end_all_sessions` (an incident) on a store near its cap,
/// every user signing in again is refused (`Capacity`) until the ended
/// records expire.
#[tokio::test]
async fn ended_sessions_do_not_keep_the_memory_store_full() {
    let h = Harness::over(
        SessionConfig::default(),
        Keys::generate().unwrap(),
        MemoryStore::builder().max_sessions(4).build(),
    );
    let app = app_of(&h.layer);
    let users = ["alice", "bob", "carol", "dave"];
    for user in users {
        login(&app, user).await;
    }
    h.clock.advance(Duration::from_secs(1));
    h.layer.control().end_all_sessions().await.unwrap();
    h.clock.advance(Duration::from_millis(1));
    for user in users {
        let res = send(&app, req("POST", &format!("/login/{user}"), None)).await;
        assert_eq!(res.status(), StatusCode::OK, "{user} signs in again after every session was ended");
        let cookie = session_cookie(&res).unwrap();
        assert_eq!(who(&app, &cookie).await, (StatusCode::OK, user.to_string()));
    }
}

/// Finding 4 (open): `keep_until` is `not_before` plus the absolute timeout
/// of the layer that cuts. A session's absolute deadline comes from the
/// configuration of the layer that signed it in; when that one is longer
/// (an absolute timeout lowered by a redeploy, or two applications with
/// different timeouts over one store), the cutoff is forgotten while a
/// session it ended is still within its deadline, and that session is
/// served again.
/// (Fixed: the layer keeps cutoffs for good.)
#[tokio::test]
async fn a_forgotten_cutoff_does_not_bring_an_ended_session_back() {
    const DAY: Duration = Duration::from_secs(24 * 3600);
    let store = MemoryStore::default();
    let clock = ManualClock::new(T0);
    let keys = Keys::generate().unwrap();
    let layer_with = |absolute: Duration| {
        let config = SessionConfig::builder().idle_timeout(absolute).absolute_timeout(absolute).build().unwrap();
        SessionLayer::with_capabilities(Capabilities::full(store.clone()), keys.clone())
            .with_config(config)
            .with_clock(clock.clone())
    };
    // Before the redeploy: 30-day sessions.
    let before = app_of(&layer_with(30 * DAY));
    let stolen = login(&before, "alice").await;
    clock.advance(Duration::from_secs(1));
    // After it: 1 day. The account is disabled (or the password changed).
    let after = layer_with(DAY);
    let app = app_of(&after);
    after.control().end_user_sessions("alice").await.unwrap();
    assert_eq!(who(&app, &stolen).await.0, StatusCode::UNAUTHORIZED);
    // Two days later another user of the same cutoff shard is cut: the
    // MemoryStore forgets the cutoffs past their keep_until (a SqlStore's
    // cleanup does the same).
    clock.advance(2 * DAY);
    after.control().end_user_sessions(&same_cut_shard_as("alice")).await.unwrap();
    assert_eq!(
        who(&app, &stolen).await.0,
        StatusCode::UNAUTHORIZED,
        "a session the cutoff ended is served again once the cutoff is forgotten"
    );
}

/// A user name that the MemoryStore's cutoffs keep in the same shard as
/// `user` (16 shards by the default hasher, as in `store/memory/cutoffs.rs`).
fn same_cut_shard_as(user: &str) -> String {
    use std::hash::{Hash, Hasher};
    let shard = |u: &str| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        u.hash(&mut h);
        h.finish() % 16
    };
    (0..).map(|i| format!("user{i}")).find(|u| shard(u) == shard(user)).unwrap()
}

/// Finding 5: the caller's own concurrent request signs it out. A password
/// form submitted twice (a double click): both requests load the caller's
/// session; the first re-signs it in under a new ID and cuts; the second
/// finds the old ID retired (its rotation is dropped) but still made its
/// own cutoff, a moment later, which ended the session the first one just
/// gave the caller. Fixed when the second calls `credentials_changed` after
/// the first's cutoff (the cutoff ended its session: it makes none, and
/// sends no removal cookie); open when both call it before either commits
/// (see the next test).
#[tokio::test]
async fn a_double_submitted_password_change_keeps_the_caller_signed_in() {
    let h = Harness::new();
    let (reached, go) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let app = password_change_route(&h.layer, Arc::clone(&reached), Arc::clone(&go));
    let mine = login(&app, "alice").await;
    h.clock.advance(Duration::from_secs(1));
    // The first submission.
    let first = {
        let app = app.clone();
        let request = req("POST", "/change-password", Some(&mine));
        tokio::spawn(async move { send(&app, request).await })
    };
    reached.notified().await;
    h.clock.advance(Duration::from_millis(200));
    // The second one loads the same session, and is held there.
    let second = hold(&h, &app, "POST", "/credentials-changed", &mine).await;
    go.notify_one();
    let first = first.await.unwrap();
    assert_eq!(first.status(), StatusCode::NO_CONTENT);
    let renewed = session_cookie(&first).expect("a new ID");
    h.clock.advance(Duration::from_millis(1));
    release(&h);
    let second = second.await.unwrap();
    assert!(!is_removal(&second), "the second response must not remove the first one's new cookie");
    let cookie = session_cookie(&second).unwrap_or(renewed);
    assert_eq!(
        who(&app, &cookie).await,
        (StatusCode::OK, "alice".into()),
        "the caller's own second submission signed it out"
    );
}

/// Finding 5, open part: both submissions call `credentials_changed` before
/// either commits. The second's rotation finds the ID retired by the first
/// and is dropped; its cutoff, a millisecond later than the first's, ends
/// the session the first one gave the caller. (Skipping the cutoff when the
/// rotation lost is no fix: an attacker holding the victim's cookie and the
/// old password could make the victim's rotation lose on purpose.)
#[tokio::test]
// Fixed: both changes read the same epoch and sign the caller in under the next.
async fn a_double_submitted_password_change_racing_to_commit_keeps_the_caller_signed_in() {
    let h = Harness::new();
    // Each submission stops after its `credentials_changed`, before its commit.
    let route = |called: Arc<Notify>, finish: Arc<Notify>| {
        move |session: Session| {
            let (called, finish) = (Arc::clone(&called), Arc::clone(&finish));
            async move {
                session.credentials_changed().await?;
                called.notify_one();
                finish.notified().await;
                Ok::<_, SessionError>(StatusCode::NO_CONTENT)
            }
        }
    };
    let (called1, finish1, called2, finish2) =
        (Arc::new(Notify::new()), Arc::new(Notify::new()), Arc::new(Notify::new()), Arc::new(Notify::new()));
    let app = handlers::routes()
        .route("/change-1", post(route(Arc::clone(&called1), Arc::clone(&finish1))))
        .route("/change-2", post(route(Arc::clone(&called2), Arc::clone(&finish2))))
        .layer(h.layer.clone());
    let mine = login(&app, "alice").await;
    h.clock.advance(Duration::from_secs(1));
    let submit = |uri: &'static str| {
        let app = app.clone();
        let request = req("POST", uri, Some(&mine));
        tokio::spawn(async move { send(&app, request).await })
    };
    let first = submit("/change-1");
    called1.notified().await;
    h.clock.advance(Duration::from_millis(1));
    let second = submit("/change-2");
    called2.notified().await;
    finish1.notify_one();
    let first = first.await.unwrap();
    let renewed = session_cookie(&first).expect("a new ID");
    finish2.notify_one();
    let second = second.await.unwrap();
    assert!(!is_removal(&second));
    let cookie = session_cookie(&second).unwrap_or(renewed);
    assert_eq!(who(&app, &cookie).await, (StatusCode::OK, "alice".into()), "the caller was signed out");
}

/// Finding 6 (open): cutoffs compare times written by different clocks. A
/// session signed in on a process whose clock runs ahead of the one that
/// makes the cutoff carries a sign-in time after the cutoff, and survives
/// a password change that happened after it (in real time).
#[tokio::test]
// Fixed: a user's cutoff is a credential epoch, not a time.
async fn a_session_signed_in_on_a_process_whose_clock_runs_ahead_is_ended() {
    let store = MemoryStore::default();
    let keys = Keys::generate().unwrap();
    let (behind, ahead) = (ManualClock::new(T0), ManualClock::new(T0 + 2_000));
    let process = |clock: &ManualClock| {
        let caps = Capabilities::full(store.clone());
        app_of(&SessionLayer::with_capabilities(caps, keys.clone()).with_clock(clock.clone()))
    };
    let (a, b) = (process(&behind), process(&ahead));
    let mine = login(&a, "alice").await;
    // The attacker signs in (with the old password) on process B...
    let attacker = login(&b, "alice").await;
    // ...then, a second later, alice changes her password on process A.
    behind.advance(Duration::from_secs(1));
    ahead.advance(Duration::from_secs(1));
    let res = send(&a, req("POST", "/credentials-changed", Some(&mine))).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(who(&b, &attacker).await.0, StatusCode::UNAUTHORIZED, "the attacker's earlier sign-in survived");
}

/// A password change (or a removed second factor) on the attacker's device,
/// whose request loaded the session before the victim's change and calls
/// `credentials_changed` after it, neither keeps the attacker signed in nor
/// signs the victim out: the attacker's session was ended meanwhile.
#[tokio::test]
async fn a_password_change_in_flight_on_an_ended_session_neither_survives_nor_signs_the_caller_out() {
    let h = Harness::new();
    let app = app_of(&h.layer);
    let (mine, stolen) = (login(&app, "alice").await, login(&app, "alice").await);
    h.clock.advance(Duration::from_secs(5));
    let held = hold(&h, &app, "POST", "/credentials-changed", &stolen).await;
    h.clock.advance(Duration::from_secs(1));
    let res = send(&app, req("POST", "/credentials-changed", Some(&mine))).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let renewed = session_cookie(&res).expect("a new ID");
    h.clock.advance(Duration::from_secs(1));
    release(&h);
    let late = held.await.unwrap();
    let next = session_cookie(&late).unwrap_or_else(|| stolen.clone());
    for cookie in [&stolen, &next] {
        assert_eq!(who(&app, cookie).await.0, StatusCode::UNAUTHORIZED, "the attacker's device is signed out");
    }
    assert_eq!(who(&app, &renewed).await, (StatusCode::OK, "alice".into()), "the victim stays signed in");
}

// ------------------------------------------------------------------- SQL

#[cfg(any(feature = "sqlite", feature = "mysql"))]
mod sql {
    use sessionware::{
        store::{Auth, Cutoffs, Metadata, Record, Scope, SessionStore, SqlStore, StorageKey},
        Clock, SessionId, SystemClock,
    };

    const MINUTE: u64 = 60_000;

    fn key() -> StorageKey {
        SessionId::generate().unwrap().storage_key()
    }

    /// A live session of `user`, created and signed in to at `at`.
    async fn signed_in(store: &SqlStore, user: &str, at: u64) -> StorageKey {
        let mut r = Record::new(Metadata::new(at, 30 * MINUTE, 120 * MINUTE));
        r.meta.auth = Some(Auth::new(user, at));
        let k = key();
        assert!(store.create(&k, &r, at).await.expect("create"), "a new key");
        k
    }

    async fn is_live(store: &SqlStore, key: &StorageKey, now: u64) -> bool {
        store.lookup(key, now).await.expect("lookup").and_then(|s| s.live()).is_some()
    }

    /// Finding 7 (fixed): `cutoff(None)` (a visitor's cutoffs: only the
    /// global one applies) answered the cutoff of the user named `""` as the
    /// user's, where the MemoryStore and the contract say 0.
    async fn a_visitors_cutoff_has_no_users_part(store: &SqlStore) {
        let now = SystemClock.now_ms();
        store.cut(Scope::User(""), now, now + MINUTE, now).await.expect("cut");
        let cutoff = store.cutoff(None, now).await.expect("cutoff");
        assert_eq!(cutoff.user, 0, "a visitor's cutoffs have no user's part: {cutoff:?}");
        assert_eq!(store.cutoff(Some(""), now).await.expect("cutoff").user, now, "the user \"\"'s own");
    }

    #[cfg(feature = "sqlite")]
    #[tokio::test]
    async fn sqlite_a_visitors_cutoff_has_no_users_part() {
        let path = std::env::temp_dir().join(format!("{}.db", super::store_fixtures::unique("sw_review_cut")));
        let store = SqlStore::sqlite(path.to_str().unwrap()).await.expect("open sqlite");
        store.migrate().await.expect("migrate");
        a_visitors_cutoff_has_no_users_part(&store).await;
        super::store_fixtures::remove_sqlite(&[&store], &path).await;
    }

    #[cfg(feature = "mysql")]
    async fn mysql() -> Option<SqlStore> {
        use super::store_fixtures::{mysql_host, mysql_store, skip_or_fail};
        match mysql_store("sw_review_cut").await {
            Ok(store) => Some(store),
            Err(e) => {
                skip_or_fail("mysql", "review_cutoffs", &mysql_host(), &e);
                None
            }
        }
    }

    #[cfg(feature = "mysql")]
    #[tokio::test]
    async fn mysql_a_visitors_cutoff_has_no_users_part() {
        let Some(store) = mysql().await else { return };
        a_visitors_cutoff_has_no_users_part(&store).await;
        super::store_fixtures::drop_mysql_tables(&store).await;
    }

    /// Finding 8 (fixed): on MySQL/MariaDB a user ID has no length limit in
    /// the sessions table (`BLOB`), but the cutoffs were keyed by a
    /// `VARBINARY(3000)`: a user longer than 3000 bytes signs in, but no cutoff
    /// of theirs can be made (strict mode: an error, so
    /// `credentials_changed` and `end_user_sessions` fail for them); without
    /// strict mode the user was cut to its first 3000 bytes, silently: the
    /// user's sessions stayed, and another user's (the prefix) ended.
    #[cfg(feature = "mysql")]
    #[tokio::test]
    async fn mysql_a_user_longer_than_the_cutoff_key_can_be_cut() {
        let Some(store) = mysql().await else { return };
        let now = SystemClock.now_ms();
        let prefix = "p".repeat(3000);
        let long = format!("{prefix}x");
        let (mine, theirs) = (signed_in(&store, &long, now - 10).await, signed_in(&store, &prefix, now - 10).await);
        let cut = store.cut(Scope::User(&long), now, now + MINUTE, now).await;
        let (mine_live, theirs_live) = (is_live(&store, &mine, now).await, is_live(&store, &theirs, now).await);
        super::store_fixtures::drop_mysql_tables(&store).await;
        cut.expect("a cut of a user who can sign in");
        assert!(!mine_live, "the long user's session must be ended");
        assert!(theirs_live, "the user named by its first 3000 bytes must not be");
    }

    /// The same without strict mode (`sql_mode = ''`): a too-long value is
    /// cut to the column's length with a warning, not refused.
    #[cfg(feature = "mysql")]
    #[tokio::test]
    async fn mysql_without_strict_mode_a_long_user_cut_ends_the_right_sessions() {
        use sqlx::Executor;
        let Some(migrated) = mysql().await else { return };
        let pool = sqlx::mysql::MySqlPoolOptions::new()
            .max_connections(2)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute("SET SESSION sql_mode = ''").await?;
                    Ok(())
                })
            })
            .connect(&super::store_fixtures::mysql_url())
            .await
            .expect("connect");
        let store = SqlStore::from_mysql_pool(pool).with_table(migrated.table()).expect("table");
        let now = SystemClock.now_ms();
        let prefix = "p".repeat(3000);
        let long = format!("{prefix}x");
        let (mine, theirs) = (signed_in(&store, &long, now - 10).await, signed_in(&store, &prefix, now - 10).await);
        let cut = store.cut(Scope::User(&long), now, now + MINUTE, now).await;
        let (mine_live, theirs_live) = (is_live(&store, &mine, now).await, is_live(&store, &theirs, now).await);
        super::store_fixtures::drop_mysql_tables(&migrated).await;
        cut.expect("cut");
        assert!(!mine_live, "the long user's session must be ended (the cut reported success)");
        assert!(theirs_live, "another user's session (the long user's first 3000 bytes) must not be");
    }
}

// ------------------------------------------------ attacks that held up

async fn logout_then_incr(session: Session) -> Result<(), SessionError> {
    let _ = session.user().await?;
    session.purge().await?;
    session.insert("n", 1).await
}

async fn logout_then_login(session: Session) -> Result<(), SessionError> {
    let _ = session.user().await?;
    session.purge().await?;
    session.login("alice").await
}

async fn changed_then_login_bob(session: Session) -> Result<(), SessionError> {
    session.credentials_changed().await?;
    session.login("bob").await
}

async fn changed_twice(session: Session) -> Result<StatusCode, SessionError> {
    session.credentials_changed().await?;
    session.credentials_changed().await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn logout_then_changed(session: Session) -> Result<StatusCode, SessionError> {
    session.purge().await?;
    session.credentials_changed().await?;
    Ok(StatusCode::NO_CONTENT)
}

fn full_app(layer: &SessionLayer) -> Router {
    handlers::routes()
        .route("/credentials-changed", post(credentials_changed))
        .route("/logout-then-incr", post(logout_then_incr))
        .route("/logout-then-login", post(logout_then_login))
        .route("/changed-then-login-bob", post(changed_then_login_bob))
        .route("/changed-twice", post(changed_twice))
        .route("/logout-then-changed", post(logout_then_changed))
        .layer(layer.clone())
}

/// Held up: a request of the other device held between its lookup and its
/// commit across the cut, whatever it does (a re-login of the same user, a
/// logout then a new session or a new sign-in, a write, "remember me", a
/// periodic renewal with an overlap), leaves nothing that is served after
/// the cut, through its old ID or any new one.
#[tokio::test]
async fn held_requests_of_every_kind_leave_nothing_alive_after_a_password_change() {
    let config = SessionConfig::builder()
        .renew_after(Duration::from_secs(2))
        .renew_overlap(Duration::from_secs(30))
        .build()
        .unwrap();
    for uri in ["/login/alice", "/logout-then-login", "/logout-then-incr", "/set/x", "/remember", "/read", "/incr"] {
        let h = Harness::with_config(config.clone());
        let app = full_app(&h.layer);
        let (mine, stolen) = (login(&app, "alice").await, login(&app, "alice").await);
        h.clock.advance(Duration::from_secs(5));
        let method = if uri == "/read" { "GET" } else { "POST" };
        let held = hold(&h, &app, method, uri, &stolen).await;
        h.clock.advance(Duration::from_millis(1));
        let res = send(&app, req("POST", "/credentials-changed", Some(&mine))).await;
        assert_eq!(res.status(), StatusCode::NO_CONTENT, "{uri}");
        let renewed = session_cookie(&res).unwrap();
        h.clock.advance(Duration::from_millis(1));
        release(&h);
        let late = held.await.unwrap();
        let next = session_cookie(&late);
        for cookie in std::iter::once(&stolen).chain(next.as_ref()) {
            let (status, user) = who(&app, cookie).await;
            assert!(status == StatusCode::UNAUTHORIZED, "{uri}: {cookie} is still signed in as {user}");
        }
        assert_eq!(who(&app, &renewed).await, (StatusCode::OK, "alice".into()), "{uri}");
    }
}

/// Held up: the same across `end_all_sessions`, for a visitor's session
/// too: a session created by a request that began before the cut is ended.
#[tokio::test]
async fn held_requests_leave_nothing_alive_after_end_all_sessions() {
    let config = SessionConfig::builder()
        .renew_after(Duration::from_secs(2))
        .renew_overlap(Duration::from_secs(30))
        .build()
        .unwrap();
    for (signed_in, uri) in [
        (false, "/incr"),
        (false, "/logout-then-incr"),
        (false, "/login/alice"),
        (true, "/logout-then-incr"),
        (true, "/login/mallory"),
        (true, "/read"),
    ] {
        let h = Harness::with_config(config.clone());
        let app = full_app(&h.layer);
        let cookie = if signed_in {
            login(&app, "alice").await
        } else {
            session_cookie(&send(&app, req("POST", "/incr", None)).await).unwrap()
        };
        h.clock.advance(Duration::from_secs(5));
        let method = if uri == "/read" { "GET" } else { "POST" };
        let held = hold(&h, &app, method, uri, &cookie).await;
        h.clock.advance(Duration::from_millis(1));
        h.layer.control().end_all_sessions().await.unwrap();
        h.clock.advance(Duration::from_millis(1));
        release(&h);
        let late = held.await.unwrap();
        for c in std::iter::once(&cookie).chain(session_cookie(&late).as_ref()) {
            let res = send(&app, req("GET", "/read", Some(c))).await;
            assert_eq!(body(res).await, "none", "{uri} (signed in: {signed_in}): a session survived");
            assert_eq!(who(&app, c).await.0, StatusCode::UNAUTHORIZED, "{uri}");
        }
    }
}

/// Held up: a periodic renewal's old ID, within its overlap, reaches its
/// successor only while that one is not ended; and `sessions()` leaves the
/// ended sessions out.
#[tokio::test]
async fn an_alias_within_its_overlap_does_not_reach_an_ended_successor() {
    let config = SessionConfig::builder()
        .renew_after(Duration::from_secs(2))
        .renew_overlap(Duration::from_secs(30))
        .build()
        .unwrap();
    let h = Harness::with_config(config);
    let app = full_app(&h.layer);
    let (mine, stolen) = (login(&app, "alice").await, login(&app, "alice").await);
    h.clock.advance(Duration::from_secs(3));
    let res = send(&app, req("GET", "/read", Some(&stolen))).await;
    let successor = session_cookie(&res).expect("a periodic renewal");
    h.clock.advance(Duration::from_millis(1));
    assert_eq!(who(&app, &stolen).await.0, StatusCode::OK, "the old ID is an alias within the overlap");
    let res = send(&app, req("POST", "/credentials-changed", Some(&mine))).await;
    let renewed = session_cookie(&res).unwrap();
    for c in [&stolen, &successor] {
        assert_eq!(who(&app, c).await.0, StatusCode::UNAUTHORIZED);
    }
    let listed = h.store.inner.list_user("alice", T0 + 10_000, 100).await.unwrap();
    assert_eq!(listed.len(), 1, "only the caller's session is listed: {listed:?}");
    assert_eq!(who(&app, &renewed).await.0, StatusCode::OK);
}

/// Held up: `credentials_changed` then `login` of another user in the same
/// request ends the first user's other sessions and signs the caller in as
/// the second; twice in one request is one cutoff; after `purge` it is
/// `NotAuthenticated` and cuts nothing.
#[tokio::test]
async fn credentials_changed_combined_with_a_login_or_a_logout() {
    let h = Harness::new();
    let app = full_app(&h.layer);
    let (mine, other) = (login(&app, "alice").await, login(&app, "alice").await);
    let bob = login(&app, "bob").await;
    h.clock.advance(Duration::from_secs(1));
    let res = send(&app, req("POST", "/changed-then-login-bob", Some(&mine))).await;
    assert_eq!(res.status(), StatusCode::OK);
    let now_bob = session_cookie(&res).unwrap();
    assert_eq!(who(&app, &now_bob).await, (StatusCode::OK, "bob".into()));
    assert_eq!(who(&app, &other).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(who(&app, &bob).await.0, StatusCode::OK, "bob's own other session is not cut");
    assert_eq!(h.store.count(Op::Cut), 1);

    let (mine, other) = (login(&app, "carol").await, login(&app, "carol").await);
    h.clock.advance(Duration::from_secs(1));
    let res = send(&app, req("POST", "/changed-twice", Some(&mine))).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(h.store.count(Op::Cut), 2, "one cutoff per request");
    assert_eq!(who(&app, &session_cookie(&res).unwrap()).await, (StatusCode::OK, "carol".into()));
    assert_eq!(who(&app, &other).await.0, StatusCode::UNAUTHORIZED);

    let mine = login(&app, "dave").await;
    h.clock.advance(Duration::from_secs(1));
    let res = send(&app, req("POST", "/logout-then-changed", Some(&mine))).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "after a logout nobody is signed in");
    assert_eq!(h.store.count(Op::Cut), 2, "and nothing is cut");
    assert_eq!(who(&app, &mine).await.0, StatusCode::UNAUTHORIZED, "the logout happened");
}
