//! What every request of one layer shares: the store, the keys, the
//! configuration, the clock and the error responses; and the store call
//! wrapper that applies the store timeout.

use std::{fmt, sync::Arc};

use bytes::Bytes;
use http::{header, HeaderValue, Response};

use crate::{
    cookie::sealed::Sealer,
    events::{Emitter, EventHook},
    store::{Capability, Cutoffs, Leases, UserIndex},
    Clock, Keys, SessionConfig, SessionError, SessionStore, SharedError, StorageKey, StoreError,
};

/// Builds the response the layer sends when the session store fails
/// ([`SessionLayer::on_load_error`](crate::SessionLayer::on_load_error),
/// [`on_save_error`](crate::SessionLayer::on_save_error)).
///
/// Status, headers and body come from the hook; the layer adds
/// `Cache-Control: no-store` and attaches the
/// [`SharedError`](crate::SharedError) to the response extensions. The body
/// reaches the client when the inner service's body type is axum's `Body`,
/// `http_body_util::Full<Bytes>`, `String`, `Bytes` or `Vec<u8>`; with any
/// other body type the response has that type's default (empty) body.
///
/// ```
/// use std::sync::Arc;
/// use sessionware::ErrorResponder;
/// let respond: ErrorResponder = Arc::new(|err| {
///     let mut res = http::Response::new(bytes::Bytes::from_static(b"Please try again in a minute"));
///     *res.status_mut() = err.status();
///     res
/// });
/// # assert_eq!(respond(&sessionware::SessionError::Unavailable).status(), 503);
/// ```
pub type ErrorResponder = Arc<dyn Fn(&SessionError) -> Response<Bytes> + Send + Sync>;

/// Where a layer keeps its sessions.
#[derive(Clone)]
pub(crate) enum Backend {
    /// A server-side store; the cookie carries a signed ID.
    Store(Arc<dyn SessionStore>),
    /// Encrypted cookie sessions ([`CookieSessions`](crate::CookieSessions)):
    /// the cookie carries the sealed record, and no store is called.
    Cookies(Arc<Sealer>),
}

impl fmt::Debug for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Store(store) => f.debug_tuple("Store").field(store).finish(),
            Self::Cookies(sealer) => f.debug_tuple("Cookies").field(sealer).finish(),
        }
    }
}

/// The store of a cookie-session layer: there is none, and every call
/// fails closed. The request paths of such a layer never reach it (they
/// branch on [`Backend::Cookies`] first); it exists so that a path that
/// would reach it fails rather than pretends.
#[derive(Debug)]
struct NoStore;

fn no_store() -> StoreError {
    StoreError::Backend("encrypted cookie sessions have no server store".into())
}

#[async_trait::async_trait]
impl SessionStore for NoStore {
    async fn create(&self, _: &StorageKey, _: &crate::Record, _: u64) -> Result<bool, StoreError> {
        Err(no_store())
    }
    async fn lookup(&self, _: &StorageKey, _: u64) -> Result<Option<crate::Stored>, StoreError> {
        Err(no_store())
    }
    async fn apply(&self, _: &StorageKey, _: &crate::ChangeSet, _: u64) -> Result<bool, StoreError> {
        Err(no_store())
    }
    async fn rotate(&self, _: &StorageKey, _: &StorageKey, _: &crate::Rotation) -> Result<crate::Rotated, StoreError> {
        Err(no_store())
    }
    async fn delete(&self, _: &StorageKey, _: u64) -> Result<(), StoreError> {
        Err(no_store())
    }
}

