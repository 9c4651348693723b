//! Synchronizer CSRF tokens tied to the session (R11, R58–R60, R64):
//! [`Session::csrf_token`], [`Session::verify_csrf`] and the
//! [`CsrfLayer`] that checks them before the handler runs.
//!
//! # What it defends
//!
//! Cross-site request forgery: a page on another site makes the browser
//! send a state-changing request to this one, and the browser attaches the
//! session cookie. Each session gets a random secret (256 bits from the OS
//! CSPRNG) kept in its data under a reserved key that handlers can neither
//! read nor write. A page carries a *token*, `base64url(mask ‖ (secret XOR
//! mask))` under a fresh random mask per call, so that no two pages carry
//! the same text and a token cannot be recovered through compression
//! (BREACH). A forged request cannot carry a valid token: the attacker's
//! page cannot read this site's pages, and a token of another session
//! (the attacker's own) does not verify (R59). Tokens are taken only from a
//! header or a form field, never from the query string or a cookie (R60),
//! and are compared in constant time.
//!
//! # Its lifecycle
//!
//! - Created by the first [`csrf_token`](Session::csrf_token) call. On a
//!   request without a session, that creates an anonymous one (a
//!   *pre-session*, R64): a login form can carry a token before anyone is
//!   logged in.
//! - Replaced on [`login`](Session::login) and
//!   [`login_keeping`](Session::login_keeping) (a re-authentication of the
//!   same user included, which otherwise keeps the data; keys listed to
//!   survive a login never carry it), on [`renew`](Session::renew) and on
//!   [`credentials_changed`](Session::credentials_changed) (R11): tokens
//!   handed out before are dead, and the next `csrf_token` call makes a new
//!   secret (in the same request too, after the login).
//! - Kept by the layer's periodic renewal
//!   ([`renew_after`](crate::SessionConfigBuilder::renew_after)), so pages
//!   that are open keep working; dropped by
//!   [`purge`](Session::purge) (logout) and [`clear`](Session::clear).
//!
//! # With the cross-origin check
//!
//! The [`SessionLayer`](crate::SessionLayer) already refuses a browser's
//! unsafe request from another origin ([`CrossOrigin`](crate::CrossOrigin),
//! on by default). Tokens are a second, independent defence: they hold for
//! requests the cross-origin check lets through by design (paths exempted
//! from it, trusted origins, a browser that sends none of `Sec-Fetch-Site`,
//! `Origin` and `Referer`) and against a misconfigured proxy. Put
//! [`CsrfLayer`] *inside* the `SessionLayer`: the cross-origin check runs
//! first, then the token check, then the handler.
//!
//! # Limits
//!
//! - A script running on this site's pages (XSS) can read a token: tokens
//!   do not defend against it.
//! - Safe methods (`GET`, `HEAD`, `OPTIONS`, `TRACE`) are never checked: they
//!   must not change state.
//! - A form field is read only from an `application/x-www-form-urlencoded`
//!   body up to the layer's cap; a `multipart/form-data` or JSON request
//!   sends its token in the header.
//! - There is no CSRF cookie (the secret stays in the session), so R63's
//!   `__Host-` cookie rule has nothing to apply to.
//! - **Two first calls at once.** Two concurrent requests of one session
//!   that both call `csrf_token` before the session has a secret each make
//!   one; the store merges per key, so the last write wins and the token
//!   the other request handed out stops verifying. The page that got it
//!   sees one `403` and must fetch a new token. Call `csrf_token` once when
//!   a page is rendered (or in the response that creates the session) to
//!   make it rare; once a secret exists, concurrent calls share it.

mod layer;
mod token;

use std::fmt;

pub use layer::{Csrf, CsrfLayer, ResponseFuture};
use token::Secret;

use crate::{
    lifecycle::state::{Intent, State},
    Session, SessionError,
};

/// The reserved key of the session's CSRF secret in its data (under the
/// prefix that handlers cannot use: see `session/data.rs`).
const SECRET_KEY: &str = "__sessionware.csrf";

/// A masked CSRF token for one page: put it into a form field or send it in
/// a header (see [`CsrfLayer`]). Its text is `base64url` (86 characters),
/// different on every call. `Debug` is redacted (a token is a credential
/// for the page's lifetime); [`Display`](fmt::Display) and
/// [`as_str`](Self::as_str) give the text.
///
/// ```
/// # use sessionware::{Session, SessionError};
/// async fn form(session: Session) -> Result<String, SessionError> {
///     let token = session.csrf_token().await?;
///     assert_eq!(format!("{token:?}"), "CsrfToken(<redacted>)");
///     Ok(format!(r#"<input type="hidden" name="csrf_token" value="{token}">"#))
/// }
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct CsrfToken(String);

