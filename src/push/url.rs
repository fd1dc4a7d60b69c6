//! Callback and webhook URLs, and the SSRF guard.
//!
//! A webhook URL or a WebSub `hub.callback` is chosen by whoever
//! registers it, and the server will send requests there: to stop it being
//! used to reach what only the server can reach (its own admin ports, a
//! cloud metadata service, the private network), a destination must be
//! `http` or `https`, carry no credentials, and — once its name is
//! resolved — have only public addresses (Standard Webhooks' advice
//! against SSRF; issue 13's `--allow-private-callbacks` lifts the address
//! rule for tests and local setups). The check is on the *resolved*
//! addresses, so a name pointing at `127.0.0.1` is refused like the
//! literal, and on every address the name has: one private address among
//! public ones refuses the URL (the mixed answer DNS rebinding relies on).
//!
//! ```
//! use rtwire::push::url::{CallbackUrl, UrlError, Host};
//!
//! let url = CallbackUrl::parse("https://Subscriber.example:8443/cb?token=a%2Fb&x")?;
//! assert_eq!(url.host(), &Host::Name("subscriber.example".into()));
//! assert_eq!(url.port(), 8443);
//! assert_eq!(url.target(), "/cb?token=a%2Fb&x"); // the query exactly as given
//! assert_eq!(CallbackUrl::parse("http://user:pw@a.example/"), Err(UrlError::UserInfo));
//! assert_eq!(CallbackUrl::parse("ftp://a.example/"), Err(UrlError::BadScheme));
//! # Ok::<(), UrlError>(())
//! ```

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// The longest URL accepted, in bytes: 2,048, the de facto limit of
/// browsers and proxies, and ample for a callback with a token in it.
pub const MAX_URL_LEN: usize = 2048;

/// The longest host name (RFC 1035 §2.3.4: 255 octets on the wire, 253
/// characters written).
const MAX_HOST_LEN: usize = 253;

/// Why a text is not an acceptable callback URL. The registering client's
/// mistake (a 400), never the receiver's.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UrlError {
    /// Longer than [`MAX_URL_LEN`].
    TooLong,
    /// A space, a control character, or a byte outside ASCII: URLs are
    /// sent percent-encoded.
    BadChar,
    /// Not `http://` or `https://`.
    BadScheme,
    /// `user:password@` before the host: credentials do not belong in a
    /// URL the server stores and logs.
    UserInfo,
    /// A `#fragment`: it is never sent, so it cannot mean anything here.
    Fragment,
    /// Nothing between `//` and the path.
    EmptyHost,
    /// The host is not a DNS name, a dotted IPv4 address or a bracketed
    /// IPv6 address (zone ids are refused, as are names ending in a
    /// numeric label, which resolvers may read as an IPv4 address).
    BadHost,
    /// The port is not a number from 1 to 65535.
    BadPort,
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UrlError::TooLong => "URL over 2048 bytes",
            UrlError::BadChar => "URL with a space, control character or non-ASCII byte",
            UrlError::BadScheme => "URL is not http:// or https://",
            UrlError::UserInfo => "URL with user:password@",
            UrlError::Fragment => "URL with a #fragment",
            UrlError::EmptyHost => "URL without a host",
            UrlError::BadHost => "URL host is not a DNS name or an IP address",
            UrlError::BadPort => "URL port is not 1 to 65535",
        })
    }
}

impl std::error::Error for UrlError {}

/// `http` or `https`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `http://`, default port 80.
    Http,
    /// `https://`, default port 443.
    Https,
}

impl Scheme {
    /// The scheme's default port.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }

    /// `http` or `https`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// The host of a URL.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Host {
    /// A DNS name, lowercased.
    Name(String),
    /// A dotted-quad IPv4 address.
    V4(Ipv4Addr),
    /// A bracketed IPv6 address.
    V6(Ipv6Addr),
}

impl fmt::Display for Host {
    /// As written in a URL or a `Host` header: IPv6 in brackets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(name) => f.write_str(name),
            Host::V4(ip) => write!(f, "{ip}"),
            Host::V6(ip) => write!(f, "[{ip}]"),
        }
    }
}