/// What every request of one layer shares.
pub(crate) struct Shared {
    pub(crate) backend: Backend,
    /// The store's per-user index, if the layer was given one.
    pub(crate) index: Option<Arc<dyn UserIndex>>,
    /// The store's exclusive leases, if the layer was given them.
    pub(crate) leases: Option<Arc<dyn Leases>>,
    /// The store's cutoffs, if the layer was given them.
    pub(crate) cutoffs: Option<Arc<dyn Cutoffs>>,
    pub(crate) keys: Keys,
    pub(crate) config: SessionConfig,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) on_load_error: ErrorResponder,
    pub(crate) on_save_error: ErrorResponder,
    pub(crate) on_event: Option<EventHook>,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("backend", &self.backend)
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
        match &self.backend {
            Backend::Store(store) => &**store,
            Backend::Cookies(_) => &NoStore,
        }
    }

    /// The sealer of an encrypted-cookie-session layer (`None` on a store's).
    pub(crate) fn sealer(&self) -> Option<&Sealer> {
        match &self.backend {
            Backend::Cookies(sealer) => Some(sealer),
            Backend::Store(_) => None,
        }
    }

    /// The per-user index, or the typed error a layer without one gives.
    pub(crate) fn index(&self) -> Result<&dyn UserIndex, SessionError> {
        self.index.as_deref().ok_or(SessionError::Unsupported(Capability::UserIndex))
    }

    /// The exclusive leases, or the typed error a layer without them gives.
    pub(crate) fn leases(&self) -> Result<&dyn Leases, SessionError> {
        self.leases.as_deref().ok_or(SessionError::Unsupported(Capability::Leases))
    }

    /// The cutoffs, or the typed error a layer without them gives.
    pub(crate) fn cutoffs(&self) -> Result<&dyn Cutoffs, SessionError> {
        self.cutoffs.as_deref().ok_or(SessionError::Unsupported(Capability::Cutoffs))
    }

    /// Runs one store call under the configured timeout, reporting a failure.
    pub(crate) fn timed<'a, T>(
        &'a self,
        emit: Emitter<'a>,
        op: &'static str,
        key: Option<&'a StorageKey>,
        fut: StoreCall<'a, T>,
    ) -> Timed<'a, T> {
        Timed {
            shared: self,
            emit,
            op,
            key,
            fut,
            sleep: None,
            #[cfg(feature = "metrics")]
            started: std::time::Instant::now(),
        }
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
    emit: Emitter<'a>,
    op: &'static str,
    key: Option<&'a StorageKey>,
    fut: StoreCall<'a, T>,
    sleep: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
    #[cfg(feature = "metrics")]
    started: std::time::Instant,
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
        #[cfg(feature = "metrics")]
        crate::events::store_latency(this.op, this.started.elapsed());
        if let Err(e) = &result {
            this.emit.store_error(this.op, this.key, e);
        }
        Poll::Ready(result)
    }
}

/// The configured response for a session failure, with the error attached
/// to its extensions.
pub(crate) fn error_response<B: Default + 'static>(shared: &Shared, err: SessionError) -> Response<B> {
    let hook = if matches!(err, SessionError::Load(_) | SessionError::Unavailable) {
        &shared.on_load_error
    } else {
        &shared.on_save_error
    };
    let (mut parts, text) = hook(&err).into_parts();
    parts.headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    parts.extensions.insert(SharedError::from(err));
    Response::from_parts(parts, error_body(text))
}

/// The error response's body as the inner service's body type, for the
/// body types that can carry bytes (the layer is generic over any
/// `B: Default`, so this is decided by type, once per error response; any
/// other type gets its default body).
fn error_body<B: Default + 'static>(text: Bytes) -> B {
    use std::any::Any;
    let mut slot: Option<B> = None;
    let any: &mut dyn Any = &mut slot;
    #[cfg(feature = "axum")]
    if let Some(s) = any.downcast_mut::<Option<axum_core::body::Body>>() {
        *s = Some(axum_core::body::Body::from(text));
        return slot.unwrap_or_default();
    }
    if let Some(s) = any.downcast_mut::<Option<http_body_util::Full<Bytes>>>() {
        *s = Some(http_body_util::Full::new(text));
    } else if let Some(s) = any.downcast_mut::<Option<Bytes>>() {
        *s = Some(text);
    } else if let Some(s) = any.downcast_mut::<Option<Vec<u8>>>() {
        *s = Some(text.to_vec());
    } else if let Some(s) = any.downcast_mut::<Option<String>>() {
        *s = Some(String::from_utf8_lossy(&text).into_owned());
    }
    slot.unwrap_or_default()
}

/// A copy of a store error (the type holds no non-cloneable parts but is
/// not `Clone`, to keep its variants free to grow).
pub(crate) fn clone_store_error(e: &StoreError) -> StoreError {
    match e {
        StoreError::Backend(s) => StoreError::Backend(s.clone()),
        StoreError::Timeout => StoreError::Timeout,
        StoreError::Codec(s) => StoreError::Codec(s.clone()),
        StoreError::Capacity => StoreError::Capacity,
        StoreError::TooLarge => StoreError::TooLarge,
        StoreError::Connect(c) => StoreError::Connect(c.clone()),
    }
}
