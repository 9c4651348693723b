//! The middleware, in the style of tower-http's `timeout/service.rs`:
//! [`CsrfLayer`] (its builder), the [`Csrf`] service it makes, and the
//! service's named [`ResponseFuture`]. The one place that decides whether
//! an unsafe request may reach the handler as far as tokens go.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::{CsrfReason, CsrfRefused};
use crate::{EventKind, Session, SessionError, SharedError};

/// The default header a token is read from.
const DEFAULT_HEADER: HeaderName = HeaderName::from_static("x-csrf-token");
/// The default form field a token is read from.
const DEFAULT_FIELD: &str = "csrf_token";
/// The default cap on a buffered form body (64 KiB).
const DEFAULT_MAX_FORM_BYTES: usize = 64 * 1024;

/// What a request without a token gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// It passes (the cross-origin check is the default defence); a
    /// presented token must still verify.
    VerifyPresented,
    /// It is refused: every unsafe request carries a valid token.
    Require,
}

#[derive(Debug, Clone)]
struct Settings {
    mode: Mode,
    header: HeaderName,
    field: Box<str>,
    max_form_bytes: usize,
}

/// Checks synchronizer CSRF tokens ([`Session::csrf_token`]) on unsafe
/// requests (R58–R60, R64; see the [module docs](crate::csrf)).
///
/// Put it *inside* the [`SessionLayer`](crate::SessionLayer): it uses the
/// request's [`Session`]; without one, every unsafe request gets a `500`
/// carrying [`SessionError::MissingLayer`] (a [`SharedError`]).
///
/// On an unsafe method (everything but `GET`, `HEAD`, `OPTIONS` and
/// `TRACE`; `PURGE` and other custom methods included) it reads the token
/// from the header (default `X-CSRF-Token`) or, without the header, from the
/// form field (default `csrf_token`) of an
/// `application/x-www-form-urlencoded` body, which it buffers up to a cap
/// (default 64 KiB; past it: `413`) and hands on to the handler byte for
/// byte. Never from the query string or a cookie (R60).
///
/// - [`CsrfLayer::new`]: a presented token must verify; a request without
///   one passes (the cross-origin check is the default defence).
/// - [`require_token`](Self::require_token): every unsafe request must carry
///   a valid token, with a session cookie or without (a login form gets one
///   from its pre-session, R64).
///
/// A refused request never reaches the handler: a `403` (or the `413` or
/// `400` of a form body past the cap or unreadable) with `Cache-Control:
/// no-store`, no body, a [`CsrfRefused`] in its extensions, and an
/// [`EventKind::CsrfRefused`] event. A repeated header or field is refused
/// ([`CsrfReason::Duplicate`]), never resolved by position.
///
/// ```
/// use axum::{body::Body, routing::{get, post}, Router};
/// use http::{Request, StatusCode};
/// use sessionware::{CsrfLayer, Keys, Session, SessionError, SessionLayer, store::MemoryStore};
/// use tower::{ServiceBuilder, ServiceExt};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let app = Router::new()
///     .route("/form", get(|session: Session| async move {
///         Ok::<_, SessionError>(session.csrf_token().await?.to_string())
///     }))
///     .route("/transfer", post(|| async { "done" }))
///     .layer(
///         ServiceBuilder::new()
///             .layer(SessionLayer::new(MemoryStore::default(), Keys::generate().unwrap()))
///             .layer(CsrfLayer::new().require_token()),
///     );
///
/// // The page that renders the form gets a token (and a pre-session).
/// let res = app.clone().oneshot(Request::get("/form").body(Body::empty()).unwrap()).await.unwrap();
/// let cookie = res.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
/// let token = String::from_utf8(axum::body::to_bytes(res.into_body(), 1024).await.unwrap().to_vec()).unwrap();
///
/// let transfer = |token: Option<&str>| {
///     let mut req = Request::post("/transfer").header("cookie", &cookie);
///     if let Some(token) = token {
///         req = req.header("x-csrf-token", token);
///     }
///     req.body(Body::empty()).unwrap()
/// };
/// assert_eq!(app.clone().oneshot(transfer(Some(&token))).await.unwrap().status(), StatusCode::OK);
/// assert_eq!(app.clone().oneshot(transfer(Some("forged"))).await.unwrap().status(), StatusCode::FORBIDDEN);
/// assert_eq!(app.clone().oneshot(transfer(None)).await.unwrap().status(), StatusCode::FORBIDDEN);
/// # });
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct CsrfLayer {
    settings: Arc<Settings>,
}

