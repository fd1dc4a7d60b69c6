//! The connection state machine: bytes in, events and bytes out.
//!
//! [`Connection`] holds everything RFC 6455 asks of an endpoint after the
//! opening handshake, for either role, and does no I/O. Its verbs:
//!
//! - [`receive_data`](Connection::receive_data) (or
//!   [`input_buffer`](Connection::input_buffer) +
//!   [`handle_input`](Connection::handle_input) to read straight into its
//!   buffer) when bytes arrive, [`receive_eof`](Connection::receive_eof) when
//!   the transport ends;
//! - [`poll_event`](Connection::poll_event) after either, until it returns `None`;
//! - [`send`](Connection::send), [`close`](Connection::close) when the
//!   application has something to say;
//! - [`poll_transmit`](Connection::poll_transmit) after any of the above,
//!   until it returns `None`, writing each chunk to the transport in order;
//! - [`should_close_transport`](Connection::should_close_transport) after
//!   writing: when true, close the transport;
//! - [`wants_read`](Connection::wants_read) before reading: false while the
//!   pongs queued since the output last drained are above
//!   [`Config::output_high_water`], so a peer that pings but never reads
//!   is slowed down to the pace at which it reads, instead of growing the
//!   output (what the application queues is bounded by
//!   [`Config::max_write_buffer`] instead);
//! - [`handle_timeout`](Connection::handle_timeout) when the instant from
//!   [`poll_timeout`](Connection::poll_timeout) has passed, if keepalive
//!   is on ([`Config::keepalive`]). Time is passed in, never read.
//!
//! ```
//! use rtwire::proto::{Connection, Config, Event, Message, Role};
//! let mut client = Connection::new(Role::Client, Config::default());
//! let mut server = Connection::new(Role::Server, Config::default());
//! client.send(Message::text("hello")).unwrap();
//! while let Some(bytes) = client.poll_transmit() {
//!     server.receive_data(&bytes);
//! }
//! match server.poll_event() {
//!     Some(Event::Message(Message::Text(text))) => assert_eq!(text, "hello"),
//!     other => panic!("unexpected {other:?}"),
//! }
//! ```

use bytes::{Buf, Bytes, BytesMut};
use std::collections::VecDeque;
use std::io::IoSlice;
use std::time::{Duration, Instant};

use super::close::{encode_payload, truncate_reason, CloseCode, CloseFrame, MAX_REASON_LEN};
use super::deflate::{Codec, CompressionKey, Deflate, InflateError};
use super::error::{ProtocolError, SendError};
use super::frame::{FrameHeader, OpCode, MAX_HEADER_LEN, RSV1};
use super::mask::apply_mask;
use super::message::{Message, Utf8Bytes};
use super::utf8::Utf8Validator;

/// Which end of the connection this is. It decides masking (RFC 6455 §5.1):
/// clients mask every frame they send, servers never do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The end that opened the connection.
    Client,
    /// The end that accepted it.
    Server,
}

/// Limits and behaviour of a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// The largest frame payload accepted; larger fails with 1009. Default 16 MiB.
    pub max_frame_size: usize,
    /// The largest message accepted, summed over its fragments; larger fails
    /// with 1009. Default 64 MiB.
    pub max_message_size: usize,
    /// While the pongs queued since the output last drained (the answers
    /// the peer's pings made this end queue by itself) exceed this, no
    /// more input is processed and [`Connection::wants_read`] is false: a
    /// peer that pings and never reads is answered only as fast as it
    /// reads the answers. The application's own output does not count:
    /// [`Config::max_write_buffer`] bounds that, and counting it would let
    /// two ends that both write before they read stop reading each other
    /// for good. Default 64 KiB.
    pub output_high_water: usize,
    /// [`Connection::send`] fails with [`SendError::WriteBufferFull`] while
    /// at least this much output waits to be written: a caller that queues
    /// faster than the peer reads learns of it instead of growing the
    /// buffer without bound. One message may take the output past it.
    /// Default 16 MiB.
    pub max_write_buffer: usize,
    /// Pings when the peer has been silent, and a deadline for its answer.
    /// Default `None`: a library connection never sends what the
    /// application did not ask for (a client behind a proxy that drops idle
    /// connections, or a public server, turns it on; `rtwire serve` and
    /// `rtwire echo` do).
    pub keepalive: Option<Keepalive>,
}

/// Keepalive (RFC 6455 §5.5.2: "A Ping frame MAY be sent ... as a means to
/// verify that the remote endpoint is still responsive"): after `interval`
/// without any input, send a ping; if nothing at all arrives within
/// `timeout` after it, fail the connection with
/// [`ProtocolError::PeerUnresponsive`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keepalive {
    /// Silence after which a ping is sent.
    pub interval: Duration,
    /// How long the peer has to send something (its pong, or anything)
    /// after the ping.
    pub timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_frame_size: 16 << 20,
            max_message_size: 64 << 20,
            output_high_water: 64 << 10,
            max_write_buffer: 16 << 20,
            keepalive: None,
        }
    }
}

