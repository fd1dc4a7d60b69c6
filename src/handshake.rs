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

use crate::http::{self, Headers, HttpError};

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
    /// Client: the server answered with a status other than 101. The
    /// [`RejectedResponse`] holds its status, headers and (bounded) body;
    /// [`ClientHandshake::validate_response`] leaves the body empty, the
    /// tokio client reads it.
    Rejected(Box<RejectedResponse>),
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
    /// Client: `wss://` needs TLS, and this build of the crate has no
    /// `tls` feature.
    TlsNotSupported,
    /// A header the caller asked to send has a name that is not an HTTP
    /// token; the name is given. The caller's mistake.
    InvalidHeaderName(String),
    /// A header the caller asked to send has a value with control
    /// characters (CR, LF, NUL, ...); the header's name is given, not the
    /// value, which may be a secret. The caller's mistake.
    InvalidHeaderValue(String),
    /// The caller asked to send a header the handshake writes itself
    /// (`Upgrade`, `Connection`, `Sec-WebSocket-*`, ...); the name is given.
    /// The caller's mistake.
    ReservedHeader(String),
    /// Server: the application rejected a request with a status that is not
    /// in 200..=599. The caller's mistake.
    InvalidRejectionStatus(u16),
    /// Client: an `http::Request` given as the description of an upgrade
    /// cannot be sent as one (not `GET`, not HTTP/1.1); the reason is given.
    /// The caller's mistake.
    BadClientRequest(&'static str),
}

impl HandshakeError {
    /// The HTTP status a server answers with: 426 for a missing or wrong
    /// `Sec-WebSocket-Version`, 403 for a refused origin, the HTTP error's own
    /// status for [`Http`](Self::Http), 500 for the application's own
    /// mistakes (a hook choosing an unoffered protocol, a bad header or
    /// rejection status), 400 otherwise.
    pub fn status(&self) -> u16 {
        match self {
            HandshakeError::Http(e) => e.status(),
            HandshakeError::MissingVersion | HandshakeError::UnsupportedVersion => 426,
            HandshakeError::OriginRefused => 403,
            HandshakeError::ProtocolNotOffered(_)
            | HandshakeError::InvalidHeaderName(_)
            | HandshakeError::InvalidHeaderValue(_)
            | HandshakeError::ReservedHeader(_)
            | HandshakeError::InvalidRejectionStatus(_)
            | HandshakeError::BadClientRequest(_) => 500,
            _ => 400,
        }
    }

    /// Whether the remote side caused this; `false` for mistakes of the
    /// local caller (bad URL, `wss://`, a hook choosing an unoffered
    /// protocol, a header that may not be sent, a bad rejection status).
    ///
    /// A server's [`Rejected`](Self::Rejected) answer counts as the peer's:
    /// it refused us.
    pub fn is_peer_fault(&self) -> bool {
        !matches!(
            self,
            HandshakeError::BadUrl(_)
                | HandshakeError::TlsNotSupported
                | HandshakeError::ProtocolNotOffered(_)
                | HandshakeError::InvalidHeaderName(_)
                | HandshakeError::InvalidHeaderValue(_)
                | HandshakeError::ReservedHeader(_)
                | HandshakeError::InvalidRejectionStatus(_)
                | HandshakeError::BadClientRequest(_)
        )
    }

