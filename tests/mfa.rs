//! MFA and SSO context (issue 12 point 3): the sign-in's methods, level
//! and identity provider's session survive a round trip through the layer
//! on every store (memory, and the real Redis, PostgreSQL, SQLite and
//! MySQL/MariaDB); a step-up renews the ID, keeps the data and raises the
//! level; `RequireAssurance` refuses a password-only session and admits it
//! after a step-up; a back-channel logout ends only the linked sessions.
//!
//! Servers as in `tests/store_sessions.rs` (`REDIS_URL`, `DATABASE_URL`,
//! `MYSQL_URL`): without one, its store prints `SKIPPED: ...` and is left
//! out, unless `SESSIONWARE_REQUIRE_STORES=1`.

mod common;
#[path = "common/store_fixtures.rs"]
mod store_fixtures;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    extract::Path,
    routing::{get, post},
    Router,
};
use common::*;
use http::{header, StatusCode};
use sessionware::{
    guard::RequireAssurance,
    store::{FullStore, MemoryStore},
    Assurance, AuthMethod, Clock, EventKind, Keys, ManualClock, ProviderSession, Session, SessionError, SessionLayer,
    SharedError, SignIn, SystemClock,
};

const IDP: &str = "https://idp.example.com";

// ------------------------------------------------------------------ stores

/// Every store this build and this machine have.
async fn stores(tag: &str) -> Vec<store_fixtures::TestStore> {
    store_fixtures::every_store("MFA tests", tag).await
}

// ------------------------------------------------------------------ the app

/// The application: its sign-in routes, a step-up, a page that shows the
/// sign-in, guarded pages, and the devices list.
struct App {
    router: Router,
    layer: SessionLayer,
    clock: ManualClock,
    events: Events,
}

/// The events the layer emitted: their kind and user.
type Events = Arc<Mutex<Vec<(EventKind, Option<String>)>>>;

/// The sign-in as `GET /auth` shows it.
async fn show_auth(session: Session) -> Result<String, SessionError> {
    Ok(match session.authentication().await? {
        None => "nobody".into(),
        Some(auth) => {
            let methods: Vec<&str> = auth.methods().iter().map(AuthMethod::as_str).collect();
            let provider = auth.provider().map(|p| format!("{}#{}", p.issuer, p.sid.as_deref().unwrap_or_default()));
            format!(
                "{} {} {} at {} {}",
                auth.user,
                methods.join(","),
                auth.assurance(),
                auth.at_ms,
                provider.unwrap_or_else(|| "-".into())
            )
        }
    })
}

fn app_over(store: Arc<dyn FullStore>) -> App {
    // Real time: the real stores keep TTLs relative to it.
    let clock = ManualClock::new(SystemClock.now_ms());
    let events: Events = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&events);
    let layer = SessionLayer::new(store, Keys::generate().unwrap()).with_clock(clock.clone()).on_event(move |e| {
        seen.lock().unwrap().push((e.kind, e.user.clone()));
    });
    let sign_in = |user: String, how: &str| -> SignIn {
        match how {
            "password" => SignIn::new(user).method(AuthMethod::Password),
            "strong" => SignIn::new(user)
                .method(AuthMethod::Password)
                .method(AuthMethod::WebAuthn)
                .method(AuthMethod::Other("smart card \u{e9}".into()))
                .assurance(Assurance::Aal3),
            sid => {
                SignIn::new(user).method(AuthMethod::Federated).provider_session(ProviderSession::new(IDP, Some(sid)))
            }
        }
    };
    let router = Router::new()
        .route("/mfa/api", get(|| async { "mfa api" }))
        .route_layer(RequireAssurance::mfa())
        .merge(
            Router::new()
                .route("/mfa/page", get(|| async { "mfa page" }))
                .route_layer(RequireAssurance::mfa().redirect_to("/second-factor")),
        )
        .merge(
            Router::new()
                .route("/mfa/recent", get(|| async { "recent mfa" }))
                .route_layer(RequireAssurance::at_least(Assurance::Aal2).within(Duration::from_secs(300))),
        )
        .route(
            "/sign-in/{how}/{user}",
            post(move |session: Session, Path((how, user)): Path<(String, String)>| async move {
                session.login_with(sign_in(user, &how)).await
            }),
        )
        .route("/step-up", post(|session: Session| async move { session.step_up(AuthMethod::Totp).await }))
        .route("/password", post(|session: Session| async move { session.credentials_changed().await }))
        .route("/auth", get(show_auth))
        .route(
            "/devices",
            get(|session: Session| async move {
                let list = session.sessions().await?;
                Ok::<_, SessionError>(serde_json::to_string(&list).unwrap())
            }),
        )
        .merge(handlers::routes())
        .layer(layer.clone());
    App { router, layer, clock, events }
}

