//! Signing keys, the key ring, and the signed session token.
//!
//! A token is `base64url(version ‖ key id ‖ session id ‖ tag)` where the tag is
//! HMAC-SHA256 over a domain label, the purpose (the transport and its name:
//! see [`Purpose`]), the version, the key id and the session id. The ring's
//! first key signs; every key verifies, picked by key id (no trial
//! verification).

use std::{fmt, sync::Arc};

use base64::{
    alphabet,
    engine::{general_purpose::URL_SAFE_NO_PAD, DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig},
    Engine as _,
};
use hmac::{Hmac, Mac};
use rand::{rngs::OsRng, TryRngCore};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::{
    id::{SessionId, ID_LEN},
    KeyError, KeySource,
};

type HmacSha256 = Hmac<Sha256>;

/// The token format version this crate writes and accepts.
pub(crate) const TOKEN_VERSION: u8 = 1;
pub(crate) const KID_LEN: usize = 4;
const TAG_LEN: usize = 32;
const TOKEN_LEN: usize = 1 + KID_LEN + ID_LEN + TAG_LEN;
/// Length of an encoded token: 53 bytes in unpadded base64url.
pub(crate) const TOKEN_ENCODED_LEN: usize = (TOKEN_LEN * 4).div_ceil(3);
const DOMAIN: &[u8] = b"sessionware/token\0";
const MIN_KEY_LEN: usize = 32;
/// What a header token's purpose starts with. `:` is no cookie-name
/// character (cookie names are RFC 9110 tokens, checked when a
/// configuration is built), so no header purpose equals a cookie's.
const HEADER_PURPOSE: &[u8] = b"header:";
/// The prefix of a refresh token's purpose (a cookie name cannot hold `:`).
const REFRESH_PURPOSE: &[u8] = b"refresh:";

