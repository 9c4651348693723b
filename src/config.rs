//! Cookie settings, timeouts and limits, validated when built.

use std::time::Duration;

use cookie::Cookie;

use crate::{
    binding::{Binding, BindingPolicy},
    clock::ms,
    cross_origin::{CrossOrigin, Exempt, Origin},
    store::{LimitPolicy, SessionLimit},
    ConfigError, PrefixRule, SameSite, Transport, Undecodable,
};

/// Longest timeout accepted: browsers cap cookie lifetimes at 400 days.
const MAX_TIMEOUT: Duration = Duration::from_secs(400 * 24 * 3600);
/// [`MAX_TIMEOUT`] in ms: no cookie and no deadline the layer grants reaches further.
pub(crate) const MAX_TIMEOUT_MS: u64 = 400 * 24 * 3600 * 1000;
/// The default overlap of a periodic renewal.
const DEFAULT_RENEW_OVERLAP: Duration = Duration::from_secs(10);
/// The longest overlap a periodic renewal may have.
const MAX_RENEW_OVERLAP: Duration = Duration::from_secs(60);
/// The default idle timeout of a remembered session.
const DEFAULT_PERSISTENT_IDLE: Duration = Duration::from_secs(30 * 24 * 3600);
/// The default absolute timeout of a remembered session.
const DEFAULT_PERSISTENT_ABSOLUTE: Duration = Duration::from_secs(90 * 24 * 3600);

/// The limits of one kind of session (ms): the normal ones, or those of a
/// remembered ([`persistent`](crate::store::Metadata::persistent)) session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// The idle timeout.
    pub(crate) idle_ms: u64,
    /// The absolute timeout, counted from the sign-in (or the creation).
    pub(crate) absolute_ms: u64,
    /// How long after the last recorded activity a read-only request
    /// refreshes the idle deadline: the same share of this idle window.
    pub(crate) touch_after_ms: u64,
}

/// The share `share` of `idle_ms`, in ms.
fn share_of(idle_ms: u64, share: f64) -> u64 {
    // Precision loss is irrelevant for a share of at most 400 days.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
    let ms = ((idle_ms as f64) * share) as u64;
    ms
}

/// Validated session settings: cookie attributes, timeouts and limits.
///
/// The defaults are the secure ones: the name `__Host-sid`, `Secure`,
/// `HttpOnly`, `SameSite=Lax`, `Path=/`, no `Domain`, no `Max-Age` (a browser
/// session cookie unless a session is made persistent), a 30-minute idle
/// timeout and a 12-hour absolute timeout.
///
/// ```
/// use std::time::Duration;
/// use sessionware::SessionConfig;
///
/// let config = SessionConfig::builder()
///     .idle_timeout(Duration::from_secs(15 * 60))
///     .absolute_timeout(Duration::from_secs(8 * 3600))
///     .build()
///     .unwrap();
/// assert_eq!(config.cookie_name(), "__Host-sid");
/// assert!(SessionConfig::builder().cookie_name("__Host-sid").path("/app").build().is_err());
/// ```
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub(crate) name: String,
    pub(crate) idle_ms: u64,
    pub(crate) absolute_ms: u64,
    pub(crate) touch_after_ms: u64,
    /// The limits of a remembered session ("remember me").
    pub(crate) persistent: Limits,
    pub(crate) max_cookie_header_bytes: usize,
    pub(crate) max_cookie_pairs: usize,
    pub(crate) max_data_bytes: usize,
    pub(crate) store_timeout: Duration,
    pub(crate) lock_lease_ms: u64,
    pub(crate) lock_wait: Duration,
    pub(crate) renew_after_ms: Option<u64>,
    pub(crate) renew_overlap_ms: u64,
    pub(crate) keep_on_login: Vec<String>,
    pub(crate) max_listed_sessions: usize,
    pub(crate) cross_origin: CrossOrigin,
    pub(crate) session_limit: Option<SessionLimit>,
    /// Where the session token travels: the cookie, or a request header.
    pub(crate) transport: Transport,
    /// What a read does with a stored value that does not deserialize.
    pub(crate) undecodable: Undecodable,
    /// Soft client binding: the policy and the trusted proxies.
    pub(crate) binding: Binding,
    /// `"; Path=/; Secure; HttpOnly; SameSite=Lax"`: the attributes of every
    /// session cookie, rendered once by the `cookie` crate.
    pub(crate) attributes: String,
    /// The whole removal cookie, rendered once.
    pub(crate) removal: String,
}

impl Default for SessionConfig {
    fn default() -> Self {
        match SessionConfigBuilder::default().build() {
            Ok(c) => c,
            // The defaults are valid; a test pins this.
            Err(e) => unreachable!("default session config is invalid: {e}"),
        }
    }
}

impl SessionConfig {
    /// A builder starting from the secure defaults.
    ///
    /// ```
    /// # use sessionware::SessionConfig;
    /// let config = SessionConfig::builder().build().unwrap();
    /// assert_eq!(config.cookie_name(), "__Host-sid");
    /// ```
    pub fn builder() -> SessionConfigBuilder {
        SessionConfigBuilder::default()
    }

    /// The development preset
    /// ([`SessionConfigBuilder::development`]) with every other setting at
    /// its default: the cookie `sid` without `Secure`, for plain-HTTP
    /// development (browsers and curl drop a `Secure` cookie on plain HTTP to
    /// any host but `localhost`/`127.0.0.1`), and a warning logged once.
    /// Never in production.
    ///
    /// ```
    /// # use sessionware::SessionConfig;
    /// let config = SessionConfig::development();
    /// assert_eq!(config.cookie_name(), "sid");
    /// ```
    pub fn development() -> Self {
        match SessionConfigBuilder::default().development().build() {
            Ok(c) => c,
            // The defaults with the preset are valid; a test pins this.
            Err(e) => unreachable!("development session config is invalid: {e}"),
        }
    }

    /// The session cookie's name.
    ///
    /// ```
    /// # use sessionware::SessionConfig;
    /// assert_eq!(SessionConfig::default().cookie_name(), "__Host-sid");
    /// ```
    pub fn cookie_name(&self) -> &str {
        &self.name
    }

