//! Frames through the connection: length forms, masking by role, RSV bits, opcodes.
mod common;
use common::*;
use rtwire::proto::frame::OpCode;
use rtwire::proto::{Event, Message, State};

#[test]
fn each_length_form_is_received_and_sent() {
    for len in [0usize, 1, 125, 126, 127, 65535, 65536, 100_000] {
        let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let (ev, mut conn) = server_after(&client_frame(true, 0x2, &payload));
        assert_eq!(ev, vec![binary(&payload)], "len {len}");
        // And the server's reply uses the same length form the hand-built frame used.
        conn.send(Message::binary(payload.clone())).unwrap();
        let out = output(&mut conn);
        assert_eq!(out, server_frame(true, 0x2, &payload), "len {len}");
    }
}

#[test]
fn client_frames_are_masked_and_decode_back() {
    let mut conn = client();
    conn.send(Message::text("Hello")).unwrap();
    let frames = decode_all(&output(&mut conn));
    assert_eq!(frames.len(), 1);
    assert!(frames[0].masked);
    assert_eq!(frames[0].payload, b"Hello");
}

#[test]
fn server_rejects_unmasked_frames_with_1002() {
    let (ev, mut conn) = server_after(&server_frame(true, 0x1, b"hi"));
    assert_eq!(failed_code(&ev), Some(1002));
    assert_eq!(sent_close_code(&mut conn), Some(1002));
    assert_eq!(conn.state(), State::Closed);
    assert!(conn.should_close_transport());
}

#[test]
fn client_rejects_masked_frames_with_1002() {
    let mut conn = client();
    conn.receive_data(&client_frame(true, 0x1, b"hi"));
    assert_eq!(failed_code(&events(&mut conn)), Some(1002));
    assert_eq!(sent_close_code(&mut conn), Some(1002));
}

#[test]
fn rsv_bits_without_extension_fail_with_1002() {
    for rsv in 1..=7u8 {
        let (ev, _) = server_after(&raw_frame(true, rsv, 0x1, b"x", Some(KEY)));
        assert_eq!(failed_code(&ev), Some(1002), "rsv {rsv:03b}");
    }
}

#[test]
fn reserved_opcodes_fail_with_1002_after_earlier_messages() {
    for op in (3..=7u8).chain(0xB..=0xF) {
        let mut bytes = client_frame(true, 0x1, b"before");
        bytes.extend(client_frame(true, op, b""));
        bytes.extend(client_frame(true, 0x1, b"after"));
        let (ev, _) = server_after(&bytes);
        assert_eq!(ev[0], text("before"));
        assert_eq!(failed_code(&ev), Some(1002), "opcode {op:#x}");
        assert_eq!(ev.len(), 2, "nothing is read after the failure");
    }
}

#[test]
fn ping_is_answered_with_same_payload_and_pong_ignored() {
    let mut bytes = client_frame(true, 0x9, b"are you there");
    bytes.extend(client_frame(true, 0xA, b"unsolicited"));
    let (ev, mut conn) = server_after(&bytes);
    assert_eq!(
        ev,
        vec![
            Event::Message(Message::Ping("are you there".into())),
            Event::Message(Message::Pong("unsolicited".into())),
        ]
    );
    let frames = decode_all(&output(&mut conn));
    assert_eq!(frames.len(), 1, "only the ping is answered");
    assert_eq!(frames[0].opcode, OpCode::Pong);
    assert_eq!(frames[0].payload, b"are you there");
    assert!(!frames[0].masked);
}

#[test]
fn control_frame_over_125_bytes_fails() {
    let (ev, _) = server_after(&client_frame(true, 0x9, &[0u8; 126]));
    assert_eq!(failed_code(&ev), Some(1002));
    let mut conn = server();
    assert!(conn.send(Message::Ping(vec![0u8; 126].into())).is_err());
    assert!(!conn.has_output(), "a refused send writes nothing");
}

#[test]
fn large_server_payloads_go_out_without_copy_and_in_order() {
    let mut conn = server();
    let big = bytes::Bytes::from(vec![7u8; 10_000]);
    conn.send(Message::text("first")).unwrap();
    conn.send(Message::Binary(big.clone())).unwrap();
    conn.send(Message::text("last")).unwrap();
    let mut chunks = Vec::new();
    while let Some(c) = conn.poll_transmit() {
        chunks.push(c);
    }
    assert!(
        chunks.iter().any(|c| c.as_ptr() == big.as_ptr()),
        "the payload itself is one of the chunks"
    );
    let frames = decode_all(&chunks.concat());
    let payloads: Vec<&[u8]> = frames.iter().map(|f| f.payload.as_slice()).collect();
    assert_eq!(payloads, vec![&b"first"[..], &big[..], &b"last"[..]]);
}
