//! Shared pieces of the rival benchmarks: identical axum routers for no
//! session layer ("bare"), sessionware ("ours") and tower-sessions ("theirs"),
//! and the helpers that build requests and carry cookies.
//!
//! Every router serves the same five paths, so routing costs the same:
//!
//! | path | handler |
//! |---|---|
//! | `/plain` | returns `"ok"`, never touches the session |
//! | `/read` | reads `n` |
//! | `/write` | reads `n`, writes `n + 1` |
//! | `/new` | inserts `n = 1` (sent without a cookie: creates a session) |
//! | `/renew` | gives the session a new ID (`renew` / `cycle_id`) |
//!
//! In the bare router all five paths go to the `/plain` handler.

use axum::{body::Body, http::StatusCode, routing::get, Router};
use http::{header, HeaderValue, Request, Response};

/// The paths every router serves.
pub const PATHS: [&str; 5] = ["/plain", "/read", "/write", "/new", "/renew"];

include!("../../common/handlers.rs");

/// All five paths answering like `/plain`, not finalized.
fn bare_routes() -> Router {
    Router::new()
        .route("/plain", get(plain))
        .route("/read", get(plain))
        .route("/write", get(plain))
        .route("/new", get(plain))
        .route("/renew", get(plain))
}

/// No session layer at all.
pub mod bare {
    use super::*;

    /// All five paths answer like `/plain`.
    pub fn router() -> Router {
        bare_routes().with_state(())
    }
}

/// The bare routes under a layer that does nothing (`tower`'s `Identity`):
/// what axum's `Router::layer` costs any middleware (one more boxed route
/// per request), before the middleware does any work.
pub mod noop {
    use super::*;

    /// The bare routes under an identity layer.
    pub fn router() -> Router {
        bare_routes().layer(tower::layer::util::Identity::new()).with_state(())
    }
}

/// sessionware with its `MemoryStore` and default (secure) configuration.
pub mod ours {
    use super::*;
    pub use sessionware::{store::MemoryStore, Keys, Session, SessionLayer};

    handlers!(Session, renew);

    /// The cookie name sessionware uses by default.
    pub const COOKIE_NAME: &str = "__Host-sid";

    /// A fresh layer on a fresh store; the store is returned too.
    pub fn layer() -> (SessionLayer, MemoryStore) {
        layer_on(MemoryStore::default())
    }

    /// A fresh layer on `store` with a freshly generated key.
    pub fn layer_on(store: MemoryStore) -> (SessionLayer, MemoryStore) {
        let keys = Keys::generate().expect("OS RNG");
        (SessionLayer::new(store.clone(), keys), store)
    }

    /// The routes under `layer`.
    pub fn router_with(layer: SessionLayer) -> Router {
        routes().layer(layer).with_state(())
    }

    /// The routes under a fresh layer.
    pub fn router() -> Router {
        router_with(layer().0)
    }
}

/// tower-sessions 0.15 with its `MemoryStore` and a signed cookie.
pub mod theirs {
    use super::*;
    pub use tower_sessions::{cookie::Key, service::SignedCookie, MemoryStore, Session, SessionManagerLayer};

    handlers!(Session, cycle_id);

    /// The cookie name tower-sessions uses by default.
    pub const COOKIE_NAME: &str = "id";

    /// The layer type.
    pub type Layer = SessionManagerLayer<MemoryStore, SignedCookie>;

    /// A fresh signed-cookie layer on a fresh store; the store is returned too.
    pub fn layer() -> (Layer, MemoryStore) {
        let store = MemoryStore::default();
        (SessionManagerLayer::new(store.clone()).with_signed(Key::generate()), store)
    }

    /// The routes under `layer`.
    pub fn router_with(layer: Layer) -> Router {
        routes().layer(layer).with_state(())
    }

    /// The routes under a fresh layer.
    pub fn router() -> Router {
        router_with(layer().0)
    }
}

/// Which library a router uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lib {
    /// No session layer.
    Bare,
    /// A layer that does nothing (the floor of any axum layer).
    Noop,
    /// sessionware.
    Ours,
    /// tower-sessions.
    Theirs,
}

impl Lib {
    /// The name used in bench ids and tables.
    pub fn name(self) -> &'static str {
        match self {
            Lib::Bare => "bare",
            Lib::Noop => "noop-layer",
            Lib::Ours => "sessionware",
            Lib::Theirs => "tower-sessions",
        }
    }

    /// A fresh router (fresh store, fresh key).
    pub fn router(self) -> Router {
        match self {
            Lib::Bare => bare::router(),
            Lib::Noop => noop::router(),
            Lib::Ours => ours::router(),
            Lib::Theirs => theirs::router(),
        }
    }
}

