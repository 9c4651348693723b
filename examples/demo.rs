//! A small axum app on sessionware: a counter, a key-value scratchpad, and
//! login/logout.
//!
//! ```text
//! cargo run --example demo          # then open http://127.0.0.1:3000
//! ```
//!
//! Settings (environment):
//!
//! | variable | meaning |
//! |---|---|
//! | `DEMO_ADDR` | listen address (default `127.0.0.1:3000`) |
//! | `SESSION_KEYS` | comma-separated base64 keys, the first signs (default: one random key, sessions die with the process) |
//! | `SESSION_IDLE_TIMEOUT` | idle timeout in seconds (default 1800) |
//! | `SESSION_ABSOLUTE_TIMEOUT` | absolute timeout in seconds (default 43200) |
//! | `SESSION_RENEW_AFTER` | periodic renewal: give a session in use a new ID once its ID is this many seconds old (unset: no periodic renewal) |
//! | `SESSION_RENEW_OVERLAP` | seconds the old ID keeps working after a periodic renewal, until the new one is first used (default 10, at most 60; `0`: none) |
//! | `SESSION_MAX_PER_USER` | the most live sessions one user may have; a login past it ends the user's least recently used session (unset: no limit) |
//! | `SESSION_INSECURE_DEV_COOKIES` | `1`: plain-HTTP cookie `sid` without `Secure` (development only) |
//! | `SESSION_ACCESS_TOKEN_TTL` | lifetime of the access tokens of `/api/token`, in seconds (default 300, at most 3600); `expires_in` reports it |
//! | `SESSION_STORE` | `memory` (default), `redis://…`, `postgres://…`, `sqlite://path` or `mysql://…` (`mariadb://…` too; the last four need the crate features `redis`, `postgres`, `sqlite`, `mysql`); `cookie`: the cookie routes on encrypted cookie sessions (the header API stays on a memory store, which also keeps the per-user epochs) |
//! | `RUST_LOG` | log filter (default `info`) |
//!
//! JSON API (a contract that `../shared/contract/demo_smoke.py` checks):
//!
//! - `GET /api/counter` → `{"count": N}` (creates no session)
//! - `POST /api/counter` → increments, `{"count": N}`
//! - `PUT /api/kv/{key}` (JSON body), `GET /api/kv`, `DELETE /api/kv/{key}`
//! - `POST /api/login` `{"username", "password"}` → `{"user"}` or 401
//! - `POST /api/logout` → 204
//! - `GET /api/me` → `{"user"}` or 401
//! - `GET /api/sessions` → `{"sessions": [...]}`, `DELETE /api/sessions/{handle}`,
//!   `POST /api/logout-others` → `{"revoked": N}` (the caller's sessions);
//!   404 on encrypted cookie sessions (`SESSION_STORE=cookie`), which keep
//!   no per-user list
//! - `POST /api/credentials-changed` → 204: the signed-in user's credentials
//!   changed (a new password): the caller stays signed in under a renewed
//!   ID, every other session of the user ends; 401 when not logged in
//! - `GET /api/csrf` → `{"token": "…"}`: a CSRF token for the caller's
//!   session (an anonymous one is created if there is none); it changes
//!   across login. Unsafe requests may send it in `X-CSRF-Token`: a wrong or
//!   stale token is refused (403) before the handler runs, and so is a
//!   browser's unsafe request from another origin (403). A request without
//!   `Origin`, `Sec-Fetch-Site` or a token (curl, scripts) works as before.
//! - `/api/header/…`: the whole JSON API again (`/api/header/counter`,
//!   `/api/header/login`, `/api/header/me`, `/api/header/sessions`, …) with
//!   the session carried in the `X-Session-Token` request header instead of
//!   a cookie, for API and mobile clients. A response that creates or renews
//!   a session carries the new token in `X-Session-Token` (an empty value
//!   after a logout: drop the token); no `Set-Cookie` is ever sent there.
//!   The same store and keys serve both; a cookie's token is refused as a
//!   header token and the reverse.
//! - Token sessions for API clients and services (an OAuth-style token
//!   response, no cookie):
//!   - `POST /api/token` `{"username", "password"}` →
//!     `{"access_token", "refresh_token", "token_type": "Bearer", "expires_in"}`
//!     (a server session is created for the client), or 401
//!   - `POST /api/token/refresh` `{"refresh_token"}` → a new pair; each
//!     refresh token works once: presenting a used one answers 401 and ends
//!     the whole family, so the newest refresh token fails too
//!   - `GET /api/whoami` with `Authorization: Bearer <access>` →
//!     `{"user", "sid"}` (`sid`: the token session's handle), or 401
//!   - `POST /api/token/logout` with `Authorization: Bearer <access>` → 204:
//!     the token session ends, and its access tokens are refused from then
//!     on (by this process at once, by other processes sharing the store
//!     within 5 seconds), its refresh token too
//!   - `GET /.well-known/jwks.json` → the public keys that verify the access
//!     tokens (`examples/service.rs` verifies them with it, without a store)

