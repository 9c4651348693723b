//! Rotation: the read of the old record, the rotation script, and the
//! user index around it (see the [module documentation](super#rotation)).

use std::{future::Future, pin::Pin};

use serde_json::value::RawValue;

use super::{
    codec::{
        codec, flag, meta_json, metadata, time, DATA_PREFIX, F_AT, F_DEADLINE, F_EXPIRES_AT, F_META, F_OVERLAP_UNTIL,
        F_RETIRED, F_UNTIL,
    },
    connection::join_all,
    cutoffs::user_cut,
    RedisStore,
};
use crate::store::{Metadata, Retired, Rotated, Rotation, StorageKey, StoreError};

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

    /// What `rotate` starts from: one `HMGET` of the old key's metadata, or
    /// of its retired pointer.
    async fn rotation_source(&self, old: &StorageKey, now: u64) -> Result<Source, StoreError> {
        let fields: Vec<Option<String>> = ::redis::cmd("HMGET")
            .arg(self.redis_key(old))
            .arg(&[F_META, F_EXPIRES_AT, F_DEADLINE, F_RETIRED, F_AT, F_OVERLAP_UNTIL, F_UNTIL])
            .query_async(&mut self.conn.clone())
            .await
            .map_err(|e| self.err(&e))?;
        let field = |i: usize| fields.get(i).and_then(Option::as_deref);
        let at = |i: usize| field(i).map(time).transpose();
        if let (Some(expires_at), Some(deadline)) = (at(1)?, at(2)?) {
            if now >= expires_at || now >= deadline {
                return Ok(Source::Gone);
            }
            let text = field(0).ok_or_else(|| codec("metadata fields are missing"))?;
            let meta = metadata(text, 0, 0, deadline, false)?;
            return Ok(Source::Live(Current { text: text.to_string(), meta, deadline }));
        }
        if let Some(successor) = field(3) {
            let successor = StorageKey::from_hex(successor).ok_or_else(|| codec("bad storage key field"))?;
            let (Some(at), Some(overlap_until), Some(until)) = (at(4)?, at(5)?, at(6)?) else {
                return Err(codec("retired key fields are missing"));
            };
            let retired = Retired::new(successor, at, overlap_until, until);
            if !retired.is_expired(now) {
                return Ok(Source::Retired(retired));
            }
        }
        Ok(Source::Gone)
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
        // Every rotation rewrites the `meta` field in full (`renewed_at`, and
        // a login's user and client; the script never parses JSON); the
        // compare and set on the old `meta` makes that safe.
        let new_meta = {
            let mut meta = current.meta.clone();
            if let Some(login) = &rotation.login {
                meta.auth = Some(login.auth.clone());
                meta.user_agent.clone_from(&login.user_agent);
                meta.ip.clone_from(&login.ip);
            }
            meta.renewed_at = Some(rotation.now);
            meta_json(&meta)?
        };
        let member = new.to_hex();
        let entry = [(score, member.clone())];
        if let Some(user) = user {
            // Indexed first: the index never misses a live session.
            self.index(user, &entry, now).await?;
        }
        let changes = &rotation.changes;
        let retired = rotation.retired(*new);
        let mut inv = self.scripts.rotate.key(self.redis_key(old));
        inv.key(self.redis_key(new))
            .arg(now.to_string())
            .arg(&member)
            .arg(&current.text)
            .arg(&new_meta)
            // The successor names its predecessor until it is first used
            // (overlap or not; see `Rotation::successor`).
            .arg(old.to_hex())
            .arg(rotation.now.max(changes.last_seen).to_string())
            .arg(changes.expires_at.to_string())
            .arg(changes.persistent.map_or("", flag))
            .arg(flag(changes.clear))
            .arg(changes.max_data_bytes)
            .arg(rotation.login.as_ref().map_or_else(String::new, |l| l.absolute_deadline.to_string()))
            .arg(retired.at.to_string())
            .arg(retired.overlap_until.to_string())
            .arg(retired.until.to_string())
            .arg(user.map_or_else(String::new, user_cut));
        match &rotation.retain {
            Some(keep) => {
                inv.arg(keep.len());
                for k in keep {
                    inv.arg(format!("{DATA_PREFIX}{k}"));
                }
            }
            None => {
                inv.arg(-1);
            }
        }
        for (k, v) in &changes.changes {
            inv.arg(format!("{DATA_PREFIX}{k}")).arg(v.as_deref().map_or("", RawValue::get));
        }
        // A failure leaves the new member in the index: a stale member,
        // which the next listing drops.
        let reply: Vec<String> = inv.invoke_async(&mut self.conn.clone()).await.map_err(|e| self.err(&e))?;
        let outcome = match reply.first().map(String::as_str) {
            Some("done") => Ok(Some(Rotated::Done)),
            Some("gone") => Ok(Some(Rotated::Gone)),
            Some("taken") => Ok(Some(Rotated::Taken)),
            Some("too_large") => Err(StoreError::TooLarge),
            Some("changed") => Ok(None),
            Some("retired") => match reply.get(1..5) {
                Some([successor, at, overlap_until, until]) => {
                    let successor = StorageKey::from_hex(successor).ok_or_else(|| codec("bad storage key field"))?;
                    Ok(Some(Rotated::Retired(Retired::new(successor, time(at)?, time(overlap_until)?, time(until)?))))
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
    /// The `meta` field as stored (the script compares it).
    text: String,
    /// Its metadata (the times are not read).
    meta: Metadata,
    deadline: u64,
}
