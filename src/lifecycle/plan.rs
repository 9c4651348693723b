//! What a request writes back: a pure function of its [`State`], the
//! presented cookie, the time and the configuration. No I/O and no clock:
//! every transition is unit-tested in the table below.

use super::{
    expiry::expires_at,
    state::{Creation, Intent, Origin, Phase, Renewal, State},
};
use crate::{cookie::max_age, ChangeSet, Login, Metadata, Record, Rotation, SessionConfig, StorageKey, StoreError};

/// What the plan knows of the request besides its session state.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Presented {
    /// A cookie with the session's name was presented, valid or not.
    pub(crate) cookie: bool,
    /// The verified key of the presented cookie.
    pub(crate) key: Option<StorageKey>,
    /// The cookie verified under an older key of the ring: set it again.
    pub(crate) old_key: bool,
    /// The request's time (ms).
    pub(crate) now: u64,
}

/// The cookie decision when no new ID is issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reply {
    /// No `Set-Cookie` (the response still varies on the cookie).
    Plain,
    /// Set the presented ID again (signed by the current key, or with a
    /// changed `Max-Age`).
    Reissue(Option<u64>),
    /// The removal cookie.
    Remove,
}

/// The one step the commit takes.
#[derive(Debug)]
pub(crate) enum Step {
    /// The session was not used: the response is left alone.
    Untouched,
    /// The lookup failed: the load-error response.
    LoadFailed(StoreError),
    /// No store call.
    Reply(Reply),
    /// Slide the idle deadline of `key` (a read-only request past `touch_after`).
    Touch { key: StorageKey, expires_at: u64, reply: Reply },
    /// Merge `changes` into the session under `key`.
    Apply { key: StorageKey, changes: ChangeSet, reply: Reply },
    /// Create `record` under a new ID, after deleting `purge_first`.
    Create { record: Box<Record>, creation: Creation, purge_first: Option<StorageKey>, max_age: Option<u64> },
    /// A login on a request without a live session, under the per-user
    /// limit: create `record` (the session, anonymous) under a new ID, after
    /// deleting `purge_first`, then rotate it with `rotation`, whose login
    /// the store admits or refuses in one atomic step.
    Admit { record: Box<Record>, rotation: Box<Rotation>, purge_first: Option<StorageKey>, max_age: Option<u64> },
    /// Rotate the session under `old` to a new ID.
    Rotate { old: StorageKey, rotation: Box<Rotation>, renewal: Renewal, max_age: Option<u64> },
    /// Delete the session under `key` (a logout), then `reply`.
    Purge { key: StorageKey, reply: Reply },
}

/// Decides the commit step, taking what it writes out of `state`.
pub(crate) fn plan(state: &mut State, req: &Presented, config: &SessionConfig) -> Step {
    let now = req.now;
    let origin = match &mut state.phase {
        Phase::Unloaded | Phase::Committed => return Step::Untouched,
        Phase::Failed(err) => {
            let err = err.take().unwrap_or(StoreError::Backend("session load failed".into()));
            // A logout deletes even a session that could not be read.
            let step = match (&state.intent, req.key) {
                (Intent::Purge(_), Some(key)) => Step::Purge { key, reply: removal(req) },
                _ => Step::LoadFailed(err),
            };
            state.phase = Phase::Committed;
            return step;
        }
        Phase::Loaded(origin) => *origin,
    };
    let working = state.working_key(req.key.as_ref());
    // Lingering clones of the handle (spawned tasks) see a finished session.
    state.phase = Phase::Committed;
    let intent = std::mem::take(&mut state.intent);
    let view = state.view.take();
    let changes = std::mem::take(&mut state.changes);

    match intent {
        Intent::Purge(None) => match req.key {
            Some(key) => Step::Purge { key, reply: removal(req) },
            None => Step::Reply(removal(req)),
        },
        Intent::Purge(Some(creation)) => create(view, creation, req.key, origin, config, now),
        Intent::Create(creation) => create(view, creation, None, origin, config, now),
        Intent::Renew(renewal) => match (working, view) {
            (Some(old), Some(view)) => rotate(old, view, changes, renewal, config, now),
            _ => Step::Reply(stale_reply(origin, req)),
        },
        Intent::Keep | Intent::Write => {
            let (Some(key), Some(view)) = (working, view) else {
                return Step::Reply(stale_reply(origin, req));
            };
            let periodic = config
                .renew_after_ms
                .is_some_and(|after| origin == Origin::Live && now.saturating_sub(view.meta.id_issued_at()) >= after);
            if periodic {
                return rotate(key, view, changes, Renewal::Periodic, config, now);
            }
            write_back(key, &view, changes, origin, req, config)
        }
    }
}

