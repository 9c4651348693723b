//! Typed errors: configuration, store and session errors.

use std::fmt;

/// A store backend failed.
///
/// Store errors never carry secrets: backends must not put session IDs,
/// connection strings or passwords into them. The `Display` text is meant for
/// logs, never for HTTP responses (the layer answers with a generic response).
///
/// `Debug` prints the same text as `Display` (a `main` that returns the
/// error prints its `Debug`), so both say what failed and what to do.
///
/// ```
/// use sessionware::store::StoreError;
/// let err = StoreError::Backend("connection refused".into());
/// assert!(err.to_string().contains("connection refused"));
/// assert_eq!(format!("{err:?}"), err.to_string());
/// ```
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend could not be reached or answered with an error.
    #[error("session store backend error: {0}")]
    Backend(String),
    /// A store constructor ([`RedisStore::connect`](crate::store::RedisStore::connect),
    /// `SqlStore::postgres`, `SqlStore::mysql`, `SqlStore::sqlite`) could not
    /// connect. The message names the server's address, never the URL (its
    /// password is never in it), and says what to check. Boxed: store errors
    /// travel on the request path, which this one never does.
    ///
    /// ```
    /// use sessionware::store::{ConnectError, StoreError};
    /// let err = StoreError::Connect(Box::new(ConnectError::new("Redis", "10.0.0.7:6379", "Connection refused")));
    /// assert_eq!(
    ///     err.to_string(),
    ///     "could not connect to the Redis session store at 10.0.0.7:6379 (Connection refused): \
    ///      is the server running and reachable at that address, and are the URL's host, port and \
    ///      credentials right (the URL usually comes from an environment variable such as REDIS_URL)?"
    /// );
    /// if let StoreError::Connect(c) = &err {
    ///     assert_eq!(c.address, "10.0.0.7:6379");
    /// }
    /// ```
    #[error("{0}")]
    Connect(Box<ConnectError>),
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

/// A store could not connect to its server ([`StoreError::Connect`]).
///
/// ```
/// use sessionware::store::ConnectError;
/// let err = ConnectError::new("PostgreSQL", "db.internal:5432", "Connection refused");
/// assert!(err.to_string().starts_with("could not connect to the PostgreSQL session store at db.internal:5432"));
/// assert!(err.to_string().contains("DATABASE_URL"));
/// ```
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
#[error("could not connect to the {store} session store at {address} ({reason}): {}", connect_hint(store))]
pub struct ConnectError {
    /// The kind of server: `"Redis"`, `"PostgreSQL"`, `"MySQL"` or `"SQLite"`.
    pub store: &'static str,
    /// Where it was looked for: `host:port` (several for a cluster), or a
    /// SQLite file's path. Never a password.
    pub address: String,
    /// What the driver said, with any password of the URL removed.
    pub reason: String,
}

impl ConnectError {
    /// The error of a store of kind `store` that could not connect to
    /// `address` (never a URL with its password), for `reason`.
    ///
    /// ```
    /// # use sessionware::store::ConnectError;
    /// assert_eq!(ConnectError::new("Redis", "127.0.0.1:1", "refused").address, "127.0.0.1:1");
    /// ```
    pub fn new(store: &'static str, address: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { store, address: address.into(), reason: reason.into() }
    }
}

/// What to check when a store could not connect ([`StoreError::Connect`]).
fn connect_hint(store: &str) -> &'static str {
    match store {
        "SQLite" => "does the directory exist, and may this process create and write the file there?",
        "Redis" => {
            "is the server running and reachable at that address, and are the URL's host, port and credentials \
             right (the URL usually comes from an environment variable such as REDIS_URL)?"
        }
        _ => {
            "is the server running and reachable at that address, and are the URL's host, port and credentials \
             right (the URL usually comes from an environment variable such as DATABASE_URL)?"
        }
    }
}

