//! Token sessions (feature `jwt`): refresh tokens that rotate on every use,
//! reuse detection that ends the family, lifetimes, revocation, and the
//! attacks of R76–R81. The same family on the real stores is in
//! `tests/store_sessions.rs`.
#![cfg(feature = "jwt")]

mod common;

use std::{
    sync::{atomic::Ordering, Arc, Mutex},
    time::Duration,
};

use axum::{
    body::Body,
    http::{header, Request, StatusCode},
    routing::{get, post},
    Router,
};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use common::{send, session_cookie, Harness, Op, T0};
use sessionware::{
    store::{MemoryStore, SessionStore as _},
    token::{
        AccessClaims, RefreshError, TokenAlgorithm, TokenIssuer, TokenKey, TokenKeys, TokenLayer, TokenPair,
        TokenSessions,
    },
    Clock as _, EventKind, Keys, LimitPolicy, ManualClock, Session, SessionConfig, SessionError, SessionId,
    SessionLayer,
};

const ISS: &str = "https://auth.test";
const AUD: &str = "api";
const MIN: u64 = 60_000;

fn ring() -> TokenKeys {
    TokenKeys::new([TokenKey::generate("k1", TokenAlgorithm::EdDsa).unwrap()]).unwrap()
}

/// Token sessions over the harness's layer, and a checked verifier app:
/// `/whoami` answers the claims, `/logout` ends the token's session.
struct Api {
    h: Harness,
    tokens: TokenSessions,
    app: Router,
    events: Arc<Mutex<Vec<EventKind>>>,
}

impl Api {
    fn new() -> Self {
        Self::with_config(SessionConfig::default())
    }

    fn with_config(config: SessionConfig) -> Self {
        let mut h = Harness::with_config(config);
        let events = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&events);
        h.layer = h.layer.clone().on_event(move |e| seen.lock().unwrap().push(e.kind));
        let keys = ring();
        let issuer = TokenIssuer::new(keys.clone(), ISS, AUD).unwrap();
        let tokens = TokenSessions::new(&h.layer, issuer).unwrap();
        let verifier =
            TokenLayer::new(keys, ISS, AUD).checked(&h.layer).unwrap().cache_ttl(Duration::from_secs(1)).unwrap();
        let out = tokens.clone();
        let app = Router::new()
            .route("/whoami", get(|c: AccessClaims| async move { format!("{} {}", c.sub, c.sid) }))
            .route(
                "/logout",
                post(move |c: AccessClaims| async move {
                    match out.logout(&c).await {
                        Ok(true) => StatusCode::NO_CONTENT,
                        Ok(false) => StatusCode::NOT_FOUND,
                        Err(e) => e.status(),
                    }
                }),
            )
            .layer(verifier)
            .route("/login/{user}", post(common::handlers::login))
            .route("/others", post(|s: Session| async move { s.revoke_others().await.map(|n| n.to_string()) }))
            .route("/password", post(|s: Session| async move { s.credentials_changed().await }))
            .layer(h.layer.clone());
        Self { h, tokens, app, events }
    }

    async fn bearer(&self, method: &str, path: &str, pair: &TokenPair) -> StatusCode {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {}", pair.access_token))
            .body(Body::empty())
            .unwrap();
        send(&self.app, req).await.status()
    }

    fn count(&self, kind: EventKind) -> usize {
        self.events.lock().unwrap().iter().filter(|k| **k == kind).count()
    }
}

fn reused(r: Result<TokenPair, RefreshError>) -> bool {
    matches!(r, Err(RefreshError::Reused))
}

fn invalid(r: Result<TokenPair, RefreshError>) -> bool {
    matches!(r, Err(RefreshError::Invalid))
}

/// The session ID inside a refresh token (version, 4-byte key id, ID, tag).
fn id_of(refresh_token: &str) -> SessionId {
    let raw = URL_SAFE_NO_PAD.decode(refresh_token).unwrap();
    SessionId::from_bytes(raw[5..5 + sessionware::ID_LEN].try_into().unwrap())
}

// ------------------------------------------------------------------ R77, R78

