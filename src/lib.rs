//! # sessionware
//!
//! Production-grade sessions for [Tower](https://docs.rs/tower) and
//! [axum](https://docs.rs/axum).
//!
//! A [`SessionLayer`] wraps any Tower service. On each request it reads the
//! session cookie, verifies its MAC (constant time, bound to the cookie name,
//! a format version and a key id), hands the handler a lazy [`Session`]
//! (request extension and axum extractor), and after the handler answered
//! writes the changes back: per key, atomically, never resurrecting a session
//! that a concurrent request ended. For API and mobile clients, a layer can
//! carry the session in a request header instead of a cookie
//! ([`Transport::Header`]). Without a store, a layer can keep the whole
//! session in the cookie, encrypted ([`CookieSessions`]).
//!
//! ```
//! use axum::{routing::get, Router};
//! use sessionware::{Keys, Session, SessionError, SessionLayer, store::MemoryStore};
//!
//! async fn handler(session: Session) -> Result<String, SessionError> {
//!     let n: u64 = session.get("n").await?.unwrap_or(0);
//!     session.insert("n", n + 1).await?;
//!     Ok(n.to_string())
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let keys = Keys::generate()?; // production: Keys::from_env("SESSION_KEYS")?
//! let app: Router = Router::new()
//!     .route("/", get(handler))
//!     .layer(SessionLayer::new(MemoryStore::default(), keys));
//! # Ok(()) }
//! ```
//!
//! ## Life of a request
//!
//! What happens, stage by stage, and which module holds each decision (in
//! the order of the request; no module imports one that comes later):
//!
//! 1. **The service is called** ([`SessionService`], `service.rs`). It keeps
//!    reference-counted clones of the `Cookie` headers and puts a lazy
//!    [`Session`] into the request extensions. Nothing is parsed and no store
//!    is called: a route that never touches the session pays for nothing
//!    else. With an event hook ([`SessionLayer::on_event`]), the method and
//!    path are kept for the events; with client binding on (the default,
//!    [`SessionConfigBuilder::client_binding`]), the user agent and the
//!    client's address (`binding.rs`: the socket peer, or `X-Forwarded-For`
//!    behind a trusted proxy) are noted, as cheap clones. On a header layer
//!    ([`Transport::Header`], `transport/`), the session header's value is
//!    kept instead of the cookies, which are not looked at, and the
//!    cross-origin check is skipped ([`Transport`] decides whether CSRF
//!    applies).
//!
//!    A [`CsrfLayer`] inside the session layer (`csrf/layer.rs`, opt-in) is
//!    the one place that decides whether an unsafe request's synchronizer
//!    token lets it reach the handler: it reads the token from the
//!    `X-CSRF-Token` header or a form field, loads the session and compares
//!    the token with the session's secret (`csrf/token.rs`) before the
//!    handler runs.
//! 2. **The handler first uses the session** (`session/mod.rs`). Only now is
//!    the cookie read and verified (`cookie/read.rs`: exact name, size and
//!    count caps, MAC in constant time, duplicates never resolved by
//!    position; on a header layer `transport/header.rs`: exactly one field,
//!    exactly a token; on an encrypted-cookie-session layer
//!    `cookie/sealed.rs`: the AEAD opens the cookie into the record it
//!    carries, which plays the stored one) and the request's time read
//!    once. The store is asked once
//!    ([`SessionStore::lookup`]); `lifecycle/expiry.rs` is the one place that
//!    checks the idle and absolute deadlines, and `binding.rs` the one place
//!    that compares a signed-in session's recorded client with the request's
//!    (an event, a failing recent-auth guard, or a logout, by
//!    [`BindingPolicy`]). The lookup ends in one of five
//!    origins: no cookie; a stale one (unknown, ended, expired); a *retired*
//!    one (an ID a renewal replaced: no session, and never a removal cookie
//!    that could clobber the new one); a live session; or, within a periodic
//!    renewal's overlap, an *alias* of the successor.
//! 3. **The handler reads and writes** (`session/data.rs`, `auth.rs`,
//!    `devices.rs`, `lock.rs`, `typed.rs`: typed values, and the one home of
//!    what a read does with a value that no longer deserializes,
//!    [`Undecodable`]). Every change goes through a transition of
//!    the request's state (`lifecycle/state.rs`), which records what the
//!    request intends: keep, write, create, renew (privilege, login or
//!    periodic) or purge, and the net change per key.
//! 4. **The handler answered; the plan is made** (`lifecycle/plan.rs`): a pure
//!    function of that state, the presented cookie, the time and the
//!    configuration decides the one step to take: nothing, a touch, a merge
//!    of the change set, a creation, a rotation or a deletion, and the
//!    cookie reply. Periodic renewal ([`SessionConfigBuilder::renew_after`])
//!    is decided here. After this, the handle is committed: later calls fail
//!    with [`SessionError::Committed`].
//! 5. **The step is carried out** (`lifecycle/write.rs`; on an
//!    encrypted-cookie-session layer `lifecycle/sealed.rs`, which applies
//!    the step to the presented record and seals the result into the
//!    cookie, within 4,096 bytes, instead of calling a store). A renewal is one
//!    atomic [`SessionStore::rotate`]: the successor is built from the data
//!    as stored *then* merged with this request's changes, only while the old
//!    session is live, and the old ID is retired. A write merges per key,
//!    only into a live session; one that finds its session retired within an
//!    overlap merges into the successor. A logout deletes, following a
//!    retired ID to its successor. The data cap holds on the merged record.
//!    A held exclusive lease is released after this step, or when the
//!    response future is dropped first.
//! 6. **The response is finished** (`cookie/write.rs`, the one home of every
//!    header the layer adds): `Vary: Cookie` when the session was used;
//!    `Set-Cookie` (marked sensitive) with its `Max-Age` decided in one
//!    function and `Cache-Control: no-store` when the cookie changes. A store
//!    failure replaces the response with the configured error response and
//!    sets no cookie. A header layer's headers are decided in
//!    `transport/header.rs`: the token in the session header (an empty one
//!    to drop it), `Vary` on that header, `Cache-Control: no-store`, never a
//!    `Set-Cookie`.
//!
//! Events ([`Event`]) are emitted on the way: created, logged in, renewed,
//! purged, expired, rejected, revoked, cut off, evicted and login refused
//! (the per-user session limit), lock timeout, write dropped, store error,
//! undecodable value, client changed (client binding), CSRF refused.
//!
//! The session cookie is `SameSite=Lax` by default. `Strict` is not sent on
//! a top-level navigation from another site, such as an OAuth or SSO
//! provider's redirect back to the sign-in callback: see
//! [`SessionConfigBuilder::same_site`] for the pitfall and the two-cookie
//! setup that avoids it. [`SessionConfigBuilder::partitioned`] opts in to
//! `Partitioned` (CHIPS) for embedded use.
//!
//! ## What it guarantees
//!
//! - IDs are 128 bits from the OS CSPRNG; stores key records by their SHA-256
//!   digest, never the ID.
//! - Strict mode: an ID the store does not know is never adopted, and unknown
//!   IDs create no record.
//! - Tampered, malformed, oversized or duplicated cookies (or session
//!   headers) look exactly like no cookie. A token is bound to its
//!   transport: a cookie's is refused as a header token and the reverse.
//! - Idle and absolute timeouts are checked by the layer on every load.
//! - Encrypted cookie sessions ([`CookieSessions`]) are authenticated and
//!   bound to the cookie name before anything reads them; what a store
//!   guarantees about concurrent requests and revocation does not hold
//!   there (no per-key merge, a copied cookie lives until its deadlines
//!   unless the per-user epoch is supplied): see its documentation.
//! - A renewal (login, [`Session::renew`], periodic) is one atomic store
//!   operation: a logout, revocation or expiry that came first wins, a write
//!   that came first is kept, and one session never forks into two IDs.
//! - A store failure while loading fails closed (503 by default); while saving
//!   it gives 500 and no cookie.
//! - CSRF: a browser's unsafe request from another origin never reaches the
//!   handler (on by default); with [`CsrfLayer`], a wrong or stale token
//!   never does either, and every login and privilege renewal replaces the
//!   secret tokens are checked against.
//! - With a per-user session limit
//!   ([`SessionConfigBuilder::max_sessions_per_user`]), a user never has more
//!   live sessions than the limit, however many logins run at once: the
//!   store admits each login (ending the least recently used sessions, or
//!   refusing it) in the same atomic step as its renewal.
//!
//! ## Features
//!
//! | feature | default | what |
//! |---|---|---|
//! | `axum` | yes | `Session`, `Option<Session>` and `Typed<T>` as axum extractors, `SessionError` as a response; the auth guards ([`guard`]) |
//! | `redis` | no | `RedisStore`: Redis or Redis Cluster, one string per session |
//! | `postgres` | no | `SqlStore` on PostgreSQL (sqlx) |
//! | `sqlite` | no | `SqlStore` on SQLite (sqlx) |
//! | `mysql` | no | `SqlStore` on MySQL 8 or MariaDB 10.5+ (sqlx) |
//! | `metrics` | no | event counters and a store-latency histogram through the `metrics` crate |
//! | `jwt` | no | [`token`]: access tokens (JWT) minted from a session, `TokenLayer` (stateless or checked against the store), JWKS |

