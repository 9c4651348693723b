//! The [`Session`] handle that handlers use, split by concern: [`data`]
//! (reading and writing values), [`auth`] (login, renewal, logout),
//! [`devices`] (a user's sessions), [`lock`] (exclusive sessions) and
//! [`typed`] (typed values, the undecodable-value policy). This
//! file holds the handle itself and the lookup of the presented session.

use std::{
    fmt,
    sync::{Arc, Mutex, MutexGuard, OnceLock},
};

use crate::{
    binding::{self, Client},
    cookie::Incoming,
    events::{Emitter, Route},
    lifecycle::{
        expiry,
        state::{Origin, Phase, State},
    },
    shared::{clone_store_error, Shared},
    transport::Credentials,
    EventKind, Record, RejectReason, SessionError, StorageKey, StoreError, Stored,
};

mod auth;
mod data;
mod devices;
mod lock;
mod typed;

pub(crate) use data::is_reserved;
pub use devices::SessionInfo;
pub use typed::{SessionValue, Typed, Undecodable};

/// The request's session cookie, parsed and verified on first use.
#[derive(Debug)]
pub(crate) struct Resolved {
    /// The verified session, if one verified.
    pub(crate) incoming: Option<Incoming>,
    /// A cookie with the session's name was presented, valid or not.
    pub(crate) presented: bool,
    /// On an encrypted-cookie-session layer, the record the verified cookie
    /// carried: the session "as stored".
    pub(crate) carried: Option<Box<Record>>,
    /// The request's time (ms), read once with the cookie's verification,
    /// so one request sees one consistent "now" and pays for one clock read.
    now: u64,
}

pub(crate) struct Inner {
    pub(crate) shared: Arc<Shared>,
    /// The request's `Cookie` headers (or session header), parsed and
    /// verified on first use into `resolved`.
    credentials: Credentials,
    /// Set on the session's first use (one initialisation for both).
    resolved: OnceLock<Resolved>,
    /// Recorded by the service (client binding on), the extractor or
    /// [`Session::from_request`]; used by `login` and the binding check.
    client: OnceLock<Client>,
    pub(crate) state: Mutex<State>,
    load_lock: tokio::sync::Mutex<()>,
    /// The request's method and path, kept only when an event hook is installed.
    pub(crate) route: Option<Route>,
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
/// bring it back. (That is a store's promise: on encrypted cookie sessions,
/// [`CookieSessions`](crate::CookieSessions), each response carries the
/// whole session and the cookie the client keeps last wins.)
///
/// ```
/// use axum::{routing::get, Router};
/// use sessionware::{Keys, Session, SessionError, SessionLayer, store::MemoryStore};
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
            .field("intent", &state.intent)
            .finish_non_exhaustive()
    }
}

/// What a lookup of the presented key found, before it is recorded.
type Found = (Origin, Option<Record>);

impl Session {
    pub(crate) fn new(shared: Arc<Shared>, credentials: Credentials, route: Option<Route>) -> Self {
        Self {
            inner: Arc::new(Inner {
                shared,
                credentials,
                resolved: OnceLock::new(),
                client: OnceLock::new(),
                state: Mutex::new(State::default()),
                load_lock: tokio::sync::Mutex::const_new(()),
                route,
            }),
        }
    }

    /// The request's session cookie, parsed and verified on first call.
    pub(crate) fn resolved(&self) -> &Resolved {
        let inner = &*self.inner;
        inner.resolved.get_or_init(|| {
            let config = &inner.shared.config;
            let now = inner.shared.clock.now_ms();
            let emit = Emitter { hook: inner.shared.on_event.as_ref(), route: inner.route.as_ref(), now };
            let Some(sealer) = inner.shared.sealer() else {
                let (incoming, presented) = inner.credentials.resolve(config, &inner.shared.keys, &emit);
                return Resolved { incoming, presented, carried: None, now };
            };
            let (opened, presented) = inner.credentials.open(config, sealer, &emit);
            let (incoming, carried) = opened.map_or((None, None), |(i, r)| (Some(i), Some(r)));
            Resolved { incoming, presented, carried, now }
        })
    }

    /// The verified incoming session, verified on first call.
    pub(crate) fn incoming(&self) -> Option<&Incoming> {
        self.resolved().incoming.as_ref()
    }

    /// Records the client's user agent and address (see [`binding`]) for a
    /// later `login` and the binding check (the first call per request wins).
    pub(crate) fn observe(&self, headers: &http::HeaderMap, extensions: &http::Extensions) {
        if self.inner.client.get().is_none() {
            let _ = self.inner.client.set(Client::of(headers, extensions, &self.inner.shared.config.binding));
        }
    }

    pub(crate) fn client(&self) -> Option<&Client> {
        self.inner.client.get()
    }

