//! Typed session values: a handle on one key ([`Typed`]), the key-typed
//! marker ([`SessionValue`]), and the one home of the policy for a stored
//! value that no longer deserializes ([`Undecodable`], `Session::decode`).

use std::{borrow::Cow, fmt, marker::PhantomData};

use serde::{de::DeserializeOwned, Serialize};

use super::Session;
use crate::{lifecycle::state::State, SessionError, StorageKey};

/// What to do with a stored value that does not deserialize into the type
/// a handler asks for (a type that changed in a deploy, a field renamed):
/// set with
/// [`SessionConfigBuilder::undecodable_values`](crate::SessionConfigBuilder::undecodable_values).
///
/// ```
/// use sessionware::{SessionConfig, Undecodable};
/// assert_eq!(SessionConfig::default().undecodable_values(), Undecodable::Fail);
/// let lenient = SessionConfig::builder().undecodable_values(Undecodable::Absent).build().unwrap();
/// assert_eq!(lenient.undecodable_values(), Undecodable::Absent);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Undecodable {
    /// The read fails with [`SessionError::Undecodable`] (naming the key),
    /// a 500 by default. The default: a handler never silently loses data.
    #[default]
    Fail,
    /// The value reads as absent: `get` gives `Ok(None)`, `take` gives
    /// `Ok(None)` and leaves it, [`Typed::update`] starts from the default.
    /// An [`EventKind::Undecodable`](crate::EventKind::Undecodable) naming
    /// the key (never the value) is emitted once per key per request. The
    /// stored value stays until a request writes (or removes) that key.
    Absent,
}

/// A type stored under one fixed session key, so that call sites name the
/// type only: [`Session::value`], and the [`Typed`] extractor (feature
/// `axum`).
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use sessionware::SessionValue;
///
/// #[derive(Default, Serialize, Deserialize)]
/// struct Cart {
///     items: Vec<u32>,
/// }
/// impl SessionValue for Cart {
///     const KEY: &'static str = "cart";
/// }
/// assert_eq!(Cart::KEY, "cart");
/// ```
pub trait SessionValue: Serialize + DeserializeOwned {
    /// The session key the value is stored under (1 to 256 bytes).
    const KEY: &'static str;
}

/// A handle on one session key read and written as `T`
/// ([`Session::typed`], [`Session::value`]). Clones share the request's
/// session.
///
/// # What "atomic per key" means
///
/// - **Within a request**, [`update`](Typed::update) reads the value, runs
///   the closure and records the result in one critical section of the
///   request's session state, with no `.await` in between: two tasks of
///   one request (clones of the handle or of the [`Session`]) updating the
///   same key never lose an update.
/// - **Across concurrent requests** of one session, each request updates
///   its own view, and the store merges the changes per key when each
///   request answers: the last request to write a key wins, whole. Two
///   requests that increment the same counter at once may give one
///   increment. Keys a request did not write are never touched. A value
///   that must not lose concurrent updates needs [`Session::lock`], which
///   makes the session's requests take turns.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use sessionware::{Session, SessionError};
///
/// #[derive(Default, Serialize, Deserialize)]
/// struct Cart {
///     items: Vec<u32>,
/// }
///
/// async fn add(session: Session) -> Result<String, SessionError> {
///     let cart = session.typed::<Cart>("cart");
///     let count = cart.update(|c| {
///         c.items.push(7);
///         c.items.len()
///     }).await?;
///     Ok(count.to_string())
/// }
/// ```
pub struct Typed<T> {
    session: Session,
    key: Cow<'static, str>,
    _type: PhantomData<fn() -> T>,
}

impl<T> Clone for Typed<T> {
    fn clone(&self) -> Self {
        Self { session: self.session.clone(), key: self.key.clone(), _type: PhantomData }
    }
}

impl<T> fmt::Debug for Typed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Typed").field("key", &self.key).field("type", &std::any::type_name::<T>()).finish()
    }
}

impl Session {
    /// A handle on `key`, read and written as `T` (see [`Typed`]). Nothing
    /// is loaded until the handle is used.
    ///
    /// ```
    /// # use sessionware::{Session, SessionError};
    /// async fn visits(session: Session) -> Result<String, SessionError> {
    ///     let n = session.typed::<u64>("visits").update(|n| { *n += 1; *n }).await?;
    ///     Ok(n.to_string())
    /// }
    /// ```
    pub fn typed<T>(&self, key: impl Into<Cow<'static, str>>) -> Typed<T> {
        Typed { session: self.clone(), key: key.into(), _type: PhantomData }
    }