use std::{process::ExitCode, sync::Arc, time::Duration};

use axum::{
    extract::{rejection::JsonRejection, Path, State},
    http::{header, HeaderValue, StatusCode},
    response::{Html, IntoResponse, Response},
    routing::{delete, get, post, put},
    Json, Router,
};
use serde::Deserialize;
use serde_json::{json, Value};
use sessionware::{
    store::{Capability, FullStore, MemoryStore},
    token::{AccessClaims, TokenAlgorithm, TokenIssuer, TokenKey, TokenKeys, TokenLayer, TokenSessions},
    CookieSessions, CsrfLayer, Keys, LimitPolicy, Session, SessionConfig, SessionError, SessionHandle, SessionLayer,
    Transport,
};
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

/// The session key of the counter; the key-value routes may not touch it.
const COUNT_KEY: &str = "count";

/// Demo users. A real app keeps password hashes (argon2, scrypt) in a database.
const USERS: &[(&str, &str)] = &[("alice", "alice-pass"), ("bob", "bob-pass")];

// ---------------------------------------------------------------------------
// Settings

/// Everything the demo reads from the environment, validated.
struct Settings {
    addr: String,
    keys: Keys,
    keys_generated: bool,
    /// The browser API's sessions: a cookie.
    config: SessionConfig,
    /// The `/api/header/…` API's sessions: the `X-Session-Token` header,
    /// otherwise the same settings.
    header_config: SessionConfig,
    insecure: bool,
    /// `SESSION_ACCESS_TOKEN_TTL`: the access tokens' lifetime.
    access_token_ttl: Option<Duration>,
}

fn env_var(name: &str) -> Result<Option<String>, String> {
    match std::env::var(name) {
        Ok(v) => Ok(Some(v)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(format!("{name} is not valid UTF-8")),
    }
}

/// A timeout in whole seconds, greater than zero.
fn seconds(name: &str) -> Result<Option<Duration>, String> {
    let Some(text) = env_var(name)? else {
        return Ok(None);
    };
    match text.trim().parse::<u64>() {
        Ok(secs) if secs > 0 => Ok(Some(Duration::from_secs(secs))),
        _ => Err(format!("{name} must be a whole number of seconds greater than 0 (got {text:?})")),
    }
}

/// A whole number greater than zero.
fn positive(name: &str) -> Result<Option<usize>, String> {
    let Some(text) = env_var(name)? else {
        return Ok(None);
    };
    match text.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(Some(n)),
        _ => Err(format!("{name} must be a whole number greater than 0 (got {text:?})")),
    }
}

/// A duration in whole seconds, zero allowed.
fn seconds_or_zero(name: &str) -> Result<Option<Duration>, String> {
    let Some(text) = env_var(name)? else {
        return Ok(None);
    };
    match text.trim().parse::<u64>() {
        Ok(secs) => Ok(Some(Duration::from_secs(secs))),
        _ => Err(format!("{name} must be a whole number of seconds (got {text:?})")),
    }
}

fn flag(name: &str) -> Result<bool, String> {
    match env_var(name)?.as_deref().map(str::trim) {
        None | Some("" | "0" | "false") => Ok(false),
        Some("1" | "true") => Ok(true),
        Some(other) => Err(format!("{name} must be 1 or 0 (got {other:?})")),
    }
}