    /// The idle (inactivity) timeout.
    ///
    /// ```
    /// # use sessionware::SessionConfig;
    /// assert_eq!(SessionConfig::default().idle_timeout().as_secs(), 1800);
    /// ```
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_ms)
    }

    /// The cross-origin policy (see [`CrossOrigin`]).
    ///
    /// ```
    /// # use sessionware::SessionConfig;
    /// assert!(SessionConfig::default().cross_origin().is_enabled());
    /// ```
    pub fn cross_origin(&self) -> &CrossOrigin {
        &self.cross_origin
    }

    /// Where the layer carries the session token (see [`Transport`]).
    ///
    /// ```
    /// # use sessionware::{SessionConfig, Transport};
    /// assert_eq!(SessionConfig::default().transport(), &Transport::Cookie);
    /// ```
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// Whether the layer's CSRF defences (its cross-origin check, and any
    /// other that asks) apply: on a cookie layer, not on a header layer
    /// (see [`Transport::Header`]). The one place this is decided.
    pub(crate) fn needs_csrf(&self) -> bool {
        self.transport.needs_csrf()
    }

    /// The limits of a session: a remembered session's own, or the normal
    /// ones. The one place the choice is made (`meta.persistent` selects).
    pub(crate) fn limits(&self, persistent: bool) -> Limits {
        if persistent {
            self.persistent
        } else {
            Limits { idle_ms: self.idle_ms, absolute_ms: self.absolute_ms, touch_after_ms: self.touch_after_ms }
        }
    }

    /// The idle timeout of a remembered session
    /// ([`persistent_idle_timeout`](SessionConfigBuilder::persistent_idle_timeout)).
    ///
    /// ```
    /// # use sessionware::SessionConfig;
    /// assert_eq!(SessionConfig::default().persistent_idle_timeout().as_secs(), 30 * 24 * 3600);
    /// ```
    pub fn persistent_idle_timeout(&self) -> Duration {
        Duration::from_millis(self.persistent.idle_ms)
    }

    /// The absolute timeout of a remembered session
    /// ([`persistent_absolute_timeout`](SessionConfigBuilder::persistent_absolute_timeout)).
    ///
    /// ```
    /// # use sessionware::SessionConfig;
    /// assert_eq!(SessionConfig::default().persistent_absolute_timeout().as_secs(), 90 * 24 * 3600);
    /// ```
    pub fn persistent_absolute_timeout(&self) -> Duration {
        Duration::from_millis(self.persistent.absolute_ms)
    }

    /// Until when a store keeps a cutoff the layer makes: for good. A
    /// session's absolute deadline comes from the configuration that signed
    /// it in, which may not be this one (a redeploy with a shorter absolute
    /// timeout, two applications on one store), so no time after which every
    /// session a cutoff ended is past its deadline can be known here. A
    /// cutoff is one small record per user who was ever cut, and one more.
    pub(crate) fn cutoff_kept_until(&self, _value: u64) -> u64 {
        u64::MAX
    }

    /// The keys of pre-login data that survive a login.
    ///
    /// ```
    /// # use sessionware::SessionConfig;
    /// assert!(SessionConfig::default().keeps_on_login().is_empty());
    /// ```
    pub fn keeps_on_login(&self) -> &[String] {
        &self.keep_on_login
    }

    /// The absolute timeout, counted from creation or from the last login.
    ///
    /// ```
    /// # use sessionware::SessionConfig;
    /// assert_eq!(SessionConfig::default().absolute_timeout().as_secs(), 12 * 3600);
    /// ```
    pub fn absolute_timeout(&self) -> Duration {
        Duration::from_millis(self.absolute_ms)
    }

    /// The per-user session limit, if one is set
    /// ([`max_sessions_per_user`](SessionConfigBuilder::max_sessions_per_user)).
    ///
    /// ```
    /// # use sessionware::{LimitPolicy, SessionConfig};
    /// assert!(SessionConfig::default().session_limit().is_none());
    /// let config = SessionConfig::builder().max_sessions_per_user(3, LimitPolicy::RefuseNew).build().unwrap();
    /// let limit = config.session_limit().unwrap();
    /// assert_eq!((limit.max.get(), limit.policy), (3, LimitPolicy::RefuseNew));
    /// ```
    pub fn session_limit(&self) -> Option<SessionLimit> {
        self.session_limit
    }

    /// What a read does with a stored value that does not deserialize
    /// ([`undecodable_values`](SessionConfigBuilder::undecodable_values)).
    ///
    /// ```
    /// # use sessionware::{SessionConfig, Undecodable};
    /// assert_eq!(SessionConfig::default().undecodable_values(), Undecodable::Fail);
    /// ```
    pub fn undecodable_values(&self) -> Undecodable {
        self.undecodable
    }

    /// What a signed-in request from another client does
    /// ([`client_binding`](SessionConfigBuilder::client_binding)).
    ///
    /// ```
    /// # use sessionware::{BindingPolicy, SessionConfig};
    /// assert_eq!(SessionConfig::default().client_binding(), BindingPolicy::Event);
    /// ```
    pub fn client_binding(&self) -> BindingPolicy {
        self.binding.policy
    }

    /// The `Set-Cookie` value that carries `token` (tests).
    #[cfg(test)]
    pub(crate) fn set_cookie(&self, token: &str, max_age_secs: Option<u64>) -> String {
        let mut out = format!("{}={token}{}", self.name, self.attributes);
        if let Some(secs) = max_age_secs {
            out.push_str(&format!("; Max-Age={secs}"));
        }
        out
    }
}

/// Builder of a [`SessionConfig`]; [`build`](SessionConfigBuilder::build)
/// rejects combinations that browsers would drop or that weaken the prefix.
///
/// ```
/// use sessionware::{SameSite, SessionConfig};
/// // SameSite=None needs the explicit cross-site opt-in.
/// assert!(SessionConfig::builder().same_site(SameSite::None).build().is_err());
/// assert!(SessionConfig::builder().same_site(SameSite::None).allow_cross_site().build().is_ok());
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct SessionConfigBuilder {
    /// The name given to `cookie_name`; `None` for the default, which
    /// [`default_cookie_name`] decides.
    name: Option<String>,
    path: String,
    domain: Option<String>,
    same_site: SameSite,
    allow_cross_site: bool,
    insecure: Insecure,
    idle: Duration,
    absolute: Duration,
    touch_after: f64,
    /// The limits of a remembered session; `None`: the default (30 and 90
    /// days), raised to the normal timeout if that is longer.
    persistent_idle: Option<Duration>,
    persistent_absolute: Option<Duration>,
    max_cookie_header_bytes: usize,
    max_cookie_pairs: usize,
    max_data_bytes: usize,
    store_timeout: Duration,
    lock_lease: Duration,
    lock_wait: Duration,
    renew_after: Option<Duration>,
    renew_overlap: Duration,
    keep_on_login: Vec<String>,
    max_listed_sessions: usize,
    cross_origin: bool,
    trusted_origins: Vec<String>,
    cross_origin_exempt: Vec<String>,
    max_sessions_per_user: Option<(usize, LimitPolicy)>,
    transport: Transport,
    undecodable: Undecodable,
    binding: BindingPolicy,
    trusted_proxies: Vec<String>,
    partitioned: bool,
}

