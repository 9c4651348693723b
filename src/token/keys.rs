//! The token key ring: one algorithm per key, the first key signs, every key
//! verifies, selected by `kid` only.

use std::{fmt, sync::Arc};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use zeroize::Zeroizing;

use super::{valid_kid, TokenConfigError};

/// The algorithm a token key is pinned to (R69): tokens are verified with
/// it and nothing else, whatever their header says.
///
/// ```
/// use sessionware::token::TokenAlgorithm;
/// assert_eq!(TokenAlgorithm::EdDsa.to_string(), "EdDSA");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TokenAlgorithm {
    /// Ed25519 signatures (the default of [`TokenKey::generate`]'s callers
    /// in the examples): small keys, fast, deterministic.
    EdDsa,
    /// ECDSA on P-256 with SHA-256.
    Es256,
    /// HMAC-SHA256 with a shared secret: opt-in, for a single service that
    /// mints and verifies its own tokens. Its key never appears in the JWKS.
    Hs256,
}

impl TokenAlgorithm {
    pub(crate) fn jwt(self) -> Algorithm {
        match self {
            TokenAlgorithm::EdDsa => Algorithm::EdDSA,
            TokenAlgorithm::Es256 => Algorithm::ES256,
            TokenAlgorithm::Hs256 => Algorithm::HS256,
        }
    }

    /// The JOSE name (`alg`).
    ///
    /// ```
    /// use sessionware::token::TokenAlgorithm;
    /// assert_eq!(TokenAlgorithm::Es256.name(), "ES256");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            TokenAlgorithm::EdDsa => "EdDSA",
            TokenAlgorithm::Es256 => "ES256",
            TokenAlgorithm::Hs256 => "HS256",
        }
    }
}

impl fmt::Display for TokenAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The public part of an asymmetric key, as the JWKS shows it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Public {
    /// Ed25519: the 32-byte public key.
    Ed25519([u8; 32]),
    /// P-256: the affine coordinates.
    P256 { x: [u8; 32], y: [u8; 32] },
    /// HMAC: nothing public.
    Secret,
}

/// One token key: a `kid`, the algorithm it is pinned to, the key to verify
/// with and (unless it was read from a JWKS) the key to sign with.
///
/// `Debug` shows the `kid` and algorithm only.
///
/// ```
/// use sessionware::token::{TokenAlgorithm, TokenKey};
/// let key = TokenKey::generate("2025-01", TokenAlgorithm::EdDsa).unwrap();
/// assert_eq!(key.kid(), "2025-01");
/// assert!(!format!("{key:?}").contains("PRIVATE"));
/// ```
#[derive(Clone)]
pub struct TokenKey {
    pub(crate) kid: Box<str>,
    pub(crate) alg: TokenAlgorithm,
    pub(crate) signing: Option<EncodingKey>,
    pub(crate) verifying: DecodingKey,
    pub(crate) public: Public,
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("signs", &self.signing.is_some())
            .finish_non_exhaustive()
    }
}

fn checked_kid(kid: &str) -> Result<Box<str>, TokenConfigError> {
    if valid_kid(kid) {
        Ok(kid.into())
    } else {
        Err(TokenConfigError::InvalidKid)
    }
}

