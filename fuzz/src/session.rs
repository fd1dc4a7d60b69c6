//! The `connection` target's input and driver.
//!
//! A [`Session`] is a role, small limits (frame and message sizes, the
//! output high-water mark and the write-buffer limit), permessage-deflate
//! or not, keepalive or not, and a list of [`Action`]s: bytes from the peer
//! (a frame built from fuzzed fields, a message compressed as the peer
//! would, or raw bytes), calls of the application, the end of the
//! transport, the peer stopping and resuming reading, and time passing.
//! [`run`] plays it against a [`Connection`] and panics when an invariant
//! breaks; [`check`] also plays it again without back-pressure and compares.
//! Every check is against an independent expectation:
//!
//! - the events equal those of the reference receiver in [`crate::model`]
//!   for the bytes read so far, after every action (so they cannot depend
//!   on how the bytes were chunked) — or, while the connection holds input
//!   back because its output is above the high-water mark, are a prefix of
//!   them; once the peer reads again everything held is processed;
//! - the output decodes strictly into whole frames, and they are exactly
//!   the frames expected: what the application sent (with the extension:
//!   RSV1 set and the payload inflating, with the agreed window, to the
//!   message exactly when the message is at least the threshold long and
//!   this end's window is not 8 bits), a pong for each ping
//!   decoded before this end sent a close, the reply to the peer's close
//!   (echoing its code and reason), keepalive pings, and after a failure a close with exactly
//!   `error.close_code()` (nothing for 1006) — masked by a client,
//!   unmasked by a server; bytes seen queued are the bytes later taken;
//! - back-pressure: `buffered_output()` is exactly the queued bytes; a pong
//!   is only queued while the pongs queued since the output was last empty
//!   are at most `output_high_water`, so `buffered_output()` stays within
//!   the bound of [`Bounds`]; while those pongs are above the mark, input
//!   given is held (the input buffer grows by exactly it) and makes no
//!   event and no output; the application's own output never holds input; `send` fails with
//!   `WriteBufferFull` exactly when `max_write_buffer` or more is queued,
//!   and queues nothing then;
//! - every close code written is allowed on the wire;
//! - no message is larger than `max_message_size`;
//! - the results of the application calls, `state()`, `wants_input()`,
//!   `wants_read()`, `should_close_transport()`, `poll_timeout()` and the
//!   `has_*` queries agree with a model of the closing handshake and of
//!   keepalive.

use std::io::IoSlice;
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use rtwire::proto::deflate::{Deflate, DeflateConfig};
use rtwire::proto::{
    CloseCode, CloseFrame, Config, Connection, Event, Keepalive, Message, ProtocolError, Role,
    SendError, State,
};

use crate::compress::{Inflater, PeerCompressor};
use crate::model::{reference_events, PeerDeflate};
use crate::wire::{
    build_frame, code_allowed, decode_stream, LenForm, WireFrame, BINARY, CLOSE, CONT, PING, PONG,
    TEXT,
};

/// The whole input of the `connection` target.
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub struct Session<'a> {
    /// The role of the connection under test.
    pub server: bool,
    /// `max_frame_size` is 4 times this; 255 means the default (16 MiB).
    pub max_frame: u8,
    /// `max_message_size` is 16 times this; 255 means the default (64 MiB).
    pub max_message: u8,
    /// permessage-deflate, agreed with these parameters, or not.
    pub deflate: Option<DeflateSpec>,
    /// How output is taken: 0 through `poll_transmit`; else through
    /// `transmit_slices` with `writes % 4 + 1` slices, and
    /// `advance_transmit` by at most `writes / 4 + 1` bytes at a time.
    pub writes: u8,
    /// `output_high_water` is this modulo 4097; `None` means the default
    /// (64 KiB).
    pub high_water: Option<u16>,
    /// `max_write_buffer` is 1 plus this modulo 8192; `None` means the
    /// default (16 MiB).
    pub write_buffer: Option<u16>,
    /// Keepalive, or not.
    pub keepalive: Option<KeepaliveSpec>,
    /// What happens, in order.
    pub actions: Vec<Action<'a>>,
}

/// The parameters of a permessage-deflate agreement (RFC 7692 §7.1).
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeflateSpec {
    /// The server's window is 8 plus this modulo 8 bits.
    pub server_bits: u8,
    /// The client's window is 8 plus this modulo 8 bits.
    pub client_bits: u8,
    /// `server_no_context_takeover`.
    pub server_no_context_takeover: bool,
    /// `client_no_context_takeover`.
    pub client_no_context_takeover: bool,
}

impl DeflateSpec {
    /// The client's offer of exactly these parameters.
    pub fn offer(&self) -> String {
        let mut offer = String::from("permessage-deflate");
        if self.server_no_context_takeover {
            offer.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            offer.push_str("; client_no_context_takeover");
        }
        offer.push_str(&format!(
            "; server_max_window_bits={}; client_max_window_bits={}",
            8 + self.server_bits % 8,
            8 + self.client_bits % 8
        ));
        offer
    }

    /// The agreement as `role` ends up with it, through rtwire's own
    /// negotiation: a default server accepts the offer, a default client
    /// checks the server's answer.
    pub fn agree(&self, role: Role) -> Deflate {
        let config = DeflateConfig::default();
        let offer = self.offer();
        let (server, answer) = config
            .accept_offers([offer.as_str()])
            .unwrap_or_else(|| panic!("a valid offer declined: {offer}"));
        let client = config
            .check_response(&answer)
            .unwrap_or_else(|e| panic!("the server's own answer {answer:?} refused: {e}"));
        assert_eq!(server.params(), client.params(), "both ends agree");
        let p = server.params();
        assert_eq!(
            (p.server_max_window_bits, p.client_max_window_bits),
            (8 + self.server_bits % 8, 8 + self.client_bits % 8),
            "the windows offered: {offer} -> {answer}"
        );
        assert_eq!(
            (p.server_no_context_takeover, p.client_no_context_takeover),
            (
                self.server_no_context_takeover,
                self.client_no_context_takeover
            ),
        );
        match role {
            Role::Server => server,
            Role::Client => client,
        }
    }
}

/// Keepalive's two durations, in milliseconds of the session's clock.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeepaliveSpec {
    /// The interval is 1 plus this.
    pub interval: u8,
    /// The timeout is 1 plus this.
    pub timeout: u8,
}

