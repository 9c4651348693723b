//! The decision, case by case (R58, R61), without a server.

use http::{HeaderMap, Method, Uri};

use super::*;

fn policy() -> CrossOrigin {
    CrossOrigin {
        enabled: true,
        trusted: vec![Origin::parse("https://admin.example").unwrap()],
        exempt: vec![Exempt::parse("/hooks/*").unwrap(), Exempt::parse("/ping").unwrap()],
        allow_http: false,
    }
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("host", "app.example".parse().unwrap());
    for (k, v) in pairs {
        h.append(http::header::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
    }
    h
}

fn check(method: &str, path: &str, pairs: &[(&str, &str)]) -> Result<(), CrossOriginReason> {
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    let uri: Uri = path.parse().unwrap();
    policy().check(&method, &uri, &headers(pairs)).map_err(|r| r.reason)
}

#[test]
fn unsafe_methods_from_another_site_are_refused() {
    for method in ["POST", "PUT", "PATCH", "DELETE", "PURGE"] {
        assert_eq!(
            check(method, "/x", &[("sec-fetch-site", "cross-site")]),
            Err(CrossOriginReason::CrossSite),
            "{method}"
        );
    }
    for method in ["GET", "HEAD", "OPTIONS", "TRACE"] {
        assert_eq!(check(method, "/x", &[("sec-fetch-site", "cross-site")]), Ok(()), "{method} is safe");
    }
}

#[test]
fn fetch_metadata_decides_first() {
    assert_eq!(check("POST", "/x", &[("sec-fetch-site", "same-origin")]), Ok(()));
    assert_eq!(check("POST", "/x", &[("sec-fetch-site", "none")]), Ok(()));
    assert_eq!(check("POST", "/x", &[("sec-fetch-site", "same-site")]), Err(CrossOriginReason::SameSite));
    assert_eq!(check("POST", "/x", &[("sec-fetch-site", "Same-Origin")]), Err(CrossOriginReason::Malformed));
    assert_eq!(check("POST", "/x", &[("sec-fetch-site", "whatever")]), Err(CrossOriginReason::Malformed));
    // A same-origin claim does not hide a second, cross-site one.
    assert_eq!(
        check("POST", "/x", &[("sec-fetch-site", "same-origin"), ("sec-fetch-site", "cross-site")]),
        Err(CrossOriginReason::Malformed)
    );
    // The site header wins over a matching Origin.
    assert_eq!(
        check("POST", "/x", &[("sec-fetch-site", "cross-site"), ("origin", "https://app.example")]),
        Err(CrossOriginReason::CrossSite)
    );
}

#[test]
fn trusted_origins_pass_from_another_site_and_only_whole() {
    assert_eq!(check("POST", "/x", &[("sec-fetch-site", "same-site"), ("origin", "https://admin.example")]), Ok(()));
    assert_eq!(check("POST", "/x", &[("sec-fetch-site", "cross-site"), ("origin", "https://admin.example")]), Ok(()));
    for near in ["http://admin.example", "https://admin.example:8443", "https://admin.example.evil.test", "null"] {
        assert_eq!(
            check("POST", "/x", &[("sec-fetch-site", "cross-site"), ("origin", near)]),
            Err(CrossOriginReason::CrossSite),
            "{near}"
        );
    }
}

#[test]
fn without_fetch_metadata_the_origin_is_compared_whole() {
    assert_eq!(check("POST", "/x", &[("origin", "https://app.example")]), Ok(()));
    assert_eq!(check("POST", "/x", &[("origin", "https://admin.example")]), Ok(()));
    for (origin, reason) in [
        ("http://app.example", CrossOriginReason::OriginMismatch),
        ("https://app.example.evil.test", CrossOriginReason::OriginMismatch),
        ("https://app.example:8443", CrossOriginReason::OriginMismatch),
        ("https://evil.test", CrossOriginReason::OriginMismatch),
        ("null", CrossOriginReason::NullOrigin),
        ("https://app.example/", CrossOriginReason::Malformed),
    ] {
        assert_eq!(check("POST", "/x", &[("origin", origin)]), Err(reason), "{origin}");
    }
    assert_eq!(
        check("POST", "/x", &[("origin", "https://app.example"), ("origin", "https://evil.test")]),
        Err(CrossOriginReason::Malformed)
    );
}

#[test]
fn a_request_without_either_header_is_not_from_a_browser() {
    assert_eq!(check("POST", "/x", &[]), Ok(()));
}

#[test]
fn without_either_header_a_referer_is_compared_as_the_origin() {
    assert_eq!(check("POST", "/x", &[("referer", "https://app.example/form?x=1")]), Ok(()));
    assert_eq!(check("POST", "/x", &[("referer", "https://admin.example/")]), Ok(()));
    assert_eq!(
        check("POST", "/x", &[("referer", "https://evil.test/csrf.html")]),
        Err(CrossOriginReason::OriginMismatch)
    );
    assert_eq!(check("POST", "/x", &[("referer", "/relative")]), Err(CrossOriginReason::Malformed));
    // Origin decides when present.
    assert_eq!(check("POST", "/x", &[("origin", "https://app.example"), ("referer", "https://evil.test/")]), Ok(()));
}

#[test]
fn a_websocket_handshake_is_checked_like_an_unsafe_request() {
    let ws = |site| [("upgrade", "websocket"), ("connection", "Upgrade"), ("sec-fetch-site", site)];
    assert_eq!(check("GET", "/ws", &ws("cross-site")), Err(CrossOriginReason::CrossSite));
    assert_eq!(check("GET", "/ws", &ws("same-site")), Err(CrossOriginReason::SameSite));
    assert_eq!(check("GET", "/ws", &ws("same-origin")), Ok(()));
    assert_eq!(
        check("GET", "/ws", &[("upgrade", "h2c, WebSocket"), ("origin", "https://evil.test")]),
        Err(CrossOriginReason::OriginMismatch)
    );
    assert_eq!(check("GET", "/x", &[("upgrade", "h2c"), ("sec-fetch-site", "cross-site")]), Ok(()), "not a socket");
}

#[test]
fn exempt_paths_are_exact_or_a_subtree() {
    let cross = [("sec-fetch-site", "cross-site")];
    assert_eq!(check("POST", "/hooks/stripe", &cross), Ok(()));
    assert_eq!(check("POST", "/ping", &cross), Ok(()));
    assert_eq!(check("POST", "/ping/x", &cross), Err(CrossOriginReason::CrossSite));
    assert_eq!(check("POST", "/hooksx", &cross), Err(CrossOriginReason::CrossSite));
    for dotted in [
        "/hooks/../admin",
        "/hooks/./x",
        "/hooks/%2e%2e/admin",
        "/hooks/%2E./admin",
        "/hooks/..%2fadmin",
        "/hooks/..;/admin",
    ] {
        assert_eq!(check("POST", dotted, &cross), Err(CrossOriginReason::CrossSite), "{dotted}");
    }
    assert!(Exempt::parse("hooks").is_none() && Exempt::parse("/a*b").is_none() && Exempt::parse("/a*").is_none());
    assert!(Exempt::parse("/*").is_none(), "everything exempt is dangerous_allow_cross_origin");
}

#[test]
fn plain_http_is_the_own_origin_only_for_insecure_cookies() {
    let mut p = policy();
    let uri: Uri = "/x".parse().unwrap();
    let h = headers(&[("origin", "http://app.example")]);
    assert!(p.check(&Method::POST, &uri, &h).is_err());
    p.allow_http = true;
    assert!(p.check(&Method::POST, &uri, &h).is_ok());
}

#[test]
fn http2_requests_use_their_authority() {
    let uri: Uri = "https://app.example/x".parse().unwrap();
    let mut h = HeaderMap::new();
    h.insert("origin", "https://app.example".parse().unwrap());
    assert!(policy().check(&Method::POST, &uri, &h).is_ok());
    h.insert("origin", "https://evil.test".parse().unwrap());
    assert!(policy().check(&Method::POST, &uri, &h).is_err());
}
