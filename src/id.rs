//! Session identifiers and the digests that stores key records by.

use std::fmt;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use rand::{rngs::OsRng, TryRngCore};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::SessionError;

/// Number of random bytes in a [`SessionId`] (128 bits).
///
/// ```
/// assert_eq!(sessionware::ID_LEN * 8, 128);
/// ```
pub const ID_LEN: usize = 16;

/// Length of the canonical text encoding of a [`SessionId`] (base64url, no padding).
///
/// ```
/// let id = sessionware::SessionId::generate().unwrap();
/// assert_eq!(id.expose_secret().len(), sessionware::ID_ENCODED_LEN);
/// ```
pub const ID_ENCODED_LEN: usize = 22;

/// A session identifier: 128 bits drawn from the operating system's CSPRNG.
///
/// The ID is a secret. `Debug` prints it redacted; the only way to see its
/// text is the explicitly named [`SessionId::expose_secret`]. Stores never see
/// it: they key records by its [`StorageKey`] digest.
///
/// ```
/// use sessionware::SessionId;
/// let id = SessionId::generate().unwrap();
/// let text = id.expose_secret();
/// assert_eq!(text.len(), 22);
/// assert_eq!(SessionId::parse(&text), Some(id.clone()));
/// assert_eq!(format!("{id:?}"), "SessionId(<redacted>)");
/// ```
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct SessionId([u8; ID_LEN]);

impl SessionId {
    /// Draws a new ID from the operating system's CSPRNG.
    ///
    /// # Errors
    ///
    /// [`SessionError::Rng`] if the operating system's generator fails.
    ///
    /// ```
    /// # use sessionware::SessionId;
    /// assert_ne!(SessionId::generate().unwrap(), SessionId::generate().unwrap());
    /// ```
    pub fn generate() -> Result<Self, SessionError> {
        let mut bytes = [0u8; ID_LEN];
        os_random(&mut bytes)?;
        Ok(Self(bytes))
    }

    /// Parses the canonical encoding; anything else (padding, `+`/`/`,
    /// whitespace, wrong length, non-zero trailing bits) is `None`.
    ///
    /// ```
    /// # use sessionware::SessionId;
    /// assert!(SessionId::parse("").is_none());
    /// assert!(SessionId::parse("AAAAAAAAAAAAAAAAAAAAAA==").is_none());
    /// assert!(SessionId::parse("AAAAAAAAAAAAAAAAAAAAAA").is_some());
    /// assert!(SessionId::parse("AAAAAAAAAAAAAAAAAAAAAB").is_none()); // trailing bits
    /// ```
    pub fn parse(text: &str) -> Option<Self> {
        if text.len() != ID_ENCODED_LEN {
            return None;
        }
        let mut bytes = [0u8; ID_LEN];
        let n = URL_SAFE_NO_PAD.decode_slice(text.as_bytes(), &mut bytes).ok()?;
        (n == ID_LEN).then_some(Self(bytes))
    }

    /// Builds an ID from raw bytes (for stores and tests; the bytes must come
    /// from a CSPRNG).
    ///
    /// ```
    /// # use sessionware::SessionId;
    /// let id = SessionId::from_bytes([1; 16]);
    /// assert_eq!(id.as_bytes(), &[1; 16]);
    /// ```
    pub fn from_bytes(bytes: [u8; ID_LEN]) -> Self {
        Self(bytes)
    }

    /// The raw bytes.
    ///
    /// ```
    /// # use sessionware::SessionId;
    /// assert_eq!(SessionId::from_bytes([0; 16]).as_bytes().len(), 16);
    /// ```
    pub fn as_bytes(&self) -> &[u8; ID_LEN] {
        &self.0
    }

