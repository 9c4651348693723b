//! Verification of one compact access token, and the checked mode's
//! liveness check and cache.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use jsonwebtoken::{errors::ErrorKind, Validation};

use super::{
    claims::{is_access_typ, AccessClaims},
    TokenError, TokenKeys,
};
use crate::{events::Emitter, shared::Shared, Clock, SessionHandle};

/// The longest token read (bytes): far above any token this crate mints.
pub(crate) const MAX_TOKEN_LEN: usize = 8 * 1024;

/// At most this many sessions' liveness is cached by one checked verifier.
const CACHE_CAPACITY: usize = 10_000;

/// What a verifier checks tokens against.
pub(crate) struct Verifier {
    keys: TokenKeys,
    /// One validation per key, in ring order: the key's algorithm only,
    /// `aud` and `iss` exact, `exp`/`sub`/`iss`/`aud` required.
    validations: Vec<Validation>,
    /// Seconds.
    pub(crate) leeway: u64,
    pub(crate) mode: Mode,
}

/// Stateless, or checked against the session store.
pub(crate) enum Mode {
    Stateless(Arc<dyn Clock>),
    Checked(Checker),
}

/// The checked mode: the session layer's store and clock, and the cache.
pub(crate) struct Checker {
    pub(crate) shared: Arc<Shared>,
    /// Milliseconds.
    pub(crate) ttl_ms: u64,
    cache: Mutex<HashMap<SessionHandle, Entry>>,
}

/// A session's liveness as one store read found it.
struct Entry {
    user: Box<str>,
    live: bool,
    /// The request time of the read (ms): trusted until `at + ttl`.
    at: u64,
}

/// What the cache knows about a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Liveness {
    Live,
    Ended,
    /// Not known (or no longer trusted): one store read decides.
    Unknown,
}

impl Checker {
    pub(crate) fn new(shared: Arc<Shared>, ttl_ms: u64) -> Self {
        Self { shared, ttl_ms, cache: Mutex::new(HashMap::new()) }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<SessionHandle, Entry>> {
        // Only short, non-panicking sections hold it.
        self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Drops what the cache knows about `sid`.
    fn forget(&self, sid: &SessionHandle) {
        self.cache().remove(sid);
    }

    fn cached(&self, claims: &AccessClaims, now: u64) -> Liveness {
        match self.cache().get(&claims.sid) {
            Some(e) if *e.user == *claims.sub && now < e.at.saturating_add(self.ttl_ms) => {
                if e.live {
                    Liveness::Live
                } else {
                    Liveness::Ended
                }
            }
            _ => Liveness::Unknown,
        }
    }

    fn remember(&self, user: &str, sid: SessionHandle, live: bool, now: u64) {
        let mut cache = self.cache();
        if cache.len() >= CACHE_CAPACITY && !cache.contains_key(&sid) {
            cache.retain(|_, e| now < e.at.saturating_add(self.ttl_ms));
            if cache.len() >= CACHE_CAPACITY {
                cache.clear();
            }
        }
        cache.insert(sid, Entry { user: user.into(), live, at: now });
    }

    /// One read of the user's live sessions (the layer's per-user index,
    /// which leaves out ended, expired and cut-off sessions): is `sid` one
    /// of them? The answer is cached.
    pub(crate) async fn check(&self, user: &str, sid: SessionHandle, now: u64) -> Result<bool, TokenError> {
        let shared = &*self.shared;
        let index = shared.index().map_err(|_| TokenError::Unavailable)?;
        let emit = Emitter { hook: shared.on_event.as_ref(), route: None, now };
        let limit = shared.config.max_listed_sessions;
        let list = shared
            .timed(emit, "list_user", None, index.list_user(user, now, limit))
            .await
            .map_err(|_| TokenError::Unavailable)?;
        let live = list.iter().any(|m| m.handle == sid);
        self.remember(user, sid, live, now);
        Ok(live)
    }
}

/// The compact form only (R73): three non-empty segments of unpadded
/// base64url, within the size cap.
fn is_compact(token: &str) -> bool {
    token.len() <= MAX_TOKEN_LEN
        && token.split('.').count() == 3
        && token.split('.').all(|s| !s.is_empty())
        && token.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

impl Verifier {
    pub(crate) fn new(keys: TokenKeys, issuer: &str, audience: &str, leeway: u64, mode: Mode) -> Self {
        let validations = keys
            .iter()
            .map(|key| {
                let mut v = Validation::new(key.alg.jwt());
                // The time claims are checked with the layer's clock, in
                // `AccessClaims::check_time`: the one home of that decision.
                v.validate_exp = false;
                v.validate_nbf = false;
                v.leeway = 0;
                v.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
                v.set_issuer(&[issuer]);
                v.set_audience(&[audience]);
                v
            })
            .collect();
        Self { keys, validations, leeway, mode }
    }

    /// The verifier's time (ms): the session layer's clock in checked mode.
    pub(crate) fn now_ms(&self) -> u64 {
        match &self.mode {
            Mode::Stateless(clock) => clock.now_ms(),
            Mode::Checked(c) => c.shared.clock.now_ms(),
        }
    }

    /// Everything but the store: form, header, key, signature, claims, time.
    pub(crate) fn verify(&self, token: &str, now_ms: u64) -> Result<AccessClaims, TokenError> {
        if !is_compact(token) {
            return Err(TokenError::Malformed);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        // Header key material (`jwk`, `jku`, `x5u`, `x5c`) is never read (R70).
        if header.crit.is_some() || !is_access_typ(header.typ.as_deref()) {
            return Err(TokenError::Type);
        }
        let kid = header.kid.as_deref().ok_or(TokenError::UnknownKey)?;
        let (i, key) = self.keys.by_kid(kid).ok_or(TokenError::UnknownKey)?;
        let validation = self.validations.get(i).ok_or(TokenError::UnknownKey)?;
        if header.alg != key.alg.jwt() {
            return Err(TokenError::Algorithm);
        }
        let data =
            jsonwebtoken::decode::<AccessClaims>(token, &key.verifying, validation).map_err(|e| match e.kind() {
                ErrorKind::InvalidSignature => TokenError::Signature,
                ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName | ErrorKind::MissingAlgorithm => {
                    TokenError::Algorithm
                }
                ErrorKind::InvalidAudience => TokenError::Audience,
                ErrorKind::InvalidIssuer => TokenError::Issuer,
                ErrorKind::MissingRequiredClaim(_) | ErrorKind::InvalidClaimFormat(_) | ErrorKind::Json(_) => {
                    TokenError::Claims
                }
                _ => TokenError::Malformed,
            })?;
        data.claims.check_time(now_ms / 1000, self.leeway)?;
        Ok(data.claims)
    }

    /// Drops the checked mode's cached liveness of `sid` (nothing to drop
    /// in stateless mode).
    pub(crate) fn forget(&self, sid: &SessionHandle) {
        if let Mode::Checked(c) = &self.mode {
            c.forget(sid);
        }
    }

    /// What the cache knows: always live in stateless mode.
    pub(crate) fn cached(&self, claims: &AccessClaims, now_ms: u64) -> Liveness {
        match &self.mode {
            Mode::Stateless(_) => Liveness::Live,
            Mode::Checked(c) => c.cached(claims, now_ms),
        }
    }
}
