//! `SessionLayer` over `RedisStore` when Redis fails: a crash under load
//! (then a restart, without rebuilding the app), and a stalled server.
//!
//! Each test starts a private `redis-server` on a free port in a temporary
//! directory (killed and removed at the end, on failure too), so that it can
//! kill or pause it without disturbing anyone. The crash test runs it with
//! `--appendonly yes --appendfsync always`: a write Redis acknowledged is on
//! disk, so a write the app acknowledged with a 2xx must survive the crash.
//! Without `redis-server` the tests print `SKIPPED: ...` and pass, unless
//! `SESSIONWARE_REQUIRE_STORES=1`.
#![cfg(feature = "redis")]

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    io::Write,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use axum::{
    extract::{Path as UrlPath, State},
    routing::{get, post},
    Router,
};
use http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use sessionware::{store::RedisStore, Keys, Session, SessionConfig, SessionError, SessionLayer, SharedError};
use tower::ServiceExt;

#[path = "common/redis_proc.rs"]
mod redis_proc;

use redis_proc::{query, url};

/// The layer's per-call store timeout in these tests.
const STORE_TIMEOUT: Duration = Duration::from_millis(300);

/// The longest a request may take: a load and a write, each cut at the
/// timeout, plus slack for a busy machine.
const MAX_REQUEST: Duration = Duration::from_millis(2 * 300 + 500);

// ------------------------------------------------------------------ the server

fn server_or_skip(what: &str) -> Result<(), ()> {
    redis_proc::programs_or_skip(what, &["redis-server"])
}

fn free_port() -> u16 {
    redis_proc::free_port(&[], false)
}

/// A private `redis-server`; dropping it kills the process and removes its
/// directory (also when a test panics).
struct Server {
    port: u16,
    dir: PathBuf,
    durable: bool,
    child: Option<Child>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

impl Server {
    /// Starts a server on a free port; `durable` turns on the fsync-always AOF.
    fn start(durable: bool) -> Self {
        let dir = redis_proc::temp_dir("faults");
        let mut server = Server { port: 0, dir, durable, child: None };
        for _ in 0..5 {
            server.port = free_port();
            if server.spawn() {
                return server;
            }
        }
        panic!("redis-server did not start:\n{}", server.log_tail());
    }

