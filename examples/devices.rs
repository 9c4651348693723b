//! A devices page: the signed-in user's sessions (one per browser or
//! device), with "sign out" for one of them and "sign out all other
//! devices".
//!
//! Run it with `cargo run --example devices`, sign in at
//! <http://127.0.0.1:3000/login/alice> (a `POST`; see the `login` example for a
//! real form) from two browsers and open `/devices`. `cargo test --example
//! devices` runs its test module (the example itself, without the tests, is
//! under 80 lines).

use std::io::IsTerminal;

use axum::{
    extract::Path,
    response::{Html, Redirect},
    routing::{get, post},
    Router,
};
use sessionware::guard::{RequireSignIn, SignedIn};
use sessionware::{store::MemoryStore, Keys, Session, SessionConfig, SessionError, SessionHandle, SessionLayer};

async fn login(session: Session, Path(user): Path<String>) -> Result<Redirect, SessionError> {
    session.login(user).await?; // after checking a password, in a real app
    Ok(Redirect::to("/devices"))
}

async fn devices(user: SignedIn, session: Session) -> Result<Html<String>, SessionError> {
    let mut page = format!("<h1>{}'s devices</h1><ul>", user.user_id());
    for info in session.sessions().await? {
        // A handle names a session without being its ID: safe to put in a page.
        let agent = info.user_agent.unwrap_or_default().replace('&', "&amp;").replace('<', "&lt;");
        let this = if info.current { " (this device)" } else { "" };
        page += &format!(
            r#"<li>{agent}{this} <form method="post" action="/devices/{}/revoke"><button>Sign out</button></form></li>"#,
            info.handle
        );
    }
    page += r#"</ul><form method="post" action="/devices/sign-out-others"><button>Sign out all other devices</button></form>"#;
    Ok(Html(page))
}

async fn revoke(session: Session, Path(handle): Path<SessionHandle>) -> Result<Redirect, SessionError> {
    // Only a session of the signed-in user can be revoked: another user's
    // handle is `false`, nothing ended.
    session.revoke(&handle).await?;
    Ok(Redirect::to("/devices"))
}

async fn sign_out_others(session: Session) -> Result<Redirect, SessionError> {
    session.revoke_others().await?;
    Ok(Redirect::to("/devices"))
}

fn app(sessions: SessionLayer) -> Router {
    Router::new()
        .route("/devices", get(devices))
        .route("/devices/{handle}/revoke", post(revoke))
        .route("/devices/sign-out-others", post(sign_out_others))
        .route_layer(RequireSignIn::redirect_to("/login"))
        .route("/login/{user}", post(login))
        .layer(sessions)
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
    use http::{header, Request, Response, StatusCode};
    use tower::ServiceExt;

    use super::*;

    async fn send(app: &Router, method: &str, uri: &str, cookie: &str, agent: &str) -> Response<Body> {
        let req = Request::builder().method(method).uri(uri).header(header::COOKIE, cookie);
        let req = req.header(header::USER_AGENT, agent).body(Body::empty()).unwrap();
        app.clone().oneshot(req).await.unwrap()
    }

    /// Signs `user` in from a browser called `agent`: its cookie.
    async fn sign_in(app: &Router, user: &str, agent: &str) -> String {
        let res = send(app, "POST", &format!("/login/{user}"), "", agent).await;
        res.headers()[header::SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_string()
    }

    /// The devices page, or `None` when the guard sent the browser to the login.
    async fn page(app: &Router, cookie: &str) -> Option<String> {
        let res = send(app, "GET", "/devices", cookie, "any").await;
        if res.status() == StatusCode::SEE_OTHER {
            return None;
        }
        Some(String::from_utf8(to_bytes(res.into_body(), 1 << 16).await.unwrap().to_vec()).unwrap())
    }

    /// The revoke URLs on a page, the current device's first.
    fn revoke_urls(page: &str) -> Vec<String> {
        let mut urls: Vec<(bool, String)> = page
            .split("<li>")
            .skip(1)
            .map(|li| (!li.contains("(this device)"), li.split('"').nth(3).unwrap().to_string()))
            .collect();
        urls.sort();
        urls.into_iter().map(|(_, url)| url).collect()
    }

    #[tokio::test]
    async fn list_revoke_one_and_sign_out_the_others() {
        let app = app(SessionLayer::new(MemoryStore::default(), Keys::generate().unwrap()));
        let laptop = sign_in(&app, "alice", "Laptop").await;
        let phone = sign_in(&app, "alice", "Phone").await;
        let tablet = sign_in(&app, "alice", "Tablet").await;
        let list = page(&app, &laptop).await.unwrap();
        assert!(list.contains("Laptop (this device)") && list.contains("Phone") && list.contains("Tablet"), "{list}");
        // Revoke the phone by its handle: it is signed out, the others not.
        let phone_url = revoke_urls(&page(&app, &phone).await.unwrap()).remove(0);
        assert_eq!(send(&app, "POST", &phone_url, &laptop, "Laptop").await.status(), StatusCode::SEE_OTHER);
        assert_eq!(page(&app, &phone).await, None);
        assert!(page(&app, &tablet).await.is_some());
        // Sign out the others: the tablet is signed out, the laptop stays.
        send(&app, "POST", "/devices/sign-out-others", &laptop, "Laptop").await;
        assert_eq!(page(&app, &tablet).await, None);
        let list = page(&app, &laptop).await.unwrap();
        assert_eq!(revoke_urls(&list).len(), 1, "{list}");
    }

    #[tokio::test]
    async fn another_users_device_cannot_be_signed_out() {
        let app = app(SessionLayer::new(MemoryStore::default(), Keys::generate().unwrap()));
        let alice = sign_in(&app, "alice", "Alice").await;
        let mallory = sign_in(&app, "mallory", "Mallory").await;
        let alice_url = revoke_urls(&page(&app, &alice).await.unwrap()).remove(0);
        send(&app, "POST", &alice_url, &mallory, "Mallory").await;
        assert!(page(&app, &alice).await.unwrap().contains("Alice (this device)"));
        // Signed out, the page is behind the guard.
        assert_eq!(page(&app, "").await, None);
    }
}