    /// The request's session, taken from its extensions, for services that
    /// are not axum handlers; `None` when no [`SessionLayer`](crate::SessionLayer)
    /// wraps the service. Like the axum extractor, it records the request's
    /// user agent and address (axum's `ConnectInfo`, or `X-Forwarded-For`
    /// behind a [trusted proxy](crate::SessionConfigBuilder::trusted_proxies)) for
    /// [`login`](Session::login), which keeps them in the session's metadata
    /// for [`sessions`](Session::sessions). A handle taken straight from the
    /// extensions records nothing itself; with
    /// [client binding](crate::SessionConfigBuilder::client_binding) on (the
    /// default), the layer has recorded the client already.
    ///
    /// ```
    /// use sessionware::{Keys, Session, SessionLayer, store::MemoryStore};
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

    pub(crate) fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    /// Emits this request's lifecycle events.
    pub(crate) fn emitter(&self) -> Emitter<'_> {
        Emitter { hook: self.inner.shared.on_event.as_ref(), route: self.inner.route.as_ref(), now: self.now() }
    }

    /// The request's time: read from the clock once, on first use, so one
    /// request sees one consistent "now" (and pays for one clock read).
    pub(crate) fn now(&self) -> u64 {
        self.resolved().now
    }

    /// Looks the session up once per request; later calls return at once.
    ///
    /// An in-process store answers synchronously (no future, no lock); a
    /// store that does I/O is awaited through a boxed future, so that every
    /// session method's future stays small for the handlers that embed it.
    pub(crate) async fn ensure_loaded(&self) -> Result<MutexGuard<'_, State>, SessionError> {
        {
            let state = self.state();
            match state.phase {
                Phase::Loaded(_) => return Ok(state),
                Phase::Failed(_) => return Err(SessionError::Unavailable),
                Phase::Committed => return Err(SessionError::Committed),
                Phase::Unloaded => {}
            }
        }
        match self.lookup_now() {
            Some(outcome) => self.loaded(outcome),
            None => Box::pin(self.load_awaited()).await,
        }
    }

    /// The I/O path of `ensure_loaded`: one lookup per request even when
    /// several tasks of the request ask at once.
    async fn load_awaited(&self) -> Result<MutexGuard<'_, State>, SessionError> {
        let _loading = self.inner.load_lock.lock().await;
        if !matches!(self.state().phase, Phase::Unloaded) {
            return self.loaded_state();
        }
        let outcome = self.lookup().await;
        self.loaded(outcome)
    }

    /// Records a lookup's outcome (the first one wins: a concurrent load of
    /// the same request never replaces a view that may already be changed).
    fn loaded(&self, outcome: Result<Found, StoreError>) -> Result<MutexGuard<'_, State>, SessionError> {
        let changed = {
            let mut state = self.state();
            if matches!(state.phase, Phase::Unloaded) {
                match outcome {
                    Ok((origin, view)) => {
                        let change = self.client_change(view.as_ref());
                        state.loaded(origin, view);
                        change.map(|change| self.bind(&mut state, change))
                    }
                    Err(e) => {
                        state.phase = Phase::Failed(Some(clone_store_error(&e)));
                        return Err(SessionError::Load(e));
                    }
                }
            } else {
                None
            }
        };
        // Emitted once per request (only the first load records), outside the lock.
        if let Some((change, key, user)) = changed {
            let kind = EventKind::ClientChanged { user_agent: change.user_agent, network: change.network };
            self.emitter().emit(kind, key.as_ref(), user.as_deref());
        }
        self.loaded_state()
    }

    /// How the request's client differs from the one the loaded session
    /// was signed in from ([`binding::check`]); `None` with binding off.
    fn client_change(&self, view: Option<&Record>) -> Option<binding::ClientChange> {
        let binding = &self.inner.shared.config.binding;
        if !binding.observes_every_request() {
            return None;
        }
        binding::check(&view?.meta, self.client()?)
    }

    /// Applies the configured policy to a changed client (the lookup just
    /// recorded); what the event names.
    fn bind(
        &self,
        state: &mut State,
        change: binding::ClientChange,
    ) -> (binding::ClientChange, Option<StorageKey>, Option<String>) {
        let key = state.working_key(self.incoming().map(|i| &i.key));
        let user = state.view.as_ref().and_then(|v| v.meta.user()).map(str::to_string);
        let mismatch = binding::Mismatch::new(change, self.inner.shared.config.binding.policy);
        if mismatch.ends_session() {
            state.purge();
        }
        state.client_changed = Some(mismatch);
        (change, key, user)
    }

    fn loaded_state(&self) -> Result<MutexGuard<'_, State>, SessionError> {
        let state = self.state();
        match state.phase {
            Phase::Loaded(_) => Ok(state),
            Phase::Committed => Err(SessionError::Committed),
            _ => Err(SessionError::Unavailable),
        }
    }

    /// The lookup, answered at once when the store can (`None` otherwise,
    /// and for an expired record, whose deletion needs the async path).
    fn lookup_now(&self) -> Option<Result<Found, StoreError>> {
        let Some(incoming) = self.incoming() else {
            return Some(Ok((Origin::Absent, None)));
        };
        if let Some(carried) = &self.resolved().carried {
            // An encrypted cookie session: no store; the cutoffs, if any,
            // are read on the async path.
            if self.shared().cutoffs.is_some() {
                return None;
            }
            return Some(Ok(self.found_sealed(&incoming.key, carried, None)));
        }
        let store = self.shared().store();
        let now = self.now();
        let key = &incoming.key;
        let stored = match store.lookup_ready(key, now)? {
            Ok(stored) => stored,
            Err(e) => {
                self.emitter().store_error("lookup", Some(key), &e);
                return Some(Err(e));
            }
        };
        let successor = match &stored {
            Some(Stored::Retired(r)) if r.overlaps(now) => match store.lookup_ready(&r.successor, now)? {
                Ok(s) => s,
                Err(e) => return Some(Err(e)),
            },
            _ => None,
        };
        match self.found(key, stored, successor) {
            Ok(found) => Some(Ok(found)),
            Err(_) => None,
        }
    }

    /// The lookup through the store's async path; an expired record is
    /// deleted on the way (best effort: stores drop it too).
    async fn lookup(&self) -> Result<Found, StoreError> {
        let Some(incoming) = self.incoming() else {
            return Ok((Origin::Absent, None));
        };
        let shared = self.shared();
        let key = &incoming.key;
        let now = self.now();
        if let Some(carried) = &self.resolved().carried {
            let cutoff = match shared.cutoffs.as_deref() {
                Some(cutoffs) => {
                    let call = cutoffs.cutoff(carried.meta.user(), now);
                    Some(shared.timed(self.emitter(), "cutoff", Some(key), call).await?)
                }
                None => None,
            };
            return Ok(self.found_sealed(key, carried, cutoff));
        }
        let stored = shared.timed(self.emitter(), "lookup", Some(key), shared.store().lookup(key, now)).await?;
        let successor = match &stored {
            Some(Stored::Retired(r)) if r.overlaps(now) => {
                shared
                    .timed(self.emitter(), "lookup", Some(&r.successor), shared.store().lookup(&r.successor, now))
                    .await?
            }
            _ => None,
        };
        match self.found(key, stored, successor) {
            Ok(found) => Ok(found),
            Err(expired_key) => {
                let _ = shared
                    .timed(self.emitter(), "delete", Some(&expired_key), shared.store().delete(&expired_key, now))
                    .await;
                Ok((Origin::Stale, None))
            }
        }
    }

    /// What an encrypted cookie session's record means for this request:
    /// the same expiry check as a stored record's (an expired one is no
    /// session, and its cookie is removed), then the cutoffs when the
    /// layer has them (a session they end is as unknown to the layer as an
    /// ended stored one).
    fn found_sealed(&self, key: &StorageKey, carried: &Record, cutoff: Option<crate::store::Cutoff>) -> Found {
        match self.found(key, Some(Stored::Live(carried.clone())), None) {
            Ok((Origin::Live, Some(record))) if cutoff.is_some_and(|c| c.ends(&record.meta)) => {
                self.emitter().emit(EventKind::Rejected(RejectReason::Unknown), Some(key), record.meta.user());
                (Origin::Stale, None)
            }
            Ok(found) => found,
            Err(_) => (Origin::Stale, None),
        }
    }

    /// What the store's answer under `key` means for this request: a live
    /// session (its own, or the successor it reaches within an overlap), a
    /// retired key, or nothing. `Err` names an expired record to delete.
    fn found(&self, key: &StorageKey, stored: Option<Stored>, successor: Option<Stored>) -> Result<Found, StorageKey> {
        let now = self.now();
        match stored {
            None => {
                self.emitter().emit(EventKind::Rejected(RejectReason::Unknown), Some(key), None);
                Ok((Origin::Stale, None))
            }
            Some(Stored::Live(record)) => match expiry::check(&record.meta, now, &self.shared().config) {
                Ok(()) => Ok((Origin::Live, Some(record))),
                Err(deadline) => {
                    self.emitter().emit(EventKind::Expired(deadline), Some(key), record.meta.user());
                    Err(*key)
                }
            },
            Some(Stored::Retired(retired)) => match successor {
                // Within the overlap, and only until the successor was first used.
                Some(Stored::Live(next))
                    if retired.overlaps(now)
                        && next.meta.predecessor == Some(*key)
                        && expiry::check(&next.meta, now, &self.shared().config).is_ok() =>
                {
                    Ok((Origin::Alias(retired.successor), Some(next)))
                }
                _ => {
                    self.emitter().emit(EventKind::Rejected(RejectReason::Retired), Some(key), None);
                    Ok((Origin::Retired, None))
                }
            },
        }
    }
}
