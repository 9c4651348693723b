//! Rotation: the read of the old record, the rotation script, and the
//! user index around it (see the [module documentation](super#rotation)).

use std::{future::Future, pin::Pin};

use ::redis::Value;

use super::{
    codec::{self, codec, flag, identity, time},
    connection::join_all,
    read::is_legacy,
    scripts::evalsha,
    RedisStore,
};
use crate::store::{Metadata, Retired, Rotated, Rotation, StorageKey, StoreError, Stored};

impl RedisStore {
    /// Rotates `old` into `new` (keys that [`accepts_successor`](crate::store::SessionStore::accepts_successor)
    /// accepted), reading the old record again when it changed between the
    /// read and the script.
    pub(super) async fn rotate_record(
        &self,
        old: &StorageKey,
        new: &StorageKey,
        rotation: &Rotation,
    ) -> Result<Rotated, StoreError> {
        for _ in 0..ROTATE_ATTEMPTS {
            let now = rotation.now;
            let current = match self.rotation_source(old, now).await? {
                Source::Live(current) => current,
                Source::Retired(r) => return Ok(Rotated::Retired(r)),
                Source::Gone => return Ok(Rotated::Gone),
            };
            match self.rotate_once(old, new, rotation, now, &current).await? {
                Some(outcome) => return Ok(outcome),
                // The record under `old` is not the one read (deleted and
                // created again in between): read it again.
                None => continue,
            }
        }
        Err(StoreError::Backend("rotation: the old record kept changing under the rotation".into()))
    }

    /// What `rotate` starts from: one `GET` of the old key (after a
    /// migration, for a key of layout 1).
    async fn rotation_source(&self, old: &StorageKey, now: u64) -> Result<Source, StoreError> {
        let rkey = self.redis_key(old);
        let mut migrated = false;
        let value = loop {
            let reply = ::redis::cmd("GET").arg(&rkey).query_async::<Value>(&mut self.conn.clone()).await;
            match reply {
                Ok(Value::BulkString(value)) => break value,
                Ok(Value::Nil) => return Ok(Source::Gone),
                Ok(_) => return Err(codec("unexpected GET reply")),
                Err(e) if is_legacy(&e) && !migrated => {
                    self.migrate(&rkey).await?;
                    migrated = true;
                }
                Err(e) => return Err(self.err(&e)),
            }
        };
        if value.len() > self.max_record_bytes {
            return Err(codec(format_args!("larger than {} bytes", self.max_record_bytes)));
        }
        if codec::is_pointer(&value) {
            return match codec::decode(value, self.max_record_bytes)? {
                Stored::Retired(retired) if !retired.is_expired(now) => Ok(Source::Retired(retired)),
                _ => Ok(Source::Gone),
            };
        }
        let text = value[codec::head(&value)?.identity].to_vec();
        // Decoded whole: the script copies the data as stored, so garbage
        // stops here rather than move to the successor.
        let Stored::Live(record) = codec::decode(value, self.max_record_bytes)? else {
            return Err(codec("not a session record"));
        };
        let meta = record.meta;
        if now >= meta.expires_at || now >= meta.absolute_deadline {
            return Ok(Source::Gone);
        }
        Ok(Source::Live(Current { deadline: meta.absolute_deadline, text, meta }))
    }

