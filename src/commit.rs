//! Writing a request's session changes back after the handler answered.

use std::sync::Arc;

use crate::{
    events,
    record::{ChangeSet, Record},
    session::{Phase, Shared},
    Session, SessionError, SessionId, StorageKey, StoreError,
};

/// How often a new ID is drawn when `create` reports a collision.
const CREATE_ATTEMPTS: usize = 3;

/// What the response needs after the handler answered.
// A short-lived stack value: boxing `Pending` would cost every committing
// request an allocation for nothing.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Plan {
    /// The session was never touched: leave the response alone.
    Untouched,
    /// Loading failed: answer with the load-error response.
    LoadFailed(StoreError),
    /// Only headers to add; no store call.
    Ready(Outcome),
    /// Store calls to make first.
    Pending(Pending),
}

/// Headers or an error for the response of a request that used its
/// session (so the response always varies on the cookie).
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub(crate) set_cookie: Option<String>,
    pub(crate) error: Option<SessionError>,
}

pub(crate) struct Pending {
    shared: Arc<Shared>,
    now: u64,
    presented: bool,
    /// The incoming session's storage key: every step below that names a
    /// stored record names this one (kept once, so the boxed commit future
    /// stays small).
    key: Option<StorageKey>,
    /// Delete the record under `key`.
    delete_old: bool,
    /// A record to create under a new ID; whether it replaces the record
    /// under `key` (renewal); whether that is a login.
    create: Option<(Record, bool, bool)>,
    /// Changes to apply to the record under `key`.
    apply: Option<ChangeSet>,
    /// Slide the idle deadline of the record under `key` to this time.
    touch: Option<u64>,
    reissue: Option<(SessionId, Option<u64>)>,
    /// Release this lease on `key`.
    unlock: Option<String>,
    /// Send a removal cookie if nothing else sets one.
    removal: bool,
}

/// `Max-Age` of a persistent cookie: the time left to the absolute deadline.
fn max_age(record_persistent: bool, absolute_deadline: u64, now: u64) -> Option<u64> {
    record_persistent.then(|| absolute_deadline.saturating_sub(now) / 1000)
}

/// Takes the request's session state and decides what to do with it.
pub(crate) fn plan(session: &Session) -> Plan {
    let inner = &session.inner;
    let shared = &inner.shared;
    let mut guard = session.state();
    match &mut guard.phase {
        Phase::Unloaded => {
            if !guard.delete_old {
                return Plan::Untouched;
            }
        }
        Phase::Failed(err) => {
            let err = err.take().unwrap_or(StoreError::Backend("session load failed".into()));
            // A purge still deletes the record even though it could not be read.
            if !guard.delete_old {
                guard.phase = Phase::Failed(None);
                return Plan::LoadFailed(err);
            }
        }
        Phase::Loaded => {}
    }
    // Only the parts that are written back are taken out of the state; a
    // request that only read its session moves nothing.
    let st = &mut *guard;
    // Lingering clones of the handle (spawned tasks) see an unusable session.
    st.phase = Phase::Failed(None);

    let now = session.now();
    let config = &shared.config;
    let mut pending = Pending {
        shared: Arc::clone(shared),
        now,
        presented: session.resolved().presented,
        key: None,
        delete_old: false,
        create: None,
        apply: None,
        touch: None,
        reissue: None,
        unlock: None,
        removal: false,
    };
    let mut removal = false;
    let incoming = session.incoming();
    pending.key = incoming.map(|i| i.key);
    pending.unlock = st.lock_token.take().filter(|_| incoming.is_some());

    if st.delete_old {
        pending.delete_old = incoming.is_some();
        match st.record.take() {
            Some(record) if st.dirty => pending.create = Some((fresh(record, shared, now), false, false)),
            _ => removal = session.resolved().presented,
        }
    } else if st.exists {
        // `exists` implies both; the fallbacks only keep this total.
        let Some(incoming) = incoming else { return Plan::Pending(pending) };
        if st.renew {
            let Some(mut record) = st.record.take() else { return Plan::Pending(pending) };
            record.meta.last_seen = now;
            record.meta.expires_at = shared.expires_at(now, record.meta.absolute_deadline);
            pending.create = Some((record, true, st.login));
        } else {
            let Some(record) = &st.record else { return Plan::Pending(pending) };
            let persistent_changed = st.changes.persistent.is_some();
            if st.dirty {
                let mut changes = std::mem::take(&mut st.changes);
                changes.last_seen = now;
                changes.expires_at = shared.expires_at(now, record.meta.absolute_deadline);
                pending.apply = Some(changes);
            } else if now.saturating_sub(record.meta.last_seen) >= config.touch_after_ms {
                pending.touch = Some(shared.expires_at(now, record.meta.absolute_deadline));
            }
            if incoming.reissue || persistent_changed {
                let age = max_age(record.meta.persistent, record.meta.absolute_deadline, now);
                pending.reissue = Some((incoming.id.clone(), age));
            }
        }
    } else {
        match st.record.take() {
            Some(record) if st.dirty => pending.create = Some((fresh(record, shared, now), false, st.login)),
            _ => removal = st.stale && session.resolved().presented,
        }
    }

    let nothing = !pending.delete_old
        && pending.create.is_none()
        && pending.apply.is_none()
        && pending.touch.is_none()
        && pending.unlock.is_none();
    if nothing {
        let set_cookie = if removal {
            Some(config.removal.clone())
        } else {
            pending.reissue.take().map(|(id, age)| config.session_cookie(&shared.keys, &id, age))
        };
        return Plan::Ready(Outcome { set_cookie, error: None });
    }
    pending.removal = removal;
    Plan::Pending(pending)
}

