//! The per-user index: indexing a session, listing a user's sessions
//! (dropping stale members) and ending some of them (see the
//! [module documentation](super#delete-and-revocation)).

use ::redis::Value;

use super::{
    codec::{time, user_digest, MAX_AT},
    connection::{join_all, Conn},
    scripts::{evalsha, run},
    RedisStore,
};
use crate::store::{Record, StoreError, Stored};

/// The longest chain of retired keys the scripts and listings follow.
const MAX_CHAIN: usize = 16;

/// A live session of a user, as a listing found it.
pub(super) struct Listed {
    /// The keys (hex) it was read live under: one, or two when a rotation
    /// moved it between two reads of one listing (the later key first).
    pub(super) keys: Vec<String>,
    /// The index members that led to it: its keys, and retired keys that
    /// point to it.
    pub(super) members: Vec<String>,
    /// The record (the later one when read under two keys).
    pub(super) record: Record,
}

impl Listed {
    /// Adds the session `record` read under `key`, reached through
    /// `members`, to `found`, merged with an entry of the same handle (the
    /// same session, read before and after a rotation).
    fn add(found: &mut Vec<Listed>, members: Vec<String>, key: String, record: Record) {
        let Some(same) = found.iter_mut().find(|l| l.record.meta.handle == record.meta.handle) else {
            found.push(Listed { keys: vec![key], members, record });
            return;
        };
        same.members.extend(members);
        if same.keys.contains(&key) {
            return;
        }
        // The later record: the one renewed last.
        let order = |r: &Record| (r.meta.renewed_at, r.meta.last_seen);
        if order(&record) > order(&same.record) {
            same.record = record;
            same.keys.insert(0, key);
        } else {
            same.keys.push(key);
        }
    }
}

impl RedisStore {
    /// Adds `(absolute deadline, member)` pairs to `user`'s index (one script
    /// on the index key alone) and moves the index's TTL to the latest
    /// deadline.
    pub(super) async fn index(&self, user: &str, entries: &[(u64, String)], now: u64) -> Result<(), StoreError> {
        let mut cmd = evalsha(&self.scripts.index, &[&self.user_index_key(user)]);
        cmd.arg(now);
        for (deadline, member) in entries {
            cmd.arg((*deadline).min(MAX_AT)).arg(member);
        }
        run::<i64>(&self.scripts.index, &cmd, &mut self.conn.clone()).await.map(|_| ()).map_err(|e| self.err(&e))
    }