impl Default for SessionConfigBuilder {
    fn default() -> Self {
        Self {
            name: None,
            path: "/".into(),
            domain: None,
            same_site: SameSite::Lax,
            allow_cross_site: false,
            insecure: Insecure::No,
            idle: Duration::from_secs(30 * 60),
            absolute: Duration::from_secs(12 * 3600),
            touch_after: 0.1,
            persistent_idle: None,
            persistent_absolute: None,
            max_cookie_header_bytes: 8 * 1024,
            max_cookie_pairs: 128,
            max_data_bytes: 64 * 1024,
            store_timeout: Duration::from_secs(1),
            lock_lease: Duration::from_secs(10),
            lock_wait: Duration::from_secs(5),
            renew_after: None,
            renew_overlap: DEFAULT_RENEW_OVERLAP,
            keep_on_login: Vec::new(),
            max_listed_sessions: 100,
            cross_origin: true,
            trusted_origins: Vec::new(),
            cross_origin_exempt: Vec::new(),
            max_sessions_per_user: None,
            transport: Transport::Cookie,
            undecodable: Undecodable::Fail,
            binding: BindingPolicy::default(),
            trusted_proxies: Vec::new(),
            partitioned: false,
        }
    }
}

impl SessionConfigBuilder {
    /// The cookie name (default `__Host-sid`). It must be an RFC 6265bis token.
    ///
    /// ```
    /// # use sessionware::SessionConfig;
    /// assert!(SessionConfig::builder().cookie_name("__Host-app").build().is_ok());
    /// assert!(SessionConfig::builder().cookie_name("bad name").build().is_err());
    /// ```
    pub fn cookie_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The cookie path (default `/`; a `__Host-` name needs `/`).
    ///
    /// ```
    /// # use sessionware::SessionConfig;
    /// assert!(SessionConfig::builder().cookie_name("__Secure-sid").path("/app").build().is_ok());
    /// ```
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// A `Domain` attribute, which shares the cookie with subdomains. It needs
    /// a `__Secure-` name; prefer host-only cookies.
    ///
    /// ```
    /// # use sessionware::SessionConfig;
    /// assert!(SessionConfig::builder().domain("example.com").build().is_err());
    /// assert!(SessionConfig::builder().cookie_name("__Secure-sid").domain("example.com").build().is_ok());
    /// ```
    pub fn domain(mut self, domain: impl Into<String>) -> Self {
        self.domain = Some(domain.into());
        self
    }

    /// The `SameSite` attribute (default `Lax`). `None` needs
    /// [`allow_cross_site`](Self::allow_cross_site).
    ///
    /// # The `Strict` pitfall: sign-in callbacks and links
    ///
    /// A browser sends a `Strict` cookie only on requests that start on
    /// this site. A top-level navigation from another site (an OAuth or SSO
    /// provider redirecting back to `/callback`, a link in an e-mail or a
    /// chat) arrives **without** it: the application sees no session, may
    /// start a new one, and loses what it kept for the flow (the OAuth
    /// `state` and PKCE verifier), so the sign-in fails or the user looks
    /// signed out. A `Lax` cookie is sent on such top-level `GET`
    /// navigations (never on cross-site `POST`s or subresource requests).
    ///
    /// Keep the default `Lax` unless you need `Strict`. With `Strict`, use
    /// two cookies: the session cookie `Strict`, and a second
    /// [`SessionLayer`](crate::SessionLayer) with another cookie name and
    /// `Lax` on the sign-in routes only, holding the short-lived flow state.
    /// The callback finds its state in the `Lax` session and answers with a
    /// page that navigates on to a same-site route (a redirect would still
    /// count as cross-site), where both cookies arrive and the main session
    /// signs the user in. (Two layers on one route: the inner one's
    /// [`Session`](crate::Session) is the one in the request's extensions;
    /// copy the outer one into an extension of your own type first.)
    /// `tests/cookie_attributes.rs` runs this setup against a model of the
    /// browser's rule.
    ///
    /// ```
    /// # use sessionware::{SameSite, SessionConfig};
    /// let main = SessionConfig::builder().same_site(SameSite::Strict).build().unwrap();
    /// let flow = SessionConfig::builder()
    ///     .cookie_name("__Host-signin")
    ///     .same_site(SameSite::Lax)
    ///     .idle_timeout(std::time::Duration::from_secs(600))
    ///     .absolute_timeout(std::time::Duration::from_secs(600))
    ///     .build()
    ///     .unwrap();
    /// assert_ne!(main.cookie_name(), flow.cookie_name());
    /// ```
    pub fn same_site(mut self, same_site: SameSite) -> Self {
        self.same_site = same_site;
        self
    }

    /// Opts in to `SameSite=None` (the cookie is sent on cross-site requests;
    /// protect state-changing routes against CSRF yourself).
    ///
    /// ```
    /// # use sessionware::{SameSite, SessionConfig};
    /// let c = SessionConfig::builder().same_site(SameSite::None).allow_cross_site().build();
    /// assert!(c.is_ok());
    /// ```
    pub fn allow_cross_site(mut self) -> Self {
        self.allow_cross_site = true;
        self
    }

    /// Drops the `Secure` attribute, for plain-HTTP development only. The
    /// default name then is `sid` (browsers drop a `__Host-` cookie without
    /// `Secure`); a `__Host-` or `__Secure-` name chosen with
    /// [`cookie_name`](Self::cookie_name) is refused. See also
    /// [`development`](Self::development), which also logs a warning.
    ///
    /// ```
    /// # use sessionware::{ConfigError, SessionConfig};
    /// let config = SessionConfig::builder().dangerous_insecure_cookies().build().unwrap();
    /// assert_eq!(config.cookie_name(), "sid");
    /// let chosen = SessionConfig::builder().cookie_name("__Host-sid").dangerous_insecure_cookies().build();
    /// assert!(matches!(chosen, Err(ConfigError::HostPrefix { .. })));
    /// ```
    pub fn dangerous_insecure_cookies(mut self) -> Self {
        self.insecure = Insecure::Dangerous;
        self
    }

    /// The development preset, for plain HTTP (on a development machine or
    /// a test host reached by name or LAN address, where a `Secure` cookie
    /// would be dropped): the cookie
    /// has no `Secure` attribute and, unless
    /// [`cookie_name`](Self::cookie_name) chose one, the name `sid`
    /// (as [`dangerous_insecure_cookies`](Self::dangerous_insecure_cookies)),
    /// and building it logs a warning (`tracing`, once per process) so that
    /// a production deploy with it shows in the logs. Everything else keeps
    /// its secure default. Never use it in production: the cookie then
    /// travels in clear text.
    ///
    /// ```
    /// # use sessionware::SessionConfig;
    /// let config = SessionConfig::builder().development().build().unwrap();
    /// assert_eq!(config.cookie_name(), "sid");
    /// assert_eq!(SessionConfig::development().cookie_name(), "sid");
    /// ```
    pub fn development(mut self) -> Self {
        self.insecure = Insecure::Development;
        self
    }

