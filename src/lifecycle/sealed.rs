//! Carrying out the commit [`Step`] of an encrypted-cookie-session layer
//! ([`CookieSessions`](crate::CookieSessions)): the cookie is the store.
//!
//! The record the request presented (opened from its cookie) plays the
//! stored record, and each step is the store operation it stands for, on
//! that one record, with the same functions a store uses: a write is
//! [`Record::try_apply`] (the data cap holds on the merged record), a
//! renewal or a login is [`Rotation::successor`](crate::Rotation::successor)
//! (the login data policy included), a creation is the new record, a
//! logout is the removal cookie. The result is sealed into the
//! `Set-Cookie`; a cookie past the 4,096-byte budget fails the commit with
//! [`SessionError::CookieTooLarge`] and sets nothing.

use std::sync::Arc;

use http::Response;

use super::{
    plan::{Reply, Step},
    state::{Creation, Cut, Renewal},
    write::{cut_user, finish, Outcome},
};
use crate::{
    cookie::{
        max_age,
        sealed::{fingerprint, Sealer, MAX_COOKIE_BYTES},
    },
    events::{Emitter, Route},
    shared::Shared,
    store::Capability,
    transport::drop_token,
    EventKind, Record, RenewReason, SessionError, StorageKey,
};

/// The headers (or the error) of `step` on a cookie-session layer.
/// `carried` is the record the presented cookie carried, `cut` the user's
/// cutoff this request makes after it (a new sign-in of that user is
/// stamped with the new epoch, so the cut does not end it).
pub(crate) fn outcome(
    shared: &Shared,
    sealer: &Sealer,
    step: &Step,
    carried: Option<&Record>,
    cut: Option<&Cut>,
    emit: Emitter<'_>,
    user: Option<&str>,
) -> Outcome {
    let now = emit.now;
    let config = &shared.config;
    let (mut record, event, old) = match step {
        Step::Untouched | Step::LoadFailed(_) | Step::Reply(Reply::Plain) => return Outcome::default(),
        Step::Reply(Reply::Remove) => return removal(shared),
        Step::Purge { key, reply } => {
            emit.emit(EventKind::Purged, Some(key), user);
            return match reply {
                Reply::Remove => removal(shared),
                _ => Outcome::default(),
            };
        }
        // The presented cookie again: sealed by an older key, or with a
        // changed `Max-Age`.
        Step::Reply(Reply::Reissue(_)) => match carried {
            Some(record) => (record.clone(), None, None),
            None => return Outcome::default(),
        },
        Step::Touch { expires_at, .. } => match carried {
            Some(record) => {
                let mut record = record.clone();
                record.meta.last_seen = record.meta.last_seen.max(now);
                record.meta.expires_at = (*expires_at).min(record.meta.absolute_deadline);
                (record, None, None)
            }
            None => return Outcome::default(),
        },
        Step::Apply { changes, .. } => match carried {
            Some(record) => {
                let mut record = record.clone();
                if let Err(e) = record.try_apply(changes) {
                    return failed(SessionError::Save(e));
                }
                (record, None, None)
            }
            None => return Outcome::default(),
        },
        Step::Create { record, creation, .. } => {
            let kind = if *creation == Creation::Login { EventKind::LoggedIn } else { EventKind::Created };
            ((**record).clone(), Some(kind), None)
        }
        Step::Rotate { old, rotation, renewal, .. } => match carried {
            Some(record) => match rotation.successor(record, old) {
                Ok(next) => {
                    let reason = match renewal {
                        Renewal::Periodic => RenewReason::Periodic,
                        Renewal::Privilege => RenewReason::Privilege,
                        Renewal::Login { .. } => RenewReason::Login,
                    };
                    (next, Some(EventKind::Renewed(reason)), Some(*old))
                }
                Err(e) => return failed(SessionError::Save(e)),
            },
            None => return Outcome::default(),
        },
        // The per-user limit needs a per-user index, which a cookie-session
        // layer refuses when it is configured; fail closed all the same.
        Step::Admit { .. } => return failed(SessionError::Unsupported(Capability::UserIndex)),
    };
    // No retired ID to alias: a renewal's old cookie is simply another
    // copy (see the revocation limits of `CookieSessions`).
    record.meta.predecessor = None;
    if let (Some(cut), Some(auth)) = (cut, record.meta.auth.as_mut()) {
        if auth.user == cut.user && auth.epoch < cut.epoch {
            auth.epoch = cut.epoch;
        }
    }
    let value = match sealer.seal(&config.name, &record) {
        Ok(value) => value,
        Err(e) => return failed(e),
    };
    let cookie = crate::cookie::write::sealed_cookie(config, &value, max_age(&record.meta, now, config));
    if cookie.len() > MAX_COOKIE_BYTES {
        if made_by_the_layer(step) {
            // Nothing the handler asked for is lost: the presented cookie
            // stays (its idle deadline does not slide; a session at the
            // budget's edge is not answered 413 on every read).
            tracing::warn!(
                target: "sessionware",
                event = "session.reseal_skipped",
                len = cookie.len(),
                max = MAX_COOKIE_BYTES,
                "the cookie the layer would reseal is over the budget: the presented one stays"
            );
            return Outcome::default();
        }
        return failed(SessionError::CookieTooLarge { len: cookie.len(), max: MAX_COOKIE_BYTES });
    }
    if let Some(kind) = event {
        let key: StorageKey = fingerprint(value.as_bytes());
        let user = record.meta.user().or(user);
        match (kind, old) {
            (EventKind::Renewed(reason), Some(old)) => emit.renewed(&old, &key, reason, user),
            _ => emit.emit(kind, Some(&key), user),
        }
    }
    Outcome { token_header: Some(cookie), error: None }
}

