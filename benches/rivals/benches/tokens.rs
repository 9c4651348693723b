//! Access tokens (sessionware's feature `jwt`) against the in-process
//! layer's read request, measured in the same run.
//!
//! Every request goes through a prepared axum `Router` (`ready().await?.call(req)`)
//! in one tokio current-thread runtime, as in `benches/layer.rs`. Scenarios
//! (criterion group `tokens`):
//!
//! - `read`: sessionware's `/read` with a session cookie (the reference: the
//!   `read` scenario of `benches/layer.rs`);
//! - `mint`: a logged-in session's request whose handler mints an EdDSA
//!   access token (`TokenIssuer::mint`: session load, claims, signature);
//! - `verify_stateless`: `Authorization: Bearer <EdDSA token>` under a
//!   stateless `TokenLayer`, handler extracts `AccessClaims`;
//! - `verify_checked_hit`: the same under a checked `TokenLayer` whose cache
//!   knows the session (one token, sent again and again);
//! - `verify_checked_miss`: a checked `TokenLayer` that must read the store
//!   for every request: the tokens of 20,000 sessions (of 20,000 users) are
//!   sent in turn, twice the cache's capacity, so no session is still cached
//!   when its token comes back;
//! - `refresh`: a handler that refreshes a token session
//!   (`TokenSessions::refresh`: one lookup, one atomic rotation, a new
//!   EdDSA access token and refresh token), each request with the refresh
//!   token the previous one got. The layer's timeouts are 10 s here, so
//!   that the retired keys refreshes leave (kept until the family's
//!   absolute deadline) stay few; a family that ended is replaced by a
//!   sign-in, once per 10 s.
//!
//! Run: `cargo bench -p sessionware-rivals --bench tokens`
//! (`-- --warm-up-time 1 --measurement-time 3` are the defaults). After
//! criterion, an interleaved cross-check (`TOKEN_ROUNDS`, default 15 rounds
//! of 20,000 requests per scenario) prints the medians and each scenario's
//! ratio to `read`.

use std::time::{Duration, Instant};

use axum::{body::Body, routing::get, Router};
use criterion::{BenchmarkId, Criterion};
use http::{header, HeaderValue, Request, StatusCode};
use sessionware::{
    store::MemoryStore,
    token::{AccessClaims, RefreshError, TokenAlgorithm, TokenIssuer, TokenKey, TokenKeys, TokenLayer, TokenSessions},
    Keys, Session, SessionConfig, SessionLayer,
};
use sessionware_rivals::{cookie_from, make_session, ours, request, send};
use tower::{Service, ServiceExt};

/// Requests per scenario in one interleaved round.
const PER_ROUND: u64 = 20_000;
/// Sessions whose tokens the miss scenario cycles through.
const MISS_SESSIONS: usize = 20_000;

#[derive(Clone, Copy, Debug)]
enum Scenario {
    Read,
    Mint,
    VerifyStateless,
    VerifyCheckedHit,
    VerifyCheckedMiss,
    Refresh,
}

const SCENARIOS: [Scenario; 6] = [
    Scenario::Read,
    Scenario::Mint,
    Scenario::VerifyStateless,
    Scenario::VerifyCheckedHit,
    Scenario::VerifyCheckedMiss,
    Scenario::Refresh,
];

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Read => "read",
            Scenario::Mint => "mint",
            Scenario::VerifyStateless => "verify_stateless",
            Scenario::VerifyCheckedHit => "verify_checked_hit",
            Scenario::VerifyCheckedMiss => "verify_checked_miss",
            Scenario::Refresh => "refresh",
        }
    }
}

const ISS: &str = "https://auth.bench";
const AUD: &str = "api";

/// A prepared scenario: the router and the requests' credentials (sent in
/// turn), and the path.
struct Setup {
    router: Router,
    path: &'static str,
    credentials: Vec<(header::HeaderName, HeaderValue)>,
}

/// The session routes (log in as the path's user, mint) under `sessions`.
fn session_router(sessions: &SessionLayer, issuer: &TokenIssuer) -> Router {
    let issuer = issuer.clone();
    Router::new()
        .route(
            "/login/{user}",
            get(|s: Session, axum::extract::Path(u): axum::extract::Path<String>| async move {
                s.login(u).await.map(|_| "ok")
            }),
        )
        .route(
            "/mint",
            get(move |s: Session| async move { issuer.mint(&s).await.map_err(|_| StatusCode::INTERNAL_SERVER_ERROR) }),
        )
        .layer(sessions.clone())
        .with_state(())
}

/// The token route under `tokens`.
fn token_router(tokens: TokenLayer) -> Router {
    Router::new().route("/whoami", get(|c: AccessClaims| async move { c.sub })).layer(tokens).with_state(())
}

/// Logs `user` in and mints a token: the cookie and the token.
async fn login_and_mint(router: &Router, user: &str) -> (HeaderValue, HeaderValue) {
    let login = Request::get(format!("/login/{user}")).body(Body::empty()).expect("request");
    let res = router.clone().oneshot(login).await.expect("infallible");
    assert_eq!(res.status(), StatusCode::OK);
    let cookie = cookie_from(&res).expect("login sets a cookie");
    let (status, _, token) = send(router, "/mint", Some(&cookie)).await;
    assert_eq!(status, StatusCode::OK);
    (cookie, HeaderValue::from_str(&format!("Bearer {token}")).expect("token68"))
}