impl CsrfToken {
    /// The token's text.
    ///
    /// ```
    /// # use sessionware::{Session, SessionError};
    /// async fn token(session: Session) -> Result<String, SessionError> {
    ///     let token = session.csrf_token().await?;
    ///     assert_eq!(token.as_str().len(), 86);
    ///     Ok(token.as_str().to_owned())
    /// }
    /// ```
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CsrfToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for CsrfToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CsrfToken(<redacted>)")
    }
}

/// Why the [`CsrfLayer`] refused a request.
///
/// ```
/// use sessionware::CsrfReason;
/// assert_eq!(CsrfReason::Invalid.as_str(), "invalid");
/// assert_eq!(CsrfReason::TooLarge.status().as_u16(), 413);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CsrfReason {
    /// No token, on a layer that requires one
    /// ([`require_token`](CsrfLayer::require_token)).
    Missing,
    /// A token that does not verify: wrong, malformed, of another session,
    /// from before a login or renewal, or presented to a request without a
    /// session.
    Invalid,
    /// More than one token (a repeated header or form field): never
    /// resolved by position.
    Duplicate,
    /// A form body past the layer's cap (`413`).
    TooLarge,
    /// The form body could not be read (`400`).
    Unreadable,
}

impl CsrfReason {
    /// The reason as `tracing` and metrics name it.
    ///
    /// ```
    /// assert_eq!(sessionware::CsrfReason::Missing.as_str(), "missing");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Invalid => "invalid",
            Self::Duplicate => "duplicate",
            Self::TooLarge => "too_large",
            Self::Unreadable => "unreadable",
        }
    }

    /// The status of the refusal: `413` for a body past the cap, `400` for
    /// one that could not be read, `403` otherwise.
    ///
    /// ```
    /// assert_eq!(sessionware::CsrfReason::Missing.status().as_u16(), 403);
    /// ```
    pub fn status(self) -> http::StatusCode {
        match self {
            Self::TooLarge => http::StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unreadable => http::StatusCode::BAD_REQUEST,
            Self::Missing | Self::Invalid | Self::Duplicate => http::StatusCode::FORBIDDEN,
        }
    }
}

/// The typed refusal of the [`CsrfLayer`]: the response it sends instead of
/// calling the handler carries it in its extensions.
///
/// ```
/// use sessionware::{CsrfReason, CsrfRefused};
/// fn refused(res: &http::Response<()>) -> Option<CsrfReason> {
///     res.extensions().get::<CsrfRefused>().map(|r| r.reason)
/// }
/// assert_eq!(refused(&http::Response::new(())), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("CSRF check refused the request ({})", reason.as_str())]
#[non_exhaustive]
pub struct CsrfRefused {
    /// Why.
    pub reason: CsrfReason,
}

/// Whether the CSRF check applies to this request's session. Sessions that
/// travel in a cookie (ambient credentials) need it; a session presented in
/// a header ([`Transport::Header`](crate::Transport::Header)) is never
/// attached by a browser on its own, so a header layer skips it. Decided by
/// the layer's transport ([`SessionConfig::needs_csrf`](crate::SessionConfig)).
pub(crate) fn applies(session: &Session) -> bool {
    session.shared().config.needs_csrf()
}

/// Drops the session's CSRF secret (a login, a privilege renewal): from the
/// request's view, and, on a renewal, from the stored data the successor is
/// built from (a secret a concurrent request created included). Call it
/// after the transition that decided the renewal.
pub(crate) fn forget_secret(state: &mut State) {
    if let Some(view) = state.view.as_mut() {
        view.data.remove(SECRET_KEY);
    }
    if matches!(state.intent, Intent::Renew(_)) {
        state.changes.remove(SECRET_KEY);
    }
}