    /// The idle timeout (default 30 minutes), enforced by the layer on every load.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use sessionware::SessionConfig;
    /// assert!(SessionConfig::builder().idle_timeout(Duration::ZERO).build().is_err());
    /// ```
    pub fn idle_timeout(mut self, idle: Duration) -> Self {
        self.idle = idle;
        self
    }

    /// The absolute timeout (default 12 hours), counted from creation or the
    /// last login; activity never extends it. At most 400 days.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use sessionware::SessionConfig;
    /// assert!(SessionConfig::builder().absolute_timeout(Duration::MAX).build().is_err());
    /// ```
    pub fn absolute_timeout(mut self, absolute: Duration) -> Self {
        self.absolute = absolute;
        self
    }

    /// The share of the idle window that must pass before a read-only request
    /// refreshes the idle deadline with one `touch` (default `0.1`; `0.0`
    /// touches on every request).
    ///
    /// ```
    /// # use sessionware::SessionConfig;
    /// assert!(SessionConfig::builder().touch_after(1.5).build().is_err());
    /// ```
    pub fn touch_after(mut self, share: f64) -> Self {
        self.touch_after = share;
        self
    }

    /// The idle timeout of a remembered session (default 30 days, or the
    /// [`idle_timeout`](Self::idle_timeout) if that is longer): a session
    /// made persistent by [`Session::set_persistent`](crate::Session::set_persistent)
    /// ends after this long without a request, checked by the layer like the
    /// normal one. A read-only request refreshes it once the
    /// [`touch_after`](Self::touch_after) share of this window has passed
    /// (3 days by default), so a remembered session is not written on every
    /// request. It must be at least the normal idle timeout and at most the
    /// persistent absolute timeout.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use sessionware::{ConfigError, SessionConfig};
    /// let day = Duration::from_secs(24 * 3600);
    /// let config = SessionConfig::builder().persistent_idle_timeout(7 * day).build().unwrap();
    /// assert_eq!(config.persistent_idle_timeout(), 7 * day);
    /// // Shorter than the normal idle timeout (30 minutes): refused.
    /// let short = SessionConfig::builder().persistent_idle_timeout(Duration::from_secs(60)).build();
    /// assert!(matches!(short, Err(ConfigError::Timeouts(_))));
    /// ```
    pub fn persistent_idle_timeout(mut self, idle: Duration) -> Self {
        self.persistent_idle = Some(idle);
        self
    }

    /// The absolute timeout of a remembered session (default 90 days, or
    /// the [`absolute_timeout`](Self::absolute_timeout) if that is longer),
    /// counted from the sign-in (or the creation of an anonymous session
    /// made persistent in the request that created it). At least the normal
    /// absolute timeout, at most 400 days (the browsers' cap on a cookie's
    /// lifetime); the cookie's `Max-Age` never reaches past it.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use sessionware::{ConfigError, SessionConfig};
    /// let day = Duration::from_secs(24 * 3600);
    /// let config = SessionConfig::builder().persistent_absolute_timeout(14 * day).build();
    /// // The default persistent idle timeout (30 days) would pass it: refused.
    /// assert!(matches!(config, Err(ConfigError::Timeouts(_))));
    /// let config = SessionConfig::builder()
    ///     .persistent_idle_timeout(7 * day)
    ///     .persistent_absolute_timeout(14 * day)
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(config.persistent_absolute_timeout(), 14 * day);
    /// assert!(SessionConfig::builder().persistent_absolute_timeout(401 * day).build().is_err());
    /// ```
    pub fn persistent_absolute_timeout(mut self, absolute: Duration) -> Self {
        self.persistent_absolute = Some(absolute);
        self
    }

    /// Cap on the `Cookie` header bytes the layer reads (default 8 KiB); a
    /// larger header counts as no session.
    ///
    /// ```
    /// # use sessionware::SessionConfig;
    /// assert!(SessionConfig::builder().max_cookie_header_bytes(0).build().is_err());
    /// ```
    pub fn max_cookie_header_bytes(mut self, bytes: usize) -> Self {
        self.max_cookie_header_bytes = bytes;
        self
    }

    /// Cap on the number of cookie pairs the layer reads (default 128); more
    /// count as no session.
    ///
    /// ```
    /// # use sessionware::SessionConfig;
    /// assert!(SessionConfig::builder().max_cookie_pairs(0).build().is_err());
    /// ```
    pub fn max_cookie_pairs(mut self, pairs: usize) -> Self {
        self.max_cookie_pairs = pairs;
        self
    }

    /// Cap on the serialized session data (default 64 KiB); writes beyond it
    /// fail with [`SessionError::TooLarge`](crate::SessionError::TooLarge).
    ///
    /// ```
    /// # use sessionware::SessionConfig;
    /// assert!(SessionConfig::builder().max_data_bytes(1024).build().is_ok());
    /// ```
    pub fn max_data_bytes(mut self, bytes: usize) -> Self {
        self.max_data_bytes = bytes;
        self
    }

    /// Timeout of every store call (default 1 second); a call that takes
    /// longer fails with [`StoreError::Timeout`](crate::StoreError::Timeout).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use sessionware::SessionConfig;
    /// assert!(SessionConfig::builder().store_timeout(Duration::from_millis(200)).build().is_ok());
    /// ```
    pub fn store_timeout(mut self, timeout: Duration) -> Self {
        self.store_timeout = timeout;
        self
    }

    /// How long an exclusive lock ([`Session::lock`](crate::Session::lock))
    /// lasts at most (default 10 seconds): a holder that dies blocks the
    /// session no longer than this. Handlers holding the lock must finish
    /// within it.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use sessionware::SessionConfig;
    /// assert!(SessionConfig::builder().lock_lease(Duration::from_secs(30)).build().is_ok());
    /// ```
    pub fn lock_lease(mut self, lease: Duration) -> Self {
        self.lock_lease = lease;
        self
    }

    /// How long [`Session::lock`](crate::Session::lock) waits for another
    /// holder before failing with
    /// [`SessionError::LockTimeout`](crate::SessionError::LockTimeout)
    /// (default 5 seconds).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use sessionware::SessionConfig;
    /// assert!(SessionConfig::builder().lock_wait(Duration::from_secs(1)).build().is_ok());
    /// ```
    pub fn lock_wait(mut self, wait: Duration) -> Self {
        self.lock_wait = wait;
        self
    }

    /// Renews the ID of a session in use once its ID is this old (periodic
    /// renewal, OWASP's "renew the session ID periodically"; off by
    /// default). The layer does it on the first request past that age; the
    /// old ID keeps working for the [`renew_overlap`](Self::renew_overlap)
    /// only, and only until the new ID is first used. Renewal never extends
    /// the absolute timeout.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use sessionware::SessionConfig;
    /// assert!(SessionConfig::builder().renew_after(Duration::from_secs(900)).build().is_ok());
    /// assert!(SessionConfig::builder().renew_after(Duration::ZERO).build().is_err());
    /// ```
    pub fn renew_after(mut self, age: Duration) -> Self {
        self.renew_after = Some(age);
        self
    }