impl Default for CsrfLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl CsrfLayer {
    /// Verifies every token presented on an unsafe request; a request
    /// without one passes.
    ///
    /// ```
    /// let layer = sessionware::CsrfLayer::new();
    /// assert!(!layer.requires_token());
    /// ```
    pub fn new() -> Self {
        Self {
            settings: Arc::new(Settings {
                mode: Mode::VerifyPresented,
                header: DEFAULT_HEADER,
                field: DEFAULT_FIELD.into(),
                max_form_bytes: DEFAULT_MAX_FORM_BYTES,
            }),
        }
    }

    /// Requires a valid token on every unsafe request (opt-in).
    ///
    /// ```
    /// let layer = sessionware::CsrfLayer::new().require_token();
    /// assert!(layer.requires_token());
    /// ```
    pub fn require_token(mut self) -> Self {
        Arc::make_mut(&mut self.settings).mode = Mode::Require;
        self
    }

    /// Whether every unsafe request must carry a token.
    ///
    /// ```
    /// assert!(!sessionware::CsrfLayer::default().requires_token());
    /// ```
    pub fn requires_token(&self) -> bool {
        self.settings.mode == Mode::Require
    }

    /// The header a token is read from (default `X-CSRF-Token`).
    ///
    /// ```
    /// use http::HeaderName;
    /// let layer = sessionware::CsrfLayer::new().header_name(HeaderName::from_static("x-xsrf-token"));
    /// ```
    pub fn header_name(mut self, name: HeaderName) -> Self {
        Arc::make_mut(&mut self.settings).header = name;
        self
    }

    /// The form field a token is read from (default `csrf_token`).
    ///
    /// ```
    /// let layer = sessionware::CsrfLayer::new().form_field("_csrf");
    /// ```
    pub fn form_field(mut self, name: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.settings).field = name.into().into_boxed_str();
        self
    }

    /// The largest form body buffered to find the field (default 64 KiB);
    /// a larger one is refused with `413`.
    ///
    /// ```
    /// let layer = sessionware::CsrfLayer::new().max_form_bytes(16 * 1024);
    /// ```
    pub fn max_form_bytes(mut self, max: usize) -> Self {
        Arc::make_mut(&mut self.settings).max_form_bytes = max;
        self
    }
}

impl<S> Layer<S> for CsrfLayer {
    type Service = Csrf<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Csrf { inner, settings: Arc::clone(&self.settings) }
    }
}

/// The CSRF middleware; made by [`CsrfLayer`].
///
/// ```
/// use sessionware::{csrf::Csrf, CsrfLayer};
/// use tower::Layer;
/// let svc: Csrf<_> = CsrfLayer::new().layer(tower::service_fn(|_: http::Request<axum::body::Body>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
/// }));
/// assert!(format!("{svc:?}").starts_with("Csrf"));
/// ```
#[derive(Clone)]
pub struct Csrf<S> {
    inner: S,
    settings: Arc<Settings>,
}

impl<S> fmt::Debug for Csrf<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Csrf").field("settings", &self.settings).finish_non_exhaustive()
    }
}

/// Methods that are never checked (R58): they must not change state.
fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE)
}

/// Whether the body is a URL-encoded form (one `Content-Type`, its media
/// type compared without case, parameters ignored).
fn is_form(headers: &HeaderMap) -> bool {
    let mut values = headers.get_all(header::CONTENT_TYPE).iter();
    match (values.next(), values.next()) {
        (Some(v), None) => v.to_str().is_ok_and(|v| {
            v.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"))
        }),
        _ => false,
    }
}

/// Where the request's token is (or may be, in a form body).
enum Carrier {
    Header(HeaderValue),
    Form,
}

/// The token's carrier: the header (once), else a form body, else none.
fn carrier(headers: &HeaderMap, name: &HeaderName) -> Result<Option<Carrier>, CsrfReason> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (Some(_), Some(_)) => Err(CsrfReason::Duplicate),
        (Some(v), None) => Ok(Some(Carrier::Header(v.clone()))),
        (None, _) if is_form(headers) => Ok(Some(Carrier::Form)),
        (None, _) => Ok(None),
    }
}

