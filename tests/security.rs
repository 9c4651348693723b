//! Security properties, each with the attack that must fail.

mod common;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use common::*;
use http::{header, StatusCode};
use sessionware::{store::SessionStore, Key, Keys, SessionConfig, SessionId};

const NAME: &str = "__Host-sid";

fn token_cookie(keys: &Keys, id: &SessionId) -> String {
    format!("{NAME}={}", keys.sign(NAME, id))
}

/// Strict mode (R7, R8): a validly signed but unknown ID is never adopted,
/// creates no record, and a write gets a fresh server-made ID.
#[tokio::test]
async fn unknown_ids_are_never_adopted() {
    let h = Harness::new();
    let app = app(&h.layer);
    let planted = SessionId::generate().unwrap();
    let cookie = token_cookie(&h.keys, &planted);
    let res = send(&app, req("GET", "/read", Some(&cookie))).await;
    assert!(is_removal(&res), "a stale cookie is cleared");
    assert_eq!(body(res).await, "none");
    let res = send(&app, req("POST", "/set/x", Some(&cookie))).await;
    let issued = session_cookie(&res).unwrap();
    assert_ne!(issued, cookie, "a write under an unknown ID gets a new ID");
    assert!(
        h.store.inner.load(&planted.storage_key(), h.clock.now_ms()).await.unwrap().is_none(),
        "no record under the planted ID"
    );
    assert_eq!(h.store.inner.len(), 1);
    let res = send(&app, req("GET", "/contains", Some(&cookie))).await;
    assert_eq!(body(res).await, "false", "the planted ID still sees an empty session");
    for _ in 0..1000 {
        let c = token_cookie(&h.keys, &SessionId::generate().unwrap());
        send(&app, req("GET", "/read", Some(&c))).await;
    }
    assert_eq!(h.store.inner.len(), 1, "unknown IDs create no records");
}

/// R3, R30, R34: malformed or tampered cookies cause no store call and look
/// exactly like no cookie.
#[tokio::test]
async fn tampering_looks_like_no_cookie() {
    let h = Harness::new();
    let app = app(&h.layer);
    let res = send(&app, req("POST", "/incr", None)).await;
    let cookie = session_cookie(&res).unwrap();
    let token = cookie.strip_prefix("__Host-sid=").unwrap().to_string();
    let baseline = send(&app, req("GET", "/read", None)).await;
    let baseline_headers = baseline.headers().clone();
    let baseline_body = body(baseline).await;
    let loads_before = h.store.count(Op::Load);

    let raw = URL_SAFE_NO_PAD.decode(&token).unwrap();
    let mut forged = Vec::new();
    for i in 0..raw.len() {
        for bit in [0, 3, 7] {
            let mut t = raw.clone();
            t[i] ^= 1 << bit;
            forged.push(URL_SAFE_NO_PAD.encode(&t));
        }
    }
    forged.push(token[..token.len() - 1].to_string());
    forged.push(format!("{token}A"));
    forged.push(String::new());
    forged.push(format!("\"{token}\""));
    forged.push(format!("{token}="));
    // Standard-alphabet lookalike: the first character swapped for '+'.
    forged.push(format!("+{}", &token[1..]));
    forged.push("A".repeat(64 * 1024));
    for f in &forged {
        let res = send(&app, req("GET", "/read", Some(&format!("__Host-sid={f}")))).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers(), &baseline_headers, "tampered cookie {f:.20}… must look like no cookie");
        assert_eq!(body(res).await, baseline_body);
    }
    assert_eq!(h.store.count(Op::Load), loads_before, "no store call for a cookie that fails verification");
    // The genuine cookie still works.
    assert_eq!(body(send(&app, req("GET", "/read", Some(&cookie))).await).await, "1");
}

