//! Finding and verifying the session cookie in a request.
//!
//! The `Cookie` header is read byte by byte: pairs are split on `;` (one
//! space after it is skipped, as browsers send `; `), and the session cookie
//! is found only by exact, case-sensitive equality of the name. Nothing is
//! trimmed, unquoted, percent-decoded or case-folded, and `$Version`-style
//! legacy syntax means nothing. The total bytes and the number of pairs read
//! are capped. If several cookies carry the session name, a session is used
//! only when exactly one distinct ID among them verifies.

use http::{header::COOKIE, HeaderMap, HeaderValue};

use crate::{events::Emitter, keys::TOKEN_ENCODED_LEN, Keys, RejectReason, SessionConfig, SessionId, StorageKey};

/// The session cookie the request presented, after verification.
#[derive(Debug)]
pub(crate) struct Incoming {
    pub(crate) id: SessionId,
    pub(crate) key: StorageKey,
    /// Verified by an older key of the ring: re-issue under the first key.
    pub(crate) reissue: bool,
}

/// At most this many cookies with the session's name are examined.
pub(crate) const MAX_CANDIDATES: usize = 4;

type Token = [u8; TOKEN_ENCODED_LEN];

/// The session cookie values a request presented, not yet verified: the
/// MAC is checked only when the handler first uses the session, so a route
/// that never touches it pays nothing for verification.
#[derive(Debug, Default)]
pub(crate) struct Candidates {
    /// A cookie with the session's name was presented, valid or not.
    pub(crate) presented: bool,
    first: Option<Token>,
    more: Vec<Token>,
}

/// The request's `Cookie` header values, kept as they came (a reference
/// count each, no copy) and parsed only when the session is first used: a
/// route that never touches the session does not read them at all.
#[derive(Debug, Default)]
pub(crate) struct CookieHeaders {
    first: Option<HeaderValue>,
    /// HTTP/2 clients may split cookies over several headers.
    more: Vec<HeaderValue>,
}

impl CookieHeaders {
    /// Takes (cheap clones of) the `Cookie` header values.
    pub(crate) fn of(headers: &HeaderMap) -> Self {
        let mut all = headers.get_all(COOKIE).iter();
        let Some(first) = all.next() else { return Self::default() };
        Self { first: Some(first.clone()), more: all.cloned().collect() }
    }

    fn iter(&self) -> impl Iterator<Item = &HeaderValue> {
        self.first.iter().chain(&self.more)
    }
}

/// Finds the session cookie values (unverified) in the request's `Cookie` headers.
pub(crate) fn find(headers: &CookieHeaders, config: &SessionConfig, emit: &Emitter<'_>) -> Candidates {
    let mut first: Option<Token> = None;
    let mut more = Vec::new();
    let scanned = scan(headers, config, emit, |value| {
        let Ok(token) = Token::try_from(value) else {
            emit.rejected(RejectReason::Malformed, value.len());
            return;
        };
        if first.is_none() {
            first = Some(token);
        } else {
            more.push(token);
        }
    });
    match scanned {
        Ok(presented) => Candidates { presented, first, more },
        Err(presented) => Candidates { presented, ..Candidates::default() },
    }
}

/// Walks the request's `Cookie` headers and calls `each` with the value of
/// every cookie named exactly as the session's (at most
/// [`MAX_CANDIDATES`]). `Ok(presented)`: whether one was presented;
/// `Err(presented)` when a cap was hit, and nothing found may be used.
pub(crate) fn scan(
    headers: &CookieHeaders,
    config: &SessionConfig,
    emit: &Emitter<'_>,
    mut each: impl FnMut(&[u8]),
) -> Result<bool, bool> {
    let mut presented = false;
    let name = config.name.as_bytes();
    let mut total = 0usize;
    let mut pairs = 0usize;
    let mut count = 0usize;
    for value in headers.iter() {
        let bytes = value.as_bytes();
        total = total.saturating_add(bytes.len());
        if total > config.max_cookie_header_bytes {
            emit.rejected(RejectReason::CookieHeaderTooLarge, total);
            return Err(false);
        }
        let mut start = 0;
        while start <= bytes.len() {
            let end = memchr::memchr(b';', &bytes[start..]).map_or(bytes.len(), |i| start + i);
            let pair = &bytes[start..end];
            let first = start == 0;
            start = end + 1;
            pairs += 1;
            if pairs > config.max_cookie_pairs {
                emit.rejected(RejectReason::TooManyCookies, pairs);
                return Err(false);
            }
            let pair = if first { pair } else { pair.strip_prefix(b" ").unwrap_or(pair) };
            // Exact, case-sensitive name match: `name=` at the start of the pair.
            let eq = name.len();
            if pair.len() <= eq || pair[eq] != b'=' || &pair[..eq] != name {
                continue;
            }
            presented = true;
            count += 1;
            if count > MAX_CANDIDATES {
                emit.rejected(RejectReason::TooManySessionCookies, count);
                return Err(true);
            }
            each(&pair[eq + 1..]);
        }
    }
    Ok(presented)
}

