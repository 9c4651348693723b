//! Lifecycle events, two ways: `tracing` output (target `sessionware`) and,
//! for monitoring and alerts, a hook that receives typed [`Event`]s
//! ([`SessionLayer::on_event`](crate::SessionLayer::on_event)).
//!
//! Every event names the session by a short fingerprint of its storage
//! digest, never by its ID. Client-driven events (rejected tokens, unknown,
//! retired or expired sessions, creation) are `DEBUG` in `tracing`, the
//! security-relevant lifecycle (renewal, login, purge, revocation, and the
//! evictions and refusals of the per-user session limit) is `INFO`, as is a
//! stored value read as absent because it no longer deserializes (its key
//! only), and store failures are `ERROR`: nothing a client sends can flood
//! warn-level logs.
//!
//! With the `metrics` feature, every event also counts in
//! `sessionware_events_total` (labels `kind` and `reason`), and every store
//! call's latency goes to the `sessionware_store_seconds` histogram (label
//! `op`).

use std::{
    fmt,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use crate::StorageKey;

/// The hook that receives lifecycle events; see
/// [`SessionLayer::on_event`](crate::SessionLayer::on_event). It runs inline
/// on the request's task: keep it short (count, log, or send to a channel).
///
/// ```
/// use std::sync::Arc;
/// use sessionware::{Event, EventHook};
/// let hook: EventHook = Arc::new(|event: &Event| println!("{:?}", event.kind));
/// ```
pub type EventHook = Arc<dyn Fn(&Event) + Send + Sync>;

/// One lifecycle event.
///
/// ```
/// use sessionware::{Event, EventKind};
/// fn alert(event: &Event) -> bool {
///     matches!(event.kind, EventKind::Revoked { .. } | EventKind::StoreError { .. })
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Event {
    /// What happened.
    pub kind: EventKind,
    /// A short, non-secret fingerprint of the session's storage digest
    /// ([`StorageKey::fingerprint`]); `None` when no session is known (a
    /// cookie that did not verify).
    pub session: Option<String>,
    /// The session's user, where the layer knows it.
    pub user: Option<String>,
    /// The request's method.
    pub method: Option<http::Method>,
    /// The request's path (without the query).
    pub path: Option<String>,
    /// When it happened (the request's time).
    pub at: SystemTime,
    /// The session data key an [`EventKind::Undecodable`] is about (its
    /// name only, never the value); `None` for other kinds.
    pub data_key: Option<String>,
}

/// What happened to a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EventKind {
    /// A new anonymous session was created.
    Created,
    /// A user logged in (a new session, or a renewal of the visitor's).
    LoggedIn,
    /// A session got a new ID.
    Renewed(RenewReason),
    /// A session was ended by a logout.
    Purged,
    /// A session was found past a deadline.
    Expired(Deadline),
    /// A presented session token was refused.
    Rejected(RejectReason),
    /// Sessions of a user were ended by another of their sessions
    /// (`revoke`, `revoke_others`).
    Revoked {
        /// How many sessions were ended.
        count: usize,
    },
    /// [`Session::lock`](crate::Session::lock) gave up waiting.
    LockTimeout,
    /// A store call failed.
    StoreError {
        /// The store operation.
        op: &'static str,
    },
    /// A request's change was not saved because another request ended or
    /// renewed the session first.
    WriteDropped,
    /// A browser's state-changing request from another origin was refused
    /// before the handler ran (see [`CrossOrigin`](crate::CrossOrigin)).
    CrossOriginRefused(crate::CrossOriginReason),
    /// Sessions were ended at once by a cutoff
    /// ([`Session::credentials_changed`](crate::Session::credentials_changed),
    /// [`SessionControl`](crate::SessionControl)): every session that
    /// began before it (`all`), or the event's user's.
    CutOff {
        /// Every session, not one user's.
        all: bool,
    },
    /// A login under the per-user session limit
    /// ([`max_sessions_per_user`](crate::SessionConfigBuilder::max_sessions_per_user))
    /// ended the user's least recently used sessions; the event names the
    /// user and the new session.
    Evicted {
        /// How many sessions were ended.
        count: usize,
    },
    /// An unsafe request was refused by the [`CsrfLayer`](crate::CsrfLayer)
    /// before the handler ran: no token where one is required, or one that
    /// does not verify (the token itself is never logged).
    CsrfRefused(crate::CsrfReason),
    /// A login was refused: the user is at the per-user session limit
    /// ([`LimitPolicy::RefuseNew`](crate::LimitPolicy::RefuseNew)). The
    /// event names the user and the session that tried to sign in, if the
    /// request had one.
    LoginRefused,
    /// A stored value did not deserialize into the type asked for and was
    /// read as absent ([`Undecodable::Absent`](crate::Undecodable::Absent));
    /// [`Event::data_key`] names the key. Once per key per request.
    Undecodable,
    /// A signed-in request came from another client than the session was
    /// signed in from (see
    /// [`client_binding`](crate::SessionConfigBuilder::client_binding)):
    /// which of the recorded properties differ, never their values. Once
    /// per request.
    ClientChanged {
        /// The user agent's family differs.
        user_agent: bool,
        /// The coarse network prefix differs.
        network: bool,
    },
    /// A refresh token that was already used was presented again (or two
    /// refreshes raced with one token): the token session it belongs to was
    /// ended, the legitimate holder's newest token with it. A likely theft
    /// of the token; alert on it. The event names the user when the
    /// session was still live.
    RefreshReused,
}

