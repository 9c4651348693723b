//! The `Session` handle that handlers use.

use std::{
    fmt,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde::{de::DeserializeOwned, Serialize};

use crate::{
    clock::ms,
    events,
    record::{Auth, ChangeSet, Metadata, Record},
    Clock, Keys, SessionConfig, SessionError, SessionHandle, SessionId, SessionStore, StorageKey, StoreError,
};

/// Longest user agent kept in a session's metadata.
const MAX_USER_AGENT: usize = 256;

const MAX_KEY_LEN: usize = 256;

/// What every request of one layer shares.
pub(crate) struct Shared {
    pub(crate) store: Arc<dyn SessionStore>,
    pub(crate) keys: Keys,
    pub(crate) config: SessionConfig,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) on_load_error: crate::ErrorResponder,
    pub(crate) on_save_error: crate::ErrorResponder,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("store", &self.store)
            .field("keys", &self.keys)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// The store as a trait object: calling through `Arc<dyn SessionStore>`
    /// would pick the blanket `impl SessionStore for Arc<T>` and box every
    /// call's future twice.
    pub(crate) fn store(&self) -> &dyn SessionStore {
        &*self.store
    }

    /// Runs one store call under the configured timeout, logging a failure.
    pub(crate) fn timed<'a, T>(
        &'a self,
        op: &'static str,
        key: Option<&'a StorageKey>,
        fut: StoreCall<'a, T>,
    ) -> Timed<'a, T> {
        Timed { shared: self, op, key, fut, sleep: None }
    }

    /// The idle deadline of activity at `now`, capped by the absolute one.
    pub(crate) fn expires_at(&self, now: u64, absolute_deadline: u64) -> u64 {
        now.saturating_add(self.config.idle_ms).min(absolute_deadline)
    }
}

/// A store call's future, as the store trait (`async_trait`) returns it.
pub(crate) type StoreCall<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A store call under the layer's `store_timeout`: most calls of an
/// in-process store finish on the first poll, so the timer is only started
/// by a call that has to wait. A failure is logged with the operation.
pub(crate) struct Timed<'a, T> {
    shared: &'a Shared,
    op: &'static str,
    key: Option<&'a StorageKey>,
    fut: StoreCall<'a, T>,
    sleep: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl<T> std::future::Future for Timed<'_, T> {
    type Output = Result<T, StoreError>;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        use std::task::Poll;
        let this = &mut *self;
        let result = match this.fut.as_mut().poll(cx) {
            Poll::Ready(r) => r,
            Poll::Pending => {
                let timeout = this.shared.config.store_timeout;
                let sleep = this.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => Err(StoreError::Timeout),
                    Poll::Pending => return Poll::Pending,
                }
            }
        };
        if let Err(e) = &result {
            events::store_error(this.op, this.key, e);
        }
        Poll::Ready(result)
    }
}

/// The session cookie the request presented, after verification.
#[derive(Debug)]
pub(crate) struct Incoming {
    pub(crate) id: SessionId,
    pub(crate) key: StorageKey,
    /// Verified by an older key of the ring: re-issue under the first key.
    pub(crate) reissue: bool,
}

#[derive(Debug, Default)]
pub(crate) enum Phase {
    #[default]
    Unloaded,
    Loaded,
    Failed(Option<StoreError>),
}

/// The per-request state behind a [`Session`].
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) phase: Phase,
    /// The working view of the session; `None` while there is no session.
    pub(crate) record: Option<Record>,
    /// `record` is a live stored record under the incoming key.
    pub(crate) exists: bool,
    /// Net changes against the stored record (used when `exists && !renew`).
    pub(crate) changes: ChangeSet,
    /// Data or metadata changed in this request.
    pub(crate) dirty: bool,
    /// Give the session a new ID when committing.
    pub(crate) renew: bool,
    /// The renewal is a login.
    pub(crate) login: bool,
    /// Delete the stored record under the incoming key (purge).
    pub(crate) delete_old: bool,
    /// The presented cookie named no live session (unknown or expired).
    pub(crate) stale: bool,
    /// The exclusive lease this request holds, released after the commit.
    pub(crate) lock_token: Option<String>,
}

/// The socket peer's address, from axum's `ConnectInfo` (never from
/// forwarding headers, which any client can send).
fn peer_ip(extensions: &http::Extensions) -> Option<std::net::IpAddr> {
    #[cfg(feature = "axum")]
    {
        extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip())
    }
    #[cfg(not(feature = "axum"))]
    {
        let _ = extensions;
        None
    }
}

/// What the request tells about the client, kept for `login`.
#[derive(Debug, Default)]
pub(crate) struct Client {
    pub(crate) user_agent: Option<http::HeaderValue>,
    pub(crate) ip: Option<std::net::IpAddr>,
}