/// A parsed callback or webhook URL.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CallbackUrl {
    scheme: Scheme,
    host: Host,
    port: Option<u16>,
    /// The path (at least `/`) and `?query`, byte for byte as given.
    target: String,
}

impl CallbackUrl {
    /// Parses `http[s]://host[:port][/path][?query]`. The scheme and host
    /// are lowercased; the path and query are kept exactly (WebSub §5.3:
    /// the hub keeps the callback's query string when it verifies intent); an
    /// empty path is `/`.
    pub fn parse(text: &str) -> Result<CallbackUrl, UrlError> {
        if text.len() > MAX_URL_LEN {
            return Err(UrlError::TooLong);
        }
        if !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(UrlError::BadChar);
        }
        if text.contains('#') {
            return Err(UrlError::Fragment);
        }
        let (scheme, rest) = split_scheme(text)?;
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, target) = rest.split_at(authority_end);
        if authority.contains('@') {
            return Err(UrlError::UserInfo);
        }
        let (host, port) = parse_authority(authority)?;
        let target = if target.starts_with('/') {
            target.to_owned()
        } else {
            format!("/{target}")
        };
        Ok(CallbackUrl {
            scheme,
            host,
            port,
            target,
        })
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The host.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// The port to connect to: the one given, or the scheme's default.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(self.scheme.default_port())
    }

    /// The port as written in the URL, if it was.
    pub fn explicit_port(&self) -> Option<u16> {
        self.port
    }

    /// The request target: path and `?query`, as given (`/` at least).
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The path, up to the first `?`.
    pub fn path(&self) -> &str {
        self.target.split_once('?').map_or(&self.target, |(p, _)| p)
    }

    /// The query after the first `?`, if there is one.
    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, q)| q)
    }

    /// The target with `extra` (an encoded query, e.g. from
    /// [`form::encode`](super::form::encode)) added after the URL's own
    /// query: `?extra` or `&extra`. What a WebSub hub GETs to verify
    /// intent.
    pub fn target_with_query(&self, extra: &str) -> String {
        match self.query() {
            _ if extra.is_empty() => self.target.clone(),
            None => format!("{}?{extra}", self.target),
            Some("") => format!("{}{extra}", self.target),
            Some(_) => format!("{}&{extra}", self.target),
        }
    }

    /// The `Host` header's value: the host, and the port unless it is the
    /// scheme's default (RFC 9110 §7.2).
    pub fn host_header(&self) -> String {
        match self.port {
            Some(port) if port != self.scheme.default_port() => format!("{}:{port}", self.host),
            _ => self.host.to_string(),
        }
    }
}

impl fmt::Display for CallbackUrl {
    /// The URL in its normal form (scheme and host lowercased, an empty
    /// path as `/`); it parses back to the same `CallbackUrl`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme.as_str(), self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        f.write_str(&self.target)
    }
}

impl std::str::FromStr for CallbackUrl {
    type Err = UrlError;

    fn from_str(text: &str) -> Result<CallbackUrl, UrlError> {
        CallbackUrl::parse(text)
    }
}

fn split_scheme(text: &str) -> Result<(Scheme, &str), UrlError> {
    let (scheme, rest) = text.split_once("://").ok_or(UrlError::BadScheme)?;
    let scheme = if scheme.eq_ignore_ascii_case("http") {
        Scheme::Http
    } else if scheme.eq_ignore_ascii_case("https") {
        Scheme::Https
    } else {
        return Err(UrlError::BadScheme);
    };
    Ok((scheme, rest))
}

/// `host[:port]`, the host a name, a dotted quad or `[v6]`.
fn parse_authority(authority: &str) -> Result<(Host, Option<u16>), UrlError> {
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (v6, after) = bracketed.split_once(']').ok_or(UrlError::BadHost)?;
        let ip: Ipv6Addr = v6.parse().map_err(|_| UrlError::BadHost)?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or(UrlError::BadHost)?),
        };
        (Host::V6(ip), port)
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        };
        (parse_host(host)?, port)
    };
    Ok((host, port.map(parse_port).transpose()?))
}

