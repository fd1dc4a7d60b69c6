//! The outbound HTTP/1.1 client that delivers webhooks and WebSub
//! notifications, and sends WebSub's verification GETs.
//!
//! Written on rtwire's own bounded parser ([`ResponseParser`]) rather than
//! a general-purpose client crate: what a push needs is small (one
//! request, one bounded answer), and every rule that matters here is one
//! a general client would have to be talked out of — never follow a
//! redirect (Standard Webhooks' SSRF advice; a 3xx is just a
//! failed attempt), connect only to addresses the SSRF guard
//! ([`resolve_checked`]) passed, hold at most [`ClientConfig::max_body_bytes`]
//! of an answer, and finish within one deadline whatever the peer does.
//!
//! - One deadline, [`ClientConfig::timeout`], covers a whole request:
//!   resolution, connecting, TLS, writing, the head and the body.
//! - `https` runs on rustls with the `tls` feature; without it an `https`
//!   URL is refused ([`ClientError::HttpsUnsupported`]) before any I/O.
//! - Connections are kept for reuse per origin (scheme, host, port): at
//!   most [`ClientConfig::max_idle_per_origin`] idle ones each and
//!   [`ClientConfig::max_idle_total`] in all, each dropped after
//!   [`ClientConfig::idle_timeout`]. A kept connection the receiver has
//!   closed meanwhile is noticed when the request finds it closed before
//!   any answer; the request then goes once more on a fresh connection.
//!   The receiver may have read it the first time, so a delivery can
//!   arrive twice: Standard Webhooks' `webhook-id` is there for that.
//!
//! ```no_run
//! use rtwire::push::client::{Client, ClientConfig, OutboundRequest};
//! use rtwire::push::url::CallbackUrl;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::new(ClientConfig::default());
//! let url = CallbackUrl::parse("https://receiver.example/hooks?src=rtwire")?;
//! let request = OutboundRequest::post(url, &b"{\"hello\":1}"[..])
//!     .header("content-type", "application/json");
//! let response = client.send(&request).await?;
//! println!("{} ({} bytes)", response.status, response.body.len());
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::url::{resolve_checked, AddressClass, CallbackUrl, Host, ResolveError, Scheme};
use crate::http::{HeadLimits, Headers, HttpError, Parse, ResponseParser, Version};
use crate::ws::MaybeTlsStream;

/// The default cap on a response body: 64 KiB. A receiver's answer only
/// matters for its status, and for WebSub's challenge echo.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The most interim (1xx) responses read before the final one.
const MAX_INTERIM: usize = 8;

/// The longest chunk-size line (with extensions) or trailer line of a
/// chunked body.
const MAX_CHUNK_LINE: usize = 4096;

/// The most bytes of trailers after a chunked body.
const MAX_TRAILER_BYTES: usize = 16 * 1024;

/// How much is read from the socket at a time.
const READ_CHUNK: usize = 8 * 1024;

/// How a [`Client`] connects, waits and reuses.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ClientConfig {
    /// Send to private, loopback, link-local and other non-public
    /// addresses (`--allow-private-callbacks`: tests and local setups).
    /// Default false.
    pub allow_private: bool,
    /// The deadline of a whole request, from resolving the name to the
    /// last byte of the body. Default 15 s (Standard Webhooks: 15–30 s).
    pub timeout: Duration,
    /// The deadline of resolving the name, and of connecting to each
    /// address (and the TLS handshake), within `timeout`. Default 5 s.
    pub connect_timeout: Duration,
    /// The largest response body read; a larger one is
    /// [`ClientError::BodyTooLarge`]. Default [`MAX_BODY_BYTES`].
    pub max_body_bytes: usize,
    /// Limits on the response head. Default 8 KiB and 64 fields.
    pub head_limits: HeadLimits,
    /// Idle connections kept per origin. Default 4; 0 turns reuse off.
    pub max_idle_per_origin: usize,
    /// Idle connections kept in all. Default 256.
    pub max_idle_total: usize,
    /// How long an idle connection is kept. Default 30 s, under the
    /// idle timeouts of common servers (nginx 75 s, Node 5 s being the
    /// exception, handled by the retry on a fresh connection).
    pub idle_timeout: Duration,
    /// How `https` servers are checked; `None` trusts Mozilla's roots
    /// (webpki-roots).
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub tls: Option<crate::ws::tls::TlsConnector>,
}

