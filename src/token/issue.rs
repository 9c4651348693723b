//! Minting an access token from a logged-in session.

use std::{fmt, sync::Arc, time::Duration};

use jsonwebtoken::Header;

use super::{claims::TYP, AccessClaims, TokenConfigError, TokenKeys, DEFAULT_TTL, MAX_TTL};
use crate::{Session, SessionError, SessionHandle};

/// Why no token was minted.
///
/// ```
/// use sessionware::token::MintError;
/// assert_eq!(MintError::NotAuthenticated.to_string(), "no user is logged in");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MintError {
    /// The session has no logged-in user (or no session exists).
    #[error("no user is logged in")]
    NotAuthenticated,
    /// Loading the session failed.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// The signature could not be made (a key that does not sign).
    #[error("the token could not be signed")]
    Sign,
}

struct Inner {
    keys: TokenKeys,
    issuer: Box<str>,
    audience: Box<str>,
    ttl: Duration,
}

/// Mints access tokens (JWT, `typ: at+jwt`) from logged-in sessions: `sub`
/// is the user, `sid` the session's public handle, `jti` 128 random bits,
/// `exp` [`ttl`](Self::ttl) after `iat`, signed by the ring's first key
/// with its `kid` in the header. Cheap to clone.
///
/// ```
/// use sessionware::token::{TokenAlgorithm, TokenIssuer, TokenKey, TokenKeys};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let keys = TokenKeys::new([TokenKey::generate("k1", TokenAlgorithm::EdDsa)?])?;
/// let issuer = TokenIssuer::new(keys, "https://auth.example", "api")?
///     .ttl(std::time::Duration::from_secs(120))?;
/// assert_eq!(issuer.expires_in(), 120);
/// // In a handler: `let token = issuer.mint(&session).await?;`
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct TokenIssuer {
    inner: Arc<Inner>,
}

impl fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("keys", &self.inner.keys)
            .field("issuer", &self.inner.issuer)
            .field("audience", &self.inner.audience)
            .field("ttl", &self.inner.ttl)
            .finish()
    }
}

impl TokenIssuer {
    /// An issuer named `issuer` (the `iss` claim) minting for `audience`
    /// (`aud`), with the default lifetime ([`DEFAULT_TTL`](super::DEFAULT_TTL), 5 minutes).
    ///
    /// # Errors
    ///
    /// [`TokenConfigError::NoSigningKey`] when the ring's first key has no
    /// private part.
    pub fn new(keys: TokenKeys, issuer: &str, audience: &str) -> Result<Self, TokenConfigError> {
        if keys.signing().is_none() {
            return Err(TokenConfigError::NoSigningKey);
        }
        Ok(Self { inner: Arc::new(Inner { keys, issuer: issuer.into(), audience: audience.into(), ttl: DEFAULT_TTL }) })
    }

    /// The tokens' lifetime, whole seconds (R74).
    ///
    /// # Errors
    ///
    /// [`TokenConfigError::OutOfRange`] below one second or above
    /// [`MAX_TTL`](super::MAX_TTL) (1 hour).
    pub fn ttl(self, ttl: Duration) -> Result<Self, TokenConfigError> {
        if ttl < Duration::from_secs(1) || ttl > MAX_TTL {
            return Err(TokenConfigError::OutOfRange { what: "the access token TTL", max: MAX_TTL });
        }
        let inner = &*self.inner;
        let ttl = Duration::from_secs(ttl.as_secs());
        Ok(Self {
            inner: Arc::new(Inner {
                keys: inner.keys.clone(),
                issuer: inner.issuer.clone(),
                audience: inner.audience.clone(),
                ttl,
            }),
        })
    }

    /// The tokens' lifetime in seconds (an OAuth response's `expires_in`).
    pub fn expires_in(&self) -> u64 {
        self.inner.ttl.as_secs()
    }

    /// The key ring (for its [`jwks`](TokenKeys::jwks), or a verifier).
    pub fn keys(&self) -> &TokenKeys {
        &self.inner.keys
    }

    /// The `iss` claim of the tokens.
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// The `aud` claim of the tokens.
    pub fn audience(&self) -> &str {
        &self.inner.audience
    }

    /// Mints an access token for the session's user, bound to the session
    /// (`sid`). A session logged in during this request is bound under the
    /// handle it is stored with when the request ends.
    ///
    /// # Errors
    ///
    /// [`MintError::NotAuthenticated`] without a logged-in user (or after a
    /// logout in this request); [`MintError::Session`] when loading fails.
    ///
    /// ```
    /// # use sessionware::{Session, token::{MintError, TokenIssuer}};
    /// async fn token(session: Session, issuer: TokenIssuer) -> Result<String, MintError> {
    ///     issuer.mint(&session).await
    /// }
    /// ```
    pub async fn mint(&self, session: &Session) -> Result<String, MintError> {
        Ok(self.mint_with_handle(session).await?.1)
    }

    /// [`mint`](Self::mint), with the handle the token is bound to.
    pub(crate) async fn mint_with_handle(&self, session: &Session) -> Result<(SessionHandle, String), MintError> {
        let (sub, sid) = session.token_subject().await?;
        Ok((sid, self.mint_for(sub, sid, session.now())?))
    }

    /// A token for `sub` on the session `sid`, issued at `now_ms`.
    pub(crate) fn mint_for(&self, sub: String, sid: SessionHandle, now_ms: u64) -> Result<String, MintError> {
        let inner = &*self.inner;
        let key = inner.keys.signing().ok_or(MintError::Sign)?;
        let signing = key.signing.as_ref().ok_or(MintError::Sign)?;
        let iat = now_ms / 1000;
        let claims = AccessClaims {
            sub,
            sid,
            iat,
            exp: iat.saturating_add(inner.ttl.as_secs()),
            nbf: None,
            jti: SessionHandle::generate().to_string(),
            aud: inner.audience.to_string(),
            iss: inner.issuer.to_string(),
        };
        let mut header = Header::new(key.alg.jwt());
        header.typ = Some(TYP.into());
        header.kid = Some(key.kid.to_string());
        jsonwebtoken::encode(&header, &claims, signing).map_err(|_| MintError::Sign)
    }
}

impl Session {
    /// The logged-in user and the session's handle, for a token.
    async fn token_subject(&self) -> Result<(String, SessionHandle), MintError> {
        let state = self.ensure_loaded().await?;
        let record = state.view.as_ref().ok_or(MintError::NotAuthenticated)?;
        let user = record.meta.user().ok_or(MintError::NotAuthenticated)?;
        Ok((user.to_string(), record.meta.handle))
    }
}
