//! The record's representation in Redis: the hash fields and their values,
//! and the conversions between a [`Record`] (or a [`Retired`] pointer) and
//! them (see the [module documentation](super#layout)).

use std::fmt;

use ::redis::Value;
use serde_json::{value::RawValue, Map};

use crate::store::{Data, Metadata, Record, Retired, StorageKey, StoreError, Stored, RECORD_FORMAT};

/// Hash fields holding the metadata. Data fields start with [`DATA_PREFIX`].
pub(super) const F_FORMAT: &str = "v";
pub(super) const F_META: &str = "meta";
pub(super) const F_LAST_SEEN: &str = "last_seen";
pub(super) const F_EXPIRES_AT: &str = "expires_at";
pub(super) const F_DEADLINE: &str = "absolute_deadline";
pub(super) const F_PERSISTENT: &str = "persistent";
pub(super) const F_PREDECESSOR: &str = "predecessor";
pub(super) const F_SIZE: &str = "size";
/// A signed-in record's user cutoff key suffix (see `cutoffs`), so that the
/// lookup script reads the user's cutoff without parsing `meta`.
pub(super) const F_USER_CUT: &str = "uc";
pub(super) const DATA_PREFIX: &str = "d:";
/// Fields of a retired key (a hash of these four only).
pub(super) const F_RETIRED: &str = "retired";
pub(super) const F_AT: &str = "at";
pub(super) const F_OVERLAP_UNTIL: &str = "overlap_until";
pub(super) const F_UNTIL: &str = "until";

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

/// The `meta` field: the metadata's JSON without the fields that have
/// their own (the times, `persistent` and `predecessor`).
pub(super) fn meta_json(meta: &Metadata) -> Result<String, StoreError> {
    let mut fixed = match serde_json::to_value(meta).map_err(codec)? {
        serde_json::Value::Object(map) => map,
        _ => return Err(codec("metadata is not an object")),
    };
    for f in [F_LAST_SEEN, F_EXPIRES_AT, F_DEADLINE, F_PERSISTENT, F_PREDECESSOR] {
        fixed.remove(f);
    }
    serde_json::to_string(&fixed).map_err(codec)
}

/// The field/value pairs of a record (metadata first).
pub(super) fn encode(record: &Record) -> Result<Vec<(String, String)>, StoreError> {
    let meta = &record.meta;
    let mut out = Vec::with_capacity(8 + record.data.len());
    out.push((F_FORMAT.to_string(), record.format.to_string()));
    out.push((F_META.to_string(), meta_json(meta)?));
    out.push((F_LAST_SEEN.to_string(), meta.last_seen.to_string()));
    out.push((F_EXPIRES_AT.to_string(), meta.expires_at.min(meta.absolute_deadline).to_string()));
    out.push((F_DEADLINE.to_string(), meta.absolute_deadline.to_string()));
    out.push((F_PERSISTENT.to_string(), flag(meta.persistent).to_string()));
    if let Some(p) = &meta.predecessor {
        out.push((F_PREDECESSOR.to_string(), p.to_hex()));
    }
    out.push((F_SIZE.to_string(), record.data.size().to_string()));
    if let Some(user) = meta.user() {
        out.push((F_USER_CUT.to_string(), super::cutoffs::user_cut(user)));
    }
    for (k, v) in record.data.iter() {
        out.push((format!("{DATA_PREFIX}{k}"), v.get().to_string()));
    }
    Ok(out)
}

