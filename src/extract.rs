//! The axum extractor for [`Session`] (feature `axum`).

use axum_core::extract::FromRequestParts;
use http::request::Parts;

use crate::{Session, SessionError};

/// Extracts the request's [`Session`]; fails with
/// [`SessionError::MissingLayer`] (500) when no [`SessionLayer`](crate::SessionLayer)
/// wraps the route. Extraction itself does no store I/O. It records the
/// request's user agent and address (the socket peer from `ConnectInfo`, or
/// `X-Forwarded-For` behind a
/// [trusted proxy](crate::SessionConfigBuilder::trusted_proxies)) for
/// [`Session::login`], which keeps them in the session's metadata.
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
    type Rejection = SessionError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let session = parts.extensions.get::<Session>().cloned().ok_or(SessionError::MissingLayer)?;
        session.observe(&parts.headers, &parts.extensions);
        Ok(session)
    }
}
