//! The per-user session list through the layer on every store (memory, and
//! the real Redis, PostgreSQL, SQLite and MySQL/MariaDB): several devices, revocation by
//! handle (never across users), "log out other devices", logout, renewal;
//! R54: a request that loaded the session before it was ended (logout, or a
//! revocation from another device) cannot bring it back; and R46, the
//! per-user session limit (every store, Redis included).
//!
//! Redis: `REDIS_URL` (default `redis://127.0.0.1:6379`). PostgreSQL:
//! `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`).
//! MySQL/MariaDB: `MYSQL_URL` (default `mysql://root@127.0.0.1:3306/test`).
//! Without a server those tests print `SKIPPED: ...` and pass, unless
//! `SESSIONWARE_REQUIRE_STORES=1`. SQLite uses a file in the temp directory.
#![cfg(any(feature = "redis", feature = "postgres", feature = "sqlite", feature = "mysql"))]

mod common;
#[path = "common/store_fixtures.rs"]
mod store_fixtures;

#[cfg(feature = "redis")]
use store_fixtures::redis_keys;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
use store_fixtures::unique;

use std::{sync::Arc, time::Duration};

use axum::{
    extract::Path,
    http::StatusCode,
    routing::{delete, get, post},
    Json, Router,
};
use common::*;
use sessionware::{
    store::{FullStore, UserIndex},
    Keys, LimitPolicy, ManualClock, Session, SessionConfig, SessionError, SessionHandle, SessionInfo, SessionLayer,
};
use tokio::sync::Notify;

// ------------------------------------------------------------------ fixtures

/// One store on a server, database or file of its own (a unique Redis prefix,
/// a unique table), cleaned up by [`Fixture::cleanup`].
#[derive(Clone)]
struct Fixture {
    name: &'static str,
    store: Arc<dyn FullStore>,
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    Memory(sessionware::store::MemoryStore),
    #[cfg(feature = "redis")]
    Redis {
        url: String,
        prefix: String,
        store: sessionware::store::RedisStore,
    },
    #[cfg(feature = "postgres")]
    Postgres(sessionware::store::SqlStore),
    #[cfg(feature = "sqlite")]
    Sqlite(sessionware::store::SqlStore, std::path::PathBuf),
    #[cfg(feature = "mysql")]
    Mysql(sessionware::store::SqlStore),
}

fn skip_or_fail(what: &str, host: &str, err: &str) {
    store_fixtures::skip_or_fail(what, "session-list tests", host, err);
}

impl Fixture {
    fn memory() -> Self {
        let store = sessionware::store::MemoryStore::default();
        Self { name: "memory", store: Arc::new(store.clone()), kind: Kind::Memory(store) }
    }