impl Config {
    /// Sets [`max_frame_size`](Self::max_frame_size).
    pub fn max_frame_size(mut self, bytes: usize) -> Self {
        self.max_frame_size = bytes;
        self
    }

    /// Sets [`max_message_size`](Self::max_message_size).
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// Sets [`output_high_water`](Self::output_high_water).
    pub fn output_high_water(mut self, bytes: usize) -> Self {
        self.output_high_water = bytes;
        self
    }

    /// Sets [`max_write_buffer`](Self::max_write_buffer).
    pub fn max_write_buffer(mut self, bytes: usize) -> Self {
        self.max_write_buffer = bytes;
        self
    }

    /// Sets [`keepalive`](Self::keepalive).
    pub fn keepalive(mut self, keepalive: Option<Keepalive>) -> Self {
        self.keepalive = keepalive;
        self
    }
}

/// Where the closing handshake stands (RFC 6455 §7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Data flows both ways.
    Open,
    /// This end sent a close frame and waits for the peer's.
    Closing,
    /// Both close frames were exchanged, the connection failed, or the transport ended.
    Closed,
}

/// What the connection reports to the application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A whole message or a control frame from the peer. A
    /// [`Message::Close`] means the peer closed; a reply is already queued if
    /// this end had not sent one.
    Message(Message),
    /// The peer broke the protocol, or the transport ended without a close.
    /// A close frame with the error's code is queued (when the transport is
    /// still there), and nothing more is read.
    Failed(ProtocolError),
}

/// Payloads at least this long are sent by the server without copying them
/// into the output buffer: the frame header and the payload go out as two chunks.
const ZERO_COPY_MIN: usize = 4096;

/// The most input buffer reserved ahead of a frame's payload on the word of
/// its header.
const RESERVE_AHEAD: usize = 64 * 1024;

/// Buffers that never held more than this stay allocated while idle:
/// freeing and reallocating them around every message would cost more
/// than they weigh.
const KEEP_WHEN_IDLE: usize = 1024;

/// A frame whose header is decoded and whose payload is arriving.
#[derive(Debug)]
struct PartialFrame {
    header: FrameHeader,
    len: usize,
    /// Payload bytes at the front of the input already unmasked and checked.
    done: usize,
    utf8: bool,
}

/// A fragmented data message being assembled.
#[derive(Debug)]
struct PartialMessage {
    text: bool,
    /// Sent compressed (RSV1 on its first frame): `buf` holds inflated data.
    compressed: bool,
    buf: Vec<u8>,
}

/// One end of a WebSocket connection, without I/O. See the [module docs](self).
#[derive(Debug)]
pub struct Connection {
    role: Role,
    config: Config,
    close_sent: bool,
    close_received: bool,
    failed: bool,
    /// No more input is read: a close frame or a failure is queued as an event.
    input_done: bool,
    input: BytesMut,
    /// The most `input` could hold since it was last released.
    input_peak: usize,
    frame: Option<PartialFrame>,
    message: Option<PartialMessage>,
    utf8: Utf8Validator,
    events: VecDeque<Event>,
    output: BytesMut,
    /// The most `output` could hold since it was last released.
    output_peak: usize,
    transmit: VecDeque<Bytes>,
    /// Bytes in `transmit`, so the pending output is known without a walk.
    transmit_len: usize,
    /// Bytes of the pongs queued since the output was last empty; see
    /// [`Config::output_high_water`].
    pongs_since_drain: usize,
    /// permessage-deflate, when negotiated. Boxed: most connections do
    /// without it, and inline it would make each of them 312 bytes larger.
    deflate: Option<Box<Codec>>,
    keepalive: KeepaliveState,
}

/// Where keepalive stands; see [`Keepalive`].
#[derive(Debug, Default)]
struct KeepaliveState {
    /// When to look again; `None` until the first `handle_timeout`.
    deadline: Option<Instant>,
    /// Input arrived since the deadline was set.
    heard: bool,
    /// A ping is out and its deadline is `deadline`.
    awaiting: bool,
}

impl Connection {
    /// A connection whose opening handshake has completed.
    pub fn new(role: Role, config: Config) -> Connection {
        Connection {
            role,
            config,
            close_sent: false,
            close_received: false,
            failed: false,
            input_done: false,
            input: BytesMut::new(),
            input_peak: 0,
            frame: None,
            message: None,
            utf8: Utf8Validator::new(),
            events: VecDeque::new(),
            output: BytesMut::new(),
            output_peak: 0,
            transmit: VecDeque::new(),
            transmit_len: 0,
            pongs_since_drain: 0,
            deflate: None,
            keepalive: KeepaliveState::default(),
        }
    }