/// Why a session got a new ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RenewReason {
    /// The layer's periodic renewal (`renew_after`).
    Periodic,
    /// [`Session::renew`](crate::Session::renew): a privilege change.
    Privilege,
    /// A login on an existing session.
    Login,
    /// A token session's refresh token was used: it rotates on every use
    /// (see [`token::TokenSessions`](crate::token::TokenSessions)).
    Refresh,
}

/// Which deadline a session passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Deadline {
    /// The idle (inactivity) deadline.
    Idle,
    /// The absolute deadline.
    Absolute,
}

/// Why a presented token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RejectReason {
    /// Not a token of the expected form.
    Malformed,
    /// A token format version this build does not read.
    UnsupportedVersion,
    /// Signed by no key of the ring.
    UnknownKey,
    /// The MAC did not verify (tampered or forged).
    BadSignature,
    /// Several session cookies with different valid IDs.
    DuplicateCookie,
    /// More session cookies than are examined.
    TooManySessionCookies,
    /// More cookies than are read.
    TooManyCookies,
    /// A `Cookie` header past the configured size.
    CookieHeaderTooLarge,
    /// A valid token naming no session (ended, unknown or expired and swept).
    Unknown,
    /// A valid token naming an ID that a renewal retired.
    Retired,
    /// Several session header fields on a header layer
    /// ([`Transport::Header`](crate::Transport::Header)): never resolved by
    /// position, whatever they hold.
    DuplicateHeader,
}

impl RejectReason {
    /// The reason as `tracing` logs it.
    ///
    /// ```
    /// assert_eq!(sessionware::RejectReason::BadSignature.as_str(), "bad_signature");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::UnsupportedVersion => "unsupported_version",
            Self::UnknownKey => "unknown_key",
            Self::BadSignature => "bad_signature",
            Self::DuplicateCookie => "duplicate_cookie",
            Self::TooManySessionCookies => "too_many_session_cookies",
            Self::TooManyCookies => "too_many_cookies",
            Self::CookieHeaderTooLarge => "cookie_header_too_large",
            Self::Unknown => "unknown",
            Self::Retired => "retired",
            Self::DuplicateHeader => "duplicate_header",
        }
    }
}

impl RenewReason {
    fn as_str(self) -> &'static str {
        match self {
            Self::Periodic => "periodic",
            Self::Privilege => "privilege",
            Self::Login => "login",
            Self::Refresh => "refresh",
        }
    }
}

impl Deadline {
    fn as_str(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Absolute => "absolute",
        }
    }
}