#[tokio::test]
async fn each_refresh_rotates_and_the_pair_is_an_oauth_response_r77() {
    let api = Api::new();
    let p1 = api.tokens.sign_in("alice").await.unwrap();
    let p2 = api.tokens.refresh(&p1.refresh_token).await.unwrap();
    let p3 = api.tokens.refresh(&p2.refresh_token).await.unwrap();
    assert_ne!(p1.refresh_token, p2.refresh_token);
    assert_ne!(p2.refresh_token, p3.refresh_token);
    assert_ne!(p1.access_token, p2.access_token);
    assert_eq!((p1.sid, p2.sid), (p3.sid, p3.sid), "one family: the session's handle");
    assert_eq!(api.bearer("GET", "/whoami", &p3).await, StatusCode::OK);

    let json: serde_json::Value = serde_json::to_value(&p3).unwrap();
    assert_eq!(json["token_type"], "Bearer");
    assert_eq!(json["expires_in"], 300);
    assert_eq!(json["refresh_token"], p3.refresh_token.as_str());
    assert_eq!(json.as_object().unwrap().len(), 4, "{json}");
    let debug = format!("{p3:?}");
    assert!(!debug.contains(&p3.refresh_token) && !debug.contains(&p3.access_token), "{debug}");
    assert_eq!(api.count(EventKind::Renewed(sessionware::RenewReason::Refresh)), 2);
}

#[tokio::test]
async fn a_reused_refresh_token_ends_the_family_r78() {
    let api = Api::new();
    let p1 = api.tokens.sign_in("alice").await.unwrap();
    let p2 = api.tokens.refresh(&p1.refresh_token).await.unwrap();
    let p3 = api.tokens.refresh(&p2.refresh_token).await.unwrap();
    assert_eq!(api.bearer("GET", "/whoami", &p3).await, StatusCode::OK);

    // An attacker replays the stolen first token, two rotations later.
    assert!(reused(api.tokens.refresh(&p1.refresh_token).await));
    // The legitimate holder's newest token is dead too, and so are the
    // family's access tokens (checked verifier).
    assert!(invalid(api.tokens.refresh(&p3.refresh_token).await));
    api.h.clock.advance(Duration::from_secs(1)); // the verifier's cache bound
    assert_eq!(api.bearer("GET", "/whoami", &p3).await, StatusCode::UNAUTHORIZED);
    assert_eq!(api.count(EventKind::RefreshReused), 1, "exactly one reuse event");
    // Another family of the same user is untouched.
    let other = api.tokens.sign_in("alice").await.unwrap();
    assert!(api.tokens.refresh(&other.refresh_token).await.is_ok());
}

/// A used refresh token is kept as retired until the family's idle deadline
/// after its rotation (far longer than a browser renewal's two minutes):
/// any holder who could still have used it is seen as a reuse. Past that
/// window the old token is simply invalid.
#[tokio::test]
async fn a_reuse_is_seen_for_the_whole_idle_window_r78() {
    let api = Api::new(); // idle timeout 30 minutes
    let p1 = api.tokens.sign_in("alice").await.unwrap();
    let mut latest = api.tokens.refresh(&p1.refresh_token).await.unwrap();
    for _ in 0..2 {
        api.h.clock.advance(Duration::from_secs(14 * 60));
        latest = api.tokens.refresh(&latest.refresh_token).await.unwrap();
    }
    api.h.clock.advance(Duration::from_secs(60)); // 29 minutes after p1 was used
    assert!(reused(api.tokens.refresh(&p1.refresh_token).await));
    assert!(invalid(api.tokens.refresh(&latest.refresh_token).await));

    let q1 = api.tokens.sign_in("alice").await.unwrap();
    let mut latest = api.tokens.refresh(&q1.refresh_token).await.unwrap();
    for _ in 0..3 {
        api.h.clock.advance(Duration::from_secs(14 * 60));
        latest = api.tokens.refresh(&latest.refresh_token).await.unwrap();
    }
    // 42 minutes after q1 was used: no holder of q1 could still refresh.
    assert!(invalid(api.tokens.refresh(&q1.refresh_token).await));
    assert!(api.tokens.refresh(&latest.refresh_token).await.is_ok(), "the family lives on");
}

// ------------------------------------------------------------------ R79

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_refreshes_with_one_token_make_one_branch_at_most_r79() {
    let api = Api::new();
    let p1 = api.tokens.sign_in("alice").await.unwrap();
    let store = api.h.store.clone();
    // Refresh A looks the token up, then is held before its rotation.
    store.pause_load.store(true, Ordering::SeqCst);
    let tokens = api.tokens.clone();
    let token = p1.refresh_token.clone();
    let a = tokio::spawn(async move { tokens.refresh(&token).await });
    store.loaded.notified().await;
    store.pause_load.store(false, Ordering::SeqCst);
    // Refresh B runs whole in that window and wins.
    let b = api.tokens.refresh(&p1.refresh_token).await.unwrap();
    store.release.notify_one();
    // A's rotation finds the key retired: a reuse, which ends the family.
    assert!(reused(a.await.unwrap()));
    assert!(invalid(api.tokens.refresh(&b.refresh_token).await), "no second branch survives");
    assert_eq!(api.count(EventKind::RefreshReused), 1);
}