impl Candidates {
    /// Verifies the candidates: a session is used only when exactly one
    /// distinct ID among them verifies.
    pub(crate) fn verify(&self, config: &SessionConfig, keys: &Keys, emit: &Emitter<'_>) -> Option<Incoming> {
        let mut chosen: Option<Incoming> = None;
        for token in self.first.iter().chain(&self.more) {
            let Some(incoming) = verify(token, config, keys, emit) else { continue };
            match &chosen {
                None => chosen = Some(incoming),
                Some(c) if c.id == incoming.id => {}
                Some(_) => {
                    emit.rejected(RejectReason::DuplicateCookie, 1 + self.more.len());
                    return None;
                }
            }
        }
        chosen
    }
}

/// Finds and verifies at once (tests).
#[cfg(test)]
pub(crate) fn resolve(headers: &HeaderMap, config: &SessionConfig, keys: &Keys) -> (Option<Incoming>, bool) {
    let found = find(&CookieHeaders::of(headers), config, &Emitter::SILENT);
    (found.verify(config, keys, &Emitter::SILENT), found.presented)
}

fn verify(value: &[u8], config: &SessionConfig, keys: &Keys, emit: &Emitter<'_>) -> Option<Incoming> {
    match keys.verify(&config.name, value) {
        Ok(v) => {
            let key = v.id.storage_key();
            Some(Incoming { id: v.id, key, reissue: v.by_old_key })
        }
        Err(r) => {
            emit.rejected(r.reason(), value.len());
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (SessionConfig, Keys, String, SessionId) {
        let config = SessionConfig::default();
        let keys = Keys::generate().unwrap();
        let id = SessionId::generate().unwrap();
        let token = keys.sign(&config.name, &id);
        (config, keys, token, id)
    }

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(COOKIE, HeaderValue::from_bytes(v.as_bytes()).unwrap());
        }
        h
    }

    #[test]
    fn exact_name_only() {
        let (c, k, t, id) = setup();
        assert_eq!(resolve(&headers(&[&format!("a=b; __Host-sid={t}")]), &c, &k).0.unwrap().id, id);
        assert_eq!(resolve(&headers(&[&format!("a=b;__Host-sid={t}")]), &c, &k).0.unwrap().id, id);
        for bad in [
            format!("=__Host-sid={t}"),
            format!(" __Host-sid={t}"),
            format!("a=b;  __Host-sid={t}"),
            format!("__host-sid={t}"),
            format!("__HOST-sid={t}"),
            format!("%5F%5FHost-sid={t}"),
            format!("__Host.sid={t}"),
            format!("__Host-sid ={t}"),
            format!("__Host-sid= {t}"),
            format!("__Host-sid={t} "),
            format!("$Version=1; __Host-sid=\"{t}\""),
            format!("__Host-sid={t}, x=y"),
            format!("__Host-sid={t}\t"),
        ] {
            assert!(resolve(&headers(&[&bad]), &c, &k).0.is_none(), "{bad:?}");
        }
    }

    #[test]
    fn split_headers_are_merged() {
        let (c, k, t, id) = setup();
        let h = headers(&["a=b", &format!("__Host-sid={t}")]);
        assert_eq!(resolve(&h, &c, &k).0.unwrap().id, id);
    }

    #[test]
    fn duplicates_never_resolve_by_position() {
        let (c, k, t, _) = setup();
        let other = k.sign(&c.name, &SessionId::generate().unwrap());
        for h in [
            headers(&[&format!("__Host-sid={t}; __Host-sid={other}")]),
            headers(&[&format!("__Host-sid={other}; __Host-sid={t}")]),
            headers(&[&format!("__Host-sid={t}"), &format!("__Host-sid={other}")]),
        ] {
            let (incoming, presented) = resolve(&h, &c, &k);
            assert!(incoming.is_none() && presented);
        }
        // Garbage next to a valid one: the valid one wins in either order.
        for h in [
            headers(&[&format!("__Host-sid=garbage; __Host-sid={t}")]),
            headers(&[&format!("__Host-sid={t}; __Host-sid=garbage")]),
        ] {
            assert!(resolve(&h, &c, &k).0.is_some());
        }
    }

    #[test]
    fn oversized_and_hostile_input_is_no_session() {
        let (c, k, t, _) = setup();
        let big = format!("{}; __Host-sid={t}", "a".repeat(1 << 20));
        assert!(resolve(&headers(&[&big]), &c, &k).0.is_none());
        let many = format!("{}__Host-sid={t}", "a=b; ".repeat(100_000));
        assert!(resolve(&headers(&[&many]), &c, &k).0.is_none());
        let mut h = HeaderMap::new();
        h.append(
            COOKIE,
            HeaderValue::from_bytes(b"__Host-sid=\xff\xfe\x00abc").unwrap_or(HeaderValue::from_static("x")),
        );
        h.append(COOKIE, HeaderValue::from_bytes(b"__Host-sid=\xff\xfeabc").unwrap());
        assert!(resolve(&h, &c, &k).0.is_none());
    }
}
