//! An io_uring front-end over the sans-IO core (Linux, feature `io-uring`).
//!
//! One thread and one ring serve every connection: the reads and writes
//! of all the connections that had something to do go to the kernel in
//! one `io_uring_enter`, which also returns what completed since. Where
//! the tokio front-end makes an `epoll_wait`, a `recv` and a `send` per
//! wake-up, this one makes one system call per turn of its loop however
//! many connections it serves, which is where small messages spend their
//! time (`benches/README.md` has the profile).
//!
//! Reads use buffers provided to the kernel (`IORING_OP_PROVIDE_BUFFERS`):
//! a waiting connection holds none, the kernel picks one when data comes,
//! and it is given back as soon as the connection has taken its bytes.
//! Writes gather what [`Connection::poll_transmit`] hands out into one
//! `sendmsg`, with no copy.
//!
//! The application sees each data message through a callback that may
//! answer on the same [`Connection`] (the echo server's whole logic is
//! `conn.send(message)`); control frames, the close handshake, keepalive
//! and every limit of the connection are the core's, as with the tokio
//! front-end.
//!
//! ```no_run
//! use std::sync::atomic::AtomicBool;
//! use rtwire::uring::UringServer;
//! use rtwire::ws::AcceptConfig;
//!
//! let listener = std::net::TcpListener::bind("127.0.0.1:9001")?;
//! let stop = AtomicBool::new(false);
//! // Err at once where the kernel has no io_uring (or forbids it): serve
//! // with the tokio front-end instead.
//! UringServer::new(AcceptConfig::default()).run(listener, &stop, |conn, message| {
//!     let _ = conn.send(message);
//! })?;
//! # Ok::<(), std::io::Error>(())
//! ```

use std::io::{self, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use io_uring::{cqueue, opcode, squeue, types, IoUring};

use crate::handshake::{self, AcceptResponse, HandshakeError};
use crate::http::{Parse, Request};
use crate::proto::{Connection, Event, Message};
use crate::ws::AcceptConfig;

/// Size of each read buffer the kernel fills: a 16 KiB message and its
/// header in one (at 16 KiB, it took two, and two completions).
const READ_BUFFER: usize = 32 * 1024;
/// Read buffers (4 MiB in all): more than reads complete in one turn of
/// the loop under any load measured; a read that finds none left is
/// retried on the next turn.
const READ_BUFFERS: u16 = 128;
/// The provided-buffer group of the reads.
const GROUP: u16 = 0;
/// Submission queue entries (the completion queue has twice as many).
const RING_ENTRIES: u32 = 4096;
/// How often deadlines are checked, and the longest the loop sleeps.
const TICK: Duration = Duration::from_millis(250);

/// What a completion was for, in the low byte of its user data.
const OP_ACCEPT: u64 = 1;
const OP_RECV: u64 = 2;
const OP_SEND: u64 = 3;
const OP_PROVIDE: u64 = 4;
const OP_CANCEL: u64 = 5;

/// A WebSocket server on io_uring. See the [module docs](self).
#[derive(Clone)]
pub struct UringServer {
    config: AcceptConfig,
    max_connections: usize,
    write_timeout: Duration,
}

impl UringServer {
    /// A server that accepts as `config` says: handshake limits and
    /// timeout, the hook, permessage-deflate, the connections' limits.
    /// At most 10,000 connections; a write may stall for 30 s.
    pub fn new(config: AcceptConfig) -> UringServer {
        UringServer {
            config,
            max_connections: 10_000,
            write_timeout: Duration::from_secs(30),
        }
    }

    /// At most `n` connections at once; more are answered 503 and closed.
    pub fn max_connections(mut self, n: usize) -> UringServer {
        self.max_connections = n;
        self
    }

    /// A connection whose peer accepts nothing for this long is closed.
    pub fn write_timeout(mut self, timeout: Duration) -> UringServer {
        self.write_timeout = timeout;
        self
    }

    /// Serves `listener` on this thread until `stop` is set (checked at
    /// least every 250 ms), calling `on_message` with each data message.
    ///
    /// Fails at once, before accepting anything, where io_uring cannot be
    /// set up (a kernel before 5.19, or one that forbids it, as some
    /// container sandboxes do): the caller can then serve another way.
    /// Later errors are the ring's own; a connection's failure (a peer's
    /// fault) only ends that connection.
    pub fn run<H>(&self, listener: TcpListener, stop: &AtomicBool, on_message: H) -> io::Result<()>
    where
        H: FnMut(&mut Connection, Message),
    {
        let mut event_loop = EventLoop::new(self, listener, on_message)?;
        while !stop.load(Ordering::Relaxed) {
            if let Err(e) = event_loop.turn() {
                event_loop.drain();
                return Err(e);
            }
        }
        event_loop.drain();
        Ok(())
    }
}

/// Whether this kernel lets the process use io_uring with the features
/// [`UringServer`] needs; the error says why not.
pub fn probe() -> io::Result<()> {
    build_ring().map(drop)
}

fn build_ring() -> io::Result<IoUring> {
    // One thread submits and reaps, so the kernel may run completion work
    // only when that thread asks for completions (6.1+), instead of
    // interrupting it; older kernels get a plain ring.
    let ring = IoUring::builder()
        .setup_cqsize(RING_ENTRIES * 2)
        .setup_single_issuer()
        .setup_coop_taskrun()
        .setup_defer_taskrun()
        .build(RING_ENTRIES)
        .or_else(|_| {
            IoUring::builder()
                .setup_cqsize(RING_ENTRIES * 2)
                .build(RING_ENTRIES)
        })?;
    // Multishot accept and the submit-with-timeout call (5.11+, 5.19+).
    if !ring.params().is_feature_ext_arg() {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "io_uring without IORING_FEAT_EXT_ARG (kernel before 5.11)",
        ));
    }
    Ok(ring)
}

