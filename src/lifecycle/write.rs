//! Carrying out the commit [`Step`]: the store calls, and the cookie they
//! lead to. Every pair of calls made here is either one atomic store
//! operation or harmless when interleaved with any other request:
//!
//! - a rotation is one [`rotate`](crate::SessionStore::rotate); when another
//!   rotation won and its overlap is open, a periodic renewal forwards its
//!   change set to the winner (one `apply`, which only merges into a live
//!   record) and a privilege renewal or login rotates the winner (one more
//!   atomic `rotate`);
//! - a write that finds its session retired looks the key up and, within an
//!   overlap, merges into the successor (again one `apply`: a logout in
//!   between makes it a no-op);
//! - a logout followed by a new session deletes first, so the new session
//!   never shares anything with the old one;
//! - a login under the per-user limit on a request without a live session
//!   ([`Step::Admit`]) creates the session without its user, then renews
//!   it with the login (one atomic `rotate`, where the store admits or
//!   refuses the login): the anonymous record is under a new ID that no
//!   cookie carries yet, so no other request can read, write, renew or end
//!   it in between, and it counts for no user's limit. Something that ends
//!   it anyway (a full `MemoryStore` evicting anonymous sessions) makes the
//!   rotation find it gone, and the login fails with an error rather than
//!   answer as if the user were signed in; a refused login deletes it.

use std::sync::Arc;

use http::Response;

use super::{
    lease::Lease,
    plan::{Reply, Step},
    state::{Creation, Cut, Renewal},
};
use crate::{
    events::{Emitter, Route},
    shared::{error_response, Shared},
    store::Scope,
    transport::{drop_token, finish_headers, issue},
    ChangeSet, EventKind, Record, RenewReason, Rotated, Rotation, SessionError, SessionId, StorageKey, StoreError,
    Stored,
};

/// How often a new ID is drawn when the store reports it taken.
const CREATE_ATTEMPTS: usize = 3;
/// How many rotations a renewal follows when other renewals won first.
const MAX_HOPS: usize = 3;
/// The most IDs drawn to find one the store accepts as a successor (a
/// Redis Cluster accepts about one in 16,384).
const MAX_DRAWS: usize = 1 << 20;

/// The headers (or the error) a commit adds to the response.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// The token header's value (`Set-Cookie` on a cookie layer, the
    /// session header on a header layer), when the token changes.
    pub(crate) token_header: Option<String>,
    pub(crate) error: Option<SessionError>,
}

impl Outcome {
    /// A commit that failed with `error`.
    fn failed_with(error: SessionError) -> Self {
        Self { token_header: None, error: Some(error) }
    }
}

/// One request's write-back, ready to run after the handler answered.
pub(crate) struct Commit {
    pub(crate) shared: Arc<Shared>,
    pub(crate) step: Step,
    /// The presented ID (for a re-issued cookie) and its key.
    pub(crate) presented: Option<(SessionId, StorageKey)>,
    pub(crate) now: u64,
    /// The exclusive lease to release after the write (or when dropped).
    pub(crate) lease: Option<Box<Lease>>,
    /// The user's cutoff to make after the write.
    pub(crate) cut: Option<Box<Cut>>,
    /// For the event hook (installed only): the request's method and path,
    /// and the session's user.
    pub(crate) events: Option<Box<(Option<Route>, Option<String>)>>,
}

