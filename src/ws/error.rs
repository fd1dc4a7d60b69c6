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
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The transport failed.
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
    /// Whether the remote end is to blame.
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
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "I/O error: {e}"),
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
