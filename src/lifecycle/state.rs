//! The per-request session state: what the lookup found ([`Phase`],
//! [`Origin`]) and what the request intends ([`Intent`]), changed only
//! through the transitions below, so that no combination the commit cannot
//! handle can be built.

use crate::{ChangeSet, Record, StorageKey, StoreError};

/// Whether the request's session was looked up, and what was found.
#[derive(Debug, Default)]
pub(crate) enum Phase {
    /// Not looked up (yet): the handler has not read the session.
    #[default]
    Unloaded,
    /// Looked up.
    Loaded(Origin),
    /// The lookup failed; the error is taken by the commit once.
    Failed(Option<StoreError>),
    /// The commit took the state: the response is on its way, and the
    /// session can no longer change.
    Committed,
}

/// What the presented cookie named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// No verified session cookie.
    Absent,
    /// A verified cookie that names no session (unknown, ended or expired).
    Stale,
    /// A verified cookie naming a key that a rotation retired: no session,
    /// and never a removal cookie (it would clobber the successor's cookie).
    Retired,
    /// A live session under the presented key.
    Live,
    /// A live session reached through a retired key within its overlap
    /// (periodic renewal): the successor's key. The client keeps its old ID.
    Alias(StorageKey),
}

/// How a new session comes to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Creation {
    /// Data was set on a request without a session.
    Anonymous,
    /// [`Session::login`](crate::Session::login) on a request without a session.
    Login,
}

/// Why a live session gets a new ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Renewal {
    /// The layer's periodic renewal (`renew_after`): the old ID overlaps.
    Periodic,
    /// [`Session::renew`](crate::Session::renew): a privilege change, no overlap.
    Privilege,
    /// [`Session::login`](crate::Session::login): no overlap; only the
    /// listed keys of the stored data survive.
    Login {
        /// The keys of the stored data that survive the login (`None`: all).
        retain: Option<Vec<String>>,
    },
}

/// What the request intends to write back.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) enum Intent {
    /// Read only (or nothing): at most a throttled touch or a re-issued cookie.
    #[default]
    Keep,
    /// Merge the change set into the live session.
    Write,
    /// Give the live session a new ID, with the change set.
    Renew(Renewal),
    /// Create a session from the view (there was no live one).
    Create(Creation),
    /// End the presented session; then, if data was set afterwards, create
    /// a new one from the view.
    Purge(Option<Creation>),
}

/// A cutoff of the user's sessions to make once the request's own write is
/// done ([`Session::credentials_changed`](crate::Session::credentials_changed)):
/// after the rotation that re-signs the caller in, so that a concurrent
/// request on the caller's old ID finds a retired key (and no removal
/// cookie), not an ended session. It survives a later logout in the same
/// request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cut {
    pub(crate) user: String,
    /// The user's new credential epoch.
    pub(crate) epoch: u64,
}

/// The per-request state behind a [`Session`](crate::Session).
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) phase: Phase,
    /// The session as this request sees it; `None` while there is none.
    pub(crate) view: Option<Record>,
    /// Net changes against the stored data, written back per key.
    pub(crate) changes: ChangeSet,
    pub(crate) intent: Intent,
    /// The exclusive lease this request holds (its token).
    pub(crate) lease: Option<super::lease::Lease>,
    /// The user's cutoff to make after the write.
    pub(crate) cut: Option<Cut>,
    /// The user of the session the lookup found, and the credential epoch
    /// it was signed in under (the user's epoch then): a login of the same
    /// user later in this request is stamped no later than that (see
    /// `Session::login`), whatever the request did in between.
    pub(crate) loaded_auth: Option<(String, u64)>,
    /// The keys found undecodable in this request, under
    /// [`Undecodable::Absent`](crate::Undecodable::Absent): each is
    /// reported once (`Session::decode`).
    pub(crate) undecodable: Vec<Box<str>>,
    /// The loaded session was signed in from another client than this
    /// request's (client binding), until a login records this one.
    pub(crate) client_changed: Option<crate::binding::Mismatch>,
}

impl State {
    /// What the lookup found, if it succeeded.
    pub(crate) fn origin(&self) -> Option<Origin> {
        match self.phase {
            Phase::Loaded(o) => Some(o),
            _ => None,
        }
    }