/// One accepted connection.
struct Client {
    stream: TcpStream,
    /// Tells this connection's completions from those of an earlier one
    /// in the same slot.
    generation: u32,
    phase: Phase,
    /// A multishot read is armed (it returns data until it ends).
    recv_in_flight: bool,
    /// The armed read was asked to end: the peer is not reading its answers.
    recv_cancelled: bool,
    /// The write the kernel has; boxed so that its addresses stay put.
    sending: Option<Box<Sending>>,
    /// Bytes waiting for the write in flight to finish.
    queued: Vec<Bytes>,
    queued_len: usize,
    /// No more reads: the peer ended, failed, or was refused.
    read_done: bool,
    /// Close once everything queued is written (a refused handshake).
    close_after_write: bool,
    /// Shut down; the slot is freed when the last operation returns.
    closing: bool,
    /// The end of the handshake's time.
    handshake_deadline: Option<Instant>,
}

enum Phase {
    /// The request head so far.
    Handshake(Vec<u8>),
    Open(Box<Connection>),
}

/// A `sendmsg` in flight: the chunks, and the iovecs and header that
/// point into them.
struct Sending {
    chunks: Vec<Bytes>,
    iovecs: Vec<libc::iovec>,
    header: libc::msghdr,
    started: Instant,
}

struct EventLoop<'a, H> {
    server: &'a UringServer,
    ring: IoUring,
    listener: TcpListener,
    /// Read buffers, `READ_BUFFERS` of `READ_BUFFER` bytes; the kernel
    /// writes into the ones it has been given.
    buffers: Box<[u8]>,
    slots: Vec<Option<Box<Client>>>,
    free: Vec<usize>,
    open: usize,
    generation: u32,
    /// Clients with something to do at the end of the turn.
    touched: Vec<usize>,
    completions: Vec<(u64, i32, u32)>,
    accepting: bool,
    last_tick: Instant,
    on_message: H,
}

fn user_data(slot: usize, generation: u32, op: u64) -> u64 {
    (slot as u64) << 32 | u64::from(generation & 0x00ff_ffff) << 8 | op
}

fn split_user_data(data: u64) -> (usize, u32, u64) {
    (
        (data >> 32) as usize,
        ((data >> 8) & 0x00ff_ffff) as u32,
        data & 0xff,
    )
}

impl<'a, H: FnMut(&mut Connection, Message)> EventLoop<'a, H> {
    fn new(server: &'a UringServer, listener: TcpListener, on_message: H) -> io::Result<Self> {
        let ring = build_ring()?;
        let mut event_loop = EventLoop {
            server,
            ring,
            listener,
            buffers: vec![0u8; READ_BUFFER * usize::from(READ_BUFFERS)].into_boxed_slice(),
            slots: Vec::new(),
            free: Vec::new(),
            open: 0,
            generation: 0,
            touched: Vec::new(),
            completions: Vec::new(),
            accepting: false,
            last_tick: Instant::now(),
            on_message,
        };
        event_loop.provide(0, READ_BUFFERS)?;
        event_loop.arm_accept()?;
        Ok(event_loop)
    }

