//! Regression tests for crashes found while fuzzing and property-testing.
//!
//! Each test reproduces one bug with the smallest input found. A test for a
//! bug not yet fixed is `#[ignore]`d with the reason, so that `cargo test`
//! stays green; remove the `ignore` together with the fix.

use rtwire::proto::mask::{apply_mask, apply_mask_reference};

/// `apply_mask_reference` computes `key[(offset + i) % 4]`, which overflows
/// (a panic in debug builds) when `offset + i` passes `usize::MAX`, while
/// `apply_mask` takes any offset. Found by `tests/properties.rs` with
/// `offset = usize::MAX` and a 2-byte payload.
#[test]
fn mask_reference_takes_any_offset() {
    for offset in [usize::MAX, usize::MAX - 1, usize::MAX - 2] {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        let mut fast = [0u8; 9];
        let mut slow = [0u8; 9];
        apply_mask(&mut fast, key, offset);
        apply_mask_reference(&mut slow, key, offset);
        assert_eq!(fast, slow, "offset {offset}");
    }
}

/// Input held back while the output is above `output_high_water` was
/// dropped by `receive_eof`, which reported an abnormal closure (1006)
/// although the peer's close frame had been received: back-pressure
/// changed what happened, not only when. Found by the `connection` fuzz
/// target (seed `bp-eof-held`): a ping and a close in one read with a
/// high-water mark of 0, so the close waits behind the pong.
#[test]
fn eof_reads_input_held_by_back_pressure() {
    use rtwire::proto::close::{CloseCode, CloseFrame};
    use rtwire::proto::{Config, Connection, Event, Message, Role};

    let frame = |opcode: u8, payload: &[u8]| {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        let mut f = vec![0x80 | opcode, 0x80 | payload.len() as u8];
        f.extend_from_slice(&key);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        f
    };
    let mut peer = frame(0x9, b"last words");
    peer.extend(frame(0x8, b"\x03\xe8done"));
    let close = Event::Message(Message::Close(Some(CloseFrame {
        code: CloseCode(1000),
        reason: "done".into(),
    })));

    // The transport ends while the pong is still unwritten, or after it
    // was written but before the held input was polled (wants_read is true
    // again then, so a caller following the docs reads, and gets EOF).
    for write_pong_first in [false, true] {
        let mut conn = Connection::new(Role::Server, Config::default().output_high_water(0));
        conn.receive_data(&peer);
        assert_eq!(
            conn.poll_event(),
            Some(Event::Message(Message::Ping("last words".into())))
        );
        assert_eq!(conn.poll_event(), None, "the close is held behind the pong");
        let mut out = Vec::new();
        if write_pong_first {
            while let Some(chunk) = conn.poll_transmit() {
                out.extend_from_slice(&chunk);
            }
            assert!(conn.wants_read());
        }
        conn.receive_eof();
        assert_eq!(conn.poll_event(), Some(close.clone()), "{write_pong_first}");
        assert_eq!(conn.poll_event(), None);
        while let Some(chunk) = conn.poll_transmit() {
            out.extend_from_slice(&chunk);
        }
        // The pong, then the reply to the close, echoing its reason.
        assert_eq!(
            out, b"\x8a\x0alast words\x88\x06\x03\xe8done",
            "{write_pong_first}"
        );
        assert!(conn.should_close_transport());
    }
}