impl KeepaliveSpec {
    fn millis(&self) -> (u64, u64) {
        (1 + u64::from(self.interval), 1 + u64::from(self.timeout))
    }
}

/// One step of a session.
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub enum Action<'a> {
    /// Bytes arrive from the peer.
    Peer(PeerChunk<'a>),
    /// The application calls the connection.
    App(AppCall<'a>),
    /// The transport ends.
    Eof,
    /// The peer stops reading: from now on output is left queued after
    /// each action (the application still polls events and sends).
    StopReading,
    /// The peer reads: 0 means all the output, and after every action
    /// again from now on; n means n bytes (at most what is queued), in the
    /// session's slice and write sizes, without resuming.
    Read(u16),
    /// Time passes: `handle_timeout` this many milliseconds later.
    Tick(u16),
}

/// Bytes from the peer and how they are handed over.
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub struct PeerChunk<'a> {
    /// The bytes.
    pub bytes: PeerBytes<'a>,
    /// 0: all at once; n: in pieces of n bytes.
    pub piece: u8,
    /// Through `input_buffer` + `handle_input` instead of `receive_data`.
    pub via_buffer: bool,
}

/// A frame built from fields, a compressed message, or raw bytes.
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub enum PeerBytes<'a> {
    /// A frame; see [`FrameSpec`].
    Frame(FrameSpec<'a>),
    /// A message compressed by the peer's compressor (RSV1 on its first
    /// frame) and masked as the peer's role requires; see [`Compressed`].
    Compressed(Compressed<'a>),
    /// Anything.
    Raw(&'a [u8]),
}

/// A frame, biased toward the valid: most values of each field give the
/// valid choice, a few give the invalid ones.
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub struct FrameSpec<'a> {
    /// FIN.
    pub fin: bool,
    /// Below 0xF0: no RSV bits; else its low 3 bits.
    pub rsv: u8,
    /// Below 0xF0: one of the 6 defined opcodes; else its low nibble.
    pub opcode: u8,
    /// Below 0xF0: masked as the peer's role requires; else the opposite.
    pub mask: u8,
    /// The masking key.
    pub key: [u8; 4],
    /// Below 0xF0: minimal length; else 16-bit or 64-bit form.
    pub form: u8,
    /// The payload, before masking.
    pub payload: &'a [u8],
}

/// A message as a peer with permessage-deflate sends it. Without the
/// extension it is the same frames, which must fail the connection.
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub struct Compressed<'a> {
    /// Text (made UTF-8 lossily unless `raw`) or binary.
    pub text: bool,
    /// Text as it is, valid UTF-8 or not.
    pub raw: bool,
    /// The message.
    pub data: &'a [u8],
    /// 0: one frame; n: frames of n compressed bytes.
    pub fragment: u8,
}

impl Compressed<'_> {
    /// The frames' bytes, compressed with `compressor`.
    pub fn bytes(&self, role: Role, compressor: &mut PeerCompressor) -> Vec<u8> {
        let plain = if self.text && !self.raw {
            String::from_utf8_lossy(self.data).into_owned().into_bytes()
        } else {
            self.data.to_vec()
        };
        let compressed = compressor.compress(&plain);
        let pieces: Vec<&[u8]> = match self.fragment {
            0 => vec![&compressed],
            n => compressed.chunks(usize::from(n)).collect(),
        };
        let mask = (role == Role::Server).then_some([0x5a, 0xc3, 0x0f, 0x96]);
        let mut bytes = Vec::new();
        for (i, piece) in pieces.iter().enumerate() {
            let (rsv, opcode) = match (i, self.text) {
                (0, true) => (0b100, TEXT),
                (0, false) => (0b100, BINARY),
                _ => (0, CONT),
            };
            let fin = i + 1 == pieces.len();
            bytes.extend(build_frame(fin, rsv, opcode, mask, piece, LenForm::Minimal));
        }
        bytes
    }
}

/// The six defined opcodes, for [`FrameSpec::opcode`].
pub const OPCODES: [u8; 6] = [0x0, 0x1, 0x2, 0x8, 0x9, 0xA];

impl FrameSpec<'_> {
    /// The frame's bytes, as a peer of a connection with role `role` sends it.
    pub fn bytes(&self, role: Role) -> Vec<u8> {
        let rsv = if self.rsv >= 0xF0 { self.rsv & 7 } else { 0 };
        let opcode = if self.opcode >= 0xF0 {
            self.opcode & 0x0f
        } else {
            OPCODES[usize::from(self.opcode) % OPCODES.len()]
        };
        let wanted = role == Role::Server;
        let masked = if self.mask >= 0xF0 { !wanted } else { wanted };
        let form = match self.form {
            0..=0xEF => LenForm::Minimal,
            0xF0..=0xF7 => LenForm::Ext16,
            _ => LenForm::Ext64,
        };
        build_frame(
            self.fin,
            rsv,
            opcode,
            masked.then_some(self.key),
            self.payload,
            form,
        )
    }
}

