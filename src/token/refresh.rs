//! Token sessions: a server session per API client, reached through an
//! opaque refresh token that rotates on every use, and the access tokens
//! it mints.

use std::{fmt, sync::Arc};

use http::HeaderMap;

use super::{AccessClaims, MintError, TokenConfigError, TokenIssuer};
use crate::{
    events::Emitter,
    keys::Purpose,
    lifecycle::{expiry, write::successor_id},
    service::commit_detached,
    shared::Shared,
    transport::Credentials,
    ChangeSet, EventKind, RejectReason, RenewReason, Retired, Rotated, Rotation, Session, SessionError, SessionHandle,
    SessionId, SessionLayer, SignIn, StorageKey, StoreError, Stored,
};

/// How often a new ID is drawn when the store reports it taken.
const ATTEMPTS: usize = 3;
/// The most retired pointers a reuse follows to the family's live session
/// (one per refresh within the family's idle window).
const MAX_WALK: usize = 1 << 16;

/// An access token and the refresh token that renews it, as an OAuth token
/// response serializes them: `access_token`, `refresh_token`,
/// `token_type` (`"Bearer"`) and `expires_in` (seconds). `Debug` prints
/// neither token.
///
/// ```
/// # use sessionware::token::TokenPair;
/// fn body(pair: &TokenPair) -> String {
///     serde_json::to_string(pair).unwrap() // {"access_token":…,"token_type":"Bearer",…}
/// }
/// ```
#[derive(Clone, serde::Serialize)]
#[non_exhaustive]
pub struct TokenPair {
    /// The access token (a JWT, `Authorization: Bearer …`).
    pub access_token: String,
    /// The refresh token: opaque, single use.
    pub refresh_token: String,
    /// Always `"Bearer"`.
    pub token_type: &'static str,
    /// The access token's lifetime in seconds.
    pub expires_in: u64,
    /// The token session's public handle (the access token's `sid`).
    #[serde(skip)]
    pub sid: SessionHandle,
}

impl fmt::Debug for TokenPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenPair")
            .field("access_token", &"<redacted>")
            .field("refresh_token", &"<redacted>")
            .field("expires_in", &self.expires_in)
            .field("sid", &self.sid)
            .finish()
    }
}

