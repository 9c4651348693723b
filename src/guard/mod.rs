//! Auth guards (feature `axum`): who is signed in, and what a route does
//! with a request from nobody.
//!
//! - Extractors: [`SignedIn`] (the user's id) and [`User<U>`](User) (a value
//!   the application loads from its own store through [`LoadUser`]), and
//!   their `Option` forms, which are `None` for an anonymous request.
//! - Layers for whole routers: [`RequireSignIn`], [`RequireRecentAuth`] and
//!   [`RequireAssurance`] (multi-factor authentication, optionally recent).
//! - [`safe_next`] for the login handler: where it may send the user back.
//!
//! How a denied request is answered is the [`Challenge`], chosen when the
//! guard is built: [`Challenge::unauthorized`] (401, for APIs) or
//! [`Challenge::login`] (303 to the login page with a `next` parameter, for
//! HTML). A guard layer also hands its challenge to the extractors of the
//! routes it wraps, so a [`User<U>`](User) whose record is gone redirects
//! too; outside any guard the extractors answer 401, or follow a
//! `Challenge` the application puts into the request extensions itself
//! (`axum::Extension(Challenge::login("/login"))`).
//!
//! ```
//! use axum::{routing::get, Router};
//! use sessionware::{guard::{RequireSignIn, SignedIn}, Keys, SessionLayer, store::MemoryStore};
//!
//! async fn account(user: SignedIn) -> String {
//!     format!("signed in as {}", user.user_id())
//! }
//!
//! let app: Router = Router::new()
//!     .route("/account", get(account))
//!     .route_layer(RequireSignIn::redirect_to("/login"))
//!     .layer(SessionLayer::new(MemoryStore::default(), Keys::generate().unwrap()));
//! ```
//!
//! `route_layer` guards the routes added *before* it, and never the
//! router's fallback (a static-file service, for example): put what must be
//! guarded on routes, or wrap the fallback service in the guard too.
//!
//! A credential change needs no check here: [`Session::credentials_changed`](crate::Session::credentials_changed)
//! moves the user's credential epoch in the store, which ends every other
//! session of the user on its next load, before any guard sees it.

use std::fmt;

use axum_core::response::{IntoResponse, Response};
use http::{header, Extensions, HeaderValue, Method, StatusCode, Uri};

use crate::{MissingSessionLayer, SessionError, SharedError};

mod extract;
mod layer;
mod next;

pub use extract::{LoadUser, SignedIn, User};
pub use layer::{Guarded, RequireAssurance, RequireRecentAuth, RequireSignIn};
pub use next::safe_next;

/// How a guard answers a request it denies (no user signed in, or not
/// recently enough): chosen by the application, never guessed from the
/// request's headers.
///
/// ```
/// use sessionware::guard::Challenge;
///
/// assert_eq!(Challenge::unauthorized().login_url(), None);
/// assert_eq!(Challenge::login("/login").login_url(), Some("/login"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Challenge(Mode);

#[derive(Clone, PartialEq, Eq)]
enum Mode {
    Unauthorized,
    Login(HeaderValue),
}

impl Challenge {
    /// Answer `401 Unauthorized` (APIs): the default.
    ///
    /// ```
    /// # use sessionware::guard::Challenge;
    /// assert_eq!(Challenge::unauthorized(), Challenge::default());
    /// ```
    pub fn unauthorized() -> Self {
        Self(Mode::Unauthorized)
    }

    /// Answer `303 See Other` to `login_url` (HTML pages), with
    /// `next=<the request's path and query>` for a `GET` or `HEAD` whose
    /// path [`safe_next`] accepts (`&next=` if `login_url` has a query).
    /// The path is the request's own (axum's `OriginalUri` inside a nested
    /// router), never taken from a header.
    ///
    /// # Panics
    ///
    /// When `login_url` is empty, has a fragment (`#`) or has a character
    /// outside visible ASCII: a constant of the application, checked when
    /// the guard is built (as `HeaderValue::from_static` does).
    ///
    /// ```
    /// # use sessionware::guard::Challenge;
    /// assert_eq!(Challenge::login("/login?lang=en").login_url(), Some("/login?lang=en"));
    /// assert!(std::panic::catch_unwind(|| Challenge::login("/login#top")).is_err());
    /// ```
    pub fn login(login_url: &'static str) -> Self {
        assert!(
            !login_url.is_empty() && login_url.bytes().all(|c| c.is_ascii_graphic() && c != b'#'),
            "sessionware: the login URL {login_url:?} must be visible ASCII without a fragment"
        );
        Self(Mode::Login(HeaderValue::from_static(login_url)))
    }

    /// The login URL of a redirecting challenge.
    ///
    /// ```
    /// # use sessionware::guard::Challenge;
    /// assert_eq!(Challenge::login("/signin").login_url(), Some("/signin"));
    /// ```
    pub fn login_url(&self) -> Option<&str> {
        match &self.0 {
            Mode::Unauthorized => None,
            Mode::Login(url) => url.to_str().ok(),
        }
    }

    /// The rejection of a request for `reason`: the redirect's `Location`
    /// is decided here, from the request's method and own path.
    pub(crate) fn deny(
        &self,
        reason: AuthReason,
        method: &Method,
        uri: &Uri,
        extensions: &Extensions,
    ) -> AuthRejection {
        let location = match (&self.0, &reason) {
            (Mode::Login(login), AuthReason::SignedOut | AuthReason::ReauthRequired | AuthReason::StepUpRequired) => {
                let uri = extensions.get::<axum::extract::OriginalUri>().map_or(uri, |o| &o.0);
                let target = uri.path_and_query().map_or("/", |p| p.as_str());
                let mut location = next::login_location(login, method, target);
                // The path may carry what the application keeps out of logs.
                location.set_sensitive(true);
                Some(location)
            }
            _ => None,
        };
        AuthRejection { reason, location }
    }

