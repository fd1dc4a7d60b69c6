//! Text validation (RFC 6455 §8.1): fail fast with 1007, at every split.
mod common;
use common::*;
use rtwire::proto::{Event, ProtocolError};

/// "κόσμε" then a UTF-16 surrogate (ed a0 80), invalid from its second byte,
/// then more text that must never be looked at.
fn invalid_payload() -> (Vec<u8>, usize) {
    let mut p = "κόσμε".as_bytes().to_vec();
    let first_bad = p.len() + 1; // the a0 after ed
    p.extend_from_slice(&[0xed, 0xa0, 0x80]);
    p.extend_from_slice(b"edited");
    (p, first_bad)
}

#[test]
fn invalid_text_fails_with_1007_as_soon_as_the_bad_byte_arrives() {
    let (payload, first_bad) = invalid_payload();
    let frame = client_frame(true, 0x1, &payload);
    let header_len = frame.len() - payload.len();
    // Feed byte by byte: nothing may fail before the first impossible byte
    // and the failure must come with it, long before the frame is complete.
    let mut conn = server();
    for (i, byte) in frame.iter().enumerate() {
        conn.receive_data(&[*byte]);
        let ev = events(&mut conn);
        if i < header_len + first_bad {
            assert!(ev.is_empty(), "failed early at byte {i}");
        } else {
            assert_eq!(
                ev,
                vec![Event::Failed(ProtocolError::InvalidUtf8)],
                "byte {i}"
            );
            assert_eq!(sent_close_code(&mut conn), Some(1007));
            return;
        }
    }
    panic!("never failed");
}

#[test]
fn split_at_every_position_across_fragments_gives_the_same_verdict() {
    let valid = "Hello-µ@ßöäüàá-UTF-8!! 𝄞 κόσμε".as_bytes().to_vec();
    let (invalid, _) = invalid_payload();
    for (payload, ok) in [(valid, true), (invalid, false)] {
        for split in 0..=payload.len() {
            let mut bytes = client_frame(false, 0x1, &payload[..split]);
            bytes.extend(client_frame(true, 0x0, &payload[split..]));
            let (ev, _) = server_after(&bytes);
            if ok {
                let expected = std::str::from_utf8(&payload).unwrap();
                assert_eq!(ev, vec![text(expected)], "split {split}");
            } else {
                assert_eq!(failed_code(&ev), Some(1007), "split {split}");
            }
        }
    }
}

#[test]
fn code_point_cut_at_end_of_message_fails_1007() {
    let (ev, _) = server_after(&client_frame(true, 0x1, &[b'a', 0xf0, 0x9f]));
    assert_eq!(failed_code(&ev), Some(1007));
}

#[test]
fn binary_messages_are_not_validated() {
    let (ev, _) = server_after(&client_frame(true, 0x2, &[0xff, 0xfe]));
    assert_eq!(ev, vec![binary(&[0xff, 0xfe])]);
}
