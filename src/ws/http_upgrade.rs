//! Upgrading inside hyper or axum, and describing a client's request, with
//! the [`http`](https://docs.rs/http) crate's types (feature `http`).
//!
//! The name says what the module is for: [`crate::http`] is rtwire's own
//! HTTP/1.1 head parser and writer, which this module converts from and to;
//! `http_upgrade` is where the `http` crate's `Request` and `Response` meet
//! the WebSocket upgrade.
//!
//! Server: [`accept`] checks an `http::Request` exactly as
//! [`ws::accept_with`](super::accept_with) checks the bytes it reads (RFC 6455
//! §4.2.1, the config's [`ServerHook`](crate::handshake::ServerHook),
//! subprotocol choice, permessage-deflate negotiation) and returns the
//! `http::Response` for the 101 with a [`PendingWebSocket`]; once the
//! framework hands over the upgraded connection,
//! [`PendingWebSocket::into_websocket`] makes the socket. A request that fails
//! gets [`HandshakeError::to_http_response`]. To look at the request and
//! answer it yourself, use [`HttpUpgrade`].
//!
//! The upgrade is RFC 6455's, over HTTP/1.1: a request that reached the
//! framework over HTTP/2 (RFC 8441's extended `CONNECT`) is answered with
//! 505, as rtwire's own parser answers a major version other than 1.
//!
//! ```
//! use rtwire::proto::deflate::DeflateConfig;
//! use rtwire::ws::{http_upgrade, AcceptConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let request = http::Request::get("/chat")
//!     .header("Host", "example.com")
//!     .header("Upgrade", "websocket")
//!     .header("Connection", "Upgrade")
//!     .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
//!     .header("Sec-WebSocket-Version", "13")
//!     .header("Sec-WebSocket-Extensions", "permessage-deflate")
//!     .body(())
//!     .unwrap();
//! let config = AcceptConfig::default().deflate(DeflateConfig::default());
//! let (response, pending) = match http_upgrade::accept(&request, &config) {
//!     Ok(accepted) => accepted,
//!     Err(refused) => panic!("answer with {:?}", refused.to_http_response()),
//! };
//! assert_eq!(response.status(), http::StatusCode::SWITCHING_PROTOCOLS);
//! assert_eq!(response.headers()["sec-websocket-accept"], "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
//! assert_eq!(response.headers()["sec-websocket-extensions"], "permessage-deflate");
//!
//! // hyper: `let io = hyper_util::rt::TokioIo::new(hyper::upgrade::on(request).await?);`
//! let (io, _peer) = tokio::io::duplex(1024);
//! let ws = pending.into_websocket(io);
//! assert!(ws.connection().deflate_enabled());
//! # }
//! ```
//!
//! Client: [`connect`] takes an `http::Request<()>` with a `ws://` or
//! `wss://` URI and the caller's headers, and answers with the 101 as an
//! `http::Response<()>`; [`client_config`] is the conversion alone.

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::socket::HandshakeInfo;
use super::{AcceptConfig, ConnectConfig, Error, MaybeTlsStream, WebSocket};
use crate::handshake::{self, AcceptResponse, HandshakeError, Rejection, UpgradeRequest};
use crate::http::{self as head, Headers, HttpError, Version};
use crate::proto::deflate::Deflate;
use crate::proto::{Config, Connection, Role};

/// The request header whose list elements [`client_config`] offers as
/// subprotocols, as the `http` crate spells it.
const PROTOCOL_HEADER: &str = "sec-websocket-protocol";

/// Checks an upgrade request and answers it with the default
/// [`AcceptResponse`] (the hook's subprotocol, no extra header):
/// [`HttpUpgrade::new`] then [`HttpUpgrade::accept`].
///
/// On `Err`, answer with [`HandshakeError::to_http_response`] (400, 403,
/// 426, 431, 505 and, for the application's own mistakes, 500).
pub fn accept<B>(
    request: &http::Request<B>,
    config: &AcceptConfig,
) -> Result<(http::Response<()>, PendingWebSocket), HandshakeError> {
    HttpUpgrade::new(request, config)?.accept(AcceptResponse::new())
}