    /// A handle on `T`'s own key, [`SessionValue::KEY`].
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # use sessionware::{Session, SessionError, SessionValue};
    /// #[derive(Default, Serialize, Deserialize)]
    /// struct Theme(String);
    /// impl SessionValue for Theme {
    ///     const KEY: &'static str = "theme";
    /// }
    /// async fn theme(session: Session) -> Result<String, SessionError> {
    ///     Ok(session.value::<Theme>().get().await?.unwrap_or_default().0)
    /// }
    /// ```
    pub fn value<T: SessionValue>(&self) -> Typed<T> {
        self.typed(T::KEY)
    }

    /// Reads `key` as `T` from the loaded state: the one place where the
    /// [`Undecodable`] policy is applied. A value that fails to decode is a
    /// typed error, or (lenient) absent, reported once per key per request.
    pub(crate) fn decode<T: DeserializeOwned>(&self, state: &mut State, key: &str) -> Result<Decoded<T>, SessionError> {
        if super::data::is_reserved(key) {
            // The crate's own keys (the CSRF secret) are not the handler's to read.
            return Err(SessionError::InvalidDataKey);
        }
        let Some(raw) = state.view.as_ref().and_then(|r| r.data.get(key)) else {
            return Ok(Decoded { value: None, report: None });
        };
        let source = match serde_json::from_str(raw.get()) {
            Ok(value) => return Ok(Decoded { value: Some(value), report: None }),
            Err(source) => source,
        };
        match self.shared().config.undecodable {
            Undecodable::Fail => Err(SessionError::Undecodable { key: key.to_string(), source }),
            Undecodable::Absent => {
                let first = !state.undecodable.iter().any(|k| &**k == key);
                let report = first.then(|| {
                    state.undecodable.push(key.into());
                    Report {
                        data_key: key.into(),
                        session: state.working_key(self.incoming().map(|i| &i.key)),
                        user: state.view.as_ref().and_then(|r| r.meta.user()).map(str::to_string),
                    }
                });
                Ok(Decoded { value: None, report })
            }
        }
    }
}

/// A value read by `Session::decode`, with the event to emit once the
/// request's state is unlocked (the hook never runs under the lock).
#[must_use = "finish it once the state's guard is dropped"]
pub(crate) struct Decoded<T> {
    pub(crate) value: Option<T>,
    report: Option<Report>,
}

/// An undecodable value to report: the key's name, never the value.
struct Report {
    data_key: Box<str>,
    session: Option<StorageKey>,
    user: Option<String>,
}

impl<T> Decoded<T> {
    /// Emits the event, if any (call it after the state's guard is dropped);
    /// the value.
    pub(crate) fn finish(self, session: &Session) -> Option<T> {
        Self::report(self.report, session);
        self.value
    }

    /// Splits the value from its pending event (for `update`, which keeps
    /// the state locked after the read).
    fn split(self) -> (Option<T>, Pending) {
        (self.value, Pending(self.report))
    }

    fn report(report: Option<Report>, session: &Session) {
        if let Some(r) = report {
            session.emitter().undecodable(r.session.as_ref(), r.user.as_deref(), &r.data_key);
        }
    }
}

/// The event of a split [`Decoded`], emitted once the state is unlocked.
#[must_use = "emit it once the state's guard is dropped"]
struct Pending(Option<Report>);

impl Pending {
    fn emit(self, session: &Session) {
        Decoded::<()>::report(self.0, session);
    }
}

impl<T: DeserializeOwned> Typed<T> {
    /// The key.
    ///
    /// ```
    /// # fn f(session: sessionware::Session) {
    /// assert_eq!(session.typed::<u64>("visits").key(), "visits");
    /// # }
    /// ```
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Reads the value; `Ok(None)` if absent (or undecodable, with
    /// [`Undecodable::Absent`]).
    ///
    /// # Errors
    ///
    /// A store failure while loading, or a stored value that is not a `T`
    /// ([`SessionError::Undecodable`], unless [`Undecodable::Absent`]).
    ///
    /// ```
    /// # use sessionware::{Session, SessionError};
    /// async fn visits(session: Session) -> Result<String, SessionError> {
    ///     Ok(session.typed::<u64>("visits").get().await?.unwrap_or(0).to_string())
    /// }
    /// ```
    pub async fn get(&self) -> Result<Option<T>, SessionError> {
        self.session.get(&self.key).await
    }

    /// Removes the value; true if it was set.
    ///
    /// # Errors
    ///
    /// A store failure while loading.
    ///
    /// ```
    /// # use sessionware::{Session, SessionError};
    /// async fn empty(session: Session) -> Result<String, SessionError> {
    ///     Ok(session.typed::<Vec<u32>>("cart").remove().await?.to_string())
    /// }
    /// ```
    pub async fn remove(&self) -> Result<bool, SessionError> {
        self.session.remove(&self.key).await
    }
}

impl<T: Serialize + DeserializeOwned> Typed<T> {
    /// Sets the value, as [`Session::insert`].
    ///
    /// # Errors
    ///
    /// As [`Session::insert`].
    ///
    /// ```
    /// # use sessionware::{Session, SessionError};
    /// async fn reset(session: Session) -> Result<(), SessionError> {
    ///     session.typed::<u64>("visits").insert(0).await
    /// }
    /// ```
    pub async fn insert(&self, value: T) -> Result<(), SessionError> {
        self.session.insert(&self.key, value).await
    }