    /// Starts the process on `self.port`; true once it answers `PING`.
    fn spawn(&mut self) -> bool {
        let log = fs::OpenOptions::new().create(true).append(true).open(self.dir.join("redis.log")).expect("log file");
        let durability: &[&str] =
            if self.durable { &["--appendonly", "yes", "--appendfsync", "always"] } else { &["--appendonly", "no"] };
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--dir"])
            .arg(&self.dir)
            .args(["--save", "", "--daemonize", "no"])
            .args(durability)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if query::<String>(self.port, &redis::cmd("PING")).as_deref() == Some("PONG") {
                return true;
            }
            let exited = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() > deadline {
                self.kill();
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: a crash, nothing flushed beyond what is already on disk.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and directory.
    fn restart(&mut self) {
        assert!(self.spawn(), "redis-server did not restart on port {}:\n{}", self.port, self.log_tail());
    }

    fn log_tail(&self) -> String {
        let log = fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }
}

// ------------------------------------------------------------------ the app

#[derive(Default)]
struct Stats {
    /// Handler invocations.
    runs: AtomicUsize,
    /// Invocations (on a client that has a session) that saw an empty one.
    empty: AtomicUsize,
    /// Invocations whose load failed (they answer with the error).
    load_errors: AtomicUsize,
}

/// Creates the client's session.
async fn start(session: Session) -> Result<(), SessionError> {
    session.insert("n", 0u64).await
}

/// Counter increment that also writes a fresh key `k{i}`.
async fn write(
    State(stats): State<Arc<Stats>>,
    UrlPath(i): UrlPath<u64>,
    session: Session,
) -> Result<String, SessionError> {
    stats.runs.fetch_add(1, Ordering::SeqCst);
    let n = match session.get::<u64>("n").await {
        Ok(Some(n)) => n,
        Ok(None) => {
            // Every client of these tests has a session: a handler that sees
            // none is running on a fresh session instead of the client's.
            stats.empty.fetch_add(1, Ordering::SeqCst);
            0
        }
        Err(e) => {
            stats.load_errors.fetch_add(1, Ordering::SeqCst);
            return Err(e);
        }
    };
    session.insert("n", n + 1).await?;
    session.insert(&format!("k{i}"), i).await?;
    Ok((n + 1).to_string())
}

/// The whole session as JSON.
async fn read(State(stats): State<Arc<Stats>>, session: Session) -> Result<String, SessionError> {
    stats.runs.fetch_add(1, Ordering::SeqCst);
    match session.to_json().await {
        Ok(map) => {
            if map.is_empty() {
                stats.empty.fetch_add(1, Ordering::SeqCst);
            }
            Ok(serde_json::Value::Object(map).to_string())
        }
        Err(e) => {
            stats.load_errors.fetch_add(1, Ordering::SeqCst);
            Err(e)
        }
    }
}

struct App {
    router: Router,
    stats: Arc<Stats>,
}

async fn app(port: u16) -> App {
    let store = RedisStore::connect(&url(port)).await.expect("connect");
    let config = SessionConfig::builder().store_timeout(STORE_TIMEOUT).build().expect("config");
    let layer = SessionLayer::new(store, Keys::generate().expect("keys")).with_config(config);
    let stats = Arc::new(Stats::default());
    let router = Router::new()
        .route("/start", post(start))
        .route("/write/{i}", post(write))
        .route("/read", get(read))
        .with_state(Arc::clone(&stats))
        .layer(layer);
    App { router, stats }
}

/// What one request got.
#[derive(Debug, Clone)]
struct Reply {
    status: StatusCode,
    set_cookie: Option<String>,
    /// The error the layer attached to a failure response.
    error: Option<String>,
    load_failed: bool,
    body: String,
    started: Instant,
    elapsed: Duration,
}

async fn send(app: &Router, method: &str, uri: &str, cookie: Option<&str>) -> Reply {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(c) = cookie {
        req = req.header(header::COOKIE, c);
    }
    let started = Instant::now();
    let res = app.clone().oneshot(req.body(axum::body::Body::empty()).expect("request")).await.expect("infallible");
    let elapsed = started.elapsed();
    let status = res.status();
    let set_cookie = res
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::to_string);
    let shared = res.extensions().get::<SharedError>().cloned();
    let load_failed = shared.as_ref().is_some_and(|e| matches!(e.error(), SessionError::Load(_)));
    let error = shared.map(|e| e.to_string());
    let body = String::from_utf8_lossy(&res.into_body().collect().await.expect("body").to_bytes()).into_owned();
    Reply { status, set_cookie, error, load_failed, body, started, elapsed }
}

/// A client with a fresh session.
async fn new_client(app: &Router) -> String {
    let r = send(app, "POST", "/start", None).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    r.set_cookie.expect("session cookie")
}

/// The session of `cookie` as a JSON object.
async fn session_data(app: &Router, cookie: &str) -> serde_json::Map<String, serde_json::Value> {
    let r = send(app, "GET", "/read", Some(cookie)).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    serde_json::from_str(&r.body).expect("json")
}

// ------------------------------------------------------------------ the tests

#[derive(Debug, Clone)]
enum Op {
    Write(u64),
    Read,
}

#[derive(Debug, Clone)]
struct Done {
    client: usize,
    op: Op,
    reply: Reply,
}

/// Clients writing (and now and then reading) their own sessions while the
/// server is killed, then restarted: reads and writes that need a load fail
/// closed with 503, failed writes set no cookie, nothing hangs, the app
/// recovers by itself, and every write acknowledged with a 2xx survives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_crash_and_restart_under_load() {
    if server_or_skip("redis fault tests").is_err() {
        return;
    }
    const CLIENTS: usize = 3;
    let mut server = Server::start(true);
    let App { router, stats } = app(server.port).await;
    let mut cookies = Vec::new();
    for _ in 0..CLIENTS {
        cookies.push(new_client(&router).await);
    }