    /// Enables permessage-deflate as agreed in the handshake (RFC 7692).
    /// Compression state is only allocated when a message needs it.
    pub fn with_deflate(mut self, agreed: Deflate) -> Connection {
        self.deflate = Some(Box::new(Codec::new(agreed, self.role == Role::Server)));
        self
    }

    /// Whether permessage-deflate is in use.
    pub fn deflate_enabled(&self) -> bool {
        self.deflate.is_some()
    }

    /// The key of this connection's compression when it compresses each
    /// message from a fresh state (no context takeover on its side), for
    /// [`send_precompressed`](Self::send_precompressed); `None` otherwise.
    pub fn compression_key(&self) -> Option<CompressionKey> {
        self.deflate.as_ref()?.key()
    }

    /// This end's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The state of the closing handshake.
    pub fn state(&self) -> State {
        if self.failed || self.close_received {
            State::Closed
        } else if self.close_sent {
            State::Closing
        } else {
            State::Open
        }
    }

    /// Whether more input is wanted. False once the peer's close arrived or
    /// the connection failed: later bytes are ignored.
    pub fn wants_input(&self) -> bool {
        !self.input_done
    }

    /// Whether the transport should be read now: input is wanted and the
    /// pongs queued since the output last drained are at most
    /// [`Config::output_high_water`]. While false, write the output first;
    /// bytes already received are processed (and their events appear in
    /// [`poll_event`](Self::poll_event)) once it has drained. Bytes given
    /// to [`receive_data`](Self::receive_data) meanwhile are kept, not
    /// lost, but the point is not to read them.
    pub fn wants_read(&self) -> bool {
        self.wants_input() && !self.output_blocked()
    }

    /// Bytes received and held: input not yet processed, and the part of
    /// a fragmented (or compressed) message assembled so far.
    pub fn buffered_input(&self) -> usize {
        self.input.len() + self.message.as_ref().map_or(0, |m| m.buf.len())
    }

    /// Bytes queued for the transport and not yet written.
    pub fn buffered_output(&self) -> usize {
        self.transmit_len + self.output.len()
    }

    fn output_blocked(&self) -> bool {
        self.pongs_since_drain > self.config.output_high_water
    }

    /// Output was taken: once none is left, the pongs queued before were
    /// all written.
    fn note_taken(&mut self) {
        if !self.has_output() {
            self.pongs_since_drain = 0;
        }
    }

    // ----- input -----

    /// Call with each chunk of bytes read from the transport, then drain
    /// [`poll_event`](Self::poll_event) and [`poll_transmit`](Self::poll_transmit).
    ///
    /// Copies `data` into the connection's buffer. To avoid that copy, read
    /// into [`input_buffer`](Self::input_buffer) instead.
    pub fn receive_data(&mut self, data: &[u8]) {
        if self.wants_input() {
            self.keepalive.heard |= !data.is_empty();
            self.input.extend_from_slice(data);
            self.input_peak = self.input_peak.max(self.input.capacity());
            self.process();
        }
    }

    /// The buffer the transport may read into directly; call
    /// [`handle_input`](Self::handle_input) after appending to it.
    ///
    /// Bytes already in it are unprocessed input: append, never replace.
    /// A frame's payload is read in place here and reaches the application
    /// without another copy.
    pub fn input_buffer(&mut self) -> &mut BytesMut {
        &mut self.input
    }

    /// Frees the memory of the input and output buffers where they hold no
    /// bytes and have held more than 1 KiB since they were last freed. Call
    /// when the transport has nothing to read for now and all output is
    /// written: an idle connection then keeps at most two small buffers,
    /// and a busy one with small messages reuses its buffers instead of
    /// reallocating them for every message.
    ///
    /// ```
    /// use rtwire::proto::{Config, Connection, Role};
    /// let mut conn = Connection::new(Role::Server, Config::default());
    /// conn.input_buffer().reserve(16 * 1024);
    /// conn.handle_input();
    /// conn.release_idle_buffers();
    /// assert_eq!(conn.input_buffer().capacity(), 0);
    /// ```
    pub fn release_idle_buffers(&mut self) {
        // An empty buffer split off a larger one keeps that allocation
        // alive whatever its own capacity: judge by the peak, and replace.
        if self.input.is_empty() && self.input_peak > KEEP_WHEN_IDLE {
            self.input = BytesMut::new();
            self.input_peak = 0;
        }
        if self.output.is_empty() && self.output_peak > KEEP_WHEN_IDLE {
            self.output = BytesMut::new();
            self.output_peak = 0;
        }
    }

    /// Call after appending bytes to [`input_buffer`](Self::input_buffer).
    pub fn handle_input(&mut self) {
        self.input_peak = self.input_peak.max(self.input.capacity());
        self.keepalive.heard |= !self.input.is_empty();
        if self.wants_input() {
            self.process();
        } else {
            self.input.clear();
        }
    }

