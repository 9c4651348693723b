//! The layer under axum routers and plain Tower/hyper services.

mod common;

use std::convert::Infallible;

use axum::{body::Body, routing::get, Router};
use common::*;
use http::{header, Request, Response, StatusCode};
use sessionware::{store::MemoryStore, Keys, Session, SessionError, SessionLayer};
use tower::{service_fn, ServiceBuilder, ServiceExt};

#[tokio::test]
async fn untouched_session_costs_nothing() {
    let h = Harness::new();
    let app = app(&h.layer);
    // Without a cookie and with a valid one.
    let res = send(&app, req("POST", "/incr", None)).await;
    let cookie = session_cookie(&res).unwrap();
    let before = h.store.total();
    for c in [None, Some(cookie.as_str())] {
        let res = send(&app, req("GET", "/untouched", c)).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert!(res.headers().get(header::SET_COOKIE).is_none());
        assert!(res.headers().get(header::VARY).is_none(), "untouched responses keep their headers");
        assert!(res.headers().get(header::CACHE_CONTROL).is_none());
    }
    assert_eq!(h.store.total(), before, "a handler that never touches the session makes no store call");
}

#[tokio::test]
async fn counter_round_trip() {
    let h = Harness::new();
    let app = app(&h.layer);
    let res = send(&app, req("GET", "/read", None)).await;
    assert!(res.headers().get(header::SET_COOKIE).is_none(), "reading creates no session");
    assert_eq!(body(res).await, "none");
    let res = send(&app, req("POST", "/incr", None)).await;
    let cookie = session_cookie(&res).unwrap();
    assert_eq!(body(res).await, "1");
    let res = send(&app, req("POST", "/incr", Some(&cookie))).await;
    assert!(res.headers().get(header::SET_COOKIE).is_none(), "an existing cookie is not re-sent");
    assert_eq!(body(res).await, "2");
    assert_eq!(body(send(&app, req("GET", "/read", Some(&cookie))).await).await, "2");
}

#[tokio::test]
async fn works_under_nest_merge_route_layer_and_fallback() {
    let layer = SessionLayer::new(MemoryStore::default(), Keys::generate().unwrap());
    async fn incr(session: Session) -> Result<String, SessionError> {
        common::handlers::incr(session).await
    }
    let nested = Router::new().route("/incr", get(incr));
    let app: Router = Router::new()
        .nest("/nested", nested)
        .merge(Router::new().route("/merged", get(incr)))
        .route("/route-layered", get(incr).route_layer(layer.clone()))
        .fallback(incr)
        .layer(layer.clone());
    for path in ["/nested/incr", "/merged", "/route-layered", "/no-such-route"] {
        let res = send(&app, req("GET", path, None)).await;
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        let cookie = session_cookie(&res).unwrap_or_else(|| panic!("{path} set no cookie"));
        let res = send(&app, req("GET", path, Some(&cookie))).await;
        assert_eq!(body(res).await, "2", "{path}");
    }
    // Only route_layer, no outer layer: still a session.
    let only_route: Router = Router::new().route("/x", get(incr).route_layer(layer));
    let res = send(&only_route, req("GET", "/x", None)).await;
    assert!(session_cookie(&res).is_some());
    // A route without any layer: a typed 500, not a panic.
    let none: Router = Router::new().route("/x", get(incr));
    assert_eq!(send(&none, req("GET", "/x", None)).await.status(), StatusCode::INTERNAL_SERVER_ERROR);
}

async fn plain(req: Request<String>) -> Result<Response<String>, Infallible> {
    let session = req.extensions().get::<Session>().cloned();
    let Some(session) = session else {
        return Ok(Response::new("no session".into()));
    };
    let n: u64 = session.get("n").await.ok().flatten().unwrap_or(0) + 1;
    let mut res = Response::new(n.to_string());
    if session.insert("n", n).await.is_err() {
        *res.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    }
    Ok(res)
}

