//! Listing and revoking a user's sessions through the layer (R45, R47).

mod common;

use axum::{
    extract::{ConnectInfo, Path},
    http::StatusCode,
    routing::{delete, get, post},
    Json, Router,
};
use common::*;
use sessionware::{Session, SessionError, SessionHandle, SessionInfo};

async fn list(session: Session) -> Result<Json<Vec<SessionInfo>>, SessionError> {
    Ok(Json(session.sessions().await?))
}
async fn revoke(session: Session, Path(h): Path<String>) -> Result<StatusCode, SessionError> {
    let Some(h) = SessionHandle::parse(&h) else { return Ok(StatusCode::NOT_FOUND) };
    Ok(if session.revoke(&h).await? { StatusCode::NO_CONTENT } else { StatusCode::NOT_FOUND })
}
async fn others(session: Session) -> Result<String, SessionError> {
    Ok(session.revoke_others().await?.to_string())
}

fn routes(h: &Harness) -> Router {
    Router::new()
        .route("/sessions", get(list))
        .route("/sessions/{h}", delete(revoke))
        .route("/others", post(others))
        .merge(common::handlers::routes())
        .layer(h.layer.clone())
}

fn with_client(mut r: http::Request<axum::body::Body>, ua: &str, ip: [u8; 4]) -> http::Request<axum::body::Body> {
    r.headers_mut().insert(http::header::USER_AGENT, ua.parse().unwrap());
    r.headers_mut().insert("x-forwarded-for", "10.9.9.9".parse().unwrap());
    r.extensions_mut().insert(ConnectInfo(std::net::SocketAddr::from((ip, 4000))));
    r
}

async fn list_of(app: &Router, cookie: &str) -> Vec<serde_json::Value> {
    let res = send(app, req("GET", "/sessions", Some(cookie))).await;
    assert_eq!(res.status(), StatusCode::OK);
    serde_json::from_str(&body(res).await).unwrap()
}