    /// Reads the value (or `T::default()` when absent), runs `f` on it and
    /// records the result, in one critical section of the request's state
    /// (see [`Typed`] for what that guarantees across requests); `f`'s
    /// result is returned.
    ///
    /// `f` runs while the request's session state is locked: keep it short
    /// and never wait in it for the session (it would deadlock). A result
    /// equal to the stored value is not written (no store write, nothing to
    /// merge over a concurrent request's value); an absent value always is.
    ///
    /// # Errors
    ///
    /// A store failure while loading, a stored value that is not a `T`
    /// ([`SessionError::Undecodable`], unless [`Undecodable::Absent`]), an
    /// empty or over-long key, a result that cannot be serialized, or data
    /// beyond the configured maximum size. On an error nothing is recorded.
    ///
    /// ```
    /// use axum::{body::Body, http::Request, routing::post, Router};
    /// use sessionware::{Keys, Session, SessionError, SessionLayer, store::MemoryStore};
    /// use tower::ServiceExt;
    ///
    /// async fn twice(session: Session) -> Result<String, SessionError> {
    ///     let n = session.typed::<u64>("n");
    ///     let m = n.clone();
    ///     // Two tasks of one request: neither increment is lost.
    ///     let (a, b) = tokio::join!(n.update(|n| *n += 1), m.update(|n| *n += 1));
    ///     (a?, b?);
    ///     Ok(n.get().await?.unwrap_or(0).to_string())
    /// }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let app = Router::new()
    ///     .route("/", post(twice))
    ///     .layer(SessionLayer::new(MemoryStore::default(), Keys::generate().unwrap()));
    /// let res = app.oneshot(Request::post("/").body(Body::empty()).unwrap()).await.unwrap();
    /// let body = axum::body::to_bytes(res.into_body(), 64).await.unwrap();
    /// assert_eq!(&body[..], b"2");
    /// # });
    /// ```
    pub async fn update<R>(&self, f: impl FnOnce(&mut T) -> R) -> Result<R, SessionError>
    where
        T: Default,
    {
        self.update_or(T::default, f).await
    }

    /// As [`update`](Typed::update), starting from `init()` when the value
    /// is absent (for a `T` without a `Default`, or another start).
    ///
    /// # Errors
    ///
    /// As [`update`](Typed::update).
    ///
    /// ```
    /// # use sessionware::{Session, SessionError};
    /// async fn countdown(session: Session) -> Result<String, SessionError> {
    ///     let left = session.typed::<u32>("tries").update_or(|| 3, |n| { *n = n.saturating_sub(1); *n }).await?;
    ///     Ok(left.to_string())
    /// }
    /// ```
    pub async fn update_or<R>(&self, init: impl FnOnce() -> T, f: impl FnOnce(&mut T) -> R) -> Result<R, SessionError> {
        super::data::check_key(&self.key)?;
        let session = &self.session;
        let now = session.now();
        let mut state = session.ensure_loaded().await?;
        // From here to the write there is no `.await`: one critical section.
        let (value, pending) = session.decode::<T>(&mut state, &self.key)?.split();
        let absent = value.is_none();
        let mut value = value.unwrap_or_else(init);
        let out = f(&mut value);
        let written = match serde_json::value::to_raw_value(&value) {
            Ok(raw) => {
                let same = !absent
                    && state
                        .view
                        .as_ref()
                        .and_then(|r| r.data.get(&self.key))
                        .is_some_and(|old| old.get() == raw.get());
                if same {
                    Ok(())
                } else {
                    session.store_raw(&mut state, &self.key, raw, now)
                }
            }
            Err(e) => Err(e.into()),
        };
        drop(state);
        pending.emit(session);
        written.map(|()| out)
    }
}
