//! The guard layers for whole routers: [`RequireSignIn`],
//! [`RequireRecentAuth`] and [`RequireAssurance`], each making a
//! [`Guarded`] service.

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use axum_core::response::{IntoResponse, Response};
use http::Request;
use tower_layer::Layer;
use tower_service::Service;

use super::{extract::Requirement, Challenge};
use crate::{MissingSessionLayer, Session};

/// A layer that lets a request through only when a user is signed in;
/// otherwise it answers with its [`Challenge`] (401, or a redirect to the
/// login page) and the inner service is not called. Put it inside the
/// [`SessionLayer`](crate::SessionLayer), with `Router::route_layer` (so an
/// unknown path still gets 404). The challenge is also given to the
/// [`SignedIn`](super::SignedIn) and [`User`](super::User) extractors of
/// the routes it guards.
///
/// ```
/// use axum::{body::Body, http::Request, routing::get, Router};
/// use sessionware::{guard::RequireSignIn, Keys, SessionLayer, store::MemoryStore};
/// use tower::ServiceExt;
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let layer = SessionLayer::new(MemoryStore::default(), Keys::generate().unwrap());
/// let pages: Router = Router::new()
///     .route("/orders", get(|| async { "orders" }))
///     .route_layer(RequireSignIn::redirect_to("/login"))
///     .layer(layer.clone());
/// let res = pages.oneshot(Request::get("/orders?page=2").body(Body::empty()).unwrap()).await.unwrap();
/// assert_eq!(res.status(), 303);
/// assert_eq!(res.headers()["location"], "/login?next=%2Forders%3Fpage%3D2");
///
/// let api: Router = Router::new()
///     .route("/api/orders", get(|| async { "[]" }))
///     .route_layer(RequireSignIn::api())
///     .layer(layer);
/// let res = api.oneshot(Request::get("/api/orders").body(Body::empty()).unwrap()).await.unwrap();
/// assert_eq!(res.status(), 401);
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct RequireSignIn {
    challenge: Challenge,
}

impl RequireSignIn {
    /// Answer an anonymous request with `401 Unauthorized` (APIs).
    ///
    /// ```
    /// # use sessionware::guard::{Challenge, RequireSignIn};
    /// assert_eq!(RequireSignIn::api().challenge(), &Challenge::unauthorized());
    /// ```
    pub fn api() -> Self {
        Self { challenge: Challenge::unauthorized() }
    }

    /// Answer an anonymous request with `303 See Other` to `login_url`
    /// with a safe `next` ([`Challenge::login`], which says when it panics).
    ///
    /// ```
    /// # use sessionware::guard::RequireSignIn;
    /// assert_eq!(RequireSignIn::redirect_to("/login").challenge().login_url(), Some("/login"));
    /// ```
    pub fn redirect_to(login_url: &'static str) -> Self {
        Self { challenge: Challenge::login(login_url) }
    }

    /// How a denied request is answered.
    ///
    /// ```
    /// # use sessionware::guard::RequireSignIn;
    /// assert_eq!(RequireSignIn::api().challenge().login_url(), None);
    /// ```
    pub fn challenge(&self) -> &Challenge {
        &self.challenge
    }
}

impl<S> Layer<S> for RequireSignIn {
    type Service = Guarded<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Guarded { inner, requirement: Requirement::SignedIn, challenge: self.challenge.clone() }
    }
}

/// A layer that lets a request through only when a user signed in within
/// `max_age` ([`Session::require_recent_auth`], which also counts a request
/// from another client under
/// [`BindingPolicy::RequireReauth`](crate::BindingPolicy::RequireReauth));
/// otherwise it answers with its [`Challenge`]: `401` by default, or a
/// redirect to the login page with [`redirect_to`](Self::redirect_to). An
/// anonymous request is refused as by [`RequireSignIn`]
/// ([`AuthReason::SignedOut`](super::AuthReason::SignedOut)); a stale
/// sign-in with [`AuthReason::ReauthRequired`](super::AuthReason::ReauthRequired).
///
/// ```
/// use std::time::Duration;
/// use axum::{routing::post, Router};
/// use sessionware::guard::RequireRecentAuth;
///
/// let settings: Router = Router::new()
///     .route("/settings/password", post(|| async { "changed" }))
///     .route_layer(RequireRecentAuth::within(Duration::from_secs(300)).redirect_to("/login"));
/// ```
#[derive(Debug, Clone)]
pub struct RequireRecentAuth {
    max_age: Duration,
    challenge: Challenge,
}

