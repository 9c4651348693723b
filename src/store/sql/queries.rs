//! [`Queries`]: every statement of a [`SqlStore`](super::SqlStore), built
//! once per dialect and table from the words of [`Syntax`].

use super::dialect::{Dialect, Syntax};

#[derive(Debug)]
pub(super) struct Queries {
    pub(super) begin: &'static str,
    pub(super) create: String,
    pub(super) load: String,
    pub(super) select_for_update: String,
    pub(super) update: String,
    /// PostgreSQL only: the row with its version (`xmin`, the transaction
    /// that wrote it), and the update that writes only over that version.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(super) select_versioned: String,
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(super) update_versioned: String,
    pub(super) touch: String,
    /// Turns a row into a retired pointer (see [`encode_retired`](super::codec::encode_retired)).
    pub(super) retire: String,
    /// Deletes a row unless it is a retired pointer.
    pub(super) delete: String,
    /// The transaction of `delete`'s chain and of the revocations:
    /// PostgreSQL's READ COMMITTED whatever the server's default (each
    /// statement sees what committed before it), SQLite's write lock.
    pub(super) begin_follow: &'static str,
    /// Deletes a row, whatever it holds, and returns its `expires_at` and,
    /// for a retired pointer, its text.
    pub(super) delete_first: String,
    /// Deletes a row, whatever it holds.
    pub(super) delete_key: String,
    /// Deletes expired rows (see
    /// [`SqlStore::delete_expired`](super::SqlStore::delete_expired));
    /// answers how many rows, and how many of them were sessions.
    pub(super) delete_expired_batch: String,
    pub(super) delete_expired_all: String,
    pub(super) delete_expired_locks: String,
    pub(super) list_user: String,
    /// The revocations: `delete_user` without and with a handle to keep,
    /// and `delete_by_handle`.
    pub(super) revoke_user: Revoke,
    pub(super) revoke_others: Revoke,
    pub(super) revoke_handle: Revoke,
    pub(super) try_lock_insert: String,
    pub(super) try_lock_update: String,
    pub(super) unlock: String,
}

/// One revocation's statements: `main` deletes the rows it matches, and
/// `follow` deletes one more row (its key bound last) if it matches too.
#[derive(Debug)]
pub(super) struct Revoke {
    pub(super) main: String,
    pub(super) follow: String,
}

impl Queries {
    pub(super) fn new(dialect: Dialect, table: &str) -> Self {
        let t = format!("\"{table}\"");
        let locks = format!("\"{table}_locks\"");
        let cols = "expires_at, absolute_deadline, last_seen, record";
        let &Syntax { begin, begin_follow, for_update, greatest, least, batch, counted, sql, .. } = dialect.syntax();
        // A revocation deletes the rows of the user's sessions (live ones:
        // those it counts) and the retired pointers that carry the user
        // (whatever their `until`: a pointer names the session it points
        // to, not a session), and follows each pointer (see `revoke`).
        let revoke = |filter: &str, id: &str| {
            let rows = format!("user_id = $1 AND (expires_at > $2 OR absolute_deadline = 0){filter}");
            let returning =
                "RETURNING id, expires_at, absolute_deadline, CASE WHEN absolute_deadline = 0 THEN record END";
            Revoke {
                main: sql(format!("DELETE FROM {t} WHERE {rows} {returning}")),
                follow: sql(format!("DELETE FROM {t} WHERE id = {id} AND {rows} {returning}")),
            }
        };
        Self {
            begin,
            create: sql(format!(
                "INSERT INTO {t} (id, {cols}, user_id, handle) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at, \
                 absolute_deadline = excluded.absolute_deadline, last_seen = excluded.last_seen, \
                 record = excluded.record, user_id = excluded.user_id, handle = excluded.handle \
                 WHERE {t}.expires_at <= $8"
            )),
            load: sql(format!("SELECT {cols} FROM {t} WHERE id = $1 AND expires_at > $2")),
            select_for_update: sql(format!("SELECT {cols} FROM {t} WHERE id = $1{for_update}")),
            update: sql(format!("UPDATE {t} SET expires_at = $2, last_seen = $3, record = $4 WHERE id = $1")),
            select_versioned: sql(format!("SELECT {cols}, xmin::text FROM {t} WHERE id = $1")),
            update_versioned: sql(format!(
                "UPDATE {t} SET expires_at = $2, last_seen = $3, record = $4 WHERE id = $1 AND xmin::text = $5"
            )),
            touch: sql(format!(
                "UPDATE {t} SET last_seen = {greatest}(last_seen, $2), \
                 expires_at = {least}($3, absolute_deadline) \
                 WHERE id = $1 AND expires_at > $4 AND absolute_deadline > $4"
            )),
            // A retired row: an absolute deadline of 0, so that `touch` (and
            // `Record::is_expired`) never take it for a session, and every
            // query on sessions leaves it out; `expires_at` is when it may
            // be forgotten; the user and handle of the successor, so that a
            // revocation blocked on this row while it was retired still
            // matches it (see `revoke`).
            retire: sql(format!(
                "UPDATE {t} SET expires_at = $2, absolute_deadline = 0, last_seen = $3, record = $4, \
                 user_id = $5, handle = $6 WHERE id = $1"
            )),
            delete: sql(format!("DELETE FROM {t} WHERE id = $1 AND absolute_deadline <> 0")),
            begin_follow,
            delete_first: sql(format!(
                "DELETE FROM {t} WHERE id = $1 RETURNING expires_at, CASE WHEN absolute_deadline = 0 THEN record END"
            )),
            delete_key: sql(format!("DELETE FROM {t} WHERE id = $1")),
            delete_expired_batch: sql(counted(batch(&t))),
            delete_expired_all: sql(counted(format!("DELETE FROM {t} WHERE expires_at <= $1"))),
            delete_expired_locks: sql(format!("DELETE FROM {locks} WHERE lease_until <= $1")),
            // Sessions only: a retired pointer carries a user too.
            list_user: sql(format!(
                "SELECT {cols} FROM {t} WHERE user_id = $1 AND expires_at > $2 AND absolute_deadline <> 0"
            )),
            revoke_user: revoke("", "$3"),
            revoke_others: revoke(" AND handle <> $3", "$4"),
            revoke_handle: revoke(" AND handle = $3", "$4"),
            // Two statements, so that a poll that fails writes nothing: an
            // upsert whose condition is false still locks and logs the row
            // in PostgreSQL (a WAL flush per failed poll).
            try_lock_insert: sql(format!(
                "INSERT INTO {locks} (id, token, lease_until) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING"
            )),
            try_lock_update: sql(format!(
                "UPDATE {locks} SET token = $2, lease_until = $3 WHERE id = $1 AND (lease_until <= $4 OR token = $2)"
            )),
            unlock: sql(format!("DELETE FROM {locks} WHERE id = $1 AND token = $2")),
        }
    }
}
