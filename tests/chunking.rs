//! Feeding a session in any chunking gives the same events and output as
//! feeding it at once.
mod common;
use common::*;
use rtwire::proto::Event;

fn session() -> Vec<u8> {
    let mut s = Vec::new();
    s.extend(client_frame(true, 0x1, "Hello, κόσμε 𝄞".as_bytes()));
    s.extend(client_frame(false, 0x1, "frag".as_bytes()));
    s.extend(client_frame(true, 0x9, b"ping in between"));
    s.extend(client_frame(true, 0x0, "mented €".as_bytes()));
    s.extend(client_frame(true, 0x2, &[0u8; 300]));
    s.extend(client_frame(true, 0x2, &vec![9u8; 70_000]));
    s.extend(client_frame(true, 0xA, b""));
    s.extend(client_frame(true, 0x8, &close_payload(1000, "done")));
    s
}

fn run(chunks: impl Iterator<Item = Vec<u8>>) -> (Vec<Event>, Vec<u8>) {
    let mut conn = server();
    let mut ev = Vec::new();
    let mut out = Vec::new();
    for chunk in chunks {
        conn.receive_data(&chunk);
        ev.extend(events(&mut conn));
        out.extend(output(&mut conn));
    }
    (ev, out)
}

#[test]
fn one_byte_at_a_time_equals_all_at_once() {
    let bytes = session();
    let whole = run(std::iter::once(bytes.clone()));
    assert_eq!(whole.0.len(), 7, "{:?}", whole.0);
    let bytewise = run(bytes.iter().map(|b| vec![*b]));
    assert_eq!(bytewise, whole);
}

#[test]
fn every_chunk_size_equals_all_at_once() {
    let bytes = session();
    let whole = run(std::iter::once(bytes.clone()));
    for size in [2, 3, 7, 13, 125, 1000, 4096] {
        let chunked = run(bytes.chunks(size).map(<[u8]>::to_vec));
        assert_eq!(chunked, whole, "chunk size {size}");
    }
}
