//! How a layer carries its session: in a cookie ([`Transport::Cookie`],
//! `cookie/`) or in a request header ([`Transport::Header`], [`header`]).
//! One layer, one transport: a header layer never reads a cookie nor sets
//! one, and a cookie layer never reads the header.
//!
//! This module dispatches; each transport decides its own reading and its
//! own response headers: `cookie/read.rs` and `cookie/write.rs` for the
//! cookie, [`header`] for the header. Whether the cross-origin (CSRF) check
//! applies is decided here, in [`Transport::needs_csrf`].

pub(crate) mod header;

use http::{HeaderMap, HeaderName, Response};

use crate::{
    cookie::{
        read::{find, CookieHeaders},
        write::{add_headers, removal, session_cookie},
        Incoming,
    },
    events::Emitter,
    keys::Purpose,
    Keys, SessionConfig, SessionId,
};

/// Where a layer carries its session token (set with
/// [`SessionConfigBuilder::transport`](crate::SessionConfigBuilder::transport)).
///
/// - [`Cookie`](Self::Cookie) (the default): the session cookie, for
///   browsers.
/// - [`Header`](Self::Header): a request header, `X-Session-Token` by
///   default ([`Transport::header`]), for API and mobile clients. The
///   client sends the token as the whole value of exactly one such header
///   field; the layer sends it back in a response header of the same name
///   whenever the session gets a token (creation, login, renewal, a
///   re-issue under a new signing key), and never as a cookie.
///
/// A token is bound to its transport by its MAC: a cookie's token is
/// refused as a header token and the reverse, under the same keys and the
/// same name. An application that serves browsers and API clients nests
/// two layers on two routers over the same store and keys; a session
/// belongs to the transport that created it.
///
/// ```
/// use axum::{body::Body, routing::get, Router};
/// use http::Request;
/// use sessionware::{Keys, Session, SessionConfig, SessionLayer, Transport, store::MemoryStore};
/// use tower::ServiceExt;
///
/// async fn visits(session: Session) -> String {
///     let n: u64 = session.get("n").await.unwrap().unwrap_or(0) + 1;
///     session.insert("n", n).await.unwrap();
///     n.to_string()
/// }
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let (store, keys) = (MemoryStore::default(), Keys::generate().unwrap());
/// let api = SessionConfig::builder().transport(Transport::header()).build().unwrap();
/// let app: Router = Router::new()
///     .route("/", get(visits))
///     .layer(SessionLayer::new(store.clone(), keys.clone()))
///     .nest("/api", Router::new().route("/n", get(visits)).layer(SessionLayer::new(store, keys).with_config(api)));
///
/// let res = app.clone().oneshot(Request::get("/api/n").body(Body::empty()).unwrap()).await.unwrap();
/// assert!(res.headers().get("set-cookie").is_none());
/// let token = res.headers()["x-session-token"].clone();
/// let again = Request::get("/api/n").header("x-session-token", token).body(Body::empty()).unwrap();
/// let res = app.oneshot(again).await.unwrap();
/// let body = http_body_util::BodyExt::collect(res.into_body()).await.unwrap().to_bytes();
/// assert_eq!(&body[..], b"2");
/// # });
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Transport {
    /// The session cookie (see [`SessionConfig`]'s cookie settings).
    #[default]
    Cookie,
    /// The request header of this name, which carries exactly the token:
    /// no `Bearer ` scheme, no whitespace, one field. A second field of
    /// that name, or any other value, is no session. Cookies are ignored.
    ///
    /// A header session needs no CSRF defence, and the layer skips its
    /// cross-origin check: a browser never attaches this header by itself,
    /// and a page on another site can set it only through a CORS preflight
    /// the application answers (and only with a token it cannot read from
    /// this origin). The cookie settings and
    /// [`set_persistent`](crate::Session::set_persistent) have no effect
    /// on the client (no cookie lifetime); the idle and absolute timeouts
    /// are enforced by the layer as always.
    ///
    /// Names a browser sets itself, CORS-safelisted names and names with
    /// an HTTP meaning (`Cookie`, `Authorization`, `Content-Type`, …) are
    /// refused when the configuration is built.
    Header(HeaderName),
}

impl Transport {
    /// The header transport with the default name, `X-Session-Token`.
    ///
    /// ```
    /// use sessionware::Transport;
    /// let Transport::Header(name) = Transport::header() else { unreachable!() };
    /// assert_eq!(name, "x-session-token");
    /// ```
    pub fn header() -> Self {
        Self::Header(HeaderName::from_static(header::DEFAULT_NAME))
    }

    /// Whether the layer's cross-origin (CSRF) defence applies to its
    /// requests: for a session that a browser attaches by itself (a
    /// cookie), not for one the client must attach (a header). The one
    /// answer to "does CSRF apply on this layer", for every check that
    /// asks.
    pub(crate) fn needs_csrf(&self) -> bool {
        match self {
            Self::Cookie => true,
            Self::Header(_) => false,
        }
    }

