//! The session cookie's `SameSite` attribute.

/// When browsers send the session cookie on requests that another site
/// started: the cookie's `SameSite` attribute, set with
/// [`SessionConfigBuilder::same_site`](crate::SessionConfigBuilder::same_site).
///
/// `Lax`, the default, suits most applications: a form or `fetch` posted
/// from another site arrives without the session (and the layer's
/// cross-origin check refuses it anyway), while a link or a sign-in
/// provider's redirect back to the site still carries it.
///
/// ```
/// use sessionware::{SameSite, SessionConfig};
/// assert_eq!(SameSite::default(), SameSite::Lax);
/// assert!(SessionConfig::builder().same_site(SameSite::Strict).build().is_ok());
/// // `None` sends the cookie on every cross-site request: it needs the
/// // explicit opt-in (and `Secure`, the default).
/// assert!(SessionConfig::builder().same_site(SameSite::None).build().is_err());
/// assert!(SessionConfig::builder().same_site(SameSite::None).allow_cross_site().build().is_ok());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum SameSite {
    /// Sent only on requests that this site started: not on a link
    /// followed from another site, nor on an OAuth or SSO provider's
    /// redirect back to the sign-in callback (the user looks signed out
    /// there; see [`same_site`](crate::SessionConfigBuilder::same_site) for
    /// the two-cookie setup).
    Strict,
    /// Sent on this site's requests and on top-level navigations from other
    /// sites (`GET` links and redirects), not on their forms, `fetch`es,
    /// frames or images. The default.
    #[default]
    Lax,
    /// Sent on every request, cross-site ones included: for a site embedded
    /// in others. Needs `Secure` and
    /// [`allow_cross_site`](crate::SessionConfigBuilder::allow_cross_site),
    /// and usually [`partitioned`](crate::SessionConfigBuilder::partitioned).
    None,
}

impl From<SameSite> for cookie::SameSite {
    fn from(s: SameSite) -> Self {
        match s {
            SameSite::Strict => Self::Strict,
            SameSite::Lax => Self::Lax,
            SameSite::None => Self::None,
        }
    }
}
