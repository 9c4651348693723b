//! A user's sessions ("devices"): list them, revoke one, log out the others.

use std::time::SystemTime;

use super::Session;
use crate::{clock::system_time, Assurance, AuthMethod, EventKind, SessionError, SessionHandle};

/// One session of the current user, as listed by [`Session::sessions`].
///
/// It carries metadata only, and a public handle that is neither the ID nor
/// its digest. Its times are [`SystemTime`]s, like
/// [`Session::auth_time`] and [`Session::expires_at`]; serialized (for a
/// JSON devices page, say) they are integer milliseconds since the Unix
/// epoch.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use sessionware::SessionInfo;
/// fn render(info: &SessionInfo) -> String {
///     let since = |t: std::time::SystemTime| t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs();
///     format!(
///         "{} signed in at {}, last seen at {}{}",
///         info.handle,
///         since(info.signed_in_at),
///         since(info.last_seen),
///         if info.current { " (this device)" } else { "" },
///     )
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct SessionInfo {
    /// The session's public handle (revoke with [`Session::revoke`]).
    pub handle: SessionHandle,
    /// Whether it is the session of the current request.
    pub current: bool,
    /// When the session began: its first request, which may have been
    /// anonymous (a cart before the sign-in). Not the sign-in time: that
    /// is [`signed_in_at`](Self::signed_in_at).
    #[serde(serialize_with = "crate::clock::millis::serialize")]
    pub created_at: SystemTime,
    /// When the user last signed in on this session: what
    /// [`Session::auth_time`] gives on that device.
    #[serde(serialize_with = "crate::clock::millis::serialize")]
    pub signed_in_at: SystemTime,
    /// The last activity the store knows of (writes, and touches at most
    /// once per throttle interval, so it can lag by that much).
    #[serde(serialize_with = "crate::clock::millis::serialize")]
    pub last_seen: SystemTime,
    /// User agent at login.
    pub user_agent: Option<String>,
    /// Coarse IP at login (IPv4 /24, IPv6 /48).
    pub ip: Option<String>,
    /// How the user authenticated on this session (a step-up included),
    /// in order; empty for a sign-in that recorded none.
    pub methods: Vec<AuthMethod>,
    /// The assurance level the sign-in reached.
    pub assurance: Assurance,
    /// The issuer of the identity provider the session was signed in
    /// through, if one was recorded (its session id is not listed).
    pub provider: Option<String>,
}

impl Session {
    /// The current session's public handle, if a session exists.
    ///
    /// # Errors
    ///
    /// A store failure while loading.
    ///
    /// ```
    /// # use sessionware::{Session, SessionError};
    /// async fn handler(session: Session) -> Result<String, SessionError> {
    ///     Ok(session.handle().await?.map(|h| h.to_string()).unwrap_or_default())
    /// }
    /// ```
    pub async fn handle(&self) -> Result<Option<SessionHandle>, SessionError> {
        let state = self.ensure_loaded().await?;
        Ok(state.view.as_ref().map(|r| r.meta.handle))
    }

    async fn current_user(&self) -> Result<(String, Option<SessionHandle>), SessionError> {
        let state = self.ensure_loaded().await?;
        let record = state.view.as_ref().ok_or(SessionError::NotAuthenticated)?;
        let user = record.meta.user().ok_or(SessionError::NotAuthenticated)?.to_string();
        let handle = state.is_live().then_some(record.meta.handle);
        Ok((user, handle))
    }

    /// The logged-in user's live sessions (on every device), the most
    /// recently used first, with the current one marked: at most
    /// [`max_listed_sessions`](crate::SessionConfigBuilder::max_listed_sessions)
    /// of them (default 100).
    ///
    /// # Errors
    ///
    /// [`SessionError::NotAuthenticated`] without a user, or a store failure.
    ///
    /// ```
    /// # use sessionware::{Session, SessionError};
    /// async fn devices(session: Session) -> Result<String, SessionError> {
    ///     Ok(session.sessions().await?.len().to_string())
    /// }
    /// ```
    pub async fn sessions(&self) -> Result<Vec<SessionInfo>, SessionError> {
        let (user, current) = self.current_user().await?;
        let shared = self.shared();
        let index = shared.index()?;
        let limit = shared.config.max_listed_sessions;
        let list = shared
            .timed(self.emitter(), "list_user", None, index.list_user(&user, self.now(), limit))
            .await
            .map_err(SessionError::Store)?;
        // Every session in a user's index is signed in; one without a sign-in
        // record is not that user's, and is not listed.
        Ok(list
            .into_iter()
            .filter_map(|m| {
                let auth = m.auth?;
                Some(SessionInfo {
                    current: Some(m.handle) == current,
                    handle: m.handle,
                    created_at: system_time(m.created_at),
                    signed_in_at: system_time(auth.at_ms),
                    last_seen: system_time(m.last_seen),
                    user_agent: m.user_agent.map(String::from),
                    ip: m.ip.map(String::from),
                    methods: auth.methods().to_vec(),
                    assurance: auth.assurance(),
                    provider: auth.provider().map(|p| p.issuer.clone()),
                })
            })
            .collect())
    }

    /// Ends one of the logged-in user's sessions by its handle. Returns
    /// `false` when the user has no such session (another user's handle
    /// included). Revoking the current session purges it.
    ///
    /// # Errors
    ///
    /// [`SessionError::NotAuthenticated`] without a user, or a store failure.
    ///
    /// ```
    /// # use sessionware::{Session, SessionError, SessionHandle};
    /// async fn revoke(session: Session, handle: SessionHandle) -> Result<String, SessionError> {
    ///     Ok(session.revoke(&handle).await?.to_string())
    /// }
    /// ```
    pub async fn revoke(&self, handle: &SessionHandle) -> Result<bool, SessionError> {
        let (user, current) = self.current_user().await?;
        if current.as_ref() == Some(handle) {
            self.purge().await?;
            return Ok(true);
        }
        let shared = self.shared();
        let index = shared.index()?;
        let ended = shared
            .timed(self.emitter(), "delete_by_handle", None, index.delete_by_handle(&user, handle, self.now()))
            .await
            .map_err(SessionError::Store)?;
        if ended {
            self.emitter().emit(EventKind::Revoked { count: 1 }, self.incoming().map(|i| &i.key), Some(&user));
        }
        Ok(ended)
    }

    /// Ends every other session of the logged-in user ("log out other
    /// devices") and returns how many were ended.
    ///
    /// # Errors
    ///
    /// [`SessionError::NotAuthenticated`] without a user, or a store failure.
    ///
    /// ```
    /// # use sessionware::{Session, SessionError};
    /// async fn logout_others(session: Session) -> Result<String, SessionError> {
    ///     Ok(session.revoke_others().await?.to_string())
    /// }
    /// ```
    pub async fn revoke_others(&self) -> Result<usize, SessionError> {
        let (user, current) = self.current_user().await?;
        let shared = self.shared();
        let index = shared.index()?;
        let count = shared
            .timed(self.emitter(), "delete_user", None, index.delete_user(&user, current.as_ref(), self.now()))
            .await
            .map_err(SessionError::Store)?;
        if count > 0 {
            self.emitter().emit(EventKind::Revoked { count }, self.incoming().map(|i| &i.key), Some(&user));
        }
        Ok(count)
    }
}