/// A `Cookie` header of the same length as a sessionware session
/// cookie, for the bare router: the cost of carrying a cookie is the
/// client's, not the layer's, so the cookie scenarios are compared with a
/// bare run that receives one too.
pub fn dummy_cookie() -> HeaderValue {
    HeaderValue::from_static("__Host-sid=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
}

/// A GET request for `path`, with `cookie` as the `Cookie` header.
pub fn request(path: &'static str, cookie: Option<&HeaderValue>) -> Request<Body> {
    let mut req = Request::new(Body::empty());
    *req.uri_mut() = http::Uri::from_static(path);
    if let Some(c) = cookie {
        req.headers_mut().insert(header::COOKIE, c.clone());
    }
    req
}

/// The `name=value` part of the response's first `Set-Cookie`, ready to be
/// sent back as a `Cookie` header.
pub fn cookie_from<B>(res: &Response<B>) -> Option<HeaderValue> {
    let v = res.headers().get(header::SET_COOKIE)?.as_bytes();
    let end = v.iter().position(|b| *b == b';').unwrap_or(v.len());
    HeaderValue::from_bytes(&v[..end]).ok()
}

/// Sends one request through `router` and returns status, cookie and body.
pub async fn send(
    router: &Router,
    path: &'static str,
    cookie: Option<&HeaderValue>,
) -> (StatusCode, Option<HeaderValue>, String) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let res = router.clone().oneshot(request(path, cookie)).await.expect("infallible");
    let status = res.status();
    let c = cookie_from(&res);
    let body = res.into_body().collect().await.expect("body").to_bytes();
    (status, c, String::from_utf8_lossy(&body).into_owned())
}

/// Creates a session with `n = 1` through `/new` and returns its cookie,
/// after checking that `/read` sees it.
pub async fn make_session(router: &Router) -> HeaderValue {
    let (status, cookie, _) = send(router, "/new", None).await;
    assert_eq!(status, StatusCode::OK, "/new failed");
    let cookie = cookie.expect("/new set no cookie");
    let (status, _, body) = send(router, "/read", Some(&cookie)).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "1"), "/read does not see the new session");
    cookie
}

/// Reading criterion's results (`<target>/criterion/<group>/<id>/new/estimates.json`)
/// and rendering the comparison table.
pub mod summary {
    use std::path::{Path, PathBuf};

    /// The scenarios of `benches/layer.rs`, in table order.
    pub const SCENARIOS: [&str; 8] =
        ["bare", "bare_cookie", "untouched", "untouched_nocookie", "read", "write", "new", "renew"];

    /// The bare group a scenario's overhead is taken against: the same
    /// request without a layer (with a cookie header where the scenario sends one).
    pub fn baseline(scenario: &str) -> &'static str {
        match scenario {
            "untouched" | "read" | "write" | "renew" => "bare_cookie",
            _ => "bare",
        }
    }

    /// The criterion output folder: `$CRITERION_HOME`, else
    /// `$CARGO_TARGET_DIR/criterion`, else `<target>/criterion` found from the
    /// running executable (`<target>/release/...`), else `target/criterion`.
    pub fn criterion_dir() -> PathBuf {
        if let Some(h) = std::env::var_os("CRITERION_HOME") {
            return PathBuf::from(h);
        }
        if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
            return PathBuf::from(t).join("criterion");
        }
        if let Ok(exe) = std::env::current_exe() {
            for dir in exe.ancestors() {
                if dir.join("criterion").is_dir() || dir.join("CACHEDIR.TAG").is_file() {
                    return dir.join("criterion");
                }
            }
        }
        PathBuf::from("target/criterion")
    }

    /// The median time per request (ns) of `group/id`, and the half-width of
    /// its 95% confidence interval.
    pub fn median_ns(dir: &Path, group: &str, id: &str) -> Option<(f64, f64)> {
        let path = dir.join(group).join(id).join("new").join("estimates.json");
        let text = std::fs::read_to_string(path).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        let m = &v["median"];
        let point = m["point_estimate"].as_f64()?;
        let lo = m["confidence_interval"]["lower_bound"].as_f64().unwrap_or(point);
        let hi = m["confidence_interval"]["upper_bound"].as_f64().unwrap_or(point);
        Some((point, (hi - lo) / 2.0))
    }

    fn us(ns: Option<(f64, f64)>) -> String {
        ns.map_or("–".into(), |(p, _)| format!("{:.3}", p / 1000.0))
    }

    fn over(x: Option<(f64, f64)>, bare: Option<(f64, f64)>) -> Option<f64> {
        Some(x?.0 - bare?.0)
    }

    /// The markdown table of every scenario found in `dir`.
    pub fn table(dir: &Path) -> String {
        let mut out = String::new();
        for b in ["bare", "bare_cookie"] {
            out.push_str(&format!(
                "{b}: no layer {} µs/request, no-op layer {} µs/request (medians)\n",
                us(median_ns(dir, b, "bare")),
                us(median_ns(dir, b, "noop-layer"))
            ));
        }
        out.push_str("\n| scenario | baseline | sessionware µs | overhead µs | tower-sessions µs | overhead µs | ours / theirs (overhead) |\n");
        out.push_str("|---|---|---:|---:|---:|---:|---:|\n");
        for s in SCENARIOS.iter().skip(2) {
            let base = baseline(s);
            let bare = median_ns(dir, base, "bare");
            let ours = median_ns(dir, s, "sessionware");
            let theirs = median_ns(dir, s, "tower-sessions");
            if ours.is_none() && theirs.is_none() {
                continue;
            }
            let oo = over(ours, bare);
            let to = over(theirs, bare);
            let ratio = match (oo, to) {
                (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
                _ => "–".into(),
            };
            let f = |o: Option<f64>| o.map_or("–".into(), |o| format!("{:+.3}", o / 1000.0));
            out.push_str(&format!(
                "| {s} | {base} | {} | {} | {} | {} | {ratio} |\n",
                us(ours),
                f(oo),
                us(theirs),
                f(to)
            ));
        }
        out
    }
}