    /// The server's answer when it refused the upgrade
    /// ([`Rejected`](Self::Rejected)).
    pub fn rejected(&self) -> Option<&RejectedResponse> {
        match self {
            HandshakeError::Rejected(r) => Some(r),
            _ => None,
        }
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
        let headers = self.response_headers();
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

impl HandshakeError {
    /// The headers of [`response`](Self::response), but for the body's length.
    pub(crate) fn response_headers(&self) -> Vec<(&'static str, &'static str)> {
        let mut headers = vec![("Content-Type", "text/plain")];
        if self.status() == 426 {
            // RFC 7231 §6.5.15: a 426 MUST carry Upgrade, and RFC 7230 §6.7 then
            // requires `upgrade` in Connection. RFC 6455 §4.2.2: name the
            // version we support.
            headers.push(("Connection", "Upgrade, close"));
            headers.push(("Upgrade", "websocket"));
            headers.push(("Sec-WebSocket-Version", "13"));
        } else {
            headers.push(("Connection", "close"));
        }
        headers
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
            HandshakeError::Rejected(r) => {
                write!(f, "server answered status {} instead of 101", r.status)
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
            HandshakeError::TlsNotSupported => {
                f.write_str("wss:// needs TLS: build rtwire with the `tls` feature")
            }
            HandshakeError::InvalidHeaderName(n) => {
                write!(f, "header name {n:?} is not an HTTP token")
            }
            HandshakeError::InvalidHeaderValue(n) => {
                write!(f, "value of header {n:?} has control characters")
            }
            HandshakeError::ReservedHeader(n) => {
                write!(f, "header {n:?} is set by the handshake itself")
            }
            HandshakeError::InvalidRejectionStatus(s) => {
                write!(f, "rejection status {s} is not in 200..=599")
            }
            HandshakeError::BadClientRequest(why) => {
                write!(f, "request cannot describe a WebSocket upgrade: {why}")
            }
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
    let up = check_request(req, hook)?;
    accept_upgrade(&up, hook, &AcceptResponse::new(), extensions_answer)
}

/// Checks a request and its `Origin` against `hook`: [`validate_request`],
/// then [`ServerHook::allow_origin`]. The first half of [`server_accept`],
/// for servers that look at the request before answering it.
///
/// ```
/// use rtwire::handshake::{check_request, HandshakeError, ServerOptions};
/// use rtwire::http::{HeadLimits, Parse, Request};
///
/// let head = b"GET /chat?room=1 HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\
///     Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
///     Sec-WebSocket-Version: 13\r\nOrigin: https://evil.example\r\n\r\n";
/// let Ok(Parse::Complete(req, _)) = Request::parse(head, &HeadLimits::default()) else {
///     panic!("complete head expected");
/// };
/// let up = check_request(&req, &ServerOptions::default())?;
/// assert_eq!(up.path, "/chat?room=1");
/// let strict = ServerOptions {
///     allowed_origins: Some(vec!["https://app.example".into()]),
///     ..Default::default()
/// };
/// assert_eq!(check_request(&req, &strict), Err(HandshakeError::OriginRefused));
/// # Ok::<(), HandshakeError>(())
/// ```
pub fn check_request(
    req: &http::Request,
    hook: &dyn ServerHook,
) -> Result<UpgradeRequest, HandshakeError> {
    let up = validate_request(req)?;
    if !hook.allow_origin(up.origin.as_deref()) {
        return Err(HandshakeError::OriginRefused);
    }
    Ok(up)
}

/// Builds the 101 answer to a checked request: the subprotocol of
/// `response`, or the one `hook` selects when `response` names none, then
/// `response`'s extra headers. The second half of [`server_accept`].
///
/// Fails with [`HandshakeError::ProtocolNotOffered`] for a subprotocol the
/// client did not offer, and with the errors of [`AcceptResponse::header`]
/// for a header that may not be sent; all are the application's mistakes,
/// answered with 500.
///
/// ```
/// use rtwire::handshake::{accept_upgrade, check_request, AcceptResponse, ServerOptions};
/// use rtwire::http::{HeadLimits, Parse, Request};
///
/// let head = b"GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\
///     Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
///     Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: chat, json\r\n\r\n";
/// let Ok(Parse::Complete(req, _)) = Request::parse(head, &HeadLimits::default()) else {
///     panic!("complete head expected");
/// };
/// let hook = ServerOptions::default();
/// let up = check_request(&req, &hook)?;
/// let answer = AcceptResponse::new().protocol("json").header("X-Session", "7");
/// let accepted = accept_upgrade(&up, &hook, &answer, None)?;
/// assert_eq!(accepted.protocol.as_deref(), Some("json"));
/// let text = String::from_utf8(accepted.response).unwrap();
/// assert!(text.contains("Sec-WebSocket-Protocol: json\r\nX-Session: 7\r\n"));
/// # Ok::<(), rtwire::handshake::HandshakeError>(())
/// ```
pub fn accept_upgrade(
    up: &UpgradeRequest,
    hook: &dyn ServerHook,
    response: &AcceptResponse,
    extensions_answer: Option<&str>,
) -> Result<Accepted, HandshakeError> {
    let head = answer_101(up, hook, response, extensions_answer)?;
    let mut bytes = Vec::with_capacity(160);
    http::write_response(&mut bytes, 101, "Switching Protocols", &head.headers(), b"");
    Ok(Accepted {
        response: bytes,
        protocol: head.protocol,
    })
}

/// The checked content of a 101 answer, before it is written in any form
/// (bytes here, an `http::Response` with the `http` feature).
pub(crate) struct Answer101<'a> {
    accept: String,
    pub(crate) protocol: Option<String>,
    extensions: Option<&'a str>,
    extra: &'a [(String, String)],
}

impl Answer101<'_> {
    /// The 101's headers, in the order they are sent.
    pub(crate) fn headers(&self) -> Vec<(&str, &str)> {
        let mut headers = vec![
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", self.accept.as_str()),
        ];
        if let Some(p) = &self.protocol {
            headers.push(("Sec-WebSocket-Protocol", p));
        }
        if let Some(ext) = self.extensions {
            headers.push(("Sec-WebSocket-Extensions", ext));
        }
        headers.extend(self.extra.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        headers
    }
}

/// [`accept_upgrade`]'s checks and choices, without writing anything.
pub(crate) fn answer_101<'a>(
    up: &UpgradeRequest,
    hook: &dyn ServerHook,
    response: &'a AcceptResponse,
    extensions_answer: Option<&'a str>,
) -> Result<Answer101<'a>, HandshakeError> {
    let protocol = match &response.protocol {
        Some(p) => Some(p.clone()),
        None => {
            let offered: Vec<&str> = up.protocols.iter().map(String::as_str).collect();
            hook.select_protocol(&offered)
        }
    };
    if let Some(p) = &protocol {
        // RFC 6455 §4.2.2: the selected subprotocol must be one the client offered.
        if !up.protocols.contains(p) {
            return Err(HandshakeError::ProtocolNotOffered(p.clone()));
        }
    }
    for (name, value) in &response.headers {
        check_header(name, value, RESERVED_IN_101)?;
    }
    Ok(Answer101 {
        accept: accept_key(&up.key),
        protocol,
        extensions: extensions_answer,
        extra: &response.headers,
    })
}

/// Request headers the client handshake writes itself, or that would
/// describe a body it does not send.
const RESERVED_IN_REQUEST: &[&str] = &[
    "host",
    "upgrade",
    "connection",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
    "sec-websocket-accept",
    "content-length",
    "transfer-encoding",
];

/// Headers a 101 gets from the handshake alone; a 101 has no body.
const RESERVED_IN_101: &[&str] = &[
    "upgrade",
    "connection",
    "sec-websocket-accept",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
    "sec-websocket-key",
    "sec-websocket-version",
    "content-length",
    "transfer-encoding",
];

/// Headers of a rejection that rtwire writes: the body's length, and
/// `Connection: close` since the connection ends with it.
const RESERVED_IN_REJECTION: &[&str] = &["connection", "content-length", "transfer-encoding"];

fn check_header(name: &str, value: &str, reserved: &[&str]) -> Result<(), HandshakeError> {
    if !http::is_valid_header_name(name) {
        return Err(HandshakeError::InvalidHeaderName(name.to_string()));
    }
    if !http::is_valid_header_value(value) {
        return Err(HandshakeError::InvalidHeaderValue(name.to_string()));
    }
    if reserved.iter().any(|r| r.eq_ignore_ascii_case(name)) {
        return Err(HandshakeError::ReservedHeader(name.to_string()));
    }
    Ok(())
}

/// Whether a client may add this header to its upgrade request.
///
/// The name must be an HTTP token and the value free of control
/// characters but tab. Refused as [`HandshakeError::ReservedHeader`]:
/// `Upgrade`, `Connection`, `Sec-WebSocket-Key`, `-Version`, `-Accept`,
/// `-Protocol` and `-Extensions` (the handshake writes them; subprotocols
/// and extensions have their own settings), `Content-Length` and
/// `Transfer-Encoding` (the request has no body), and `Host`, which comes
/// from the URL: to send another `Host` than the address dialled, open the
/// stream yourself and give the URL naming that host to the handshake.
///
/// ```
/// use rtwire::handshake::{check_request_header, HandshakeError};
/// assert!(check_request_header("Origin", "https://example.com").is_ok());
/// assert_eq!(
///     check_request_header("Cookie", "a=1\r\nX-Evil: 1"),
///     Err(HandshakeError::InvalidHeaderValue("Cookie".into()))
/// );
/// assert_eq!(
///     check_request_header("host", "other.example"),
///     Err(HandshakeError::ReservedHeader("host".into()))
/// );
/// ```
pub fn check_request_header(name: &str, value: &str) -> Result<(), HandshakeError> {
    check_header(name, value, RESERVED_IN_REQUEST)
}

/// How a server's application answers an upgrade it accepts: the
/// subprotocol it chose and headers to add to the 101.
///
/// Headers are checked when the answer is built into bytes
/// ([`accept_upgrade`]): names must be HTTP tokens, values free of control
/// characters, and `Upgrade`, `Connection`, `Sec-WebSocket-*`,
/// `Content-Length` and `Transfer-Encoding` are the handshake's own.
///
/// ```
/// use rtwire::handshake::AcceptResponse;
/// let answer = AcceptResponse::new().protocol("chat").header("X-Id", "7");
/// assert_eq!(answer.chosen_protocol(), Some("chat"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AcceptResponse {
    protocol: Option<String>,
    headers: Vec<(String, String)>,
}

