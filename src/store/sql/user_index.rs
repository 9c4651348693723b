//! The per-user index: listing a user's sessions, and the revocations
//! (`delete_user`, `delete_by_handle`), which follow the retired pointers
//! they delete.

use std::collections::HashSet;

use super::{
    codec::{columns, decode_retired, to_i64, RETIRED_PREFIX},
    connection::{dispatch, Pool},
    cutoffs::cut_columns,
    queries::Queries,
    tx::{retrying, TxError, MAX_CHAIN, TX_ATTEMPTS},
    SqlStore,
};
use crate::store::{most_recent, Cutoff, Metadata, StorageKey, StoreError};

/// Which sessions of a user a revocation ends.
#[derive(Debug, Clone, Copy)]
pub(super) enum Revocation<'a> {
    /// All (`delete_user` without a handle to keep).
    All,
    /// All but the one with this handle (`delete_user`).
    AllBut(&'a str),
    /// The one with this handle (`delete_by_handle`).
    Only(&'a str),
}

/// A row of `list_user`: the four columns of [`columns`], and the cutoffs.
pub(super) type UserRow = ((i64, i64, i64, String), Cutoff);

/// The rows of `list_user`, read.
pub(super) fn user_rows<R>(rows: &[R]) -> Result<Vec<UserRow>, sqlx::Error>
where
    R: sqlx::Row,
    usize: sqlx::ColumnIndex<R>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<i64>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    rows.iter().map(|r| Ok((columns(r)?, cut_columns(r)?))).collect()
}

/// A row a revocation deleted: `id, expires_at, absolute_deadline`, and its
/// text (a record, or a retired pointer).
pub(super) type RevokedRow = (Vec<u8>, i64, i64, Option<String>);

/// What a revocation did so far: the live sessions it deleted, the keys it
/// deleted or visited, and the successors of the retired pointers it
/// deleted that it has still to visit (with the hops from the first).
pub(super) struct Revoked {
    now: u64,
    /// The user's cutoffs: a session they ended is not counted (it was not
    /// live any more).
    cutoff: Cutoff,
    pub(super) live: usize,
    visited: HashSet<StorageKey>,
    pending: Vec<(StorageKey, usize)>,
}

impl Revoked {
    pub(super) fn new(now: u64, cutoff: Cutoff) -> Self {
        Self { now, cutoff, live: 0, visited: HashSet::new(), pending: Vec::new() }
    }

    /// Counts a deleted row if it was a live session; a retired pointer's
    /// successor is to be visited (unless `hops` reached [`MAX_CHAIN`]).
    pub(super) fn deleted(&mut self, (id, expires_at, deadline, text): RevokedRow, hops: usize) {
        if let Ok(id) = <[u8; 32]>::try_from(id) {
            self.visited.insert(StorageKey::from_bytes(id));
        }
        match text {
            Some(text) if text.starts_with(RETIRED_PREFIX) => match decode_retired(&text) {
                Ok(retired) if hops < MAX_CHAIN => self.pending.push((retired.successor, hops + 1)),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "unreadable retired session row"),
            },
            Some(text) if deadline != 0 && expires_at > to_i64(self.now) => {
                // A session a cutoff ended was not live: deleted, not counted.
                let ended = serde_json::from_str::<crate::store::Record>(&text)
                    .map(|r| self.cutoff.ends(&r.meta))
                    .unwrap_or(false);
                if !ended {
                    self.live += 1;
                }
            }
            None if deadline != 0 && expires_at > to_i64(self.now) => self.live += 1,
            _ => {}
        }
    }

    /// The next successor to visit: one that no statement of this
    /// revocation deleted or visited yet.
    pub(super) fn next(&mut self) -> Option<(StorageKey, usize)> {
        while let Some((key, hops)) = self.pending.pop() {
            if self.visited.insert(key) {
                return Some((key, hops));
            }
        }
        None
    }
}