impl Default for ClientConfig {
    fn default() -> ClientConfig {
        ClientConfig {
            allow_private: false,
            timeout: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(5),
            max_body_bytes: MAX_BODY_BYTES,
            head_limits: HeadLimits::default(),
            max_idle_per_origin: 4,
            max_idle_total: 256,
            idle_timeout: Duration::from_secs(30),
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

/// Why a request got no response. [`is_caller_fault`](Self::is_caller_fault)
/// tells the caller's mistakes (nothing was sent; retrying cannot help)
/// from the receiver's or the network's (worth a retry).
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientError {
    /// The caller's: an address of the URL is not public, and private
    /// callbacks are not allowed (the SSRF guard).
    NotPublic {
        /// The address.
        ip: IpAddr,
        /// What kind it is.
        class: AddressClass,
    },
    /// The caller's: an `https` URL, and rtwire was built without the
    /// `tls` feature.
    HttpsUnsupported,
    /// The caller's: a method, target or header the client will not send
    /// (not a token, a control character, or a header it writes itself:
    /// `Host`, `Content-Length`, `Transfer-Encoding`, `Connection`, ...).
    BadRequest(&'static str),
    /// The name did not resolve (in time), or has no addresses.
    Resolve(ResolveError),
    /// No address accepted a connection in time.
    Connect(io::Error),
    /// The TLS handshake failed (e.g. the certificate is not trusted).
    Tls(io::Error),
    /// The request did not complete within [`ClientConfig::timeout`].
    Timeout,
    /// The connection failed while sending or receiving.
    Io(io::Error),
    /// The receiver closed the connection before the whole response.
    Closed,
    /// The response head is not valid HTTP/1.1.
    BadResponse(HttpError),
    /// The response's framing is invalid: a bad `Content-Length`, bad
    /// chunked coding, too many interim responses, an unasked-for 101.
    BadFraming(&'static str),
    /// The body is over [`ClientConfig::max_body_bytes`].
    BodyTooLarge {
        /// The limit.
        limit: usize,
    },
}

impl ClientError {
    /// Whether the request itself is at fault (refused before anything was
    /// sent), rather than the receiver or the network.
    pub fn is_caller_fault(&self) -> bool {
        matches!(
            self,
            ClientError::NotPublic { .. }
                | ClientError::HttpsUnsupported
                | ClientError::BadRequest(_)
        )
    }

    /// Whether the receiver answered, but not with valid HTTP within the
    /// limits: its fault, as opposed to a timeout or a network failure.
    pub fn is_bad_response(&self) -> bool {
        matches!(
            self,
            ClientError::BadResponse(_)
                | ClientError::BadFraming(_)
                | ClientError::BodyTooLarge { .. }
        )
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::NotPublic { ip, class } => {
                write!(
                    f,
                    "refused: {ip} is a {} address, not a public one",
                    class.as_str()
                )
            }
            ClientError::HttpsUnsupported => f.write_str("https needs rtwire's tls feature"),
            ClientError::BadRequest(why) => write!(f, "bad request: {why}"),
            ClientError::Resolve(e) => e.fmt(f),
            ClientError::Connect(e) => write!(f, "cannot connect: {e}"),
            ClientError::Tls(e) => write!(f, "TLS handshake failed: {e}"),
            ClientError::Timeout => f.write_str("timed out"),
            ClientError::Io(e) => write!(f, "connection failed: {e}"),
            ClientError::Closed => f.write_str("connection closed before the whole response"),
            ClientError::BadResponse(e) => write!(f, "bad response: {e}"),
            ClientError::BadFraming(why) => write!(f, "bad response: {why}"),
            ClientError::BodyTooLarge { limit } => write!(f, "response body over {limit} bytes"),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::Resolve(e) => Some(e),
            ClientError::Connect(e) | ClientError::Tls(e) | ClientError::Io(e) => Some(e),
            ClientError::BadResponse(e) => Some(e),
            _ => None,
        }
    }
}

impl From<ResolveError> for ClientError {
    fn from(e: ResolveError) -> ClientError {
        match e {
            ResolveError::NotPublic { ip, class } => ClientError::NotPublic { ip, class },
            other => ClientError::Resolve(other),
        }
    }
}

/// One request to send.
#[derive(Clone, Debug)]
pub struct OutboundRequest {
    method: String,
    url: CallbackUrl,
    target: String,
    headers: Vec<(String, String)>,
    body: Bytes,
}

impl OutboundRequest {
    /// A GET of the URL's target.
    pub fn get(url: CallbackUrl) -> OutboundRequest {
        OutboundRequest::new("GET", url, Bytes::new())
    }

    /// A POST of `body` to the URL's target.
    pub fn post(url: CallbackUrl, body: impl Into<Bytes>) -> OutboundRequest {
        OutboundRequest::new("POST", url, body.into())
    }

    /// A request with any method (a token, e.g. `PUT`).
    pub fn new(method: &str, url: CallbackUrl, body: Bytes) -> OutboundRequest {
        let target = url.target().to_owned();
        OutboundRequest {
            method: method.to_owned(),
            url,
            target,
            headers: Vec::new(),
            body,
        }
    }

    /// Sends to another target on the same origin: e.g. the callback's
    /// own target with WebSub's verification query added
    /// ([`CallbackUrl::target_with_query`]). Must start with `/` and be
    /// visible ASCII.
    pub fn target(mut self, target: impl Into<String>) -> OutboundRequest {
        self.target = target.into();
        self
    }

    /// Adds a header (sent in the order added).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> OutboundRequest {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The URL the request goes to.
    pub fn url(&self) -> &CallbackUrl {
        &self.url
    }
}

/// A response: its status, head and whole body.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct OutboundResponse {
    /// The status code.
    pub status: u16,
    /// The header fields.
    pub headers: Headers,
    /// The body (at most [`ClientConfig::max_body_bytes`]).
    pub body: Bytes,
}

type Stream = MaybeTlsStream<TcpStream>;

/// Where a connection goes: reused only for the same scheme, host and port.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Origin {
    scheme: Scheme,
    host: Host,
    port: u16,
}

impl Origin {
    fn of(url: &CallbackUrl) -> Origin {
        Origin {
            scheme: url.scheme(),
            host: url.host().clone(),
            port: url.port(),
        }
    }
}

struct Idle {
    stream: Stream,
    since: Instant,
}

/// Idle connections by origin, oldest first in each list.
#[derive(Default)]
struct Pool {
    idle: HashMap<Origin, Vec<Idle>>,
    total: usize,
}

impl Pool {
    /// The most recently used live connection to `origin`, if any; expired
    /// ones met on the way are dropped.
    fn take(&mut self, origin: &Origin, now: Instant, idle_timeout: Duration) -> Option<Stream> {
        let list = self.idle.get_mut(origin)?;
        let before = list.len();
        list.retain(|idle| now.duration_since(idle.since) < idle_timeout);
        let found = list.pop();
        self.total -= before - list.len();
        if list.is_empty() {
            self.idle.remove(origin);
        }
        found.map(|idle| idle.stream)
    }

    /// Keeps `stream` for reuse, within the caps: the oldest of the
    /// origin's goes if that origin is full; if the pool is full even after
    /// dropping expired connections, `stream` is not kept.
    fn put(&mut self, origin: Origin, stream: Stream, now: Instant, config: &ClientConfig) {
        if config.max_idle_per_origin == 0 {
            return;
        }
        if self.total >= config.max_idle_total {
            self.expire(now, config.idle_timeout);
            if self.total >= config.max_idle_total {
                return;
            }
        }
        let list = self.idle.entry(origin).or_default();
        if list.len() >= config.max_idle_per_origin {
            list.remove(0);
            self.total -= 1;
        }
        list.push(Idle { stream, since: now });
        self.total += 1;
    }

    fn expire(&mut self, now: Instant, idle_timeout: Duration) {
        self.idle.retain(|_, list| {
            list.retain(|idle| now.duration_since(idle.since) < idle_timeout);
            !list.is_empty()
        });
        self.total = self.idle.values().map(Vec::len).sum();
    }
}

/// The outbound client; cheap to clone (clones share the idle connections).
#[derive(Clone)]
pub struct Client {
    config: Arc<ClientConfig>,
    pool: Arc<Mutex<Pool>>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.config)
            .field("idle", &self.idle_connections())
            .finish()
    }
}

