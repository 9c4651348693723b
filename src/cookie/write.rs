//! Every header a cookie layer adds to a response, decided in one place
//! (a header layer's are decided in `transport/header.rs`).

use http::{header, HeaderMap, HeaderValue, Response};

use crate::{Keys, Metadata, SessionConfig, SessionId};

/// `Max-Age` of the session cookie: a persistent session's cookie lives
/// until its absolute deadline (under the limits of its kind, see
/// `lifecycle/expiry.rs`), never more than 400 days; any other is a
/// browser-session cookie (no `Max-Age`). The idle deadline is enforced by
/// the layer, never left to the browser.
pub(crate) fn max_age(meta: &Metadata, now: u64, config: &SessionConfig) -> Option<u64> {
    meta.persistent.then(|| {
        let deadline = crate::lifecycle::expiry::absolute_deadline(meta, config);
        deadline.saturating_sub(now).min(crate::config::MAX_TIMEOUT_MS) / 1000
    })
}

/// The `Set-Cookie` value for the session `id`, signed by `keys`, built in
/// one buffer: `name=token` plus the configured attributes and `Max-Age`.
pub(crate) fn session_cookie(config: &SessionConfig, keys: &Keys, id: &SessionId, max_age: Option<u64>) -> String {
    let mut out = String::with_capacity(config.name.len() + 72 + config.attributes.len() + 24);
    out.push_str(&config.name);
    out.push('=');
    keys.sign_into(&config.name, id, &mut out);
    out.push_str(&config.attributes);
    if let Some(secs) = max_age {
        out.push_str("; Max-Age=");
        out.push_str(&secs.to_string());
    }
    out
}

/// The `Set-Cookie` value of an encrypted cookie session: `name=value`
/// (`value` is the sealed record, see `cookie/sealed.rs`) plus the
/// configured attributes and `Max-Age`, as [`session_cookie`] builds it.
pub(crate) fn sealed_cookie(config: &SessionConfig, value: &str, max_age: Option<u64>) -> String {
    let mut out = String::with_capacity(config.name.len() + 1 + value.len() + config.attributes.len() + 24);
    out.push_str(&config.name);
    out.push('=');
    out.push_str(value);
    out.push_str(&config.attributes);
    if let Some(secs) = max_age {
        out.push_str("; Max-Age=");
        out.push_str(&secs.to_string());
    }
    out
}

/// The removal cookie: the same name, path and domain, empty, `Max-Age=0`.
pub(crate) fn removal(config: &SessionConfig) -> String {
    config.removal.clone()
}

/// Adds the session's headers to a response of a request that used its
/// session: `Vary: Cookie` always; with a `Set-Cookie`, also
/// `Cache-Control: no-store`. The cookie value is marked sensitive (HTTP/2
/// header compression never indexes it). Returns `false` if the value is
/// not a valid header (never expected: it is built from validated parts).
pub(crate) fn add_headers<B>(res: &mut Response<B>, set_cookie: Option<String>) -> bool {
    let headers = res.headers_mut();
    if !varies_on(headers, "cookie") {
        headers.append(header::VARY, HeaderValue::from_static("cookie"));
    }
    if let Some(cookie) = set_cookie {
        let Ok(mut value) = HeaderValue::try_from(cookie) else { return false };
        value.set_sensitive(true);
        headers.append(header::SET_COOKIE, value);
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    true
}

/// Whether the response already varies on the request header `name` (or on everything).
pub(crate) fn varies_on(headers: &HeaderMap, name: &str) -> bool {
    headers.get_all(header::VARY).iter().any(|v| {
        v.to_str()
            .map(|s| s.split(',').any(|p| p.trim().eq_ignore_ascii_case(name) || p.trim() == "*"))
            .unwrap_or(false)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_only_for_persistent_sessions_and_never_past_the_deadline() {
        let config = SessionConfig::default();
        let mut meta = Metadata::new(0, 60_000, 3_600_000);
        assert_eq!(max_age(&meta, 1_000, &config), None);
        meta.persistent = true;
        assert_eq!(max_age(&meta, 1_000, &config), Some(3_599));
        assert_eq!(max_age(&meta, 9_000_000, &config), Some(0));
    }

    #[test]
    fn max_age_never_passes_the_persistent_limit_nor_400_days() {
        const DAY: u64 = 24 * 3600 * 1000;
        let mut meta = Metadata::new(0, DAY, u64::MAX);
        meta.persistent = true;
        // A stored deadline past the persistent absolute timeout (a record
        // from a laxer configuration): the cookie ends with the session.
        assert_eq!(max_age(&meta, 0, &SessionConfig::default()), Some(90 * DAY / 1000));
        let day = std::time::Duration::from_secs(DAY / 1000);
        let config = SessionConfig::builder().persistent_absolute_timeout(400 * day).build().unwrap();
        assert_eq!(max_age(&meta, 0, &config), Some(400 * DAY / 1000));
    }

    #[test]
    fn set_cookie_is_sensitive_and_not_cacheable() {
        let mut res = Response::new(());
        assert!(add_headers(&mut res, Some("a=b".into())));
        let value = res.headers().get(header::SET_COOKIE).unwrap();
        assert!(value.is_sensitive());
        assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
        assert_eq!(res.headers()[header::VARY], "cookie");
    }

    #[test]
    fn vary_is_not_repeated() {
        let mut res = Response::new(());
        res.headers_mut().insert(header::VARY, HeaderValue::from_static("Accept, Cookie"));
        assert!(add_headers(&mut res, None));
        assert_eq!(res.headers().get_all(header::VARY).iter().count(), 1);
        assert!(res.headers().get(header::CACHE_CONTROL).is_none());
    }
}
