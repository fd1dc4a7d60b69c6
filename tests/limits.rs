//! Size limits: a frame or message over its limit fails with 1009 before
//! its payload is read.
mod common;
use common::*;
use rtwire::proto::{Config, Connection, ProtocolError, Role};

fn limited() -> Connection {
    Connection::new(
        Role::Server,
        Config::default()
            .max_frame_size(1000)
            .max_message_size(2500),
    )
}

#[test]
fn defaults_are_16_mib_frames_and_64_mib_messages() {
    let config = Config::default();
    assert_eq!(config.max_frame_size, 16 << 20);
    assert_eq!(config.max_message_size, 64 << 20);
}

#[test]
fn frame_over_limit_fails_from_its_header_alone() {
    let mut conn = limited();
    let frame = client_frame(true, 0x2, &[0u8; 1001]);
    conn.receive_data(&frame[..8]); // header only
    let ev = events(&mut conn);
    assert!(matches!(
        ev[..],
        [rtwire::proto::Event::Failed(ProtocolError::FrameTooBig {
            len: 1001,
            limit: 1000
        })]
    ));
    assert_eq!(sent_close_code(&mut conn), Some(1009));
}

#[test]
fn frame_at_limit_is_accepted() {
    let mut conn = limited();
    conn.receive_data(&client_frame(true, 0x2, &[5u8; 1000]));
    assert_eq!(events(&mut conn), vec![binary(&[5u8; 1000])]);
}

#[test]
fn message_over_limit_fails_when_the_fragment_that_breaks_it_arrives() {
    let mut conn = limited();
    let mut bytes = client_frame(false, 0x2, &[1u8; 1000]);
    bytes.extend(client_frame(false, 0x0, &[2u8; 1000]));
    conn.receive_data(&bytes);
    assert!(events(&mut conn).is_empty());
    conn.receive_data(&client_frame(true, 0x0, &[3u8; 501])[..8]);
    assert_eq!(failed_code(&events(&mut conn)), Some(1009));
    assert_eq!(sent_close_code(&mut conn), Some(1009));
}

#[test]
fn message_at_limit_is_accepted() {
    let mut conn = limited();
    let mut bytes = client_frame(false, 0x2, &[1u8; 1000]);
    bytes.extend(client_frame(false, 0x0, &[1u8; 1000]));
    bytes.extend(client_frame(true, 0x0, &[1u8; 500]));
    conn.receive_data(&bytes);
    assert_eq!(events(&mut conn), vec![binary(&[1u8; 2500])]);
}

#[test]
fn control_frames_do_not_count_toward_the_message() {
    let mut conn = limited();
    let mut bytes = client_frame(false, 0x2, &[1u8; 1000]);
    for _ in 0..10 {
        bytes.extend(client_frame(true, 0x9, &[0u8; 125]));
    }
    bytes.extend(client_frame(true, 0x0, &[1u8; 1000]));
    conn.receive_data(&bytes);
    let ev = events(&mut conn);
    assert_eq!(ev.len(), 11);
    assert_eq!(ev[10], binary(&[1u8; 2000]));
}