impl TokenKey {
    /// A new random key of `alg` from the OS CSPRNG (an HS256 secret of 32
    /// bytes). For keys that outlive the process, load them with
    /// [`from_pem`](Self::from_pem) instead.
    ///
    /// # Errors
    ///
    /// [`TokenConfigError::InvalidKid`]; [`TokenConfigError::InvalidKey`]
    /// if the OS has no randomness.
    ///
    /// ```
    /// use sessionware::token::{TokenAlgorithm, TokenKey};
    /// let key = TokenKey::generate("k1", TokenAlgorithm::Es256).unwrap();
    /// assert_eq!(key.algorithm(), TokenAlgorithm::Es256);
    /// ```
    pub fn generate(kid: &str, alg: TokenAlgorithm) -> Result<Self, TokenConfigError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        rand::TryRngCore::try_fill_bytes(&mut rand::rngs::OsRng, &mut seed[..])
            .map_err(|_| TokenConfigError::InvalidKey(alg))?;
        match alg {
            TokenAlgorithm::Hs256 => Self::hs256(kid, &seed[..]),
            TokenAlgorithm::EdDsa => Self::ed25519(checked_kid(kid)?, ed25519_dalek::SigningKey::from_bytes(&seed)),
            TokenAlgorithm::Es256 => {
                // A 32-byte string is a valid scalar with overwhelming
                // probability; the rare one that is not is an error, not a panic.
                let key =
                    p256::ecdsa::SigningKey::from_slice(&seed[..]).map_err(|_| TokenConfigError::InvalidKey(alg))?;
                Self::p256(checked_kid(kid)?, &key)
            }
        }
    }

    /// A signing key from a PKCS#8 PEM private key (`-----BEGIN PRIVATE
    /// KEY-----`), as `openssl genpkey -algorithm ed25519` or `openssl
    /// genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256` write it.
    ///
    /// # Errors
    ///
    /// [`TokenConfigError::InvalidKid`]; [`TokenConfigError::InvalidKey`]
    /// when `pem` is not a private key of `alg`; HS256 has no PEM form (use
    /// [`hs256`](Self::hs256)).
    ///
    /// ```
    /// use sessionware::token::{TokenAlgorithm, TokenKey};
    /// let pem = "-----BEGIN PRIVATE KEY-----\n\
    ///     MC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n\
    ///     -----END PRIVATE KEY-----\n";
    /// let key = TokenKey::from_pem("k1", TokenAlgorithm::EdDsa, pem).unwrap();
    /// assert_eq!(key.kid(), "k1");
    /// assert!(TokenKey::from_pem("k1", TokenAlgorithm::Es256, pem).is_err());
    /// ```
    pub fn from_pem(kid: &str, alg: TokenAlgorithm, pem: &str) -> Result<Self, TokenConfigError> {
        use ed25519_dalek::pkcs8::DecodePrivateKey as _;
        let kid = checked_kid(kid)?;
        let invalid = |_| TokenConfigError::InvalidKey(alg);
        match alg {
            TokenAlgorithm::EdDsa => {
                Self::ed25519(kid, ed25519_dalek::SigningKey::from_pkcs8_pem(pem).map_err(invalid)?)
            }
            TokenAlgorithm::Es256 => {
                use p256::pkcs8::DecodePrivateKey as _;
                Self::p256(
                    kid,
                    &p256::ecdsa::SigningKey::from_pkcs8_pem(pem).map_err(|_| TokenConfigError::InvalidKey(alg))?,
                )
            }
            TokenAlgorithm::Hs256 => Err(TokenConfigError::InvalidKey(alg)),
        }
    }

    /// A signing key from a PKCS#8 DER private key.
    ///
    /// # Errors
    ///
    /// As [`from_pem`](Self::from_pem).
    ///
    /// ```
    /// use sessionware::token::{TokenAlgorithm, TokenKey};
    /// assert!(TokenKey::from_der("k1", TokenAlgorithm::EdDsa, b"not DER").is_err());
    /// ```
    pub fn from_der(kid: &str, alg: TokenAlgorithm, der: &[u8]) -> Result<Self, TokenConfigError> {
        let kid = checked_kid(kid)?;
        match alg {
            TokenAlgorithm::EdDsa => {
                use ed25519_dalek::pkcs8::DecodePrivateKey as _;
                let key =
                    ed25519_dalek::SigningKey::from_pkcs8_der(der).map_err(|_| TokenConfigError::InvalidKey(alg))?;
                Self::ed25519(kid, key)
            }
            TokenAlgorithm::Es256 => {
                use p256::pkcs8::DecodePrivateKey as _;
                Self::p256(
                    kid,
                    &p256::ecdsa::SigningKey::from_pkcs8_der(der).map_err(|_| TokenConfigError::InvalidKey(alg))?,
                )
            }
            TokenAlgorithm::Hs256 => Err(TokenConfigError::InvalidKey(alg)),
        }
    }

    /// An HS256 key from a shared secret of at least 32 bytes (opt-in: every
    /// service that can verify can also mint).
    ///
    /// # Errors
    ///
    /// [`TokenConfigError::InvalidKid`], [`TokenConfigError::WeakSecret`].
    ///
    /// ```
    /// use sessionware::token::{TokenConfigError, TokenKey};
    /// assert!(TokenKey::hs256("k1", &[7u8; 32]).is_ok());
    /// assert_eq!(TokenKey::hs256("k1", b"short").unwrap_err(), TokenConfigError::WeakSecret);
    /// ```
    pub fn hs256(kid: &str, secret: &[u8]) -> Result<Self, TokenConfigError> {
        let kid = checked_kid(kid)?;
        if secret.len() < 32 {
            return Err(TokenConfigError::WeakSecret);
        }
        Ok(Self {
            kid,
            alg: TokenAlgorithm::Hs256,
            signing: Some(EncodingKey::from_secret(secret)),
            verifying: DecodingKey::from_secret(secret),
            public: Public::Secret,
        })
    }

    fn ed25519(kid: Box<str>, key: ed25519_dalek::SigningKey) -> Result<Self, TokenConfigError> {
        use ed25519_dalek::pkcs8::EncodePrivateKey as _;
        let alg = TokenAlgorithm::EdDsa;
        let der = key.to_pkcs8_der().map_err(|_| TokenConfigError::InvalidKey(alg))?;
        let public = key.verifying_key().to_bytes();
        Ok(Self {
            kid,
            alg,
            signing: Some(EncodingKey::from_ed_der(der.as_bytes())),
            verifying: DecodingKey::from_ed_der(&public),
            public: Public::Ed25519(public),
        })
    }

    fn p256(kid: Box<str>, key: &p256::ecdsa::SigningKey) -> Result<Self, TokenConfigError> {
        use p256::pkcs8::EncodePrivateKey as _;
        let alg = TokenAlgorithm::Es256;
        let der = key.to_pkcs8_der().map_err(|_| TokenConfigError::InvalidKey(alg))?;
        let point = key.verifying_key().to_encoded_point(false);
        let (Some(x), Some(y)) = (point.x(), point.y()) else {
            return Err(TokenConfigError::InvalidKey(alg));
        };
        let (x, y): ([u8; 32], [u8; 32]) = ((*x).into(), (*y).into());
        Ok(Self {
            kid,
            alg,
            signing: Some(EncodingKey::from_ec_der(der.as_bytes())),
            verifying: DecodingKey::from_ec_der(point.as_bytes()),
            public: Public::P256 { x, y },
        })
    }

    /// A verify-only key from its public part (a JWKS entry).
    pub(crate) fn public(kid: &str, public: Public) -> Result<Self, TokenConfigError> {
        let kid = checked_kid(kid)?;
        let (alg, verifying) = match &public {
            Public::Ed25519(x) => {
                // A small-order point is no real key: ed25519 verification
                // accepts a forged signature for every message under it.
                ed25519_dalek::VerifyingKey::from_bytes(x)
                    .ok()
                    .filter(|key| !key.is_weak())
                    .ok_or(TokenConfigError::Jwks("invalid Ed25519 key"))?;
                (TokenAlgorithm::EdDsa, DecodingKey::from_ed_der(x))
            }
            Public::P256 { x, y } => {
                let point = p256::EncodedPoint::from_affine_coordinates(&(*x).into(), &(*y).into(), false);
                p256::ecdsa::VerifyingKey::from_encoded_point(&point)
                    .map_err(|_| TokenConfigError::Jwks("invalid P-256 key"))?;
                (TokenAlgorithm::Es256, DecodingKey::from_ec_der(point.as_bytes()))
            }
            Public::Secret => return Err(TokenConfigError::Jwks("a JWKS holds public keys only")),
        };
        Ok(Self { kid, alg, signing: None, verifying, public })
    }

    /// The key id, as the tokens' `kid` header names it.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm the key is pinned to.
    pub fn algorithm(&self) -> TokenAlgorithm {
        self.alg
    }
}

