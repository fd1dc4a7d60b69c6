//! The RFC 6455 §4 opening handshake, for both roles, without I/O.
//!
//! Server side: parse the request head with [`http::Request::parse`], then call
//! [`server_accept`]; write [`Accepted::response`] on success or
//! [`HandshakeError::response`] on failure.
//!
//! Client side: parse the URL with [`WsUrl::parse`], send
//! [`ClientHandshake::request`], parse the answer with
//! [`http::Response::parse`] and check it with
//! [`ClientHandshake::validate_response`].
//!
//! # Example
//!
//! ```
//! use rtwire::handshake::{server_accept, ClientHandshake, ServerOptions, WsUrl};
//! use rtwire::http::{HeadLimits, Parse, Request, Response};
//!
//! let url = WsUrl::parse("ws://example.com/chat")?;
//! let client = ClientHandshake::new(&url, &["chat".to_string()], None);
//!
//! // Server side.
//! let Ok(Parse::Complete(req, _)) = Request::parse(&client.request(), &HeadLimits::default())
//! else {
//!     panic!("request head expected");
//! };
//! let options = ServerOptions { protocols: vec!["chat".into()], ..Default::default() };
//! let accepted = server_accept(&req, &options, None)?;
//! assert_eq!(accepted.protocol.as_deref(), Some("chat"));
//!
//! // Client side.
//! let Ok(Parse::Complete(resp, _)) = Response::parse(&accepted.response, &HeadLimits::default())
//! else {
//!     panic!("response head expected");
//! };
//! let done = client.validate_response(&resp)?;
//! assert_eq!(done.protocol.as_deref(), Some("chat"));
//! # Ok::<(), rtwire::handshake::HandshakeError>(())
//! ```

use std::fmt;
use std::net::Ipv6Addr;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use sha1::{Digest, Sha1};

use crate::http::{self, HttpError};

/// The GUID appended to the client key before hashing (RFC 6455 §1.3).
pub const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The `Sec-WebSocket-Accept` value for a `Sec-WebSocket-Key`:
/// base64(SHA-1(key + GUID)) (RFC 6455 §4.2.2).
///
/// ```
/// use rtwire::handshake::accept_key;
/// assert_eq!(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
/// ```
pub fn accept_key(key: &str) -> String {
    let mut hasher = Sha1::new();
    hasher.update(key.as_bytes());
    hasher.update(GUID.as_bytes());
    BASE64.encode(hasher.finalize())
}

/// A fresh `Sec-WebSocket-Key`: base64 of 16 random bytes (RFC 6455 §4.1).
pub fn generate_key() -> String {
    let nonce: [u8; 16] = rand::random();
    BASE64.encode(nonce)
}

/// Why an opening handshake failed.
///
/// Most variants are the peer's fault (see [`is_peer_fault`](Self::is_peer_fault));
/// a server answers them with [`response`](Self::response).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeError {
    /// The HTTP head itself was malformed.
    Http(HttpError),
    /// Server: the method is not `GET`.
    NotGet,
    /// Server: the HTTP version is older than 1.1.
    HttpVersionTooOld,
    /// Server: `Host` is missing or repeated.
    BadHost,
    /// `Upgrade` does not name `websocket`.
    NoUpgradeWebSocket,
    /// `Connection` does not list `upgrade`.
    NoConnectionUpgrade,
    /// Server: no `Sec-WebSocket-Key`.
    MissingKey,
    /// Server: more than one `Sec-WebSocket-Key`.
    DuplicateKey,
    /// Server: `Sec-WebSocket-Key` is not base64 of 16 bytes.
    InvalidKey,
    /// Server: no `Sec-WebSocket-Version` (answered with 426).
    MissingVersion,
    /// Server: `Sec-WebSocket-Version` is not `13` (answered with 426).
    UnsupportedVersion,
    /// Server: the [`ServerHook`] refused the `Origin` (answered with 403).
    OriginRefused,
    /// Server: the [`ServerHook`] chose a subprotocol the client did not
    /// offer. A bug in the hook, not the peer's fault.
    ProtocolNotOffered(String),
    /// Client: the status was not 101.
    UnexpectedStatus(u16),
    /// Client: `Sec-WebSocket-Accept` is missing or repeated.
    MissingAccept,
    /// Client: `Sec-WebSocket-Accept` does not match our key.
    AcceptMismatch,
    /// Client: the server chose a subprotocol we did not offer, or several.
    UnexpectedProtocol,
    /// Client: the server answered extensions we did not offer.
    UnexpectedExtensions,
    /// Client: the URL is not a usable `ws://` URL; the reason is given.
    BadUrl(&'static str),
    /// Client: `wss://` needs TLS, which this crate does not provide.
    TlsNotSupported,
}

impl HandshakeError {
    /// The HTTP status a server answers with: 426 for a missing or wrong
    /// `Sec-WebSocket-Version`, 403 for a refused origin, the HTTP error's own
    /// status for [`Http`](Self::Http), 500 for a hook bug, 400 otherwise.
    pub fn status(&self) -> u16 {
        match self {
            HandshakeError::Http(e) => e.status(),
            HandshakeError::MissingVersion | HandshakeError::UnsupportedVersion => 426,
            HandshakeError::OriginRefused => 403,
            HandshakeError::ProtocolNotOffered(_) => 500,
            _ => 400,
        }
    }

    /// Whether the remote side caused this; `false` for mistakes of the
    /// local caller (bad URL, `wss://`, a hook choosing an unoffered protocol).
    pub fn is_peer_fault(&self) -> bool {
        !matches!(
            self,
            HandshakeError::BadUrl(_)
                | HandshakeError::TlsNotSupported
                | HandshakeError::ProtocolNotOffered(_)
        )
    }

