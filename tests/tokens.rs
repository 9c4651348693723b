//! Access tokens (feature `jwt`): minting from a session, the TokenLayer in
//! both modes, the attacks of R69–R74 and R50, key rotation and the JWKS.
#![cfg(feature = "jwt")]

mod common;

use std::{sync::Arc, time::Duration};

use axum::{
    body::Body,
    extract::Path,
    http::{header, Request, StatusCode},
    routing::{get, post},
    Router,
};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use common::{body, send, session_cookie, Harness, Op};
use jsonwebtoken::{Algorithm, EncodingKey};
use sessionware::{
    token::{
        AccessClaims, MintError, TokenAlgorithm, TokenConfigError, TokenError, TokenIssuer, TokenKey, TokenKeys,
        TokenLayer,
    },
    Session, SessionError, SessionHandle,
};

const ISS: &str = "https://auth.test";
const AUD: &str = "api";

/// Ed25519 (RFC 8410 §10.3's example key).
const ED_PEM: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC
-----END PRIVATE KEY-----
";
/// P-256, PKCS#8.
const ES_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg5MK4uZ0g++cMfLfX
35PDYH7ywCpDxe/i9VCDCA55Ws6hRANCAASE0IopHWWueYLOc16naf5p5o3QiNg7
SJizvLjY8fVVC1pvKByeSEPANS6MegA1J4aVOdlLyT0ptkylzVcjsHYM
-----END PRIVATE KEY-----
";

fn ed_key(kid: &str) -> TokenKey {
    TokenKey::from_pem(kid, TokenAlgorithm::EdDsa, ED_PEM).unwrap()
}

fn es_key(kid: &str) -> TokenKey {
    TokenKey::from_pem(kid, TokenAlgorithm::Es256, ES_PEM).unwrap()
}

fn ring(keys: impl IntoIterator<Item = TokenKey>) -> TokenKeys {
    TokenKeys::new(keys).unwrap()
}

/// An app with session routes (login, logout, credentials changed, revoke,
/// minting) and a token route (`/whoami`), the TokenLayer inside the
/// session layer.
fn app(h: &Harness, issuer: &TokenIssuer, tokens: TokenLayer) -> Router {
    let issuer = issuer.clone();
    Router::new()
        .route("/whoami", get(|c: AccessClaims| async move { format!("{} {}", c.sub, c.sid) }))
        .route("/maybe", get(|c: Option<AccessClaims>| async move { c.map_or("anonymous".to_string(), |c| c.sub) }))
        .route("/login/{user}", post(|s: Session, Path(u): Path<String>| async move { s.login(u).await }))
        .route("/logout", post(|s: Session| async move { s.purge().await }))
        .route("/password", post(|s: Session| async move { s.credentials_changed().await }))
        .route(
            "/handle",
            get(|s: Session| async move { Ok::<_, SessionError>(s.handle().await?.unwrap().to_string()) }),
        )
        .route(
            "/revoke/{h}",
            post(|s: Session, Path(h): Path<String>| async move {
                s.revoke(&SessionHandle::parse(&h).unwrap()).await.map(|b| b.to_string())
            }),
        )
        .route(
            "/token",
            post(move |s: Session| async move {
                match issuer.mint(&s).await {
                    Ok(t) => (StatusCode::OK, t),
                    Err(MintError::NotAuthenticated) => (StatusCode::UNAUTHORIZED, String::new()),
                    Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
                }
            }),
        )
        .layer(tokens)
        .layer(h.layer.clone())
}

fn issuer(keys: &TokenKeys) -> TokenIssuer {
    TokenIssuer::new(keys.clone(), ISS, AUD).unwrap()
}

fn stateless(h: &Harness, keys: &TokenKeys) -> TokenLayer {
    TokenLayer::new(keys.clone(), ISS, AUD).clock(Arc::new(h.clock.clone()))
}

fn checked(h: &Harness, keys: &TokenKeys) -> TokenLayer {
    TokenLayer::new(keys.clone(), ISS, AUD).checked(&h.layer).unwrap()
}

fn post_with(uri: &str, cookie: Option<&str>) -> Request<Body> {
    let mut b = Request::post(uri);
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, c);
    }
    b.body(Body::empty()).unwrap()
}

fn bearer(uri: &str, token: &str) -> Request<Body> {
    Request::get(uri).header(header::AUTHORIZATION, format!("Bearer {token}")).body(Body::empty()).unwrap()
}

/// Logs `user` in: the session cookie.
async fn login(app: &Router, user: &str) -> String {
    let res = send(app, post_with(&format!("/login/{user}"), None)).await;
    assert_eq!(res.status(), 200);
    session_cookie(&res).unwrap()
}

async fn mint(app: &Router, cookie: &str) -> String {
    let res = send(app, post_with("/token", Some(cookie))).await;
    assert_eq!(res.status(), 200);
    body(res).await
}

async fn whoami(app: &Router, token: &str) -> StatusCode {
    send(app, bearer("/whoami", token)).await.status()
}

