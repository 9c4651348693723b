//! `RedisStore` on a Redis Cluster: the conformance suite, the slot rules
//! (a session and its lease share a slot; a rotation needs co-located keys;
//! listings and revocations work across nodes), logins racing listings, and
//! locked increments through the layer.
//!
//! The test starts its own cluster from the `redis-server` binary: three
//! primaries, no replicas, on free ports, in a temporary directory, joined
//! with `redis-cli --cluster create`. The processes are killed and the
//! directory removed at the end, on failure too. Without `redis-server` or
//! `redis-cli` the test prints `SKIPPED: ...` and passes, unless
//! `SESSIONWARE_REQUIRE_STORES=1`.
#![cfg(feature = "redis")]

use std::{
    collections::BTreeSet,
    fs,
    io::Write,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    routing::{get, post},
    Router,
};
use http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::value::to_raw_value;
use sessionware::{
    store::{
        conformance, Auth, ChangeSet, Leases, Metadata, Record, RedisStore, Rotated, Rotation, SessionStore, Stored,
        UserIndex,
    },
    Clock, Keys, Session, SessionError, SessionId, SessionLayer, SystemClock,
};
use tower::ServiceExt;

#[path = "common/redis_proc.rs"]
mod redis_proc;

use redis_proc::{query, temp_dir, url};

const NODES: usize = 3;

// ------------------------------------------------------------------ processes

fn tools_or_skip(what: &str) -> Result<(), ()> {
    redis_proc::programs_or_skip(what, &["redis-server", "redis-cli"])
}

fn free_port(taken: &[u16]) -> u16 {
    redis_proc::free_port(taken, true)
}