    /// Call when the transport has no more bytes to give (EOF or a reset).
    ///
    /// Without a close frame from the peer, that is an abnormal closure
    /// (RFC 6455 §7.1.5, code 1006), reported as [`Event::Failed`].
    ///
    /// Input held back by [`Config::output_high_water`] came before the
    /// end: it is processed first, whatever the output (no more can
    /// arrive, so what it adds is bounded by it), so that a close frame
    /// among it is reported as the peer's close, not lost.
    pub fn receive_eof(&mut self) {
        while self.wants_input() {
            match self.step() {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => self.fail(e),
            }
        }
        if self.wants_input() {
            self.fail(ProtocolError::AbnormalClosure);
        }
    }

    /// Whether [`poll_event`](Self::poll_event) has an event to give.
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// The next event, if any. Call after every input call until `None`.
    ///
    /// The peer's close and a failure take effect when their event is
    /// polled: replies the application queues for the messages before them
    /// go out before the close frame (an echo server echoes every message
    /// that preceded a protocol error, as Autobahn's strict cases expect).
    pub fn poll_event(&mut self) -> Option<Event> {
        if self.events.is_empty() && !self.input.is_empty() {
            // Input held back while the pongs were above the high-water
            // mark: go on with it now that the output has drained.
            self.process();
        }
        let event = self.events.pop_front()?;
        match &event {
            Event::Failed(error) => self.apply_failure(error),
            Event::Message(Message::Close(frame)) => self.apply_peer_close(frame.as_ref()),
            Event::Message(_) => {}
        }
        Some(event)
    }

    fn process(&mut self) {
        while self.wants_read() {
            match self.step() {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => self.fail(e),
            }
        }
    }

    /// Makes progress on one frame; `Ok(false)` when more input is needed.
    fn step(&mut self) -> Result<bool, ProtocolError> {
        if self.frame.is_none() {
            let Some((header, header_len)) = FrameHeader::decode(&self.input)? else {
                return Ok(false);
            };
            self.check_header(&header)?;
            self.input.advance(header_len);
            // check_header bounded the length by max_frame_size, a usize.
            let len = header.payload_len as usize;
            // Compressed text is validated after inflating, not on the wire.
            let utf8 = !self.is_compressed(&header)
                && match header.opcode {
                    OpCode::Text => true,
                    OpCode::Continuation => self.message.as_ref().is_some_and(|m| m.text),
                    _ => false,
                };
            // Room for the payload, but a header alone (14 bytes) must not
            // make us allocate up to max_frame_size: beyond this the buffer
            // grows with the data that actually arrives.
            if len > self.input.len() {
                self.input
                    .reserve((len - self.input.len()).min(RESERVE_AHEAD));
            }
            self.frame = Some(PartialFrame {
                header,
                len,
                done: 0,
                utf8,
            });
        }
        let Some(frame) = self.frame.as_mut() else {
            return Ok(false);
        };
        let available = self.input.len().min(frame.len);
        if available > frame.done {
            let fresh = &mut self.input[frame.done..available];
            if let Some(key) = frame.header.mask {
                apply_mask(fresh, key, frame.done);
            }
            // RFC 6455 §8.1: fail as soon as the text cannot be UTF-8, even
            // before the rest of the frame arrives.
            if frame.utf8 {
                self.utf8
                    .feed(fresh)
                    .map_err(|_| ProtocolError::InvalidUtf8)?;
            }
            frame.done = available;
        }
        if frame.done < frame.len {
            return Ok(false);
        }
        let header = frame.header;
        let len = frame.len;
        self.frame = None;
        let payload = self.input.split_to(len).freeze();
        self.handle_frame(header, payload)?;
        if len > RESERVE_AHEAD {
            self.unpin_large_allocation();
        }
        Ok(true)
    }

    /// After a large frame, moves the little input that followed it into a
    /// buffer of its own: otherwise it keeps the frame's whole allocation
    /// alive, and while a peer streams a fragmented message that is one
    /// fragment's size held on top of the message assembled so far.
    fn unpin_large_allocation(&mut self) {
        if self.input.len() <= RESERVE_AHEAD {
            self.input = BytesMut::from(&self.input[..]);
            self.input_peak = self.input.capacity();
        }
    }