/// An application call.
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub enum AppCall<'a> {
    /// `send(Message::Text)`, the bytes made UTF-8 lossily.
    Text(&'a [u8]),
    /// `send(Message::Binary)`.
    Binary(&'a [u8]),
    /// `send(Message::Ping)`.
    Ping(&'a [u8]),
    /// `send(Message::Pong)`.
    Pong(&'a [u8]),
    /// `close(code, reason)`, or `send(Message::Close(Some(..)))`.
    Close {
        /// Below 0x8000: one of [`CLOSE_CODES`]; else itself.
        code: u16,
        /// Made UTF-8 lossily.
        reason: &'a [u8],
        /// Through `send` instead of `close`.
        via_send: bool,
    },
    /// `close_without_code()`, or `send(Message::Close(None))`.
    CloseWithoutCode {
        /// Through `send` instead of `close_without_code`.
        via_send: bool,
    },
    /// A large data message (the server writes these without copying).
    Large {
        /// Text or binary.
        text: bool,
        /// The length is 4000 plus 64 times this.
        size: u8,
        /// The byte repeated (made ASCII for text).
        fill: u8,
    },
    /// `release_idle_buffers()`: must change nothing that can be observed.
    ReleaseIdleBuffers,
}

/// Close codes for [`AppCall::Close`]: every boundary of the allowed ranges.
pub const CLOSE_CODES: [u16; 16] = [
    0, 999, 1000, 1001, 1003, 1004, 1005, 1006, 1007, 1011, 1014, 1015, 2999, 3000, 4999, 5000,
];

impl AppCall<'_> {
    fn close_code(code: u16) -> u16 {
        if code < 0x8000 {
            CLOSE_CODES[usize::from(code) % CLOSE_CODES.len()]
        } else {
            code
        }
    }
}

impl Session<'_> {
    /// The connection's role.
    pub fn role(&self) -> Role {
        if self.server {
            Role::Server
        } else {
            Role::Client
        }
    }

    /// The connection's limits.
    pub fn config(&self) -> Config {
        let mut config = Config::default();
        if self.max_frame != 255 {
            config = config.max_frame_size(usize::from(self.max_frame) * 4);
        }
        if self.max_message != 255 {
            config = config.max_message_size(usize::from(self.max_message) * 16);
        }
        if let Some(h) = self.high_water {
            config = config.output_high_water(usize::from(h) % 4097);
        }
        if let Some(w) = self.write_buffer {
            config = config.max_write_buffer(1 + usize::from(w) % 8192);
        }
        if let Some(k) = self.keepalive {
            let (interval, timeout) = k.millis();
            config = config.keepalive(Some(Keepalive {
                interval: Duration::from_millis(interval),
                timeout: Duration::from_millis(timeout),
            }));
        }
        config
    }

    /// Whether anything in the session can make back-pressure matter: a
    /// small high-water mark or write-buffer limit, or a peer that stops
    /// reading.
    fn back_pressure(&self) -> bool {
        self.high_water.is_some()
            || self.write_buffer.is_some()
            || self
                .actions
                .iter()
                .any(|a| matches!(a, Action::StopReading))
    }

    /// The agreed extension, as (the peer's compression, this end's window
    /// in bits, this end resets after every message).
    fn deflate_sides(&self) -> Option<(PeerDeflate, u8, bool)> {
        let agreed = self.deflate?.agree(self.role());
        let p = agreed.params();
        let server = (p.server_max_window_bits, p.server_no_context_takeover);
        let client = (p.client_max_window_bits, p.client_no_context_takeover);
        let (own, peer) = match self.role() {
            Role::Server => (server, client),
            Role::Client => (client, server),
        };
        let peer = PeerDeflate {
            bits: peer.0,
            no_context_takeover: peer.1,
        };
        Some((peer, own.0, own.1))
    }
}

/// This end's compression, as the driver checks it.
struct OwnDeflate {
    /// The window agreed for this end's compressor.
    bits: u8,
    /// Inflates what this end sends, with exactly that window.
    inflater: Inflater,
}

/// What a session did, for comparing runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Every event, in order.
    pub events: Vec<Event>,
    /// Every frame written, taken or not, unmasked (compressed ones
    /// inflated), in order.
    pub frames: Vec<WireFrame>,
    /// The result of every application call, in order.
    pub results: Vec<Result<(), SendError>>,
    /// An application call was made while input was held back: where it
    /// falls among the peer's frames then depends on back-pressure.
    pub app_while_held: bool,
}

/// What `buffered_output()` may reach, from the frames queued so far.
///
/// A pong is only queued while at most `output_high_water` (H) of pongs
/// were queued since the output was last empty (input is not processed
/// above it), and `send` only queues while less than `max_write_buffer`
/// (W) is buffered. Close frames (one per
/// connection, at most 2 + 125 bytes plus the masking key), keepalive
/// pings, and the pongs answering input held until the transport ended
/// are queued whatever is buffered. So at any time
///
/// ```text
/// buffered_output() <= (H + largest pong) + (W - 1 + largest sent) + unconditional
/// ```
///
/// where a term counts only once such a frame was queued and
/// `unconditional` sums all frames of the last kind.
#[derive(Default)]
struct Bounds {
    /// The largest pong the connection queued while processing input.
    largest_pong: usize,
    /// The largest frame a successful `send` of data, a ping or a pong queued.
    largest_sent: usize,
    /// Every close frame, keepalive ping and pong queued at the end of input.
    unconditional: usize,
}

/// The connection's output, as the driver has seen it: bytes taken by the
/// peer, then bytes seen queued and not taken yet.
#[derive(Default)]
struct Stream {
    log: Vec<u8>,
    /// How much of `log` the peer took.
    taken: usize,
    /// How much of `log` is decoded into frames.
    decoded: usize,
}

impl Stream {
    /// Bytes seen queued and not yet taken.
    fn queued(&self) -> usize {
        self.log.len() - self.taken
    }

    /// The peer takes `bytes`: those seen queued must be what they were.
    fn take(&mut self, bytes: &[u8]) {
        let seen = self.queued().min(bytes.len());
        assert_eq!(
            &self.log[self.taken..self.taken + seen],
            &bytes[..seen],
            "bytes changed between being queued and being taken"
        );
        self.log.extend_from_slice(&bytes[seen..]);
        self.taken += bytes.len();
    }

    /// Records what was queued since the last look, without taking it.
    fn peek(&mut self, conn: &Connection) {
        let known = self.queued();
        let queued = conn.buffered_output();
        assert!(
            queued >= known,
            "queued output shrank from {known} to {queued} bytes without being taken"
        );
        let fresh = queued_after(conn, known);
        self.log.extend_from_slice(&fresh);
    }
}

/// The queued output after its first `skip` bytes, read through
/// `transmit_slices` (which must add up to `buffered_output()`).
fn queued_after(conn: &Connection, skip: usize) -> Vec<u8> {
    let mut slots = 8;
    loop {
        let mut slices = vec![IoSlice::new(&[]); slots];
        let filled = conn.transmit_slices(&mut slices);
        if filled == slots {
            slots *= 2;
            continue;
        }
        let mut total = 0;
        let mut out = Vec::new();
        for slice in &slices[..filled] {
            assert!(!slice.is_empty(), "transmit_slices gave an empty slice");
            let start = skip.saturating_sub(total).min(slice.len());
            out.extend_from_slice(&slice[start..]);
            total += slice.len();
        }
        assert_eq!(
            total,
            conn.buffered_output(),
            "buffered_output() is what transmit_slices gives"
        );
        return out;
    }
}

/// A frame's length on the wire (lengths are minimal: checked when decoded).
fn wire_len(f: &WireFrame) -> usize {
    let n = f.payload.len();
    let ext = match n {
        0..=125 => 0,
        126..=0xffff => 2,
        _ => 8,
    };
    2 + ext + if f.masked { 4 } else { 0 } + n
}

