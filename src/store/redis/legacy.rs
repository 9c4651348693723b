//! Layout 1, written by sessionware 0.1: a record is a hash (`v`, `meta`,
//! the times, `persistent`, `predecessor`, `size`, one `d:<key>` field per
//! value), a retired pointer a hash of `retired`, `at`, `overlap_until`
//! and `until`. Such keys are read as they are and rewritten in layout 2
//! ([`super::codec`]) before any script writes them (see the [module
//! documentation](super#records-written-by-sessionware-01)).

use ::redis::{Cmd, FromRedisValue, Script, Value};
use serde_json::{value::RawValue, Map};

use super::{
    codec::{self, codec},
    scripts::{evalsha, run},
    RedisStore,
};
use crate::store::{Data, Metadata, Record, Retired, StorageKey, StoreError, Stored, RECORD_FORMAT};

/// Data fields start with this; the others hold the metadata.
const DATA_PREFIX: &str = "d:";

/// How many times [`RedisStore::migrate`] reads a key again when it changed
/// between its read and its rewrite.
const MIGRATE_ATTEMPTS: usize = 3;

/// How many times [`RedisStore::run_migrating`] runs a script: a chain of
/// 16 keys may hold one of layout 1 after the other.
const RUNS: usize = 18;

impl RedisStore {
    /// Runs `cmd`, an [`evalsha`] of `script`; while its reply names keys
    /// of layout 1 (`legacy` lists their Redis keys; the script changed
    /// nothing then), migrates them and runs it again.
    pub(super) async fn run_migrating<T: FromRedisValue>(
        &self,
        script: &Script,
        cmd: &Cmd,
        legacy: impl Fn(&T) -> Vec<String>,
    ) -> Result<T, StoreError> {
        for _ in 0..RUNS {
            let reply: T = run(script, cmd, &mut self.conn.clone()).await.map_err(|e| self.err(&e))?;
            let keys = legacy(&reply);
            if keys.is_empty() {
                return Ok(reply);
            }
            for key in &keys {
                self.migrate(key).await?;
            }
        }
        Err(StoreError::Backend("redis: a script kept finding keys of layout 1".into()))
    }

    /// Rewrites the key `rkey` from layout 1 to layout 2, keeping its TTL:
    /// an `HGETALL`, then a script that replaces the hash only if it still
    /// holds exactly the fields read. Nothing to do when the key holds no
    /// hash (any more): another caller migrated it, or it is gone.
    pub(super) async fn migrate(&self, rkey: &str) -> Result<(), StoreError> {
        for _ in 0..MIGRATE_ATTEMPTS {
            let reply = ::redis::cmd("HGETALL").arg(rkey).query_async::<Value>(&mut self.conn.clone()).await;
            let pairs = match reply {
                Ok(reply) => fields(reply)?,
                // WRONGTYPE: a string by now.
                Err(e) if e.code() == Some("WRONGTYPE") => return Ok(()),
                Err(e) => return Err(self.err(&e)),
            };
            let Some(stored) = decode_fields(&pairs, usize::MAX)? else {
                return Ok(());
            };
            let value = match &stored {
                Stored::Live(record) => codec::encode(record)?,
                Stored::Retired(retired) => codec::encode_pointer(retired),
            };
            let mut cmd = evalsha(&self.scripts.migrate, &[rkey]);
            cmd.arg(value);
            for (k, v) in &pairs {
                cmd.arg(k).arg(v);
            }
            let done: i64 = run(&self.scripts.migrate, &cmd, &mut self.conn.clone()).await.map_err(|e| self.err(&e))?;
            if done == 1 {
                return Ok(());
            }
        }
        Err(StoreError::Backend("redis: a record kept changing while it was migrated to layout 2".into()))
    }
}

/// The field/value pairs of a hash, as `HGETALL` gives them.
type Fields = Vec<(Vec<u8>, Vec<u8>)>;