impl Settings {
    fn from_env() -> Result<Self, String> {
        let addr = env_var("DEMO_ADDR")?.unwrap_or_else(|| "127.0.0.1:3000".into());

        let (keys, keys_generated) = if env_var("SESSION_KEYS")?.is_some() {
            let keys = Keys::from_env("SESSION_KEYS").map_err(|e| {
                format!("SESSION_KEYS must be comma-separated base64 keys of at least 32 random bytes: {e}")
            })?;
            (keys, false)
        } else {
            let keys = Keys::generate().map_err(|e| format!("could not generate a session key: {e}"))?;
            (keys, true)
        };

        let insecure = flag("SESSION_INSECURE_DEV_COOKIES")?;
        // The counter is the visitor's own: it survives the login (every
        // other pre-login value is dropped, the default login policy).
        let mut builder = SessionConfig::builder().keep_on_login([COUNT_KEY]);
        if insecure {
            builder = builder.cookie_name("sid").dangerous_insecure_cookies();
        }
        if let Some(idle) = seconds("SESSION_IDLE_TIMEOUT")? {
            builder = builder.idle_timeout(idle);
        }
        if let Some(absolute) = seconds("SESSION_ABSOLUTE_TIMEOUT")? {
            builder = builder.absolute_timeout(absolute);
        }
        if let Some(after) = seconds("SESSION_RENEW_AFTER")? {
            builder = builder.renew_after(after);
        }
        if let Some(overlap) = seconds_or_zero("SESSION_RENEW_OVERLAP")? {
            builder = builder.renew_overlap(overlap);
        }
        if let Some(max) = positive("SESSION_MAX_PER_USER")? {
            builder = builder.max_sessions_per_user(max, LimitPolicy::default());
        }
        let invalid = |e: sessionware::ConfigError| {
            format!(
                "invalid session settings (SESSION_IDLE_TIMEOUT / SESSION_ABSOLUTE_TIMEOUT / SESSION_RENEW_AFTER / \
                 SESSION_RENEW_OVERLAP): {e}"
            )
        };
        let header_config = builder.clone().transport(Transport::header()).build().map_err(invalid)?;
        let config = builder.build().map_err(invalid)?;

        let access_token_ttl = seconds("SESSION_ACCESS_TOKEN_TTL")?;
        if access_token_ttl.is_some_and(|ttl| ttl > sessionware::token::MAX_TTL) {
            return Err(format!(
                "SESSION_ACCESS_TOKEN_TTL must be at most {} seconds",
                sessionware::token::MAX_TTL.as_secs()
            ));
        }

        Ok(Self { addr, keys, keys_generated, config, header_config, insecure, access_token_ttl })
    }
}

/// Where the cookie routes keep their sessions.
enum Backend {
    /// In the store (the header API always uses it).
    Store,
    /// In encrypted cookies (`SESSION_STORE=cookie`); the store keeps the
    /// per-user epochs (and the header API's sessions).
    Cookies,
}

/// The one place that picks the session store: `SESSION_STORE` unset or
/// `memory` (the embedded default), `redis://…`, `postgres://…`,
/// `sqlite://path` or `mysql://…` (or `mariadb://…`); `cookie` for
/// encrypted cookie sessions (over a memory store for the rest). The Redis
/// and SQL stores need the crate features of the same name (`mysql` for
/// both MySQL and MariaDB): `cargo run --example demo --features
/// redis,postgres,sqlite,mysql`.
async fn make_store() -> Result<(Arc<dyn FullStore>, Backend), String> {
    let choice = env_var("SESSION_STORE")?;
    let choice = choice.as_deref().map(str::trim).unwrap_or("");
    match choice {
        "" | "memory" => return Ok((Arc::new(MemoryStore::default()), Backend::Store)),
        "cookie" => return Ok((Arc::new(MemoryStore::default()), Backend::Cookies)),
        _ => {}
    }
    let scheme = choice.split_once("://").map(|(s, _)| s).unwrap_or_default();
    let store = match scheme {
        "redis" | "rediss" => redis_store(choice).await,
        "postgres" | "postgresql" => postgres_store(choice).await,
        "sqlite" => sqlite_store(choice).await,
        "mysql" | "mariadb" => mysql_store(choice).await,
        _ => Err("SESSION_STORE must be memory, cookie, redis://…, postgres://…, sqlite://path or mysql://…".into()),
    };
    Ok((store?, Backend::Store))
}

#[cfg(feature = "redis")]
async fn redis_store(url: &str) -> Result<Arc<dyn FullStore>, String> {
    let store =
        sessionware::store::RedisStore::connect(url).await.map_err(|e| format!("SESSION_STORE (redis): {e}"))?;
    Ok(Arc::new(store))
}

#[cfg(not(feature = "redis"))]
async fn redis_store(_: &str) -> Result<Arc<dyn FullStore>, String> {
    Err("SESSION_STORE=redis://… needs the `redis` feature: cargo run --example demo --features redis".into())
}

#[cfg(feature = "postgres")]
async fn postgres_store(url: &str) -> Result<Arc<dyn FullStore>, String> {
    let store =
        sessionware::store::SqlStore::postgres(url).await.map_err(|e| format!("SESSION_STORE (postgres): {e}"))?;
    store.migrate().await.map_err(|e| format!("SESSION_STORE (postgres migration): {e}"))?;
    store.spawn_cleanup(Duration::from_secs(60), sessionware::SystemClock);
    Ok(Arc::new(store))
}