    /// Queues an entry, submitting what is queued first if the queue is full.
    ///
    /// # Safety
    ///
    /// Whatever memory `entry` points to must stay valid and unmoved until
    /// its completion arrives.
    unsafe fn push(&mut self, entry: squeue::Entry) -> io::Result<()> {
        loop {
            // SAFETY: the caller keeps the entry's memory valid.
            if unsafe { self.ring.submission().push(&entry) }.is_ok() {
                return Ok(());
            }
            self.ring.submit()?;
        }
    }

    /// Gives `count` read buffers from `first` (back) to the kernel.
    fn provide(&mut self, first: u16, count: u16) -> io::Result<()> {
        let start = usize::from(first) * READ_BUFFER;
        let entry = opcode::ProvideBuffers::new(
            self.buffers[start..].as_mut_ptr(),
            READ_BUFFER as i32,
            count,
            GROUP,
            first,
        )
        .build()
        .user_data(OP_PROVIDE);
        // SAFETY: `buffers` lives as long as the ring (both are dropped
        // together, the ring first: it is declared before them), and is
        // never moved: it is a boxed slice.
        unsafe { self.push(entry) }
    }

    fn arm_accept(&mut self) -> io::Result<()> {
        let fd = types::Fd(self.listener.as_raw_fd());
        let entry = opcode::AcceptMulti::new(fd)
            .build()
            .user_data(user_data(0, 0, OP_ACCEPT));
        self.accepting = true;
        // SAFETY: the entry points at no memory; the listener outlives the ring's use of it.
        unsafe { self.push(entry) }
    }

