//! The `connection` target's input and driver.
//!
//! A [`Session`] is a role, two small limits, permessage-deflate or not,
//! and a list of [`Action`]s: bytes from the peer (a frame built from
//! fuzzed fields, a message compressed as the peer would, or raw bytes),
//! calls of the application, and the end of the transport. [`run`] plays it against a [`Connection`] and panics when an
//! invariant breaks. Every check is against an independent expectation:
//!
//! - the events equal those of the reference receiver in [`crate::model`]
//!   for the bytes read so far, after every action (so they cannot depend
//!   on how the bytes were chunked);
//! - the output decodes strictly into whole frames, and they are exactly
//!   the frames expected: what the application sent (with the extension:
//!   RSV1 set and the payload inflating, with the agreed window, to the
//!   message exactly when the message is at least the threshold long and
//!   this end's window is not 8 bits), a pong for each ping
//!   received before this end sent a close, the reply to the peer's close,
//!   and after a failure a close with exactly `error.close_code()`
//!   (nothing for 1006) — masked by a client, unmasked by a server;
//! - every close code written is allowed on the wire;
//! - no message is larger than `max_message_size`;
//! - the results of the application calls, `state()`, `wants_input()`,
//!   `should_close_transport()` and the `has_*` queries agree with a model
//!   of the closing handshake.

use std::io::IoSlice;

use arbitrary::Arbitrary;
use rtwire::proto::deflate::{Deflate, DeflateConfig};
use rtwire::proto::{
    CloseCode, CloseFrame, Config, Connection, Event, Message, ProtocolError, Role, SendError,
    State,
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

/// One step of a session.
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub enum Action<'a> {
    /// Bytes arrive from the peer.
    Peer(PeerChunk<'a>),
    /// The application calls the connection.
    App(AppCall<'a>),
    /// The transport ends.
    Eof,
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
        config
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
    /// Every frame written, unmasked.
    pub frames: Vec<WireFrame>,
}

/// The model of the closing handshake the driver keeps.
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
    events: Vec<Event>,
    frames: Vec<WireFrame>,
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
}

/// Plays `session` against a fresh connection, checking every invariant;
/// panics with a description when one breaks.
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
        events: Vec::new(),
        frames: Vec::new(),
    };
    check_quiet(&conn, &m);
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
                let close_sent_before = m.close_sent;
                conn.receive_eof();
                if !m.input_done {
                    m.eof = true;
                }
                after_input(&mut conn, &mut m, close_sent_before, &[]);
            }
        }
    }
    Outcome {
        events: m.events,
        frames: m.frames,
    }
}

fn receive(conn: &mut Connection, m: &mut Model, bytes: &[u8], chunk: &PeerChunk) {
    let close_sent_before = m.close_sent;
    let pieces: Vec<&[u8]> = match chunk.piece {
        0 => vec![bytes],
        n => bytes.chunks(usize::from(n)).collect(),
    };
    for piece in pieces {
        if chunk.via_buffer {
            conn.input_buffer().extend_from_slice(piece);
            conn.handle_input();
        } else {
            conn.receive_data(piece);
        }
    }
    if !m.input_done && !m.eof {
        m.received.extend_from_slice(bytes);
    }
    after_input(conn, m, close_sent_before, bytes);
}

