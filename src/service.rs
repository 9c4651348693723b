//! The middleware, in the style of tower-http's `timeout/service.rs`:
//! [`SessionLayer`] (its builder), the [`SessionService`] it makes, and the
//! service's named [`ResponseFuture`], which runs the handler and then
//! commits the session.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::{
    cross_origin::CrossOriginRefused,
    events::{Emitter, Event, EventHook, Route},
    lifecycle::{
        plan::{plan, Presented, Step},
        sealed,
        state::Phase,
        write::{finish, reply_outcome, Commit, Outcome},
    },
    shared::{error_response, Backend, Shared},
    store::{Capabilities, Cutoffs, Leases, UserIndex},
    transport::Credentials,
    Clock, ConfigError, CookieSessions, Keys, Session, SessionConfig, SessionControl, SessionError, SessionStore,
    SystemClock,
};

/// Adds sessions to a Tower service.
///
/// On each request it finds and verifies the session cookie, puts a lazy
/// [`Session`](crate::Session) into the request extensions, and after the
/// inner service answered writes the changes back and sets the cookie.
///
/// ```
/// use axum::{routing::get, Router};
/// use sessionware::{Keys, SessionLayer, store::MemoryStore};
///
/// let app: Router = Router::new()
///     .route("/", get(|| async { "hello" }))
///     .layer(SessionLayer::new(MemoryStore::default(), Keys::generate().unwrap()));
/// ```
///
/// It works under any Tower service, not only axum:
///
/// ```
/// use std::convert::Infallible;
/// use http::{Request, Response};
/// use sessionware::{Keys, Session, SessionLayer, store::MemoryStore};
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let svc = ServiceBuilder::new()
///     .layer(SessionLayer::new(MemoryStore::default(), Keys::generate().unwrap()))
///     .service(service_fn(|req: Request<String>| async move {
///         let session = req.extensions().get::<Session>().unwrap().clone();
///         session.insert("seen", true).await.unwrap();
///         Ok::<_, Infallible>(Response::new(String::new()))
///     }));
/// let res = svc.oneshot(Request::new(String::new())).await.unwrap();
/// assert!(res.headers().contains_key("set-cookie"));
/// # });
/// ```
#[derive(Clone)]
#[must_use]
pub struct SessionLayer {
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for SessionLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionLayer").field("shared", &self.shared).finish_non_exhaustive()
    }
}

