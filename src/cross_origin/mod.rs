//! Cross-origin protection (R58, R61): [`CrossOrigin`], the one place that
//! decides whether a browser's request from another origin may act.

mod origin;

use http::{header, HeaderMap, HeaderValue, Method, Uri};

pub use origin::Origin;
use origin::Scheme;

/// Why a request was refused as cross-origin.
///
/// ```
/// use sessionware::CrossOriginReason;
/// assert_eq!(CrossOriginReason::CrossSite.as_str(), "cross_site");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CrossOriginReason {
    /// `Sec-Fetch-Site: cross-site`, from an untrusted origin.
    CrossSite,
    /// `Sec-Fetch-Site: same-site` (a sibling subdomain), untrusted.
    SameSite,
    /// An `Origin` that is neither this request's origin nor trusted.
    OriginMismatch,
    /// `Origin: null` (a sandboxed frame, a `data:` page, a redirect chain).
    NullOrigin,
    /// A header that is repeated, not valid, or of an unknown value.
    Malformed,
}

impl CrossOriginReason {
    /// The reason as `tracing` and metrics name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CrossSite => "cross_site",
            Self::SameSite => "same_site",
            Self::OriginMismatch => "origin_mismatch",
            Self::NullOrigin => "null_origin",
            Self::Malformed => "malformed",
        }
    }
}

/// The typed rejection of a cross-origin request: the `403` response the
/// layer sends instead of calling the handler carries it in its
/// extensions.
///
/// ```
/// use http::{HeaderMap, Method, Uri};
/// use sessionware::{CrossOriginReason, SessionConfig};
/// let mut headers = HeaderMap::new();
/// headers.insert("origin", "null".parse().unwrap());
/// let config = SessionConfig::default();
/// let refused = config.cross_origin().check(&Method::POST, &Uri::from_static("/"), &headers).unwrap_err();
/// assert_eq!(refused.reason, CrossOriginReason::NullOrigin);
/// assert_eq!(refused.to_string(), "cross-origin request refused (null_origin)");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cross-origin request refused ({})", reason.as_str())]
#[non_exhaustive]
pub struct CrossOriginRefused {
    /// Why.
    pub reason: CrossOriginReason,
}

/// The cross-origin policy of a [`SessionConfig`](crate::SessionConfig),
/// built by its builder.
///
/// Cross-origin protection (R58, R61): a browser on another origin cannot
/// make a state-changing request that carries the session cookie.
///
/// A session cookie is an ambient credential: the browser attaches it to a
/// form or `fetch` that another site sends to this one, and `SameSite=Lax`
/// stops only part of that (not a request from a sibling subdomain, not a
/// top-level `GET` that changes state, not an old browser). So the
/// [`SessionLayer`](crate::SessionLayer) refuses, before the handler runs,
/// every request with an unsafe method (anything but `GET`, `HEAD`,
/// `OPTIONS` and `TRACE`, unknown methods included) that a browser sent
/// from another origin, with a `403` that carries a [`CrossOriginRefused`]
/// in its extensions. It is on by default.
///
/// # How a request is judged
///
/// [`check`](Self::check) is the one place that decides:
///
/// 1. A safe method (but a `GET` that opens a WebSocket, whose socket acts
///    with the cookie), or a path that is exempt
///    ([`cross_origin_exempt`](crate::SessionConfigBuilder::cross_origin_exempt);
///    never one with a dot segment, however encoded), passes.
/// 2. `Sec-Fetch-Site` (every current browser sends it): `same-origin` and
///    `none` (the user typed or bookmarked it) pass; `same-site` and
///    `cross-site` pass only when the `Origin` is a trusted origin
///    ([`trusted_origin`](crate::SessionConfigBuilder::trusted_origin));
///    any other value is refused.
/// 3. Without it, `Origin` (every browser sends it with an unsafe
///    cross-origin request): it passes when it is the request's own origin
///    (the `Host` header, with `https`, or also `http` when the cookie is not
///    `Secure`) or a trusted one, compared whole (scheme, host and port); an
///    opaque `null` origin is refused.
/// 4. With neither header, the origin of `Referer` is compared the same way
///    (a browser too old for both, such as Firefox before 70, still sends
///    it unless the page removed it).
/// 5. With none of the three, the request is not from a current browser,
///    so it carries no ambient credential: it passes.
///
/// # Limits
///
/// - Safe methods are never checked: a `GET` handler must not change state.
/// - A sibling subdomain is another origin: list it as trusted if it may
///   post to this one.
/// - Behind a proxy that rewrites `Host`, the fallback of step 3 compares
///   against the rewritten host; list the public origin as trusted.
/// - It is not a substitute for CORS: it decides whether a request may act,
///   not whether a page may read the answer.
///
/// # Example
///
/// ```
/// use http::{HeaderMap, Method, Uri};
/// use sessionware::SessionConfig;
/// let config = SessionConfig::builder().trusted_origin("https://admin.example").build().unwrap();
/// let mut headers = HeaderMap::new();
/// headers.insert("host", "app.example".parse().unwrap());
/// headers.insert("sec-fetch-site", "cross-site".parse().unwrap());
/// headers.insert("origin", "https://evil.example".parse().unwrap());
/// let uri = Uri::from_static("/transfer");
/// assert!(config.cross_origin().check(&Method::POST, &uri, &headers).is_err());
/// assert!(config.cross_origin().check(&Method::GET, &uri, &headers).is_ok());
/// headers.insert("origin", "https://admin.example".parse().unwrap());
/// assert!(config.cross_origin().check(&Method::POST, &uri, &headers).is_ok());
/// ```
#[derive(Debug, Clone)]
pub struct CrossOrigin {
    pub(crate) enabled: bool,
    pub(crate) trusted: Vec<Origin>,
    pub(crate) exempt: Vec<Exempt>,
    /// Whether the request's own origin may also be `http` (cookies without
    /// `Secure`, for development).
    pub(crate) allow_http: bool,
}

