//! The `deflate` target: a connection with permessage-deflate negotiated
//! (any window bits, either context-takeover setting, either role) fed
//! well-compressed messages, compressed garbage, and "zip bombs", with a
//! small message limit.
//!
//! Checks: nothing panics; no message exceeds the limit (it is enforced on
//! the inflated size); every well-compressed message is delivered exactly,
//! or refused with the right error (1007 for invalid UTF-8 text, 1009 over
//! the limit); a failure writes a close frame with exactly its code, and
//! nothing is read after it.

use arbitrary::Arbitrary;
use rtwire::proto::deflate::DeflateConfig;
use rtwire::proto::{Config, Connection, Event, Message, ProtocolError, Role};

use crate::compress::PeerCompressor;
use crate::wire::{build_frame, xor, LenForm};

/// One fuzz input.
#[derive(Arbitrary, Debug)]
pub struct Input {
    /// The role of the connection under test.
    pub server: bool,
    /// Both windows are 9 plus this modulo 7 bits.
    pub bits: u8,
    /// No context takeover either way.
    pub no_takeover: bool,
    /// `max_message_size` (0 means 1).
    pub limit: u16,
    /// What the peer sends, in order (the first 16).
    pub pieces: Vec<Piece>,
}

/// What the peer sends next.
#[derive(Arbitrary, Debug)]
pub enum Piece {
    /// A message compressed as the negotiated peer compressor would, split
    /// into frames of `fragment` bytes (0: one frame).
    Valid {
        /// Text or binary.
        text: bool,
        /// The payload.
        data: Vec<u8>,
        /// Fragment size.
        fragment: u8,
    },
    /// A frame with RSV1 and arbitrary "compressed" bytes.
    Garbage {
        /// FIN bit.
        fin: bool,
        /// Raw opcode.
        opcode: u8,
        /// The payload.
        payload: Vec<u8>,
    },
    /// `kib` KiB of zeros, compressed: tiny on the wire, large inflated.
    Bomb {
        /// Size in KiB, modulo 257: at most 256 KiB, which still exceeds
        /// every limit an input can set (at most 64 KiB). Larger bombs only
        /// slowed the harness's own compressor, which under AddressSanitizer
        /// at a 9-bit window took longer than libFuzzer's timeout.
        kib: u16,
    },
}

struct Peer {
    compressor: PeerCompressor,
    mask: Option<[u8; 4]>,
}

impl Peer {
    fn frame(&self, fin: bool, rsv: u8, opcode: u8, payload: &[u8]) -> Vec<u8> {
        build_frame(fin, rsv, opcode, self.mask, payload, LenForm::Minimal)
    }
}