    #[cfg(feature = "redis")]
    async fn redis() -> Option<Self> {
        let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let host = url.rsplit('@').next().unwrap_or_default().to_string();
        let prefix = format!("sw-list-{}-{:x}:", std::process::id(), rand::random::<u64>());
        let probe = async {
            let client = redis::Client::open(url.as_str()).map_err(|e| e.to_string())?;
            // One quick attempt first, without the connection manager's retries.
            match tokio::time::timeout(Duration::from_secs(2), client.get_multiplexed_async_connection()).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(e.to_string()),
                Err(_) => return Err("connection timed out".to_string()),
            }
            sessionware::store::RedisStore::connect(&url).await.map_err(|e| e.to_string())
        };
        match probe.await {
            Ok(store) => {
                let store = store.with_prefix(&prefix).expect("valid prefix");
                Some(Self { name: "redis", store: Arc::new(store.clone()), kind: Kind::Redis { url, prefix, store } })
            }
            Err(e) => {
                skip_or_fail("redis", &host, &e);
                None
            }
        }
    }

    #[cfg(feature = "postgres")]
    async fn postgres() -> Option<Self> {
        use sqlx::Connection;
        let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let host = url.rsplit('@').next().unwrap_or_default().to_string();
        let probe = async {
            // One quick attempt first, without the pool's retries.
            match tokio::time::timeout(Duration::from_secs(3), sqlx::postgres::PgConnection::connect(&url)).await {
                Ok(Ok(conn)) => {
                    let _ = conn.close().await;
                }
                Ok(Err(e)) => return Err(e.to_string()),
                Err(_) => return Err("connection timed out".to_string()),
            }
            sessionware::store::SqlStore::postgres(&url).await.map_err(|e| e.to_string())
        };
        match probe.await {
            Ok(store) => {
                let store = store.with_table(&unique("sw_list")).expect("table name");
                store.migrate().await.expect("migrate");
                Some(Self { name: "postgres", store: Arc::new(store.clone()), kind: Kind::Postgres(store) })
            }
            Err(e) => {
                skip_or_fail("postgres", &host, &e);
                None
            }
        }
    }

    #[cfg(feature = "mysql")]
    async fn mysql() -> Option<Self> {
        match store_fixtures::mysql_store("sw_list").await {
            Ok(store) => Some(Self { name: "mysql", store: Arc::new(store.clone()), kind: Kind::Mysql(store) }),
            Err(e) => {
                skip_or_fail("mysql", &store_fixtures::mysql_host(), &e);
                None
            }
        }
    }

    #[cfg(feature = "sqlite")]
    async fn sqlite() -> Self {
        let path = std::env::temp_dir().join(format!("{}.db", unique("sessionware-list")));
        let store = sessionware::store::SqlStore::sqlite(path.to_str().expect("utf-8 temp dir"))
            .await
            .expect("open sqlite")
            .with_table(&unique("sw_list"))
            .expect("table name");
        store.migrate().await.expect("migrate");
        Self { name: "sqlite", store: Arc::new(store.clone()), kind: Kind::Sqlite(store, path) }
    }

    /// How many live sessions the store holds (user indexes, leases and the
    /// retired pointers that renewals leave for a while not counted).
    async fn session_records(&self) -> usize {
        let keys: Vec<sessionware::store::StorageKey> = match &self.kind {
            Kind::Memory(store) => store.keys(),
            #[cfg(feature = "redis")]
            Kind::Redis { url, prefix, .. } => redis_keys(url, prefix)
                .await
                .iter()
                .filter_map(|k| k.strip_prefix(prefix.as_str()))
                .filter_map(|r| r.strip_prefix('{').and_then(|r| r.strip_suffix('}')))
                .filter_map(sessionware::store::StorageKey::from_hex)
                .collect(),
            #[cfg(feature = "postgres")]
            Kind::Postgres(store) => {
                let sql = format!("SELECT id FROM \"{}\"", store.table());
                let ids: Vec<Vec<u8>> =
                    sqlx::query_scalar(&sql).fetch_all(store.postgres_pool().expect("pg")).await.expect("ids");
                ids.into_iter()
                    .filter_map(|id| Some(sessionware::store::StorageKey::from_bytes(id.try_into().ok()?)))
                    .collect()
            }
            #[cfg(feature = "mysql")]
            Kind::Mysql(store) => {
                let sql = format!("SELECT id FROM `{}`", store.table());
                let ids: Vec<Vec<u8>> =
                    sqlx::query_scalar(&sql).fetch_all(store.mysql_pool().expect("mysql")).await.expect("ids");
                ids.into_iter()
                    .filter_map(|id| Some(sessionware::store::StorageKey::from_bytes(id.try_into().ok()?)))
                    .collect()
            }
            #[cfg(feature = "sqlite")]
            Kind::Sqlite(store, _) => {
                let sql = format!("SELECT id FROM \"{}\"", store.table());
                let ids: Vec<Vec<u8>> =
                    sqlx::query_scalar(&sql).fetch_all(store.sqlite_pool().expect("lite")).await.expect("ids");
                ids.into_iter()
                    .filter_map(|id| Some(sessionware::store::StorageKey::from_bytes(id.try_into().ok()?)))
                    .collect()
            }
        };
        let mut live = 0;
        for key in keys {
            if self.store.load(&key, SystemClock.now_ms()).await.expect("load").is_some() {
                live += 1;
            }
        }
        live
    }

    async fn cleanup(&self) {
        match &self.kind {
            Kind::Memory(_) => {}
            #[cfg(feature = "redis")]
            Kind::Redis { url, prefix, .. } => store_fixtures::drop_redis_prefix(url, prefix).await,
            #[cfg(feature = "postgres")]
            Kind::Postgres(store) => store_fixtures::drop_postgres_tables(store).await,
            #[cfg(feature = "sqlite")]
            Kind::Sqlite(store, path) => store_fixtures::remove_sqlite(&[store], path).await,
            #[cfg(feature = "mysql")]
            Kind::Mysql(store) => store_fixtures::drop_mysql_tables(store).await,
        }
    }

    /// Runs `scenario` on a task of its own, cleans up whatever happened, then
    /// re-raises a failure.
    async fn run<F, Fut>(self, scenario: F)
    where
        F: FnOnce(Fixture) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let outcome = tokio::spawn(scenario(self.clone())).await;
        let records = self.session_records().await;
        self.cleanup().await;
        if let Err(e) = outcome {
            std::panic::resume_unwind(e.into_panic());
        }
        assert_eq!(records, 0, "every scenario logs its sessions out");
    }
}