    /// The rules a header must follow on this connection, checked before
    /// any of its payload is read.
    fn check_header(&self, header: &FrameHeader) -> Result<(), ProtocolError> {
        // RFC 6455 §5.2: "MUST be 0 unless an extension is negotiated that
        // defines meanings for non-zero values." RFC 7692 §6: permessage-deflate
        // sets RSV1 on the first frame of a compressed data message only.
        let allowed = match header.opcode {
            OpCode::Text | OpCode::Binary if self.deflate.is_some() => RSV1,
            _ => 0,
        };
        if header.rsv & !allowed != 0 {
            return Err(ProtocolError::ReservedBits(header.rsv));
        }
        // RFC 6455 §5.1: "The server MUST close the connection upon receiving
        // a frame that is not masked" and "A client MUST close a connection
        // if it detects a masked frame."
        match (self.role, header.mask.is_some()) {
            (Role::Server, false) => return Err(ProtocolError::UnmaskedFrame),
            (Role::Client, true) => return Err(ProtocolError::MaskedFrame),
            _ => {}
        }
        if header.payload_len > self.config.max_frame_size as u64 {
            return Err(ProtocolError::FrameTooBig {
                len: header.payload_len,
                limit: self.config.max_frame_size,
            });
        }
        // RFC 6455 §5.4: fragments of one message arrive in order, and
        // "fragments of one message MUST NOT be interleaved between
        // fragments of another message"; control frames may come between.
        let assembled = match (header.opcode, &self.message) {
            (OpCode::Continuation, None) => return Err(ProtocolError::UnexpectedContinuation),
            (OpCode::Text | OpCode::Binary, Some(_)) => {
                return Err(ProtocolError::MessageInterleaved)
            }
            (OpCode::Continuation, Some(m)) => m.buf.len() as u64,
            _ => 0,
        };
        // A compressed message's limit applies to its inflated size, checked
        // while inflating.
        if !header.opcode.is_control()
            && !self.is_compressed(header)
            && assembled + header.payload_len > self.config.max_message_size as u64
        {
            return Err(ProtocolError::MessageTooBig {
                limit: self.config.max_message_size,
            });
        }
        Ok(())
    }

    /// Whether the frame carries compressed data: the first frame of a
    /// compressed message has RSV1 (RFC 7692 §6), its continuations do not.
    fn is_compressed(&self, header: &FrameHeader) -> bool {
        header.rsv & RSV1 != 0
            || (header.opcode == OpCode::Continuation
                && self.message.as_ref().is_some_and(|m| m.compressed))
    }

    fn handle_frame(&mut self, header: FrameHeader, payload: Bytes) -> Result<(), ProtocolError> {
        match header.opcode {
            OpCode::Text | OpCode::Binary => {
                let text = header.opcode == OpCode::Text;
                let compressed = header.rsv & RSV1 != 0;
                if header.fin && !compressed {
                    // The common case: the payload goes out as it came in.
                    self.deliver(text, payload)?;
                    return Ok(());
                }
                let mut message = PartialMessage {
                    text,
                    compressed,
                    buf: Vec::new(),
                };
                self.append(&mut message, &payload, header.fin)?;
                if header.fin {
                    self.deliver(text, Bytes::from(message.buf))?;
                } else {
                    self.message = Some(message);
                }
            }
            OpCode::Continuation => {
                if let Some(mut message) = self.message.take() {
                    self.append(&mut message, &payload, header.fin)?;
                    if header.fin {
                        self.deliver(message.text, Bytes::from(message.buf))?;
                    } else {
                        self.message = Some(message);
                    }
                }
            }
            OpCode::Ping => {
                // RFC 6455 §5.5.2: "Upon receipt of a Ping frame, an endpoint
                // MUST send a Pong frame in response", with the same payload,
                // unless it has already sent a close frame.
                if !self.close_sent {
                    let before = self.buffered_output();
                    self.write_frame(true, OpCode::Pong, &payload);
                    self.pongs_since_drain += self.buffered_output() - before;
                }
                self.emit(Message::Ping(payload));
            }
            // RFC 6455 §5.5.3: an unsolicited pong needs no response.
            OpCode::Pong => self.emit(Message::Pong(payload)),
            OpCode::Close => self.handle_close(&payload)?,
        }
        Ok(())
    }

    /// Adds a frame's payload to a message being assembled: copied, or
    /// inflated (and then UTF-8 checked, as the wire bytes were not).
    fn append(
        &mut self,
        message: &mut PartialMessage,
        payload: &[u8],
        last: bool,
    ) -> Result<(), ProtocolError> {
        if !message.compressed {
            message.buf.extend_from_slice(payload);
            return Ok(());
        }
        let Some(codec) = self.deflate.as_mut() else {
            return Err(ProtocolError::ReservedBits(RSV1));
        };
        let start = message.buf.len();
        let limit = self.config.max_message_size;
        codec
            .inflate(payload, last, &mut message.buf, limit)
            .map_err(|e| match e {
                InflateError::TooBig => ProtocolError::MessageTooBig { limit },
                InflateError::Corrupt => ProtocolError::BadCompression,
            })?;
        if message.text {
            self.utf8
                .feed(&message.buf[start..])
                .map_err(|_| ProtocolError::InvalidUtf8)?;
        }
        Ok(())
    }

    fn deliver(&mut self, text: bool, payload: Bytes) -> Result<(), ProtocolError> {
        let message = if text {
            self.utf8.finish().map_err(|_| ProtocolError::InvalidUtf8)?;
            Message::Text(Utf8Bytes::from_validated(payload))
        } else {
            Message::Binary(payload)
        };
        self.emit(message);
        Ok(())
    }