/// A valid upgrade request in `http` crate form, waiting for the
/// application's answer; the counterpart of [`Upgrade`](super::Upgrade)
/// for a request a framework has already read.
///
/// ```
/// use rtwire::handshake::Rejection;
/// use rtwire::ws::{http_upgrade::HttpUpgrade, AcceptConfig, AcceptResponse};
///
/// let request = http::Request::get("/chat?room=1")
///     .header("Host", "example.com")
///     .header("Upgrade", "websocket")
///     .header("Connection", "Upgrade")
///     .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
///     .header("Sec-WebSocket-Version", "13")
///     .header("Sec-WebSocket-Protocol", "v2, v1")
///     .body(())
///     .unwrap();
/// let upgrade = HttpUpgrade::new(&request, &AcceptConfig::default())?;
/// assert_eq!(upgrade.request().query(), Some("room=1"));
/// assert_eq!(upgrade.offered_protocols(), ["v2", "v1"]);
/// if upgrade.request().headers.get("authorization").is_none() {
///     let refusal = upgrade.reject(Rejection::new(401).body("who?\n"))?;
///     assert_eq!(refusal.status(), 401);
///     assert_eq!(refusal.body(), b"who?\n");
/// }
/// # Ok::<(), rtwire::handshake::HandshakeError>(())
/// ```
#[derive(Debug)]
pub struct HttpUpgrade {
    request: head::Request,
    checked: UpgradeRequest,
    config: AcceptConfig,
}

impl HttpUpgrade {
    /// Converts `request` (its body is not looked at) and checks it as
    /// [`Upgrade::read`](super::Upgrade::read) does: the config's
    /// [`head_limits`](AcceptConfig::head_limits), RFC 6455 §4.2.1 and the
    /// hook's origin check.
    pub fn new<B>(
        request: &http::Request<B>,
        config: &AcceptConfig,
    ) -> Result<Self, HandshakeError> {
        check_limits(request, &config.head_limits)?;
        let request = head::Request::try_from(request)?;
        let checked = handshake::check_request(&request, config.hook.as_ref())?;
        Ok(HttpUpgrade {
            request,
            checked,
            config: config.clone(),
        })
    }

    /// The request head as rtwire keeps it: method, target
    /// ([`Request::path`](head::Request::path),
    /// [`Request::query`](head::Request::query)) and headers.
    pub fn request(&self) -> &head::Request {
        &self.request
    }

    /// The subprotocols the client offered, in its order of preference.
    pub fn offered_protocols(&self) -> &[String] {
        &self.checked.protocols
    }

    /// The request's `Origin`, if it sent one.
    pub fn origin(&self) -> Option<&str> {
        self.checked.origin.as_deref()
    }

    /// The `101 Switching Protocols` response, with the subprotocol and
    /// headers of `answer` (as [`Upgrade::accept`](super::Upgrade::accept)
    /// chooses them) and permessage-deflate negotiated under the config's
    /// `deflate`, and what builds the socket afterwards.
    ///
    /// An `answer` that may not be sent is the application's mistake
    /// (status 500, [`HandshakeError::is_peer_fault`] false).
    pub fn accept(
        self,
        answer: AcceptResponse,
    ) -> Result<(http::Response<()>, PendingWebSocket), HandshakeError> {
        let config = &self.config;
        // An offer that cannot be honoured is declined: no extension, no error.
        let deflate = config.deflate.as_ref().and_then(|d| {
            d.accept_offers(self.request.headers.get_all("sec-websocket-extensions"))
        });
        let extensions = deflate.as_ref().map(|(_, answer)| answer.as_str());
        let head = handshake::answer_101(&self.checked, config.hook.as_ref(), &answer, extensions)?;
        let response = build_response(101, &head.headers(), ())?;
        let pending = PendingWebSocket {
            connection: config.connection.clone(),
            deflate: deflate.as_ref().map(|(agreed, _)| *agreed),
            info: HandshakeInfo {
                protocol: head.protocol,
                request: config.keep_request.then_some(self.request),
                response: None,
            },
        };
        Ok((response, pending))
    }

    /// The application's own refusal as a response;
    /// [`Rejection::to_http_response`].
    pub fn reject(self, rejection: Rejection) -> Result<http::Response<Vec<u8>>, HandshakeError> {
        rejection.to_http_response()
    }
}

/// An accepted upgrade, waiting for the connection: the framework sends
/// the 101 and then hands over the upgraded IO (with hyper,
/// `hyper::upgrade::on(request)` wrapped in `hyper_util::rt::TokioIo`).
#[derive(Debug)]
pub struct PendingWebSocket {
    connection: Config,
    deflate: Option<Deflate>,
    info: HandshakeInfo,
}

impl PendingWebSocket {
    /// The subprotocol the 101 names.
    pub fn protocol(&self) -> Option<&str> {
        self.info.protocol.as_deref()
    }

    /// The agreed permessage-deflate, if any.
    pub fn deflate(&self) -> Option<&Deflate> {
        self.deflate.as_ref()
    }