/// One session of the current user, as listed by [`Session::sessions`].
///
/// It carries metadata only, and a public handle that is neither the ID nor
/// its digest.
///
/// ```
/// use sessionware::SessionInfo;
/// fn render(info: &SessionInfo) -> String {
///     format!("{} {}", info.handle, if info.current { "(this device)" } else { "" })
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct SessionInfo {
    /// The session's public handle (revoke with [`Session::revoke`]).
    pub handle: SessionHandle,
    /// Whether it is the session of the current request.
    pub current: bool,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_at: u64,
    /// Last activity known to the store, milliseconds since the Unix epoch.
    pub last_seen: u64,
    /// User agent at login.
    pub user_agent: Option<String>,
    /// Coarse IP at login (IPv4 /24, IPv6 /48).
    pub ip: Option<String>,
}

/// The request's session cookie, parsed and verified on first use.
#[derive(Debug)]
pub(crate) struct Resolved {
    /// The verified session, if one verified.
    pub(crate) incoming: Option<Incoming>,
    /// A cookie with the session's name was presented, valid or not.
    pub(crate) presented: bool,
    /// The request's time (ms), read once with the cookie's verification,
    /// so one request sees one consistent "now" and pays for one clock read.
    now: u64,
}

pub(crate) struct Inner {
    pub(crate) shared: Arc<Shared>,
    /// The request's `Cookie` headers, parsed and verified on first use into `resolved`.
    cookies: crate::resolve::CookieHeaders,
    /// Set on the session's first use (one initialisation for both).
    resolved: std::sync::OnceLock<Resolved>,
    /// Recorded by the extractor (or [`Session::from_request`]), used by `login`.
    client: std::sync::OnceLock<Client>,
    pub(crate) state: Mutex<State>,
    load_lock: tokio::sync::Mutex<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // A request dropped before its commit (cancelled, panicked) releases
        // its lease at once instead of blocking the session until expiry.
        let token = self.state.get_mut().ok().and_then(|s| s.lock_token.take());
        if let (Some(token), Some(Resolved { incoming: Some(incoming), .. })) = (token, self.resolved.get()) {
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                let store = Arc::clone(&self.shared.store);
                let key = incoming.key;
                handle.spawn(async move {
                    let _ = (*store).unlock(&key, &token).await;
                });
            }
        }
    }
}

/// A handle on the current request's session.
///
/// The layer puts one into every request's extensions; with the `axum`
/// feature it is also an extractor. Nothing is loaded until a method needs
/// the data, so a handler that never touches the session costs no store call.
/// Clones share the same state.
///
/// Changes are tracked per key and written back after the handler answers:
/// concurrent requests that write different keys of one session both keep
/// their writes, and a request that loaded the session before a logout cannot
/// bring it back.
///
/// ```
/// use axum::{routing::get, Router};
/// use sessionware::{Keys, MemoryStore, Session, SessionError, SessionLayer};
///
/// async fn handler(session: Session) -> Result<String, SessionError> {
///     let n: u64 = session.get("n").await?.unwrap_or(0);
///     session.insert("n", n + 1).await?;
///     Ok(n.to_string())
/// }
///
/// let app: Router = Router::new()
///     .route("/", get(handler))
///     .layer(SessionLayer::new(MemoryStore::default(), Keys::generate().unwrap()));
/// ```
#[derive(Clone)]
pub struct Session {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state();
        f.debug_struct("Session")
            .field("session", &self.inner.resolved.get().and_then(|r| r.incoming.as_ref()).map(|i| i.key))
            .field("phase", &state.phase)
            .field("exists", &state.exists)
            .field("dirty", &state.dirty)
            .finish_non_exhaustive()
    }
}

impl Session {
    pub(crate) fn new(shared: Arc<Shared>, cookies: crate::resolve::CookieHeaders) -> Self {
        Self {
            inner: Arc::new(Inner {
                shared,
                cookies,
                resolved: std::sync::OnceLock::new(),
                client: std::sync::OnceLock::new(),
                state: Mutex::new(State::default()),
                load_lock: tokio::sync::Mutex::const_new(()),
            }),
        }
    }

    /// The request's session cookie, parsed and verified on first call.
    pub(crate) fn resolved(&self) -> &Resolved {
        let inner = &*self.inner;
        inner.resolved.get_or_init(|| {
            let config = &inner.shared.config;
            let candidates = crate::resolve::find(&inner.cookies, config);
            Resolved {
                incoming: candidates.verify(config, &inner.shared.keys),
                presented: candidates.presented,
                now: inner.shared.clock.now_ms(),
            }
        })
    }

    /// The verified incoming session, verified on first call.
    pub(crate) fn incoming(&self) -> Option<&Incoming> {
        self.resolved().incoming.as_ref()
    }

    /// Records the client's user agent and socket address for a later
    /// `login` (the first call per request wins).
    pub(crate) fn observe(&self, headers: &http::HeaderMap, extensions: &http::Extensions) {
        if self.inner.client.get().is_none() {
            let _ = self
                .inner
                .client
                .set(Client { user_agent: headers.get(http::header::USER_AGENT).cloned(), ip: peer_ip(extensions) });
        }
    }

