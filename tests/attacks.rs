//! Regression tests from the attacker review of the lifecycle rewrite: each
//! test mounts one attack (a fixation logout through a retired ID, a
//! renewal undoing "remember me", `lock()` after `login()` showing dropped
//! data, a late request removing the next user's cookie, a revocation or a
//! listing racing a rotation) and asserts that it fails.

mod common;

use std::time::Duration;

use axum::{
    routing::{get, post},
    Router,
};
use common::*;
use http::StatusCode;
use sessionware::{Session, SessionConfig, SessionError, SessionLayer};
use tokio::task::JoinHandle;

async fn persistent(session: Session) -> Result<String, SessionError> {
    Ok(session.metadata().await?.map(|m| m.persistent).unwrap_or(false).to_string())
}

/// Logs in as `user`, then takes the exclusive lock and lists the keys the
/// handler sees (a handler that renders the session after logging in).
async fn login_lock_keys(
    session: Session,
    axum::extract::Path(user): axum::extract::Path<String>,
) -> Result<String, SessionError> {
    session.login(user).await?;
    session.lock().await?;
    Ok(session.keys().await?.join(","))
}

fn routes(layer: &SessionLayer) -> Router {
    handlers::routes()
        .route("/persistent", get(persistent))
        .route("/login-lock-keys/{user}", post(login_lock_keys))
        .layer(layer.clone())
}

fn long_lived() -> SessionConfig {
    SessionConfig::builder()
        .idle_timeout(Duration::from_secs(3600))
        .absolute_timeout(Duration::from_secs(12 * 3600))
        .build()
        .unwrap()
}

/// A fixation attacker planted the pre-login ID; the victim logged in (a
/// new ID) and used the new ID. `later` after the login the attacker
/// "logs out" with the planted ID. Returns whether the victim is still in.
async fn victim_survives_a_logout_on_the_planted_id(later: Duration) -> bool {
    let h = Harness::with_config(long_lived());
    let app = routes(&h.layer);
    let planted = session_cookie(&send(&app, req("POST", "/incr", None)).await).unwrap();
    let victim = session_cookie(&send(&app, req("POST", "/login/victim", Some(&planted))).await).unwrap();
    h.clock.advance(later);
    assert_eq!(body(send(&app, req("GET", "/me", Some(&victim))).await).await, "victim");
    let _ = send(&app, req("POST", "/logout", Some(&planted))).await;
    body(send(&app, req("GET", "/me", Some(&victim))).await).await == "victim"
}

/// Promise 4, past the retired pointer's `until`: the expired pointer is
/// followed by nothing.
#[tokio::test]
async fn attack_fixation_logout_with_an_expired_retired_id_kills_the_victims_session() {
    assert!(
        victim_survives_a_logout_on_the_planted_id(Duration::from_secs(600)).await,
        "a pre-login ID retired 10 minutes ago ended the victim's authenticated session"
    );
}

/// Promise 4 within the retired window: once the victim used the new ID,
/// the pre-login ID ends nothing.
#[tokio::test]
async fn attack_fixation_logout_with_the_pre_login_id_within_two_minutes() {
    assert!(
        victim_survives_a_logout_on_the_planted_id(Duration::from_secs(60)).await,
        "the attacker's pre-login ID ended the victim's authenticated session"
    );
}

/// Promise 2: "remember me" acknowledged by one request is lost when a
/// concurrent renewal (loaded before it) commits: the rotation forces the
/// stale view's `persistent` onto the successor.
#[tokio::test]
async fn attack_renewal_loses_a_concurrent_remember_me() {
    let h = Harness::with_config(long_lived());
    let app = routes(&h.layer);
    let cookie = session_cookie(&send(&app, req("POST", "/login/alice", None)).await).unwrap();
    let renew = hold(&h, &app, "POST", "/renew", &cookie).await;
    let res = send(&app, req("POST", "/remember", Some(&cookie))).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body(send(&app, req("GET", "/persistent", Some(&cookie))).await).await, "true");
    release(&h);
    let renewed = session_cookie(&renew.await.unwrap()).expect("the renewal lands");
    assert_eq!(
        body(send(&app, req("GET", "/persistent", Some(&renewed))).await).await,
        "true",
        "the acknowledged remember-me was undone by the renewal's stale view"
    );
}