/// Runs one input.
pub fn check(input: Input) {
    let bits = 9 + input.bits % 7;
    let config = DeflateConfig {
        server_max_window_bits: bits,
        client_max_window_bits: bits,
        server_no_context_takeover: input.no_takeover,
        client_no_context_takeover: input.no_takeover,
        ..DeflateConfig::default()
    };
    let (server_side, answer) = config
        .accept_offers([config.offer().as_str()])
        .expect("accepted");
    let client_side = config.check_response(&answer).expect("valid answer");
    let limit = usize::from(input.limit).max(1);
    let limits = Config::default().max_message_size(limit);
    let (role, agreed, mask) = if input.server {
        (Role::Server, server_side, Some([0xa5, 0x01, 0x7e, 0x33]))
    } else {
        (Role::Client, client_side, None)
    };
    let mut conn = Connection::new(role, limits).with_deflate(agreed);
    let mut peer = Peer {
        compressor: PeerCompressor::new(bits, input.no_takeover),
        mask,
    };
    // Exact expectations hold until garbage desynchronises the streams.
    let mut in_sync = true;
    for piece in input.pieces.iter().take(16) {
        if !conn.wants_input() {
            break;
        }
        let (bytes, expected) = match piece {
            Piece::Valid {
                text,
                data,
                fragment,
            } => {
                let compressed = peer.compressor.compress(data);
                let opcode = if *text { 0x1 } else { 0x2 };
                let size = usize::from(*fragment).max(1);
                let chunks: Vec<&[u8]> = if *fragment == 0 || compressed.is_empty() {
                    vec![&compressed[..]]
                } else {
                    compressed.chunks(size).collect()
                };
                let mut bytes = Vec::new();
                for (i, chunk) in chunks.iter().enumerate() {
                    let (rsv, op) = if i == 0 { (0b100, opcode) } else { (0, 0x0) };
                    bytes.extend(peer.frame(i + 1 == chunks.len(), rsv, op, chunk));
                }
                let utf8 = std::str::from_utf8(data);
                let expected = match (*text, utf8) {
                    // Which is found first depends on where fragments split.
                    (true, Err(_)) if data.len() > limit => None,
                    (_, _) if data.len() > limit => {
                        Some(Err(ProtocolError::MessageTooBig { limit }))
                    }
                    (true, Err(_)) => Some(Err(ProtocolError::InvalidUtf8)),
                    (true, Ok(s)) => Some(Ok(Message::text(s.to_owned()))),
                    (false, _) => Some(Ok(Message::binary(data.clone()))),
                };
                (bytes, expected.filter(|_| in_sync))
            }
            Piece::Garbage {
                fin,
                opcode,
                payload,
            } => {
                in_sync = false;
                (peer.frame(*fin, 0b100, *opcode & 0x0f, payload), None)
            }
            Piece::Bomb { kib } => {
                let zeros = vec![0u8; usize::from(*kib % 257) * 1024];
                let compressed = peer.compressor.compress(&zeros);
                let expected = if zeros.len() > limit {
                    Err(ProtocolError::MessageTooBig { limit })
                } else {
                    Ok(Message::binary(zeros))
                };
                (
                    peer.frame(true, 0b100, 0x2, &compressed),
                    in_sync.then_some(expected),
                )
            }
        };
        conn.receive_data(&bytes);
        let events: Vec<Event> = std::iter::from_fn(|| conn.poll_event()).collect();
        let output = drain(&mut conn);
        for event in &events {
            match event {
                Event::Message(Message::Text(t)) => assert!(t.len() <= limit),
                Event::Message(Message::Binary(b)) => assert!(b.len() <= limit),
                Event::Failed(error) => {
                    let code = error.close_code();
                    assert!(code.is_allowed_on_wire(), "{error:?}");
                    assert_eq!(
                        close_code(&output, mask.is_none()),
                        Some(code.0),
                        "{error:?}"
                    );
                    assert!(!conn.wants_input());
                }
                _ => {}
            }
        }
        if let Some(expected) = expected {
            let got = match events.as_slice() {
                [Event::Message(m)] => Ok(m.clone()),
                [Event::Failed(e)] => Err(e.clone()),
                other => panic!("expected one event, got {other:?}"),
            };
            assert_eq!(got, expected);
        }
        if events.iter().any(|e| matches!(e, Event::Failed(_))) {
            break;
        }
    }
}

fn drain(conn: &mut Connection) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(chunk) = conn.poll_transmit() {
        out.extend_from_slice(&chunk);
    }
    out
}

/// The code of the last close frame in `output` (a client's are masked).
fn close_code(output: &[u8], client: bool) -> Option<u16> {
    let mut rest = output;
    let mut code = None;
    while rest.len() >= 2 {
        let len = usize::from(rest[1] & 0x7f);
        assert!(len < 126, "control frames only here");
        let header = 2 + if client { 4 } else { 0 };
        let mut payload = rest[header..header + len].to_vec();
        if client {
            let key = [rest[2], rest[3], rest[4], rest[5]];
            xor(&mut payload, key);
        }
        if rest[0] & 0x0f == 0x8 && payload.len() >= 2 {
            code = Some(u16::from_be_bytes([payload[0], payload[1]]));
        }
        rest = &rest[header + len..];
    }
    code
}