/// The cluster's processes and directory; dropping it kills the one and
/// removes the other (also when a test panics).
struct Cluster {
    dir: PathBuf,
    nodes: Vec<(u16, Child)>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for (_, child) in &mut self.nodes {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

impl Cluster {
    fn log_tail(&self) -> String {
        let mut out = String::new();
        for (port, _) in &self.nodes {
            let log = fs::read_to_string(self.dir.join(format!("redis-{port}.log"))).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(10).collect();
            out.push_str(&format!("--- node {port}:\n"));
            for l in tail.into_iter().rev() {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }

    /// Starts a node on a free port, retrying elsewhere if the port was taken
    /// meanwhile; returns once it answers `PING`.
    fn start_node(&mut self) {
        for _ in 0..5 {
            let taken: Vec<u16> = self.nodes.iter().map(|(p, _)| *p).collect();
            let port = free_port(&taken);
            let log = fs::File::create(self.dir.join(format!("redis-{port}.log"))).expect("log file");
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--dir"])
                .arg(&self.dir)
                .args(["--cluster-enabled", "yes", "--cluster-config-file"])
                .arg(self.dir.join(format!("nodes-{port}.conf")))
                .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log file"))
                .stderr(log)
                .spawn()
                .expect("spawn redis-server");
            self.nodes.push((port, child));
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                if query::<String>(port, &redis::cmd("PING")).as_deref() == Some("PONG") {
                    return;
                }
                let exited = self.nodes.last_mut().and_then(|(_, c)| c.try_wait().ok().flatten());
                if exited.is_some() || Instant::now() > deadline {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            // Port lost to another process, or no start: try another one.
            if let Some((_, mut child)) = self.nodes.pop() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        panic!("redis-server did not start:\n{}", self.log_tail());
    }

    /// Three primaries joined into one cluster with every slot served.
    fn start() -> Self {
        let mut cluster = Cluster { dir: temp_dir("cluster"), nodes: Vec::new() };
        for _ in 0..NODES {
            cluster.start_node();
        }
        let addrs: Vec<String> = cluster.nodes.iter().map(|(p, _)| format!("127.0.0.1:{p}")).collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            cluster.log_tail()
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while !cluster.ports().into_iter().all(|p| {
            query::<String>(p, redis::cmd("CLUSTER").arg("INFO")).is_some_and(|i| i.contains("cluster_state:ok"))
        }) {
            assert!(Instant::now() < deadline, "cluster_state never became ok:\n{}", cluster.log_tail());
            std::thread::sleep(Duration::from_millis(50));
        }
        cluster
    }

    fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|(p, _)| *p).collect()
    }

    fn urls(&self) -> Vec<String> {
        self.ports().into_iter().map(url).collect()
    }

    fn keyslot(&self, key: &str) -> i64 {
        query(self.ports()[0], redis::cmd("CLUSTER").arg("KEYSLOT").arg(key)).expect("CLUSTER KEYSLOT")
    }

    /// Keys under `prefix` on each node.
    fn keys_per_node(&self, prefix: &str) -> Vec<usize> {
        self.ports()
            .into_iter()
            .map(|p| query::<Vec<String>>(p, redis::cmd("KEYS").arg(format!("{prefix}*"))).expect("KEYS").len())
            .collect()
    }
}

// ------------------------------------------------------------------ helpers

fn user_record(user: &str) -> Record {
    let now = SystemClock.now_ms();
    let mut r = Record::new(Metadata::new(now, 60_000, 3_600_000));
    r.meta.auth = Some(Auth::new(user, now));
    r.data.insert("seed", &to_raw_value(&1).expect("json"));
    r
}

fn fresh_key() -> sessionware::store::StorageKey {
    SessionId::generate().expect("rng").storage_key()
}

async fn send(app: &Router, method: &str, uri: &str, cookie: Option<&str>) -> (StatusCode, Option<String>, String) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(c) = cookie {
        req = req.header(header::COOKIE, c);
    }
    let res = app.clone().oneshot(req.body(axum::body::Body::empty()).expect("request")).await.expect("infallible");
    let status = res.status();
    let cookie = res
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::to_string);
    let body = res.into_body().collect().await.expect("body").to_bytes();
    (status, cookie, String::from_utf8_lossy(&body).into_owned())
}

// ------------------------------------------------------------------ checks

/// A session and its lease share a slot; the user index has its own.
async fn slot_rules(cluster: &Cluster, store: &RedisStore) {
    let key = fresh_key();
    let user = format!("slots-{:x}", rand::random::<u64>());
    assert!(store.create(&key, &user_record(&user), SystemClock.now_ms()).await.expect("create"));
    assert!(store.try_lock(&key, "token", 60_000, SystemClock.now_ms()).await.expect("lock"));
    let session = store.redis_key(&key);
    let lease = format!("{session}:lock");
    assert_eq!(cluster.keyslot(&session), cluster.keyslot(&lease), "a session and its lease share a slot");
    // The index hashes on the user's digest: another slot (but for a 1 in
    // 16384 chance), which is why no script ever touches it and a session.
    let index = store.user_index_key(&user);
    let _ = writeln!(
        std::io::stderr(),
        "slots: session {} lease {} user index {}",
        cluster.keyslot(&session),
        cluster.keyslot(&lease),
        cluster.keyslot(&index)
    );
    store.unlock(&key, "token", SystemClock.now_ms()).await.expect("unlock");
    store.delete(&key, SystemClock.now_ms()).await.expect("delete");
    assert!(store.list_user(&user, SystemClock.now_ms(), usize::MAX).await.expect("list").is_empty());
}

/// `accepts_successor` agrees with the cluster's `CLUSTER KEYSLOT`; a
/// rotation between co-located keys moves the session and leaves the
/// retired pointer in the same slot; one between slots is refused and
/// changes nothing.
async fn rotation_slots(cluster: &Cluster, store: &RedisStore) {
    let old = fresh_key();
    for _ in 0..50 {
        let other = fresh_key();
        let same = cluster.keyslot(&store.redis_key(&old)) == cluster.keyslot(&store.redis_key(&other));
        assert_eq!(store.accepts_successor(&old, &other), same, "accepts_successor follows the key slots");
    }
    let user = format!("rotate-{:x}", rand::random::<u64>());
    let record = user_record(&user);
    assert!(store.create(&old, &record, SystemClock.now_ms()).await.expect("create"));
    let elsewhere = loop {
        let key = fresh_key();
        if !store.accepts_successor(&old, &key) {
            break key;
        }
    };
    let now = SystemClock.now_ms();
    let rotation = Rotation::new(now, ChangeSet::new(now, now + 60_000));
    let err = store.rotate(&old, &elsewhere, &rotation).await.expect_err("keys in two slots");
    assert!(err.to_string().contains("co-located"), "{err}");
    assert!(store.lookup(&elsewhere, SystemClock.now_ms()).await.expect("lookup").is_none(), "nothing is created");
    assert!(store.load(&old, SystemClock.now_ms()).await.expect("load").is_some(), "the old session is untouched");

    let new = loop {
        let key = fresh_key();
        if store.accepts_successor(&old, &key) {
            break key;
        }
    };
    assert_eq!(cluster.keyslot(&store.redis_key(&old)), cluster.keyslot(&store.redis_key(&new)));
    assert_eq!(store.rotate(&old, &new, &rotation).await.expect("rotate"), Rotated::Done);
    assert!(
        matches!(store.lookup(&old, SystemClock.now_ms()).await.expect("lookup"), Some(Stored::Retired(r)) if r.successor == new)
    );
    let listed: Vec<_> = store
        .list_user(&user, SystemClock.now_ms(), usize::MAX)
        .await
        .expect("list")
        .into_iter()
        .map(|m| m.handle)
        .collect();
    assert_eq!(listed, vec![record.meta.handle], "the successor is listed, once");
    store.delete(&old, SystemClock.now_ms()).await.expect("delete");
    assert!(
        store.lookup(&new, SystemClock.now_ms()).await.expect("lookup").is_none(),
        "a delete of the retired key ends the successor"
    );
    assert!(store.list_user(&user, SystemClock.now_ms(), usize::MAX).await.expect("list").is_empty());
}

/// One user's sessions spread over every node: listing, revoking one by
/// handle and all but one work across slots.
async fn user_sessions_across_nodes(cluster: &Cluster, store: &RedisStore) {
    let user = format!("spread-{:x}", rand::random::<u64>());
    let mut made = Vec::new();
    for _ in 0..30 {
        let key = fresh_key();
        let r = user_record(&user);
        assert!(store.create(&key, &r, SystemClock.now_ms()).await.expect("create"));
        made.push((key, r.meta.handle));
    }
    let per_node = cluster.keys_per_node(store.prefix());
    assert!(per_node.iter().all(|n| *n > 0), "sessions on every node: {per_node:?}");
    let listed: BTreeSet<String> = store
        .list_user(&user, SystemClock.now_ms(), usize::MAX)
        .await
        .expect("list")
        .into_iter()
        .map(|m| m.handle.to_string())
        .collect();
    let expected: BTreeSet<String> = made.iter().map(|(_, h)| h.to_string()).collect();
    assert_eq!(listed, expected, "every session of the user is listed, whichever node holds it");

    // Deleted behind the index's back: the listing drops the member.
    store.delete(&made[0].0, SystemClock.now_ms()).await.expect("delete");
    assert_eq!(store.list_user(&user, SystemClock.now_ms(), usize::MAX).await.expect("list").len(), 29);
    let index: Vec<String> = {
        let slot_owner = cluster
            .ports()
            .into_iter()
            .find(|p| query::<i64>(*p, redis::cmd("EXISTS").arg(store.user_index_key(&user))).is_some_and(|n| n == 1))
            .expect("some node holds the index");
        query(slot_owner, redis::cmd("ZRANGE").arg(store.user_index_key(&user)).arg(0).arg(-1)).expect("ZRANGE")
    };
    assert_eq!(index.len(), 29, "the stale member is gone");

    assert!(store.delete_by_handle(&user, &made[1].1, SystemClock.now_ms()).await.expect("delete_by_handle"));
    assert!(store.load(&made[1].0, SystemClock.now_ms()).await.expect("load").is_none());
    let n = store.delete_user(&user, Some(&made[2].1), SystemClock.now_ms()).await.expect("delete_user");
    assert_eq!(n, 27, "all but the kept one");
    for (i, (key, _)) in made.iter().enumerate() {
        assert_eq!(store.load(key, SystemClock.now_ms()).await.expect("load").is_some(), i == 2, "session {i}");
    }
    assert_eq!(store.delete_user(&user, None, SystemClock.now_ms()).await.expect("delete_user"), 1);
    assert!(store.list_user(&user, SystemClock.now_ms(), usize::MAX).await.expect("list").is_empty());
}

/// Logins of one user while listings run: a listing may see a member whose
/// session is not written yet and drop it as stale; the store must put it
/// back, so that the index still holds every live session at the end.
async fn logins_racing_listings(store: &RedisStore) {
    let user = format!("race-{:x}", rand::random::<u64>());
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let listers: Vec<_> = (0..4)
        .map(|_| {
            let (store, user, done) = (store.clone(), user.clone(), Arc::clone(&done));
            tokio::spawn(async move {
                let mut n = 0;
                while !done.load(std::sync::atomic::Ordering::SeqCst) {
                    store.list_user(&user, SystemClock.now_ms(), usize::MAX).await.expect("list");
                    n += 1;
                }
                n
            })
        })
        .collect();
    let logins: Vec<_> = (0..60)
        .map(|i| {
            let (store, user) = (store.clone(), user.clone());
            tokio::spawn(async move {
                let key = fresh_key();
                let r = user_record(&user);
                assert!(store.create(&key, &r, SystemClock.now_ms()).await.expect("create"));
                if i % 3 == 0 {
                    store.delete(&key, SystemClock.now_ms()).await.expect("delete");
                    None
                } else {
                    Some(r.meta.handle.to_string())
                }
            })
        })
        .collect();
    let mut live = BTreeSet::new();
    for t in logins {
        live.extend(t.await.expect("task"));
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut listings = 0;
    for t in listers {
        listings += t.await.expect("task");
    }
    let listed: BTreeSet<String> = store
        .list_user(&user, SystemClock.now_ms(), usize::MAX)
        .await
        .expect("list")
        .into_iter()
        .map(|m| m.handle.to_string())
        .collect();
    assert_eq!(listed, live, "the index holds every live session after {listings} racing listings");
    assert_eq!(store.delete_user(&user, None, SystemClock.now_ms()).await.expect("delete_user"), live.len());
}

/// Through the layer: logins, locked increments from concurrent requests
/// (leases on the cluster), revocation of the other sessions.
async fn layer_on_cluster(store: &RedisStore) {
    async fn login(session: Session) -> Result<(), SessionError> {
        session.login("carol").await
    }
    async fn incr(session: Session) -> Result<String, SessionError> {
        session.lock().await?;
        let n: u64 = session.get("n").await?.unwrap_or(0) + 1;
        session.insert("n", n).await?;
        Ok(n.to_string())
    }
    async fn read(session: Session) -> Result<String, SessionError> {
        Ok(session.get::<u64>("n").await?.unwrap_or(0).to_string())
    }
    async fn others(session: Session) -> Result<String, SessionError> {
        Ok(session.revoke_others().await?.to_string())
    }
    let layer = SessionLayer::new(store.clone(), Keys::generate().expect("keys"));
    let app: Router = Router::new()
        .route("/login", post(login))
        .route("/incr", post(incr))
        .route("/read", get(read))
        .route("/others", post(others))
        .layer(layer);

    let (status, cookie, _) = send(&app, "POST", "/login", None).await;
    assert_eq!(status, StatusCode::OK);
    let cookie = cookie.expect("session cookie");
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (app, cookie) = (app.clone(), cookie.clone());
            tokio::spawn(async move { send(&app, "POST", "/incr", Some(&cookie)).await.0 })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.expect("task"), StatusCode::OK);
    }
    assert_eq!(send(&app, "GET", "/read", Some(&cookie)).await.2, "20", "no locked increment is lost");

    let (_, second, _) = send(&app, "POST", "/login", None).await;
    let second = second.expect("second device");
    assert_eq!(send(&app, "POST", "/others", Some(&cookie)).await.2, "1");
    let (status, removal, body) = send(&app, "GET", "/read", Some(&second)).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "0"));
    assert!(removal.is_some_and(|c| c.ends_with('=')), "the revoked session is gone: removal cookie");
    assert_eq!(send(&app, "GET", "/read", Some(&cookie)).await.2, "20", "the current one stays");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_store() {
    if tools_or_skip("redis cluster tests").is_err() {
        return;
    }
    let t0 = Instant::now();
    let cluster = Cluster::start();
    let started = t0.elapsed();
    let urls = cluster.urls();
    let nodes: Vec<&str> = urls.iter().map(String::as_str).collect();
    let store = RedisStore::connect_cluster(&nodes).await.expect("connect to the cluster");
    assert!(store.is_cluster());
    let store = store.with_prefix(&format!("sw-cluster-{:x}:", rand::random::<u64>())).expect("prefix");

    conformance::run_all(Arc::new(store.clone())).await;
    slot_rules(&cluster, &store).await;
    rotation_slots(&cluster, &store).await;
    user_sessions_across_nodes(&cluster, &store).await;
    logins_racing_listings(&store).await;
    layer_on_cluster(&store).await;

    let _ = writeln!(
        std::io::stderr(),
        "redis cluster: started in {:.2?}, checks in {:.2?}",
        started,
        t0.elapsed() - started
    );
    drop(cluster);
}