    /// How long the old ID of a periodic renewal keeps working, so that
    /// requests already in flight (other tabs, parallel fetches) are not
    /// logged out (default 10 seconds, at most 60; zero means none). A login
    /// or [`Session::renew`](crate::Session::renew) never has an overlap.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use sessionware::SessionConfig;
    /// assert!(SessionConfig::builder().renew_overlap(Duration::ZERO).build().is_ok());
    /// assert!(SessionConfig::builder().renew_overlap(Duration::from_secs(61)).build().is_err());
    /// ```
    pub fn renew_overlap(mut self, overlap: Duration) -> Self {
        self.renew_overlap = overlap;
        self
    }

    /// Keys of the pre-login data that survive a
    /// [`login`](crate::Session::login) (the login data policy, default:
    /// none). Everything else a visitor stored before logging in is dropped,
    /// so nothing an attacker planted in a session before it was
    /// authenticated carries over. When the session belonged to a different
    /// user, nothing survives.
    ///
    /// ```
    /// # use sessionware::SessionConfig;
    /// let config = SessionConfig::builder().keep_on_login(["cart", "locale"]).build().unwrap();
    /// assert_eq!(config.keeps_on_login(), ["cart", "locale"]);
    /// // The crate's own keys (the CSRF secret) are never kept:
    /// let reserved = SessionConfig::builder().keep_on_login(["__sessionware.csrf"]).build();
    /// assert_eq!(reserved.unwrap_err(), sessionware::ConfigError::ReservedKey("__sessionware.csrf".into()));
    /// ```
    pub fn keep_on_login<I, K>(mut self, keys: I) -> Self
    where
        I: IntoIterator<Item = K>,
        K: Into<String>,
    {
        self.keep_on_login = keys.into_iter().map(Into::into).collect();
        self
    }

    /// The most sessions [`Session::sessions`](crate::Session::sessions)
    /// lists (default 100; the most recently used are kept). A listing is
    /// one store call that reads every listed record: the bound keeps a user
    /// with many sessions from making it unbounded.
    ///
    /// ```
    /// # use sessionware::SessionConfig;
    /// assert!(SessionConfig::builder().max_listed_sessions(10).build().is_ok());
    /// assert!(SessionConfig::builder().max_listed_sessions(0).build().is_err());
    /// ```
    pub fn max_listed_sessions(mut self, max: usize) -> Self {
        self.max_listed_sessions = max;
        self
    }

    /// Trusts another origin (`scheme://host[:port]`, compared whole) to
    /// make state-changing requests with the session, for example a sibling
    /// subdomain. Repeatable. See [`CrossOrigin`].
    ///
    /// ```
    /// # use sessionware::{ConfigError, SessionConfig};
    /// assert!(SessionConfig::builder().trusted_origin("https://admin.example").build().is_ok());
    /// let bad = SessionConfig::builder().trusted_origin("https://admin.example/").build();
    /// assert!(matches!(bad, Err(ConfigError::InvalidOrigin(_))));
    /// ```
    pub fn trusted_origin(mut self, origin: impl Into<String>) -> Self {
        self.trusted_origins.push(origin.into());
        self
    }

    /// Leaves a path (`/webhooks/stripe`) or a subtree (`/webhooks/*`) out
    /// of the cross-origin check, for endpoints that other sites call by
    /// design and that authenticate otherwise (a signed webhook). Repeatable.
    ///
    /// ```
    /// # use sessionware::SessionConfig;
    /// assert!(SessionConfig::builder().cross_origin_exempt("/webhooks/*").build().is_ok());
    /// assert!(SessionConfig::builder().cross_origin_exempt("webhooks").build().is_err());
    /// ```
    pub fn cross_origin_exempt(mut self, pattern: impl Into<String>) -> Self {
        self.cross_origin_exempt.push(pattern.into());
        self
    }

    /// Turns the cross-origin check off: any site can then make its
    /// visitors' browsers post to this one with their session. Only for an
    /// application that defends every state-changing route itself.
    ///
    /// ```
    /// # use sessionware::SessionConfig;
    /// let config = SessionConfig::builder().dangerous_allow_cross_origin().build().unwrap();
    /// assert!(!config.cross_origin().is_enabled());
    /// ```
    pub fn dangerous_allow_cross_origin(mut self) -> Self {
        self.cross_origin = false;
        self
    }

    /// Limits how many live sessions one user may have (R46; default: no
    /// limit). A login past `max` ends the user's least recently used
    /// sessions ([`LimitPolicy::EvictLeastRecent`], the default policy, an
    /// [`Evicted`](crate::EventKind::Evicted) event) or is refused
    /// ([`LimitPolicy::RefuseNew`]: the response becomes
    /// [`SessionError::TooManySessions`](crate::SessionError::TooManySessions),
    /// a 409 by default, with a
    /// [`LoginRefused`](crate::EventKind::LoginRefused) event, and the
    /// client keeps the session it had). The store keeps the limit in the
    /// same atomic step as the login's renewal, with the logins of one user
    /// taking turns, so parallel logins cannot pass it (see the
    /// [store contract](crate::store#the-per-user-session-limit)).
    ///
    /// The layer needs a store with a per-user index
    /// ([`UserIndex`](crate::store::UserIndex)): on a layer built without
    /// one, every login fails with
    /// [`SessionError::Unsupported`](crate::SessionError::Unsupported)
    /// (logged as an error when the configuration is set). `max` must be at
    /// least 1.
    ///
    /// ```
    /// # use sessionware::{ConfigError, LimitPolicy, SessionConfig};
    /// let config = SessionConfig::builder().max_sessions_per_user(5, LimitPolicy::default()).build();
    /// assert!(config.is_ok());
    /// let zero = SessionConfig::builder().max_sessions_per_user(0, LimitPolicy::default()).build();
    /// assert!(matches!(zero, Err(ConfigError::Limit(_))));
    /// ```
    pub fn max_sessions_per_user(mut self, max: usize, policy: LimitPolicy) -> Self {
        self.max_sessions_per_user = Some((max, policy));
        self
    }

    /// Where the session token travels (default [`Transport::Cookie`]):
    /// [`Transport::header()`] carries it in the `X-Session-Token` request
    /// and response header instead, for API and mobile clients. A header
    /// layer never sets a cookie and skips the cross-origin check; its
    /// tokens are refused by cookie layers and the reverse. A name a
    /// browser sets itself, a CORS-safelisted one or one with an HTTP
    /// meaning is refused.
    ///
    /// ```
    /// # use http::HeaderName;
    /// # use sessionware::{ConfigError, SessionConfig, Transport};
    /// let config = SessionConfig::builder().transport(Transport::header()).build().unwrap();
    /// assert_eq!(config.transport(), &Transport::header());
    /// let custom = Transport::Header(HeaderName::from_static("x-api-session"));
    /// assert!(SessionConfig::builder().transport(custom).build().is_ok());
    /// let cookie = Transport::Header(http::header::COOKIE);
    /// assert!(matches!(SessionConfig::builder().transport(cookie).build(), Err(ConfigError::InvalidHeaderName(_))));
    /// ```
    pub fn transport(mut self, transport: Transport) -> Self {
        self.transport = transport;
        self
    }