impl AcceptResponse {
    /// Accepts with no subprotocol of its own choosing (the server's
    /// [`ServerHook`] still chooses, if it is set to) and no extra header.
    pub fn new() -> Self {
        AcceptResponse::default()
    }

    /// Chooses `protocol`, which must be one of those the client offered;
    /// it overrides the [`ServerHook`]'s choice.
    pub fn protocol(mut self, protocol: impl Into<String>) -> Self {
        self.protocol = Some(protocol.into());
        self
    }

    /// Adds a header to the 101 response; repeatable.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The subprotocol chosen with [`protocol`](Self::protocol).
    pub fn chosen_protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }
}

/// A server application's refusal of an upgrade: its own status, headers
/// and body. The connection is closed after it.
///
/// ```
/// use rtwire::handshake::Rejection;
/// let no = Rejection::new(401)
///     .header("WWW-Authenticate", "Bearer")
///     .body("token required\n");
/// let bytes = no.to_bytes()?;
/// assert!(bytes.starts_with(b"HTTP/1.1 401 Unauthorized\r\n"));
/// assert!(bytes.ends_with(b"\r\n\r\ntoken required\n"));
/// # Ok::<(), rtwire::handshake::HandshakeError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Rejection {
    /// A rejection with `status` (200..=599), no header and an empty body.
    pub fn new(status: u16) -> Self {
        Rejection {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Adds a header; repeatable. `Connection`, `Content-Length` and
    /// `Transfer-Encoding` are written by rtwire and refused here.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body, sent with its `Content-Length`.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// The status to answer with.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The complete response to write: status line, the headers,
    /// `Connection: close`, `Content-Length` and the body.
    ///
    /// Fails with [`HandshakeError::InvalidRejectionStatus`],
    /// [`InvalidHeaderName`](HandshakeError::InvalidHeaderName),
    /// [`InvalidHeaderValue`](HandshakeError::InvalidHeaderValue) or
    /// [`ReservedHeader`](HandshakeError::ReservedHeader): the
    /// application's mistakes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, HandshakeError> {
        let (headers, body) = self.checked_parts()?;
        let status = self.status;
        let mut out = Vec::with_capacity(128 + self.body.len());
        http::write_response(
            &mut out,
            status,
            http::reason_phrase(status),
            &headers,
            body,
        );
        Ok(out)
    }
}

/// Header names and values, in order.
pub(crate) type HeaderPairs<'a> = Vec<(&'a str, &'a str)>;

impl Rejection {
    /// The checked headers (with `Connection: close`) and body of the
    /// response, but for the body's length.
    pub(crate) fn checked_parts(&self) -> Result<(HeaderPairs<'_>, &[u8]), HandshakeError> {
        if !(200..=599).contains(&self.status) {
            return Err(HandshakeError::InvalidRejectionStatus(self.status));
        }
        for (name, value) in &self.headers {
            check_header(name, value, RESERVED_IN_REJECTION)?;
        }
        let mut headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        headers.push(("Connection", "close"));
        // 204 and 304 carry no body (RFC 7230 §3.3.3).
        let body = if self.status == 204 || self.status == 304 {
            &[][..]
        } else {
            &self.body[..]
        };
        Ok((headers, body))
    }
}

