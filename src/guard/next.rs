//! The `next` parameter: the one home of what a login redirect may point
//! back to. [`safe_next`] decides it for the login handler, and a guard's
//! redirect ([`Challenge::login`](super::Challenge::login)) carries only a
//! `next` that `safe_next` accepts.

use http::{HeaderValue, Method};

/// The longest `next` accepted, in bytes: a return address, not a payload.
const MAX_NEXT: usize = 2048;

/// How many rounds of percent-decoding are looked through (a value still
/// changing after them is refused).
const DECODE_ROUNDS: usize = 4;

/// `next` if it is a safe place to send the user back to after signing in:
/// a path on this origin, such as `/cart?page=2`; `None` for anything else
/// (then redirect to a fixed page, such as `/`).
///
/// Use it in the login handler on the `next` parameter the guards add to the
/// login URL, which the client controls: redirecting to it unchecked is an
/// open redirect. Accepted: at most 2048 bytes of visible ASCII that start
/// with exactly one `/` (not `//host`, not `/\host`, which browsers read as
/// another host), with no backslash, no dot segment (`/../`) in the path,
/// and no control character, none of which may appear either once
/// percent-escapes are decoded (`/%2F%2Fevil.com`, `/%5Cevil.com`,
/// `/%0d%0a…`, also doubly encoded). A full URL (`https://…`,
/// `javascript:…`) is always refused, even one to this site. The value
/// accepted is returned as it came, so it is a valid `Location` header
/// value.
///
/// ```
/// use sessionware::guard::safe_next;
///
/// assert_eq!(safe_next("/cart?page=2"), Some("/cart?page=2"));
/// assert_eq!(safe_next("//evil.com"), None);
/// assert_eq!(safe_next("/\\evil.com"), None);
/// assert_eq!(safe_next("/%2F%2Fevil.com"), None);
/// assert_eq!(safe_next("https://evil.com"), None);
/// assert_eq!(safe_next("javascript:alert(1)"), None);
/// ```
pub fn safe_next(next: &str) -> Option<&str> {
    let raw = next.as_bytes();
    let ok = raw.len() <= MAX_NEXT
        && raw.iter().all(|c| c.is_ascii_graphic() && *c != b'\\')
        && shape_ok(raw)
        && decoded_ok(raw);
    ok.then_some(next)
}

/// One `/`, then not a second `/` or `\`; no control character; a path
/// (before `?` or `#`) without backslash or dot segment.
fn shape_ok(b: &[u8]) -> bool {
    let path = b.split(|c| matches!(c, b'?' | b'#')).next().unwrap_or(b);
    matches!(b, [b'/', rest @ ..] if !matches!(rest.first(), Some(b'/' | b'\\')))
        && !b.iter().any(u8::is_ascii_control)
        && !path.contains(&b'\\')
        && path.split(|c| *c == b'/').all(|segment| segment != b"." && segment != b"..")
}

/// Every round of percent-decoding keeps the shape (what a browser or a
/// second decoding in the application could turn it into).
fn decoded_ok(raw: &[u8]) -> bool {
    let mut current = raw.to_vec();
    for _ in 0..DECODE_ROUNDS {
        let decoded: Vec<u8> = percent_encoding::percent_decode(&current).collect();
        if decoded == current {
            return true;
        }
        if !shape_ok(&decoded) {
            return false;
        }
        current = decoded;
    }
    false
}

/// The `Location` of a redirect to `login` for a request of `method` to
/// `target` (its path and query): `login?next=<target, percent-encoded>`
/// (`&next=` when `login` has a query already). `next` is added only for a
/// `GET` or `HEAD` (a redirect cannot replay a form) and only when
/// [`safe_next`] accepts the target.
pub(crate) fn login_location(login: &HeaderValue, method: &Method, target: &str) -> HeaderValue {
    let replayable = *method == Method::GET || *method == Method::HEAD;
    let next = safe_next(target).filter(|_| replayable);
    let location = next.and_then(|next| {
        let login = login.to_str().ok()?;
        let separator = if login.contains('?') { '&' } else { '?' };
        let encoded: String = form_urlencoded::byte_serialize(next.as_bytes()).collect();
        HeaderValue::try_from(format!("{login}{separator}next={encoded}")).ok()
    });
    location.unwrap_or_else(|| login.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        for ok in ["/", "/a", "/a/b?c=d#e", "/a%20b", "/search?q=a%2Fb", "/p?x=100%25", "/a.b/.c/d..e"] {
            assert_eq!(safe_next(ok), Some(ok), "{ok}");
        }
        for bad in ["", "a", "/./a", "/a/..", "/a/%2e%2e/b", "/%5Cx", "/%00", "/%2525252F%2525252Fx"] {
            assert_eq!(safe_next(bad), None, "{bad}");
        }
        assert_eq!(safe_next(&format!("/{}", "a".repeat(MAX_NEXT))), None);
    }

    #[test]
    fn location() {
        let login = HeaderValue::from_static("/login");
        assert_eq!(login_location(&login, &Method::GET, "/a?b=c"), "/login?next=%2Fa%3Fb%3Dc");
        assert_eq!(login_location(&login, &Method::POST, "/a"), "/login");
        assert_eq!(login_location(&login, &Method::GET, "//evil.com"), "/login");
        let login = HeaderValue::from_static("/login?lang=en");
        assert_eq!(login_location(&login, &Method::HEAD, "/a"), "/login?lang=en&next=%2Fa");
    }
}
