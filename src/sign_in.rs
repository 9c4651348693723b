//! How a user authenticated: the methods ([`AuthMethod`]), the assurance
//! level they reach ([`Assurance`]), the identity provider's session
//! ([`ProviderSession`], for back-channel logout), and [`SignIn`], what an
//! application hands to [`Session::login_with`](crate::Session::login_with).
//!
//! They are stored in the session's sign-in record ([`Auth`](crate::store::Auth)),
//! beside the user and the time, on every store.

use std::fmt;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

/// One way a user proved who they are, as the application checked it.
///
/// Stored by name ([`as_str`](Self::as_str)); a name this version does not
/// know reads back as [`Other`](Self::Other), and `Other` with a known
/// name reads back as that method.
///
/// ```
/// use sessionware::AuthMethod;
/// assert_eq!(AuthMethod::WebAuthn.as_str(), "webauthn");
/// assert_eq!(AuthMethod::parse("totp"), AuthMethod::Totp);
/// assert_eq!(AuthMethod::parse("smartcard"), AuthMethod::Other("smartcard".into()));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthMethod {
    /// A password (or passphrase, or PIN) checked by the application.
    Password,
    /// A time-based one-time code from an authenticator app (RFC 6238).
    Totp,
    /// A WebAuthn credential: a passkey or a security key.
    WebAuthn,
    /// A one-time code sent by SMS or a phone call.
    Sms,
    /// A one-time code or link sent by email.
    Email,
    /// A single-use recovery code.
    RecoveryCode,
    /// A sign-in through an identity provider (OpenID Connect, SAML): what
    /// the provider checked is its own.
    Federated,
    /// Any other method, by the application's name for it.
    Other(String),
}

impl AuthMethod {
    /// The method's stored name: `password`, `totp`, `webauthn`, `sms`,
    /// `email`, `recovery_code`, `federated`, or the name of `Other`.
    ///
    /// ```
    /// use sessionware::AuthMethod;
    /// assert_eq!(AuthMethod::RecoveryCode.as_str(), "recovery_code");
    /// assert_eq!(AuthMethod::Other("face".into()).as_str(), "face");
    /// ```
    pub fn as_str(&self) -> &str {
        match self {
            Self::Password => "password",
            Self::Totp => "totp",
            Self::WebAuthn => "webauthn",
            Self::Sms => "sms",
            Self::Email => "email",
            Self::RecoveryCode => "recovery_code",
            Self::Federated => "federated",
            Self::Other(name) => name,
        }
    }

    /// The method named `name` (see [`as_str`](Self::as_str)); any other
    /// name is [`Other`](Self::Other).
    ///
    /// ```
    /// use sessionware::AuthMethod;
    /// assert_eq!(AuthMethod::parse("password"), AuthMethod::Password);
    /// ```
    pub fn parse(name: &str) -> Self {
        match name {
            "password" => Self::Password,
            "totp" => Self::Totp,
            "webauthn" => Self::WebAuthn,
            "sms" => Self::Sms,
            "email" => Self::Email,
            "recovery_code" => Self::RecoveryCode,
            "federated" => Self::Federated,
            other => Self::Other(other.to_string()),
        }
    }

    /// Heap bytes the method holds (for a store's memory accounting).
    pub(crate) fn heap_len(&self) -> usize {
        match self {
            Self::Other(name) => name.len(),
            _ => 0,
        }
    }
}

impl fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for AuthMethod {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for AuthMethod {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Ok(Self::parse(&name))
    }
}