// ------------------------------------------------------------------ the app

async fn list(session: Session) -> Result<Json<Vec<SessionInfo>>, SessionError> {
    Ok(Json(session.sessions().await?))
}

async fn revoke(session: Session, Path(h): Path<String>) -> Result<StatusCode, SessionError> {
    let Some(h) = SessionHandle::parse(&h) else { return Ok(StatusCode::NOT_FOUND) };
    Ok(if session.revoke(&h).await? { StatusCode::NO_CONTENT } else { StatusCode::NOT_FOUND })
}

async fn others(session: Session) -> Result<String, SessionError> {
    Ok(session.revoke_others().await?.to_string())
}

/// Two gates for a handler that pauses between reading and writing.
#[derive(Default)]
struct Gate {
    loaded: Notify,
    release: Notify,
}

fn app(store: Arc<dyn FullStore>, gate: Arc<Gate>) -> Router {
    // Reads the session, waits to be released, then writes to it.
    let writer = Arc::clone(&gate);
    let slow_write = move |session: Session| async move {
        let n: u64 = session.get("n").await?.unwrap_or(0);
        writer.loaded.notify_one();
        writer.release.notified().await;
        session.insert("n", n + 1).await?;
        Ok::<_, SessionError>((n + 1).to_string())
    };
    // Takes the session's lease, holds it until released, then writes.
    let held = Arc::clone(&gate);
    let hold_lock = move |session: Session| async move {
        session.lock().await?;
        held.loaded.notify_one();
        held.release.notified().await;
        session.insert("held", true).await
    };
    Router::new()
        .route("/hold-lock", post(hold_lock))
        .route("/sessions", get(list))
        .route("/sessions/{h}", delete(revoke))
        .route("/others", post(others))
        .route("/slow-write", post(slow_write))
        .merge(common::handlers::routes())
        .layer(SessionLayer::new(store, Keys::generate().expect("keys")))
}

fn with_agent(mut r: http::Request<axum::body::Body>, ua: &str) -> http::Request<axum::body::Body> {
    r.headers_mut().insert(http::header::USER_AGENT, ua.parse().expect("header"));
    r
}

async fn list_of(app: &Router, cookie: &str) -> Vec<serde_json::Value> {
    let res = send(app, req("GET", "/sessions", Some(cookie))).await;
    assert_eq!(res.status(), StatusCode::OK);
    serde_json::from_str(&body(res).await).expect("json")
}

async fn login(app: &Router, user: &str, ua: &str) -> String {
    let res = send(app, with_agent(req("POST", &format!("/login/{user}"), None), ua)).await;
    assert_eq!(res.status(), StatusCode::OK);
    session_cookie(&res).expect("a session cookie")
}

async fn me(app: &Router, cookie: &str) -> (StatusCode, String) {
    let res = send(app, req("GET", "/me", Some(cookie))).await;
    (res.status(), body(res).await)
}

fn alice() -> (StatusCode, String) {
    (StatusCode::OK, "alice".into())
}

fn anonymous() -> (StatusCode, String) {
    (StatusCode::UNAUTHORIZED, String::new())
}

// ----------------------------------------------------------------- scenarios

