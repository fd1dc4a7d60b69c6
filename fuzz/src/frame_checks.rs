//! The `frame_decode` target's checks: the frame header decoder on any
//! bytes, then the same bytes as a peer's stream to both roles of the
//! connection.
//!
//! - A decoded header re-encodes to exactly the bytes it came from (only
//!   minimal forms decode), obeys the control-frame rules, and every
//!   shorter prefix is partial; an error stays the same with more bytes.
//! - The connection, in each role, passes every check of
//!   [`session::run`] with the bytes fed at once, then in pieces of a size
//!   taken from the input: the events and frames written are the same.

use rtwire::proto::frame::{FrameHeader, MAX_HEADER_LEN};

use crate::session::{self, Action, PeerBytes, PeerChunk, Session};

/// Runs every check on `data`.
pub fn check(data: &[u8]) {
    check_decoder(data);
    // Both roles, with limits that let frames in the 16-bit form through,
    // fed at once and then in pieces of 1 to 16 bytes (the size taken from
    // the first byte): the same events and the same frames out.
    let piece = data.first().map_or(1, |b| b % 16 + 1);
    for server in [true, false] {
        let session = |piece: u8| Session {
            server,
            max_frame: 254,   // 1016 bytes
            max_message: 254, // 4064 bytes
            deflate: None,
            writes: piece,
            high_water: None,
            write_buffer: None,
            keepalive: None,
            actions: vec![
                Action::Peer(PeerChunk {
                    bytes: PeerBytes::Raw(data),
                    piece,
                    via_buffer: piece.is_multiple_of(2),
                }),
                Action::Eof,
            ],
        };
        let whole = session::run(&session(0));
        let pieces = session::run(&session(piece));
        assert_eq!(whole, pieces, "fed in pieces of {piece}");
    }
}

fn check_decoder(data: &[u8]) {
    let result = FrameHeader::decode(data);
    match result {
        Ok(Some((header, len))) => {
            assert!((2..=MAX_HEADER_LEN).contains(&len) && len <= data.len());
            // Only minimal forms decode, so encoding gives the bytes back.
            let (bytes, n) = header.encode();
            assert_eq!(&bytes[..n], &data[..len], "{header:?}");
            assert!(header.rsv <= 7);
            if header.opcode.is_control() {
                assert!(header.fin && header.payload_len <= 125);
            }
            assert!(header.payload_len >> 63 == 0);
            // Shorter prefixes are partial; more bytes change nothing.
            for cut in 0..len {
                assert_eq!(FrameHeader::decode(&data[..cut]), Ok(None), "cut {cut}");
            }
            assert_eq!(FrameHeader::decode(&data[..len]), result);
        }
        Ok(None) => {
            assert!(data.len() < MAX_HEADER_LEN);
            for cut in 0..data.len() {
                assert_eq!(FrameHeader::decode(&data[..cut]), Ok(None), "cut {cut}");
            }
        }
        Err(_) => {
            // An error is decided by the bytes seen: more cannot undo it.
            let mut more = data.to_vec();
            more.extend_from_slice(&[0xff; MAX_HEADER_LEN]);
            assert_eq!(FrameHeader::decode(&more), result);
        }
    }
}
