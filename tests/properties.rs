//! Property tests (proptest) of the sans-IO core and the handshake.
//!
//! - Any fragmentation of any message, with pings between the fragments,
//!   reassembles to that message, and every ping is answered in order.
//! - A valid session fed in any chunking gives the same events and the same
//!   output as fed at once.
//! - Masking twice is the identity; `apply_mask` equals the byte-wise
//!   reference for any offset, key and length.
//! - `Utf8Validator` agrees with `std::str::from_utf8` for any split of any
//!   bytes, and fails at the first byte that cannot be valid.
//! - `accept_key` is base64(SHA-1(key + GUID)) for any 16-byte key.
//!
//! Frames are built and decoded here by hand, independently of the codec.

mod common;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use proptest::prelude::*;
use rtwire::handshake::{accept_key, GUID};
use rtwire::proto::mask::{apply_mask, apply_mask_reference};
use rtwire::proto::utf8::Utf8Validator;
use rtwire::proto::{Config, Connection, Event, Message, Role};
use sha1::{Digest, Sha1};

const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CONT: u8 = 0x0;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

/// A frame as the peer of a connection with `role` sends it: masked with
/// `key` to a server, unmasked to a client.
fn frame(role: Role, fin: bool, opcode: u8, payload: &[u8], key: [u8; 4]) -> Vec<u8> {
    let mask = (role == Role::Server).then_some(key);
    common::raw_frame(fin, 0, opcode, payload, mask)
}

/// A frame read back from a connection's output, payload unmasked.
#[derive(Debug, PartialEq, Eq)]
struct Written {
    fin: bool,
    opcode: u8,
    masked: bool,
    payload: Vec<u8>,
}

/// Decodes a whole output stream; panics on anything partial.
fn decode(mut bytes: &[u8]) -> Vec<Written> {
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        let (fin, opcode, masked) = (bytes[0] & 0x80 != 0, bytes[0] & 0x0f, bytes[1] & 0x80 != 0);
        let (len, mut pos) = match bytes[1] & 0x7f {
            126 => (u16::from_be_bytes([bytes[2], bytes[3]]) as usize, 4),
            127 => {
                let mut be = [0u8; 8];
                be.copy_from_slice(&bytes[2..10]);
                (u64::from_be_bytes(be) as usize, 10)
            }
            n => (n as usize, 2),
        };
        let mut key = [0u8; 4];
        if masked {
            key.copy_from_slice(&bytes[pos..pos + 4]);
            pos += 4;
        }
        let payload = bytes[pos..pos + len]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ key[i % 4])
            .collect();
        frames.push(Written {
            fin,
            opcode,
            masked,
            payload,
        });
        bytes = &bytes[pos + len..];
    }
    frames
}

fn drain_events(conn: &mut Connection) -> Vec<Event> {
    std::iter::from_fn(|| conn.poll_event()).collect()
}

fn drain_output(conn: &mut Connection) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(chunk) = conn.poll_transmit() {
        out.extend_from_slice(&chunk);
    }
    out
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::Server), Just(Role::Client)]
}

/// Text with multi-byte characters, or any bytes.
#[derive(Clone, Debug)]
enum Payload {
    Text(String),
    Binary(Vec<u8>),
}

impl Payload {
    fn bytes(&self) -> &[u8] {
        match self {
            Payload::Text(s) => s.as_bytes(),
            Payload::Binary(b) => b,
        }
    }

    fn opcode(&self) -> u8 {
        match self {
            Payload::Text(_) => TEXT,
            Payload::Binary(_) => BINARY,
        }
    }

    fn message(&self) -> Message {
        match self {
            Payload::Text(s) => Message::text(s.clone()),
            Payload::Binary(b) => Message::binary(b.clone()),
        }
    }
}

fn payload(max: usize) -> impl Strategy<Value = Payload> {
    prop_oneof![
        proptest::collection::vec(any::<char>(), 0..max / 4)
            .prop_map(|cs| Payload::Text(cs.into_iter().collect())),
        "[a-zé€𝄞]{0,40}".prop_map(Payload::Text),
        proptest::collection::vec(any::<u8>(), 0..max).prop_map(Payload::Binary),
    ]
}

/// Cut points: sorted, deduplicated positions strictly inside `0..len`.
fn cuts(len: usize, raw: &[usize]) -> Vec<usize> {
    let mut cuts: Vec<usize> = raw
        .iter()
        .filter(|_| len > 0)
        .map(|c| c % (len + 1))
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    cuts
}

fn pieces<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut start = 0;
    for &c in cuts.iter().chain(std::iter::once(&bytes.len())) {
        out.push(&bytes[start..c]);
        start = c;
    }
    out
}

