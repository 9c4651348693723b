//! Shared fixtures of the HTTP-level tests.
#![allow(dead_code, unreachable_pub)]

use std::{
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use async_trait::async_trait;
use axum::{body::Body, Router};
use http::{header, Request, Response};
use http_body_util::BodyExt;
pub use sessionware::Transport;
use sessionware::{
    store::{
        ChangeSet, Cutoff, Cutoffs, Leases, MemoryStore, Metadata, Record, Rotated, Rotation, Scope, SessionStore,
        StorageKey, StoreError, Stored, UserIndex,
    },
    Keys, ManualClock, SessionConfig, SessionHandle, SessionId, SessionLayer,
};
use tokio::sync::Notify;
use tower::ServiceExt;

/// Which store operation to break.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Create,
    Load,
    Apply,
    Touch,
    Delete,
    Rotate,
    Cut,
    /// `UserIndex::list_user` (the checked token verifier's one read).
    ListUser,
}

/// A store that counts calls, can fail or stall chosen operations, and can
/// pause `load` until released (to force interleavings).
#[derive(Debug, Clone)]
pub struct MockStore {
    pub inner: MemoryStore,
    pub calls: Arc<[AtomicUsize; 8]>,
    pub fail: Arc<Mutex<Vec<Op>>>,
    pub stall: Arc<Mutex<Vec<Op>>>,
    pub conflicts: Arc<AtomicUsize>,
    pub pause_load: Arc<AtomicBool>,
    pub loaded: Arc<Notify>,
    pub release: Arc<Notify>,
    /// Records returned by `load` as they are, expired or not (a lagging store).
    pub raw: Arc<Mutex<std::collections::HashMap<StorageKey, Record>>>,
}