/// How strongly a sign-in established the user's identity: the
/// authenticator assurance levels of NIST SP 800-63B, ordered (`Aal1 <
/// Aal2 < Aal3`).
///
/// Unless the application says otherwise ([`SignIn::assurance`]), a
/// sign-in's level is [`from_methods`](Self::from_methods): `Aal2` with
/// two or more different methods, else `Aal1`. Only the application knows
/// when one method is more (a WebAuthn credential that verified the user
/// is two factors on its own; a hardware key can reach `Aal3`), so it sets
/// those levels itself.
///
/// Stored as its number (1, 2, 3); a higher number than this version knows
/// reads as the highest it knows, never higher.
///
/// ```
/// use sessionware::{Assurance, AuthMethod};
/// assert!(Assurance::Aal1 < Assurance::Aal2);
/// assert_eq!(Assurance::from_methods(&[AuthMethod::Password]), Assurance::Aal1);
/// assert_eq!(Assurance::from_methods(&[AuthMethod::Password, AuthMethod::Totp]), Assurance::Aal2);
/// assert!(Assurance::Aal2.is_multi_factor());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Assurance {
    /// One factor (AAL1): a password alone, a one-time code alone. What a
    /// sign-in without methods (one recorded before this existed) has.
    #[default]
    Aal1,
    /// Two factors (AAL2): multi-factor authentication.
    Aal2,
    /// Two factors, one of them a hardware-bound, phishing-resistant
    /// authenticator (AAL3). Set by the application only.
    Aal3,
}

impl Assurance {
    /// The level that `methods` reach by counting them: `Aal2` with two
    /// or more different methods, else `Aal1`.
    ///
    /// ```
    /// use sessionware::{Assurance, AuthMethod};
    /// let twice = [AuthMethod::Password, AuthMethod::Password];
    /// assert_eq!(Assurance::from_methods(&twice), Assurance::Aal1);
    /// assert_eq!(Assurance::from_methods(&[]), Assurance::Aal1);
    /// ```
    pub fn from_methods(methods: &[AuthMethod]) -> Self {
        let distinct = methods.iter().enumerate().filter(|(i, m)| !methods[..*i].contains(m)).count();
        if distinct >= 2 {
            Self::Aal2
        } else {
            Self::Aal1
        }
    }

    /// True from `Aal2` up: multi-factor authentication.
    ///
    /// ```
    /// # use sessionware::Assurance;
    /// assert!(!Assurance::Aal1.is_multi_factor());
    /// ```
    pub fn is_multi_factor(self) -> bool {
        self >= Self::Aal2
    }

    /// The level's number: 1, 2 or 3.
    ///
    /// ```
    /// # use sessionware::Assurance;
    /// assert_eq!(Assurance::Aal3.number(), 3);
    /// ```
    pub fn number(self) -> u8 {
        match self {
            Self::Aal1 => 1,
            Self::Aal2 => 2,
            Self::Aal3 => 3,
        }
    }

    /// The level numbered `n`: `None` for 0, the highest known level for a
    /// number above it.
    ///
    /// ```
    /// # use sessionware::Assurance;
    /// assert_eq!(Assurance::from_number(2), Some(Assurance::Aal2));
    /// assert_eq!(Assurance::from_number(9), Some(Assurance::Aal3));
    /// assert_eq!(Assurance::from_number(0), None);
    /// ```
    pub fn from_number(n: u8) -> Option<Self> {
        match n {
            0 => None,
            1 => Some(Self::Aal1),
            2 => Some(Self::Aal2),
            _ => Some(Self::Aal3),
        }
    }
}

impl fmt::Display for Assurance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AAL{}", self.number())
    }
}

impl Serialize for Assurance {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u8(self.number())
    }
}

impl<'de> Deserialize<'de> for Assurance {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let n = u64::deserialize(deserializer)?;
        Self::from_number(u8::try_from(n).unwrap_or(u8::MAX))
            .ok_or_else(|| de::Error::custom("an assurance level is 1 or more"))
    }
}

/// The identity provider's session a sign-in came from: its issuer and, if
/// it gave one, its session id (the OpenID Connect `sid` claim of the ID
/// token). Recorded with [`SignIn::provider_session`]; a back-channel logout
/// ([`SessionControl::end_provider_sessions`](crate::SessionControl::end_provider_sessions))
/// ends every session linked to it.
///
/// ```
/// use sessionware::ProviderSession;
/// let p = ProviderSession::new("https://idp.example.com", Some("08a5019c"));
/// assert_eq!(p.issuer, "https://idp.example.com");
/// assert_eq!(p.sid.as_deref(), Some("08a5019c"));
/// assert!(p.matches("https://idp.example.com", Some("08a5019c")));
/// assert!(p.matches("https://idp.example.com", None)); // every session of that provider
/// assert!(!p.matches("https://idp.example.com", Some("other")));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ProviderSession {
    /// The provider's issuer identifier (`iss`).
    #[serde(rename = "iss")]
    pub issuer: String,
    /// The provider's session id (`sid`), if it sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

