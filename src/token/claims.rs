//! The access token's claims, their strict types (R71), its `typ` (R72),
//! and the one time check.

use serde::{Deserialize, Serialize};

use super::TokenError;
use crate::SessionHandle;

/// The `typ` header of an access token (RFC 9068).
pub(crate) const TYP: &str = "at+jwt";

/// The verified claims of an access token: what a handler behind a
/// [`TokenLayer`](super::TokenLayer) learns about the caller (request
/// extension and axum extractor).
///
/// Every claim is required and strictly typed: times are JSON integers of
/// seconds since the Unix epoch (a string, a float or a negative number
/// refuses the token), `aud` is one string.
///
/// ```
/// use sessionware::token::AccessClaims;
/// fn whoami(claims: &AccessClaims) -> String {
///     format!("{} on session {}", claims.sub, claims.sid)
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AccessClaims {
    /// The user the session was logged in as.
    pub sub: String,
    /// The session's public handle (never its ID or digest): revoke it with
    /// [`Session::revoke`](crate::Session::revoke).
    pub sid: SessionHandle,
    /// Issued at.
    pub iat: u64,
    /// Expires at.
    pub exp: u64,
    /// Not before (optional; this crate's issuer does not set it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// A random token id (128 bits, base64url).
    pub jti: String,
    /// The audience.
    pub aud: String,
    /// The issuer.
    pub iss: String,
}

impl AccessClaims {
    /// The one time check: `exp` passed, or `nbf` or `iat` in the future,
    /// each beyond `leeway` seconds, at `now` (seconds).
    pub(crate) fn check_time(&self, now: u64, leeway: u64) -> Result<(), TokenError> {
        if now >= self.exp.saturating_add(leeway) {
            return Err(TokenError::Expired);
        }
        let not_before = self.nbf.unwrap_or(0).max(self.iat);
        if not_before > now.saturating_add(leeway) {
            return Err(TokenError::NotYetValid);
        }
        Ok(())
    }
}

/// Whether a header's `typ` names an access token: `at+jwt`, or its
/// `application/` form, compared case-insensitively (RFC 7515 §4.1.9).
pub(crate) fn is_access_typ(typ: Option<&str>) -> bool {
    let Some(typ) = typ else { return false };
    let bare = match typ.split_at_checked("application/".len()) {
        Some((prefix, rest)) if prefix.eq_ignore_ascii_case("application/") => rest,
        _ => typ,
    };
    bare.eq_ignore_ascii_case(TYP)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(iat: u64, exp: u64, nbf: Option<u64>) -> AccessClaims {
        AccessClaims {
            sub: "u".into(),
            sid: SessionHandle::generate(),
            iat,
            exp,
            nbf,
            jti: "j".into(),
            aud: "a".into(),
            iss: "i".into(),
        }
    }

    #[test]
    fn time_bounds_with_leeway() {
        let c = claims(100, 200, None);
        assert_eq!(c.check_time(150, 0), Ok(()));
        assert_eq!(c.check_time(200, 0), Err(TokenError::Expired));
        assert_eq!(c.check_time(229, 30), Ok(()));
        assert_eq!(c.check_time(230, 30), Err(TokenError::Expired));
        assert_eq!(c.check_time(69, 30), Err(TokenError::NotYetValid));
        assert_eq!(claims(100, 200, Some(180)).check_time(150, 0), Err(TokenError::NotYetValid));
        // Extreme values saturate instead of overflowing (R71).
        assert_eq!(claims(0, u64::MAX, None).check_time(u64::MAX - 1, 60), Ok(()));
    }

    #[test]
    fn typ_is_exact() {
        assert!(is_access_typ(Some("at+jwt")));
        assert!(is_access_typ(Some("AT+JWT")));
        assert!(is_access_typ(Some("application/at+jwt")));
        for bad in ["JWT", "at+jwt ", "application/jwt", "", "applicationXat+jwt", "é"] {
            assert!(!is_access_typ(Some(bad)), "{bad}");
        }
        assert!(!is_access_typ(None));
    }

    // R71: times must be JSON integers; R73: duplicate members are refused.
    #[test]
    fn strict_claim_types() {
        let ok = r#"{"sub":"u","sid":"AAAAAAAAAAAAAAAAAAAAAA","iat":1,"exp":2,"jti":"j","aud":"a","iss":"i"}"#;
        assert!(serde_json::from_str::<AccessClaims>(ok).is_ok());
        for bad in [
            r#"{"sub":"u","sid":"AAAAAAAAAAAAAAAAAAAAAA","iat":1,"exp":"never","jti":"j","aud":"a","iss":"i"}"#,
            r#"{"sub":"u","sid":"AAAAAAAAAAAAAAAAAAAAAA","iat":1,"exp":1.5e300,"jti":"j","aud":"a","iss":"i"}"#,
            r#"{"sub":"u","sid":"AAAAAAAAAAAAAAAAAAAAAA","iat":1,"exp":-5,"jti":"j","aud":"a","iss":"i"}"#,
            r#"{"sub":"u","sid":"AAAAAAAAAAAAAAAAAAAAAA","iat":1,"jti":"j","aud":"a","iss":"i"}"#,
            r#"{"sub":"u","sid":"AAAAAAAAAAAAAAAAAAAAAA","iat":1,"exp":2,"nbf":"99999999999","jti":"j","aud":"a","iss":"i"}"#,
            r#"{"sub":"u","sid":"AAAAAAAAAAAAAAAAAAAAAA","iat":1,"exp":2,"jti":"j","aud":["a"],"iss":"i"}"#,
            r#"{"sub":"u","sub":"admin","sid":"AAAAAAAAAAAAAAAAAAAAAA","iat":1,"exp":2,"jti":"j","aud":"a","iss":"i"}"#,
            r#"{"sub":"u","sid":"not a handle","iat":1,"exp":2,"jti":"j","aud":"a","iss":"i"}"#,
        ] {
            assert!(serde_json::from_str::<AccessClaims>(bad).is_err(), "{bad}");
        }
    }
}