    /// The canonical text (22 base64url characters). This is the secret
    /// itself: never log it.
    ///
    /// ```
    /// # use sessionware::SessionId;
    /// assert_eq!(SessionId::from_bytes([0; 16]).expose_secret(), "AAAAAAAAAAAAAAAAAAAAAA");
    /// ```
    pub fn expose_secret(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    /// The digest that stores key this session's record by.
    ///
    /// ```
    /// # use sessionware::SessionId;
    /// let id = SessionId::from_bytes([0; 16]);
    /// assert_eq!(id.storage_key(), id.storage_key());
    /// ```
    pub fn storage_key(&self) -> StorageKey {
        let digest = Sha256::digest(self.0);
        StorageKey(digest.into())
    }
}

/// Bytes of OS randomness fetched per system call, per thread.
const POOL: usize = 32 * ID_LEN;

/// Tells a forked child from its parent, without a system call per draw
/// (`pthread_atfork` bumps a counter in the child; where that cannot be
/// registered, the process ID is compared).
enum ForkWatch {
    Fast(forkguard::Guard),
    Pid(forkguard::pid::Guard),
}

impl ForkWatch {
    fn new() -> Self {
        match forkguard::Guard::try_new() {
            Ok(guard) => Self::Fast(guard),
            Err(_) => Self::Pid(forkguard::pid::Guard::default()),
        }
    }

    /// True once after each fork of the process.
    fn forked(&mut self) -> bool {
        match self {
            Self::Fast(guard) => guard.detected_fork(),
            Self::Pid(guard) => guard.detected_fork(),
        }
    }
}

/// OS randomness fetched ahead in blocks, with the watch that tells whether
/// the process forked since: a forked child (same thread, copied memory)
/// refills before handing anything out, so parent and child never draw the
/// same IDs.
struct Pool {
    bytes: zeroize::Zeroizing<[u8; POOL]>,
    used: usize,
    fork: ForkWatch,
}

thread_local! {
    /// OS randomness fetched ahead in blocks (one `getrandom` call for 32
    /// IDs instead of one per ID). Every byte handed out is zeroed in the
    /// pool at once, and the rest is zeroed when the thread ends.
    static OS_POOL: std::cell::RefCell<Pool> = std::cell::RefCell::new(Pool {
        bytes: zeroize::Zeroizing::new([0u8; POOL]),
        used: POOL,
        fork: ForkWatch::new(),
    });
}

/// Fills `out` (at most [`ID_LEN`] bytes) from the operating system's CSPRNG.
pub(crate) fn os_random(out: &mut [u8; ID_LEN]) -> Result<(), SessionError> {
    OS_POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        let pool = &mut *pool;
        if pool.fork.forked() || pool.used + ID_LEN > POOL {
            OsRng.try_fill_bytes(pool.bytes.as_mut()).map_err(|_| SessionError::Rng)?;
            pool.used = 0;
        }
        let chunk = &mut pool.bytes[pool.used..pool.used + ID_LEN];
        out.copy_from_slice(chunk);
        chunk.zeroize();
        pool.used += ID_LEN;
        Ok(())
    })
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionId(<redacted>)")
    }
}

/// The SHA-256 digest of a [`SessionId`]: what every store keys records by.
///
/// Read access to a store's keys yields no usable cookie, and index timing
/// reveals nothing about live IDs. `Debug` and [`StorageKey::fingerprint`] show
/// only a short prefix, for log correlation.
///
/// ```
/// use sessionware::SessionId;
/// let key = SessionId::from_bytes([0; 16]).storage_key();
/// assert_eq!(key.to_hex().len(), 64);
/// assert_eq!(key.fingerprint().len(), 12);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StorageKey([u8; 32]);

impl StorageKey {
    /// Wraps digest bytes (for stores that read keys back).
    ///
    /// ```
    /// # use sessionware::store::StorageKey;
    /// assert_eq!(StorageKey::from_bytes([0; 32]).as_bytes(), &[0; 32]);
    /// ```
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The digest bytes.
    ///
    /// ```
    /// # use sessionware::store::StorageKey;
    /// assert_eq!(StorageKey::from_bytes([9; 32]).as_bytes()[0], 9);
    /// ```
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lower-case hex of the whole digest (for text-keyed stores such as Redis).
    ///
    /// ```
    /// # use sessionware::store::StorageKey;
    /// assert!(StorageKey::from_bytes([255; 32]).to_hex().starts_with("ffff"));
    /// ```
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    /// Parses the lower- or upper-case hex form of [`to_hex`](Self::to_hex).
    ///
    /// ```
    /// # use sessionware::store::StorageKey;
    /// let key = StorageKey::from_bytes([7; 32]);
    /// assert_eq!(StorageKey::from_hex(&key.to_hex()), Some(key));
    /// assert!(StorageKey::from_hex("00").is_none());
    /// ```
    pub fn from_hex(text: &str) -> Option<Self> {
        let bytes = text.as_bytes();
        if bytes.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
            let hi = char::from(pair[0]).to_digit(16)?;
            let lo = char::from(pair[1]).to_digit(16)?;
            *o = u8::try_from(hi * 16 + lo).ok()?;
        }
        Some(Self(out))
    }

    /// A short, non-secret fingerprint (the first 6 bytes of the digest in hex)
    /// used in log events to correlate a session without revealing it.
    ///
    /// ```
    /// # use sessionware::store::StorageKey;
    /// assert_eq!(StorageKey::from_bytes([0xab; 32]).fingerprint(), "abababababab");
    /// ```
    pub fn fingerprint(&self) -> String {
        hex(&self.0[..6])
    }
}