/// Devices, revocation, logout of the others, logout, renewal.
async fn devices_and_revocation(fx: Fixture) {
    let (name, store) = (fx.name, fx.store);
    let app = app(Arc::clone(&store), Arc::default());
    let mut alice_devices = Vec::new();
    for ua in ["Firefox", "Chrome", "Phone"] {
        alice_devices.push(login(&app, "alice", ua).await);
    }
    let bob = login(&app, "bob", "Bob's laptop").await;

    let list = list_of(&app, &alice_devices[0]).await;
    assert_eq!(list.len(), 3, "{name}: {list:?}");
    let current: Vec<_> = list.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1, "{name}: exactly one current session");
    assert_eq!(current[0]["user_agent"], "Firefox", "{name}: the current one is this device");
    let mut handles: Vec<&str> = list.iter().map(|s| s["handle"].as_str().expect("handle")).collect();
    handles.sort_unstable();
    handles.dedup();
    assert_eq!(handles.len(), 3, "{name}: distinct handles");
    assert_eq!(store.list_user("alice", SystemClock.now_ms(), usize::MAX).await.expect("list").len(), 3);
    let bobs = list_of(&app, &bob).await;
    assert_eq!(bobs.len(), 1, "{name}: bob sees only his own session");

    // Bob cannot revoke Alice's phone by its handle.
    let phone = list.iter().find(|s| s["user_agent"] == "Phone").expect("phone")["handle"]
        .as_str()
        .expect("handle")
        .to_string();
    let res = send(&app, req("DELETE", &format!("/sessions/{phone}"), Some(&bob))).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND, "{name}: bob revoked alice's session");
    assert_eq!(me(&app, &alice_devices[2]).await, alice(), "{name}");
    assert_eq!(list_of(&app, &alice_devices[0]).await.len(), 3, "{name}");

    // Alice can.
    let res = send(&app, req("DELETE", &format!("/sessions/{phone}"), Some(&alice_devices[0]))).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT, "{name}");
    assert_eq!(me(&app, &alice_devices[2]).await, anonymous(), "{name}: the revoked phone is logged out");
    let list = list_of(&app, &alice_devices[0]).await;
    assert_eq!(list.len(), 2, "{name}");
    assert!(list.iter().all(|s| s["handle"] != phone.as_str()), "{name}: the revoked handle is gone");
    // A second revocation of the same handle finds nothing.
    let res = send(&app, req("DELETE", &format!("/sessions/{phone}"), Some(&alice_devices[0]))).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND, "{name}");

    // Log out the other devices: only the current one stays.
    let res = send(&app, req("POST", "/others", Some(&alice_devices[0]))).await;
    assert_eq!(body(res).await, "1", "{name}: one other session ended");
    assert_eq!(me(&app, &alice_devices[1]).await, anonymous(), "{name}");
    assert_eq!(me(&app, &alice_devices[0]).await, alice(), "{name}");
    assert_eq!(me(&app, &bob).await, (StatusCode::OK, "bob".into()), "{name}: bob is untouched");
    let list = list_of(&app, &alice_devices[0]).await;
    assert_eq!(list.len(), 1, "{name}");
    assert_eq!(list[0]["current"], true, "{name}");

    // Logout removes the session from the list.
    let tablet = login(&app, "alice", "Tablet").await;
    assert_eq!(list_of(&app, &tablet).await.len(), 2, "{name}");
    let res = send(&app, req("POST", "/logout", Some(&alice_devices[0]))).await;
    assert_eq!(res.status(), StatusCode::OK, "{name}");
    let list = list_of(&app, &tablet).await;
    assert_eq!(list.len(), 1, "{name}: the logged-out session is listed no more");
    assert_eq!((list[0]["current"].clone(), list[0]["user_agent"].clone()), (true.into(), "Tablet".into()));

    // A renewed session appears once, under its new cookie only.
    let laptop = login(&app, "alice", "Laptop").await;
    let renewed = session_cookie(&send(&app, req("POST", "/renew", Some(&tablet))).await).expect("a new cookie");
    assert_ne!(renewed, tablet, "{name}");
    assert_eq!(me(&app, &tablet).await, anonymous(), "{name}: the pre-renewal cookie is dead");
    let list = list_of(&app, &renewed).await;
    assert_eq!(list.len(), 2, "{name}: renewal replaces, never duplicates: {list:?}");
    let current: Vec<_> = list.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1, "{name}");
    assert_eq!(current[0]["user_agent"], "Tablet", "{name}");
    assert_eq!(list_of(&app, &laptop).await.len(), 2, "{name}");
    assert_eq!(store.list_user("alice", SystemClock.now_ms(), usize::MAX).await.expect("list").len(), 2, "{name}");

    // Revoking the current session by its own handle logs this device out.
    let own = current[0]["handle"].as_str().expect("handle").to_string();
    let res = send(&app, req("DELETE", &format!("/sessions/{own}"), Some(&renewed))).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT, "{name}");
    let cookies = set_cookies(&res);
    assert!(cookies.len() == 1 && cookies[0].value().is_empty(), "{name}: a removal cookie: {cookies:?}");
    assert_eq!(me(&app, &renewed).await, anonymous(), "{name}");
    assert_eq!(list_of(&app, &laptop).await.len(), 1, "{name}");

    for cookie in [&laptop, &bob] {
        send(&app, req("POST", "/logout", Some(cookie))).await;
    }
    assert!(store.list_user("alice", SystemClock.now_ms(), usize::MAX).await.expect("list").is_empty(), "{name}");
    assert!(store.list_user("bob", SystemClock.now_ms(), usize::MAX).await.expect("list").is_empty(), "{name}");
}