fn part(token: &str, i: usize) -> serde_json::Value {
    let seg = token.split('.').nth(i).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(seg).unwrap()).unwrap()
}

/// A token with any header and claims (raw JSON), signed by `key` as `alg`.
fn forge(header: &str, claims: &str, key: &EncodingKey, alg: Algorithm) -> String {
    let message = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims));
    let sig = jsonwebtoken::crypto::sign(message.as_bytes(), key, alg).unwrap();
    format!("{message}.{sig}")
}

fn ed_encoding() -> EncodingKey {
    EncodingKey::from_ed_pem(ED_PEM.as_bytes()).unwrap()
}

/// Claims as the issuer would write them, for `sid`, at the harness's time.
fn claims_json(sid: &str, iat: u64, exp: u64) -> String {
    format!(
        r#"{{"sub":"alice","sid":"{sid}","iat":{iat},"exp":{exp},"jti":"AAAAAAAAAAAAAAAAAAAAAA","aud":"{AUD}","iss":"{ISS}"}}"#
    )
}

const NOW_S: u64 = common::T0 / 1000;

// R74: a minted token carries the user, the session's public handle (never
// its ID), a 128-bit jti, a short exp and the kid; typ is at+jwt (R72).
#[tokio::test]
async fn minted_token_names_user_and_session_handle() {
    let h = Harness::new();
    let keys = ring([ed_key("k1")]);
    let app = app(&h, &issuer(&keys), checked(&h, &keys));
    let cookie = login(&app, "alice").await;
    let handle =
        body(send(&app, Request::get("/handle").header(header::COOKIE, &cookie).body(Body::empty()).unwrap()).await)
            .await;
    let (t1, t2) = (mint(&app, &cookie).await, mint(&app, &cookie).await);
    let (head, claims) = (part(&t1, 0), part(&t1, 1));
    assert_eq!(head["typ"], "at+jwt");
    assert_eq!(head["alg"], "EdDSA");
    assert_eq!(head["kid"], "k1");
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["sid"], handle.as_str());
    assert!(!cookie.contains(&handle), "the sid is not the session ID");
    assert_eq!(claims["iss"], ISS);
    assert_eq!(claims["aud"], AUD);
    assert_eq!(claims["iat"], NOW_S);
    assert_eq!(claims["exp"], NOW_S + 300, "5 minutes by default");
    let jti = claims["jti"].as_str().unwrap();
    assert_eq!(URL_SAFE_NO_PAD.decode(jti).unwrap().len(), 16, "128-bit jti");
    assert_ne!(part(&t2, 1)["jti"], claims["jti"]);
    assert_eq!(body(send(&app, bearer("/whoami", &t1)).await).await, format!("alice {handle}"));
}

// Minting needs a logged-in user: a typed error otherwise.
#[tokio::test]
async fn minting_without_login_is_a_typed_error() {
    let h = Harness::new();
    let keys = ring([ed_key("k1")]);
    let app = app(&h, &issuer(&keys), checked(&h, &keys));
    assert_eq!(send(&app, post_with("/token", None)).await.status(), 401);
    // After a logout in the same request too.
    let issuer = issuer(&keys);
    let app2 = Router::new()
        .route(
            "/",
            post(move |s: Session| async move {
                s.login("alice").await.unwrap();
                s.purge().await.unwrap();
                matches!(issuer.mint(&s).await, Err(MintError::NotAuthenticated)).to_string()
            }),
        )
        .layer(h.layer.clone());
    assert_eq!(body(send(&app2, post_with("/", None)).await).await, "true");
}

// A token minted in the login request itself is bound to the stored session.
#[tokio::test]
async fn token_minted_at_login_is_bound_to_the_stored_session() {
    let h = Harness::new();
    let keys = ring([ed_key("k1")]);
    let iss = issuer(&keys);
    let app = Router::new()
        .route(
            "/login",
            post(move |s: Session| async move {
                s.login("alice").await.unwrap();
                iss.mint(&s).await.unwrap()
            }),
        )
        .route("/whoami", get(|c: AccessClaims| async move { c.sub }))
        .layer(checked(&h, &keys))
        .layer(h.layer.clone());
    let token = body(send(&app, post_with("/login", None)).await).await;
    assert_eq!(whoami(&app, &token).await, 200);
}

