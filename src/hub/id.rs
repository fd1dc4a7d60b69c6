//! Message ids, resume points and sender ids.
//!
//! Ids travel through the network (`since=` query parameters, the SSE
//! `Last-Event-ID` header), so parsing is strict, bounded and never panics.

use std::fmt;
use std::str::FromStr;

/// The id of a published message: the hub's epoch and the message's
/// sequence number in its channel.
///
/// Rendered as `{epoch:08x}-{seq}` (e.g. `0000002a-17`) and parsed back
/// from exactly that form. Sequence numbers start at 1; `seq` 0 is a valid
/// cursor meaning "before the first message".
///
/// ```
/// use rtwire::hub::MessageId;
///
/// let id = MessageId { epoch: 42, seq: 17 };
/// assert_eq!(id.to_string(), "0000002a-17");
/// assert_eq!("0000002a-17".parse::<MessageId>(), Ok(id));
/// assert!("17".parse::<MessageId>().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId {
    /// The hub's epoch: random per hub, so it changes when the server restarts.
    pub epoch: u32,
    /// The message's position in its channel, from 1.
    pub seq: u64,
}

impl MessageId {
    /// The longest text form: 8 hex digits, `-`, and the 20 digits of `u64::MAX`.
    pub const MAX_LEN: usize = 8 + 1 + 20;
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}-{}", self.epoch, self.seq)
    }
}

/// Why a string is not a [`MessageId`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseIdError {
    /// The string is empty.
    Empty,
    /// Longer than [`MessageId::MAX_LEN`]; rejected before looking further.
    TooLong,
    /// No `-` between epoch and sequence number.
    NoSeparator,
    /// The epoch is not exactly 8 lowercase hex digits.
    BadEpoch,
    /// The sequence number is not a canonical decimal `u64` (digits only,
    /// no sign, no leading zero, no overflow).
    BadSeq,
}

impl fmt::Display for ParseIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self {
            ParseIdError::Empty => "empty message id",
            ParseIdError::TooLong => "message id too long",
            ParseIdError::NoSeparator => "message id has no '-'",
            ParseIdError::BadEpoch => "message id epoch is not 8 lowercase hex digits",
            ParseIdError::BadSeq => "message id sequence is not a decimal u64",
        };
        f.write_str(what)
    }
}

impl std::error::Error for ParseIdError {}

impl FromStr for MessageId {
    type Err = ParseIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(ParseIdError::Empty);
        }
        // Checked first so hostile input costs nothing more than its length.
        if s.len() > Self::MAX_LEN {
            return Err(ParseIdError::TooLong);
        }
        let (epoch, seq) = s.split_once('-').ok_or(ParseIdError::NoSeparator)?;
        Ok(MessageId {
            epoch: parse_epoch(epoch)?,
            seq: parse_seq(seq)?,
        })
    }
}

/// Exactly 8 lowercase hex digits: the one form `Display` writes, so every
/// id has a single spelling.
fn parse_epoch(s: &str) -> Result<u32, ParseIdError> {
    let canonical = s.len() == 8 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !canonical {
        return Err(ParseIdError::BadEpoch);
    }
    u32::from_str_radix(s, 16).map_err(|_| ParseIdError::BadEpoch)
}

/// Decimal digits only (`u64::from_str` would also take a `+`), no leading zero.
fn parse_seq(s: &str) -> Result<u64, ParseIdError> {
    let digits = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let leading_zero = s.len() > 1 && s.starts_with('0');
    if !digits || leading_zero {
        return Err(ParseIdError::BadSeq);
    }
    s.parse().map_err(|_| ParseIdError::BadSeq)
}

/// Where a subscription or a poll starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Since {
    /// Only messages published from now on.
    #[default]
    Live,
    /// Everything the history still holds, then live messages. Never
    /// reported as a gap: it asks for whatever there is.
    Beginning,
    /// Messages newer than this id: the last one the client saw.
    After(MessageId),
}

/// How a requested starting point relates to what the channel holds.
/// Reported first and explicitly, so a client never loses messages silently.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resume {
    /// Every message after the starting point is delivered.
    Exact,
    /// Messages after the requested id were evicted from the history (or
    /// the channel was swept) and are lost to this client. Delivery starts
    /// at `first_available`, the oldest message still held (`None` if the
    /// history is empty).
    Gap {
        /// The oldest message still in the history.
        first_available: Option<MessageId>,
    },
    /// The id is from another epoch (the server restarted). The whole
    /// history of the current epoch is delivered, flagged with this.
    EpochChanged {
        /// The hub's current epoch.
        current: u32,
    },
    /// The id's sequence number is beyond the newest message: not an id
    /// this hub handed out. Treated as [`Since::Live`].
    Ahead,
}

/// Identifies a publisher (e.g. one WebSocket connection), so a subscriber
/// can skip its own messages. Made by [`Hub::new_sender_id`](super::Hub::new_sender_id).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SenderId(pub(crate) u64);

impl SenderId {
    /// The number behind the id, for logs.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for SenderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_extremes() {
        for id in [
            MessageId { epoch: 0, seq: 0 },
            MessageId {
                epoch: u32::MAX,
                seq: u64::MAX,
            },
            MessageId {
                epoch: 0xdead_beef,
                seq: 1,
            },
        ] {
            let text = id.to_string();
            assert!(text.len() <= MessageId::MAX_LEN);
            assert_eq!(text.parse(), Ok(id));
        }
    }

    #[test]
    fn rejects_non_canonical_forms() {
        use ParseIdError::*;
        let cases = [
            ("", Empty),
            ("00000001", NoSeparator),
            ("1-1", BadEpoch),
            ("0000000A-1", BadEpoch),
            ("+0000001-1", BadEpoch),
            ("00000001-", BadSeq),
            ("00000001-01", BadSeq),
            ("00000001-+1", BadSeq),
            ("00000001-1-1", BadSeq),
            ("00000001-18446744073709551616", BadSeq),
            ("00000001- 1", BadSeq),
            ("00000001-111111111111111111111", TooLong),
        ];
        for (text, error) in cases {
            assert_eq!(text.parse::<MessageId>(), Err(error), "{text:?}");
        }
    }

    #[test]
    fn never_panics_on_multibyte_text() {
        for text in [
            "é",
            "0000000é-1",
            "00000001-é",
            "ééééééééé-1",
            "\u{0}-\u{0}",
        ] {
            assert!(text.parse::<MessageId>().is_err());
        }
    }
}