/// R54: request A loads the session, B ends it (logout, or "log out other
/// devices" from another device), then A writes: nothing comes back.
async fn no_resurrection(fx: Fixture) {
    let (name, store) = (fx.name, Arc::clone(&fx.store));
    let gate = Arc::new(Gate::default());
    let app = app(Arc::clone(&store), Arc::clone(&gate));
    for ender in ["logout", "others", "anonymous logout"] {
        let cookie = if ender == "anonymous logout" {
            session_cookie(&send(&app, req("POST", "/incr", None)).await).expect("a session cookie")
        } else {
            let c = login(&app, "dave", "Old phone").await;
            assert_eq!(body(send(&app, req("POST", "/incr", Some(&c))).await).await, "1");
            c
        };
        let other_device = if ender == "others" { Some(login(&app, "dave", "New phone").await) } else { None };
        let others = usize::from(other_device.is_some());
        assert_eq!(fx.session_records().await, 1 + others, "{name}/{ender}");

        // A: loaded, then paused.
        let a = tokio::spawn({
            let app = app.clone();
            let cookie = cookie.clone();
            async move { send(&app, req("POST", "/slow-write", Some(&cookie))).await }
        });
        tokio::time::timeout(Duration::from_secs(10), gate.loaded.notified()).await.expect("A loaded the session");

        // B ends the session.
        let res = match &other_device {
            Some(device) => send(&app, req("POST", "/others", Some(device))).await,
            None => send(&app, req("POST", "/logout", Some(&cookie))).await,
        };
        assert_eq!(res.status(), StatusCode::OK, "{name}/{ender}");
        assert_eq!(fx.session_records().await, others, "{name}/{ender}: the session was not ended");

        // A writes after the end.
        gate.release.notify_one();
        let res = tokio::time::timeout(Duration::from_secs(10), a).await.expect("A finished").expect("task");
        assert_eq!(res.status(), StatusCode::OK, "{name}/{ender}");
        // A's write found no session (the store refused to merge it), so A
        // answers with a removal cookie and no new session.
        let cookies = set_cookies(&res);
        assert!(cookies.len() == 1 && cookies[0].value().is_empty(), "{name}/{ender}: {cookies:?}");
        assert_eq!(me(&app, &cookie).await, anonymous(), "{name}/{ender}: the old cookie is anonymous");
        assert_eq!(body(send(&app, req("GET", "/read", Some(&cookie))).await).await, "none", "{name}/{ender}");
        assert_eq!(fx.session_records().await, others, "{name}/{ender}: the ended session came back");

        if let Some(device) = other_device {
            assert_eq!(me(&app, &device).await, (StatusCode::OK, "dave".into()), "{name}/{ender}");
            send(&app, req("POST", "/logout", Some(&device))).await;
        }
        assert!(
            store.list_user("dave", SystemClock.now_ms(), usize::MAX).await.expect("list").is_empty(),
            "{name}/{ender}"
        );
    }
}