/// Whether `step` reseals the presented cookie for the layer's own reasons
/// (a re-issue under the first key, a touch, a periodic renewal) with no
/// change the handler made.
fn made_by_the_layer(step: &Step) -> bool {
    match step {
        Step::Reply(_) | Step::Touch { .. } => true,
        Step::Rotate { rotation, renewal: Renewal::Periodic, .. } => rotation.changes.is_empty(),
        _ => false,
    }
}

/// The cutoff a logout of an encrypted cookie session makes on a layer
/// with cutoffs: the user's epoch one past the one the session was signed
/// in under, which ends every copy of the cookie (and every other cookie
/// session of the user; see the revocation limits of `CookieSessions`).
/// The user is the loaded session's, or, for a logout that never read the
/// session, the presented cookie's while it is alive (an expired cookie
/// moves nothing; a cut one names an epoch the user has passed already,
/// and a cutoff never moves back).
pub(crate) fn logout_cut(
    step: &Step,
    loaded_auth: Option<&(String, u64)>,
    carried: Option<&Record>,
    now: u64,
    shared: &Shared,
) -> Option<Cut> {
    if !matches!(step, Step::Purge { .. } | Step::Create { purge_first: Some(_), .. }) {
        return None;
    }
    let presented = || {
        let record = carried.filter(|r| super::expiry::check(&r.meta, now, &shared.config).is_ok())?;
        record.meta.auth.as_ref().map(|a| (a.user.clone(), a.epoch))
    };
    let (user, epoch) = loaded_auth.cloned().or_else(presented)?;
    Some(Cut { user, epoch: epoch.saturating_add(1) })
}

/// The commit of a cookie-session request whose cookie is decided but
/// whose user's cutoff (a logout's, or
/// [`credentials_changed`](crate::Session::credentials_changed)'s) the
/// store must make first. A failed cutoff fails the response, which still
/// carries the cookie (as a store's commit does, see `write::finish`).
pub(crate) struct Cutting {
    shared: Arc<Shared>,
    outcome: Outcome,
    cut: Cut,
    route: Option<Route>,
    now: u64,
}

impl Cutting {
    pub(crate) fn new(shared: &Arc<Shared>, outcome: Outcome, cut: Cut, route: Option<&Route>, now: u64) -> Self {
        let route = shared.on_event.as_ref().and(route.cloned());
        Self { shared: Arc::clone(shared), outcome, cut, route, now }
    }

    /// Makes the cutoff; the outcome with its failure, if any.
    pub(crate) async fn run(self) -> Outcome {
        let emit = Emitter { hook: self.shared.on_event.as_ref(), route: self.route.as_ref(), now: self.now };
        let mut out = self.outcome;
        if let Err(e) = cut_user(&self.shared, emit, &self.cut, self.now).await {
            out.error.get_or_insert(e);
        }
        out
    }

    /// Makes the cutoff, then adds the headers to `res` (or replaces it
    /// with the save-error response).
    pub(crate) async fn respond<B: Default + Send + 'static>(self, res: Response<B>) -> Response<B> {
        let shared = Arc::clone(&self.shared);
        let out = self.run().await;
        finish(res, out, &shared)
    }
}

fn removal(shared: &Shared) -> Outcome {
    Outcome { token_header: Some(drop_token(&shared.config)), error: None }
}

fn failed(e: SessionError) -> Outcome {
    Outcome { token_header: None, error: Some(e) }
}