    /// One turn: submit, wait for at least one completion or the tick,
    /// handle what completed, then submit each touched client's reads and
    /// writes.
    fn turn(&mut self) -> io::Result<()> {
        let timeout = types::Timespec::from(TICK);
        let args = types::SubmitArgs::new().timespec(&timeout);
        match self.ring.submitter().submit_with_args(1, &args) {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME | libc::EINTR | libc::EBUSY)
                ) => {}
            Err(e) => return Err(e),
        }
        self.completions.clear();
        self.completions.extend(
            self.ring
                .completion()
                .map(|c| (c.user_data(), c.result(), c.flags())),
        );
        let now = Instant::now();
        let completions = std::mem::take(&mut self.completions);
        for &(data, result, flags) in &completions {
            self.complete(data, result, flags)?;
        }
        self.completions = completions;
        if now.duration_since(self.last_tick) >= TICK {
            self.last_tick = now;
            self.tick(now)?;
        }
        let touched = std::mem::take(&mut self.touched);
        for &slot in &touched {
            self.settle(slot, now)?;
        }
        self.touched = touched;
        self.touched.clear();
        Ok(())
    }

    fn complete(&mut self, data: u64, result: i32, flags: u32) -> io::Result<()> {
        let (slot, generation, op) = split_user_data(data);
        match op {
            OP_ACCEPT => self.accepted(result, flags),
            OP_PROVIDE => {
                if result < 0 {
                    return Err(io::Error::from_raw_os_error(-result));
                }
                Ok(())
            }
            OP_RECV => {
                let buffer = cqueue::buffer_select(flags);
                if let Some(client) = self.client(slot, generation) {
                    if !cqueue::more(flags) {
                        client.recv_in_flight = false;
                        client.recv_cancelled = false;
                    }
                    let not_reading = client.read_done;
                    self.touched.push(slot);
                    if result > 0 && not_reading {
                        // Refused, or closing: what else comes is not read.
                    } else if result > 0 {
                        let bid = buffer.expect("a read with buffer select names its buffer");
                        let start = usize::from(bid) * READ_BUFFER;
                        let len = result as usize;
                        let data = &self.buffers[start..start + len];
                        let client = self.slots[slot].as_deref_mut().expect("checked above");
                        received(client, data, &self.server.config, &mut self.on_message);
                    } else if result == 0 {
                        ended(self.slots[slot].as_deref_mut().expect("checked above"));
                    } else if result != -libc::ENOBUFS && result != -libc::ECANCELED {
                        // A reset, say: the transport is gone.
                        let client = self.slots[slot].as_deref_mut().expect("checked above");
                        ended(client);
                        client.queued.clear();
                        client.queued_len = 0;
                        client.closing_requested();
                    }
                }
                if let Some(bid) = buffer {
                    self.provide(bid, 1)?;
                }
                self.release_if_done(slot, generation);
                Ok(())
            }
            OP_SEND => {
                if let Some(client) = self
                    .slots
                    .get_mut(slot)
                    .and_then(|c| c.as_deref_mut())
                    .filter(|c| c.generation == generation)
                {
                    self.touched.push(slot);
                    let mut sending = client.sending.take().expect("a send was in flight");
                    if result < 0 {
                        client.queued.clear();
                        client.queued_len = 0;
                        client.read_done = true;
                        client.closing_requested();
                    } else {
                        advance(&mut sending.chunks, result as usize);
                        if !sending.chunks.is_empty() {
                            // A short write: the rest goes first, with what queued meanwhile.
                            let rest = std::mem::take(&mut sending.chunks);
                            let queued = std::mem::take(&mut client.queued);
                            client.queued_len += rest.iter().map(Bytes::len).sum::<usize>();
                            client.queued = rest;
                            client.queued.extend(queued);
                        }
                    }
                }
                self.release_if_done(slot, generation);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn accepted(&mut self, result: i32, flags: u32) -> io::Result<()> {
        if !cqueue::more(flags) {
            self.accepting = false;
        }
        if result < 0 {
            // Out of descriptors (EMFILE, ENFILE) or a connection reset
            // before it was taken: accepting resumes at the next tick.
            return Ok(());
        }
        // SAFETY: the kernel has just created this descriptor for us, and
        // nothing else owns it.
        let stream = unsafe { TcpStream::from_raw_fd(result) };
        if self.open >= self.server.max_connections {
            refuse_busy(stream);
            return Ok(());
        }
        let _ = stream.set_nodelay(true);
        self.generation = self.generation.wrapping_add(1) & 0x00ff_ffff;
        let client = Box::new(Client {
            stream,
            generation: self.generation,
            phase: Phase::Handshake(Vec::new()),
            recv_in_flight: false,
            recv_cancelled: false,
            sending: None,
            queued: Vec::new(),
            queued_len: 0,
            read_done: false,
            close_after_write: false,
            closing: false,
            handshake_deadline: Some(Instant::now() + self.server.config.handshake_timeout),
        });
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot] = Some(client);
                slot
            }
            None => {
                self.slots.push(Some(client));
                self.slots.len() - 1
            }
        };
        self.open += 1;
        self.touched.push(slot);
        Ok(())
    }

    /// The client in `slot` if it is the one `generation` names.
    fn client(&mut self, slot: usize, generation: u32) -> Option<&mut Client> {
        self.slots
            .get_mut(slot)?
            .as_deref_mut()
            .filter(|c| c.generation == generation)
    }

    /// Frees the slot of a closing client whose operations have all returned.
    fn release_if_done(&mut self, slot: usize, generation: u32) {
        let done = self
            .client(slot, generation)
            .is_some_and(|c| c.closing && !c.recv_in_flight && c.sending.is_none());
        if done {
            self.slots[slot] = None;
            self.free.push(slot);
            self.open -= 1;
        }
    }

    /// Shuts every connection down and waits (a second at most) for their
    /// reads and writes to return, so that the kernel is done with the
    /// buffers before they are freed.
    fn drain(&mut self) {
        for client in self.slots.iter_mut().flatten() {
            client.closing_requested();
        }
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline {
            let busy = self
                .slots
                .iter()
                .flatten()
                .any(|c| c.recv_in_flight || c.sending.is_some());
            if !busy {
                return;
            }
            let timeout = types::Timespec::from(TICK);
            let args = types::SubmitArgs::new().timespec(&timeout);
            if let Err(e) = self.ring.submitter().submit_with_args(1, &args) {
                if !matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME | libc::EINTR | libc::EBUSY)
                ) {
                    return;
                }
            }
            let done: Vec<u64> = self.ring.completion().map(|c| c.user_data()).collect();
            for data in done {
                let (slot, generation, op) = split_user_data(data);
                if let Some(client) = self.client(slot, generation) {
                    match op {
                        OP_RECV => client.recv_in_flight = false,
                        OP_SEND => client.sending = None,
                        _ => {}
                    }
                }
            }
        }
    }

    /// Deadlines: handshakes, stalled writes, and the connections' own
    /// (keepalive pings and their answers, the close handshake).
    fn tick(&mut self, now: Instant) -> io::Result<()> {
        if !self.accepting {
            self.arm_accept()?;
        }
        let write_timeout = self.server.write_timeout;
        for slot in 0..self.slots.len() {
            let Some(client) = self.slots[slot].as_deref_mut() else {
                continue;
            };
            if client.closing {
                continue;
            }
            let stalled = client
                .sending
                .as_ref()
                .is_some_and(|s| now.duration_since(s.started) >= write_timeout);
            let late = client.handshake_deadline.is_some_and(|d| now >= d);
            if stalled || late {
                client.read_done = true;
                client.queued.clear();
                client.queued_len = 0;
                client.closing_requested();
                self.touched.push(slot);
            } else if let Phase::Open(conn) = &mut client.phase {
                if conn.poll_timeout().is_some_and(|t| t <= now) {
                    conn.handle_timeout(now);
                    drain_events(conn, &mut self.on_message);
                    self.touched.push(slot);
                }
            }
        }
        Ok(())
    }

    /// After a client's completions: write what it has, read again if it
    /// may, or shut it down.
    fn settle(&mut self, slot: usize, now: Instant) -> io::Result<()> {
        let Some(client) = self.slots[slot].as_deref_mut() else {
            return Ok(());
        };
        let generation = client.generation;
        if client.closing {
            self.release_if_done(slot, generation);
            return Ok(());
        }
        if let Phase::Open(conn) = &mut client.phase {
            while let Some(chunk) = conn.poll_transmit() {
                client.queued_len += chunk.len();
                client.queued.push(chunk);
            }
        }
        if client.sending.is_none() && !client.queued.is_empty() {
            let chunks = std::mem::take(&mut client.queued);
            client.queued_len = 0;
            let mut sending = Box::new(Sending {
                iovecs: chunks
                    .iter()
                    .map(|c| libc::iovec {
                        iov_base: c.as_ptr() as *mut libc::c_void,
                        iov_len: c.len(),
                    })
                    .collect(),
                chunks,
                // SAFETY: an all-zero msghdr is a valid empty one.
                header: unsafe { std::mem::zeroed() },
                started: now,
            });
            sending.header.msg_iov = sending.iovecs.as_mut_ptr();
            sending.header.msg_iovlen = sending.iovecs.len();
            let entry = opcode::SendMsg::new(types::Fd(client.stream.as_raw_fd()), &sending.header)
                .flags(libc::MSG_NOSIGNAL as u32)
                .build()
                .user_data(user_data(slot, generation, OP_SEND));
            client.sending = Some(sending);
            // SAFETY: the header, the iovecs and the bytes they point to are
            // owned by the boxed `Sending` in the boxed client, neither moved
            // nor dropped until this send's completion takes it back (a
            // closing client's slot is freed only then).
            unsafe { self.push(entry)? };
        }
        let client = self.slots[slot].as_deref_mut().expect("still here");
        let unsent = client.queued_len
            + client
                .sending
                .as_ref()
                .map_or(0, |s| s.chunks.iter().map(Bytes::len).sum());
        let nothing_to_write = client.sending.is_none() && client.queued.is_empty();
        let finished = match &client.phase {
            Phase::Open(conn) => conn.should_close_transport() && !conn.has_output(),
            Phase::Handshake(_) => false,
        };
        if nothing_to_write && (finished || client.close_after_write || client.read_done) {
            client.closing_requested();
            self.release_if_done(slot, generation);
            return Ok(());
        }
        let high_water = match &client.phase {
            Phase::Open(conn) => conn.config().output_high_water,
            Phase::Handshake(_) => usize::MAX,
        };
        // A peer that does not read its answers is not read either: its
        // read is ended while a window's worth waits, and armed again
        // (multishot: it then returns data until it ends) once it is out.
        let read = user_data(slot, generation, OP_RECV);
        if client.recv_in_flight && !client.recv_cancelled && unsent >= high_water {
            client.recv_cancelled = true;
            let entry = opcode::AsyncCancel::new(read).build().user_data(OP_CANCEL);
            // SAFETY: the entry points at no memory.
            unsafe { self.push(entry)? };
        } else if !client.read_done && !client.recv_in_flight && unsent < high_water {
            let fd = types::Fd(client.stream.as_raw_fd());
            let entry = opcode::RecvMulti::new(fd, GROUP).build().user_data(read);
            client.recv_in_flight = true;
            // SAFETY: the kernel reads into buffers of the group, which
            // live as long as the ring.
            unsafe { self.push(entry)? };
        }
        Ok(())
    }
}

