//! [`Origin`]: a serialized origin (scheme, host, port), parsed with
//! `http::Uri` and compared whole, never by prefix or by host alone.

use std::fmt;

use http::Uri;

/// An origin: `scheme://host[:port]`, lower-cased, with the scheme's default
/// port left out, so that two spellings of one origin compare equal.
///
/// ```
/// use sessionware::Origin;
/// let a = Origin::parse("https://App.Example:443").unwrap();
/// assert_eq!(a, Origin::parse("https://app.example").unwrap());
/// assert_ne!(a, Origin::parse("http://app.example").unwrap()); // the scheme counts
/// assert_ne!(a, Origin::parse("https://app.example:8443").unwrap()); // and the port
/// assert!(Origin::parse("https://app.example/path").is_none()); // not an origin
/// assert!(Origin::parse("null").is_none());
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    scheme: Scheme,
    /// Lower-cased host (an IPv6 address keeps its brackets).
    host: Box<str>,
    /// The port, unless it is the scheme's default.
    port: Option<u16>,
}

/// The schemes an origin of a web page can have here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Scheme {
    Http,
    Https,
}

impl Scheme {
    fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

impl Origin {
    /// Parses a serialized origin (an `Origin` header value, or a trusted
    /// origin from the configuration): `http` or `https`, a host, an
    /// optional port, nothing else (no user info, path, query or fragment).
    pub fn parse(text: &str) -> Option<Self> {
        if text.is_empty() || text.len() > 2048 || text.bytes().any(|b| !b.is_ascii_graphic()) {
            return None;
        }
        let uri: Uri = text.parse().ok()?;
        let scheme = match uri.scheme_str()?.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            _ => return None,
        };
        // "https://a.example/" has a path: not an origin (`Uri` reads an
        // absent path as "/", so the text is checked too).
        let path = uri.path_and_query().map_or("", |p| p.as_str());
        if !matches!(path, "" | "/") || text.ends_with('/') || text.contains(['?', '#']) {
            return None;
        }
        let authority = uri.authority()?;
        if authority.as_str().contains('@') {
            return None;
        }
        Self::from_parts(scheme, authority.host(), authority.port_u16(), authority.as_str().contains(':'))
    }

    /// The origin a request was sent to: `scheme` and its `Host` (or HTTP/2
    /// `:authority`) value.
    pub(crate) fn of_host(scheme: Scheme, host: &str) -> Option<Self> {
        let authority: http::uri::Authority = host.parse().ok()?;
        if authority.as_str().contains('@') {
            return None;
        }
        Self::from_parts(scheme, authority.host(), authority.port_u16(), authority.as_str().contains(':'))
    }

    fn from_parts(scheme: Scheme, host: &str, port: Option<u16>, has_colon: bool) -> Option<Self> {
        if host.is_empty() {
            return None;
        }
        // A colon outside an IPv6 host with no valid port ("a.example:") is
        // not an origin.
        let ipv6 = host.starts_with('[');
        if port.is_none() && has_colon && !ipv6 {
            return None;
        }
        let port = port.filter(|p| *p != scheme.default_port());
        Some(Self { scheme, host: host.to_ascii_lowercase().into(), port })
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme.as_str(), self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Origin({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_compare_whole() {
        let app = Origin::parse("https://app.example").unwrap();
        for other in
            ["https://app.example.evil.test", "https://evil.test", "http://app.example", "https://app.example:8443"]
        {
            assert_ne!(Origin::parse(other).unwrap(), app, "{other}");
        }
        assert_eq!(Origin::parse("HTTPS://APP.EXAMPLE:443").unwrap(), app);
        assert_eq!(Origin::parse("http://[::1]:3000").unwrap().to_string(), "http://[::1]:3000");
    }

    #[test]
    fn what_is_not_an_origin_is_refused() {
        for bad in [
            "",
            "null",
            "app.example",
            "ftp://app.example",
            "https://",
            "https://app.example/",
            "https://app.example/x",
            "https://app.example?x",
            "https://user@app.example",
            "https://app.example:",
            "https://app.example:99999",
            "https://app .example",
            "https://app.example\u{0}",
        ] {
            assert!(Origin::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn the_host_header_gives_the_requests_own_origin() {
        let own = Origin::of_host(Scheme::Https, "App.Example:443").unwrap();
        assert_eq!(own, Origin::parse("https://app.example").unwrap());
        assert_eq!(Origin::of_host(Scheme::Http, "app.example").unwrap(), Origin::parse("http://app.example").unwrap());
        assert!(Origin::of_host(Scheme::Https, "a@b").is_none());
        assert!(Origin::of_host(Scheme::Https, "").is_none());
    }
}