    /// The server's socket over `io`, with the negotiated deflate and
    /// subprotocol, and the request head unless the config's
    /// [`keep_request`](AcceptConfig::keep_request) was off
    /// ([`WebSocket::protocol`], [`WebSocket::request`]).
    ///
    /// `io` must start right after the 101: hyper's upgraded connection
    /// already includes whatever the client sent past its request head.
    pub fn into_websocket<S: AsyncRead + AsyncWrite + Unpin>(self, io: S) -> WebSocket<S> {
        let mut conn = Connection::new(Role::Server, self.connection);
        if let Some(agreed) = self.deflate {
            conn = conn.with_deflate(agreed);
        }
        let mut ws = WebSocket::from_connection(io, conn, &[]);
        ws.set_handshake(self.info);
        ws
    }
}

impl HandshakeError {
    /// A server's answer to this error as an `http::Response`: the status,
    /// headers and one-line `text/plain` body of
    /// [`response`](Self::response) (426 names `Sec-WebSocket-Version: 13`).
    /// Feature `http`.
    ///
    /// ```
    /// use rtwire::handshake::HandshakeError;
    /// let answer = HandshakeError::UnsupportedVersion.to_http_response();
    /// assert_eq!(answer.status(), 426);
    /// assert_eq!(answer.headers()["sec-websocket-version"], "13");
    /// assert_eq!(answer.body(), "unsupported Sec-WebSocket-Version, expected 13\n");
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "http")))]
    pub fn to_http_response(&self) -> http::Response<String> {
        let mut response = http::Response::new(format!("{self}\n"));
        *response.status_mut() = http::StatusCode::from_u16(self.status())
            .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
        for (name, value) in self.response_headers() {
            // rtwire's own constants, valid by construction (tested below).
            let name = http::HeaderName::from_bytes(name.as_bytes());
            if let (Ok(name), Ok(value)) = (name, http::HeaderValue::from_str(value)) {
                response.headers_mut().append(name, value);
            }
        }
        response
    }
}

impl Rejection {
    /// The application's refusal as an `http::Response`: its status,
    /// headers, `Connection: close` and body (none for 204 and 304).
    /// Fails as [`to_bytes`](Self::to_bytes) does. Feature `http`.
    ///
    /// ```
    /// use rtwire::handshake::Rejection;
    /// let no = Rejection::new(401).header("WWW-Authenticate", "Bearer").body("who?\n");
    /// let answer = no.to_http_response()?;
    /// assert_eq!(answer.status(), 401);
    /// assert_eq!(answer.headers()["www-authenticate"], "Bearer");
    /// assert_eq!(answer.body(), b"who?\n");
    /// # Ok::<(), rtwire::handshake::HandshakeError>(())
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "http")))]
    pub fn to_http_response(&self) -> Result<http::Response<Vec<u8>>, HandshakeError> {
        let (headers, body) = self.checked_parts()?;
        build_response(self.status(), &headers, body.to_vec())
    }
}

/// A response with headers the handshake has already checked; a failure
/// here would be a header the checks let through, reported as the
/// application's mistake rather than a panic.
fn build_response<T>(
    status: u16,
    headers: &[(&str, &str)],
    body: T,
) -> Result<http::Response<T>, HandshakeError> {
    let mut response = http::Response::new(body);
    *response.status_mut() = http::StatusCode::from_u16(status)
        .map_err(|_| HandshakeError::InvalidRejectionStatus(status))?;
    for (name, value) in headers {
        let header_name = http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| HandshakeError::InvalidHeaderName(name.to_string()))?;
        let header_value = http::HeaderValue::from_str(value)
            .map_err(|_| HandshakeError::InvalidHeaderValue(name.to_string()))?;
        response.headers_mut().append(header_name, header_value);
    }
    Ok(response)
}

/// The config's head limits, applied to a request read by someone else:
/// the number of fields, and the size of the head it would be on the wire.
fn check_limits<B>(
    request: &http::Request<B>,
    limits: &head::HeadLimits,
) -> Result<(), HandshakeError> {
    let headers = request.headers();
    if headers.len() > limits.max_headers {
        return Err(HttpError::TooManyHeaders.into());
    }
    // "GET " target " HTTP/1.1\r\n", "name: value\r\n" each, "\r\n".
    let line = request.method().as_str().len() + target(request.uri()).len() + 12;
    let fields: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if line + fields + 2 > limits.max_head_bytes {
        return Err(HttpError::HeadTooLarge.into());
    }
    Ok(())
}