fn parse_host(host: &str) -> Result<Host, UrlError> {
    if host.is_empty() {
        return Err(UrlError::EmptyHost);
    }
    if let Ok(ip) = host.parse::<Ipv4Addr>() {
        return Ok(Host::V4(ip));
    }
    let name = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    if name.len() > MAX_HOST_LEN || !name.split('.').all(valid_label) {
        return Err(UrlError::BadHost);
    }
    // "127.1", "0x7f.1" or "1.2.3.4." are IPv4 to some resolvers and URL
    // parsers (the WHATWG URL Standard reads a host whose last label is
    // numeric as IPv4): refused, so that no two readers disagree.
    let last = name.rsplit('.').next().unwrap_or("");
    if last.bytes().all(|b| b.is_ascii_digit()) || last.starts_with("0x") {
        return Err(UrlError::BadHost);
    }
    Ok(Host::Name(name))
}

/// A DNS label as host names use them: 1 to 63 letters, digits, `-` (not
/// first or last) and `_` (found in real names, though not in RFC 1123).
fn valid_label(label: &str) -> bool {
    (1..=63).contains(&label.len())
        && !label.starts_with('-')
        && !label.ends_with('-')
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn parse_port(port: &str) -> Result<u16, UrlError> {
    if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(UrlError::BadPort);
    }
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Err(UrlError::BadPort),
        Ok(port) => Ok(port),
    }
}

/// What kind of address an IP is, for the SSRF guard. Everything but
/// [`Public`](AddressClass::Public) is refused unless private callbacks
/// are allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AddressClass {
    /// A global unicast address.
    Public,
    /// `0.0.0.0`, `::`.
    Unspecified,
    /// `0.0.0.0/8` other than `0.0.0.0` ("this network", RFC 791).
    ThisNetwork,
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// `10/8`, `172.16/12`, `192.168/16` (RFC 1918); `fc00::/7` (unique
    /// local, RFC 4193); `fec0::/10` (deprecated site-local); `64:ff9b:1::/48`
    /// (local-use NAT64, RFC 8215).
    Private,
    /// `100.64.0.0/10`, carrier-grade NAT (RFC 6598).
    SharedCgnat,
    /// `169.254/16`, `fe80::/10`.
    LinkLocal,
    /// `224/4`, `ff00::/8`.
    Multicast,
    /// `255.255.255.255`.
    Broadcast,
    /// `192.0.2/24`, `198.51.100/24`, `203.0.113/24` (RFC 5737);
    /// `2001:db8::/32` (RFC 3849), `3fff::/20` (RFC 9637).
    Documentation,
    /// `198.18/15` (RFC 2544), `2001:2::/48` (RFC 5180).
    Benchmarking,
    /// Other special-purpose or unallocated space: `192.0.0/24`,
    /// `192.88.99/24`, `240/4`, `100::/64`, `2001::/23`, and IPv6
    /// outside `2000::/3`.
    Reserved,
}

impl AddressClass {
    /// The class in words, for reasons given to people: `loopback`,
    /// `private`, `link-local`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            AddressClass::Public => "public",
            AddressClass::Unspecified => "unspecified",
            AddressClass::ThisNetwork => "this-network",
            AddressClass::Loopback => "loopback",
            AddressClass::Private => "private",
            AddressClass::SharedCgnat => "shared (carrier-grade NAT)",
            AddressClass::LinkLocal => "link-local",
            AddressClass::Multicast => "multicast",
            AddressClass::Broadcast => "broadcast",
            AddressClass::Documentation => "documentation",
            AddressClass::Benchmarking => "benchmarking",
            AddressClass::Reserved => "reserved",
        }
    }
}

/// Whether `ip` is a public address a callback may be sent to.
pub fn is_public(ip: IpAddr) -> bool {
    classify(ip) == AddressClass::Public
}