// ------------------------------------------------------------------ R81

#[tokio::test]
async fn a_family_left_idle_past_the_idle_timeout_ends_r81() {
    let api = Api::new();
    let p = api.tokens.sign_in("alice").await.unwrap();
    api.h.clock.advance(Duration::from_secs(29 * 60));
    let p = api.tokens.refresh(&p.refresh_token).await.unwrap(); // activity moves the idle deadline
    api.h.clock.advance(Duration::from_secs(29 * 60));
    let p = api.tokens.refresh(&p.refresh_token).await.unwrap();
    api.h.clock.advance(Duration::from_secs(30 * 60));
    assert!(invalid(api.tokens.refresh(&p.refresh_token).await));
}

#[tokio::test]
async fn refreshing_never_extends_the_absolute_lifetime_r81() {
    let api = Api::new(); // 12 hours absolute
    let mut p = api.tokens.sign_in("alice").await.unwrap();
    let mut refreshed = 0;
    loop {
        api.h.clock.advance(Duration::from_secs(20 * 60));
        match api.tokens.refresh(&p.refresh_token).await {
            Ok(next) => {
                p = next;
                refreshed += 1;
            }
            Err(RefreshError::Invalid) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(refreshed, 35, "every 20 minutes until the 12th hour");
    assert!(api.h.clock.now_ms() - T0 <= 12 * 60 * MIN);
}

#[tokio::test]
async fn a_persistent_family_outlives_the_browser_idle_timeout() {
    let api = Api::new();
    let tokens = api.tokens.clone().persistent(true);
    let p = tokens.sign_in("alice").await.unwrap();
    api.h.clock.advance(Duration::from_secs(3 * 24 * 3600));
    let p = tokens.refresh(&p.refresh_token).await.unwrap();
    api.h.clock.advance(Duration::from_secs(31 * 24 * 3600));
    assert!(invalid(tokens.refresh(&p.refresh_token).await), "its own idle limit: 30 days");
}

// ------------------------------------------------------------------ R50: revocation ends the family

#[tokio::test]
async fn a_token_logout_ends_the_family_and_its_access_tokens() {
    let api = Api::new();
    let p = api.tokens.sign_in("alice").await.unwrap();
    assert_eq!(api.bearer("POST", "/logout", &p).await, StatusCode::NO_CONTENT);
    api.h.clock.advance(Duration::from_secs(1)); // the verifier's cache bound
    assert_eq!(api.bearer("GET", "/whoami", &p).await, StatusCode::UNAUTHORIZED);
    assert!(invalid(api.tokens.refresh(&p.refresh_token).await));
    assert_eq!(api.h.store.inner.len(), 0, "no session is left");
}

#[tokio::test]
async fn sign_out_other_devices_and_a_password_change_end_token_families() {
    let api = Api::new();
    let browser = session_cookie(&send(&api.app, common::req("POST", "/login/alice", None)).await).unwrap();
    let p = api.tokens.sign_in("alice").await.unwrap();
    let res = send(&api.app, common::req("POST", "/others", Some(&browser))).await;
    assert_eq!(common::body(res).await, "1");
    assert!(invalid(api.tokens.refresh(&p.refresh_token).await), "revoke_others");

    let p = api.tokens.sign_in("alice").await.unwrap();
    let res = send(&api.app, common::req("POST", "/password", Some(&browser))).await;
    assert!(res.status().is_success());
    assert!(invalid(api.tokens.refresh(&p.refresh_token).await), "credentials_changed (the user's epoch)");

    let p = api.tokens.sign_in("alice").await.unwrap();
    api.h.layer.control().end_all_sessions().await.unwrap();
    api.h.clock.advance(Duration::from_millis(1));
    assert!(invalid(api.tokens.refresh(&p.refresh_token).await), "the global cutoff");
}

#[tokio::test]
async fn the_per_user_limit_applies_to_token_sign_ins() {
    let config = SessionConfig::builder().max_sessions_per_user(1, LimitPolicy::RefuseNew).build().unwrap();
    let api = Api::with_config(config);
    api.tokens.sign_in("alice").await.unwrap();
    match api.tokens.sign_in("alice").await {
        Err(RefreshError::Session(SessionError::TooManySessions { max: 1 })) => {}
        other => panic!("{other:?}"),
    }
}

// ------------------------------------------------------------------ R76 and forgeries

#[tokio::test]
async fn the_store_keeps_only_the_digest_of_a_refresh_token_r76() {
    let api = Api::new();
    let p = api.tokens.sign_in("alice").await.unwrap();
    let id = id_of(&p.refresh_token);
    let keys = api.h.store.inner.keys();
    assert_eq!(keys, vec![id.storage_key()], "keyed by the digest");
    let record = api.h.store.inner.load(&keys[0], api.h.clock.now_ms()).await.unwrap().unwrap();
    let dump = format!("{record:?}");
    assert!(!dump.contains(&p.refresh_token) && !dump.contains(&id.expose_secret()), "{dump}");
    assert_eq!(p.refresh_token.len(), 71, "128 random bits, signed");
}

#[tokio::test]
async fn forged_and_cross_purpose_tokens_are_refused_without_a_panic() {
    let api = Api::new();
    let p = api.tokens.sign_in("alice").await.unwrap();
    let id = id_of(&p.refresh_token);

    // The session ID signed as a cookie or a header token is not a refresh token.
    let as_cookie = api.h.keys.sign("__Host-sid", &id);
    assert!(invalid(api.tokens.refresh(&as_cookie).await));
    // Nor is the refresh token a session cookie.
    let cookie = format!("__Host-sid={}", p.refresh_token);
    let res = send(&api.app, common::req("POST", "/others", Some(&cookie))).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "no session");
    // Another issuer's refresh tokens (same session keys) are refused.
    let other_issuer = TokenIssuer::new(ring(), "https://other.test", AUD).unwrap();
    let other = TokenSessions::new(&api.h.layer, other_issuer).unwrap();
    assert!(invalid(other.refresh(&p.refresh_token).await));
    // Tampered, truncated, oversized, empty, not base64: refused.
    let mut tampered = p.refresh_token.clone().into_bytes();
    tampered[40] = if tampered[40] == b'A' { b'B' } else { b'A' };
    for bad in [
        String::from_utf8(tampered).unwrap(),
        p.refresh_token[..70].to_string(),
        format!("{}A", p.refresh_token),
        "x".repeat(100_000),
        String::new(),
        "not a token at all !".into(),
    ] {
        assert!(invalid(api.tokens.refresh(&bad).await), "{bad:.20}");
    }
    // A token signed by keys the layer does not have.
    let foreign = Keys::generate().unwrap();
    let stranger = TokenSessions::new(
        &SessionLayer::new(MemoryStore::default(), foreign),
        TokenIssuer::new(ring(), ISS, AUD).unwrap(),
    )
    .unwrap();
    let theirs = stranger.sign_in("alice").await.unwrap();
    assert!(invalid(api.tokens.refresh(&theirs.refresh_token).await));
    // None of this touched the real family.
    assert!(api.tokens.refresh(&p.refresh_token).await.is_ok());
    assert_eq!(api.count(EventKind::RefreshReused), 0);
}

#[tokio::test]
async fn a_store_failure_fails_closed() {
    let api = Api::new();
    let p = api.tokens.sign_in("alice").await.unwrap();
    api.h.store.fail(Op::Rotate);
    match api.tokens.refresh(&p.refresh_token).await {
        Err(e @ RefreshError::Session(SessionError::Store(_))) => {
            assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE)
        }
        other => panic!("{other:?}"),
    }
    api.h.store.heal();
    assert!(api.tokens.refresh(&p.refresh_token).await.is_ok(), "nothing was lost");
    api.h.store.fail(Op::Create);
    assert!(matches!(api.tokens.sign_in("bob").await, Err(RefreshError::Session(_))));
}

