//! The two kinds of error of the WebSocket core: the peer's and the caller's.

use std::fmt;

use super::close::{CloseCode, ClosePayloadError};
use super::frame::FrameError;

/// The peer broke RFC 6455. The connection has failed (§7.1.7): a close frame
/// with [`close_code`](Self::close_code) has been queued, and no more data is
/// read.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A malformed frame header.
    Frame(FrameError),
    /// RSV bits set that no negotiated extension defines (§5.2).
    ReservedBits(u8),
    /// A server received an unmasked frame (§5.1).
    UnmaskedFrame,
    /// A client received a masked frame (§5.1).
    MaskedFrame,
    /// A continuation frame with no message open (§5.4).
    UnexpectedContinuation,
    /// A new text or binary frame while a fragmented message is open (§5.4).
    MessageInterleaved,
    /// Text that is not UTF-8 (§8.1), close code 1007.
    InvalidUtf8,
    /// A compressed message that does not inflate (RFC 7692), close code 1007.
    BadCompression,
    /// A close frame with an invalid payload (§5.5.1, §7.4).
    InvalidClose(ClosePayloadError),
    /// A frame larger than the configured limit, close code 1009.
    FrameTooBig {
        /// The frame's payload length.
        len: u64,
        /// The configured limit.
        limit: usize,
    },
    /// A message larger than the configured limit, close code 1009.
    MessageTooBig {
        /// The limit the message exceeded.
        limit: usize,
    },
    /// The transport ended without a close frame (§7.1.5: code 1006).
    AbnormalClosure,
    /// Keepalive found the peer silent past its deadline
    /// ([`Keepalive`](super::Keepalive)), close code 1001.
    PeerUnresponsive,
}

impl ProtocolError {
    /// The close code this failure is reported with.
    pub fn close_code(&self) -> CloseCode {
        match self {
            ProtocolError::InvalidUtf8 | ProtocolError::BadCompression => {
                CloseCode::INVALID_PAYLOAD
            }
            ProtocolError::InvalidClose(ClosePayloadError::InvalidReason) => {
                CloseCode::INVALID_PAYLOAD
            }
            ProtocolError::FrameTooBig { .. } | ProtocolError::MessageTooBig { .. } => {
                CloseCode::MESSAGE_TOO_BIG
            }
            ProtocolError::AbnormalClosure => CloseCode::ABNORMAL,
            ProtocolError::PeerUnresponsive => CloseCode::GOING_AWAY,
            _ => CloseCode::PROTOCOL_ERROR,
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::Frame(e) => e.fmt(f),
            ProtocolError::ReservedBits(bits) => write!(f, "reserved bits {bits:#05b} set"),
            ProtocolError::UnmaskedFrame => f.write_str("client frame not masked"),
            ProtocolError::MaskedFrame => f.write_str("server frame masked"),
            ProtocolError::UnexpectedContinuation => {
                f.write_str("continuation with no message open")
            }
            ProtocolError::MessageInterleaved => {
                f.write_str("new message before the last one ended")
            }
            ProtocolError::InvalidUtf8 => f.write_str("invalid UTF-8 in text"),
            ProtocolError::BadCompression => f.write_str("compressed message does not inflate"),
            ProtocolError::InvalidClose(e) => e.fmt(f),
            ProtocolError::FrameTooBig { len, limit } => {
                write!(f, "frame of {len} bytes exceeds the limit of {limit}")
            }
            ProtocolError::MessageTooBig { limit } => {
                write!(f, "message exceeds the limit of {limit} bytes")
            }
            ProtocolError::AbnormalClosure => f.write_str("connection ended without a close frame"),
            ProtocolError::PeerUnresponsive => f.write_str("no answer to keepalive ping"),
        }
    }
}

impl std::error::Error for ProtocolError {}

impl From<FrameError> for ProtocolError {
    fn from(e: FrameError) -> Self {
        ProtocolError::Frame(e)
    }
}

/// The caller asked for something the connection cannot do. Nothing was sent.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// A close frame has already been sent: no more data or pings (§5.5.1).
    Closed,
    /// A control frame's payload over 125 bytes (§5.5).
    ControlTooLong(usize),
    /// A close code that may not be sent (§7.4).
    InvalidCloseCode(u16),
    /// A close reason over 123 bytes.
    ReasonTooLong(usize),
    /// [`Message::Close`](super::Message::Close) passed to `send`: use `close`.
    UseCloseMethod,
    /// At least [`Config::max_write_buffer`](super::Config::max_write_buffer)
    /// bytes already wait to be written: write them first.
    WriteBufferFull {
        /// The configured limit.
        limit: usize,
    },
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Closed => f.write_str("the connection is closing or closed"),
            SendError::ControlTooLong(n) => write!(f, "control payload of {n} bytes exceeds 125"),
            SendError::InvalidCloseCode(c) => write!(f, "close code {c} may not be sent"),
            SendError::ReasonTooLong(n) => write!(f, "close reason of {n} bytes exceeds 123"),
            SendError::UseCloseMethod => f.write_str("send a close frame with close()"),
            SendError::WriteBufferFull { limit } => {
                write!(f, "{limit} bytes or more wait to be written")
            }
        }
    }
}

impl std::error::Error for SendError {}