/// Keepalive as `Connection::handle_timeout` documents it (times in
/// milliseconds since the session began): the first call arms it; at each
/// deadline, if any input arrived since the deadline was set, it waits
/// `interval` again; else if no ping is out it sends an empty one and
/// waits `timeout`; else it fails with `PeerUnresponsive`. It does
/// nothing once this end sent a close or input ended.
struct KeepaliveModel {
    interval: u64,
    timeout: u64,
    deadline: Option<u64>,
    heard: bool,
    awaiting: bool,
}

/// What a `handle_timeout` call must do.
#[derive(Debug, PartialEq)]
enum KeepaliveStep {
    Nothing,
    Ping,
    Fail,
}

impl KeepaliveModel {
    fn tick(&mut self, now: u64) -> KeepaliveStep {
        match self.deadline {
            None => self.deadline = Some(now + self.interval),
            Some(deadline) if now < deadline => {}
            Some(_) if self.heard => {
                self.deadline = Some(now + self.interval);
                self.heard = false;
                self.awaiting = false;
            }
            Some(_) if !self.awaiting => {
                self.awaiting = true;
                self.deadline = Some(now + self.timeout);
                return KeepaliveStep::Ping;
            }
            Some(_) => return KeepaliveStep::Fail,
        }
        KeepaliveStep::Nothing
    }
}

/// A frame the connection must write; a failure's close carries a reason
/// of the connection's choosing, so only its code is compared.
struct Want {
    frame: WireFrame,
    failure: bool,
}

/// The model of the closing handshake, back-pressure and keepalive the
/// driver keeps.
struct Model {
    role: Role,
    config: Config,
    /// The peer's side of permessage-deflate, for the reference.
    peer_deflate: Option<PeerDeflate>,
    /// This end's side, for checking what it sends.
    own_deflate: Option<OwnDeflate>,
    /// See [`Session::writes`].
    writes: u8,
    /// The peer's compressor (used without the extension too, whose frames
    /// must then fail the connection).
    compressor: PeerCompressor,
    /// Every byte given while input was wanted.
    received: Vec<u8>,
    eof: bool,
    close_sent: bool,
    close_received: bool,
    failed: bool,
    /// A close or a failure was reported: nothing more is read.
    input_done: bool,
    /// The peer takes all output after every action.
    reading: bool,
    stream: Stream,
    events: Vec<Event>,
    want: Vec<Want>,
    /// Every frame written, decoded, in order.
    got: Vec<WireFrame>,
    results: Vec<Result<(), SendError>>,
    app_while_held: bool,
    bounds: Bounds,
    /// Bytes of the pongs queued since the output was last empty: input
    /// is held while they are above the high-water mark.
    pongs_since_drain: usize,
    keepalive: Option<KeepaliveModel>,
    /// The last `handle_timeout` must have failed the connection.
    keepalive_fail_due: bool,
    /// Keepalive failed the connection, dropping any held input: the
    /// events are no longer those of the reference for all input.
    keepalive_failed: bool,
    /// The session's clock, in milliseconds since `base`.
    clock: u64,
    base: Instant,
}

impl Model {
    fn frame(&self, opcode: u8, payload: &[u8]) -> WireFrame {
        WireFrame {
            fin: true,
            rsv: 0,
            opcode,
            masked: self.role == Role::Client,
            payload: payload.to_vec(),
        }
    }

    fn want(&mut self, opcode: u8, payload: &[u8]) {
        let frame = self.frame(opcode, payload);
        self.want.push(Want {
            frame,
            failure: false,
        });
    }

    /// A data message as this end must send it; with RSV1 set when it must
    /// be compressed (the payload is compared after inflating).
    fn data_frame(&self, opcode: u8, payload: &[u8]) -> WireFrame {
        let threshold = DeflateConfig::default().threshold;
        let compressed = self
            .own_deflate
            .as_ref()
            .is_some_and(|own| own.bits >= 9 && payload.len() >= threshold);
        WireFrame {
            rsv: if compressed { 0b100 } else { 0 },
            ..self.frame(opcode, payload)
        }
    }

    /// Input arrived, as far as keepalive is concerned.
    fn heard(&mut self) {
        if let Some(k) = self.keepalive.as_mut() {
            k.heard = true;
        }
    }

    /// The largest pong: 125 bytes of payload, a 2-byte header, and a
    /// masking key from a client.
    fn max_control_frame(&self) -> usize {
        2 + 125 + if self.role == Role::Client { 4 } else { 0 }
    }

    /// Output was taken: once none is left, every pong queued was written.
    fn note_taken(&mut self, conn: &Connection) {
        if conn.buffered_output() == 0 {
            self.pongs_since_drain = 0;
        }
    }

    /// Input is held back: the pongs queued since the output was last
    /// empty are above the high-water mark.
    fn pongs_above_mark(&self) -> bool {
        self.pongs_since_drain > self.config.output_high_water
    }

    /// See [`Bounds`].
    fn check_bound(&self, buffered: usize) {
        let b = &self.bounds;
        let pongs = if b.largest_pong > 0 {
            self.config.output_high_water + b.largest_pong
        } else {
            0
        };
        let sent = if b.largest_sent > 0 {
            self.config.max_write_buffer - 1 + b.largest_sent
        } else {
            0
        };
        let bound = pongs + sent + b.unconditional;
        assert!(
            buffered <= bound,
            "{buffered} bytes buffered, over the bound {bound}: high water {}, write buffer {}, \
             largest pong {}, largest sent {}, close frames, pings and pongs at EOF {}",
            self.config.output_high_water,
            self.config.max_write_buffer,
            b.largest_pong,
            b.largest_sent,
            b.unconditional
        );
    }

    /// The connection's output is above the high-water mark and it holds
    /// input it has not processed.
    fn holding(conn: &mut Connection) -> bool {
        conn.wants_input() && !conn.wants_read() && !conn.input_buffer().is_empty()
    }
}

