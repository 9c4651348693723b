//! What a row holds, to and from its columns: a [`Record`] as JSON, or a
//! [`Retired`] pointer in the text of an expired record.

use std::fmt;

use sqlx::Row;

use super::SqlStore;
use crate::store::{Record, Retired, StorageKey, StoreError, Stored};

impl SqlStore {
    pub(super) fn encode(&self, record: &Record) -> Result<String, StoreError> {
        let text = serde_json::to_string(record).map_err(|e| StoreError::Codec(format!("sql record: {e}")))?;
        if text.len() > self.max_record_bytes {
            return Err(StoreError::Codec(format!("sql record: larger than {} bytes", self.max_record_bytes)));
        }
        Ok(text)
    }

    /// The record of a row, with the times of its columns.
    pub(super) fn decode(
        &self,
        expires_at: i64,
        deadline: i64,
        last_seen: i64,
        text: &str,
    ) -> Result<Record, StoreError> {
        let codec = |what: &dyn fmt::Display| StoreError::Codec(format!("sql record: {what}"));
        if text.len() > self.max_record_bytes {
            return Err(codec(&format_args!("larger than {} bytes", self.max_record_bytes)));
        }
        let mut record: Record = serde_json::from_str(text).map_err(|e| codec(&e))?;
        if record.format != crate::store::RECORD_FORMAT {
            return Err(codec(&format_args!("unsupported record format {}", record.format)));
        }
        let time = |v: i64| u64::try_from(v).map_err(|_| codec(&"negative time"));
        record.meta.expires_at = time(expires_at)?;
        record.meta.absolute_deadline = time(deadline)?;
        record.meta.last_seen = time(last_seen)?;
        Ok(record)
    }

    /// What a row holds: a retired pointer (its text starts with
    /// [`RETIRED_PREFIX`]; `until` is the `expires_at` column) or a record
    /// (see [`decode`](Self::decode)).
    pub(super) fn decode_row(
        &self,
        expires_at: i64,
        deadline: i64,
        last_seen: i64,
        text: &str,
    ) -> Result<Stored, StoreError> {
        if !text.starts_with(RETIRED_PREFIX) {
            return self.decode(expires_at, deadline, last_seen, text).map(Stored::Live);
        }
        let mut retired = decode_retired(text)?;
        retired.until = u64::try_from(expires_at).map_err(|_| StoreError::Codec("sql record: negative time".into()))?;
        Ok(Stored::Retired(retired))
    }
}

/// How the text of a retired row starts. A record's JSON never does: it is
/// written by `serde_json` from [`Record`], whose first field is `"v"`.
pub(super) const RETIRED_PREFIX: &str = "{\"r\":";

/// The `record` text of a retired row: the pointer under `"r"`, followed by
/// the fields of an empty record that expired at 0, so that a process of an
/// earlier version (which reads it as a record, ignoring `"r"`) takes the
/// retired key for an expired session.
pub(super) fn encode_retired(retired: &Retired) -> Result<String, StoreError> {
    let pointer = serde_json::to_string(retired).map_err(|e| StoreError::Codec(format!("sql retired key: {e}")))?;
    let at = retired.at;
    Ok(format!(
        "{RETIRED_PREFIX}{pointer},\"v\":{format},\"m\":{{\"created_at\":{at},\"last_seen\":{at},\
         \"absolute_deadline\":0,\"expires_at\":0}},\"d\":{{}}}}",
        format = crate::store::RECORD_FORMAT
    ))
}

/// The pointer of a retired row's text.
pub(super) fn decode_retired(text: &str) -> Result<Retired, StoreError> {
    #[derive(serde::Deserialize)]
    struct Text {
        r: Retired,
    }
    serde_json::from_str::<Text>(text).map(|t| t.r).map_err(|e| StoreError::Codec(format!("sql retired key: {e}")))
}

/// The successor of a retired pointer deleted by `delete`'s chain, if it
/// is to be followed: the row was a pointer (`text` is its text) that is
/// still live (`until`, its `expires_at`, is after `now`).
pub(super) fn live_pointer(until: i64, text: Option<&str>, now: u64) -> Option<StorageKey> {
    let text = text.filter(|t| t.starts_with(RETIRED_PREFIX))?;
    match decode_retired(text) {
        Ok(retired) => (until > to_i64(now)).then_some(retired.successor),
        Err(e) => {
            tracing::warn!(error = %e, "unreadable retired session row");
            None
        }
    }
}

/// The four columns every `SELECT` of this module reads, in order:
/// `expires_at, absolute_deadline, last_seen, record`.
pub(super) fn columns<R>(row: &R) -> Result<(i64, i64, i64, String), sqlx::Error>
where
    R: Row,
    usize: sqlx::ColumnIndex<R>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?, row.try_get(3)?))
}

pub(super) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Metadata;

    #[test]
    fn retired_text_is_a_pointer_here_and_an_expired_record_before() {
        let retired = Retired::new(StorageKey::from_bytes([7; 32]), 1_000, 31_000, 121_000);
        let text = encode_retired(&retired).unwrap();
        assert!(text.starts_with(RETIRED_PREFIX));
        assert_eq!(decode_retired(&text).unwrap(), retired);
        // What a reader of an earlier version (a `Record`) makes of it.
        let before: Record = serde_json::from_str(&text).unwrap();
        assert_eq!(before.format, crate::store::RECORD_FORMAT);
        assert!(before.is_expired(0));
        assert!(before.data.is_empty());
        assert!(before.meta.user().is_none());
        // A record's JSON never starts like a pointer.
        let mut record = Record::new(Metadata::new(0, 1, 2));
        record.meta.auth = Some(crate::store::Auth::new("r", 0));
        assert!(!serde_json::to_string(&record).unwrap().starts_with(RETIRED_PREFIX));
    }

    #[test]
    fn a_logout_follows_live_pointers_only() {
        let to = StorageKey::from_bytes([2; 32]);
        let text = encode_retired(&Retired::new(to, 0, 0, 5_000)).unwrap();
        assert_eq!(live_pointer(5_000, Some(&text), 4_999), Some(to));
        assert_eq!(live_pointer(5_000, Some(&text), 5_000), None, "expired at its until");
        assert_eq!(live_pointer(5_000, None, 0), None, "a session's row");
        assert_eq!(live_pointer(5_000, Some("{\"r\":{}}"), 0), None, "an unreadable pointer");
    }
}
