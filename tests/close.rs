//! The closing handshake (RFC 6455 §5.5.1, §7) and every close-code rule.
mod common;
use common::*;
use rtwire::proto::frame::OpCode;
use rtwire::proto::{CloseCode, CloseFrame, Connection, Event, Message, SendError, State};

fn close_event(code: u16, reason: &str) -> Event {
    Event::Message(Message::Close(Some(CloseFrame {
        code: CloseCode(code),
        reason: reason.into(),
    })))
}

#[test]
fn valid_codes_are_echoed_and_the_server_closes_the_transport() {
    for code in [
        1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
    ] {
        let (ev, mut conn) = server_after(&client_frame(true, 0x8, &close_payload(code, "bye")));
        assert_eq!(ev, vec![close_event(code, "bye")]);
        assert_eq!(conn.state(), State::Closed);
        assert_eq!(sent_close_code(&mut conn), Some(code));
        assert!(conn.should_close_transport());
    }
}

/// The one close frame in `conn`'s output, unmasked.
fn sent_close_payload(conn: &mut Connection) -> Vec<u8> {
    let closes: Vec<_> = decode_all(&output(conn))
        .into_iter()
        .filter(|f| f.opcode == OpCode::Close)
        .collect();
    assert_eq!(closes.len(), 1, "exactly one close frame");
    closes
        .into_iter()
        .next()
        .map(|f| f.payload)
        .unwrap_or_default()
}

#[test]
fn the_reply_echoes_the_peers_code_and_reason() {
    let longest = "é".repeat(61) + "x"; // 123 bytes: all a close frame holds
    for (code, reason) in [
        (1000u16, "bye"),
        (1001, ""),
        (1011, "κόσμε"),
        (4000, longest.as_str()),
    ] {
        let payload = close_payload(code, reason);
        // A server answers a masked close; a client an unmasked one, and
        // masks its reply.
        let (ev, mut conn) = server_after(&client_frame(true, 0x8, &payload));
        assert_eq!(ev, vec![close_event(code, reason)]);
        assert_eq!(sent_close_payload(&mut conn), payload, "server, {code}");
        let mut conn = client();
        conn.receive_data(&server_frame(true, 0x8, &payload));
        assert_eq!(events(&mut conn), vec![close_event(code, reason)]);
        let frames = decode_all(&output(&mut conn));
        assert_eq!(frames.len(), 1);
        assert!(frames[0].masked, "a client masks its reply");
        assert_eq!(frames[0].payload, payload, "client, {code}");
    }
}

#[test]
fn an_invalid_close_is_failed_not_echoed() {
    // A forbidden code with a reason: the failure's own close, 1002.
    let (ev, mut conn) = server_after(&client_frame(true, 0x8, &close_payload(1005, "echo me")));
    assert_eq!(failed_code(&ev), Some(1002));
    let reply = sent_close_payload(&mut conn);
    assert_eq!(&reply[..2], &1002u16.to_be_bytes());
    assert!(
        !reply.windows(7).any(|w| w == b"echo me"),
        "the peer's reason is not sent back: {reply:?}"
    );
    // A valid code with a reason that is not UTF-8: 1007, nothing echoed.
    let mut payload = close_payload(1000, "ok ");
    payload.extend_from_slice(&[0xff, 0xfe]);
    let (ev, mut conn) = server_after(&client_frame(true, 0x8, &payload));
    assert_eq!(failed_code(&ev), Some(1007));
    let reply = sent_close_payload(&mut conn);
    assert_eq!(&reply[..2], &1007u16.to_be_bytes());
    assert!(std::str::from_utf8(&reply[2..]).is_ok());
}

#[test]
fn invalid_codes_fail_with_1002() {
    for code in [
        0u16, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
    ] {
        let (ev, mut conn) = server_after(&client_frame(true, 0x8, &close_payload(code, "")));
        assert_eq!(failed_code(&ev), Some(1002), "code {code}");
        assert_eq!(sent_close_code(&mut conn), Some(1002));
    }
}

#[test]
fn one_byte_close_payload_fails_with_1002() {
    let (ev, _) = server_after(&client_frame(true, 0x8, &[0x03]));
    assert_eq!(failed_code(&ev), Some(1002));
}

#[test]
fn invalid_utf8_reason_fails_with_1007() {
    let mut payload = close_payload(1000, "");
    payload.extend_from_slice(&[
        0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xed, 0xa0, 0x80,
    ]);
    let (ev, _) = server_after(&client_frame(true, 0x8, &payload));
    assert_eq!(failed_code(&ev), Some(1007));
}

