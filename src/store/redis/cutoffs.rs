//! [`Cutoffs`](crate::store::Cutoffs) on Redis: one string key per cutoff,
//! all under the hash tag `{cutoffs}` (one slot on a cluster, so that both
//! cutoffs of a session are read by one `MGET`): `{prefix}{cutoffs}:all`
//! and `{prefix}{cutoffs}:user:<hex SHA-256 of the user>` (user names never
//! appear in key names). Each holds a not-before time and expires at its
//! `keep_until`.

use ::redis::Value;

use super::{
    codec::{codec, decode, user_digest, MAX_AT},
    connection::Conn,
    scripts::{evalsha, run},
    RedisStore,
};
use crate::store::{Cutoff, Scope, StorageKey, StoreError, Stored};

impl RedisStore {
    /// The key of the global cutoff.
    pub(super) fn cutoff_all_key(&self) -> String {
        format!("{}{{cutoffs}}:all", self.prefix)
    }

    /// The prefix of the users' cutoff keys.
    fn cutoff_user_prefix(&self) -> String {
        format!("{}{{cutoffs}}:user:", self.prefix)
    }

    /// The key of `user`'s cutoff.
    pub(super) fn cutoff_user_key(&self, user: &str) -> String {
        let mut key = self.cutoff_user_prefix();
        key.push_str(&user_digest(user));
        key
    }

    /// `lookup`: what the store holds under `key` (expiry left to the
    /// caller), `None` for a session a cutoff ended. On a single server, one
    /// script reads the record and its cutoffs (the user's through the
    /// digest in the record); on a cluster (the cutoffs live in another
    /// slot), and for a key of layout 1, the record, then one `MGET` of the
    /// cutoffs when it is a live session.
    pub(super) async fn lookup_cut(&self, key: &StorageKey) -> Result<Option<Stored>, StoreError> {
        let rkey = self.redis_key(key);
        let (stored, cutoff) = match self.conn {
            Conn::Cluster(_) => (self.read(&rkey).await?, None),
            Conn::Single(_) => {
                let mut cmd = evalsha(&self.scripts.lookup, &[&rkey]);
                cmd.arg(self.cutoff_all_key()).arg(self.cutoff_user_prefix());
                let reply: Value =
                    run(&self.scripts.lookup, &cmd, &mut self.conn.clone()).await.map_err(|e| self.err(&e))?;
                let Value::Array(parts) = reply else { return Err(codec("unexpected lookup reply")) };
                let mut parts = parts.into_iter();
                match (parts.next(), parts.next(), parts.next()) {
                    (Some(Value::Nil), None, None) => (None, None),
                    (Some(Value::Int(-2)), None, None) => (self.read(&rkey).await?, None),
                    (Some(Value::BulkString(value)), None, None) => (Some(decode(value, self.max_record_bytes)?), None),
                    (Some(Value::BulkString(value)), Some(all), Some(mine)) => {
                        let cutoff = Cutoff::new(cut_value(all)?, cut_value(mine)?);
                        (Some(decode(value, self.max_record_bytes)?), Some(cutoff))
                    }
                    _ => return Err(codec("unexpected lookup reply")),
                }
            }
        };
        let Some(Stored::Live(record)) = stored else { return Ok(stored) };
        let cutoff = match cutoff {
            Some(cutoff) => cutoff,
            None => self.read_cutoffs(record.meta.user()).await?,
        };
        Ok((!cutoff.ends(&record.meta)).then_some(Stored::Live(record)))
    }

    /// `cut`: one script on the scope's key.
    pub(super) async fn cut_key(
        &self,
        scope: Scope<'_>,
        not_before: u64,
        keep_until: u64,
        now: u64,
    ) -> Result<(), StoreError> {
        let key = match scope {
            Scope::User(user) => self.cutoff_user_key(user),
            _ => self.cutoff_all_key(),
        };
        let mut cmd = evalsha(&self.scripts.cut, &[&key]);
        cmd.arg(not_before.min(MAX_AT)).arg(keep_until.min(MAX_AT)).arg(now);
        run::<i64>(&self.scripts.cut, &cmd, &mut self.conn.clone()).await.map(|_| ()).map_err(|e| self.err(&e))
    }

    /// `cutoff`: one `MGET` of the global cutoff and `user`'s.
    pub(super) async fn read_cutoffs(&self, user: Option<&str>) -> Result<Cutoff, StoreError> {
        let mut keys = vec![self.cutoff_all_key()];
        if let Some(user) = user {
            keys.push(self.cutoff_user_key(user));
        }
        let values: Vec<Option<String>> =
            ::redis::cmd("MGET").arg(&keys).query_async(&mut self.conn.clone()).await.map_err(|e| self.err(&e))?;
        let time = |i: usize| parse_time(values.get(i).and_then(Option::as_deref));
        Ok(Cutoff::new(time(0)?, time(1)?))
    }
}

/// A cutoff as stored (absent: 0).
fn parse_time(text: Option<&str>) -> Result<u64, StoreError> {
    match text {
        None => Ok(0),
        Some(text) => text.parse().map_err(|_| codec("a cutoff is not a time")),
    }
}

/// A cutoff in a script's reply (`Nil`: none).
fn cut_value(value: Value) -> Result<u64, StoreError> {
    match value {
        Value::Nil => Ok(0),
        Value::BulkString(bytes) => {
            parse_time(Some(std::str::from_utf8(&bytes).map_err(|_| codec("a cutoff is not a time"))?))
        }
        _ => Err(codec("unexpected cutoff reply")),
    }
}
