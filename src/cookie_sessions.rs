//! [`CookieSessions`]: encrypted cookie sessions, where the session lives
//! in the cookie itself and no server store keeps it.

use std::{fmt, sync::Arc};

use crate::{cookie::sealed::Sealer, store::Cutoffs, KeyError, Keys};

/// Encrypted cookie sessions: the session's data, deadlines and sign-in
/// travel in the cookie, sealed with an AEAD, and no store keeps them. Build
/// a layer with [`SessionLayer::cookie_sessions`](crate::SessionLayer::cookie_sessions);
/// handlers use the same [`Session`](crate::Session) API as on a store.
///
/// ```
/// use axum::{body::Body, routing::post, Router};
/// use http::Request;
/// use sessionware::{CookieSessions, Keys, Session, SessionError, SessionLayer};
/// use tower::ServiceExt;
///
/// async fn visits(session: Session) -> Result<String, SessionError> {
///     let n: u64 = session.get("n").await?.unwrap_or(0) + 1;
///     session.insert("n", n).await?;
///     Ok(n.to_string())
/// }
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let layer = SessionLayer::cookie_sessions(CookieSessions::new(Keys::generate().unwrap()));
/// let app: Router = Router::new().route("/", post(visits)).layer(layer);
/// let res = app.clone().oneshot(Request::post("/").body(Body::empty()).unwrap()).await.unwrap();
/// let cookie = res.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
/// let again = Request::post("/").header("cookie", &cookie).body(Body::empty()).unwrap();
/// let res = app.oneshot(again).await.unwrap();
/// let body = http_body_util::BodyExt::collect(res.into_body()).await.unwrap().to_bytes();
/// assert_eq!(&body[..], b"2"); // the count came back in the cookie
/// # });
/// ```
///
/// # The cookie
///
/// The value is the session's record (data, deadlines, sign-in, client)
/// as JSON, encrypted and authenticated with XChaCha20-Poly1305 under a
/// fresh random nonce. Each key of the [`Keys`] ring gives its own cipher
/// key (HKDF-SHA256 with the key's id): the first key seals, every key
/// opens, and the value names its key, so rotation works as for signed
/// IDs (a cookie sealed by an older key is sealed again under the first
/// on its next use). The associated data binds the cookie's name, the
/// format version and the key id: a value renamed, moved to another
/// cookie or relabelled does not open. A value that does not open
/// (tampered, truncated, oversized, another key's, another name's) is no
/// session, exactly like no cookie, never a panic.
///
/// # Size: 4,096 bytes per cookie
///
/// The whole `Set-Cookie` value (name, sealed value and attributes) must
/// fit in 4,096 bytes, what every browser keeps. A write that would make
/// it larger fails with [`SessionError::CookieTooLarge`](crate::SessionError::CookieTooLarge)
/// (status 413 through [`on_save_error`](crate::SessionLayer::on_save_error)),
/// and no cookie is set: the client keeps the one it had, never a cookie
/// silently dropped by the browser. The data cap
/// ([`max_data_bytes`](crate::SessionConfigBuilder::max_data_bytes)) holds
/// too. The sealing costs about 45 bytes plus a third (base64), and the
/// record's metadata a few hundred, so plan for roughly 2.5 KiB of data.
///
/// # Deadlines
///
/// The idle and absolute deadlines are inside the encrypted record and are
/// checked by the layer on every request, in the same place as a store's
/// records: a cookie past either is no session, whatever its `Max-Age`. A
/// read-only request slides the idle deadline by sealing the cookie again
/// (after the same share of the idle timeout as a store's touch).
///
/// # Revocation limits
///
/// Nothing on the server remembers a cookie session, so a copy of a cookie
/// stays valid until its idle or absolute deadline, whatever happened
/// since: a logout only removes the cookie from the browser that logged
/// out, and a stolen or replayed older cookie keeps working. Keep the
/// idle and absolute timeouts short. Two ways to end sessions early:
///
/// - **Per-user epoch** ([`with_cutoffs`](Self::with_cutoffs)): give the
///   layer a store's [`Cutoffs`] (a small shared record per user, as a
///   [`MemoryStore`](crate::store::MemoryStore) or a Redis or SQL store
///   keeps it). Every sign-in is stamped with the user's credential epoch,
///   and every request of a signed-in session reads the user's epoch (one
///   store read): a session signed in under an older one is no session.
///   Then [`Session::credentials_changed`](crate::Session::credentials_changed),
///   [`SessionControl`](crate::SessionControl) (one user's sessions, or
///   every session by creation time) **and a logout** end the user's
///   sessions. A logout of a signed-in cookie session moves the user's
///   epoch: it ends **every** cookie session of that user, on every
///   device, since no single cookie can be told apart from its copies.
/// - **Key rotation**: removing a key from the ring ends every session it
///   sealed (everyone's).
///
/// # What a cookie session cannot do
///
/// There is no record to merge into: each response carries the whole
/// session, and of two concurrent requests that both write, the cookie of
/// the one answered last wins (no per-key merge across requests). There is
/// no per-user index and no lease: [`Session::sessions`](crate::Session::sessions),
/// [`revoke`](crate::Session::revoke), [`revoke_others`](crate::Session::revoke_others)
/// and [`lock`](crate::Session::lock) fail with
/// [`SessionError::Unsupported`](crate::SessionError::Unsupported), and
/// the per-user session limit and the header transport are refused when
/// the layer is configured. Periodic renewal seals the session again
/// (there is no old ID to retire). A back-channel logout by provider
/// session ([`SessionControl::end_provider_sessions`](crate::SessionControl::end_provider_sessions))
/// needs the per-user index too: end the user's cookie sessions with
/// [`SessionControl::end_user_sessions`](crate::SessionControl::end_user_sessions)
/// (with cutoffs) instead.
///
/// **Give each application its own key ring, or its own
/// [`context`](Self::context).** The ring is all a cookie session is
/// checked against: two applications that share a ring, a cookie name and
/// no context accept each other's sessions (a store-backed layer is kept
/// apart by its store).
#[derive(Clone)]
pub struct CookieSessions {
    keys: Keys,
    sealer: Arc<Sealer>,
    cutoffs: Option<Arc<dyn Cutoffs>>,
}

