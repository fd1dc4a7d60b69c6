//! permessage-deflate (RFC 7692) through the sans-IO `Connection`, in
//! bytes/s of uncompressed payload.
//!
//! - `compress`: a server `send`s a binary message and drains
//!   `poll_transmit` (deflate, then framing).
//! - `inflate`: a server takes a client's compressed, masked frames with
//!   `receive_data` and gives the message back from `poll_event`.
//!
//! Each runs with context takeover (the default: the compression state
//! carries over between messages) and without it (a fresh compressor or
//! inflater per message). The payloads are JSON-like records with varying
//! numbers, several distinct ones per size so a message never finds its own
//! copy in the 32 KiB window.

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rtwire::proto::deflate::DeflateConfig;
use rtwire::proto::{Config, Connection, Event, Message, Role};

const SIZES: [usize; 3] = [1 << 10, 64 << 10, 1 << 20];

/// `count` distinct payloads of `size` bytes each.
fn payloads(size: usize, count: usize) -> Vec<Bytes> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let events = ["update", "insert", "delete", "snapshot"];
    (0..count)
        .map(|_| {
            let mut s = String::with_capacity(size + 128);
            while s.len() < size {
                let r = next();
                s.push_str(&format!(
                    "{{\"id\":{},\"user\":\"user{}\",\"event\":\"{}\",\"price\":{}.{:02},\"ok\":{}}}\n",
                    r % 1_000_000,
                    (r >> 20) % 5000,
                    events[(r >> 40) as usize % events.len()],
                    (r >> 8) % 10_000,
                    (r >> 50) % 100,
                    r & 1 == 0
                ));
            }
            s.truncate(size);
            Bytes::from(s)
        })
        .collect()
}

/// How many distinct payloads of `size`: enough that none repeats within
/// the window, at most 16 MiB in all.
fn variety(size: usize) -> usize {
    ((64 << 10) / size)
        .clamp(4, 64)
        .min((16 << 20) / size)
        .max(2)
}

/// A client and a server that negotiated permessage-deflate with `config`.
fn pair(config: &DeflateConfig) -> (Connection, Connection) {
    let offer = config.offer();
    let (server_side, answer) = config
        .accept_offers([offer.as_str()])
        .expect("the server accepts its own kind of offer");
    let client_side = config
        .check_response(&answer)
        .expect("the client accepts the answer");
    (
        Connection::new(Role::Client, Config::default()).with_deflate(client_side),
        Connection::new(Role::Server, Config::default()).with_deflate(server_side),
    )
}

// `DeflateConfig` is non-exhaustive: outside rtwire it can only be made
// from a default and then changed.
#[allow(clippy::field_reassign_with_default)]
fn configs() -> [(&'static str, DeflateConfig); 2] {
    let mut fresh = DeflateConfig::default();
    fresh.server_no_context_takeover = true;
    fresh.client_no_context_takeover = true;
    [
        ("takeover", DeflateConfig::default()),
        ("no_takeover", fresh),
    ]
}

fn compress(c: &mut Criterion) {
    let mut group = c.benchmark_group("deflate_compress");
    for size in SIZES {
        group.throughput(Throughput::Bytes(size as u64));
        let messages = payloads(size, variety(size));
        for (name, config) in configs() {
            let (_, mut server) = pair(&config);
            let mut i = 0;
            group.bench_function(BenchmarkId::new(name, size), |b| {
                b.iter(|| {
                    let message = Message::Binary(messages[i % messages.len()].clone());
                    i += 1;
                    server.send(message).expect("open connection");
                    let mut wire = 0;
                    while let Some(chunk) = server.poll_transmit() {
                        wire += chunk.len();
                    }
                    black_box(wire)
                })
            });
        }
        // The compression ratio of these payloads, once, for the record.
        let (_, mut server) = pair(&DeflateConfig::default());
        let mut wire = 0;
        for m in &messages {
            server.send(Message::Binary(m.clone())).expect("open");
            while let Some(chunk) = server.poll_transmit() {
                wire += chunk.len();
            }
        }
        eprintln!(
            "deflate_compress/{size}: {:.1}x smaller on the wire (default level)",
            (size * messages.len()) as f64 / wire as f64
        );
    }
    group.finish();
}

fn inflate(c: &mut Criterion) {
    let mut group = c.benchmark_group("deflate_inflate");
    for size in SIZES {
        group.throughput(Throughput::Bytes(size as u64));
        let messages = payloads(size, variety(size));
        for (name, config) in configs() {
            // The client's frames for a run of messages, in order: with
            // context takeover each depends on the ones before it, so a new
            // server starts over at the beginning of the run.
            let (mut client, _) = pair(&config);
            let run: Vec<Vec<u8>> = (0..messages.len() * 4)
                .map(|i| {
                    let message = Message::Binary(messages[i % messages.len()].clone());
                    client.send(message).expect("open connection");
                    let mut wire = Vec::new();
                    while let Some(chunk) = client.poll_transmit() {
                        wire.extend_from_slice(&chunk);
                    }
                    wire
                })
                .collect();
            group.bench_function(BenchmarkId::new(name, size), |b| {
                b.iter_custom(|iters| {
                    let mut spent = Duration::ZERO;
                    let mut server = pair(&config).1;
                    let mut next = 0;
                    for _ in 0..iters {
                        if next == run.len() {
                            server = pair(&config).1;
                            next = 0;
                        }
                        let started = Instant::now();
                        server.receive_data(&run[next]);
                        let event = server.poll_event();
                        spent += started.elapsed();
                        match event {
                            Some(Event::Message(Message::Binary(m))) => {
                                debug_assert_eq!(m.len(), size);
                                black_box(m);
                            }
                            other => panic!("expected a binary message, got {other:?}"),
                        }
                        next += 1;
                    }
                    spent
                })
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = compress, inflate
}
criterion_main!(benches);