    /// The request's session, taken from its extensions, for services that
    /// are not axum handlers; `None` when no [`SessionLayer`](crate::SessionLayer)
    /// wraps the service. Like the axum extractor, it records the request's
    /// user agent and socket address (axum's `ConnectInfo`) for
    /// [`login`](Session::login), which keeps them in the session's metadata
    /// for [`sessions`](Session::sessions). A handle taken straight from the
    /// extensions records nothing.
    ///
    /// ```
    /// use sessionware::{Keys, MemoryStore, Session, SessionLayer};
    /// use tower::{service_fn, Layer};
    ///
    /// let svc = SessionLayer::new(MemoryStore::default(), Keys::generate().unwrap()).layer(service_fn(
    ///     |req: http::Request<String>| async move {
    ///         let session = Session::from_request(&req).expect("under the layer");
    ///         let n: u64 = session.get("n").await.unwrap_or(None).unwrap_or(0);
    ///         Ok::<_, std::convert::Infallible>(http::Response::new(n.to_string()))
    ///     },
    /// ));
    /// ```
    pub fn from_request<B>(req: &http::Request<B>) -> Option<Session> {
        let session = req.extensions().get::<Session>()?.clone();
        session.observe(req.headers(), req.extensions());
        Some(session)
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        // State is only mutated by short, non-panicking sections.
        self.inner.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The request's time: read from the clock once, on first use, so one
    /// request sees one consistent "now" (and pays for one clock read).
    pub(crate) fn now(&self) -> u64 {
        self.resolved().now
    }

    /// Loads the record once per request; later calls return at once.
    ///
    /// An in-process store answers synchronously (no future, no lock); a
    /// store that does I/O is awaited through a boxed future, so that every
    /// session method's future stays small for the handlers that embed it.
    async fn ensure_loaded(&self) -> Result<MutexGuard<'_, State>, SessionError> {
        {
            let state = self.state();
            match state.phase {
                Phase::Loaded => return Ok(state),
                Phase::Failed(_) => return Err(SessionError::Unavailable),
                Phase::Unloaded => {}
            }
        }
        match self.load_now() {
            Some(outcome) => self.loaded(outcome),
            None => Box::pin(self.load_awaited()).await,
        }
    }

