//! The opening handshake over a tokio stream: [`accept`], [`Upgrade`] and
//! [`connect`].

use bytes::BytesMut;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::socket::HandshakeInfo;
use super::{Error, MaybeTlsStream, WebSocket};
use crate::handshake::{
    self, AcceptResponse, Accepted, ClientHandshake, HandshakeError, RejectedResponse, Rejection,
    RejectionReader, ServerHook, ServerOptions, UpgradeRequest, WsUrl,
};
use crate::http::{HeadLimits, Parse, Request, RequestParser, Response, ResponseParser};
use crate::proto::deflate::DeflateConfig;
use crate::proto::{Config, Connection, Role};

/// How a server accepts connections.
#[derive(Clone)]
#[non_exhaustive]
pub struct AcceptConfig {
    /// Limits of the connection after the handshake.
    pub connection: Config,
    /// Limits on the request head (default 8 KiB, 64 headers).
    pub head_limits: HeadLimits,
    /// How long the client may take to send its request head. Default 10 s.
    pub handshake_timeout: Duration,
    /// Chooses a subprotocol and checks the `Origin`. Default: no
    /// subprotocol, any origin.
    pub hook: Arc<dyn ServerHook>,
    /// permessage-deflate (RFC 7692) to accept when a client offers it.
    /// Default `None`: compression off.
    pub deflate: Option<DeflateConfig>,
    /// Whether the socket keeps the request head for
    /// [`WebSocket::request`]. Default `true`; a server holding many
    /// idle sockets that has no use for it saves its size per socket
    /// (commonly half a kilobyte or more) with `false`.
    pub keep_request: bool,
}

impl Default for AcceptConfig {
    fn default() -> Self {
        AcceptConfig {
            connection: Config::default(),
            head_limits: HeadLimits::default(),
            handshake_timeout: Duration::from_secs(10),
            hook: Arc::new(ServerOptions::default()),
            deflate: None,
            keep_request: true,
        }
    }
}

impl AcceptConfig {
    /// The 101 answer to a checked request and the connection behind it,
    /// with permessage-deflate when the client offers it and this config
    /// allows it: what every front-end does once it has the request.
    pub(crate) fn answer(
        &self,
        request: &Request,
        checked: &UpgradeRequest,
        response: &AcceptResponse,
    ) -> Result<(Accepted, Connection), HandshakeError> {
        // An offer that cannot be honoured is declined: no extension, no error.
        let deflate = self
            .deflate
            .as_ref()
            .and_then(|d| d.accept_offers(request.headers.get_all("sec-websocket-extensions")));
        let extensions = deflate.as_ref().map(|(_, answer)| answer.as_str());
        let accepted =
            handshake::accept_upgrade(checked, self.hook.as_ref(), response, extensions)?;
        let mut conn = Connection::new(Role::Server, self.connection.clone());
        if let Some((agreed, _)) = deflate {
            conn = conn.with_deflate(agreed);
        }
        Ok((accepted, conn))
    }

    /// Sets the hook that chooses a subprotocol and checks the origin.
    pub fn hook(mut self, hook: impl ServerHook + 'static) -> Self {
        self.hook = Arc::new(hook);
        self
    }

    /// Sets the connection's limits.
    pub fn connection(mut self, config: Config) -> Self {
        self.connection = config;
        self
    }

    /// Accepts permessage-deflate offers under `config`.
    pub fn deflate(mut self, config: DeflateConfig) -> Self {
        self.deflate = Some(config);
        self
    }

    /// Sets [`keep_request`](Self::keep_request).
    ///
    /// ```
    /// let config = rtwire::ws::AcceptConfig::default().keep_request(false);
    /// assert!(!config.keep_request);
    /// ```
    pub fn keep_request(mut self, keep: bool) -> Self {
        self.keep_request = keep;
        self
    }
}

impl std::fmt::Debug for AcceptConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcceptConfig")
            .field("connection", &self.connection)
            .field("head_limits", &self.head_limits)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("deflate", &self.deflate)
            .field("keep_request", &self.keep_request)
            .finish_non_exhaustive()
    }
}

