//! Frame headers (RFC 6455 §5.2): opcodes, the three length forms, decode and encode.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-------+-+-------------+-------------------------------+
//! |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
//! |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
//! |N|V|V|V|       |S|             |   (if payload len==126/127)   |
//! | |1|2|3|       |K|             |                               |
//! ```
//!
//! The decoder checks what a header alone can tell: reserved opcodes, the
//! length forms, and the control-frame rules of §5.5. Rules that depend on
//! the connection (masking by role, RSV bits by extension, fragmentation
//! order, size limits) are enforced in [`conn`](super::conn).

use std::fmt;

/// The most bytes a frame header can take: 2 + 8 (length) + 4 (mask).
pub const MAX_HEADER_LEN: usize = 14;

/// A frame's opcode (RFC 6455 §5.2, §11.8).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpCode {
    /// `0x0`: continues a fragmented data message.
    Continuation,
    /// `0x1`: the first frame of a text message.
    Text,
    /// `0x2`: the first frame of a binary message.
    Binary,
    /// `0x8`: starts or answers the closing handshake.
    Close,
    /// `0x9`: asks for a pong.
    Ping,
    /// `0xA`: answers a ping, or a unidirectional heartbeat.
    Pong,
}

impl OpCode {
    /// The opcode for a 4-bit value, or `None` for the reserved values 3-7 and 0xB-0xF.
    pub fn from_u8(value: u8) -> Option<OpCode> {
        Some(match value {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            _ => return None,
        })
    }

    /// The 4-bit wire value.
    pub fn as_u8(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xA,
        }
    }

    /// Whether this is a control opcode (close, ping, pong): RFC 6455 §5.5.
    pub fn is_control(self) -> bool {
        self.as_u8() & 0x8 != 0
    }
}

/// The RSV1 bit, used by permessage-deflate (RFC 7692).
pub const RSV1: u8 = 0b100;
/// The RSV2 bit.
pub const RSV2: u8 = 0b010;
/// The RSV3 bit.
pub const RSV3: u8 = 0b001;

/// A decoded or to-be-encoded frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// FIN: this is the last frame of its message.
    pub fin: bool,
    /// The three RSV bits, RSV1 as `0b100`.
    pub rsv: u8,
    /// The opcode.
    pub opcode: OpCode,
    /// The masking key, if the MASK bit is set.
    pub mask: Option<[u8; 4]>,
    /// The payload length in bytes.
    pub payload_len: u64,
}

/// Why a header could not be decoded. Every variant is the peer's fault and
/// fails the connection with close code 1002 (protocol error).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// An opcode reserved for future use (3-7, 0xB-0xF).
    ReservedOpcode(u8),
    /// The 64-bit length form with its most significant bit set.
    LengthTopBitSet,
    /// A length written in a longer form than needed.
    NonMinimalLength,
    /// A control frame with more than 125 bytes of payload.
    ControlFrameTooLong,
    /// A control frame without FIN.
    FragmentedControlFrame,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::ReservedOpcode(op) => write!(f, "reserved opcode {op:#x}"),
            FrameError::LengthTopBitSet => f.write_str("64-bit length with the top bit set"),
            FrameError::NonMinimalLength => f.write_str("length not in its minimal form"),
            FrameError::ControlFrameTooLong => f.write_str("control frame longer than 125 bytes"),
            FrameError::FragmentedControlFrame => f.write_str("fragmented control frame"),
        }
    }
}

impl std::error::Error for FrameError {}

impl FrameHeader {
    /// Decodes a header from the start of `buf`.
    ///
    /// Returns `Ok(None)` when `buf` holds only part of a header (read more
    /// and call again), or the header and its length in bytes. Never panics.
    ///
    /// ```
    /// use rtwire::proto::frame::{FrameHeader, OpCode};
    /// // RFC 6455 §5.7: a single-frame unmasked text message "Hello".
    /// let bytes = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
    /// let (header, len) = FrameHeader::decode(&bytes).unwrap().unwrap();
    /// assert_eq!((header.opcode, header.fin, header.payload_len, len), (OpCode::Text, true, 5, 2));
    /// assert_eq!(FrameHeader::decode(&bytes[..1]), Ok(None));
    /// ```
    pub fn decode(buf: &[u8]) -> Result<Option<(FrameHeader, usize)>, FrameError> {
        let [b0, b1, ..] = *buf else {
            return Ok(None);
        };
        let fin = b0 & 0x80 != 0;
        let rsv = (b0 >> 4) & 0x7;
        let opcode = OpCode::from_u8(b0 & 0x0f).ok_or(FrameError::ReservedOpcode(b0 & 0x0f))?;
        let masked = b1 & 0x80 != 0;
        let short_len = b1 & 0x7f;
        if opcode.is_control() {
            // RFC 6455 §5.5: "All control frames MUST have a payload length of
            // 125 bytes or less and MUST NOT be fragmented."
            if short_len > 125 {
                return Err(FrameError::ControlFrameTooLong);
            }
            if !fin {
                return Err(FrameError::FragmentedControlFrame);
            }
        }
        let (payload_len, mut pos) = match short_len {
            126 => {
                let Some(ext) = buf.get(2..4) else {
                    return Ok(None);
                };
                let len = u16::from_be_bytes([ext[0], ext[1]]) as u64;
                // RFC 6455 §5.2: "the minimal number of bytes MUST be used to encode the length"
                if len < 126 {
                    return Err(FrameError::NonMinimalLength);
                }
                (len, 4)
            }
            127 => {
                let Some(ext) = buf.get(2..10) else {
                    return Ok(None);
                };
                let mut be = [0u8; 8];
                be.copy_from_slice(ext);
                let len = u64::from_be_bytes(be);
                // RFC 6455 §5.2: "the most significant bit MUST be 0"
                if len >> 63 != 0 {
                    return Err(FrameError::LengthTopBitSet);
                }
                if len <= u16::MAX as u64 {
                    return Err(FrameError::NonMinimalLength);
                }
                (len, 10)
            }
            n => (n as u64, 2),
        };
        let mask = if masked {
            let Some(key) = buf.get(pos..pos + 4) else {
                return Ok(None);
            };
            pos += 4;
            Some([key[0], key[1], key[2], key[3]])
        } else {
            None
        };
        let header = FrameHeader {
            fin,
            rsv,
            opcode,
            mask,
            payload_len,
        };
        Ok(Some((header, pos)))
    }