#[cfg(not(feature = "postgres"))]
async fn postgres_store(_: &str) -> Result<Arc<dyn FullStore>, String> {
    Err("SESSION_STORE=postgres://… needs the `postgres` feature: cargo run --example demo --features postgres".into())
}

#[cfg(feature = "mysql")]
async fn mysql_store(url: &str) -> Result<Arc<dyn FullStore>, String> {
    let store = sessionware::store::SqlStore::mysql(url).await.map_err(|e| format!("SESSION_STORE (mysql): {e}"))?;
    store.migrate().await.map_err(|e| format!("SESSION_STORE (mysql migration): {e}"))?;
    store.spawn_cleanup(Duration::from_secs(60), sessionware::SystemClock);
    Ok(Arc::new(store))
}

#[cfg(not(feature = "mysql"))]
async fn mysql_store(_: &str) -> Result<Arc<dyn FullStore>, String> {
    Err("SESSION_STORE=mysql://… needs the `mysql` feature: cargo run --example demo --features mysql".into())
}

#[cfg(feature = "sqlite")]
async fn sqlite_store(url: &str) -> Result<Arc<dyn FullStore>, String> {
    let store = sessionware::store::SqlStore::sqlite(url).await.map_err(|e| format!("SESSION_STORE (sqlite): {e}"))?;
    store.migrate().await.map_err(|e| format!("SESSION_STORE (sqlite migration): {e}"))?;
    store.spawn_cleanup(Duration::from_secs(60), sessionware::SystemClock);
    Ok(Arc::new(store))
}

#[cfg(not(feature = "sqlite"))]
async fn sqlite_store(_: &str) -> Result<Arc<dyn FullStore>, String> {
    Err("SESSION_STORE=sqlite://… needs the `sqlite` feature: cargo run --example demo --features sqlite".into())
}

// ---------------------------------------------------------------------------
// App

/// The JSON API, served twice: under `/api` with a cookie session, under
/// `/api/header` with a header session.
fn api() -> Router {
    Router::new()
        .route("/counter", get(get_counter).post(increment))
        .route("/kv", get(list_values))
        .route("/kv/{key}", put(put_value).delete(delete_value))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/me", get(me))
        .route("/sessions", get(list_sessions))
        .route("/sessions/{handle}", delete(revoke_session))
        .route("/logout-others", post(logout_others))
        .route("/credentials-changed", post(credentials_changed))
        .route("/csrf", get(csrf_token))
        .layer(axum::middleware::map_response(no_store))
}

/// The whole demo: the browser and header APIs, and the token routes.
fn demo_app((store, backend): (Arc<dyn FullStore>, Backend), settings: &Settings) -> Result<Router, String> {
    let header_layer = SessionLayer::new(Arc::clone(&store), settings.keys.clone())
        .with_config(settings.header_config.clone())
        .on_event(log_event);
    let tokens = token_api(&header_layer, settings.access_token_ttl)?;
    Ok(app((store, backend), settings.keys.clone(), settings.config.clone(), header_layer)?.merge(tokens))
}

fn app(
    (store, backend): (Arc<dyn FullStore>, Backend),
    keys: Keys,
    config: SessionConfig,
    header_layer: SessionLayer,
) -> Result<Router, String> {
    // Browsers: a cookie session; the layer refuses cross-origin unsafe
    // requests, and `CsrfLayer` (inside it) refuses a wrong or stale token.
    let sessions = match backend {
        Backend::Store => SessionLayer::new(Arc::clone(&store), keys.clone()),
        // The session in the cookie; the store keeps each user's epoch, so
        // a logout (or a password change) ends the user's cookie sessions.
        Backend::Cookies => {
            SessionLayer::cookie_sessions(CookieSessions::new(keys.clone()).with_cutoffs(Arc::clone(&store)))
        }
    };
    let sessions = sessions.try_with_config(config).map_err(|e| format!("SESSION_STORE=cookie: {e}"))?;
    let browser = Router::new()
        .route("/", get(index))
        .route("/app.js", get(script))
        .nest("/api", api().layer(CsrfLayer::new()))
        .layer(sessions.on_event(log_event));
    // API and mobile clients: the session in `X-Session-Token` (no cookie,
    // so no CSRF check is needed), over the same store and keys.
    let header = Router::new().nest("/api/header", api()).layer(header_layer);
    Ok(browser.merge(header))
}