    /// The I/O path of `ensure_loaded`: one store call per request even when
    /// several tasks of the request ask at once.
    async fn load_awaited(&self) -> Result<MutexGuard<'_, State>, SessionError> {
        let _loading = self.inner.load_lock.lock().await;
        if !matches!(self.state().phase, Phase::Unloaded) {
            return self.loaded_state();
        }
        let outcome = self.load().await;
        self.loaded(outcome)
    }

    /// Records a load's outcome (the first one wins: a concurrent load of
    /// the same request never replaces a view that may already be changed).
    fn loaded(
        &self,
        outcome: Result<(Option<Record>, bool), StoreError>,
    ) -> Result<MutexGuard<'_, State>, SessionError> {
        {
            let mut state = self.state();
            if matches!(state.phase, Phase::Unloaded) {
                match outcome {
                    Ok((record, stale)) => {
                        state.exists = record.is_some();
                        state.record = record;
                        state.stale = stale;
                        state.phase = Phase::Loaded;
                    }
                    Err(e) => {
                        state.phase = Phase::Failed(Some(clone_store_error(&e)));
                        return Err(SessionError::Load(e));
                    }
                }
            }
        }
        self.loaded_state()
    }

    fn loaded_state(&self) -> Result<MutexGuard<'_, State>, SessionError> {
        let state = self.state();
        match state.phase {
            Phase::Loaded => Ok(state),
            _ => Err(SessionError::Unavailable),
        }
    }

    /// The load, answered at once when the store can (`None` otherwise).
    fn load_now(&self) -> Option<Result<(Option<Record>, bool), StoreError>> {
        let Some(incoming) = self.incoming() else {
            return Some(Ok((None, false)));
        };
        let key = &incoming.key;
        match self.inner.shared.store().lookup_now(key, self.now())?.map(|s| s.and_then(crate::Stored::live)) {
            Err(e) => {
                events::store_error("load", Some(key), &e);
                Some(Err(e))
            }
            Ok(record) => match self.found(key, record) {
                Found::Live(record) => Some(Ok((Some(record), false))),
                Found::Stale => Some(Ok((None, true))),
                // Deleting it needs the async path, which loads again. A store
                // that answers `load_now` judges expiry by the same `now`, so
                // it does not hand out an expired record in the first place.
                Found::Expired(_) => None,
            },
        }
    }

    /// Returns the live record (or `None`) and whether the cookie was stale.
    async fn load(&self) -> Result<(Option<Record>, bool), StoreError> {
        let Some(incoming) = self.incoming() else {
            return Ok((None, false));
        };
        let shared = &self.inner.shared;
        let key = &incoming.key;
        let record = shared.timed("load", Some(key), shared.store().load(key)).await?;
        match self.found(key, record) {
            Found::Live(record) => Ok((Some(record), false)),
            Found::Stale => Ok((None, true)),
            Found::Expired(reason) => {
                events::expired(key, reason);
                // Best effort: the record is dead either way, and stores drop it too.
                let _ = shared.timed("delete", Some(key), shared.store().delete(key)).await;
                Ok((None, true))
            }
        }
    }

    /// What the store's answer under `key` means for this request.
    fn found(&self, key: &StorageKey, record: Option<Record>) -> Found {
        let Some(record) = record else {
            events::unknown(key);
            return Found::Stale;
        };
        let now = self.now();
        if now >= record.meta.absolute_deadline {
            Found::Expired("absolute")
        } else if now >= record.meta.expires_at {
            Found::Expired("idle")
        } else {
            Found::Live(record)
        }
    }

    /// Reads `key`, deserialized as `T`. `Ok(None)` if absent.
    ///
    /// # Errors
    ///
    /// A store failure ([`SessionError::Load`], fail closed) or a value of
    /// another type ([`SessionError::Serde`]).
    ///
    /// ```
    /// # use sessionware::{Session, SessionError};
    /// async fn handler(session: Session) -> Result<String, SessionError> {
    ///     let name: Option<String> = session.get("name").await?;
    ///     Ok(name.unwrap_or_default())
    /// }
    /// ```
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SessionError> {
        let state = self.ensure_loaded().await?;
        match state.record.as_ref().and_then(|r| r.data.get(key)) {
            Some(raw) => Ok(Some(serde_json::from_str(raw.get())?)),
            None => Ok(None),
        }
    }

    /// True if `key` is set.
    ///
    /// # Errors
    ///
    /// A store failure while loading.
    ///
    /// ```
    /// # use sessionware::{Session, SessionError};
    /// async fn handler(session: Session) -> Result<String, SessionError> {
    ///     Ok(session.contains("cart").await?.to_string())
    /// }
    /// ```
    pub async fn contains(&self, key: &str) -> Result<bool, SessionError> {
        let state = self.ensure_loaded().await?;
        Ok(state.record.as_ref().is_some_and(|r| r.data.get(key).is_some()))
    }

    /// The keys set in the session, sorted.
    ///
    /// # Errors
    ///
    /// A store failure while loading.
    ///
    /// ```
    /// # use sessionware::{Session, SessionError};
    /// async fn handler(session: Session) -> Result<String, SessionError> {
    ///     Ok(session.keys().await?.join(","))
    /// }
    /// ```
    pub async fn keys(&self) -> Result<Vec<String>, SessionError> {
        let state = self.ensure_loaded().await?;
        Ok(state.record.as_ref().map(|r| r.data.keys().map(str::to_string).collect()).unwrap_or_default())
    }

    /// All values as a JSON object (for inspection and debugging pages).
    ///
    /// # Errors
    ///
    /// A store failure while loading.
    ///
    /// ```
    /// # use sessionware::{Session, SessionError};
    /// async fn handler(session: Session) -> Result<String, SessionError> {
    ///     Ok(serde_json::Value::Object(session.to_json().await?).to_string())
    /// }
    /// ```
    pub async fn to_json(&self) -> Result<serde_json::Map<String, serde_json::Value>, SessionError> {
        let state = self.ensure_loaded().await?;
        let mut map = serde_json::Map::new();
        if let Some(r) = &state.record {
            for (k, v) in r.data.iter() {
                map.insert(k.to_string(), serde_json::from_str(v.get())?);
            }
        }
        Ok(map)
    }

    /// True when the session holds no data and no user.
    ///
    /// # Errors
    ///
    /// A store failure while loading.
    ///
    /// ```
    /// # use sessionware::{Session, SessionError};
    /// async fn handler(session: Session) -> Result<String, SessionError> {
    ///     Ok(session.is_empty().await?.to_string())
    /// }
    /// ```
    pub async fn is_empty(&self) -> Result<bool, SessionError> {
        let state = self.ensure_loaded().await?;
        Ok(state.record.as_ref().is_none_or(|r| r.data.is_empty() && r.meta.auth.is_none()))
    }

    /// Sets `key` to `value`. A session that did not exist is created when
    /// the response is sent, under a new server-made ID.
    ///
    /// # Errors
    ///
    /// A store failure while loading, a value that cannot be serialized, an
    /// empty or over-long key, or data beyond the configured maximum size.
    ///
    /// ```
    /// # use sessionware::{Session, SessionError};
    /// async fn handler(session: Session) -> Result<(), SessionError> {
    ///     session.insert("theme", "dark").await
    /// }
    /// ```
    pub async fn insert<T: Serialize>(&self, key: &str, value: T) -> Result<(), SessionError> {
        if key.is_empty() || key.len() > MAX_KEY_LEN {
            return Err(SessionError::InvalidKey);
        }
        let raw = serde_json::value::to_raw_value(&value)?;
        let max = self.inner.shared.config.max_data_bytes;
        let now = self.now();
        let mut state = self.ensure_loaded().await?;
        let shared = &self.inner.shared;
        let record = state
            .record
            .get_or_insert_with(|| Record::new(Metadata::new(now, shared.config.idle_ms, shared.config.absolute_ms)));
        if record.data.size_with(key, &raw) > max {
            return Err(SessionError::TooLarge { max });
        }
        record.data.insert(key, &raw);
        state.changes.set(key, raw);
        state.dirty = true;
        Ok(())
    }

    /// Removes `key`; true if it was set.
    ///
    /// # Errors
    ///
    /// A store failure while loading.
    ///
    /// ```
    /// # use sessionware::{Session, SessionError};
    /// async fn handler(session: Session) -> Result<(), SessionError> {
    ///     session.remove("cart").await?;
    ///     Ok(())
    /// }
    /// ```
    pub async fn remove(&self, key: &str) -> Result<bool, SessionError> {
        let mut state = self.ensure_loaded().await?;
        let removed = state.record.as_mut().is_some_and(|r| r.data.remove(key));
        if removed {
            state.changes.remove(key);
            state.dirty = true;
        }
        Ok(removed)
    }

    /// Reads and removes `key` (a flash value).
    ///
    /// # Errors
    ///
    /// A store failure while loading, or a value of another type (the value
    /// is then left in place).
    ///
    /// ```
    /// # use sessionware::{Session, SessionError};
    /// async fn handler(session: Session) -> Result<String, SessionError> {
    ///     Ok(session.take::<String>("flash").await?.unwrap_or_default())
    /// }
    /// ```
    pub async fn take<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SessionError> {
        let mut state = self.ensure_loaded().await?;
        let value = match state.record.as_ref().and_then(|r| r.data.get(key)) {
            Some(raw) => serde_json::from_str::<T>(raw.get())?,
            None => return Ok(None),
        };
        if let Some(r) = state.record.as_mut() {
            r.data.remove(key);
        }
        state.changes.remove(key);
        state.dirty = true;
        Ok(Some(value))
    }

    /// Removes every value (the user and the session stay).
    ///
    /// # Errors
    ///
    /// A store failure while loading.
    ///
    /// ```
    /// # use sessionware::{Session, SessionError};
    /// async fn handler(session: Session) -> Result<(), SessionError> {
    ///     session.clear().await
    /// }
    /// ```
    pub async fn clear(&self) -> Result<(), SessionError> {
        let mut state = self.ensure_loaded().await?;
        if let Some(r) = state.record.as_mut() {
            r.data.clear();
            state.changes.clear();
            state.dirty = true;
        }
        Ok(())
    }

    /// The current session's ID, if a live session was presented. A session
    /// created or renewed in this request gets its ID when the response is
    /// sent. The ID is a secret: never log it.
    ///
    /// # Errors
    ///
    /// A store failure while loading.
    ///
    /// ```
    /// # use sessionware::{Session, SessionError};
    /// async fn handler(session: Session) -> Result<String, SessionError> {
    ///     Ok(session.id().await?.is_some().to_string())
    /// }
    /// ```
    pub async fn id(&self) -> Result<Option<SessionId>, SessionError> {
        let state = self.ensure_loaded().await?;
        Ok(if state.exists && !state.renew && !state.delete_old { self.incoming().map(|i| i.id.clone()) } else { None })
    }

    /// The session's metadata (creation, last activity, deadlines, user), or
    /// `None` when there is no session.
    ///
    /// # Errors
    ///
    /// A store failure while loading.
    ///
    /// ```
    /// # use sessionware::{Session, SessionError};
    /// async fn handler(session: Session) -> Result<String, SessionError> {
    ///     let created = session.metadata().await?.map(|m| m.created_at);
    ///     Ok(format!("{created:?}"))
    /// }
    /// ```
    pub async fn metadata(&self) -> Result<Option<Metadata>, SessionError> {
        let state = self.ensure_loaded().await?;
        Ok(state.record.as_ref().map(|r| r.meta.clone()))
    }

    /// When the session expires if no further request comes (the earlier of
    /// the idle and absolute deadlines).
    ///
    /// # Errors
    ///
    /// A store failure while loading.
    ///
    /// ```
    /// # use sessionware::{Session, SessionError};
    /// async fn handler(session: Session) -> Result<String, SessionError> {
    ///     Ok(format!("{:?}", session.expires_at().await?))
    /// }
    /// ```
    pub async fn expires_at(&self) -> Result<Option<SystemTime>, SessionError> {
        let now = self.now();
        Ok(self.metadata().await?.map(|m| {
            let at = self.inner.shared.expires_at(now, m.absolute_deadline);
            UNIX_EPOCH + Duration::from_millis(at)
        }))
    }

    /// The authenticated user, if any.
    ///
    /// # Errors
    ///
    /// A store failure while loading.
    ///
    /// ```
    /// # use sessionware::{Session, SessionError};
    /// async fn handler(session: Session) -> Result<String, SessionError> {
    ///     Ok(session.user().await?.unwrap_or_else(|| "anonymous".into()))
    /// }
    /// ```
    pub async fn user(&self) -> Result<Option<String>, SessionError> {
        let state = self.ensure_loaded().await?;
        Ok(state.record.as_ref().and_then(|r| r.meta.auth.as_ref()).map(|a| a.user.clone()))
    }

    /// When the user authenticated, if a user is logged in.
    ///
    /// # Errors
    ///
    /// A store failure while loading.
    ///
    /// ```
    /// # use sessionware::{Session, SessionError};
    /// async fn handler(session: Session) -> Result<String, SessionError> {
    ///     Ok(format!("{:?}", session.auth_time().await?))
    /// }
    /// ```
    pub async fn auth_time(&self) -> Result<Option<SystemTime>, SessionError> {
        let state = self.ensure_loaded().await?;
        Ok(state
            .record
            .as_ref()
            .and_then(|r| r.meta.auth.as_ref())
            .map(|a| UNIX_EPOCH + Duration::from_millis(a.at_ms)))
    }

    /// Fails with [`SessionError::ReauthRequired`] unless a user logged in
    /// within `max_age`: guard sensitive actions with it.
    ///
    /// # Errors
    ///
    /// `ReauthRequired`, or a store failure while loading.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use sessionware::{Session, SessionError};
    /// async fn change_password(session: Session) -> Result<(), SessionError> {
    ///     session.require_recent_auth(Duration::from_secs(300)).await?;
    ///     Ok(())
    /// }
    /// ```
    pub async fn require_recent_auth(&self, max_age: Duration) -> Result<(), SessionError> {
        let now = self.now();
        let state = self.ensure_loaded().await?;
        let at = state.record.as_ref().and_then(|r| r.meta.auth.as_ref()).map(|a| a.at_ms);
        match at {
            Some(at) if now.saturating_sub(at) <= ms(max_age) => Ok(()),
            _ => Err(SessionError::ReauthRequired),
        }
    }

    /// Logs `user` in: records the user and the time in the reserved field
    /// that `insert` cannot reach, restarts the absolute timeout, and renews
    /// the session ID (fixation defence). The session's data is kept; use
    /// [`login_keeping`](Self::login_keeping) to carry over only some keys.
    ///
    /// # Errors
    ///
    /// A store failure while loading.
    ///
    /// ```
    /// # use sessionware::{Session, SessionError};
    /// async fn login(session: Session) -> Result<(), SessionError> {
    ///     // ... after checking the password:
    ///     session.login("alice").await
    /// }
    /// ```
    pub async fn login(&self, user: impl Into<String>) -> Result<(), SessionError> {
        self.login_inner(user.into(), None).await
    }

    /// Like [`login`](Self::login), but only the listed keys survive: all
    /// other pre-login data is dropped.
    ///
    /// # Errors
    ///
    /// A store failure while loading.
    ///
    /// ```
    /// # use sessionware::{Session, SessionError};
    /// async fn login(session: Session) -> Result<(), SessionError> {
    ///     session.login_keeping("alice", &["cart"]).await
    /// }
    /// ```
    pub async fn login_keeping(&self, user: impl Into<String>, keep: &[&str]) -> Result<(), SessionError> {
        self.login_inner(user.into(), Some(keep)).await
    }

    async fn login_inner(&self, user: String, keep: Option<&[&str]>) -> Result<(), SessionError> {
        let now = self.now();
        let mut state = self.ensure_loaded().await?;
        let config = &self.inner.shared.config;
        let record =
            state.record.get_or_insert_with(|| Record::new(Metadata::new(now, config.idle_ms, config.absolute_ms)));
        if let Some(keep) = keep {
            let dropped: Vec<String> = record.data.keys().filter(|k| !keep.contains(k)).map(str::to_string).collect();
            for k in dropped {
                record.data.remove(&k);
            }
        }
        record.meta.auth = Some(Auth::new(user, now));
        record.meta.absolute_deadline = now.saturating_add(config.absolute_ms);
        let client = self.inner.client.get();
        record.meta.user_agent = client.and_then(|c| c.user_agent.as_ref()).and_then(|v| v.to_str().ok()).map(|ua| {
            let mut end = ua.len().min(MAX_USER_AGENT);
            while !ua.is_char_boundary(end) {
                end -= 1;
            }
            ua[..end].into()
        });
        record.meta.ip = client.and_then(|c| c.ip).map(|ip| coarse_ip(ip).into());
        state.renew = true;
        state.login = true;
        state.dirty = true;
        Ok(())
    }

    /// Gives the session a new ID (same data, same deadlines) when the
    /// response is sent: the new record is created before the old one is
    /// removed. Call it on every privilege change.
    ///
    /// # Errors
    ///
    /// A store failure while loading.
    ///
    /// ```
    /// # use sessionware::{Session, SessionError};
    /// async fn elevate(session: Session) -> Result<(), SessionError> {
    ///     session.insert("role", "admin").await?;
    ///     session.renew().await
    /// }
    /// ```
    pub async fn renew(&self) -> Result<(), SessionError> {
        let mut state = self.ensure_loaded().await?;
        if state.record.is_some() {
            state.renew = true;
            state.dirty = true;
        }
        Ok(())
    }

    /// Ends the session (logout): the record is deleted from the store before
    /// the response is sent, and a removal cookie built from the same settings
    /// goes to a client that presented a session cookie. Values inserted after
    /// `purge` start a new session under a new ID.
    ///
    /// # Errors
    ///
    /// None today; it is fallible so that future checks can fail closed. A
    /// store failure while deleting turns the response into an error (500).
    ///
    /// ```
    /// # use sessionware::{Session, SessionError};
    /// async fn logout(session: Session) -> Result<(), SessionError> {
    ///     session.purge().await
    /// }
    /// ```
    pub async fn purge(&self) -> Result<(), SessionError> {
        // Even when loading failed the record can still be deleted.
        let incoming = self.incoming().is_some();
        let mut state = self.state();
        state.delete_old = incoming;
        state.record = None;
        state.exists = false;
        state.changes = ChangeSet::default();
        state.renew = false;
        state.login = false;
        state.dirty = false;
        if let Phase::Unloaded = state.phase {
            state.phase = Phase::Loaded;
        }
        Ok(())
    }

    /// Makes the cookie persistent ("remember me": it gets a `Max-Age` up to
    /// the absolute deadline) or a browser-session cookie again.
    ///
    /// # Errors
    ///
    /// A store failure while loading.
    ///
    /// ```
    /// # use sessionware::{Session, SessionError};
    /// async fn remember_me(session: Session) -> Result<(), SessionError> {
    ///     session.set_persistent(true).await
    /// }
    /// ```
    pub async fn set_persistent(&self, persistent: bool) -> Result<(), SessionError> {
        let now = self.now();
        let mut state = self.ensure_loaded().await?;
        let config = &self.inner.shared.config;
        let record =
            state.record.get_or_insert_with(|| Record::new(Metadata::new(now, config.idle_ms, config.absolute_ms)));
        if record.meta.persistent != persistent {
            record.meta.persistent = persistent;
            state.changes.persistent = Some(persistent);
            state.dirty = true;
        }
        Ok(())
    }
}