impl ProviderSession {
    /// The session `sid` (if any) at the provider `issuer`.
    ///
    /// ```
    /// # use sessionware::ProviderSession;
    /// assert!(ProviderSession::new("https://idp", None::<String>).sid.is_none());
    /// ```
    pub fn new(issuer: impl Into<String>, sid: Option<impl Into<String>>) -> Self {
        Self { issuer: issuer.into(), sid: sid.map(Into::into) }
    }

    /// Whether a logout of `sid` at `issuer` ends this sign-in: the same
    /// issuer and, when `sid` is given, the same session id (a logout
    /// token without `sid` names every session of the user at the
    /// provider). Compared byte for byte.
    ///
    /// ```
    /// # use sessionware::ProviderSession;
    /// let unnamed = ProviderSession::new("https://idp", None::<String>);
    /// assert!(!unnamed.matches("https://idp", Some("x")));
    /// assert!(!unnamed.matches("https://other", None));
    /// ```
    pub fn matches(&self, issuer: &str, sid: Option<&str>) -> bool {
        self.issuer == issuer && sid.is_none_or(|sid| self.sid.as_deref() == Some(sid))
    }

    pub(crate) fn heap_len(&self) -> usize {
        self.issuer.len() + self.sid.as_ref().map_or(0, String::len)
    }
}

/// A sign-in, as [`Session::login_with`](crate::Session::login_with) records
/// it: the user, how they authenticated, and the identity provider's
/// session.
///
/// ```
/// use sessionware::{Assurance, AuthMethod, ProviderSession, SignIn};
/// let sign_in = SignIn::new("alice").method(AuthMethod::Password).method(AuthMethod::Totp);
/// assert_eq!(sign_in.level(), Assurance::Aal2);
///
/// let federated = SignIn::new("bob")
///     .method(AuthMethod::Federated)
///     .provider_session(ProviderSession::new("https://idp.example.com", Some("sid-1")))
///     .assurance(Assurance::Aal2); // the provider's `acr` said so
/// assert_eq!(federated.level(), Assurance::Aal2);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SignIn {
    pub(crate) user: String,
    pub(crate) methods: Vec<AuthMethod>,
    pub(crate) assurance: Option<Assurance>,
    pub(crate) provider: Option<ProviderSession>,
    pub(crate) keep: Option<Vec<String>>,
}

impl SignIn {
    /// A sign-in of `user`, with no method recorded yet (level `Aal1`).
    ///
    /// ```
    /// # use sessionware::{Assurance, SignIn};
    /// assert_eq!(SignIn::new("alice").level(), Assurance::Aal1);
    /// ```
    pub fn new(user: impl Into<String>) -> Self {
        Self { user: user.into(), methods: Vec::new(), assurance: None, provider: None, keep: None }
    }

    /// Adds a method the user authenticated with (once: a method given twice
    /// is recorded once).
    ///
    /// ```
    /// # use sessionware::{AuthMethod, SignIn};
    /// let s = SignIn::new("a").method(AuthMethod::Totp).method(AuthMethod::Totp);
    /// assert_eq!(s.methods(), [AuthMethod::Totp]);
    /// ```
    pub fn method(mut self, method: AuthMethod) -> Self {
        if !self.methods.contains(&method) {
            self.methods.push(method);
        }
        self
    }

