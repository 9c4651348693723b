//! Who the session belongs to: login (with the login data policy),
//! renewal, logout, "remember me" and the authentication facts.

use std::time::{Duration, SystemTime};

use super::Session;
use crate::{
    binding::Client,
    clock::ms,
    lifecycle::{
        expiry,
        state::{Cut, Phase},
    },
    record::Auth,
    Assurance, AuthMethod, SessionError, SignIn,
};

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
        Ok(state.view.as_ref().and_then(|r| r.meta.auth.as_ref()).map(|a| crate::clock::system_time(a.at_ms)))
    }

    /// Fails with [`SessionError::ReauthRequired`] unless a user logged in
    /// within `max_age`: guard sensitive actions with it. Under
    /// [`BindingPolicy::RequireReauth`](crate::BindingPolicy::RequireReauth)
    /// it also fails, whatever the login's age, on a request from another
    /// client than the session was signed in from
    /// ([`client_changed`](Self::client_changed)).
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
        if state.client_changed.is_some_and(|m| m.requires_reauth()) {
            return Err(SessionError::ReauthRequired);
        }
        let at = state.view.as_ref().and_then(|r| r.meta.auth.as_ref()).map(|a| a.at_ms);
        match at {
            Some(at) if now.saturating_sub(at) <= ms(max_age) => Ok(()),
            _ => Err(SessionError::ReauthRequired),
        }
    }

    /// How this request's client differs from the one the session was
    /// signed in from (the user agent's family, the coarse network), if it
    /// does and [`client_binding`](crate::SessionConfigBuilder::client_binding)
    /// is on: for a page that says why a new sign-in is asked for. A login
    /// in this request records its client and clears it. Under
    /// [`BindingPolicy::End`](crate::BindingPolicy::End) the session is
    /// already gone when this reports the change.
    ///
    /// # Errors
    ///
    /// A store failure while loading.
    ///
    /// ```
    /// # use sessionware::{Session, SessionError};
    /// async fn why(session: Session) -> Result<&'static str, SessionError> {
    ///     Ok(match session.client_changed().await? {
    ///         Some(change) if change.user_agent => "signed in from another browser",
    ///         Some(_) => "signed in from another network",
    ///         None => "",
    ///     })
    /// }
    /// ```
    pub async fn client_changed(&self) -> Result<Option<crate::ClientChange>, SessionError> {
        Ok(self.ensure_loaded().await?.client_changed.map(|m| m.change))
    }

    /// Logs `user` in: records the user, the time and (on a layer with
    /// [`Cutoffs`](crate::store::Cutoffs), one store read) the user's
    /// credential epoch in the reserved field that `insert` cannot reach, restarts the absolute timeout, and renews
    /// the session ID (fixation defence) in one atomic store operation.
    ///
    /// The login data policy: data stored before the login is dropped,
    /// except the keys listed by
    /// [`keep_on_login`](crate::SessionConfigBuilder::keep_on_login) (or by
    /// [`login_keeping`](Self::login_keeping) for one call), so nothing
    /// planted in an anonymous session carries into an authenticated one.
    /// When the session belonged to another user, nothing is kept; a
    /// re-authentication of the same user keeps everything but the CSRF
    /// secret, which every login replaces (R11: tokens from before it stop
    /// verifying; see [`csrf_token`](Self::csrf_token)).
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
        self.login_inner(SignIn::new(user), self.now(), None).await
    }

    /// Logs a user in as [`login`](Self::login) does, recording how they
    /// authenticated: the methods, the assurance level (given, or derived
    /// from the methods) and the identity provider's session, if any (for
    /// [`SessionControl::end_provider_sessions`](crate::SessionControl::end_provider_sessions)).
    /// They are stored with the user on every store, read back with
    /// [`authentication`](Self::authentication), required by
    /// [`require_assurance`](Self::require_assurance) and the
    /// [`RequireAssurance`](crate::guard::RequireAssurance) guard, and listed
    /// in [`SessionInfo`](crate::SessionInfo). Keys to keep are given with
    /// [`SignIn::keeping`]. Every sign-in replaces the record of the one
    /// before (a sign-in by password alone after a multi-factor one is at
    /// `Aal1`); only [`step_up`](Self::step_up) adds to it, and
    /// [`credentials_changed`](Self::credentials_changed) keeps it.
    ///
    /// # Errors
    ///
    /// A store failure while loading.
    ///
    /// ```
    /// # use sessionware::{AuthMethod, ProviderSession, Session, SessionError, SignIn};
    /// async fn password_and_totp(session: Session) -> Result<(), SessionError> {
    ///     // ... after checking both:
    ///     session.login_with(SignIn::new("alice").method(AuthMethod::Password).method(AuthMethod::Totp)).await
    /// }
    /// async fn oidc_callback(session: Session, sub: String, iss: String, sid: Option<String>) -> Result<(), SessionError> {
    ///     // ... after validating the ID token:
    ///     let provider = ProviderSession::new(iss, sid);
    ///     session.login_with(SignIn::new(sub).method(AuthMethod::Federated).provider_session(provider)).await
    /// }
    /// ```
    pub async fn login_with(&self, sign_in: SignIn) -> Result<(), SessionError> {
        self.login_inner(sign_in, self.now(), None).await
    }

    /// The signed-in user's sign-in record: the user, when they
    /// authenticated, the methods, the assurance level and the identity
    /// provider's session; `None` when nobody is signed in.
    ///
    /// # Errors
    ///
    /// A store failure while loading.
    ///
    /// ```
    /// # use sessionware::{Session, SessionError};
    /// async fn level(session: Session) -> Result<String, SessionError> {
    ///     Ok(session.authentication().await?.map_or("anonymous".into(), |auth| auth.assurance().to_string()))
    /// }
    /// ```
    pub async fn authentication(&self) -> Result<Option<Auth>, SessionError> {
        let state = self.ensure_loaded().await?;
        Ok(state.view.as_ref().and_then(|r| r.meta.auth.clone()))
    }

    /// Fails with [`SessionError::StepUpRequired`] unless the signed-in
    /// user's sign-in reached `level` ([`SessionError::NotAuthenticated`]
    /// when nobody is signed in): guard what needs multi-factor
    /// authentication with it, and answer the error with the page that asks
    /// for the second factor, then [`step_up`](Self::step_up).
    ///
    /// # Errors
    ///
    /// `StepUpRequired`, `NotAuthenticated`, or a store failure while loading.
    ///
    /// ```
    /// # use sessionware::{Assurance, Session, SessionError};
    /// async fn payout(session: Session) -> Result<(), SessionError> {
    ///     session.require_assurance(Assurance::Aal2).await?;
    ///     Ok(())
    /// }
    /// ```
    pub async fn require_assurance(&self, level: Assurance) -> Result<(), SessionError> {
        let state = self.ensure_loaded().await?;
        match state.view.as_ref().and_then(|r| r.meta.auth.as_ref()) {
            None => Err(SessionError::NotAuthenticated),
            Some(auth) if auth.assurance() >= level => Ok(()),
            Some(_) => Err(SessionError::StepUpRequired),
        }
    }

    /// A step-up: the signed-in user authenticated again with `method` (a
    /// second factor, after a password-only sign-in). The method is added
    /// to the sign-in's, the level rises to what the methods now reach
    /// ([`Assurance::from_methods`]; never lower than before), and the
    /// session is signed in again as by a [`login`](Self::login) of the same
    /// user: the authentication time is now (so it counts for
    /// [`require_recent_auth`](Self::require_recent_auth)), the data is
    /// kept, the session ID is renewed in one atomic store operation (the
    /// old ID is dead at once), and the CSRF secret is replaced. The
    /// identity provider's session, if one was recorded, stays linked.
    ///
    /// # Errors
    ///
    /// [`SessionError::NotAuthenticated`] when nobody is signed in; a store
    /// failure while loading.
    ///
    /// ```
    /// # use sessionware::{AuthMethod, Session, SessionError};
    /// async fn verify_totp(session: Session) -> Result<(), SessionError> {
    ///     // ... after checking the code for the signed-in user:
    ///     session.step_up(AuthMethod::Totp).await
    /// }
    /// ```
    pub async fn step_up(&self, method: AuthMethod) -> Result<(), SessionError> {
        self.step_up_inner(method, None).await
    }

    /// [`step_up`](Self::step_up) with the level set by the application
    /// (never lowered: the higher of it and the level before): for a method
    /// worth more than its count, such as a hardware security key (`Aal3`).
    ///
    /// # Errors
    ///
    /// As [`step_up`](Self::step_up).
    ///
    /// ```
    /// # use sessionware::{Assurance, AuthMethod, Session, SessionError};
    /// async fn verify_key(session: Session) -> Result<(), SessionError> {
    ///     // ... after verifying the WebAuthn assertion:
    ///     session.step_up_to(AuthMethod::WebAuthn, Assurance::Aal3).await
    /// }
    /// ```
    pub async fn step_up_to(&self, method: AuthMethod, level: Assurance) -> Result<(), SessionError> {
        self.step_up_inner(method, Some(level)).await
    }

    async fn step_up_inner(&self, method: AuthMethod, level: Option<Assurance>) -> Result<(), SessionError> {
        let auth = {
            let state = self.ensure_loaded().await?;
            state.view.as_ref().and_then(|r| r.meta.auth.clone()).ok_or(SessionError::NotAuthenticated)?
        };
        let mut sign_in = SignIn::new(auth.user.clone());
        sign_in.methods = auth.methods().to_vec();
        sign_in = sign_in.method(method);
        let reached = level.unwrap_or_else(|| Assurance::from_methods(&sign_in.methods));
        sign_in.assurance = Some(reached.max(auth.assurance()));
        sign_in.provider = auth.provider().cloned();
        // R10: a finished step-up is a privilege change: a re-login of the
        // same user renews the ID (and, R11, the CSRF secret).
        self.login_inner(sign_in, self.now(), None).await
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
        self.login_inner(SignIn::new(user).keeping(keep), self.now(), None).await
    }

    /// The user's credentials changed (a new password, a removed second
    /// factor): every other session of the user ends at once, on its next
    /// request, on every process, and this one stays signed in under a new
    /// ID.
    ///
    /// Call it once the new credentials are in place (stored). It reads the
    /// user's credential epoch `e` from the store (every login stamps its
    /// session with the epoch it read). When the response is sent, the
    /// session is renewed as by a new login of the same user (its data
    /// kept, its absolute timeout restarted, signed in now under epoch
    /// `e + 1`), and then the user's epoch in the store moves to `e + 1`:
    /// every session the user signed in to under an earlier epoch (a
    /// sign-in with the old password that raced this change included) is
    /// ended, without listing them (see
    /// [`store::Cutoffs`](crate::store::Cutoffs)). No clock is compared. A
    /// second submission of the same change reads the same epoch and keeps
    /// the caller signed in. The cutoff is made even if
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
        let (auth, created_at) = {
            let state = self.ensure_loaded().await?;
            let record = state.view.as_ref();
            let auth = record.and_then(|r| r.meta.auth.as_ref().map(|a| (a.clone(), r.meta.created_at)));
            auth.ok_or(SessionError::NotAuthenticated)?
        };
        let (user, epoch) = (auth.user.clone(), auth.epoch);
        // The user's epoch now, read once the new credentials are in place
        // (this call): a session that a cutoff made since this request loaded
        // it ended (another device's password change) is not signed in
        // again, and makes no cutoff that would end the sessions signed in
        // after that change.
        let now = self.shared().clock.now_ms().max(self.now());
        let call = cutoffs.cutoff(Some(&user), now);
        let cutoff = self.shared().timed(self.emitter(), "cutoff", None, call).await.map_err(SessionError::Store)?;
        if cutoff.ends_parts(created_at, Some(epoch)) {
            self.state().ended_by_cutoff();
            return Err(SessionError::NotAuthenticated);
        }
        // The caller signs in under the next epoch, which the cutoff then
        // makes the user's: every sign-in stamped with an earlier one ends
        // (one that read the epoch before this change included), this one
        // and a second submission of the same change (which reads the same
        // epoch) do not.
        let next = cutoff.user.saturating_add(1);
        // How the caller authenticated still stands (methods, level, provider).
        let mut again = SignIn::new(user.clone());
        again.methods = auth.methods().to_vec();
        again.assurance = Some(auth.assurance());
        again.provider = auth.provider().cloned();
        self.login_inner(again, now, Some(next)).await?;
        self.state().cut = Some(Cut { user, epoch: next });
        Ok(())
    }

    /// A login of `sign_in`'s user signed in at `at`, under the credential
    /// epoch `epoch` (`None`: the user's current one, read from the store's
    /// cutoffs when the layer has them, else 0).
    async fn login_inner(&self, sign_in: SignIn, at: u64, epoch: Option<u64>) -> Result<(), SessionError> {
        let level = sign_in.level();
        let SignIn { user, methods, provider, keep, .. } = sign_in;
        let now = self.now();
        let epoch = match (epoch, self.shared().cutoffs.as_deref()) {
            (Some(epoch), _) => epoch,
            (None, Some(cutoffs)) => {
                let call = cutoffs.cutoff(Some(&user), now);
                let current =
                    self.shared().timed(self.emitter(), "cutoff", None, call).await.map_err(SessionError::Store)?.user;
                // A request that began on a session of this user began under
                // the epoch of that session: a password change since then
                // (while the application checked the password this login
                // follows) ends this sign-in too.
                let began = self.state().loaded_auth.as_ref().filter(|(u, _)| *u == user).map(|(_, e)| *e);
                began.map_or(current, |began| began.min(current))
            }
            (None, None) => 0,
        };
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
                Some(keep) => keep,
                None => config.keep_on_login.clone(),
            }),
        };
        let client = self.client();
        let user_agent = client.and_then(Client::recorded_user_agent);
        let ip = client.and_then(Client::recorded_network);
        // "Remember me" is chosen per sign-in: a re-authentication of the
        // same user keeps it, any other sign-in starts as a browser session
        // unless this request chose it (`set_persistent`, before or after).
        let same_user = retain.is_none();
        let chosen = state.changes.persistent;
        let record = state.view_or_new(|| self.new_record(now));
        if let Some(retain) = &retain {
            record.data.retain(retain);
        }
        let forget = record.meta.persistent && !same_user && chosen != Some(true);
        if forget {
            record.meta.persistent = false;
        }
        let mut auth = Auth::new(user, at).with_epoch(epoch).with_methods(methods, level);
        if let Some(provider) = provider {
            auth = auth.with_provider(provider);
        }
        record.meta.auth = Some(auth);
        // The absolute timeout restarts, with the limits of the session's kind.
        record.meta.absolute_deadline = now.saturating_add(config.limits(record.meta.persistent).absolute_ms);
        record.meta.user_agent = user_agent;
        record.meta.ip = ip;
        if forget {
            state.changes.persistent = Some(false);
        }
        // The new client is the session's now.
        state.client_changed = None;
        state.login(retain);
        // R11: tokens from before the login die with it.
        crate::csrf::forget_secret(&mut state);
        Ok(())
    }

    /// Gives the session a new ID (same data, same deadlines) when the
    /// response is sent, in one atomic store operation: the successor is
    /// built from the data as stored then, and the old ID is dead at once
    /// (a late request on it gets no removal cookie). Call it on every
    /// privilege change. The CSRF secret is replaced too: tokens handed out
    /// before stop verifying ([`csrf_token`](Self::csrf_token) gives new ones).
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
        let mut state = self.ensure_loaded().await?;
        state.renew();
        // R11: a privilege change replaces the CSRF secret too.
        crate::csrf::forget_secret(&mut state);
        Ok(())
    }

    /// Ends the session (logout): the record is deleted from the store before
    /// the response is sent, and a removal cookie built from the same settings
    /// goes to a client that presented a session cookie. Values inserted after
    /// `purge` start a new session under a new ID. On encrypted cookie
    /// sessions there is no record to delete: see the revocation limits of
    /// [`CookieSessions`](crate::CookieSessions).
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

    /// "Remember me": gives the session the limits of a remembered session
    /// ([`persistent_idle_timeout`](crate::SessionConfigBuilder::persistent_idle_timeout),
    /// 30 days by default, and
    /// [`persistent_absolute_timeout`](crate::SessionConfigBuilder::persistent_absolute_timeout),
    /// 90 days), enforced by the layer like the normal ones, and a cookie
    /// with a `Max-Age` up to its absolute deadline (never more than 400
    /// days); `false` makes it a browser session with the normal limits
    /// again.
    ///
    /// Call it in the request that signs the user in (before or after
    /// [`login`](Self::login)): the persistent absolute timeout counts from
    /// that sign-in. A sign-in is what grants it: on a session that exists
    /// already and is not signed in by this request, `true` gives the
    /// persistent idle timeout, but the absolute deadline stays the one the
    /// session has (the cookie's `Max-Age` follows it), so a stolen cookie
    /// cannot be extended to months by a "remember me" request. A session
    /// created by this request gets it from its creation. A later sign-in of
    /// another user (or from an anonymous session) is not remembered unless
    /// that request calls `set_persistent(true)` again; a re-authentication
    /// of the same user keeps it.
    ///
    /// `false` on a remembered session that is already past the normal
    /// absolute timeout (counted from its sign-in) ends it at once, as a
    /// [`purge`](Self::purge) would. Sensitive routes still call
    /// [`require_recent_auth`](Self::require_recent_auth): a remembered
    /// session signed in long ago fails it.
    ///
    /// # Errors
    ///
    /// A store failure while loading.
    ///
    /// ```
    /// # use sessionware::{Session, SessionError};
    /// async fn sign_in(session: Session, remember: bool) -> Result<(), SessionError> {
    ///     // ... after checking the password:
    ///     session.login("alice").await?;
    ///     session.set_persistent(remember).await
    /// }
    /// ```
    pub async fn set_persistent(&self, persistent: bool) -> Result<(), SessionError> {
        let now = self.now();
        let config = &self.shared().config;
        let mut state = self.ensure_loaded().await?;
        let record = state.view_or_new(|| self.new_record(now));
        if record.meta.persistent == persistent {
            return Ok(());
        }
        record.meta.persistent = persistent;
        state.changes.persistent = Some(persistent);
        state.changed();
        let sets_deadline = state.sets_deadline();
        let Some(record) = state.view.as_mut() else { return Ok(()) };
        if persistent {
            if sets_deadline {
                record.meta.absolute_deadline = expiry::persistent_deadline(&record.meta, now, config);
            }
        } else {
            // Back to the normal limits, counted from the sign-in.
            record.meta.absolute_deadline = expiry::absolute_deadline(&record.meta, config);
            if expiry::past_absolute(&record.meta, now, config) {
                state.purge();
            }
        }
        Ok(())
    }
}
