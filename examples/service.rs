//! A downstream service that trusts the demo's access tokens: it fetches
//! the demo's public keys (`/.well-known/jwks.json`) once at start and
//! verifies every `Authorization: Bearer …` token itself, with no session
//! store and no private key (a stateless [`TokenLayer`]: a token stays
//! valid until its `exp`, so the demo keeps them short).
//!
//! ```text
//! cargo run --example demo                                  # terminal 1
//! DEMO_URL=http://127.0.0.1:3000 cargo run --example service  # terminal 2
//! curl -s -XPOST localhost:3000/api/token -d '{"username":"alice","password":"alice-pass"}' \
//!     -H 'content-type: application/json'                  # take access_token
//! curl -s localhost:3001/whoami -H "authorization: Bearer $ACCESS"
//! ```
//!
//! `DEMO_URL` (default `http://127.0.0.1:3000`), `SERVICE_ADDR` (default
//! `127.0.0.1:3001`).

use std::io::IsTerminal;

use axum::{routing::get, Json, Router};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use sessionware::token::{AccessClaims, TokenKeys, TokenLayer};

/// What the demo's tokens say about themselves.
const ISSUER: &str = "sessionware-demo";
const AUDIENCE: &str = "sessionware-demo-api";

async fn whoami(claims: AccessClaims) -> Json<Value> {
    Json(json!({ "user": claims.sub, "sid": claims.sid.to_string() }))
}

/// The service: `/whoami` behind a stateless verifier of `keys`.
fn app(keys: TokenKeys) -> Router {
    Router::new().route("/whoami", get(whoami)).layer(TokenLayer::new(keys, ISSUER, AUDIENCE))
}

/// `GET {base}/.well-known/jwks.json` over plain HTTP/1.1, as a verify-only ring.
async fn fetch_jwks(base: &str) -> Result<TokenKeys, Box<dyn std::error::Error>> {
    let authority = base.strip_prefix("http://").ok_or("DEMO_URL must be http://host:port")?.trim_end_matches('/');
    let stream = tokio::net::TcpStream::connect(authority).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let req = http::Request::get("/.well-known/jwks.json")
        .header(http::header::HOST, authority)
        .body(Empty::<bytes::Bytes>::new())?;
    let res = sender.send_request(req).await?;
    if !res.status().is_success() {
        return Err(format!("{base}/.well-known/jwks.json answered {}", res.status()).into());
    }
    let body = res.into_body().collect().await?.to_bytes();
    Ok(TokenKeys::from_jwks(std::str::from_utf8(&body)?)?)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_ansi(std::io::stdout().is_terminal()).init();
    let demo = std::env::var("DEMO_URL").unwrap_or_else(|_| "http://127.0.0.1:3000".into());
    let addr = std::env::var("SERVICE_ADDR").unwrap_or_else(|_| "127.0.0.1:3001".into());
    let keys = fetch_jwks(&demo).await.map_err(|e| format!("DEMO_URL={demo}: {e}"))?;
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("sessionware service listening on http://{}/", listener.local_addr()?);
    axum::serve(listener, app(keys)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use http::{header, Request, StatusCode};
    use sessionware::token::{TokenAlgorithm, TokenIssuer, TokenKey, TokenSessions};
    use sessionware::{store::MemoryStore, Keys, SessionLayer};
    use tower::ServiceExt;

    use super::*;

    #[tokio::test]
    async fn tokens_of_the_issuer_verify_with_its_jwks_and_nothing_else() {
        // An issuer like the demo's, serving its JWKS on a local port.
        let keys = TokenKeys::new([TokenKey::generate("demo-1", TokenAlgorithm::EdDsa).unwrap()]).unwrap();
        let jwks = serde_json::to_value(keys.jwks()).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let issuer_app = Router::new().route("/.well-known/jwks.json", get(move || async move { Json(jwks) }));
        tokio::spawn(async move { axum::serve(listener, issuer_app).await });

        let service = app(fetch_jwks(&base).await.unwrap());
        let sessions = SessionLayer::new(MemoryStore::default(), Keys::generate().unwrap());
        let issuer = TokenIssuer::new(keys, ISSUER, AUDIENCE).unwrap();
        let tokens = sessionware::token::TokenSessions::new(&sessions, issuer).unwrap();
        let pair = tokens.sign_in("alice").await.unwrap();
        let call = |token: String| {
            let req = Request::get("/whoami").header(header::AUTHORIZATION, format!("Bearer {token}"));
            service.clone().oneshot(req.body(Body::empty()).unwrap())
        };
        let res = call(pair.access_token.clone()).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let body: Value = serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
        assert_eq!(body, json!({ "user": "alice", "sid": pair.sid.to_string() }));
        // A token of another key with the same kid, and a refresh token: refused.
        let other = TokenKeys::new([TokenKey::generate("demo-1", TokenAlgorithm::EdDsa).unwrap()]).unwrap();
        let forged = TokenSessions::new(&sessions, TokenIssuer::new(other, ISSUER, AUDIENCE).unwrap()).unwrap();
        let forged = forged.sign_in("mallory").await.unwrap();
        assert_eq!(call(forged.access_token).await.unwrap().status(), StatusCode::UNAUTHORIZED);
        assert_eq!(call(pair.refresh_token).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    }
}