    /// The complete HTTP rejection a server writes before closing: a
    /// `text/plain` body holding the [`Display`](fmt::Display) line.
    ///
    /// ```
    /// use rtwire::handshake::HandshakeError;
    /// let bytes = HandshakeError::OriginRefused.response();
    /// assert!(bytes.starts_with(b"HTTP/1.1 403 Forbidden\r\n"));
    /// ```
    pub fn response(&self) -> Vec<u8> {
        let status = self.status();
        let mut headers = vec![("Content-Type", "text/plain")];
        if status == 426 {
            // RFC 7231 §6.5.15: a 426 MUST carry Upgrade, and RFC 7230 §6.7 then
            // requires `upgrade` in Connection. RFC 6455 §4.2.2: name the
            // version we support.
            headers.push(("Connection", "Upgrade, close"));
            headers.push(("Upgrade", "websocket"));
            headers.push(("Sec-WebSocket-Version", "13"));
        } else {
            headers.push(("Connection", "close"));
        }
        let body = format!("{self}\n");
        let mut out = Vec::with_capacity(160 + body.len());
        http::write_response(
            &mut out,
            status,
            http::reason_phrase(status),
            &headers,
            body.as_bytes(),
        );
        out
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::Http(e) => write!(f, "{e}"),
            HandshakeError::NotGet => f.write_str("WebSocket upgrade must use GET"),
            HandshakeError::HttpVersionTooOld => {
                f.write_str("WebSocket upgrade needs HTTP/1.1 or later")
            }
            HandshakeError::BadHost => f.write_str("missing or repeated Host header"),
            HandshakeError::NoUpgradeWebSocket => f.write_str("missing Upgrade: websocket"),
            HandshakeError::NoConnectionUpgrade => f.write_str("missing Connection: Upgrade"),
            HandshakeError::MissingKey => f.write_str("missing Sec-WebSocket-Key"),
            HandshakeError::DuplicateKey => f.write_str("repeated Sec-WebSocket-Key"),
            HandshakeError::InvalidKey => {
                f.write_str("Sec-WebSocket-Key is not base64 of 16 bytes")
            }
            HandshakeError::MissingVersion => f.write_str("missing Sec-WebSocket-Version"),
            HandshakeError::UnsupportedVersion => {
                f.write_str("unsupported Sec-WebSocket-Version, expected 13")
            }
            HandshakeError::OriginRefused => f.write_str("origin not allowed"),
            HandshakeError::ProtocolNotOffered(p) => {
                write!(
                    f,
                    "server hook chose subprotocol {p:?} that the client did not offer"
                )
            }
            HandshakeError::UnexpectedStatus(s) => {
                write!(f, "server answered status {s} instead of 101")
            }
            HandshakeError::MissingAccept => {
                f.write_str("missing or repeated Sec-WebSocket-Accept")
            }
            HandshakeError::AcceptMismatch => f.write_str("wrong Sec-WebSocket-Accept"),
            HandshakeError::UnexpectedProtocol => {
                f.write_str("server chose a subprotocol that was not offered")
            }
            HandshakeError::UnexpectedExtensions => {
                f.write_str("server answered extensions that were not offered")
            }
            HandshakeError::BadUrl(why) => write!(f, "bad WebSocket URL: {why}"),
            HandshakeError::TlsNotSupported => f.write_str("wss:// (TLS) is not supported"),
        }
    }
}

impl std::error::Error for HandshakeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HandshakeError::Http(e) => Some(e),
            _ => None,
        }
    }
}

impl From<HttpError> for HandshakeError {
    fn from(e: HttpError) -> Self {
        HandshakeError::Http(e)
    }
}

/// Server policy consulted by [`server_accept`].
pub trait ServerHook: Send + Sync {
    /// Picks a subprotocol among those the client offered (in the client's
    /// order), or `None` to answer without one. Must return one of `offered`.
    fn select_protocol(&self, offered: &[&str]) -> Option<String> {
        let _ = offered;
        None
    }

    /// Whether to accept a request with this `Origin` (`None` when absent).
    fn allow_origin(&self, origin: Option<&str>) -> bool {
        let _ = origin;
        true
    }
}

/// A ready-made [`ServerHook`]: a list of supported subprotocols and an
/// optional origin allow-list.
///
/// ```
/// use rtwire::handshake::{ServerHook, ServerOptions};
///
/// let options = ServerOptions {
///     protocols: vec!["v2.chat".into(), "v1.chat".into()],
///     allowed_origins: Some(vec!["https://example.com".into()]),
/// };
/// // Our preference order wins over the client's.
/// assert_eq!(options.select_protocol(&["v1.chat", "v2.chat"]).as_deref(), Some("v2.chat"));
/// assert!(options.allow_origin(Some("HTTPS://EXAMPLE.COM")));
/// assert!(!options.allow_origin(Some("https://evil.example")));
/// assert!(!options.allow_origin(None));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerOptions {
    /// Supported subprotocols, most preferred first. Empty: never choose one.
    pub protocols: Vec<String>,
    /// Accepted `Origin` values, compared ASCII case-insensitively. `None`
    /// accepts any request; with a list, a request without `Origin` is refused.
    pub allowed_origins: Option<Vec<String>>,
}

impl ServerHook for ServerOptions {
    fn select_protocol(&self, offered: &[&str]) -> Option<String> {
        self.protocols
            .iter()
            .find(|ours| offered.contains(&ours.as_str()))
            .cloned()
    }

    fn allow_origin(&self, origin: Option<&str>) -> bool {
        match (&self.allowed_origins, origin) {
            (None, _) => true,
            (Some(list), Some(origin)) => list.iter().any(|o| o.eq_ignore_ascii_case(origin)),
            (Some(_), None) => false,
        }
    }
}