/// The issuer and audience of the demo's access tokens (what
/// `examples/service.rs` expects).
const TOKEN_ISSUER: &str = "sessionware-demo";
const TOKEN_AUDIENCE: &str = "sessionware-demo-api";

/// Token sessions: the token routes, over the header layer's store and
/// settings (timeouts, per-user limit). The signing key is made at start:
/// tokens die with the process, as sessions do without `SESSION_KEYS`.
fn token_api(sessions: &SessionLayer, ttl: Option<Duration>) -> Result<Router, String> {
    let key = TokenKey::generate("demo-1", TokenAlgorithm::EdDsa).map_err(|e| format!("token key: {e}"))?;
    let keys = TokenKeys::new([key]).map_err(|e| format!("token keys: {e}"))?;
    let mut issuer = TokenIssuer::new(keys.clone(), TOKEN_ISSUER, TOKEN_AUDIENCE).map_err(|e| e.to_string())?;
    if let Some(ttl) = ttl {
        issuer = issuer.ttl(ttl).map_err(|e| format!("SESSION_ACCESS_TOKEN_TTL: {e}"))?;
    }
    let jwks = serde_json::to_value(keys.jwks()).map_err(|e| e.to_string())?;
    let tokens = TokenSessions::new(sessions, issuer).map_err(|e| e.to_string())?;
    // One process, one clock: no leeway, so a token is refused the second
    // it expires (SESSION_ACCESS_TOKEN_TTL shows it over HTTP).
    let verifier = TokenLayer::new(keys, TOKEN_ISSUER, TOKEN_AUDIENCE)
        .leeway(Duration::ZERO)
        .and_then(|v| v.checked(sessions))
        .map_err(|e| e.to_string())?;
    let state = TokenState { tokens, verifier: verifier.clone() };
    let bearer =
        Router::new().route("/api/whoami", get(whoami)).route("/api/token/logout", post(token_logout)).layer(verifier);
    Ok(Router::new()
        .route("/api/token", post(token))
        .route("/api/token/refresh", post(token_refresh))
        .merge(bearer)
        .with_state(state)
        .layer(axum::middleware::map_response(no_store))
        .route("/.well-known/jwks.json", get(move || async move { Json(jwks) })))
}

#[derive(Clone)]
struct TokenState {
    tokens: TokenSessions,
    verifier: TokenLayer,
}

/// A token session's failure as the client sees it: `invalid_grant` (401)
/// for a refresh token that is not (or no longer) valid, a generic answer
/// for anything else (the details go to the log, never to the client).
fn token_error(e: sessionware::token::RefreshError) -> Response {
    if e.status().is_server_error() {
        tracing::error!(error = %e, "token session");
    }
    e.into_response()
}

async fn token(State(state): State<TokenState>, body: Result<Json<Credentials>, JsonRejection>) -> Response {
    let Json(creds) = match body {
        Ok(v) => v,
        Err(rejection) => return error(rejection.status(), &rejection.body_text()),
    };
    let Some(user) = authenticate(&creds.username, &creds.password) else {
        return error(StatusCode::UNAUTHORIZED, "invalid username or password");
    };
    match state.tokens.sign_in(user).await {
        Ok(pair) => Json(pair).into_response(),
        Err(e) => token_error(e),
    }
}

#[derive(Deserialize)]
struct RefreshRequest {
    refresh_token: String,
}

async fn token_refresh(State(state): State<TokenState>, body: Result<Json<RefreshRequest>, JsonRejection>) -> Response {
    let Json(request) = match body {
        Ok(v) => v,
        Err(rejection) => return error(rejection.status(), &rejection.body_text()),
    };
    match state.tokens.refresh(&request.refresh_token).await {
        Ok(pair) => Json(pair).into_response(),
        Err(e) => token_error(e),
    }
}

async fn whoami(claims: AccessClaims) -> Json<Value> {
    Json(json!({ "user": claims.sub, "sid": claims.sid.to_string() }))
}