/// `host:port` for a [`StoreError::Connect`] message, an IPv6 host in brackets.
#[cfg(any(feature = "redis", feature = "postgres", feature = "mysql"))]
pub(crate) fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// `Debug` as `Display`: a `main` that returns one of these errors prints
/// its `Debug`, which must read as well as the message (what, where, what to
/// do). Match on the variants for the structure.
macro_rules! debug_as_display {
    ($($t:ty),*) => {$(
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }
    )*};
}
debug_as_display!(StoreError, ConnectError, ConfigError, KeyError);

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
    /// An encrypted cookie session ([`CookieSessions`](crate::CookieSessions))
    /// would not fit in its cookie: the whole `Set-Cookie` value would be
    /// `len` bytes, past the `max` (4,096) that browsers keep. Nothing was
    /// set: the client keeps the cookie it had (status 413).
    #[error("the encrypted session cookie would be {len} bytes, past the maximum of {max}")]
    CookieTooLarge {
        /// The size the `Set-Cookie` value would have had, in bytes.
        len: usize,
        /// The most a session cookie may have, in bytes.
        max: usize,
    },
    /// A session data key (the name given to `insert`, `get`, …) is empty,
    /// longer than 256 bytes, or under the crate's
    /// reserved prefix `__sessionware.` (its own keys, such as the CSRF secret).
    #[error("session data key is empty, longer than 256 bytes, or reserved (`__sessionware.` prefix)")]
    InvalidDataKey,
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
    /// A user is signed in, but their sign-in did not reach the assurance
    /// level asked for ([`Session::require_assurance`](crate::Session::require_assurance)):
    /// ask for another factor, then [`Session::step_up`](crate::Session::step_up).
    #[error("a stronger authentication (step-up) is required")]
    StepUpRequired,
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
    /// assert!(!SessionError::InvalidDataKey.is_store_failure());
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
            Self::ReauthRequired | Self::NotAuthenticated | Self::StepUpRequired => StatusCode::UNAUTHORIZED,
            Self::TooLarge { .. } | Self::CookieTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::TooManySessions { .. } => StatusCode::CONFLICT,
            Self::InvalidDataKey => StatusCode::BAD_REQUEST,
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
/// Its message says which rule was broken, by which builder setting, and
/// what to change; `Debug` prints the same text (a `main` that returns the
/// error prints its `Debug`).
///
/// ```
/// use sessionware::SessionConfig;
/// let err = SessionConfig::builder().cookie_name("__Host-sid").domain("example.com").build().unwrap_err();
/// assert!(err.to_string().contains("__Secure-sid"));
/// assert_eq!(format!("{err:?}"), err.to_string());
/// ```
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The cookie name is empty, longer than 64 bytes, or has characters
    /// outside the RFC 6265bis token grammar.
    #[error(
        "invalid cookie name (cookie_name): it must be 1 to 64 letters, digits or `!#$%&'*+-.^_`|~`, such as \
         \"__Host-sid\" or \"sid\""
    )]
    InvalidName,
    /// The cookie path is not a valid path attribute value (must start with `/`, no `;`, CTLs).
    #[error("invalid cookie path")]
    InvalidPath,
    /// The cookie domain is not a valid domain attribute value.
    #[error("invalid cookie domain")]
    InvalidDomain,
    /// A `__Host-` name needs `Secure`, `Path=/` and no `Domain` (browsers
    /// drop the cookie otherwise); `rule` is the one this configuration
    /// breaks. The default name `__Host-sid` never fails with
    /// [`PrefixRule::Secure`]: without `Secure` the default becomes `sid`.
    #[error("{}", host_prefix_message(name, *rule))]
    HostPrefix {
        /// The cookie name, as given to `cookie_name` (or the default).
        name: String,
        /// The rule of the prefix that is broken.
        rule: PrefixRule,
    },
    /// A `__Secure-` name needs `Secure`.
    #[error(
        "the cookie name {name:?} starts with __Secure-, which browsers accept only with the Secure attribute, \
         and dangerous_insecure_cookies() (or development()) drops it: for plain-HTTP development, use \
         SessionConfig::builder().development() and leave cookie_name unset (the name becomes \"sid\"), or choose \
         a name without the prefix"
    )]
    SecurePrefix {
        /// The cookie name.
        name: String,
    },
    /// A `Domain` attribute is only allowed with a `__Secure-` name.
    #[error(
        "domain() shares the cookie with subdomains, which needs a __Secure- cookie name (the name is {name:?}): \
         call cookie_name(\"__Secure-sid\"), or drop domain() for a host-only cookie"
    )]
    DomainNeedsSecurePrefix {
        /// The cookie name.
        name: String,
    },
    /// `SameSite=None` needs `Secure` and the explicit cross-site opt-in.
    #[error(
        "same_site(SameSite::None) sends the cookie on cross-site requests, which needs Secure (no \
         dangerous_insecure_cookies() or development()) and the explicit opt-in allow_cross_site(); \
         keep SameSite::Lax (the default) unless the site is embedded in others"
    )]
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
    #[error(
        "partitioned() needs the Secure attribute, which dangerous_insecure_cookies() (or development()) drops: \
         use one or the other"
    )]
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
    /// A setting that encrypted cookie sessions
    /// ([`SessionLayer::cookie_sessions`](crate::SessionLayer::cookie_sessions))
    /// cannot serve: the header transport (the session lives in the cookie).
    #[error("{setting} is not available on encrypted cookie sessions")]
    NotForCookieSessions {
        /// The builder setting.
        setting: &'static str,
    },
}