/// The default save-error status: the error's own for what the client
/// did (413 for data past the cap, 409 for a login past the per-user
/// limit), 500 for anything else.
fn save_status(err: &SessionError) -> StatusCode {
    match err {
        SessionError::TooLarge { .. } | SessionError::CookieTooLarge { .. } | SessionError::TooManySessions { .. } => {
            err.status()
        }
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The default error responses: the status and a short plain-text body
/// that names what failed, never the store's detail (that is in the
/// [`SharedError`](crate::SharedError) extension and the events).
fn default_error_response(status: StatusCode) -> Response<Bytes> {
    let text: &'static str = match status {
        StatusCode::SERVICE_UNAVAILABLE => "Session store unavailable",
        StatusCode::PAYLOAD_TOO_LARGE => "Session data too large",
        StatusCode::CONFLICT => "Signed in on too many devices: sign out of one and try again",
        _ => "Session could not be saved",
    };
    let mut res = Response::new(Bytes::from_static(text.as_bytes()));
    *res.status_mut() = status;
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    res
}

impl SessionLayer {
    /// A layer with the secure default [`SessionConfig`], over a store with
    /// every capability ([`UserIndex`] and [`Leases`]), as every store of
    /// this crate has. For a store with fewer, see
    /// [`with_capabilities`](Self::with_capabilities).
    ///
    /// ```
    /// # use sessionware::{Keys, SessionLayer, store::MemoryStore};
    /// let layer = SessionLayer::new(MemoryStore::default(), Keys::generate().unwrap());
    /// ```
    ///
    /// A store without a capability is refused at compile time:
    ///
    /// ```compile_fail
    /// # use sessionware::{Keys, SessionLayer, store::*};
    /// #[derive(Debug)]
    /// struct CoreOnly;
    /// #[async_trait::async_trait]
    /// impl SessionStore for CoreOnly {
    ///     async fn create(&self, _: &StorageKey, _: &Record, _: u64) -> Result<bool, StoreError> { Ok(false) }
    ///     async fn lookup(&self, _: &StorageKey, _: u64) -> Result<Option<Stored>, StoreError> { Ok(None) }
    ///     async fn apply(&self, _: &StorageKey, _: &ChangeSet, _: u64) -> Result<bool, StoreError> { Ok(false) }
    ///     async fn rotate(&self, _: &StorageKey, _: &StorageKey, _: &Rotation) -> Result<Rotated, StoreError> { Ok(Rotated::Gone) }
    ///     async fn delete(&self, _: &StorageKey, _: u64) -> Result<(), StoreError> { Ok(()) }
    /// }
    /// let layer = SessionLayer::new(CoreOnly, Keys::generate().unwrap()); // no UserIndex, Leases, Cutoffs
    /// ```
    pub fn new<S: UserIndex + Leases + Cutoffs>(store: S, keys: Keys) -> Self {
        Self::with_capabilities(Capabilities::full(store), keys)
    }

    /// A layer over a store that has only some of the capabilities beyond the
    /// core contract. Calls that need a missing one
    /// ([`Session::sessions`](crate::Session::sessions),
    /// [`revoke`](crate::Session::revoke) and
    /// [`revoke_others`](crate::Session::revoke_others) without a
    /// [`UserIndex`]; [`Session::lock`](crate::Session::lock) without
    /// [`Leases`]) fail with [`SessionError::Unsupported`]. Which
    /// capabilities a layer has is decided here, when it is built.
    ///
    /// ```
    /// # use sessionware::{Keys, SessionLayer, store::{Capabilities, MemoryStore}};
    /// let store = Capabilities::new(MemoryStore::default()).with_leases(); // no per-user index
    /// let layer = SessionLayer::with_capabilities(store, Keys::generate().unwrap());
    /// ```
    pub fn with_capabilities<S: SessionStore>(store: Capabilities<S>, keys: Keys) -> Self {
        let Capabilities { store, index, leases, cutoffs } = store;
        Self::with_backend(Backend::Store(store), index, leases, cutoffs, keys)
    }

    /// Encrypted cookie sessions: the session's data, deadlines and sign-in
    /// live in the cookie, encrypted and authenticated, and no store keeps
    /// them (see [`CookieSessions`] for what that means: the size budget,
    /// the revocation limits, what is unavailable).
    ///
    /// ```
    /// use sessionware::{CookieSessions, Keys, SessionLayer};
    /// let layer = SessionLayer::cookie_sessions(CookieSessions::new(Keys::generate().unwrap()));
    /// assert_eq!(layer.config().cookie_name(), "__Host-sid");
    /// ```
    pub fn cookie_sessions(sessions: CookieSessions) -> Self {
        let (sealer, keys, cutoffs) = sessions.into_parts();
        Self::with_backend(Backend::Cookies(sealer), None, None, cutoffs, keys)
    }

    fn with_backend(
        backend: Backend,
        index: Option<Arc<dyn UserIndex>>,
        leases: Option<Arc<dyn Leases>>,
        cutoffs: Option<Arc<dyn Cutoffs>>,
        keys: Keys,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                backend,
                index,
                leases,
                cutoffs,
                keys,
                config: SessionConfig::default(),
                clock: Arc::new(SystemClock),
                on_load_error: Arc::new(|_| default_error_response(StatusCode::SERVICE_UNAVAILABLE)),
                on_save_error: Arc::new(|err| default_error_response(save_status(err))),
                on_event: None,
            }),
        }
    }

    fn shared_mut(&mut self) -> &mut Shared {
        // Layers are configured before they are cloned into services.
        if Arc::get_mut(&mut self.shared).is_none() {
            self.shared = Arc::new(Shared {
                backend: self.shared.backend.clone(),
                index: self.shared.index.clone(),
                leases: self.shared.leases.clone(),
                cutoffs: self.shared.cutoffs.clone(),
                keys: self.shared.keys.clone(),
                config: self.shared.config.clone(),
                clock: Arc::clone(&self.shared.clock),
                on_load_error: Arc::clone(&self.shared.on_load_error),
                on_save_error: Arc::clone(&self.shared.on_save_error),
                on_event: self.shared.on_event.clone(),
            });
        }
        match Arc::get_mut(&mut self.shared) {
            Some(s) => s,
            None => unreachable!("freshly made Arc is unique"),
        }
    }

    /// Uses `config` (cookie settings, timeouts, limits).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use sessionware::{Keys, SessionConfig, SessionLayer, store::MemoryStore};
    /// let config = SessionConfig::builder().idle_timeout(Duration::from_secs(600)).build().unwrap();
    /// let layer = SessionLayer::new(MemoryStore::default(), Keys::generate().unwrap()).with_config(config);
    /// ```
    ///
    /// # Panics
    ///
    /// When the configuration needs a capability the layer's store lacks
    /// (see [`try_with_config`](Self::try_with_config), which returns it as
    /// an error): a setup mistake, found when the layer is built, never a
    /// request that fails later. Layers made by [`new`](Self::new) have
    /// every capability and never panic here.
    pub fn with_config(self, config: SessionConfig) -> Self {
        match self.try_with_config(config) {
            Ok(layer) => layer,
            Err(e) => panic!("sessionware: {e} (SessionLayer::try_with_config returns this as an error)"),
        }
    }

    /// Uses `config`, or says why the layer's store cannot serve it: the
    /// per-user session limit
    /// ([`max_sessions_per_user`](crate::SessionConfigBuilder::max_sessions_per_user))
    /// needs a store with [`UserIndex`](crate::store::UserIndex)
    /// ([`ConfigError::MissingCapability`]); encrypted cookie sessions
    /// ([`cookie_sessions`](Self::cookie_sessions)) have none, and refuse
    /// the header transport ([`ConfigError::NotForCookieSessions`]).
    ///
    /// # Errors
    ///
    /// [`ConfigError::MissingCapability`], [`ConfigError::NotForCookieSessions`].
    ///
    /// ```
    /// use sessionware::{ConfigError, Keys, LimitPolicy, SessionConfig, SessionLayer};
    /// use sessionware::store::{Capabilities, Capability, MemoryStore};
    ///
    /// let config = SessionConfig::builder().max_sessions_per_user(3, LimitPolicy::default()).build().unwrap();
    /// let no_index = Capabilities::new(MemoryStore::default()).with_leases().with_cutoffs();
    /// let err = SessionLayer::with_capabilities(no_index, Keys::generate().unwrap()).try_with_config(config.clone());
    /// assert!(matches!(err, Err(ConfigError::MissingCapability { capability: Capability::UserIndex, .. })));
    /// let ok = SessionLayer::new(MemoryStore::default(), Keys::generate().unwrap()).try_with_config(config);
    /// assert!(ok.is_ok());
    /// ```
    pub fn try_with_config(mut self, config: SessionConfig) -> Result<Self, ConfigError> {
        if self.shared.sealer().is_some() && !matches!(config.transport, crate::Transport::Cookie) {
            return Err(ConfigError::NotForCookieSessions { setting: "transport" });
        }
        if config.session_limit.is_some() && self.shared.index.is_none() {
            return Err(ConfigError::MissingCapability {
                setting: "max_sessions_per_user",
                capability: crate::store::Capability::UserIndex,
            });
        }
        self.shared_mut().config = config;
        Ok(self)
    }

    /// Uses `clock` as the time source (tests use [`ManualClock`](crate::ManualClock)).
    ///
    /// ```
    /// # use sessionware::{Keys, ManualClock, SessionLayer, store::MemoryStore};
    /// let layer = SessionLayer::new(MemoryStore::default(), Keys::generate().unwrap())
    ///     .with_clock(ManualClock::new(0));
    /// ```
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.shared_mut().clock = Arc::new(clock);
        self
    }

    /// The response sent when loading the session failed (default:
    /// `503 Service Unavailable` with the plain-text body `Session store
    /// unavailable`). The handler's own response is discarded: the request
    /// fails closed. The body is any `Into<Bytes>` (`&'static str`, `String`,
    /// `Vec<u8>`, `Bytes`, `()` is not one: use `""`); see
    /// [`ErrorResponder`](crate::ErrorResponder) for the inner body types it
    /// reaches the client through. `Cache-Control: no-store` is always added.
    ///
    /// An HTML page for a browser application:
    ///
    /// ```
    /// # use http::{header, Response, StatusCode};
    /// # use sessionware::{Keys, SessionLayer, store::MemoryStore};
    /// const PAGE: &str = "<!doctype html><title>Try again</title>\
    ///     <h1>We could not load your session</h1><p>Please try again in a minute.</p>";
    /// let layer = SessionLayer::new(MemoryStore::default(), Keys::generate().unwrap())
    ///     .on_load_error(|_err| {
    ///         Response::builder()
    ///             .status(StatusCode::SERVICE_UNAVAILABLE)
    ///             .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
    ///             .header(header::RETRY_AFTER, "30")
    ///             .body(PAGE)
    ///             .unwrap_or_default()
    ///     });
    /// ```
    pub fn on_load_error<T: Into<Bytes>>(
        mut self,
        f: impl Fn(&SessionError) -> Response<T> + Send + Sync + 'static,
    ) -> Self {
        self.shared_mut().on_load_error = Arc::new(move |e| f(e).map(Into::into));
        self
    }

    /// The response sent when saving the session failed (default:
    /// `500 Internal Server Error`, body `Session could not be saved`;
    /// `413` (`Session data too large`) for [`SessionError::TooLarge`],
    /// `409` for a refused login, [`SessionError::TooManySessions`]; each a
    /// short plain-text body without the store's detail, with
    /// `Cache-Control: no-store`). No cookie for the unsaved session is
    /// sent. The body is any `Into<Bytes>`, as for
    /// [`on_load_error`](Self::on_load_error).
    ///
    /// ```
    /// # use http::{Response, StatusCode};
    /// # use sessionware::{Keys, SessionLayer, store::MemoryStore};
    /// let layer = SessionLayer::new(MemoryStore::default(), Keys::generate().unwrap())
    ///     .on_save_error(|err| {
    ///         let mut res = Response::new(format!("Not saved ({})", err.status()));
    ///         *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    ///         res
    ///     });
    /// ```
    pub fn on_save_error<T: Into<Bytes>>(
        mut self,
        f: impl Fn(&SessionError) -> Response<T> + Send + Sync + 'static,
    ) -> Self {
        self.shared_mut().on_save_error = Arc::new(move |e| f(e).map(Into::into));
        self
    }

    /// Calls `hook` with every lifecycle [`Event`]: created, logged in,
    /// renewed (with its reason), purged, expired, rejected (tampered,
    /// duplicate, unknown, retired), revoked, cut off, evicted or login
    /// refused (the per-user session limit), lock timeout, write dropped,
    /// store error and client changed (client binding). Each carries the session's fingerprint (never its
    /// ID), the user where known, the request's method and path, and the
    /// time. The `tracing` output stays as it is. The hook runs inline on
    /// the request's task: keep it short.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use sessionware::{EventKind, Keys, Session, SessionLayer, store::MemoryStore};
    /// use tower::{service_fn, ServiceExt, Layer};
    ///
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let log = Arc::clone(&seen);
    /// let layer = SessionLayer::new(MemoryStore::default(), Keys::generate().unwrap())
    ///     .on_event(move |event| log.lock().unwrap().push((event.kind, event.path.clone())));
    /// let svc = layer.layer(service_fn(|req: http::Request<String>| async move {
    ///     Session::from_request(&req).unwrap().insert("k", 1).await.unwrap();
    ///     Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
    /// }));
    /// let req = http::Request::post("/cart").body(String::new()).unwrap();
    /// svc.oneshot(req).await.unwrap();
    /// assert_eq!(*seen.lock().unwrap(), [(EventKind::Created, Some("/cart".to_string()))]);
    /// # });
    /// ```
    pub fn on_event(mut self, hook: impl Fn(&Event) + Send + Sync + 'static) -> Self {
        let hook: EventHook = Arc::new(hook);
        self.shared_mut().on_event = Some(hook);
        self
    }

    /// A handle that ends sessions from outside a request: every session at
    /// once, or one user's ([`SessionControl`]).
    ///
    /// ```
    /// # use sessionware::{Keys, SessionLayer, store::MemoryStore};
    /// let layer = SessionLayer::new(MemoryStore::default(), Keys::generate().unwrap());
    /// let control = layer.control(); // for the application's state
    /// # let _ = control;
    /// ```
    pub fn control(&self) -> SessionControl {
        SessionControl::new(Arc::clone(&self.shared))
    }

    /// The configuration in use.
    ///
    /// ```
    /// # use sessionware::{Keys, SessionLayer, store::MemoryStore};
    /// let layer = SessionLayer::new(MemoryStore::default(), Keys::generate().unwrap());
    /// assert_eq!(layer.config().cookie_name(), "__Host-sid");
    /// ```
    pub fn config(&self) -> &SessionConfig {
        &self.shared.config
    }
}