impl Commit {
    /// Runs the store calls, releases the lease, then adds the headers to
    /// `res` (or replaces it with the save-error response).
    ///
    /// An `async` block rather than an `async fn`: the block uses `self` and
    /// `res` in place, where an `async fn` would keep a second copy of its
    /// arguments in the future (rust-lang/rust#62958), which is boxed.
    #[allow(clippy::manual_async_fn)]
    pub(crate) fn respond<B: Default + Send + 'static>(
        mut self,
        res: Response<B>,
    ) -> impl std::future::Future<Output = Response<B>> + Send {
        async move {
            let mut out = self.write().await;
            self.after_write(&mut out).await;
            finish(res, out, &self.shared)
        }
    }

    /// The store calls, the cutoff and the lease release, for a commit that
    /// no response carries.
    pub(crate) async fn run(mut self) -> Outcome {
        let mut out = self.write().await;
        self.after_write(&mut out).await;
        out
    }

    /// What follows the write: the cutoff, then the lease's release.
    async fn after_write(&mut self, out: &mut Outcome) {
        if let Some(cut) = self.cut.take() {
            // Made whatever the write did (a failed renewal included):
            // the credentials changed. Its failure fails the response,
            // which still carries the renewed ID (see `finish`).
            if let Err(e) = self.cut(&cut).await {
                out.error.get_or_insert(e);
            }
        }
        if let Some(lease) = self.lease.take() {
            (*lease).release(&self.shared).await;
        }
    }

    fn emitter(&self) -> Emitter<'_> {
        let route = self.events.as_deref().and_then(|(route, _)| route.as_ref());
        Emitter { hook: self.shared.on_event.as_ref(), route, now: self.now }
    }

    fn user(&self) -> Option<&str> {
        self.events.as_deref().and_then(|(_, user)| user.as_deref())
    }

    fn emit(&self, kind: EventKind, key: &StorageKey) {
        self.emitter().emit(kind, Some(key), self.user());
    }

    /// The headers of a step that makes no store call.
    fn reply(&self, reply: Reply) -> Outcome {
        reply_outcome(&self.shared, self.presented.as_ref().map(|(id, _)| id), reply)
    }

    async fn write(&self) -> Outcome {
        let shared = &*self.shared;
        let store = shared.store();
        match &self.step {
            Step::Untouched | Step::LoadFailed(_) => Outcome::default(),
            Step::Reply(reply) => self.reply(*reply),
            Step::Touch { key, expires_at, reply } => {
                // A failed touch loses no data and weakens nothing (the
                // session only expires a little earlier): the response stands.
                let _ = shared.timed(self.emitter(), "touch", Some(key), store.touch(key, self.now, *expires_at)).await;
                self.reply(*reply)
            }
            Step::Apply { key, changes, reply } => self.apply(key, changes, *reply).await,
            Step::Purge { key, reply } => {
                match shared.timed(self.emitter(), "delete", Some(key), store.delete(key, self.now)).await {
                    Ok(()) => {
                        self.emit(EventKind::Purged, key);
                        self.reply(*reply)
                    }
                    Err(e) => failed(e),
                }
            }
            Step::Create { record, creation, purge_first, max_age } => {
                if let Err(out) = self.purge_first(purge_first.as_ref()).await {
                    return out;
                }
                self.create(record, *creation, *max_age).await
            }
            Step::Admit { record, rotation, purge_first, max_age } => {
                if let Err(e) = self.limit_supported(rotation) {
                    return Outcome::failed_with(e);
                }
                if let Err(out) = self.purge_first(purge_first.as_ref()).await {
                    return out;
                }
                let anonymous = match self.insert(record).await {
                    Ok((_, key)) => key,
                    Err(out) => return out,
                };
                self.rotate(anonymous, rotation, Rotating::Admitted, *max_age).await
            }
            Step::Rotate { old, rotation, renewal, max_age } => {
                self.rotate(*old, rotation, Rotating::Session(renewal), *max_age).await
            }
        }
    }

    /// Deletes the session a logout earlier in the request ended, before a
    /// new one is created.
    async fn purge_first(&self, old: Option<&StorageKey>) -> Result<(), Outcome> {
        let Some(old) = old else { return Ok(()) };
        let store = self.shared.store();
        match self.shared.timed(self.emitter(), "delete", Some(old), store.delete(old, self.now)).await {
            Ok(()) => {
                self.emit(EventKind::Purged, old);
                Ok(())
            }
            Err(e) => Err(failed(e)),
        }
    }

    /// A login under the per-user limit needs the store's per-user index: a
    /// layer built without one fails closed.
    fn limit_supported(&self, rotation: &Rotation) -> Result<(), SessionError> {
        if rotation.login.as_ref().is_some_and(|l| l.limit.is_some()) {
            self.shared.index()?;
        }
        Ok(())
    }

    /// Merges the change set; a session retired meanwhile passes it on to its
    /// successor within the overlap.
    async fn apply(&self, key: &StorageKey, changes: &ChangeSet, reply: Reply) -> Outcome {
        let shared = &*self.shared;
        let store = shared.store();
        match shared.timed(self.emitter(), "apply", Some(key), store.apply(key, changes, self.now)).await {
            Ok(true) => return self.reply(reply),
            Ok(false) => {}
            Err(e) => return failed(e),
        }
        // Ended or retired by a concurrent request since this one loaded.
        match shared.timed(self.emitter(), "lookup", Some(key), store.lookup(key, self.now)).await {
            Ok(Some(Stored::Retired(r))) if r.overlaps(self.now) => {
                let mut forwarded = changes.clone();
                forwarded.close_overlap = false;
                match shared
                    .timed(self.emitter(), "apply", Some(&r.successor), store.apply(&r.successor, &forwarded, self.now))
                    .await
                {
                    Ok(true) => Outcome::default(),
                    Ok(false) => {
                        self.emit(EventKind::WriteDropped, key);
                        Outcome::default()
                    }
                    Err(e) => failed(e),
                }
            }
            // Retired without an overlap (a login or a privilege renewal):
            // the write is dropped, and the cookie left alone.
            Ok(Some(Stored::Retired(_))) => {
                self.emit(EventKind::WriteDropped, key);
                Outcome::default()
            }
            // Ended (logout, revocation, expiry): never resurrected.
            Ok(_) => {
                self.emit(EventKind::WriteDropped, key);
                self.reply(self.ended(key))
            }
            Err(e) => failed(e),
        }
    }

    /// Creates `record` under a new ID.
    async fn create(&self, record: &Record, creation: Creation, max_age: Option<u64>) -> Outcome {
        match self.insert(record).await {
            Ok((id, key)) => {
                let kind = if creation == Creation::Login { EventKind::LoggedIn } else { EventKind::Created };
                self.emitter().emit(kind, Some(&key), record.meta.user());
                self.issued(id, max_age)
            }
            Err(out) => out,
        }
    }

    /// Stores `record` under a new ID (drawn again while the store reports
    /// it taken); the ID and its key, or the failed outcome.
    async fn insert(&self, record: &Record) -> Result<(SessionId, StorageKey), Outcome> {
        let shared = &*self.shared;
        for _ in 0..CREATE_ATTEMPTS {
            let id = SessionId::generate().map_err(Outcome::failed_with)?;
            let key = id.storage_key();
            match shared
                .timed(self.emitter(), "create", Some(&key), shared.store().create(&key, record, self.now))
                .await
            {
                Ok(true) => return Ok((id, key)),
                Ok(false) => continue,
                Err(e) => return Err(failed(e)),
            }
        }
        Err(failed(StoreError::Backend("no unique session id after retries".into())))
    }

    /// Rotates a session to a new ID in one store operation.
    async fn rotate(
        &self,
        mut old: StorageKey,
        rotation: &Rotation,
        rotating: Rotating<'_>,
        max_age: Option<u64>,
    ) -> Outcome {
        if let Err(e) = self.limit_supported(rotation) {
            return Outcome::failed_with(e);
        }
        let shared = &*self.shared;
        let store = shared.store();
        let user = rotation.login.as_ref().map(|l| l.auth.user.as_str()).or(self.user());
        let mut taken = 0;
        let mut hops = 0;
        loop {
            let (id, key) = match successor_id(shared, &old) {
                Ok(pair) => pair,
                Err(e) => return Outcome::failed_with(e),
            };
            let rotated =
                match shared.timed(self.emitter(), "rotate", Some(&old), store.rotate(&old, &key, rotation)).await {
                    Ok(rotated) => rotated,
                    Err(e) => return failed(e),
                };
            let renewal = match (rotated, rotating) {
                (Rotated::Taken, _) if taken + 1 < CREATE_ATTEMPTS => {
                    taken += 1;
                    continue;
                }
                (Rotated::Taken, _) => return failed(StoreError::Backend("no unique session id after retries".into())),
                (Rotated::Refused, _) => return self.refused(rotation, rotating, &old, user).await,
                (Rotated::Done | Rotated::Evicted { .. }, Rotating::Admitted) => {
                    // A new session, as a login without a limit makes.
                    self.emitter().emit(EventKind::LoggedIn, Some(&key), user);
                    self.evicted(rotated, &key, user);
                    return self.issued(id, max_age);
                }
                // Ended before its login (evicted from a full store).
                (_, Rotating::Admitted) => {
                    return failed(StoreError::Backend("the new session ended before its login".into()))
                }
                (_, Rotating::Session(renewal)) => renewal,
            };
            match rotated {
                Rotated::Done | Rotated::Evicted { .. } => {
                    let reason = match renewal {
                        Renewal::Periodic => RenewReason::Periodic,
                        Renewal::Privilege => RenewReason::Privilege,
                        Renewal::Login { .. } => RenewReason::Login,
                    };
                    self.emitter().renewed(&old, &key, reason, user);
                    self.evicted(rotated, &key, user);
                    return self.issued(id, max_age);
                }
                // Another periodic renewal won: its successor is the session now.
                Rotated::Retired(r) if r.overlaps(self.now) && hops < MAX_HOPS => {
                    if *renewal == Renewal::Periodic {
                        // Its response carries the new cookie; this one's
                        // changes join the successor, and the cookie stays.
                        let apply = store.apply(&r.successor, &rotation.changes, self.now);
                        return match shared.timed(self.emitter(), "apply", Some(&r.successor), apply).await {
                            Ok(_) => Outcome::default(),
                            Err(e) => failed(e),
                        };
                    }
                    // A login or a privilege change still needs its own new ID.
                    hops += 1;
                    old = r.successor;
                }
                // A login or privilege renewal retired it first: this
                // request's session is gone, and its cookie is left alone.
                Rotated::Retired(_) => {
                    self.emit(EventKind::WriteDropped, &old);
                    return Outcome::default();
                }
                // Gone: ended (logout, revocation, expiry) before the
                // rotation, nothing was created. (`Taken` and `Refused` were
                // answered above.)
                _ => {
                    self.emit(EventKind::WriteDropped, &old);
                    return self.reply(self.ended(&old));
                }
            }
        }
    }

    /// The event of a login that ended other sessions of its user (the new
    /// session's key).
    fn evicted(&self, rotated: Rotated, key: &StorageKey, user: Option<&str>) {
        if let Rotated::Evicted { count } = rotated {
            self.emitter().emit(EventKind::Evicted { count }, Some(key), user);
        }
    }

    /// A login the per-user limit refused: nobody was signed in, and the
    /// cookie is left as it was. The anonymous session of a [`Step::Admit`]
    /// (whose key nobody knows) is deleted, whatever the delete answers.
    async fn refused(
        &self,
        rotation: &Rotation,
        rotating: Rotating<'_>,
        old: &StorageKey,
        user: Option<&str>,
    ) -> Outcome {
        let key = match rotating {
            Rotating::Session(_) => Some(old),
            Rotating::Admitted => {
                let store = self.shared.store();
                let _ = self.shared.timed(self.emitter(), "delete", Some(old), store.delete(old, self.now)).await;
                None
            }
        };
        self.emitter().emit(EventKind::LoginRefused, key, user);
        let max = rotation.login.as_ref().and_then(|l| l.limit).map_or(0, |l| l.max.get());
        Outcome::failed_with(SessionError::TooManySessions { max })
    }

    /// Moves the user's cutoff forward (after the write: see [`Cut`]).
    async fn cut(&self, cut: &Cut) -> Result<(), SessionError> {
        cut_user(&self.shared, self.emitter(), cut, self.now).await
    }

    /// The reply when the session under `key` turned out to be ended: the
    /// removal cookie only if `key` is the presented one. A successor reached
    /// through a retired ID (an alias, or a renewal that moved on) may have
    /// been replaced in the browser by another session's cookie since.
    fn ended(&self, key: &StorageKey) -> Reply {
        match &self.presented {
            Some((_, presented)) if presented == key => Reply::Remove,
            _ => Reply::Plain,
        }
    }

    /// The outcome of a commit that made the new ID `id`: its token header.
    fn issued(&self, id: SessionId, max_age: Option<u64>) -> Outcome {
        Outcome { token_header: Some(issue(&self.shared.config, &self.shared.keys, &id, max_age)), error: None }
    }
}

