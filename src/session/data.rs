//! Reading and writing the session's values, and what the handler may
//! know of the session itself (ID, metadata, expiry).

use std::time::SystemTime;

use serde::{de::DeserializeOwned, Serialize};

use super::Session;
use crate::{
    lifecycle::state::{Intent, Origin, State},
    Metadata, Record, SessionError, SessionId,
};

/// The longest session key accepted.
const MAX_KEY_LEN: usize = 256;

/// Keys under this prefix are the crate's own (the CSRF secret): handlers
/// can neither read nor write them, and listings skip them.
const RESERVED_PREFIX: &str = "__sessionware.";

/// Whether `key` is one of the crate's own (see [`RESERVED_PREFIX`]).
pub(crate) fn is_reserved(key: &str) -> bool {
    key.starts_with(RESERVED_PREFIX)
}

/// A key a write accepts: 1 to 256 bytes, not under the reserved prefix.
pub(super) fn check_key(key: &str) -> Result<(), SessionError> {
    if key.is_empty() || key.len() > MAX_KEY_LEN || is_reserved(key) {
        return Err(SessionError::InvalidDataKey);
    }
    Ok(())
}

impl Session {
    /// An empty record for a session this request creates.
    pub(crate) fn new_record(&self, now: u64) -> Record {
        let config = &self.shared().config;
        Record::new(Metadata::new(now, config.idle_ms, config.absolute_ms))
    }

    /// Reads `key`, deserialized as `T`. `Ok(None)` if absent (or, with
    /// [`Undecodable::Absent`](crate::Undecodable::Absent), not a `T`).
    ///
    /// # Errors
    ///
    /// A store failure ([`SessionError::Load`], fail closed) or a value of
    /// another type ([`SessionError::Undecodable`], naming the key).
    ///
    /// ```
    /// # use sessionware::{Session, SessionError};
    /// async fn handler(session: Session) -> Result<String, SessionError> {
    ///     let name: Option<String> = session.get("name").await?;
    ///     Ok(name.unwrap_or_default())
    /// }
    /// ```
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SessionError> {
        let mut state = self.ensure_loaded().await?;
        let decoded = self.decode(&mut state, key)?;
        drop(state);
        Ok(decoded.finish(self))
    }

    /// True if `key` is set (never for a key under the reserved prefix).
    ///
    /// # Errors
    ///
    /// A store failure while loading.
    ///
    /// ```
    /// # use sessionware::{Session, SessionError};
    /// async fn handler(session: Session) -> Result<String, SessionError> {
    ///     Ok(session.contains("cart").await?.to_string())
    /// }
    /// ```
    pub async fn contains(&self, key: &str) -> Result<bool, SessionError> {
        let state = self.ensure_loaded().await?;
        Ok(!is_reserved(key) && state.view.as_ref().is_some_and(|r| r.data.get(key).is_some()))
    }

    /// The keys set in the session, sorted (the crate's own are not listed).
    ///
    /// # Errors
    ///
    /// A store failure while loading.
    ///
    /// ```
    /// # use sessionware::{Session, SessionError};
    /// async fn handler(session: Session) -> Result<String, SessionError> {
    ///     Ok(session.keys().await?.join(","))
    /// }
    /// ```
    pub async fn keys(&self) -> Result<Vec<String>, SessionError> {
        let state = self.ensure_loaded().await?;
        let keys = state.view.as_ref().map(|r| r.data.keys().filter(|k| !is_reserved(k)).map(str::to_string).collect());
        Ok(keys.unwrap_or_default())
    }

