//! The record's representation in Redis (layout 2): one string per key, a
//! session record or a retired pointer, and the conversions between them
//! and [`Record`] / [`Retired`] (see the [module documentation](super#layout)).
//!
//! The scripts read and write these bytes too (`lua/common.lua` and
//! `lua/merge.lua`), at the offsets below: a change here is a change there.
//!
//! A session record (offsets in bytes from 0; Lua counts from 1):
//!
//! | offset | length | field |
//! |---:|---:|---|
//! | 0 | 2 | `S2`: a session record, layout 2 |
//! | 2 | 20 | `expires_at` |
//! | 22 | 20 | `absolute_deadline` |
//! | 42 | 20 | `last_seen` |
//! | 62 | 1 | `persistent`: `0` or `1` |
//! | 63 | 4 | `I`: the identity's length (u32, little-endian) |
//! | 67 | `I` | the identity (below) |
//! | 67 + `I` | 4 | `P`: the predecessor's length, 0 or 64 |
//! | 71 + `I` | `P` | the predecessor's hex |
//! | 71 + `I` + `P` | rest | the data, [`Data::packed`] |
//!
//! The identity, which only a rotation replaces (and compares):
//!
//! | offset | length | field |
//! |---:|---:|---|
//! | 0 | 20 | `created_at` |
//! | 20 | 22 | `handle` |
//! | 42 | 4 | `A`: the sign-in's length, 0 for a visitor |
//! | 46 | 20 | `auth.epoch` (when signed in, as the next three) |
//! | 66 | 20 | `auth.at_ms` |
//! | 86 | 64 | the user's digest: hex SHA-256 of the user, which names its index and cutoff keys |
//! | 150 | `A` − 104 | the user (UTF-8) |
//! | 46 + `A` | rest | JSON of the other metadata (`user_agent`, `ip`, `renewed_at`, and the sign-in's `amr`, `aal` and `idp`), empty when there is none |
//!
//! So a script finds what the cutoffs compare (`created_at`, the user's
//! digest and `auth.epoch`) at fixed offsets, without parsing JSON.
//!
//! A retired pointer is 126 bytes: `R2`, `at`, `overlap_until`, `until`
//! (20 each), the successor's hex (64).
//!
//! Times are `u64` milliseconds in 20 zero-padded decimal digits: fields
//! of one width, which the scripts compare as strings, exactly (Lua's
//! numbers are doubles, exact only up to 2^53).

use std::{borrow::Cow, fmt, io::Write as _, ops::Range};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::{
    store::{Auth, Data, Metadata, Record, Retired, StorageKey, StoreError, Stored, RECORD_FORMAT},
    Assurance, AuthMethod, ProviderSession, SessionHandle,
};

/// The first two bytes of a session record and of a retired pointer.
const RECORD: &[u8; 2] = b"S2";
const POINTER: &[u8; 2] = b"R2";

/// Digits of a time field (`u64::MAX` has 20).
pub(super) const TIME: usize = 20;

const EXPIRES_AT: usize = 2;
const DEADLINE: usize = EXPIRES_AT + TIME;
const LAST_SEEN: usize = DEADLINE + TIME;
const PERSISTENT: usize = LAST_SEEN + TIME;
const IDENTITY_LEN: usize = PERSISTENT + 1;
const IDENTITY: usize = IDENTITY_LEN + 4;

const CREATED_AT: usize = 0;
const HANDLE: usize = CREATED_AT + TIME;
const HANDLE_LEN: usize = 22;
const AUTH_LEN: usize = HANDLE + HANDLE_LEN;
const AUTH: usize = AUTH_LEN + 4;
// Within the sign-in part.
const EPOCH: usize = 0;
const AUTH_AT: usize = EPOCH + TIME;
const DIGEST: usize = AUTH_AT + TIME;
const DIGEST_LEN: usize = 64;
const USER: usize = DIGEST + DIGEST_LEN;

const POINTER_AT: usize = 2;
const OVERLAP_UNTIL: usize = POINTER_AT + TIME;
const UNTIL: usize = OVERLAP_UNTIL + TIME;
const SUCCESSOR: usize = UNTIL + TIME;
const POINTER_LEN: usize = SUCCESSOR + 64;

/// Scores and TTLs stay within the integers a double holds exactly.
pub(super) const MAX_AT: u64 = (1 << 53) - 1;