/// A parsed `ws://` or `wss://` URL (RFC 6455 §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsUrl {
    /// `wss://`: the connection runs over TLS.
    pub secure: bool,
    /// Host name or IP address; IPv6 literals without brackets.
    pub host: String,
    /// TCP port; when not given, 80 for `ws://` and 443 for `wss://`.
    pub port: u16,
    /// Path and query to request, at least `/`.
    pub resource: String,
}

impl WsUrl {
    /// Parses `ws://host[:port][/path][?query]`, or the same with `wss://`.
    ///
    /// Anything that does not fit gives [`HandshakeError::BadUrl`].
    /// Non-ASCII or space characters in the path must be percent-encoded
    /// by the caller.
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
        let secure = if scheme.eq_ignore_ascii_case("wss") {
            true
        } else if scheme.eq_ignore_ascii_case("ws") {
            false
        } else {
            return Err(HandshakeError::BadUrl("scheme is not ws or wss"));
        };
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
            None => default_port(secure),
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
            secure,
            host: host.to_string(),
            port,
            resource,
        })
    }

    /// The `Host` header value: the port is left out when it is the
    /// scheme's default (80, or 443 for `wss://`), and IPv6 literals are
    /// bracketed.
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == default_port(self.secure) {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// RFC 6455 §3: the port when the URL names none.
fn default_port(secure: bool) -> u16 {
    if secure {
        443
    } else {
        80
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
    /// The caller's own headers, checked by [`check_request_header`].
    headers: Vec<(String, String)>,
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
            headers: Vec::new(),
        }
    }

    /// Adds a header of the caller's (`Authorization`, `Origin`, `Cookie`,
    /// `User-Agent`, ...) to the request, after the handshake's own.
    ///
    /// Fails, adding nothing, when [`check_request_header`] refuses it.
    ///
    /// ```
    /// use rtwire::handshake::{ClientHandshake, HandshakeError, WsUrl};
    /// let url = WsUrl::parse("ws://localhost/")?;
    /// let mut client = ClientHandshake::new(&url, &[], None);
    /// client.add_header("Authorization", "Bearer abc")?;
    /// let request = String::from_utf8(client.request()).unwrap();
    /// assert!(request.ends_with("Authorization: Bearer abc\r\n\r\n"));
    ///
    /// let err = client.add_header("Sec-WebSocket-Key", "x").unwrap_err();
    /// assert_eq!(err, HandshakeError::ReservedHeader("Sec-WebSocket-Key".into()));
    /// assert!(!err.is_peer_fault());
    /// # Ok::<(), HandshakeError>(())
    /// ```
    pub fn add_header(&mut self, name: &str, value: &str) -> Result<(), HandshakeError> {
        check_request_header(name, value)?;
        self.headers.push((name.to_string(), value.to_string()));
        Ok(())
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
        headers.extend(self.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())));
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
            return Err(HandshakeError::Rejected(Box::new(RejectedResponse {
                status: resp.status,
                reason: resp.reason.clone(),
                headers: resp.headers.clone(),
                body: Vec::new(),
                body_truncated: false,
            })));
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

/// The most of a rejection's body a client keeps: 64 KiB.
pub const MAX_REJECTED_BODY: usize = 64 * 1024;

/// A server's answer other than 101 to an upgrade request
/// ([`HandshakeError::Rejected`]).
///
/// ```
/// use rtwire::handshake::{ClientHandshake, WsUrl};
/// use rtwire::http::{HeadLimits, Parse, Response};
///
/// let bytes = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
/// let Ok(Parse::Complete(head, _)) = Response::parse(bytes, &HeadLimits::default()) else {
///     panic!("complete head expected");
/// };
/// let client = ClientHandshake::new(&WsUrl::parse("ws://localhost/")?, &[], None);
/// let err = client.validate_response(&head).unwrap_err();
/// let refusal = err.rejected().expect("a refusal");
/// assert_eq!((refusal.status, refusal.reason.as_str()), (404, "Not Found"));
/// assert_eq!(refusal.body_text(), ""); // the sans-IO check reads no body
/// assert!(err.is_peer_fault());
/// # Ok::<(), rtwire::handshake::HandshakeError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RejectedResponse {
    /// The status code.
    pub status: u16,
    /// The reason phrase, possibly empty.
    pub reason: String,
    /// The header fields.
    pub headers: Headers,
    /// The body, decoded from chunked transfer coding if it was sent so, and
    /// at most [`MAX_REJECTED_BODY`] bytes.
    pub body: Vec<u8>,
    /// The body is not whole: longer than [`MAX_REJECTED_BODY`], badly
    /// framed, or not all sent before the connection ended or the
    /// handshake's deadline passed.
    pub body_truncated: bool,
}

impl RejectedResponse {
    /// The body as text, with bytes that are not UTF-8 replaced.
    pub fn body_text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }
}