async fn sign_in(app: &App, how: &str, user: &str) -> String {
    let res = send(&app.router, req("POST", &format!("/sign-in/{how}/{user}"), None)).await;
    assert_eq!(res.status(), StatusCode::OK, "sign-in {how} {user}");
    session_cookie(&res).expect("a sign-in sets a cookie")
}

async fn get_body(app: &App, path: &str, cookie: &str) -> (StatusCode, String) {
    let res = send(&app.router, req("GET", path, Some(cookie))).await;
    let status = res.status();
    (status, body(res).await)
}

fn refused_as(res: &http::Response<axum::body::Body>) -> Option<String> {
    res.extensions().get::<SharedError>().map(|e| format!("{:?}", e.error()))
}

// ------------------------------------------------------------------ tests

// The methods, the level and the provider's session are stored with the
// sign-in and read back through the layer (and in the devices list) on
// every store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sign_in_context_round_trips_on_every_store() {
    for store in stores("sw_mfa_trip").await {
        let name = store.name;
        let app = app_over(Arc::clone(&store.store));
        let t = app.clock.now_ms();

        let strong = sign_in(&app, "strong", "alice").await;
        let (status, shown) = get_body(&app, "/auth", &strong).await;
        assert_eq!(status, StatusCode::OK, "{name}");
        assert_eq!(shown, format!("alice password,webauthn,smart card \u{e9} AAL3 at {t} -"), "{name}");

        let federated = sign_in(&app, "s-1", "alice").await;
        let (_, shown) = get_body(&app, "/auth", &federated).await;
        assert_eq!(shown, format!("alice federated AAL1 at {t} {IDP}#s-1"), "{name}");

        // Read again after the clock moves (a fresh load, no cache), and
        // through the devices list.
        app.clock.advance(Duration::from_secs(1));
        let (_, shown) = get_body(&app, "/auth", &strong).await;
        assert!(shown.contains("AAL3"), "{name}: {shown}");
        let (status, devices) = get_body(&app, "/devices", &strong).await;
        assert_eq!(status, StatusCode::OK, "{name}");
        let devices: serde_json::Value = serde_json::from_str(&devices).unwrap();
        let mut rows: Vec<(String, u64, String)> = devices
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                let methods: Vec<&str> = d["methods"].as_array().unwrap().iter().map(|m| m.as_str().unwrap()).collect();
                (methods.join(","), d["assurance"].as_u64().unwrap(), d["provider"].as_str().unwrap_or("-").to_string())
            })
            .collect();
        rows.sort();
        assert_eq!(
            rows,
            [
                ("federated".to_string(), 1, IDP.to_string()),
                ("password,webauthn,smart card \u{e9}".to_string(), 3, "-".to_string()),
            ],
            "{name}: the devices list shows how each session signed in"
        );

        // A plain `login` records no method, at AAL1.
        let plain = login(&app.router, "bob").await;
        let (_, shown) = get_body(&app, "/auth", &plain).await;
        assert!(shown.starts_with("bob  AAL1 at "), "{name}: {shown}");
        store.cleanup().await;
    }
}