impl EventKind {
    /// The event's name in `tracing` output and metrics.
    ///
    /// ```
    /// assert_eq!(sessionware::EventKind::Purged.name(), "session.purged");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Self::Created => "session.created",
            Self::LoggedIn | Self::Renewed(RenewReason::Login) => "session.login",
            Self::Renewed(_) => "session.renewed",
            Self::Purged => "session.purged",
            Self::Expired(_) => "session.expired",
            Self::Rejected(_) => "session.rejected",
            Self::Revoked { .. } => "session.revoked",
            Self::LockTimeout => "session.lock_timeout",
            Self::StoreError { .. } => "session.store_error",
            Self::WriteDropped => "session.write_dropped",
            Self::CutOff { .. } => "session.cut_off",
            Self::CrossOriginRefused(_) => "session.cross_origin_refused",
            Self::CsrfRefused(_) => "session.csrf_refused",
            Self::Evicted { .. } => "session.evicted",
            Self::LoginRefused => "session.limit_rejected",
            Self::Undecodable => "session.undecodable",
            Self::ClientChanged { .. } => "session.client_changed",
            Self::RefreshReused => "refresh.reuse_detected",
        }
    }

    /// The event's reason label, if it has one.
    fn reason(self) -> &'static str {
        match self {
            Self::Renewed(r) => r.as_str(),
            Self::Expired(d) => d.as_str(),
            Self::Rejected(r) => r.as_str(),
            Self::StoreError { op } => op,
            Self::CrossOriginRefused(r) => r.as_str(),
            Self::CsrfRefused(r) => r.as_str(),
            Self::CutOff { all: true } => "all",
            Self::CutOff { all: false } => "user",
            Self::ClientChanged { user_agent: true, network: true } => "user_agent_and_network",
            Self::ClientChanged { user_agent: true, network: false } => "user_agent",
            Self::ClientChanged { user_agent: false, .. } => "network",
            _ => "",
        }
    }
}

/// The request a session event belongs to: method and path, recorded only
/// when a hook is installed.
#[derive(Debug, Clone)]
pub(crate) struct Route {
    pub(crate) method: http::Method,
    pub(crate) path: Box<str>,
}

impl Route {
    pub(crate) fn of<B>(req: &http::Request<B>) -> Self {
        Self { method: req.method().clone(), path: req.uri().path().into() }
    }
}

/// Emits events of one request: to `tracing`, to the hook and to metrics.
#[derive(Clone, Copy)]
pub(crate) struct Emitter<'a> {
    pub(crate) hook: Option<&'a EventHook>,
    pub(crate) route: Option<&'a Route>,
    pub(crate) now: u64,
}

impl fmt::Debug for Emitter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Emitter").field("hook", &self.hook.is_some()).finish_non_exhaustive()
    }
}