/// What a token is for, bound by its MAC: a cookie token is refused as a
/// header token and the reverse, even under the same keys and the same name.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Purpose<'a> {
    /// The cookie of this name. The MAC covers the name's bytes alone, as
    /// it always has: cookies issued before transports existed stay valid.
    Cookie(&'a str),
    /// The request header of this name (lower case, as `http` keeps
    /// names): the MAC covers `header:` and the name.
    Header(&'a http::HeaderName),
    /// A refresh token of this issuer (the MAC covers `refresh:` and the
    /// issuer): never a cookie or a header session token.
    #[cfg_attr(not(feature = "jwt"), allow(dead_code))]
    Refresh(&'a str),
}

impl<'a> Purpose<'a> {
    /// The purpose's bytes, in two parts (no buffer to join them).
    fn parts(self) -> (&'static [u8], &'a [u8]) {
        match self {
            Self::Cookie(name) => (b"", name.as_bytes()),
            Self::Header(name) => (HEADER_PURPOSE, name.as_str().as_bytes()),
            Self::Refresh(issuer) => (REFRESH_PURPOSE, issuer.as_bytes()),
        }
    }
}

/// One secret signing key (at least 32 random bytes).
///
/// The bytes are zeroized on drop and `Debug` never prints them. The HMAC key
/// schedule is computed once, when the key is made.
///
/// ```
/// use sessionware::Key;
/// let key = Key::generate().unwrap();
/// assert_eq!(format!("{key:?}"), format!("Key(id={}, <redacted>)", key.id_hex()));
/// assert!(Key::try_from_bytes(&[0u8; 31]).is_err());
/// ```
#[derive(Clone)]
pub struct Key {
    kid: [u8; KID_LEN],
    mac: HmacSha256,
    _bytes: Arc<Zeroizing<Vec<u8>>>,
}

impl Key {
    /// Makes a key from secret bytes: at least 32 bytes, not degenerate.
    ///
    /// # Errors
    ///
    /// [`KeyError::TooShort`] or [`KeyError::Degenerate`] (all bytes equal, or
    /// too few distinct byte values to be random).
    ///
    /// ```
    /// # use sessionware::{Key, KeyError, KeySource};
    /// assert_eq!(Key::try_from_bytes(&[7u8; 64]).unwrap_err(), KeyError::Degenerate { key: KeySource::Single });
    /// assert_eq!(Key::try_from_bytes(&[1u8; 16]).unwrap_err(), KeyError::TooShort { key: KeySource::Single, len: 16 });
    /// ```
    pub fn try_from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        let key = KeySource::Single;
        if bytes.len() < MIN_KEY_LEN {
            return Err(KeyError::TooShort { key, len: bytes.len() });
        }
        let mut seen = [false; 256];
        for b in bytes {
            seen[usize::from(*b)] = true;
        }
        let distinct = seen.iter().filter(|s| **s).count();
        if distinct < (bytes.len() / 2).min(16) {
            return Err(KeyError::Degenerate { key });
        }
        let mac = HmacSha256::new_from_slice(bytes).map_err(|_| KeyError::TooShort { key, len: bytes.len() })?;
        let mut id_mac = mac.clone();
        id_mac.update(b"sessionware/key-id");
        let full = id_mac.finalize().into_bytes();
        let mut kid = [0u8; KID_LEN];
        kid.copy_from_slice(&full[..KID_LEN]);
        Ok(Self { kid, mac, _bytes: Arc::new(Zeroizing::new(bytes.to_vec())) })
    }

    /// Draws a new 64-byte key from the operating system's CSPRNG.
    ///
    /// # Errors
    ///
    /// [`KeyError::Rng`] if the generator fails.
    ///
    /// ```
    /// # use sessionware::Key;
    /// let a = Key::generate().unwrap();
    /// let b = Key::generate().unwrap();
    /// assert_ne!(a.id_hex(), b.id_hex());
    /// ```
    pub fn generate() -> Result<Self, KeyError> {
        let mut bytes = Zeroizing::new([0u8; 64]);
        OsRng.try_fill_bytes(bytes.as_mut()).map_err(|_| KeyError::Rng)?;
        Self::try_from_bytes(bytes.as_ref())
    }

    /// Parses a base64 key (standard or URL-safe alphabet, padding optional).
    /// Spaces and line breaks are ignored: `openssl rand -base64 64` breaks
    /// its output into lines of 64 characters.
    ///
    /// # Errors
    ///
    /// [`KeyError::Base64`], or the errors of [`Key::try_from_bytes`].
    ///
    /// ```
    /// # use sessionware::Key;
    /// let text = "skTJnFDJsyhr7qq2q4xIRJ7zE0/pui5UnreW2uwweOFRogc6soezthEcTOGJRaAQgYo387IQPqFh6F0FxqerHg==";
    /// assert!(Key::from_base64(text).is_ok());
    /// assert!(Key::from_base64("not base64!").is_err());
    /// // A patterned key is refused: keys must be random.
    /// assert!(Key::from_base64("q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJCrze8SNFZ4kKvN7xI0VniQ").is_err());
    /// // As `openssl rand -base64 64` prints it, on two lines:
    /// let wrapped = "skTJnFDJsyhr7qq2q4xIRJ7zE0/pui5UnreW2uwweOFRogc6soezthEcTOGJRaAQ\ngYo387IQPqFh6F0FxqerHg==\n";
    /// assert_eq!(Key::from_base64(wrapped).unwrap().id_hex(), Key::from_base64(text).unwrap().id_hex());
    /// ```
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        let text: Zeroizing<String> = Zeroizing::new(text.chars().filter(|c| !c.is_ascii_whitespace()).collect());
        let config = GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
        let standard = GeneralPurpose::new(&alphabet::STANDARD, config);
        let url = GeneralPurpose::new(&alphabet::URL_SAFE, config);
        let decoded = standard.decode(text.as_str()).or_else(|_| url.decode(text.as_str()));
        let bytes = Zeroizing::new(decoded.map_err(|_| KeyError::Base64 { key: KeySource::Single })?);
        Self::try_from_bytes(&bytes)
    }

    /// The public key id (hex), which tokens carry to pick their key. It is
    /// derived from the key by HMAC and reveals nothing about it.
    ///
    /// ```
    /// # use sessionware::Key;
    /// assert_eq!(Key::generate().unwrap().id_hex().len(), 8);
    /// ```
    pub fn id_hex(&self) -> String {
        self.kid.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The key id tokens carry to pick this key.
    pub(crate) fn kid(&self) -> [u8; KID_LEN] {
        self.kid
    }

    /// Fills `out` with a subkey of this key for one use, by HKDF-SHA256
    /// (RFC 5869): `salt` names the use, `info` the context. The signing
    /// key's bytes are never used for anything else directly.
    pub(crate) fn derive(&self, salt: &[u8], info: &[u8], out: &mut [u8]) -> Result<(), KeyError> {
        hkdf::Hkdf::<Sha256>::new(Some(salt), &self._bytes)
            .expand(info, out)
            .map_err(|_| KeyError::TooShort { key: KeySource::Single, len: out.len() })
    }

    fn tag(&self, purpose: Purpose<'_>, version: u8, id: &[u8; ID_LEN]) -> HmacSha256 {
        let mut mac = self.mac.clone();
        mac.update(DOMAIN);
        // The length prefix keeps (purpose, rest) unambiguous.
        let (prefix, name) = purpose.parts();
        let len = u16::try_from(prefix.len() + name.len()).unwrap_or(u16::MAX);
        mac.update(&len.to_be_bytes());
        mac.update(prefix);
        mac.update(name);
        mac.update(&[version]);
        mac.update(&self.kid);
        mac.update(id);
        mac
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key(id={}, <redacted>)", self.id_hex())
    }
}

/// An ordered key ring: the first key signs, every key verifies.
///
/// Rotate by putting a new key first and keeping the old one behind it until
/// the sessions signed with it have expired; a cookie verified by an older key
/// is re-issued under the first one. Removing a key invalidates everything it
/// signed.
///
/// ```
/// use sessionware::{Key, Keys};
/// let old = Key::generate().unwrap();
/// let new = Key::generate().unwrap();
/// let ring = Keys::new(vec![new, old]).unwrap();
/// assert_eq!(ring.len(), 2);
/// ```
#[derive(Clone)]
pub struct Keys {
    ring: Arc<[Key]>,
}

impl Keys {
    /// Builds a ring from keys, the first of which signs.
    ///
    /// # Errors
    ///
    /// [`KeyError::Empty`] or [`KeyError::DuplicateKeyId`].
    ///
    /// ```
    /// # use sessionware::{Key, Keys};
    /// let k = Key::generate().unwrap();
    /// assert!(Keys::new(vec![k.clone(), k]).is_err());
    /// assert!(Keys::new(vec![]).is_err());
    /// ```
    pub fn new(keys: Vec<Key>) -> Result<Self, KeyError> {
        if keys.is_empty() {
            return Err(KeyError::Empty { var: None });
        }
        for (i, a) in keys.iter().enumerate() {
            if let Some(j) = keys.iter().take(i).position(|b| b.kid == a.kid) {
                return Err(KeyError::DuplicateKeyId { first: j + 1, second: i + 1, var: None });
            }
        }
        Ok(Self { ring: keys.into() })
    }

    /// A ring of one freshly generated key: for development and tests only,
    /// since every restart invalidates all sessions.
    ///
    /// # Errors
    ///
    /// [`KeyError::Rng`] if the generator fails.
    ///
    /// ```
    /// # use sessionware::Keys;
    /// assert_eq!(Keys::generate().unwrap().len(), 1);
    /// ```
    pub fn generate() -> Result<Self, KeyError> {
        Self::new(vec![Key::generate()?])
    }

    /// Parses a comma-separated list of base64 keys, the first of which signs.
    ///
    /// # Errors
    ///
    /// As [`Key::from_base64`] and [`Keys::new`], naming the key's position
    /// in the list ([`KeySource::List`](crate::KeySource::List)). Positions
    /// count the keys, not empty entries (`"a,,b"` has two keys).
    ///
    /// ```
    /// # use sessionware::Keys;
    /// let a = "skTJnFDJsyhr7qq2q4xIRJ7zE0/pui5UnreW2uwweOFRogc6soezthEcTOGJRaAQgYo387IQPqFh6F0FxqerHg==";
    /// let b = "TblY9RC24NHeHjxG9IyCmW+tZ5qt9W1EguMqUi+bd0NHUt7MxIOrNtvgatW7x3RR";
    /// assert_eq!(Keys::from_base64_list(&format!("{a}, {b}")).unwrap().len(), 2);
    /// ```
    pub fn from_base64_list(list: &str) -> Result<Self, KeyError> {
        let keys = list
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .enumerate()
            .map(|(i, text)| Key::from_base64(text).map_err(|e| e.in_list(i + 1)))
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(keys)
    }

    /// Reads [`Keys::from_base64_list`] from an environment variable.
    ///
    /// # Errors
    ///
    /// [`KeyError::MissingEnv`] if unset, [`KeyError::EnvNotUnicode`], or
    /// the parse errors, which name the variable
    /// ([`KeySource::Env`](crate::KeySource::Env)).
    ///
    /// ```
    /// # use sessionware::{KeyError, Keys};
    /// let err = Keys::from_env("SESSIONWARE_DOCTEST_UNSET").unwrap_err();
    /// assert_eq!(err, KeyError::MissingEnv("SESSIONWARE_DOCTEST_UNSET".into()));
    /// assert!(err.to_string().contains("openssl rand -base64 64"));
    /// ```
    pub fn from_env(var: &str) -> Result<Self, KeyError> {
        let value = match std::env::var(var) {
            Ok(value) => Zeroizing::new(value),
            Err(std::env::VarError::NotPresent) => return Err(KeyError::MissingEnv(var.to_string())),
            Err(std::env::VarError::NotUnicode(_)) => return Err(KeyError::EnvNotUnicode(var.to_string())),
        };
        Self::from_base64_list(&value).map_err(|e| e.in_env(var))
    }

    /// For development: the keys in the environment variable `var`
    /// ([`from_env`](Self::from_env)), or, when it is not set, one freshly
    /// generated key ([`generate`](Self::generate)) with a warning logged
    /// (`tracing`, once per process): sessions then end when the process
    /// does, and other instances cannot read them. A variable that is set
    /// but invalid (or empty) is an error, never silently replaced.
    ///
    /// # Errors
    ///
    /// As [`from_env`](Self::from_env), but never [`KeyError::MissingEnv`].
    ///
    /// ```
    /// # use sessionware::{KeyError, Keys};
    /// // Unset: a generated key.
    /// assert_eq!(Keys::from_env_or_generate("SESSIONWARE_DOCTEST_UNSET").unwrap().len(), 1);
    /// ```
    pub fn from_env_or_generate(var: &str) -> Result<Self, KeyError> {
        match Self::from_env(var) {
            Err(KeyError::MissingEnv(_)) => {
                static WARNED: std::sync::Once = std::sync::Once::new();
                WARNED.call_once(|| {
                    tracing::warn!(
                        var,
                        "{var} is not set: signing sessions with a generated key, so every session ends when the \
                         process does (development only). For production, set it: \
                         export {var}=\"$(openssl rand -base64 64)\""
                    );
                });
                Self::generate()
            }
            other => other,
        }
    }

    /// Number of keys in the ring.
    ///
    /// ```
    /// # use sessionware::Keys;
    /// assert!(!Keys::generate().unwrap().is_empty());
    /// ```
    pub fn len(&self) -> usize {
        self.ring.len()
    }

    /// Always false: a ring holds at least one key.
    ///
    /// ```
    /// # use sessionware::Keys;
    /// assert!(!Keys::generate().unwrap().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }

    /// Every key of the ring, the signing key first.
    pub(crate) fn ring(&self) -> &[Key] {
        &self.ring
    }

    pub(crate) fn primary(&self) -> &Key {
        &self.ring[0]
    }

    /// Signs `id` for `purpose` (the cookie name) with the first key: the
    /// value the layer puts into the session cookie. The result is a bearer
    /// secret; it is public for tools and tests that mint tokens.
    ///
    /// ```
    /// use sessionware::{Keys, SessionId};
    /// let keys = Keys::generate().unwrap();
    /// let token = keys.sign("__Host-sid", &SessionId::generate().unwrap());
    /// assert_eq!(token.len(), 71);
    /// ```
    pub fn sign(&self, purpose: &str, id: &SessionId) -> String {
        let mut out = String::with_capacity(TOKEN_ENCODED_LEN);
        self.sign_into(purpose, id, &mut out);
        out
    }

    /// Signs `id` as a layer with `config` carries it: for its cookie
    /// (the same token as [`sign`](Self::sign) with the cookie name) or, on
    /// a [`Transport::Header`](crate::Transport::Header) layer, for its
    /// header. A token of one transport is refused by the other. The
    /// result is a bearer secret; it is public for tools and tests that
    /// mint tokens.
    ///
    /// ```
    /// use sessionware::{Keys, SessionConfig, SessionId, Transport};
    /// let keys = Keys::generate().unwrap();
    /// let id = SessionId::generate().unwrap();
    /// let cookie = SessionConfig::default();
    /// let header = SessionConfig::builder().transport(Transport::header()).build().unwrap();
    /// assert_eq!(keys.sign_for(&cookie, &id), keys.sign("__Host-sid", &id));
    /// assert_ne!(keys.sign_for(&header, &id), keys.sign_for(&cookie, &id));
    /// assert_eq!(keys.sign_for(&header, &id).len(), 71);
    /// ```
    pub fn sign_for(&self, config: &crate::SessionConfig, id: &SessionId) -> String {
        let mut out = String::with_capacity(TOKEN_ENCODED_LEN);
        self.sign_purpose_into(config.purpose(), id, &mut out);
        out
    }

    /// [`sign`](Self::sign), appending the token to `out` (no buffer of its own).
    pub(crate) fn sign_into(&self, purpose: &str, id: &SessionId, out: &mut String) {
        self.sign_purpose_into(Purpose::Cookie(purpose), id, out);
    }

    /// Signs `id` for `purpose`, appending the token to `out`.
    pub(crate) fn sign_purpose_into(&self, purpose: Purpose<'_>, id: &SessionId, out: &mut String) {
        let key = self.primary();
        let tag = key.tag(purpose, TOKEN_VERSION, id.as_bytes()).finalize().into_bytes();
        let mut raw = [0u8; TOKEN_LEN];
        raw[0] = TOKEN_VERSION;
        raw[1..1 + KID_LEN].copy_from_slice(&key.kid);
        raw[1 + KID_LEN..1 + KID_LEN + ID_LEN].copy_from_slice(id.as_bytes());
        raw[1 + KID_LEN + ID_LEN..].copy_from_slice(&tag);
        URL_SAFE_NO_PAD.encode_string(raw, out);
    }

    /// Verifies a token for `purpose`. The length, the canonical base64, the
    /// version and the key id are checked, then the tag in constant time;
    /// only then is the ID used.
    pub(crate) fn verify(&self, purpose: &str, token: &[u8]) -> Result<Verified, Rejection> {
        self.verify_purpose(Purpose::Cookie(purpose), token)
    }

    /// [`verify`](Self::verify) for any [`Purpose`].
    pub(crate) fn verify_purpose(&self, purpose: Purpose<'_>, token: &[u8]) -> Result<Verified, Rejection> {
        if token.len() != TOKEN_ENCODED_LEN {
            return Err(Rejection::Malformed);
        }
        let mut raw = [0u8; TOKEN_LEN + 2];
        let n = URL_SAFE_NO_PAD.decode_slice(token, &mut raw).map_err(|_| Rejection::Malformed)?;
        if n != TOKEN_LEN {
            return Err(Rejection::Malformed);
        }
        if raw[0] != TOKEN_VERSION {
            return Err(Rejection::Version);
        }
        let kid = &raw[1..1 + KID_LEN];
        let (index, key) = self.ring.iter().enumerate().find(|(_, k)| k.kid == kid).ok_or(Rejection::UnknownKey)?;
        let mut id = [0u8; ID_LEN];
        id.copy_from_slice(&raw[1 + KID_LEN..1 + KID_LEN + ID_LEN]);
        key.tag(purpose, raw[0], &id)
            .verify_slice(&raw[1 + KID_LEN + ID_LEN..TOKEN_LEN])
            .map_err(|_| Rejection::BadSignature)?;
        Ok(Verified { id: SessionId::from_bytes(id), by_old_key: index != 0 })
    }
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.ring.iter()).finish()
    }
}

