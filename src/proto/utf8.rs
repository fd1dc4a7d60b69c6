//! Incremental, fail-fast UTF-8 validation (RFC 6455 §8.1).
//!
//! A text message may arrive in many frames and each frame in many reads,
//! with a code point split anywhere. [`Utf8Validator`] is fed the bytes as
//! they arrive and reports an error at the first byte that can no longer be
//! part of valid UTF-8, so the connection fails with 1007 without waiting
//! for the rest of the frame or message (RFC 6455 §8.1: "When an endpoint is
//! to interpret a byte stream as UTF-8 but finds that the byte stream is not,
//! in fact, a valid UTF-8 stream, that endpoint MUST _Fail the WebSocket
//! Connection_").
//!
//! The bulk of each chunk goes through `std::str::from_utf8`, which is fast
//! and whose error tells an invalid byte apart from a sequence that is merely
//! cut short. Only the (at most 3) bytes of a cut sequence are carried over.

use std::fmt;

/// The bytes seen so far are not the start of any valid UTF-8 string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Utf8Error;

impl fmt::Display for Utf8Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid UTF-8")
    }
}

impl std::error::Error for Utf8Error {}

/// Validates a byte stream piece by piece.
///
/// ```
/// use rtwire::proto::utf8::Utf8Validator;
/// let euro = "€".as_bytes(); // e2 82 ac
/// let mut v = Utf8Validator::new();
/// assert!(v.feed(&euro[..1]).is_ok());
/// assert!(!v.is_complete());
/// assert!(v.feed(&euro[1..]).is_ok());
/// assert!(v.is_complete());
/// // 0xC0 can never start a valid sequence: rejected at once.
/// assert!(v.feed(&[b'a', 0xC0]).is_err());
/// ```
#[derive(Clone, Debug, Default)]
pub struct Utf8Validator {
    pending: [u8; 4],
    pending_len: usize,
}

impl Utf8Validator {
    /// A validator at the start of a string.
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks the next piece of the stream.
    ///
    /// Returns an error as soon as the bytes seen so far cannot be the start
    /// of valid UTF-8. After an error the validator's state is unspecified:
    /// call [`reset`](Self::reset) before reusing it.
    pub fn feed(&mut self, mut input: &[u8]) -> Result<(), Utf8Error> {
        if self.pending_len > 0 {
            let width = sequence_width(self.pending[0]);
            let take = (width - self.pending_len).min(input.len());
            self.pending[self.pending_len..self.pending_len + take].copy_from_slice(&input[..take]);
            self.pending_len += take;
            input = &input[take..];
            match std::str::from_utf8(&self.pending[..self.pending_len]) {
                Ok(_) => self.pending_len = 0,
                // Still a valid prefix, and the input is used up.
                Err(e) if e.error_len().is_none() => return Ok(()),
                Err(_) => return Err(Utf8Error),
            }
        }
        match std::str::from_utf8(input) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_none() => {
                let tail = &input[e.valid_up_to()..];
                self.pending[..tail.len()].copy_from_slice(tail);
                self.pending_len = tail.len();
                Ok(())
            }
            Err(_) => Err(Utf8Error),
        }
    }

    /// Whether the stream so far ends on a code point boundary.
    pub fn is_complete(&self) -> bool {
        self.pending_len == 0
    }

    /// Checks that the stream ends here: a cut-off sequence is an error.
    /// Resets the validator either way.
    pub fn finish(&mut self) -> Result<(), Utf8Error> {
        let complete = self.is_complete();
        self.reset();
        if complete {
            Ok(())
        } else {
            Err(Utf8Error)
        }
    }

    /// Forgets any carried-over bytes, for the start of a new string.
    pub fn reset(&mut self) {
        self.pending_len = 0;
    }
}

/// The length of a sequence whose first byte is `lead`. Only called with lead
/// bytes that `from_utf8` accepted as the start of a cut-off sequence.
fn sequence_width(lead: u8) -> usize {
    match lead {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        _ => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate_split(bytes: &[u8], split: usize) -> Result<(), Utf8Error> {
        let mut v = Utf8Validator::new();
        v.feed(&bytes[..split])?;
        v.feed(&bytes[split..])?;
        v.finish()
    }

    #[test]
    fn agrees_with_std_at_every_split() {
        let samples: Vec<Vec<u8>> = vec![
            "Hello-µ@ßöäüàá-UTF-8!!".into(),
            "κόσμε".into(),
            "\u{10FFFF}\u{FFFF}\u{80}\u{7FF}".into(),
            vec![
                0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xed, 0xa0, 0x80,
            ],
            vec![0xf4, 0x90, 0x80, 0x80],
            vec![0xf0, 0x9f, 0x98],
            vec![0xc0, 0xaf],
            vec![0xed, 0x9f, 0xbf, 0xee, 0x80, 0x80],
        ];
        for s in &samples {
            let expected = std::str::from_utf8(s).is_ok();
            for split in 0..=s.len() {
                assert_eq!(
                    validate_split(s, split).is_ok(),
                    expected,
                    "{s:x?} at {split}"
                );
            }
        }
    }

    #[test]
    fn fails_at_first_impossible_byte_one_byte_at_a_time() {
        // U+D800 (a surrogate) is impossible from its second byte (ed a0).
        let bytes = [b'a', 0xed, 0xa0, 0x80];
        let mut v = Utf8Validator::new();
        assert!(v.feed(&bytes[..1]).is_ok());
        assert!(v.feed(&bytes[1..2]).is_ok());
        assert_eq!(v.feed(&bytes[2..3]), Err(Utf8Error));
        // Above U+10FFFF: f4 90 is impossible at the second byte.
        let mut v = Utf8Validator::new();
        assert!(v.feed(&[0xf4]).is_ok());
        assert_eq!(v.feed(&[0x90]), Err(Utf8Error));
    }

    #[test]
    fn cut_off_sequence_fails_only_at_finish() {
        let mut v = Utf8Validator::new();
        assert!(v.feed(&[0xf0, 0x9f]).is_ok());
        assert!(v.feed(&[0x98]).is_ok());
        assert_eq!(v.finish(), Err(Utf8Error));
        assert!(v.is_complete());
    }
}