#[tokio::test]
async fn plain_tower_service_fn() {
    let svc = ServiceBuilder::new()
        .layer(SessionLayer::new(MemoryStore::default(), Keys::generate().unwrap()))
        .service(service_fn(plain));
    let res = svc.clone().oneshot(Request::new(String::new())).await.unwrap();
    let cookie = res.headers()[header::SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_string();
    assert_eq!(res.into_body(), "1");
    let res =
        svc.oneshot(Request::builder().header(header::COOKIE, cookie).body(String::new()).unwrap()).await.unwrap();
    assert_eq!(res.into_body(), "2");
}

#[tokio::test]
async fn over_real_hyper_connection() {
    use hyper::{body::Incoming, server::conn::http1};
    use hyper_util::{rt::TokioIo, service::TowerToHyperService};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let svc = ServiceBuilder::new()
        .layer(SessionLayer::new(MemoryStore::default(), Keys::generate().unwrap()))
        .service(service_fn(|req: Request<Incoming>| async move {
            let (parts, _) = req.into_parts();
            plain(Request::from_parts(parts, String::new())).await
        }));
    let server = tokio::spawn(async move {
        for _ in 0..2 {
            let (stream, _) = listener.accept().await.unwrap();
            let svc = TowerToHyperService::new(svc.clone());
            http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await.unwrap();
        }
    });
    let mut cookie = String::new();
    for expected in ["1", "2"] {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, Body>(TokioIo::new(stream)).await.unwrap();
        tokio::spawn(conn);
        let mut b = Request::builder().uri("/").header(header::HOST, "localhost");
        if !cookie.is_empty() {
            b = b.header(header::COOKIE, &cookie);
        }
        let res = sender.send_request(b.body(Body::empty()).unwrap()).await.unwrap();
        if let Some(c) = res.headers().get(header::SET_COOKIE) {
            cookie = c.to_str().unwrap().split(';').next().unwrap().to_string();
        }
        use http_body_util::BodyExt;
        let text = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&text[..], expected.as_bytes());
    }
    server.await.unwrap();
}

#[tokio::test]
async fn flash_values_are_read_once() {
    let layer = SessionLayer::new(MemoryStore::default(), Keys::generate().unwrap());
    async fn put(session: Session) -> Result<(), SessionError> {
        session.insert("flash", "saved!").await
    }
    async fn take(session: Session) -> Result<String, SessionError> {
        Ok(session.take::<String>("flash").await?.unwrap_or_default())
    }
    let app: Router = Router::new().route("/put", get(put)).route("/take", get(take)).layer(layer);
    let cookie = session_cookie(&send(&app, req("GET", "/put", None)).await).unwrap();
    assert_eq!(body(send(&app, req("GET", "/take", Some(&cookie))).await).await, "saved!");
    assert_eq!(body(send(&app, req("GET", "/take", Some(&cookie))).await).await, "");
}

#[tokio::test]
async fn session_api_surface() {
    let layer = SessionLayer::new(MemoryStore::default(), Keys::generate().unwrap());
    async fn all(session: Session) -> Result<String, SessionError> {
        session.insert("a", 1).await?;
        session.insert("b", vec!["x"]).await?;
        assert_eq!(session.keys().await?, vec!["a".to_string(), "b".to_string()]);
        assert!(session.contains("a").await?);
        assert!(session.remove("a").await?);
        assert!(!session.remove("a").await?);
        assert!(matches!(session.get::<String>("b").await, Err(SessionError::Undecodable { key, .. }) if key == "b"));
        assert!(matches!(session.insert("", 1).await, Err(SessionError::InvalidDataKey)));
        assert!(session.id().await?.is_none(), "a new session gets its ID when saved");
        let meta = session.metadata().await?.unwrap();
        assert_eq!(meta.created_at, meta.last_seen);
        assert!(session.expires_at().await?.is_some());
        session.clear().await?;
        assert!(session.is_empty().await?);
        session.insert("c", 3).await?;
        Ok(session.to_json().await?.len().to_string())
    }
    async fn id(session: Session) -> Result<String, SessionError> {
        Ok(session.id().await?.map(|i| i.expose_secret()).unwrap_or_default())
    }
    let app: Router = Router::new().route("/all", get(all)).route("/id", get(id)).layer(layer);
    let res = send(&app, req("GET", "/all", None)).await;
    let cookie = session_cookie(&res).unwrap();
    assert_eq!(body(res).await, "1");
    let id = body(send(&app, req("GET", "/id", Some(&cookie))).await).await;
    assert_eq!(id.len(), 22);
    assert!(!cookie.contains(&id), "the cookie carries the ID only inside the signed token");
}
