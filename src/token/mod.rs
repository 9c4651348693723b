//! Access tokens (JWT, [RFC 9068]) bound to a server session (feature
//! `jwt`).
//!
//! API clients and downstream services want a short-lived signed token they
//! can present as `Authorization: Bearer …` and that a service can verify
//! without a session cookie. This module mints such tokens from a logged-in
//! [`Session`](crate::Session) ([`TokenIssuer`]) and verifies them
//! ([`TokenLayer`], with the [`AccessClaims`] extractor).
//!
//! | file | what it decides |
//! |---|---|
//! | `keys.rs` | the key ring: which key signs (the first), which verify (all, by `kid` only), one algorithm per key |
//! | `claims.rs` | the claims and their strict types, the `typ`, and the one time check (`exp`, `nbf`, `iat` with the leeway) |
//! | `issue.rs` | minting from a session: who (`sub`), which session (`sid`), how long |
//! | `verify.rs` | verification of one compact token, and the checked mode's liveness cache |
//! | `layer.rs` | the Tower layer: the `Authorization` field, the 401 response |
//! | `extract.rs` | the axum extractors `AccessClaims` and `Option<AccessClaims>` |
//! | `refresh.rs` | token sessions: sign-in, refresh-token rotation and reuse detection, logout |
//! | `jwks.rs` | the JWKS document of the public keys, and a verifying ring built from one |
//!
//! # Threat model
//!
//! A bearer token is as good as the session it was minted from, for as long
//! as it lives, to whoever holds it. What this module guarantees:
//!
//! - The algorithm is pinned per key by configuration, never read from the
//!   token: `none`, `alg` changed in the header, an EdDSA token presented to
//!   an ES256 key's `kid`, and an RS/ES public key used as an HMAC secret are
//!   all refused (R69).
//! - The `kid` only selects a configured key; key material in the header
//!   (`jwk`, `jku`, `x5u`, `x5c`) is ignored, an unknown `kid` is refused,
//!   and a token with `crit` is refused (R70).
//! - `exp`, `iat`, `sub`, `sid`, `jti`, `aud` and `iss` are required, with
//!   strict types: a time that is a string, a float or negative refuses the
//!   token; `aud` and `iss` must equal the configured values (R71).
//! - The header's `typ` must be `at+jwt` (R72); only the compact form of
//!   three unpadded base64url segments is read (R73).
//! - The `sid` claim is the session's public [`SessionHandle`](crate::SessionHandle),
//!   never its ID or the ID's digest: a token does not reveal the cookie.
//! - A refused token gets `401` with `WWW-Authenticate: Bearer
//!   error="invalid_token"` and an empty body; the reason ([`TokenError`]) is
//!   only in the response's extensions, for logs.
//!
//! # Stateless and checked verification (R50)
//!
//! A [stateless](TokenLayer::new) verifier needs no store: a downstream
//! service with only the JWKS can use it. It cannot see a logout: **a token
//! stays valid until its `exp`** after its session ended, so keep the
//! lifetime short ([`TokenIssuer::ttl`], 5 minutes by default).
//!
//! A [checked](TokenLayer::checked) verifier also confirms that the `sid` is
//! still a live session of `sub`, with one read of the session layer's
//! per-user index ([`UserIndex::list_user`](crate::store::UserIndex::list_user),
//! which leaves out sessions ended by a logout, a revocation, expiry,
//! [`credentials_changed`](crate::Session::credentials_changed) or a
//! [`SessionControl`](crate::SessionControl) cutoff). The answer is cached
//! per session for [`TokenLayer::cache_ttl`] (5 s by default, at most 60 s),
//! so **a logout ends the session's tokens within that bound**, and a busy
//! client costs one store read per bound. A store failure refuses the
//! request with 503 (fails closed, R51).
//!
//! # Refresh tokens
//!
//! [`TokenSessions`] signs API clients in to a server session each and
//! hands them an opaque refresh token that rotates on every use; a reuse
//! ends the session (see the `refresh.rs` row, and [`TokenSessions`]).
//!
//! [RFC 9068]: https://www.rfc-editor.org/rfc/rfc9068

mod claims;
#[cfg(feature = "axum")]
mod extract;
mod issue;
mod jwks;
mod keys;
mod layer;
mod refresh;
mod verify;

pub use claims::AccessClaims;
#[cfg(feature = "axum")]
pub use extract::TokenRejection;
pub use issue::{MintError, TokenIssuer};
pub use jwks::{Jwk, Jwks};
pub use keys::{TokenAlgorithm, TokenKey, TokenKeys};
pub use layer::{ResponseFuture, TokenLayer, TokenService};
pub use refresh::{RefreshError, TokenPair, TokenSessions};