#[test]
fn empty_close_is_answered_with_empty_close() {
    let (ev, mut conn) = server_after(&client_frame(true, 0x8, b""));
    assert_eq!(ev, vec![Event::Message(Message::Close(None))]);
    let frames = decode_all(&output(&mut conn));
    assert_eq!(frames.len(), 1);
    assert!(frames[0].payload.is_empty());
}

#[test]
fn frames_after_close_are_ignored() {
    let mut bytes = client_frame(true, 0x8, &close_payload(1000, ""));
    bytes.extend(client_frame(true, 0x1, b"too late"));
    let (ev, _) = server_after(&bytes);
    assert_eq!(ev, vec![close_event(1000, "")]);
}

#[test]
fn initiating_close_refuses_data_but_still_delivers_until_the_reply() {
    let mut conn = server();
    conn.close(CloseCode::GOING_AWAY, "shutting down").unwrap();
    assert_eq!(conn.state(), State::Closing);
    assert_eq!(conn.send(Message::text("x")), Err(SendError::Closed));
    assert_eq!(conn.close(CloseCode::NORMAL, ""), Err(SendError::Closed));
    assert_eq!(sent_close_code(&mut conn), Some(1001));
    assert!(!conn.should_close_transport());
    let mut bytes = client_frame(true, 0x1, b"in flight");
    bytes.extend(client_frame(true, 0x9, b"no pong now"));
    bytes.extend(client_frame(true, 0x8, &close_payload(1001, "")));
    conn.receive_data(&bytes);
    let ev = events(&mut conn);
    assert_eq!(ev[0], text("in flight"));
    assert_eq!(ev[2], close_event(1001, ""));
    assert!(
        output(&mut conn).is_empty(),
        "no pong and no second close after our close"
    );
    assert_eq!(conn.state(), State::Closed);
    assert!(conn.should_close_transport());
}

#[test]
fn client_waits_for_the_server_to_close_the_transport() {
    let mut conn = client();
    conn.receive_data(&server_frame(true, 0x8, &close_payload(1000, "")));
    assert_eq!(
        conn.state(),
        State::Open,
        "the close takes effect when polled"
    );
    assert!(output(&mut conn).is_empty());
    assert_eq!(events(&mut conn).len(), 1);
    assert_eq!(sent_close_code(&mut conn), Some(1000));
    assert_eq!(conn.state(), State::Closed);
    assert!(!conn.should_close_transport());
}

#[test]
fn caller_close_mistakes_are_refused() {
    let mut conn = server();
    assert_eq!(
        conn.close(CloseCode(1005), ""),
        Err(SendError::InvalidCloseCode(1005))
    );
    assert_eq!(
        conn.close(CloseCode(999), ""),
        Err(SendError::InvalidCloseCode(999))
    );
    let long = "x".repeat(124);
    assert_eq!(
        conn.close(CloseCode::NORMAL, &long),
        Err(SendError::ReasonTooLong(124))
    );
    assert_eq!(conn.state(), State::Open);
    assert!(!conn.has_output());
}

#[test]
fn eof_without_close_is_abnormal() {
    let mut conn = server();
    conn.receive_eof();
    assert_eq!(failed_code(&events(&mut conn)), Some(1006));
    assert!(
        output(&mut conn).is_empty(),
        "no close frame to a gone transport"
    );
    assert!(conn.should_close_transport());
}

#[test]
fn replies_to_messages_before_a_failure_go_out_before_the_close() {
    let mut bytes = client_frame(true, 0x1, b"Hello");
    bytes.extend(raw_frame(true, 2, 0x1, b"bad rsv", Some(KEY)));
    let mut conn = server();
    conn.receive_data(&bytes);
    let Some(Event::Message(echo)) = conn.poll_event() else {
        panic!("the first message comes first");
    };
    assert!(
        output(&mut conn).is_empty(),
        "no close before the failure is polled"
    );
    conn.send(echo).unwrap();
    assert_eq!(failed_code(&events(&mut conn)), Some(1002));
    let frames = decode_all(&output(&mut conn));
    let opcodes: Vec<_> = frames.iter().map(|f| f.opcode).collect();
    assert_eq!(opcodes, vec![OpCode::Text, OpCode::Close]);
    assert!(conn.should_close_transport());
}