/// The class of `ip`. IPv6 forms that carry an IPv4 address (mapped
/// `::ffff:a.b.c.d`, compatible `::a.b.c.d`, NAT64 `64:ff9b::/96` and
/// 6to4 `2002::/16`) are classed by that IPv4 address: `::ffff:127.0.0.1`
/// is loopback.
pub fn classify(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    use AddressClass::*;
    let [a, b, c, _] = ip.octets();
    match (a, b, c) {
        _ if ip.is_unspecified() => Unspecified,
        _ if ip.is_broadcast() => Broadcast,
        (0, _, _) => ThisNetwork,
        (127, _, _) => Loopback,
        (10, _, _) | (172, 16..=31, _) | (192, 168, _) => Private,
        (100, 64..=127, _) => SharedCgnat,
        (169, 254, _) => LinkLocal,
        (224..=239, _, _) => Multicast,
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => Documentation,
        (198, 18..=19, _) => Benchmarking,
        (192, 0, 0) | (192, 88, 99) | (240..=255, _, _) => Reserved,
        _ => Public,
    }
}

fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    use AddressClass::*;
    let s = ip.segments();
    if let Some(v4) = embedded_v4(ip) {
        return classify_v4(v4);
    }
    match s {
        [0, 0, 0, 0, 0, 0, 0, 0] => Unspecified,
        [0, 0, 0, 0, 0, 0, 0, 1] => Loopback,
        [0x64, 0xff9b, 1, ..] => Private,
        [0x2001, 0xdb8, ..] => Documentation,
        [0x2001, 2, 0, ..] => Benchmarking,
        [0x2001, 0..=0x1ff, ..] => Reserved,
        [0x3fff, 0..=0x0fff, ..] => Documentation,
        [first, ..] if first & 0xfe00 == 0xfc00 => Private,
        [first, ..] if first & 0xffc0 == 0xfe80 => LinkLocal,
        [first, ..] if first & 0xffc0 == 0xfec0 => Private,
        [first, ..] if first & 0xff00 == 0xff00 => Multicast,
        // Only 2000::/3 is allocated as global unicast.
        [first, ..] if first & 0xe000 == 0x2000 => Public,
        _ => Reserved,
    }
}

/// The IPv4 address inside an IPv6 form that carries one, if `ip` is one.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        // IPv4-mapped, ::ffff:a.b.c.d.
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(low),
        // IPv4-compatible (deprecated), ::a.b.c.d; not :: or ::1 themselves.
        [0, 0, 0, 0, 0, 0, hi, lo] if hi != 0 || lo > 1 => Some(low),
        // NAT64 well-known prefix, 64:ff9b::/96 (RFC 6052).
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(low),
        // 6to4, 2002:a.b.c.d::/48 (RFC 3056).
        [0x2002, hi, lo, ..] => Some(Ipv4Addr::new(
            (hi >> 8) as u8,
            hi as u8,
            (lo >> 8) as u8,
            lo as u8,
        )),
        _ => None,
    }
}

/// Why [`resolve_checked`] gave no addresses.
#[derive(Debug)]
#[non_exhaustive]
pub enum ResolveError {
    /// The name did not resolve within the deadline.
    Timeout,
    /// The resolver failed (no such name, no network).
    Lookup(io::Error),
    /// The name has no addresses.
    NoAddresses,
    /// An address is not public (and private callbacks are not allowed):
    /// the URL is refused, whatever its other addresses.
    NotPublic {
        /// The address.
        ip: IpAddr,
        /// What kind it is.
        class: AddressClass,
    },
}

impl ResolveError {
    /// Whether the URL itself is refused (its destination is not public),
    /// as opposed to the name not resolving just now.
    pub fn is_refused_destination(&self) -> bool {
        matches!(self, ResolveError::NotPublic { .. })
    }
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResolveError::Timeout => f.write_str("name resolution timed out"),
            ResolveError::Lookup(e) => write!(f, "name resolution failed: {e}"),
            ResolveError::NoAddresses => f.write_str("the name has no addresses"),
            ResolveError::NotPublic { ip, class } => {
                write!(f, "{ip} is a {} address, not a public one", class.as_str())
            }
        }
    }
}