impl Session {
    /// Takes the session's exclusive lock for the rest of the request, so
    /// that read-modify-write sequences (`n = n + 1`) are serialised with
    /// every other request of this session that also locks it, in this
    /// process and in others sharing the store. After the lock is taken the
    /// session is re-read, so the handler sees the previous holder's writes.
    /// The lock is released after this request's changes are saved, or when
    /// the lease ([`lock_lease`](crate::SessionConfigBuilder::lock_lease))
    /// runs out if the holder dies. A request without a live session has
    /// nothing to serialise and returns at once.
    ///
    /// Locking is cooperative: handlers that do not call `lock` are not
    /// blocked (their per-key writes still merge safely).
    ///
    /// # Errors
    ///
    /// [`SessionError::LockTimeout`] after
    /// [`lock_wait`](crate::SessionConfigBuilder::lock_wait), or a store failure.
    ///
    /// ```
    /// # use sessionware::{Session, SessionError};
    /// async fn increment(session: Session) -> Result<String, SessionError> {
    ///     session.lock().await?;
    ///     let n: u64 = session.get("n").await?.unwrap_or(0) + 1;
    ///     session.insert("n", n).await?;
    ///     Ok(n.to_string())
    /// }
    /// ```
    pub async fn lock(&self) -> Result<(), SessionError> {
        let Some(incoming) = self.incoming() else { return Ok(()) };
        {
            let state = self.ensure_loaded().await?;
            if !state.exists || state.lock_token.is_some() || state.delete_old {
                return Ok(());
            }
        }
        let shared = &self.inner.shared;
        let key = &incoming.key;
        let token = crate::record::SessionHandle::generate().to_string();
        let deadline = tokio::time::Instant::now() + shared.config.lock_wait;
        let mut backoff = Duration::from_millis(1);
        loop {
            let taken = shared
                .timed("try_lock", Some(key), shared.store().try_lock(key, &token, shared.config.lock_lease_ms))
                .await
                .map_err(SessionError::Store)?;
            if taken {
                break;
            }
            if tokio::time::Instant::now() + backoff > deadline {
                return Err(SessionError::LockTimeout);
            }
            let jitter = Duration::from_micros(rand::random::<u64>() % 1000);
            tokio::time::sleep(backoff + jitter).await;
            backoff = (backoff * 2).min(Duration::from_millis(20));
        }
        self.state().lock_token = Some(token);
        // Re-read under the lock: the previous holder may have written.
        let fresh = shared.timed("load", Some(key), shared.store().load(key)).await.map_err(SessionError::Store)?;
        let now = self.now();
        let mut state = self.state();
        match fresh {
            Some(mut record) if !record.is_expired(now) => {
                if state.changes.clear {
                    record.data.clear();
                }
                for (k, v) in &state.changes.changes {
                    record.data.apply_change(k, v.as_deref());
                }
                if let Some(mine) = &state.record {
                    // Keep this request's own auth and persistence changes.
                    record.meta.auth.clone_from(&mine.meta.auth);
                    record.meta.persistent = mine.meta.persistent;
                    record.meta.absolute_deadline = mine.meta.absolute_deadline;
                }
                state.record = Some(record);
            }
            _ => {
                // Ended by another request meanwhile.
                state.exists = false;
                state.record = None;
                state.stale = true;
            }
        }
        Ok(())
    }