/// The headers of a reply that sets no new ID: nothing, the presented ID
/// again, or the removal cookie.
pub(crate) fn reply_outcome(shared: &Shared, presented: Option<&SessionId>, reply: Reply) -> Outcome {
    let config = &shared.config;
    let token_header = match (reply, presented) {
        (Reply::Plain, _) | (Reply::Reissue(_), None) => None,
        (Reply::Reissue(age), Some(id)) => Some(issue(config, &shared.keys, id, age)),
        (Reply::Remove, _) => Some(drop_token(config)),
    };
    Outcome { token_header, error: None }
}

/// Moves `cut.user`'s credential epoch to `cut.epoch` at `now` (a store
/// request's cutoff, and an encrypted cookie session's: `sealed.rs`).
pub(crate) async fn cut_user(shared: &Shared, emit: Emitter<'_>, cut: &Cut, now: u64) -> Result<(), SessionError> {
    let cutoffs = shared.cutoffs()?;
    let keep_until = shared.config.cutoff_kept_until(cut.epoch);
    let call = cutoffs.cut(Scope::User(&cut.user), cut.epoch, keep_until, now);
    shared.timed(emit, "cut", None, call).await.map_err(SessionError::Save)?;
    emit.emit(EventKind::CutOff { all: false }, None, Some(&cut.user));
    Ok(())
}

