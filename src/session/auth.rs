//! Who the session belongs to: login (with the login data policy),
//! renewal, logout, "remember me" and the authentication facts.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::Session;
use crate::{
    clock::ms,
    lifecycle::state::{Cut, Phase},
    record::Auth,
    SessionError,
};

/// Longest user agent kept in a session's metadata.
const MAX_USER_AGENT: usize = 256;

impl Session {
    /// The authenticated user, if any.
    ///
    /// # Errors
    ///
    /// A store failure while loading.
    ///
    /// ```
    /// # use sessionware::{Session, SessionError};
    /// async fn handler(session: Session) -> Result<String, SessionError> {
    ///     Ok(session.user().await?.unwrap_or_else(|| "anonymous".into()))
    /// }
    /// ```
    pub async fn user(&self) -> Result<Option<String>, SessionError> {
        let state = self.ensure_loaded().await?;
        Ok(state.view.as_ref().and_then(|r| r.meta.auth.as_ref()).map(|a| a.user.clone()))
    }

    /// When the user authenticated, if a user is logged in.
    ///
    /// # Errors
    ///
    /// A store failure while loading.
    ///
    /// ```
    /// # use sessionware::{Session, SessionError};
    /// async fn handler(session: Session) -> Result<String, SessionError> {
    ///     Ok(format!("{:?}", session.auth_time().await?))
    /// }
    /// ```
    pub async fn auth_time(&self) -> Result<Option<SystemTime>, SessionError> {
        let state = self.ensure_loaded().await?;
        Ok(state.view.as_ref().and_then(|r| r.meta.auth.as_ref()).map(|a| UNIX_EPOCH + Duration::from_millis(a.at_ms)))
    }

    /// Fails with [`SessionError::ReauthRequired`] unless a user logged in
    /// within `max_age`: guard sensitive actions with it.
    ///
    /// # Errors
    ///
    /// `ReauthRequired`, or a store failure while loading.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use sessionware::{Session, SessionError};
    /// async fn change_password(session: Session) -> Result<(), SessionError> {
    ///     session.require_recent_auth(Duration::from_secs(300)).await?;
    ///     Ok(())
    /// }
    /// ```
    pub async fn require_recent_auth(&self, max_age: Duration) -> Result<(), SessionError> {
        let now = self.now();
        let state = self.ensure_loaded().await?;
        let at = state.view.as_ref().and_then(|r| r.meta.auth.as_ref()).map(|a| a.at_ms);
        match at {
            Some(at) if now.saturating_sub(at) <= ms(max_age) => Ok(()),
            _ => Err(SessionError::ReauthRequired),
        }
    }

    /// Logs `user` in: records the user and the time in the reserved field
    /// that `insert` cannot reach, restarts the absolute timeout, and renews
    /// the session ID (fixation defence) in one atomic store operation.
    ///
    /// The login data policy: data stored before the login is dropped,
    /// except the keys listed by
    /// [`keep_on_login`](crate::SessionConfigBuilder::keep_on_login) (or by
    /// [`login_keeping`](Self::login_keeping) for one call), so nothing
    /// planted in an anonymous session carries into an authenticated one.
    /// When the session belonged to another user, nothing is kept; a
    /// re-authentication of the same user keeps everything.
    ///
    /// # Errors
    ///
    /// A store failure while loading.
    ///
    /// ```
    /// # use sessionware::{Session, SessionError};
    /// async fn login(session: Session) -> Result<(), SessionError> {
    ///     // ... after checking the password:
    ///     session.login("alice").await
    /// }
    /// ```
    pub async fn login(&self, user: impl Into<String>) -> Result<(), SessionError> {
        self.login_inner(user.into(), None, self.now()).await
    }