impl<S> Layer<S> for SessionLayer {
    type Service = SessionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionService { inner, layer: self.clone() }
    }
}

/// The session middleware; made by [`SessionLayer`].
///
/// ```
/// use sessionware::{Keys, SessionLayer, SessionService, store::MemoryStore};
/// use tower::Layer;
///
/// let layer = SessionLayer::new(MemoryStore::default(), Keys::generate().unwrap());
/// let svc: SessionService<_> = layer.layer(tower::service_fn(|_: http::Request<String>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
/// }));
/// ```
#[derive(Clone, Debug)]
pub struct SessionService<S> {
    pub(crate) inner: S,
    pub(crate) layer: SessionLayer,
}

impl<S> SessionService<S> {
    /// Wraps `inner` with the sessions of `layer`.
    ///
    /// ```
    /// # use sessionware::{Keys, SessionLayer, SessionService, store::MemoryStore};
    /// let layer = SessionLayer::new(MemoryStore::default(), Keys::generate().unwrap());
    /// let svc = SessionService::new(tower::service_fn(|_: http::Request<String>| async {
    ///     Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
    /// }), layer);
    /// assert!(format!("{:?}", svc.get_ref()).len() > 0);
    /// ```
    pub fn new(inner: S, layer: SessionLayer) -> Self {
        Self { inner, layer }
    }

