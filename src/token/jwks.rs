//! The JWKS document (RFC 7517) of a key ring's public keys, and a
//! verify-only ring read from one.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use serde::{Deserialize, Serialize};

use super::{
    keys::{Public, TokenKey},
    TokenConfigError, TokenKeys,
};

/// One public key of a [`Jwks`]: an OKP (Ed25519) or EC (P-256) signing
/// key, with its `kid` and `alg`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Jwk {
    /// Key type: `OKP` or `EC`.
    pub kty: String,
    /// Curve: `Ed25519` or `P-256`.
    pub crv: String,
    /// The public key (Ed25519) or the x coordinate (P-256), base64url.
    pub x: String,
    /// The y coordinate (P-256), base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    /// The key id.
    pub kid: String,
    /// The algorithm: `EdDSA` or `ES256`.
    pub alg: String,
    /// Always `sig`.
    #[serde(rename = "use")]
    pub use_: String,
}

/// A JWKS document: `{"keys": [...]}`, the public keys of a ring (an HS256
/// key never appears). Serve it at `/.well-known/jwks.json` for services
/// that verify with [`TokenKeys::from_jwks`].
///
/// ```
/// use sessionware::token::{TokenAlgorithm, TokenKey, TokenKeys};
/// let keys = TokenKeys::new([
///     TokenKey::generate("ed", TokenAlgorithm::EdDsa).unwrap(),
///     TokenKey::hs256("hs", &[1u8; 32]).unwrap(),
/// ])
/// .unwrap();
/// let json = serde_json::to_value(keys.jwks()).unwrap();
/// assert_eq!(json["keys"].as_array().unwrap().len(), 1); // no HS256 key
/// assert_eq!(json["keys"][0]["kid"], "ed");
/// assert_eq!(json["keys"][0]["use"], "sig");
/// assert!(json["keys"][0].get("d").is_none()); // no private part
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    /// The keys.
    pub keys: Vec<Jwk>,
}

/// Fixed-size base64url field of a JWK.
fn bytes32(text: &str) -> Result<[u8; 32], TokenConfigError> {
    let mut out = [0u8; 32];
    match URL_SAFE_NO_PAD.decode_slice(text, &mut out) {
        Ok(32) => Ok(out),
        _ => Err(TokenConfigError::Jwks("a key coordinate is not 32 bytes of base64url")),
    }
}

impl TokenKeys {
    /// The JWKS document of the ring's public keys (EdDSA and ES256 keys,
    /// in ring order; never an HS256 key, never a private part).
    pub fn jwks(&self) -> Jwks {
        let keys = self
            .iter()
            .filter_map(|key| {
                let (kty, crv, x, y) = match &key.public {
                    Public::Ed25519(x) => ("OKP", "Ed25519", URL_SAFE_NO_PAD.encode(x), None),
                    Public::P256 { x, y } => {
                        ("EC", "P-256", URL_SAFE_NO_PAD.encode(x), Some(URL_SAFE_NO_PAD.encode(y)))
                    }
                    Public::Secret => return None,
                };
                Some(Jwk {
                    kty: kty.into(),
                    crv: crv.into(),
                    x,
                    y,
                    kid: key.kid.to_string(),
                    alg: key.alg.name().into(),
                    use_: "sig".into(),
                })
            })
            .collect();
        Jwks { keys }
    }

    /// A verify-only ring from a JWKS document (for a downstream service
    /// with no store and no private key). Every key must be an Ed25519 key
    /// with `alg` `EdDSA` or a P-256 key with `alg` `ES256`, for `use`
    /// `sig`: the algorithm is pinned by the document, never by a token.
    ///
    /// # Errors
    ///
    /// [`TokenConfigError::Jwks`] for anything else, and as [`new`](Self::new).
    ///
    /// ```
    /// use sessionware::token::{TokenAlgorithm, TokenKey, TokenKeys};
    /// let keys = TokenKeys::new([TokenKey::generate("k1", TokenAlgorithm::Es256).unwrap()]).unwrap();
    /// let json = serde_json::to_string(&keys.jwks()).unwrap();
    /// let downstream = TokenKeys::from_jwks(&json).unwrap();
    /// assert!(downstream.signing().is_none()); // verifies only
    /// assert_eq!(downstream.jwks(), keys.jwks());
    /// ```
    pub fn from_jwks(json: &str) -> Result<Self, TokenConfigError> {
        let doc: Jwks = serde_json::from_str(json).map_err(|_| TokenConfigError::Jwks("not a JWKS document"))?;
        let keys = doc
            .keys
            .iter()
            .map(|jwk| {
                if jwk.use_ != "sig" {
                    return Err(TokenConfigError::Jwks("a key is not for signatures"));
                }
                let public = match (jwk.kty.as_str(), jwk.crv.as_str(), jwk.alg.as_str(), &jwk.y) {
                    ("OKP", "Ed25519", "EdDSA", None) => Public::Ed25519(bytes32(&jwk.x)?),
                    ("EC", "P-256", "ES256", Some(y)) => Public::P256 { x: bytes32(&jwk.x)?, y: bytes32(y)? },
                    _ => return Err(TokenConfigError::Jwks("only EdDSA (Ed25519) and ES256 (P-256) keys")),
                };
                TokenKey::public(&jwk.kid, public)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(keys)
    }
}
