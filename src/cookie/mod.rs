//! The session cookie, both ways: [`read`] finds and verifies it in a
//! request ([`sealed`] opens and seals the cookie of encrypted cookie
//! sessions); [`write`] decides every header a cookie layer adds to a response
//! (`Set-Cookie` with its `Max-Age`, the removal cookie, `Vary` and
//! `Cache-Control`). The attributes themselves (`Path`, `Domain`, `Secure`,
//! `HttpOnly`, `SameSite`) are validated and rendered once, when the
//! [`SessionConfig`](crate::SessionConfig) is built.

pub(crate) mod read;
pub(crate) mod sealed;
pub(crate) mod write;

pub(crate) use read::Incoming;
pub(crate) use write::max_age;