/// A record about to be created for the first time: its clock starts now.
fn fresh(mut record: Record, shared: &Shared, now: u64) -> Record {
    record.meta.last_seen = now;
    record.meta.expires_at = shared.expires_at(now, record.meta.absolute_deadline);
    record
}

impl Pending {
    /// Runs the store calls, then adds their headers to `res` (or replaces
    /// it with the save-error response).
    /// Then releases the exclusive lease if this request held one.
    ///
    /// An `async` block rather than an `async fn`: the block uses `self` and
    /// `res` in place, where an `async fn` would keep a second copy of its
    /// arguments in the future (rust-lang/rust#62958), which is boxed.
    #[allow(clippy::manual_async_fn)]
    pub(crate) fn respond<B: Default + Send>(
        self,
        res: http::Response<B>,
    ) -> impl std::future::Future<Output = http::Response<B>> + Send {
        async move {
            let mut out = self.write().await;
            let shared = &*self.shared;
            if let (Some(key), Some(token)) = (&self.key, &self.unlock) {
                // A failed unlock only delays others until the lease runs out.
                let _ = shared.timed("unlock", Some(key), shared.store().unlock(key, token)).await;
            }
            if out.set_cookie.is_none() && out.error.is_none() && self.removal {
                out.set_cookie = Some(shared.config.removal.clone());
            }
            crate::future::finish(res, out, shared)
        }
    }

    async fn write(&self) -> Outcome {
        let shared = &*self.shared;
        let config = &shared.config;
        let store = shared.store();
        let mut out = Outcome::default();

        if let (true, Some(key)) = (self.delete_old, &self.key) {
            if let Err(e) = shared.timed("delete", Some(key), store.delete(key)).await {
                out.error = Some(SessionError::Save(e));
                return out;
            }
            events::purged(key);
            if self.create.is_none() && self.presented {
                out.set_cookie = Some(config.removal.clone());
            }
        }

        if let Some((record, replaces, login)) = &self.create {
            let old = self.key.as_ref().filter(|_| *replaces);
            let mut created = None;
            for _ in 0..CREATE_ATTEMPTS {
                let id = match SessionId::generate() {
                    Ok(id) => id,
                    Err(e) => {
                        out.error = Some(e);
                        return out;
                    }
                };
                let key = id.storage_key();
                match shared.timed("create", Some(&key), store.create(&key, record)).await {
                    Ok(true) => {
                        created = Some((id, key));
                        break;
                    }
                    Ok(false) => continue,
                    Err(e) => {
                        out.error = Some(SessionError::Save(e));
                        return out;
                    }
                }
            }
            let Some((id, key)) = created else {
                out.error = Some(SessionError::Save(StoreError::Backend("no unique session id after retries".into())));
                return out;
            };
            if let Some(old) = old {
                if let Err(e) = shared.timed("delete", Some(old), store.delete(old)).await {
                    // The old ID must not stay valid beside the new one: undo
                    // and fail rather than leave a fixation window open.
                    let _ = shared.timed("delete", Some(&key), store.delete(&key)).await;
                    out.error = Some(SessionError::Save(e));
                    return out;
                }
                events::renewed(old, &key, *login);
            } else {
                events::created(&key, *login);
            }
            let age = max_age(record.meta.persistent, record.meta.absolute_deadline, self.now);
            out.set_cookie = Some(config.session_cookie(&shared.keys, &id, age));
        }

        if let (Some(key), Some(changes)) = (&self.key, &self.apply) {
            match shared.timed("apply", Some(key), store.apply(key, changes)).await {
                Ok(true) => {}
                Ok(false) => {
                    // Ended by a concurrent request (logout, renewal): never
                    // resurrect it.
                    events::lost(key);
                    if self.presented {
                        out.set_cookie = Some(config.removal.clone());
                    }
                    return out;
                }
                Err(e) => {
                    out.error = Some(SessionError::Save(e));
                    return out;
                }
            }
        }

        if let (Some(key), Some(expires_at)) = (&self.key, &self.touch) {
            // A failed touch loses no data and weakens nothing (the session
            // only expires a little earlier), so the response stands.
            let _ = shared.timed("touch", Some(key), store.touch(key, self.now, *expires_at)).await;
        }

        if let Some((id, age)) = &self.reissue {
            out.set_cookie = Some(config.session_cookie(&shared.keys, id, *age));
        }
        out
    }
}