/// Plays `session`, then (when back-pressure could matter and keepalive is
/// off) plays it again with the default high-water mark and write-buffer
/// limit and a peer that always reads, without the sends that failed for
/// a full write buffer: back-pressure may change when things happen,
/// never what. The events must be the same; so must the results of the
/// application calls and every frame written, in order, unless the
/// application called while input was held (its calls then fall at
/// another place among the peer's frames, which can rightly change their
/// results: a send before the peer's close is read succeeds).
pub fn check(session: &Session) -> Outcome {
    let outcome = run(session);
    if session.keepalive.is_some() || !session.back_pressure() {
        return outcome;
    }
    let full = |r: &Result<(), SendError>| matches!(r, Err(SendError::WriteBufferFull { .. }));
    let mut results = outcome.results.iter();
    let actions = session
        .actions
        .iter()
        .filter(|a| match a {
            Action::App(_) => !results.next().is_some_and(full),
            Action::StopReading | Action::Read(_) => false,
            _ => true,
        })
        .cloned()
        .collect();
    let plain = Session {
        high_water: None,
        write_buffer: None,
        actions,
        ..session.clone()
    };
    let without = run(&plain);
    assert_eq!(
        outcome.events, without.events,
        "back-pressure changed the events"
    );
    if !outcome.app_while_held {
        let kept: Vec<_> = outcome
            .results
            .iter()
            .filter(|r| !full(r))
            .cloned()
            .collect();
        assert_eq!(
            kept, without.results,
            "back-pressure changed the results of application calls"
        );
        assert_eq!(
            outcome.frames, without.frames,
            "back-pressure changed the frames written"
        );
    }
    outcome
}

/// Plays `session` against a fresh connection, checking every invariant;
/// panics with a description when one breaks. At the end the peer reads
/// everything, so all input held back is processed.
pub fn run(session: &Session) -> Outcome {
    let role = session.role();
    let config = session.config();
    let mut conn = Connection::new(role, config.clone());
    let sides = session.deflate_sides();
    if let Some(spec) = session.deflate {
        conn = conn.with_deflate(spec.agree(role));
    }
    let (peer_bits, peer_reset) =
        sides.map_or((15, false), |(p, _, _)| (p.bits, p.no_context_takeover));
    let mut m = Model {
        role,
        config,
        peer_deflate: sides.map(|(peer, _, _)| peer),
        own_deflate: sides.map(|(_, bits, reset)| OwnDeflate {
            bits,
            inflater: Inflater::new(bits, reset),
        }),
        compressor: PeerCompressor::new(peer_bits, peer_reset),
        writes: session.writes,
        received: Vec::new(),
        eof: false,
        close_sent: false,
        close_received: false,
        failed: false,
        input_done: false,
        reading: true,
        stream: Stream::default(),
        events: Vec::new(),
        want: Vec::new(),
        got: Vec::new(),
        results: Vec::new(),
        app_while_held: false,
        bounds: Bounds::default(),
        pongs_since_drain: 0,
        keepalive: session.keepalive.map(|k| {
            let (interval, timeout) = k.millis();
            KeepaliveModel {
                interval,
                timeout,
                deadline: None,
                heard: false,
                awaiting: false,
            }
        }),
        keepalive_fail_due: false,
        keepalive_failed: false,
        clock: 0,
        base: Instant::now(),
    };
    check_queries(&mut conn, &m);
    for action in &session.actions {
        match action {
            Action::Peer(chunk) => {
                let bytes = match &chunk.bytes {
                    PeerBytes::Frame(spec) => spec.bytes(role),
                    PeerBytes::Compressed(message) => message.bytes(role, &mut m.compressor),
                    PeerBytes::Raw(raw) => raw.to_vec(),
                };
                receive(&mut conn, &mut m, &bytes, chunk);
            }
            Action::App(call) => app(&mut conn, &mut m, call),
            Action::Eof => {
                feed(&mut conn, &mut m, Input::Eof);
                if !m.input_done {
                    m.eof = true;
                }
            }
            Action::StopReading => m.reading = false,
            Action::Read(0) => m.reading = true,
            Action::Read(n) => {
                let (slots, step) = slices_and_step(m.writes);
                let out = write_slices(&mut conn, slots, step, usize::from(*n));
                m.stream.take(&out);
                m.note_taken(&conn);
            }
            Action::Tick(ms) => tick(&mut conn, &mut m, *ms),
        }
        settle(&mut conn, &mut m, action);
    }
    // The peer reads at last: whatever was held is processed now, and the
    // events are the reference's for all the input (checked in settle:
    // with no output left, nothing can be held).
    m.reading = true;
    settle(&mut conn, &mut m, &Action::Read(0));
    Outcome {
        events: m.events,
        frames: m.got,
        results: m.results,
        app_while_held: m.app_while_held,
    }
}

fn receive(conn: &mut Connection, m: &mut Model, bytes: &[u8], chunk: &PeerChunk) {
    let pieces: Vec<&[u8]> = match chunk.piece {
        0 => vec![bytes],
        n => bytes.chunks(usize::from(n)).collect(),
    };
    for piece in pieces {
        if chunk.via_buffer {
            feed(conn, m, Input::Buffer(piece));
        } else {
            feed(conn, m, Input::Data(piece));
        }
    }
    if !m.input_done && !m.eof {
        m.received.extend_from_slice(bytes);
    }
}

