//! Typed errors: configuration, store and session errors.

use std::fmt;

/// A store backend failed.
///
/// Store errors never carry secrets: backends must not put session IDs,
/// connection strings or passwords into them. The `Display` text is meant for
/// logs, never for HTTP responses (the layer answers with a generic response).
///
/// ```
/// use sessionware::store::StoreError;
/// let err = StoreError::Backend("connection refused".into());
/// assert!(err.to_string().contains("connection refused"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend could not be reached or answered with an error.
    #[error("session store backend error: {0}")]
    Backend(String),
    /// The call did not finish within the configured store timeout.
    #[error("session store call timed out")]
    Timeout,
    /// A record could not be encoded or decoded.
    #[error("session record could not be encoded or decoded: {0}")]
    Codec(String),
    /// The store is full (for example [`MemoryStore`](crate::store::MemoryStore)'s
    /// maximum number of sessions was reached); no new session is created.
    #[error("session store is at capacity")]
    Capacity,
    /// The change would make the stored data larger than its
    /// [`ChangeSet::max_data_bytes`](crate::ChangeSet::max_data_bytes) cap;
    /// nothing was changed.
    #[error("session data would exceed its size cap")]
    TooLarge,
}

/// An error seen by a handler or by the layer while using a session.
///
/// It implements axum's `IntoResponse` (feature `axum`): a handler can return
/// `Result<_, SessionError>` and use `?` on session calls. The response body is
/// generic and never reveals store details.
///
/// ```
/// use sessionware::{SessionError, store::StoreError};
/// let err = SessionError::Load(StoreError::Timeout);
/// assert!(err.is_store_failure());
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The store failed while loading the session: the request fails closed.
    #[error("session could not be loaded: {0}")]
    Load(#[source] StoreError),
    /// The store failed while saving the session's changes.
    #[error("session could not be saved: {0}")]
    Save(#[source] StoreError),
    /// An earlier load of this request's session failed; every later access
    /// fails too (the handler never sees a fresh anonymous session instead).
    #[error("session is unavailable because loading it failed earlier in this request")]
    Unavailable,
    /// A value could not be serialized into, or deserialized from, the session.
    #[error("session value could not be (de)serialized: {0}")]
    Serde(#[from] serde_json::Error),
    /// A stored value does not deserialize into the type asked for (a type
    /// changed in a deploy, or a read with the wrong type). The value stays
    /// stored. [`Undecodable::Absent`](crate::Undecodable::Absent) reads it
    /// as absent instead. The message names the key; the source (serde's
    /// error, which may quote part of the value) is kept apart.
    #[error("session value {key:?} could not be deserialized into the requested type")]
    Undecodable {
        /// The session key.
        key: String,
        /// Why it did not deserialize.
        #[source]
        source: serde_json::Error,
    },
    /// The serialized session data would exceed the configured maximum size.
    #[error("session data would exceed the configured maximum of {max} bytes")]
    TooLarge {
        /// The configured limit, in bytes.
        max: usize,
    },
    /// A session key is empty, longer than 256 bytes, or under the crate's
    /// reserved prefix `__sessionware.` (its own keys, such as the CSRF secret).
    #[error("session key is empty, too long or reserved")]
    InvalidKey,
    /// The response was already sent (the layer committed the session), so
    /// the session can no longer change: a handle kept by a spawned task
    /// after the response, for example.
    #[error("the session was already committed with the response")]
    Committed,
    /// The operating system's random number generator failed.
    #[error("the operating system random number generator failed")]
    Rng,
    /// The request has no session: the `SessionLayer` is not installed on this route.
    #[error("no session layer is installed for this request")]
    MissingLayer,
    /// The last authentication is older than the allowed maximum age.
    #[error("recent authentication is required")]
    ReauthRequired,
    /// The session's exclusive lock could not be acquired in time.
    #[error("the session is locked by another request")]
    LockTimeout,
    /// The operation needs a logged-in user.
    #[error("no user is logged in")]
    NotAuthenticated,
    /// A store call outside the request's load or save failed (listing or
    /// revoking sessions, locking).
    #[error("session store call failed: {0}")]
    Store(#[source] StoreError),
    /// The layer was built over a store without this capability
    /// ([`SessionLayer::with_capabilities`](crate::SessionLayer::with_capabilities)),
    /// so the call that needs it cannot be made.
    #[error("the session layer's store does not provide {0}")]
    Unsupported(crate::store::Capability),
    /// A login was refused: the user already has the most live sessions
    /// allowed ([`max_sessions_per_user`](crate::SessionConfigBuilder::max_sessions_per_user)
    /// with [`LimitPolicy::RefuseNew`](crate::LimitPolicy::RefuseNew)).
    /// Nobody was signed in, and the client keeps the session (and the
    /// cookie) it had. It is found when the response is sent, so it reaches
    /// the client through [`on_save_error`](crate::SessionLayer::on_save_error)
    /// (409 Conflict by default): show a page that says the account is
    /// signed in on too many devices and how to sign out of one (for
    /// example from a device that is signed in, with
    /// [`Session::sessions`](crate::Session::sessions) and
    /// [`revoke`](crate::Session::revoke)), and offer to try again.
    #[error("the user already has the most sessions allowed ({max})")]
    TooManySessions {
        /// The configured limit.
        max: usize,
    },
}

impl SessionError {
    /// True when the error comes from the store (load, save or an earlier failed load).
    ///
    /// ```
    /// use sessionware::SessionError;
    /// assert!(!SessionError::InvalidKey.is_store_failure());
    /// ```
    pub fn is_store_failure(&self) -> bool {
        matches!(self, Self::Load(_) | Self::Save(_) | Self::Unavailable | Self::Store(_))
    }

    /// The HTTP status this error maps to by default.
    ///
    /// ```
    /// use sessionware::{SessionError, store::StoreError};
    /// assert_eq!(SessionError::Load(StoreError::Timeout).status().as_u16(), 503);
    /// assert_eq!(SessionError::TooManySessions { max: 2 }.status().as_u16(), 409);
    /// ```
    pub fn status(&self) -> http::StatusCode {
        use http::StatusCode;
        match self {
            Self::Load(_) | Self::Unavailable | Self::Store(_) | Self::LockTimeout => StatusCode::SERVICE_UNAVAILABLE,
            Self::ReauthRequired | Self::NotAuthenticated => StatusCode::UNAUTHORIZED,
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::TooManySessions { .. } => StatusCode::CONFLICT,
            Self::InvalidKey => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
impl axum_core::response::IntoResponse for SessionError {
    fn into_response(self) -> axum_core::response::Response {
        let status = self.status();
        let mut res = (status, status.canonical_reason().unwrap_or("error")).into_response();
        res.extensions_mut().insert(SharedError::from(self));
        res
    }
}

/// A cloneable wrapper of a [`SessionError`], put into the extensions of every
/// response that the layer answered with an error, so outer layers can inspect it.
///
/// ```
/// use sessionware::{SessionError, SharedError};
/// let shared = SharedError::from(SessionError::Committed);
/// assert!(matches!(shared.error(), SessionError::Committed));
/// ```
#[derive(Clone)]
pub struct SharedError(std::sync::Arc<SessionError>);

impl SharedError {
    /// The error.
    ///
    /// ```
    /// # use sessionware::{SessionError, SharedError};
    /// let e = SharedError::from(SessionError::Rng);
    /// assert_eq!(e.error().status().as_u16(), 500);
    /// ```
    pub fn error(&self) -> &SessionError {
        &self.0
    }
}

impl From<SessionError> for SharedError {
    fn from(e: SessionError) -> Self {
        Self(std::sync::Arc::new(e))
    }
}

impl fmt::Debug for SharedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for SharedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// The session configuration was rejected.
///
/// ```
/// use sessionware::SessionConfig;
/// let err = SessionConfig::builder().cookie_name("__Host-sid").domain("example.com").build();
/// assert!(err.is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The cookie name is empty or has characters outside the RFC 6265bis token grammar.
    #[error("invalid cookie name")]
    InvalidName,
    /// The cookie path is not a valid path attribute value (must start with `/`, no `;`, CTLs).
    #[error("invalid cookie path")]
    InvalidPath,
    /// The cookie domain is not a valid domain attribute value.
    #[error("invalid cookie domain")]
    InvalidDomain,
    /// A `__Host-` name needs `Secure`, `Path=/` and no `Domain`.
    #[error("a __Host- cookie needs Secure, Path=/ and no Domain")]
    HostPrefix,
    /// A `__Secure-` name needs `Secure`.
    #[error("a __Secure- cookie needs Secure")]
    SecurePrefix,
    /// A `Domain` attribute is only allowed with a `__Secure-` name.
    #[error("a Domain attribute needs a __Secure- cookie name")]
    DomainNeedsSecurePrefix,
    /// `SameSite=None` needs `Secure` and the explicit cross-site opt-in.
    #[error("SameSite=None needs Secure and allow_cross_site()")]
    SameSiteNone,
    /// A timeout is zero, or the idle timeout is longer than the absolute timeout.
    #[error("invalid timeouts: {0}")]
    Timeouts(&'static str),
    /// The touch share is not within `0.0..=1.0`.
    #[error("touch_after must be within 0.0..=1.0")]
    TouchShare,
    /// A size limit is zero or too large.
    #[error("invalid limit: {0}")]
    Limit(&'static str),
    /// A trusted origin is not `scheme://host[:port]` (`http` or `https`).
    #[error("invalid trusted origin {0:?}: expected scheme://host[:port]")]
    InvalidOrigin(String),
    /// A cross-origin exemption is not `/path` or `/prefix/*`.
    #[error("invalid cross-origin exemption {0:?}: expected /path or /prefix/*")]
    InvalidExemption(String),
    /// The header transport's name is one a browser sets itself, a
    /// CORS-safelisted one, or one with an HTTP meaning of its own
    /// (see [`Transport::Header`](crate::Transport::Header)).
    #[error("header {0:?} cannot carry the session")]
    InvalidHeaderName(String),
    /// A `Partitioned` cookie needs `Secure`.
    #[error("a Partitioned cookie needs Secure")]
    PartitionedNeedsSecure,
    /// A trusted proxy is neither an IP address nor a CIDR range.
    #[error("invalid trusted proxy {0:?}: expected an IP address or a CIDR range")]
    InvalidProxy(String),
    /// A key listed by `keep_on_login` is one of the crate's own (the
    /// `__sessionware.` prefix: the CSRF secret), which a login always drops.
    #[error("keep_on_login cannot keep {0:?}: keys under `__sessionware.` belong to the crate")]
    ReservedKey(String),
    /// The configuration asks for something the layer's store cannot do: the
    /// per-user session limit (`max_sessions_per_user`) needs
    /// [`UserIndex`](crate::store::UserIndex). Found when the layer is built
    /// ([`SessionLayer::try_with_config`](crate::SessionLayer::try_with_config)),
    /// never as a failing request.
    #[error("{setting} needs a store with {capability}")]
    MissingCapability {
        /// The builder setting that needs it.
        setting: &'static str,
        /// What the store lacks.
        capability: crate::store::Capability,
    },
}

/// A key or key ring was rejected.
///
/// ```
/// use sessionware::Key;
/// assert!(Key::try_from_bytes(&[7u8; 64]).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key is shorter than 32 bytes.
    #[error("a key must be at least 32 bytes long")]
    TooShort,
    /// The key has too little variety to be random (for example all bytes equal).
    #[error("the key looks degenerate (not random)")]
    Degenerate,
    /// The key ring is empty.
    #[error("the key ring is empty")]
    Empty,
    /// Two keys of the ring share a key id (or the same key is listed twice).
    #[error("two keys in the ring have the same key id")]
    DuplicateKeyId,
    /// A key was not valid base64.
    #[error("a key is not valid base64")]
    Base64,
    /// The environment variable is missing or not valid unicode.
    #[error("environment variable {0} is not set")]
    MissingEnv(String),
    /// The operating system's random number generator failed.
    #[error("the operating system random number generator failed")]
    Rng,
}