/// A failed round trip, and whether anything of a response had arrived.
struct Failure {
    error: ClientError,
    nothing_received: bool,
}

impl From<ClientError> for Failure {
    fn from(error: ClientError) -> Failure {
        Failure {
            error,
            nothing_received: false,
        }
    }
}

impl Client {
    /// A client with this configuration and no connections yet.
    pub fn new(config: ClientConfig) -> Client {
        Client {
            config: Arc::new(config),
            pool: Arc::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// How many idle connections are kept now (expired ones included until
    /// they are next looked at).
    pub fn idle_connections(&self) -> usize {
        self.pool().total
    }

    fn pool(&self) -> std::sync::MutexGuard<'_, Pool> {
        // A panic elsewhere while holding the lock leaves a pool that is
        // still consistent (every update is one step): keep using it.
        self.pool
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sends `request` and reads the whole response, within
    /// [`ClientConfig::timeout`]. Redirects are not followed: a 3xx comes
    /// back like any other status.
    pub async fn send(&self, request: &OutboundRequest) -> Result<OutboundResponse, ClientError> {
        let head = request_head(request)?;
        if request.url.scheme() == Scheme::Https && !cfg!(feature = "tls") {
            return Err(ClientError::HttpsUnsupported);
        }
        tokio::time::timeout(self.config.timeout, self.exchange(request, &head))
            .await
            .unwrap_or(Err(ClientError::Timeout))
    }

    async fn exchange(
        &self,
        request: &OutboundRequest,
        head: &[u8],
    ) -> Result<OutboundResponse, ClientError> {
        let origin = Origin::of(&request.url);
        let idle = self
            .pool()
            .take(&origin, Instant::now(), self.config.idle_timeout);
        if let Some(stream) = idle {
            match self.round_trip(stream, request, head).await {
                Ok((response, kept)) => return Ok(self.keep(origin, kept, response)),
                // Closed while idle: once more, on a fresh connection.
                Err(Failure {
                    nothing_received: true,
                    ..
                }) => {}
                Err(failure) => return Err(failure.error),
            }
        }
        let stream = self.connect(&request.url).await?;
        match self.round_trip(stream, request, head).await {
            Ok((response, kept)) => Ok(self.keep(origin, kept, response)),
            Err(failure) => Err(failure.error),
        }
    }

    fn keep(
        &self,
        origin: Origin,
        kept: Option<Stream>,
        response: OutboundResponse,
    ) -> OutboundResponse {
        if let Some(stream) = kept {
            self.pool()
                .put(origin, stream, Instant::now(), &self.config);
        }
        response
    }

    /// A new connection to one of the URL's (checked) addresses.
    async fn connect(&self, url: &CallbackUrl) -> Result<Stream, ClientError> {
        let addrs =
            resolve_checked(url, self.config.allow_private, self.config.connect_timeout).await?;
        let tcp = connect_any(&addrs, self.config.connect_timeout).await?;
        // Requests are written whole: no reason to wait for more.
        let _ = tcp.set_nodelay(true);
        match url.scheme() {
            Scheme::Http => Ok(MaybeTlsStream::Plain(tcp)),
            Scheme::Https => self.tls(url, tcp).await,
        }
    }

    #[cfg(feature = "tls")]
    async fn tls(&self, url: &CallbackUrl, tcp: TcpStream) -> Result<Stream, ClientError> {
        let connector = self
            .config
            .tls
            .clone()
            .unwrap_or_else(crate::ws::tls::TlsConnector::webpki_roots);
        let name = match url.host() {
            Host::Name(name) => name.clone(),
            Host::V4(ip) => ip.to_string(),
            Host::V6(ip) => ip.to_string(),
        };
        tokio::time::timeout(self.config.connect_timeout, connector.connect(&name, tcp))
            .await
            .map_err(|_| ClientError::Timeout)?
            .map_err(ClientError::Tls)
    }

    #[cfg(not(feature = "tls"))]
    async fn tls(&self, _url: &CallbackUrl, _tcp: TcpStream) -> Result<Stream, ClientError> {
        Err(ClientError::HttpsUnsupported)
    }

    /// Writes the request and reads the response; gives back the stream if
    /// it can carry another request.
    async fn round_trip(
        &self,
        mut stream: Stream,
        request: &OutboundRequest,
        head: &[u8],
    ) -> Result<(OutboundResponse, Option<Stream>), Failure> {
        let nothing = |error| Failure {
            error,
            nothing_received: true,
        };
        write_request(&mut stream, head, &request.body)
            .await
            .map_err(|e| nothing(ClientError::Io(e)))?;
        let mut buf = Vec::new();
        let (response, used) = self.read_head(&mut stream, &mut buf).await?;
        buf.drain(..used);
        let (framing, mut reusable) =
            framing(&request.method, &response, self.config.max_body_bytes)?;
        let body = self
            .read_body(&mut stream, buf, framing, &mut reusable)
            .await?;
        let response = OutboundResponse {
            status: response.status,
            headers: response.headers,
            body,
        };
        Ok((response, reusable.then_some(stream)))
    }

    /// The final response head (interim 1xx responses skipped), and how
    /// many bytes of `buf` it used.
    async fn read_head(
        &self,
        stream: &mut Stream,
        buf: &mut Vec<u8>,
    ) -> Result<(crate::http::Response, usize), Failure> {
        let mut parser = ResponseParser::new();
        let mut interim = 0;
        loop {
            match parser.parse(buf, &self.config.head_limits) {
                Err(e) => return Err(ClientError::BadResponse(e).into()),
                Ok(Parse::Complete(response, used)) => match response.status {
                    101 => {
                        return Err(
                            ClientError::BadFraming("101 without an upgrade asked for").into()
                        )
                    }
                    100..=199 if interim == MAX_INTERIM => {
                        return Err(ClientError::BadFraming("too many interim responses").into())
                    }
                    100..=199 => {
                        interim += 1;
                        buf.drain(..used);
                        continue;
                    }
                    _ => return Ok((response, used)),
                },
                Ok(Parse::Partial) => {}
            }
            let nothing_yet = buf.is_empty() && interim == 0;
            match read_some(stream, buf).await {
                Ok(0) => {
                    return Err(Failure {
                        error: ClientError::Closed,
                        nothing_received: nothing_yet,
                    })
                }
                Ok(_) => {}
                Err(e) => {
                    return Err(Failure {
                        error: ClientError::Io(e),
                        nothing_received: nothing_yet,
                    })
                }
            }
        }
    }

    /// The body as framed, starting with what followed the head in `buf`.
    /// Clears `reusable` if the connection cannot carry another request.
    async fn read_body(
        &self,
        stream: &mut Stream,
        mut buf: Vec<u8>,
        framing: Framing,
        reusable: &mut bool,
    ) -> Result<Bytes, ClientError> {
        let limit = self.config.max_body_bytes;
        match framing {
            Framing::Empty => {
                *reusable &= buf.is_empty();
                Ok(Bytes::new())
            }
            Framing::Length(len) => {
                while buf.len() < len {
                    if read_some(stream, &mut buf).await.map_err(ClientError::Io)? == 0 {
                        return Err(ClientError::Closed);
                    }
                }
                // More than it announced: the connection is out of step.
                *reusable &= buf.len() == len;
                buf.truncate(len);
                Ok(Bytes::from(buf))
            }
            Framing::Chunked => {
                let mut decoder = Chunked::new(limit);
                let mut input = buf;
                loop {
                    let used = decoder.feed(&input)?;
                    input.drain(..used);
                    if decoder.is_done() {
                        *reusable &= input.is_empty();
                        return Ok(Bytes::from(decoder.body));
                    }
                    if read_some(stream, &mut input)
                        .await
                        .map_err(ClientError::Io)?
                        == 0
                    {
                        return Err(ClientError::Closed);
                    }
                }
            }
            Framing::UntilClose => {
                *reusable = false;
                loop {
                    if buf.len() > limit {
                        return Err(ClientError::BodyTooLarge { limit });
                    }
                    if read_some(stream, &mut buf).await.map_err(ClientError::Io)? == 0 {
                        return Ok(Bytes::from(buf));
                    }
                }
            }
        }
    }
}

/// Tries each address in turn, each within `timeout`; the last error if
/// none answers.
async fn connect_any(addrs: &[SocketAddr], timeout: Duration) -> Result<TcpStream, ClientError> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address to connect to");
    for addr in addrs {
        match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(tcp)) => return Ok(tcp),
            Ok(Err(e)) => last = e,
            Err(_) => {
                last = io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("connecting to {addr} timed out"),
                )
            }
        }
    }
    Err(ClientError::Connect(last))
}