    /// The header name refused for the header transport, if it is one.
    pub(crate) fn refused_name(&self) -> Option<&HeaderName> {
        match self {
            Self::Header(name) if header::is_refused(name) => Some(name),
            _ => None,
        }
    }
}

impl SessionConfig {
    /// What the layer's tokens are signed for: its cookie's name, or its
    /// header's.
    pub(crate) fn purpose(&self) -> Purpose<'_> {
        match &self.transport {
            Transport::Cookie => Purpose::Cookie(&self.name),
            Transport::Header(name) => Purpose::Header(name),
        }
    }
}

/// The request's session credentials, kept as they came (reference-counted
/// clones, no copy) and read only when the session is first used.
#[derive(Debug)]
pub(crate) enum Credentials {
    Cookies(CookieHeaders),
    Header(header::Field),
}

impl Credentials {
    /// Takes what the layer's transport reads from the request headers;
    /// nothing else.
    pub(crate) fn of(config: &SessionConfig, headers: &HeaderMap) -> Self {
        match &config.transport {
            Transport::Cookie => Self::Cookies(CookieHeaders::of(headers)),
            Transport::Header(name) => Self::Header(header::Field::of(name, headers)),
        }
    }

    /// Finds and verifies the presented session: the verified one, if
    /// any, and whether a credential was presented at all (valid or not).
    pub(crate) fn resolve(&self, config: &SessionConfig, keys: &Keys, emit: &Emitter<'_>) -> (Option<Incoming>, bool) {
        match self {
            Self::Cookies(cookies) => {
                let candidates = find(cookies, config, emit);
                (candidates.verify(config, keys, emit), candidates.presented)
            }
            Self::Header(field) => field.verify(config, keys, emit),
        }
    }
}

/// An opened encrypted cookie session: the cookie as an [`Incoming`]
/// (named by the digest of its value) and the record it carries.
pub(crate) type OpenedCookie = (Incoming, Box<crate::Record>);

impl Credentials {
    /// Finds and opens the presented encrypted cookie session
    /// ([`CookieSessions`](crate::CookieSessions)): the opened one, if any,
    /// and whether a cookie was presented at all. A header layer has none
    /// (a cookie-session layer refuses the header transport when built).
    pub(crate) fn open(
        &self,
        config: &SessionConfig,
        sealer: &crate::cookie::sealed::Sealer,
        emit: &Emitter<'_>,
    ) -> (Option<OpenedCookie>, bool) {
        match self {
            Self::Cookies(cookies) => {
                let (opened, presented) = crate::cookie::sealed::open_presented(cookies, config, sealer, emit);
                let opened = opened.map(|o| {
                    let mut id = [0u8; crate::ID_LEN];
                    id.copy_from_slice(&o.key.as_bytes()[..crate::ID_LEN]);
                    let incoming = Incoming { id: SessionId::from_bytes(id), key: o.key, reissue: o.by_old_key };
                    (incoming, Box::new(o.record))
                });
                (opened, presented)
            }
            Self::Header(_) => (None, false),
        }
    }
}

/// The response header value that gives the client `id`'s token (`max_age`
/// is the cookie's; a header has none).
pub(crate) fn issue(config: &SessionConfig, keys: &Keys, id: &SessionId, max_age: Option<u64>) -> String {
    match &config.transport {
        Transport::Cookie => session_cookie(config, keys, id, max_age),
        Transport::Header(name) => header::token(name, keys, id),
    }
}

/// The ID that an [`issue`]d value gives the client (`None` for a removal
/// value): for a commit that no response carries, which hands the ID on.
#[cfg(feature = "jwt")]
pub(crate) fn issued_id(config: &SessionConfig, keys: &Keys, value: &str) -> Option<SessionId> {
    let token = match &config.transport {
        Transport::Cookie => value.split(';').next()?.split_once('=')?.1,
        Transport::Header(_) => value,
    };
    keys.verify_purpose(config.purpose(), token.as_bytes()).ok().map(|v| v.id)
}

/// The response header value that tells the client to drop its token.
pub(crate) fn drop_token(config: &SessionConfig) -> String {
    match &config.transport {
        Transport::Cookie => removal(config),
        Transport::Header(_) => String::new(),
    }
}

/// Adds the session's headers to a response of a request that used its
/// session, with `value` (from [`issue`] or [`drop_token`]) if the token
/// changes. `false` if the value is not a valid header (never expected).
pub(crate) fn finish_headers<B>(res: &mut Response<B>, config: &SessionConfig, value: Option<String>) -> bool {
    match &config.transport {
        Transport::Cookie => add_headers(res, value),
        Transport::Header(name) => header::add_headers(res, name, value),
    }
}
