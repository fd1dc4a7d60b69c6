//! Helpers shared by the integration tests: a hand-rolled frame builder
//! (independent of the encoder under test) and ways to drain a connection.
#![allow(dead_code)]

pub mod certs;
#[cfg(feature = "cli")]
pub mod process;
#[cfg(feature = "serve")]
pub mod receiver;
#[cfg(feature = "serve")]
pub mod serve;

use rtwire::proto::frame::{FrameHeader, OpCode};
use rtwire::proto::mask::apply_mask_reference;
use rtwire::proto::{Config, Connection, Event, Message, Role};

pub const KEY: [u8; 4] = [0x12, 0x34, 0x56, 0x78];

/// One frame's bytes, built by hand: FIN, RSV bits, opcode, optional mask.
pub fn raw_frame(fin: bool, rsv: u8, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = vec![(u8::from(fin) << 7) | (rsv << 4) | opcode];
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n <= 0xffff => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(key) = mask {
        out.splice(start..start, key);
        apply_mask_reference(&mut out[start + 4..], key, 0);
    }
    out
}

/// A masked frame as a client sends it.
pub fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    raw_frame(fin, 0, opcode, payload, Some(KEY))
}

/// An unmasked frame as a server sends it.
pub fn server_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    raw_frame(fin, 0, opcode, payload, None)
}

pub fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason.as_bytes());
    p
}

pub fn server() -> Connection {
    Connection::new(Role::Server, Config::default())
}

pub fn client() -> Connection {
    Connection::new(Role::Client, Config::default())
}

pub fn events(conn: &mut Connection) -> Vec<Event> {
    std::iter::from_fn(|| conn.poll_event()).collect()
}

pub fn output(conn: &mut Connection) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(chunk) = conn.poll_transmit() {
        out.extend_from_slice(&chunk);
    }
    out
}

/// A frame decoded from a connection's output, unmasked.
#[derive(Debug, PartialEq, Eq)]
pub struct Sent {
    pub fin: bool,
    pub opcode: OpCode,
    pub masked: bool,
    pub payload: Vec<u8>,
}

/// Decodes every frame in `bytes`; panics on a partial or bad frame, as the
/// connection must only ever write whole, valid frames.
pub fn decode_all(mut bytes: &[u8]) -> Vec<Sent> {
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        let (header, n) = FrameHeader::decode(bytes).unwrap().expect("whole frame");
        let len = header.payload_len as usize;
        let mut payload = bytes[n..n + len].to_vec();
        if let Some(key) = header.mask {
            apply_mask_reference(&mut payload, key, 0);
        }
        frames.push(Sent {
            fin: header.fin,
            opcode: header.opcode,
            masked: header.mask.is_some(),
            payload,
        });
        bytes = &bytes[n + len..];
    }
    frames
}

/// The close code of the close frame the connection wrote, if it wrote one.
pub fn sent_close_code(conn: &mut Connection) -> Option<u16> {
    decode_all(&output(conn))
        .into_iter()
        .find(|f| f.opcode == OpCode::Close)
        .map(|f| u16::from_be_bytes([f.payload[0], f.payload[1]]))
}

/// Feeds `bytes` to a fresh server and returns its events and output.
pub fn server_after(bytes: &[u8]) -> (Vec<Event>, Connection) {
    let mut conn = server();
    conn.receive_data(bytes);
    let ev = events(&mut conn);
    (ev, conn)
}

pub fn text(s: &str) -> Event {
    Event::Message(Message::text(s.to_owned()))
}

pub fn binary(b: &[u8]) -> Event {
    Event::Message(Message::binary(b.to_vec()))
}

pub fn failed_code(events: &[Event]) -> Option<u16> {
    events.iter().find_map(|e| match e {
        Event::Failed(err) => Some(err.close_code().0),
        _ => None,
    })
}