    /// One run of the rotation script from `current`, with the user index
    /// updated around it; `None` when the script found another record than
    /// `current` under `old`.
    async fn rotate_once(
        &self,
        old: &StorageKey,
        new: &StorageKey,
        rotation: &Rotation,
        now: u64,
        current: &Current,
    ) -> Result<Option<Rotated>, StoreError> {
        let before = current.meta.user();
        let (user, score) = match &rotation.login {
            Some(login) => (Some(login.auth.user.as_str()), login.absolute_deadline),
            None => (before, current.deadline),
        };
        // Every rotation rewrites the identity in full (`renewed_at`, and a
        // login's user and client; the script never parses JSON); the
        // compare and set on the old identity makes that safe.
        let new_identity = {
            let mut meta = current.meta.clone();
            if let Some(login) = &rotation.login {
                meta.auth = Some(login.auth.clone());
                meta.user_agent.clone_from(&login.user_agent);
                meta.ip.clone_from(&login.ip);
            }
            meta.renewed_at = Some(rotation.now);
            identity(&meta)?
        };
        let member = new.to_hex();
        let entry = [(score, member.clone())];
        if let Some(user) = user {
            // Indexed first: the index never misses a live session.
            self.index(user, &entry, now).await?;
        }
        let changes = &rotation.changes;
        let retired = rotation.retired(*new);
        let (old_key, new_key) = (self.redis_key(old), self.redis_key(new));
        let mut cmd = evalsha(&self.scripts.rotate, &[&old_key, &new_key]);
        cmd.arg(&time(now)[..])
            .arg(&member)
            .arg(&current.text)
            .arg(&new_identity)
            // The successor names its predecessor until it is first used
            // (overlap or not; see `Rotation::successor`).
            .arg(old.to_hex())
            .arg(&time(rotation.now.max(changes.last_seen))[..])
            .arg(&time(changes.expires_at)[..])
            .arg(changes.persistent.map_or("", flag))
            .arg(flag(changes.clear))
            .arg(changes.max_data_bytes);
        match &rotation.login {
            Some(login) => cmd.arg(&time(login.absolute_deadline)[..]),
            None => cmd.arg(""),
        };
        cmd.arg(&time(retired.at)[..]).arg(&time(retired.overlap_until)[..]).arg(&time(retired.until)[..]);
        match &rotation.retain {
            Some(keep) => {
                cmd.arg(keep.len());
                for k in keep {
                    cmd.arg(k);
                }
            }
            None => {
                cmd.arg(-1);
            }
        }
        for (k, v) in codec::sorted(&changes.changes) {
            cmd.arg(k).arg(v);
        }
        // A failure leaves the new member in the index: a stale member,
        // which the next listing drops.
        let reply: Vec<String> = self
            .run_migrating(&self.scripts.rotate, &cmd, |r: &Vec<String>| {
                if r.first().map(String::as_str) == Some("legacy") {
                    vec![old_key.clone(), new_key.clone()]
                } else {
                    Vec::new()
                }
            })
            .await?;
        let outcome = match reply.first().map(String::as_str) {
            Some("done") => Ok(Some(Rotated::Done)),
            Some("gone") => Ok(Some(Rotated::Gone)),
            Some("taken") => Ok(Some(Rotated::Taken)),
            Some("too_large") => Err(StoreError::TooLarge),
            Some("changed") => Ok(None),
            Some("malformed") => Err(codec("malformed record")),
            Some("retired") => match reply.get(1..5) {
                Some([successor, at, overlap_until, until]) => {
                    let successor = StorageKey::from_hex(successor).ok_or_else(|| codec("bad storage key field"))?;
                    let ms = |t: &str| t.parse::<u64>().map_err(|_| codec("bad time field"));
                    Ok(Some(Rotated::Retired(Retired::new(successor, ms(at)?, ms(overlap_until)?, ms(until)?))))
                }
                _ => Err(codec("short rotation reply")),
            },
            _ => Err(codec("unexpected rotation reply")),
        };
        // The index around a rotation is best effort past this point: the
        // rotation has happened (or not) and the index stays a superset of
        // the live sessions either way.
        let mut steps: Vec<Step<'_>> = Vec::new();
        match (&outcome, user) {
            (Ok(Some(Rotated::Done)), _) => {
                if let Some(before) = before {
                    let index = self.user_index_key(before);
                    let members = [old.to_hex()];
                    steps.push(Box::pin(async move { self.unindex(&index, &members).await }));
                }
                if let Some(user) = user {
                    // ...and indexed again once written (as `create` does).
                    steps.push(Box::pin(self.index(user, &entry, now)));
                }
            }
            // Another session holds `new`: its member stays (a superset).
            (Ok(Some(Rotated::Taken)), _) | (_, None) => {}
            (_, Some(user)) => {
                let index = self.user_index_key(user);
                let members = [member.clone()];
                steps.push(Box::pin(async move { self.unindex(&index, &members).await }));
            }
        }
        for result in join_all(steps).await {
            if let Err(e) = result {
                tracing::warn!(error = %e, "user index update around a rotation failed (the index stays a superset)");
            }
        }
        outcome
    }
}

/// How many times `rotate` reads the old record again when it changed
/// between the read and the script.
const ROTATE_ATTEMPTS: usize = 3;

/// One of the index updates after a rotation's script.
type Step<'a> = Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send + 'a>>;

/// What a rotation starts from.
enum Source {
    Live(Current),
    Retired(Retired),
    Gone,
}

/// The live old record, as far as a rotation reads it before the script.
struct Current {
    /// The identity as stored (the script compares it).
    text: Vec<u8>,
    /// Its metadata.
    meta: Metadata,
    deadline: u64,
}