/// A server's side of the handshake with default settings; see [`accept_with`].
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:9001").await?;
/// let (stream, _) = listener.accept().await?;
/// let mut ws = rtwire::ws::accept(stream).await?;
/// while let Some(message) = ws.recv().await? {
///     if message.is_data() {
///         ws.send(message).await?;
///     }
/// }
/// # Ok(()) }
/// ```
pub async fn accept<S: AsyncRead + AsyncWrite + Unpin>(stream: S) -> Result<WebSocket<S>, Error> {
    accept_with(stream, &AcceptConfig::default()).await
}

/// Reads the client's upgrade request, answers it, and returns the socket.
///
/// A bad request gets its HTTP error status (400, 403, 426, 431, ...) with a
/// one-line reason, the stream is shut down, and the error is returned.
/// To see the request before answering it, use [`Upgrade`] or
/// [`accept_with_callback`].
///
/// A server holding many sockets can await it boxed,
/// `Box::pin(accept_with(stream, &config)).await`: a task keeps room for
/// the largest state of what it awaits for as long as it lives, and the
/// handshake's (about 1.9 KB) is done with once the socket is open.
pub async fn accept_with<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    config: &AcceptConfig,
) -> Result<WebSocket<S>, Error> {
    Upgrade::read(stream, config)
        .await?
        .accept(AcceptResponse::new())
        .await
}

/// Answers an upgrade request that the caller has already read, e.g. an
/// HTTP server that routes `/ws` among other paths. `leftover` is whatever
/// was read past the request head.
///
/// A bad request gets its HTTP error status and the stream is shut down,
/// as in [`accept_with`]. [`Upgrade::from_request`] is the same with a look
/// at the request first.
pub async fn accept_request<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    request: &Request,
    leftover: &[u8],
    config: &AcceptConfig,
) -> Result<WebSocket<S>, Error> {
    Upgrade::from_request(stream, request.clone(), leftover, config)
        .await?
        .accept(AcceptResponse::new())
        .await
}

/// [`accept_with`] with a callback that sees the request (through the
/// [`Upgrade`]: path, query, headers, offered subprotocols) and answers it:
/// `Ok` with the subprotocol and headers of the 101, or `Err` with the
/// application's own refusal, which is sent before this returns
/// [`Error::Refused`].
///
/// For an answer that needs to wait on something (a database, a token
/// check over the network), use the two steps of [`Upgrade`] instead.
///
/// ```no_run
/// use rtwire::ws::{self, AcceptConfig, AcceptResponse, Rejection};
///
/// # async fn demo(stream: tokio::net::TcpStream) -> Result<(), ws::Error> {
/// let mut ws = ws::accept_with_callback(stream, &AcceptConfig::default(), |upgrade| {
///     match upgrade.request().headers.get("authorization") {
///         Some("Bearer let-me-in") => Ok(AcceptResponse::new().header("X-Session", "42")),
///         _ => Err(Rejection::new(401).header("WWW-Authenticate", "Bearer").body("who?\n")),
///     }
/// })
/// .await?;
/// assert_eq!(ws.request().map(|r| r.path()), Some("/"));
/// # Ok(()) }
/// ```
pub async fn accept_with_callback<S, F>(
    stream: S,
    config: &AcceptConfig,
    decide: F,
) -> Result<WebSocket<S>, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: FnOnce(&Upgrade<S>) -> Result<AcceptResponse, Rejection>,
{
    let upgrade = Upgrade::read(stream, config).await?;
    match decide(&upgrade) {
        Ok(answer) => upgrade.accept(answer).await,
        Err(rejection) => {
            let status = rejection.status();
            upgrade.reject(rejection).await?;
            Err(Error::Refused(status))
        }
    }
}