/// A path that the check leaves alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Exempt {
    /// This path exactly.
    Path(String),
    /// Every path under this prefix (configured as `/prefix/*`; the prefix
    /// keeps its trailing `/`).
    Prefix(String),
}

impl Exempt {
    /// `/path`, or `/prefix/*` for a whole subtree; `None` if not a path.
    pub(crate) fn parse(pattern: &str) -> Option<Self> {
        if !pattern.starts_with('/') || pattern.len() > 1024 || pattern.bytes().any(|b| !b.is_ascii_graphic()) {
            return None;
        }
        match pattern.strip_suffix('*') {
            // `/*` would exempt everything: that is `dangerous_allow_cross_origin`.
            Some(prefix) if prefix.ends_with('/') && prefix.len() > 1 && !prefix.contains('*') => {
                Some(Self::Prefix(prefix.into()))
            }
            Some(_) => None,
            None if pattern.contains('*') => None,
            None => Some(Self::Path(pattern.into())),
        }
    }

    /// Whether `path` is exempt. A path with a dot segment (`/./`, `/../`,
    /// percent-encoded, behind an encoded slash or backslash, or with a `;`
    /// parameter) is never exempt: a proxy or router that normalises it
    /// later could route `/hooks/../admin` or `/hooks/..%2fadmin` to `/admin`.
    fn matches(&self, path: &str) -> bool {
        let hit = match self {
            Self::Path(p) => path == p,
            Self::Prefix(p) => path.starts_with(p.as_str()),
        };
        hit && !has_dot_segment(path)
    }
}

/// Whether `path` has a dot segment as a lenient normaliser reads it: `%2e`
/// as `.`, `%2f`, `%5c` and `\` as `/`, and a segment's `;` parameters
/// dropped (`..;/`).
fn has_dot_segment(path: &str) -> bool {
    let path = path.to_ascii_lowercase().replace("%2e", ".").replace("%2f", "/").replace("%5c", "/").replace('\\', "/");
    path.split('/').any(|seg| {
        let seg = seg.split(';').next().unwrap_or_default();
        seg == "." || seg == ".."
    })
}

/// Whether the request asks to become a WebSocket (`Upgrade: websocket`,
/// as a token of any `Upgrade` value, in any case).
fn is_websocket(headers: &HeaderMap) -> bool {
    headers.get_all(header::UPGRADE).iter().any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',').any(|t| t.trim().split('/').next().is_some_and(|p| p.eq_ignore_ascii_case("websocket")))
        })
    })
}

/// The origin of a `Referer` (an absolute URL): its scheme and authority.
fn referer_origin(referer: &HeaderValue) -> Option<Origin> {
    let uri: Uri = referer.to_str().ok()?.parse().ok()?;
    let (scheme, authority) = (uri.scheme_str()?, uri.authority()?);
    Origin::parse(&format!("{scheme}://{authority}"))
}

