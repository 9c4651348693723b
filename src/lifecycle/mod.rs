//! The session lifecycle of one request, by stage: [`state`] (what the
//! request found and intends, changed only through its transitions),
//! [`plan`] (what to write back: a pure function, unit-tested transition by
//! transition), [`write`] (the store calls of that plan and the cookie they
//! lead to), [`expiry`] (the one place that decides whether a stored record
//! is still alive) and [`lease`] (an exclusive lease released even when a
//! request is dropped). On an encrypted-cookie-session layer, [`sealed`]
//! carries out the same plan on the record the cookie carried, and seals
//! the result into the cookie instead of calling a store.

pub(crate) mod expiry;
pub(crate) mod lease;
pub(crate) mod plan;
pub(crate) mod sealed;
pub(crate) mod state;
pub(crate) mod write;

#[cfg(test)]
mod plan_tests;