    /// True when the request works on a live stored session (its own, or
    /// the successor it reaches within an overlap).
    pub(crate) fn is_live(&self) -> bool {
        matches!(self.origin(), Some(Origin::Live | Origin::Alias(_)))
            && matches!(self.intent, Intent::Keep | Intent::Write | Intent::Renew(_))
    }

    /// The stored key the request works on: the presented one, or the
    /// successor reached within an overlap.
    pub(crate) fn working_key(&self, presented: Option<&StorageKey>) -> Option<StorageKey> {
        match self.origin() {
            Some(Origin::Live) => presented.copied(),
            Some(Origin::Alias(key)) => Some(key),
            _ => None,
        }
    }

    /// Records the lookup's result (the first one wins).
    pub(crate) fn loaded(&mut self, origin: Origin, view: Option<Record>) {
        if matches!(self.phase, Phase::Unloaded) {
            self.phase = Phase::Loaded(origin);
            self.loaded_auth = view.as_ref().and_then(|v| v.meta.auth.as_ref()).map(|a| (a.user.clone(), a.epoch));
            self.view = view;
        }
    }

    /// The data or a flag changed: the view must exist (the caller created
    /// it with [`view_or_new`](Self::view_or_new) first).
    pub(crate) fn changed(&mut self) {
        self.intent = match std::mem::take(&mut self.intent) {
            Intent::Keep | Intent::Write if self.is_live_origin() => Intent::Write,
            Intent::Keep | Intent::Write => Intent::Create(Creation::Anonymous),
            Intent::Purge(None) => Intent::Purge(Some(Creation::Anonymous)),
            other => other,
        };
    }

    /// True when the request's write sets the session's absolute deadline
    /// (every store takes it whole from a creation or a login's rotation;
    /// a merge cannot move it).
    pub(crate) fn sets_deadline(&self) -> bool {
        matches!(self.intent, Intent::Create(_) | Intent::Purge(Some(_)) | Intent::Renew(Renewal::Login { .. }))
    }

    fn is_live_origin(&self) -> bool {
        matches!(self.origin(), Some(Origin::Live | Origin::Alias(_)))
    }

    /// The view, created empty (a new session) by `new` when there is none.
    pub(crate) fn view_or_new(&mut self, new: impl FnOnce() -> Record) -> &mut Record {
        self.view.get_or_insert_with(new)
    }

    /// A login: the view (created by the caller) already carries the user.
    /// `retain` lists the keys of the stored data that survive. On a live
    /// session it becomes a renewal (new ID); otherwise a creation.
    pub(crate) fn login(&mut self, retain: Option<Vec<String>>) {
        // Changes made before the login follow the same policy as the stored data.
        if let Some(keep) = &retain {
            self.changes.changes.retain(|(k, _)| keep.iter().any(|r| r == k));
        }
        self.intent = match std::mem::take(&mut self.intent) {
            Intent::Purge(_) => Intent::Purge(Some(Creation::Login)),
            Intent::Create(_) => Intent::Create(Creation::Login),
            _ if self.is_live_origin() => Intent::Renew(Renewal::Login { retain }),
            _ => Intent::Create(Creation::Login),
        };
    }

    /// An explicit renewal (privilege change): only a live session has an
    /// ID to renew; a login or a creation gets a new ID anyway.
    pub(crate) fn renew(&mut self) {
        self.intent = match std::mem::take(&mut self.intent) {
            Intent::Keep | Intent::Write | Intent::Renew(Renewal::Periodic) if self.is_live_origin() => {
                Intent::Renew(Renewal::Privilege)
            }
            other => other,
        };
    }

    /// A logout: the stored session is deleted at commit; the view and every
    /// pending change are dropped.
    pub(crate) fn purge(&mut self) {
        self.view = None;
        self.changes = ChangeSet::default();
        self.intent = Intent::Purge(None);
        if matches!(self.phase, Phase::Unloaded) {
            // Nothing to read any more: later reads see no session.
            self.phase = Phase::Loaded(Origin::Absent);
        }
    }

    /// A cutoff made after the lookup ended the session (seen by
    /// [`credentials_changed`](crate::Session::credentials_changed)): it is
    /// gone for this request too, but no removal cookie is sent, as for a
    /// retired ID: the same client's concurrent request (a password form
    /// submitted twice) may have renewed it, and the removal would replace
    /// that request's new cookie. A next request on the ID gets the removal.
    pub(crate) fn ended_by_cutoff(&mut self) {
        self.ended_meanwhile();
        self.phase = Phase::Loaded(Origin::Retired);
    }

