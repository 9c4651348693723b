//! `apply` on PostgreSQL as one statement: an `UPDATE` of the session's row
//! whose new `record` the server builds from the row's own JSON text and
//! the change set, written only if the row is a live session and its text
//! short enough that the merged data surely fits the cap (see
//! `SqlStore::room`).
//!
//! The `record` column stays `TEXT`, as every release wrote it. The
//! statement reads it as `json` (not `jsonb`): PostgreSQL's `json` keeps
//! the input text, and `json_each` hands each value back as the exact text
//! it was written with (numbers such as `1.0` or `1e2`, string escapes
//! such as `"\u00e9"`, nested objects with their key order and spacing).
//! A kept value is copied into the new text as it is, and the entries the
//! change set sets are its raw JSON, rendered here: every value comes back
//! byte for byte. Kept keys are written again with `to_json`, which escapes
//! them as JSON; keys are compared as decoded text, as
//! [`Data`](crate::store::Data) compares them. The entries are not sorted:
//! decoding sorts them. The metadata is copied as it is, or, when the
//! change set sets `persistent` or closes the overlap, rebuilt from its
//! fields the same way; its times go stale, as with `touch`: the time
//! columns are authoritative.
//!
//! Concurrency is the `UPDATE`'s own: a row that another writer holds is
//! waited for, then PostgreSQL (READ COMMITTED) evaluates the conditions
//! and the new text again on the row as that writer committed it, so a
//! concurrent change set is merged, never lost, and a row that became a
//! retired pointer (absolute deadline 0, another text) or was deleted
//! meanwhile is not written.

use std::collections::BTreeMap;

use serde_json::value::RawValue;

use super::{codec::to_i64, tx::aborted, SqlStore};
use crate::store::{ChangeSet, StorageKey, StoreError, RECORD_FORMAT};

/// How much longer than the stored text the new one may be, besides the
/// entries the change set sets: their separator, `"persistent":true`, and
/// the `"d":{}` a text without data gains. Kept entries and metadata
/// fields are written again no longer than they were (values as they are,
/// keys with JSON's shortest escapes, no spaces).
const GROWTH: usize = 64;

/// The statement, on the (quoted) table `t`; `flags`: the variant for a
/// change set that sets `persistent` or closes the overlap, which rebuilds
/// the metadata (the other copies it, and initializes no plan for it).
/// Parameters:
///
/// | | |
/// |---|---|
/// | `$1` | the key |
/// | `$2` | now: the row must be live (both deadlines after it; a retired pointer's absolute deadline is 0) |
/// | `$3` | clear: drop every stored key first |
/// | `$4` | every key the change set sets or removes (`text[]`): dropped from the stored data |
/// | `$5` | the entries it sets, as JSON object members (`"k":v,...`), or `NULL` |
/// | `$6`, `$7` | the new `last_seen` (the later one is kept) and `expires_at` (capped at the absolute deadline) |
/// | `$8` | the longest stored text written over (see `SqlStore::room`) |
/// | `$9` | metadata fields to drop (`persistent` when the change set sets it, `predecessor` to close the overlap) |
/// | `$10` | whether to write `"persistent":true` |
pub(super) fn statement(t: &str, flags: bool) -> String {
    let prefix = format!("{{\"v\":{RECORD_FORMAT},\"m\":");
    let members = |from: &str, filter: &str| {
        format!(
            "(SELECT string_agg(to_json(e.key)::text || ':' || e.value::text, ',') \
             FROM json_each(record::json -> '{from}') AS e WHERE {filter})"
        )
    };
    let meta = if flags {
        format!(
            "'{{' || concat_ws(',', {}, CASE WHEN $10 THEN '\"persistent\":true' END) || '}}'",
            members("m", "e.key <> ALL($9::text[])")
        )
    } else {
        "(record::json -> 'm')::text".to_owned()
    };
    let kept = members("d", "NOT $3 AND e.key <> ALL($4::text[])");
    format!(
        "UPDATE {t} SET last_seen = GREATEST(last_seen, $6), expires_at = LEAST($7, absolute_deadline), \
         record = '{prefix}' || {meta} || ',\"d\":{{' || concat_ws(',', {kept}, $5::text) || '}}}}' \
         WHERE id = $1 AND expires_at > $2 AND absolute_deadline > $2 \
         AND starts_with(record, '{prefix}') AND octet_length(record) <= $8"
    )
}

/// A change set as the statement's parameters: one net change per key
/// (the last one, as [`Record::apply`](crate::store::Record::apply) applies
/// them in order).
struct Params<'a> {
    touched: Vec<&'a str>,
    /// `"k":v,...` of the keys set, or `None`.
    set: Option<String>,
    /// [`Data::size`](crate::store::Data::size) of the entries set.
    added: usize,
    drop_meta: Vec<&'static str>,
}