    /// The inner service.
    ///
    /// ```
    /// # use sessionware::{Keys, SessionLayer, SessionService, store::MemoryStore};
    /// # let layer = SessionLayer::new(MemoryStore::default(), Keys::generate().unwrap());
    /// let svc = SessionService::new(5u8, layer);
    /// assert_eq!(*svc.get_ref(), 5);
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    ///
    /// ```
    /// # use sessionware::{Keys, SessionLayer, SessionService, store::MemoryStore};
    /// # let layer = SessionLayer::new(MemoryStore::default(), Keys::generate().unwrap());
    /// let mut svc = SessionService::new(5u8, layer);
    /// *svc.get_mut() = 6;
    /// assert_eq!(svc.into_inner(), 6);
    /// ```
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    ///
    /// ```
    /// # use sessionware::{Keys, SessionLayer, SessionService, store::MemoryStore};
    /// # let layer = SessionLayer::new(MemoryStore::default(), Keys::generate().unwrap());
    /// assert_eq!(SessionService::new(1u8, layer).into_inner(), 1);
    /// ```
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for SessionService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Default + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let shared = &self.layer.shared;
        // A browser's unsafe request from another origin never reaches the
        // handler (see `cross_origin`), on a layer whose session a browser
        // attaches by itself (`SessionConfig::needs_csrf`).
        let check = || shared.config.cross_origin.check(req.method(), req.uri(), req.headers());
        if let Err(refused) = if shared.config.needs_csrf() { check() } else { Ok(()) } {
            let route = shared.on_event.as_ref().map(|_| Route::of(&req));
            let emitter = Emitter { hook: shared.on_event.as_ref(), route: route.as_ref(), now: shared.clock.now_ms() };
            emitter.cross_origin_refused(refused.reason);
            return ResponseFuture { inner: None, stage: Stage::Refused(refused) };
        }
        // Only cheap clones of the `Cookie` header values (or of the session
        // header's): parsing, MAC checks and store calls wait for the
        // handler's first use.
        let route = shared.on_event.as_ref().map(|_| Route::of(&req));
        let session = Session::new(Arc::clone(shared), Credentials::of(&shared.config, req.headers()), route);
        // Client binding compares every signed-in request's client, whether
        // or not its handler takes the session: noted now (cheap clones).
        if shared.config.binding.observes_every_request() {
            session.observe(req.headers(), req.extensions());
        }
        req.extensions_mut().insert(session.clone());
        ResponseFuture { inner: Some(self.inner.call(req)), stage: Stage::Inner(session) }
    }
}