async fn write_request(stream: &mut Stream, head: &[u8], body: &[u8]) -> io::Result<()> {
    stream.write_all(head).await?;
    stream.write_all(body).await?;
    stream.flush().await
}

/// Appends up to [`READ_CHUNK`] bytes read from `stream`; 0 at EOF.
async fn read_some(stream: &mut Stream, buf: &mut Vec<u8>) -> io::Result<usize> {
    let mut chunk = [0u8; READ_CHUNK];
    let n = stream.read(&mut chunk).await?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n)
}

/// How a response's body is delimited (RFC 9112 §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    /// No body: a HEAD request, or 204 or 304.
    Empty,
    /// `Content-Length` bytes.
    Length(usize),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Everything until the connection closes.
    UntilClose,
}

/// The framing of the body, and whether the connection may carry another
/// request once it is read.
fn framing(
    method: &str,
    response: &crate::http::Response,
    limit: usize,
) -> Result<(Framing, bool), ClientError> {
    let headers = &response.headers;
    let keep_alive =
        response.version >= Version::HTTP_1_1 && !headers.contains_token("connection", "close");
    if method == "HEAD" || response.status == 204 || response.status == 304 {
        return Ok((Framing::Empty, keep_alive));
    }
    let has_length = headers.get("content-length").is_some();
    if headers.get("transfer-encoding").is_some() {
        // RFC 9112 §6.3: Transfer-Encoding overrides Content-Length, and a
        // message with both is treated as an error as far as reuse goes: the
        // connection is closed after it.
        let chunked_last = headers
            .tokens("transfer-encoding")
            .last()
            .is_some_and(|coding| coding.eq_ignore_ascii_case("chunked"));
        return Ok(if chunked_last {
            (Framing::Chunked, keep_alive && !has_length)
        } else {
            (Framing::UntilClose, false)
        });
    }
    if has_length {
        let len = content_length(headers)?;
        if len > limit {
            return Err(ClientError::BodyTooLarge { limit });
        }
        return Ok((Framing::Length(len), keep_alive));
    }
    Ok((Framing::UntilClose, false))
}