impl Session {
    /// A masked CSRF token for a page of this session: a fresh random mask
    /// per call, every token of the session valid until its next login or
    /// [`renew`](Self::renew) (see the module docs of
    /// [`CsrfLayer`]). The session's secret is created by the first call; on
    /// a request without a session, that creates an anonymous one (sent with
    /// the response), so a login form can carry a token (R64).
    ///
    /// # Errors
    ///
    /// A store failure while loading, [`SessionError::Rng`], or
    /// [`SessionError::TooLarge`] when the secret would pass the data cap.
    ///
    /// ```
    /// use sessionware::{Keys, Session, SessionError, SessionLayer, store::MemoryStore};
    /// use tower::{service_fn, Layer, ServiceExt};
    ///
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let svc = SessionLayer::new(MemoryStore::default(), Keys::generate().unwrap()).layer(service_fn(
    ///     |req: http::Request<String>| async move {
    ///         let session = Session::from_request(&req).unwrap();
    ///         let (a, b) = (session.csrf_token().await?, session.csrf_token().await?);
    ///         assert_ne!(a, b, "a fresh mask per call");
    ///         assert!(session.verify_csrf(a.as_str()).await? && session.verify_csrf(b.as_str()).await?);
    ///         Ok::<_, SessionError>(http::Response::new(format!(r#"<input name="csrf_token" value="{a}">"#)))
    ///     },
    /// ));
    /// let res = svc.oneshot(http::Request::new(String::new())).await.unwrap();
    /// assert!(res.headers().contains_key("set-cookie"), "a pre-session was created");
    /// # });
    /// ```
    pub async fn csrf_token(&self) -> Result<CsrfToken, SessionError> {
        let now = self.now();
        let max = self.shared().config.max_data_bytes;
        let secret = {
            let mut state = self.ensure_loaded().await?;
            let stored = state.view.as_ref().and_then(|r| r.data.get(SECRET_KEY)).and_then(Secret::from_raw);
            match stored {
                Some(secret) => secret,
                None => {
                    let secret = Secret::generate()?;
                    let raw = secret.to_raw()?;
                    let record = state.view_or_new(|| self.new_record(now));
                    if record.data.size_with(SECRET_KEY, &raw) > max {
                        return Err(SessionError::TooLarge { max });
                    }
                    record.data.insert(SECRET_KEY, &raw);
                    state.changes.set(SECRET_KEY, raw);
                    state.changed();
                    secret
                }
            }
        };
        secret.mask().map(CsrfToken)
    }

    /// Whether `presented` is a valid CSRF token of this session, compared
    /// in constant time. A malformed token, one of another session, one
    /// from before the session's last login or renewal, and any token on a
    /// session without a secret are `false`; nothing panics. The
    /// [`CsrfLayer`] calls it for you; call it yourself for a token that
    /// arrives another way (a WebSocket message, a JSON field).
    ///
    /// # Errors
    ///
    /// A store failure while loading.
    ///
    /// ```
    /// use sessionware::{Keys, Session, SessionError, SessionLayer, store::MemoryStore};
    /// use tower::{service_fn, Layer, ServiceExt};
    ///
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let svc = SessionLayer::new(MemoryStore::default(), Keys::generate().unwrap()).layer(service_fn(
    ///     |req: http::Request<String>| async move {
    ///         let session = Session::from_request(&req).unwrap();
    ///         assert!(!session.verify_csrf("forged").await?, "no secret yet: nothing verifies");
    ///         let token = session.csrf_token().await?;
    ///         assert!(session.verify_csrf(token.as_str()).await?);
    ///         assert!(!session.verify_csrf(&"A".repeat(86)).await?, "a well-formed forgery");
    ///         session.renew().await?; // a privilege change replaces the secret
    ///         assert!(!session.verify_csrf(token.as_str()).await?);
    ///         Ok::<_, SessionError>(http::Response::new(String::new()))
    ///     },
    /// ));
    /// svc.oneshot(http::Request::new(String::new())).await.unwrap();
    /// # });
    /// ```
    pub async fn verify_csrf(&self, presented: &str) -> Result<bool, SessionError> {
        self.verify_csrf_bytes(presented.as_bytes()).await
    }

    /// [`verify_csrf`](Self::verify_csrf) of a header's or form field's
    /// bytes. A token that has not even the form of one is refused without
    /// loading the session.
    pub(crate) async fn verify_csrf_bytes(&self, presented: &[u8]) -> Result<bool, SessionError> {
        if token::decode(presented).is_none() {
            return Ok(false);
        }
        let state = self.ensure_loaded().await?;
        let secret = state.view.as_ref().and_then(|r| r.data.get(SECRET_KEY)).and_then(Secret::from_raw);
        Ok(secret.is_some_and(|s| s.verify(presented)))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_secret_key_is_reserved() {
        assert!(crate::session::is_reserved(super::SECRET_KEY));
    }
}