/// The field's one value in a URL-encoded body (`Ok(None)`: absent).
fn form_field(body: &[u8], name: &str) -> Result<Option<Vec<u8>>, CsrfReason> {
    let mut found = None;
    for (k, v) in form_urlencoded::parse(body) {
        if k == name {
            if found.is_some() {
                return Err(CsrfReason::Duplicate);
            }
            found = Some(v.into_owned().into_bytes());
        }
    }
    Ok(found)
}

/// The refusal: no body, not cached, the typed reason in its extensions;
/// the event goes through the session's emitter.
fn refuse<B: Default>(session: &Session, reason: CsrfReason) -> Response<B> {
    let key = session.incoming().map(|i| i.key);
    session.emitter().emit(EventKind::CsrfRefused(reason), key.as_ref(), None);
    let mut res = Response::new(B::default());
    *res.status_mut() = reason.status();
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res.extensions_mut().insert(CsrfRefused { reason });
    res
}

/// No `SessionLayer` outside: a typed `500`, as the extractor's.
fn missing_layer<B: Default>() -> Response<B> {
    let mut res = Response::new(B::default());
    *res.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res.extensions_mut().insert(SharedError::from(SessionError::MissingLayer));
    res
}

/// The verdict on a presented token (`Err(Ok(reason))`: refused;
/// `Err(Err(e))`: the session could not be loaded).
async fn verify(session: &Session, token: &[u8]) -> Result<(), Result<CsrfReason, SessionError>> {
    match session.verify_csrf_bytes(token).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(Ok(CsrfReason::Invalid)),
        Err(e) => Err(Err(e)),
    }
}

/// The boxed check-then-call of a request that presents a token (or may,
/// in its form body).
type Checking<B, E> = Pin<Box<dyn Future<Output = Result<Response<B>, E>> + Send>>;

/// Checks the token in `carrier`, then calls `inner` (driven ready by
/// `Csrf::poll_ready`) with the request, its form body rebuilt from the
/// same bytes.
async fn check_then_call<S, ReqBody, ResBody>(
    mut inner: S,
    session: Session,
    settings: Arc<Settings>,
    carrier: Carrier,
    req: Request<ReqBody>,
) -> Result<Response<ResBody>, S::Error>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ReqBody: http_body::Body + From<Bytes>,
    ReqBody::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    ResBody: Default,
{
    let (req, verdict) = match carrier {
        Carrier::Header(value) => {
            let verdict = verify(&session, value.as_bytes()).await;
            (req, verdict)
        }
        Carrier::Form => {
            let (parts, body) = req.into_parts();
            let bytes = match Limited::new(body, settings.max_form_bytes).collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(e) if e.is::<LengthLimitError>() => return Ok(refuse(&session, CsrfReason::TooLarge)),
                Err(_) => return Ok(refuse(&session, CsrfReason::Unreadable)),
            };
            let verdict = match form_field(&bytes, &settings.field) {
                Ok(Some(token)) => verify(&session, &token).await,
                Ok(None) if settings.mode == Mode::Require => Err(Ok(CsrfReason::Missing)),
                Ok(None) => Ok(()),
                Err(reason) => Err(Ok(reason)),
            };
            (Request::from_parts(parts, ReqBody::from(bytes)), verdict)
        }
    };
    match verdict {
        Ok(()) => inner.call(req).await,
        Err(Ok(reason)) => Ok(refuse(&session, reason)),
        // The session layer answers a failed load with its load-error
        // response; this one is what it replaces.
        Err(Err(e)) => {
            let mut res = Response::new(ResBody::default());
            *res.status_mut() = e.status();
            res.extensions_mut().insert(SharedError::from(e));
            Ok(res)
        }
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Csrf<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: 'static,
    ReqBody: http_body::Body + From<Bytes> + Send + 'static,
    ReqBody::Data: Send,
    ReqBody::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    ResBody: Default + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        // Safe methods pay for one comparison (R58).
        if is_safe(req.method()) {
            return ResponseFuture::inner(self.inner.call(req));
        }
        let Some(session) = req.extensions().get::<Session>().cloned() else {
            return ResponseFuture::ready(missing_layer());
        };
        if !super::applies(&session) {
            return ResponseFuture::inner(self.inner.call(req));
        }
        let carrier = match carrier(req.headers(), &self.settings.header) {
            Ok(carrier) => carrier,
            Err(reason) => return ResponseFuture::ready(refuse(&session, reason)),
        };
        match (carrier, self.settings.mode) {
            (None, Mode::VerifyPresented) => ResponseFuture::inner(self.inner.call(req)),
            (None, Mode::Require) => ResponseFuture::ready(refuse(&session, CsrfReason::Missing)),
            (Some(carrier), _) => {
                // The service that was driven ready goes with the request.
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                let settings = Arc::clone(&self.settings);
                ResponseFuture::checking(Box::pin(check_then_call(inner, session, settings, carrier, req)))
            }
        }
    }
}

