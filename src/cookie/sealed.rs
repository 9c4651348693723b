//! The sealed cookie of encrypted cookie sessions
//! ([`CookieSessions`](crate::CookieSessions)): the session's whole
//! [`Record`] (data, deadlines, sign-in) serialized as JSON and encrypted
//! with XChaCha20-Poly1305 (an AEAD) into the cookie value.
//!
//! The value is `base64url(version ‖ key id ‖ nonce ‖ ciphertext ‖ tag)`:
//!
//! - one format byte ([`FORMAT`]), checked before anything else;
//! - the 4-byte id of the ring key that sealed it: it picks exactly one
//!   configured key, never a trial decryption over the ring (R33); each
//!   key's cipher key is derived from it by HKDF-SHA256 with a salt of its
//!   own, so the signing key is never used as an encryption key directly;
//! - a 24-byte random nonce, fresh for every cookie (XChaCha20's nonce is
//!   long enough to be drawn at random without a counter);
//! - the associated data binds the cookie's name, the format byte and the
//!   key id: a value moved to another cookie name, or relabelled with
//!   another version or key id, fails authentication (R31).
//!
//! Authentication is checked (by the AEAD, in constant time) before the
//! plaintext is parsed (R30); the plaintext is parsed as JSON by serde,
//! whose recursion limit refuses deep nesting (R35). Every failure is the
//! same "no session" to the client (R34), with a rejection event.

use std::fmt;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use chacha20poly1305::{
    aead::{Aead, KeyInit, Payload},
    XChaCha20Poly1305, XNonce,
};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::read::{scan, CookieHeaders};
use crate::{
    events::Emitter,
    id::{os_random, ID_LEN},
    keys::KID_LEN,
    store::RECORD_FORMAT,
    KeyError, Keys, Record, RejectReason, SessionError, StorageKey, StoreError,
};

/// The most bytes a session cookie may have: its whole `Set-Cookie` value
/// (name, value and attributes), the size every browser keeps (RFC 6265
/// §6.1). A presented value longer than this is refused unread.
pub(crate) const MAX_COOKIE_BYTES: usize = 4096;
/// The sealed format this crate writes and reads.
pub(crate) const FORMAT: u8 = 1;
/// The HKDF salt: what the derived keys are for.
const SALT: &[u8] = b"sessionware/cookie-session/v1";
/// The associated data's domain label.
const DOMAIN: &[u8] = b"sessionware/cookie-session\0";
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = 1 + KID_LEN + NONCE_LEN;

/// The ring's keys as AEAD ciphers, the sealing key first.
pub(crate) struct Sealer {
    ring: Vec<SealKey>,
}

struct SealKey {
    kid: [u8; KID_LEN],
    cipher: XChaCha20Poly1305,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kids: Vec<String> = self.ring.iter().map(|k| k.kid.iter().map(|b| format!("{b:02x}")).collect()).collect();
        f.debug_struct("Sealer").field("key_ids", &kids).finish_non_exhaustive()
    }
}

/// A cookie that opened: the record it carries.
#[derive(Debug)]
pub(crate) struct Opened {
    pub(crate) record: Record,
    /// Sealed by an older key of the ring: seal it again under the first.
    pub(crate) by_old_key: bool,
    /// The SHA-256 digest of the cookie value: names this very cookie in
    /// events and in the request's state (no store knows it).
    pub(crate) key: StorageKey,
}

impl Sealer {
    /// One cipher per key of the ring, its key derived by HKDF-SHA256 from
    /// the ring key (salt [`SALT`], info: the key id, then the application's
    /// `context` if it names one): two contexts never share a cipher key.
    pub(crate) fn new(keys: &Keys, context: &str) -> Result<Self, KeyError> {
        let mut ring = Vec::with_capacity(keys.len());
        for key in keys.ring() {
            let kid = key.kid();
            let mut info = kid.to_vec();
            info.extend_from_slice(context.as_bytes());
            let mut okm = Zeroizing::new([0u8; 32]);
            key.derive(SALT, &info, okm.as_mut())?;
            let cipher = XChaCha20Poly1305::new(okm.as_ref().into());
            ring.push(SealKey { kid, cipher });
        }
        Ok(Self { ring })
    }

    /// The associated data: the domain, the cookie's name (length first),
    /// the format byte and the key id.
    fn aad(name: &str, kid: &[u8; KID_LEN]) -> Vec<u8> {
        let mut aad = Vec::with_capacity(DOMAIN.len() + 2 + name.len() + 1 + KID_LEN);
        aad.extend_from_slice(DOMAIN);
        aad.extend_from_slice(&u16::try_from(name.len()).unwrap_or(u16::MAX).to_be_bytes());
        aad.extend_from_slice(name.as_bytes());
        aad.push(FORMAT);
        aad.extend_from_slice(kid);
        aad
    }

