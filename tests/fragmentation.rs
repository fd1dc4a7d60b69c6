//! Fragmented messages (RFC 6455 §5.4), with control frames between fragments.
mod common;
use common::*;
use rtwire::proto::frame::OpCode;
use rtwire::proto::{Event, Message};

#[test]
fn fragments_reassemble_with_interleaved_pings() {
    let mut bytes = client_frame(false, 0x1, b"frag");
    bytes.extend(client_frame(true, 0x9, b"p1"));
    bytes.extend(client_frame(false, 0x0, b"men"));
    bytes.extend(client_frame(true, 0x9, b"p2"));
    bytes.extend(client_frame(true, 0x0, b"ted"));
    let (ev, mut conn) = server_after(&bytes);
    assert_eq!(
        ev,
        vec![
            Event::Message(Message::Ping("p1".into())),
            Event::Message(Message::Ping("p2".into())),
            text("fragmented"),
        ]
    );
    let pongs: Vec<Vec<u8>> = decode_all(&output(&mut conn))
        .into_iter()
        .filter(|f| f.opcode == OpCode::Pong)
        .map(|f| f.payload)
        .collect();
    assert_eq!(pongs, vec![b"p1".to_vec(), b"p2".to_vec()]);
}

#[test]
fn binary_fragments_and_empty_fragments() {
    let mut bytes = client_frame(false, 0x2, b"");
    bytes.extend(client_frame(false, 0x0, &[1, 2, 3]));
    bytes.extend(client_frame(false, 0x0, b""));
    bytes.extend(client_frame(true, 0x0, &[4]));
    let (ev, _) = server_after(&bytes);
    assert_eq!(ev, vec![binary(&[1, 2, 3, 4])]);
}

#[test]
fn continuation_without_open_message_fails_1002() {
    let (ev, mut conn) = server_after(&client_frame(true, 0x0, b"orphan"));
    assert_eq!(failed_code(&ev), Some(1002));
    assert_eq!(sent_close_code(&mut conn), Some(1002));
}

#[test]
fn new_data_frame_while_message_open_fails_1002() {
    for op in [0x1, 0x2] {
        let mut bytes = client_frame(false, 0x1, b"start");
        bytes.extend(client_frame(true, op, b"intruder"));
        let (ev, _) = server_after(&bytes);
        assert_eq!(failed_code(&ev), Some(1002));
        assert_eq!(ev.len(), 1, "the open message is never delivered");
    }
}

#[test]
fn fragmented_control_frame_fails_1002() {
    let (ev, _) = server_after(&client_frame(false, 0x9, b"ping"));
    assert_eq!(failed_code(&ev), Some(1002));
}

#[test]
fn many_small_fragments_make_one_large_message() {
    let payload: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
    let mut bytes = Vec::new();
    let chunks: Vec<&[u8]> = payload.chunks(1000).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let op = if i == 0 { 0x2 } else { 0x0 };
        bytes.extend(client_frame(i + 1 == chunks.len(), op, chunk));
    }
    let (ev, _) = server_after(&bytes);
    assert_eq!(ev, vec![binary(&payload)]);
}
