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
//! that a concurrent request ended.
//!
//! ```
//! use axum::{routing::get, Router};
//! use sessionware::{Keys, MemoryStore, Session, SessionError, SessionLayer};
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
//! ## What it guarantees
//!
//! - IDs are 128 bits from the OS CSPRNG; stores key records by their SHA-256
//!   digest, never the ID.
//! - Strict mode: an ID the store does not know is never adopted, and unknown
//!   IDs create no record.
//! - Tampered, malformed, oversized or duplicated cookies look exactly like no
//!   cookie.
//! - Idle and absolute timeouts are checked by the layer on every load.
//! - A store failure while loading fails closed (503 by default); while saving
//!   it gives 500 and no cookie.
//!
//! ## Features
//!
//! | feature | default | what |
//! |---|---|---|
//! | `axum` | yes | `Session` as an axum extractor, `SessionError` as a response |
//! | `redis` | no | `RedisStore`: Redis or Redis Cluster, one hash per session |
//! | `postgres` | no | `SqlStore` on PostgreSQL (sqlx) |
//! | `sqlite` | no | `SqlStore` on SQLite (sqlx) |

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(missing_debug_implementations, rust_2018_idioms, unreachable_pub)]

mod clock;
mod config;
pub mod conformance;
mod cookie;
mod error;
mod events;
#[cfg(feature = "axum")]
mod extract;
mod id;
mod keys;
mod lifecycle;
mod record;
mod rotation;
mod service;
mod session;
mod shared;
pub mod store;

pub use ::cookie::SameSite;
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{SessionConfig, SessionConfigBuilder};
pub use error::{ConfigError, KeyError, SessionError, SharedError, StoreError};
pub use events::{Deadline, Event, EventHook, EventKind, RejectReason, RenewReason};
pub use id::{SessionId, StorageKey, ID_ENCODED_LEN, ID_LEN};
pub use keys::{Key, Keys};
pub use record::{Auth, ChangeSet, Data, Metadata, Record, SessionHandle, RECORD_FORMAT};
pub use rotation::{Login, Retired, Rotated, Rotation, Stored, RETIRED_KEEP_MS};
pub use service::{ResponseFuture, SessionLayer, SessionService};
pub use session::{Session, SessionInfo};
pub use shared::ErrorResponder;
#[cfg(feature = "redis")]
pub use store::redis::RedisStore;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub use store::sql::SqlStore;
pub use store::{
    memory::{MemoryStore, MemoryStoreBuilder},
    SessionStore,
};