impl<'a> Params<'a> {
    /// `None` when a key holds a NUL character, which a PostgreSQL text
    /// cannot: the general path writes it (escaped in the JSON).
    fn new(changes: &'a ChangeSet) -> Option<Self> {
        let mut net: BTreeMap<&str, Option<&RawValue>> = BTreeMap::new();
        for (key, value) in &changes.changes {
            if key.contains('\0') {
                return None;
            }
            net.insert(key, value.as_deref());
        }
        let mut params = Params { touched: Vec::with_capacity(net.len()), set: None, added: 0, drop_meta: Vec::new() };
        for (key, value) in net {
            params.touched.push(key);
            let Some(value) = value else { continue };
            let set = params.set.get_or_insert_with(String::new);
            if !set.is_empty() {
                set.push(',');
            }
            // A `&str` always serializes.
            set.push_str(&serde_json::to_string(key).ok()?);
            set.push(':');
            set.push_str(value.get());
            params.added += key.len() + value.get().len();
        }
        if changes.persistent.is_some() {
            params.drop_meta.push("persistent");
        }
        if changes.close_overlap {
            params.drop_meta.push("predecessor");
        }
        Some(params)
    }
}

impl SqlStore {
    /// `apply` as the one statement of this module: `Some(true)` when it
    /// wrote the row. `None` when it wrote nothing or could not run, and the
    /// general path must answer: the row is absent, expired or retired (the
    /// general path answers `false`), the stored text is too long for the
    /// merged data to surely fit the cap or the record the store's size
    /// (the general path checks both exactly, and may answer
    /// [`StoreError::TooLarge`]), the row's text is not one this statement
    /// rewrites, or the server refused the text (a data
    /// exception: a key with `\u0000`, which PostgreSQL cannot decode) or
    /// aborted the statement (a serialization failure, under a stricter
    /// default isolation level). None of these changed anything.
    pub(super) async fn apply_merged(
        &self,
        conn: &mut sqlx::PgConnection,
        key: &StorageKey,
        changes: &ChangeSet,
        now: u64,
    ) -> Result<Option<bool>, StoreError> {
        let Some(params) = Params::new(changes) else { return Ok(None) };
        let Some(room) = self.room(changes, &params) else { return Ok(None) };
        let flags = !params.drop_meta.is_empty();
        let q = &*self.queries;
        let done = sqlx::query(if flags { &q.apply_merge_flags } else { &q.apply_merge })
            .bind(key.as_bytes().as_slice())
            .bind(to_i64(now))
            .bind(changes.clear)
            .bind(&params.touched)
            .bind(params.set.as_deref())
            .bind(to_i64(changes.last_seen))
            .bind(to_i64(changes.expires_at))
            .bind(room)
            .bind(&params.drop_meta)
            .bind(changes.persistent == Some(true))
            .execute(&mut *conn)
            .await;
        match done {
            Ok(done) => Ok((done.rows_affected() == 1).then_some(true)),
            Err(e) if refused(&e) => Ok(None),
            Err(e) => Err(self.err(&e)),
        }
    }

    /// The longest stored record text that the statement writes over: one
    /// for which the new text is surely within the store's record size
    /// (it grows by at most the entries set and [`GROWTH`]), and the merged
    /// data surely within the cap (a stored text holds every key and value
    /// of its data, so it is at least as long as their
    /// [`Data::size`](crate::store::Data::size), and the merged data holds
    /// at most that plus the entries set). A longer text is left to the
    /// general path, which checks both exactly. `None`: no text is short
    /// enough (the entries set alone pass one of the limits).
    fn room(&self, changes: &ChangeSet, params: &Params<'_>) -> Option<i64> {
        let growth = params.set.as_ref().map_or(0, String::len) + GROWTH;
        let mut room = self.max_record_bytes.checked_sub(growth)?;
        if changes.max_data_bytes > 0 && changes.touches_data() {
            room = room.min(changes.max_data_bytes.checked_sub(params.added)?);
        }
        Some(i64::try_from(room).unwrap_or(i64::MAX))
    }
}

/// The statement failed on the data (SQLSTATE class 22: a key PostgreSQL
/// cannot decode, a text that is no JSON) or was aborted (see
/// [`aborted`]): it changed nothing, and the general path answers.
fn refused(e: &sqlx::Error) -> bool {
    aborted(e) || e.as_database_error().and_then(|d| d.code()).is_some_and(|c| c.starts_with("22"))
}