/// One call of the connection's input side.
#[derive(Clone, Copy, Debug)]
enum Input<'b> {
    /// `receive_data`.
    Data(&'b [u8]),
    /// `input_buffer` + `handle_input`.
    Buffer(&'b [u8]),
    /// `receive_eof`.
    Eof,
    /// `poll_event`.
    Poll,
}

/// Makes one input call and checks what back-pressure lets it do: while
/// the output is above the high-water mark, bytes are kept and nothing is
/// processed; a pong is only queued while at most the mark is buffered
/// (except at the end of input, which reads what was held whatever the
/// output); close frames only when an event is polled. Returns the event
/// polled.
fn feed(conn: &mut Connection, m: &mut Model, input: Input) -> Option<Event> {
    let high_water = m.config.output_high_water;
    let before = conn.buffered_output();
    let above = conn.wants_input() && m.pongs_above_mark();
    let had_events = conn.has_events();
    let held_before = conn.input_buffer().len();
    let mut event = None;
    match input {
        Input::Data(piece) => {
            if conn.wants_input() && !piece.is_empty() {
                m.heard();
            }
            conn.receive_data(piece);
        }
        Input::Buffer(piece) => {
            conn.input_buffer().extend_from_slice(piece);
            // handle_input counts whatever is in the buffer as a sign of life.
            if !conn.input_buffer().is_empty() {
                m.heard();
            }
            conn.handle_input();
        }
        Input::Eof => conn.receive_eof(),
        Input::Poll => event = conn.poll_event(),
    }
    let after = conn.buffered_output();
    assert!(after >= before, "output vanished without being taken");
    match input {
        Input::Data(piece) | Input::Buffer(piece) if above => {
            assert_eq!(
                after, before,
                "input processed while the output ({before} bytes) is above the high-water mark \
                 ({high_water})"
            );
            assert_eq!(
                conn.has_events(),
                had_events,
                "an event from input given while the output is above the high-water mark"
            );
            assert_eq!(
                conn.input_buffer().len(),
                held_before + piece.len(),
                "input given while the output is above the high-water mark must be kept"
            );
        }
        Input::Poll if above && !had_events => {
            assert_eq!(event, None, "input processed above the high-water mark");
            assert_eq!(after, before, "output queued above the high-water mark");
        }
        _ => {}
    }
    if after > before {
        let fresh = queued_after(conn, before);
        assert_eq!(fresh.len(), after - before);
        let frames = decode_stream(&fresh)
            .unwrap_or_else(|e| panic!("bad output from {input:?}: {fresh:x?}: {e}"));
        let mut at = before;
        for (i, f) in frames.iter().enumerate() {
            let len = wire_len(f);
            match f.opcode {
                PONG => {
                    assert!(len <= m.max_control_frame(), "pong of {len} bytes");
                    if matches!(input, Input::Eof) {
                        m.bounds.unconditional += len;
                    } else {
                        assert!(
                            m.pongs_since_drain <= high_water,
                            "a pong queued with {} bytes of pongs unwritten since the output \
                             drained, above the high-water mark {high_water}",
                            m.pongs_since_drain
                        );
                        m.bounds.largest_pong = m.bounds.largest_pong.max(len);
                    }
                    m.pongs_since_drain += len;
                }
                CLOSE => {
                    assert!(
                        matches!(input, Input::Poll) && i + 1 == frames.len(),
                        "a close frame queued by {input:?}: {frames:?}"
                    );
                    m.bounds.unconditional += len;
                }
                _ => panic!("{input:?} queued {f:?}"),
            }
            at += len;
        }
        assert_eq!(at, after);
    }
    m.check_bound(after);
    event
}

/// After an action: the application polls every event, and a peer that
/// reads takes all output (which may let held input be processed, and so
/// on); then the output, the events and the queries are checked.
fn settle(conn: &mut Connection, m: &mut Model, action: &Action) {
    loop {
        while let Some(event) = feed(conn, m, Input::Poll) {
            on_event(m, event);
        }
        if m.reading && conn.has_output() {
            let out = take_all(conn, m.writes);
            m.stream.take(&out);
            m.note_taken(conn);
            continue;
        }
        break;
    }
    check_output(conn, m, action);
    check_events(conn, m, action);
    check_queries(conn, m);
}

/// An event polled: what it says about the connection, and the frames it
/// calls for.
fn on_event(m: &mut Model, event: Event) {
    assert!(
        !m.input_done,
        "an event after the close or failure: {event:?}"
    );
    match &event {
        Event::Message(Message::Ping(p)) => {
            assert!(p.len() <= 125);
            // Decoded in this action, so before any close this end sent
            // since: the model's close_sent is the one at decoding time.
            if !m.close_sent {
                m.want(PONG, p);
            }
        }
        Event::Message(Message::Pong(p)) => assert!(p.len() <= 125),
        Event::Message(Message::Text(t)) => {
            assert!(t.len() <= m.config.max_message_size, "text over the limit");
            assert!(std::str::from_utf8(t.as_bytes()).is_ok());
        }
        Event::Message(Message::Binary(b)) => {
            assert!(
                b.len() <= m.config.max_message_size,
                "binary over the limit"
            );
        }
        Event::Message(Message::Close(frame)) => {
            m.input_done = true;
            m.close_received = true;
            if !m.close_sent {
                // The reply echoes the code and the reason.
                let payload = frame.as_ref().map_or(Vec::new(), |f| {
                    let mut payload = f.code.0.to_be_bytes().to_vec();
                    payload.extend_from_slice(f.reason.as_bytes());
                    payload
                });
                m.want(CLOSE, &payload);
                m.close_sent = true;
            }
        }
        Event::Failed(error) => {
            m.input_done = true;
            let keepalive = *error == ProtocolError::PeerUnresponsive;
            assert_eq!(
                keepalive, m.keepalive_fail_due,
                "{error:?}: keepalive must fail exactly when its timeout passes without input"
            );
            m.keepalive_failed |= keepalive;
            if !m.close_sent && *error != ProtocolError::AbnormalClosure {
                // The payload is checked below; only its code is known here.
                let frame = failure_close(m, error);
                m.want.push(Want {
                    frame,
                    failure: true,
                });
            }
            m.close_sent = true;
            m.failed = true;
        }
    }
    m.keepalive_fail_due = false;
    m.events.push(event);
}

/// The output written since the last check decodes into whole frames, and
/// they are exactly the frames expected since then.
fn check_output(conn: &Connection, m: &mut Model, action: &Action) {
    m.stream.peek(conn);
    let fresh = &m.stream.log[m.stream.decoded..];
    let mut frames = decode_stream(fresh).unwrap_or_else(|e| panic!("bad output {fresh:x?}: {e}"));
    m.stream.decoded = m.stream.log.len();
    for f in &mut frames {
        check_frame(m, f);
    }
    let start = m.got.len();
    m.got.extend(frames);
    let (got, want) = (&m.got[start..], &m.want[start.min(m.want.len())..]);
    let failure_reason_ok = |got: &WireFrame, want: &WireFrame| {
        // A failure's close frame carries the error's code and a reason of
        // our choosing: compare the code, check the reason is UTF-8.
        got.opcode == CLOSE
            && want.opcode == CLOSE
            && want.payload.len() == 2
            && got.payload.len() >= 2
            && got.payload[..2] == want.payload[..]
            && std::str::from_utf8(&got.payload[2..]).is_ok()
            && (got.fin, got.rsv, got.masked) == (want.fin, want.rsv, want.masked)
    };
    let same = got.len() == want.len()
        && got.iter().zip(want).all(|(got, want)| {
            *got == want.frame || (want.failure && failure_reason_ok(got, &want.frame))
        });
    assert!(
        same,
        "output after {action:?} (events so far {:?}):\n got {got:?}\nwant {:?}",
        m.events,
        want.iter().map(|w| &w.frame).collect::<Vec<_>>()
    );
}

/// The events equal the reference's for all input so far, or, while input
/// is held back, are a prefix of them.
fn check_events(conn: &mut Connection, m: &Model, action: &Action) {
    if m.keepalive_failed {
        return;
    }
    let expected = reference_events(m.role, &m.config, m.peer_deflate, &m.received, m.eof);
    // Not above the high-water mark (or done): everything given was read.
    let complete = !conn.wants_input() || conn.wants_read();
    let ok = if complete {
        expected.allows(&m.events)
    } else {
        expected.allows_prefix(&m.events)
    };
    assert!(
        ok,
        "events differ from the reference (role {:?}, {:?}, {:?}, {}) after {action:?}; \
         all input so far: {:x?}\n got {:?}\nwant {expected:?}",
        m.role,
        m.config,
        m.peer_deflate,
        if complete {
            "all input read"
        } else {
            "input held back"
        },
        m.received,
        m.events,
    );
}

/// The close frame a failure calls for; the reason is checked separately.
fn failure_close(m: &Model, error: &ProtocolError) -> WireFrame {
    let code = error.close_code();
    assert!(
        code_allowed(code.0),
        "failure {error:?} maps to close code {code} that may not be sent"
    );
    m.frame(CLOSE, &code.0.to_be_bytes())
}

fn app(conn: &mut Connection, m: &mut Model, call: &AppCall) {
    let before = conn.buffered_output();
    let held_before = conn.input_buffer().len();
    if Model::holding(conn) && !matches!(call, AppCall::ReleaseIdleBuffers) {
        m.app_while_held = true;
    }
    // send refuses data and control messages (not a close) while at least
    // max_write_buffer waits; a closed connection refuses them first.
    let full = before >= m.config.max_write_buffer;
    let write_buffer_full = Err(SendError::WriteBufferFull {
        limit: m.config.max_write_buffer,
    });
    let mut want = Vec::new();
    let result = match call {
        AppCall::Text(bytes) => {
            let text = String::from_utf8_lossy(bytes).into_owned();
            let result = conn.send(Message::text(text.clone()));
            expect_data(m, full, &result, TEXT, text.as_bytes(), &mut want);
            result
        }
        AppCall::Binary(bytes) => {
            let result = conn.send(Message::binary(bytes.to_vec()));
            expect_data(m, full, &result, BINARY, bytes, &mut want);
            result
        }
        AppCall::Ping(bytes) | AppCall::Pong(bytes) => {
            let (message, opcode) = match call {
                AppCall::Ping(_) => (Message::Ping(bytes.to_vec().into()), PING),
                _ => (Message::Pong(bytes.to_vec().into()), PONG),
            };
            let result = conn.send(message);
            if m.close_sent {
                assert_eq!(result, Err(SendError::Closed));
            } else if full {
                assert_eq!(result, write_buffer_full, "{before} bytes queued");
            } else if bytes.len() > 125 {
                assert_eq!(result, Err(SendError::ControlTooLong(bytes.len())));
            } else {
                assert_eq!(result, Ok(()), "{before} bytes queued");
                want.push(m.frame(opcode, bytes));
            }
            result
        }
        AppCall::Large { text, size, fill } => {
            let len = 4000 + 64 * usize::from(*size);
            let (result, opcode, payload) = if *text {
                let s = String::from(char::from(b'a' + fill % 26)).repeat(len);
                let payload = s.clone().into_bytes();
                (conn.send(Message::text(s)), TEXT, payload)
            } else {
                let payload = vec![*fill; len];
                (conn.send(Message::binary(payload.clone())), BINARY, payload)
            };
            expect_data(m, full, &result, opcode, &payload, &mut want);
            result
        }
        AppCall::Close {
            code,
            reason,
            via_send,
        } => {
            let code = AppCall::close_code(*code);
            let reason = String::from_utf8_lossy(reason).into_owned();
            let result = if *via_send {
                conn.send(Message::Close(Some(CloseFrame {
                    code: CloseCode(code),
                    reason: reason.clone(),
                })))
            } else {
                conn.close(CloseCode(code), &reason)
            };
            if m.close_sent {
                assert_eq!(result, Err(SendError::Closed));
            } else if !code_allowed(code) {
                assert_eq!(result, Err(SendError::InvalidCloseCode(code)));
            } else if reason.len() > 123 {
                assert_eq!(result, Err(SendError::ReasonTooLong(reason.len())));
            } else {
                assert_eq!(result, Ok(()), "a close is never refused for a full buffer");
                let mut payload = code.to_be_bytes().to_vec();
                payload.extend_from_slice(reason.as_bytes());
                want.push(m.frame(CLOSE, &payload));
                m.close_sent = true;
            }
            result
        }
        AppCall::ReleaseIdleBuffers => {
            conn.release_idle_buffers();
            assert_eq!(
                conn.input_buffer().len(),
                held_before,
                "release_idle_buffers dropped input"
            );
            Ok(())
        }
        AppCall::CloseWithoutCode { via_send } => {
            let result = if *via_send {
                conn.send(Message::Close(None))
            } else {
                conn.close_without_code()
            };
            if m.close_sent {
                assert_eq!(result, Err(SendError::Closed));
            } else {
                assert_eq!(result, Ok(()), "a close is never refused for a full buffer");
                want.push(m.frame(CLOSE, &[]));
                m.close_sent = true;
            }
            result
        }
    };
    assert!(!conn.has_events(), "an application call made an event");
    let after = conn.buffered_output();
    let queued = after - before;
    match (&result, call) {
        (Err(_), _) | (Ok(()), AppCall::ReleaseIdleBuffers) => {
            assert_eq!(
                queued, 0,
                "{call:?} gave {result:?} and queued {queued} bytes"
            )
        }
        (Ok(()), AppCall::Close { .. } | AppCall::CloseWithoutCode { .. }) => {
            m.bounds.unconditional += queued;
        }
        (Ok(()), _) => m.bounds.largest_sent = m.bounds.largest_sent.max(queued),
    }
    m.check_bound(after);
    m.results.push(result);
    m.want.extend(want.into_iter().map(|frame| Want {
        frame,
        failure: false,
    }));
}

fn expect_data(
    m: &Model,
    full: bool,
    result: &Result<(), SendError>,
    opcode: u8,
    payload: &[u8],
    want: &mut Vec<WireFrame>,
) {
    if m.close_sent {
        assert_eq!(*result, Err(SendError::Closed));
    } else if full {
        let limit = m.config.max_write_buffer;
        assert_eq!(*result, Err(SendError::WriteBufferFull { limit }));
    } else {
        assert_eq!(*result, Ok(()));
        want.push(m.data_frame(opcode, payload));
    }
}

/// Time passes; keepalive must do exactly what its model says.
fn tick(conn: &mut Connection, m: &mut Model, ms: u16) {
    m.clock += u64::from(ms);
    let before = conn.buffered_output();
    let active = !m.close_sent && !m.input_done;
    let step = match m.keepalive.as_mut() {
        Some(k) if active => k.tick(m.clock),
        _ => KeepaliveStep::Nothing,
    };
    conn.handle_timeout(m.base + Duration::from_millis(m.clock));
    let after = conn.buffered_output();
    match step {
        KeepaliveStep::Ping => {
            let ping = m.frame(PING, &[]);
            let fresh = queued_after(conn, before);
            assert_eq!(
                decode_stream(&fresh).as_deref(),
                Ok(&[ping.clone()][..]),
                "keepalive must queue one empty ping, masked iff client"
            );
            m.bounds.unconditional += after - before;
            m.want.push(Want {
                frame: ping,
                failure: false,
            });
        }
        KeepaliveStep::Fail => {
            assert_eq!(after, before, "keepalive failure queued output at once");
            assert!(
                conn.has_events(),
                "keepalive timeout passed without failing"
            );
            m.keepalive_fail_due = true;
        }
        KeepaliveStep::Nothing => {
            assert_eq!(
                after, before,
                "handle_timeout queued output at {} ms",
                m.clock
            );
            assert!(!conn.has_events(), "handle_timeout made an event");
        }
    }
    m.check_bound(after);
}

/// Checks one frame written: masked iff client, close payloads valid,
/// compressed frames only as agreed (their payload is replaced with the
/// inflated message).
fn check_frame(m: &mut Model, f: &mut WireFrame) {
    if f.rsv != 0 {
        inflate_own(m, f);
    }
    assert_eq!(
        f.masked,
        m.role == Role::Client,
        "client output must be masked, server output must not: {f:?}"
    );
    if f.opcode == CLOSE {
        match f.payload.as_slice() {
            [] => {}
            [hi, lo, reason @ ..] => {
                let code = u16::from_be_bytes([*hi, *lo]);
                assert!(code_allowed(code), "close code {code} written");
                assert!(reason.len() <= 123 && std::str::from_utf8(reason).is_ok());
            }
            [_] => panic!("one-byte close payload written"),
        }
    }
}

/// The slices per `transmit_slices` call and the bytes per write that
/// [`Session::writes`] asks for.
fn slices_and_step(writes: u8) -> (usize, usize) {
    (usize::from(writes % 4) + 1, usize::from(writes / 4) + 1)
}

/// Takes all output as [`Session::writes`] says.
fn take_all(conn: &mut Connection, writes: u8) -> Vec<u8> {
    match writes {
        0 => take_transmit(conn),
        w => {
            let (slots, step) = slices_and_step(w);
            write_slices(conn, slots, step, usize::MAX)
        }
    }
}

/// All output through `poll_transmit`.
fn take_transmit(conn: &mut Connection) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(chunk) = conn.poll_transmit() {
        assert!(!chunk.is_empty(), "poll_transmit gave an empty chunk");
        out.extend_from_slice(&chunk);
    }
    out
}

