//! Soft client binding (R89, R90): who the request's client is, what a
//! login records of it, and the one decision "does this request's client
//! match the one its session was signed in from".
//!
//! A login records the client's user agent (truncated) and a coarse network
//! prefix (IPv4 /24, IPv6 /48) in the session's metadata. When a signed-in
//! session is loaded, the request's client is compared with them:
//!
//! - the user agent by its *family*: the text with every run of version
//!   digits removed, so a browser or OS update (`Firefox/120.0` →
//!   `Firefox/121.0`) is the same family, and another browser, platform or
//!   device class is not. A request without a user agent on a session that
//!   recorded one differs (leaving the header out does not escape the
//!   check); a session whose login recorded none is not compared.
//! - the network by its coarse prefix, never the full address: a new host
//!   on the same /24 is the same client. When either side has no address
//!   (no `ConnectInfo`), the network is not compared.
//!
//! The client's address is the socket peer (axum's `ConnectInfo`), unless
//! the peer is one of the configured
//! [`trusted_proxies`](crate::SessionConfigBuilder::trusted_proxies): then
//! it is the right-most `X-Forwarded-For` entry that is not itself a trusted
//! proxy (entries left of it are whatever the client sent, and are never
//! read). The `Forwarded` header is not read.
//!
//! A difference is a weak signal (mobile networks and VPNs change the
//! prefix; a thief can copy a user agent): [`BindingPolicy`] says what it
//! does.

use std::net::IpAddr;

use http::{HeaderMap, HeaderValue};
use ipnet::IpNet;

use crate::Metadata;

/// Longest user agent kept in a session's metadata.
const MAX_USER_AGENT: usize = 256;
/// The most `X-Forwarded-For` entries read (from the right) before giving up.
const MAX_FORWARDED_HOPS: usize = 16;

/// What a signed-in request whose client differs from the one its session
/// was signed in from does
/// ([`client_binding`](crate::SessionConfigBuilder::client_binding)).
///
/// ```
/// use sessionware::{BindingPolicy, SessionConfig};
/// assert_eq!(SessionConfig::default().client_binding(), BindingPolicy::Event);
/// let config = SessionConfig::builder().client_binding(BindingPolicy::RequireReauth).build().unwrap();
/// assert_eq!(config.client_binding(), BindingPolicy::RequireReauth);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum BindingPolicy {
    /// No comparison, no event; the layer does not look at the client on
    /// requests whose handler does not take the session.
    Off,
    /// A [`ClientChanged`](crate::EventKind::ClientChanged) event; the
    /// session goes on unchanged (the default).
    #[default]
    Event,
    /// The event, and [`Session::require_recent_auth`](crate::Session::require_recent_auth)
    /// fails with [`ReauthRequired`](crate::SessionError::ReauthRequired)
    /// on this request whatever the age of the login: guarded actions need
    /// a new login (which records the new client and ends the mismatch).
    RequireReauth,
    /// The event, and the session ends as by a logout: its record is
    /// deleted, the client gets a removal cookie, and the request goes on
    /// without a session.
    End,
}

/// How a request's client differs from the one its session was signed in
/// from ([`Session::client_changed`](crate::Session::client_changed)).
///
/// ```
/// use sessionware::ClientChange;
/// fn explain(change: ClientChange) -> &'static str {
///     if change.user_agent { "a different browser" } else { "a different network" }
/// }
/// # let _ = explain;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientChange {
    /// The user agent's family differs (or the request sent none).
    pub user_agent: bool,
    /// The coarse network prefix (IPv4 /24, IPv6 /48) differs.
    pub network: bool,
}

/// A changed client and what the policy makes of it, kept in the
/// request's state for the request's later calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Mismatch {
    pub(crate) change: ClientChange,
    policy: BindingPolicy,
}

impl Mismatch {
    pub(crate) fn new(change: ClientChange, policy: BindingPolicy) -> Self {
        Self { change, policy }
    }

    /// The session ends as by a logout.
    pub(crate) fn ends_session(&self) -> bool {
        self.policy == BindingPolicy::End
    }

    /// `require_recent_auth` fails on this request.
    pub(crate) fn requires_reauth(&self) -> bool {
        self.policy == BindingPolicy::RequireReauth
    }
}

/// The binding settings of a configuration, validated.
#[derive(Debug, Clone, Default)]
pub(crate) struct Binding {
    pub(crate) policy: BindingPolicy,
    /// Peers whose `X-Forwarded-For` is believed.
    pub(crate) proxies: Box<[IpNet]>,
}