/// The one length every `Content-Length` field (and list element) gives.
/// RFC 9112 §6.3: differing values make the framing unrecoverable.
fn content_length(headers: &Headers) -> Result<usize, ClientError> {
    let bad = ClientError::BadFraming("invalid Content-Length");
    let mut found: Option<usize> = None;
    for value in headers.get_all("content-length").flat_map(|v| v.split(',')) {
        let value = value.trim_matches(|c| c == ' ' || c == '\t');
        if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad);
        }
        // Too large for usize is over any limit: saturate, then the caller refuses it.
        let len = value.parse::<usize>().unwrap_or(usize::MAX);
        if found.is_some_and(|f| f != len) {
            return Err(bad);
        }
        found = Some(len);
    }
    found.ok_or(bad)
}

/// The request head, after checking what the caller asked to send.
fn request_head(request: &OutboundRequest) -> Result<Vec<u8>, ClientError> {
    if request.method.is_empty() || !request.method.bytes().all(is_tchar) {
        return Err(ClientError::BadRequest("the method is not a token"));
    }
    if !request.target.starts_with('/') || !request.target.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ClientError::BadRequest(
            "the target is not a path of visible ASCII",
        ));
    }
    let mut head = format!(
        "{} {} HTTP/1.1\r\nhost: {}\r\n",
        request.method,
        request.target,
        request.url.host_header()
    );
    for (name, value) in &request.headers {
        check_header(name, value)?;
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    // RFC 9110 §8.6: no Content-Length on a request without content whose
    // method does not anticipate any.
    if !request.body.is_empty()
        || !matches!(
            request.method.as_str(),
            "GET" | "HEAD" | "DELETE" | "OPTIONS"
        )
    {
        head.push_str(&format!("content-length: {}\r\n", request.body.len()));
    }
    head.push_str("\r\n");
    Ok(head.into_bytes())
}