    /// The cookie value carrying `record`, sealed by the ring's first key
    /// under a fresh random nonce.
    pub(crate) fn seal(&self, name: &str, record: &Record) -> Result<String, SessionError> {
        let plain = Zeroizing::new(serde_json::to_vec(record)?);
        self.seal_plain(name, &plain)
    }

    /// The cookie value carrying the bytes `plain`.
    fn seal_plain(&self, name: &str, plain: &[u8]) -> Result<String, SessionError> {
        let key = self.ring.first().ok_or(SessionError::Save(StoreError::Codec("empty key ring".into())))?;
        let mut nonce = [0u8; NONCE_LEN];
        let (mut a, mut b) = ([0u8; ID_LEN], [0u8; ID_LEN]);
        os_random(&mut a)?;
        os_random(&mut b)?;
        nonce[..ID_LEN].copy_from_slice(&a);
        nonce[ID_LEN..].copy_from_slice(&b[..NONCE_LEN - ID_LEN]);
        let aad = Self::aad(name, &key.kid);
        let sealed = key
            .cipher
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: plain, aad: &aad })
            .map_err(|_| SessionError::Save(StoreError::Codec("the session could not be encrypted".into())))?;
        let mut raw = Vec::with_capacity(HEADER_LEN + sealed.len());
        raw.push(FORMAT);
        raw.extend_from_slice(&key.kid);
        raw.extend_from_slice(&nonce);
        raw.extend_from_slice(&sealed);
        Ok(URL_SAFE_NO_PAD.encode(raw))
    }

    /// The record a presented cookie value carries, if it is one this ring
    /// sealed for the cookie `name`; otherwise why not.
    pub(crate) fn open(&self, name: &str, value: &[u8]) -> Result<Opened, RejectReason> {
        if value.len() > MAX_COOKIE_BYTES {
            return Err(RejectReason::Malformed);
        }
        let raw = URL_SAFE_NO_PAD.decode(value).map_err(|_| RejectReason::Malformed)?;
        if raw.len() < HEADER_LEN + TAG_LEN {
            return Err(RejectReason::Malformed);
        }
        if raw[0] != FORMAT {
            return Err(RejectReason::UnsupportedVersion);
        }
        let kid = &raw[1..1 + KID_LEN];
        let (index, key) = self.ring.iter().enumerate().find(|(_, k)| k.kid == kid).ok_or(RejectReason::UnknownKey)?;
        let aad = Self::aad(name, &key.kid);
        let nonce = XNonce::from_slice(&raw[1 + KID_LEN..HEADER_LEN]);
        let plain = key
            .cipher
            .decrypt(nonce, Payload { msg: &raw[HEADER_LEN..], aad: &aad })
            .map_err(|_| RejectReason::BadSignature)?;
        let plain = Zeroizing::new(plain);
        // Authentic, so sealed by this layer: a payload that does not parse
        // (another version's, or nested past serde's recursion limit) is
        // still no session, never a panic.
        let record: Record = serde_json::from_slice(&plain).map_err(|_| RejectReason::Malformed)?;
        if record.format != RECORD_FORMAT {
            return Err(RejectReason::UnsupportedVersion);
        }
        Ok(Opened { record, by_old_key: index != 0, key: fingerprint(value) })
    }
}

/// The key that names one cookie value: its SHA-256 digest.
pub(crate) fn fingerprint(value: &[u8]) -> StorageKey {
    StorageKey::from_bytes(Sha256::digest(value).into())
}