    /// The current session's public handle, if a session exists.
    ///
    /// # Errors
    ///
    /// A store failure while loading.
    ///
    /// ```
    /// # use sessionware::{Session, SessionError};
    /// async fn handler(session: Session) -> Result<String, SessionError> {
    ///     Ok(session.handle().await?.map(|h| h.to_string()).unwrap_or_default())
    /// }
    /// ```
    pub async fn handle(&self) -> Result<Option<SessionHandle>, SessionError> {
        let state = self.ensure_loaded().await?;
        Ok(state.record.as_ref().map(|r| r.meta.handle))
    }

    async fn current_user(&self) -> Result<(String, Option<SessionHandle>), SessionError> {
        let state = self.ensure_loaded().await?;
        let record = state.record.as_ref().ok_or(SessionError::NotAuthenticated)?;
        let user = record.meta.user().ok_or(SessionError::NotAuthenticated)?.to_string();
        let handle = state.exists.then_some(record.meta.handle);
        Ok((user, handle))
    }

    /// The logged-in user's live sessions (on every device), oldest first,
    /// with the current one marked.
    ///
    /// # Errors
    ///
    /// [`SessionError::NotAuthenticated`] without a user, or a store failure.
    ///
    /// ```
    /// # use sessionware::{Session, SessionError};
    /// async fn devices(session: Session) -> Result<String, SessionError> {
    ///     Ok(session.sessions().await?.len().to_string())
    /// }
    /// ```
    pub async fn sessions(&self) -> Result<Vec<SessionInfo>, SessionError> {
        let (user, current) = self.current_user().await?;
        let shared = &self.inner.shared;
        let list =
            shared.timed("list_user", None, shared.store().list_user(&user)).await.map_err(SessionError::Store)?;
        Ok(list
            .into_iter()
            .map(|m| SessionInfo {
                current: Some(m.handle) == current,
                handle: m.handle,
                created_at: m.created_at,
                last_seen: m.last_seen,
                user_agent: m.user_agent.map(String::from),
                ip: m.ip.map(String::from),
            })
            .collect())
    }

