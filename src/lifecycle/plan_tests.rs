//! The commit plan, transition by transition: what the lookup found ×
//! what the request intends × the cookie, the time and the configuration.

use std::time::Duration;

use super::{
    plan::{plan, Presented, Reply, Step},
    state::{Creation, Intent, Origin, Phase, Renewal, State},
};
use crate::{Auth, LimitPolicy, Metadata, Record, SessionConfig, StorageKey, StoreError};

const T0: u64 = 1_000_000;
const MINUTE: u64 = 60_000;
const MINE: StorageKey = key(1);
const NEXT: StorageKey = key(2);

const fn key(b: u8) -> StorageKey {
    StorageKey::from_bytes([b; 32])
}

fn config() -> SessionConfig {
    SessionConfig::default()
}

fn renewing() -> SessionConfig {
    SessionConfig::builder()
        .renew_after(Duration::from_secs(600))
        .renew_overlap(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// A stored record created at `T0`, last seen `seen_ago` ms before `now`.
fn record(now: u64, seen_ago: u64) -> Record {
    let mut r = Record::new(Metadata::new(T0, 30 * MINUTE, 12 * 60 * MINUTE));
    r.meta.last_seen = now - seen_ago;
    r.meta.expires_at = now - seen_ago + 30 * MINUTE;
    r
}

fn loaded(origin: Origin, view: Option<Record>, intent: Intent) -> State {
    let mut s = State::default();
    s.loaded(origin, view);
    s.intent = intent;
    s
}

fn req(now: u64) -> Presented {
    Presented { cookie: true, key: Some(MINE), old_key: false, now }
}

fn run(mut s: State, r: Presented, c: &SessionConfig) -> Step {
    let step = plan(&mut s, &r, c);
    assert!(matches!(s.phase, Phase::Committed | Phase::Unloaded), "the plan takes the state: {:?}", s.phase);
    step
}

#[test]
fn an_unused_session_is_left_alone() {
    assert!(matches!(run(State::default(), req(T0), &config()), Step::Untouched));
}

#[test]
fn a_failed_lookup_fails_closed_but_a_logout_still_deletes() {
    let mut s = State { phase: Phase::Failed(Some(StoreError::Timeout)), ..State::default() };
    assert!(matches!(plan(&mut s, &req(T0), &config()), Step::LoadFailed(StoreError::Timeout)));
    let mut s = State { phase: Phase::Failed(Some(StoreError::Timeout)), ..State::default() };
    s.purge();
    assert!(matches!(plan(&mut s, &req(T0), &config()), Step::Purge { key: MINE, reply: Reply::Remove }));
}

#[test]
fn no_session_sets_no_cookie_and_an_ended_one_is_removed() {
    let none = Presented { cookie: false, key: None, old_key: false, now: T0 };
    assert!(matches!(run(loaded(Origin::Absent, None, Intent::Keep), none, &config()), Step::Reply(Reply::Plain)));
    let stale = run(loaded(Origin::Stale, None, Intent::Keep), req(T0), &config());
    assert!(matches!(stale, Step::Reply(Reply::Remove)));
    // A retired ID: its client may hold the successor's cookie already.
    let retired = run(loaded(Origin::Retired, None, Intent::Keep), req(T0), &config());
    assert!(matches!(retired, Step::Reply(Reply::Plain)));
    let renew_retired = run(loaded(Origin::Retired, None, Intent::Renew(Renewal::Privilege)), req(T0), &config());
    assert!(matches!(renew_retired, Step::Reply(Reply::Plain)));
}

#[test]
fn a_read_touches_only_past_the_touch_window() {
    let now = T0 + MINUTE;
    let recent = run(loaded(Origin::Live, Some(record(now, 1_000)), Intent::Keep), req(now), &config());
    assert!(matches!(recent, Step::Reply(Reply::Plain)));
    let due = run(loaded(Origin::Live, Some(record(now, 5 * MINUTE)), Intent::Keep), req(now), &config());
    match due {
        Step::Touch { key, expires_at, reply: Reply::Plain } => {
            assert_eq!(key, MINE);
            assert_eq!(expires_at, now + 30 * MINUTE);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_cookie_signed_by_an_old_key_is_set_again() {
    let now = T0 + MINUTE;
    let r = Presented { old_key: true, ..req(now) };
    let step = run(loaded(Origin::Live, Some(record(now, 1_000)), Intent::Keep), r, &config());
    assert!(matches!(step, Step::Reply(Reply::Reissue(None))));
}

#[test]
fn a_write_applies_its_changes_with_the_cap_and_the_new_deadline() {
    let now = T0 + MINUTE;
    let mut s = loaded(Origin::Live, Some(record(now, 1_000)), Intent::Write);
    s.changes.set("k", serde_json::value::to_raw_value(&1).unwrap());
    match run(s, req(now), &config()) {
        Step::Apply { key, changes, reply: Reply::Plain } => {
            assert_eq!(key, MINE);
            assert_eq!(changes.last_seen, now);
            assert_eq!(changes.expires_at, now + 30 * MINUTE);
            assert_eq!(changes.max_data_bytes, config().max_data_bytes);
            assert!(!changes.close_overlap);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn remember_me_reissues_the_cookie_with_max_age_up_to_the_absolute_deadline() {
    let now = T0 + MINUTE;
    let mut view = record(now, 1_000);
    view.meta.persistent = true;
    let mut s = loaded(Origin::Live, Some(view), Intent::Write);
    s.changes.persistent = Some(true);
    match run(s, req(now), &config()) {
        Step::Apply { reply: Reply::Reissue(Some(age)), .. } => assert_eq!(age, (12 * 60 * MINUTE - MINUTE) / 1000),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_first_request_on_a_successor_closes_the_overlap() {
    let now = T0 + MINUTE;
    let mut view = record(now, 1_000);
    view.meta.predecessor = Some(key(9));
    match run(loaded(Origin::Live, Some(view), Intent::Keep), req(now), &config()) {
        Step::Apply { key, changes, .. } => {
            assert_eq!(key, MINE);
            assert!(changes.close_overlap && changes.changes.is_empty());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_alias_works_on_the_successor_and_never_sets_a_cookie() {
    let now = T0 + MINUTE;
    let r = Presented { old_key: true, ..req(now) };
    let mut view = record(now, 5 * MINUTE);
    view.meta.predecessor = Some(MINE);
    match run(loaded(Origin::Alias(NEXT), Some(view.clone()), Intent::Keep), r, &config()) {
        Step::Touch { key, reply: Reply::Plain, .. } => assert_eq!(key, NEXT),
        other => panic!("{other:?}"),
    }
    let mut s = loaded(Origin::Alias(NEXT), Some(view), Intent::Write);
    s.changes.set("k", serde_json::value::to_raw_value(&1).unwrap());
    match run(s, r, &config()) {
        Step::Apply { key, changes, reply: Reply::Plain } => {
            assert_eq!(key, NEXT);
            assert!(!changes.close_overlap, "only the successor's own client closes the overlap");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_privilege_renewal_rotates_without_overlap() {
    let now = T0 + MINUTE;
    let mut s = loaded(Origin::Live, Some(record(now, 1_000)), Intent::Renew(Renewal::Privilege));
    s.changes.set("role", serde_json::value::to_raw_value(&"admin").unwrap());
    match run(s, req(now), &renewing()) {
        Step::Rotate { old, rotation, renewal: Renewal::Privilege, max_age: None } => {
            assert_eq!(old, MINE);
            assert_eq!(rotation.overlap_until, now, "no overlap");
            assert!(rotation.login.is_none() && rotation.retain.is_none());
            assert_eq!(rotation.changes.changes.len(), 1);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_login_rotates_with_the_user_and_the_retained_keys() {
    let now = T0 + MINUTE;
    let mut view = record(now, 1_000);
    view.meta.auth = Some(Auth::new("alice", now));
    view.meta.absolute_deadline = now + 12 * 60 * MINUTE;
    let retain = Some(vec!["cart".to_string()]);
    let s = loaded(Origin::Live, Some(view), Intent::Renew(Renewal::Login { retain: retain.clone() }));
    match run(s, req(now), &config()) {
        Step::Rotate { rotation, renewal: Renewal::Login { .. }, .. } => {
            let login = rotation.login.expect("a login");
            assert_eq!(login.auth.user, "alice");
            assert_eq!(login.absolute_deadline, now + 12 * 60 * MINUTE);
            assert_eq!(rotation.retain, retain);
            assert_eq!(rotation.overlap_until, now);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn periodic_renewal_starts_once_the_id_is_old_enough_with_a_bounded_overlap() {
    let young = T0 + 9 * MINUTE;
    let step = run(loaded(Origin::Live, Some(record(young, 1_000)), Intent::Keep), req(young), &renewing());
    assert!(matches!(step, Step::Reply(Reply::Plain)), "not yet: {step:?}");
    let old = T0 + 10 * MINUTE;
    match run(loaded(Origin::Live, Some(record(old, 1_000)), Intent::Write), req(old), &renewing()) {
        Step::Rotate { rotation, renewal: Renewal::Periodic, .. } => {
            assert_eq!(rotation.overlap_until, old + 20_000);
            assert!(rotation.login.is_none(), "renewal never moves the absolute deadline");
        }
        other => panic!("{other:?}"),
    }
    // Counted from the last renewal, not from creation.
    let mut view = record(old, 1_000);
    view.meta.renewed_at = Some(old - MINUTE);
    let step = run(loaded(Origin::Live, Some(view), Intent::Keep), req(old), &renewing());
    assert!(matches!(step, Step::Reply(Reply::Plain)));
    // Off by default; never through an alias (its client has no new cookie to receive).
    let step = run(loaded(Origin::Live, Some(record(old, 1_000)), Intent::Keep), req(old), &config());
    assert!(matches!(step, Step::Reply(Reply::Plain)));
    let step = run(loaded(Origin::Alias(NEXT), Some(record(old, 1_000)), Intent::Keep), req(old), &renewing());
    assert!(matches!(step, Step::Reply(Reply::Plain)));
}

#[test]
fn a_new_session_is_created_from_the_view_but_not_over_a_retired_cookie() {
    let now = T0;
    let none = Presented { cookie: false, key: None, old_key: false, now };
    let step = run(loaded(Origin::Absent, Some(record(now, 0)), Intent::Create(Creation::Anonymous)), none, &config());
    assert!(matches!(step, Step::Create { creation: Creation::Anonymous, purge_first: None, .. }));
    let step =
        run(loaded(Origin::Retired, Some(record(now, 0)), Intent::Create(Creation::Anonymous)), req(now), &config());
    assert!(matches!(step, Step::Reply(Reply::Plain)), "a late request must not replace the successor's cookie");
    let step = run(loaded(Origin::Retired, Some(record(now, 0)), Intent::Create(Creation::Login)), req(now), &config());
    assert!(matches!(step, Step::Create { creation: Creation::Login, .. }), "a login may");
}

#[test]
fn a_logout_deletes_and_removes_the_cookie_and_may_start_over() {
    let now = T0;
    let step = run(loaded(Origin::Live, None, Intent::Purge(None)), req(now), &config());
    assert!(matches!(step, Step::Purge { key: MINE, reply: Reply::Remove }));
    let none = Presented { cookie: false, key: None, old_key: false, now };
    let step = run(loaded(Origin::Absent, None, Intent::Purge(None)), none, &config());
    assert!(matches!(step, Step::Reply(Reply::Plain)));
    let step =
        run(loaded(Origin::Live, Some(record(now, 0)), Intent::Purge(Some(Creation::Anonymous))), req(now), &config());
    assert!(matches!(step, Step::Create { purge_first: Some(MINE), .. }));
}

fn limited() -> SessionConfig {
    SessionConfig::builder().max_sessions_per_user(2, LimitPolicy::RefuseNew).build().unwrap()
}

/// A view that `login("alice")` made on a request without a session.
fn logging_in(now: u64) -> Record {
    let mut view = record(now, 0);
    view.meta.auth = Some(Auth::new("alice", now));
    view.meta.user_agent = Some("agent".into());
    view
}

#[test]
fn under_a_limit_a_login_without_a_session_creates_it_anonymous_then_rotates_it_with_the_limit() {
    let now = T0;
    let none = Presented { cookie: false, key: None, old_key: false, now };
    let s = loaded(Origin::Absent, Some(logging_in(now)), Intent::Create(Creation::Login));
    match run(s, none, &limited()) {
        Step::Admit { record, rotation, purge_first: None, .. } => {
            assert!(record.meta.auth.is_none() && record.meta.user_agent.is_none(), "created without its user");
            let login = rotation.login.expect("the rotation logs the user in");
            assert_eq!(login.auth.user, "alice");
            assert_eq!(login.user_agent.as_deref(), Some("agent"));
            assert_eq!(login.limit, limited().session_limit(), "the store keeps the limit");
            assert_eq!(rotation.overlap_until, now, "no overlap: the anonymous ID is dead at once");
            assert_eq!(rotation.retain, None, "the created record holds the login's data already");
        }
        other => panic!("{other:?}"),
    }
    // Logout then login in one request: the old session is deleted first.
    let s = loaded(Origin::Live, Some(logging_in(now)), Intent::Purge(Some(Creation::Login)));
    assert!(matches!(run(s, req(now), &limited()), Step::Admit { purge_first: Some(MINE), .. }));
}

#[test]
fn a_limit_changes_only_logins() {
    let now = T0;
    let none = Presented { cookie: false, key: None, old_key: false, now };
    // Without a limit, a login without a session is one create.
    let s = loaded(Origin::Absent, Some(logging_in(now)), Intent::Create(Creation::Login));
    assert!(matches!(run(s, none, &config()), Step::Create { creation: Creation::Login, .. }));
    // A visitor's new session is no login.
    let s = loaded(Origin::Absent, Some(record(now, 0)), Intent::Create(Creation::Anonymous));
    assert!(matches!(run(s, none, &limited()), Step::Create { creation: Creation::Anonymous, .. }));
    // A login on a live session carries the limit in its rotation; other renewals do not.
    let s = loaded(Origin::Live, Some(logging_in(now)), Intent::Renew(Renewal::Login { retain: None }));
    match run(s, req(now), &limited()) {
        Step::Rotate { rotation, .. } => assert_eq!(rotation.login.and_then(|l| l.limit), limited().session_limit()),
        other => panic!("{other:?}"),
    }
    let s = loaded(Origin::Live, Some(logging_in(now)), Intent::Renew(Renewal::Privilege));
    assert!(matches!(run(s, req(now), &limited()), Step::Rotate { rotation, .. } if rotation.login.is_none()));
}
