//! The header transport, both ways: [`Field`] finds and verifies the
//! token in a request; [`add_headers`] decides every header the layer adds
//! to a response of a header layer (the token, `Vary`, `Cache-Control`).
//!
//! The rules (R65's, for a custom header rather than `Authorization`):
//! exactly one field of the configured name (a second one is no session,
//! never resolved by position); its value is exactly a token (no scheme,
//! nothing trimmed, unquoted or decoded; the token's fixed length caps what
//! is read); never the query string, the body or a cookie.

use http::{header, HeaderMap, HeaderName, HeaderValue, Response};

use crate::{cookie::Incoming, events::Emitter, keys::Purpose, Keys, RejectReason, SessionConfig, SessionId};

/// The default header name, `X-Session-Token` (as `http` keeps it).
pub(crate) const DEFAULT_NAME: &str = "x-session-token";

/// The request's session header, kept as it came (a reference count, no
/// copy) and verified only when the session is first used. `Debug` never
/// prints the value.
pub(crate) enum Field {
    Absent,
    One(HeaderValue),
    /// Several fields of the name: no session, whatever they hold.
    Many(usize),
}

impl std::fmt::Debug for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Absent => f.write_str("Absent"),
            Self::One(_) => f.write_str("One(<redacted>)"),
            Self::Many(n) => write!(f, "Many({n})"),
        }
    }
}

impl Field {
    /// Takes (a cheap clone of) the field named `name`, or counts them.
    pub(crate) fn of(name: &HeaderName, headers: &HeaderMap) -> Self {
        let mut all = headers.get_all(name).iter();
        let Some(first) = all.next() else { return Self::Absent };
        match all.count() {
            0 => Self::One(first.clone()),
            more => Self::Many(1 + more),
        }
    }

    /// The verified session, and whether a header was presented (valid or not).
    pub(crate) fn verify(&self, config: &SessionConfig, keys: &Keys, emit: &Emitter<'_>) -> (Option<Incoming>, bool) {
        let value = match self {
            Self::Absent => return (None, false),
            Self::Many(n) => {
                emit.rejected(RejectReason::DuplicateHeader, *n);
                return (None, true);
            }
            Self::One(value) => value.as_bytes(),
        };
        // `verify` checks the length first: a value of any other size is
        // refused without being decoded.
        match keys.verify_purpose(config.purpose(), value) {
            Ok(v) => {
                let key = v.id.storage_key();
                (Some(Incoming { id: v.id, key, reissue: v.by_old_key }), true)
            }
            Err(r) => {
                emit.rejected(r.reason(), value.len());
                (None, true)
            }
        }
    }
}

/// The token of `id` for the header `name`, signed by the first key.
pub(crate) fn token(name: &HeaderName, keys: &Keys, id: &SessionId) -> String {
    let mut out = String::with_capacity(crate::keys::TOKEN_ENCODED_LEN);
    keys.sign_purpose_into(Purpose::Header(name), id, &mut out);
    out
}