/// What a valid upgrade request asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeRequest {
    /// The `Sec-WebSocket-Key`.
    pub key: String,
    /// Offered subprotocols, in the client's order.
    pub protocols: Vec<String>,
    /// The `Origin`, if sent.
    pub origin: Option<String>,
    /// Elements of `Sec-WebSocket-Extensions`, unparsed, for a later
    /// negotiation step.
    pub extensions: Vec<String>,
    /// The request target (path and query).
    pub path: String,
}

/// Checks a request against RFC 6455 §4.2.1 and extracts what it asks for.
pub fn validate_request(req: &http::Request) -> Result<UpgradeRequest, HandshakeError> {
    let h = &req.headers;
    // RFC 6455 §4.2.1 item 1: an HTTP/1.1 or higher GET request.
    if req.method != "GET" {
        return Err(HandshakeError::NotGet);
    }
    if !req.version.at_least_1_1() {
        return Err(HandshakeError::HttpVersionTooOld);
    }
    // RFC 6455 §4.2.1 item 2; RFC 7230 §5.4: exactly one Host.
    if h.get_all("host").count() != 1 {
        return Err(HandshakeError::BadHost);
    }
    // RFC 6455 §4.2.1 item 3.
    if !h.contains_token("upgrade", "websocket") {
        return Err(HandshakeError::NoUpgradeWebSocket);
    }
    // RFC 6455 §4.2.1 item 4.
    if !h.contains_token("connection", "upgrade") {
        return Err(HandshakeError::NoConnectionUpgrade);
    }
    // RFC 6455 §4.2.1 item 5: one key, base64 of a 16-byte nonce.
    let mut keys = h.get_all("sec-websocket-key");
    let key = keys.next().ok_or(HandshakeError::MissingKey)?;
    if keys.next().is_some() {
        return Err(HandshakeError::DuplicateKey);
    }
    match BASE64.decode(key) {
        Ok(nonce) if nonce.len() == 16 => {}
        _ => return Err(HandshakeError::InvalidKey),
    }
    // RFC 6455 §4.2.1 item 6 and §4.2.2: version 13, else 426.
    let mut versions = h.get_all("sec-websocket-version");
    match (versions.next(), versions.next()) {
        (None, _) => return Err(HandshakeError::MissingVersion),
        (Some("13"), None) => {}
        _ => return Err(HandshakeError::UnsupportedVersion),
    }
    Ok(UpgradeRequest {
        key: key.to_string(),
        protocols: h
            .tokens("sec-websocket-protocol")
            .map(str::to_string)
            .collect(),
        // RFC 6455 §4.2.1 item 7.
        origin: h.get("origin").map(str::to_string),
        extensions: h
            .tokens("sec-websocket-extensions")
            .map(str::to_string)
            .collect(),
        path: req.target.clone(),
    })
}

/// A successful server handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The complete `101 Switching Protocols` head to write.
    pub response: Vec<u8>,
    /// The chosen subprotocol.
    pub protocol: Option<String>,
}

/// Validates `req`, applies `hook`, and builds the 101 answer (RFC 6455 §4.2.2).
///
/// `extensions_answer`, when given, is sent as `Sec-WebSocket-Extensions`.
/// On error, write [`HandshakeError::response`] and close the connection.
///
/// ```
/// use rtwire::handshake::{server_accept, ServerOptions};
/// use rtwire::http::{HeadLimits, Parse, Request};
///
/// let head = b"GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\
///     Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
/// let Ok(Parse::Complete(req, _)) = Request::parse(head, &HeadLimits::default()) else {
///     panic!("complete head expected");
/// };
/// // No Sec-WebSocket-Version: refused with 426.
/// let err = server_accept(&req, &ServerOptions::default(), None).unwrap_err();
/// assert_eq!(err.status(), 426);
/// assert!(err.response().starts_with(b"HTTP/1.1 426 Upgrade Required\r\n"));
/// ```
pub fn server_accept(
    req: &http::Request,
    hook: &dyn ServerHook,
    extensions_answer: Option<&str>,
) -> Result<Accepted, HandshakeError> {
    let up = validate_request(req)?;
    if !hook.allow_origin(up.origin.as_deref()) {
        return Err(HandshakeError::OriginRefused);
    }
    let offered: Vec<&str> = up.protocols.iter().map(String::as_str).collect();
    let protocol = hook.select_protocol(&offered);
    if let Some(p) = &protocol {
        // RFC 6455 §4.2.2: the selected subprotocol must be one the client offered.
        if !offered.contains(&p.as_str()) {
            return Err(HandshakeError::ProtocolNotOffered(p.clone()));
        }
    }
    let accept = accept_key(&up.key);
    let mut headers = vec![
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", accept.as_str()),
    ];
    if let Some(p) = &protocol {
        headers.push(("Sec-WebSocket-Protocol", p));
    }
    if let Some(ext) = extensions_answer {
        headers.push(("Sec-WebSocket-Extensions", ext));
    }
    let mut response = Vec::with_capacity(160);
    http::write_response(&mut response, 101, "Switching Protocols", &headers, b"");
    Ok(Accepted { response, protocol })
}

/// A parsed `ws://` URL (RFC 6455 §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsUrl {
    /// Host name or IP address; IPv6 literals without brackets.
    pub host: String,
    /// TCP port, 80 when not given.
    pub port: u16,
    /// Path and query to request, at least `/`.
    pub resource: String,
}