async fn token_logout(State(state): State<TokenState>, claims: AccessClaims) -> Response {
    match state.tokens.logout(&claims).await {
        Ok(_) => {
            // Refused by this process at once, not only after the cache bound.
            state.verifier.forget(&claims.sid);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => token_error(e),
    }
}

/// Lifecycle events go to the log (the demo exposes nothing new over HTTP).
fn log_event(event: &sessionware::Event) {
    tracing::info!(
        target: "demo::events",
        kind = ?event.kind,
        session = event.session.as_deref().unwrap_or("-"),
        user = event.user.as_deref().unwrap_or("-"),
        method = event.method.as_ref().map_or("-", |m| m.as_str()),
        path = event.path.as_deref().unwrap_or("-"),
        "session event"
    );
}

/// API answers carry per-user data: never cache them.
async fn no_store(mut res: Response) -> Response {
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

async fn get_counter(session: Session) -> Result<Json<Value>, SessionError> {
    let count: u64 = session.get(COUNT_KEY).await?.unwrap_or(0);
    Ok(Json(json!({ "count": count })))
}

async fn increment(session: Session) -> Result<Json<Value>, SessionError> {
    // Read-modify-write: serialise with the session's other increments (in
    // this process and in others sharing the store) so none is lost. An
    // encrypted cookie session has nothing to lock: the response carries
    // the whole session (the last response's cookie wins).
    match session.lock().await {
        Ok(()) | Err(SessionError::Unsupported(Capability::Leases)) => {}
        Err(e) => return Err(e),
    }
    let count = session.get::<u64>(COUNT_KEY).await?.unwrap_or(0).saturating_add(1);
    session.insert(COUNT_KEY, count).await?;
    Ok(Json(json!({ "count": count })))
}

async fn list_values(session: Session) -> Result<Json<Value>, SessionError> {
    let mut values = session.to_json().await?;
    values.remove(COUNT_KEY);
    Ok(Json(Value::Object(values)))
}

async fn put_value(
    session: Session,
    Path(key): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, SessionError> {
    if key == COUNT_KEY {
        return Ok(error(StatusCode::BAD_REQUEST, "the key \"count\" belongs to the counter"));
    }
    let Json(value) = match body {
        Ok(v) => v,
        Err(rejection) => return Ok(error(rejection.status(), &rejection.body_text())),
    };
    session.insert(&key, value).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn delete_value(session: Session, Path(key): Path<String>) -> Result<Response, SessionError> {
    if key == COUNT_KEY {
        return Ok(error(StatusCode::BAD_REQUEST, "the key \"count\" belongs to the counter"));
    }
    if session.remove(&key).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Ok(error(StatusCode::NOT_FOUND, "no such key"))
    }
}

#[derive(Deserialize)]
struct Credentials {
    username: String,
    password: String,
}

/// The canonical user name if the password matches. Every user is checked,
/// on SHA-256 digests compared in constant time, so neither the timing nor
/// the password's length tells which part was wrong.
fn authenticate(username: &str, password: &str) -> Option<&'static str> {
    let given_user = Sha256::digest(username.as_bytes());
    let given_pass = Sha256::digest(password.as_bytes());
    let mut found = None;
    for (user, pass) in USERS {
        let matches: Choice =
            Sha256::digest(user.as_bytes()).ct_eq(&given_user) & Sha256::digest(pass.as_bytes()).ct_eq(&given_pass);
        if bool::from(matches) {
            found = Some(*user);
        }
    }
    found
}

async fn login(session: Session, body: Result<Json<Credentials>, JsonRejection>) -> Result<Response, SessionError> {
    let Json(creds) = match body {
        Ok(v) => v,
        Err(rejection) => return Ok(error(rejection.status(), &rejection.body_text())),
    };
    let Some(user) = authenticate(&creds.username, &creds.password) else {
        // The session is left alone: a failed login changes nothing.
        return Ok(error(StatusCode::UNAUTHORIZED, "invalid username or password"));
    };
    // New session ID (fixation defence), data kept.
    session.login(user).await?;
    Ok(Json(json!({ "user": user })).into_response())
}

async fn logout(session: Session) -> Result<StatusCode, SessionError> {
    session.purge().await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn me(session: Session) -> Result<Response, SessionError> {
    match session.user().await? {
        Some(user) => Ok(Json(json!({ "user": user })).into_response()),
        None => Ok(error(StatusCode::UNAUTHORIZED, "not logged in")),
    }
}

/// `{"sessions": [{handle, current, created_at, last_seen, user_agent, ip}]}`
/// for the logged-in user, or 401.
async fn list_sessions(session: Session) -> Result<Response, SessionError> {
    match session.sessions().await {
        Ok(list) => Ok(Json(json!({ "sessions": list })).into_response()),
        Err(SessionError::NotAuthenticated) => Ok(error(StatusCode::UNAUTHORIZED, "not logged in")),
        Err(SessionError::Unsupported(_)) => Ok(no_session_list()),
        Err(e) => Err(e),
    }
}

/// The answer of the session-list routes on encrypted cookie sessions,
/// which keep no per-user list (`SESSION_STORE=cookie`).
fn no_session_list() -> Response {
    error(StatusCode::NOT_FOUND, "encrypted cookie sessions keep no session list")
}

/// Ends one of the caller's own sessions; another user's handle is 404.
async fn revoke_session(session: Session, Path(handle): Path<String>) -> Result<Response, SessionError> {
    let Some(handle) = SessionHandle::parse(&handle) else {
        return Ok(error(StatusCode::NOT_FOUND, "no such session"));
    };
    match session.revoke(&handle).await {
        Ok(true) => Ok(StatusCode::NO_CONTENT.into_response()),
        Ok(false) => Ok(error(StatusCode::NOT_FOUND, "no such session")),
        Err(SessionError::NotAuthenticated) => Ok(error(StatusCode::UNAUTHORIZED, "not logged in")),
        Err(SessionError::Unsupported(_)) => Ok(no_session_list()),
        Err(e) => Err(e),
    }
}

/// Ends every other session of the caller: `{"revoked": N}`.
async fn logout_others(session: Session) -> Result<Response, SessionError> {
    match session.revoke_others().await {
        Ok(n) => Ok(Json(json!({ "revoked": n })).into_response()),
        Err(SessionError::NotAuthenticated) => Ok(error(StatusCode::UNAUTHORIZED, "not logged in")),
        Err(SessionError::Unsupported(_)) => Ok(no_session_list()),
        Err(e) => Err(e),
    }
}

/// The user's password changed (in a real app, this handler would check
/// the old password and store the new hash first): every other session of
/// the user ends at once, and the caller stays signed in under a new ID.
async fn credentials_changed(session: Session) -> Result<Response, SessionError> {
    match session.credentials_changed().await {
        Ok(()) => Ok(StatusCode::NO_CONTENT.into_response()),
        Err(SessionError::NotAuthenticated) => Ok(error(StatusCode::UNAUTHORIZED, "not logged in")),
        Err(e) => Err(e),
    }
}

/// `{"token": "…"}`: a CSRF token for the caller's session (a fresh mask
/// each time; the secret behind it changes at login).
async fn csrf_token(session: Session) -> Result<Json<Value>, SessionError> {
    let token = session.csrf_token().await?;
    Ok(Json(json!({ "token": token.as_str() })))
}

// ---------------------------------------------------------------------------
// Page

async fn index() -> Response {
    (
        [
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        Html(PAGE),
    )
        .into_response()
}

async fn script() -> Response {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::X_CONTENT_TYPE_OPTIONS, "nosniff")], SCRIPT)
        .into_response()
}

const CSP: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>sessionware demo</title>
<style>
  body { font: 16px/1.5 system-ui, sans-serif; max-width: 34rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
  h1 { font-size: 1.5rem; margin-bottom: .25rem; }
  section { border: 1px solid #ccc; border-radius: 8px; padding: .75rem 1rem; margin: 1rem 0; }
  h2 { font-size: 1.05rem; margin: 0 0 .5rem; }
  #count { font-size: 2rem; font-weight: bold; margin-right: 1rem; }
  label { display: grid; grid-template-columns: 6rem 12rem; align-items: center; margin: .35rem 0; }
  input { font: inherit; padding: .2rem .4rem; }
  button { font: inherit; padding: .3rem .9rem; cursor: pointer; }
  .muted { color: #666; font-size: .9rem; }
  #login-error { color: #b00020; min-height: 1.5em; margin: .25rem 0 0; }
  pre { background: #f5f5f5; padding: .5rem; border-radius: 4px; margin: 0; overflow-x: auto; }
</style>
</head>
<body>
<h1>sessionware demo</h1>
<p class="muted">A counter and a login, kept in a server-side session behind a signed cookie.</p>

<section>
  <h2>Who is logged in</h2>
  <p id="who" data-user="">Loading&hellip;</p>
  <button id="logout" type="button" hidden>Log out</button>
</section>

<section>
  <h2>Counter</h2>
  <span id="count">&hellip;</span>
  <button id="increment" type="button">Count +1</button>
</section>

<section id="login-section">
  <h2>Log in</h2>
  <form id="login-form" autocomplete="on">
    <label>Username <input id="username" name="username" autocomplete="username" required></label>
    <label>Password <input id="password" name="password" type="password" autocomplete="current-password" required></label>
    <button id="login" type="submit">Log in</button>
    <p id="login-error" role="alert"></p>
  </form>
  <p class="muted">Try alice / alice-pass or bob / bob-pass.</p>
</section>

<section>
  <h2>Session data <span class="muted">(set with <code>PUT /api/kv/{key}</code>)</span></h2>
  <pre id="kv">{}</pre>
</section>

<script src="/app.js"></script>
</body>
</html>
"#;

const SCRIPT: &str = r#""use strict";
const $ = (id) => document.getElementById(id);

// The session's CSRF token, fetched before the first state-changing
// request (so merely reading the page creates no session) and dropped when
// the session changes hands (login, logout): its secret changes there.
let csrf = null;

async function csrfToken() {
  if (csrf === null) {
    const res = await fetch("/api/csrf");
    csrf = res.status === 200 ? (await res.json()).token : "";
  }
  return csrf;
}

async function send(method, path, body) {
  const init = { method, headers: {} };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  if (method !== "GET" && method !== "HEAD") {
    init.headers["X-CSRF-Token"] = await csrfToken();
  }
  return fetch(path, init);
}

async function api(method, path, body) {
  let res = await send(method, path, body);
  if (res.status === 403 && method !== "GET") {
    // A stale token (the session ended or was renewed elsewhere): fetch a
    // new one and try once more.
    csrf = null;
    res = await send(method, path, body);
  }
  let data = null;
  if (res.status !== 204) {
    try { data = await res.json(); } catch (_) { data = null; }
  }
  return { status: res.status, data };
}

function showUser(user) {
  const who = $("who");
  who.dataset.user = user || "";
  who.textContent = user ? "Logged in as " + user : "Not logged in";
  $("logout").hidden = !user;
  $("login-section").hidden = !!user;
}

async function refresh() {
  const [counter, me, kv] = await Promise.all([
    api("GET", "/api/counter"),
    api("GET", "/api/me"),
    api("GET", "/api/kv"),
  ]);
  $("count").textContent = counter.status === 200 ? counter.data.count : "error " + counter.status;
  showUser(me.status === 200 ? me.data.user : null);
  $("kv").textContent = kv.status === 200 ? JSON.stringify(kv.data, null, 2) : "error " + kv.status;
}

$("increment").addEventListener("click", async () => {
  const res = await api("POST", "/api/counter");
  if (res.status === 200) $("count").textContent = res.data.count;
  else $("count").textContent = "error " + res.status;
});

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("login-error").textContent = "";
  const res = await api("POST", "/api/login", {
    username: $("username").value,
    password: $("password").value,
  });
  $("password").value = "";
  if (res.status === 200) {
    csrf = null; // the login replaced the token's secret
    await refresh();
  } else if (res.status === 401) {
    $("login-error").textContent = "Wrong username or password.";
  } else {
    $("login-error").textContent = "Login failed (" + res.status + ").";
  }
});

$("logout").addEventListener("click", async () => {
  await api("POST", "/api/logout");
  csrf = null; // the session is gone
  await refresh();
});

refresh();
"#;

// ---------------------------------------------------------------------------
// Main

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        // Colour only on a terminal: piped or collected logs stay plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();

    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let store = match make_store().await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };

    if settings.keys_generated {
        eprintln!(
            "warning: SESSION_KEYS is not set; using a random key, so every restart logs everyone out.\n\
             \x20        Set SESSION_KEYS to one or more base64 keys (e.g. `openssl rand -base64 64`)."
        );
    }
    if settings.insecure {
        eprintln!(
            "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
             !! SESSION_INSECURE_DEV_COOKIES=1: the session cookie `sid` has NO Secure   !!\n\
             !! attribute and is sent over plain HTTP. For local development ONLY.      !!\n\
             !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
        );
    }

    let listener = match tokio::net::TcpListener::bind(&settings.addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on DEMO_ADDR={:?}: {e}", settings.addr);
            return ExitCode::from(2);
        }
    };
    let local = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: cannot read the listening address: {e}");
            return ExitCode::FAILURE;
        }
    };
    if !settings.insecure && !local.ip().is_loopback() {
        eprintln!(
            "warning: serving plain HTTP on a non-loopback address; browsers only keep the Secure \
             cookie `{}` over HTTPS (or on 127.0.0.1/localhost). Put TLS in front.",
            settings.config.cookie_name()
        );
    }

    tracing::info!(
        cookie = settings.config.cookie_name(),
        idle_secs = settings.config.idle_timeout().as_secs(),
        absolute_secs = settings.config.absolute_timeout().as_secs(),
        keys = settings.keys.len(),
        "session settings"
    );
    println!("sessionware demo listening on http://{local}/");

    let app = match demo_app(store, &settings) {
        Ok(app) => app,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    // The socket peer's address feeds the coarse IP of the session list.
    let service = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    if let Err(e) = axum::serve(listener, service).with_graceful_shutdown(shutdown_signal()).await {
        eprintln!("error: server failed: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
