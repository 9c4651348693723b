//! Soft client binding (R89, R90): a signed-in session used from another
//! client (another browser family, another /24 or /48) triggers the
//! configured policy; the client's address comes from the socket peer, or
//! from `X-Forwarded-For` only behind a trusted proxy.

mod common;

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    extract::{ConnectInfo, Request},
    routing::get,
    Router,
};
use common::*;
use http::StatusCode;
use sessionware::{BindingPolicy, ClientChange, EventKind, Session, SessionConfig, SessionError, SessionLayer};

const FIREFOX_120: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0";
const FIREFOX_121: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0";
const CHROME: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";

/// The client a request comes from: user agent, socket peer, forwarded-for.
#[derive(Clone, Copy, Default)]
struct Via<'a> {
    ua: Option<&'a str>,
    peer: Option<&'a str>,
    xff: Option<&'a str>,
}

fn client<'a>(ua: &'a str, peer: &'a str) -> Via<'a> {
    Via { ua: Some(ua), peer: Some(peer), xff: None }
}

fn request(method: &str, uri: &str, cookie: Option<&str>, from: Via<'_>) -> http::Request<axum::body::Body> {
    let mut r = req(method, uri, cookie);
    if let Some(ua) = from.ua {
        r.headers_mut().insert(http::header::USER_AGENT, ua.parse().unwrap());
    }
    if let Some(xff) = from.xff {
        r.headers_mut().insert("x-forwarded-for", xff.parse().unwrap());
    }
    if let Some(peer) = from.peer {
        let addr = SocketAddr::new(peer.parse().unwrap(), 40_000);
        r.extensions_mut().insert(ConnectInfo(addr));
    }
    r
}

type Seen = Arc<Mutex<Vec<EventKind>>>;

struct Bound {
    h: Harness,
    app: Router,
    seen: Seen,
}

impl Bound {
    fn new(config: SessionConfig) -> Self {
        let h = Harness::with_config(config);
        let seen: Seen = Arc::default();
        let log = Arc::clone(&seen);
        let layer = h.layer.clone().on_event(move |e| log.lock().unwrap().push(e.kind));
        Self { app: routes(&layer), h, seen }
    }

    fn with(policy: BindingPolicy) -> Self {
        Self::new(SessionConfig::builder().client_binding(policy).build().unwrap())
    }

    async fn login(&self, user: &str, from: Via<'_>) -> String {
        let res = send(&self.app, request("POST", &format!("/login/{user}"), None, from)).await;
        assert_eq!(res.status(), StatusCode::OK);
        session_cookie(&res).expect("a login sets a cookie")
    }

    async fn get(&self, uri: &str, cookie: &str, from: Via<'_>) -> http::Response<axum::body::Body> {
        send(&self.app, request("GET", uri, Some(cookie), from)).await
    }

    /// The `ClientChanged` events seen since the last call.
    fn changes(&self) -> Vec<EventKind> {
        let mut seen = self.seen.lock().unwrap();
        let changes = seen.iter().copied().filter(|k| matches!(k, EventKind::ClientChanged { .. })).collect();
        seen.clear();
        changes
    }
}

fn changed(user_agent: bool, network: bool) -> Vec<EventKind> {
    vec![EventKind::ClientChanged { user_agent, network }]
}

/// The shared test routes, plus: `/twice` (reads the session twice),
/// `/sensitive` (a recent-auth guard), `/why` (`client_changed`), and
/// `/raw` (takes the session straight from the extensions, no extractor).
fn routes(layer: &SessionLayer) -> Router {
    handlers::routes()
        .route(
            "/twice",
            get(|session: Session| async move {
                let user = session.user().await?;
                session.get::<u64>("n").await?;
                Ok::<_, SessionError>(user.unwrap_or_default())
            }),
        )
        .route(
            "/sensitive",
            get(|session: Session| async move {
                session.require_recent_auth(Duration::from_secs(3600)).await?;
                Ok::<_, SessionError>("done")
            }),
        )
        .route(
            "/why",
            get(|session: Session| async move {
                Ok::<_, SessionError>(match session.client_changed().await? {
                    Some(ClientChange { user_agent, network, .. }) => format!("ua={user_agent} net={network}"),
                    None => "same".into(),
                })
            }),
        )
        .route(
            "/raw",
            get(|req: Request| async move {
                let session = req.extensions().get::<Session>().unwrap().clone();
                Ok::<_, SessionError>(session.user().await?.unwrap_or_default())
            }),
        )
        .layer(layer.clone())
}