/// Why a sign-in, refresh or logout of a token session failed.
///
/// ```
/// use sessionware::token::RefreshError;
/// assert_eq!(RefreshError::Reused.status(), http::StatusCode::UNAUTHORIZED);
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RefreshError {
    /// The refresh token is malformed, signed by no known key, not a
    /// refresh token, or names a session that ended or expired (OAuth's
    /// `invalid_grant`).
    #[error("the refresh token is invalid or its session ended")]
    Invalid,
    /// A refresh token that was already used was presented again: its
    /// whole family (the session) was ended (`invalid_grant`).
    #[error("a refresh token was used twice: its session was ended")]
    Reused,
    /// The session layer refused or failed: a per-user session limit
    /// ([`SessionError::TooManySessions`]), or a store failure (fails
    /// closed).
    #[error(transparent)]
    Session(#[from] SessionError),
    /// The access token could not be signed.
    #[error("the access token could not be signed")]
    Sign,
}

impl RefreshError {
    /// The HTTP status for the client: `401` for an invalid or reused
    /// refresh token, the session error's status otherwise, `500` when
    /// signing failed.
    pub fn status(&self) -> http::StatusCode {
        match self {
            Self::Invalid | Self::Reused => http::StatusCode::UNAUTHORIZED,
            Self::Session(e) => e.status(),
            Self::Sign => http::StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// The response a token endpoint gives for the error: `401` with
/// `{"error":"invalid_grant"}` for an invalid or reused refresh token, the
/// [`SessionError`]'s own short generic response otherwise (never the
/// store's message, which may name hosts), `500` when signing failed; always
/// `Cache-Control: no-store`.
///
/// ```
/// use axum_core::response::IntoResponse;
/// use sessionware::token::RefreshError;
/// let res = RefreshError::Reused.into_response();
/// assert_eq!(res.status(), 401);
/// assert_eq!(res.headers()["cache-control"], "no-store");
/// ```
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
impl axum_core::response::IntoResponse for RefreshError {
    fn into_response(self) -> axum_core::response::Response {
        let status = self.status();
        let mut res = match self {
            Self::Invalid | Self::Reused => {
                let body = r#"{"error":"invalid_grant"}"#;
                (status, [(http::header::CONTENT_TYPE, "application/json")], body).into_response()
            }
            Self::Session(e) => e.into_response(),
            Self::Sign => (status, status.canonical_reason().unwrap_or("error")).into_response(),
        };
        res.headers_mut().insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
        res
    }
}

impl From<MintError> for RefreshError {
    fn from(e: MintError) -> Self {
        match e {
            MintError::Session(e) => Self::Session(e),
            MintError::NotAuthenticated => Self::Invalid,
            MintError::Sign => Self::Sign,
        }
    }
}

fn store_failed(e: StoreError) -> RefreshError {
    RefreshError::Session(SessionError::Store(e))
}

/// Signs API clients in to token sessions, refreshes them and logs them
/// out: a server session per client in the session layer's store, an
/// opaque refresh token that rotates on every use (reuse ends the session),
/// and access tokens from a [`TokenIssuer`] bound to the session's handle.
/// Cheap to clone.
///
/// # What a refresh token is
///
/// A refresh token is the ID of a server session of its own, signed for
/// refreshing (the MAC covers `refresh:`, the issuer and the audience, so
/// it is never accepted as a session cookie or header token, nor they as
/// it, nor by token sessions of another issuer or audience).
/// It is 128 random bits (a session ID) behind the crate's usual token format: the store
/// keeps only the digest of the ID ([`StorageKey`]), never the token (R76).
/// The session it names is the token family: every store, user index,
/// timeout and cutoff of the session layer applies to it.
///
/// # Rotation and reuse (R77–R79)
///
/// [`TokenSessions::refresh`] rotates the session's ID with the store's one
/// atomic [`rotate`](crate::store::SessionStore::rotate): the presented
/// token dies, a new one is issued, and the old key keeps a
/// [`Retired`] pointer until the family's idle deadline after the refresh
/// (instead of a browser renewal's two minutes): whoever could still have
/// used the old token (their own last refresh was no later than this one)
/// comes back within that window. A retired token presented again is a
/// reuse: the family's live session is ended (found by following the
/// pointers, ended by handle so that a rotation meanwhile does not save
/// it), the retired keys walked are deleted (a replay costs one lookup
/// afterwards), a [`RefreshReused`](crate::EventKind::RefreshReused) event
/// is emitted, and the legitimate holder's next refresh fails too (RFC 9700
/// §4.14.2). Past the window an old token is only invalid. Two refreshes
/// racing with the same token: the store lets exactly one rotate; the other
/// finds the key retired, which is a reuse. There is no grace window (R80's
/// default of 0): a client whose response was lost signs in again.
///
/// A family holds one retired key per refresh within its idle window.
/// Rate-limit the refresh endpoint as you would a login endpoint.
///
/// # Lifetimes and revocation (R81, R50)
///
/// A refresh is the family's activity: it moves the idle deadline and never
/// the absolute one, both checked where every lookup's are. A client that
/// does not refresh within the idle timeout, or whose session reached its
/// absolute timeout, gets [`RefreshError::Invalid`]. A logout
/// ([`TokenSessions::logout`]), a [`revoke`](crate::Session::revoke) or
/// [`revoke_others`](crate::Session::revoke_others) from the user's browser,
/// [`credentials_changed`](crate::Session::credentials_changed) and a
/// [`SessionControl`](crate::SessionControl) cutoff all end the family, and
/// a [checked](super::TokenLayer::checked) verifier refuses its access
/// tokens within its cache bound. A refresh that a cutoff overtook between
/// its lookup and its rotation mints nothing (the cutoffs are read once
/// more after the rotation).
///
/// # Example
///
/// ```
/// use sessionware::{Keys, SessionLayer, store::MemoryStore};
/// use sessionware::token::{RefreshError, TokenAlgorithm, TokenIssuer, TokenKey, TokenKeys, TokenSessions};
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let layer = SessionLayer::new(MemoryStore::default(), Keys::generate().unwrap());
/// let keys = TokenKeys::new([TokenKey::generate("k1", TokenAlgorithm::EdDsa).unwrap()]).unwrap();
/// let issuer = TokenIssuer::new(keys, "https://auth.example", "api").unwrap();
/// let tokens = TokenSessions::new(&layer, issuer).unwrap();
///
/// let first = tokens.sign_in("alice").await.unwrap(); // after checking the password
/// let second = tokens.refresh(&first.refresh_token).await.unwrap();
/// assert_eq!(second.sid, first.sid); // the same session, a new refresh token
/// // The first token again: a reuse. The session ends, the newest token with it.
/// assert!(matches!(tokens.refresh(&first.refresh_token).await, Err(RefreshError::Reused)));
/// assert!(matches!(tokens.refresh(&second.refresh_token).await, Err(RefreshError::Invalid)));
/// # });
/// ```
#[derive(Clone)]
pub struct TokenSessions {
    shared: Arc<Shared>,
    issuer: TokenIssuer,
    persistent: bool,
    /// What the refresh tokens' MAC binds: the issuer and the audience,
    /// length-prefixed so that no two pairs give the same bytes.
    purpose: Arc<str>,
}

impl fmt::Debug for TokenSessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSessions")
            .field("issuer", &self.issuer)
            .field("persistent", &self.persistent)
            .finish_non_exhaustive()
    }
}

impl TokenSessions {
    /// Token sessions in `sessions`' store, under its configuration
    /// (timeouts, per-user limit, cutoffs, events, clock), minting access
    /// tokens with `issuer`.
    ///
    /// # Errors
    ///
    /// [`TokenConfigError::NoUserIndex`] when the layer's store has no
    /// per-user index (a reuse ends its family by handle, and a logout by
    /// the access token's `sid`).
    pub fn new(sessions: &SessionLayer, issuer: TokenIssuer) -> Result<Self, TokenConfigError> {
        if sessions.shared.index.is_none() {
            return Err(TokenConfigError::NoUserIndex);
        }
        let purpose = format!("{}:{}{}", issuer.issuer().len(), issuer.issuer(), issuer.audience()).into();
        Ok(Self { shared: Arc::clone(&sessions.shared), issuer, persistent: false, purpose })
    }

    /// Signs clients in as remembered sessions, with the layer's
    /// [persistent timeouts](crate::SessionConfigBuilder::persistent_idle_timeout)
    /// (30 days idle and 90 absolute by default) instead of the browser
    /// session's.
    ///
    /// ```
    /// # use sessionware::{Keys, SessionLayer, store::MemoryStore};
    /// # use sessionware::token::{TokenAlgorithm, TokenIssuer, TokenKey, TokenKeys, TokenSessions};
    /// # let layer = SessionLayer::new(MemoryStore::default(), Keys::generate().unwrap());
    /// # let keys = TokenKeys::new([TokenKey::generate("k1", TokenAlgorithm::EdDsa).unwrap()]).unwrap();
    /// # let issuer = TokenIssuer::new(keys, "https://auth.example", "api").unwrap();
    /// let tokens = TokenSessions::new(&layer, issuer).unwrap().persistent(true);
    /// assert!(format!("{tokens:?}").contains("persistent: true"));
    /// ```
    pub fn persistent(mut self, persistent: bool) -> Self {
        self.persistent = persistent;
        self
    }

    /// The issuer of the access tokens.
    pub fn issuer(&self) -> &TokenIssuer {
        &self.issuer
    }

    /// Signs `user` in to a new token session (call it after checking the
    /// credentials): the same login as [`Session::login`] (the user's
    /// credential epoch, the per-user session limit, a
    /// [`LoggedIn`](EventKind::LoggedIn) event), and the first pair.
    ///
    /// # Errors
    ///
    /// [`RefreshError::Session`] when the store fails or the per-user limit
    /// refuses the login ([`SessionError::TooManySessions`]).
    pub async fn sign_in(&self, user: &str) -> Result<TokenPair, RefreshError> {
        self.sign_in_with(SignIn::new(user)).await
    }

    /// [`sign_in`](Self::sign_in) with how the client authenticated (the
    /// methods, the assurance level, an identity provider's session), as
    /// [`Session::login_with`] records it: the token session's
    /// [`SessionInfo`](crate::SessionInfo) shows it, and a back-channel
    /// logout ([`SessionControl::end_provider_sessions`](crate::SessionControl::end_provider_sessions))
    /// ends the family with the provider's session.
    ///
    /// # Errors
    ///
    /// As [`sign_in`](Self::sign_in).
    ///
    /// ```
    /// use sessionware::{AuthMethod, SignIn};
    /// # use sessionware::{Keys, SessionLayer, store::MemoryStore};
    /// # use sessionware::token::{TokenAlgorithm, TokenIssuer, TokenKey, TokenKeys, TokenSessions};
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// # let layer = SessionLayer::new(MemoryStore::default(), Keys::generate().unwrap());
    /// # let keys = TokenKeys::new([TokenKey::generate("k1", TokenAlgorithm::EdDsa).unwrap()]).unwrap();
    /// # let tokens = TokenSessions::new(&layer, TokenIssuer::new(keys, "https://auth.example", "api").unwrap()).unwrap();
    /// let pair = tokens.sign_in_with(SignIn::new("alice").method(AuthMethod::Password).method(AuthMethod::Totp)).await.unwrap();
    /// assert!(tokens.refresh(&pair.refresh_token).await.is_ok());
    /// # });
    /// ```
    pub async fn sign_in_with(&self, sign_in: SignIn) -> Result<TokenPair, RefreshError> {
        let credentials = Credentials::of(&self.shared.config, &HeaderMap::new());
        let session = Session::new(Arc::clone(&self.shared), credentials, None);
        session.login_with(sign_in).await?;
        if self.persistent {
            session.set_persistent(true).await?;
        }
        let (sid, access_token) = self.issuer.mint_with_handle(&session).await?;
        let id = commit_detached(&session)
            .await?
            .ok_or(RefreshError::Session(SessionError::Save(StoreError::Backend("no session was created".into()))))?;
        Ok(self.pair(access_token, &id, sid))
    }

    /// Rotates a refresh token: the presented one dies and a new pair is
    /// issued for the same session. One store lookup, one atomic rotation
    /// and, on a layer with cutoffs, one read of them.
    ///
    /// # Errors
    ///
    /// [`RefreshError::Invalid`] for a token that is not a live refresh
    /// token of this issuer (malformed, forged, ended, expired, or
    /// expired idle); [`RefreshError::Reused`] for one that was already
    /// used (its session is ended now); [`RefreshError::Session`] when the
    /// store fails.
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenPair, RefreshError> {
        let shared = &*self.shared;
        let now = shared.clock.now_ms();
        let emitter = self.emitter(now);
        let key = self.verify(refresh_token, &emitter)?;
        let store = shared.store();
        let record = match shared.timed(self.emitter(now), "lookup", Some(&key), store.lookup(&key, now)).await {
            Ok(Some(Stored::Live(record))) => record,
            Ok(Some(Stored::Retired(retired))) => return Err(self.reused(&key, retired, now).await),
            Ok(None) => {
                emitter.emit(EventKind::Rejected(RejectReason::Unknown), Some(&key), None);
                return Err(RefreshError::Invalid);
            }
            Err(e) => return Err(store_failed(e)),
        };
        let config = &shared.config;
        if let Err(deadline) = expiry::check(&record.meta, now, config) {
            emitter.emit(EventKind::Expired(deadline), Some(&key), record.meta.user());
            let _ = shared.timed(self.emitter(now), "delete", Some(&key), store.delete(&key, now)).await;
            return Err(RefreshError::Invalid);
        }
        let Some(user) = record.meta.user() else {
            return Err(RefreshError::Invalid);
        };
        // The refresh is the family's activity: the idle deadline moves, the
        // absolute one does not. The retired key stays until the new idle
        // deadline: a holder of the old token who could still have used it
        // (whose own last refresh was no later than this one) comes back
        // within that window and is seen as a reuse.
        let idle_deadline = expiry::expires_at(&record.meta, now, config);
        let mut rotation = Rotation::new(now, ChangeSet::new(now, idle_deadline));
        rotation.retired_until = rotation.retired_until.max(idle_deadline);
        for _ in 0..ATTEMPTS {
            let (id, new_key) = successor_id(shared, &key)?;
            let rotate = store.rotate(&key, &new_key, &rotation);
            match shared.timed(self.emitter(now), "rotate", Some(&key), rotate).await.map_err(store_failed)? {
                Rotated::Done | Rotated::Evicted { .. } => {
                    if self.cut_meanwhile(&record.meta, &new_key, now).await? {
                        return Err(RefreshError::Invalid);
                    }
                    emitter.renewed(&key, &new_key, RenewReason::Refresh, Some(user));
                    let access_token = self.issuer.mint_for(user.to_string(), record.meta.handle, now)?;
                    return Ok(self.pair(access_token, &id, record.meta.handle));
                }
                Rotated::Taken => continue,
                // Another refresh with the same token rotated first.
                Rotated::Retired(retired) => return Err(self.reused(&key, retired, now).await),
                // Ended between the lookup and the rotation.
                _ => return Err(RefreshError::Invalid),
            }
        }
        Err(store_failed(StoreError::Backend("no unique session id after retries".into())))
    }

    /// Ends the token session an access token was minted from (a client's
    /// logout): `true` if it was live. The token's other checks (signature,
    /// `exp`, …) are the verifier's: call this with claims from a
    /// [`TokenLayer`](super::TokenLayer). Its access tokens are refused by a
    /// checked verifier within its cache bound, and its refresh token at
    /// once.
    ///
    /// # Errors
    ///
    /// [`RefreshError::Session`] when the store fails.
    pub async fn logout(&self, claims: &AccessClaims) -> Result<bool, RefreshError> {
        let shared = &*self.shared;
        let now = shared.clock.now_ms();
        let index = shared.index()?;
        let call = index.delete_by_handle(&claims.sub, &claims.sid, now);
        let ended = shared.timed(self.emitter(now), "delete", None, call).await.map_err(store_failed)?;
        if ended {
            self.emitter(now).emit(EventKind::Purged, None, Some(&claims.sub));
        }
        Ok(ended)
    }

    /// Whether a cutoff (a password change, an end of every session) ended
    /// the family after its lookup: a store may rotate a session that a
    /// cutoff ended (its next lookup refuses it), but no access token may
    /// be minted for it. The successor under `new_key` is deleted then.
    /// One read of the cutoffs, after the rotation: a cutoff made before it
    /// is seen; one made after it ends the new pair like any other.
    async fn cut_meanwhile(
        &self,
        meta: &crate::Metadata,
        new_key: &StorageKey,
        now: u64,
    ) -> Result<bool, RefreshError> {
        let shared = &*self.shared;
        let Some(cutoffs) = shared.cutoffs.as_deref() else { return Ok(false) };
        let call = cutoffs.cutoff(meta.user(), now);
        let cutoff = shared.timed(self.emitter(now), "cutoff", None, call).await.map_err(store_failed)?;
        if !cutoff.ends_parts(meta.created_at, meta.auth.as_ref().map(|a| a.epoch)) {
            return Ok(false);
        }
        let delete = shared.store().delete(new_key, now);
        shared.timed(self.emitter(now), "delete", Some(new_key), delete).await.map_err(store_failed)?;
        self.emitter(now).emit(EventKind::WriteDropped, Some(new_key), meta.user());
        Ok(true)
    }

    /// The refresh token's storage key, if it verifies as one of this
    /// issuer's (no store call otherwise).
    fn verify(&self, token: &str, emitter: &Emitter<'_>) -> Result<StorageKey, RefreshError> {
        let purpose = Purpose::Refresh(&self.purpose);
        match self.shared.keys.verify_purpose(purpose, token.as_bytes()) {
            Ok(verified) => Ok(verified.id.storage_key()),
            Err(rejection) => {
                emitter.rejected(rejection.reason(), token.len());
                Err(RefreshError::Invalid)
            }
        }
    }

    /// A retired refresh token was presented (or lost a race): ends the
    /// family's live session, wherever rotations took it, deletes the
    /// retired keys on the way (a replay of any of them then costs one
    /// lookup and raises no second alert), and answers
    /// [`RefreshError::Reused`].
    async fn reused(&self, key: &StorageKey, retired: Retired, now: u64) -> RefreshError {
        let shared = &*self.shared;
        let store = shared.store();
        let mut walked = vec![*key];
        let mut next = retired.successor;
        let mut user = None;
        for _ in 0..MAX_WALK {
            let lookup = store.lookup(&next, now);
            match shared.timed(self.emitter(now), "lookup", Some(&next), lookup).await {
                Ok(Some(Stored::Retired(r))) => {
                    walked.push(next);
                    next = r.successor;
                }
                Ok(Some(Stored::Live(record))) => {
                    if let (Some(u), Ok(index)) = (record.meta.user(), shared.index()) {
                        let call = index.delete_by_handle(u, &record.meta.handle, now);
                        if let Err(e) = shared.timed(self.emitter(now), "delete", Some(&next), call).await {
                            return store_failed(e);
                        }
                        user = Some(u.to_string());
                    }
                    break;
                }
                // Already ended (logout, an earlier reuse, expiry).
                Ok(None) => break,
                Err(e) => return store_failed(e),
            }
        }
        self.emitter(now).emit(EventKind::RefreshReused, Some(key), user.as_deref());
        // The family is ended: its retired keys only cost lookups now.
        for old in &walked {
            let delete = store.delete(old, now);
            if let Err(e) = shared.timed(self.emitter(now), "delete", Some(old), delete).await {
                return store_failed(e);
            }
        }
        RefreshError::Reused
    }

    fn pair(&self, access_token: String, id: &SessionId, sid: SessionHandle) -> TokenPair {
        let mut refresh_token = String::with_capacity(crate::keys::TOKEN_ENCODED_LEN);
        self.shared.keys.sign_purpose_into(Purpose::Refresh(&self.purpose), id, &mut refresh_token);
        TokenPair { access_token, refresh_token, token_type: "Bearer", expires_in: self.issuer.expires_in(), sid }
    }

    fn emitter(&self, now: u64) -> Emitter<'_> {
        Emitter { hook: self.shared.on_event.as_ref(), route: None, now }
    }
}
