//! A reference receiver: the events a connection must report for the bytes
//! it has read so far, with or without permessage-deflate, computed from
//! scratch by re-reading the whole stream.
//!
//! It is written from RFC 6455, not from `rtwire::proto::conn`, and is
//! deliberately naive (it re-parses everything on every call). Where the
//! RFC leaves a choice, it follows rtwire's documented behaviour:
//!
//! - a header is judged as soon as the bytes that decide each rule are
//!   there (opcode and control-frame rules after 2 bytes, length form after
//!   the extended length, then RSV, masking, frame and message limits once
//!   the whole header including the masking key is there);
//! - text is failed as soon as the bytes seen so far cannot start valid
//!   UTF-8 (RFC 6455 §8.1, fail fast), even mid-frame;
//! - nothing after a close frame or a failure is read;
//! - with permessage-deflate (RFC 7692), RSV1 is allowed on the first frame
//!   of a data message only; a compressed message is inflated frame by
//!   frame when each frame is whole, its limit applies to the inflated
//!   size, and its text is checked after inflating. Where a frame is both
//!   over the limit and corrupt, which one a receiver finds first depends
//!   on how much it inflates per step, so either answer is accepted.

use rtwire::proto::close::{CloseCode, CloseFrame, ClosePayloadError};
use rtwire::proto::frame::FrameError;
use rtwire::proto::{Config, Event, Message, ProtocolError, Role, Utf8Bytes};

use crate::compress::Inflater;
use crate::wire::{code_allowed, opcode_defined, xor, BINARY, CLOSE, CONT, PING, PONG, TEXT};

/// Whether `bytes` can be the start of a valid UTF-8 string.
pub fn utf8_prefix_ok(bytes: &[u8]) -> bool {
    match std::str::from_utf8(bytes) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none(),
    }
}

fn be_u64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
}

fn message(text: bool, payload: Vec<u8>) -> Message {
    if text {
        match Utf8Bytes::try_from_bytes(payload.into()) {
            Ok(t) => Message::Text(t),
            Err(_) => unreachable!("checked by the caller"),
        }
    } else {
        Message::Binary(payload.into())
    }
}

/// The peer's compression, as agreed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerDeflate {
    /// The window the peer compresses with, in bits (8..=15).
    pub bits: u8,
    /// The peer resets its compressor after every message.
    pub no_context_takeover: bool,
}

/// What a receiver must report.
#[derive(Debug, Default, PartialEq)]
pub struct Reference {
    /// The events, in order.
    pub events: Vec<Event>,
    /// An equally right last event, where the RFC leaves the order open.
    pub or_last: Option<Event>,
}

impl Reference {
    /// Whether `events` are what the reference allows.
    pub fn allows(&self, events: &[Event]) -> bool {
        if events == self.events {
            return true;
        }
        let (Some(alternative), Some((last, rest)), Some((_, want))) =
            (&self.or_last, events.split_last(), self.events.split_last())
        else {
            return false;
        };
        rest == want && last == alternative
    }

    /// Whether `events` are what the reference allows so far, for a
    /// receiver that has not read all its input yet: a prefix of them.
    pub fn allows_prefix(&self, events: &[Event]) -> bool {
        self.events.starts_with(events) || self.allows(events)
    }
}

/// The events for `input` (every byte the connection was given while it
/// wanted input), followed by the transport's end if `eof`; `deflate` is
/// the peer's side of a negotiated permessage-deflate.
pub fn reference_events(
    role: Role,
    config: &Config,
    deflate: Option<PeerDeflate>,
    input: &[u8],
    eof: bool,
) -> Reference {
    let mut or_last = None;
    let events = events(role, config, deflate, input, eof, &mut or_last);
    Reference { events, or_last }
}

