//! [`SessionControl`]: ending sessions from outside a request (an admin
//! route, a job, an incident script): every session at once, or all of one
//! user's.

use std::sync::Arc;

use crate::{
    events::Emitter,
    shared::Shared,
    store::{Cutoffs, Scope},
    EventKind, SessionError,
};

/// Ends sessions at once through the layer's store, by cutoff (see
/// [`store::Cutoffs`](crate::store::Cutoffs)): no session is listed, and
/// each ended one is refused on its next request, on every process that
/// shares the store. Made by
/// [`SessionLayer::control`](crate::SessionLayer::control); cheap to clone
/// (keep one in the application's state).
///
/// ```
/// use sessionware::{Keys, SessionLayer, store::MemoryStore};
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let layer = SessionLayer::new(MemoryStore::default(), Keys::generate().unwrap());
/// let control = layer.control();
/// control.end_user_sessions("mallory").await.unwrap(); // an account disabled
/// control.end_all_sessions().await.unwrap(); // after an incident: everyone signs in again
/// # });
/// ```
#[derive(Clone)]
pub struct SessionControl {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for SessionControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionControl").field("cutoffs", &self.shared.cutoffs.is_some()).finish_non_exhaustive()
    }
}

impl SessionControl {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// Ends every session that exists now, signed in or not (R49): each is
    /// refused on its next request, and its visitor starts afresh. A
    /// [`CutOff`](EventKind::CutOff) event with `all` is emitted.
    ///
    /// # Errors
    ///
    /// [`SessionError::Unsupported`] on a layer without cutoffs;
    /// [`SessionError::Store`] when the store call fails or times out.
    pub async fn end_all_sessions(&self) -> Result<(), SessionError> {
        self.cut(Scope::All).await
    }

    /// Ends every session of `user`, this moment's included (an account
    /// disabled or deleted, an administrator's "sign out everywhere"). To
    /// keep the caller's own session after a password change, use
    /// [`Session::credentials_changed`](crate::Session::credentials_changed)
    /// instead. A [`CutOff`](EventKind::CutOff) event names the user.
    ///
    /// # Errors
    ///
    /// [`SessionError::Unsupported`] on a layer without cutoffs;
    /// [`SessionError::Store`] when the store call fails or times out.
    pub async fn end_user_sessions(&self, user: &str) -> Result<(), SessionError> {
        self.cut(Scope::User(user)).await
    }

    /// A back-channel logout (OpenID Connect Back-Channel Logout 1.0): ends
    /// every session of `user` signed in through the identity provider's
    /// session `sid` at `issuer`, as recorded by
    /// [`SignIn::provider_session`](crate::SignIn::provider_session), and
    /// returns how many ended. With `sid` `None` (a logout token without
    /// `sid`) it ends every session of `user` signed in through `issuer`.
    /// The user's other sessions (another provider session, a password
    /// sign-in) stay. The application validates the logout token first and
    /// maps its `sub` to its own user id. Each ended session is refused on
    /// its next request, on every process; a
    /// [`Revoked`](EventKind::Revoked) event names the user and the count
    /// when any ended.
    ///
    /// # Errors
    ///
    /// [`SessionError::Unsupported`] on a layer without a per-user index;
    /// [`SessionError::Store`] when a store call fails or times out (some
    /// sessions may have ended: the call can be repeated).
    ///
    /// ```
    /// use sessionware::{Keys, SessionLayer, store::MemoryStore};
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let layer = SessionLayer::new(MemoryStore::default(), Keys::generate().unwrap());
    /// let control = layer.control();
    /// // In the back-channel logout endpoint, after validating the logout token:
    /// let ended = control.end_provider_sessions("alice", "https://idp.example.com", Some("08a5019c")).await.unwrap();
    /// assert_eq!(ended, 0); // nobody signed in through it here
    /// # });
    /// ```
    pub async fn end_provider_sessions(
        &self,
        user: &str,
        issuer: &str,
        sid: Option<&str>,
    ) -> Result<usize, SessionError> {
        let shared = &*self.shared;
        let index = shared.index()?;
        let now = shared.clock.now_ms();
        let emitter = Emitter { hook: shared.on_event.as_ref(), route: None, now };
        let call = index.delete_provider_sessions(user, issuer, sid, now);
        let count = shared.timed(emitter, "delete_provider_sessions", None, call).await.map_err(SessionError::Store)?;
        if count > 0 {
            emitter.emit(EventKind::Revoked { count }, None, Some(user));
        }
        Ok(count)
    }

    /// Moves `scope`'s cutoff: the global one past now (every session
    /// created at or before this millisecond is ended, and one created later
    /// within it too: its visitor starts again), or the user's epoch one
    /// past its current value (every sign-in stamped with it or an earlier
    /// one is ended; a sign-in that read the new value is not).
    async fn cut(&self, scope: Scope<'_>) -> Result<(), SessionError> {
        let shared = &*self.shared;
        let cutoffs: &dyn Cutoffs = shared.cutoffs()?;
        let now = shared.clock.now_ms();
        let emitter = Emitter { hook: shared.on_event.as_ref(), route: None, now };
        let value = match scope {
            Scope::User(user) => {
                let call = cutoffs.cutoff(Some(user), now);
                let current = shared.timed(emitter, "cutoff", None, call).await.map_err(SessionError::Store)?;
                current.user.saturating_add(1)
            }
            _ => now.saturating_add(1),
        };
        let keep_until = shared.config.cutoff_kept_until(value);
        let call = cutoffs.cut(scope, value, keep_until, now);
        shared.timed(emitter, "cut", None, call).await.map_err(SessionError::Store)?;
        let (all, user) = match scope {
            Scope::User(user) => (false, Some(user)),
            _ => (true, None),
        };
        emitter.emit(EventKind::CutOff { all }, None, user);
        Ok(())
    }
}
