//! permessage-deflate done the plain way (RFC 7692 §7.2), on flate2
//! directly and independently of `rtwire::proto::deflate`: the peer's
//! compressor, and an inflater that reports what a receiver must conclude
//! about one frame's compressed payload.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// §7.2.1: the end of a sync flush, removed by the sender and appended back
/// by the receiver.
pub const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// The smallest window zlib deflates raw data with; an 8-bit agreement is
/// met by inflaters with 9 bits (rtwire's documented choice).
pub fn zlib_bits(bits: u8) -> u8 {
    bits.clamp(9, 15)
}

/// A peer's compressor: one message at a time, context kept or not.
pub struct PeerCompressor {
    compressor: Compress,
    bits: u8,
    reset: bool,
}

impl PeerCompressor {
    /// A compressor with a window of `bits` (8 compresses with 9), reset
    /// after every message when `no_context_takeover`.
    pub fn new(bits: u8, no_context_takeover: bool) -> PeerCompressor {
        let bits = zlib_bits(bits);
        PeerCompressor {
            compressor: Compress::new_with_window_bits(Compression::default(), false, bits),
            bits,
            reset: no_context_takeover,
        }
    }

    /// One message's compressed payload, without the tail.
    pub fn compress(&mut self, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len() + 64);
        let start = self.compressor.total_in();
        loop {
            let done = (self.compressor.total_in() - start) as usize;
            out.reserve(1024);
            self.compressor
                .compress_vec(&data[done..], &mut out, FlushCompress::Sync)
                .expect("compress");
            if (self.compressor.total_in() - start) as usize == data.len()
                && out.len() < out.capacity()
            {
                break;
            }
        }
        // RFC 7692 §7.2.1: drop the sync marker. zlib writes nothing for an
        // empty flush right after another; an empty message is then sent as
        // a single 0x00 (§7.2.3.6), which the appended marker completes.
        if out.ends_with(&TAIL) {
            out.truncate(out.len() - TAIL.len());
        } else {
            assert!(out.is_empty(), "a sync flush ends with the marker");
            out.push(0x00);
        }
        if self.reset {
            self.compressor =
                Compress::new_with_window_bits(Compression::default(), false, self.bits);
        }
        out
    }
}

/// What inflating one frame's payload showed.
#[derive(Debug, Default)]
pub struct FrameInflate {
    /// The data is not valid deflate (somewhere in this frame).
    pub corrupt: bool,
    /// The message's inflated size went, or may have gone before the
    /// corruption, over the limit.
    pub over_limit: bool,
}

/// An inflater for one direction, with its own output (the message being
/// assembled).
pub struct Inflater {
    bits: u8,
    reset: bool,
    decompressor: Option<Decompress>,
}

/// Output is produced this many bytes at a time while under the limit, so
/// that "over the limit before the data turned out corrupt" is known to
/// within one step.
const STEP: usize = 1024;

impl Inflater {
    /// An inflater for a peer compressing with a window of `bits`, reset
    /// after every message when `no_context_takeover`.
    pub fn new(bits: u8, no_context_takeover: bool) -> Inflater {
        Inflater {
            bits,
            reset: no_context_takeover,
            decompressor: None,
        }
    }

    /// Inflates one frame's payload into `message` (appending the tail
    /// first when `last`), against a limit on the message's size. Keeps
    /// going past the limit (to tell whether corruption follows), but not
    /// past `limit + cap`.
    pub fn frame(
        &mut self,
        payload: &[u8],
        last: bool,
        message: &mut Vec<u8>,
        limit: usize,
    ) -> FrameInflate {
        let bits = self.bits;
        let d = self
            .decompressor
            .get_or_insert_with(|| Decompress::new_with_window_bits(false, bits));
        let mut result = FrameInflate::default();
        let mut input = payload.to_vec();
        if last {
            input.extend_from_slice(&TAIL);
        }
        let mut input = &input[..];
        // Every input byte inflates to at most ~1032 bytes.
        let cap = limit.saturating_add(1032 * input.len() + STEP);
        loop {
            let step = if message.len() > limit {
                64 * STEP
            } else {
                STEP
            };
            message.reserve_exact(step);
            let room = message.capacity() - message.len();
            let before_in = d.total_in();
            let before_out = message.len();
            let status = d.decompress_vec(input, message, FlushDecompress::Sync);
            let Ok(status) = status else {
                // The failing call may have produced up to a step first.
                result.over_limit |= before_out + room > limit;
                result.corrupt = true;
                break;
            };
            let consumed = (d.total_in() - before_in) as usize;
            input = &input[consumed..];
            result.over_limit |= message.len() > limit;
            let produced = message.len() - before_out;
            if status == Status::StreamEnd {
                // A final block ends the stream; what follows starts anew.
                d.reset(false);
                if input.is_empty() {
                    break;
                }
                continue;
            }
            let full = produced == room;
            if input.is_empty() && !full {
                break;
            }
            if consumed == 0 && produced == 0 && !full {
                result.corrupt = true;
                break;
            }
            assert!(message.len() <= cap, "inflated past any possible size");
        }
        if last && self.reset {
            self.decompressor = None;
        }
        result
    }
}