    /// Like [`login`](Self::login), but the keys that survive are the ones
    /// listed here instead of the configured ones: all other pre-login data
    /// is dropped.
    ///
    /// # Errors
    ///
    /// A store failure while loading.
    ///
    /// ```
    /// # use sessionware::{Session, SessionError};
    /// async fn login(session: Session) -> Result<(), SessionError> {
    ///     session.login_keeping("alice", &["cart"]).await
    /// }
    /// ```
    pub async fn login_keeping(&self, user: impl Into<String>, keep: &[&str]) -> Result<(), SessionError> {
        self.login_inner(user.into(), Some(keep), self.now()).await
    }

    /// The user's credentials changed (a new password, a removed second
    /// factor): every other session of the user ends at once, on its next
    /// request, on every process, and this one stays signed in under a new
    /// ID.
    ///
    /// Call it once the new credentials are in place (stored): "now" below
    /// is the time of this call, read from the clock, not the request's
    /// time, which was read when the handler first used the session, before
    /// the old password was checked and the new one stored (a sign-in with
    /// the old password in between would otherwise begin after the cutoff).
    ///
    /// When the response is sent, the session is renewed as by a new login
    /// of the same user (its data kept, its absolute timeout restarted,
    /// signed in now), and then the store's cutoff for the user moves to
    /// now: every session the user signed in to before this millisecond is
    /// ended, without listing them (see
    /// [`store::Cutoffs`](crate::store::Cutoffs)). The cutoff is made even if
    /// the request then logs out, or the renewal fails; a failure to make it
    /// turns the response into an error. A [`CutOff`](crate::EventKind::CutOff)
    /// event names the user.
    ///
    /// # Errors
    ///
    /// [`SessionError::NotAuthenticated`] when no user is signed in, or
    /// when a cutoff made after this request loaded its session ended it
    /// (another device's password change: the session is gone, and no
    /// cutoff is made); [`SessionError::Unsupported`] on a layer without
    /// [`Cutoffs`](crate::store::Cutoffs); a store failure while loading
    /// or reading the cutoffs.
    ///
    /// ```
    /// # use sessionware::{Session, SessionError};
    /// async fn change_password(session: Session) -> Result<(), SessionError> {
    ///     // ... after checking the old password and storing the new one:
    ///     session.credentials_changed().await
    /// }
    /// ```
    pub async fn credentials_changed(&self) -> Result<(), SessionError> {
        let cutoffs = self.shared().cutoffs()?;
        let (user, created_at, signed_in_at) = {
            let state = self.ensure_loaded().await?;
            let record = state.view.as_ref();
            let auth = record.and_then(|r| r.meta.auth.as_ref().map(|a| (a.user.clone(), r.meta.created_at, a.at_ms)));
            auth.ok_or(SessionError::NotAuthenticated)?
        };
        // Signed in now, and the cutoff now: of the user's sessions, it ends
        // all but this one (and any signed in within this millisecond).
        // Now is this call's time: the new credentials are in place, while
        // the request's time may be seconds older (read on the handler's
        // first use of the session, before it checked the old password and
        // stored the new one); a sign-in with the old password in between
        // began after the request's time but before this one.
        let now = self.shared().clock.now_ms().max(self.now());
        // A sign-in at this call's time would outlive every cutoff made
        // since the session was loaded (another device's password change):
        // a session one of them ended is not signed in again, and makes no
        // cutoff that would end the sessions signed in after it.
        let call = cutoffs.cutoff(Some(&user), now);
        let cutoff = self.shared().timed(self.emitter(), "cutoff", None, call).await.map_err(SessionError::Store)?;
        if cutoff.ends_times(created_at, Some(signed_in_at)) {
            self.state().ended_by_cutoff();
            return Err(SessionError::NotAuthenticated);
        }
        self.login_inner(user.clone(), None, now).await?;
        self.state().cut = Some(Cut { user, not_before: now });
        Ok(())
    }