impl WsUrl {
    /// Parses `ws://host[:port][/path][?query]`.
    ///
    /// `wss://` gives [`HandshakeError::TlsNotSupported`]; anything else that
    /// does not fit gives [`HandshakeError::BadUrl`]. Non-ASCII or space
    /// characters in the path must be percent-encoded by the caller.
    ///
    /// ```
    /// use rtwire::handshake::WsUrl;
    /// let url = WsUrl::parse("ws://[::1]:9001/echo?x=1")?;
    /// assert_eq!((url.host.as_str(), url.port, url.resource.as_str()), ("::1", 9001, "/echo?x=1"));
    /// assert_eq!(url.host_header(), "[::1]:9001");
    /// # Ok::<(), rtwire::handshake::HandshakeError>(())
    /// ```
    pub fn parse(url: &str) -> Result<WsUrl, HandshakeError> {
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(HandshakeError::BadUrl("expected ws://"));
        };
        if scheme.eq_ignore_ascii_case("wss") {
            return Err(HandshakeError::TlsNotSupported);
        }
        if !scheme.eq_ignore_ascii_case("ws") {
            return Err(HandshakeError::BadUrl("scheme is not ws"));
        }
        // RFC 6455 §3: fragment identifiers MUST NOT be used.
        if rest.contains('#') {
            return Err(HandshakeError::BadUrl("fragment not allowed"));
        }
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, resource) = rest.split_at(split);
        if authority.contains('@') {
            return Err(HandshakeError::BadUrl("userinfo not allowed"));
        }
        let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
            let Some((host, after)) = bracketed.split_once(']') else {
                return Err(HandshakeError::BadUrl("unclosed IPv6 bracket"));
            };
            if host.parse::<Ipv6Addr>().is_err() {
                return Err(HandshakeError::BadUrl("invalid IPv6 address"));
            }
            let port = match after {
                "" => None,
                _ => match after.strip_prefix(':') {
                    Some(p) => Some(p),
                    None => return Err(HandshakeError::BadUrl("junk after IPv6 address")),
                },
            };
            (host, port)
        } else {
            let (host, port) = match authority.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            };
            let host_ok = !host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
            if !host_ok {
                return Err(HandshakeError::BadUrl("invalid host"));
            }
            (host, port)
        };
        let port = match port {
            None => 80,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n != 0 && p.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => return Err(HandshakeError::BadUrl("invalid port")),
            },
        };
        // The resource goes verbatim into the request line.
        if !resource.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(HandshakeError::BadUrl("path must be visible ASCII"));
        }
        let resource = if resource.starts_with('/') {
            resource.to_string()
        } else {
            format!("/{resource}")
        };
        Ok(WsUrl {
            host: host.to_string(),
            port,
            resource,
        })
    }

    /// The `Host` header value: the port is left out when it is 80, and
    /// IPv6 literals are bracketed.
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == 80 {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// The client half of the handshake: builds the request and checks the
/// answer (RFC 6455 §4.1).
///
/// ```
/// use rtwire::handshake::{ClientHandshake, WsUrl};
/// let url = WsUrl::parse("ws://localhost:9001/")?;
/// let client = ClientHandshake::new(&url, &[], None);
/// let request = String::from_utf8(client.request()).unwrap();
/// assert!(request.starts_with("GET / HTTP/1.1\r\nHost: localhost:9001\r\n"));
/// assert!(request.contains(&format!("Sec-WebSocket-Key: {}\r\n", client.key())));
/// # Ok::<(), rtwire::handshake::HandshakeError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientHandshake {
    host: String,
    resource: String,
    key: String,
    protocols: Vec<String>,
    extensions_offer: Option<String>,
}

impl ClientHandshake {
    /// A handshake for `url` with a fresh random key, offering `protocols`
    /// (in preference order) and `extensions_offer` if given.
    pub fn new(url: &WsUrl, protocols: &[String], extensions_offer: Option<&str>) -> Self {
        Self::with_key(url, &generate_key(), protocols, extensions_offer)
    }

    /// Like [`new`](Self::new) with a chosen key, for tests. Real clients must
    /// use a random key (RFC 6455 §4.1).
    pub fn with_key(
        url: &WsUrl,
        key: &str,
        protocols: &[String],
        extensions_offer: Option<&str>,
    ) -> Self {
        ClientHandshake {
            host: url.host_header(),
            resource: url.resource.clone(),
            key: key.to_string(),
            protocols: protocols.to_vec(),
            extensions_offer: extensions_offer.map(str::to_string),
        }
    }

    /// The `Sec-WebSocket-Key` sent.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The complete request head to write.
    pub fn request(&self) -> Vec<u8> {
        let protocols = self.protocols.join(", ");
        let mut headers = vec![
            ("Host", self.host.as_str()),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", self.key.as_str()),
            ("Sec-WebSocket-Version", "13"),
        ];
        if !self.protocols.is_empty() {
            headers.push(("Sec-WebSocket-Protocol", &protocols));
        }
        if let Some(ext) = &self.extensions_offer {
            headers.push(("Sec-WebSocket-Extensions", ext));
        }
        let mut out = Vec::with_capacity(200);
        http::write_request(&mut out, "GET", &self.resource, &headers);
        out
    }