/// A valid upgrade request, read and checked, waiting for the
/// application's answer: [`accept`](Self::accept) it or
/// [`reject`](Self::reject) it.
///
/// [`read`](Self::read) answers a malformed request (400, 426, 431, ...)
/// or one whose `Origin` the config's [`ServerHook`] refuses (403) by
/// itself, as [`accept_with`] does; what reaches the application is a
/// request RFC 6455 allows.
///
/// ```
/// use rtwire::handshake::WsUrl;
/// use rtwire::ws::{self, AcceptConfig, AcceptResponse, ConnectConfig, Upgrade};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), ws::Error> {
/// let (client_io, server_io) = tokio::io::duplex(4096);
/// let server = tokio::spawn(async move {
///     let upgrade = Upgrade::read(server_io, &AcceptConfig::default()).await?;
///     assert_eq!(upgrade.request().path(), "/chat");
///     assert_eq!(upgrade.request().query(), Some("room=1"));
///     assert_eq!(upgrade.request().headers.get("cookie"), Some("id=7"));
///     assert_eq!(upgrade.offered_protocols(), ["v2", "v1"]);
///     let answer = AcceptResponse::new().protocol("v1").header("X-Server", "demo");
///     let ws = upgrade.accept(answer).await?;
///     assert_eq!(ws.protocol(), Some("v1"));
///     Ok::<_, ws::Error>(ws)
/// });
///
/// let url = WsUrl::parse("ws://localhost/chat?room=1")?;
/// let config = ConnectConfig::default().protocols(["v2", "v1"]).header("Cookie", "id=7");
/// let (ws, response) = ws::client_handshake(client_io, &url, &config).await?;
/// assert_eq!(ws.protocol(), Some("v1"));
/// assert_eq!(response.headers.get("x-server"), Some("demo"));
/// let _server_socket = server.await.unwrap()?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Upgrade<S> {
    stream: S,
    request: Request,
    checked: UpgradeRequest,
    leftover: BytesMut,
    peer_addr: Option<SocketAddr>,
    config: AcceptConfig,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Upgrade<S> {
    /// Reads the request head within
    /// [`handshake_timeout`](AcceptConfig::handshake_timeout) and checks it;
    /// a bad one is answered with its error status and returned as the
    /// error.
    pub async fn read(mut stream: S, config: &AcceptConfig) -> Result<Self, Error> {
        let mut parser = RequestParser::new();
        let parse = move |buf: &[u8], limits: &HeadLimits| parser.parse(buf, limits);
        let read = tokio::time::timeout(
            config.handshake_timeout,
            read_head(&mut stream, &config.head_limits, parse),
        )
        .await;
        let (request, leftover) = match read {
            Err(_elapsed) => return Err(Error::HandshakeTimeout),
            Ok(Err(ReadHeadError::Io(e))) => return Err(Error::Io(e)),
            Ok(Err(ReadHeadError::Eof)) => {
                return Err(Error::Io(std::io::ErrorKind::UnexpectedEof.into()))
            }
            Ok(Err(ReadHeadError::Http(e))) => {
                return Err(refuse(&mut stream, HandshakeError::from(e), config).await)
            }
            Ok(Ok(found)) => found,
        };
        Self::from_request(stream, request, &leftover, config).await
    }

    /// Checks a request head that the caller has already read (`leftover`
    /// is what was read past it), as [`read`](Self::read) does.
    pub async fn from_request(
        mut stream: S,
        request: Request,
        leftover: &[u8],
        config: &AcceptConfig,
    ) -> Result<Self, Error> {
        match handshake::check_request(&request, config.hook.as_ref()) {
            Ok(checked) => Ok(Upgrade {
                stream,
                request,
                checked,
                leftover: BytesMut::from(leftover),
                peer_addr: None,
                config: config.clone(),
            }),
            Err(e) => Err(refuse(&mut stream, e, config).await),
        }
    }

    /// The request head: method, target ([`Request::path`],
    /// [`Request::query`]) and headers.
    pub fn request(&self) -> &Request {
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

    /// The client's address, when known: set by
    /// [`with_peer_addr`](Self::with_peer_addr) or
    /// [`read_tcp`](Upgrade::read_tcp).
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer_addr
    }

    /// Records the client's address, e.g. from `TcpListener::accept`.
    ///
    /// ```no_run
    /// # async fn demo(listener: tokio::net::TcpListener) -> Result<(), rtwire::ws::Error> {
    /// use rtwire::ws::{AcceptConfig, Upgrade};
    /// let (stream, addr) = listener.accept().await?;
    /// let upgrade = Upgrade::read(stream, &AcceptConfig::default()).await?.with_peer_addr(addr);
    /// assert_eq!(upgrade.peer_addr(), Some(addr));
    /// # Ok(()) }
    /// ```
    pub fn with_peer_addr(mut self, addr: SocketAddr) -> Self {
        self.peer_addr = Some(addr);
        self
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// Answers with `101 Switching Protocols` and returns the socket, which
    /// keeps the subprotocol and (unless the config's
    /// [`keep_request`](AcceptConfig::keep_request) is off) the request
    /// ([`WebSocket::protocol`], [`WebSocket::request`]).
    ///
    /// The subprotocol is `answer`'s, or else the config's hook's choice;
    /// permessage-deflate is negotiated under the config's `deflate`. An
    /// `answer` that may not be sent (an unoffered subprotocol, a header the
    /// handshake owns or with control characters) is the application's
    /// mistake: the client gets a 500 and the error is returned.
    pub async fn accept(mut self, answer: AcceptResponse) -> Result<WebSocket<S>, Error> {
        let config = &self.config;
        let (accepted, conn) = match config.answer(&self.request, &self.checked, &answer) {
            Ok(answered) => answered,
            Err(e) => return Err(refuse(&mut self.stream, e, config).await),
        };
        write_within(
            &mut self.stream,
            &accepted.response,
            config.handshake_timeout,
        )
        .await?;
        let mut ws = WebSocket::from_connection(self.stream, conn, &self.leftover);
        ws.set_handshake(HandshakeInfo {
            protocol: accepted.protocol,
            request: config.keep_request.then_some(self.request),
            response: None,
        });
        Ok(ws)
    }

    /// Refuses the upgrade with the application's own status, headers and
    /// body, then shuts the stream down.
    ///
    /// A `rejection` that may not be sent (see [`Rejection::to_bytes`]) is
    /// the application's mistake: the client gets a 500 instead and the
    /// error is returned.
    ///
    /// ```no_run
    /// # async fn demo(stream: tokio::net::TcpStream) -> Result<(), rtwire::ws::Error> {
    /// use rtwire::ws::{AcceptConfig, Rejection, Upgrade};
    /// let upgrade = Upgrade::read(stream, &AcceptConfig::default()).await?;
    /// if upgrade.request().path() != "/chat" {
    ///     return upgrade.reject(Rejection::new(404).body("no such room\n")).await;
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn reject(mut self, rejection: Rejection) -> Result<(), Error> {
        let bytes = match rejection.to_bytes() {
            Ok(bytes) => bytes,
            Err(e) => return Err(refuse(&mut self.stream, e, &self.config).await),
        };
        write_within(&mut self.stream, &bytes, self.config.handshake_timeout).await?;
        let _ = self.stream.shutdown().await;
        Ok(())
    }
}

impl Upgrade<TcpStream> {
    /// [`read`](Self::read) for a TCP stream, recording its peer address.
    ///
    /// ```no_run
    /// # async fn demo(listener: tokio::net::TcpListener) -> Result<(), rtwire::ws::Error> {
    /// use rtwire::ws::{AcceptConfig, AcceptResponse, Upgrade};
    /// let (stream, _) = listener.accept().await?;
    /// let upgrade = Upgrade::read_tcp(stream, &AcceptConfig::default()).await?;
    /// println!("{} from {:?}", upgrade.request().target, upgrade.peer_addr());
    /// let ws = upgrade.accept(AcceptResponse::new()).await?;
    /// # Ok(()) }
    /// ```
    pub async fn read_tcp(stream: TcpStream, config: &AcceptConfig) -> Result<Self, Error> {
        let addr = stream.peer_addr();
        let upgrade = Upgrade::read(stream, config).await?;
        Ok(match addr {
            Ok(addr) => upgrade.with_peer_addr(addr),
            Err(_) => upgrade,
        })
    }
}

/// Writes `bytes` and flushes, within `limit`: a client that reads nothing
/// must not hold the server's answer for ever.
async fn write_within<S: AsyncWrite + Unpin>(
    stream: &mut S,
    bytes: &[u8],
    limit: Duration,
) -> Result<(), Error> {
    let write = async {
        stream.write_all(bytes).await?;
        stream.flush().await
    };
    match tokio::time::timeout(limit, write).await {
        Ok(done) => Ok(done?),
        Err(_elapsed) => Err(Error::HandshakeTimeout),
    }
}

/// Answers a failed handshake with its error status, shuts the stream
/// down, and gives the error back.
async fn refuse<S: AsyncWrite + Unpin>(
    stream: &mut S,
    error: HandshakeError,
    config: &AcceptConfig,
) -> Error {
    // Best effort: the client may be gone already.
    let answer = async {
        let _ = stream.write_all(&error.response()).await;
        let _ = stream.shutdown().await;
    };
    let _ = tokio::time::timeout(config.handshake_timeout, answer).await;
    Error::Handshake(error)
}

/// Opens a TCP connection to a `ws://` or `wss://` URL (TLS with the
/// feature `tls`, checked against Mozilla's roots unless
/// [`ConnectConfig::tls`] says otherwise) and performs the client's
/// handshake with default settings. Returns the socket and the server's
/// 101 response.
///
/// ```no_run
/// # async fn demo() -> Result<(), rtwire::ws::Error> {
/// use rtwire::proto::{CloseCode, Message};
/// let (mut ws, _response) = rtwire::ws::connect("ws://127.0.0.1:9001/chat").await?;
/// ws.send(Message::text("hello")).await?;
/// let reply = ws.recv().await?;
/// ws.close(CloseCode::NORMAL, "done").await?;
/// while ws.recv().await?.is_some() {}
/// # Ok(()) }
/// ```
pub async fn connect(url: &str) -> Result<(WebSocket<MaybeTlsStream<TcpStream>>, Response), Error> {
    connect_with(url, &ConnectConfig::default()).await
}

/// How a client connects.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ConnectConfig {
    /// Limits of the connection after the handshake.
    pub connection: Config,
    /// Limits on the response head.
    pub head_limits: HeadLimits,
    /// Subprotocols to offer, in order of preference.
    pub protocols: Vec<String>,
    /// permessage-deflate (RFC 7692) to offer. Default `None`: compression off.
    pub deflate: Option<DeflateConfig>,
    /// Headers of the caller's to send with the request, in order; checked
    /// by [`validate`](Self::validate) when connecting.
    pub headers: Vec<(String, String)>,
    /// How long resolving the host and opening the TCP connection may take
    /// ([`connect_with`] only). Default 10 s.
    pub connect_timeout: Duration,
    /// How long the handshake may take, from writing the request to reading
    /// the 101 (or a refusal and its body). Default 10 s.
    pub handshake_timeout: Duration,
    /// How `wss://` servers are checked. Default `None`: Mozilla's roots
    /// ([`TlsConnector::webpki_roots`](super::tls::TlsConnector::webpki_roots)).
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub tls: Option<super::tls::TlsConnector>,
}