    /// Encodes the header in its minimal form; returns the bytes and how many are used.
    ///
    /// ```
    /// use rtwire::proto::frame::{FrameHeader, OpCode};
    /// let header = FrameHeader { fin: true, rsv: 0, opcode: OpCode::Binary, mask: None, payload_len: 256 };
    /// let (bytes, len) = header.encode();
    /// assert_eq!(&bytes[..len], &[0x82, 126, 0x01, 0x00]);
    /// ```
    pub fn encode(&self) -> ([u8; MAX_HEADER_LEN], usize) {
        let mut out = [0u8; MAX_HEADER_LEN];
        out[0] = (u8::from(self.fin) << 7) | ((self.rsv & 0x7) << 4) | self.opcode.as_u8();
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        let mut pos = 2;
        if self.payload_len < 126 {
            out[1] = mask_bit | self.payload_len as u8;
        } else if self.payload_len <= u16::MAX as u64 {
            out[1] = mask_bit | 126;
            out[2..4].copy_from_slice(&(self.payload_len as u16).to_be_bytes());
            pos = 4;
        } else {
            out[1] = mask_bit | 127;
            out[2..10].copy_from_slice(&self.payload_len.to_be_bytes());
            pos = 10;
        }
        if let Some(key) = self.mask {
            out[pos..pos + 4].copy_from_slice(&key);
            pos += 4;
        }
        (out, pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(opcode: OpCode, len: u64, mask: Option<[u8; 4]>) -> FrameHeader {
        FrameHeader {
            fin: true,
            rsv: 0,
            opcode,
            mask,
            payload_len: len,
        }
    }

    #[test]
    fn each_length_form_round_trips_at_its_edges() {
        let cases = [
            (0u64, 2usize),
            (125, 2),
            (126, 4),
            (65535, 4),
            (65536, 10),
            (1 << 40, 10),
            (i64::MAX as u64, 10),
        ];
        for (len, header_len) in cases {
            for mask in [None, Some([1, 2, 3, 4])] {
                let h = header(OpCode::Binary, len, mask);
                let (bytes, n) = h.encode();
                let expected = header_len + if mask.is_some() { 4 } else { 0 };
                assert_eq!(n, expected, "len {len}");
                assert_eq!(FrameHeader::decode(&bytes[..n]), Ok(Some((h, n))));
                for cut in 0..n {
                    assert_eq!(FrameHeader::decode(&bytes[..cut]), Ok(None), "cut {cut}");
                }
            }
        }
    }

    #[test]
    fn rfc_examples_decode() {
        // RFC 6455 §5.7, masked "Hello".
        let bytes = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let (h, n) = FrameHeader::decode(&bytes).unwrap().unwrap();
        assert_eq!(n, 6);
        assert_eq!(h.mask, Some([0x37, 0xfa, 0x21, 0x3d]));
        // 256 bytes binary message in a single unmasked frame.
        let (h, n) = FrameHeader::decode(&[0x82, 0x7E, 0x01, 0x00])
            .unwrap()
            .unwrap();
        assert_eq!((h.payload_len, n), (256, 4));
        // 64 KiB binary message.
        let bytes = [0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0];
        let (h, n) = FrameHeader::decode(&bytes).unwrap().unwrap();
        assert_eq!((h.payload_len, n), (65536, 10));
    }

    #[test]
    fn top_bit_of_64_bit_length_is_an_error() {
        let bytes = [0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            FrameHeader::decode(&bytes),
            Err(FrameError::LengthTopBitSet)
        );
    }

    #[test]
    fn non_minimal_lengths_are_errors() {
        assert_eq!(
            FrameHeader::decode(&[0x82, 126, 0, 125]),
            Err(FrameError::NonMinimalLength)
        );
        let bytes = [0x82, 127, 0, 0, 0, 0, 0, 0, 0xff, 0xff];
        assert_eq!(
            FrameHeader::decode(&bytes),
            Err(FrameError::NonMinimalLength)
        );
    }

    #[test]
    fn reserved_opcodes_are_errors() {
        for op in (3..=7).chain(0xB..=0xF) {
            assert_eq!(
                FrameHeader::decode(&[0x80 | op, 0]),
                Err(FrameError::ReservedOpcode(op))
            );
        }
    }

    #[test]
    fn control_frame_rules() {
        assert_eq!(
            FrameHeader::decode(&[0x89, 126, 0, 126]),
            Err(FrameError::ControlFrameTooLong)
        );
        assert_eq!(
            FrameHeader::decode(&[0x09, 0]),
            Err(FrameError::FragmentedControlFrame)
        );
        assert!(FrameHeader::decode(&[0x89, 125]).unwrap().is_some());
    }

    #[test]
    fn rsv_bits_and_fin_are_carried() {
        let h = FrameHeader {
            fin: false,
            rsv: RSV1 | RSV3,
            opcode: OpCode::Text,
            mask: None,
            payload_len: 3,
        };
        let (bytes, n) = h.encode();
        assert_eq!(bytes[0], 0b0101_0001);
        assert_eq!(FrameHeader::decode(&bytes[..n]), Ok(Some((h, n))));
    }
}