/// The write-back step with the handler's response in it: one allocation,
/// made only by requests that have store calls to make.
type Committing<B> = Pin<Box<dyn Future<Output = Response<B>> + Send>>;

enum Stage<B> {
    /// The request was refused before the handler (no inner future).
    Refused(CrossOriginRefused),
    Inner(Session),
    Committing(Committing<B>),
    Done,
}

pin_project! {
    /// Response future of [`SessionService`](crate::SessionService): runs the
    /// inner service, then writes the session back. Only a request that
    /// changed the session (or must slide its idle deadline) allocates the
    /// write-back step.
    ///
    /// ```
    /// use sessionware::ResponseFuture;
    /// fn assert_send<T: Send>() {}
    /// assert_send::<ResponseFuture<std::future::Ready<Result<http::Response<String>, ()>>, String>>();
    /// ```
    pub struct ResponseFuture<F, B> {
        #[pin]
        inner: Option<F>,
        stage: Stage<B>,
    }
}

impl<F, B> fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Default + Send + 'static,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match std::mem::replace(this.stage, Stage::Done) {
                Stage::Refused(refused) => return Poll::Ready(Ok(cross_origin_response(refused))),
                Stage::Inner(session) => {
                    let Some(inner) = this.inner.as_mut().as_pin_mut() else {
                        panic!("ResponseFuture without its inner future");
                    };
                    let res = match inner.poll(cx) {
                        Poll::Ready(Ok(res)) => res,
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Pending => {
                            *this.stage = Stage::Inner(session);
                            return Poll::Pending;
                        }
                    };
                    match commit(&session) {
                        None => return Poll::Ready(Ok(res)),
                        Some(Done::Failed(e)) => {
                            return Poll::Ready(Ok(error_response(&session.inner.shared, e)));
                        }
                        Some(Done::Now(outcome)) => {
                            return Poll::Ready(Ok(finish(res, outcome, &session.inner.shared)));
                        }
                        Some(Done::Later(commit)) => *this.stage = Stage::Committing(Box::pin(commit.respond(res))),
                        Some(Done::Sealed(cutting)) => {
                            *this.stage = Stage::Committing(Box::pin(cutting.respond(res)));
                        }
                    }
                }
                Stage::Committing(mut fut) => {
                    let Poll::Ready(res) = fut.as_mut().poll(cx) else {
                        *this.stage = Stage::Committing(fut);
                        return Poll::Pending;
                    };
                    return Poll::Ready(Ok(res));
                }
                Stage::Done => panic!("ResponseFuture polled after completion"),
            }
        }
    }
}