fn events(
    role: Role,
    config: &Config,
    deflate: Option<PeerDeflate>,
    input: &[u8],
    eof: bool,
    or_last: &mut Option<Event>,
) -> Vec<Event> {
    let mut inflater = deflate.map(|d| Inflater::new(d.bits.max(9), d.no_context_takeover));
    let mut events = Vec::new();
    let more = |events: &mut Vec<Event>| {
        if eof {
            events.push(Event::Failed(ProtocolError::AbnormalClosure));
        }
    };
    let fail = |events: &mut Vec<Event>, e: ProtocolError| events.push(Event::Failed(e));
    // The open fragmented message: text, compressed, and its (inflated)
    // bytes so far.
    let mut open: Option<(bool, bool, Vec<u8>)> = None;
    let mut pos = 0;
    loop {
        let b = &input[pos..];
        if b.len() < 2 {
            more(&mut events);
            return events;
        }
        let fin = b[0] & 0x80 != 0;
        let rsv = (b[0] >> 4) & 7;
        let op = b[0] & 0x0f;
        if !opcode_defined(op) {
            fail(&mut events, FrameError::ReservedOpcode(op).into());
            return events;
        }
        let control = op >= 8;
        let masked = b[1] & 0x80 != 0;
        let short = b[1] & 0x7f;
        if control && short > 125 {
            fail(&mut events, FrameError::ControlFrameTooLong.into());
            return events;
        }
        if control && !fin {
            fail(&mut events, FrameError::FragmentedControlFrame.into());
            return events;
        }
        let (len, mut hlen) = match short {
            126 => {
                if b.len() < 4 {
                    more(&mut events);
                    return events;
                }
                let len = be_u64(&b[2..4]);
                if len < 126 {
                    fail(&mut events, FrameError::NonMinimalLength.into());
                    return events;
                }
                (len, 4)
            }
            127 => {
                if b.len() < 10 {
                    more(&mut events);
                    return events;
                }
                let len = be_u64(&b[2..10]);
                if len >= 1 << 63 {
                    fail(&mut events, FrameError::LengthTopBitSet.into());
                    return events;
                }
                if len < 65536 {
                    fail(&mut events, FrameError::NonMinimalLength.into());
                    return events;
                }
                (len, 10)
            }
            n => (u64::from(n), 2),
        };
        let key = if masked {
            if b.len() < hlen + 4 {
                more(&mut events);
                return events;
            }
            let k = [b[hlen], b[hlen + 1], b[hlen + 2], b[hlen + 3]];
            hlen += 4;
            Some(k)
        } else {
            None
        };
        // The header is whole: the rules that depend on the connection.
        // RFC 7692 §6: RSV1 marks the first frame of a compressed message.
        let allowed = match op {
            TEXT | BINARY if deflate.is_some() => 0b100,
            _ => 0,
        };
        if rsv & !allowed != 0 {
            fail(&mut events, ProtocolError::ReservedBits(rsv));
            return events;
        }
        match (role, masked) {
            (Role::Server, false) => {
                fail(&mut events, ProtocolError::UnmaskedFrame);
                return events;
            }
            (Role::Client, true) => {
                fail(&mut events, ProtocolError::MaskedFrame);
                return events;
            }
            _ => {}
        }
        if len > config.max_frame_size as u64 {
            fail(
                &mut events,
                ProtocolError::FrameTooBig {
                    len,
                    limit: config.max_frame_size,
                },
            );
            return events;
        }
        let so_far = match (op, &open) {
            (CONT, None) => {
                fail(&mut events, ProtocolError::UnexpectedContinuation);
                return events;
            }
            (TEXT | BINARY, Some(_)) => {
                fail(&mut events, ProtocolError::MessageInterleaved);
                return events;
            }
            (CONT, Some((_, _, bytes))) => bytes.len() as u64,
            _ => 0,
        };
        let compressed = match op {
            TEXT | BINARY => rsv & 0b100 != 0,
            CONT => open.as_ref().is_some_and(|(_, c, _)| *c),
            _ => false,
        };
        // A compressed message's limit is on its inflated size, below.
        if !control && !compressed && so_far + len > config.max_message_size as u64 {
            fail(
                &mut events,
                ProtocolError::MessageTooBig {
                    limit: config.max_message_size,
                },
            );
            return events;
        }
        // The payload, as much of it as is here.
        let len = len as usize;
        let here = (b.len() - hlen).min(len);
        let mut payload = b[hlen..hlen + here].to_vec();
        if let Some(key) = key {
            xor(&mut payload, key);
        }
        let text = match op {
            TEXT => true,
            CONT => open.as_ref().is_some_and(|(t, _, _)| *t),
            _ => false,
        };
        if text && !compressed {
            let mut seen = match (op, &open) {
                (CONT, Some((_, _, bytes))) => bytes.clone(),
                _ => Vec::new(),
            };
            seen.extend_from_slice(&payload);
            if !utf8_prefix_ok(&seen) {
                fail(&mut events, ProtocolError::InvalidUtf8);
                return events;
            }
        }
        if here < len {
            more(&mut events);
            return events;
        }
        pos += hlen + len;
        match op {
            TEXT | BINARY | CONT => {
                let (text, compressed, mut bytes) = match op {
                    CONT => open.take().unwrap_or_default(),
                    _ => (op == TEXT, compressed, Vec::new()),
                };
                if compressed {
                    let Some(inflater) = inflater.as_mut() else {
                        unreachable!("RSV1 is refused without the extension");
                    };
                    let limit = config.max_message_size;
                    let result = inflater.frame(&payload, fin, &mut bytes, limit);
                    let too_big = ProtocolError::MessageTooBig { limit };
                    let error = match (result.corrupt, result.over_limit) {
                        (true, true) => {
                            *or_last = Some(Event::Failed(too_big));
                            Some(ProtocolError::BadCompression)
                        }
                        (true, false) => Some(ProtocolError::BadCompression),
                        (false, true) => Some(too_big),
                        (false, false) => None,
                    };
                    if let Some(error) = error {
                        fail(&mut events, error);
                        return events;
                    }
                    if text && !utf8_prefix_ok(&bytes) {
                        fail(&mut events, ProtocolError::InvalidUtf8);
                        return events;
                    }
                } else {
                    bytes.extend_from_slice(&payload);
                }
                if !fin {
                    open = Some((text, compressed, bytes));
                } else if text && std::str::from_utf8(&bytes).is_err() {
                    fail(&mut events, ProtocolError::InvalidUtf8);
                    return events;
                } else {
                    events.push(Event::Message(message(text, bytes)));
                }
            }
            PING => events.push(Event::Message(Message::Ping(payload.into()))),
            PONG => events.push(Event::Message(Message::Pong(payload.into()))),
            CLOSE => {
                let frame = match payload.as_slice() {
                    [] => None,
                    [_] => {
                        fail(
                            &mut events,
                            ProtocolError::InvalidClose(ClosePayloadError::OneByte),
                        );
                        return events;
                    }
                    [hi, lo, reason @ ..] => {
                        let code = u16::from_be_bytes([*hi, *lo]);
                        if !code_allowed(code) {
                            fail(
                                &mut events,
                                ProtocolError::InvalidClose(ClosePayloadError::InvalidCode(code)),
                            );
                            return events;
                        }
                        let Ok(reason) = std::str::from_utf8(reason) else {
                            fail(
                                &mut events,
                                ProtocolError::InvalidClose(ClosePayloadError::InvalidReason),
                            );
                            return events;
                        };
                        Some(CloseFrame {
                            code: CloseCode(code),
                            reason: reason.to_owned(),
                        })
                    }
                };
                events.push(Event::Message(Message::Close(frame)));
                return events;
            }
            _ => unreachable!("opcode checked above"),
        }
    }
}