    /// Checks the server's answer (RFC 6455 §4.1, client requirements).
    pub fn validate_response(
        &self,
        resp: &http::Response,
    ) -> Result<ClientAccepted, HandshakeError> {
        let h = &resp.headers;
        // RFC 6455 §4.1 item 1: anything but 101 ends the handshake.
        if resp.status != 101 {
            return Err(HandshakeError::UnexpectedStatus(resp.status));
        }
        // RFC 6455 §4.1 item 2.
        if !h.contains_token("upgrade", "websocket") {
            return Err(HandshakeError::NoUpgradeWebSocket);
        }
        // RFC 6455 §4.1 item 3.
        if !h.contains_token("connection", "upgrade") {
            return Err(HandshakeError::NoConnectionUpgrade);
        }
        // RFC 6455 §4.1 item 4.
        let mut accepts = h.get_all("sec-websocket-accept");
        let accept = match (accepts.next(), accepts.next()) {
            (Some(a), None) => a,
            _ => return Err(HandshakeError::MissingAccept),
        };
        if accept != accept_key(&self.key) {
            return Err(HandshakeError::AcceptMismatch);
        }
        // RFC 6455 §4.1 item 5: extensions must have been offered.
        let extensions: Vec<&str> = h
            .get_all("sec-websocket-extensions")
            .filter(|v| !v.is_empty())
            .collect();
        if !extensions.is_empty() && self.extensions_offer.is_none() {
            return Err(HandshakeError::UnexpectedExtensions);
        }
        // RFC 6455 §4.1 item 6: at most one subprotocol, one we offered.
        let mut chosen = h.tokens("sec-websocket-protocol");
        let protocol = match (chosen.next(), chosen.next()) {
            (None, _) => None,
            (Some(p), None) if self.protocols.iter().any(|ours| ours == p) => Some(p.to_string()),
            _ => return Err(HandshakeError::UnexpectedProtocol),
        };
        Ok(ClientAccepted {
            protocol,
            extensions: (!extensions.is_empty()).then(|| extensions.join(", ")),
        })
    }
}