use std::time::Duration;

/// The default lifetime of an access token: 5 minutes.
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);
/// The longest lifetime an issuer accepts (R74): 1 hour.
pub const MAX_TTL: Duration = Duration::from_secs(3600);
/// The default clock leeway of a verifier: 30 seconds.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
/// The largest leeway a verifier accepts (R71): 60 seconds.
pub const MAX_LEEWAY: Duration = Duration::from_secs(60);
/// How long a checked verifier trusts a session's liveness by default: 5 seconds.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(5);
/// The longest a checked verifier may trust a session's liveness: 60 seconds.
pub const MAX_CACHE_TTL: Duration = Duration::from_secs(60);

/// Why a token was refused (or could not be checked).
///
/// Never sent to the client: the layer answers every refusal with the same
/// 401 and puts this in the response's extensions, for logs.
///
/// ```
/// use sessionware::token::TokenError;
/// assert_eq!(TokenError::Expired.to_string(), "the token expired");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Two `Authorization` fields, or a Bearer credential that is not one
    /// token68.
    #[error("the Authorization field is malformed")]
    Header,
    /// Not a compact JWS of three base64url segments with JSON inside.
    #[error("the token is malformed")]
    Malformed,
    /// The header's `typ` is not `at+jwt`, or it carries `crit`.
    #[error("the token is not an access token")]
    Type,
    /// No `kid`, or one that names no configured key.
    #[error("the token names no known key")]
    UnknownKey,
    /// The header's `alg` is not the algorithm of the key its `kid` names.
    #[error("the token's algorithm is not its key's")]
    Algorithm,
    /// The signature does not verify.
    #[error("the token's signature is invalid")]
    Signature,
    /// A required claim is missing or has the wrong type.
    #[error("the token's claims are invalid")]
    Claims,
    /// `aud` is not the configured audience.
    #[error("the token is for another audience")]
    Audience,
    /// `iss` is not the configured issuer.
    #[error("the token is from another issuer")]
    Issuer,
    /// `exp` has passed (beyond the leeway).
    #[error("the token expired")]
    Expired,
    /// `nbf` or `iat` is in the future (beyond the leeway).
    #[error("the token is not valid yet")]
    NotYetValid,
    /// Checked mode: the session the token was minted from has ended.
    #[error("the token's session has ended")]
    SessionEnded,
    /// Checked mode: the store failed or timed out (the request gets 503).
    #[error("the session store is unavailable")]
    Unavailable,
}

/// A token key, key ring or verifier that cannot be built.
///
/// ```
/// use sessionware::token::{TokenConfigError, TokenKeys};
/// assert_eq!(TokenKeys::new([]).unwrap_err(), TokenConfigError::NoKeys);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenConfigError {
    /// The key ring is empty.
    #[error("a token key ring needs at least one key")]
    NoKeys,
    /// The first key of the ring has no private part (a ring read from a
    /// JWKS verifies only).
    #[error("the first key of the ring cannot sign")]
    NoSigningKey,
    /// Two keys share a `kid`.
    #[error("two token keys share the kid {0:?}")]
    DuplicateKid(String),
    /// A `kid` is empty, longer than 64 bytes, or not `[A-Za-z0-9._-]`.
    #[error("a token key id must be 1 to 64 of [A-Za-z0-9._-]")]
    InvalidKid,
    /// The key material does not parse as a key of the algorithm.
    #[error("invalid {0} key")]
    InvalidKey(TokenAlgorithm),
    /// An HS256 secret shorter than 32 bytes.
    #[error("an HS256 secret needs at least 32 bytes")]
    WeakSecret,
    /// A JWKS document that does not parse, or a key in it that is not an
    /// EdDSA (Ed25519) or ES256 (P-256) signing key.
    #[error("invalid JWKS: {0}")]
    Jwks(&'static str),
    /// A duration above its maximum ([`MAX_TTL`], [`MAX_LEEWAY`],
    /// [`MAX_CACHE_TTL`]) or zero where it must not be.
    #[error("{what} must be at most {max:?} (and a TTL more than zero)")]
    OutOfRange {
        /// The setting.
        what: &'static str,
        /// Its maximum.
        max: Duration,
    },
    /// A checked verifier needs a session layer whose store has a per-user
    /// index.
    #[error("checked token verification needs a store with a per-user index")]
    NoUserIndex,
}

/// `kid` syntax (R70): 1 to 64 bytes of `[A-Za-z0-9._-]`, checked for
/// configured keys and before any lookup of a presented one.
pub(crate) fn valid_kid(kid: &str) -> bool {
    (1..=64).contains(&kid.len()) && kid.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}