/// Collects the body of a [`RejectedResponse`] as it arrives, without I/O:
/// by `Content-Length`, chunked transfer coding, or until the connection
/// ends (RFC 7230 §3.3.3), keeping at most [`MAX_REJECTED_BODY`] bytes.
///
/// ```
/// use rtwire::handshake::{HandshakeError, RejectionReader};
/// use rtwire::http::{HeadLimits, Parse, Response};
///
/// let bytes = b"HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n\
///     4\r\nnot \r\n7\r\nallowed\r\n0\r\n\r\n";
/// let Ok(Parse::Complete(head, used)) = Response::parse(bytes, &HeadLimits::default()) else {
///     panic!("complete head expected");
/// };
/// let client = rtwire::handshake::ClientHandshake::new(
///     &rtwire::handshake::WsUrl::parse("ws://localhost/")?, &[], None);
/// let Err(HandshakeError::Rejected(rejected)) = client.validate_response(&head) else {
///     panic!("a rejection expected");
/// };
/// let mut reader = RejectionReader::new(rejected);
/// reader.push(&bytes[used..]); // the bytes read after the head
/// assert!(reader.is_done());
/// let rejected = reader.finish();
/// assert_eq!((rejected.status, &rejected.body[..]), (403, &b"not allowed"[..]));
/// assert!(!rejected.body_truncated);
/// # Ok::<(), HandshakeError>(())
/// ```
#[derive(Debug)]
pub struct RejectionReader {
    rejected: Box<RejectedResponse>,
    framing: BodyFraming,
    done: bool,
}

#[derive(Debug)]
enum BodyFraming {
    /// Bytes still expected.
    Length(u64),
    UntilEof,
    Chunked(Chunked),
}

/// Where a chunked body's decoder is (RFC 7230 §4.1).
#[derive(Debug)]
enum Chunked {
    /// In a chunk-size line (size, then any extension, up to LF).
    Size {
        size: u64,
        digits: usize,
        in_extension: bool,
        line_len: usize,
    },
    /// In a chunk's data.
    Data(u64),
    /// After a chunk's data: its CRLF.
    DataEnd { seen_cr: bool },
    /// After the last chunk: trailer lines up to an empty one.
    Trailer { line_len: usize, total: usize },
}

/// Longest chunk-size line, and most trailer bytes, accepted.
const MAX_CHUNK_LINE: usize = 1024;
const MAX_TRAILERS: usize = 8 * 1024;

impl Chunked {
    fn start() -> Chunked {
        Chunked::Size {
            size: 0,
            digits: 0,
            in_extension: false,
            line_len: 0,
        }
    }
}

/// What one step of the chunked decoder found.
enum Step {
    /// `n` input bytes used, nothing for the body.
    Skip(usize),
    /// The next `n` input bytes are body.
    Data(usize),
    /// The body is complete: the byte ending it was the next one.
    End,
    /// The framing is broken.
    Bad,
}

impl RejectionReader {
    /// Starts reading the body of `rejected`, framed as its headers say.
    pub fn new(mut rejected: Box<RejectedResponse>) -> Self {
        rejected.body.clear();
        rejected.body_truncated = false;
        let status = rejected.status;
        let h = &rejected.headers;
        let mut done = false;
        let framing = if (100..200).contains(&status) || status == 204 || status == 304 {
            done = true;
            BodyFraming::Length(0)
        } else if h.get("transfer-encoding").is_some() {
            // RFC 7230 §3.3.3 item 3: chunked last means chunked; any other
            // coding on a response runs until the connection closes.
            if h.tokens("transfer-encoding")
                .last()
                .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
            {
                BodyFraming::Chunked(Chunked::start())
            } else {
                BodyFraming::UntilEof
            }
        } else {
            let mut lengths = h.get_all("content-length").map(parse_length);
            match lengths.next() {
                None => BodyFraming::UntilEof,
                Some(first) => match (first, lengths.all(|l| l == first)) {
                    (Some(n), true) => {
                        done = n == 0;
                        BodyFraming::Length(n)
                    }
                    // Conflicting or malformed lengths: whatever arrives.
                    _ => BodyFraming::UntilEof,
                },
            }
        };
        RejectionReader {
            rejected,
            framing,
            done,
        }
    }

    /// Feeds bytes received after the head (or after the previous push).
    /// Bytes past the body's end are ignored.
    pub fn push(&mut self, mut input: &[u8]) {
        while !self.done && !input.is_empty() {
            match &mut self.framing {
                BodyFraming::Length(left) => {
                    let n = input
                        .len()
                        .min(usize::try_from(*left).unwrap_or(usize::MAX));
                    *left -= n as u64;
                    let ended = *left == 0;
                    self.keep(&input[..n]);
                    input = &input[n..];
                    self.done |= ended;
                }
                BodyFraming::UntilEof => {
                    self.keep(input);
                    input = &[];
                }
                BodyFraming::Chunked(state) => match chunked_step(state, input) {
                    Step::Skip(n) => input = &input[n..],
                    Step::Data(n) => {
                        self.keep(&input[..n]);
                        input = &input[n..];
                    }
                    Step::End => self.done = true,
                    Step::Bad => {
                        self.rejected.body_truncated = true;
                        self.done = true;
                    }
                },
            }
        }
    }

    /// Tells the reader the connection ended: a body that runs until the
    /// end is then complete, any other one is cut short.
    pub fn eof(&mut self) {
        if !self.done && !matches!(self.framing, BodyFraming::UntilEof) {
            self.rejected.body_truncated = true;
        }
        self.done = true;
    }

    /// Whether the body is complete, or as complete as it will be kept.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The response with its body. A reader not done (the deadline passed
    /// first) marks the body truncated.
    pub fn finish(mut self) -> Box<RejectedResponse> {
        if !self.done {
            self.rejected.body_truncated = true;
        }
        self.rejected
    }

    /// Keeps body bytes up to the limit; past it, stops.
    fn keep(&mut self, data: &[u8]) {
        let room = MAX_REJECTED_BODY - self.rejected.body.len();
        if data.len() > room {
            self.rejected.body.extend_from_slice(&data[..room]);
            self.rejected.body_truncated = true;
            self.done = true;
        } else {
            self.rejected.body.extend_from_slice(data);
        }
    }
}

/// A `Content-Length` value: digits only (RFC 7230 §3.3.2).
fn parse_length(value: &str) -> Option<u64> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