/// R46 through the layer, with a limit of 2: evicting, the third login
/// signs the first session out; refusing, it is a 409 and the first two
/// stay; ten logins whose handlers return together (a barrier) leave two
/// sessions either way.
async fn session_limit(fx: Fixture) {
    const N: usize = 10;
    let (name, store) = (fx.name, Arc::clone(&fx.store));
    for policy in [LimitPolicy::EvictLeastRecent, LimitPolicy::RefuseNew] {
        let what = format!("{name}/{policy:?}");
        let user = format!("limit-{policy:?}");
        let clock = ManualClock::new(SystemClock.now_ms());
        let config = SessionConfig::builder().max_sessions_per_user(2, policy).build().expect("config");
        let layer = SessionLayer::new(Arc::clone(&store), Keys::generate().expect("keys"))
            .with_config(config)
            .with_clock(clock.clone());
        let app = login_together(N).merge(common::handlers::routes()).layer(layer);
        let signed_in = |cookie: String| {
            let app = app.clone();
            let user = user.clone();
            async move { me(&app, &cookie).await == (StatusCode::OK, user) }
        };

        let first = login(&app, &user, "Phone").await;
        clock.advance(Duration::from_secs(1));
        let second = login(&app, &user, "Laptop").await;
        clock.advance(Duration::from_secs(1));
        let res = send(&app, req("POST", &format!("/login/{user}"), None)).await;
        match policy {
            LimitPolicy::RefuseNew => {
                assert_eq!(res.status(), StatusCode::CONFLICT, "{what}: the third login is refused");
                assert!(signed_in(first.clone()).await, "{what}: the first session stays");
            }
            _ => {
                assert_eq!(res.status(), StatusCode::OK, "{what}");
                assert!(signed_in(session_cookie(&res).expect("a cookie")).await, "{what}");
                assert_eq!(me(&app, &first).await, anonymous(), "{what}: the first cookie is anonymous");
            }
        }
        assert!(signed_in(second).await, "{what}: the second session stays");
        store.delete_user(&user, None, clock.now_ms()).await.expect("delete_user");

        let tasks: Vec<_> = (0..N)
            .map(|_| {
                let (app, uri) = (app.clone(), format!("/login-together/{user}"));
                tokio::spawn(async move { send(&app, req("POST", &uri, None)).await })
            })
            .collect();
        let mut cookies = Vec::new();
        for task in tasks {
            let res = task.await.expect("task");
            match res.status() {
                StatusCode::OK => cookies.push(session_cookie(&res).expect("a cookie")),
                StatusCode::CONFLICT => assert_eq!(policy, LimitPolicy::RefuseNew, "{what}"),
                other => panic!("{what}: a login answered {other}"),
            }
        }
        let mut live = 0;
        for cookie in cookies {
            live += usize::from(signed_in(cookie).await);
        }
        assert_eq!(live, 2, "{what}: {N} parallel logins under a limit of 2 leave 2 sessions");
        let listed = store.list_user(&user, clock.now_ms(), usize::MAX).await.expect("list_user");
        assert_eq!(listed.len(), 2, "{what}");
        store.delete_user(&user, None, clock.now_ms()).await.expect("delete_user");
    }
}

/// Redis: the TTLs of the session hash, the user index and the lease follow
/// the session's deadlines and the lease, through the layer.
#[cfg(feature = "redis")]
async fn redis_ttls(fx: Fixture) {
    let Kind::Redis { url, prefix, store: redis_store } = &fx.kind else { unreachable!() };
    let gate = Arc::new(Gate::default());
    let app = app(Arc::clone(&fx.store), Arc::clone(&gate));
    let client = redis::Client::open(url.as_str()).expect("url");
    let mut conn = client.get_multiplexed_async_connection().await.expect("connect");
    let pexpiretime = |key: String| {
        let mut conn = conn.clone();
        async move { redis::cmd("PEXPIRETIME").arg(key).query_async::<i64>(&mut conn).await.expect("pexpiretime") }
    };

    let cookie = login(&app, "erin", "Desk").await;
    let listed = fx.store.list_user("erin", SystemClock.now_ms(), usize::MAX).await.expect("list");
    assert_eq!(listed.len(), 1);
    let session_keys: Vec<String> = redis_keys(url, prefix)
        .await
        .into_iter()
        .filter(|k| k.strip_prefix(prefix.as_str()).is_some_and(|r| r.starts_with('{') && r.ends_with('}')))
        .collect();
    assert_eq!(session_keys.len(), 1);
    // TTLs are counted from the request's time: the server's expiry time
    // matches the deadline within the time the requests took.
    let near = |at: i64, t: u64| (at - i64::try_from(t).expect("fits")).abs() < 2_000;
    let at = pexpiretime(session_keys[0].clone()).await;
    assert!(near(at, listed[0].expires_at), "session TTL = expires_at ({at} vs {})", listed[0].expires_at);
    let at = pexpiretime(redis_store.user_index_key("erin")).await;
    assert!(near(at, listed[0].absolute_deadline), "index TTL = the absolute deadline");

    // The lease lives while a request holds the lock, with a TTL of at most
    // `lock_lease` (10 s by default), and is gone once the request answered.
    let lock_key = format!("{}:lock", session_keys[0]);
    let held = tokio::spawn({
        let app = app.clone();
        let cookie = cookie.clone();
        async move { send(&app, req("POST", "/hold-lock", Some(&cookie))).await }
    });
    tokio::time::timeout(Duration::from_secs(10), gate.loaded.notified()).await.expect("the lock was taken");
    let pttl: i64 = redis::cmd("PTTL").arg(&lock_key).query_async(&mut conn).await.expect("pttl");
    assert!(pttl > 0 && pttl <= 10_000, "lease TTL {pttl} ms");
    gate.release.notify_one();
    assert_eq!(held.await.expect("task").status(), StatusCode::OK);
    let exists: i64 = redis::cmd("EXISTS").arg(&lock_key).query_async(&mut conn).await.expect("exists");
    assert_eq!(exists, 0, "the lease is released after the response");

    send(&app, req("POST", "/logout", Some(&cookie))).await;
}