impl Client {
    /// Shuts the transport down: operations in flight return, and the
    /// slot is freed when the last one has.
    fn closing_requested(&mut self) {
        if !self.closing {
            self.closing = true;
            self.read_done = true;
            let _ = self.stream.shutdown(Shutdown::Both);
        }
    }
}

/// Drops `n` written bytes from the front of `chunks`.
fn advance(chunks: &mut Vec<Bytes>, mut n: usize) {
    let whole = chunks.iter().take_while(|c| {
        if n >= c.len() {
            n -= c.len();
            true
        } else {
            false
        }
    });
    let whole = whole.count();
    chunks.drain(..whole);
    if let Some(first) = chunks.first_mut() {
        first.advance(n);
    }
}

/// The peer's bytes: the request head until it is complete, then frames.
fn received<H: FnMut(&mut Connection, Message)>(
    client: &mut Client,
    data: &[u8],
    config: &AcceptConfig,
    on_message: &mut H,
) {
    match &mut client.phase {
        Phase::Open(conn) => {
            conn.receive_data(data);
            drain_events(conn, on_message);
        }
        Phase::Handshake(head) => {
            head.extend_from_slice(data);
            match Request::parse(head, &config.head_limits) {
                Ok(Parse::Partial) => {}
                Ok(Parse::Complete(request, used)) => {
                    let leftover = head.split_off(used);
                    match accept(&request, config) {
                        Ok((response, mut conn)) => {
                            client.queued_len += response.len();
                            client.queued.push(response);
                            client.handshake_deadline = None;
                            conn.receive_data(&leftover);
                            drain_events(&mut conn, on_message);
                            client.phase = Phase::Open(conn);
                        }
                        Err(refused) => refuse(client, &refused),
                    }
                }
                Err(e) => refuse(client, &HandshakeError::from(e)),
            }
        }
    }
}