impl MockStore {
    pub fn new() -> Self {
        Self::over(MemoryStore::default())
    }
    /// A mock over `inner` (a store with its own caps).
    pub fn over(inner: MemoryStore) -> Self {
        Self {
            inner,
            calls: Arc::new(Default::default()),
            fail: Arc::default(),
            stall: Arc::default(),
            conflicts: Arc::default(),
            pause_load: Arc::default(),
            loaded: Arc::default(),
            release: Arc::default(),
            raw: Arc::default(),
        }
    }
    pub fn count(&self, op: Op) -> usize {
        self.calls[op as usize].load(Ordering::SeqCst)
    }
    pub fn total(&self) -> usize {
        self.calls.iter().map(|c| c.load(Ordering::SeqCst)).sum()
    }
    pub fn fail(&self, op: Op) {
        self.fail.lock().unwrap().push(op);
    }
    pub fn heal(&self) {
        self.fail.lock().unwrap().clear();
        self.stall.lock().unwrap().clear();
    }
    pub fn stall(&self, op: Op) {
        self.stall.lock().unwrap().push(op);
    }
    async fn enter(&self, op: Op) -> Result<(), StoreError> {
        self.calls[op as usize].fetch_add(1, Ordering::SeqCst);
        if self.stall.lock().unwrap().contains(&op) {
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
        if self.fail.lock().unwrap().contains(&op) {
            return Err(StoreError::Backend("redis://user:hunter2@10.0.0.1 refused".into()));
        }
        Ok(())
    }
}

#[async_trait]
impl SessionStore for MockStore {
    async fn create(&self, key: &StorageKey, record: &Record, now: u64) -> Result<bool, StoreError> {
        self.enter(Op::Create).await?;
        if self.conflicts.load(Ordering::SeqCst) > 0 {
            self.conflicts.fetch_sub(1, Ordering::SeqCst);
            return Ok(false);
        }
        self.inner.create(key, record, now).await
    }
    async fn lookup(&self, key: &StorageKey, now: u64) -> Result<Option<Stored>, StoreError> {
        self.enter(Op::Load).await?;
        if let Some(r) = self.raw.lock().unwrap().get(key) {
            return Ok(Some(Stored::Live(r.clone())));
        }
        let r = self.inner.lookup(key, now).await;
        if self.pause_load.load(Ordering::SeqCst) {
            self.loaded.notify_one();
            self.release.notified().await;
        }
        r
    }
    async fn rotate(&self, old: &StorageKey, new: &StorageKey, rotation: &Rotation) -> Result<Rotated, StoreError> {
        self.enter(Op::Rotate).await?;
        if self.conflicts.load(Ordering::SeqCst) > 0 {
            self.conflicts.fetch_sub(1, Ordering::SeqCst);
            return Ok(Rotated::Taken);
        }
        self.inner.rotate(old, new, rotation).await
    }
    async fn apply(&self, key: &StorageKey, changes: &ChangeSet, now: u64) -> Result<bool, StoreError> {
        self.enter(Op::Apply).await?;
        self.inner.apply(key, changes, now).await
    }
    async fn touch(&self, key: &StorageKey, now: u64, expires_at: u64) -> Result<bool, StoreError> {
        self.enter(Op::Touch).await?;
        self.inner.touch(key, now, expires_at).await
    }
    async fn delete(&self, key: &StorageKey, now: u64) -> Result<(), StoreError> {
        self.enter(Op::Delete).await?;
        self.raw.lock().unwrap().remove(key);
        self.inner.delete(key, now).await
    }
}

#[async_trait]
impl UserIndex for MockStore {
    async fn list_user(&self, user: &str, now: u64, limit: usize) -> Result<Vec<Metadata>, StoreError> {
        self.enter(Op::ListUser).await?;
        self.inner.list_user(user, now, limit).await
    }
    async fn delete_by_handle(&self, user: &str, handle: &SessionHandle, now: u64) -> Result<bool, StoreError> {
        self.inner.delete_by_handle(user, handle, now).await
    }
    async fn delete_user(&self, user: &str, keep: Option<&SessionHandle>, now: u64) -> Result<usize, StoreError> {
        self.inner.delete_user(user, keep, now).await
    }
}

#[async_trait]
impl Leases for MockStore {
    async fn try_lock(&self, key: &StorageKey, token: &str, ttl_ms: u64, now: u64) -> Result<bool, StoreError> {
        self.inner.try_lock(key, token, ttl_ms, now).await
    }
    async fn unlock(&self, key: &StorageKey, token: &str, now: u64) -> Result<(), StoreError> {
        self.inner.unlock(key, token, now).await
    }
}

#[async_trait]
impl Cutoffs for MockStore {
    async fn cut(&self, scope: Scope<'_>, not_before: u64, keep_until: u64, now: u64) -> Result<(), StoreError> {
        self.enter(Op::Cut).await?;
        self.inner.cut(scope, not_before, keep_until, now).await
    }
    async fn cutoff(&self, user: Option<&str>, now: u64) -> Result<Cutoff, StoreError> {
        self.inner.cutoff(user, now).await
    }
}

// The traits tests call store methods through.
#[allow(unused_imports)]
pub use sessionware::{
    store::{Leases as _, SessionStore as _, UserIndex as _},
    Clock as _, SystemClock,
};

/// `cookie` (`name=value`) with one character of its signature changed.
/// Not the last one: the last base64 character carries unused bits, so
/// changing it may only make the encoding non-canonical (a malformed
/// cookie, not a bad signature).
pub fn tamper(cookie: &str) -> String {
    let mut bytes = cookie.as_bytes().to_vec();
    let i = bytes.len() - 5;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).unwrap()
}

/// Start of the manual clock in tests (a realistic epoch time).
pub const T0: u64 = 1_800_000_000_000;

pub struct Harness {
    pub store: MockStore,
    pub clock: ManualClock,
    pub keys: Keys,
    pub layer: SessionLayer,
}

impl Harness {
    pub fn new() -> Self {
        Self::with_config(SessionConfig::default())
    }
    /// The default configuration on transport `t`.
    pub fn on(t: Transport) -> Self {
        Self::with_config(config_on(t))
    }
    /// A client's credential for `id`, signed as this layer signs it (a
    /// `Cookie` pair or a header line: see [`req`]).
    pub fn credential_for(&self, id: &SessionId) -> String {
        let token = self.keys.sign_for(self.layer.config(), id);
        match self.layer.config().transport() {
            Transport::Header(name) => format!("{name}: {token}"),
            _ => format!("{}={token}", self.layer.config().cookie_name()),
        }
    }
    pub fn with_config(config: SessionConfig) -> Self {
        Self::with(config, Keys::generate().unwrap())
    }
    pub fn with(config: SessionConfig, keys: Keys) -> Self {
        Self::over(config, keys, MemoryStore::default())
    }
    pub fn over(config: SessionConfig, keys: Keys, inner: MemoryStore) -> Self {
        let clock = ManualClock::new(T0);
        let store = MockStore::over(inner);
        let layer = SessionLayer::new(store.clone(), keys.clone()).with_config(config).with_clock(clock.clone());
        Self { store, clock, keys, layer }
    }
}