/// The token key ring: the first key signs new tokens, every key verifies
/// the tokens whose `kid` names it. Rotate by putting a new key first, and
/// drop the old one once its last tokens expired (the access tokens' TTL
/// later). Cheap to clone.
///
/// ```
/// use sessionware::token::{TokenAlgorithm, TokenKey, TokenKeys};
/// let keys = TokenKeys::new([
///     TokenKey::generate("2025-02", TokenAlgorithm::EdDsa).unwrap(), // signs
///     TokenKey::generate("2025-01", TokenAlgorithm::EdDsa).unwrap(), // still verifies
/// ])
/// .unwrap();
/// assert_eq!(keys.signing().unwrap().kid(), "2025-02");
/// ```
#[derive(Clone, Debug)]
pub struct TokenKeys {
    keys: Arc<[TokenKey]>,
}

impl TokenKeys {
    /// A ring of `keys`, the first one signing.
    ///
    /// # Errors
    ///
    /// [`TokenConfigError::NoKeys`], [`TokenConfigError::DuplicateKid`].
    pub fn new(keys: impl IntoIterator<Item = TokenKey>) -> Result<Self, TokenConfigError> {
        let keys: Arc<[TokenKey]> = keys.into_iter().collect();
        if keys.is_empty() {
            return Err(TokenConfigError::NoKeys);
        }
        for (i, key) in keys.iter().enumerate() {
            if keys.iter().take(i).any(|k| k.kid == key.kid) {
                return Err(TokenConfigError::DuplicateKid(key.kid.to_string()));
            }
        }
        Ok(Self { keys })
    }

    /// The key that signs: the first, if it has a private part.
    pub fn signing(&self) -> Option<&TokenKey> {
        self.keys.first().filter(|k| k.signing.is_some())
    }

    /// Every key, the signing one first.
    pub fn iter(&self) -> impl Iterator<Item = &TokenKey> {
        self.keys.iter()
    }

    /// The key a token's `kid` names: only a well-formed `kid` is looked up,
    /// only in this ring (R70).
    pub(crate) fn by_kid(&self, kid: &str) -> Option<(usize, &TokenKey)> {
        if !valid_kid(kid) {
            return None;
        }
        self.keys.iter().enumerate().find(|(_, k)| &*k.kid == kid)
    }
}