/// R31: a token minted for another purpose (cookie name) is rejected, even
/// for a live session ID.
#[tokio::test]
async fn token_is_bound_to_cookie_name() {
    let h = Harness::new();
    let app = app(&h.layer);
    let cookie = session_cookie(&send(&app, req("POST", "/incr", None)).await).unwrap();
    let id = id_of(&cookie);
    assert_eq!(body(send(&app, req("GET", "/read", Some(&token_cookie(&h.keys, &id)))).await).await, "1");
    let loads = h.store.count(Op::Load);
    let csrf_token = h.keys.sign("csrf", &id);
    let res = send(&app, req("GET", "/read", Some(&format!("{NAME}={csrf_token}")))).await;
    assert!(res.headers().get(header::SET_COOKIE).is_none());
    assert_eq!(body(res).await, "none");
    assert_eq!(h.store.count(Op::Load), loads, "a token for another purpose fails before any load");
}

fn id_of(cookie: &str) -> SessionId {
    let raw = URL_SAFE_NO_PAD.decode(cookie.split_once('=').unwrap().1).unwrap();
    SessionId::from_bytes(raw[5..21].try_into().unwrap())
}

/// R23, R24, R28: exact name matching; duplicates never resolve by position.
#[tokio::test]
async fn cookie_name_confusion_and_duplicates() {
    let h = Harness::new();
    let app = app(&h.layer);
    let victim = session_cookie(&send(&app, req("POST", "/incr", None)).await).unwrap();
    let attacker = session_cookie(&send(&app, req("POST", "/set/evil", None)).await).unwrap();
    let v = victim.strip_prefix("__Host-sid=").unwrap();
    for bad in [
        format!("=__Host-sid={v}"),
        format!("__host-sid={v}"),
        format!("__HOST-sid={v}"),
        format!("%5F%5FHost-sid={v}"),
        format!("__Host.sid={v}"),
        format!("__Host-sid ={v}"),
        format!("$Version=1; __Host-sid=\"{v}\""),
        format!("__Host-sid={v}, x=y"),
    ] {
        assert_eq!(body(send(&app, req("GET", "/read", Some(&bad))).await).await, "none", "{bad}");
    }
    let a = format!("{victim}; {attacker}");
    let b = format!("{attacker}; {victim}");
    let ra = send(&app, req("GET", "/read", Some(&a))).await;
    let rb = send(&app, req("GET", "/read", Some(&b))).await;
    assert_eq!(ra.headers(), rb.headers());
    assert_eq!(body(ra).await, "none");
    assert_eq!(body(rb).await, "none");
    let with_garbage = format!("__Host-sid=garbage; {victim}");
    assert_eq!(body(send(&app, req("GET", "/read", Some(&with_garbage))).await).await, "1");
    // Split over two Cookie header fields.
    let mut r = req("GET", "/read", Some("a=b"));
    r.headers_mut().append(header::COOKIE, victim.parse().unwrap());
    assert_eq!(body(send(&app, r).await).await, "1");
}

/// R26, R27: hostile headers never panic and never authenticate.
#[tokio::test]
async fn hostile_headers_are_no_session() {
    let h = Harness::new();
    let app = app(&h.layer);
    let victim = session_cookie(&send(&app, req("POST", "/incr", None)).await).unwrap();
    let huge = format!("{}; {victim}", "x=y".repeat(400_000));
    let many = format!("{}{victim}", "a=b; ".repeat(100_000));
    for c in [huge, many] {
        let res = send(&app, req("GET", "/read", Some(&c))).await;
        assert_eq!(body(res).await, "none");
    }
    let mut r = req("GET", "/read", None);
    r.headers_mut().insert(header::COOKIE, http::HeaderValue::from_bytes(b"__Host-sid=\xff\xfe\tabc").unwrap());
    assert_eq!(body(send(&app, r).await).await, "none");
}