#[test]
fn token_sessions_need_a_per_user_index() {
    use sessionware::store::Capabilities;
    let layer = SessionLayer::with_capabilities(Capabilities::new(MemoryStore::default()), Keys::generate().unwrap());
    let issuer = TokenIssuer::new(ring(), ISS, AUD).unwrap();
    assert!(TokenSessions::new(&layer, issuer).is_err());
    let _ = ManualClock::new(0);
}

#[tokio::test]
async fn a_back_channel_logout_ends_a_token_family_signed_in_through_the_provider() {
    use sessionware::{AuthMethod, ProviderSession, SignIn};
    let api = Api::new();
    let via_idp = SignIn::new("alice")
        .method(AuthMethod::Federated)
        .provider_session(ProviderSession::new("https://idp.test", Some("idp-sid-1")));
    let linked = api.tokens.sign_in_with(via_idp).await.unwrap();
    let other = api.tokens.sign_in("alice").await.unwrap();
    let ended = api.h.layer.control().end_provider_sessions("alice", "https://idp.test", Some("idp-sid-1")).await;
    assert_eq!(ended.unwrap(), 1);
    assert!(invalid(api.tokens.refresh(&linked.refresh_token).await));
    assert!(api.tokens.refresh(&other.refresh_token).await.is_ok(), "a family of another sign-in stays");
}