/// The request target: path and query (origin form), `/` when empty.
fn target(uri: &http::Uri) -> &str {
    match uri.path_and_query().map(|p| p.as_str()) {
        Some("") | None => "/",
        Some(target) => target,
    }
}

fn version_from_http(version: http::Version) -> Result<Version, HttpError> {
    match version {
        http::Version::HTTP_10 => Ok(Version::HTTP_1_0),
        http::Version::HTTP_11 => Ok(Version::HTTP_1_1),
        // rtwire's parser refuses any major version but 1 the same way.
        _ => Err(HttpError::UnsupportedVersion),
    }
}

fn version_to_http(version: Version) -> Result<http::Version, HttpError> {
    match version {
        Version::HTTP_1_0 => Ok(http::Version::HTTP_10),
        Version::HTTP_1_1 => Ok(http::Version::HTTP_11),
        _ => Err(HttpError::UnsupportedVersion),
    }
}

/// A request head in rtwire's form, under the rules rtwire's own parser
/// applies: HTTP/1.0 or 1.1, header values in UTF-8 without control
/// characters. The body is not looked at. Feature `http`.
///
/// ```
/// let request = http::Request::get("/chat?room=1")
///     .header("Cookie", "a=1")
///     .header("Cookie", "b=2")
///     .body(())
///     .unwrap();
/// let head = rtwire::http::Request::try_from(&request)?;
/// assert_eq!((head.method.as_str(), head.target.as_str()), ("GET", "/chat?room=1"));
/// assert_eq!(head.headers.get_all("cookie").collect::<Vec<_>>(), ["a=1", "b=2"]);
/// # Ok::<(), rtwire::http::HttpError>(())
/// ```
impl<B> TryFrom<&http::Request<B>> for head::Request {
    type Error = HttpError;

    fn try_from(request: &http::Request<B>) -> Result<Self, HttpError> {
        Ok(head::Request {
            method: request.method().as_str().to_string(),
            target: target(request.uri()).to_string(),
            version: version_from_http(request.version())?,
            headers: headers_from_http(request.headers())?,
        })
    }
}

/// A response head (such as the 101 that [`connect`] gets) as an
/// `http::Response<()>`. Fails on what the `http` crate cannot hold: a
/// status outside 100..=999, a header name that is not a token or a value
/// with control characters (never the case for a parsed head), a version
/// other than HTTP/1.0 or 1.1. Feature `http`.
impl TryFrom<&head::Response> for http::Response<()> {
    type Error = HttpError;

    fn try_from(response: &head::Response) -> Result<Self, HttpError> {
        let mut out = http::Response::new(());
        *out.status_mut() =
            http::StatusCode::from_u16(response.status).map_err(|_| HttpError::BadStatusCode)?;
        *out.version_mut() = version_to_http(response.version)?;
        for (name, value) in response.headers.iter() {
            let name = http::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| HttpError::BadHeaderName)?;
            let value =
                http::HeaderValue::from_str(value).map_err(|_| HttpError::BadHeaderValue)?;
            out.headers_mut().append(name, value);
        }
        Ok(out)
    }
}

fn headers_from_http(map: &http::HeaderMap) -> Result<Headers, HttpError> {
    let mut headers = Headers::new();
    for (name, value) in map {
        let value = std::str::from_utf8(value.as_bytes()).map_err(|_| HttpError::NonUtf8Value)?;
        if !head::is_valid_header_value(value) {
            return Err(HttpError::BadHeaderValue);
        }
        headers.push(name.as_str(), value);
    }
    Ok(headers)
}