/// The `403` of a refused cross-origin request: no body, not cached, and
/// varying on the headers that decided it; the typed refusal in its
/// extensions.
fn cross_origin_response<B: Default>(refused: CrossOriginRefused) -> Response<B> {
    let mut res = Response::new(B::default());
    *res.status_mut() = StatusCode::FORBIDDEN;
    let headers = res.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::VARY, HeaderValue::from_static("Origin, Sec-Fetch-Site"));
    res.extensions_mut().insert(refused);
    res
}

/// Commits a session that no response carries (a token sign-in, see
/// [`token::TokenSessions`](crate::token::TokenSessions)): the same plan and
/// store calls as a request's, and the new ID the commit issued, if any.
#[cfg(feature = "jwt")]
pub(crate) async fn commit_detached(session: &Session) -> Result<Option<crate::SessionId>, SessionError> {
    let outcome = match commit(session) {
        None => return Ok(None),
        Some(Done::Failed(e)) => return Err(e),
        Some(Done::Now(outcome)) => outcome,
        Some(Done::Later(commit)) => commit.run().await,
        Some(Done::Sealed(cutting)) => cutting.run().await,
    };
    match outcome.error {
        Some(e) => Err(e),
        None => {
            let shared = session.shared();
            Ok(outcome.token_header.and_then(|value| crate::transport::issued_id(&shared.config, &shared.keys, &value)))
        }
    }
}

