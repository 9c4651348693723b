//! [`Queries`]: every statement of a [`SqlStore`](super::SqlStore), built
//! once per dialect and table from the words of [`Syntax`].

use super::dialect::{Dialect, Syntax};

#[derive(Debug)]
pub(super) struct Queries {
    pub(super) begin: &'static str,
    /// See [`Syntax::returning`](super::dialect::Syntax).
    pub(super) returning: bool,
    /// Inserts a row (`$1`..`$7`); with `ON CONFLICT`, replaces an expired
    /// one (`$8`: now). Without (MySQL), a duplicate key is an error.
    pub(super) create: String,
    /// Without `ON CONFLICT` (MySQL): deletes the row if it expired.
    #[cfg_attr(not(feature = "mysql"), allow(dead_code))]
    pub(super) delete_dead: String,
    /// The row's columns, then the global and the row user's cutoffs
    /// (see [`cut_columns`](super::cutoffs::cut_columns)).
    pub(super) load: String,
    pub(super) select_for_update: String,
    pub(super) update: String,
    /// PostgreSQL only: the row with its version (`xmin`, the transaction
    /// that wrote it), and the update that writes only over that version.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(super) select_versioned: String,
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(super) update_versioned: String,
    /// PostgreSQL only: `apply` as one statement (see [`merge`](super::merge)),
    /// and its variant for a change set that sets `persistent` or closes
    /// the overlap.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(super) apply_merge: String,
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(super) apply_merge_flags: String,
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
    /// for a retired pointer, its text (without `RETURNING`: reads and
    /// locks them; `delete_key` deletes the row).
    pub(super) delete_first: String,
    /// Deletes a row, whatever it holds.
    pub(super) delete_key: String,
    /// Deletes expired rows (see
    /// [`SqlStore::delete_expired`](super::SqlStore::delete_expired));
    /// answers how many rows, and how many of them were sessions.
    pub(super) delete_expired_batch: String,
    pub(super) delete_expired_all: String,
    /// Without `RETURNING` (MySQL), `delete_expired_*` delete only sessions,
    /// and these the retired pointers.
    #[cfg_attr(not(feature = "mysql"), allow(dead_code))]
    pub(super) delete_retired_batch: String,
    #[cfg_attr(not(feature = "mysql"), allow(dead_code))]
    pub(super) delete_retired_all: String,
    pub(super) delete_expired_locks: String,
    /// The cutoffs past their `keep_until`.
    pub(super) delete_expired_cutoffs: String,
    /// The user's session rows, each with the cutoffs as `load` reads them.
    pub(super) list_user: String,
    /// Moves a cutoff forward (`$1` scope, `$2` user, `$3` not before, `$4`
    /// keep until), never back.
    pub(super) cut: String,
    /// The global cutoff and the cutoff of user `$1`.
    pub(super) cutoff: String,
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
/// `follow` deletes one more row (its key bound last) if it matches too;
/// both return the rows. Without `RETURNING` (MySQL) they read and lock
/// the rows instead, which are then deleted by key.
#[derive(Debug)]
pub(super) struct Revoke {
    pub(super) main: String,
    pub(super) follow: String,
}

impl Queries {
    pub(super) fn new(dialect: Dialect, table: &str) -> Self {
        let &Syntax {
            quote,
            returning,
            begin,
            begin_follow,
            for_update,
            greatest,
            least,
            batch,
            counted,
            sql,
            cut_key,
            ..
        } = dialect.syntax();
        let t = format!("{quote}{table}{quote}");
        let locks = format!("{quote}{table}_locks{quote}");
        let cuts = format!("{quote}{table}_cutoffs{quote}");
        let cols = "expires_at, absolute_deadline, last_seen, record";
        // The global cutoff, and the one of the user `user` (an expression),
        // by the key of the cutoffs table (`cut_key`).
        let cutoffs = |user: &str| {
            format!(
                "(SELECT not_before FROM {cuts} WHERE scope = 0 AND user_id = {}), \
                 (SELECT not_before FROM {cuts} WHERE scope = 1 AND user_id = {})",
                cut_key("''"),
                cut_key(user)
            )
        };
        let row_cutoffs = cutoffs(&format!("{t}.user_id"));
        // A revocation deletes the rows of the user's sessions (live ones:
        // those it counts) and the retired pointers that carry the user
        // (whatever their `until`: a pointer names the session it points
        // to, not a session), and follows each pointer (see `revoke`).
        // Without `RETURNING`, the same rows are read and locked, then
        // deleted by key.
        let revoke = |filter: &str, id: &str| {
            let rows = format!("user_id = $1 AND (expires_at > $2 OR absolute_deadline = 0){filter}");
            let fields = "id, expires_at, absolute_deadline, record";
            if returning {
                Revoke {
                    main: sql(format!("DELETE FROM {t} WHERE {rows} RETURNING {fields}")),
                    follow: sql(format!("DELETE FROM {t} WHERE {rows} AND id = {id} RETURNING {fields}")),
                }
            } else {
                Revoke {
                    main: sql(format!("SELECT {fields} FROM {t} WHERE {rows}{for_update}")),
                    follow: sql(format!("SELECT {fields} FROM {t} WHERE {rows} AND id = {id}{for_update}")),
                }
            }
        };
        let create = if returning {
            format!(
                "INSERT INTO {t} (id, {cols}, user_id, handle) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at, \
                 absolute_deadline = excluded.absolute_deadline, last_seen = excluded.last_seen, \
                 record = excluded.record, user_id = excluded.user_id, handle = excluded.handle \
                 WHERE {t}.expires_at <= $8"
            )
        } else {
            // The replacement of an expired row is `delete_dead` then this again.
            format!("INSERT INTO {t} (id, {cols}, user_id, handle) VALUES ($1, $2, $3, $4, $5, $6, $7)")
        };
        Self {
            begin,
            returning,
            create: sql(create),
            delete_dead: sql(format!("DELETE FROM {t} WHERE id = $1 AND expires_at <= $2")),
            load: sql(format!("SELECT {cols}, {row_cutoffs} FROM {t} WHERE id = $1 AND expires_at > $2")),
            select_for_update: sql(format!("SELECT {cols} FROM {t} WHERE id = $1{for_update}")),
            update: sql(format!("UPDATE {t} SET expires_at = $1, last_seen = $2, record = $3 WHERE id = $4")),
            select_versioned: if returning {
                sql(format!("SELECT {cols}, xmin::text FROM {t} WHERE id = $1"))
            } else {
                String::new()
            },
            update_versioned: if returning {
                sql(format!(
                    "UPDATE {t} SET expires_at = $2, last_seen = $3, record = $4 WHERE id = $1 AND xmin::text = $5"
                ))
            } else {
                String::new()
            },
            apply_merge: match dialect {
                #[cfg(feature = "postgres")]
                Dialect::Postgres => super::merge::statement(&t, false),
                #[allow(unreachable_patterns)]
                _ => String::new(),
            },
            apply_merge_flags: match dialect {
                #[cfg(feature = "postgres")]
                Dialect::Postgres => super::merge::statement(&t, true),
                #[allow(unreachable_patterns)]
                _ => String::new(),
            },
            // Live: both deadlines after now (the earlier of the two).
            touch: sql(format!(
                "UPDATE {t} SET last_seen = {greatest}(last_seen, $1), \
                 expires_at = {least}($2, absolute_deadline) \
                 WHERE id = $3 AND {least}(expires_at, absolute_deadline) > $4"
            )),
            // A retired row: an absolute deadline of 0, so that `touch` (and
            // `Record::is_expired`) never take it for a session, and every
            // query on sessions leaves it out; `expires_at` is when it may
            // be forgotten; the user and handle of the successor, so that a
            // revocation blocked on this row while it was retired still
            // matches it (see `revoke`).
            retire: sql(format!(
                "UPDATE {t} SET expires_at = $1, absolute_deadline = 0, last_seen = $2, record = $3, \
                 user_id = $4, handle = $5 WHERE id = $6"
            )),
            delete: sql(format!("DELETE FROM {t} WHERE id = $1 AND absolute_deadline <> 0")),
            begin_follow,
            delete_first: sql(if returning {
                format!(
                    "DELETE FROM {t} WHERE id = $1 RETURNING expires_at, CASE WHEN absolute_deadline = 0 THEN record END"
                )
            } else {
                format!(
                    "SELECT expires_at, CASE WHEN absolute_deadline = 0 THEN record END FROM {t} WHERE id = $1{for_update}"
                )
            }),
            delete_key: sql(format!("DELETE FROM {t} WHERE id = $1")),
            delete_expired_batch: sql(counted(batch(&t))),
            delete_expired_all: sql(counted(if returning {
                format!("DELETE FROM {t} WHERE expires_at <= $1")
            } else {
                format!("DELETE FROM {t} WHERE expires_at <= $1 AND absolute_deadline <> 0")
            })),
            delete_retired_batch: sql(format!(
                "DELETE FROM {t} WHERE expires_at <= $1 AND absolute_deadline = 0 LIMIT $2"
            )),
            delete_retired_all: sql(format!("DELETE FROM {t} WHERE expires_at <= $1 AND absolute_deadline = 0")),
            delete_expired_locks: sql(format!("DELETE FROM {locks} WHERE lease_until <= $1")),
            delete_expired_cutoffs: sql(format!("DELETE FROM {cuts} WHERE keep_until <= $1")),
            // Sessions only: a retired pointer carries a user too.
            list_user: sql(format!(
                "SELECT {cols}, {row_cutoffs} FROM {t} WHERE user_id = $1 AND expires_at > $2 AND absolute_deadline <> 0"
            )),
            // With `ON CONFLICT` (PostgreSQL, SQLite), as `create`; MySQL: `ON DUPLICATE KEY`.
            cut: sql(if returning {
                format!(
                    "INSERT INTO {cuts} (scope, user_id, not_before, keep_until) VALUES ($1, {}, $3, $4) \
                     ON CONFLICT (scope, user_id) DO UPDATE SET \
                     not_before = {greatest}({cuts}.not_before, excluded.not_before), \
                     keep_until = {greatest}({cuts}.keep_until, excluded.keep_until)",
                    cut_key("$2")
                )
            } else {
                format!(
                    "INSERT INTO {cuts} (scope, user_id, not_before, keep_until) VALUES ($1, {}, $3, $4) \
                     ON DUPLICATE KEY UPDATE not_before = GREATEST(not_before, VALUES(not_before)), \
                     keep_until = GREATEST(keep_until, VALUES(keep_until))",
                    cut_key("$2")
                )
            }),
            cutoff: sql(format!("SELECT {}", cutoffs("$1"))),
            revoke_user: revoke("", "$3"),
            revoke_others: revoke(" AND handle <> $3", "$4"),
            revoke_handle: revoke(" AND handle = $3", "$4"),
            // Two statements, so that a poll that fails writes nothing: an
            // upsert whose condition is false still locks and logs the row
            // in PostgreSQL (a WAL flush per failed poll). MySQL: a plain
            // insert, whose duplicate key means "taken".
            try_lock_insert: sql(if returning {
                format!("INSERT INTO {locks} (id, token, lease_until) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING")
            } else {
                format!("INSERT INTO {locks} (id, token, lease_until) VALUES ($1, $2, $3)")
            }),
            try_lock_update: sql(format!(
                "UPDATE {locks} SET token = $1, lease_until = $2 WHERE id = $3 AND (lease_until <= $4 OR token = $5)"
            )),
            unlock: sql(format!("DELETE FROM {locks} WHERE id = $1 AND token = $2")),
        }
    }
}

#[cfg(all(test, feature = "mysql"))]
mod tests {
    use super::*;

    #[test]
    fn mysql_statements_bind_in_order() {
        // `positional` panics on a statement whose parameters are out of
        // order or repeated.
        let q = Queries::new(Dialect::Mysql, "t");
        assert_eq!(q.touch.matches('?').count(), 4);
        assert!(q.revoke_others.follow.ends_with("AND id = ? FOR UPDATE"));
        assert!(!q.create.contains("ON CONFLICT"));
    }
}