    /// Sets the assurance level instead of deriving it from the methods
    /// ([`Assurance::from_methods`]): for one method that is worth more
    /// (a WebAuthn credential with user verification), or the level an
    /// identity provider vouched for (its `acr`).
    ///
    /// ```
    /// # use sessionware::{Assurance, AuthMethod, SignIn};
    /// let s = SignIn::new("a").method(AuthMethod::WebAuthn).assurance(Assurance::Aal2);
    /// assert_eq!(s.level(), Assurance::Aal2);
    /// ```
    pub fn assurance(mut self, level: Assurance) -> Self {
        self.assurance = Some(level);
        self
    }

    /// Records the identity provider's session the sign-in came from, for
    /// a back-channel logout.
    ///
    /// ```
    /// # use sessionware::{ProviderSession, SignIn};
    /// let s = SignIn::new("a").provider_session(ProviderSession::new("https://idp", Some("s")));
    /// assert_eq!(s.provider().map(|p| p.issuer.as_str()), Some("https://idp"));
    /// ```
    pub fn provider_session(mut self, provider: ProviderSession) -> Self {
        self.provider = Some(provider);
        self
    }

    /// Keeps these keys of the pre-login data instead of the configured
    /// ones, as [`Session::login_keeping`](crate::Session::login_keeping)
    /// does.
    ///
    /// ```
    /// # use sessionware::SignIn;
    /// let s = SignIn::new("a").keeping(&["cart"]);
    /// # let _ = s;
    /// ```
    pub fn keeping(mut self, keep: &[&str]) -> Self {
        self.keep = Some(keep.iter().map(|k| (*k).to_string()).collect());
        self
    }

    /// The user.
    ///
    /// ```
    /// # use sessionware::SignIn;
    /// assert_eq!(SignIn::new("alice").user(), "alice");
    /// ```
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The methods, in the order given.
    ///
    /// ```
    /// # use sessionware::SignIn;
    /// assert!(SignIn::new("a").methods().is_empty());
    /// ```
    pub fn methods(&self) -> &[AuthMethod] {
        &self.methods
    }

    /// The level recorded: the one set, else the one the methods reach.
    ///
    /// ```
    /// # use sessionware::{Assurance, AuthMethod, SignIn};
    /// assert_eq!(SignIn::new("a").method(AuthMethod::Sms).level(), Assurance::Aal1);
    /// ```
    pub fn level(&self) -> Assurance {
        self.assurance.unwrap_or_else(|| Assurance::from_methods(&self.methods))
    }

    /// The identity provider's session, if recorded.
    ///
    /// ```
    /// # use sessionware::SignIn;
    /// assert!(SignIn::new("a").provider().is_none());
    /// ```
    pub fn provider(&self) -> Option<&ProviderSession> {
        self.provider.as_ref()
    }
}

impl From<&str> for SignIn {
    fn from(user: &str) -> Self {
        Self::new(user)
    }
}

impl From<String> for SignIn {
    fn from(user: String) -> Self {
        Self::new(user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_round_trip_by_name() {
        for m in [
            AuthMethod::Password,
            AuthMethod::Totp,
            AuthMethod::WebAuthn,
            AuthMethod::Sms,
            AuthMethod::Email,
            AuthMethod::RecoveryCode,
            AuthMethod::Federated,
            AuthMethod::Other("smartcard \u{e9}".into()),
        ] {
            let json = serde_json::to_string(&m).unwrap();
            assert_eq!(serde_json::from_str::<AuthMethod>(&json).unwrap(), m);
        }
        assert_eq!(serde_json::from_str::<AuthMethod>("\"totp\"").unwrap(), AuthMethod::Totp);
    }

    #[test]
    fn levels_round_trip_by_number_and_never_read_higher() {
        for l in [Assurance::Aal1, Assurance::Aal2, Assurance::Aal3] {
            assert_eq!(serde_json::from_str::<Assurance>(&serde_json::to_string(&l).unwrap()).unwrap(), l);
        }
        assert_eq!(serde_json::from_str::<Assurance>("300").unwrap(), Assurance::Aal3);
        assert!(serde_json::from_str::<Assurance>("0").is_err());
        assert!(serde_json::from_str::<Assurance>("-1").is_err());
    }
}