impl Binding {
    /// Parses `entries` (addresses or CIDR ranges); `Err` names the first
    /// one that is neither.
    pub(crate) fn new(policy: BindingPolicy, entries: &[String]) -> Result<Self, String> {
        let proxies = entries
            .iter()
            .map(|e| {
                let e = e.trim();
                e.parse::<IpNet>()
                    .map(|net| canonical_net(net.trunc()))
                    .or_else(|_| e.parse::<IpAddr>().map(|ip| IpNet::from(ip.to_canonical())))
                    .map_err(|_| e.to_string())
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { policy, proxies })
    }

    /// True when the layer records the client on every request (not only
    /// when a handler takes the session), so that the check sees it.
    pub(crate) fn observes_every_request(&self) -> bool {
        self.policy != BindingPolicy::Off
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.proxies.iter().any(|net| net.contains(&ip))
    }

    /// The client's address: the socket peer, or behind a trusted proxy the
    /// right-most `X-Forwarded-For` entry that is not a trusted proxy
    /// (`None` when that entry is not an address, or past the hop cap).
    /// When every entry is a trusted proxy, the left-most one.
    pub(crate) fn client_ip(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = peer?.to_canonical();
        if !self.trusts(peer) {
            return Some(peer);
        }
        let mut hops = 0;
        let mut last = peer;
        // Header lines in order; entries within a line left to right: walk
        // both from the end.
        for line in headers.get_all("x-forwarded-for").iter().rev() {
            let text = line.to_str().ok()?;
            for entry in text.rsplit(',') {
                hops += 1;
                if hops > MAX_FORWARDED_HOPS {
                    return None;
                }
                let ip = parse_forwarded(entry.trim())?;
                if !self.trusts(ip) {
                    return Some(ip);
                }
                last = ip;
            }
        }
        Some(last)
    }
}

/// A range as peers are compared (IPv4-mapped addresses as IPv4): an
/// IPv4-mapped IPv6 range (`::ffff:10.0.0.0/104`) is its IPv4 range, or it
/// would match no peer.
fn canonical_net(net: IpNet) -> IpNet {
    if let IpNet::V6(v6) = net {
        let mapped = v6.network().to_ipv4_mapped().zip(v6.prefix_len().checked_sub(96));
        if let Some(Ok(v4)) = mapped.map(|(ip, len)| ipnet::Ipv4Net::new(ip, len)) {
            return IpNet::V4(v4);
        }
    }
    net
}

/// One `X-Forwarded-For` entry: an address, or an address with a port
/// (`203.0.113.7:443`, `[2001:db8::1]:443`), as some proxies write it.
fn parse_forwarded(entry: &str) -> Option<IpAddr> {
    let ip = entry.parse::<IpAddr>().ok().or_else(|| entry.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))?;
    Some(ip.to_canonical())
}

/// The socket peer's address, from axum's `ConnectInfo`.
fn peer_ip(extensions: &http::Extensions) -> Option<IpAddr> {
    #[cfg(feature = "axum")]
    {
        extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip())
    }
    #[cfg(not(feature = "axum"))]
    {
        let _ = extensions;
        None
    }
}

/// What the request tells about its client, captured once per request:
/// cheap clones, the address resolved through the trusted proxies.
#[derive(Debug, Default)]
pub(crate) struct Client {
    pub(crate) user_agent: Option<HeaderValue>,
    pub(crate) ip: Option<IpAddr>,
}

impl Client {
    pub(crate) fn of(headers: &HeaderMap, extensions: &http::Extensions, binding: &Binding) -> Self {
        Self {
            user_agent: headers.get(http::header::USER_AGENT).cloned(),
            ip: binding.client_ip(peer_ip(extensions), headers),
        }
    }

    /// The user agent as a login records it: visible ASCII only, at most
    /// 256 bytes.
    pub(crate) fn recorded_user_agent(&self) -> Option<Box<str>> {
        self.user_agent.as_ref().and_then(|v| v.to_str().ok()).map(|ua| truncate(ua).into())
    }

    /// The network as a login records it: IPv4 /24 or IPv6 /48, as text.
    pub(crate) fn recorded_network(&self) -> Option<Box<str>> {
        self.ip.map(|ip| coarse_ip(ip).into())
    }
}

fn truncate(ua: &str) -> &str {
    let mut end = ua.len().min(MAX_USER_AGENT);
    while !ua.is_char_boundary(end) {
        end -= 1;
    }
    &ua[..end]
}

/// IPv4 /24 or IPv6 /48, as text.
fn coarse_ip(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        IpAddr::V6(v6) => {
            let [s0, s1, s2, ..] = v6.segments();
            format!("{s0:x}:{s1:x}:{s2:x}::/48")
        }
    }
}