/// One frame's worth of a session.
#[derive(Clone, Debug)]
enum Step {
    Message(Payload, Vec<usize>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (payload(300), proptest::collection::vec(any::<usize>(), 0..4))
            .prop_map(|(p, c)| Step::Message(p, c)),
        1 => proptest::collection::vec(any::<u8>(), 0..=125).prop_map(Step::Ping),
        1 => proptest::collection::vec(any::<u8>(), 0..=125).prop_map(Step::Pong),
    ]
}

/// The bytes of a valid session as `role`'s peer sends them: messages
/// fragmented at the given cuts, control frames, then a close.
fn session_bytes(role: Role, steps: &[Step], key: [u8; 4], close: bool) -> Vec<u8> {
    let mut bytes = Vec::new();
    for step in steps {
        match step {
            Step::Message(p, raw_cuts) => {
                let data = p.bytes();
                let parts = pieces(data, &cuts(data.len(), raw_cuts));
                for (i, part) in parts.iter().enumerate() {
                    let op = if i == 0 { p.opcode() } else { CONT };
                    bytes.extend(frame(role, i + 1 == parts.len(), op, part, key));
                }
            }
            Step::Ping(p) => bytes.extend(frame(role, true, PING, p, key)),
            Step::Pong(p) => bytes.extend(frame(role, true, PONG, p, key)),
        }
    }
    if close {
        bytes.extend(frame(role, true, CLOSE, b"\x03\xe8bye", key));
    }
    bytes
}

/// Feeds `bytes` cut at `cuts`; returns the events and the output.
fn feed(role: Role, bytes: &[u8], cuts: &[usize], via_buffer: bool) -> (Vec<Event>, Vec<u8>) {
    let mut conn = Connection::new(role, Config::default());
    let mut events = Vec::new();
    let mut out = Vec::new();
    for piece in pieces(bytes, cuts) {
        if via_buffer {
            conn.input_buffer().extend_from_slice(piece);
            conn.handle_input();
        } else {
            conn.receive_data(piece);
        }
        events.extend(drain_events(&mut conn));
        out.extend(drain_output(&mut conn));
    }
    (events, out)
}

/// Valid UTF-8 with a few bytes overwritten (often making it invalid).
fn corrupted_utf8() -> impl Strategy<Value = Vec<u8>> {
    (
        any::<String>(),
        proptest::collection::vec((any::<usize>(), any::<u8>()), 0..3),
    )
        .prop_map(|(s, edits)| {
            let mut bytes = s.into_bytes();
            if !bytes.is_empty() {
                let len = bytes.len();
                for (at, b) in edits {
                    bytes[at % len] = b;
                }
            }
            bytes
        })
}

/// The length of the shortest prefix of `bytes` that cannot start valid
/// UTF-8, if any: where a fail-fast validator must stop.
fn first_impossible(bytes: &[u8]) -> Option<usize> {
    (1..=bytes.len()).find(|&k| match std::str::from_utf8(&bytes[..k]) {
        Ok(_) => false,
        Err(e) => e.error_len().is_some(),
    })
}

