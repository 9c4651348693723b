//! `SessionService`: the middleware service.

use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use crate::{future::ResponseFuture, resolve::find, session::Client, Session, SessionLayer};

/// The socket peer's address, from axum's `ConnectInfo` (never from
/// forwarding headers, which any client can send).
fn peer_ip<B>(req: &Request<B>) -> Option<std::net::IpAddr> {
    #[cfg(feature = "axum")]
    {
        req.extensions().get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip())
    }
    #[cfg(not(feature = "axum"))]
    {
        let _ = req;
        None
    }
}

/// The session middleware; made by [`SessionLayer`].
///
/// ```
/// use sessionware::{Keys, MemoryStore, SessionLayer, SessionService};
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
    /// # use sessionware::{Keys, MemoryStore, SessionLayer, SessionService};
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
    /// # use sessionware::{Keys, MemoryStore, SessionLayer, SessionService};
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
    /// # use sessionware::{Keys, MemoryStore, SessionLayer, SessionService};
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
    /// # use sessionware::{Keys, MemoryStore, SessionLayer, SessionService};
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
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let shared = &self.layer.shared;
        let candidates = find(req.headers(), &shared.config);
        let client = Client { user_agent: req.headers().get(http::header::USER_AGENT).cloned(), ip: peer_ip(&req) };
        let session = Session::new(shared.clone(), candidates, client);
        req.extensions_mut().insert(session.clone());
        ResponseFuture::new(self.inner.call(req), session)
    }
}