pin_project! {
    /// Response future of [`Csrf`]: the inner service's future as it is
    /// for a request that needs no check (a safe method; no token in the
    /// default mode); a boxed check-then-call for one that presents a
    /// token; or the refusal.
    ///
    /// ```
    /// use sessionware::csrf::ResponseFuture;
    /// fn assert_send<T: Send>() {}
    /// assert_send::<ResponseFuture<std::future::Ready<Result<http::Response<String>, ()>>, String, ()>>();
    /// ```
    pub struct ResponseFuture<F, B, E> {
        #[pin]
        kind: Kind<F, B, E>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, B, E> {
        Inner { #[pin] fut: F },
        Checking { fut: Checking<B, E> },
        Ready { res: Option<Response<B>> },
    }
}

impl<F, B, E> ResponseFuture<F, B, E> {
    fn inner(fut: F) -> Self {
        Self { kind: Kind::Inner { fut } }
    }

    fn checking(fut: Checking<B, E>) -> Self {
        Self { kind: Kind::Checking { fut } }
    }

    fn ready(res: Response<B>) -> Self {
        Self { kind: Kind::Ready { res: Some(res) } }
    }
}

impl<F, B, E> fmt::Debug for ResponseFuture<F, B, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F, B, E>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Inner { fut } => fut.poll(cx),
            KindProj::Checking { fut } => fut.as_mut().poll(cx),
            KindProj::Ready { res } => match res.take() {
                Some(res) => Poll::Ready(Ok(res)),
                None => panic!("csrf::ResponseFuture polled after completion"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_four_safe_methods_are_safe() {
        for m in ["GET", "HEAD", "OPTIONS", "TRACE"] {
            assert!(is_safe(&Method::from_bytes(m.as_bytes()).unwrap()), "{m}");
        }
        for m in ["POST", "PUT", "PATCH", "DELETE", "CONNECT", "PURGE", "get", "Get"] {
            assert!(!is_safe(&Method::from_bytes(m.as_bytes()).unwrap()), "R58: {m}");
        }
    }

    #[test]
    fn a_form_is_one_urlencoded_content_type() {
        let mut h = HeaderMap::new();
        assert!(!is_form(&h));
        h.insert(header::CONTENT_TYPE, "Application/X-WWW-Form-Urlencoded; charset=utf-8".parse().unwrap());
        assert!(is_form(&h));
        h.append(header::CONTENT_TYPE, "application/x-www-form-urlencoded".parse().unwrap());
        assert!(!is_form(&h), "two Content-Type headers: not read as a form");
        for other in ["multipart/form-data; boundary=x", "text/plain", "application/json", ""] {
            h.insert(header::CONTENT_TYPE, other.parse().unwrap());
            assert!(!is_form(&h), "{other}");
        }
    }

    #[test]
    fn the_field_is_found_once_decoded_and_a_repeat_is_refused() {
        assert_eq!(form_field(b"a=1&csrf_token=x%2Dy&b=2", "csrf_token"), Ok(Some(b"x-y".to_vec())));
        assert_eq!(form_field(b"a=1", "csrf_token"), Ok(None));
        assert_eq!(form_field(b"", "csrf_token"), Ok(None));
        assert_eq!(form_field(b"csrf_token=a&csrf_token=a", "csrf_token"), Err(CsrfReason::Duplicate));
        assert_eq!(form_field(b"\xff\xfe=%%%&&==", "csrf_token"), Ok(None), "malformed bytes are no field");
    }

    #[test]
    fn a_repeated_header_is_refused_and_the_header_wins_over_a_form() {
        let name = DEFAULT_HEADER;
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, "application/x-www-form-urlencoded".parse().unwrap());
        assert!(matches!(carrier(&h, &name), Ok(Some(Carrier::Form))));
        h.insert(&name, "t".parse().unwrap());
        assert!(matches!(carrier(&h, &name), Ok(Some(Carrier::Header(_)))));
        h.append(&name, "t".parse().unwrap());
        assert!(matches!(carrier(&h, &name), Err(CsrfReason::Duplicate)));
    }
}