/// The body of a revocation (`delete_user`, `delete_by_handle`), for one
/// backend's connection type: one transaction (PostgreSQL: READ
/// COMMITTED; SQLite: the write lock) of
///
/// 1. one `DELETE ... RETURNING` of the rows that carry the user (and the
///    handle, or not the handle to keep): the live sessions, and the
///    retired pointers, which carry the user and handle of their successor;
/// 2. for each retired pointer deleted whose successor step 1 did not
///    delete, one `DELETE ... RETURNING` of the successor's row if it
///    matches the same conditions, following on from a pointer found there
///    (at most [`MAX_CHAIN`] hops).
///
/// Every row deleted matches the revocation, when it is deleted. Answers
/// how many live sessions were deleted.
///
/// MySQL has no `DELETE ... RETURNING`: each statement is a `SELECT ...
/// FOR UPDATE` of the same rows (a locking read: it waits for a row's lock
/// and reads the row as last committed, like PostgreSQL's READ COMMITTED
/// re-check), and each row it returns is deleted by key, still locked.
///
/// Why a rotation cannot save a session from a revocation that saw it: in
/// PostgreSQL, the rotation holds the old row's lock from its `SELECT ...
/// FOR UPDATE` to its commit, and makes the successor and the retired
/// pointer visible at once. If it commits before step 1's snapshot, step 1
/// sees the successor and deletes it. If not, step 1 sees the old row as a
/// session of the user; reaching it, it waits for the rotation's lock (or
/// finds the row updated since its snapshot) and, in READ COMMITTED,
/// checks its conditions again on the row as the rotation left it (the
/// pointer, which still matches: the user, the handle, `absolute_deadline =
/// 0`), deletes it and returns its text; step 2, a statement of its own,
/// sees what committed before it, the successor included, and deletes it. A
/// rotation that comes after step 1 reached the row finds it deleted and
/// creates nothing. In SQLite, writers run one at a time: step 1 sees the
/// rotation's result or the rotation sees nothing.
macro_rules! revoke {
    ($store:ident, $conn:ident, $user:ident, $which:ident, $now:ident) => {{
        use sqlx::Connection as _;
        let q = &*$store.queries;
        let mut tx = $conn.begin_with(q.begin_follow).await?;
        let live = revoke_in!(q, tx, $user, $which, $now);
        tx.commit().await?;
        Ok(live)
    }};
}

/// The statements of [`revoke`] on the open transaction `$tx` (a
/// transaction as `revoke` begins it: PostgreSQL's READ COMMITTED, or
/// SQLite's write lock): how many live sessions were deleted. A failed
/// statement returns from the enclosing function (`?`).
macro_rules! revoke_in {
    ($q:expr, $tx:ident, $user:expr, $which:expr, $now:expr) => {{
        let (q, user, now): (&Queries, &str, u64) = ($q, $user, $now);
        let (statements, handle) = match $which {
            Revocation::All => (&q.revoke_user, None),
            Revocation::AllBut(h) => (&q.revoke_others, Some(h)),
            Revocation::Only(h) => (&q.revoke_handle, Some(h)),
        };
        let mut main = sqlx::query_as::<_, RevokedRow>(&statements.main).bind(user).bind(to_i64(now));
        if let Some(h) = handle {
            main = main.bind(h);
        }
        let (all, mine) =
            sqlx::query_as::<_, (Option<i64>, Option<i64>)>(&q.cutoff).bind(user).fetch_one(&mut *$tx).await?;
        let mut revoked = Revoked::new(now, super::cutoffs::cutoff_of(all, mine));
        for row in main.fetch_all(&mut *$tx).await? {
            if !q.returning {
                // Read and locked: now deleted.
                sqlx::query(&q.delete_key).bind(row.0.as_slice()).execute(&mut *$tx).await?;
            }
            revoked.deleted(row, 0);
        }
        while let Some((key, hops)) = revoked.next() {
            let mut follow = sqlx::query_as::<_, RevokedRow>(&statements.follow).bind(user).bind(to_i64(now));
            if let Some(h) = handle {
                follow = follow.bind(h);
            }
            if let Some(row) = follow.bind(key.as_bytes().as_slice()).fetch_optional(&mut *$tx).await? {
                if !q.returning {
                    sqlx::query(&q.delete_key).bind(row.0.as_slice()).execute(&mut *$tx).await?;
                }
                revoked.deleted(row, hops);
            }
        }
        revoked.live
    }};
}
pub(super) use revoke_in;

impl SqlStore {
    /// `list_user`: the user's live sessions, the `limit` most recently
    /// used.
    pub(super) async fn list_sessions(&self, user: &str, now: u64, limit: usize) -> Result<Vec<Metadata>, StoreError> {
        let q = &*self.queries;
        let rows = dispatch!(&self.pool, p => {
            let rows = sqlx::query(&q.list_user).bind(user).bind(to_i64(now)).fetch_all(p).await;
            rows.and_then(|rows| user_rows(&rows))
        })
        .map_err(|e| self.err(&e))?;
        let mut list = self.live_of(user, rows, now);
        most_recent(&mut list, limit);
        Ok(list)
    }