    /// All values as a JSON object (for inspection and debugging pages;
    /// the crate's own, such as the CSRF secret, are left out).
    ///
    /// # Errors
    ///
    /// A store failure while loading.
    ///
    /// ```
    /// # use sessionware::{Session, SessionError};
    /// async fn handler(session: Session) -> Result<String, SessionError> {
    ///     Ok(serde_json::Value::Object(session.to_json().await?).to_string())
    /// }
    /// ```
    pub async fn to_json(&self) -> Result<serde_json::Map<String, serde_json::Value>, SessionError> {
        let state = self.ensure_loaded().await?;
        let mut map = serde_json::Map::new();
        if let Some(r) = &state.view {
            for (k, v) in r.data.iter().filter(|(k, _)| !is_reserved(k)) {
                map.insert(k.to_string(), serde_json::from_str(v.get())?);
            }
        }
        Ok(map)
    }

    /// True when the session holds no data and no user (the crate's own
    /// keys, such as the CSRF secret, do not count).
    ///
    /// # Errors
    ///
    /// A store failure while loading.
    ///
    /// ```
    /// # use sessionware::{Session, SessionError};
    /// async fn handler(session: Session) -> Result<String, SessionError> {
    ///     Ok(session.is_empty().await?.to_string())
    /// }
    /// ```
    pub async fn is_empty(&self) -> Result<bool, SessionError> {
        let state = self.ensure_loaded().await?;
        Ok(state.view.as_ref().is_none_or(|r| r.data.keys().all(is_reserved) && r.meta.auth.is_none()))
    }

    /// Sets `key` to `value`. A session that did not exist is created when
    /// the response is sent, under a new server-made ID.
    ///
    /// # Errors
    ///
    /// A store failure while loading, a value that cannot be serialized, an
    /// empty or over-long key or one under the reserved prefix
    /// `__sessionware.` ([`SessionError::InvalidDataKey`]), or data beyond the
    /// configured maximum size.
    ///
    /// ```
    /// # use sessionware::{Session, SessionError};
    /// async fn handler(session: Session) -> Result<(), SessionError> {
    ///     session.insert("theme", "dark").await
    /// }
    /// ```
    pub async fn insert<T: Serialize>(&self, key: &str, value: T) -> Result<(), SessionError> {
        check_key(key)?;
        let raw = serde_json::value::to_raw_value(&value)?;
        let now = self.now();
        let mut state = self.ensure_loaded().await?;
        self.store_raw(&mut state, key, raw, now)
    }

    /// Records `key` = `raw` in the loaded state (the view and the change
    /// set), within the data cap: the one write path of `insert` and
    /// `Typed::update`. `now` is read before the state is locked (its first
    /// read verifies the cookie, which may emit events).
    pub(crate) fn store_raw(
        &self,
        state: &mut State,
        key: &str,
        raw: Box<serde_json::value::RawValue>,
        now: u64,
    ) -> Result<(), SessionError> {
        let max = self.shared().config.max_data_bytes;
        let record = state.view_or_new(|| self.new_record(now));
        if record.data.size_with(key, &raw) > max {
            return Err(SessionError::TooLarge { max });
        }
        record.data.insert(key, &raw);
        state.changes.set(key, raw);
        state.changed();
        Ok(())
    }

    /// Removes `key`; true if it was set.
    ///
    /// # Errors
    ///
    /// A store failure while loading, or a key under the reserved prefix
    /// ([`SessionError::InvalidDataKey`]).
    ///
    /// ```
    /// # use sessionware::{Session, SessionError};
    /// async fn handler(session: Session) -> Result<(), SessionError> {
    ///     session.remove("cart").await?;
    ///     Ok(())
    /// }
    /// ```
    pub async fn remove(&self, key: &str) -> Result<bool, SessionError> {
        if is_reserved(key) {
            return Err(SessionError::InvalidDataKey);
        }
        let mut state = self.ensure_loaded().await?;
        let removed = state.view.as_mut().is_some_and(|r| r.data.remove(key));
        if removed {
            state.changes.remove(key);
            state.changed();
        }
        Ok(removed)
    }