    /// Another request ended the session while this one held it (seen
    /// after taking the lock): it is gone for this request too.
    pub(crate) fn ended_meanwhile(&mut self) {
        self.view = None;
        self.changes = ChangeSet::default();
        self.intent = Intent::Keep;
        self.phase = Phase::Loaded(Origin::Stale);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Metadata;

    fn state(origin: Origin) -> State {
        let mut s = State::default();
        let view = matches!(origin, Origin::Live | Origin::Alias(_)).then(|| Record::new(Metadata::new(0, 10, 20)));
        s.loaded(origin, view);
        s
    }

    fn new_record() -> Record {
        Record::new(Metadata::new(0, 10, 20))
    }

    #[test]
    fn a_change_writes_a_live_session_and_creates_otherwise() {
        for (origin, want) in [
            (Origin::Live, Intent::Write),
            (Origin::Alias(StorageKey::from_bytes([1; 32])), Intent::Write),
            (Origin::Absent, Intent::Create(Creation::Anonymous)),
            (Origin::Stale, Intent::Create(Creation::Anonymous)),
            (Origin::Retired, Intent::Create(Creation::Anonymous)),
        ] {
            let mut s = state(origin);
            s.view_or_new(new_record);
            s.changed();
            assert_eq!(s.intent, want, "{origin:?}");
        }
    }

    #[test]
    fn login_renews_a_live_session_and_creates_otherwise() {
        let mut s = state(Origin::Live);
        s.login(Some(vec!["cart".into()]));
        assert_eq!(s.intent, Intent::Renew(Renewal::Login { retain: Some(vec!["cart".into()]) }));
        let mut s = state(Origin::Stale);
        s.login(Some(vec![]));
        assert_eq!(s.intent, Intent::Create(Creation::Login));
        let mut s = state(Origin::Live);
        s.purge();
        s.login(None);
        assert_eq!(s.intent, Intent::Purge(Some(Creation::Login)), "logout then login: a new session");
    }

    #[test]
    fn login_drops_pending_changes_that_are_not_retained() {
        let mut s = state(Origin::Live);
        s.changes.set("cart", serde_json::value::to_raw_value(&1).unwrap());
        s.changes.set("secret", serde_json::value::to_raw_value(&2).unwrap());
        s.login(Some(vec!["cart".into()]));
        let keys: Vec<_> = s.changes.changes.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["cart"]);
    }

    #[test]
    fn renew_only_renews_a_live_session_and_outranks_periodic() {
        let mut s = state(Origin::Live);
        s.intent = Intent::Renew(Renewal::Periodic);
        s.renew();
        assert_eq!(s.intent, Intent::Renew(Renewal::Privilege));
        let mut s = state(Origin::Absent);
        s.renew();
        assert_eq!(s.intent, Intent::Keep);
        let mut s = state(Origin::Live);
        s.login(Some(vec![]));
        s.renew();
        assert_eq!(s.intent, Intent::Renew(Renewal::Login { retain: Some(vec![]) }), "a login stays a login");
    }

    #[test]
    fn purge_drops_everything_and_a_later_change_recreates() {
        let mut s = state(Origin::Live);
        s.changes.set("a", serde_json::value::to_raw_value(&1).unwrap());
        s.intent = Intent::Write;
        s.purge();
        assert!(s.view.is_none() && s.changes.is_empty());
        assert_eq!(s.intent, Intent::Purge(None));
        s.view_or_new(new_record);
        s.changed();
        assert_eq!(s.intent, Intent::Purge(Some(Creation::Anonymous)));
        assert!(!s.is_live());
    }

    #[test]
    fn purge_before_any_read_reads_as_no_session() {
        let mut s = State::default();
        s.purge();
        assert_eq!(s.origin(), Some(Origin::Absent));
        s.loaded(Origin::Live, Some(new_record()));
        assert!(s.view.is_none(), "a lookup after the purge does not bring the session back");
    }

    #[test]
    fn the_working_key_is_the_successor_within_an_overlap() {
        let mine = StorageKey::from_bytes([1; 32]);
        let successor = StorageKey::from_bytes([2; 32]);
        assert_eq!(state(Origin::Live).working_key(Some(&mine)), Some(mine));
        assert_eq!(state(Origin::Alias(successor)).working_key(Some(&mine)), Some(successor));
        assert_eq!(state(Origin::Retired).working_key(Some(&mine)), None);
    }
}