/// R9, R12: login renews the ID, the old ID dies at once, and the user lives
/// in a reserved field that `insert` cannot write.
#[tokio::test]
async fn login_renews_id_and_kills_the_old_one() {
    let h = Harness::new();
    let app = app(&h.layer);
    let anon = session_cookie(&send(&app, req("POST", "/incr", None)).await).unwrap();
    // The attacker-controlled data path cannot fake a user.
    send(&app, req("POST", "/set/user", Some(&anon))).await;
    send(&app, req("POST", "/set/auth", Some(&anon))).await;
    assert_eq!(send(&app, req("GET", "/me", Some(&anon))).await.status(), StatusCode::UNAUTHORIZED);

    let creates = h.store.count(Op::Create);
    let res = send(&app, req("POST", "/login/alice", Some(&anon))).await;
    assert_eq!(res.status(), StatusCode::OK);
    let authed = session_cookie(&res).unwrap();
    assert_ne!(authed, anon);
    assert_eq!(h.store.count(Op::Create), creates, "a renewal creates nothing beside the rotation");
    assert_eq!(h.store.count(Op::Rotate), 1, "renewal is one atomic rotation (insert-if-absent inside)");
    let res = send(&app, req("GET", "/me", Some(&anon))).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.headers().get(header::SET_COOKIE).is_none(), "a retired ID gets no removal cookie");
    assert_eq!(body(send(&app, req("GET", "/read", Some(&anon))).await).await, "none", "old ID is dead");
    let res = send(&app, req("GET", "/me", Some(&authed))).await;
    assert_eq!(body(res).await, "alice");
    // R12: pre-login data is dropped unless allow-listed (`keep_on_login`).
    assert_eq!(body(send(&app, req("GET", "/read", Some(&authed))).await).await, "none", "pre-login data dropped");
    assert_eq!(h.store.inner.len(), 1, "exactly one session: the old ID holds only a retired pointer");
    // Explicit renewal on privilege change.
    let res = send(&app, req("POST", "/renew", Some(&authed))).await;
    let renewed = session_cookie(&res).unwrap();
    assert_ne!(renewed, authed);
    assert_eq!(send(&app, req("GET", "/me", Some(&authed))).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(body(send(&app, req("GET", "/me", Some(&renewed))).await).await, "alice");
}

/// R5: a create collision retries with a new ID and never overwrites.
#[tokio::test]
async fn create_collisions_retry_with_new_ids() {
    let h = Harness::new();
    let app = app(&h.layer);
    h.store.conflicts.store(2, std::sync::atomic::Ordering::SeqCst);
    let res = send(&app, req("POST", "/incr", None)).await;
    assert!(session_cookie(&res).is_some());
    assert_eq!(h.store.count(Op::Create), 3);
    h.store.conflicts.store(3, std::sync::atomic::Ordering::SeqCst);
    let res = send(&app, req("POST", "/incr", None)).await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR, "bounded retries, then a save error");
    assert!(res.headers().get(header::SET_COOKIE).is_none());
}

/// R41, R22, and the cross-site rule: purge deletes server-side, sends a
/// removal cookie with the same scope only to a client that presented one.
#[tokio::test]
async fn purge_deletes_and_clears_only_presenters() {
    let h = Harness::new();
    let app = app(&h.layer);
    let res = send(&app, req("POST", "/login/bob", None)).await;
    let set = set_cookies(&res).remove(0);
    let cookie = session_cookie(&res).unwrap();
    // A cross-site POST arrives without the Lax cookie: no removal cookie.
    let res = send(&app, req("POST", "/logout", None)).await;
    assert!(res.headers().get(header::SET_COOKIE).is_none(), "no removal cookie for a client without a session cookie");
    assert_eq!(body(send(&app, req("GET", "/me", Some(&cookie))).await).await, "bob", "cross-site logout did nothing");
    let res = send(&app, req("POST", "/logout", Some(&cookie))).await;
    assert!(is_removal(&res));
    assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
    let rm = set_cookies(&res).remove(0);
    assert_eq!(
        (rm.name(), rm.path(), rm.domain(), rm.secure(), rm.http_only(), rm.same_site()),
        (set.name(), set.path(), set.domain(), set.secure(), set.http_only(), set.same_site())
    );
    assert!(h.store.inner.is_empty(), "deleted server-side");
    assert_eq!(send(&app, req("GET", "/me", Some(&cookie))).await.status(), StatusCode::UNAUTHORIZED);
}