impl std::error::Error for ResolveError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ResolveError::Lookup(e) => Some(e),
            _ => None,
        }
    }
}

/// The most addresses kept from one resolution.
const MAX_ADDRESSES: usize = 16;

/// The addresses to connect to for `url`, each checked by the SSRF guard
/// unless `allow_private`: refused if any of them is not public. The
/// lookup (the system resolver, on a blocking thread) must finish within
/// `timeout`. At most 16 addresses are kept, in the resolver's order.
pub async fn resolve_checked(
    url: &CallbackUrl,
    allow_private: bool,
    timeout: Duration,
) -> Result<Vec<SocketAddr>, ResolveError> {
    let port = url.port();
    let addrs: Vec<SocketAddr> = match url.host() {
        Host::V4(ip) => vec![SocketAddr::new(IpAddr::V4(*ip), port)],
        Host::V6(ip) => vec![SocketAddr::new(IpAddr::V6(*ip), port)],
        Host::Name(name) => {
            let lookup = tokio::net::lookup_host((name.as_str(), port));
            tokio::time::timeout(timeout, lookup)
                .await
                .map_err(|_| ResolveError::Timeout)?
                .map_err(ResolveError::Lookup)?
                .take(MAX_ADDRESSES)
                .collect()
        }
    };
    check_addresses(addrs, allow_private)
}