/// Whose ID a rotation renews.
#[derive(Debug, Clone, Copy)]
enum Rotating<'a> {
    /// The request's session, for this reason.
    Session(&'a Renewal),
    /// The anonymous session a login under the per-user limit has just
    /// created ([`Step::Admit`]): no other request knows its key.
    Admitted,
}

/// A new ID the store accepts as the successor of `old`.
pub(crate) fn successor_id(shared: &Shared, old: &StorageKey) -> Result<(SessionId, StorageKey), SessionError> {
    for _ in 0..MAX_DRAWS {
        let id = SessionId::generate()?;
        let key = id.storage_key();
        if shared.store().accepts_successor(old, &key) {
            return Ok((id, key));
        }
    }
    Err(SessionError::Save(StoreError::Backend("the store accepted no successor id".into())))
}

/// A store failure while saving.
fn failed(e: StoreError) -> Outcome {
    Outcome::failed_with(SessionError::Save(e))
}

/// Adds the outcome's headers to the handler's response, or replaces it
/// with the save-error response.
///
/// The save-error response still carries a new ID that the store already
/// committed to (a renewal done before a later step failed: the cutoff of
/// [`Session::credentials_changed`](crate::Session::credentials_changed)):
/// the rotation retired the client's old ID, so without it the client
/// would be signed out, and its renewed session left without a client.
pub(crate) fn finish<B: Default + 'static>(mut res: Response<B>, outcome: Outcome, shared: &Shared) -> Response<B> {
    if let Some(err) = outcome.error {
        // A change past the data cap is the client's (413), not the server's.
        let err = match err {
            SessionError::Save(StoreError::TooLarge) => SessionError::TooLarge { max: shared.config.max_data_bytes },
            err => err,
        };
        let mut res = error_response(shared, err);
        if outcome.token_header.is_some() {
            // A cookie that is not a valid header was refused when first
            // built; the error response stands either way.
            let _ = finish_headers(&mut res, &shared.config, outcome.token_header);
        }
        return res;
    }
    if !finish_headers(&mut res, &shared.config, outcome.token_header) {
        return error_response(shared, SessionError::Save(StoreError::Codec("invalid cookie header".into())));
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The commit future is boxed once per committing request.
    #[test]
    fn the_boxed_commit_stays_small() {
        let layer = crate::SessionLayer::new(crate::store::MemoryStore::default(), crate::Keys::generate().unwrap());
        let commit = Commit {
            shared: Arc::clone(&layer.shared),
            step: Step::Reply(Reply::Plain),
            presented: None,
            now: 0,
            lease: None,
            cut: None,
            events: None,
        };
        let fut = commit.respond(Response::new(axum::body::Body::empty()));
        // One allocation per committing request: it stays within the
        // sizes glibc serves from its per-thread cache (1032 bytes).
        assert!(std::mem::size_of_val(&fut) <= 1024, "the commit future is {} bytes", std::mem::size_of_val(&fut));
    }
}