// R50: checked mode refuses a logged-out session's token once the cache
// bound passed; within it, a cache hit costs no store read.
#[tokio::test]
async fn checked_refuses_after_logout_within_the_cache_bound() {
    let h = Harness::new();
    let keys = ring([ed_key("k1")]);
    let app = app(&h, &issuer(&keys), checked(&h, &keys));
    let cookie = login(&app, "alice").await;
    let token = mint(&app, &cookie).await;
    assert_eq!(whoami(&app, &token).await, 200);
    assert_eq!(h.store.count(Op::ListUser), 1, "one store read");
    assert_eq!(whoami(&app, &token).await, 200);
    assert_eq!(h.store.count(Op::ListUser), 1, "a cache hit reads nothing");
    send(&app, post_with("/logout", Some(&cookie))).await;
    h.clock.advance(Duration::from_millis(4_999));
    assert_eq!(whoami(&app, &token).await, 200, "still cached: the documented bound");
    h.clock.advance(Duration::from_millis(1));
    assert_eq!(whoami(&app, &token).await, 401, "refused once the bound passed");
    assert_eq!(h.store.count(Op::ListUser), 2);
    assert_eq!(whoami(&app, &token).await, 401, "ended stays ended (cached)");
}

// R50 (documented limit): stateless mode accepts a logged-out session's
// token until its exp (plus the leeway), and not after.
#[tokio::test]
async fn stateless_accepts_after_logout_until_exp() {
    let h = Harness::new();
    let keys = ring([ed_key("k1")]);
    let app = app(&h, &issuer(&keys), stateless(&h, &keys));
    let cookie = login(&app, "alice").await;
    let token = mint(&app, &cookie).await;
    send(&app, post_with("/logout", Some(&cookie))).await;
    h.clock.advance(Duration::from_secs(300 + 29));
    assert_eq!(whoami(&app, &token).await, 200);
    assert_eq!(h.store.count(Op::ListUser), 0, "stateless: no store call");
    h.clock.advance(Duration::from_secs(1));
    assert_eq!(whoami(&app, &token).await, 401);
}

// R50: revoking the session (from another device) ends its tokens.
#[tokio::test]
async fn checked_refuses_after_revoke() {
    let h = Harness::new();
    let keys = ring([ed_key("k1")]);
    let app = app(&h, &issuer(&keys), checked(&h, &keys));
    let phone = login(&app, "alice").await;
    let laptop = login(&app, "alice").await;
    let token = mint(&app, &phone).await;
    let handle = part(&token, 1)["sid"].as_str().unwrap().to_string();
    let res = send(&app, post_with(&format!("/revoke/{handle}"), Some(&laptop))).await;
    assert_eq!(body(res).await, "true");
    assert_eq!(whoami(&app, &token).await, 401);
    assert_eq!(whoami(&app, &mint(&app, &laptop).await).await, 200, "the other session's token still works");
}

// R50 with the epoch rules: credentials_changed (another session) and
// SessionControl cut the session, and its tokens with it.
#[tokio::test]
async fn checked_refuses_after_credentials_changed_and_cutoffs() {
    let h = Harness::new();
    let keys = ring([ed_key("k1")]);
    let app = app(&h, &issuer(&keys), checked(&h, &keys));
    let phone = login(&app, "alice").await;
    h.clock.advance(Duration::from_secs(1));
    let laptop = login(&app, "alice").await;
    let (old, current) = (mint(&app, &phone).await, mint(&app, &laptop).await);
    let res = send(&app, post_with("/password", Some(&laptop))).await;
    assert_eq!(res.status(), 200);
    let laptop = session_cookie(&res).unwrap_or(laptop);
    assert_eq!(whoami(&app, &old).await, 401, "the other device's session was cut");
    assert_eq!(whoami(&app, &current).await, 200, "the caller's session lives on");
    h.clock.advance(Duration::from_secs(1));
    let bob = login(&app, "bob").await;
    let bobs = mint(&app, &bob).await;
    h.layer.control().end_user_sessions("bob").await.unwrap();
    assert_eq!(whoami(&app, &bobs).await, 401, "a per-user cutoff ends the tokens");
    let _ = laptop;
}

// R51: a store failure in checked mode fails closed (503), never lets the
// token through.
#[tokio::test]
async fn checked_store_failure_fails_closed() {
    let h = Harness::new();
    let keys = ring([ed_key("k1")]);
    let app = app(&h, &issuer(&keys), checked(&h, &keys));
    let token = mint(&app, &login(&app, "alice").await).await;
    h.store.fail(Op::ListUser);
    let res = send(&app, bearer("/whoami", &token)).await;
    assert_eq!(res.status(), 503);
    assert_eq!(res.extensions().get::<TokenError>(), Some(&TokenError::Unavailable));
}