/// sessionware stores filled directly through `SessionStore::create`, for the
/// scaling and expiry measurements.
pub mod populate {
    use std::time::{SystemTime, UNIX_EPOCH};

    use axum::Router;
    use http::HeaderValue;
    use sessionware::{
        store::{MemoryStore, Metadata, Record, SessionStore},
        Keys, ManualClock, SessionId, SessionLayer,
    };

    use super::ours;

    /// Idle timeout of the sessions whose cookies are handed out (1 hour).
    pub const LIVE_IDLE_MS: u64 = 3_600_000;
    /// Absolute timeout of every pre-made session (12 hours).
    pub const ABSOLUTE_MS: u64 = 12 * 3_600_000;

    /// A sessionware router over a pre-filled `MemoryStore`.
    pub struct Populated {
        /// The routes under the layer.
        pub router: Router,
        /// The store (shared with the layer).
        pub store: MemoryStore,
        /// The clock of both the layer and the store.
        pub clock: ManualClock,
        /// When the sessions were made (ms since the epoch).
        pub t0: u64,
        /// The layer's keys.
        pub keys: Keys,
        /// `Cookie` header values of the live sessions.
        pub cookies: Vec<HeaderValue>,
    }

    /// Wall-clock now in ms.
    pub fn now_ms() -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
    }

    /// Adds `count` sessions (data `n = 1`) made at `now` with idle timeout
    /// `idle_ms`; returns the IDs of the first `keep` of them.
    pub async fn add(store: &MemoryStore, count: usize, now: u64, idle_ms: u64, keep: usize) -> Vec<SessionId> {
        let mut record = Record::new(Metadata::new(now, idle_ms, ABSOLUTE_MS));
        record.data.insert("n", &serde_json::value::to_raw_value(&1u64).expect("json"));
        let mut kept = Vec::with_capacity(keep);
        for i in 0..count {
            let id = SessionId::generate().expect("OS RNG");
            let created = store.create(&id.storage_key(), &record, now).await.expect("create");
            assert!(created, "fresh random id collided");
            if i < keep {
                kept.push(id);
            }
        }
        kept
    }

    /// A store with `live` sessions (idle 1 h; their cookies are returned)
    /// and `bulk` more with idle timeout `bulk_idle_ms`, all made at "now"
    /// on a manual clock shared by store and layer.
    pub async fn populated(live: usize, bulk: usize, bulk_idle_ms: u64) -> Populated {
        let t0 = now_ms();
        let clock = ManualClock::new(t0);
        let store = MemoryStore::builder().max_sessions(usize::MAX).build();
        let keys = Keys::generate().expect("OS RNG");
        let layer = SessionLayer::new(store.clone(), keys.clone()).with_clock(clock.clone());
        let ids = add(&store, live, t0, LIVE_IDLE_MS, live).await;
        add(&store, bulk, t0, bulk_idle_ms, 0).await;
        let cookies = ids
            .iter()
            .map(|id| {
                let v = format!("{}={}", ours::COOKIE_NAME, keys.sign(ours::COOKIE_NAME, id));
                HeaderValue::from_str(&v).expect("cookie")
            })
            .collect();
        Populated { router: ours::router_with(layer), store, clock, t0, keys, cookies }
    }
}