/// The rule of the `__Host-` cookie prefix that a configuration breaks
/// ([`ConfigError::HostPrefix`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PrefixRule {
    /// It needs `Secure` (no `dangerous_insecure_cookies()`).
    Secure,
    /// It needs `Path=/` (`path` set elsewhere).
    RootPath,
    /// It allows no `Domain` (`domain` set).
    NoDomain,
}

/// The message of [`ConfigError::HostPrefix`]: the broken rule, and what to change.
fn host_prefix_message(name: &str, rule: PrefixRule) -> String {
    let (what, fix) = match rule {
        PrefixRule::Secure => (
            "the Secure attribute, and dangerous_insecure_cookies() (or development()) drops it",
            "for plain-HTTP development, use SessionConfig::builder().development() and leave cookie_name unset \
             (the name becomes \"sid\"), or choose a name without the prefix, such as \"sid\"",
        ),
        PrefixRule::RootPath => (
            "Path=/, and path() sets another path",
            "keep the default path, or call cookie_name(\"__Secure-sid\") for a cookie scoped to a path",
        ),
        PrefixRule::NoDomain => (
            "no Domain attribute, and domain() sets one",
            "drop domain() for a host-only cookie (the safer choice), or call cookie_name(\"__Secure-sid\") to \
             share it with subdomains",
        ),
    };
    format!("the cookie name {name:?} starts with __Host-, which browsers accept only with {what}: {fix}")
}