    let seq = Arc::new(AtomicU64::new(1));
    let stop = Arc::new(AtomicBool::new(false));
    let log: Arc<Mutex<Vec<Done>>> = Arc::default();
    let clients: Vec<_> = cookies
        .iter()
        .enumerate()
        .map(|(client, cookie)| {
            let (router, cookie, seq, stop, log) =
                (router.clone(), cookie.clone(), Arc::clone(&seq), Arc::clone(&stop), Arc::clone(&log));
            tokio::spawn(async move {
                let mut round = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    let i = seq.fetch_add(1, Ordering::SeqCst);
                    let reply = send(&router, "POST", &format!("/write/{i}"), Some(&cookie)).await;
                    log.lock().expect("log").push(Done { client, op: Op::Write(i), reply });
                    round += 1;
                    if round % 3 == 0 {
                        let reply = send(&router, "GET", "/read", Some(&cookie)).await;
                        log.lock().expect("log").push(Done { client, op: Op::Read, reply });
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        })
        .collect();

    // Healthy load, then the crash.
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.kill();
    let killed = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Down from `killed` to `restarting` at least (the new process may
    // accept connections a little before `restart` returns).
    let restarting = Instant::now();
    server.restart();
    let restarted = Instant::now();

    // Recovery: every client gets 2xx writes again, with the same app.
    let deadline = restarted + Duration::from_secs(10);
    let recovered = loop {
        let ok_after: BTreeMap<usize, usize> = {
            let log = log.lock().expect("log");
            let mut m = BTreeMap::new();
            for d in log.iter().filter(|d| d.reply.started > restarted && d.reply.status.is_success()) {
                *m.entry(d.client).or_insert(0) += 1;
            }
            m
        };
        if ok_after.len() == CLIENTS && ok_after.values().all(|n| *n >= 3) {
            break restarted.elapsed();
        }
        assert!(Instant::now() < deadline, "no recovery 10 s after the restart: {ok_after:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.await.expect("client task");
    }
    let log = log.lock().expect("log").clone();

    // Every response, whenever it came.
    let mut max = Duration::ZERO;
    for d in &log {
        let r = &d.reply;
        max = max.max(r.elapsed);
        assert!(r.elapsed <= MAX_REQUEST, "a request hung: {d:?}");
        assert!(r.set_cookie.is_none(), "no response may set a cookie (a new session or a removal): {d:?}");
        match r.status {
            StatusCode::OK => assert!(r.error.is_none()),
            StatusCode::SERVICE_UNAVAILABLE => assert!(r.load_failed, "503 is a failed load: {d:?}"),
            StatusCode::INTERNAL_SERVER_ERROR => {
                assert!(matches!(d.op, Op::Write(_)), "only writes fail with 500: {d:?}");
                assert!(r.error.as_deref().is_some_and(|e| e.contains("saved")), "500 is a failed save: {d:?}");
            }
            other => panic!("unexpected status {other}: {d:?}"),
        }
    }
    // While the server was down (the request started after the kill and
    // ended before the restart): 503 for reads and writes alike.
    let down: Vec<&Done> =
        log.iter().filter(|d| d.reply.started > killed && d.reply.started + d.reply.elapsed < restarting).collect();
    assert!(!down.is_empty(), "requests ran during the outage");
    for d in &down {
        assert_eq!(d.reply.status, StatusCode::SERVICE_UNAVAILABLE, "{d:?}");
    }
    assert_eq!(stats.empty.load(Ordering::SeqCst), 0, "no handler ran on a fresh session instead of the client's");
    let load_failures = log.iter().filter(|d| d.reply.load_failed).count();
    assert!(stats.load_errors.load(Ordering::SeqCst) <= load_failures);

    // Acknowledged writes survived; 503 writes never ran; 500 writes may or
    // may not have landed.
    let mut summary = BTreeMap::<StatusCode, usize>::new();
    for d in &log {
        *summary.entry(d.reply.status).or_insert(0) += 1;
    }
    let mut lost_500 = 0;
    for (client, cookie) in cookies.iter().enumerate() {
        let data = session_data(&router, cookie).await;
        let writes: Vec<(u64, StatusCode)> = log
            .iter()
            .filter(|d| d.client == client)
            .filter_map(|d| match d.op {
                Op::Write(i) => Some((i, d.reply.status)),
                Op::Read => None,
            })
            .collect();
        let acked: BTreeSet<u64> = writes.iter().filter(|(_, s)| s.is_success()).map(|(i, _)| *i).collect();
        let maybe: BTreeSet<u64> =
            writes.iter().filter(|(_, s)| *s == StatusCode::INTERNAL_SERVER_ERROR).map(|(i, _)| *i).collect();
        let present: BTreeSet<u64> =
            data.keys().filter_map(|k| k.strip_prefix('k')).map(|i| i.parse().expect("k{i}")).collect();
        for i in &acked {
            assert_eq!(data.get(&format!("k{i}")), Some(&serde_json::json!(i)), "acknowledged write k{i} was lost");
        }
        for i in &present {
            assert!(acked.contains(i) || maybe.contains(i), "k{i} was written by a request that failed its load");
        }
        lost_500 += maybe.difference(&present).count();
        let n = data.get("n").and_then(serde_json::Value::as_u64).expect("counter");
        assert_eq!(n as usize, present.len(), "the counter counts exactly the writes that landed");
    }
    let first_ok = log
        .iter()
        .filter(|d| d.reply.started > killed && d.reply.status.is_success())
        .map(|d| d.reply.started + d.reply.elapsed)
        .min()
        .map(|t| t - restarted);
    let fast_503 = log
        .iter()
        .filter(|d| d.reply.status == StatusCode::SERVICE_UNAVAILABLE && d.reply.elapsed < STORE_TIMEOUT)
        .count();
    let _ = writeln!(
        std::io::stderr(),
        "crash test: {} requests {summary:?} ({fast_503} of the 503 before the timeout), {} during the outage, \
         slowest {max:.0?}, first 2xx {first_ok:.2?} and all clients served {recovered:.2?} after the restart, \
         {lost_500} of the 500 writes did not land",
        log.len(),
        down.len(),
    );
}

/// A stalled server (`CLIENT PAUSE`): the layer answers within the store
/// timeout (503 for a load, 500 for a new session's create), sets no
/// cookie, and serves normally once the server resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stall_answers_within_the_timeout() {
    if server_or_skip("redis fault tests").is_err() {
        return;
    }
    let server = Server::start(false);
    let App { router, stats } = app(server.port).await;
    let cookie = new_client(&router).await;
    for i in 0..3 {
        assert_eq!(send(&router, "POST", &format!("/write/{i}"), Some(&cookie)).await.status, StatusCode::OK);
    }

    let paused: Option<String> = query(server.port, redis::cmd("CLIENT").arg("PAUSE").arg(2000).arg("ALL"));
    assert_eq!(paused.as_deref(), Some("OK"));
    let pause_start = Instant::now();
    let (read, write, fresh) = tokio::join!(
        send(&router, "GET", "/read", Some(&cookie)),
        send(&router, "POST", "/write/99", Some(&cookie)),
        send(&router, "POST", "/start", None),
    );
    assert!(pause_start.elapsed() < Duration::from_millis(1500), "still within the pause");
    for (what, r, status) in [
        ("read", &read, StatusCode::SERVICE_UNAVAILABLE),
        ("write", &write, StatusCode::SERVICE_UNAVAILABLE),
        ("new session", &fresh, StatusCode::INTERNAL_SERVER_ERROR),
    ] {
        assert_eq!(r.status, status, "{what}: {r:?}");
        assert!(r.elapsed < STORE_TIMEOUT + Duration::from_millis(300), "{what} waited past the timeout: {r:?}");
        assert!(r.set_cookie.is_none(), "{what}: {r:?}");
        assert!(r.error.as_deref().is_some_and(|e| e.contains("timed out") || e.contains("timeout")), "{what}: {r:?}");
    }
    assert_eq!(stats.empty.load(Ordering::SeqCst), 0);

    // Resumed: the same app serves again, with the data as acknowledged.
    let deadline = Instant::now() + Duration::from_secs(5);
    let resumed = loop {
        let r = send(&router, "GET", "/read", Some(&cookie)).await;
        if r.status == StatusCode::OK {
            break r;
        }
        assert!(Instant::now() < deadline, "no recovery after the pause: {r:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let data: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&resumed.body).expect("json");
    assert_eq!(data.get("n"), Some(&serde_json::json!(3)));
    assert!(data.get("k99").is_none(), "the 503 write did not run");
    assert_eq!(send(&router, "POST", "/write/100", Some(&cookie)).await.body, "4");
    let _ = writeln!(
        std::io::stderr(),
        "stall test: read {:.0?}, write {:.0?}, new session {:.0?}, served again {:.2?} after the pause began",
        read.elapsed,
        write.elapsed,
        fresh.elapsed,
        pause_start.elapsed()
    );
}