impl Default for ConnectConfig {
    fn default() -> Self {
        ConnectConfig {
            connection: Config::default(),
            head_limits: HeadLimits::default(),
            protocols: Vec::new(),
            deflate: None,
            headers: Vec::new(),
            connect_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

impl ConnectConfig {
    /// Sets the subprotocols to offer.
    pub fn protocols(mut self, protocols: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.protocols = protocols.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the connection's limits.
    pub fn connection(mut self, config: Config) -> Self {
        self.connection = config;
        self
    }

    /// Offers permessage-deflate under `config`.
    pub fn deflate(mut self, config: DeflateConfig) -> Self {
        self.deflate = Some(config);
        self
    }

    /// Adds a header to the request (`Authorization`, `Origin`, `Cookie`,
    /// `User-Agent`, ...); repeatable, sent in order.
    ///
    /// Checked when connecting, before anything is sent (or at once with
    /// [`validate`](Self::validate)): names must be HTTP tokens, values free
    /// of control characters, and the headers the handshake writes are
    /// refused, as [`check_request_header`](crate::handshake::check_request_header)
    /// lists (among them `Host`, which comes from the URL).
    ///
    /// ```no_run
    /// use rtwire::ws::{self, ConnectConfig};
    /// # async fn demo() -> Result<(), ws::Error> {
    /// let config = ConnectConfig::default()
    ///     .header("Authorization", "Bearer abc123")
    ///     .header("Origin", "https://app.example")
    ///     .header("User-Agent", "my-app/1.0");
    /// let (ws, _response) = ws::connect_with("ws://127.0.0.1:9001/", &config).await?;
    /// # Ok(()) }
    /// ```
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets [`connect_timeout`](Self::connect_timeout).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets [`handshake_timeout`](Self::handshake_timeout).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Checks the headers as connecting would, without connecting. The
    /// errors are the caller's ([`HandshakeError::is_peer_fault`] is false).
    ///
    /// ```
    /// use rtwire::handshake::HandshakeError;
    /// use rtwire::ws::ConnectConfig;
    /// let config = ConnectConfig::default().header("Upgrade", "h2c");
    /// assert_eq!(config.validate(), Err(HandshakeError::ReservedHeader("Upgrade".into())));
    /// assert!(ConnectConfig::default().header("Cookie", "a=1").validate().is_ok());
    /// ```
    pub fn validate(&self) -> Result<(), HandshakeError> {
        self.headers
            .iter()
            .try_for_each(|(name, value)| handshake::check_request_header(name, value))
    }

    /// Checks `wss://` servers with `connector` (a private CA, the
    /// system's roots, a custom rustls configuration).
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn tls(mut self, connector: super::tls::TlsConnector) -> Self {
        self.tls = Some(connector);
        self
    }
}

/// [`connect`] with settings.
///
/// The headers are checked first (a refused one is
/// [`Error::Handshake`] with a caller's [`HandshakeError`], before any
/// connection is made); then the TCP connection must be made within
/// `connect_timeout` ([`Error::ConnectTimeout`]) and the handshake done
/// within `handshake_timeout` ([`Error::HandshakeTimeout`]). A server
/// that answers anything but 101 gives [`HandshakeError::Rejected`] with
/// its status, headers and body.
///
/// ```no_run
/// use rtwire::handshake::HandshakeError;
/// use rtwire::ws::{self, ConnectConfig, Error};
/// use std::time::Duration;
///
/// # async fn demo() {
/// let config = ConnectConfig::default()
///     .header("Authorization", "Bearer expired")
///     .connect_timeout(Duration::from_secs(3))
///     .handshake_timeout(Duration::from_secs(5));
/// match ws::connect_with("ws://127.0.0.1:9001/", &config).await {
///     Ok((ws, _response)) => { /* talk */ }
///     Err(Error::Handshake(HandshakeError::Rejected(refusal))) => {
///         eprintln!("refused: {} {}", refusal.status, refusal.body_text());
///     }
///     Err(e) => eprintln!("failed: {e}"),
/// }
/// # }
/// ```
pub async fn connect_with(
    url: &str,
    config: &ConnectConfig,
) -> Result<(WebSocket<MaybeTlsStream<TcpStream>>, Response), Error> {
    config.validate()?;
    let url = WsUrl::parse(url)?;
    let connecting = TcpStream::connect((url.host.as_str(), url.port));
    let stream = match tokio::time::timeout(config.connect_timeout, connecting).await {
        Ok(stream) => stream?,
        Err(_elapsed) => return Err(Error::ConnectTimeout),
    };
    // Frames are written whole; Nagle's algorithm would only delay them.
    stream.set_nodelay(true)?;
    // The TLS handshake shares the WebSocket handshake's deadline.
    let securing = tokio::time::timeout(config.handshake_timeout, secure(stream, &url, config));
    let stream = securing.await.map_err(|_| Error::HandshakeTimeout)??;
    client_handshake(stream, &url, config).await
}

/// Runs TLS over `stream` for a `wss://` URL.
#[cfg(feature = "tls")]
async fn secure(
    stream: TcpStream,
    url: &WsUrl,
    config: &ConnectConfig,
) -> Result<MaybeTlsStream<TcpStream>, Error> {
    if !url.secure {
        return Ok(MaybeTlsStream::Plain(stream));
    }
    let connector = match &config.tls {
        Some(connector) => connector.clone(),
        None => super::tls::TlsConnector::webpki_roots(),
    };
    connector
        .connect(&url.host, stream)
        .await
        .map_err(Error::Tls)
}

/// Without the `tls` feature, `wss://` cannot be honoured.
#[cfg(not(feature = "tls"))]
async fn secure(
    stream: TcpStream,
    url: &WsUrl,
    _config: &ConnectConfig,
) -> Result<MaybeTlsStream<TcpStream>, Error> {
    if url.secure {
        return Err(HandshakeError::TlsNotSupported.into());
    }
    Ok(MaybeTlsStream::Plain(stream))
}

/// The client's handshake over a stream the caller opened (e.g. TLS), with
/// the headers and `handshake_timeout` of `config` (its `connect_timeout`
/// is not used). The URL gives the request's target and `Host`.
///
/// Returns the socket, which keeps the subprotocol and the response
/// ([`WebSocket::protocol`], [`WebSocket::response`]), and the response.
pub async fn client_handshake<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    url: &WsUrl,
    config: &ConnectConfig,
) -> Result<(WebSocket<S>, Response), Error> {
    let offer = config.deflate.as_ref().map(DeflateConfig::offer);
    let mut handshake = ClientHandshake::new(url, &config.protocols, offer.as_deref());
    for (name, value) in &config.headers {
        handshake.add_header(name, value)?;
    }
    let deadline = Instant::now() + config.handshake_timeout;
    let exchange = async {
        stream.write_all(&handshake.request()).await?;
        stream.flush().await?;
        let mut parser = ResponseParser::new();
        let parse = |buf: &[u8], limits: &HeadLimits| parser.parse(buf, limits);
        match read_head(&mut stream, &config.head_limits, parse).await {
            Ok(found) => Ok(found),
            Err(ReadHeadError::Io(e)) => Err(Error::Io(e)),
            Err(ReadHeadError::Eof) => Err(Error::Io(std::io::ErrorKind::UnexpectedEof.into())),
            Err(ReadHeadError::Http(e)) => Err(e.into()),
        }
    };
    let (response, leftover) = match tokio::time::timeout_at(deadline, exchange).await {
        Ok(found) => found?,
        Err(_elapsed) => return Err(Error::HandshakeTimeout),
    };
    let accepted = match handshake.validate_response(&response) {
        Ok(accepted) => accepted,
        Err(HandshakeError::Rejected(head)) => {
            let rejected = read_rejection(&mut stream, head, &leftover, deadline).await;
            return Err(Error::Handshake(HandshakeError::Rejected(rejected)));
        }
        Err(e) => return Err(e.into()),
    };
    let mut conn = Connection::new(Role::Client, config.connection.clone());
    // validate_response refused extensions we did not offer.
    if let (Some(answer), Some(deflate)) = (&accepted.extensions, &config.deflate) {
        // RFC 7692 §7.1: a client fails the connection on an answer that
        // breaks the rules; dropping the stream closes it.
        conn = conn.with_deflate(deflate.check_response(answer)?);
    }
    let mut ws = WebSocket::from_connection(stream, conn, &leftover);
    ws.set_handshake(HandshakeInfo {
        protocol: accepted.protocol,
        request: None,
        response: Some(response.clone()),
    });
    Ok((ws, response))
}

/// Reads a refusal's body, as much as [`RejectionReader`] keeps, until the
/// handshake's deadline. The refusal is the news: a read error or the
/// deadline ends the body, marked truncated, rather than replacing it.
async fn read_rejection<S: AsyncRead + Unpin>(
    stream: &mut S,
    head: Box<RejectedResponse>,
    leftover: &[u8],
    deadline: Instant,
) -> Box<RejectedResponse> {
    let mut reader = RejectionReader::new(head);
    reader.push(leftover);
    let mut buf = vec![0; 8 * 1024];
    while !reader.is_done() {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) => reader.eof(),
            Ok(Ok(n)) => reader.push(&buf[..n]),
            Ok(Err(_)) | Err(_) => break,
        }
    }
    reader.finish()
}

enum ReadHeadError {
    Io(std::io::Error),
    Eof,
    Http(crate::http::HttpError),
}

/// Reads until `parse` finds a whole head; returns it and the bytes after
/// it. `parse` is a resumable parser's: each read is parsed once, so a
/// head trickled in a byte at a time costs what it costs in one piece.
async fn read_head<S, T>(
    stream: &mut S,
    limits: &HeadLimits,
    mut parse: impl FnMut(&[u8], &HeadLimits) -> Result<Parse<T>, crate::http::HttpError>,
) -> Result<(T, BytesMut), ReadHeadError>
where
    S: AsyncRead + Unpin,
{
    let mut buf = BytesMut::with_capacity(1024);
    loop {
        match parse(&buf, limits).map_err(ReadHeadError::Http)? {
            Parse::Complete(head, len) => {
                let _ = buf.split_to(len);
                return Ok((head, buf));
            }
            Parse::Partial => {}
        }
        if buf.capacity() == buf.len() {
            buf.reserve(1024);
        }
        let n = stream.read_buf(&mut buf).await.map_err(ReadHeadError::Io)?;
        if n == 0 {
            return Err(ReadHeadError::Eof);
        }
    }
}