/// `base` with the request's headers added (in order) and the subprotocols
/// its `Sec-WebSocket-Protocol` headers offer appended to `base`'s.
///
/// The request must be a `GET` (the default) in HTTP/1.1 (the default);
/// its URI is the URL to connect to, and its body is not sent. Headers the
/// handshake writes itself (`Host`, `Upgrade`, `Connection`,
/// `Sec-WebSocket-Key`, ...) are refused as in
/// [`ConnectConfig::header`]; so a request made by another library's
/// "into client request" helper, which adds them, needs them taken out.
///
/// ```
/// use rtwire::ws::{http_upgrade, ConnectConfig};
/// let request = http::Request::get("wss://example.com/chat")
///     .header("Authorization", "Bearer abc")
///     .header("Sec-WebSocket-Protocol", "v2, v1")
///     .body(())
///     .unwrap();
/// let config = http_upgrade::client_config(&request, &ConnectConfig::default())?;
/// assert_eq!(config.protocols, ["v2", "v1"]);
/// assert_eq!(config.headers, [("authorization".to_string(), "Bearer abc".to_string())]);
/// # Ok::<(), rtwire::handshake::HandshakeError>(())
/// ```
pub fn client_config(
    request: &http::Request<()>,
    base: &ConnectConfig,
) -> Result<ConnectConfig, HandshakeError> {
    if request.method() != http::Method::GET {
        return Err(HandshakeError::BadClientRequest("method must be GET"));
    }
    if request.version() != http::Version::HTTP_11 {
        return Err(HandshakeError::BadClientRequest("version must be HTTP/1.1"));
    }
    let mut config = base.clone();
    for (name, value) in request.headers() {
        let value = std::str::from_utf8(value.as_bytes())
            .map_err(|_| HandshakeError::InvalidHeaderValue(name.to_string()))?;
        if name.as_str() == PROTOCOL_HEADER {
            let mut offered = Headers::new();
            offered.push(name.as_str(), value);
            let tokens = offered.tokens(PROTOCOL_HEADER);
            config.protocols.extend(tokens.map(str::to_string));
        } else {
            handshake::check_request_header(name.as_str(), value)?;
            config.headers.push((name.to_string(), value.to_string()));
        }
    }
    Ok(config)
}