    /// What a read ([`Session::get`](crate::Session::get),
    /// [`take`](crate::Session::take), [`Typed`](crate::Typed)) does with a
    /// stored value that does not deserialize into the type asked for, for
    /// example one written before a deploy changed the type: fail with
    /// [`SessionError::Undecodable`](crate::SessionError::Undecodable)
    /// ([`Undecodable::Fail`], the default), or read it as absent with an
    /// [`EventKind::Undecodable`](crate::EventKind::Undecodable) event
    /// ([`Undecodable::Absent`]). Either way the stored value stays until a
    /// request writes that key.
    ///
    /// ```
    /// # use sessionware::{SessionConfig, Undecodable};
    /// let config = SessionConfig::builder().undecodable_values(Undecodable::Absent).build().unwrap();
    /// assert_eq!(config.undecodable_values(), Undecodable::Absent);
    /// ```
    pub fn undecodable_values(mut self, policy: Undecodable) -> Self {
        self.undecodable = policy;
        self
    }

    /// What a signed-in request does when its client differs from the one
    /// the session was signed in from (R90; default
    /// [`BindingPolicy::Event`]): the user agent's family (its text without
    /// version numbers) or the coarse network (IPv4 /24, IPv6 /48; never
    /// the full address) that the login recorded. The event is
    /// [`ClientChanged`](crate::EventKind::ClientChanged), and
    /// [`Session::client_changed`](crate::Session::client_changed) tells a
    /// handler. With any policy but [`Off`](BindingPolicy::Off), the layer
    /// notes each request's user agent and address (a few cheap clones)
    /// even when the handler does not take the session.
    ///
    /// ```
    /// # use sessionware::{BindingPolicy, SessionConfig};
    /// let config = SessionConfig::builder().client_binding(BindingPolicy::End).build().unwrap();
    /// assert_eq!(config.client_binding(), BindingPolicy::End);
    /// ```
    pub fn client_binding(mut self, policy: BindingPolicy) -> Self {
        self.binding = policy;
        self
    }

    /// Adds reverse proxies (addresses such as `10.0.0.7`, or CIDR ranges
    /// such as `10.0.0.0/8`) whose `X-Forwarded-For` is believed (R89). The
    /// client's address is the socket peer (axum's `ConnectInfo`); when the
    /// peer is one of these, it is the right-most `X-Forwarded-For` entry
    /// that is not. By default no proxy is trusted and the header is never
    /// read: any client can send it. The address is used for the login's
    /// record ([`Session::sessions`](crate::Session::sessions)) and for
    /// [`client_binding`](Self::client_binding).
    ///
    /// ```
    /// # use sessionware::{ConfigError, SessionConfig};
    /// assert!(SessionConfig::builder().trusted_proxies(["10.0.0.0/8", "2001:db8::1"]).build().is_ok());
    /// let bad = SessionConfig::builder().trusted_proxies(["proxy.internal"]).build();
    /// assert_eq!(bad.unwrap_err(), ConfigError::InvalidProxy("proxy.internal".into()));
    /// ```
    pub fn trusted_proxies<I, S>(mut self, proxies: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.trusted_proxies.extend(proxies.into_iter().map(Into::into));
        self
    }

    /// Marks the session cookie (and its removal cookie) `Partitioned`
    /// (CHIPS), for an application embedded in other sites' pages: the
    /// browser keeps a separate cookie per top-level site, so third-party
    /// cookie blocking does not drop it, and no other site sees it. It
    /// needs `Secure` (refused with
    /// [`dangerous_insecure_cookies`](Self::dangerous_insecure_cookies));
    /// keep a `__Host-` name. An embedded page's requests are cross-site,
    /// so the cookie is sent there only with `SameSite=None`
    /// ([`allow_cross_site`](Self::allow_cross_site)).
    ///
    /// ```
    /// # use sessionware::{ConfigError, SameSite, SessionConfig};
    /// let config = SessionConfig::builder().partitioned().same_site(SameSite::None).allow_cross_site().build();
    /// assert!(config.is_ok());
    /// let insecure = SessionConfig::builder().cookie_name("sid").dangerous_insecure_cookies().partitioned().build();
    /// assert_eq!(insecure.unwrap_err(), ConfigError::PartitionedNeedsSecure);
    /// ```
    pub fn partitioned(mut self) -> Self {
        self.partitioned = true;
        self
    }