/// Promise 5: after `login` as another user, `lock()` re-reads the stored
/// record and puts the previous user's data back into the request's view.
#[tokio::test]
async fn attack_lock_after_login_exposes_the_previous_users_data() {
    let h = Harness::with_config(long_lived());
    let app = routes(&h.layer);
    let alice = session_cookie(&send(&app, req("POST", "/login/alice", None)).await).unwrap();
    assert_eq!(send(&app, req("POST", "/set/alice-secret", Some(&alice))).await.status(), StatusCode::OK);
    // Bob logs in on the same browser (alice never logged out).
    let res = send(&app, req("POST", "/login-lock-keys/bob", Some(&alice))).await;
    assert_eq!(res.status(), StatusCode::OK);
    let bob = session_cookie(&res);
    let seen = body(res).await;
    assert!(!seen.contains("alice-secret"), "bob's handler sees alice's data after login: {seen}");
    let stored = body(send(&app, req("GET", "/keys", Some(&bob.unwrap()))).await).await;
    assert!(!stored.contains("alice-secret"), "and it is stored: {stored}");
}

/// Same with pre-login (planted) data that is not allow-listed.
#[tokio::test]
async fn attack_lock_after_login_exposes_planted_pre_login_data() {
    let h = Harness::with_config(long_lived());
    let app = routes(&h.layer);
    let planted = session_cookie(&send(&app, req("POST", "/set/evil", None)).await).unwrap();
    let res = send(&app, req("POST", "/login-lock-keys/victim", Some(&planted))).await;
    assert_eq!(res.status(), StatusCode::OK);
    let seen = body(res).await;
    assert!(!seen.contains("evil"), "the victim's post-login handler sees planted data: {seen}");
}

/// A gate that holds a handler after it loaded the session (and made its
/// change), before the commit: the interleavings below need the hold after
/// the alias lookup, which the `MockStore` pause (inside the first lookup)
/// cannot give.
static GATE: std::sync::OnceLock<(tokio::sync::Notify, tokio::sync::Notify)> = std::sync::OnceLock::new();

fn gate() -> &'static (tokio::sync::Notify, tokio::sync::Notify) {
    GATE.get_or_init(|| (tokio::sync::Notify::new(), tokio::sync::Notify::new()))
}

/// The gate is shared: the tests that use it run one at a time.
static GATED: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn wait_at_gate() {
    gate().0.notify_one();
    gate().1.notified().await;
}

/// Writes `k`, then waits at the gate.
async fn set_wait(session: Session, axum::extract::Path(k): axum::extract::Path<String>) -> Result<(), SessionError> {
    session.insert(&k, true).await?;
    wait_at_gate().await;
    Ok(())
}

/// Renews (a privilege change), then waits at the gate.
async fn renew_wait(session: Session) -> Result<(), SessionError> {
    session.renew().await?;
    wait_at_gate().await;
    Ok(())
}

fn gated_routes(layer: &SessionLayer) -> Router {
    handlers::routes()
        .route("/set-wait/{k}", post(set_wait))
        .route("/renew-wait", post(renew_wait))
        .layer(layer.clone())
}

async fn start_gated(app: &Router, uri: &str, cookie: &str) -> JoinHandle<http::Response<axum::body::Body>> {
    let task = {
        let app = app.clone();
        let request = req("POST", uri, Some(cookie));
        tokio::spawn(async move { send(&app, request).await })
    };
    tokio::time::timeout(Duration::from_secs(5), gate().0.notified()).await.expect("at the gate");
    task
}

fn renewing() -> Harness {
    Harness::with_config(
        SessionConfig::builder()
            .idle_timeout(Duration::from_secs(3600))
            .absolute_timeout(Duration::from_secs(12 * 3600))
            .renew_after(Duration::from_secs(600))
            .renew_overlap(Duration::from_secs(20))
            .build()
            .unwrap(),
    )
}