fn refused(reason: CrossOriginReason) -> Result<(), CrossOriginRefused> {
    Err(CrossOriginRefused { reason })
}

/// The one value of a header that must not repeat: `Ok(None)` when absent,
/// `Err` when repeated.
fn single(headers: &HeaderMap, name: header::HeaderName) -> Result<Option<&HeaderValue>, CrossOriginRefused> {
    let mut values = headers.get_all(name).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(CrossOriginRefused { reason: CrossOriginReason::Malformed });
    }
    Ok(first)
}

impl CrossOrigin {
    /// Whether the check runs (off only after
    /// [`dangerous_allow_cross_origin`](crate::SessionConfigBuilder::dangerous_allow_cross_origin)).
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Decides whether a request with `method`, `uri` and `headers` may
    /// reach the handler (see [`CrossOrigin`]).
    ///
    /// # Errors
    ///
    /// [`CrossOriginRefused`] with the reason, for a request a browser sent
    /// from another, untrusted origin.
    pub fn check(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> Result<(), CrossOriginRefused> {
        if !self.enabled {
            return Ok(());
        }
        let safe = matches!(*method, Method::HEAD | Method::OPTIONS | Method::TRACE)
            // A WebSocket handshake over HTTP/1.1 is a GET, but the socket
            // it opens acts with the cookie (over HTTP/2 it is a CONNECT).
            || (*method == Method::GET && !is_websocket(headers));
        if safe {
            return Ok(());
        }
        if self.exempt.iter().any(|e| e.matches(uri.path())) {
            return Ok(());
        }
        let origin = single(headers, header::ORIGIN)?;
        let fetch_site = single(headers, header::HeaderName::from_static("sec-fetch-site"))?;
        if let Some(site) = fetch_site {
            return match site.as_bytes() {
                b"same-origin" | b"none" => Ok(()),
                b"same-site" if self.is_trusted(origin) => Ok(()),
                b"cross-site" if self.is_trusted(origin) => Ok(()),
                b"same-site" => refused(CrossOriginReason::SameSite),
                b"cross-site" => refused(CrossOriginReason::CrossSite),
                _ => refused(CrossOriginReason::Malformed),
            };
        }
        let Some(origin) = origin else {
            // A browser that sends neither header (Firefox before 70) still
            // sends a Referer unless the page removed it: compared as the
            // origin. With none of the three, no browser sent this: it
            // carries no ambient credential.
            return match single(headers, header::REFERER)? {
                Some(referer) => self.check_origin(referer_origin(referer), uri, headers),
                None => Ok(()),
            };
        };
        if origin.as_bytes() == b"null" {
            return refused(CrossOriginReason::NullOrigin);
        }
        self.check_origin(origin.to_str().ok().and_then(Origin::parse), uri, headers)
    }

    /// An origin the request names (`None`: not a valid one) must be its
    /// own or a trusted one.
    fn check_origin(&self, origin: Option<Origin>, uri: &Uri, headers: &HeaderMap) -> Result<(), CrossOriginRefused> {
        let Some(origin) = origin else {
            return refused(CrossOriginReason::Malformed);
        };
        if self.is_own(&origin, uri, headers)? || self.trusted.contains(&origin) {
            return Ok(());
        }
        refused(CrossOriginReason::OriginMismatch)
    }

    fn is_trusted(&self, origin: Option<&HeaderValue>) -> bool {
        origin.and_then(|o| o.to_str().ok()).and_then(Origin::parse).is_some_and(|o| self.trusted.contains(&o))
    }

    /// Whether `origin` is the request's own: its `Host` (HTTP/1.1) or
    /// `:authority` (HTTP/2), under `https` (or `http` too, for cookies
    /// without `Secure`).
    fn is_own(&self, origin: &Origin, uri: &Uri, headers: &HeaderMap) -> Result<bool, CrossOriginRefused> {
        let host = match single(headers, header::HOST)? {
            Some(host) => host.to_str().ok(),
            None => uri.authority().map(http::uri::Authority::as_str),
        };
        let Some(host) = host else { return Ok(false) };
        let own = |scheme| Origin::of_host(scheme, host).is_some_and(|own| own == *origin);
        Ok(own(Scheme::Https) || (self.allow_http && own(Scheme::Http)))
    }
}

#[cfg(test)]
mod tests;