/// The decision: how `client` differs from the client the signed-in
/// session `meta` recorded at login; `None` when it does not (or the
/// session is anonymous).
pub(crate) fn check(meta: &Metadata, client: &Client) -> Option<ClientChange> {
    meta.auth.as_ref()?;
    let presented_ua = client.user_agent.as_ref().map(|v| v.to_str().ok());
    let user_agent = match (meta.user_agent.as_deref(), presented_ua) {
        // Nothing recorded: nothing to compare.
        (None, _) => false,
        (Some(recorded), Some(Some(presented))) => !same_family(recorded, presented),
        // Left out, or not text where text was recorded.
        (Some(_), _) => true,
    };
    let network = match (meta.ip.as_deref(), client.recorded_network()) {
        (Some(recorded), Some(presented)) => *recorded != *presented,
        _ => false,
    };
    (user_agent || network).then_some(ClientChange { user_agent, network })
}

/// Whether the user agent `presented` is of the family of the recorded
/// (possibly truncated) `recorded`.
fn same_family(recorded: &str, presented: &str) -> bool {
    let recorded_family = family(recorded);
    let presented_family = family(presented);
    if recorded.len() + 4 <= MAX_USER_AGENT {
        return recorded_family == presented_family;
    }
    // The login cut it: version numbers of another length move the cut, so
    // only the recorded part is compared (a cut inside a version run may
    // leave its separators).
    presented_family.starts_with(recorded_family.trim_end_matches(['.', '_']))
}

/// A user agent without its version numbers: every run of digits, `.` and
/// `_` that holds a digit is removed.
fn family(ua: &str) -> String {
    let bytes = ua.as_bytes();
    let mut out = String::with_capacity(ua.len());
    let mut kept = 0;
    let mut i = 0;
    while i < bytes.len() {
        if is_version_byte(bytes[i]) {
            let start = i;
            while i < bytes.len() && is_version_byte(bytes[i]) {
                i += 1;
            }
            if bytes[start..i].iter().any(u8::is_ascii_digit) {
                // Only ASCII bytes are removed: both cuts are char boundaries.
                out.push_str(&ua[kept..start]);
                kept = i;
            }
        } else {
            i += 1;
        }
    }
    out.push_str(&ua[kept..]);
    out
}

