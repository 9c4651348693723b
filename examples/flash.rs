//! Flash messages: a note stored by one request and shown once by the next
//! (`Session::take` reads and removes it in one step), after a
//! post/redirect/get.
//!
//! Run it with `cargo run --example flash` and open <http://127.0.0.1:3000>.
//! `cargo test --example flash` runs its test module (the example itself,
//! without the tests, is under 80 lines).

use std::io::IsTerminal;

use axum::{
    response::{Html, Redirect},
    routing::{get, post},
    Form, Router,
};
use serde::Deserialize;
use sessionware::{store::MemoryStore, Keys, Session, SessionConfig, SessionError, SessionLayer};

const FLASH: &str = "flash";

#[derive(Deserialize)]
struct NewItem {
    name: String,
}

async fn list(session: Session) -> Result<Html<String>, SessionError> {
    // `take`: shown on this page, gone on the next.
    let flash: Option<String> = session.take(FLASH).await?;
    let items: Vec<String> = session.get("items").await?.unwrap_or_default();
    let flash = flash.map(|f| format!("<p class=flash>{}</p>", escape(&f))).unwrap_or_default();
    let items: String = items.iter().map(|i| format!("<li>{}</li>", escape(i))).collect();
    Ok(Html(format!(
        r#"{flash}<ul>{items}</ul><form method="post" action="/items"><input name="name"><button>Add</button></form>"#
    )))
}

async fn add(session: Session, Form(item): Form<NewItem>) -> Result<Redirect, SessionError> {
    let mut items: Vec<String> = session.get("items").await?.unwrap_or_default();
    session.insert(FLASH, format!("Added {}.", item.name)).await?;
    items.push(item.name);
    session.insert("items", items).await?;
    Ok(Redirect::to("/"))
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn app(sessions: SessionLayer) -> Router {
    Router::new().route("/", get(list)).route("/items", post(add)).layer(sessions)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_ansi(std::io::stdout().is_terminal()).init();
    let keys = Keys::from_env_or_generate("SESSION_KEYS")?;
    let sessions = SessionLayer::new(MemoryStore::default(), keys).with_config(SessionConfig::development());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://127.0.0.1:3000");
    axum::serve(listener, app(sessions)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use axum::body::{to_bytes, Body};
    use http::{header, Request, StatusCode};
    use tower::ServiceExt;

    use super::*;

    /// The page's HTML for the browser holding `cookie`.
    async fn page(app: &Router, cookie: &str) -> String {
        let req = Request::get("/").header(header::COOKIE, cookie).body(Body::empty()).unwrap();
        let res = app.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        String::from_utf8(to_bytes(res.into_body(), 4096).await.unwrap().to_vec()).unwrap()
    }

    #[tokio::test]
    async fn the_flash_shows_once_and_the_items_stay() {
        let layer = SessionLayer::new(MemoryStore::default(), Keys::generate().unwrap())
            .with_config(SessionConfig::development());
        let app = app(layer);
        let req = Request::post("/items")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from("name=%3Cb%3Etea"))
            .unwrap();
        let res = app.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        let cookie = res.headers()[header::SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_string();
        let first = page(&app, &cookie).await;
        assert!(first.contains("<p class=flash>Added &lt;b&gt;tea.</p>"), "{first}");
        let second = page(&app, &cookie).await;
        assert!(!second.contains("flash"), "the flash is gone after one showing: {second}");
        assert!(second.contains("<li>&lt;b&gt;tea</li>"), "{second}");
        // Another browser never sees it.
        assert!(!page(&app, "").await.contains("Added"));
    }
}