impl Emitter<'_> {
    /// An emitter without a hook or a route (tracing and metrics only).
    pub(crate) const SILENT: Emitter<'static> = Emitter { hook: None, route: None, now: 0 };

    /// Emits `kind` about the session under `key` (if known) of `user`.
    pub(crate) fn emit(&self, kind: EventKind, key: Option<&StorageKey>, user: Option<&str>) {
        trace(kind, key);
        self.deliver(kind, key, user);
    }

    /// A session was renewed: names both fingerprints in `tracing`.
    pub(crate) fn renewed(&self, old: &StorageKey, new: &StorageKey, reason: RenewReason, user: Option<&str>) {
        tracing::info!(
            target: "sessionware",
            event = EventKind::Renewed(reason).name(),
            reason = reason.as_str(),
            session = %new.fingerprint(),
            previous = %old.fingerprint()
        );
        self.deliver(EventKind::Renewed(reason), Some(new), user);
    }

    /// A cross-origin request was refused (no session is known yet).
    pub(crate) fn cross_origin_refused(&self, reason: crate::CrossOriginReason) {
        trace(EventKind::CrossOriginRefused(reason), None);
        self.deliver(EventKind::CrossOriginRefused(reason), None, None);
    }

    /// A token was refused while reading the cookie (`len`: its size).
    pub(crate) fn rejected(&self, reason: RejectReason, len: usize) {
        tracing::debug!(target: "sessionware", event = "session.rejected", reason = reason.as_str(), len);
        self.deliver(EventKind::Rejected(reason), None, None);
    }

    /// A store failure, logged with the driver's message (stores keep
    /// secrets out of it), the operation and the fingerprint.
    pub(crate) fn store_error(&self, op: &'static str, key: Option<&StorageKey>, err: &crate::StoreError) {
        tracing::error!(target: "sessionware", event = "session.store_error", op, session = %Fingerprint(key), error = %err);
        self.deliver(EventKind::StoreError { op }, key, None);
    }

    /// A stored value under `data_key` was read as absent: its key's name
    /// (escaped by `?`) is logged, never the value.
    pub(crate) fn undecodable(&self, key: Option<&StorageKey>, user: Option<&str>, data_key: &str) {
        let kind = EventKind::Undecodable;
        tracing::info!(target: "sessionware", event = kind.name(), key = ?data_key, session = %Fingerprint(key));
        self.deliver_about(kind, key, user, Some(data_key));
    }

    /// To the hook and metrics only (the caller traced it).
    fn deliver(&self, kind: EventKind, key: Option<&StorageKey>, user: Option<&str>) {
        self.deliver_about(kind, key, user, None);
    }

    /// As `deliver`, naming a session data key.
    fn deliver_about(&self, kind: EventKind, key: Option<&StorageKey>, user: Option<&str>, data_key: Option<&str>) {
        #[cfg(feature = "metrics")]
        metrics::counter!("sessionware_events_total", "kind" => kind.name(), "reason" => kind.reason()).increment(1);
        if let Some(hook) = self.hook {
            hook(&Event {
                kind,
                session: key.map(StorageKey::fingerprint),
                user: user.map(str::to_string),
                method: self.route.map(|r| r.method.clone()),
                path: self.route.map(|r| r.path.to_string()),
                at: UNIX_EPOCH + Duration::from_millis(self.now),
                data_key: data_key.map(str::to_string),
            });
        }
    }
}

/// A session's fingerprint for `tracing`, rendered only if the event is
/// enabled (no allocation on the hot path otherwise).
struct Fingerprint<'a>(Option<&'a StorageKey>);

impl fmt::Display for Fingerprint<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(key) => f.write_str(&key.fingerprint()),
            None => Ok(()),
        }
    }
}

/// The `tracing` line of an event. The user is never logged: a user name
/// may be personal data.
fn trace(kind: EventKind, key: Option<&StorageKey>) {
    let name = kind.name();
    let reason = kind.reason();
    let session = Fingerprint(key);
    match kind {
        EventKind::StoreError { op } => {
            tracing::error!(target: "sessionware", event = name, op, session = %session);
        }
        EventKind::RefreshReused => {
            tracing::warn!(target: "sessionware", event = name, reason = "a used refresh token was presented again", session = %session);
        }
        EventKind::LoggedIn
        | EventKind::Purged
        | EventKind::Revoked { .. }
        | EventKind::Renewed(_)
        | EventKind::CutOff { .. }
        | EventKind::Evicted { .. }
        | EventKind::LoginRefused => {
            tracing::info!(target: "sessionware", event = name, session = %session);
        }
        EventKind::WriteDropped => tracing::debug!(
            target: "sessionware",
            event = name,
            reason = "session ended or renewed by a concurrent request",
            session = %session
        ),
        _ if reason.is_empty() => tracing::debug!(target: "sessionware", event = name, session = %session),
        _ => tracing::debug!(target: "sessionware", event = name, reason, session = %session),
    }
}

/// Records a store call's latency (feature `metrics`).
#[cfg(feature = "metrics")]
pub(crate) fn store_latency(op: &'static str, elapsed: Duration) {
    metrics::histogram!("sessionware_store_seconds", "op" => op).record(elapsed.as_secs_f64());
}
