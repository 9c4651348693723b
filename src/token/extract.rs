//! The axum extractors: [`AccessClaims`] and `Option<AccessClaims>`.

use std::convert::Infallible;

use axum_core::{
    extract::{FromRequestParts, OptionalFromRequestParts},
    response::{IntoResponse, Response},
};
use http::{header, request::Parts, HeaderValue, StatusCode};

use super::AccessClaims;

/// The rejection of the [`AccessClaims`] extractor: the request carried no
/// Bearer token (or no [`TokenLayer`](super::TokenLayer) wraps the route).
/// It answers `401` with `WWW-Authenticate: Bearer` (no error code: RFC 6750
/// §3.1 for a request without credentials) and an empty body. Invalid
/// tokens never get this far: the layer refused them.
///
/// ```
/// use axum_core::response::IntoResponse;
/// use sessionware::token::TokenRejection;
/// let res = TokenRejection::default().into_response();
/// assert_eq!(res.status(), 401);
/// assert_eq!(res.headers()["www-authenticate"], "Bearer");
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenRejection;

impl IntoResponse for TokenRejection {
    fn into_response(self) -> Response {
        let mut res = StatusCode::UNAUTHORIZED.into_response();
        res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        res
    }
}

/// The verified claims of the request's access token; refuses a request
/// without one with [`TokenRejection`].
///
/// ```
/// use sessionware::token::AccessClaims;
/// async fn whoami(claims: AccessClaims) -> String {
///     format!("{} {}", claims.sub, claims.sid)
/// }
/// ```
impl<S: Send + Sync> FromRequestParts<S> for AccessClaims {
    type Rejection = TokenRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<AccessClaims>().cloned().ok_or(TokenRejection)
    }
}

/// `Option<AccessClaims>`: `None` for a request without a Bearer token
/// (one with an invalid token never reaches the handler).
///
/// ```
/// use sessionware::token::AccessClaims;
/// async fn greet(claims: Option<AccessClaims>) -> String {
///     claims.map_or_else(|| "anonymous".into(), |c| c.sub)
/// }
/// ```
impl<S: Send + Sync> OptionalFromRequestParts<S> for AccessClaims {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<AccessClaims>().cloned())
    }
}