    /// The challenge a guard put into the request's extensions, or 401.
    pub(crate) fn of(extensions: &Extensions) -> Self {
        extensions.get::<Self>().cloned().unwrap_or_default()
    }
}

impl Default for Challenge {
    fn default() -> Self {
        Self::unauthorized()
    }
}

impl fmt::Debug for Challenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Mode::Unauthorized => f.write_str("Challenge::Unauthorized"),
            Mode::Login(url) => f.debug_tuple("Challenge::Login").field(url).finish(),
        }
    }
}

/// Why a guard or an auth extractor refused a request.
#[derive(Debug)]
#[non_exhaustive]
pub enum AuthReason {
    /// No user is signed in (an anonymous, expired or ended session), or the
    /// [`LoadUser`] hook no longer finds the signed-in user.
    SignedOut,
    /// A user is signed in, but not within the guard's maximum age (or from
    /// another client, under
    /// [`BindingPolicy::RequireReauth`](crate::BindingPolicy::RequireReauth)).
    ReauthRequired,
    /// A user is signed in, but their sign-in did not reach the level a
    /// [`RequireAssurance`] guard asks for: a second factor is needed
    /// ([`Session::step_up`](crate::Session::step_up)).
    StepUpRequired,
    /// The [`LoadUser`] hook failed (it was logged; the client gets a bare 500).
    UserLoad,
    /// The session could not be used: a store failure, or no
    /// [`SessionLayer`](crate::SessionLayer) wraps the route
    /// ([`SessionError::MissingLayer`]).
    Session(SessionError),
}

/// The rejection of the auth extractors and guards: a 401, or a 303 to the
/// login page, as the [`Challenge`] says; a 500 when the [`LoadUser`] hook
/// failed (no detail in the body); the session's own error response when
/// the session could not be loaded. A 401 or 303 carries
/// [`SessionError::NotAuthenticated`],
/// [`SessionError::ReauthRequired`] or [`SessionError::StepUpRequired`]
/// as a [`SharedError`] in its
/// extensions, for outer layers.
///
/// ```
/// use axum::response::IntoResponse;
/// use sessionware::{guard::{AuthReason, SignedIn}, Session};
///
/// async fn handler(user: Result<SignedIn, sessionware::guard::AuthRejection>) -> axum::response::Response {
///     match user {
///         Ok(user) => user.user_id().to_string().into_response(),
///         Err(rejection) if matches!(rejection.reason(), AuthReason::SignedOut) => "welcome, guest".into_response(),
///         Err(rejection) => rejection.into_response(),
///     }
/// }
/// ```
#[derive(Debug)]
pub struct AuthRejection {
    reason: AuthReason,
    /// The redirect's target, in login mode, for a signed-out or stale one.
    location: Option<HeaderValue>,
}

impl AuthRejection {
    /// Why the request was refused.
    pub fn reason(&self) -> &AuthReason {
        &self.reason
    }

    /// The status of the response: 303 (a redirect to the login page), 401,
    /// 500 (the hook failed, or no layer), or the session error's own.
    pub fn status(&self) -> StatusCode {
        match (&self.reason, &self.location) {
            (_, Some(_)) => StatusCode::SEE_OTHER,
            (AuthReason::SignedOut | AuthReason::ReauthRequired | AuthReason::StepUpRequired, None) => {
                StatusCode::UNAUTHORIZED
            }
            (AuthReason::UserLoad, None) => StatusCode::INTERNAL_SERVER_ERROR,
            (AuthReason::Session(e), None) => e.status(),
        }
    }

    /// The redirect's `Location` (the login URL with its `next`), if the
    /// response is a redirect.
    pub fn location(&self) -> Option<&str> {
        self.location.as_ref().and_then(|l| l.to_str().ok())
    }
}

impl From<SessionError> for AuthRejection {
    fn from(e: SessionError) -> Self {
        Self { reason: AuthReason::Session(e), location: None }
    }
}

impl fmt::Display for AuthRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.reason {
            AuthReason::SignedOut => f.write_str("sign-in required"),
            AuthReason::ReauthRequired => f.write_str("recent sign-in required"),
            AuthReason::StepUpRequired => f.write_str("stronger sign-in required"),
            AuthReason::UserLoad => f.write_str("the signed-in user could not be loaded"),
            AuthReason::Session(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl std::error::Error for AuthRejection {}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        let status = self.status();
        let (error, body) = match self.reason {
            AuthReason::SignedOut => (SessionError::NotAuthenticated, "Sign-in required"),
            AuthReason::ReauthRequired => (SessionError::ReauthRequired, "Recent sign-in required"),
            AuthReason::StepUpRequired => (SessionError::StepUpRequired, "Stronger sign-in required"),
            AuthReason::UserLoad => return (status, "Internal Server Error").into_response(),
            AuthReason::Session(SessionError::MissingLayer) => return MissingSessionLayer.into_response(),
            AuthReason::Session(e) => return e.into_response(),
        };
        let mut res = match self.location {
            Some(location) => (status, [(header::LOCATION, location)]).into_response(),
            None => (status, body).into_response(),
        };
        res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        res.extensions_mut().insert(SharedError::from(error));
        res
    }
}
