//! Writes a [`Session`] (and a `deflate` target [`Input`]) as the bytes that
//! `arbitrary` (1.x, as used by `libfuzzer-sys`) decodes back into it, so
//! seeds for the structured targets can be generated from values.
//!
//! `arbitrary` reads integers and enum tags from the front of the data and
//! byte-slice lengths from the back; a `Vec` is its elements, each preceded
//! by a "one more" flag. [`encode_session`] lays out both ends, then checks
//! by decoding: if `arbitrary` ever changes its format, the
//! generator stops with an error instead of writing useless seeds.

use arbitrary::{Arbitrary, Unstructured};

use crate::deflate_checks::{Input, Piece};
use crate::session::{
    Action, AppCall, Compressed, DeflateSpec, FrameSpec, PeerBytes, PeerChunk, Session,
};

enum Op {
    /// Bytes read from the front.
    Front(Vec<u8>),
    /// A byte-slice length, read from the back.
    Len(usize),
}

#[derive(Default)]
struct Encoder {
    ops: Vec<Op>,
}

impl Encoder {
    fn front(&mut self, bytes: &[u8]) {
        self.ops.push(Op::Front(bytes.to_vec()));
    }

    fn u8(&mut self, x: u8) {
        self.front(&[x]);
    }

    fn u16(&mut self, x: u16) {
        self.front(&x.to_le_bytes());
    }

    fn bool(&mut self, b: bool) {
        self.u8(u8::from(b));
    }

    /// Derived enums pick variant `(u32 * count) >> 32`.
    fn variant(&mut self, index: u32, count: u32) {
        let x = (u64::from(index) << 32).div_ceil(u64::from(count));
        let x = u32::try_from(x).expect("variant index in range");
        debug_assert_eq!((u64::from(x) * u64::from(count)) >> 32, u64::from(index));
        self.front(&x.to_le_bytes());
    }

    /// A `Vec<u8>` that is not the last field: flagged elements, then the end.
    fn vec(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.bool(true);
            self.u8(b);
        }
        self.bool(false);
    }

    fn slice(&mut self, bytes: &[u8]) {
        self.ops.push(Op::Len(bytes.len()));
        self.front(bytes);
    }

    /// How many bytes `arbitrary` takes for a length when `remaining` are left.
    fn len_bytes(remaining: usize) -> usize {
        match remaining {
            0 => 0,
            1 => 1,
            r if r <= 256 => 1,
            r if r <= 65535 + 2 => 2,
            _ => 4,
        }
    }

    /// The byte string: front bytes in order, then the length bytes, the
    /// first length read being the last bytes.
    fn finish(self) -> Vec<u8> {
        let front_len: usize = self
            .ops
            .iter()
            .map(|op| match op {
                Op::Front(b) => b.len(),
                Op::Len(_) => 0,
            })
            .sum();
        // The size of each length depends on the total, which depends on
        // the sizes: iterate to the fixed point (sizes only grow).
        let lens = self
            .ops
            .iter()
            .filter(|op| matches!(op, Op::Len(_)))
            .count();
        let mut sizes = vec![1usize; lens];
        loop {
            let total = front_len + sizes.iter().sum::<usize>();
            let mut remaining = total;
            let mut next = Vec::with_capacity(lens);
            for op in &self.ops {
                match op {
                    Op::Front(b) => remaining -= b.len(),
                    Op::Len(_) => {
                        let k = Self::len_bytes(remaining);
                        next.push(k);
                        remaining -= k;
                    }
                }
            }
            if next == sizes {
                break;
            }
            sizes = next;
        }
        let mut front = Vec::with_capacity(front_len);
        let mut tail: Vec<Vec<u8>> = Vec::new();
        let total = front_len + sizes.iter().sum::<usize>();
        let mut remaining = total;
        let mut size_iter = sizes.iter();
        for op in self.ops {
            match op {
                Op::Front(b) => {
                    remaining -= b.len();
                    front.extend_from_slice(&b);
                }
                Op::Len(v) => {
                    let k = *size_iter.next().expect("one size per length");
                    let max = remaining - k;
                    assert!(v <= max, "slice of {v} bytes does not fit in {max}");
                    remaining -= k;
                    // `int_in_range(0..=max)` reads big-endian bytes, only as
                    // many as `max` needs, then takes the value modulo max + 1.
                    let needed = (0..k).take_while(|i| max >> (8 * i) > 0).count();
                    let mut bytes = vec![0u8; k];
                    for (i, byte) in bytes.iter_mut().take(needed).enumerate() {
                        *byte = (v >> (8 * (needed - 1 - i))) as u8;
                    }
                    tail.push(bytes);
                }
            }
        }
        assert_eq!(remaining, 0);
        for bytes in tail.iter().rev() {
            front.extend_from_slice(bytes);
        }
        front
    }
}

fn encode_frame(e: &mut Encoder, spec: &FrameSpec) {
    e.bool(spec.fin);
    e.u8(spec.rsv);
    e.u8(spec.opcode);
    e.u8(spec.mask);
    e.front(&spec.key);
    e.u8(spec.form);
    e.slice(spec.payload);
}