    /// Ends one of the logged-in user's sessions by its handle. Returns
    /// `false` when the user has no such session (another user's handle
    /// included). Revoking the current session purges it.
    ///
    /// # Errors
    ///
    /// [`SessionError::NotAuthenticated`] without a user, or a store failure.
    ///
    /// ```
    /// # use sessionware::{Session, SessionError, SessionHandle};
    /// async fn revoke(session: Session, handle: SessionHandle) -> Result<String, SessionError> {
    ///     Ok(session.revoke(&handle).await?.to_string())
    /// }
    /// ```
    pub async fn revoke(&self, handle: &SessionHandle) -> Result<bool, SessionError> {
        let (user, current) = self.current_user().await?;
        if current.as_ref() == Some(handle) {
            self.purge().await?;
            return Ok(true);
        }
        let shared = &self.inner.shared;
        shared
            .timed("delete_by_handle", None, shared.store().delete_by_handle(&user, handle))
            .await
            .map_err(SessionError::Store)
    }

    /// Ends every other session of the logged-in user ("log out other
    /// devices") and returns how many were ended.
    ///
    /// # Errors
    ///
    /// [`SessionError::NotAuthenticated`] without a user, or a store failure.
    ///
    /// ```
    /// # use sessionware::{Session, SessionError};
    /// async fn logout_others(session: Session) -> Result<String, SessionError> {
    ///     Ok(session.revoke_others().await?.to_string())
    /// }
    /// ```
    pub async fn revoke_others(&self) -> Result<usize, SessionError> {
        let (user, current) = self.current_user().await?;
        let shared = &self.inner.shared;
        shared
            .timed("delete_user", None, shared.store().delete_user(&user, current.as_ref()))
            .await
            .map_err(SessionError::Store)
    }
}

/// IPv4 /24 or IPv6 /48, as text.
fn coarse_ip(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        std::net::IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
        }
    }
}

/// A store's answer for the request's session.
enum Found {
    Live(Record),
    /// No live record: the cookie names an unknown session.
    Stale,
    /// A record past this deadline (`"idle"` or `"absolute"`).
    Expired(&'static str),
}

pub(crate) fn clone_store_error(e: &StoreError) -> StoreError {
    match e {
        StoreError::Backend(s) => StoreError::Backend(s.clone()),
        StoreError::Timeout => StoreError::Timeout,
        StoreError::Codec(s) => StoreError::Codec(s.clone()),
        StoreError::Capacity => StoreError::Capacity,
        StoreError::Unsupported(s) => StoreError::Unsupported(s),
        StoreError::TooLarge => StoreError::TooLarge,
    }
}