/// Answers the request as [`crate::ws::accept_with`] does (RFC 6455
/// §4.2.2), with the same negotiation.
fn accept(
    request: &Request,
    config: &AcceptConfig,
) -> Result<(Bytes, Box<Connection>), HandshakeError> {
    let checked = handshake::check_request(request, config.hook.as_ref())?;
    let (accepted, conn) = config.answer(request, &checked, &AcceptResponse::new())?;
    Ok((Bytes::from(accepted.response), Box::new(conn)))
}

/// A refused handshake: its answer, then the end.
fn refuse(client: &mut Client, refused: &HandshakeError) {
    let response = Bytes::from(refused.response());
    client.queued_len += response.len();
    client.queued.push(response);
    client.read_done = true;
    client.close_after_write = true;
}

/// The peer closed its side of the transport.
fn ended(client: &mut Client) {
    client.read_done = true;
    match &mut client.phase {
        Phase::Open(conn) => conn.receive_eof(),
        Phase::Handshake(_) => client.close_after_write = true,
    }
}

fn drain_events<H: FnMut(&mut Connection, Message)>(conn: &mut Connection, on_message: &mut H) {
    while let Some(event) = conn.poll_event() {
        match event {
            Event::Message(message) if message.is_data() => on_message(conn, message),
            // Pings are answered and closes replied to by the core.
            Event::Message(_) | Event::Failed(_) => {}
        }
    }
}

/// Over the connection cap: 503, written at once if the socket takes it.
fn refuse_busy(mut stream: TcpStream) {
    let _ = stream.set_nonblocking(true);
    let _ = stream.write_all(
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n\
          Content-Length: 21\r\nConnection: close\r\n\r\ntoo many connections\n",
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_data_round_trips() {
        let data = user_data(123_456, 0x00ab_cdef, OP_SEND);
        assert_eq!(split_user_data(data), (123_456, 0x00ab_cdef, OP_SEND));
    }

    #[test]
    fn advance_drops_written_chunks_and_cuts_the_first_left() {
        let mut chunks = vec![
            Bytes::from_static(b"abc"),
            Bytes::from_static(b"de"),
            Bytes::from_static(b"fgh"),
        ];
        advance(&mut chunks, 4);
        assert_eq!(
            chunks,
            [Bytes::from_static(b"e"), Bytes::from_static(b"fgh")]
        );
        advance(&mut chunks, 4);
        assert!(chunks.is_empty());
    }
}
