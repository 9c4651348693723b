//! Whether a stored session is still alive: the one place that checks the
//! idle and absolute deadlines. The layer never trusts only the store's TTL
//! or the cookie's `Max-Age`: every lookup passes through here.
//!
//! A session's limits are those of its kind ([`SessionConfig::limits`]:
//! `meta.persistent` selects a remembered session's own). The stored
//! deadlines are upper bounds; the limits of the session's kind, counted
//! from its last activity and from its sign-in (or creation), are enforced
//! too, so a session switched back from "remember me" (or a stale write of
//! a concurrent request) never lives past the normal limits.

use crate::{Deadline, Metadata, SessionConfig};

/// When the session's absolute timeout started: its sign-in, or its
/// creation while anonymous (what the layer counts the stored deadline from).
fn anchor(meta: &Metadata) -> u64 {
    meta.auth.as_ref().map_or(meta.created_at, |a| a.at_ms)
}

/// The absolute deadline the session has under the limits of its kind.
pub(crate) fn absolute_deadline(meta: &Metadata, config: &SessionConfig) -> u64 {
    let limits = config.limits(meta.persistent);
    meta.absolute_deadline.min(anchor(meta).saturating_add(limits.absolute_ms))
}

/// The absolute deadline a session made persistent at `now` gets: its
/// sign-in (or creation) plus the persistent absolute timeout, never
/// shortening the one it has, never more than 400 days from now.
pub(crate) fn persistent_deadline(meta: &Metadata, now: u64, config: &SessionConfig) -> u64 {
    let granted = anchor(meta).saturating_add(config.limits(true).absolute_ms);
    meta.absolute_deadline.max(granted).min(now.saturating_add(crate::config::MAX_TIMEOUT_MS))
}

/// The idle deadline of activity at `now` under the session's limits,
/// never past its absolute deadline.
pub(crate) fn expires_at(meta: &Metadata, now: u64, config: &SessionConfig) -> u64 {
    let limits = config.limits(meta.persistent);
    now.saturating_add(limits.idle_ms).min(absolute_deadline(meta, config))
}

/// True when the session is past its absolute deadline at `now` (a session
/// switched back to the normal limits may be).
pub(crate) fn past_absolute(meta: &Metadata, now: u64, config: &SessionConfig) -> bool {
    now >= absolute_deadline(meta, config)
}

/// `Ok` while the session is alive at `now`; otherwise the deadline it passed.
pub(crate) fn check(meta: &Metadata, now: u64, config: &SessionConfig) -> Result<(), Deadline> {
    let idle = meta.expires_at.min(meta.last_seen.saturating_add(config.limits(meta.persistent).idle_ms));
    if past_absolute(meta, now, config) {
        Err(Deadline::Absolute)
    } else if now >= idle {
        Err(Deadline::Idle)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 24 * 3600 * 1000;

    #[test]
    fn deadlines_are_exclusive_and_absolute_wins() {
        let config = SessionConfig::default();
        let m = Metadata::new(0, 10, 100);
        assert_eq!(check(&m, 9, &config), Ok(()));
        assert_eq!(check(&m, 10, &config), Err(Deadline::Idle));
        let mut m = Metadata::new(0, 10, 100);
        m.expires_at = 200;
        assert_eq!(check(&m, 100, &config), Err(Deadline::Absolute));
    }

    #[test]
    fn the_limits_of_the_sessions_kind_bound_the_stored_deadlines() {
        let config = SessionConfig::default();
        // Stored as remembered (30 days idle, 90 absolute), then switched
        // back: the normal limits hold from the last activity and creation.
        let mut m = Metadata::new(0, 30 * DAY, 90 * DAY);
        assert_eq!(check(&m, 2 * 3600 * 1000, &config), Err(Deadline::Idle), "30 min normal idle");
        m.persistent = true;
        assert_eq!(check(&m, 2 * 3600 * 1000, &config), Ok(()));
        assert_eq!(check(&m, 30 * DAY, &config), Err(Deadline::Idle));
        m.persistent = false;
        m.last_seen = 13 * 3600 * 1000;
        assert_eq!(check(&m, 13 * 3600 * 1000, &config), Err(Deadline::Absolute), "12 h normal absolute");
    }

    #[test]
    fn a_persistent_deadline_counts_from_the_sign_in_and_never_shortens() {
        let config = SessionConfig::default();
        let mut m = Metadata::new(0, 1_000, 12 * 3600 * 1000);
        assert_eq!(persistent_deadline(&m, 5, &config), 90 * DAY);
        m.auth = Some(crate::Auth::new("alice", 10 * DAY));
        assert_eq!(persistent_deadline(&m, 11 * DAY, &config), 100 * DAY);
        m.absolute_deadline = 200 * DAY;
        assert_eq!(persistent_deadline(&m, 11 * DAY, &config), 200 * DAY, "never shortened");
        m.absolute_deadline = u64::MAX;
        assert_eq!(persistent_deadline(&m, 11 * DAY, &config), 411 * DAY, "never 400 days past now");
    }
}