    fn handle_close(&mut self, payload: &[u8]) -> Result<(), ProtocolError> {
        let frame = CloseFrame::parse(payload).map_err(ProtocolError::InvalidClose)?;
        // Nothing may follow a close frame (RFC 6455 §5.5.1): stop reading.
        self.input_done = true;
        self.discard_input();
        self.emit(Message::Close(frame));
        Ok(())
    }

    fn apply_peer_close(&mut self, frame: Option<&CloseFrame>) {
        self.close_received = true;
        // RFC 6455 §5.5.1: "If an endpoint receives a Close frame and did not
        // previously send a Close frame, the endpoint MUST send a Close frame
        // in response. ... It typically echos the status code it received."
        // The reason goes back too, so the peer can tell its own close from
        // one of ours: `frame` was parsed, so its code may be sent and its
        // reason is UTF-8 that fitted a control frame.
        if !self.close_sent {
            let reply = frame.map_or_else(Vec::new, CloseFrame::to_payload);
            self.write_frame(true, OpCode::Close, &reply);
            self.close_sent = true;
        }
    }

    /// Stops reading and queues the failure; it takes effect when polled.
    fn fail(&mut self, error: ProtocolError) {
        self.input_done = true;
        self.discard_input();
        self.events.push_back(Event::Failed(error));
    }

    /// RFC 6455 §7.1.7, _Fail the WebSocket Connection_: send a close frame
    /// with the error's code unless one was sent (or the transport is gone),
    /// then close the transport.
    fn apply_failure(&mut self, error: &ProtocolError) {
        if !self.close_sent && *error != ProtocolError::AbnormalClosure {
            let reason = error.to_string();
            let payload = encode_payload(error.close_code(), truncate_reason(&reason));
            self.write_frame(true, OpCode::Close, &payload);
        }
        self.close_sent = true;
        self.failed = true;
    }

    fn discard_input(&mut self) {
        self.input = BytesMut::new();
        self.frame = None;
        self.message = None;
        self.utf8.reset();
    }

    fn emit(&mut self, message: Message) {
        self.events.push_back(Event::Message(message));
    }

    // ----- time -----