async fn setup(scenario: Scenario) -> Setup {
    let keys = TokenKeys::new([TokenKey::generate("k1", TokenAlgorithm::EdDsa).expect("key")]).expect("ring");
    let issuer = TokenIssuer::new(keys.clone(), ISS, AUD).expect("issuer");
    let sessions = SessionLayer::new(MemoryStore::default(), Keys::generate().expect("OS RNG"));
    let setup_router = session_router(&sessions, &issuer);
    let auth = header::AUTHORIZATION;
    match scenario {
        Scenario::Read => {
            let router = ours::router();
            let cookie = make_session(&router).await;
            Setup { router, path: "/read", credentials: vec![(header::COOKIE, cookie)] }
        }
        Scenario::Mint => {
            let (cookie, _) = login_and_mint(&setup_router, "alice").await;
            Setup { router: setup_router, path: "/mint", credentials: vec![(header::COOKIE, cookie)] }
        }
        Scenario::VerifyStateless => {
            let (_, token) = login_and_mint(&setup_router, "alice").await;
            Setup {
                router: token_router(TokenLayer::new(keys, ISS, AUD)),
                path: "/whoami",
                credentials: vec![(auth, token)],
            }
        }
        Scenario::VerifyCheckedHit => {
            let (_, token) = login_and_mint(&setup_router, "alice").await;
            let layer =
                TokenLayer::new(keys, ISS, AUD).checked(&sessions).expect("index").cache_ttl(Duration::from_secs(60));
            Setup { router: token_router(layer.expect("ttl")), path: "/whoami", credentials: vec![(auth, token)] }
        }
        Scenario::VerifyCheckedMiss => {
            let mut credentials = Vec::with_capacity(MISS_SESSIONS);
            for i in 0..MISS_SESSIONS {
                credentials.push((auth.clone(), login_and_mint(&setup_router, &format!("user{i}")).await.1));
            }
            let layer = TokenLayer::new(keys, ISS, AUD).checked(&sessions).expect("index");
            Setup { router: token_router(layer), path: "/whoami", credentials }
        }
        Scenario::Refresh => {
            let short = SessionConfig::builder()
                .idle_timeout(Duration::from_secs(10))
                .absolute_timeout(Duration::from_secs(10))
                .build()
                .expect("config");
            let sessions =
                SessionLayer::new(MemoryStore::default(), Keys::generate().expect("OS RNG")).with_config(short);
            let tokens = TokenSessions::new(&sessions, issuer).expect("index");
            let first = tokens.sign_in("alice").await.expect("sign in").refresh_token;
            let current = std::sync::Arc::new(std::sync::Mutex::new(first));
            let router = Router::new()
                .route(
                    "/refresh",
                    get(move || {
                        let (tokens, current) = (tokens.clone(), current.clone());
                        async move {
                            let token = current.lock().expect("lock").clone();
                            let pair = match tokens.refresh(&token).await {
                                Ok(pair) => pair,
                                // The family reached its 10 s: a new one.
                                Err(RefreshError::Invalid) => tokens.sign_in("alice").await.expect("sign in"),
                                Err(e) => panic!("refresh: {e}"),
                            };
                            *current.lock().expect("lock") = pair.refresh_token;
                            pair.access_token
                        }
                    }),
                )
                .with_state(());
            Setup { router, path: "/refresh", credentials: vec![(header::ACCEPT, HeaderValue::from_static("*/*"))] }
        }
    }
}

/// Sends `iters` requests of a prepared scenario; the time they took.
async fn run(setup: &Setup, iters: u64) -> Duration {
    let mut svc = setup.router.clone();
    let n = setup.credentials.len();
    let start = Instant::now();
    for i in 0..iters {
        let mut req: Request<Body> = request(setup.path, None);
        let (name, value) = &setup.credentials[i as usize % n];
        req.headers_mut().insert(name, value.clone());
        let res = ServiceExt::<Request<Body>>::ready(&mut svc)
            .await
            .expect("infallible")
            .call(req)
            .await
            .expect("infallible");
        assert!(res.status().is_success(), "{}: {}", setup.path, res.status());
        std::hint::black_box(res);
    }
    start.elapsed()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let setups: Vec<Setup> = rt.block_on(async {
        let mut out = Vec::new();
        for s in SCENARIOS {
            out.push(setup(s).await);
        }
        out
    });
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
        .configure_from_args();
    {
        let mut group = c.benchmark_group("tokens");
        for (s, setup) in SCENARIOS.iter().zip(&setups) {
            group.bench_function(BenchmarkId::from_parameter(s.name()), |b| {
                b.to_async(&rt).iter_custom(|iters| run(setup, iters));
            });
        }
        group.finish();
    }
    c.final_summary();
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let rounds: usize = std::env::var("TOKEN_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(15);
    if rounds == 0 {
        return;
    }
    let mut cols: Vec<Vec<f64>> = SCENARIOS.iter().map(|_| Vec::new()).collect();
    rt.block_on(async {
        for _ in 0..rounds {
            for (i, setup) in setups.iter().enumerate() {
                cols[i].push(run(setup, PER_ROUND).await.as_nanos() as f64 / PER_ROUND as f64);
            }
        }
    });
    let medians: Vec<f64> = cols.iter_mut().map(|v| median(v)).collect();
    println!("\n## Interleaved cross-check ({rounds} rounds x {PER_ROUND} requests; medians over rounds)\n");
    println!("| scenario | µs per request | ratio to read |");
    println!("|---|---:|---:|");
    for (s, m) in SCENARIOS.iter().zip(&medians) {
        println!("| {} | {:.3} | {:.2} |", s.name(), m / 1000.0, m / medians[0]);
    }
}