/// Up to `limit` bytes of output through `transmit_slices`, `slots` slices
/// at a time, as a transport that writes at most `step` bytes per call
/// would take it.
fn write_slices(conn: &mut Connection, slots: usize, step: usize, limit: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while out.len() < limit {
        let mut slices = [IoSlice::new(&[]); 4];
        let slices = &mut slices[..slots];
        let filled = conn.transmit_slices(slices);
        assert_eq!(filled > 0, conn.has_output(), "slices and has_output agree");
        if filled == 0 {
            break;
        }
        let mut left = step.min(limit - out.len());
        let want = left;
        for slice in &slices[..filled] {
            assert!(!slice.is_empty(), "transmit_slices gave an empty slice");
            let n = left.min(slice.len());
            out.extend_from_slice(&slice[..n]);
            left -= n;
            if left == 0 {
                break;
            }
        }
        conn.advance_transmit(want - left);
    }
    out
}

/// Checks that a frame with RSV bits is a compressed message this end may
/// send, and replaces its payload with the inflated message.
fn inflate_own(m: &mut Model, f: &mut WireFrame) {
    let Some(own) = m.own_deflate.as_mut() else {
        panic!("RSV bits written without an extension: {f:?}");
    };
    assert_eq!(f.rsv, 0b100, "only RSV1 is defined: {f:?}");
    assert!(
        f.fin && matches!(f.opcode, TEXT | BINARY),
        "RSV1 on a frame other than a whole data message: {f:?}"
    );
    assert!(own.bits >= 9, "compressed although the window is 8 bits");
    let mut plain = Vec::new();
    let result = own.inflater.frame(&f.payload, true, &mut plain, usize::MAX);
    assert!(
        !result.corrupt,
        "our compressed message does not inflate with the agreed {}-bit window: {f:?}",
        own.bits
    );
    f.payload = plain;
}