/// A key or key ring was rejected.
///
/// Its message says what is wrong, which key (its position in the list,
/// counting from 1, and the environment variable it came from), and how to
/// make a good key (`openssl rand -base64 64`); it never contains key
/// material. `Debug` prints the same text (a `main` that returns the error
/// prints its `Debug`).
///
/// ```
/// use sessionware::{KeyError, KeySource, Keys};
/// let err = Keys::from_base64_list("c2hvcnQ=").unwrap_err();
/// assert_eq!(err, KeyError::TooShort { key: KeySource::List { position: 1 }, len: 5 });
/// assert_eq!(
///     err.to_string(),
///     "key 1 of the list is 5 bytes long (base64-decoded); a key needs at least 32 random bytes: \
///      generate one with `openssl rand -base64 64`"
/// );
/// assert_eq!(format!("{err:?}"), err.to_string());
/// ```
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key is shorter than 32 bytes.
    #[error("{key} is {len} bytes long (base64-decoded); a key needs at least 32 random bytes: {GENERATE}")]
    TooShort {
        /// Which key.
        key: KeySource,
        /// Its length in bytes.
        len: usize,
    },
    /// The key has too little variety to be random (for example all bytes equal).
    #[error("{key} is not random (too few distinct byte values): {GENERATE}")]
    Degenerate {
        /// Which key.
        key: KeySource,
    },
    /// The key ring is empty: no key was given, or the list (or the
    /// variable) holds only commas and spaces.
    #[error("{} holds no key: give at least one; {GENERATE}", ring_name(var.as_deref()))]
    Empty {
        /// The environment variable, when the ring came from one.
        var: Option<String>,
    },
    /// Two keys of the ring share a key id: the same key is listed twice.
    #[error(
        "keys {first} and {second} of {} are the same key: list each key once (the first signs, the others only \
         verify)",
        ring_name(var.as_deref())
    )]
    DuplicateKeyId {
        /// The earlier position, counting from 1.
        first: usize,
        /// The later position, counting from 1.
        second: usize,
        /// The environment variable, when the ring came from one.
        var: Option<String>,
    },
    /// A key is not valid base64 (standard or URL-safe alphabet; padding,
    /// spaces and line breaks are ignored).
    #[error("{key} is not valid base64 (keys are base64, separated by commas): {GENERATE}")]
    Base64 {
        /// Which key.
        key: KeySource,
    },
    /// The environment variable is not set.
    #[error(
        "environment variable {0} is not set: set it to one or more base64 keys separated by commas, such as \
         `export {0}=\"$(openssl rand -base64 64)\"`; for development only, Keys::from_env_or_generate(\"{0}\") \
         generates a key instead (sessions then end when the process does)"
    )]
    MissingEnv(String),
    /// The environment variable is set but not valid unicode.
    #[error("environment variable {0} is not valid unicode: set it to base64 keys separated by commas; {GENERATE}")]
    EnvNotUnicode(String),
    /// The operating system's random number generator failed.
    #[error(
        "the operating system's random number generator failed: the system cannot make secure keys (check the \
         sandbox or container allows getrandom or /dev/urandom)"
    )]
    Rng,
}

/// The advice every message about a bad key ends with.
const GENERATE: &str = "generate one with `openssl rand -base64 64`";

/// How a message names a key ring.
fn ring_name(var: Option<&str>) -> String {
    match var {
        Some(var) => var.to_string(),
        None => "the key ring".to_string(),
    }
}

/// Which key an error is about ([`KeyError`]): where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeySource {
    /// A key made alone ([`Key::from_base64`](crate::Key::from_base64),
    /// [`Key::try_from_bytes`](crate::Key::try_from_bytes)).
    Single,
    /// A key of a list ([`Keys::from_base64_list`](crate::Keys::from_base64_list)).
    List {
        /// Its position in the list, counting from 1.
        position: usize,
    },
    /// A key of the list in an environment variable
    /// ([`Keys::from_env`](crate::Keys::from_env)).
    Env {
        /// The variable's name.
        var: String,
        /// The key's position in the variable's list, counting from 1.
        position: usize,
    },
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Single => f.write_str("the key"),
            Self::List { position } => write!(f, "key {position} of the list"),
            Self::Env { var, position } => write!(f, "key {position} of {var}"),
        }
    }
}

impl KeyError {
    /// The error of the key at `position` (from 1) of a list.
    pub(crate) fn in_list(self, position: usize) -> Self {
        let key = KeySource::List { position };
        match self {
            Self::TooShort { len, .. } => Self::TooShort { key, len },
            Self::Degenerate { .. } => Self::Degenerate { key },
            Self::Base64 { .. } => Self::Base64 { key },
            other => other,
        }
    }

    /// The error of a list read from the environment variable `var`.
    pub(crate) fn in_env(self, var: &str) -> Self {
        let key = |key: KeySource| match key {
            KeySource::List { position } | KeySource::Env { position, .. } => {
                KeySource::Env { var: var.to_string(), position }
            }
            single => single,
        };
        let var = Some(var.to_string());
        match self {
            Self::TooShort { key: k, len } => Self::TooShort { key: key(k), len },
            Self::Degenerate { key: k } => Self::Degenerate { key: key(k) },
            Self::Base64 { key: k } => Self::Base64 { key: key(k) },
            Self::Empty { .. } => Self::Empty { var },
            Self::DuplicateKeyId { first, second, .. } => Self::DuplicateKeyId { first, second, var },
            other => other,
        }
    }
}
