//! The auth extractors: [`SignedIn`] and [`User<U>`](User), with the
//! [`LoadUser`] hook; and the one home of what "signed in" and "recently
//! signed in" mean for a guard ([`Requirement::check`]).

use std::{fmt, future::Future, time::Duration};

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use http::request::Parts;

use super::{AuthReason, AuthRejection, Challenge};
use crate::{Session, SessionError};

/// What a guard asks of the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Requirement {
    /// A user is signed in.
    SignedIn,
    /// A user signed in within this long ([`Session::require_recent_auth`]).
    RecentAuth(Duration),
    /// A user whose sign-in reached this level ([`Session::require_assurance`]),
    /// and, if given, within this long.
    Assurance(crate::Assurance, Option<Duration>),
}

impl Requirement {
    /// The signed-in user's id if the session meets the requirement.
    pub(crate) async fn check(self, session: &Session) -> Result<String, AuthReason> {
        let user = session.user().await.map_err(AuthReason::Session)?.ok_or(AuthReason::SignedOut)?;
        let (level, max_age) = match self {
            Self::SignedIn => (None, None),
            Self::RecentAuth(max_age) => (None, Some(max_age)),
            Self::Assurance(level, max_age) => (Some(level), max_age),
        };
        // The level first: a step-up is a fresh authentication too.
        if let Some(level) = level {
            match session.require_assurance(level).await {
                Ok(()) => {}
                Err(SessionError::StepUpRequired) => return Err(AuthReason::StepUpRequired),
                Err(SessionError::NotAuthenticated) => return Err(AuthReason::SignedOut),
                Err(e) => return Err(AuthReason::Session(e)),
            }
        }
        if let Some(max_age) = max_age {
            match session.require_recent_auth(max_age).await {
                Ok(()) => {}
                Err(SessionError::ReauthRequired) => return Err(AuthReason::ReauthRequired),
                Err(e) => return Err(AuthReason::Session(e)),
            }
        }
        Ok(user)
    }
}

/// The request's session and its signed-in user, or the rejection (in the
/// mode of the guard around the route, if any).
async fn signed_in(parts: &Parts) -> Result<(Session, String), AuthRejection> {
    let session = crate::extract::session_of(parts).ok_or(SessionError::MissingLayer)?;
    match Requirement::SignedIn.check(&session).await {
        Ok(user) => Ok((session, user)),
        Err(reason) => Err(deny(parts, reason)),
    }
}

fn deny(parts: &Parts, reason: AuthReason) -> AuthRejection {
    Challenge::of(&parts.extensions).deny(reason, &parts.method, &parts.uri, &parts.extensions)
}

/// The signed-in user's id ([`Session::user`]): rejects an anonymous
/// request (no session, an expired or ended one, or no user signed in) with
/// an [`AuthRejection`], a 401 unless a guard around the route redirects.
/// `Option<SignedIn>` is `None` for it instead (and without a
/// [`SessionLayer`](crate::SessionLayer), like `Option<Session>`); both
/// still fail on a store failure.
///
/// ```
/// use axum::{body::Body, http::Request, routing::get, Router};
/// use sessionware::{guard::SignedIn, Keys, SessionLayer, store::MemoryStore};
/// use tower::ServiceExt;
///
/// async fn me(user: SignedIn) -> String {
///     user.user_id().to_string()
/// }
/// async fn home(user: Option<SignedIn>) -> String {
///     user.map_or("guest".into(), SignedIn::into_user_id)
/// }
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let app: Router = Router::new()
///     .route("/me", get(me))
///     .route("/", get(home))
///     .layer(SessionLayer::new(MemoryStore::default(), Keys::generate().unwrap()));
/// let res = app.clone().oneshot(Request::get("/me").body(Body::empty()).unwrap()).await.unwrap();
/// assert_eq!(res.status(), 401);
/// let res = app.oneshot(Request::get("/").body(Body::empty()).unwrap()).await.unwrap();
/// assert_eq!(&axum::body::to_bytes(res.into_body(), 64).await.unwrap()[..], b"guest");
/// # });
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct SignedIn {
    user: String,
}

impl SignedIn {
    /// The user's id, as given to [`Session::login`].
    ///
    /// ```
    /// # use sessionware::guard::SignedIn;
    /// fn greet(user: &SignedIn) -> String { format!("hello {}", user.user_id()) }
    /// ```
    pub fn user_id(&self) -> &str {
        &self.user
    }

    /// The user's id, owned.
    ///
    /// ```
    /// # use sessionware::guard::SignedIn;
    /// fn id(user: SignedIn) -> String { user.into_user_id() }
    /// ```
    pub fn into_user_id(self) -> String {
        self.user
    }
}

