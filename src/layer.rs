//! `SessionLayer`: the builder of the session middleware.

use std::{fmt, sync::Arc};

use http::{header, HeaderValue, Response, StatusCode};
use tower_layer::Layer;

use crate::{session::Shared, Clock, Keys, SessionConfig, SessionError, SessionService, SessionStore, SystemClock};

/// Builds the response the layer sends when the session store fails.
///
/// The body is the inner service's default body; status and headers come from
/// the hook. The [`SharedError`](crate::SharedError) is attached to the
/// response extensions by the layer.
///
/// ```
/// use std::sync::Arc;
/// use sessionware::ErrorResponder;
/// let respond: ErrorResponder = Arc::new(|err| {
///     let mut res = http::Response::new(());
///     *res.status_mut() = err.status();
///     res
/// });
/// ```
pub type ErrorResponder = Arc<dyn Fn(&SessionError) -> Response<()> + Send + Sync>;

/// Adds sessions to a Tower service.
///
/// On each request it finds and verifies the session cookie, puts a lazy
/// [`Session`](crate::Session) into the request extensions, and after the
/// inner service answered writes the changes back and sets the cookie.
///
/// ```
/// use axum::{routing::get, Router};
/// use sessionware::{Keys, MemoryStore, SessionLayer};
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
/// use sessionware::{Keys, MemoryStore, Session, SessionLayer};
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

fn status_response(status: StatusCode) -> Response<()> {
    let mut res = Response::new(());
    *res.status_mut() = status;
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

impl SessionLayer {
    /// A layer with the secure default [`SessionConfig`].
    ///
    /// ```
    /// # use sessionware::{Keys, MemoryStore, SessionLayer};
    /// let layer = SessionLayer::new(MemoryStore::default(), Keys::generate().unwrap());
    /// ```
    pub fn new(store: impl SessionStore, keys: Keys) -> Self {
        Self {
            shared: Arc::new(Shared {
                store: Arc::new(store),
                keys,
                config: SessionConfig::default(),
                clock: Arc::new(SystemClock),
                on_load_error: Arc::new(|_| status_response(StatusCode::SERVICE_UNAVAILABLE)),
                on_save_error: Arc::new(|_| status_response(StatusCode::INTERNAL_SERVER_ERROR)),
            }),
        }
    }

    fn shared_mut(&mut self) -> &mut Shared {
        // Layers are configured before they are cloned into services.
        if Arc::get_mut(&mut self.shared).is_none() {
            self.shared = Arc::new(Shared {
                store: Arc::clone(&self.shared.store),
                keys: self.shared.keys.clone(),
                config: self.shared.config.clone(),
                clock: Arc::clone(&self.shared.clock),
                on_load_error: Arc::clone(&self.shared.on_load_error),
                on_save_error: Arc::clone(&self.shared.on_save_error),
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
    /// # use sessionware::{Keys, MemoryStore, SessionConfig, SessionLayer};
    /// let config = SessionConfig::builder().idle_timeout(Duration::from_secs(600)).build().unwrap();
    /// let layer = SessionLayer::new(MemoryStore::default(), Keys::generate().unwrap()).with_config(config);
    /// ```
    pub fn with_config(mut self, config: SessionConfig) -> Self {
        self.shared_mut().config = config;
        self
    }

    /// Uses `clock` as the time source (tests use [`ManualClock`](crate::ManualClock)).
    ///
    /// ```
    /// # use sessionware::{Keys, ManualClock, MemoryStore, SessionLayer};
    /// let layer = SessionLayer::new(MemoryStore::default(), Keys::generate().unwrap())
    ///     .with_clock(ManualClock::new(0));
    /// ```
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.shared_mut().clock = Arc::new(clock);
        self
    }

    /// The response sent when loading the session failed (default: an empty
    /// `503 Service Unavailable` with `Cache-Control: no-store`). The handler's
    /// own response is discarded: the request fails closed.
    ///
    /// ```
    /// # use http::{Response, StatusCode};
    /// # use sessionware::{Keys, MemoryStore, SessionLayer};
    /// let layer = SessionLayer::new(MemoryStore::default(), Keys::generate().unwrap())
    ///     .on_load_error(|_err| {
    ///         let mut res = Response::new(());
    ///         *res.status_mut() = StatusCode::BAD_GATEWAY;
    ///         res
    ///     });
    /// ```
    pub fn on_load_error(mut self, f: impl Fn(&SessionError) -> Response<()> + Send + Sync + 'static) -> Self {
        self.shared_mut().on_load_error = Arc::new(f);
        self
    }

    /// The response sent when saving the session failed (default: an empty
    /// `500 Internal Server Error` with `Cache-Control: no-store`). No cookie
    /// for the unsaved session is sent.
    ///
    /// ```
    /// # use http::{Response, StatusCode};
    /// # use sessionware::{Keys, MemoryStore, SessionLayer};
    /// let layer = SessionLayer::new(MemoryStore::default(), Keys::generate().unwrap())
    ///     .on_save_error(|_err| {
    ///         let mut res = Response::new(());
    ///         *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    ///         res
    ///     });
    /// ```
    pub fn on_save_error(mut self, f: impl Fn(&SessionError) -> Response<()> + Send + Sync + 'static) -> Self {
        self.shared_mut().on_save_error = Arc::new(f);
        self
    }

    /// The configuration in use.
    ///
    /// ```
    /// # use sessionware::{Keys, MemoryStore, SessionLayer};
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
