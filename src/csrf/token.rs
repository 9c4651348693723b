//! The per-session CSRF secret, its masking into per-page tokens and the
//! constant-time verification of a presented token: the one place that
//! decides whether a token is valid for a secret.
//!
//! A token is `base64url(mask ‖ (secret XOR mask))` with a fresh random
//! mask: every call gives a different text (so a page's token does not leak
//! through compression, BREACH), and every one of them unmasks to the same
//! secret.

use std::fmt;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use serde_json::value::RawValue;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::{id::os_random, SessionError, ID_LEN};

/// Bytes of a session's CSRF secret (256 bits).
pub(crate) const SECRET_LEN: usize = 2 * ID_LEN;
/// Length of the secret's text as stored in the session (base64url).
const SECRET_TEXT_LEN: usize = 43;
/// Bytes of a masked token: the mask, then the masked secret.
const TOKEN_LEN: usize = 2 * SECRET_LEN;
/// Length of a token's text (base64url, no padding).
pub(crate) const TOKEN_TEXT_LEN: usize = 86;

/// 32 bytes from the OS CSPRNG (the ID generator's pool, fork-safe).
fn random() -> Result<[u8; SECRET_LEN], SessionError> {
    let (mut a, mut b) = ([0u8; ID_LEN], [0u8; ID_LEN]);
    os_random(&mut a)?;
    os_random(&mut b)?;
    let mut out = [0u8; SECRET_LEN];
    out[..ID_LEN].copy_from_slice(&a);
    out[ID_LEN..].copy_from_slice(&b);
    a.zeroize();
    b.zeroize();
    Ok(out)
}

/// A session's CSRF secret. Never leaves the server: pages get masked
/// tokens. `Debug` is redacted.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) struct Secret([u8; SECRET_LEN]);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Secret {
    /// A new secret from the OS CSPRNG.
    pub(crate) fn generate() -> Result<Self, SessionError> {
        random().map(Self)
    }

    /// The secret as it is kept in the session's data (a JSON string).
    pub(crate) fn to_raw(&self) -> Result<Box<RawValue>, SessionError> {
        let text = Zeroizing::new(URL_SAFE_NO_PAD.encode(self.0));
        Ok(serde_json::value::to_raw_value(text.as_str())?)
    }

    /// The secret kept in the session's data; `None` for anything else (a
    /// value this module did not write is no secret).
    pub(crate) fn from_raw(raw: &RawValue) -> Option<Self> {
        let text: &str = serde_json::from_str(raw.get()).ok()?;
        if text.len() != SECRET_TEXT_LEN {
            return None;
        }
        let mut bytes = [0u8; SECRET_LEN];
        let n = URL_SAFE_NO_PAD.decode_slice(text.as_bytes(), &mut bytes).ok()?;
        (n == SECRET_LEN).then_some(Self(bytes))
    }

    /// A masked token for this secret, under a fresh random mask.
    pub(crate) fn mask(&self) -> Result<String, SessionError> {
        let mut token = Zeroizing::new([0u8; TOKEN_LEN]);
        let mask = Zeroizing::new(random()?);
        let (head, tail) = token.split_at_mut(SECRET_LEN);
        head.copy_from_slice(mask.as_ref());
        for ((out, s), m) in tail.iter_mut().zip(self.0).zip(mask.iter()) {
            *out = s ^ m;
        }
        Ok(URL_SAFE_NO_PAD.encode(token.as_ref()))
    }

    /// Whether `presented` is a token of this secret: decoded strictly
    /// (exact length, base64url without padding, canonical), unmasked, and
    /// compared in constant time. Anything else is `false`, never a panic.
    pub(crate) fn verify(&self, presented: &[u8]) -> bool {
        let Some(token) = decode(presented) else { return false };
        let (mask, masked) = token.split_at(SECRET_LEN);
        let mut unmasked = Zeroizing::new([0u8; SECRET_LEN]);
        for ((out, m), x) in unmasked.iter_mut().zip(mask).zip(masked) {
            *out = m ^ x;
        }
        unmasked[..].ct_eq(&self.0[..]).into()
    }
}

/// A presented token's bytes, if it has the form of one.
pub(crate) fn decode(presented: &[u8]) -> Option<Zeroizing<[u8; TOKEN_LEN]>> {
    if presented.len() != TOKEN_TEXT_LEN {
        return None;
    }
    let mut token = Zeroizing::new([0u8; TOKEN_LEN]);
    let n = URL_SAFE_NO_PAD.decode_slice(presented, token.as_mut()).ok()?;
    (n == TOKEN_LEN).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_verifies_under_its_secret_only() {
        let secret = Secret::generate().unwrap();
        let token = secret.mask().unwrap();
        assert_eq!(token.len(), TOKEN_TEXT_LEN);
        assert!(secret.verify(token.as_bytes()));
        let other = Secret::generate().unwrap();
        assert!(!other.verify(token.as_bytes()), "R59: another session's secret");
    }

    #[test]
    fn every_mask_is_fresh_and_every_token_verifies() {
        let secret = Secret::generate().unwrap();
        let (a, b) = (secret.mask().unwrap(), secret.mask().unwrap());
        assert_ne!(a, b, "a fresh mask per call");
        assert_ne!(a[..43], b[..43], "the masks differ");
        assert!(secret.verify(a.as_bytes()) && secret.verify(b.as_bytes()));
    }

    #[test]
    fn the_secret_itself_or_a_bent_token_does_not_verify() {
        let secret = Secret::generate().unwrap();
        let token = secret.mask().unwrap();
        // The raw secret (what a naive implementation would accept).
        let raw = URL_SAFE_NO_PAD.encode(secret.0);
        assert!(!secret.verify(raw.as_bytes()));
        // Every single-character change of a valid token.
        for i in 0..token.len() {
            let mut bent = token.clone().into_bytes();
            bent[i] = if bent[i] == b'A' { b'B' } else { b'A' };
            assert!(!secret.verify(&bent), "changed at {i}");
        }
        // Padding, the standard alphabet, whitespace, a prefix, and more.
        let padded = format!("{token}==");
        let standard = token.replace('-', "+").replace('_', "/");
        for bad in [
            "",
            " ",
            &token[..85],
            &padded,
            &format!(" {}", &token[1..]),
            &format!("{token}A"),
            &"A".repeat(86),
            &"\u{e9}".repeat(43),
        ] {
            assert!(!secret.verify(bad.as_bytes()), "{bad:?}");
        }
        if standard != token {
            assert!(!secret.verify(standard.as_bytes()), "standard alphabet");
        }
    }

    #[test]
    fn the_stored_form_round_trips_and_anything_else_is_no_secret() {
        let secret = Secret::generate().unwrap();
        let raw = secret.to_raw().unwrap();
        let back = Secret::from_raw(&raw).unwrap();
        assert!(back.verify(secret.mask().unwrap().as_bytes()));
        for bad in ["1", "null", "\"\"", "\"abc\"", "{}", &format!("\"{}=\"", &raw.get()[1..43])] {
            let raw = RawValue::from_string(bad.to_string()).unwrap();
            assert!(Secret::from_raw(&raw).is_none(), "{bad}");
        }
        assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
    }
}