/// A successful client handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAccepted {
    /// The subprotocol the server chose.
    pub protocol: Option<String>,
    /// The server's `Sec-WebSocket-Extensions` values, joined with `", "`.
    pub extensions: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{HeadLimits, Parse, Request, Response};
    use proptest::prelude::*;

    const RFC_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    fn parse_req(bytes: &[u8]) -> Request {
        match Request::parse(bytes, &HeadLimits::default()) {
            Ok(Parse::Complete(r, n)) => {
                assert_eq!(n, bytes.len());
                r
            }
            other => panic!("bad request head: {other:?}"),
        }
    }

    fn parse_resp(bytes: &[u8]) -> (Response, usize) {
        match Response::parse(bytes, &HeadLimits::default()) {
            Ok(Parse::Complete(r, n)) => (r, n),
            other => panic!("bad response head: {other:?}"),
        }
    }

    /// A valid upgrade request with `edit` applied to its header list.
    fn request_with(edit: impl FnOnce(&mut Vec<(&'static str, &'static str)>)) -> Request {
        let mut headers = vec![
            ("Host", "server.example.com"),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", RFC_KEY),
            ("Origin", "http://example.com"),
            ("Sec-WebSocket-Protocol", "chat, superchat"),
            ("Sec-WebSocket-Version", "13"),
        ];
        edit(&mut headers);
        let mut out = Vec::new();
        http::write_request(&mut out, "GET", "/chat", &headers);
        parse_req(&out)
    }

    fn without(name: &'static str) -> impl FnOnce(&mut Vec<(&'static str, &'static str)>) {
        move |h| h.retain(|(n, _)| *n != name)
    }

    fn replace(
        name: &'static str,
        value: &'static str,
    ) -> impl FnOnce(&mut Vec<(&'static str, &'static str)>) {
        move |h| {
            for (n, v) in h.iter_mut() {
                if *n == name {
                    *v = value;
                }
            }
        }
    }

    #[test]
    fn rfc_example_accept_key() {
        assert_eq!(accept_key(RFC_KEY), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn generated_keys_are_valid_and_differ() {
        let a = generate_key();
        let b = generate_key();
        assert_ne!(a, b);
        assert_eq!(a.len(), 24);
        assert_eq!(BASE64.decode(&a).unwrap().len(), 16);
    }

    #[test]
    fn accepts_valid_upgrade_exact_bytes() {
        let req = request_with(|_| {});
        let up = validate_request(&req).unwrap();
        assert_eq!(up.key, RFC_KEY);
        assert_eq!(up.protocols, ["chat", "superchat"]);
        assert_eq!(up.origin.as_deref(), Some("http://example.com"));
        assert_eq!(up.path, "/chat");
        assert!(up.extensions.is_empty());

        let options = ServerOptions {
            protocols: vec!["chat".into()],
            allowed_origins: None,
        };
        let acc = server_accept(&req, &options, None).unwrap();
        assert_eq!(acc.protocol.as_deref(), Some("chat"));
        assert_eq!(
            acc.response,
            b"HTTP/1.1 101 Switching Protocols\r\n\
              Upgrade: websocket\r\n\
              Connection: Upgrade\r\n\
              Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
              Sec-WebSocket-Protocol: chat\r\n\
              \r\n"
        );
    }

    #[test]
    fn accept_without_protocol_with_extensions() {
        let req = request_with(|h| {
            h.push((
                "Sec-WebSocket-Extensions",
                "permessage-deflate; client_max_window_bits, x-foo",
            ))
        });
        let up = validate_request(&req).unwrap();
        assert_eq!(
            up.extensions,
            ["permessage-deflate; client_max_window_bits", "x-foo"]
        );
        let acc =
            server_accept(&req, &ServerOptions::default(), Some("permessage-deflate")).unwrap();
        assert_eq!(acc.protocol, None);
        assert_eq!(
            acc.response,
            b"HTTP/1.1 101 Switching Protocols\r\n\
              Upgrade: websocket\r\n\
              Connection: Upgrade\r\n\
              Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
              Sec-WebSocket-Extensions: permessage-deflate\r\n\
              \r\n"
        );
    }

    #[test]
    fn lenient_token_matching() {
        let req = request_with(|h| {
            replace("Upgrade", "WebSocket")(h);
            replace("Connection", "keep-alive, upgrade")(h);
        });
        assert!(validate_request(&req).is_ok());
    }

    /// Checks the error, its status, and that the rejection parses back.
    fn assert_rejected(req: &Request, expected: HandshakeError, status: u16) {
        let err = server_accept(req, &ServerOptions::default(), None).unwrap_err();
        assert_eq!(err, expected);
        assert_eq!(err.status(), status);
        assert!(err.is_peer_fault());
        let bytes = err.response();
        let (resp, n) = parse_resp(&bytes);
        assert_eq!(resp.status, status);
        assert_eq!(resp.reason, http::reason_phrase(status));
        assert_eq!(resp.headers.get("content-type"), Some("text/plain"));
        assert!(resp.headers.contains_token("connection", "close"));
        assert_eq!(&bytes[n..], format!("{err}\n").as_bytes());
        assert_eq!(
            resp.headers.get("content-length"),
            Some((bytes.len() - n).to_string().as_str())
        );
        let version = resp.headers.get("sec-websocket-version");
        if status == 426 {
            assert_eq!(version, Some("13"));
            assert!(resp.headers.contains_token("upgrade", "websocket"));
            assert!(resp.headers.contains_token("connection", "upgrade"));
        } else {
            assert_eq!(version, None);
        }
    }

    #[test]
    fn rejections() {
        use HandshakeError as E;
        let mut post = request_with(|_| {});
        post.method = "POST".into();
        assert_rejected(&post, E::NotGet, 400);
        let mut old = request_with(|_| {});
        old.version = http::Version::HTTP_1_0;
        assert_rejected(&old, E::HttpVersionTooOld, 400);
        assert_rejected(&request_with(without("Host")), E::BadHost, 400);
        assert_rejected(
            &request_with(|h| h.push(("Host", "other"))),
            E::BadHost,
            400,
        );
        assert_rejected(
            &request_with(without("Upgrade")),
            E::NoUpgradeWebSocket,
            400,
        );
        assert_rejected(
            &request_with(replace("Upgrade", "h2c")),
            E::NoUpgradeWebSocket,
            400,
        );
        assert_rejected(
            &request_with(without("Connection")),
            E::NoConnectionUpgrade,
            400,
        );
        assert_rejected(
            &request_with(replace("Connection", "keep-alive")),
            E::NoConnectionUpgrade,
            400,
        );
        assert_rejected(
            &request_with(without("Sec-WebSocket-Key")),
            E::MissingKey,
            400,
        );
        assert_rejected(
            &request_with(|h| h.push(("Sec-WebSocket-Key", RFC_KEY))),
            E::DuplicateKey,
            400,
        );
        for bad in [
            "not base64!",
            "AAAAAAAAAAAAAAAAAAAA",
            "AAAAAAAAAAAAAAAAAAAAAAA=",
            "",
        ] {
            assert_rejected(
                &request_with(replace("Sec-WebSocket-Key", bad)),
                E::InvalidKey,
                400,
            );
        }
        assert_rejected(
            &request_with(without("Sec-WebSocket-Version")),
            E::MissingVersion,
            426,
        );
        for bad in ["8", "13, 8", " 12", "130"] {
            assert_rejected(
                &request_with(replace("Sec-WebSocket-Version", bad)),
                E::UnsupportedVersion,
                426,
            );
        }
        assert_rejected(
            &request_with(|h| h.push(("Sec-WebSocket-Version", "13"))),
            E::UnsupportedVersion,
            426,
        );
    }

    #[test]
    fn origin_refused_is_403() {
        let req = request_with(|_| {});
        let options = ServerOptions {
            protocols: vec![],
            allowed_origins: Some(vec!["https://good.example".into()]),
        };
        let err = server_accept(&req, &options, None).unwrap_err();
        assert_eq!(err, HandshakeError::OriginRefused);
        assert!(err.is_peer_fault());
        let (resp, _) = parse_resp(&err.response());
        assert_eq!(resp.status, 403);

        let allowed = ServerOptions {
            protocols: vec![],
            allowed_origins: Some(vec!["HTTP://EXAMPLE.com".into()]),
        };
        assert!(server_accept(&req, &allowed, None).is_ok());
        let no_origin = request_with(without("Origin"));
        assert_eq!(
            server_accept(&no_origin, &allowed, None).unwrap_err(),
            HandshakeError::OriginRefused
        );
        assert!(server_accept(&no_origin, &ServerOptions::default(), None).is_ok());
    }

    #[test]
    fn http_error_status_passes_through() {
        let e = HandshakeError::from(HttpError::TooManyHeaders);
        assert_eq!(e.status(), 431);
        assert!(e.is_peer_fault());
        let (resp, _) = parse_resp(&e.response());
        assert_eq!(resp.status, 431);
        assert_eq!(
            HandshakeError::from(HttpError::UnsupportedVersion).status(),
            505
        );
    }

    #[test]
    fn protocol_selection() {
        let options = ServerOptions {
            protocols: vec!["superchat".into(), "chat".into()],
            allowed_origins: None,
        };
        let acc = server_accept(&request_with(|_| {}), &options, None).unwrap();
        assert_eq!(acc.protocol.as_deref(), Some("superchat"));
        let none = ServerOptions {
            protocols: vec!["other".into()],
            allowed_origins: None,
        };
        let acc = server_accept(&request_with(|_| {}), &none, None).unwrap();
        assert_eq!(acc.protocol, None);
        assert!(!String::from_utf8(acc.response)
            .unwrap()
            .contains("Sec-WebSocket-Protocol"));
    }

    struct BadHook;
    impl ServerHook for BadHook {
        fn select_protocol(&self, _offered: &[&str]) -> Option<String> {
            Some("mqtt".into())
        }
    }

    struct DefaultHook;
    impl ServerHook for DefaultHook {}

    #[test]
    fn hook_choosing_unoffered_protocol_is_caller_error() {
        let err = server_accept(&request_with(|_| {}), &BadHook, None).unwrap_err();
        assert_eq!(err, HandshakeError::ProtocolNotOffered("mqtt".into()));
        assert!(!err.is_peer_fault());
        assert_eq!(err.status(), 500);
        let acc = server_accept(&request_with(|_| {}), &DefaultHook, None).unwrap();
        assert_eq!(acc.protocol, None);
    }

    fn url() -> WsUrl {
        WsUrl::parse("ws://server.example.com/chat").unwrap()
    }

    #[test]
    fn client_request_round_trip() {
        let client = ClientHandshake::with_key(
            &url(),
            RFC_KEY,
            &["chat".into(), "superchat".into()],
            Some("permessage-deflate"),
        );
        let bytes = client.request();
        assert_eq!(
            bytes,
            b"GET /chat HTTP/1.1\r\n\
              Host: server.example.com\r\n\
              Upgrade: websocket\r\n\
              Connection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
              Sec-WebSocket-Version: 13\r\n\
              Sec-WebSocket-Protocol: chat, superchat\r\n\
              Sec-WebSocket-Extensions: permessage-deflate\r\n\
              \r\n"
        );
        let up = validate_request(&parse_req(&bytes)).unwrap();
        assert_eq!(up.key, client.key());
        assert_eq!(up.protocols, ["chat", "superchat"]);
        assert_eq!(up.extensions, ["permessage-deflate"]);
        assert_eq!(up.path, "/chat");
        assert_eq!(up.origin, None);

        let options = ServerOptions {
            protocols: vec!["superchat".into()],
            allowed_origins: None,
        };
        let acc = server_accept(&parse_req(&bytes), &options, Some("permessage-deflate")).unwrap();
        let (resp, n) = parse_resp(&acc.response);
        assert_eq!(n, acc.response.len());
        let done = client.validate_response(&resp).unwrap();
        assert_eq!(done.protocol.as_deref(), Some("superchat"));
        assert_eq!(done.extensions.as_deref(), Some("permessage-deflate"));
    }

    #[test]
    fn minimal_client_request() {
        let client = ClientHandshake::new(&url(), &[], None);
        let text = String::from_utf8(client.request()).unwrap();
        assert!(
            !text.contains("Sec-WebSocket-Protocol") && !text.contains("Sec-WebSocket-Extensions")
        );
        let up = validate_request(&parse_req(text.as_bytes())).unwrap();
        assert_eq!(up.key, client.key());
        assert!(up.protocols.is_empty());
    }

    /// A valid 101 for `RFC_KEY` with `edit` applied to its headers.
    fn response_with(edit: impl FnOnce(&mut Vec<(&'static str, &'static str)>)) -> Response {
        response_status(101, edit)
    }

    fn response_status(
        status: u16,
        edit: impl FnOnce(&mut Vec<(&'static str, &'static str)>),
    ) -> Response {
        let mut headers = vec![
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        ];
        edit(&mut headers);
        let mut out = Vec::new();
        http::write_response(&mut out, status, "X", &headers, b"");
        parse_resp(&out).0
    }

    #[test]
    fn client_response_checks() {
        use HandshakeError as E;
        let plain = ClientHandshake::with_key(&url(), RFC_KEY, &[], None);
        let with_proto = ClientHandshake::with_key(&url(), RFC_KEY, &["chat".into()], None);
        let with_ext = ClientHandshake::with_key(&url(), RFC_KEY, &[], Some("x-ext"));

        let ok = plain.validate_response(&response_with(|_| {})).unwrap();
        assert_eq!(
            ok,
            ClientAccepted {
                protocol: None,
                extensions: None
            }
        );

        let cases: Vec<(&ClientHandshake, Response, E)> = vec![
            (
                &plain,
                response_status(200, |_| {}),
                E::UnexpectedStatus(200),
            ),
            (
                &plain,
                response_status(403, |_| {}),
                E::UnexpectedStatus(403),
            ),
            (
                &plain,
                response_with(without("Upgrade")),
                E::NoUpgradeWebSocket,
            ),
            (
                &plain,
                response_with(replace("Upgrade", "h2c")),
                E::NoUpgradeWebSocket,
            ),
            (
                &plain,
                response_with(without("Connection")),
                E::NoConnectionUpgrade,
            ),
            (
                &plain,
                response_with(replace("Connection", "close")),
                E::NoConnectionUpgrade,
            ),
            (
                &plain,
                response_with(without("Sec-WebSocket-Accept")),
                E::MissingAccept,
            ),
            (
                &plain,
                response_with(|h| h.push(("Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="))),
                E::MissingAccept,
            ),
            (
                &plain,
                response_with(replace(
                    "Sec-WebSocket-Accept",
                    "S3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
                )),
                E::AcceptMismatch,
            ),
            (
                &plain,
                response_with(|h| h.push(("Sec-WebSocket-Protocol", "chat"))),
                E::UnexpectedProtocol,
            ),
            (
                &with_proto,
                response_with(|h| h.push(("Sec-WebSocket-Protocol", "superchat"))),
                E::UnexpectedProtocol,
            ),
            (
                &with_proto,
                response_with(|h| h.push(("Sec-WebSocket-Protocol", "chat, chat"))),
                E::UnexpectedProtocol,
            ),
            (
                &with_proto,
                response_with(|h| {
                    h.push(("Sec-WebSocket-Protocol", "chat"));
                    h.push(("Sec-WebSocket-Protocol", "chat"));
                }),
                E::UnexpectedProtocol,
            ),
            (
                &plain,
                response_with(|h| h.push(("Sec-WebSocket-Extensions", "x-ext"))),
                E::UnexpectedExtensions,
            ),
        ];
        for (client, resp, expected) in cases {
            let err = client.validate_response(&resp).unwrap_err();
            assert_eq!(err, expected);
            assert!(err.is_peer_fault());
        }

        // A different key gives a different accept value.
        let other = ClientHandshake::with_key(&url(), &generate_key(), &[], None);
        assert_eq!(
            other.validate_response(&response_with(|_| {})),
            Err(E::AcceptMismatch)
        );

        let done = with_proto
            .validate_response(&response_with(|h| {
                h.push(("Sec-WebSocket-Protocol", "chat"))
            }))
            .unwrap();
        assert_eq!(done.protocol.as_deref(), Some("chat"));

        let done = with_ext
            .validate_response(&response_with(|h| {
                h.push(("Sec-WebSocket-Extensions", "x-ext"));
                h.push(("Sec-WebSocket-Extensions", "y"));
            }))
            .unwrap();
        assert_eq!(done.extensions.as_deref(), Some("x-ext, y"));
        let done = with_ext.validate_response(&response_with(|_| {})).unwrap();
        assert_eq!(done.extensions, None);
    }

    #[test]
    fn url_parsing() {
        let ok = |s: &str, host: &str, port: u16, resource: &str, host_header: &str| {
            let u = WsUrl::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(
                (u.host.as_str(), u.port, u.resource.as_str()),
                (host, port, resource),
                "{s}"
            );
            assert_eq!(u.host_header(), host_header, "{s}");
        };
        ok("ws://example.com", "example.com", 80, "/", "example.com");
        ok("ws://example.com/", "example.com", 80, "/", "example.com");
        ok(
            "WS://Example.com:8080/a/b?c=d&e",
            "Example.com",
            8080,
            "/a/b?c=d&e",
            "Example.com:8080",
        );
        ok(
            "ws://example.com?x=1",
            "example.com",
            80,
            "/?x=1",
            "example.com",
        );
        ok(
            "ws://127.0.0.1:9001",
            "127.0.0.1",
            9001,
            "/",
            "127.0.0.1:9001",
        );
        ok("ws://[::1]:9001/", "::1", 9001, "/", "[::1]:9001");
        ok("ws://[::1]", "::1", 80, "/", "[::1]");
        ok("ws://localhost:80/x", "localhost", 80, "/x", "localhost");

        assert_eq!(
            WsUrl::parse("wss://example.com"),
            Err(HandshakeError::TlsNotSupported)
        );
        assert_eq!(
            WsUrl::parse("WSS://example.com"),
            Err(HandshakeError::TlsNotSupported)
        );
        let bad = [
            "http://example.com",
            "example.com",
            "ws:/example.com",
            "ws://",
            "ws:///path",
            "ws://user:pw@example.com/",
            "ws://example.com/#frag",
            "ws://example.com#",
            "ws://example.com:",
            "ws://example.com:0",
            "ws://example.com:65536",
            "ws://example.com:+80",
            "ws://example.com:80:81",
            "ws://[::1",
            "ws://[nothex]:80",
            "ws://[::1]x",
            "ws://::1/",
            "ws://exa mple.com/",
            "ws://example.com/a b",
            "ws://ex\u{e4}mple.com/",
            "ws://example.com/\u{e4}",
        ];
        for s in bad {
            let err = WsUrl::parse(s).unwrap_err();
            assert!(matches!(err, HandshakeError::BadUrl(_)), "{s}: {err:?}");
            assert!(!err.is_peer_fault());
        }
        assert!(!HandshakeError::TlsNotSupported.is_peer_fault());
    }

    #[test]
    fn display_is_one_line() {
        let errs = [
            HandshakeError::Http(HttpError::BareCr),
            HandshakeError::UnexpectedStatus(404),
            HandshakeError::ProtocolNotOffered("x".into()),
            HandshakeError::BadUrl("invalid port"),
            HandshakeError::TlsNotSupported,
        ];
        for e in errs {
            let s = e.to_string();
            assert!(!s.is_empty() && !s.contains('\n'), "{s:?}");
        }
        assert_eq!(
            HandshakeError::UnexpectedStatus(404).to_string(),
            "server answered status 404 instead of 101"
        );
    }

    proptest! {
        #[test]
        fn accept_key_matches_direct_computation(nonce in any::<[u8; 16]>()) {
            let key = BASE64.encode(nonce);
            let mut input = key.clone().into_bytes();
            input.extend_from_slice(GUID.as_bytes());
            let expected = BASE64.encode(Sha1::digest(&input));
            prop_assert_eq!(accept_key(&key), expected);
        }

        #[test]
        fn handshake_round_trip_any_key(nonce in any::<[u8; 16]>(), path in "/[a-z0-9/?=&%]{0,30}") {
            let url = WsUrl::parse(&format!("ws://h.example:1234{path}")).unwrap();
            let key = BASE64.encode(nonce);
            let client = ClientHandshake::with_key(&url, &key, &[], None);
            let req = parse_req(&client.request());
            prop_assert_eq!(req.target.as_str(), url.resource.as_str());
            let acc = server_accept(&req, &ServerOptions::default(), None).unwrap();
            let (resp, _) = parse_resp(&acc.response);
            prop_assert!(client.validate_response(&resp).is_ok());
        }

        #[test]
        fn url_parse_never_panics(s in "\\PC{0,40}") {
            let _ = WsUrl::parse(&s);
            let _ = WsUrl::parse(&format!("ws://{s}"));
        }
    }
}