/// Advances the chunked decoder over the start of `input` (not empty).
fn chunked_step(state: &mut Chunked, input: &[u8]) -> Step {
    match state {
        Chunked::Data(left) => {
            let n = input
                .len()
                .min(usize::try_from(*left).unwrap_or(usize::MAX));
            *left -= n as u64;
            if *left == 0 {
                *state = Chunked::DataEnd { seen_cr: false };
            }
            Step::Data(n)
        }
        Chunked::DataEnd { seen_cr } => match (input[0], *seen_cr) {
            (b'\r', false) => {
                *seen_cr = true;
                Step::Skip(1)
            }
            (b'\n', _) => {
                *state = Chunked::start();
                Step::Skip(1)
            }
            _ => Step::Bad,
        },
        Chunked::Size {
            size,
            digits,
            in_extension,
            line_len,
        } => {
            let b = input[0];
            *line_len += 1;
            if *line_len > MAX_CHUNK_LINE {
                return Step::Bad;
            }
            if b == b'\n' {
                if *digits == 0 {
                    return Step::Bad;
                }
                *state = match *size {
                    0 => Chunked::Trailer {
                        line_len: 0,
                        total: 0,
                    },
                    n => Chunked::Data(n),
                };
                return Step::Skip(1);
            }
            if *in_extension || b == b'\r' {
                return Step::Skip(1);
            }
            if let Some(d) = (b as char).to_digit(16) {
                // 15 hex digits is far beyond any body we keep.
                if *digits == 15 {
                    return Step::Bad;
                }
                *size = *size * 16 + u64::from(d);
                *digits += 1;
                Step::Skip(1)
            } else if b == b';' || b == b' ' || b == b'\t' {
                *in_extension = true;
                Step::Skip(1)
            } else {
                Step::Bad
            }
        }
        Chunked::Trailer { line_len, total } => {
            let b = input[0];
            *total += 1;
            if *total > MAX_TRAILERS {
                return Step::Bad;
            }
            match b {
                b'\n' if *line_len == 0 => Step::End,
                b'\n' => {
                    *line_len = 0;
                    Step::Skip(1)
                }
                b'\r' => Step::Skip(1),
                _ => {
                    *line_len += 1;
                    Step::Skip(1)
                }
            }
        }
    }
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

        for status in [200, 403, 100] {
            let resp = response_status(status, |h| h.push(("WWW-Authenticate", "Basic")));
            let err = plain.validate_response(&resp).unwrap_err();
            assert!(err.is_peer_fault());
            let rejected = err.rejected().expect("a rejection");
            assert_eq!((rejected.status, rejected.reason.as_str()), (status, "X"));
            assert_eq!(rejected.headers, resp.headers);
            assert_eq!(rejected.headers.get("www-authenticate"), Some("Basic"));
            assert!(rejected.body.is_empty() && !rejected.body_truncated);
        }

        let cases: Vec<(&ClientHandshake, Response, E)> = vec![
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

        let secure = WsUrl::parse("wss://example.com").unwrap();
        assert!(secure.secure);
        assert_eq!(
            (secure.port, secure.host_header()),
            (443, "example.com".into())
        );
        let upper = WsUrl::parse("WSS://example.com:8443/x").unwrap();
        assert!(upper.secure);
        assert_eq!(upper.host_header(), "example.com:8443");
        assert_eq!(WsUrl::parse("wss://h:443/").unwrap().host_header(), "h");
        assert_eq!(WsUrl::parse("ws://h:443/").unwrap().host_header(), "h:443");
        assert!(!WsUrl::parse("ws://h").unwrap().secure);
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
    fn client_extra_headers_are_sent_after_the_handshakes() {
        let mut client = ClientHandshake::with_key(&url(), RFC_KEY, &[], None);
        client
            .add_header("Authorization", "Bearer t0k\ten")
            .unwrap();
        client.add_header("Origin", "https://app.example").unwrap();
        client.add_header("Cookie", "a=1").unwrap();
        client.add_header("Cookie", "b=2").unwrap();
        let req = parse_req(&client.request());
        assert_eq!(req.headers.get("authorization"), Some("Bearer t0k\ten"));
        assert_eq!(
            req.headers.get_all("cookie").collect::<Vec<_>>(),
            ["a=1", "b=2"]
        );
        let up = validate_request(&req).unwrap();
        assert_eq!(up.origin.as_deref(), Some("https://app.example"));
        let last = req.headers.iter().last().unwrap();
        assert_eq!(last, ("Cookie", "b=2"));
    }

    #[test]
    fn client_headers_the_handshake_owns_or_that_break_lines_are_refused() {
        use HandshakeError as E;
        let mut client = ClientHandshake::with_key(&url(), RFC_KEY, &[], None);
        let before = client.request();
        for name in [
            "Host",
            "upgrade",
            "CONNECTION",
            "Sec-WebSocket-Key",
            "Sec-WebSocket-Version",
            "Sec-WebSocket-Protocol",
            "sec-websocket-extensions",
            "Sec-WebSocket-Accept",
            "Content-Length",
            "Transfer-Encoding",
        ] {
            let err = client.add_header(name, "x").unwrap_err();
            assert_eq!(err, E::ReservedHeader(name.into()));
            assert!(!err.is_peer_fault());
        }
        for name in ["", "X Id", "X:Id", "X\r\nId", "Ünïcode", "(x)"] {
            assert_eq!(
                client.add_header(name, "x"),
                Err(E::InvalidHeaderName(name.into()))
            );
        }
        for value in ["a\rb", "a\nb", "a\0b", "\x7f", "a\r\nX-Evil: 1"] {
            let err = client.add_header("X-Ok", value).unwrap_err();
            assert_eq!(err, E::InvalidHeaderValue("X-Ok".into()));
            assert!(!err.to_string().contains(value), "the value stays private");
        }
        assert_eq!(client.request(), before, "nothing refused was added");
    }

    fn upgrade_request(protocols: &'static str) -> UpgradeRequest {
        let req = request_with(replace("Sec-WebSocket-Protocol", protocols));
        validate_request(&req).unwrap()
    }

    #[test]
    fn accept_upgrade_adds_headers_and_the_chosen_protocol() {
        let up = upgrade_request("chat, json");
        let answer = AcceptResponse::new()
            .protocol("json")
            .header("X-Id", "7")
            .header("Set-Cookie", "s=1");
        let acc = accept_upgrade(&up, &ServerOptions::default(), &answer, None).unwrap();
        assert_eq!(acc.protocol.as_deref(), Some("json"));
        let (resp, n) = parse_resp(&acc.response);
        assert_eq!(n, acc.response.len());
        assert_eq!(resp.status, 101);
        assert_eq!(resp.headers.get("x-id"), Some("7"));
        assert_eq!(resp.headers.get("set-cookie"), Some("s=1"));
        let client =
            ClientHandshake::with_key(&url(), RFC_KEY, &["chat".into(), "json".into()], None);
        let done = client.validate_response(&resp).unwrap();
        assert_eq!(done.protocol.as_deref(), Some("json"));
    }

    #[test]
    fn accept_upgrade_protocol_override_fallback_and_misuse() {
        let up = upgrade_request("chat, json");
        let hook = ServerOptions {
            protocols: vec!["chat".into()],
            allowed_origins: None,
        };
        // No choice of the application's: the hook's.
        let acc = accept_upgrade(&up, &hook, &AcceptResponse::new(), None).unwrap();
        assert_eq!(acc.protocol.as_deref(), Some("chat"));
        // The application's choice wins over the hook's.
        let answer = AcceptResponse::new().protocol("json");
        let acc = accept_upgrade(&up, &hook, &answer, None).unwrap();
        assert_eq!(acc.protocol.as_deref(), Some("json"));
        let answer = AcceptResponse::new().protocol("mqtt");
        let err = accept_upgrade(&up, &hook, &answer, None).unwrap_err();
        assert_eq!(err, HandshakeError::ProtocolNotOffered("mqtt".into()));
        assert!(!err.is_peer_fault());
    }

    #[test]
    fn accept_upgrade_refuses_the_handshakes_own_headers() {
        let up = upgrade_request("chat");
        for name in [
            "Upgrade",
            "connection",
            "Sec-WebSocket-Accept",
            "Sec-WebSocket-Protocol",
            "Sec-WebSocket-Extensions",
            "Content-Length",
            "Transfer-Encoding",
        ] {
            let answer = AcceptResponse::new().header(name, "x");
            let err = accept_upgrade(&up, &ServerOptions::default(), &answer, None).unwrap_err();
            assert_eq!(err, HandshakeError::ReservedHeader(name.into()));
            assert_eq!(err.status(), 500);
            assert!(!err.is_peer_fault());
        }
        let answer = AcceptResponse::new().header("X-Id", "1\r\n\r\nsmuggled");
        assert_eq!(
            accept_upgrade(&up, &ServerOptions::default(), &answer, None),
            Err(HandshakeError::InvalidHeaderValue("X-Id".into()))
        );
    }

    #[test]
    fn check_request_applies_the_origin_hook() {
        let req = request_with(|_| {});
        let strict = ServerOptions {
            protocols: vec![],
            allowed_origins: Some(vec!["https://other.example".into()]),
        };
        assert_eq!(
            check_request(&req, &strict),
            Err(HandshakeError::OriginRefused)
        );
        let up = check_request(&req, &ServerOptions::default()).unwrap();
        assert_eq!(up.origin.as_deref(), Some("http://example.com"));
    }

    #[test]
    fn rejection_bytes() {
        let bytes = Rejection::new(401)
            .header("WWW-Authenticate", "Bearer realm=\"x\"")
            .body("who are you?")
            .to_bytes()
            .unwrap();
        let (resp, n) = parse_resp(&bytes);
        assert_eq!((resp.status, resp.reason.as_str()), (401, "Unauthorized"));
        assert_eq!(
            resp.headers.get("www-authenticate"),
            Some("Bearer realm=\"x\"")
        );
        assert_eq!(resp.headers.get("connection"), Some("close"));
        assert_eq!(resp.headers.get("content-length"), Some("12"));
        assert_eq!(&bytes[n..], b"who are you?");

        let bytes = Rejection::new(204).body("dropped").to_bytes().unwrap();
        let (resp, n) = parse_resp(&bytes);
        assert_eq!((resp.status, n), (204, bytes.len()));

        for status in [0, 101, 199, 600, 999] {
            let err = Rejection::new(status).to_bytes().unwrap_err();
            assert_eq!(err, HandshakeError::InvalidRejectionStatus(status));
            assert!(!err.is_peer_fault());
        }
        for name in ["Connection", "content-length", "Transfer-Encoding"] {
            assert_eq!(
                Rejection::new(403).header(name, "1").to_bytes(),
                Err(HandshakeError::ReservedHeader(name.into()))
            );
        }
        assert_eq!(
            Rejection::new(403).header("Bad Name", "1").to_bytes(),
            Err(HandshakeError::InvalidHeaderName("Bad Name".into()))
        );
    }

    /// A rejection reader for a response head with these headers.
    fn reader(status: u16, headers: &[(&str, &str)]) -> RejectionReader {
        let mut h = Headers::new();
        for (n, v) in headers {
            h.push(*n, *v);
        }
        RejectionReader::new(Box::new(RejectedResponse {
            status,
            reason: String::new(),
            headers: h,
            body: Vec::new(),
            body_truncated: false,
        }))
    }

    #[test]
    fn rejection_body_by_content_length() {
        let mut r = reader(404, &[("Content-Length", "5")]);
        r.push(b"he");
        assert!(!r.is_done());
        r.push(b"llo, and the next response");
        assert!(r.is_done());
        let done = r.finish();
        assert_eq!(
            (&done.body[..], done.body_truncated),
            (&b"hello"[..], false)
        );

        // Ends early: what came, marked truncated.
        let mut r = reader(404, &[("Content-Length", "5")]);
        r.push(b"he");
        r.eof();
        let done = r.finish();
        assert_eq!((&done.body[..], done.body_truncated), (&b"he"[..], true));

        // The deadline passes first.
        let mut r = reader(404, &[("Content-Length", "5")]);
        r.push(b"he");
        assert!(r.finish().body_truncated);

        let r = reader(500, &[("Content-Length", "0")]);
        assert!(r.is_done());
        for status in [204, 304, 100] {
            let mut r = reader(status, &[]);
            assert!(r.is_done());
            r.push(b"ignored");
            assert!(r.finish().body.is_empty());
        }
    }

    #[test]
    fn rejection_body_until_eof_and_odd_lengths() {
        for headers in [
            &[][..],
            &[("Content-Length", "x")][..],
            &[("Content-Length", "3"), ("Content-Length", "4")][..],
            &[("Transfer-Encoding", "gzip")][..],
        ] {
            let mut r = reader(400, headers);
            r.push(b"abc");
            r.push(b"def");
            assert!(!r.is_done(), "{headers:?}");
            r.eof();
            let done = r.finish();
            assert_eq!(
                (&done.body[..], done.body_truncated),
                (&b"abcdef"[..], false)
            );
        }
        // Repeated identical lengths are one length.
        let mut r = reader(400, &[("Content-Length", "2"), ("Content-Length", "2")]);
        r.push(b"abc");
        assert_eq!(r.finish().body, b"ab");
    }

    #[test]
    fn rejection_body_is_bounded() {
        for headers in [&[][..], &[("Content-Length", "100000")][..]] {
            let mut r = reader(404, headers);
            for _ in 0..100 {
                r.push(&[b'x'; 1000]);
            }
            assert!(r.is_done());
            let done = r.finish();
            assert_eq!(done.body.len(), MAX_REJECTED_BODY);
            assert!(done.body_truncated);
        }
        let mut r = reader(404, &[("Transfer-Encoding", "chunked")]);
        for _ in 0..100 {
            r.push(b"3e8\r\n");
            r.push(&[b'y'; 1000]);
            r.push(b"\r\n");
        }
        let done = r.finish();
        assert_eq!(done.body.len(), MAX_REJECTED_BODY);
        assert!(done.body_truncated);
    }

    #[test]
    fn rejection_body_chunked_in_any_split() {
        let wire = b"4;name=value\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-Trailer: 1\r\n\r\nafter";
        let expected = &b"Wikipedia in\r\n\r\nchunks."[..];
        for split in 0..wire.len() {
            let mut r = reader(403, &[("Transfer-Encoding", "chunked")]);
            r.push(&wire[..split]);
            r.push(&wire[split..]);
            assert!(r.is_done(), "split {split}");
            let done = r.finish();
            assert_eq!((&done.body[..], done.body_truncated), (expected, false));
        }
        let mut r = reader(403, &[("Transfer-Encoding", "chunked")]);
        for byte in wire {
            r.push(&[*byte]);
        }
        assert_eq!(r.finish().body, expected);
    }

    #[test]
    fn rejection_body_chunked_malformed_keeps_what_came() {
        let bad: [&[u8]; 5] = [
            b"3\r\nabcX\r\n",
            b"zz\r\n",
            b"\r\n",
            b"1000000000000000\r\n",
            b"3\r\nabc\r\n0\r\n",
        ];
        for (i, wire) in bad.iter().enumerate() {
            let mut r = reader(403, &[("Transfer-Encoding", "chunked")]);
            r.push(wire);
            r.eof();
            let done = r.finish();
            assert!(done.body_truncated, "case {i}");
            assert!(done.body.len() <= 3);
        }
        let mut r = reader(403, &[("Transfer-Encoding", "chunked")]);
        r.push(&[b'1'; MAX_CHUNK_LINE + 1]);
        assert!(r.is_done() && r.finish().body_truncated);
    }

    #[test]
    fn display_is_one_line() {
        let not_found = || {
            HandshakeError::Rejected(Box::new(RejectedResponse {
                status: 404,
                reason: "Not Found".into(),
                headers: Headers::new(),
                body: b"a\nb".to_vec(),
                body_truncated: false,
            }))
        };
        let errs = [
            HandshakeError::Http(HttpError::BareCr),
            not_found(),
            HandshakeError::InvalidHeaderName("a\nb".into()),
            HandshakeError::InvalidHeaderValue("a\nb".into()),
            HandshakeError::ReservedHeader("Upgrade".into()),
            HandshakeError::InvalidRejectionStatus(101),
            HandshakeError::ProtocolNotOffered("x".into()),
            HandshakeError::BadUrl("invalid port"),
            HandshakeError::BadClientRequest("method must be GET"),
            HandshakeError::TlsNotSupported,
        ];
        for e in errs {
            let s = e.to_string();
            assert!(!s.is_empty() && !s.contains('\n'), "{s:?}");
        }
        assert_eq!(
            not_found().to_string(),
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