/// Promise 3: a late `renew()` on an ID that a periodic renewal retired
/// hops to the successor (`write.rs::rotate`, `Rotated::Retired` within the
/// overlap); when the successor was logged out meanwhile it answers
/// `Rotated::Gone` and the late request gets a removal cookie, which
/// clobbers the cookie of the user who logged in since (the write path in
/// the same situation sets no cookie).
#[tokio::test]
async fn attack_late_renew_on_a_retired_id_removes_the_next_users_cookie() {
    let _one = GATED.lock().await;
    let h = renewing();
    let app = gated_routes(&h.layer);
    let old = session_cookie(&send(&app, req("POST", "/login/alice", None)).await).unwrap();
    h.clock.advance(Duration::from_secs(600));
    let late = start_gated(&app, "/renew-wait", &old).await;
    // Another tab: the periodic renewal, then a logout, then bob logs in.
    let successor = session_cookie(&send(&app, req("GET", "/read", Some(&old))).await).expect("periodic renewal");
    assert!(is_removal(&send(&app, req("POST", "/logout", Some(&successor))).await));
    let bob = session_cookie(&send(&app, req("POST", "/login/bob", None)).await).unwrap();
    gate().1.notify_one();
    let res = late.await.unwrap();
    assert!(no_cookie(&res), "the late renewal on the retired ID set {:?}", set_cookies(&res));
    assert_eq!(body(send(&app, req("GET", "/me", Some(&bob))).await).await, "bob");
}

/// Promise 3, through an alias: a write presented with the old ID within
/// the overlap is held; the successor is logged out and bob logs in; the
/// alias write's commit (`write.rs::apply`, lookup of the successor = None)
/// answers with a removal cookie.
#[tokio::test]
async fn attack_late_alias_write_removes_the_next_users_cookie() {
    let _one = GATED.lock().await;
    let h = renewing();
    let app = gated_routes(&h.layer);
    let old = session_cookie(&send(&app, req("POST", "/login/alice", None)).await).unwrap();
    h.clock.advance(Duration::from_secs(600));
    let successor = session_cookie(&send(&app, req("GET", "/read", Some(&old))).await).expect("periodic renewal");
    // A tab still on the old ID writes within the overlap (an alias)...
    let late = start_gated(&app, "/set-wait/x", &old).await;
    // ...while the user logs out and bob logs in.
    assert!(is_removal(&send(&app, req("POST", "/logout", Some(&successor))).await));
    let bob = session_cookie(&send(&app, req("POST", "/login/bob", None)).await).unwrap();
    gate().1.notify_one();
    let res = late.await.unwrap();
    assert!(no_cookie(&res), "the late alias write on the retired ID set {:?}", set_cookies(&res));
    assert_eq!(body(send(&app, req("GET", "/me", Some(&bob))).await).await, "bob");
}

// ------------------------------------------------------------------ stores
//
// "log out other devices" (`delete_user`) and `revoke` (`delete_by_handle`)
// racing a rotation of one of the revoked sessions: the rotation moves the
// session to a key the revocation did not list, which it must follow.

mod stores {
    use std::sync::Arc;

    use sessionware::{
        store::{
            Auth, ChangeSet, MemoryStore, Metadata, Record, Rotated, Rotation, SessionStore, StorageKey, UserIndex,
        },
        Clock, SessionId, SystemClock,
    };

    const MINUTE: u64 = 60_000;

    pub(crate) fn key() -> StorageKey {
        SessionId::generate().unwrap().storage_key()
    }

    pub(crate) fn record_of(user: &str, now: u64) -> Record {
        let mut meta = Metadata::new(now, 30 * MINUTE, 120 * MINUTE);
        meta.auth = Some(Auth::new(user, now));
        Record::new(meta)
    }

    pub(crate) fn rotation(now: u64) -> Rotation {
        Rotation::new(now, ChangeSet::new(now, now + 30 * MINUTE))
    }

    /// Two sessions of `user` (A kept, B revoked); `delete_user` runs while
    /// `rotate(B -> B2)` runs. Returns true when B2 is live afterwards (the
    /// revoked session survived under a new key).
    #[cfg(feature = "redis")]
    pub(crate) async fn revoke_others_vs_rotate<S: UserIndex + Clone>(store: &S, user: &str, yields: usize) -> bool {
        let now = SystemClock.now_ms();
        let (a, b, b2) = (key(), key(), key());
        let ra = record_of(user, now);
        let keep: sessionware::SessionHandle = ra.meta.handle;
        assert!(store.create(&a, &ra, SystemClock.now_ms()).await.unwrap());
        assert!(store.create(&b, &record_of(user, now), SystemClock.now_ms()).await.unwrap());
        let s1 = store.clone();
        let u = user.to_string();
        let revoke = tokio::spawn(async move { s1.delete_user(&u, Some(&keep), now).await.unwrap() });
        let s2 = store.clone();
        let rot = tokio::spawn(async move {
            for _ in 0..yields {
                tokio::task::yield_now().await;
            }
            s2.rotate(&b, &b2, &rotation(now)).await.unwrap()
        });
        let _ = revoke.await.unwrap();
        let rotated = rot.await.unwrap();
        rotated == Rotated::Done && store.load(&b2, SystemClock.now_ms()).await.unwrap().is_some()
    }