pub(super) fn codec(what: impl fmt::Display) -> StoreError {
    StoreError::Codec(format!("redis record: {what}"))
}

pub(super) fn flag(b: bool) -> &'static str {
    if b {
        "1"
    } else {
        "0"
    }
}

/// A time field: `t` in 20 zero-padded decimal digits.
pub(super) fn time(t: u64) -> [u8; TIME] {
    let mut out = [b'0'; TIME];
    // 20 digits hold every u64: the write cannot fail.
    let _ = write!(&mut out[..], "{t:020}");
    out
}

/// The TTL, in ms, of a key that expires at `at`, counted from the
/// request's time `now` (so the server's clock never decides when a
/// session ends): at least 1, at most [`MAX_AT`].
pub(super) fn ttl(at: u64, now: u64) -> u64 {
    at.saturating_sub(now).clamp(1, MAX_AT)
}

/// The hex SHA-256 of a user: the tag of its index key, and the digest a
/// record holds (scripts name per-user keys without hashing).
pub(super) fn user_digest(user: &str) -> String {
    StorageKey::from_bytes(Sha256::digest(user.as_bytes()).into()).to_hex()
}

/// The metadata kept as JSON in the identity: what the scripts never read.
/// Every field is optional: a record written before a field existed reads
/// with its default, and a reader that does not know a field ignores it.
#[derive(Serialize, Deserialize, Default)]
struct Extra<'a> {
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    user_agent: Option<Cow<'a, str>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    ip: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    renewed_at: Option<u64>,
    /// The sign-in's methods ([`Auth::methods`]), when signed in with any.
    #[serde(default, skip_serializing_if = "<[AuthMethod]>::is_empty")]
    amr: Cow<'a, [AuthMethod]>,
    /// The sign-in's assurance level, when above `Aal1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    aal: Option<Assurance>,
    /// The identity provider's session of the sign-in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    idp: Option<Cow<'a, ProviderSession>>,
}

/// The identity of `meta` (see the module documentation): what a rotation
/// writes for its successor.
pub(super) fn identity(meta: &Metadata) -> Result<Vec<u8>, StoreError> {
    let auth = meta.auth.as_ref();
    let mut out = Vec::with_capacity(AUTH + auth.map_or(0, |a| USER + a.user.len()) + 48);
    out.extend_from_slice(&time(meta.created_at));
    write!(out, "{}", meta.handle).map_err(codec)?;
    if out.len() != AUTH_LEN {
        return Err(codec("a session handle is not 22 characters"));
    }
    match auth {
        Some(auth) => {
            push_len(&mut out, USER + auth.user.len())?;
            out.extend_from_slice(&time(auth.epoch));
            out.extend_from_slice(&time(auth.at_ms));
            out.extend_from_slice(user_digest(&auth.user).as_bytes());
            out.extend_from_slice(auth.user.as_bytes());
        }
        None => push_len(&mut out, 0)?,
    }
    let extra = Extra {
        user_agent: meta.user_agent.as_deref().map(Cow::Borrowed),
        ip: meta.ip.as_deref().map(Cow::Borrowed),
        renewed_at: meta.renewed_at,
        amr: Cow::Borrowed(auth.map_or(&[][..], Auth::methods)),
        aal: auth.map(Auth::assurance).filter(|a| *a != Assurance::Aal1),
        idp: auth.and_then(Auth::provider).map(Cow::Borrowed),
    };
    let empty = extra.user_agent.is_none()
        && extra.ip.is_none()
        && extra.renewed_at.is_none()
        && extra.amr.is_empty()
        && extra.aal.is_none()
        && extra.idp.is_none();
    if !empty {
        serde_json::to_writer(&mut out, &extra).map_err(codec)?;
    }
    Ok(out)
}

fn push_len(out: &mut Vec<u8>, len: usize) -> Result<(), StoreError> {
    let len = u32::try_from(len).map_err(|_| codec("a field is larger than 4 GiB"))?;
    out.extend_from_slice(&len.to_le_bytes());
    Ok(())
}