/// Finds and opens the sealed session cookie: a session is used only when
/// exactly one distinct value among the presented ones opens. The opened
/// cookie, if any, and whether a cookie of the session's name was
/// presented at all.
pub(crate) fn open_presented(
    headers: &CookieHeaders,
    config: &crate::SessionConfig,
    sealer: &Sealer,
    emit: &Emitter<'_>,
) -> (Option<Opened>, bool) {
    let mut chosen: Option<(Opened, Vec<u8>)> = None;
    let mut duplicate = false;
    let scanned = scan(headers, config, emit, |value| {
        if duplicate {
            return;
        }
        if chosen.as_ref().is_some_and(|(_, v)| v == value) {
            return;
        }
        match sealer.open(&config.name, value) {
            Ok(opened) if chosen.is_none() => chosen = Some((opened, value.to_vec())),
            Ok(_) => duplicate = true,
            Err(reason) => emit.rejected(reason, value.len()),
        }
    });
    match scanned {
        Ok(presented) if duplicate => {
            emit.rejected(RejectReason::DuplicateCookie, 2);
            (None, presented)
        }
        Ok(presented) => (chosen.map(|(o, _)| o), presented),
        Err(presented) => (None, presented),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Metadata;

    fn record() -> Record {
        let mut r = Record::new(Metadata::new(1_000, 60_000, 3_600_000));
        r.data.insert("n", &serde_json::value::to_raw_value(&7).unwrap());
        r
    }

    #[test]
    fn round_trip_and_binding() {
        let keys = Keys::generate().unwrap();
        let sealer = Sealer::new(&keys, "").unwrap();
        let r = record();
        let value = sealer.seal("sid", &r).unwrap();
        let opened = sealer.open("sid", value.as_bytes()).unwrap();
        assert_eq!(opened.record, r);
        assert!(!opened.by_old_key);
        assert_eq!(sealer.open("sid2", value.as_bytes()).unwrap_err(), RejectReason::BadSignature);
        assert_ne!(sealer.seal("sid", &record()).unwrap(), value, "a fresh nonce every time");
    }

    #[test]
    fn every_bit_flip_and_truncation_is_refused() {
        let sealer = Sealer::new(&Keys::generate().unwrap(), "").unwrap();
        let value = sealer.seal("sid", &record()).unwrap();
        let mut raw = URL_SAFE_NO_PAD.decode(&value).unwrap();
        for i in 0..raw.len() {
            for bit in 0..8 {
                raw[i] ^= 1 << bit;
                assert!(sealer.open("sid", URL_SAFE_NO_PAD.encode(&raw).as_bytes()).is_err(), "byte {i} bit {bit}");
                raw[i] ^= 1 << bit;
            }
        }
        for len in 0..value.len() {
            assert!(sealer.open("sid", &value.as_bytes()[..len]).is_err(), "truncated to {len}");
        }
    }

    #[test]
    fn an_authentic_payload_that_does_not_parse_is_refused_without_overflow() {
        let sealer = Sealer::new(&Keys::generate().unwrap(), "").unwrap();
        // R35 (c): validly sealed, nested 10,000 levels deep.
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let value = sealer.seal_plain("sid", deep.as_bytes()).unwrap();
        assert_eq!(sealer.open("sid", value.as_bytes()).unwrap_err(), RejectReason::Malformed);
        let mut nested = serde_json::to_value(record()).unwrap();
        nested["data"]["n"] = serde_json::from_str(&format!("{}1{}", "[".repeat(100), "]".repeat(100))).unwrap();
        let mut text = nested.to_string();
        text = text.replace(&format!("{}1{}", "[".repeat(100), "]".repeat(100)), &deep);
        let value = sealer.seal_plain("sid", text.as_bytes()).unwrap();
        assert!(sealer.open("sid", value.as_bytes()).is_err());
        // Another record format: no session.
        let mut other = record();
        other.format = RECORD_FORMAT + 1;
        let value = sealer.seal("sid", &other).unwrap();
        assert_eq!(sealer.open("sid", value.as_bytes()).unwrap_err(), RejectReason::UnsupportedVersion);
    }

    #[test]
    fn the_format_byte_and_key_id_are_checked_before_decryption() {
        let keys = Keys::generate().unwrap();
        let sealer = Sealer::new(&keys, "").unwrap();
        let mut raw = URL_SAFE_NO_PAD.decode(sealer.seal("sid", &record()).unwrap()).unwrap();
        raw[0] = FORMAT + 1;
        assert_eq!(
            sealer.open("sid", URL_SAFE_NO_PAD.encode(&raw).as_bytes()).unwrap_err(),
            RejectReason::UnsupportedVersion
        );
        raw[0] = FORMAT;
        raw[1] ^= 1;
        assert_eq!(sealer.open("sid", URL_SAFE_NO_PAD.encode(&raw).as_bytes()).unwrap_err(), RejectReason::UnknownKey);
        // An older key of the ring opens and asks for a reseal.
        let value = sealer.seal("sid", &record()).unwrap();
        let newer = Keys::new(vec![crate::Key::generate().unwrap(), keys.ring()[0].clone()]).unwrap();
        assert!(Sealer::new(&newer, "").unwrap().open("sid", value.as_bytes()).unwrap().by_old_key);
    }

    #[test]
    fn cipher_keys_are_zeroized_on_drop() {
        fn assert_zeroize_on_drop<T: zeroize::ZeroizeOnDrop>() {}
        assert_zeroize_on_drop::<XChaCha20Poly1305>();
    }

    #[test]
    fn debug_shows_no_key_material() {
        let keys = Keys::generate().unwrap();
        let text = format!("{:?}", Sealer::new(&keys, "").unwrap());
        assert!(text.contains(&keys.ring()[0].id_hex()) && !text.contains("cipher"), "{text}");
    }
}
