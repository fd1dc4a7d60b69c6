//! The front-end's error type.

use std::{fmt, io};

use crate::handshake::HandshakeError;
use crate::http::HttpError;
use crate::proto::deflate::NegotiationError;
use crate::proto::{ProtocolError, SendError};

/// Everything that can go wrong on a [`WebSocket`](super::WebSocket).
///
/// [`is_peer_fault`](Error::is_peer_fault) tells the peer's misbehaviour
/// (a protocol violation, a bad handshake) from the caller's mistakes and
/// from the transport's failures.
///
/// How a connection that ends without the closing handshake is reported:
///
/// | what happened | error |
/// |---|---|
/// | the peer closed the transport cleanly (TCP FIN) with no close frame | [`Error::Protocol`]`(`[`ProtocolError::AbnormalClosure`]`)`, code 1006 |
/// | the connection was reset, or written to after the peer left | [`Error::Io`] with [`io::ErrorKind::ConnectionReset`], [`BrokenPipe`](io::ErrorKind::BrokenPipe) or [`ConnectionAborted`](io::ErrorKind::ConnectionAborted) |
/// | the operating system gave up on the connection | [`Error::Io`] with [`io::ErrorKind::TimedOut`] |
/// | the peer read nothing for the write timeout | [`Error::WriteTimeout`] |
/// | the peer did not answer a keepalive ping | [`Error::Protocol`]`(`[`ProtocolError::PeerUnresponsive`]`)` |
///
/// [`is_disconnect`](Error::is_disconnect) is true for the first two rows.
///
/// ```
/// use std::io;
/// use rtwire::proto::ProtocolError;
/// use rtwire::ws::Error;
/// let reset = Error::Io(io::ErrorKind::ConnectionReset.into());
/// assert_eq!(reset.to_string(), "connection reset by the peer");
/// assert!(reset.is_disconnect() && !reset.is_peer_fault());
/// let gone = Error::Protocol(ProtocolError::AbnormalClosure);
/// assert_eq!(gone.to_string(), "the peer closed the connection without a close frame (1006 abnormal closure)");
/// assert!(gone.is_disconnect() && gone.is_peer_fault());
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The transport failed: see [`io::Error::kind`] (a reset, a broken
    /// pipe, a timeout of the operating system's).
    Io(io::Error),
    /// The peer broke RFC 6455; the connection has been failed with
    /// [`ProtocolError::close_code`].
    Protocol(ProtocolError),
    /// The caller asked for something the connection cannot do; nothing was sent.
    Send(SendError),
    /// The opening handshake failed.
    Handshake(HandshakeError),
    /// The opening handshake did not finish in time.
    HandshakeTimeout,
    /// The TCP connection (name resolution included) was not made within
    /// [`ConnectConfig::connect_timeout`](super::ConnectConfig::connect_timeout):
    /// the network's failure or an absent host, not a misbehaving peer.
    ConnectTimeout,
    /// Server: the application refused the upgrade with this status
    /// ([`accept_with_callback`](super::accept_with_callback)); the refusal
    /// was sent and the stream shut down. Its decision, not a fault.
    Refused(u16),
    /// The TLS handshake failed: the server's certificate is not trusted
    /// or does not name the host, the peer does not speak TLS, or no
    /// protocol version or cipher suite is shared. The cause is the
    /// [`io::Error`] rustls gave (its source is the `rustls::Error`).
    Tls(io::Error),
    /// The server's permessage-deflate answer breaks RFC 7692.
    Negotiation(NegotiationError),
    /// The peer accepted no bytes for the write timeout
    /// ([`WebSocket::set_write_timeout`](super::WebSocket::set_write_timeout)):
    /// drop the socket, the connection cannot make progress.
    WriteTimeout,
    /// Holding what this socket received or must send would take a shared
    /// [`MemoryBudget`](super::MemoryBudget) past its limit: the socket was
    /// closed with 1013 (try again later).
    MemoryBudget,
}

