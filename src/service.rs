//! `SessionService`: the middleware service.

use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use crate::{future::ResponseFuture, resolve::CookieHeaders, Session, SessionLayer};

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
    ResBody: Default + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        // Only cheap clones of the `Cookie` header values: parsing, MAC
        // checks and store calls wait for the handler's first use.
        let session = Session::new(self.layer.shared.clone(), CookieHeaders::of(req.headers()));
        req.extensions_mut().insert(session.clone());
        ResponseFuture::new(self.inner.call(req), session)
    }
}