    /// A login of `user` signed in at `at`.
    async fn login_inner(&self, user: String, keep: Option<&[&str]>, at: u64) -> Result<(), SessionError> {
        let now = self.now();
        let config = &self.shared().config;
        let mut state = self.ensure_loaded().await?;
        let previous = state.view.as_ref().and_then(|r| r.meta.user()).map(str::to_string);
        // The login data policy: a re-authentication of the same user keeps
        // the session's data; pre-login data survives only if listed; a
        // session of another user keeps nothing.
        let retain: Option<Vec<String>> = match previous {
            Some(p) if p == user => None,
            Some(_) => Some(Vec::new()),
            None => Some(match keep {
                Some(keep) => keep.iter().map(|k| (*k).to_string()).collect(),
                None => config.keep_on_login.clone(),
            }),
        };
        let client = self.client();
        let user_agent = client.and_then(|c| c.user_agent.as_ref()).and_then(|v| v.to_str().ok()).map(|ua| {
            let mut end = ua.len().min(MAX_USER_AGENT);
            while !ua.is_char_boundary(end) {
                end -= 1;
            }
            ua[..end].into()
        });
        let ip = client.and_then(|c| c.ip).map(|ip| coarse_ip(ip).into());
        let record = state.view_or_new(|| self.new_record(now));
        if let Some(retain) = &retain {
            record.data.retain(retain);
        }
        record.meta.auth = Some(Auth::new(user, at));
        record.meta.absolute_deadline = now.saturating_add(config.absolute_ms);
        record.meta.user_agent = user_agent;
        record.meta.ip = ip;
        state.login(retain);
        Ok(())
    }

    /// Gives the session a new ID (same data, same deadlines) when the
    /// response is sent, in one atomic store operation: the successor is
    /// built from the data as stored then, and the old ID is dead at once
    /// (a late request on it gets no removal cookie). Call it on every
    /// privilege change.
    ///
    /// # Errors
    ///
    /// A store failure while loading.
    ///
    /// ```
    /// # use sessionware::{Session, SessionError};
    /// async fn elevate(session: Session) -> Result<(), SessionError> {
    ///     session.insert("role", "admin").await?;
    ///     session.renew().await
    /// }
    /// ```
    pub async fn renew(&self) -> Result<(), SessionError> {
        self.ensure_loaded().await?.renew();
        Ok(())
    }

    /// Ends the session (logout): the record is deleted from the store before
    /// the response is sent, and a removal cookie built from the same settings
    /// goes to a client that presented a session cookie. Values inserted after
    /// `purge` start a new session under a new ID.
    ///
    /// # Errors
    ///
    /// [`SessionError::Committed`] once the response was sent (the logout
    /// would not happen). A store failure while deleting turns the response
    /// into an error (500).
    ///
    /// ```
    /// # use sessionware::{Session, SessionError};
    /// async fn logout(session: Session) -> Result<(), SessionError> {
    ///     session.purge().await
    /// }
    /// ```
    pub async fn purge(&self) -> Result<(), SessionError> {
        // Even when loading failed (or never happened) the record is deleted.
        let mut state = self.state();
        if matches!(state.phase, Phase::Committed) {
            return Err(SessionError::Committed);
        }
        state.purge();
        Ok(())
    }

    /// Makes the cookie persistent ("remember me": it gets a `Max-Age` up to
    /// the absolute deadline) or a browser-session cookie again.
    ///
    /// # Errors
    ///
    /// A store failure while loading.
    ///
    /// ```
    /// # use sessionware::{Session, SessionError};
    /// async fn remember_me(session: Session) -> Result<(), SessionError> {
    ///     session.set_persistent(true).await
    /// }
    /// ```
    pub async fn set_persistent(&self, persistent: bool) -> Result<(), SessionError> {
        let now = self.now();
        let mut state = self.ensure_loaded().await?;
        let record = state.view_or_new(|| self.new_record(now));
        if record.meta.persistent != persistent {
            record.meta.persistent = persistent;
            state.changes.persistent = Some(persistent);
            state.changed();
        }
        Ok(())
    }
}

/// IPv4 /24 or IPv6 /48, as text.
fn coarse_ip(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        std::net::IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
        }
    }
}