/// How a request's commit goes on.
enum Done {
    /// The headers are known now: no store call, no lease to release.
    Now(Outcome),
    /// Store calls (or a lease release) first.
    Later(Commit),
    /// An encrypted cookie session's cookie is decided; a cutoff first.
    Sealed(Box<sealed::Cutting>),
    /// The lookup failed: the load-error response.
    Failed(SessionError),
}

/// Plans the request's commit; `None` when the session was not used.
fn commit(session: &Session) -> Option<Done> {
    let mut state = session.state();
    if matches!(state.phase, Phase::Unloaded) && state.lease.is_none() {
        return None;
    }
    let resolved = session.resolved();
    let presented = Presented {
        cookie: resolved.presented,
        key: resolved.incoming.as_ref().map(|i| i.key),
        old_key: resolved.incoming.as_ref().is_some_and(|i| i.reissue),
        now: session.now(),
    };
    let shared = &session.inner.shared;
    let user = match shared.on_event {
        Some(_) => state.view.as_ref().and_then(|v| v.meta.user()).map(str::to_string),
        None => None,
    };
    // An encrypted cookie session's logout moves its user's epoch (see
    // `CookieSessions`): the user it was signed in as, and under which epoch.
    let sealed = shared.sealer().map(|sealer| (sealer, state.loaded_auth.clone()));
    let step = plan(&mut state, &presented, &shared.config);
    let lease = state.lease.take();
    let mut cut = state.cut.take();
    drop(state);
    if let Some((sealer, loaded_auth)) = sealed {
        // Encrypted cookie sessions: the step is carried out on the record
        // the cookie carried, at once; only a cutoff waits for the store.
        if matches!(step, Step::Untouched) && cut.is_none() {
            return None;
        }
        if let Step::LoadFailed(e) = step {
            return Some(Done::Failed(SessionError::Load(e)));
        }
        if cut.is_none() && shared.cutoffs.is_some() {
            cut = sealed::logout_cut(&step, loaded_auth.as_ref(), resolved.carried.as_deref(), presented.now, shared);
        }
        let route = session.inner.route.as_ref();
        let emit = Emitter { hook: shared.on_event.as_ref(), route, now: presented.now };
        let carried = resolved.carried.as_deref();
        let outcome = sealed::outcome(shared, sealer, &step, carried, cut.as_ref(), emit, user.as_deref());
        return Some(match cut {
            None => Done::Now(outcome),
            Some(cut) => Done::Sealed(Box::new(sealed::Cutting::new(shared, outcome, cut, route, presented.now))),
        });
    }
    let presented_id = resolved.incoming.as_ref().map(|i| &i.id);
    match (step, lease, cut) {
        (Step::LoadFailed(e), _, _) => Some(Done::Failed(SessionError::Load(e))),
        (Step::Untouched, None, None) => None,
        (Step::Reply(reply), None, None) => Some(Done::Now(reply_outcome(shared, presented_id, reply))),
        (step, lease, cut) => Some(Done::Later(Commit {
            events: shared.on_event.as_ref().map(|_| Box::new((session.inner.route.clone(), user))),
            shared: Arc::clone(shared),
            presented: resolved.incoming.as_ref().map(|i| (i.id.clone(), i.key)),
            now: presented.now,
            step,
            lease: lease.map(Box::new),
            cut: cut.map(Box::new),
        })),
    }
}