/// A token that passed verification.
#[derive(Debug)]
pub(crate) struct Verified {
    pub(crate) id: SessionId,
    /// Verified by a key other than the signing key: re-issue the cookie.
    pub(crate) by_old_key: bool,
}

/// Why a token was rejected (for events only; every rejection looks the same
/// to the client).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejection {
    Malformed,
    Version,
    UnknownKey,
    BadSignature,
}

impl Rejection {
    pub(crate) fn reason(self) -> crate::RejectReason {
        match self {
            Self::Malformed => crate::RejectReason::Malformed,
            Self::Version => crate::RejectReason::UnsupportedVersion,
            Self::UnknownKey => crate::RejectReason::UnknownKey,
            Self::BadSignature => crate::RejectReason::BadSignature,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> Keys {
        Keys::generate().unwrap()
    }

    #[test]
    fn round_trip() {
        let keys = ring();
        let id = SessionId::generate().unwrap();
        let token = keys.sign("__Host-sid", &id);
        assert_eq!(token.len(), TOKEN_ENCODED_LEN);
        let v = keys.verify("__Host-sid", token.as_bytes()).unwrap();
        assert_eq!(v.id, id);
        assert!(!v.by_old_key);
    }

    #[test]
    fn purpose_is_bound() {
        let keys = ring();
        let id = SessionId::generate().unwrap();
        let token = keys.sign("csrf", &id);
        assert_eq!(keys.verify("__Host-sid", token.as_bytes()).unwrap_err(), Rejection::BadSignature);
    }

    /// Cookies issued before transports existed stay valid: the cookie
    /// purpose is MACed exactly as it always was (domain, length-prefixed
    /// name, version, key id, ID), computed here by hand.
    #[test]
    fn the_cookie_purpose_bytes_are_unchanged() {
        let bytes: Vec<u8> = (0u8..64).collect();
        let keys = Keys::new(vec![Key::try_from_bytes(&bytes).unwrap()]).unwrap();
        let id = SessionId::from_bytes([7; ID_LEN]);
        let token = keys.sign("__Host-sid", &id);
        let raw = URL_SAFE_NO_PAD.decode(&token).unwrap();
        let mut mac = HmacSha256::new_from_slice(&bytes).unwrap();
        mac.update(b"sessionware/token\0");
        mac.update(&10u16.to_be_bytes());
        mac.update(b"__Host-sid");
        mac.update(&[1]);
        mac.update(&raw[1..1 + KID_LEN]);
        mac.update(&[7; ID_LEN]);
        assert_eq!(&raw[1 + KID_LEN + ID_LEN..], mac.finalize().into_bytes().as_slice());
    }

    /// R66/R67: a token is bound to its transport. The same keys, the same
    /// ID and the same name: the cookie token is refused as a header token
    /// and the reverse; a header token is bound to its header's name.
    #[test]
    fn the_transport_is_bound() {
        let keys = ring();
        let id = SessionId::generate().unwrap();
        let name = http::HeaderName::from_static("x-session-token");
        let cookie = keys.sign("x-session-token", &id);
        let mut header = String::new();
        keys.sign_purpose_into(Purpose::Header(&name), &id, &mut header);
        assert_ne!(cookie, header);
        assert_eq!(keys.verify_purpose(Purpose::Header(&name), header.as_bytes()).unwrap().id, id);
        assert_eq!(
            keys.verify_purpose(Purpose::Header(&name), cookie.as_bytes()).unwrap_err(),
            Rejection::BadSignature
        );
        assert_eq!(keys.verify("x-session-token", header.as_bytes()).unwrap_err(), Rejection::BadSignature);
        // Nor does a cookie whose name spells the header purpose verify it
        // (such a name is no valid cookie name anyway: `:`).
        assert_eq!(keys.verify("header:x-session-token", header.as_bytes()).unwrap().id, id);
        assert!(crate::SessionConfig::builder().cookie_name("header:x-session-token").build().is_err());
        let other = http::HeaderName::from_static("x-other-token");
        assert_eq!(
            keys.verify_purpose(Purpose::Header(&other), header.as_bytes()).unwrap_err(),
            Rejection::BadSignature
        );
    }

    #[test]
    fn version_is_bound() {
        let keys = ring();
        let id = SessionId::generate().unwrap();
        let token = keys.sign("sid", &id);
        let mut raw = URL_SAFE_NO_PAD.decode(&token).unwrap();
        raw[0] = 2;
        let other = URL_SAFE_NO_PAD.encode(&raw);
        assert_eq!(keys.verify("sid", other.as_bytes()).unwrap_err(), Rejection::Version);
    }

    #[test]
    fn every_bit_flip_is_rejected() {
        let keys = ring();
        let id = SessionId::generate().unwrap();
        let token = keys.sign("sid", &id);
        let raw = URL_SAFE_NO_PAD.decode(&token).unwrap();
        for i in 0..raw.len() {
            for bit in 0..8 {
                let mut t = raw.clone();
                t[i] ^= 1 << bit;
                let forged = URL_SAFE_NO_PAD.encode(&t);
                assert!(keys.verify("sid", forged.as_bytes()).is_err(), "byte {i} bit {bit}");
            }
        }
        // Truncated, extended, and every character replaced.
        assert!(keys.verify("sid", &token.as_bytes()[..token.len() - 1]).is_err());
        assert!(keys.verify("sid", format!("{token}A").as_bytes()).is_err());
        for i in 0..token.len() {
            let mut chars: Vec<char> = token.chars().collect();
            chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
            let forged: String = chars.into_iter().collect();
            assert!(keys.verify("sid", forged.as_bytes()).is_err(), "char {i}");
        }
    }

    #[test]
    fn rotation() {
        let k1 = Key::generate().unwrap();
        let k2 = Key::generate().unwrap();
        let id = SessionId::generate().unwrap();
        let old = Keys::new(vec![k1.clone()]).unwrap().sign("sid", &id);
        let both = Keys::new(vec![k2.clone(), k1]).unwrap();
        let v = both.verify("sid", old.as_bytes()).unwrap();
        assert!(v.by_old_key);
        let only_new = Keys::new(vec![k2]).unwrap();
        assert_eq!(only_new.verify("sid", old.as_bytes()).unwrap_err(), Rejection::UnknownKey);
    }

    #[test]
    fn weak_keys_are_refused() {
        let key = KeySource::Single;
        assert_eq!(Key::try_from_bytes(&[0u8; 31]).unwrap_err(), KeyError::TooShort { key: key.clone(), len: 31 });
        assert_eq!(Key::try_from_bytes(&[7u8; 64]).unwrap_err(), KeyError::Degenerate { key: key.clone() });
        let two_values: Vec<u8> = (0..64).map(|i| (i % 2) as u8).collect();
        assert_eq!(Key::try_from_bytes(&two_values).unwrap_err(), KeyError::Degenerate { key });
        let random: Vec<u8> = (0..32).map(|_| rand::random::<u8>()).collect();
        assert!(Key::try_from_bytes(&random).is_ok());
    }

    #[test]
    fn debug_is_redacted() {
        let bytes: Vec<u8> = (0u8..64).collect();
        let key = Key::try_from_bytes(&bytes).unwrap();
        let dbg = format!("{key:?} {:?}", Keys::new(vec![key.clone()]).unwrap());
        assert!(!dbg.contains(&URL_SAFE_NO_PAD.encode(&bytes)));
        assert!(!dbg.contains("0, 1, 2"));
    }

    #[test]
    fn key_material_is_zeroized_on_drop() {
        fn assert_zeroize_on_drop<T: zeroize::ZeroizeOnDrop>() {}
        assert_zeroize_on_drop::<Zeroizing<Vec<u8>>>();
        assert_zeroize_on_drop::<SessionId>();
    }
}