/// The value of a session record.
pub(super) fn encode(record: &Record) -> Result<Vec<u8>, StoreError> {
    if record.format != RECORD_FORMAT {
        return Err(codec(format_args!("unsupported record format {}", record.format)));
    }
    let meta = &record.meta;
    let identity = identity(meta)?;
    let data = record.data.packed();
    let mut out = Vec::with_capacity(IDENTITY + identity.len() + 4 + DIGEST_LEN + data.len());
    out.extend_from_slice(RECORD);
    out.extend_from_slice(&time(meta.expires_at.min(meta.absolute_deadline)));
    out.extend_from_slice(&time(meta.absolute_deadline));
    out.extend_from_slice(&time(meta.last_seen));
    out.push(if meta.persistent { b'1' } else { b'0' });
    push_len(&mut out, identity.len())?;
    out.extend_from_slice(&identity);
    match &meta.predecessor {
        Some(p) => {
            push_len(&mut out, DIGEST_LEN)?;
            out.extend_from_slice(p.to_hex().as_bytes());
        }
        None => push_len(&mut out, 0)?,
    }
    out.extend_from_slice(data);
    Ok(out)
}

/// A change set's changes as the scripts merge them: sorted by key, byte
/// by byte (as [`Data`] orders its keys), one change per key (the last),
/// a removal as an empty value.
pub(super) fn sorted(changes: &[(String, Option<Box<RawValue>>)]) -> Vec<(&str, &str)> {
    let mut out: Vec<(&str, &str)> =
        changes.iter().rev().map(|(k, v)| (k.as_str(), v.as_deref().map_or("", RawValue::get))).collect();
    // Stable: of a key changed twice, the last change comes first and stays.
    out.sort_by(|a, b| a.0.cmp(b.0));
    out.dedup_by(|later, kept| later.0 == kept.0);
    out
}

/// The value of a retired pointer.
pub(super) fn encode_pointer(retired: &Retired) -> Vec<u8> {
    let mut out = Vec::with_capacity(POINTER_LEN);
    out.extend_from_slice(POINTER);
    out.extend_from_slice(&time(retired.at));
    out.extend_from_slice(&time(retired.overlap_until));
    out.extend_from_slice(&time(retired.until));
    out.extend_from_slice(retired.successor.to_hex().as_bytes());
    out
}

/// Whether a key's value is a retired pointer (else a record, or garbage).
pub(super) fn is_pointer(value: &[u8]) -> bool {
    value.starts_with(POINTER)
}

/// What a key's value holds: a record or a retired pointer, checked field
/// by field (any other bytes are a [`StoreError::Codec`]). Expiry is left
/// to the caller.
pub(super) fn decode(mut value: Vec<u8>, max_bytes: usize) -> Result<Stored, StoreError> {
    if value.len() > max_bytes {
        return Err(codec(format_args!("larger than {max_bytes} bytes")));
    }
    if is_pointer(&value) {
        return pointer(&value).map(Stored::Retired);
    }
    let head = head(&value)?;
    value.drain(..head.data);
    let data = Data::from_packed(value).ok_or_else(|| codec("malformed session data"))?;
    Ok(Stored::Live(Record { format: RECORD_FORMAT, meta: head.meta, data }))
}

/// A record's metadata, where its identity lies, and where its data starts.
pub(super) struct Head {
    pub(super) meta: Metadata,
    pub(super) identity: Range<usize>,
    data: usize,
}

/// The metadata of a record's value, without reading its data (what a
/// rotation starts from).
pub(super) fn head(value: &[u8]) -> Result<Head, StoreError> {
    if !value.starts_with(RECORD) {
        return Err(codec("neither a session record nor a retired pointer (layout 2)"));
    }
    let field = |range: Range<usize>| value.get(range).ok_or_else(|| codec("cut short"));
    let expires_at = parse_time(field(EXPIRES_AT..DEADLINE)?)?;
    let absolute_deadline = parse_time(field(DEADLINE..LAST_SEEN)?)?;
    let last_seen = parse_time(field(LAST_SEEN..PERSISTENT)?)?;
    let persistent = match field(PERSISTENT..IDENTITY_LEN)? {
        b"0" => false,
        b"1" => true,
        _ => return Err(codec("bad persistent flag")),
    };
    let identity = span(value, IDENTITY_LEN)?;
    let id = Identity::parse(field(identity.clone())?)?;
    let predecessor = span(value, identity.end)?;
    let predecessor = match predecessor.len() {
        0 => None,
        DIGEST_LEN => Some(storage_key(field(predecessor.clone())?)?),
        _ => return Err(codec("bad predecessor")),
    };
    let meta = Metadata {
        created_at: id.created_at,
        last_seen,
        absolute_deadline,
        expires_at,
        auth: id.auth,
        persistent,
        handle: id.handle,
        user_agent: id.extra.user_agent.map(|s| s.into()),
        ip: id.extra.ip.map(|s| s.into()),
        predecessor,
        renewed_at: id.extra.renewed_at,
    };
    let data = identity.end + 4 + predecessor.map_or(0, |_| DIGEST_LEN);
    Ok(Head { meta, identity, data })
}