proptest! {
    #[test]
    fn any_fragmentation_reassembles(
        role in role(),
        message in payload(2000),
        raw_cuts in proptest::collection::vec(any::<usize>(), 0..12),
        pings in proptest::collection::vec(proptest::option::of(proptest::collection::vec(any::<u8>(), 0..=125)), 0..13),
        key in any::<[u8; 4]>(),
        chunk in 1usize..64,
    ) {
        let data = message.bytes();
        let parts = pieces(data, &cuts(data.len(), &raw_cuts));
        let mut bytes = Vec::new();
        let mut sent_pings = Vec::new();
        for (i, part) in parts.iter().enumerate() {
            let op = if i == 0 { message.opcode() } else { CONT };
            bytes.extend(frame(role, i + 1 == parts.len(), op, part, key));
            // A ping after this fragment (control frames may come between
            // fragments, RFC 6455 §5.4), unless it is the last one.
            if let Some(Some(ping)) = pings.get(i).filter(|_| i + 1 < parts.len()) {
                bytes.extend(frame(role, true, PING, ping, key));
                sent_pings.push(ping.clone());
            }
        }
        let cut_every: Vec<usize> = (chunk..bytes.len()).step_by(chunk).collect();
        let (events, out) = feed(role, &bytes, &cut_every, false);
        let mut expected: Vec<Event> = sent_pings
            .iter()
            .map(|p| Event::Message(Message::Ping(p.clone().into())))
            .collect();
        expected.push(Event::Message(message.message()));
        prop_assert_eq!(events, expected);
        let pongs: Vec<Vec<u8>> = decode(&out)
            .into_iter()
            .map(|w| {
                assert_eq!((w.fin, w.opcode, w.masked), (true, PONG, role == Role::Client));
                w.payload
            })
            .collect();
        prop_assert_eq!(pongs, sent_pings);
    }

    #[test]
    fn any_chunking_equals_all_at_once(
        role in role(),
        steps in proptest::collection::vec(step(), 0..8),
        close in any::<bool>(),
        key in any::<[u8; 4]>(),
        raw_cuts in proptest::collection::vec(any::<usize>(), 0..24),
        via_buffer in any::<bool>(),
    ) {
        let bytes = session_bytes(role, &steps, key, close);
        let (whole_events, whole_out) = feed(role, &bytes, &[], false);
        // The session is valid: one event per message or control frame.
        let expected_len = steps.len() + usize::from(close);
        prop_assert_eq!(whole_events.len(), expected_len, "{:?}", whole_events);
        prop_assert!(whole_events.iter().all(|e| matches!(e, Event::Message(_))));
        let cut = cuts(bytes.len(), &raw_cuts);
        let (events, out) = feed(role, &bytes, &cut, via_buffer);
        prop_assert_eq!(&events, &whole_events);
        if role == Role::Server {
            // Unmasked: the very same bytes.
            prop_assert_eq!(out, whole_out);
        } else {
            // Fresh masking keys each time: compare what the frames say.
            prop_assert_eq!(decode(&out), decode(&whole_out));
        }
    }

    #[test]
    fn masking_twice_is_identity(
        data in proptest::collection::vec(any::<u8>(), 0..300),
        key in any::<[u8; 4]>(),
        offset in any::<usize>(),
    ) {
        let mut masked = data.clone();
        apply_mask(&mut masked, key, offset);
        apply_mask(&mut masked, key, offset);
        prop_assert_eq!(masked, data);
    }

    #[test]
    fn fast_mask_equals_reference(
        data in proptest::collection::vec(any::<u8>(), 0..300),
        start in 0usize..40,
        key in any::<[u8; 4]>(),
        offset in prop_oneof![0usize..64, 0usize..usize::MAX / 2],
    ) {
        // `start` shifts the slice against the allocation's alignment.
        let start = start.min(data.len());
        let mut fast = data.clone();
        let mut slow = data.clone();
        apply_mask(&mut fast[start..], key, offset);
        apply_mask_reference(&mut slow[start..], key, offset);
        prop_assert_eq!(&fast, &slow);
        // And the reference is what RFC 6455 §5.3 says.
        let by_rfc: Vec<u8> = data
            .iter()
            .enumerate()
            .map(|(i, b)| if i < start { *b } else { b ^ key[(offset % 4 + i - start) % 4] })
            .collect();
        prop_assert_eq!(&slow, &by_rfc);
    }

    #[test]
    fn fast_mask_follows_rfc_for_any_offset(
        data in proptest::collection::vec(any::<u8>(), 0..100),
        key in any::<[u8; 4]>(),
        offset in any::<usize>(),
    ) {
        let mut fast = data.clone();
        apply_mask(&mut fast, key, offset);
        let by_rfc: Vec<u8> = data
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ key[(offset % 4 + i) % 4])
            .collect();
        prop_assert_eq!(fast, by_rfc);
    }

    #[test]
    fn utf8_validator_agrees_with_std(
        bytes in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..40),
            corrupted_utf8(),
            any::<String>().prop_map(String::into_bytes),
        ],
        raw_cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let cut = cuts(bytes.len(), &raw_cuts);
        let parts = pieces(&bytes, &cut);
        let mut validator = Utf8Validator::new();
        let stop = first_impossible(&bytes);
        let mut seen = 0;
        let mut failed = false;
        for part in &parts {
            let result = validator.feed(part);
            seen += part.len();
            // Fail fast: Ok while every byte so far can still be valid, an
            // error in the piece holding the first impossible byte.
            match stop {
                Some(k) if k <= seen => {
                    prop_assert!(result.is_err(), "no error by byte {} of {:x?} cut at {:?}", k, bytes, cut);
                    failed = true;
                    break;
                }
                _ => prop_assert!(result.is_ok(), "early error in {:x?} cut at {:?}", bytes, cut),
            }
        }
        if !failed {
            let valid = std::str::from_utf8(&bytes).is_ok();
            prop_assert_eq!(validator.finish().is_ok(), valid, "{:x?} cut at {:?}", bytes, cut);
        }
    }

    #[test]
    fn accept_key_is_base64_of_sha1(nonce in any::<[u8; 16]>()) {
        let key = BASE64.encode(nonce);
        let mut hasher = Sha1::new();
        hasher.update(format!("{key}{GUID}").as_bytes());
        let digest = hasher.finalize();
        prop_assert_eq!(digest.len(), 20);
        let expected = BASE64.encode(digest);
        prop_assert_eq!(accept_key(&key), expected);
    }
}

#[test]
fn accept_key_matches_rfc_6455_example() {
    // RFC 6455 §1.3, independent of any library: the GUID is the RFC's.
    assert_eq!(GUID, "258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    assert_eq!(
        accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
}