fn encode_app(e: &mut Encoder, call: &AppCall) {
    const N: u32 = 8;
    match call {
        AppCall::Text(b) => {
            e.variant(0, N);
            e.slice(b);
        }
        AppCall::Binary(b) => {
            e.variant(1, N);
            e.slice(b);
        }
        AppCall::Ping(b) => {
            e.variant(2, N);
            e.slice(b);
        }
        AppCall::Pong(b) => {
            e.variant(3, N);
            e.slice(b);
        }
        AppCall::Close {
            code,
            reason,
            via_send,
        } => {
            e.variant(4, N);
            e.u16(*code);
            e.slice(reason);
            e.bool(*via_send);
        }
        AppCall::CloseWithoutCode { via_send } => {
            e.variant(5, N);
            e.bool(*via_send);
        }
        AppCall::Large { text, size, fill } => {
            e.variant(6, N);
            e.bool(*text);
            e.u8(*size);
            e.u8(*fill);
        }
        AppCall::ReleaseIdleBuffers => e.variant(7, N),
    }
}

fn encode_compressed(e: &mut Encoder, message: &Compressed) {
    e.bool(message.text);
    e.bool(message.raw);
    e.slice(message.data);
    e.u8(message.fragment);
}

fn encode_peer(e: &mut Encoder, chunk: &PeerChunk) {
    match &chunk.bytes {
        PeerBytes::Frame(spec) => {
            e.variant(0, 3);
            encode_frame(e, spec);
        }
        PeerBytes::Compressed(message) => {
            e.variant(1, 3);
            encode_compressed(e, message);
        }
        PeerBytes::Raw(raw) => {
            e.variant(2, 3);
            e.slice(raw);
        }
    }
    e.u8(chunk.piece);
    e.bool(chunk.via_buffer);
}

fn encode_deflate(e: &mut Encoder, deflate: Option<&DeflateSpec>) {
    e.bool(deflate.is_some());
    if let Some(d) = deflate {
        e.u8(d.server_bits);
        e.u8(d.client_bits);
        e.bool(d.server_no_context_takeover);
        e.bool(d.client_no_context_takeover);
    }
}

/// The bytes `Session::arbitrary_take_rest` decodes into `session`.
///
/// Panics if they do not decode back into it.
pub fn encode_session(session: &Session) -> Vec<u8> {
    let mut e = Encoder::default();
    e.bool(session.server);
    e.u8(session.max_frame);
    e.u8(session.max_message);
    encode_deflate(&mut e, session.deflate.as_ref());
    e.u8(session.writes);
    for limit in [session.high_water, session.write_buffer] {
        e.bool(limit.is_some());
        if let Some(x) = limit {
            e.u16(x);
        }
    }
    e.bool(session.keepalive.is_some());
    if let Some(k) = session.keepalive {
        e.u8(k.interval);
        e.u8(k.timeout);
    }
    const N: u32 = 6;
    for action in &session.actions {
        e.bool(true); // another element follows
        match action {
            Action::Peer(chunk) => {
                e.variant(0, N);
                encode_peer(&mut e, chunk);
            }
            Action::App(call) => {
                e.variant(1, N);
                encode_app(&mut e, call);
            }
            Action::Eof => e.variant(2, N),
            Action::StopReading => e.variant(3, N),
            Action::Read(n) => {
                e.variant(4, N);
                e.u16(*n);
            }
            Action::Tick(ms) => {
                e.variant(5, N);
                e.u16(*ms);
            }
        }
    }
    let bytes = e.finish();
    let decoded = Session::arbitrary_take_rest(Unstructured::new(&bytes))
        .expect("an encoded session decodes");
    assert_eq!(
        &decoded, session,
        "arbitrary decodes the encoded session differently: has its format changed?"
    );
    bytes
}

fn encode_piece(e: &mut Encoder, piece: &Piece) {
    match piece {
        Piece::Valid {
            text,
            data,
            fragment,
        } => {
            e.variant(0, 3);
            e.bool(*text);
            e.vec(data);
            e.u8(*fragment);
        }
        Piece::Garbage {
            fin,
            opcode,
            payload,
        } => {
            e.variant(1, 3);
            e.bool(*fin);
            e.u8(*opcode);
            e.vec(payload);
        }
        Piece::Bomb { kib } => {
            e.variant(2, 3);
            e.u16(*kib);
        }
    }
}

/// The bytes `Input::arbitrary_take_rest` decodes into `input`.
///
/// Panics if they do not decode back into it.
pub fn encode_deflate_input(input: &Input) -> Vec<u8> {
    let mut e = Encoder::default();
    e.bool(input.server);
    e.u8(input.bits);
    e.bool(input.no_takeover);
    e.u16(input.limit);
    for piece in &input.pieces {
        e.bool(true);
        encode_piece(&mut e, piece);
    }
    let bytes = e.finish();
    let decoded =
        Input::arbitrary_take_rest(Unstructured::new(&bytes)).expect("an encoded input decodes");
    assert_eq!(
        format!("{decoded:?}"),
        format!("{input:?}"),
        "arbitrary decodes the encoded input differently: has its format changed?"
    );
    bytes
}