    /// The metadata of the live sessions of `user` among the rows of
    /// `list_user`, leaving out those a cutoff ended.
    pub(super) fn live_of(&self, user: &str, rows: Vec<UserRow>, now: u64) -> Vec<Metadata> {
        let mut list = Vec::with_capacity(rows.len());
        for ((expires_at, deadline, last_seen, text), cutoff) in rows {
            // One unreadable row does not hide the user's other sessions.
            match self.decode(expires_at, deadline, last_seen, &text) {
                Ok(r) if !r.is_expired(now) && !cutoff.ends(&r.meta) && r.meta.user() == Some(user) => {
                    list.push(r.meta)
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "unreadable session row of a user"),
            }
        }
        list
    }

    /// A revocation, run again when PostgreSQL aborts it to break a deadlock.
    pub(super) async fn revoke(&self, user: &str, which: Revocation<'_>, now: u64) -> Result<usize, StoreError> {
        match &self.pool {
            #[cfg(feature = "postgres")]
            Pool::Postgres(p) => {
                let mut conn = p.acquire().await.map_err(|e| self.err(&e))?;
                retrying!(self, self.revoke_pg(&mut conn, user, which, now).await)
            }
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(p) => {
                let mut conn = p.acquire().await.map_err(|e| self.err(&e))?;
                retrying!(self, self.revoke_sqlite(&mut conn, user, which, now).await)
            }
            #[cfg(feature = "mysql")]
            Pool::Mysql(p) => {
                let mut conn = p.acquire().await.map_err(|e| self.err(&e))?;
                retrying!(self, self.revoke_mysql(&mut conn, user, which, now).await)
            }
        }
    }

    /// A revocation on PostgreSQL (see [`revoke`]).
    #[cfg(feature = "postgres")]
    async fn revoke_pg(
        &self,
        conn: &mut sqlx::PgConnection,
        user: &str,
        which: Revocation<'_>,
        now: u64,
    ) -> Result<usize, TxError> {
        revoke!(self, conn, user, which, now)
    }

    /// A revocation on SQLite (see [`revoke`]).
    #[cfg(feature = "sqlite")]
    async fn revoke_sqlite(
        &self,
        conn: &mut sqlx::SqliteConnection,
        user: &str,
        which: Revocation<'_>,
        now: u64,
    ) -> Result<usize, TxError> {
        revoke!(self, conn, user, which, now)
    }

    /// A revocation on MySQL (see [`revoke`]).
    #[cfg(feature = "mysql")]
    async fn revoke_mysql(
        &self,
        conn: &mut sqlx::MySqlConnection,
        user: &str,
        which: Revocation<'_>,
        now: u64,
    ) -> Result<usize, TxError> {
        revoke!(self, conn, user, which, now)
    }
}

#[cfg(test)]
mod tests {
    use super::super::codec::encode_retired;
    use super::*;
    use crate::store::Retired;

    #[test]
    fn a_revocation_counts_live_sessions_and_follows_each_pointer_once() {
        let k = |b: u8| StorageKey::from_bytes([b; 32]);
        let id = |b: u8| vec![b; 32];
        let pointer = |to: u8| Some(encode_retired(&Retired::new(k(to), 0, 0, 10)).unwrap());
        let mut revoked = Revoked::new(1_000, crate::store::Cutoff::NONE);
        revoked.deleted((id(1), 0, 0, pointer(2)), 0); // a pointer to 2, deleted by the same statement
        revoked.deleted((id(2), 2_000, 3_000, None), 0); // a live session
        revoked.deleted((id(3), 1_000, 3_000, None), 0); // an expired session
        revoked.deleted((id(4), 0, 0, pointer(5)), 0); // a pointer to a row not deleted yet
        revoked.deleted((id(6), 0, 0, pointer(5)), 0); // another pointer to it
        revoked.deleted((id(7), 0, 0, None), 0); // a record with no deadline: no session
        assert_eq!(revoked.live, 1, "pointers and expired rows count for nothing");
        assert_eq!(revoked.next(), Some((k(5), 1)));
        assert_eq!(revoked.next(), None, "2 was deleted, 5 is visited once");
        revoked.deleted((id(5), 0, 0, pointer(8)), MAX_CHAIN);
        assert_eq!(revoked.next(), None, "no hop past the bound");
        revoked.deleted((id(9), 0, 0, pointer(8)), MAX_CHAIN - 1);
        assert_eq!(revoked.next(), Some((k(8), MAX_CHAIN)));
    }
}