#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(missing_debug_implementations, rust_2018_idioms, unreachable_pub)]

mod binding;
mod clock;
mod config;
mod control;
mod cookie;
mod cookie_sessions;
mod cross_origin;
pub mod csrf;
mod error;
mod events;
#[cfg(feature = "axum")]
mod extract;
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod guard;
mod id;
mod keys;
mod lifecycle;
mod record;
mod rotation;
mod same_site;
mod service;
mod session;
mod shared;
mod sign_in;
pub mod store;
#[cfg(feature = "jwt")]
#[cfg_attr(docsrs, doc(cfg(feature = "jwt")))]
pub mod token;
mod transport;

pub use binding::{BindingPolicy, ClientChange};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{SessionConfig, SessionConfigBuilder};
pub use control::SessionControl;
pub use cookie_sessions::CookieSessions;
pub use cross_origin::{CrossOrigin, CrossOriginReason, CrossOriginRefused, Origin};
pub use csrf::{CsrfLayer, CsrfReason, CsrfRefused, CsrfToken};
pub use error::{ConfigError, KeyError, KeySource, PrefixRule, SessionError, SharedError};
pub use events::{Deadline, Event, EventHook, EventKind, RejectReason, RenewReason};
#[cfg(feature = "axum")]
pub use extract::MissingSessionLayer;
#[cfg(feature = "axum")]
pub use guard::{
    safe_next, AuthReason, AuthRejection, Challenge, LoadUser, RequireAssurance, RequireRecentAuth, RequireSignIn,
    SignedIn, User,
};
pub use id::{SessionId, ID_ENCODED_LEN, ID_LEN};
pub use keys::{Key, Keys};
pub use record::SessionHandle;
pub use same_site::SameSite;
pub use service::{ResponseFuture, SessionLayer, SessionService};
pub use session::{Session, SessionInfo, SessionValue, Typed, Undecodable};
pub use shared::ErrorResponder;
pub use sign_in::{Assurance, AuthMethod, ProviderSession, SignIn};
pub use transport::Transport;
// For handler authors, who pass it to `max_sessions_per_user`; its home is
// `store`, beside the `SessionLimit` it is part of.
pub use store::LimitPolicy;

// Crate-internal shorthands for the store's types (their public path is
// `sessionware::store::…`).
pub(crate) use store::{
    Auth, ChangeSet, Login, Metadata, Record, Retired, Rotated, Rotation, SessionStore, StorageKey, StoreError, Stored,
};
