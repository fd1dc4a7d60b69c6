//! Messages as the application sees them.

use bytes::Bytes;
use std::fmt;

use super::close::CloseFrame;

/// Bytes that are known to be valid UTF-8: the payload of a text message.
///
/// Cloning is cheap (the bytes are shared). [`as_str`](Self::as_str)
/// re-checks the bytes with `std::str::from_utf8`, which cannot fail here; it
/// keeps the crate free of `unsafe` at the cost of one fast pass.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Utf8Bytes(Bytes);

impl Utf8Bytes {
    /// Wraps bytes, or gives them back if they are not UTF-8.
    pub fn try_from_bytes(bytes: Bytes) -> Result<Utf8Bytes, Bytes> {
        match std::str::from_utf8(&bytes) {
            Ok(_) => Ok(Utf8Bytes(bytes)),
            Err(_) => Err(bytes),
        }
    }

    /// Wraps bytes the caller has already validated. Crate-internal: the
    /// connection validates text incrementally as it arrives.
    pub(crate) fn from_validated(bytes: Bytes) -> Utf8Bytes {
        debug_assert!(std::str::from_utf8(&bytes).is_ok());
        Utf8Bytes(bytes)
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // Every constructor checks the bytes, so this never falls back.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The underlying bytes.
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    /// Unwraps the bytes.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the text is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Utf8Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Utf8Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<String> for Utf8Bytes {
    fn from(s: String) -> Self {
        Utf8Bytes(Bytes::from(s))
    }
}

impl From<&'static str> for Utf8Bytes {
    fn from(s: &'static str) -> Self {
        Utf8Bytes(Bytes::from_static(s.as_bytes()))
    }
}

impl PartialEq<str> for Utf8Bytes {
    fn eq(&self, other: &str) -> bool {
        self.0 == other.as_bytes()
    }
}

impl PartialEq<&str> for Utf8Bytes {
    fn eq(&self, other: &&str) -> bool {
        self.0 == other.as_bytes()
    }
}

/// A WebSocket message: a whole data message, or a control frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A text message (UTF-8, validated on receipt).
    Text(Utf8Bytes),
    /// A binary message.
    Binary(Bytes),
    /// A ping. Received pings are answered automatically.
    Ping(Bytes),
    /// A pong.
    Pong(Bytes),
    /// A close frame, with its code and reason if it had one.
    Close(Option<CloseFrame>),
}

/// Making messages, and asking what kind a message is.
///
/// ```
/// use rtwire::proto::Message;
/// let text = Message::from("hello");
/// assert!(text.is_text() && text.is_data());
/// let binary = Message::from(vec![1u8, 2, 3]);
/// assert!(binary.is_binary() && !binary.is_text());
/// assert!(Message::Ping("p".into()).is_ping());
/// assert!(Message::Pong("p".into()).is_pong());
/// assert!(Message::Close(None).is_close());
/// ```
impl Message {
    /// A text message.
    pub fn text(text: impl Into<String>) -> Message {
        Message::Text(Utf8Bytes::from(text.into()))
    }

    /// A binary message.
    pub fn binary(data: impl Into<Bytes>) -> Message {
        Message::Binary(data.into())
    }

    /// Whether this is a text or binary message.
    pub fn is_data(&self) -> bool {
        matches!(self, Message::Text(_) | Message::Binary(_))
    }

    /// Whether this is a text message.
    pub fn is_text(&self) -> bool {
        matches!(self, Message::Text(_))
    }

    /// Whether this is a binary message.
    pub fn is_binary(&self) -> bool {
        matches!(self, Message::Binary(_))
    }

    /// Whether this is a ping.
    pub fn is_ping(&self) -> bool {
        matches!(self, Message::Ping(_))
    }

    /// Whether this is a pong.
    pub fn is_pong(&self) -> bool {
        matches!(self, Message::Pong(_))
    }

    /// Whether this is a close frame.
    pub fn is_close(&self) -> bool {
        matches!(self, Message::Close(_))
    }
}

/// The payload, whatever the kind. For a close frame that is its reason
/// (empty without one); the code is in its [`CloseFrame`].
///
/// ```
/// use rtwire::proto::close::{CloseCode, CloseFrame};
/// use rtwire::proto::Message;
/// let text = Message::text("κόσμε");
/// assert_eq!(text.len(), 10); // bytes, not chars
/// assert_eq!(text.to_text(), Some("κόσμε"));
/// assert_eq!(text.as_bytes(), "κόσμε".as_bytes());
///
/// let binary = Message::binary(&b"\xff\x00"[..]);
/// assert_eq!(binary.to_text(), None, "only a text message is text");
/// let binary = binary.into_text().unwrap_err(); // given back as it was
/// assert_eq!(binary.into_data(), &b"\xff\x00"[..]);
///
/// let close = Message::Close(Some(CloseFrame { code: CloseCode::NORMAL, reason: "bye".into() }));
/// assert_eq!(close.as_bytes(), b"bye");
/// assert!(Message::Close(None).is_empty());
/// ```
impl Message {
    /// The payload's length in bytes; see [`as_bytes`](Self::as_bytes).
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The payload's bytes: the text's UTF-8, the data of a binary message,
    /// ping or pong, the reason of a close frame.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Message::Text(text) => text.as_bytes(),
            Message::Binary(data) | Message::Ping(data) | Message::Pong(data) => data,
            Message::Close(frame) => frame.as_ref().map_or(&[], |f| f.reason.as_bytes()),
        }
    }

    /// The text of a text message; `None` for any other kind (a binary
    /// message is not taken for text even when its bytes are UTF-8).
    pub fn to_text(&self) -> Option<&str> {
        match self {
            Message::Text(text) => Some(text.as_str()),
            _ => None,
        }
    }

    /// The text of a text message, without a copy; any other message is
    /// given back unchanged as the error.
    pub fn into_text(self) -> Result<Utf8Bytes, Message> {
        match self {
            Message::Text(text) => Ok(text),
            other => Err(other),
        }
    }

    /// The payload as [`Bytes`], as [`as_bytes`](Self::as_bytes) describes
    /// it; without a copy except for a close frame's reason.
    pub fn into_data(self) -> Bytes {
        match self {
            Message::Text(text) => text.into_bytes(),
            Message::Binary(data) | Message::Ping(data) | Message::Pong(data) => data,
            Message::Close(frame) => frame.map_or_else(Bytes::new, |f| Bytes::from(f.reason)),
        }
    }
}

/// A text message.
impl From<&str> for Message {
    fn from(text: &str) -> Self {
        Message::text(text)
    }
}

/// A text message, without a copy.
impl From<String> for Message {
    fn from(text: String) -> Self {
        Message::text(text)
    }
}

/// A text message.
impl From<Utf8Bytes> for Message {
    fn from(text: Utf8Bytes) -> Self {
        Message::Text(text)
    }
}

/// A binary message.
impl From<&[u8]> for Message {
    fn from(data: &[u8]) -> Self {
        Message::Binary(Bytes::copy_from_slice(data))
    }
}

/// A binary message, without a copy.
impl From<Vec<u8>> for Message {
    fn from(data: Vec<u8>) -> Self {
        Message::Binary(Bytes::from(data))
    }
}

/// A binary message.
impl From<Bytes> for Message {
    fn from(data: Bytes) -> Self {
        Message::Binary(data)
    }
}