impl fmt::Debug for SignedIn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SignedIn").field(&self.user).finish()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for SignedIn {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        signed_in(parts).await.map(|(_, user)| Self { user })
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for SignedIn {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Option<Self>, Self::Rejection> {
        match signed_in(parts).await {
            Ok((_, user)) => Ok(Some(Self { user })),
            Err(r) if matches!(r.reason(), AuthReason::SignedOut | AuthReason::Session(SessionError::MissingLayer)) => {
                Ok(None)
            }
            Err(r) => Err(r),
        }
    }
}

/// The hook that turns the signed-in user's id into the application's own
/// user value, for the [`User<U>`](User) extractor, with the router's
/// state `S` (implement it for the state type, or for any `S` from which
/// your database handle is `FromRef`).
///
/// `Ok(None)`, a user the store no longer has (deleted, disabled), counts
/// as signed out: the extractor ends the session (a logout), so that an id
/// given to a new account later never signs its visitor in, and rejects as
/// for an anonymous request. An error is logged (with its `Display`) and
/// answered with a bare 500.
///
/// ```
/// use sessionware::guard::LoadUser;
///
/// #[derive(Clone)]
/// struct Db; // the application's store
/// struct Account { name: String }
///
/// impl LoadUser<Db> for Account {
///     type Error = std::io::Error;
///     async fn load(user_id: &str, _db: &Db) -> Result<Option<Self>, Self::Error> {
///         Ok((user_id == "alice").then(|| Account { name: "Alice".into() }))
///     }
/// }
/// ```
pub trait LoadUser<S>: Sized + Send {
    /// The hook's failure; its `Display` goes to the log, never to the client.
    type Error: fmt::Display + Send;

    /// The user `user_id` (as given to [`Session::login`]), or `None` if the
    /// application's store no longer has it.
    fn load(user_id: &str, state: &S) -> impl Future<Output = Result<Option<Self>, Self::Error>> + Send;
}

/// The signed-in user as the application's own type `U`, loaded by its
/// [`LoadUser`] hook on each request that extracts it. Rejects as
/// [`SignedIn`] does, and also when the hook no longer finds the user (the
/// session is then ended) or fails (500, logged). `Option<User<U>>` is
/// `None` for an anonymous request or a user no longer found.
///
/// ```
/// use axum::{body::Body, http::Request, routing::get, Router};
/// use sessionware::{guard::{LoadUser, User}, Keys, SessionLayer, store::MemoryStore};
/// use tower::ServiceExt;
///
/// #[derive(Clone)]
/// struct Db;
/// struct Account { name: String }
/// impl LoadUser<Db> for Account {
///     type Error = std::convert::Infallible;
///     async fn load(user_id: &str, _db: &Db) -> Result<Option<Self>, Self::Error> {
///         Ok(Some(Account { name: user_id.to_uppercase() }))
///     }
/// }
///
/// async fn profile(User(account): User<Account>) -> String {
///     account.name
/// }
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let app = Router::new()
///     .route("/profile", get(profile))
///     .layer(SessionLayer::new(MemoryStore::default(), Keys::generate().unwrap()))
///     .with_state(Db);
/// let res = app.oneshot(Request::get("/profile").body(Body::empty()).unwrap()).await.unwrap();
/// assert_eq!(res.status(), 401); // nobody signed in
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct User<U>(pub U);

impl<S: Send + Sync, U: LoadUser<S>> FromRequestParts<S> for User<U> {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let (session, user) = signed_in(parts).await?;
        match U::load(&user, state).await {
            Ok(Some(u)) => Ok(Self(u)),
            Ok(None) => {
                // R44 (ASVS 7.4.2): the account is gone, so is this session; an id
                // given to a new account later never signs this client in.
                session.purge().await?;
                Err(deny(parts, AuthReason::SignedOut))
            }
            Err(e) => {
                tracing::error!(target: "sessionware", error = %e, "the LoadUser hook failed");
                Err(AuthRejection { reason: AuthReason::UserLoad, location: None })
            }
        }
    }
}

impl<S: Send + Sync, U: LoadUser<S>> OptionalFromRequestParts<S> for User<U> {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Option<Self>, Self::Rejection> {
        match <Self as FromRequestParts<S>>::from_request_parts(parts, state).await {
            Ok(user) => Ok(Some(user)),
            Err(r) if matches!(r.reason(), AuthReason::SignedOut | AuthReason::Session(SessionError::MissingLayer)) => {
                Ok(None)
            }
            Err(r) => Err(r),
        }
    }
}
