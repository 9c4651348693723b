//! Review 12: attacks on the newest code (the auth guards and `safe_next`,
//! remembered sessions, connection errors, JWT access tokens).

mod common;

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use axum::{
    routing::{any, get, post},
    Router,
};
use common::*;
use http::{header, StatusCode};
use sessionware::{
    guard::{safe_next, RequireRecentAuth, RequireSignIn},
    Session, SessionError,
};

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

/// `/page` (GET) and `/any` (every method) behind `protect`; the handlers
/// count their calls.
fn guarded(h: &Harness, calls: &Arc<AtomicUsize>, protect: impl FnOnce(Router) -> Router) -> Router {
    let (a, b) = (Arc::clone(calls), Arc::clone(calls));
    let page = get(move || async move {
        a.fetch_add(1, Ordering::SeqCst);
        "secret page"
    });
    let every = any(move || async move {
        b.fetch_add(1, Ordering::SeqCst);
        "secret any"
    });
    protect(Router::new().route("/page", page).route("/any", every)).merge(handlers::routes()).layer(h.layer.clone())
}

/// Holds: HEAD, OPTIONS, WebDAV and made-up (lowercase `get`) methods
/// never reach a guarded handler anonymously, under either guard; a
/// redirect carries `next` only for GET and HEAD.
#[tokio::test]
async fn guards_refuse_every_method_anonymously() {
    let h = Harness::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let api = guarded(&h, &calls, |r| r.route_layer(RequireSignIn::api()));
    let recent = guarded(&h, &calls, |r| r.route_layer(RequireRecentAuth::within(MINUTE)));
    let html = guarded(&h, &calls, |r| r.route_layer(RequireSignIn::redirect_to("/login")));
    for app in [&api, &recent] {
        for (method, uri) in [
            ("HEAD", "/page"),
            ("GET", "/page"),
            ("OPTIONS", "/any"),
            ("PROPFIND", "/any"),
            ("get", "/any"),
            ("HEAD", "/any"),
            ("TRACE", "/any"),
        ] {
            let res = send(app, req(method, uri, None)).await;
            assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{method} {uri}");
        }
    }
    let res = send(&html, req("HEAD", "/page", None)).await;
    assert_eq!(res.headers()[header::LOCATION], "/login?next=%2Fpage");
    for method in ["OPTIONS", "PROPFIND", "get", "POST"] {
        let res = send(&html, req(method, "/any", None)).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{method}");
        assert_eq!(
            res.headers()[header::LOCATION],
            "/login",
            "{method}: no next for a method a redirect cannot replay"
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0, "no handler ran");
}

/// Holds: an absolute-form request target (`GET http://evil.com//evil.com/x`)
/// or a path that starts with `//` or `/\` never becomes the `next` of the
/// redirect; nor does one that only a nested router's original URI shows.
#[tokio::test]
async fn redirect_next_from_hostile_request_targets() {
    let h = Harness::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let inner: Router =
        Router::new().route("/{*rest}", get(|| async { "inner" })).route_layer(RequireSignIn::redirect_to("/login"));
    let app = Router::new()
        .nest("/shop", inner)
        .merge(guarded(&h, &calls, |r| r.route_layer(RequireSignIn::redirect_to("/login"))))
        .layer(h.layer.clone());
    for target in ["http://evil.com//evil.com/page", "http://evil.com/%2F%2Fevil.com", "//evil.com/page"] {
        let Ok(uri) = target.parse::<http::Uri>() else { continue };
        let request = http::Request::get(uri).body(axum::body::Body::empty()).unwrap();
        let res = send(&app, request).await;
        if let Some(location) = res.headers().get(header::LOCATION) {
            let next = location.to_str().unwrap();
            assert!(next == "/login" || !next.contains("evil"), "{target} -> {next}");
        }
    }
    // The original path under the nest is kept: `/shop/...` stays on this origin.
    let res = send(&app, req("GET", "/shop/%2F%2Fevil.com", None)).await;
    assert_eq!(res.headers()[header::LOCATION].to_str().unwrap(), "/login?next=%2Fshop%2F%252F%252Fevil.com");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

/// Holds: `safe_next` refuses payloads beyond the earlier list (tab and
/// newline splitting, mixed encodings of `//` and `\`, triple encoding,
/// dot segments spelled with `%2e`, a leading space, non-ASCII, an
/// over-long value) and accepts ordinary paths.
#[test]
fn safe_next_more_open_redirect_payloads() {
    for bad in [
        "/%09/evil.com",
        "/%2f%5cevil.com",
        "/%5c%2fevil.com",
        "/%252f%252fevil.com",
        "/%25252f%25252fevil.com",
        "/.%2e/%2e./evil",
        "/%2e%2e%2f%2e%2e%2fevil",
        " /evil.com",
        "\t//evil.com",
        "/\u{FF0F}evil.com",
        "/%0a/evil.com",
        "/%7f",
        "///evil.com",
        "/%2F/evil.com",
        "https:/evil.com",
        "http:evil.com",
        "/\\/evil.com",
    ] {
        assert_eq!(safe_next(bad), None, "{bad:?}");
    }
    assert_eq!(safe_next(&format!("/{}", "%25".repeat(700))), None, "over 2048 bytes");
    for ok in ["/account", "/a?next=%2F%2Fevil.com", "/search?q=%5C", "/@evil.com"] {
        assert_eq!(safe_next(ok), Some(ok), "{ok:?}");
    }
}

async fn sign_in(
    session: Session,
    axum::extract::Path((user, remember)): axum::extract::Path<(String, String)>,
) -> Result<(), SessionError> {
    session.login(user).await?;
    session.set_persistent(remember == "yes").await
}

fn persistent_routes(h: &Harness) -> Router {
    handlers::routes()
        .route("/sign-in/{user}/{remember}", post(sign_in))
        .route("/forget", post(|s: Session| async move { s.set_persistent(false).await }))
        .layer(h.layer.clone())
}

async fn cookie_of(app: &Router, method: &str, uri: &str, cookie: Option<&str>) -> String {
    let res = send(app, req(method, uri, cookie)).await;
    assert_eq!(res.status(), StatusCode::OK, "{method} {uri}");
    session_cookie(&res).unwrap_or_else(|| cookie.unwrap_or_default().to_string())
}

/// Holds: a request held since before "forget me" (it loaded the
/// remembered session) writes after it: the session keeps the normal
/// absolute timeout from its sign-in, even kept busy every 20 minutes.
#[tokio::test]
async fn a_stale_write_cannot_restore_the_remembered_absolute_window() {
    let h = Harness::new();
    let app = persistent_routes(&h);
    let cookie = cookie_of(&app, "POST", "/sign-in/alice/yes", None).await;
    h.clock.advance(HOUR);
    let stale = hold(&h, &app, "POST", "/set/x", &cookie).await;
    let cookie = cookie_of(&app, "POST", "/forget", Some(&cookie)).await;
    release(&h);
    assert_eq!(stale.await.unwrap().status(), StatusCode::OK);
    let mut alive_until = 1;
    for step in 1..=40 {
        h.clock.advance(20 * MINUTE);
        if who(&app, &cookie).await.0 != StatusCode::OK {
            break;
        }
        alive_until = step;
    }
    // Sign-in at 0, forgotten at 1 h: 12 h from the sign-in, 20-minute steps.
    assert!(alive_until * 20 < 12 * 60, "alive {} minutes after the sign-in", 60 + alive_until * 20);
}

/// Holds: a stolen normal session's cookie cannot be stretched by
/// "remember me" then "forget me" then "remember me" (each request keeps
/// the absolute deadline of the sign-in), nor by renewing its ID.
#[tokio::test]
async fn remember_forget_remember_renew_cannot_stretch_a_stolen_cookie() {
    let h = Harness::new();
    let app = persistent_routes(&h);
    let mut cookie = cookie_of(&app, "POST", "/sign-in/alice/no", None).await;
    for uri in ["/remember", "/forget", "/remember", "/renew", "/remember"] {
        h.clock.advance(10 * MINUTE);
        cookie = cookie_of(&app, "POST", uri, Some(&cookie)).await;
    }
    for _ in 0..40 {
        h.clock.advance(20 * MINUTE);
        let _ = send(&app, req("POST", "/remember", Some(&cookie))).await;
    }
    assert_eq!(who(&app, &cookie).await.0, StatusCode::UNAUTHORIZED, "ended 12 hours after the sign-in");
}

/// Holds: an anonymous session (a cart) kept busy, then "remembered" by a
/// later request, still ends at the normal absolute timeout of its creation.
#[tokio::test]
async fn an_anonymous_session_cannot_be_remembered_later_for_months() {
    let h = Harness::new();
    let app = persistent_routes(&h);
    let cookie = cookie_of(&app, "POST", "/incr", None).await;
    h.clock.advance(10 * MINUTE);
    let cookie = cookie_of(&app, "POST", "/remember", Some(&cookie)).await;
    for _ in 0..37 {
        h.clock.advance(20 * MINUTE);
        let _ = send(&app, req("POST", "/incr", Some(&cookie))).await;
    }
    let res = send(&app, req("GET", "/read", Some(&cookie))).await;
    assert_eq!(body(res).await, "none", "the cart ended 12 hours after its creation");
}

/// The passwords in `url`, raw and percent-decoded, are in neither the
/// `Display` nor the `Debug` of `err`.
#[allow(dead_code)]
fn assert_no_secret(err: &sessionware::store::StoreError, url: &str, secrets: &[&str]) {
    for text in [err.to_string(), format!("{err:?}")] {
        for s in secrets {
            assert!(!text.contains(s), "{url}: {s:?} leaked in {text}");
        }
    }
}

/// Holds: a Redis URL's password, in any form (empty user, user, unix
/// socket query, percent-encoded), never reaches the error of a failed
/// connection or of an invalid URL.
#[cfg(feature = "redis")]
#[tokio::test]
async fn redis_connect_errors_never_carry_the_password() {
    use sessionware::store::RedisStore;
    for (url, secrets) in [
        ("redis://:hunter2@127.0.0.1:1", &["hunter2"][..]),
        ("redis://user:hunter2@127.0.0.1:1/0", &["hunter2"]),
        ("redis://:p%40ss%2Fw0rd@[::1]:1", &["p%40ss", "p@ss/w0rd"]),
        ("redis://:hunter2@host:notaport", &["hunter2"]),
        ("redis+unix:///nonexistent/redis.sock?pass=hunter2", &["hunter2"]),
        ("redis://u:hunter2@[::1", &["hunter2"]),
    ] {
        let err = RedisStore::connect(url).await.expect_err(url);
        assert_no_secret(&err, url, secrets);
    }
}

/// Holds: a PostgreSQL or MySQL URL's password (userinfo, `?password=`,
/// both, percent-encoded, IPv6 host, unix socket) never reaches the error.
#[cfg(all(feature = "postgres", feature = "mysql"))]
#[tokio::test]
async fn sql_connect_errors_never_carry_the_password() {
    use sessionware::store::SqlStore;
    for (url, secrets) in [
        ("postgres://u:hunter2@127.0.0.1:1/db", &["hunter2"][..]),
        ("postgres://u:hunter2@127.0.0.1:1/db?password=hunter3", &["hunter2", "hunter3"]),
        ("postgres://u@127.0.0.1:1/db?sslmode=disable&password=hunter3", &["hunter3"]),
        ("postgres://u:p%40ss%2Fw0rd@127.0.0.1:1/db", &["p%40ss", "p@ss/w0rd"]),
        ("postgres://u:hunter2@%2Fnonexistent%2Fdir/db", &["hunter2"]),
        ("postgres://u:hunter2@h:notaport/db", &["hunter2"]),
    ] {
        let err = SqlStore::postgres(url).await.expect_err(url);
        assert_no_secret(&err, url, secrets);
    }
    for (url, secrets) in [
        ("mysql://u:hunter2@[::1]:1/db", &["hunter2"][..]),
        ("mariadb://u:hunter2@127.0.0.1:1/db", &["hunter2"]),
        ("mysql://u:p%40ss%2Fw0rd@127.0.0.1:1/db", &["p%40ss", "p@ss/w0rd"]),
        ("mysql://u:hunter2@h:notaport/db", &["hunter2"]),
        ("mysql://u:hunter2@[::1/db", &["hunter2"]),
    ] {
        let err = SqlStore::mysql(url).await.expect_err(url);
        assert_no_secret(&err, url, secrets);
    }
}

/// Holds: a rejected key's error and a key ring's `Debug` never carry key
/// material (the bad key's text, nor the bytes of a good one).
#[test]
fn key_errors_and_debug_never_carry_key_material() {
    use base64::{engine::general_purpose::STANDARD, Engine as _};
    use sessionware::Keys;
    let good = STANDARD.encode(b"0123456789abcdefghijklmnopqrstuvwxyzABCD");
    for list in [
        format!("{good},c2VjcmV0LXNlY3JldC1zZWNyZXQ!!"),
        format!("{good},c2VjcmV0"),
        format!("{good},{good}"),
        format!("{good},{}", STANDARD.encode([7u8; 48])),
    ] {
        let err = Keys::from_base64_list(&list).expect_err(&list);
        for text in [err.to_string(), format!("{err:?}")] {
            for part in list.split(',') {
                assert!(!text.contains(part), "{part} leaked in {text}");
            }
            assert!(!text.contains("0123456789abcdef") && !text.contains("secret"), "{text}");
        }
    }
    let keys = Keys::from_base64_list(&good).unwrap();
    let debug = format!("{keys:?}");
    assert!(!debug.contains(&good) && !debug.contains("0123456789") && !debug.contains("48, 49, 50"), "{debug}");
}

#[cfg(feature = "jwt")]
mod tokens {
    use std::sync::Arc;

    use axum::{
        body::Body,
        extract::Path,
        http::{header, Request},
        routing::{get, post},
        Router,
    };
    use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
    use sessionware::{
        token::{AccessClaims, TokenAlgorithm, TokenIssuer, TokenKey, TokenKeys, TokenLayer},
        Session,
    };

    use super::common::{body, send, session_cookie, Harness};

    const ISS: &str = "https://auth.test";
    const AUD: &str = "api";

    fn app(h: &Harness, issuer: &TokenIssuer, tokens: TokenLayer) -> Router {
        let issuer = issuer.clone();
        Router::new()
            .route("/whoami", get(|c: AccessClaims| async move { format!("{} {}", c.sub, c.sid) }))
            .route("/login/{user}", post(|s: Session, Path(u): Path<String>| async move { s.login(u).await }))
            .route("/token", post(move |s: Session| async move { issuer.mint(&s).await.unwrap_or_default() }))
            .layer(tokens)
            .layer(h.layer.clone())
    }

    fn bearer(token: &str) -> Request<Body> {
        Request::get("/whoami").header(header::AUTHORIZATION, format!("Bearer {token}")).body(Body::empty()).unwrap()
    }

    /// Finding (medium; fixed): `TokenKeys::from_jwks` accepted a
    /// small-order Ed25519 key (the identity point, `x` = `AQAA…`), and
    /// ed25519 verification (`rust_crypto`, not `verify_strict`) accepts the
    /// signature `R` = identity, `s` = 0 under it for every message: any
    /// token, for any user and session, verifies downstream. A JWKS entry
    /// is trusted configuration, but a weak key is never a real one: it is
    /// refused now (`VerifyingKey::is_weak`).
    #[tokio::test]
    async fn a_small_order_ed25519_key_in_a_jwks_is_refused() {
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let x = URL_SAFE_NO_PAD.encode(identity);
        let doc =
            format!(r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","x":"{x}","kid":"weak","alg":"EdDSA","use":"sig"}}]}}"#);
        assert!(TokenKeys::from_jwks(&doc).is_err(), "a weak key is refused");
        // Had it been accepted: the forgery it allowed, on a ring built anyway.
        let Ok(downstream) = TokenKeys::from_jwks(&doc) else { return };
        let h = Harness::new();
        let upstream = TokenKeys::new([TokenKey::generate("k1", TokenAlgorithm::EdDsa).unwrap()]).unwrap();
        let issuer = TokenIssuer::new(upstream.clone(), ISS, AUD).unwrap();
        let real = app(&h, &issuer, TokenLayer::new(upstream, ISS, AUD).clock(Arc::new(h.clock.clone())));
        let res = send(&real, Request::post("/login/alice").body(Body::empty()).unwrap()).await;
        let cookie = session_cookie(&res).unwrap();
        let res =
            send(&real, Request::post("/token").header(header::COOKIE, cookie).body(Body::empty()).unwrap()).await;
        let token = body(res).await;
        let claims = token.split('.').nth(1).unwrap().to_string();
        let claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap();
        let mut claims = claims;
        claims["sub"] = "admin".into();
        let header = r#"{"alg":"EdDSA","typ":"at+jwt","kid":"weak"}"#;
        let mut signature = identity.to_vec();
        signature.extend([0u8; 32]);
        let forged = format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims.to_string()),
            URL_SAFE_NO_PAD.encode(signature)
        );
        let victim = app(&h, &issuer, TokenLayer::new(downstream, ISS, AUD).clock(Arc::new(h.clock.clone())));
        let res = send(&victim, bearer(&forged)).await;
        let status = res.status();
        let text = body(res).await;
        panic!("a weak JWKS key was accepted; the forged token got {status} {text}");
    }

    /// Holds: an HS256 secret is never in the JWKS, nor in the `Debug` of a
    /// key, a ring, an issuer or a layer; a JWKS `oct` entry, a private `d`,
    /// an off-curve P-256 point and a mismatched PEM are refused without panic.
    #[test]
    fn secrets_stay_out_of_jwks_and_debug_and_hostile_keys_are_refused() {
        let secret = [b'Q'; 40];
        let hs = TokenKey::hs256("hs", &secret).unwrap();
        let ed = TokenKey::generate("ed", TokenAlgorithm::EdDsa).unwrap();
        let ring = TokenKeys::new([hs, ed]).unwrap();
        let jwks = serde_json::to_string(&ring.jwks()).unwrap();
        assert!(!jwks.contains("hs") && !jwks.contains("oct") && !jwks.contains("UVFR"), "{jwks}");
        let issuer = TokenIssuer::new(ring.clone(), ISS, AUD).unwrap();
        let layer = TokenLayer::new(ring.clone(), ISS, AUD);
        for debug in [format!("{ring:?}"), format!("{issuer:?}"), format!("{layer:?}")] {
            assert!(!debug.contains("QQQQ") && !debug.contains("81, 81") && !debug.contains("UVFR"), "{debug}");
        }
        for doc in [
            r#"{"keys":[{"kty":"oct","crv":"","x":"","k":"UVFRUVFRUVFRUVFRUVFRUVFRUVFRUVFRUVFRUVFRUVE","kid":"h","alg":"HS256","use":"sig"}]}"#.to_string(),
            format!(
                r#"{{"keys":[{{"kty":"EC","crv":"P-256","x":"{0}","y":"{0}","kid":"p","alg":"ES256","use":"sig"}}]}}"#,
                URL_SAFE_NO_PAD.encode([0u8; 32])
            ),
            r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AQ","kid":"e","alg":"EdDSA","use":"sig"}]}"#.to_string(),
            r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AQ","kid":"e","alg":"none","use":"sig"}]}"#.to_string(),
            "[]".to_string(),
            "{\"keys\":[]}".to_string(),
        ] {
            assert!(TokenKeys::from_jwks(&doc).is_err(), "{doc}");
        }
        const ED_PEM: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n-----END PRIVATE KEY-----\n";
        let err = TokenKey::from_pem("k", TokenAlgorithm::Es256, ED_PEM).expect_err("an Ed25519 PEM is not ES256");
        assert!(!err.to_string().contains("MC4CAQ"), "{err}");
        assert!(TokenKey::from_pem(
            "k",
            TokenAlgorithm::EdDsa,
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
        )
        .is_err());
        assert!(TokenKey::from_der("k", TokenAlgorithm::Es256, &[]).is_err());
        assert!(TokenKey::generate("../etc/passwd", TokenAlgorithm::EdDsa).is_err(), "kid charset");
    }
}