    /// Validates and builds the configuration.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first rule broken.
    ///
    /// ```
    /// # use sessionware::{ConfigError, PrefixRule, SessionConfig};
    /// let err = SessionConfig::builder().cookie_name("__Host-sid").domain("a.example").build();
    /// assert_eq!(err.unwrap_err(), ConfigError::HostPrefix { name: "__Host-sid".into(), rule: PrefixRule::NoDomain });
    /// ```
    pub fn build(mut self) -> Result<SessionConfig, ConfigError> {
        let secure = self.insecure == Insecure::No;
        let name = match self.name.take() {
            Some(name) => name,
            None => default_cookie_name(secure).to_string(),
        };
        if !is_token(&name) || name.len() > 64 {
            return Err(ConfigError::InvalidName);
        }
        if let Some(key) = self.keep_on_login.iter().find(|k| crate::session::is_reserved(k)) {
            // A login always drops the crate's own keys (the CSRF secret):
            // listing one would promise what never happens.
            return Err(ConfigError::ReservedKey(key.clone()));
        }
        if !self.path.starts_with('/') || self.path.len() > 1024 || !self.path.bytes().all(is_attr_byte) {
            return Err(ConfigError::InvalidPath);
        }
        if let Some(d) = &self.domain {
            let valid = !d.is_empty()
                && d.len() <= 253
                && d.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
            if !valid {
                return Err(ConfigError::InvalidDomain);
            }
        }
        let lower = name.to_ascii_lowercase();
        if lower.starts_with("__host-") {
            let broken = if !secure {
                Some(PrefixRule::Secure)
            } else if self.path != "/" {
                Some(PrefixRule::RootPath)
            } else if self.domain.is_some() {
                Some(PrefixRule::NoDomain)
            } else {
                None
            };
            if let Some(rule) = broken {
                return Err(ConfigError::HostPrefix { name, rule });
            }
        }
        if lower.starts_with("__secure-") && !secure {
            return Err(ConfigError::SecurePrefix { name });
        }
        if self.domain.is_some() && !lower.starts_with("__secure-") {
            return Err(ConfigError::DomainNeedsSecurePrefix { name });
        }
        if self.same_site == SameSite::None && (!secure || !self.allow_cross_site) {
            return Err(ConfigError::SameSiteNone);
        }
        if self.idle.is_zero() || self.absolute.is_zero() {
            return Err(ConfigError::Timeouts("timeouts must be greater than zero"));
        }
        if self.absolute > MAX_TIMEOUT || self.idle > MAX_TIMEOUT {
            return Err(ConfigError::Timeouts("timeouts must be at most 400 days"));
        }
        if self.idle > self.absolute {
            return Err(ConfigError::Timeouts("idle timeout must not exceed the absolute timeout"));
        }
        if !(0.0..=1.0).contains(&self.touch_after) {
            return Err(ConfigError::TouchShare);
        }
        // A remembered session's limits: never shorter than the normal
        // ones, never past the 400-day cookie cap.
        let persistent_idle = self.persistent_idle.unwrap_or(DEFAULT_PERSISTENT_IDLE.max(self.idle));
        let persistent_absolute = self.persistent_absolute.unwrap_or(DEFAULT_PERSISTENT_ABSOLUTE.max(self.absolute));
        if persistent_absolute > MAX_TIMEOUT {
            return Err(ConfigError::Timeouts("persistent timeouts must be at most 400 days"));
        }
        if persistent_idle < self.idle || persistent_absolute < self.absolute {
            return Err(ConfigError::Timeouts("persistent timeouts must not be shorter than the normal ones"));
        }
        if persistent_idle > persistent_absolute {
            return Err(ConfigError::Timeouts(
                "persistent idle timeout must not exceed the persistent absolute timeout",
            ));
        }
        if self.max_cookie_header_bytes == 0 || self.max_cookie_header_bytes > 1024 * 1024 {
            return Err(ConfigError::Limit("max_cookie_header_bytes must be within 1..=1 MiB"));
        }
        if self.max_cookie_pairs == 0 || self.max_cookie_pairs > 10_000 {
            return Err(ConfigError::Limit("max_cookie_pairs must be within 1..=10000"));
        }
        if self.max_data_bytes == 0 || self.max_data_bytes > 16 * 1024 * 1024 {
            return Err(ConfigError::Limit("max_data_bytes must be within 1..=16 MiB"));
        }
        if self.store_timeout.is_zero() {
            return Err(ConfigError::Limit("store_timeout must be greater than zero"));
        }
        if self.lock_lease.is_zero() || self.lock_lease > MAX_TIMEOUT || self.lock_wait > MAX_TIMEOUT {
            return Err(ConfigError::Limit(
                "lock_lease must be greater than zero and both lock times at most 400 days",
            ));
        }

        if self.renew_after.is_some_and(|d| d.is_zero() || d > MAX_TIMEOUT) {
            return Err(ConfigError::Limit("renew_after must be greater than zero and at most 400 days"));
        }
        if self.renew_overlap > MAX_RENEW_OVERLAP {
            return Err(ConfigError::Limit("renew_overlap must be at most 60 seconds"));
        }
        if self.max_listed_sessions == 0 {
            return Err(ConfigError::Limit("max_listed_sessions must be greater than zero"));
        }
        let trusted = self
            .trusted_origins
            .iter()
            .map(|o| Origin::parse(o).ok_or_else(|| ConfigError::InvalidOrigin(o.clone())))
            .collect::<Result<Vec<_>, _>>()?;
        let exempt = self
            .cross_origin_exempt
            .iter()
            .map(|p| Exempt::parse(p).ok_or_else(|| ConfigError::InvalidExemption(p.clone())))
            .collect::<Result<Vec<_>, _>>()?;
        let cross_origin = CrossOrigin { enabled: self.cross_origin, trusted, exempt, allow_http: !secure };
        if let Some(name) = self.transport.refused_name() {
            return Err(ConfigError::InvalidHeaderName(name.as_str().to_string()));
        }
        let session_limit = match self.max_sessions_per_user {
            Some((max, policy)) => match std::num::NonZeroUsize::new(max) {
                Some(max) => Some(SessionLimit::new(max, policy)),
                None => return Err(ConfigError::Limit("max_sessions_per_user must be greater than zero")),
            },
            None => None,
        };

        if self.partitioned && !secure {
            return Err(ConfigError::PartitionedNeedsSecure);
        }
        let binding = Binding::new(self.binding, &self.trusted_proxies).map_err(ConfigError::InvalidProxy)?;

        if self.insecure == Insecure::Development {
            warn_development_once();
        }
        let mut template = Cookie::build((name.clone(), ""))
            .path(self.path.clone())
            .secure(secure)
            .http_only(true)
            .same_site(self.same_site.into());
        if let Some(d) = &self.domain {
            template = template.domain(d.clone());
        }
        if self.partitioned {
            // On the removal cookie too: a removal without it does not
            // delete a partitioned cookie.
            template = template.partitioned(true);
        }
        let template = template.build();
        let rendered = template.to_string();
        let attributes = rendered.strip_prefix(&format!("{name}=")).unwrap_or_default().to_string();
        let mut removal = template;
        removal.make_removal();

        let idle_ms = ms(self.idle);
        let touch_after_ms = share_of(idle_ms, self.touch_after);
        let persistent_idle_ms = ms(persistent_idle);
        let persistent = Limits {
            idle_ms: persistent_idle_ms,
            absolute_ms: ms(persistent_absolute),
            touch_after_ms: share_of(persistent_idle_ms, self.touch_after),
        };
        Ok(SessionConfig {
            name,
            idle_ms,
            absolute_ms: ms(self.absolute),
            touch_after_ms,
            persistent,
            max_cookie_header_bytes: self.max_cookie_header_bytes,
            max_cookie_pairs: self.max_cookie_pairs,
            max_data_bytes: self.max_data_bytes,
            store_timeout: self.store_timeout,
            lock_lease_ms: ms(self.lock_lease),
            lock_wait: self.lock_wait,
            renew_after_ms: self.renew_after.map(ms),
            renew_overlap_ms: ms(self.renew_overlap),
            keep_on_login: self.keep_on_login,
            max_listed_sessions: self.max_listed_sessions,
            cross_origin,
            session_limit,
            transport: self.transport,
            undecodable: self.undecodable,
            binding,
            attributes,
            removal: removal.to_string(),
        })
    }
}

/// Whether the cookie drops `Secure`, and why: the development preset logs
/// a warning when built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Insecure {
    /// `Secure` is set (the default).
    No,
    /// `dangerous_insecure_cookies()`.
    Dangerous,
    /// `development()`.
    Development,
}