    /// The memory store: `scan_user` snapshots the index, then visits each
    /// key; a rotation in between is missed. Threads, not tasks: the store
    /// never awaits.
    #[test]
    fn attack_memory_revoke_others_racing_a_rotation_leaves_the_session_alive() {
        let store = MemoryStore::default();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let mut survived = 0;
        for i in 0..5_000 {
            let user = format!("u{i}");
            let now = SystemClock.now_ms();
            let (a, b, b2) = (key(), key(), key());
            let ra = record_of(&user, now);
            let keep = ra.meta.handle;
            rt.block_on(async {
                assert!(store.create(&a, &ra, now).await.unwrap());
                assert!(store.create(&b, &record_of(&user, now), now).await.unwrap());
            });
            let barrier = Arc::new(std::sync::Barrier::new(2));
            let (s1, b1, u1) = (store.clone(), barrier.clone(), user.clone());
            let t1 = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
                b1.wait();
                rt.block_on(s1.delete_user(&u1, Some(&keep), now)).unwrap()
            });
            let (s2, b2c) = (store.clone(), barrier.clone());
            let t2 = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
                b2c.wait();
                rt.block_on(s2.rotate(&b, &b2, &rotation(now))).unwrap()
            });
            let _ = t1.join().unwrap();
            let rotated = t2.join().unwrap();
            if rotated == Rotated::Done && rt.block_on(store.load(&b2, now)).unwrap().is_some() {
                survived += 1;
            }
        }
        assert_eq!(survived, 0, "revoke_others left {survived} rotated sessions alive (memory store)");
    }

    /// The memory store indexes the successor before the rotation; a
    /// listing (`sessions()`, or a `revoke` of another device) that visits
    /// the new key before the rotation lands finds no live record there and
    /// unindexes it for good: the session is then never listed, and
    /// `revoke_others` can no longer end it.
    #[test]
    fn attack_memory_listing_racing_a_rotation_unindexes_the_session_for_good() {
        let store = MemoryStore::default();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let mut lost = 0;
        for i in 0..15_000 {
            let user = format!("u{i}");
            let now = SystemClock.now_ms();
            let (b, b2) = (key(), key());
            rt.block_on(async { assert!(store.create(&b, &record_of(&user, now), now).await.unwrap()) });
            let barrier = Arc::new(std::sync::Barrier::new(2));
            let (s1, b1, u1) = (store.clone(), barrier.clone(), user.clone());
            let t1 = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
                b1.wait();
                rt.block_on(s1.list_user(&u1, now, usize::MAX)).unwrap()
            });
            let (s2, b2c) = (store.clone(), barrier.clone());
            let t2 = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
                b2c.wait();
                rt.block_on(s2.rotate(&b, &b2, &rotation(now))).unwrap()
            });
            let _ = t1.join().unwrap();
            assert_eq!(t2.join().unwrap(), Rotated::Done);
            let listed = rt.block_on(store.list_user(&user, now, usize::MAX)).unwrap().len();
            let revoked = rt.block_on(store.delete_user(&user, None, now)).unwrap();
            if listed == 0 || revoked == 0 || rt.block_on(store.load(&b2, now)).unwrap().is_some() {
                lost += 1;
            }
        }
        assert_eq!(lost, 0, "{lost} live sessions were dropped from their user's index (unlisted, unrevocable)");
    }

    /// The SQL store deletes an expired retired row's successor: `delete`
    /// follows pointers whatever their `until` (`delete_returning` has no
    /// expiry condition), so an old ID ends the current session for as long
    /// as the retired row is not cleaned up.
    #[cfg(feature = "postgres")]
    #[tokio::test]
    async fn attack_postgres_delete_follows_an_expired_retired_pointer() {
        let Some(store) = pg().await else { return };
        let now = SystemClock.now_ms();
        let (old, new) = (key(), key());
        assert!(store.create(&old, &record_of("victim", now), now).await.unwrap());
        assert_eq!(store.rotate(&old, &new, &rotation(now)).await.unwrap(), Rotated::Done);
        let later = now + 600_000;
        assert!(store.lookup(&old, later).await.unwrap().is_none(), "the pointer is expired: an unknown ID");
        store.delete(&old, later).await.unwrap();
        let alive = store.load(&new, now).await.unwrap().is_some();
        drop_pg(&store).await;
        assert!(alive, "a delete through an expired retired ID ended its successor");
    }

    /// PostgreSQL, deterministic: a third connection holds B's row lock so
    /// that the rotation and then `delete_user` queue behind it; the
    /// rotation commits first, the DELETE re-checks B (now a retired row,
    /// user_id NULL) and never sees B2 (inserted after its snapshot).
    #[cfg(feature = "postgres")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn attack_postgres_revoke_others_racing_a_rotation_leaves_the_session_alive() {
        use sqlx::Connection;
        let Some(store) = pg().await else { return };
        let now = SystemClock.now_ms();
        let (a, b, b2) = (key(), key(), key());
        let ra = record_of("alice", now);
        let keep = ra.meta.handle;
        assert!(store.create(&a, &ra, SystemClock.now_ms()).await.unwrap());
        assert!(store.create(&b, &record_of("alice", now), SystemClock.now_ms()).await.unwrap());
        let mut blocker = sqlx::postgres::PgConnection::connect(&pg_url()).await.unwrap();
        let mut tx = blocker.begin().await.unwrap();
        sqlx::query(&format!("SELECT 1 FROM \"{}\" WHERE id = $1 FOR UPDATE", store.table()))
            .bind(b.as_bytes().as_slice())
            .execute(&mut *tx)
            .await
            .unwrap();
        let s = store.clone();
        let rot = tokio::spawn(async move { s.rotate(&b, &b2, &rotation(now)).await.unwrap() });
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let s = store.clone();
        let revoke =
            tokio::spawn(async move { s.delete_user("alice", Some(&keep), SystemClock.now_ms()).await.unwrap() });
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        tx.commit().await.unwrap();
        let rotated = rot.await.unwrap();
        let revoked = revoke.await.unwrap();
        let alive = store.load(&b2, SystemClock.now_ms()).await.unwrap().is_some();
        let listed = store.list_user("alice", SystemClock.now_ms(), usize::MAX).await.unwrap().len();
        drop_pg(&store).await;
        assert_eq!(rotated, Rotated::Done);
        assert!(
            !alive,
            "revoke_others returned {revoked} and the rotated session survives ({listed} sessions of alice listed)"
        );
    }

    /// Redis: `delete_user` reads the members (HGETALL), then ends them; a
    /// rotation in between leaves a pointer under the listed key, which the
    /// revocation must follow to the renewed session (it once `DEL`ed the
    /// pointer and left the session alive).
    #[cfg(feature = "redis")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn attack_redis_revoke_others_racing_a_rotation_leaves_the_session_alive() {
        let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let store = match sessionware::store::RedisStore::connect(&url).await {
            Ok(store) => store,
            Err(e) => {
                super::store_fixtures::skip_or_fail("redis", "attack", &url, &e.to_string());
                return;
            }
        };
        let prefix = format!("sw-attack-{}-{:x}:", std::process::id(), rand::random::<u64>());
        let store = store.with_prefix(&prefix).unwrap();
        let mut survived = 0;
        for i in 0..300 {
            if revoke_others_vs_rotate(&store, &format!("u{i}"), i % 7).await {
                survived += 1;
            }
        }
        super::drop_redis_prefix(&url, &prefix).await;
        assert_eq!(survived, 0, "revoke_others left {survived}/300 rotated sessions alive (redis)");
    }

    #[cfg(feature = "postgres")]
    fn pg_url() -> String {
        std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
    }

    #[cfg(feature = "postgres")]
    async fn pg() -> Option<sessionware::store::SqlStore> {
        match sessionware::store::SqlStore::postgres(&pg_url()).await {
            Ok(store) => {
                let store = store.with_table(&super::store_fixtures::unique("sw_attack")).unwrap();
                store.migrate().await.unwrap();
                Some(store)
            }
            Err(e) => {
                super::store_fixtures::skip_or_fail("postgres", "attack", &pg_url(), &e.to_string());
                None
            }
        }
    }

    #[cfg(feature = "postgres")]
    async fn drop_pg(store: &sessionware::store::SqlStore) {
        super::store_fixtures::drop_postgres_tables(store).await;
    }
}

#[path = "common/store_fixtures.rs"]
mod store_fixtures;
#[cfg(feature = "redis")]
use store_fixtures::drop_redis_prefix;