    /// The live sessions of `user`, once each, after dropping stale members
    /// from the index.
    ///
    /// A member whose session is missing may belong to a `create` between its
    /// two steps (indexed, not yet written): after the `ZREM`, such members
    /// are checked again and put back if their session exists by then, and
    /// `create` indexes once more after writing, so that whichever order the
    /// two interleave in, a live session ends up in the index.
    ///
    /// A member that a rotation retired is followed (at most 16 keys) to the
    /// live session it became, which is listed once whether or not its own
    /// member was listed too (and indexed before the retired member is
    /// dropped, if it was not: a listing that ran in the middle of the
    /// rotation may have dropped it). Two live records with one handle are
    /// one session read on both sides of a rotation: listed once.
    pub(super) async fn user_sessions(&self, user: &str, now: u64) -> Result<Vec<Listed>, StoreError> {
        let index = self.user_index_key(user);
        let scored: Vec<(String, f64)> = ::redis::cmd("ZRANGE")
            .arg(&index)
            .arg(format!("({now}"))
            .arg("+inf")
            .arg("BYSCORE")
            .arg("WITHSCORES")
            .query_async(&mut self.conn.clone())
            .await
            .map_err(|e| self.err(&e))?;
        if scored.is_empty() {
            return Ok(Vec::new());
        }
        let rkeys: Vec<String> = scored.iter().map(|(m, _)| self.member_key(m)).collect();
        let replies = self.read_many(&rkeys).await?;
        let mut found: Vec<Listed> = Vec::new();
        let mut stale = Vec::new();
        let mut missing = Vec::new();
        // Retired members (member, successor) and, by key, the live pointers
        // this listing read.
        let mut follow: Vec<(String, String)> = Vec::new();
        let mut pointers: Vec<(String, String)> = Vec::new();
        for ((m, score), reply) in scored.into_iter().zip(replies) {
            // An undecodable record is left alone (and unlisted), not an error
            // for the whole list.
            match reply {
                Ok(Some(Stored::Live(r))) if !r.is_expired(now) && r.meta.user() == Some(user) => {
                    Listed::add(&mut found, vec![m.clone()], m, r);
                }
                Ok(Some(Stored::Retired(p))) if !p.is_expired(now) => {
                    let successor = p.successor.to_hex();
                    pointers.push((m.clone(), successor.clone()));
                    follow.push((m.clone(), successor));
                    stale.push(m);
                }
                // Expired, another user's, or a dead pointer.
                Ok(Some(_)) => stale.push(m),
                Ok(None) => {
                    stale.push(m.clone());
                    // Scores are integers below 2^53: exact as doubles.
                    missing.push((score as u64, m));
                }
                Err(e) => tracing::warn!(error = %e, "unreadable session in a user index"),
            }
        }
        // Successors found only by following a retired member.
        let mut reindex: Vec<(u64, String)> = Vec::new();
        for _ in 0..MAX_CHAIN {
            // Each retired member to the next key that is not a pointer this
            // listing read (at most 16 steps), then to the live session
            // listed under that key, if any; the rest are read.
            let mut fetch: Vec<(Vec<String>, String)> = Vec::new();
            for (member, mut key) in follow.drain(..) {
                for _ in 0..MAX_CHAIN {
                    match pointers.iter().find(|(k, _)| *k == key) {
                        Some((_, next)) => key.clone_from(next),
                        None => break,
                    }
                }
                if let Some(l) = found.iter_mut().find(|l| l.keys.contains(&key)) {
                    l.members.push(member);
                } else if let Some((members, _)) = fetch.iter_mut().find(|(_, k)| *k == key) {
                    members.push(member);
                } else {
                    fetch.push((vec![member], key));
                }
            }
            if fetch.is_empty() {
                break;
            }
            let rkeys: Vec<String> = fetch.iter().map(|(_, k)| self.member_key(k)).collect();
            let replies = self.read_many(&rkeys).await?;
            for ((members, key), reply) in fetch.into_iter().zip(replies) {
                match reply {
                    Ok(Some(Stored::Live(r))) if !r.is_expired(now) && r.meta.user() == Some(user) => {
                        reindex.push((r.meta.absolute_deadline, key.clone()));
                        Listed::add(&mut found, members, key, r);
                    }
                    Ok(Some(Stored::Retired(p))) if !p.is_expired(now) => {
                        let successor = p.successor.to_hex();
                        pointers.push((key, successor.clone()));
                        follow.extend(members.into_iter().map(|m| (m, successor.clone())));
                    }
                    // Gone, expired, another user's (a login rotation).
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "unreadable session in a user index"),
                }
            }
        }
        if !reindex.is_empty() {
            // Before the retired members are dropped: the index never
            // misses a live session.
            self.index(user, &reindex, now).await?;
        }
        if stale.is_empty() {
            return Ok(found);
        }
        self.unindex(&index, &stale).await?;
        if !missing.is_empty() {
            let cmds = missing.iter().map(|(_, m)| ::redis::cmd("EXISTS").arg(self.member_key(m)).clone()).collect();
            let exists = self.batch(cmds).await?.into_iter().map(|r| r.map_err(|e| self.err(&e)));
            let exists = exists.collect::<Result<Vec<_>, _>>()?;
            let back: Vec<(u64, String)> = missing
                .into_iter()
                .zip(exists)
                .filter(|(_, e)| matches!(e, Value::Int(n) if *n > 0))
                .map(|(entry, _)| entry)
                .collect();
            if !back.is_empty() {
                self.index(user, &back, now).await?;
            }
        }
        Ok(found)
    }

    pub(super) async fn unindex(&self, index: &str, members: &[String]) -> Result<(), StoreError> {
        ::redis::cmd("ZREM")
            .arg(index)
            .arg(members)
            .query_async::<()>(&mut self.conn.clone())
            .await
            .map_err(|e| self.err(&e))
    }

    /// Ends the given listed sessions of `user`, then removes their index
    /// members; returns how many sessions it ended. Each session key is
    /// followed if a rotation retired it since the listing (the revocation
    /// script). The sessions go first, so that a failure half-way leaves
    /// stale members (dropped by the next listing), never an unindexed live
    /// session.
    ///
    /// On a single server, one script does it all, the index included; on
    /// a cluster, one script per session (all in flight at once), then one
    /// `ZREM`.
    pub(super) async fn end_sessions(&self, user: &str, sessions: &[&Listed], now: u64) -> Result<usize, StoreError> {
        if sessions.is_empty() {
            return Ok(0);
        }
        let keys: Vec<&String> = sessions.iter().flat_map(|l| &l.keys).collect();
        let mut members: Vec<&String> = sessions.iter().flat_map(|l| l.keys.iter().chain(&l.members)).collect();
        members.sort_unstable();
        members.dedup();
        let index = self.user_index_key(user);
        let digest = user_digest(user);
        let now = time(now);
        // The script on session keys `keys`, and on a single server the
        // index as the last key.
        let revoke = |keys: &[&String], index: Option<&str>| {
            let mut rkeys: Vec<String> = keys.iter().map(|k| self.member_key(k)).collect();
            rkeys.extend(index.map(str::to_string));
            let rkeys: Vec<&str> = rkeys.iter().map(String::as_str).collect();
            let mut cmd = evalsha(&self.scripts.revoke, &rkeys);
            cmd.arg(&*self.prefix).arg(&now[..]).arg(&digest).arg(keys.len());
            for k in keys {
                cmd.arg(k.as_str());
            }
            cmd
        };
        match &self.conn {
            Conn::Single(_) => {
                let mut cmd = revoke(&keys, Some(&index));
                for m in &members {
                    cmd.arg(m.as_str());
                }
                let reply: Vec<Value> =
                    self.run_migrating(&self.scripts.revoke, &cmd, |r: &Vec<Value>| self.legacy_members(r)).await?;
                Ok(revoked(&reply).0)
            }
            Conn::Cluster(_) => {
                let replies = join_all(keys.iter().map(|k| {
                    let cmd = revoke(&[*k], None);
                    async move {
                        self.run_migrating(&self.scripts.revoke, &cmd, |r: &Vec<Value>| self.legacy_members(r)).await
                    }
                }))
                .await;
                let mut ended = 0;
                let mut followed = Vec::new();
                for reply in replies {
                    let (n, succ) = revoked(&reply?);
                    ended += n;
                    followed.extend(succ);
                }
                let mut members: Vec<String> = members.into_iter().cloned().collect();
                members.extend(followed);
                self.unindex(&index, &members).await?;
                Ok(ended)
            }
        }
    }

    /// The keys of layout 1 that a revocation script reply names (`{'legacy', <hex>...}`).
    fn legacy_members(&self, reply: &[Value]) -> Vec<String> {
        match reply.first() {
            Some(Value::BulkString(tag)) if tag.as_slice() == b"legacy" => reply[1..]
                .iter()
                .filter_map(|v| match v {
                    Value::BulkString(hex) => std::str::from_utf8(hex).ok().map(|h| self.member_key(h)),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// The revocation script's reply: the sessions ended, and the successors
/// it followed to and deleted (hex).
fn revoked(reply: &[Value]) -> (usize, Vec<String>) {
    let ended = match reply.first() {
        Some(Value::Int(n)) => usize::try_from(*n).unwrap_or(0),
        _ => 0,
    };
    let followed = reply
        .iter()
        .skip(1)
        .filter_map(|v| match v {
            Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
            _ => None,
        })
        .collect();
    (ended, followed)
}