/// The cookie name when `cookie_name` chose none: `__Host-sid`, or `sid`
/// without `Secure` (browsers drop a `__Host-` cookie without it, and the
/// user never asked for the prefix). The one place the default is decided.
fn default_cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-sid"
    } else {
        "sid"
    }
}

/// Logs, once per process, that the development preset is on.
fn warn_development_once() {
    static WARNED: std::sync::Once = std::sync::Once::new();
    WARNED.call_once(|| {
        tracing::warn!(
            "sessionware: development preset (SessionConfigBuilder::development): the session cookie has no Secure \
             attribute and travels in clear text over HTTP; never use it in production"
        );
    });
}

/// RFC 9110 token characters (the cookie-name grammar of RFC 6265bis).
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}

/// Bytes allowed in an attribute value: visible ASCII and space, no `;`.
fn is_attr_byte(b: u8) -> bool {
    (0x20..0x7f).contains(&b) && b != b';'
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn session_cookie_is_the_signed_token_in_the_set_cookie_form() {
        let c = SessionConfig::default();
        let keys = crate::Keys::generate().unwrap();
        let id = crate::SessionId::generate().unwrap();
        for age in [None, Some(60)] {
            assert_eq!(
                crate::cookie::write::session_cookie(&c, &keys, &id, age),
                c.set_cookie(&keys.sign(&c.name, &id), age)
            );
        }
    }

    #[test]
    fn default_cookie_is_exactly_the_secure_one() {
        let c = SessionConfig::default();
        let header = c.set_cookie("v", None);
        assert_eq!(header, "__Host-sid=v; HttpOnly; SameSite=Lax; Secure; Path=/");
        let parsed = Cookie::parse(header).unwrap();
        assert_eq!(parsed.secure(), Some(true));
        assert_eq!(parsed.http_only(), Some(true));
        assert_eq!(parsed.same_site(), Some(cookie::SameSite::Lax));
        assert_eq!(parsed.path(), Some("/"));
        assert_eq!(parsed.domain(), None);
        assert_eq!(parsed.max_age(), None);
        assert_eq!(parsed.expires(), None);
    }

    #[test]
    fn partitioned_renders_on_the_cookie_and_its_removal() {
        let c = SessionConfig::builder().partitioned().same_site(SameSite::None).allow_cross_site().build().unwrap();
        assert_eq!(c.set_cookie("v", None), "__Host-sid=v; HttpOnly; SameSite=None; Partitioned; Secure; Path=/");
        assert_eq!(Cookie::parse(c.removal.clone()).unwrap().partitioned(), Some(true));
        assert!(!SessionConfig::default().removal.contains("Partitioned"));
    }

    #[test]
    fn removal_cookie_keeps_scope() {
        let c = SessionConfig::default();
        let set = Cookie::parse(c.set_cookie("v", None)).unwrap();
        let rm = Cookie::parse(c.removal.clone()).unwrap();
        assert_eq!(rm.name(), set.name());
        assert_eq!(rm.value(), "");
        assert_eq!(rm.path(), set.path());
        assert_eq!(rm.domain(), set.domain());
        assert_eq!(rm.secure(), Some(true));
        assert_eq!(rm.http_only(), Some(true));
        assert_eq!(rm.same_site(), set.same_site());
        assert_eq!(rm.max_age(), Some(cookie::time::Duration::ZERO));
        let expires = rm.expires_datetime().unwrap();
        assert!(expires < cookie::time::OffsetDateTime::now_utc());
    }

    #[test]
    fn prefix_rules() {
        let b = SessionConfig::builder;
        let host = |name: &str, rule| ConfigError::HostPrefix { name: name.into(), rule };
        assert_eq!(b().path("/x").build().unwrap_err(), host("__Host-sid", PrefixRule::RootPath));
        assert_eq!(
            b().cookie_name("__host-sid").path("/x").build().unwrap_err(),
            host("__host-sid", PrefixRule::RootPath)
        );
        // R14/R17: a chosen prefixed name is refused without Secure; the
        // default name becomes one without the prefix.
        assert_eq!(
            b().cookie_name("__Host-sid").dangerous_insecure_cookies().build().unwrap_err(),
            host("__Host-sid", PrefixRule::Secure)
        );
        assert_eq!(b().dangerous_insecure_cookies().build().unwrap().cookie_name(), "sid");
        assert_eq!(
            b().cookie_name("__Secure-sid").dangerous_insecure_cookies().build().unwrap_err(),
            ConfigError::SecurePrefix { name: "__Secure-sid".into() }
        );
        assert_eq!(
            b().cookie_name("sid").domain("example.com").build().unwrap_err(),
            ConfigError::DomainNeedsSecurePrefix { name: "sid".into() }
        );
        assert_eq!(
            b().cookie_name("sid")
                .dangerous_insecure_cookies()
                .same_site(SameSite::None)
                .allow_cross_site()
                .build()
                .unwrap_err(),
            ConfigError::SameSiteNone
        );
        let insecure = b().cookie_name("sid").dangerous_insecure_cookies().build().unwrap();
        assert!(!insecure.set_cookie("v", None).contains("Secure"));
    }

    #[test]
    fn extreme_timeouts_do_not_panic() {
        for idle in [Duration::ZERO, Duration::from_millis(1), Duration::MAX] {
            for abs in [Duration::ZERO, Duration::from_millis(1), Duration::MAX] {
                let _ = SessionConfig::builder().idle_timeout(idle).absolute_timeout(abs).build();
            }
        }
        assert!(SessionConfig::builder()
            .idle_timeout(Duration::from_secs(3600))
            .absolute_timeout(Duration::from_secs(60))
            .build()
            .is_err());
    }

    proptest! {
        #[test]
        fn bad_characters_in_names_and_paths_are_refused(s in "[a-z]{0,4}[;, \t\r\n=\"\\x00\\x7f][a-z]{0,4}") {
            prop_assert!(SessionConfig::builder().cookie_name(s.clone()).build().is_err());
            if s.contains([';', '\r', '\n', '\t', '\x00', '\x7f']) {
                let path = format!("/{}", s);
                prop_assert!(SessionConfig::builder().cookie_name("__Secure-sid").path(path).build().is_err());
            }
        }

        #[test]
        fn valid_config_reparses_identically(name in "[A-Za-z0-9_-]{1,20}", path in "/[a-z0-9/]{0,20}") {
            let name = format!("__Secure-{name}");
            let c = SessionConfig::builder().cookie_name(name.clone()).path(path.clone()).build().unwrap();
            let parsed = Cookie::parse(c.set_cookie("tok", Some(60))).unwrap();
            prop_assert_eq!(parsed.name(), name.as_str());
            prop_assert_eq!(parsed.value(), "tok");
            prop_assert_eq!(parsed.path(), Some(path.as_str()));
            prop_assert_eq!(parsed.max_age(), Some(cookie::time::Duration::seconds(60)));
        }
    }
}