/// Headers the client writes itself, or that belong to one connection.
const OWN_HEADERS: [&str; 8] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
];

fn check_header(name: &str, value: &str) -> Result<(), ClientError> {
    if name.is_empty() || !name.bytes().all(is_tchar) {
        return Err(ClientError::BadRequest("a header name is not a token"));
    }
    if OWN_HEADERS.iter().any(|own| own.eq_ignore_ascii_case(name)) {
        return Err(ClientError::BadRequest("a header the client writes itself"));
    }
    // RFC 9110 §5.5: field values are visible characters, spaces and tabs.
    if !value
        .bytes()
        .all(|b| b == b'\t' || b == b' ' || b.is_ascii_graphic() || b >= 0x80)
    {
        return Err(ClientError::BadRequest(
            "a header value holds a control character",
        ));
    }
    Ok(())
}

/// RFC 9110 §5.6.2 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A chunked body decoder (RFC 9112 §7.1), fed bytes as they come.
#[derive(Debug)]
struct Chunked {
    state: ChunkState,
    /// The line being read (a chunk size or a trailer).
    line: Vec<u8>,
    body: Vec<u8>,
    limit: usize,
    trailer_bytes: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChunkState {
    /// Reading a chunk-size line.
    Size,
    /// Copying this many more data bytes.
    Data(usize),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// Reading trailer lines until an empty one.
    Trailers,
    /// The body is complete.
    Done,
}

impl Chunked {
    fn new(limit: usize) -> Chunked {
        Chunked {
            state: ChunkState::Size,
            line: Vec::new(),
            body: Vec::new(),
            limit,
            trailer_bytes: 0,
        }
    }

    fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Takes what it can of `input`; returns how many bytes it used (all of
    /// them, unless the body ended within `input`).
    fn feed(&mut self, input: &[u8]) -> Result<usize, ClientError> {
        let mut used = 0;
        while used < input.len() && !self.is_done() {
            used += match self.state {
                ChunkState::Data(left) => {
                    let take = left.min(input.len() - used);
                    self.body.extend_from_slice(&input[used..used + take]);
                    self.state = if take == left {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(left - take)
                    };
                    take
                }
                _ => self.feed_line(&input[used..])?,
            };
        }
        Ok(used)
    }

    /// Reads towards the end of a line; acts on the line once it is whole.
    fn feed_line(&mut self, input: &[u8]) -> Result<usize, ClientError> {
        let (taken, complete) = match input.iter().position(|&b| b == b'\n') {
            Some(lf) => (lf + 1, true),
            None => (input.len(), false),
        };
        if self.line.len() + taken > MAX_CHUNK_LINE {
            return Err(ClientError::BadFraming("chunk line too long"));
        }
        self.line.extend_from_slice(&input[..taken]);
        if complete {
            let line = std::mem::take(&mut self.line);
            let line = line.strip_suffix(b"\n").unwrap_or(&line);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            self.line_done(line)?;
        }
        Ok(taken)
    }

    fn line_done(&mut self, line: &[u8]) -> Result<(), ClientError> {
        match self.state {
            ChunkState::Size => {
                let size = chunk_size(line)?;
                if size > self.limit - self.body.len() {
                    return Err(ClientError::BodyTooLarge { limit: self.limit });
                }
                self.state = if size == 0 {
                    ChunkState::Trailers
                } else {
                    ChunkState::Data(size)
                };
            }
            ChunkState::DataEnd if line.is_empty() => self.state = ChunkState::Size,
            ChunkState::DataEnd => {
                return Err(ClientError::BadFraming("chunk data longer than its size"))
            }
            ChunkState::Trailers if line.is_empty() => self.state = ChunkState::Done,
            ChunkState::Trailers => {
                self.trailer_bytes += line.len();
                if self.trailer_bytes > MAX_TRAILER_BYTES {
                    return Err(ClientError::BadFraming("trailers too long"));
                }
            }
            ChunkState::Data(_) | ChunkState::Done => unreachable!("no line is read in this state"),
        }
        Ok(())
    }
}

/// The hex size at the start of a chunk-size line (extensions after `;`
/// ignored). At most 15 hex digits, so it fits any usize we care about.
fn chunk_size(line: &[u8]) -> Result<usize, ClientError> {
    let bad = ClientError::BadFraming("invalid chunk size");
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    let rest = &line[digits..];
    let rest_ok = rest.is_empty() || matches!(rest[0], b';' | b' ' | b'\t');
    if digits == 0 || digits > 15 || !rest_ok {
        return Err(bad);
    }
    let hex = std::str::from_utf8(&line[..digits])
        .map_err(|_| ClientError::BadFraming("invalid chunk size"))?;
    usize::from_str_radix(hex, 16).map_err(|_| bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_whole(input: &[u8], limit: usize) -> Result<(Vec<u8>, usize), ClientError> {
        let mut d = Chunked::new(limit);
        let used = d.feed(input)?;
        assert!(d.is_done(), "incomplete");
        Ok((d.body, used))
    }

    #[test]
    fn chunked_bodies_decode_whole_and_byte_by_byte() {
        let input = b"5;ext=1\r\nhello\r\n1\r\n \r\n6\r\nworld!\r\n0\r\nTrailer: x\r\n\r\nNEXT";
        let (body, used) = decode_whole(input, 100).unwrap();
        assert_eq!(body, b"hello world!");
        assert_eq!(&input[used..], b"NEXT");
        let mut d = Chunked::new(100);
        let mut total = 0;
        for byte in input.chunks(1) {
            if d.is_done() {
                break;
            }
            total += d.feed(byte).unwrap();
        }
        assert_eq!((d.body, total), (b"hello world!".to_vec(), used));
        // Bare LF line ends are taken too.
        assert_eq!(decode_whole(b"3\nabc\n0\n\n", 100).unwrap().0, b"abc");
    }

    #[test]
    fn chunked_errors() {
        let bad = |input: &[u8]| Chunked::new(100).feed(input).unwrap_err();
        assert!(matches!(bad(b"zz\r\n"), ClientError::BadFraming(_)));
        assert!(matches!(bad(b"\r\n"), ClientError::BadFraming(_)));
        assert!(matches!(bad(b"5x\r\n"), ClientError::BadFraming(_)));
        assert!(matches!(
            bad(b"1234567890abcdef0\r\n"),
            ClientError::BadFraming(_)
        ));
        assert!(matches!(bad(b"3\r\nabcd\r\n"), ClientError::BadFraming(_)));
        assert!(matches!(bad(&[b'1'; 5000]), ClientError::BadFraming(_)));
        assert!(matches!(
            bad(b"65\r\n"),
            ClientError::BodyTooLarge { limit: 100 }
        ));
        let mut d = Chunked::new(100);
        d.feed(b"32\r\n").unwrap();
        d.feed(&[b'a'; 50]).unwrap();
        assert!(matches!(
            d.feed(b"\r\n33\r\n"),
            Err(ClientError::BodyTooLarge { limit: 100 })
        ));
    }

    fn response(head: &str) -> crate::http::Response {
        match crate::http::Response::parse(head.as_bytes(), &HeadLimits::default()).unwrap() {
            Parse::Complete(r, _) => r,
            Parse::Partial => panic!("partial"),
        }
    }

    #[test]
    fn framing_rules() {
        let f = |method: &str, head: &str| framing(method, &response(head), 1000);
        assert_eq!(
            f("POST", "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n").unwrap(),
            (Framing::Length(5), true)
        );
        assert_eq!(
            f(
                "POST",
                "HTTP/1.1 200 OK\r\ncontent-length: 5, 5\r\nContent-Length: 5\r\n\r\n"
            )
            .unwrap(),
            (Framing::Length(5), true)
        );
        assert!(matches!(
            f("POST", "HTTP/1.1 200 OK\r\ncontent-length: 5, 6\r\n\r\n"),
            Err(ClientError::BadFraming(_))
        ));
        assert!(matches!(
            f("POST", "HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n"),
            Err(ClientError::BadFraming(_))
        ));
        assert!(matches!(
            f("POST", "HTTP/1.1 200 OK\r\ncontent-length: 1001\r\n\r\n"),
            Err(ClientError::BodyTooLarge { limit: 1000 })
        ));
        assert!(matches!(
            f(
                "POST",
                "HTTP/1.1 200 OK\r\ncontent-length: 99999999999999999999999\r\n\r\n"
            ),
            Err(ClientError::BodyTooLarge { .. })
        ));
        assert_eq!(
            f(
                "POST",
                "HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\n"
            )
            .unwrap(),
            (Framing::Length(5), false)
        );
        assert_eq!(
            f("POST", "HTTP/1.0 200 OK\r\ncontent-length: 5\r\n\r\n").unwrap(),
            (Framing::Length(5), false)
        );
        assert_eq!(
            f(
                "POST",
                "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n"
            )
            .unwrap(),
            (Framing::Chunked, true)
        );
        assert_eq!(
            f(
                "POST",
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 5\r\n\r\n"
            )
            .unwrap(),
            (Framing::Chunked, false)
        );
        assert_eq!(
            f("POST", "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n").unwrap(),
            (Framing::UntilClose, false)
        );
        assert_eq!(
            f("POST", "HTTP/1.1 200 OK\r\n\r\n").unwrap(),
            (Framing::UntilClose, false)
        );
        assert_eq!(
            f(
                "POST",
                "HTTP/1.1 204 No Content\r\ncontent-length: 5\r\n\r\n"
            )
            .unwrap(),
            (Framing::Empty, true)
        );
        assert_eq!(
            f("HEAD", "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n").unwrap(),
            (Framing::Empty, true)
        );
    }

    fn url(text: &str) -> CallbackUrl {
        CallbackUrl::parse(text).unwrap()
    }

    #[test]
    fn request_heads() {
        let post = OutboundRequest::post(url("http://a.example:8080/cb?x=1"), &b"hi"[..])
            .header("webhook-id", "msg_1");
        assert_eq!(
            String::from_utf8(request_head(&post).unwrap()).unwrap(),
            "POST /cb?x=1 HTTP/1.1\r\nhost: a.example:8080\r\nwebhook-id: msg_1\r\ncontent-length: 2\r\n\r\n"
        );
        let get = OutboundRequest::get(url("https://a.example:443")).target("/?hub.challenge=abc");
        assert_eq!(
            String::from_utf8(request_head(&get).unwrap()).unwrap(),
            "GET /?hub.challenge=abc HTTP/1.1\r\nhost: a.example\r\n\r\n"
        );
        let refused =
            |r: OutboundRequest| matches!(request_head(&r), Err(ClientError::BadRequest(_)));
        let u = || url("http://a.example/");
        assert!(refused(
            OutboundRequest::get(u()).header("x", "a\r\nevil: 1")
        ));
        assert!(refused(OutboundRequest::get(u()).header("x", "a\0")));
        assert!(refused(OutboundRequest::get(u()).header("bad name", "v")));
        assert!(refused(
            OutboundRequest::get(u()).header("Content-Length", "9")
        ));
        assert!(refused(OutboundRequest::get(u()).header("HOST", "other")));
        assert!(refused(OutboundRequest::get(u()).target("no-slash")));
        assert!(refused(OutboundRequest::get(u()).target("/a b")));
        assert!(refused(OutboundRequest::new("GE T", u(), Bytes::new())));
        assert!(!refused(
            OutboundRequest::new("PUT", u(), Bytes::new()).header("x", "tab\tand é")
        ));
    }

    /// A connected stream (the listener never accepts: the backlog holds
    /// it), told apart by its local address.
    async fn stream(listener: &tokio::net::TcpListener) -> (Stream, SocketAddr) {
        let tcp = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let local = tcp.local_addr().unwrap();
        (MaybeTlsStream::Plain(tcp), local)
    }

    fn local_of(stream: &Stream) -> SocketAddr {
        stream.get_ref().local_addr().unwrap()
    }

    #[tokio::test]
    async fn the_pool_is_capped_per_origin_and_in_all_and_expires() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut config = ClientConfig {
            max_idle_per_origin: 2,
            max_idle_total: 3,
            idle_timeout: Duration::from_secs(30),
            ..ClientConfig::default()
        };
        let origin = |port| Origin {
            scheme: Scheme::Http,
            host: Host::V4(std::net::Ipv4Addr::LOCALHOST),
            port,
        };
        let (a, b) = (origin(1), origin(2));
        let t0 = Instant::now();
        let at = |secs| t0 + Duration::from_secs(secs);
        let mut pool = Pool::default();
        let mut locals = Vec::new();
        for (n, o) in [(0, &a), (1, &a), (2, &a), (3, &b), (4, &b)] {
            let (s, local) = stream(&listener).await;
            locals.push(local);
            pool.put(o.clone(), s, at(n), &config);
        }
        // a kept its two newest (the first went), b only its first: the
        // pool was full, and nothing had expired to make room.
        assert_eq!(pool.total, 3);
        let freshest = pool.take(&a, at(5), config.idle_timeout).unwrap();
        assert_eq!(local_of(&freshest), locals[2]);
        assert_eq!(pool.total, 2);
        // At 40 s the other of a's (idle since 1 s) has expired.
        assert!(pool.take(&a, at(40), config.idle_timeout).is_none());
        assert_eq!(pool.total, 1);
        // Once b's expired too, a full pool makes room by dropping it.
        let (s, _) = stream(&listener).await;
        pool.put(a.clone(), s, at(33), &config);
        let (s, _) = stream(&listener).await;
        pool.put(a.clone(), s, at(33), &config);
        assert_eq!(pool.total, 3);
        let (s, newest) = stream(&listener).await;
        pool.put(b.clone(), s, at(34), &config);
        assert_eq!(pool.total, 3, "b's expired connection made room");
        assert_eq!(
            local_of(&pool.take(&b, at(35), config.idle_timeout).unwrap()),
            newest
        );
        config.max_idle_per_origin = 0;
        let (s, _) = stream(&listener).await;
        pool.put(b.clone(), s, at(36), &config);
        assert!(
            pool.take(&b, at(36), config.idle_timeout).is_none(),
            "reuse off"
        );
    }

    #[test]
    fn caller_faults_are_told_apart() {
        assert!(ClientError::HttpsUnsupported.is_caller_fault());
        assert!(ClientError::BadRequest("x").is_caller_fault());
        assert!(!ClientError::Timeout.is_caller_fault());
        assert!(!ClientError::Closed.is_caller_fault());
        assert!(ClientError::BodyTooLarge { limit: 1 }.is_bad_response());
        assert!(!ClientError::Timeout.is_bad_response());
    }
}
