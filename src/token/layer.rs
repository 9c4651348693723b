//! [`TokenLayer`]: verifies `Authorization: Bearer` access tokens; the one
//! home of how the field is read and of the refusal's response.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{ready, Context, Poll},
    time::Duration,
};

use http::{header, HeaderMap, HeaderValue, Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::{
    verify::{Checker, Liveness, Mode, Verifier, MAX_TOKEN_LEN},
    AccessClaims, TokenConfigError, TokenError, TokenKeys, DEFAULT_CACHE_TTL, DEFAULT_LEEWAY, MAX_CACHE_TTL,
    MAX_LEEWAY,
};
use crate::{shared::Shared, Clock, SessionLayer, SystemClock};

/// What a layer is built from (kept to rebuild its verifier).
#[derive(Clone)]
struct Settings {
    keys: TokenKeys,
    issuer: Box<str>,
    audience: Box<str>,
    leeway: Duration,
    cache_ttl: Duration,
    clock: Arc<dyn Clock>,
    session: Option<Arc<Shared>>,
}

impl Settings {
    fn build(&self) -> Verifier {
        let mode = match &self.session {
            None => Mode::Stateless(Arc::clone(&self.clock)),
            Some(shared) => Mode::Checked(Checker::new(Arc::clone(shared), self.cache_ttl.as_millis() as u64)),
        };
        Verifier::new(self.keys.clone(), &self.issuer, &self.audience, self.leeway.as_secs(), mode)
    }
}

/// Verifies the access token of each request that presents one in
/// `Authorization: Bearer <token>`, and puts its [`AccessClaims`] into the
/// request extensions (the axum extractor reads them there).
///
/// - A request without a Bearer credential (no `Authorization` field, or
///   another scheme) passes untouched, with no claims: the
///   [`AccessClaims`] extractor refuses it, `Option<AccessClaims>` is `None`.
///   The token is never read from the query or a cookie.
/// - A request with an invalid token (or two `Authorization` fields, or a
///   Bearer credential that is not exactly one token68) gets `401` with
///   `WWW-Authenticate: Bearer error="invalid_token"`, `Cache-Control:
///   no-store` and an empty body, whatever the reason; the reason
///   ([`TokenError`]) is in the response's extensions. The inner service
///   does not run.
/// - In [checked](Self::checked) mode, a store failure gives 503.
///
/// See the [module documentation](super) for the two modes and the
/// revocation bound.
///
/// ```
/// use axum::{routing::get, Router};
/// use sessionware::token::{AccessClaims, TokenAlgorithm, TokenKey, TokenKeys, TokenLayer};
///
/// async fn whoami(claims: AccessClaims) -> String {
///     claims.sub
/// }
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let keys = TokenKeys::new([TokenKey::generate("k1", TokenAlgorithm::EdDsa)?])?;
/// let app: Router = Router::new()
///     .route("/whoami", get(whoami))
///     .layer(TokenLayer::new(keys, "https://auth.example", "api"));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct TokenLayer {
    settings: Settings,
    verifier: Arc<Verifier>,
}

impl fmt::Debug for TokenLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.settings;
        f.debug_struct("TokenLayer")
            .field("keys", &s.keys)
            .field("issuer", &s.issuer)
            .field("audience", &s.audience)
            .field("leeway", &s.leeway)
            .field("checked", &s.session.is_some())
            .field("cache_ttl", &s.cache_ttl)
            .finish()
    }
}

impl TokenLayer {
    /// A stateless verifier (no store) of tokens from `issuer` for
    /// `audience`, signed by a key of `keys`, with the default leeway
    /// ([`DEFAULT_LEEWAY`](super::DEFAULT_LEEWAY), 30 s). A token stays
    /// valid until its `exp`, even after its session ended.
    pub fn new(keys: TokenKeys, issuer: &str, audience: &str) -> Self {
        Self::from_settings(Settings {
            keys,
            issuer: issuer.into(),
            audience: audience.into(),
            leeway: DEFAULT_LEEWAY,
            cache_ttl: DEFAULT_CACHE_TTL,
            clock: Arc::new(SystemClock),
            session: None,
        })
    }

    fn from_settings(settings: Settings) -> Self {
        let verifier = Arc::new(settings.build());
        Self { settings, verifier }
    }

