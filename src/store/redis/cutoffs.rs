//! [`Cutoffs`](crate::store::Cutoffs) on Redis: one string key per cutoff,
//! all under the hash tag `{cutoffs}` (one slot on a cluster, so that both
//! cutoffs of a session are read by one `MGET`): `{prefix}{cutoffs}:all`
//! and `{prefix}{cutoffs}:user:<hex SHA-256 of the user>` (user names never
//! appear in key names). Each holds a not-before time and expires at its
//! `keep_until`.

use ::redis::Value;
use sha2::{Digest, Sha256};

use super::{
    codec::{codec, decode, MAX_AT},
    connection::Conn,
    RedisStore,
};
use crate::store::{Cutoff, Scope, StorageKey, StoreError, Stored};

/// The suffix of `user`'s cutoff key: the hex SHA-256 of the user (also
/// the `uc` field of the user's records).
pub(super) fn user_cut(user: &str) -> String {
    StorageKey::from_bytes(Sha256::digest(user.as_bytes()).into()).to_hex()
}

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
        key.push_str(&user_cut(user));
        key
    }

    /// `lookup`: what the store holds under `key` (expiry left to the
    /// caller), `None` for a session a cutoff ended. On a single server, one
    /// script reads the record and its cutoffs; on a cluster (the cutoffs
    /// live in another slot), the record, then one `MGET` of the cutoffs
    /// when it is a live session.
    pub(super) async fn lookup_cut(&self, key: &StorageKey) -> Result<Option<Stored>, StoreError> {
        let (stored, cutoff) = if matches!(self.conn, Conn::Cluster(_)) {
            let reply: Value = ::redis::cmd("HGETALL")
                .arg(self.redis_key(key))
                .query_async(&mut self.conn.clone())
                .await
                .map_err(|e| self.err(&e))?;
            (decode(reply, self.max_record_bytes)?, None)
        } else {
            let mut inv = self.scripts.lookup.key(self.redis_key(key));
            inv.arg(self.cutoff_all_key()).arg(self.cutoff_user_prefix());
            let reply: Value = inv.invoke_async(&mut self.conn.clone()).await.map_err(|e| self.err(&e))?;
            let Value::Array(parts) = reply else { return Err(codec("unexpected lookup reply")) };
            let mut parts = parts.into_iter();
            let (Some(hash), Some(all), Some(mine), Some(named)) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(codec("short lookup reply"));
            };
            let stored = decode(hash, self.max_record_bytes)?;
            // A record written before its user's cutoff key was named in it
            // has its cutoffs read as on a cluster.
            let cutoff = match named {
                Value::Int(1) => Some(Cutoff::new(cut_time(all)?, cut_time(mine)?)),
                _ => None,
            };
            (stored, cutoff)
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
        let mut inv = self.scripts.cut.key(key);
        inv.arg(not_before.min(MAX_AT).to_string()).arg(keep_until.min(MAX_AT).to_string()).arg(now.to_string());
        inv.invoke_async::<i64>(&mut self.conn.clone()).await.map(|_| ()).map_err(|e| self.err(&e))
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
fn cut_time(value: Value) -> Result<u64, StoreError> {
    match value {
        Value::Nil => Ok(0),
        Value::BulkString(bytes) => {
            parse_time(Some(std::str::from_utf8(&bytes).map_err(|_| codec("a cutoff is not a time"))?))
        }
        _ => Err(codec("unexpected cutoff reply")),
    }
}