/// The SSRF guard on a resolver's answer.
fn check_addresses(
    addrs: Vec<SocketAddr>,
    allow_private: bool,
) -> Result<Vec<SocketAddr>, ResolveError> {
    if addrs.is_empty() {
        return Err(ResolveError::NoAddresses);
    }
    if !allow_private {
        if let Some(addr) = addrs.iter().find(|a| !is_public(a.ip())) {
            let ip = addr.ip();
            return Err(ResolveError::NotPublic {
                ip,
                class: classify(ip),
            });
        }
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use AddressClass::*;

    fn parse(text: &str) -> Result<CallbackUrl, UrlError> {
        CallbackUrl::parse(text)
    }

    #[test]
    fn urls_that_parse() {
        let u = parse("HTTP://A.Example.COM./cb").unwrap();
        assert_eq!(u.scheme(), Scheme::Http);
        assert_eq!(u.host(), &Host::Name("a.example.com".into()));
        assert_eq!((u.port(), u.explicit_port()), (80, None));
        assert_eq!(u.to_string(), "http://a.example.com/cb");

        let u = parse("https://[2001:DB8::1]:8443?a=1&b=%20").unwrap();
        assert_eq!(u.host(), &Host::V6("2001:db8::1".parse().unwrap()));
        assert_eq!(u.port(), 8443);
        assert_eq!(u.target(), "/?a=1&b=%20");
        assert_eq!((u.path(), u.query()), ("/", Some("a=1&b=%20")));
        assert_eq!(u.host_header(), "[2001:db8::1]:8443");

        let u = parse("http://192.0.2.7:80").unwrap();
        assert_eq!(u.host(), &Host::V4(Ipv4Addr::new(192, 0, 2, 7)));
        assert_eq!(u.target(), "/");
        assert_eq!(u.host_header(), "192.0.2.7");
        assert_eq!(u.to_string(), "http://192.0.2.7:80/");

        let u = parse("https://sub_domain.x-y.example/a/../b;p?q=%2F&&=#").unwrap_err();
        assert_eq!(u, UrlError::Fragment);
        let u = parse("https://sub_domain.x-y.example/a/../b;p?q=%2F&&=").unwrap();
        assert_eq!(u.target(), "/a/../b;p?q=%2F&&=", "kept byte for byte");
        assert_eq!(u.query(), Some("q=%2F&&="));
    }

    #[test]
    fn the_callbacks_own_query_is_kept_when_extending_it() {
        let with = |url: &str| parse(url).unwrap().target_with_query("hub.mode=subscribe");
        assert_eq!(with("http://a.example/cb"), "/cb?hub.mode=subscribe");
        assert_eq!(with("http://a.example/cb?"), "/cb?hub.mode=subscribe");
        assert_eq!(
            with("http://a.example/cb?x=1"),
            "/cb?x=1&hub.mode=subscribe"
        );
        assert_eq!(
            parse("http://a.example/cb?x")
                .unwrap()
                .target_with_query(""),
            "/cb?x"
        );
    }

    #[test]
    fn urls_that_are_refused() {
        use UrlError::*;
        let cases: &[(&str, UrlError)] = &[
            ("ftp://a.example/", BadScheme),
            ("javascript:alert(1)", BadScheme),
            ("//a.example/", BadScheme),
            ("a.example/cb", BadScheme),
            ("ws://a.example/", BadScheme),
            ("http://user@a.example/", UserInfo),
            ("http://user:pw@a.example/", UserInfo),
            ("http://a.example@evil.example/", UserInfo),
            ("http://a.example/cb#frag", Fragment),
            ("http://a.example/#", Fragment),
            ("http:///cb", EmptyHost),
            ("http://", EmptyHost),
            ("http://:80/", EmptyHost),
            ("http://a example/", BadChar),
            ("http://a.example/c b", BadChar),
            ("http://a.example/\t", BadChar),
            ("http://a.example/\r\nHost: x", BadChar),
            ("http://a.example/\u{e9}", BadChar),
            ("http://a.example/\0", BadChar),
            ("http://a..example/", BadHost),
            ("http://-a.example/", BadHost),
            ("http://a%2eexample/", BadHost),
            ("http://127.1/", BadHost),
            ("http://0x7f.1/", BadHost),
            ("http://2130706433/", BadHost),
            ("http://1.2.3.4.5/", BadHost),
            ("http://[::1/", BadHost),
            ("http://[fe80::1%25eth0]/", BadHost),
            ("http://[127.0.0.1]/", BadHost),
            ("http://[::1]x/", BadHost),
            ("http://a.example:/", BadPort),
            ("http://a.example:0/", BadPort),
            ("http://a.example:65536/", BadPort),
            ("http://a.example:+80/", BadPort),
            ("http://a.example:80:80/", BadPort),
            ("http://[::1]:99999/", BadPort),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text).as_ref(), Err(want), "{text:?}");
        }
        let label = "a".repeat(64);
        assert_eq!(parse(&format!("http://{label}.example/")), Err(BadHost));
        let long = format!("http://a.example/{}", "x".repeat(MAX_URL_LEN - 17));
        assert_eq!(long.len(), MAX_URL_LEN);
        assert!(parse(&long).is_ok());
        assert_eq!(parse(&format!("{long}x")), Err(TooLong));
    }

    fn class_of(text: &str) -> AddressClass {
        classify(text.parse().unwrap())
    }

    #[test]
    fn ipv4_classes() {
        let cases = [
            ("0.0.0.0", Unspecified),
            ("0.1.2.3", ThisNetwork),
            ("127.0.0.1", Loopback),
            ("127.255.255.254", Loopback),
            ("10.0.0.1", Private),
            ("172.16.0.1", Private),
            ("172.31.255.255", Private),
            ("192.168.1.1", Private),
            ("100.64.0.1", SharedCgnat),
            ("100.127.255.255", SharedCgnat),
            ("169.254.169.254", LinkLocal),
            ("224.0.0.1", Multicast),
            ("239.255.255.255", Multicast),
            ("255.255.255.255", Broadcast),
            ("192.0.2.1", Documentation),
            ("198.51.100.1", Documentation),
            ("203.0.113.1", Documentation),
            ("198.18.0.1", Benchmarking),
            ("198.19.255.255", Benchmarking),
            ("192.0.0.8", Reserved),
            ("240.0.0.1", Reserved),
            ("8.8.8.8", Public),
            ("1.1.1.1", Public),
            ("172.15.255.255", Public),
            ("172.32.0.0", Public),
            ("100.63.255.255", Public),
            ("100.128.0.0", Public),
            ("198.20.0.0", Public),
            ("11.0.0.0", Public),
        ];
        for (ip, class) in cases {
            assert_eq!(class_of(ip), class, "{ip}");
            assert_eq!(is_public(ip.parse().unwrap()), class == Public, "{ip}");
        }
    }

    #[test]
    fn ipv6_classes() {
        let cases = [
            ("::", Unspecified),
            ("::1", Loopback),
            ("fc00::1", Private),
            ("fdff:ffff::1", Private),
            ("fec0::1", Private),
            ("64:ff9b:1::1", Private),
            ("fe80::1", LinkLocal),
            ("febf::1", LinkLocal),
            ("ff02::1", Multicast),
            ("2001:db8::1", Documentation),
            ("3fff::1", Documentation),
            ("2001:2::1", Benchmarking),
            ("2001::1", Reserved),
            ("100::1", Reserved),
            ("4000::1", Reserved),
            ("1::1", Reserved),
            ("::2:1", ThisNetwork), // IPv4-compatible 0.2.0.1
            ("2606:4700:4700::1111", Public),
            ("2a00:1450:4001:800::200e", Public),
            // IPv4 inside IPv6: classed by the IPv4 address.
            ("::ffff:127.0.0.1", Loopback),
            ("::ffff:10.1.2.3", Private),
            ("::ffff:169.254.169.254", LinkLocal),
            ("::ffff:0.0.0.0", Unspecified),
            ("::ffff:8.8.8.8", Public),
            ("::127.0.0.1", Loopback),
            ("::192.168.0.1", Private),
            ("::8.8.8.8", Public),
            ("64:ff9b::7f00:1", Loopback),
            ("64:ff9b::808:808", Public),
            ("2002:7f00:1::1", Loopback),
            ("2002:c0a8:101::1", Private),
            ("2002:808:808::1", Public),
        ];
        for (ip, class) in cases {
            assert_eq!(class_of(ip), class, "{ip}");
        }
    }

    #[test]
    fn the_guard_refuses_any_private_address_in_an_answer() {
        let public: SocketAddr = "8.8.8.8:443".parse().unwrap();
        let private: SocketAddr = "10.0.0.1:443".parse().unwrap();
        assert_eq!(check_addresses(vec![public], false).unwrap(), [public]);
        let err = check_addresses(vec![public, private], false).unwrap_err();
        assert!(
            matches!(err, ResolveError::NotPublic { class: Private, .. }),
            "{err}"
        );
        assert!(err.is_refused_destination());
        assert_eq!(
            check_addresses(vec![public, private], true).unwrap(),
            [public, private]
        );
        assert!(matches!(
            check_addresses(vec![], true),
            Err(ResolveError::NoAddresses)
        ));
    }

    #[tokio::test]
    async fn names_are_checked_by_what_they_resolve_to() {
        let t = Duration::from_secs(10);
        let local = parse("http://localhost:9/cb").unwrap();
        let err = resolve_checked(&local, false, t).await.unwrap_err();
        assert!(
            matches!(
                err,
                ResolveError::NotPublic {
                    class: Loopback,
                    ..
                }
            ),
            "{err}"
        );
        let addrs = resolve_checked(&local, true, t).await.unwrap();
        assert!(
            addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 9),
            "{addrs:?}"
        );

        let literal = parse("http://127.0.0.1/").unwrap();
        let err = resolve_checked(&literal, false, t).await.unwrap_err();
        assert!(matches!(
            err,
            ResolveError::NotPublic {
                class: Loopback,
                ..
            }
        ));
        let mapped = parse("http://[::ffff:7f00:1]:8080/").unwrap();
        assert!(resolve_checked(&mapped, false, t).await.is_err());
        let public = parse("https://[2606:4700:4700::1111]/").unwrap();
        let addrs = resolve_checked(&public, false, t).await.unwrap();
        assert_eq!(addrs, ["[2606:4700:4700::1111]:443".parse().unwrap()]);
    }
}