fn is_version_byte(b: u8) -> bool {
    b.is_ascii_digit() || b == b'.' || b == b'_'
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIREFOX_120: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0";
    const FIREFOX_121: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0";
    const CHROME: &str =
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.109 Safari/537.36";
    const SAFARI_MAC: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15";

    fn binding(proxies: &[&str]) -> Binding {
        Binding::new(BindingPolicy::Event, &proxies.iter().map(|p| (*p).to_string()).collect::<Vec<_>>()).unwrap()
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn the_family_survives_version_bumps_and_tells_browsers_apart() {
        assert_eq!(family(FIREFOX_120), family(FIREFOX_121));
        assert_eq!(family(FIREFOX_120), "Mozilla/ (X; Linux x; rv:) Gecko/ Firefox/");
        assert_ne!(family(FIREFOX_120), family(CHROME));
        assert_ne!(family(CHROME), family(SAFARI_MAC));
        assert_eq!(family(&SAFARI_MAC.replace("10_15_7", "14_1")), family(SAFARI_MAC));
        assert_eq!(family("…é 1.2 ü"), "…é  ü");
        assert_eq!(family("v.1_"), "v");
        assert_eq!(family("a._b"), "a._b");
    }

    #[test]
    fn a_truncated_recording_compares_its_prefix() {
        let long = |v: &str| format!("{} {} Firefox/{v}", "x".repeat(240), "pad");
        let recorded = truncate(&long("99.0")).to_string();
        assert!(recorded.len() >= MAX_USER_AGENT - 3);
        assert!(same_family(&recorded, &long("100.0")));
        assert!(!same_family(&recorded, &long("99.0").replacen('x', "y", 1)));
        // Multi-byte text is cut on a char boundary.
        assert!(truncate(&"é".repeat(200)).len() <= MAX_USER_AGENT);
    }

    // R89: a forwarded address is believed only from a trusted proxy.
    #[test]
    fn forwarded_for_is_read_only_from_trusted_proxies() {
        let none = binding(&[]);
        let headers = xff(&["10.0.0.1"]);
        assert_eq!(none.client_ip(ip("203.0.113.5"), &headers), ip("203.0.113.5"));
        let trusted = binding(&["203.0.113.5"]);
        assert_eq!(trusted.client_ip(ip("203.0.113.5"), &headers), ip("10.0.0.1"));
        // No header: the proxy itself.
        assert_eq!(trusted.client_ip(ip("203.0.113.5"), &HeaderMap::new()), ip("203.0.113.5"));
    }

    #[test]
    fn the_right_most_untrusted_entry_wins_over_a_forged_chain() {
        let b = binding(&["10.0.0.0/8", "2001:db8::/32"]);
        // The attacker sent "1.2.3.4"; the proxy appended its real peer.
        let headers = xff(&["1.2.3.4, 198.51.100.7"]);
        assert_eq!(b.client_ip(ip("10.1.1.1"), &headers), ip("198.51.100.7"));
        // Over two proxies, and two header lines.
        let headers = xff(&["1.2.3.4", "198.51.100.7, 10.2.2.2"]);
        assert_eq!(b.client_ip(ip("10.1.1.1"), &headers), ip("198.51.100.7"));
        // An attacker naming a trusted proxy left of the real entry gains nothing.
        let headers = xff(&["10.9.9.9, 198.51.100.7"]);
        assert_eq!(b.client_ip(ip("10.1.1.1"), &headers), ip("198.51.100.7"));
        // Ports, IPv6, v4-mapped peers.
        assert_eq!(b.client_ip(ip("::ffff:10.1.1.1"), &xff(&["[2001:db9::1]:443"])), ip("2001:db9::1"));
        assert_eq!(b.client_ip(ip("10.1.1.1"), &xff(&["198.51.100.7:80"])), ip("198.51.100.7"));
        // Every entry trusted: the left-most.
        assert_eq!(b.client_ip(ip("10.1.1.1"), &xff(&["10.3.3.3, 10.2.2.2"])), ip("10.3.3.3"));
    }

    #[test]
    fn malformed_forwarded_for_is_no_address_and_never_panics() {
        let b = binding(&["10.0.0.0/8"]);
        for bad in ["", "garbage", "1.2.3.4, nonsense", ",,,,", "[::1", "999.1.1.1"] {
            let got = b.client_ip(ip("10.1.1.1"), &xff(&[bad]));
            assert_eq!(got, None, "{bad:?}");
        }
        let long = vec!["10.0.0.1"; 100].join(",");
        assert_eq!(b.client_ip(ip("10.1.1.1"), &xff(&[&long])), None);
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_bytes(b"\xff1.2.3.4").unwrap());
        assert_eq!(b.client_ip(ip("10.1.1.1"), &h), None);
        assert_eq!(b.client_ip(None, &xff(&["1.2.3.4"])), None);
    }

    #[test]
    fn proxies_parse_as_addresses_or_ranges() {
        assert!(Binding::new(BindingPolicy::Event, &["10.0.0.0/8".into(), " ::1 ".into()]).is_ok());
        assert_eq!(Binding::new(BindingPolicy::Event, &["10.0.0.0/33".into()]).unwrap_err(), "10.0.0.0/33");
        assert_eq!(Binding::new(BindingPolicy::Event, &["proxy".into()]).unwrap_err(), "proxy");
    }

    #[test]
    fn networks_are_coarse() {
        assert_eq!(coarse_ip("203.0.113.77".parse().unwrap()), "203.0.113.0/24");
        assert_eq!(coarse_ip("2001:db8:aa:bb::1".parse().unwrap()), "2001:db8:aa::/48");
        assert_eq!(coarse_ip("::ffff:203.0.113.77".parse().unwrap()), "203.0.113.0/24");
    }

    #[test]
    fn only_signed_in_sessions_are_compared() {
        let client = |ua: Option<&str>, addr: Option<&str>| Client {
            user_agent: ua.map(|u| HeaderValue::from_str(u).unwrap()),
            ip: addr.map(|a| a.parse().unwrap()),
        };
        let login = client(Some(FIREFOX_120), Some("203.0.113.5"));
        let mut meta = Metadata::new(0, 10, 10);
        meta.user_agent = login.recorded_user_agent();
        meta.ip = login.recorded_network();
        let other = client(Some(CHROME), Some("198.51.100.5"));
        assert_eq!(check(&meta, &other), None, "anonymous");
        meta.auth = Some(crate::Auth::new("alice", 0));
        assert_eq!(check(&meta, &other), Some(ClientChange { user_agent: true, network: true }));
        assert_eq!(check(&meta, &client(Some(FIREFOX_121), Some("203.0.113.99"))), None);
        assert_eq!(
            check(&meta, &client(None, None)),
            Some(ClientChange { user_agent: true, network: false }),
            "leaving the user agent out differs; a missing address is not compared"
        );
        meta.user_agent = None;
        meta.ip = None;
        assert_eq!(check(&meta, &other), None, "nothing recorded");
    }
}