/// After input: the new events must be the reference's, and the output the
/// pongs and close frames they call for.
fn after_input(conn: &mut Connection, m: &mut Model, close_sent_before: bool, bytes: &[u8]) {
    let new: Vec<Event> = std::iter::from_fn(|| conn.poll_event()).collect();
    let expected = reference_events(m.role, &m.config, m.peer_deflate, &m.received, m.eof);
    let mut all = m.events.clone();
    all.extend(new.iter().cloned());
    assert!(
        expected.allows(&all),
        "events differ from the reference (role {:?}, {:?}, {:?}) after feeding {bytes:x?}; \
         all input so far: {:x?}\n got {all:?}\nwant {expected:?}",
        m.role,
        m.config,
        m.peer_deflate,
        m.received
    );
    let mut want = Vec::new();
    for event in &new {
        assert!(
            !m.input_done,
            "an event after the close or failure: {event:?}"
        );
        match event {
            Event::Message(Message::Ping(p)) => {
                assert!(p.len() <= 125);
                if !close_sent_before {
                    want.push(m.frame(PONG, p));
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
                    let payload = frame
                        .as_ref()
                        .map_or(Vec::new(), |f| f.code.0.to_be_bytes().to_vec());
                    want.push(m.frame(CLOSE, &payload));
                    m.close_sent = true;
                }
            }
            Event::Failed(error) => {
                m.input_done = true;
                if !m.close_sent && *error != ProtocolError::AbnormalClosure {
                    // The payload is checked below; only its shape is known here.
                    want.push(failure_close(m, error));
                }
                m.close_sent = true;
                m.failed = true;
            }
        }
    }
    m.events.extend(new.iter().cloned());
    let frames = drain(conn, m);
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
    let failure_frame = new.iter().any(|e| matches!(e, Event::Failed(_)));
    let same = frames.len() == want.len()
        && frames
            .iter()
            .zip(&want)
            .all(|(got, want)| got == want || (failure_frame && failure_reason_ok(got, want)));
    assert!(
        same,
        "output after input {bytes:x?} (events {new:?}):\n got {frames:?}\nwant {want:?}"
    );
    m.frames.extend(frames);
    check_quiet(conn, m);
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
    let mut want = Vec::new();
    match call {
        AppCall::Text(bytes) => {
            let text = String::from_utf8_lossy(bytes).into_owned();
            let result = conn.send(Message::text(text.clone()));
            expect_data(m, result, TEXT, text.as_bytes(), &mut want);
        }
        AppCall::Binary(bytes) => {
            let result = conn.send(Message::binary(bytes.to_vec()));
            expect_data(m, result, BINARY, bytes, &mut want);
        }
        AppCall::Ping(bytes) | AppCall::Pong(bytes) => {
            let (message, opcode) = match call {
                AppCall::Ping(_) => (Message::Ping(bytes.to_vec().into()), PING),
                _ => (Message::Pong(bytes.to_vec().into()), PONG),
            };
            let result = conn.send(message);
            if m.close_sent {
                assert_eq!(result, Err(SendError::Closed));
            } else if bytes.len() > 125 {
                assert_eq!(result, Err(SendError::ControlTooLong(bytes.len())));
            } else {
                assert_eq!(result, Ok(()));
                want.push(m.frame(opcode, bytes));
            }
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
            expect_data(m, result, opcode, &payload, &mut want);
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
                assert_eq!(result, Ok(()));
                let mut payload = code.to_be_bytes().to_vec();
                payload.extend_from_slice(reason.as_bytes());
                want.push(m.frame(CLOSE, &payload));
                m.close_sent = true;
            }
        }
        AppCall::ReleaseIdleBuffers => conn.release_idle_buffers(),
        AppCall::CloseWithoutCode { via_send } => {
            let result = if *via_send {
                conn.send(Message::Close(None))
            } else {
                conn.close_without_code()
            };
            if m.close_sent {
                assert_eq!(result, Err(SendError::Closed));
            } else {
                assert_eq!(result, Ok(()));
                want.push(m.frame(CLOSE, &[]));
                m.close_sent = true;
            }
        }
    }
    assert!(!conn.has_events(), "an application call made an event");
    let frames = drain(conn, m);
    assert_eq!(frames, want, "output of {call:?}");
    m.frames.extend(frames);
    check_quiet(conn, m);
}

fn expect_data(
    m: &Model,
    result: Result<(), SendError>,
    opcode: u8,
    payload: &[u8],
    want: &mut Vec<WireFrame>,
) {
    if m.close_sent {
        assert_eq!(result, Err(SendError::Closed));
    } else {
        assert_eq!(result, Ok(()));
        want.push(m.data_frame(opcode, payload));
    }
}

/// Takes all output and decodes it strictly; a compressed frame keeps its
/// RSV1 but gets its inflated payload.
fn drain(conn: &mut Connection, m: &mut Model) -> Vec<WireFrame> {
    let out = match m.writes {
        0 => take_transmit(conn),
        w => write_slices(conn, usize::from(w % 4) + 1, usize::from(w / 4) + 1),
    };
    let mut frames = decode_stream(&out).unwrap_or_else(|e| panic!("bad output {out:x?}: {e}"));
    for f in &mut frames {
        if f.rsv != 0 {
            inflate_own(m, f);
        }
        assert_eq!(
            f.masked,
            conn.role() == Role::Client,
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
    frames
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

/// All output through `transmit_slices`, `slots` slices at a time, as a
/// transport that writes at most `step` bytes per call would take it.
fn write_slices(conn: &mut Connection, slots: usize, step: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let mut slices = vec![IoSlice::new(&[]); slots];
        let filled = conn.transmit_slices(&mut slices);
        assert_eq!(filled > 0, conn.has_output(), "slices and has_output agree");
        if filled == 0 {
            return out;
        }
        let mut left = step;
        for slice in &slices[..filled] {
            assert!(!slice.is_empty(), "transmit_slices gave an empty slice");
            let n = left.min(slice.len());
            out.extend_from_slice(&slice[..n]);
            left -= n;
            if left == 0 {
                break;
            }
        }
        conn.advance_transmit(step - left);
    }
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

/// With all events and output taken, the queries agree with the model.
fn check_quiet(conn: &Connection, m: &Model) {
    assert!(!conn.has_events());
    assert!(!conn.has_output());
    let state = if m.failed || m.close_received {
        State::Closed
    } else if m.close_sent {
        State::Closing
    } else {
        State::Open
    };
    assert_eq!(conn.state(), state, "state");
    assert_eq!(conn.wants_input(), !m.input_done, "wants_input");
    let close_transport = m.failed || (m.role == Role::Server && m.close_sent && m.close_received);
    assert_eq!(
        conn.should_close_transport(),
        close_transport,
        "should_close_transport"
    );
}
