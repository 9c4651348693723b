//! Security review of two features: encrypted cookie sessions
//! (`SessionLayer::cookie_sessions`) and the MFA / SSO sign-in context
//! (`login_with`, `step_up`, `RequireAssurance`, `end_provider_sessions`).
//!
//! Each test is one attack. A passing test documents a defended attack; a
//! test marked `#[ignore = "finding: ..."]` reproduces a defect.

mod common;
#[path = "common/store_fixtures.rs"]
mod store_fixtures;

use std::{
    collections::HashSet,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use async_trait::async_trait;
use axum::{
    body::Body,
    extract::Path,
    routing::{any, get, post},
    Router,
};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use common::*;
use http::{header, Request, StatusCode};
use sessionware::{
    guard::RequireAssurance,
    store::{
        Capability, ChangeSet, Cutoff, Cutoffs, FullStore, MemoryStore, Record, Rotated, Rotation, Scope, SessionStore,
        StorageKey, StoreError, Stored,
    },
    AuthMethod, Clock, CookieSessions, CsrfLayer, Key, Keys, ManualClock, ProviderSession, Session, SessionConfig,
    SessionError, SessionLayer, SharedError, SignIn, SystemClock,
};
use tokio::sync::Notify;

const MIN: Duration = Duration::from_secs(60);
const IDP: &str = "https://idp.example.com";

// ------------------------------------------------------------------ the app

async fn show_auth(session: Session) -> Result<String, SessionError> {
    Ok(match session.authentication().await? {
        None => "nobody".into(),
        Some(auth) => {
            let methods: Vec<&str> = auth.methods().iter().map(AuthMethod::as_str).collect();
            let provider = auth.provider().map(|p| format!("{}#{}", p.issuer, p.sid.as_deref().unwrap_or_default()));
            format!(
                "{} {} {} {}",
                auth.user,
                methods.join(","),
                auth.assurance(),
                provider.unwrap_or_else(|| "-".into())
            )
        }
    })
}

/// The common routes plus the sign-in context routes, the MFA guard, a
/// big value, the password change and a CSRF-free action.
fn routes() -> Router {
    Router::new()
        .route("/mfa/api", get(|| async { "mfa api" }))
        .route_layer(RequireAssurance::mfa())
        .route(
            "/sign-in/password/{user}",
            post(|s: Session, Path(user): Path<String>| async move {
                s.login_with(SignIn::new(user).method(AuthMethod::Password)).await
            }),
        )
        .route(
            "/sign-in/idp/{iss}/{sid}/{user}",
            post(|s: Session, Path((iss, sid, user)): Path<(String, String, String)>| async move {
                s.login_with(
                    SignIn::new(user)
                        .method(AuthMethod::Federated)
                        .provider_session(ProviderSession::new(format!("https://{iss}"), Some(sid))),
                )
                .await
            }),
        )
        .route("/step-up", post(|s: Session| async move { s.step_up(AuthMethod::Totp).await }))
        .route("/password", post(|s: Session| async move { s.credentials_changed().await }))
        .route("/auth", get(show_auth))
        .route("/big/{n}", post(|s: Session, Path(n): Path<usize>| async move { s.insert("big", "x".repeat(n)).await }))
        .route(
            "/put/{k}",
            post(|s: Session, Path(k): Path<String>, body: String| async move { s.insert(&k, body).await }),
        )
        .merge(handlers::routes())
}

fn cookie_layer(keys: Keys, config: SessionConfig, clock: &ManualClock) -> SessionLayer {
    SessionLayer::cookie_sessions(CookieSessions::new(keys)).with_config(config).with_clock(clock.clone())
}

fn cookie_app(keys: Keys, clock: &ManualClock) -> Router {
    routes().layer(cookie_layer(keys, SessionConfig::default(), clock))
}

async fn get_body(app: &Router, path: &str, cookie: &str) -> (StatusCode, String) {
    let res = send(app, req("GET", path, Some(cookie))).await;
    let status = res.status();
    (status, body(res).await)
}

async fn post_cookie(app: &Router, path: &str, cookie: Option<&str>) -> Option<String> {
    let res = send(app, req("POST", path, cookie)).await;
    assert!(res.status().is_success(), "{path}: {}", res.status());
    session_cookie(&res)
}

fn refused_as(res: &http::Response<Body>) -> Option<String> {
    res.extensions().get::<SharedError>().map(|e| format!("{:?}", e.error()))
}

/// A cutoff store that can fail its reads or pause one of them.
#[derive(Clone, Default, Debug)]
struct Epochs {
    inner: MemoryStore,
    fail_reads: Arc<AtomicBool>,
    reads: Arc<AtomicUsize>,
    /// The read (1-based count) to pause at; 0: none.
    pause_at: Arc<AtomicUsize>,
    reached: Arc<Notify>,
    release: Arc<Notify>,
}

#[async_trait]
impl SessionStore for Epochs {
    async fn create(&self, key: &StorageKey, record: &Record, now: u64) -> Result<bool, StoreError> {
        self.inner.create(key, record, now).await
    }
    async fn lookup(&self, key: &StorageKey, now: u64) -> Result<Option<Stored>, StoreError> {
        self.inner.lookup(key, now).await
    }
    async fn rotate(&self, old: &StorageKey, new: &StorageKey, rotation: &Rotation) -> Result<Rotated, StoreError> {
        self.inner.rotate(old, new, rotation).await
    }
    async fn apply(&self, key: &StorageKey, changes: &ChangeSet, now: u64) -> Result<bool, StoreError> {
        self.inner.apply(key, changes, now).await
    }
    async fn touch(&self, key: &StorageKey, now: u64, expires_at: u64) -> Result<bool, StoreError> {
        self.inner.touch(key, now, expires_at).await
    }
    async fn delete(&self, key: &StorageKey, now: u64) -> Result<(), StoreError> {
        self.inner.delete(key, now).await
    }
}

#[async_trait]
impl Cutoffs for Epochs {
    async fn cut(&self, scope: Scope<'_>, not_before: u64, keep_until: u64, now: u64) -> Result<(), StoreError> {
        self.inner.cut(scope, not_before, keep_until, now).await
    }
    async fn cutoff(&self, user: Option<&str>, now: u64) -> Result<Cutoff, StoreError> {
        let n = self.reads.fetch_add(1, Ordering::SeqCst) + 1;
        if self.fail_reads.load(Ordering::SeqCst) {
            return Err(StoreError::Backend("cutoffs unreachable".into()));
        }
        if n == self.pause_at.load(Ordering::SeqCst) {
            self.reached.notify_one();
            self.release.notified().await;
        }
        self.inner.cutoff(user, now).await
    }
}

// ============================================================ A: cookie sessions

// A1. Replay after a password change, with the per-user epoch: the other
// device's cookie and the caller's own cookie from before are both dead.
#[tokio::test]
async fn a_cookie_from_before_a_password_change_is_no_session_with_cutoffs() {
    let clock = ManualClock::new(T0);
    let layer =
        SessionLayer::cookie_sessions(CookieSessions::new(Keys::generate().unwrap()).with_cutoffs(Epochs::default()))
            .with_clock(clock.clone());
    let app = routes().layer(layer);
    let here = post_cookie(&app, "/sign-in/password/alice", None).await.unwrap();
    let there = post_cookie(&app, "/sign-in/password/alice", None).await.unwrap();
    let changed = post_cookie(&app, "/password", Some(&here)).await.expect("re-sealed under the new epoch");
    assert!(get_body(&app, "/auth", &changed).await.1.starts_with("alice password AAL1"));
    assert_eq!(get_body(&app, "/auth", &there).await.1, "nobody");
    assert_eq!(get_body(&app, "/auth", &here).await.1, "nobody", "the caller's own old copy is dead too");
}

// A2. A replayed logout of a dead cookie does not move the epoch again
// (which would end the user's new sign-in).
#[tokio::test]
async fn a_replayed_logout_of_a_dead_cookie_does_not_end_the_new_sign_in() {
    let clock = ManualClock::new(T0);
    let layer =
        SessionLayer::cookie_sessions(CookieSessions::new(Keys::generate().unwrap()).with_cutoffs(Epochs::default()))
            .with_clock(clock.clone());
    let app = routes().layer(layer);
    let old = login(&app, "alice").await;
    assert!(is_removal(&send(&app, req("POST", "/logout", Some(&old))).await));
    let new = login(&app, "alice").await;
    for _ in 0..3 {
        send(&app, req("POST", "/logout", Some(&old))).await;
    }
    assert_eq!(who(&app, &new).await, (StatusCode::OK, "alice".into()));
    assert_eq!(who(&app, &old).await.0, StatusCode::UNAUTHORIZED);
}

// A3. The AAD binds the cookie name: every other name (prefix variants
// included) refuses the value.
#[tokio::test]
async fn a_value_under_another_cookie_name_or_prefix_does_not_open() {
    let clock = ManualClock::new(T0);
    let keys = Keys::generate().unwrap();
    let app = cookie_app(keys.clone(), &clock);
    let alice = login(&app, "alice").await;
    let value = token_of(&alice).to_string();
    for name in ["__Secure-sid", "sid", "__host-sid", "__Host-sid2", "__Host-si"] {
        let config = SessionConfig::builder().cookie_name(name).build();
        let Ok(config) = config else { continue };
        let other = routes().layer(cookie_layer(keys.clone(), config, &clock));
        assert_eq!(who(&other, &format!("{name}={value}")).await.0, StatusCode::UNAUTHORIZED, "{name}");
    }
}

// A3b. Two applications that share a key ring and the default cookie name
// accepted each other's sessions: the AAD binds the name, format and key
// id, nothing of the application. Fixed finding: `CookieSessions::context`
// derives each application's cipher keys from the ring and its context;
// without one, the two still share sessions (documented: one ring per app).
#[tokio::test]
async fn apps_sharing_a_key_ring_do_not_accept_each_others_cookies() {
    let clock = ManualClock::new(T0);
    let keys = Keys::generate().unwrap();
    let app = |context: &str| {
        let sessions = CookieSessions::new(keys.clone()).context(context);
        routes().layer(SessionLayer::cookie_sessions(sessions).with_clock(clock.clone()))
    };
    let (billing, blog) = (app("billing"), app("blog"));
    let admin_on_blog = login(&blog, "admin").await;
    assert_eq!(who(&blog, &admin_on_blog).await.0, StatusCode::OK);
    assert_eq!(
        who(&billing, &admin_on_blog).await.0,
        StatusCode::UNAUTHORIZED,
        "a session of the blog signs the user in to billing"
    );
    let admin_on_billing = login(&billing, "admin").await;
    assert_eq!(who(&blog, &admin_on_billing).await.0, StatusCode::UNAUTHORIZED);
    // Without a context, the ring alone tells them apart (documented).
    let (plain_a, plain_b) = (cookie_app(keys.clone(), &clock), cookie_app(keys.clone(), &clock));
    let shared = login(&plain_a, "admin").await;
    assert_eq!(who(&plain_b, &shared).await.0, StatusCode::OK);
}

// A4. A key removed from the ring ends the sessions it sealed; an older
// key still in the ring opens and reseals.
#[tokio::test]
async fn a_cookie_sealed_by_a_removed_key_is_no_session() {
    let clock = ManualClock::new(T0);
    let (k1, k2) = (Key::generate().unwrap(), Key::generate().unwrap());
    let old = cookie_app(Keys::new(vec![k1.clone()]).unwrap(), &clock);
    let alice = login(&old, "alice").await;
    let only_new = cookie_app(Keys::new(vec![k2.clone()]).unwrap(), &clock);
    let res = send(&only_new, req("GET", "/me", Some(&alice))).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // Relabelled with the new key's id: the AAD (and the cipher) refuse it.
    let mut raw = URL_SAFE_NO_PAD.decode(token_of(&alice)).unwrap();
    let new_kid = URL_SAFE_NO_PAD.decode(token_of(&login(&only_new, "x").await)).unwrap()[1..5].to_vec();
    raw[1..5].copy_from_slice(&new_kid);
    let relabelled = format!("__Host-sid={}", URL_SAFE_NO_PAD.encode(&raw));
    assert_eq!(who(&only_new, &relabelled).await.0, StatusCode::UNAUTHORIZED);
}

// A5. Nonces are random per seal: identical records sealed at the same
// instant never share a nonce or a ciphertext.
#[tokio::test]
async fn nonces_are_fresh_for_every_seal_of_identical_records() {
    let clock = ManualClock::new(T0);
    let app = cookie_app(Keys::generate().unwrap(), &clock);
    let mut nonces = HashSet::new();
    let mut bodies = HashSet::new();
    for _ in 0..300 {
        let c = post_cookie(&app, "/set/x", None).await.unwrap();
        let raw = URL_SAFE_NO_PAD.decode(token_of(&c)).unwrap();
        assert_eq!(raw[0], 1, "format byte");
        assert!(nonces.insert(raw[5..29].to_vec()), "a nonce repeated");
        assert!(bodies.insert(raw[29..].to_vec()), "a ciphertext repeated");
    }
}

// A6. A store-backed layer's signed ID presented to a cookie layer with the
// same keys and name, and a sealed cookie presented to the store layer:
// no session either way, never a panic.
#[tokio::test]
async fn store_cookies_and_sealed_cookies_are_not_interchangeable() {
    let keys = Keys::generate().unwrap();
    let h = Harness::with(SessionConfig::default(), keys.clone());
    let store_app = routes().layer(h.layer.clone());
    let cookie_app = cookie_app(keys, &h.clock);
    let from_store = login(&store_app, "alice").await;
    let sealed = login(&cookie_app, "alice").await;
    assert_eq!(who(&cookie_app, &from_store).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(who(&store_app, &sealed).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(who(&store_app, &from_store).await.0, StatusCode::OK);
    assert_eq!(who(&cookie_app, &sealed).await.0, StatusCode::OK);
}

// A7. Hostile cookie headers: huge, many, non-UTF-8, odd characters.
#[tokio::test]
async fn hostile_cookie_headers_are_no_session_and_never_panic() {
    let clock = ManualClock::new(T0);
    let app = cookie_app(Keys::generate().unwrap(), &clock);
    let alice = login(&app, "alice").await;
    let value = token_of(&alice).to_string();
    let many: String = (0..2000).map(|i| format!("__Host-sid=v{i}; ")).collect();
    let headers: Vec<Vec<u8>> = vec![
        format!("__Host-sid={}", "A".repeat(70_000)).into_bytes(),
        many.into_bytes(),
        b"__Host-sid=\xff\xfe\x00abc".to_vec(),
        format!("__Host-sid=\"{value}\"").into_bytes(),
        format!("__Host-sid={value}==").into_bytes(),
        format!("__Host-sid={}", value.replace('-', "+").replace('_', "/")).into_bytes(),
        format!("__Host-sid={value}; __Host-sid={}", tamper(&alice).split_once('=').unwrap().1).into_bytes(),
    ];
    for (i, h) in headers.iter().enumerate() {
        let Ok(hv) = http::HeaderValue::from_bytes(h) else { continue };
        let mut r = req("GET", "/me", None);
        r.headers_mut().insert(header::COOKIE, hv);
        let res = send(&app, r).await;
        assert_ne!(res.status(), StatusCode::INTERNAL_SERVER_ERROR, "header {i}");
        let status = res.status();
        let b = body(res).await;
        // The last one: the genuine value beside a tampered copy may pick the
        // genuine one (the tampered one does not open); never another user.
        assert!(status == StatusCode::UNAUTHORIZED || b == "alice", "header {i}: {status} {b}");
    }
}

// A8. Session data cannot reach the Set-Cookie header: the value is
// base64url only, one Set-Cookie, the usual attributes.
#[tokio::test]
async fn session_data_cannot_inject_into_set_cookie() {
    let clock = ManualClock::new(T0);
    let app = cookie_app(Keys::generate().unwrap(), &clock);
    let evil = "x\r\nSet-Cookie: evil=1; Domain=.evil.com; Path=/\"; Max-Age=99999999; ";
    let mut r = req("POST", "/put/k%0D%0ASet-Cookie:%20a=b", None);
    *r.body_mut() = Body::from(evil);
    let res = send(&app, r).await;
    assert_eq!(res.status(), StatusCode::OK);
    let all: Vec<_> = res.headers().get_all(header::SET_COOKIE).iter().collect();
    assert_eq!(all.len(), 1);
    let line = all[0].to_str().unwrap();
    assert!(!line.contains("evil") && !line.contains('\r') && !line.contains('\n'), "{line}");
    let c = &set_cookies(&res)[0];
    assert!(c.value().bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{}", c.value());
    assert_eq!((c.http_only(), c.secure(), c.path(), c.domain()), (Some(true), Some(true), Some("/"), None));
}

// A9. A login that would take the cookie past 4,096 bytes: 413, no
// Set-Cookie, the previous cookie keeps working as it was.
#[tokio::test]
async fn a_login_past_the_budget_is_413_and_the_old_cookie_is_kept() {
    let clock = ManualClock::new(T0);
    let config = SessionConfig::builder().keep_on_login(["big"]).build().unwrap();
    let app = routes().layer(cookie_layer(Keys::generate().unwrap(), config, &clock));
    // The largest value that still fits, by steps of 16.
    let mut fits = None;
    for n in (2000..3200).step_by(16) {
        let res = send(&app, req("POST", &format!("/big/{n}"), None)).await;
        if res.status() == StatusCode::PAYLOAD_TOO_LARGE {
            break;
        }
        fits = session_cookie(&res);
    }
    let fits = fits.expect("some value fits");
    let user = "u".repeat(400);
    let res = send(&app, req("POST", &format!("/login/{user}"), Some(&fits))).await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(res.headers().get(header::SET_COOKIE).is_none());
    let (status, keys) = get_body(&app, "/keys", &fits).await;
    assert_eq!((status, keys.as_str()), (StatusCode::OK, "big"));
    assert_eq!(who(&app, &fits).await.0, StatusCode::UNAUTHORIZED, "still the anonymous session");
}

// A10. Session fixation on a client-side session: an attacker who plants
// their own (anonymous) cookie in the victim's browser gains nothing: the
// victim's login seals a new cookie, the attacker's copy stays anonymous
// and holds none of the victim's data; the attacker's planted data is
// dropped by the login data policy.
#[tokio::test]
async fn a_planted_pre_login_cookie_gives_the_attacker_nothing() {
    let clock = ManualClock::new(T0);
    let app = cookie_app(Keys::generate().unwrap(), &clock);
    let planted = post_cookie(&app, "/set/planted", None).await.unwrap();
    let victim = post_cookie(&app, "/login/victim", Some(&planted)).await.unwrap();
    let victim = post_cookie(&app, "/set/secret", Some(&victim)).await.unwrap();
    assert_eq!(get_body(&app, "/keys", &victim).await.1, "secret", "the planted key is dropped at login");
    assert_eq!(who(&app, &planted).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(get_body(&app, "/keys", &planted).await.1, "planted");
}

// A11. CSRF protection on a cookie-session layer: a missing or foreign token
// is refused; a token from before the login stops verifying after it.
#[tokio::test]
async fn csrf_protection_still_applies_on_the_cookie_layer() {
    let clock = ManualClock::new(T0);
    let ran = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&ran);
    let app = Router::new()
        .route("/token", get(|s: Session| async move { Ok::<_, SessionError>(s.csrf_token().await?.to_string()) }))
        .route(
            "/act",
            any(move || {
                count.fetch_add(1, Ordering::SeqCst);
                async { "acted" }
            }),
        )
        .merge(handlers::routes())
        .layer(CsrfLayer::new().require_token())
        .layer(cookie_layer(Keys::generate().unwrap(), SessionConfig::default(), &clock));
    let act = |cookie: &str, token: Option<&str>| {
        let mut r = req("POST", "/act", Some(cookie));
        if let Some(t) = token {
            r.headers_mut().insert("x-csrf-token", t.parse().unwrap());
        }
        r
    };
    let res = send(&app, req("GET", "/token", None)).await;
    let anon = session_cookie(&res).expect("a token gives a session");
    let before = body(res).await;
    let mut login = req("POST", "/login/alice", Some(&anon));
    login.headers_mut().insert("x-csrf-token", before.parse().unwrap());
    let res = send(&app, login).await;
    assert_eq!(res.status(), StatusCode::OK);
    let alice = session_cookie(&res).expect("the login seals a new cookie");
    // The pre-login cookie still opens (a client-side copy) but is anonymous.
    assert_eq!(who(&app, &anon).await.0, StatusCode::UNAUTHORIZED);
    let res = send(&app, act(&alice, None)).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN, "no token");
    let res = send(&app, act(&alice, Some(&before))).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN, "a token from before the login");
    // Another session's token.
    let res = send(&app, req("GET", "/token", None)).await;
    let other_token = body(res).await;
    let res = send(&app, act(&alice, Some(&other_token))).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN, "another session's token");
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    let res = send(&app, req("GET", "/token", Some(&alice))).await;
    let alice = session_cookie(&res).unwrap_or(alice);
    let good = body(res).await;
    assert_eq!(send(&app, act(&alice, Some(&good))).await.status(), StatusCode::OK);
    assert_eq!(ran.load(Ordering::SeqCst), 1);
}

// A12. Events and logs name a fingerprint, never the cookie or the data.
#[tokio::test]
async fn events_and_logs_never_carry_the_payload_or_the_cookie() {
    let capture = LogCapture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(capture.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let events = Arc::new(Mutex::new(String::new()));
    let log = Arc::clone(&events);
    let clock = ManualClock::new(T0);
    let layer = cookie_layer(Keys::generate().unwrap(), SessionConfig::default(), &clock)
        .on_event(move |e| log.lock().unwrap().push_str(&format!("{e:?}\n")));
    let app = routes().layer(layer);
    let mut r = req("POST", "/put/card", None);
    *r.body_mut() = Body::from("S3CR3T-PAYLOAD");
    let c = session_cookie(&send(&app, r).await).unwrap();
    let alice = post_cookie(&app, "/login/alice", Some(&c)).await.unwrap();
    send(&app, req("GET", "/read", Some(&tamper(&alice)))).await;
    send(&app, req("POST", "/big/5000", Some(&alice))).await;
    send(&app, req("POST", "/logout", Some(&alice))).await;
    let text = format!("{}\n{}", events.lock().unwrap(), capture.text());
    for secret in ["S3CR3T", token_of(&c), token_of(&alice), &token_of(&alice)[..40]] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
}

// A13. Fail closed: a layer with cutoffs whose cutoff read fails does not
// admit a signed-in cookie.
#[tokio::test]
async fn a_failing_cutoff_read_fails_closed_on_the_cookie_layer() {
    let clock = ManualClock::new(T0);
    let epochs = Epochs::default();
    let layer =
        SessionLayer::cookie_sessions(CookieSessions::new(Keys::generate().unwrap()).with_cutoffs(epochs.clone()))
            .with_clock(clock.clone());
    let app = routes().layer(layer);
    let alice = login(&app, "alice").await;
    epochs.fail_reads.store(true, Ordering::SeqCst);
    let res = send(&app, req("GET", "/me", Some(&alice))).await;
    let status = res.status();
    assert_ne!((status, body(res).await), (StatusCode::OK, "alice".to_string()), "admitted without the epoch");
    let res = send(&app, req("GET", "/mfa/api", Some(&alice))).await;
    assert_ne!(res.status(), StatusCode::OK);
}

// A14. A step-up (or any re-login) racing an administrator's cut of the
// user, on the cookie layer: the session sealed by the late step-up is
// stamped with the epoch its request began under, so the cut ends it.
#[tokio::test]
async fn a_step_up_racing_end_user_sessions_stays_ended_on_the_cookie_layer() {
    let clock = ManualClock::new(T0);
    let epochs = Epochs::default();
    let layer =
        SessionLayer::cookie_sessions(CookieSessions::new(Keys::generate().unwrap()).with_cutoffs(epochs.clone()))
            .with_clock(clock.clone());
    let app = routes().layer(layer.clone());
    let alice = post_cookie(&app, "/sign-in/password/alice", None).await.unwrap();
    // How many cutoff reads a step-up makes before its login's own read.
    let before = epochs.reads.load(Ordering::SeqCst);
    let probe = post_cookie(&app, "/step-up", Some(&alice)).await.unwrap();
    let per_step_up = epochs.reads.load(Ordering::SeqCst) - before;
    assert!(per_step_up >= 1, "the step-up reads the epoch");
    let _ = probe;
    // Pause the step-up's last read (the login's), cut meanwhile.
    epochs.pause_at.store(epochs.reads.load(Ordering::SeqCst) + per_step_up, Ordering::SeqCst);
    let task = {
        let (app, alice) = (app.clone(), alice.clone());
        tokio::spawn(async move { send(&app, req("POST", "/step-up", Some(&alice))).await })
    };
    tokio::time::timeout(Duration::from_secs(5), epochs.reached.notified()).await.expect("paused");
    layer.control().end_user_sessions("alice").await.unwrap();
    epochs.release.notify_one();
    let res = task.await.unwrap();
    eprintln!("race outcome: {} {:?} cookie={}", res.status(), refused_as(&res), session_cookie(&res).is_some());
    if let Some(c) = session_cookie(&res) {
        assert_eq!(get_body(&app, "/auth", &c).await.1, "nobody", "the late step-up survived the cut");
        assert_ne!(send(&app, req("GET", "/mfa/api", Some(&c))).await.status(), StatusCode::OK);
    }
    assert_eq!(get_body(&app, "/auth", &alice).await.1, "nobody");
}

// A15. Deadlines cannot be extended by the client: re-sending an expired
// cookie with any byte changed never revives it; an idle cookie past its
// deadline is removed whatever Max-Age the client kept.
#[tokio::test]
async fn an_expired_cookie_cannot_be_revived() {
    let clock = ManualClock::new(T0);
    let config = SessionConfig::builder().idle_timeout(10 * MIN).absolute_timeout(60 * MIN).build().unwrap();
    let app = routes().layer(cookie_layer(Keys::generate().unwrap(), config, &clock));
    let alice = post_cookie(&app, "/sign-in/password/alice", None).await.unwrap();
    clock.advance(11 * MIN);
    assert_eq!(who(&app, &alice).await.0, StatusCode::UNAUTHORIZED);
    let (name, value) = alice.split_once('=').unwrap();
    for i in (0..value.len()).step_by(7) {
        let mut v = value.as_bytes().to_vec();
        v[i] = if v[i] == b'A' { b'B' } else { b'A' };
        let c = format!("{name}={}", String::from_utf8(v).unwrap());
        assert_eq!(who(&app, &c).await.0, StatusCode::UNAUTHORIZED, "{i}");
    }
}

// A16. A cookie that fits the budget exactly: a later read-only request
// that renews it (periodic renewal adds `renewed_at`) or slides its idle
// deadline must not turn the read into a 413, and the session must stay
// usable.
//
// Fixed finding: a write that fit to within the ~35 bytes that
// `renewed_at` adds made every later read-only request 413 once the
// periodic renewal was due. A reseal the layer makes on its own (touch,
// re-issue, periodic renewal without changes) that would be over the
// budget now keeps the presented cookie.
#[tokio::test]
async fn a_read_of_a_cookie_at_the_budget_edge_is_not_413() {
    let clock = ManualClock::new(T0);
    let config = SessionConfig::builder().renew_after(MIN).build().unwrap();
    let app = routes().layer(cookie_layer(Keys::generate().unwrap(), config, &clock));
    // The largest value that fits, to the byte.
    let (mut lo, mut hi) = (1000usize, 4096usize);
    let mut edge = None;
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        let res = send(&app, req("POST", &format!("/big/{mid}"), None)).await;
        if res.status() == StatusCode::OK {
            edge = session_cookie(&res);
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    let edge = edge.expect("some value fits");
    clock.advance(2 * MIN);
    let res = send(&app, req("GET", "/keys", Some(&edge))).await;
    assert_eq!(res.status(), StatusCode::OK, "a read-only request answered {:?}", refused_as(&res));
    assert_eq!(body(res).await, "big");
    let res = send(&app, req("GET", "/keys", Some(&edge))).await;
    assert_eq!(res.status(), StatusCode::OK, "stuck: every read is refused");
}

// ============================================================ B: MFA / SSO

// B1. A step-up without a first factor: anonymous session (with data), no
// session, and a cookie session: all refused, no sign-in recorded.
#[tokio::test]
async fn a_step_up_without_a_sign_in_is_refused_on_both_layers() {
    let h = Harness::new();
    let store_app = routes().layer(h.layer.clone());
    let sealed = cookie_app(Keys::generate().unwrap(), &h.clock);
    for app in [&store_app, &sealed] {
        let anon = post_cookie(app, "/set/x", None).await.unwrap();
        let res = send(app, req("POST", "/step-up", Some(&anon))).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(refused_as(&res).as_deref(), Some("NotAuthenticated"));
        if let Some(c) = session_cookie(&res) {
            assert_eq!(get_body(app, "/auth", &c).await.1, "nobody");
        }
        assert_eq!(get_body(app, "/auth", &anon).await.1, "nobody");
        let res = send(app, req("POST", "/step-up", None)).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert!(session_cookie(&res).is_none());
    }
}

// B2. On the cookie layer a step-up seals a new AAL2 cookie; the copy from
// before stays what it was (AAL1, the documented revocation limit) and the
// guard refuses it: no assurance upgrade for the old copy.
#[tokio::test]
async fn the_pre_step_up_cookie_stays_aal1_on_the_cookie_layer() {
    let clock = ManualClock::new(T0);
    let app = cookie_app(Keys::generate().unwrap(), &clock);
    let before = post_cookie(&app, "/sign-in/password/alice", None).await.unwrap();
    let after = post_cookie(&app, "/step-up", Some(&before)).await.unwrap();
    assert_eq!(get_body(&app, "/mfa/api", &after).await.0, StatusCode::OK);
    let res = send(&app, req("GET", "/mfa/api", Some(&before))).await;
    assert_eq!(refused_as(&res).as_deref(), Some("StepUpRequired"));
}

// B3. A step-up held between its load and its commit while the same
// session logs out: the step-up does not resurrect it.
#[tokio::test]
async fn a_step_up_held_across_a_logout_does_not_resurrect_the_session() {
    let h = Harness::new();
    let app = routes().layer(h.layer.clone());
    let alice = post_cookie(&app, "/sign-in/password/alice", None).await.unwrap();
    let task = hold(&h, &app, "POST", "/step-up", &alice).await;
    assert!(is_removal(&send(&app, req("POST", "/logout", Some(&alice))).await));
    release(&h);
    let res = task.await.unwrap();
    eprintln!("race outcome: {} {:?} cookie={}", res.status(), refused_as(&res), session_cookie(&res).is_some());
    if let Some(c) = session_cookie(&res) {
        assert_eq!(get_body(&app, "/auth", &c).await.1, "nobody", "the step-up resurrected a logged-out session");
    }
    assert_eq!(get_body(&app, "/auth", &alice).await.1, "nobody");
}

// B4. A step-up held across an administrator's end_user_sessions: the
// session it commits is ended too.
#[tokio::test]
async fn a_step_up_held_across_end_user_sessions_stays_ended() {
    let h = Harness::new();
    let app = routes().layer(h.layer.clone());
    let alice = post_cookie(&app, "/sign-in/password/alice", None).await.unwrap();
    let task = hold(&h, &app, "POST", "/step-up", &alice).await;
    h.clock.advance(Duration::from_millis(5));
    h.layer.control().end_user_sessions("alice").await.unwrap();
    release(&h);
    let res = task.await.unwrap();
    eprintln!("race outcome: {} {:?} cookie={}", res.status(), refused_as(&res), session_cookie(&res).is_some());
    if let Some(c) = session_cookie(&res) {
        assert_eq!(get_body(&app, "/auth", &c).await.1, "nobody", "the late step-up survived the cut");
    }
}

// B5. Alice's step-up held while the same session is signed in to by bob
// (shared browser): the step-up neither turns bob's session into alice's
// nor hands alice bob's data.
#[tokio::test]
async fn a_step_up_held_across_another_users_login_hijacks_nothing() {
    let h = Harness::new();
    let app = routes().layer(h.layer.clone());
    let alice = post_cookie(&app, "/sign-in/password/alice", None).await.unwrap();
    let task = hold(&h, &app, "POST", "/step-up", &alice).await;
    let bob = post_cookie(&app, "/sign-in/password/bob", Some(&alice)).await.unwrap();
    let bob = post_cookie(&app, "/set/bobdata", Some(&bob)).await.unwrap_or(bob);
    release(&h);
    let res = task.await.unwrap();
    assert!(get_body(&app, "/auth", &bob).await.1.starts_with("bob password AAL1"), "bob's session is still bob's");
    if let Some(c) = session_cookie(&res) {
        let shown = get_body(&app, "/auth", &c).await.1;
        if shown.starts_with("alice") {
            assert!(!get_body(&app, "/keys", &c).await.1.contains("bobdata"), "alice got bob's data");
        } else {
            assert!(
                !shown.contains("AAL2") || !shown.starts_with("bob"),
                "bob raised to AAL2 by alice's factor: {shown}"
            );
        }
    }
}

// B6. A periodic renewal's overlap alias (the old ID) does not carry the
// level of a later step-up on the new ID.
#[tokio::test]
async fn a_renewal_alias_does_not_inherit_a_later_step_up() {
    let config = SessionConfig::builder().renew_after(MIN).renew_overlap(Duration::from_secs(30)).build().unwrap();
    let h = Harness::with_config(config);
    let app = routes().layer(h.layer.clone());
    let c1 = post_cookie(&app, "/sign-in/password/alice", None).await.unwrap();
    h.clock.advance(2 * MIN);
    let res = send(&app, req("GET", "/auth", Some(&c1))).await;
    let c2 = session_cookie(&res).expect("periodic renewal");
    let c3 = post_cookie(&app, "/step-up", Some(&c2)).await.unwrap();
    assert_eq!(get_body(&app, "/mfa/api", &c3).await.0, StatusCode::OK);
    let res = send(&app, req("GET", "/mfa/api", Some(&c1))).await;
    assert_ne!(res.status(), StatusCode::OK, "the pre-renewal alias passed the MFA guard");
    let res = send(&app, req("GET", "/mfa/api", Some(&c2))).await;
    assert_ne!(res.status(), StatusCode::OK, "the pre-step-up ID passed the MFA guard");
}

// B6b. A write held between its load and commit while the same session
// steps up: the late write neither lowers the stepped-up session's level
// nor gives the pre-step-up ID a second life.
#[tokio::test]
async fn a_late_write_across_a_step_up_does_not_downgrade_or_revive() {
    let h = Harness::new();
    let app = routes().layer(h.layer.clone());
    let alice = post_cookie(&app, "/sign-in/password/alice", None).await.unwrap();
    let task = hold(&h, &app, "POST", "/set/late", &alice).await;
    let stepped = post_cookie(&app, "/step-up", Some(&alice)).await.unwrap();
    release(&h);
    let res = task.await.unwrap();
    eprintln!(
        "late write: {} cookie={} keys after={:?}",
        res.status(),
        session_cookie(&res).is_some(),
        get_body(&app, "/keys", &stepped).await.1
    );
    assert_eq!(get_body(&app, "/mfa/api", &stepped).await.0, StatusCode::OK, "the step-up was lowered");
    assert!(get_body(&app, "/auth", &stepped).await.1.starts_with("alice password,totp AAL2"));
    if let Some(c) = session_cookie(&res) {
        let shown = get_body(&app, "/auth", &c).await.1;
        assert!(shown == "nobody" || shown.contains("AAL2"), "{shown}");
    }
    assert_eq!(get_body(&app, "/auth", &alice).await.1, "nobody", "the old ID stays dead");
}

// B7. The guard's `next` never points off-site, whatever the path.
#[tokio::test]
async fn the_assurance_guard_never_redirects_off_site() {
    let h = Harness::new();
    let app = Router::new()
        .route("/{*rest}", get(|| async { "page" }).post(|| async { "page" }))
        .route_layer(RequireAssurance::mfa().redirect_to("/second-factor"))
        .merge(routes())
        .layer(h.layer.clone());
    let alice = post_cookie(&app, "/sign-in/password/alice", None).await.unwrap();
    for path in [
        "/%2F%2Fevil.com",
        "/%5Cevil.com",
        "/%252F%252Fevil.com",
        "/./%2F/evil.com",
        "/a/../%2Fevil.com",
        "/%09/evil.com",
    ] {
        let Ok(r) = Request::get(path).header(header::COOKIE, &alice).body(Body::empty()) else { continue };
        let res = send(&app, r).await;
        eprintln!("guard {path}: {} {:?}", res.status(), res.headers().get(header::LOCATION));
        if res.status() != StatusCode::SEE_OTHER {
            continue;
        }
        let location = res.headers()[header::LOCATION].to_str().unwrap().to_string();
        assert!(location == "/second-factor" || location.starts_with("/second-factor?next=%2F"), "{path}: {location}");
        let next = location.strip_prefix("/second-factor?next=").unwrap_or("/");
        let decoded: String = form_urlencoded_decode(next);
        assert!(sessionware::guard::safe_next(&decoded).is_some(), "{path}: {decoded}");
    }
    let res = send(&app, req("POST", "/x", Some(&alice))).await;
    assert_eq!(res.headers()[header::LOCATION], "/second-factor", "no next for a POST");
}

fn form_urlencoded_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned()
}

// B8. Back-channel logout is scoped by user, issuer and sid: the same sid
// at another issuer, an issuer differing by a slash or case, and another
// user are all untouched. On every store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_channel_logout_is_scoped_by_user_issuer_and_sid_on_every_store() {
    for store in stores("sw_rv2_bcl").await {
        let name = store.name;
        let (app, layer) = app_over(Arc::clone(&store.store));
        let a = post_cookie(&app, "/sign-in/idp/idp.example.com/s-1/alice", None).await.unwrap();
        let other_iss = post_cookie(&app, "/sign-in/idp/evil.example.com/s-1/alice", None).await.unwrap();
        let upper = post_cookie(&app, "/sign-in/idp/IDP.example.com/s-1/alice", None).await.unwrap();
        let bob = post_cookie(&app, "/sign-in/idp/idp.example.com/s-1/bob", None).await.unwrap();
        let glob = post_cookie(&app, "/sign-in/idp/idp.example.com/s-1/al*", None).await.unwrap();
        let control = layer.control();
        assert_eq!(
            control.end_provider_sessions("alice", "https://idp.example.com/", Some("s-1")).await.unwrap(),
            0,
            "{name}"
        );
        assert_eq!(control.end_provider_sessions("alice", IDP, Some("s-")).await.unwrap(), 0, "{name}");
        assert_eq!(control.end_provider_sessions("alice", IDP, Some("s-1*")).await.unwrap(), 0, "{name}");
        assert_eq!(
            control.end_provider_sessions("al*", IDP, Some("s-1")).await.unwrap(),
            1,
            "{name}: the literal user"
        );
        assert_eq!(control.end_provider_sessions("alice", IDP, Some("s-1")).await.unwrap(), 1, "{name}");
        assert_eq!(get_body(&app, "/auth", &a).await.1, "nobody", "{name}");
        assert_eq!(get_body(&app, "/auth", &glob).await.1, "nobody", "{name}");
        for (what, c) in [("other issuer", &other_iss), ("issuer case", &upper), ("bob", &bob)] {
            assert_ne!(get_body(&app, "/auth", c).await.1, "nobody", "{name}: {what}");
        }
        store.cleanup().await;
    }
}

// B9. On a cookie layer a back-channel logout cannot find the sessions:
// it fails loudly (Unsupported), it never reports success.
#[tokio::test]
async fn back_channel_logout_on_the_cookie_layer_fails_loudly() {
    let layer = SessionLayer::cookie_sessions(
        CookieSessions::new(Keys::generate().unwrap()).with_cutoffs(MemoryStore::default()),
    );
    let err = layer.control().end_provider_sessions("alice", IDP, Some("s")).await.unwrap_err();
    assert!(matches!(err, SessionError::Unsupported(Capability::UserIndex)), "{err:?}");
}

// B10. Hostile method names, issuers and sids (quotes, JSON and codec
// delimiters, unicode, NUL, huge) round-trip on every store without
// breaking the record or raising the level.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_sign_in_strings_round_trip_on_every_store() {
    let hostile = [
        "\"},\"aal\":3,\"x\":\"".to_string(),
        "'); DROP TABLE sessions; --".to_string(),
        "caf\u{e9} \u{1F600} \u{202E}rtl \u{0}nul \\ \r\n".to_string(),
        "password".to_string(),
        "x".repeat(20_000),
    ];
    for store in stores("sw_rv2_codec").await {
        let name = store.name;
        let layer = SessionLayer::new(Arc::clone(&store.store), Keys::generate().unwrap())
            .with_clock(ManualClock::new(SystemClock.now_ms()));
        let h2 = hostile.clone();
        let app = Router::new()
            .route(
                "/hostile/{i}",
                post(move |s: Session, Path(i): Path<usize>| {
                    let v = h2[i].clone();
                    async move {
                        s.login_with(
                            SignIn::new(format!("u{i}"))
                                .method(AuthMethod::Other(v.clone()))
                                .provider_session(ProviderSession::new(v.clone(), Some(v))),
                        )
                        .await
                    }
                }),
            )
            .merge(routes())
            .layer(layer.clone());
        let sealed = Router::new()
            .route(
                "/hostile/{i}",
                post({
                    let h3 = hostile.clone();
                    move |s: Session, Path(i): Path<usize>| {
                        let v = h3[i].clone();
                        async move {
                            s.login_with(
                                SignIn::new(format!("u{i}"))
                                    .method(AuthMethod::Other(v.clone()))
                                    .provider_session(ProviderSession::new(v.clone(), Some(v))),
                            )
                            .await
                        }
                    }
                }),
            )
            .merge(routes())
            .layer(cookie_layer(
                Keys::generate().unwrap(),
                SessionConfig::default(),
                &ManualClock::new(SystemClock.now_ms()),
            ));
        for (i, v) in hostile.iter().enumerate() {
            let method = AuthMethod::parse(v);
            for (layer_name, app) in [(name, &app), ("cookie", &sealed)] {
                if layer_name == "cookie" && (v.len() > 2000 || name != "memory") {
                    continue;
                }
                let res = send(app, req("POST", &format!("/hostile/{i}"), None)).await;
                assert_eq!(res.status(), StatusCode::OK, "{layer_name} {i}");
                let c = session_cookie(&res).unwrap();
                let shown = get_body(app, "/auth", &c).await.1;
                let expected = format!("u{i} {} AAL1 {v}#{v}", method.as_str());
                assert_eq!(shown, expected, "{layer_name} {i}");
                let res = send(app, req("GET", "/mfa/api", Some(&c))).await;
                assert_eq!(refused_as(&res).as_deref(), Some("StepUpRequired"), "{layer_name} {i}: level raised");
                // The record still works for writes and a step-up.
                let c = post_cookie(app, "/set/k", Some(&c)).await.unwrap_or(c);
                let c = post_cookie(app, "/step-up", Some(&c)).await.unwrap();
                let shown = get_body(app, "/auth", &c).await.1;
                assert!(
                    shown.starts_with(&format!("u{i} {},totp AAL2 ", method.as_str())),
                    "{layer_name} {i}: {shown}"
                );
                assert!(shown.ends_with(&format!("{v}#{v}")), "{layer_name} {i}");
                assert_eq!(get_body(app, "/keys", &c).await.1, "k", "{layer_name} {i}");
                if layer_name != "cookie" {
                    let ended = layer.control().end_provider_sessions(&format!("u{i}"), v, Some(v)).await.unwrap();
                    assert_eq!(ended, 1, "{layer_name} {i}");
                    assert_eq!(get_body(app, "/auth", &c).await.1, "nobody", "{layer_name} {i}");
                }
            }
        }
        store.cleanup().await;
    }
}

// ------------------------------------------------------------------ stores

fn app_over(store: Arc<dyn FullStore>) -> (Router, SessionLayer) {
    let layer = SessionLayer::new(store, Keys::generate().unwrap()).with_clock(ManualClock::new(SystemClock.now_ms()));
    (routes().layer(layer.clone()), layer)
}

/// Every store this build and this machine have.
async fn stores(tag: &str) -> Vec<store_fixtures::TestStore> {
    store_fixtures::every_store("review cookie/MFA tests", tag).await
}