/// A new session from the view, after deleting `purge_first` (a logout
/// earlier in the request).
fn create(
    view: Option<Record>,
    creation: Creation,
    purge_first: Option<StorageKey>,
    origin: Origin,
    config: &SessionConfig,
    now: u64,
) -> Step {
    let Some(record) = view else { return Step::Reply(Reply::Plain) };
    // A late request on a retired ID must not replace the successor's
    // cookie with a new anonymous session's; a login may.
    if origin == Origin::Retired && creation == Creation::Anonymous && purge_first.is_none() {
        return Step::Reply(Reply::Plain);
    }
    let mut record = fresh(record, config, now);
    let max_age = max_age(&record.meta, now, config);
    if let (Creation::Login, Some(_)) = (creation, config.session_limit) {
        // Only a rotation admits a login under the limit: the session is
        // created without its user, and the login renews it.
        let rotation = rotation(&record.meta, ChangeSet::default(), &Renewal::Login { retain: None }, config, now);
        record.meta.auth = None;
        record.meta.user_agent = None;
        record.meta.ip = None;
        return Step::Admit { record: Box::new(record), rotation: Box::new(rotation), purge_first, max_age };
    }
    Step::Create { record: Box::new(record), creation, purge_first, max_age }
}

/// A read or a write of the live session (not renewed).
fn write_back(
    key: StorageKey,
    view: &Record,
    mut changes: ChangeSet,
    origin: Origin,
    req: &Presented,
    config: &SessionConfig,
) -> Step {
    let now = req.now;
    // Through an alias the client keeps its old cookie: nothing to set.
    let reply = if origin == Origin::Live && (req.old_key || changes.persistent.is_some()) {
        Reply::Reissue(max_age(&view.meta, now, config))
    } else {
        Reply::Plain
    };
    // The first request on a successor ends its predecessor's overlap.
    let close_overlap = origin == Origin::Live && view.meta.predecessor.is_some();
    if !changes.is_empty() || close_overlap {
        changes.last_seen = now;
        changes.expires_at = expires_at(&view.meta, now, config);
        changes.close_overlap = close_overlap;
        changes.max_data_bytes = config.max_data_bytes;
        return Step::Apply { key, changes, reply };
    }
    // A remembered session is touched after the same share of its own,
    // longer idle window.
    if now.saturating_sub(view.meta.last_seen) >= config.limits(view.meta.persistent).touch_after_ms {
        return Step::Touch { key, expires_at: expires_at(&view.meta, now, config), reply };
    }
    Step::Reply(reply)
}

/// A rotation of the session under `old`, built from the view's metadata
/// and the request's change set.
fn rotate(
    old: StorageKey,
    view: Record,
    changes: ChangeSet,
    renewal: Renewal,
    config: &SessionConfig,
    now: u64,
) -> Step {
    let rotation = rotation(&view.meta, changes, &renewal, config, now);
    let max_age = max_age(&view.meta, now, config);
    Step::Rotate { old, rotation: Box::new(rotation), renewal, max_age }
}

/// The rotation that gives a session described by `meta` (as the request
/// sees it) a new ID, with the request's change set; a login carries the
/// user, the client and the per-user limit.
fn rotation(meta: &Metadata, mut changes: ChangeSet, renewal: &Renewal, config: &SessionConfig, now: u64) -> Rotation {
    let login = match (renewal, &meta.auth) {
        (Renewal::Login { .. }, Some(auth)) => Some(Login {
            auth: auth.clone(),
            absolute_deadline: meta.absolute_deadline,
            user_agent: meta.user_agent.clone(),
            ip: meta.ip.clone(),
            limit: config.session_limit,
        }),
        _ => None,
    };
    changes.last_seen = now;
    changes.expires_at = expires_at(meta, now, config);
    // `persistent` travels only if this request changed it: the store keeps
    // whatever a concurrent "remember me" set.
    changes.max_data_bytes = config.max_data_bytes;
    let mut rotation = Rotation::new(now, changes);
    rotation.login = login;
    if let Renewal::Login { retain } = renewal {
        rotation.retain.clone_from(retain);
    }
    if *renewal == Renewal::Periodic && config.renew_overlap_ms > 0 {
        rotation.overlap_until = now.saturating_add(config.renew_overlap_ms);
    }
    rotation
}

/// A new record's clock starts now.
fn fresh(mut record: Record, config: &SessionConfig, now: u64) -> Record {
    record.meta.last_seen = now;
    record.meta.expires_at = expires_at(&record.meta, now, config);
    record.meta.predecessor = None;
    record
}

/// The removal cookie, for a client that presented a session cookie.
fn removal(req: &Presented) -> Reply {
    if req.cookie {
        Reply::Remove
    } else {
        Reply::Plain
    }
}

/// No live session: a cookie that named an unknown or ended one is
/// removed; one that named a retired key is left alone.
fn stale_reply(origin: Origin, req: &Presented) -> Reply {
    match origin {
        Origin::Stale => removal(req),
        _ => Reply::Plain,
    }
}