// R10: a step-up renews the ID (the old cookie is dead at once), keeps the
// data, adds the method, raises the level and moves the authentication time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_up_renews_the_id_keeps_the_data_and_raises_the_level() {
    for store in stores("sw_mfa_step").await {
        let name = store.name;
        let app = app_over(Arc::clone(&store.store));
        let password = sign_in(&app, "password", "alice").await;
        let res = send(&app.router, req("POST", "/set/cart", Some(&password))).await;
        assert_eq!(res.status(), StatusCode::OK, "{name}");
        let (_, before) = get_body(&app, "/auth", &password).await;
        assert!(before.contains("password AAL1"), "{name}: {before}");

        app.clock.advance(Duration::from_secs(60));
        let res = send(&app.router, req("POST", "/step-up", Some(&password))).await;
        assert_eq!(res.status(), StatusCode::OK, "{name}");
        let stepped = session_cookie(&res).expect("a step-up issues a new ID");
        assert_ne!(token_of(&stepped), token_of(&password), "{name}: a new ID");

        let (_, after) = get_body(&app, "/auth", &stepped).await;
        assert_eq!(after, format!("alice password,totp AAL2 at {} -", app.clock.now_ms()), "{name}");
        let (_, keys) = get_body(&app, "/keys", &stepped).await;
        assert_eq!(keys, "cart", "{name}: the data is kept");
        let (_, old) = get_body(&app, "/auth", &password).await;
        assert_eq!(old, "nobody", "{name}: the old ID is dead");

        // The provider's link survives a step-up.
        let federated = sign_in(&app, "s-9", "carol").await;
        let res = send(&app.router, req("POST", "/step-up", Some(&federated))).await;
        let federated = session_cookie(&res).expect("new ID");
        let (_, shown) = get_body(&app, "/auth", &federated).await;
        assert!(shown.starts_with("carol federated,totp AAL2 at ") && shown.ends_with("#s-9"), "{name}: {shown}");

        // Nobody signed in: no step-up.
        let res = send(&app.router, req("POST", "/step-up", None)).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{name}");
        store.cleanup().await;
    }
}

// `RequireAssurance` refuses a password-only session (401 for APIs, a
// redirect with a safe `next` for pages) and admits it after a step-up;
// with `within`, a stale step-up is refused as a stale sign-in.
#[tokio::test]
async fn the_mfa_guard_refuses_a_password_only_session_and_admits_it_after_a_step_up() {
    let app = app_over(Arc::new(MemoryStore::default()));

    let res = send(&app.router, req("GET", "/mfa/api", None)).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(refused_as(&res).as_deref(), Some("NotAuthenticated"), "anonymous: a sign-in, not a step-up");

    let password = sign_in(&app, "password", "alice").await;
    let res = send(&app.router, req("GET", "/mfa/api", Some(&password))).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(refused_as(&res).as_deref(), Some("StepUpRequired"));
    assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
    assert_eq!(body(res).await, "Stronger sign-in required");
    let res = send(&app.router, req("GET", "/mfa/page?tab=2", Some(&password))).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[header::LOCATION], "/second-factor?next=%2Fmfa%2Fpage%3Ftab%3D2");
    assert_eq!(refused_as(&res).as_deref(), Some("StepUpRequired"));

    let res = send(&app.router, req("POST", "/step-up", Some(&password))).await;
    let stepped = session_cookie(&res).expect("new ID");
    assert_eq!(get_body(&app, "/mfa/api", &stepped).await, (StatusCode::OK, "mfa api".into()));
    assert_eq!(get_body(&app, "/mfa/page", &stepped).await, (StatusCode::OK, "mfa page".into()));
    assert_eq!(get_body(&app, "/mfa/recent", &stepped).await, (StatusCode::OK, "recent mfa".into()));
    // The old cookie is nobody now.
    let res = send(&app.router, req("GET", "/mfa/api", Some(&password))).await;
    assert_eq!(refused_as(&res).as_deref(), Some("NotAuthenticated"));

    // A level reached long ago: enough for `mfa()`, not for `within`.
    app.clock.advance(Duration::from_secs(301));
    assert_eq!(get_body(&app, "/mfa/api", &stepped).await.0, StatusCode::OK);
    let res = send(&app.router, req("GET", "/mfa/recent", Some(&stepped))).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(refused_as(&res).as_deref(), Some("ReauthRequired"));
    // Another step-up is a fresh authentication.
    let res = send(&app.router, req("POST", "/step-up", Some(&stepped))).await;
    let again = session_cookie(&res).expect("new ID");
    assert_eq!(get_body(&app, "/mfa/recent", &again).await.0, StatusCode::OK);

    // A sign-in at AAL2 from the start needs no step-up.
    let strong = sign_in(&app, "strong", "bob").await;
    assert_eq!(get_body(&app, "/mfa/api", &strong).await.0, StatusCode::OK);

    // A password change keeps how the caller signed in; a new sign-in by
    // password alone does not.
    let res = send(&app.router, req("POST", "/password", Some(&again))).await;
    assert_eq!(res.status(), StatusCode::OK);
    let changed = session_cookie(&res).expect("re-signed in under a new ID");
    assert_eq!(get_body(&app, "/mfa/api", &changed).await.0, StatusCode::OK, "still AAL2");
    let res = send(&app.router, req("POST", "/sign-in/password/alice", Some(&changed))).await;
    let plain = session_cookie(&res).expect("new ID");
    let res = send(&app.router, req("GET", "/mfa/api", Some(&plain))).await;
    assert_eq!(refused_as(&res).as_deref(), Some("StepUpRequired"), "a new sign-in replaces the record");
}