impl RequireRecentAuth {
    /// A guard for a sign-in at most `max_age` old, answering `401` (APIs).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use sessionware::guard::RequireRecentAuth;
    /// let guard = RequireRecentAuth::within(Duration::from_secs(300));
    /// assert_eq!(guard.max_age(), Duration::from_secs(300));
    /// assert_eq!(guard.challenge().login_url(), None);
    /// ```
    pub fn within(max_age: Duration) -> Self {
        Self { max_age, challenge: Challenge::unauthorized() }
    }

    /// Answer a denied request with `303 See Other` to `login_url` with a
    /// safe `next` instead ([`Challenge::login`], which says when it panics).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use sessionware::guard::RequireRecentAuth;
    /// let guard = RequireRecentAuth::within(Duration::from_secs(300)).redirect_to("/login");
    /// assert_eq!(guard.challenge().login_url(), Some("/login"));
    /// ```
    pub fn redirect_to(self, login_url: &'static str) -> Self {
        Self { challenge: Challenge::login(login_url), ..self }
    }

    /// The longest a sign-in may be ago.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use sessionware::guard::RequireRecentAuth;
    /// assert_eq!(RequireRecentAuth::within(Duration::from_secs(60)).max_age().as_secs(), 60);
    /// ```
    pub fn max_age(&self) -> Duration {
        self.max_age
    }

    /// How a denied request is answered.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use sessionware::guard::RequireRecentAuth;
    /// assert!(RequireRecentAuth::within(Duration::ZERO).challenge().login_url().is_none());
    /// ```
    pub fn challenge(&self) -> &Challenge {
        &self.challenge
    }
}

impl<S> Layer<S> for RequireRecentAuth {
    type Service = Guarded<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Guarded { inner, requirement: Requirement::RecentAuth(self.max_age), challenge: self.challenge.clone() }
    }
}

/// A layer that lets a request through only when the signed-in user's
/// sign-in reached an assurance level ([`Session::require_assurance`]):
/// multi-factor authentication with [`mfa`](Self::mfa). With
/// [`within`](Self::within) the sign-in (or its last step-up) must also be
/// recent, as for [`RequireRecentAuth`].
///
/// A request is refused with its [`Challenge`] (`401` by default, or a
/// redirect with [`redirect_to`](Self::redirect_to)): anonymous with
/// [`AuthReason::SignedOut`](super::AuthReason::SignedOut), a sign-in below
/// the level with [`AuthReason::StepUpRequired`](super::AuthReason::StepUpRequired)
/// (the level is checked first: a step-up is a fresh authentication too),
/// a stale one with [`AuthReason::ReauthRequired`](super::AuthReason::ReauthRequired).
/// In redirect mode all three go to the same URL, with a safe `next`: the
/// page there asks for a sign-in or for the missing factor
/// ([`Session::step_up`]), as the session's
/// [`authentication`](Session::authentication) says.
///
/// ```
/// use axum::{body::Body, http::Request, routing::{get, post}, Router};
/// use sessionware::{guard::RequireAssurance, AuthMethod, Keys, Session, SessionLayer, SignIn, store::MemoryStore};
/// use tower::ServiceExt;
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let app: Router = Router::new()
///     .route("/billing", get(|| async { "billing" }))
///     .route_layer(RequireAssurance::mfa().redirect_to("/login/second-factor"))
///     .route("/login", post(|s: Session| async move {
///         s.login_with(SignIn::new("alice").method(AuthMethod::Password)).await.unwrap();
///     }))
///     .layer(SessionLayer::new(MemoryStore::default(), Keys::generate().unwrap()));
/// let res = app.clone().oneshot(Request::post("/login").body(Body::empty()).unwrap()).await.unwrap();
/// let cookie = res.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
/// let res = app
///     .oneshot(Request::get("/billing").header("cookie", cookie).body(Body::empty()).unwrap())
///     .await
///     .unwrap();
/// assert_eq!(res.status(), 303); // a password alone is not enough
/// assert_eq!(res.headers()["location"], "/login/second-factor?next=%2Fbilling");
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct RequireAssurance {
    level: crate::Assurance,
    max_age: Option<Duration>,
    challenge: Challenge,
}

