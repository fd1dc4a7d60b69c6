//! The opening handshake over a tokio stream: [`accept`] and [`connect`].

use bytes::BytesMut;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{Error, WebSocket};
use crate::handshake::{self, ClientHandshake, HandshakeError, ServerHook, ServerOptions, WsUrl};
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
}

impl Default for AcceptConfig {
    fn default() -> Self {
        AcceptConfig {
            connection: Config::default(),
            head_limits: HeadLimits::default(),
            handshake_timeout: Duration::from_secs(10),
            hook: Arc::new(ServerOptions::default()),
            deflate: None,
        }
    }
}

impl AcceptConfig {
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
}

impl std::fmt::Debug for AcceptConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcceptConfig")
            .field("connection", &self.connection)
            .field("head_limits", &self.head_limits)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("deflate", &self.deflate)
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
pub async fn accept_with<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    config: &AcceptConfig,
) -> Result<WebSocket<S>, Error> {
    let read = tokio::time::timeout(
        config.handshake_timeout,
        read_head(&mut stream, &config.head_limits, {
            let mut parser = RequestParser::new();
            move |buf: &[u8], limits: &HeadLimits| parser.parse(buf, limits)
        }),
    )
    .await;
    let (request, leftover) = match read {
        Err(_elapsed) => return Err(Error::HandshakeTimeout),
        Ok(Err(ReadHeadError::Io(e))) => return Err(Error::Io(e)),
        Ok(Err(ReadHeadError::Eof)) => {
            return Err(Error::Io(std::io::ErrorKind::UnexpectedEof.into()))
        }
        Ok(Err(ReadHeadError::Http(e))) => {
            return Err(reject(&mut stream, HandshakeError::from(e)).await)
        }
        Ok(Ok(found)) => found,
    };
    accept_request(stream, &request, &leftover, config).await
}

/// Answers an upgrade request that the caller has already read, e.g. an
/// HTTP server that routes `/ws` among other paths. `leftover` is whatever
/// was read past the request head.
///
/// A bad request gets its HTTP error status and the stream is shut down,
/// as in [`accept_with`].
pub async fn accept_request<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    request: &Request,
    leftover: &[u8],
    config: &AcceptConfig,
) -> Result<WebSocket<S>, Error> {
    // An offer that cannot be honoured is declined: no extension, no error.
    let deflate = config
        .deflate
        .as_ref()
        .and_then(|d| d.accept_offers(request.headers.get_all("sec-websocket-extensions")));
    let answer = deflate.as_ref().map(|(_, answer)| answer.as_str());
    match handshake::server_accept(request, config.hook.as_ref(), answer) {
        Ok(accepted) => {
            stream.write_all(&accepted.response).await?;
            stream.flush().await?;
            let mut conn = Connection::new(Role::Server, config.connection.clone());
            if let Some((agreed, _)) = deflate {
                conn = conn.with_deflate(agreed);
            }
            Ok(WebSocket::from_connection(stream, conn, leftover))
        }
        Err(e) => Err(reject(&mut stream, e).await),
    }
}

async fn reject<S: AsyncWrite + Unpin>(stream: &mut S, error: HandshakeError) -> Error {
    // Best effort: the client may be gone already.
    let _ = stream.write_all(&error.response()).await;
    let _ = stream.shutdown().await;
    Error::Handshake(error)
}

/// Opens a TCP connection to a `ws://` URL and performs the client's
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
pub async fn connect(url: &str) -> Result<(WebSocket<TcpStream>, Response), Error> {
    connect_with(url, &ConnectConfig::default()).await
}

/// How a client connects.
#[derive(Clone, Debug, Default)]
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
}

/// [`connect`] with settings.
pub async fn connect_with(
    url: &str,
    config: &ConnectConfig,
) -> Result<(WebSocket<TcpStream>, Response), Error> {
    let url = WsUrl::parse(url)?;
    let stream = TcpStream::connect((url.host.as_str(), url.port)).await?;
    // Frames are written whole; Nagle's algorithm would only delay them.
    stream.set_nodelay(true)?;
    client_handshake(stream, &url, config).await
}

/// The client's handshake over a stream the caller opened (e.g. TLS).
pub async fn client_handshake<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    url: &WsUrl,
    config: &ConnectConfig,
) -> Result<(WebSocket<S>, Response), Error> {
    let offer = config.deflate.as_ref().map(DeflateConfig::offer);
    let handshake = ClientHandshake::new(url, &config.protocols, offer.as_deref());
    stream.write_all(&handshake.request()).await?;
    stream.flush().await?;
    let mut parser = ResponseParser::new();
    let parse = |buf: &[u8], limits: &HeadLimits| parser.parse(buf, limits);
    let (response, leftover) = match read_head(&mut stream, &config.head_limits, parse).await {
        Ok(found) => found,
        Err(ReadHeadError::Io(e)) => return Err(Error::Io(e)),
        Err(ReadHeadError::Eof) => return Err(Error::Io(std::io::ErrorKind::UnexpectedEof.into())),
        Err(ReadHeadError::Http(e)) => return Err(e.into()),
    };
    let accepted = handshake.validate_response(&response)?;
    let mut conn = Connection::new(Role::Client, config.connection.clone());
    // validate_response refused extensions we did not offer.
    if let (Some(answer), Some(deflate)) = (&accepted.extensions, &config.deflate) {
        // RFC 7692 §7.1: a client fails the connection on an answer that
        // breaks the rules; dropping the stream closes it.
        conn = conn.with_deflate(deflate.check_response(answer)?);
    }
    Ok((
        WebSocket::from_connection(stream, conn, &leftover),
        response,
    ))
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