/// What an `HGETALL` reply holds: a record, a retired pointer, or `None`
/// for an empty reply. Expiry is left to the caller.
pub(super) fn decode(reply: Value, max_bytes: usize) -> Result<Option<Stored>, StoreError> {
    let items = match reply {
        Value::Nil => return Ok(None),
        Value::Map(pairs) => pairs.into_iter().flat_map(|(k, v)| [k, v]).collect(),
        Value::Array(items) => items,
        _ => return Err(codec("unexpected HGETALL reply")),
    };
    if items.len() % 2 != 0 {
        return Err(codec("odd HGETALL reply"));
    }
    if items.is_empty() {
        return Ok(None);
    }
    let mut size = 0usize;
    let mut format = None;
    let mut meta: Option<String> = None;
    let (mut last_seen, mut expires_at, mut deadline, mut persistent) = (None, None, None, None);
    let mut predecessor = None;
    let (mut retired, mut at, mut overlap_until, mut until) = (None, None, None, None);
    let mut pairs = Vec::with_capacity(items.len() / 2 - 6.min(items.len() / 2));
    let mut it = items.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        let (Value::BulkString(k), Value::BulkString(v)) = (k, v) else {
            return Err(codec("unexpected field type"));
        };
        size = size.saturating_add(k.len()).saturating_add(v.len());
        if size > max_bytes {
            return Err(codec(format_args!("larger than {max_bytes} bytes")));
        }
        if k.starts_with(DATA_PREFIX.as_bytes()) {
            let mut key = String::from_utf8(k).map_err(|_| codec("field name is not UTF-8"))?;
            key.drain(..DATA_PREFIX.len());
            let value = String::from_utf8(v).map_err(|_| codec("value is not UTF-8"))?;
            let value = RawValue::from_string(value).map_err(|_| codec("value is not JSON"))?;
            pairs.push((key, value));
            continue;
        }
        let text = || std::str::from_utf8(&v).map_err(|_| codec("value is not UTF-8"));
        let key = || StorageKey::from_hex(text()?).ok_or_else(|| codec("bad storage key field"));
        match k.as_slice() {
            b"v" => format = Some(text()?.parse::<u8>().map_err(|_| codec("bad format field"))?),
            b"meta" => meta = Some(String::from_utf8(v).map_err(|_| codec("value is not UTF-8"))?),
            b"last_seen" => last_seen = Some(time(text()?)?),
            b"expires_at" => expires_at = Some(time(text()?)?),
            b"absolute_deadline" => deadline = Some(time(text()?)?),
            b"persistent" => persistent = Some(v == b"1"),
            b"predecessor" => predecessor = Some(key()?),
            b"retired" => retired = Some(key()?),
            b"at" => at = Some(time(text()?)?),
            b"overlap_until" => overlap_until = Some(time(text()?)?),
            b"until" => until = Some(time(text()?)?),
            // `size`, and fields of a later version of this layout.
            _ => {}
        }
    }
    if let Some(successor) = retired {
        let (Some(at), Some(overlap_until), Some(until)) = (at, overlap_until, until) else {
            return Err(codec("retired key fields are missing"));
        };
        return Ok(Some(Stored::Retired(Retired::new(successor, at, overlap_until, until))));
    }
    let (Some(format), Some(meta), Some(last_seen), Some(expires_at), Some(deadline)) =
        (format, meta, last_seen, expires_at, deadline)
    else {
        return Err(codec("metadata fields are missing"));
    };
    if format != RECORD_FORMAT {
        return Err(codec(format_args!("unsupported record format {format}")));
    }
    let mut meta = metadata(&meta, last_seen, expires_at, deadline, persistent.unwrap_or(false))?;
    meta.predecessor = predecessor;
    let data = Data::from_pairs(pairs).ok_or_else(|| codec("duplicate session key"))?;
    Ok(Some(Stored::Live(Record { format, meta, data })))
}

/// The metadata from the `meta` field's JSON (every field but the times and
/// `persistent`) and the fields that hold those.
///
/// Parsed straight into [`Metadata`], with the hash fields written in
/// front of the other members; a `meta` that this cannot read (one that
/// holds a member of the same name, say) goes through a JSON map instead,
/// where the hash fields win. Both give the same metadata.
pub(super) fn metadata(
    meta: &str,
    last_seen: u64,
    expires_at: u64,
    deadline: u64,
    persistent: bool,
) -> Result<Metadata, StoreError> {
    if let Some(rest) = meta.strip_prefix('{') {
        let mut text = String::with_capacity(meta.len() + 112);
        text.push_str("{\"last_seen\":");
        text.push_str(&last_seen.to_string());
        text.push_str(",\"expires_at\":");
        text.push_str(&expires_at.to_string());
        text.push_str(",\"absolute_deadline\":");
        text.push_str(&deadline.to_string());
        text.push_str(if persistent { ",\"persistent\":true" } else { ",\"persistent\":false" });
        if !rest.trim_start().starts_with('}') {
            text.push(',');
        }
        text.push_str(rest);
        if let Ok(meta) = serde_json::from_str::<Metadata>(&text) {
            return Ok(meta);
        }
    }
    let mut map: Map<String, serde_json::Value> = serde_json::from_str(meta).map_err(codec)?;
    map.insert(F_LAST_SEEN.into(), last_seen.into());
    map.insert(F_EXPIRES_AT.into(), expires_at.into());
    map.insert(F_DEADLINE.into(), deadline.into());
    map.insert(F_PERSISTENT.into(), persistent.into());
    serde_json::from_value(serde_json::Value::Object(map)).map_err(codec)
}

pub(super) fn time(v: &str) -> Result<u64, StoreError> {
    v.parse::<u64>().map_err(|_| codec("bad time field"))
}