// R90: UA1/IP1 login, then UA2: the event, and the session is still valid.
#[tokio::test]
async fn another_browser_is_an_event_and_the_session_goes_on() {
    let b = Bound::with(BindingPolicy::Event);
    let cookie = b.login("alice", client(FIREFOX_120, "203.0.113.5")).await;
    assert!(b.changes().is_empty(), "the login itself is no change");
    let res = b.get("/twice", &cookie, client(CHROME, "203.0.113.5")).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(no_cookie(&res));
    assert_eq!(body(res).await, "alice");
    assert_eq!(b.changes(), changed(true, false), "once per request, though read twice");
    // The owner's next request is unaffected.
    let res = b.get("/me", &cookie, client(FIREFOX_120, "203.0.113.5")).await;
    assert_eq!(body(res).await, "alice");
    assert!(b.changes().is_empty());
}

#[tokio::test]
async fn a_browser_update_is_the_same_client() {
    let b = Bound::with(BindingPolicy::End);
    let cookie = b.login("alice", client(FIREFOX_120, "203.0.113.5")).await;
    let res = b.get("/me", &cookie, client(FIREFOX_121, "203.0.113.5")).await;
    assert_eq!(body(res).await, "alice");
    assert!(b.changes().is_empty());
}

#[tokio::test]
async fn another_network_is_an_event_another_host_on_it_is_not() {
    let b = Bound::with(BindingPolicy::Event);
    let cookie = b.login("alice", client(FIREFOX_120, "203.0.113.5")).await;
    b.get("/me", &cookie, client(FIREFOX_120, "203.0.113.77")).await;
    assert!(b.changes().is_empty(), "same /24");
    b.get("/me", &cookie, client(FIREFOX_120, "198.51.100.5")).await;
    assert_eq!(b.changes(), changed(false, true));
    // IPv6: the /48 counts.
    let cookie = b.login("bob", client(FIREFOX_120, "2001:db8:aa:1::1")).await;
    b.get("/me", &cookie, client(FIREFOX_120, "2001:db8:aa:ffff::2")).await;
    assert!(b.changes().is_empty(), "same /48");
    b.get("/me", &cookie, client(FIREFOX_120, "2001:db8:ab::1")).await;
    assert_eq!(b.changes(), changed(false, true));
}