/// The header of the header transport in the tests ([`Transport::header`]).
pub const TOKEN_HEADER: &str = "x-session-token";

/// The default configuration on transport `t`.
pub fn config_on(t: Transport) -> SessionConfig {
    SessionConfig::builder().transport(t).build().unwrap()
}

/// A request with an optional credential, as the client holds it: a
/// `Cookie` header value (`name=token`), or a header line (`name: token`)
/// of the header transport, as [`session_cookie`] returns them.
pub fn req(method: &str, uri: &str, credential: Option<&str>) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(uri);
    if let Some(c) = credential {
        b = match c.split_once(": ") {
            Some((name, token)) => b.header(name, token),
            None => b.header(header::COOKIE, c),
        };
    }
    b.body(Body::empty()).unwrap()
}

/// The token inside a credential of either transport.
pub fn token_of(credential: &str) -> &str {
    match credential.split_once(": ") {
        Some((_, token)) => token,
        None => credential.split_once('=').unwrap().1,
    }
}

/// Runs each named test body (`async fn name(t: Transport)`) over both
/// transports, as `name::cookie` and `name::header` (R66).
#[allow(unused_macros)]
macro_rules! over_both_transports {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn cookie() {
                super::$name(sessionware::Transport::Cookie).await
            }
            #[tokio::test]
            async fn header() {
                super::$name(sessionware::Transport::header()).await
            }
        }
    )*};
}
#[allow(unused_imports)]
pub(crate) use over_both_transports;

pub async fn send(app: &Router, request: Request<Body>) -> Response<Body> {
    app.clone().oneshot(request).await.unwrap()
}

pub async fn body(res: Response<Body>) -> String {
    String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

/// Every `Set-Cookie` of the response, parsed.
pub fn set_cookies(res: &Response<Body>) -> Vec<cookie::Cookie<'static>> {
    res.headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| cookie::Cookie::parse(v.to_str().unwrap().to_string()).unwrap())
        .collect()
}

/// The value of the header transport's token header in the response, if
/// any. A response that carries it never sets a cookie (checked here, so
/// every test of the header transport checks it).
pub fn token_header(res: &Response<Body>) -> Option<String> {
    let mut all = res.headers().get_all(TOKEN_HEADER).iter();
    let value = all.next()?;
    assert!(all.next().is_none(), "more than one {TOKEN_HEADER} header");
    assert!(res.headers().get(header::SET_COOKIE).is_none(), "a header layer sent a Set-Cookie");
    assert!(value.is_sensitive(), "the token header is marked sensitive");
    assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store", "a response with a token is not cached");
    Some(value.to_str().unwrap().to_string())
}

/// The client's new credential from the response, if it got one: `name=value`
/// of the single session cookie set, or `name: value` of the token header.
pub fn session_cookie(res: &Response<Body>) -> Option<String> {
    if let Some(token) = token_header(res) {
        return (!token.is_empty()).then(|| format!("{TOKEN_HEADER}: {token}"));
    }
    let cookies = set_cookies(res);
    assert!(cookies.len() <= 1, "more than one Set-Cookie: {cookies:?}");
    cookies.first().filter(|c| !c.value().is_empty()).map(|c| format!("{}={}", c.name(), c.value()))
}

/// Starts `method uri` with `cookie` on a task and holds it inside its
/// session lookup (the `MockStore` pause); returns once it is held.
/// [`release`] lets it go on: the racing request runs in between.
pub async fn hold(
    h: &Harness,
    app: &Router,
    method: &str,
    uri: &str,
    cookie: &str,
) -> tokio::task::JoinHandle<Response<Body>> {
    h.store.pause_load.store(true, Ordering::SeqCst);
    let task = {
        let app = app.clone();
        let request = req(method, uri, Some(cookie));
        tokio::spawn(async move { send(&app, request).await })
    };
    tokio::time::timeout(Duration::from_secs(5), h.store.loaded.notified())
        .await
        .expect("the request reached its session lookup");
    h.store.pause_load.store(false, Ordering::SeqCst);
    task
}

/// Lets the request held by [`hold`] go on.
pub fn release(h: &Harness) {
    h.store.release.notify_one();
}

/// True when the response sets no cookie at all (nor a token header).
pub fn no_cookie(res: &Response<Body>) -> bool {
    res.headers().get(header::SET_COOKIE).is_none() && token_header(res).is_none()
}