/// After every action, the queries agree with the model.
fn check_queries(conn: &mut Connection, m: &Model) {
    assert!(!conn.has_events());
    let queued = m.stream.queued();
    assert_eq!(conn.buffered_output(), queued, "buffered_output");
    assert_eq!(conn.has_output(), queued > 0, "has_output");
    if m.reading {
        assert_eq!(queued, 0, "a reading peer takes all output");
    }
    let state = if m.failed || m.close_received {
        State::Closed
    } else if m.close_sent {
        State::Closing
    } else {
        State::Open
    };
    assert_eq!(conn.state(), state, "state");
    assert_eq!(conn.wants_input(), !m.input_done, "wants_input");
    assert_eq!(
        conn.wants_read(),
        !m.input_done && !m.pongs_above_mark(),
        "wants_read with {queued} bytes queued, {} of pongs since it drained",
        m.pongs_since_drain
    );
    let close_transport = m.failed || (m.role == Role::Server && m.close_sent && m.close_received);
    assert_eq!(
        conn.should_close_transport(),
        close_transport && queued == 0,
        "should_close_transport"
    );
    let deadline = match &m.keepalive {
        Some(k) if !m.close_sent && !m.input_done => k.deadline,
        _ => None,
    };
    assert_eq!(
        conn.poll_timeout(),
        deadline.map(|ms| m.base + Duration::from_millis(ms)),
        "poll_timeout"
    );
    m.check_bound(queued);
}