impl Error {
    /// Whether the remote end is to blame. A transport failure
    /// ([`Error::Io`]: a reset, a broken pipe) is not counted, as the network
    /// between may have caused it; a peer that closed the transport without
    /// a close frame is.
    pub fn is_peer_fault(&self) -> bool {
        match self {
            Error::Protocol(_)
            | Error::HandshakeTimeout
            | Error::Negotiation(_)
            | Error::WriteTimeout
            | Error::Tls(_) => true,
            Error::Handshake(e) => e.is_peer_fault(),
            Error::Io(_)
            | Error::Send(_)
            | Error::MemoryBudget
            | Error::ConnectTimeout
            | Error::Refused(_) => false,
        }
    }

    /// Whether the connection ended under the socket without a closing
    /// handshake: the peer closed the transport without a close frame, the
    /// connection was reset or aborted, or a write found the peer gone.
    /// Servers often log these apart from real errors.
    pub fn is_disconnect(&self) -> bool {
        match self {
            Error::Protocol(ProtocolError::AbnormalClosure) => true,
            Error::Io(e) => matches!(
                e.kind(),
                io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::BrokenPipe
            ),
            _ => false,
        }
    }
}

/// What a transport failure means for the connection, for the kinds that
/// say it; the rest are shown as the I/O error they are.
fn io_summary(kind: io::ErrorKind) -> Option<&'static str> {
    Some(match kind {
        io::ErrorKind::ConnectionReset => "connection reset by the peer",
        io::ErrorKind::ConnectionAborted => "connection aborted",
        io::ErrorKind::BrokenPipe => "broken pipe: the peer has gone",
        io::ErrorKind::TimedOut => "the transport timed out",
        _ => return None,
    })
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // The OS's wording stays available as the source.
            Error::Io(e) => match io_summary(e.kind()) {
                Some(summary) => f.write_str(summary),
                None => write!(f, "I/O error: {e}"),
            },
            // Neither of these is a malformed frame: say what happened.
            Error::Protocol(ProtocolError::AbnormalClosure) => f.write_str(
                "the peer closed the connection without a close frame (1006 abnormal closure)",
            ),
            Error::Protocol(ProtocolError::PeerUnresponsive) => f.write_str(
                "keepalive timed out: the peer did not answer a ping (closed with 1001)",
            ),
            Error::Protocol(e) => write!(f, "protocol error: {e}"),
            Error::Send(e) => write!(f, "cannot send: {e}"),
            Error::Handshake(e) => write!(f, "handshake failed: {e}"),
            Error::HandshakeTimeout => f.write_str("handshake timed out"),
            Error::ConnectTimeout => f.write_str("TCP connect timed out"),
            Error::Refused(status) => write!(f, "upgrade refused with status {status}"),
            Error::Tls(e) => write!(f, "TLS handshake failed: {e}"),
            Error::Negotiation(e) => write!(f, "extension negotiation failed: {e}"),
            Error::WriteTimeout => f.write_str("the peer stopped reading: write timed out"),
            Error::MemoryBudget => {
                f.write_str("the shared memory budget is spent: try again later")
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) | Error::Tls(e) => Some(e),
            Error::Protocol(e) => Some(e),
            Error::Send(e) => Some(e),
            Error::Handshake(e) => Some(e),
            Error::HandshakeTimeout
            | Error::ConnectTimeout
            | Error::Refused(_)
            | Error::WriteTimeout
            | Error::MemoryBudget => None,
            Error::Negotiation(e) => Some(e),
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

impl From<ProtocolError> for Error {
    fn from(e: ProtocolError) -> Self {
        Error::Protocol(e)
    }
}

impl From<SendError> for Error {
    fn from(e: SendError) -> Self {
        Error::Send(e)
    }
}

impl From<HandshakeError> for Error {
    fn from(e: HandshakeError) -> Self {
        Error::Handshake(e)
    }
}

impl From<HttpError> for Error {
    fn from(e: HttpError) -> Self {
        Error::Handshake(HandshakeError::from(e))
    }
}

impl From<NegotiationError> for Error {
    fn from(e: NegotiationError) -> Self {
        Error::Negotiation(e)
    }
}
