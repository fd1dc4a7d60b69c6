//! Close codes and the close frame's payload (RFC 6455 §5.5.1, §7.4).

use std::fmt;

/// A close status code (RFC 6455 §7.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: the purpose of the connection has been fulfilled.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// 1001: the endpoint is going away (server shutdown, page navigation).
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// 1002: the peer broke the protocol.
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    /// 1003: a data type the endpoint cannot accept.
    pub const UNSUPPORTED_DATA: CloseCode = CloseCode(1003);
    /// 1005: no code was present. Reported locally, never sent.
    pub const NO_STATUS: CloseCode = CloseCode(1005);
    /// 1006: the connection ended without a close frame. Reported locally, never sent.
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    /// 1007: a message's data did not match its type (e.g. invalid UTF-8 in text).
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    /// 1008: a message violated the endpoint's policy.
    pub const POLICY_VIOLATION: CloseCode = CloseCode(1008);
    /// 1009: a message was too big to process.
    pub const MESSAGE_TOO_BIG: CloseCode = CloseCode(1009);
    /// 1010: the client expected the server to negotiate an extension.
    pub const MANDATORY_EXTENSION: CloseCode = CloseCode(1010);
    /// 1011: the server met an unexpected condition.
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);
    /// 1015: the TLS handshake failed. Reported locally, never sent.
    pub const TLS_HANDSHAKE: CloseCode = CloseCode(1015);

    /// Whether the code may appear in a close frame on the wire.
    ///
    /// RFC 6455 §7.4.1 defines 1000-1003 and 1007-1011 for use on the wire and
    /// forbids 1005, 1006 and 1015 there ("MUST NOT be set as a status code in
    /// a Close control frame by an endpoint"); §7.4.2 reserves 0-999 and the
    /// unassigned rest of 1000-2999. 1012-1014 have since been registered with
    /// IANA (service restart, try again later, bad gateway) and are accepted.
    /// 3000-4999 belong to libraries, frameworks and applications.
    ///
    /// ```
    /// use rtwire::proto::close::CloseCode;
    /// assert!(CloseCode(1000).is_allowed_on_wire());
    /// assert!(CloseCode(4999).is_allowed_on_wire());
    /// assert!(!CloseCode(1005).is_allowed_on_wire());
    /// assert!(!CloseCode(2999).is_allowed_on_wire());
    /// ```
    pub fn is_allowed_on_wire(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The most bytes of reason that fit in a close frame: 125 minus the 2-byte code.
pub const MAX_REASON_LEN: usize = 123;

/// A close frame's code and reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseFrame {
    /// The status code.
    pub code: CloseCode,
    /// The reason, at most [`MAX_REASON_LEN`] bytes of UTF-8.
    pub reason: String,
}

/// Why a received close payload is invalid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClosePayloadError {
    /// A payload of exactly one byte: §5.5.1 says a body starts with a 2-byte code.
    OneByte,
    /// A code that may not appear on the wire (§7.4).
    InvalidCode(u16),
    /// A reason that is not UTF-8 (§5.5.1: "the data ... MUST be UTF-8").
    InvalidReason,
}

impl fmt::Display for ClosePayloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClosePayloadError::OneByte => f.write_str("close payload of one byte"),
            ClosePayloadError::InvalidCode(c) => write!(f, "invalid close code {c}"),
            ClosePayloadError::InvalidReason => f.write_str("close reason is not UTF-8"),
        }
    }
}

impl std::error::Error for ClosePayloadError {}

impl CloseFrame {
    /// Parses a received close payload; `Ok(None)` for an empty payload (no code).
    ///
    /// ```
    /// use rtwire::proto::close::{CloseCode, CloseFrame, ClosePayloadError};
    /// let frame = CloseFrame::parse(b"\x03\xe8bye").unwrap().unwrap();
    /// assert_eq!((frame.code, frame.reason.as_str()), (CloseCode::NORMAL, "bye"));
    /// assert_eq!(CloseFrame::parse(b""), Ok(None));
    /// assert_eq!(CloseFrame::parse(b"\x03"), Err(ClosePayloadError::OneByte));
    /// ```
    pub fn parse(payload: &[u8]) -> Result<Option<CloseFrame>, ClosePayloadError> {
        match payload {
            [] => Ok(None),
            [_] => Err(ClosePayloadError::OneByte),
            [hi, lo, reason @ ..] => {
                let code = CloseCode(u16::from_be_bytes([*hi, *lo]));
                if !code.is_allowed_on_wire() {
                    return Err(ClosePayloadError::InvalidCode(code.0));
                }
                let reason =
                    std::str::from_utf8(reason).map_err(|_| ClosePayloadError::InvalidReason)?;
                Ok(Some(CloseFrame {
                    code,
                    reason: reason.to_owned(),
                }))
            }
        }
    }

    /// The payload bytes of this close frame: the code, big-endian, then the reason.
    pub fn to_payload(&self) -> Vec<u8> {
        encode_payload(self.code, &self.reason)
    }
}

/// A close frame's payload: the code, big-endian, then the reason.
pub fn encode_payload(code: CloseCode, reason: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + reason.len());
    out.extend_from_slice(&code.0.to_be_bytes());
    out.extend_from_slice(reason.as_bytes());
    out
}

/// The longest prefix of `reason` that fits a close frame
/// ([`MAX_REASON_LEN`] bytes), cut on a char boundary.
///
/// ```
/// use rtwire::proto::close::truncate_reason;
/// assert_eq!(truncate_reason("short"), "short");
/// assert_eq!(truncate_reason(&"é".repeat(100)).len(), 122);
/// ```
pub fn truncate_reason(reason: &str) -> &str {
    let mut end = reason.len().min(MAX_REASON_LEN);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_follows_the_rules() {
        for code in 0..=u16::MAX {
            let allowed = CloseCode(code).is_allowed_on_wire();
            let expected = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
            assert_eq!(allowed, expected, "{code}");
        }
        for never in [
            0u16, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ] {
            let payload = never.to_be_bytes();
            assert_eq!(
                CloseFrame::parse(&payload),
                Err(ClosePayloadError::InvalidCode(never))
            );
        }
    }

    #[test]
    fn reason_must_be_utf8() {
        assert_eq!(
            CloseFrame::parse(&[0x03, 0xe8, 0xce, 0xba, 0xe1, 0xbd]),
            Err(ClosePayloadError::InvalidReason)
        );
    }

    #[test]
    fn payload_round_trips() {
        let frame = CloseFrame {
            code: CloseCode(4000),
            reason: "κόσμε".into(),
        };
        assert_eq!(CloseFrame::parse(&frame.to_payload()), Ok(Some(frame)));
    }
}