#[cfg(test)]
mod tests {
    use super::super::DEFAULT_MAX_RECORD_BYTES;
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_string()).unwrap()
    }

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    fn reply(fields: &[(String, String)]) -> Value {
        Value::Array(fields.iter().flat_map(|(k, v)| [bulk(k), bulk(v)]).collect())
    }

    #[test]
    fn encode_decode_round_trip_keeps_values_byte_for_byte() {
        let mut meta = Metadata::new(1_700_000_000_000, 60_000, u64::MAX);
        meta.auth = Some(crate::store::Auth::new("alice", 5));
        meta.persistent = true;
        let mut record = Record::new(meta);
        record.data.insert("n", &raw("1.000000000000000000001"));
        record.data.insert("s", &raw("{\"b\":1,  \"a\":[2]}"));
        record.data.insert("", &raw("null"));
        record.meta.predecessor = Some(StorageKey::from_bytes([0xcd; 32]));
        let fields = encode(&record).unwrap();
        assert!(!fields.iter().any(|(k, v)| k == F_META && v.contains("predecessor")), "its own field");
        let Some(Stored::Live(back)) = decode(reply(&fields), DEFAULT_MAX_RECORD_BYTES).unwrap() else {
            panic!("a live record")
        };
        assert_eq!(back, record);
        assert_eq!(back.meta.absolute_deadline, u64::MAX);
        let size = fields.iter().find(|(k, _)| k == F_SIZE).map(|(_, v)| v.as_str());
        assert_eq!(size, Some(record.data.size().to_string().as_str()));
    }

    #[test]
    fn retired_pointers_decode() {
        let successor = StorageKey::from_bytes([0xab; 32]);
        let fields: Vec<(String, String)> = [
            ("retired", successor.to_hex()),
            ("at", "10".into()),
            ("overlap_until", "20".into()),
            ("until", "130".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let want = Stored::Retired(Retired::new(successor, 10, 20, 130));
        assert_eq!(decode(reply(&fields), 1 << 20).unwrap(), Some(want));
        let short: Vec<_> = fields.iter().filter(|(k, _)| k != "until").cloned().collect();
        assert!(matches!(decode(reply(&short), 1 << 20), Err(StoreError::Codec(_))));
        let mut bad = fields;
        bad[0].1 = "zz".into();
        assert!(matches!(decode(reply(&bad), 1 << 20), Err(StoreError::Codec(_))));
    }

    #[test]
    fn metadata_is_read_straight_or_through_a_map_alike() {
        let mut meta = Metadata::new(1_000, 60_000, 120_000);
        meta.auth = Some(crate::store::Auth::new("alice", 5));
        meta.ip = Some("10.0.0.0".into());
        let mut fixed = match serde_json::to_value(&meta).unwrap() {
            serde_json::Value::Object(map) => map,
            _ => unreachable!(),
        };
        for f in [F_LAST_SEEN, F_EXPIRES_AT, F_DEADLINE, F_PERSISTENT] {
            fixed.remove(f);
        }
        let text = serde_json::to_string(&fixed).unwrap();
        let mut want = meta.clone();
        (want.last_seen, want.expires_at, want.absolute_deadline, want.persistent) = (7, 8, 9, true);
        assert_eq!(metadata(&text, 7, 8, 9, true).unwrap(), want);
        // A `meta` that holds a time too (never written by this module): the
        // straight parse refuses the duplicate, the map path lets the hash
        // field win.
        fixed.insert(F_LAST_SEEN.into(), 1.into());
        let text = serde_json::to_string(&fixed).unwrap();
        assert_eq!(metadata(&text, 7, 8, 9, true).unwrap(), want);
        assert!(matches!(metadata("{not json", 7, 8, 9, true), Err(StoreError::Codec(_))));
        assert!(matches!(metadata("{}", 7, 8, 9, true), Err(StoreError::Codec(_))), "created_at is required");
    }

    #[test]
    fn oversized_or_broken_records_are_codec_errors() {
        let mut record = Record::new(Metadata::new(0, 1, 2));
        record.data.insert("big", &raw(&format!("\"{}\"", "x".repeat(2_000))));
        let fields = encode(&record).unwrap();
        assert!(matches!(decode(reply(&fields), 1_000), Err(StoreError::Codec(_))));

        let mut broken = fields.clone();
        broken.push(("d:bad".into(), "{not json".into()));
        assert!(matches!(decode(reply(&broken), 1 << 20), Err(StoreError::Codec(_))));

        let missing: Vec<_> = fields.into_iter().filter(|(k, _)| k != F_EXPIRES_AT).collect();
        assert!(matches!(decode(reply(&missing), 1 << 20), Err(StoreError::Codec(_))));

        assert!(decode(Value::Array(vec![]), 10).unwrap().is_none());
        assert!(decode(Value::Map(vec![]), 10).unwrap().is_none());
    }
}