impl RequireAssurance {
    /// A guard for a sign-in at `level` or above, answering `401` (APIs).
    ///
    /// ```
    /// # use sessionware::{guard::RequireAssurance, Assurance};
    /// let guard = RequireAssurance::at_least(Assurance::Aal3);
    /// assert_eq!(guard.level(), Assurance::Aal3);
    /// assert_eq!(guard.max_age(), None);
    /// ```
    pub fn at_least(level: crate::Assurance) -> Self {
        Self { level, max_age: None, challenge: Challenge::unauthorized() }
    }

    /// A guard for multi-factor authentication ([`Assurance::Aal2`](crate::Assurance::Aal2)
    /// or above), answering `401` (APIs).
    ///
    /// ```
    /// # use sessionware::{guard::RequireAssurance, Assurance};
    /// assert_eq!(RequireAssurance::mfa().level(), Assurance::Aal2);
    /// ```
    pub fn mfa() -> Self {
        Self::at_least(crate::Assurance::Aal2)
    }

    /// Also requires the sign-in (or its last step-up) to be at most
    /// `max_age` old.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use sessionware::guard::RequireAssurance;
    /// let guard = RequireAssurance::mfa().within(Duration::from_secs(600));
    /// assert_eq!(guard.max_age(), Some(Duration::from_secs(600)));
    /// ```
    pub fn within(self, max_age: Duration) -> Self {
        Self { max_age: Some(max_age), ..self }
    }

    /// Answer a denied request with `303 See Other` to `url` with a safe
    /// `next` instead ([`Challenge::login`], which says when it panics).
    ///
    /// ```
    /// # use sessionware::guard::RequireAssurance;
    /// let guard = RequireAssurance::mfa().redirect_to("/login/mfa");
    /// assert_eq!(guard.challenge().login_url(), Some("/login/mfa"));
    /// ```
    pub fn redirect_to(self, url: &'static str) -> Self {
        Self { challenge: Challenge::login(url), ..self }
    }

    /// The lowest level let through.
    ///
    /// ```
    /// # use sessionware::{guard::RequireAssurance, Assurance};
    /// assert!(RequireAssurance::mfa().level().is_multi_factor());
    /// ```
    pub fn level(&self) -> crate::Assurance {
        self.level
    }

    /// The longest the sign-in may be ago, if limited.
    ///
    /// ```
    /// # use sessionware::guard::RequireAssurance;
    /// assert!(RequireAssurance::mfa().max_age().is_none());
    /// ```
    pub fn max_age(&self) -> Option<Duration> {
        self.max_age
    }

    /// How a denied request is answered.
    ///
    /// ```
    /// # use sessionware::guard::RequireAssurance;
    /// assert!(RequireAssurance::mfa().challenge().login_url().is_none());
    /// ```
    pub fn challenge(&self) -> &Challenge {
        &self.challenge
    }
}

impl<S> Layer<S> for RequireAssurance {
    type Service = Guarded<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Guarded {
            inner,
            requirement: Requirement::Assurance(self.level, self.max_age),
            challenge: self.challenge.clone(),
        }
    }
}

/// The service of [`RequireSignIn`], [`RequireRecentAuth`] and
/// [`RequireAssurance`]: checks the
/// request's session, then calls the inner service with the guard's
/// [`Challenge`] in the request extensions, or answers the denial itself.
#[derive(Debug, Clone)]
pub struct Guarded<S> {
    inner: S,
    requirement: Requirement,
    challenge: Challenge,
}

impl<S, B> Service<Request<B>> for Guarded<S>
where
    S: Service<Request<B>, Error = Infallible> + Clone + Send + 'static,
    S::Response: IntoResponse,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        // The service polled ready is the one called; the clone waits.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let requirement = self.requirement;
        let challenge = self.challenge.clone();
        Box::pin(async move {
            let Some(session) = Session::from_request(&req) else {
                tracing::error!(target: "sessionware", "an auth guard wraps a route but no SessionLayer wraps the guard");
                return Ok(MissingSessionLayer.into_response());
            };
            match requirement.check(&session).await {
                Ok(_) => {
                    req.extensions_mut().insert(challenge);
                    Ok(inner.call(req).await?.into_response())
                }
                Err(reason) => Ok(challenge.deny(reason, req.method(), req.uri(), req.extensions()).into_response()),
            }
        })
    }
}