/// Serialized as its hex form (stores keep successor and predecessor
/// pointers in text records).
impl serde::Serialize for StorageKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> serde::Deserialize<'de> for StorageKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Self::from_hex(&s).ok_or_else(|| serde::de::Error::custom("invalid storage key"))
    }
}

impl fmt::Debug for StorageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StorageKey({}…)", self.fingerprint())
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    use proptest::prelude::*;
    use std::collections::HashSet;

    proptest! {
        #[test]
        fn parse_is_canonical(s in "\\PC{0,30}") {
            if let Some(id) = SessionId::parse(&s) {
                prop_assert_eq!(id.expose_secret(), s);
            }
        }

        #[test]
        fn parse_of_base64_like_is_canonical(s in "[A-Za-z0-9_+/=-]{20,24}") {
            if let Some(id) = SessionId::parse(&s) {
                prop_assert_eq!(id.expose_secret(), s);
            }
        }
    }

    #[test]
    fn non_canonical_inputs_are_rejected() {
        let good = SessionId::generate().unwrap().expose_secret();
        let bad = [
            String::new(),
            format!("{good}="),
            format!(" {good}"),
            format!("{good} "),
            format!("\"{good}\""),
            good[..21].to_string(),
            format!("{good}A"),
            good.replace('-', "+").replace('_', "/") + if good.contains(['-', '_']) { "" } else { "+" },
        ];
        for b in bad {
            assert!(SessionId::parse(&b).is_none(), "accepted {b:?}");
        }
        assert!(SessionId::parse(&good).is_some());
    }

    #[test]
    fn ids_are_distinct_and_use_the_whole_alphabet() {
        let mut seen = HashSet::new();
        let mut symbols = HashSet::new();
        let mut byte_hist = vec![[0u32; 256]; ID_LEN];
        let n = 20_000;
        for _ in 0..n {
            let id = SessionId::generate().unwrap();
            for (i, b) in id.as_bytes().iter().enumerate() {
                byte_hist[i][usize::from(*b)] += 1;
            }
            let text = id.expose_secret();
            symbols.extend(text[..21].chars());
            assert!(seen.insert(text));
        }
        assert_eq!(symbols.len(), 64, "every base64url symbol appears");
        // Loose chi-squared bound per byte position (255 degrees of freedom:
        // mean 255, sd ~22.6; 400 is > 6 sd away).
        let expected = f64::from(n) / 256.0;
        for hist in &byte_hist {
            let chi: f64 = hist.iter().map(|&c| (f64::from(c) - expected).powi(2) / expected).sum();
            assert!(chi < 400.0, "chi-squared {chi}");
        }
    }

    #[test]
    fn debug_is_redacted() {
        let id = SessionId::generate().unwrap();
        let dbg = format!("{id:?} {:?}", id.storage_key());
        assert!(!dbg.contains(&id.expose_secret()));
        assert!(!dbg.contains(&id.storage_key().to_hex()));
    }

    #[test]
    fn storage_key_is_sha256_of_id_bytes() {
        let id = SessionId::from_bytes([7; 16]);
        let expected: [u8; 32] = Sha256::digest([7u8; 16]).into();
        assert_eq!(id.storage_key().as_bytes(), &expected);
    }
}