/// The field/value pairs of an `HGETALL` reply.
fn fields(reply: Value) -> Result<Fields, StoreError> {
    let items: Vec<Value> = match reply {
        Value::Nil => return Ok(Vec::new()),
        Value::Map(pairs) => pairs.into_iter().flat_map(|(k, v)| [k, v]).collect(),
        Value::Array(items) => items,
        _ => return Err(codec("unexpected HGETALL reply")),
    };
    if items.len() % 2 != 0 {
        return Err(codec("odd HGETALL reply"));
    }
    let mut out = Vec::with_capacity(items.len() / 2);
    let mut it = items.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        let (Value::BulkString(k), Value::BulkString(v)) = (k, v) else {
            return Err(codec("unexpected field type"));
        };
        out.push((k, v));
    }
    Ok(out)
}

/// What an `HGETALL` reply of a layout 1 key holds: a record, a retired
/// pointer, or `None` for an empty reply. Expiry is left to the caller.
pub(super) fn decode(reply: Value, max_bytes: usize) -> Result<Option<Stored>, StoreError> {
    decode_fields(&fields(reply)?, max_bytes)
}

/// The record or retired pointer that the fields of a layout 1 key hold
/// (`None` for none).
fn decode_fields(pairs: &Fields, max_bytes: usize) -> Result<Option<Stored>, StoreError> {
    if pairs.is_empty() {
        return Ok(None);
    }
    let mut size = 0usize;
    let mut format = None;
    let mut meta: Option<&str> = None;
    let (mut last_seen, mut expires_at, mut deadline, mut persistent) = (None, None, None, None);
    let mut predecessor = None;
    let (mut retired, mut at, mut overlap_until, mut until) = (None, None, None, None);
    let mut data = Vec::with_capacity(pairs.len());
    for (k, v) in pairs {
        size = size.saturating_add(k.len()).saturating_add(v.len());
        if size > max_bytes {
            return Err(codec(format_args!("larger than {max_bytes} bytes")));
        }
        if let Some(key) = k.strip_prefix(DATA_PREFIX.as_bytes()) {
            let key = String::from_utf8(key.to_vec()).map_err(|_| codec("field name is not UTF-8"))?;
            let value = String::from_utf8(v.clone()).map_err(|_| codec("value is not UTF-8"))?;
            let value = RawValue::from_string(value).map_err(|_| codec("value is not JSON"))?;
            data.push((key, value));
            continue;
        }
        let text = || std::str::from_utf8(v).map_err(|_| codec("value is not UTF-8"));
        let key = || StorageKey::from_hex(text()?).ok_or_else(|| codec("bad storage key field"));
        match k.as_slice() {
            b"v" => format = Some(text()?.parse::<u8>().map_err(|_| codec("bad format field"))?),
            b"meta" => meta = Some(text()?),
            b"last_seen" => last_seen = Some(time(text()?)?),
            b"expires_at" => expires_at = Some(time(text()?)?),
            b"absolute_deadline" => deadline = Some(time(text()?)?),
            b"persistent" => persistent = Some(v.as_slice() == b"1"),
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
    let mut meta = metadata(meta, last_seen, expires_at, deadline, persistent.unwrap_or(false))?;
    meta.predecessor = predecessor;
    let data = Data::from_pairs(data).ok_or_else(|| codec("duplicate session key"))?;
    Ok(Some(Stored::Live(Record { format, meta, data })))
}

/// The metadata from the `meta` field's JSON (every field but the times,
/// `persistent` and `predecessor`) and the fields that hold those (which
/// win over members of the same name).
fn metadata(
    meta: &str,
    last_seen: u64,
    expires_at: u64,
    deadline: u64,
    persistent: bool,
) -> Result<Metadata, StoreError> {
    let mut map: Map<String, serde_json::Value> = serde_json::from_str(meta).map_err(codec)?;
    map.insert("last_seen".into(), last_seen.into());
    map.insert("expires_at".into(), expires_at.into());
    map.insert("absolute_deadline".into(), deadline.into());
    map.insert("persistent".into(), persistent.into());
    serde_json::from_value(serde_json::Value::Object(map)).map_err(codec)
}

fn time(v: &str) -> Result<u64, StoreError> {
    v.parse::<u64>().map_err(|_| codec("bad time field"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Auth;

    fn reply(fields: &[(&str, &str)]) -> Value {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        Value::Array(fields.iter().flat_map(|(k, v)| [bulk(k), bulk(v)]).collect())
    }

    /// A record as sessionware 0.1 wrote it.
    const RECORD: &[(&str, &str)] = &[
        ("v", "1"),
        (
            "meta",
            r#"{"created_at":1000,"auth":{"user":"alice","at_ms":900},"handle":"AAAAAAAAAAAAAAAAAAAAAA","renewed_at":1500}"#,
        ),
        ("last_seen", "2000"),
        ("expires_at", "62000"),
        ("absolute_deadline", "18446744073709551615"),
        ("persistent", "1"),
        ("predecessor", "cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd"),
        ("size", "24"),
        ("d:n", "1.000000000000000000001"),
        ("d:s", r#"{"b":1,  "a":[2]}"#),
    ];

    #[test]
    fn records_of_0_1_decode() {
        let Some(Stored::Live(record)) = decode(reply(RECORD), 1 << 20).unwrap() else { panic!("a live record") };
        let meta = &record.meta;
        assert_eq!((meta.created_at, meta.last_seen, meta.expires_at), (1000, 2000, 62000));
        assert_eq!(meta.absolute_deadline, u64::MAX);
        assert_eq!(meta.auth, Some(Auth::new("alice", 900)));
        assert!(meta.persistent);
        assert_eq!(meta.renewed_at, Some(1500));
        assert_eq!(meta.predecessor, Some(StorageKey::from_bytes([0xcd; 32])));
        assert_eq!(record.data.get("n").map(RawValue::get), Some("1.000000000000000000001"));
        assert_eq!(record.data.get("s").map(RawValue::get), Some(r#"{"b":1,  "a":[2]}"#), "byte for byte");
        // Layout 2 keeps all of it.
        let value = codec::encode(&record).unwrap();
        assert_eq!(codec::decode(value, 1 << 20).unwrap(), Stored::Live(record));
    }

    #[test]
    fn pointers_of_0_1_decode() {
        let successor = StorageKey::from_bytes([0xab; 32]);
        let hex = successor.to_hex();
        let fields = [("retired", hex.as_str()), ("at", "10"), ("overlap_until", "20"), ("until", "130")];
        let want = Stored::Retired(Retired::new(successor, 10, 20, 130));
        assert_eq!(decode(reply(&fields), 1 << 20).unwrap(), Some(want));
        assert!(matches!(decode(reply(&fields[..3]), 1 << 20), Err(StoreError::Codec(_))));
        let bad = [("retired", "zz"), ("at", "10"), ("overlap_until", "20"), ("until", "130")];
        assert!(matches!(decode(reply(&bad), 1 << 20), Err(StoreError::Codec(_))));
    }

    #[test]
    fn broken_records_are_codec_errors() {
        assert!(matches!(decode(reply(RECORD), 100), Err(StoreError::Codec(_))), "larger than the cap");
        let mut broken = RECORD.to_vec();
        broken.push(("d:bad", "{not json"));
        assert!(matches!(decode(reply(&broken), 1 << 20), Err(StoreError::Codec(_))));
        let missing: Vec<_> = RECORD.iter().copied().filter(|(k, _)| *k != "expires_at").collect();
        assert!(matches!(decode(reply(&missing), 1 << 20), Err(StoreError::Codec(_))));
        let mut meta = RECORD.to_vec();
        meta[1].1 = "{not json";
        assert!(matches!(decode(reply(&meta), 1 << 20), Err(StoreError::Codec(_))));
        let mut format = RECORD.to_vec();
        format[0].1 = "2";
        assert!(matches!(decode(reply(&format), 1 << 20), Err(StoreError::Codec(_))));
        assert!(matches!(decode(Value::Int(1), 1 << 20), Err(StoreError::Codec(_))));
        assert!(decode(Value::Array(vec![]), 10).unwrap().is_none());
        assert!(decode(Value::Map(vec![]), 10).unwrap().is_none());
    }
}