    /// When [`handle_timeout`](Self::handle_timeout) should next be called,
    /// or `None` if keepalive is off, not started, or over (the connection
    /// is closing or closed).
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.config.keepalive {
            Some(_) if !self.close_sent && self.wants_input() => self.keepalive.deadline,
            _ => None,
        }
    }

    /// Call once when the connection opens, then whenever the instant
    /// given by [`poll_timeout`](Self::poll_timeout) has passed, with the
    /// time now. Does nothing unless [`Config::keepalive`] is set.
    ///
    /// After [`Keepalive::interval`] without input it queues a ping; when
    /// nothing arrives within [`Keepalive::timeout`] of that ping, the
    /// connection fails with [`ProtocolError::PeerUnresponsive`] (close
    /// code 1001). Any input counts as a sign of life, not only the pong.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use rtwire::proto::{Config, Connection, Event, Keepalive, Role};
    /// let keepalive = Keepalive { interval: Duration::from_secs(30), timeout: Duration::from_secs(10) };
    /// let mut conn = Connection::new(Role::Server, Config::default().keepalive(Some(keepalive)));
    /// let start = Instant::now();
    /// conn.handle_timeout(start);
    /// assert_eq!(conn.poll_timeout(), Some(start + keepalive.interval));
    /// conn.handle_timeout(start + keepalive.interval); // silence: a ping
    /// assert_eq!(conn.poll_transmit().as_deref(), Some(&[0x89, 0x00][..]));
    /// conn.handle_timeout(start + keepalive.interval + keepalive.timeout); // still silence
    /// assert!(matches!(conn.poll_event(), Some(Event::Failed(_))));
    /// ```
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(config) = self.config.keepalive else {
            return;
        };
        if self.close_sent || !self.wants_input() {
            return;
        }
        let state = &mut self.keepalive;
        match state.deadline {
            Some(deadline) if now < deadline => {}
            None => state.deadline = Some(now + config.interval),
            Some(_) if state.heard => {
                *state = KeepaliveState {
                    deadline: Some(now + config.interval),
                    heard: false,
                    awaiting: false,
                };
            }
            Some(_) if !state.awaiting => {
                state.awaiting = true;
                state.deadline = Some(now + config.timeout);
                self.write_frame(true, OpCode::Ping, &[]);
            }
            Some(_) => self.fail(ProtocolError::PeerUnresponsive),
        }
    }

    // ----- output -----

    /// Queues a message. Text and binary messages go out as one frame each.
    ///
    /// A [`Message::Close`] does what [`close`](Self::close) does.
    /// Fails without sending anything if a close frame has already been sent,
    /// or a control payload is over 125 bytes.
    pub fn send(&mut self, message: Message) -> Result<(), SendError> {
        if let Message::Close(frame) = message {
            return match frame {
                Some(f) => self.close(f.code, &f.reason),
                None => self.close_without_code(),
            };
        }
        self.check_can_send()?;
        match message {
            Message::Text(text) => self.write_data(OpCode::Text, text.into_bytes()),
            Message::Binary(data) => self.write_data(OpCode::Binary, data),
            Message::Ping(data) => self.write_control(OpCode::Ping, &data)?,
            Message::Pong(data) => self.write_control(OpCode::Pong, &data)?,
            Message::Close(_) => unreachable!("handled above"),
        }
        Ok(())
    }

    /// Whether a data or control frame may be queued now: no close sent
    /// (§5.5.1), and less than `max_write_buffer` waiting.
    fn check_can_send(&self) -> Result<(), SendError> {
        if self.close_sent {
            return Err(SendError::Closed);
        }
        let limit = self.config.max_write_buffer;
        if self.buffered_output() >= limit {
            return Err(SendError::WriteBufferFull { limit });
        }
        Ok(())
    }

    /// Queues a text or binary `message` whose payload was compressed once
    /// for many connections: `compressed` must be `key.compress(payload)`
    /// ([`CompressionKey::compress`]). A connection of that key sends
    /// `compressed` as the message (RSV1 set, RFC 7692 §6); any other
    /// connection, or a message under the key's threshold, sends `message`
    /// as [`send`](Self::send) does. The frame is the same as `send`'s,
    /// without compressing per connection.
    ///
    /// Fails as `send` does; a control or close `message` is sent as
    /// `send` sends it.
    pub fn send_precompressed(
        &mut self,
        message: Message,
        key: CompressionKey,
        compressed: Bytes,
    ) -> Result<(), SendError> {
        let opcode = match &message {
            Message::Text(text) if key.compresses(text.len()) => OpCode::Text,
            Message::Binary(data) if key.compresses(data.len()) => OpCode::Binary,
            _ => return self.send(message),
        };
        if self.compression_key() != Some(key) {
            return self.send(message);
        }
        self.check_can_send()?;
        self.write_frame_payload(RSV1, opcode, compressed);
        Ok(())
    }

    /// Starts the closing handshake with `code` and `reason` (RFC 6455 §7.1.2).
    ///
    /// Afterwards data can no longer be sent, but incoming messages are still
    /// delivered until the peer's close frame arrives.
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), SendError> {
        if self.close_sent {
            return Err(SendError::Closed);
        }
        if !code.is_allowed_on_wire() {
            return Err(SendError::InvalidCloseCode(code.0));
        }
        if reason.len() > MAX_REASON_LEN {
            return Err(SendError::ReasonTooLong(reason.len()));
        }
        self.write_frame(true, OpCode::Close, &encode_payload(code, reason));
        self.close_sent = true;
        Ok(())
    }

    /// Starts the closing handshake with an empty close frame (no code).
    pub fn close_without_code(&mut self) -> Result<(), SendError> {
        if self.close_sent {
            return Err(SendError::Closed);
        }
        self.write_frame(true, OpCode::Close, &[]);
        self.close_sent = true;
        Ok(())
    }

    /// The next chunk of bytes to write to the transport, in order. Call
    /// after every verb until `None`.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        let chunk = match self.transmit.pop_front() {
            Some(chunk) => {
                self.transmit_len -= chunk.len();
                chunk
            }
            None if self.output.is_empty() => return None,
            None => self.output.split().freeze(),
        };
        self.note_taken();
        Some(chunk)
    }

    /// The queued output, borrowed instead of taken: fills `slices` with the
    /// next chunks in order and returns how many it filled (0 when nothing
    /// is queued). For a transport that writes from slices (`writev`):
    /// write them, then call [`advance_transmit`](Self::advance_transmit)
    /// with the number of bytes written. Unlike
    /// [`poll_transmit`](Self::poll_transmit) it hands out no `Bytes`, so
    /// the output buffer is reused from one write to the next.
    ///
    /// ```
    /// use std::io::IoSlice;
    /// use rtwire::proto::{Config, Connection, Message, Role};
    /// let mut conn = Connection::new(Role::Server, Config::default());
    /// conn.send(Message::text("hi")).unwrap();
    /// let mut slices = [IoSlice::new(&[]); 4];
    /// assert_eq!(conn.transmit_slices(&mut slices), 1);
    /// assert_eq!(&slices[0][..], b"\x81\x02hi");
    /// conn.advance_transmit(4); // all of it was written
    /// assert!(!conn.has_output());
    /// ```
    pub fn transmit_slices<'a>(&'a self, slices: &mut [IoSlice<'a>]) -> usize {
        let output = (!self.output.is_empty()).then_some(&self.output[..]);
        let chunks = self.transmit.iter().map(|c| &c[..]).chain(output);
        let mut filled = 0;
        for (slot, chunk) in slices.iter_mut().zip(chunks) {
            *slot = IoSlice::new(chunk);
            filled += 1;
        }
        filled
    }

    /// Drops the first `n` bytes of the queued output once they are
    /// written; see [`transmit_slices`](Self::transmit_slices).
    ///
    /// # Panics
    ///
    /// If fewer than `n` bytes are queued: the caller wrote bytes it was
    /// never given.
    pub fn advance_transmit(&mut self, n: usize) {
        self.advance_output(n);
        self.note_taken();
    }

    fn advance_output(&mut self, mut n: usize) {
        while n > 0 {
            match self.transmit.front_mut() {
                Some(front) if n >= front.len() => {
                    n -= front.len();
                    self.transmit_len -= front.len();
                    self.transmit.pop_front();
                }
                Some(front) => {
                    self.transmit_len -= n;
                    return front.advance(n);
                }
                None => {
                    assert!(n <= self.output.len(), "advanced past the queued output");
                    // All written: keep the buffer's start, so the next frame
                    // is written at its front without reclaiming space.
                    if n == self.output.len() {
                        return self.output.clear();
                    }
                    return self.output.advance(n);
                }
            }
        }
    }

    /// Whether [`poll_transmit`](Self::poll_transmit) has bytes to give.
    pub fn has_output(&self) -> bool {
        !self.transmit.is_empty() || !self.output.is_empty()
    }

    /// Whether the transport should now be closed: the connection failed, or
    /// this is the server and both close frames have been exchanged (RFC 6455
    /// §7.1.1: "the server ... SHOULD close the underlying TCP connection
    /// first"). A client waits for the server to close, with a timeout of
    /// its own choosing. Only true once all output has been taken.
    pub fn should_close_transport(&self) -> bool {
        let done =
            self.failed || (self.role == Role::Server && self.close_sent && self.close_received);
        done && !self.has_output()
    }

    fn write_control(&mut self, opcode: OpCode, payload: &[u8]) -> Result<(), SendError> {
        if payload.len() > 125 {
            return Err(SendError::ControlTooLong(payload.len()));
        }
        self.write_frame(true, opcode, payload);
        Ok(())
    }

    fn write_data(&mut self, opcode: OpCode, payload: Bytes) {
        let (rsv, payload) = match self.deflate.as_mut() {
            Some(codec) if codec.should_compress(payload.len()) => {
                (RSV1, Bytes::from(codec.compress(&payload)))
            }
            _ => (0, payload),
        };
        self.write_frame_payload(rsv, opcode, payload);
    }

    /// One whole data frame of `payload`: large payloads of a server are
    /// queued as they are, not copied.
    fn write_frame_payload(&mut self, rsv: u8, opcode: OpCode, payload: Bytes) {
        if self.role == Role::Server && payload.len() >= ZERO_COPY_MIN {
            self.write_header(true, rsv, opcode, payload.len());
            if !self.output.is_empty() {
                let head = self.output.split().freeze();
                self.push_transmit(head);
            }
            self.push_transmit(payload);
        } else {
            self.write_frame_rsv(true, rsv, opcode, &payload);
        }
    }

    fn push_transmit(&mut self, chunk: Bytes) {
        self.transmit_len += chunk.len();
        self.transmit.push_back(chunk);
    }

    /// Appends a whole frame to the output, masking it for a client.
    fn write_frame(&mut self, fin: bool, opcode: OpCode, payload: &[u8]) {
        self.write_frame_rsv(fin, 0, opcode, payload);
    }

    fn write_frame_rsv(&mut self, fin: bool, rsv: u8, opcode: OpCode, payload: &[u8]) {
        // Header and payload in one allocation, not a grow per part.
        self.output.reserve(MAX_HEADER_LEN + payload.len());
        let key = self.write_header(fin, rsv, opcode, payload.len());
        // Order holds: `output` only ever holds bytes that follow the last
        // chunk moved to `transmit`.
        let start = self.output.len();
        self.output.extend_from_slice(payload);
        if let Some(key) = key {
            apply_mask(&mut self.output[start..], key, 0);
        }
    }

    /// Appends a frame header; returns the masking key for a client.
    fn write_header(&mut self, fin: bool, rsv: u8, opcode: OpCode, len: usize) -> Option<[u8; 4]> {
        // RFC 6455 §5.3: the masking key is "a new 32-bit value ... from a
        // strong source of entropy" for every frame.
        let mask = (self.role == Role::Client).then(rand::random::<[u8; 4]>);
        let header = FrameHeader {
            fin,
            rsv,
            opcode,
            mask,
            payload_len: len as u64,
        };
        let (bytes, n) = header.encode();
        self.output.extend_from_slice(&bytes[..n]);
        self.output_peak = self.output_peak.max(self.output.capacity());
        mask
    }
}