/// Adds a header layer's headers to a response of a request that used its
/// session: `Vary: <name>` always; with a token value (empty: drop the
/// token), the header `name` with it, marked sensitive, and
/// `Cache-Control: no-store`. Never a `Set-Cookie`. `false` if the value is
/// not a valid header (never expected: it is a token or empty).
pub(crate) fn add_headers<B>(res: &mut Response<B>, name: &HeaderName, value: Option<String>) -> bool {
    let headers = res.headers_mut();
    if !crate::cookie::write::varies_on(headers, name.as_str()) {
        headers.append(header::VARY, HeaderValue::from(name.clone()));
    }
    if let Some(token) = value {
        let Ok(mut value) = HeaderValue::try_from(token) else { return false };
        value.set_sensitive(true);
        // Insert, not append: the one value the client must keep.
        headers.insert(name.clone(), value);
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    true
}

/// Names refused for the header transport: the ones a browser sets itself
/// (Fetch's forbidden request-header names, `Sec-` and `Proxy-` included),
/// the CORS-safelisted ones (a page on any site may set them without a
/// preflight: the CSRF exemption would not hold), and the ones with an
/// HTTP meaning of their own.
pub(crate) fn is_refused(name: &HeaderName) -> bool {
    const REFUSED: &[&str] = &[
        // Fetch's forbidden request-header names.
        "accept-charset",
        "accept-encoding",
        "access-control-request-headers",
        "access-control-request-method",
        "connection",
        "content-length",
        "cookie",
        "cookie2",
        "date",
        "dnt",
        "expect",
        "host",
        "keep-alive",
        "origin",
        "referer",
        "set-cookie",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "via",
        // Method overrides, which Fetch forbids too.
        "x-http-method",
        "x-http-method-override",
        "x-method-override",
        // CORS-safelisted request headers.
        "accept",
        "accept-language",
        "content-language",
        "content-type",
        "range",
        // Credentials and framing with a meaning of their own.
        "authorization",
        "proxy-authorization",
        "www-authenticate",
        "cache-control",
        "vary",
        "user-agent",
    ];
    let name = name.as_str();
    REFUSED.contains(&name) || name.starts_with("sec-") || name.starts_with("proxy-")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (SessionConfig, Keys, String, SessionId) {
        let config = SessionConfig::builder().transport(crate::Transport::header()).build().unwrap();
        let keys = Keys::generate().unwrap();
        let id = SessionId::generate().unwrap();
        let token = keys.sign_for(&config, &id);
        (config, keys, token, id)
    }

    fn resolve(values: &[&[u8]], config: &SessionConfig, keys: &Keys) -> (Option<Incoming>, bool) {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(DEFAULT_NAME, HeaderValue::from_bytes(v).unwrap());
        }
        Field::of(&HeaderName::from_static(DEFAULT_NAME), &h).verify(config, keys, &Emitter::SILENT)
    }

    #[test]
    fn exactly_the_token() {
        let (c, k, t, id) = setup();
        assert_eq!(resolve(&[t.as_bytes()], &c, &k).0.unwrap().id, id);
        for bad in [
            format!("Bearer {t}"),
            format!("bearer {t}"),
            format!(" {t}"),
            format!("{t} "),
            format!("{t}\t"),
            format!("\"{t}\""),
            format!("{t}, {t}"),
            format!("{t},{t}"),
            format!("{t};"),
            format!("x-session-token={t}"),
            t[..t.len() - 1].to_string(),
            format!("{t}A"),
            String::new(),
        ] {
            let (incoming, presented) = resolve(&[bad.as_bytes()], &c, &k);
            assert!(incoming.is_none() && presented, "{bad:?}");
        }
        let mut h = HeaderMap::new();
        h.insert(DEFAULT_NAME, HeaderValue::from_bytes(format!("{t}\u{e9}").as_bytes()).unwrap());
        assert!(Field::of(&HeaderName::from_static(DEFAULT_NAME), &h).verify(&c, &k, &Emitter::SILENT).0.is_none());
    }

    #[test]
    fn two_fields_are_no_session_in_either_order() {
        let (c, k, t, _) = setup();
        let other = k.sign_for(&c, &SessionId::generate().unwrap());
        for values in [[t.as_bytes(), other.as_bytes()], [other.as_bytes(), t.as_bytes()], [t.as_bytes(), t.as_bytes()]]
        {
            let (incoming, presented) = resolve(&values, &c, &k);
            assert!(incoming.is_none() && presented);
        }
        assert!(resolve(&[b"garbage", t.as_bytes()], &c, &k).0.is_none());
    }

    #[test]
    fn an_oversized_value_is_refused_unread() {
        let (c, k, t, _) = setup();
        let big = format!("{t}{}", "A".repeat(1 << 20));
        let (incoming, presented) = resolve(&[big.as_bytes()], &c, &k);
        assert!(incoming.is_none() && presented);
    }

    #[test]
    fn debug_never_prints_the_token() {
        let (_, _, t, _) = setup();
        let field = Field::One(HeaderValue::from_str(&t).unwrap());
        assert!(!format!("{field:?}").contains(&t));
    }

    #[test]
    fn the_token_header_is_sensitive_not_cached_and_varied_on() {
        let name = HeaderName::from_static(DEFAULT_NAME);
        let mut res = Response::new(());
        assert!(add_headers(&mut res, &name, Some("tok".into())));
        assert!(res.headers()[&name].is_sensitive());
        assert_eq!(res.headers()[&name], "tok");
        assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
        assert_eq!(res.headers()[header::VARY], "x-session-token");
        assert!(res.headers().get(header::SET_COOKIE).is_none());
        // Used but unchanged: only `Vary`, and once.
        let mut res = Response::new(());
        res.headers_mut().insert(header::VARY, HeaderValue::from_static("Accept, X-Session-Token"));
        assert!(add_headers(&mut res, &name, None));
        assert_eq!(res.headers().get_all(header::VARY).iter().count(), 1);
        assert!(res.headers().get(&name).is_none() && res.headers().get(header::CACHE_CONTROL).is_none());
    }

    #[test]
    fn browser_set_safelisted_and_meaningful_names_are_refused() {
        for name in ["cookie", "authorization", "content-type", "accept", "origin", "sec-fetch-site", "proxy-x"] {
            assert!(is_refused(&HeaderName::from_static(name)), "{name}");
        }
        for name in ["x-session-token", "x-api-session", "session"] {
            assert!(!is_refused(&HeaderName::from_static(name)), "{name}");
        }
    }
}