/// The identity's fields.
struct Identity<'a> {
    created_at: u64,
    auth: Option<Auth>,
    handle: SessionHandle,
    extra: Extra<'a>,
}

impl<'a> Identity<'a> {
    fn parse(id: &'a [u8]) -> Result<Self, StoreError> {
        let field = |range: Range<usize>| id.get(range).ok_or_else(|| codec("identity cut short"));
        let created_at = parse_time(field(CREATED_AT..HANDLE)?)?;
        let handle = std::str::from_utf8(field(HANDLE..AUTH_LEN)?)
            .ok()
            .and_then(SessionHandle::parse)
            .ok_or_else(|| codec("bad session handle"))?;
        let sign_in = span(id, AUTH_LEN)?;
        let auth = match sign_in.len() {
            0 => None,
            n if n >= USER => {
                let at = |offset: usize| sign_in.start + offset;
                let epoch = parse_time(field(at(EPOCH)..at(AUTH_AT))?)?;
                let at_ms = parse_time(field(at(AUTH_AT)..at(DIGEST))?)?;
                let user =
                    std::str::from_utf8(field(at(USER)..sign_in.end)?).map_err(|_| codec("user is not UTF-8"))?;
                Some(Auth::new(user, at_ms).with_epoch(epoch))
            }
            _ => return Err(codec("bad sign-in field")),
        };
        let rest = field(sign_in.end..id.len())?;
        let mut extra: Extra<'a> =
            if rest.is_empty() { Extra::default() } else { serde_json::from_slice(rest).map_err(codec)? };
        // The sign-in's methods, level and provider live in the JSON part
        // (absent in a record written before they existed: none, `Aal1`).
        let auth = auth.map(|a| {
            let a = a.with_methods(std::mem::take(&mut extra.amr).into_owned(), extra.aal.unwrap_or_default());
            match extra.idp.take() {
                Some(idp) => a.with_provider(idp.into_owned()),
                None => a,
            }
        });
        Ok(Self { created_at, auth, handle, extra })
    }
}

/// The byte range of the length-prefixed field whose u32 length is at `at`.
fn span(value: &[u8], at: usize) -> Result<Range<usize>, StoreError> {
    let len: [u8; 4] =
        value.get(at..at.saturating_add(4)).and_then(|b| b.try_into().ok()).ok_or_else(|| codec("cut short"))?;
    let len = usize::try_from(u32::from_le_bytes(len)).map_err(codec)?;
    let start = at + 4;
    let end = start.checked_add(len).filter(|&end| end <= value.len()).ok_or_else(|| codec("cut short"))?;
    Ok(start..end)
}

fn pointer(value: &[u8]) -> Result<Retired, StoreError> {
    if value.len() != POINTER_LEN {
        return Err(codec("bad retired pointer"));
    }
    Ok(Retired::new(
        storage_key(&value[SUCCESSOR..])?,
        parse_time(&value[POINTER_AT..OVERLAP_UNTIL])?,
        parse_time(&value[OVERLAP_UNTIL..UNTIL])?,
        parse_time(&value[UNTIL..SUCCESSOR])?,
    ))
}

fn parse_time(field: &[u8]) -> Result<u64, StoreError> {
    if field.len() != TIME || !field.iter().all(u8::is_ascii_digit) {
        return Err(codec("bad time field"));
    }
    std::str::from_utf8(field).ok().and_then(|t| t.parse().ok()).ok_or_else(|| codec("bad time field"))
}