#[test]
fn cluster_guard_cleans_up_on_panic() {
    if tools_or_skip("redis cluster guard test").is_err() {
        return;
    }
    let mut dir: Option<PathBuf> = None;
    let mut pids = Vec::new();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut cluster = Cluster { dir: temp_dir("guard"), nodes: Vec::new() };
        cluster.start_node();
        dir = Some(cluster.dir.clone());
        pids.extend(cluster.nodes.iter().map(|(_, c)| c.id()));
        panic!("expected panic: the guard must clean up");
    }));
    assert!(result.is_err());
    let dir = dir.expect("dir");
    assert!(!Path::new(&dir).exists(), "the temp dir is removed");
    assert!(!pids.is_empty());
    if cfg!(target_os = "linux") {
        for pid in pids {
            // A killed and reaped child is gone from /proc.
            assert!(!Path::new(&format!("/proc/{pid}")).exists(), "redis-server {pid} is killed");
        }
    }
}

/// No server needed: a bad node list fails at once, an unreachable cluster
/// after the connection timeout, and neither error shows the password.
#[tokio::test]
async fn redis_cluster_connect_errors_are_clean() {
    assert!(RedisStore::connect_cluster(&[]).await.is_err());
    assert!(RedisStore::connect_cluster(&["not a url"]).await.is_err());
    let port = free_port(&[]);
    let node = format!("redis://:hunter2@127.0.0.1:{port}");
    let t0 = Instant::now();
    let err = RedisStore::connect_cluster(&[&node]).await.expect_err("nobody listens there");
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    let text = err.to_string();
    assert!(!text.contains("hunter2"), "{text}");
}