impl fmt::Debug for CookieSessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CookieSessions")
            .field("keys", &self.keys)
            .field("cutoffs", &self.cutoffs.is_some())
            .finish_non_exhaustive()
    }
}

impl CookieSessions {
    /// Cookie sessions sealed with keys derived from `keys` (the first
    /// seals, all open).
    ///
    /// # Panics
    ///
    /// Never for a ring built by [`Keys`]' constructors (each key derives
    /// its cipher key once, here); see [`try_new`](Self::try_new).
    ///
    /// ```
    /// use sessionware::{CookieSessions, Keys};
    /// let sessions = CookieSessions::new(Keys::generate().unwrap());
    /// assert!(!format!("{sessions:?}").is_empty());
    /// ```
    pub fn new(keys: Keys) -> Self {
        match Self::try_new(keys) {
            Ok(sessions) => sessions,
            Err(e) => panic!("sessionware: cookie session keys: {e}"),
        }
    }

    /// [`new`](Self::new), returning a key derivation failure instead of
    /// panicking.
    ///
    /// # Errors
    ///
    /// [`KeyError`] if a cipher key cannot be derived (never expected).
    ///
    /// ```
    /// use sessionware::{CookieSessions, Keys};
    /// assert!(CookieSessions::try_new(Keys::generate().unwrap()).is_ok());
    /// ```
    pub fn try_new(keys: Keys) -> Result<Self, KeyError> {
        let sealer = Arc::new(Sealer::new(&keys, "")?);
        Ok(Self { keys, sealer, cutoffs: None })
    }

    /// Seals this application's cookies under keys of its own, derived
    /// from the ring and `context` (for example the application's name):
    /// another application with the same ring and cookie name but another
    /// context cannot open them, nor they its. Without a context, sessions
    /// are told apart only by the ring (give each application its own).
    ///
    /// ```
    /// use sessionware::{CookieSessions, Keys};
    /// let keys = Keys::generate().unwrap();
    /// let billing = CookieSessions::new(keys.clone()).context("billing");
    /// let blog = CookieSessions::new(keys).context("blog");
    /// # let _ = (billing, blog);
    /// ```
    ///
    /// # Panics
    ///
    /// As [`new`](Self::new): never for a ring built by [`Keys`]' constructors.
    pub fn context(mut self, context: &str) -> Self {
        match Sealer::new(&self.keys, context) {
            Ok(sealer) => self.sealer = Arc::new(sealer),
            Err(e) => panic!("sessionware: cookie session keys: {e}"),
        }
        self
    }

    /// Honours the per-user credential epoch (and the global cutoff) kept
    /// by `store`: see the revocation limits above. Each request of a
    /// cookie session reads the cutoffs once; a logout of a signed-in
    /// session ends all of that user's cookie sessions.
    ///
    /// ```
    /// use sessionware::{store::MemoryStore, CookieSessions, Keys, SessionLayer};
    /// let epochs = MemoryStore::default(); // production: a Redis or SQL store shared by every process
    /// let layer = SessionLayer::cookie_sessions(CookieSessions::new(Keys::generate().unwrap()).with_cutoffs(epochs));
    /// # let _ = layer;
    /// ```
    pub fn with_cutoffs(mut self, store: impl Cutoffs) -> Self {
        self.cutoffs = Some(Arc::new(store));
        self
    }

    pub(crate) fn into_parts(self) -> (Arc<Sealer>, Keys, Option<Arc<dyn Cutoffs>>) {
        (self.sealer, self.keys, self.cutoffs)
    }
}