// R71: expiry and not-before, with the bounded leeway.
#[tokio::test]
async fn expired_and_not_yet_valid_tokens_are_refused() {
    let h = Harness::new();
    let keys = ring([ed_key("k1")]);
    let app = app(&h, &issuer(&keys), stateless(&h, &keys));
    let sid = SessionHandle::generate().to_string();
    let head = r#"{"alg":"EdDSA","typ":"at+jwt","kid":"k1"}"#;
    let ok = forge(head, &claims_json(&sid, NOW_S, NOW_S + 60), &ed_encoding(), Algorithm::EdDSA);
    assert_eq!(whoami(&app, &ok).await, 200);
    let expired = forge(head, &claims_json(&sid, NOW_S - 120, NOW_S - 31), &ed_encoding(), Algorithm::EdDSA);
    assert_eq!(whoami(&app, &expired).await, 401);
    let in_leeway = forge(head, &claims_json(&sid, NOW_S - 120, NOW_S - 29), &ed_encoding(), Algorithm::EdDSA);
    assert_eq!(whoami(&app, &in_leeway).await, 200);
    let future = forge(head, &claims_json(&sid, NOW_S + 31, NOW_S + 300), &ed_encoding(), Algorithm::EdDSA);
    let res = send(&app, bearer("/whoami", &future)).await;
    assert_eq!(res.status(), 401);
    assert_eq!(res.extensions().get::<TokenError>(), Some(&TokenError::NotYetValid));
    let nbf = claims_json(&sid, NOW_S, NOW_S + 300).replace(r#""iat""#, &format!(r#""nbf":{},"iat""#, NOW_S + 100));
    assert_eq!(whoami(&app, &forge(head, &nbf, &ed_encoding(), Algorithm::EdDSA)).await, 401);
}

// R71: claims with the wrong types or values refuse the token.
#[tokio::test]
async fn malformed_claims_are_refused() {
    let h = Harness::new();
    let keys = ring([ed_key("k1")]);
    let app = app(&h, &issuer(&keys), stateless(&h, &keys));
    let sid = SessionHandle::generate().to_string();
    let head = r#"{"alg":"EdDSA","typ":"at+jwt","kid":"k1"}"#;
    let good = claims_json(&sid, NOW_S, NOW_S + 60);
    let exp = format!(r#""exp":{}"#, NOW_S + 60);
    for bad in [
        good.replace(&exp, r#""exp":"never""#),
        good.replace(&exp, r#""exp":1.5e300"#),
        good.replace(&exp, r#""exp":null"#),
        good.replace(&format!("{exp},"), ""),
        good.replace(r#""aud":"api""#, r#""aud":"billing""#),
        good.replace(&format!(r#","aud":"{AUD}""#), ""),
        good.replace(r#""aud":"api""#, r#""aud":["api","billing"]"#),
        good.replace(ISS, "https://evil.test"),
        good.replace(r#""sub":"alice""#, r#""sub":"alice","sub":"admin""#),
        good.replace(&format!(r#""iat":{NOW_S}"#), r#""iat":"now""#),
        good.replace(&format!(r#""iat":{NOW_S}"#), &format!(r#""iat":{NOW_S},"nbf":"99999999999""#)),
        good.replace(&format!(r#""iat":{NOW_S}"#), &format!(r#""iat":{NOW_S},"nbf":-1"#)),
    ] {
        let token = forge(head, &bad, &ed_encoding(), Algorithm::EdDSA);
        assert_eq!(whoami(&app, &token).await, 401, "{bad}");
    }
}

// Wrong audience or issuer, from a real issuer with the same keys.
#[tokio::test]
async fn wrong_audience_or_issuer_is_refused() {
    let h = Harness::new();
    let keys = ring([ed_key("k1")]);
    for other in [
        TokenIssuer::new(keys.clone(), ISS, "billing").unwrap(),
        TokenIssuer::new(keys.clone(), "https://evil.test", AUD).unwrap(),
    ] {
        let app = app(&h, &other, stateless(&h, &keys));
        let token = mint(&app, &login(&app, "alice").await).await;
        assert_eq!(whoami(&app, &token).await, 401);
    }
}

// R70: an unknown or malicious kid is refused before any store call; key
// material in the header is ignored.
#[tokio::test]
async fn unknown_kid_and_header_keys_are_refused() {
    let h = Harness::new();
    let keys = ring([ed_key("k1")]);
    let app = app(&h, &issuer(&keys), checked(&h, &keys));
    let claims = claims_json(&SessionHandle::generate().to_string(), NOW_S, NOW_S + 60);
    let long = "a".repeat(10 * 1024);
    for kid in ["k2", "../../dev/null", "' OR 1=1 --", long.as_str()] {
        let head = format!(r#"{{"alg":"EdDSA","typ":"at+jwt","kid":{}}}"#, serde_json::to_string(kid).unwrap());
        assert_eq!(whoami(&app, &forge(&head, &claims, &ed_encoding(), Algorithm::EdDSA)).await, 401, "{kid}");
    }
    let no_kid = forge(r#"{"alg":"EdDSA","typ":"at+jwt"}"#, &claims, &ed_encoding(), Algorithm::EdDSA);
    assert_eq!(whoami(&app, &no_kid).await, 401);
    // An attacker's own key, embedded as a jwk and named by its kid: refused.
    let attacker = TokenKey::generate("evil", TokenAlgorithm::EdDsa).unwrap();
    let jwk = serde_json::to_value(&TokenKeys::new([attacker]).unwrap().jwks().keys[0]).unwrap();
    let attacker_pem_key = EncodingKey::from_ed_der(&ed25519_der_of_seed([9u8; 32]));
    for kid in ["evil", "k1"] {
        let head =
            format!(r#"{{"alg":"EdDSA","typ":"at+jwt","kid":"{kid}","jwk":{jwk},"jku":"https://evil.test/jwks"}}"#);
        let token = forge(&head, &claims, &attacker_pem_key, Algorithm::EdDSA);
        assert_eq!(whoami(&app, &token).await, 401, "{kid}");
    }
    assert_eq!(h.store.count(Op::ListUser), 0, "nothing reached the store");
}

/// A PKCS#8 DER Ed25519 private key from a seed (RFC 8410 layout).
fn ed25519_der_of_seed(seed: [u8; 32]) -> Vec<u8> {
    let mut der = vec![0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];
    der.extend_from_slice(&seed);
    der
}

// A tampered payload fails the signature.
#[tokio::test]
async fn tampered_payload_is_refused() {
    let h = Harness::new();
    let keys = ring([ed_key("k1")]);
    let app = app(&h, &issuer(&keys), stateless(&h, &keys));
    let token = mint(&app, &login(&app, "alice").await).await;
    let mut claims = part(&token, 1);
    claims["sub"] = "admin".into();
    let mut segs: Vec<String> = token.split('.').map(String::from).collect();
    segs[1] = URL_SAFE_NO_PAD.encode(claims.to_string());
    let res = send(&app, bearer("/whoami", &segs.join("."))).await;
    assert_eq!(res.status(), 401);
    assert_eq!(res.extensions().get::<TokenError>(), Some(&TokenError::Signature));
}

// R69: `alg: none` in any casing, with an empty signature or none at all.
#[tokio::test]
async fn alg_none_is_refused() {
    let h = Harness::new();
    let keys = ring([ed_key("k1")]);
    let app = app(&h, &issuer(&keys), stateless(&h, &keys));
    let claims = URL_SAFE_NO_PAD.encode(claims_json(&SessionHandle::generate().to_string(), NOW_S, NOW_S + 60));
    for alg in ["none", "nOnE", "NONE"] {
        let head = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}","typ":"at+jwt","kid":"k1"}}"#));
        assert_eq!(whoami(&app, &format!("{head}.{claims}.")).await, 401, "{alg}");
        assert_eq!(whoami(&app, &format!("{head}.{claims}")).await, 401, "{alg}");
    }
}

// R69: algorithm confusion: an HS256 token keyed with the ES256 public key,
// an EdDSA token presented under an ES256 key's kid, and `alg` changed in
// the header of a genuine token.
#[tokio::test]
async fn algorithm_confusion_is_refused() {
    let h = Harness::new();
    let keys = ring([es_key("es"), ed_key("ed")]);
    let es_app = app(&h, &issuer(&keys), stateless(&h, &keys));
    let claims = claims_json(&SessionHandle::generate().to_string(), NOW_S, NOW_S + 60);
    let jwk = &keys.jwks().keys[0];
    let mut point = vec![4u8];
    point.extend(URL_SAFE_NO_PAD.decode(&jwk.x).unwrap());
    point.extend(URL_SAFE_NO_PAD.decode(jwk.y.as_ref().unwrap()).unwrap());
    let jwk_json = serde_json::to_string(jwk).unwrap();
    for secret in [point.as_slice(), ES_PEM.as_bytes(), jwk_json.as_bytes()] {
        let token = forge(
            r#"{"alg":"HS256","typ":"at+jwt","kid":"es"}"#,
            &claims,
            &EncodingKey::from_secret(secret),
            Algorithm::HS256,
        );
        let res = send(&es_app, bearer("/whoami", &token)).await;
        assert_eq!(res.status(), 401);
        assert_eq!(res.extensions().get::<TokenError>(), Some(&TokenError::Algorithm));
    }
    let eddsa = forge(r#"{"alg":"EdDSA","typ":"at+jwt","kid":"es"}"#, &claims, &ed_encoding(), Algorithm::EdDSA);
    assert_eq!(whoami(&es_app, &eddsa).await, 401, "an EdDSA token under an ES256 kid");
    // A genuine ES256 token whose header now says EdDSA.
    let genuine = mint(&es_app, &login(&es_app, "alice").await).await;
    assert_eq!(whoami(&es_app, &genuine).await, 200);
    let mut segs: Vec<String> = genuine.split('.').map(String::from).collect();
    segs[0] = URL_SAFE_NO_PAD.encode(r#"{"alg":"EdDSA","typ":"at+jwt","kid":"es"}"#);
    assert_eq!(whoami(&es_app, &segs.join(".")).await, 401);
    // An HS256 key used with its own algorithm is fine when configured so.
    let hs = ring([TokenKey::hs256("hs", &[7u8; 32]).unwrap()]);
    let hs_app = app(&h, &issuer(&hs), stateless(&h, &hs));
    let token = mint(&hs_app, &login(&hs_app, "alice").await).await;
    assert_eq!(part(&token, 0)["alg"], "HS256");
    assert_eq!(whoami(&hs_app, &token).await, 200);
}

// R72, R73: the token type is explicit; only the compact form is read;
// `crit` and duplicate header members are refused.
#[tokio::test]
async fn type_and_form_are_strict() {
    let h = Harness::new();
    let keys = ring([ed_key("k1")]);
    let app = app(&h, &issuer(&keys), stateless(&h, &keys));
    let claims = claims_json(&SessionHandle::generate().to_string(), NOW_S, NOW_S + 60);
    for head in [
        r#"{"alg":"EdDSA","kid":"k1"}"#,
        r#"{"alg":"EdDSA","typ":"JWT","kid":"k1"}"#,
        r#"{"alg":"EdDSA","typ":"rt+jwt","kid":"k1"}"#,
        r#"{"alg":"EdDSA","typ":"at+jwt","kid":"k1","crit":["exp"]}"#,
        r#"{"alg":"EdDSA","typ":"at+jwt","kid":"zz","kid":"k1"}"#,
        r#"{"alg":["EdDSA"],"typ":"at+jwt","kid":"k1"}"#,
    ] {
        assert_eq!(whoami(&app, &forge(head, &claims, &ed_encoding(), Algorithm::EdDSA)).await, 401, "{head}");
    }
    let good = forge(r#"{"alg":"EdDSA","typ":"at+jwt","kid":"k1"}"#, &claims, &ed_encoding(), Algorithm::EdDSA);
    assert_eq!(whoami(&app, &good).await, 200);
    let segs: Vec<&str> = good.split('.').collect();
    let json = format!(r#"{{"payload":"{}","protected":"{}","signature":"{}"}}"#, segs[1], segs[0], segs[2]);
    for bad in [
        format!("{good}.x.y"),                           // 5 segments (JWE-shaped)
        format!("{}=.{}.{}", segs[0], segs[1], segs[2]), // padding
        good.replace('-', "+").replace('_', "/") + "+",  // standard base64
        json,                                            // JWS JSON serialization
        format!(
            "{}.{}.{}",
            segs[0],
            URL_SAFE_NO_PAD.encode(claims.encode_utf16().flat_map(u16::to_be_bytes).collect::<Vec<u8>>()),
            segs[2]
        ),
    ] {
        let req = Request::get("/whoami").header(header::AUTHORIZATION, format!("Bearer {bad}")).body(Body::empty());
        let Ok(req) = req else { continue }; // a value http itself refuses
        assert_eq!(send(&app, req).await.status(), 401, "{bad}");
    }
}

// R65-style header shapes: one Authorization field, case-insensitive
// scheme, exactly one token68; never the query or a cookie.
#[tokio::test]
async fn authorization_field_is_read_strictly() {
    let h = Harness::new();
    let keys = ring([ed_key("k1")]);
    let app = app(&h, &issuer(&keys), stateless(&h, &keys));
    let token = mint(&app, &login(&app, "alice").await).await;
    let with = |values: &[String]| {
        let mut b = Request::get("/whoami");
        for v in values {
            b = b.header(header::AUTHORIZATION, v);
        }
        b.body(Body::empty()).unwrap()
    };
    assert_eq!(send(&app, with(&[format!("bearer {token}")])).await.status(), 200, "scheme is case-insensitive");
    assert_eq!(send(&app, with(&[format!("BEARER {token}")])).await.status(), 200);
    let refused = send(&app, with(&[format!("Bearer {token}"), format!("Bearer {token}")])).await;
    assert_eq!(refused.status(), 401, "two Authorization fields");
    assert_eq!(refused.headers()[header::WWW_AUTHENTICATE], "Bearer error=\"invalid_token\"");
    assert_eq!(refused.extensions().get::<TokenError>(), Some(&TokenError::Header));
    for v in [
        "Bearer".to_string(),
        "Bearer ".into(),
        format!("Bearer {token} x"),
        format!("Bearer {token},Bearer {token}"),
        format!("Bearer\t{token}"),
    ] {
        assert_eq!(send(&app, with(std::slice::from_ref(&v))).await.status(), 401, "{v}");
    }
    // Not a Bearer credential: no claims, so the extractor's 401 (no error code).
    let basic = send(&app, with(&[format!("Basic {token}")])).await;
    assert_eq!(basic.status(), 401);
    assert_eq!(basic.headers()[header::WWW_AUTHENTICATE], "Bearer");
    assert_eq!(body(basic).await, "");
    let maybe = Request::get("/maybe").header(header::AUTHORIZATION, "Basic dTpw").body(Body::empty()).unwrap();
    assert_eq!(body(send(&app, maybe).await).await, "anonymous");
    // In the query or a cookie: never read.
    let query = Request::get(format!("/whoami?access_token={token}")).body(Body::empty()).unwrap();
    assert_eq!(send(&app, query).await.status(), 401);
    let cookie =
        Request::get("/whoami").header(header::COOKIE, format!("access_token={token}")).body(Body::empty()).unwrap();
    assert_eq!(send(&app, cookie).await.status(), 401);
    let huge = format!("Bearer {}", "a".repeat(1 << 20));
    assert_eq!(send(&app, with(&[huge])).await.status(), 401);
}

// R51: expired, forged and revoked tokens get byte-identical answers.
#[tokio::test]
async fn refusals_do_not_reveal_the_reason() {
    let h = Harness::new();
    let keys = ring([ed_key("k1")]);
    let app = app(&h, &issuer(&keys), checked(&h, &keys));
    let expired = mint(&app, &login(&app, "bob").await).await;
    h.clock.advance(Duration::from_secs(400));
    let cookie = login(&app, "alice").await;
    let revoked = mint(&app, &cookie).await;
    let mut forged: Vec<String> = revoked.split('.').map(String::from).collect();
    forged[2] = URL_SAFE_NO_PAD.encode([0u8; 64]);
    send(&app, post_with("/logout", Some(&cookie))).await;
    let mut seen = Vec::new();
    for token in [revoked, expired, forged.join(".")] {
        let res = send(&app, bearer("/whoami", &token)).await;
        let reason = *res.extensions().get::<TokenError>().unwrap();
        let mut headers: Vec<_> = res.headers().iter().map(|(k, v)| format!("{k}: {v:?}")).collect();
        headers.sort();
        seen.push((res.status(), headers, body(res).await, reason));
    }
    assert_eq!(seen[0].3, TokenError::SessionEnded);
    assert_eq!(seen[1].3, TokenError::Expired);
    assert_eq!(seen[2].3, TokenError::Signature);
    for s in &seen {
        assert_eq!((s.0, &s.1, &s.2), (seen[0].0, &seen[0].1, &seen[0].2));
    }
}

// Key rotation: the new key signs, old tokens still verify, and removing
// the old key refuses them.
#[tokio::test]
async fn key_rotation() {
    let h = Harness::new();
    let old = ring([ed_key("2025-01")]);
    let app_old = app(&h, &issuer(&old), stateless(&h, &old));
    let cookie = login(&app_old, "alice").await;
    let old_token = mint(&app_old, &cookie).await;
    let rotated = ring([es_key("2025-02"), ed_key("2025-01")]);
    let app_new = app(&h, &issuer(&rotated), stateless(&h, &rotated));
    let new_token = mint(&app_new, &cookie).await;
    assert_eq!(part(&new_token, 0)["kid"], "2025-02");
    assert_eq!(part(&new_token, 0)["alg"], "ES256");
    assert_eq!(whoami(&app_new, &old_token).await, 200, "old tokens still verify");
    assert_eq!(whoami(&app_new, &new_token).await, 200);
    let retired = ring([es_key("2025-02")]);
    let app_retired = app(&h, &issuer(&retired), stateless(&h, &retired));
    assert_eq!(whoami(&app_retired, &old_token).await, 401, "the removed key's tokens are refused");
    assert_eq!(whoami(&app_retired, &new_token).await, 200);
}

// JWKS: public keys only (never HS256), and a downstream verifier built
// from it accepts the issuer's tokens with no store.
#[tokio::test]
async fn jwks_serves_public_keys_and_verifies_downstream() {
    let h = Harness::new();
    let keys = ring([ed_key("ed"), es_key("es"), TokenKey::hs256("hs", &[3u8; 32]).unwrap()]);
    let doc = serde_json::to_value(keys.jwks()).unwrap();
    let listed: Vec<_> = doc["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k["kid"].clone(), k["alg"].clone(), k["use"].clone()))
        .collect();
    assert_eq!(listed, [("ed".into(), "EdDSA".into(), "sig".into()), ("es".into(), "ES256".into(), "sig".into())]);
    for k in doc["keys"].as_array().unwrap() {
        assert!(k.get("d").is_none() && k.get("k").is_none(), "no private part");
    }
    let downstream = TokenKeys::from_jwks(&doc.to_string()).unwrap();
    assert!(TokenIssuer::new(downstream.clone(), ISS, AUD).is_err(), "a JWKS ring cannot sign");
    let app = app(&h, &issuer(&keys), stateless(&h, &keys));
    let token = mint(&app, &login(&app, "alice").await).await;
    let service = Router::new()
        .route("/whoami", get(|c: AccessClaims| async move { c.sub }))
        .layer(TokenLayer::new(downstream, ISS, AUD).clock(Arc::new(h.clock.clone())));
    let res = send(&service, bearer("/whoami", &token)).await;
    assert_eq!(body(res).await, "alice");
    // A JWKS whose key claims another algorithm than its curve is refused.
    let lying = doc.to_string().replace(r#""alg":"EdDSA""#, r#""alg":"ES256""#);
    assert!(matches!(TokenKeys::from_jwks(&lying), Err(TokenConfigError::Jwks(_))));
    assert!(TokenKeys::from_jwks(
        r#"{"keys":[{"kty":"oct","k":"AAAA","kid":"x","alg":"HS256","use":"sig","crv":"","x":""}]}"#
    )
    .is_err());
}

// R74, R71: bounded settings.
#[test]
fn settings_are_bounded() {
    let keys = ring([ed_key("k1")]);
    let issuer = TokenIssuer::new(keys.clone(), ISS, AUD).unwrap();
    assert!(matches!(issuer.clone().ttl(Duration::from_secs(3601)), Err(TokenConfigError::OutOfRange { .. })));
    assert!(issuer.clone().ttl(Duration::ZERO).is_err());
    assert_eq!(issuer.ttl(Duration::from_secs(900)).unwrap().expires_in(), 900);
    let layer = TokenLayer::new(keys.clone(), ISS, AUD);
    assert!(layer.clone().leeway(Duration::from_secs(61)).is_err());
    assert!(layer.clone().leeway(Duration::from_secs(60)).is_ok());
    assert!(layer.clone().cache_ttl(Duration::ZERO).is_err());
    assert!(layer.cache_ttl(Duration::from_secs(61)).is_err());
    assert!(matches!(TokenKeys::new([ed_key("a"), es_key("a")]), Err(TokenConfigError::DuplicateKid(_))));
    assert!(matches!(TokenKey::generate("../x", TokenAlgorithm::EdDsa), Err(TokenConfigError::InvalidKid)));
    assert!(matches!(TokenKey::from_pem("k", TokenAlgorithm::Es256, ED_PEM), Err(TokenConfigError::InvalidKey(_))));
    // Debug never shows key material.
    let debug = format!("{:?} {:?}", ed_key("k1"), TokenKey::hs256("hs", &[0x41; 32]).unwrap());
    assert!(!debug.contains("AAAA") && !debug.contains("65, 65"), "{debug}");
}

// Checked mode needs the store's per-user index: refused when the layer
// was built without one, instead of failing every request.
#[test]
fn checked_needs_a_user_index() {
    use sessionware::{
        store::{Capabilities, MemoryStore},
        Keys, SessionLayer,
    };
    let keys = ring([ed_key("k1")]);
    let bare = SessionLayer::with_capabilities(Capabilities::new(MemoryStore::default()), Keys::generate().unwrap());
    let err = TokenLayer::new(keys.clone(), ISS, AUD).checked(&bare).unwrap_err();
    assert_eq!(err, TokenConfigError::NoUserIndex);
    let full = SessionLayer::new(MemoryStore::default(), Keys::generate().unwrap());
    assert!(TokenLayer::new(keys, ISS, AUD).checked(&full).is_ok());
}

// R50: revocation is keyed on the session, not the token's bytes: a
// re-encoded token (ECDSA signature malleability: (r, s) -> (r, n - s),
// which still verifies) of a revoked session is refused too.
#[tokio::test]
async fn revoked_session_refuses_a_malleated_token() {
    let h = Harness::new();
    let keys = ring([es_key("es")]);
    let iss = issuer(&keys);
    let stateless_app = app(&h, &iss, stateless(&h, &keys));
    let checked_app = app(&h, &iss, checked(&h, &keys));
    let cookie = login(&checked_app, "alice").await;
    let token = mint(&checked_app, &cookie).await;
    let segs: Vec<&str> = token.split('.').collect();
    let sig = p256::ecdsa::Signature::from_slice(&URL_SAFE_NO_PAD.decode(segs[2]).unwrap()).unwrap();
    let (r, s) = sig.split_scalars();
    let flipped = p256::ecdsa::Signature::from_scalars(r, -s).unwrap();
    let malleated = format!("{}.{}.{}", segs[0], segs[1], URL_SAFE_NO_PAD.encode(flipped.to_bytes()));
    assert_ne!(malleated, token);
    assert_eq!(whoami(&stateless_app, &malleated).await, 200, "the re-encoded token verifies");
    send(&checked_app, post_with("/logout", Some(&cookie))).await;
    assert_eq!(whoami(&checked_app, &token).await, 401);
    assert_eq!(whoami(&checked_app, &malleated).await, 401);
}

// RFC 6750 §2.1: `Bearer 1*SP token`; a tab or other whitespace is no
// separator, several spaces are.
#[tokio::test]
async fn bearer_separator_is_spaces_only() {
    let h = Harness::new();
    let keys = ring([ed_key("k1")]);
    let app = app(&h, &issuer(&keys), stateless(&h, &keys));
    let token = mint(&app, &login(&app, "alice").await).await;
    let with = |v: String| Request::get("/whoami").header(header::AUTHORIZATION, v).body(Body::empty()).unwrap();
    assert_eq!(send(&app, with(format!("Bearer   {token}"))).await.status(), 200);
    let tab = send(&app, with(format!("Bearer \t{token}"))).await;
    assert_eq!(tab.status(), 401);
    assert_eq!(tab.extensions().get::<TokenError>(), Some(&TokenError::Header));
}