    /// Checked mode: each token's `sid` must also be a live session of its
    /// `sub` in `sessions`' store (with its cutoffs and per-user epochs),
    /// confirmed by one read of the per-user index and trusted for
    /// [`cache_ttl`](Self::cache_ttl). The session layer's clock is used.
    ///
    /// The read lists at most
    /// [`max_listed_sessions`](crate::SessionConfigBuilder::max_listed_sessions)
    /// of the user's sessions, the most recently used first: a token of a
    /// session beyond them counts as ended. Keep
    /// [`max_sessions_per_user`](crate::SessionConfigBuilder::max_sessions_per_user)
    /// within it where users may have that many sessions.
    ///
    /// # Errors
    ///
    /// [`TokenConfigError::NoUserIndex`] when the session layer's store has
    /// no per-user index.
    ///
    /// ```
    /// use sessionware::{Keys, SessionLayer, store::MemoryStore};
    /// use sessionware::token::{TokenAlgorithm, TokenKey, TokenKeys, TokenLayer};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let sessions = SessionLayer::new(MemoryStore::default(), Keys::generate()?);
    /// let keys = TokenKeys::new([TokenKey::generate("k1", TokenAlgorithm::EdDsa)?])?;
    /// let tokens = TokenLayer::new(keys, "https://auth.example", "api").checked(&sessions)?;
    /// assert!(format!("{tokens:?}").contains("checked: true"));
    /// # Ok(()) }
    /// ```
    pub fn checked(self, sessions: &SessionLayer) -> Result<Self, TokenConfigError> {
        if sessions.shared.index.is_none() {
            return Err(TokenConfigError::NoUserIndex);
        }
        let mut settings = self.settings;
        settings.session = Some(Arc::clone(&sessions.shared));
        Ok(Self::from_settings(settings))
    }

    /// The clock leeway for `exp`, `nbf` and `iat`, whole seconds.
    ///
    /// # Errors
    ///
    /// [`TokenConfigError::OutOfRange`] above [`MAX_LEEWAY`](super::MAX_LEEWAY) (60 s).
    pub fn leeway(self, leeway: Duration) -> Result<Self, TokenConfigError> {
        if leeway > MAX_LEEWAY {
            return Err(TokenConfigError::OutOfRange { what: "the token leeway", max: MAX_LEEWAY });
        }
        let mut settings = self.settings;
        settings.leeway = leeway;
        Ok(Self::from_settings(settings))
    }

    /// Checked mode: how long one store read's answer about a session is
    /// trusted, the bound within which a logout ends its tokens.
    ///
    /// # Errors
    ///
    /// [`TokenConfigError::OutOfRange`] when zero or above
    /// [`MAX_CACHE_TTL`](super::MAX_CACHE_TTL) (60 s).
    pub fn cache_ttl(self, ttl: Duration) -> Result<Self, TokenConfigError> {
        if ttl.is_zero() || ttl > MAX_CACHE_TTL {
            return Err(TokenConfigError::OutOfRange { what: "the token liveness cache TTL", max: MAX_CACHE_TTL });
        }
        let mut settings = self.settings;
        settings.cache_ttl = ttl;
        Ok(Self::from_settings(settings))
    }

    /// Stateless mode: the clock tokens' times are checked against (the
    /// system clock by default; checked mode uses the session layer's).
    pub fn clock(self, clock: Arc<dyn Clock>) -> Self {
        let mut settings = self.settings;
        settings.clock = clock;
        Self::from_settings(settings)
    }

    /// Checked mode: forgets what this verifier (and its clones) cached
    /// about the session `sid`, so that the next token of a session this
    /// process just ended (a logout, [`TokenSessions::logout`](super::TokenSessions::logout))
    /// is checked against the store at once instead of after
    /// [`cache_ttl`](Self::cache_ttl). Other processes still honour their
    /// own cache bound.
    ///
    /// ```
    /// use sessionware::{Keys, SessionHandle, SessionLayer, store::MemoryStore};
    /// use sessionware::token::{TokenAlgorithm, TokenKey, TokenKeys, TokenLayer};
    /// let sessions = SessionLayer::new(MemoryStore::default(), Keys::generate().unwrap());
    /// let keys = TokenKeys::new([TokenKey::generate("k1", TokenAlgorithm::EdDsa).unwrap()]).unwrap();
    /// let tokens = TokenLayer::new(keys, "https://auth.example", "api").checked(&sessions).unwrap();
    /// tokens.forget(&SessionHandle::generate()); // nothing cached: a no-op
    /// ```
    pub fn forget(&self, sid: &crate::SessionHandle) {
        self.verifier.forget(sid);
    }
}

impl<S> Layer<S> for TokenLayer {
    type Service = TokenService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TokenService { inner, verifier: Arc::clone(&self.verifier) }
    }
}

/// The service of a [`TokenLayer`].
#[derive(Clone)]
pub struct TokenService<S> {
    inner: S,
    verifier: Arc<Verifier>,
}

impl<S> fmt::Debug for TokenService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenService").finish_non_exhaustive()
    }
}

