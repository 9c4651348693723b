//! Without axum: a plain Tower service (`tower::service_fn`) under the
//! session layer, served by hyper 1. The handler finds its session with
//! `Session::from_request`; a session error answers 500.
//!
//! Run it with `cargo run --example hyper` and open <http://127.0.0.1:3000>.
//! `cargo test --example hyper` runs its test module, which calls the service
//! directly (the example itself, without the tests, is under 80 lines).

use std::{convert::Infallible, io::IsTerminal};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use sessionware::{store::MemoryStore, Keys, Session, SessionConfig, SessionError, SessionLayer};
use tower::{service_fn, Layer, Service, ServiceExt};

/// Counts this browser's visits.
async fn count(session: Session) -> Result<String, SessionError> {
    let visits: u64 = session.get("visits").await?.unwrap_or(0) + 1;
    session.insert("visits", visits).await?;
    Ok(format!("visits: {visits}"))
}

/// The whole app: any request body, a `Full<Bytes>` response.
fn app<B: Send + 'static>(
    sessions: SessionLayer,
) -> impl Service<Request<B>, Response = Response<Full<Bytes>>, Error = Infallible, Future: Send> + Clone + Send {
    sessions.layer(service_fn(|req: Request<B>| async move {
        let Some(session) = Session::from_request(&req) else {
            unreachable!("the handler runs under the session layer");
        };
        Ok(match count(session).await {
            Ok(text) => Response::new(Full::from(text)),
            Err(e) => {
                tracing::error!(error = %e, "session");
                let mut res = Response::new(Full::from("Something went wrong."));
                *res.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                res
            }
        })
    }))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_ansi(std::io::stdout().is_terminal()).init();
    let keys = Keys::from_env_or_generate("SESSION_KEYS")?;
    let app = app(SessionLayer::new(MemoryStore::default(), keys).with_config(SessionConfig::development()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://127.0.0.1:3000");
    loop {
        let (stream, _) = listener.accept().await?;
        let app = app.clone();
        tokio::spawn(async move {
            // hyper calls a `hyper::service::Service`: one Tower call per request.
            let service = hyper::service::service_fn(move |req| app.clone().oneshot(req));
            let conn = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use http::header;
    use http_body_util::BodyExt;

    use super::*;

    #[tokio::test]
    async fn the_service_keeps_a_session_without_axum() {
        let layer = SessionLayer::new(MemoryStore::default(), Keys::generate().unwrap());
        let app = app::<Full<Bytes>>(layer.with_config(SessionConfig::development()));
        let visit = |cookie: String| {
            let req = Request::get("/").header(header::COOKIE, cookie).body(Full::default()).unwrap();
            app.clone().oneshot(req)
        };
        let res = visit(String::new()).await.unwrap();
        let cookie = res.headers()[header::SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_string();
        assert!(cookie.starts_with("sid="), "{cookie}");
        assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "visits: 1");
        let res = visit(cookie.clone()).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "visits: 2");
        // A tampered cookie is no session: the count starts again.
        let other = if cookie.ends_with('A') { 'B' } else { 'A' };
        let tampered = format!("{}{other}", &cookie[..cookie.len() - 1]);
        assert_eq!(visit(tampered).await.unwrap().into_body().collect().await.unwrap().to_bytes(), "visits: 1");
    }
}
