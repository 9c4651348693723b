//! [`Cutoffs`](crate::store::Cutoffs) on Redis: one string key per cutoff,
//! all under the hash tag `{cutoffs}` (one slot on a cluster, so that both
//! cutoffs of a session are read by one `MGET`): `{prefix}{cutoffs}:all`
//! and `{prefix}{cutoffs}:user:<hex SHA-256 of the user>` (user names never
//! appear in key names). Each holds a not-before time and expires at its
//! `keep_until`.

use super::{codec::MAX_AT, RedisStore};
use crate::store::{Cutoff, Scope, StorageKey, StoreError};

use sha2::{Digest, Sha256};

impl RedisStore {
    /// The key of the global cutoff.
    pub(super) fn cutoff_all_key(&self) -> String {
        format!("{}{{cutoffs}}:all", self.prefix)
    }

    /// The key of `user`'s cutoff.
    pub(super) fn cutoff_user_key(&self, user: &str) -> String {
        let digest = StorageKey::from_bytes(Sha256::digest(user.as_bytes()).into());
        format!("{}{{cutoffs}}:user:{}", self.prefix, digest.to_hex())
    }

    /// `cut`: one script on the scope's key.
    pub(super) async fn cut_key(&self, scope: Scope<'_>, not_before: u64, keep_until: u64, now: u64) -> Result<(), StoreError> {
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
        let values: Vec<Option<String>> = ::redis::cmd("MGET")
            .arg(&keys)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(|e| self.err(&e))?;
        let time = |i: usize| -> Result<u64, StoreError> {
            match values.get(i).and_then(Option::as_deref) {
                None => Ok(0),
                Some(text) => text.parse().map_err(|_| StoreError::Codec("redis cutoff: not a time".into())),
            }
        };
        Ok(Cutoff::new(time(0)?, time(1)?))
    }
}