/// R4: records are keyed by SHA-256 of the ID; nothing stored contains the ID or the token.
#[tokio::test]
async fn store_sees_only_digests() {
    let h = Harness::new();
    let app = app(&h.layer);
    let res = send(&app, req("POST", "/login/alice", None)).await;
    let cookie = session_cookie(&res).unwrap();
    let token = cookie.strip_prefix("__Host-sid=").unwrap();
    let raw = URL_SAFE_NO_PAD.decode(token).unwrap();
    let id = SessionId::from_bytes(raw[5..21].try_into().unwrap());
    let keys = h.store.inner.keys();
    assert_eq!(keys, vec![id.storage_key()]);
    let record = h.store.inner.load(&keys[0], h.clock.now_ms()).await.unwrap().unwrap();
    let dump = format!("{} {:?}", serde_json::to_string(&record).unwrap(), keys);
    assert!(!dump.contains(&id.expose_secret()) && !dump.contains(token));
    // R2: the cookie carries no user data.
    assert!(!String::from_utf8_lossy(&raw).contains("alice"));
}

/// R33: the first key signs, older keys verify and trigger a re-issue, removed keys invalidate.
#[tokio::test]
async fn key_rotation() {
    let k1 = Key::generate().unwrap();
    let k2 = Key::generate().unwrap();
    let old = Harness::with(SessionConfig::default(), Keys::new(vec![k1.clone()]).unwrap());
    let cookie = session_cookie(&send(&app(&old.layer), req("POST", "/incr", None)).await).unwrap();

    // Same store, ring [k2, k1].
    let layer = sessionware::SessionLayer::new(old.store.clone(), Keys::new(vec![k2.clone(), k1]).unwrap())
        .with_clock(old.clock.clone());
    let rotated = app(&layer);
    let res = send(&rotated, req("GET", "/read", Some(&cookie))).await;
    let reissued = session_cookie(&res).expect("re-issued under the new key");
    assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
    assert_eq!(body(res).await, "1");
    assert_ne!(reissued, cookie);
    let res = send(&rotated, req("GET", "/read", Some(&reissued))).await;
    assert!(res.headers().get(header::SET_COOKIE).is_none(), "a current-key cookie is not re-issued");
    assert_eq!(body(res).await, "1");

    // Ring [k2] only: the k1 cookie is dead, without a store call.
    let layer =
        sessionware::SessionLayer::new(old.store.clone(), Keys::new(vec![k2]).unwrap()).with_clock(old.clock.clone());
    let loads = old.store.count(Op::Load);
    assert_eq!(body(send(&app(&layer), req("GET", "/read", Some(&cookie))).await).await, "none");
    assert_eq!(old.store.count(Op::Load), loads);
    assert_eq!(body(send(&app(&layer), req("GET", "/read", Some(&reissued))).await).await, "1");
}

/// R14 to R19: the default cookie, and persistent sessions bounded by the absolute deadline.
#[tokio::test]
async fn cookie_attributes() {
    let h = Harness::new();
    let app = app(&h.layer);
    let res = send(&app, req("POST", "/incr", None)).await;
    let c = set_cookies(&res).remove(0);
    assert!(c.name().starts_with("__Host-"));
    assert_eq!(c.secure(), Some(true));
    assert_eq!(c.http_only(), Some(true));
    assert_eq!(c.same_site(), Some(cookie::SameSite::Lax));
    assert_eq!(c.path(), Some("/"));
    assert_eq!(c.domain(), None);
    assert_eq!(c.max_age(), None, "browser-session cookie by default");
    assert_eq!(c.expires(), None);
    let cookie = format!("{}={}", c.name(), c.value());
    let res = send(&app, req("POST", "/remember", Some(&cookie))).await;
    let p = set_cookies(&res).remove(0);
    assert_eq!(p.value(), c.value(), "same session, now persistent");
    let max_age = p.max_age().unwrap().whole_seconds();
    assert!(max_age > 0 && max_age <= 12 * 3600, "Max-Age never outlives the absolute deadline: {max_age}");
}