async fn list_revoke_and_logout_others(t: Transport) {
    let h = Harness::on(t);
    let app = routes(&h);
    let mut devices = Vec::new();
    for (ua, ip) in [("Firefox", [203, 0, 113, 5]), ("Chrome", [198, 51, 100, 7]), ("Phone", [192, 0, 2, 1])] {
        let res = send(&app, with_client(req("POST", "/login/alice", None), ua, ip)).await;
        devices.push(session_cookie(&res).unwrap());
    }
    let bob = session_cookie(&send(&app, req("POST", "/login/bob", None)).await).unwrap();
    assert_eq!(send(&app, req("GET", "/sessions", None)).await.status(), StatusCode::UNAUTHORIZED);

    let list = list_of(&app, &devices[0]).await;
    assert_eq!(list.len(), 3);
    assert_eq!(list.iter().filter(|s| s["current"] == true).count(), 1);
    let current = list.iter().find(|s| s["current"] == true).unwrap();
    assert_eq!(current["user_agent"], "Firefox");
    assert_eq!(current["ip"], "203.0.113.0/24", "coarse IP from the socket peer, not X-Forwarded-For");
    // R47: no cookie value, ID or digest in the listing.
    let text = serde_json::to_string(&list).unwrap();
    for c in &devices {
        let token = token_of(c);
        assert!(!text.contains(token));
    }
    for key in h.store.inner.keys() {
        assert!(!text.contains(&key.to_hex()));
    }

    // Bob cannot revoke Alice's session by its handle.
    let phone = list.iter().find(|s| s["user_agent"] == "Phone").unwrap()["handle"].as_str().unwrap().to_string();
    let res = send(&app, req("DELETE", &format!("/sessions/{phone}"), Some(&bob))).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(body(send(&app, req("GET", "/me", Some(&devices[2]))).await).await, "alice");
    // Alice can.
    let res = send(&app, req("DELETE", &format!("/sessions/{phone}"), Some(&devices[0]))).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(send(&app, req("GET", "/me", Some(&devices[2]))).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(list_of(&app, &devices[0]).await.len(), 2);

    // Log out the others: only the current one stays.
    assert_eq!(body(send(&app, req("POST", "/others", Some(&devices[0]))).await).await, "1");
    assert_eq!(send(&app, req("GET", "/me", Some(&devices[1]))).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(body(send(&app, req("GET", "/me", Some(&devices[0]))).await).await, "alice");
    assert_eq!(body(send(&app, req("GET", "/me", Some(&bob))).await).await, "bob");
    assert_eq!(list_of(&app, &devices[0]).await.len(), 1);
}

async fn renewal_and_logout_keep_the_index_consistent(t: Transport) {
    let h = Harness::on(t);
    let app = routes(&h);
    let first = session_cookie(&send(&app, req("POST", "/login/carol", None)).await).unwrap();
    let second = session_cookie(&send(&app, req("POST", "/login/carol", None)).await).unwrap();
    let renewed = session_cookie(&send(&app, req("POST", "/renew", Some(&first))).await).unwrap();
    assert_eq!(list_of(&app, &second).await.len(), 2, "renewal replaces, never duplicates");
    send(&app, req("POST", "/logout", Some(&renewed))).await;
    let list = list_of(&app, &second).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["current"], true);
    // Expiry: past the idle timeout the other session disappears from the list on its own.
    let third = session_cookie(&send(&app, req("POST", "/login/carol", None)).await).unwrap();
    h.clock.advance(std::time::Duration::from_secs(29 * 60));
    send(&app, req("GET", "/me", Some(&third))).await;
    h.clock.advance(std::time::Duration::from_secs(2 * 60));
    let list = list_of(&app, &third).await;
    assert_eq!(list.len(), 1, "the idle session expired out of the list");
}

/// Outside axum's extractor, `Session::from_request` records the client for
/// `login`; a handle taken straight from the extensions records nothing.
async fn from_request_records_the_client_for_login(t: Transport) {
    use tower::{Service, ServiceExt};
    let h = Harness::on(t);
    let svc = tower::ServiceBuilder::new().layer(h.layer.clone()).service(tower::service_fn(
        |req: http::Request<axum::body::Body>| async move {
            let session = if req.uri().path() == "/plain-login" {
                req.extensions().get::<Session>().cloned().expect("layer")
            } else {
                Session::from_request(&req).expect("layer")
            };
            let body = if req.method() == http::Method::POST {
                session.login("carol").await.expect("login");
                String::new()
            } else {
                serde_json::to_string(&session.sessions().await.expect("list")).expect("json")
            };
            Ok::<_, std::convert::Infallible>(http::Response::new(axum::body::Body::from(body)))
        },
    ));
    let mut svc = svc;
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(with_client(req("POST", "/login", None), "Tablet", [192, 0, 2, 9]))
        .await
        .unwrap();
    let cookie = session_cookie(&res).unwrap();
    let res = svc.ready().await.unwrap().call(req("GET", "/list", Some(&cookie))).await.unwrap();
    let list: Vec<serde_json::Value> = serde_json::from_str(&body(res).await).unwrap();
    assert_eq!((list[0]["user_agent"].clone(), list[0]["ip"].clone()), ("Tablet".into(), "192.0.2.0/24".into()));

    let res = svc
        .ready()
        .await
        .unwrap()
        .call(with_client(req("POST", "/plain-login", None), "Tablet", [192, 0, 2, 9]))
        .await
        .unwrap();
    let cookie = session_cookie(&res).unwrap();
    let res = svc.ready().await.unwrap().call(req("GET", "/list", Some(&cookie))).await.unwrap();
    let list: Vec<serde_json::Value> = serde_json::from_str(&body(res).await).unwrap();
    let current = list.iter().find(|s| s["current"] == true).unwrap();
    // With client binding on (the default), the layer itself records the
    // client, so a handle taken straight from the extensions has it too.
    assert_eq!((current["user_agent"].clone(), current["ip"].clone()), ("Tablet".into(), "192.0.2.0/24".into()));
}

over_both_transports!(
    list_revoke_and_logout_others,
    renewal_and_logout_keep_the_index_consistent,
    from_request_records_the_client_for_login,
);

/// The devices page tells "since when is this device here" from "since when
/// is it signed in": a session begun anonymously (a cart) and signed in ten
/// minutes later lists both times, as `SystemTime` in Rust and as integer
/// milliseconds since the Unix epoch in JSON (the form the demo serves).
#[tokio::test]
async fn session_info_carries_the_sign_in_time_apart_from_creation() {
    use std::time::{Duration, UNIX_EPOCH};
    async fn typed(session: Session) -> Result<String, SessionError> {
        let ms = |t: std::time::SystemTime| t.duration_since(UNIX_EPOCH).unwrap().as_millis();
        let list = session.sessions().await?;
        Ok(list.iter().map(|i| format!("{} {} {}", ms(i.created_at), ms(i.signed_in_at), ms(i.last_seen))).collect())
    }
    let h = Harness::new();
    let app = Router::new()
        .route("/sessions", get(list))
        .route("/typed", get(typed))
        .merge(common::handlers::routes())
        .layer(h.layer.clone());
    let anon = session_cookie(&send(&app, req("POST", "/incr", None)).await).unwrap();
    h.clock.advance(Duration::from_secs(600));
    let cookie = session_cookie(&send(&app, req("POST", "/login/alice", Some(&anon))).await).unwrap();
    let (t0, login) = (u128::from(T0), u128::from(T0) + 600_000);
    assert_eq!(body(send(&app, req("GET", "/typed", Some(&cookie))).await).await, format!("{t0} {login} {login}"));
    let list = list_of(&app, &cookie).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["created_at"].as_u64().map(u128::from), Some(t0), "JSON: integer ms, when the session began");
    assert_eq!(list[0]["signed_in_at"].as_u64().map(u128::from), Some(login), "JSON: integer ms, the sign-in");
    assert_eq!(list[0]["last_seen"].as_u64().map(u128::from), Some(login));
}