/// Connects to the request's URI with its headers (see [`client_config`])
/// over `config`, as [`ws::connect_with`](super::connect_with) does, and
/// returns the socket and the server's 101 as an `http::Response`.
///
/// ```no_run
/// # async fn demo() -> Result<(), rtwire::ws::Error> {
/// use rtwire::ws::{http_upgrade, ConnectConfig};
/// let request = http::Request::get("ws://127.0.0.1:9001/chat")
///     .header("Authorization", "Bearer abc")
///     .body(())
///     .unwrap();
/// let (ws, response) = http_upgrade::connect(&request, &ConnectConfig::default()).await?;
/// assert_eq!(response.status(), http::StatusCode::SWITCHING_PROTOCOLS);
/// # Ok(()) }
/// ```
pub async fn connect(
    request: &http::Request<()>,
    config: &ConnectConfig,
) -> Result<(WebSocket<MaybeTlsStream<TcpStream>>, http::Response<()>), Error> {
    let config = client_config(request, config)?;
    let url = request.uri().to_string();
    let (ws, response) = super::connect_with(&url, &config).await?;
    let response = http::Response::try_from(&response).map_err(HandshakeError::Http)?;
    Ok((ws, response))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handshake::{server_accept, ServerOptions};
    use crate::http::{HeadLimits, Parse};
    use crate::proto::deflate::DeflateConfig;
    use crate::proto::Message;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    /// A valid upgrade request, with `edit` applied to its builder.
    fn request(
        edit: impl FnOnce(http::request::Builder) -> http::request::Builder,
    ) -> http::Request<()> {
        let builder = http::Request::get("/chat?room=1")
            .header("Host", "example.com")
            .header("Upgrade", "websocket")
            .header("Connection", "keep-alive, Upgrade")
            .header("Sec-WebSocket-Key", KEY)
            .header("Sec-WebSocket-Version", "13");
        edit(builder).body(()).unwrap()
    }

    fn without(name: &str) -> http::Request<()> {
        let mut req = request(|b| b);
        req.headers_mut().remove(name);
        req
    }

    fn refusal<B>(req: &http::Request<B>, config: &AcceptConfig) -> HandshakeError {
        accept(req, config).map(|_| ()).unwrap_err()
    }

    #[test]
    fn the_101_matches_the_one_accept_writes_as_bytes() {
        let hook = ServerOptions {
            protocols: vec!["json".into()],
            allowed_origins: None,
        };
        let config = AcceptConfig::default()
            .hook(hook.clone())
            .deflate(DeflateConfig::default());
        let req = request(|b| {
            b.header("Sec-WebSocket-Protocol", "chat, json")
                .header("Sec-WebSocket-Extensions", "permessage-deflate")
        });
        let (response, pending) = accept(&req, &config).unwrap();
        assert_eq!(pending.protocol(), Some("json"));
        assert!(pending.deflate().is_some());

        let head = head::Request::try_from(&req).unwrap();
        let answer = DeflateConfig::default()
            .accept_offers(head.headers.get_all("sec-websocket-extensions"))
            .unwrap()
            .1;
        let bytes = server_accept(&head, &hook, Some(&answer)).unwrap().response;
        let Ok(Parse::Complete(expected, _)) =
            head::Response::parse(&bytes, &HeadLimits::default())
        else {
            panic!("a 101 head expected");
        };
        let expected = http::Response::try_from(&expected).unwrap();
        assert_eq!(response.status(), expected.status());
        assert_eq!(response.headers(), expected.headers());
        assert_eq!(
            response.headers()["sec-websocket-accept"],
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn headers_with_several_values_keep_their_order_both_ways() {
        let req = request(|b| {
            b.header("Cookie", "a=1")
                .header("X-Trace", "t")
                .header("cookie", "b=2")
                .header("Sec-WebSocket-Protocol", "chat")
                .header("Sec-WebSocket-Protocol", "json, v2")
        });
        let upgrade = HttpUpgrade::new(&req, &AcceptConfig::default()).unwrap();
        let headers = &upgrade.request().headers;
        assert_eq!(
            headers.get_all("COOKIE").collect::<Vec<_>>(),
            ["a=1", "b=2"]
        );
        assert_eq!(upgrade.offered_protocols(), ["chat", "json", "v2"]);
        assert_eq!(upgrade.request().target, "/chat?room=1");

        let answer = AcceptResponse::new()
            .protocol("v2")
            .header("Set-Cookie", "s=1")
            .header("Set-Cookie", "t=2");
        let (response, pending) = upgrade.accept(answer).unwrap();
        let cookies: Vec<_> = response.headers().get_all("set-cookie").iter().collect();
        assert_eq!(cookies, ["s=1", "t=2"]);
        assert_eq!(response.headers()["sec-websocket-protocol"], "v2");
        assert_eq!(pending.protocol(), Some("v2"));
    }

    #[test]
    fn header_bytes_rtwire_would_refuse_are_refused() {
        let mut req = request(|b| b);
        let bad = http::HeaderValue::from_bytes(b"caf\xe9").unwrap();
        req.headers_mut().insert("x-latin1", bad);
        let err = refusal(&req, &AcceptConfig::default());
        assert_eq!(err, HandshakeError::Http(HttpError::NonUtf8Value));
        assert_eq!((err.status(), err.is_peer_fault()), (400, true));
        assert_eq!(err.to_http_response().status(), 400);

        // UTF-8 beyond ASCII is what rtwire's own parser keeps, too.
        let mut req = request(|b| b);
        req.headers_mut()
            .insert("x-name", http::HeaderValue::from_str("café").unwrap());
        let upgrade = HttpUpgrade::new(&req, &AcceptConfig::default()).unwrap();
        assert_eq!(upgrade.request().headers.get("x-name"), Some("café"));
    }

    #[test]
    fn a_request_without_a_key_gets_400() {
        let err = refusal(&without("sec-websocket-key"), &AcceptConfig::default());
        assert_eq!(err, HandshakeError::MissingKey);
        let answer = err.to_http_response();
        assert_eq!(answer.status(), 400);
        assert_eq!(answer.headers()["connection"], "close");
        assert_eq!(answer.headers()["content-type"], "text/plain");
        assert_eq!(answer.body(), "missing Sec-WebSocket-Key\n");
    }

    #[test]
    fn a_bad_or_missing_version_gets_426_naming_13() {
        let wrong = request(|b| b);
        let mut wrong = wrong;
        wrong
            .headers_mut()
            .insert("sec-websocket-version", http::HeaderValue::from_static("8"));
        for (req, expected) in [
            (wrong, HandshakeError::UnsupportedVersion),
            (
                without("sec-websocket-version"),
                HandshakeError::MissingVersion,
            ),
        ] {
            let err = refusal(&req, &AcceptConfig::default());
            assert_eq!(err, expected);
            let answer = err.to_http_response();
            assert_eq!(answer.status(), http::StatusCode::UPGRADE_REQUIRED);
            assert_eq!(answer.headers()["sec-websocket-version"], "13");
            assert_eq!(answer.headers()["upgrade"], "websocket");
            assert_eq!(answer.headers()["connection"], "Upgrade, close");
        }
    }

    #[test]
    fn every_error_response_keeps_all_its_headers() {
        use HandshakeError as E;
        for err in [
            E::MissingKey,
            E::UnsupportedVersion,
            E::OriginRefused,
            E::Http(HttpError::HeadTooLarge),
            E::Http(HttpError::UnsupportedVersion),
            E::ProtocolNotOffered("x".into()),
        ] {
            let answer = err.to_http_response();
            assert_eq!(answer.status().as_u16(), err.status(), "{err:?}");
            assert_eq!(
                answer.headers().len(),
                err.response_headers().len(),
                "{err:?}"
            );
        }
    }

    #[test]
    fn the_other_refusals_have_their_status() {
        let strict = AcceptConfig::default().hook(ServerOptions {
            protocols: vec![],
            allowed_origins: Some(vec!["https://app.example".into()]),
        });
        let evil = request(|b| b.header("Origin", "https://evil.example"));
        assert_eq!(refusal(&evil, &strict), HandshakeError::OriginRefused);
        assert_eq!(refusal(&evil, &strict).to_http_response().status(), 403);
        let fine = request(|b| b.header("Origin", "https://app.example"));
        assert_eq!(
            HttpUpgrade::new(&fine, &strict).unwrap().origin(),
            Some("https://app.example")
        );

        let post = request(|b| b.method("POST"));
        assert_eq!(
            refusal(&post, &AcceptConfig::default()),
            HandshakeError::NotGet
        );
        let old = request(|b| b.version(http::Version::HTTP_10));
        assert_eq!(
            refusal(&old, &AcceptConfig::default()),
            HandshakeError::HttpVersionTooOld
        );
        let h2 = request(|b| b.version(http::Version::HTTP_2));
        let err = refusal(&h2, &AcceptConfig::default());
        assert_eq!(err.to_http_response().status(), 505);
        assert_eq!(
            refusal(&without("host"), &AcceptConfig::default()),
            HandshakeError::BadHost
        );
        assert_eq!(
            refusal(&without("connection"), &AcceptConfig::default()),
            HandshakeError::NoConnectionUpgrade
        );
    }

    #[test]
    fn the_configs_head_limits_apply() {
        let mut config = AcceptConfig {
            head_limits: HeadLimits {
                max_head_bytes: 8192,
                max_headers: 6,
            },
            ..AcceptConfig::default()
        };
        let many = request(|b| b.header("X-A", "1").header("X-B", "2"));
        let err = refusal(&many, &config);
        assert_eq!(
            (err.clone(), err.status()),
            (HttpError::TooManyHeaders.into(), 431)
        );
        config.head_limits = HeadLimits {
            max_head_bytes: 200,
            max_headers: 64,
        };
        let large = request(|b| b.header("Cookie", "x".repeat(200)));
        assert_eq!(refusal(&large, &config), HttpError::HeadTooLarge.into());
        assert!(accept(&request(|b| b), &config).is_ok());
    }

    #[test]
    fn the_applications_own_mistakes_are_500_and_not_the_peers() {
        let req = request(|b| b.header("Sec-WebSocket-Protocol", "chat"));
        for (answer, expected) in [
            (
                AcceptResponse::new().protocol("mqtt"),
                HandshakeError::ProtocolNotOffered("mqtt".into()),
            ),
            (
                AcceptResponse::new().header("Sec-WebSocket-Accept", "x"),
                HandshakeError::ReservedHeader("Sec-WebSocket-Accept".into()),
            ),
            (
                AcceptResponse::new().header("X-Id", "1\r\nX-Evil: 1"),
                HandshakeError::InvalidHeaderValue("X-Id".into()),
            ),
        ] {
            let upgrade = HttpUpgrade::new(&req, &AcceptConfig::default()).unwrap();
            let err = upgrade.accept(answer).map(|_| ()).unwrap_err();
            assert_eq!(err, expected);
            assert_eq!((err.status(), err.is_peer_fault()), (500, false));
        }
    }

    #[test]
    fn rejections_become_responses() {
        let req = request(|b| b);
        let upgrade = HttpUpgrade::new(&req, &AcceptConfig::default()).unwrap();
        let no = Rejection::new(401)
            .header("WWW-Authenticate", "Bearer realm=\"x\"")
            .body("who?\n");
        let answer = upgrade.reject(no).unwrap();
        assert_eq!(answer.status(), 401);
        assert_eq!(answer.headers()["www-authenticate"], "Bearer realm=\"x\"");
        assert_eq!(answer.headers()["connection"], "close");
        assert_eq!(answer.body(), b"who?\n");

        let empty = Rejection::new(204)
            .body("dropped")
            .to_http_response()
            .unwrap();
        assert!(empty.body().is_empty());
        assert_eq!(
            Rejection::new(101).to_http_response().err(),
            Some(HandshakeError::InvalidRejectionStatus(101))
        );
        assert_eq!(
            Rejection::new(403)
                .header("Content-Length", "1")
                .to_http_response()
                .err(),
            Some(HandshakeError::ReservedHeader("Content-Length".into()))
        );
    }

    #[tokio::test]
    async fn the_pending_socket_talks_with_what_was_agreed() {
        let req = request(|b| {
            b.header("Sec-WebSocket-Protocol", "chat")
                .header("Sec-WebSocket-Extensions", "permessage-deflate")
        });
        let config = AcceptConfig::default()
            .deflate(DeflateConfig::default())
            .hook(ServerOptions {
                protocols: vec!["chat".into()],
                allowed_origins: None,
            });
        let (_, pending) = accept(&req, &config).unwrap();
        let agreed = *pending.deflate().unwrap();
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        let mut server = pending.into_websocket(server_io);
        assert_eq!(server.protocol(), Some("chat"));
        assert_eq!(server.request().map(|r| r.path()), Some("/chat"));
        assert!(server.connection().deflate_enabled());

        let client_conn = Connection::new(Role::Client, Config::default()).with_deflate(agreed);
        let mut client = WebSocket::from_connection(client_io, client_conn, &[]);
        let message = Message::text("compressible ".repeat(100));
        client.send(message.clone()).await.unwrap();
        assert_eq!(server.recv().await.unwrap(), Some(message));

        let (_, pending) = accept(&req, &config.clone().keep_request(false)).unwrap();
        let (_io, server_io) = tokio::io::duplex(1024);
        assert!(pending.into_websocket(server_io).request().is_none());
    }

    #[test]
    fn client_requests_become_connect_configs() {
        let req = http::Request::get("ws://example.com/chat")
            .header("Authorization", "Bearer abc")
            .header("Sec-WebSocket-Protocol", "v2, v1")
            .header("Cookie", "a=1")
            .header("Cookie", "b=2")
            .body(())
            .unwrap();
        let base = ConnectConfig::default().protocols(["v3"]);
        let config = client_config(&req, &base).unwrap();
        assert_eq!(config.protocols, ["v3", "v2", "v1"]);
        let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(
            config.headers,
            pairs(&[
                ("authorization", "Bearer abc"),
                ("cookie", "a=1"),
                ("cookie", "b=2")
            ])
        );
        assert!(config.validate().is_ok());
    }

    #[test]
    fn client_requests_that_cannot_be_sent_are_the_callers_mistake() {
        let get = |uri: &str| http::Request::get(uri);
        let base = ConnectConfig::default();
        let cases = [
            (
                http::Request::post("ws://a/").body(()).unwrap(),
                HandshakeError::BadClientRequest("method must be GET"),
            ),
            (
                get("ws://a/")
                    .version(http::Version::HTTP_2)
                    .body(())
                    .unwrap(),
                HandshakeError::BadClientRequest("version must be HTTP/1.1"),
            ),
            (
                get("ws://a/").header("Host", "b").body(()).unwrap(),
                HandshakeError::ReservedHeader("host".into()),
            ),
            (
                get("ws://a/")
                    .header("Sec-WebSocket-Key", KEY)
                    .body(())
                    .unwrap(),
                HandshakeError::ReservedHeader("sec-websocket-key".into()),
            ),
            (
                get("ws://a/")
                    .header("X-Bin", http::HeaderValue::from_bytes(b"\xff").unwrap())
                    .body(())
                    .unwrap(),
                HandshakeError::InvalidHeaderValue("x-bin".into()),
            ),
        ];
        for (req, expected) in cases {
            let err = client_config(&req, &base).unwrap_err();
            assert_eq!(err, expected);
            assert!(!err.is_peer_fault(), "{err:?}");
        }
    }

    #[test]
    fn response_heads_become_http_responses() {
        let mut headers = Headers::new();
        headers.push("Upgrade", "websocket");
        headers.push("Set-Cookie", "a=1");
        headers.push("Set-Cookie", "b=2");
        let mut response = head::Response {
            version: Version::HTTP_1_1,
            status: 101,
            reason: "Switching Protocols".into(),
            headers,
        };
        let converted = http::Response::try_from(&response).unwrap();
        assert_eq!(converted.status(), 101);
        assert_eq!(converted.version(), http::Version::HTTP_11);
        let cookies: Vec<_> = converted.headers().get_all("set-cookie").iter().collect();
        assert_eq!(cookies, ["a=1", "b=2"]);

        response.headers.push("Bad Name", "x");
        assert_eq!(
            http::Response::try_from(&response).err(),
            Some(HttpError::BadHeaderName)
        );
        response.headers = Headers::new();
        response.headers.push("X-Ok", "a\nb");
        assert_eq!(
            http::Response::try_from(&response).err(),
            Some(HttpError::BadHeaderValue)
        );
        response.headers = Headers::new();
        response.status = 1000;
        assert_eq!(
            http::Response::try_from(&response).err(),
            Some(HttpError::BadStatusCode)
        );
    }
}