/// The Bearer credential of a request (RFC 6750 §2.1): `None` without one
/// (no `Authorization` field, or another scheme); an error for two fields,
/// or a Bearer credential that is not exactly one token68 within the cap.
fn bearer(headers: &HeaderMap) -> Option<Result<&str, TokenError>> {
    let mut fields = headers.get_all(header::AUTHORIZATION).iter();
    let value = fields.next()?.as_bytes();
    if fields.next().is_some() {
        return Some(Err(TokenError::Header));
    }
    let (scheme, token) = match value.iter().position(|&b| b == b' ') {
        Some(at) => value.split_at(at),
        None => (value, &b""[..]),
    };
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    // `1*SP b64token`: the scheme's one or more spaces, then exactly a token.
    let token = match token.iter().position(|&b| b != b' ') {
        Some(start) => token.split_at(start).1,
        None => &b""[..],
    };
    let body_end = token.iter().position(|&b| b == b'=').unwrap_or(token.len());
    let (body, padding) = token.split_at(body_end);
    let ok = !body.is_empty()
        && token.len() <= MAX_TOKEN_LEN
        && body.iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/'))
        && padding.iter().all(|&b| b == b'=');
    // token68 is ASCII, so the bytes are UTF-8.
    Some(std::str::from_utf8(token).ok().filter(|_| ok).ok_or(TokenError::Header))
}

/// The response to a refused token: 401 and `invalid_token` (503 when the
/// store could not answer), no body, the reason in the extensions.
fn refusal<B: Default>(err: TokenError) -> Response<B> {
    let mut res = Response::new(B::default());
    if err == TokenError::Unavailable {
        *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    } else {
        *res.status_mut() = StatusCode::UNAUTHORIZED;
        res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer error=\"invalid_token\""));
    }
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    tracing::debug!(target: "sessionware", reason = %err, "access token refused");
    res.extensions_mut().insert(err);
    res
}

type Check = Pin<Box<dyn Future<Output = Result<bool, TokenError>> + Send>>;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for TokenService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let verifier = &*self.verifier;
        let claims = match bearer(req.headers()) {
            None => return ResponseFuture::inner(self.inner.call(req)),
            Some(Err(e)) => return ResponseFuture::refused(e),
            Some(Ok(token)) => {
                let now = verifier.now_ms();
                match verifier.verify(token, now) {
                    Err(e) => return ResponseFuture::refused(e),
                    Ok(claims) => (claims, now),
                }
            }
        };
        let (claims, now) = claims;
        match verifier.cached(&claims, now) {
            Liveness::Live => {
                req.extensions_mut().insert(claims);
                ResponseFuture::inner(self.inner.call(req))
            }
            Liveness::Ended => ResponseFuture::refused(TokenError::SessionEnded),
            Liveness::Unknown => {
                let verifier = Arc::clone(&self.verifier);
                let (user, sid) = (claims.sub.clone(), claims.sid);
                let check: Check = Box::pin(async move {
                    match &verifier.mode {
                        Mode::Checked(checker) => checker.check(&user, sid, now).await,
                        Mode::Stateless(_) => Ok(true),
                    }
                });
                // The service that was polled ready runs the request.
                let clone = self.inner.clone();
                let ready = std::mem::replace(&mut self.inner, clone);
                ResponseFuture { state: State::Checking { check, pending: Some((req, claims, ready)) } }
            }
        }
    }
}

pin_project! {
    /// Response future of [`TokenService`]: the checked mode's store read
    /// (when the cache does not know the session), then the inner service;
    /// or the refusal.
    ///
    /// ```
    /// use sessionware::token::ResponseFuture;
    /// fn assert_send<T: Send>() {}
    /// type Svc = tower::util::BoxCloneService<http::Request<String>, http::Response<String>, ()>;
    /// assert_send::<ResponseFuture<Svc, String>>();
    /// ```
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, B>
    where
        S: Service<Request<B>>,
    {
        Inner { #[pin] fut: S::Future },
        Checking { check: Check, pending: Option<(Request<B>, AccessClaims, S)> },
        Refused { err: Option<TokenError> },
    }
}

impl<S: Service<Request<B>>, B> ResponseFuture<S, B> {
    fn inner(fut: S::Future) -> Self {
        Self { state: State::Inner { fut } }
    }

    fn refused(err: TokenError) -> Self {
        Self { state: State::Refused { err: Some(err) } }
    }
}

impl<S: Service<Request<B>>, B> fmt::Debug for ResponseFuture<S, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<S, B, ResBody> Future for ResponseFuture<S, B>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    ResBody: Default,
{
    type Output = Result<Response<ResBody>, S::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let mut this = self.as_mut().project();
            let next = match this.state.as_mut().project() {
                StateProj::Inner { fut } => return fut.poll(cx),
                StateProj::Refused { err } => {
                    return Poll::Ready(Ok(refusal(err.take().unwrap_or(TokenError::Malformed))));
                }
                StateProj::Checking { check, pending } => {
                    let live = ready!(check.as_mut().poll(cx));
                    match (live, pending.take()) {
                        (Ok(true), Some((mut req, claims, mut service))) => {
                            req.extensions_mut().insert(claims);
                            State::Inner { fut: service.call(req) }
                        }
                        (Ok(false), _) => State::Refused { err: Some(TokenError::SessionEnded) },
                        (Err(e), _) => State::Refused { err: Some(e) },
                        (Ok(true), None) => State::Refused { err: Some(TokenError::Unavailable) },
                    }
                }
            };
            this.state.set(next);
        }
    }
}