// --------------------------------------------------------------------- tests

/// Token sessions (R76–R79, R50) on the store: each refresh rotates the
/// family's key atomically, a reused refresh token ends the family (the
/// newest token with it), two refreshes racing with one token leave no
/// second branch, and a browser's "sign out other devices" and a token
/// logout end families.
#[cfg(feature = "jwt")]
async fn refresh_family(fx: Fixture) {
    use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
    use sessionware::token::{
        AccessClaims, RefreshError, TokenAlgorithm, TokenIssuer, TokenKey, TokenKeys, TokenSessions,
    };

    let layer = SessionLayer::new(Arc::clone(&fx.store), Keys::generate().expect("keys"));
    let keys = TokenKeys::new([TokenKey::generate("k1", TokenAlgorithm::EdDsa).expect("key")]).expect("ring");
    let tokens = TokenSessions::new(&layer, TokenIssuer::new(keys, "https://auth.test", "api").expect("issuer"))
        .expect("the store has a per-user index");
    let invalid = |r: Result<_, RefreshError>| matches!(r, Err(RefreshError::Invalid));

    // Rotation, then reuse of the first token: the family ends.
    let p1 = tokens.sign_in("alice").await.expect("sign in");
    let p2 = tokens.refresh(&p1.refresh_token).await.expect("refresh 1");
    let p3 = tokens.refresh(&p2.refresh_token).await.expect("refresh 2");
    assert_eq!(p3.sid, p1.sid, "[{}] one family", fx.name);
    assert!(matches!(tokens.refresh(&p1.refresh_token).await, Err(RefreshError::Reused)), "[{}]", fx.name);
    assert!(invalid(tokens.refresh(&p3.refresh_token).await), "[{}] the newest token dies too", fx.name);

    // Two refreshes with one token: exactly one wins, the other is a reuse,
    // and the winner's branch does not survive it.
    let q = tokens.sign_in("alice").await.expect("sign in");
    let (a, b) = tokio::join!(tokens.refresh(&q.refresh_token), tokens.refresh(&q.refresh_token));
    let (wins, reuses): (Vec<_>, Vec<_>) = [a, b].into_iter().partition(Result::is_ok);
    assert_eq!((wins.len(), reuses.len()), (1, 1), "[{}]", fx.name);
    assert!(matches!(reuses[0], Err(RefreshError::Reused)), "[{}]", fx.name);
    let winner = wins.into_iter().next().and_then(Result::ok).expect("one pair");
    assert!(invalid(tokens.refresh(&winner.refresh_token).await), "[{}] no second branch", fx.name);

    // A browser session of the same user signs out its other devices.
    let r = tokens.sign_in("bob").await.expect("sign in");
    let app = Router::new().route("/others", post(others)).merge(common::handlers::routes()).layer(layer.clone());
    let res = send(&app, req("POST", "/login/bob", None)).await;
    let browser = session_cookie(&res).expect("cookie");
    assert_eq!(body(send(&app, req("POST", "/others", Some(&browser))).await).await, "1", "[{}]", fx.name);
    assert!(invalid(tokens.refresh(&r.refresh_token).await), "[{}] revoke_others", fx.name);
    assert!(send(&app, req("POST", "/logout", Some(&browser))).await.status().is_success());

    // A token logout (the access token's claims) ends the family.
    let t = tokens.sign_in("carol").await.expect("sign in");
    let payload = t.access_token.split('.').nth(1).expect("jwt");
    let claims: AccessClaims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("b64")).expect("claims");
    assert!(tokens.logout(&claims).await.expect("logout"), "[{}]", fx.name);
    assert!(invalid(tokens.refresh(&t.refresh_token).await), "[{}] logged out", fx.name);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_lists_and_revokes_a_users_sessions() {
    Fixture::memory().run(devices_and_revocation).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_a_request_that_loaded_before_a_logout_cannot_resurrect() {
    Fixture::memory().run(no_resurrection).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_keeps_the_per_user_session_limit() {
    Fixture::memory().run(session_limit).await;
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_ttls_follow_deadlines_and_leases() {
    let Some(fx) = Fixture::redis().await else { return };
    fx.run(redis_ttls).await;
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_lists_and_revokes_a_users_sessions() {
    let Some(fx) = Fixture::redis().await else { return };
    fx.run(devices_and_revocation).await;
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_keeps_the_per_user_session_limit() {
    let Some(fx) = Fixture::redis().await else { return };
    fx.run(session_limit).await;
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_a_request_that_loaded_before_a_logout_cannot_resurrect() {
    let Some(fx) = Fixture::redis().await else { return };
    fx.run(no_resurrection).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_lists_and_revokes_a_users_sessions() {
    let Some(fx) = Fixture::postgres().await else { return };
    fx.run(devices_and_revocation).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_request_that_loaded_before_a_logout_cannot_resurrect() {
    let Some(fx) = Fixture::postgres().await else { return };
    fx.run(no_resurrection).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_keeps_the_per_user_session_limit() {
    let Some(fx) = Fixture::postgres().await else { return };
    fx.run(session_limit).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_keeps_the_per_user_session_limit() {
    Fixture::sqlite().await.run(session_limit).await;
}

#[cfg(feature = "mysql")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_keeps_the_per_user_session_limit() {
    let Some(fx) = Fixture::mysql().await else { return };
    fx.run(session_limit).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_lists_and_revokes_a_users_sessions() {
    Fixture::sqlite().await.run(devices_and_revocation).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_request_that_loaded_before_a_logout_cannot_resurrect() {
    Fixture::sqlite().await.run(no_resurrection).await;
}

#[cfg(feature = "mysql")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_lists_and_revokes_a_users_sessions() {
    let Some(fx) = Fixture::mysql().await else { return };
    fx.run(devices_and_revocation).await;
}

#[cfg(feature = "mysql")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_a_request_that_loaded_before_a_logout_cannot_resurrect() {
    let Some(fx) = Fixture::mysql().await else { return };
    fx.run(no_resurrection).await;
}

#[cfg(feature = "jwt")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_rotates_refresh_tokens_and_ends_a_reused_family() {
    let fx = Fixture::memory();
    fx.run(refresh_family).await;
}

#[cfg(all(feature = "jwt", feature = "redis"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_rotates_refresh_tokens_and_ends_a_reused_family() {
    let Some(fx) = Fixture::redis().await else { return };
    fx.run(refresh_family).await;
}

#[cfg(all(feature = "jwt", feature = "postgres"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_rotates_refresh_tokens_and_ends_a_reused_family() {
    let Some(fx) = Fixture::postgres().await else { return };
    fx.run(refresh_family).await;
}

#[cfg(all(feature = "jwt", feature = "sqlite"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_rotates_refresh_tokens_and_ends_a_reused_family() {
    let fx = Fixture::sqlite().await;
    fx.run(refresh_family).await;
}

#[cfg(all(feature = "jwt", feature = "mysql"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_rotates_refresh_tokens_and_ends_a_reused_family() {
    let Some(fx) = Fixture::mysql().await else { return };
    fx.run(refresh_family).await;
}
