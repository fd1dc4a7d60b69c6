//! The published payloads and the clock that stamps them.
//!
//! A payload is ASCII: `SSSSSS.TTTTTTTTTTTTTTTTTTTT.` (the sequence number
//! and the publish time in nanoseconds, zero-padded) and then filler up to
//! the size. Publisher and subscribers live in one process, so the
//! subscriber's latency is its receipt time minus the stamp, on one
//! monotonic clock. The filler is pseudo-random letters, digits, `-` and
//! `_`, derived from the sequence number: it needs no escaping in JSON or
//! SSE (so every transport carries the payload as it is), it does not
//! compress like a run of one letter would (which matters to
//! permessage-deflate), and the receiver can check every byte.

use std::sync::OnceLock;
use std::time::Instant;

/// Bytes of the sequence number and the stamp, with their separators.
pub const HEADER: usize = 28;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static ORIGIN: OnceLock<Instant> = OnceLock::new();

/// Nanoseconds on the process's monotonic clock.
pub fn now_ns() -> u64 {
    ORIGIN.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// The payload of message `seq` published at `stamp_ns`, `size` bytes long
/// (`size` is at least [`HEADER`]).
pub fn make(seq: u32, stamp_ns: u64, size: usize) -> Vec<u8> {
    let mut out = format!("{seq:06}.{stamp_ns:020}.").into_bytes();
    out.extend((HEADER..size).map(|i| filler(seq, i)));
    out
}

/// What a received payload says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    pub seq: u32,
    pub ns: u64,
}

/// Parses a received payload and checks every byte of it.
pub fn check(data: &[u8], size: usize) -> Result<Stamp, String> {
    let bad = || format!("unexpected payload {:?}", String::from_utf8_lossy(data));
    if data.len() != size || data.get(6) != Some(&b'.') || data.get(27) != Some(&b'.') {
        return Err(bad());
    }
    let seq = digits(&data[..6]).ok_or_else(bad)?;
    let ns = digits(&data[7..27]).ok_or_else(bad)?;
    let seq = u32::try_from(seq).map_err(|_| bad())?;
    let filler_ok = data[HEADER..]
        .iter()
        .enumerate()
        .all(|(i, &b)| b == filler(seq, HEADER + i));
    if !filler_ok {
        return Err(bad());
    }
    Ok(Stamp { seq, ns })
}

fn digits(text: &[u8]) -> Option<u64> {
    text.iter().try_fold(0u64, |n, &b| {
        b.is_ascii_digit()
            .then(|| n.checked_mul(10)?.checked_add(u64::from(b - b'0')))?
    })
}

/// Byte `i` of message `seq`'s filler: one step of splitmix64.
fn filler(seq: u32, i: usize) -> u8 {
    let mut z = (u64::from(seq) << 32 | i as u64).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    ALPHABET[((z ^ (z >> 31)) & 63) as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let data = make(42, 1_234_567_890, 100);
        assert_eq!(data.len(), 100);
        assert_eq!(
            check(&data, 100),
            Ok(Stamp {
                seq: 42,
                ns: 1_234_567_890
            })
        );
    }

    #[test]
    fn every_byte_is_checked() {
        let data = make(7, 99, 100);
        assert!(check(&data, 101).is_err());
        for i in 0..data.len() {
            let mut bad = data.clone();
            bad[i] = if bad[i] == b'A' { b'B' } else { b'A' };
            assert!(check(&bad, 100).is_err(), "byte {i}");
        }
    }

    #[test]
    fn needs_no_escaping() {
        let data = make(1, 2, 1000);
        assert!(data
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)));
    }
}