// R90 `Terminate`: the thief's request is anonymous, the record deleted.
#[tokio::test]
async fn end_logs_the_session_out_everywhere() {
    let b = Bound::with(BindingPolicy::End);
    let cookie = b.login("alice", client(FIREFOX_120, "203.0.113.5")).await;
    let res = b.get("/why", &cookie, client(CHROME, "198.51.100.5")).await;
    assert!(is_removal(&res), "the removal cookie");
    assert_eq!(body(res).await, "ua=true net=true");
    assert_eq!(b.changes(), changed(true, true));
    assert!(b.h.store.list_user("alice", T0, 10).await.unwrap().is_empty(), "the record is deleted");
    // The stolen cookie is dead for its owner too.
    let (status, _) = who(&b.app, &cookie).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn end_leaves_the_request_anonymous_and_able_to_start_over() {
    let b = Bound::with(BindingPolicy::End);
    let cookie = b.login("alice", client(FIREFOX_120, "203.0.113.5")).await;
    let res = b.get("/me", &cookie, client(CHROME, "203.0.113.5")).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(is_removal(&res));
    // A new login from the new client records it: no change from there on.
    let fresh = b.login("alice", client(CHROME, "203.0.113.5")).await;
    b.changes();
    let res = b.get("/me", &fresh, client(CHROME, "203.0.113.5")).await;
    assert_eq!(body(res).await, "alice");
    assert!(b.changes().is_empty());
}

// R90 `RequireReauth`: the recent-auth guard fails on the other client.
#[tokio::test]
async fn require_reauth_fails_the_guard_until_a_new_login() {
    let b = Bound::with(BindingPolicy::RequireReauth);
    let cookie = b.login("alice", client(FIREFOX_120, "203.0.113.5")).await;
    let owner = b.get("/sensitive", &cookie, client(FIREFOX_120, "203.0.113.5")).await;
    assert_eq!(owner.status(), StatusCode::OK, "a fresh login passes the guard");
    let other = b.get("/sensitive", &cookie, client(CHROME, "203.0.113.5")).await;
    assert_eq!(other.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(b.changes(), changed(true, false));
    // The session itself goes on; the handler can tell why.
    let res = b.get("/why", &cookie, client(CHROME, "203.0.113.5")).await;
    assert_eq!(body(res).await, "ua=true net=false");
    // A re-login from the new client records it and ends the mismatch.
    let res = send(&b.app, request("POST", "/login/alice", Some(&cookie), client(CHROME, "203.0.113.5"))).await;
    let renewed = session_cookie(&res).unwrap();
    let res = b.get("/sensitive", &renewed, client(CHROME, "203.0.113.5")).await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn off_compares_nothing() {
    let b = Bound::with(BindingPolicy::Off);
    let cookie = b.login("alice", client(FIREFOX_120, "203.0.113.5")).await;
    let res = b.get("/why", &cookie, client(CHROME, "198.51.100.5")).await;
    assert_eq!(body(res).await, "same");
    assert!(b.changes().is_empty());
}

#[tokio::test]
async fn anonymous_sessions_are_not_bound() {
    let b = Bound::with(BindingPolicy::End);
    let res = send(&b.app, request("POST", "/incr", None, client(FIREFOX_120, "203.0.113.5"))).await;
    let cookie = session_cookie(&res).unwrap();
    let res = send(&b.app, request("POST", "/incr", Some(&cookie), client(CHROME, "198.51.100.5"))).await;
    assert_eq!(body(res).await, "2");
    assert!(b.changes().is_empty());
}

// The check does not depend on the handler using the extractor.
#[tokio::test]
async fn a_handler_without_the_extractor_is_still_checked() {
    let b = Bound::with(BindingPolicy::End);
    let cookie = b.login("alice", client(FIREFOX_120, "203.0.113.5")).await;
    let res = b.get("/raw", &cookie, client(CHROME, "203.0.113.5")).await;
    assert!(is_removal(&res));
    assert_eq!(body(res).await, "");
    assert_eq!(b.changes(), changed(true, false));
}

// R89: `X-Forwarded-For` from a peer that is not a trusted proxy is ignored.
#[tokio::test]
async fn forwarded_for_from_an_untrusted_peer_is_ignored() {
    let b = Bound::with(BindingPolicy::Event);
    let from = Via { ua: Some(FIREFOX_120), peer: Some("203.0.113.5"), xff: Some("10.0.0.1") };
    let cookie = b.login("alice", from).await;
    let listed = b.h.store.list_user("alice", T0, 10).await.unwrap();
    assert_eq!(listed[0].ip.as_deref(), Some("203.0.113.0/24"), "the peer is recorded");
    // A thief on another network cannot claim the victim's by the header.
    let thief = Via { ua: Some(FIREFOX_120), peer: Some("198.51.100.9"), xff: Some("203.0.113.5") };
    b.get("/me", &cookie, thief).await;
    assert_eq!(b.changes(), changed(false, true));
}

// R89: behind a trusted proxy, the forwarded address is the client's.
#[tokio::test]
async fn forwarded_for_from_a_trusted_proxy_is_used() {
    let config = SessionConfig::builder().trusted_proxies(["203.0.113.5"]).build().unwrap();
    let b = Bound::new(config);
    let via = |xff| Via { ua: Some(FIREFOX_120), peer: Some("203.0.113.5"), xff: Some(xff) };
    let cookie = b.login("alice", via("10.0.0.1")).await;
    let listed = b.h.store.list_user("alice", T0, 10).await.unwrap();
    assert_eq!(listed[0].ip.as_deref(), Some("10.0.0.0/24"));
    b.get("/me", &cookie, via("10.0.0.99")).await;
    assert!(b.changes().is_empty(), "same /24 behind the proxy");
    b.get("/me", &cookie, via("192.0.2.1")).await;
    assert_eq!(b.changes(), changed(false, true));
}

// A forged chain: the attacker writes the victim's address into the header;
// the proxy appends the attacker's real one, which is what counts.
#[tokio::test]
async fn a_forged_forwarded_chain_is_not_believed() {
    let config = SessionConfig::builder().trusted_proxies(["10.0.0.0/8"]).build().unwrap();
    let b = Bound::new(config);
    let victim = Via { ua: Some(FIREFOX_120), peer: Some("10.1.1.1"), xff: Some("203.0.113.5") };
    let cookie = b.login("alice", victim).await;
    let forged = Via { ua: Some(FIREFOX_120), peer: Some("10.1.1.1"), xff: Some("203.0.113.5, 198.51.100.9") };
    b.get("/me", &cookie, forged).await;
    assert_eq!(b.changes(), changed(false, true));
    // Naming a trusted proxy in between changes nothing.
    let forged =
        Via { ua: Some(FIREFOX_120), peer: Some("10.1.1.1"), xff: Some("203.0.113.5, 10.2.2.2, 198.51.100.9") };
    b.get("/me", &cookie, forged).await;
    assert_eq!(b.changes(), changed(false, true));
}

// Bad input never panics; a left-out user agent is no way around the check.
#[tokio::test]
async fn missing_or_odd_client_data_never_panics() {
    let config = SessionConfig::builder().trusted_proxies(["10.0.0.0/8"]).build().unwrap();
    let b = Bound::new(config);
    // Nothing known at login: nothing to compare.
    let bare = b.login("alice", Via::default()).await;
    let res = b.get("/me", &bare, client(CHROME, "198.51.100.5")).await;
    assert_eq!(body(res).await, "alice");
    assert!(b.changes().is_empty());
    // Known at login; the request leaves the user agent out: a change.
    // Without a peer address, the network is not compared.
    let cookie = b.login("bob", client(FIREFOX_120, "203.0.113.5")).await;
    let res = b.get("/me", &cookie, Via::default()).await;
    assert_eq!(body(res).await, "bob");
    assert_eq!(b.changes(), changed(true, false));
    // Garbage forwarded-for from a trusted proxy, bytes that are not text.
    for xff in ["", "garbage", ",,,", "[::1", "1.2.3.4, nonsense"] {
        let from = Via { ua: Some(FIREFOX_120), peer: Some("10.1.1.1"), xff: Some(xff) };
        assert_eq!(b.get("/me", &cookie, from).await.status(), StatusCode::OK, "{xff:?}");
    }
    assert!(b.changes().is_empty(), "no address is no network comparison");
    let mut r = request("GET", "/me", Some(&cookie), client(FIREFOX_120, "10.1.1.1"));
    r.headers_mut().insert("x-forwarded-for", http::HeaderValue::from_bytes(b"\xfe\xff").unwrap());
    r.headers_mut().insert(http::header::USER_AGENT, http::HeaderValue::from_bytes(b"Firefox \xff").unwrap());
    assert_eq!(send(&b.app, r).await.status(), StatusCode::OK);
    assert_eq!(b.changes(), changed(true, false), "not text where text was recorded");
}