/// True when the response tells the client to drop its credential: the
/// removal cookie, or an empty token header.
pub fn is_removal(res: &Response<Body>) -> bool {
    if let Some(token) = token_header(res) {
        return token.is_empty();
    }
    let cookies = set_cookies(res);
    cookies.len() == 1 && cookies[0].value().is_empty() && cookies[0].max_age() == Some(cookie::time::Duration::ZERO)
}

pub mod handlers {
    use axum::{
        extract::Path,
        http::StatusCode,
        routing::{get, post},
        Router,
    };
    use sessionware::{Session, SessionError};

    pub async fn untouched() -> &'static str {
        "ok"
    }
    pub async fn read(session: Session) -> Result<String, SessionError> {
        Ok(session.get::<u64>("n").await?.map_or("none".into(), |n| n.to_string()))
    }
    pub async fn incr(session: Session) -> Result<String, SessionError> {
        let n: u64 = session.get("n").await?.unwrap_or(0) + 1;
        session.insert("n", n).await?;
        Ok(n.to_string())
    }
    pub async fn set(session: Session, Path(k): Path<String>) -> Result<(), SessionError> {
        session.insert(&k, true).await
    }
    pub async fn login(session: Session, Path(user): Path<String>) -> Result<(), SessionError> {
        session.login(user).await
    }
    pub async fn logout(session: Session) -> Result<(), SessionError> {
        session.purge().await
    }
    pub async fn me(session: Session) -> Result<(StatusCode, String), SessionError> {
        Ok(match session.user().await? {
            Some(u) => (StatusCode::OK, u),
            None => (StatusCode::UNAUTHORIZED, String::new()),
        })
    }
    pub async fn renew(session: Session) -> Result<(), SessionError> {
        session.renew().await
    }
    pub async fn remember(session: Session) -> Result<(), SessionError> {
        session.set_persistent(true).await
    }
    /// The session's keys, comma-separated.
    pub async fn keys(session: Session) -> Result<String, SessionError> {
        Ok(session.keys().await?.join(","))
    }
    pub async fn contains(session: Session) -> Result<String, SessionError> {
        Ok(session.contains("x").await?.to_string())
    }
    /// A careless handler that swallows the session error.
    pub async fn careless(session: Session) -> String {
        format!("anon:{}", session.get::<u64>("n").await.ok().flatten().is_none())
    }

    pub fn routes() -> Router {
        Router::new()
            .route("/untouched", get(untouched))
            .route("/read", get(read))
            .route("/incr", post(incr))
            .route("/set/{k}", post(set))
            .route("/login/{user}", post(login))
            .route("/logout", post(logout))
            .route("/me", get(me))
            .route("/renew", post(renew))
            .route("/remember", post(remember))
            .route("/contains", get(contains))
            .route("/keys", get(keys))
            .route("/careless", get(careless))
    }
}

pub fn app(layer: &sessionware::SessionLayer) -> Router {
    handlers::routes().layer(layer.clone())
}

/// Logs `user` in on a new client (`POST /login/{user}` of
/// [`handlers::routes`]); its cookie.
pub async fn login(app: &Router, user: &str) -> String {
    let res = send(app, req("POST", &format!("/login/{user}"), None)).await;
    assert_eq!(res.status(), http::StatusCode::OK);
    session_cookie(&res).expect("a login sets a cookie")
}

/// Who `GET /me` says is signed in: the status and the user.
pub async fn who(app: &Router, cookie: &str) -> (http::StatusCode, String) {
    let res = send(app, req("GET", "/me", Some(cookie))).await;
    let status = res.status();
    (status, body(res).await)
}

/// `POST /login-together/{user}`: logs the user in, then waits until `n`
/// requests got there (a barrier), so that their commits run together.
pub fn login_together(n: usize) -> Router {
    let barrier = Arc::new(tokio::sync::Barrier::new(n));
    Router::new().route(
        "/login-together/{user}",
        axum::routing::post(
            move |session: sessionware::Session, axum::extract::Path(user): axum::extract::Path<String>| {
                let barrier = Arc::clone(&barrier);
                async move {
                    session.login(user).await?;
                    barrier.wait().await;
                    Ok::<_, sessionware::SessionError>(())
                }
            },
        ),
    )
}

/// A log sink for `tracing_subscriber::fmt().with_writer(..)`: every line
/// the subscriber writes, kept for the test to read back.
#[derive(Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    /// What was logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogCapture {
    type Writer = LogCapture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}