// A back-channel logout ends the sessions linked to the provider's session
// (one stepped up since included), and only those: the same user's session
// from another provider session and a password session stay, and so does
// another user's session with the same `sid`. On every store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_back_channel_logout_ends_only_the_linked_sessions() {
    for store in stores("sw_mfa_bcl").await {
        let name = store.name;
        let app = app_over(Arc::clone(&store.store));
        let laptop = sign_in(&app, "s-1", "alice").await;
        let phone = sign_in(&app, "s-1", "alice").await;
        let res = send(&app.router, req("POST", "/step-up", Some(&phone))).await;
        let phone = session_cookie(&res).expect("new ID");
        let tablet = sign_in(&app, "s-2", "alice").await;
        let password = sign_in(&app, "password", "alice").await;
        let bob = sign_in(&app, "s-1", "bob").await;
        app.events.lock().unwrap().clear();

        let control = app.layer.control();
        let ended = control.end_provider_sessions("alice", IDP, Some("s-1")).await.unwrap();
        assert_eq!(ended, 2, "{name}: the laptop and the phone");
        for (device, cookie) in [("laptop", &laptop), ("phone", &phone)] {
            assert_eq!(get_body(&app, "/auth", cookie).await.1, "nobody", "{name}: the {device} is signed out");
        }
        for (device, cookie) in [("tablet", &tablet), ("password", &password), ("bob", &bob)] {
            assert_ne!(get_body(&app, "/auth", cookie).await.1, "nobody", "{name}: the {device} session stays");
        }
        let events = app.events.lock().unwrap().clone();
        assert!(
            events.contains(&(EventKind::Revoked { count: 2 }, Some("alice".into()))),
            "{name}: a revocation event: {events:?}"
        );

        assert_eq!(control.end_provider_sessions("alice", IDP, Some("s-1")).await.unwrap(), 0, "{name}");
        assert_eq!(control.end_provider_sessions("alice", "https://other", None).await.unwrap(), 0, "{name}");
        // A logout token without `sid`: every session of the user at the provider.
        assert_eq!(control.end_provider_sessions("alice", IDP, None).await.unwrap(), 1, "{name}: the tablet");
        assert_eq!(get_body(&app, "/auth", &tablet).await.1, "nobody", "{name}");
        assert_ne!(get_body(&app, "/auth", &password).await.1, "nobody", "{name}");
        store.cleanup().await;
    }
}

// Without a per-user index there is nothing to end by: the call says so.
#[tokio::test]
async fn a_back_channel_logout_needs_the_per_user_index() {
    use sessionware::store::{Capabilities, Capability};
    let store = Capabilities::new(MemoryStore::default()).with_leases().with_cutoffs();
    let layer = SessionLayer::with_capabilities(store, Keys::generate().unwrap());
    let err = layer.control().end_provider_sessions("alice", IDP, Some("s")).await.unwrap_err();
    assert!(matches!(err, SessionError::Unsupported(Capability::UserIndex)), "{err:?}");
}