    /// Reads and removes `key` (a flash value).
    ///
    /// # Errors
    ///
    /// A store failure while loading, a value of another type
    /// ([`SessionError::Undecodable`]; the value is then left in place, and
    /// with [`Undecodable::Absent`](crate::Undecodable::Absent) it reads as
    /// absent and stays too), or a key under the reserved prefix
    /// ([`SessionError::InvalidDataKey`]).
    ///
    /// ```
    /// # use sessionware::{Session, SessionError};
    /// async fn handler(session: Session) -> Result<String, SessionError> {
    ///     Ok(session.take::<String>("flash").await?.unwrap_or_default())
    /// }
    /// ```
    pub async fn take<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SessionError> {
        if is_reserved(key) {
            return Err(SessionError::InvalidDataKey);
        }
        let mut state = self.ensure_loaded().await?;
        let decoded = self.decode::<T>(&mut state, key)?;
        if decoded.value.is_some() {
            if let Some(r) = state.view.as_mut() {
                r.data.remove(key);
            }
            state.changes.remove(key);
            state.changed();
        }
        drop(state);
        Ok(decoded.finish(self))
    }

    /// Removes every value (the user and the session stay; the CSRF secret
    /// goes too, so earlier tokens stop verifying).
    ///
    /// # Errors
    ///
    /// A store failure while loading.
    ///
    /// ```
    /// # use sessionware::{Session, SessionError};
    /// async fn handler(session: Session) -> Result<(), SessionError> {
    ///     session.clear().await
    /// }
    /// ```
    pub async fn clear(&self) -> Result<(), SessionError> {
        let mut state = self.ensure_loaded().await?;
        if let Some(r) = state.view.as_mut() {
            r.data.clear();
            state.changes.clear();
            state.changed();
        }
        Ok(())
    }

    /// The current session's ID, if a live session was presented. A session
    /// created or renewed in this request gets its ID when the response is
    /// sent. The ID is a secret: never log it.
    ///
    /// # Errors
    ///
    /// A store failure while loading.
    ///
    /// ```
    /// # use sessionware::{Session, SessionError};
    /// async fn handler(session: Session) -> Result<String, SessionError> {
    ///     Ok(session.id().await?.is_some().to_string())
    /// }
    /// ```
    pub async fn id(&self) -> Result<Option<SessionId>, SessionError> {
        let state = self.ensure_loaded().await?;
        let current = state.origin() == Some(Origin::Live) && matches!(state.intent, Intent::Keep | Intent::Write);
        Ok(if current { self.incoming().map(|i| i.id.clone()) } else { None })
    }

    /// The session's metadata (creation, last activity, deadlines, user), or
    /// `None` when there is no session.
    ///
    /// # Errors
    ///
    /// A store failure while loading.
    ///
    /// ```
    /// # use sessionware::{Session, SessionError};
    /// async fn handler(session: Session) -> Result<String, SessionError> {
    ///     let created = session.metadata().await?.map(|m| m.created_at);
    ///     Ok(format!("{created:?}"))
    /// }
    /// ```
    pub async fn metadata(&self) -> Result<Option<Metadata>, SessionError> {
        let state = self.ensure_loaded().await?;
        Ok(state.view.as_ref().map(|r| r.meta.clone()))
    }

    /// When the session expires if no further request comes (the earlier of
    /// the idle and absolute deadlines).
    ///
    /// # Errors
    ///
    /// A store failure while loading.
    ///
    /// ```
    /// # use sessionware::{Session, SessionError};
    /// async fn handler(session: Session) -> Result<String, SessionError> {
    ///     Ok(format!("{:?}", session.expires_at().await?))
    /// }
    /// ```
    pub async fn expires_at(&self) -> Result<Option<SystemTime>, SessionError> {
        let now = self.now();
        Ok(self.metadata().await?.map(|m| {
            let at = crate::lifecycle::expiry::expires_at(&m, now, &self.shared().config);
            crate::clock::system_time(at)
        }))
    }
}