/// R87, R88: Set-Cookie responses are no-store (replacing weaker directives);
/// responses that read the session vary on Cookie.
#[tokio::test]
async fn caching_headers() {
    use axum::{routing::get, Router};
    use sessionware::Session;
    let h = Harness::new();
    async fn public_write(session: Session) -> ([(header::HeaderName, &'static str); 1], String) {
        session.insert("x", 1).await.unwrap();
        ([(header::CACHE_CONTROL, "public, max-age=600")], String::new())
    }
    let app: Router =
        Router::new().route("/w", get(public_write)).merge(common::handlers::routes()).layer(h.layer.clone());
    let res = send(&app, req("GET", "/w", None)).await;
    let values: Vec<_> = res.headers().get_all(header::CACHE_CONTROL).iter().collect();
    assert_eq!(values, vec!["no-store"]);
    let cookie = session_cookie(&res).unwrap();
    let res = send(&app, req("GET", "/contains", Some(&cookie))).await;
    assert!(res.headers().get_all(header::VARY).iter().any(|v| v.to_str().unwrap().eq_ignore_ascii_case("cookie")));
    assert!(res.headers().get(header::SET_COOKIE).is_none());
}

/// R36: nothing secret in Debug output.
#[tokio::test]
async fn debug_output_is_redacted() {
    let h = Harness::new();
    let app = app(&h.layer);
    let cookie = session_cookie(&send(&app, req("POST", "/incr", None)).await).unwrap();
    let token = cookie.split('=').nth(1).unwrap().to_string();
    let dbg = format!("{:?} {:?} {:?}", h.keys, h.layer, h.store);
    assert!(!dbg.contains(&token));
    let raw = URL_SAFE_NO_PAD.decode(&token).unwrap();
    let id = SessionId::from_bytes(raw[5..21].try_into().unwrap());
    assert!(!format!("{id:?}").contains(&id.expose_secret()));
}

/// R6: the ID is read only from the session cookie, never from the URL, a
/// form field or another header, and never written into a URL or `Location`.
#[tokio::test]
async fn credentials_only_from_the_cookie() {
    let h = Harness::new();
    let app = app(&h.layer);
    let cookie = session_cookie(&send(&app, req("POST", "/incr", None)).await).unwrap();
    let token = cookie.split_once('=').unwrap().1.to_string();
    for uri in [
        format!("/read?id={token}"),
        format!("/read?session={token}"),
        format!("/read?access_token={token}"),
        format!("/read?__Host-sid={token}"),
    ] {
        assert_eq!(body(send(&app, req("GET", &uri, None)).await).await, "none", "{uri}");
    }
    for header in ["x-session-id", "authorization", "x-cookie"] {
        let mut r = req("GET", "/read", None);
        r.headers_mut().insert(header, token.parse().unwrap());
        assert_eq!(body(send(&app, r).await).await, "none", "{header}");
    }
    // R15: the token goes out only in Set-Cookie, never in a body or another header.
    let res = send(&app, req("POST", "/login/alice", Some(&cookie))).await;
    let fresh = session_cookie(&res).unwrap();
    let fresh_token = fresh.split_once('=').unwrap().1;
    for (name, value) in res.headers() {
        if name != header::SET_COOKIE {
            assert!(!value.to_str().unwrap_or_default().contains(fresh_token), "{name} leaks the token");
        }
    }
    assert!(!body(res).await.contains(fresh_token));
}
