//! Frame header decode and encode (`rtwire::proto::frame`), one case per
//! length form: 7-bit, 16-bit and 64-bit, masked (what a server decodes)
//! and unmasked (what a client decodes).

mod common;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rtwire::proto::frame::{FrameHeader, OpCode};

fn headers() -> Vec<(&'static str, FrameHeader)> {
    let header = |payload_len: u64, mask: Option<[u8; 4]>| FrameHeader {
        fin: true,
        rsv: 0,
        opcode: OpCode::Binary,
        mask,
        payload_len,
    };
    let key = Some([0x37, 0xfa, 0x21, 0x3d]);
    vec![
        ("len7", header(20, None)),
        ("len7_masked", header(20, key)),
        ("len16_masked", header(16 << 10, key)),
        ("len64_masked", header(1 << 20, key)),
    ]
}

fn frame_header(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame_header");
    group.throughput(Throughput::Elements(1));
    for (name, header) in headers() {
        let (bytes, len) = header.encode();
        // Decode sees the header followed by payload bytes, as it does on a connection.
        let mut wire = bytes[..len].to_vec();
        wire.extend_from_slice(&[0u8; 32]);
        group.bench_with_input(BenchmarkId::new("decode", name), &wire, |b, wire| {
            b.iter(|| FrameHeader::decode(black_box(wire)))
        });
        group.bench_with_input(BenchmarkId::new("encode", name), &header, |b, header| {
            b.iter(|| black_box(header).encode())
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = frame_header
}
criterion_main!(benches);
