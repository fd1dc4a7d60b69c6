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
    /// 1004: reserved by RFC 6455 §7.4.1, meaning to be defined. Never sent.
    pub const RESERVED: CloseCode = CloseCode(1004);
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
    /// 1012: the service is restarting (IANA registry); the client may reconnect.
    pub const SERVICE_RESTART: CloseCode = CloseCode(1012);
    /// 1013: the server is overloaded for now (IANA registry); try again later.
    pub const TRY_AGAIN_LATER: CloseCode = CloseCode(1013);
    /// 1014: a gateway or proxy got an invalid response from upstream (IANA registry).
    pub const BAD_GATEWAY: CloseCode = CloseCode(1014);
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

    /// The name RFC 6455 §7.4.1 or the IANA registry gives the code, if it
    /// has one: `"normal closure"` for 1000.
    ///
    /// ```
    /// use rtwire::proto::close::CloseCode;
    /// assert_eq!(CloseCode::NORMAL.name(), Some("normal closure"));
    /// assert_eq!(CloseCode(4000).name(), None);
    /// ```
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            1000 => "normal closure",
            1001 => "going away",
            1002 => "protocol error",
            1003 => "unsupported data",
            1004 => "reserved",
            1005 => "no status received",
            1006 => "abnormal closure",
            1007 => "invalid payload data",
            1008 => "policy violation",
            1009 => "message too big",
            1010 => "mandatory extension",
            1011 => "internal error",
            1012 => "service restart",
            1013 => "try again later",
            1014 => "bad gateway",
            1015 => "TLS handshake",
            _ => return None,
        })
    }
}

/// The number, then the name of a known code.
///
/// ```
/// use rtwire::proto::close::CloseCode;
/// assert_eq!(CloseCode::NORMAL.to_string(), "1000 (normal closure)");
/// assert_eq!(CloseCode(4001).to_string(), "4001");
/// ```
impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{} ({name})", self.0),
            None => write!(f, "{}", self.0),
        }
    }
}

/// Any number: whether it may be sent is [`CloseCode::is_allowed_on_wire`].
///
/// ```
/// use rtwire::proto::close::CloseCode;
/// assert_eq!(CloseCode::from(1001), CloseCode::GOING_AWAY);
/// assert_eq!(u16::from(CloseCode::GOING_AWAY), 1001);
/// ```
impl From<u16> for CloseCode {
    fn from(code: u16) -> Self {
        CloseCode(code)
    }
}

impl From<CloseCode> for u16 {
    fn from(code: CloseCode) -> Self {
        code.0
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
    fn every_code_with_a_constant_has_a_name() {
        for code in [
            CloseCode::NORMAL,
            CloseCode::GOING_AWAY,
            CloseCode::PROTOCOL_ERROR,
            CloseCode::UNSUPPORTED_DATA,
            CloseCode::RESERVED,
            CloseCode::NO_STATUS,
            CloseCode::ABNORMAL,
            CloseCode::INVALID_PAYLOAD,
            CloseCode::POLICY_VIOLATION,
            CloseCode::MESSAGE_TOO_BIG,
            CloseCode::MANDATORY_EXTENSION,
            CloseCode::INTERNAL_ERROR,
            CloseCode::SERVICE_RESTART,
            CloseCode::TRY_AGAIN_LATER,
            CloseCode::BAD_GATEWAY,
            CloseCode::TLS_HANDSHAKE,
        ] {
            let name = code
                .name()
                .unwrap_or_else(|| panic!("{} has no name", code.0));
            assert_eq!(code.to_string(), format!("{} ({name})", code.0));
        }
        assert_eq!(
            (999..=1016)
                .filter(|&c| CloseCode(c).name().is_some())
                .count(),
            16,
            "exactly 1000-1015 are named"
        );
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
