//! [`Cutoffs`](crate::store::Cutoffs): one row per cutoff in the
//! `<table>_cutoffs` table (scope 0: the global one, user `''`; scope 1: a
//! user's; on MySQL the user column holds the user's SHA-256 digest, as a
//! user ID has no length limit there and a key has), read by every `load`
//! and listing in the same statement as the sessions (two scalar
//! subqueries).

use sqlx::Row;

use super::{
    codec::to_i64,
    connection::{dispatch, Pool},
    SqlStore,
};
use crate::store::{Cutoff, Scope, StoreError};

/// The two cutoff columns after the four of [`columns`](super::codec::columns):
/// the global cutoff and the row user's (NULL: none).
pub(super) fn cut_columns<R>(row: &R) -> Result<Cutoff, sqlx::Error>
where
    R: Row,
    usize: sqlx::ColumnIndex<R>,
    Option<i64>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(cutoff_of(row.try_get(4)?, row.try_get(5)?))
}

/// The cutoffs from their two columns, the global one and the user's
/// (NULL: none). Written from `u64`s clamped to `i64::MAX`: never negative.
pub(super) fn cutoff_of(all: Option<i64>, user: Option<i64>) -> Cutoff {
    let value = |v: Option<i64>| v.map_or(0, |v| u64::try_from(v).unwrap_or(0));
    Cutoff::new(value(all), value(user))
}

impl SqlStore {
    /// `cut`: one upsert that only moves the times forward.
    pub(super) async fn cut_scope(&self, scope: Scope<'_>, not_before: u64, keep_until: u64) -> Result<(), StoreError> {
        let (kind, user): (i16, &str) = match scope {
            Scope::User(user) => (1, user),
            _ => (0, ""),
        };
        let q = &*self.queries;
        dispatch!(&self.pool, p => sqlx::query(&q.cut)
            .bind(kind)
            .bind(user)
            .bind(to_i64(not_before))
            .bind(to_i64(keep_until))
            .execute(p)
            .await
            .map(|_| ()))
        .map_err(|e| self.err(&e))
    }

    /// `cutoff`: the global cutoff and `user`'s.
    pub(super) async fn read_cutoff(&self, user: Option<&str>) -> Result<Cutoff, StoreError> {
        let q = &*self.queries;
        let named = user.is_some();
        let user = user.unwrap_or("");
        let (all, mine) = dispatch!(&self.pool, p => {
            sqlx::query_as::<_, (Option<i64>, Option<i64>)>(&q.cutoff).bind(user).fetch_one(p).await
        })
        .map_err(|e| self.err(&e))?;
        // A visitor's sessions have no user's cutoff (the row read is the
        // user `""`'s, if one was cut).
        Ok(cutoff_of(all, if named { mine } else { None }))
    }
}