fn storage_key(hex: &[u8]) -> Result<StorageKey, StoreError> {
    std::str::from_utf8(hex).ok().and_then(StorageKey::from_hex).ok_or_else(|| codec("bad storage key field"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_string()).unwrap()
    }

    fn full_record() -> Record {
        let mut meta = Metadata::new(1_700_000_000_000, 60_000, u64::MAX);
        meta.auth = Some(Auth::new("alice \u{e9}", 5).with_epoch(7));
        meta.persistent = true;
        meta.user_agent = Some("agent \"1\"".into());
        meta.ip = Some("10.0.0.0".into());
        meta.renewed_at = Some(1_700_000_000_100);
        meta.predecessor = Some(StorageKey::from_bytes([0xcd; 32]));
        let mut record = Record::new(meta);
        record.data.insert("n", &raw("1.000000000000000000001"));
        record.data.insert("s", &raw("{\"b\":1,  \"a\":[2]}"));
        record.data.insert("", &raw("null"));
        record
    }

    #[test]
    fn records_round_trip_byte_for_byte() {
        for record in [full_record(), Record::new(Metadata::new(0, 1, 2))] {
            let value = encode(&record).unwrap();
            assert_eq!(decode(value.clone(), 1 << 20).unwrap(), Stored::Live(record.clone()));
            let head = head(&value).unwrap();
            assert_eq!(&value[head.identity.clone()], identity(&record.meta).unwrap().as_slice());
            assert_eq!(&value[head.data..], record.data.packed());
        }
        let value = encode(&full_record()).unwrap();
        assert_eq!(&value[DEADLINE..LAST_SEEN], b"18446744073709551615", "u64::MAX, exactly");
        assert_eq!(&value[..EXPIRES_AT], b"S2");
    }

    #[test]
    fn the_authentication_context_round_trips_and_old_records_still_read() {
        let mut record = full_record();
        let auth = Auth::new("alice \u{e9}", 5)
            .with_epoch(7)
            .with_methods(vec![AuthMethod::Password, AuthMethod::Other("x\"y".into())], Assurance::Aal3)
            .with_provider(ProviderSession::new("https://idp", Some("sid")));
        record.meta.auth = Some(auth);
        let value = encode(&record).unwrap();
        assert_eq!(decode(value.clone(), 1 << 20).unwrap(), Stored::Live(record.clone()));
        // The scripts' fixed offsets do not move: the context is in the JSON part.
        let plain = {
            let mut r = record.clone();
            r.meta.auth = Some(Auth::new("alice \u{e9}", 5).with_epoch(7));
            encode(&r).unwrap()
        };
        assert_eq!(head(&value).unwrap().identity.start, head(&plain).unwrap().identity.start);
        // Everything before the JSON part but the identity's length is the same.
        assert_eq!(value[..IDENTITY_LEN], plain[..IDENTITY_LEN]);
        assert_eq!(value[IDENTITY..IDENTITY + AUTH + USER], plain[IDENTITY..IDENTITY + AUTH + USER]);

        // A record of the current layout written before the context existed:
        // its JSON part holds the client and the renewal only.
        let mut old = Vec::new();
        old.extend_from_slice(&time(1_000));
        old.extend_from_slice(b"AAAAAAAAAAAAAAAAAAAAAA");
        push_len(&mut old, USER + 5).unwrap();
        old.extend_from_slice(&time(2));
        old.extend_from_slice(&time(900));
        old.extend_from_slice(user_digest("alice").as_bytes());
        old.extend_from_slice(b"alice");
        old.extend_from_slice(br#"{"user_agent":"ua","ip":"10.0.0.0","renewed_at":950}"#);
        let mut value = b"S2".to_vec();
        for t in [5_000, 9_000, 1_000] {
            value.extend_from_slice(&time(t));
        }
        value.push(b'0');
        push_len(&mut value, old.len()).unwrap();
        value.extend_from_slice(&old);
        push_len(&mut value, 0).unwrap();
        let Stored::Live(read) = decode(value.clone(), 1 << 20).unwrap() else { panic!("a record") };
        assert_eq!(read.meta.auth, Some(Auth::new("alice", 900).with_epoch(2)));
        assert_eq!(read.meta.user_agent.as_deref(), Some("ua"));
        assert_eq!(read.meta.renewed_at, Some(950));
        // ...and such a sign-in is written back exactly as before.
        assert_eq!(encode(&read).unwrap(), value);
    }

    #[test]
    fn fixed_offsets_hold_what_the_scripts_read() {
        let record = full_record();
        let value = encode(&record).unwrap();
        let at = |offset: usize, len: usize| std::str::from_utf8(&value[offset..offset + len]).unwrap().to_string();
        assert_eq!(at(EXPIRES_AT, TIME), format!("{:020}", record.meta.expires_at));
        assert_eq!(at(IDENTITY + CREATED_AT, TIME), format!("{:020}", record.meta.created_at));
        assert_eq!(at(IDENTITY + AUTH + EPOCH, TIME), format!("{:020}", 7));
        assert_eq!(at(IDENTITY + AUTH + AUTH_AT, TIME), format!("{:020}", 5));
        assert_eq!(at(IDENTITY + AUTH + DIGEST, DIGEST_LEN), user_digest("alice \u{e9}"));
        // The offsets the scripts use (Lua counts from 1): the identity from
        // 68, the sign-in's length at 110, the epoch at 114, the digest at
        // 154..217.
        assert_eq!(IDENTITY + 1, 68);
        assert_eq!(IDENTITY + AUTH_LEN + 1, 110);
        assert_eq!(IDENTITY + AUTH + EPOCH + 1, 114);
        assert_eq!((IDENTITY + AUTH + DIGEST + 1, IDENTITY + AUTH + DIGEST + DIGEST_LEN), (154, 217));
        let pointer = encode_pointer(&Retired::new(StorageKey::from_bytes([1; 32]), 1, 2, 3));
        assert_eq!(pointer.len(), 126);
    }

    #[test]
    fn pointers_round_trip() {
        let retired = Retired::new(StorageKey::from_bytes([0xab; 32]), 10, 20, u64::MAX);
        assert_eq!(decode(encode_pointer(&retired), 1 << 20).unwrap(), Stored::Retired(retired));
    }

    #[test]
    fn garbage_is_a_codec_error_never_a_panic() {
        let value = encode(&full_record()).unwrap();
        let is_codec = |v: Vec<u8>| matches!(decode(v, 1 << 20), Err(StoreError::Codec(_)));
        // Every prefix (one that ends between two data entries is a record
        // with fewer entries), and every single-byte corruption.
        let data = head(&value).unwrap().data;
        for cut in 0..value.len() {
            match decode(value[..cut].to_vec(), 1 << 20) {
                Err(StoreError::Codec(_)) => {}
                Ok(Stored::Live(r)) if cut >= data => assert!(r.data.len() < 3, "cut at {cut}"),
                other => panic!("cut at {cut}: {other:?}"),
            }
        }
        for i in 0..value.len() {
            for b in [0u8, b'9', 0xff, b'{'] {
                let mut bad = value.clone();
                bad[i] = b;
                // Some replacements are harmless (a digit in a time, a JSON
                // byte): decoding must just not panic.
                let _ = decode(bad, 1 << 20);
            }
        }
        assert!(is_codec(b"garbage".to_vec()));
        assert!(is_codec(Vec::new()));
        let mut long = value.clone();
        long.extend_from_slice(b"\x01\0\0\0k\x05\0\0\0{not");
        assert!(is_codec(long), "malformed data");
        let mut pointer = encode_pointer(&Retired::new(StorageKey::from_bytes([1; 32]), 1, 2, 3));
        pointer.push(b'0');
        assert!(is_codec(pointer));
        assert!(matches!(decode(value, 100), Err(StoreError::Codec(_))), "larger than the cap");
    }

    #[test]
    fn changes_are_sorted_once_per_key() {
        let changes = vec![
            ("b".to_string(), Some(raw("1"))),
            ("a".to_string(), None),
            ("\u{e9}".to_string(), Some(raw("2"))),
            ("b".to_string(), Some(raw("3"))),
            ("Z".to_string(), Some(raw("4"))),
        ];
        assert_eq!(sorted(&changes), [("Z", "4"), ("a", ""), ("b", "3"), ("\u{e9}", "2")]);
    }

    #[test]
    fn times_are_twenty_digits() {
        assert_eq!(&time(0), b"00000000000000000000");
        assert_eq!(&time(u64::MAX), b"18446744073709551615");
        assert_eq!(parse_time(&time(1_700_000_000_000)).unwrap(), 1_700_000_000_000);
        assert!(parse_time(b"+0000000000000000001").is_err());
        assert!(parse_time(b"99999999999999999999").is_err());
        assert_eq!(ttl(10, 4), 6);
        assert_eq!(ttl(4, 10), 1);
        assert_eq!(ttl(u64::MAX, 0), MAX_AT);
    }
}
