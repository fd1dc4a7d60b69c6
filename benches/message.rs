//! Decoding whole messages through the sans-IO `Connection` in the server
//! role: masked client frames go in with `receive_data`, one
//! `Event::Message` comes out of `poll_event`. Bytes/s counts payload bytes.
//!
//! Cases: a binary message in one frame, the same message fragmented in
//! 1 KiB frames, and a text message in one frame (adds UTF-8 validation).
//! `receive_data` copies the input into the connection's buffer, as a read
//! from a socket into `input_buffer` would.

mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rtwire::proto::frame::{FrameHeader, OpCode};
use rtwire::proto::mask::apply_mask;
use rtwire::proto::{Config, Connection, Event, Message, Role};

const SIZES: [usize; 5] = [16, 1 << 10, 64 << 10, 1 << 20, 16 << 20];
const FRAGMENT: usize = 1 << 10;
const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// The masked frames a client sends for one message of `payload`, in
/// frames of at most `frame_size` bytes.
fn client_frames(opcode: OpCode, payload: &[u8], frame_size: usize) -> Vec<u8> {
    let mut wire = Vec::with_capacity(payload.len() + 14 * (payload.len() / frame_size + 1));
    let mut chunks = payload.chunks(frame_size).peekable();
    let mut first = true;
    while let Some(chunk) = chunks.next() {
        let header = FrameHeader {
            fin: chunks.peek().is_none(),
            rsv: 0,
            opcode: if first { opcode } else { OpCode::Continuation },
            mask: Some(KEY),
            payload_len: chunk.len() as u64,
        };
        first = false;
        let (bytes, len) = header.encode();
        wire.extend_from_slice(&bytes[..len]);
        let start = wire.len();
        wire.extend_from_slice(chunk);
        apply_mask(&mut wire[start..], KEY, 0);
    }
    wire
}

/// `size` bytes of valid UTF-8, mostly multi-byte.
fn text(size: usize) -> Vec<u8> {
    common::utf8_sample(size, "Hello-µ@ßöäüàá-UTF-8!! κόσμε €𝄞 ")
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("message_decode");
    for size in SIZES {
        group.throughput(Throughput::Bytes(size as u64));
        if size >= 1 << 20 {
            group.sample_size(10);
            group.measurement_time(Duration::from_secs(4));
        }
        let binary: Vec<u8> = (0..size).map(|i| (i * 31 + 7) as u8).collect();
        let cases = [
            (
                "binary",
                client_frames(OpCode::Binary, &binary, size.max(1)),
            ),
            (
                "binary_1KiB_frames",
                client_frames(OpCode::Binary, &binary, FRAGMENT),
            ),
            (
                "text",
                client_frames(OpCode::Text, &text(size), size.max(1)),
            ),
        ];
        for (name, wire) in &cases {
            let mut server = Connection::new(Role::Server, Config::default());
            group.bench_with_input(BenchmarkId::new(*name, size), wire, |b, wire| {
                b.iter(|| {
                    server.receive_data(black_box(wire));
                    match server.poll_event() {
                        Some(Event::Message(message @ (Message::Binary(_) | Message::Text(_)))) => {
                            black_box(message)
                        }
                        other => panic!("expected a data message, got {other:?}"),
                    }
                })
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = decode
}
criterion_main!(benches);
