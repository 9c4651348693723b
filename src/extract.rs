//! The axum extractors (feature `axum`): [`Session`], `Option<Session>` and
//! [`Typed<T>`](Typed) for a [`SessionValue`], and their one rejection,
//! [`MissingSessionLayer`].

use std::{convert::Infallible, fmt};

use axum_core::{
    extract::{FromRequestParts, OptionalFromRequestParts},
    response::{IntoResponse, Response},
};
use http::{request::Parts, StatusCode};

use crate::{Session, SessionError, SessionValue, SharedError, Typed};

/// The rejection of the [`Session`] and [`Typed`] extractors: no
/// [`SessionLayer`](crate::SessionLayer) wraps the route. A bug in the
/// application's setup, never something a client causes, so it is a 500
/// whose body names the fix (it carries no session data). The response
/// also carries [`SessionError::MissingLayer`] as a [`SharedError`] in its
/// extensions, like the layer's other error responses; `?` in a handler
/// returning `Result<_, SessionError>` turns it into that variant.
///
/// Extract `Option<Session>` instead for a route that may run without the
/// layer: it is `None` there, never an error.
///
/// ```
/// use axum::response::IntoResponse;
/// use sessionware::{MissingSessionLayer, SessionError};
///
/// let rejection = MissingSessionLayer::default();
/// assert_eq!(rejection.status(), 500);
/// assert!(rejection.body_text().contains("SessionLayer"));
/// assert_eq!(rejection.into_response().status(), 500);
/// assert!(matches!(SessionError::from(rejection), SessionError::MissingLayer));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub struct MissingSessionLayer;

impl MissingSessionLayer {
    const BODY: &'static str = "Missing session: no sessionware::SessionLayer wraps this route. \
         Add `.layer(SessionLayer::new(store, keys))` to the Router, after the routes that use the session.";

    /// The response body.
    ///
    /// ```
    /// # use sessionware::MissingSessionLayer;
    /// assert!(MissingSessionLayer::default().body_text().starts_with("Missing session"));
    /// ```
    pub fn body_text(&self) -> &'static str {
        Self::BODY
    }

    /// The response status: 500 Internal Server Error.
    ///
    /// ```
    /// # use sessionware::MissingSessionLayer;
    /// assert_eq!(MissingSessionLayer::default().status().as_u16(), 500);
    /// ```
    pub fn status(&self) -> StatusCode {
        StatusCode::INTERNAL_SERVER_ERROR
    }
}

impl fmt::Display for MissingSessionLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(Self::BODY)
    }
}

impl std::error::Error for MissingSessionLayer {}

impl From<MissingSessionLayer> for SessionError {
    fn from(_: MissingSessionLayer) -> Self {
        SessionError::MissingLayer
    }
}

impl IntoResponse for MissingSessionLayer {
    fn into_response(self) -> Response {
        let mut res = (self.status(), Self::BODY).into_response();
        res.extensions_mut().insert(SharedError::from(SessionError::MissingLayer));
        res
    }
}

/// The request's session, recording the request's user agent and socket
/// address (`ConnectInfo`) for [`Session::login`], which keeps them in the
/// session's metadata. `None` without a layer.
pub(crate) fn session_of(parts: &Parts) -> Option<Session> {
    let session = parts.extensions.get::<Session>()?.clone();
    session.observe(&parts.headers, &parts.extensions);
    Some(session)
}

/// Extracts the request's [`Session`]; fails with [`MissingSessionLayer`]
/// (500) when no [`SessionLayer`](crate::SessionLayer) wraps the route.
/// Extraction itself does no store I/O. It records the request's user agent
/// and address (the socket peer from `ConnectInfo`, or `X-Forwarded-For`
/// behind a [trusted proxy](crate::SessionConfigBuilder::trusted_proxies))
/// for [`Session::login`], which keeps them in the session's metadata.
///
/// ```
/// use axum::{routing::get, Router};
/// use sessionware::{Keys, Session, SessionError, SessionLayer, store::MemoryStore};
///
/// async fn whoami(session: Session) -> Result<String, SessionError> {
///     Ok(session.user().await?.unwrap_or_else(|| "anonymous".into()))
/// }
/// let app: Router = Router::new()
///     .route("/me", get(whoami))
///     .layer(SessionLayer::new(MemoryStore::default(), Keys::generate().unwrap()));
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = MissingSessionLayer;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        session_of(parts).ok_or_else(|| {
            tracing::error!(target: "sessionware", "a handler extracts Session but no SessionLayer wraps the route");
            MissingSessionLayer
        })
    }
}

/// `Option<Session>`: the session, or `None` when no
/// [`SessionLayer`](crate::SessionLayer) wraps the route (never an error),
/// for handlers shared by routes with and without the layer.
///
/// ```
/// use axum::{body::Body, http::Request, routing::get, Router};
/// use sessionware::Session;
/// use tower::ServiceExt;
///
/// async fn greet(session: Option<Session>) -> &'static str {
///     if session.is_some() { "with a session" } else { "without a session" }
/// }
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let app: Router = Router::new().route("/", get(greet)); // no layer
/// let res = app.oneshot(Request::get("/").body(Body::empty()).unwrap()).await.unwrap();
/// let body = axum::body::to_bytes(res.into_body(), 64).await.unwrap();
/// assert_eq!(&body[..], b"without a session");
/// # });
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
impl<S: Send + Sync> OptionalFromRequestParts<S> for Session {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(session_of(parts))
    }
}

/// Extracts a handle on the request's value of type `T`, under
/// [`T::KEY`](SessionValue::KEY) (as [`Session::value`]); fails with
/// [`MissingSessionLayer`] as the [`Session`] extractor does.
///
/// ```
/// use axum::{routing::post, Router};
/// use serde::{Deserialize, Serialize};
/// use sessionware::{Keys, SessionError, SessionLayer, SessionValue, Typed, store::MemoryStore};
///
/// #[derive(Default, Serialize, Deserialize)]
/// struct Cart {
///     items: Vec<u32>,
/// }
/// impl SessionValue for Cart {
///     const KEY: &'static str = "cart";
/// }
///
/// async fn add(cart: Typed<Cart>) -> Result<String, SessionError> {
///     Ok(cart.update(|c| { c.items.push(1); c.items.len() }).await?.to_string())
/// }
/// let app: Router = Router::new()
///     .route("/cart", post(add))
///     .layer(SessionLayer::new(MemoryStore::default(), Keys::generate().unwrap()));
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
impl<S: Send + Sync, T: SessionValue> FromRequestParts<S> for Typed<T> {
    type Rejection = MissingSessionLayer;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Ok(<Session as FromRequestParts<S>>::from_request_parts(parts, state).await?.value())
    }
}
