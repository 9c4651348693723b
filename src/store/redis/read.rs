//! Reading keys: one (`GET`) or many (one batch), in either layout (a key
//! of layout 1 answers `GET` with `WRONGTYPE` and is read with `HGETALL`).

use ::redis::{RedisError, RedisResult, Value};

use super::{
    codec::{codec, decode},
    legacy, RedisStore,
};
use crate::store::{StoreError, Stored};

/// Whether the server refused a command because the key holds a hash: a
/// key of layout 1.
pub(super) fn is_legacy(e: &RedisError) -> bool {
    e.code() == Some("WRONGTYPE")
}

impl RedisStore {
    /// What the key `rkey` holds (expiry is left to the caller): one `GET`,
    /// or for a key of layout 1, an `HGETALL` after it.
    pub(super) async fn read(&self, rkey: &str) -> Result<Option<Stored>, StoreError> {
        match ::redis::cmd("GET").arg(rkey).query_async::<Value>(&mut self.conn.clone()).await {
            Err(e) if is_legacy(&e) => {
                let reply = ::redis::cmd("HGETALL").arg(rkey).query_async(&mut self.conn.clone()).await;
                legacy::decode(reply.map_err(|e| self.err(&e))?, self.max_record_bytes)
            }
            reply => self.value(reply),
        }
    }

    /// What the keys `rkeys` hold, each decoded on its own (an undecodable
    /// key is an error in its slot): one batch of `GET`s, and one of
    /// `HGETALL`s for the keys of layout 1.
    pub(super) async fn read_many(
        &self,
        rkeys: &[String],
    ) -> Result<Vec<Result<Option<Stored>, StoreError>>, StoreError> {
        let cmds = rkeys.iter().map(|k| ::redis::cmd("GET").arg(k).clone()).collect();
        let mut out = Vec::with_capacity(rkeys.len());
        let mut legacy = Vec::new();
        for (i, reply) in self.batch(cmds).await?.into_iter().enumerate() {
            match reply {
                Err(e) if is_legacy(&e) => {
                    legacy.push(i);
                    out.push(Ok(None));
                }
                reply => out.push(self.value(reply)),
            }
        }
        if !legacy.is_empty() {
            let cmds = legacy.iter().map(|&i| ::redis::cmd("HGETALL").arg(&rkeys[i]).clone()).collect();
            for (&i, reply) in legacy.iter().zip(self.batch(cmds).await?) {
                out[i] = reply.map_err(|e| self.err(&e)).and_then(|r| legacy::decode(r, self.max_record_bytes));
            }
        }
        Ok(out)
    }

    /// What a `GET` reply says of its key of layout 2.
    fn value(&self, reply: RedisResult<Value>) -> Result<Option<Stored>, StoreError> {
        match reply {
            Ok(Value::Nil) => Ok(None),
            Ok(Value::BulkString(bytes)) => decode(bytes, self.max_record_bytes).map(Some),
            Ok(_) => Err(codec("unexpected GET reply")),
            Err(e) => Err(self.err(&e)),
        }
    }
}
